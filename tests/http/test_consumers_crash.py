"""Durable consumers under crashes (issue 21, "Must show"): kill -9 the server and the
workers at random points; every event is delivered at least once and acknowledged exactly
once per consumer, in order per session.

A real `reel serve --sync full` and real worker processes (this file run as a script:
`python3 test_consumers_crash.py worker ...`). Three consumers (the whole feed, the feed
filtered to one type, one session), two workers each competing for the lease (TTL 800 ms).
Each round the test appends a batch (retried with the same event ids until it lands), then
kills -9 the server (and restarts it) or a worker (and starts it again) at a random point.
Workers write what they were given and what they acknowledged to their own log before
and after each request (O_APPEND: a kill -9 loses nothing written), and the logs are
checked against the store at the end:

- at least once: every event a consumer's definition takes is in some delivery;
- exactly once: the acknowledged ranges (from, to] of all workers never overlap, the
  consumer's acknowledged position ends at its tail, and the server's count of moves of
  it equals the ranges logged (a range may be missing from the logs only when its worker
  was killed between the commit and its log line; an ack whose answer a server kill lost
  is recognised by the worker's next read);
- in order: within one lease, a worker is given each session's events in rising sequence
  order, and a new lease starts right after the acknowledged position.

Rounds: 20 (REEL_CONSUMER_CRASH_ROUNDS for more); REEL_CONSUMER_CRASH_SEED fixes the run.
"""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CONSUMERS = {"all": {"feed": True}, "typed": {"feed": True, "types": ["keep"]},
             "one": {"session": "s0"}}
TTL_MS = 800


# ---- the worker (a separate process) ----

def worker_main(port_file, consumer, name, log_path):
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def log(*parts):
        os.write(fd, (" ".join(str(p) for p in parts) + "\n").encode())

    def call(method, path, body=None):
        with open(port_file) as f:
            port = int(f.read().strip())
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        finally:
            c.close()

    rnd = random.Random(os.getpid())
    token = None
    inflight = None  # the position of an ack whose answer was lost (server killed)

    def ack(to):
        nonlocal acked, token, inflight
        inflight = to
        st, r = call("POST", "/v1/consumers/%s/ack" % consumer, {"token": token, "position": to})
        inflight = None
        if st == 200:
            log("A", token, acked, to)
            acked = to
        else:
            token = None

    acked = 0
    while True:
        try:
            if token is None:
                inflight = None
                st, j = call("POST", "/v1/consumers/%s/lease" % consumer, {"worker": name, "ttl_ms": TTL_MS})
                if st != 200:
                    time.sleep(0.05)
                    continue
                token, acked = j["token"], j["acked"]
                log("L", token, acked)
            st, j = call("GET", "/v1/consumers/%s/next?token=%d&limit=%d" % (consumer, token, rnd.randint(1, 25)))
            if st == 409:
                token = None
                continue
            assert st == 200, (st, j)
            if j["acked"] != acked and j["acked"] == inflight:
                # our own ack committed before the server died: it moved 'acked' once
                log("A", token, acked, inflight)
                acked, inflight = inflight, None
            if j["acked"] != acked:  # nobody else may move it during our lease
                log("X", token, acked, j["acked"])
                acked = j["acked"]
            if not j["events"] and j["next_position"] > acked:
                # only events the consumer's types leave out: acknowledge past them
                ack(j["next_position"])
                continue
            if not j["events"]:
                # renew the lease while idle
                st, j = call("POST", "/v1/consumers/%s/lease" % consumer,
                             {"worker": name, "ttl_ms": TTL_MS, "token": token})
                if st != 200 or j["token"] != token:
                    token = None
                time.sleep(0.02)
                continue
            log("N", token, j["acked"])
            for e in j["events"]:
                log("D", token, e["position"], e["session_id"], e["sequence"], e["type"])
            ack(j["next_position"])
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.05)  # the server is down or restarting: try again


# ---- the test ----

def start_worker(port_file, consumer, name, log_path):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "worker", port_file,
                             consumer, name, log_path])


def append_until_ok(srv, session, events):
    for _ in range(400):
        try:
            r = srv.append(session, events, timeout=5)
            if r.status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise AssertionError("append never landed")


def read_logs(paths):
    out = {}
    for consumer, path in paths:
        lines = []
        if os.path.exists(path):
            with open(path) as f:
                lines = [ln.split() for ln in f.read().splitlines() if ln]
        out.setdefault(consumer, []).append(lines)
    return out


def check(consumer, logs, expected, final):
    """logs: one list of lines per worker. expected: [(position, session, seq)] taken by
    the consumer's definition, in position order; final: the consumer's record.
    Keys are positions on the feed, sequences for the session consumer."""
    keyed = [seq if consumer == "one" else pos for pos, sess, seq in expected]
    index = {k: i for i, k in enumerate(keyed)}
    delivered = set()
    ranges = []
    batches = 0
    for lines in logs:
        nxt = None  # the index in 'keyed' the current batch must give next
        for ln in lines:
            if ln[0] == "X":
                raise AssertionError("%s: acked moved under a live lease: %r" % (consumer, ln))
            if ln[0] == "N":
                # a batch: what follows 'acked' in order, nothing skipped
                acked = int(ln[2])
                nxt = next((i for i, k in enumerate(keyed) if k > acked), len(keyed))
                batches += 1
            elif ln[0] == "D":
                pos, seq = int(ln[2]), int(ln[4])
                k = seq if consumer == "one" else pos
                assert k in index, "%s: delivered %r, which it does not take" % (consumer, ln)
                assert index[k] == nxt, "%s: out of order or skipped: %r, expected %r" % (
                    consumer, ln, keyed[nxt] if nxt < len(keyed) else None)
                nxt += 1
                delivered.add(k)
            elif ln[0] == "A":
                ranges.append((int(ln[2]), int(ln[3]), int(ln[1])))
    missing = set(keyed) - delivered
    assert not missing, "%s: never delivered: %s" % (consumer, sorted(missing)[:10])
    ranges.sort()
    for (a1, b1, t1), (a2, b2, t2) in zip(ranges, ranges[1:]):
        assert b1 <= a2, "%s: acknowledged twice: (%d,%d] token %d and (%d,%d] token %d" % (
            consumer, a1, b1, t1, a2, b2, t2)
    tail = final["tail"]
    assert final["acked"] == tail, (consumer, final)
    assert not ranges or ranges[-1][1] <= tail
    return len(ranges), batches


def test_kill9_server_and_workers(server_factory, tmp_path):
    rounds = int(os.environ.get("REEL_CONSUMER_CRASH_ROUNDS", "20"))
    seed = int(os.environ.get("REEL_CONSUMER_CRASH_SEED", str(random.randrange(1 << 30))))
    rnd = random.Random(seed)
    print("seed", seed, "rounds", rounds)
    srv = server_factory(args=["--sync", "full"])
    port_file = str(tmp_path / "port")

    def note_port():
        with open(port_file + ".tmp", "w") as f:
            f.write(str(srv.port))
        os.replace(port_file + ".tmp", port_file)

    note_port()
    for name, definition in CONSUMERS.items():
        assert srv.request("PUT", "/v1/consumers/" + name, body=definition).status == 201
    workers, logs = {}, []
    for c in CONSUMERS:
        for w in ("w1", "w2"):
            path = str(tmp_path / ("%s-%s.log" % (c, w)))
            logs.append((c, path))
            workers[(c, w)] = start_worker(port_file, c, "%s-%s" % (c, w), path)
    n = 0
    kills = {"server": 0, "worker": 0}
    try:
        for i in range(rounds):
            batch = []
            for _ in range(rnd.randint(1, 12)):
                batch.append({"event_id": "e%d" % n, "type": rnd.choice(["keep", "other"]), "data": n})
                n += 1
            append_until_ok(srv, "s%d" % rnd.randrange(3), batch)
            time.sleep(rnd.uniform(0.05, 0.4))
            what = rnd.random()
            if what < 0.4:
                srv.proc.send_signal(signal.SIGKILL)
                srv.proc.wait()
                kills["server"] += 1
                srv.start()
                note_port()
            elif what < 0.8:
                key = rnd.choice(list(workers))
                workers[key].send_signal(signal.SIGKILL)
                workers[key].wait()
                kills["worker"] += 1
                # half the time a new worker name: it must wait for the lease to expire
                # (a takeover); else the same name, a restarted worker, takes a new token
                c, w = key
                name = "%s-%s" % key + ("-r%d" % i if rnd.random() < 0.5 else "")
                workers[key] = start_worker(port_file, c, name, str(tmp_path / ("%s-%s.log" % key)))
        # let the workers finish: every consumer acknowledged up to its tail
        deadline = time.time() + 60
        while time.time() < deadline:
            recs = {c["name"]: c for c in srv.get("/v1/consumers").json["consumers"]}
            if all(r["acked"] == r["tail"] for r in recs.values()):
                break
            time.sleep(0.1)
    finally:
        for p in workers.values():
            p.send_signal(signal.SIGKILL)
            p.wait()
    feed = srv.feed()
    assert len(feed) == n  # every batch landed once (retries were duplicates)
    recs = {c["name"]: c for c in srv.get("/v1/consumers").json["consumers"]}
    by_consumer = read_logs(logs)
    expect = {
        "all": [(e["position"], e["session_id"], e["sequence"]) for e in feed],
        "typed": [(e["position"], e["session_id"], e["sequence"]) for e in feed if e["type"] == "keep"],
        "one": [(e["position"], e["session_id"], e["sequence"]) for e in feed if e["session_id"] == "s0"],
    }
    for c in CONSUMERS:
        acks, batches = check(c, by_consumer[c], expect[c], recs[c])
        # every logged range moved the cursor once on the server ('acks' counts the moves);
        # a move without a log line needs a worker killed between the commit and the line
        assert acks <= recs[c]["acks"] <= acks + kills["worker"], (c, acks, recs[c]["acks"])
        print(c, "events", len(expect[c]), "batches", batches, "ack ranges", acks,
              "takeovers", recs[c]["takeovers"])
    print("kills", kills, "events", n)
    v = subprocess.run([os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "reel")
                        if not os.environ.get("REEL_BIN") else os.environ["REEL_BIN"],
                        "verify", "--data", srv.data], capture_output=True, text=True)
    assert v.returncode == 0 or "lock" in v.stderr, v.stderr


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "worker":
    worker_main(*sys.argv[2:])
