"""facts_claude -- what Claude Code's native output says, read without reel's converters.

stream_facts(lines): `claude -p --output-format stream-json --verbose` output (one or more
processes, e.g. a run and its resume, concatenated). Assistant texts are the text blocks of
`assistant` lines; tools are the tool_use blocks, paired with the `tool_result` blocks of
`user` lines by tool_use_id. Usage: each process (from its system/init line) reports
running totals on its `result` lines, so the process's last result is its total; the
session's token total is the sum over processes. The cost of a resumed process includes
the earlier ones (the CLI restores it; its modelUsage then counts more input tokens than
its usage): then it adds its total_cost_usd less the previous process's.

transcript_facts(lines): a project transcript (~/.claude/projects/<dir>/<id>.jsonl). The
same texts and tools; usage is on the assistant lines (every line of one message repeats
it: counted once per message id); the cost is the last `cost-state` line's totalCostUSD
(a running total that survives a resume).
"""
from __future__ import annotations

import json
from typing import Any

from agentlib import Facts, ToolFact

USAGE_KEYS = (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
              ("cache_read_input_tokens", "cached_input_tokens"),
              ("cache_creation_input_tokens", "cache_creation_input_tokens"))


def _objects(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for ln in lines:
        ln = ln.strip()
        if ln:
            o = json.loads(ln)
            if isinstance(o, dict):
                out.append(o)
    return out


def _result_text(block: dict[str, Any]) -> str:
    c = block.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(x.get("text", "") for x in c if isinstance(x, dict))
    return ""


def _texts_and_tools(objs: list[dict[str, Any]], facts: Facts) -> None:
    tools: dict[str, ToolFact] = {}
    for o in objs:
        msg = o.get("message")
        content = msg.get("content") if isinstance(msg, dict) else None
        if o.get("type") == "assistant":
            if isinstance(content, str):
                facts.assistant_texts.append(content)
                continue
            for b in content or []:
                if b.get("type") == "text":
                    facts.assistant_texts.append(b.get("text", ""))
                elif b.get("type") == "tool_use" and b.get("id") not in tools:
                    tools[b["id"]] = ToolFact(b["name"], b.get("input"))
                    facts.tools.append(tools[b["id"]])
        elif o.get("type") == "user" and isinstance(content, list):
            for b in content:
                if b.get("type") == "tool_result" and b.get("tool_use_id") in tools:
                    t = tools[b["tool_use_id"]]
                    t.result = _result_text(b)
                    t.failed = bool(b.get("is_error"))


def stream_facts(lines: list[str]) -> Facts:
    objs = _objects(lines)
    facts = Facts()
    _texts_and_tools(objs, facts)
    usage: dict[str, float] = {}
    last: dict[str, Any] | None = None  # the current process's last result
    prev_cost = [0.0]  # the previous process's final total_cost_usd

    def close() -> None:
        if last is None:
            return
        u = last.get("usage") or {}
        for native, ours in USAGE_KEYS:
            usage[ours] = usage.get(ours, 0) + u.get(native, 0)
        # After --resume the CLI restores the session's cost: total_cost_usd (and
        # modelUsage) then cover the earlier processes too, while usage covers this one.
        mu = last.get("modelUsage") or {}
        restored = sum(m.get("inputTokens", 0) for m in mu.values()) > u.get("input_tokens", 0)
        cost = last.get("total_cost_usd", 0)
        usage["cost_usd"] = usage.get("cost_usd", 0) + cost - (prev_cost[0] if restored else 0)
        prev_cost[0] = cost

    for o in objs:
        if o.get("type") == "system" and o.get("subtype") == "init":
            close()
            last = None
        elif o.get("type") == "result":
            last = o
    close()
    facts.usage = usage
    return facts


def transcript_facts(lines: list[str]) -> Facts:
    objs = _objects(lines)
    facts = Facts()
    _texts_and_tools(objs, facts)
    usage: dict[str, float] = {k: 0 for _, k in USAGE_KEYS}
    seen = set()
    cost = None
    for o in objs:
        if o.get("type") == "assistant":
            msg = o.get("message")
            if not isinstance(msg, dict) or msg.get("id") in seen or not isinstance(msg.get("usage"), dict):
                continue
            seen.add(msg.get("id"))
            for native, ours in USAGE_KEYS:
                usage[ours] += msg["usage"].get(native, 0) or 0
        elif o.get("type") == "cost-state":
            cost = o.get("totalCostUSD")
    if cost is not None:
        usage["cost_usd"] = cost
    facts.usage = usage
    return facts
