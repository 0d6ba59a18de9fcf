"""The Node.js builds bench/offload runs its Node peers on (issue 16).

Issue 16 compares ppx with Debian's nodejs doing the same OpenSSL work.
Debian builds Node against the system's shared libcrypto, the very file
ppx's server links; other builds (nodejs.org's, NodeSource's) carry an
OpenSSL of their own, compiled with other flags, and a scrypt there is a
different piece of machine code. So:

- when /usr/bin/node links the same libcrypto as ppx's server, it is the
  one build, and its rows are node_threadpool and node_piscina;
- otherwise bench/offload/run unpacks Debian's nodejs next to the machine's
  (DEBIAN_NODE, DEBIAN_NODE_LIBS: see run's debian_node), whose rows are
  node_threadpool and node_piscina, and the machine's /usr/bin/node runs
  too, as node_machine_threadpool and node_machine_piscina: reported, but
  not the comparison the issue asks for.

Each build is checked, not assumed: which libcrypto file the dynamic linker
resolves for it (ldd) against the one ppx's server resolves.
"""
import os
import subprocess

MACHINE_NODE = "/usr/bin/node"


def libcrypto(binary, env=None):
    """The real path of the libcrypto the dynamic linker gives binary, or
    None (statically linked, or no such library)."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30,
                             env={**os.environ, **(env or {})}).stdout
    except OSError:
        return None
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" => ")
        if name.startswith("libcrypto.so") and rest.startswith("/"):
            return os.path.realpath(rest.split(" (")[0])
    return None


def _describe(prefix, node, env, reference):
    def ask(expr):
        return subprocess.run([node, "-p", expr], capture_output=True, text=True, check=True,
                              env={**os.environ, **env}, timeout=30).stdout.strip()

    crypto = libcrypto(node, env)
    return {"prefix": prefix, "node": node, "env": env, "version": ask("process.version"),
            "openssl": ask("process.versions.openssl"), "libcrypto": crypto,
            "same_libcrypto": crypto is not None and crypto == reference}


def builds(ppx_server):
    """[build], Debian's first: {prefix, node, env, version, openssl,
    libcrypto, same_libcrypto}. ppx_server is the binary whose libcrypto
    is the reference. Raises RuntimeError when no build does the same
    OpenSSL work as ppx's server."""
    reference = libcrypto(ppx_server)
    machine = _describe("node", MACHINE_NODE, {}, reference)
    if machine["same_libcrypto"]:
        return [machine]
    debian = os.environ.get("DEBIAN_NODE")
    if not debian:
        raise RuntimeError(
            f"{MACHINE_NODE} ({machine['version']}) does not link ppx's libcrypto "
            f"({reference}) and DEBIAN_NODE is not set: bench/offload/run unpacks "
            f"Debian's nodejs and sets it")
    libs = os.environ.get("DEBIAN_NODE_LIBS", "")
    deb = _describe("node", debian, {"LD_LIBRARY_PATH": libs} if libs else {}, reference)
    if not deb["same_libcrypto"]:
        raise RuntimeError(f"{debian} links {deb['libcrypto']}, not ppx's {reference}")
    machine["prefix"] = "node_machine"
    return [deb, machine]


def label(b):
    """How a table names a build: version, OpenSSL, whose."""
    whose = ("the system's libcrypto, as ppx" if b["same_libcrypto"]
             else "its own bundled OpenSSL")
    return f"Node {b['version']} ({b['node']}), OpenSSL {b['openssl']}: {whose}"
