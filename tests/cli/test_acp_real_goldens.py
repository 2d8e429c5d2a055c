"""The native logs of a real ACP agent (tests/cases/agents/acp/claude-code-acp-*, recorded
by tests/agents/test_acp.py under `make record-agents`) ingested with `reel ingest --format acp`: every
assistant text, tool name, tool input, tool result, permission and prompt of the native
lines, read here from the protocol itself (not from the converter), is in the
transcript; nothing is unparsed."""
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "agents"))
from facts_acp import assert_faithful, facts  # noqa: E402  (one reading, shared with tests/agents/test_acp.py)

CASES = sorted((pathlib.Path(__file__).parent.parent / "cases" / "agents" / "acp").glob("claude-code-acp-*"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_acp_log_is_complete_in_the_transcript(reel, case):
    lines = [l for l in (case / "input.jsonl").read_text().splitlines() if l.strip()]
    want = facts(lines)
    reel.run("ingest", "--session", "s", "--format", "acp", "--quiet", str(case / "input.jsonl"))
    events = reel.tail("s")
    t = json.loads(reel.run("transcript", "--session", "s").stdout)
    md = reel.run("transcript", "--session", "s", "--format", "markdown").stdout.decode()
    assert_faithful(want, events, t, md)
