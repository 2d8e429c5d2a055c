"""OPTIONS on every route of api/routes.c (read from the table itself, so a new row is tested).

A preflight on an existing route answers 204 with the route's Allow list and, when it has
an Origin (a browser's preflight), Access-Control-Allow-Methods and -Headers: what the
route takes, which grants nothing. The grant, Access-Control-Allow-Origin (and Max-Age),
comes only when --cors-origin allows the request's Origin. No token is needed. A path
that is no route stays 404, whatever the method.
"""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORDER = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
BITS = {"R": {"GET", "HEAD"}, "W": {"POST", "PUT"}, "API_M_READ": {"GET", "HEAD"},
        "API_M_GET": {"GET"}, "API_M_HEAD": {"HEAD"}, "API_M_POST": {"POST"},
        "API_M_PUT": {"PUT"}, "API_M_DELETE": {"DELETE"}}
APP = "http://app.example"


def route_table():
    """{pattern: Allow header} from api/routes.c's rows."""
    src = open(os.path.join(ROOT, "api", "routes.c")).read()
    src = src[src.index("api__routes[] = {"):]
    rows = re.findall(r'\b(?:SCOPED_)?ROUTE\("([^"]+)",\s*([A-Z_| ]+?),', src)
    rows += [(p, "R") for p in re.findall(r'SSE_ROUTE\("([^"]+)"', src)]
    rows += re.findall(r'\.pattern = "([^"]+)", \.methods = ([A-Z_| ]+?),', src)
    table = {}
    for pattern, methods in rows:
        names = table.setdefault(pattern, {"OPTIONS"})
        for bit in methods.split("|"):
            names |= BITS[bit.strip()]
    return {p: ", ".join(m for m in ORDER if m in names) for p, names in table.items()}


ROUTES = route_table()


def concrete(pattern):
    return (pattern.replace("{id}", "some%20id").replace("{name}", "app.js")
            .replace("*", "a/stream"))


def test_the_route_table_was_read():
    src = open(os.path.join(ROOT, "api", "routes.c")).read()
    table = src[src.index("api__routes[] = {"):]
    assert set(ROUTES) == set(re.findall(r'"(/[^"]*)"', table))  # every row was understood
    assert len(ROUTES) >= 18
    assert ROUTES["/v1/sessions/{id}"] == "GET, HEAD, POST, PUT, DELETE, OPTIONS"
    assert ROUTES["/v1/sessions/{id}/events"] == "GET, HEAD, POST, OPTIONS"
    assert ROUTES["/v1/stream/*"] == "GET, HEAD, POST, PUT, DELETE, OPTIONS"


def preflight(s, path, origin, **kw):
    h = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "content-type"}
    if origin:
        h["Origin"] = origin
    return s.request("OPTIONS", path, headers=h, auth=False, **kw)


@pytest.mark.parametrize("pattern", sorted(ROUTES))
def test_options_without_cors_origin(server_factory, pattern):
    s = server_factory(args=["--sync", "none", "--token", "secret"], token="secret")
    path = concrete(pattern)
    for origin in (None, APP):
        r = preflight(s, path, origin)
        assert r.status == 204, (path, r)
        assert r.header("allow") == ROUTES[pattern]
        assert r.header("access-control-allow-origin") is None
        assert r.header("access-control-max-age") is None
        if origin:  # what the route takes, so a client can tell; no grant
            assert r.header("access-control-allow-methods") == ROUTES[pattern]
            assert "Content-Type" in r.header("access-control-allow-headers")
        else:
            assert r.header("access-control-allow-methods") is None
    # Not a preflight for a path that is no route, nor a route's answer to any other method.
    assert s.request("GET", path, auth=False).status in (200, 302, 401)


@pytest.mark.parametrize("cors", [APP, "*"])
def test_options_with_cors_origin(server_factory, cors):
    s = server_factory(args=["--sync", "none", "--cors-origin", cors])
    c = s.conn()
    for pattern, allow in sorted(ROUTES.items()):
        path = concrete(pattern)
        r = preflight(s, path, APP, conn=c)
        assert r.status == 204, (path, r)
        assert r.header("allow") == allow
        assert r.header("access-control-allow-origin") == cors
        assert r.header("access-control-allow-methods") == allow
        assert r.header("access-control-max-age") == "600"
        r = preflight(s, path, "http://evil.example", conn=c)
        assert r.status == 204 and r.header("allow") == allow
        if cors == "*":
            assert r.header("access-control-allow-origin") == "*"
        else:  # another origin: no grant, and caches keep answers per Origin
            assert r.header("access-control-allow-origin") is None
            assert r.header("access-control-max-age") is None
            assert r.header("vary") == "Origin"
    # A request from the other origin gets no grant either; one without Origin (not a
    # browser's cross-origin request) gets the configured one, as before.
    r = s.get("/v1/health", headers={"Origin": "http://evil.example"})
    assert r.header("access-control-allow-origin") == (None if cors == APP else "*")
    assert s.get("/v1/health").header("access-control-allow-origin") == cors
    c.close()


def test_stream_routes_expose_their_headers_only_to_an_allowed_origin(server_factory):
    s = server_factory(args=["--sync", "none", "--cors-origin", APP])
    assert s.request("PUT", "/v1/stream/x", headers={"Content-Type": "text/plain"}).status == 201
    r = s.get("/v1/stream/x", headers={"Origin": APP})
    assert "Stream-Next-Offset" in r.header("access-control-expose-headers")
    r = s.get("/v1/stream/x", headers={"Origin": "http://evil.example"})
    assert r.status == 200 and r.header("access-control-expose-headers") is None


@pytest.mark.parametrize("cors", [None, "*"])
@pytest.mark.parametrize("path", ["/v3", "/v1", "/v1/nope", "/v1/sessions/a/nope",
                                  "/v1/sessions/a/events/sse/x", "/v1/stream", "/ui/a/b",
                                  "/v2/health", "/v1/health/"])
def test_options_on_a_path_that_is_no_route_is_404(server_factory, cors, path):
    s = server_factory(args=["--sync", "none"] + (["--cors-origin", cors] if cors else []))
    r = preflight(s, path, APP)
    assert r.status == 404, (path, r)
    assert r.json["type"] == "urn:reel:error:not_found"
    assert r.header("allow") is None and r.header("access-control-allow-methods") is None


def test_a_browser_may_send_conditions_and_read_the_version(server_factory):
    """A cross-origin client doing read-modify-write needs If-Match in the preflight's
    allowed headers and ETag among the exposed ones (docs/HTTP.md, CORS)."""
    s = server_factory(args=["--sync", "none", "--cors-origin", APP])
    r = preflight(s, "/v1/sessions/s", APP)
    allowed = [h.strip().lower() for h in r.header("access-control-allow-headers").split(",")]
    assert "if-match" in allowed and "if-none-match" in allowed
    assert s.request("PUT", "/v1/sessions/s", body={"agent": "a"}).status in (200, 201)
    r = s.get("/v1/sessions/s", headers={"Origin": APP})
    assert r.header("etag") == '"1"'
    exposed = [h.strip().lower() for h in r.header("access-control-expose-headers").split(",")]
    assert "etag" in exposed
