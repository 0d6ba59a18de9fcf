"""Python peers for the ppx benchmark suite (see bench/SPEC.md), run by
bench/peers.py, which says what they measure and how.

  common    impls, metric names and units, log and emit
  work      the functions run in the workers
  procfs    /proc readings and the sweep of leftover processes
  adapters  one object per live pool/executor, the same calls for each impl
  metrics   the metric groups, each opening and closing its own pools
  driver    one child interpreter per impl, and the command line
"""
