/* pgload.c -- the PostgreSQL loader (pgload.h): a cell's rows of `reel sink postgres`'s
 * tables written into a store with STORE_OP_LOAD.
 *
 * Three passes over one REPEATABLE READ snapshot:
 *  1. sessions: every row of the cell's 'sessions' with its last change's record (the
 *     newest row of 'changes' for it, not a purge's), picked or not by the caller;
 *  2. events in position order (a cursor, FETCH in binary), each run of one session's
 *     events one batch; the batches of a fetch are submitted together and waited for (the
 *     committer groups them), so positions go in increasing, as MDB_APPEND wants;
 *  3. records: the last change's record, moved on by the events after it exactly as the
 *     committer moves a record on (status, ended_at, runs, updated_at, usage), which the
 *     sink's own columns do not all follow (a reel.redacted event does not make an ended
 *     session active; the usage summary has no column);
 *  4. (restore) the change log under its own keys, and the last position.
 */
#include <libpq-fe.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/pgload.h"
#include "cluster/pgload_int.h"
#include "ingest/ingest.h"
#include "store/json.h"

#define FETCH_ROWS 2000          /* rows a fetch asks for at most ... */
#define FETCH_BYTES (32u << 20)  /* ... and about this many bytes of bodies (big events) */
#define RECORD_WINDOW 256
#define CHANGE_BATCH 500

typedef struct ps_sess {
    char *id;
    size_t id_len;
    int picked;
    int64_t row_created;              /* sessions.created_at */
    int has_last_hash, has_first_hash;
    uint8_t last_hash[32], first_hash[32];
    char *change;                     /* the last change's record (JSON), or NULL */
    uint64_t change_pos;              /* its position: events after it move the record on */
    uint64_t skip_to;                 /* move: sequences up to it are in the store already */
    uint8_t src_last[32];             /* the source's chain hash of the last event seen */
    /* what the events after the change did (applied to its record in pass 3) */
    int moved, status_set, status;
    uint64_t last_seq;                /* the last sequence of an event after the change */
    int64_t updated, ended, first_event;
    uint64_t runs, in_tok, out_tok, cost, turns;
    char model[STORE_NAME_MAX + 1];
    size_t model_len;
} ps_sess_t;

typedef struct loader {
    store_t *s;
    const cluster_pgload_opt_t *opt;
    PGconn *conn;
    char schema[80];
    cluster_pgload_stats_t st;
    ps_sess_t *ss;
    size_t n_ss;
    char *err;
    size_t err_len;
    uint64_t progress_at;
    /* waiting for submitted batches */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
} loader_t;

static int fail(loader_t *L, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader_t *L, int rc, const char *fmt, ...)
{
    if (L->err && L->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err, L->err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- PostgreSQL ---- */

/* Runs 'sql' with text parameters, results in binary; NULL after fail() on an error. */
static PGresult *query(loader_t *L, const char *sql, int n, const char *const *params,
                       const char *what)
{
    PGresult *res = PQexecParams(L->conn, sql, n, NULL, params, NULL, NULL, 1);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    fail(L, REEL_EIO, "PostgreSQL: %s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}

/* ---- pass 1: sessions ---- */

static int by_id(const void *a, const void *b)
{
    const ps_sess_t *x = a, *y = b;
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);
    return c ? c : (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

static ps_sess_t *find(loader_t *L, const char *id, size_t len)
{
    ps_sess_t key = {.id = (char *)id, .id_len = len};
    return bsearch(&key, L->ss, L->n_ss, sizeof *L->ss, by_id);
}

/* Whether the store has the session already: restore refuses, move catches up. */
static int against_store(loader_t *L, ps_sess_t *x)
{
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(L->s, &r);
    if (rc)
        return fail(L, rc, "reading the store: %s", reel_strerror(rc));
    store_read_see_all(&r); /* --ack replica: the committer's view, not the readers' */
    rc = store_session_get(&r, x->id, x->id_len, &rec);
    store_read_end(&r);
    if (rc == REEL_ESESSION_NOT_FOUND)
        return REEL_OK;
    if (rc)
        return fail(L, rc, "reading session '%s' of the store: %s", x->id, reel_strerror(rc));
    if (L->opt->keep_positions)
        return fail(L, REEL_ECONFLICT, "session '%s' is in the store already: restore "
                    "writes into an empty store", x->id);
    if (rec.status == STORE_DELETED)
        return fail(L, REEL_ECONFLICT, "session '%s' is deleted in the store", x->id);
    x->skip_to = rec.last_sequence;
    return REEL_OK;
}

static int load_sessions(loader_t *L)
{
    char sql[512];
    const char *cell = L->opt->cell;
    snprintf(sql, sizeof sql, "SELECT id, created_at, last_hash, first_hash FROM \"%s\".sessions"
             " WHERE cell = $1", L->schema);
    PGresult *r = query(L, sql, 1, &cell, "reading the sessions");
    if (!r)
        return REEL_EIO;
    int n = PQntuples(r);
    L->ss = calloc((size_t)n + 1, sizeof *L->ss);
    if (!L->ss) {
        PQclear(r);
        return fail(L, REEL_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        ps_sess_t *x = &L->ss[L->n_ss++];
        x->id = cluster__col_dup(r, i, 0, &x->id_len);
        x->row_created = (int64_t)cluster__col_u64(r, i, 1);
        x->has_last_hash = cluster__col_hash(r, i, 2, x->last_hash);
        x->has_first_hash = cluster__col_hash(r, i, 3, x->first_hash);
        if (x->has_first_hash) /* a trimmed session's chain starts there */
            memcpy(x->src_last, x->first_hash, 32);
        if (!x->id) {
            PQclear(r);
            return fail(L, REEL_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    qsort(L->ss, L->n_ss, sizeof *L->ss, by_id);
    /* The last change of each session that is not a purge (a purged id used again). */
    snprintf(sql, sizeof sql, "SELECT DISTINCT ON (session_id) session_id, position, kind, "
             "record FROM \"%s\".changes WHERE cell = $1 ORDER BY session_id, position DESC, "
             "change_index DESC", L->schema);
    if (!(r = query(L, sql, 1, &cell, "reading the last changes")))
        return REEL_EIO;
    for (int i = 0; i < PQntuples(r); i++) {
        ps_sess_t *x = find(L, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
        if (!x || cluster__col_u64(r, i, 2) == STORE_CHANGE_PURGE)
            continue; /* purged: gone, or made again by an append that logged nothing */
        x->change_pos = cluster__col_u64(r, i, 1);
        if (!(x->change = cluster__col_dup(r, i, 3, NULL))) {
            PQclear(r);
            return fail(L, REEL_ENOMEM, "out of memory");
        }
    }
    PQclear(r);
    int rc = REEL_OK;
    for (size_t i = 0; i < L->n_ss && !rc; i++) {
        ps_sess_t *x = &L->ss[i];
        x->picked = !L->opt->pick || L->opt->pick(L->opt->pick_arg, x->id, x->id_len);
        if (x->picked)
            rc = against_store(L, x);
    }
    return rc;
}

/* ---- submitting batches ---- */

static void done(store_batch_t *b, void *arg)
{
    loader_t *L = arg;
    pthread_mutex_lock(&L->mu);
    L->pending--;
    pthread_cond_signal(&L->cv);
    pthread_mutex_unlock(&L->mu);
    (void)b;
}

/* Submits batches [0, n) and waits for all of them; the first error, named. */
static int run_batches(loader_t *L, store_batch_t *b, size_t n)
{
    size_t submitted = 0;
    int rc = REEL_OK;
    for (; submitted < n; submitted++) {
        b[submitted].done = done;
        b[submitted].done_arg = L;
        pthread_mutex_lock(&L->mu);
        L->pending++;
        pthread_mutex_unlock(&L->mu);
        if ((rc = store_submit(L->s, &b[submitted]))) {
            pthread_mutex_lock(&L->mu);
            L->pending--;
            pthread_mutex_unlock(&L->mu);
            fail(L, rc, "writing into the store: %s: %s", reel_strerror(rc), store_last_error());
            break;
        }
    }
    pthread_mutex_lock(&L->mu);
    while (L->pending)
        pthread_cond_wait(&L->cv, &L->mu);
    pthread_mutex_unlock(&L->mu);
    for (size_t i = 0; i < submitted && !rc; i++) {
        if (!(rc = b[i].err))
            continue;
        const store_load_t *l = b[i].load;
        if (l->why[0] && strstr(l->why, "chain hash"))
            fail(L, rc, "%s (the rows were changed in PostgreSQL, or written by a sink older "
                 "than restore that did not keep the kept_hash of a body redacted after the "
                 "fact: see docs/CLUSTER.md \"Schema\")", l->why);
        else if (l->why[0])
            fail(L, rc, "%s", l->why);
        else
            fail(L, rc, "loading session '%.*s': %s%s%s", (int)b[i].session_len, b[i].session,
                 reel_strerror(rc), rc == REEL_ECONFLICT ? " (its chain in the store does "
                 "not end where the source's goes on)" : "", rc == REEL_EIO || rc == REEL_EFULL
                 ? store_last_error() : "");
    }
    return rc;
}

/* ---- pass 2: events ---- */

typedef struct chunk {
    store_load_event_t *ev;
    size_t *body_off, *id_off;
    size_t n;
    store_batch_t *b;
    store_load_t *l;
    size_t *first; /* per batch: its first event */
    size_t nb;
    size_t cap_ev, cap_bo, cap_io, cap_b, cap_l, cap_f; /* of each array above */
    store_buf_t arena, tmp;
} chunk_t;

/* The event id: body element 0 (a str). */
static int event_id_of(const uint8_t *body, size_t len, const uint8_t **id, size_t *id_len)
{
    store_mp_t m = {body, body + len};
    store_mp_obj_t arr, o;
    if (store_mp_next(&m, &arr) || arr.type != STORE_MP_ARRAY || !arr.u ||
        store_mp_next(&m, &o) || o.type != STORE_MP_STR || !o.len || o.len > STORE_EVENT_ID_MAX)
        return -1;
    *id = o.ptr, *id_len = o.len;
    return 0;
}

static uint64_t sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* What an event after the session's last change does to its record (commit.c
 * put_event and apply_redact). */
static void move_on(ps_sess_t *x, const char *type, size_t type_len, uint64_t t,
                    const uint8_t *body, size_t len)
{
    x->moved = 1;
    x->updated = (int64_t)t;
    if (!x->first_event)
        x->first_event = (int64_t)t;
    if (type_len == 13 && !memcmp(type, "reel.redacted", 13)) {
        /* the record of a redaction neither starts nor ends a run */
    } else if (type_len == 13 && !memcmp(type, "session.ended", 13)) {
        x->status_set = 1, x->status = STORE_ENDED, x->ended = (int64_t)t;
    } else {
        x->status_set = 1, x->status = STORE_ACTIVE;
    }
    if (type_len == 15 && !memcmp(type, "session.started", 15))
        x->runs++;
    store_usage_t u;
    ingest_usage_of_body(body, len, &u);
    if (u.model && u.model_len <= STORE_NAME_MAX) {
        memcpy(x->model, u.model, u.model_len);
        x->model_len = u.model_len;
    }
    x->in_tok = sat(x->in_tok, u.input_tokens);
    x->out_tok = sat(x->out_tok, u.output_tokens);
    x->cost = sat(x->cost, u.cost_nusd);
    x->turns = sat(x->turns, u.turns);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -1;
    *p = q, *cap = c;
    return 0;
}

/* Adds row 'i' of a fetch to the chunk ('x' its session). */
static int add_event(loader_t *L, chunk_t *c, ps_sess_t *x, const PGresult *r, int i)
{
    uint64_t pos = cluster__col_u64(r, i, 0), seq = cluster__col_u64(r, i, 2), t = cluster__col_u64(r, i, 3);
    const uint8_t *body = (const uint8_t *)PQgetvalue(r, i, 6);
    size_t blen = (size_t)PQgetlength(r, i, 6);
    uint8_t chain[32], bh[32], kept[32], h[32];
    int has_kept = cluster__col_hash(r, i, 7, kept);
    if (!cluster__col_hash(r, i, 4, chain) || !cluster__col_hash(r, i, 5, bh))
        return fail(L, REEL_EDAMAGED, "session '%s', sequence %llu (position %llu): "
                    "chain_hash or body_hash is not 32 bytes", x->id,
                    (unsigned long long)seq, (unsigned long long)pos);
    SHA256(body, blen, h);
    const uint8_t *eid;
    size_t eid_len;
    if (memcmp(h, bh, 32) || event_id_of(body, blen, &eid, &eid_len))
        return fail(L, REEL_EDAMAGED, "session '%s', sequence %llu (position %llu): %s",
                    x->id, (unsigned long long)seq, (unsigned long long)pos,
                    memcmp(h, bh, 32) ? "the body's SHA-256 is not its body_hash"
                                      : "the body is not an event (no event id)");
    /* A new batch unless the last one is this session's and ends right before. */
    int same = c->nb && !strcmp(c->b[c->nb - 1].session, x->id);
    if (!same) {
        if (grow((void **)&c->b, &c->cap_b, c->nb + 1, sizeof *c->b) ||
            grow((void **)&c->l, &c->cap_l, c->nb + 1, sizeof *c->l) ||
            grow((void **)&c->first, &c->cap_f, c->nb + 1, sizeof *c->first))
            return fail(L, REEL_ENOMEM, "out of memory");
        store_batch_init(&c->b[c->nb], STORE_OP_LOAD, x->id, x->id_len);
        memset(&c->l[c->nb], 0, sizeof c->l[c->nb]);
        c->l[c->nb].keep_positions = L->opt->keep_positions;
        memcpy(c->l[c->nb].src_prev, x->src_last, 32);
        c->first[c->nb] = c->n;
        c->nb++;
    }
    if (grow((void **)&c->ev, &c->cap_ev, c->n + 1, sizeof *c->ev) ||
        grow((void **)&c->body_off, &c->cap_bo, c->n + 1, sizeof *c->body_off) ||
        grow((void **)&c->id_off, &c->cap_io, c->n + 1, sizeof *c->id_off))
        return fail(L, REEL_ENOMEM, "out of memory");
    store_load_event_t *e = &c->ev[c->n];
    memset(e, 0, sizeof *e);
    e->sequence = seq, e->position = pos, e->time_ms = t;
    memcpy(e->hash, chain, 32);
    memcpy(e->body_hash, has_kept ? kept : bh, 32);
    e->event_id_len = eid_len;
    c->id_off[c->n] = c->arena.len;
    store_buf_put(&c->arena, eid, eid_len);
    store_buf_clear(&c->tmp);
    if (store_body_encode(body, blen, &c->tmp, h) || store_buf_failed(&c->tmp))
        return fail(L, REEL_ENOMEM, "out of memory");
    c->body_off[c->n] = c->arena.len;
    store_buf_putc(&c->arena, (char)(c->tmp.data[0] | (has_kept ? STORE_FLAG_REDACTED : 0)));
    if (has_kept)
        store_buf_put(&c->arena, kept, 32);
    store_buf_put(&c->arena, c->tmp.data + 1, c->tmp.len - 1);
    e->body_len = c->arena.len - c->body_off[c->n];
    c->n++;
    memcpy(x->src_last, chain, 32);
    if (pos > x->change_pos) {
        move_on(x, PQgetvalue(r, i, 8), (size_t)PQgetlength(r, i, 8), t, body, blen);
        x->last_seq = seq;
    }
    L->st.events++;
    L->st.body_bytes += blen;
    L->st.redacted += has_kept != 0;
    if (pos > L->st.last_position)
        L->st.last_position = pos;
    return REEL_OK;
}

/* An event the store has already (move, catching up): the chain goes on from it, and the
 * record is built again from the last change, so it still counts there. */
static void skip_event(ps_sess_t *x, const PGresult *r, int i)
{
    uint64_t pos = cluster__col_u64(r, i, 0);
    cluster__col_hash(r, i, 4, x->src_last);
    if (pos > x->change_pos) {
        move_on(x, PQgetvalue(r, i, 8), (size_t)PQgetlength(r, i, 8), cluster__col_u64(r, i, 3),
                (const uint8_t *)PQgetvalue(r, i, 6), (size_t)PQgetlength(r, i, 6));
        x->last_seq = cluster__col_u64(r, i, 2);
    }
}

/* Points the chunk's events into its arena and its batches at their events, then runs it. */
static int run_chunk(loader_t *L, chunk_t *c)
{
    if (store_buf_failed(&c->arena))
        return fail(L, REEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++) {
        c->ev[i].event_id = (const char *)c->arena.data + c->id_off[i];
        c->ev[i].body = c->arena.data + c->body_off[i];
    }
    for (size_t k = 0; k < c->nb; k++) {
        size_t end = k + 1 < c->nb ? c->first[k + 1] : c->n;
        c->l[k].events = &c->ev[c->first[k]];
        c->l[k].n_events = end - c->first[k];
        c->b[k].load = &c->l[k];
    }
    int rc = run_batches(L, c->b, c->nb);
    c->n = c->nb = 0;
    store_buf_clear(&c->arena);
    return rc;
}

static void progress(loader_t *L, int force)
{
    if (L->opt->progress && (force || L->st.events >= L->progress_at)) {
        L->opt->progress(L->opt->progress_arg, &L->st);
        L->progress_at = L->st.events + 10000;
    }
}

/* The picked sessions' ids as a PostgreSQL text[] literal (a move picks a few shards of a
 * cell: its reads are then the size of what moves, through the (cell, session_id,
 * sequence) index, not of the whole cell). */
static int picked_array(loader_t *L, store_buf_t *b)
{
    store_buf_putc(b, '{');
    int first = 1;
    for (size_t i = 0; i < L->n_ss; i++) {
        if (!L->ss[i].picked)
            continue;
        store_buf_puts(b, first ? "\"" : ",\"");
        for (size_t k = 0; k < L->ss[i].id_len; k++) {
            char ch = L->ss[i].id[k];
            if (ch == '"' || ch == '\\')
                store_buf_putc(b, '\\');
            store_buf_putc(b, ch);
        }
        store_buf_putc(b, '"');
        first = 0;
    }
    store_buf_putc(b, '}');
    return store_buf_failed(b) ? fail(L, REEL_ENOMEM, "out of memory") : REEL_OK;
}

static int load_events(loader_t *L)
{
    char sql[600];
    const char *params[2] = {L->opt->cell, NULL};
    store_buf_t ids = STORE_BUF_INIT;
    if (L->opt->pick && picked_array(L, &ids)) {
        store_buf_release(&ids);
        return REEL_ENOMEM;
    }
    if (L->opt->pick)
        params[1] = store_buf_cstr(&ids);
    snprintf(sql, sizeof sql, "DECLARE ev NO SCROLL CURSOR FOR SELECT position, session_id, "
             "sequence, time_ms, chain_hash, body_hash, body, kept_hash, type FROM \"%s\".events"
             " WHERE cell = $1%s ORDER BY position", L->schema,
             L->opt->pick ? " AND session_id = ANY($2::text[])" : "");
    PGresult *r = query(L, sql, L->opt->pick ? 2 : 1, params, "reading the events");
    store_buf_release(&ids);
    if (!r)
        return REEL_EIO;
    PQclear(r);
    char fetch_sql[32];
    int rows = FETCH_ROWS;
    chunk_t c = {0};
    c.arena = (store_buf_t)STORE_BUF_INIT;
    c.tmp = (store_buf_t)STORE_BUF_INIT;
    int rc = REEL_OK;
    while (!rc) {
        snprintf(fetch_sql, sizeof fetch_sql, "FETCH %d FROM ev", rows);
        if (!(r = query(L, fetch_sql, 0, NULL, "reading the events"))) {
            rc = REEL_EIO;
            break;
        }
        int n = PQntuples(r);
        size_t bytes = 0;
        for (int i = 0; i < n && !rc; i++) {
            bytes += (size_t)PQgetlength(r, i, 6);
            ps_sess_t *x = find(L, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1));
            uint64_t seq = cluster__col_u64(r, i, 2);
            if (!x)
                rc = fail(L, REEL_EDAMAGED, "the event at position %llu belongs to session "
                          "'%.200s', which has no row in %s.sessions",
                          (unsigned long long)cluster__col_u64(r, i, 0), PQgetvalue(r, i, 1), L->schema);
            else if (!x->picked)
                continue;
            else if (seq <= x->skip_to) /* move: in the store already */
                skip_event(x, r, i);
            else
                rc = add_event(L, &c, x, r, i);
        }
        if (!rc && c.n)
            rc = run_chunk(L, &c);
        PQclear(r);
        progress(L, 0);
        if (n < rows)
            break;
        /* The next fetch holds about FETCH_BYTES of bodies: memory stays bounded with
         * events of megabytes, and small events still come 2,000 at a time. */
        size_t per = bytes / (size_t)n + 1;
        rows = FETCH_BYTES / per > FETCH_ROWS ? FETCH_ROWS : (int)(FETCH_BYTES / per);
        if (rows < 1)
            rows = 1;
    }
    free(c.ev), free(c.body_off), free(c.id_off), free(c.b), free(c.l), free(c.first);
    store_buf_release(&c.arena);
    store_buf_release(&c.tmp);
    if (!rc && (r = query(L, "CLOSE ev", 0, NULL, "closing the cursor")))
        PQclear(r);
    return rc;
}

/* ---- pass 3: records ---- */

/* The session's record now: its last change's record moved on by the events after it; a
 * session no change names (made by a plain append) starts as the committer makes one. */
static int build_record(loader_t *L, ps_sess_t *x, store_session_t *r, store_buf_t *meta)
{
    if (x->change) {
        int rc = cluster__record_parse(x->change, strlen(x->change), r, meta);
        if (rc)
            return fail(L, REEL_EDAMAGED, "session '%s': its last change's record does not "
                        "parse (%s)", x->id, reel_strerror(rc));
    } else {
        memset(r, 0, sizeof *r);
        r->created_ms = r->updated_ms = x->row_created;
        r->version = 1;
        r->first_sequence = 1;
    }
    memcpy(r->id, x->id, x->id_len);
    r->id_len = x->id_len;
    if (x->moved) {
        r->last_sequence = x->last_seq;
        r->updated_ms = x->updated;
        if (!r->first_event_ms)
            r->first_event_ms = x->first_event;
        if (x->status_set)
            r->status = x->status;
        if (x->ended)
            r->ended_ms = x->ended;
        r->runs += x->runs;
        if (x->model_len) {
            memcpy(r->model, x->model, x->model_len);
            r->model[x->model_len] = 0;
            r->model_len = x->model_len;
        }
        r->input_tokens = sat(r->input_tokens, x->in_tok);
        r->output_tokens = sat(r->output_tokens, x->out_tok);
        r->cost_nusd = sat(r->cost_nusd, x->cost);
        r->turns = sat(r->turns, x->turns);
    }
    /* Where the chain ends and (trimmed) starts, for a session without events here. */
    if (x->has_last_hash)
        memcpy(r->last_hash, x->last_hash, 32);
    if (r->first_sequence > 1 && !x->has_first_hash && r->status != STORE_DELETED)
        return fail(L, REEL_EDAMAGED, "session '%s' was trimmed to sequence %llu but "
                    "sessions.first_hash is empty (written by a sink older than restore: "
                    "the chain of its kept events cannot be checked)", x->id,
                    (unsigned long long)r->first_sequence);
    if (r->first_sequence > 1)
        memcpy(r->first_prev_hash, x->first_hash, 32);
    if (r->first_sequence > 1 && r->last_sequence + 1 == r->first_sequence)
        memcpy(r->last_hash, x->first_hash, 32); /* trimmed to nothing */
    L->st.sessions++;
    L->st.deleted += r->status == STORE_DELETED;
    L->st.trimmed += r->first_sequence > 1;
    return REEL_OK;
}

static int load_records(loader_t *L)
{
    store_session_t *recs = calloc(RECORD_WINDOW, sizeof *recs);
    store_buf_t *meta = calloc(RECORD_WINDOW, sizeof *meta);
    store_load_t *l = calloc(RECORD_WINDOW, sizeof *l);
    store_batch_t *b = calloc(RECORD_WINDOW, sizeof *b);
    int rc = recs && meta && l && b ? REEL_OK : fail(L, REEL_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i <= L->n_ss && !rc; i++) {
        if (i < L->n_ss && L->ss[i].picked) {
            ps_sess_t *x = &L->ss[i];
            if ((rc = build_record(L, x, &recs[n], &meta[n])))
                break;
            memset(&l[n], 0, sizeof l[n]);
            l[n].keep_positions = L->opt->keep_positions;
            l[n].record = &recs[n];
            store_batch_init(&b[n], STORE_OP_LOAD, x->id, x->id_len);
            b[n].load = &l[n];
            n++;
        }
        if (n && (n == RECORD_WINDOW || i == L->n_ss)) {
            rc = run_batches(L, b, n);
            n = 0;
        }
    }
    for (size_t i = 0; meta && i < RECORD_WINDOW; i++)
        store_buf_release(&meta[i]);
    free(recs), free(meta), free(l), free(b);
    return rc;
}

/* ---- pass 4 (restore): the change log and the last position ---- */

static int change_window(loader_t *L, store_load_change_t *ch, size_t n, uint64_t min_last)
{
    store_load_t l = {.keep_positions = 1, .changes = ch, .n_changes = n,
                      .min_last_position = min_last};
    store_batch_t b;
    const char *id = n ? ch[0].record->id : "restore";
    store_batch_init(&b, STORE_OP_LOAD, id, n ? ch[0].record->id_len : strlen(id));
    b.load = &l;
    return run_batches(L, &b, 1);
}

static int load_changes(loader_t *L)
{
    char sql[512];
    const char *cell = L->opt->cell;
    snprintf(sql, sizeof sql, "DECLARE ch NO SCROLL CURSOR FOR SELECT position, change_index, "
             "kind, time_ms, record, session_id, last_hash, first_hash FROM \"%s\".changes "
             "WHERE cell = $1 ORDER BY position, change_index", L->schema);
    PGresult *r = query(L, sql, 1, &cell, "reading the changes");
    if (!r)
        return REEL_EIO;
    PQclear(r);
    store_load_change_t *ch = calloc(CHANGE_BATCH, sizeof *ch);
    store_session_t *recs = calloc(CHANGE_BATCH, sizeof *recs);
    store_buf_t *meta = calloc(CHANGE_BATCH, sizeof *meta);
    int rc = ch && recs && meta ? REEL_OK : fail(L, REEL_ENOMEM, "out of memory");
    char fetch_sql[32];
    snprintf(fetch_sql, sizeof fetch_sql, "FETCH %d FROM ch", CHANGE_BATCH);
    uint64_t last = 0;
    while (!rc) {
        if (!(r = query(L, fetch_sql, 0, NULL, "reading the changes"))) {
            rc = REEL_EIO;
            break;
        }
        int n = PQntuples(r);
        size_t k = 0;
        for (int i = 0; i < n && !rc; i++) {
            const char *sid = PQgetvalue(r, i, 5);
            size_t sid_len = (size_t)PQgetlength(r, i, 5);
            if (L->opt->pick && !L->opt->pick(L->opt->pick_arg, sid, sid_len))
                continue;
            store_load_change_t *c = &ch[k];
            c->position = cluster__col_u64(r, i, 0);
            c->index = (uint32_t)cluster__col_u64(r, i, 1);
            c->kind = (int)(uint32_t)cluster__col_u64(r, i, 2);
            c->time_ms = cluster__col_u64(r, i, 3);
            rc = cluster__record_parse(PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4),
                                       &recs[k], &meta[k]);
            if (rc)
                rc = fail(L, REEL_EDAMAGED, "the change at %llu.%u of session '%.200s' does "
                          "not hold a record (%s)", (unsigned long long)c->position, c->index,
                          sid, reel_strerror(rc));
            /* The hashes a change carries beside its record (where the chain ended and,
             * trimmed, started); a sink older than restore kept neither. */
            if (!rc && !cluster__col_hash(r, i, 6, recs[k].last_hash) && recs[k].last_sequence)
                rc = fail(L, REEL_EDAMAGED, "the change at %llu.%u of session '%.200s' has no "
                          "last_hash (written by a sink older than restore)",
                          (unsigned long long)c->position, c->index, sid);
            if (!rc && recs[k].first_sequence > 1)
                cluster__col_hash(r, i, 7, recs[k].first_prev_hash);
            c->record = &recs[k];
            last = c->position;
            k++;
        }
        PQclear(r);
        if (!rc && k)
            rc = change_window(L, ch, k, 0);
        L->st.changes += rc ? 0 : k;
        if (n < CHANGE_BATCH)
            break;
    }
    for (size_t i = 0; meta && i < CHANGE_BATCH; i++)
        store_buf_release(&meta[i]);
    free(ch), free(recs), free(meta);
    if (!rc && (r = query(L, "CLOSE ch", 0, NULL, "closing the cursor")))
        PQclear(r);
    /* The next position continues after the events, the changes and the checkpoint. */
    uint64_t min = L->st.checkpoint > last ? L->st.checkpoint : last;
    return rc ? rc : change_window(L, NULL, 0, min);
}

/* ---- the whole load ---- */

static int valid_schema(const char *s)
{
    if (!s || !*s || strlen(s) > 63 || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static int read_sink_row(loader_t *L)
{
    char sql[512];
    const char *cell = L->opt->cell;
    snprintf(sql, sizeof sql, "SELECT epoch, position, change_index, (SELECT count(*) FROM "
             "\"%s\".events WHERE cell = $1) FROM \"%s\".sink WHERE cell = $1", L->schema,
             L->schema);
    PGresult *r = query(L, sql, 1, &cell, "reading the sink's checkpoint");
    if (!r)
        return REEL_EIO;
    int rc = REEL_OK;
    if (PQntuples(r) != 1) {
        rc = fail(L, REEL_ENOT_FOUND, "no sink row for cell '%s' in %s.sink: nothing of it "
                  "was ever copied to this database", L->opt->cell, L->schema);
    } else {
        L->st.sink_epoch = (int64_t)cluster__col_u64(r, 0, 0);
        L->st.checkpoint = cluster__col_u64(r, 0, 1);
        L->st.checkpoint_index = (uint32_t)cluster__col_u64(r, 0, 2);
        L->st.events_total = cluster__col_u64(r, 0, 3);
    }
    PQclear(r);
    return rc;
}

static int run(loader_t *L)
{
    L->conn = PQconnectdb(L->opt->dsn);
    if (PQstatus(L->conn) != CONNECTION_OK)
        return fail(L, REEL_EIO, "cannot connect to PostgreSQL: %s", PQerrorMessage(L->conn));
    PGresult *r = query(L, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                        "beginning the snapshot");
    if (!r)
        return REEL_EIO;
    PQclear(r);
    int rc = read_sink_row(L);
    if (!rc)
        rc = load_sessions(L);
    if (!rc)
        rc = load_events(L);
    if (!rc)
        rc = load_records(L);
    if (!rc && L->opt->keep_positions)
        rc = load_changes(L);
    progress(L, 1);
    if ((r = query(L, "COMMIT", 0, NULL, "ending the snapshot")))
        PQclear(r);
    return rc;
}

int cluster_pgload(store_t *s, const cluster_pgload_opt_t *opt, cluster_pgload_stats_t *st,
                   char *err, size_t err_len)
{
    loader_t L = {.s = s, .opt = opt, .err = err, .err_len = err_len};
    if (err && err_len)
        err[0] = 0;
    const char *schema = opt->schema ? opt->schema : "reel";
    int rc = REEL_OK;
    if (!valid_schema(schema))
        rc = fail(&L, REEL_EINVALID_PARAMETER, "schema '%.100s' is not an identifier "
                  "([A-Za-z_][A-Za-z0-9_]*, at most 63 bytes)", schema);
    else if (!opt->cell || !*opt->cell || !opt->dsn)
        rc = fail(&L, REEL_EINVALID_PARAMETER, "a cell id and a DSN are needed");
    if (rc) {
        if (st)
            memset(st, 0, sizeof *st);
        return rc;
    }
    snprintf(L.schema, sizeof L.schema, "%s", schema);
    pthread_mutex_init(&L.mu, NULL);
    pthread_cond_init(&L.cv, NULL);
    rc = run(&L);
    if (L.conn)
        PQfinish(L.conn);
    for (size_t i = 0; i < L.n_ss; i++)
        free(L.ss[i].id), free(L.ss[i].change);
    free(L.ss);
    pthread_mutex_destroy(&L.mu);
    pthread_cond_destroy(&L.cv);
    if (st)
        *st = L.st;
    return rc;
}
