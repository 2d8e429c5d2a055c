"""Bearer tokens and scopes on every route (docs/HTTP.md "Auth")."""
import pytest

from conftest import Resp, SSEClient, ev

FULL, READ, APPEND = "full-token-1", "read-token-2", "append-token-3"

# (method, path, body, scope needed): the scope is read, append or full.
ROUTES = [
    ("GET", "/v1/sessions", None, "read"),
    ("GET", "/v1/sessions/a", None, "read"),
    ("GET", "/v1/sessions/a/events", None, "read"),
    ("GET", "/v1/events", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/v1/sessions/a/restore", None, "read"),
    ("GET", "/v1/sessions/a/transcript", None, "read"),
    ("GET", "/v1/sessions/a/verify", None, "read"),
    ("GET", "/v1/sessions/a/export", None, "read"),
    ("GET", "/v1/stats", None, "read"),
    ("GET", "/v1/export?compression=none", None, "read"),
    ("POST", "/v1/sessions/a/events", ev(), "append"),
    ("POST", "/v1/sessions/b", {"agent": "x"}, "append"),
    ("PUT", "/v1/sessions/b", {"agent": "y"}, "append"),
    ("DELETE", "/v1/sessions/c", None, "full"),
    ("HEAD", "/v1/sessions/a/events", None, "read"),
    ("GET", "/v1/sessions/a/events/sse?offset=999", None, "read"),
    ("GET", "/v1/events/sse?after=999999", None, "read"),
    # Durable Streams (docs/durable-streams.md "auth")
    ("PUT", "/v1/stream/auth-new", None, "append"),
    ("POST", "/v1/stream/auth-s", b"more", "append"),
    ("GET", "/v1/stream/auth-s?offset=-1", None, "read"),
    ("HEAD", "/v1/stream/auth-s", None, "read"),
    ("GET", "/v1/stream/auth-s?offset=-1&live=sse", None, "read"),
    ("DELETE", "/v1/stream/auth-gone", None, "full"),
]
STREAM_TYPE = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def authed(server_factory, tmp_path):
    tf = tmp_path / "tokens"
    tf.write_text("# comment\n%s read\n\n%s append\n" % (READ, APPEND))
    s = server_factory(args=["--sync", "none", "--token", FULL, "--tokens-file", str(tf)])
    s.token = FULL
    assert s.append("a", ev()).status == 200
    assert s.append("c", ev()).status == 200
    for name in ("auth-s", "auth-gone"):
        assert s.request("PUT", "/v1/stream/" + name, body=b"x", headers=STREAM_TYPE).status == 201
    s.token = None
    return s


def call(s, method, path, body, token):
    h = {"Authorization": "Bearer " + token} if token else {}
    if path.startswith("/v1/stream/") and method in ("PUT", "POST"):
        h.update(STREAM_TYPE)
    if "sse" not in path:
        return s.request(method, path, body=body, headers=h)
    # A stream that is allowed stays open: take its status and headers only.
    c = s.conn(timeout=10)
    try:
        c.request(method, path, headers=h)
        r = c.getresponse()
        data = r.read() if r.status != 200 else b""
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        c.close()


def test_health_needs_no_token(authed):
    assert authed.get("/v1/health").status == 200


@pytest.mark.parametrize("method,path,body,need", ROUTES)
def test_without_token_401(authed, method, path, body, need):
    r = call(authed, method, path, body, None)
    assert r.status == 401
    if method != "HEAD":  # a HEAD answer has no body
        assert r.json["type"] == "urn:reel:error:unauthorized"
    assert r.header("www-authenticate").startswith("Bearer")


@pytest.mark.parametrize("method,path,body,need", ROUTES)
def test_wrong_token_401(authed, method, path, body, need):
    assert call(authed, method, path, body, "nope").status == 401
    assert call(authed, method, path, body, FULL + "x").status == 401
    assert call(authed, method, path, body, FULL[:-1]).status == 401


@pytest.mark.parametrize("method,path,body,need", ROUTES)
def test_scopes(authed, method, path, body, need):
    before = authed.get("/v1/events?limit=10000", headers={"Authorization": "Bearer " + READ}).body
    for tok, scope in ((READ, "read"), (APPEND, "append")):
        r = call(authed, method, path, body, tok)
        if scope == need:
            assert r.status < 400, (tok, r)
        else:
            assert r.status == 403, (tok, r)
            if method != "HEAD":
                assert r.json["type"] == "urn:reel:error:forbidden"
    if need == "read":
        after = authed.get("/v1/events?limit=10000", headers={"Authorization": "Bearer " + READ}).body
        assert before == after
    r = call(authed, method, path, body, FULL)
    assert r.status < 400 or (method == "DELETE" and r.status == 404), r


def test_sse_access_token_query(authed):
    c = SSEClient(authed, "/v1/sessions/a/events/sse?access_token=" + READ)
    assert c.status == 200
    assert c.next()[0] == 1
    c.close()
    c = SSEClient(authed, "/v1/events/sse?access_token=" + READ)
    assert c.status == 200
    c.close()
    c = SSEClient(authed, "/v1/events/sse?access_token=bad")
    assert c.status == 401
    c.close()
    c = SSEClient(authed, "/v1/sessions/a/events/sse")
    assert c.status == 401
    c.close()


def test_access_token_only_on_sse(authed):
    assert authed.get("/v1/sessions/a/events?access_token=" + READ).status == 401
    assert authed.request("HEAD", "/v1/events/sse?access_token=" + READ).status == 401


def test_stream_access_token_only_with_live_sse(authed):
    """Durable Streams: ?access_token= is for live=sse (EventSource) only; a plain read or a
    long-poll sends its token in the header like every other request (issue 14)."""
    h = {"Authorization": "Bearer " + FULL, "Content-Type": "application/json"}
    assert authed.request("PUT", "/v1/stream/tok", body=b"[1]", headers=h).status == 201
    for q in ("offset=-1", "offset=-1&live=long-poll"):
        r = authed.request("GET", "/v1/stream/tok?%s&access_token=%s" % (q, READ))
        assert r.status == 401, (q, r)
        r = authed.request("GET", "/v1/stream/tok?" + q, headers={"Authorization": "Bearer " + READ})
        assert r.status in (200, 204), (q, r)
    c = SSEClient(authed, "/v1/stream/tok?offset=-1&live=sse&access_token=" + READ)
    assert c.status == 200
    c.close()


def test_lowercase_bearer_scheme(authed):
    r = authed.get("/v1/sessions/a", headers={"Authorization": "bearer " + READ})
    assert r.status == 200


def test_bad_tokens_file_is_a_usage_error(server_factory, tmp_path):
    tf = tmp_path / "bad-tokens"
    tf.write_text("tok superuser\n")
    s = server_factory(args=["--tokens-file", str(tf)], start=False)
    import subprocess
    from conftest import REEL_BIN
    p = subprocess.run([REEL_BIN, "serve", "--data", s.data, "--listen", "127.0.0.1:0",
                        "--tokens-file", str(tf)], capture_output=True, timeout=10)
    assert p.returncode == 2
    assert b"bad-tokens:1" in p.stderr


def test_token_from_environment(server_factory):
    s = server_factory(args=["--sync", "none"], env={"REEL_TOKEN": "envtok"})
    assert s.get("/v1/sessions").status == 401
    assert s.get("/v1/sessions", headers={"Authorization": "Bearer envtok"}).status == 200
