"""bench_cluster.py -- append throughput of 1 cell vs 3 cells behind nginx (docs/CLUSTER.md,
docs/BENCHMARKS.md "Cells behind nginx").

    python3 bench/bench_cluster.py [--quick] [--seconds S] [--sync full|none]

For each topology -- one cell direct (no nginx), one cell behind nginx, three cells behind
nginx -- starts the cells (`reel serve --sync full`, or none: the CPU ceiling, not durable;
each on its own data directory) and
nginx (configured by `reel cluster nginx-conf`, 2 workers) on free loopback ports, as
tests/cluster/ does, and runs wrk (2 threads) for S seconds (default 10, --quick 3):
  batched  100 x 1 KiB events per POST (NDJSON), 16 connections
  single   one ~1 KiB event per POST, 64 connections
Each request goes to one of 1,000 sessions (a counter per wrk connection), so the load
spreads over the cells as real sessions would. Prints a Markdown table of events/s, with
the events per commit and the mean commit time (write + fsync) the cells report in /metrics
during each run (what bounds a durable single-event load), and the CPU the cells and nginx
used (cores: CPU seconds per second of the run, from /proc).
Numbers only, never pass/fail. Needs wrk and nginx (Debian packages; `make deps`).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "cluster"))
from cluster import Client, Cluster  # noqa: E402


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
    r = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", "%ds" % seconds, "-s", script, url],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"Requests/sec:\s+([0-9.]+)", r.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if bad:
        print("warning: %s non-2xx answers at %s" % (bad.group(1), url), file=sys.stderr)
    return float(m.group(1)) if m else 0.0


def store_counters(c):
    """Commits, events and seconds in commits, summed over the cells (their /metrics)."""
    tot = [0.0, 0.0, 0.0]
    for cid in c.ids:
        st, _, body = Client(c.ports[cid]).request("GET", "/metrics")
        for line in body.decode().splitlines():
            for i, name in enumerate(("reel_store_commits_total ", "reel_store_events_total ",
                                      "reel_store_commit_seconds_sum ")):
                if line.startswith(name):
                    tot[i] += float(line.split()[1])
    return tot


def cpu_seconds(pids):
    """User + system CPU seconds of 'pids' and of their children (nginx's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    want, total = set(pids), 0
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


def run(c, url, conns, script, seconds, factor):
    cells = [p.pid for p in c.procs.values()]
    before, cb, nb = store_counters(c), cpu_seconds(cells), cpu_seconds([c.nginx.pid]) if c.nginx else 0
    rate = wrk(url, conns, script, seconds) * factor
    after, ca, na = store_counters(c), cpu_seconds(cells), cpu_seconds([c.nginx.pid]) if c.nginx else 0
    commits, events, secs = (a - b for a, b in zip(after, before))
    return {"rate": rate, "per_commit": events / commits if commits else 0,
            "commit_ms": 1000 * secs / commits if commits else 0,
            "cells_cpu": (ca - cb) / seconds, "nginx_cpu": (na - nb) / seconds}


def measure(cells, behind_nginx, seconds, s, sync):
    with tempfile.TemporaryDirectory(prefix="reel-bench-cluster.") as tmp:
        c = Cluster(tmp, cells=cells, spares=0, sync=sync)
        c.nginx_workers = 2
        try:
            for cid in c.ids:
                c.start_cell(cid)
            if behind_nginx:
                c.start_nginx()
                port = c.nginx_port
            else:
                port = c.ports[c.ids[0]]
            url = "http://127.0.0.1:%d" % port
            return {"batched": run(c, url, 16, s["batched"], seconds, 100),
                    "single": run(c, url, 64, s["single"], seconds, 1)}
        finally:
            c.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--sync", choices=("full", "none"), default="full")
    a = ap.parse_args()
    seconds = a.seconds or (3 if a.quick else 10)
    with tempfile.TemporaryDirectory() as tmp:
        s = scripts(tmp)
        load = os.getloadavg()[0]
        rows = [("1 cell, direct", measure(1, False, seconds, s, a.sync)),
                ("1 cell behind nginx", measure(1, True, seconds, s, a.sync)),
                ("3 cells behind nginx", measure(3, True, seconds, s, a.sync))]
    base = rows[1][1]
    print("| topology | batched events/s (100 x 1 KiB per POST, 16 conns) | "
          "single-event events/s (64 conns) |")
    print("| --- | ---: | ---: |")
    for name, r in rows:
        cells = [("{:,.0f}".format(r[k]["rate"]) + " (%.2fx); %.0f events/commit, %.1f ms/commit; "
                  "CPU: cells %.2f, nginx %.2f cores" %
                  (r[k]["rate"] / base[k]["rate"] if base[k]["rate"] else 0, r[k]["per_commit"],
                   r[k]["commit_ms"], r[k]["cells_cpu"], r[k]["nginx_cpu"])) for k in ("batched", "single")]
        print("| %s | %s | %s |" % (name, cells[0], cells[1]))
    print("\n(x: relative to 1 cell behind nginx; --sync %s; %d s per run; machine: %d cores; "
          "load average %.1f at the start)" % (a.sync, seconds, os.cpu_count(), load))


if __name__ == "__main__":
    main()
