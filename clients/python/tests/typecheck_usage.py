"""Not a test module: code a user would write, type-checked with mypy --strict by
test_client.py::test_types_check_strict (it never runs)."""
from typing import List, Optional

from reel_client import (EventPage, NewEvent, ReelClient, ReelError, ReelEvent, SessionPage,
                         SessionRecord)


def usage(c: ReelClient) -> None:
    ev: NewEvent = {"type": "t", "data": {"a": [1, "x", None]}, "client_time": 1}
    seq: int = c.append("s", ev, expected_sequence=0)["last_sequence"]
    c.append_batch("s", [ev, {"type": "u"}])
    page: EventPage = c.events("s", after=seq, limit=10, wait_ms=1000)
    for e in page.events:
        n: int = e["sequence"]
        t: str = e["type"]
    newest: List[ReelEvent] = c.newest("s", 5)
    rec: Optional[SessionRecord] = c.get_session("s")
    if rec is not None:
        v: int = rec["version"]
        c.put_session("s", agent="a", metadata={"k": 1}, if_match=v)
    sessions: SessionPage = c.list_sessions(prefix="p", order="recent", limit=5)
    cursor: Optional[str] = sessions.cursor
    for r in c.all_sessions(status="active"):
        i: str = r["id"]
    with c.subscribe(None, after=0) as sub:
        for f in sub:
            pos: int = f["position"]
    try:
        c.delete_session("s", if_match=3)
    except ReelError as err:
        code: str = err.code
        status: int = err.status
    with c.export_stream(["s"], compression="none") as body:
        data: bytes = body.read()
    text: str = c.restore("s", fit="sdk")["replay_text"]
