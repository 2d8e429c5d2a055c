"""Many idle SSE clients plus one slow reader (issue #7, load).

One server holds N idle SSE streams (10,000 with REEL_LOAD_FULL=1, 1,000 otherwise) spread
over quiet sessions, while a writer appends batches to a hot session as fast as it can and
one reader follows the hot session very slowly, stalling once for longer than the request
timeout. It holds that:
- every idle client gets its 200 and the server counts them (reel_sse_clients);
- the server stays responsive: no health probe fails and the p99 stays under a bound;
- memory stays bounded: RssAnon per idle client, and the growth while the slow reader lags;
- the slow reader sees every event of the hot session in order, each message exactly the
  acknowledged event at that sequence; when the server drops it (the stall), it resumes
  with Last-Event-ID and continues exactly after its last id: never a silent gap;
- the idle streams are still live afterwards: one event appended to each quiet session
  reaches every idle client;
- SIGTERM with all those streams open ends them and the server exits 0.
"""
import http.client
import json
import selectors
import threading
import time

from loadlib import (FULL, REEL_BIN, Prober, Server, SSEStream, is_asan_build, raise_nofile,
                     record, summarize_probes)

IDLE = 10000 if FULL else 1000
QUIET_SESSIONS = 100 if FULL else 50
WRITE_SECONDS = 40 if FULL else 8
WRITE_RATE = 5000 if FULL else 2000  # events/s: about 10-25x what the slow reader takes
TIMEOUT = 10 if FULL else 3  # --request-timeout: how long a stalled reader is kept
WAVE = 500  # idle clients connected before waiting for their answers
BATCH = 100  # events per hot append
PAD = "x" * 250  # about 450 bytes of SSE per event
# Bounds (2 shared cores): the p99 of health while all this runs, the heap per idle
# stream (docs/HTTP.md says about 22 KB), the heap growth while the slow reader lags.
P99_MS = 1000.0
PER_CLIENT_BYTES = 48 * 1024
LAG_GROWTH_KIB = 64 * 1024
ASAN = is_asan_build(REEL_BIN)  # its shadow memory and quarantine make RSS meaningless


class IdlePool:
    """N SSE streams on non-blocking sockets, drained by one selector thread. Each keeps
    its parser, so it knows the last id it received."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.streams = []
        self.pending = []
        self.lock = threading.Lock()
        self.eof = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def add(self, port, session, offset):
        st = SSEStream(port, session, offset=offset)
        st.sock.setblocking(False)
        st.closed = False
        with self.lock:
            self.streams.append(st)
            self.pending.append(st)
        return st

    def loop(self):
        while not self.stop.is_set():
            with self.lock:
                new, self.pending = self.pending, []
            for st in new:
                self.sel.register(st.sock, selectors.EVENT_READ, st)
            for key, _ in self.sel.select(0.05):
                self.drain(key.data)

    def drain(self, st):
        try:
            chunk = st.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            st.feed(chunk)
            return
        self.sel.unregister(st.sock)
        st.closed = True
        self.eof += 1

    def count(self, pred):
        return sum(1 for st in list(self.streams) if pred(st))

    def wait(self, pred, want, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and self.count(pred) < want:
            time.sleep(0.05)
        return self.count(pred)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for st in self.streams:
            st.close()


def open_idle(srv, pool, n):
    """Connects n idle clients in waves; each starts at offset 1 of a quiet session (which
    holds one event), so it is caught up at once and suspended. Returns the seconds."""
    t0 = time.time()
    for base in range(0, n, WAVE):
        for i in range(base, min(n, base + WAVE)):
            pool.add(srv.port, "quiet%d" % (i % QUIET_SESSIONS), 1)
        got = pool.wait(lambda st: st.status is not None, min(n, base + WAVE), 60)
        assert got == min(n, base + WAVE), "only %d of %d idle clients answered" % (got, n)
    return time.time() - t0


class Writer(threading.Thread):
    """Appends batches to 'hot' at WRITE_RATE events/s for 'seconds' on one keep-alive
    connection; keeps the acknowledged event_id of every sequence. The rate is capped so
    that the reader can catch up afterwards in a bounded time (unthrottled, --sync none
    takes about 80,000 events/s here)."""

    def __init__(self, srv, seconds):
        super().__init__(daemon=True)
        self.srv, self.seconds = srv, seconds
        self.acked = {}  # sequence -> event_id
        self.errors = []

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        t0, n = time.time(), 0
        while time.time() < t0 + self.seconds:
            time.sleep(max(0.0, t0 + n / WRITE_RATE - time.time()))
            ids = ["h%d" % (n + j) for j in range(BATCH)]
            n += BATCH
            body = "\n".join(json.dumps({"type": "hot", "event_id": i, "data": {"pad": PAD}})
                             for i in ids)
            c.request("POST", "/v1/sessions/hot/events", body=body,
                      headers={"Content-Type": "application/x-ndjson"})
            r = c.getresponse()
            ans = r.read()
            if r.status != 200:
                self.errors.append((r.status, ans[:200]))
                continue
            j = json.loads(ans)
            for k, i in enumerate(ids):
                self.acked[j["first_sequence"] + k] = i
        c.close()


class SlowReader(threading.Thread):
    """Follows 'hot' from the start through a 4 KiB receive window, reading 2 KiB every
    20 ms (about 100 KB/s, slower than the writer), and once stops reading for longer
    than the server's request timeout. After the writer finished it reads at full speed
    until it has the last acknowledged sequence. Every message is checked on arrival."""

    def __init__(self, srv, writer, stall_at, stall_for):
        super().__init__(daemon=True)
        self.srv, self.writer = srv, writer
        self.stall_at, self.stall_for = stall_at, stall_for
        self.last = 0
        self.reconnects = []  # (seconds since start, last id) of each dropped stream
        self.problems = []
        self.done = threading.Event()

    def check(self, ev_id, data):
        if ev_id != self.last + 1:
            self.problems.append("got id %s after %d" % (ev_id, self.last))
        e = json.loads(data)
        want = self.writer.acked.get(ev_id)
        if e["sequence"] != ev_id or (want is not None and e["event_id"] != want):
            self.problems.append("id %d carries sequence %s event %s, acked %s"
                                 % (ev_id, e["sequence"], e["event_id"], want))
        self.last = ev_id

    def caught_up(self):
        return not self.writer.is_alive() and self.last >= max(self.writer.acked, default=0)

    def run(self):
        t0, stalled = time.time(), False
        while not self.caught_up() and len(self.problems) < 20:
            st = SSEStream(self.srv.port, "hot", offset=None if self.last else 0,
                           last_event_id=self.last or None, rcvbuf=4096, timeout=1.0)
            while not self.caught_up():
                if not stalled and time.time() - t0 > self.stall_at:
                    stalled = True
                    time.sleep(self.stall_for)
                msgs, eof = st.read(2048 if self.writer.is_alive() else 1 << 20)
                for ev_id, data in msgs:
                    self.check(ev_id, data)
                if eof:
                    break
                if st.status not in (None, 200):
                    self.problems.append("resume answered %s" % st.status)
                    break
                if self.writer.is_alive():
                    time.sleep(0.02)
            st.close()
            if not self.caught_up():
                self.reconnects.append((round(time.time() - t0, 1), self.last))
        self.done.set()


def kib(srv):
    return srv.memory()["RssAnon"]


def test_idle_sse_clients_and_slow_reader(workdir):
    raise_nofile(IDLE + 1000)
    srv = Server(workdir, args=[
        "--sync", "none", "--request-timeout", str(TIMEOUT),
        "--max-sse-clients", str(IDLE + 100), "--max-connections", str(IDLE + 500),
        "--max-connections-per-ip", "0"]).start()
    pool = IdlePool()
    prober = None
    try:
        for q in range(QUIET_SESSIONS):
            assert srv.append("quiet%d" % q, [{"type": "quiet"}])[0] == 200
        assert srv.request("PUT", "/v1/sessions/hot", body={})[0] == 200  # empty, so the
        time.sleep(0.5)  # reader can subscribe before the first append
        mem0 = srv.memory()
        prober = Prober(srv.port, workdir + "/probe.txt", interval=0.05)
        open_s = open_idle(srv, pool, IDLE)
        time.sleep(1.0)
        mem1 = srv.memory()
        assert pool.count(lambda st: st.status == 200) == IDLE
        assert srv.metrics()["reel_sse_clients"] == IDLE

        writer = Writer(srv, WRITE_SECONDS)
        reader = SlowReader(srv, writer, stall_at=WRITE_SECONDS / 4, stall_for=TIMEOUT + 3)
        peak = [0]
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                peak[0] = max(peak[0], kib(srv))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        writer.start()
        reader.start()
        sampler.start()
        writer.join()
        reader.done.wait(120 if FULL else 60)
        sampling.set()
        sampler.join()
        mem2 = srv.memory()

        # the idle streams are still live: one event per quiet session reaches them all
        t0 = time.time()
        for q in range(QUIET_SESSIONS):
            assert srv.append("quiet%d" % q, [{"type": "wake"}])[0] == 200
        woke = pool.wait(lambda st: (st.last_id or 0) >= 2, IDLE, 60)
        fanout_s = time.time() - t0
        probes = summarize_probes(prober.stop())
        prober = None
        rc, stop_s = srv.stop()
        eof = pool.wait(lambda st: st.closed, IDLE, 20)

        res = record("sse_load", {
            "idle_clients": IDLE, "connect_s": round(open_s, 2),
            "rss_anon_kib": [mem0["RssAnon"], mem1["RssAnon"], peak[0], mem2["RssAnon"]],
            "vm_rss_kib": [mem0["VmRSS"], mem1["VmRSS"], mem2["VmRSS"]],
            "per_idle_client_bytes": int((mem1["RssAnon"] - mem0["RssAnon"]) * 1024 / IDLE),
            "hot_events": len(writer.acked), "write_s": WRITE_SECONDS,
            "slow_reader_last": reader.last, "slow_reader_reconnects": reader.reconnects,
            "idle_woken": woke, "fanout_s": round(fanout_s, 2), "health": probes,
            "stop_exit": rc, "stop_s": round(stop_s, 2), "idle_eof_at_stop": eof})
        assert not writer.errors, writer.errors[:3]
        assert reader.done.is_set(), "slow reader stuck at %d of %d" % (reader.last,
                                                                        len(writer.acked))
        assert not reader.problems, reader.problems[:5]
        assert reader.last == len(writer.acked) and len(writer.acked) > 0
        assert reader.reconnects, "the stall never made the server drop the reader"
        assert woke == IDLE
        assert probes["failed"] == 0 and probes["p99"] < P99_MS, probes
        if not ASAN:
            assert res["per_idle_client_bytes"] < PER_CLIENT_BYTES, res
            assert peak[0] - mem1["RssAnon"] < LAG_GROWTH_KIB, res
        assert rc == 0 and eof == IDLE, res
        assert not srv.sanitizer_report()
    finally:
        if "sampling" in locals():
            sampling.set()
        if prober:
            prober.stop()
        pool.close()
        srv.stop()
