"""Adapters: one object per live pool/executor, the same calls for each
impl; and finding loky."""
import asyncio
import concurrent.futures
import multiprocessing
import os
import sys
import time

from pypeers.common import DEBIAN_DIST, ERR_FAIL_AFTER_S, ERR_LOOP_S
from pypeers.procfs import all_procs
from pypeers.work import cpu_for, fail_after, noop

class ExecutorAdapter:
    """ProcessPoolExecutor or loky executor, driven from asyncio."""

    def __init__(self, kind, nworkers):
        self.kind = kind
        self.loop = asyncio.get_running_loop()
        if kind == "py_ppe_asyncio":
            self.ex = concurrent.futures.ProcessPoolExecutor(
                max_workers=nworkers)
        else:
            self.ex = LOKY.get_reusable_executor(max_workers=nworkers)

    async def call(self, fn, *args):
        return await self.loop.run_in_executor(self.ex, fn, *args)

    async def many(self, fn, n, *args):
        loop, ex = self.loop, self.ex
        futs = [loop.run_in_executor(ex, fn, *args) for _ in range(n)]
        return await asyncio.gather(*futs)

    def batch(self, n):
        return list(self.ex.map(noop, range(n), chunksize=1000))

    async def sleep(self, s):
        await asyncio.sleep(s)

    async def error_race(self):
        """Returns perf_counter() at which the error reached the caller."""
        loop, ex = self.loop, self.ex
        futs = [loop.run_in_executor(ex, fail_after, ERR_FAIL_AFTER_S)]
        futs += [loop.run_in_executor(ex, cpu_for, ERR_LOOP_S)
                 for _ in range(2)]
        self._pending = futs
        try:
            await asyncio.gather(*futs)
        except ValueError:
            return time.perf_counter()
        raise RuntimeError("expected ValueError from gather")

    def worker_pids(self):
        procs = getattr(self.ex, "_processes", None) or {}
        pids = [p.pid for p in list(procs.values()) if p.pid]
        return pids or _children_fallback()

    def close(self, kill=False):
        ex, self.ex = self.ex, None
        if ex is None:
            return
        procs = list((getattr(ex, "_processes", None) or {}).values())
        if kill:
            if self.kind == "py_loky":
                ex.shutdown(wait=False, kill_workers=True)
            else:
                ex.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                try:
                    p.terminate()
                except Exception:
                    pass
            for p in procs:
                p.join(timeout=3)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=3)
            if self.kind == "py_ppe_asyncio":
                # manager thread notices the dead workers and exits
                t = getattr(ex, "_executor_manager_thread", None)
                if t is not None:
                    t.join(timeout=3)
        else:
            ex.shutdown(wait=True)
            for p in procs:
                p.join(timeout=3)


class MpPoolAdapter:
    """multiprocessing.Pool, plain blocking calls (no event loop involved)."""

    kind = "py_mp_pool"

    def __init__(self, kind, nworkers):
        self.pool = multiprocessing.Pool(nworkers)

    async def call(self, fn, *args):
        return self.pool.apply(fn, args)

    async def many(self, fn, n, *args):
        apply_async = self.pool.apply_async
        rs = [apply_async(fn, args) for _ in range(n)]
        return [r.get() for r in rs]

    def batch(self, n):
        return self.pool.map(noop, range(n), chunksize=1000)

    async def sleep(self, s):
        time.sleep(s)

    async def error_race(self):
        rf = self.pool.apply_async(fail_after, (ERR_FAIL_AFTER_S,))
        self._pending = [self.pool.apply_async(cpu_for, (ERR_LOOP_S,))
                         for _ in range(2)]
        # "gather": collect results in submission order, failing call first
        try:
            rf.get()
            for r in self._pending:
                r.get()
        except ValueError:
            return time.perf_counter()
        raise RuntimeError("expected ValueError from the pool")

    def worker_pids(self):
        pids = [p.pid for p in list(getattr(self.pool, "_pool", [])) if p.pid]
        return pids or _children_fallback()

    def close(self, kill=False):
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if kill:
            pool.terminate()
        else:
            pool.close()
        pool.join()


def _children_fallback():
    me = os.getpid()
    return [p for p, (pp, _g) in all_procs().items() if pp == me]


def adapter_class(impl):
    return MpPoolAdapter if impl == "py_mp_pool" else ExecutorAdapter


LOKY = None  # module providing get_reusable_executor, set in the loky child


def import_loky():
    """Import loky (standalone or joblib's vendored copy).  Falls back to
    Debian's dist-packages (python3-joblib) when this interpreter (e.g. a
    pyenv build) does not have it on sys.path."""
    global LOKY
    errs = []
    for mod in ("loky", "joblib.externals.loky"):
        try:
            LOKY = __import__(mod, fromlist=["get_reusable_executor"])
            return mod
        except ImportError as e:
            errs.append(f"{mod}: {e}")
    if os.path.isdir(os.path.join(DEBIAN_DIST, "joblib")) and \
            DEBIAN_DIST not in sys.path:
        sys.path.append(DEBIAN_DIST)
        # loky workers are fresh interpreters started with
        # `-m joblib.externals.loky...`: they need the path before they
        # receive our sys.path in the preparation data.
        pp = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = (pp + os.pathsep if pp else "") + DEBIAN_DIST
        for mod in ("loky", "joblib.externals.loky"):
            try:
                LOKY = __import__(mod, fromlist=["get_reusable_executor"])
                return mod + f" (from {DEBIAN_DIST})"
            except ImportError as e:
                errs.append(f"{mod} via {DEBIAN_DIST}: {e}")
    raise ImportError("; ".join(errs))


def loky_available():
    """Cheap check for the driver (does not import joblib/numpy)."""
    import importlib.util
    for mod in ("loky", "joblib"):
        try:
            if importlib.util.find_spec(mod) is not None:
                return True
        except (ImportError, ValueError):
            pass
    return os.path.isdir(os.path.join(DEBIAN_DIST, "joblib", "externals",
                                      "loky"))
