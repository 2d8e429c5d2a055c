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
