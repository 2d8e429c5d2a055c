"""Raw-socket mutation fuzzing of the whole server path (docs/RELIABILITY.md
§1): mutated requests must never crash the server (run under ASan to catch memory
errors), never change the store unless they are still a valid append, and the server must
answer a well-formed request afterwards."""
import json
import random
import socket

SEEDS = [
    b"POST /v1/sessions/fz/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 44\r\n\r\n[{\"type\":\"a\",\"data\":{\"k\":[1,2.5,\"s\"]}}]  ",
    b"POST /v1/sessions/fz/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n1a\r\n{\"type\":\"a\",\"data\":\"\\u00e9\"}\r\n0\r\n\r\n",
    b"GET /v1/sessions/fz/events?offset=0&limit=5&types=a,b&include_raw=true HTTP/1.1\r\n"
    b"Host: x\r\n\r\n",
    b"GET /v1/events/sse?after=0 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1\r\n\r\n",
    b"PUT /v1/sessions/fz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 40\r\n\r\n{\"agent\":\"a\",\"metadata\":{\"x\":[{}]}}    ",
    b"GET /v1/sessions?cursor=a&limit=2&status=active HTTP/1.1\r\nHost: x\r\n\r\n",
]
TOKENS = [b"\x00", b"\xff", b"%", b"%00", b"%2F", b"..", b"\r\n", b"\r\n\r\n", b" ", b"{", b"[",
          b"\"", b"\\", b"99999999999999999999", b"-1", b",", b"&", b"=", b"?", b"/",
          b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"\xed\xa0\x80"]


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i:i] = rng.choice(TOKENS)
        elif op == 2 and b:
            del b[i:i + rng.randint(1, 8)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
    return bytes(b)


def complete(out):
    """True once 'out' holds a whole response with a Content-Length body."""
    head, sep, body = out.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return False


def send(port, data):
    """Sends 'data' and reads the answer until it is complete, the server closes, or
    0.3 s pass (a mutated request may legitimately wait for bytes that never come)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=0.3)
    out = b""
    try:
        s.sendall(data)
        while len(out) < 65536 and not complete(out):
            c = s.recv(65536)
            if not c:
                break
            out += c
    except OSError:
        pass
    finally:
        s.close()
    return out


def test_mutated_requests(server_factory):
    s = server_factory(args=["--sync", "none", "--request-timeout", "2",
                             "--max-connections-per-ip", "0"])
    assert s.append("fz", {"type": "seed"}).status == 200
    rng = random.Random(20261122)
    for n in range(400):
        data = mutate(rng, rng.choice(SEEDS))
        out = send(s.port, data)
        if out.startswith(b"HTTP/1.1 4") and b"application/problem+json" in out:
            body = out.split(b"\r\n\r\n", 1)[1]
            if body and not body.startswith(b"{") and b"\r\n" in body:  # chunked
                body = body.split(b"\r\n", 1)[1]
            json.loads(body[:body.rfind(b"}") + 1])
        if n % 100 == 0:
            assert s.get("/v1/health").status == 200
    assert s.get("/v1/health").status == 200
    evs = s.events("fz")
    assert [e["sequence"] for e in evs] == list(range(1, len(evs) + 1))
