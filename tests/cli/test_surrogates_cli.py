"""Lone surrogates and deep values through the command line: `reel ingest` (default depth
512), `reel tail`, `reel stats` (its table shows a lone surrogate as U+FFFD), `reel
transcript`, `reel export` / `reel import` (docs/FORMAT.md "Strings: WTF-8")."""
import json


def nest(levels):
    return "[" * levels + "1" + "]" * levels


def test_cli_paths_keep_lone_surrogates(reel, tmp_path):
    ev = {"type": "x\ud83d", "source": "agent",
          "data": {"k\udc00": ["\ud83d", "\ude00\ud83d", "\U0001F600", "\u0000"]}}
    reel.run("ingest", "--session", "s", "--quiet", input=(json.dumps(ev) + "\n").encode())
    line = reel.run("tail", "--session", "s").stdout
    assert b'"type":"x\\ud83d"' in line
    assert b'"data":{"k\\udc00":["\\ud83d","\\ude00\\ud83d","\xf0\x9f\x98\x80","\\u0000"]}' in line
    ev = json.loads(line)
    assert ev["data"] == {"k\udc00": ["\ud83d", "\ude00\ud83d", "\U0001F600", "\u0000"]}
    st = reel.run("stats").stdout.decode("utf-8")  # strict UTF-8
    assert "x\ufffd" in st
    assert json.loads(reel.run("stats", "--json").stdout)["by_type"]["x\ud83d"] == 1
    t = json.loads(reel.run("transcript", "--session", "s").stdout)
    assert t["other"][0]["data"] == ev["data"]
    reel.run("transcript", "--session", "s", "--format", "markdown").stdout.decode("utf-8")
    out = str(tmp_path / "s.zst")
    reel.run("export", "--session", "s", "-o", out)
    d2 = str(tmp_path / "d2")
    reel.run("import", "--data", d2, "--quiet", out)
    assert reel.run("tail", "--data", d2, "--session", "s").stdout == line


def test_cli_ingest_depth_default(reel):
    # envelope = 1, "data" = 2: 510 more arrays make 512
    reel.run("ingest", "--session", "d", "--quiet",
             input=('{"type":"t","data":{"k":%s}}\n' % nest(510)).encode())
    p = reel.run("ingest", "--session", "d2", "--quiet",
                 input=('{"type":"t","data":{"k":%s}}\n' % nest(511)).encode(), check=False)
    assert p.returncode != 0
    assert b"nesting deeper than 512 levels" in p.stderr
