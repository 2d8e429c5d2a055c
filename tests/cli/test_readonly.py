"""Read-only inspection (issue 20): a data directory the user cannot write (a snapshot,
another user's store, a read-only mount) is read without LMDB's lock file by every
read-only command; writing commands still say they cannot write."""
import os
import shutil
import subprocess
import tempfile

import pytest

from clihelp import REEL

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"),
                                reason="needs root and runuser to read as another user")


def as_nobody(*args):
    return subprocess.run(["runuser", "-u", "nobody", "--", os.path.abspath(REEL), *args],
                          capture_output=True, text=True, timeout=60)


def test_every_read_command_works_on_a_directory_it_cannot_write(reel):
    reel.ingest("a", [{"type": "item.delta", "data": {"delta": "hi"}}, {"type": "t"}])
    # where 'nobody' can reach it (pytest's own temp root is private to root)
    top = tempfile.mkdtemp(prefix="reel-ro-", dir="/tmp")
    os.chmod(top, 0o755)
    shutil.copytree(reel.data, os.path.join(top, "data"))
    reel.data = os.path.join(top, "data")
    for root, dirs, files in os.walk(reel.data):
        os.chmod(root, 0o555)
        for f in files:
            os.chmod(os.path.join(root, f), 0o444)
    try:
        for cmd in (["tail"], ["sessions"], ["verify"], ["stats"], ["transcript", "--session", "a"],
                    ["restore", "--session", "a"], ["export", "--compression", "none"],
                    ["tail", "--session", "a"]):
            p = as_nobody(*cmd, "--data", reel.data)
            assert p.returncode == 0, (cmd, p.stderr)
            assert p.stdout, cmd
        assert as_nobody("tail", "--data", reel.data).stdout == reel.run("tail").stdout.decode()
        p = subprocess.run(["runuser", "-u", "nobody", "--", os.path.abspath(REEL), "ingest",
                            "--data", reel.data, "--session", "a"], input='{"type":"t"}\n',
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "Permission denied" in p.stderr, p.stderr
    finally:
        for root, dirs, files in os.walk(reel.data):
            os.chmod(root, 0o755)
        shutil.rmtree(top)
