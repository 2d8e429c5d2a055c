"""kill -9 in the middle of an LMDB map growth (issue 14: not covered before).

`reel serve` runs with tests/fault/growshim.c preloaded: its store starts with a 1 MiB map
and, each time the map grows, the shim holds the server between LMDB's munmap of the old
map and the mmap of the new one. Appending clients fill the store; as soon as a growth is
under way the server is killed with SIGKILL, then started again, and the round repeats
with the next growth. At the end every acknowledged event is there at a dense sequence and
`reel verify` passes.
"""
import base64
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import faultlib

SO = os.path.join(faultlib.ROOT, "build", "fault", "growshim.so")
ROUNDS = int(os.environ.get("REEL_MAPGROW_ROUNDS", "10"))


def ensure_so():
    src = os.path.join(faultlib.ROOT, "tests", "fault", "growshim.c")
    if os.path.exists(SO) and os.path.getmtime(SO) >= os.path.getmtime(src):
        return
    os.makedirs(os.path.dirname(SO), exist_ok=True)
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-fPIC", "-shared", "-o", SO, src,
                    "-ldl"], check=True)


def start(data, port, env, log):
    p = subprocess.Popen([faultlib.REEL_BIN, "serve", "--data", data, "--sync", "full",
                          "--listen", "127.0.0.1:%d" % port], env=env, stdout=log, stderr=log)
    faultlib._servers.append(p)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/v1/health")
            if c.getresponse().status == 200:
                return p
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the server did not start")


def post(port, session, ids):
    lines = [json.dumps({"event_id": e, "type": "grow.test",
                         "data": base64.b64encode(os.urandom(3000)).decode()}) for e in ids]
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/v1/sessions/%s/events" % session, body="\n".join(lines),
                  headers={"Content-Type": "application/x-ndjson"})
        return c.getresponse().status
    except (OSError, http.client.HTTPException):
        return None


def test_kill9_during_map_growth(tmp_path):
    ensure_so()
    data = str(tmp_path / "data")
    mark = str(tmp_path / "growing")
    log = open(str(tmp_path / "serve.log"), "ab")
    env = faultlib.clean_env()
    env["ASAN_OPTIONS"] = "verify_asan_link_order=0" + (
        ":" + env["ASAN_OPTIONS"] if env.get("ASAN_OPTIONS") else "")
    env.update({"LD_PRELOAD": SO, "GROWSHIM_MARK": mark, "GROWSHIM_SLEEP_MS": "400"})
    acked = {}
    lock = threading.Lock()
    killed_growing = 0
    per_round = []
    for rnd in range(ROUNDS):
        if os.path.exists(mark):
            os.unlink(mark)
        # Each round's map starts 1 MiB past the file's end, so that the round appends about
        # 1 MiB before it outgrows it (a store restarted after a growth that never committed
        # would otherwise be full at its first commit).
        f = os.path.join(data, "data.mdb")
        env["GROWSHIM_INITIAL"] = str((1 << 20) + (os.path.getsize(f) if os.path.exists(f) else 0))
        port = faultlib.free_port()
        proc = start(data, port, env, log)
        stop = threading.Event()

        def client(k):
            i = 0
            while not stop.is_set():
                ids = ["r%d-c%d-b%d-%d" % (rnd, k, i, j) for j in range(8)]
                if post(port, "grow-%d" % k, ids) == 200:
                    with lock:
                        acked.setdefault("grow-%d" % k, set()).update(ids)
                i += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while not os.path.exists(mark) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.005)
        if os.path.exists(mark):
            killed_growing += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
        per_round.append(sum(len(v) for v in acked.values()) - sum(per_round))
    assert killed_growing == ROUNDS, "the map grew in only %d of %d rounds" % (killed_growing,
                                                                               ROUNDS)
    port = faultlib.free_port()
    proc = start(data, port, faultlib.clean_env(), log)  # without the shim
    try:
        for session, ids in acked.items():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/v1/sessions/%s/events?limit=10000" % session)
            events = json.loads(c.getresponse().read())["events"]
            assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
            missing = ids - {e["event_id"] for e in events}
            assert not missing, (session, sorted(missing)[:5])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    v = subprocess.run([faultlib.REEL_BIN, "verify", "--data", data], capture_output=True,
                       text=True, timeout=120, env=faultlib.clean_env())
    assert v.returncode == 0, v.stdout + v.stderr
    print("\n%d rounds killed inside a map growth; events acknowledged per round %s, all kept" % (
        killed_growing, per_round))
    assert min(per_round) > 0, per_round
