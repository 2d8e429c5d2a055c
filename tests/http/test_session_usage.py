"""The session record's usage summary (docs/FORMAT.md section 16, docs/HTTP.md "Sessions"):
model, turns, tokens and cost kept at append, so a list of sessions shows them without
reading events (the inspector's list columns, docs/UI.md)."""
import json
import subprocess

from conftest import REEL_BIN, Server, ev

KEYS = ("model", "turns", "input_tokens", "output_tokens", "cost_usd")


def usage(i, o, cost=None, turn_end=True, **kw):
    d = {"turn_end": turn_end, "input_tokens": i, "output_tokens": o, **kw}
    if cost is not None:
        d["cost_usd"] = cost
    return ev("usage", source="agent", data=d)


def summary(rec):
    return {k: rec[k] for k in KEYS if k in rec}


def test_summary_sums_usage_and_keeps_the_latest_model(server):
    assert server.append("u", [ev("session.started", data={"model": "m-1"}),
                               usage(1200, 30, 0.0123), usage(800, 70, 1.5e-3)]).status == 200
    rec = server.get("/v1/sessions/u").json
    assert summary(rec) == {"model": "m-1", "turns": 2, "input_tokens": 2000,
                            "output_tokens": 100, "cost_usd": 0.0138}
    # a second run names another model; a usage without turn_end adds tokens, not a turn
    assert server.append("u", [ev("session.started", data={"model": "m-2"}),
                               usage(5, 5, turn_end=False)]).status == 200
    rec = server.get("/v1/sessions/u").json
    assert (rec["model"], rec["turns"], rec["input_tokens"], rec["runs"]) == ("m-2", 2, 2005, 2)
    # the same record in the listing, and after a restart
    listed = [s for s in server.get("/v1/sessions?order=recent").json["sessions"] if s["id"] == "u"]
    assert summary(listed[0]) == summary(rec)
    server.stop()
    server.start()
    assert summary(server.get("/v1/sessions/u").json) == summary(rec)


def test_duplicates_add_nothing_and_bad_values_are_ignored(server):
    e = usage(10, 1, 0.5)
    e["event_id"] = "u-1"
    assert server.append("d", [e]).status == 200
    assert server.append("d", [e]).json["duplicates"] == 1  # a retried batch
    rec = server.get("/v1/sessions/d").json
    assert (rec["turns"], rec["input_tokens"], rec["cost_usd"]) == (1, 10, 0.5)
    # not numbers, negative, or a model that is not a string: nothing is added
    assert server.append("d", [ev("usage", data={"turn_end": "yes", "input_tokens": "9",
                                                 "output_tokens": -4, "cost_usd": None}),
                               ev("session.started", data={"model": 7})]).status == 200
    rec = server.get("/v1/sessions/d").json
    assert summary(rec) == {"turns": 1, "input_tokens": 10, "output_tokens": 1, "cost_usd": 0.5}


def test_a_session_without_usage_renders_as_before(server):
    assert server.append("plain", [ev("note", data={"text": "hi"})]).status == 200
    rec = server.get("/v1/sessions/plain").json
    assert not any(k in rec for k in KEYS)
    assert list(rec)[-3:] == ["runs", "version", "metadata"]


def test_export_import_counts_again(server, tmp_path):
    assert server.append("x", [ev("session.started", data={"model": "m-9"}),
                               usage(3, 4, 0.25)]).status == 200
    f = tmp_path / "x.jsonl"
    f.write_bytes(server.get("/v1/export?compression=none").body)
    d = tmp_path / "imported"
    p = subprocess.run([REEL_BIN, "import", "--data", str(d), "--quiet", str(f)],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([REEL_BIN, "sessions", "--data", str(d), "--json"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout.splitlines()[0])
    assert summary(rec) == summary(server.get("/v1/sessions/x").json)
