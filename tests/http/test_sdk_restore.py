"""restore?fit=sdk against the sandbox-agent SDK's own replay text, byte for byte.

tests/sdk/compare.mjs appends 48 sessions of SDK-shaped events (client_time = the SDK's
createdAt, as integers and RFC 3339 strings; unicode, astral and control characters,
numbers JSON.stringify rewrites, keys that are array indices, duplicate keys, nested,
empty and null payloads, long texts) to this server, then compares 10,000 combinations of
session, max_events and max_chars (mostly at a line boundary, -1 and +1) with the text
the SDK's published code builds (tests/sdk/sdk_replay.mjs says how it is reached).
It takes about 10 s. Negative controls, run by hand: restore taking the commit time as
createdAt gives 7532 mismatches; `>=` for `>` in restore.c's fit_sdk (off by one at the
max_chars boundary) gives 2085.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sdk"))
from sdk import ensure_sdk  # noqa: E402


def test_sdk_fit_equals_the_sdk_on_10000_combinations(server, capsys):
    sdk = ensure_sdk()
    p = subprocess.run(["node", os.path.join(sdk, "compare.mjs"),
                        "http://127.0.0.1:%d" % server.port, "10000", "15"],
                       capture_output=True, timeout=300)
    out = p.stdout.decode()
    with capsys.disabled():  # the count, in the suite's log
        print("\nsdk comparison: " + out.strip())
    assert p.returncode == 0, out + p.stderr.decode()
    assert out.strip().endswith("10000 combinations (48 sessions, 1776 events), 0 mismatches"), out
