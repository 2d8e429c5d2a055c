#!/usr/bin/python3
"""bench_sink.py -- `reel sink postgres` throughput and lag (docs/BENCHMARKS.md "PostgreSQL sink").

    bench/bench_sink.py BUILD_DIR [--events N] [--rate R] [--seconds S] [--batch B]

Starts a PostgreSQL 15 cluster (initdb, pg_ctl; 127.0.0.1, a free port; fsync and
synchronous_commit on, the defaults) and `reel serve --sync full` in a temporary directory,
then measures:
  1. catch-up: N events (about 400 bytes of JSON each, 100 per append, 50 sessions) are
     appended with no sink running; `reel sink postgres --once` then copies them: events/s
     into PostgreSQL, from start to exit (one transaction per --batch items);
  2. lag under load: a sink follows while a client appends R events/s (batches of 50) for
     S seconds; GET /v1/sinks is sampled every 100 ms: lag p50, p99 and max (positions),
     and how long the sink needs to catch up once the load stops.
Prints a Markdown table. Numbers only, never pass/fail. Needs the Debian postgresql-15
package (scripts/deps.sh test).
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def req(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def bench_lag(port):
    """The lag of the following sink ('bench'), or None before it reported."""
    for k in json.loads(req(port, "GET", "/v1/sinks")[1])["sinks"]:
        if k["name"] == "bench":
            return k["lag"]
    return None


def event_batch(k, n):
    return json.dumps([{"type": "item.delta", "source": "agent",
                        "data": {"delta": "x" * 300, "k": k, "j": j}} for j in range(n)])


def main():
    # `timeout` and ^C end the run through the cleanup below (servers, PostgreSQL, files).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args()
    reel = os.path.abspath(os.path.join(a.build, "reel"))
    base = tempfile.mkdtemp(prefix="reel-bench-sink-")
    prefix = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(base, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    pgdata, pgport = os.path.join(base, "pg"), free_port()
    subprocess.run(prefix + [PG_BIN + "/initdb", "-D", pgdata, "-A", "trust", "-U", "reel",
                             "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(prefix + [PG_BIN + "/pg_ctl", "-D", pgdata, "-l", base + "/pg.log", "-w",
                             "-o", "-c listen_addresses=127.0.0.1 -p %d -k %s" % (pgport, base),
                             "start"], check=True, stdout=subprocess.DEVNULL)
    dsn = "host=127.0.0.1 port=%d user=reel dbname=postgres" % pgport
    port = free_port()
    data = os.path.join(base, "data")
    os.makedirs(data)
    srv = subprocess.Popen([reel, "serve", "--data", data, "--listen", "127.0.0.1:%d" % port,
                            "--sync", "full"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if req(port, "GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        sink = [reel, "sink", "postgres", "--server", "http://127.0.0.1:%d" % port, "--dsn", dsn,
                "--batch", str(a.batch), "--quiet"]
        rows = []
        say = lambda m: print("bench_sink: " + m, file=sys.stderr, flush=True)

        # 1. catch-up
        say("appending %d events" % a.events)
        for i in range(a.events // 100):
            st, _ = req(port, "POST", "/v1/sessions/s%d/events" % (i % 50), event_batch(i, 100))
            assert st == 200
        say("copying them with reel sink postgres --once")
        t0 = time.time()
        subprocess.run(sink + ["--once", "--schema", "catchup"], check=True, timeout=600)
        dt = time.time() - t0
        rows.append(("catch-up: %d events into PostgreSQL (--batch %d)" % (a.events, a.batch),
                     "%.0f events/s (%.1f s)" % (a.events / dt, dt)))

        # 2. lag under load
        say("a sink follows; waiting for it to catch up")
        p = subprocess.Popen(sink + ["--schema", "follow", "--name", "bench"])
        while bench_lag(port) != 0:
            time.sleep(0.1)
        stop = threading.Event()
        sent = [0]

        def load():
            per = 50
            interval = per / float(a.rate)
            nxt = time.time()
            k = 0
            while not stop.is_set():
                req(port, "POST", "/v1/sessions/l%d/events" % (k % 20), event_batch(k, per))
                sent[0] += per
                k += 1
                nxt += interval
                d = nxt - time.time()
                if d > 0:
                    time.sleep(d)

        say("load at %d events/s for %d s" % (a.rate, a.seconds))
        t = threading.Thread(target=load)
        t.start()
        lags = []
        t0 = time.time()
        while time.time() - t0 < a.seconds:
            lags.append(bench_lag(port))
            time.sleep(0.1)
        stop.set()
        t.join()
        achieved = sent[0] / (time.time() - t0)
        t1 = time.time()
        while bench_lag(port) > 0:
            time.sleep(0.02)
        catch = time.time() - t1
        p.terminate()
        p.wait()
        lags.sort()
        pct = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]
        rows.append(("load: %.0f events/s appended for %d s (asked %d)" % (achieved, a.seconds,
                                                                           a.rate),
                     "lag p50 %d, p99 %d, max %d positions" % (pct(0.5), pct(0.99), lags[-1])))
        rows.append(("caught up after the load stopped", "%.2f s" % catch))
        print("| measure | result |\n| --- | --- |")
        for r in rows:
            print("| %s | %s |" % r)
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(prefix + [PG_BIN + "/pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
