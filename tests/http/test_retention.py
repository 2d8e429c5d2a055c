"""Retention (docs/RETENTION.md, docs/FORMAT.md section 10): per-session policies and the
store default, the janitor's trims and expiries, reads and SSE before first_sequence,
purge, archive before delete (directory and command, a failing command removes nothing),
and kill -9 while the janitor works (the store opens and verifies)."""
import glob
import json
import os
import random
import subprocess
import time

from conftest import REEL_BIN


def ev(n, start=0, kind="item.delta"):
    return [{"type": kind, "data": {"i": start + i, "text": "x" * (50 + (i % 7) * 400)}}
            for i in range(n)]


def record(s, sid):
    r = s.get("/v1/sessions/%s" % sid)
    assert r.status == 200, r
    return r.json


def first_seq(s, sid):
    """The session's first kept sequence: 1 while nothing was trimmed (the key is absent)."""
    return record(s, sid).get("first_sequence", 1)


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def verify(data):
    p = subprocess.run([REEL_BIN, "verify", "--data", data], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def metric(s, name):
    for line in s.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def test_policy_is_set_shown_and_cleared(server):
    assert server.append("p", ev(1)).status == 200
    r = server.request("PUT", "/v1/sessions/p",
                       body={"retention": {"max_age": "30d", "max_age_after_end": 3600,
                                           "max_events": 100, "archive": False}})
    assert r.status == 200, r
    j = r.json
    assert j["retention"] == {"max_age": 2592000, "max_age_after_end": 3600, "max_events": 100,
                              "archive": False}
    assert "first_sequence" not in j  # shown once a trim moved it
    assert record(server, "p")["retention"]["max_events"] == 100
    version = j["version"]
    for bad in ({"max_age": "30x"}, {"max_events": 0}, {"max_events": "5"}, {"nope": 1},
                {"archive": "yes"}, [1], "30d"):
        r = server.request("PUT", "/v1/sessions/p", body={"retention": bad})
        assert r.status == 400, (bad, r)
        assert r.json["type"].endswith("invalid_parameter"), r
    assert record(server, "p")["version"] == version  # nothing changed
    r = server.request("PUT", "/v1/sessions/p", body={"retention": None})
    assert r.status == 200 and "retention" not in r.json, r
    assert r.json["version"] == version + 1


def test_max_events_trims_and_reads_say_so(server_factory):
    s = server_factory(args=["--sync", "none", "--retention-interval", "1"])
    assert s.append("t", ev(20)).status == 200
    assert s.append("other", ev(3)).status == 200
    r = s.request("PUT", "/v1/sessions/t", body={"retention": {"max_events": 5}})
    assert r.status == 200, r
    rec = wait_for(lambda: (lambda j: j if j.get("first_sequence") == 16 else None)(record(s, "t")),
                   what="the janitor's trim")
    assert rec["event_count"] == 5 and rec["last_sequence"] == 20
    # A read from before the boundary answers from the first kept event and says so.
    r = s.get("/v1/sessions/t/events?offset=0")
    assert r.status == 200
    j = r.json
    assert [e["sequence"] for e in j["events"]] == [16, 17, 18, 19, 20]
    assert j["first_sequence"] == 16 and j["trimmed"] is True
    assert r.header("Reel-First-Sequence") == "16"
    # From the boundary on, nothing to say.
    r = s.get("/v1/sessions/t/events?offset=15")
    assert "trimmed" not in r.json and r.header("Reel-First-Sequence") is None
    assert [e["sequence"] for e in r.json["events"]] == [16, 17, 18, 19, 20]
    # Untouched sessions read exactly as before.
    r = s.get("/v1/sessions/other/events?offset=0")
    assert "trimmed" not in r.json and "first_sequence" not in r.json
    # The feed, the transcript and the server's verify see only kept events.
    seqs = [e["sequence"] for e in s.feed() if e["session_id"] == "t"]
    assert seqs == [16, 17, 18, 19, 20]
    assert s.get("/v1/sessions/t/transcript").status == 200
    r = s.get("/v1/sessions/t/restore")
    assert r.status == 200, r
    assert s.get("/v1/stats?session=t").status == 200
    r = s.get("/v1/sessions/t/export?compression=none")
    assert r.status == 200, r
    lines = [json.loads(x) for x in r.body.decode().splitlines()]
    assert [x["sequence"] for x in lines if "sequence" in x and "record" not in x] == \
        [16, 17, 18, 19, 20]
    sess = [x for x in lines if x.get("record") == "session"][0]
    assert sess["first_sequence"] == 16 and sess["event_count"] == 5
    v = s.get("/v1/sessions/t/verify")
    assert v.status == 200 and v.json["ok"] is True, v
    assert metric(s, "reel_retention_events_trimmed_total") == 15
    assert metric(s, "reel_store_trimmed_events_total") == 15
    assert metric(s, "reel_retention_runs_total") >= 1
    # Appends go on; the trim keeps the newest five.
    assert s.append("t", ev(3, 20)).status == 200
    wait_for(lambda: first_seq(s, "t") == 19, what="the second trim")
    s.stop()
    verify(s.data)


def test_sse_before_first_sequence_announces_the_trim(server_factory):
    s = server_factory(args=["--sync", "none", "--retention", "max_events=3",
                             "--retention-interval", "1"])
    assert s.append("sse", ev(10)).status == 200
    wait_for(lambda: first_seq(s, "sse") == 8, what="the trim")
    c = s.conn(timeout=5)
    c.request("GET", "/v1/sessions/sse/events/sse?offset=2")
    r = c.getresponse()
    assert r.status == 200
    buf = b""
    deadline = time.time() + 5
    while buf.count(b"\n\n") < 5 and time.time() < deadline:
        buf += r.read1(4096)
    c.close()
    text = buf.decode()
    msgs = [m for m in text.split("\n\n") if m.strip()]
    assert msgs[0].startswith("retry:"), text
    assert msgs[1].startswith("event: reel.trimmed\nid: 7\n"), text
    data = json.loads(msgs[1].split("data: ", 1)[1])
    assert data == {"first_sequence": 8, "requested_offset": 2}
    assert msgs[2].startswith("id: 8\n"), text


def test_purge_removes_for_good(server):
    assert server.append("gone", ev(700)).status == 200  # three trim batches, then the purge
    r = server.request("DELETE", "/v1/sessions/gone?purge=true", headers={"If-Match": '"7"'})
    assert r.status == 412, r
    assert record(server, "gone")["event_count"] == 700  # nothing removed
    assert server.append("stay", ev(2)).status == 200
    r = server.request("DELETE", "/v1/sessions/gone?purge=true")
    assert r.status == 204, r
    assert server.get("/v1/sessions/gone").status == 404
    assert server.get("/v1/sessions/gone/events").status == 404
    assert server.request("DELETE", "/v1/sessions/gone?purge=true").status == 404
    assert server.request("DELETE", "/v1/sessions/gone?purge=maybe").status == 400
    # A tombstone is purged too; then the id starts again from sequence 1.
    assert server.request("DELETE", "/v1/sessions/stay").status == 200
    assert server.append("stay", ev(1)).status == 410
    assert server.request("DELETE", "/v1/sessions/stay?purge=true").status == 204
    r = server.append("stay", ev(2))
    assert r.status == 200 and r.json["first_sequence"] == 1, r  # the append's answer
    assert "first_sequence" not in record(server, "stay")
    ids = {e["session_id"] for e in server.feed()}
    assert ids == {"stay"}
    assert metric(server, "reel_store_purged_sessions_total") == 2
    assert metric(server, "reel_store_trimmed_events_total") == 700
    server.stop()
    verify(server.data)


def test_expired_sessions_are_archived_to_a_directory(server_factory, tmp_path):
    arch = tmp_path / "archive"
    arch.mkdir()
    s = server_factory(args=["--sync", "none", "--retention", "max_age_after_end=1s",
                             "--archive-dir", str(arch), "--retention-interval", "1"])
    assert s.append("a%2Fb", ev(5) + [{"type": "session.ended"}]).status == 200
    assert s.append("live", ev(3)).status == 200  # not ended: kept
    wait_for(lambda: s.get("/v1/sessions/a%2Fb").status == 404, what="the expiry")
    files = glob.glob(str(arch / "*.ndjson.zst"))
    assert len(files) == 1 and os.path.basename(files[0]).startswith("a%2Fb.1-6."), files
    text = subprocess.run(["zstd", "-dc", files[0]], capture_output=True, check=True).stdout
    lines = [json.loads(x) for x in text.decode().splitlines()]
    events = [x for x in lines if "sequence" in x and "record" not in x]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert lines[-1]["record"] == "end"
    assert not glob.glob(str(arch / "*.partial"))
    assert record(s, "live")["event_count"] == 3
    assert metric(s, "reel_retention_sessions_expired_total") == 1
    assert metric(s, "reel_retention_archived_total") == 1
    # The archive imports back (reel import).
    s.stop()
    verify(s.data)


def test_archive_command_gets_the_export_and_its_failure_removes_nothing(server_factory,
                                                                        tmp_path):
    out = tmp_path / "cmd-out"
    out.mkdir()
    ok_cmd = 'cat > "%s/$REEL_SESSION_ID.$REEL_FIRST_SEQUENCE-$REEL_LAST_SEQUENCE.$REEL_ARCHIVE_REASON"' % out
    s = server_factory(args=["--sync", "none", "--retention", "max_events=4",
                             "--archive-command", ok_cmd, "--retention-interval", "1"])
    assert s.append("c", ev(10)).status == 200
    wait_for(lambda: first_seq(s, "c") == 7, what="the trim")
    f = out / "c.1-6.trim"
    assert f.exists()
    text = subprocess.run(["zstd", "-dc", str(f)], capture_output=True, check=True).stdout
    seqs = [json.loads(x).get("sequence") for x in text.decode().splitlines()]
    assert [q for q in seqs if q] == [1, 2, 3, 4, 5, 6]
    s.stop()

    bad = server_factory(args=["--sync", "none", "--retention", "max_events=4",
                               "--archive-command", "cat >/dev/null; exit 3",
                               "--retention-interval", "1"])
    assert bad.append("d", ev(10)).status == 200
    wait_for(lambda: metric(bad, "reel_retention_archive_failures_total") >= 2,
             what="failed archives")
    rec = record(bad, "d")
    assert "first_sequence" not in rec and rec["event_count"] == 10  # nothing deleted
    assert metric(bad, "reel_retention_events_trimmed_total") == 0
    assert "archiving session 'd' failed, nothing removed" in bad.log_text()
    assert "exit" in bad.log_text() and "status 3" in bad.log_text()
    # A session whose policy opts out of archiving is trimmed anyway.
    r = bad.request("PUT", "/v1/sessions/d", body={"retention": {"max_events": 4,
                                                                 "archive": False}})
    assert r.status == 200
    wait_for(lambda: first_seq(bad, "d") == 7, what="the opted-out trim")
    bad.stop()
    verify(bad.data)


def test_bad_options_are_refused(server_factory, tmp_path):
    for args in (["--retention", "max_age=soon"], ["--retention", "color=red"],
                 ["--archive-dir", str(tmp_path / "missing")]):
        s = server_factory(args=args, start=False)
        p = subprocess.run([REEL_BIN, "serve", "--data", s.data, "--listen", "127.0.0.1:0"] + args,
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (args, p.stderr)
        assert "reel serve:" in p.stderr or "serve" in p.stderr


def test_kill_9_during_the_janitor_leaves_a_sound_store(server_factory):
    s = server_factory(args=["--sync", "none", "--retention-interval", "1"])
    for k in range(4):
        batch = [{"type": "item.delta", "data": {"i": i, "t": "y" * 300}} for i in range(1500)]
        assert s.append("big%d" % k, batch).status == 200
        r = s.request("PUT", "/v1/sessions/big%d" % k, body={"retention": {"max_events": 10}})
        assert r.status == 200
    rnd = random.Random(21)
    for _ in range(4):
        time.sleep(1.0 + rnd.random() * 0.6)
        s.kill()
        verify(s.data)
        s.start()
    wait_for(lambda: all(first_seq(s, "big%d" % k) == 1491 for k in range(4)),
             timeout=60, what="every trim to finish")
    s.stop()
    verify(s.data)


def test_durable_stream_reads_say_where_the_kept_messages_start(server_factory):
    s = server_factory(args=["--sync", "none", "--retention-interval", "1"])
    body = json.dumps([{"n": i} for i in range(10)]).encode()
    r = s.request("PUT", "/v1/stream/ret", body=body, headers={"Content-Type": "application/json"})
    assert r.status == 201, r
    r = s.request("PUT", "/v1/sessions/ds:ret", body={"retention": {"max_events": 3}})
    assert r.status == 200, r
    wait_for(lambda: first_seq(s, "ds:ret") == 8, what="the trim")
    r = s.get("/v1/stream/ret")
    assert r.status == 200
    assert json.loads(r.body) == [{"n": 7}, {"n": 8}, {"n": 9}]
    assert r.header("Reel-First-Sequence") == "8"
    tail = r.header("Stream-Next-Offset")
    r = s.get("/v1/stream/ret?offset=" + tail)
    assert r.header("Reel-First-Sequence") is None
    s.stop()
    verify(s.data)


def test_archive_command_runs_with_default_signals(server_factory):
    """The server blocks SIGTERM in its threads and ignores SIGPIPE; the archive command
    must not inherit that (`timeout 60 cmd` must be able to stop it)."""
    s = server_factory(args=["--sync", "none", "--retention", "max_events=2",
                             "--archive-command", "cat >/dev/null; kill -TERM $$; sleep 3",
                             "--retention-interval", "1"])
    assert s.append("sig", ev(5)).status == 200
    wait_for(lambda: "ended by signal 15" in s.log_text(), what="the command's end by SIGTERM")
    assert "first_sequence" not in record(s, "sig")
