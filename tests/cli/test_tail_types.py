"""reel tail --types (issue 20): only the events of the given types, with and without a
session, across pages, and with --follow past skipped events."""
import json
import subprocess
import time

from clihelp import REEL


def test_tail_types_filters_sessions_and_the_feed(reel):
    evs = [{"type": "item.delta" if i % 100 else "error", "data": {"i": i}} for i in range(2500)]
    reel.ingest("a", evs)
    reel.ingest("b", [{"type": "error", "data": {"i": -1}}, {"type": "usage"}])
    out = [json.loads(x) for x in reel.run("tail", "--session", "a", "--types", "error").stdout.split(b"\n") if x]
    assert [e["data"]["i"] for e in out] == list(range(0, 2500, 100))
    out = [json.loads(x) for x in reel.run("tail", "--types", "error,usage").stdout.split(b"\n") if x]
    assert len(out) == 25 + 2 and {e["type"] for e in out} == {"error", "usage"}
    out = [json.loads(x) for x in reel.run("tail", "--types", "error", "--limit", "3").stdout.split(b"\n") if x]
    assert [e["data"]["i"] for e in out] == [0, 100, 200]
    assert reel.run("tail", "--types", "nothing").stdout == b""


def test_tail_follow_with_types_sees_new_matching_events(reel):
    reel.ingest("f", [{"type": "noise"}] * 50)
    p = subprocess.Popen([REEL, "tail", "--data", reel.data, "--session", "f", "--types", "hit",
                          "--follow"], stdout=subprocess.PIPE)
    try:
        time.sleep(0.3)
        reel.ingest("f", [{"type": "noise"}] * 10 + [{"type": "hit", "data": 1}])
        line = p.stdout.readline()
        assert json.loads(line)["type"] == "hit" and json.loads(line)["sequence"] == 61
    finally:
        p.terminate()
        p.wait(5)
