"""reel_client: a standard-library Python client for reel's HTTP API (docs/HTTP.md)."""
from .client import (DEFAULT_BASE_URL, ReelClient, ReelConnectionError, ReelError, StreamBody,
                     Subscription, new_event_id, quote_id)
from .cluster import (ClusterEvent, ClusterMap, ClusterReader, format_cursor,
                      parse_cursor)
from .types import (UNSET, AppendResult, EventPage, Json, NewEvent, ReelEvent, SessionPage,
                    SessionRecord)

__version__ = "0.1.0"
__all__ = ["ReelClient", "ReelError", "ReelConnectionError", "Subscription", "StreamBody",
           "EventPage", "SessionPage", "NewEvent", "ReelEvent", "AppendResult",
           "SessionRecord", "Json", "UNSET", "DEFAULT_BASE_URL", "new_event_id", "quote_id",
           "ClusterReader", "ClusterMap", "ClusterEvent", "parse_cursor", "format_cursor"]
