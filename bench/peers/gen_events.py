#!/usr/bin/env python3
"""gen_events.py -- the payloads of `make bench-peers`, the same bytes for every system.

  bench/peers/gen_events.py [--count N] [--format F] [--mix REEL] [options]

Events are deterministic (seeded) and realistic: agent message deltas, tool calls carrying
code, tool results with command output, reasoning text -- varied words and code, not
padding, because padding inflates compression ratios and JSON parse speed. Each event is
one JSON object of the universal event shape reel accepts ({"type", "source", "data"});
the 1 KiB events are 1000..1048 bytes as a line without the newline. A pool of POOL
distinct events is built once and cycled, so 10 GiB streams out at disk speed.

--mix REEL replaces the 1 KiB events with the real transcript mix: every `reel mock-agent`
scenario converted by `REEL ingest --format claude` (the converter `reel run` uses) into
universal events with their native line in `raw`, store-assigned fields removed.

--realistic replaces them with the mix of issue 19 (bench/peers/gen_mix.py): text from files
Debian packages installed here, 60 % text deltas, 20 % tool calls, 15 % tool results of
0.3-6 KiB, 5 % lifecycle events, each with its Claude stream-json line in `raw`. Streamed
(every event distinct, not a cycled pool) for ndjson, resp, tsv and stats.

Formats (--format):
  ndjson    one event per line (reel NDJSON bodies; postgres/sqlite row bodies)
  resp      RESP `XADD KEY ID d EVENT` commands (redis pipelining); --ids auto|explicit
  tsv       COPY text format, `SESSION<TAB>EVENT` with COPY escaping (postgres)
  wrk       a wrk Lua script POSTing --batch events per request, cycling --bodies bodies
            over --paths paths (PATH_TEMPLATE with {n}), --join ndjson|array|single
  fanout    one event whose text holds the marker REELTS + 19 zeros, which
            build/peers/fanout overwrites with the send time in ns
  page      {"events":[...]} holding --count events (a static poll page for nginx)
  stats     count, mean and total bytes of --count events (for the table's notes)
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_mix  # noqa: E402  (bench/peers/gen_mix.py: the issue-19 realistic mix)

POOL = 4096
MIN_BYTES, MAX_BYTES = 1000, 1048
MARKER = "REELTS" + "0" * 19

WORDS = ("the a to of and in is it for that this with on as be at by from we not are "
         "function return value error file test build check config parse stream session "
         "event offset commit batch index cursor page buffer client server request reply "
         "handler thread lock queue retry timeout durable append read write sync flush "
         "schema migrate refactor rename extract inline cache invalidate expire bound "
         "because therefore however instead first then next finally also only still "
         "looks like seems should would could must need want try fix add remove update "
         "module package import export module interface struct pointer length size count "
         "line column token scanner lexer grammar rule match branch merge rebase diff").split()

CODE = [
    "def {f}({a}, {b}=None):\n    if {b} is None:\n        {b} = []\n    return [{a} + x for x in {b}]\n",
    "static int {f}(const char *{a}, size_t {b})\n{{\n    if ({b} == 0)\n        return -1;\n    return memchr({a}, '\\n', {b}) != NULL;\n}}\n",
    "for (i = 0; i < {b}; i++) {{\n    total += {a}[i].len;\n    if (total > limit) break;\n}}\n",
    "async function {f}({a}) {{\n  const res = await fetch(`/v1/${{{a}}}`);\n  if (!res.ok) throw new Error(res.statusText);\n  return res.json();\n}}\n",
    "SELECT {a}, count(*) FROM {b} WHERE created_at > now() - interval '1 day' GROUP BY {a};\n",
    "fn {f}(&mut self, {a}: &[u8]) -> Result<usize, Error> {{\n    self.{b}.extend_from_slice({a});\n    Ok({a}.len())\n}}\n",
    "git diff --stat HEAD~1 -- src/{f}.c | tail -n 3\n",
    "    assert {f}({a}) == {b}, f\"{{{a}!r}} gave {{{f}({a})!r}}\"\n",
]

OUTPUT = [
    "  PASS  tests/{f}.test.ts ({n} ms)\n",
    "src/{f}.c:{n}:{m}: warning: unused variable '{a}' [-Wunused-variable]\n",
    "{n} files changed, {m} insertions(+), {k} deletions(-)\n",
    "-rw-r--r-- 1 dev dev {n} Nov 22 14:{m:02d} {f}.py\n",
    "FAILED tests/test_{f}.py::test_{a} - AssertionError: expected {n}, got {m}\n",
    "{a}: {n} ops/s, p99 {m} us\n",
]


def ident(r):
    return r.choice(WORDS) + "_" + r.choice(WORDS)


def sentence(r, n):
    w = [r.choice(WORDS) for _ in range(n)]
    return " ".join(w).capitalize() + r.choice(".?!.")


def prose(r, limit):
    out = []
    while sum(len(s) + 1 for s in out) < limit:
        out.append(sentence(r, r.randint(5, 16)))
    return " ".join(out)


def code(r, limit):
    out = ""
    while len(out) < limit:
        out += r.choice(CODE).format(f=ident(r), a=r.choice(WORDS), b=r.choice(WORDS))
    return out


def output(r, limit):
    out = ""
    while len(out) < limit:
        out += r.choice(OUTPUT).format(f=ident(r), a=r.choice(WORDS), n=r.randint(1, 9999),
                                       m=r.randint(0, 59), k=r.randint(0, 300))
    return out


def shaped(r, i, grow):
    """One event of a kind chosen by i; grow = target size of its variable text."""
    kind = i % 4
    item = "itm_%d" % (i // 4 + 1)
    if kind == 0:
        return {"type": "item.delta", "source": "agent",
                "data": {"item_id": item, "delta": prose(r, grow)}}
    if kind == 1:
        return {"type": "item.started", "source": "agent",
                "data": {"item_id": item, "kind": "tool_call", "name": r.choice(["Edit", "Write"]),
                         "input": {"file_path": "src/%s.c" % ident(r), "content": code(r, grow)}}}
    if kind == 2:
        return {"type": "item.completed", "source": "agent",
                "data": {"item_id": item, "kind": "tool_result", "is_error": r.random() < 0.1,
                         "output": output(r, grow)}}
    return {"type": "item.delta", "source": "agent",
            "data": {"item_id": item, "kind": "reasoning", "delta": prose(r, grow)}}


def one_kib(seed, i):
    """An event whose compact JSON is MIN_BYTES..MAX_BYTES long: generous text, then cut."""
    r = random.Random(seed * 1000003 + i)
    ev = shaped(r, i, 1200)
    data = ev["data"]
    holder, key = (data["input"], "content") if "input" in data else \
        (data, "output" if "output" in data else "delta")
    target = (MIN_BYTES + MAX_BYTES) // 2
    while True:
        over = len(dumps(ev).encode()) - target
        if over <= 0:
            return dumps(ev)
        holder[key] = holder[key][:-max(1, over // 2 if over > 8 else over)].rstrip("\\")


def dumps(ev):
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False)


def mix_pool(reel):
    """Universal events from every mock-agent scenario, converted by reel itself."""
    keep = ("type", "source", "synthetic", "native_session_id", "data", "raw")
    out = []
    with tempfile.TemporaryDirectory(prefix="reel-mix.") as d:
        for s in ("demo", "markdown", "tools", "permission", "error", "long"):
            agent = subprocess.run([reel, "mock-agent", "--scenario", s, "--delay", "0",
                                    "--exit", "0"], capture_output=True, check=True).stdout
            subprocess.run([reel, "ingest", "--data", d, "--sync", "none", "--session", "m-" + s,
                            "--format", "claude", "--quiet"], input=agent, check=True)
            tail = subprocess.run([reel, "tail", "--data", d, "--session", "m-" + s,
                                   "--include-raw"], capture_output=True, check=True).stdout
            for line in tail.splitlines():
                ev = json.loads(line)
                out.append(dumps({k: ev[k] for k in keep if k in ev}))
    return out


def pool(args):
    if args.realistic:
        # the issue-19 mix (gen_mix.py); streamed by events() for ndjson/resp/tsv/stats,
        # a pool of distinct events for the formats that index it (wrk bodies, fanout)
        if args.format in ("ndjson", "resp", "tsv", "stats", "page"):
            return None
        return list(gen_mix.generate(args.seed, max(args.bodies * args.batch, args.start + 1),
                                     args.sessions))
    if args.mix:
        return mix_pool(args.mix)
    return [one_kib(args.seed, i) for i in range(POOL)]


def events(args, p):
    if p is None:  # --realistic, streamed: every event distinct
        it = gen_mix.generate(args.seed, args.start + args.count, args.sessions)
        for i, ev in enumerate(it):
            if i >= args.start:
                yield ev
        return
    for i in range(args.start, args.start + args.count):
        yield p[i % len(p)]


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_script(args, p):
    bodies = []
    for b in range(args.bodies):
        evs = [p[(b * args.batch + j) % len(p)] for j in range(args.batch)]
        if args.join == "ndjson":
            bodies.append("\n".join(evs) + "\n")
        elif args.join == "array":
            bodies.append("[" + ",".join(evs) + "]")
        else:
            bodies.append(evs[0])
    tpl = args.path.split("{n}")
    path_expr = lua_str(tpl[0]) + (" .. n .. " + lua_str(tpl[1]) if len(tpl) > 1 else "")
    return "\n".join([
        "-- generated by bench/peers/gen_events.py --format wrk",
        "local bodies = {" + ",\n".join(lua_str(b) for b in bodies) + "}",
        'local hdr = {["Content-Type"] = %s}' % lua_str(args.content_type),
        "local i, npaths = 0, %d" % args.paths,
        # wrk has no per-thread seed: mix the clock with a table address, unique per thread.
        "function init(a) math.randomseed(os.time() + tonumber(tostring({}):match('0x(%x+)'), 16) % 1e6) "
        "i = math.random(#bodies) end",
        "function request()",
        "  i = i % #bodies + 1",
        "  local n = math.random(0, npaths - 1)",
        "  return wrk.format(%s, %s, hdr, bodies[i])" % (lua_str(args.method), path_expr),
        "end", ""])


def resp_cmd(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for x in parts:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)


def copy_escape(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def emit(args, p):
    w = sys.stdout.buffer
    if args.format == "ndjson":
        buf = []
        for ev in events(args, p):
            buf.append(ev)
            if len(buf) == 4096:
                w.write(("\n".join(buf) + "\n").encode())
                buf = []
        if buf:
            w.write(("\n".join(buf) + "\n").encode())
    elif args.format == "resp":
        for k, ev in enumerate(events(args, p), args.start + 1):
            eid = "%d-1" % k if args.ids == "explicit" else "*"
            w.write(resp_cmd("XADD", args.key, eid, "d", ev.encode()))
    elif args.format == "tsv":
        for ev in events(args, p):
            w.write(("%s\t%s\n" % (args.session, copy_escape(ev))).encode())
    elif args.format == "wrk":
        w.write(wrk_script(args, p).encode())
    elif args.format == "fanout":
        ev = json.loads(p[args.start % len(p)])
        ev["data"]["ts"] = MARKER
        w.write(dumps(ev).encode())
    elif args.format == "page":
        w.write(('{"events":[' + ",".join(events(args, p)) + "]}").encode())
    elif args.format == "stats":
        sizes = [len(ev.encode()) for ev in events(args, p)]
        print("count %d mean_bytes %.1f total_bytes %d" % (len(sizes), sum(sizes) / max(1, len(sizes)),
                                                          sum(sizes)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="events (default 1000)")
    ap.add_argument("--start", type=int, default=0, help="index of the first event (default 0)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the 1 KiB events (default 1)")
    ap.add_argument("--format", default="ndjson",
                    choices=["ndjson", "resp", "tsv", "wrk", "fanout", "page", "stats"])
    ap.add_argument("--mix", metavar="REEL", help="the mock-agent transcript mix, converted by REEL")
    ap.add_argument("--realistic", action="store_true",
                    help="the issue-19 mix from Debian-shipped text (gen_mix.py; --seed applies)")
    ap.add_argument("--sessions", type=int, default=1,
                    help="--realistic: native sessions the events are spread over (default 1)")
    ap.add_argument("--key", default="s", help="resp: stream key (default s)")
    ap.add_argument("--ids", default="auto", choices=["auto", "explicit"],
                    help="resp: '*' ids, or START+1-1, START+2-1, ... (default auto)")
    ap.add_argument("--session", default="s", help="tsv: session column (default s)")
    ap.add_argument("--path", default="/v1/sessions/b{n}/events", help="wrk: path template")
    ap.add_argument("--paths", type=int, default=64, help="wrk: {n} ranges over 0..PATHS-1")
    ap.add_argument("--batch", type=int, default=100, help="wrk: events per request")
    ap.add_argument("--bodies", type=int, default=16, help="wrk: distinct bodies cycled")
    ap.add_argument("--join", default="ndjson", choices=["ndjson", "array", "single"])
    ap.add_argument("--method", default="POST")
    ap.add_argument("--content-type", default="application/x-ndjson")
    args = ap.parse_args()
    try:
        emit(args, pool(args))
    except BrokenPipeError:
        os._exit(0)  # a consumer that read what it needed (head, a time-limited load)


if __name__ == "__main__":
    main()
