"""A whole-store export is one snapshot (issue 14, finding 7): its session records agree
with the events it holds, even when appends land while it streams.

The export is read through a pipe the test holds still: the exporter blocks writing its
first megabyte of session records while another process appends to the session whose
record comes last; its record is read after those appends."""
import json
import subprocess

from clihelp import REEL, Reel

N = 5000  # session records of ~300 bytes: several 1 MiB chunks


def crafted(path):
    lines = [json.dumps({"record": "export", "format": 1})]
    ids = [f"s{i:05d}" for i in range(N)] + ["zz-last"]
    for i, sid in enumerate(ids):
        for k in range(3 if sid == "zz-last" else 1):
            lines.append(json.dumps({"session_id": sid, "event_id": f"{sid}-{k}",
                                     "time": "2026-01-01T00:00:00.000Z", "type": "t",
                                     "data": {"k": k}}))
    lines.append(json.dumps({"record": "end", "events": N + 3, "sessions": 0}))
    path.write_text("\n".join(lines) + "\n")


def test_records_agree_with_the_events_of_an_export_taken_during_appends(tmp_path):
    reel = Reel(str(tmp_path / "data"))
    crafted(tmp_path / "seed.jsonl")
    reel.run("import", "--sync", "none", "--quiet", str(tmp_path / "seed.jsonl"))
    ex = subprocess.Popen([REEL, "export", "--data", reel.data, "--compression", "none",
                           "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        head = ex.stdout.read(256 * 1024)  # the exporter is now blocked inside its records
        for _ in range(4):
            reel.ingest("zz-last", [{"type": "late", "data": {"n": n}} for n in range(5)])
            reel.run("ingest", "--session", "zz-ended", "--quiet",
                     input=b'{"type":"session.ended"}\n')
        rest, err = ex.communicate(timeout=120)
    finally:
        ex.kill()
    assert ex.returncode == 0, err
    lines = [json.loads(l) for l in (head + rest).decode().split("\n") if l]
    records = {l["id"]: l for l in lines if l.get("record") == "session"}
    events = {}
    for l in lines:
        if "record" not in l:
            events.setdefault(l["session_id"], []).append(l["sequence"])
    assert len(records) >= N + 1
    assert events["zz-last"] == [1, 2, 3]
    assert reel.run("sessions", "--json").stdout.count(b'"zz-last"') == 1
    wrong = {sid: (r["last_sequence"], r["event_count"], events.get(sid, []))
             for sid, r in records.items()
             if r["last_sequence"] != len(events.get(sid, [])) or
             r["event_count"] != len(events.get(sid, [])) or
             events.get(sid, []) != list(range(1, r["last_sequence"] + 1)) or
             (r["status"] == "ended") != (r["ended_at"] is not None)}
    assert not wrong, f"records past the export's events: {wrong}"
    assert records["zz-last"]["last_sequence"] == 3
    # Created after the snapshot by a session.ended event: no event yet, so not ended.
    assert records["zz-ended"]["status"] == "active" and records["zz-ended"]["ended_at"] is None
