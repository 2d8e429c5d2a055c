"""`reel cluster restore` without PostgreSQL: its help, usage errors (exit 2) and failures that
leave nothing behind (exit 1). The restore itself is tests/http/test_restore.py."""
import os
import subprocess

from clihelp import REEL


def restore(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    e.update(env or {})
    return subprocess.run([REEL, "cluster", "restore", *args], capture_output=True, text=True,
                          timeout=60, env=e)


def test_help_names_every_option():
    p = restore("--help")
    assert p.returncode == 0
    for opt in ("--cell", "--dsn", "--schema", "--data", "--progress"):
        assert opt in p.stdout, opt
    assert "Not in the tables, so not restored" in p.stdout


def test_usage_errors(tmp_path):
    p = restore("--cell", "c1", "--dsn", "host=127.0.0.1")
    assert p.returncode == 2 and "--data DIR" in p.stderr, p.stderr
    p = restore("--cell", "c1", "--dsn", "x", "--data", str(tmp_path / "d"), "--bogus")
    assert p.returncode == 2 and "--bogus" in p.stderr, p.stderr
    # The environment twins count as given.
    p = restore("--data", str(tmp_path / "e"), "--schema", "1bad",
                env={"REEL_CELL": "c1", "REEL_SINK_DSN": "host=127.0.0.1 port=1"})
    assert p.returncode == 1 and "schema '1bad'" in p.stderr, p.stderr
    assert not (tmp_path / "e").exists() and not (tmp_path / "e.partial").exists()


def test_unreachable_postgres_leaves_nothing(tmp_path):
    d = tmp_path / "d"
    p = restore("--cell", "c1", "--dsn", "host=127.0.0.1 port=1 connect_timeout=2", "--data",
                str(d))
    assert p.returncode == 1 and "cannot connect to PostgreSQL" in p.stderr, p.stderr
    assert not d.exists() and not (tmp_path / "d.partial").exists()


def test_a_non_empty_directory_is_refused(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "data.mdb").write_bytes(b"x")
    p = restore("--cell", "c1", "--dsn", "host=127.0.0.1 port=1", "--data", str(d))
    assert p.returncode == 1 and "is not empty" in p.stderr, p.stderr
    assert (d / "data.mdb").read_bytes() == b"x"
