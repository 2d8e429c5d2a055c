"""Every route and parameter of docs/HTTP.md that `reel serve` implements (docs/HTTP.md)."""
import json
import threading
import time

from conftest import SSEClient, ev


def test_health_answers(server):
    r = server.get("/v1/health")
    assert r.status == 200
    assert r.json["status"] == "ok"
    assert r.header("content-type") == "application/json"


def test_append_one_object(server):
    r = server.append("s1", ev("a", data={"x": 1}))
    assert r.status == 200, r
    j = r.json
    assert j == {"session_id": "s1", "first_sequence": 1, "last_sequence": 1,
                 "position": j["position"], "duplicates": 0}
    assert j["position"] >= 1


def test_append_array_is_one_batch(server):
    r = server.append("s1", [ev("a"), ev("b"), ev("c")])
    assert r.status == 200
    assert (r.json["first_sequence"], r.json["last_sequence"]) == (1, 3)
    evs = server.events("s1")
    assert [e["sequence"] for e in evs] == [1, 2, 3]
    assert [e["type"] for e in evs] == ["a", "b", "c"]
    # positions strictly increase
    ps = [e["position"] for e in evs]
    assert ps == sorted(set(ps))


def test_append_ndjson(server):
    body = "\n".join(json.dumps(ev("n%d" % i)) for i in range(5)) + "\n"
    r = server.request("POST", "/v1/sessions/nd/events", body=body,
                       headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 200, r
    assert r.json["last_sequence"] == 5
    assert [e["type"] for e in server.events("nd")] == ["n%d" % i for i in range(5)]


def test_append_content_type_with_charset(server):
    r = server.request("POST", "/v1/sessions/cs/events", body=json.dumps(ev()),
                       headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 200, r


def test_event_envelope_round_trips(server):
    e = {"type": "item.delta", "source": "agent", "synthetic": False,
         "native_session_id": "thread_abc", "event_id": "my-id-1",
         "data": {"z": 1, "a": [1, 2.5, "x", None, True], "big": 123456789012345678901234567890},
         "raw": {"line": "native"}}
    body = json.dumps(e)
    r = server.request("POST", "/v1/sessions/env/events", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    got = server.get("/v1/sessions/env/events?include_raw=true")
    text = got.body.decode()
    assert '"data":{"z":1,"a":[1,2.5,"x",null,true],"big":123456789012345678901234567890}' in text
    g = got.json["events"][0]
    for k in ("type", "source", "synthetic", "native_session_id", "event_id", "raw"):
        assert g[k] == e[k]
    assert g["session_id"] == "env" and g["sequence"] == 1
    assert g["time"].endswith("Z") and len(g["time"]) == 24
    # raw is left out unless asked for
    g2 = server.events("env")[0]
    assert "raw" not in g2


def test_idempotent_event_id(server):
    r1 = server.append("idem", [ev("a", event_id="e1"), ev("b", event_id="e2")])
    assert r1.status == 200
    r2 = server.append("idem", [ev("a", event_id="e1"), ev("b", event_id="e2")])
    assert r2.status == 200
    assert r2.json["duplicates"] == 2
    assert (r2.json["first_sequence"], r2.json["last_sequence"]) == (1, 2)
    r3 = server.append("idem", [ev("b", event_id="e2"), ev("c", event_id="e3")])
    assert r3.json["duplicates"] == 1
    assert r3.json["last_sequence"] == 3
    assert len(server.events("idem")) == 3


def test_expected_sequence(server):
    assert server.append("ex", ev(), query="?expected_sequence=0").status == 200
    assert server.append("ex", ev(), query="?expected_sequence=1").status == 200
    r = server.append("ex", ev(), query="?expected_sequence=1")
    assert r.status == 409
    assert r.header("content-type") == "application/problem+json"
    assert r.json["type"] == "urn:reel:error:sequence_conflict"
    assert "2" in r.json["detail"]
    assert len(server.events("ex")) == 2


def test_read_paging(server):
    server.append("pg", [ev("t%d" % i) for i in range(25)])
    r = server.get("/v1/sessions/pg/events?offset=0&limit=10").json
    assert [e["sequence"] for e in r["events"]] == list(range(1, 11))
    assert r["hasMore"] is True and r["next_offset"] == 10
    r = server.get("/v1/sessions/pg/events?offset=20&limit=10").json
    assert [e["sequence"] for e in r["events"]] == list(range(21, 26))
    assert r["hasMore"] is False and r["next_offset"] == 25
    r = server.get("/v1/sessions/pg/events?offset=25").json
    assert r["events"] == [] and r["hasMore"] is False and r["next_offset"] == 25
    r = server.get("/v1/sessions/pg/events?offset=15&limit=10").json
    assert r["hasMore"] is False and len(r["events"]) == 10


def test_read_default_limit_is_100(server):
    server.append("dl", [ev() for _ in range(150)])
    r = server.get("/v1/sessions/dl/events").json
    assert len(r["events"]) == 100 and r["hasMore"] and r["next_offset"] == 100


def test_read_limit_max(server):
    assert server.get("/v1/sessions/x/events?limit=10001").status == 400
    server.append("lm", ev())
    assert server.get("/v1/sessions/lm/events?limit=10000").status == 200


def test_read_types_filter(server):
    server.append("ty", [ev("a"), ev("b"), ev("c"), ev("a"), ev("b")])
    r = server.get("/v1/sessions/ty/events?types=a,c").json
    assert [(e["sequence"], e["type"]) for e in r["events"]] == [(1, "a"), (3, "c"), (4, "a")]
    r = server.get("/v1/sessions/ty/events?types=b&limit=1").json
    assert [e["sequence"] for e in r["events"]] == [2] and r["hasMore"]
    r = server.get("/v1/sessions/ty/events?types=b&offset=2").json
    assert [e["sequence"] for e in r["events"]] == [5]
    r = server.get("/v1/sessions/ty/events?types=zzz").json
    assert r["events"] == [] and r["next_offset"] == 5


def test_read_unknown_session_404(server):
    r = server.get("/v1/sessions/nope/events")
    assert r.status == 404
    assert r.json["type"] == "urn:reel:error:session_not_found"


def test_long_poll_wakes_on_append(server):
    server.append("lp", ev())
    out = {}

    def poll():
        t0 = time.time()
        out["r"] = server.get("/v1/sessions/lp/events?offset=1&wait=10")
        out["t"] = time.time() - t0

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    server.append("lp", ev("late"))
    th.join(15)
    r = out["r"]
    assert r.status == 200
    assert [e["type"] for e in r.json["events"]] == ["late"]
    assert 0.4 < out["t"] < 5


def test_long_poll_times_out_with_empty_page(server):
    server.append("lpt", ev())
    t0 = time.time()
    r = server.get("/v1/sessions/lpt/events?offset=1&wait=1")
    dt = time.time() - t0
    assert r.status == 200
    assert r.json == {"events": [], "hasMore": False, "next_offset": 1}
    assert 0.9 <= dt < 3


def test_long_poll_returns_at_once_when_data_exists(server):
    server.append("lpn", [ev(), ev()])
    t0 = time.time()
    r = server.get("/v1/sessions/lpn/events?offset=1&wait=30")
    assert time.time() - t0 < 1
    assert [e["sequence"] for e in r.json["events"]] == [2]


def test_long_poll_wait_max(server):
    assert server.get("/v1/sessions/x/events?wait=61").status == 400


def test_feed_by_position(server):
    server.append("fa", [ev("a1"), ev("a2")])
    server.append("fb", [ev("b1")])
    server.append("fa", [ev("a3")])
    r = server.get("/v1/events?after=0").json
    assert [(e["session_id"], e["type"]) for e in r["events"]] == [
        ("fa", "a1"), ("fa", "a2"), ("fb", "b1"), ("fa", "a3")]
    pos = [e["position"] for e in r["events"]]
    assert pos == sorted(pos) and len(set(pos)) == 4
    r2 = server.get("/v1/events?after=%d&limit=1" % pos[1]).json
    assert [e["type"] for e in r2["events"]] == ["b1"]
    assert r2["hasMore"] is True and r2["next_after"] == pos[2]
    r3 = server.get("/v1/events?after=0&types=b1").json
    assert [e["type"] for e in r3["events"]] == ["b1"]


def test_feed_long_poll(server):
    server.append("fl", ev())
    tail = server.get("/v1/events?after=0").json["next_after"]
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", server.get("/v1/events?after=%d&wait=10" % tail)))
    th.start()
    time.sleep(0.3)
    server.append("other", ev("x"))
    th.join(15)
    assert [e["type"] for e in out["r"].json["events"]] == ["x"]


def test_session_put_get_and_update(server):
    r = server.request("PUT", "/v1/sessions/ss", body=(
        '{"agent": "claude", "native_session_id": "n1", "metadata": {"b": 1, "a": [1.50, "x"]}}'),
        headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    j = r.json
    assert j["id"] == "ss" and j["agent"] == "claude" and j["native_session_id"] == "n1"
    assert j["status"] == "active" and j["last_sequence"] == 0
    assert '"metadata":{"b":1,"a":[1.50,"x"]}' in r.body.decode()
    r = server.request("POST", "/v1/sessions/ss", body={"agent": "codex"})
    assert r.json["agent"] == "codex" and r.json["native_session_id"] == "n1"
    assert r.json["metadata"] == {"b": 1, "a": [1.5, "x"]}
    g = server.get("/v1/sessions/ss")
    assert g.status == 200 and g.json["agent"] == "codex"
    server.append("ss", [ev(), ev()])
    g = server.get("/v1/sessions/ss").json
    assert g["last_sequence"] == 2 and g["event_count"] == 2
    for k in ("created_at", "updated_at", "ended_at", "bytes"):
        assert k in g


def test_session_get_unknown_404(server):
    r = server.get("/v1/sessions/none")
    assert r.status == 404 and r.json["type"] == "urn:reel:error:session_not_found"


def test_session_ended_status(server):
    server.append("en", [ev("a"), ev("session.ended")])
    assert server.get("/v1/sessions/en").json["status"] == "ended"


def test_session_delete_then_append_410(server):
    server.append("del", [ev(), ev()])
    r = server.request("DELETE", "/v1/sessions/del")
    assert r.status == 200, r
    assert r.json["status"] == "deleted"
    r = server.append("del", ev())
    assert r.status == 410
    assert r.json["type"] == "urn:reel:error:session_deleted"
    assert server.get("/v1/sessions/del").json["status"] == "deleted"
    assert all(e["session_id"] != "del" for e in server.feed())
    r = server.get("/v1/sessions/del/events?wait=5")
    assert r.status == 410 and r.json["type"] == "urn:reel:error:session_deleted"
    assert SSEClient(server, "/v1/sessions/del/events/sse").status == 410


def test_delete_ends_sse_and_long_poll(server):
    server.append("dl2", ev())
    c = SSEClient(server, "/v1/sessions/dl2/events/sse")
    assert c.next()[0] == 1
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", server.get("/v1/sessions/dl2/events?offset=1&wait=10")))
    th.start()
    time.sleep(0.3)
    t0 = time.time()
    assert server.request("DELETE", "/v1/sessions/dl2").status == 200
    assert c.next() is None  # the stream ends
    th.join(10)
    assert out["r"].status == 410
    assert time.time() - t0 < 3
    c.close()


def test_session_delete_unknown_404(server):
    assert server.request("DELETE", "/v1/sessions/ghost").status == 404


def test_sessions_list_cursor_and_filters(server):
    for i in range(7):
        server.request("PUT", "/v1/sessions/l%d" % i,
                       body={"agent": "claude" if i % 2 else "codex"})
    server.append("l0", ev("session.ended"))
    r = server.get("/v1/sessions?limit=3").json
    assert [s["id"] for s in r["sessions"]] == ["l0", "l1", "l2"]
    assert r["next_cursor"] == "l2"
    r = server.get("/v1/sessions?limit=3&cursor=l2").json
    assert [s["id"] for s in r["sessions"]] == ["l3", "l4", "l5"]
    r = server.get("/v1/sessions?limit=3&cursor=l5").json
    assert [s["id"] for s in r["sessions"]] == ["l6"] and r["next_cursor"] is None
    r = server.get("/v1/sessions?agent=claude").json
    assert [s["id"] for s in r["sessions"]] == ["l1", "l3", "l5"]
    r = server.get("/v1/sessions?status=ended").json
    assert [s["id"] for s in r["sessions"]] == ["l0"]
    r = server.get("/v1/sessions?agent=codex&status=active&limit=1").json
    assert [s["id"] for s in r["sessions"]] == ["l2"] and r["next_cursor"]


def test_metrics(server):
    server.append("m", [ev(), ev()])
    r = server.get("/metrics")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain")
    text = r.body.decode()
    for name in ("reel_http_appends_total 1", "reel_store_events_total 2",
                 "reel_store_commit_seconds_bucket", "reel_store_commit_seconds_count",
                 "reel_sse_clients", "reel_store_map_bytes", "reel_store_used_bytes",
                 "reel_http_append_batch_events_bucket"):
        assert name in text, name
    for line in text.splitlines():
        assert line.startswith("#") or len(line.split()) == 2, line


def test_head_on_read_routes(server):
    server.append("hd", ev())
    r = server.request("HEAD", "/v1/sessions/hd/events")
    assert r.status == 200 and r.body == b""


def test_keep_alive_survives_problems(server):
    c = server.conn()
    for _ in range(3):
        assert server.request("GET", "/v1/sessions/nope/events", conn=c).status == 404
        assert server.request("POST", "/v1/sessions/ok/events", body=ev(), conn=c).status == 200
        assert server.request("GET", "/v1/health", conn=c).status == 200
    c.close()


def test_cors_off_by_default(server):
    r = server.get("/v1/health", headers={"Origin": "http://x"})
    assert r.header("access-control-allow-origin") is None
    # OPTIONS answers the route's methods from the route table, the same list a 405 gives;
    # without --cors-origin there is no preflight header.
    r = server.request("OPTIONS", "/v1/sessions/a/events")
    assert r.status == 204
    assert r.header("allow") == "GET, HEAD, POST, OPTIONS"
    assert r.header("access-control-allow-methods") is None
    assert server.request("OPTIONS", "/v1/nope").status == 404


def test_cors_origin(server_factory):
    s = server_factory(args=["--sync", "none", "--cors-origin", "http://app.example"])
    r = s.get("/v1/health", headers={"Origin": "http://app.example"})
    assert r.header("access-control-allow-origin") == "http://app.example"
    r = s.request("OPTIONS", "/v1/sessions/a/events", headers={
        "Origin": "http://app.example", "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    assert "POST" in r.header("access-control-allow-methods")
    assert "Authorization" in r.header("access-control-allow-headers")
    assert r.header("access-control-allow-origin") == "http://app.example"
    r = s.get("/v1/sessions/none")
    assert r.header("access-control-allow-origin") == "http://app.example"


def test_sse_basic_and_live(server):
    server.append("sse", [ev("a"), ev("b")])
    c = SSEClient(server, "/v1/sessions/sse/events/sse")
    assert c.status == 200
    assert c.headers["content-type"] == "text/event-stream"
    assert c.next()[0] == 1
    i, d = c.next()
    assert i == 2 and d["type"] == "b" and d["sequence"] == 2
    server.append("sse", ev("c"))
    i, d = c.next()
    assert (i, d["type"]) == (3, "c")
    c.close()


def test_sse_offset_and_last_event_id(server):
    server.append("so", [ev("e%d" % i) for i in range(1, 6)])
    c = SSEClient(server, "/v1/sessions/so/events/sse?offset=3")
    assert c.next()[0] == 4
    c.close()
    c = SSEClient(server, "/v1/sessions/so/events/sse?offset=1",
                  headers={"Last-Event-ID": "4"})
    assert c.next()[0] == 5
    c.close()


def test_sse_types_and_include_raw(server):
    server.append("st", [ev("a", raw={"r": 1}), ev("b"), ev("a")])
    c = SSEClient(server, "/v1/sessions/st/events/sse?types=a&include_raw=true")
    i, d = c.next()
    assert i == 1 and d["raw"] == {"r": 1}
    assert c.next()[0] == 3
    c.close()


def test_sse_unknown_session_404(server):
    c = SSEClient(server, "/v1/sessions/none/events/sse")
    assert c.status == 404
    c.close()


def test_feed_sse(server):
    server.append("f1", ev("x"))
    c = SSEClient(server, "/v1/events/sse?after=0")
    i, d = c.next()
    assert d["type"] == "x" and i == d["position"]
    server.append("f2", ev("y"))
    i2, d2 = c.next()
    assert d2["type"] == "y" and i2 == d2["position"] and i2 > i
    c.close()
    c = SSEClient(server, "/v1/events/sse", headers={"Last-Event-ID": str(i)})
    assert c.next()[1]["type"] == "y"
    c.close()


def test_sse_many_events_in_order(server):
    server.append("big", [ev("t", data={"pad": "x" * 2000}) for _ in range(500)])
    c = SSEClient(server, "/v1/sessions/big/events/sse")
    seqs = [c.next()[0] for _ in range(500)]
    assert seqs == list(range(1, 501))
    c.close()


def test_stop_with_waiting_clients(server_factory):
    s = server_factory(args=["--sync", "none"])
    s.append("w", ev())
    c = SSEClient(s, "/v1/sessions/w/events/sse")
    assert c.next()[0] == 1
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "r", s.get("/v1/sessions/w/events?offset=1&wait=30")))
    th.start()
    time.sleep(0.3)
    t0 = time.time()
    s.stop()
    assert time.time() - t0 < 5
    th.join(5)
    assert out["r"].status == 200 and out["r"].json["events"] == []  # answered, not cut off
    assert c.next() is None  # the stream ended
    c.close()


def test_sse_types_filter_skips_long_runs(server):
    server.append("skip", [ev("noise") for _ in range(3000)] + [ev("wanted")])
    c = SSEClient(server, "/v1/sessions/skip/events/sse?types=wanted")
    i, d = c.next()
    assert (i, d["type"]) == (3001, "wanted")
    server.append("skip", [ev("noise") for _ in range(600)] + [ev("wanted")])
    assert c.next()[0] == 3602
    c.close()


def test_ui_inspector(server_factory):
    s = server_factory(args=["--sync", "none", "--token", "t0k"])
    r = s.get("/ui/")
    assert r.status == 200 and r.header("content-type").startswith("text/html")
    assert b'<script src="app.js"></script>' in r.body  # relative: works under a path prefix
    assert "script-src" not in r.header("content-security-policy")  # no inline script
    r = s.get("/ui")  # relative URLs need the slash: a relative redirect adds it
    assert r.status == 302 and r.header("location") == "ui/"
    r = s.get("/ui/app.js")
    assert r.status == 200 and r.header("content-type").startswith("text/javascript")
    assert b"EventSource" in r.body and b"innerHTML" not in r.body
    assert s.get("/ui/nope").status == 404
    assert s.request("POST", "/ui/", body=b"").status == 405
