"""Cluster-wide reads (docs/CLUSTER.md "Cluster-wide reads"; issue 18 item 5): `reel cluster
events` reads every cell's feed under a vector cursor, `reel cluster sessions` lists every
session once. Three cells and a spare, real nginx in front.
"""
import json
import signal
import subprocess
import time
import urllib.parse

import pytest

from cluster import REEL_BIN, Client, Cluster

JSON = {"Content-Type": "application/json"}
TRICKY = 'a\\"}]}{[ \\\\"'  # an escaped quote, then brackets, then an escaped backslash


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("reads"), sync="none")
    try:
        c.start()
        yield c
    finally:
        c.stop()


def append(cl, sid, n, tag):
    body = json.dumps([{"type": "note", "data": {"tag": tag, "j": j}} for j in range(n)]).encode()
    st, _, out = cl.request("POST", "/v1/sessions/%s/events" % urllib.parse.quote(sid, safe="~"),
                            body, JSON)
    assert st == 200, out
    return json.loads(out)["last_sequence"]


@pytest.fixture(scope="module")
def loaded(cluster):
    """120 sessions with 1..5 events each, appended through nginx in two rounds (so each
    cell's feed interleaves sessions)."""
    cl = Client(cluster.nginx_port)
    last = {}
    for rnd in range(2):
        for i in range(120):
            sid = "r-%03d" % i if i % 10 else "r/ü %d" % i
            last[sid] = append(cl, sid, 1 + (i + rnd) % 3, rnd)
    # strings that end in backslashes before a quote: the reader cuts events at the right one
    body = json.dumps([{"type": "odd", "data": {"s": TRICKY}}]).encode()
    st, _, out = cl.request("POST", "/v1/sessions/tricky/events", body, JSON)
    assert st == 200, out
    last["tricky"] = 1
    cl.close()
    return last


def run(cluster, *args, timeout=60):
    p = subprocess.run([REEL_BIN, "cluster"] + list(args) + ["--map", cluster.map_path],
                       capture_output=True, text=True, timeout=timeout)
    return p


def lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def final_cursor(stderr):
    return [ln.split("cursor ", 1)[1] for ln in stderr.splitlines() if ": cursor " in ln][-1]


def check_once_in_order(cluster, events, last):
    seen = {}
    for e in events:
        sid = e["session_id"]
        assert e["cell"] == cluster.map.owner_of(sid), e
        assert e["sequence"] == seen.get(sid, 0) + 1, (sid, e["sequence"], seen.get(sid))
        seen[sid] = e["sequence"]
    assert seen == last


def test_events_every_event_once_in_session_order(cluster, loaded):
    p = run(cluster, "events", "--limit", "7")
    assert p.returncode == 0, p.stderr
    events = lines(p.stdout)
    check_once_in_order(cluster, events, loaded)
    assert [e["data"]["s"] for e in events if e["session_id"] == "tricky"] == [TRICKY]
    # merged by commit time: every cell's pages were in hand, so no event before an earlier one
    times = [e["time"] for e in events]
    assert times == sorted(times)
    # each line's cursor names every cell, sorted, its own cell at the event's position
    for e in events[:50]:
        vec = dict(x.split(":") for x in e["cursor"].split(","))
        assert list(vec) == sorted(cluster.ids) and int(vec[e["cell"]]) == e["position"]
    # the final cursor: each cell at its last position
    vec = dict(x.split(":") for x in final_cursor(p.stderr).split(","))
    for c in cluster.ids:
        mine = [e["position"] for e in events if e["cell"] == c]
        assert int(vec[c]) == (max(mine) if mine else 0)


def test_events_resume_after_any_cursor(cluster, loaded):
    events = lines(run(cluster, "events").stdout)
    for k in (0, 1, len(events) // 3, len(events) - 1):
        p = run(cluster, "events", "--after", events[k]["cursor"], "--limit", "5")
        assert p.returncode == 0, p.stderr
        rest = lines(p.stdout)
        got = {(e["session_id"], e["sequence"]) for e in events[:k + 1]}
        more = [(e["session_id"], e["sequence"]) for e in rest]
        assert not got & set(more) and len(more) == len(set(more))
        assert got | set(more) == {(e["session_id"], e["sequence"]) for e in events}


def test_cursor_survives_cells_added_and_removed(cluster, loaded):
    events = lines(run(cluster, "events").stdout)
    vec = dict(x.split(":") for x in final_cursor(run(cluster, "events").stderr).split(","))
    # a cursor without c3 (written before c3 existed): c3 is read from its start
    old = ",".join("%s:%s" % (c, vec[c]) for c in ("c1", "c2"))
    p = run(cluster, "events", "--after", old)
    assert p.returncode == 0, p.stderr
    assert [e["sequence"] for e in lines(p.stdout)] == \
        [e["sequence"] for e in events if e["cell"] == "c3"]
    # a cell the map no longer has: carried along, said once
    p = run(cluster, "events", "--after", final_cursor(p.stderr) + ",c9:77")
    assert p.returncode == 0 and p.stdout == "", p.stderr
    assert "'c9'" in p.stderr and ",c9:77," in final_cursor(p.stderr)  # in id order


def test_events_through_nginx_with_reel_cell(cluster, loaded):
    p = run(cluster, "events", "--server", "http://127.0.0.1:%d" % cluster.nginx_port)
    assert p.returncode == 0, p.stderr
    check_once_in_order(cluster, lines(p.stdout), loaded)


def test_bad_cursor_is_a_usage_error(cluster):
    for bad in ("c1", "c1:x", "c1:1,,c2:3", "c 1:3", "c1:-1"):
        p = run(cluster, "events", "--after", bad)
        assert p.returncode == 2 and bad.split(",")[0] in p.stderr, (bad, p.stderr)


def test_follow_sees_new_events_of_every_cell(cluster, loaded):
    start = final_cursor(run(cluster, "events").stderr)
    f = subprocess.Popen([REEL_BIN, "cluster", "events", "--follow", "--map", cluster.map_path,
                          "--after", start], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(0.5)
        cl = Client(cluster.nginx_port)
        sids = ["follow-%d" % i for i in range(12)]
        for s in sids:
            append(cl, s, 2, "f")
        cl.close()
        got = []
        deadline = time.time() + 20
        while len(got) < 24 and time.time() < deadline:
            line = f.stdout.readline()
            if line:
                got.append(json.loads(line))
        assert sorted((e["session_id"], e["sequence"]) for e in got) == \
            sorted((s, q) for s in sids for q in (1, 2))
        assert {e["cell"] for e in got} == {"c1", "c2", "c3"}
    finally:
        f.send_signal(signal.SIGINT)
        out, err = f.communicate(timeout=15)
    assert f.returncode == 0, err
    assert final_cursor(err) == got[-1]["cursor"] if got else True


def test_sessions_every_session_once_from_its_owner(cluster, loaded):
    p = run(cluster, "sessions", "--limit", "13")
    assert p.returncode == 0, p.stderr
    recs = lines(p.stdout)
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids))
    assert set(loaded) <= set(ids)
    for r in recs:
        assert r["cell"] == cluster.map.owner_of(r["id"]), r
    p = run(cluster, "sessions", "--prefix", "r/")
    assert sorted(r["id"] for r in lines(p.stdout)) == sorted(s for s in loaded if s.startswith("r/"))
