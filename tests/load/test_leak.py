"""Nothing leaks on a clean shutdown (issue #7): a workload that touches every route family,
then SIGTERM (or SIGINT) while streams, long-polls and half-sent requests are still open;
the server must exit 0 within 30 s with no leak and no memory error reported.

The leak checker is, by REEL_LEAK_TOOL (default auto):
  lsan      LeakSanitizer, built into the ASan build (`make SANITIZER=address` gives
            build/address/reel): REEL_BIN must be that build; a leak prints "ERROR:
            LeakSanitizer" at exit and turns the exit status to 23;
  valgrind  `valgrind --leak-check=full` around any build: definite, indirect and
            possible leaks and memory errors count, the exit status becomes 99;
  auto      lsan when REEL_BIN is an ASan build, else valgrind (skipped if not installed).
`make leakcheck` runs both.

Every request's answer is checked, so that the workload does what it says (a route that
answered 404 would not have exercised its code).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from loadlib import REEL_BIN, Server, SSEStream, is_asan_build

TOOL = os.environ.get("REEL_LEAK_TOOL", "auto")
if TOOL == "auto":
    TOOL = "lsan" if is_asan_build(REEL_BIN) else "valgrind"
VALGRIND = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
            "--num-callers=30"]


def start(workdir, extra_env=None, preload=None):
    if TOOL == "valgrind" and not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed (make deps) and %s is no ASan build" % REEL_BIN)
    if TOOL == "lsan" and not is_asan_build(REEL_BIN):
        pytest.fail("REEL_LEAK_TOOL=lsan needs an ASan build (build/address/reel)")
    env = {"REEL_DS_LONG_POLL_MS": "300"}
    env.update(extra_env or {})
    if TOOL == "lsan":
        # verify_asan_link_order=0: the negative control preloads its library first
        env["ASAN_OPTIONS"] = "detect_leaks=1:verify_asan_link_order=0:" + os.environ.get(
            "ASAN_OPTIONS", "")
    if preload:
        env["LD_PRELOAD"] = preload
    wrapper = VALGRIND + ["--log-file=" + os.path.join(workdir, "valgrind.log")] \
        if TOOL == "valgrind" else []
    return Server(workdir, args=["--sync", "full", "--max-body-bytes", "1048576"],
                  wrapper=wrapper, env=env, ready_timeout=60).start()


class Client:
    """Requests that must answer what the workload expects."""

    def __init__(self, srv):
        self.srv = srv
        self.n = 0

    def req(self, method, path, want, body=None, ctype=None, headers=None, timeout=60):
        h = dict(headers or {})
        if ctype:
            h["Content-Type"] = ctype
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        st, hdrs, data = self.srv.request(method, path, body=body, headers=h, timeout=timeout)
        assert st == want, "%s %s: %d (want %d) %r" % (method, path, st, want, data[:300])
        self.n += 1
        return hdrs, data

    def json(self, path, want=200):
        return json.loads(self.req("GET", path, want)[1])


def too_large(srv):
    """A body over --max-body-bytes: 413 before the body is read, then the server closes,
    so the client may not get to send it all (http.client would fail on the broken pipe)."""
    k = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    k.sendall(b"POST /v1/sessions/a/events HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: 2000000\r\n\r\n")
    try:
        k.sendall(b"[" + b" " * 100000)
    except OSError:
        pass
    answer = k.recv(200)
    k.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer


def events_routes(c):
    c.req("POST", "/v1/sessions/a/events", 200, body={"type": "user.message", "event_id": "e1",
                                                      "data": {"text": "hello"}})
    c.req("POST", "/v1/sessions/a/events", 200, body=[
        {"type": "item.delta", "data": {"delta": "Hi"}},
        {"type": "tool.call", "data": {"name": "bash", "input": {"cmd": "ls"}},
         "raw": {"native": True}},
        {"type": "item.delta", "data": {"delta": " there"}}])
    c.req("POST", "/v1/sessions/a/events", 200, ctype="application/x-ndjson",
          body=b'{"type":"item.delta","data":{"delta":"!"}}\n\n{"type":"turn.ended"}\n')
    c.req("POST", "/v1/sessions/a/events", 200, body={"type": "user.message", "event_id": "e1"})
    c.req("POST", "/v1/sessions/a/events?expected_sequence=6", 200, body={"type": "x"})
    c.req("POST", "/v1/sessions/a/events?expected_sequence=1", 409, body={"type": "x"})
    c.req("POST", "/v1/sessions/a/events", 400, ctype="application/json", body=b'{"type":')
    c.req("POST", "/v1/sessions/a/events", 400, body={"type": "t", "bogus": 1})
    c.req("POST", "/v1/sessions/a/events", 400, body={"type": "t", "data": json.loads(
        "[" * 600 + "]" * 600)})  # past --max-depth 512
    c.req("POST", "/v1/sessions/a/events", 415, ctype="text/plain", body=b"x")
    too_large(c.srv)
    c.req("POST", "/v1/sessions/b/events", 200, body=[{"type": "t", "data": {"i": i}}
                                                      for i in range(300)])
    c.json("/v1/sessions/a/events?offset=0")
    c.json("/v1/sessions/a/events?offset=2&limit=2&types=item.delta&include_raw=true")
    c.json("/v1/sessions/b/events?offset=0&limit=10000")
    c.json("/v1/events?after=0&limit=50")
    c.req("HEAD", "/v1/sessions/a/events?offset=0", 200)
    c.json("/v1/sessions/nope/events", 404)


def session_routes(c):
    c.req("PUT", "/v1/sessions/meta", 200, body={"agent": "claude", "native_session_id": "t1",
                                                 "metadata": {"team": "infra"}})
    c.req("POST", "/v1/sessions/meta", 200, body={"metadata": None})
    c.json("/v1/sessions/meta")
    c.json("/v1/sessions?limit=2")
    c.json("/v1/sessions?agent=claude&status=active")
    c.req("POST", "/v1/sessions/gone/events", 200, body={"type": "t"})
    c.req("DELETE", "/v1/sessions/gone", 200)
    c.req("POST", "/v1/sessions/gone/events", 410, body={"type": "t"})
    c.req("PUT", "/v1/sessions/bad", 400, body={"color": "red"})


def projection_routes(c):
    c.json("/v1/sessions/a/restore?max_events=3")
    c.json("/v1/sessions/a/restore?fit=sdk&include_raw=true")
    c.json("/v1/sessions/a/transcript")
    c.req("GET", "/v1/sessions/a/transcript?format=markdown&at=3", 200)
    c.json("/v1/sessions/a/verify")
    c.json("/v1/stats")
    c.json("/v1/stats?session=a&since=2000-01-01T00:00:00Z")
    c.json("/v1/stats?after=999999999")
    c.req("GET", "/v1/sessions/a/export?compression=zstd", 200)
    c.req("GET", "/v1/sessions/b/export?format=jsonl&compression=none", 200)
    c.req("GET", "/v1/export?compression=zstd", 200)
    c.req("GET", "/v1/export?sessions=a,b&compression=none", 200)
    c.req("GET", "/v1/sessions/nope/restore", 404)


def misc_routes(c):
    c.req("GET", "/v1/health", 200)
    c.req("HEAD", "/v1/health", 200)
    c.req("GET", "/metrics", 200)
    c.req("GET", "/ui/", 200)
    c.req("GET", "/ui/app.js", 200)
    c.req("GET", "/v1/nothing", 404)
    c.req("PATCH", "/v1/sessions/a/events", 405)
    c.req("GET", "/v1/sessions/a%00b/events", 400)  # a control character: no session id
    c.req("GET", "/v1/sessions/a%2Fb/events", 404)  # 'a/b': a valid id, no such session


def stream_routes(c):
    c.req("PUT", "/v1/stream/chat/1", 201, ctype="application/json", body=b'[{"n":1}]')
    hdrs, _ = c.req("POST", "/v1/stream/chat/1", 204, ctype="application/json",
                    body=b'[{"n":2},{"n":3}]')
    tail = hdrs["stream-next-offset"]
    c.req("POST", "/v1/stream/chat/1", 200, ctype="application/json", body=b'{"n":4}',
          headers={"Producer-Id": "p", "Producer-Epoch": "0", "Producer-Seq": "0"})
    c.req("GET", "/v1/stream/chat/1?offset=-1", 200)
    c.req("HEAD", "/v1/stream/chat/1", 200)
    hdrs, _ = c.req("GET", "/v1/stream/chat/1?offset=now", 200)
    c.req("GET", "/v1/stream/chat/1?offset=%s&live=long-poll" % hdrs["stream-next-offset"], 204)
    c.req("GET", "/v1/stream/chat/1?offset=%s&live=long-poll" % tail, 200)
    c.req("PUT", "/v1/stream/bytes", 201, ctype="application/octet-stream", body=b"\x00\x01")
    c.req("PUT", "/v1/stream/fork", 201, headers={"Stream-Forked-From": "/v1/stream/bytes"})
    c.req("POST", "/v1/stream/bytes", 204, headers={"Stream-Closed": "true"})
    c.req("DELETE", "/v1/stream/fork", 204)
    c.req("PUT", "/v1/stream/ttl", 201, ctype="text/plain", headers={"Stream-TTL": "1"})
    c.req("GET", "/v1/stream/missing", 404)


def live_routes(srv, c):
    """Long-polls woken by an append and timed out; SSE read and dropped; Last-Event-ID."""
    c.json("/v1/sessions/a/events?offset=999&wait=1")
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "r", c.json("/v1/sessions/b/events?offset=300&wait=30")))
    t.start()
    time.sleep(0.5)
    c.req("POST", "/v1/sessions/b/events", 200, body={"type": "wake"})
    t.join(60)
    assert len(out["r"]["events"]) == 1
    for kw in ({"offset": 0}, {"last_event_id": 3}, {"feed": True}):
        st = SSEStream(srv.port, "a", timeout=30, **kw)
        got = []
        while len(got) < 2:
            msgs, eof = st.read()
            assert not eof
            got += msgs
        st.close()
    c.req("GET", "/v1/sessions/a/events/sse", 400, headers={"Last-Event-ID": "x"})
    k = socket.create_connection(("127.0.0.1", srv.port))  # SSE on the Durable Stream
    k.sendall(b"GET /v1/stream/chat/1?offset=-1&live=sse HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"event: data" in k.recv(65536) + k.recv(65536)
    k.close()
    k = socket.create_connection(("127.0.0.1", srv.port))  # an export cut by its client
    k.sendall(b"GET /v1/sessions/b/export?compression=none HTTP/1.1\r\nHost: x\r\n\r\n")
    assert k.recv(100).startswith(b"HTTP/1.1 200")
    k.close()


def left_open(srv):
    """What is still under way at the signal: streams, long-polls, a half-sent head and
    body. Returns the sockets (closed after the server exited)."""
    socks = []
    for kw in ({"offset": 0}, {"feed": True}):
        socks.append(SSEStream(srv.port, "a", timeout=30, **kw).sock)
    for req in (b"GET /v1/sessions/a/events?offset=999&wait=60 HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /v1/stream/chat/1?offset=now&live=long-poll HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /v1/stream/chat/1?offset=now&live=sse HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /v1/health HTTP/1.1\r\nHo",
                b"POST /v1/sessions/c/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                b"Content-Type: application/json\r\n\r\n[{\"type\":\"t\"},"):
        k = socket.create_connection(("127.0.0.1", srv.port))
        k.sendall(req)
        socks.append(k)
    time.sleep(1.0)
    return socks


def leak_report(srv, workdir):
    """The checker's complaint, or '' when it found nothing."""
    if TOOL == "lsan":
        return srv.sanitizer_report()
    with open(os.path.join(workdir, "valgrind.log")) as f:
        log = f.read()
    bad = "ERROR SUMMARY: 0 errors" not in log or any(
        ("%s lost:" % kind) in log and ("%s lost: 0 bytes" % kind) not in log
        for kind in ("definitely", "indirectly", "possibly"))
    return log if bad else ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_no_leak_on_clean_shutdown(workdir, sig):
    srv = start(workdir)
    c = Client(srv)
    socks = []
    try:
        misc_routes(c)
        events_routes(c)
        if sig == signal.SIGTERM:  # the whole workload once; SIGINT gets the short one
            session_routes(c)
            projection_routes(c)
            stream_routes(c)
            live_routes(srv, c)
        socks = left_open(srv)
        rc, secs = srv.stop(sig, timeout=60)
    finally:
        srv.stop(signal.SIGKILL)
        for k in socks:
            k.close()
    print("\n%s: %d requests, exit %s in %.1f s under %s" % (sig.name, c.n, rc, secs, TOOL))
    report = leak_report(srv, workdir)
    assert not report, report[-6000:]
    assert rc == 0, srv.log_text()[-3000:]


def test_negative_control_a_leak_is_reported(workdir):
    """The same check on a server that leaks one 4 KiB block (tests/load/leakshim.c,
    preloaded) must fail: otherwise the check above could not fail either."""
    shim = os.path.join(workdir, "leakshim.so")
    subprocess.run(["cc", "-O0", "-fPIC", "-shared", "-o", shim,
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "leakshim.c")],
                   check=True)
    srv = start(workdir, preload=shim)
    try:
        misc_routes(Client(srv))
        rc, _ = srv.stop(signal.SIGTERM, timeout=60)
    finally:
        srv.stop(signal.SIGKILL)
    report = leak_report(srv, workdir)
    assert "4,096 bytes" in report or "4096 byte" in report, report[-3000:] or srv.log_text()
    assert rc != 0  # valgrind's --error-exitcode, LeakSanitizer's exit code 23
