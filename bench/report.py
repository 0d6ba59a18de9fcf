#!/usr/bin/env python3
"""Reads the JSON lines of every benchmark (see SPEC.md) and prints one
table: each metric, ppx's value, and each peer's value with the ratio
ppx/peer. Writes the same as JSON."""
import json
import platform
import subprocess
import sys
from collections import OrderedDict

# For these, smaller is better; the "wins" column reads the ratio that way.
LOWER_IS_BETTER = {"rtt_median_us", "rtt_p99_us", "startup_ms", "idle_uss_kib",
                   "error_stop_ms", "idle_cpu_ms", "zc_echo_64MiB_ms",
                   "pending_call_bytes", "startup_16w_ms", "startup_64w_ms",
                   "startup_1GiB_ms", "startup_1GiB_early_ms", "idle_worker_cpu_2w",
                   "idle_worker_cpu_64w"}
PEERS = ["py_ppe_asyncio", "py_mp_pool", "py_loky", "uv_queue_work",
         "floor_epoll_futex", "floor_spin", "floor_stream", "floor_memcpy",
         "floor_xproc", "floor_xproc_1cpu", "floor_fork", "floor_fork_chain"]


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{platform.node()}: {nproc} vCPU {cpu}, Linux {platform.release()}"


def main(raw_path, json_path):
    rows = OrderedDict()
    for line in open(raw_path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        rows.setdefault(r["metric"], {})[r["impl"]] = (r["value"], r["unit"])

    table = []
    for metric, impls in rows.items():
        mine = impls.get("ppx")
        low = impls.get("ppx_lowlat")
        for peer in PEERS:
            if peer not in impls:
                continue
            pv, unit = impls[peer]
            for name, val in (("ppx", mine), ("ppx_lowlat", low),
                              ("ppx_sandbox", impls.get("ppx_sandbox"))):
                if not val:
                    continue
                ratio = val[0] / pv if pv not in (0, -1) and val[0] != -1 else None
                table.append({"metric": metric, "impl": name, "ppx": val[0], "peer": peer,
                              "peer_value": pv, "unit": unit, "ratio_ppx_over_peer": ratio,
                              "lower_is_better": metric in LOWER_IS_BETTER})
        if not any(p in impls for p in PEERS):
            for name, val in impls.items():  # ppx alone, in its variants (ppx_loop, ...)
                if name.startswith("ppx"):
                    table.append({"metric": metric, "impl": name, "ppx": val[0], "peer": None,
                                  "peer_value": None, "unit": val[1],
                                  "ratio_ppx_over_peer": None,
                                  "lower_is_better": metric in LOWER_IS_BETTER})

    def fmt(v):
        if v is None:
            return "-"
        if v == -1:
            return "never"
        return f"{v:.4g}"

    print(f"machine: {machine()}")
    print(f"{'metric':<18} {'impl':<11} {'ppx':>11} {'peer':<18} {'peer value':>11} "
          f"{'unit':<8} {'ppx/peer':>9}  better by")
    for r in table:
        ratio = r["ratio_ppx_over_peer"]
        if ratio is None or ratio <= 0:
            better = "-"
        else:
            factor = 1 / ratio if r["lower_is_better"] else ratio
            better = f"{factor:.1f}x" if factor >= 1 else f"{1 / factor:.1f}x worse"
        print(f"{r['metric']:<18} {r['impl']:<11} {fmt(r['ppx']):>11} {str(r['peer']):<18} "
              f"{fmt(r['peer_value']):>11} {r['unit']:<8} {fmt(ratio):>9}  {better}")
    with open(json_path, "w") as f:
        json.dump({"machine": machine(), "rows": table, "raw": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
