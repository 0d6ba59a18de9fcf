"""bench/offload/run's "alone" part (issue 16): is ppx's /hash slower than
Node's because of the OpenSSL each one runs? One scrypt at a time, no
server, no pool: scrypt_alone (C, Debian's libcrypto, as ppx's worker calls
it) and scrypt_alone.js on each Node.js build nodes.py finds (Debian's, on
that same libcrypto; the machine's /usr/bin/node where it is another build
with an OpenSSL of its own), in turns, ROUNDS times, each pinned to the same CPU (taskset) and at nice -10 when root, so that
the two see the same machine. CPU time per hash is the measure (wall time
is shown too): it does not count the time another process held the CPU.

    alone.py C_BINARY OUTDIR [--rounds 6] [--hashes 15]

Writes OUTDIR/alone.md and alone.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import nodes

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("outdir")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--hashes", type=int, default=15)
    a = ap.parse_args()
    cpu = str(os.cpu_count() - 1)
    prefix = ["taskset", "-c", cpu] + (["nice", "-n", "-10"] if os.geteuid() == 0 else [])
    ssl_version = subprocess.run(["openssl", "version"], capture_output=True,
                                 text=True).stdout.split()[1]
    try:
        builds = nodes.builds(a.binary)
    except RuntimeError as e:
        sys.exit(f"alone: {e}")
    commands = {f"C, Debian's libcrypto {ssl_version}": ([a.binary, str(a.hashes)], {})}
    for b in builds:
        commands[nodes.label(b)] = (
            [b["node"], os.path.join(HERE, "scrypt_alone.js"), str(a.hashes)], b["env"])
    runs = {name: [] for name in commands}
    for r in range(a.rounds):
        for name, (argv, env) in (commands.items() if r % 2 == 0
                                  else reversed(commands.items())):
            out = subprocess.run(prefix + argv, capture_output=True, text=True, check=True,
                                 env={**os.environ, **env})
            runs[name].append(json.loads(out.stdout))
    rows = []
    for name, rs in runs.items():
        rows.append({"implementation": name, "runs": rs,
                     "cpu_ms_median": statistics.median(x["cpu_ms"] for x in rs),
                     "cpu_ms_min": min(x["cpu_ms"] for x in rs),
                     "wall_ms_median": statistics.median(x["wall_ms"] for x in rs)})
    with open(os.path.join(a.outdir, "alone.json"), "w") as f:
        json.dump({"cpu": int(cpu), "hashes": a.hashes, "rows": rows}, f, indent=2)
        f.write("\n")
    c = rows[0]
    lines = [
        f"scrypt N=16384 r=8 p=1 (as /hash), one at a time on CPU {cpu} (taskset), "
        f"{a.rounds} runs of {a.hashes} hashes each, the order reversed every run; CPU ms "
        f"per hash of each run in order.",
        "",
        "| implementation | CPU ms/hash, median | min | wall ms/hash, median | each run's CPU ms/hash |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['implementation']} | {r['cpu_ms_median']:.2f} | {r['cpu_ms_min']:.2f} "
                     f"| {r['wall_ms_median']:.2f} | "
                     + " ".join(f"{x['cpu_ms']:.1f}" for x in r["runs"]) + " |")
    lines.append("")
    for n in rows[1:]:
        lines.append(
            f"- {n['implementation']}, over C on Debian's libcrypto, CPU per hash: "
            f"{c['cpu_ms_median'] / n['cpu_ms_median']:.3f}x as fast (medians), "
            f"{c['cpu_ms_min'] / n['cpu_ms_min']:.3f}x (minimums); with the same CPU, "
            f"the most ppx's /hash throughput can reach against this Node's is the inverse")
    with open(os.path.join(a.outdir, "alone.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
