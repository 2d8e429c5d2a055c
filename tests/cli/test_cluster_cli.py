"""`reel cluster init|nginx-conf|shard` and serve's --cluster-map/--cell checks (docs/CLUSTER.md).
The routing itself, with real nginx and cells, is tests/cluster/."""
import json
import subprocess

from clihelp import REEL


def cluster(*args, check=True):
    p = subprocess.run([REEL, "cluster", *args], capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_help_names_every_verb():
    out = cluster("--help").stdout
    for word in ("init ID=HOST:PORT", "nginx-conf MAP", "shard ID", "--shards", "--spares", "--stream"):
        assert word in out


def test_init_splits_shards_evenly_and_spares_get_none(tmp_path):
    doc = json.loads(cluster("init", "a=127.0.0.1:1", "b=127.0.0.1:2", "c=127.0.0.1:3", "--shards", "10",
                             "--epoch", "7", "--spares", "1").stdout)
    assert doc["shards"] == 10 and doc["epoch"] == 7
    assert [c["shards"] for c in doc["cells"]] == [[[0, 4]], [[5, 9]], []]


def test_usage_errors_name_the_bad_value(tmp_path):
    p = cluster("init", "nocolon", check=False)
    assert p.returncode == 2 and "ID=HOST:PORT, not 'nocolon'" in p.stderr
    p = cluster("init", "a b=h:1", check=False)
    assert p.returncode == 2 and "\"id\"" in p.stderr
    p = cluster("init", "a=h:1", "--shards", "10001", check=False)
    assert p.returncode == 2 and "--shards" in p.stderr
    p = cluster("frobnicate", check=False)
    assert p.returncode == 2 and "expected init" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version":1,"shards":4,"epoch":1,"cells":[{"id":"a","address":"h:1","shards":[[0,2]]}]}')
    p = cluster("nginx-conf", str(bad), check=False)
    assert p.returncode == 1 and "shard 3 has no cell" in p.stderr and "bad.json" in p.stderr
    p = cluster("shard", "..", check=False)
    assert p.returncode == 2 and "not a valid session id" in p.stderr


def test_shard_prints_the_documented_example(tmp_path):
    m = tmp_path / "map.json"
    m.write_text(cluster("init", "c1=10.0.0.1:2469", "c2=10.0.0.2:2469", "c3=10.0.0.3:2469",
                         "spare=10.0.0.4:2469", "--spares", "1").stdout)
    assert cluster("shard", "s-00042", "--map", str(m)).stdout == (
        "key=s-00042 hash=2544013404 shard=2426 shards=4096 cell=c2 address=10.0.0.2:2469 epoch=1\n")
    a = cluster("shard", "--stream", "chat/1", "--map", str(m)).stdout
    b = cluster("shard", "ds:chat~2F1:2", "--map", str(m)).stdout
    assert a == b and a.startswith("key=chat/1 ")
    assert cluster("shard", "team/a b").stdout.startswith("key=team%2Fa%20b ")


def test_nginx_conf_routes_every_shard(tmp_path):
    m = tmp_path / "map.json"
    m.write_text(cluster("init", "c1=127.0.0.1:7001", "c2=127.0.0.1:7002", "--shards", "100").stdout)
    out = cluster("nginx-conf", str(m), "--listen", "127.0.0.1:8080").stdout
    assert out.count("# shard ") == 100
    assert "proxy_next_upstream off;" in out and "proxy_buffering off;" in out
    assert "listen 127.0.0.1:8080;" in out
    assert "server {" not in cluster("nginx-conf", str(m)).stdout


def test_serve_refuses_a_half_cluster_setup_and_an_unknown_cell(tmp_path):
    m = tmp_path / "map.json"
    m.write_text(cluster("init", "c1=127.0.0.1:7001").stdout)
    base = [REEL, "serve", "--data", str(tmp_path / "d"), "--listen", "127.0.0.1:0"]
    p = subprocess.run(base + ["--cluster-map", str(m)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--cluster-map and --cell go together" in p.stderr
    p = subprocess.run(base + ["--cluster-map", str(m), "--cell", "zz"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "has no cell 'zz'" in p.stderr
    p = subprocess.run(base + ["--cluster-map", str(tmp_path / "missing.json"), "--cell", "c1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "missing.json" in p.stderr
