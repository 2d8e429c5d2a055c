"""A corpus of bad requests: each gets the right 4xx problem+json and changes nothing.

README.md "Guarantees": bad input gets a clear 4xx problem and changes nothing. Every case is sent on
a raw socket (so nothing is normalised on the way), its answer is checked, and the whole
store (feed with raw + session list) is compared before and after.
"""
import json
import socket

import pytest

from conftest import Server

MAX_BODY = 65536
MAX_EVENT = 16384
MAX_DEPTH = 16


def raw_request(port, method, path, body=b"", headers=None, raw_headers=None):
    """Sends one request as given; returns (status, headers dict, body bytes)."""
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": "127.0.0.1", "Connection": "close"}
    h.update(headers or {})
    if body is not None and raw_headers is None and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    lines = ["%s %s HTTP/1.1" % (method, path)] + ["%s: %s" % kv for kv in h.items()]
    lines += raw_headers or []
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(data)
    except OSError:
        pass
    chunks = []
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    except OSError:
        pass
    s.close()
    resp = b"".join(chunks)
    head, _, rest = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding") == "chunked":
        out = b""
        while rest:
            n, _, rest = rest.partition(b"\r\n")
            n = int(n, 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        rest = out
    return status, hdrs, rest


def nest(n):
    return "[" * n + "]" * n


def event(**kw):
    e = {"type": "t"}
    e.update(kw)
    return json.dumps(e)


J = {"Content-Type": "application/json"}
ND = {"Content-Type": "application/x-ndjson"}
EV = "/v1/sessions/ok/events"

CASES = []


def case(name, method, path, body=b"", headers=None, status=400, code=None, raw_headers=None):
    CASES.append(pytest.param(method, path, body, headers, status, code, raw_headers, id=name))


# -- malformed JSON bodies --
for i, b in enumerate([
        "", "   ", "{", "}", "[", "]", "{\"type\":}", "{\"type\":\"a\",}", "nul", "tru",
        "{\"type\":\"a\"} x", "{\"type\":\"a\"}{\"type\":\"b\"}", "{'type':'a'}",
        "{\"type\":\"a\",\"data\":[1,2,}", "[1]", "\"str\"", "123", "null", "[]", "[{}]", "{}",
        "{\"type\":\"a\" \"data\":1}", "{\"type\":\"a\",\"data\":NaN}",
        "{\"type\":\"a\",\"data\":Infinity}", "{\"type\":\"a\",\"data\":01}",
        "{\"type\":\"a\",\"data\":1.}", "{\"type\":\"a\",\"data\":.5}",
        "{\"type\":\"a\",\"data\":-}", "{\"type\":\"a\",\"data\":\"\\x\"}",
        "{\"type\":\"a\",\"data\":\"\\u12\"}", "{\"type\":\"a\",\"data\":\"\\ud800\\u12\"}",
        "{\"type\":\"a\",\"data\":\"tab\tinside\"}", "{\"type\":\"a\",\"data\":\"\\udc00\\uzz\"}",
        "[{\"type\":\"a\"},]", "{\"type\":\"a\",\"data\":[1 2]}", "{\"type\" \"a\"}",
        "{\"type\":\"a\",\"data\":{\"k\"}}", "{\"type\":\"a\",\"data\":{1:2}}",
        "\ufeff{\"type\":\"a\"}",
]):
    case("json-%02d" % i, "POST", EV, b, J)

# -- invalid events (valid JSON) --
for i, b in enumerate([
        event(type=""), '{"type":123}', '{"type":null}', event(type="x" * 129),
        event(event_id=""), event(event_id="e" * 129), event(synthetic="yes"), event(source=5),
        event(unknown_field=1), event(native_session_id=7), '{"data":1}',
        '[{"type":"a"},{"type":5}]', '[{"type":"a"}, 3]', '[{"type":"a"}, [] ]',
        event(event_id=5), event(source=[]), event(native_session_id="n" * 300),
]):
    case("event-%02d" % i, "POST", EV, b, J)

# -- malformed NDJSON --
for i, b in enumerate([
        "x\n", '{"type":"a"}\n{bad\n', '{"type":"a"}\n[1]\n', '{"type":"a"}{"type":"b"}\n',
        "\n\n", '{"type":"a"}\n{"type":5}\n', '{"type":"a"}\n"str"\n', '{"type":"a"}\n,\n',
        '{"type":"a"}\n{"type":"b"', '[{"type":"a"}]\n',
]):
    case("ndjson-%02d" % i, "POST", EV, b, ND)

# -- invalid UTF-8 --
for i, b in enumerate([
        b'{"type":"\xff"}', b'{"type":"a","data":"\xc3\x28"}', b'{"type":"a","data":"\xed\xa0\x80"}',
        b'{"type":"a","data":"\xc0\xaf"}', b'{"type":"a","data":"\xf5\x80\x80\x80"}',
        b'{"type":"a","data":"\xe2\x82"}', b'{"type":"a","data":{"\xfe":1}}',
        b'{"type":"a","event_id":"\x80"}',
]):
    case("utf8-%02d" % i, "POST", EV, b, J)
    case("utf8-nd-%02d" % i, "POST", EV, b + b"\n", ND)

# -- depth bombs --
case("depth-array", "POST", EV, event(data=json.loads(nest(MAX_DEPTH + 5))), J)
case("depth-object", "POST", EV, '{"type":"a","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}", J)
case("depth-unclosed", "POST", EV, '{"type":"a","data":' + "[" * 20000, J)
case("depth-raw", "POST", EV, '{"type":"a","raw":' + nest(MAX_DEPTH + 1) + "}", J)
case("depth-ndjson", "POST", EV, '{"type":"a","data":' + nest(200) + "}\n", ND)
case("depth-top", "POST", EV, nest(5000), J)
case("depth-metadata", "PUT", "/v1/sessions/ok", '{"metadata":{"a":' + nest(100) + "}}", J)

# -- oversize bodies and events (limits of the server below) --
big_event = event(data="x" * (MAX_EVENT + 10))
case("big-body", "POST", EV, "[" + ",".join([event(data="y" * 1000)] * 70) + "]", J, 413,
     "payload_too_large")
case("big-event", "POST", EV, big_event, J, 413, "payload_too_large")
case("big-event-ndjson", "POST", EV, event() + "\n" + big_event + "\n", ND, 413, "payload_too_large")
case("big-event-in-array", "POST", EV, "[" + event() + "," + big_event + "]", J, 413,
     "payload_too_large")
case("big-session-body", "PUT", "/v1/sessions/ok", '{"metadata":{"a":"' + "z" * MAX_BODY + '"}}',
     J, 413, "payload_too_large")
case("big-chunked", "POST", EV, None, {"Content-Type": "application/json",
                                       "Transfer-Encoding": "chunked"}, 413, "payload_too_large")

# -- bad session ids --
# (since issue 15 "%2F", "a%20b", "%C3%A9", "a;b" and other UTF-8 are valid ids:
# test_session_ids.py)
BAD_IDS = ["..", ".", "%2E%2E", "a%00b", "%00", "x" * 1025, "%C0%AF", "%ED%A0%80", "%FF",
           "a%zz", "%", "a%2", "a%0Ab", "%2E", "a%7Fb", "a%1Bb", "a%09"]
for i, sid in enumerate(BAD_IDS):
    case("id-post-%02d" % i, "POST", "/v1/sessions/%s/events" % sid, event(), J, 400,
         "invalid_session_id")
    case("id-get-%02d" % i, "GET", "/v1/sessions/%s/events" % sid, None, None, 400,
         "invalid_session_id")
for i, sid in enumerate(["..", "a%01b", "a%00b", "x" * 1025, "a%zz"]):
    case("id-put-%02d" % i, "PUT", "/v1/sessions/%s" % sid, '{"agent":"x"}', J, 400,
         "invalid_session_id")
    case("id-del-%02d" % i, "DELETE", "/v1/sessions/%s" % sid, None, None, 400,
         "invalid_session_id")
    case("id-sse-%02d" % i, "GET", "/v1/sessions/%s/events/sse" % sid, None, None, 400,
         "invalid_session_id")
case("id-empty", "POST", "/v1/sessions//events", event(), J, 400, "invalid_session_id")

# -- bad query values --
for i, q in enumerate(["offset=-1", "offset=abc", "offset=1.5", "offset=", "offset=%zz",
                       "offset=99999999999999999999999", "offset=%2B1", "offset=1%00",
                       "limit=0", "limit=10001", "limit=-5", "limit=1e3", "wait=61", "wait=x",
                       "wait=-1", "include_raw=maybe", "types=", "types=a,,b", "types=,a"]):
    case("query-events-%02d" % i, "GET", "/v1/sessions/ok/events?" + q, None, None, 400,
         "invalid_parameter")
for i, q in enumerate(["after=-1", "after=x", "limit=0", "wait=100", "include_raw=2"]):
    case("query-feed-%02d" % i, "GET", "/v1/events?" + q, None, None, 400, "invalid_parameter")
for i, q in enumerate(["limit=0", "limit=1001", "status=bogus", "cursor=..", "cursor=a%00",
                       "limit=x"]):
    case("query-list-%02d" % i, "GET", "/v1/sessions?" + q, None, None, 400, "invalid_parameter")
for i, q in enumerate(["expected_sequence=-1", "expected_sequence=x", "expected_sequence="]):
    case("query-append-%02d" % i, "POST", EV + "?" + q, event(), J, 400, "invalid_parameter")
for i, lei in enumerate(["abc", "-1", "1.5", "", "99999999999999999999"]):
    case("last-event-id-%02d" % i, "GET", "/v1/sessions/ok/events/sse", None,
         {"Last-Event-ID": lei}, 400, "invalid_parameter")
for i, (route, q) in enumerate([
        ("/v1/sessions/ok/restore", "max_events=0"), ("/v1/sessions/ok/restore", "fit=x"),
        ("/v1/sessions/ok/restore", "max_chars=-1"), ("/v1/sessions/ok/transcript", "at=x"),
        ("/v1/sessions/ok/transcript", "format=pdf"), ("/v1/stats", "until=x"),
        ("/v1/stats", "before=2026-13-45"), ("/v1/export", "compression=lz4"),
        ("/v1/export", "sessions=a%01b"), ("/v1/sessions/ok/export", "format=csv")]):
    case("query-replay-%02d" % i, "GET", route + "?" + q, None, None, 400, "invalid_parameter")
for i, sid in enumerate(["..", "a%01b", "a%00b"]):
    for r in ("restore", "transcript", "export"):
        case("id-%s-%02d" % (r, i), "GET", "/v1/sessions/%s/%s" % (sid, r), None, None, 400,
             "invalid_session_id")
case("query-sse-offset", "GET", "/v1/sessions/ok/events/sse?offset=x", None, None, 400,
     "invalid_parameter")
case("query-feed-sse", "GET", "/v1/events/sse?after=-3", None, None, 400, "invalid_parameter")

# -- wrong methods and unknown routes --
for i, (m, p) in enumerate([("DELETE", EV), ("PUT", EV), ("POST", "/v1/events"),
                            ("POST", "/v1/health"), ("DELETE", "/v1/sessions"),
                            ("PATCH", "/v1/sessions/ok"), ("POST", "/metrics"),
                            ("POST", "/v1/sessions/ok/events/sse"), ("PUT", "/v1/events/sse"),
                            ("POST", "/v1/stats"), ("DELETE", "/v1/export"),
                            ("POST", "/v1/sessions/ok/restore"),
                            ("PATCH", EV)]):
    case("method-%02d" % i, m, p, b"", None, 405, "method_not_allowed")
for i, p in enumerate(["/v1/nope", "/v2/health", "/v1/sessions/ok/events/x", "/v1/sessions/ok/b",
                       "/v3", "/v1", "/v1/", "/v1/health/x", "/metrics/x", "/v1/events/sse/x"]):
    case("route-%02d" % i, "GET", p, None, None, 404, "not_found")

# -- wrong content types --
for i, ct in enumerate(["text/plain", "application/xml", "multipart/form-data; boundary=x",
                        "application/x-www-form-urlencoded", "application/jsonx", "json"]):
    case("ctype-%02d" % i, "POST", EV, event(), {"Content-Type": ct}, 415,
         "unsupported_media_type")
case("ctype-put", "PUT", "/v1/sessions/ok", '{"agent":"a"}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type")

# -- session record bodies --
for i, b in enumerate(['{"agent":5}', '{"metadata":[1]}', '{"metadata":"x"}', '{"bogus":1}',
                       '[1]', '{"agent":"' + "a" * 300 + '"}', '{"agent":"a"', '{"agent":"a"}x',
                       b'{"agent":"\xff"}']):
    case("session-body-%02d" % i, "PUT", "/v1/sessions/ok", b, J, 400)

# -- ambiguous framing (request smuggling) --
case("framing-cl-te", "POST", EV, None, None, 400, "invalid_parameter",
     raw_headers=["Content-Type: application/json", "Content-Length: 5",
                  "Transfer-Encoding: chunked"])
case("framing-2cl", "POST", EV, None, None, 400, "invalid_parameter",
     raw_headers=["Content-Type: application/json", "Content-Length: 12", "Content-Length: 13"])


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    s = Server(d, args=["--sync", "none", "--max-body-bytes", str(MAX_BODY),
                        "--max-event-bytes", str(MAX_EVENT), "--max-depth", str(MAX_DEPTH)])
    s.start()
    assert s.append("ok", [{"type": "seed", "data": {"n": 1}}]).status == 200
    assert s.request("PUT", "/v1/sessions/ok", body={"agent": "seed"}).status == 200
    yield s
    s.stop()


def snapshot(s):
    return (s.get("/v1/events?after=0&limit=10000&include_raw=true").body,
            s.get("/v1/sessions?limit=1000").body)


def test_corpus_is_big_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize("method,path,body,headers,status,code,raw_headers", CASES)
def test_bad_request(corpus_server, method, path, body, headers, status, code, raw_headers):
    s = corpus_server
    before = snapshot(s)
    if headers and headers.get("Transfer-Encoding") == "chunked":
        piece = b"x" * 8192
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(12)) + b"0\r\n\r\n"
        st, hdrs, resp = raw_request(s.port, method, path, chunked, headers)
    elif raw_headers:
        st, hdrs, resp = raw_request(s.port, method, path, b'{"type":"a"}', None,
                                     raw_headers=raw_headers)
    else:
        st, hdrs, resp = raw_request(s.port, method, path, body, headers)
    assert st == status, resp
    assert hdrs.get("content-type") == "application/problem+json", (hdrs, resp)
    p = json.loads(resp)
    assert p["status"] == status
    assert p["type"].startswith("urn:reel:error:")
    if code:
        assert p["type"] == "urn:reel:error:" + code, p
    assert isinstance(p["title"], str) and isinstance(p["detail"], str) and p["detail"]
    assert snapshot(s) == before
    # the server still answers normally afterwards
    assert s.get("/v1/health").status == 200


def test_problem_detail_names_the_bad_value(corpus_server):
    st, _, resp = raw_request(corpus_server.port, "GET", "/v1/sessions/ok/events?limit=abc", None)
    assert st == 400 and "abc" in json.loads(resp)["detail"]
    st, _, resp = raw_request(corpus_server.port, "POST", EV, '[{"type":"a"},{"type":"b","zz":1}]', J)
    d = json.loads(resp)["detail"]
    assert st == 400 and "zz" in d and "1" in d
