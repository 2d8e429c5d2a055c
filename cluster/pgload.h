/* pgload.h -- the PostgreSQL loader: sessions of one cell copied from the tables of
 * `reel sink postgres` into a store (docs/CLUSTER.md "Restore" and "What `reel cluster
 * restore` reads").
 *
 * The loader reads, in one REPEATABLE READ READ ONLY transaction (one snapshot, so a sink
 * writing meanwhile is not half seen), the cell's rows of 'events' (position order),
 * 'sessions', 'changes' and 'sink', and writes them with the store's STORE_OP_LOAD
 * (store.h): same sequences, event ids, times, bodies, body hashes (the kept original
 * hash of a body redacted after the fact, column 'kept_hash'), chain hashes; session
 * records with status (deleted sessions), metadata, version, runs, usage, retention and
 * trims (first_sequence, first_hash). Every chain is checked while loading, from its start
 * (zeros, or a trimmed session's first_hash) to the session's last_hash: a hash that
 * does not follow, a body whose SHA-256 is not its body_hash, a gap in the sequences, is
 * refused, naming the session and sequence; what was committed before stays (restore
 * refuses to run on a non-empty directory, so the operator starts again from scratch).
 *
 *   keep_positions 1 (restore): original positions; the change log comes back too, and
 *     the store's last position is the highest of the events, the changes and the sink's
 *     checkpoint, so that the cell's sink resumes exactly where PostgreSQL is. Meant for
 *     an empty store.
 *   keep_positions 0 (move): new positions of the target store, chains recomputed with
 *     them (the source chains are still checked), a 'put' change logged per record (the
 *     target's sink copies the sessions under its own cell); no change log copied. May
 *     run against a store that is serving. Calling it again catches up: a picked session
 *     that exists in the store gets the events after its last sequence (its chain is
 *     checked on from the source's hash there) and its record again.
 *
 * Rules:
 *  - Module cluster, prefix cluster_pgload; links libpq (only this file and the tools
 *    that call it do; cluster.h stays free of PostgreSQL).
 *  - Threads: one call at a time per store is the caller's business; the call blocks on
 *    PostgreSQL and on the store's committer (MUST NOT run on the committer thread or
 *    while the calling thread holds a store read). Callbacks run on the calling thread.
 *  - 'pick' gets each session id of the cell (borrowed until it returns; NUL-terminated,
 *    but may hold no NUL since PostgreSQL text cannot): 1 loads it, 0 skips it. NULL
 *    loads every session. Sessions a purge removed are not in the tables: never loaded.
 *  - Errors: REEL_OK, or a reel_err with 'err' (NUL-terminated, truncated to 'err_len')
 *    naming the bad value: REEL_EDAMAGED (the tables fail a check), REEL_EIO (PostgreSQL
 *    cannot be reached or a query failed: its message), REEL_ENOT_FOUND (no sink row for
 *    the cell: nothing was ever copied), REEL_ECONFLICT (keep_positions 1 and a picked
 *    session already in the store), or what the store answered.
 *  - What the tables never held is not restored: consumer cursors and Durable Streams
 *    subscriptions ('consumers' database), the store secret (sealed cursors), compression
 *    dictionaries (values are compressed again from the bodies), the cluster epoch;
 *    docs/CLUSTER.md "Restore" says what the operator does about each.
 */
#ifndef REEL_CLUSTER_PGLOAD_H
#define REEL_CLUSTER_PGLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Counts of what was loaded (also what 'progress' sees). */
typedef struct cluster_pgload_stats {
    uint64_t sessions;        /* session records written */
    uint64_t deleted;         /* ... of which deleted (tombstones, no events) */
    uint64_t trimmed;         /* ... of which start after sequence 1 (retention) */
    uint64_t events;          /* events written */
    uint64_t events_total;    /* events the snapshot holds for the cell (progress) */
    uint64_t redacted;        /* events whose body was redacted after the fact */
    uint64_t changes;         /* change log entries written (keep_positions 1) */
    uint64_t body_bytes;      /* bytes of the bodies written (uncompressed) */
    uint64_t last_position;   /* the highest source position of an event loaded */
    uint64_t checkpoint;      /* the cell's sink checkpoint: position ... */
    uint32_t checkpoint_index; /* ... and change index (the sink's cursor P.I) */
    int64_t sink_epoch;       /* the cell's sink epoch in the snapshot */
} cluster_pgload_stats_t;

typedef int (*cluster_pgload_pick_cb)(void *arg, const char *session, size_t len);
typedef void (*cluster_pgload_progress_cb)(void *arg, const cluster_pgload_stats_t *st);

typedef struct cluster_pgload_opt {
    const char *dsn;          /* libpq connection string (the sink's --dsn) */
    const char *schema;       /* the sink's --schema: [A-Za-z_][A-Za-z0-9_]*; NULL = "reel" */
    const char *cell;         /* the sink's --cell: whose rows are read */
    int keep_positions;       /* 1: restore, 0: move (above) */
    cluster_pgload_pick_cb pick; /* NULL: every session */
    void *pick_arg;
    cluster_pgload_progress_cb progress; /* NULL or called about every 10,000 events */
    void *progress_arg;
} cluster_pgload_opt_t;

/* Loads the cell's sessions that 'opt->pick' picks into 's' (open, read-write), as the
 * header says. '*st' (may be NULL) gets the counts, also on failure (what was done). */
int cluster_pgload(store_t *s, const cluster_pgload_opt_t *opt, cluster_pgload_stats_t *st,
                   char *err, size_t err_len);

#endif
