"""kill -9 at random moments under concurrent appends and live reads (README.md "Guarantees"): the
checker of issue #7 for the server.

After every round and at the end it holds that:
- every acknowledged event is there, at the sequence and position it was acknowledged with;
- every session's sequences are dense (no gap, no repeat);
- an event a reader saw (SSE on the all-sessions feed, page polls of each session) is never
  gone later: a reader never sees an event that the crash then takes back;
- positions never go backwards: the feed reader, reconnecting with Last-Event-ID across
  restarts, sees strictly growing positions, and positions grow with sequence;
- the hash chains verify (`reel verify` on the data directory);
- the server serves again within 1 s of each restart (spawn to the first 200 from health).

The same test run against a mutant build that acknowledges before it commits must fail:
see tests/mutants/ (`make mutants`)."""
import http.client
import json
import os
import random
import subprocess
import threading
import time

import pytest

from conftest import REEL_BIN

CLIENTS = 8
ROUNDS = int(os.environ.get("REEL_KILL_ROUNDS", "50"))  # `make torture` asks for 1000
READY_LIMIT_S = 1.0


class Observed:
    """What the clients were told and what the readers saw, shared by the threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # (session, event_id) -> (sequence, position)
        self.seen = {}  # (session, sequence) -> (event_id, position), from any reader
        self.problems = []  # what a reader found wrong while it ran

    def see(self, ev, who):
        key = (ev["session_id"], ev["sequence"])
        val = (ev["event_id"], ev["position"])
        with self.lock:
            old = self.seen.setdefault(key, val)
            if old != val:
                self.problems.append("%s: %r was %r, now %r" % (who, key, old, val))


def appender(s, n, obs, counter, stop):
    session = "crash%d" % n
    while not stop.is_set():
        k = random.randint(1, 5)
        with obs.lock:
            base = counter[0]
            counter[0] += k
        ids = ["c%d-%d" % (n, base + j) for j in range(k)]
        body = json.dumps([{"type": "t", "event_id": i, "data": {"n": n}} for i in ids])
        try:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
            c.request("POST", "/v1/sessions/%s/events" % session, body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
        except (OSError, http.client.HTTPException, TypeError):
            time.sleep(0.01)  # killed under us (TypeError: port None during restart)
            continue
        if r.status == 200:
            j = json.loads(data)
            assert j["last_sequence"] - j["first_sequence"] == k - 1
            # The answer's position is the batch's last event; the batch is contiguous.
            with obs.lock:
                for off, i in enumerate(ids):
                    obs.acked[(session, i)] = (j["first_sequence"] + off,
                                               j["position"] - (k - 1) + off)
        else:
            assert r.status in (503,), data


def feed_reader(s, obs, stop):
    """Follows /v1/events/sse across restarts with Last-Event-ID (a position)."""
    last = 0
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=2)
            c.request("GET", "/v1/events/sse", headers={"Last-Event-ID": str(last)})
            r = c.getresponse()
            if r.status != 200:
                r.read()
                time.sleep(0.02)
                continue
            for raw in r:
                line = raw.decode().rstrip("\n")
                if not line.startswith("data: "):
                    continue
                ev = json.loads(line[6:])
                if ev["position"] <= last:
                    with obs.lock:
                        obs.problems.append("feed: position %d after %d" % (ev["position"], last))
                last = ev["position"]
                obs.see(ev, "feed")
                if stop.is_set():
                    break
        except (OSError, http.client.HTTPException, TypeError, ValueError):
            time.sleep(0.02)


def poller(s, obs, stop):
    """Polls each session's pages from its own offset, as an SDK client does."""
    offsets = {"crash%d" % n: 0 for n in range(CLIENTS)}
    while not stop.is_set():
        for session, off in offsets.items():
            try:
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=2)
                c.request("GET", "/v1/sessions/%s/events?offset=%d&limit=200" % (session, off))
                r = c.getresponse()
                data = r.read()
                c.close()
            except (OSError, http.client.HTTPException, TypeError):
                time.sleep(0.02)
                continue
            if r.status != 200:
                continue
            page = json.loads(data)
            for ev in page["events"]:
                obs.see(ev, "poll")
            offsets[session] = page.get("next_offset", off)


def restart_seconds(s):
    t0 = time.monotonic()
    s.start()  # returns at the first answer from /v1/health
    return time.monotonic() - t0


def check_store(s, obs):
    stored = {}
    for n in range(CLIENTS):
        session = "crash%d" % n
        evs = s.events(session)
        seqs = [e["sequence"] for e in evs]
        assert seqs == list(range(1, len(seqs) + 1)), "sequences not dense in " + session
        pos = [e["position"] for e in evs]
        assert pos == sorted(set(pos)), "positions do not grow with sequence in " + session
        for e in evs:
            stored[(session, e["sequence"])] = (e["event_id"], e["position"])
    all_pos = [p for _, p in stored.values()]
    assert len(all_pos) == len(set(all_pos)), "a position used twice"
    with obs.lock:
        acked = dict(obs.acked)
        seen = dict(obs.seen)
        problems = list(obs.problems)
    assert not problems, problems[:10]
    for (session, eid), (seq, pos) in acked.items():
        assert stored.get((session, seq)) == (eid, pos), ("acknowledged event lost", session, eid,
                                                         seq, pos, stored.get((session, seq)))
    for key, val in seen.items():
        assert stored.get(key) == val, ("an event a reader saw vanished", key, val,
                                        stored.get(key))
    return len(acked), len(seen)


@pytest.mark.parametrize("args", [(), ("--journal",)], ids=["sync-full", "journal"])
def test_kill9_keeps_every_acknowledged_and_every_seen_event(server_factory, args):
    s = server_factory(args=args)  # --sync full (the default), or the write-ahead journal
    obs = Observed()
    stop = threading.Event()
    counter = [0]
    threads = [threading.Thread(target=appender, args=(s, n, obs, counter, stop))
               for n in range(CLIENTS)]
    threads += [threading.Thread(target=feed_reader, args=(s, obs, stop)),
                threading.Thread(target=poller, args=(s, obs, stop))]
    for t in threads:
        t.start()
    ready = []
    try:
        for _ in range(ROUNDS):
            time.sleep(random.uniform(0.05, 0.6))
            s.kill()
            ready.append(restart_seconds(s))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    n_acked, n_seen = check_store(s, obs)
    assert n_acked > 100, "too few acknowledged appends to mean anything"
    assert n_seen > 100, "the readers saw too little to mean anything"
    ready.sort()
    print("kill -9 rounds (%s): %d, acknowledged events: %d, seen by readers: %d, "
          "restart to serving: median %.3f s, max %.3f s"
          % (" ".join(args) or "--sync full", ROUNDS, n_acked, n_seen, ready[len(ready) // 2], ready[-1]))
    assert ready[-1] < READY_LIMIT_S, "serving again took %.3f s after a restart" % ready[-1]
    s.stop()
    v = subprocess.run([REEL_BIN, "verify", "--data", s.data], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
