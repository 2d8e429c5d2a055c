"""Durable consumers (issue 21, item 4): /v1/consumers (docs/HTTP.md "Consumers").

Named server-side cursors over one session or the all-sessions feed: create, list, get,
delete; a lease with a fencing token (one owner at a time), next, ack; a stale token is
refused with 409 naming it; after a lease expires the next owner reads from the last
acknowledged position; lag in /metrics; the state survives a restart (LMDB)."""
import json
import subprocess
import time

from conftest import REEL_BIN, ev


def put(s, name, body):
    return s.request("PUT", "/v1/consumers/" + name, body=body)


def lease(s, name, worker, ttl_ms=30000, token=None):
    b = {"worker": worker, "ttl_ms": ttl_ms}
    if token is not None:
        b["token"] = token
    return s.request("POST", "/v1/consumers/%s/lease" % name, body=b)


def nxt(s, name, token, q=""):
    return s.get("/v1/consumers/%s/next?token=%d%s" % (name, token, q))


def ack(s, name, token, position):
    return s.request("POST", "/v1/consumers/%s/ack" % name, body={"token": token, "position": position})


def test_session_consumer_lease_next_ack(server):
    s = server
    assert s.append("s1", [ev("a", data=i) for i in range(5)]).status == 200
    r = put(s, "c1", {"session": "s1"})
    assert r.status == 201, r
    assert r.json["acked"] == 0 and r.json["lag"] == 5 and r.json["lease"] is None
    assert put(s, "c1", {"session": "s1"}).status == 200  # same definition: kept
    r = put(s, "c1", {"session": "s2"})
    assert r.status == 409 and r.json["type"].endswith("sequence_conflict")
    # next and ack need a lease
    assert nxt(s, "c1", 1).status == 409
    r = lease(s, "c1", "w1")
    assert r.status == 200 and r.json["token"] == 1 and r.json["lease"]["owner"] == "w1"
    t = r.json["token"]
    r = nxt(s, "c1", t, "&limit=3")
    assert r.status == 200, r
    assert [e["sequence"] for e in r.json["events"]] == [1, 2, 3] and r.json["more"] is True
    assert r.json["next_position"] == 3
    r = ack(s, "c1", t, 3)
    assert r.status == 200 and r.json["acked"] == 3 and r.json["lag"] == 2
    # a second worker is refused while the lease is live, and told by whom
    r = lease(s, "c1", "w2")
    assert r.status == 409 and r.json["type"].endswith("lease_held") and "w1" in r.json["detail"]
    r = nxt(s, "c1", t)
    assert [e["sequence"] for e in r.json["events"]] == [4, 5]
    # 'after' continues within a lease without acknowledging
    assert nxt(s, "c1", t, "&after=5").json["events"] == []
    # past the end, and going back, are refused
    assert ack(s, "c1", t, 6).status == 400
    assert ack(s, "c1", t, 2).status == 409
    assert ack(s, "c1", t, 5).status == 200
    assert ack(s, "c1", t, 5).json["acks"] == 2  # the same position again changes nothing
    # renew keeps the token, release ends the lease
    r = lease(s, "c1", "w1", token=t)
    assert r.status == 200 and r.json["token"] == t
    assert s.request("POST", "/v1/consumers/c1/release", body={"token": t}).status == 204
    r = lease(s, "c1", "w2")
    assert r.status == 200 and r.json["token"] == t + 1
    # the old token is fenced
    r = ack(s, "c1", t, 5)
    assert r.status == 409 and r.json["type"].endswith("stale_token") and str(t) in r.json["detail"]
    r = nxt(s, "c1", t)
    assert r.status == 409 and "stale" in r.json["detail"]


def test_expired_lease_redelivers_from_the_acknowledged_position(server):
    s = server
    s.append("s", [ev() for _ in range(4)])
    assert put(s, "c", {"session": "s"}).status == 201
    t1 = lease(s, "c", "w1", ttl_ms=300).json["token"]
    assert ack(s, "c", t1, 2).status == 200
    assert len(nxt(s, "c", t1).json["events"]) == 2  # 3, 4 delivered, not acknowledged
    assert lease(s, "c", "w2").status == 409
    time.sleep(0.4)
    assert ack(s, "c", t1, 4).status == 409  # expired: the stale owner cannot ack
    r = lease(s, "c", "w2")
    assert r.status == 200 and r.json["token"] == t1 + 1 and r.json["takeovers"] == 1
    r = nxt(s, "c", r.json["token"])
    assert [e["sequence"] for e in r.json["events"]] == [3, 4]


def test_feed_consumer_with_types_and_long_poll(server):
    s = server
    s.append("a", [ev("keep"), ev("skip")])
    s.append("b", [ev("skip"), ev("keep")])
    assert put(s, "f", {"feed": True, "types": ["keep"]}).status == 201
    t = lease(s, "f", "w").json["token"]
    r = nxt(s, "f", t)
    assert [(e["session_id"], e["type"]) for e in r.json["events"]] == [("a", "keep"), ("b", "keep")]
    p = r.json["next_position"]
    assert ack(s, "f", t, p).status == 200
    r = nxt(s, "f", t)
    assert r.json["events"] == [] and r.json["acked"] == p
    # wait: a long-poll that an append ends
    t0 = time.time()
    r = nxt(s, "f", t, "&wait=1")
    assert r.json["events"] == [] and time.time() - t0 >= 0.9
    import threading
    th = threading.Thread(target=lambda: (time.sleep(0.3), s.append("c", [ev("keep")])))
    th.start()
    r = nxt(s, "f", t, "&wait=5")
    th.join()
    assert [e["session_id"] for e in r.json["events"]] == ["c"]


def test_list_delete_metrics_and_restart(server_factory):
    s = server_factory(args=["--sync", "full"])
    s.append("s", [ev() for _ in range(3)])
    assert put(s, "x1", {"session": "s"}).status == 201
    assert put(s, "x2", {"feed": True}).status == 201
    t = lease(s, "x1", "w").json["token"]
    assert ack(s, "x1", t, 1).status == 200
    names = [c["name"] for c in s.get("/v1/consumers").json["consumers"]]
    assert names == ["x1", "x2"]
    m = s.get("/metrics").body.decode()
    assert 'reel_consumer_lag_events{consumer="x1"} 2' in m
    assert 'reel_consumer_lag_events{consumer="x2"} 3' in m
    s.stop()
    s.start()
    r = s.get("/v1/consumers/x1")
    assert r.status == 200 and r.json["acked"] == 1 and r.json["token"] == t
    # the CLI reads the same records
    out = subprocess.run([REEL_BIN, "consumers", "--data", s.data, "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert [(c["name"], c["acked"], c["lag"]) for c in rows] == [("x1", 1, 2), ("x2", 0, 3)]
    table = subprocess.run([REEL_BIN, "consumers", "--data", s.data], capture_output=True, text=True)
    assert table.returncode == 0 and "x1" in table.stdout and "(feed)" in table.stdout
    # the same from the server, byte for byte
    remote = subprocess.run([REEL_BIN, "consumers", "--server", "http://127.0.0.1:%d" % s.port, "--json"],
                            capture_output=True, text=True)
    assert remote.returncode == 0 and remote.stdout == out.stdout, (remote.stdout, out.stdout)
    assert s.request("DELETE", "/v1/consumers/x1").status == 204
    assert s.get("/v1/consumers/x1").status == 404
    assert s.request("DELETE", "/v1/consumers/x1").status == 404


def test_bad_input_names_the_value_and_changes_nothing(server):
    s = server
    assert put(s, "bad/name", {"session": "s"}).status in (400, 404)
    r = put(s, "bad%20name", {"session": "s"})
    assert r.status == 400 and "bad%20name" in r.json["detail"]
    r = put(s, "c", {"session": "s", "feed": True})
    assert r.status == 400
    r = put(s, "c", {"sesion": "s"})
    assert r.status == 400 and "sesion" in r.json["detail"]
    r = put(s, "c", {"feed": True, "types": ["a,b"]})
    assert r.status == 400
    assert s.request("PUT", "/v1/consumers/c", body=b"{", headers={"Content-Type": "application/json"}).status == 400
    assert s.get("/v1/consumers").json == {"consumers": []}
    assert put(s, "c", {"session": "s"}).status == 201
    r = lease(s, "c", "")
    assert r.status == 400 and "worker" in r.json["detail"]
    r = s.request("POST", "/v1/consumers/c/lease", body={"worker": "w", "ttl_ms": 0})
    assert r.status == 400 and "ttl_ms" in r.json["detail"]
    r = s.request("POST", "/v1/consumers/c/ack", body={"position": 1})
    assert r.status == 400 and "token" in r.json["detail"]
    assert s.get("/v1/consumers/c/next").status == 400
    assert s.get("/v1/consumers/nope/next?token=1").status == 404
    assert s.get("/v1/consumers/c").json["token"] == 0


def test_tenants_see_only_their_sessions_consumers(server_factory, tmp_path):
    tokens = tmp_path / "tokens.jsonl"

    def add(name, scopes, prefixes=None):
        args = [REEL_BIN, "tokens", "add", name, "--scopes", scopes, "--file", str(tokens)]
        if prefixes:
            args += ["--prefixes", prefixes]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    root, acme = add("root", "full"), add("acme", "full", "acme/")
    s = server_factory(args=["--sync", "none", "--tokens", str(tokens)], token=root)
    h = {"Authorization": "Bearer " + acme}
    s.append("acme%2Fs", [ev()])
    s.append("beta%2Fs", [ev()])
    assert put(s, "theirs", {"session": "beta/s"}).status == 201
    assert put(s, "feed", {"feed": True}).status == 201
    mine = s.request("PUT", "/v1/consumers/mine", body={"session": "acme/s"}, headers=h, auth=False)
    assert mine.status == 201
    r = s.request("PUT", "/v1/consumers/x", body={"session": "beta/s"}, headers=h, auth=False)
    assert r.status == 403
    assert s.request("PUT", "/v1/consumers/x", body={"feed": True}, headers=h, auth=False).status == 403
    r1 = s.request("GET", "/v1/consumers/theirs", headers=h, auth=False)
    r2 = s.request("GET", "/v1/consumers/nosuch", headers=h, auth=False)
    assert r1.status == r2.status == 404
    assert r1.json["detail"].replace("theirs", "X") == r2.json["detail"].replace("nosuch", "X")
    assert s.request("GET", "/v1/consumers/feed", headers=h, auth=False).status == 403
    for route in ("lease", "ack", "release"):
        r = s.request("POST", "/v1/consumers/theirs/" + route, body={"worker": "w", "token": 1, "position": 1},
                      headers=h, auth=False)
        assert r.status == 404, (route, r)
    assert s.request("DELETE", "/v1/consumers/theirs", headers=h, auth=False).status == 404
    assert s.request("GET", "/v1/consumers/theirs/next?token=1", headers=h, auth=False).status == 404
    names = [c["name"] for c in s.request("GET", "/v1/consumers", headers=h, auth=False).json["consumers"]]
    assert names == ["mine"]
    # a tenant's worker: sequences only, never a store-wide position (docs/HTTP.md "Tenants")
    t = s.request("POST", "/v1/consumers/mine/lease", body={"worker": "w"}, headers=h, auth=False).json["token"]
    r = s.request("GET", "/v1/consumers/mine/next?token=%d" % t, headers=h, auth=False)
    assert r.status == 200 and [e["sequence"] for e in r.json["events"]] == [1]
    assert all("position" not in e for e in r.json["events"])
    assert s.request("GET", "/metrics", headers=h, auth=False).status == 403


def test_a_revoked_token_ends_its_long_poll(server_factory, tmp_path):
    import signal
    import threading
    tokens = tmp_path / "tokens.jsonl"

    def add(name):
        return subprocess.run([REEL_BIN, "tokens", "add", name, "--scopes", "full", "--file", str(tokens)],
                              capture_output=True, text=True, check=True).stdout.strip()

    root, w = add("root"), add("worker")
    s = server_factory(args=["--sync", "none", "--tokens", str(tokens)], token=root)
    h = {"Authorization": "Bearer " + w}
    assert put(s, "c", {"session": "s"}).status == 201
    t = s.request("POST", "/v1/consumers/c/lease", body={"worker": "w"}, headers=h, auth=False).json["token"]
    got = {}
    th = threading.Thread(target=lambda: got.update(r=s.request(
        "GET", "/v1/consumers/c/next?token=%d&wait=30" % t, headers=h, auth=False)))
    th.start()
    time.sleep(0.3)
    subprocess.run([REEL_BIN, "tokens", "revoke", "worker", "--file", str(tokens)], check=True, capture_output=True)
    t0 = time.time()
    s.proc.send_signal(signal.SIGHUP)
    th.join(10)
    assert got["r"].status == 401 and time.time() - t0 < 5
