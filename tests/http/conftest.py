"""Black-box HTTP tests for `reel serve` (docs/HTTP.md).

Each test gets its own server on a temporary data directory and a free loopback port.
The binary is $REEL_BIN (default build/reel); run the suite under AddressSanitizer with
REEL_BIN=build/address/reel: a sanitizer report in the server's stderr fails the test.
Only the standard library is used (http.client, socket).
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REEL_BIN = os.path.abspath(os.environ.get("REEL_BIN", os.path.join(ROOT, "build", "reel")))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "Resp(%d, %r)" % (self.status, self.body[:300])


class Server:
    """A `reel serve` child process."""

    def __init__(self, tmp_path, args=(), env=None, token=None):
        self.data = str(tmp_path / "data")
        self.log_path = str(tmp_path / "serve.log")
        self.args = list(args)
        self.env = dict(os.environ)
        for k in list(self.env):
            if k.startswith("REEL_") and k != "REEL_BIN":
                del self.env[k]
        self.env.update(env or {})
        self.token = token
        self.proc = None
        self.port = None

    # -- lifecycle --
    def start(self, wait=True):
        self.port = free_port()
        self.log = open(self.log_path, "ab")
        cmd = [REEL_BIN, "serve", "--data", self.data, "--listen",
               "127.0.0.1:%d" % self.port] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited %s: %s" % (self.proc.returncode, self.log_text()))
            try:
                if self.request("GET", "/v1/health", auth=False, timeout=1).status in (200, 503):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("server did not start: " + self.log_text())

    def stop(self, check=True):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    raise AssertionError("server did not stop on SIGTERM: " + self.log_text())
            if check:
                assert self.proc.returncode == 0, self.log_text()
        if self.proc:
            self.log.close()
        self.proc = None
        if check:
            self.check_log()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_log(self):
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            assert mark not in text, text

    # -- requests --
    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, auth=True, timeout=30, conn=None):
        h = {}
        if auth and self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        h.update(headers or {})
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if conn is None:
                c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def append(self, session, events, query="", **kw):
        r = self.request("POST", "/v1/sessions/%s/events%s" % (session, query), body=events, **kw)
        return r

    def events(self, session, offset=0, limit=10000):
        """Events of 'session' past 'offset', all pages."""
        out = []
        while True:
            r = self.get("/v1/sessions/%s/events?offset=%d&limit=%d" % (session, offset, limit))
            assert r.status == 200, r
            j = r.json
            out += j["events"]
            if not j["hasMore"]:
                return out
            offset = j["next_offset"]

    def feed(self):
        """Every event of the store in position order (the whole feed)."""
        out, after = [], 0
        while True:
            r = self.get("/v1/events?after=%d&limit=10000&include_raw=true" % after)
            assert r.status == 200, r
            j = r.json
            out += j["events"]
            if not j["hasMore"]:
                return out
            after = j["next_after"]


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(args=(), env=None, token=None, start=True, sub=None):
        d = tmp_path / (sub or ("s%d" % len(servers)))
        d.mkdir(exist_ok=True)
        s = Server(d, args=args, env=env, token=token)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(server_factory):
    return server_factory(args=["--sync", "none"])


class SSEClient:
    """A minimal EventSource: yields (id, data, comment) tuples."""

    def __init__(self, server, path, headers=None, timeout=10):
        self.c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        h = {"Accept": "text/event-stream"}
        if server.token:
            h["Authorization"] = "Bearer " + server.token
        h.update(headers or {})
        self.c.request("GET", path, headers=h)
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.headers = {k.lower(): v for k, v in self.r.getheaders()}

    def next(self):
        """The next message as (id, data-json) or None at end of stream; comments and
        retry lines are skipped."""
        ev_id, data = None, []
        while True:
            line = self.r.readline()
            if not line:
                return None
            line = line.rstrip(b"\r\n")
            if not line:
                if data:
                    return ev_id, json.loads(b"\n".join(data))
                continue
            if line.startswith(b":"):
                continue
            k, _, v = line.partition(b":")
            v = v[1:] if v.startswith(b" ") else v
            if k == b"id":
                ev_id = int(v)
            elif k == b"data":
                data.append(v)

    def read_raw(self, n):
        return self.r.read1(n)

    def close(self):
        try:
            self.c.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.c.close()


def ev(type_="t", **kw):
    e = {"type": type_}
    e.update(kw)
    return e
