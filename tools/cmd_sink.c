/* cmd_sink.c -- `reel sink postgres`: follows a server's feed with changes into
 * PostgreSQL, exactly once (sink.h; docs/CLUSTER.md "Sink").
 *
 * The loop: read a page of the feed after the checkpoint (a long-poll when caught up),
 * parse it, write it and the new checkpoint in one PostgreSQL transaction (sink_pg.c),
 * report the position to the server (POST /v1/sinks/NAME: lag metric and backpressure),
 * repeat. Killed at any point, a restarted sink reads the checkpoint and asks for what
 * comes after it: nothing is lost, nothing is written twice.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "replay/replay.h"
#include "store/json.h"
#include "tools/cmds.h"
#include "tools/sink.h"

#define WAIT_S 2              /* long-poll of an idle feed; also the stop latency */
#define PROGRESS_MS 5000      /* progress line period */
#define IDLE_REPORT_MS 1000   /* position reports while idle (one after every commit) */


struct settings {
    const char *kind;
    cmd_remote_t remote;
    const char *data; /* read the data directory itself (--server then only hears reports) */
    const char *dsn, *name, *schema;
    const char *cell;
    unsigned long long batch;
    int once, quiet;
};

/* ---- HTTP (libcurl, one handle: keep-alive) ---- */

typedef struct http {
    CURL *c;
    struct curl_slist *headers;
    store_buf_t body;
    const char *base;
    size_t base_len;
    char error[300];
    char cell[80]; /* the answer's Reel-Cell header (a cell of a cluster), "" when none */
} http_t;

/* Keeps the Reel-Cell header: the cell a cluster member says it is. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    http_t *h = arg;
    size_t len = size * n;
    if (len > 10 && !strncasecmp(p, "Reel-Cell:", 10)) {
        const char *v = p + 10;
        size_t vl = len - 10;
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        snprintf(h->cell, sizeof h->cell, "%.*s", (int)(vl < 79 ? vl : 79), v);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    store_buf_t *b = arg;
    store_buf_put(b, p, size * n);
    return store_buf_failed(b) ? 0 : size * n;
}

static int http_init(http_t *h, const cmd_remote_t *r)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!(h->c = curl_easy_init()))
        return -1;
    h->base = r->url ? r->url : "";
    h->base_len = strlen(h->base);
    while (h->base_len && h->base[h->base_len - 1] == '/')
        h->base_len--;
    if (r->token) {
        store_buf_t a = STORE_BUF_INIT;
        store_buf_printf(&a, "Authorization: Bearer %s", r->token);
        h->headers = curl_slist_append(h->headers, store_buf_cstr(&a));
        store_buf_release(&a);
    }
    h->headers = curl_slist_append(h->headers, "Content-Type: application/json");
    return 0;
}

static void http_free(http_t *h)
{
    curl_slist_free_all(h->headers);
    if (h->c)
        curl_easy_cleanup(h->c);
    store_buf_release(&h->body);
}

/* GET (post NULL) or POST 'path'; the body in h->body. 0 for a 2xx, else -1 with h->error. */
static int http_call(http_t *h, const char *path, const char *post, long timeout_s)
{
    store_buf_t url = STORE_BUF_INIT;
    store_buf_printf(&url, "%.*s%s", (int)h->base_len, h->base, path);
    store_buf_clear(&h->body);
    h->cell[0] = 0;
    curl_easy_setopt(h->c, CURLOPT_URL, store_buf_cstr(&url));
    curl_easy_setopt(h->c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h->c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->c, CURLOPT_WRITEDATA, &h->body);
    curl_easy_setopt(h->c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h->c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h->c, CURLOPT_NOSIGNAL, 1L);
    if (post) {
        curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, post);
    } else {
        curl_easy_setopt(h->c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode cc = curl_easy_perform(h->c);
    long status = 0;
    curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &status);
    int rc = 0;
    if (cc != CURLE_OK) {
        snprintf(h->error, sizeof h->error, "%s: %s", store_buf_cstr(&url),
                 curl_easy_strerror(cc));
        rc = -1;
    } else if (status < 200 || status > 299) {
        snprintf(h->error, sizeof h->error, "%s: HTTP %ld: %.200s", store_buf_cstr(&url), status,
                 h->body.len ? store_buf_cstr(&h->body) : "");
        rc = -1;
    }
    store_buf_release(&url);
    return rc;
}

/* ---- the loop ---- */

typedef struct run {
    const struct settings *st;
    store_t *store;  /* --data: the data directory, read-only; else NULL */
    http_t http;
    sink_pg_t pg;
    sink_page_t page;
    sink_page_t again; /* one event read again (refetch) */
    uint64_t events, changes;       /* written since start */
    uint64_t last_report_ms, reported, lag;
    uint64_t prog_ms, prog_events, prog_changes;
    int report_failed;
    char fence_said[600]; /* the shard fence last named (said once) */
    int said_replicated; /* the state the last line said */
} run_t;

static void say(const run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const run_t *r, const char *fmt, ...)
{
    if (r->st->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "reel sink: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Tells the server our committed cursor and whether PostgreSQL replicates it
 * synchronously (lag metric, backpressure, and the watermark of serve --ack replica, whose
 * writes wait for it: so right after every commit, and every second while idle, when the
 * replication is checked again). Best effort. */
static void report(run_t *r, int committed)
{
    if (!r->st->remote.url)
        return; /* --data without --server: nobody to tell */
    uint64_t now = cmd_now_ms();
    if (!committed && now - r->last_report_ms < IDLE_REPORT_MS)
        return;
    if (!committed)
        sink_pg_check_replication(&r->pg); /* a standby may have gone, or come */
    char path[128], body[320];
    snprintf(path, sizeof path, "/v1/sinks/%s", r->st->name);
    store_buf_t why = STORE_BUF_INIT;
    store_json_write_string(&why, r->pg.why, strlen(r->pg.why));
    snprintf(body, sizeof body, "{\"position\":%llu,\"index\":%u,\"replicated\":%s,"
             "\"why\":%s}", (unsigned long long)r->pg.position, r->pg.index,
             r->pg.replicated ? "true" : "false", store_buf_cstr(&why));
    store_buf_release(&why);
    if (r->pg.replicated != r->said_replicated) {
        r->said_replicated = r->pg.replicated;
        if (r->pg.replicated)
            say(r, "PostgreSQL replicates synchronously: reports count for serve --ack replica");
        else
            say(r, "not replicated synchronously (%s): serve --ack replica does not count "
                "these reports", r->pg.why);
    }
    r->last_report_ms = now;
    if (http_call(&r->http, path, body, 10)) {
        if (!r->report_failed++)
            say(r, "cannot report the position to the server (lag metric and backpressure "
                "will not see this sink): %s", r->http.error);
        return;
    }
    if (r->report_failed)
        say(r, "reporting the position again");
    r->report_failed = 0;
    r->reported = r->pg.position;
    store_buf_t *b = &r->http.body;
    r->lag = sink_json_u64((const char *)b->data, b->len, "lag", NULL);
}

static void progress(run_t *r)
{
    uint64_t now = cmd_now_ms();
    if (now - r->prog_ms < PROGRESS_MS)
        return;
    double s = (double)(now - r->prog_ms) / 1000.0;
    say(r, "position %llu: %llu events and %llu changes in %.1f s (%.0f events/s), lag %llu",
        (unsigned long long)r->pg.position, (unsigned long long)(r->events - r->prog_events),
        (unsigned long long)(r->changes - r->prog_changes), s,
        (double)(r->events - r->prog_events) / s, (unsigned long long)r->lag);
    r->prog_ms = now;
    r->prog_events = r->events;
    r->prog_changes = r->changes;
}

/* Connects and takes the cell; retried while PostgreSQL is unreachable, after 100 ms, then
 * twice as long each time up to 2 s: a failover (the dsn naming every host with
 * target_session_attrs=read-write finds the promoted standby) costs a fraction of a second,
 * a long outage one attempt every 2 s. 0 or -1. */
static int pg_start(run_t *r)
{
    useconds_t delay = 100000;
    for (int tries = 0; !cmd_stop; tries++) {
        if (!sink_pg_open(&r->pg, r->st->dsn) && !sink_pg_claim(&r->pg)) {
            say(r, "cell %s, epoch %lld, schema %s: resuming after position %llu",
                r->pg.cell, (long long)r->pg.epoch, r->pg.schema,
                (unsigned long long)r->pg.position);
            sink_pg_check_replication(&r->pg);
            r->said_replicated = !r->pg.replicated; /* the first report says which */
            return 0;
        }
        sink_pg_close(&r->pg);
        if (tries == 0 && r->st->once)
            return -1;
        usleep(delay);
        delay = delay >= 1000000 ? 2000000 : delay * 2;
    }
    return -1;
}

/* ---- --data: the page the server would give, written from the data directory ---- */

static int local_event(void *arg, const store_event_view_t *ev)
{
    store_buf_t *out = arg;
    if (out->data[out->len - 1] != '[')
        store_buf_putc(out, ',');
    size_t mark = out->len;
    int rc = store_event_check(ev);
    if (!rc)
        rc = replay_write_event(out, ev, REPLAY_RAW);
    return rc ? rc : replay_write_event_body(out, mark, ev, 1);
}

static int local_change(void *arg, const store_change_view_t *ch)
{
    store_buf_t *out = arg;
    if (out->data[out->len - 1] != '[')
        store_buf_putc(out, ',');
    return replay_write_change(out, ch);
}

/* A page of the feed with changes read from the data directory into r->http.body, with
 * the same JSON the server writes, so one parser serves both. When nothing is new it
 * waits for the next LMDB transaction of any process (polled every 50 ms, at most
 * WAIT_S). 0, or -2 after printing why. */
static int local_page(run_t *r, uint64_t after, uint32_t index, size_t limit, int wait)
{
    for (int waited = 0;; waited += 50) {
        uint64_t txn = store_last_txn(r->store);
        store_buf_t *out = &r->http.body;
        store_buf_clear(out);
        store_buf_puts(out, "{\"events\":[");
        store_read_t rd;
        int more = 0, rc = store_read_begin(r->store, &rd);
        if (!rc)
            rc = store_feed_changes_after(&rd, after, index, limit, local_event, local_change,
                                          out, &more);
        if (!rc)
            store_read_end(&rd);
        if (rc) {
            cmd_store_error("sink", rc, NULL);
            return -2;
        }
        store_buf_printf(out, "],\"hasMore\":%s}", more ? "true" : "false");
        if (store_buf_failed(out)) {
            cmd_error("sink", "out of memory");
            return -2;
        }
        int empty = out->len == strlen("{\"events\":[],\"hasMore\":false}");
        if (!empty || !wait || r->st->once || cmd_stop || waited >= WAIT_S * 1000)
            return 0;
        while (!cmd_stop && store_last_txn(r->store) == txn && waited < WAIT_S * 1000) {
            usleep(50000);
            waited += 50;
        }
    }
}

/* Reads the page after cursor ('after', 'index') into r->page, long-polling when 'wait'
 * and nothing is new; 0 with page.n items (maybe none), -1 (reported, retried) or -2
 * (stop). */
static int next_page(run_t *r, uint64_t after, uint32_t index, int wait, int *more)
{
    if (r->store) {
        int rc = local_page(r, after, index, r->st->batch, wait);
        if (rc)
            return rc;
        r->page.after = after;
        r->page.after_index = index;
        if (sink_page_parse(&r->page, &r->http.body, more)) {
            cmd_error("sink", "a page read from '%s' does not parse (position %llu)",
                      r->st->data, (unsigned long long)after);
            return -2;
        }
        return 0;
    }
    char path[256], cursor[48];
    if (index)
        snprintf(cursor, sizeof cursor, "%llu.%u", (unsigned long long)after, index);
    else
        snprintf(cursor, sizeof cursor, "%llu", (unsigned long long)after);
    /* unreplicated=1: the feed past the --ack replica watermark, which is ours to move */
    snprintf(path, sizeof path, "/v1/events?changes=1&bodies=1&include_raw=1&unreplicated=1"
             "&after=%s&limit=%llu&wait=%d", cursor, r->st->batch,
             r->st->once || !wait ? 0 : WAIT_S);
    static int down;
    if (http_call(&r->http, path, NULL, WAIT_S + 30)) {
        if (!down++)
            say(r, "cannot read the feed%s: %s", r->st->once ? "" : " (retrying every second)",
                r->http.error);
        return -1;
    }
    if (down)
        say(r, "reading the feed again");
    down = 0;
    if (r->http.cell[0] && strcmp(r->http.cell, r->st->cell)) {
        cmd_error("sink", "%s is cell '%s' of its cluster, but this sink copies cell '%s' "
                  "(--cell): it would write one cell's data under another's id",
                  r->st->remote.url, r->http.cell, r->st->cell);
        return -2;
    }
    r->page.after = after;
    r->page.after_index = index;
    if (sink_page_parse(&r->page, &r->http.body, more)) {
        cmd_error("sink", "the server's answer is not a page of the feed with changes "
                  "(position %llu): %.200s", (unsigned long long)after,
                  store_buf_cstr(&r->http.body));
        return -2;
    }
    return 0;
}

/* sink_pg_t.refetch: the event at 'position' as the source serves it now. The cursor just
 * before it is (position - 1, the last index), so a page of one item is that event if it
 * is still there. */
static int refetch(void *arg, uint64_t position, const sink_item_t **out)
{
    run_t *r = arg;
    *out = NULL;
    if (!position)
        return 0;
    int rc, more = 0;
    if (r->store) {
        rc = local_page(r, position - 1, UINT32_MAX, 1, 0);
    } else {
        char path[200];
        snprintf(path, sizeof path, "/v1/events?changes=1&bodies=1&include_raw=1&limit=1"
                 "&unreplicated=1&after=%llu.%u", (unsigned long long)(position - 1), UINT32_MAX);
        rc = http_call(&r->http, path, NULL, 30);
        if (rc)
            cmd_error("sink", "reading a redacted event again: %s", r->http.error);
    }
    if (rc)
        return -1;
    r->again.after = position - 1;
    r->again.after_index = 0;
    if (sink_page_parse(&r->again, &r->http.body, &more)) {
        cmd_error("sink", "reading a redacted event again: not a page of the feed");
        return -1;
    }
    if (r->again.n)
        *out = &r->again.items[0];
    return 0;
}

/* After a failed write: CMD_FAIL when a statement failed (a retry would not mend it), -1
 * once reconnected (the page is read again from the checkpoint), STOPPED when stopped
 * while reconnecting. */
#define STOPPED (-3)
static int write_failed(run_t *r)
{
    if (sink_pg_ok(&r->pg))
        return CMD_FAIL;
    say(r, "lost the connection to PostgreSQL: reconnecting");
    sink_pg_close(&r->pg);
    if (pg_start(r))
        return cmd_stop ? STOPPED : CMD_FAIL;
    return -1;
}

/* Writes the page in hand and, while PostgreSQL commits it (its fsync and the synchronous
 * standby's flush), reads the next one without waiting, so that it can be written as soon
 * as this commit is reported. 0 (r->page holds the next page, '*ready' when it has
 * items), -1 (retry from the checkpoint), STOPPED, or an exit status (> 0). */
/* The page stopped before an item of a shard that moved away (sink_fence.c): what came
 * before it is written; the item is never copied. The sink says so once, and tries
 * again every second (a fence can be lifted; a cell rebuilt from PostgreSQL no longer has
 * the item); its reported position does not pass the item, so under --ack replica the
 * old owner never acknowledges it. --once stops here with status 4. */
static int shard_fenced(run_t *r)
{
    if (strcmp(r->fence_said, r->pg.fence_note)) {
        fprintf(stderr, "reel sink: stopped at a shard fence: %s; the sink copies nothing after "
                "it (docs/CLUSTER.md \"Moving shards\": rebuild this cell with reel cluster "
                "restore)\n", r->pg.fence_note);
        snprintf(r->fence_said, sizeof r->fence_said, "%s", r->pg.fence_note);
    }
    if (r->st->once)
        return SINK_SHARD_FENCED;
    sleep(1);
    return 0;
}

static int write_page(run_t *r, int *ready, int *more)
{
    size_t n = r->page.n, events = 0;
    for (size_t i = 0; i < n; i++)
        events += !r->page.items[i].is_change;
    int rc = sink_pg_write_send(&r->pg, r->page.items, n);
    if (rc == SINK_FENCED) {
        fprintf(stderr, "reel sink: fenced: cell %s is now held by %s; this sink (epoch "
                "%lld, owner '%s') stops without writing\n", r->pg.cell, r->pg.fenced_by,
                (long long)r->pg.epoch, r->pg.owner);
        return SINK_FENCED;
    }
    if (rc)
        return write_failed(r);
    if (r->pg.fence_cut) { /* only the items before the fenced one were written */
        events = 0;
        for (size_t i = 0; i < r->pg.written; i++)
            events += !r->page.items[i].is_change;
        n = r->pg.written;
    }
    int next = next_page(r, r->pg.pending_position, r->pg.pending_index, 0, more);
    if (sink_pg_write_finish(&r->pg))
        return write_failed(r);
    r->events += events;
    r->changes += n - events;
    report(r, 1); /* at once: a write of serve --ack replica waits for it */
    if (r->pg.fence_cut && (rc = shard_fenced(r)))
        return rc;
    if (next == -2)
        return CMD_FAIL;
    *ready = next == 0 && r->page.n > 0;
    return 0;
}

static int loop(run_t *r)
{
    r->prog_ms = cmd_now_ms();
    int resend = 1; /* the first report at once, not after the first long-poll */
    int ready = 0, more = 0;
    while (!cmd_stop) {
        /* A server that was away (restarted) knows no watermark until we report: with
         * --ack replica its reads show nothing until then, so report before waiting. */
        if (resend) {
            report(r, 1);
            resend = r->report_failed > 0;
        }
        int rc = ready ? 0 : next_page(r, r->pg.position, r->pg.index, 1, &more);
        ready = 0;
        if (rc == -2)
            return CMD_FAIL;
        if (rc) {
            resend = 1;
            if (r->st->once)
                return CMD_FAIL; /* --once copies what is there, it does not wait */
            sleep(1);
            continue;
        }
        if (r->page.n) {
            if ((rc = write_page(r, &ready, &more)) > 0)
                return rc;
            if (rc == STOPPED)
                return CMD_OK;
            progress(r);
            continue;
        }
        report(r, 0);
        progress(r);
        if (r->st->once && !more)
            break;
    }
    report(r, 1);
    return CMD_OK;
}

/* ---- the command ---- */

static const char about[] =
    "Follows the feed with changes of a reel server (GET /v1/events?changes=1) into\n"
    "PostgreSQL tables in schema SCHEMA: events (sandbox-agent's events shape plus cell,\n"
    "position, raw, the chain hash and the body to rebuild from), sessions, changes, and\n"
    "sink (the checkpoint and the fencing epoch of each cell). Each page is one transaction\n"
    "together with its checkpoint: a killed sink resumes where it committed, and nothing is\n"
    "written twice. Starting a sink for a cell fences the one running before it (that one\n"
    "stops with exit status 3). A shard moved away (reel cluster move) is fenced: the sink\n"
    "copies nothing of it written after the move, stops before it and says so (--once:\n"
    "exit status 4). The sink reports its position to the server (POST\n"
    "/v1/sinks/NAME, a token with the full scope) after every commit and every second:\n"
    "reel_sink_lag_events{sink=NAME}, serve --max-sink-lag and serve --ack replica read it.\n"
    "The report says whether PostgreSQL replicates synchronously (synchronous_commit on, a\n"
    "standby in pg_stat_replication as sync or quorum; checked after every commit), which\n"
    "serve --ack replica requires (docs/CLUSTER.md \"Acknowledged by a replica\").\n"
    "Progress goes to stderr every 5 s. SIGINT/SIGTERM stop it after the page in hand.\n"
    "With --data DIR it reads the data directory itself, the same items with the same\n"
    "checks, and reports to --server only if that is given too. See docs/CLUSTER.md\n"
    "\"Sink\".\n";

static int parse(struct settings *st, int argc, char **argv, int *nargs)
{
    const opt_t rows[] = {
        CMD_OPT_REMOTE(&st->remote),
        {.name = "data", .type = OPT_STRING, .arg = "DIR", .env = "REEL_SINK_DATA",
         .dest = &st->data, .help = "read the data directory itself (read-only; a server on it\n"
                                    "may run); --server, if given, then only hears the position"},
        {.name = "dsn", .type = OPT_STRING, .arg = "DSN", .env = "REEL_SINK_DSN",
         .dest = &st->dsn, .required = 1,
         .help = "PostgreSQL connection (libpq: \"host=... dbname=...\" or postgresql://...)"},
        {.name = "cell", .type = OPT_STRING, .arg = "ID", .env = "REEL_CELL", .dest = &st->cell,
         .help = "the cell the server is (its id in the cluster map; rows carry it)",
         .def = "0"},
        {.name = "name", .type = OPT_STRING, .arg = "NAME", .env = "REEL_SINK_NAME",
         .dest = &st->name, .help = "the name the server knows this sink by ([A-Za-z0-9._-])",
         .def = "postgres-<ID>"},
        {.name = "schema", .type = OPT_STRING, .arg = "SCHEMA", .env = "REEL_SINK_SCHEMA",
         .dest = &st->schema, .help = "PostgreSQL schema of the tables", .def = "reel"},
        {.name = "batch", .type = OPT_U64, .arg = "N", .dest = &st->batch, .min = 1,
         .max = 10000, .help = "events and changes per page and transaction", .def = "1000"},
        {.name = "once", .type = OPT_FLAG, .dest = &st->once,
         .help = "copy what the feed holds now, then exit"},
        {.name = "quiet", .alias = 'q', .type = OPT_FLAG, .dest = &st->quiet,
         .help = "no progress lines"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = "sink",
                           .synopsis = "postgres (--server URL | --data DIR) --dsn DSN [options]",
                           .args = "postgres", .about = about, .opts = rows};
    return opt_parse(&cmd, argc, argv, nargs);
}

static int check(struct settings *st, int nargs, char **argv, char *name_buf, size_t cap)
{
    if (nargs != 1 || strcmp(argv[0], "postgres")) {
        cmd_error("sink", "the one sink is 'postgres': reel sink postgres --server URL --dsn DSN");
        return -1;
    }
    if ((!st->remote.url && !st->data) || !st->dsn) {
        cmd_error("sink", "--server URL (the reel server to follow) or --data DIR (its data "
                  "directory), and --dsn DSN (the PostgreSQL to write to) are needed");
        return -1;
    }
    for (const char *p = st->schema; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
              (p > st->schema && *p >= '0' && *p <= '9'))) {
            cmd_error("sink", "--schema '%s': letters, digits and '_' only", st->schema);
            return -1;
        }
    size_t c = strlen(st->cell);
    if (!c || c > 63 || strspn(st->cell, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789-_") != c) {
        cmd_error("sink", "--cell '%s': a cell id is 1..63 characters of A-Z a-z 0-9 - _ "
                  "(as in the cluster map)", st->cell);
        return -1;
    }
    if (!st->name) {
        snprintf(name_buf, cap, "postgres-%s", st->cell);
        st->name = name_buf;
    }
    size_t n = strlen(st->name);
    if (!n || n > 63 || strspn(st->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789._-") != n) {
        cmd_error("sink", "--name '%s': 1..63 characters of A-Z a-z 0-9 . _ -", st->name);
        return -1;
    }
    return 0;
}

int cmd_sink(int argc, char **argv)
{
    struct settings st = {.schema = "reel", .batch = 1000, .cell = "0"};
    int nargs = 0;
    int rc = parse(&st, argc, argv, &nargs);
    if (rc != OPT_GO)
        return rc;
    char name[96], host[64] = "?";
    if (check(&st, nargs, argv, name, sizeof name))
        return CMD_USAGE;
    cmd_stop_on_signals();
    signal(SIGPIPE, SIG_IGN);
    run_t r = {.st = &st};
    r.pg.cell = st.cell;
    r.pg.refetch = refetch;
    r.pg.refetch_arg = &r;
    r.pg.schema = st.schema;
    gethostname(host, sizeof host - 1);
    snprintf(r.pg.owner, sizeof r.pg.owner, "%s@%s:%d", st.name, host, (int)getpid());
    if (http_init(&r.http, &st.remote)) {
        cmd_error("sink", "cannot start an HTTP client");
        return CMD_FAIL;
    }
    if (st.data && !(r.store = cmd_open_store("sink", st.data, 1, 0))) {
        http_free(&r.http);
        return CMD_FAIL;
    }
    rc = pg_start(&r) ? (cmd_stop ? CMD_OK : CMD_FAIL) : loop(&r);
    if (rc == CMD_OK)
        say(&r, "stopped at position %llu (%llu events, %llu changes written)",
            (unsigned long long)r.pg.position, (unsigned long long)r.events,
            (unsigned long long)r.changes);
    sink_pg_close(&r.pg);
    store_close(r.store);
    http_free(&r.http);
    free(r.page.items);
    free(r.page.ps.a.p);
    free(r.again.items);
    free(r.again.ps.a.p);
    return rc;
}
