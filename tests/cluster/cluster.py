"""Cells behind nginx for the tests (docs/CLUSTER.md): real `reel serve` processes, each on
its own data directory and loopback port, and a real nginx (Debian's) configured by
`reel cluster nginx-conf`, on free ports, stopped by pid at the end.

The shard rule is computed here a second time, in Python, from docs/CLUSTER.md "Shards"
(MurmurHash2 and split_clients' bounds), so the tests check reel and nginx against the
document as well as against each other. Only the standard library is used.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REEL_BIN = os.path.abspath(os.environ.get("REEL_BIN", os.path.join(ROOT, "build", "reel")))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the shard rule, as docs/CLUSTER.md defines it ----

def murmur2(data):
    m = 0x5BD1E995
    h = len(data) & 0xFFFFFFFF
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = data[n:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h ^= rest[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def bounds(v):
    out, last = [], 0
    for i in range(v):
        p = (i + 1) * 10000 // v - i * 10000 // v
        last = (last + p * 0xFFFFFFFF // 10000) & 0xFFFFFFFF
        out.append(last if i + 1 < v else 1 << 32)
    return out


def session_key(sid):
    """The canonical percent-encoding of a session id (a stream's session: its path's)."""
    if sid.startswith("ds:"):
        path = stream_path_of(sid)
        if path is not None:
            return urllib.parse.quote(path, safe="/~")
    return urllib.parse.quote(sid, safe="~")


def stream_path_of(sid):
    base = sid[3:].split(":", 1)
    if not base[0] or (len(base) == 2 and not base[1].isdigit()):
        return None
    out, e, i = bytearray(), base[0], 0
    while i < len(e):
        if e[i] == "~":
            try:
                out.append(int(e[i + 1:i + 3], 16))
            except ValueError:
                return None
            i += 3
        else:
            out += e[i].encode()
            i += 1
    return out.decode("utf-8", "surrogateescape")


class Map:
    def __init__(self, path):
        self.path = path
        with open(path) as f:
            doc = json.load(f)
        self.v, self.epoch = doc["shards"], doc["epoch"]
        self.cells = doc["cells"]
        self.owner = [None] * self.v
        for c in self.cells:
            for a, b in c["shards"]:
                for s in range(a, b + 1):
                    self.owner[s] = c["id"]
        self.bounds = bounds(self.v)

    def shard(self, key):
        import bisect
        return bisect.bisect_right(self.bounds, murmur2(key.encode()))

    def owner_of(self, sid):
        return self.owner[self.shard(session_key(sid))]

    def owner_of_stream(self, path):
        return self.owner[self.shard(urllib.parse.quote(path, safe="/~"))]


# ---- HTTP ----

class Client:
    """One keep-alive connection (http.client), reopened when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None


def wait_http(port, proc, what, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/health")
            if c.getresponse().status == 200:
                c.close()
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s did not answer on port %d" % (what, port))


class Cluster:
    """Cells c1..cN (and spares) and nginx in front, under 'tmp'."""

    def __init__(self, tmp, cells=3, spares=1, shards=4096, sync="full", extra=()):
        self.tmp = str(tmp)
        self.ids = ["c%d" % (i + 1) for i in range(cells)] + ["spare%d" % (i + 1) for i in range(spares)]
        self.ports = {c: free_port() for c in self.ids}
        self.map_path = os.path.join(self.tmp, "cluster.json")
        self.write_map(epoch=1, shards=shards, spares=spares)
        self.map = Map(self.map_path)
        self.sync = sync
        self.extra = list(extra)
        self.procs = {}
        self.nginx = None
        self.nginx_port = free_port()
        self.nginx_workers = 1

    def write_map(self, epoch, shards, spares, order=None):
        ids = order or self.ids
        out = subprocess.run([REEL_BIN, "cluster", "init", "--shards", str(shards), "--epoch",
                              str(epoch), "--spares", str(spares)] +
                             ["%s=127.0.0.1:%d" % (c, self.ports[c]) for c in ids],
                             check=True, capture_output=True, text=True).stdout
        tmp = self.map_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(out)
        os.replace(tmp, self.map_path)

    def start(self):
        for c in self.ids:
            self.start_cell(c)
        self.start_nginx()
        return self

    def start_cell(self, c):
        log = open(os.path.join(self.tmp, "%s.log" % c), "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        p = subprocess.Popen([REEL_BIN, "serve", "--data", os.path.join(self.tmp, c),
                              "--listen", "127.0.0.1:%d" % self.ports[c], "--sync", self.sync,
                              "--max-connections-per-ip", "0", "--cluster-map", self.map_path,
                              "--cell", c] + self.extra, stdout=log, stderr=log, env=env)
        self.procs[c] = p
        wait_http(self.ports[c], p, "cell " + c)

    def nginx_conf(self):
        gen = subprocess.run([REEL_BIN, "cluster", "nginx-conf", self.map_path, "--listen",
                              "127.0.0.1:%d" % self.nginx_port],
                             check=True, capture_output=True, text=True).stdout
        d = os.path.join(self.tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "reel.conf"), "w") as f:
            f.write(gen)
        main = (
            "daemon off;\nworker_processes %(w)d;\npid %(d)s/nginx.pid;\n"
            "error_log %(d)s/error.log warn;\nevents { worker_connections 4096; }\n"
            "http {\n    access_log off;\n    client_body_temp_path %(d)s/body;\n"
            "    proxy_temp_path %(d)s/proxy;\n    fastcgi_temp_path %(d)s/fastcgi;\n"
            "    uwsgi_temp_path %(d)s/uwsgi;\n    scgi_temp_path %(d)s/scgi;\n"
            "    include %(d)s/reel.conf;\n}\n" % {"d": d, "w": self.nginx_workers})
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(main)
        return os.path.join(d, "nginx.conf")

    def start_nginx(self):
        conf = self.nginx_conf()
        log = open(os.path.join(self.tmp, "nginx", "stderr.log"), "ab")
        self.nginx = subprocess.Popen([NGINX, "-c", conf, "-p", os.path.dirname(conf)],
                                      stdout=log, stderr=log)
        wait_http(self.nginx_port, self.nginx, "nginx")

    def reload_nginx(self):
        self.nginx_conf()
        self.nginx.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # new workers take over; old ones finish their requests

    def hup_cells(self):
        for p in self.procs.values():
            p.send_signal(signal.SIGHUP)
        time.sleep(0.3)

    def log(self, c):
        with open(os.path.join(self.tmp, "%s.log" % c), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        procs = list(self.procs.values()) + ([self.nginx] if self.nginx else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if p is not self.nginx else signal.SIGQUIT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def listing(self, c):
        """Every session id of cell 'c', read from the cell itself."""
        cl, ids, cursor = Client(self.ports[c]), [], None
        while True:
            q = "/v1/sessions?limit=1000" + ("&cursor=" + urllib.parse.quote(cursor, safe="") if cursor else "")
            st, h, body = cl.request("GET", q)
            assert st == 200, body
            doc = json.loads(body)
            ids += [s["session_id"] if "session_id" in s else s["id"] for s in doc["sessions"]]
            cursor = doc.get("next_cursor")
            if not cursor:
                cl.close()
                return ids


class Sinks:
    """One `reel sink postgres` per cell of 'cluster', each following its cell's own address
    into 'dsn' (tables in 'schema', rows carrying the cell's id), logging to
    TMP/sink-CELL.log. The one place the cluster tests and benchmarks start sinks
    (tests/cluster/test_move.py, bench/bench_cluster.py, bench/bench_ack.py). Under
    `--ack replica` a cell acknowledges nothing until its sink has reported that PostgreSQL
    replicates synchronously: wait_replicated(). `sinks[c]` is the process of cell c."""

    def __init__(self, cluster, dsn, schema, extra=(), start=True):
        self.cluster, self.dsn, self.schema, self.extra = cluster, dsn, schema, list(extra)
        self.procs = {}
        if start:
            for c in cluster.ids:
                self.start(c)

    def __getitem__(self, c):
        return self.procs[c]

    def start(self, c):
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        log = open(os.path.join(self.cluster.tmp, "sink-%s.log" % c), "ab")
        self.procs[c] = subprocess.Popen(
            [REEL_BIN, "sink", "postgres", "--server",
             "http://127.0.0.1:%d" % self.cluster.ports[c], "--dsn", self.dsn,
             "--schema", self.schema, "--cell", c] + self.extra,
            stdout=log, stderr=log, env=env)
        log.close()  # the child has its own descriptor

    def wait_replicated(self, c, timeout=30):
        cl, end = Client(self.cluster.ports[c]), time.time() + timeout
        try:
            while time.time() < end:
                st, _, body = cl.request("GET", "/v1/sinks")
                if st == 200 and any(k.get("replicated") for k in json.loads(body)["sinks"]):
                    return
                time.sleep(0.05)
        finally:
            cl.close()
        raise AssertionError("the sink of %s never reported as replicated" % c)

    def log(self, c):
        return self.log_of(self.cluster, c)

    @staticmethod
    def log_of(cluster, c):
        try:
            with open(os.path.join(cluster.tmp, "sink-%s.log" % c), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def pids(self):
        return [p.pid for p in self.procs.values()]

    def alive(self):
        """The sinks that have exited, with their status (empty: all alive)."""
        return {c: p.poll() for c, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout=20):
        """SIGTERM (after SIGCONT, for a sink a test stopped) and the exit statuses; a sink
        still running after 'timeout' seconds is killed."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        rcs = {}
        for c, p in self.procs.items():
            try:
                rcs[c] = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                rcs[c] = p.wait()
        return rcs
