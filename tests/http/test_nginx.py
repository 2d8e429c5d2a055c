"""reel behind a real nginx (Debian package, installed by scripts/deps.sh) on loopback:
with `proxy_pass http://127.0.0.1:PORT;` (no URI part) nginx passes the request target as
the client sent it, so an id holding '/' (sent as %2F) reaches reel intact; with a URI
part nginx decodes the path and re-encodes it, and %2F becomes a raw '/' (docs/HTTP.md,
"Behind a reverse proxy")."""
import http.client
import shutil
import subprocess
import time
import urllib.parse

import pytest

from conftest import ev, free_port

NGINX = shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin:/sbin"))

CONF = """
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{good};
        location / {{ proxy_pass http://127.0.0.1:{reel}; proxy_buffering off; }}
    }}
    server {{
        listen 127.0.0.1:{bad};
        location /v1/ {{ proxy_pass http://127.0.0.1:{reel}/v1/; }}
    }}
}}
"""


@pytest.fixture
def nginx(server, tmp_path):
    if not NGINX:
        pytest.skip("nginx is not installed (scripts/deps.sh installs the Debian package)")
    d = tmp_path / "nginx"
    (d / "tmp").mkdir(parents=True)
    good, bad = free_port(), free_port()
    (d / "nginx.conf").write_text(CONF.format(d=d, good=good, bad=bad, reel=server.port))
    p = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e",
                          str(d / "error.log")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", good, timeout=2)
            c.request("GET", "/v1/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.05)
    else:
        p.terminate()
        pytest.fail("nginx did not start: %s" % (d / "error.log").read_text())
    yield good, bad
    p.terminate()
    p.wait(10)


def req(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()


def test_ids_survive_nginx_without_a_uri_part(server, nginx):
    good, bad = nginx
    for sid in ("team/alpha", "ünï", "my session", "a%2Fb", "/home/me/" + "p" * 200 + "/sub"):
        path = "/v1/sessions/%s/events" % urllib.parse.quote(sid, safe="")
        st, body = req(good, "POST", path, b'{"type":"t"}')
        assert st == 200, (sid, body)
        assert b'"session_id":' in body
        st, body = req(good, "GET", path)
        assert st == 200, (sid, body)
        r = server.get("/v1/sessions/%s" % urllib.parse.quote(sid, safe=""))
        assert r.status == 200 and r.json["id"] == sid
    # with a URI part, nginx decodes %2F: reel sees /v1/sessions/team/alpha/events, a 404
    st, _ = req(bad, "GET", "/v1/sessions/team%2Falpha/events")
    assert st == 404
    st, _ = req(bad, "GET", "/v1/sessions/%C3%BCn%C3%AF/events")  # no '/': still fine
    assert st == 200
