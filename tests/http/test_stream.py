"""Durable Streams at /v1/stream/{path} (docs/durable-streams.md): quick checks that run
without node. The official conformance suite is tests/conformance/run.sh."""
import http.client
import json
import threading
import time
import urllib.parse

import pytest

OFF = "Stream-Next-Offset"


def put(s, path, body=None, ctype="text/plain", headers=None):
    h = {"Content-Type": ctype} if ctype else {}
    h.update(headers or {})
    return s.request("PUT", "/v1/stream/" + path, body=body, headers=h)


def post(s, path, body, ctype="text/plain", headers=None):
    h = {"Content-Type": ctype} if ctype else {}
    h.update(headers or {})
    return s.request("POST", "/v1/stream/" + path, body=body, headers=h)


def read(s, path, query="", headers=None):
    return s.request("GET", "/v1/stream/" + path + query, headers=headers)


def test_create_append_read_bytes(server):
    r = put(server, "a", b"first")
    assert r.status == 201, r
    assert r.header("location").endswith("/v1/stream/a")
    assert r.header("x-content-type-options") == "nosniff"
    assert put(server, "a").status == 200  # same config: idempotent
    assert put(server, "a", ctype="application/json").status == 409
    r = post(server, "a", b"\x00second\xff")
    assert r.status == 204, r
    tail = r.header(OFF)
    r = read(server, "a")
    assert r.status == 200 and r.body == b"first\x00second\xff"
    assert r.header("stream-up-to-date") == "true" and r.header(OFF) == tail
    assert read(server, "a", headers={"If-None-Match": r.header("etag")}).status == 304
    mid = read(server, "a?offset=0000000000000001_0000000000000000")
    assert mid.body == b"\x00second\xff"
    now = read(server, "a?offset=now")
    assert now.body == b"" and now.header(OFF) == tail
    assert "no-store" in now.header("cache-control")
    for bad in ("0,1", "abc", "", "1_", "../x"):
        assert read(server, "a?offset=" + urllib.parse.quote(bad)).status == 400, bad
    assert post(server, "a", b"x", ctype="application/json").status == 409
    assert post(server, "a", b"").status == 400
    assert post(server, "missing", b"x").status == 404
    h = server.request("HEAD", "/v1/stream/a")
    assert h.status == 200 and h.header(OFF) == tail and h.header("content-type") == "text/plain"


def test_json_mode_is_a_session(server):
    assert put(server, "chat/one", b'[{"n":1},{"n":2}]', ctype="application/json").status == 201
    assert post(server, "chat/one", b'{"n":3}', ctype="application/json").status == 204
    assert post(server, "chat/one", b"[]", ctype="application/json").status == 400
    assert post(server, "chat/one", b"{bad", ctype="application/json").status == 400
    r = read(server, "chat/one")
    assert json.loads(r.body) == [{"n": 1}, {"n": 2}, {"n": 3}]
    # The same messages through the sessions routes: id "ds:" + escaped path.
    sid = "ds:chat~2Fone"
    evs = server.events(sid)
    assert [e["type"] for e in evs] == ["stream.message"] * 3
    assert [e["data"] for e in evs] == [{"n": 1}, {"n": 2}, {"n": 3}]
    rec = server.get("/v1/sessions/" + sid).json
    assert rec["metadata"]["durable_stream"]["content_type"] == "application/json"
    assert rec["metadata"]["durable_stream"]["path"] == "chat/one"
    assert any(e["session_id"] == sid for e in server.feed())
    v = server.get("/v1/sessions/%s/verify" % sid).json
    assert v["ok"] is True


def test_byte_messages_are_base64_in_the_event_view(server):
    put(server, "bin", b"\x01\x02\x03", ctype="application/octet-stream")
    evs = server.events("ds:bin")
    assert evs[0]["data"] == "AQID"


def test_idempotent_producer(server):
    put(server, "p")
    hdr = lambda e, s: {"Producer-Id": "w", "Producer-Epoch": str(e), "Producer-Seq": str(s)}
    assert post(server, "p", b"a", headers=hdr(0, 0)).status == 200
    assert post(server, "p", b"b", headers=hdr(0, 1)).status == 200
    r = post(server, "p", b"b", headers=hdr(0, 1))
    assert r.status == 204 and r.header("producer-seq") == "1"
    r = post(server, "p", b"x", headers=hdr(0, 5))
    assert r.status == 409 and r.header("producer-expected-seq") == "2"
    assert post(server, "p", b"c", headers=hdr(1, 0)).status == 200
    r = post(server, "p", b"z", headers=hdr(0, 2))
    assert r.status == 403 and r.header("producer-epoch") == "1"
    assert post(server, "p", b"x", headers=hdr(2, 3)).status == 400
    assert post(server, "p", b"x", headers={"Producer-Id": "w"}).status == 400
    assert read(server, "p").body == b"abc"


def test_concurrent_producer_retries_append_once(server):
    put(server, "race")
    results = []

    def send(seq):
        h = {"Producer-Id": "w", "Producer-Epoch": "0", "Producer-Seq": str(seq),
             "Content-Type": "text/plain"}
        results.append(server.request("POST", "/v1/stream/race", body=b"m%d;" % seq,
                                      headers=h).status)

    for seq in range(8):  # each seq sent by three racing clients
        ts = [threading.Thread(target=send, args=(seq,)) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert results.count(200) == 8 and results.count(204) == 16
    assert read(server, "race").body == b"".join(b"m%d;" % i for i in range(8))


def test_close(server):
    put(server, "c", b"x")
    r = post(server, "c", b"", ctype=None, headers={"Stream-Closed": "true"})
    assert r.status == 204 and r.header("stream-closed") == "true"
    tail = r.header(OFF)
    r = post(server, "c", b"y")
    assert r.status == 409 and r.header("stream-closed") == "true" and r.header(OFF) == tail
    r = read(server, "c")
    assert r.body == b"x" and r.header("stream-closed") == "true"
    r = read(server, "c?offset=%s&live=long-poll" % tail)
    assert r.status == 204 and r.header("stream-closed") == "true"


def test_long_poll_wakes_and_times_out(server_factory):
    s = server_factory(args=["--sync", "none"], env={"REEL_DS_LONG_POLL_MS": "400"})
    r = put(s, "lp")
    tail = r.header(OFF)
    t0 = time.time()
    r = read(s, "lp?offset=%s&live=long-poll" % tail)
    assert r.status == 204 and r.header(OFF) == tail and r.header("stream-cursor").isdigit()
    assert time.time() - t0 < 5
    out = {}

    def poll():
        out["r"] = read(s, "lp?offset=%s&live=long-poll" % tail)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.1)
    post(s, "lp", b"hello")
    t.join()
    assert out["r"].status == 200 and out["r"].body == b"hello"


def test_sse_data_and_control(server):
    put(server, "sse", b"line1\nline2")
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.request("GET", "/v1/stream/sse?offset=-1&live=sse")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("content-type") == "text/event-stream"
    buf = b""
    while b"event: control" not in buf or not buf.endswith(b"\n\n"):
        buf += r.read1(4096)
    c.close()
    assert b"event: data\ndata:line1\ndata:line2\n\n" in buf
    ctl = json.loads(buf.split(b"event: control\ndata:")[1].split(b"\n")[0])
    assert ctl["upToDate"] is True and ctl["streamNextOffset"]


def test_delete_and_recreate_use_a_new_session(server):
    put(server, "d", b"old")
    assert server.request("DELETE", "/v1/stream/d").status == 204
    assert read(server, "d").status == 404
    assert server.request("DELETE", "/v1/stream/d").status == 404
    assert put(server, "d", b"new").status == 201
    assert read(server, "d").body == b"new"
    assert server.get("/v1/sessions/ds:d").json["status"] == "deleted"
    assert server.get("/v1/sessions/ds:d:2").json["status"] == "active"


def test_ttl_expiry(server):
    assert put(server, "ttl", headers={"Stream-TTL": "1"}).status == 201
    assert put(server, "bad", headers={"Stream-TTL": "01"}).status == 400
    assert put(server, "bad", headers={"Stream-TTL": "1", "Stream-Expires-At":
                                       "2030-01-01T00:00:00Z"}).status == 400
    assert server.request("HEAD", "/v1/stream/ttl").header("stream-ttl") == "1"
    time.sleep(1.3)
    assert server.request("HEAD", "/v1/stream/ttl").status == 404
    assert put(server, "ttl").status == 201


def test_fork_reads_source_prefix(server):
    r = put(server, "src", b"abc")
    at = r.header(OFF)
    post(server, "src", b"def")
    r = put(server, "fork", headers={"Stream-Forked-From": "/v1/stream/src",
                                     "Stream-Fork-Offset": at})
    assert r.status == 201
    post(server, "fork", b"XY")
    assert read(server, "fork").body == b"abcXY"
    assert server.request("DELETE", "/v1/stream/src").status == 204
    assert read(server, "src").status == 410  # kept while the fork reads it
    assert read(server, "fork").body == b"abcXY"


def test_bad_paths(server):
    assert server.request("PUT", "/v1/stream/a%00b").status == 400
    assert server.request("PUT", "/v1/stream/" + "x" * 1015).status == 400  # "ds:" + 1015 > 1017


def test_scopes(server_factory, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("r read\nw full\n")
    s = server_factory(args=["--sync", "none", "--tokens-file", str(tokens)])
    s.token = "w"
    assert put(s, "t", b"x").status == 201
    s.token = "r"
    assert read(s, "t").body == b"x"
    assert post(s, "t", b"y").status == 403
    s.token = None
    assert read(s, "t").status == 401


def test_export_import_keeps_streams(server_factory, tmp_path):
    import subprocess
    from conftest import REEL_BIN
    a = server_factory(args=["--sync", "none"])
    blob = bytes(range(256)) * 3
    assert put(a, "x/bin", blob, ctype="application/octet-stream").status == 201
    assert put(a, "x/json", b'[{"k":1.50},"s"]', ctype="application/json").status == 201
    post(a, "x/json", b"", ctype=None, headers={"Stream-Closed": "true"})
    out = str(tmp_path / "dump.jsonl")
    subprocess.run([REEL_BIN, "export", "--data", a.data, "--compression", "none", "-o", out],
                   check=True, capture_output=True)
    b = server_factory(args=["--sync", "none"], start=False)
    subprocess.run([REEL_BIN, "import", "--data", b.data, out], check=True, capture_output=True)
    b.start()
    r = read(b, "x/bin")
    assert r.status == 200 and r.body == blob
    r = read(b, "x/json")
    assert r.body == b'[{"k":1.50},"s"]' and r.header("stream-closed") == "true"
    assert r.header(OFF) == read(a, "x/json").header(OFF)


def test_delete_racing_appends_keeps_the_server_sound(server):
    """A DELETE that lands between an append's commit and its answer (the append then
    reads the stream's state to compute its offset and finds nothing) used to release an
    uninitialised ds_meta_t, freeing a garbage pointer: under ASan the server died. Every
    answer must be one the protocol allows, and the server must stay up."""
    errors = []

    def appender(k):
        for i in range(40):
            r = post(server, "race", b"x%d-%d" % (k, i))
            if r.status not in (204, 404, 410, 409):
                errors.append(("post", r.status, r.body[:200]))

    def churn():
        for _ in range(40):
            d = server.request("DELETE", "/v1/stream/race")
            if d.status not in (204, 404):
                errors.append(("delete", d.status, d.body[:200]))
            p = put(server, "race")
            if p.status not in (200, 201):
                errors.append(("put", p.status, p.body[:200]))

    assert put(server, "race").status == 201
    threads = [threading.Thread(target=appender, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=churn))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert server.get("/v1/health").status == 200
    r = read(server, "race")
    assert r.status == 200
