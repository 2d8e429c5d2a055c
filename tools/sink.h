/* sink.h -- `reel sink postgres`: the feed with changes, copied into PostgreSQL exactly once
 * (docs/CLUSTER.md "Sink").
 *
 * cmd_sink.c follows a server's feed (GET /v1/events?changes=1&bodies=1&include_raw=1), or
 * writes the same page from a data directory; sink_feed.c parses a page into sink_item_t;
 * sink_pg.c writes a page into PostgreSQL in one transaction together with the checkpoint,
 * under the fencing epoch of the cell.
 *
 * Rules:
 *  - Items are borrowed from the page they were parsed from (its text and its arena):
 *    valid until the next page is parsed.
 *  - Strings are NUL-terminated; JSON texts (payload, raw, record, metadata) are the
 *    server's bytes as sent, NUL-terminated copies, or NULL for JSON null / absent.
 *  - One sink per cell at a time: a newer sink takes the cell's epoch; an older one's next
 *    transaction sees it and the sink stops with SINK_FENCED (exit status 3).
 */
#ifndef REEL_SINK_H
#define REEL_SINK_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "store/buf.h"
#include "tools/cmds.h"

#define SINK_FENCED 3 /* exit status of a sink that a newer one took the cell from */
#define SINK_SHARD_FENCED 4 /* stopped before an item of a shard moved away (sink_fence.c);
                             * the exit status of `--once` stopped there */

typedef struct sink_item {
    int is_change;
    uint64_t position;   /* an event's; a change's: the event position it follows */
    uint32_t index;      /* 0 for an event; a change's index after 'position' */
    const char *session; /* session id */
    uint64_t time_ms;    /* commit time of the event or change */
    /* an event */
    uint64_t sequence;
    const char *event_id, *type;
    const char *sender;        /* 'source', "" when null */
    const char *connection_id; /* raw.connectionId when a string, else "" */
    const char *native;        /* native_session_id or NULL */
    const char *client_time;   /* the JSON text of client_time, or NULL */
    uint64_t event_index;      /* raw.eventIndex when an integer, else the sequence */
    uint64_t created_at;       /* client_time in ms when it is one, else time_ms */
    const char *payload, *raw; /* JSON text of data and raw, or NULL */
    uint8_t hash[32];          /* chain hash */
    uint8_t body_hash[32];     /* SHA-256 of the body */
    int has_kept;              /* redacted after the fact: the feed gave "kept_hash" */
    uint8_t kept_hash[32];     /* SHA-256 of the original body (what the chain commits to) */
    const uint8_t *body;       /* the stored msgpack body */
    size_t body_len;
    int starts, ends;          /* a session.started / session.ended event */
    /* a change */
    int kind;                  /* enum store_change_kind */
    const char *change;        /* its name */
    const char *record;        /* the record's JSON text */
    const char *agent, *agent_session_id, *status, *metadata; /* from the record */
    uint64_t created_ms, updated_ms, ended_ms, first_ms; /* 0 = null */
    uint64_t last_sequence, event_count, runs, version;
    uint64_t first_sequence;   /* the first kept sequence (1 unless retention trimmed) */
    int has_last_hash;
    uint8_t last_hash[32];
    int has_first_hash;        /* a trimmed session: the chain hash its kept events start */
    uint8_t first_hash[32];    /* from ("first_hash") */
} sink_item_t;

typedef struct sink_pg {
    PGconn *conn;
    const char *schema; /* quoted identifier text, validated [A-Za-z_][A-Za-z0-9_]* */
    const char *cell;   /* the cell id (cluster map: A-Z a-z 0-9 - _, 1..63 bytes) */
    int64_t epoch;      /* ours, from sink_pg_claim() */
    uint64_t position;  /* the checkpoint: the cursor of the last item committed */
    uint32_t index;     /* (position, and 0 or a change's index) */
    char owner[160];
    /* Reads the event at 'position' again as the source serves it now (a redaction after
     * the fact rewrote its body): '*out' borrowed until the next call, NULL when the
     * source no longer has it. 0 or -1 (reported). Set by the caller. */
    int (*refetch)(void *arg, uint64_t position, const sink_item_t **out);
    void *refetch_arg;
    char fenced_by[200]; /* set when fenced: who holds the cell now */
    struct sink_fences *fences; /* the shard fences of this cell (sink_fence.c), or NULL */
    char fence_note[600];       /* set at SINK_SHARD_FENCED: the item stopped at, and why */
    size_t written;             /* items of the last page written (sent, then committed) */
    int fence_cut;              /* 1: it stopped before an item of a fenced shard */
    /* Replication as last checked (sink_pg_check_replication, after every commit and every
     * second while idle): 1 when synchronous_commit is on (or remote_apply), a synchronous
     * standby is configured and one is streaming as 'sync' or 'quorum', and no commit since
     * the last check had its wait for the standby cancelled; else 0 and 'why' says why.
     * serve --ack replica counts only reports that say 1. */
    int replicated;
    char why[160];
    int sync_cancelled; /* a commit's WARNING said its standby wait was cancelled */
    /* a COMMIT sent and not yet answered (sink_pg_write_send), and the cursor it commits */
    int pending;
    uint64_t pending_position;
    uint32_t pending_index;
} sink_pg_t;

/* ---- a page of the feed (sink_feed.c) ---- */

/* The strings of one page's items: sized for the page (3x its text), so running out means
 * a malformed page. */
typedef struct sink_arena {
    char *p;
    size_t len, cap;
} sink_arena_t;

typedef struct sink_parser {
    sink_arena_t a;
    const char *el;
    size_t el_len;
    int bad;
    /* the element's members, indexed once per element (cmd_json_members): each lookup
     * would otherwise scan the element again, most of a page's parse time */
    cmd_json_kv_t kv[48];
    int n_kv; /* -1: not indexed (a malformed element: lookups scan) */
} sink_parser_t;

/* One page parsed: its items borrow the arena. */
typedef struct sink_page {
    sink_parser_t ps;
    sink_item_t *items;
    size_t n, cap;
    uint64_t after; /* items must come after this cursor, in increasing order */
    uint32_t after_index;
} sink_page_t;

/* Parses 'body' (a page: {"events":[...],"hasMore":...}) into pg->items, whose cursors must
 * grow past (pg->after, pg->after_index). 0, or -1 when it is not such a page. '*more' is
 * its hasMore. */
int sink_page_parse(sink_page_t *pg, const store_buf_t *body, int *more);
/* The integer member 'name' of JSON object text 'json' (0 when absent; '*ok' may be NULL). */
uint64_t sink_json_u64(const char *json, size_t len, const char *name, int *ok);

/* ---- PostgreSQL (sink_pg.c) ---- */

/* Connects to 'dsn' and creates the schema and tables when missing. 0, or -1 after
 * printing why. */
int sink_pg_open(sink_pg_t *pg, const char *dsn);
void sink_pg_close(sink_pg_t *pg);
/* Takes the cell: bumps its epoch (fencing any older sink) and reads the checkpoint into
 * pg->position. 0 or -1. */
int sink_pg_claim(sink_pg_t *pg);
/* Writes 'n' items (a page, cursors increasing past the checkpoint) and the checkpoint in
 * one transaction. 0 (pg->position moved), SINK_SHARD_FENCED (only the pg->written items
 * before a fenced one were written, pg->fence_note says which), SINK_FENCED (nothing
 * written: another sink holds the cell, pg->fenced_by says which), or -1 after printing why (the transaction rolled
 * back; the connection may be gone: sink_pg_ok()). */
int sink_pg_write(sink_pg_t *pg, const sink_item_t *items, size_t n);
/* sink_pg_write() in two halves, so that the caller can read the next page while
 * PostgreSQL commits (the COMMIT waits for the fsync and the synchronous standby): _send
 * writes 'n' >= 1 items and the checkpoint and sends the COMMIT without waiting (0,
 * SINK_FENCED or -1 as above, nothing pending unless 0; at a shard fence 0 with
 * pg->fence_cut set and only pg->written items in the transaction); _finish waits for its answer
 * (0: pg->position moved and the replication was checked again; -1 after printing why).
 * Nothing else may use the connection in between. */
int sink_pg_write_send(sink_pg_t *pg, const sink_item_t *items, size_t n);
int sink_pg_write_finish(sink_pg_t *pg);
/* 1 when the connection is usable. */
int sink_pg_ok(const sink_pg_t *pg);
/* Checks how PostgreSQL replicates (see sink_pg_t.replicated) and sets pg->replicated and
 * pg->why. 0, or -1 when the query failed (then replicated is 0). */
int sink_pg_check_replication(sink_pg_t *pg);

/* ---- shard fences (sink_fence.c; docs/CLUSTER.md "Moving shards") ---- */

/* Creates the shard_fence table and the sink.fences column when missing. 0 or -1. */
int sink_fence_schema(PGconn *conn, const char *schema);
/* Inside a page transaction that holds the cell's row lock: '*keep' = how many of the
 * 'n' items come before the first one of a shard fenced after an earlier cursor
 * (pg->fence_note then names it), else 'n'. 0 or -1 (reported). */
int sink_fence_cut(sink_pg_t *pg, const sink_item_t *items, size_t n, size_t *keep);
void sink_fence_free(sink_pg_t *pg);

#endif
