"""Syscall-level fault injection (tests/fault/faultfs.c) against `reel ingest` and
`reel serve`, checked with the checker of faultlib.py; every fault kind also has a negative
control that the checker must flag. docs/RELIABILITY.md explains each test.

Run: make -f Makefile -f tests/fuzz/fuzz.mk fault   (or /usr/bin/python3 -m pytest tests/fault)
"""
import os

import pytest

import faultlib
from faultlib import Run, Serve

faultlib.ensure_shim()

# name -> shim environment. The counts are of calls on data.mdb across the whole run (one
# `reel ingest` per batch): a store's creation makes 1 fdatasync and 3-4 writes, each
# later commit 1 fdatasync, 1 writev of the pages and 1 pwrite of the meta page.
KINDS = {
    "fdatasync-EIO-1st": {"FAULTFS_OPS": "fdatasync", "FAULTFS_NTH": 1},   # store creation
    "fdatasync-EIO-4th": {"FAULTFS_OPS": "fdatasync", "FAULTFS_NTH": 4},
    "fdatasync-EIO-9th": {"FAULTFS_OPS": "fdatasync", "FAULTFS_NTH": 9},
    "writev-EIO": {"FAULTFS_OPS": "writev", "FAULTFS_NTH": 5},             # data pages
    "pwrite-EIO-meta": {"FAULTFS_OPS": "pwrite", "FAULTFS_NTH": 6},        # meta page (O_DSYNC)
    "write-short": {"FAULTFS_OPS": "writes", "FAULTFS_NTH": 11, "FAULTFS_SHORT": 1},
    "ENOSPC-stays-full": {"FAULTFS_OPS": "writes", "FAULTFS_NTH": 14, "FAULTFS_ERRNO": "ENOSPC",
                          "FAULTFS_PERSIST": 1},
    # A full disk (FAULTFS_FULL: only writes that extend the file fail, statvfs reports no
    # free blocks): writes cut short while it stays full, or the quota exceeded.
    # (FULL counts only the writes that extend the file: 3 at creation, about 1 per batch)
    "short-stays-full": {"FAULTFS_OPS": "writes", "FAULTFS_NTH": 6, "FAULTFS_SHORT": 1,
                         "FAULTFS_PERSIST": 1, "FAULTFS_FULL": 1},
    "EDQUOT-stays-full": {"FAULTFS_OPS": "writes", "FAULTFS_NTH": 6, "FAULTFS_ERRNO": "EDQUOT",
                          "FAULTFS_PERSIST": 1, "FAULTFS_FULL": 1},
    "random-p0.1-seed1": {"FAULTFS_OPS": "sync,writes", "FAULTFS_PROB": 0.1, "FAULTFS_SEED": 1},
    "random-p0.1-seed2": {"FAULTFS_OPS": "sync,writes", "FAULTFS_PROB": 0.1, "FAULTFS_SEED": 2},
    "random-p0.1-seed3": {"FAULTFS_OPS": "sync,writes", "FAULTFS_PROB": 0.1, "FAULTFS_SEED": 3},
}
FULLTEXT = ("No space left", "Disk quota exceeded", "store_full", "no space left")


def expect_failures_reported(r, kind):
    assert r.faults_fired(), "the fault never fired: the test has no power (%s)" % kind
    assert any(h["outcome"] == "fail" for h in r.history), "no append failed: %s" % r.summary()
    assert not any(h["outcome"] == "info" for h in r.history), \
        "reel ingest crashed or misused: %s" % r.messages
    for what, msg in r.messages:
        assert msg.startswith("reel ingest: "), (what, msg)
    if KINDS[kind].get("FAULTFS_ERRNO") == "ENOSPC" or KINDS[kind].get("FAULTFS_FULL"):
        assert any(any(t in m for t in FULLTEXT) for _, m in r.messages), r.messages


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ingest_fault_then_power_loss(tmp_path, kind):
    """Stop right after the batch in which the fault fired, lose power (keep only what was
    synced), restart: every acknowledged batch is there, the failed one is not."""
    r = Run(tmp_path, KINDS[kind])
    r.ingest_workload(batches=12, stop_after_fault=True)
    expect_failures_reported(r, kind)
    assert r.check() == [], r.summary()
    r.power_loss()
    assert r.check() == [], r.summary()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ingest_fault_then_restart_and_continue(tmp_path, kind):
    """Keep appending after the fault (each `reel ingest` is a restart); a disk that stays
    full fails every append until space comes back (the shim is removed), then appends
    work again; the checker passes before and after a power loss."""
    r = Run(tmp_path, KINDS[kind])
    r.ingest_workload(batches=12)
    expect_failures_reported(r, kind)
    assert r.check() == [], r.summary()
    r.env.update({"FAULTFS_NTH": "0", "FAULTFS_PROB": "0"})  # the fault is gone (space is back)
    outcome, rc, err = r.ingest_batch("s1", 100, 5)
    assert outcome == "ok", err
    assert r.check() == [], r.summary()
    r.power_loss()
    assert r.check() == [], r.summary()


# ---- negative controls: the checker must flag each of these broken runs ----

@pytest.mark.parametrize("kind", sorted(k for k in KINDS if not k.startswith("random")))
def test_negative_control_ignored_error(tmp_path, kind):
    """The same fault, but the call reports success without doing its work (what a
    program that ignored the error would acknowledge). After the power loss the checker
    must find lost acknowledged events or a store that fails verify."""
    # PERSIST: from the N-th call on, every error is hidden (a program that ignores errors
    # does so every time); otherwise a later real fdatasync in the same process would make
    # the hidden failure harmless before anything was acknowledged.
    faults = dict(KINDS[kind], FAULTFS_LIE=1, FAULTFS_PERSIST=1)
    faults.pop("FAULTFS_SHORT", None)
    r = Run(tmp_path, faults)
    r.ingest_workload(batches=12, stop_after_fault=True)
    assert r.faults_fired(), "the fault never fired"
    assert not any(h["outcome"] == "fail" for h in r.history), r.messages  # errors were hidden
    r.power_loss()
    bad = r.check()
    assert bad, "the checker did not detect acknowledged-but-not-durable events (%s)" % r.summary()


def test_negative_control_sync_none_power_loss(tmp_path):
    """--sync none acknowledges before anything is durable: a power loss must lose acked
    events, and the checker must say so."""
    r = Run(tmp_path, {}, sync="none")
    r.ingest_workload(batches=6)
    assert r.check() == []  # no power loss yet: a process exit loses nothing
    r.power_loss()
    bad = r.check()
    assert any("acknowledged events lost" in b for b in bad), bad


def test_negative_control_lying_fsync(tmp_path):
    """A disk whose flushes do nothing (fdatasync returns 0, O_DSYNC ignored): the checker
    must flag the lost acknowledged events after a power loss."""
    r = Run(tmp_path, {"FAULTFS_SYNC": "noop"})
    r.ingest_workload(batches=6)
    r.power_loss()
    bad = r.check()
    assert any("acknowledged events lost" in b for b in bad), bad


def test_power_loss_without_faults(tmp_path):
    """The power-loss model itself on a clean run: nothing acknowledged is lost."""
    r = Run(tmp_path, {})
    r.ingest_workload(batches=6)
    r.power_loss()
    assert r.check() == [], r.summary()
    assert sum(h["outcome"] == "ok" for h in r.history) == 30


# ---- reel serve: POST /v1/sessions/{id}/events ----

SERVE_KINDS = {
    "fdatasync-EIO": ({"FAULTFS_OPS": "fdatasync", "FAULTFS_NTH": 4}, (500, 503)),
    "writev-EIO": ({"FAULTFS_OPS": "writev", "FAULTFS_NTH": 5}, (500, 503)),
    "pwrite-EIO-meta": ({"FAULTFS_OPS": "pwrite", "FAULTFS_NTH": 6}, (500, 503)),
    "ENOSPC-stays-full": ({"FAULTFS_OPS": "writes", "FAULTFS_NTH": 8, "FAULTFS_ERRNO": "ENOSPC",
                           "FAULTFS_PERSIST": 1}, (507,)),
    "short-stays-full": ({"FAULTFS_OPS": "writes", "FAULTFS_NTH": 5, "FAULTFS_SHORT": 1,
                          "FAULTFS_PERSIST": 1, "FAULTFS_FULL": 1}, (507,)),
    "EDQUOT-stays-full": ({"FAULTFS_OPS": "writes", "FAULTFS_NTH": 5, "FAULTFS_ERRNO": "EDQUOT",
                           "FAULTFS_PERSIST": 1, "FAULTFS_FULL": 1}, (507,)),
    # No space for the meta page (a copy-on-write file system): LMDB marks its environment
    # broken (MDB_PANIC), so even a full disk is fail-stop there.
    "pwrite-ENOSPC-meta": ({"FAULTFS_OPS": "pwrite", "FAULTFS_NTH": 7, "FAULTFS_ERRNO": "ENOSPC"},
                           (500, 503)),
    # A write cut short while the disk has space is an I/O error: fail-stop.
    "short-not-full": ({"FAULTFS_OPS": "writev", "FAULTFS_NTH": 3, "FAULTFS_SHORT": 1},
                       (500, 503)),
}


@pytest.mark.parametrize("kind", sorted(SERVE_KINDS))
def test_serve_fault(tmp_path, kind):
    """The batch in flight gets 5xx (507 for a full disk), never 2xx; after an I/O error
    the server acknowledges nothing more until restarted (fail-stop); after kill -9 and a
    power loss every acknowledged event is there; a restarted server appends again."""
    faults, statuses = SERVE_KINDS[kind]
    r = Run(tmp_path, faults)
    srv = Serve(r)
    assert srv.alive(), srv.log_text()
    failed_at = None
    for b in range(10):
        status, body = srv.post_batch("s%d" % (b % 2), b, 5)
        if failed_at is None and status is not None and status >= 500:
            failed_at = b
            assert status in statuses, (status, body)
            assert b"urn:reel:error:" in body, body
        elif failed_at is not None:
            assert status is not None and status >= 500, \
                "acknowledged after the store failed: %s %s" % (status, body)
    assert r.faults_fired(), "the fault never fired"
    assert failed_at is not None, "no append failed: %s" % r.summary()
    srv.kill()
    assert r.check() == [], r.summary()
    r.power_loss()
    assert r.check() == [], r.summary()
    srv = Serve(r, preload=False)
    try:
        status, body = srv.post_batch("s1", 100, 3)
        assert status == 200, (status, body)
    finally:
        srv.kill()
    assert r.check() == [], r.summary()


FULL_KINDS = {
    "ENOSPC": {"FAULTFS_ERRNO": "ENOSPC"},
    # FULL counts only the writes that extend the file (2 at creation, 1 per batch)
    "EDQUOT": {"FAULTFS_ERRNO": "EDQUOT", "FAULTFS_FULL": 1, "FAULTFS_NTH": 5},
    "short": {"FAULTFS_SHORT": 1, "FAULTFS_FULL": 1, "FAULTFS_NTH": 5},  # LMDB reports EIO
}


@pytest.mark.parametrize("kind", sorted(FULL_KINDS))
def test_serve_disk_full_then_space_back(tmp_path, kind):
    """A full disk is not fail-stop, whether writes fail with ENOSPC or EDQUOT or are cut
    short (LMDB's EIO while statvfs shows no free space): while the disk is full appends
    get 507 and reads and health keep working; once space is back (the fault disarmed)
    appends succeed again without a restart; nothing acknowledged is lost, before or after
    a power loss."""
    armed = os.path.join(str(tmp_path), "armed")
    open(armed, "w").close()
    r = Run(tmp_path, dict({"FAULTFS_OPS": "writes", "FAULTFS_NTH": 8, "FAULTFS_PERSIST": 1,
                            "FAULTFS_ARMED": armed}, **FULL_KINDS[kind]))
    srv = Serve(r)
    assert srv.alive(), srv.log_text()
    statuses = [srv.post_batch("s1", b, 5)[0] for b in range(5)]
    assert statuses.count(200) >= 1 and all(s in (200, 507) for s in statuses[1:]), statuses
    assert statuses[-1] == 507, statuses
    assert srv.request("GET", "/v1/health")[0] == 200
    status, body = srv.request("GET", "/v1/sessions/s1/events?offset=0&limit=1000")
    assert status == 200, (status, body)
    acked = sum(1 for h in r.history if h["outcome"] == "ok")
    assert len(__import__("json").loads(body)["events"]) == acked
    os.unlink(armed)
    status, body = srv.post_batch("s1", 50, 5)
    assert status == 200, (status, body)
    srv.kill()
    assert r.check() == [], r.summary()
    r.power_loss()
    assert r.check() == [], r.summary()


def test_serve_negative_control_ignored_error(tmp_path):
    """The server under a hidden fdatasync failure (FAULTFS_LIE): it acknowledges, and
    after kill -9 plus a power loss the checker must flag the loss."""
    r = Run(tmp_path, {"FAULTFS_OPS": "fdatasync", "FAULTFS_NTH": 4, "FAULTFS_LIE": 1})
    srv = Serve(r)
    assert srv.alive(), srv.log_text()
    b = 0
    while b < 10 and not r.faults_fired():
        srv.post_batch("s%d" % (b % 2), b, 5)
        b += 1
    srv.kill()
    assert r.faults_fired()
    r.power_loss()
    assert r.check(), "the checker did not detect the loss (%s)" % r.summary()
