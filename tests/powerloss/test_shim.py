"""The power-loss shim itself (tests/powerloss/plshim.c): what a file holds after the crash.

A child Python process writes and syncs a file under the shim (os.pwrite, os.write,
os.fsync, os.fdatasync go through libc, where the shim sits) until the shim cuts the power
at a chosen call; then the file must hold what the model says, and never anything else.
"""
import os
import subprocess
import sys

import pytest

from test_powerloss import SHIM, clean_env, ensure_shim

PG = 4096

# The child: runs STEPS, a list of (call, args), one watched call each; prints nothing.
CHILD = r"""
import os, sys, json
steps = json.loads(sys.argv[2])
fds = {}
for call, a in steps:
    if call == "open":
        flags = os.O_RDWR | os.O_CREAT | (os.O_DSYNC if a.get("dsync") else 0)
        fds[a["fd"]] = os.open(sys.argv[1], flags, 0o644)
    elif call == "pwrite":
        os.pwrite(fds[a["fd"]], bytes([a["byte"]]) * a["len"], a["off"])
    elif call == "fsync":
        os.fsync(fds[a["fd"]])
    elif call == "fdatasync":
        os.fdatasync(fds[a["fd"]])
sys.exit(3)  # the shim should have killed us before the end
"""


def run(tmp_path, steps, crash_at, mode="all", seed=1, sync=None):
    import json
    ensure_shim()
    d = tmp_path / "d"
    d.mkdir(exist_ok=True)
    f = d / "file"
    env = clean_env()
    env.update({"LD_PRELOAD": SHIM, "PLSHIM_DIR": str(d), "PLSHIM_CRASH_AT": str(crash_at),
                "PLSHIM_MODE": mode, "PLSHIM_SEED": str(seed),
                "PLSHIM_LOG": str(tmp_path / "crash.log")})
    if sync:
        env["PLSHIM_SYNC"] = sync
    p = subprocess.run([sys.executable, "-c", CHILD, str(f), json.dumps(steps)], env=env,
                       capture_output=True, timeout=30)
    assert p.returncode == -9, (p.returncode, p.stderr.decode())
    return f.read_bytes()


def w(byte, off, n=PG, fd=0):
    return ["pwrite", {"fd": fd, "byte": byte, "off": off, "len": n}]


OPEN = ["open", {"fd": 0}]
SYNC = ["fdatasync", {"fd": 0}]


def test_all_keeps_exactly_what_was_synced(tmp_path):
    # write 1 (page 0 = a), sync, write 3 (page 0 = b), write 4 (page 1 = c); crash at call 5
    steps = [OPEN, w(ord("a"), 0), SYNC, w(ord("b"), 0), w(ord("c"), PG), w(ord("d"), 0)]
    assert run(tmp_path, steps, 5) == b"a" * PG


def test_nothing_synced_leaves_an_empty_file(tmp_path):
    assert run(tmp_path, [OPEN, w(ord("a"), 0), w(ord("b"), PG), SYNC], 3) == b""


def test_a_crash_at_the_sync_means_it_did_not_complete(tmp_path):
    steps = [OPEN, w(ord("a"), 0), SYNC, w(ord("b"), 0), SYNC, w(ord("c"), 0)]
    assert run(tmp_path, steps, 4) == b"a" * PG  # call 4 is the second sync
    assert run(tmp_path, steps, 5) == b"b" * PG  # it completed; call 5 is the last write


def test_dsync_writes_are_durable_when_they_return(tmp_path):
    steps = [OPEN, w(ord("a"), 0, 2 * PG), SYNC, ["open", {"fd": 1, "dsync": True}],
             w(ord("m"), 0, 120, fd=1), w(ord("x"), PG)]
    got = run(tmp_path, steps, 4)  # call 4 is the write after the durable one
    assert got == b"m" * 120 + b"a" * (2 * PG - 120)


def test_lying_disk_keeps_nothing(tmp_path):
    steps = [OPEN, w(ord("a"), 0), SYNC, w(ord("b"), 0)]
    assert run(tmp_path, steps, 3, sync="noop") == b""


def test_some_gives_each_page_one_of_its_versions(tmp_path):
    # page 0: synced a, then b, c; page 1: synced a, then d; page 2: new (e); crash at call 7
    steps = [OPEN, w(ord("a"), 0, 2 * PG), SYNC, w(ord("b"), 0), w(ord("c"), 0),
             w(ord("d"), PG), w(ord("e"), 2 * PG), w(ord("z"), 0)]
    seen = set()
    for seed in range(1, 41):
        got = run(tmp_path, steps, 7, mode="some", seed=seed)
        assert len(got) in (2 * PG, 3 * PG), len(got)
        p0, p1 = got[:PG], got[PG:2 * PG]
        assert p0 in (b"a" * PG, b"b" * PG, b"c" * PG)
        assert p1 in (b"a" * PG, b"d" * PG)
        if len(got) == 3 * PG:
            assert got[2 * PG:] in (b"\0" * PG, b"e" * PG)
        seen.add((p0[:1], p1[:1], len(got)))
    # every version shows up across the seeds: the model is not stuck on one answer
    assert {s[0] for s in seen} == {b"a", b"b", b"c"}
    assert {s[1] for s in seen} == {b"a", b"d"}
    assert {s[2] for s in seen} == {2 * PG, 3 * PG}
