"""client_time: the caller's timestamp of an event (docs/HTTP.md "Append").

Unix ms (an integer 0..8.64e15) or an RFC 3339 string (the subset Date.parse reads as the
same instant), stored as given, served right after `time` in every envelope (poll, feed,
SSE, restore's events, export), absent when not given or null; `time` stays the commit
time. restore?fit=sdk uses it as createdAt. Anything else is a 400 naming the field and
the value, and nothing of the request is appended.
"""
import json

import pytest

from conftest import SSEClient

GOOD = [1700000000123, 0, 8640000000000000, "2026-01-02T03:04:05Z",
        "2026-01-02 03:04:05.123456789+05:30", "2026-01-02t03:04:05.1z",
        "2024-02-29T23:59:59.999-23:59"]
# Date.parse of each (node 20); the integers are themselves.
CREATED_AT = [1700000000123, 0, 8640000000000000, 1767323045000, 1767303245123,
              1767323045100, 1709337539999]


def post(server, sid, events):
    return server.append(sid, events)


def test_client_time_is_stored_as_given_and_served_after_time(server):
    evs = [{"type": "t%d" % i, "client_time": ct} for i, ct in enumerate(GOOD)]
    evs += [{"type": "none"}, {"type": "null", "client_time": None}]
    r = post(server, "ct", evs)
    assert r.status == 200, r
    got = server.events("ct")
    for e, sent in zip(got, evs):
        keys = list(e)
        if sent.get("client_time") is None:
            assert "client_time" not in e
        else:
            assert e["client_time"] == sent["client_time"]
            assert type(e["client_time"]) is type(sent["client_time"])
            assert keys[keys.index("time") + 1] == "client_time"
        assert e["time"].endswith("Z") and e["time"] != e.get("client_time")
    # The raw bytes: the string exactly as sent (no normalisation), the integer as digits.
    raw = server.get("/v1/sessions/ct/events").body.decode()
    assert '"client_time":"2026-01-02 03:04:05.123456789+05:30"' in raw
    assert '"client_time":8640000000000000,' in raw
    # The feed, restore's events and the export carry it too.
    feed = [e for e in server.feed() if e["session_id"] == "ct"]
    assert [e.get("client_time") for e in feed] == [e.get("client_time") for e in got]
    res = server.get("/v1/sessions/ct/restore?max_events=100&max_chars=100000").json
    assert [e.get("client_time") for e in res["events"]] == [e.get("client_time") for e in got]
    exp = server.get("/v1/sessions/ct/export?compression=none").body.decode().splitlines()
    lines = [json.loads(x) for x in exp if '"sequence"' in x]
    assert [e.get("client_time") for e in lines] == [e.get("client_time") for e in got]


def test_sse_events_carry_client_time(server):
    post(server, "sse", [{"type": "a", "client_time": "2026-01-02T03:04:05Z"}, {"type": "b"}])
    c = SSEClient(server, "/v1/sessions/sse/events/sse")
    _, first = c.next()
    _, second = c.next()
    c.close()
    assert first["client_time"] == "2026-01-02T03:04:05Z" and "client_time" not in second


def test_restore_sdk_created_at_is_client_time_else_the_commit_time(server):
    evs = [{"type": "t", "source": "agent", "client_time": ct, "data": {"i": i}}
           for i, ct in enumerate(GOOD)]
    evs.append({"type": "t", "source": "agent", "data": {"i": "commit"}})
    assert post(server, "sdk", evs).status == 200
    res = server.get("/v1/sessions/sdk/restore?fit=sdk&max_events=100&max_chars=100000").json
    lines = res["replay_text"].splitlines()[1:]
    assert [json.loads(x)["createdAt"] for x in lines[:-1]] == CREATED_AT
    commit = server.events("sdk")[-1]["time"]
    last = json.loads(lines[-1])
    assert last["payload"] == {"i": "commit"}
    # the commit time, in ms: reel's "YYYY-MM-DDTHH:MM:SS.mmmZ" read back
    import datetime
    t = datetime.datetime.strptime(commit, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert last["createdAt"] == round(t.timestamp() * 1000)


BAD = [
    ("1.5", "1.5"), ("1e3", "1e3"), ("1700000000000.0", "1700000000000.0"), ("-1", "-1"),
    ("-0", "-0"), ("8640000000000001", "8640000000000001"),
    ("18446744073709551616", "18446744073709551616"),
    ('"2026-02-30T00:00:00Z"', '"2026-02-30T00:00:00Z"'),
    ('"2016-12-31T23:59:60Z"', '"2016-12-31T23:59:60Z"'),
    ('"2026-01-02T03:04:05"', '"2026-01-02T03:04:05"'),
    ('"2026-01-02T03:04:05.0123456789Z"', '"2026-01-02T03:04:05.0123456789Z"'),
    ('"1969-12-31T23:59:59Z"', '"1969-12-31T23:59:59Z"'),
    ('"1700000000000"', '"1700000000000"'), ('"yesterday"', '"yesterday"'), ('""', '""'),
    ("{}", "an object"), ('{"ms":1}', "an object"), ("[1]", "an array"),
    ("true", "a boolean"), ("false", "a boolean"),
]


@pytest.mark.parametrize("value,named", BAD, ids=[b[0] for b in BAD])
def test_malformed_client_time_is_400_naming_it_and_nothing_is_appended(server, value, named):
    assert post(server, "bad", [{"type": "first"}]).status == 200
    body = '[{"type":"ok","client_time":1},{"type":"x","client_time":%s}]' % value
    r = server.request("POST", "/v1/sessions/bad/events", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    p = r.json
    assert p["type"] == "urn:reel:error:invalid_event"
    assert "'client_time'" in p["detail"] and named in p["detail"], p["detail"]
    assert [e["type"] for e in server.events("bad")] == ["first"]


def test_duplicate_client_time_is_400(server):
    r = server.request("POST", "/v1/sessions/dup/events",
                       body='{"type":"x","client_time":1,"client_time":2}',
                       headers={"Content-Type": "application/json"})
    assert r.status == 400 and "duplicate field 'client_time'" in r.json["detail"]
    assert server.get("/v1/sessions/dup").status == 404


def test_an_event_copied_from_a_feed_posts_back_with_its_client_time(server):
    post(server, "src", [{"type": "a", "client_time": "2026-01-02T03:04:05Z", "data": 1}])
    e = server.events("src")[0]
    e.pop("session_id")
    assert post(server, "copy", [e]).status == 200
    c = server.events("copy")[0]
    assert c["client_time"] == "2026-01-02T03:04:05Z" and c["event_id"] == e["event_id"]
