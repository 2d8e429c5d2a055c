"""facts_claude -- what Claude Code's native output says, read without reel's converters.

stream_facts(lines): `claude -p --output-format stream-json --verbose` output (one or more
processes, e.g. a run and its resume, concatenated). Assistant texts are the text blocks of
`assistant` lines; tools are the tool_use blocks, paired with the `tool_result` blocks of
`user` lines by tool_use_id. Usage, from what the results say: when every result has
model_usage_since_last_result (2.1.x), the sum of those; else, when they have modelUsage,
its sums and total_cost_usd are running totals (across the turns of one process and, the
cost being restored, across --resume), so the session's total is the last figures of each
count (a new count starts where a total goes down); else usage and total_cost_usd are
running totals of each process (system/init starts one).

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


MODEL_KEYS = (("inputTokens", "input_tokens"), ("outputTokens", "output_tokens"),
              ("cacheReadInputTokens", "cached_input_tokens"),
              ("cacheCreationInputTokens", "cache_creation_input_tokens"))


def _model_sums(per_model: dict[str, Any]) -> dict[str, float]:
    out = {ours: sum(m.get(native, 0) for m in per_model.values()) for native, ours in MODEL_KEYS}
    out["cost_usd"] = sum(m.get("costUSD", 0) for m in per_model.values())
    return out


def _add(total: dict[str, float], part: dict[str, float]) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + v


def stream_facts(lines: list[str]) -> Facts:
    objs = _objects(lines)
    facts = Facts()
    _texts_and_tools(objs, facts)
    results = [o for o in objs if o.get("type") == "result"]
    usage: dict[str, float] = {}
    if results and all("model_usage_since_last_result" in r for r in results):
        # 2.1.x: each result says what it added.
        for r in results:
            _add(usage, _model_sums(r["model_usage_since_last_result"] or {}))
    elif results and all(r.get("modelUsage") for r in results):
        # modelUsage and total_cost_usd are running totals (across the turns of a process
        # and, the cost being restored, across --resume): every count that starts again
        # (a total goes down) adds its last figures.
        last = None
        for r in results:
            now = _model_sums(r["modelUsage"])
            now["cost_usd"] = r.get("total_cost_usd", now["cost_usd"])
            if last is not None and any(now[k] < last[k] for k in now):
                _add(usage, last)
            last = now
        _add(usage, last or {})
    else:
        # usage and total_cost_usd: running totals of each process (from its init line).
        last = None
        for o in objs:
            if o.get("type") == "system" and o.get("subtype") == "init" and last is not None:
                _add(usage, last)
                last = None
            elif o.get("type") == "result":
                u = o.get("usage") or {}
                last = {ours: u[native] for native, ours in USAGE_KEYS if native in u}
                if "total_cost_usd" in o:
                    last["cost_usd"] = o["total_cost_usd"]
        _add(usage, last or {})
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
