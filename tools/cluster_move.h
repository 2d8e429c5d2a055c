/* cluster_move.h -- the parts of `reel cluster move` (cluster_move.c: the steps and the
 * command; cluster_move_io.c: what it talks to -- the cells over HTTP, PostgreSQL, files
 * and nginx). Private to those two files; docs/CLUSTER.md "Moving shards" is the design.
 *
 * Rules: one move_t per run, on one thread; its libcurl handle and PostgreSQL connection
 * are used one call at a time. Functions return 0 or -1 after printing why (cmd_error),
 * unless they say otherwise.
 */
#ifndef REEL_TOOLS_CLUSTER_MOVE_H
#define REEL_TOOLS_CLUSTER_MOVE_H

#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "store/buf.h"

#define PROG "cluster move"

typedef struct settings {
    const char *map, *to, *dsn, *schema, *token, *nginx_conf, *nginx_listen, *reload;
    int ack; /* 0 local, 1 replica */
    int force, quiet, resume;
    unsigned long long drain_ms, timeout_s, cell_timeout_ms, ahead_rounds;
} settings_t;

typedef struct cell_state {
    int answered;       /* it answered the health check */
    uint64_t epoch;     /* its Reel-Cluster-Epoch */
    int old_owner;      /* it owns some of the shards now */
    int handed;         /* it took epoch E+1 and drained */
    uint64_t position;  /* its last cursor after the drain, or its sink's checkpoint */
    uint32_t index;
} cell_state_t;

typedef struct move {
    const settings_t *st;
    cluster_map_t *m;    /* epoch E, as read */
    uint8_t *set;        /* the shards to move */
    uint16_t *from;      /* from[shard]: its old owner (an index into m->cells) */
    int to;              /* the new owner */
    cell_state_t *cs;
    PGconn *pg;
    CURL *c;
    double t0, pause_start, pause_end;
    unsigned n_shards;
    uint64_t sessions, events, events_ahead;
} move_t;


/* An answer of a cell. */
typedef struct answer {
    long status;
    store_buf_t body;
    char epoch[24]; /* Reel-Cluster-Epoch */
    char error[300];
} answer_t;

/* Seconds on the monotonic clock. */
double move_now_s(void);
/* A step line on standard error (unless --quiet). */
void move_step(const move_t *mv, int n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* One request to cell 'ci' (body: JSON or NULL); 0 when it answered (any status), -1 when
 * it did not within 'timeout_ms' (a->error says why). */
int move_call(move_t *mv, size_t ci, const char *method, const char *path, const char *body,
              size_t len, long timeout_ms, answer_t *a);
/* PUT 'map' to cell 'ci': 1 when it took it and drained (its cursor in mv->cs[ci]), 0 when
 * it did not answer, -1 when it refused (printed). */
int move_push(move_t *mv, size_t ci, const store_buf_t *map, answer_t *a);
/* Pushes 'text' to every cell not marked in 'done', naming those that do not answer. */
void move_push_rest(move_t *mv, const store_buf_t *text, const uint8_t *done, answer_t *a);
/* POST /v1/cluster/load to the new owner for the shards of old owner 'from' (ahead of the
 * hand-over when 'precopy'); counts what it copied. */
int move_load(move_t *mv, size_t from, int precopy, answer_t *a);
/* Runs 'fmt' (its %s: the schema) with 'n' text parameters; the result when its status is
 * 'want', else NULL after printing 'what' failed. */
PGresult *move_pq(move_t *mv, const char *fmt, int n, const char *const *params,
                  ExecStatusType want, const char *what);
/* Cell 'ci''s sink checkpoint: 1 found, 0 no sink row, -1 failed; 'lock': FOR UPDATE. */
int move_checkpoint(move_t *mv, size_t ci, int lock, uint64_t *pos, uint32_t *index);
/* Step 4 for old owner 'ci' at map epoch 'epoch' (docs/CLUSTER.md "Moving shards"). */
int move_fence(move_t *mv, size_t ci, uint64_t epoch);
/* Waits until cell 'ci''s sink reached mv->cs[ci]'s cursor (--timeout). */
int move_catch_up(move_t *mv, size_t ci);
/* The map after the move at 'epoch', its shards 'loading' or not, and its text. NULL when
 * out of memory. */
cluster_map_t *move_next_map(const move_t *mv, uint64_t epoch, int loading, store_buf_t *text);
/* The map file, then nginx's configuration and its reload (--nginx-conf). */
int move_route(move_t *mv, const cluster_map_t *m, const store_buf_t *text);

#endif
