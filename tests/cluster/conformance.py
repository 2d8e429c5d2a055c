"""The Durable Streams conformance suite through nginx in front of cells (tests/cluster/).

    python3 tests/cluster/conformance.py [--cells N]

Starts N cells (default 3) and a spare behind nginx, as tests/cluster/test_routing.py
does, runs tests/conformance/run.sh with DS_BASE_URL pointing at nginx, prints its output
(ending "N passed, N failed, N skipped"), stops everything and exits with its status.

With more than one cell, a fork whose source hashes to another cell is refused (409: a
fork reads its source locally, docs/CLUSTER.md), so those "Fork - " tests fail by design:
they are counted apart ("N cross-cell forks refused") and do not fail the run; any other
failure does. With more than one cell the subscriptions group is off (DS_SUBSCRIPTIONS=0):
a subscription and its signing key live in the cell its path hashes to, and sees only
that cell's streams (docs/durable-streams.md "Subscriptions").
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import ROOT, Cluster  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=3)
    ap.add_argument("--sync", default="full")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="reel-cluster-ds.") as tmp:
        c = Cluster(tmp, cells=a.cells, spares=1, sync=a.sync)
        try:
            c.start()
            env = dict(os.environ, DS_BASE_URL="http://127.0.0.1:%d" % c.nginx_port)
            if a.cells > 1:  # a subscription sees the streams of its own cell only
                env["DS_SUBSCRIPTIONS"] = "0"
            r = subprocess.run([os.path.join(ROOT, "tests", "conformance", "run.sh")], env=env,
                               timeout=900, capture_output=True, text=True)
            lines = r.stdout.splitlines()
            fails = [x for x in lines if x.startswith("FAIL ")]
            forks = [x for x in fails if x.startswith("FAIL Fork - ")] if a.cells > 1 else []
            for x in lines:
                if x not in forks:
                    print(x)
            tail = [x for x in lines if " passed, " in x]
            if not tail:
                print(r.stderr[-2000:])
                return 1
            p = int(tail[-1].split()[0])
            print("conformance through nginx, %d cell(s): %d passed, %d cross-cell forks refused "
                  "by design, %d failed otherwise" % (a.cells, p, len(forks), len(fails) - len(forks)))
            return 0 if len(fails) == len(forks) else 1
        finally:
            c.stop()


if __name__ == "__main__":
    sys.exit(main())
