"""`reel cluster events|sessions` usage and failures without a cluster (docs/CLUSTER.md
"Cluster-wide reads"); the reads themselves, against real cells and nginx, are
tests/cluster/test_reads.py."""
import socket
import subprocess

from clihelp import REEL


def cluster(*args):
    return subprocess.run([REEL, "cluster", *args], capture_output=True, text=True, timeout=60)


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def a_map(tmp_path):
    out = cluster("init", "c1=127.0.0.1:%d" % dead_port(), "c2=127.0.0.1:%d" % dead_port()).stdout
    p = tmp_path / "map.json"
    p.write_text(out)
    return str(p)


def test_help_of_both_verbs():
    for verb in ("events", "sessions"):
        p = cluster(verb, "--help")
        assert p.returncode == 0
        for word in ("--map MAP", "--after CURSOR", "--follow", "vector", "Reel-Cell", "--prefix"):
            assert word in p.stdout, word
    assert "events | sessions --map MAP" in cluster("--help").stdout


def test_usage_errors_name_the_bad_value(tmp_path):
    p = cluster("events")
    assert p.returncode == 2 and "--map MAP is needed" in p.stderr
    m = a_map(tmp_path)
    for bad in ("c1", "c1:x", "c1:1,,c2:3", "c 1:3", "c1:-1", "c1:99999999999999999999999"):
        p = cluster("events", "--map", m, "--after", bad)
        assert p.returncode == 2 and "--after '%s'" % bad in p.stderr, (bad, p.stderr)
    p = cluster("events", "--map", m, "--limit", "0")
    assert p.returncode == 2 and "--limit" in p.stderr


def test_bad_map_and_unreachable_cell(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version":1,"shards":4,"epoch":1,"cells":[{"id":"a","address":"h:1","shards":[[0,2]]}]}')
    p = cluster("events", "--map", str(bad))
    assert p.returncode == 1 and "shard 3" in p.stderr, p.stderr
    m = a_map(tmp_path)
    for verb in ("events", "sessions"):
        p = cluster(verb, "--map", m)
        assert p.returncode == 1 and p.stdout == "", p.stderr
        assert "cell 'c1' (http://127.0.0.1:" in p.stderr or "cell 'c2' (http://127.0.0.1:" in p.stderr
    # without --follow the cursor it got to is still printed: nothing read, every cell at 0
    p = cluster("events", "--map", m, "--after", "c2:5")
    assert "cursor c1:0,c2:5" in p.stderr
