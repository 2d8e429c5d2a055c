"""Issue 14, finding 8: a NUL in native_session_id (and agent) is kept exactly.

JSON allows \\u0000, and the project's rule is that valid but unusual input is kept
exactly. The value used to be cut at the NUL in the session record when it arrived on
an event (the event itself kept it), and refused with 400 when it arrived on a PUT. Both
paths now keep every byte, and a record's agent with a NUL is not taken for its prefix.
"""
import json

NSID = "thr\x00ead-1"
AGENT = "cla\x00ude"


def test_nul_in_native_session_id_on_an_event_is_kept_in_the_record(server):
    r = server.append("ev", [{"type": "session.started", "native_session_id": NSID}])
    assert r.status in (200, 201), r
    assert server.events("ev")[0]["native_session_id"] == NSID
    rec = server.get("/v1/sessions/ev").json
    assert rec["native_session_id"] == NSID, rec
    listed = [s for s in server.get("/v1/sessions").json["sessions"] if s["id"] == "ev"]
    assert listed[0]["native_session_id"] == NSID


def test_nul_in_native_session_id_and_agent_on_a_put_is_kept(server):
    body = json.dumps({"agent": AGENT, "native_session_id": NSID}).encode()
    assert "\\u0000" in body.decode()
    r = server.request("PUT", "/v1/sessions/put", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.status in (200, 201), r
    rec = server.get("/v1/sessions/put").json
    assert rec["native_session_id"] == NSID and rec["agent"] == AGENT, rec
    # The same value again is the same record (idempotent), not a conflict or a 400.
    r = server.request("PUT", "/v1/sessions/put", body=body,
                       headers={"Content-Type": "application/json"})
    assert r.status in (200, 201), r
    assert server.get("/v1/sessions/put").json["native_session_id"] == NSID


def test_an_agent_with_a_nul_is_not_its_prefix(server):
    body = json.dumps({"agent": AGENT}).encode()
    assert server.request("PUT", "/v1/sessions/nul", body=body,
                          headers={"Content-Type": "application/json"}).status in (200, 201)
    assert server.request("PUT", "/v1/sessions/plain", body=b'{"agent":"cla"}',
                          headers={"Content-Type": "application/json"}).status in (200, 201)
    ids = [s["id"] for s in server.get("/v1/sessions?agent=cla").json["sessions"]]
    assert ids == ["plain"], ids
    # A key with a NUL is not the key before it.
    r = server.request("PUT", "/v1/sessions/nul", body=b'{"agent\\u0000x":"y"}',
                       headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert server.get("/v1/sessions/nul").json["agent"] == AGENT


def test_a_type_with_a_nul_is_not_folded_as_its_prefix(server):
    """The transcript compared event types as C strings: "item.delta\\0x" was an item."""
    t = "item.delta\x00x"
    r = server.append("ty", [{"type": t, "data": {"item_id": "i1", "kind": "message",
                                                  "role": "assistant", "delta": "zzz"}}])
    assert r.status in (200, 201), r
    assert server.events("ty")[0]["type"] == t
    tr = server.get("/v1/sessions/ty/transcript")
    assert tr.status == 200, tr
    j = tr.json
    assert j["items"] == [], j
    assert [o["type"] for o in j["other"]] == [t], j
