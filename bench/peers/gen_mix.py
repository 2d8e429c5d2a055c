#!/usr/bin/env python3
"""gen_mix.py -- the realistic transcript mix of issue 19, from text nobody here wrote.

  bench/peers/gen_mix.py [--count N] [--seed S] [--sessions K] [--format ndjson|stats|corpus]

Builds universal reel events shaped as the Claude runner stores them (one JSON object a line,
`raw` holding the native stream-json line the event came from), with the text taken from
files that Debian packages installed on this machine: code from /usr/include (*.h) and the
Python standard library and dist-packages (*.py), prose from /usr/share/doc (README*,
copyright, changelogs, *.gz decompressed). The proportions are those of the issue:

  60 %  text deltas of 20-200 characters    item.delta, raw = stream_event content_block_delta
  20 %  tool calls                          item.completed kind tool_call (Read/Bash/Edit/Grep/Write),
                                            raw = assistant message with a tool_use block
  15 %  tool results of 0.3-6 KiB           item.completed kind tool_result (a slice of a file),
                                            raw = user message with a tool_result block
   5 %  lifecycle events                    session.started, item.started/completed message, usage

Deterministic for a seed and a machine (the same packages installed): the file list is sorted,
then sampled with random.Random(seed). --sessions K spreads the events round-robin over K
native sessions (ids, uuids and item ids differ per session, as in real transcripts).

Imported by gen_events.py (--realistic) so that every output format of the peer harness
(ndjson, wrk, resp, tsv, stats) can carry the mix.
"""
import argparse
import gzip
import json
import os
import random
import sys

CODE_ROOTS = ("/usr/include", "/usr/lib/python3")
PROSE_ROOTS = ("/usr/share/doc",)
CODE_EXT = (".h", ".py")
MAX_FILES = 600          # sampled per kind; bounds the start-up cost (~1 s)
MAX_READ = 96 * 1024     # bytes read per file


def _walk(roots, want):
    out = []
    for root in roots:
        for base in sorted(p for p in os.listdir("/usr/lib") if p.startswith("python3")) \
                if root == "/usr/lib/python3" else [None]:
            top = os.path.join("/usr/lib", base) if base else root
            for d, dirs, files in os.walk(top):
                dirs.sort()
                for f in sorted(files):
                    if want(f):
                        out.append(os.path.join(d, f))
    return sorted(set(out))


def _read(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                data = fh.read(MAX_READ)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_READ)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None
    if "\0" in text or len(text) < 400:
        return None
    return text


def _is_prose(f):
    low = f.lower()
    return low.startswith(("readme", "copyright", "changelog", "news", "authors", "todo")) or \
        low.endswith((".txt", ".md", ".rst"))


def corpus(seed):
    """(code texts, prose texts, code paths): a seeded sample of the machine's files."""
    r = random.Random(seed)
    code_paths = _walk(CODE_ROOTS, lambda f: f.endswith(CODE_EXT))
    prose_paths = _walk(PROSE_ROOTS, _is_prose)
    if not code_paths or not prose_paths:
        sys.exit("gen_mix.py: no Debian sources found under %s / %s" % (CODE_ROOTS, PROSE_ROOTS))
    code, prose, paths = [], [], []
    for p in r.sample(code_paths, min(MAX_FILES, len(code_paths))):
        t = _read(p)
        if t:
            code.append(t)
            paths.append(p)
    for p in r.sample(prose_paths, min(MAX_FILES, len(prose_paths))):
        t = _read(p)
        if t:
            prose.append(t)
    return code, prose, paths


def dumps(ev):
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False)


def _slice(r, texts, lo, hi):
    t = r.choice(texts)
    n = r.randint(lo, hi)
    if len(t) <= n:
        return t
    at = r.randint(0, len(t) - n)
    return t[at:at + n]


class Session:
    def __init__(self, r, k):
        self.r = r
        self.sid = "%08x-%04x-4%03x-a%03x-%012x" % (r.getrandbits(32), r.getrandbits(16), r.getrandbits(12),
                                                    r.getrandbits(12), r.getrandbits(48))
        self.item = 0
        self.msg = 0
        self.tool = 0
        self.seq = 0
        self.prefix = "itm_%012x" % r.getrandbits(48)
        self.k = k

    def uuid(self):
        self.seq += 1
        return "%08x-0000-4000-8000-%012d" % (self.k, self.seq)


def _usage(r):
    return {"input_tokens": r.randint(3, 40), "output_tokens": r.randint(1, 900),
            "cache_read_input_tokens": r.randint(0, 90000), "cache_creation_input_tokens": r.randint(0, 4000)}


def _assistant(s, content, stop):
    return {"type": "assistant", "message": {"id": "msg_%024x" % s.r.getrandbits(96), "type": "message",
            "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": content,
            "stop_reason": stop, "stop_sequence": None, "usage": _usage(s.r)},
            "parent_tool_use_id": None, "session_id": s.sid, "uuid": s.uuid()}


def _event(s, typ, data, raw, synthetic=False):
    return {"type": typ, "source": "agent", "synthetic": synthetic, "native_session_id": s.sid,
            "data": data, "raw": raw}


def text_delta(s, prose, code):
    r = s.r
    text = _slice(r, prose if r.random() < 0.8 else code, 20, 200)
    if s.item == 0 or r.random() < 0.03:
        s.item += 1
    raw = {"type": "stream_event", "event": {"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": text}},
           "parent_tool_use_id": None, "session_id": s.sid, "uuid": s.uuid()}
    return _event(s, "item.delta", {"item_id": "%s_%d" % (s.prefix, s.item), "delta": text}, raw)


def tool_call(s, code, paths):
    r = s.r
    s.item += 1
    s.tool += 1
    call = "toolu_%024x" % r.getrandbits(96)
    name = r.choice(["Read", "Read", "Bash", "Edit", "Grep", "Write"])
    path = r.choice(paths)
    if name == "Read":
        args = {"file_path": path}
    elif name == "Bash":
        args = {"command": r.choice(["grep -n %s %s", "sed -n 1,80p %s%s", "wc -l %s %s"]) %
                (_slice(r, code, 4, 16).split("\n")[0].replace("'", ""), path),
                "description": "Inspect " + os.path.basename(path)}
    elif name == "Grep":
        args = {"pattern": _slice(r, code, 6, 24).split("\n")[0], "path": os.path.dirname(path),
                "output_mode": "content"}
    elif name == "Edit":
        args = {"file_path": path, "old_string": _slice(r, code, 40, 400),
                "new_string": _slice(r, code, 40, 400)}
    else:
        args = {"file_path": path, "content": _slice(r, code, 200, 1500)}
    raw = _assistant(s, [{"type": "tool_use", "id": call, "name": name, "input": args}], "tool_use")
    s.last_call = call
    return _event(s, "item.completed", {"item_id": "%s_%d" % (s.prefix, s.item), "kind": "tool_call",
                  "call_id": call, "name": name, "status": "completed", "arguments": args}, raw)


def tool_result(s, code, prose):
    r = s.r
    s.item += 1
    call = getattr(s, "last_call", None) or "toolu_%024x" % r.getrandbits(96)
    out = _slice(r, code if r.random() < 0.7 else prose, 300, 6 * 1024)
    err = r.random() < 0.05
    raw = {"type": "user", "message": {"role": "user", "content": [
           {"tool_use_id": call, "type": "tool_result", "content": out, "is_error": err}]},
           "parent_tool_use_id": None, "session_id": s.sid, "uuid": s.uuid()}
    return _event(s, "item.completed", {"item_id": "%s_%d" % (s.prefix, s.item), "kind": "tool_result",
                  "call_id": call, "status": "completed", "output": out, "is_error": err}, raw)


def lifecycle(s, prose):
    r = s.r
    k = r.randrange(4)
    if k == 0:
        data = {"model": "claude-sonnet-4-5-20250929", "cwd": "/home/dev/project",
                "tools": ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "WebFetch", "TodoWrite"],
                "permission_mode": "default", "version": "2.0.14", "mcp_servers": [], "agent": "claude"}
        raw = {"type": "system", "subtype": "init", "cwd": data["cwd"], "tools": data["tools"],
               "mcp_servers": [], "model": data["model"], "permissionMode": "default",
               "claude_code_version": "2.0.14", "session_id": s.sid, "uuid": s.uuid()}
        return _event(s, "session.started", data, raw)
    if k == 1:
        s.item += 1
        s.msg += 1
        raw = {"type": "stream_event", "event": {"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}},
               "parent_tool_use_id": None, "session_id": s.sid, "uuid": s.uuid()}
        return _event(s, "item.started", {"item_id": "%s_%d" % (s.prefix, s.item), "kind": "message",
                      "role": "assistant", "status": "in_progress"}, raw)
    if k == 2:
        text = _slice(r, prose, 100, 1200)
        raw = _assistant(s, [{"type": "text", "text": text}], "end_turn")
        return _event(s, "item.completed", {"item_id": "%s_%d" % (s.prefix, s.item), "kind": "message",
                      "role": "assistant", "status": "completed", "text": text}, raw)
    u = _usage(r)
    cost = round(r.random() * 0.4, 6)
    data = dict(u, turn_end=True, subtype="success", cost_usd=cost, duration_ms=r.randint(900, 90000),
                num_turns=r.randint(1, 40))
    raw = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": data["duration_ms"],
           "num_turns": data["num_turns"], "result": _slice(r, prose, 40, 300), "total_cost_usd": cost,
           "usage": u, "session_id": s.sid, "uuid": s.uuid()}
    return _event(s, "usage", data, raw)


def generate(seed=1, count=1000, sessions=1):
    """Yield `count` compact JSON lines (str, no newline) of the mix."""
    code, prose, paths = corpus(seed)
    r = random.Random(seed * 7919 + 1)
    ss = [Session(random.Random(seed * 1000003 + k), k) for k in range(max(1, sessions))]
    for i in range(count):
        s = ss[i % len(ss)]
        x = r.random()
        if x < 0.60:
            ev = text_delta(s, prose, code)
        elif x < 0.80:
            ev = tool_call(s, code, paths)
        elif x < 0.95:
            ev = tool_result(s, code, prose)
        else:
            ev = lifecycle(s, prose)
        yield dumps(ev)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--format", default="ndjson", choices=["ndjson", "stats", "corpus"])
    a = ap.parse_args()
    w = sys.stdout
    try:
        if a.format == "corpus":
            code, prose, paths = corpus(a.seed)
            print("code_files %d code_chars %d prose_files %d prose_chars %d" %
                  (len(code), sum(map(len, code)), len(prose), sum(map(len, prose))))
            return
        if a.format == "stats":
            n = tot = 0
            kinds = {}
            for line in generate(a.seed, a.count, a.sessions):
                b = len(line.encode()) + 1
                n += 1
                tot += b
                ev = json.loads(line)
                k = ev["type"] + ("/" + ev["data"]["kind"] if "kind" in ev["data"] else "")
                c = kinds.setdefault(k, [0, 0])
                c[0] += 1
                c[1] += b
            print("count %d mean_bytes %.1f total_bytes %d" % (n, tot / max(1, n), tot))
            for k, (c, b) in sorted(kinds.items(), key=lambda x: -x[1][0]):
                print("  %-28s %6.2f %%  mean %7.1f bytes" % (k, 100.0 * c / n, b / c))
            return
        buf = []
        for line in generate(a.seed, a.count, a.sessions):
            buf.append(line)
            if len(buf) == 2048:
                w.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            w.write("\n".join(buf) + "\n")
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    main()
