"""Damaged imports (issue 14, finding 2): a cut or damaged export never imports with exit 0
and never imports altered events; --partial imports an exact prefix.

The corpus: every cut point of a small export (plain and zstd) and 100 seeded random byte
flips of each, each imported into a fresh store. Counted, and required to be 0:
  exit0_damaged   exit status 0 on a damaged file without --partial
  imported_any    anything imported from a damaged file without --partial
  imported_wrong  the store holds events that are not an exact prefix of the export's
A flip that leaves the decompressed text identical (a zstd frame header bit the decoder
ignores) is "harmless": its file is not damaged, and importing it whole is right.
"""
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from clihelp import REEL, Reel

SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


def reel(data, *args):
    return subprocess.run([REEL, *args, "--data", data], capture_output=True, timeout=60)


def events_of(data):
    if not os.path.exists(data):  # a refused import creates no data directory
        return []
    p = reel(data, "tail", "--include-raw")
    assert p.returncode == 0, p.stderr
    return [l for l in p.stdout.decode().split("\n") if l]


def make_export(tmp_path, n_events, sessions, compression):
    src = Reel(str(tmp_path / f"src-{n_events}"))
    if not os.path.exists(src.data):
        for s in range(sessions):
            src.ingest(f"s{s}", [{"type": "t", "data": {"i": i}} for i in range(n_events)])
    path = tmp_path / f"x-{n_events}-{compression}"
    src.run("export", "--compression", compression, "-o", str(path), "--quiet")
    return src, path.read_bytes()


class Corpus:
    def __init__(self, original):
        self.original = original  # the source store's events, as `reel tail` prints them
        self.counts = {"files": 0, "harmless": 0, "exit0_damaged": 0, "imported_any": 0,
                       "imported_wrong": 0, "partial_nonempty": 0}

    def one(self, blob, intact_text):
        """Imports 'blob' into a fresh store without, then with --partial; returns counts."""
        c = dict.fromkeys(self.counts, 0)
        c["files"] = 1
        with tempfile.TemporaryDirectory(dir=SCRATCH) as d:
            f = os.path.join(d, "in")
            with open(f, "wb") as fh:
                fh.write(blob)
            harmless = intact_text is not None and decoded(f) == intact_text
            c["harmless"] = int(harmless)
            data = os.path.join(d, "data")
            p = reel(data, "import", "--sync", "none", "--quiet", f)
            if p.returncode == 0 and not harmless:
                c["exit0_damaged"] = 1
            q = None
            if p.returncode != 0:  # the same file again with --partial, into the same store
                q = reel(data, "import", "--sync", "none", "--partial", f)
                if q.returncode == 2:  # a reel without --partial (the old code)
                    q = None
            got = events_of(data)
            if got != self.original[:len(got)] or (harmless and got != self.original):
                c["imported_wrong"] = 1
            if q is None:
                c["imported_any"] = int(bool(got) and not harmless)
            else:
                # What the first import wrote shows as duplicates of the second, or as
                # events the second did not append.
                m = re.search(rb"(\d+) events appended, (\d+) duplicates", q.stderr)
                if q.returncode == 1 and b"is empty: not an export" in q.stderr and not blob:
                    pass  # an empty file is refused even with --partial (issue 20)
                elif q.returncode != 0 or not m:
                    c["imported_wrong"] = 1
                elif int(m.group(2)) or int(m.group(1)) != len(got):
                    c["imported_any"] = 1
                c["partial_nonempty"] = int(bool(got))
        return c

    def run(self, cases):
        with ThreadPoolExecutor(max_workers=4) as pool:
            for c in pool.map(lambda a: self.one(*a), cases):
                for k, v in c.items():
                    self.counts[k] += v
        return self.counts


def decoded(path):
    """The text of a zstd file as the zstd CLI decodes it, or None when it fails."""
    p = subprocess.run(["zstd", "-dcq", path], capture_output=True)
    return p.stdout if p.returncode == 0 else None


def cuts(blob):
    return [blob[:n] for n in range(len(blob))]


def flips(blob, n, seed):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        b = bytearray(blob)
        i = rnd.randrange(len(b))
        b[i] ^= rnd.randrange(1, 256)
        out.append(bytes(b))
    return out


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd")
def test_damaged_import_corpus(tmp_path):
    src, plain = make_export(tmp_path, 1, 1, "none")
    _, packed = make_export(tmp_path, 1, 1, "zstd")
    text = subprocess.run(["zstd", "-dc"], input=packed, capture_output=True, check=True).stdout
    corpus = Corpus(events_of(src.data))
    assert len(corpus.original) == 1
    cases = [(b, None) for b in cuts(plain) + flips(plain, 100, 14)]
    cases += [(b, text) for b in cuts(packed) + flips(packed, 100, 1402)]
    counts = corpus.run(cases)
    print(f"\ndamaged-import corpus: plain {len(plain)} bytes, zstd {len(packed)} bytes:",
          json.dumps(counts))
    assert counts["files"] == len(plain) + len(packed) + 200
    assert counts["exit0_damaged"] == 0, counts
    assert counts["imported_any"] == 0, counts
    assert counts["imported_wrong"] == 0, counts


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd")
def test_partial_imports_an_exact_prefix_of_a_larger_export(tmp_path):
    """300 events (three check records): seeded cuts and flips, each imported with
    --partial into a fresh store, give exact prefixes, some of them not empty."""
    src, plain = make_export(tmp_path, 150, 2, "none")
    _, packed = make_export(tmp_path, 150, 2, "zstd")
    corpus = Corpus(events_of(src.data))
    rnd = random.Random(7)
    cases = [(plain[:rnd.randrange(len(plain))], None) for _ in range(25)]
    cases += [(packed[:rnd.randrange(len(packed))], None) for _ in range(25)]
    cases += [(b, None) for b in flips(plain, 25, 8)]
    counts = corpus.run(cases)
    print("\npartial prefixes:", json.dumps(counts))
    assert counts["exit0_damaged"] == counts["imported_any"] == counts["imported_wrong"] == 0
    assert counts["partial_nonempty"] >= 10, counts


def test_the_damage_is_named_and_old_exports_still_import(tmp_path):
    src, plain = make_export(tmp_path, 150, 2, "none")
    lines = plain.split(b"\n")
    # A flip inside a string value: the JSON stays valid, the check record after it fails.
    i = next(n for n, l in enumerate(lines) if b'"i":42' in l)
    lines[i] = lines[i].replace(b'"type":"t"', b'"type":"u"')
    bad = tmp_path / "flip.jsonl"
    bad.write_bytes(b"\n".join(lines))
    copy = Reel(str(tmp_path / "c1"))
    p = copy.run("import", str(bad), check=False)
    assert p.returncode == 1 and b"nothing was imported" in p.stderr, p.stderr
    assert re.search(rb"lines \d+ to \d+ do not match the SHA-256", p.stderr), p.stderr
    assert not os.path.exists(copy.data)  # refused before the data directory was created
    # A format 1 export (what reel wrote before): no check records, an end record with
    # counts only. Complete: imported, with a warning. Cut on a line boundary: refused.
    old = [l for l in plain.split(b"\n")[:-1] if b'"record":"check"' not in l]
    old[0] = old[0].replace(b'"format":2', b'"format":1')
    end = json.loads(old[-1])
    old[-1] = json.dumps({"record": "end", "events": end["events"],
                          "sessions": end["sessions"]}).encode()
    (tmp_path / "v1.jsonl").write_bytes(b"\n".join(old) + b"\n")
    p = Reel(str(tmp_path / "c2")).run("import", str(tmp_path / "v1.jsonl"))
    assert b"format 1 export" in p.stderr and b"300 events appended" in p.stderr
    (tmp_path / "v1cut.jsonl").write_bytes(b"\n".join(old[:-1]) + b"\n")
    p = Reel(str(tmp_path / "c3")).run("import", str(tmp_path / "v1cut.jsonl"), check=False)
    assert p.returncode == 1 and b"without its end record" in p.stderr
    # Standard input is checked whole too (spooled to a temporary file first).
    p = Reel(str(tmp_path / "c4")).run("import", "-", input=plain[:len(plain) // 2],
                                       check=False)
    assert p.returncode == 1 and b"nothing was imported" in p.stderr
    p = Reel(str(tmp_path / "c4")).run("import", "-", input=plain)
    assert b"300 events appended" in p.stderr
