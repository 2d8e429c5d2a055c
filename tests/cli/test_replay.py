"""reel replay: position order, filters, pacing, and POSTs to a live reel server."""
import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from clihelp import REEL, Reel


def crafted_export(path, gaps_ms):
    """An export whose events are gaps_ms apart (import keeps exported times)."""
    t0 = 1_790_000_000_000
    lines = [json.dumps({"record": "export", "format": 1})]
    t = t0
    for i, gap in enumerate([0] + gaps_ms):
        t += gap
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + f".{t % 1000:03d}Z"
        lines.append(json.dumps({"session_id": "paced", "event_id": f"e{i}", "time": iso,
                                 "type": "tick", "source": "agent", "data": {"i": i}}))
    lines.append(json.dumps({"record": "end", "events": len(gaps_ms) + 1, "sessions": 0}))
    path.write_text("\n".join(lines) + "\n")


def test_replay_prints_in_position_order_with_filters(reel):
    reel.ingest("a", [{"type": "x", "data": 1}, {"type": "y", "data": 2}])
    reel.ingest("b", [{"type": "x", "data": 3}])
    reel.ingest("a", [{"type": "x", "data": 4}])
    out = [json.loads(l) for l in reel.run("replay").stdout.decode().split("\n") if l]
    assert [e["position"] for e in out] == [1, 2, 3, 4]
    only = [json.loads(l) for l in reel.run("replay", "--type", "x", "--session", "a").stdout.decode().split("\n") if l]
    assert [e["data"] for e in only] == [1, 4]


def test_original_pace_waits_and_xn_is_faster(reel, tmp_path):
    crafted_export(tmp_path / "p.jsonl", [300, 300])
    reel.run("import", str(tmp_path / "p.jsonl"))
    t = time.monotonic()
    reel.run("replay", "--pace", "original")
    slow = time.monotonic() - t
    t = time.monotonic()
    reel.run("replay", "--pace", "x10")
    fast = time.monotonic() - t
    assert slow >= 0.6, f"original pace took {slow:.2f}s for 600 ms of recorded gaps"
    assert fast < slow / 2
    assert reel.run("replay", "--pace", "sideways", check=False).returncode == 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    p = subprocess.Popen([REEL, "serve", "--data", str(tmp_path / "srv"), "--listen",
                          f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/v1/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield url, Reel(str(tmp_path / "srv"))
    p.terminate()
    p.wait(timeout=10)


def test_replay_posts_every_event_to_a_server(reel, server):
    url, target = server
    events = [{"type": "t", "event_id": f"id{i}", "data": {"i": i}} for i in range(25)]
    reel.ingest("src", events)
    reel.run("replay", "--to", url + "/v1/sessions/copy/events")
    got = json.loads(urllib.request.urlopen(url + "/v1/sessions/copy/events?limit=100").read())
    assert [e["data"]["i"] for e in got["events"]] == list(range(25))
    assert [e["event_id"] for e in got["events"]] == [f"id{i}" for i in range(25)]
    again = reel.run("replay", "--to", url + "/v1/sessions/copy/events")  # idempotent by event_id
    assert again.returncode == 0
    got = json.loads(urllib.request.urlopen(url + "/v1/sessions/copy/events?limit=100").read())
    assert len(got["events"]) == 25


def test_replay_stops_at_the_first_failed_post(reel, server):
    url, _ = server
    reel.ingest("src", [{"type": "t"}])
    p = reel.run("replay", "--to", url + "/v1/sessions/bad%01id/events", check=False)
    assert p.returncode == 1 and b"HTTP 400" in p.stderr
