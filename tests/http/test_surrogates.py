"""Lone surrogates, escapes, U+2028/2029 and NUL round-trip exactly through every read path
(docs/FORMAT.md "Strings: WTF-8", docs/HTTP.md "Append").

JavaScript strings may hold half a surrogate pair; JSON.stringify then writes "\\ud83d".
reel stores such a string as WTF-8 and serves back the same UTF-16 code units. The
reference is node: JSON.stringify(JSON.parse(text)) of what was sent, compared byte for
byte with what reel writes where the read path is JSON, and code unit for code unit after
parsing (Python's json keeps lone surrogates in str, as JSON.parse does).
Bad input: raw surrogate bytes, overlong and truncated UTF-8 stay 400; the depth limit is
exact (--max-depth 10 and the default 512) and a 100000-deep body is a clean 400.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import REEL_BIN, SSEClient, Server, free_port

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

# JSON string literals exactly as a client writes them.
STRINGS = [
    r'"\ud83d"',                    # lone high
    r'"\ude00"',                    # lone low
    r'"\ude00\ud83d"',              # low then high: two lone ones
    r'"\ud83d\ude00"',              # a pair as escapes
    r'"\uD83D\uDE00"',              # upper-case hex
    '"\U0001F600 raw"',             # a pair as raw UTF-8
    r'"x\ud83dy\udfffz"',           # lone ones between text
    r'"\ud83d\ud83d\ude00"',        # high, then a pair
    r'"\ud800\u0041"',              # high then a non-low escape
    r'"\udbff"', r'"\udc00"',
    r'"q\"b\\s\/ \b\f\n\r\t \u0001\u001f\u007f"',
    r'"\u2028 \u2029"',
    r'"\u0000"', r'"a\u0000b"',
    '"caf\u00e9 \u4e2d \ud55c"',  # U+D55C is ED 95 9C: a 0xED lead byte that is no surrogate
]


def key(i, lit):
    """A distinct, non-index key holding the same content: "k<i>:" + the literal's body."""
    return '"k%d:' % i + lit[1:]


DATA = "{" + ",".join("%s:%s" % (key(i, s), s) for i, s in enumerate(STRINGS)) + \
       ',"all":[' + ",".join(STRINGS) + "]}"
# identifiers from JavaScript may hold a lone surrogate too (all but the session id)
EVENT = ('{"type":"x\\ud83d","event_id":"e\\udc00","source":"agent\\ud800",'
         '"native_session_id":"n\\udfff","data":%s,"raw":%s}' % (DATA, DATA))
# a stream cut in the middle of an emoji: the transcript joins the halves as JS does
DELTAS = [r'"a\ud83d"', r'"\ude00b"', r'"\ude00"', r'"\u2028\ud800"']
ITEM = ['{"type":"item.started","source":"agent","data":{"item_id":"m1","kind":"message",'
        '"role":"assistant"}}'] + \
       ['{"type":"item.delta","source":"agent","data":{"item_id":"m1","delta":%s}}' % d
        for d in DELTAS] + \
       ['{"type":"item.completed","source":"agent","data":{"item_id":"m1"}}']

NODE_STRINGIFY = r"""
const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(texts.map(t => JSON.stringify(JSON.parse(t)))));
"""
NODE_JOIN = r"""
const parts = JSON.parse(require('fs').readFileSync(0, 'utf8')).map(JSON.parse);
process.stdout.write(JSON.stringify(parts.join('')));
"""


def node(script, arg):
    p = subprocess.run([NODE, "-e", script], input=json.dumps(arg).encode(),
                       capture_output=True, check=True)
    return p.stdout


def stringify(texts):
    """JSON.stringify(JSON.parse(t)) for each text, as node writes it (UTF-8 bytes)."""
    return [s.encode("utf-8", "surrogatepass") for s in json.loads(node(NODE_STRINGIFY, texts))]


def units(v):
    """The value with every string as its UTF-16 code units (what JavaScript holds)."""
    if isinstance(v, str):
        return v.encode("utf-16-le", "surrogatepass")
    if isinstance(v, list):
        return [units(x) for x in v]
    if isinstance(v, dict):
        return [(units(k), units(x)) for k, x in v.items()]
    return v


def assert_json_value(got, want_bytes):
    """'got' (parsed from reel) holds the same code units as 'want_bytes' (node's text)."""
    assert units(got) == units(json.loads(want_bytes)), (got, want_bytes)


@pytest.fixture
def loaded(server):
    r = server.append("s", EVENT, headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    r = server.append("s", "\n".join(ITEM) + "\n", headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 200, r
    return server


def check_event_json(text, data_ref):
    """One event as reel writes it (bytes): data and raw byte for byte, identifiers."""
    assert b'"data":' + data_ref + b"," in text, text[:400]
    assert b'"raw":' + data_ref in text
    for ident in (b'"type":"x\\ud83d"', b'"event_id":"e\\udc00"', b'"source":"agent\\ud800"',
                  b'"native_session_id":"n\\udfff"'):
        assert ident in text
    ev = json.loads(text)
    assert_json_value(ev["data"], data_ref)
    assert ev["type"] == "x\ud83d" and ev["event_id"] == "e\udc00"


@needs_node
def test_poll_sse_export_import_round_trip(loaded, tmp_path):
    s = loaded
    data_ref, = stringify([DATA])
    # poll
    r = s.get("/v1/sessions/s/events?include_raw=true")
    assert r.status == 200
    body = r.body
    start = body.index(b'{"session_id"')
    check_event_json(body[start:body.index(b'},{"session_id"') + 1], data_ref)
    # the whole feed, too
    r = s.get("/v1/events?after=0&include_raw=true")
    assert b'"data":' + data_ref + b"," in r.body
    # SSE: the data line of the first message, byte for byte
    c = SSEClient(s, "/v1/sessions/s/events/sse?include_raw=true")
    assert c.status == 200
    line = b""
    while not line.startswith(b"data: "):
        line = c.r.readline().rstrip(b"\r\n")
    c.close()
    check_event_json(line[6:], data_ref)
    # export: plain JSON lines and zstd give the same lines; import brings back the same
    plain = s.get("/v1/sessions/s/export?compression=none")
    assert plain.status == 200
    ev_line = [ln for ln in plain.body.split(b"\n") if b'"event_id":"e\\udc00"' in ln]
    assert len(ev_line) == 1
    assert b'"data":' + data_ref in ev_line[0]
    z = s.get("/v1/sessions/s/export")
    assert z.status == 200
    zf = tmp_path / "s.reel.zst"
    zf.write_bytes(z.body)
    unz = subprocess.run(["zstd", "-dc", str(zf)], capture_output=True, check=True).stdout
    assert unz == plain.body
    d2 = str(tmp_path / "imported")
    subprocess.run([REEL_BIN, "import", "--data", d2, "--sync", "none", "--quiet", str(zf)],
                   check=True)
    tail = subprocess.run([REEL_BIN, "tail", "--data", d2, "--session", "s", "--include-raw"],
                          capture_output=True, check=True).stdout.split(b"\n")
    check_event_json(tail[0], data_ref)
    # and an export of the import holds the same bytes
    exp2 = str(tmp_path / "again.jsonl")
    subprocess.run([REEL_BIN, "export", "--data", d2, "--session", "s", "--compression", "none",
                    "-o", exp2], check=True)
    assert b'"data":' + data_ref in open(exp2, "rb").read()
    # the integrity check reads WTF-8 bodies as any others
    r = s.get("/v1/sessions/s/verify")
    assert r.status == 200 and r.json["ok"] is True, r
    # metadata keeps lone surrogates too
    r = s.request("PUT", "/v1/sessions/s", body='{"agent":"a\\ud83d","metadata":%s}' % DATA,
                  headers={"Content-Type": "application/json"})
    assert r.status in (200, 201), r
    r = s.get("/v1/sessions/s")
    assert b'"metadata":' + data_ref in r.body
    assert b'"agent":"a\\ud83d"' in r.body


RESTORE_JS = r"""
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(Boolean).map(JSON.parse);
const maxEvents = +process.argv[1], maxChars = +process.argv[2];
const events = lines.slice(-maxEvents).map(e => ({createdAt: Date.parse(e.time), sender: e.source, payload: e.data}));
let text = null;
if (events.length) {
  text = "Previous session history is replayed below as JSON-RPC envelopes. Use it as context before responding to the latest user prompt.\n";
  for (const ev of events) {
    const line = JSON.stringify({createdAt: ev.createdAt, sender: ev.sender, payload: ev.payload});
    if (text.length + line.length + 1 > maxChars) { text += "\n[history truncated]"; break; }
    text += line + "\n";
  }
}
process.stdout.write(JSON.stringify(text));
"""


@needs_node
@pytest.mark.parametrize("max_chars", [100000, 3000, 700])
def test_restore_sdk_and_newest(loaded, max_chars):
    s = loaded
    data_ref, = stringify([DATA])
    events = s.get("/v1/sessions/s/events").body
    lines = "\n".join(json.dumps(e) for e in json.loads(events)["events"])  # ASCII-escaped
    want = json.loads(subprocess.run([NODE, "-e", RESTORE_JS, "50", str(max_chars)],
                                     input=lines.encode(), capture_output=True,
                                     check=True).stdout)
    r = s.get("/v1/sessions/s/restore?fit=sdk&max_chars=%d" % max_chars)
    assert r.status == 200
    got = r.json["replay_text"]
    assert units(got) == units(want)
    r = s.get("/v1/sessions/s/restore?fit=newest&include_raw=true")
    assert r.status == 200
    assert b'"data":' + data_ref + b"," in r.body
    assert_json_value(r.json["events"][0]["data"], data_ref)


@needs_node
def test_transcript_json_markdown_and_stats(loaded):
    s = loaded
    data_ref, = stringify([DATA])
    joined = json.loads(node(NODE_JOIN, DELTAS))  # JS string concatenation of the deltas
    r = s.get("/v1/sessions/s/transcript")
    assert r.status == 200, r
    t = r.json
    assert b'"data":' + data_ref in r.body  # the "other" event, byte for byte
    other = [o for o in t["other"] if o["type"] == "x\ud83d"]
    assert len(other) == 1
    assert_json_value(other[0]["data"], data_ref)
    item, = [i for i in t["items"] if i["item_id"] == "m1"]
    assert units(item["text"]) == units(joined)
    assert item["text"] == "a\U0001F600b\ude00\u2028\ud800"
    # Markdown is text for people: valid UTF-8, a lone surrogate shown as U+FFFD
    md = s.get("/v1/sessions/s/transcript?format=markdown")
    assert md.status == 200
    text = md.body.decode("utf-8")  # strict: no surrogate bytes
    assert "a\U0001F600b\ufffd\u2028\ufffd" in text
    # stats count by a type holding a lone surrogate
    st = s.get("/v1/stats")
    assert st.status == 200, st
    assert st.json["by_type"]["x\ud83d"] == 1
    assert b'"x\\ud83d":1' in st.body


@needs_node
def test_durable_streams_json_mode(server):
    s = server
    r = s.request("PUT", "/v1/stream/sur/1", headers={"Content-Type": "application/json"})
    assert r.status == 201, r
    msgs = STRINGS + [DATA]
    r = s.request("POST", "/v1/stream/sur/1", body="[" + ",".join(msgs) + "]",
                  headers={"Content-Type": "application/json"})
    assert r.status in (200, 204), r
    refs = stringify(msgs)
    r = s.get("/v1/stream/sur/1?offset=-1")
    assert r.status == 200, r
    assert r.body == b"[" + b",".join(refs) + b"]"
    got = r.json
    assert len(got) == len(refs)
    for g, w in zip(got, refs):
        assert_json_value(g, w)


# ---- bad input ----

BAD_BYTES = [
    (b"\xed\xa0\x80", "surrogate bytes"),
    (b"\xed\xbf\xbf", "low surrogate bytes"),
    (b"\xc0\xaf", "overlong"),
    (b"\xe0\x80\xaf", "overlong 3-byte"),
    (b"\xe2\x82", "truncated"),
    (b"\xf0\x9f\x98", "truncated 4-byte"),
]


@pytest.mark.parametrize("raw,what", BAD_BYTES)
def test_invalid_utf8_bytes_stay_refused(server, raw, what):
    for body in (b'{"type":"t","data":"ab' + raw + b'"}',
                 b'{"type":"t","data":{"ab' + raw + b'":1}}'):
        r = server.append("bad", body, headers={"Content-Type": "application/json"})
        assert r.status == 400, (what, r)
        assert r.json["type"].endswith("invalid_json")
        assert "invalid UTF-8 byte 0x%02x at offset" % raw[0] in r.json["detail"], r.json
    assert server.get("/v1/sessions/bad").status == 404  # nothing written
    r = server.request("PUT", "/v1/stream/bad/1", headers={"Content-Type": "application/json"})
    r = server.request("POST", "/v1/stream/bad/1", body=b'["' + raw + b'"]',
                       headers={"Content-Type": "application/json"})
    assert r.status == 400, r


def nested(levels):
    """An event whose whole JSON nests 'levels' deep (the envelope is level 1)."""
    inner = "[" * (levels - 2) + "1" + "]" * (levels - 2)
    return '{"type":"t","data":{"k":%s}}' % inner


@pytest.mark.parametrize("limit", [10, 512])
def test_depth_limit_exact(server_factory, limit):
    args = ["--sync", "none"] + (["--max-depth", str(limit)] if limit != 512 else [])
    s = server_factory(args=args)
    h = {"Content-Type": "application/json"}
    r = s.append("d", nested(limit), headers=h)
    assert r.status == 200, r
    r = s.append("d", nested(limit + 1), headers=h)
    assert r.status == 400, r
    assert r.json["type"].endswith("too_deep")
    assert "nesting deeper than %d levels at offset" % limit in r.json["detail"], r.json
    # the accepted one reads back whole through every writer
    ev = s.get("/v1/sessions/d/events").json["events"]
    assert len(ev) == 1
    assert json.dumps(ev[0]["data"], separators=(",", ":")) == nested(limit)[19:-1]
    for path in ("/v1/sessions/d/transcript", "/v1/sessions/d/transcript?format=markdown",
                 "/v1/sessions/d/restore?fit=sdk", "/v1/sessions/d/restore",
                 "/v1/sessions/d/export?compression=none", "/v1/stats",
                 "/v1/sessions/d/events/sse"):
        if path.endswith("/sse"):
            c = SSEClient(s, path)
            assert c.status == 200
            assert c.next()[0] == 1
            c.close()
            continue
        assert s.get(path).status == 200, path
    # session metadata and Durable Streams JSON mode have the same limit
    meta = "[" * (limit - 1) + "]" * (limit - 1)
    assert s.request("PUT", "/v1/sessions/m", body='{"metadata":{"k":%s}}' % meta,
                     headers=h).status == 400
    assert s.request("PUT", "/v1/stream/d/1", headers=h).status == 201
    assert s.request("POST", "/v1/stream/d/1", body="[" * limit + "]" * limit,
                     headers=h).status in (200, 204)
    r = s.request("POST", "/v1/stream/d/1", body="[" * (limit + 1) + "]" * (limit + 1), headers=h)
    assert r.status == 400, r


def test_a_very_deep_body_is_a_clean_400(server):
    h = {"Content-Type": "application/json"}
    for body in ('{"type":"t","data":' + "[" * 100000,
                 '{"type":"t","data":' + "[" * 100000 + "]" * 100000 + "}",
                 '[{"type":"t","raw":' + "{\"a\":" * 100000):
        r = server.append("deep", body, headers=h)
        assert r.status == 400, r
        assert "nesting deeper than 512 levels at offset" in r.json["detail"], r.json
    r = server.append("deep", "[" * 100000, headers=h)  # an array of arrays: not an event
    assert r.status == 400, r
    for path, body in (("/v1/sessions/deep", '{"metadata":' + "[" * 100000),
                       ("/v1/stream/deep/1", "[" * 100000)):
        if path.startswith("/v1/stream"):
            assert server.request("PUT", path, headers=h).status == 201
        r = server.request("PUT" if "sessions" in path else "POST", path, body=body, headers=h)
        assert r.status == 400, (path, r)
        assert "nesting deeper than 512 levels" in r.json["detail"], r.json
    assert server.get("/v1/health").status == 200
    assert server.get("/v1/sessions/deep").status == 404


def test_max_depth_option_range(tmp_path):
    for bad in ("1", "100001"):
        p = subprocess.run([REEL_BIN, "serve", "--data", str(tmp_path / "d"), "--max-depth", bad,
                            "--listen", "127.0.0.1:1"], capture_output=True, timeout=20)
        assert p.returncode != 0
        assert b"max-depth" in p.stderr


class SmallStackServer(Server):
    """`reel serve` whose threads get 256 KiB stacks (glibc sizes a thread's default stack
    by RLIMIT_STACK; libmicrohttpd's pool threads use the default)."""

    def start(self, wait=True):
        import resource
        self.port = free_port()
        self.log = open(self.log_path, "ab")
        cmd = [REEL_BIN, "serve", "--data", self.data, "--listen",
               "127.0.0.1:%d" % self.port] + self.args
        # ThreadSanitizer's instrumented frames are several times larger: the claim is
        # about the plain build, so under `make tsan` the stacks get 1 MiB instead.
        lim = (1 << 20) if "TSAN_OPTIONS" in os.environ else 256 << 10
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=self.log, env=self.env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_STACK, (lim, lim)))
        if wait:
            self.wait_ready()
        return self


def test_deep_values_on_small_thread_stacks(tmp_path):
    """--max-depth 100000: values 2047..20001 deep go through every read path on 256 KiB
    thread stacks (nothing recurses over a value; jansson gets at most 2048 levels)."""
    (tmp_path / "s").mkdir()
    s = SmallStackServer(tmp_path / "s", args=["--sync", "none", "--max-depth", "100000"])
    s.start()
    try:
        h = {"Content-Type": "application/json"}
        for n in (1023, 2100, 10000):
            body = '{"type":"t","data":%s%s%s}' % ('{"a":[' * n, r'"\ud83d"', "]}" * n)
            r = s.append("d%d" % n, body, headers=h)
            assert r.status == 200, (n, r)
            for path in ("events", "transcript", "transcript?format=markdown",
                         "restore?fit=sdk", "restore", "export?compression=none", "export"):
                r = s.get("/v1/sessions/d%d/%s" % (n, path))
                assert r.status == 200, (n, path, r)
            ev = s.get("/v1/sessions/d%d/events" % n).body
            assert ev.count(b'{"a":[') == n and b'"\\ud83d"' in ev
        assert s.get("/v1/stats").status == 200
        r = s.append("over", '{"type":"t","data":' + "[" * 100000 + "]" * 100000 + "}",
                     headers=h)
        assert r.status == 400 and "nesting deeper than 100000 levels" in r.json["detail"]
    finally:
        s.stop()
