/* pgload_int.h -- private to the PostgreSQL loader (pgload.c, pgrecord.c, pgcol.c). */
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

/* Columns of a result in binary format (pgcol.c). */
typedef struct pg_result PGresult; /* libpq-fe.h's own typedef, repeated */
uint64_t cluster__col_u64(const PGresult *r, int row, int col);    /* bigint/integer; 0 NULL */
int cluster__col_hash(const PGresult *r, int row, int col, uint8_t out[32]); /* 1: a 32-byte bytea */
char *cluster__col_dup(const PGresult *r, int row, int col, size_t *len); /* NUL-ended; NULL: ENOMEM */

#endif
