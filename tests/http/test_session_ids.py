"""Issue 15, items 1 and 2 over HTTP: any UTF-8 session id as one percent-encoded path
segment, and GET /v1/sessions?prefix=&order=recent&agent=&status= (docs/HTTP.md)."""
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.parse

import pytest

from conftest import ev

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "format1", "data.tar.gz")


def seg(session_id):
    """The id as one path segment: every byte outside unreserved percent-encoded."""
    return urllib.parse.quote(session_id, safe="")


def listing(server, **params):
    r = server.get("/v1/sessions?" + urllib.parse.urlencode(params))
    assert r.status == 200, r
    return r.json


def list_all(server, **params):
    ids, cursor, pages = [], None, 0
    while True:
        p = dict(params)
        if cursor is not None:
            p["cursor"] = cursor
        j = listing(server, **p)
        ids += [s["id"] for s in j["sessions"]]
        cursor = j["next_cursor"]
        pages += 1
        assert pages < 200
        if cursor is None:
            return ids


def state(server):
    """Everything a bad request must leave unchanged."""
    return (server.get("/v1/sessions?limit=1000").body, server.get("/v1/events?limit=10000").body)


PROJECT = "/home/someone/" + "work/" * 44 + "the-project"  # 200+ bytes, like SDK keys

GOOD_IDS = ["my session", "team/alpha", "ünï", PROJECT + "/sub", "a%2Fb", "quote'\"\\",
            "emoji \U0001F600", "tab\u00a0nbsp", "..."]


@pytest.mark.parametrize("sid", GOOD_IDS)
def test_any_utf8_id_round_trips_on_every_route(server, sid):
    r = server.append(seg(sid), [ev("session.started"), ev("message", data={"text": "hi"})])
    assert r.status == 200, r
    assert r.json["session_id"] == sid
    evs = server.events(seg(sid))
    assert [e["session_id"] for e in evs] == [sid, sid]
    r = server.get("/v1/sessions/%s" % seg(sid))
    assert r.status == 200 and r.json["id"] == sid
    r = server.request("PUT", "/v1/sessions/%s" % seg(sid), body={"agent": "claude"})
    assert r.status == 200 and r.json["id"] == sid and r.json["agent"] == "claude"
    for suffix in ("restore", "transcript", "verify"):
        r = server.get("/v1/sessions/%s/%s" % (seg(sid), suffix))
        assert r.status == 200, (suffix, r)
    r = server.get("/v1/sessions/%s/export?compression=none" % seg(sid))
    assert r.status == 200
    lines = [json.loads(x) for x in r.body.decode().splitlines()]
    assert any(x.get("session_id") == sid or x.get("id") == sid for x in lines)
    assert [e["session_id"] for e in server.feed()] == [sid, sid]
    assert sid in [s["id"] for s in listing(server)["sessions"]]
    r = server.request("DELETE", "/v1/sessions/%s" % seg(sid))
    assert r.status == 200 and r.json["status"] == "deleted"
    server.check_log()


def test_raw_slash_splits_segments_and_pct2f_does_not(server):
    assert server.append(seg("team/alpha"), ev("t")).status == 200
    before = state(server)
    r = server.append("team/alpha", ev("t"))  # /v1/sessions/team/alpha/events: no such route
    assert r.status == 404, r
    r = server.get("/v1/sessions/team/alpha")
    assert r.status == 404, r
    assert state(server) == before
    assert server.get("/v1/sessions/team%2Falpha").json["id"] == "team/alpha"
    assert server.get("/v1/sessions/team%2falpha").json["id"] == "team/alpha"  # lower-case hex
    # decoded once: %252F is the three characters "%2F", another session
    assert server.get("/v1/sessions/team%252Falpha").status == 404
    assert server.append("team%252Falpha", ev("t")).json["session_id"] == "team%2Falpha"


CONTROL = ["%%%02X" % c for c in list(range(0x20)) + [0x7F]]


@pytest.mark.parametrize("bad,why", [(c, None) for c in CONTROL] + [
    ("%zz", "two hex digits"), ("%2", "two hex digits"), ("a%", "two hex digits"),
    ("%G0", "two hex digits"), ("%00", "%00"), ("a%00b", "%00"),
    ("%C0%AF", "not UTF-8"), ("%ED%A0%80", "not UTF-8"), ("%FF", "not UTF-8"),
    ("%C3", "not UTF-8"), ("%F4%90%80%80", "not UTF-8"), ("%E0%80%80", "not UTF-8"),
    ("%2E", "path steps"), ("%2E%2E", "path steps"),
])
def test_bad_ids_are_400_naming_the_segment_and_change_nothing(server, bad, why):
    assert server.append("keep", ev("t")).status == 200
    before = state(server)
    for method, path, body in (("POST", "/v1/sessions/x%s/events" % bad, [ev("t")]),
                               ("PUT", "/v1/sessions/x%s" % bad, {}),
                               ("GET", "/v1/sessions/x%s" % bad, None),
                               ("DELETE", "/v1/sessions/x%s" % bad, None)):
        if bad in ("%2E", "%2E%2E"):
            path = path.replace("x" + bad, bad)
        r = server.request(method, path, body=body)
        assert r.status == 400, (method, path, r)
        j = r.json
        assert j["type"] == "urn:reel:error:invalid_session_id"
        assert bad.replace("x", "") in j["detail"], j["detail"]  # names the segment as sent
        if why:
            assert why in j["detail"], j["detail"]
    assert state(server) == before
    server.check_log()


def test_1024_bytes_taken_1025_refused(server):
    ok, too_long = "é" * 512, "é" * 512 + "x"  # 1024 and 1025 bytes
    assert len(ok.encode()) == 1024
    assert server.append(seg(ok), ev("t")).status == 200
    before = state(server)
    r = server.append(seg(too_long), ev("t"))
    assert r.status == 400 and "longer than 1024 bytes" in r.json["detail"], r
    assert state(server) == before
    assert server.get("/v1/sessions/%s" % seg(ok)).json["id"] == ok


def long_ids():
    base = "p" * 470
    a = base + "a" * 10          # 480 bytes: keyed by itself
    b = base + "b" * 11          # 481: keyed by 447 bytes + 0xFF + SHA-256
    c = base + "c" * (1024 - 470)  # 1024
    d = base + "c" * (1023 - 470) + "d"  # 1024, differs from c in the last byte only
    return [a, b, c, d]


def test_long_ids_sharing_a_prefix(server):
    ids = long_ids()
    assert [len(i) for i in ids] == [480, 481, 1024, 1024]
    for n, sid in enumerate(ids):
        r = server.append(seg(sid), [ev("t") for _ in range(n + 1)])
        assert r.status == 200 and r.json["session_id"] == sid, r
    for n, sid in enumerate(ids):
        j = server.get("/v1/sessions/%s" % seg(sid)).json
        assert j["id"] == sid and j["event_count"] == n + 1
    # prefix listing pages across all four, one per page, cursors included
    got = list_all(server, prefix="p" * 400, limit=1)
    assert sorted(got) == sorted(ids) and len(got) == 4
    assert list_all(server, prefix=ids[2]) == [ids[2]]
    assert sorted(list_all(server, prefix=ids[2][:-1])) == sorted(ids[2:])
    # export: a safe Content-Disposition for a 1024-byte id
    r = server.get("/v1/sessions/%s/export" % seg(ids[3]))
    assert r.status == 200
    disp = r.header("content-disposition")
    assert disp.startswith('attachment; filename="' + ids[3] + '.jsonl.zst"; filename*=UTF-8\'\'')
    # delete one of the two 1024-byte ids: the other keeps its events
    assert server.request("DELETE", "/v1/sessions/%s" % seg(ids[2])).status == 200
    assert server.get("/v1/sessions/%s/events" % seg(ids[2])).status == 410
    assert len(server.events(seg(ids[3]))) == 4
    r = server.get("/v1/sessions/%s/verify" % seg(ids[3]))
    assert r.status == 200 and r.json["ok"] is True, r
    server.check_log()


def test_content_disposition_is_safe_for_any_id(server):
    for sid in ("ünï", 'q"uote', "a;b=c", "team/alpha", "x\\y", "sp ace"):
        assert server.append(seg(sid), ev("t")).status == 200
        r = server.get("/v1/sessions/%s/export?compression=none" % seg(sid))
        disp = r.header("content-disposition")
        m = re.fullmatch(r'attachment; filename="([A-Za-z0-9._-]+)"; '
                         r"filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+)", disp)
        assert m, disp
        assert urllib.parse.unquote(m.group(2), errors="strict") == sid + ".jsonl"


def test_prefix_listing_in_id_order_with_paging(server):
    ids = ["team/alpha", "team/beta", "team/gamma", "team2", "tea", "other", "ünï", "ünïcode"]
    for sid in ids:
        assert server.append(seg(sid), ev("t")).status == 200
    assert list_all(server, prefix="team/", limit=1) == ["team/alpha", "team/beta", "team/gamma"]
    assert list_all(server, prefix="team", limit=2) == ["team/alpha", "team/beta", "team/gamma",
                                                        "team2"]
    assert list_all(server, prefix="ünï") == ["ünï", "ünïcode"]
    assert list_all(server, prefix="zzz") == []
    # a cursor from an earlier version (a plain id) still works
    assert listing(server, prefix="team", cursor="team/beta")["sessions"][0]["id"] == "team/gamma"


def test_recent_order_with_filters_and_paging(server):
    for sid in ("a1", "a2", "a3", "b1", "b2"):
        assert server.append(sid, ev("t")).status == 200
        time.sleep(0.003)
    assert list_all(server, order="recent", limit=2) == ["b2", "b1", "a3", "a2", "a1"]
    assert server.append("a1", ev("session.ended")).status == 200
    time.sleep(0.003)
    assert server.request("PUT", "/v1/sessions/a2", body={"agent": "codex"}).status == 200
    time.sleep(0.003)
    assert server.request("DELETE", "/v1/sessions/b1").status == 200
    assert list_all(server, order="recent", limit=2) == ["b1", "a2", "a1", "b2", "a3"]
    assert list_all(server, order="recent", status="active") == ["a2", "b2", "a3"]
    assert list_all(server, order="recent", status="active", prefix="a", limit=1) == ["a2", "a3"]
    assert list_all(server, order="recent", agent="codex", status="active", prefix="a") == ["a2"]
    assert list_all(server, status="ended") == ["a1"]
    assert list_all(server, status="deleted", order="recent") == ["b1"]
    # updated_at is newest first
    rows = listing(server, order="recent")["sessions"]
    assert [r["updated_at"] for r in rows] == sorted([r["updated_at"] for r in rows], reverse=True)
    # a session changed during paging is not given twice (it moved above the cursor)
    j = listing(server, order="recent", limit=2)
    first = [s["id"] for s in j["sessions"]]
    assert first == ["b1", "a2"]
    time.sleep(0.003)
    assert server.append("a3", ev("t")).status == 200  # a3 moves to the top: skipped below
    rest = list_all(server, order="recent", cursor=j["next_cursor"])
    assert rest == ["a1", "b2"]


@pytest.mark.parametrize("query,name", [
    ("order=foo", "'order'"), ("order=", "'order'"), ("status=foo", "'status'"),
    ("status=ACTIVE", "'status'"), ("cursor=%01", "'cursor'"), ("order=recent&cursor=abc", "'cursor'"),
    ("order=recent&cursor=1.", "'cursor'"), ("order=recent&cursor=.5", "'cursor'"),
    ("order=recent&cursor=99999999999999999999.1", "'cursor'"),
    ("prefix=%01", "'prefix'"), ("prefix=%7F", "'prefix'"), ("prefix=%C0%AF", "'prefix'"),
    ("prefix=%FF", "'prefix'"), ("prefix=%zz", "'prefix'"), ("limit=0", "'limit'"),
])
def test_bad_listing_parameters_are_400_naming_them(server, query, name):
    assert server.append("s", ev("t")).status == 200
    before = state(server)
    r = server.get("/v1/sessions?" + query)
    assert r.status == 400, (query, r)
    assert name in r.json["detail"], r.json["detail"]
    assert state(server) == before


def unpack_fixture(tmp_path):
    d = tmp_path / "old"
    d.mkdir()
    with tarfile.open(FIXTURE) as t:
        t.extractall(d)
    return d


def test_format1_directory_upgrades_on_serve(server_factory, tmp_path):
    s = server_factory(start=False)
    os.makedirs(s.data, exist_ok=True)
    with tarfile.open(FIXTURE) as t:
        t.extractall(s.data)
    s.args = ["--sync", "none"]
    s.start()
    assert "upgraded" in s.log_text() and "from format 1 to 4" in s.log_text()
    assert list_all(s, order="recent", limit=2) == ["beta.2", "empty-one", "del_me", "gamma:3~x",
                                                   "s-alpha"]
    assert list_all(s) == sorted(["beta.2", "empty-one", "del_me", "gamma:3~x", "s-alpha"])
    rec = s.get("/v1/sessions/s-alpha").json
    # Format 1 kept s-alpha "ended" through its second run; the upgrade applies format 2's
    # rule: active again, ended_at its (first) end kept, runs counted, version 1.
    assert rec["event_count"] == 5 and rec["status"] == "active" and rec["agent"] == "claude"
    assert rec["runs"] == 2 and rec["version"] == 1 and rec["ended_at"] is not None
    assert s.get("/v1/sessions/beta.2").json["runs"] == 1
    assert rec["metadata"] == {"k": "v"}
    assert [e["type"] for e in s.events("s-alpha")] == [
        "session.started", "message", "session.ended", "session.started", "message"]
    assert s.events("beta.2")[1]["data"] == {"text": "x" * 3000}
    assert s.get("/v1/sessions/s-alpha/verify").json["ok"] is True
    s.stop()
    s.start()  # once only
    assert s.log_text().count("upgraded") == 1


def test_durable_stream_paths_map_to_valid_ids_and_back(server):
    """A stream path with %2F, a raw '/', non-ASCII bytes or 300 bytes maps to a valid
    session id ("ds:" + the path with bytes outside [A-Za-z0-9._-] as ~XX), reachable
    through the sessions routes, and back to its path (docs/durable-streams.md)."""
    paths = {"team%2Falpha": "team/alpha", "team/alpha2": "team/alpha2",
             "%C3%BCn%C3%AF": "ünï", "a%20b~c": "a b~c", "p" * 300: "p" * 300}
    for raw, path in paths.items():
        r = server.request("PUT", "/v1/stream/" + raw, body=b"x",
                           headers={"Content-Type": "text/plain"})
        assert r.status == 201, (raw, r)
        sid = "ds:" + "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else
                              "".join("~%02X" % b for b in c.encode()) for c in path)
        rec = server.get("/v1/sessions/%s" % seg(sid))
        assert rec.status == 200, (sid, rec)
        assert rec.json["metadata"]["durable_stream"]["path"] == path
        r = server.get("/v1/stream/" + raw)
        assert r.status == 200 and r.body == b"x"
    assert len(list_all(server, prefix="ds:")) == len(paths)


def test_metrics_carry_no_session_label(server):
    for sid in ("team/alpha", "ünï", 'q"uote'):
        assert server.append(seg(sid), ev("t")).status == 200
    text = server.get("/metrics").body.decode()
    for needle in ("team", "alpha", "ünï", "quote", "session="):
        assert needle not in text, needle


def test_problem_details_show_utf8_ids_and_hide_controls(server):
    r = server.get("/v1/sessions/%s" % seg("ünï/x"))
    assert r.status == 404 and "session 'ünï/x' does not exist" in r.json["detail"], r
    # a C1 control (U+0085) and U+2028 are valid in an id, but not shown raw in a detail
    r = server.get("/v1/sessions/%s" % seg("a\u0085b\u2028c"))
    assert r.status == 404 and "\u0085" not in r.json["detail"] and "\u2028" not in r.json["detail"]
    assert "'a??b???c'" in r.json["detail"], r
