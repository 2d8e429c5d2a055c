"""Failures under load (docs/CLUSTER.md "Failure matrix"; issue 18 "Must show"): three cells
behind real nginx, a real PostgreSQL 15 primary with a synchronous standby (tests/pglib.py
PgPair), a `reel sink postgres` following each cell, and a load generator that journals every
acknowledged append.

- kill -9 a cell REEL_CLUSTER_KILLS times (3 in `make test`, 50 in `make cluster-test`),
  restarting it each time: acked events lost 0, duplicates 0, sequence gaps 0, in the cells
  and in PostgreSQL;
- kill -9 the PostgreSQL primary and promote the standby: the sinks reconnect to the new
  primary and lose and duplicate nothing;
- a cell stopped with SIGSTOP (a partition, as far as loopback allows): its sessions' requests
  hang until the client's timeout, the other cells serve on, and after SIGCONT the retried
  appends are not written twice.

Every append carries its own event ids, so the generator retries a failed or timed-out append
with the same ids: the cell appends each id once (docs/HTTP.md, idempotency by event_id).
"""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from cluster import REEL_BIN, Cluster, Sinks as CellSinks

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pglib import PG_BIN, PgPair, Postgres, available, make_base  # noqa: E402  (tests/pglib.py)

KILLS = int(os.environ.get("REEL_CLUSTER_KILLS", "50"))
SCHEMA = "failures"

if available():
    pytest.skip(available(), allow_module_level=True)


def ack_modes():
    """--ack=local always; --ack=replica when this build has it (docs/CLUSTER.md
    "Acknowledged by a replica")."""
    out = subprocess.run([REEL_BIN, "serve", "--help"], capture_output=True, text=True).stdout
    return ["local"] + (["replica"] if "--ack local|replica" in out else [])


@pytest.fixture(scope="module", params=ack_modes())
def ack(request):
    return request.param


@pytest.fixture(scope="module")
def pair(ack):
    base = make_base()
    p = PgPair(base)
    p.extra = []  # standbys attached after a promotion
    yield p
    for s in p.extra:
        s.stop()
    p.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ack):
    extra = ["--ack", "replica"] if ack == "replica" else []
    c = Cluster(tmp_path_factory.mktemp("failures-" + ack), spares=0, extra=extra)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def attach_standby(pair):
    """A new synchronous standby for the promoted server (pair.standby), as an operator
    rebuilds the old primary after a failover; --ack=replica acknowledges nothing until a
    synchronous standby streams again."""
    new = pair.standby
    data = os.path.join(pair.base, "standby%d" % (len(pair.extra) + 2))
    new.run([os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(new.port),
             "-U", "reel", "-D", data, "-R", "-X", "stream", "--no-sync", "-c", "fast"])
    pair.extra.append(Postgres(pair.base, data=data, initdb=False, extra={"hot_standby": "on"}))
    new.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
    new.execute("SELECT pg_reload_conf()")
    end = time.time() + 30
    while time.time() < end:
        if any(r["sync_state"] == "sync" for r in new.query("SELECT sync_state FROM pg_stat_replication")):
            return
        time.sleep(0.1)
    raise AssertionError("the new standby never became synchronous")


class Sinks(CellSinks):
    """A `reel sink postgres` per cell, each following its cell's own address (pages of 500)."""

    def __init__(self, c, dsn):
        super().__init__(c, dsn, SCHEMA, extra=["--batch", "500"])


class Load:
    """Threads appending batches with their own event ids through nginx; an append that
    fails (502 while a cell is down, a timeout while it is stopped) is sent again, same
    ids, until acknowledged. Every ack goes to the journal (memory and a JSONL file)."""

    def __init__(self, port, sessions, journal, threads=3, timeout=5.0, give_up=None):
        self.port, self.sessions, self.timeout = port, sessions, timeout
        self.acked = {}          # sid -> [event ids acked]
        self.failures = 0        # answers other than 200 (retried)
        self.latency = []        # (sid, seconds) of acked appends
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.give_up = give_up   # sessions whose appends are not retried after stop
        self.journal = open(journal, "a")
        self.tag = "%x" % random.getrandbits(32)  # event ids unique to this load
        self.threads = [threading.Thread(target=self.run, args=(k, threads)) for k in range(threads)]
        for t in self.threads:
            t.start()

    def post(self, conn, sid, body):
        if conn[0] is None:
            conn[0] = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn[0].request("POST", "/v1/sessions/%s/events" % urllib.parse.quote(sid, safe="~"),
                            body, {"Content-Type": "application/json"})
            r = conn[0].getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            conn[0].close()
            conn[0] = None
            return None

    def run(self, k, step):
        conn, n = [None], 0
        while not self.stop_ev.is_set():
            sid = self.sessions[(k + n * step) % len(self.sessions)]
            ids = ["%s.%d.%d.%d" % (self.tag, k, n, j) for j in range(1 + n % 4)]
            body = json.dumps([{"type": "load", "event_id": i, "data": {"k": k, "n": n}}
                               for i in ids]).encode()
            t0, end = time.time(), None
            while True:
                st = self.post(conn, sid, body)
                if st == 200:
                    break
                with self.lock:
                    self.failures += 1
                if self.stop_ev.is_set():
                    end = end or time.time() + 20
                    if time.time() > end:
                        return  # never acked: may or may not be in the cell
                time.sleep(0.05)
            with self.lock:
                self.acked.setdefault(sid, []).extend(ids)
                self.latency.append((sid, time.time() - t0))
                self.journal.write(json.dumps({"session": sid, "ids": ids}) + "\n")
            n += 1

    def count(self):
        with self.lock:
            return len(self.latency)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=60)
        self.journal.close()
        return sum(len(v) for v in self.acked.values())


def read_cluster(cluster):
    """Every event of every cell, through `reel cluster events` (which reads each cell's own
    feed): (cell, session, sequence, event id) tuples and the final vector cursor."""
    p = subprocess.run([REEL_BIN, "cluster", "events", "--map", cluster.map_path],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    cursor = [ln.split("cursor ", 1)[1] for ln in p.stderr.splitlines() if ": cursor " in ln][-1]
    return [(e["cell"], e["session_id"], e["sequence"], e["event_id"]) for e in rows], \
        {c: int(p) for c, p in (x.split(":") for x in cursor.split(","))}


def settled(cluster, pg, timeout=60):
    """Every cell read through `reel cluster events` once each cell's sink has copied all of
    it: the cells' last positions equal the sinks' checkpoints. Under --ack=replica a cell
    serves only what its sink reported, and nothing after a restart until the next report
    (docs/CLUSTER.md "Acknowledged by a replica"), so both sides are read again until they
    agree."""
    end = time.time() + timeout
    while True:
        rows, last = read_cluster(cluster)
        ck = {r["cell"]: r["position"] for r in pg.query("SELECT cell, position FROM %s.sink" % SCHEMA)}
        if all(ck.get(c, 0) == p for c, p in last.items()):
            return rows, last
        if time.time() > end:
            raise AssertionError("sinks did not catch up: %s vs %s" % (ck, last))
        time.sleep(0.2)


def check(cluster, pg, load, rows):
    """Acked events lost, duplicates, sequence gaps: in the cells and in PostgreSQL."""
    by = {}
    for cell, sid, seq, eid in rows:
        assert cell == cluster.map.owner_of(sid), (cell, sid)
        by.setdefault(sid, []).append((seq, eid))
    lost = dup = gaps = 0
    for sid, acked in load.acked.items():
        evs = by.get(sid, [])
        ids = [e for _, e in evs]
        lost += len(set(acked) - set(ids))
        dup += len(ids) - len(set(ids))
        gaps += [s for s, _ in evs] != list(range(1, len(evs) + 1))
    pg_rows = [(r["cell"], r["session_id"], r["sequence"], r["id"]) for r in pg.query(
        "SELECT cell, session_id, sequence, id FROM %s.events ORDER BY cell, position" % SCHEMA)]
    pg_by = {}
    for cell, sid, seq, eid in pg_rows:
        pg_by.setdefault(sid, []).append((seq, eid))
    pg_lost = sum(len(set(a) - {e for _, e in pg_by.get(s, [])}) for s, a in load.acked.items())
    pg_dup = len(pg_rows) - len(set((c, s, q) for c, s, q, _ in pg_rows))
    pg_gaps = sum(sorted(q for q, _ in v) != list(range(1, len(v) + 1)) for v in pg_by.values())
    out = {"acked": sum(len(v) for v in load.acked.values()), "lost": lost, "duplicates": dup,
           "gaps": gaps, "pg_lost": pg_lost, "pg_duplicates": pg_dup, "pg_gaps": pg_gaps,
           "pg_rows": len(pg_rows), "cell_rows": len(rows)}
    print("\n%s" % json.dumps(out))
    assert (lost, dup, gaps, pg_lost, pg_dup, pg_gaps) == (0, 0, 0, 0, 0, 0), out
    assert sorted(pg_rows) == sorted(rows)  # PostgreSQL holds exactly the cells' events
    return out


SESSIONS = ["f-%02d" % i for i in range(24)]


def test_kill9_a_cell_under_load(cluster, pair, ack, tmp_path):
    sinks = Sinks(cluster, pair.dsn)
    load = Load(cluster.nginx_port, SESSIONS, str(tmp_path / "journal.jsonl"))
    rnd = random.Random(18)
    t0, down = time.time(), []
    try:
        for i in range(KILLS):
            c = cluster.ids[i % len(cluster.ids)]
            acked_before = load.count()
            end = time.time() + 15  # under load: something acknowledged since the last kill
            while load.count() == acked_before and time.time() < end:
                time.sleep(0.02)
            assert load.count() > acked_before, "no append acknowledged in 15 s"
            time.sleep(rnd.uniform(0.05, 0.4))
            cluster.procs[c].kill()  # SIGKILL
            cluster.procs[c].wait()
            t = time.time()
            cluster.start_cell(c)  # returns once it answers /v1/health
            down.append(time.time() - t)
        time.sleep(0.3)
    finally:
        acked = load.stop()
    took = time.time() - t0
    # the kills were felt (--ack=replica acknowledges slowly: few requests are in flight
    # when a kill comes, so 3 rounds may hit none)
    assert acked > KILLS and (load.failures > 0 or (ack == "replica" and KILLS < 10)), \
        (acked, load.failures)
    assert not sinks.alive(), sinks.alive()  # every sink outlived its cell's deaths
    rows, last = settled(cluster, pair.primary)
    out = check(cluster, pair.primary, load, rows)
    down.sort()
    print("--ack=%s: kill -9 a cell %d times in %.1f s: %d acked events, appends retried %d "
          "times; restart to answering: median %.0f ms, max %.0f ms" % (
              ack, KILLS, took, out["acked"], load.failures, 1000 * down[len(down) // 2],
              1000 * down[-1]))
    assert all(rc == 0 for rc in sinks.stop().values())


def test_postgres_primary_killed_and_standby_promoted(cluster, pair, ack, tmp_path):
    logs = {c: len(Sinks.log_of(cluster, c)) for c in cluster.ids}
    sinks = Sinks(cluster, pair.dsn)
    load = Load(cluster.nginx_port, SESSIONS, str(tmp_path / "journal.jsonl"))
    try:
        time.sleep(1.5)
        before = pair.primary.query("SELECT sum(position) AS p FROM %s.sink" % SCHEMA)[0]["p"]
        pair.kill_primary()  # kill -9: postmaster and backends
        time.sleep(1.0)
        pair.promote()
        promoted = time.time()
        at = {r["cell"]: r["position"] for r in pair.standby.query(
            "SELECT cell, position FROM %s.sink" % SCHEMA)}
        if ack == "replica":  # nothing is acknowledged again before a synchronous standby
            attach_standby(pair)
            attached = time.time() - promoted
        while time.time() < promoted + 20:  # until every sink committed on the new primary
            now = {r["cell"]: r["position"] for r in pair.standby.query(
                "SELECT cell, position FROM %s.sink" % SCHEMA)}
            if all(now[c] > at[c] for c in cluster.ids):
                break
            time.sleep(0.05)
        back = time.time() - promoted
        time.sleep(2.0)
    finally:
        load.stop()
    assert not sinks.alive(), sinks.alive()
    new = pair.standby
    rows, last = settled(cluster, new)
    assert new.query("SELECT sum(position) AS p FROM %s.sink" % SCHEMA)[0]["p"] > before
    for c in cluster.ids:  # each sink lost PostgreSQL, then took its cell again on the new one
        log = sinks.log(c)[logs[c]:]
        assert "lost the connection to PostgreSQL" in log and log.count("resuming after") >= 2, log
    out = check(cluster, new, load, rows)
    print("--ack=%s: primary killed, standby promoted%s: every sink wrote to the new primary "
          "%.2f s after the promotion; %d acked events, 0 lost" % (
              ack, ", a new synchronous standby attached in %.2f s" % attached
              if ack == "replica" else "", back, out["acked"]))
    assert all(rc == 0 for rc in sinks.stop().values())


def test_partition_of_a_cell_sigstop(cluster, pair, ack, tmp_path):
    """c2 stopped: nginx holds its requests (no answer, no fail-over) until the client gives
    up; c1 and c3 answer as before; a cluster reader's feed of c1 and c3 goes on."""
    mine = [s for s in SESSIONS if cluster.map.owner_of(s) != "c2"]
    theirs = [s for s in SESSIONS if cluster.map.owner_of(s) == "c2"]
    assert mine and theirs
    reader = subprocess.Popen([REEL_BIN, "cluster", "events", "--follow", "--map", cluster.map_path,
                               "--after", ",".join("%s:%d" % kv for kv in read_cluster(cluster)[1].items())],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, lock = [], threading.Lock()

    def drain():
        for line in reader.stdout:
            with lock:
                seen.append((time.time(), json.loads(line)))

    threading.Thread(target=drain, daemon=True).start()
    sinks = Sinks(cluster, pair.dsn)  # --ack=replica acknowledges nothing without them
    load = Load(cluster.nginx_port, SESSIONS, str(tmp_path / "journal.jsonl"), threads=4,
                timeout=1.0)
    time.sleep(1.0)
    stopped_at = time.time()
    cluster.procs["c2"].send_signal(signal.SIGSTOP)
    try:
        time.sleep(4.0)
        with load.lock:
            during = [(s, t) for s, t in load.latency[-200:] if s in mine]
        with lock:
            fed = [e for t, e in seen if t > stopped_at + 0.5]
    finally:
        cluster.procs["c2"].send_signal(signal.SIGCONT)
    time.sleep(2.0)
    acked = load.stop()
    assert not sinks.alive(), sinks.alive()
    sinks.stop()
    reader.send_signal(signal.SIGINT)
    reader.wait(timeout=20)
    rows, _ = read_cluster(cluster)
    # while c2 was stopped: the other cells' appends were acked, and their feeds read
    assert len(during) > 10, during
    assert fed and {e["cell"] for e in fed} <= {"c1", "c3"}, fed[:3]
    assert load.failures > 0  # c2's appends timed out at the client and were sent again
    # nothing written twice, nothing acked lost: the retried ids were appended once
    by = {}
    for cell, sid, seq, eid in rows:
        by.setdefault(sid, []).append(eid)
    for sid, ids in load.acked.items():
        assert set(ids) <= set(by[sid]) and len(by[sid]) == len(set(by[sid])), sid
    print("\n--ack=%s: SIGSTOP c2 for 4 s: %d acked, %d client timeouts retried, %d events of "
          "c1/c3 read meanwhile" % (ack, acked, load.failures, len(fed)))
