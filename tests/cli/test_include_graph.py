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
        "m/server.c": '#include "m/top/route.h"\n',
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


def test_the_public_header_is_a_layer_of_its_own(tmp_path):
    """m/m.h (the module's public header) may be included by the bottom floor while the
    folder's top-level files include the floors: that is no cycle."""
    tree(tmp_path, {
        "m/m.h": "",
        "m/core/core.h": '#include "m/m.h"\n',
        "m/server.c": '#include "m/core/core.h"\n#include "m/m.h"\n',
    })
    p = graph(tmp_path, "m")
    assert p.returncode == 0, p.stderr
    assert "m/core -> m/m.h (1 include)" in p.stdout
    assert "m -> m/core (1 include)" in p.stdout


def test_api_floors_have_no_cycle_and_no_long_file():
    """The rule of docs/DESIGN.md "Layout" on the real tree: api/'s floors include only
    downwards, and no file of api/ is over 800 lines."""
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    p = subprocess.run([sys.executable, SCRIPT, "--root", root, "api"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "api/core -> api/handlers" not in p.stdout and "api/core -> api/live" not in p.stdout
    assert "api/live -> api/handlers" not in p.stdout and "api/live -> api/ds" not in p.stdout
