"""An export taken while a session runs again (issue 15, item 7): its record is rolled back
to the export's snapshot, so a run that started (and maybe ended) after the snapshot shows
neither in the status, nor in runs, nor in ended_at. Same pipe trick as
test_export_snapshot.py: the exporter is held inside its records while the appends land."""
import hashlib
import json
import subprocess

from clihelp import REEL, Reel

N = 5000
END = "2026-01-01T00:00:01.000Z"


def seed(path):
    lines = [json.dumps({"record": "export", "format": 1})]
    for i in range(N):
        lines.append(json.dumps({"session_id": f"s{i:05d}", "event_id": "e",
                                 "time": "2026-01-01T00:00:00.000Z", "type": "t", "data": {}}))
    for sid in ("zz-again", "zz-again-open"):
        lines.append(json.dumps({"session_id": sid, "event_id": "start", "type": "session.started",
                                 "time": "2026-01-01T00:00:00.000Z", "data": {}}))
        lines.append(json.dumps({"session_id": sid, "event_id": "end", "type": "session.ended",
                                 "time": END, "data": {}}))
    lines.append(json.dumps({"record": "end", "events": N + 4, "sessions": 0}))
    path.write_text("\n".join(lines) + "\n")


def test_a_run_after_the_snapshot_is_cut_from_the_records(tmp_path):
    reel = Reel(str(tmp_path / "data"))
    seed(tmp_path / "seed.jsonl")
    reel.run("import", "--sync", "none", "--quiet", str(tmp_path / "seed.jsonl"))
    ex = subprocess.Popen([REEL, "export", "--data", reel.data, "--compression", "none",
                           "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        head = ex.stdout.read(256 * 1024)
        reel.ingest("zz-again", [{"type": "session.started"}, {"type": "x"},
                                 {"type": "session.ended"}])
        reel.ingest("zz-again-open", [{"type": "session.started"}, {"type": "x"}])
        rest, err = ex.communicate(timeout=120)
    finally:
        ex.kill()
    assert ex.returncode == 0, err
    lines = [json.loads(l) for l in (head + rest).decode().split("\n") if l]
    records = {l["id"]: l for l in lines if l.get("record") == "session"}
    for sid in ("zz-again", "zz-again-open"):
        r = records[sid]
        assert (r["status"], r["runs"], r["ended_at"], r["last_sequence"]) == \
            ("ended", 1, END, 2), r
    # the store itself has the second runs
    out = reel.run("sessions", "--json").stdout.decode().split("\n")
    now = {r["id"]: r for r in map(json.loads, filter(None, out))}
    assert (now["zz-again"]["status"], now["zz-again"]["runs"]) == ("ended", 2)
    assert now["zz-again"]["ended_at"] > END
    assert (now["zz-again-open"]["status"], now["zz-again-open"]["runs"]) == ("active", 2)
    assert now["zz-again-open"]["ended_at"] == END


def records(reel):
    out = reel.run("sessions", "--json").stdout.decode().split("\n")
    return {r["id"]: r for r in map(json.loads, filter(None, out))}


def test_export_then_import_keeps_runs_status_and_version(tmp_path):
    src = Reel(str(tmp_path / "src"))
    src.ingest("again", [{"type": "session.started"}, {"type": "session.ended"},
                         {"type": "session.started", "native_session_id": "n2"}])
    src.ingest("ended", [{"type": "session.started"}, {"type": "session.ended"}])
    src.ingest("plain", [{"type": "x"}])
    want = records(src)
    assert (want["again"]["status"], want["again"]["runs"], want["again"]["version"]) == \
        ("active", 2, 1)
    assert want["again"]["ended_at"] is not None
    dump = tmp_path / "dump.jsonl"
    src.run("export", "--compression", "none", "--quiet", "--output", str(dump))
    # an export carrying a version (a record changed by PUTs) gives it back
    lines = dump.read_text().split("\n")
    for i, l in enumerate(lines):
        if l and json.loads(l).get("record") == "session" and json.loads(l)["id"] == "plain":
            r = json.loads(l)
            r["version"] = 7
            lines[i] = json.dumps(r)
    end = json.loads(lines[-2])  # the end record's digest covers the lines before it
    end["sha256"] = hashlib.sha256("".join(l + "\n" for l in lines[:-2]).encode()).hexdigest()
    lines[-2] = json.dumps(end)
    dump.write_text("\n".join(lines))
    want["plain"]["version"] = 7
    dst = Reel(str(tmp_path / "dst"))
    dst.run("import", "--quiet", str(dump))
    assert records(dst) == want
    # imported again over itself: nothing changes, the versions neither (an import retried
    # after a failure ends where one clean import does)
    dst.run("import", "--quiet", str(dump))
    assert records(dst) == want
    # a record changed since (an event with a new native id: version 8) keeps its version
    # through the import: it never goes back to the exported 7, so an ETag is never given
    # again to another content
    dst.ingest("plain", [{"type": "x", "native_session_id": "changed"}])
    assert records(dst)["plain"]["version"] == 8
    dst.run("import", "--quiet", str(dump))
    assert records(dst)["plain"]["version"] >= 8
