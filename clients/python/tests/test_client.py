"""The Python client (clients/python/reel_client) against a real `reel serve` (conftest.py)."""
import datetime
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from conftest import PKG, FlakyProxy, Server
from reel_client import (ReelClient, ReelConnectionError, ReelError, new_event_id,
                         quote_id)

ODD_IDS = ["team/alpha", "ünï", "my session", "a%2Fb", "p+q", "x?y#z&w=1", "日本/語 ü"]


def seqs(events):
    return [e["sequence"] for e in events]


# -- append ---------------------------------------------------------------------------

def test_append_and_batch(client):
    r = client.append("s1", {"type": "user.message", "data": {"text": "hi"}})
    assert (r["session_id"], r["first_sequence"], r["last_sequence"], r["duplicates"]) == \
        ("s1", 1, 1, 0)
    evs = [{"type": "item.delta", "data": {"i": i}} for i in range(5)]
    r = client.append_batch("s1", evs)
    assert (r["first_sequence"], r["last_sequence"], r["duplicates"]) == (2, 6, 0)
    assert all("event_id" not in e for e in evs), "the caller's dicts are not changed"
    page = client.events("s1")
    assert seqs(page.events) == [1, 2, 3, 4, 5, 6]
    assert [e["data"] for e in page.events[1:]] == [{"i": i} for i in range(5)]
    ids = [e["event_id"] for e in page.events]
    assert len(set(ids)) == 6 and all(len(i) == 36 and i[14] == "7" for i in ids)
    # An explicit event id is kept, and sending it again is a duplicate.
    r = client.append("s1", {"type": "t", "event_id": "mine"})
    r2 = client.append("s1", {"type": "t", "event_id": "mine"})
    assert r2["first_sequence"] == r["first_sequence"] == 7 and r2["duplicates"] == 1
    # expected_sequence
    with pytest.raises(ReelError) as ei:
        client.append("s1", {"type": "t"}, expected_sequence=3)
    assert ei.value.status == 409 and ei.value.code == "sequence_conflict"
    assert ei.value.type == "urn:reel:error:sequence_conflict"
    assert client.append("s1", {"type": "t"}, expected_sequence=7)["first_sequence"] == 8
    assert client.get_session("s1")["last_sequence"] == 8
    with pytest.raises(ValueError):
        client.append_batch("s1", [])


def test_new_event_ids_are_time_ordered_uuid7():
    a = [new_event_id() for _ in range(200)]
    assert len(set(a)) == 200
    assert all(x[14] == "7" and x[19] in "89ab" for x in a)
    assert sorted(x[:13] for x in a) == [x[:13] for x in a]


def test_retry_after_dropped_answer_does_not_duplicate(server, proxy):
    """The proxy forwards the first attempt (it commits) and drops the connection before the
    answer: the client sends the same event ids again and gets the duplicates' sequences."""
    p = proxy(["drop"])
    c = ReelClient(p.url, retries=3, backoff=0.02)
    r = c.append_batch("idem", [{"type": "t", "data": {"i": i}} for i in range(3)])
    assert (r["first_sequence"], r["last_sequence"], r["duplicates"]) == (1, 3, 3)
    assert len(p.requests) == 2 and p.requests[0][2] == p.requests[1][2]
    p.plan.append("drop")
    r = c.append("idem", {"type": "single"})
    assert (r["first_sequence"], r["duplicates"]) == (4, 1)
    # With expected_sequence too: the retry is all duplicates, which succeeds.
    p.plan.append("drop")
    r = c.append("idem", {"type": "cond"}, expected_sequence=4)
    assert (r["first_sequence"], r["duplicates"]) == (5, 1)
    direct = ReelClient(server.url)
    evs = direct.events("idem").events
    assert seqs(evs) == [1, 2, 3, 4, 5]
    assert direct.get_session("idem")["event_count"] == 5
    # retries=0: the lost answer is an error (and the event is in, once).
    p.plan.append("drop")
    with pytest.raises(ReelConnectionError):
        ReelClient(p.url, retries=0).append("idem", {"type": "t", "event_id": "z"})
    assert direct.append("idem", {"type": "t", "event_id": "z"})["duplicates"] == 1


def test_5xx_and_429_are_retried_4xx_are_not(server, proxy):
    p = proxy(["503", "429", "503"])
    c = ReelClient(p.url, retries=5, backoff=0.01)
    assert c.append("r", {"type": "t"})["first_sequence"] == 1
    assert [m for m, _, _ in p.requests] == ["POST"] * 4
    # Retries exhausted: the last 503 is raised.
    p.requests.clear()
    p.plan.extend(["503"] * 3)
    with pytest.raises(ReelError) as ei:
        ReelClient(p.url, retries=2, backoff=0.01).get_session("r")
    assert ei.value.status == 503 and len(p.requests) == 3
    p.plan.clear()
    # 4xx: exactly one request each.
    for call, status in [
        (lambda: c.append("r", {"type": "t", "bogus": 1}), 400),
        (lambda: c.append("r", {"type": "t"}, expected_sequence=0), 409),
        (lambda: c.events("never-written"), 404),
        (lambda: c.put_session("r", agent="a", if_match=99), 412),
        (lambda: c.list_sessions(order="sideways"), 400),
    ]:
        p.requests.clear()
        with pytest.raises(ReelError) as ei:
            call()
        assert ei.value.status == status, ei.value
        assert len(p.requests) == 1, (status, p.requests)
    p.requests.clear()
    assert c.get_session("never-written") is None and len(p.requests) == 1
    assert c.events("r").events[-1]["sequence"] == 1


def test_connection_refused_gives_up_after_retries(tmp_path):
    from conftest import free_port
    c = ReelClient("http://127.0.0.1:%d" % free_port(), retries=2, backoff=0.01)
    t = time.time()
    with pytest.raises(ReelConnectionError) as ei:
        c.append("s", {"type": "t"})
    assert ei.value.status == 0 and ei.value.code == "network_error" and isinstance(ei.value.__cause__, ConnectionRefusedError)
    assert time.time() - t < 2


def test_stale_keepalive_connection_is_reopened(tmp_path):
    """The server closes idle connections after --request-timeout; the next request on the
    pooled connection is sent again at once on a new one, even with retries=0."""
    s = Server(tmp_path, ["--request-timeout", "1"]).start()
    try:
        c = ReelClient(s.url, retries=0)
        c.append("k", {"type": "t"})
        time.sleep(2.5)
        assert c.append("k", {"type": "t"})["first_sequence"] == 2
        assert c.get_session("k")["event_count"] == 2
    finally:
        s.stop()


def test_threads_share_a_client(client):
    def work(n):
        for i in range(20):
            client.append("thr", {"type": "t", "data": {"n": n, "i": i}})

    ts = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    evs = client.events("thr", limit=1000).events
    assert seqs(evs) == list(range(1, 161))
    assert sorted((e["data"]["n"], e["data"]["i"]) for e in evs) == \
        [(n, i) for n in range(8) for i in range(20)]


def test_keepalive_one_connection_per_thread(server, proxy):
    p = proxy()
    c = ReelClient(p.url)
    for i in range(30):
        c.append("ka", {"type": "t"})
    c.events("ka")
    c.get_session("ka")
    assert len(p.requests) == 32 and p.connections == 1
    t = threading.Thread(target=lambda: c.append("ka", {"type": "t"}))
    t.start()
    t.join()
    assert p.connections == 2  # each thread its own
    c.close()
    c.append("ka", {"type": "t"})
    assert p.connections == 3 and c.get_session("ka")["event_count"] == 32


def test_read_modify_write_with_if_match_loses_nothing(client):
    """Six threads each add their keys to one record's metadata with GET + PUT If-Match,
    reading again after a 412: every key is there at the end."""
    client.put_session("rmw", metadata={})

    def add(n):
        for k in range(5):
            while True:
                rec = client.get_session("rmw")
                meta = dict(rec["metadata"])
                meta["t%d-%d" % (n, k)] = k
                try:
                    client.put_session("rmw", metadata=meta, if_match=rec["version"])
                    break
                except ReelError as e:
                    assert e.status == 412
    ts = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rec = client.get_session("rmw")
    assert rec["metadata"] == {"t%d-%d" % (n, k): k for n in range(6) for k in range(5)}
    assert rec["version"] == 31


# -- reads ----------------------------------------------------------------------------

def test_poll_paging_and_newest(client):
    client.append_batch("pg", [{"type": "a" if i % 2 else "b", "data": i}
                               for i in range(1, 26)])
    got, after = [], 0
    while True:
        page = client.events("pg", after=after, limit=10)
        got += page.events
        after = page.next
        if not page.more:
            break
    assert seqs(got) == list(range(1, 26)) and after == 25
    assert seqs(client.events("pg", types=["a"], limit=100).events) == list(range(1, 26, 2))
    assert seqs(client.newest("pg", 3)) == [23, 24, 25]
    assert seqs(client.newest("pg", 100)) == list(range(1, 26))
    with pytest.raises(ReelError) as ei:
        client.newest("no-such", 3)
    assert ei.value.status == 404
    # Past one page of 10000: newest pages.
    for k in range(2):
        client.append_batch("big", [{"type": "t", "event_id": "e%d-%d" % (k, i)}
                                    for i in range(5300)])
    big = client.newest("big", 10200)
    assert seqs(big) == list(range(401, 10601))
    empty = client.events("pg", after=25)
    assert empty.events == [] and empty.next == 25 and not empty.more
    assert "raw" not in got[0]
    client.append("pg", {"type": "t", "raw": {"wire": [1, 2]}})
    assert client.events("pg", after=25, include_raw=True).events[0]["raw"] == {"wire": [1, 2]}


def test_long_poll_timing(client):
    client.append("lp", {"type": "t"})
    # Nothing comes: the answer is empty after the wait (rounded up to whole seconds).
    t = time.monotonic()
    page = client.events("lp", after=1, wait_ms=1000)
    took = time.monotonic() - t
    assert page.events == [] and page.next == 1
    assert 0.9 <= took < 3, took
    # An event committed during the wait answers it at once.
    timer = threading.Timer(0.3, lambda: ReelClient(client.base_url).append("lp", {"type": "x"}))
    timer.start()
    t = time.monotonic()
    page = client.events("lp", after=1, wait_ms=10000)
    took = time.monotonic() - t
    timer.join()
    assert seqs(page.events) == [2] and 0.25 <= took < 2, took
    # The feed long-polls the same way.
    pos = page.events[0]["position"]
    timer = threading.Timer(0.3, lambda: ReelClient(client.base_url).append("lp2", {"type": "y"}))
    timer.start()
    t = time.monotonic()
    fp = client.feed(after=pos, wait_ms=10000)
    took = time.monotonic() - t
    timer.join()
    assert [e["session_id"] for e in fp.events] == ["lp2"] and took < 2
    assert fp.next == fp.events[0]["position"]
    whole = client.feed()
    assert [e["session_id"] for e in whole.events] == ["lp", "lp", "lp2"]
    assert [e["type"] for e in client.feed(types=["x", "y"]).events] == ["x", "y"]
    assert [e["position"] for e in client.feed(after=1, limit=1).events] == \
        [whole.events[1]["position"]]


def test_polling_sees_missing_session(client):
    with pytest.raises(ReelError) as ei:
        client.events("nobody", wait_ms=1000)
    assert ei.value.status == 404 and ei.value.code == "session_not_found"
    assert ei.value.problem["status"] == 404 and "nobody" in ei.value.detail


# -- session records --------------------------------------------------------------------

def test_sessions_list_prefix_order_filters_paging(client):
    client.put_session("lst/a", agent="x")
    client.put_session("lst/b", agent="y")
    client.put_session("lst/c", agent="x")
    client.put_session("lst0", agent="x")
    client.put_session("other", agent="x")
    client.put_session("p+q")
    time.sleep(0.01)
    client.append("lst/a", {"type": "t"})  # now the most recent
    client.append("lst/b", {"type": "session.ended"})
    client.append("lst/c", {"type": "t"})
    client.delete_session("lst/c")

    ids = lambda page: [s["id"] for s in page.sessions]  # noqa: E731
    assert ids(client.list_sessions(prefix="lst/")) == ["lst/a", "lst/b", "lst/c"]
    assert ids(client.list_sessions(prefix="p+")) == ["p+q"]
    assert ids(client.list_sessions(prefix="lst/", agent="x")) == ["lst/a", "lst/c"]
    assert ids(client.list_sessions(prefix="lst", status="ended")) == ["lst/b"]
    assert ids(client.list_sessions(status="deleted")) == ["lst/c"]
    recent = ids(client.list_sessions(order="recent"))
    assert recent[0] == "lst/c" and recent.index("lst/a") < recent.index("lst/b") or \
        recent[:2] == ["lst/c", "lst/b"], recent
    assert set(recent) == {"lst/a", "lst/b", "lst/c", "lst0", "other", "p+q"}
    first = client.list_sessions(prefix="lst", limit=2)
    assert ids(first) == ["lst/a", "lst/b"] and first.cursor is not None
    second = client.list_sessions(prefix="lst", limit=2, cursor=first.cursor)
    assert ids(second) == ["lst/c", "lst0"]
    assert [s["id"] for s in client.all_sessions(limit=1)] == \
        ["lst/a", "lst/b", "lst/c", "lst0", "other", "p+q"]
    assert [s["id"] for s in client.all_sessions(order="recent", limit=2)] == recent
    assert [s["id"] for s in client.all_sessions(agent="x", limit=1)] == \
        ["lst/a", "lst/c", "lst0", "other"]


def test_put_session_if_match_412_leaves_record_unchanged(client):
    rec = client.put_session("cond", agent="claude", native_session_id="n1",
                             metadata={"team": "infra", "n": 1})
    assert rec["version"] == 1 and rec["metadata"] == {"team": "infra", "n": 1}
    rec = client.put_session("cond", metadata={"team": "infra", "n": 2}, if_match=1)
    assert rec["version"] == 2 and rec["agent"] == "claude"
    before = client.get_session("cond")
    with pytest.raises(ReelError) as ei:
        client.put_session("cond", agent="other", metadata={}, if_match=1)
    e = ei.value
    assert (e.status, e.code) == (412, "precondition_failed")
    assert e.problem["type"] == e.type == "urn:reel:error:precondition_failed"
    assert e.headers.get("etag") == '"2"' and "version 1" in e.detail
    assert client.get_session("cond") == before
    with pytest.raises(ReelError) as ei:
        client.put_session("cond", agent="x", if_none_match="*")
    assert ei.value.status == 412 and client.get_session("cond") == before
    assert client.put_session("fresh", agent="a", if_none_match="*")["version"] == 1
    # null for agent is "unchanged" in reel (docs/HTTP.md "Sessions"), not a clear.
    assert client.put_session("cond", agent=None, if_match="*")["agent"] == "claude"
    with pytest.raises(ReelError) as ei:
        client.put_session("missing", agent="a", if_match="*")
    assert ei.value.status == 412 and client.get_session("missing") is None
    # A field left out is unchanged; metadata=None clears it.
    rec = client.put_session("cond", metadata=None)
    assert rec["metadata"] == {} and rec["native_session_id"] == "n1"
    # delete with a stale version: 412, still there; with the current one: deleted.
    v = client.get_session("cond")["version"]
    with pytest.raises(ReelError) as ei:
        client.delete_session("cond", if_match=v - 1)
    assert ei.value.status == 412 and client.get_session("cond")["status"] == "active"
    assert client.delete_session("cond", if_match=v) is True
    assert client.get_session("cond")["status"] == "deleted"
    assert client.delete_session("never") is False
    with pytest.raises(ReelError) as ei:
        client.append("cond", {"type": "t"})
    assert ei.value.status == 410
    with pytest.raises(ValueError):
        client.put_session("cond", if_match=0)


def test_conditional_put_retried_after_lost_answer(server, proxy):
    """If-Match: the first attempt applies, its answer is lost; the retry meets 412 but the
    client sees its own change in the record and answers it."""
    direct = ReelClient(server.url)
    direct.put_session("rp", agent="a")
    p = proxy(["drop"])
    c = ReelClient(p.url, retries=2, backoff=0.01)
    rec = c.put_session("rp", agent="b", metadata={"k": 1}, if_match=1)
    assert rec["version"] == 2 and rec["agent"] == "b"
    assert [m for m, _, _ in p.requests] == ["PUT", "PUT", "GET"]
    p.plan.append("drop")
    assert c.put_session("rp2", agent="n", if_none_match="*")["version"] == 1
    # A real conflict is still a 412.
    with pytest.raises(ReelError) as ei:
        c.put_session("rp", agent="c", if_match=1)
    assert ei.value.status == 412 and direct.get_session("rp")["agent"] == "b"


@pytest.mark.parametrize("sid", ODD_IDS)
def test_odd_session_ids(client, sid):
    assert "/" not in quote_id(sid) and " " not in quote_id(sid)
    r = client.append(sid, {"type": "t", "data": {"id": sid}})
    assert r["session_id"] == sid
    evs = client.events(sid).events
    assert [(e["session_id"], e["data"]["id"]) for e in evs] == [(sid, sid)]
    assert client.get_session(sid)["id"] == sid
    assert client.put_session(sid, agent="ag")["id"] == sid
    assert [s["id"] for s in client.list_sessions(prefix=sid).sessions] == [sid]
    assert client.restore(sid)["events"][0]["session_id"] == sid
    assert client.transcript(sid)["session_id"] == sid
    with client.export_stream([sid], compression="none") as f:
        lines = [json.loads(x) for x in f.read().splitlines()]
    assert [x["id"] for x in lines if x.get("record") == "session"] == [sid]
    with client.subscribe(sid) as sub:
        assert next(sub)["session_id"] == sid
    assert client.delete_session(sid) is True


def test_lone_surrogates_round_trip(client):
    data = {"s": "\ud83d", "\udc00key": ["x\ud800y", "\ude00\ud83d"], "n": 12345678901234567890}
    client.append("sur", {"type": "t\ud83d", "data": data, "source": "\udfff",
                          "native_session_id": "n\ud800"})
    ev = client.events("sur").events[0]
    assert ev["type"] == "t\ud83d" and ev["data"] == data
    assert ev["source"] == "\udfff" and ev["native_session_id"] == "n\ud800"
    assert client.newest("sur", 1)[0]["data"] == data
    with client.subscribe("sur") as sub:
        assert next(sub)["data"] == data
    rec = client.put_session("sur", metadata={"m\ud83d": "\udc00"}, agent="a\ud800")
    assert rec["metadata"] == {"m\ud83d": "\udc00"} and rec["agent"] == "a\ud800"
    assert client.get_session("sur")["metadata"] == {"m\ud83d": "\udc00"}
    with client.export_stream(["sur"], compression="none") as f:
        evs = [json.loads(x) for x in f.read().splitlines()]
    assert [x["data"] for x in evs if "record" not in x] == [data]
    # A high surrogate followed by a low one is a pair in JSON (UTF-16): it reads back as the
    # astral character, as JSON.parse gives it.
    client.append("sur", {"type": "pair", "data": "\ud83d\ude00"})
    assert client.events("sur", after=1).events[0]["data"] == "\U0001f600"
    with pytest.raises(UnicodeEncodeError):
        client.append("id\ud800", {"type": "t"})  # an id is UTF-8: no lone surrogate


def test_client_time(client):
    iso = "2026-01-02T03:04:05.678Z"
    client.append_batch("ct", [
        {"type": "t", "source": "client", "data": {"a": 1}, "client_time": 1700000000123},
        {"type": "t", "source": "agent", "data": {"b": 2}, "client_time": iso},
        {"type": "t", "source": "agent", "data": {"c": 3}, "client_time": None},
    ])
    evs = client.events("ct").events
    assert evs[0]["client_time"] == 1700000000123 and evs[1]["client_time"] == iso
    assert "client_time" not in evs[2]
    ms = int(datetime.datetime(2026, 1, 2, 3, 4, 5, 678000,
                               tzinfo=datetime.timezone.utc).timestamp() * 1000)
    text = client.restore("ct", fit="sdk")["replay_text"]
    lines = text.split("\n")[1:]
    assert [json.loads(x)["createdAt"] for x in lines[:2]] == [1700000000123, ms]
    with pytest.raises(ReelError) as ei:
        client.append("ct", {"type": "t", "client_time": 1.5})
    assert ei.value.status == 400 and "client_time" in ei.value.detail
    assert client.get_session("ct")["event_count"] == 3


# -- projections and export -------------------------------------------------------------

def test_restore_transcript_export(client, tmp_path):
    client.append_batch("rx", [
        {"type": "user.message", "data": {"text": "hello"}},
        {"type": "item.started", "data": {"item_id": "m1", "kind": "message", "role": "assistant"}},
        {"type": "item.delta", "data": {"item_id": "m1", "delta": "Hi "}},
        {"type": "item.delta", "data": {"item_id": "m1", "delta": "there"}},
        {"type": "item.completed", "data": {"item_id": "m1"}},
    ])
    client.append("other", {"type": "t"})
    r = client.restore("rx", max_events=3)
    assert (r["from_sequence"], r["to_sequence"]) == (3, 5) and seqs(r["events"]) == [3, 4, 5]
    assert r["replay_text"].startswith("Previous session history") and not r["truncated"]
    assert client.restore("rx", max_events=5, max_chars=120)["truncated"] is True
    tj = client.transcript("rx")
    assert tj["session_id"] == "rx" and tj["last_sequence"] == 5
    assert "Hi there" in json.dumps(tj["items"])
    md = client.transcript("rx", format="markdown")
    assert isinstance(md, str) and md.startswith("# Session") and "Hi there" in md
    assert client.transcript("rx", at=2)["at"] == 2

    with client.export_stream(["rx"], compression="none") as f:
        assert "ndjson" in f.content_type
        plain = [json.loads(x) for x in f]
    assert plain[0]["record"] == "export" and plain[-1]["record"] == "end"
    assert [x["sequence"] for x in plain if "record" not in x] == [1, 2, 3, 4, 5]
    with client.export_stream(["rx"]) as f:
        assert f.content_type == "application/zstd"
        packed = b""
        while True:
            chunk = f.read(7)
            if not chunk:
                break
            packed += chunk
    assert packed[:4] == b"\x28\xb5\x2f\xfd"
    if shutil.which("zstd"):
        out = subprocess.run(["zstd", "-dc"], input=packed, capture_output=True, check=True)
        unpacked = [json.loads(x) for x in out.stdout.splitlines()]
        assert [x for x in unpacked if "record" not in x] == \
            [x for x in plain if "record" not in x]
    with client.export_stream(compression="none") as f:
        every = [json.loads(x) for x in f.read().splitlines()]
    assert {x["session_id"] for x in every if "record" not in x} == {"rx", "other"}
    with client.export_stream(["rx", "other"], compression="none") as f:
        both = [json.loads(x) for x in f.read().splitlines()]
    assert sum(1 for x in both if "record" not in x) == 6
    with client.export_stream(compression="none", after=2, until=4) as f:
        part = [json.loads(x) for x in f.read().splitlines()]
    assert [x["position"] for x in part if "record" not in x] == [3, 4]
    with pytest.raises(ReelError) as ei:
        client.export_stream(["nope"])
    assert ei.value.status == 404
    with pytest.raises(ReelError):
        client.restore("nope")


# -- SSE --------------------------------------------------------------------------------

def collect(sub, out, n, done):
    try:
        for ev in sub:
            out.append(ev)
            if len(out) >= n:
                break
    except Exception as e:  # noqa: BLE001 -- reported by the test
        out.append(e)
    finally:
        done.set()


def wait_for(pred, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_sse_iterator_survives_kill9_and_restart(tmp_path):
    s = Server(tmp_path).start()
    try:
        c = ReelClient(s.url, retries=8, backoff=0.05)
        total = 150
        c.append_batch("live", [{"type": "t", "data": {"i": i}} for i in range(1, 41)])
        c.append("bystander", {"type": "t"})
        got, fgot = [], []
        done, fdone = threading.Event(), threading.Event()
        sub = c.subscribe("live", reconnect_timeout=30)
        fsub = c.subscribe(None, reconnect_timeout=30)
        threading.Thread(target=collect, args=(sub, got, total, done), daemon=True).start()
        threading.Thread(target=collect, args=(fsub, fgot, total + 1, fdone),
                         daemon=True).start()
        assert wait_for(lambda: len(got) >= 40 and len(fgot) >= 41)
        i = 41
        for round_ in range(3):
            s.kill9()  # mid-stream: the subscribers are connected and caught up
            time.sleep(0.2)
            s.start()
            for _ in range(4):  # live events, some while the subscribers reconnect
                batch = [{"type": "t", "data": {"i": j}} for j in range(i, min(i + 9, total + 1))]
                if batch:
                    c.append_batch("live", batch)
                i += len(batch)
                time.sleep(0.05)
            # Both followed this round (the feed also has the bystander's event).
            assert wait_for(lambda: len(got) >= i - 1 and len(fgot) >= i), \
                (round_, len(got), len(fgot), i)
        while i <= total:
            c.append("live", {"type": "t", "data": {"i": i}})
            i += 1
        assert done.wait(20) and fdone.wait(20), (len(got), len(fgot))
        assert not [x for x in got + fgot if isinstance(x, Exception)], got + fgot
        assert seqs(got) == list(range(1, total + 1))
        assert [e["data"]["i"] for e in got] == list(range(1, total + 1))
        live_feed = [e for e in fgot if e["session_id"] == "live"]
        assert seqs(live_feed) == list(range(1, total + 1)) and len(fgot) == total + 1
        pos = [e["position"] for e in fgot]
        assert pos == sorted(set(pos))
        assert sub.reconnects >= 3 and fsub.reconnects >= 3
        assert sub.last_id == total
        sub.close()
        fsub.close()
    finally:
        s.stop()


def test_sse_close_from_another_thread_and_resume_after(client):
    client.append_batch("cl", [{"type": "t"} for _ in range(3)])
    sub = client.subscribe("cl")
    got = [next(sub), next(sub), next(sub)]
    threading.Timer(0.3, sub.close).start()
    t = time.monotonic()
    with pytest.raises(StopIteration):
        next(sub)  # blocked waiting for a live event until close()
    assert time.monotonic() - t < 3 and sub.closed
    client.append("cl", {"type": "t"})
    with client.subscribe("cl", after=sub.last_id) as again:
        got.append(next(again))
    assert seqs(got) == [1, 2, 3, 4]
    with client.subscribe("cl", types=["nothing"], after=0) as none:
        threading.Timer(0.3, none.close).start()
        assert list(none) == []


def test_sse_errors_and_deleted_session(client):
    with pytest.raises(ReelError) as ei:
        next(client.subscribe("absent"))
    assert ei.value.status == 404
    client.append("gone", {"type": "t"})
    sub = client.subscribe("gone")
    assert next(sub)["sequence"] == 1
    deleter = threading.Timer(0.3, lambda: client.delete_session("gone"))
    deleter.start()
    t = time.monotonic()
    assert list(sub) == [] and time.monotonic() - t < 5  # the stream ends on delete
    deleter.join()  # its answer may come after the stream's end


def test_token_auth(tmp_path):
    s = Server(tmp_path, ["--token", "s3cr3t"]).start()
    try:
        with pytest.raises(ReelError) as ei:
            ReelClient(s.url).append("a", {"type": "t"})
        assert ei.value.status == 401
        c = ReelClient(s.url, token="s3cr3t")
        c.append("a", {"type": "t"})
        with c.subscribe("a") as sub:
            assert next(sub)["sequence"] == 1
        with c.export_stream(["a"], compression="none") as f:
            assert b'"record":"end"' in f.read()
    finally:
        s.stop()


def test_pip_installable(tmp_path):
    """pyproject.toml builds offline (no dependencies) and ships py.typed."""
    pytest.importorskip("setuptools")
    target = tmp_path / "site"
    src = tmp_path / "src"  # a copy: a build writes build/ and *.egg-info next to the sources
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build",
                                                            "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index",
                        "--no-build-isolation", "--no-deps", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "reel_client" / "py.typed").exists()
    out = subprocess.run([sys.executable, "-c", "import reel_client, sys; "
                          "print(reel_client.__file__)"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(target)), cwd=str(tmp_path))
    assert out.stdout.startswith(str(target)), out.stdout + out.stderr


# FlakyProxy is used through the fixture; keep the import visible for readers.
assert FlakyProxy


def test_types_check_strict():
    """The package and typical calling code pass mypy --strict (python3-mypy, scripts/deps.sh)."""
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.skip("mypy is not installed (python3-mypy)")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                        "--cache-dir", os.devnull, "reel_client",
                        os.path.join("tests", "typecheck_usage.py")],
                       cwd=PKG, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
