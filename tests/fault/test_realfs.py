"""A full disk for real: the data directory on a small tmpfs and on a loop-mounted ext4
image, each made and removed by the test (root and mount(2) needed; the test skips naming
the error otherwise). A filler file takes all but a little of the space, `reel serve`
appends incompressible batches until the disk is full, then the filler is deleted.

Expected (docs/RELIABILITY.md §3.3, issue 14 finding 1): 507 store_full while full, never
500 or 503; health and reads keep working; appends resume without a restart once space is
back; nothing acknowledged is lost and `reel verify` passes (the checker of faultlib.py).
On tmpfs the disk fills with a write cut short (LMDB: EIO), which reel used to take for an
I/O error and stop for good.

Run: /usr/bin/python3 -m pytest tests/fault/test_realfs.py   (part of `make fault`)
"""
import errno
import json
import os
import subprocess

import pytest

from faultlib import Run, Serve

SIZES = {"tmpfs": "4m", "ext4": "8M"}


def sh(*cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)


def mount_small(kind, tmp, mnt):
    """Mounts a small 'kind' file system at 'mnt'; skips with the reason when it cannot."""
    if os.geteuid() != 0:
        pytest.skip("mounting a %s needs root (euid %d)" % (kind, os.geteuid()))
    if kind == "tmpfs":
        p = sh("mount", "-t", "tmpfs", "-o", "size=" + SIZES[kind], "reel-test", mnt)
    else:
        img = os.path.join(tmp, "ext4.img")
        p = sh("truncate", "-s", SIZES[kind], img)
        if p.returncode == 0:
            p = sh("mkfs.ext4", "-q", "-F", img)
        if p.returncode == 0:
            p = sh("mount", "-o", "loop", img, mnt)
    if p.returncode != 0:
        pytest.skip("cannot mount a %s here: %s" % (kind, p.stderr.decode(errors="replace").strip()))


def fill(path, leave):
    """Writes 'path' until the file system is full, then gives 'leave' bytes back."""
    chunk = os.urandom(1 << 16)
    with open(path, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno in (errno.ENOSPC, errno.EDQUOT), e
        f.truncate(max(0, f.tell() - leave))
        os.fsync(f.fileno())


@pytest.fixture(params=sorted(SIZES))
def small_fs(request, tmp_path):
    mnt = os.path.join(str(tmp_path), "mnt")
    os.mkdir(mnt)
    mount_small(request.param, str(tmp_path), mnt)
    yield mnt
    if sh("umount", mnt).returncode != 0:
        sh("umount", "-l", mnt)


def test_real_full_disk_then_space_back(tmp_path, small_fs):
    r = Run(tmp_path, {})
    r.data = os.path.join(small_fs, "data")
    srv = Serve(r, preload=False)
    try:
        assert srv.alive(), srv.log_text()
        assert srv.post_batch("s1", 0, 5, pad=8000)[0] == 200
        filler = os.path.join(small_fs, "filler")
        fill(filler, 256 << 10)
        statuses = []
        for b in range(1, 200):
            status, body = srv.post_batch("s1", b, 5, pad=8000)
            statuses.append(status)
            assert status in (200, 507), (statuses, body)
            if status == 507:
                assert b"urn:reel:error:store_full" in body, body
                break
        assert statuses[-1] == 507, "the disk never filled: %s" % statuses
        assert statuses.count(200) >= 1, statuses
        status, body = srv.request("GET", "/v1/health")
        assert status == 200, (status, body)
        status, body = srv.request("GET", "/v1/sessions/s1/events?offset=0&limit=10000")
        assert status == 200, (status, body)
        acked = sum(1 for h in r.history if h["outcome"] == "ok")
        assert len(json.loads(body)["events"]) == acked
        status, body = srv.post_batch("s1", 500, 5, pad=8000)  # still full
        assert status in (200, 507), (status, body)
        os.unlink(filler)
        for b in range(600, 603):
            status, body = srv.post_batch("s1", b, 5, pad=8000)
            assert status == 200, (status, body)
    finally:
        srv.kill()
    assert r.check() == [], r.summary()
