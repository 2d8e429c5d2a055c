"""An export of 1 GiB of JSON streams: the exporting process stays under 64 MiB of RSS."""
import json
import subprocess
import sys

import pytest

from clihelp import REEL

MEASURE = ("import resource, subprocess, sys\n"
           "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
           "sys.stderr.buffer.write(p.stderr)\n"
           "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


@pytest.mark.skipif("/address/" in REEL or "/thread/" in REEL,
                    reason="the sanitizers' shadow memory makes RSS meaningless")
def test_one_gib_export_keeps_rss_under_64_mib(reel, tmp_path):
    src = tmp_path / "big.jsonl"
    filler = "lorem ipsum dolor sit amet " * 36  # ~1 KiB of text per event
    with open(src, "w") as f:
        for i in range(1_050_000):
            f.write(json.dumps({"type": "item.delta", "source": "agent",
                                "data": {"i": i, "delta": filler}}) + "\n")
    reel.run("ingest", "--session", "big", "--sync", "none", "--quiet", str(src))
    src.unlink()
    out = subprocess.run([sys.executable, "-c", MEASURE, REEL, "export", "--data", reel.data,
                          "--progress"], capture_output=True, check=True)
    rc, maxrss_kib = map(int, out.stdout.split())
    assert rc == 0, out.stderr
    summary = out.stderr.decode().strip().split("\n")[-1]
    mb = float(summary.split(" MB of JSON")[0].rsplit(" ", 1)[1])
    assert mb >= 1024 * 1.048576, f"exported only {mb} MB of JSON: {summary}"
    assert maxrss_kib < 64 * 1024, f"export used {maxrss_kib} KiB of RSS: {summary}"
    print(f"\n1 GiB export: max RSS {maxrss_kib / 1024:.1f} MiB; {summary}")
