"""The shootout's Python peer (bench/offload/run): aiohttp on asyncio, with
/hash's hashlib.scrypt run by loop.run_in_executor on a
concurrent.futures.ProcessPoolExecutor of W processes.

    /usr/bin/python3 aiohttp_server.py --port 0 --workers W

Needs Debian's python3-aiohttp. Prints "listening on 127.0.0.1:PORT" once it
accepts. The service (routes, bounds, byte-exact bodies) is the contract in
bench/offload/README.md, the same in every peer; each peer is one file, so
the parsing is repeated.

/crash: the executor job sends its own process SIGSEGV, what a native crash
in the job does. The pool notices the dead process and becomes broken:
the crashing request and every later /hash fail at once with
BrokenProcessPool (500 here), while /ping, on the loop, keeps answering.
The executor never recovers; a user would have to build a new one.

The pool's processes are forked from the loop's process after it set its
SIGINT/SIGTERM handlers (as aiohttp's run_app does too), so they inherit
the wakeup fd those handlers write to: when a broken pool terminates its
surviving processes, their SIGTERM would reach the parent's loop and stop
the server. worker_init undoes that inheritance in each process.
"""
import argparse
import asyncio
import concurrent.futures
import hashlib
import os
import re
import signal

from aiohttp import web

INTS = (("N", 16384, 2, 1048576), ("r", 8, 1, 32), ("p", 1, 1, 16), ("len", 32, 1, 64))
HEX2 = re.compile(rb"%([0-9A-Fa-f]{2})")


def percent_decode(raw):
    """The bytes of raw with every %XX decoded and '+' a space (form
    encoding, as aiohttp's request.query, URLSearchParams and ppx's server
    read it), or None if an escape is malformed."""
    if raw.count(b"%") != len(HEX2.findall(raw)):
        return None
    return HEX2.sub(lambda m: bytes([int(m.group(1), 16)]), raw.replace(b"+", b" "))


def parse_hash_query(query):
    """(params, None) or (None, message). Integers are plain decimal digits;
    every bound is checked before any work."""
    raw = {}
    for part in query.split(b"&") if query else ():
        key, _, value = part.partition(b"=")
        key = percent_decode(key)  # names are decoded too
        if key is None:
            continue  # matches nothing
        key = key.decode("latin-1")
        if key in raw:
            continue
        value = percent_decode(value)
        if value is None:
            return None, f"{key}: malformed percent-encoding"
        raw[key] = value
    p = {}
    for key in ("password", "salt"):
        if not 1 <= len(raw.get(key, b"")) <= 256:
            return None, f"{key} must be 1..256 bytes"
        p[key] = raw[key]
    for key, default, lo, hi in INTS:
        if key not in raw:
            p[key] = default
            continue
        s = raw[key]
        if not re.fullmatch(rb"[0-9]{1,8}", s) or not lo <= int(s) <= hi:
            return None, f"{key} must be an integer in [{lo},{hi}]"
        p[key] = int(s)
    if p["N"] & (p["N"] - 1):
        return None, "N must be a power of two"
    if 128 * p["N"] * p["r"] > 67108864:
        return None, "128*N*r must be at most 67108864"
    return p, None


def scrypt_hex(password, salt, n, r, p, dklen):
    """The executor job. ValueError when OpenSSL refuses the parameters."""
    maxmem = 128 * n * r + 128 * r * p + (1 << 20)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem,
                          dklen=dklen).hex()


def crash():
    """The executor job of /crash: the process dies as from a native bug."""
    os.kill(os.getpid(), signal.SIGSEGV)


def worker_init():
    """Each pool process: default signal handling, and no wakeup fd shared
    with the parent's loop (see the top of the file)."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def error(status, message):
    return web.json_response({"error": message}, status=status)


async def ping(request):
    return web.Response(text="pong")


async def hash_route(request):
    _, _, query = request.raw_path.encode("latin-1").partition(b"?")
    p, message = parse_hash_query(query)
    if message:
        return error(400, message)
    loop = asyncio.get_running_loop()
    try:
        key = await loop.run_in_executor(
            request.app["pool"], scrypt_hex, p["password"], p["salt"], p["N"], p["r"],
            p["p"], p["len"])
    except ValueError as e:
        return error(400, f"scrypt: {e}")
    except Exception as e:  # BrokenProcessPool once a worker has died
        return error(500, f"{type(e).__name__}: {e}")
    body = f'{{"hash":"{key}","N":{p["N"]},"r":{p["r"]},"p":{p["p"]}}}'
    return web.Response(body=body.encode(), content_type="application/json")


async def crash_route(request):
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(request.app["pool"], crash)
    except Exception as e:
        return error(500, f"{type(e).__name__}: {e}")
    return error(500, "the crash did not happen")


async def main(port, workers):
    app = web.Application()
    app["pool"] = concurrent.futures.ProcessPoolExecutor(max_workers=workers,
                                                      initializer=worker_init)
    app.router.add_get("/ping", ping)
    app.router.add_get("/hash", hash_route)
    app.router.add_get("/crash", crash_route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(f"listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    app["pool"].shutdown(cancel_futures=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    a = ap.parse_args()
    asyncio.run(main(a.port, a.workers))
