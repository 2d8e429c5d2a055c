/* sink_pg.c -- the PostgreSQL side of `reel sink postgres` (sink.h; schema and the
 * exactly-once argument in docs/CLUSTER.md "Sink").
 *
 * One page of the feed is one transaction: lock the cell's row of 'sink' (FOR UPDATE),
 * check that its epoch is still ours and its position is where we left it, write the
 * events, changes and session rows in position order, move the position, commit. A
 * crash before the commit leaves nothing; after it, the position says so, and a restarted
 * sink asks the feed for what comes after it. A newer sink bumps the epoch under the
 * same row lock, so an older one can never commit after it (fencing).
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cmds.h"
#include "tools/sink.h"


static void pg_error(const sink_pg_t *pg, const char *what, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = PQerrorMessage(pg->conn);
    cmd_error("sink", "PostgreSQL: %s: %s", what, msg);
}

/* Runs 'sql' without parameters; 0 or -1 after printing why. */
static int exec0(sink_pg_t *pg, const char *sql, const char *what)
{
    PGresult *res = PQexec(pg->conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        pg_error(pg, what, res);
    PQclear(res);
    return ok ? 0 : -1;
}

/* ---- schema ----
 *
 * events: the shape of sandbox-agent's Postgres persistence driver's events table (id,
 * event_index, session_id, created_at, connection_id, sender, payload_json) plus what a
 * data directory needs to be rebuilt bit for bit: cell, position, sequence, type, time,
 * the chain hash, the body and its hash. sessions: one row per session record. changes:
 * the change log as the feed gave it. sink: one row per cell, the checkpoint and the
 * fencing epoch. */
static const char schema_sql[] =
    "CREATE SCHEMA IF NOT EXISTS \"%1$s\";\n"
    "CREATE TABLE IF NOT EXISTS \"%1$s\".sink (\n"
    "  cell text PRIMARY KEY, epoch bigint NOT NULL, owner text NOT NULL,\n"
    "  position bigint NOT NULL, change_index bigint NOT NULL DEFAULT 0,\n"
    "  claimed_at timestamptz NOT NULL DEFAULT now(),\n"
    "  updated_at timestamptz NOT NULL DEFAULT now());\n"
    "CREATE TABLE IF NOT EXISTS \"%1$s\".events (\n"
    "  cell text NOT NULL, position bigint NOT NULL,\n"
    "  id text NOT NULL, event_index bigint NOT NULL, session_id text NOT NULL,\n"
    "  created_at bigint NOT NULL, connection_id text NOT NULL, sender text NOT NULL,\n"
    "  payload_json jsonb,\n"
    "  sequence bigint NOT NULL, type text NOT NULL, time_ms bigint NOT NULL,\n"
    "  native_session_id text, client_time text, raw jsonb,\n"
    "  chain_hash bytea NOT NULL, body_hash bytea NOT NULL, body bytea NOT NULL,\n"
    "  PRIMARY KEY (cell, position), UNIQUE (cell, session_id, sequence));\n"
    "CREATE INDEX IF NOT EXISTS events_session_order\n"
    "  ON \"%1$s\".events (session_id, event_index, id);\n"
    "CREATE TABLE IF NOT EXISTS \"%1$s\".sessions (\n"
    "  cell text NOT NULL, id text NOT NULL,\n"
    "  agent text NOT NULL DEFAULT '', agent_session_id text NOT NULL DEFAULT '',\n"
    "  created_at bigint NOT NULL, destroyed_at bigint,\n"
    "  status text NOT NULL, updated_at bigint NOT NULL, ended_at bigint,\n"
    "  first_event_at bigint, last_sequence bigint NOT NULL DEFAULT 0,\n"
    "  event_count bigint NOT NULL DEFAULT 0, runs bigint NOT NULL DEFAULT 0,\n"
    "  version bigint NOT NULL DEFAULT 1, metadata_json jsonb, last_hash bytea,\n"
    "  last_position bigint NOT NULL DEFAULT 0, PRIMARY KEY (cell, id));\n"
    "CREATE TABLE IF NOT EXISTS \"%1$s\".changes (\n"
    "  cell text NOT NULL, position bigint NOT NULL, change_index bigint NOT NULL,\n"
    "  kind integer NOT NULL, change text NOT NULL, session_id text NOT NULL,\n"
    "  time_ms bigint NOT NULL, record json NOT NULL,\n"
    "  PRIMARY KEY (cell, position, change_index));\n"
    /* Added for `reel cluster restore` (docs/CLUSTER.md "Restore"): the original body's
     * SHA-256 of an event redacted after the fact, which its chain commits to, and where
     * a trimmed session's chain starts. Tables made by an older sink gain them. */
    "ALTER TABLE \"%1$s\".events ADD COLUMN IF NOT EXISTS kept_hash bytea;\n"
    "ALTER TABLE \"%1$s\".sessions ADD COLUMN IF NOT EXISTS first_hash bytea;\n"
    "ALTER TABLE \"%1$s\".changes ADD COLUMN IF NOT EXISTS last_hash bytea;\n"
    "ALTER TABLE \"%1$s\".changes ADD COLUMN IF NOT EXISTS first_hash bytea;\n";

int sink_pg_ok(const sink_pg_t *pg)
{
    return pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

/* A COMMIT whose wait for the synchronous standby was cancelled still commits, locally
 * only, and says so in a WARNING: such a commit is not on the standby (sink_pg_t). Other
 * notices go to stderr as libpq would print them. */
static void on_notice(void *arg, const char *msg)
{
    sink_pg_t *pg = arg;
    if (strstr(msg, "synchronous replication") || strstr(msg, "replicated to the standby"))
        pg->sync_cancelled = 1;
    fputs(msg, stderr);
}

int sink_pg_check_replication(sink_pg_t *pg)
{
    PGresult *res = PQexec(pg->conn, "SELECT current_setting('synchronous_commit'), "
                                     "current_setting('synchronous_standby_names'), "
                                     "(SELECT count(*) FROM pg_stat_replication WHERE "
                                     "sync_state IN ('sync', 'quorum'))");
    pg->replicated = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(pg->why, sizeof pg->why, "cannot check replication: %.100s",
                 PQerrorMessage(pg->conn));
        PQclear(res);
        return -1;
    }
    const char *commit = PQgetvalue(res, 0, 0), *names = PQgetvalue(res, 0, 1);
    long sync = atol(PQgetvalue(res, 0, 2));
    if (strcmp(commit, "on") && strcmp(commit, "remote_apply"))
        snprintf(pg->why, sizeof pg->why, "synchronous_commit is '%.20s', not on", commit);
    else if (!names[0])
        snprintf(pg->why, sizeof pg->why, "synchronous_standby_names is empty: commits do not "
                 "wait for a standby");
    else if (sync < 1)
        snprintf(pg->why, sizeof pg->why, "no standby streams as 'sync' or 'quorum' in "
                 "pg_stat_replication (the role needs pg_monitor to see it)");
    else if (pg->sync_cancelled)
        snprintf(pg->why, sizeof pg->why, "a commit's wait for the synchronous standby was "
                 "cancelled: it may be on the primary only");
    else
        pg->replicated = 1, pg->why[0] = 0;
    pg->sync_cancelled = 0;
    PQclear(res);
    return 0;
}

int sink_pg_open(sink_pg_t *pg, const char *dsn)
{
    pg->conn = PQconnectdb(dsn);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        cmd_error("sink", "cannot connect to PostgreSQL: %s", PQerrorMessage(pg->conn));
        sink_pg_close(pg);
        return -1;
    }
    PQsetNoticeProcessor(pg->conn, on_notice, pg);
    store_buf_t sql = STORE_BUF_INIT;
    store_buf_printf(&sql, schema_sql, pg->schema);
    /* Concurrent sinks creating the schema at once can race on the catalog: retry. */
    int rc = -1;
    for (int i = 0; i < 5 && rc; i++) {
        PQclear(PQexec(pg->conn, "SET client_min_messages = warning"));
        rc = exec0(pg, store_buf_cstr(&sql), "creating the tables") ? -1
             : sink_fence_schema(pg->conn, pg->schema); /* sink_fence.c */
        if (rc)
            usleep(200000);
    }
    store_buf_release(&sql);
    if (rc)
        sink_pg_close(pg);
    return rc;
}

void sink_pg_close(sink_pg_t *pg)
{
    sink_fence_free(pg);
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
}

int sink_pg_claim(sink_pg_t *pg)
{
    const char *cell = pg->cell;
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".sink AS k (cell, epoch, owner, position) VALUES ($1, 1, $2, 0) "
             "ON CONFLICT (cell) DO UPDATE SET epoch = k.epoch + 1, owner = EXCLUDED.owner, "
             "claimed_at = now() RETURNING epoch, position, change_index", pg->schema);
    const char *params[2] = {cell, pg->owner};
    PGresult *res = PQexecParams(pg->conn, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        pg_error(pg, "claiming the cell", res);
        PQclear(res);
        return -1;
    }
    pg->epoch = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    pg->position = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    pg->index = (uint32_t)strtoull(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);
    return 0;
}

/* ---- one transaction ---- */

/* Text parameters of one statement, kept in a growing arena. */
typedef struct params {
    const char **v;
    int *len, *fmt;
    int n, cap;
    store_buf_t text; /* numbers printed here; offsets in 'off' until finished */
    size_t *off;      /* for parameters in 'text': offset + 1, else 0 */
} params_t;

static void p_grow(params_t *p)
{
    if (p->n < p->cap)
        return;
    p->cap = p->cap ? p->cap * 2 : 64;
    p->v = realloc(p->v, (size_t)p->cap * sizeof *p->v);
    p->len = realloc(p->len, (size_t)p->cap * sizeof *p->len);
    p->fmt = realloc(p->fmt, (size_t)p->cap * sizeof *p->fmt);
    p->off = realloc(p->off, (size_t)p->cap * sizeof *p->off);
    if (!p->v || !p->len || !p->fmt || !p->off) {
        fprintf(stderr, "reel sink: out of memory\n");
        exit(CMD_FAIL);
    }
}

static void p_str(params_t *p, const char *s)
{
    p_grow(p);
    p->v[p->n] = s, p->len[p->n] = 0, p->fmt[p->n] = 0, p->off[p->n] = 0;
    p->n++;
}

static void p_bin(params_t *p, const void *b, size_t n)
{
    p_grow(p);
    p->v[p->n] = b, p->len[p->n] = (int)n, p->fmt[p->n] = 1, p->off[p->n] = 0;
    p->n++;
}

static void p_u64(params_t *p, uint64_t v, int null_if_zero)
{
    if (null_if_zero && !v) {
        p_str(p, NULL);
        return;
    }
    p_grow(p);
    p->off[p->n] = p->text.len + 1;
    store_buf_printf(&p->text, "%llu", (unsigned long long)v);
    store_buf_putc(&p->text, 0);
    p->v[p->n] = NULL, p->len[p->n] = 0, p->fmt[p->n] = 0;
    p->n++;
}

static void p_reset(params_t *p)
{
    p->n = 0;
    store_buf_clear(&p->text);
}

static void p_free(params_t *p)
{
    free(p->v), free(p->len), free(p->fmt), free(p->off);
    store_buf_release(&p->text);
}

/* Runs 'sql' with the parameters; 0 or -1 after printing why ('what'). */
static int p_exec(sink_pg_t *pg, params_t *p, const char *sql, const char *what, PGresult **keep)
{
    if (store_buf_failed(&p->text)) {
        cmd_error("sink", "out of memory");
        return -1;
    }
    for (int i = 0; i < p->n; i++)
        if (p->off[i])
            p->v[i] = (const char *)p->text.data + p->off[i] - 1;
    PGresult *res = PQexecParams(pg->conn, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        pg_error(pg, what, res);
    if (ok && keep)
        *keep = res;
    else
        PQclear(res);
    p_reset(p);
    return ok ? 0 : -1;
}

/* 1 when jsonb cannot hold 'json' as sent: a \u0000 escape or a lone surrogate escape
 * (reel keeps both exactly; PostgreSQL's jsonb refuses them). The row then gets NULL
 * there; 'body' still holds the value exactly. */
static int jsonb_refuses(const char *json)
{
    for (const char *p = json; p && (p = strstr(p, "\\u")); p += 2) {
        size_t bs = 0; /* backslashes right before: an odd count escapes this one */
        for (const char *q = p; q > json && q[-1] == '\\'; q--)
            bs++;
        if (bs % 2)
            continue;
        if (!p[2] || !p[3] || !p[4] || !p[5])
            return 0; /* cut short: not JSON the server writes */
        if (!strncmp(p + 2, "0000", 4))
            return 1;
        int d = p[2] == 'd' || p[2] == 'D';
        if (d && strchr("89abAB", p[3])) { /* a high surrogate: a low one must follow */
            if (strncmp(p + 6, "\\u", 2) || !(p[8] == 'd' || p[8] == 'D') || !p[9] ||
                !strchr("cdefCDEF", p[9]))
                return 1;
            p += 6;
        } else if (d && strchr("cdefCDEF", p[3])) {
            return 1; /* a low surrogate not after a high one */
        }
    }
    return 0;
}

static const char *jsonb_or_null(const char *json)
{
    return json && !jsonb_refuses(json) ? json : NULL;
}

/* ---- events by COPY ----
 *
 * COPY ... FROM STDIN in text format: one line per event, columns separated by tabs,
 * NULL as \N, backslash, tab, newline and carriage return escaped, bytea as \\x<hex>.
 * Several times faster than multi-row INSERTs with parameters, whose planning of thousands
 * of parameters cost more than the rows. */

static void copy_text(store_buf_t *b, const char *s)
{
    if (!s) {
        store_buf_puts(b, "\\N");
        return;
    }
    for (; *s; s++) {
        switch (*s) {
        case '\\': store_buf_puts(b, "\\\\"); break;
        case '\t': store_buf_puts(b, "\\t"); break;
        case '\n': store_buf_puts(b, "\\n"); break;
        case '\r': store_buf_puts(b, "\\r"); break;
        default: store_buf_putc(b, *s);
        }
    }
}

static void copy_hex(store_buf_t *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    store_buf_puts(b, "\\\\x");
    for (size_t i = 0; i < n; i++) {
        store_buf_putc(b, hex[p[i] >> 4]);
        store_buf_putc(b, hex[p[i] & 15]);
    }
}

static void copy_row(store_buf_t *b, const char *cell, const sink_item_t *it)
{
    store_buf_printf(b, "%s\t%llu\t", cell, (unsigned long long)it->position);
    copy_text(b, it->event_id);
    store_buf_printf(b, "\t%llu\t", (unsigned long long)it->event_index);
    copy_text(b, it->session);
    store_buf_printf(b, "\t%llu\t", (unsigned long long)it->created_at);
    copy_text(b, it->connection_id);
    store_buf_putc(b, '\t');
    copy_text(b, it->sender);
    store_buf_putc(b, '\t');
    copy_text(b, jsonb_or_null(it->payload));
    store_buf_printf(b, "\t%llu\t", (unsigned long long)it->sequence);
    copy_text(b, it->type);
    store_buf_printf(b, "\t%llu\t", (unsigned long long)it->time_ms);
    copy_text(b, it->native);
    store_buf_putc(b, '\t');
    copy_text(b, it->client_time);
    store_buf_putc(b, '\t');
    copy_text(b, jsonb_or_null(it->raw));
    store_buf_putc(b, '\t');
    copy_hex(b, it->hash, 32);
    store_buf_putc(b, '\t');
    copy_hex(b, it->body_hash, 32);
    store_buf_putc(b, '\t');
    copy_hex(b, it->body, it->body_len);
    store_buf_putc(b, '\t');
    if (it->has_kept)
        copy_hex(b, it->kept_hash, 32);
    else
        store_buf_puts(b, "\\N");
    store_buf_putc(b, '\n');
}

/* Events [0, n) of a stretch, in one COPY. */
static int insert_events(sink_pg_t *pg, const sink_item_t *const *ev, size_t n)
{
    char sql[512];
    snprintf(sql, sizeof sql, "COPY \"%s\".events (cell, position, id, event_index, session_id, "
             "created_at, connection_id, sender, payload_json, sequence, type, time_ms, "
             "native_session_id, client_time, raw, chain_hash, body_hash, body, kept_hash) FROM STDIN",
             pg->schema);
    PGresult *res = PQexec(pg->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pg_error(pg, "starting COPY of events", res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    store_buf_t b = STORE_BUF_INIT;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        copy_row(&b, pg->cell, ev[i]);
        if (store_buf_failed(&b)) {
            ok = 0;
            break;
        }
        if (b.len >= (1u << 20) || i + 1 == n) {
            ok = PQputCopyData(pg->conn, (const char *)b.data, (int)b.len) == 1;
            store_buf_clear(&b);
        }
    }
    store_buf_release(&b);
    ok = PQputCopyEnd(pg->conn, ok ? NULL : "the sink could not send the rows") == 1 && ok;
    int rc = 0;
    while ((res = PQgetResult(pg->conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            pg_error(pg, "copying events", res);
            rc = -1;
        }
        PQclear(res);
    }
    return ok ? rc : -1;
}

/* What a stretch of events did to one session (applied with one upsert). */
struct agg {
    const char *session;
    uint64_t first_ms, last_ms, ended_ms, last_seq, count, runs, last_pos;
    int ended;
    const uint8_t *last_hash;
};

static int upsert_from_events(sink_pg_t *pg, params_t *p, const struct agg *a)
{
    const char *cell = pg->cell;
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".sessions AS s (cell, id, status, created_at, updated_at, "
             "ended_at, first_event_at, last_sequence, event_count, runs, last_hash, "
             "last_position, metadata_json) VALUES ($1,$2,$3,$4,$5,$6,$4,$7,$8,$9,$10,$11,'{}') "
             "ON CONFLICT (cell, id) DO UPDATE SET status = EXCLUDED.status, "
             "updated_at = EXCLUDED.updated_at, "
             "ended_at = COALESCE(EXCLUDED.ended_at, s.ended_at), "
             "first_event_at = COALESCE(s.first_event_at, EXCLUDED.first_event_at), "
             "last_sequence = EXCLUDED.last_sequence, "
             "event_count = s.event_count + EXCLUDED.event_count, runs = s.runs + EXCLUDED.runs, "
             "last_hash = EXCLUDED.last_hash, last_position = EXCLUDED.last_position",
             pg->schema);
    p_str(p, cell);
    p_str(p, a->session);
    p_str(p, a->ended ? "ended" : "active");
    p_u64(p, a->first_ms, 0);
    p_u64(p, a->last_ms, 0);
    p_u64(p, a->ended_ms, 1);
    p_u64(p, a->last_seq, 0);
    p_u64(p, a->count, 0);
    p_u64(p, a->runs, 0);
    p_bin(p, a->last_hash, 32);
    p_u64(p, a->last_pos, 0);
    return p_exec(pg, p, sql, "updating a session from its events", NULL);
}

/* Writes a stretch of events: the rows, then one session upsert per session. */
static int flush_events(sink_pg_t *pg, params_t *p, const sink_item_t *const *ev, size_t n)
{
    if (!n)
        return 0;
    if (insert_events(pg, ev, n))
        return -1;
    struct agg *ag = calloc(n, sizeof *ag);
    size_t na = 0;
    if (!ag) {
        cmd_error("sink", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const sink_item_t *it = ev[i];
        size_t j = 0;
        while (j < na && strcmp(ag[j].session, it->session))
            j++;
        struct agg *a = &ag[j];
        if (j == na) {
            na++;
            a->session = it->session;
            a->first_ms = it->time_ms;
        }
        a->last_ms = it->time_ms;
        a->last_seq = it->sequence;
        a->count++;
        a->runs += (uint64_t)it->starts;
        a->ended = it->ends;
        if (it->ends)
            a->ended_ms = it->time_ms;
        a->last_pos = it->position;
        a->last_hash = it->hash;
    }
    int rc = 0;
    for (size_t j = 0; j < na && !rc; j++)
        rc = upsert_from_events(pg, p, &ag[j]);
    free(ag);
    return rc;
}

/* A change: the log row, the session row as the record says, and for a delete the
 * session's events removed (the feed no longer serves them). */
static int apply_change(sink_pg_t *pg, params_t *p, const sink_item_t *it)
{
    const char *cell = pg->cell;
    char sql[2048];
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\".changes (cell, position, change_index, kind, "
             "change, session_id, time_ms, record, last_hash, first_hash) VALUES "
             "($1,$2,$3,$4,$5,$6,$7,$8::json,$9,$10)", pg->schema);
    p_str(p, cell);
    p_u64(p, it->position, 0);
    p_u64(p, it->index, 0);
    p_u64(p, (uint64_t)it->kind, 0);
    p_str(p, it->change);
    p_str(p, it->session);
    p_u64(p, it->time_ms, 0);
    p_str(p, it->record);
    if (it->has_last_hash)
        p_bin(p, it->last_hash, 32);
    else
        p_str(p, NULL);
    if (it->has_first_hash)
        p_bin(p, it->first_hash, 32);
    else
        p_str(p, NULL);
    if (p_exec(pg, p, sql, "inserting a change", NULL))
        return -1;
    /* The feed no longer serves what a delete, purge or trim removed: neither do we. */
    if (it->kind == STORE_CHANGE_DELETE || it->kind == STORE_CHANGE_PURGE ||
        it->kind == STORE_CHANGE_TRIM) {
        snprintf(sql, sizeof sql, "DELETE FROM \"%s\".events WHERE cell = $1 AND session_id = $2"
                 " AND sequence < $3", pg->schema);
        p_str(p, cell);
        p_str(p, it->session);
        p_u64(p, it->kind == STORE_CHANGE_TRIM ? it->first_sequence : UINT64_MAX >> 1, 0);
        if (p_exec(pg, p, sql, "removing a session's events", NULL))
            return -1;
    }
    if (it->kind == STORE_CHANGE_PURGE) { /* the record is gone too */
        snprintf(sql, sizeof sql, "DELETE FROM \"%s\".sessions WHERE cell = $1 AND id = $2",
                 pg->schema);
        p_str(p, cell);
        p_str(p, it->session);
        return p_exec(pg, p, sql, "removing a purged session", NULL);
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\".sessions AS s (cell, id, agent, agent_session_id, created_at, "
             "destroyed_at, status, updated_at, ended_at, first_event_at, last_sequence, "
             "event_count, runs, version, metadata_json, last_hash, last_position, first_hash) "
             "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15::jsonb,$16,$17,$18) "
             "ON CONFLICT (cell, id) DO UPDATE SET agent = EXCLUDED.agent, "
             "agent_session_id = EXCLUDED.agent_session_id, created_at = EXCLUDED.created_at, "
             "destroyed_at = COALESCE(EXCLUDED.destroyed_at, s.destroyed_at), "
             "status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, "
             "ended_at = EXCLUDED.ended_at, first_event_at = EXCLUDED.first_event_at, "
             "last_sequence = EXCLUDED.last_sequence, event_count = EXCLUDED.event_count, "
             "runs = EXCLUDED.runs, version = EXCLUDED.version, "
             "metadata_json = EXCLUDED.metadata_json, "
             "last_hash = COALESCE(EXCLUDED.last_hash, s.last_hash), "
             "last_position = GREATEST(s.last_position, EXCLUDED.last_position), "
             "first_hash = EXCLUDED.first_hash", pg->schema);
    p_str(p, cell);
    p_str(p, it->session);
    p_str(p, it->agent ? it->agent : "");
    p_str(p, it->agent_session_id ? it->agent_session_id : "");
    p_u64(p, it->created_ms, 0);
    p_u64(p, it->kind == STORE_CHANGE_DELETE ? it->time_ms : 0, 1);
    p_str(p, it->status);
    p_u64(p, it->updated_ms, 0);
    p_u64(p, it->ended_ms, 1);
    p_u64(p, it->first_ms, 1);
    p_u64(p, it->last_sequence, 0);
    p_u64(p, it->event_count, 0);
    p_u64(p, it->runs, 0);
    p_u64(p, it->version, 0);
    p_str(p, jsonb_or_null(it->metadata));
    if (it->has_last_hash)
        p_bin(p, it->last_hash, 32);
    else
        p_str(p, NULL);
    p_u64(p, it->position, 0);
    if (it->has_first_hash)
        p_bin(p, it->first_hash, 32);
    else
        p_str(p, NULL);
    return p_exec(pg, p, sql, "updating a session from a change", NULL);
}

/* ---- redaction after the fact (docs/REDACTION.md "After the fact") ----
 *
 * A redaction rewrites stored bodies in place and appends a reel.redacted event naming the
 * sequences it rewrote ({"sequences":[...]}). Rows copied before it still hold the old
 * bodies: when that event is written, each of them is read again from the source and its
 * row updated, in the same transaction as the event and the checkpoint. A row the sink
 * had not copied yet gets the new body anyway (the feed serves it). */

static int refresh_row(sink_pg_t *pg, params_t *p, const char *session, uint64_t seq)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT position FROM \"%s\".events WHERE cell = $1 AND "
             "session_id = $2 AND sequence = $3", pg->schema);
    p_str(p, pg->cell);
    p_str(p, session);
    p_u64(p, seq, 0);
    PGresult *res = NULL;
    if (p_exec(pg, p, sql, "finding a redacted event", &res))
        return -1;
    uint64_t pos = PQntuples(res) == 1 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    const sink_item_t *it = NULL;
    if (!pos || !pg->refetch)
        return 0; /* not copied (trimmed, deleted): nothing holds the old body */
    if (pg->refetch(pg->refetch_arg, pos, &it))
        return -1;
    if (!it || it->is_change || it->position != pos)
        return 0; /* gone from the source since: its own change removes the row */
    snprintf(sql, sizeof sql, "UPDATE \"%s\".events SET payload_json = $3::jsonb, "
             "raw = $4::jsonb, chain_hash = $5, body_hash = $6, body = $7, kept_hash = $8 "
             "WHERE cell = $1 AND position = $2", pg->schema);
    p_str(p, pg->cell);
    p_u64(p, pos, 0);
    p_str(p, jsonb_or_null(it->payload));
    p_str(p, jsonb_or_null(it->raw));
    p_bin(p, it->hash, 32);
    p_bin(p, it->body_hash, 32);
    p_bin(p, it->body, it->body_len);
    if (it->has_kept)
        p_bin(p, it->kept_hash, 32);
    else
        p_str(p, NULL);
    return p_exec(pg, p, sql, "updating a redacted event", NULL);
}

/* The rows a reel.redacted event 'it' names, read again. */
static int apply_redaction(sink_pg_t *pg, params_t *p, const sink_item_t *it)
{
    const char *v;
    size_t n;
    if (!it->payload || cmd_json_member(it->payload, strlen(it->payload), "sequences", &v, &n) ||
        !n || v[0] != '[')
        return 0; /* not one reel wrote: an event like any other */
    const char *end = v + n;
    for (const char *q = v + 1; q < end; q++) {
        if (*q < '0' || *q > '9')
            continue;
        char *e;
        uint64_t seq = strtoull(q, &e, 10);
        if (refresh_row(pg, p, it->session, seq))
            return -1;
        q = e - 1;
    }
    return 0;
}

/* Locks the cell's row and checks that it is still ours: 0, SINK_FENCED or -1. */
static int check_fence(sink_pg_t *pg, params_t *p)
{
    const char *cell = pg->cell;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT epoch, owner, position, change_index FROM \"%s\".sink "
             "WHERE cell = $1 FOR UPDATE", pg->schema);
    p_str(p, cell);
    PGresult *res = NULL;
    if (p_exec(pg, p, sql, "locking the checkpoint", &res))
        return -1;
    int rc = 0;
    if (PQntuples(res) != 1) {
        snprintf(pg->fenced_by, sizeof pg->fenced_by, "nobody (the cell's row is gone)");
        rc = SINK_FENCED;
    } else {
        int64_t epoch = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        uint64_t pos = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
        uint32_t index = (uint32_t)strtoull(PQgetvalue(res, 0, 3), NULL, 10);
        if (epoch != pg->epoch || pos != pg->position || index != pg->index) {
            snprintf(pg->fenced_by, sizeof pg->fenced_by, "epoch %lld, owner '%.120s', at "
                     "position %llu", (long long)epoch, PQgetvalue(res, 0, 1),
                     (unsigned long long)pos);
            rc = SINK_FENCED;
        }
    }
    PQclear(res);
    return rc;
}

static int write_items(sink_pg_t *pg, params_t *p, const sink_item_t *items, size_t n)
{
    const sink_item_t **run = malloc((n ? n : 1) * sizeof *run);
    if (!run) {
        cmd_error("sink", "out of memory");
        return -1;
    }
    size_t nrun = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int redacted = !items[i].is_change && !strcmp(items[i].type, "reel.redacted");
        if (!items[i].is_change && !redacted) {
            run[nrun++] = &items[i];
            continue;
        }
        if (redacted) { /* written, then the rows it names read again */
            run[nrun++] = &items[i];
            rc = flush_events(pg, p, run, nrun);
            nrun = 0;
            if (!rc)
                rc = apply_redaction(pg, p, &items[i]);
            continue;
        }
        /* Order matters: the events before a change are written first (a delete removes
         * them; a record's counters already count them). */
        rc = flush_events(pg, p, run, nrun);
        nrun = 0;
        if (!rc)
            rc = apply_change(pg, p, &items[i]);
    }
    if (!rc)
        rc = flush_events(pg, p, run, nrun);
    free(run);
    return rc;
}

/* COMMIT answers "ROLLBACK" (and OK) for a transaction that failed: check the tag. The
 * COMMIT was sent by sink_pg_write_send(); its results are read to the end here. */
static int commit_result(sink_pg_t *pg)
{
    int ok = 0, seen = 0;
    PGresult *res;
    while ((res = PQgetResult(pg->conn))) {
        if (!seen++) {
            ok = PQresultStatus(res) == PGRES_COMMAND_OK && !strcmp(PQcmdStatus(res), "COMMIT");
            if (!ok)
                pg_error(pg, "committing", res);
        }
        PQclear(res);
    }
    if (!seen)
        cmd_error("sink", "committing: %s", PQerrorMessage(pg->conn));
    return ok ? 0 : -1;
}

int sink_pg_write_send(sink_pg_t *pg, const sink_item_t *items, size_t n)
{
    params_t p = {0};
    size_t keep = 0;
    pg->written = 0, pg->fence_cut = 0;
    int rc = exec0(pg, "BEGIN", "beginning a transaction");
    if (!rc)
        rc = check_fence(pg, &p);
    if (!rc) /* a shard moved away: only the items before its first later one */
        rc = sink_fence_cut(pg, items, n, &keep);
    uint64_t last = keep ? items[keep - 1].position : pg->position;
    uint32_t last_index = keep ? items[keep - 1].index : pg->index;
    if (!rc)
        rc = write_items(pg, &p, items, keep);
    if (!rc && keep) {
        const char *cell = pg->cell;
        char sql[256];
        snprintf(sql, sizeof sql, "UPDATE \"%s\".sink SET position = $2, change_index = $3, "
                 "updated_at = now() WHERE cell = $1", pg->schema);
        p_str(&p, cell);
        p_u64(&p, last, 0);
        p_u64(&p, last_index, 0);
        rc = p_exec(pg, &p, sql, "moving the checkpoint", NULL);
    }
    if (!rc && !PQsendQuery(pg->conn, "COMMIT")) {
        cmd_error("sink", "committing: %s", PQerrorMessage(pg->conn));
        rc = -1;
    }
    if (rc && sink_pg_ok(pg))
        PQclear(PQexec(pg->conn, "ROLLBACK"));
    if (!rc) /* written: the items before a fenced one, if any (sink_fence.c) */
        pg->pending = 1, pg->pending_position = last, pg->pending_index = last_index,
        pg->written = keep, pg->fence_cut = keep < n;
    p_free(&p);
    return rc;
}

int sink_pg_write_finish(sink_pg_t *pg)
{
    if (!pg->pending)
        return 0;
    pg->pending = 0;
    int rc = commit_result(pg);
    if (!rc) {
        pg->position = pg->pending_position, pg->index = pg->pending_index;
        sink_pg_check_replication(pg); /* what the report after this commit says */
    }
    return rc;
}

int sink_pg_write(sink_pg_t *pg, const sink_item_t *items, size_t n)
{
    if (!n)
        return 0;
    int rc = sink_pg_write_send(pg, items, n);
    rc = rc ? rc : sink_pg_write_finish(pg);
    return rc || !pg->fence_cut ? rc : SINK_SHARD_FENCED;
}
