"""Metric groups.  Each opens its own pool(s) and always closes them."""
import gc
import os
import time

from pypeers.adapters import adapter_class
from pypeers.common import (ERR_LOOP_S, ERR_WORKERS, TPUT_BUDGET_S, TPUT_FULL,
                            TPUT_REDUCED, emit, log, pct)
from pypeers.procfs import descendants, proc_cpu_ns, proc_stat, self_cpu_ns, uss_kib
from pypeers.work import echo, noop, sleep_pid, spin

class Ctx:
    def __init__(self, impl, quick, wanted):
        self.impl = impl
        self.quick = quick
        self.wanted = wanted
        self.A = adapter_class(impl)
        self.live = []          # adapters to kill if something goes wrong

    def want(self, *metrics):
        return any(m in self.wanted for m in metrics)

    def out(self, metric, value):
        if metric in self.wanted:
            emit(metric, self.impl, value)

    async def open(self, n):
        a = self.A(self.impl, n)
        self.live.append(a)
        return a

    def close(self, a, kill=False):
        try:
            a.close(kill=kill)
        finally:
            if a in self.live:
                self.live.remove(a)

    def kill_all(self):
        for a in list(self.live):
            try:
                self.close(a, kill=True)
            except Exception as e:  # keep going; final sweep catches the rest
                log(f"cleanup of {self.impl} pool failed: {e!r}")


async def m_startup(c):
    gc.collect()
    t0 = time.perf_counter()
    a = await c.open(2)
    await a.call(noop)
    dt = time.perf_counter() - t0
    c.close(a)
    c.out("startup_ms", dt * 1e3)
    log(f"{c.impl} startup_ms={dt * 1e3:.1f}")


async def m_idle(c):
    a = await c.open(2)
    try:
        for _ in range(1000):
            await a.call(noop)
        pids = a.worker_pids()
        if c.want("idle_uss_kib"):
            await a.sleep(0.05)
            uss = [uss_kib(p) for p in pids]
            log(f"{c.impl} idle USS per worker (KiB): {uss} pids={pids}")
            c.out("idle_uss_kib", uss[0])
        if c.want("idle_cpu_ms"):
            await a.sleep(0.1)   # let the last call's bookkeeping settle
            pool_pids = descendants(os.getpid())  # workers + helpers
            b_self = self_cpu_ns()
            b = {p: proc_cpu_ns(p) for p in pool_pids}
            await a.sleep(1.0)
            e_self = self_cpu_ns()
            tot = e_self - b_self
            for p in pool_pids:
                e = proc_cpu_ns(p)
                if e is not None and b[p] is not None:
                    tot += e - b[p]
            log(f"{c.impl} idle_cpu: parent {(e_self - b_self) / 1e6:.2f} ms,"
                f" total {tot / 1e6:.2f} ms over {len(pool_pids)} processes")
            c.out("idle_cpu_ms", tot / 1e6)
    finally:
        c.close(a)


async def m_rtt(c):
    n = 2000 if c.quick else 20000
    warm = 200 if c.quick else 1000
    a = await c.open(2)
    try:
        for _ in range(warm):
            await a.call(noop)
        pc = time.perf_counter_ns
        lat = [0] * n
        for i in range(n):
            t0 = pc()
            await a.call(noop)
            lat[i] = pc() - t0
    finally:
        c.close(a)
    lat.sort()
    med, p99 = pct(lat, 50) / 1e3, pct(lat, 99) / 1e3
    log(f"{c.impl} rtt n={n}: median {med:.1f} us, p99 {p99:.1f} us")
    c.out("rtt_median_us", med)
    c.out("rtt_p99_us", p99)


async def m_tput_one(c):
    a = await c.open(2)
    try:
        probe = 2000 if c.quick else 5000
        t0 = time.perf_counter()
        await a.many(noop, probe)
        prate = probe / (time.perf_counter() - t0)
        if c.quick:
            n = 10000
        else:
            n = TPUT_FULL if TPUT_FULL / prate <= TPUT_BUDGET_S \
                else TPUT_REDUCED
        gc.collect()
        t0 = time.perf_counter()
        await a.many(noop, n)
        dt = time.perf_counter() - t0
    finally:
        c.close(a)
    note = "" if n == TPUT_FULL or c.quick else \
        f" (REDUCED from {TPUT_FULL}: 100000 projected to take " \
        f"{TPUT_FULL / prate:.0f} s)"
    log(f"{c.impl} tput_one_by_one: {n} calls in {dt:.2f} s = "
        f"{n / dt:.0f}/s{note}; probe {probe} calls: {prate:.0f}/s")
    c.out("tput_one_by_one", n / dt)


async def m_tput_batch(c):
    n = 10000 if c.quick else TPUT_FULL
    a = await c.open(2)
    try:
        a.batch(2000)  # warm-up
        gc.collect()
        t0 = time.perf_counter()
        res = a.batch(n)
        dt = time.perf_counter() - t0
        assert len(res) == n
    finally:
        c.close(a)
    log(f"{c.impl} tput_batch: {n} calls in {dt:.2f} s = {n / dt:.0f}/s")
    c.out("tput_batch", n / dt)


async def m_echo(c):
    sizes = [("echo_1KiB_MBps", 1 << 10, 500 if c.quick else 2000),
             ("echo_1MiB_MBps", 1 << 20, 50 if c.quick else 200),
             ("echo_64MiB_MBps", 64 << 20, 2 if c.quick else 5)]
    a = await c.open(2)
    try:
        for metric, size, calls in sizes:
            if not c.want(metric):
                continue
            data = os.urandom(size)
            r = await a.call(echo, data)           # warm-up
            if r != data:
                raise RuntimeError(f"{metric}: echo mismatch")
            del r
            t0 = time.perf_counter()
            for _ in range(calls):
                r = await a.call(echo, data)
                if len(r) != size:
                    raise RuntimeError(f"{metric}: echo returned {len(r)}")
                del r
            dt = time.perf_counter() - t0
            mbps = 2 * size * calls / dt / 1e6
            log(f"{c.impl} {metric}: {calls} x {size} B in {dt:.3f} s "
                f"= {mbps:.1f} MB/s")
            c.out(metric, mbps)
            del data
    finally:
        c.close(a)


async def warm_all(a, w):
    """Return once every one of the w workers has served a call."""
    seen = set()
    for _ in range(50):
        seen.update(await a.many(sleep_pid, w, 0.05))
        if len(seen) >= w:
            return
    log(f"warning: only {len(seen)} of {w} workers answered the warm-up")


def calibrate_spin(target=0.25):
    n = 100_000
    while True:
        t0 = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t0
        if dt >= 0.05:
            break
        n *= 4
    n = int(n * target / dt)
    best = min(_time(spin, n) for _ in range(2))
    n = int(n * target / best)
    return n, _time(spin, n)


def _time(fn, *a):
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


async def m_speedup(c):
    n, t = calibrate_spin()
    log(f"{c.impl} spin calibration: n={n} takes {t:.3f} s in the parent")
    # Each configuration is timed twice and the faster run kept: the VM's
    # CPU speed wobbles (neighbours), and one slow run would skew the ratio.
    times, runs = {}, {}
    for w in (1, 2):
        a = await c.open(w)
        try:
            await warm_all(a, w)
            runs[w] = []
            for _ in range(2):
                t0 = time.perf_counter()
                await a.many(spin, 4, n)
                runs[w].append(time.perf_counter() - t0)
            times[w] = min(runs[w])
        finally:
            c.close(a)
    sp = times[1] / times[2]
    log(f"{c.impl} speedup_2w: 1 worker {runs[1][0]:.3f}/{runs[1][1]:.3f} s,"
        f" 2 workers {runs[2][0]:.3f}/{runs[2][1]:.3f} s -> {sp:.2f}x"
        f" (min/min)")
    c.out("speedup_2w", sp)


async def m_error_stop(c):
    a = await c.open(ERR_WORKERS)
    killed = False
    try:
        # make sure every worker exists before the race
        await warm_all(a, ERR_WORKERS)
        pids = a.worker_pids()
        t_err = await a.error_race()
        t_start = t_err  # polling starts at once
        prev = {p: proc_cpu_ns(p) for p in pids}
        stopped_since = None
        confirm = 0
        value = -1.0
        while True:
            await a.sleep(0.005)
            now = time.perf_counter()
            all_stopped = True
            for p in pids:
                st = proc_stat(p)
                cpu = proc_cpu_ns(p)
                if st is None or cpu is None or st[0] in "ZX":
                    continue                      # gone
                grew = prev.get(p) is None or cpu != prev[p]
                prev[p] = cpu
                if st[0] == "R" or grew:
                    all_stopped = False
            if all_stopped:
                if stopped_since is None:
                    stopped_since = now
                confirm += 1
                if confirm >= 3:                  # 3 quiet polls in a row
                    value = (stopped_since - t_start) * 1e3
                    break
            else:
                stopped_since, confirm = None, 0
            if now - t_start > ERR_LOOP_S + 0.5:
                break
        if value > ERR_LOOP_S * 1e3:
            value = -1.0
        log(f"{c.impl} error_stop_ms: siblings stopped "
            f"{value:.1f} ms after the error reached the caller "
            f"({ERR_WORKERS} workers, pids {pids}; -1 = over 10 s)")
        c.out("error_stop_ms", value)
        # Do not wait for anything still running: cancel and kill.
        c.close(a, kill=True)
        killed = True
    finally:
        if not killed:
            c.close(a, kill=True)


GROUPS = [
    (("startup_ms",), m_startup),
    (("idle_uss_kib", "idle_cpu_ms"), m_idle),
    (("rtt_median_us", "rtt_p99_us"), m_rtt),
    (("tput_one_by_one",), m_tput_one),
    (("tput_batch",), m_tput_batch),
    (("echo_1KiB_MBps", "echo_1MiB_MBps", "echo_64MiB_MBps"), m_echo),
    (("speedup_2w",), m_speedup),
    (("error_stop_ms",), m_error_stop),
]
