"""Tenants (issue 23, first part): named tokens limited to session prefixes.

For every row of the route table and every method it takes, tenant A's token gets for
tenant B's existing session or stream exactly what it gets for one that does not exist
(status, body with the id swapped, headers but Date and X-Request-Id); listings show only
A's sessions; the store-wide routes refuse A; 1,000+ path tricks and encodings never let A
read B's data; a token removed from the file stops working on an open connection after
SIGHUP, and its open streams end.

Positions count every tenant's events, so A never sees one: its envelopes, acks, stats and
exports carry none, its feed holds only its own events behind sealed cursors, and nothing A
reads (bodies, cursors, long-poll and SSE timing) changes when B writes."""
import http.client
import json
import random
import re
import select
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import REEL_BIN, Server
from test_options import ROUTES, concrete  # the route table, read from api/routes.c

SECRET_B = "BETA-SECRET-%d" % random.Random(7).randrange(10**9)


def add_token(path, name, scopes, prefixes=None, extra=()):
    args = [REEL_BIN, "tokens", "add", name, "--scopes", scopes, "--file", str(path), *extra]
    if prefixes:
        args += ["--prefixes", prefixes]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def tenants(tmp_path_factory):
    d = tmp_path_factory.mktemp("tenants")
    tokens = d / "tokens.jsonl"
    tok = {"a": add_token(tokens, "acme", "read,append,delete", "acme/"),
           "b": add_token(tokens, "beta", "full", "beta/"),
           "root": add_token(tokens, "root", "full")}
    s = Server(d, args=["--tokens", str(tokens), "--sync", "none"], token=tok["root"])
    s.start()
    s.tok, s.tokens_file = tok, tokens
    for i in range(3):
        assert s.append("acme%%2Fs%d" % i, [{"type": "t", "data": {"who": "acme"}}]).status == 200
        assert s.append("beta%%2Fs%d" % i, [{"type": "t", "data": {"who": SECRET_B}}]).status == 200
    for who in ("acme", "beta"):
        r = s.request("PUT", "/v1/stream/%s/st" % who, body=b"", headers={"Content-Type": "text/plain"})
        assert r.status in (200, 201), r
        r = s.request("POST", "/v1/stream/%s/st" % who, body=(SECRET_B if who == "beta" else "hi").encode(),
                      headers={"Content-Type": "text/plain"})
        assert r.status in (200, 204), r
    yield s
    s.stop()


def as_(s, who, method, path, body=None, headers=None):
    h = {"Authorization": "Bearer " + s.tok[who]}
    h.update(headers or {})
    return s.request(method, path, body=body, headers=h, auth=False)


def comparable(r, swap):
    body = r.body
    for a, b in swap:
        body = body.replace(a.encode(), b.encode())
    hdr = {k.lower(): v for k, v in r.headers.items() if k.lower() not in ("date", "x-request-id")}
    return r.status, body, hdr


METHODS = {"GET": None, "HEAD": None, "POST": b'{"type":"t"}', "PUT": b"{}", "DELETE": None}


def rows():
    out = []
    for pattern, allow in sorted(ROUTES.items()):
        if "{id}" not in pattern and "*" not in pattern:
            continue
        for m in allow.split(", "):
            if m in METHODS:
                out.append((pattern, m))
    return out


@pytest.mark.parametrize("pattern,method", rows(), ids=["%s %s" % r for r in rows()])
def test_another_tenants_resource_looks_like_one_that_does_not_exist(tenants, pattern, method):
    def path(name):
        if "{id}" in pattern:
            return pattern.replace("{id}", urllib.parse.quote(name, safe=""))
        return pattern.replace("*", name)
    body = METHODS[method]
    hdr = {"Content-Type": "application/json"} if body is not None else {}
    if "*" in pattern:
        hdr = {"Content-Type": "text/plain"} if body is not None else {}
        existing, missing = "beta/st", "beta/zz"  # same length: same Content-Length
    else:
        existing, missing = "beta/s1", "beta/x9"
    r1 = as_(tenants, "a", method, path(existing), body, hdr)
    r2 = as_(tenants, "a", method, path(missing), body, hdr)
    assert r1.status == 404, (method, pattern, r1)
    assert comparable(r1, [(existing, "X")]) == comparable(r2, [(missing, "X")])
    assert SECRET_B.encode() not in r1.body
    # and B's data is untouched: B still reads it
    if "*" not in pattern:
        r = as_(tenants, "b", "GET", "/v1/sessions/beta%2Fs1/events")
        assert r.status == 200 and SECRET_B.encode() in r.body


def test_own_sessions_work_and_listing_shows_only_them(tenants):
    r = as_(tenants, "a", "GET", "/v1/sessions/acme%2Fs1/events")
    assert r.status == 200 and b"acme" in r.body
    ids = [x["id"] for x in as_(tenants, "a", "GET", "/v1/sessions?order=id").json["sessions"]]
    assert ids == ["acme/s0", "acme/s1", "acme/s2"]
    assert as_(tenants, "a", "GET", "/v1/sessions?order=id&prefix=beta").json == {"sessions": [], "next_cursor": None}
    assert [x["id"] for x in as_(tenants, "a", "GET", "/v1/sessions?prefix=acme%2Fs1").json["sessions"]] == ["acme/s1"]
    assert [x["id"] for x in as_(tenants, "a", "GET", "/v1/sessions?prefix=a&limit=1").json["sessions"]] == ["acme/s0"]
    page = as_(tenants, "a", "GET", "/v1/sessions?limit=2").json
    assert len(page["sessions"]) == 2 and page["next_cursor"] == "acme/s1"
    page = as_(tenants, "a", "GET", "/v1/sessions?limit=2&cursor=" + urllib.parse.quote(page["next_cursor"], safe="")).json
    assert [x["id"] for x in page["sessions"]] == ["acme/s2"] and page["next_cursor"] is None
    # recent order: A's own records in the store's order, paged by cursors that name its own
    everything = as_(tenants, "root", "GET", "/v1/sessions?order=recent&limit=1000").json["sessions"]
    mine = [x["id"] for x in everything if x["id"].startswith("acme/")]
    seen, cursor = [], None
    for _ in range(10):
        q = "/v1/sessions?order=recent&limit=1" + ("&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else "")
        page = as_(tenants, "a", "GET", q).json
        seen += [x["id"] for x in page["sessions"]]
        cursor = page["next_cursor"]
        assert cursor is None or cursor.split(".", 1)[1].startswith("acme/"), cursor
        if cursor is None:
            break
    assert seen == mine and len(mine) == 3
    assert as_(tenants, "a", "GET", "/v1/sessions?order=recent&cursor=1.beta%2Fs1").status == 400
    me = as_(tenants, "a", "GET", "/v1/tenant").json
    assert {k: me[k] for k in ("name", "scopes", "prefixes")} == {
        "name": "acme", "scopes": ["read", "append", "delete"], "prefixes": ["acme/"]}
    assert me["usage"]["sessions"] == 3  # its own, not beta's
    assert as_(tenants, "root", "GET", "/v1/tenant").json["prefixes"] is None


@pytest.mark.parametrize("path", ["/metrics", "/v1/stats", "/v1/export"])
def test_store_wide_routes_refuse_a_limited_token(tenants, path):
    r = as_(tenants, "a", "GET", path)
    assert r.status == 403 and SECRET_B.encode() not in r.body
    if "sse" not in path:  # (an SSE stream would stay open)
        assert as_(tenants, "root", "GET", path).status == 200


def test_stats_and_export_of_named_sessions(tenants):
    r = as_(tenants, "a", "GET", "/v1/stats?session=acme%2Fs1")
    assert r.status == 200 and r.json["events"] == 1
    r1 = as_(tenants, "a", "GET", "/v1/stats?session=beta%2Fs1")
    r2 = as_(tenants, "a", "GET", "/v1/stats?session=beta%2Fx9")
    assert r1.status == r2.status == 404
    assert comparable(r1, [("beta/s1", "X")]) == comparable(r2, [("beta/x9", "X")])
    r = as_(tenants, "a", "GET", "/v1/export?compression=none&sessions=acme%2Fs0,acme%2Fs1")
    assert r.status == 200 and b"acme/s1" in r.body and b"beta" not in r.body
    assert as_(tenants, "a", "GET", "/v1/export?compression=none&sessions=acme%2Fs0,beta%2Fs1").status == 404


SEALED = re.compile(r"t[0-9a-f]{48}")


def walk_feed(s, who, limit):
    """Every event of the feed as 'who' sees it, page by page, and the cursors given."""
    events, cursors, after = [], [], "0"
    for _ in range(1000):
        r = as_(s, who, "GET", "/v1/events?limit=%d&after=%s" % (limit, after))
        assert r.status == 200, r
        page = r.json
        events += page["events"]
        cursors.append(page["next_after"])
        after = page["next_after"]
        if not page["hasMore"]:
            return events, cursors
    raise AssertionError("the feed did not end")


def test_a_tenants_feed_holds_its_own_events_behind_sealed_cursors(tenants):
    everything, _ = walk_feed(tenants, "root", 1000)
    mine = [(e["session_id"], e["sequence"], e["event_id"]) for e in everything
            if e["session_id"].startswith("acme/")]
    assert len(mine) >= 3 and len(mine) < len(everything)
    for limit in (1, 2, 1000):
        events, cursors = walk_feed(tenants, "a", limit)
        assert [(e["session_id"], e["sequence"], e["event_id"]) for e in events] == mine
        assert all("position" not in e for e in events)
        assert all(SEALED.fullmatch(c) for c in cursors), cursors
    # at the tail: nothing, and a different cursor every time (equality tells nothing)
    tail = cursors[-1]
    again = [as_(tenants, "a", "GET", "/v1/events?after=" + tail).json for _ in range(3)]
    assert all(p["events"] == [] and not p["hasMore"] for p in again)
    assert len({tail} | {p["next_after"] for p in again}) == 4
    # forged, altered or numeric cursors are refused by name; root keeps numbers
    bad = [tail[:-1] + ("0" if tail[-1] != "0" else "1"), "t" + "0" * 48, "5", tail + "0", "x"]
    for b in bad:
        r = as_(tenants, "a", "GET", "/v1/events?after=" + b)
        assert r.status == 400 and "'after'" in r.json["detail"], (b, r)
    assert isinstance(as_(tenants, "root", "GET", "/v1/events").json["next_after"], int)
    # the SSE feed: the same events, sealed ids, resumable from one of them
    text = read_sse(tenants, "a", "/v1/events/sse", len(mine))
    ids = re.findall(r"^id: (.*)$", text, re.M)
    datas = [json.loads(x) for x in re.findall(r"^data: (.*)$", text, re.M)]
    assert [(e["session_id"], e["sequence"], e["event_id"]) for e in datas] == mine
    assert all(SEALED.fullmatch(i) for i in ids) and all("position" not in e for e in datas)
    rest = read_sse(tenants, "a", "/v1/events/sse", len(mine) - 1, {"Last-Event-ID": ids[0]})
    assert [json.loads(x)["event_id"] for x in re.findall(r"^data: (.*)$", rest, re.M)] == \
        [m[2] for m in mine[1:]]


def read_sse(s, who, path, n_events, headers=None, seconds=5):
    """The text of an SSE stream up to its n-th event (or 'seconds')."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=seconds)
    h = {"Authorization": "Bearer " + s.tok[who]}
    h.update(headers or {})
    conn.request("GET", path, headers=h)
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    text, end = b"", time.time() + seconds
    try:
        while text.count(b"\ndata: ") + text.startswith(b"data: ") < n_events and time.time() < end:
            chunk = resp.read1(65536)
            if not chunk:
                break
            text += chunk
    except OSError:
        pass
    conn.close()
    return text.decode()


def tenant_view(s):
    """Everything A reads of its own, with the sealed cursors and the clock masked."""
    paths = ["/v1/sessions/acme%2Fs0", "/v1/sessions/acme%2Fs0/events", "/v1/sessions/acme%2Fs0/restore",
             "/v1/sessions/acme%2Fs0/transcript", "/v1/sessions/acme%2Fs0/verify",
             "/v1/sessions/acme%2Fs0/export?compression=none", "/v1/stats?session=acme%2Fs0",
             "/v1/export?compression=none&sessions=acme%2Fs0,acme%2Fs1", "/v1/sessions",
             "/v1/events?limit=1000", "/v1/stream/acme/st?offset=-1", "/v1/sessions?order=recent",
             "/v1/sessions?order=recent&limit=2", "/v1/sessions?order=recent&limit=1&cursor=1.acme%2Fs0"]
    view = {}
    for p in paths:
        r = as_(s, "a", "GET", p)
        body = SEALED.sub("T", r.body.decode())
        body = re.sub(r'"created_at":"[^"]*"\}', '"created_at":"C"}', body)  # an export's own time
        body = re.sub(r'"sha256":"[0-9a-f]{64}"\}', '"sha256":"S"}', body)  # (which its hash covers)
        hdr = {k.lower(): v for k, v in r.headers.items() if k.lower() not in ("date", "x-request-id")}
        view[p] = (r.status, body, hdr)
    return view


def test_nothing_a_tenant_reads_changes_when_another_tenant_writes(tenants):
    before = tenant_view(tenants)
    assert all(st == 200 for st, _, _ in before.values()), {p: v[0] for p, v in before.items()}
    assert not any('"position"' in b or '"after"' in b or "_position" in b for _, b, _ in before.values())
    for i in range(40):
        assert as_(tenants, "b", "POST", "/v1/sessions/beta%%2Fn%d/events" % (i % 7),
                   json.dumps([{"type": "t", "data": {"i": j}} for j in range(5)]).encode(),
                   {"Content-Type": "application/json"}).status == 200
    assert as_(tenants, "b", "DELETE", "/v1/sessions/beta%2Fn6").status in (200, 204)
    assert tenant_view(tenants) == before
    # the ack of A's own append has no position either
    r = as_(tenants, "a", "POST", "/v1/sessions/acme%2Fs2/events", b'{"type":"t"}',
            {"Content-Type": "application/json"})
    assert r.status == 200 and "position" not in r.json and r.json["last_sequence"] >= 2
    r = as_(tenants, "a", "GET", "/v1/stats?session=acme%2Fs0&until=3")
    assert r.status == 400 and "'until'" in r.json["detail"]


def test_a_tenants_long_poll_and_sse_do_not_wake_for_other_tenants(tenants):
    tail = walk_feed(tenants, "a", 1000)[1][-1]
    result = {}

    def poll():
        t0 = time.time()
        r = as_(tenants, "a", "GET", "/v1/events?wait=2&after=" + tail)
        result["r"], result["t"] = r, time.time() - t0
    th = threading.Thread(target=poll)
    th.start()
    sse = {}
    th2 = threading.Thread(target=lambda: sse.update(text=read_sse(tenants, "a", "/v1/events/sse?after=" + tail, 1,
                                                                   seconds=2)))
    th2.start()
    time.sleep(0.3)
    for i in range(30):
        as_(tenants, "b", "POST", "/v1/sessions/beta%2Fwake/events",
            json.dumps([{"type": "t"}] * 50).encode(), {"Content-Type": "application/json"})
    th.join()
    th2.join()
    assert result["r"].status == 200 and result["r"].json["events"] == [], result["r"]
    assert result["t"] >= 1.9, result["t"]  # it waited its whole time: B's appends did not end it
    assert sse["text"] == "retry: 2000\n\n", sse["text"][:200]  # not a byte for B's 1,500 events



def tricks(rnd):
    """Ids and raw path segments that try to escape acme/ towards beta/s1."""
    base = ["acme/../beta/s1", "acme/./../beta/s1", "acme%2F..%2Fbeta%2Fs1", "acme%2f%2e%2e%2fbeta%2fs1",
            "acme/%2e%2e/beta/s1", "acme%252F..%252Fbeta%252Fs1", "..%2Fbeta%2Fs1", "%2E%2E/beta/s1",
            "acme/\u2024\u2024/beta/s1", "acme\uff0f..\uff0fbeta\uff0fs1", "beta/s1", "beta%2Fs1",
            "BETA%2Fs1", "beta%2fs1%00", "acme%00beta%2Fs1", "acme/%00/../beta/s1", " beta%2Fs1",
            "beta%2Fs1%20", "acme%2F%2E%2E%2Fbeta%2Fs1", "acme%c0%afbeta", "acme%ef%bc%8fbeta%2Fs1"]
    out = list(base)
    pieces = ["acme", "beta", "s1", "..", ".", "%2F", "/", "%2f", "%252F", "%2E", "%2e", "%00", "%5C",
              "\\", "%C0%AF", "%E2%88%95", ";", "?", "#", "%3F", "%23", "~", "%7E", "A", "%41"]
    while len(out) < 1100:
        out.append("".join(rnd.choice(pieces) for _ in range(rnd.randrange(2, 9))))
    return out


def test_path_tricks_never_reach_another_tenant(tenants):
    rnd = random.Random(2326)
    conn = http.client.HTTPConnection("127.0.0.1", tenants.port, timeout=10)
    seen = {}
    for t in tricks(rnd):
        for route in ("/v1/sessions/%s/events", "/v1/sessions/%s", "/v1/sessions/%s/transcript",
                      "/v1/stream/%s"):
            raw = route % t
            try:
                wire = "".join(c if 0x20 < ord(c) < 0x7f else urllib.parse.quote(c) for c in raw)
                conn.request("GET", wire,
                             headers={"Authorization": "Bearer " + tenants.tok["a"]})
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", tenants.port, timeout=10)
                continue
            seen[resp.status] = seen.get(resp.status, 0) + 1
            assert SECRET_B.encode() not in body, (raw, resp.status, body[:200])
            if resp.status == 200 and "stream" not in route:
                assert b"beta" not in body or b"acme" in body, (raw, body[:200])
    assert sum(seen.values()) >= 4000, seen
    print("path tricks:", seen)


def open_stream(s, who, path):
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": "Bearer " + s.tok[who]})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1(100).startswith(b"retry:")
    return conn, resp


def ends_within(stream, seconds):
    """True when the stream ends (EOF) within 'seconds'."""
    conn, resp = stream
    end = time.time() + seconds
    try:
        while time.time() < end:
            if not select.select([conn.sock], [], [], max(0.0, end - time.time()))[0]:
                return False
            if not resp.read1(65536):
                return True
    except (OSError, http.client.HTTPException):
        return True
    return False


def test_a_removed_token_stops_at_the_next_request_after_sighup(tenants):
    conn = http.client.HTTPConnection("127.0.0.1", tenants.port, timeout=10)
    h = {"Authorization": "Bearer " + tenants.tok["a"]}
    conn.request("GET", "/v1/sessions/acme%2Fs1", headers=h)
    assert conn.getresponse().read() and True
    streams = [open_stream(tenants, who, path) for who, path in (
        ("a", "/v1/sessions/acme%2Fs1/events/sse?offset=1000"), ("a", "/v1/events/sse?after=0"),
        ("b", "/v1/events/sse?after=0"))]
    assert not any(ends_within(st, 0.3) for st in streams)  # open until the token goes
    t0 = time.time()
    subprocess.run([REEL_BIN, "tokens", "revoke", "acme", "--file", str(tenants.tokens_file)],
                   check=True, capture_output=True)
    tenants.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if "2 tokens loaded" in tenants.log_text():
            break
        time.sleep(0.02)
    conn.request("GET", "/v1/sessions/acme%2Fs1", headers=h)
    r = conn.getresponse()
    assert r.status == 401 and b"not valid" in r.read()
    assert as_(tenants, "b", "GET", "/v1/sessions/beta%2Fs1/events").status == 200
    # the revoked token's open streams end; the other tenant's stays open
    assert ends_within(streams[0], 3) and ends_within(streams[1], 3), time.time() - t0
    assert not ends_within(streams[2], 1)
    for c, _ in streams:
        c.close()


def test_rate_limits_answer_429_with_retry_after_and_leave_others_alone(tmp_path):
    tokens = tmp_path / "t.jsonl"
    tok = {"slow": add_token(tokens, "slow", "full", "slow/", ["--rate-requests", "5", "--rate-events", "50"]),
           "fast": add_token(tokens, "fast", "full", "fast/"), "ops": add_token(tokens, "ops", "read")}
    s = Server(tmp_path, args=["--tokens", str(tokens), "--sync", "none"])
    s.start()
    s.tok = tok
    try:
        codes = {"slow": [], "fast": []}
        for _ in range(20):
            for who in ("slow", "fast"):
                r = as_(s, who, "GET", "/v1/sessions?prefix=%s%%2F" % who)
                codes[who].append(r.status)
                if r.status == 429:
                    assert int(r.header("retry-after")) >= 1 and "requests per second" in r.json["detail"]
        assert codes["fast"] == [200] * 20
        assert codes["slow"].count(200) <= 7 and codes["slow"].count(429) >= 13, codes["slow"]
        time.sleep(1.1)  # the request bucket refills
        ev = [{"type": "t"}] * 80
        r = as_(s, "slow", "POST", "/v1/sessions/slow%2Fa/events", body=ev)
        assert r.status == 200, r  # the burst is 2 s of the rate: 100 events
        r = as_(s, "slow", "POST", "/v1/sessions/slow%2Fa/events", body=ev)
        assert r.status == 429 and int(r.header("retry-after")) >= 1 and "events/s" in r.json["detail"]
        time.sleep(1.1)
        r = as_(s, "slow", "POST", "/v1/sessions/slow%2Fa/events", body=[{"type": "t"}] * 150)
        assert r.status == 413 and "split the batch" in r.json["detail"]
        time.sleep(1.1)
        r = as_(s, "slow", "GET", "/v1/sessions/slow%2Fa/events")  # nothing refused was appended
        assert r.status == 200 and len(r.json["events"]) == 80
        r = as_(s, "fast", "POST", "/v1/sessions/fast%2Fa/events", body=[{"type": "t"}] * 1000)
        assert r.status == 200
        # per-token metrics: names, never secrets; read with a token that is not limited
        time.sleep(0.1)
        text = as_(s, "ops", "GET", "/metrics").body.decode()
        limited = int(re.search(r'reel_token_rate_limited_total\{token="slow"\} (\d+)', text).group(1))
        assert limited >= 14  # the 13+ refused requests and the refused batch
        assert re.search(r'reel_token_events_total\{token="fast"\} 1000\n', text)
        assert tok["slow"] not in text and tok["fast"] not in text
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
            assert p.returncode == 0, p.stdout + p.stderr
    finally:
        s.stop()


def test_quotas_refuse_appends_past_the_stored_bytes_or_sessions(tmp_path):
    tokens = tmp_path / "t.jsonl"
    tok = {"q": add_token(tokens, "q", "full", "q/", ["--quota-bytes", "20000", "--quota-sessions", "2"]),
           "other": add_token(tokens, "other", "full", "o/")}
    s = Server(tmp_path, args=["--tokens", str(tokens), "--sync", "none"])
    s.start()
    s.tok = tok
    try:
        big = [{"type": "t", "data": {"x": "y" * 1000}}] * 5
        assert as_(s, "q", "POST", "/v1/sessions/q%2Fa/events", body=big).status == 200
        assert as_(s, "q", "POST", "/v1/sessions/q%2Fb/events", body=[{"type": "t"}]).status == 200
        time.sleep(1.1)  # usage is counted at most once a second
        r = as_(s, "q", "POST", "/v1/sessions/q%2Fc/events", body=[{"type": "t"}])
        assert r.status == 403 and r.json["type"].endswith("quota_exceeded") and "sessions" in r.json["detail"]
        u = as_(s, "q", "GET", "/v1/tenant").json["usage"]
        assert u["sessions"] == 2 and u["bytes"] > 5000 and u["limits"]["quota_sessions"] == 2
        for _ in range(4):  # fill the bytes quota
            r = as_(s, "q", "POST", "/v1/sessions/q%2Fa/events", body=big)
            time.sleep(1.1)
            if r.status == 403:
                break
        assert r.status == 403 and "bytes stored" in r.json["detail"], r
        assert as_(s, "q", "GET", "/v1/sessions/q%2Fc").status == 404  # nothing was created
        assert as_(s, "other", "POST", "/v1/sessions/o%2Fa/events", body=big * 10).status == 200
    finally:
        s.stop()
