"""The store's envelope cache as the server uses it (store/cache.c, --event-cache-mb):
readers get the same bytes with it and without it, a deleted session's events are never
served from it, and it stays within its budget. tests/unit/store_cache.c has the rest."""
import json
import re

from conftest import SSEClient

EVENTS = [{"type": "t%d" % i, "event_id": "e%d" % i,
           "data": {"i": i, "text": "caf\u00e9 \"quoted\"\n\u2028 \ud83d\ude00" * (i % 7),
                    "n": 1.50, "big": 12345678901234567890}} for i in range(300)]


def metric(s, name):
    m = re.search(r"^%s (\d+)$" % name, s.get("/metrics").body.decode(), re.M)
    return int(m.group(1))


def load(s):
    for i in range(0, len(EVENTS), 100):
        assert s.append("c", EVENTS[i:i + 100]).status == 200


def pages(s):
    """Pages, the feed, SSE and restore: every reader that renders through the cache."""
    out = [s.get("/v1/sessions/c/events?offset=%d&limit=40" % o).body for o in (0, 40, 260)]
    out.append(s.get("/v1/events?after=0&limit=300").body)
    out.append(s.get("/v1/sessions/c/restore?max_events=30&max_chars=1000000").json["events"])
    c = SSEClient(s, "/v1/sessions/c/events/sse?offset=290")
    out.append([c.next() for _ in range(10)])
    c.close()
    return out


def test_cached_reads_are_byte_identical_to_uncached(server_factory):
    cached = server_factory(args=["--sync", "none"])
    plain = server_factory(args=["--sync", "none", "--event-cache-mb", "0"])
    for s in (cached, plain):
        load(s)
    first = pages(cached)
    assert metric(cached, "reel_event_cache_misses_total") > 0
    hits = metric(cached, "reel_event_cache_hits_total")
    again = pages(cached)
    assert metric(cached, "reel_event_cache_hits_total") > hits
    strip = lambda b: re.sub(rb'"(time|event_id)":"[^"]*"', b"", b) if isinstance(b, bytes) else b
    assert first == again
    # The other server assigned its own times; everything else must match byte for byte.
    assert [strip(x) for x in first[:4]] == [strip(x) for x in pages(plain)[:4]]
    assert metric(plain, "reel_event_cache_bytes") == 0


def test_deleted_session_is_not_served_from_the_cache(server_factory):
    s = server_factory(args=["--sync", "none"])
    load(s)
    assert s.get("/v1/sessions/c/events?limit=300").status == 200  # now cached
    assert s.request("DELETE", "/v1/sessions/c").status in (200, 204)
    assert s.get("/v1/sessions/c/events?limit=300").status == 410
    assert json.loads(s.get("/v1/events?after=0&limit=300").body)["events"] == []


def test_cache_stays_within_its_budget(server_factory):
    s = server_factory(args=["--sync", "none", "--event-cache-mb", "1"])
    big = [{"type": "big", "data": {"text": "x%d " % i * 2000}} for i in range(100)]
    for _ in range(6):
        assert s.append("b", big).status == 200
    for off in range(0, 600, 100):
        assert s.get("/v1/sessions/b/events?offset=%d&limit=100" % off).status == 200
    assert 0 < metric(s, "reel_event_cache_bytes") <= 1 << 20
