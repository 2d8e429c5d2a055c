"""Transcript projection golden cases: tests/cases/replay/<case>/ holds events.jsonl and
expected outputs: expected.json (latest), expected.at-<SEQ>.json (time travel) and
expected.md (Markdown). Adding a case means adding files, not code."""
import json
import pathlib

import pytest

CASES = pathlib.Path(__file__).parent.parent / "cases" / "replay"


def expectations():
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        for exp in sorted(case.glob("expected*")):
            yield pytest.param(case, exp, id=f"{case.name}/{exp.name}")


@pytest.mark.parametrize("case,expected", list(expectations()))
def test_transcript_matches_the_golden_file(reel, case, expected):
    reel.run("ingest", "--session", case.name, "--quiet", input=(case / "events.jsonl").read_bytes())
    args = ["transcript", "--session", case.name]
    parts = expected.name.split(".")
    if parts[1].startswith("at-"):
        args += ["--at", parts[1][3:]]
    if expected.suffix == ".md":
        got = reel.run(*args, "--format", "markdown").stdout.decode()
        assert got == expected.read_text()
    else:
        assert json.loads(reel.run(*args).stdout) == json.loads(expected.read_text())


def test_unknown_session_and_bad_format(reel):
    reel.ingest("x", [{"type": "a"}])
    p = reel.run("transcript", "--session", "nope", check=False)
    assert p.returncode == 1 and b"no session 'nope' in this data directory" in p.stderr
    p = reel.run("transcript", "--session", "x", "--format", "html", check=False)
    assert p.returncode == 2 and b"html" in p.stderr


def test_stats_count_types_tools_usage_and_errors(reel):
    reel.run("ingest", "--session", "universal-basic", "--quiet",
             input=(CASES / "universal-basic" / "events.jsonl").read_bytes())
    reel.run("ingest", "--session", "acp-envelopes", "--quiet",
             input=(CASES / "acp-envelopes" / "events.jsonl").read_bytes())
    st = json.loads(reel.run("stats", "--json").stdout)
    assert st["events"] == 24 + 13 and st["sessions"] == 2
    assert st["by_type"]["item.delta"] == 6 and st["by_type"]["acp.envelope"] == 13
    assert st["tool_calls"] == {"Bash": 1, "Run npm test": 1}
    assert st["usage"]["input_tokens"] == 1200 and st["errors"] == 1
    one = json.loads(reel.run("stats", "--json", "--session", "acp-envelopes").stdout)
    assert one["events"] == 13 and one["by_source"] == {"client": 2, "agent": 11}
    ranged = json.loads(reel.run("stats", "--json", "--after", "20", "--until", "30").stdout)
    assert ranged["events"] == 10 and ranged["first_position"] == 21
