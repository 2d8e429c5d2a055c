"""The native logs of a real ACP agent (tests/cases/agents/acp/claude-code-acp-*, recorded
by tests/cli/acp_real/record.sh) ingested with `reel ingest --format acp`: every
assistant text, tool name, tool input, tool result, permission and prompt of the native
lines, read here from the protocol itself (not from the converter), is in the
transcript; nothing is unparsed."""
import json
import pathlib

import pytest

CASES = sorted((pathlib.Path(__file__).parent.parent / "cases" / "agents" / "acp").glob("claude-code-acp-*"))


def facts(lines):
    f = {"text": "", "tools": {}, "results": [], "perms": {}, "prompts": []}
    for line in lines:
        m = json.loads(line)
        u = (m.get("params") or {}).get("update") or {}
        kind = u.get("sessionUpdate")
        if kind == "agent_message_chunk":
            f["text"] += (u.get("content") or {}).get("text", "")
        elif kind in ("tool_call", "tool_call_update"):
            t = f["tools"].setdefault(u["toolCallId"], {})
            if kind == "tool_call" and "title" in u and "name" not in t:
                t["name"] = u["title"]
            if u.get("rawInput"):
                t["input"] = u["rawInput"]
            for c in u.get("content") or []:
                if u.get("status") in ("completed", "failed") and (c.get("content") or {}).get("text"):
                    f["results"].append((u["toolCallId"], c["content"]["text"]))
        elif m.get("method") == "session/request_permission":
            f["perms"][str(m["id"])] = None
        elif "result" in m and isinstance(m["result"], dict) and "outcome" in m["result"]:
            f["perms"][str(m["id"])] = m["result"]["outcome"].get("optionId")
        elif m.get("method") == "session/prompt":
            f["prompts"] += [b["text"] for b in m["params"]["prompt"] if b.get("type") == "text"]
    return f


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_acp_log_is_complete_in_the_transcript(reel, case):
    lines = [l for l in (case / "input.jsonl").read_text().splitlines() if l.strip()]
    want = facts(lines)
    reel.run("ingest", "--session", "s", "--format", "acp", "--quiet", str(case / "input.jsonl"))
    events = reel.tail("s")
    assert not [e for e in events if e["type"] == "agent.unparsed"]
    t = json.loads(reel.run("transcript", "--session", "s").stdout)
    items = t["items"]
    said = "".join(i.get("text", "") for i in items if i.get("role") == "assistant" and i["kind"] == "message")
    assert said == want["text"]
    users = [i.get("text") for i in items if i.get("role") == "user"]
    assert users == want["prompts"]
    calls = {i["call_id"]: i for i in items if i["kind"] == "tool_call"}
    assert set(calls) == set(want["tools"])
    for cid, tool in want["tools"].items():
        assert calls[cid]["name"] == tool["name"]
        assert calls[cid].get("arguments") == tool.get("input", calls[cid].get("arguments"))
    for cid, text in want["results"]:
        assert calls[cid]["result"]["output"] == text
    perms = {p["permission_id"]: p for p in t["permissions"]}
    assert set(perms) == set(want["perms"])
    for pid, opt in want["perms"].items():
        assert perms[pid]["resolution"].get("option_id") == opt
    md = reel.run("transcript", "--session", "s", "--format", "markdown").stdout.decode()
    for pid in want["perms"]:
        assert f"#### Permission `{pid}`" in md
