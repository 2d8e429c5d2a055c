"""A real ACP agent through `reel run --agent acp`: @zed-industries/claude-code-acp (pinned
in tests/agents/acp/) driving Claude Code against a scripted Anthropic API on 127.0.0.1
(fake/anthropic_acp.mjs). Scenarios: tool calls (a listing, a failing read), a native
resume (session/resume) and a refused permission (request id 0). The native log of a run
is both sides of the JSON-RPC conversation, rebuilt from the events' raw lines in the
order they were stored; facts_acp reads it without the converter and every fact must be
in the session. Under REEL_RECORD_GOLDEN=1 the logs become the golden cases
tests/cases/agents/acp/claude-code-acp-<version>-<scenario>/."""
import json
import re
import subprocess

import pytest

import agentlib
from agentlib import REEL, Fake, cleanup, events, sandbox, save_golden, transcript, transcript_md
from facts_acp import assert_faithful, facts

PKG = agentlib.HERE / "acp" / "node_modules" / "@zed-industries" / "claude-code-acp"
BIN = agentlib.HERE / "acp" / "node_modules" / ".bin" / "claude-code-acp"

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="claude-code-acp not installed (tests/agents/run.sh installs it)")


def version():
    return json.loads((PKG / "package.json").read_text())["version"]


def run(sb, api, session, prompt):
    env = sb.env(IS_SANDBOX="1", ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-fake",
                 DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1", DISABLE_AUTOUPDATER="1",
                 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    p = subprocess.run([REEL, "run", "--data", str(sb.data), "--session", session, "--agent", "acp",
                        "--quiet", "--agent-bin", str(BIN), prompt], cwd=sb.work, env=env,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr


def native_log(evs, run_index):
    """The lines of run 'run_index' (0 = the first) in stored order: what the agent wrote
    (o) and what the runner wrote to it (i), each line once."""
    runs, seen, out = [], set(), []
    for e in evs:
        rid, _, local = e["event_id"].partition("/")
        if rid not in runs:
            runs.append(rid)
        m = re.fullmatch(r"([oi])(\d+)\.\d+", local)
        if runs.index(rid) != run_index or not m or e.get("raw") is None:
            continue
        key = (rid, local.split(".")[0])
        if key not in seen:
            seen.add(key)
            out.append(json.dumps(e["raw"], ensure_ascii=False, separators=(",", ":")))
    return out


def test_real_acp_agent_tools_resume_and_refused_permission(tmp_path):
    sb = sandbox(tmp_path)
    (sb.work / "a.txt").write_text("hi\n")
    try:
        with Fake("anthropic_acp.mjs") as api:
            run(sb, api, "tools", "List the files, then read missing.txt")
            run(sb, api, "tools", "Again please")  # resumes natively (session/resume)
            run(sb, api, "perm", "Delete a.txt")
        assert (sb.work / "a.txt").exists()  # the refused delete did not happen
        for session in ("tools", "perm"):
            assert not [e for e in events(sb.data, session) if e["type"] == "agent.unparsed"]
        for session, idx, scenario in (("tools", 0, "tools"), ("tools", 1, "resume"),
                                       ("perm", 0, "refused-permission")):
            lines = native_log(events(sb.data, session), idx)
            f = tmp_path / f"{scenario}.jsonl"
            f.write_text("\n".join(lines) + "\n")
            save_golden("acp", f"claude-code-acp-{version()}", scenario, f, sb)
            want = facts(lines)
            if scenario == "resume":
                assert any(json.loads(ln).get("method") == "session/resume" for ln in lines)
            else:
                assert want["tools"], scenario
            if scenario == "refused-permission":
                assert want["perms"] == {"0": "reject"}, want["perms"]  # request id 0, refused
            # the run's log alone, converted, holds every fact of it
            one = sandbox(tmp_path)
            agentlib.reel("ingest", "--data", str(one.data), "--session", "s", "--format", "acp",
                          "--quiet", str(f))
            assert_faithful(want, events(one.data, "s"), transcript(one.data, "s"),
                            transcript_md(one.data, "s"))
            cleanup(one)
    finally:
        cleanup(sb)
