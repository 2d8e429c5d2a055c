"""Export and import: the real zstd CLI and jq read exports; a round trip is identical."""
import hashlib
import json
import shutil
import subprocess

import pytest

from clihelp import Reel


def client_time(i):
    """The caller's time: Unix ms, RFC 3339 as given, or none (every third event)."""
    return [{"client_time": 1700000000000 + i}, {"client_time": f"2026-01-02 03:04:{i % 60:02d}.5+05:30"},
            {}][i % 3]


def make_events(n, session):
    return [{"type": "item.delta", "source": "agent", "event_id": f"{session}-{i}",
             "native_session_id": "thread_1",
             "data": {"i": i, "delta": f"h\u00e9llo \U0001F600 {i} " + "x" * (i % 5 * 900),
                      "f": 0.1, "big": 18446744073709551615},
             "raw": {"line": i}, **client_time(i)} for i in range(n)]


@pytest.fixture
def filled(reel):
    reel.ingest("alpha", make_events(300, "alpha"))
    reel.ingest("beta", make_events(40, "beta") + [{"type": "session.ended", "source": "daemon"}])
    reel.ingest("alpha", make_events(305, "alpha")[300:])
    return reel


def export(reel, path, *args):
    reel.run("export", "-o", str(path), "--quiet", *args)
    return path


@pytest.mark.skipif(not shutil.which("zstd") or not shutil.which("jq"), reason="zstd, jq")
def test_zstd_cli_and_jq_read_every_line(filled, tmp_path):
    path = export(filled, tmp_path / "all.jsonl.zst")
    text = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    lines = text.decode().split("\n")[:-1]
    jq = subprocess.run(["jq", "-c", "."], input=text, capture_output=True, check=True)
    assert len(jq.stdout.decode().split("\n")[:-1]) == len(lines)
    records = [json.loads(l) for l in lines]
    assert records[0]["record"] == "export" and records[0]["format"] == 2
    end = records[-1]
    assert {k: end[k] for k in ("record", "events", "sessions", "lines")} == \
        {"record": "end", "events": 346, "sessions": 2, "lines": len(lines) - 1}
    assert end["sha256"] == hashlib.sha256(text[:text.rindex(b"\n", 0, -1) + 1]).hexdigest()
    assert [r["id"] for r in records if r.get("record") == "session"] == ["alpha", "beta"]
    events = [r for r in records if "record" not in r]
    assert [e["position"] for e in events] == list(range(1, 347))
    assert events[0]["raw"] == {"line": 0}, "exports carry raw"
    assert [e.get("client_time") for e in events[:3]] == \
        [1700000000000, "2026-01-02 03:04:01.5+05:30", None], "and the client's time as given"


def test_import_into_an_empty_store_is_identical_and_idempotent(filled, tmp_path):
    path = export(filled, tmp_path / "all.jsonl.zst")
    copy = Reel(str(tmp_path / "copy"))
    copy.run("import", str(path))
    assert copy.run("tail", "--include-raw").stdout == filled.run("tail", "--include-raw").stdout
    assert b'"client_time":"2026-01-02 03:04:01.5+05:30"' in copy.run("tail").stdout
    assert copy.run("sessions", "--json").stdout == filled.run("sessions", "--json").stdout
    again = copy.run("import", str(path))
    assert b"0 events appended, 346 duplicates" in again.stderr
    assert copy.run("tail").stdout == filled.run("tail").stdout
    assert copy.run("verify").returncode == 0


def test_plain_export_and_one_session_export(filled, tmp_path):
    path = export(filled, tmp_path / "beta.jsonl", "--session", "beta", "--compression", "none")
    lines = [json.loads(l) for l in path.read_text().split("\n")[:-1]]
    assert [l.get("record") for l in lines[:2]] == ["export", "session"]
    assert lines[1]["status"] == "ended"
    assert [l["sequence"] for l in lines if "record" not in l] == list(range(1, 42))
    copy = Reel(str(tmp_path / "copy"))
    copy.run("import", str(path))
    def strip(events):  # positions are global: another store numbers them anew
        return [{k: v for k, v in e.items() if k != "position"} for e in events]
    assert strip(copy.tail("beta")) == strip(filled.tail("beta"))


def test_position_and_session_filters(filled, tmp_path):
    path = export(filled, tmp_path / "f.jsonl", "--compression", "none", "--after", "100",
                  "--until", "320", "--sessions", "beta")
    lines = [json.loads(l) for l in path.read_text().split("\n")[:-1]]
    events = [l for l in lines if "record" not in l]
    assert {e["session_id"] for e in events} == {"beta"}
    assert all(100 < e["position"] <= 320 for e in events) and len(events) == 20
    assert [l["id"] for l in lines if l.get("record") == "session"] == ["beta"]


def test_a_bad_line_stops_the_import_and_names_it(filled, tmp_path):
    path = export(filled, tmp_path / "all.jsonl", "--compression", "none")
    lines = path.read_text().split("\n")
    lines[10] = lines[10][:40]  # a torn line
    (tmp_path / "bad.jsonl").write_text("\n".join(lines))
    copy = Reel(str(tmp_path / "copy"))
    p = copy.run("import", str(tmp_path / "bad.jsonl"), check=False)
    assert p.returncode == 1
    assert b"line 11" in p.stderr


def test_unknown_session_and_bad_options_are_refused(filled, tmp_path):
    p = filled.run("export", "--session", "nope", "-o", str(tmp_path / "x"), check=False)
    assert p.returncode == 1 and b"no session 'nope' in this data directory" in p.stderr
    assert not (tmp_path / "x").exists(), "no partial file is left behind"
    p = filled.run("export", "--level", "99", "-o", str(tmp_path / "x"), check=False)
    assert p.returncode == 2
    p = filled.run("export", "--since", "yesterday", "-o", str(tmp_path / "x"), check=False)
    assert p.returncode == 2 and b"yesterday" in p.stderr
