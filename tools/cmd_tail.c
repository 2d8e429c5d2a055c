/* cmd_tail.c -- `reel tail`: print events as JSON lines, optionally following.
 *
 * Works directly on the data directory, also while a server or another `reel ingest`
 * appends to it (LMDB is multi-process). --follow polls the log tail every 50 ms with a
 * fresh short read, so it sees appends from any process.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay/replay.h"
#include "tools/cmds.h"

#define PAGE 1000
#define FOLLOW_POLL_MS 50

static const char about[] =
    "Prints events as JSON lines, oldest first. With --session, the events of session S\n"
    "with sequence > N; without it, every session's events with position > N. --types\n"
    "keeps only events of those types (e.g. --types error,permission.requested).\n"
    "With --server URL the events come from a reel server (GET .../events, long-polls\n"
    "with --follow), printed exactly as from a data directory.\n";


struct printer {
    store_buf_t out;
    int include_raw;
    uint64_t last; /* sequence or position of the last event printed */
    int by_position;
    size_t count; /* events printed by the current page */
    size_t max;   /* events the current page may print */
    const char *types; /* comma-separated types to keep, NULL = all */
};

static int print_one(void *arg, const store_event_view_t *ev, uint64_t key)
{
    struct printer *p = arg;
    if (p->count == p->max)
        return 1; /* the page is full: this event stays for the next one */
    store_buf_clear(&p->out);
    int rc = replay_write_event(&p->out, ev, p->include_raw);
    if (rc)
        return rc;
    store_buf_putc(&p->out, '\n');
    if (fwrite(p->out.data, 1, p->out.len, stdout) != p->out.len)
        return REEL_EIO;
    p->last = key;
    p->count++;
    return REEL_OK;
}

/* Prints up to 'max' events after p->last; returns the count or a negative reel_err.
 * '*more' says whether events past those examined exist (all skipped by --types, say). */
static long page(store_t *s, const char *session, struct printer *p, size_t max, int *more)
{
    store_read_t r;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    p->count = 0;
    p->max = max;
    replay_scan_t sc = {.session = session, .session_len = session ? strlen(session) : 0,
                        .types = p->types, .max_examined = p->types ? 10 * PAGE : max};
    rc = replay_scan(&r, &sc, p->last, print_one, p);
    store_read_end(&r);
    if (rc < 0)
        return rc;
    if (sc.scanned > p->last) /* past the events --types skipped */
        p->last = sc.scanned;
    *more = sc.more;
    fflush(stdout);
    return (long)p->count;
}

static int run(store_t *s, const char *session, struct printer *p, int follow,
               unsigned long long limit)
{
    unsigned long long printed = 0;
    while (!cmd_stop) {
        size_t max = PAGE;
        if (limit && limit - printed < max)
            max = (size_t)(limit - printed);
        int more = 0;
        long n = page(s, session, p, max, &more);
        if (n == REEL_ESESSION_NOT_FOUND && follow)
            n = 0; /* the session may appear later */
        if (n < 0) {
            cmd_store_error("tail", (int)n, session);
            return CMD_FAIL;
        }
        printed += (unsigned long long)n;
        if (limit && printed >= limit)
            break;
        if ((size_t)n < max && !more) {
            if (!follow)
                break;
            struct timespec ts = {0, FOLLOW_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return CMD_OK;
}

/* One element of a remote page: printed as is (the server rendered it like print_one). */
static int print_remote(void *arg, const char *elem, size_t n)
{
    struct printer *p = arg;
    if (fwrite(elem, 1, n, stdout) != n || putchar('\n') == EOF)
        return REEL_EIO;
    p->count++;
    return 0;
}

/* The same walk through GET /v1/sessions/{id}/events or GET /v1/events; --follow
 * long-polls (wait=20) instead of polling. */
static int run_remote(const cmd_remote_t *r, const char *session, struct printer *p, int follow,
                      unsigned long long limit)
{
    store_buf_t path = STORE_BUF_INIT, body = STORE_BUF_INIT;
    unsigned long long printed = 0;
    int rc = CMD_OK;
    while (!cmd_stop) {
        size_t max = PAGE;
        if (limit && limit - printed < max)
            max = (size_t)(limit - printed);
        store_buf_clear(&path);
        if (session) {
            store_buf_printf(&path, "/v1/sessions/");
            cmd_remote_escape(&path, session);
            store_buf_printf(&path, "/events?offset=%llu", (unsigned long long)p->last);
        } else {
            store_buf_printf(&path, "/v1/events?after=%llu", (unsigned long long)p->last);
        }
        store_buf_printf(&path, "&limit=%zu%s%s", max, p->include_raw ? "&include_raw=true" : "",
                         follow ? "&wait=20" : "");
        if (p->types) {
            store_buf_printf(&path, "&types=");
            cmd_remote_escape(&path, p->types);
        }
        if (cmd_remote_get("tail", r, store_buf_cstr(&path), &body)) {
            rc = CMD_FAIL;
            break;
        }
        const char *b = (const char *)body.data, *v;
        size_t n;
        p->count = 0;
        if (cmd_json_array_each(b, body.len, "events", print_remote, p) ||
            cmd_json_member(b, body.len, session ? "next_offset" : "next_after", &v, &n)) {
            cmd_error("tail", "%s answered something that is not an events page", r->url);
            rc = CMD_FAIL;
            break;
        }
        p->last = strtoull(v, NULL, 10);
        int more = !cmd_json_member(b, body.len, "hasMore", &v, &n) && n == 4 && !memcmp(v, "true", 4);
        fflush(stdout);
        printed += p->count;
        if ((limit && printed >= limit) || (p->count < max && !more && !follow))
            break;
    }
    store_buf_release(&path);
    store_buf_release(&body);
    return rc;
}

int cmd_tail(int argc, char **argv)
{
    const char *prog = "tail", *data = CMD_DEFAULT_DATA, *session = NULL, *types = NULL;
    cmd_remote_t remote = {0};
    unsigned long long after = 0, limit = 0;
    int follow = 0, include_raw = 0;
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session,
         .help = "one session (default: all sessions, in position order)"},
        {.name = "after", .type = OPT_U64, .arg = "N", .dest = &after,
         .help = "start after sequence (or position) N", .def = "0"},
        {.name = "limit", .type = OPT_U64, .arg = "N", .dest = &limit,
         .help = "stop after N events (default: no limit)"},
        {.name = "follow", .alias = 'f', .type = OPT_FLAG, .dest = &follow,
         .help = "keep printing new events as they are appended (Ctrl-C stops)"},
        {.name = "include-raw", .type = OPT_FLAG, .dest = &include_raw,
         .help = "include each event's 'raw' field"},
        {.name = "types", .type = OPT_STRING, .arg = "T,U,...", .dest = &types,
         .help = "only events of these types"},
        CMD_OPT_REMOTE(&remote),
        OPT_END,
    };
    int st = cmd_parse_session(prog, about, rows, argc, argv, &session, 0);
    if (st != OPT_GO)
        return st;
    cmd_stop_on_signals();
    signal(SIGPIPE, SIG_IGN);
    struct printer p = {.out = STORE_BUF_INIT, .include_raw = include_raw, .last = after,
                        .by_position = session == NULL, .types = types};
    if (remote.url)
        return run_remote(&remote, session, &p, follow, limit);
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    int rc = run(s, session, &p, follow, limit);
    store_buf_release(&p.out);
    store_close(s);
    return rc;
}
