"""Conditional session updates (issue 15, item 6) and sessions that run again (item 7).

A session record carries a version, served as "version" and as a strong ETag ("3"). PUT and
DELETE take If-Match / If-None-Match: * (and PUT a body field expected_version); the store
checks them inside its write transaction, so concurrent read-modify-write clients that retry
on 412 lose no update.
"""
import json
import threading

from conftest import ev


def put(server, sid, body=None, headers=None):
    return server.request("PUT", "/v1/sessions/" + sid, body=body if body is not None else {},
                          headers=headers)


def etag(v):
    return '"%d"' % v


def test_version_and_etag_on_every_record_answer(server):
    r = put(server, "v1", {"agent": "a"})
    assert r.status == 200 and r.json["version"] == 1 and r.header("ETag") == '"1"'
    g = server.get("/v1/sessions/v1")
    assert g.json["version"] == 1 and g.header("ETag") == '"1"'
    r = server.request("POST", "/v1/sessions/v1", body={"metadata": {"k": 1}})
    assert r.json["version"] == 2 and r.header("ETag") == '"2"'
    lst = server.get("/v1/sessions").json["sessions"]
    assert [s["version"] for s in lst if s["id"] == "v1"] == [2]
    h = server.request("HEAD", "/v1/sessions/v1")
    assert h.status == 200 and h.header("ETag") == '"2"'


def test_if_match_current_applies_and_gives_the_new_etag(server):
    put(server, "m", {"agent": "a"})
    r = put(server, "m", {"metadata": {"x": 1}}, {"If-Match": '"1"'})
    assert r.status == 200, r
    assert r.json["version"] == 2 and r.header("ETag") == '"2"' and r.json["metadata"] == {"x": 1}
    # a list holding the current version matches too
    r = put(server, "m", {"agent": "b"}, {"If-Match": '"7", "2"'})
    assert r.status == 200 and r.header("ETag") == '"3"'
    r = put(server, "m", {"agent": "c"}, {"If-Match": "*"})
    assert r.status == 200 and r.json["version"] == 4
    # a PUT that changes nothing keeps the version (the ETag names the content)
    r = put(server, "m", {"agent": "c", "metadata": {"x": 1}}, {"If-Match": '"4"'})
    assert r.status == 200 and r.json["version"] == 4 and r.header("ETag") == '"4"'
    r = put(server, "m", {})
    assert r.status == 200 and r.json["version"] == 4


def test_if_match_stale_is_412_and_changes_nothing(server):
    put(server, "st", {"agent": "a", "metadata": {"k": "v"}})
    put(server, "st", {"agent": "b"})
    before = server.get("/v1/sessions/st")
    r = put(server, "st", {"agent": "evil", "metadata": {}}, {"If-Match": '"1"'})
    assert r.status == 412, r
    assert r.json["type"] == "urn:reel:error:precondition_failed" and r.json["status"] == 412
    assert "version 1" in r.json["detail"] and "version 2" in r.json["detail"]
    assert r.header("ETag") == '"2"'
    after = server.get("/v1/sessions/st")
    assert after.body == before.body and after.header("ETag") == '"2"'


def test_if_match_on_a_missing_session_is_412_and_creates_nothing(server):
    for h in ('"1"', "*"):
        r = put(server, "nope", {"agent": "a"}, {"If-Match": h})
        assert r.status == 412 and "does not exist" in r.json["detail"], r
        assert r.header("ETag") is None
    assert server.get("/v1/sessions/nope").status == 404


def test_if_none_match_star_creates_only(server):
    r = put(server, "c", {"agent": "first"}, {"If-None-Match": "*"})
    assert r.status == 200 and r.json["version"] == 1 and r.json["agent"] == "first"
    before = server.get("/v1/sessions/c").body
    r = put(server, "c", {"agent": "second"}, {"If-None-Match": "*"})
    assert r.status == 412 and "If-None-Match" in r.json["detail"], r
    assert server.get("/v1/sessions/c").body == before
    # a session created by its first append exists too
    server.append("c2", [ev("x")])
    assert put(server, "c2", {}, {"If-None-Match": "*"}).status == 412


def test_expected_version_in_the_body(server):
    put(server, "e", {"agent": "a"})
    r = put(server, "e", {"metadata": {"a": 1}, "expected_version": 1})
    assert r.status == 200 and r.json["version"] == 2
    before = server.get("/v1/sessions/e").body
    r = put(server, "e", {"metadata": {"b": 1}, "expected_version": 1})
    assert r.status == 412 and "expected version 1" in r.json["detail"], r
    assert server.get("/v1/sessions/e").body == before
    # the same version in the header and the body is allowed
    r = put(server, "e", {"agent": "b", "expected_version": 2}, {"If-Match": '"2"'})
    assert r.status == 200 and r.json["version"] == 3


def test_malformed_conditions_are_400_and_change_nothing(server):
    put(server, "bad", {"agent": "a"})
    before = server.get("/v1/sessions/bad").body
    cases = [
        ({"If-Match": "1"}, {}, "If-Match '1'"),             # not quoted
        ({"If-Match": '"0"'}, {}, '"0"'),
        ({"If-Match": '"-1"'}, {}, '"-1"'),
        ({"If-Match": '"abc"'}, {}, '"abc"'),
        ({"If-Match": '"01"'}, {}, '"01"'),
        ({"If-Match": 'W/"1"'}, {}, "weak"),
        ({"If-Match": '"1'}, {}, "If-Match"),
        ({"If-Match": '"1" "2"'}, {}, "commas"),
        ({"If-Match": ","}, {}, "no entity-tag"),
        ({"If-Match": '"18446744073709551616"'}, {}, "18446744073709551616"),
        ({"If-None-Match": '"1"'}, {}, "If-None-Match"),
        ({}, {"expected_version": 0}, "expected_version"),
        ({}, {"expected_version": -1}, "-1"),
        ({}, {"expected_version": 1.0}, "1.0"),
        ({}, {"expected_version": "1"}, '"1"'),
        ({}, {"expected_version": None}, "null"),
        ({"If-Match": '"2"'}, {"expected_version": 1}, "differ"),
        ({"If-Match": "*"}, {"expected_version": 1}, "differ"),
    ]
    for headers, body, named in cases:
        r = put(server, "bad", dict(body, agent="changed"), headers)
        assert r.status == 400, (headers, body, r)
        assert r.json["type"] == "urn:reel:error:invalid_parameter"
        assert named in r.json["detail"], (headers, body, r.json["detail"])
    assert server.get("/v1/sessions/bad").body == before


def test_delete_with_if_match(server):
    server.append("d", [ev("a")])
    for bad in ("1", 'W/"1"', '"x"'):
        r = server.request("DELETE", "/v1/sessions/d", headers={"If-Match": bad})
        assert r.status == 400 and bad in r.json["detail"], r
    r = server.request("DELETE", "/v1/sessions/d", headers={"If-Match": '"5"'})
    assert r.status == 412 and r.header("ETag") == '"1"'
    assert server.get("/v1/sessions/d").json["status"] == "active"
    assert len(server.events("d")) == 1
    r = server.request("DELETE", "/v1/sessions/d", headers={"If-Match": '"1"'})
    assert r.status == 200 and r.json["status"] == "deleted" and r.json["version"] == 2
    assert r.header("ETag") == '"2"'
    # deleting again changes nothing, the version stays
    r = server.request("DELETE", "/v1/sessions/d")
    assert r.status == 200 and r.json["version"] == 2
    # a deleted session stays deleted: 410 whatever the condition
    assert put(server, "d", {}, {"If-Match": '"2"'}).status == 410
    assert put(server, "d", {}, {"If-None-Match": "*"}).status == 410
    r = server.request("DELETE", "/v1/sessions/none", headers={"If-Match": '"1"'})
    assert r.status == 404


def test_appends_leave_the_version_but_a_new_native_id_counts(server):
    put(server, "ap", {"agent": "a"})
    server.append("ap", [ev("x"), ev("session.ended")])
    g = server.get("/v1/sessions/ap").json
    assert g["version"] == 1 and g["last_sequence"] == 2
    server.append("ap", [ev("y", native_session_id="n1"), ev("z", native_session_id="n1")])
    assert server.get("/v1/sessions/ap").json["version"] == 2
    server.append("ap", [ev("w", native_session_id="n1")])  # the same id: no change
    assert server.get("/v1/sessions/ap").json["version"] == 2
    # a session created by its first append starts at 1, native id or not
    server.append("ap2", [ev("x", native_session_id="n2")])
    assert server.get("/v1/sessions/ap2").json["version"] == 1


def test_concurrent_read_modify_write_loses_no_update(server):
    """The lost update of issue 15: N clients each add their own metadata keys by GET,
    merge, PUT If-Match, retrying on 412. Every key must be there at the end."""
    put(server, "rmw", {"metadata": {}})
    N, K = 6, 5
    errors, conflicts = [], [0]
    lock = threading.Lock()

    def client(i):
        try:
            conn = server.conn()
            for k in range(K):
                for _ in range(500):
                    g = server.request("GET", "/v1/sessions/rmw", conn=conn)
                    meta = dict(g.json["metadata"])
                    meta["c%d_%d" % (i, k)] = True
                    r = server.request("PUT", "/v1/sessions/rmw", body={"metadata": meta},
                                       headers={"If-Match": g.header("ETag")}, conn=conn)
                    if r.status == 200:
                        break
                    if r.status != 412:
                        raise AssertionError("unexpected %r" % r)
                    with lock:
                        conflicts[0] += 1
                else:
                    raise AssertionError("no progress")
            conn.close()
        except Exception as e:  # asserted on the test's thread
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rec = server.get("/v1/sessions/rmw").json
    want = {"c%d_%d" % (i, k) for i in range(N) for k in range(K)}
    assert set(rec["metadata"]) == want
    assert rec["version"] == 1 + N * K  # the create, then one per applied PUT


# ---- item 7: a session that runs again ----

def test_started_ended_started_is_active_with_two_runs(server):
    server.append("run", [ev("session.started"), ev("x"), ev("session.ended")])
    g = server.get("/v1/sessions/run").json
    assert g["status"] == "ended" and g["runs"] == 1 and g["ended_at"]
    first_end = g["ended_at"]
    server.append("run", [ev("session.started")])
    g = server.get("/v1/sessions/run").json
    assert g["status"] == "active" and g["runs"] == 2
    assert g["ended_at"] == first_end  # the latest end is kept while running again
    assert g["version"] == 1  # runs and status are not fields a PUT sets
    server.append("run", [ev("session.ended")])
    g = server.get("/v1/sessions/run").json
    assert g["status"] == "ended" and g["ended_at"] >= first_end
    # the listing filters by the current status
    ids = [s["id"] for s in server.get("/v1/sessions?status=ended").json["sessions"]]
    assert "run" in ids


def test_any_append_after_an_end_reactivates(server):
    server.append("any", [ev("session.ended")])
    assert server.get("/v1/sessions/any").json["status"] == "ended"
    server.append("any", [ev("message.user")])
    g = server.get("/v1/sessions/any").json
    assert g["status"] == "active" and g["runs"] == 0 and g["ended_at"]


def test_a_resent_session_started_does_not_count(server):
    e = [ev("session.started", event_id="start-1"), ev("session.ended", event_id="end-1")]
    server.append("dup", e)
    r = server.append("dup", e)  # the same batch again: duplicates
    assert r.status in (200, 201) and r.json["duplicates"] == 2, r
    g = server.get("/v1/sessions/dup").json
    assert g["runs"] == 1 and g["status"] == "ended" and g["last_sequence"] == 2
    # a duplicate inside one batch counts once too
    server.append("dup2", [ev("session.started", event_id="s"), ev("session.started", event_id="s")])
    assert server.get("/v1/sessions/dup2").json["runs"] == 1
    # a re-sent session.started after the end neither counts nor reactivates
    server.append("dup", [ev("session.started", event_id="start-1")])
    g = server.get("/v1/sessions/dup").json
    assert g["runs"] == 1 and g["status"] == "ended"


def test_a_deleted_session_stays_deleted(server):
    server.append("gone", [ev("session.started"), ev("session.ended")])
    assert server.request("DELETE", "/v1/sessions/gone").status == 200
    r = server.append("gone", [ev("session.started")])
    assert r.status == 410
    g = server.get("/v1/sessions/gone").json
    assert g["status"] == "deleted" and g["runs"] == 1


def test_a_closed_durable_stream_stays_closed_when_its_session_runs_again(server):
    """Durable Streams keep closure in the stream's state (metadata), not in the session
    status: events that end and restart the session do not reopen the stream."""
    h = {"Content-Type": "text/plain"}
    assert server.request("PUT", "/v1/stream/cl", body=b"x", headers=h).status == 201
    r = server.request("POST", "/v1/stream/cl", body=b"", headers={"Stream-Closed": "true"})
    assert r.status == 204
    sid = "ds:cl"
    rec = server.get("/v1/sessions/" + sid).json
    assert rec["metadata"]["durable_stream"]["closed"] is True
    assert server.append(sid, [ev("session.ended"), ev("session.started")]).status in (200, 201)
    rec = server.get("/v1/sessions/" + sid).json
    assert rec["status"] == "active" and rec["runs"] == 1
    assert rec["metadata"]["durable_stream"]["closed"] is True
    r = server.request("POST", "/v1/stream/cl", body=b"y", headers=h)
    assert r.status == 409 and r.header("stream-closed") == "true"
    assert server.request("HEAD", "/v1/stream/cl").header("stream-closed") == "true"
