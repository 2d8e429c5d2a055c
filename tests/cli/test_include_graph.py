"""scripts/include_graph.py: the layer graph of a folder, its cycle check and its file-size
check, on small trees made in a temporary root."""
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "include_graph.py")


def tree(root, files):
    for path, text in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def graph(root, *args):
    return subprocess.run([sys.executable, SCRIPT, "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60)


def test_layers_without_a_cycle_pass(tmp_path):
    tree(tmp_path, {
        "lib/base.h": "int base(void);\n",
        "m/core/core.h": '#include "lib/base.h"\n',
        "m/core/core.c": '#include "m/core/core.h"\n#include <stdio.h>\n',
        "m/top/route.c": '#include "m/core/core.h"\n#include "lib/base.h"\n',
        "m/top/peer.c": '#include "route.h"\n',
        "m/top/route.h": "",
        "m/m.h": '#include "m/top/route.h"\n',
    })
    p = graph(tmp_path, "m")
    assert p.returncode == 0, p.stderr
    assert "m/top/route.c: lib/base.h m/core/core.h" in p.stdout
    assert "m/top/peer.c: m/top/route.h" in p.stdout  # resolved beside the file
    assert "m/top -> m/core (1 include)" in p.stdout
    assert "m/core -> lib (1 include)" in p.stdout
    assert "m -> m/top (1 include)" in p.stdout
    dot = graph(tmp_path, "--dot", "m")
    assert dot.returncode == 0 and '"m/top" -> "m/core"' in dot.stdout


def test_a_layer_cycle_fails_and_is_printed(tmp_path):
    tree(tmp_path, {
        "m/a/a.h": '#include "m/b/b.h"\n',
        "m/b/b.h": '#include "m/c.h"\n',
        "m/c.h": '#include "m/a/a.h"\n',
        "m/a/self.c": '#include "m/a/a.h"\n',  # a self-loop is no cycle
    })
    p = graph(tmp_path, "m")
    assert p.returncode == 1
    assert "cycle: m -> m/a -> m/b -> m" in p.stderr


def test_files_over_the_line_limit_fail(tmp_path):
    tree(tmp_path, {"m/x.c": "int x;\n" * 12, "m/y.c": "int y;\n"})
    assert graph(tmp_path, "--max-lines", "12", "m").returncode == 0
    p = graph(tmp_path, "--max-lines", "11", "m")
    assert p.returncode == 1 and "over 11 lines: m/x.c (12)" in p.stderr
