"""`reel serve --ack replica` (docs/CLUSTER.md "Acknowledged by a replica") against a real
PostgreSQL 15 primary with a synchronous standby (tests/pglib.py's PgPair), and a lone
PostgreSQL without one.

What is checked: every acknowledged write is on the standby at the moment of its ack; no
reader (pages, long-poll, SSE of a session and of the feed, the feed, restore, transcript,
export, Durable Streams) sees an event before the standby holds it; a stopped sink (SIGSTOP)
makes writes answer 503 replica_behind and keeps their events from readers, SIGCONT shows
them, and a retry with the same event ids is acknowledged without a second copy; a sink
whose PostgreSQL has no synchronous standby is not counted; a restarted server shows nothing
above what the sink reports again; `--ack local` does not wait; the feed past the
watermark (`unreplicated=1`) needs the full scope. REEL_ACK_SECONDS sets the
length of the load test (4 s; `make cluster-test` runs 30).
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import conftest
from conftest import REEL_BIN

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pglib import PgPair, Postgres, available, running  # noqa: E402

if available():
    pytest.skip(available(), allow_module_level=True)

WAIT_MS = 600  # --replica-wait-ms of these servers
LOAD_S = float(os.environ.get("REEL_ACK_SECONDS", "4"))  # make cluster-test: 30


@pytest.fixture(scope="module")
def pair():
    with running(PgPair) as p:
        yield p


@pytest.fixture(scope="module")
def lone():
    with running(Postgres) as p:
        yield p


_schemas = iter(range(1, 1000))


@pytest.fixture
def schema():
    return "ack%d_%d" % (os.getpid(), next(_schemas))


def replica_server(server_factory, *extra):
    return server_factory(args=["--sync", "none", "--ack", "replica", "--replica-wait-ms",
                                str(WAIT_MS)] + list(extra))


def applied(pair):
    """The pair's DSN with synchronous_commit=remote_apply for the sink: `on` (what the
    promise needs) waits until the standby flushed a commit, not until it replayed it, so a
    query on the standby right after an ack could miss a row that is safe on its disk;
    with remote_apply it is also visible there, and the tests can look."""
    return pair.dsn + " options='-c synchronous_commit=remote_apply'"


def start_sink(server, dsn, schema, log=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
    return subprocess.Popen([REEL_BIN, "sink", "postgres", "--server",
                             "http://127.0.0.1:%d" % server.port, "--dsn", dsn, "--schema",
                             schema], stdout=subprocess.DEVNULL,
                            stderr=log or subprocess.DEVNULL, env=env)


def stop_sink(p):
    p.send_signal(signal.SIGCONT)
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0


def sinks(server):
    r = server.get("/v1/sinks")
    assert r.status == 200, r
    return r.json


def wait_replicated(server, timeout=20):
    """Waits until the replica sink has reported as replicated."""
    end = time.time() + timeout
    while time.time() < end:
        j = sinks(server)
        if any(k["replicated"] for k in j["sinks"]):
            return j
        time.sleep(0.05)
    raise AssertionError("the sink never reported as replicated: %s" % sinks(server))


def standby_positions(pair, schema):
    return [r["position"] for r in pair.standby.query(
        "SELECT position FROM %s.events ORDER BY position" % schema)]


def ev(eid, t="t"):
    return {"type": t, "event_id": eid, "data": {"id": eid, "text": "TXT-" + eid}}


def test_every_acknowledged_write_is_on_the_standby(server_factory, pair, schema):
    server = replica_server(server_factory, "--replica-wait-ms", "10000")
    sink = start_sink(server, applied(pair), schema)
    try:
        wait_replicated(server)
        # Each sink transaction now takes 0.2 s more: an answer that did not wait for it
        # would come well before the standby has the write, and the checks below fail.
        pair.primary.execute(
            "CREATE FUNCTION %s.slow() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$; "
            "CREATE TRIGGER slow BEFORE UPDATE ON %s.sink FOR EACH ROW "
            "EXECUTE FUNCTION %s.slow()" % (schema, schema, schema))
        for i in range(8):  # single events: on the standby when the ack comes
            r = server.append("one", ev("e%d" % i))
            assert r.status == 200, r
            pos = r.json["position"]
            assert pos in standby_positions(pair, schema), (i, pos)
        r = server.append("batch", [ev("b%d" % i) for i in range(100)])
        assert r.status == 200, r
        assert len([p for p in standby_positions(pair, schema) if p > pos]) == 100
        # record changes: a PUT and a DELETE are acknowledged once the standby has them
        r = server.request("PUT", "/v1/sessions/rec", body={"agent": "claude",
                                                             "metadata": {"k": 1}})
        assert r.status in (200, 201), r
        rows = pair.standby.query("SELECT agent, metadata_json FROM %s.sessions WHERE id = 'rec'"
                                  % schema)
        assert rows and rows[0]["agent"] == "claude", rows
        assert server.request("DELETE", "/v1/sessions/batch").status in (200, 204)
        rows = pair.standby.query("SELECT status FROM %s.sessions WHERE id = 'batch'" % schema)
        assert rows == [{"status": "deleted"}], rows
        # a redaction after the fact: its reel.redacted event is on the standby at the ack
        r = server.request("POST", "/v1/sessions/one/redact",
                           body={"from": 1, "to": 1, "paths": ["data.text"]})
        assert r.status == 200, r
        rows = pair.standby.query("SELECT type FROM %s.events WHERE session_id = 'one' AND "
                                  "sequence = %d" % (schema, r.json["record_sequence"]))
        assert rows == [{"type": "reel.redacted"}], rows
        # a Durable Streams append: its event is on the standby at the ack
        h = {"Content-Type": "text/plain"}
        assert server.request("PUT", "/v1/stream/ds1", body=b"a", headers=h).status == 201
        tail = sinks(server)["tail"]
        r = server.request("POST", "/v1/stream/ds1", body=b"b", headers=h)
        assert r.status == 204, r
        assert max(standby_positions(pair, schema)) >= tail + 1
        text = server.get("/metrics").body.decode()
        assert 'reel_ack_replica_total{outcome="acked"}' in text
        assert "reel_replica_watermark_position " in text
        assert "reel_ack_replica_wait_seconds_count" in text
    finally:
        stop_sink(sink)


class SSE(threading.Thread):
    """Collects the data lines of an SSE stream (ids of events) until closed."""

    def __init__(self, server, path):
        super().__init__(daemon=True)
        self.c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.c.request("GET", path)
        self.r = self.c.getresponse()
        assert self.r.status == 200
        self.seen = []
        self.start()

    def run(self):
        try:
            for line in self.r:
                if line.startswith(b"data:"):
                    try:
                        j = json.loads(line[5:])
                    except ValueError:
                        continue
                    if isinstance(j, dict) and "event_id" in j:
                        self.seen.append(j["event_id"])
        except Exception:  # closed by close(): the stream ends here
            pass

    def close(self):
        try:
            self.c.sock.shutdown(2)
        except (OSError, AttributeError):
            pass
        self.join(5)
        self.c.close()


def visible_ids(server, sid):
    return [e["event_id"] for e in server.events(sid)]


def all_reads(server, sid):
    """What every kind of read shows of session 'sid' (event ids, or the texts)."""
    out = {"page": visible_ids(server, sid),
           "feed": [e["event_id"] for e in server.feed() if e["session_id"] == sid],
           "record": server.get("/v1/sessions/%s" % sid).json["last_sequence"],
           "listed": [x["last_sequence"] for x in server.get("/v1/sessions").json["sessions"]
                      if x["id"] == sid]}
    for route in ("restore", "transcript", "export?compression=none"):
        r = server.get("/v1/sessions/%s/%s" % (sid, route))
        assert r.status == 200, (route, r)
        out[route.split("?")[0]] = r.body.decode()
    return out


def test_a_stopped_sink_holds_acks_and_readers_back(server_factory, pair, schema):
    server = replica_server(server_factory, "--ds-long-poll-ms", "20000")
    sink = start_sink(server, applied(pair), schema)
    sse_s = sse_f = None
    try:
        wait_replicated(server)
        assert server.append("s", ev("e1")).status == 200
        h = {"Content-Type": "text/plain"}
        assert server.request("PUT", "/v1/stream/st", body=b"one", headers=h).status == 201
        tail = server.request("GET", "/v1/stream/st").header("stream-next-offset")
        sse_s = SSE(server, "/v1/sessions/s/events/sse")
        sse_f = SSE(server, "/v1/events/sse")
        poll, ds_poll = {}, {}
        t = threading.Thread(target=lambda: poll.update(r=server.get(
            "/v1/sessions/s/events?offset=1&wait=20", timeout=30)), daemon=True)
        t.start()
        t_ds = threading.Thread(target=lambda: ds_poll.update(r=server.get(
            "/v1/stream/st?offset=%s&live=long-poll" % tail, timeout=30)), daemon=True)
        t_ds.start()
        time.sleep(0.3)
        sink.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        t0 = time.time()
        r = server.append("s", ev("e2"))
        assert r.status == 503 and r.json["type"].endswith("replica_behind"), r
        assert r.header("retry-after") == "1"
        assert time.time() - t0 >= WAIT_MS / 1000 - 0.05
        r = server.request("PUT", "/v1/stream/st2", body=b"x", headers=h)
        assert r.status == 503, r  # a create
        r = server.request("PUT", "/v1/stream/st2", body=b"x", headers=h)
        assert r.status == 503, r  # its retry: the stream exists, but not on the replica
        hp = dict(h, **{"Producer-Id": "p1", "Producer-Epoch": "0", "Producer-Seq": "0"})
        r = server.request("POST", "/v1/stream/st", body=b"two", headers=hp)
        assert r.status == 503, r
        r = server.request("POST", "/v1/stream/st", body=b"two", headers=hp)  # its retry
        assert r.status == 503, r  # a duplicate, but its first copy is not on the replica
        # durable here, seen by no reader, not in PostgreSQL
        assert sinks(server)["tail"] >= 3
        reads = all_reads(server, "s")
        assert reads["page"] == ["e1"] and reads["feed"] == ["e1"] and reads["record"] == 1
        assert reads["listed"] == [1], reads["listed"]
        for route in ("restore", "transcript", "export"):
            assert "TXT-e2" not in reads[route], route
        assert "TXT-e1" in reads["export"] and "TXT-e1" in reads["restore"]
        assert server.request("GET", "/v1/stream/st").body == b"one"
        assert "r" not in poll and "r" not in ds_poll  # the long-polls still wait
        assert "e2" not in sse_s.seen and "e2" not in sse_f.seen
        assert len(standby_positions(pair, schema)) == 2  # e1 and the stream's first
        r = server.append("s", ev("e2"))  # a retry while stopped: still not acknowledged
        assert r.status == 503, r
        sink.send_signal(signal.SIGCONT)
        t.join(20)
        assert poll["r"].status == 200 and [e["event_id"] for e in poll["r"].json["events"]] \
            == ["e2"], poll
        r = server.append("s", ev("e2"))  # the retry: acknowledged, nothing appended twice
        assert r.status == 200 and r.json["duplicates"] == 1, r
        assert visible_ids(server, "s") == ["e1", "e2"]
        r = server.request("POST", "/v1/stream/st", body=b"two", headers=hp)
        assert r.status == 204 and r.header("producer-seq") == "0", r  # acknowledged now
        assert server.request("PUT", "/v1/stream/st2", body=b"x", headers=h).status == 200
        assert server.request("GET", "/v1/stream/st").body == b"onetwo"
        t_ds.join(20)
        assert ds_poll["r"].status == 200 and ds_poll["r"].body == b"two", ds_poll
        end = time.time() + 10
        while time.time() < end and ("e2" not in sse_s.seen or "e2" not in sse_f.seen):
            time.sleep(0.05)
        assert sse_s.seen == ["e1", "e2"] and sse_f.seen.count("e2") == 1, \
            (sse_s.seen, sse_f.seen)
        rows = pair.standby.query("SELECT id FROM %s.events WHERE session_id = 's' "
                                  "ORDER BY sequence" % schema)
        assert [x["id"] for x in rows] == ["e1", "e2"]
        assert 'reel_ack_replica_total{outcome="refused"} 6' in server.get("/metrics").body.decode()
    finally:
        for x in (sse_s, sse_f):
            if x:
                x.close()
        stop_sink(sink)


def test_readers_never_see_what_the_standby_lacks(server_factory, pair, schema):
    """Under load, every event a reader gets (SSE feed, long-polled pages) is already on the
    standby when the reader looks it up right after."""
    server = replica_server(server_factory)
    sink = start_sink(server, applied(pair), schema)
    sse = None
    try:
        wait_replicated(server)
        sse = SSE(server, "/v1/events/sse")
        stop = threading.Event()
        acked = []

        def writer(w):
            i = 0
            while not stop.is_set():
                r = server.append("w%d" % w, ev("w%d-%d" % (w, i)))
                if r.status == 200:
                    acked.append(r.json["position"])
                i += 1

        ws = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
        for w in ws:
            w.start()
        checks, after, end = 0, 0, time.time() + LOAD_S
        while time.time() < end:
            r = server.get("/v1/events?after=%d&limit=1000&wait=2" % after)
            evs = r.json["events"]
            if not evs:
                continue
            after = r.json["next_after"]
            on_standby = set(standby_positions(pair, schema))
            missing = [e["position"] for e in evs if e["position"] not in on_standby]
            assert not missing, missing
            checks += len(evs)
        stop.set()
        for w in ws:
            w.join(10)
        assert checks > 20 and len(acked) > 20
        on_standby = set(standby_positions(pair, schema))
        assert not [p for p in acked if p not in on_standby]
        seen = len(sse.seen)
        assert seen > 0
    finally:
        if sse:
            sse.close()
        stop_sink(sink)


def test_a_sink_without_a_synchronous_standby_is_not_counted(server_factory, lone, schema):
    server = replica_server(server_factory)
    log = open(os.path.join(os.path.dirname(server.data), "sink.log"), "wb")
    sink = start_sink(server, lone.dsn, schema, log=log)
    try:
        end = time.time() + 20
        while time.time() < end and not sinks(server)["sinks"]:
            time.sleep(0.05)
        k = sinks(server)["sinks"][0]
        assert k["replicated"] is False and "synchronous_standby_names" in k["why"], k
        r = server.append("s", ev("e1"))
        assert r.status == 503 and r.json["type"].endswith("replica_behind"), r
        # the sink copied it all the same; the watermark did not move, readers see nothing
        end = time.time() + 10
        while time.time() < end and not lone.query("SELECT id FROM %s.events" % schema):
            time.sleep(0.05)
        assert sinks(server)["watermark"]["position"] == 0
        assert visible_ids(server, "s") == [] and server.feed() == []
    finally:
        stop_sink(sink)
        log.close()
    assert b"serve --ack replica does not count" in open(log.name, "rb").read()


def test_restart_shows_nothing_above_the_reported_watermark(server_factory, pair, schema,
                                                             monkeypatch):
    server = replica_server(server_factory)
    sink = start_sink(server, applied(pair), schema)
    try:
        wait_replicated(server)
        for i in range(5):
            assert server.append("s", ev("e%d" % i)).status == 200
        port = server.port
        server.stop()
        monkeypatch.setattr(conftest, "free_port", lambda: port)  # the sink's address
        server.start()
        page = visible_ids(server, "s")
        if not sinks(server)["sinks"]:  # nothing reported yet: nothing may show
            assert page == []
        end = time.time() + 10
        while time.time() < end and visible_ids(server, "s") != ["e%d" % i for i in range(5)]:
            time.sleep(0.05)
        assert visible_ids(server, "s") == ["e%d" % i for i in range(5)]
        r = server.append("s", ev("e5"))
        assert r.status == 200 and r.json["position"] in standby_positions(pair, schema)
    finally:
        stop_sink(sink)


def test_ack_local_does_not_wait(server_factory):
    server = server_factory(args=["--sync", "none"])
    assert sinks(server)["ack"] == "local"
    t0 = time.time()
    assert server.append("s", ev("e1")).status == 200
    assert time.time() - t0 < 2
    assert visible_ids(server, "s") == ["e1"]
    assert "reel_replica_watermark_position" not in server.get("/metrics").body.decode()


def test_bad_options_and_reports(server_factory, tmp_path):
    for args, word in ((["--ack", "remote"], "remote"), (["--replica-sink", "a b"], "a b")):
        r = subprocess.run([REEL_BIN, "serve", "--data", str(tmp_path / "d")] + args,
                           capture_output=True, timeout=20)
        assert r.returncode == 2 and word.encode() in r.stderr, r
    server = replica_server(server_factory)
    for body in ({"position": 1, "replicated": "yes"}, {"position": 1, "index": -1},
                 {"position": 1, "why": 3}):
        r = server.request("POST", "/v1/sinks/postgres-0", body=body)
        assert r.status == 400, (body, r)
    assert sinks(server)["sinks"] == []
    # a report of another sink's name does not move the watermark
    assert server.request("POST", "/v1/sinks/other", body={"position": 5, "replicated": True}
                          ).status == 200
    assert sinks(server)["watermark"]["position"] == 0
    # the replica sink reporting a position this cell never had: not counted, and said so
    assert server.append("s", ev("e1")).status == 503  # nothing reported: it waits
    r = server.request("POST", "/v1/sinks/postgres-0", body={"position": 50, "replicated": True})
    assert r.status == 200 and r.json["replicated"] is False and "another store" in r.json["why"]
    assert sinks(server)["watermark"]["position"] == 0 and visible_ids(server, "s") == []
    r = server.request("POST", "/v1/sinks/postgres-0", body={"position": 1, "replicated": True})
    assert r.json["replicated"] is True and visible_ids(server, "s") == ["e1"]


def test_unreplicated_feed_needs_the_full_scope(server_factory, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("readtoken read\nfulltoken full\n")
    server = replica_server(server_factory, "--tokens-file", str(tokens))
    h = {"Authorization": "Bearer readtoken"}
    r = server.request("GET", "/v1/events?changes=1&unreplicated=1", headers=h, auth=False)
    assert r.status == 403 and "unreplicated" in r.json["detail"], r
    h = {"Authorization": "Bearer fulltoken"}
    assert server.request("POST", "/v1/sessions/s/events", body=ev("e1"), headers=h,
                          auth=False).status == 503
    r = server.request("GET", "/v1/events?changes=1&unreplicated=1", headers=h, auth=False)
    assert r.status == 200 and [e["event_id"] for e in r.json["events"]] == ["e1"], r
    r = server.request("GET", "/v1/events?changes=1", headers=h, auth=False)
    assert r.status == 200 and r.json["events"] == [], r
