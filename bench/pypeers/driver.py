"""The child that runs every wanted metric for one impl, and the driver
that runs each impl in a child of its own (see bench/peers.py)."""
import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

from pypeers import adapters
from pypeers.adapters import import_loky, loky_available
from pypeers.common import CHILD_TIMEOUT_S, IMPLS, METRICS, log
from pypeers.metrics import GROUPS, Ctx
from pypeers.procfs import all_procs, kill_descendants, proc_stat

# The entry point, which each impl's child runs again with --_child.
PEERS_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "peers.py")
DESCRIPTION = "Python peers for the ppx benchmark suite (see bench/SPEC.md)."

def _on_term(signum, _frame):
    raise SystemExit(128 + signum)


def child_main(impl, quick, wanted):
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    if impl == "py_loky":
        try:
            how = import_loky()
        except ImportError as e:
            log(f"py_loky skipped: loky not importable ({e})")
            return 0
        log(f"py_loky: using {how} version "
            f"{getattr(adapters.LOKY, '__version__', '?')}")
    elif impl in ("py_ppe_asyncio", "py_mp_pool"):
        log(f"{impl}: start method "
            f"{multiprocessing.get_start_method()}")
    with open("/proc/loadavg") as f:
        log(f"{impl}: loadavg at start {' '.join(f.read().split()[:3])}")
    c = Ctx(impl, quick, wanted)

    async def run_all():
        for metrics, fn in GROUPS:
            if c.want(*metrics):
                t0 = time.perf_counter()
                await fn(c)
                log(f"{impl} {fn.__name__} done in "
                    f"{time.perf_counter() - t0:.1f} s")

    rc = 0
    try:
        asyncio.run(run_all())
    except BaseException as e:
        if not isinstance(e, SystemExit):
            import traceback
            traceback.print_exc()
        rc = 1 if not isinstance(e, SystemExit) else (e.code or 1)
    finally:
        c.kill_all()
        kill_descendants()
    return rc


# ---------------------------------------------------------------------------
# Driver

def run_child(impl, args, wanted):
    cmd = [sys.executable, PEERS_PY, "--_child", impl,
           "--only", ",".join(sorted(wanted))]
    if args.quick:
        cmd.append("--quick")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         start_new_session=True, text=True, bufsize=1)
    ok = True
    done = threading.Event()

    def watchdog():
        if not done.wait(CHILD_TIMEOUT_S):
            log(f"{impl}: exceeded {CHILD_TIMEOUT_S} s, killing it")
            _killpg(p.pid, signal.SIGKILL)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        for line in p.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                json.loads(line)
            except ValueError:
                log(f"{impl}: non-JSON stdout line dropped: {line!r}")
                continue
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        # wait for exit without reaping, so the pid (= pgid) stays reserved
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    except BaseException:
        ok = False
        _killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while os.waitid(os.P_PID, p.pid,
                        os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
            if time.monotonic() > deadline:
                _killpg(p.pid, signal.SIGKILL)
                os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
                break
            time.sleep(0.05)
        raise
    finally:
        # anything left in the child's process group is ours: give it a
        # moment to exit on its own (e.g. loky's resource tracker sees EOF),
        # then kill it, then reap the child.
        deadline = time.monotonic() + 2.0
        while _group_members(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _group_members(p.pid)
        if left:
            log(f"{impl}: killing leftover processes {left}")
            _killpg(p.pid, signal.SIGKILL)
        done.set()
        rc = p.wait()
        if ok:
            log(f"{impl}: child exited rc={rc} after "
                f"{time.monotonic() - t0:.1f} s")
    return rc


def _group_members(pgid):
    return [pid for pid, (_pp, pg) in all_procs().items()
            if pg == pgid and proc_stat(pid) and proc_stat(pid)[0] != "Z"]


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def parse_args(argv):
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--quick", action="store_true",
                    help="fewer iterations (smoke test)")
    ap.add_argument("--only", default="",
                    help="comma-separated metrics (default: all)")
    ap.add_argument("--impl", default="",
                    help="comma-separated impls (default: all available)")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    wanted = set(METRICS)
    if args.only:
        wanted = {m.strip() for m in args.only.split(",") if m.strip()}
        bad = wanted - set(METRICS)
        if bad:
            ap.error(f"unknown metric(s) {sorted(bad)}; "
                     f"known: {', '.join(METRICS)}")
    impls = list(IMPLS)
    if args.impl:
        impls = [i.strip() for i in args.impl.split(",") if i.strip()]
        bad = set(impls) - set(IMPLS)
        if bad:
            ap.error(f"unknown impl(s) {sorted(bad)}; known: {IMPLS}")
    return args, wanted, impls


def main(argv):
    args, wanted, impls = parse_args(argv)
    if args._child:
        return child_main(args._child, args.quick, wanted)
    t0 = time.monotonic()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_term)
    rc = 0
    for impl in impls:
        if impl == "py_loky" and not loky_available():
            log("py_loky skipped: neither loky nor joblib is installed")
            continue
        log(f"=== {impl} ===")
        r = run_child(impl, args, wanted)
        if r != 0:
            log(f"{impl}: FAILED (rc={r})")
            rc = 1
    log(f"all done in {time.monotonic() - t0:.1f} s")
    return rc
