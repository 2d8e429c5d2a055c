"""The shapes reel's HTTP API sends and takes (docs/HTTP.md), as TypedDicts over plain dicts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Literal, Optional, TypedDict, Union

Json = Any
"""Any JSON value: None, bool, int, float, str, list or dict (mypy cannot spell the recursion)."""


class NewEvent(TypedDict, total=False):
    """An event to append. Only ``type`` is required; ``event_id`` is generated when absent."""

    type: str
    event_id: str
    source: Optional[str]
    synthetic: Optional[bool]
    native_session_id: Optional[str]
    data: Json
    raw: Json
    client_time: Union[int, str, None]


class ReelEvent(TypedDict, total=False):
    """An event as reel serves it (the SPEC §3 envelope)."""

    session_id: str
    sequence: int
    position: int
    event_id: str
    type: str
    time: str
    client_time: Union[int, str]
    source: Optional[str]
    synthetic: Optional[bool]
    native_session_id: Optional[str]
    data: Json
    raw: Json


class AppendResult(TypedDict):
    session_id: str
    first_sequence: int
    last_sequence: int
    position: int
    duplicates: int


class SessionRecord(TypedDict, total=False):
    id: str
    agent: Optional[str]
    native_session_id: Optional[str]
    status: Literal["active", "ended", "deleted"]
    created_at: str
    updated_at: str
    ended_at: Optional[str]
    first_event_at: Optional[str]
    last_sequence: int
    event_count: int
    bytes: int
    runs: int
    version: int
    metadata: Json


@dataclass
class EventPage:
    """One page of a session's events (``next`` = next_offset) or of the feed (``next`` =
    next_after). Pass ``next`` back as ``after`` to continue."""

    events: List[ReelEvent]
    next: int
    more: bool


@dataclass
class SessionPage:
    """One page of session records; ``cursor`` is None on the last page."""

    sessions: List[SessionRecord]
    cursor: Optional[str]


class _Unset:
    """Marker for "leave this field out" (None means JSON null)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
