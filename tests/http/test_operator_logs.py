"""A server that talks (issue 20): the access log (text and JSON, no secrets), request ids,
the error log, SIGHUP (logs reopened, tokens re-read, connections kept), systemd readiness
and watchdog through a fake NOTIFY_SOCKET, and /metrics checked by promtool."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [ln for ln in f.read().split("\n") if ln]


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_access_log_text_one_line_per_request_without_secrets(server_factory, tmp_path):
    log = tmp_path / "access.log"
    s = server_factory(args=["--access-log", str(log), "--token", "s3cret-token"], token="s3cret-token")
    r = s.get("/v1/health", headers={"X-Request-Id": "client-id-1"})
    assert r.status == 200 and r.header("x-request-id") == "client-id-1"
    conn = s.conn(timeout=5)
    conn.request("GET", "/v1/sessions/a/events?access_token=s3cret-token&offset=0",
                 headers={"X-Request-Id": "bad id with spaces"})
    resp = conn.getresponse()
    resp.read()
    generated = resp.getheader("X-Request-Id")
    assert resp.status == 401 and re.fullmatch(r"[0-9a-f]{16}", generated)
    s.append("a", [{"type": "t", "data": {"x": 1}}])
    assert wait_for(lambda: log.exists() and len(lines(log)) >= 4)
    text = log.read_text()
    assert "s3cret-token" not in text
    # A line is written when its request ends, just after the answer went out: the order
    # of lines of back-to-back requests is not guaranteed, so find each by its content.
    ls = lines(log)
    one = [x for x in ls if x.endswith(" client-id-1 -")]
    m = len(one) == 1 and re.fullmatch(
        r"(\S+Z) 127\.0\.0\.1 GET \"/v1/health\" 200 (\d+) ([\d.]+)ms client-id-1 -", one[0])
    assert m and int(m.group(2)) == len(r.body), ls
    assert any(re.fullmatch(r'\S+ 127\.0\.0\.1 GET "/v1/sessions/a/events\?access_token=REDACTED&offset=0" '
                            r'401 \d+ [\d.]+ms ' + generated + ' -', x) for x in ls), ls
    assert any(re.search(r' POST "/v1/sessions/a/events" 200 \d+ ', x) for x in ls), ls


def test_access_and_error_logs_as_json_lines(server_factory, tmp_path):
    acc, err = tmp_path / "a.jsonl", tmp_path / "e.jsonl"
    s = server_factory(args=["--access-log", str(acc), "--error-log", str(err), "--log-format",
                             "json", "--log-level", "debug"])
    s.get("/v1/sessions/nope/transcript")
    s.get("/v1/health")
    assert wait_for(lambda: acc.exists() and len(lines(acc)) >= 3)
    a = [json.loads(x) for x in lines(acc)]
    assert all({"time", "peer", "method", "path", "status", "bytes", "duration_ms", "request_id",
                "token"} <= set(x) for x in a)
    t = [x for x in a if x["path"] == "/v1/sessions/nope/transcript"]
    assert len(t) == 1 and t[0]["status"] == 404
    assert any(x["status"] == 200 and x["path"] == "/v1/health" for x in a)
    e = [json.loads(x) for x in lines(err)]
    # (the server takes requests as soon as it listens, so a request's line may come first)
    assert any(x["level"] == "info" and "listening on http://127.0.0.1:%d/" % s.port in x["msg"]
               for x in e), e
    four = [x for x in e if x["level"] == "debug"]
    assert four and "404 session_not_found GET /v1/sessions/nope/transcript" in four[0]["msg"]
    assert four[0]["request_id"] == t[0]["request_id"]


def test_sighup_reopens_logs_and_rereads_tokens_without_dropping_connections(server_factory, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("tok-a full\ntok-b full\n")
    acc = tmp_path / "access.log"
    s = server_factory(args=["--tokens-file", str(tokens), "--access-log", str(acc)], token="tok-a")
    conn = s.conn(timeout=5)
    auth_b = {"Authorization": "Bearer tok-b"}
    conn.request("GET", "/v1/health", headers=auth_b)
    r = conn.getresponse(); r.read()
    conn.request("GET", "/v1/sessions", headers=auth_b)
    r = conn.getresponse(); r.read()
    assert r.status == 200
    # The line is written when the request ends, which can come just after the client has
    # read the answer: rotate once it is there.
    assert wait_for(lambda: any('"/v1/sessions" 200' in x for x in lines(acc)))
    shutil.move(str(acc), str(tmp_path / "access.log.1"))  # logrotate
    tokens.write_text("tok-a full\n")  # tok-b revoked
    s.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "SIGHUP: logs reopened, 1 tokens loaded" in s.log_text())
    conn.request("GET", "/v1/sessions", headers=auth_b)  # the same open connection
    r = conn.getresponse()
    body = r.read()
    assert r.status == 401 and b"not valid" in body
    assert s.get("/v1/sessions").status == 200  # tok-a still works
    assert s.proc.poll() is None
    assert wait_for(lambda: acc.exists() and len(lines(acc)) >= 2)
    old = lines(tmp_path / "access.log.1")  # before the rotation (and the readiness probe)
    assert any('"/v1/sessions" 200' in x for x in old) and not any(" 401 " in x for x in old)
    assert any(' "/v1/sessions" 401 ' in x for x in lines(acc))
    # a tokens file that cannot be read keeps the old tokens
    tokens.unlink()
    s.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "the old tokens stay in force" in s.log_text())
    assert s.get("/v1/sessions").status == 200


def test_wrong_token_says_it_was_wrong_and_missing_token_says_it_is_needed(server_factory):
    s = server_factory(args=["--token", "right"], token="right")
    r = s.request("GET", "/v1/sessions", auth=False, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401 and "not valid" in r.json["detail"]
    r = s.request("GET", "/v1/sessions", auth=False)
    assert r.status == 401 and "needs a token" in r.json["detail"]


def test_systemd_notify_ready_reload_watchdog_stopping(server_factory, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        s = server_factory(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        got = []

        def recv_until(word):
            while True:
                msg = sock.recv(4096).decode()
                got.append(msg)
                if word in msg:
                    return msg

        ready = recv_until("READY=1")
        assert "STATUS=serving" in ready and str(s.port) in ready
        recv_until("WATCHDOG=1")
        s.proc.send_signal(signal.SIGHUP)
        recv_until("RELOADING=1")
        recv_until("READY=1")
        s.proc.send_signal(signal.SIGTERM)
        recv_until("STOPPING=1")
        s.proc.wait(10)
        s.proc = None
    finally:
        sock.close()


def test_metrics_pass_promtool_and_carry_route_latency_and_process(server):
    server.append("m", [{"type": "t"}])
    server.get("/v1/sessions/m/events")
    want = re.compile(r'reel_http_request_duration_seconds_count\{route="/v1/sessions/\{id\}/events",'
                      r'method="POST"\} 1\n')
    # a request is counted when it ends, just after its answer went out
    assert wait_for(lambda: want.search(server.get("/metrics").body.decode()))
    text = server.get("/metrics").body.decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_max_fds", "process_start_time_seconds", "reel_build_info"):
        assert "\n" + name in text, name
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool missing (Debian package prometheus; make deps installs it)")
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
