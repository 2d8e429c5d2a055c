"""Regression (bug 3 in docs/RELIABILITY.md, found by the ignored-write negative control):
`reel verify` and `reel tail` die with SIGBUS when data.mdb is shorter than its meta page
says (a lost or torn write, a truncated copy). README.md "Guarantees": the check must
report the damage (exit 1 with a message), never crash. Fails until fixed.
"""
import os
import subprocess

import faultlib


def test_verify_reports_a_truncated_data_file_instead_of_crashing(tmp_path):
    data = str(tmp_path / "data")
    events = "".join('{"type":"t","data":"%s"}\n' % ("x" * 300) for _ in range(300))
    env = faultlib.clean_env()
    p = subprocess.run([faultlib.REEL_BIN, "ingest", "--session", "s", "--data", data,
                        "--quiet"], input=events.encode(), env=env)
    assert p.returncode == 0
    os.truncate(os.path.join(data, "data.mdb"), 32768)
    for cmd in (["verify"], ["tail", "--session", "s"]):
        p = subprocess.run([faultlib.REEL_BIN] + cmd + ["--data", data], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 1, "reel %s: exit %d (negative = killed by signal %d)" % (
            cmd[0], p.returncode, -p.returncode)
        out = (p.stdout + p.stderr).decode(errors="replace")
        assert "DEADLYSIGNAL" not in out and "ERROR: AddressSanitizer" not in out, out[:300]
        assert out.strip(), "no message"
