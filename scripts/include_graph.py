#!/usr/bin/env python3
"""include_graph.py -- the include graph of one folder, by file and by layer.

usage: scripts/include_graph.py [--root DIR] [--max-lines N] [--dot] DIR

For every .c/.h under DIR, prints the project headers it includes (`#include "x/y.h"`,
resolved from the repository root, or beside the including file), then the graph
collapsed to layers: DIR's immediate subfolders, plus DIR itself for its top-level files,
as "layer -> layer (n includes)". The folder's public header, DIR/<name of DIR>.h (api/api.h:
the configuration and lifecycle every floor may see), is a layer of its own, below all
others, so that a bottom floor including it does not make a cycle with the top. Headers outside DIR count as a layer named by their
folder (e.g. store), so the listing also shows what DIR depends on below it. --dot prints
the layer graph for Graphviz instead of the listing.

Exit status: 1 when the layer graph has a cycle (self-loops, a layer including itself, do
not count; the cycle is printed) or when a file of DIR has more than --max-lines lines
(default 800; they are printed); 2 on bad usage; else 0. Python 3 standard library only.
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(folder):
    """Every .c/.h under 'folder', as sorted paths relative to the root."""
    out = []
    for d, dirs, files in os.walk(folder):
        dirs.sort()
        out += [os.path.join(d, f) for f in sorted(files) if f.endswith((".c", ".h"))]
    return out


def resolve(root, src, name):
    """The header 'name' included by 'src' as a path relative to 'root', or None when it
    is not a project file (a system header spelled with quotes, a generated header)."""
    for base in (root, os.path.dirname(os.path.join(root, src))):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(p):
            return os.path.relpath(p, root)
    return None


def layer_of(folder, path):
    """DIR's immediate subfolder holding 'path', DIR itself for its top-level files; a
    path outside DIR belongs to its own top folder."""
    rel = os.path.relpath(path, folder)
    if rel.startswith(".."):
        return path.split(os.sep)[0]
    if rel == os.path.basename(os.path.normpath(folder)) + ".h":
        return path  # the public header: its own layer
    parts = rel.split(os.sep)
    return os.path.join(folder, parts[0]) if len(parts) > 1 else folder


def find_cycle(edges):
    """One cycle of the graph {a: {b, ...}} as a list [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="the folder to draw, relative to the root (e.g. api)")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."),
                    help="the repository root includes resolve from (default: this script's ..)")
    ap.add_argument("--max-lines", type=int, default=800, metavar="N",
                    help="files of DIR longer than N lines fail the check (default 800)")
    ap.add_argument("--dot", action="store_true", help="print the layer graph for Graphviz")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    folder = os.path.normpath(a.dir)
    if not os.path.isdir(os.path.join(root, folder)):
        print(f"include_graph.py: no folder '{folder}' under {root}", file=sys.stderr)
        return 2
    os.chdir(root)

    files = sources(folder)
    layers, long_files = {}, []
    for f in files:
        text = open(f, encoding="utf-8", errors="replace").read()
        lines = text.count("\n")
        if lines > a.max_lines:
            long_files.append((f, lines))
        heads = sorted({h for h in (resolve(root, f, n) for n in INCLUDE.findall(text)) if h})
        if not a.dot:
            print(f"{f}: {' '.join(heads) if heads else '-'}")
        for h in heads:
            key = (layer_of(folder, f), layer_of(folder, h))
            layers[key] = layers.get(key, 0) + 1

    edges = {}
    for (src, dst) in layers:
        if src != dst:
            edges.setdefault(src, set()).add(dst)
    if a.dot:
        print("digraph layers {\n  rankdir=LR;")
        for (src, dst), n in sorted(layers.items()):
            if src != dst:
                print(f'  "{src}" -> "{dst}" [label="{n}"];')
        print("}")
    else:
        print(f"\nlayers of {folder}:")
        for (src, dst), n in sorted(layers.items()):
            print(f"{src} -> {dst} ({n} include{'s' if n != 1 else ''})")

    rc = 0
    cycle = find_cycle(edges)
    if cycle:
        print("cycle: " + " -> ".join(cycle), file=sys.stderr)
        rc = 1
    for f, n in long_files:
        print(f"over {a.max_lines} lines: {f} ({n})", file=sys.stderr)
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
