#!/usr/bin/python3
"""bench_ack.py -- the cost of `reel serve --ack replica` against `--ack local` on one cell
(docs/CLUSTER.md "Acknowledged by a replica", docs/BENCHMARKS.md "Acknowledged by a replica").

    python3 bench/bench_ack.py BUILD_DIR [--seconds S] [--rounds R]

Starts a PostgreSQL 15 primary with a synchronous standby (tests/pglib.py's PgPair:
synchronous_commit on, synchronous_standby_names '*', fsync on) and, in the same run, one
cell (`reel serve --sync full` with a one-cell cluster map, its own data directory each
time; tests/cluster/cluster.py's Cluster and Sinks) in each mode:
  local    --ack local, no sink (today's path);
  replica  --ack replica --replica-wait-ms 60000, `reel sink postgres` following it into
           the pair, so every answer waits for the sink's commit on the primary and the
           standby's flush.
wrk (2 threads, S seconds, default 8) then loads each with the two shapes of
bench/bench_cluster.py, each at two concurrencies:
  batched  100 x 1 KiB events per POST (NDJSON), 16 and 64 connections
  single   one ~1 KiB event per POST, 64 and 256 connections
(a client waits for each answer, so a mode whose answers take longer needs more
connections in flight for the same rate: the second concurrency shows how much of the
cost is latency rather than capacity). The modes alternate R times (default 2) so that both see the same machine; the table gives
the median events/s of each, the ratio replica/local, wrk's p50 and p99 latency, and the
sink's mean events per PostgreSQL write transaction (transaction ids the primary gave
out; before 2026-12-05 12:05 UTC this counted xact_commit, which also counts the sink's
read-only replication check after each page: about half). Numbers only, never pass/fail. Needs wrk and
the Debian postgresql-15 package (scripts/deps.sh test).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from pglib import PgPair, make_base  # noqa: E402
from bench_cluster import pg_counters, scripts, wrk  # noqa: E402
import cluster  # noqa: E402 (tests/cluster/cluster.py, on the path through bench_cluster)
from cluster import Client, Cluster, Sinks  # noqa: E402


def counter(port, name):
    cl = Client(port)
    st, _, body = cl.request("GET", "/metrics")
    cl.close()
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


SHAPES = (("batched16", "batched", 16, 100), ("batched64", "batched", 64, 100),
          ("single64", "single", 64, 1), ("single256", "single", 256, 1))
LABELS = {"batched16": "batched (100 x 1 KiB per POST), 16 conns",
          "batched64": "batched (100 x 1 KiB per POST), 64 conns",
          "single64": "single-event, 64 conns", "single256": "single-event, 256 conns"}


def run_mode(mode, pair, schema, s, seconds):
    """One cell (a one-cell cluster map, no nginx) under --ack 'mode'; under replica with
    its sink (tests/cluster/cluster.py's Cluster and Sinks, as bench_cluster.py)."""
    with tempfile.TemporaryDirectory(prefix="reel-bench-ack.") as tmp:
        c = Cluster(tmp, cells=1, spares=0, sync="full",
                    extra=["--ack", mode, "--replica-wait-ms", "60000"])
        sinks = Sinks(c, pair.dsn, schema, extra=["--quiet"], start=False)
        try:
            c.start_cell("c1")
            port = c.ports["c1"]
            if mode == "replica":
                sinks.start("c1")
                sinks.wait_replicated("c1", timeout=20)
            url = "http://127.0.0.1:%d" % port
            out = {}
            for shape, script, conns, factor in SHAPES:
                tx0 = pg_counters(pair)[0]
                r = wrk(url, conns, s[script], seconds)
                tx1 = pg_counters(pair)[0]
                r["rate"] *= factor
                # events per PostgreSQL write transaction (the sink's pages)
                r["per_tx"] = r["rate"] * seconds / max(1, tx1 - tx0) if mode == "replica" else 0
                out[shape] = r
            if mode == "replica":
                out["refused"] = counter(port, 'reel_ack_replica_total{outcome="refused"}')
            return out
        finally:
            sinks.stop(timeout=30)
            c.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    cluster.REEL_BIN = os.path.abspath(os.path.join(a.build, "reel"))
    base = make_base("reel-bench-ack-pg.")
    pair = PgPair(base)
    load = os.getloadavg()
    res = {"local": [], "replica": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s = scripts(tmp)
            for i in range(a.rounds):
                for mode in ("local", "replica"):
                    res[mode].append(run_mode(mode, pair, "b%d_%d" % (os.getpid(), i),
                                              s, a.seconds))
    finally:
        pair.stop()
        shutil.rmtree(base, ignore_errors=True)

    def med(mode, shape, key):
        return statistics.median(r[shape][key] for r in res[mode])

    print("| shape | --ack local events/s | --ack replica events/s | replica/local | "
          "p50 / p99 ms, local | p50 / p99 ms, replica | events per PG write transaction |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for shape, label in ((k[0], LABELS[k[0]]) for k in SHAPES):
        lo, rep = med("local", shape, "rate"), med("replica", shape, "rate")
        print("| %s | {:,.0f} | {:,.0f} | %.2fx | %.1f / %.1f | %.1f / %.1f | %.0f |".format(lo, rep)
              % (label, rep / lo if lo else 0, med("local", shape, "p50"),
                 med("local", shape, "p99"), med("replica", shape, "p50"),
                 med("replica", shape, "p99"), med("replica", shape, "per_tx")))
    bad = sum(r[sh[0]]["bad"] for m in res for r in res[m] for sh in SHAPES)
    print("\n(medians of %d alternating rounds, %d s each; --sync full; PostgreSQL 15 primary "
          "+ synchronous standby on the same machine; %d non-2xx answers; machine: %d cores; "
          "load average %.1f / %.1f / %.1f at the start, %.1f at the end)"
          % (a.rounds, a.seconds, bad, os.cpu_count(), load[0], load[1], load[2],
             os.getloadavg()[0]))


if __name__ == "__main__":
    main()
