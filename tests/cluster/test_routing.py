"""Cells and virtual shards behind nginx (docs/CLUSTER.md; issue 18 item 1).

Three cells and a spare, each a real `reel serve` on its own data directory, and a real
nginx configured by `reel cluster nginx-conf`. REEL_CLUSTER_SESSIONS sets how many sessions
the routing test sends through nginx (10,000 by default; tests/run.sh --quick sends fewer).
"""
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from cluster import REEL_BIN, Client, Cluster, Map

N = int(os.environ.get("REEL_CLUSTER_SESSIONS", "10000"))
APPEND = json.dumps({"type": "note", "data": {"n": 1}}).encode()
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def seg(sid):
    """A session id as one path segment in canonical percent-encoding."""
    return urllib.parse.quote(sid, safe="~")


def session_ids(n):
    """Plain ids, and every seventh one with bytes that need escapes (UTF-8, '/', ' ',
    ':', '~', '%') or in a stream session's form."""
    odd = ["team/%d", "ünï-%d", "a b:%d", "x~%d", "100%%-%d", "ds:chat%d", "ds:a.b_c-%d:2"]
    return [odd[i // 7 % len(odd)] % i if i % 7 == 3 else "s-%05d" % i for i in range(n)]


def send_all(port, paths, threads=4):
    """POSTs an event to every path, on 'threads' keep-alive connections; the statuses."""
    out = [None] * len(paths)

    def run(k):
        cl = Client(port)
        for i in range(k, len(paths), threads):
            out[i] = cl.request("POST", paths[i], APPEND, JSON)[0]
        cl.close()

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_python_rule_matches_reel_cluster_shard(cluster):
    """The document's rule (computed here in Python) and `reel cluster shard` agree."""
    for sid in ["hello", "team/1", "ünï", "ds:chat~2F1:3", "a b", "x" * 300]:
        out = subprocess.run([REEL_BIN, "cluster", "shard", "--map", cluster.map_path, "--", sid],
                             check=True, capture_output=True, text=True).stdout
        fields = dict(f.split("=", 1) for f in out.split())
        m = cluster.map
        assert int(fields["shard"]) == m.shard(fields["key"]), out
        assert fields["cell"] == m.owner_of(sid), out


def test_sessions_land_on_disjoint_cells_as_the_map_says(cluster):
    ids = session_ids(N)
    t0 = time.time()
    statuses = send_all(cluster.nginx_port, ["/v1/sessions/%s/events" % seg(s) for s in ids])
    took = time.time() - t0
    bad = [(ids[i], st) for i, st in enumerate(statuses) if st != 200]
    assert not bad, bad[:10]
    seen = {}
    for c in cluster.ids:
        for sid in cluster.listing(c):
            assert sid not in seen, "%r is on %s and %s" % (sid, seen[sid], c)
            seen[sid] = c
    assert set(seen) == set(ids)
    wrong = [(s, c, cluster.map.owner_of(s)) for s, c in seen.items() if cluster.map.owner_of(s) != c]
    assert not wrong, wrong[:10]
    per_cell = {c: sum(1 for v in seen.values() if v == c) for c in cluster.ids}
    assert per_cell["spare1"] == 0
    for c in ("c1", "c2", "c3"):  # a third each, give or take
        assert abs(per_cell[c] - N / 3) < N / 10 + 30, per_cell
    print("%d sessions through nginx in %.1f s: %s" % (N, took, per_cell))


def test_misdirected_direct_request_gets_421_naming_the_owner(cluster):
    sid = next(s for s in ("m-%d" % i for i in range(1000)) if cluster.map.owner_of(s) == "c2")
    cl = Client(cluster.ports["c1"])
    st, h, body = cl.request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)
    assert st == 421, body
    doc = json.loads(body)
    assert doc["type"].endswith("misdirected_request") and doc["status"] == 421
    assert h["reel-owner"] == "c2" and h["reel-cell"] == "c1"
    assert h["reel-owner-address"] == "127.0.0.1:%d" % cluster.ports["c2"]
    assert h["location"] == "http://127.0.0.1:%d/v1/sessions/%s/events" % (cluster.ports["c2"], sid)
    assert "'c2'" in doc["detail"] and sid in doc["detail"]
    for method, path in (("GET", "/v1/sessions/%s" % sid), ("GET", "/v1/sessions/%s/events" % sid),
                         ("DELETE", "/v1/sessions/%s" % sid)):
        assert cl.request(method, path)[0] == 421, (method, path)
    st, _, metrics = cl.request("GET", "/metrics")
    assert b'reel_cluster_epoch{cell="c1"} 1\n' in metrics
    assert b'reel_cluster_shards{cell="all"} 4096\n' in metrics
    assert b"reel_cluster_misdirected_total 4\n" in metrics, metrics[-400:]
    # Nothing was written anywhere; a spare owns nothing.
    assert sid not in cluster.listing("c1") and sid not in cluster.listing("c2")
    sp = Client(cluster.ports["spare1"])
    st, h, _ = sp.request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)
    assert st == 421 and h["reel-owner"] == "c2"
    # Through nginx the same request reaches the owner.
    st, h, _ = Client(cluster.nginx_port).request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)
    assert st == 200 and h["reel-cell"] == "c2"


def test_streams_route_by_their_path_and_their_sessions_follow(cluster):
    ng = Client(cluster.nginx_port)
    paths = ["chat/%d" % i for i in range(40)] + ["room-%d" % i for i in range(40)] + ["é/ü %d" % i for i in range(10)]
    for p in paths:
        url = "/v1/stream/" + urllib.parse.quote(p, safe="/~")
        st, h, body = ng.request("PUT", url, b"[]", JSON)
        assert st == 201, (p, body)
        owner = cluster.map.owner_of_stream(p)
        assert h["reel-cell"] == owner
        for c in ("c1", "c2", "c3"):
            st, h, _ = Client(cluster.ports[c]).request("HEAD", url)
            assert st == (200 if c == owner else 421), (p, c, st)
    # A stream's session (ds:<path>) is listed by its stream's cell; a path without
    # escapes can be read through the session routes via nginx as well.
    for c in ("c1", "c2", "c3"):
        for sid in cluster.listing(c):
            if sid.startswith("ds:"):
                assert cluster.map.owner_of(sid) == c, sid
    st, h, body = ng.request("GET", "/v1/sessions/ds:room-7/events")
    assert st == 200 and h["reel-cell"] == cluster.map.owner_of_stream("room-7"), body


def test_store_wide_reads_serve_one_cell_and_name_it(cluster):
    ng = Client(cluster.nginx_port)
    for c in ("c2", "c3"):
        st, h, body = ng.request("GET", "/v1/sessions?limit=50", headers={"Reel-Cell": c})
        assert st == 200 and h["reel-cell"] == c
        ids = [s["id"] for s in json.loads(body)["sessions"]]
        assert ids and all(cluster.map.owner_of(s) == c for s in ids)
        st, h, _ = ng.request("GET", "/v1/events?limit=5", headers={"Reel-Cell": c})
        assert st == 200 and h["reel-cell"] == c
    st, h, _ = ng.request("GET", "/v1/health")
    assert st == 200 and h["reel-cell"] == "c1"  # the first cell by default


def test_sse_through_nginx_is_not_buffered(cluster):
    sid = "sse-live"
    assert Client(cluster.nginx_port).request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)[0] == 200
    s = socket.create_connection(("127.0.0.1", cluster.nginx_port), timeout=8)
    s.sendall(("GET /v1/sessions/%s/events/sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream"
               "\r\n\r\n" % sid).encode())
    time.sleep(0.3)
    t0 = time.time()
    st = Client(cluster.nginx_port).request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)[0]
    assert st == 200
    got = b""
    while got.count(b'"note"') < 2 and time.time() - t0 < 8:
        got += s.recv(65536)
    s.close()
    # Buffered, the event would wait for nginx's 4-8 KiB buffer to fill, i.e. never here;
    # the bound leaves room for a loaded machine's fsync.
    assert got.count(b'"note"') == 2 and time.time() - t0 < 4, got[-300:]


def test_map_reloads_under_load_drop_nothing(cluster):
    """SIGHUP swaps the map while requests run (cell.c's lock): every append is answered
    200 through nginx and every cell stays up."""
    stop = threading.Event()
    out = []

    def load(k):
        cl, i = Client(cluster.nginx_port), 0
        while not stop.is_set():
            out.append(cl.request("POST", "/v1/sessions/hup-%d-%d/events" % (k, i % 50), APPEND, JSON)[0])
            i += 1
        cl.close()

    ts = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for _ in range(10):
        cluster.hup_cells()
    stop.set()
    for t in ts:
        t.join()
    assert out and set(out) == {200}, sorted(set(out))
    assert all(p.poll() is None for p in cluster.procs.values())
    assert "cluster map %s loaded" % cluster.map_path in cluster.log("c1")


def test_map_epochs_only_grow_and_moves_follow_the_map(cluster):
    """A new map (epoch 2) moves shards: cells and nginx reload on SIGHUP and the sessions
    follow. An older map is refused on SIGHUP and at start."""
    sid = next(s for s in ("e-%d" % i for i in range(1000)) if cluster.map.owner_of(s) == "c1")
    cluster.write_map(epoch=2, shards=4096, spares=1, order=["c3", "c1", "c2", "spare1"])
    m2 = Map(cluster.map_path)
    new = m2.owner_of(sid)
    assert new != "c1"
    cluster.hup_cells()
    cluster.reload_nginx()
    st, h, _ = Client(cluster.nginx_port).request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)
    assert st == 200 and h["reel-cell"] == new and h["reel-cluster-epoch"] == "2"
    st, h, _ = Client(cluster.ports["c1"]).request("POST", "/v1/sessions/%s/events" % sid, APPEND, JSON)
    assert st == 421 and h["reel-owner"] == new
    # Back to epoch 1: refused, epoch 2 stays in force.
    cluster.write_map(epoch=1, shards=4096, spares=1)
    cluster.hup_cells()
    st, h, _ = Client(cluster.ports["c1"]).request("GET", "/v1/health")
    assert h["reel-cluster-epoch"] == "2"
    assert "older than epoch 2" in cluster.log("c1")
    # And a cell restarted with it does not start.
    p = cluster.procs["c2"]
    p.terminate()
    p.wait(10)
    r = subprocess.run([REEL_BIN, "serve", "--data", os.path.join(cluster.tmp, "c2"), "--listen",
                        "127.0.0.1:%d" % cluster.ports["c2"], "--cluster-map", cluster.map_path,
                        "--cell", "c2"], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "older than epoch 2" in r.stderr
