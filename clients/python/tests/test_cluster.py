"""ClusterReader (reel_client/cluster.py) against two real cells (`reel serve --cluster-map
--cell`) on free 127.0.0.1 ports, compared with `reel cluster events|sessions`."""
import json
import subprocess

import pytest

from conftest import REEL_BIN, Server
from reel_client import ClusterMap, ClusterReader, ReelClient, format_cursor, parse_cursor


@pytest.fixture
def cells(tmp_path):
    servers = {c: Server(tmp_path / c) for c in ("c1", "c2")}
    for c, s in servers.items():
        (tmp_path / c).mkdir()
    out = subprocess.run([REEL_BIN, "cluster", "init", "--shards", "64"] +
                         ["%s=127.0.0.1:%d" % (c, s.port) for c, s in servers.items()],
                         check=True, capture_output=True, text=True).stdout
    path = tmp_path / "map.json"
    path.write_text(out)
    for c, s in servers.items():
        s.args = ["--cluster-map", str(path), "--cell", c]
        s.start()
    yield str(path), servers
    for s in servers.values():
        s.stop()


def test_cursor_text_form():
    assert parse_cursor("") == {}
    assert parse_cursor("c2:5,c1:0") == {"c1": 0, "c2": 5}
    assert format_cursor({"c2": 5, "c1": 0}) == "c1:0,c2:5"
    for bad in ("c1", "c1:x", "c1:1,,c2:2", "c 1:2"):
        with pytest.raises(ValueError):
            parse_cursor(bad)


def test_reader_reads_every_event_once_like_reel_cluster_events(cells):
    path, servers = cells
    m = ClusterMap(path)
    direct = {c: ReelClient(s.url) for c, s in servers.items()}
    sids = ["s-%d" % i for i in range(40)] + ["team/ü %d" % i for i in range(5)]
    for rnd in range(3):
        for sid in sids:
            direct[m.owner(sid)].append_batch(sid, [{"type": "n", "data": {"r": rnd}}] * (1 + rnd))
    with ClusterReader(path) as r:
        got = list(r.events(limit=7))
        seen = {}
        for e in got:
            assert e.cell == m.owner(e.event["session_id"])
            sid = e.event["session_id"]
            assert e.event["sequence"] == seen.get(sid, 0) + 1
            seen[sid] = e.event["sequence"]
        assert seen == {s: 6 for s in sids}
        times = [e.event["time"] for e in got]  # merged by commit time
        assert times == sorted(times)
        # the same events as reel cluster events, the same cursors
        p = subprocess.run([REEL_BIN, "cluster", "events", "--map", path], capture_output=True,
                           text=True, check=True)
        cli = [json.loads(line) for line in p.stdout.splitlines()]
        assert sorted((e["cell"], e["position"]) for e in cli) == \
            sorted((e.cell, e.event["position"]) for e in got)
        # resume after any cursor: the rest, none twice
        k = len(got) // 2
        rest = list(r.events(after=got[k].cursor))
        assert sorted((e.cell, e.event["position"]) for e in got[k + 1:]) == \
            sorted((e.cell, e.event["position"]) for e in rest)  # no order across cells
        # a cursor without c2 reads c2 from its start
        c1_only = format_cursor({"c1": parse_cursor(got[-1].cursor)["c1"]})
        assert len(list(r.events(after=c1_only))) == sum(1 for e in got if e.cell == "c2")
        recs = list(r.sessions())
        assert sorted(rec["id"] for _, rec in recs) == sorted(sids)
        assert all(cell == m.owner(rec["id"]) for cell, rec in recs)
    for c in direct.values():
        c.close()
