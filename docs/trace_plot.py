#!/usr/bin/env python3
"""Draws a ppx trace (docs/TRACING.md) as a timeline PNG with gnuplot: one
horizontal track per worker, a box per call coloured by its outcome, and
the pool's own track with a tick per submission. A stand-in for a
screenshot of ui.perfetto.dev, made from the same JSON.

    python3 docs/trace_plot.py docs/example-trace.json docs/trace.png

Needs only python3 and gnuplot (the pngcairo terminal)."""
import json
import os
import subprocess
import sys
import tempfile

COLOURS = {  # outcome -> fill colour
    "done": "#4c9a2a",
    "failed": "#e08e0b",
    "crashed": "#c0392b",
    "cancelled": "#7f8c8d",
    "timed_out": "#8e44ad",
}


def load(path):
    text = open(path).read().rstrip()
    if not text.endswith("]"):  # cut short: the closing bracket is optional
        text += "\n]"
    return json.loads(text)


def main(src, dst):
    events = load(src)
    names = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e["args"]["name"]
    calls = [e for e in events if e.get("ph") == "X" and e.get("tid", 0) >= 1]
    submits = [e for e in events if e.get("ph") == "X" and e.get("tid") == 0]
    marks = [e for e in events if e.get("ph") in ("i", "I")]
    tracks = sorted((set(names) | {e["tid"] for e in calls}) - {0})
    ms = lambda us: us / 1000.0
    end = max([ms(e["ts"] + e["dur"]) for e in calls + submits] + [1.0])

    with tempfile.TemporaryDirectory() as tmp:
        boxes = os.path.join(tmp, "boxes.dat")
        with open(boxes, "w") as f:
            # x_centre y half_width half_height colour label
            for e in calls:
                x0, x1 = ms(e["ts"]), ms(e["ts"] + e["dur"])
                colour = int(COLOURS.get(e["args"].get("outcome"), "#34495e")[1:], 16)
                label = e["name"] + (" (batch)" if e["args"].get("batch") else "")
                label = label if x1 - x0 > end / 40 else ""
                f.write(f"{(x0 + x1) / 2} {-e['tid']} {(x1 - x0) / 2} 0.35 {colour} "
                        f"\"{label}\"\n")
        ticks = os.path.join(tmp, "ticks.dat")
        with open(ticks, "w") as f:
            for e in submits:
                f.write(f"{ms(e['ts'])} 0\n")
            for e in marks:
                f.write(f"{ms(e['ts'])} {-e['tid']}\n")
            if not submits and not marks:
                f.write("0 0\n")
        ytics = ", ".join([f'"{names.get(0, "pool (parent)")}" 0'] +
                          [f'"{names.get(t, "worker " + str(t - 1))}" {-t}' for t in tracks])
        legend = "\n".join(
            f"set object {i + 1} rect from graph {0.02 + 0.13 * i}, screen 0.035 "
            f"to graph {0.05 + 0.13 * i}, screen 0.075 fc rgb \"{c}\" fs solid noborder\n"
            f"set label {i + 10} \"{o}\" at graph {0.055 + 0.13 * i}, screen 0.055"
            for i, (o, c) in enumerate(COLOURS.items()))
        script = f"""
set terminal pngcairo size 1200,{220 + 70 * (len(tracks) + 1)} font "DejaVu Sans,10"
set output "{dst}"
set termoption noenhanced
set title "ppx pool timeline ({os.path.basename(src)}): one track per worker, \
boxes are calls coloured by outcome, ticks are submissions and pool events"
set xlabel "time since the pool started (ms)"
set xrange [0:{end * 1.02}]
set yrange [{-(max(tracks) if tracks else 1) - 0.8}:0.8]
set ytics ({ytics})
set grid xtics
set bmargin 6
unset key
{legend}
plot "{boxes}" using 1:2:3:4:5 with boxxyerror fs solid 0.85 border lc rgb "#222222" \
lc rgb variable, \
     "{boxes}" using 1:2:6 with labels font ",8" textcolor rgb "white", \
     "{ticks}" using 1:2 with points pt 9 ps 1.2 lc rgb "#2c3e50"
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: trace_plot.py TRACE.json OUT.png")
    main(sys.argv[1], sys.argv[2])
