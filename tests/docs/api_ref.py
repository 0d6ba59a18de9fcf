#!/usr/bin/env python3
"""Generate docs/API.md from include/ppx.h.

The header is the documentation: every declaration is preceded by a
comment that states its contract. This script keeps that text and turns
it into a Markdown reference, so the two cannot drift apart:

  - a section per banner in the header (a `/* ---- */` line followed by a
    `/* Title */` line), in header order;
  - an entry per comment and the run of declarations right after it (up
    to the next comment or blank line): the declarations verbatim in a
    ```c fragment block (not a program: check_samples.py skips it), the
    comment as prose below it;
  - the error codes of the PPX_ERRNO_MAP X-macro as a table.

Usage:
  api_ref.py HEADER [-o OUT]          write the reference (stdout without -o)
  api_ref.py HEADER --check DOC [-o OUT]
                                      regenerate (into OUT if given) and
                                      exit 1 with a diff if DOC differs

Python 3 standard library only.
"""
import argparse
import difflib
import re
import sys

BANNER = re.compile(r"^/\* -{10,} \*/$")
REGEN = "python3 tests/docs/api_ref.py include/ppx.h -o docs/API.md"


class Entry:
    def __init__(self, comment, decls, line):
        self.comment = comment  # list of text lines, or None
        self.decls = decls      # list of lists of source lines
        self.line = line
        self.names = []         # names given a heading, filled by render()


class Section:
    def __init__(self, title, line):
        self.title = title
        self.line = line
        self.entries = []


def comment_lines(block):
    """Text of a /* ... */ block, one string per line, common indent kept
    relative (so aligned lists stay aligned)."""
    text = "\n".join(block).strip()
    assert text.startswith("/*") and text.endswith("*/"), text
    body = text[2:-2]
    out = []
    for raw in body.split("\n"):
        s = raw.rstrip()
        m = re.match(r"^\s*\* ?(.*)$", s)
        out.append(m.group(1) if m else s.strip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def strip_comments(code):
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    return re.sub(r"//[^\n]*", " ", code)


def decl_names(lines):
    """The names a declaration introduces, with whether it is only a
    forward declaration (`typedef struct x x;`, `struct x;`)."""
    code = strip_comments("\n".join(lines)).strip()
    m = re.match(r"#\s*define\s+(\w+)", code)
    if m:
        return [(m.group(1), False)]
    code = re.sub(r"#[^\n]*", " ", code)  # #if inside a declaration
    code = " ".join(code.split())
    m = re.match(r"^enum\s*\{(.*)\}\s*;$", code)
    if m:  # anonymous enum: its constants
        return [(c.split("=")[0].strip(), False)
                for c in m.group(1).split(",") if c.strip()]
    m = re.match(r"^typedef\s+(struct|enum|union)\s+(\w+)\s+(\w+)\s*;$", code)
    if m:
        return [(m.group(3), True)]
    m = re.match(r"^(struct|union|enum)\s+(\w+)\s*;$", code)
    if m:
        return [(m.group(1) + " " + m.group(2), True)]
    if code.startswith("typedef") and "}" in code:  # struct/enum with a body
        m = re.search(r"\}\s*(\w+)\s*;$", code)
        return [(m.group(1), False)] if m else []
    if code.startswith("typedef"):
        m = re.search(r"\(\s*\*\s*(\w+)\s*\)\s*\(", code)  # function pointer
        if m:
            return [(m.group(1), False)]
        m = re.search(r"(\w+)\s*;$", code)
        return [(m.group(1), False)] if m else []
    body = re.sub(r"__attribute__\s*\(\(.*?\)\)", " ", code)
    m = re.search(r"(\w+)\s*\(", body)  # function prototype
    if m:
        return [(m.group(1), False)]
    m = re.search(r"(\w+)\s*(\[[^\]]*\])?\s*;$", body)  # variable
    return [(m.group(1), False)] if m else []


def decl_complete(lines):
    """True once lines hold a whole C declaration: a ';' outside braces,
    no comment left open. Preprocessor lines inside it (#if) are ignored."""
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("#"))
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    if "/*" in text:
        return False
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ";" and depth == 0:
            return text.rstrip().endswith(";")
    return False


def is_internal(name):
    return name.startswith("ppx__") or name.startswith("PPX__")


def parse(path):
    with open(path, encoding="utf-8") as f:
        src = f.read().split("\n")
    intro = None
    sections = []
    current = None
    pending = None  # (comment lines, line number) waiting for its decls
    i, n = 0, len(src)
    skip_depth = 0  # inside #ifdef __cplusplus ... #endif
    guard = None

    def flush_pending():
        nonlocal pending
        if pending is not None and current is not None:
            current.entries.append(Entry(pending[0], [], pending[1]))
        pending = None

    while i < n:
        line = src[i]
        s = line.strip()
        if skip_depth:
            if s.startswith("#if"):
                skip_depth += 1
            elif s.startswith("#endif"):
                skip_depth -= 1
            i += 1
            continue
        if not s:
            flush_pending()
            i += 1
            continue
        if BANNER.match(s) and i + 1 < n and src[i + 1].strip().startswith("/*"):
            flush_pending()
            title = src[i + 1].strip()[2:-2].strip()
            current = Section(title, i + 1)
            sections.append(current)
            i += 2
            continue
        if s.startswith("/*"):
            block = [line]
            if "*/" not in line[line.find("/*") + 2:]:
                while "*/" not in src[i]:
                    i += 1
                    block.append(src[i])
            i += 1
            text = comment_lines(block)
            if intro is None and current is None:
                intro = text
                continue
            flush_pending()
            pending = (text, i - len(block) + 1)
            continue
        if s.startswith("#ifdef __cplusplus"):
            skip_depth = 1
            i += 1
            continue
        m = re.match(r"#\s*ifndef\s+(\w+)", s)
        if m:  # the include guard
            guard = m.group(1)
        if (s.startswith("#include") or s.startswith("#ifndef") or s.startswith("#endif")
                or s.startswith("#undef") or re.fullmatch(r"#\s*define\s+%s" % guard, s)):
            i += 1
            continue
        # A run of declarations: each ends at ';' outside braces, or, for a
        # #define, at the first line without a trailing backslash.
        start = i + 1
        decls = []
        while i < n:
            s = src[i].strip()
            if not s or s.startswith("/*") or re.match(
                    r"#\s*(if|ifdef|ifndef|elif|else|endif|include|undef)\b", s):
                break
            decl = [src[i]]
            if s.startswith("#"):
                while decl[-1].rstrip().endswith("\\"):
                    i += 1
                    decl.append(src[i])
                i += 1
            else:
                while not decl_complete(decl):
                    i += 1
                    if i == n:
                        raise SystemExit(f"{path}:{start}: declaration without its ';'")
                    decl.append(src[i])
                i += 1
            decls.append(decl)
        if current is None:
            raise SystemExit(f"{path}:{start}: declaration before the first section banner")
        comment = pending[0] if pending else None
        line_no = pending[1] if pending else start
        pending = None
        current.entries.append(Entry(comment, decls, line_no))
    flush_pending()
    return intro, sections


def error_codes(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r'XX\((\w+),\s*"((?:[^"\\]|\\.)*)"\)', text)


# A C name in prose: has an underscore (ppx_pool_new, timeout_ms, _free,
# PPX_E*, ppx_call_options.timeout_ms), with an optional "()".
CODE_WORD = re.compile(r"(?<![\w`\\])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\*?)(\(\))?")


def escape(text):
    text = text.replace("*", "\\*")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def inline(text, anchors, own):
    """Prose with C names in backticks, linked when documented here (and
    not the entry's own names); other Markdown characters escaped."""
    out = []
    for part in re.split(r"(`[^`]*`)", text):
        if part.startswith("`"):
            out.append(part)
            continue
        pos = 0
        for m in CODE_WORD.finditer(part):
            word, call = m.group(1), m.group(2) or ""
            if "_" not in word:
                continue
            out.append(escape(part[pos:m.start()]))
            base = word.split(".")[0].rstrip("*")
            if base in anchors and base not in own:
                out.append(f"[`{word}{call}`](#{anchors[base]})")
            else:
                out.append(f"`{word}{call}`")
            pos = m.end()
        out.append(escape(part[pos:]))
    return "".join(out)


def prose(lines, anchors, own):
    """Comment lines to Markdown: paragraphs are joined, "- " items become
    a list, lines indented by two or more spaces (aligned tables in the
    header) are kept as they are in a text block."""
    out = []
    para = []
    pre = []
    item = None

    def end_para():
        nonlocal para, item
        if item is not None:
            out.append("- " + inline(" ".join(item), anchors, own))
            item = None
        if para:
            out.append(inline(" ".join(para), anchors, own))
            out.append("")
            para = []

    def end_pre():
        nonlocal pre
        if pre:
            indent = min(len(p) - len(p.lstrip()) for p in pre if p.strip())
            out.append("```text")
            out.extend(p[indent:] for p in pre)
            out.append("```")
            out.append("")
            pre = []

    for ln in lines:
        stripped = ln.strip()
        indent = len(ln) - len(ln.lstrip())
        if not stripped:
            end_para()
            end_pre()
            if out and out[-1] != "":
                out.append("")
            continue
        bullet = re.match(r"^\s{0,3}- (.*)$", ln)
        if bullet and not pre:
            if para:
                end_para()
            elif item is not None:
                out.append("- " + inline(" ".join(item), anchors, own))
            item = [bullet.group(1)]
            continue
        if item is not None and indent >= 2:
            item.append(stripped)
            continue
        if item is not None:
            out.append("- " + inline(" ".join(item), anchors, own))
            out.append("")
            item = None
        if indent >= 2:
            if para:
                end_para()
            pre.append(ln)
            continue
        end_pre()
        para.append(stripped)
    end_para()
    end_pre()
    while out and out[-1] == "":
        out.pop()
    return out


def slug(name):
    return re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-")


def render(path, display_path):
    intro, sections = parse(path)
    # Names: a forward declaration gets no heading of its own when the
    # full definition appears elsewhere.
    defined = set()
    for sec in sections:
        for e in sec.entries:
            for d in e.decls:
                for name, fwd in decl_names(d):
                    if not fwd:
                        defined.add(name)
    anchors = {}
    for sec in sections:
        for e in sec.entries:
            for d in e.decls:
                for name, fwd in decl_names(d):
                    if is_internal(name) or (fwd and name in defined):
                        continue
                    if name not in e.names:
                        e.names.append(name)
                    anchors.setdefault(name, slug(name))
    for code, _ in error_codes(path):
        anchors.setdefault("PPX_" + code, slug("PPX_" + code))

    md = []
    md.append("# ppx API reference")
    md.append("")
    md.append(f"<!-- Generated from {display_path} by tests/docs/api_ref.py; do not edit.")
    md.append(f"     Regenerate with: {REGEN} -->")
    md.append("")
    md.append(f"Generated from [`{display_path}`](../{display_path}), whose comments are the")
    md.append("contracts; the test `docs_api_in_sync` fails when this file is out of date.")
    md.append("For how the pieces fit together, read the [guide](GUIDE.md).")
    md.append("")
    if intro:
        md.extend(prose(intro, anchors, set()))
        md.append("")
    md.append("## Contents")
    md.append("")
    for sec in sections:
        names = [nm for e in sec.entries for nm in e.names]
        link = slug(sec.title)
        md.append(f"- [{sec.title}](#{link})"
                  + (": " + ", ".join(f"[`{nm}`](#{anchors[nm]})" for nm in names) if names else ""))
    md.append("")

    codes = error_codes(path)
    for sec in sections:
        md.append(f'<a id="{slug(sec.title)}"></a>')
        md.append("")
        md.append(f"## {sec.title}")
        md.append("")
        for e in sec.entries:
            if not e.decls:  # a comment on its own: section prose
                md.extend(prose(e.comment, anchors, set()))
                md.append("")
                continue
            for nm in e.names:
                md.append(f'<a id="{anchors[nm]}"></a>')
            if e.names:
                md.append("")
                md.append("### " + ", ".join(f"`{nm}`" for nm in e.names))
                md.append("")
            md.append("```c fragment")  # declarations: tests/docs/check_samples.py skips them
            for d in e.decls:
                lines = [ln.rstrip() for ln in d]
                # Internal helper macros stay out of the reference.
                if any(is_internal(nm) for nm, _ in decl_names(d)) and len(decl_names(d)) == 1:
                    continue
                md.extend(lines)
            md.append("```")
            md.append("")
            if e.comment:
                md.extend(prose(e.comment, anchors, set(e.names)))
                md.append("")
            if "PPX_ERRNO_MAP" in e.names and codes:
                md.append("| code | `ppx_strerror()` |")
                md.append("|---|---|")
                for code, msg in codes:
                    md.append(f'| <a id="{slug("PPX_" + code)}"></a>`PPX_{code}` | {msg} |')
                md.append("")
    while md and md[-1] == "":
        md.pop()
    return "\n".join(md) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("header")
    ap.add_argument("-o", "--output")
    ap.add_argument("--check", metavar="DOC",
                    help="fail if DOC differs from what the header generates")
    ap.add_argument("--display-path", default="include/ppx.h",
                    help="header path shown in the output (default include/ppx.h)")
    args = ap.parse_args()
    text = render(args.header, args.display_path)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    elif not args.check:
        sys.stdout.write(text)
    if args.check:
        try:
            with open(args.check, encoding="utf-8") as f:
                old = f.read()
        except FileNotFoundError:
            old = ""
        if old != text:
            diff = list(difflib.unified_diff(
                old.splitlines(), text.splitlines(),
                "docs/API.md (committed)", "docs/API.md (from include/ppx.h)", lineterm=""))
            sys.stdout.write("\n".join(diff[:200]) + "\n")
            if len(diff) > 200:
                print(f"... {len(diff) - 200} more diff lines")
            print(f"\ndocs/API.md is out of date with include/ppx.h "
                  f"(generated copy: {args.output or 'not written'}).")
            print(f"Regenerate it from the source root with:\n    {REGEN}")
            return 1
        print(f"{args.check} is in sync with {args.header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
