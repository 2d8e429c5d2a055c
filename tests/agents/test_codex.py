"""The real OpenAI Codex CLI (@openai/codex, pinned in tests/agents/codex/package.json) driven
through `reel run --agent codex` against the scripted fake Responses API
(tests/agents/fake/openai_responses.mjs), offline, in a temp sandbox.

Codex runs with CODEX_HOME in the sandbox and a config.toml whose model provider points at
the fake (wire_api "responses", env_key FAKE_OPENAI_KEY, no retries); model "gpt-5.5" is one
of the models Codex 0.171 knows, so it offers its real tools (exec_command and the freeform
apply_patch). The fake's answers are scripted by the prompt ("STEPS: shell ls || patch ...").

Scenarios: multiturn (lists files, edits one: the file changes on disk), tool-fails (a command
exits 2), refused (read-only sandbox: a patch and an escalation request are refused), api-400,
api-500, api-cut (model API errors), resume (a second `reel run` resumes natively with
`codex exec resume ID`; the fake receives the earlier turns). Each keeps its native output as
a golden case (tests/cases/agents/codex/<version>-<scenario>/).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import agentlib
import facts_codex
from agentlib import Fake, check_fidelity, events, reel_run, sandbox, save_golden, cleanup

CODEX = agentlib.HERE / "codex" / "node_modules" / ".bin" / "codex"

needs_codex = pytest.mark.skipif(
    not CODEX.exists() or shutil.which("node") is None,
    reason="codex not installed (tests/agents/run.sh runs npm ci in tests/agents/codex)")

ARGS = ["--skip-git-repo-check", "--color", "never"]


def _config(sb: agentlib.Sandbox, url: str) -> dict[str, str]:
    home = sb.home / ".codex"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f"""\
model = "gpt-5.5"
model_provider = "fake"
check_for_update_on_startup = false

[model_providers.fake]
name = "Fake Responses API"
base_url = "{url}/v1"
env_key = "FAKE_OPENAI_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 10000

[analytics]
enabled = false

[sandbox_workspace_write]
exclude_slash_tmp = true
exclude_tmpdir_env_var = true
""")
    return sb.env(CODEX_HOME=str(home), FAKE_OPENAI_KEY="fake-key")


_version: str | None = None


def version() -> str:
    global _version
    if _version is None:
        _version = agentlib.version_of(str(CODEX))
    return _version


def _check(sb, session, runs, scenario, want_unparsed=0):
    """The common checks: every native line is some event's raw, no agent.unparsed, the
    fidelity check passes; saves (or checks) the golden case. Returns (facts, events)."""
    lines = [ln for r in runs for ln in r.native_lines()]
    assert lines, [r.stderr for r in runs]
    evs = events(sb.data, session)
    raws = {json.dumps(e["raw"], sort_keys=True) for e in evs if e.get("raw") is not None}
    for ln in lines:
        assert json.dumps(json.loads(ln), sort_keys=True) in raws, ln
    assert sum(1 for e in evs if e["type"] == "agent.unparsed") == want_unparsed
    facts = facts_codex.read(lines)
    assert check_fidelity(facts, sb.data, session) == []
    save_golden("codex", version(), scenario, [r.native_log for r in runs], sb)
    print(f"codex {version()} {scenario}: {len(lines)} native lines, {len(evs)} events, "
          f"usage {facts.usage}")
    return facts, evs


def _run(sb, session, env, prompt, extra=(), timeout=120):
    return reel_run(sb, session, "codex", str(CODEX), [*ARGS, *extra], prompt, env,
                    timeout=timeout)


@needs_codex
def test_multiturn_lists_and_edits_files(tmp_path):
    sb = sandbox(tmp_path)
    try:
        (sb.work / "notes.txt").write_text("first\nold_line\n")
        (sb.work / "readme.md").write_text("# demo\n")
        with Fake("openai_responses.mjs") as api:
            env = _config(sb, api.url)
            r = _run(sb, "m1", env,
                     "STEPS: shell ls || patch notes.txt old_line new_line || say Listed and edited.",
                     extra=["-s", "workspace-write"])
            reqs = [q for q in api.requests() if q["path"].endswith("/responses")]
        assert r.returncode == 0, r.stderr
        assert (sb.work / "notes.txt").read_text() == "first\nnew_line\n"  # really edited
        facts, evs = _check(sb, "m1", [r], "multiturn")
        assert len(reqs) == 3  # ls, patch, final answer: three model round trips
        names = [t.name for t in facts.tools]
        assert names == ["shell", "apply_patch"], names
        assert "notes.txt" in facts.tools[0].result and "readme.md" in facts.tools[0].result
        assert "Listed and edited." in facts.assistant_texts
        assert facts.usage["input_tokens"] > 0 and facts.usage["reasoning_tokens"] > 0
        assert facts.usage["cached_input_tokens"] > 0
        ended = [e for e in evs if e["type"] == "session.ended"]
        assert ended and ended[-1]["data"]["reason"] == "completed"
    finally:
        cleanup(sb)


@needs_codex
def test_tool_fails(tmp_path):
    sb = sandbox(tmp_path)
    try:
        with Fake("openai_responses.mjs") as api:
            env = _config(sb, api.url)
            r = _run(sb, "f1", env, "STEPS: shell ls no-such-file || say The command failed.",
                     extra=["-s", "workspace-write"])
        assert r.returncode == 0, r.stderr
        facts, evs = _check(sb, "f1", [r], "tool-fails")
        assert [t.failed for t in facts.tools] == [True]
        done = [e for e in evs if e["type"] == "item.completed"
                and e["data"].get("kind") == "tool_result"]
        assert done and done[0]["data"]["status"] == "failed"
        assert done[0]["data"]["exit_code"] == 2
    finally:
        cleanup(sb)


@needs_codex
def test_refused_permission(tmp_path):
    """codex exec never asks (its approval policy is "never"): in a read-only sandbox a
    patch is rejected and a request to run outside the sandbox is refused. Codex 0.171 puts
    neither into its --json output (no item): the model gets the refusal as the tool output
    and the agent's answer carries it; Codex logs it on stderr (agent.stderr events)."""
    sb = sandbox(tmp_path)
    try:
        (sb.work / "notes.txt").write_text("first\nold_line\n")
        with Fake("openai_responses.mjs") as api:
            env = _config(sb, api.url)
            r = _run(sb, "p1", env,
                     "STEPS: patch notes.txt old_line new_line || escalate touch made.txt",
                     extra=["-s", "read-only"])
            reqs = [q for q in api.requests() if q["path"].endswith("/responses")]
        assert r.returncode == 0, r.stderr
        assert (sb.work / "notes.txt").read_text() == "first\nold_line\n"  # not written
        assert not (sb.work / "made.txt").exists()
        outs = [it for it in reqs[-1]["body"]["input"] if it.get("type", "").endswith("_output")]
        assert "rejected" in json.dumps(outs[0]) and "reject" in json.dumps(outs[1])
        facts, evs = _check(sb, "p1", [r], "refused")
        assert any("reject" in t for t in facts.assistant_texts)
        assert any(e["type"] == "agent.stderr" and "rejected" in e["data"]["text"] for e in evs)
    finally:
        cleanup(sb)


@needs_codex
@pytest.mark.parametrize("scenario,step,needle", [
    ("api-400", "error 400", "fake error 400"),
    ("api-500", "error 500", ""),
    ("api-cut", "cut", "stream disconnected"),
])
def test_model_api_errors(tmp_path, scenario, step, needle):
    sb = sandbox(tmp_path)
    try:
        with Fake("openai_responses.mjs") as api:
            env = _config(sb, api.url)
            r = _run(sb, "e1", env, f"STEPS: {step}", extra=["-s", "read-only"])
            reqs = [q for q in api.requests() if q["path"].endswith("/responses")]
        assert len(reqs) == 1  # no retries (request_max_retries = stream_max_retries = 0)
        facts, evs = _check(sb, "e1", [r], scenario)
        errors = [e for e in evs if e["type"] == "error"]
        # Codex prints an error line and turn.failed with the same message: one error
        assert len(errors) == 1 and needle in (errors[0]["data"].get("message") or "")
        ended = [e for e in evs if e["type"] == "session.ended"]
        assert ended and ended[-1]["data"]["reason"] == "error"
    finally:
        cleanup(sb)


@needs_codex
def test_resume_natively(tmp_path):
    sb = sandbox(tmp_path)
    try:
        (sb.work / "notes.txt").write_text("first\nold_line\n")
        with Fake("openai_responses.mjs") as api:
            env = _config(sb, api.url)
            r1 = _run(sb, "r1", env, "STEPS: shell cat notes.txt || say Remember PINEAPPLE.",
                      extra=["-s", "workspace-write"])
            assert r1.returncode == 0, r1.stderr
            n1 = len(api.requests())
            r2 = _run(sb, "r1", env, "STEPS: shell ls || say What did I ask you to remember?",
                      extra=["-s", "workspace-write"])
            assert r2.returncode == 0, r2.stderr
            later = [q for q in api.requests()[n1:] if q["path"].endswith("/responses")]
        assert "resuming codex session" in r2.stderr
        thread = json.loads(r1.native_lines()[0])["thread_id"]
        assert json.loads(r2.native_lines()[0])["thread_id"] == thread
        # the resumed run sent the earlier turns back to the model
        sent = json.dumps(later[0]["body"]["input"])
        assert "Remember PINEAPPLE." in sent and "cat notes.txt" in sent
        facts, evs = _check(sb, "r1", [r1, r2], "resume")
        # Codex's totals after the resume are the thread's running total: the session's
        # usage is the last one, not the sum of both runs' reports
        last = json.loads([ln for ln in r2.native_lines() if "turn.completed" in ln][-1])
        assert facts.usage["input_tokens"] == last["usage"]["input_tokens"]
        totals = [e["data"].get("totals") for e in evs if e["type"] == "usage"]
        assert totals and totals[-1]["input_tokens"] == last["usage"]["input_tokens"]
    finally:
        cleanup(sb)


GOLDEN_CASES = sorted(p.parent.name for p in (agentlib.CASES / "codex").glob("*/input.jsonl")
                      if not p.parent.name.startswith("broken"))


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_ingest_golden_case_is_faithful(tmp_path, case):
    """Every codex golden case (recorded runs of the real CLI and the hand-made legacy
    `{id, msg}` streams), converted by `reel ingest --format codex`, passes the fidelity
    check against facts_codex's own reading: texts, tools, results and the agent's own
    usage totals (for a run and its resume in one file: the thread's last running total)."""
    sb = sandbox(tmp_path)
    try:
        src = agentlib.CASES / "codex" / case / "input.jsonl"
        agentlib.reel("ingest", "--data", str(sb.data), "--session", "g1", "--format", "codex",
                      "--quiet", str(src))
        lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()]
        facts = facts_codex.read(lines)
        assert check_fidelity(facts, sb.data, "g1") == []
        assert not [e for e in events(sb.data, "g1") if e["type"] == "agent.unparsed"]
    finally:
        cleanup(sb)


@needs_codex
def test_resume_through_server(tmp_path):
    """The same resume through `reel run --server` (reel serve on 127.0.0.1): the runner
    reads the session's usage so far with GET /v1/stats?session=, so the resumed run's
    running total is not counted twice there either."""
    import re
    import subprocess

    sb = sandbox(tmp_path)
    srv = subprocess.Popen([agentlib.REEL, "serve", "--data", str(sb.data), "--listen",
                            "127.0.0.1:0", "--sync", "none"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        server = ["--server", f"http://127.0.0.1:{m.group(1)}"]
        with Fake("openai_responses.mjs") as api:
            env = _config(sb, api.url)
            runs = []
            for prompt in ("STEPS: shell ls || say First.", "STEPS: say Second."):
                r = reel_run(sb, "s1", "codex", str(CODEX), [*ARGS, "-s", "read-only"], prompt,
                             env, reel_args=server, timeout=120)
                assert r.returncode == 0, r.stderr
                runs.append(r)
        assert "resuming codex session" in runs[1].stderr
    finally:
        srv.terminate()
        srv.wait(10)
    try:
        lines = [ln for r in runs for ln in r.native_lines()]
        facts = facts_codex.read(lines)
        assert check_fidelity(facts, sb.data, "s1") == []
    finally:
        cleanup(sb)
