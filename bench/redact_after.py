#!/usr/bin/env python3
"""redact_after.py [--events N] [--dir DIR] -- redaction after the fact, measured with the
CLI (docs/BENCHMARKS.md "Redaction after the fact"): N tool results with one random
secret each (bodies of 0.2-1.2 KB, stored uncompressed) are ingested with --redact off,
then redacted with `reel redact --data` in requests of 10,000 events (by a path, then on a
fresh copy by a regex); prints the time of each, of `reel verify`, and how many of the
secrets are still in the data file before and after `reel backup` (the compaction step).
REEL_BIN picks the binary (default build/reel)."""
import argparse
import json
import os
import random
import re
import shutil
import string
import subprocess
import tempfile
import time

REEL = os.environ.get("REEL_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "reel"))


def run(*args):
    t = time.monotonic()
    p = subprocess.run([REEL, *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit("reel %s: %s" % (" ".join(args), p.stderr))
    return time.monotonic() - t


def count(path, secrets):
    """How many of 'secrets' occur in the file's bytes (one scan for their common prefix)."""
    with open(path, "rb") as f:
        raw = f.read()
    found = set(m.group(0).decode() for m in re.finditer(rb"ZQSECRET[A-Za-z]{24}", raw))
    return len(found & set(secrets)), len(raw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--dir")
    a = ap.parse_args()
    top = a.dir or tempfile.mkdtemp(prefix="reel-redact-bench-")
    rnd = random.Random(21)
    secrets, lines = [], []
    for i in range(a.events):
        s = "ZQSECRET" + "".join(rnd.choice(string.ascii_letters) for _ in range(24))
        secrets.append(s)
        out = "x" * rnd.randrange(200, 1200) + " token=" + s
        lines.append(json.dumps({"type": "tool.result", "data": {"output": out, "n": i}}))
    src = os.path.join(top, "in.jsonl")
    with open(src, "w") as f:
        f.write("\n".join(lines) + "\n")
    base = os.path.join(top, "base")
    run("ingest", "--data", base, "--session", "s", "--redact", "off", "--quiet", src)
    for label, args in (("path data.output", ["--path", "data.output"]),
                        ("regex", ["--pattern", "ZQSECRET[A-Za-z]+", "--kind", "zq"])):
        d = os.path.join(top, "d")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base, d)
        took = []
        for first in range(1, a.events + 1, 10000):
            last = min(first + 9999, a.events)
            took.append(run("redact", "--data", d, "s", "--from", str(first), "--to", str(last),
                            *args))
        v = run("verify", "--data", d)
        left, size = count(os.path.join(d, "data.mdb"), secrets)
        c = os.path.join(top, "compact")
        shutil.rmtree(c, ignore_errors=True)
        b = run("backup", "--data", d, c)
        cleft, csize = count(os.path.join(c, "data.mdb"), secrets)
        run("verify", "--data", c)
        print("%-17s %d events: redact %s s (per 10,000), verify %.2f s; secrets in data.mdb "
              "%d/%d (%.1f MB); after backup (%.2f s) %d/%d (%.1f MB)"
              % (label, a.events, ", ".join("%.2f" % t for t in took), v, left, len(secrets),
                 size / 1e6, b, cleft, len(secrets), csize / 1e6))
    if not a.dir:
        shutil.rmtree(top)


if __name__ == "__main__":
    main()
