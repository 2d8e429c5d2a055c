"""kill -9 at random moments under concurrent appends (SPEC §6 durability): every
acknowledged event is there after a restart, at the sequence it was acknowledged with,
and every session's sequences are dense."""
import http.client
import json
import os
import random
import threading
import time

CLIENTS = 8
ROUNDS = int(os.environ.get("REEL_KILL_ROUNDS", "20"))  # `make torture` asks for 1000


def test_kill9_keeps_every_acknowledged_event(server_factory):
    s = server_factory()  # --sync full (the default)
    acked = {}  # (session, event_id) -> sequence
    lock = threading.Lock()
    stop = threading.Event()
    counter = [0]

    def client(n):
        session = "crash%d" % n
        while not stop.is_set():
            k = random.randint(1, 5)
            with lock:
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
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)
                continue
            if r.status == 200:
                j = json.loads(data)
                assert j["last_sequence"] - j["first_sequence"] == k - 1
                with lock:
                    for off, i in enumerate(ids):
                        acked[(session, i)] = j["first_sequence"] + off
            else:
                assert r.status in (503,), data

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    try:
        for _ in range(ROUNDS):
            time.sleep(random.uniform(0.05, 0.6))
            s.kill()
            s.start()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(acked) > 100, "too few acknowledged appends to mean anything"
    for n in range(CLIENTS):
        session = "crash%d" % n
        evs = s.events(session, limit=10000)
        seqs = [e["sequence"] for e in evs]
        assert seqs == list(range(1, len(seqs) + 1)), "sequences not dense in " + session
        by_seq = {e["sequence"]: e["event_id"] for e in evs}
        for (sess, eid), seq in acked.items():
            if sess == session:
                assert by_seq.get(seq) == eid, (sess, eid, seq)
