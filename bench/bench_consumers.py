#!/usr/bin/env python3
"""bench_consumers.py -- durable consumers over HTTP (docs/BENCHMARKS.md "Durable consumers").

    bench/bench_consumers.py [--events N] [--batch B] [--sync full|none] [REEL_BINARY]

Starts `reel serve` on a temporary directory, appends N events (batches of 500 over 8
sessions), then one worker drains a feed consumer with next(limit=B) + ack until it reaches
the tail, and a second run with a filtered consumer (types: one of two types). Prints the
events/s of each drain, the p50/p99 of one next+ack round trip, and the time a second
worker waits to take over a lease whose owner stopped (TTL 500 ms). Numbers, never pass/fail.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Client:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = self.c.getresponse()
        return r.status, json.loads(r.read() or b"null")


def drain(cl, name, batch):
    cl.call("PUT", "/v1/consumers/" + name, {"feed": True} if name == "all" else {"feed": True, "types": ["a"]})
    st, j = cl.call("POST", "/v1/consumers/%s/lease" % name, {"worker": "w", "ttl_ms": 60000})
    token, n, rtt = j["token"], 0, []
    t0 = time.perf_counter()
    while True:
        t1 = time.perf_counter()
        st, j = cl.call("GET", "/v1/consumers/%s/next?token=%d&limit=%d" % (name, token, batch))
        if not j["events"] and j["next_position"] <= j["acked"]:
            break
        n += len(j["events"])
        cl.call("POST", "/v1/consumers/%s/ack" % name, {"token": token, "position": j["next_position"]})
        rtt.append(time.perf_counter() - t1)
    dt = time.perf_counter() - t0
    rtt.sort()
    return n, n / dt, rtt[len(rtt) // 2] * 1e3, rtt[min(len(rtt) - 1, int(len(rtt) * 0.99))] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--sync", default="full")
    ap.add_argument("reel", nargs="?", default=os.path.join(os.path.dirname(__file__), "..", "build", "reel"))
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="reel-bench-consumers.")
    port = free_port()
    p = subprocess.Popen([a.reel, "serve", "--data", d + "/data", "--listen", "127.0.0.1:%d" % port,
                          "--sync", a.sync], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                Client(port).call("GET", "/v1/health")
                break
            except OSError:
                time.sleep(0.05)
        cl = Client(port)
        for i in range(0, a.events, 500):
            evs = [{"type": "a" if k % 2 else "b", "data": {"i": i + k, "text": "x" * 100}} for k in range(500)]
            st, _ = cl.call("POST", "/v1/sessions/s%d/events" % (i // 500 % 8), evs)
            assert st == 200
        for name in ("all", "typed"):
            n, rate, p50, p99 = drain(cl, name, a.batch)
            print("%-6s %7d events  %9.0f events/s  next+ack p50 %.2f ms  p99 %.2f ms" % (name, n, rate, p50, p99))
        cl.call("PUT", "/v1/consumers/t", {"feed": True})
        cl.call("POST", "/v1/consumers/t/lease", {"worker": "w1", "ttl_ms": 500})
        t0 = time.perf_counter()
        while cl.call("POST", "/v1/consumers/t/lease", {"worker": "w2", "ttl_ms": 500})[0] != 200:
            time.sleep(0.005)
        print("takeover after the owner stopped (TTL 500 ms): %.0f ms" % ((time.perf_counter() - t0) * 1e3))
    finally:
        p.terminate()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
