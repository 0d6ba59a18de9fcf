"""/proc helpers: process states, CPU time, memory, and the last-resort
sweep of whatever an impl left running."""
import os
import resource
import signal
import time

from pypeers.common import log


def proc_stat(pid):
    """(state, utime+stime ticks, ppid, pgrp) or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] = field 3 (state); utime = field 14, stime = field 15
    return rest[0], int(rest[11]) + int(rest[12]), int(rest[1]), int(rest[2])


def proc_cpu_ns(pid):
    """CPU time of all threads of pid in ns (schedstat, ns resolution),
    falling back to /proc/PID/stat ticks.  None if gone."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    ok = False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
                ok = True
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    if ok:
        return total
    st = proc_stat(pid)
    if st is None:
        return None
    return st[1] * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def all_procs():
    """{pid: (ppid, pgrp)} for every visible process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st is not None:
                out[int(d)] = (st[2], st[3])
    return out


def descendants(root):
    procs = all_procs()
    kids = {}
    for pid, (ppid, _pg) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, ()):
            out.append(c)
            todo.append(c)
    return out


def uss_kib(pid):
    tot = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                tot += int(line.split()[1])
    return tot


def self_cpu_ns():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return int((r.ru_utime + r.ru_stime) * 1e9)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def kill_descendants(grace=1.0, spare_trackers=True):
    """Last-resort sweep: SIGTERM then SIGKILL every process below us.
    multiprocessing's / loky's resource trackers are spared by default: they
    exit by themselves when we exit (EOF on their pipe), and the driver
    kills whatever is left in our process group after that."""
    me = os.getpid()
    pids = [p for p in descendants(me)
            if not (spare_trackers and "resource_tracker" in _cmdline(p))]
    if not pids:
        return
    log(f"cleanup: terminating {len(pids)} leftover process(es): {pids}")
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap_children()
        if not [p for p in pids if proc_stat(p) is not None
                and proc_stat(p)[0] != "Z"]:
            break
        time.sleep(0.02)
    for p in pids:
        st = proc_stat(p)
        if st is not None and st[0] != "Z":
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.05)
    _reap_children()


def _reap_children():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
