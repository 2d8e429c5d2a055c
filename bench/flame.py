#!/usr/bin/env python3
"""flame.py -- folded stacks to a flame graph (SVG), and `perf script` output to folded stacks.

  perf script -i perf.data | bench/flame.py fold >out.folded
  bench/flame.py svg --title TITLE <out.folded >out.svg
  bench/flame.py top [N] <out.folded          self and inclusive % of the N hottest frames

fold: one line per distinct stack, "root;...;leaf COUNT" (Brendan Gregg's folded format, the
input of flamegraph.pl and inferno too), frames as perf printed them without offsets,
"[unknown]" frames dropped. svg: a static SVG (no scripts), root at the bottom, width
proportional to samples, frames narrower than 0.1 % left out, a <title> per frame with its
count and share (shown as a tooltip by browsers).
"""
import html
import re
import sys
from collections import defaultdict


def fold(inp, out):
    stacks = defaultdict(int)
    comm, frames = None, []

    def flush():
        if comm is not None and frames:
            stacks[";".join([comm] + frames[::-1])] += 1

    for line in inp:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            comm, frames = None, []
            continue
        if not line[0].isspace():  # header: comm pid/tid time: period event:
            flush()
            comm, frames = line.split()[0], []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].split(" (")[0])
        if sym == "[unknown]":
            continue
        frames.append(sym.replace(";", ":"))
    flush()
    for k, v in sorted(stacks.items()):
        out.write("%s %d\n" % (k, v))


def read_folded(inp):
    out = []
    for line in inp:
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if stack:
            out.append((stack.split(";"), int(n)))
    return out


def top(inp, n):
    rows = read_folded(inp)
    total = sum(c for _, c in rows) or 1
    self_, incl = defaultdict(int), defaultdict(int)
    for fr, c in rows:
        self_[fr[-1]] += c
        for f in set(fr[1:]):
            incl[f] += c
    print("samples %d" % total)
    print("%-7s %-7s %s" % ("self%", "incl%", "function"))
    for f, c in sorted(self_.items(), key=lambda x: -x[1])[:n]:
        print("%6.2f  %6.2f  %s" % (100.0 * c / total, 100.0 * incl[f] / total, f))


def svg(inp, out, title):
    rows = read_folded(inp)
    root = {"n": 0, "kids": {}}
    depth = 0
    for fr, c in rows:
        node = root
        root["n"] += c
        for f in fr:
            node = node["kids"].setdefault(f, {"n": 0, "kids": {}})
            node["n"] += c
        depth = max(depth, len(fr))
    W, H, PAD = 1200, 16, 30
    total = root["n"] or 1
    height = (depth + 1) * H + PAD * 2
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" '
         'font-size="11">' % (W, height),
         '<rect width="100%%" height="100%%" fill="#f8f8f8"/><text x="%d" y="20" font-size="14" '
         'text-anchor="middle">%s (%d samples)</text>' % (W // 2, html.escape(title), total)]

    def walk(node, x, level):
        for name, k in sorted(node["kids"].items()):
            w = k["n"] / total * (W - 20)
            if k["n"] / total >= 0.001:
                y = height - PAD - (level + 1) * H
                h = abs(hash(name)) % 60
                col = "rgb(%d,%d,%d)" % (230, 90 + h * 2, 40 + h // 2)
                tip = "%s: %d samples, %.2f %%" % (name, k["n"], 100.0 * k["n"] / total)
                o.append('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" '
                         'stroke="#fff" stroke-width="0.5"/>' % (html.escape(tip), 10 + x, y, w, H - 1, col))
                chars = int(w / 7)
                if chars >= 3:
                    label = name if len(name) <= chars else name[:chars - 2] + ".."
                    o.append('<text x="%.1f" y="%d">%s</text>' % (13 + x, y + 11, html.escape(label)))
                o.append("</g>")
                walk(k, x, level + 1)
            x += w

    walk(root, 0.0, 0)
    o.append("</svg>")
    out.write("\n".join(o) + "\n")


def main():
    a = sys.argv[1:]
    if not a or a[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if a else 2)
    if a[0] == "fold":
        fold(sys.stdin, sys.stdout)
    elif a[0] == "top":
        top(sys.stdin, int(a[1]) if len(a) > 1 else 25)
    elif a[0] == "svg":
        t = a[a.index("--title") + 1] if "--title" in a else "flame graph"
        svg(sys.stdin, sys.stdout, t)
    else:
        sys.exit("flame.py: unknown command %r" % a[0])


if __name__ == "__main__":
    main()
