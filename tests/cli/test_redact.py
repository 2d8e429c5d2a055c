"""`reel redact --data DIR` (redaction after the fact on a data directory, docs/REDACTION.md):
the bodies are rewritten, `reel verify` passes, the record names "cli", errors name the bad
value with exit status 1 (2 for usage) and change nothing, and `reel backup` (compacted)
leaves no byte of the secret. The secrets are random, made here."""
import json
import os
import random
import string
import subprocess

from clihelp import REEL

ALNUM = string.ascii_letters + string.digits


def secret():
    return "ZQSECRET" + "".join(random.choice(ALNUM) for _ in range(24))


def test_redact_on_a_data_directory_then_verify_and_compact(reel, tmp_path):
    sec = secret()
    reel.ingest("c1", [{"type": "tool.result", "data": {"output": "token " + sec}},
                       {"type": "tool.result", "data": {"output": "fine"}, "raw": "raw " + sec}])
    p = reel.run("redact", "c1", "--from", "1", "--to", "2", "--path", "data.output",
                 "--pattern", "ZQSECRET[A-Za-z0-9]+", "--kind", "zq")
    out = json.loads(p.stdout)
    assert out == {"session_id": "c1", "events": 2, "values": 3, "sequences": [1, 2],
                   "record_sequence": 3}
    assert reel.run("verify").returncode == 0
    got = reel.tail("c1")
    assert got[0]["data"] == {"output": "[REDACTED:path]"} and got[0]["redacted"] is True
    assert got[2]["type"] == "reel.redacted" and got[2]["data"]["by"] == "cli"
    assert got[2]["data"]["kinds"] == ["path", "zq"]
    assert sec not in json.dumps(got)
    dest = str(tmp_path / "compact")
    subprocess.run([REEL, "backup", "--data", reel.data, dest], check=True, timeout=60,
                   capture_output=True)
    with open(os.path.join(dest, "data.mdb"), "rb") as f:
        comp = f.read()
    assert sec.encode() not in comp and b"[REDACTED:zq]" in comp
    p = subprocess.run([REEL, "verify", "--data", dest], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_errors_name_the_value_and_change_nothing(reel):
    reel.ingest("c2", [{"type": "t", "data": {"output": "x"}}])
    before = reel.tail("c2")
    cases = [
        (["--from", "1", "--to", "5", "--path", "data"], 1, "'to' 5 is past the session's last sequence 1"),
        (["--from", "1", "--to", "1", "--path", "event_id"], 1, "path 'event_id'"),
        (["--from", "1", "--to", "1", "--pattern", "("], 1, "bad regex"),
        (["--from", "1", "--to", "1"], 2, "give at least one --path or --pattern"),
        (["--from", "0", "--to", "1", "--path", "data"], 2, "--from"),
        (["--to", "1", "--path", "data"], 2, "--from and --to are required"),
    ]
    for args, status, want in cases:
        p = reel.run("redact", "c2", *args, check=False)
        assert p.returncode == status, (args, p.stderr)
        assert want in p.stderr.decode(), (args, p.stderr)
    p = reel.run("redact", "nosuch", "--from", "1", "--to", "1", "--path", "data", check=False)
    assert p.returncode == 1 and b"no such session" in p.stderr
    assert reel.tail("c2") == before


def test_help_names_every_option():
    p = subprocess.run([REEL, "redact", "--help"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    for opt in ("--from", "--to", "--path", "--pattern", "--kind", "--server", "--data"):
        assert opt in p.stdout
    assert "reel backup" in p.stdout  # the compaction step is documented where it is needed
