#!/usr/bin/env python3
"""bench_cluster_reads.py [--events N] [BUILD] -- cluster-wide reads (docs/CLUSTER.md
"Cluster-wide reads"): how fast `reel cluster events` reads every event of three cells under
a vector cursor, against reading one cell's feed alone with the same command (a map holding
only that cell), in the same run; and the Python ClusterReader over the three cells.

It starts three cells (tests/cluster/cluster.py, --sync none, no nginx needed: each cell is
read at its own address), appends N events (default 300,000; ~200 bytes each) over 3,000
sessions in batches of 100, then times the readers in --rounds interleaved rounds (5).
Prints one line per reader: events, the median and the best run (seconds, events/s, and
the ratio to one cell alone's median or best). The machine's other work makes single runs
vary several-fold: the best runs say what the readers can do, the medians what they did.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from cluster import Client, Cluster  # noqa: E402
from reel_client import ClusterReader  # noqa: E402


def load(cluster, n):
    clients = {c: Client(cluster.ports[c]) for c in cluster.ids}
    sessions = ["bench-%04d" % i for i in range(3000)]
    batch = [{"type": "item.delta", "data": {"delta": "x" * 120, "i": i}} for i in range(100)]
    body = json.dumps(batch).encode()
    for k in range(n // 100):
        sid = sessions[k % len(sessions)]
        st, _, out = clients[cluster.map.owner_of(sid)].request(
            "POST", "/v1/sessions/%s/events" % sid, body, {"Content-Type": "application/json"})
        assert st == 200, out


def timed_cli(map_path, reel):
    t = time.time()
    p = subprocess.run([reel, "cluster", "events", "--map", map_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    took = time.time() - t
    assert p.returncode == 0, p.stderr
    return p.stdout.count(b"\n"), took


def timed_py(map_path):
    t = time.time()
    with ClusterReader(map_path) as r:
        n = sum(1 for _ in r.events())
    return n, time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("build", nargs="?", default="build")
    a = ap.parse_args()
    reel = os.path.abspath(os.path.join(ROOT, a.build, "reel"))
    os.environ["REEL_BIN"] = reel
    tmp = tempfile.mkdtemp(prefix="reel-bench-reads-")
    c = Cluster(tmp, spares=0, sync="none")
    try:
        for cell in c.ids:
            c.start_cell(cell)
        load(c, a.events)
        one = os.path.join(tmp, "one.json")
        with open(c.map_path) as f:
            doc = json.load(f)
        doc["cells"] = doc["cells"][:1]  # only c1's shards: not a valid map to serve, a valid one to read
        doc["cells"][0]["shards"] = [[0, doc["shards"] - 1]]
        with open(one, "w") as f:
            json.dump(doc, f)
        print("load average %s" % open("/proc/loadavg").read().split()[:3])
        # interleaved rounds, so that the machine's other work weighs on every reader alike
        runs = {"one": [], "three": [], "py": []}
        for _ in range(a.rounds):
            runs["one"].append(timed_cli(one, reel))
            runs["three"].append(timed_cli(c.map_path, reel))
            runs["py"].append(timed_py(c.map_path))
        med = {k: sorted(v, key=lambda x: x[1])[len(v) // 2] for k, v in runs.items()}
        rate1 = med["one"][0] / med["one"][1]
        best1 = med["one"][0] / min(x[1] for x in runs["one"])
        for k, label in (("one", "one cell alone (reel cluster events, 1-cell map)"),
                         ("three", "three cells (reel cluster events)"),
                         ("py", "three cells (Python ClusterReader)")):
            n, t = med[k]
            best = min(x[1] for x in runs[k])
            print("%s: %d events; median %.2f s, %.0f events/s (%.2fx); best %.2f s, %.0f "
                  "events/s (%.2fx)" % (label, n, t, n / t, n / t / rate1, best, n / best,
                                        n / best / best1))
        assert med["three"][0] == med["py"][0] == a.events // 100 * 100
        print("load average %s" % open("/proc/loadavg").read().split()[:3])
    finally:
        c.stop()


if __name__ == "__main__":
    main()
