"""The bad-input corpus (issue 7, item 3): well over 1000 distinct bad requests, each
answered with the right 4xx (or, for broken HTTP, a 4xx or a closed connection), and the
store checked unchanged after every one.

The cases are data, in badcases.py (`python3 tests/http/badcases.py` prints the count
per family). All of them run against one server started for this module (limits in
badcases.SERVER_ARGS) on a store seeded with a few sessions and streams. After each case:

  - the store is unchanged: no batch committed (reel_store_batches_total and
    reel_store_events_total in /metrics did not move) and the session list, which holds
    every session's last sequence, size, update time and metadata, is byte for byte the
    same; a 409/410 reaches the committer but commits nothing for it;
  - no 5xx was counted, the problem counter moved by exactly the problems seen on the
    wire (so no hidden request was answered behind our back), and /v1/health answers;
  - valid input that must be accepted (the y_ documents, boundaries exactly at a limit)
    goes to sessions of its own; its events are read back and compared with what was
    sent, and kept, so that at the end the whole feed must equal the seeded feed plus
    exactly those events.

The last test stops the server (no sanitizer report in its log) and runs `reel verify`.
Bugs found here are strict xfails with the reason (badcases.BUG_*).
"""
import http.client
import json
import re
import socket
import subprocess
import time

import pytest

import badcases as bc
from conftest import REEL_BIN, Server

CASES = bc.all_cases()
SENTINEL_ID = "zz-sentinel"
# Sent after a raw request that should leave the connection open: its 404 (with
# Connection: close) shows where the answers to the case end, without a timeout.
SENTINEL = ("GET /v1/sessions/%s HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
            % SENTINEL_ID).encode()
RAW_DEADLINE = 3.0     # a raw exchange that should end (answer + close) must end by then
INCOMPLETE_WAIT = 0.3  # how long an incomplete request is watched for a (wrong) answer


def load(body):
    """JSON from the server; integers too long for Python's int() conversion limit (the
    corpus stores a 5000-digit number) stay text."""
    return json.loads(body, parse_int=lambda t: int(t) if len(t) < 4000 else ("#int", t))


# ---- wire helpers ------------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    @property
    def is_problem(self):
        return self.header("content-type") == "application/problem+json"

    @property
    def is_sentinel(self):
        return self.is_problem and SENTINEL_ID.encode() in self.body

    def __repr__(self):
        return "Reply(%d, %r)" % (self.status, self.body[:300])


def parse_replies(buf):
    """HTTP/1.1 answers in 'buf', in order; stops at one that closes the connection
    (libmicrohttpd 0.9.75 sends its own error answers' header twice, so bytes after a
    closing answer are not parsed)."""
    out = []
    while buf:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        if not sep or not m:
            break
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        status = int(m.group(1))
        if 100 <= status < 200:
            buf = rest
            continue
        n = int(headers.get("content-length", "0") or 0)
        out.append(Reply(status, headers, rest[:n]))
        buf = rest[n:]
        if headers.get("connection", "").lower() == "close":
            break
    return out


class RawOutcome:
    def __init__(self, replies, closed, data):
        self.replies, self.closed, self.data = replies, closed, data

    def __repr__(self):
        return "RawOutcome(closed=%s, replies=%r, bytes=%r)" % (self.closed, self.replies,
                                                                self.data[:200])


def raw_exchange(port, data, watch=None):
    """Sends 'data' on a new connection and reads until the server closes it (or for
    'watch' seconds of silence when the request is incomplete on purpose)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=RAW_DEADLINE)
    buf, closed = b"", False
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close before the whole request is sent (a limit)
        deadline = time.time() + (watch or RAW_DEADLINE)
        while time.time() < deadline:
            s.settimeout(max(0.01, deadline - time.time()))
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            except OSError:  # reset: closed
                closed = True
                break
            if not c:
                closed = True
                break
            buf += c
    finally:
        s.close()
    return RawOutcome(parse_replies(buf), closed, buf)


# ---- the server and its checks -----------------------------------------------------

class Bench:
    """The module's server, its seeded store and the running account of accepted input."""

    def __init__(self, server):
        self.s = server
        self.ctl = None
        self.accepted = []      # events read back after accepted cases
        self.leaks = []         # (case, session, events) stored by a failed case
        self.problem_seen = 0

    # -- control requests (GET only, so a retry on a dropped keep-alive is safe) --
    def get(self, path):
        for attempt in (0, 1):
            if self.ctl is None:
                self.ctl = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
            try:
                self.ctl.request("GET", path)
                r = self.ctl.getresponse()
                body = r.read()
                return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
            except (http.client.HTTPException, OSError):
                self.ctl.close()
                self.ctl = None
                if attempt:
                    raise

    def metrics(self):
        text = self.get("/metrics").body.decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'^(reel_[a-z_]+(?:\{class="\dxx"\})?) (\d+)$', line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def sessions(self):
        r = self.get("/v1/sessions?limit=1000")
        assert r.status == 200, r
        return {s["id"]: s for s in load(r.body)["sessions"]}

    def events(self, session, offset, n):
        r = self.get("/v1/sessions/%s/events?offset=%d&limit=%d&include_raw=true"
                     % (session, offset, n))
        assert r.status == 200, r
        return r.body, load(r.body)["events"]

    def feed(self):
        out, after = [], 0
        while True:
            j = load(self.get("/v1/events?after=%d&limit=10000&include_raw=true" % after).body)
            out += j["events"]
            if not j["hasMore"]:
                return out
            after = j["next_after"]

    def resync(self, case):
        """After a failed case: records what it let into the store (kept in 'leaks' and
        in the accounted events, so that one failure does not fail every later case)."""
        now = self.sessions()
        for sid, rec in now.items():
            old = self.baseline.get(sid, {}).get("last_sequence", 0)
            if rec["last_sequence"] > old:
                evs = self.events(sid, old, rec["last_sequence"] - old)[1]
                self.accepted += evs
                if case:
                    self.leaks.append((case.id, sid, len(evs)))
        self.baseline = now
        self.last = self.metrics()

    # -- sending a case --
    def send(self, case):
        if case.raw is not None:
            if case.expect.kind == "incomplete":
                return raw_exchange(self.s.port, case.raw, watch=INCOMPLETE_WAIT)
            # no sentinel where the server must close: its bytes would be left unread
            return raw_exchange(self.s.port, case.raw if case.expect.closes
                                else case.raw + SENTINEL)
        c = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        try:
            c.putrequest(case.method, case.path, skip_accept_encoding=True)
            for k, v in case.headers.items():
                c.putheader(k, v)
            if case.body is not None:
                c.putheader("Content-Length", str(len(case.body)))
            c.endheaders(case.body)
            r = c.getresponse()
            body = r.read()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
        finally:
            c.close()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("bad-input"), args=bc.SERVER_ARGS)
    s.start()
    b = Bench(s)
    seed(s)
    b.baseline = b.sessions()
    b.initial_feed = b.feed()
    b.last = b.metrics()
    yield b
    if s.proc:
        s.stop()


def seed(s):
    """The store bad input must leave alone: sessions with events, agent and metadata, a
    deleted session, and streams in JSON and byte mode, one of them closed."""
    assert s.append(bc.SEED, [{"type": "seed", "data": {"n": i}} for i in range(3)]).status == 200
    assert s.request("PUT", "/v1/sessions/" + bc.SEED,
                     body={"agent": "seed", "metadata": {"k": "v"}}).status == 200
    assert s.append(bc.SEED_B, [{"type": "seed"}]).status == 200
    assert s.append(bc.SEED_DELETED, [{"type": "seed"}]).status == 200
    assert s.request("DELETE", "/v1/sessions/" + bc.SEED_DELETED).status == 200
    for name, ct, body, extra in ((bc.STREAM_N, "application/json", '[{"seed":1}]', {}),
                                  (bc.STREAM_Y, "application/json", "", {}),
                                  (bc.STREAM_BYTES, "application/octet-stream", "hello", {}),
                                  (bc.STREAM_CLOSED, "application/json", "[1]",
                                   {"Stream-Closed": "true"})):
        h = dict(extra, **{"Content-Type": ct})
        assert s.request("PUT", "/v1/stream/" + name, body=body, headers=h).status == 201


# ---- expectations ------------------------------------------------------------------

def check_problem(r, e):
    assert r.status == e.status, r
    assert r.header("content-type") == "application/problem+json", (r.headers, r)
    p = json.loads(r.body)
    assert p["status"] == e.status and isinstance(p["title"], str) and p["title"], p
    assert isinstance(p.get("detail"), str), p
    codes = ["urn:reel:error:" + c for c in e.codes]
    assert p["type"] in codes, (p, codes)
    if e.allow:
        assert r.header("allow") == e.allow, r.headers


def check_raw(out, e):
    """Raw answers: returns the number of reel problems seen on the wire."""
    replies = [r for r in out.replies if not r.is_sentinel]
    sentinel = len(replies) < len(out.replies)
    for r in replies:
        assert r.status < 500 or r.status == e.status == 505, out
    if e.kind == "incomplete":
        assert not replies or 400 <= replies[0].status < 500, out
    elif e.kind == "problem":
        assert replies, out
        check_problem(replies[0], e)
    else:  # broken: a 4xx or a close, never 2xx
        assert replies or out.closed, out
        if replies and e.status:
            assert replies[0].status == e.status, out
        elif replies:
            assert 400 <= replies[0].status < 500, out
        assert all(not 200 <= r.status < 300 for r in replies), out
    if e.closes:
        assert out.closed and not sentinel, out
    elif e.kind != "incomplete":
        assert out.closed, "not answered and closed within %ss: %r" % (RAW_DEADLINE, out)
    return sum(1 for r in out.replies if r.is_problem)


def check_accepted(bench, case, r, before, after):
    """Valid input: exactly the expected new events, read back as sent, and kept for the
    final comparison of the whole feed."""
    e = case.expect
    assert r.status == e.status, r
    now = bench.sessions()
    changed = {k for k in set(now) | set(bench.baseline) if now.get(k) != bench.baseline.get(k)}
    sid = e.session
    assert changed == {sid}, changed
    assert after["reel_store_events_total"] - before["reel_store_events_total"] == e.events
    assert after["reel_store_batches_total"] - before["reel_store_batches_total"] == 1
    if e.meta is not None:
        rec = bc.doc_value(bench.get("/v1/sessions/" + sid).body)
        assert rec["metadata"] == e.meta, (rec, e.meta)
    else:
        old = bench.baseline.get(sid, {}).get("last_sequence", 0)
        assert now[sid]["last_sequence"] == old + e.events, now[sid]
        raw_body, evs = bench.events(sid, old, e.events)
        assert len(evs) == e.events
        if e.data is not None:  # compared with numbers as their exact text
            got = [x["data"] for x in bc.doc_value(raw_body)["events"]]
            assert got == e.data, (got, e.data)
        if e.verbatim is not None:
            assert e.verbatim in raw_body, raw_body[:300]
        bench.accepted += evs
    bench.baseline = now


# ---- the tests ---------------------------------------------------------------------

def test_corpus_size():
    counts = bc.family_counts(CASES)
    print("\nbad-input corpus: %d cases" % len(CASES))
    for fam, n in sorted(counts.items()):
        print("  %-20s %5d" % (fam, n))
    assert len(CASES) >= 1000
    assert len({c.id for c in CASES}) == len(CASES)


def params():
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case", params())
def test_case(bench, case):
    try:
        run_case(bench, case)
    except BaseException:
        bench.resync(case)
        raise


def run_case(bench, case):
    before = bench.last
    out = bench.send(case)
    e = case.expect
    if case.raw is not None:
        problems = check_raw(out, e)
    elif e.kind == "problem":
        check_problem(out, e)
        problems = 1
    elif e.kind == "status":
        assert out.status == e.status, out
        problems = 1
    elif e.kind == "options":  # the route's methods, from the same table row as a 405
        assert out.status == 204 and out.header("allow") == e.allow, out
        problems = 0
    else:
        problems = 0
    if e.kind == "incomplete":
        time.sleep(0.05)  # a (wrong) append of a cut request would land right after the close
    after = bench.metrics()
    bench.last = after
    p4, p5 = 'reel_http_problems_total{class="4xx"}', 'reel_http_problems_total{class="5xx"}'
    assert after[p5] == before[p5]
    assert after[p4] - before[p4] == problems
    if e.kind == "accept":
        check_accepted(bench, case, out, before, after)
    else:
        check_unchanged(bench, before, after)
    assert bench.get("/v1/health").status == 200


def check_unchanged(bench, before, after):
    """Nothing was committed (a refused 409/410 batch counts as a batch error, not a
    batch) and every session record is as it was."""
    assert after["reel_store_batches_total"] == before["reel_store_batches_total"]
    assert after["reel_store_events_total"] == before["reel_store_events_total"]
    assert bench.sessions() == bench.baseline


def test_store_check_can_fail(bench):
    """Negative controls for check_unchanged: an append, and a metadata-only change seen
    with the counters held still, must each be caught."""
    before = bench.metrics()
    assert bench.s.append(bc.SEED_B, [{"type": "control"}]).status == 200
    with pytest.raises(AssertionError):
        check_unchanged(bench, before, bench.metrics())
    bench.resync(None)  # account for the control's own event
    assert bench.s.request("PUT", "/v1/sessions/" + bc.SEED_B,
                           body={"metadata": {"control": 1}}).status == 200
    with pytest.raises(AssertionError):
        check_unchanged(bench, bench.last, bench.last)  # only the session list can see it
    bench.resync(None)
    check_unchanged(bench, bench.last, bench.metrics())


def test_zz_store_holds_exactly_the_accepted_input(bench):
    """Runs last: the feed is the seeded feed plus the accepted events, nothing else;
    then the server stops cleanly and `reel verify` finds the store sound."""
    for leak in bench.leaks:
        print("stored by a failed case: %s -> %s (%d events)" % leak)
    feed = bench.feed()
    want = sorted(bench.initial_feed + bench.accepted, key=lambda ev: ev["position"])
    assert len(feed) == len(want)
    assert feed == want
    assert bench.sessions() == bench.baseline
    assert bench.metrics()['reel_http_problems_total{class="5xx"}'] == 0
    bench.s.stop()  # exit status 0, no sanitizer report in the log
    p = subprocess.run([REEL_BIN, "verify", "--data", bench.s.data], capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
