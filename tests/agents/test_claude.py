"""The real Claude Code CLI (tests/agents/claude: @anthropic-ai/claude-code, pinned) through
`reel run --agent claude`, offline against tests/agents/fake/anthropic.mjs on 127.0.0.1.

The CLI is the platform package's native binary (the wrapper package's postinstall only
copies it over bin/claude.exe, so npm ci runs with --ignore-scripts). The environment points
it at the fake (ANTHROPIC_BASE_URL, a dummy ANTHROPIC_API_KEY), keeps its config in the
sandbox (CLAUDE_CONFIG_DIR), turns off nonessential traffic, and retries a failed API call
once (CLAUDE_CODE_MAX_RETRIES=1) so the error scenarios take about a second. The fake picks
its script from the prompt ("SCENARIO <name> WORKDIR <dir>", see anthropic.mjs).

Each scenario checks: the exit status, what really happened in the workspace, the universal
events (no agent.unparsed), the fidelity check against facts_claude (an independent reading
of the stream-json, usage totals included), and keeps the native output as a golden case
(tests/cases/agents/claude/<version>-<scenario>/).
"""
from __future__ import annotations

import json
import platform
import re
import subprocess
from pathlib import Path

import pytest

import agentlib
from agentlib import Fake, check_fidelity, cleanup, events, reel_run, sandbox, save_golden
from facts_claude import stream_facts, transcript_facts

HERE = Path(__file__).resolve().parent
ARCH = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
BIN = HERE / "claude" / "node_modules" / "@anthropic-ai" / f"claude-code-linux-{ARCH}" / "claude"
MODEL = "claude-sonnet-4-5"
# Variadic flags (--allowedTools A B ...) would take the prompt as one more value: '=' form.
ALLOW = "--allowedTools=Bash,Read,Edit"

needs_cli = pytest.mark.skipif(not BIN.exists(), reason="Claude Code not installed: tests/agents/run.sh runs npm ci")
CASES = sorted(d.name for d in (agentlib.CASES / "claude").iterdir()
               if (d / "input.jsonl").exists() and not d.name.startswith("broken"))


@pytest.fixture(scope="module")
def api():
    with Fake("anthropic.mjs") as f:
        yield f


@pytest.fixture(scope="module")
def version():
    return agentlib.version_of(str(BIN))


@pytest.fixture
def sb(tmp_path):
    s = sandbox(tmp_path)
    (s.work / "notes.txt").write_text("the secret word is PELICAN\n")
    (s.work / "todo.txt").write_text("nothing yet\n")
    yield s
    cleanup(s)


def claude_env(sb, api):
    return sb.env(
        CLAUDE_CONFIG_DIR=str(sb.home / ".claude"),
        ANTHROPIC_BASE_URL=api.url,
        ANTHROPIC_API_KEY="dummy",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_ENABLE_TELEMETRY="0",
        CLAUDE_CODE_MAX_RETRIES="1",
    )


def run(sb, api, session, scenario, args=(ALLOW,), reel_args=None):
    return reel_run(sb, session, "claude", str(BIN), ["--model", MODEL, *args],
                    f"SCENARIO {scenario} WORKDIR {sb.work}", claude_env(sb, api),
                    reel_args=reel_args, timeout=120)


def golden(version, scenario, native, sb):
    """save_golden, plus: the CLI names its project folder after the cwd with every
    non-alphanumeric character as '-' (-tmp-pytest-of-...-work); that form of the sandbox
    path becomes the same form of /tmp/reel-ws."""
    d = save_golden("claude", version, scenario, native, sb)
    if agentlib.RECORDING:
        f = d / "input.jsonl"
        text = f.read_text(encoding="utf-8")
        for real in {str(sb.root), str(Path(sb.root).resolve())}:
            text = text.replace(re.sub(r"[^A-Za-z0-9]", "-", real),
                                re.sub(r"[^A-Za-z0-9]", "-", agentlib.GOLDEN_ROOT))
        f.write_text(text, encoding="utf-8")
    return d


def of_type(evs, t):
    return [e for e in evs if e["type"] == t]


def check(sb, session, runs, scenario, version, facts=None):
    """The checks every scenario shares; returns (events, facts)."""
    lines = [ln for r in runs for ln in r.native_lines()]
    assert lines, "the agent wrote nothing"
    evs = events(sb.data, session)
    assert of_type(evs, "agent.unparsed") == []
    facts = facts or stream_facts(lines)
    assert check_fidelity(facts, sb.data, session) == []
    golden(version, scenario, [r.native_log for r in runs], sb)
    print(f"claude {version} {scenario}: {len(lines)} native lines, {len(evs)} events, "
          f"0 agent.unparsed, fidelity ok, usage {json.dumps(facts.usage, sort_keys=True)}")
    return evs, facts


@needs_cli
def test_tools_resume_and_project_transcript(sb, api, version):
    """(a) multi-turn with real tools (ls, Read, Edit: the file changes on disk), with
    partial messages; (e) a second reel run of the session resumes natively; the CLI's own
    project transcript of both runs converts too (reel ingest --format claude)."""
    r1 = run(sb, api, "s1", "tools", args=(ALLOW, "--include-partial-messages"))
    assert r1.returncode == 0, r1.stderr
    assert (sb.work / "notes.txt").read_text() == "the secret word is FLAMINGO\n"
    evs, facts = check(sb, "s1", [r1], "tools", version)
    assert [t.name for t in facts.tools] == ["Bash", "Read", "Edit"]
    assert "notes.txt" in facts.tools[0].result and not any(t.failed for t in facts.tools)
    assert of_type(evs, "item.delta"), "partial messages give deltas"
    sid = json.loads(r1.native_lines()[0])["session_id"]

    r2 = run(sb, api, "s1", "recall")
    assert r2.returncode == 0, r2.stderr
    first = json.loads(r2.native_lines()[0])
    assert first["session_id"] == sid, "resumed the same native session (a new one gets a new id)"
    recall = [q for q in api.requests() if q.get("scenario") == "recall" and q.get("tools")]
    assert recall, "the fake saw the resumed turn"
    sent = json.dumps(recall[-1]["messages"])
    assert "SCENARIO tools" in sent and "FLAMINGO" in sent and "toolu_" in sent, \
        "the resumed request carries the earlier turns"
    evs, facts = check(sb, "s1", [r1, r2], "resume", version)
    # The agent's own final totals: the last result's modelUsage and total_cost_usd run on
    # across the resume (the CLI restores the session's cost); usage counts one process.
    final = [json.loads(ln) for ln in r2.native_lines() if json.loads(ln).get("type") == "result"][-1]
    mu = final["modelUsage"]
    assert facts.usage["input_tokens"] == sum(m["inputTokens"] for m in mu.values())
    assert facts.usage["output_tokens"] == sum(m["outputTokens"] for m in mu.values())
    assert facts.usage["cached_input_tokens"] == sum(m["cacheReadInputTokens"] for m in mu.values())
    assert facts.usage["cache_creation_input_tokens"] == sum(m["cacheCreationInputTokens"] for m in mu.values())
    assert abs(facts.usage["cost_usd"] - final["total_cost_usd"]) < 1e-12
    assert "I remember 1 earlier prompt" in " ".join(facts.assistant_texts)
    assert len(of_type(evs, "session.started")) == 2

    # The CLI's own transcript of the session (both processes).
    files = list((sb.home / ".claude" / "projects").glob(f"*/{sid}.jsonl"))
    assert len(files) == 1, files
    tlines = files[0].read_text(encoding="utf-8").splitlines()
    p = subprocess.run([agentlib.REEL, "ingest", "--data", str(sb.data), "--session", "s1-transcript",
                        "--format", "claude", "--quiet", str(files[0])], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    tevs = events(sb.data, "s1-transcript")
    assert of_type(tevs, "agent.unparsed") == []
    assert {e.get("native_session_id") for e in tevs} == {sid}
    tfacts = transcript_facts(tlines)
    assert [t.name for t in tfacts.tools] == ["Bash", "Read", "Edit"]
    assert check_fidelity(tfacts, sb.data, "s1-transcript") == []
    golden(version, "project-transcript", files[0], sb)
    print(f"claude {version} project-transcript: {len(tlines)} native lines, {len(tevs)} events, "
          f"0 agent.unparsed, fidelity ok, usage {json.dumps(tfacts.usage, sort_keys=True)}")


@needs_cli
def test_failing_tools(sb, api, version):
    """(b) Read of a missing file and a Bash command exiting 3: failed tool results."""
    r = run(sb, api, "s2", "fail")
    assert r.returncode == 0, r.stderr
    evs, facts = check(sb, "s2", [r], "fail", version)
    assert [(t.name, t.failed) for t in facts.tools] == [("Read", True), ("Bash", True)]
    failed = [e for e in of_type(evs, "item.completed")
              if e["data"].get("kind") == "tool_result" and e["data"].get("status") == "failed"]
    assert len(failed) == 2
    assert "Exit code 3" in facts.tools[1].result


@needs_cli
def test_refused_permission(sb, api, version):
    """(c) Write is not allowed (--permission-mode default, not in --allowedTools): the CLI
    refuses it; the result lists it in permission_denials."""
    r = run(sb, api, "s3", "deny", args=("--permission-mode", "default", "--allowedTools=Bash,Read"))
    assert r.returncode == 0, r.stderr
    assert not (sb.work / "new.txt").exists()
    result = [json.loads(ln) for ln in r.native_lines() if json.loads(ln).get("type") == "result"][-1]
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Write"]
    evs, facts = check(sb, "s3", [r], "deny", version)
    req = of_type(evs, "permission.requested")
    res = of_type(evs, "permission.resolved")
    assert [e["data"]["action"] for e in req] == ["Write"]
    assert [e["data"]["status"] for e in res] == ["reject"]
    assert facts.tools[0].failed


@needs_cli
@pytest.mark.parametrize("scenario,code", [("err400", "400"), ("err529", "529"), ("err500", "500"),
                                           ("cut", "server_error")])
def test_api_errors(sb, api, version, scenario, code):
    """(d) The model API fails: a 400, a 529 and a 500 (each retried once), a stream cut
    mid-response (ECONNRESET). The CLI exits 1; reel stores exactly one error."""
    r = run(sb, api, "s4", scenario)
    assert r.returncode == 1, r.stderr
    evs, _ = check(sb, "s4", [r], scenario, version)
    errors = of_type(evs, "error")
    assert [e["data"]["code"] for e in errors] == [code], errors
    ended = of_type(evs, "session.ended")
    assert ended and ended[-1]["data"]["reason"] == "error"


@pytest.mark.parametrize("case", CASES)
def test_golden_inputs_are_faithful(tmp_path, case):
    """Every claude golden input (recorded or hand-made), ingested with reel ingest --format
    claude: facts_claude's reading is all in the transcript, usage totals included."""
    src = agentlib.CASES / "claude" / case / "input.jsonl"
    data = tmp_path / "data"
    p = subprocess.run([agentlib.REEL, "ingest", "--data", str(data), "--session", "g", "--format",
                        "claude", "--quiet", str(src)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = src.read_text(encoding="utf-8").splitlines()
    read = transcript_facts if "project-transcript" in case else stream_facts
    assert check_fidelity(read(lines), data, "g") == []
