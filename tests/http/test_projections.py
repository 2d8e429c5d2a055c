"""Routes served by replay/: restore, transcript, stats and export (docs/HTTP.md "Restore, transcript, verify, stats, export")."""
import hashlib
import json
import shutil
import subprocess

import pytest

from conftest import REEL_BIN, Server, ev

HEADER = ("Previous session history is replayed below as JSON-RPC envelopes. Use it as context "
          "before responding to the latest user prompt.")


def conversation(server, sid="conv", n=5):
    evs = []
    for i in range(n):
        item = "i%d" % i
        evs += [ev("item.started", source="agent", data={"item_id": item, "kind": "message",
                                                          "role": "assistant"}),
                ev("item.delta", source="agent", data={"item_id": item, "delta": "part%d " % i}),
                ev("item.completed", source="agent", data={"item_id": item})]
    assert server.append(sid, evs).status == 200
    return len(evs)


def test_restore_newest(server):
    n = conversation(server)
    r = server.get("/v1/sessions/conv/restore?max_events=4")
    assert r.status == 200, r
    j = r.json
    assert j["session"]["id"] == "conv"
    assert [e["sequence"] for e in j["events"]] == list(range(n - 3, n + 1))
    assert (j["from_sequence"], j["to_sequence"]) == (n - 3, n)
    assert j["replay_text"].startswith(HEADER)
    assert j["truncated"] is False


def test_restore_sdk_fit_and_max_chars(server):
    conversation(server)
    r = server.get("/v1/sessions/conv/restore?max_events=50&max_chars=300&fit=sdk").json
    assert r["truncated"] is True
    assert r["replay_text"].endswith("[history truncated]")
    r2 = server.get("/v1/sessions/conv/restore?max_events=50&max_chars=300").json
    assert r2["truncated"] is True and "[earlier history truncated]" in r2["replay_text"]
    assert r2["to_sequence"] == 15


def test_restore_errors(server):
    assert server.get("/v1/sessions/none/restore").status == 404
    conversation(server)
    for q in ("max_events=0", "max_events=10001", "fit=oldest", "max_chars=x"):
        r = server.get("/v1/sessions/conv/restore?" + q)
        assert r.status == 400 and r.json["type"] == "urn:reel:error:invalid_parameter", q


def test_transcript_json_and_markdown(server):
    conversation(server, n=2)
    r = server.get("/v1/sessions/conv/transcript")
    assert r.status == 200 and r.header("content-type") == "application/json"
    j = r.json
    assert j["session_id"] == "conv" and j["last_sequence"] == 6
    assert "part0" in r.body.decode() and "part1" in r.body.decode()
    r = server.get("/v1/sessions/conv/transcript?at=3")
    assert "part0" in r.body.decode() and "part1" not in r.body.decode()
    r = server.get("/v1/sessions/conv/transcript?format=markdown")
    assert r.status == 200 and r.header("content-type").startswith("text/markdown")
    assert "part1" in r.body.decode()
    assert server.get("/v1/sessions/conv/transcript?format=html").status == 400
    assert server.get("/v1/sessions/none/transcript").status == 404


def test_stats(server):
    conversation(server, n=2)
    server.append("other", ev("error"))
    j = server.get("/v1/stats").json
    assert j["events"] == 7 and j["sessions"] == 2
    assert j["by_type"]["item.delta"] == 2
    j = server.get("/v1/stats?after=0&until=3").json
    assert j["events"] == 3
    j = server.get("/v1/stats?session=other").json
    assert j["events"] == 1
    for q in ("after=x", "since=yesterday", "session=a%01b"):
        assert server.get("/v1/stats?" + q).status == 400, q


def export_lines(server, path):
    r = server.get(path)
    assert r.status == 200, r
    if r.header("content-type") == "application/zstd":
        disp = r.header("content-disposition")
        assert '.jsonl.zst"; filename*=UTF-8\'\'' in disp and disp.endswith(".jsonl.zst"), disp
        text = subprocess.run(["zstd", "-dc"], input=r.body, capture_output=True,
                              check=True).stdout
    else:
        assert r.header("content-type") == "application/x-ndjson"
        text = r.body
    return [json.loads(x) for x in text.decode().splitlines()]


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd CLI missing")
def test_session_export_zstd(server):
    conversation(server, n=2)
    server.append("other", ev())
    lines = export_lines(server, "/v1/sessions/conv/export")
    assert lines[0]["record"] == "export" and lines[-1]["record"] == "end"
    events = [x for x in lines if "record" not in x]
    assert [e["sequence"] for e in events] == list(range(1, 7))
    assert all(e["session_id"] == "conv" for e in events)
    assert any(x.get("record") == "session" and x["id"] == "conv" for x in lines)


def test_export_plain_with_filters(server):
    conversation(server, n=1)
    server.append("b", [ev("x"), ev("y")])
    server.append("c", ev("z"))
    lines = export_lines(server, "/v1/export?compression=none&sessions=b,c")
    events = [x for x in lines if "record" not in x]
    assert [e["type"] for e in events] == ["x", "y", "z"]
    lines = export_lines(server, "/v1/export?compression=none&after=3&until=5")
    assert [e["position"] for e in lines if "record" not in e] == [4, 5]
    for q in ("compression=gzip", "format=csv", "sessions=a,,b", "sessions=..", "after=-1"):
        assert server.get("/v1/export?" + q).status == 400, q
    assert server.get("/v1/sessions/none/export").status == 404


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd")
def test_http_exports_carry_the_integrity_records(server, tmp_path):
    """The routes stream replay's export: the same check and end records (SHA-256 of the
    bytes before them, counts), the zstd content checksum; a cut download imports nothing."""
    conversation(server, n=40)  # 120 events: a check record after line 100
    for path in ("/v1/export?compression=none", "/v1/sessions/conv/export?compression=none",
                 "/v1/export", "/v1/sessions/conv/export"):
        body = server.get(path).body
        if body[:4] == b"\x28\xb5\x2f\xfd":
            assert body[4] & 0x04, "zstd frame header: the content checksum flag"
            body = subprocess.run(["zstd", "-dc"], input=body, capture_output=True,
                                  check=True).stdout
        lines = body.split(b"\n")[:-1]
        recs = [json.loads(l) for l in lines]
        assert recs[0]["format"] == 2 and recs[-1]["record"] == "end", path
        assert recs[-1]["events"] == 120 and recs[-1]["lines"] == len(lines) - 1
        for i, r in enumerate(recs):
            if r.get("record") in ("check", "end"):
                assert r["sha256"] == hashlib.sha256(b"".join(l + b"\n" for l in lines[:i])).hexdigest()
        assert any(r.get("record") == "check" for r in recs), path
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(server.get("/v1/export").body[:-5])
    p = subprocess.run([REEL_BIN, "import", "--data", str(tmp_path / "d"), str(cut)],
                       capture_output=True, timeout=60)
    assert p.returncode == 1 and b"nothing was imported" in p.stderr, p.stderr


def test_export_import_round_trip(server, tmp_path):
    conversation(server, n=3)
    server.request("PUT", "/v1/sessions/conv", body={"agent": "claude", "metadata": {"k": 1}})
    r = server.get("/v1/export?compression=none")
    f = tmp_path / "x.jsonl"
    f.write_bytes(r.body)
    d = tmp_path / "imported"
    p = subprocess.run([REEL_BIN, "import", "--data", str(d), "--quiet", str(f)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    s2 = Server(tmp_path / "s2dir", args=["--sync", "none"])
    (tmp_path / "s2dir").mkdir()
    s2.data = str(d)
    s2.start()
    try:
        assert s2.feed() == server.feed()
        a, b = server.get("/v1/sessions/conv").json, s2.get("/v1/sessions/conv").json
        assert a["agent"] == b["agent"] == "claude" and a["metadata"] == b["metadata"]
    finally:
        s2.stop()


def test_verify_one_session(server):
    conversation(server)
    r = server.get("/v1/sessions/conv/verify")
    assert r.status == 200, r
    assert r.json["ok"] is True and r.json["events"] == 15 and r.json["sessions"] == 1
    assert server.get("/v1/sessions/nope/verify").status == 404
    assert server.get("/v1/sessions/a%01b/verify").status == 400
    assert server.get("/v1/sessions/a%2Fb/verify").status == 404  # a valid id, no session
