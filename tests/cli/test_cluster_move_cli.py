"""`reel cluster move` without cells or PostgreSQL: its help, usage errors (exit 2) and
failures before anything is handed over (exit 1, the map file unchanged). The move itself,
with real cells, nginx and PostgreSQL, is tests/cluster/test_move.py."""
import os
import subprocess

from clihelp import REEL


def move(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    e.update(env or {})
    return subprocess.run([REEL, "cluster", "move", *args], capture_output=True, text=True,
                          timeout=60, env=e)


def a_map(tmp_path):
    out = subprocess.run([REEL, "cluster", "init", "--shards", "16", "--spares", "1",
                          "c1=127.0.0.1:1", "c2=127.0.0.1:2", "spare=127.0.0.1:3"],
                         check=True, capture_output=True, text=True).stdout
    p = tmp_path / "map.json"
    p.write_text(out)
    return p


def test_help_names_every_option():
    p = move("--help")
    assert p.returncode == 0
    for opt in ("--to", "--map", "--dsn", "--schema", "--token", "--ack", "--force",
                "--nginx-conf", "--nginx-listen", "--reload-command", "--drain-ms",
                "--cell-timeout-ms", "--timeout", "--ahead-rounds", "--resume", "--quiet"):
        assert opt in p.stdout, opt
    assert "also fences the old" in p.stdout.replace("\n", " "), p.stdout
    top = subprocess.run([REEL, "cluster", "--help"], capture_output=True, text=True).stdout
    assert "move SHARDS --to CELL" in top


def test_usage_errors(tmp_path):
    m = a_map(tmp_path)
    p = move("0-3", "--map", str(m), "--dsn", "host=127.0.0.1 port=1")
    assert p.returncode == 2 and "--to" in p.stderr, p.stderr
    p = move("--to", "spare", "--map", str(m), "--dsn", "x")
    assert p.returncode == 2 and "SHARDS" in p.stderr, p.stderr
    p = move("0-3", "--to", "spare", "--map", str(m), "--dsn", "x", "--bogus")
    assert p.returncode == 2 and "--bogus" in p.stderr, p.stderr
    p = move("0-3", "--to", "spare", "--map", str(m), "--dsn", "x", "--schema", "1bad")
    assert p.returncode == 2 and "schema '1bad'" in p.stderr, p.stderr
    p = move("0-3", "--to", "spare", "--map", str(m), "--dsn", "x", "--ack", "sometimes")
    assert p.returncode == 2 and "sometimes" in p.stderr, p.stderr


def test_failures_change_nothing(tmp_path):
    m = a_map(tmp_path)
    before = m.read_text()
    unreachable = "host=127.0.0.1 port=1 connect_timeout=2"
    # bad shards, an unknown cell, a missing map: named, nothing changed
    for args, words in ((["16", "--to", "spare"], "0..15"),
                        (["0-x", "--to", "spare"], "0-x"),
                        (["0-3", "--to", "nope"], "nope")):
        p = move(*args, "--map", str(m), "--dsn", unreachable)
        assert p.returncode == 2 and words in p.stderr, (args, p.stderr)
    p = move("0-3", "--to", "spare", "--map", str(tmp_path / "none.json"), "--dsn", unreachable)
    assert p.returncode == 1 and "none.json" in p.stderr, p.stderr
    p = move("0-3", "--to", "spare", "--map", str(m), "--dsn", unreachable)
    assert p.returncode == 1 and "cannot connect to PostgreSQL" in p.stderr, p.stderr
    # environment twins count as given
    p = move("0-3", "--to", "spare", env={"REEL_CLUSTER_MAP": str(m), "REEL_SINK_DSN": unreachable})
    assert p.returncode == 1 and "cannot connect to PostgreSQL" in p.stderr, p.stderr
    assert m.read_text() == before
