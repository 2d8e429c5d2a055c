"""Issue 14, finding 6: a flipped byte inside a stored event value is never served.

Each case flips one byte of one event value in data.mdb (the server stopped), restarts
the server, and reads that event through every read route. Every route must answer
500 `store_corrupt` naming the session and the sequence (or, for a stream that had
already started, stop without the damaged event), `reel_store_corrupt_reads_total`
must count, the log must say it, and no altered text may appear in any answer.
Every copy of the value is flipped: LMDB's copy-on-write leaves older copies of a page in
free pages, and the test must not depend on which one is live.
"""
import http.client
import json
import shutil

import pytest

from conftest import SSEClient

N = 12          # events in session "s"; the damaged one is TARGET
TARGET = 7
BIG = 9         # a zstd-compressed event (its body is 1900 bytes or more)


def marker(i):
    return "marker-%03d-abcdefghij" % i


def big_text(i):
    return ("compressible line %03d " % i) * 200


def fill(server):
    evs = []
    for i in range(1, N + 1):
        data = {"m": marker(i)}
        if i == BIG:
            data["big"] = big_text(i)
        evs.append({"type": "t", "event_id": "evid-%03d-0123456789" % i, "data": data})
    assert server.append("s", evs).status in (200, 201)
    assert server.append("other", [{"type": "t", "data": {"m": "other"}}]).status in (200, 201)
    # A Durable Streams session whose third message is damaged in the ds case.
    h = {"Content-Type": "application/json"}
    assert server.request("PUT", "/v1/stream/flip", body=b'[{"n":"ds-one"},{"n":"ds-two"},'
                          b'{"n":"ds-three-abcdefgh"}]', headers=h).status == 201


def find_all(buf, needle):
    out, i = [], buf.find(needle)
    while i >= 0:
        out.append(i)
        i = buf.find(needle, i + 1)
    return out


# A value's header: 57 bytes, or in a store with short headers (docs/FORMAT.md 21.2) 41
# for these events: flags (0x08 set), session number 1 and sequence < 128 in one byte
# each, the time (Unix ms) in 6, the chain hash.
SHORT = 41


def value_starts(buf, i):
    """(offset, short) of every stored copy of event i's value (the body starts after the
    header with fixarray 8, or 7 in format 1, then the event_id as a fixstr)."""
    eid = ("evid-%03d-0123456789" % i).encode()
    out = []
    for n in (b"\x97", b"\x98"):
        for o in find_all(buf, n + bytes([0xa0 | len(eid)]) + eid):
            short = buf[o - SHORT] & 0x08 and buf[o - SHORT + 1] == 1
            out.append((o - (SHORT if short else 57), bool(short)))
    return out


def flip(data_dir, where):
    """Flips the chosen byte(s) in every copy; returns how many were changed."""
    path = data_dir + "/data.mdb"
    buf = bytearray(open(path, "rb").read())
    spots = where(bytes(buf))
    assert spots, "nothing to flip"
    for o in spots:
        buf[o] ^= 0x20
    open(path, "wb").write(bytes(buf))
    return len(spots)


def header_byte(off, short_off):
    """Byte 'off' of a 57-byte header, 'short_off' of a short one."""
    return lambda buf: [v + (short_off if short else off)
                        for v, short in value_starts(buf, TARGET)]


def in_marker(buf):
    return [o + 3 for o in find_all(buf, marker(TARGET).encode())]


def in_zstd(buf):
    # The big event is the only compressed value: its frame starts with the zstd magic.
    return [o + 60 for o in find_all(buf, b"\x28\xb5\x2f\xfd")]


def in_ds(buf):
    return [o + 4 for o in find_all(buf, b"ds-three-abcdefgh")]


CASES = {
    "flags": (header_byte(0, 0), TARGET),
    "session-number": (header_byte(8, 1), TARGET),
    "sequence": (header_byte(16, 2), TARGET),
    "time": (header_byte(24, 8), TARGET),
    "chain-hash": (header_byte(40, 24), TARGET),
    "event-id": (header_byte(57 + 2 + 3, SHORT + 2 + 3), TARGET),  # fixarray, fixstr, 2 in
    "data-text": (in_marker, TARGET),
    "zstd-frame": (in_zstd, BIG),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A stopped server's data directory holding the events above."""
    import conftest
    d = tmp_path_factory.mktemp("pristine")
    s = conftest.Server(d, args=["--sync", "none"])
    s.start()
    fill(s)
    s.stop()
    return s.data


def corrupt_count(server):
    for line in server.get("/metrics").body.decode().splitlines():
        if line.startswith("reel_store_corrupt_reads_total "):
            return int(line.split()[1])
    raise AssertionError("no reel_store_corrupt_reads_total metric")


def assert_corrupt(r, seq, session="s", route=""):
    """500 store_corrupt naming 'session' and 'seq' (seq None: the position only; the feed
    reaches a value by position and cannot trust a damaged header's session or sequence)."""
    assert r.status == 500, (route, r)
    j = r.json
    assert j["type"] == "urn:reel:error:store_corrupt", (route, j)
    if seq is None:
        assert "(position " in j["detail"], (route, j)
        return
    assert "session '%s'" % session in j["detail"], (route, j)
    assert "sequence %d " % seq in j["detail"], (route, j)


def never_served(body, seq):
    """No text of the damaged event (altered or not) is in an answer."""
    text = body if isinstance(body, bytes) else body.encode()
    assert b"%03d-abcdefghij" % seq not in text
    assert b"line %03d" % seq not in text


def sse_events(server, path):
    """(status, events received) of an SSE stream read until it ends or goes quiet."""
    c = SSEClient(server, path, timeout=3)
    got = []
    if c.status != 200:
        c.close()
        return c.status, got
    try:
        while True:
            m = c.next()
            if m is None:
                break
            got.append(m[1])
    except OSError:
        pass
    c.close()
    return 200, got


@pytest.mark.parametrize("case", sorted(CASES))
def test_flipped_value_byte_is_refused_on_every_read_route(server_factory, pristine, case):
    where, seq = CASES[case]
    s = server_factory(args=["--sync", "none"], start=False)
    shutil.copytree(pristine, s.data)
    assert flip(s.data, where) >= 1
    s.start()

    routes = {
        "page": "/v1/sessions/s/events?offset=0&limit=100",
        "poll": "/v1/sessions/s/events?offset=%d&limit=100" % (seq - 1),
        "restore": "/v1/sessions/s/restore?max_events=50",
        "transcript": "/v1/sessions/s/transcript",
        "transcript-md": "/v1/sessions/s/transcript?format=markdown",
        "feed": "/v1/events?after=0&limit=1000&include_raw=true",
        "stats": "/v1/stats",
    }
    for name, path in routes.items():
        r = s.get(path)
        # The feed reaches a value by position: it cannot trust a damaged header's session
        # or sequence, nor a header whose flags (which say its layout) are damaged.
        blind = name in ("feed", "stats") and case in ("session-number", "sequence", "flags")
        assert_corrupt(r, None if blind else seq, route=name)
        never_served(r.body, seq)
    # Events before the damage are still served (a page reads one event past its limit
    # to know hasMore, so the page that stops short of the damage has seq - 2 events).
    r = s.get("/v1/sessions/s/events?offset=0&limit=%d" % (seq - 2))
    assert r.status == 200 and len(r.json["events"]) == seq - 2 and r.json["hasMore"] is True
    # Other sessions are untouched.
    assert s.get("/v1/sessions/other/events").status == 200
    # Streams: a 500 before the stream starts, or a stream that stops before the event.
    for path in ("/v1/sessions/s/events/sse?offset=0", "/v1/events/sse?after=0"):
        status, got = sse_events(s, path)
        assert status in (200, 500), path
        assert all(not (e.get("session_id") == "s" and e.get("sequence", 0) >= seq)
                   for e in got), path
        never_served(json.dumps(got), seq)
    for path in ("/v1/sessions/s/export?compression=none", "/v1/export?compression=none"):
        try:
            r = s.get(path)
        except (http.client.IncompleteRead, ValueError) as e:
            # The chunked stream was cut off: the client sees a failed transfer.
            partial = getattr(e, "partial", b"") or b""
            never_served(partial, seq)
            continue
        never_served(r.body, seq)
        if r.status == 200:  # the stream had started: it must not look complete
            lines = [json.loads(l) for l in r.body.splitlines() if l.strip()]
            assert not any(l.get("session_id") == "s" and l.get("sequence", 0) >= seq
                           for l in lines), path
            assert not lines or lines[-1].get("type") != "end", path
        else:
            assert r.status == 500, (path, r)
    assert corrupt_count(s) >= len(routes)  # a fresh server: each refusal counted
    assert "store_corrupt" in s.log_text()
    v = s.get("/v1/sessions/s/verify").json
    assert v["ok"] is False


def test_flipped_durable_stream_message_is_refused(server_factory, pristine):
    s = server_factory(args=["--sync", "none"], start=False)
    shutil.copytree(pristine, s.data)
    assert flip(s.data, in_ds) >= 1
    s.start()
    r = s.get("/v1/stream/flip?offset=-1")
    assert_corrupt(r, 3, session="ds:flip", route="ds read")
    assert b"ds-thr" not in r.body
    r = s.get("/v1/sessions/ds:flip/events")
    assert_corrupt(r, 3, session="ds:flip", route="ds page")
    assert corrupt_count(s) >= 2


def test_session_record_last_sequence_lowered_is_refused(server_factory, pristine):
    """A record whose last_seq was damaged must not cut the session short quietly."""
    s = server_factory(args=["--sync", "none"], start=False)
    shutil.copytree(pristine, s.data)

    def last_seq(buf):
        # "last_seq" then its value, a positive fixint N: make it N - 4 (a bit flip of 4).
        return [o + 9 for o in find_all(buf, b"\xa8last_seq" + bytes([N]))]
    path = s.data + "/data.mdb"
    buf = bytearray(open(path, "rb").read())
    spots = last_seq(bytes(buf))
    assert spots
    for o in spots:
        buf[o] ^= 0x04
    open(path, "wb").write(bytes(buf))
    s.start()
    r = s.get("/v1/sessions/s/events?offset=0&limit=100")
    assert_corrupt(r, N - 4, route="page")
    r = s.get("/v1/sessions/s/events?offset=%d" % (N - 4))
    # The record no longer agrees with itself (its count is N, its last sequence N - 4):
    # refused when it is read, naming the session and the sequence it claims.
    assert_corrupt(r, N - 4, route="page past the record's end")


def test_damaged_session_name_is_not_served_in_the_feed(server_factory, pristine):
    """The feed names a value's session through session_ids (number -> id); a flipped
    byte there must not serve "other"'s events under another id."""
    s = server_factory(args=["--sync", "none"], start=False)
    shutil.copytree(pristine, s.data)
    # session_ids: key = number 2 (u64 BE), value = "other"; in a leaf the value follows
    # the key.
    assert flip(s.data, lambda buf: [o + 8 for o in find_all(buf, b"\0" * 7 + b"\x02other")]) >= 1
    s.start()
    r = s.get("/v1/events?after=0&limit=1000")
    assert_corrupt(r, None, route="feed")
    assert b"\"session_id\":\"Other\"" not in r.body
    assert corrupt_count(s) >= 1
