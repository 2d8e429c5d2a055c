"""ReelClient: reel's HTTP API (docs/HTTP.md) from Python, standard library only."""
from __future__ import annotations

import http.client
import io
import json
import os
import random
import socket
import threading
import time
import urllib.parse
import uuid
import weakref
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    Union)

from .types import (UNSET, AppendResult, EventPage, Json, NewEvent, ReelEvent, SessionPage,
                    SessionRecord)

DEFAULT_BASE_URL = "http://127.0.0.1:2469"
_ERROR_PREFIX = "urn:reel:error:"
_MAX_WAIT_S = 60
# Errors a pooled keep-alive connection gives when the server closed it while idle: the
# request never reached the server, so it is sent again at once on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)
_NET_ERRORS = (OSError, http.client.HTTPException)


class ReelError(Exception):
    """A problem answer from reel (RFC 7807), or a connection failure (status 0).

    ``type`` is the problem's type as sent (``urn:reel:error:precondition_failed``), ``code``
    its short name (``precondition_failed``; ``network_error`` for status 0), ``detail`` the
    problem's detail, ``problem`` the whole problem body as a dict and ``headers`` the
    answer's headers (lower-case names; a 412 carries the current ``etag``). The same fields
    as the TypeScript client's ReelError.
    """

    def __init__(self, status: int, type: str, detail: str,
                 problem: Optional[Dict[str, Any]] = None,
                 headers: Optional[Dict[str, str]] = None) -> None:
        self.status = status
        self.type = type
        self.code = type[len(_ERROR_PREFIX):] if type.startswith(_ERROR_PREFIX) else type
        self.detail = detail
        self.problem: Dict[str, Any] = problem if problem is not None else {}
        self.headers: Dict[str, str] = headers if headers is not None else {}
        super().__init__("reel: %s %s: %s" % (status or "network error", self.code, detail))


class ReelConnectionError(ReelError):
    """reel could not be reached (connection refused, reset, timed out) after the retries;
    the underlying exception is ``__cause__``."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, _ERROR_PREFIX + "network_error", detail)


def new_event_id() -> str:
    """A UUID version 7 (48-bit Unix ms, then random bits): time-ordered and unique."""
    b = bytearray(int(time.time() * 1000).to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(b)))


def quote_id(session_id: str) -> str:
    """A session id as one percent-encoded path segment (``team/alpha`` -> ``team%2Falpha``).
    A lone surrogate cannot be in an id (ids are UTF-8): it raises UnicodeEncodeError."""
    return urllib.parse.quote(session_id.encode("utf-8"), safe="")


def _dumps(value: Any) -> bytes:
    # ensure_ascii keeps a lone surrogate as its \\uXXXX escape (reel stores it exactly);
    # allow_nan=False refuses NaN/Infinity, which are not JSON.
    return json.dumps(value, ensure_ascii=True, allow_nan=False,
                      separators=(",", ":")).encode("ascii")


def _query(params: Mapping[str, Any]) -> str:
    items = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        items.append((k, str(v)))
    if not items:
        return ""
    return "?" + urllib.parse.urlencode(items, quote_via=urllib.parse.quote, safe="")


def _wait_seconds(wait_ms: Optional[float]) -> Optional[int]:
    if wait_ms is None or wait_ms <= 0:
        return None
    return min(_MAX_WAIT_S, -(-int(wait_ms) // 1000))  # reel takes whole seconds: round up


def _etag(version: Union[int, str]) -> str:
    if version == "*":
        return "*"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError("a version is a positive integer or '*', not %r" % (version,))
    return '"%d"' % version


def _problem(status: int, headers: Dict[str, str], body: bytes) -> ReelError:
    try:
        p = json.loads(body.decode("utf-8"))
        if not isinstance(p, dict):
            raise ValueError
    except ValueError:
        return ReelError(status, "about:blank", body.decode("utf-8", "replace")[:500],
                         {}, headers)
    t = str(p.get("type", "about:blank"))
    return ReelError(status, t, str(p.get("detail", p.get("title", ""))), p, headers)


def _nodelay(sock: Any) -> None:
    # http.client writes the head and the body with two send() calls: without TCP_NODELAY
    # the body can wait for the head's ACK (Nagle + delayed ACK).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _nodelay(self.sock)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _nodelay(self.sock)


class _Answer:
    __slots__ = ("status", "headers", "body", "resent")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes, resent: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.resent = resent  # sent again after a failure that may have followed its arrival

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class StreamBody(io.RawIOBase):
    """A streaming answer body (an export) on a connection of its own: read it like a binary
    file; ``close()`` (or leaving a ``with`` block) closes the connection."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        super().__init__()
        self._conn = conn
        self._resp = resp
        self.status: int = resp.status
        self.headers: Dict[str, str] = {k.lower(): v for k, v in resp.getheaders()}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._resp.readinto(b)

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            return self._resp.read()
        return self._resp.read(size)

    def close(self) -> None:
        if not self.closed:
            try:
                self._resp.close()
            finally:
                self._conn.close()
        super().close()


class ReelClient:
    """A client of one reel server. Safe to share between threads: each thread keeps its own
    keep-alive connection.

    ``retries``: how many times a request is sent again after a connection error, a 5xx or a
    429 (with exponential backoff and jitter, ``backoff`` seconds doubling up to
    ``max_backoff``); other 4xx answers are never retried. Every request the client sends is
    safe to repeat: appends carry event ids (generated here when absent), so a retried
    append that had already committed reports duplicates instead of appending twice.
    ``timeout``: socket timeout in seconds (a long-poll adds its wait).
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, token: Optional[str] = None,
                 retries: int = 5, timeout: float = 30, backoff: float = 0.1,
                 max_backoff: float = 5.0) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("base_url must be http://host[:port] or https://..., not %r"
                             % base_url)
        self.base_url = base_url.rstrip("/")
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self.token = token
        self.retries = max(0, int(retries))
        self.timeout = float(timeout)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._local = threading.local()
        self._conns: "weakref.WeakSet[http.client.HTTPConnection]" = weakref.WeakSet()
        self._conns_lock = threading.Lock()

    # -- transport --------------------------------------------------------------------

    def _new_conn(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return _HTTPSConnection(self._host, self._port, timeout=timeout)
        return _HTTPConnection(self._host, self._port, timeout=timeout)

    def _pooled(self) -> Tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, conn.sock is not None
        conn = self._new_conn(self.timeout)
        self._local.conn = conn
        with self._conns_lock:
            self._conns.add(conn)
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()

    def _headers(self, extra: Optional[Mapping[str, str]]) -> Dict[str, str]:
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if extra:
            h.update(extra)
        return h

    def _delay(self, attempt: int, floor: float = 0.0) -> float:
        d: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return max(floor, d / 2 + random.uniform(0, d / 2))

    @staticmethod
    def _retry_after(headers: Mapping[str, str]) -> float:
        try:
            return min(60.0, float(headers.get("retry-after", "0")))
        except ValueError:
            return 0.0

    def _request(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[Mapping[str, str]] = None,
                 timeout: Optional[float] = None) -> _Answer:
        """Sends one request on this thread's connection, with the retry rules; answers
        whatever status came last (the caller decides what is an error)."""
        url = self._prefix + path
        h = self._headers(headers)
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        t = self.timeout if timeout is None else timeout
        attempt = 0
        resent = False
        stale_used = False
        while True:
            conn, reused = self._pooled()
            try:
                conn.timeout = t
                if conn.sock is not None:
                    conn.sock.settimeout(t)
                conn.request(method, url, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
            except _NET_ERRORS as e:
                self._drop()
                if reused and not stale_used and isinstance(e, _STALE):
                    stale_used = True  # the server closed an idle connection: once, at once
                    resent = True
                    continue
                attempt += 1
                if attempt > self.retries:
                    raise ReelConnectionError("%s %s: %s" % (method, url, e or type(e).__name__)) \
                        from e
                resent = True
                time.sleep(self._delay(attempt))
                continue
            rh = {k.lower(): v for k, v in resp.getheaders()}
            if resp.will_close:
                self._drop()
            if (resp.status >= 500 or resp.status == 429) and attempt < self.retries:
                attempt += 1
                resent = True
                time.sleep(self._delay(attempt, self._retry_after(rh)))
                continue
            return _Answer(resp.status, rh, data, resent)

    def _json(self, method: str, path: str, body: Any = None,
              headers: Optional[Mapping[str, str]] = None, timeout: Optional[float] = None,
              ok: Sequence[int] = (200,)) -> Any:
        a = self._request(method, path, None if body is None else _dumps(body), headers, timeout)
        if a.status not in ok:
            raise _problem(a.status, a.headers, a.body)
        return a.json()

    def _open(self, path: str, headers: Optional[Mapping[str, str]] = None,
              timeout: Optional[float] = None) -> Tuple[http.client.HTTPConnection,
                                                        http.client.HTTPResponse]:
        """GET on a connection of its own, left open for streaming; retries like _request."""
        url = self._prefix + path
        h = self._headers(headers)
        attempt = 0
        while True:
            conn = self._new_conn(self.timeout if timeout is None else timeout)
            try:
                conn.request("GET", url, headers=h)
                resp = conn.getresponse()
            except _NET_ERRORS as e:
                conn.close()
                attempt += 1
                if attempt > self.retries:
                    raise ReelConnectionError("GET %s: %s" % (url, e or type(e).__name__)) from e
                time.sleep(self._delay(attempt))
                continue
            if resp.status == 200:
                return conn, resp
            rh = {k.lower(): v for k, v in resp.getheaders()}
            try:
                data = resp.read()
            except _NET_ERRORS:
                data = b""
            conn.close()
            if (resp.status >= 500 or resp.status == 429) and attempt < self.retries:
                attempt += 1
                time.sleep(self._delay(attempt, self._retry_after(rh)))
                continue
            raise _problem(resp.status, rh, data)

    def close(self) -> None:
        """Closes the keep-alive connections (a later request opens a new one)."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        self._local = threading.local()

    def __enter__(self) -> "ReelClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- events -----------------------------------------------------------------------

    @staticmethod
    def _with_id(event: Mapping[str, Any]) -> Dict[str, Any]:
        if not isinstance(event, Mapping):
            raise TypeError("an event is a dict with at least a 'type', not %r" % (event,))
        ev = dict(event)
        if ev.get("event_id") is None:
            ev["event_id"] = new_event_id()
        return ev

    def append(self, session: str, event: Union[NewEvent, Mapping[str, Any]],
               expected_sequence: Optional[int] = None) -> AppendResult:
        """Appends one event (durable when this returns). An ``event_id`` is added when the
        event has none, so a retry never appends it twice; the caller's dict is not changed."""
        return self._append(session, self._with_id(event), expected_sequence)

    def append_batch(self, session: str, events: Sequence[Union[NewEvent, Mapping[str, Any]]],
                     expected_sequence: Optional[int] = None) -> AppendResult:
        """Appends events as one atomic batch (all or none), each given an ``event_id`` when
        it has none. ``expected_sequence``: append only if the session's last sequence is
        this (0 = new or empty), else ReelError 409 ``sequence_conflict``."""
        if isinstance(events, (str, bytes, Mapping)):
            raise TypeError("append_batch takes a list of events")
        evs = [self._with_id(e) for e in events]
        if not evs:
            raise ValueError("append_batch needs at least one event")
        return self._append(session, evs, expected_sequence)

    def _append(self, session: str, body: Any, expected_sequence: Optional[int]) -> AppendResult:
        path = "/v1/sessions/%s/events%s" % (quote_id(session),
                                              _query({"expected_sequence": expected_sequence}))
        result: AppendResult = self._json("POST", path, body)
        return result

    def events(self, session: str, after: int = 0, limit: Optional[int] = None,
               wait_ms: Optional[float] = None, types: Optional[Sequence[str]] = None,
               include_raw: bool = False) -> EventPage:
        """A page of the session's events with ``sequence > after``. With ``wait_ms`` and no
        such event yet, a long-poll: the answer comes when one commits or after the wait
        (reel waits in whole seconds: the wait is rounded up, at most 60 s). ``next`` is the
        ``after`` of the next page. A session that does not exist is ReelError 404."""
        wait = _wait_seconds(wait_ms)
        q = {"offset": after, "limit": limit, "wait": wait,
             "types": ",".join(types) if types else None,
             "include_raw": True if include_raw else None}
        path = "/v1/sessions/%s/events%s" % (quote_id(session), _query(q))
        j = self._json("GET", path, timeout=self.timeout + (wait or 0))
        return EventPage(j["events"], int(j["next_offset"]), bool(j["hasMore"]))

    def feed(self, after: int = 0, limit: Optional[int] = None,
             wait_ms: Optional[float] = None, types: Optional[Sequence[str]] = None,
             include_raw: bool = False) -> EventPage:
        """A page of the all-sessions feed, in commit order, past position ``after``."""
        wait = _wait_seconds(wait_ms)
        q = {"after": after, "limit": limit, "wait": wait,
             "types": ",".join(types) if types else None,
             "include_raw": True if include_raw else None}
        j = self._json("GET", "/v1/events" + _query(q), timeout=self.timeout + (wait or 0))
        return EventPage(j["events"], int(j["next_after"]), bool(j["hasMore"]))

    def newest(self, session: str, n: int, include_raw: bool = False) -> List[ReelEvent]:
        """The session's newest ``n`` events as of now, oldest first: the record's
        ``last_sequence``, then pages from ``last_sequence - n``. ReelError 404 when there
        is no such session."""
        if n < 1:
            raise ValueError("n must be at least 1")
        rec = self.get_session(session)
        if rec is None:
            raise ReelError(404, _ERROR_PREFIX + "session_not_found",
                            "session %r does not exist" % session)
        last = int(rec.get("last_sequence", 0))
        after = max(0, last - n)
        out: List[ReelEvent] = []
        while after < last:
            page = self.events(session, after=after, limit=min(10000, last - after),
                               include_raw=include_raw)
            out.extend(e for e in page.events if e["sequence"] <= last)
            if not page.events or page.next <= after:
                break
            after = page.next
        return out

    def subscribe(self, session: Optional[str], after: int = 0,
                  types: Optional[Sequence[str]] = None, include_raw: bool = False,
                  reconnect_timeout: Optional[float] = None) -> "Subscription":
        """Follows a session's events (or, with ``session=None``, the all-sessions feed) over
        Server-Sent Events, past ``after`` (a sequence; for the feed a position). Iterate it
        to get events; it reconnects by itself with ``Last-Event-ID`` after a dropped
        connection or a server restart, so every event comes exactly once, in order.
        ``close()`` it (from any thread) or use it in a ``with`` block to stop; it also stops
        when the session is deleted. ``reconnect_timeout``: give up (ReelConnectionError)
        after this many seconds without a connection (None: keep trying)."""
        return Subscription(self, session, after, types, include_raw, reconnect_timeout)

    # -- sessions ---------------------------------------------------------------------

    def list_sessions(self, prefix: Optional[str] = None, order: Optional[str] = None,
                      agent: Optional[str] = None, status: Optional[str] = None,
                      limit: Optional[int] = None, cursor: Optional[str] = None) -> SessionPage:
        """One page of session records: ``order`` "id" (default) or "recent"; pass the
        page's ``cursor`` back (same order) for the next page; it is None on the last one.
        A filtered page can be short, even empty, with a cursor: keep paging."""
        q = {"prefix": prefix, "order": order, "agent": agent, "status": status,
             "limit": limit, "cursor": cursor}
        j = self._json("GET", "/v1/sessions" + _query(q))
        return SessionPage(j["sessions"], j.get("next_cursor"))

    def all_sessions(self, prefix: Optional[str] = None, order: Optional[str] = None,
                     agent: Optional[str] = None, status: Optional[str] = None,
                     limit: Optional[int] = None) -> Iterator[SessionRecord]:
        """Every session record, page after page (``limit`` per page)."""
        cursor: Optional[str] = None
        while True:
            page = self.list_sessions(prefix, order, agent, status, limit, cursor)
            for s in page.sessions:
                yield s
            if page.cursor is None:
                return
            cursor = page.cursor

    def get_session(self, session: str) -> Optional[SessionRecord]:
        """The session's record, or None when there is no such session."""
        a = self._request("GET", "/v1/sessions/" + quote_id(session))
        if a.status == 404:
            return None
        if a.status != 200:
            raise _problem(a.status, a.headers, a.body)
        rec: SessionRecord = a.json()
        return rec

    def put_session(self, session: str, agent: Optional[str] = UNSET,
                    native_session_id: Optional[str] = UNSET, metadata: Json = UNSET,
                    if_match: Union[None, int, str] = None,
                    if_none_match: Optional[str] = None) -> SessionRecord:
        """Creates the session if needed and sets the fields given (a field left out is
        unchanged; ``metadata=None`` clears it to {}; ``agent=None`` or
        ``native_session_id=None`` sends null, which reel takes as "unchanged"). ``if_match``: apply
        only at this version (or ``"*"``: only if it exists); ``if_none_match="*"``: create
        only. A condition that does not hold is ReelError 412 ``precondition_failed`` and
        changes nothing. Answers the record after the change."""
        body: Dict[str, Any] = {}
        if agent is not UNSET:
            body["agent"] = agent
        if native_session_id is not UNSET:
            body["native_session_id"] = native_session_id
        if metadata is not UNSET:
            body["metadata"] = metadata
        h: Dict[str, str] = {}
        if if_match is not None:
            h["If-Match"] = _etag(if_match)
        if if_none_match is not None:
            if if_none_match != "*":
                raise ValueError("if_none_match can only be '*'")
            h["If-None-Match"] = "*"
        path = "/v1/sessions/" + quote_id(session)
        a = self._request("PUT", path, _dumps(body), h)
        if a.status == 412 and a.resent and h:
            # The first attempt may have applied before its answer was lost: then the record
            # holds what was sent, at the version that change made.
            rec = self.get_session(session)
            sent = {k: ({} if k == "metadata" else UNSET) if v is None else v
                    for k, v in body.items()}  # null: metadata cleared, a string unchanged
            if rec is not None and all(v is UNSET or rec.get(k) == v for k, v in sent.items()):
                want = 1 if "If-None-Match" in h else (
                    if_match + 1 if isinstance(if_match, int) else None)
                if want is None or rec.get("version") == want:
                    return rec
        if a.status != 200:
            raise _problem(a.status, a.headers, a.body)
        rec2: SessionRecord = a.json()
        return rec2

    def delete_session(self, session: str, if_match: Union[None, int, str] = None) -> bool:
        """Deletes the session's events (its record stays, status "deleted"); True when it
        existed, False when there is no such session. ``if_match``: only at this version."""
        h = {"If-Match": _etag(if_match)} if if_match is not None else None
        a = self._request("DELETE", "/v1/sessions/" + quote_id(session), headers=h)
        if a.status == 404:
            return False
        if a.status == 412 and a.resent:
            rec = self.get_session(session)
            if rec is not None and rec.get("status") == "deleted":
                return True
        if a.status != 200:
            raise _problem(a.status, a.headers, a.body)
        return True

    # -- projections and export ------------------------------------------------------

    def restore(self, session: str, fit: Optional[str] = None,
                max_events: Optional[int] = None, max_chars: Optional[int] = None,
                include_raw: bool = False) -> Dict[str, Any]:
        """Durable session resume: ``{session, events, replay_text, truncated,
        from_sequence, to_sequence}`` from the newest ``max_events`` events; ``fit`` is
        "newest" (default) or "sdk" (the sandbox-agent SDK's replay text, byte for byte)."""
        q = {"fit": fit, "max_events": max_events, "max_chars": max_chars,
             "include_raw": True if include_raw else None}
        r: Dict[str, Any] = self._json("GET", "/v1/sessions/%s/restore%s"
                                       % (quote_id(session), _query(q)))
        return r

    def transcript(self, session: str, format: str = "json",
                   at: Optional[int] = None) -> Any:
        """The session folded into its transcript: a dict for ``format="json"``, the
        Markdown text (str) for ``format="markdown"``; ``at``: as of this sequence."""
        q = {"format": format, "at": at}
        path = "/v1/sessions/%s/transcript%s" % (quote_id(session), _query(q))
        a = self._request("GET", path)
        if a.status != 200:
            raise _problem(a.status, a.headers, a.body)
        if format == "markdown":
            return a.body.decode("utf-8")
        return a.json()

    def export_stream(self, sessions: Optional[Sequence[str]] = None,
                      compression: str = "zstd", after: Optional[int] = None,
                      until: Optional[int] = None) -> StreamBody:
        """A streamed export (JSON lines; a zstd frame unless ``compression="none"``) of the
        whole store or of ``sessions``, as a binary file-like object to read and close. One
        session goes through its own route, so any id works; several are joined with ","."""
        if compression not in ("zstd", "none"):
            raise ValueError("compression is 'zstd' or 'none'")
        if isinstance(sessions, str):
            sessions = [sessions]
        if sessions is not None and len(sessions) == 1 and after is None and until is None:
            path = "/v1/sessions/%s/export%s" % (quote_id(sessions[0]),
                                                  _query({"compression": compression}))
        else:
            if sessions is not None:
                if not sessions:
                    raise ValueError("sessions is None (all) or a non-empty list")
                for s in sessions:
                    if "," in s:
                        raise ValueError("an id with ',' can only be exported alone: %r" % s)
            q = {"sessions": ",".join(sessions) if sessions else None,
                 "compression": compression, "after": after, "until": until}
            path = "/v1/export" + _query(q)
        conn, resp = self._open(path)
        return StreamBody(conn, resp)

    def health(self) -> Dict[str, Any]:
        """``GET /v1/health``: ``{"status": "ok"|"degraded", "corrupt_reads": N}``."""
        a = self._request("GET", "/v1/health")
        if a.status not in (200, 503):
            raise _problem(a.status, a.headers, a.body)
        r: Dict[str, Any] = a.json()
        return r


class Subscription(Iterator[ReelEvent]):
    """An SSE subscription (see ReelClient.subscribe). ``last_id`` is the sequence (or feed
    position) of the last event handed out: a new ``subscribe(..., after=last_id)`` goes on
    from there."""

    def __init__(self, client: ReelClient, session: Optional[str], after: int,
                 types: Optional[Sequence[str]], include_raw: bool,
                 reconnect_timeout: Optional[float]) -> None:
        self._client = client
        self._session = session
        self.last_id = int(after)
        self._types = ",".join(types) if types else None
        self._include_raw = include_raw
        self._reconnect_timeout = reconnect_timeout
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._resp: Optional[http.client.HTTPResponse] = None
        self._failures = 0
        self._retry_s = 2.0
        self.reconnects = 0  # connections made after the first one
        self._connected = False

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> "Subscription":
        return self

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stops the subscription; a thread blocked in ``next()`` gets StopIteration."""
        self._stop.set()
        self._disconnect()

    def _disconnect(self) -> None:
        with self._lock:
            conn, self._conn, self._resp = self._conn, None, None
        if conn is not None:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            conn.close()

    def _path(self) -> str:
        if self._session is None:
            q = {"after": self.last_id}
            base = "/v1/events/sse"
        else:
            q = {"offset": self.last_id}
            base = "/v1/sessions/%s/events/sse" % quote_id(self._session)
        q["types"] = self._types  # type: ignore[assignment]
        q["include_raw"] = True if self._include_raw else None  # type: ignore[assignment]
        return base + _query(q)

    def _connect(self) -> bool:
        """Connects, retrying with backoff; False when closed meanwhile."""
        c = self._client
        down_since: Optional[float] = None
        while not self._stop.is_set():
            h = c._headers({"Accept": "text/event-stream"})
            if self.last_id > 0:
                h["Last-Event-ID"] = str(self.last_id)
            conn = c._new_conn(max(c.timeout, 25.0))  # heartbeats come every 10 s
            err: Optional[BaseException] = None
            try:
                conn.request("GET", c._prefix + self._path(), headers=h)
                resp = conn.getresponse()
            except _NET_ERRORS as e:
                conn.close()
                err = e
            else:
                if resp.status == 200:
                    with self._lock:
                        if self._stop.is_set():
                            conn.close()
                            return False
                        self._conn, self._resp = conn, resp
                    if self._connected:
                        self.reconnects += 1
                    self._connected = True
                    return True
                rh = {k.lower(): v for k, v in resp.getheaders()}
                try:
                    data = resp.read()
                except _NET_ERRORS:
                    data = b""
                conn.close()
                if resp.status == 410:  # the session was deleted: the stream is over
                    self._stop.set()
                    return False
                if resp.status < 500 and resp.status != 429:
                    raise _problem(resp.status, rh, data)
                err = _problem(resp.status, rh, data)
            now = time.monotonic()
            if down_since is None:
                down_since = now
            if self._reconnect_timeout is not None and now - down_since > self._reconnect_timeout:
                raise ReelConnectionError("SSE %s: no connection for %.1f s: %s"
                                          % (self._path(), now - down_since, err)) from err
            self._failures += 1
            d = min(self._retry_s, 0.05 * (2 ** (self._failures - 1)))
            self._stop.wait(d / 2 + random.uniform(0, d / 2))
        return False

    def _read_event(self, resp: http.client.HTTPResponse) -> Optional[ReelEvent]:
        """The next event of the stream, or None when the connection ended or broke."""
        data: List[str] = []
        ev_id: Optional[str] = None
        while True:
            try:
                line = resp.readline()
            except (_NET_ERRORS + (ValueError, AttributeError)):  # closed under us
                return None
            if not line.endswith(b"\n"):
                return None  # end of stream (a message cut short is dropped)
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if not data:
                    ev_id = None
                    continue
                text = "\n".join(data)
                data = []
                ev: ReelEvent = json.loads(text)
                if ev_id is not None:
                    n = int(ev_id)
                elif self._session is None:
                    n = int(ev["position"])
                else:
                    n = int(ev["sequence"])
                ev_id = None
                if n <= self.last_id:
                    continue  # never hand out an event twice
                self.last_id = n
                return ev
            if line.startswith(b":"):
                continue
            name, _, value = line.decode("utf-8").partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "id":
                ev_id = value
            elif name == "retry" and value.isdigit():
                self._retry_s = max(0.1, int(value) / 1000)

    def __next__(self) -> ReelEvent:
        while True:
            if self._stop.is_set():
                self._disconnect()
                raise StopIteration
            resp = self._resp
            if resp is None:
                self._connect()
                continue
            ev = self._read_event(resp)
            if ev is None:
                self._disconnect()
                continue
            self._failures = 0
            return ev


__all__ = ["ReelClient", "ReelError", "ReelConnectionError", "Subscription", "StreamBody",
           "new_event_id", "quote_id", "DEFAULT_BASE_URL"]
