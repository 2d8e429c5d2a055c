"""fit=newest leaves out what a later line repeats (issue 17): the item.started and
item.delta lines of an item whose item.completed is in the window; fit=sdk keeps all."""
import json


def conversation(turns, words=40):
    evs = []
    for t in range(turns):
        for role, n in (("user", 3), ("assistant", words)):
            iid = "m%d%s" % (t, role[0])
            evs.append({"type": "item.started", "source": "agent",
                        "data": {"item_id": iid, "kind": "message", "role": role, "status": "in_progress"}})
            text = ""
            for w in range(n):
                d = "word%d " % w
                text += d
                evs.append({"type": "item.delta", "source": "agent", "data": {"item_id": iid, "delta": d}})
            evs.append({"type": "item.completed", "source": "agent",
                        "data": {"item_id": iid, "kind": "message", "role": role, "status": "completed",
                                 "text": text}})
    return evs


def payloads(out):
    return [json.loads(l)["payload"] for l in out["replay_text"].split("\n")[1:] if l.startswith("{")]


def test_deltas_and_starts_of_completed_items_are_left_out(reel):
    reel.ingest("c", conversation(3))
    out = json.loads(reel.run("restore", "--session", "c", "--json", "--max-events", "1000").stdout)
    p = payloads(out)
    assert [x.get("status") for x in p] == ["completed"] * 6, "one line per message"
    assert out["truncated"] is False
    assert [e["sequence"] for e in out["events"]] == list(range(1, len(conversation(3)) + 1))
    sdk = json.loads(reel.run("restore", "--session", "c", "--json", "--max-events", "1000",
                              "--fit", "sdk", "--max-chars", "1000000").stdout)
    assert len(payloads(sdk)) == len(conversation(3)), "fit=sdk keeps every event"


def test_an_item_still_streaming_keeps_its_deltas(reel):
    evs = conversation(1)
    evs.append({"type": "item.started", "source": "agent", "data": {"item_id": "open", "kind": "message"}})
    evs.append({"type": "item.delta", "source": "agent", "data": {"item_id": "open", "delta": "half"}})
    # a completion without text (a tool item, or text given only by deltas) keeps the deltas
    evs.append({"type": "item.delta", "source": "agent", "data": {"item_id": "nt", "delta": "only here"}})
    evs.append({"type": "item.completed", "source": "agent", "data": {"item_id": "nt", "status": "completed"}})
    reel.ingest("s", evs)
    text = json.loads(reel.run("restore", "--session", "s", "--json").stdout)["replay_text"]
    assert '"delta":"half"' in text and '"delta":"only here"' in text
    assert text.count('"delta":"word') == 0


def test_more_conversation_fits_in_12000_characters(reel):
    reel.ingest("long", conversation(40))
    out = json.loads(reel.run("restore", "--session", "long", "--json", "--max-events", "5000").stdout)
    assert out["truncated"] is True
    msgs = [x for x in payloads(out) if x.get("status") == "completed"]
    # with every delta repeated this budget held 5 of the 80 messages; now 41 (one line each)
    assert len(msgs) >= 20, len(msgs)
    assert len(out["replay_text"].encode("utf-16-le")) // 2 <= 12000
