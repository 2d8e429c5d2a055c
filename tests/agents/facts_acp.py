"""facts_acp -- what a real ACP agent's log says, read from the protocol itself (JSON-RPC
session/update notifications, permission requests and replies, prompts), never through
reel's converter. Used by tests/agents/test_acp.py (live runs) and
tests/cli/test_acp_real_goldens.py (the recorded golden cases)."""
import json


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


def assert_faithful(want, events, t, md):
    """Every fact of the native log is in the session: no agent.unparsed; the assistant
    text, the prompts, each tool call's name, input and result, each permission and its
    answer in the transcript 't' (JSON) and the Markdown 'md'."""
    assert not [e for e in events if e["type"] == "agent.unparsed"]
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
    for pid in want["perms"]:
        assert f"#### Permission `{pid}`" in md
