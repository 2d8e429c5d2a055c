"""The whole server under failing allocations (tests/oom/preload.c, docs/RELIABILITY.md).

`make oom` fails each allocation of the library's operations one at a time. This test does
the same to a running `reel serve`: loaded with build/fault/failmalloc.so, it is armed by
SIGUSR1 so that about one allocation in N fails anywhere in the process (libmicrohttpd,
LMDB, zstd, jansson, OpenSSL, reel), while a mixed workload runs over HTTP: appends, pages,
the feed, SSE, restore, transcripts, stats, verify, and the Durable Streams routes with
producers, forks and deletes racing appends. Then SIGUSR2 disarms it, and:

  - the server is still running and answers health 200;
  - every answer it gave was HTTP with a status, and every 5xx body is a problem;
  - every append it acknowledged is there, dense, and `reel verify` passes;
  - it stops cleanly on SIGTERM, with no sanitizer report (under `make asan`, a wrong
    free on an error path, such as releasing an uninitialised stream state, is caught).
"""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import faultlib

SO = os.path.abspath(os.environ.get(
    "FAILMALLOC_SO", os.path.join(faultlib.ROOT, "build", "fault", "failmalloc.so")))
SECONDS = float(os.environ.get("REEL_OOM_SERVER_SECONDS", "3"))   # armed, per seed
EVERY = int(os.environ.get("REEL_OOM_SERVER_EVERY", "40"))        # about 1 in N fails


def ensure_so():
    srcs = [os.path.join(faultlib.ROOT, "tests", "oom", f) for f in ("failmalloc.c", "preload.c")]
    if os.path.exists(SO) and all(os.path.getmtime(SO) >= os.path.getmtime(s) for s in srcs):
        return
    os.makedirs(os.path.dirname(SO), exist_ok=True)
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-fno-omit-frame-pointer",
                    "-I" + faultlib.ROOT, "-fPIC",
                    "-shared", "-o", SO, *srcs, "-ldl"], check=True)


class OomServer:
    def __init__(self, tmp, every, seed):
        ensure_so()
        self.data = os.path.join(str(tmp), "data")
        self.port = faultlib.free_port()
        env = faultlib.clean_env()
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0" + (
            ":" + env["ASAN_OPTIONS"] if env.get("ASAN_OPTIONS") else "")
        env.update({"LD_PRELOAD": SO, "FAILMALLOC_EVERY": str(every),
                    "FAILMALLOC_SEED": str(seed)})
        self.log_path = os.path.join(str(tmp), "serve.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [faultlib.REEL_BIN, "serve", "--data", self.data, "--sync", "full", "--listen",
             "127.0.0.1:%d" % self.port, "--ds-long-poll-ms", "200"],
            env=env, stdout=self.log, stderr=self.log)
        faultlib._servers.append(self.proc)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                if self.request("GET", "/v1/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the server did not start: " + self.log_text())

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), r.getheader("content-type") or ""
        finally:
            c.close()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def is_problem(data):
    """An RFC 7807 body of the error table. (Its Content-Type header may be missing: adding
    a header allocates, and libmicrohttpd leaves it out when that fails.)"""
    try:
        p = json.loads(data)
    except ValueError:
        return False
    return isinstance(p, dict) and str(p.get("type", "")).startswith("urn:reel:error:") and \
        isinstance(p.get("status"), int) and p["status"] >= 500


class Workload:
    """Requests from several threads; what was answered, and which appends were acked."""

    def __init__(self, srv):
        self.srv = srv
        self.lock = threading.Lock()
        self.acked = {}       # session -> set of event ids acknowledged
        self.statuses = {}    # status -> count (None: no HTTP answer)
        self.bad = []         # answers that break the rules
        self.n = 0

    def call(self, method, path, body=None, headers=None):
        try:
            status, data, ctype = self.srv.request(method, path, body, headers)
        except (OSError, http.client.HTTPException):
            status, data, ctype = None, b"", ""  # dropped: allowed when memory runs out
        with self.lock:
            self.n += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status is not None and status >= 500 and data and not is_problem(data):
                self.bad.append((method, path, status, data[:200]))
            if status is not None and not 100 <= status < 600:
                self.bad.append((method, path, status, data[:200]))
        return status, data

    def append(self, session, k, i):
        ids = ["w%d-%d-%d" % (k, i, j) for j in range(3)]
        body = "\n".join(json.dumps({"event_id": e, "type": "oom.test",
                                     "data": {"k": k, "i": i, "pad": "y" * (40 * j + 10)}})
                         for j, e in enumerate(ids))
        status, _ = self.call("POST", "/v1/sessions/%s/events" % session, body,
                              {"Content-Type": "application/x-ndjson"})
        if status == 200:
            with self.lock:
                self.acked.setdefault(session, set()).update(ids)

    def session_ops(self, k, stop):
        i = 0
        while not stop.is_set():
            s = "oom-%d" % (i % 3)
            self.append(s, k, i)
            self.call("GET", "/v1/sessions/%s/events?limit=20&offset=%d" % (s, i % 7))
            self.call("GET", "/v1/events?after=%d&limit=50" % (i * 3))
            self.call("GET", "/v1/sessions/%s/restore" % s)
            if i % 3 == 0:
                self.call("GET", "/v1/sessions/%s/transcript" % s)
                self.call("GET", "/v1/stats")
                self.call("GET", "/v1/sessions/%s/verify" % s)
                self.call("GET", "/v1/sessions/%s/events?types=oom.test&limit=5" % s)
            if i % 5 == 0:
                self.call("PUT", "/v1/sessions/%s" % s,
                          json.dumps({"agent": "oom", "metadata": {"i": i}}),
                          {"Content-Type": "application/json"})
            i += 1

    def stream_ops(self, k, stop):
        J = {"Content-Type": "application/json"}
        i = 0
        while not stop.is_set():
            p = "/v1/stream/oom/%d-%d" % (k, i % 4)
            self.call("PUT", p, b"[]", J)
            self.call("POST", p, json.dumps([{"i": i}, {"k": k}]).encode(),
                      dict(J, **{"Producer-Id": "p%d" % k, "Producer-Epoch": "0",
                                 "Producer-Seq": str(i)}))
            self.call("POST", p, b'{"plain":1}', J)
            self.call("GET", p + "?offset=-1")
            self.call("HEAD", p)
            self.call("GET", p + "?offset=now&live=long-poll")
            if i % 3 == 0:
                self.call("PUT", p + "-fork", b"", dict(J, **{"Stream-Forked-From": p}))
                self.call("DELETE", p)            # races the appends of the other thread
                self.call("DELETE", p + "-fork")
            i += 1

    def sse_ops(self, stop):
        while not stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=2)
                c.request("GET", "/v1/events/sse?after=0")
                r = c.getresponse()
                r.read1(4096) if hasattr(r, "read1") else r.read(64)
                c.close()
            except (OSError, http.client.HTTPException):
                pass


def preload(srv):
    """Brings the store just under STORE_ZDICT_FIRST (1024) positions, so that the workload's
    first appends make the committer train the store's first dictionary (docs/FORMAT.md
    section 15) while allocations fail: libzstd 1.5.4's trainer dereferences a failed
    allocation, which must cost the run a dictionary, never the server."""
    text = "the quick brown fox %d jumps over the lazy dog; "
    for b in range(10):
        body = "\n".join(json.dumps({"type": "oom.pre",
                                     "data": {"text": (text % i) * (1 + i % 7)}})
                         for i in range(b * 100, b * 100 + 100))
        status, _, _ = srv.request("POST", "/v1/sessions/oom-pre/events", body,
                                   {"Content-Type": "application/x-ndjson"})
        assert status == 200


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_server_under_failing_allocations(tmp_path, seed):
    srv = OomServer(tmp_path, every=EVERY, seed=seed)
    w = Workload(srv)
    for s in range(3):
        w.append("oom-%d" % s, 99, s)   # the sessions exist before the allocations fail
    preload(srv)   # the first dictionary is trained while allocations fail
    os.kill(srv.proc.pid, signal.SIGUSR1)
    stop = threading.Event()
    threads = [threading.Thread(target=w.session_ops, args=(k, stop)) for k in range(2)]
    threads += [threading.Thread(target=w.stream_ops, args=(k, stop)) for k in range(2)]
    threads.append(threading.Thread(target=w.sse_ops, args=(stop,)))
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(60)
    os.kill(srv.proc.pid, signal.SIGUSR2)
    time.sleep(0.2)

    print("\nseed %d: %d requests; answers %s" % (
        seed, w.n, sorted(w.statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))))
    assert srv.proc.poll() is None, "the server died: " + srv.log_text()[-3000:]
    assert not w.bad, w.bad[:5]
    assert w.statuses.get(200, 0) > 0 and any(s and s >= 500 for s in w.statuses), \
        "the run failed no request: is the injector armed? %r" % w.statuses
    status, body, _ = srv.request("GET", "/v1/health")
    assert status == 200, body
    for session, ids in w.acked.items():   # every acknowledged append is there, dense
        status, body, _ = srv.request("GET", "/v1/sessions/%s/events?limit=10000" % session)
        assert status == 200, body
        events = json.loads(body)["events"]
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        missing = ids - {e["event_id"] for e in events}
        assert not missing, (session, sorted(missing)[:5])
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0, srv.log_text()[-3000:]
    srv.log.close()
    text = srv.log_text()
    assert not any(m in text for m in faultlib.SANITIZER_MARKS), text[-5000:]
    v = subprocess.run([faultlib.REEL_BIN, "verify", "--data", srv.data],
                       capture_output=True, text=True, timeout=120, env=faultlib.clean_env())
    assert v.returncode == 0, v.stdout + v.stderr
