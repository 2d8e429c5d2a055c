"""The harness itself (agentlib), on reel's own mock agent: the tee wrapper keeps the native
output byte for byte, the fidelity check finds what is there and reports what is not."""
import json

from agentlib import REEL, Facts, ToolFact, check_fidelity, events, reel_run, sandbox, cleanup


def test_tee_wrapper_keeps_native_output_and_fidelity_check_judges(tmp_path):
    sb = sandbox(tmp_path)
    try:
        r = reel_run(sb, "h1", "mock", REEL, ["--scenario", "tools", "--delay", "0"], "hello",
                     sb.env(), timeout=60)
        assert r.returncode == 0, r.stderr
        lines = r.native_lines()
        assert lines and all(json.loads(ln) for ln in lines)
        evs = events(sb.data, "h1")
        # every native line is some event's raw
        raws = {json.dumps(e["raw"], sort_keys=True) for e in evs if e.get("raw") is not None}
        for ln in lines:
            assert json.dumps(json.loads(ln), sort_keys=True) in raws
        texts, tools = [], []
        for ln in lines:
            o = json.loads(ln)
            if o.get("type") == "assistant":
                for b in o["message"]["content"]:
                    if b["type"] == "text":
                        texts.append(b["text"])
                    elif b["type"] == "tool_use":
                        tools.append(ToolFact(b["name"], b["input"]))
        assert texts and tools
        assert check_fidelity(Facts(texts, tools), sb.data, "h1") == []
        bad = check_fidelity(Facts(["no such text anywhere"], [ToolFact("NoSuchTool", {"x": "nowhere"})],
                                   {"output_tokens": 123456789}), sb.data, "h1")
        assert len(bad) == 5, bad  # text, name, input leaf, usage in transcript and stats
    finally:
        cleanup(sb)
