"""reel ingest --format X (issue 17): a byte order mark, input without the agent's start
line, and the session record's agent."""
import json
import re
import pathlib

import pytest

AGENTS = pathlib.Path(__file__).parent.parent / "cases" / "agents"

# (format, case, what marks the agent's own start line)
CASES = [
    ("claude", "basic", '"subtype":"init"'),
    ("amp", "basic", '"subtype":"init"'),
    ("codex", "basic", '"thread.started"'),
    ("opencode", "run", None),  # `opencode run` has no start line at all
    ("acp", "basic", '"result":{"sessionId"'),
]


def lines_of(agent, case, drop=None):
    text = (AGENTS / agent / case / "input.jsonl").read_text(encoding="utf-8")
    return [l for l in text.splitlines(keepends=True) if not (drop and drop in l)]


def started(events):
    return [e for e in events if e["type"] == "session.started"]


@pytest.mark.parametrize("agent,case,init", CASES)
def test_input_without_a_start_line_starts_the_session_once(reel, agent, case, init):
    body = "".join(lines_of(agent, case, init)).encode()
    reel.run("ingest", "--session", "s", "--format", agent, "--quiet", input=body)
    events = reel.tail("s")
    assert len(started(events)) == 1, [e["type"] for e in events]
    first = next(e for e in events if e["type"] != "agent.native")
    assert first["type"] == "session.started"
    assert first["data"]["agent"] == agent
    assert not [e for e in events if e["type"] == "agent.unparsed"]
    # the whole file, start line included, also starts once
    reel.run("ingest", "--session", "full", "--format", agent, "--quiet",
             input="".join(lines_of(agent, case)).encode())
    assert len(started(reel.tail("full"))) == 1
    # stable ids: ingesting again appends nothing, the synthetic start included
    again = reel.run("ingest", "--session", "s", "--format", agent, input=body)
    assert b"0 events appended" in again.stderr


@pytest.mark.parametrize("agent,case,init", CASES)
def test_a_byte_order_mark_is_skipped(reel, agent, case, init):
    body = "".join(lines_of(agent, case)).encode()
    reel.run("ingest", "--session", "plain", "--format", agent, "--quiet", input=body)
    reel.run("ingest", "--session", "bom", "--format", agent, "--quiet",
             input=b"\xef\xbb\xbf" + body)
    plain, bom = reel.tail("plain"), reel.tail("bom")
    assert not [e for e in bom if e["type"] == "agent.unparsed"]
    # item ids derive from the first line, BOM included: compare without their prefix
    norm = lambda evs: [re.sub(r"itm_[0-9a-f]{12}_", "itm_", json.dumps([e["type"], e["data"]]))
                        for e in evs]
    assert norm(bom) == norm(plain)
    # the first line is kept exactly, as a string since it is not JSON any more
    out = reel.run("tail", "--session", "bom", "--include-raw").stdout.decode()
    raws = [json.loads(l)["raw"] for l in out.splitlines() if l]
    first_raw = [r for r in raws if isinstance(r, str)]
    assert first_raw and all(r.startswith("\ufeff") for r in first_raw)


@pytest.mark.parametrize("agent,case,init", CASES)
def test_the_session_record_names_the_agent(reel, agent, case, init):
    reel.run("ingest", "--session", "s", "--format", agent, "--quiet",
             input="".join(lines_of(agent, case)).encode())
    rec = json.loads(reel.run("sessions", "--json").stdout)
    assert rec["agent"] == agent
    stats = json.loads(reel.run("stats", "--json").stdout)
    assert stats["by_agent"] == {agent: rec["event_count"]}
    listed = reel.run("sessions", "--agent", agent).stdout.decode()
    assert "s" in listed


def test_universal_ingest_leaves_the_agent_alone(reel):
    reel.ingest("u", [{"type": "note"}])
    rec = json.loads(reel.run("sessions", "--json").stdout)
    assert rec["agent"] is None


def test_two_files_in_one_session_do_not_share_item_ids(reel):
    for case in ("basic", "numeric-ids"):
        reel.run("ingest", "--session", "s", "--format", "acp", "--quiet",
                 str(AGENTS / "acp" / case / "input.jsonl"))
    t = json.loads(reel.run("transcript", "--session", "s").stdout)
    users = [i["text"] for i in t["items"] if i.get("role") == "user"]
    assert "Clean the build dir" in users and "Delete old.txt and list the folder" in users
