/* cmd_sessions.c -- `reel sessions`: list sessions with counts, sizes and times. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char about[] =
    "Lists sessions in id order: status, agent, events, stored bytes, first and last event\n"
    "times. --json prints one session record per line, as the HTTP API serves them.\n";

struct lister {
    int json;
    unsigned long long left;
    store_buf_t buf;
    char cursor[STORE_SESSION_ID_MAX + 1];
    size_t cursor_len;
};

static void fmt_time(char *out, size_t n, int64_t ms)
{
    if (!ms) {
        snprintf(out, n, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static int print_one(void *arg, const store_session_t *rec)
{
    struct lister *l = arg;
    static const char *status[] = {"active", "ended", "deleted"};
    memcpy(l->cursor, rec->id, rec->id_len + 1);
    l->cursor_len = rec->id_len;
    if (l->json) {
        store_buf_clear(&l->buf);
        if (replay_write_session(&l->buf, rec))
            return REEL_ECORRUPT;
        printf("%s\n", store_buf_cstr(&l->buf));
    } else {
        char first[32], last[32];
        fmt_time(first, sizeof first, rec->first_event_ms);
        fmt_time(last, sizeof last, rec->event_count ? rec->updated_ms : 0);
        printf("%-32s %-8s %-10s %10llu %12llu  %-19s  %-19s\n", rec->id, status[rec->status],
               rec->agent[0] ? rec->agent : "-", (unsigned long long)rec->event_count,
               (unsigned long long)rec->bytes, first, last);
    }
    if (l->left && --l->left == 0)
        return 1;
    return 0;
}

int cmd_sessions(int argc, char **argv)
{
    const char *prog = "sessions", *data = CMD_DEFAULT_DATA;
    struct lister l = {0, 0, STORE_BUF_INIT, "", 0};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "json", .type = OPT_FLAG, .dest = &l.json, .help = "JSON lines instead of a table"},
        {.name = "limit", .type = OPT_U64, .arg = "N", .dest = &l.left,
         .help = "at most N sessions (default: all)"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .about = about, .opts = rows};
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    if (!l.json)
        printf("%-32s %-8s %-10s %10s %12s  %-19s  %-19s\n", "SESSION", "STATUS", "AGENT",
               "EVENTS", "BYTES", "FIRST EVENT (UTC)", "LAST EVENT (UTC)");
    int rc = 0, more = 1;
    while (!rc && more) { /* a page per short read */
        store_read_t r;
        if ((rc = store_read_begin(s, &r)))
            break;
        rc = store_sessions_list(&r, l.cursor, l.cursor_len, 512, print_one, &l, &more);
        store_read_end(&r);
    }
    store_buf_release(&l.buf);
    store_close(s);
    if (rc < 0) {
        cmd_error(prog, "%s", reel_strerror(rc));
        return CMD_FAIL;
    }
    return CMD_OK;
}
