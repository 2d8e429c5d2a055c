"""A data.mdb that holds no reel store is refused, not silently recreated (issue 14,
finding 5). A new store there would give out again sequences and positions that clients
of the old one already saw. Creating one over it takes `reel serve --create`; a directory
without data.mdb is still created as before (`make run` on a fresh ./reel-data).
"""
import os
import subprocess

import faultlib
from test_page_damage import Server


def ingest(data, session="s"):
    return subprocess.run([faultlib.REEL_BIN, "ingest", "--session", session, "--data", data,
                           "--quiet"], input=b'{"type":"t","data":1}\n',
                          env=faultlib.clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)


def serve_refuses(data, tmp):
    srv = Server(data, tmp)
    alive = srv.proc.poll() is None
    log = srv.stop()
    assert not alive and srv.proc.returncode == 1, log
    return log


def damaged_copies(tmp_path):
    """(name, data dir) for each way a data.mdb can hold no store."""
    out = []
    for name, content in (("empty", b""), ("not_lmdb", b"PK\x03\x04" + b"x" * 8188),
                          ("zero_pages", bytes(8192))):
        d = str(tmp_path / name)
        os.makedirs(d)
        with open(os.path.join(d, "data.mdb"), "wb") as f:
            f.write(content)
        out.append((name, d))
    # Another program's LMDB environment: valid LMDB, none of reel's databases.
    d = str(tmp_path / "other_lmdb")
    os.makedirs(d)
    dump = b"VERSION=3\nformat=print\ntype=btree\nHEADER=END\n a\n b\nDATA=END\n"
    if subprocess.run(["mdb_load", d], input=dump, stderr=subprocess.DEVNULL).returncode == 0:
        out.append(("other_lmdb", d))
    return out


def test_a_data_mdb_without_a_store_is_refused_by_serve_and_the_tools(tmp_path):
    for name, d in damaged_copies(tmp_path):
        size = os.path.getsize(os.path.join(d, "data.mdb"))
        log = serve_refuses(d, str(tmp_path))
        assert "data.mdb" in log, (name, log)
        p = ingest(d)
        assert p.returncode == 1, (name, p.stderr)
        for cmd in (["verify"], ["sessions"]):
            p = subprocess.run([faultlib.REEL_BIN] + cmd + ["--data", d],
                               env=faultlib.clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            assert p.returncode == 1, (name, cmd, p.stderr)
        assert os.path.getsize(os.path.join(d, "data.mdb")) == size, name  # left as it was


def test_an_emptied_store_is_refused_and_create_makes_a_new_one(tmp_path):
    data = str(tmp_path / "data")
    assert ingest(data).returncode == 0
    os.truncate(os.path.join(data, "data.mdb"), 0)
    log = serve_refuses(data, str(tmp_path))
    assert "empty" in log and "--create" in log, log
    p = subprocess.Popen([faultlib.REEL_BIN, "serve", "--create", "--data", data, "--listen",
                          "127.0.0.1:0"], env=faultlib.clean_env(), stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    p.terminate()
    p.wait(timeout=10)
    assert "listening" in line, line
    assert ingest(data).returncode == 0


def test_a_directory_without_data_mdb_is_still_created(tmp_path):
    data = str(tmp_path / "fresh")
    srv = Server(data, str(tmp_path))
    alive = srv.proc.poll() is None
    srv.stop()
    assert alive and os.path.exists(os.path.join(data, "data.mdb"))
    assert ingest(str(tmp_path / "fresh2")).returncode == 0
