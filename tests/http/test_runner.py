"""`reel run` and `reel mock-agent` black-box tests (docs/AGENTS.md).

The runner appends through a server (--server) or to a data directory. The key test kills
the server with SIGKILL in the middle of a run and restarts it on the same port: the run
must end complete (session.ended last, dense sequences) and without a duplicate, because
every batch is retried until acknowledged and every event id is fixed before the first try.
"""
import json
import os
import subprocess
import time
import urllib.parse

from conftest import REEL_BIN


def run_reel(args, env=None, timeout=120, **kw):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("REEL_") and k != "REEL_BIN":
            del e[k]
    e.update(env or {})
    return subprocess.run([REEL_BIN] + args, capture_output=True, timeout=timeout, env=e, **kw)


def restart_same_port(s):
    """Starts a killed server again on its old port and data directory."""
    port = s.port
    s.log = open(s.log_path, "ab")
    cmd = [REEL_BIN, "serve", "--data", s.data, "--listen", "127.0.0.1:%d" % port] + s.args
    deadline = time.time() + 10
    while True:  # the port may linger for a moment after SIGKILL
        s.proc = subprocess.Popen(cmd, stdout=s.log, stderr=s.log, env=s.env)
        try:
            s.wait_ready(timeout=3)
            return
        except RuntimeError:
            if time.time() > deadline:
                raise
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
            time.sleep(0.2)


def session_events(s, session):
    out, offset = [], 0
    while True:
        r = s.get("/v1/sessions/%s/events?offset=%d&limit=1000&include_raw=true" % (session, offset))
        assert r.status == 200, r
        out += r.json["events"]
        if not r.json["hasMore"]:
            return out
        offset = out[-1]["sequence"]


def check_complete(events):
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)), "duplicate event ids"
    assert events[-1]["type"] == "session.ended"
    started = [e for e in events if e["type"] == "session.started"]
    assert started, "no session.started"
    assert not [e for e in events if e["type"] == "agent.unparsed"]


def test_run_appends_through_the_server(server):
    url = "http://127.0.0.1:%d" % server.port
    p = run_reel(["run", "--server", url, "--session", "r1", "--agent", "mock", "--", "tools"],
                 env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 0, p.stderr
    events = session_events(server, "r1")
    check_complete(events)
    types = [e["type"] for e in events]
    assert types[0] == "session.started" and types[1] == "item.started"
    assert "usage" in types
    assert events[-1]["data"]["reason"] == "completed"
    # every event converted from a native line carries it as raw
    native = [e for e in events if e["source"] == "agent"]
    assert native and all(isinstance(e["raw"], dict) for e in native)
    rec = server.get("/v1/sessions/r1").json
    assert rec["agent"] == "mock"
    assert rec["native_session_id"] == events[0]["native_session_id"]
    assert rec["status"] == "ended"


def test_second_run_resumes_natively_through_the_server(server):
    url = "http://127.0.0.1:%d" % server.port
    for prompt in ("hello", "again"):
        p = run_reel(["run", "--server", url, "--session", "r2", "--agent", "mock", "--", prompt],
                     env={"REEL_MOCK_DELAY_MS": "0"})
        assert p.returncode == 0, p.stderr
    assert b"resuming mock session" in p.stderr
    events = session_events(server, "r2")
    assert [e["type"] for e in events].count("session.ended") == 2
    assert len({e["event_id"] for e in events}) == len(events)


def test_server_killed_and_restarted_mid_run_loses_and_duplicates_nothing(server_factory, tmp_path):
    s = server_factory(args=["--sync", "full"])
    url = "http://127.0.0.1:%d" % s.port
    env = dict(os.environ)
    env["REEL_MOCK_DELAY_MS"] = "8"  # about 5 s of output
    run = subprocess.Popen([REEL_BIN, "run", "--server", url, "--session", "k1", "--agent",
                            "mock", "--retry-max", "60", "--", "long"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    for _ in range(3):
        time.sleep(0.7)
        assert run.poll() is None, "the run ended before the server was killed"
        s.kill()
        time.sleep(0.5)
        restart_same_port(s)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    events = session_events(s, "k1")
    check_complete(events)

    # The same scenario without interruption, straight to a data directory.
    ref = tmp_path / "ref"
    p = run_reel(["run", "--data", str(ref), "--sync", "none", "--session", "k1", "--agent",
                  "mock", "--", "long"], env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 0, p.stderr
    t = run_reel(["tail", "--data", str(ref), "--session", "k1"])
    ref_types = [json.loads(l)["type"] for l in t.stdout.decode().splitlines() if l.strip()]
    assert [e["type"] for e in events] == ref_types


def test_run_into_a_data_directory_and_exit_statuses(tmp_path):
    data = str(tmp_path / "d")
    p = run_reel(["run", "--data", data, "--session", "e1", "--agent", "mock", "--", "error"],
                 env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 1  # the agent failed
    t = run_reel(["tail", "--data", data, "--session", "e1"])
    events = [json.loads(l) for l in t.stdout.decode().splitlines() if l.strip()]
    assert events[-1]["type"] == "session.ended"
    assert events[-1]["data"]["reason"] == "error"
    assert events[-1]["data"]["exit_code"] == 1
    assert "error" in [e["type"] for e in events]


def test_fake_agent_executable_and_its_flags(tmp_path):
    log = tmp_path / "argv"
    fake = tmp_path / "fake-codex"
    fake.write_text("#!/bin/sh\nprintf '%s|' \"$@\" >> " + str(log) + "\necho >> " + str(log) +
                    "\necho '{\"type\":\"thread.started\",\"thread_id\":\"th-1\"}'\n"
                    "echo '{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1,"
                    "\"output_tokens\":2}}'\nexit 0\n")
    fake.chmod(0o755)
    data = str(tmp_path / "d")
    for prompt in ("one", "two"):
        p = run_reel(["run", "--data", data, "--session", "c1", "--agent", "codex",
                      "--agent-bin", str(fake), "--", "--model", "o4", prompt])
        assert p.returncode == 0, p.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "exec|--json|--model|o4|one|"
    assert lines[1] == "exec|--json|--model|o4|resume|th-1|two|"


def test_cli_usage_errors():
    assert run_reel(["run", "--help"]).returncode == 0
    assert run_reel(["run", "--agent", "mock", "--", "x"]).returncode == 2
    assert run_reel(["run", "--session", "s", "--agent", "nope", "--", "x"]).returncode == 2
    assert run_reel(["run", "--session", "bad\x01id", "--agent", "mock", "--", "x"]).returncode == 2
    assert run_reel(["run", "--session", "s", "--agent", "mock"]).returncode == 2
    assert run_reel(["run", "--session", "s", "--agent", "mock", "--restore=x", "--", "p"]).returncode == 2
    assert run_reel(["mock-agent", "--scenario", "nope"]).returncode == 2
    assert run_reel(["mock-agent", "--help"]).returncode == 0


def test_mock_agent_writes_claude_stream_json():
    for scenario in ("demo", "markdown", "tools", "permission", "error", "long"):
        p = run_reel(["mock-agent", "--scenario", scenario, "--delay", "0"])
        assert p.returncode == (1 if scenario == "error" else 0)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
        assert lines[0]["type"] == "system" and lines[0]["subtype"] == "init"
        assert lines[-1]["type"] == "result"
        assert all("session_id" in l for l in lines)


def test_run_sends_the_bearer_token(server_factory):
    s = server_factory(args=["--sync", "none", "--token", "t0ken"], token="t0ken")
    url = "http://127.0.0.1:%d" % s.port
    args = ["run", "--server", url, "--session", "a1", "--agent", "mock", "--", "hi"]
    p = run_reel(args + [], env={"REEL_MOCK_DELAY_MS": "0", "REEL_TOKEN": "t0ken"})
    assert p.returncode == 0, p.stderr
    assert session_events(s, "a1")[-1]["type"] == "session.ended"
    p = run_reel(args, env={"REEL_MOCK_DELAY_MS": "0", "REEL_TOKEN": "wrong"})
    assert p.returncode == 1
    assert b"401" in p.stderr


def test_acp_mock_agent_through_the_server_with_resume(server):
    url = "http://127.0.0.1:%d" % server.port
    base = ["run", "--server", url, "--session", "acp1", "--agent", "acp", "--agent-bin", REEL_BIN]
    p = run_reel(base + ["--", "mock-agent", "--format", "acp", "ask permission"],
                 env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 0, p.stderr
    p = run_reel(base + ["--approve", "--", "mock-agent", "--format", "acp", "permission again"],
                 env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 0, p.stderr
    assert b"resuming acp session" in p.stderr
    events = session_events(server, "acp1")
    assert len({e["event_id"] for e in events}) == len(events)
    assert not [e for e in events if e["type"] == "agent.unparsed"]
    resolved = [e["data"]["status"] for e in events if e["type"] == "permission.resolved"]
    assert resolved == ["reject", "accept"]
    started = [e for e in events if e["type"] == "session.started"]
    assert [e["data"]["method"] for e in started] == ["session/new", "session/resume"]
    assert len({e["native_session_id"] for e in started}) == 1
    assert server.get("/v1/sessions/acp1").json["native_session_id"] == started[0]["native_session_id"]


def test_restore_replay_through_the_server(server):
    url = "http://127.0.0.1:%d" % server.port
    base = ["run", "--server", url, "--session", "rr1", "--agent", "mock"]
    p = run_reel(base + ["--", "first"], env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 0, p.stderr
    p = run_reel(base + ["--restore=replay", "--", "second"], env={"REEL_MOCK_DELAY_MS": "0"})
    assert p.returncode == 0, p.stderr
    events = session_events(server, "rr1")
    replies = [e["data"]["text"] for e in events
               if e["type"] == "item.completed" and e["data"].get("role") == "assistant"
               and e["data"].get("kind") == "message"]
    # the mock echoes its prompt: the second prompt began with the restore text
    assert replies[0] == "mock: first"
    assert replies[-1].startswith("mock: Previous session history is replayed below")
    assert '"sender":"agent"' in replies[-1]
    users = [e["data"]["text"] for e in events
             if e["type"] == "item.completed" and e["data"].get("role") == "user"]
    assert users == ["first", "second"]


def test_run_percent_encodes_the_session_id(server):
    """The runner puts the id in URLs as one percent-encoded segment (docs/HTTP.md), so an
    id with '/', a space or UTF-8 reaches the server whole; a second run resumes it."""
    url = "http://127.0.0.1:%d" % server.port
    sid = "team/alpha ünï"
    args = ["run", "--server", url, "--session", sid, "--agent", "mock", "--", "hi"]
    for _ in range(2):
        p = run_reel(args, env={"REEL_MOCK_DELAY_MS": "0"})
        assert p.returncode == 0, p.stderr
    enc = urllib.parse.quote(sid, safe="")
    evs = session_events(server, enc)
    assert {e["session_id"] for e in evs} == {sid}
    assert [e["type"] for e in evs].count("session.started") == 2
    assert server.get("/v1/sessions/team/alpha%20%C3%BCn%C3%AF").status == 404
