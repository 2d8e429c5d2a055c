"""loadlib.py -- the harness shared by the load tests (tests/load/test_*.py) and the soak
(tests/load/soak.py): a `reel serve` child with its memory and descriptor counts read from
/proc, a health-latency prober in a process of its own, a raw-socket SSE parser, and the
end-of-run checker (every acknowledged event present, sequences dense, `reel verify`).

Only the standard library is used. The server binary is $REEL_BIN (default build/reel).

The prober runs in its own process because the load generators are Python threads: a
prober thread sharing their interpreter lock would measure the GIL, not the server.
Run `python3 loadlib.py probe --help` for its command line.
"""
import argparse
import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REEL_BIN = os.path.abspath(os.environ.get("REEL_BIN", os.path.join(ROOT, "build", "reel")))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
FULL = os.environ.get("REEL_LOAD_FULL", "") not in ("", "0")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raise_nofile(want):
    """Raises this process's descriptor limit to 'want' (capped by the hard limit) and
    returns the new soft limit: 10,000 clients need 10,000 sockets here too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def is_asan_build(path):
    """True when 'path' was linked with AddressSanitizer (LeakSanitizer runs at its exit)."""
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def clean_env():
    """The environment without REEL_* settings, so only the given flags configure the server."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REEL_") or k == "REEL_BIN"}


class Server:
    """A `reel serve` child process on a free loopback port. 'wrapper' runs it under a
    tool (valgrind); the pid is then the tool's, which is the same process."""

    def __init__(self, workdir, args=(), wrapper=(), env=None, ready_timeout=15):
        os.makedirs(workdir, exist_ok=True)
        self.data = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "serve.log")
        self.args = list(args)
        self.wrapper = list(wrapper)
        self.env = clean_env()
        self.env.update(env or {})
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None

    # ---- lifecycle ----
    def start(self):
        self.port = free_port()
        self.log = open(self.log_path, "ab")
        cmd = self.wrapper + [REEL_BIN, "serve", "--data", self.data, "--listen",
                              "127.0.0.1:%d" % self.port] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env)
        self.wait_ready()
        return self

    def wait_ready(self):
        deadline = time.time() + self.ready_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited %s: %s" % (self.proc.returncode,
                                                             self.log_text()[-3000:]))
            try:
                if self.request("GET", "/v1/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start: " + self.log_text()[-3000:])

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends 'sig' and waits; returns (exit status, seconds to exit). A server that
        does not exit within 'timeout' is killed and reported as None."""
        if not self.proc or self.proc.poll() is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.time()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
            rc = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.log.close()
        return rc, time.time() - t0

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sanitizer_report(self):
        text = self.log_text()
        return text if any(m in text for m in SANITIZER_MARKS) else ""

    # ---- what /proc says about the server ----
    def memory(self):
        """VmRSS, RssAnon, RssFile, VmHWM in KiB and Threads. RssFile is mostly LMDB's
        map of data.mdb (pages of the file, reclaimable); RssAnon is the heap and stacks,
        the part that would show a leak."""
        out = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
        return out

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def metrics(self):
        st, _, body = self.request("GET", "/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, val = line.rpartition(" ")
                try:
                    out[name] = float(val)
                except ValueError:
                    pass
        return out

    # ---- requests ----
    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request on a new connection: (status, headers dict, body bytes)."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def append(self, session, events, timeout=30):
        """POSTs 'events' (a list) as one batch; returns (status, answer JSON or body)."""
        st, _, body = self.request("POST", "/v1/sessions/%s/events" % session, body=events,
                                   timeout=timeout)
        try:
            return st, json.loads(body)
        except ValueError:
            return st, body

    def events(self, session, offset=0):
        """Every event of 'session' past 'offset' (all pages); [] for an unknown session."""
        out = []
        while True:
            st, _, body = self.request(
                "GET", "/v1/sessions/%s/events?offset=%d&limit=10000" % (session, offset))
            if st == 404 and not out:
                return []
            if st != 200:
                raise AssertionError("page of %s: %d %r" % (session, st, body[:200]))
            j = json.loads(body)
            out += j["events"]
            if not j["hasMore"]:
                return out
            offset = j["next_offset"]


def verify(data):
    """`reel verify --data DATA` (the server must be stopped): (ok, output)."""
    p = subprocess.run([REEL_BIN, "verify", "--data", data], capture_output=True, timeout=600,
                       env=clean_env())
    return p.returncode == 0, (p.stdout + p.stderr).decode("utf-8", "replace")


def check_acked(server, acked):
    """The end-of-run rule: 'acked' maps session -> {event_id: sequence} as acknowledged.
    Returns a list of violations: an acknowledged event missing or at another sequence, a
    gap or repeat in a session's sequences, an event_id twice."""
    problems = []
    for session, want in sorted(acked.items()):
        evs = server.events(session)
        seqs = [e["sequence"] for e in evs]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append("%s: sequences are not 1..%d" % (session, len(seqs)))
        have = {}
        for e in evs:
            if e["event_id"] in have:
                problems.append("%s: event_id %s twice" % (session, e["event_id"]))
            have[e["event_id"]] = e["sequence"]
        lost = [i for i, q in want.items() if have.get(i) != q]
        if lost:
            problems.append("%s: %d acknowledged events missing or moved (e.g. %s)"
                            % (session, len(lost), lost[:3]))
    return problems


def percentiles(values):
    """(p50, p99, max) of 'values' (nearest rank), or (0, 0, 0) for none."""
    if not values:
        return 0.0, 0.0, 0.0
    v = sorted(values)

    def rank(p):
        return v[min(len(v) - 1, max(0, int(round(p * len(v) + 0.5)) - 1))]

    return rank(0.50), rank(0.99), v[-1]


# ---- SSE over a raw socket ----

class SSEParser:
    """Incremental text/event-stream parser: feed() bytes (after the response head),
    get complete messages as (id or None, data bytes). Counts comment lines."""

    def __init__(self):
        self.buf = b""
        self.ev_id = None
        self.data = []
        self.comments = 0

    def feed(self, chunk):
        self.buf += chunk
        out = []
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                return out
            line, self.buf = self.buf[:nl].rstrip(b"\r"), self.buf[nl + 1:]
            if not line:
                if self.data:
                    out.append((self.ev_id, b"\n".join(self.data)))
                self.ev_id, self.data = None, []
            elif line.startswith(b":"):
                self.comments += 1
            else:
                k, _, v = line.partition(b":")
                v = v[1:] if v.startswith(b" ") else v
                if k == b"id":
                    self.ev_id = int(v)
                elif k == b"data":
                    self.data.append(v)


def sse_request(session, offset=None, last_event_id=None, feed=False):
    """The request bytes of an SSE subscription to 'session', or to the all-sessions feed
    (then 'offset' is a position), as docs/HTTP.md describes."""
    path = "/v1/events/sse" if feed else "/v1/sessions/%s/events/sse" % session
    if offset is not None:
        path += "?%s=%d" % ("after" if feed else "offset", offset)
    head = "GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n" % path
    if last_event_id is not None:
        head += "Last-Event-ID: %d\r\n" % last_event_id
    return (head + "\r\n").encode()


class SSEStream:
    """One SSE subscription on a raw socket (no http.client, so that thousands fit in one
    process and a reader can be made as slow as wanted). feed() takes the bytes read from
    the socket and returns the complete messages, (id, data bytes); 'status' is set once
    the response head arrived. libmicrohttpd sends the stream chunked."""

    def __init__(self, port, session, offset=None, last_event_id=None, rcvbuf=None,
                 timeout=10.0, src="127.0.0.1", feed=False):
        self.sock = socket.socket()
        if rcvbuf:  # before connect(), so that the window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.bind((src, 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(sse_request(session, offset, last_event_id, feed))
        self.status = None
        self.head = b""
        self.chunked = False
        self.dechunk = Dechunker()
        self.parser = SSEParser()
        self.last_id = last_event_id if last_event_id is not None else offset

    def feed(self, chunk):
        if self.status is None:
            self.head += chunk
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return []
            head, chunk = self.head[:end], self.head[end + 4:]
            self.status = int(head.split(b" ", 2)[1])
            self.chunked = b"transfer-encoding: chunked" in head.lower()
        body = self.dechunk.feed(chunk) if self.chunked else chunk
        msgs = self.parser.feed(body)
        if msgs and msgs[-1][0] is not None:
            self.last_id = msgs[-1][0]
        return msgs

    def read(self, n=65536):
        """Reads once: (messages, eof). A timeout is ([], False)."""
        try:
            chunk = self.sock.recv(n)
        except socket.timeout:
            return [], False
        except OSError:
            return [], True
        if not chunk:
            return [], True
        return self.feed(chunk), False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Dechunker:
    """Undoes Transfer-Encoding: chunked incrementally (libmicrohttpd sends SSE chunked)."""

    def __init__(self):
        self.buf = b""
        self.left = 0  # bytes of the current chunk still to come
        self.crlf = 0  # CRLF bytes to skip after a chunk
        self.done = False

    def feed(self, chunk):
        self.buf += chunk
        out = []
        while self.buf and not self.done:
            if self.crlf:
                n = min(self.crlf, len(self.buf))
                self.buf, self.crlf = self.buf[n:], self.crlf - n
                continue
            if self.left:
                take = self.buf[:self.left]
                out.append(take)
                self.buf, self.left = self.buf[len(take):], self.left - len(take)
                if not self.left:
                    self.crlf = 2
                continue
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                break
            size = int(self.buf[:nl].split(b";")[0], 16)
            self.buf = self.buf[nl + 2:]
            if size == 0:
                self.done = True
            self.left = size
        return b"".join(out)


def record(name, result):
    """Writes a test's measurements to <dir of REEL_BIN>/load/<name>.json (build/load/ for
    build/reel) and prints them; docs/RELIABILITY.md quotes these files."""
    out_dir = os.path.join(os.path.dirname(REEL_BIN), "load")
    os.makedirs(out_dir, exist_ok=True)
    result = dict(result, when=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  loadavg=os.getloadavg()[0], full=FULL, reel_bin=REEL_BIN)
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    print("\n%s: %s" % (name, json.dumps(result, sort_keys=True)))
    return result


# ---- the health prober (a separate process) ----

def probe_once(port, timeout=10.0):
    """One GET /v1/health on a new connection: (milliseconds, status; 0 = failed)."""
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as k:
            k.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf or not buf.rstrip().endswith(b"}"):
                c = k.recv(4096)
                if not c:
                    break
                buf += c
        status = int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        status = 0
    return (time.perf_counter() - t0) * 1000.0, status


def probe_main(argv):
    ap = argparse.ArgumentParser(prog="loadlib.py probe",
                                 description="GET /v1/health every INTERVAL seconds until "
                                             "SIGTERM; one line 'unix_time ms status' each")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(a.out, "w") as out:
        while not stop:
            t = time.time()
            ms, status = probe_once(a.port)
            out.write("%.3f %.3f %d\n" % (t, ms, status))
            out.flush()
            time.sleep(max(0.0, a.interval - (time.time() - t)))
    return 0


class Prober:
    """Starts the prober process; samples() reads what it measured so far."""

    def __init__(self, port, out, interval=0.1):
        self.out = out
        open(out, "w").close()
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "probe",
                                      "--port", str(port), "--interval", str(interval),
                                      "--out", out])

    def samples(self, since=0.0):
        """[(time, ms, status)] of the probes that started at or after 'since'."""
        out = []
        with open(self.out) as f:
            for line in f:
                p = line.split()
                if len(p) == 3 and float(p[0]) >= since:
                    out.append((float(p[0]), float(p[1]), int(p[2])))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        return self.samples()


def summarize_probes(samples):
    """{'n', 'failed', 'p50', 'p99', 'max'} of prober samples; a probe that got no 200
    (refused, timed out, 429, 5xx) counts as failed."""
    ok = [ms for _, ms, st in samples if st == 200]
    p50, p99, mx = percentiles(ok)
    return {"n": len(samples), "failed": len(samples) - len(ok), "p50": p50, "p99": p99,
            "max": mx}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        sys.exit(probe_main(sys.argv[2:]))
    print("usage: loadlib.py probe --port P [--interval S] --out FILE\n"
          "(the rest of this file is a library for tests/load/)", file=sys.stderr)
    sys.exit(2)
