#!/usr/bin/python3
"""bench_restore.py -- `reel cluster restore` speed (docs/BENCHMARKS.md "Restore").

    bench/bench_restore.py BUILD_DIR [--events N] [--sessions S]

Starts a PostgreSQL 15 cluster (initdb, pg_ctl; 127.0.0.1, a free port; fsync and
synchronous_commit on, the defaults) and `reel serve --sync none` in a temporary directory,
appends N events (about 400 bytes of JSON each, 100 per append, over S sessions), copies
them with `reel sink postgres --once`, then times, in the same run:
  1. `reel cluster restore`: the data directory rebuilt from PostgreSQL (one snapshot,
     every chain checked, a final `reel verify`, one fsync), events/s;
  2. the peer: `reel export` of the same store and `reel import` of it into an empty
     directory (the other way to rebuild a store: hashes recomputed), events/s;
  3. `reel sink postgres --once` (the copy the other way), events/s, as measured above.
Prints a Markdown table with the ratio restore / (export + import). Numbers only, never
pass/fail. Needs the Debian postgresql-15 package (scripts/deps.sh test).
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


def event_batch(k, n):
    return json.dumps([{"type": "item.delta", "source": "agent",
                        "data": {"delta": "x" * 300, "k": k, "j": j}} for j in range(n)])


def timed(cmd, **kw):
    t0 = time.time()
    subprocess.run(cmd, check=True, timeout=3600, **kw)
    return time.time() - t0


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--sessions", type=int, default=100)
    a = ap.parse_args()
    reel = os.path.abspath(os.path.join(a.build, "reel"))
    base = tempfile.mkdtemp(prefix="reel-bench-restore-")
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
                            "--sync", "none"], stderr=subprocess.DEVNULL)
    say = lambda m: print("bench_restore: " + m, file=sys.stderr, flush=True)
    try:
        for _ in range(200):
            try:
                if req(port, "GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        say("appending %d events over %d sessions" % (a.events, a.sessions))
        for i in range(a.events // 100):
            st, _ = req(port, "POST", "/v1/sessions/s%d/events" % (i % a.sessions),
                        event_batch(i, 100))
            assert st == 200
        n = (a.events // 100) * 100
        say("copying them with reel sink postgres --once")
        t_sink = timed([reel, "sink", "postgres", "--server", "http://127.0.0.1:%d" % port,
                        "--dsn", dsn, "--cell", "c1", "--once", "--quiet"])
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)
        say("reel cluster restore")
        t_restore = timed([reel, "cluster", "restore", "--cell", "c1", "--dsn", dsn,
                           "--data", os.path.join(base, "restored")], stdout=subprocess.DEVNULL)
        say("peer: reel export | reel import")
        exp = os.path.join(base, "export.zst")
        t_export = timed([reel, "export", "--data", data, "-o", exp, "--quiet"])
        t_import = timed([reel, "import", "--data", os.path.join(base, "imported"), "--quiet",
                          exp])
        load = os.getloadavg()
        rows = [
            ("`reel cluster restore` (%d events, %d sessions)" % (n, a.sessions),
             "%.0f events/s (%.1f s)" % (n / t_restore, t_restore)),
            ("peer: `reel export` + `reel import` of the same store",
             "%.0f events/s (%.1f s + %.1f s)" % (n / (t_export + t_import), t_export,
                                                   t_import)),
            ("ratio restore / (export + import)", "%.2fx" % ((t_export + t_import) / t_restore)),
            ("`reel sink postgres --once` (the copy into PostgreSQL)",
             "%.0f events/s (%.1f s)" % (n / t_sink, t_sink)),
        ]
        print("| measure | result |\n| --- | --- |")
        for r in rows:
            print("| %s | %s |" % r)
        print("\nload average at the end: %.2f %.2f %.2f (2 cores shared with other work)"
              % load)
    finally:
        if srv.poll() is None:
            srv.kill()
        subprocess.run(prefix + [PG_BIN + "/pg_ctl", "-D", pgdata, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
