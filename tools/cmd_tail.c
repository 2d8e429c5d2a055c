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

static const char usage[] =
    "usage: reel tail [--data DIR] [--session S] [--after N] [--limit N] [--follow]\n"
    "                 [--include-raw]\n\n"
    "Prints events as JSON lines, oldest first. With --session, the events of session S\n"
    "with sequence > N; without it, every session's events with position > N.\n\n"
    "  --data DIR       data directory [REEL_DATA] (default ./reel-data)\n"
    "  --session S      one session (default: all sessions, in position order)\n"
    "  --after N        start after sequence (or position) N (default 0)\n"
    "  --limit N        stop after N events (default: no limit)\n"
    "  --follow, -f     keep printing new events as they are appended (Ctrl-C stops)\n"
    "  --include-raw    include each event's 'raw' field\n";

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct printer {
    store_buf_t out;
    int include_raw;
    uint64_t last; /* sequence or position of the last event printed */
    int by_position;
    size_t count; /* events printed by the current page */
};

static int print_one(void *arg, const store_event_view_t *ev)
{
    struct printer *p = arg;
    store_buf_clear(&p->out);
    int rc = replay_write_event(&p->out, ev, p->include_raw);
    if (rc)
        return rc;
    store_buf_putc(&p->out, '\n');
    if (fwrite(p->out.data, 1, p->out.len, stdout) != p->out.len)
        return REEL_EIO;
    p->last = p->by_position ? ev->position : ev->sequence;
    p->count++;
    return REEL_OK;
}

/* Prints up to 'max' events after p->last; returns the count or a negative reel_err. */
static long page(store_t *s, const char *session, struct printer *p, size_t max)
{
    store_read_t r;
    int rc = store_read_begin(s, &r), more = 0;
    if (rc)
        return rc;
    p->count = 0;
    if (session)
        rc = store_events_after(&r, session, strlen(session), p->last, max, print_one, p, &more);
    else
        rc = store_feed_after(&r, p->last, max, print_one, p, &more);
    store_read_end(&r);
    if (rc)
        return rc;
    fflush(stdout);
    return (long)p->count;
}

static int run(store_t *s, const char *session, struct printer *p, int follow,
               unsigned long long limit)
{
    unsigned long long printed = 0;
    while (!stop) {
        size_t max = PAGE;
        if (limit && limit - printed < max)
            max = (size_t)(limit - printed);
        long n = page(s, session, p, max);
        if (n == REEL_ESESSION_NOT_FOUND && follow)
            n = 0; /* the session may appear later */
        if (n < 0) {
            cmd_error("tail", "%s", n == REEL_ESESSION_NOT_FOUND ? "no such session"
                                                                 : reel_strerror((int)n));
            return CMD_FAIL;
        }
        printed += (unsigned long long)n;
        if (limit && printed >= limit)
            break;
        if ((size_t)n < max) {
            if (!follow)
                break;
            struct timespec ts = {0, FOLLOW_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return CMD_OK;
}

int cmd_tail(int argc, char **argv)
{
    const char *prog = "tail", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA);
    const char *session = NULL;
    unsigned long long after = 0, limit = 0;
    int follow = 0, include_raw = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--follow") || !strcmp(a, "-f")) {
            follow = 1;
        } else if (!strcmp(a, "--include-raw")) {
            include_raw = 1;
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(a, "--session") && i + 1 < argc) {
            session = argv[++i];
        } else if (!strcmp(a, "--after") && i + 1 < argc) {
            if (cmd_parse_u64(prog, "--after", argv[++i], &after))
                return CMD_USAGE;
        } else if (!strcmp(a, "--limit") && i + 1 < argc) {
            if (cmd_parse_u64(prog, "--limit", argv[++i], &limit))
                return CMD_USAGE;
        } else {
            cmd_error(prog, "unknown or incomplete option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        }
    }
    if (cmd_check_session(prog, session, 0))
        return CMD_USAGE;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct printer p = {STORE_BUF_INIT, include_raw, after, session == NULL, 0};
    int rc = run(s, session, &p, follow, limit);
    store_buf_release(&p.out);
    store_close(s);
    return rc;
}
