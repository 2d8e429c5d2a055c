"""Reads over every cell of a reel cluster (docs/CLUSTER.md "Cluster-wide reads").

Each cell serves its own feed, with positions of its own log; there is no order across
cells. ``ClusterReader.events`` reads every cell's feed under a **vector cursor**, one
position per cell, written ``"c1:120,c2:98,c3:0"`` (cells in id order): given back, it
resumes every cell exactly after what was yielded, so every event of the cluster is read
once, each session's in sequence order (a session lives on one cell). A cell the cursor does
not name is read from its start (a cell added since); one the map does not name is carried
along unchanged. ``ClusterReader.sessions`` lists every session record once: from the cell
the map gives its shard to. The text form and the rules are those of `reel cluster events`.
"""
import bisect
import collections
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from .client import ReelClient
from .types import ReelEvent, SessionRecord

Cursor = Dict[str, int]


def parse_cursor(text: str) -> Cursor:
    """``"c1:120,c2:98"`` -> ``{"c1": 120, "c2": 98}``; ``""`` is the start. ValueError
    names a malformed pair."""
    out: Cursor = {}
    for pair in text.split(",") if text else []:
        cell, sep, pos = pair.partition(":")
        ok = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        if not sep or not cell or len(cell) > 63 or set(cell) - ok or not pos.isdigit():
            raise ValueError("%r is not a vector cursor (CELL:POSITION pairs separated by ','): "
                             "bad pair %r" % (text, pair))
        out[cell] = int(pos)
    return out


def format_cursor(cursor: Mapping[str, int]) -> str:
    return ",".join("%s:%d" % (c, cursor[c]) for c in sorted(cursor))


@dataclass
class ClusterEvent:
    """An event as its cell's feed gives it, its cell, and the vector cursor right after it."""

    cell: str
    cursor: str
    event: ReelEvent


# ---- the shard rule (docs/CLUSTER.md "Shards"), for the owner of a session ----

def _murmur2(data: bytes) -> int:
    m, h = 0x5BD1E995, len(data) & 0xFFFFFFFF
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = data[n:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def _key(session_id: str) -> bytes:
    """The routing key: canonical percent-encoding; a stream session (``ds:...``) has its
    stream path's key."""
    if session_id.startswith("ds:"):
        base = session_id[3:].split(":", 1)
        if base[0] and (len(base) == 1 or base[1].isdigit()):
            try:
                path = bytearray()
                e, i = base[0], 0
                while i < len(e):
                    if e[i] == "~":
                        path.append(int(e[i + 1:i + 3], 16))
                        i += 3
                    else:
                        path += e[i].encode()
                        i += 1
                return urllib.parse.quote(bytes(path), safe="/~").encode()
            except ValueError:
                pass
    return urllib.parse.quote(session_id, safe="~").encode()


class ClusterMap:
    """A cluster map (docs/CLUSTER.md "Cluster map"): its cells and the owner of a session."""

    def __init__(self, doc: Union[str, Mapping[str, Any]]) -> None:
        if isinstance(doc, str):
            with open(doc) as f:
                doc = json.load(f)
        assert not isinstance(doc, str)
        self.v: int = int(doc["shards"])
        self.epoch: int = int(doc["epoch"])
        self.cells: Dict[str, str] = {c["id"]: c["address"] for c in doc["cells"]}
        self._owner: List[str] = [""] * self.v
        for c in doc["cells"]:
            for a, b in c["shards"]:
                for s in range(a, b + 1):
                    self._owner[s] = c["id"]
        self._bounds, last = [], 0
        for i in range(self.v):
            p = (i + 1) * 10000 // self.v - i * 10000 // self.v
            last = (last + p * 0xFFFFFFFF // 10000) & 0xFFFFFFFF
            self._bounds.append(last if i + 1 < self.v else 1 << 32)

    def shard(self, session_id: str) -> int:
        return bisect.bisect_right(self._bounds, _murmur2(_key(session_id)))

    def owner(self, session_id: str) -> str:
        return self._owner[self.shard(session_id)]


class ClusterReader:
    """Reads every cell of ``cluster_map`` (a ClusterMap, a map file's path or its parsed
    JSON). Cells are asked at their map addresses, or all through ``server`` (nginx), which
    picks each cell by the ``Reel-Cell`` request header. Other keyword arguments go to each
    cell's ReelClient (``token``, ``retries``, ``timeout``...)."""

    def __init__(self, cluster_map: Union[ClusterMap, str, Mapping[str, Any]],
                 server: Optional[str] = None, **client_kw: Any) -> None:
        self.map = cluster_map if isinstance(cluster_map, ClusterMap) else ClusterMap(cluster_map)
        self.server = server
        self.clients: Dict[str, ReelClient] = {
            c: ReelClient(server or "http://" + addr, **client_kw)
            for c, addr in self.map.cells.items()}

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    def __enter__(self) -> "ClusterReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _get(self, cell: str, path: str, timeout_extra: float = 0) -> Any:
        client = self.clients[cell]
        headers = {"Reel-Cell": cell}
        return client._json("GET", path, headers=headers,  # noqa: SLF001 (same package)
                            timeout=client.timeout + timeout_extra)

    def _page(self, cell: str, after: int, limit: int) -> Tuple[List[ReelEvent], int, bool]:
        # Moves (docs/CLUSTER.md "Cluster-wide reads"): events a move copied into this cell
        # are read at their old owner, not here (a cell without the option ignores it).
        j = self._get(cell, "/v1/events?after=%d&limit=%d&skip_copied=1" % (after, limit))
        if not isinstance(j.get("next_after"), int):
            raise ValueError("cell %s gave a sealed cursor (a token limited to session "
                             "prefixes): a vector cursor needs positions" % cell)
        return j["events"], int(j["next_after"]), bool(j["hasMore"])

    def events(self, after: str = "", limit: int = 1000, follow: bool = False,
               poll_interval: float = 0.5) -> Iterator[ClusterEvent]:
        """Every event after the vector cursor ``after``, each with its cell and the cursor
        after it, merged by commit time as `reel cluster events` does: a page of every cell
        that is not caught up is in hand before the earliest head is yielded (so a moved
        session's events come in sequence order). Without ``follow`` it ends once every
        cell is caught up; with it, it asks caught-up cells again every ``poll_interval``
        seconds."""
        cur = parse_cursor(after)
        cells = sorted(self.map.cells)
        for c in cells:
            cur.setdefault(c, 0)
        buf: Dict[str, "collections.deque[ReelEvent]"] = {c: collections.deque() for c in cells}
        more = {c: True for c in cells}
        page_after = {c: 0 for c in cells}
        polled = {c: 0.0 for c in cells}

        def fill(c: str) -> None:
            events, nxt, more[c] = self._page(c, cur[c], limit)
            buf[c].extend(events)
            page_after[c] = nxt
            polled[c] = time.monotonic()
            if not events:
                cur[c] = max(cur[c], nxt)

        while True:
            for c in cells:  # a cell whose next events may be earlier than those in hand
                if not buf[c] and (more[c] or (follow and
                                               time.monotonic() - polled[c] >= poll_interval)):
                    fill(c)
            heads = [c for c in cells if buf[c]]
            if not heads:
                if not follow:
                    return
                time.sleep(poll_interval)
                continue
            cell = min(heads, key=lambda c: (str(buf[c][0].get("time", "")), c))
            e = buf[cell].popleft()
            cur[cell] = int(e["position"])
            if not buf[cell]:
                cur[cell] = max(cur[cell], page_after[cell])
            yield ClusterEvent(cell, format_cursor(cur), e)

    def sessions(self, prefix: Optional[str] = None) -> Iterator[Tuple[str, SessionRecord]]:
        """(cell, record) for every session of the cluster, once: a record is kept only from
        the cell the map gives its shard to (a move's copy elsewhere is left out)."""
        for cell in sorted(self.map.cells):
            cursor: Optional[str] = None
            while True:
                q = {"limit": 1000, "prefix": prefix, "cursor": cursor}
                path = "/v1/sessions?" + urllib.parse.urlencode(
                    {k: v for k, v in q.items() if v is not None})
                j = self._get(cell, path)
                for rec in j["sessions"]:
                    if self.map.owner(rec["id"]) == cell:
                        yield cell, rec
                cursor = j.get("next_cursor")
                if not cursor:
                    break
