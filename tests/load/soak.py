#!/usr/bin/env python3
"""soak.py -- a mixed-load soak of `reel serve` (issue #7; `make soak`).

Starts `reel serve` (default --sync full) on a temporary data directory and runs, for
--seconds (SOAK_SECONDS, default 600):
  - batch appenders (arrays and NDJSON of 1..50 events, --rate events/s together; every
    40th batch posted twice: the retry must report every event as a duplicate at the same
    sequences);
  - single-event appenders on keep-alive connections;
  - pollers that page random sessions with offsets and check the sequences are dense;
  - long-pollers (wait=3) following a session, same check;
  - SSE subscribers on two sessions and on the all-sessions feed, checking dense sequences
    (strictly growing positions on the feed) and resuming with Last-Event-ID if cut;
  - an exporter: every few seconds a session export and now and then a whole-store export,
    both zstd, decoded with the real `zstd` CLI: every event acknowledged before the export
    began is in it, sequences dense;
  - a health prober (its own process) asking GET /v1/health every 100 ms;
  - a sampler: server RSS (VmRSS, RssAnon from /proc/PID/status), open descriptors,
    threads, events acknowledged, connections, SSE clients, every --interval seconds.
At the end: every acknowledged event is present at its sequence, sequences are dense, the
subscribers caught up, errors are 0, SIGTERM gives exit status 0, `reel verify` passes and
RssAnon did not keep growing (last quarter vs second quarter of the run). It prints a table
of RSS over time, health p50/p99/max and the totals, and writes the samples (TSV) and a
summary (JSON) to --out (default build/soak/). Exit status 0 = pass.
"""
import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadlib import (REEL_BIN, ROOT, Prober, Server, SSEStream, check_acked,  # noqa: E402
                     is_asan_build, summarize_probes, verify)


class Soak:
    """What every worker shares: the acknowledged events, the error list, the stop flag."""

    def __init__(self, srv):
        self.srv = srv
        self.lock = threading.Lock()
        self.acked = {}  # session -> {event_id: sequence}
        self.n_acked = 0
        self.errors = []
        self.stop = threading.Event()
        self.counts = {}  # what each kind of worker did

    def ack(self, session, ids, first):
        with self.lock:
            m = self.acked.setdefault(session, {})
            for k, i in enumerate(ids):
                m[i] = first + k
            self.n_acked += len(ids)

    def acked_count(self, session=None):
        with self.lock:
            return len(self.acked.get(session, {})) if session else self.n_acked

    def error(self, who, what):
        with self.lock:
            self.errors.append("%s: %s" % (who, what))
        print("soak: error: %s: %s" % (who, what), file=sys.stderr, flush=True)

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


class Worker(threading.Thread):
    """A thread with a keep-alive connection that reconnects after any failure."""

    def __init__(self, soak, name):
        super().__init__(daemon=True, name=name)
        self.soak, self.srv = soak, soak.srv
        self.conn = None

    def call(self, method, path, body=None, ctype="application/json", timeout=30):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=timeout)
        try:
            self.conn.request(method, path, body=body,
                              headers={"Content-Type": ctype} if body is not None else {})
            r = self.conn.getresponse()
            data = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            return r.status, data
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            self.conn = None
            return 0, str(e).encode()

    def run(self):
        try:
            while not self.soak.stop.is_set():
                self.step()
        except Exception as e:  # a worker that dies is an error, not a silent stop
            self.soak.error(self.name, "crashed: %r" % e)


def payload(rng):
    """Event data of 20..600 bytes (a typical delta); a few are 8 KiB (a tool result)."""
    n = 8192 if rng.randrange(100) == 0 else rng.randint(20, 600)
    return {"text": "w" * n, "n": rng.randint(0, 1 << 30)}


class BatchAppender(Worker):
    """Appends batches at 'rate' events/s (0 = as fast as the server answers)."""

    def __init__(self, soak, k, rate):
        super().__init__(soak, "batch%d" % k)
        self.k, self.n, self.rng = k, 0, random.Random(k)
        self.rate, self.t0 = rate, time.time()

    def step(self):
        if self.rate:
            time.sleep(max(0.0, self.t0 + self.n / self.rate - time.time()))
        session = "soak-b%d-%d" % (self.k, self.n % 4)
        evs = []
        for _ in range(self.rng.randint(1, 50)):
            self.n += 1
            evs.append({"type": self.rng.choice(["item.delta", "tool.call", "turn.ended"]),
                        "event_id": "b%d-%d" % (self.k, self.n), "data": payload(self.rng)})
        if self.n % 2:
            body, ctype = json.dumps(evs), "application/json"
        else:
            body, ctype = "\n".join(json.dumps(e) for e in evs), "application/x-ndjson"
        path = "/v1/sessions/%s/events" % session
        st, ans = self.call("POST", path, body, ctype)
        if st != 200:
            return self.soak.error(self.name, "append %d %r" % (st, ans[:200]))
        j = json.loads(ans)
        self.soak.ack(session, [e["event_id"] for e in evs], j["first_sequence"])
        self.soak.count("batch appends")
        if self.rng.randrange(40) == 0:  # a retried request changes nothing
            st, ans2 = self.call("POST", path, body, ctype)
            j2 = json.loads(ans2) if st == 200 else {}
            if (j2.get("duplicates"), j2.get("first_sequence")) != (len(evs), j["first_sequence"]):
                self.soak.error(self.name, "retry %d %r after %r" % (st, ans2[:200], j))
            self.soak.count("retried batches")


class SingleAppender(Worker):
    def __init__(self, soak, k):
        super().__init__(soak, "single%d" % k)
        self.k, self.n, self.rng = k, 0, random.Random(100 + k)
        self.session = "soak-s%d" % k

    def step(self):
        self.n += 1
        ev = {"type": "item.delta", "event_id": "s%d-%d" % (self.k, self.n),
              "data": payload(self.rng)}
        st, ans = self.call("POST", "/v1/sessions/%s/events" % self.session, json.dumps(ev))
        if st != 200:
            return self.soak.error(self.name, "append %d %r" % (st, ans[:200]))
        self.soak.ack(self.session, [ev["event_id"]], json.loads(ans)["first_sequence"])
        self.soak.count("single appends")


def dense_from(who, soak, events, offset):
    """Checks a page or SSE batch continues exactly after 'offset'; returns the new one."""
    for e in events:
        if e["sequence"] != offset + 1:
            soak.error(who, "%s: sequence %d after %d" % (e["session_id"], e["sequence"], offset))
        offset = e["sequence"]
    return offset


class Poller(Worker):
    def __init__(self, soak, k):
        super().__init__(soak, "poll%d" % k)
        self.rng = random.Random(200 + k)
        self.offsets = {}

    def step(self):
        with self.soak.lock:
            sessions = sorted(self.soak.acked)
        if not sessions:
            return time.sleep(0.1)
        session = self.rng.choice(sessions)
        off = self.offsets.get(session, 0)
        st, ans = self.call("GET", "/v1/sessions/%s/events?offset=%d&limit=500" % (session, off))
        if st != 200:
            return self.soak.error(self.name, "poll %d %r" % (st, ans[:200]))
        self.offsets[session] = dense_from(self.name, self.soak, json.loads(ans)["events"], off)
        self.soak.count("polls")
        time.sleep(0.02)


class LongPoller(Worker):
    def __init__(self, soak, session):
        super().__init__(soak, "longpoll-" + session)
        self.session, self.off = session, 0

    def step(self):
        st, ans = self.call("GET", "/v1/sessions/%s/events?offset=%d&wait=3&limit=200"
                            % (self.session, self.off), timeout=30)
        if st == 404 and self.off == 0:  # the session's first append has not happened yet
            return time.sleep(0.2)
        if st != 200:
            return self.soak.error(self.name, "long-poll %d %r" % (st, ans[:200]))
        self.off = dense_from(self.name, self.soak, json.loads(ans)["events"], self.off)
        self.soak.count("long-polls")


class Subscriber(threading.Thread):
    """SSE on one session (dense sequences) or on the feed (growing positions), resumed
    with Last-Event-ID whenever the stream ends."""

    def __init__(self, soak, session):
        super().__init__(daemon=True, name="sse-" + (session or "feed"))
        self.soak, self.session = soak, session
        self.stop = threading.Event()  # its own: it reads on after the appenders stopped
        self.last = 0
        self.received = 0
        self.resumes = 0

    def run(self):
        while not self.stop.is_set():
            st = self.connect()
            if st is None:
                time.sleep(0.2)
                continue
            while not self.stop.is_set():
                msgs, eof = st.read()
                for ev_id, data in msgs:
                    self.check(ev_id, json.loads(data))
                if eof:
                    break
                if st.status not in (None, 200):
                    break
            st.close()
            if st.status == 404 and not self.last:  # no first append to the session yet
                time.sleep(0.2)
            elif st.status not in (None, 200):
                self.soak.error(self.name, "SSE answered %s" % st.status)
            elif not self.stop.is_set():
                self.resumes += 1
                time.sleep(0.2)

    def connect(self):
        try:
            st = SSEStream(self.soak.srv.port, self.session, timeout=1.0,
                           last_event_id=self.last or None, feed=self.session is None)
        except OSError as e:
            self.soak.error(self.name, "connect: %r" % e)
            return None
        return st

    def check(self, ev_id, e):
        key = e["sequence"] if self.session else e["position"]
        ok = key == ev_id and (key == self.last + 1 if self.session else key > self.last)
        if not ok:
            self.soak.error(self.name, "id %d (event %d) after %d" % (ev_id, key, self.last))
        self.last = ev_id
        self.received += 1


class Exporter(Worker):
    """Exports and decodes with the zstd CLI; every 'every' seconds, whole store each
    'store_every'-th time."""

    def __init__(self, soak, every, store_every, tmp):
        super().__init__(soak, "export")
        self.every, self.store_every, self.tmp = every, store_every, tmp
        self.n = 0
        self.rng = random.Random(300)
        self.largest = 0

    def step(self):
        if self.soak.stop.wait(self.every):
            return
        self.n += 1
        with self.soak.lock:
            sessions = sorted(self.soak.acked)
        if not sessions:
            return
        if self.n % self.store_every == 0:
            want, path = self.soak.acked_count(), "/v1/export?compression=zstd"
        else:
            session = self.rng.choice(sessions)
            want = self.soak.acked_count(session)
            path = "/v1/sessions/%s/export?compression=zstd" % session
        lines = self.fetch(path)
        if lines is None:
            return
        evs = [json.loads(x) for x in lines if not x.startswith(b'{"record"')]
        end = json.loads(lines[-1]) if lines else {}
        per = {}
        for e in evs:
            per.setdefault(e["session_id"], []).append(e["sequence"])
        dense = all(q == list(range(1, len(q) + 1)) for q in per.values())
        if len(evs) < want or end.get("record") != "end" or end.get("events") != len(evs) or not dense:
            self.soak.error(self.name, "%s: %d events (want >= %d), end %r, dense %s"
                            % (path, len(evs), want, end, dense))
        self.soak.count("store exports" if path.startswith("/v1/export") else "session exports")
        self.largest = max(self.largest, len(evs))

    def fetch(self, path):
        """Downloads to a file and decodes it with `zstd -dc`; the JSON lines or None."""
        out = os.path.join(self.tmp, "export.zst")
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=120)
        try:
            c.request("GET", path)
            r = c.getresponse()
            with open(out, "wb") as f:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            self.soak.error(self.name, "%s: %r" % (path, e))
            return None
        finally:
            c.close()
        if status != 200:
            self.soak.error(self.name, "%s: %d" % (path, status))
            return None
        p = subprocess.run(["zstd", "-dcq", out], capture_output=True)
        if p.returncode != 0:
            self.soak.error(self.name, "zstd -d: %s" % p.stderr.decode()[:200])
            return None
        return p.stdout.splitlines()


# ---- sampling and the report ----

FIELDS = ("t", "vmrss_kib", "rssanon_kib", "rssfile_kib", "fds", "threads", "events",
          "connections", "sse_clients", "health_n", "health_p99_ms", "health_max_ms")


class Sampler(threading.Thread):
    def __init__(self, soak, prober, interval, tsv):
        super().__init__(daemon=True, name="sampler")
        self.soak, self.prober, self.interval = soak, prober, interval
        self.rows = []
        self.tsv = open(tsv, "w")
        self.tsv.write("\t".join(FIELDS) + "\n")
        self.t0 = time.time()

    def run(self):
        last = self.t0
        while not self.soak.stop.wait(self.interval):
            last = self.sample(last)

    def sample(self, since):
        now = time.time()
        srv = self.soak.srv
        mem = srv.memory()
        try:
            m = srv.metrics()
        except OSError:
            m = {}
        probes = [p for p in self.prober.samples(since) if p[0] < now]
        h = summarize_probes(probes)
        row = (round(now - self.t0, 1), mem["VmRSS"], mem["RssAnon"], mem["RssFile"], srv.fds(),
               mem["Threads"], self.soak.acked_count(), int(m.get("reel_http_connections", -1)),
               int(m.get("reel_sse_clients", -1)), h["n"], round(h["p99"], 2), round(h["max"], 2))
        self.rows.append(dict(zip(FIELDS, row)))
        self.tsv.write("\t".join(str(x) for x in row) + "\n")
        self.tsv.flush()
        return now


def rss_table(rows, seconds, interval):
    """One row per minute (or per tenth of a shorter run, in whole sampling intervals):
    the last sample of each step."""
    step = 60 if seconds >= 300 else interval * max(1, round(seconds / 10 / interval))
    out, mark = [], step
    for r in rows:
        if r["t"] >= mark - 0.5 or r is rows[-1]:
            out.append(r)
            while mark <= r["t"]:
                mark += step
    return out


def print_report(rows, seconds, interval, probes, t0):
    """The table: memory and counts at the end of each step, health p99/max over the step."""
    print("\n  time  VmRSS MiB  RssAnon MiB  RssFile MiB  fds  threads     events  conns  "
          "sse  health p99/max ms (step)")
    prev = 0.0
    for r in rss_table(rows, seconds, interval):
        h = summarize_probes([p for p in probes if prev < p[0] - t0 <= r["t"]])
        prev = r["t"]
        print("%5ds  %9.1f  %11.1f  %11.1f  %3d  %7d  %9d  %5d  %3d  %6.1f / %.1f" % (
            r["t"], r["vmrss_kib"] / 1024, r["rssanon_kib"] / 1024, r["rssfile_kib"] / 1024,
            r["fds"], r["threads"], r["events"], r["connections"], r["sse_clients"],
            h["p99"], h["max"]))


def rss_growth(rows):
    """RssAnon (KiB): the largest sample of the last quarter minus the largest of the
    second quarter. The first quarter is warm-up (allocator arenas, buffers that grow to
    their working size); steady growth after it is what a leak looks like."""
    n = len(rows)
    if n < 8:
        return 0, 0
    q2 = max(r["rssanon_kib"] for r in rows[n // 4:n // 2])
    q4 = max(r["rssanon_kib"] for r in rows[3 * n // 4:])
    return q2, q4 - q2


# ---- the run ----

def start_workers(soak, a, tmp):
    ws = [BatchAppender(soak, k, a.rate / 2) for k in range(2)]
    ws += [SingleAppender(soak, k) for k in range(2)]
    ws += [Poller(soak, k) for k in range(2)]
    ws += [LongPoller(soak, "soak-s0"), LongPoller(soak, "soak-b1-0")]
    subs = [Subscriber(soak, "soak-s1"), Subscriber(soak, "soak-b0-1"), Subscriber(soak, None)]
    exp = Exporter(soak, a.export_every, 4 if a.seconds < 60 else 8, tmp)
    for w in ws + subs + [exp]:
        w.start()
    return ws, subs, exp


def wait_caught_up(soak, subs, timeout=60):
    """After the appenders stopped: every session subscriber reaches its session's last
    acknowledged sequence, the feed subscriber the number of acknowledged events."""
    deadline = time.time() + timeout
    for s in subs:
        want = soak.acked_count(s.session) if s.session else None
        while time.time() < deadline:
            if (s.last if s.session else s.received) >= (want or soak.acked_count()):
                break
            time.sleep(0.1)
        else:
            soak.error(s.name, "did not catch up: at %d of %s" % (
                s.last if s.session else s.received, want or soak.acked_count()))


def run(a):
    os.makedirs(a.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="reel-soak-")
    srv = Server(tmp, args=["--sync", a.sync]).start()
    print("soak: reel serve pid %d on port %d, --sync %s, %d s, data %s, load average %.2f"
          % (srv.pid, srv.port, a.sync, a.seconds, srv.data, os.getloadavg()[0]), flush=True)
    soak = Soak(srv)
    prober = Prober(srv.port, os.path.join(a.out, "health.txt"), interval=0.1)
    sampler = Sampler(soak, prober, a.interval, os.path.join(a.out, "samples.tsv"))
    sampler.start()
    workers, subs, exp = start_workers(soak, a, tmp)
    t_end = time.time() + a.seconds
    while time.time() < t_end and len(soak.errors) < 50:
        time.sleep(min(1.0, max(0.0, t_end - time.time())))
        if a.progress and int(time.time() - sampler.t0) % 60 == 0 and sampler.rows:
            r = sampler.rows[-1]
            print("soak: %4ds  events %d  RssAnon %.1f MiB" % (
                r["t"], r["events"], r["rssanon_kib"] / 1024), flush=True)
    soak.stop.set()
    for w in workers + [exp]:
        w.join(60)
    wait_caught_up(soak, subs)
    for s in subs:
        s.stop.set()
        s.join(40)
    sampler.join(10)
    probes = [p for p in prober.stop() if p[0] <= t_end]  # the catch-up is not the soak
    health = summarize_probes(probes)
    problems = check_acked(srv, soak.acked)
    rc, stop_s = srv.stop()
    ok_verify, verify_out = verify(srv.data)
    print_report(sampler.rows, a.seconds, a.interval, probes, sampler.t0)
    return report(a, soak, sampler.rows, health, problems, rc, stop_s, ok_verify, verify_out,
                  subs, exp, tmp)


def report(a, soak, rows, health, problems, rc, stop_s, ok_verify, verify_out, subs, exp, tmp):
    base, growth = rss_growth(rows)
    fds = [r["fds"] for r in rows]
    summary = {
        "seconds": a.seconds, "sync": a.sync, "events_acked": soak.acked_count(),
        "sessions": len(soak.acked), "events_per_s": round(soak.acked_count() / a.seconds, 1),
        "counts": soak.counts, "errors": len(soak.errors), "error_samples": soak.errors[:10],
        "health_ms": health, "rss_anon_q2_kib": base, "rss_anon_growth_kib": growth,
        "rss_max_kib": max((r["vmrss_kib"] for r in rows), default=0),
        "rss_anon_max_kib": max((r["rssanon_kib"] for r in rows), default=0),
        "fds_min_max": [min(fds, default=0), max(fds, default=0)],
        "sse_resumes": {s.name: s.resumes for s in subs}, "largest_export_events": exp.largest,
        "missing_or_moved": problems[:10], "stop_exit": rc, "stop_s": round(stop_s, 2),
        "verify_ok": ok_verify, "loadavg_end": os.getloadavg(), "reel_bin": REEL_BIN,
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    print("\nhealth: %d probes, %d failed, p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (
        health["n"], health["failed"], health["p50"], health["p99"], health["max"]))
    print("events acknowledged: %d in %d sessions (%.0f/s); %s" % (
        soak.acked_count(), len(soak.acked), soak.acked_count() / a.seconds,
        ", ".join("%s %d" % kv for kv in sorted(soak.counts.items()))))
    print("RssAnon growth from the 2nd to the 4th quarter: %+.1f MiB (bound %d MiB); fds %d..%d"
          % (growth / 1024, a.rss_growth_mib, *summary["fds_min_max"]))
    print("SIGTERM: exit %s in %.2f s; reel verify: %s" % (rc, stop_s, "ok" if ok_verify else
                                                          verify_out[-500:]))
    fails = []
    if soak.errors:
        fails.append("%d errors (first: %s)" % (len(soak.errors), soak.errors[0]))
    if problems:
        fails.append("acknowledged events: " + "; ".join(problems[:3]))
    if health["failed"]:
        fails.append("%d health probes failed" % health["failed"])
    if health["p99"] > a.health_p99_ms:
        fails.append("health p99 %.1f ms over %.0f ms" % (health["p99"], a.health_p99_ms))
    if rc != 0:
        fails.append("exit status %s after SIGTERM" % rc)
    if not ok_verify:
        fails.append("reel verify failed")
    if growth > a.rss_growth_mib * 1024 and not is_asan_build(REEL_BIN):  # ASan: quarantine
        fails.append("RssAnon grew %.1f MiB in the second half" % (growth / 1024))
    print("samples: %s; summary: %s" % (os.path.join(a.out, "samples.tsv"),
                                        os.path.join(a.out, "summary.json")))
    print("soak: %s" % ("PASS" if not fails else "FAIL: " + "; ".join(fails)))
    if not fails:
        subprocess.run(["rm", "-rf", tmp])
    return 0 if not fails else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", 600)),
                    help="duration (SOAK_SECONDS, default 600)")
    ap.add_argument("--sync", choices=("full", "none"), default="full")
    ap.add_argument("--interval", type=float, default=None,
                    help="seconds between samples (default 5, 1 under 60 s)")
    ap.add_argument("--export-every", type=float, default=None,
                    help="seconds between exports (default 15, 4 under 60 s)")
    ap.add_argument("--rate", type=float, default=1000,
                    help="events/s of the two batch appenders together (default 1000; 0 = "
                         "unthrottled); the single-event appenders go as fast as commits do")
    ap.add_argument("--health-p99-ms", type=float, default=1000,
                    help="fail if the health p99 over the run exceeds this (default 1000)")
    ap.add_argument("--rss-growth-mib", type=int, default=32,
                    help="fail if RssAnon grows more than this from the 2nd to the 4th quarter")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "soak"),
                    help="where samples.tsv, health.txt and summary.json go (build/soak)")
    ap.add_argument("--progress", action="store_true", help="a line per minute")
    a = ap.parse_args(argv)
    short = a.seconds < 60
    a.interval = a.interval or (1.0 if short else 5.0)
    a.export_every = a.export_every or (4.0 if short else 15.0)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
