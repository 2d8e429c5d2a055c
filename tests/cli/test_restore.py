"""Restore text: fit=sdk must equal the sandbox-agent SDK's buildReplayText byte for byte.

The reference is the SDK's own code (tests/sdk, pinned; tests/sdk/sdk_replay.mjs reaches
its private buildReplayText through SandboxAgent.resumeSession) run on the events as `reel
tail` serves them: createdAt is the event's client_time (Date.parse of an RFC 3339 one),
else its commit time. tests/http/test_sdk_restore.py compares 10,000 combinations.
"""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sdk"))
from sdk import ensure_sdk  # noqa: E402

HEADER = ("Previous session history is replayed below as JSON-RPC envelopes. Use it as "
          "context before responding to the latest user prompt.\n")

CORPUS = [
    {"type": "item.delta", "source": "agent", "data": {"delta": "plain ASCII text"},
     "client_time": 1700000000123},
    {"type": "item.delta", "source": "agent", "data": {"delta": "caf\u00e9 \u4e2d\u6587 \u00fcber"},
     "client_time": "2026-01-02T03:04:05.123456+05:30"},
    {"type": "item.delta", "source": "agent", "data": {"delta": "astral \U0001F600 \U0001D11E end"}},
    {"type": "x", "source": "client", "data": {"ctl": "\u0001\u001f\u007f\u2028\"\\/\n\t"}},
    {"type": "x", "source": "agent", "data": {"b": 1, "2": 2, "a": 3, "1": 4, "01": 5,
                                              "4294967295": 6, "4294967294": 7}},
    {"type": "x", "source": "agent", "data": None, "client_time": 0},
    {"type": "x", "data": [True, False, None, [], {}]},
    {"type": "item.completed", "source": "agent", "data": {"text": "\U0001F600" * 300}},
    {"type": "item.completed", "source": "agent", "data": {"text": "y" * 20000}},
    {"type": "x", "source": "agent", "data": {"tail": "the newest event"}},
]

# Numbers as raw text, so they reach reel exactly as written.
RAW_NUMBERS = ('{"type":"n","source":"agent","data":[18446744073709551615,-9223372036854775808,'
               '9007199254740993,0.1,1.50,1e21,1e-7,123e-20,-0,5e-324,1.7976931348623157e308,'
               '1e400,-1e400,100,1E2,0.000001,123456789012345678901234567890]}\n')
RAW_DUPLICATE_KEYS = '{"type":"d","source":"agent","data":{"a":1,"b":2,"a":3,"3":0,"c":{"z":1,"0":2}}}\n'


def sdk_reference(events_jsonl, max_events, max_chars):
    script = os.path.join(ensure_sdk(), "sdk_replay.mjs")
    p = subprocess.run(["node", script, str(max_events), str(max_chars)],
                       input=events_jsonl.encode(), capture_output=True, check=True)
    return p.stdout.decode()


@pytest.fixture
def corpus(reel):
    reel.ingest("r", CORPUS[:7])
    reel.run("ingest", "--session", "r", "--quiet", input=RAW_NUMBERS.encode())
    reel.run("ingest", "--session", "r", "--quiet", input=RAW_DUPLICATE_KEYS.encode())
    reel.ingest("r", CORPUS[7:])
    return reel


@pytest.mark.parametrize("max_events,max_chars", [
    (50, 12000), (50, 100000), (3, 12000), (50, 400), (50, 200), (12, 3000), (1, 5)])
def test_sdk_fit_matches_the_sdk_byte_for_byte(corpus, max_events, max_chars):
    events = corpus.run("tail", "--session", "r").stdout.decode()
    want = sdk_reference(events, max_events, max_chars)
    got = corpus.run("restore", "--session", "r", "--fit", "sdk", "--max-events",
                     str(max_events), "--max-chars", str(max_chars)).stdout.decode()
    assert got == want


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


@pytest.mark.parametrize("max_chars", [12000, 3000, 700, 250])
def test_newest_fit_keeps_the_newest_events_within_the_budget(corpus, max_chars):
    out = json.loads(corpus.run("restore", "--session", "r", "--json", "--max-chars",
                                str(max_chars)).stdout)
    text = out["replay_text"]
    assert text.startswith(HEADER)
    assert utf16_len(text) <= max_chars or out["from_sequence"] == 0
    seqs = [e["sequence"] for e in out["events"]]
    last = corpus.tail("r")[-1]["sequence"]
    if seqs:
        assert seqs[-1] == last, "the newest event is always kept when it fits"
        assert seqs == list(range(seqs[0], last + 1)), "a contiguous newest window"
        assert (out["from_sequence"], out["to_sequence"]) == (seqs[0], seqs[-1])
    body = text[len(HEADER):]
    if out["truncated"]:
        assert body.startswith("[earlier history truncated]\n")
        body = body[len("[earlier history truncated]\n"):]
    assert body.count("\n") == len(seqs)


def test_restore_of_an_unknown_session_fails_and_an_empty_window_has_no_text(reel):
    reel.ingest("one", [{"type": "x", "data": 1}])
    p = reel.run("restore", "--session", "nope", check=False)
    assert p.returncode == 1 and b"no session 'nope' in this data directory" in p.stderr
    out = json.loads(reel.run("restore", "--session", "one", "--json", "--max-events", "0").stdout)
    assert out["replay_text"] is None and out["events"] == []
