"""Page damage (issue 14, finding 3; docs/RELIABILITY.md "Page damage").

Each trial copies one small store, damages data.mdb once (a zeroed page, a flipped byte in a
branch page, in a leaf page's header or node headers, in a value, or the file truncated),
then runs `reel verify` and a server that reads every session (record, events, the list).
Outcomes, counted per trial:

  detected      verify exits 1 with a finding (or refuses to open: "refused")
  refused       the store is refused at open, by verify and by the server, with a message
  served_500    the server answered 500 (a problem naming the session) for some session
  served_wrong  the server answered 200 with bytes that differ from the undamaged store
  value_damage  served wrong where `reel verify --session` finds the value altered (hash
                chain, decode; a session record's first_event_at against sequence 1's time:
                records carry no checksum, docs/RELIABILITY.md "Page damage")
  crashed       verify or the server died (signal, abort): must be 0
  unnamed_500, unreported   a 500 whose problem does not name the session, or a server
                whose /v1/health and /metrics do not count it: must be 0

Before the guard of store/guard.c, LMDB's asserts (IS_LEAF(mp), ...) and faults on a
damaged page killed both. The run is seeded (REEL_DAMAGE_SEED); REEL_DAMAGE_TRIALS sets
the size (100 by default, about five seconds; docs/RELIABILITY.md has a 1000-trial run).
A second test zeroes every branch and leaf page in turn (the issue's IS_LEAF case).
"""
import base64
import http.client
import json
import os
import random
import shutil
import struct
import subprocess
import time

import faultlib

PAGE = 4096
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA = 0x01
SESSIONS = ["s%d" % i for i in range(5)]
KINDS = ["zero", "flip_branch", "flip_leaf", "flip_value", "truncate"]
VALUE_FINDINGS = ("hash chain mismatch", "cannot be decoded", "7-field array", "valid event_id",
                  "not valid msgpack", "bytes after the body", "belongs to another event",
                  "first_event_at is not the time")


def build_store(data):
    rnd = random.Random(7)
    env = faultlib.clean_env()
    for n, s in enumerate(SESSIONS):
        lines = []
        for i in range(60 + 40 * n):
            size = 2600 if i % 9 == 0 else 40 + rnd.randrange(400)
            pad = base64.b64encode(rnd.randbytes(size)).decode()  # incompressible
            lines.append(json.dumps({"event_id": "e%d" % i, "type": "t", "data": {"pad": pad}}))
        subprocess.run([faultlib.REEL_BIN, "ingest", "--session", s, "--data", data, "--quiet"],
                       input=("\n".join(lines) + "\n").encode(), env=env, check=True)


def pages(path):
    """(pgno, flags, page bytes) of every page that starts a page or an overflow run."""
    with open(path, "rb") as f:
        buf = f.read()
    out, p = [], 0
    while p < len(buf) // PAGE:
        pg = buf[p * PAGE:(p + 1) * PAGE]
        flags = struct.unpack_from("<H", pg, 10)[0]
        out.append((p, flags, pg))
        p += max(1, struct.unpack_from("<I", pg, 12)[0]) if flags & P_OVERFLOW else 1
    return out


def leaf_parts(pg):
    """Byte offsets of a leaf page: (header, ptrs and node headers and keys), (inline data)."""
    lower, upper = struct.unpack_from("<HH", pg, 12)
    meta = list(range(0, min(lower, PAGE)))
    data = []
    for i in range(max(0, (lower - 16) // 2)):
        off = struct.unpack_from("<H", pg, 16 + 2 * i)[0]
        if off < upper or off + 8 > PAGE:
            continue
        lo, hi, fl, ks = struct.unpack_from("<HHHH", pg, off)
        meta.extend(range(off, min(off + 8 + ks, PAGE)))
        if not fl & F_BIGDATA:
            data.extend(range(off + 8 + ks, min(off + 8 + ks + (lo | hi << 16), PAGE)))
    return meta, data


def used(pg):
    """Byte offsets of a branch or leaf page in use: header and pointers, then the nodes."""
    lower, upper = struct.unpack_from("<HH", pg, 12)
    return list(range(0, min(lower, PAGE))) + list(range(min(upper, PAGE), PAGE))


def damage(path, kind, rnd):
    """Damages 'path' once; returns a description."""
    size = os.path.getsize(path)
    if kind == "truncate":
        n = rnd.randrange(2 * PAGE, size)
        os.truncate(path, n)
        return "truncated to %d of %d bytes" % (n, size)
    ps = pages(path)
    if kind == "zero":
        return zero_page(path, rnd.choice(ps)[0])
    if kind == "flip_branch":
        cands = [(p, pg, used(pg)) for p, fl, pg in ps if fl & P_BRANCH]
    elif kind == "flip_leaf":
        cands = [(p, pg, leaf_parts(pg)[0]) for p, fl, pg in ps if fl & P_LEAF]
    else:
        cands = [(p, pg, leaf_parts(pg)[1]) for p, fl, pg in ps if fl & P_LEAF]
        cands += [(p, pg, range(16, PAGE)) for p, fl, pg in ps if fl & P_OVERFLOW]
    cands = [c for c in cands if len(c[2])]
    p, pg, where = rnd.choice(cands)
    off = rnd.choice(list(where))
    with open(path, "r+b") as f:
        f.seek(p * PAGE + off)
        f.write(bytes([pg[off] ^ rnd.randrange(1, 256)]))
    return "%s: page %d byte %d" % (kind, p, off)


class Server:
    def __init__(self, data, tmp):
        self.port = faultlib.free_port()
        self.log_path = os.path.join(tmp, "serve.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [faultlib.REEL_BIN, "serve", "--data", data, "--sync", "none", "--listen",
             "127.0.0.1:%d" % self.port], env=faultlib.clean_env(), stdout=self.log,
            stderr=self.log)
        faultlib._servers.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            try:
                self.get("/v1/health")
                return
            except OSError:
                time.sleep(0.02)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def reads():
    out = ["/v1/sessions?limit=1000"]
    for s in SESSIONS:
        out += ["/v1/sessions/%s" % s, "/v1/sessions/%s/events?limit=10000" % s]
    return out


def session_of(path):
    parts = path.split("?")[0].split("/")
    return parts[3] if len(parts) > 3 else None


def run(cmd, data):
    p = subprocess.run([faultlib.REEL_BIN] + cmd + ["--data", data], env=faultlib.clean_env(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def zero_page(path, p):
    with open(path, "r+b") as f:
        f.seek(p * PAGE)
        f.write(bytes(PAGE))
    return "page %d zeroed" % p


def trial(pristine, expected, tmp, harm, counts, log):
    """One trial: 'harm(path)' damages data.mdb and says how."""
    data = os.path.join(tmp, "d")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(pristine, data)
    os.unlink(os.path.join(data, "lock.mdb"))
    what = harm(os.path.join(data, "data.mdb"))
    rc, out = run(["verify"], data)
    crashed = rc < 0 or "DEADLYSIGNAL" in out
    refused = rc == 1 and "cannot open data directory" in out
    detected = rc == 1 and not refused
    srv = Server(data, tmp)
    bad_500, wrong = [], []
    if srv.proc.poll() is None:
        for path in reads():
            try:
                st, body = srv.get(path)
            except (OSError, http.client.HTTPException):
                crashed = True
                break
            if st == 500:
                bad_500.append(path)
                if path != reads()[0] and session_of(path).encode() not in body:
                    counts["unnamed_500"] += 1
                    log.append("%s: a 500 not naming the session: %s" % (what, body))
            elif (st, body) != expected[path]:
                wrong.append(path)
        if bad_500 and srv.proc.poll() is None:
            st, health = srv.get("/v1/health")
            st2, metrics = srv.get("/metrics")
            if st != 200 or json.loads(health).get("corrupt_reads", 0) < 1 or \
                    b"reel_store_corrupt_reads_total" not in metrics:
                counts["unreported"] += 1
                log.append("%s: health %d %s does not report the corrupt reads" % (
                    what, st, health))
        crashed |= srv.proc.poll() is not None
        server_refused = False
    else:
        server_refused = srv.proc.returncode == 1
        crashed |= srv.proc.returncode != 1
    text = srv.stop()
    crashed |= "Assertion" in text and srv.proc.returncode != 1 and not server_refused
    crashed |= any(m in out or m in text for m in faultlib.SANITIZER_MARKS)  # ASan builds
    value_wrong = []
    for path in wrong:
        s = session_of(path)
        vrc, vout = run(["verify", "--session", s] if s else ["verify"], data)  # the list: all
        if vrc == 1 and any(f in vout for f in VALUE_FINDINGS):
            value_wrong.append(path)
    counts["trials"] += 1
    counts["detected_by_verify"] += detected
    counts["refused_at_open"] += refused or server_refused
    counts["served_500"] += bool(bad_500)
    counts["value_damage_served"] += bool(value_wrong) and len(value_wrong) == len(wrong)
    counts["served_wrong"] += len(wrong) > len(value_wrong)
    counts["crashed"] += crashed
    counts["no_effect"] += rc == 0 and not bad_500 and not wrong and not crashed
    if crashed or len(wrong) > len(value_wrong) or (rc == 0 and (bad_500 or wrong)):
        line = "%s | verify %d: %s | 500: %s | wrong: %s | value: %s | serve: %s" % (
            what, rc, out.strip()[-200:], bad_500, wrong, value_wrong, text.strip()[-300:])
        log.append(line.replace("\n", " / "))
    return rc, bad_500, wrong


def new_counts():
    return dict.fromkeys(["trials", "detected_by_verify", "refused_at_open", "served_500",
                          "served_wrong", "value_damage_served", "crashed", "no_effect",
                          "unnamed_500", "unreported"], 0)


def pristine_store(tmp_path):
    pristine = str(tmp_path / "pristine")
    build_store(pristine)
    srv = Server(pristine, str(tmp_path))
    expected = {p: srv.get(p) for p in reads()}
    srv.stop()
    assert all(st == 200 for st, _ in expected.values())
    return pristine, expected


def check(title, counts, log):
    print("\n%s: %s" % (title, json.dumps(counts)))
    for line in log[:20]:
        print("  ! " + line)
    assert counts["crashed"] == 0, log
    assert counts["served_wrong"] == 0, log
    assert counts["unnamed_500"] == 0 and counts["unreported"] == 0, log


def test_every_branch_and_leaf_page_zeroed_in_turn(tmp_path):
    """The issue's case, swept: each branch or leaf page zeroed in turn (LMDB asserted
    IS_LEAF(mp) in mdb_cursor_next() when a walk crossed one)."""
    pristine, expected = pristine_store(tmp_path)
    counts, log = new_counts(), []
    for p, fl, _ in pages(os.path.join(pristine, "data.mdb")):
        if fl & (P_BRANCH | P_LEAF) and not fl & P_OVERFLOW:
            trial(pristine, expected, str(tmp_path), lambda path: zero_page(path, p), counts,
                  log)
    check("every branch and leaf page zeroed", counts, log)


def test_page_damage_never_crashes_and_never_serves_wrong_data(tmp_path):
    trials = int(os.environ.get("REEL_DAMAGE_TRIALS", "100"))
    seed = int(os.environ.get("REEL_DAMAGE_SEED", "14"))
    pristine, expected = pristine_store(tmp_path)
    rnd = random.Random(seed)
    counts, per_kind, log = new_counts(), {}, []
    for i in range(trials):
        kind = KINDS[i % len(KINDS)]
        before = dict(counts)
        trial(pristine, expected, str(tmp_path), lambda path: damage(path, kind, rnd), counts,
              log)
        k = per_kind.setdefault(kind, new_counts())
        for c in counts:
            k[c] += counts[c] - before[c]
    for kind, k in per_kind.items():
        print("\n  %-12s %s" % (kind, json.dumps(k)), end="")
    check("page damage, seed %d" % seed, counts, log)
