"""`reel cluster move` (docs/CLUSTER.md "Moving shards"; issue 18 item 4b): shards move
between real cells behind a real nginx, through a real PostgreSQL 15 primary with a
synchronous standby (tests/pglib.py), while a generator writes to them through nginx and
journals every acknowledgement.

Checked: acked events lost 0, duplicates 0, sequence gaps 0; every 2xx of a moved session
came from its old owner until the first one from its new owner, never back (one writer);
the old owner holds nothing of a moved session that the new owner does not; the feed of
every cell read with skip_copied=1 gives each event once. And the zombie owner: a cell
stopped (SIGSTOP) while its shards move, woken (SIGCONT), then written to directly --
nothing it accepts for the moved shards is acknowledged, nothing it wrote reaches
PostgreSQL or the new owner; under --ack local the same move is refused without --force.

REEL_CLUSTER_SESSIONS scales it: sessions = that / 10 (tests/run.sh --quick: 100).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from cluster import REEL_BIN, Client, Cluster, Map, Sinks

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pglib import PgPair, available, running  # noqa: E402

if available():
    pytest.skip(available(), allow_module_level=True)

N = max(40, int(os.environ.get("REEL_CLUSTER_SESSIONS", "10000")) // 10)
LOAD_S = 1.0 if N <= 200 else 3.0
SHARDS = 64
JSON = {"Content-Type": "application/json"}
WAIT_MS = 1000


@pytest.fixture(scope="module")
def pair():
    with running(PgPair) as p:
        yield p


_n = iter(range(1, 100))


class Cell(Cluster):
    """Cells under --ack replica with a sink each, nginx in front."""

    def __init__(self, tmp, pair):
        super().__init__(tmp, cells=3, spares=1, shards=SHARDS, sync="none",
                         extra=["--ack", "replica", "--replica-wait-ms", str(WAIT_MS)])
        self.pair = pair
        self.schema = "mv%d_%d" % (os.getpid(), next(_n))
        self.sinks = Sinks(self, pair.dsn, self.schema, start=False)

    def start(self):
        super().start()
        for c in self.ids:
            self.sinks.start(c)
        for c in self.ids:
            self.sinks.wait_replicated(c)
        return self

    def wait_replicated(self, c, timeout=30):
        self.sinks.wait_replicated(c, timeout)

    def sink_log(self, c):
        return self.sinks.log(c)

    def stop(self):
        self.sinks.stop()
        super().stop()

    def move(self, shards, to, *extra, timeout=180):
        nginx_dir = os.path.join(self.tmp, "nginx")
        cmd = [REEL_BIN, "cluster", "move", shards, "--to", to, "--map", self.map_path,
               "--dsn", self.pair.dsn, "--schema", self.schema,
               "--nginx-conf", os.path.join(nginx_dir, "reel.conf"),
               "--nginx-listen", "127.0.0.1:%d" % self.nginx_port,
               "--reload-command", "kill -HUP %d" % self.nginx.pid] + list(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def seg(sid):
    return urllib.parse.quote(sid, safe="~")


class Link:
    """A TCP forwarder: the address the map gives a cell, forwarding to where the cell
    listens. cut() is a network partition: the map's address refuses connections and the
    open ones close, while the cell itself runs on (its direct clients still reach it)."""

    def __init__(self, target_port):
        import socket
        self.target = target_port
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.cut_ = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        import socket
        while not self.cut_:
            try:
                a, _ = self.ls.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self.pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def pipe(x, y):
        try:
            while True:
                d = x.recv(65536)
                if not d:
                    break
                y.sendall(d)
        except OSError:
            pass
        for z in (x, y):
            try:
                z.close()
            except OSError:
                pass

    def cut(self):
        import socket
        self.cut_ = True
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        for z in self.conns:
            try:
                z.shutdown(socket.SHUT_RDWR)
                z.close()
            except OSError:
                pass


class Generator:
    """Threads appending one event at a time to their sessions through nginx; an event is
    sent again (same event id) until it is acknowledged. Journals every 2xx: (event id,
    sequence, the answering cell)."""

    def __init__(self, port, sessions, threads=4):
        self.port, self.sessions, self.threads = port, sessions, threads
        self.journal = {s: [] for s in sessions}
        self.statuses = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ts = [threading.Thread(target=self.run, args=(k,)) for k in range(threads)]

    def start(self):
        for t in self.ts:
            t.start()
        return self

    def run(self, k):
        cl = Client(self.port)
        mine = self.sessions[k::self.threads]
        nxt = {s: 0 for s in mine}
        i = 0
        while not self.stop.is_set():
            sid = mine[i % len(mine)]
            i += 1
            eid = "%s-e%d" % (sid, nxt[sid])
            body = json.dumps({"type": "note", "event_id": eid, "data": {"n": nxt[sid]}})
            try:
                st, h, b = cl.request("POST", "/v1/sessions/%s/events" % seg(sid), body, JSON)
            except OSError:
                st, h, b = 0, {}, b""
            with self.lock:
                self.statuses[st] = self.statuses.get(st, 0) + 1
            if st in (200, 201):
                seq = json.loads(b)["last_sequence"]
                self.journal[sid].append((eid, seq, h.get("reel-cell")))
                nxt[sid] += 1
            else:
                time.sleep(0.01)
        cl.close()

    def finish(self):
        self.stop.set()
        for t in self.ts:
            t.join(30)


class SSEWatch:
    """An SSE stream of one session, read until the server ends it ('ended': when)."""

    def __init__(self, port, sid):
        import http.client
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.c.request("GET", "/v1/sessions/%s/events/sse" % seg(sid))
        self.r = self.c.getresponse()
        assert self.r.status == 200, self.r.status
        self.ended = None
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        try:
            while self.r.read1(65536):
                pass
        except OSError:
            pass
        self.ended = time.time()
        self.c.close()


def read_session(port, sid):
    """Every event of a session at the cell on 'port'; [] when it has none (never written:
    a generator may not reach every session; its journal then has nothing to lose)."""
    cl, out, offset = Client(port), [], 0
    while True:
        st, _, body = cl.request("GET", "/v1/sessions/%s/events?offset=%d&limit=1000"
                                 % (seg(sid), offset))
        if st == 404 and offset == 0 and b"session_not_found" in body:
            cl.close()
            return []
        assert st == 200, (sid, st, body[:300])
        doc = json.loads(body)
        out += doc["events"]
        if not doc["hasMore"]:
            cl.close()
            return out
        offset = doc["next_offset"]


def read_feed(port, skip_copied):
    cl, out, after = Client(port), [], 0
    while True:
        st, _, body = cl.request("GET", "/v1/events?after=%d&limit=1000%s"
                                 % (after, "&skip_copied=1" if skip_copied else ""))
        assert st == 200, body[:300]
        doc = json.loads(body)
        out += doc["events"]
        if not doc["hasMore"]:
            cl.close()
            return out
        after = doc["next_after"]


def sse_feed_positions(port, n, timeout=20):
    """The positions of the first 'n' events of the feed's SSE with skip_copied=1."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", "/v1/events/sse?skip_copied=1&after=0")
    r = c.getresponse()
    assert r.status == 200, r.status
    out, end = [], time.time() + timeout
    while len(out) < n and time.time() < end:
        line = r.readline().decode()
        if line.startswith("data: "):
            out.append(json.loads(line[6:])["position"])
    c.close()
    return out


def moved_sessions(m, shards):
    return lambda sid: m.shard(urllib.parse.quote(sid, safe="~")) in shards


def test_move_under_load(tmp_path, pair):
    c = Cell(tmp_path, pair)
    try:
        c.start()
        m = c.map
        c1 = [s for s in range(SHARDS) if m.owner[s] == "c1"]
        shards = set(c1[:len(c1) // 2])
        spec = "%d-%d" % (min(shards), max(shards))
        is_moved = moved_sessions(m, shards)
        sessions = ["mv-%04d" % i for i in range(N)]
        moved = [s for s in sessions if is_moved(s)]
        assert moved, "no session in the moved shards"
        gen = Generator(c.nginx_port, sessions).start()
        time.sleep(LOAD_S)
        sse = SSEWatch(c.ports["c1"], moved[0])  # a reader at the old owner
        t0 = time.time()
        r = c.move(spec, "spare1", "--ack", "replica")
        took = time.time() - t0
        time.sleep(LOAD_S)
        gen.finish()
        assert r.returncode == 0, r.stderr
        sse.t.join(10)
        assert sse.ended is not None and sse.ended - t0 < took + 5, \
            "the old owner's SSE stream of a moved session did not end"
        print("\nmove of %d shards (%d of %d sessions) under load: %.2f s; %s; statuses %s"
              % (len(shards), len(moved), N, took, r.stdout.strip(), gen.statuses))
        after = Map(c.map_path)
        assert after.epoch == 3 and all(after.owner[s] == "spare1" for s in shards)
        assert all(after.owner[s] == m.owner[s] for s in range(SHARDS) if s not in shards)
        lost = dup = gaps = switched_back = 0
        for sid in sessions:
            owner = after.owner_of(sid)
            evs = read_session(c.ports[owner], sid)
            seqs = [e["sequence"] for e in evs]
            ids = [e["event_id"] for e in evs]
            gaps += seqs != list(range(1, len(seqs) + 1))
            dup += len(ids) - len(set(ids))
            have = dict(zip(ids, seqs))
            lost += sum(1 for eid, seq, _ in gen.journal[sid] if have.get(eid) != seq)
            cells = [cell for _, _, cell in gen.journal[sid]]
            if sid in moved:  # the old owner's acks, then the new owner's: one switch
                first_new = cells.index("spare1") if "spare1" in cells else len(cells)
                switched_back += any(x != "c1" for x in cells[:first_new]) + \
                    any(x != "spare1" for x in cells[first_new:])
            else:
                switched_back += any(x != owner for x in cells)
        acked = sum(len(j) for j in gen.journal.values())
        print("acked %d events: lost %d, duplicates %d, sessions with gaps %d, acks from a "
              "second writer %d" % (acked, lost, dup, gaps, switched_back))
        assert acked > 0 and lost == 0 and dup == 0 and gaps == 0 and switched_back == 0
        assert any(cell == "spare1" for s in moved for _, _, cell in gen.journal[s])
        # the old owner holds nothing of a moved session the new owner does not
        newer = {}
        for sid in moved:
            newer[sid] = {e["event_id"]: e["sequence"] for e in read_session(c.ports["spare1"], sid)}
        for c_ in ("c1", "spare1"):
            c.wait_replicated(c_)
        time.sleep(0.5)
        old = [e for e in read_feed(c.ports["c1"], False) if e["session_id"] in newer]
        assert all(newer[e["session_id"]].get(e["event_id"]) == e["sequence"] for e in old)
        # every cell's feed with skip_copied=1: each acknowledged event exactly once
        seen = {}
        for cell in c.ids:
            for e in read_feed(c.ports[cell], True):
                k = (e["session_id"], e["event_id"])
                seen[k] = seen.get(k, 0) + 1
        # the feed with changes passes over the same copies
        plain = [e["position"] for e in read_feed(c.ports["spare1"], True)]
        cl, items, after = Client(c.ports["spare1"]), [], "0"
        while True:
            st, _, body = cl.request("GET", "/v1/events?changes=1&skip_copied=1&limit=500&after="
                                     + after)
            assert st == 200, body[:300]
            doc = json.loads(body)
            items += [e["position"] for e in doc["events"] if "change" not in e]
            after = doc["next_after"]
            if not doc["hasMore"]:
                break
        assert items == plain, (len(items), len(plain))
        assert sse_feed_positions(c.ports["spare1"], len(plain)) == plain
        twice = sum(1 for v in seen.values() if v > 1)
        missing = sum(1 for sid in sessions for eid, _, _ in gen.journal[sid]
                      if (sid, eid) not in seen)
        assert twice == 0 and missing == 0, (twice, missing)
        # PostgreSQL: the new owner's rows hold every acknowledged event of the moved sessions
        rows = pair.primary.query("SELECT session_id, id FROM %s.events WHERE cell = 'spare1'"
                                  % c.schema)
        in_pg = {(x["session_id"], x["id"]) for x in rows}
        assert all((sid, eid) in in_pg for sid in moved for eid, _, _ in gen.journal[sid])
    finally:
        c.stop()


def test_loading_shards_answer_503_and_maps_are_checked(tmp_path, pair):
    c = Cell(tmp_path, pair)
    try:
        c.start()
        m = c.map
        shard = next(s for s in range(SHARDS) if m.owner[s] == "c2")
        sid = next("ld-%d" % i for i in range(10000)
                   if m.shard(urllib.parse.quote("ld-%d" % i, safe="~")) == shard)
        doc = json.load(open(c.map_path))
        doc["epoch"] = 2
        give(doc, shard, "spare1", loading=True)
        body = json.dumps(doc).encode()
        spare = Client(c.ports["spare1"])
        st, h, b = spare.request("PUT", "/v1/cluster/map?drain_ms=1000", body, JSON)
        assert st == 200, b
        assert json.loads(b)["epoch"] == 2 and json.loads(b)["drained"] is True
        st, h, b = spare.request("POST", "/v1/sessions/%s/events" % seg(sid),
                                 json.dumps({"type": "x"}), JSON)
        assert st == 503 and h.get("retry-after") == "1", (st, b)
        assert json.loads(b)["type"].endswith("shard_loading"), b
        # an older epoch is refused and changes nothing
        doc["epoch"] = 1
        st, _, b = spare.request("PUT", "/v1/cluster/map", json.dumps(doc), JSON)
        assert st == 409, b
        assert Map(c.map_path).epoch == 2
        # a load of a shard that is not loading here is refused, naming it
        other = next(s for s in range(SHARDS) if m.owner[s] == "c3")
        st, _, b = spare.request("POST", "/v1/cluster/load", json.dumps(
            {"dsn": c.pair.dsn, "schema": c.schema, "from": "c3", "shards": [other]}), JSON)
        assert st == 409 and ("shard %d" % other) in json.loads(b)["detail"], b
        # bad maps and bad shard lists from the command: exit 2 or 1, the message names it
        r = c.move("70-80", "spare1")
        assert r.returncode == 2 and "0..63" in r.stderr, r.stderr
        r = c.move("%d" % shard, "nope")
        assert r.returncode == 2 and "nope" in r.stderr, r.stderr
    finally:
        c.stop()


def give(doc, shard, to, loading=False):
    for cell in doc["cells"]:
        rs = []
        for a, b in cell["shards"]:
            rs += [[x, y] for x, y in ((a, shard - 1), (shard + 1, b)) if x <= y] \
                if a <= shard <= b else [[a, b]]
        cell["shards"] = rs
        if cell["id"] == to:
            cell["shards"].append([shard, shard])
            if loading:
                cell["loading"] = [[shard, shard]]


def test_zombie_owner_acknowledges_nothing(tmp_path, pair):
    c = Cell(tmp_path, pair)
    try:
        c.start()
        m = c.map
        c1 = [s for s in range(SHARDS) if m.owner[s] == "c1"]
        shards = set(c1[:4])
        spec = ",".join(str(s) for s in sorted(shards))
        is_moved = moved_sessions(m, shards)
        sessions = [s for s in ("zb-%04d" % i for i in range(4000)) if is_moved(s)][:20]
        nginx = Client(c.nginx_port)
        for sid in sessions:
            for k in range(3):
                st, _, b = nginx.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                    {"type": "note", "event_id": "a%d" % k}), JSON)
                assert st == 200, b
        # connections to the zombie, open before it stops: its clients
        zs = [Client(c.ports["c1"]) for _ in sessions]
        for z in zs:
            assert z.request("GET", "/v1/health")[0] == 200
        c.procs["c1"].send_signal(signal.SIGSTOP)
        try:
            # --ack local: refused without --force, nothing changed
            r = c.move(spec, "c2", "--ack", "local", "--cell-timeout-ms", "500")
            assert r.returncode == 1 and "does not answer" in r.stderr, r.stderr
            assert Map(c.map_path).epoch == 1
            r = c.move(spec, "c2", "--ack", "replica", "--cell-timeout-ms", "500",
                       "--drain-ms", "1000")
            assert r.returncode == 0, r.stderr
            assert "DOES NOT ANSWER" in r.stderr, r.stderr
            print("\nzombie move: %s" % r.stdout.strip())
            # its clients write to it, straight, while it is still stopped...
            for z, sid in zip(zs, sessions):
                z.conn.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                    {"type": "note", "event_id": "z-zombie"}), JSON)
        finally:
            c.procs["c1"].send_signal(signal.SIGCONT)  # ... and it wakes up
        statuses = {}
        for z in zs:
            resp = z.conn.getresponse()
            resp.read()
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            z.close()
        # and once more, after it woke (it may have taken the new map meanwhile)
        z = Client(c.ports["c1"])
        for sid in sessions:
            st, _, b = z.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                {"type": "note", "event_id": "z-zombie"}), JSON)
            statuses[st] = statuses.get(st, 0) + 1
        print("writes straight to the zombie: %s" % statuses)
        assert not any(200 <= st < 300 for st in statuses), statuses
        # the zombie did take some into its log (durable there): the fence held them back
        st, _, b = z.request("GET", "/v1/events?changes=1&unreplicated=1&after=0&limit=10000")
        in_log = sum(1 for e in json.loads(b)["events"] if e.get("event_id") == "z-zombie")
        print("events the zombie wrote into its log for moved sessions: %d" % in_log)
        # (how many it took before the map waiting in its socket: the order of a woken
        # server's work; test_sink_stops_at_a_shard_fence pins the fence itself)
        assert in_log == statuses.get(503, 0), (in_log, statuses)
        time.sleep(1.5)  # its sink had time to copy, were it allowed to
        rows = pair.primary.query("SELECT cell, session_id FROM %s.events WHERE id = 'z-zombie'"
                                  % c.schema)
        assert rows == [], rows
        for sid in sessions:  # the new owner: the acknowledged events, nothing else
            evs = read_session(c.ports["c2"], sid)
            assert [e["event_id"] for e in evs] == ["a0", "a1", "a2"], (sid, evs)
        # through nginx the moved sessions are the new owner's
        st, h, b = nginx.request("POST", "/v1/sessions/%s/events" % seg(sessions[0]), json.dumps(
            {"type": "note", "event_id": "a3"}), JSON)
        assert st == 200 and h.get("reel-cell") == "c2", (st, b)
        if in_log:
            assert "stopped at a shard fence" in c.sink_log("c1"), c.sink_log("c1")
    finally:
        c.stop()


def test_a_stopped_move_resumes(tmp_path, pair):
    """A move that stops after its hand-over (here: the old owner's sink is stopped, so it
    cannot catch up) leaves the shards loading (503) and says how to go on; --resume
    finishes it."""
    c = Cell(tmp_path, pair)
    try:
        c.start()
        m = c.map
        c1 = [s for s in range(SHARDS) if m.owner[s] == "c1"]
        shards = set(c1[:3])
        spec = ",".join(str(s) for s in sorted(shards))
        is_moved = moved_sessions(m, shards)
        sessions = [s for s in ("rs-%04d" % i for i in range(4000)) if is_moved(s)][:5]
        stay = next(s for s in ("st-%04d" % i for i in range(4000))
                    if m.owner_of(s) == "c1" and not is_moved(s))
        nginx = Client(c.nginx_port)
        for sid in sessions:
            st, _, b = nginx.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                {"type": "note", "event_id": "a0"}), JSON)
            assert st == 200, b
        c.sinks["c1"].send_signal(signal.SIGSTOP)
        try:  # c1's log grows past what its sink copied (503 replica_behind, durable there)
            st, _, _ = nginx.request("POST", "/v1/sessions/%s/events" % seg(stay), json.dumps(
                {"type": "note", "event_id": "s0"}), JSON)
            assert st == 503
            r = c.move(spec, "spare1", "--ack", "replica", "--timeout", "2")
            assert r.returncode == 1 and "--resume" in r.stderr, r.stderr
            assert Map(c.map_path).epoch == 2
            st, h, b = nginx.request("POST", "/v1/sessions/%s/events" % seg(sessions[0]),
                                     json.dumps({"type": "note", "event_id": "a1"}), JSON)
            assert st == 503 and b"shard_loading" in b, (st, b)
        finally:
            c.sinks["c1"].send_signal(signal.SIGCONT)
        r = c.move(spec, "spare1", "--ack", "replica", "--resume")
        assert r.returncode == 0, r.stderr
        assert Map(c.map_path).epoch == 3
        for sid in sessions:
            st, h, b = nginx.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                {"type": "note", "event_id": "a1"}), JSON)
            assert st == 200 and h.get("reel-cell") == "spare1", (st, b)
            assert [e["event_id"] for e in read_session(c.ports["spare1"], sid)] == ["a0", "a1"]
    finally:
        c.stop()


def test_sink_stops_at_a_shard_fence(tmp_path, pair):
    """The fence alone, without a move: a fence recorded in PostgreSQL (as a move's step 4
    does) stops the cell's sink before the next event of that shard; under --ack replica
    that event is durable at the cell, never acknowledged, never copied; lifting the fence
    lets the sink go on (the retry is then acknowledged, once)."""
    c = Cell(tmp_path, pair)
    try:
        c.start()
        m = c.map
        shard = next(s for s in range(SHARDS) if m.owner[s] == "c3")
        sid = next("fz-%d" % i for i in range(10000)
                   if m.shard(urllib.parse.quote("fz-%d" % i, safe="~")) == shard)
        other = next("fo-%d" % i for i in range(10000) if m.owner_of("fo-%d" % i) == "c3" and
                     m.shard(urllib.parse.quote("fo-%d" % i, safe="~")) != shard)
        c3 = Client(c.ports["c3"])
        st, _, b = c3.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
            {"type": "note", "event_id": "before"}), JSON)
        assert st == 200, b
        pos = pair.primary.query("SELECT position FROM %s.sink WHERE cell = 'c3'"
                                 % c.schema)[0]["position"]
        pair.primary.execute(
            "BEGIN; INSERT INTO %(s)s.shard_fence (cell, shard, shards, epoch, position, "
            "change_index, to_cell) VALUES ('c3', %(h)d, %(v)d, 7, %(p)d, 0, 'c2'); "
            "UPDATE %(s)s.sink SET fences = fences + 1 WHERE cell = 'c3'; COMMIT"
            % {"s": c.schema, "h": shard, "v": SHARDS, "p": pos})
        st, _, b = c3.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
            {"type": "note", "event_id": "after"}), JSON)
        assert st == 503 and b"replica_behind" in b, (st, b)
        # everything behind it waits too: the sink copies nothing past the fenced event
        st, _, b = c3.request("POST", "/v1/sessions/%s/events" % seg(other), json.dumps(
            {"type": "note", "event_id": "o1"}), JSON)
        assert st == 503, (st, b)
        time.sleep(1)
        rows = pair.primary.query("SELECT id FROM %s.events WHERE cell = 'c3' AND id IN "
                                  "('after', 'o1')" % c.schema)
        assert rows == [], rows
        log = c.sink_log("c3")
        assert "stopped at a shard fence" in log and ("shard %d" % shard) in log, log
        # lifted (the shard came back to c3): the sink goes on, the retries are acknowledged
        pair.primary.execute("BEGIN; DELETE FROM %(s)s.shard_fence WHERE cell = 'c3'; "
                             "UPDATE %(s)s.sink SET fences = fences + 1 WHERE cell = 'c3'; "
                             "COMMIT" % {"s": c.schema})
        for s_, e in ((sid, "after"), (other, "o1")):
            for _ in range(50):
                st, _, b = c3.request("POST", "/v1/sessions/%s/events" % seg(s_), json.dumps(
                    {"type": "note", "event_id": e}), JSON)
                if st == 200:
                    break
                time.sleep(0.1)
            assert st == 200 and json.loads(b)["duplicates"] == 1, (st, b)
        assert [e["event_id"] for e in read_session(c.ports["c3"], sid)] == ["before", "after"]
    finally:
        c.stop()


def test_partitioned_owner_acknowledges_nothing(tmp_path, pair):
    """The zombie without the race of a woken process: the old owner is cut off from the
    move and nginx (its map address stops answering) while its own clients still reach it.
    The move goes on (--ack replica); every write the old owner then takes for the moved
    shards is durable in its log, answered 503, never copied to PostgreSQL, never at the
    new owner; its sink says it stopped at the fence."""
    c = Cell(tmp_path, pair)
    link = Link(c.ports["c1"])
    doc = json.load(open(c.map_path))
    for cell in doc["cells"]:
        if cell["id"] == "c1":
            cell["address"] = "127.0.0.1:%d" % link.port
    with open(c.map_path, "w") as f:
        json.dump(doc, f)
    c.map = Map(c.map_path)
    try:
        c.start()
        m = c.map
        shards = set([s for s in range(SHARDS) if m.owner[s] == "c1"][:4])
        spec = ",".join(str(s) for s in sorted(shards))
        is_moved = moved_sessions(m, shards)
        sessions = [s for s in ("pz-%04d" % i for i in range(4000)) if is_moved(s)][:10]
        nginx = Client(c.nginx_port)
        for sid in sessions:
            st, _, b = nginx.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                {"type": "note", "event_id": "a0"}), JSON)
            assert st == 200, b
        link.cut()
        r = c.move(spec, "c2", "--ack", "replica", "--cell-timeout-ms", "500",
                   "--drain-ms", "1000")
        assert r.returncode == 0 and "DOES NOT ANSWER" in r.stderr, r.stderr
        direct = Client(c.ports["c1"])
        statuses = {}
        for sid in sessions:
            st, h, b = direct.request("POST", "/v1/sessions/%s/events" % seg(sid), json.dumps(
                {"type": "note", "event_id": "z-cut"}), JSON)
            statuses[st] = statuses.get(st, 0) + 1
        print("\nwrites straight to the cut-off owner after the move: %s" % statuses)
        assert statuses == {503: len(sessions)}, statuses
        st, _, b = direct.request("GET", "/v1/events?changes=1&unreplicated=1&after=0&limit=10000")
        assert sum(1 for e in json.loads(b)["events"] if e.get("event_id") == "z-cut") == \
            len(sessions)
        time.sleep(1.5)
        assert pair.primary.query("SELECT id FROM %s.events WHERE id = 'z-cut'" % c.schema) == []
        for sid in sessions:
            assert [e["event_id"] for e in read_session(c.ports["c2"], sid)] == ["a0"]
        assert "stopped at a shard fence" in c.sink_log("c1"), c.sink_log("c1")
    finally:
        c.stop()
