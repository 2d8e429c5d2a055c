"""Durable Streams subscriptions at /v1/stream/__ds/ (docs/durable-streams.md
"Subscriptions"), beyond the conformance suite: signed webhooks checked with the JWKS key,
the state and the generation surviving a restart, webhook URL rules, pull-wake fencing,
tokens and tenants."""
import base64
import http.server
import json
import subprocess
import threading
import time

import pytest

from conftest import REEL_BIN

JSON = {"Content-Type": "application/json"}


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 'answer' to every POST."""

    def __init__(self, answer=None, delay=0):
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(n)
                time.sleep(delay)
                outer.got.append((raw, self.headers.get("Webhook-Signature")))
                body = json.dumps(answer or {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n=1, timeout=5):
        deadline = time.time() + timeout
        while len(self.got) < n and time.time() < deadline:
            time.sleep(0.02)
        assert len(self.got) >= n, "no webhook delivery"
        return self.got[n - 1]

    def close(self):
        self.httpd.shutdown()


def sub(s, id_, body, **kw):
    return s.request("PUT", "/v1/stream/__ds/subscriptions/" + id_, body=body, **kw)


def verify(raw, header, jwks):
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        pytest.skip("python3-cryptography is needed to check signatures")
    parts = dict(p.split("=", 1) for p in header.split(","))
    key = next(k for k in jwks["keys"] if k["kid"] == parts["kid"])
    pub = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(key["x"] + "=="))
    sig = base64.urlsafe_b64decode(parts["ed25519"] + "=" * (-len(parts["ed25519"]) % 4))
    pub.verify(sig, parts["t"].encode() + b"." + raw)  # raises when it does not match
    assert abs(int(parts["t"]) - time.time()) < 300


def test_signed_webhook_done_acks_and_state_survives_a_restart(server_factory):
    s = server_factory(args=["--sync", "full"])
    rcv = Receiver({"done": True})
    try:
        assert sub(s, "w1", {"type": "webhook", "pattern": "ev/*", "webhook": {"url": rcv.url},
                             "lease_ttl_ms": 1000}).status == 201
        assert s.request("PUT", "/v1/stream/ev/a", body=b'{"n":1}', headers=JSON).status == 201
        raw, sig = rcv.wait()
        jwks = s.get("/v1/stream/__ds/jwks.json").json
        verify(raw, sig, jwks)
        note = json.loads(raw)
        assert note["subscription_id"] == "w1" and note["generation"] == 1
        assert [x["path"] for x in note["streams"]] == ["ev/a"]
        deadline = time.time() + 3
        while time.time() < deadline:
            st = s.get("/v1/stream/__ds/subscriptions/w1").json["streams"]
            if st and not st[0]["has_pending"]:
                break
            time.sleep(0.05)
        assert st[0]["acked_offset"] == st[0]["tail_offset"] == note["streams"][0]["tail_offset"]
        s.stop()
        s.start()
        j = s.get("/v1/stream/__ds/subscriptions/w1").json
        assert j["generation"] == 1 and j["streams"][0]["acked_offset"] == st[0]["tail_offset"]
        assert s.get("/v1/stream/__ds/jwks.json").json == jwks  # the same key
        assert s.request("POST", "/v1/stream/ev/a", body=b'{"n":2}', headers=JSON).status == 204
        raw, sig = rcv.wait(2)
        verify(raw, sig, jwks)
        assert json.loads(raw)["generation"] == 2  # fencing numbers go on growing
    finally:
        rcv.close()


@pytest.mark.parametrize("url", ["http://10.0.0.1/h", "http://192.168.1.1/h", "http://169.254.169.254/latest",
                                 "http://[fe80::1]/h", "http://[::ffff:10.0.0.1]/h", "ftp://example.com/h",
                                 "file:///etc/passwd", "http://0.0.0.0/h", "not a url"])
def test_unsafe_webhook_urls_are_refused(server, url):
    r = sub(server, "bad", {"type": "webhook", "pattern": "x/*", "webhook": {"url": url}})
    assert r.status == 400 and r.json["error"]["code"] == "WEBHOOK_URL_REJECTED", (url, r)
    assert server.get("/v1/stream/__ds/subscriptions/bad").status == 404


def test_loopback_webhooks_while_serving_on_loopback(server):
    # (a server listening on another address refuses them: addr_allowed() in api/ds/subs.c)
    for url in ("http://127.0.0.1:9/h", "http://localhost:9/h", "http://[::1]:9/h"):
        r = sub(server, "lo", {"type": "webhook", "pattern": "x/*", "webhook": {"url": url}})
        assert r.status == 201, (url, r)
        assert server.request("DELETE", "/v1/stream/__ds/subscriptions/lo").status == 204


def test_pull_wake_claim_fencing_and_release(server):
    s = server
    assert s.request("PUT", "/v1/stream/wake/q", body=b"[]", headers=JSON).status == 201
    assert sub(s, "p", {"type": "pull-wake", "streams": ["jobs/1"], "wake_stream": "wake/q",
                        "lease_ttl_ms": 5000}).status == 201
    assert s.request("PUT", "/v1/stream/jobs/1", body=b'{"job":1}', headers=JSON).status == 201
    deadline = time.time() + 3
    while time.time() < deadline and not s.get("/v1/stream/wake/q").json:
        time.sleep(0.05)
    wakes = s.get("/v1/stream/wake/q").json
    assert wakes and wakes[0]["subscription_id"] == "p" and "token" not in wakes[0]
    c = s.request("POST", "/v1/stream/__ds/subscriptions/p/claim", body={"worker": "a"})
    assert c.status == 200
    cl = c.json
    tail = cl["streams"][0]["tail_offset"]
    busy = s.request("POST", "/v1/stream/__ds/subscriptions/p/claim", body={"worker": "b"})
    assert busy.status == 409 and busy.json["error"]["current_holder"] == "a"
    ack = {"wake_id": cl["wake_id"], "generation": cl["generation"],
           "acks": [{"stream": "jobs/1", "offset": tail}], "done": True}
    bad = s.request("POST", "/v1/stream/__ds/subscriptions/p/ack", body=ack,
                    headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    stale = dict(ack, generation=cl["generation"] - 1)
    r = s.request("POST", "/v1/stream/__ds/subscriptions/p/ack", body=stale,
                  headers={"Authorization": "Bearer " + cl["token"]})
    assert r.status == 409 and r.json["error"]["code"] == "FENCED"
    r = s.request("POST", "/v1/stream/__ds/subscriptions/p/ack", body=ack,
                  headers={"Authorization": "Bearer " + cl["token"]})
    assert r.status == 200 and r.json == {"ok": True, "next_wake": False}
    r = s.request("POST", "/v1/stream/__ds/subscriptions/p/ack", body=ack,
                  headers={"Authorization": "Bearer " + cl["token"]})
    assert r.status == 409 and r.json["error"]["code"] == "FENCED"
    st = s.get("/v1/stream/__ds/subscriptions/p").json["streams"]
    assert st == [{"path": "jobs/1", "link_type": "explicit", "acked_offset": tail,
                   "tail_offset": tail, "has_pending": False}]
    # now b may claim
    assert s.request("POST", "/v1/stream/__ds/subscriptions/p/claim", body={"worker": "b"}).status == 200


def test_tokens_and_tenants(server_factory, tmp_path):
    tokens = tmp_path / "tokens.jsonl"

    def add(name, scopes, prefixes=None):
        args = [REEL_BIN, "tokens", "add", name, "--scopes", scopes, "--file", str(tokens)]
        if prefixes:
            args += ["--prefixes", prefixes]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    root, ro, tenant = add("root", "full"), add("ro", "read"), add("acme", "full", "acme/")
    s = server_factory(args=["--sync", "none", "--tokens", str(tokens)], token=root)
    body = {"type": "pull-wake", "pattern": "acme/*", "wake_stream": "acme/w"}
    assert sub(s, "t", body, auth=False).status == 401
    h = lambda t: {"Authorization": "Bearer " + t}
    assert sub(s, "t", body, auth=False, headers=h(ro)).status == 403
    r = sub(s, "t", body, auth=False, headers=h(tenant))
    assert r.status == 404  # a tenant sees no subscriptions at all
    assert sub(s, "t", body).status == 201
    assert s.request("GET", "/v1/stream/__ds/subscriptions/t", auth=False, headers=h(tenant)).status == 404
    assert s.request("GET", "/v1/stream/__ds/subscriptions/t", auth=False, headers=h(ro)).status == 200
    assert s.get("/v1/stream/__ds/jwks.json", auth=False).status == 200  # public
    assert s.request("DELETE", "/v1/stream/__ds/subscriptions/t", auth=False, headers=h(ro)).status == 403
    assert s.request("DELETE", "/v1/stream/__ds/subscriptions/t").status == 204


def test_a_slow_receiver_does_not_hold_up_the_others(server):
    slow, fast = Receiver({"done": True}, delay=3), Receiver({"done": True})
    try:
        for name, r in (("slow", slow), ("fast", fast)):
            assert sub(server, name, {"type": "webhook", "pattern": "q/*", "webhook": {"url": r.url}}).status == 201
        t0 = time.time()
        assert server.request("PUT", "/v1/stream/q/1", body=b"{}", headers=JSON).status == 201
        fast.wait(1, timeout=2)
        assert time.time() - t0 < 2
        slow.wait(1, timeout=5)
    finally:
        slow.close()
        fast.close()


def test_one_bad_ack_changes_nothing(server):
    s = server
    assert s.request("PUT", "/v1/stream/wq", body=b"[]", headers=JSON).status == 201
    assert sub(s, "b", {"type": "pull-wake", "streams": ["j/1", "j/2"], "wake_stream": "wq"}).status == 201
    for p in ("j/1", "j/2"):
        assert s.request("PUT", "/v1/stream/" + p, body=b'{"x":1}', headers=JSON).status == 201
    cl = s.request("POST", "/v1/stream/__ds/subscriptions/b/claim", body={"worker": "a"}).json
    tails = {x["path"]: x["tail_offset"] for x in cl["streams"]}
    body = {"wake_id": cl["wake_id"], "generation": cl["generation"], "done": True,
            "acks": [{"stream": "j/1", "offset": tails["j/1"]}, {"stream": "nope", "offset": tails["j/1"]}]}
    r = s.request("POST", "/v1/stream/__ds/subscriptions/b/ack", body=body,
                  headers={"Authorization": "Bearer " + cl["token"]})
    assert r.status == 400
    st = {x["path"]: x for x in s.get("/v1/stream/__ds/subscriptions/b").json["streams"]}
    assert st["j/1"]["has_pending"] and st["j/2"]["has_pending"]  # the good ack was not applied
    past = "%016d_%016d" % (99, 0)
    body["acks"] = [{"stream": "j/2", "offset": past}]
    r = s.request("POST", "/v1/stream/__ds/subscriptions/b/ack", body=body,
                  headers={"Authorization": "Bearer " + cl["token"]})
    assert r.status == 400 and "tail" in r.json["error"]["message"]


def test_an_answered_change_survives_kill9(server_factory):
    import signal
    s = server_factory(args=["--sync", "full"])
    for i in range(20):
        assert sub(s, "k%d" % i, {"type": "pull-wake", "streams": ["a/%d" % i], "wake_stream": "w"}).status == 201
    assert s.request("DELETE", "/v1/stream/__ds/subscriptions/k0").status == 204
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s.start()
    assert s.get("/v1/stream/__ds/subscriptions/k0").status == 404
    for i in range(1, 20):
        assert s.get("/v1/stream/__ds/subscriptions/k%d" % i).status == 200
