"""bench/offload/run's shootout (issue 16): the same scrypt service served by
ppx's examples/offload_server and by its peers (node_threadpool.js and
node_piscina.js on each Node.js build nodes.py finds, aiohttp_server.py),
each started here, checked, loaded with wrk and crashed. Run with Debian's /usr/bin/python3 (its hashlib is the
reference every /hash must match byte for byte).

    shootout.py OUT.jsonl --workers W --duration S [--rounds R]
                [--servers a,b,...]

Writes one JSON line per server (and a first line with the machine and the
versions). Environment: PPX_SERVER (ppx's server command, default
build-bench/examples/offload_server), PPX_VARIANTS ("name=extra args;..."
to run ppx several times with different options, default "ppx="),
PING_DELAY_MS (pause between two /ping of a connection, default 10).
Every server is started as COMMAND --port 0 --workers W and must print
"listening on HOST:PORT". Exits 1, loudly, when a /hash body differs from
hashlib's; a ppx server without /hash or /crash (404) has those results
marked missing instead.
"""
import argparse
import hashlib
import http.client
import json
import math
import os
import platform
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import nodes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYTHON = "/usr/bin/python3"
# The load: scrypt's interactive-login parameters (16 MiB, tens of ms).
LOAD = {"password": "correct horse battery staple", "salt": "NaCl-salt", "N": 16384,
        "r": 8, "p": 1}
CRASH_GIVE_UP_S = 10.0
CRASH_POLL_S = 0.010


class Missing(Exception):
    """The server has no such route (ppx's example before /hash, /crash)."""


def query(params):
    """Every byte percent-encoded but unreserved ones: '+' never appears
    literally, so servers need not agree on form-decoding."""
    return "&".join(f"{k}={urllib.parse.quote(v if isinstance(v, bytes) else str(v), safe='')}"
                    for k, v in params.items())


def get(port, path, timeout):
    """(status, content type, body bytes); raises OSError and
    http.client errors when the server does not answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


class Server:
    """One server process (its own session, so its children can be found
    and, if it dies, killed with it) on an ephemeral port."""

    def __init__(self, name, argv, env, workers, tmp):
        self.name, self.argv, self.env = name, argv, env
        self.workers, self.tmp = workers, tmp
        self.proc = None

    def start(self):
        out = os.path.join(self.tmp, f"{self.name}.stdout")
        err = open(os.path.join(self.tmp, f"{self.name}.stderr"), "ab")
        argv = self.argv + ["--port", "0", "--workers", str(self.workers)]
        with open(out, "wb") as stdout:
            self.proc = subprocess.Popen(argv, stdout=stdout, stderr=err, cwd=ROOT,
                                         env={**os.environ, **self.env},
                                         start_new_session=True)
        err.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(out) as f:
                lines = [l for l in f if l.startswith("listening on ") and l.endswith("\n")]
            if lines:
                self.port = int(lines[0].strip().rsplit(":", 1)[1])
                if self.answers_ping():
                    return
            time.sleep(0.05)
        self.stop()
        sys.exit(f"shootout: {self.name} did not start ({' '.join(argv)}):\n"
                 + self.stderr())

    def answers_ping(self, timeout=1.0):
        try:
            return get(self.port, "/ping", timeout)[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def stderr(self):
        with open(os.path.join(self.tmp, f"{self.name}.stderr"), errors="replace") as f:
            return f.read()[-2000:]

    def stop(self):
        """SIGTERM, then SIGKILL to the whole session (orphans of a server
        that died included). The exit status, or None if it was killed."""
        if self.proc is None:
            return None
        status = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                status = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        else:
            status = self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        return status


def children(pid):
    """pid's children, from each of its threads' children list (a child is
    listed under the thread that forked it)."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return out


def tree(root):
    """root and its descendants. Walked down from root, not found by
    scanning all of /proc: the samplers run this 20 times a second beside
    the server they measure, and a scan of every process cost them a
    third of a CPU."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children(pid))
    return pids


def status_kib(pids, field, source="status"):
    """The sum of a /proc/PID/status field (VmRSS, VmHWM) over pids, KiB;
    with source "smaps_rollup", of its Pss (shared pages divided among the
    processes mapping them: forked workers and shared rings counted once)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{source}") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    """The process tree's summed VmRSS and Pss every 50 ms while active,
    keeping the peaks. Active from the start unless told otherwise: the
    shootout samples a server only while it is the one loaded, so that
    the samplers of idle servers take no CPU from the loaded one."""

    def __init__(self, root, active=True):
        super().__init__(daemon=True)
        self.root, self.done, self.active = root, threading.Event(), threading.Event()
        self.peak_kib = self.peak_pss_kib = 0
        if active:
            self.active.set()

    def run(self):
        while not self.done.is_set():
            if not self.active.wait(0.05):
                continue
            pids = tree(self.root)
            self.peak_kib = max(self.peak_kib, status_kib(pids, "VmRSS"))
            self.peak_pss_kib = max(self.peak_pss_kib,
                                    status_kib(pids, "Pss", "smaps_rollup"))
            self.done.wait(0.05)

    def finish(self):
        self.done.set()
        self.active.set()
        self.join()
        pids = tree(self.root)
        return {"processes": len(pids), "peak_rss_mib": self.peak_kib / 1024,
                "peak_pss_mib": self.peak_pss_kib / 1024,
                "hwm_sum_mib": status_kib(pids, "VmHWM") / 1024}


def hash_vectors():
    """(params, expected body) pairs: scrypt's RFC 7914 vector, the
    defaults, the smallest parameters, non-ASCII and 256-byte inputs."""
    cases = [
        {"password": "password", "salt": "NaCl", "N": 1024, "r": 8, "p": 16, "len": 64},
        {"password": "correct horse", "salt": "s\u00e9l \u2603"},
        {"password": "p", "salt": "s", "N": 2, "r": 1, "p": 1, "len": 1},
        {"password": bytes(range(1, 256)) + b"\xff", "salt": b"\xfe" * 256, "N": 256,
         "r": 2, "p": 3, "len": 17},
        {"password": "a&b=c%d+e", "salt": "?#/", "N": 32768, "r": 16, "p": 2, "len": 48},
        dict(LOAD),
    ]
    out = []
    for c in cases:
        pw, salt = (v.encode() if isinstance(v, str) else v for v in (c["password"], c["salt"]))
        n, r, p, dklen = c.get("N", 16384), c.get("r", 8), c.get("p", 1), c.get("len", 32)
        key = hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, dklen=dklen,
                             maxmem=128 * n * r + 128 * r * p + (1 << 20)).hex()
        out.append((c, f'{{"hash":"{key}","N":{n},"r":{r},"p":{p}}}'.encode()))
    return out


# Queries sent as they are: '+' is a space and names are percent-decoded
# too (form encoding), in every server alike. (query, password, salt).
RAW = [
    ("password=a+b&salt=c%2Bd+e&N=1024&r=1&len=16", b"a b", b"c+d e"),
    ("pass%77ord=x+&s%61lt=+y+z&N=1024&r=1&len=16", b"x ", b" y z"),
]


def raw_vectors():
    """(query, expected body) pairs for RAW."""
    out = []
    for q, pw, salt in RAW:
        key = hashlib.scrypt(pw, salt=salt, n=1024, r=1, p=1, dklen=16).hex()
        out.append((q, f'{{"hash":"{key}","N":1024,"r":1,"p":1}}'.encode()))
    return out


REJECTED = [  # each must be a 400 with a JSON {"error": ...}
    {"salt": "s"}, {"password": "p"}, {"password": "", "salt": "s"},
    {"password": "p" * 257, "salt": "s"}, {"password": "p", "salt": "s", "N": 3},
    {"password": "p", "salt": "s", "N": 1}, {"password": "p", "salt": "s", "N": 2097152},
    {"password": "p", "salt": "s", "N": "-2"}, {"password": "p", "salt": "s", "N": "16384x"},
    {"password": "p", "salt": "s", "N": 1048576, "r": 1},
    {"password": "p", "salt": "s", "r": 0}, {"password": "p", "salt": "s", "r": 33},
    {"password": "p", "salt": "s", "p": 17}, {"password": "p", "salt": "s", "len": 65},
    {"password": "p", "salt": "s", "len": 0},
    {"password": "p", "salt": "s", "N": "99999999999999999999"},
]


def shown(params):
    text = repr(params)
    return text if len(text) <= 120 else text[:117] + "..."


def check_hashes(srv):
    """Byte-identical /hash bodies and 400s; raises Missing on a 404 and
    exits loudly on any difference."""
    problems, vectors = [], hash_vectors()
    for params, want in vectors:
        status, ctype, body = get(srv.port, "/hash?" + query(params), 30)
        if status == 404:
            raise Missing("/hash answered 404")
        if status != 200 or body != want or not ctype.startswith("application/json"):
            problems.append(f"{shown(params)}: {status} {ctype!r} {body[:200]!r}, want 200 {want!r}")
    for q, want in raw_vectors():
        status, _, body = get(srv.port, "/hash?" + q, 30)
        if status != 200 or body != want:
            problems.append(f"{q}: {status} {body[:200]!r}, want 200 {want!r}")
    for params in REJECTED:
        status, _, body = get(srv.port, "/hash?" + query(params), 30)
        try:
            ok = status == 400 and "error" in json.loads(body)
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"{shown(params)}: {status} {body[:200]!r}, want 400 {{\"error\":...}}")
    if problems:
        sys.exit(f"shootout: {srv.name}'s /hash differs from hashlib.scrypt:\n  "
                 + "\n  ".join(problems))
    return {"identical": len(vectors) + len(RAW), "rejected": len(REJECTED)}


def wrk_result(path):
    """wrk's RESULT line (ping.lua, work.lua) with its HIST line as
    "hist": [[microseconds, count], ...]."""
    result = hist = None
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            elif line.startswith("HIST"):
                pairs = line[len("HIST"):].strip()
                hist = [[int(x) for x in pair.split(":")]
                        for pair in pairs.split(",")] if pairs else []
    if result is None or hist is None:
        raise RuntimeError(f"no RESULT or HIST line in {path}")
    result["hist"] = hist
    return result


def percentile(hist, p):
    """wrk's own rule (stats_percentile): the smallest latency whose
    cumulative count reaches round(p% of all + 0.5)."""
    total = sum(c for _, c in hist)
    rank, seen = math.floor(p / 100 * total + 0.5 + 0.5), 0
    for us, count in sorted(hist):
        seen += count
        if seen >= rank:
            return us
    return 0


def merged(results):
    """Several wrk runs of one kind as one: counts and durations summed,
    percentiles of the merged latency distribution."""
    counts = {}
    for r in results:
        for us, c in r["hist"]:
            counts[us] = counts.get(us, 0) + c
    hist = list(counts.items())
    return {"runs": len(results), "requests": sum(r["requests"] for r in results),
            "duration_us": sum(r["duration_us"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "p50_us": percentile(hist, 50), "p90_us": percentile(hist, 90),
            "p99_us": percentile(hist, 99), "max_us": max((us for us, _ in hist), default=0)}


# The machine's own stalls: stall_probe (C, bench/offload/stall_probe.c)
# at /ping's priority, one pinned to each CPU, sleeps 5 ms at a time and
# records how late it wakes. On the shared VM it wakes 50-350 ms late now
# and then whatever runs (a nice -20 spinner sees the same gaps): a /ping
# that waits through one measures the host, not the server. Started, and
# ready, before a slice's load, so that its own start-up (an exec) falls
# outside what is measured. Used here and by flood.py.
STALL_PROBE = os.environ.get("STALL_PROBE", os.path.join(ROOT, "build-bench", "bench",
                                                        "stall_probe"))
# A slice in which a probe (one per CPU: start_probes) woke this late is
# run again (three times at most), for whichever server: a stall of the
# machine in one slice out of three would otherwise set that server's
# /ping p99 alone. On the 2-vCPU VM the stalls come under full load, ~100
# ms long (the host's CPU quota, most likely), on every stack alike.
STALL_RERUN_MS = 30.0
STALL_RERUNS = 3


def saturate(srv, seconds, tmp, tag):
    """One slice: /hash from 4 x W connections back to back for seconds + 2
    and, from its second second on, a light /ping stream for seconds, with
    the stall probe beside it. (hash result, ping result, probe result)."""
    base = f"http://127.0.0.1:{srv.port}"
    hash_out = os.path.join(tmp, f"{srv.name}.{tag}.hash")
    ping_out = os.path.join(tmp, f"{srv.name}.{tag}.ping")
    # The /ping client at a higher priority where we may (root), for
    # every server alike: on 2 CPUs shared by the /hash load, the server
    # and two wrk processes, a /ping client left at nice 0 waits for a
    # CPU itself, and that wait, not the server's, set every p99.
    root = os.geteuid() == 0
    boost = ["nice", "-n", "-10"] if root else []
    probes = start_probes(-10 if root else 0, seconds, delay_s=1)
    with open(hash_out, "w") as hf:
        hw = subprocess.Popen(["wrk", "-t1", f"-c{4 * srv.workers}", f"-d{seconds + 2}s",
                               "--timeout", "10s", "-s", os.path.join(HERE, "work.lua"),
                               f"{base}/hash?{query(LOAD)}"], stdout=hf)
    time.sleep(1)
    with open(ping_out, "w") as pf:
        subprocess.run(boost + ["wrk", "-t1", "-c2", f"-d{seconds}s", "--timeout", "10s",
                        "-s", os.path.join(HERE, "ping.lua"), f"{base}/ping"],
                       stdout=pf, check=True)
    stalls = finish_probes(probes)
    hw.wait()
    return wrk_result(hash_out), wrk_result(ping_out), stalls


def start_probes(nice, seconds, delay_s=0):
    """One stall_probe per CPU, pinned there (the host stalls one vCPU at
    a time too, and a single probe sees only its own), at nice where
    allowed, measuring for seconds after delay_s; returns once all are
    running."""
    if not os.access(STALL_PROBE, os.X_OK):
        raise SystemExit(f"shootout: {STALL_PROBE} is missing (bench/offload/run builds it)")
    probes = [subprocess.Popen([STALL_PROBE, str(seconds), str(cpu), str(nice), str(delay_s)],
                               stdout=subprocess.PIPE, text=True)
              for cpu in sorted(os.sched_getaffinity(0))]
    for p in probes:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"shootout: {STALL_PROBE} did not start")
    return probes


def finish_probes(probes):
    """The probes' results as one: the latest wake-up and the count of
    late ones over every CPU."""
    rs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in probes]
    return {"max_late_ms": max(r["max_late_ms"] for r in rs),
            "late_over_20ms": sum(r["late_over_20ms"] for r in rs),
            "per_cpu_max_ms": [round(r["max_late_ms"], 1) for r in rs]}


def saturate_steady(srv, seconds, tmp, tag):
    """saturate, again while the probe saw the machine stall (at most
    STALL_RERUNS more times): (hash, ping, the stalls of the slices
    dropped, the kept slice's probe)."""
    dropped = []
    for attempt in range(STALL_RERUNS + 1):
        h, p, stalls = saturate(srv, seconds, tmp, f"{tag}.{attempt}")
        if stalls["max_late_ms"] <= STALL_RERUN_MS or attempt == STALL_RERUNS:
            return h, p, dropped, stalls
        print(f"   {srv.name}: the machine stalled {stalls['max_late_ms']:.0f} ms in this "
              f"slice; running it again", file=sys.stderr)
        dropped.append(round(stalls["max_late_ms"], 1))


def load_rounds(srvs, duration, rounds, tmp):
    """Every server saturated in turn, rounds times, the order rotated
    each round, so that the shared machine's slow and fast minutes fall on
    all of them alike; each tree's RSS sampled while it is loaded (an idle
    server's memory does not grow). name -> load."""
    slice_s = max(1, round(duration / rounds))
    samplers = {name: RssSampler(srv.proc.pid, active=False) for name, srv in srvs.items()}
    for sampler in samplers.values():
        sampler.start()
    runs = {name: [] for name in srvs}
    names = list(srvs)
    for rnd in range(rounds):
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            print(f"   round {rnd + 1}/{rounds}: {name}", file=sys.stderr)
            samplers[name].active.set()
            runs[name].append(saturate_steady(srvs[name], slice_s, tmp, rnd))
            samplers[name].active.clear()
    return {name: {"connections": 4 * srvs[name].workers, "rounds": rounds,
                   "slice_s": slice_s,
                   "hash": merged([r[0] for r in runs[name]]),
                   "ping": merged([r[1] for r in runs[name]]),
                   "stalls_dropped_ms": [ms for r in runs[name] for ms in r[2]],
                   "stall_kept_max_ms": max(r[3]["max_late_ms"] for r in runs[name]),
                   "rss": samplers[name].finish()}
            for name in srvs}


def try_get(port, path, timeout):
    try:
        return get(port, path, timeout)
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__, b""


def crash(srv):
    """One /crash on a server that has just served a /hash, then /ping every
    10 ms and, once it answers, /hash until one succeeds (up to 10 s)."""
    hash_path = "/hash?" + query(LOAD)
    if try_get(srv.port, hash_path, 30)[0] != 200:
        raise Missing("/hash does not answer 200 before the crash")
    t0 = time.monotonic()
    status, ctype, body = try_get(srv.port, "/crash", CRASH_GIVE_UP_S)
    if status == 404:
        raise Missing("/crash answered 404")
    r = {"crash_status": status, "crash_answer": body[:300].decode("utf-8", "replace")
         if status else ctype, "crash_answer_ms": (time.monotonic() - t0) * 1e3,
         "first_ping_ms": None, "first_hash_ms": None, "pings_ok": 0, "pings_failed": 0,
         "hash_statuses": {}}
    while time.monotonic() - t0 < CRASH_GIVE_UP_S:
        if srv.answers_ping(timeout=0.5):
            r["pings_ok"] += 1
            if r["first_ping_ms"] is None:
                r["first_ping_ms"] = (time.monotonic() - t0) * 1e3
            st = try_get(srv.port, hash_path, 2)[0]
            r["hash_statuses"][str(st)] = r["hash_statuses"].get(str(st), 0) + 1
            if st == 200:
                r["first_hash_ms"] = (time.monotonic() - t0) * 1e3
                break
        else:
            r["pings_failed"] += 1
        time.sleep(CRASH_POLL_S)
    code = srv.proc.poll()
    r["alive"] = code is None
    r["exit"] = None if code is None else (
        signal.Signals(-code).name if code < 0 else f"status {code}")
    r["kept_serving"] = r["first_hash_ms"] is not None
    return r


def ppx_command():
    return shlex.split(os.environ.get("PPX_SERVER", "build-bench/examples/offload_server"))


def servers(workers, node_builds):
    """name -> (argv, extra environment), in the table's order: ppx's
    variants, each Node.js build's two servers (nodes.py), aiohttp."""
    out = {}
    for variant in os.environ.get("PPX_VARIANTS", "ppx=").split(";"):
        name, _, extra = variant.strip().partition("=")
        if name:
            out[name] = (ppx_command() + shlex.split(extra), {})
    for b in node_builds:
        out[f"{b['prefix']}_threadpool"] = (
            [b["node"], os.path.join(HERE, "node_threadpool.js")],
            {**b["env"], "UV_THREADPOOL_SIZE": str(workers)})
        out[f"{b['prefix']}_piscina"] = ([b["node"], os.path.join(HERE, "node_piscina.js")],
                                         dict(b["env"]))
    out["aiohttp"] = ([PYTHON, os.path.join(HERE, "aiohttp_server.py")], {})
    return out


def output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        return None


def machine(node_builds):
    """What the figures depend on: the CPUs and every stack's version."""
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    try:
        with open(os.path.join(HERE, "node_modules/piscina/package.json")) as f:
            piscina = json.load(f)["version"]
    except OSError:
        piscina = None
    return {"kind": "machine", "cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "nodes": [{k: b[k] for k in ("prefix", "node", "version", "openssl", "libcrypto",
                                         "same_libcrypto")} for b in node_builds],
            "python": platform.python_version(), "python_openssl": ssl.OPENSSL_VERSION,
            "aiohttp": output([PYTHON, "-c", "import aiohttp; print(aiohttp.__version__)"]),
            "piscina": piscina, "openssl": output(["openssl", "version"]),
            "wrk": (output(["sh", "-c", "wrk -v 2>&1 | head -1"]) or "").split(" [")[0],
            "date": time.strftime("%Y-%m-%d", time.gmtime())}


def shoot(table, names, a, tmp):
    """Every server started and checked, then loaded in rounds while all
    run; then each, fresh, crashed. One row per server."""
    rows, srvs = {}, {}
    try:
        for name in names:
            argv, env = table[name]
            row = rows[name] = {"kind": "server", "server": name, "command": " ".join(argv),
                                "workers": a.workers, "missing": []}
            print(f"== {name}: {row['command']}", file=sys.stderr)
            srv = Server(name, argv, env, a.workers, tmp)
            srvs[name] = srv
            srv.start()
            row["idle_rss_mib"] = status_kib(tree(srv.proc.pid), "VmRSS") / 1024
            try:
                row["hash_check"] = check_hashes(srv)
            except Missing as e:
                row["missing"] += ["hash_check", "load"]
                print(f"   {name}: {e}: /hash results marked missing", file=sys.stderr)
        loaded = {n: s for n, s in srvs.items() if "load" not in rows[n]["missing"]}
        for name, load in load_rounds(loaded, a.duration, a.rounds, tmp).items():
            rows[name]["load"] = load
    finally:
        for name, srv in srvs.items():
            rows[name]["exit_after_load"] = srv.stop()
    for name in names:
        srv = Server(name, *table[name], a.workers, tmp)
        try:
            srv.start()
            rows[name]["crash"] = crash(srv)
        except Missing as e:
            rows[name]["missing"].append("crash")
            print(f"   {name}: {e}: /crash results marked missing", file=sys.stderr)
        finally:
            srv.stop()
    return [rows[name] for name in names]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3,
                    help="slices each server's load is cut into (default 3)")
    ap.add_argument("--servers", help="a comma-separated subset, in any order")
    a = ap.parse_args()
    try:
        ppx = ppx_command()[0]
        ppx = shutil.which(ppx if os.path.isabs(ppx) else os.path.join(ROOT, ppx)) or ppx
        node_builds = nodes.builds(ppx)
    except RuntimeError as e:
        sys.exit(f"shootout: {e}")
    table = servers(a.workers, node_builds)
    names = a.servers.split(",") if a.servers else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"shootout: unknown servers {unknown}; known: {list(table)}")
    with tempfile.TemporaryDirectory() as tmp, open(a.out, "w") as out:
        out.write(json.dumps(machine(node_builds)) + "\n")
        for row in shoot(table, names, a, tmp):
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
