"""Configured limits are enforced (README.md "Guarantees"): connections, timeouts, SSE clients and
per-client buffering."""
import json
import socket
import time

from conftest import SSEClient, ev


def open_idle(port, n, src="127.0.0.1"):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def get_on(sock, path="/v1/health"):
    sock.settimeout(5)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        c = sock.recv(4096)
        if not c:
            break
        data += c
    return int(data.split()[1]) if data else 0


def test_connections_per_ip(server_factory):
    s = server_factory(args=["--sync", "none", "--max-connections-per-ip", "3"])
    time.sleep(0.5)  # let the server count the readiness probe's connection as closed
    socks = open_idle(s.port, 3)
    for k in socks:
        assert get_on(k) == 200
    extra = open_idle(s.port, 1)[0]
    assert get_on(extra) == 429
    # another address is not affected
    other = open_idle(s.port, 1, src="127.0.0.2")[0]
    assert get_on(other) == 200
    for k in socks + [extra, other]:
        k.close()
    time.sleep(0.3)
    assert s.get("/v1/health").status == 200


def test_connections_total(server_factory):
    s = server_factory(args=["--sync", "none", "--max-connections", "4",
                             "--max-connections-per-ip", "0"])
    time.sleep(0.5)
    socks = open_idle(s.port, 4)
    time.sleep(1.0)  # connect() returns at the handshake: let the server accept all four
    extra = open_idle(s.port, 1)[0]
    assert get_on(extra) == 429
    for k in socks + [extra]:
        k.close()
    time.sleep(0.3)
    assert s.get("/v1/health").status == 200


def test_idle_connection_times_out(server_factory):
    s = server_factory(args=["--sync", "none", "--request-timeout", "1"])
    k = open_idle(s.port, 1)[0]
    k.sendall(b"GET /v1/health HTTP/1.1\r\nHo")  # slowloris: never finishes the headers
    k.settimeout(5)
    t0 = time.time()
    assert k.recv(100) == b""
    assert time.time() - t0 < 4
    k.close()


def test_slow_body_is_cut_off(server_factory):
    s = server_factory(args=["--sync", "none", "--request-timeout", "2"])
    k = open_idle(s.port, 1)[0]
    k.sendall(b"POST /v1/sessions/slow/events HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    k.settimeout(6)
    t0 = time.time()
    closed = False
    try:
        while time.time() - t0 < 6:
            k.sendall(b" ")  # one byte now and then keeps the inactivity timer alive
            time.sleep(0.5)
    except OSError:
        closed = True
    assert closed or time.time() - t0 < 6
    k.close()
    assert s.get("/v1/sessions/slow").status == 404


def test_sse_client_limit(server_factory):
    s = server_factory(args=["--sync", "none", "--max-sse-clients", "2"])
    s.append("a", ev())
    c1 = SSEClient(s, "/v1/sessions/a/events/sse")
    c2 = SSEClient(s, "/v1/events/sse")
    c3 = SSEClient(s, "/v1/sessions/a/events/sse")
    assert (c1.status, c2.status, c3.status) == (200, 200, 429)
    c1.close()
    c3.close()
    # the first refusal makes the server probe its idle streams; the slot is free soon
    c4 = SSEClient(s, "/v1/sessions/a/events/sse")
    if c4.status == 429:
        c4.close()
        time.sleep(0.3)
        c4 = SSEClient(s, "/v1/sessions/a/events/sse")
    assert c4.status == 200
    for c in (c2, c4):
        c.close()


def test_stalled_sse_reader_is_dropped(server_factory):
    s = server_factory(args=["--sync", "none", "--request-timeout", "2",
                             "--sse-buffer-bytes", "65536"])
    s.append("big", [ev(data={"pad": "p" * 4000}) for _ in range(2000)])  # ~8 MB of SSE
    k = socket.socket()
    k.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    k.connect(("127.0.0.1", s.port))
    k.sendall(b"GET /v1/sessions/big/events/sse HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)

    def metric(name):
        for line in s.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])

    assert metric("reel_sse_clients") == 1
    # the client reads nothing: the server must give up on it
    deadline = time.time() + 10
    while time.time() < deadline and metric("reel_sse_clients") != 0:
        time.sleep(0.2)
    assert metric("reel_sse_clients") == 0
    k.close()
    assert s.get("/v1/health").status == 200


def test_sse_heartbeat_comment(server_factory):
    s = server_factory(args=["--sync", "none"])
    s.append("hb", ev())
    c = SSEClient(s, "/v1/sessions/hb/events/sse?offset=1", timeout=20)
    t0 = time.time()
    got = b""
    while b": keepalive" not in got and time.time() - t0 < 16:
        got += c.read_raw(100)
    assert b": keepalive" in got
    assert time.time() - t0 <= 15
    c.close()


def test_event_size_limit_boundary(server_factory):
    s = server_factory(args=["--sync", "none", "--max-event-bytes", "2000"])
    ok = json.dumps({"type": "t", "data": "x" * 1900})
    r = s.request("POST", "/v1/sessions/b/events", body=ok,
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    bad = json.dumps({"type": "t", "data": "x" * 2100})
    r = s.request("POST", "/v1/sessions/b/events", body=bad,
                  headers={"Content-Type": "application/json"})
    assert r.status == 413


def test_usage_errors(server_factory, tmp_path):
    import subprocess
    from conftest import REEL_BIN
    for args in (["--max-body-bytes", "x"], ["--sync", "maybe"], ["--bogus"],
                 ["--max-depth", "0"], ["--listen", "nohostport"]):
        p = subprocess.run([REEL_BIN, "serve", "--data", str(tmp_path / "u")] + args,
                           capture_output=True, timeout=10)
        assert p.returncode == 2, (args, p.stderr)
    p = subprocess.run([REEL_BIN, "serve", "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"--max-sse-clients" in p.stdout


def test_port_in_use_fails(server, tmp_path):
    import subprocess
    from conftest import REEL_BIN
    p = subprocess.run([REEL_BIN, "serve", "--data", str(tmp_path / "other"), "--listen",
                        "127.0.0.1:%d" % server.port], capture_output=True, timeout=10)
    assert p.returncode == 1, p.stderr
    assert b"cannot listen" in p.stderr
    assert server.get("/v1/health").status == 200
