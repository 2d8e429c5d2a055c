"""The real OpenCode CLI (opencode-ai; its linux-x64 binary package pinned in tests/agents/opencode/) through
`reel run --agent opencode`, offline against tests/agents/fake/openai_chat.mjs.

OpenCode reads its config from $XDG_CONFIG_HOME/opencode/opencode.json in the sandbox: one
custom provider "fake" (@ai-sdk/openai-compatible, bundled in the binary, nothing is
installed at run time) whose baseURL is the fake, with per-token costs so cost is not 0.
OPENCODE_DISABLE_MODELS_FETCH / _AUTOUPDATE / _LSP_DOWNLOAD keep it off the network.
The fake is scripted by a `PLAN: [...]` in the prompt (see openai_chat.mjs).

Every scenario checks: the native lines, agent.unparsed == 0, the independent fidelity check
(facts_opencode.py) and that the usage totals equal both the sum the native output gives
and OpenCode's own accounting (`opencode export`).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import agentlib
import facts_opencode
from agentlib import Fake, check_fidelity, cleanup, events, reel_run, sandbox, stats, transcript

HERE = Path(__file__).resolve().parent
BIN = HERE / "opencode" / "node_modules" / "opencode-linux-x64" / "bin" / "opencode"

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="opencode not installed (tests/agents/run.sh)")

_VERSION: list[str] = []


def version() -> str:
    if not _VERSION:
        _VERSION.append(agentlib.version_of(str(BIN)))
    return _VERSION[0]


def configure(sb: agentlib.Sandbox, api: Fake, permission: dict | None = None) -> dict[str, str]:
    cfg = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "fake/fake-model",
        "small_model": "fake/fake-model",
        "provider": {
            "fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake",
                "options": {"baseURL": api.url + "/v1", "apiKey": "dummy"},
                "models": {"fake-model": {
                    "name": "Fake Model",
                    "cost": {"input": 1.0, "output": 2.0, "cache_read": 0.5, "cache_write": 1.5},
                    "limit": {"context": 100000, "output": 4096}}},
            }
        },
    }
    if permission:
        cfg["permission"] = permission
    d = sb.home / ".config" / "opencode"
    d.mkdir(parents=True, exist_ok=True)
    (d / "opencode.json").write_text(json.dumps(cfg, indent=1))
    return sb.env(OPENCODE_DISABLE_MODELS_FETCH="1", OPENCODE_DISABLE_AUTOUPDATE="1",
                  OPENCODE_DISABLE_LSP_DOWNLOAD="1", OPENCODE_DISABLE_SHARE="1")


def plan(prompt: str, steps: list[dict]) -> str:
    return f"{prompt} PLAN: {json.dumps(steps)}"


def export(sb: agentlib.Sandbox, env: dict[str, str], sid: str) -> dict:
    p = subprocess.run([str(BIN), "export", sid], cwd=sb.work, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout[p.stdout.index("{"):])


def save_golden(scenario: str, native, sb: agentlib.Sandbox) -> None:
    """agentlib.save_golden, plus: OpenCode also prints paths relative to "/" (a read
    tool's title, a session's `path`), which save_golden does not replace."""
    d = agentlib.save_golden("opencode", version(), scenario, native, sb)
    if agentlib.RECORDING:
        f = d / "input.jsonl"
        text = f.read_text(encoding="utf-8")
        for real in {str(sb.root), os.path.realpath(sb.root)}:
            text = text.replace(real.lstrip("/"), agentlib.GOLDEN_ROOT.lstrip("/"))
        f.write_text(text, encoding="utf-8")


def check(sb, env, session, natives, scenario, unparsed=0):
    """The common checks; returns (facts, events)."""
    evs = events(sb.data, session)
    lines = sum(len(n.native_lines()) for n in natives)
    assert lines > 0
    assert sum(1 for e in evs if e["type"] == "agent.unparsed") == unparsed
    f = facts_opencode.facts([n.native_log for n in natives])
    assert check_fidelity(f, sb.data, session) == []
    sids = {json.loads(ln)["sessionID"] for n in natives for ln in n.native_lines()}
    assert len(sids) == 1
    own = facts_opencode.export_totals(export(sb, env, sids.pop()))
    for k, v in own.items():
        assert abs(f.usage.get(k, 0) - v) < 1e-9, (k, f.usage, own)
    save_golden(scenario, [n.native_log for n in natives], sb)
    print(f"\nopencode {version()} {scenario}: {lines} native lines, {len(evs)} events, "
          f"unparsed {unparsed}, fidelity ok, usage {f.usage} == opencode export {own}")
    return f, evs


def test_multiturn_lists_and_edits(tmp_path):
    sb = sandbox(tmp_path)
    try:
        (sb.work / "notes.txt").write_text("hello\n")
        w = str(sb.work)
        steps = [
            {"tool": "bash", "input": {"command": "ls", "description": "List files"},
             "text": "Let me look.", "think": "First list the workspace."},
            {"tool": "read", "input": {"filePath": f"{w}/notes.txt"}},
            {"tool": "edit", "input": {"filePath": f"{w}/notes.txt", "oldString": "hello",
                                       "newString": "hello, edited by opencode"}},
            {"tool": "write", "input": {"filePath": f"{w}/new.txt", "content": "brand new\n"}},
            {"text": "Edited notes.txt and wrote new.txt.", "think": "All done."},
        ]
        with Fake("openai_chat.mjs") as api:
            env = configure(sb, api)
            r = reel_run(sb, "oc1", "opencode", str(BIN), ["--thinking"],
                         plan("Tidy the notes", steps), env)
            assert r.returncode == 0, r.stderr
            reqs = [q for q in api.requests() if q["body"].get("tools")]
        assert (sb.work / "notes.txt").read_text() == "hello, edited by opencode\n"
        assert (sb.work / "new.txt").read_text() == "brand new\n"
        assert len(reqs) == 5
        # the listing really ran: the second request carries ls's output
        assert "notes.txt" in json.dumps(reqs[1]["body"]["messages"][-1])
        f, evs = check(sb, env, "oc1", [r], "multiturn")
        assert [t.name for t in f.tools] == ["bash", "read", "edit", "write"]
        assert not any(t.failed for t in f.tools)
        kinds = [e["data"].get("kind") for e in evs if e["type"] == "item.completed"]
        assert "reasoning" in kinds
        assert transcript(sb.data, "oc1")["turns"] == 1  # five model calls, one prompt
        st = stats(sb.data, "oc1")["usage"]
        assert st["reasoning_tokens"] == 10 and st["cached_input_tokens"] == 200
        # the fake reports prompt_tokens_details.cache_write_tokens 12 per call, which the
        # provider reads, but opencode 1.18 takes cache writes only from provider metadata
        # (Anthropic, Bedrock): 0
        assert st["cache_creation_input_tokens"] == 0
    finally:
        cleanup(sb)


def test_failing_tools(tmp_path):
    sb = sandbox(tmp_path)
    try:
        w = str(sb.work)
        steps = [
            {"tool": "read", "input": {"filePath": f"{w}/missing.txt"}},
            {"tool": "bash", "input": {"command": "echo oops >&2; exit 3", "description": "Fail"}},
            {"text": "Both failed: {{last_tool}}"},
        ]
        with Fake("openai_chat.mjs") as api:
            env = configure(sb, api)
            r = reel_run(sb, "oc2", "opencode", str(BIN), [], plan("Read it", steps), env)
            assert r.returncode == 0, r.stderr
        f, evs = check(sb, env, "oc2", [r], "tool-error")
        assert f.tools[0].failed and "File not found" in f.tools[0].result
        res = [e["data"] for e in evs if e["type"] == "item.completed"
               and e["data"].get("kind") == "tool_result"]
        assert res[0]["status"] == "failed" and "File not found" in json.dumps(res[0])
        assert res[0].get("is_error") is True
        # bash exiting 3 is a completed call whose metadata keeps the exit status
        assert res[1]["status"] == "completed" and res[1].get("exit_code") == 3
    finally:
        cleanup(sb)


def test_refused_permissions(tmp_path):
    """A "deny" rule fails the call and the loop goes on; an "ask" rule is auto-rejected
    by `opencode run` (no one to ask), which also ends the turn."""
    sb = sandbox(tmp_path)
    try:
        (sb.work / "keep.txt").write_text("keep me\n")
        steps = [
            {"tool": "bash", "input": {"command": "rm keep.txt", "description": "Remove"}},
            {"tool": "bash", "input": {"command": "touch made.txt", "description": "Touch"}},
            {"text": "never reached"},
        ]
        perm = {"bash": {"*": "allow", "rm *": "deny", "touch *": "ask"}}
        with Fake("openai_chat.mjs") as api:
            env = configure(sb, api, perm)
            r = reel_run(sb, "oc3", "opencode", str(BIN), [], plan("Clean up", steps), env)
            assert r.returncode == 0, r.stderr
            assert len([q for q in api.requests() if q["body"].get("tools")]) == 2
        assert (sb.work / "keep.txt").exists() and not (sb.work / "made.txt").exists()
        f, evs = check(sb, env, "oc3", [r], "permission")
        assert [t.failed for t in f.tools] == [True, True]
        res = [e["data"] for e in evs if e["type"] == "permission.resolved"]
        assert [x["status"] for x in res] == ["reject", "reject"]
        req = [e["data"] for e in evs if e["type"] == "permission.requested"]
        assert [x["action"] for x in req] == ["bash", "bash"]
    finally:
        cleanup(sb)


@pytest.mark.parametrize("scenario,steps,rc", [
    ("api-400", [{"http": 400, "message": "bad request from fake"}], 1),
    ("api-503", [{"http": 503, "message": "fake overloaded"}], 1),
    ("api-cut", [{"cut": True, "times": 1, "text": "this stream is cut in half"},
                 {"text": "second try worked"}], 0),
])
def test_api_errors(tmp_path, scenario, steps, rc):
    sb = sandbox(tmp_path)
    try:
        with Fake("openai_chat.mjs") as api:
            env = configure(sb, api)
            r = reel_run(sb, "oc4", "opencode", str(BIN), [], plan("Hi", steps), env)
            n = len([q for q in api.requests() if q["body"].get("tools")])
        assert r.returncode == rc, r.stderr
        f, evs = check(sb, env, "oc4", [r], scenario)
        errs = [e["data"] for e in evs if e["type"] == "error"]
        native = facts_opencode.errors(r.native_log)
        assert len(errs) == len(native)
        if scenario == "api-400":
            assert n == 1 and errs[0]["message"] == "bad request from fake"
            assert errs[0]["status"] == 400
        elif scenario == "api-503":
            assert n > 1 and errs[0]["message"] == "fake overloaded"  # retried, then gave up
            assert errs[0]["status"] == 503
        else:
            assert n == 2 and not errs and f.assistant_texts == ["second try worked"]
        ended = [e["data"] for e in evs if e["type"] == "session.ended"]
        assert ended[-1]["exit_code"] == rc
    finally:
        cleanup(sb)


def test_resume_natively(tmp_path):
    sb = sandbox(tmp_path)
    try:
        with Fake("openai_chat.mjs") as api:
            env = configure(sb, api)
            r1 = reel_run(sb, "oc5", "opencode", str(BIN), [], plan("First turn", [
                {"tool": "bash", "input": {"command": "echo marker-one", "description": "Echo"}},
                {"text": "Saw {{last_tool}}"}]), env)
            assert r1.returncode == 0, r1.stderr
            r2 = reel_run(sb, "oc5", "opencode", str(BIN), [],
                          plan("Second turn", [{"text": "Resumed and remembered."}]), env)
            assert r2.returncode == 0, r2.stderr
            last = [q for q in api.requests() if q["body"].get("tools")][-1]
        convo = json.dumps(last["body"]["messages"])
        assert "First turn" in convo and "Saw marker-one" in convo and "Second turn" in convo
        sid1 = json.loads(r1.native_lines()[0])["sessionID"]
        assert json.loads(r2.native_lines()[0])["sessionID"] == sid1
        f, evs = check(sb, env, "oc5", [r1, r2], "resume")
        started = [e for e in evs if e["type"] == "session.started"]
        assert len(started) == 2
        t = transcript(sb.data, "oc5")
        assert t["usage"]["input_tokens"] == f.usage["input_tokens"]
        assert t["turns"] == 2
    finally:
        cleanup(sb)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_event_bus_ingested(tmp_path):
    """`opencode serve` (127.0.0.1 only): the /event SSE frames of one prompt, captured and
    converted with `reel ingest --format opencode` (reel run drives `opencode run`, not the
    server; the bus converter is what a client of the server would use)."""
    import select
    import threading
    import urllib.request

    sb = sandbox(tmp_path)
    serve = None
    try:
        (sb.work / "notes.txt").write_text("bus\n")
        steps = [
            {"tool": "bash", "input": {"command": "ls", "description": "List files"},
             "text": "Looking.", "think": "List first."},
            {"tool": "read", "input": {"filePath": f"{sb.work}/nope.txt"}},
            {"tool": "bash", "input": {"command": "touch made.txt", "description": "Touch"}},
            # no {{last_tool}}: its sandbox path would be split over two deltas, which the
            # golden recording cannot replace
            {"text": "Listed the files; nope.txt is missing."},
        ]
        with Fake("openai_chat.mjs") as api:
            # "ask": the server asks on the bus (permission.asked) and waits for a reply
            env = configure(sb, api, {"bash": {"*": "allow", "touch *": "ask"}})
            port = _free_port()
            serve = subprocess.Popen([str(BIN), "serve", "--port", str(port), "--hostname",
                                      "127.0.0.1"], cwd=sb.work, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            base = f"http://127.0.0.1:{port}"
            for _ in range(60):  # wait for "opencode server listening on ..."
                ready, _, _ = select.select([serve.stdout], [], [], 1)
                if ready and "listening" in serve.stdout.readline():
                    break
            frames: list[str] = []
            idle = threading.Event()

            def call(path: str, body: dict) -> dict:
                req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                             headers={"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=120) as r:
                    return json.loads(r.read())

            stream = urllib.request.urlopen(base + "/event", timeout=60)

            def read() -> None:
                try:
                    for raw in stream:
                        line = raw.decode("utf-8").rstrip("\n")
                        if line.startswith("data: "):
                            frames.append(line[6:])
                            ev = json.loads(line[6:])
                            if ev.get("type") == "session.idle":
                                idle.set()
                            elif ev.get("type") == "permission.asked":  # approve once
                                threading.Thread(target=call, daemon=True, args=(
                                    f"/permission/{ev['properties']['id']}/reply",
                                    {"reply": "once"})).start()
                except Exception:  # closed at the end
                    pass

            th = threading.Thread(target=read, daemon=True)
            th.start()

            sid = call("/session", {})["id"]
            call(f"/session/{sid}/message",
                 {"parts": [{"type": "text", "text": plan("Over the bus", steps)}]})
            assert idle.wait(30)
            stream.close()
        bus = sb.root / "bus.jsonl"
        bus.write_text("".join(f + "\n" for f in frames))
        agentlib.reel("ingest", "--data", str(sb.data), "--format", "opencode", "--session",
                      "ocb", str(bus))
        evs = events(sb.data, "ocb")
        assert not [e for e in evs if e["type"] == "agent.unparsed"]
        f = facts_opencode.bus_facts(bus)
        assert [t.name for t in f.tools] == ["bash", "read", "bash"] and f.tools[1].failed
        assert (sb.work / "made.txt").exists()  # approved over the bus
        perm = [(e["type"], e["data"].get("status")) for e in evs if e["type"].startswith("permission.")]
        assert perm == [("permission.requested", "requested"), ("permission.resolved", "accept")]
        assert check_fidelity(f, sb.data, "ocb") == []
        own = facts_opencode.export_totals(export(sb, env, sid))
        for k, v in own.items():
            assert abs(f.usage.get(k, 0) - v) < 1e-9, (k, f.usage, own)
        t = transcript(sb.data, "ocb")
        assert t["turns"] == 1
        save_golden("serve-bus", bus, sb)
        print(f"\nopencode {version()} serve-bus: {len(frames)} native frames, {len(evs)} events, "
              f"unparsed 0, fidelity ok, usage {f.usage} == opencode export {own}")
    finally:
        if serve and serve.poll() is None:
            serve.terminate()
            try:
                serve.wait(10)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        cleanup(sb)
