#!/usr/bin/env python3
"""Python peers for the ppx benchmark suite (see bench/SPEC.md).

Measures the SPEC.md metrics for:
  py_ppe_asyncio  concurrent.futures.ProcessPoolExecutor (fork) driven from
                  asyncio via loop.run_in_executor + asyncio.gather
  py_mp_pool      multiprocessing.Pool (fork)
  py_loky         loky.get_reusable_executor via run_in_executor (only when
                  loky, or joblib's vendored copy, can be imported)

stdout: one JSON line per measurement, nothing else.  stderr: progress.

Layout: the top-level process is a driver that runs every impl in its own
child interpreter (its own session / process group), so that one impl's heap
and imports (joblib pulls in numpy) do not leak into another impl's forked
workers, and so that the driver can always kill whatever an impl left behind.

The code is in the package bench/pypeers/ (its __init__ lists the modules);
this file is the entry point, which the driver also runs as each child.

Usage: python3 bench/peers.py [--quick] [--only METRIC[,METRIC...]]
                              [--impl IMPL[,IMPL...]]
Python 3.11 standard library only.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pypeers.driver import main  # noqa: E402  (needs the path above)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
