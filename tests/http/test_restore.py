"""`reel cluster restore` (docs/CLUSTER.md "Restore", issue 18 item 4): a cell's data
directory rebuilt from the tables of `reel sink postgres`, against a real PostgreSQL 15
(tests/pglib.py) started by the module on 127.0.0.1.

1. A cell filled with varied sessions (deleted, trimmed, purged, metadata changed twice,
   redacted after the fact, a Durable Stream, big bodies, NUL and lone surrogates, usage),
   sunk, restored into a new directory: everything served (the feed with changes and
   bodies, pages, records, the stream) equals the original's, `reel verify` passes, and the
   sink resumes on the restored cell without writing anything twice.
2. The machine-loss run: under load from a generator that journals every ack, kill -9 the
   cell, delete its data directory, restore it, restart it and its sink. With
   `--ack=local` the acked events lost are reported and bounded by the sink's lag at the
   kill; there are no duplicates and no gaps. The ack mode is a parameter: the `replica`
   case (0 lost, no reader saw a lost event) runs once `reel serve --ack replica` exists.
   REEL_RESTORE_SECONDS sets the load's length (4 s by default; `make cluster-test`: 30).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REEL_BIN

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pglib import PgPair, Postgres, available, running  # noqa: E402

if available():
    pytest.skip(available(), allow_module_level=True)

LOAD_SECONDS = float(os.environ.get("REEL_RESTORE_SECONDS", "4"))


@pytest.fixture(scope="module")
def pg():
    with running(Postgres) as p:
        yield p


@pytest.fixture(scope="module")
def pair():
    """A primary with a synchronous standby: what --ack replica needs (started only by the
    tests that ask for it)."""
    with running(PgPair) as p:
        yield p


_schemas = iter(range(1, 1000))


@pytest.fixture
def schema():
    return "r%d_%d" % (os.getpid(), next(_schemas))


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}


def sink_once(server, pg, schema, cell="c1"):
    p = subprocess.run([REEL_BIN, "sink", "postgres", "--server",
                        "http://127.0.0.1:%d" % server.port, "--dsn", pg.dsn, "--schema", schema,
                        "--cell", cell, "--once"], capture_output=True, timeout=120,
                       env=clean_env())
    assert p.returncode == 0, p.stderr
    return p


def sink_follow(server, pg, schema, log, cell="c1"):
    return subprocess.Popen([REEL_BIN, "sink", "postgres", "--server",
                             "http://127.0.0.1:%d" % server.port, "--dsn", pg.dsn, "--schema",
                             schema, "--cell", cell], stdout=log, stderr=log, env=clean_env())


def restore(pg, schema, data, cell="c1", check=True):
    p = subprocess.run([REEL_BIN, "cluster", "restore", "--cell", cell, "--dsn", pg.dsn,
                        "--schema", schema, "--data", data], capture_output=True, timeout=300,
                       env=clean_env())
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def verify(data):
    p = subprocess.run([REEL_BIN, "verify", "--data", data], capture_output=True, timeout=120,
                       env=clean_env())
    assert p.returncode == 0, (p.stdout, p.stderr)


def feed_with_changes(server):
    out, after = [], "0"
    while True:
        r = server.get("/v1/events?changes=1&bodies=1&include_raw=1&limit=10000&after=%s" % after)
        assert r.status == 200, r
        out += r.json["events"]
        if not r.json["hasMore"]:
            return out
        after = r.json["next_after"]


def session_ids(server):
    """Every session the feed with changes names (deleted and purged ones too)."""
    return sorted({i["session_id"] for i in feed_with_changes(server)})


def served(server, ids):
    """What the server serves: every record (404/410 included) and every page."""
    out = {"feed": feed_with_changes(server), "plain": server.feed()}
    for sid in ids:
        q = sid.replace("%", "%25").replace("/", "%2F").replace(":", "%3A")
        r = server.get("/v1/sessions/%s" % q)
        rec = r.json if r.status == 200 else None
        if rec:
            rec.pop("bytes", None)  # stored bytes: compression is decided again (docs)
        out["rec:" + sid] = (r.status, rec)
        r = server.get("/v1/sessions/%s/events?offset=0&limit=10000&include_raw=true" % q)
        out["ev:" + sid] = (r.status, r.body if r.status == 200 else None)
    r = server.get("/v1/stream/s1")
    out["stream"] = (r.status, r.body)
    r = server.get("/v1/sessions?limit=1000&order=id")
    assert r.status == 200, r
    out["list"] = [dict(x, bytes=None) for x in r.json["sessions"]]
    return out


BIG = "x" * 300000 + "".join(random.Random(7).choice("abcdef") for _ in range(50000))


def fill(s, before_redaction=lambda: None):
    """Varied sessions, in interleaved order ('before_redaction' runs a sink once, so that
    the redaction rewrites rows it had copied)."""
    assert s.request("PUT", "/v1/sessions/meta", body={
        "agent": "claude", "native_session_id": "n-1",
        "metadata": {"a": [1, 2.50, 12345678901234567890123], "nul": "x\u0000y",
                     "lone": "\ud800", "deep": {"k": {"k": None}}}}).status in (200, 201)
    for i in range(5):
        s.append("plain", [{"type": "session.started", "data": {"model": "m-%d" % i}},
                           {"type": "usage", "data": {"input_tokens": 10 + i,
                                                      "output_tokens": 3, "cost_usd": 0.125,
                                                      "turn_end": True}},
                           {"type": "message", "source": "agent", "raw": {"eventIndex": i},
                            "client_time": "2026-01-02T03:04:05.678Z", "data": {"i": i}}])
        s.append("meta", {"type": "message", "data": {"text": "m%d \u0000 \ud83d\ude00" % i}})
        s.append("del", {"type": "t", "data": {"i": i}})
        s.append("trim", [{"type": "t", "data": {"i": i}}, {"type": "t", "data": {"j": i}}])
        s.append("purged", {"type": "t"})
        s.append("red", {"type": "tool.result", "data": {"text": "TOKEN=hunter2-%d" % i}})
    s.append("plain", {"type": "session.ended"})
    s.append("big", {"type": "blob", "data": {"text": BIG}})
    r = s.append("odd", '{"type":"t","data":{"lone":"\\udc00 and \\ud800","nul":"\\u0000",'
                 '"num":1e400,"neg":-0.0,"x":0.10}}', headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert s.request("PUT", "/v1/sessions/meta", body={"metadata": {"v": 2}}).status == 200
    assert s.request("DELETE", "/v1/sessions/del").status in (200, 204)
    assert s.request("DELETE", "/v1/sessions/purged?purge=true").status in (200, 204)
    assert s.request("PUT", "/v1/sessions/trim",
                     body={"retention": {"max_events": 3}}).status == 200
    before_redaction()
    r = s.request("POST", "/v1/sessions/red/redact", body={"from": 1, "to": 3,
                                                          "paths": ["data.text"]})
    assert r.status == 200, r
    s.append("red", {"type": "message", "data": {"after": "the redaction"}})
    assert s.request("PUT", "/v1/stream/s1", headers={"Content-Type": "application/json"}
                     ).status in (200, 201)
    for i in range(3):
        assert s.request("POST", "/v1/stream/s1", body=[{"n": i}],
                         headers={"Producer-Id": "p", "Producer-Epoch": "0",
                                  "Producer-Seq": str(i)}).status in (200, 204)
    deadline = time.time() + 20  # the janitor trims within a second or two
    while time.time() < deadline and s.get("/v1/sessions/trim").json.get(
            "first_sequence", 1) < 8:
        time.sleep(0.2)
    assert s.get("/v1/sessions/trim").json["first_sequence"] == 8


def test_restore_serves_what_the_original_served(server_factory, pg, schema, tmp_path):
    orig = server_factory(args=["--sync", "none", "--retention-interval", "1"])
    fill(orig, lambda: sink_once(orig, pg, schema))
    sink_once(orig, pg, schema)
    ids = session_ids(orig)
    assert {"meta", "plain", "del", "trim", "purged", "red", "big", "odd", "ds:s1"} <= set(ids)
    # The feed carries what restore needs: the kept hash of the redacted bodies, and where
    # the trimmed session's chain starts.
    feed = feed_with_changes(orig)
    assert sum(1 for e in feed if e.get("kept_hash")) == 3
    assert any(c.get("first_hash") for c in feed if c.get("change") == "trim")
    assert pg.query("SELECT count(*) AS n FROM %s.events WHERE kept_hash IS NOT NULL"
                    % schema)[0]["n"] == 3
    before = served(orig, ids)

    data = str(tmp_path / "restored")
    p = restore(pg, schema, data)
    out = p.stdout.decode()
    assert "verify ok" in out and "3 redacted" in out and "1 deleted" in out, out
    verify(data)
    copy = server_factory(args=["--sync", "none", "--data", data], sub="copy")
    after = served(copy, ids)
    assert after.keys() == before.keys()
    for k in before:
        assert after[k] == before[k], k

    # Positions go on where they did, and the sink resumes without writing twice.
    a = orig.append("new", {"type": "t", "event_id": "e1"}).json
    b = copy.append("new", {"type": "t", "event_id": "e1"}).json
    assert a["position"] == b["position"], (a, b)
    n0 = pg.query("SELECT count(*) AS n FROM %s.events" % schema)[0]["n"]
    sink_once(copy, pg, schema)
    rows = pg.query("SELECT session_id, sequence, position FROM %s.events ORDER BY position"
                    % schema)
    assert len(rows) == n0 + 1 and rows[-1]["session_id"] == "new"
    assert rows[-1]["position"] == b["position"]


def test_restore_refuses_a_non_empty_directory_and_a_broken_chain(pg, schema, server_factory,
                                                                  tmp_path):
    s = server_factory(args=["--sync", "none"])
    for i in range(5):
        s.append("a", {"type": "t", "data": {"i": i}})
    sink_once(s, pg, schema)
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    p = restore(pg, schema, str(full), check=False)
    assert p.returncode == 1 and b"is not empty" in p.stderr, p.stderr
    assert (full / "x").exists()
    p = restore(pg, schema, str(tmp_path / "none"), cell="nope", check=False)
    assert p.returncode == 1 and b"no sink row for cell 'nope'" in p.stderr, p.stderr
    # A chain hash changed in PostgreSQL: refused, naming the session and sequence, and
    # nothing is left behind.
    pg.execute("UPDATE %s.events SET chain_hash = decode(repeat('00', 32), 'hex') "
               "WHERE session_id = 'a' AND sequence = 3" % schema)
    p = restore(pg, schema, str(tmp_path / "broken"), check=False)
    assert p.returncode == 1, p.stderr
    assert b"session 'a', sequence 3" in p.stderr and b"chain" in p.stderr, p.stderr
    assert not (tmp_path / "broken").exists() and not (tmp_path / "broken.partial").exists()


# ---- machine loss ----

class Generator:
    """Appends batches to a few sessions from two threads; journals every acknowledged
    event (session, event id, sequence, position) after its 200."""

    def __init__(self, port, sessions=8):
        self.port = port
        self.sessions = ["load-%d" % i for i in range(sessions)]
        self.acked = []
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.n = 0

    def run(self, seed):
        import http.client
        rnd = random.Random(seed)
        while not self.stop.is_set():
            sid = rnd.choice(self.sessions)
            with self.lock:
                self.n += 1
                base = "%d-%d" % (seed, self.n)
            batch = [{"type": "t", "event_id": "%s-%d" % (base, k), "data": {"k": k}}
                     for k in range(rnd.randint(1, 5))]
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("POST", "/v1/sessions/%s/events" % sid, body=json.dumps(batch),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                c.close()
            except OSError:
                self.errors += 1
                time.sleep(0.05)
                continue
            if r.status != 200:
                self.errors += 1
                continue
            j = json.loads(body)
            first, pos = j["first_sequence"], j["position"]
            last = j["last_sequence"]
            with self.lock:  # positions of one batch are consecutive (one session)
                for k, e in enumerate(batch):
                    self.acked.append((sid, e["event_id"], first + k, pos - (last - first) + k))

    def start(self):
        self.threads = [threading.Thread(target=self.run, args=(s,), daemon=True)
                        for s in (1, 2)]
        for t in self.threads:
            t.start()

    def halt(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


class Reader:
    """Reads the all-sessions feed while the load runs: every event a reader was served."""

    def __init__(self, port):
        self.port = port
        self.seen = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        import http.client
        after = 0
        while not self.stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/v1/events?after=%d&limit=1000" % after)
                r = c.getresponse()
                body = r.read()
                c.close()
            except OSError:
                time.sleep(0.05)
                continue
            if r.status != 200:
                time.sleep(0.05)
                continue
            j = json.loads(body)
            for e in j["events"]:
                self.seen.add((e["session_id"], e["event_id"]))
            after = j.get("next_after", after) or after
            if not j["events"]:
                time.sleep(0.01)

    def start(self):
        self.thread.start()

    def halt(self):
        self.stop.set()
        self.thread.join(10)


def ack_args(mode):
    """--ack replica counts the reports of the sink of cell c1 (the tests' sink)."""
    return [] if mode == "local" else ["--ack", mode, "--replica-sink", "postgres-c1"]


def wait_sink_at(s, pos, replicated, timeout=60):
    """Waits until the cell's sink reported a position >= 'pos' (replicated, with --ack
    replica: until then a restarted cell in that mode shows nothing)."""
    end = time.time() + timeout
    while time.time() < end:
        for k in s.get("/v1/sinks").json["sinks"]:
            if k["name"] == "postgres-c1" and k["position"] >= pos and (k["replicated"] or not replicated):
                return
        time.sleep(0.1)
    raise AssertionError("the sink never reached %d: %s" % (pos, s.get("/v1/sinks").json))


@pytest.mark.parametrize("ack", ["local", "replica"])
def test_machine_loss_restore(server_factory, request, schema, tmp_path, ack):
    pg = request.getfixturevalue("pg" if ack == "local" else "pair")
    if ack == "replica":
        pg = pg.primary
    s = server_factory(args=["--sync", "full"] + ack_args(ack))
    log = open(str(tmp_path / "sink.log"), "ab")
    sk = sink_follow(s, pg, schema, log)
    gen = Generator(s.port)
    reader = Reader(s.port)
    gen.start()
    reader.start()
    time.sleep(LOAD_SECONDS)
    s.proc.send_signal(signal.SIGKILL)  # the machine is lost: the cell first
    s.proc.wait(10)
    gen.halt()
    reader.halt()
    sk.send_signal(signal.SIGKILL)  # ... and its sink with it
    sk.wait(10)
    acked = list(gen.acked)
    assert acked, "the generator got no acknowledgement"
    last_acked = max(a[3] for a in acked)
    ckpt = pg.query("SELECT position FROM %s.sink WHERE cell = 'c1'" % schema)[0]["position"]
    lag = last_acked - ckpt

    shutil.rmtree(s.data)
    restore(pg, schema, s.data)
    verify(s.data)
    s.start()
    sk = sink_follow(s, pg, schema, log)
    try:
        wait_sink_at(s, ckpt, ack == "replica")
        got = {}
        for sid in gen.sessions:
            evs = s.events(sid) if s.get("/v1/sessions/%s" % sid).status == 200 else []
            seqs = [e["sequence"] for e in evs]
            assert seqs == list(range(1, len(seqs) + 1)), "gap in %s" % sid
            ids = [e["event_id"] for e in evs]
            assert len(ids) == len(set(ids)), "duplicate in %s" % sid
            for e in evs:
                got[(sid, e["event_id"])] = (e["sequence"], e["position"])
        lost = [a for a in acked if (a[0], a[1]) not in got]
        for sid, eid, seq, pos in acked:
            if (sid, eid) in got:
                assert got[(sid, eid)] == (seq, pos), (sid, eid)
        # What is lost is what the sink had not copied: after its checkpoint, at most the lag.
        early = [a for a in lost if a[3] <= ckpt]
        assert not early, ("lost events the sink had copied", ckpt, early[:5], pg.query(
            "SELECT session_id, id, sequence, position FROM %s.events WHERE position = %d"
            % (schema, early[0][3])))
        assert len(lost) <= max(lag, 0)
        # Events a reader was served that the restored cell does not have (acknowledged
        # or not: in replica mode reads stop at what PostgreSQL holds).
        seen_lost = [x for x in reader.seen if x not in got]
        if ack == "replica":
            assert not lost
            assert not seen_lost, "a reader was served an event the machine loss took back"
        # The cell goes on: new appends after the restore, copied once by the new sink.
        gen2 = Generator(s.port)
        gen2.sessions = gen.sessions
        gen2.start()
        time.sleep(1)
        gen2.halt()
        deadline = time.time() + 60
        tail = max(e["position"] for e in s.feed())
        while time.time() < deadline and pg.query(
                "SELECT position FROM %s.sink WHERE cell = 'c1'" % schema)[0]["position"] < tail:
            time.sleep(0.2)
        rows = pg.query("SELECT session_id, sequence FROM %s.events ORDER BY session_id, "
                        "sequence" % schema)
        pairs = [(r["session_id"], r["sequence"]) for r in rows]
        assert len(pairs) == len(set(pairs)), "a row written twice"
        by = {}
        for sid, seq in pairs:
            by.setdefault(sid, []).append(seq)
        for sid, seqs in by.items():
            assert seqs == list(range(1, len(seqs) + 1)), "gap in PostgreSQL for %s" % sid
        print("machine loss (--ack=%s): %d acked, %d lost, %d served to a reader and lost, "
              "sink lag at the kill %d positions, %d acked after the restore"
              % (ack, len(acked), len(lost), len(seen_lost), max(lag, 0), len(gen2.acked)))
    finally:
        sk.send_signal(signal.SIGTERM)
        sk.wait(10)
        log.close()


def test_kept_hashes_only_for_admin_tokens(server_factory, tmp_path):
    """The feed with bodies carries a redacted body's kept hash (what restore needs) to an
    admin token only: a reader could test guesses of a short secret against it."""
    f = tmp_path / "tokens"
    f.write_text("reader read\nadmin full\n")
    s = server_factory(args=["--tokens-file", str(f), "--sync", "none"], token="admin")
    s.append("r", [{"type": "t", "data": {"text": "TOKEN=hunter2"}}, {"type": "t"}])
    assert s.request("POST", "/v1/sessions/r/redact",
                     body={"from": 1, "to": 1, "paths": ["data.text"]}).status == 200
    path = "/v1/events?changes=1&bodies=1&after=0"
    admin = [e for e in s.get(path).json["events"] if "change" not in e]
    assert [bool(e.get("kept_hash")) for e in admin] == [True, False, False]
    s.token = "reader"
    reader = [e for e in s.get(path).json["events"] if "change" not in e]
    assert len(reader) == 3 and not any("kept_hash" in e for e in reader)
    assert [e["hash"] for e in reader] == [e["hash"] for e in admin]
