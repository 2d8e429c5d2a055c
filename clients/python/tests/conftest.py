"""Fixtures for the Python client tests: a real `reel serve` on a free 127.0.0.1 port with a
temporary data directory ($REEL_BIN, default build/reel), and a small HTTP proxy that can
drop a connection after forwarding a request or answer 503/429 first, counting requests.

The client is imported from this folder (clients/python), not from an installed package.
"""
import http.client
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PKG))
sys.path.insert(0, PKG)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
REEL_BIN = os.path.abspath(os.environ.get("REEL_BIN", os.path.join(ROOT, "build", "reel")))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A `reel serve` child process; restart() keeps the data directory and the port."""

    def __init__(self, tmp_path, args=()):
        self.data = str(tmp_path / "data")
        self.log_path = str(tmp_path / "serve.log")
        self.args = list(args)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        self.proc = None
        self.port = free_port()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=15):
        deadline = time.time() + timeout
        while True:  # the port of a killed server may take a moment to be free again
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [REEL_BIN, "serve", "--data", self.data, "--listen",
                     "127.0.0.1:%d" % self.port, "--sync", "none"] + self.args,
                    stdout=log, stderr=log, env=self.env)
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                    c.request("GET", "/v1/health")
                    ok = c.getresponse().status == 200
                    c.close()
                    if ok:
                        return self
                except OSError:
                    pass
                time.sleep(0.02)
            if time.time() >= deadline:
                raise RuntimeError("server did not start: " + self.log_text())
            time.sleep(0.1)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self):
        """SIGTERM; the server must exit 0 and its log hold no sanitizer report (run the
        suite with REEL_BIN=build/address/reel for AddressSanitizer)."""
        code = 0
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = "timeout"
        self.proc = None
        text = self.log_text()
        assert not [m for m in SANITIZER_MARKS if m in text], text[-4000:]
        assert code == 0, "reel serve did not exit cleanly on SIGTERM (%s): %s" % (code, text[-2000:])

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    from reel_client import ReelClient
    c = ReelClient(server.url, retries=3, backoff=0.02, timeout=15)
    yield c
    c.close()


class FlakyProxy:
    """An HTTP/1.1 proxy in front of the server. `plan` is a list of what to do with the
    next requests, one entry each: "drop" (forward it, read the server's answer, then close
    the client's connection without answering), "503" / "429" (answer that, do not
    forward), "pass"; requests past the plan pass. `requests` records (method, path, body)."""

    def __init__(self, target_port, plan=()):
        self.plan = list(plan)
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with proxy.lock:
                    proxy.connections += 1

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with proxy.lock:
                    proxy.requests.append((self.command, self.path, body))
                    action = proxy.plan.pop(0) if proxy.plan else "pass"
                if action in ("503", "429"):
                    msg = (b'{"type":"urn:reel:error:unavailable","title":"t","status":%s,'
                           b'"detail":"from the test proxy"}' % action.encode())
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Content-Length", str(len(msg)))
                    if action == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                c = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "content-length")}
                c.request(self.command, self.path, body=body or None, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                c.close()
                if action == "drop":
                    self.close_connection = True
                    return
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy(server):
    made = []

    def make(plan=()):
        p = FlakyProxy(server.port, plan)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
