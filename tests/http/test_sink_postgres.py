"""`reel sink postgres` against a real PostgreSQL 15 (docs/CLUSTER.md "Sink"), the feed with
changes (docs/HTTP.md "The feed with changes") and the sink routes (lag, backpressure).

The module starts its own PostgreSQL cluster in a temporary directory (initdb, pg_ctl),
listening on 127.0.0.1 only on a free port, and stops it at the end. Each test writes to
its own schema. Skipped, saying so, only when the PostgreSQL 15 binaries are missing
(scripts/deps.sh installs them). REEL_SINK_KILLS sets the kill -9 rounds (20 by default;
`make cluster-test` runs 50).
"""
import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REEL_BIN, free_port

KILLS = int(os.environ.get("REEL_SINK_KILLS", "20"))

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pglib import Postgres, available, running  # noqa: E402  (tests/pglib.py, shared with tests/cluster)

if available():
    pytest.skip(available(), allow_module_level=True)


@pytest.fixture(scope="module")
def pg():
    with running(Postgres) as p:
        yield p


_schemas = iter(range(1, 1000))


@pytest.fixture
def schema():
    return "t%d_%d" % (os.getpid(), next(_schemas))


def sink(server, pg, schema, *args, wait=True, cell=0, name=None, log=None):
    cmd = [REEL_BIN, "sink", "postgres", "--server", "http://127.0.0.1:%d" % server.port,
           "--dsn", pg.dsn, "--schema", schema, "--cell", str(cell)] + list(args)
    if name:
        cmd += ["--name", name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    if server.token:
        env["REEL_TOKEN"] = server.token
    if wait:
        return subprocess.run(cmd, capture_output=True, timeout=120, env=env)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log or subprocess.PIPE,
                            env=env)


def feed_with_changes(server):
    out, after = [], "0"
    while True:
        r = server.get("/v1/events?changes=1&bodies=1&include_raw=1&limit=10000&after=%s" % after)
        assert r.status == 200, r
        j = r.json
        out += j["events"]
        if not j["hasMore"]:
            return out
        after = j["next_after"]


def all_sessions(server):
    out, cursor = {}, ""
    while True:
        r = server.get("/v1/sessions?limit=1000" + ("&cursor=" + cursor if cursor else ""))
        assert r.status == 200, r
        j = r.json
        out.update({s["id"]: s for s in j["sessions"]})
        if not j.get("next_cursor"):
            return out
        cursor = j["next_cursor"]


def check_rows_match(server, pg, schema):
    """Every event of the feed is one row, with its bytes; every session is a row whose
    fields are the record's; every change is a row."""
    items = feed_with_changes(server)
    events = [i for i in items if "change" not in i]
    changes = [i for i in items if "change" in i]
    rows = pg.query("SELECT position, session_id, sequence, id, type, encode(chain_hash, 'hex') "
                    "AS hash, encode(body, 'base64') AS body, encode(body_hash, 'hex') AS bh, "
                    "payload_json, sender, event_index FROM %s.events ORDER BY position" % schema)
    assert len(rows) == len(events)
    for e, r in zip(events, rows):
        assert (r["position"], r["session_id"], r["sequence"], r["id"], r["type"], r["hash"]) == \
            (e["position"], e["session_id"], e["sequence"], e["event_id"], e["type"], e["hash"])
        body = base64.b64decode(e["body"])
        assert base64.b64decode(r["body"]) == body
        import hashlib
        assert r["bh"] == hashlib.sha256(body).hexdigest()
        assert r["payload_json"] == (None if e["type"] in ("nul", "lone") else e["data"])
        assert r["sender"] == (e["source"] or "")
    crows = pg.query("SELECT position, change_index, change, session_id FROM %s.changes "
                     "ORDER BY position, change_index" % schema)
    assert [(c["position"], c["index"], c["change"], c["session_id"]) for c in changes] == \
        [(r["position"], r["change_index"], r["change"], r["session_id"]) for r in crows]
    recs = all_sessions(server)
    srows = {r["id"]: r for r in pg.query("SELECT * FROM %s.sessions" % schema)}
    assert set(srows) == set(recs)
    for sid, rec in recs.items():
        r = srows[sid]
        assert (r["status"], r["last_sequence"], r["event_count"], r["runs"]) == \
            (rec["status"], rec["last_sequence"], rec["event_count"], rec["runs"]), sid
        assert r["agent"] == (rec["agent"] or "") and r["metadata_json"] == rec["metadata"], sid
        assert r["agent_session_id"] == (rec["native_session_id"] or ""), sid
    # the checkpoint is the last item's cursor
    ck = pg.query("SELECT position, change_index FROM %s.sink WHERE cell = '0'" % schema)[0]
    last = items[-1] if items else {"position": 0}
    assert (ck["position"], ck["change_index"]) == (last["position"], last.get("index", 0))
    return events


def sse_items(server, path, n):
    """The first 'n' messages of an SSE stream as (id, event, data)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    out, msg = [], {}
    while len(out) < n:
        line = r.readline().rstrip(b"\r\n").decode()
        if not line:
            if "data" in msg:
                out.append((msg.get("id"), msg.get("event"), json.loads(msg["data"])))
            msg = {}
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(": ")
        msg[k] = v
    c.close()
    return out


def test_feed_with_changes_interleaves_record_changes(server):
    assert server.request("PUT", "/v1/sessions/a", body={"agent": "claude"}).status == 200
    assert server.append("a", [{"type": "t"}, {"type": "u"}]).status == 200
    assert server.append("b", {"type": "t"}).status == 200
    assert server.request("PUT", "/v1/sessions/a", body={"metadata": {"k": 1}}).status == 200
    assert server.request("DELETE", "/v1/sessions/b").status == 200
    assert server.append("a", {"type": "w"}).status == 200
    plain = server.get("/v1/events?limit=100").json
    # today's output: the events keep the positions they had before the change log
    assert [(e["session_id"], e["position"]) for e in plain["events"]] == \
        [("a", 1), ("a", 2), ("a", 4)]
    assert all("change" not in e and "hash" not in e for e in plain["events"])
    assert plain["next_after"] == 4
    j = server.get("/v1/events?changes=1&limit=100").json
    items = j["events"]
    kinds = [i.get("change", "event") for i in items]
    assert kinds == ["put", "event", "event", "put", "delete", "event"]
    cursors = [i.get("cursor", str(i["position"])) for i in items]
    assert cursors == ["0.1", "1", "2", "3.1", "3.2", "4"] and j["next_after"] == "4"
    assert items[3]["record"]["metadata"] == {"k": 1} and items[3]["record"]["version"] == 2
    assert items[4]["record"]["status"] == "deleted" and items[4]["index"] == 2
    # paging over both keeps the one cursor
    got, after = [], "0"
    while True:
        j = server.get("/v1/events?changes=1&limit=2&after=%s" % after).json
        got += j["events"]
        if not j["hasMore"]:
            break
        after = j["next_after"]
    assert [i.get("cursor", str(i["position"])) for i in got] == cursors
    assert [i.get("change") for i in server.get("/v1/events?changes=1&after=3.1").json["events"]] \
        == ["delete", None]
    # SSE: changes are "event: change" messages whose id is their cursor
    seen = sse_items(server, "/v1/events/sse?changes=1", 6)
    assert [s[0] for s in seen] == cursors
    assert [s[1] for s in seen] == ["change", None, None, "change", "change", None]
    seen = sse_items(server, "/v1/events/sse?changes=1&after=3.1", 2)
    assert [s[0] for s in seen] == ["3.2", "4"]
    bad = server.get("/v1/events?bodies=1")
    assert bad.status == 400 and b"changes=1" in bad.body
    assert server.get("/v1/events?changes=1&types=t").status == 400
    for cur in ("3.0", "x", "3.", "-1", "3.1.1"):
        assert server.get("/v1/events?changes=1&after=%s" % cur).status == 400, cur


def test_rows_match_the_feed(server, pg, schema):
    server.request("PUT", "/v1/sessions/s1", body={"agent": "claude", "metadata": {"team": "x"}})
    for i in range(30):
        sid = "s%d" % (i % 4)
        ev = [{"type": "session.started" if i < 4 else "item.delta", "source": "agent",
               "data": {"i": i, "f": 1.5, "u": "\u00fc"}, "raw": {"eventIndex": 100 + i,
                                                                "connectionId": "c1"}}]
        if i == 7:
            ev[0]["native_session_id"] = "native-7"
        assert server.append(sid, ev).status == 200
    server.append("s2", [{"type": "session.ended"}])
    # bytes COPY's text format escapes, and values jsonb cannot hold
    server.append("s5", [{"type": "odd\ttype", "event_id": "id\\with\\backslash",
                          "source": "a\nb", "data": {"t": "tab\there\nline\r\\ end"}},
                         {"type": "nul", "data": {"n": "a\u0000b"}},
                         {"type": "lone", "data": {"s": "half \ud83d"}},
                         {"type": "literal", "data": {"t": "\\u0000 and \\ud83d as text"}}])
    server.request("PUT", "/v1/sessions/s0", body={"metadata": {"v": 2}})
    server.request("DELETE", "/v1/sessions/s3")
    p = sink(server, pg, schema, "--once")
    assert p.returncode == 0, p.stderr
    events = check_rows_match(server, pg, schema)
    assert len(events) == 35 - 7  # s3's 7 events are gone with it
    row = pg.query("SELECT event_index, connection_id FROM %s.events WHERE session_id = 's1' "
                   "ORDER BY sequence LIMIT 1" % schema)[0]
    assert row == {"event_index": 101, "connection_id": "c1"}
    # a restarted sink resumes after its checkpoint
    for i in range(5):
        server.append("s9", {"type": "late"})
    server.request("PUT", "/v1/sessions/s9", body={"agent": "codex"})
    p = sink(server, pg, schema, "--once")
    assert p.returncode == 0 and b"resuming after position" in p.stderr, p.stderr
    check_rows_match(server, pg, schema)


def test_fenced_sink_stops(server, pg, schema, tmp_path):
    server.append("a", {"type": "t"})
    old = sink(server, pg, schema, wait=False)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if pg.query("SELECT position FROM %s.sink" % schema)[0]["position"] > 0:
                break
        except (subprocess.CalledProcessError, IndexError):
            pass
        time.sleep(0.1)
    new = sink(server, pg, schema, wait=False)
    time.sleep(1)
    server.append("a", {"type": "u"})  # the old one's next transaction meets the new epoch
    try:
        rc = old.wait(20)
    finally:
        if old.poll() is None:
            old.kill()
    err = old.stderr.read().decode()
    assert rc == 3 and "fenced" in err and "epoch 2" in err, err
    server.append("a", {"type": "v"})
    deadline = time.time() + 20
    while time.time() < deadline:
        if pg.query("SELECT count(*) AS n FROM %s.events" % schema)[0]["n"] == 3:
            break
        time.sleep(0.1)
    new.send_signal(signal.SIGTERM)
    assert new.wait(20) == 0
    check_rows_match(server, pg, schema)


def log_claims(tmp_path):
    """How many sinks logged that they took the cell."""
    try:
        with open(str(tmp_path / "sink.log"), "rb") as f:
            return f.read().count(b"resuming after position")
    except OSError:
        return 0


def test_kill9_under_load_loses_and_duplicates_nothing(server_factory, pg, schema, tmp_path):
    server = server_factory(args=["--sync", "none"])
    acked = {}  # session -> highest acked sequence
    stop = threading.Event()
    errors = []

    def load(k):
        n = 0
        while not stop.is_set():
            sid = "load-%d-%d" % (k, n % 5)
            r = server.append(sid, [{"type": "item.delta", "data": {"n": n, "j": j}}
                                    for j in range(1 + n % 7)])
            if r.status != 200:
                errors.append(r)
                return
            acked[sid] = max(acked.get(sid, 0), r.json["last_sequence"])
            if n % 50 == 25:
                server.request("PUT", "/v1/sessions/%s" % sid, body={"metadata": {"n": n}})
            n += 1

    threads = [threading.Thread(target=load, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    log = open(str(tmp_path / "sink.log"), "ab")
    try:
        for i in range(KILLS):
            claims = log_claims(tmp_path)
            p = sink(server, pg, schema, wait=False, log=log)
            deadline = time.time() + 10  # killed once it holds the cell, while it copies
            while log_claims(tmp_path) == claims and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(random.uniform(0.02, 0.3))
            p.send_signal(signal.SIGKILL)
            p.wait()
            if i == KILLS // 2:  # a delete under load too
                server.append("doomed", [{"type": "x"}] * 3)
                server.request("DELETE", "/v1/sessions/doomed")
    finally:
        stop.set()
        for t in threads:
            t.join()
        log.close()
    assert not errors, errors[:3]
    # the killed sinks made progress: they were killed while copying, not before
    assert pg.query("SELECT position FROM %s.sink" % schema)[0]["position"] > 0
    p = sink(server, pg, schema, "--once")
    assert p.returncode == 0, p.stderr
    events = check_rows_match(server, pg, schema)
    # 0 lost, 0 duplicates, 0 sequence gaps: every acked sequence is a row, once
    rows = pg.query("SELECT session_id, count(*) AS n, min(sequence) AS lo, max(sequence) AS hi, "
                    "count(DISTINCT sequence) AS d FROM %s.events GROUP BY session_id" % schema)
    by = {r["session_id"]: r for r in rows}
    for sid, last in acked.items():
        r = by[sid]
        assert (r["lo"], r["d"], r["n"]) == (1, r["hi"], r["hi"]) and r["hi"] >= last, (sid, r)
    assert "doomed" not in by
    assert len(events) == sum(r["n"] for r in rows)
    # every killed sink had taken the cell, and so did the last one
    epoch = pg.query("SELECT epoch FROM %s.sink" % schema)[0]["epoch"]
    assert epoch == KILLS + 1 == log_claims(tmp_path) + 1, (epoch, log_claims(tmp_path))


def test_lag_metric_and_backpressure(server_factory):
    server = server_factory(args=["--sync", "none", "--max-sink-lag", "5",
                                  "--sink-wait-ms", "300"])
    assert server.append("a", {"type": "t"}).status == 200  # no sink yet: nothing waits
    r = server.request("POST", "/v1/sinks/pg-a", body={"position": 0})
    assert r.status == 200 and r.json["lag"] == 1, r
    for _ in range(4):
        assert server.append("a", {"type": "t"}).status == 200
    m = server.get("/metrics").body.decode()
    assert 'reel_sink_lag_events{sink="pg-a"} 5' in m
    t0 = time.time()
    r = server.append("a", {"type": "t"})  # lag 5: still allowed
    assert r.status == 200
    r = server.append("a", {"type": "t"})  # lag 6 > 5: waits 300 ms, then 503
    assert r.status == 503 and r.header("retry-after") == "1", r
    assert r.json["type"].endswith("sink_behind") and time.time() - t0 >= 0.3
    assert server.events("a")[-1]["sequence"] == 6  # nothing was appended

    def catch_up():
        time.sleep(0.1)
        server.request("POST", "/v1/sinks/pg-a", body={"position": 6})

    t = threading.Thread(target=catch_up)
    t.start()
    r = server.append("a", {"type": "t"})  # released by the report while it waits
    t.join()
    assert r.status == 200, r
    m = server.get("/metrics").body.decode()
    assert 'reel_sink_backpressure_total{outcome="refused"} 1' in m
    assert 'reel_sink_backpressure_total{outcome="waited"} 1' in m
    lst = server.get("/v1/sinks").json
    assert lst["sinks"][0]["name"] == "pg-a" and lst["sinks"][0]["position"] == 6
    assert server.request("POST", "/v1/sinks/bad%20name", body={"position": 1}).status == 400
    assert server.request("POST", "/v1/sinks/x", body={"position": -1}).status == 400
    assert server.request("DELETE", "/v1/sinks/pg-a").status == 204
    assert server.get("/v1/sinks").json["sinks"] == []


def test_reporting_needs_the_full_scope(server_factory, tmp_path):
    f = tmp_path / "tokens"
    f.write_text("appender append\nadmin full\n")
    server = server_factory(args=["--tokens-file", str(f)], token="appender")
    r = server.request("POST", "/v1/sinks/pg", body={"position": 1})
    assert r.status == 403, r
    server.token = "admin"
    assert server.request("POST", "/v1/sinks/pg", body={"position": 1}).status == 200


def test_trims_and_purges_reach_postgres(server_factory, pg, schema):
    """Retention (docs/RETENTION.md): a trim removes the oldest rows, a purge the session."""
    server = server_factory(args=["--sync", "none", "--retention-interval", "1"])
    for i in range(10):
        server.append("keep", {"type": "t", "data": {"i": i}})
        server.append("gone", {"type": "t"})
    p = sink(server, pg, schema, "--once")
    assert p.returncode == 0, p.stderr
    assert pg.query("SELECT count(*) AS n FROM %s.events" % schema)[0]["n"] == 20
    assert server.request("PUT", "/v1/sessions/keep",
                          body={"retention": {"max_events": 3}}).status == 200
    assert server.request("DELETE", "/v1/sessions/gone?purge=true").status in (200, 204)
    deadline = time.time() + 20
    while time.time() < deadline and server.get("/v1/sessions/keep").json.get(
            "first_sequence", 1) < 8:
        time.sleep(0.2)
    p = sink(server, pg, schema, "--once")
    assert p.returncode == 0, p.stderr
    kinds = [c["change"] for c in pg.query("SELECT change FROM %s.changes ORDER BY position, "
                                           "change_index" % schema)]
    assert "trim" in kinds and "purge" in kinds, kinds
    rows = pg.query("SELECT session_id, sequence FROM %s.events ORDER BY position" % schema)
    assert rows == [{"session_id": "keep", "sequence": s} for s in (8, 9, 10)]
    assert [r["id"] for r in pg.query("SELECT id FROM %s.sessions" % schema)] == ["keep"]
    check_rows_match(server, pg, schema)


def test_backpressure_follows_a_real_sink(server_factory, pg, schema):
    """With --max-sink-lag, appends flow while the sink keeps up, are refused (503) while it
    is stopped, and flow again once a restarted sink caught up."""
    server = server_factory(args=["--sync", "none", "--max-sink-lag", "200",
                                  "--sink-wait-ms", "200"])
    p = sink(server, pg, schema, wait=False, name="bp")
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not server.get("/v1/sinks").json["sinks"]:
            time.sleep(0.05)
        for i in range(30):  # 1,500 events, far past the limit, while the sink keeps up
            for attempt in range(50):  # a slow moment of the machine: retry as told
                r = server.append("s", [{"type": "t"}] * 50)
                if r.status != 503:
                    break
                time.sleep(0.1)
            assert r.status == 200, r
    finally:
        p.send_signal(signal.SIGSTOP)  # a sink that stops copying (and reporting)
    try:
        refused = 0
        for i in range(10):
            r = server.append("s", [{"type": "t"}] * 50)
            refused += r.status == 503
        assert refused > 0
        assert 'reel_sink_backpressure_total{outcome="refused"}' in server.get("/metrics").body.decode()
    finally:
        p.send_signal(signal.SIGCONT)
    deadline = time.time() + 20
    while time.time() < deadline:
        if server.append("s", {"type": "t"}).status == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("appends did not flow again once the sink went on")
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    p = sink(server, pg, schema, "--once", name="bp")  # what came after its last page
    assert p.returncode == 0, p.stderr
    check_rows_match(server, pg, schema)


def test_sink_reads_a_data_directory(server, pg, schema):
    """--data DIR: the same rows as through the server, following new commits of the server
    process on that directory."""
    server.request("PUT", "/v1/sessions/d", body={"agent": "claude"})
    for i in range(5):
        server.append("d", [{"type": "t", "data": {"i": i}}] * 3)
    cmd = [REEL_BIN, "sink", "postgres", "--data", server.data, "--dsn", pg.dsn, "--schema",
           schema]
    p = subprocess.run(cmd + ["--once"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    check_rows_match(server, pg, schema)
    follow = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        server.append("d", [{"type": "late"}] * 4)
        server.request("DELETE", "/v1/sessions/d")
        server.append("e", {"type": "t"})
        deadline = time.time() + 20
        while time.time() < deadline:
            if [r["id"] for r in pg.query("SELECT id FROM %s.sessions WHERE id = 'e'" % schema)]:
                break
            time.sleep(0.1)
    finally:
        follow.send_signal(signal.SIGTERM)
        assert follow.wait(20) == 0, follow.stderr.read()
    check_rows_match(server, pg, schema)


@pytest.mark.parametrize("source", ["server", "data"])
def test_redaction_after_the_fact_reaches_copied_rows(server, pg, schema, source):
    """A redaction rewrites bodies the sink had copied already: at the reel.redacted event
    the sink reads them again and updates their rows (no old secret stays in PostgreSQL)."""
    for i in range(4):
        server.append("r", {"type": "t", "data": {"note": "ticket TKT-%06d here" % i}})

    def run_once():
        if source == "server":
            p = sink(server, pg, schema, "--once")
        else:
            p = subprocess.run([REEL_BIN, "sink", "postgres", "--data", server.data, "--dsn",
                                pg.dsn, "--schema", schema, "--once"],
                               capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr

    run_once()
    r = server.request("POST", "/v1/sessions/r/redact",
                       body={"from": 1, "to": 3,
                             "patterns": [{"kind": "ticket", "regex": "TKT-[0-9]{6}"}]})
    assert r.status == 200, r
    run_once()
    rows = pg.query("SELECT sequence, payload_json FROM %s.events WHERE session_id = 'r' "
                    "ORDER BY sequence" % schema)
    notes = [row["payload_json"].get("note") for row in rows[:4]]
    assert notes == ["ticket [REDACTED:ticket] here"] * 3 + ["ticket TKT-000003 here"], notes
    assert rows[4]["payload_json"]["sequences"] == [1, 2, 3]
    check_rows_match(server, pg, schema)


def test_a_sink_refuses_another_cells_server(server_factory, pg, schema, tmp_path):
    """A cell says which it is (Reel-Cell): a sink for cell c2 pointed at c1 stops before
    writing c1's data under c2's id; pointed at c1 it copies with cell 'c1'."""
    port = free_port()
    mp = tmp_path / "map.json"
    mp.write_bytes(subprocess.run([REEL_BIN, "cluster", "init", "c1=127.0.0.1:%d" % port,
                                   "c2=127.0.0.1:1"], check=True, capture_output=True).stdout)
    server = server_factory(args=["--sync", "none", "--cluster-map", str(mp), "--cell", "c1"],
                            start=False)
    server.start()
    server.append("any", {"type": "t"})  # (a 421 when c2 owns it: the feed is c1's data)
    wrong = sink(server, pg, schema, "--once", cell="c2")
    assert wrong.returncode == 1 and b"is cell 'c1'" in wrong.stderr, wrong.stderr
    assert pg.query("SELECT count(*) AS n FROM %s.events" % schema)[0]["n"] == 0
    right = sink(server, pg, schema, "--once", cell="c1")
    assert right.returncode == 0, right.stderr
    assert {r["cell"] for r in pg.query("SELECT cell FROM %s.sink" % schema)} == {"c2", "c1"}
