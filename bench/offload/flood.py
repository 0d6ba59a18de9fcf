"""bench/offload/run's never-reading part (issue 16): N connections each
pipeline BYTES of requests and never read an answer, while a light /ping
stream (ping.lua, as in the other parts) and a /ping on a new connection
every 10 ms measure the loop's latency, and the server's process tree is
sampled for RSS.

    flood.py run OUT.jsonl --name NAME --port P --pid PID [--conns 400]
             [--bytes 262144] [--seconds 10] [--path /stats]
        one measurement against a running server: appends a JSON line
        (/ping's wrk result, peak RSS, the bytes the server took, its
        requests parsed and CPU seconds, the flooding client's own CPU)
    flood.py report RUNS.jsonl OUTDIR
        flood.md (table and issue 16's check) and flood.json

The flood runs in a child process at nice +10 and /ping's wrk at nice -10
(when root), so that on a small machine the generator does not take the
CPU the server's loop needs, nor delay the pings itself. /ping runs from
a second before the flood to a second after it, so the connections'
opening and closing are measured too. Any python3 (no third-party module).
"""
import argparse
import errno
import json
import math
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

import shootout

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of pid and its reaped children, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def flood(port, conns, nbytes, seconds, path):
    """The child: opens conns connections with a 4 KiB receive window (the
    answers back up in the server, as with a far client that never
    reads), sends nbytes of pipelined GETs on each as fast as the kernel
    takes them, and holds them open, unread, for seconds. Prints a JSON
    line: bytes sent, connections the server closed, seconds until every
    connection had sent all or stalled."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    block = request * (65536 // len(request))
    sel = selectors.DefaultSelector()
    sent, closed = {}, 0
    for _ in range(conns):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        sent[s] = 0
        sel.register(s, selectors.EVENT_WRITE)
    start = time.monotonic()
    end, settled = start + seconds, None
    while time.monotonic() < end:
        events = sel.select(timeout=0.1)
        if not events and settled is None:
            settled = time.monotonic() - start  # nobody could send for 100 ms
        for key, _ in events:
            s = key.fileobj
            off = sent[s] % len(block)
            try:
                n = s.send(block[off:off + nbytes - sent[s]])
            except BlockingIOError:
                continue
            except OSError as e:  # the server closed it (idle timer)
                if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                    raise
                sel.unregister(s)
                closed += 1
                continue
            sent[s] += n
            if sent[s] >= nbytes:
                sel.unregister(s)
    total = sum(sent.values())
    for s in sent:
        s.close()
    print(json.dumps({"sent_bytes": total, "closed_by_server": closed,
                      "settled_s": settled}))


# /ping on a new connection each time, every 10 ms, beside wrk's two
# kept-alive ones: what a client arriving during the flood waits, accept
# and its first request included. Same priority as wrk's /ping.
FRESH_PROBE = """
import json, socket, sys, time
port, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
req = b"GET /ping HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n"
ms, errors = [], 0
while time.monotonic() < end:
    t = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(req)
            got = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        if got.startswith(b"HTTP/1.1 200"):
            ms.append((time.monotonic() - t) * 1e3)
        else:
            errors += 1
    except OSError:
        errors += 1
    time.sleep(0.01)
ms.sort()
pick = lambda q: ms[min(len(ms) - 1, int(len(ms) * q))] if ms else None
print(json.dumps({"pings": len(ms), "errors": errors, "p50_ms": pick(0.5),
                  "p99_ms": pick(0.99), "max_ms": ms[-1] if ms else None}))
"""


def run(a):
    if a.flood_child:
        flood(a.port, a.conns, a.bytes, a.seconds, a.path)
        return
    base = f"http://127.0.0.1:{a.port}"
    root = os.geteuid() == 0
    sampler = shootout.RssSampler(a.pid)
    sampler.start()
    server_cpu0 = cpu_seconds(a.pid)
    ping_out = os.path.join(os.path.dirname(os.path.abspath(a.out)), f"{a.name}.flood.ping")
    with open(ping_out, "w") as pf:
        ping = subprocess.Popen((["nice", "-n", "-10"] if root else [])
                                + ["wrk", "-t1", "-c2", f"-d{a.seconds + 2:.0f}s",
                                   "--timeout", "10s", "-s",
                                   os.path.join(shootout.HERE, "ping.lua"), f"{base}/ping"],
                                stdout=pf)
    probes = shootout.start_probes(-10 if root else 0, a.seconds + 2)
    fresh = subprocess.Popen((["nice", "-n", "-10"] if root else [])
                             + [sys.executable, "-c", FRESH_PROBE, str(a.port),
                                str(a.seconds + 2)], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    child = subprocess.run(["nice", "-n", "10", sys.executable, os.path.abspath(__file__),
                            "run", a.out, "--flood-child", "--name", a.name,
                            "--port", str(a.port), "--pid", "0", "--conns", str(a.conns),
                            "--bytes", str(a.bytes), "--seconds", str(a.seconds),
                            "--path", a.path],
                           stdout=subprocess.PIPE, check=True, text=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    ping.wait()
    stalls = shootout.finish_probes(probes)
    fresh_ping = json.loads(fresh.communicate()[0])
    rss = sampler.finish()
    _, _, stats = shootout.get(a.port, "/stats", 5)
    line = {"name": a.name, "conns": a.conns, "bytes_each": a.bytes, "path": a.path,
            "seconds": a.seconds, "flood": json.loads(child.stdout),
            "flood_cpu_s": usage.ru_utime + usage.ru_stime,
            "server_cpu_s": cpu_seconds(a.pid) - server_cpu0,
            "requests": json.loads(stats)["server"]["requests"],
            "ping": shootout.wrk_result(ping_out), "fresh_ping": fresh_ping, "rss": rss,
            "stalls": stalls,
            "loadavg": os.getloadavg()[0]}
    del line["ping"]["hist"]
    with open(a.out, "a") as out:
        out.write(json.dumps(line) + "\n")
    p = line["ping"]
    print(f"{a.name}: /ping p50 {p['p50_us'] / 1e3:.2f} p99 {p['p99_us'] / 1e3:.2f} "
          f"max {p['max_us'] / 1e3:.2f} ms ({p['requests']} pings, {p['errors']} errors), "
          f"on new connections p50 {fmt_ms(fresh_ping['p50_ms'])} max "
          f"{fmt_ms(fresh_ping['max_ms'])} ms ({fresh_ping['pings']}, "
          f"{fresh_ping['errors']} errors), "
          f"RSS peak {rss['peak_rss_mib']:.1f} MiB, {line['flood']['sent_bytes'] >> 20} MiB "
          f"taken, {line['requests']} requests, server CPU {line['server_cpu_s']:.2f} s, "
          f"flood CPU {line['flood_cpu_s']:.2f} s; a 5 ms sleeper woke up to "
          f"{stalls['max_late_ms']:.1f} ms late ({stalls['late_over_20ms']} times > 20 ms), "
          f"load average {line['loadavg']:.2f}", file=sys.stderr)


def fmt_ms(v):
    return "-" if v is None else f"{v:.2f}"


def report(a):
    with open(a.runs) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(a.outdir, "flood.json"), "w") as f:
        json.dump(runs, f, indent=2)
        f.write("\n")
    r0 = runs[0]
    lines = [
        f"{r0['conns']} connections each send {r0['bytes_each'] // 1024} KiB of pipelined "
        f"`GET {r0['path']}` through a 4 KiB receive window and never read (the flooding "
        f"client at nice +10); /ping from 2 connections, 10 ms apart, from a second before "
        f"the flood to a second after its {r0['seconds']:.0f} s; a fresh server each run. "
        f"\"server CPU\": its process's CPU seconds during the run; \"flood CPU\": the "
        f"flooding client's. \"machine stall\": how late processes at /ping's priority, "
        f"one pinned to each CPU, woke from 5 ms sleeps meanwhile (the machine's share of /ping's latency); "
        f"\"load avg\": the 1-minute load average at the end (other users of the machine). "
        f"\"new conn\": /ping on a new connection every 10 ms (connect to last byte), "
        f"at the same time and priority.",
        "",
        "| run | /ping p50 ms | /ping p99 ms | /ping max ms | pings | errors "
        "| new conn p50 ms | new conn p99 ms | new conn max ms | new conn pings, errors "
        "| RSS peak MiB | MiB taken | requests answered | server CPU s | flood CPU s "
        "| machine stall max ms | stalls > 20 ms | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p, fr = r["ping"], r["fresh_ping"]
        lines.append(
            f"| {r['name']} | {p['p50_us'] / 1e3:.2f} | {p['p99_us'] / 1e3:.2f} "
            f"| {p['max_us'] / 1e3:.2f} | {p['requests']} | {p['errors']} "
            f"| {fmt_ms(fr['p50_ms'])} | {fmt_ms(fr['p99_ms'])} | {fmt_ms(fr['max_ms'])} "
            f"| {fr['pings']}, {fr['errors']} "
            f"| {r['rss']['peak_rss_mib']:.1f} | {r['flood']['sent_bytes'] / 2**20:.0f} "
            f"| {r['requests']} | {r['server_cpu_s']:.2f} | {r['flood_cpu_s']:.2f} "
            f"| {r['stalls']['max_late_ms']:.1f} | {r['stalls']['late_over_20ms']} "
            f"| {r['loadavg']:.2f} |")
    worst_ms = max(r["ping"]["max_us"] for r in runs) / 1e3
    worst_fresh = max((r["fresh_ping"]["max_ms"] or math.inf) for r in runs)
    worst_rss = max(r["rss"]["peak_rss_mib"] for r in runs)
    errors = sum(r["ping"]["errors"] + r["fresh_ping"]["errors"] for r in runs)
    ok = max(worst_ms, worst_fresh) <= 50 and worst_rss < 100 and errors == 0
    lines += ["", f"- worst /ping {worst_ms:.2f} ms, on a new connection {worst_fresh:.2f} ms, "
              f"worst RSS {worst_rss:.1f} MiB, {errors} /ping errors (want <= 50 ms, "
              f"< 100 MiB, 0: {'holds' if ok else 'FAILS'})"]
    with open(os.path.join(a.outdir, "flood.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out")
    r.add_argument("--name", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--conns", type=int, default=400)
    r.add_argument("--bytes", type=int, default=256 * 1024)
    r.add_argument("--seconds", type=float, default=10)
    r.add_argument("--path", default="/stats")
    r.add_argument("--flood-child", action="store_true", help=argparse.SUPPRESS)
    rep = sub.add_parser("report")
    rep.add_argument("runs")
    rep.add_argument("outdir")
    a = ap.parse_args()
    run(a) if a.cmd == "run" else report(a)


if __name__ == "__main__":
    main()
