"""The shootout's part of report.py: shootout.py's JSON lines into
shootout.json, shootout.md (machine, table, ratios), shootout.dat (for
offload.gp), and the ratios issue 16 checks, printed."""
import json
import os



def node_rows(machine):
    """(Node.js servers doing the same OpenSSL work as ppx, all Node.js
    servers): two per build of shootout.py's nodes.py."""
    same, every = [], []
    for b in machine["nodes"]:
        names = [f"{b['prefix']}_threadpool", f"{b['prefix']}_piscina"]
        every += names
        same += names if b["same_libcrypto"] else []
    return same, every


def row(line):
    """One server's figures, None where missing."""
    load, crash = line.get("load"), line.get("crash")
    h = load["hash"] if load else None
    p = load["ping"] if load else None
    return {
        "server": line["server"],
        "command": line["command"],
        "missing": line["missing"],
        "hash_rps": h["requests"] / (h["duration_us"] / 1e6) if h else None,
        "hash_p50_ms": h["p50_us"] / 1e3 if h else None,
        "hash_errors": h["errors"] if h else None,
        "ping_p50_ms": p["p50_us"] / 1e3 if p else None,
        "ping_p99_ms": p["p99_us"] / 1e3 if p else None,
        "ping_max_ms": p["max_us"] / 1e3 if p else None,
        "ping_errors": p["errors"] if p else None,
        "idle_rss_mib": line["idle_rss_mib"],
        "peak_rss_mib": load["rss"]["peak_rss_mib"] if load else None,
        "hwm_sum_mib": load["rss"]["hwm_sum_mib"] if load else None,
        "peak_pss_mib": load["rss"]["peak_pss_mib"] if load else None,
        "processes": load["rss"]["processes"] if load else None,
        "stalls_dropped_ms": load.get("stalls_dropped_ms", []) if load else None,
        "stall_kept_max_ms": load.get("stall_kept_max_ms") if load else None,
        "crash": crash,
        "load": load,
    }


def ratios(rows, machine):
    """For each ppx variant (any server that is not a peer): its /hash
    throughput over the best Node.js variant's doing the same OpenSSL work
    (issue 16 wants >= 1) and over the best of any Node.js build (told,
    not judged), its /ping p99 under saturation over the best peer's
    (wants <= 0.5), and which servers kept serving /hash through /crash
    (wants ppx and no peer)."""
    by = {r["server"]: r for r in rows}
    nodes, every_node = node_rows(machine)
    peers = every_node + ["aiohttp"]

    def best(names, key, pick):
        vals = [(by[n][key], n) for n in names if n in by and by[n][key] is not None]
        return pick(vals) if vals else (None, None)

    node_rps, node_name = best(nodes, "hash_rps", max)
    any_rps, any_name = best(every_node, "hash_rps", max)
    peer_p99, peer_name = best(peers, "ping_p99_ms", min)
    crashed = [r for r in rows if r["crash"]]
    kept = [r["server"] for r in crashed if r["crash"]["kept_serving"]]
    out = []
    for r in rows:
        if r["server"] in peers:
            continue
        tput = (r["hash_rps"] / node_rps) if r["hash_rps"] and node_rps else None
        tput_any = (r["hash_rps"] / any_rps) if r["hash_rps"] and any_rps else None
        p99 = (r["ping_p99_ms"] / peer_p99) if r["ping_p99_ms"] and peer_p99 else None
        out.append({
            "ppx": r["server"],
            "hash_rps_over_best_node": tput, "best_node": node_name,
            "hash_ok": None if tput is None else tput >= 1.0,
            "hash_rps_over_any_node": tput_any, "best_any_node": any_name,
            "ping_p99_over_best_peer": p99, "best_peer": peer_name,
            "ping_ok": None if p99 is None else p99 <= 0.5,
            "crash_tested": r["crash"] is not None,
            "kept_serving_through_crash": kept,
            "crash_ok": None if r["crash"] is None else (
                r["server"] in kept and not any(n in peers for n in kept)),
        })
    return out


def cell(v, fmt="{:.1f}"):
    return "missing" if v is None else fmt.format(v)


def crash_cells(c):
    """/crash's answer, whether the server answered afterwards and how
    soon a /hash succeeded again."""
    if c is None:
        return ["missing"] * 4
    text = c["crash_answer"][:60].replace("|", "\\|").replace("`", "'")
    answer = (f"{c['crash_status']} `{text}`" if c["crash_status"]
              else f"none ({c['crash_answer']})")
    after = (f"/ping after {c['first_ping_ms']:.0f} ms" if c["first_ping_ms"] is not None
             else "nothing")
    if c["first_hash_ms"] is not None:
        again = f"{c['first_hash_ms']:.0f} ms"
    else:
        statuses = ", ".join(f"{k} x{v}" for k, v in c["hash_statuses"].items())
        again = "never in 10 s" + (f" ({statuses})" if statuses else "")
    process = "alive" if c["alive"] else f"dead ({c['exit']})"
    return [answer, after, again, process]


def machine_line(m):
    return (f"Machine: {m['cpus']} CPUs, {m['cpu']}, Linux {m['kernel']}, {m['date']}; "
            f"piscina {m['piscina']}, Python {m['python']} ({m['python_openssl']}), "
            f"aiohttp {m['aiohttp']}, {m['openssl']}, {m['wrk']}.")


def node_lines(m):
    """Which Node.js each node row ran, and whether its scrypt is ppx's."""
    lines = []
    for b in m["nodes"]:
        whose = (f"the system's libcrypto ({b['libcrypto']}), the file ppx's server links: "
                 f"the same OpenSSL work" if b["same_libcrypto"] else
                 f"its own OpenSSL, built into the binary: not the same OpenSSL work")
        lines.append(f"- `{b['prefix']}_*`: Node.js {b['version']} at {b['node']}, "
                     f"OpenSSL {b['openssl']}, {whose}.")
    return lines


def table(rows, machine, workers, a):
    load = next((line["load"] for line in rows if line.get("load")), None)
    rounds, slice_s = (load["rounds"], load["slice_s"]) if load else (0, a.duration)
    lines = [
        machine_line(machine), "",
    ] + node_lines(machine) + [
        "",
        f"{workers} workers each (Node: UV_THREADPOOL_SIZE or piscina threads; Python: "
        f"processes). All servers run at once and are loaded in turn, {rounds} slices each "
        f"(the order rotated every round). A slice: /hash, scrypt N=16384 r=8 p=1, from "
        f"{4 * workers} connections back to back for {slice_s + 2} s; /ping, 2 connections "
        f"{a.ping_delay_ms} ms apart, for the middle {slice_s} s. RSS: the server's process tree, VmRSS summed (peak of "
        f"50 ms samples), VmHWM summed at the end, and Pss summed (peak; shared pages "
        f"divided among their processes). /crash: one request, then /ping "
        f"every 10 ms and /hash once /ping answers, for 10 s. Machine stalls: 5 ms "
        f"sleepers at /ping's priority (stall_probe.c), one pinned to each CPU, started before the slice and run beside /ping; a slice in "
        f"which one woke more than 30 ms late was run again (three times at most), and \"reruns\" lists how late "
        f"it woke in the slices dropped; \"stall ms\": the latest it woke in the "
        f"slices kept.",
        "",
        "| server | /hash req/s | /hash p50 ms | /ping p50 ms | /ping p99 ms | /ping max ms "
        "| errors | reruns | stall ms | RSS idle MiB | RSS peak MiB | HWM sum MiB "
        "| PSS peak MiB | procs | /crash answer | then | /hash again | process |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in rows:
        errors = None if r["hash_errors"] is None else r["hash_errors"] + r["ping_errors"]
        lines.append("| " + " | ".join(
            [r["server"], cell(r["hash_rps"]), cell(r["hash_p50_ms"]),
             cell(r["ping_p50_ms"], "{:.2f}"), cell(r["ping_p99_ms"], "{:.2f}"),
             cell(r["ping_max_ms"], "{:.2f}"), cell(errors, "{}"),
             "missing" if r["stalls_dropped_ms"] is None else
             (", ".join(f"{ms:.0f}" for ms in r["stalls_dropped_ms"]) or "none"),
             cell(r["stall_kept_max_ms"]),
             cell(r["idle_rss_mib"]), cell(r["peak_rss_mib"]), cell(r["hwm_sum_mib"]),
             cell(r["peak_pss_mib"]),
             cell(r["processes"], "{}")] + crash_cells(r["crash"])) + " |")
    return lines


def ratio_lines(rs):
    def verdict(ok):
        return "missing" if ok is None else ("holds" if ok else "FAILS")

    lines = []
    for q in rs:
        untested = "" if q["crash_tested"] else f" ({q['ppx']} not tested: missing)"
        lines += [
            f"- {q['ppx']} /hash req/s / best Node.js with the same OpenSSL work "
            f"({q['best_node']}): {cell(q['hash_rps_over_best_node'], '{:.2f}')} (want >= 1: "
            f"{verdict(q['hash_ok'])})",
        ]
        if q["best_any_node"] != q["best_node"]:
            lines.append(
                f"- {q['ppx']} /hash req/s / best Node.js of any build ({q['best_any_node']}, "
                f"another OpenSSL build: told, not judged): "
                f"{cell(q['hash_rps_over_any_node'], '{:.2f}')}")
        lines += [
            f"- {q['ppx']} /ping p99 under saturation / best peer ({q['best_peer']}): "
            f"{cell(q['ping_p99_over_best_peer'], '{:.2f}')} (want <= 0.5: "
            f"{verdict(q['ping_ok'])})",
            f"- kept serving /hash through /crash: "
            f"{', '.join(q['kept_serving_through_crash']) or 'none'}"
            f"{untested}"
            f" (want {q['ppx']} and no peer: {verdict(q['crash_ok'])})",
        ]
    return lines


def report(a):
    with open(a.runs) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    machine = next(line for line in lines if line["kind"] == "machine")
    servers = [line for line in lines if line["kind"] == "server"]
    rows = [row(line) for line in servers]
    rs = ratios(rows, machine)
    workers = servers[0]["workers"] if servers else 0
    with open(os.path.join(a.outdir, "shootout.json"), "w") as f:
        json.dump({"machine": machine, "workers": workers, "duration_s": a.duration,
                   "ping_delay_ms": a.ping_delay_ms, "servers": rows, "ratios": rs,
                   "raw": servers}, f, indent=2)
        f.write("\n")
    md = table(rows, machine, workers, a) + [""] + ratio_lines(rs)
    with open(os.path.join(a.outdir, "shootout.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(a.outdir, "shootout.dat"), "w") as f:
        f.write("# server ping_p50_ms ping_p99_ms hash_rps peak_rss_mib (-1: missing)\n")
        for r in rows:
            f.write(" ".join([r["server"]] + [f"{-1 if r[k] is None else r[k]:.4f}" for k in
                             ("ping_p50_ms", "ping_p99_ms", "hash_rps", "peak_rss_mib")]) + "\n")
    print("\n".join(ratio_lines(rs)))
