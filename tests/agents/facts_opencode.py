"""facts_opencode -- what `opencode run --format json` output says, read without reel.

Written from the native format (opencode 1.18), independently of agents/opencode.c:
each line is {type, timestamp, sessionID, part | error}.

  text        part.text: an assistant text (printed once, when the part ended)
  reasoning   part.text: reasoning (only with --thinking)
  tool_use    part.tool, part.state.input, state.output (status completed) or
              state.error (status error): one tool call and its result
  step_finish part.tokens {input, output, reasoning, cache {read, write}} and part.cost:
              what THIS step (one model call) used; the session's totals are their sum
              (the assistant message's own tokens/cost in `opencode export` agree)
  error       error {name, data {message, statusCode?}}
"""
from __future__ import annotations

import json
from pathlib import Path

from agentlib import Facts, ToolFact

USAGE_KEYS = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_input_tokens",
              "cache_creation_input_tokens", "cost_usd")


def lines_of(paths: Path | list[Path]) -> list[dict]:
    out = []
    for p in paths if isinstance(paths, list) else [paths]:
        for ln in p.read_text(encoding="utf-8").splitlines():
            if ln.strip():
                out.append(json.loads(ln))
    return out


def _add_tokens(usage: dict[str, float], tokens: dict | None, cost: float | None) -> None:
    tokens = tokens or {}
    cache = tokens.get("cache") or {}
    for key, val in (("input_tokens", tokens.get("input")),
                     ("output_tokens", tokens.get("output")),
                     ("reasoning_tokens", tokens.get("reasoning")),
                     ("cached_input_tokens", cache.get("read")),
                     ("cache_creation_input_tokens", cache.get("write")),
                     ("cost_usd", cost)):
        if isinstance(val, (int, float)):
            usage[key] = usage.get(key, 0) + val


def facts(paths: Path | list[Path]) -> Facts:
    f = Facts()
    for o in lines_of(paths):
        t, part = o.get("type"), o.get("part") or {}
        if t == "text" and part.get("text"):
            f.assistant_texts.append(part["text"])
        elif t == "tool_use":
            st = part.get("state") or {}
            status = st.get("status")
            result = st.get("output") if status == "completed" else st.get("error")
            f.tools.append(ToolFact(part.get("tool"), st.get("input"),
                                    result if isinstance(result, str) else None,
                                    status == "error"))
        elif t == "step_finish":
            _add_tokens(f.usage, part.get("tokens"), part.get("cost"))
    return f


def errors(paths: Path | list[Path]) -> list[dict]:
    return [o["error"] for o in lines_of(paths) if o.get("type") == "error"]


def export_totals(export: dict) -> dict[str, float]:
    """opencode's own accounting: the sum of the assistant messages' tokens and cost in
    `opencode export SESSION` (each message's totals over its steps)."""
    usage: dict[str, float] = {}
    for m in export.get("messages", []):
        info = m.get("info") or {}
        if info.get("role") == "assistant":
            _add_tokens(usage, info.get("tokens"), info.get("cost"))
    return usage


def bus_frames(path: Path) -> list[dict]:
    return lines_of(path)


def bus_facts(path: Path) -> Facts:
    """The same facts from `opencode serve`'s event bus ({type, properties} frames, as the
    /event SSE stream gives them): parts arrive in message.part.updated, re-sent as they
    grow; the last version of each part (by id) counts. The role of a part's message comes
    from message.updated. A step-finish part is one model call (counted once per id)."""
    roles: dict[str, str] = {}
    parts: dict[str, dict] = {}
    order: list[str] = []
    for o in lines_of(path):
        t, pr = o.get("type"), o.get("properties") or {}
        if t == "message.updated":
            info = pr.get("info") or {}
            roles[info.get("id")] = info.get("role")
        elif t == "message.part.updated":
            p = pr.get("part") or {}
            if p.get("id") not in parts:
                order.append(p.get("id"))
            parts[p.get("id")] = p
    f = Facts()
    for pid in order:
        p = parts[pid]
        if p.get("type") == "text" and roles.get(p.get("messageID")) == "assistant":
            if p.get("text"):
                f.assistant_texts.append(p["text"])
        elif p.get("type") == "tool":
            st = p.get("state") or {}
            status = st.get("status")
            if status in ("completed", "error"):
                result = st.get("output") if status == "completed" else st.get("error")
                f.tools.append(ToolFact(p.get("tool"), st.get("input"),
                                        result if isinstance(result, str) else None,
                                        status == "error"))
        elif p.get("type") == "step-finish":
            _add_tokens(f.usage, p.get("tokens"), p.get("cost"))
    return f
