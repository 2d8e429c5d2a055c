#!/usr/bin/python3
"""bench_move.py -- `reel cluster move` under load: how long it takes and how long writes
to the moved shards pause (docs/BENCHMARKS.md "Moving shards").

    bench/bench_move.py BUILD_DIR [--sessions N] [--events E] [--ack local|replica] [--shards S]

N and E default to 500 and 100 (two groups: 100,000 events), S to 5.

Starts three cells and a spare (`reel serve --sync full`, 64 virtual shards) behind a real
nginx, a PostgreSQL 15 primary with a synchronous standby (tests/pglib.py) and a sink per
cell; preloads two groups of N sessions of E events (about 300 bytes of JSON each, batches
of 100), the first group's ids in c1's first S shards, the second's in its next S; then,
while 4 clients append one event at a time to those sessions through nginx (retrying on
421/503 with the same event id), moves the first S shards to the spare as a stop-and-copy
(`--ahead-rounds 0`: writes wait for the whole copy) and then the next S with the default
copy ahead. Prints per move: its wall time, its own "writes paused" (from handing over to
serving), the longest gap between two acknowledgements of the moved sessions seen by the
clients, and the peer measured in the same run just before: PostgreSQL reading the same
rows (COPY of the moved sessions' events to /dev/null through psql), what any move through
PostgreSQL must at least read.
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
    ap.add_argument("--sessions", type=int, default=500)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--ack", default="replica", choices=["local", "replica"])
    ap.add_argument("--shards", type=int, default=5)
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
        shards = [s for s in range(64) if m.owner[s] == "c1"][:2 * a.shards]
        halves = [shards[:a.shards], shards[a.shards:]]  # stop-and-copy, then copy ahead
        groups = [[], []]
        i = 0
        while min(len(g) for g in groups) < a.sessions:
            sid = "bm-%06d" % i
            i += 1
            sh = m.shard(sid)
            for k in (0, 1):
                if sh in halves[k] and len(groups[k]) < a.sessions:
                    groups[k].append(sid)
        t0 = time.time()
        for g in groups:
            preload(cl, c.ports["c1"], g, a.events)
        print("preloaded 2 x %d sessions x %d events into c1 in %.1f s" % (
            a.sessions, a.events, time.time() - t0))
        wait_sink(pair, schema, "c1", c.ports["c1"])
        acks = {0: [], 1: []}
        stop = threading.Event()
        ts = []
        for k in (0, 1):
            ts += [threading.Thread(target=writer, args=(cl, c.nginx_port, groups[k][j::2],
                                                         a.events, acks[k], stop))
                   for j in range(2)]
        for t in ts:
            t.start()
        time.sleep(2)
        rows = []
        for k, rounds in ((0, "0"), (1, "4")):
            peer = pg_read(pair, schema, groups[k])
            spec = ",".join(str(x) for x in halves[k])
            nginx_dir = os.path.join(tmp, "nginx")
            t_move = time.time()
            r = subprocess.run([cl.REEL_BIN, "cluster", "move", spec, "--to", "spare1", "--map",
                                c.map_path, "--dsn", pair.dsn, "--schema", schema, "--ack",
                                a.ack, "--ahead-rounds", rounds,
                                "--nginx-conf", os.path.join(nginx_dir, "reel.conf"),
                                "--nginx-listen", "127.0.0.1:%d" % c.nginx_port,
                                "--reload-command", "kill -HUP %d" % c.nginx.pid],
                               capture_output=True, text=True, env=env)
            t_done = time.time()
            print(r.stderr.strip())
            if r.returncode:
                raise SystemExit("the move failed")
            time.sleep(2)
            times = sorted(t for t in acks[k] if t_move - 1 <= t <= t_done + 2)
            gap = max((y - x for x, y in zip(times, times[1:])), default=0.0)
            summary = r.stdout.strip()
            total = int(summary.split(" sessions, ")[1].split(" events")[0])
            paused = float(summary.split("paused ")[1].split(" s")[0])
            rows.append((a.sessions, total, a.ack, rounds, t_done - t_move, paused, gap, peer))
            print(summary)
        stop.set()
        for t in ts:
            t.join()
        load = os.getloadavg()
        print()
        print("| sessions | events moved | --ack | --ahead-rounds | move (wall) | writes paused "
              "(move) | longest ack gap (clients) | PostgreSQL reads the rows (peer) | "
              "pause / peer |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for x in rows:
            print("| %d | %d | %s | %s | %.2f s | %.2f s | %.2f s | %.2f s | %.1fx |" % (
                x + (x[5] / x[7] if x[7] else 0,)))
        print()
        print("load average at the end: %.2f %.2f %.2f" % load)
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
