"""Turns bench/offload/run's measurements into tables, JSON and the data
files offload.gp plots.

    report.py work RUNS.jsonl OUTDIR --workers N --iterations M --job-ms MS
              --duration S --ping-delay-ms D
        /ping while /work keeps the workers busy (ppx, --inline, idle):
        offload.json, offload.md, offload.dat
    report.py shootout SHOOTOUT.jsonl OUTDIR --duration S --ping-delay-ms D
        the scrypt service against its peers (shootout.py's lines):
        shootout.json, shootout.md, shootout.dat; prints the ratios
"""
import argparse
import json
import os
import platform

import shootout_report


def ms(us):
    return us / 1000.0


def work_report(a):
    with open(a.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    rows = []
    for r in runs:
        p, w = r["ping"], r["work"]
        rows.append({
            "mode": r["name"],
            "server_args": r["args"],
            "work_connections": r["work_conns"],
            "work_rps": w["requests"] / (w["duration_us"] / 1e6) if w else None,
            # What one job took during the run: the loop (inline) or each
            # worker (ppx) did nothing else.
            "job_ms": (w["duration_us"] / 1e3 / w["requests"]
                       * (1 if "--inline" in r["args"] else a.workers)) if w else None,
            "work_p50_ms": ms(w["p50_us"]) if w else None,
            "work_errors": w["errors"] if w else None,
            "ping_requests": p["requests"],
            "ping_p50_ms": ms(p["p50_us"]),
            "ping_p90_ms": ms(p["p90_us"]),
            "ping_p99_ms": ms(p["p99_us"]),
            "ping_max_ms": ms(p["max_us"]),
            "ping_errors": p["errors"],
            "server_stats": r["stats"],
        })
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                         if l.startswith("model name")), platform.processor()),
            "kernel": platform.release(),
        },
        "workers": a.workers,
        "job": {"iterations": a.iterations, "ms": a.job_ms},
        "ping": {"connections": 2, "delay_ms": a.ping_delay_ms, "seconds": a.duration},
        "modes": rows,
    }
    with open(os.path.join(a.outdir, "offload.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")

    def cell(v, fmt):
        return "–" if v is None else fmt.format(v)

    lines = [
        f"{a.workers} workers; one /work job = {a.iterations} iterations, "
        f"{a.job_ms:.1f} ms when calibrated (\"job ms\": its mean length during the run); "
        f"/ping from 2 connections, {a.ping_delay_ms} ms apart, for {a.duration} s "
        f"while /work runs back to back on the other connections.",
        "",
        "| mode | /work conns | /work req/s | job ms | /ping p50 ms | /ping p90 ms "
        "| /ping p99 ms | /ping max ms | pings | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        errors = r["ping_errors"] + (r["work_errors"] or 0)
        lines.append(
            f"| {r['mode']} (`{r['server_args']}`) | {r['work_connections']} "
            f"| {cell(r['work_rps'], '{:.1f}')} | {cell(r['job_ms'], '{:.1f}')} "
            f"| {r['ping_p50_ms']:.2f} "
            f"| {r['ping_p90_ms']:.2f} | {r['ping_p99_ms']:.2f} | {r['ping_max_ms']:.2f} "
            f"| {r['ping_requests']} | {errors} |")
    with open(os.path.join(a.outdir, "offload.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    with open(os.path.join(a.outdir, "offload.dat"), "w") as f:
        f.write("# mode ping_p50_ms ping_p99_ms work_rps\n")
        for r in rows:
            f.write(f"{r['mode']} {r['ping_p50_ms']:.4f} {r['ping_p99_ms']:.4f} "
                    f"{r['work_rps'] or 0:.4f}\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="part", required=True)
    work = sub.add_parser("work")
    work.add_argument("runs")
    work.add_argument("outdir")
    work.add_argument("--workers", type=int, required=True)
    work.add_argument("--iterations", type=int, required=True)
    work.add_argument("--job-ms", type=float, required=True)
    work.add_argument("--duration", type=int, required=True)
    work.add_argument("--ping-delay-ms", type=int, required=True)
    shoot = sub.add_parser("shootout")
    shoot.add_argument("runs")
    shoot.add_argument("outdir")
    shoot.add_argument("--duration", type=int, required=True)
    shoot.add_argument("--ping-delay-ms", type=int, required=True)
    a = ap.parse_args()
    if a.part == "work":
        work_report(a)
    else:
        shootout_report.report(a)


if __name__ == "__main__":
    main()
