#!/usr/bin/python3
"""make_seeds.py -- (re)writes the hand-made seed files of tests/fuzz/corpus/.

Seeds are small files written here plus cases from tests/cases/ (ingest, agents, http).
The value corpus is written by tests/fuzz/mkvalues.c (real stored values made by the
store's own encoder). `make fuzz-seeds` runs both.
"""
import os, glob, hashlib

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
C = os.path.join(TOP, "tests", "fuzz", "corpus")

def put(h, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(C, h)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- ingest: envelopes, arrays, NDJSON, every field, numbers, unicode, limits ----
ingest = {
    "one": '{"type":"item.delta","data":{"item_id":"itm_7","delta":"Hello"}}',
    "full": '{"session_id":"x","sequence":3,"position":9,"time":"2026-11-22T13:00:00.123Z",'
            '"event_id":"e-1","type":"item.started","source":"agent","synthetic":false,'
            '"native_session_id":"thread_abc","data":{"a":[1,-2,3.5,1e400,-0,null,true]},'
            '"raw":{"native":"line"}}',
    "array": '[{"type":"a"},{"type":"b","event_id":"b"},{"type":"c","data":[]}]',
    "ndjson": '{"type":"a"}\n\n{"type":"b","data":"x"}\r\n{"type":"session.ended"}\n',
    "numbers": '{"type":"n","data":[0,-0,1,18446744073709551615,18446744073709551616,'
               '-9223372036854775808,-9223372036854775809,0.1,1E+2,1e-999,123456789012345678901234567890]}',
    "unicode": '{"type":"u","data":"\\u00e9\\ud83d\\ude00 caf\u00e9 \\u0000 \\n\\t\\"\\\\\\/"}',
    "nulls": '{"type":"t","source":null,"synthetic":null,"native_session_id":null,"event_id":"id","data":null,"raw":null}',
    "dupkeys": '{"type":"t","data":{"k":1,"k":2}}',
    "deep": '{"type":"d","data":' + "[" * 62 + "]" * 62 + "}",
    "toodeep": '{"type":"d","data":' + "[" * 70 + "]" * 70 + "}",
    "badfield": '{"type":"t","bogus":1}',
    "notype": '{"data":1}',
    "longtype": '{"type":"' + "t" * 129 + '"}',
    "longid": '{"type":"t","event_id":"' + "i" * 129 + '"}',
    "empty": '',
    "ws": ' \n\t ',
    "badutf8": b'{"type":"\xc3\x28"}',
    "surrogate": '{"type":"t","data":"\\ud800"}',
    "trailing": '{"type":"t"} x',
    "bignum": '{"type":"t","data":' + "9" * 4000 + '}',
    "bigstr": '{"type":"t","data":"' + "s" * 3000 + '"}',
}
for k, v in ingest.items():
    put("ingest", k, v)
for f in sorted(glob.glob(os.path.join(TOP, "tests/cases/replay/*/events.jsonl"))):
    put("ingest", "case-" + os.path.basename(os.path.dirname(f)), open(f, "rb").read())

# ---- agents: the recorded native fixtures, plus small odd lines ----
for f in sorted(glob.glob(os.path.join(TOP, "tests/cases/agents/*/*/input.jsonl"))):
    parts = f.split(os.sep)
    put("agents", "case-%s-%s" % (parts[-3], parts[-2]), open(f, "rb").read())
agents = {
    "notjson": "hello world\n{\"type\":\n[1,2]\n\"str\"\n",
    "stderr": "!some stderr text\n!\xff\xfe bytes\n",
    "stdin": '>{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"prompt":[{"type":"text","text":"hi"}]}}\n',
    "deep": '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t","name":"x","input":' + "[" * 126 + "]" * 126 + '}]}}\n',
    "crlf": '{"type":"system","subtype":"init","session_id":"s"}\r\n',
}
for k, v in agents.items():
    put("agents", k, v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v)

# ---- http: raw requests (see fuzz_http.c) ----
http = {
    "health": "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
    "append": "POST /v1/sessions/s1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: 16\r\n\r\n{\"type\":\"a.b\"}\n",
    "ndjson": "POST /v1/sessions/s1/events?expected_sequence=0 HTTP/1.1\r\nHost: x\r\n"
              "Content-Type: application/x-ndjson\r\nContent-Length: 26\r\n\r\n{\"type\":\"a\"}\n{\"type\":\"b\"}\n",
    "read": "GET /v1/sessions/s1/events?offset=0&limit=5&types=a,b HTTP/1.1\r\nHost: x\r\n\r\n",
    "feed": "GET /v1/events?after=0&limit=3 HTTP/1.1\r\nHost: x\r\n\r\n",
    "sessions": "GET /v1/sessions?limit=2&cursor=a HTTP/1.1\r\nHost: x\r\n\r\n",
    "put": "PUT /v1/sessions/s2 HTTP/1.1\r\nHost: x\r\nContent-Length: 41\r\n\r\n{\"agent\":\"claude\",\"metadata\":{\"k\":[1,2]}}",
    "delete": "DELETE /v1/sessions/s3 HTTP/1.1\r\nHost: x\r\n\r\n",
    "chunked": "POST /v1/sessions/s1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "c\r\n{\"type\":\"c\"}\r\n0\r\n\r\n",
    "metrics": "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "restore": "GET /v1/sessions/s1/restore?max_events=5&fit=sdk HTTP/1.1\r\nHost: x\r\n\r\n",
    "transcript": "GET /v1/sessions/s1/transcript?format=markdown HTTP/1.1\r\nHost: x\r\n\r\n",
    "pipeline": "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/sessions/s1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "badpath": "GET /v1/sessions/%2e%2e/events HTTP/1.1\r\nHost: x\r\n\r\n",
    "options": "OPTIONS /v1/sessions/s1/events HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\n\r\n",
}
for k, v in http.items():
    put("http", k, v)
print("seeds written under", C)
