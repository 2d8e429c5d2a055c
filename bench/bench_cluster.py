"""bench_cluster.py -- append throughput of 1 cell vs 3 cells behind nginx, under `--ack local`
and `--ack replica` (docs/CLUSTER.md, docs/BENCHMARKS.md "Cells behind nginx").

    python3 bench/bench_cluster.py [--quick] [--seconds S] [--rounds R] [--sync full|none]
                                   [--ack local|replica|both]

Each measurement starts its topology afresh -- cells (`reel serve --sync full`, or none: the
CPU ceiling, not durable; each on its own data directory, all on this machine's one disk)
and nginx (configured by `reel cluster nginx-conf`, 2 workers) on free loopback ports, as
tests/cluster/ does -- and runs wrk (2 threads) for S seconds (default 10, --quick 3):
  batched  100 x 1 KiB events per POST (NDJSON), 16 connections
  single   one ~1 KiB event per POST, 64 connections
Each request goes to one of 1,000 sessions (picked at random per request), so the load
spreads over the cells as real sessions would.

Topologies: 1 cell behind nginx and 3 cells behind nginx; with --ack local alone also 1 cell
direct (no nginx). --ack replica starts one PostgreSQL 15 primary with a synchronous standby
for the whole run (tests/pglib.py's PgPair: synchronous_commit on, fsync on) and, for each
measurement, the cells with `--ack replica --replica-wait-ms 60000` and one `reel sink
postgres` per cell into it (tests/cluster/cluster.py's Sinks, a fresh schema each time): an
answer then waits for the sink's PostgreSQL commit and the standby's flush. --ack local
runs no sink (the path without a replica). --ack both measures both in the same run.

The configurations alternate R times (default 2; every other round in reverse order) so
that all see the same machine. Prints a Markdown table of the medians of events/s with the
ratios 3 cells / 1 cell and replica / local (medians of the ratios of each round), then a
table of what bounds them: the events per commit and the mean commit time (write + fsync)
the cells report in /metrics during each run (and their commits per second), the sinks'
events per PostgreSQL write transaction (transaction ids the primary gave out), the
primary's WAL fsyncs per second and WAL bytes per event (pg_stat_wal), wrk's p50 / p99
latency, and the CPU used by
the cells, nginx, the sinks and PostgreSQL (both servers) in cores: CPU seconds per second
of the run, from /proc. Numbers only, never pass/fail. Needs wrk, nginx and (for replica)
the Debian postgresql-15 package (scripts/deps.sh test).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from cluster import Client, Cluster, Sinks  # noqa: E402

SHAPES = (("batched", 16, 100), ("single", 64, 1))  # (script, connections, events per POST)


def lua(s):
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def scripts(tmp):
    line = json.dumps({"type": "bench", "data": {"pad": "x" * 990}})
    body = {"batched": "\n".join([line] * 100) + "\n", "single": line}
    ctype = {"batched": "application/x-ndjson", "single": "application/json"}
    out = {}
    for k in body:
        path = os.path.join(tmp, k + ".lua")
        with open(path, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "%s"\nwrk.body = "%s"\n'
                    'request = function()\n'
                    '  return wrk.format(nil, "/v1/sessions/b-" .. (math.random(0, 999)) .. "/events")\n'
                    'end\n' % (ctype[k], lua(body[k])))
        out[k] = path
    return out


def wrk(url, conns, script, seconds):
    """Requests/s, p50 and p99 latency (ms) and the non-2xx count of one wrk run."""
    r = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", "%ds" % seconds, "--latency",
                        "-s", script, url], capture_output=True, text=True, timeout=seconds + 90)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", r.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if bad:
        print("warning: %s non-2xx answers at %s" % (bad.group(1), url), file=sys.stderr)

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s)\s*$" % p, r.stdout, re.M)
        if not m:
            return 0.0
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]

    return {"rate": float(rate.group(1)) if rate else 0.0, "p50": pct(50), "p99": pct(99),
            "bad": int(bad.group(1)) if bad else 0}


def store_counters(c):
    """Commits, events and seconds in commits, summed over the cells (their /metrics)."""
    tot = [0.0, 0.0, 0.0]
    for cid in c.procs:
        cl = Client(c.ports[cid])
        st, _, body = cl.request("GET", "/metrics")
        cl.close()
        for line in body.decode().splitlines():
            for i, name in enumerate(("reel_store_commits_total ", "reel_store_events_total ",
                                      "reel_store_commit_seconds_sum ")):
                if line.startswith(name):
                    tot[i] += float(line.split()[1])
    return tot


def cpu_seconds(pids):
    """User + system CPU seconds of 'pids' and of their children (nginx's workers,
    PostgreSQL's backends, WAL sender and receiver)."""
    tick = os.sysconf("SC_CLK_TCK")
    want, total = set(p for p in pids if p), 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d) in want or int(st[1]) in want:  # st[1]: the parent's pid
            total += int(st[11]) + int(st[12])
    return total / tick


def pg_counters(pair):
    """The primary's next transaction id (one is given to each transaction that writes: the
    sinks' pages, not their read-only replication checks), WAL syncs (its fsyncs) and WAL
    bytes."""
    r = pair.primary.query(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid, wal_sync, "
        "wal_bytes FROM pg_stat_wal")[0]
    return (r["xid"], r["wal_sync"], float(r["wal_bytes"]))


class Probe:
    """What the machine did during one wrk run: store counters, PostgreSQL commits, CPU."""

    def __init__(self, c, sinks, pair):
        self.c, self.pair = c, pair
        self.groups = {"cells": lambda: [p.pid for p in c.procs.values()],
                       "nginx": lambda: [c.nginx.pid] if c.nginx else [],
                       "sinks": lambda: sinks.pids() if sinks else [],
                       "pg": lambda: [pair.primary.pid(), pair.standby.pid()] if sinks else []}

    def pg_counters(self):
        return pg_counters(self.pair) if self.pair else (0, 0, 0)

    def snap(self):
        return (store_counters(self.c), self.pg_counters(),
                {g: cpu_seconds(f()) for g, f in self.groups.items()})

    def delta(self, a, b, seconds, rate):
        commits, events, secs = (y - x for x, y in zip(a[0], b[0]))
        tx, syncs, wal = (y - x for x, y in zip(a[1], b[1]))
        n = rate * seconds
        out = {"per_commit": events / commits if commits else 0,
               "commit_ms": 1000 * secs / commits if commits else 0,
               "commits_s": commits / seconds,
               "per_tx": n / tx if tx else 0, "syncs_s": syncs / seconds,
               "wal_per_event": wal / n if n else 0}
        out.update({g: (b[2][g] - a[2][g]) / seconds for g in self.groups})
        return out


def measure(cells, behind_nginx, ack, seconds, s, sync, pair, schema):
    with tempfile.TemporaryDirectory(prefix="reel-bench-cluster.") as tmp:
        extra = ["--ack", ack] + (["--replica-wait-ms", "60000"] if ack == "replica" else [])
        c = Cluster(tmp, cells=cells, spares=0, sync=sync, extra=extra)
        c.nginx_workers = 2
        sinks = Sinks(c, pair.dsn, schema, extra=["--quiet"], start=False) if ack == "replica" else None
        try:
            for cid in c.ids:
                c.start_cell(cid)
            if sinks:
                for cid in c.ids:
                    sinks.start(cid)
                for cid in c.ids:
                    sinks.wait_replicated(cid)
            if behind_nginx:
                c.start_nginx()
                port = c.nginx_port
            else:
                port = c.ports[c.ids[0]]
            url = "http://127.0.0.1:%d" % port
            probe, out = Probe(c, sinks, pair if sinks else None), {}
            for shape, conns, factor in SHAPES:
                before = probe.snap()
                r = wrk(url, conns, s[shape], seconds)
                r["rate"] *= factor
                r.update(probe.delta(before, probe.snap(), seconds, r["rate"]))
                out[shape] = r
            return out
        finally:
            if sinks:
                sinks.stop()
            c.stop()


TOPOLOGIES = {"direct1": (1, False, "1 cell, direct"), "nginx1": (1, True, "1 cell behind nginx"),
              "nginx3": (3, True, "3 cells behind nginx")}


def configurations(acks):
    topo = (["direct1"] if acks == ["local"] else []) + ["nginx1", "nginx3"]
    return [(t, a) for t in topo for a in acks]


def med(res, key, shape, field):
    return statistics.median(r[shape][field] for r in res[key])


def ratio(res, num, den, shape):
    """Median over the rounds of num/den measured in the same round, and the list of them."""
    rs = [n[shape]["rate"] / d[shape]["rate"] if d[shape]["rate"] else 0
          for n, d in zip(res[num], res[den])]
    return statistics.median(rs), rs


def fmt_ratio(res, num, den, shape):
    if num not in res or den not in res or num == den:
        return "-"
    m, rs = ratio(res, num, den, shape)
    return "**%.2fx**" % m + (" (%s)" % ", ".join("%.2f" % x for x in rs) if len(rs) > 1 else "")


def report(res, acks, a, load, load_end):
    print("| topology | --ack | batched events/s | 3 cells / 1 cell | replica / local | "
          "single-event events/s | 3 cells / 1 cell | replica / local |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t, ack in configurations(acks):
        key, cols = (t, ack), []
        for shape, _, _ in SHAPES:
            cols.append("{:,.0f}".format(med(res, key, shape, "rate")))
            cols.append(fmt_ratio(res, ("nginx3", ack), ("nginx1", ack), shape) if t == "nginx3" else "-")
            cols.append(fmt_ratio(res, (t, "replica"), (t, "local"), shape) if ack == "replica" else "-")
        print("| %s | %s | %s |" % (TOPOLOGIES[t][2], ack, " | ".join(cols)))
    print("\n| topology | --ack | shape | cells: commits/s, events/commit, ms/commit | "
          "PostgreSQL: events/write transaction, WAL fsyncs/s, WAL bytes/event | p50 / p99 ms | "
          "CPU cores: cells, nginx, sinks, PostgreSQL |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for t, ack in configurations(acks):
        for shape, conns, _ in SHAPES:
            m = lambda f: med(res, (t, ack), shape, f)  # noqa: E731
            pg = ("%.0f, %.0f, %.0f" % (m("per_tx"), m("syncs_s"), m("wal_per_event"))
                  if ack == "replica" else "-")
            print("| %s | %s | %s, %d conns | %.0f, %.0f, %.1f | %s | %.1f / %.1f | "
                  "%.2f, %.2f, %.2f, %.2f |"
                  % (TOPOLOGIES[t][2], ack, shape, conns, m("commits_s"), m("per_commit"),
                     m("commit_ms"), pg, m("p50"), m("p99"), m("cells"), m("nginx"),
                     m("sinks"), m("pg")))
    bad = sum(r[sh]["bad"] for v in res.values() for r in v for sh, _, _ in SHAPES)
    print("\n(medians of %d alternating rounds, ratios per round in brackets; --sync %s; %d s "
          "per wrk run; %d non-2xx answers; machine: %d cores; load average %.1f / %.1f / %.1f "
          "at the start, %.1f at the end)" % (a.rounds, a.sync, a.seconds, bad, os.cpu_count(),
                                            load[0], load[1], load[2], load_end))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 s wrk runs")
    ap.add_argument("--seconds", type=int, help="seconds per wrk run (default 10, --quick 3)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    ap.add_argument("--sync", choices=("full", "none"), default="full",
                    help="the cells' --sync (default full)")
    ap.add_argument("--ack", choices=("local", "replica", "both"), default="local",
                    help="the cells' --ack; replica starts PostgreSQL and a sink per cell")
    a = ap.parse_args()
    a.seconds = a.seconds or (3 if a.quick else 10)
    acks = ["local", "replica"] if a.ack == "both" else [a.ack]
    pair, base = None, None
    if "replica" in acks:
        from pglib import PgPair, available, make_base
        if available():
            sys.exit("bench_cluster.py: " + available())
        base = make_base("reel-bench-cluster-pg.")
        pair = PgPair(base)
    load = os.getloadavg()
    res = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s = scripts(tmp)
            for i in range(a.rounds):
                order = configurations(acks)
                for j, (t, ack) in enumerate(order if i % 2 == 0 else order[::-1]):
                    cells, nginx, name = TOPOLOGIES[t]
                    print("round %d: %s, --ack %s" % (i + 1, name, ack), file=sys.stderr)
                    res.setdefault((t, ack), []).append(
                        measure(cells, nginx, ack, a.seconds, s, a.sync, pair,
                                "bc%d_%d_%d" % (os.getpid(), i, j)))
    finally:
        if pair:
            pair.stop()
            shutil.rmtree(base, ignore_errors=True)
    report(res, acks, a, load, os.getloadavg()[0])


if __name__ == "__main__":
    main()
