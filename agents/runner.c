/* runner.c -- `reel run`: spawn a coding agent, convert its output, append it durably.
 *
 * Steps (agent_run):
 *  1. Read the session record (store or server): the agent's native session id for a
 *     native resume, and the restore replay text when the agent must start fresh.
 *  2. Spawn the agent with posix_spawn. The store is closed while spawning and opened
 *     again afterwards, so the child never inherits an LMDB environment.
 *  3. Read stdout and stderr line by line (poll), convert every line, and append the
 *     events in order, one batch per burst of input. A batch is appended before more
 *     input is read, so a slow store or server slows the agent down (its pipe fills)
 *     instead of buffering without bound.
 *  4. When the agent exits: complete open items and append session.ended.
 *
 * Idempotency (--server): every event id is '<run id>/<stream><line>.<n>' (run id =
 * start time and random bits), fixed before the first attempt, so a batch retried after
 * a lost response or a server restart is deduplicated by the server: nothing is
 * duplicated and, since a batch is retried until acknowledged, nothing is lost.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agents/agent_int.h"
#include "replay/replay.h"
#include "store/json.h"

extern char **environ;

#define BATCH_EVENTS 500
#define BATCH_BYTES (4u << 20)
#define TAIL_LINES 20
/* After the agent exited, how long its pipes may stay open (held by a process it left
 * running in the background) before the runner stops reading them. */
#define DRAIN_MS 2000
#define TAIL_LINE_MAX 500
/* A protocol driver's agent (ACP) whose turn is over is sent SIGTERM when it has not
 * exited this long after its stdin was closed: agents such as claude-code-acp keep
 * running until their client kills them. The run still counts as completed. */
#define TURN_EXIT_GRACE_MS 3000
#define HTTP_TIMEOUT_MS 30000
/* The restore text: the newest 200 events within 12,000 characters (docs/AGENTS.md §2;
 * fit=newest leaves out the lines a later completion repeats, so the character budget,
 * not the event count, is what usually binds). */
#define RESTORE_MAX_EVENTS 200
#define RESTORE_MAX_CHARS 12000
#define RESTORE_MARKER "[earlier history truncated]\n" /* as replay/restore.c writes it */
/* A server refuses events over its event limit (8 MiB by default, docs/HTTP.md "Options
 * and limits"): past this, the raw native line of an event is replaced by
 * {"truncated":true,"bytes":N}. */
#define RAW_MAX (7u << 20)

typedef struct run {
    const agent_run_opts_t *o;
    agent_conv_t *c;
    /* sink */
    store_t *st;
    ingest_batch_t ib;
    agent__http_t http;
    store_buf_t ndjson;
    store_buf_t fit;  /* agent__fit() scratch for the event being added */
    size_t pending; /* events in the batch */
    char put_nsid[STORE_NAME_MAX + 1]; /* native id last written to the record */
    int began;                         /* the first event of the run was seen */
    int err;                           /* first sink error (sticky) */
    /* results */
    uint64_t appended, lines;
    /* stderr tail */
    char *tail[TAIL_LINES];
    size_t tail_n;
    agent__progress_t progress; /* the lines on stderr (o->progress) */
    int stopped_after_turn; /* the runner sent SIGTERM after the driver's turn ended */
} run_t;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void say(const run_t *r, const char *fmt, const char *a, const char *b)
{
    if (!r->o->quiet) {
        fprintf(stderr, "reel run: ");
        fprintf(stderr, fmt, a, b);
        fputc('\n', stderr);
    }
}

/* ---- argv ---- */

void agent__argv_add(agent__argv_t *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v)
            abort();
    }
    a->v[a->n] = strdup(s);
    if (!a->v[a->n])
        abort();
    a->v[++a->n] = NULL;
}

void agent__argv_prompt(agent__argv_t *a, const char *prompt)
{
    if (prompt[0] == '-')
        agent__argv_add(a, "--");
    agent__argv_add(a, prompt);
}

void agent__argv_free(agent__argv_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ---- HTTP helpers ---- */

/* Sends a request until a response other than 5xx/408/429 comes, backing off, or until
 * 'retry_max_s' passed without one. Returns REEL_OK with '*status', or REEL_EIO. */
static int http_retry(run_t *r, const char *method, const char *path, const char *ctype,
                      const void *body, size_t len, int *status, store_buf_t *resp)
{
    int64_t give_up = now_ms() + (int64_t)(r->o->retry_max_s * 1000);
    int delay = 50, tries = 0;
    for (;;) {
        size_t mark = resp ? resp->len : 0;
        int rc = agent__http_request(&r->http, method, path, ctype, body, len,
                                     HTTP_TIMEOUT_MS, status, resp);
        if (!rc && *status != 408 && *status != 429 && *status < 500)
            return REEL_OK;
        if (resp)
            resp->len = mark;
        if (now_ms() >= give_up)
            return REEL_EIO;
        if (++tries == 3 || tries % 50 == 0)
            say(r, "server %s not answering (%s); retrying", r->o->server,
                rc ? "unreachable" : "server error");
        sleep_ms(delay);
        delay = delay * 2 > 2000 ? 2000 : delay * 2;
    }
}

#define PATH_MAX_LEN (32 + 3 * STORE_SESSION_ID_MAX + 96) /* a path with an encoded id */

/* "/v1/sessions/<id><suffix>", the id percent-encoded as one path segment (every byte
 * outside RFC 3986's unreserved set, '/' included, as %XX: docs/HTTP.md). */
static void path_session(char *out, size_t n, const char *session, const char *suffix)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = (size_t)snprintf(out, n, "/v1/sessions/");
    for (const unsigned char *p = (const unsigned char *)session; *p && o + 4 < n; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    snprintf(out + o, n - o, "%s", suffix);
}

/* ---- The sink: store or server ---- */

static int session_put(run_t *r, const char *nsid)
{
    const char *agent = r->o->ops->name;
    if (r->st) {
        store_batch_t b;
        store_batch_init(&b, STORE_OP_SESSION_PUT, r->o->session, strlen(r->o->session));
        b.agent = agent;
        b.agent_len = strlen(agent);
        if (nsid) {
            b.native_session_id = nsid;
            b.native_session_id_len = strlen(nsid);
        }
        return store_append(r->st, &b);
    }
    json_t *body = json_pack("{s:s}", "agent", agent); /* absent fields stay unchanged */
    if (body && nsid)
        json_object_set_new(body, "native_session_id", json_string(nsid));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return REEL_ENOMEM;
    char path[PATH_MAX_LEN];
    int status = 0;
    path_session(path, sizeof path, r->o->session, "");
    int rc = http_retry(r, "PUT", path, "application/json", text, strlen(text), &status, NULL);
    free(text);
    if (!rc && status / 100 != 2) {
        say(r, "PUT %s: HTTP status %s", path, status == 410 ? "410 (session deleted)" : "error");
        rc = REEL_EIO;
    }
    return rc;
}

static int flush(run_t *r)
{
    if (r->err || !r->pending)
        return r->err;
    int rc;
    if (r->st) {
        rc = ingest_append(r->st, &r->ib);
        if (!rc)
            r->appended += r->ib.b.n_events - r->ib.b.duplicates;
        ingest_batch_release(&r->ib);
        ingest_batch_init(&r->ib, r->o->session, strlen(r->o->session));
        if (rc)
            fprintf(stderr, "reel run: append failed: %s (%s)\n", reel_strerror(rc),
                    store_last_error());
    } else {
        char path[PATH_MAX_LEN];
        int status = 0;
        store_buf_t resp = STORE_BUF_INIT;
        path_session(path, sizeof path, r->o->session, "/events");
        rc = http_retry(r, "POST", path, "application/x-ndjson", r->ndjson.data, r->ndjson.len,
                        &status, &resp);
        if (rc) {
            fprintf(stderr, "reel run: server %s unreachable for %.0f s; giving up\n",
                    r->o->server, r->o->retry_max_s);
        } else if (status / 100 != 2) {
            fprintf(stderr, "reel run: append refused with HTTP %d: %.*s\n", status,
                    (int)(resp.len > 500 ? 500 : resp.len), resp.data ? (char *)resp.data : "");
            rc = REEL_EIO;
        } else {
            json_t *j = json_loadb(resp.data ? (char *)resp.data : "", resp.len, 0, NULL);
            json_int_t dups = json_integer_value(agent__get(j, "duplicates"));
            r->appended += r->pending - (size_t)(dups > 0 ? dups : 0);
            json_decref(j);
        }
        store_buf_release(&resp);
        store_buf_clear(&r->ndjson);
    }
    r->pending = 0;
    r->err = rc;
    const char *nsid = agent_conv_native_session_id(r->c);
    if (!rc && nsid[0] && strcmp(nsid, r->put_nsid)) {
        snprintf(r->put_nsid, sizeof r->put_nsid, "%s", nsid);
        r->err = rc = session_put(r, nsid);
    }
    return rc;
}

static int sink_add(run_t *r, const agent_event_t *in)
{
    agent_event_t fitted;
    const agent_event_t *ev = &fitted;
    agent__fit(in, &fitted, &r->fit);
    if (r->st) {
        store_buf_t mp = STORE_BUF_INIT;
        store_json_error_t je;
        ingest_error_t ie;
        int rc = store_json_to_msgpack(ev->data, ev->data_len, STORE_JSON_MAX_DEPTH, &mp, &je);
        if (!rc)
            rc = ingest_add(&r->ib, ev->type, ev->source, ev->synthetic, ev->native_session_id,
                            ev->event_id, mp.data, mp.len, ev->raw, ev->raw_len, &ie);
        store_buf_release(&mp);
        if (rc)
            return rc;
    } else {
        store_buf_t *b = &r->ndjson;
        store_buf_puts(b, "{\"event_id\":");
        store_json_write_string(b, ev->event_id, strlen(ev->event_id));
        store_buf_puts(b, ",\"type\":");
        store_json_write_string(b, ev->type, strlen(ev->type));
        store_buf_puts(b, ",\"source\":");
        store_json_write_string(b, ev->source, strlen(ev->source));
        store_buf_puts(b, ev->synthetic ? ",\"synthetic\":true" : ",\"synthetic\":false");
        store_buf_puts(b, ",\"native_session_id\":");
        if (ev->native_session_id)
            store_json_write_string(b, ev->native_session_id, strlen(ev->native_session_id));
        else
            store_buf_puts(b, "null");
        store_buf_puts(b, ",\"data\":");
        store_buf_put(b, ev->data, ev->data_len);
        store_buf_puts(b, ",\"raw\":");
        if (ev->raw && ev->raw_len + ev->data_len > RAW_MAX)
            store_buf_printf(b, "{\"truncated\":true,\"bytes\":%zu}", ev->raw_len);
        else if (ev->raw)
            store_buf_put(b, ev->raw, ev->raw_len);
        else
            store_buf_puts(b, "null");
        store_buf_puts(b, "}\n");
        if (store_buf_failed(b))
            return REEL_ENOMEM;
    }
    r->pending++;
    if (r->pending >= BATCH_EVENTS || r->ndjson.len >= BATCH_BYTES)
        return flush(r);
    return REEL_OK;
}

/* The converter's emit callback: the run's first event decides whether the runner must
 * start the session itself (the agent's own start line did not come first), and the
 * user prompt follows session.started. */
static int on_event(void *arg, const agent_event_t *ev)
{
    run_t *r = arg;
    if (r->err)
        return r->err;
    if (r->o->progress)
        agent__progress_event(&r->progress, ev);
    if (r->began || r->c->stream == AGENT_STDIN || !strcmp(ev->type, "agent.native"))
        return sink_add(r, ev); /* bookkeeping lines may precede the agent's start line */
    r->began = 1;
    int rc;
    if (strcmp(ev->type, "session.started")) {
        char data[200];
        snprintf(data, sizeof data, "{\"agent\":\"%s\"}", r->o->ops->name);
        if ((rc = agent_conv_emit_runner(r->c, "s", "session.started", data)))
            return rc;
    } else if ((rc = sink_add(r, ev))) {
        return rc;
    }
    if (!r->o->ops->echoes_prompt && (rc = agent_conv_prompt(r->c, r->o->prompt)))
        return rc;
    return strcmp(ev->type, "session.started") ? sink_add(r, ev) : REEL_OK;
}

/* ---- Before the spawn: the session record and the restore text ---- */

typedef struct prior {
    char agent[STORE_NAME_MAX + 1];
    char nsid[STORE_NAME_MAX + 1];
    uint64_t events;
    store_buf_t restore;
    json_t *usage; /* the session's usage so far (reel stats), for running totals */
} prior_t;

/* p->usage from a reel stats object (JSON text). */
static void prior_usage(prior_t *p, const char *json, size_t len)
{
    json_t *j = json ? json_loadb(json, len, 0, NULL) : NULL;
    json_t *u = agent__get(j, "usage");
    if (json_is_object(u))
        p->usage = json_incref(u);
    json_decref(j);
}

static int prior_from_store(run_t *r, prior_t *p)
{
    store_t *s = NULL;
    store_options_t opt = {0};
    opt.no_sync = r->o->no_sync;
    int rc = store_open(r->o->data_dir, &opt, &s);
    if (rc) {
        fprintf(stderr, "reel run: cannot open data directory '%s': %s\n", r->o->data_dir,
                store_last_error());
        return rc;
    }
    store_read_t rd;
    store_session_t rec;
    if (!(rc = store_read_begin(s, &rd))) {
        const char *id = r->o->session;
        rc = store_session_get(&rd, id, strlen(id), &rec);
        if (!rc) {
            snprintf(p->agent, sizeof p->agent, "%s", rec.agent);
            snprintf(p->nsid, sizeof p->nsid, "%s", rec.native_session_id);
            p->events = rec.event_count;
            if (rec.status == STORE_DELETED) {
                fprintf(stderr, "reel run: session '%s' was deleted\n", id);
                rc = REEL_EGONE;
            } else if (rec.event_count) {
                replay_restore_opts_t ro = REPLAY_RESTORE_DEFAULT;
                ro.max_events = RESTORE_MAX_EVENTS;
                ro.max_chars = RESTORE_MAX_CHARS;
                replay_restore_t rr;
                rc = replay_restore(&rd, id, strlen(id), &ro, &rr);
                if (!rc && rr.has_text)
                    store_buf_put(&p->restore, rr.text.data, rr.text.len);
                if (!rc)
                    replay_restore_release(&rr);
            }
        } else if (rc == REEL_ESESSION_NOT_FOUND) {
            rc = REEL_OK;
        }
        store_read_end(&rd);
    }
    if (!rc && p->events) {
        replay_stats_opts_t so = {0};
        so.session = r->o->session;
        so.session_len = strlen(r->o->session);
        store_buf_t st = STORE_BUF_INIT;
        if (!replay_stats(s, &so, &st, NULL, NULL))
            prior_usage(p, (const char *)st.data, st.len);
        store_buf_release(&st);
    }
    store_close(s);
    return rc;
}

/* "2026-11-22T13:00:00.123Z" -> Unix ms (0 if malformed). */
static int64_t parse_time_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static size_t utf16_units(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n += (unsigned char)s[i] >= 0xf0 ? 2 : 1;
    return n;
}

/* The item_id of an item.* event 'e' (data flat or under data.item), or NULL. */
static const char *event_item(json_t *e, json_t **item)
{
    json_t *d = agent__get(e, "data");
    *item = json_is_object(agent__get(d, "item")) ? agent__get(d, "item") : d;
    const char *t = agent__str(e, "type");
    if (!t || strncmp(t, "item.", 5))
        return NULL;
    return agent__str(*item, "item_id") ? agent__str(*item, "item_id") : agent__str(d, "item_id");
}

/* 1 when event 'i' of 'evs' is an item.started, or an item.delta, that a later
 * item.completed of the same item repeats (with its text, for a delta). */
static int repeated_later(json_t *evs, size_t i)
{
    json_t *item, *later;
    const char *id = event_item(json_array_get(evs, i), &item);
    const char *t = agent__str(json_array_get(evs, i), "type");
    if (!id || (strcmp(t, "item.started") && strcmp(t, "item.delta")))
        return 0;
    for (size_t k = json_array_size(evs); k-- > i + 1;) {
        json_t *e = json_array_get(evs, k);
        const char *lid = event_item(e, &later);
        if (!lid || strcmp(lid, id) || strcmp(agent__str(e, "type"), "item.completed"))
            continue;
        const char *text = agent__str(later, "text");
        return !strcmp(t, "item.started") || (text && *text);
    }
    return 0;
}

/* For a server without GET /restore: the same fit=newest text as replay_restore(), built
 * from the newest events read over HTTP (numbers in 'payload' are re-printed by jansson). */
static void restore_from_events(run_t *r, prior_t *p, json_int_t last)
{
    char path[PATH_MAX_LEN], suffix[96];
    int status = 0;
    store_buf_t resp = STORE_BUF_INIT;
    long long from = last > RESTORE_MAX_EVENTS ? (long long)last - RESTORE_MAX_EVENTS : 0;
    snprintf(suffix, sizeof suffix, "/events?offset=%lld&limit=%d", from, RESTORE_MAX_EVENTS);
    path_session(path, sizeof path, r->o->session, suffix);
    int rc = http_retry(r, "GET", path, NULL, NULL, 0, &status, &resp);
    json_t *j = !rc && status == 200 ? json_loadb((char *)resp.data, resp.len, 0, NULL) : NULL;
    json_t *evs = agent__get(j, "events"), *lines = json_array();
    size_t i, total = strlen(REPLAY_RESTORE_TEXT_HEADER);
    json_t *e;
    json_array_foreach(evs, i, e) {
        if (repeated_later(evs, i))
            continue; /* as replay/restore.c's fit=newest */
        json_t *l = json_object();
        json_t *src = agent__get(e, "source"), *data = agent__get(e, "data");
        json_object_set_new(l, "createdAt", json_integer(parse_time_ms(agent__str(e, "time"))));
        json_object_set(l, "sender", src ? src : json_null());
        json_object_set(l, "payload", data ? data : json_null());
        char *t = json_dumps(l, JSON_COMPACT | JSON_REAL_PRECISION(16));
        json_decref(l);
        if (t) {
            json_array_append_new(lines, json_string(t));
            total += utf16_units(t, strlen(t)) + 1;
        }
        free(t);
    }
    size_t n = json_array_size(lines), first = 0;
    int truncated = from > 0 || total > RESTORE_MAX_CHARS;
    if (total > RESTORE_MAX_CHARS) {
        size_t len = strlen(REPLAY_RESTORE_TEXT_HEADER) + strlen(RESTORE_MARKER);
        for (first = n; first > 0; first--) {
            const char *t = json_string_value(json_array_get(lines, first - 1));
            size_t u = utf16_units(t, strlen(t)) + 1;
            if (len + u > RESTORE_MAX_CHARS)
                break;
            len += u;
        }
    }
    if (n) {
        store_buf_puts(&p->restore, REPLAY_RESTORE_TEXT_HEADER);
        if (truncated)
            store_buf_puts(&p->restore, RESTORE_MARKER);
        for (i = first; i < n; i++) {
            store_buf_puts(&p->restore, json_string_value(json_array_get(lines, i)));
            store_buf_putc(&p->restore, '\n');
        }
    }
    json_decref(lines);
    json_decref(j);
    store_buf_release(&resp);
}

static int prior_from_server(run_t *r, prior_t *p)
{
    char path[PATH_MAX_LEN];
    int status = 0;
    store_buf_t resp = STORE_BUF_INIT;
    path_session(path, sizeof path, r->o->session, "");
    int rc = http_retry(r, "GET", path, NULL, NULL, 0, &status, &resp);
    if (rc) {
        fprintf(stderr, "reel run: server %s unreachable\n", r->o->server);
        return rc;
    }
    if (status == 404) {
        store_buf_release(&resp);
        return REEL_OK;
    }
    json_t *j = json_loadb(resp.data ? (char *)resp.data : "", resp.len, 0, NULL);
    store_buf_release(&resp);
    const char *st = agent__str(j, "status");
    if (status != 200 || !j || (st && !strcmp(st, "deleted"))) {
        fprintf(stderr, "reel run: GET %s: HTTP %d%s\n", path, status,
                st && !strcmp(st, "deleted") ? " (session deleted)" : "");
        json_decref(j);
        return REEL_EIO;
    }
    snprintf(p->agent, sizeof p->agent, "%s", agent__str(j, "agent") ? agent__str(j, "agent") : "");
    const char *nsid = agent__str(j, "native_session_id");
    snprintf(p->nsid, sizeof p->nsid, "%s", nsid ? nsid : "");
    json_int_t n = json_integer_value(agent__get(j, "event_count"));
    json_int_t last = json_integer_value(agent__get(j, "last_sequence"));
    p->events = n > 0 ? (uint64_t)n : 0;
    json_decref(j);
    if (!p->events)
        return REEL_OK;
    char stats[PATH_MAX_LEN + 32];
    snprintf(stats, sizeof stats, "/v1/stats?session=%s", path + strlen("/v1/sessions/"));
    if (!http_retry(r, "GET", stats, NULL, NULL, 0, &status, &resp) && status == 200)
        prior_usage(p, (const char *)resp.data, resp.len);
    store_buf_clear(&resp);
    char q[96];
    snprintf(q, sizeof q, "/restore?max_events=%d&max_chars=%d&fit=newest", RESTORE_MAX_EVENTS,
             RESTORE_MAX_CHARS);
    path_session(path, sizeof path, r->o->session, q);
    rc = http_retry(r, "GET", path, NULL, NULL, 0, &status, &resp);
    j = !rc && status == 200 ? json_loadb((char *)resp.data, resp.len, 0, NULL) : NULL;
    const char *text = agent__str(j, "replay_text");
    if (text)
        store_buf_puts(&p->restore, text);
    json_decref(j);
    store_buf_release(&resp);
    if (!text && (rc || status == 404 || status == 405))
        restore_from_events(r, p, last);
    return REEL_OK;
}

/* ---- Spawning ---- */

typedef struct child {
    pid_t pid;
    int out, err, in; /* parent ends; -1 when closed */
    int exited;       /* 1 once waitpid() reaped it; 'status' is then valid */
    int status;
} child_t;

static int spawn(const char *bin, char **argv, int with_stdin, child_t *ch)
{
    int po[2], pe[2], pi[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC))
        return errno;
    if (pipe2(pe, O_CLOEXEC)) {
        int e = errno;
        close(po[0]), close(po[1]);
        return e;
    }
    if (with_stdin && pipe2(pi, O_CLOEXEC)) {
        int e = errno;
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (with_stdin)
        posix_spawn_file_actions_adddup2(&fa, pi[0], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&dfl, sigs[i]);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int e = strchr(bin, '/') ? posix_spawn(&ch->pid, bin, &fa, &at, argv, environ)
                             : posix_spawnp(&ch->pid, bin, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(po[1]);
    close(pe[1]);
    if (with_stdin)
        close(pi[0]);
    if (e) {
        close(po[0]), close(pe[0]);
        if (with_stdin)
            close(pi[1]);
        return e;
    }
    ch->out = po[0];
    ch->err = pe[0];
    ch->in = with_stdin ? pi[1] : -1;
    return 0;
}

static int write_stdin(void *arg, const char *line, size_t len)
{
    child_t *ch = arg;
    if (ch->in < 0)
        return REEL_OK;
    struct part {
        const char *p;
        size_t n;
    } parts[2] = {{line, len}, {"\n", 1}};
    for (int i = 0; i < 2; i++)
        for (size_t off = 0; off < parts[i].n;) {
            ssize_t w = write(ch->in, parts[i].p + off, parts[i].n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) { /* the agent closed its stdin or died: its exit tells */
                close(ch->in);
                ch->in = -1;
                return REEL_OK;
            }
            off += (size_t)w;
        }
    return REEL_OK;
}

/* ---- Reading lines ---- */

typedef struct linebuf {
    store_buf_t b;
    size_t scan; /* bytes already searched for '\n' */
} linebuf_t;

static void keep_tail(run_t *r, const char *line, size_t len)
{
    if (r->tail_n == TAIL_LINES) {
        free(r->tail[0]);
        memmove(r->tail, r->tail + 1, (TAIL_LINES - 1) * sizeof r->tail[0]);
        r->tail_n--;
    }
    r->tail[r->tail_n++] = strndup(line, len > TAIL_LINE_MAX ? TAIL_LINE_MAX : len);
}

static int feed_line(run_t *r, int stream, const char *line, size_t len)
{
    r->lines++;
    if (stream == AGENT_STDERR)
        keep_tail(r, line, len);
    return agent_conv_line(r->c, stream, line, len);
}

/* Reads what is available on 'fd' and converts every complete line. Returns 1 at EOF
 * (after converting a last line without '\n'), 0 otherwise, or a negative reel_err. */
static int pump(run_t *r, int fd, int stream, linebuf_t *lb)
{
    if (store_buf_reserve(&lb->b, 65536))
        return REEL_ENOMEM;
    ssize_t n = read(fd, lb->b.data + lb->b.len, lb->b.cap - lb->b.len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : 1;
    if (n == 0) {
        int rc = lb->b.len ? feed_line(r, stream, (char *)lb->b.data, lb->b.len) : 0;
        lb->b.len = 0;
        return rc ? rc : 1;
    }
    lb->b.len += (size_t)n;
    size_t start = 0;
    for (;;) {
        uint8_t *nl = memchr(lb->b.data + lb->scan, '\n', lb->b.len - lb->scan);
        if (!nl)
            break;
        size_t end = (size_t)(nl - lb->b.data);
        int rc = feed_line(r, stream, (char *)lb->b.data + start, end - start);
        if (rc)
            return rc;
        start = lb->scan = end + 1;
    }
    memmove(lb->b.data, lb->b.data + start, lb->b.len - start);
    lb->b.len -= start;
    lb->scan = lb->b.len;
    return 0;
}

static char *tail_json(run_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->tail_n; i++)
        json_array_append_new(a, agent__string(r->tail[i], strlen(r->tail[i])));
    char *t = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return t;
}

/* The main loop: until both pipes reached EOF. */
static int loop(run_t *r, child_t *ch, int *signalled)
{
    linebuf_t lo = {STORE_BUF_INIT, 0}, le = {STORE_BUF_INIT, 0};
    int open_out = 1, open_err = 1, rc = REEL_OK;
    int64_t kill_at = 0, drain_until = 0, turn_over_at = 0;
    while (!rc && (open_out || open_err)) {
        if (got_signal && !*signalled) {
            *signalled = got_signal;
            kill(ch->pid, SIGTERM);
            kill_at = now_ms() + 10000;
        }
        if (turn_over_at && !kill_at && !*signalled && !ch->exited &&
            now_ms() > turn_over_at + TURN_EXIT_GRACE_MS) {
            r->stopped_after_turn = 1;
            kill(ch->pid, SIGTERM);
            kill_at = now_ms() + 10000;
        }
        if (kill_at && now_ms() > kill_at) {
            kill(ch->pid, SIGKILL);
            kill_at = 0;
        }
        struct pollfd p[2] = {{open_out ? ch->out : -1, POLLIN, 0},
                              {open_err ? ch->err : -1, POLLIN, 0}};
        int n = poll(p, 2, r->pending ? 0 : 1000);
        if (n < 0 && errno != EINTR)
            rc = REEL_EIO;
        if (n <= 0) { /* input paused: make what we have durable */
            if (!rc)
                rc = flush(r);
            if (!ch->exited && waitpid(ch->pid, &ch->status, WNOHANG) == ch->pid) {
                ch->exited = 1;
                drain_until = now_ms() + DRAIN_MS;
            }
            if (ch->exited && now_ms() > drain_until)
                break; /* a background child holds the pipes: stop at the agent's exit */
            continue;
        }
        if (p[0].revents) {
            int e = pump(r, ch->out, AGENT_STDOUT, &lo);
            if (e < 0)
                rc = e;
            else if (e == 1)
                open_out = 0;
        }
        if (!rc && p[1].revents) {
            int e = pump(r, ch->err, AGENT_STDERR, &le);
            if (e < 0)
                rc = e;
            else if (e == 1)
                open_err = 0;
        }
        if (r->c->turn_done && !turn_over_at) {
            if (ch->in >= 0)
                close(ch->in);
            ch->in = -1;
            turn_over_at = now_ms();
        }
    }
    if (!rc && lo.b.len) /* left by an early stop: a torn last line */
        rc = feed_line(r, AGENT_STDOUT, (char *)lo.b.data, lo.b.len);
    if (!rc && le.b.len)
        rc = feed_line(r, AGENT_STDERR, (char *)le.b.data, le.b.len);
    store_buf_release(&lo.b);
    store_buf_release(&le.b);
    return rc ? rc : flush(r);
}

/* ---- agent_run ---- */

static void run_ids(char *event_prefix, char *item_prefix, size_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint16_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (uint16_t)(ts.tv_nsec ^ getpid());
    unsigned long long ms = (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
    snprintf(event_prefix, n, "run-%llx-%04x/", ms, rnd);
    snprintf(item_prefix, n, "itm_%llx%04x_", ms, rnd);
}

static int open_sink(run_t *r)
{
    if (r->o->server)
        return REEL_OK;
    store_options_t opt = {0};
    opt.no_sync = r->o->no_sync;
    int rc = store_open(r->o->data_dir, &opt, &r->st);
    if (rc)
        fprintf(stderr, "reel run: cannot open data directory '%s': %s\n", r->o->data_dir,
                store_last_error());
    return rc;
}

/* Decides resume id and prompt; builds argv. 'prompt' gets the prompt to send. */
static void plan(run_t *r, prior_t *p, agent__argv_t *argv, store_buf_t *prompt,
                 const char **resume_id)
{
    const agent_run_opts_t *o = r->o;
    int same_agent = !p->agent[0] || !strcmp(p->agent, o->ops->name);
    *resume_id = o->restore == AGENT_RESTORE_NATIVE && same_agent && p->nsid[0] ? p->nsid : NULL;
    if (!*resume_id && p->restore.len && !o->ops->stdin_driver) {
        store_buf_put(prompt, p->restore.data, p->restore.len);
        store_buf_puts(prompt, p->restore.data[p->restore.len - 1] == '\n' ? "\n" : "\n\n");
    }
    store_buf_puts(prompt, o->prompt);
    const char *bin = o->bin ? o->bin : o->ops->bin ? o->ops->bin : o->self_exe;
    agent__argv_add(argv, bin);
    o->ops->build_argv(argv, *resume_id, store_buf_cstr(prompt), o->extra);
    if (*resume_id)
        say(r, "resuming %s session %s", o->ops->name, *resume_id);
    else if (p->restore.len)
        say(r, "starting a fresh %s session with the restore text of %s", o->ops->name,
            o->session);
}

/* Waits for the agent; after a sink failure ('rc'), stops it first: its output could not
 * be kept. Fills the exit status into 'res'. */
static void reap(child_t *ch, int rc, agent_run_result_t *res)
{
    int status = ch->status;
    if (ch->pid <= 0)
        return;
    if (rc && !ch->exited)
        kill(ch->pid, SIGTERM);
    if (ch->in >= 0)
        close(ch->in);
    while (!ch->exited && waitpid(ch->pid, &status, 0) < 0 && errno == EINTR) {
    }
    close(ch->out);
    close(ch->err);
    if (WIFEXITED(status))
        res->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        res->signal = WTERMSIG(status);
}

/* session.ended with the reason, the exit status and the stderr tail; then the last flush. */
static int end_session(run_t *r, agent_run_result_t *res, int signalled)
{
    const char *reason = "error";
    int stopped = r->stopped_after_turn && !signalled &&
                  (res->signal == SIGTERM || res->signal == SIGKILL);
    if (stopped)
        reason = agent_conv_failed(r->c) ? "error" : "completed";
    else if (signalled || (res->signal && res->signal != SIGPIPE))
        reason = "terminated";
    else if (res->exit_code == 0 && !agent_conv_failed(r->c))
        reason = "completed";
    char *tail = tail_json(r);
    r->c->stream = AGENT_STDOUT;
    int rc = agent_conv_exit(r->c, reason, res->exit_code, res->signal, tail);
    free(tail);
    if (stopped) { /* stopped by the runner once its work was done: a normal end */
        res->signal = 0;
        res->exit_code = agent_conv_failed(r->c) ? 1 : 0;
    }
    int frc = flush(r);
    return rc ? rc : frc;
}

/* Runs the spawned agent to its end (or records why it could not start). */
static int drive(run_t *r, child_t *ch, int spawn_err, const char *bin, const char *resume_id,
                 const char *restore_text, agent_run_result_t *res)
{
    int signalled = 0, rc = REEL_OK;
    if (spawn_err) {
        char msg[600];
        snprintf(msg, sizeof msg, "cannot start '%s': %s", bin, strerror(spawn_err));
        fprintf(stderr, "reel run: %s\n", msg);
        keep_tail(r, msg, strlen(msg));
        res->exit_code = 127;
    } else {
        r->c->write = write_stdin;
        r->c->write_arg = ch;
        r->c->prompt = r->o->prompt;
        r->c->resume_id = resume_id;
        r->c->restore_text = restore_text;
        r->c->approve = r->o->approve;
        if (r->o->ops->drive_start)
            rc = r->o->ops->drive_start(r->c);
        if (!rc)
            rc = loop(r, ch, &signalled);
    }
    reap(ch, rc, res);
    return rc ? rc : end_session(r, res, signalled);
}

int agent_run(const agent_run_opts_t *o, agent_run_result_t *res)
{
    run_t r = {0};
    r.o = o;
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    got_signal = 0;
    if (!o->bin && !o->ops->bin && o->ops != &agent__mock_ops) {
        fprintf(stderr, "reel run: --agent %s needs --agent-bin PATH\n", o->ops->name);
        return REEL_EINVALID_PARAMETER;
    }
    if (o->server && agent__http_init(&r.http, o->server, o->token)) {
        fprintf(stderr, "reel run: --server must be http://HOST[:PORT], not '%s'\n", o->server);
        return REEL_EINVALID_PARAMETER;
    }
    signal(SIGPIPE, SIG_IGN); /* a dead agent or server must not kill the runner */

    /* 1. What the session already holds: resume id, restore text; the command line. */
    prior_t p = {0};
    int rc = o->server ? prior_from_server(&r, &p) : prior_from_store(&r, &p);
    agent__argv_t argv = {0};
    store_buf_t prompt = STORE_BUF_INIT;
    const char *resume_id = NULL;
    if (!rc)
        plan(&r, &p, &argv, &prompt, &resume_id);
    char event_prefix[64], item_prefix[64];
    run_ids(event_prefix, item_prefix, sizeof event_prefix);
    if (!rc && !(r.c = agent_conv_new(o->ops, on_event, &r, event_prefix, item_prefix)))
        rc = REEL_ENOMEM;
    if (!rc && resume_id && p.usage) /* what a resumed agent's running totals start from */
        json_object_set(r.c->state, "prior_usage", p.usage);

    /* 2. Spawn with no store open, then open the sink. */
    struct sigaction sa = {0}, old_int, old_term, old_hup;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    child_t ch = {-1, -1, -1, -1, 0, 0};
    int spawn_err = rc ? 0 : spawn(argv.v[0], argv.v, o->ops->stdin_driver, &ch);
    if (!rc)
        rc = open_sink(&r);
    int have_batch = !rc && !ingest_batch_init(&r.ib, o->session, strlen(o->session));
    if (!rc)
        rc = session_put(&r, NULL);

    /* 3. Convert and append until the agent is gone; 4. session.ended. */
    if (!rc)
        rc = drive(&r, &ch, spawn_err, argv.v[0], resume_id,
                   p.restore.len ? store_buf_cstr(&p.restore) : NULL, res);
    else
        reap(&ch, rc, res);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);

    res->events = r.appended;
    res->lines = r.lines;
    if (r.c) {
        res->unparsed = agent_conv_unparsed(r.c);
        snprintf(res->native_session_id, sizeof res->native_session_id, "%s",
                 agent_conv_native_session_id(r.c));
    }
    for (size_t i = 0; i < r.tail_n; i++)
        free(r.tail[i]);
    agent__progress_free(&r.progress);
    agent_conv_free(r.c);
    if (have_batch)
        ingest_batch_release(&r.ib);
    store_close(r.st);
    store_buf_release(&r.ndjson);
    store_buf_release(&r.fit);
    store_buf_release(&prompt);
    store_buf_release(&p.restore);
    json_decref(p.usage);
    agent__argv_free(&argv);
    return rc;
}
