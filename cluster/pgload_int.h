/* pgload_int.h -- private to the PostgreSQL loader (pgload.c, pgrecord.c). */
#ifndef REEL_CLUSTER_PGLOAD_INT_H
#define REEL_CLUSTER_PGLOAD_INT_H

#include "store/buf.h"
#include "store/store.h"

/* Parses a session record as replay_write_session() renders it (the feed's "record",
 * the sink's changes.record) into 'r'; its metadata's msgpack goes into 'meta' and
 * r->metadata points there (borrowed until 'meta' changes). Unknown members are passed
 * over. REEL_OK, REEL_EINVALID_JSON / REEL_EINVALID_PARAMETER (not such a record),
 * REEL_ENOMEM. */
int cluster__record_parse(const char *json, size_t len, store_session_t *r, store_buf_t *meta);

#endif
