"""reel ingest: universal JSONL and native agent transcripts (--format)."""
import pathlib

import pytest

AGENTS = pathlib.Path(__file__).parent.parent / "cases" / "agents"


def test_bad_line_rejects_its_chunk_and_names_the_line(reel):
    reel.ingest("s", [{"type": "ok"}])
    p = reel.run("ingest", "--session", "s", input=b'{"type":"a"}\n{"type":"b"\n', check=False)
    assert p.returncode == 1 and b"line 2" in p.stderr
    assert [e["type"] for e in reel.tail("s")] == ["ok"], "the bad chunk appended nothing"


@pytest.mark.parametrize("agent", ["claude", "codex", "opencode", "amp", "acp"])
def test_native_transcripts_convert_and_reingest_appends_nothing(reel, agent):
    case = AGENTS / agent / "basic"
    if not (case / "input.jsonl").exists():
        pytest.skip(f"no basic case for {agent}")
    reel.run("ingest", "--session", agent, "--format", agent, str(case / "input.jsonl"))
    events = reel.tail(agent)
    assert events and not [e for e in events if e["type"] == "agent.unparsed"]
    assert all(e["event_id"].startswith(agent + "-") for e in events)
    again = reel.run("ingest", "--session", agent, "--format", agent, str(case / "input.jsonl"))
    assert b"0 events appended" in again.stderr
    assert len(reel.tail(agent)) == len(events)


def test_unknown_format_is_a_usage_error(reel):
    p = reel.run("ingest", "--session", "s", "--format", "cobol", input=b"", check=False)
    assert p.returncode == 2 and b"cobol" in p.stderr


def test_secrets_are_redacted_by_default_and_kept_with_redact_off(reel, tmp_path):
    import random
    import string
    tok = "ghp_" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(36))
    ev = {"type": "item.completed", "data": {"output": "GITHUB_TOKEN=" + tok}, "raw": "env: GITHUB_TOKEN=" + tok}
    reel.ingest("r", [ev])
    out = reel.run("tail", "--session", "r", "--include-raw").stdout.decode()
    (got,) = [__import__("json").loads(line) for line in out.split("\n") if line]
    assert got["data"]["output"] == "GITHUB_TOKEN=[REDACTED:github_token]"
    assert got["raw"] == "env: GITHUB_TOKEN=[REDACTED:github_token]"
    assert got["redactions"] == {"count": 2, "kinds": ["github_token"]}
    data = pathlib.Path(reel.data) / "data.mdb"
    assert data.read_bytes().count(tok.encode()) == 0
    line = (__import__("json").dumps(ev) + "\n").encode()
    reel.run("ingest", "--session", "k", "--redact", "off", "--quiet", input=line)
    (kept,) = reel.tail("k")
    assert kept["data"]["output"] == "GITHUB_TOKEN=" + tok and "redactions" not in kept
    assert data.read_bytes().count(tok.encode()) == 2
    bad = reel.run("ingest", "--session", "x", "--redact", str(tmp_path / "missing"), input=b"", check=False)
    assert bad.returncode == 2 and b"cannot open" in bad.stderr
