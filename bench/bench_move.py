#!/usr/bin/python3
"""bench_move.py -- `reel cluster move` under load: how long it takes and how long writes
to the moved shards pause (docs/BENCHMARKS.md "Moving shards").

    bench/bench_move.py BUILD_DIR [--sessions N] [--events E] [--ack local|replica] [--shards S]

Starts three cells and a spare (`reel serve --sync full`, 64 virtual shards) behind a real
nginx, a PostgreSQL 15 primary with a synchronous standby (tests/pglib.py) and a sink per
cell; preloads N sessions of E events (about 300 bytes of JSON each, batches of 100) whose
ids all hash into c1's first S shards; then, while 4 clients append one event at a time to
those sessions through nginx (retrying on 421/503 with the same event id), runs
`reel cluster move` of those shards to the spare. Prints: the move's wall time, its own
"writes paused" (from handing over to serving), the longest gap between two
acknowledgements of the moved sessions seen by the clients, and beside it, measured in the
same run, the peer: PostgreSQL reading the same rows (COPY of the moved sessions' events
to /dev/null through psql), the floor under any move that goes through PostgreSQL.
Numbers only, never pass/fail.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--ack", default="replica", choices=["local", "replica"])
    ap.add_argument("--shards", type=int, default=10)
    a = ap.parse_args()
    os.environ["REEL_BIN"] = os.path.abspath(os.path.join(a.build, "reel"))
    import cluster as cl  # noqa: E402 (REEL_BIN first)
    from pglib import PgPair, make_base  # noqa: E402
    base = make_base("reel-bench-move-")
    pair = PgPair(base)
    tmp = os.path.join(base, "cells")
    os.makedirs(tmp)
    schema = "bench_move"
    c = cl.Cluster(tmp, cells=3, spares=1, shards=64, sync="full",
                   extra=["--ack", a.ack, "--replica-wait-ms", "5000"])
    sinks = []
    try:
        c.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        for cell in c.ids:
            sinks.append(subprocess.Popen(
                [cl.REEL_BIN, "sink", "postgres", "-q", "--server",
                 "http://127.0.0.1:%d" % c.ports[cell], "--dsn", pair.dsn, "--schema", schema,
                 "--cell", cell], env=env))
        time.sleep(2)
        m = c.map
        shards = [s for s in range(64) if m.owner[s] == "c1"][:a.shards]
        moved = []
        i = 0
        while len(moved) < a.sessions:
            sid = "bm-%06d" % i
            i += 1
            if m.shard(sid) in shards:
                moved.append(sid)
        t0 = time.time()
        preload(cl, c.ports["c1"], moved, a.events)
        print("preloaded %d sessions x %d events into c1 in %.1f s" % (
            len(moved), a.events, time.time() - t0))
        wait_sink(pair, schema, "c1", c.ports["c1"])
        acks = []
        stop = threading.Event()
        ts = [threading.Thread(target=writer, args=(cl, c.nginx_port, moved[k::4], a.events,
                                                    acks, stop)) for k in range(4)]
        for t in ts:
            t.start()
        time.sleep(2)
        spec = "%d-%d" % (min(shards), max(shards))
        nginx_dir = os.path.join(tmp, "nginx")
        t_move = time.time()
        r = subprocess.run([cl.REEL_BIN, "cluster", "move", spec, "--to", "spare1", "--map",
                            c.map_path, "--dsn", pair.dsn, "--schema", schema, "--ack", a.ack,
                            "--nginx-conf", os.path.join(nginx_dir, "reel.conf"),
                            "--nginx-listen", "127.0.0.1:%d" % c.nginx_port,
                            "--reload-command", "kill -HUP %d" % c.nginx.pid],
                           capture_output=True, text=True, env=env)
        t_done = time.time()
        time.sleep(2)
        stop.set()
        for t in ts:
            t.join()
        if r.returncode:
            print(r.stderr)
            raise SystemExit("the move failed")
        times = sorted(t for t in acks if t_move - 1 <= t <= t_done + 2)
        gap = max((b - x for x, b in zip(times, times[1:])), default=0.0)
        peer = pg_read(pair, schema, moved)
        load = os.getloadavg()
        print(r.stderr.strip())
        print()
        print("| sessions | events moved | --ack | move (wall) | writes paused (move) | "
              "longest ack gap (clients) | PostgreSQL reads the rows (peer) | move / peer |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        summary = r.stdout.strip()
        total = int(summary.split(" sessions, ")[1].split(" events")[0])
        paused = float(summary.split("paused ")[1].split(" s")[0])
        print("| %d | %d | %s | %.2f s | %.2f s | %.2f s | %.2f s | %.1fx |" % (
            len(moved), total, a.ack, t_done - t_move, paused, gap, peer,
            (t_done - t_move) / peer if peer else 0))
        print()
        print("load average at the end: %.2f %.2f %.2f; %s" % (load + (summary,)))
    finally:
        for p in sinks:
            p.terminate()
            p.wait()
        c.stop()
        pair.stop()
        shutil.rmtree(base, ignore_errors=True)


def preload(cl, port, sessions, events):
    client = cl.Client(port)
    text = "x" * 200
    for sid in sessions:
        for k in range(0, events, 100):
            batch = [{"type": "note", "event_id": "p%d" % j, "data": {"text": text, "j": j}}
                     for j in range(k, min(events, k + 100))]
            st, _, b = client.request("POST", "/v1/sessions/%s/events"
                                      % urllib.parse.quote(sid, safe="~"), json.dumps(batch),
                                      {"Content-Type": "application/json"})
            assert st == 200, b
    client.close()


def wait_sink(pair, schema, cell, port):
    import cluster as cl
    client = cl.Client(port)
    _, _, b = client.request("GET", "/v1/sinks")
    tail = json.loads(b)["tail"] if b"tail" in b else None
    end = time.time() + 300
    while time.time() < end:
        rows = pair.primary.query("SELECT position FROM %s.sink WHERE cell = '%s'" % (schema, cell))
        if rows and (tail is None or rows[0]["position"] >= tail):
            return
        time.sleep(0.2)


def writer(cl, port, sessions, events, acks, stop):
    client = cl.Client(port)
    n = {s: events for s in sessions}
    i = 0
    while not stop.is_set():
        sid = sessions[i % len(sessions)]
        i += 1
        body = json.dumps({"type": "note", "event_id": "w%d" % n[sid], "data": {"n": n[sid]}})
        st, _, _ = client.request("POST", "/v1/sessions/%s/events"
                                  % urllib.parse.quote(sid, safe="~"), body,
                                  {"Content-Type": "application/json"})
        if st == 200:
            acks.append(time.time())
            n[sid] += 1
        else:
            time.sleep(0.005)
    client.close()


def pg_read(pair, schema, sessions):
    ids = ",".join("'%s'" % s for s in sessions)
    t0 = time.time()
    subprocess.run(["psql", pair.dsn, "-X", "-q", "-c",
                    "\\copy (SELECT position, sequence, time_ms, chain_hash, body_hash, body, id "
                    "FROM %s.events WHERE cell = 'c1' AND session_id IN (%s) ORDER BY position) "
                    "TO '/dev/null'" % (schema, ids)], check=True)
    return time.time() - t0


if __name__ == "__main__":
    main()
