#!/usr/bin/env python3
"""One table from bench/out/mpi.jsonl: the local pool, the MPI pool, the
ratio mpi/local, and the floors where there are some: plain MPI between
two ranks (mpi_floor) and, over emulated hosts (metrics ending _netXms),
the link's own TCP round trip (link_floor)."""
import json
import sys

LOWER_BETTER = ("us", "ms", "s")  # units: a time is better lower


def main(path):
    vals, units, order = {}, {}, []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        m = r["metric"]
        if m not in units:
            order.append(m)
        vals[(m, r["impl"])] = r["value"]
        units[m] = r["unit"]
    print(f"{'metric':30} {'local':>11} {'mpi':>11} {'unit':8} {'mpi/local':>9}  "
          f"{'mpi is':14} {'mpi_floor':>10} {'link_floor':>10}")
    for m in order:
        loc, mpi, floor, link = (vals.get((m, i)) for i in
                                 ("ppx_local", "ppx_mpi", "mpi_floor", "link_floor"))
        if loc is None and mpi is None:
            continue
        ratio = mpi / loc if loc and mpi is not None else float("nan")
        verdict = "-"
        if ratio == ratio and ratio > 0:
            lower = units[m] in LOWER_BETTER
            better = ratio < 1 if lower else ratio > 1
            by = ratio if ratio >= 1 else 1 / ratio
            verdict = f"{by:.1f}x {'better' if better else 'worse'}"
        fl = " ".join(f"{v:10.4g}" if v is not None else f"{'-':>10}" for v in (floor, link))
        fmt = lambda v: f"{v:11.4g}" if v is not None else f"{'-':>11}"
        print(f"{m:30} {fmt(loc)} {fmt(mpi)} {units[m]:8} {ratio:9.3g}  {verdict:14} {fl}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/out/mpi.jsonl")
