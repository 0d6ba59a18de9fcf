#!/usr/bin/env python3
"""Compile (and run) every C sample in ppx's Markdown documentation.

Usage (tests/docs/meson.build passes all of it):

  check_samples.py SOURCE_ROOT OUT_DIR INCLUDE_DIR LIBPPX_A --cc CC... --libs FLAGS...

Which blocks: every fenced ```c block of README.md, docs/*.md and
examples/*/README.md under SOURCE_ROOT. The words after "c" in the
opening fence are attributes:

  ```c            a complete program: compiled and linked
  ```c run        also run; it must exit 0 within 60 s
  ```c norun      never run (e.g. a server that does not exit)
  ```c fragment   skipped: a piece of a program, not one

A compiled block also runs when it states its output: a line calling
printf or puts that ends with a comment is taken as a promise of what it
prints, e.g. `printf("%s\\n", text); /* [4, 9, 16] */`. Each such comment
must match a whole line of the program's output, in order ("..." matches
anything).

Each block is written to OUT_DIR/<file>_L<line>.c behind a #line
directive, so compiler messages point at the Markdown file and line. It
is compiled with -std=gnu11 -Wall -Wextra -Werror against INCLUDE_DIR
and linked with LIBPPX_A, FLAGS and -pthread. Exit status: 0 when every
block passed, 1 otherwise (every failure is listed), 2 on bad usage.
Python 3 standard library only.
"""
import concurrent.futures
import glob
import os
import re
import subprocess
import sys

CFLAGS = ["-std=gnu11", "-Wall", "-Wextra", "-Werror"]
RUN_TIMEOUT = 60
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")
PROMISE = re.compile(r"\b(?:printf|puts)\s*\(.*/\*\s*(.*?)\s*\*/\s*$")


class Sample:
    def __init__(self, path, line, attrs, code):
        self.path = path        # relative to the source root
        self.line = line        # line of the opening fence, 1-based
        self.attrs = attrs
        self.code = code
        self.promises = [m.group(1) for m in map(PROMISE.search, code.split("\n")) if m]
        self.errors = []
        self.compiled = False
        self.ran = False

    @property
    def where(self):
        return f"{self.path}:{self.line}"

    @property
    def runs(self):
        return "norun" not in self.attrs and ("run" in self.attrs or bool(self.promises))


def extract(root, rel):
    """The ```c blocks of one Markdown file, fragments left out."""
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        lines = f.read().split("\n")
    samples = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).split()
        start = i + 1
        body = []
        i += 1
        while i < len(lines):
            close = re.match(r"^ {0,3}(" + re.escape(fence[0]) + r"{%d,})\s*$" % len(fence),
                             lines[i])
            if close:
                break
            ln = lines[i]
            body.append(ln[min(indent, len(ln) - len(ln.lstrip(" "))):])
            i += 1
        i += 1
        if info and info[0].lower() == "c" and "fragment" not in info[1:]:
            samples.append(Sample(rel, start, info[1:], "\n".join(body) + "\n"))
    return samples


def markdown_files(root):
    found = []
    for pattern in ("README.md", "docs/*.md", "examples/*/README.md"):
        found += sorted(glob.glob(os.path.join(root, pattern)))
    return [os.path.relpath(p, root) for p in found]


def compile_sample(s, root, out_dir, include, lib, cc, libs):
    base = re.sub(r"[^\w]+", "_", s.path) + f"_L{s.line}"
    src = os.path.join(out_dir, base + ".c")
    s.exe = os.path.join(out_dir, base)
    with open(src, "w", encoding="utf-8") as f:
        f.write(f'#line {s.line + 1} "{s.path}"\n')
        f.write(s.code)
    cmd = cc + CFLAGS + ["-I", include, src, "-o", s.exe, lib] + libs + ["-pthread"]
    # From the source root, the compiler finds the Markdown file that the
    # #line directive names and quotes its lines in its messages.
    p = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        msg = [f"{s.where}: the ```c block starting here does not compile "
               f"(written to {src}):", p.stdout.rstrip()]
        if not re.search(r"\bmain\s*\(", s.code):
            msg.append("hint: it has no main(). A block that is not a whole program "
                       "must be fenced as ```c fragment")
        msg.append("command: " + " ".join(cmd))
        s.errors.append("\n".join(msg))
    else:
        s.compiled = True
    return s


def promise_regex(text):
    return re.compile(re.escape(text).replace(re.escape("..."), ".*"))


def run_sample(s, out_dir):
    try:
        p = subprocess.run([s.exe], cwd=out_dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        s.errors.append(f"{s.where}: the sample did not exit within {RUN_TIMEOUT} s "
                        f"(fence it as ```c norun if it is not meant to)\n"
                        f"stdout so far:\n{e.stdout or ''}")
        return
    s.ran = True
    shown = f"stdout:\n{p.stdout.rstrip()}\nstderr:\n{p.stderr.rstrip()}"
    if p.returncode != 0:
        s.errors.append(f"{s.where}: the sample exited with status {p.returncode}\n{shown}")
        return
    out = [ln.strip() for ln in p.stdout.split("\n")]
    pos = 0
    for text in s.promises:
        rx = promise_regex(text)
        while pos < len(out) and not rx.fullmatch(out[pos]):
            pos += 1
        if pos == len(out):
            s.errors.append(f"{s.where}: the sample promises the output line "
                            f"'{text}' (a printf/puts comment) but did not print it "
                            f"(in that order)\n{shown}")
            return
        pos += 1


def parse_args(argv):
    try:
        cc_at, libs_at = argv.index("--cc"), argv.index("--libs")
    except ValueError:
        cc_at = libs_at = -1
    if cc_at != 5 or libs_at <= cc_at + 1:
        sys.exit(__doc__.split("\n\n")[1] + "\nbad arguments: " + " ".join(argv[1:]))
    root, out_dir, include, lib = argv[1:5]
    return root, out_dir, include, lib, argv[cc_at + 1:libs_at], argv[libs_at + 1:]


def main(argv):
    root, out_dir, include, lib, cc, libs = parse_args(argv)
    root, out_dir, include, lib = map(os.path.abspath, (root, out_dir, include, lib))
    os.makedirs(out_dir, exist_ok=True)
    samples = []
    for rel in markdown_files(root):
        samples += extract(root, rel)
    if not samples:
        print(f"no ```c samples found under {root}: the docs or this script moved")
        return 1
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
        list(ex.map(lambda s: compile_sample(s, root, out_dir, include, lib, cc, libs), samples))
    for s in samples:
        if not s.errors and s.runs:
            run_sample(s, out_dir)
    failed = [s for s in samples if s.errors]
    for s in samples:
        state = "FAIL" if s.errors else "ok  "
        what = ("compiled, ran" if s.ran else "compiled") if s.compiled else "does not compile"
        if s.promises and s.ran and not s.errors:
            what += f", printed the {len(s.promises)} promised line(s)"
        print(f"{state} {s.where} ({what})")
    for s in failed:
        print()
        print("\n".join(s.errors))
    print(f"\n{len(samples) - len(failed)} of {len(samples)} samples passed "
          f"({sum(s.ran for s in samples)} run)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
