#!/usr/bin/env python3
"""File-level call graph of the library, from its object files.

An edge A -> B means a function defined in A calls (or takes the address
of) a symbol defined in B. Prints every circle (a strongly connected set of
more than one file); with --edges, every edge. Usage:
    tools/callgraph.py BUILD_DIR [--edges]
"""
import glob
import os
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
    return defined, used


SOURCES = {}


def name_of(obj):
    """meson names an object after its source path with / made _: find
    the source it stands for (names may hold _ themselves)."""
    base = os.path.basename(obj)[: -len(".c.o")]
    return SOURCES.get(base, base)


def strongly_connected(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    # The library's objects: the core both libraries share, the shared
    # library's own (the MPI loader) and the MPI module's.
    objs = sorted(
        o
        for d in ("libppx_core.a.p", "libppx.so.*.p", "libppx-mpi-*.so.p")
        for o in glob.glob(os.path.join(build, d, "*.c.o"))
    )
    if not objs:
        sys.exit("no objects under %s/libppx_core.a.p: build first" % build)
    root = os.path.dirname(os.path.abspath(__file__)) + "/.."
    for src in glob.glob(os.path.join(root, "**", "*.c"), recursive=True):
        rel = os.path.relpath(src, root)[: -len(".c")]
        SOURCES[rel.replace("/", "_")] = rel
    info = {o: symbols(o) for o in objs}
    owner = {}
    for o, (defined, _) in info.items():
        for s in defined:
            owner[s] = o
    edges = {}
    for o, (_, used) in info.items():
        for s in used:
            if s in owner and owner[s] != o:
                edges.setdefault(name_of(o), set()).add(name_of(owner[s]))
    if "--edges" in sys.argv:
        for a in sorted(edges):
            print("%s -> %s" % (a, ", ".join(sorted(edges[a]))))
    circles = [c for c in strongly_connected([name_of(o) for o in objs], edges) if len(c) > 1]
    for c in circles:
        print("circle: " + " <-> ".join(c))
    print("%d files, %d circles" % (len(objs), len(circles)))


if __name__ == "__main__":
    main()
