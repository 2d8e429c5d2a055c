"""faultlib.py -- workload drivers, the power-loss step and the checker of the fault tests.

The checker is the rule of docs/RELIABILITY.md §3.2, restricted to what these
single-writer workloads can observe:

  1. the store opens again and `reel verify --data DIR` passes;
  2. no gap: each session's sequences are exactly 1..N;
  3. no lost ack: every acknowledged event (ingest exit 0, HTTP 2xx) is present;
  4. no duplicate event_id within a session;
  5. a failed append (ingest exit 1, HTTP 5xx) is absent: nothing secretly durable;
  6. a failed append said so: ingest exit status 1 with a message on stderr naming the
     cause, HTTP 5xx with an RFC 7807 problem body (507 store_full for ENOSPC).

check() returns the list of violations (empty = pass), so that negative controls can
assert that the checker flags a broken run.
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REEL_BIN = os.path.abspath(os.environ.get("REEL_BIN", os.path.join(ROOT, "build", "reel")))
FAULTFS_SO = os.path.abspath(os.environ.get("FAULTFS_SO",
                                            os.path.join(ROOT, "build", "fault", "faultfs.so")))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def ensure_shim():
    """Builds the shim if it is missing (normally `make fault-shim` did)."""
    src = os.path.join(ROOT, "tests", "fault", "faultfs.c")
    if not os.path.exists(FAULTFS_SO) or os.path.getmtime(FAULTFS_SO) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(FAULTFS_SO), exist_ok=True)
        subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-fPIC", "-shared", "-o",
                        FAULTFS_SO, src, "-ldl", "-lpthread"], check=True)


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REEL_") and not k.startswith("FAULTFS_") and k != "LD_PRELOAD"}
    return env


class Run:
    """One workload run: its data directory, fault configuration and history."""

    def __init__(self, tmp, faults=None, sync="full"):
        self.tmp = str(tmp)
        self.data = os.path.join(self.tmp, "data")
        self.shadow = os.path.join(self.tmp, "data.mdb.durable")
        self.log = os.path.join(self.tmp, "faults.log")
        self.counter = os.path.join(self.tmp, "faults.count")
        self.sync = sync
        self.history = []  # dicts: session, event_id, outcome ok|fail|info, detail
        self.messages = []  # (what, text) of failed appends
        self.sanitizer = []  # stderr texts holding a sanitizer report
        self.env = clean_env()
        # ASAN_OPTIONS: lets an ASan build of reel (REEL_BIN=build/address/reel) run with
        # the shim loaded before the ASan runtime.
        self.env["ASAN_OPTIONS"] = "verify_asan_link_order=0" + (
            ":" + self.env["ASAN_OPTIONS"] if self.env.get("ASAN_OPTIONS") else "")
        self.env.update({"LD_PRELOAD": FAULTFS_SO, "FAULTFS_SHADOW": self.shadow,
                         "FAULTFS_LOG": self.log, "FAULTFS_COUNTER": self.counter})
        self.env.update({k: str(v) for k, v in (faults or {}).items()})

    # ---- the fault log ----
    def faults_fired(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [line.split() for line in f if line.strip()]

    # ---- ingest workload: one `reel ingest` process per batch ----
    def ingest_batch(self, session, batch, size):
        lines = [json.dumps({"event_id": "b%d-e%d" % (batch, i), "type": "fault.test",
                             "data": {"batch": batch, "i": i, "pad": "x" * (50 + 37 * i)}})
                 for i in range(size)]
        path = os.path.join(self.tmp, "batch-%d.jsonl" % batch)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = subprocess.run([REEL_BIN, "ingest", "--session", session, "--data", self.data,
                            "--sync", self.sync, path], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode(errors="replace")
        if any(m in err for m in SANITIZER_MARKS):
            self.messages.append(("ingest batch %d: sanitizer report" % batch, ""))
            self.sanitizer.append(err)
        if p.returncode == 0:
            outcome = "ok"
        elif p.returncode == 1:
            outcome = "fail"
            self.messages.append(("ingest batch %d" % batch, err.strip()))
        else:  # a crash (signal) or bad usage: indeterminate, and a finding
            outcome = "info"
            self.messages.append(("ingest batch %d exit %d" % (batch, p.returncode), err))
        for i in range(size):
            self.history.append({"session": session, "event_id": "b%d-e%d" % (batch, i),
                                 "outcome": outcome, "batch": batch})
        return outcome, p.returncode, err

    def ingest_workload(self, sessions=("s1", "s2"), batches=12, size=5, stop_after_fault=False):
        """Batches alternate between sessions. With 'stop_after_fault', stops right after
        the batch during which the first fault fired (the moment to lose power)."""
        for b in range(batches):
            self.ingest_batch(sessions[b % len(sessions)], b, size)
            if stop_after_fault and self.faults_fired():
                return b
        return batches

    # ---- power loss ----
    def power_loss(self):
        """Replaces the data file by what the shim recorded as durable; drops the lock
        file (LMDB resets it on first open anyway)."""
        assert os.path.exists(self.shadow), "the shim kept no durable copy"
        shutil.copyfile(self.shadow, os.path.join(self.data, "data.mdb"))
        lock = os.path.join(self.data, "lock.mdb")
        if os.path.exists(lock):
            os.unlink(lock)

    # ---- reading back (without the shim) ----
    def read_store(self):
        env = clean_env()
        v = subprocess.run([REEL_BIN, "verify", "--data", self.data], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        t = subprocess.run([REEL_BIN, "tail", "--data", self.data], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        events = []
        for line in t.stdout.decode(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"unparsable": line})
        return v, t, events

    def check(self):
        """The checker: returns a list of violations (empty when every rule holds)."""
        bad = []
        v, t, events = self.read_store()
        acked = any(h["outcome"] == "ok" for h in self.history)
        vout = v.stdout.decode(errors="replace")
        if v.returncode != 0 and not acked and "cannot open data directory" in vout:
            # The store's creation itself failed (e.g. the first fdatasync), or its file was
            # never synced before the power loss: nothing was ever acknowledged and a
            # read-only open rightly finds no store; the next read-write open creates it
            # (test_ingest_fault_then_restart_and_continue checks that).
            return bad
        if v.returncode != 0:
            bad.append("verify failed (exit %d): %s" % (v.returncode,
                                                        v.stdout.decode(errors="replace")[-400:]))
        if t.returncode != 0:
            bad.append("tail failed (exit %d): %s" % (t.returncode,
                                                      t.stderr.decode(errors="replace")[-300:]))
        seqs, ids = {}, {}
        for e in events:
            if "unparsable" in e:
                bad.append("unparsable event line: %r" % e["unparsable"][:100])
                continue
            s = e["session_id"]
            seqs.setdefault(s, []).append(e["sequence"])
            ids.setdefault(s, []).append(e["event_id"])
        for s, q in seqs.items():
            if sorted(q) != list(range(1, len(q) + 1)):
                bad.append("session %s: sequences not dense 1..%d: %s" % (s, len(q), q[:20]))
        for s, i in ids.items():
            if len(set(i)) != len(i):
                bad.append("session %s: duplicate event_id" % s)
        present = {(s, x) for s, l in ids.items() for x in l}
        lost = [h for h in self.history if h["outcome"] == "ok"
                and (h["session"], h["event_id"]) not in present]
        if lost:
            bad.append("%d acknowledged events lost, first %s/%s (batch %d)" % (
                len(lost), lost[0]["session"], lost[0]["event_id"], lost[0]["batch"]))
        ghosts = [h for h in self.history if h["outcome"] == "fail"
                  and (h["session"], h["event_id"]) in present]
        if ghosts:
            bad.append("%d events of failed appends are present (secretly durable), first %s"
                       % (len(ghosts), ghosts[0]["event_id"]))
        for text in self.sanitizer:
            bad.append("sanitizer report: %s" % text[:300])
        for what, msg in self.messages:
            if not msg and "sanitizer" not in what:
                bad.append("%s failed without a message" % what)
        return bad

    def summary(self):
        acked = sum(1 for h in self.history if h["outcome"] == "ok")
        failed = sum(1 for h in self.history if h["outcome"] == "fail")
        return "%d acked, %d failed, faults fired: %d" % (acked, failed, len(self.faults_fired()))


# ---- HTTP workload against `reel serve` ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_servers = []  # every server started, killed at exit: a failed test must not leave one behind


@atexit.register
def _kill_servers():
    for p in _servers:
        if p.poll() is None:
            p.kill()


class Serve:
    def __init__(self, run, preload=True):
        self.run = run
        self.port = free_port()
        env = run.env if preload else clean_env()
        self.log_path = os.path.join(run.tmp, "serve.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [REEL_BIN, "serve", "--data", run.data, "--sync", run.sync, "--listen",
             "127.0.0.1:%d" % self.port], env=env, stdout=self.log, stderr=self.log)
        _servers.append(self.proc)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.request("GET", "/v1/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        # did not start: leave proc as is; callers look at alive()

    def alive(self):
        return self.proc.poll() is None

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_batch(self, session, batch, size, pad=None):
        """'pad': bytes of random (incompressible) padding per event instead of the default
        short run of "x", to fill a disk quickly."""
        lines = [json.dumps({"event_id": "b%d-e%d" % (batch, i), "type": "fault.test",
                             "data": {"batch": batch, "i": i,
                                      "pad": os.urandom(pad // 2).hex() if pad
                                      else "x" * (50 + 37 * i)}})
                 for i in range(size)]
        try:
            status, body = self.request("POST", "/v1/sessions/%s/events" % session,
                                        body="\n".join(lines) + "\n",
                                        headers={"Content-Type": "application/x-ndjson"})
        except (OSError, http.client.HTTPException) as e:
            status, body = None, str(e).encode()
        if status is not None and 200 <= status < 300:
            outcome = "ok"
        elif status is not None and status >= 500:
            outcome = "fail"
            self.run.messages.append(("POST batch %d: %d" % (batch, status),
                                      body.decode(errors="replace")))
        else:
            outcome = "info"
        for i in range(size):
            self.run.history.append({"session": session, "event_id": "b%d-e%d" % (batch, i),
                                     "outcome": outcome, "batch": batch, "status": status})
        return status, body

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()
        text = self.log_text()
        if any(m in text for m in SANITIZER_MARKS):
            self.run.sanitizer.append(text)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")
