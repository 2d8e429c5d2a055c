"""facts_codex -- what Codex's `codex exec --json` output says, read without reel's converters.

Two formats are read, from Codex's own output as it is printed:
  - the current ThreadEvent lines (0.4x and later): thread.started {thread_id}, turn.started,
    item.started / item.updated / item.completed {item: {id, type, ...}}, turn.completed
    {usage}, turn.failed {error}, error {message};
  - the legacy Event lines of older releases: {"id": ..., "msg": {"type": ...}} with
    agent_message {message}, agent_reasoning {text}, exec_command_begin {call_id, command},
    exec_command_end {call_id, stdout, stderr, aggregated_output, exit_code},
    patch_apply_begin {call_id, changes}, patch_apply_end {call_id, stdout, stderr, success},
    mcp_tool_call_begin/end {call_id, invocation {server, tool, arguments}, result},
    token_count and task_complete. token_count is {info: {total_token_usage,
    last_token_usage}} (a running total) since 0.3x; before, the flat usage of one model
    response ({input_tokens, output_tokens, ...}), which the client added up.

Usage: Codex reports the thread's running total (turn.completed.usage; legacy
token_count.info.total_token_usage). After `codex exec resume`, the total includes the
earlier runs of the thread, so the agent's own final totals are the LAST report of each
thread (summed over threads), never the sum of the reports.
"""
from __future__ import annotations

import json
from typing import Any

from agentlib import Facts, ToolFact

USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "cached_input_tokens": "cached_input_tokens",
    "output_tokens": "output_tokens",
    "reasoning_output_tokens": "reasoning_tokens",
    "cache_write_input_tokens": "cache_creation_input_tokens",
}


def _usage(u: dict[str, Any]) -> dict[str, float]:
    return {ours: u[k] for k, ours in USAGE_KEYS.items() if isinstance(u.get(k), (int, float))}


def read(lines: list[str]) -> Facts:
    f = Facts()
    last_total: dict[str, dict[str, float]] = {}  # thread id -> its last running total
    thread = ""
    tools: dict[str, ToolFact] = {}  # native call id -> fact
    for ln in lines:
        o = json.loads(ln)
        msg = o.get("msg")
        if isinstance(msg, dict) and "type" in msg:
            thread = _legacy(f, msg, tools, last_total, thread)
            continue
        t = o.get("type")
        if t == "thread.started":
            thread = o.get("thread_id", "")
        elif t == "turn.completed":
            last_total[thread] = _usage(o.get("usage") or {})
        elif t in ("item.started", "item.updated", "item.completed"):
            it = o.get("item") or {}
            kind, iid = it.get("type"), it.get("id")
            done = t == "item.completed"
            if kind in ("agent_message", "reasoning") and done and it.get("text"):
                f.assistant_texts.append(it["text"])
            elif kind == "command_execution":
                tf = tools.setdefault(iid, ToolFact("shell", {"command": it.get("command")}))
                if done:
                    tf.result = it.get("aggregated_output")
                    tf.failed = it.get("status") in ("failed", "declined")
            elif kind == "file_change":
                tf = tools.setdefault(iid, ToolFact("apply_patch", {"changes": it.get("changes")}))
                if done:
                    tf.failed = it.get("status") == "failed"
            elif kind == "mcp_tool_call":
                name = f"{it.get('server')}.{it.get('tool')}"
                tf = tools.setdefault(iid, ToolFact(name, it.get("arguments")))
                if done and isinstance(it.get("result"), dict):
                    texts = [c.get("text", "") for c in it["result"].get("content") or []
                             if isinstance(c, dict)]
                    tf.result = "".join(texts) or None
    f.tools = list(tools.values())
    for tot in last_total.values():
        for k, v in tot.items():
            f.usage[k] = f.usage.get(k, 0) + v
    return f


def _legacy(f: Facts, m: dict[str, Any], tools: dict[str, ToolFact],
            last_total: dict[str, dict[str, float]], thread: str) -> str:
    t = m["type"]
    if t == "session_configured":
        return m.get("session_id", thread)
    if t == "agent_message" and m.get("message"):
        f.assistant_texts.append(m["message"])
    elif t in ("agent_reasoning", "agent_reasoning_raw_content") and m.get("text"):
        f.assistant_texts.append(m["text"])
    elif t == "exec_command_begin":
        cmd = m.get("command")
        tools[m.get("call_id")] = ToolFact("shell", {"command": cmd})
    elif t == "exec_command_end":
        tf = tools.setdefault(m.get("call_id"), ToolFact("shell", {}))
        out = m.get("aggregated_output")
        if out is None:
            out = (m.get("stdout") or "") + (m.get("stderr") or "")
        tf.result = out
        tf.failed = m.get("exit_code") not in (0, None)
    elif t == "patch_apply_begin":
        tools[m.get("call_id")] = ToolFact("apply_patch", {"changes": m.get("changes")})
    elif t == "patch_apply_end":
        tf = tools.setdefault(m.get("call_id"), ToolFact("apply_patch", {}))
        tf.result = (m.get("stdout") or "") + (m.get("stderr") or "")
        tf.failed = not m.get("success", True)
    elif t == "mcp_tool_call_begin":
        inv = m.get("invocation") or {}
        tools[m.get("call_id")] = ToolFact(f"{inv.get('server')}.{inv.get('tool')}",
                                           inv.get("arguments"))
    elif t == "mcp_tool_call_end":
        tf = tools.setdefault(m.get("call_id"), ToolFact("mcp", {}))
        res = m.get("result") or {}
        if isinstance(res, dict) and "Err" in res:
            tf.result, tf.failed = str(res["Err"]), True
        elif isinstance(res, dict):
            ok = res.get("Ok", res)
            texts = [c.get("text", "") for c in (ok.get("content") or []) if isinstance(c, dict)]
            tf.result = "".join(texts) or None
            tf.failed = bool(ok.get("isError"))
    elif t == "token_count":
        info = m.get("info")
        if isinstance(info, dict) and isinstance(info.get("total_token_usage"), dict):
            last_total[thread] = _usage(info["total_token_usage"])  # a running total
        elif "input_tokens" in m or "output_tokens" in m:
            # older releases: the usage of one model response, added up by the client
            for k, v in _usage(m).items():
                f.usage[k] = f.usage.get(k, 0) + v
    return thread
