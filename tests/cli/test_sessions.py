"""`reel sessions` options (--prefix, --order recent, --agent, --status), ids of any UTF-8
on the command line, and a format-1 data directory made by reel 3c25f6d
(tests/fixtures/format1): read as it is by read-only commands, upgraded by a writer."""
import json
import os
import tarfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "format1", "data.tar.gz")
FIXTURE_RECENT = ["beta.2", "empty-one", "del_me", "gamma:3~x", "s-alpha"]


def ids(reel, *args):
    out = reel.run("sessions", "--json", *args).stdout.decode()
    return [json.loads(line)["id"] for line in out.splitlines()]


def test_sessions_options_filter_and_order(reel):
    for sid in ("team/alpha", "team/beta", "ünï", "other"):
        reel.ingest(sid, [{"type": "message"}])
        time.sleep(0.003)
    reel.ingest("team/alpha", [{"type": "session.ended"}])
    assert ids(reel, "--order", "id") == ["other", "team/alpha", "team/beta", "ünï"]
    assert ids(reel) == ["team/alpha", "other", "ünï", "team/beta"]  # recent by default
    assert ids(reel, "--order", "id", "--prefix", "team/") == ["team/alpha", "team/beta"]
    assert ids(reel, "--prefix", "ünï") == ["ünï"]
    assert ids(reel, "--order", "recent") == ["team/alpha", "other", "ünï", "team/beta"]
    assert ids(reel, "--order", "recent", "--status", "active") == ["other", "ünï", "team/beta"]
    assert ids(reel, "--order", "recent", "--status", "active", "--prefix", "team") == [
        "team/beta"]
    assert ids(reel, "--status", "ended") == ["team/alpha"]
    assert ids(reel, "--order", "id", "--limit", "1") == ["other"]
    assert ids(reel, "--agent", "nobody") == []
    assert ids(reel, "--order", "recent", "--limit", "2") == ["team/alpha", "other"]
    table = reel.run("sessions", "--prefix", "ünï").stdout.decode()
    assert "ünï" in table and "team" not in table


def test_sessions_help_names_the_options(reel):
    out = reel.run("sessions", "--help").stdout.decode()
    for opt in ("--prefix P", "--order recent|id", "--agent NAME", "--status active|ended|deleted"):
        assert opt in out, out


@pytest.mark.parametrize("args,name", [
    (["--order", "foo"], "--order"), (["--status", "foo"], "--status"),
    (["--prefix", "a\x01"], "--prefix"), (["--prefix", "\x7f"], "--prefix"),
])
def test_sessions_bad_options_are_usage_errors(reel, args, name):
    reel.ingest("s", [{"type": "t"}])
    p = reel.run("sessions", *args, check=False)
    assert p.returncode == 2, p
    assert name.encode() in p.stderr, p.stderr


def test_cli_takes_any_id_and_refuses_control_characters(reel):
    reel.ingest("my session", [{"type": "t"}])
    assert reel.tail("my session")[0]["session_id"] == "my session"
    long_id = "é" * 512
    reel.ingest(long_id, [{"type": "t"}])
    assert reel.tail(long_id)[0]["session_id"] == long_id
    for bad in ("a\x1bb", "a\tb", "é" * 512 + "x", ".."):
        p = reel.run("ingest", "--session", bad, "--quiet", input=b'{"type":"t"}\n', check=False)
        assert p.returncode == 2, (bad, p)
        assert b"invalid session id" in p.stderr
        assert b"\x1b" not in p.stderr  # control bytes are not echoed to the terminal
    assert ids(reel, "--order", "id") == sorted(["my session", long_id])


def unpack(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    with tarfile.open(FIXTURE) as t:
        t.extractall(d)
    return str(d)


def test_format1_read_only_commands_do_not_upgrade(tmp_path):
    from clihelp import Reel
    reel = Reel(unpack(tmp_path))
    before = open(os.path.join(reel.data, "data.mdb"), "rb").read()
    assert ids(reel, "--order", "recent") == FIXTURE_RECENT
    p = reel.run("verify")
    assert b"ok: 5 sessions, 9 events" in p.stdout + p.stderr
    assert open(os.path.join(reel.data, "data.mdb"), "rb").read() == before


def test_format1_upgrades_on_the_first_write(tmp_path):
    from clihelp import Reel
    reel = Reel(unpack(tmp_path))
    p = reel.run("ingest", "--session", "new one", "--quiet", input=b'{"type":"t"}\n')
    assert p.stderr.count(b"upgraded") == 1, p.stderr
    assert ids(reel, "--order", "recent") == ["new one"] + FIXTURE_RECENT
    p = reel.run("verify")
    assert b"ok: 6 sessions, 10 events" in p.stdout + p.stderr, p
    assert [e["type"] for e in reel.tail("s-alpha")] == [
        "session.started", "message", "session.ended", "session.started", "message"]
    p = reel.run("ingest", "--session", "new one", "--quiet", input=b'{"type":"t"}\n')
    assert b"upgraded" not in p.stderr


def test_export_import_keeps_any_id(reel, tmp_path):
    from clihelp import Reel
    long_a, long_b = "ü" * 500 + "a", "ü" * 500 + "b"  # 1001 bytes each, one shared prefix
    for sid in ("team/alpha", "my session", long_a, long_b):
        reel.ingest(sid, [{"type": "session.started"}, {"type": "message"}])
    path = tmp_path / "all.jsonl.zst"
    reel.run("export", "-o", str(path), "--quiet")
    copy = Reel(str(tmp_path / "copy"))
    copy.run("import", str(path))
    assert ids(copy) == ids(reel)
    for sid in ("team/alpha", long_b):
        assert [e["type"] for e in copy.tail(sid)] == ["session.started", "message"]
    one = tmp_path / "one.jsonl"
    reel.run("export", "--session", long_a, "--compression", "none", "-o", str(one), "--quiet")
    lines = [json.loads(x) for x in one.read_text().splitlines()]
    assert [x["session_id"] for x in lines if "record" not in x] == [long_a, long_a]
    p = copy.run("verify")
    assert b"ok: 4 sessions" in p.stdout + p.stderr
