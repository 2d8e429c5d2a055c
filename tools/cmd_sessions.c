/* cmd_sessions.c -- `reel sessions`: list sessions with counts, sizes and times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replay/replay.h"
#include "store/parse.h"
#include "tools/cmds.h"

static const char about[] =
    "Lists sessions: status, agent, events, stored bytes, first and last event times.\n"
    "By default by recent activity (last change, newest first, as GET\n"
    "/v1/sessions?order=recent); --order id in id order (ids over 480 bytes sort after the\n"
    "ids sharing their first 447). --prefix, --agent and --status filter, and combine.\n"
    "On a terminal the table is for reading: sizes in KiB/MiB, ids over 32 characters\n"
    "shortened, status in colour (never with NO_COLOR); piped, it prints exact values.\n"
    "--json prints one session record per line, as the HTTP API serves them. With\n"
    "--server URL the list comes from a reel server (GET /v1/sessions, page by page).\n";

struct lister {
    int json;
    int human;  /* a terminal: sizes in KiB/MiB, long ids shortened */
    int colour; /* a terminal without NO_COLOR */
    unsigned long long left;
    store_buf_t buf;
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
    if (l->json) {
        store_buf_clear(&l->buf);
        if (replay_write_session(&l->buf, rec))
            return REEL_ECORRUPT;
        printf("%s\n", store_buf_cstr(&l->buf));
    } else {
        char first[32], last[32], bytes[32], id[40];
        fmt_time(first, sizeof first, rec->first_event_ms);
        fmt_time(last, sizeof last, rec->event_count ? rec->updated_ms : 0);
        if (l->human)
            cmd_human_bytes(bytes, sizeof bytes, rec->bytes);
        else
            snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)rec->bytes);
        /* Ids hold no control characters (store_session_id_valid), so they print as is. */
        const char *shown = rec->id;
        if (l->human && cmd_utf8_width(rec->id) > 32) {
            cmd_utf8_prefix(id, sizeof id, rec->id, 29);
            strcat(id, "...");
            shown = id;
        }
        static const char *colours[] = {"\033[32m", "\033[2m", "\033[31m"};
        int pad = 32 - (int)cmd_utf8_width(shown);
        printf("%s%*s %s%-8s%s %-10s %10llu %12s  %-19s  %-19s\n", shown, pad > 0 ? pad : 0, "",
               l->colour ? colours[rec->status] : "", status[rec->status], l->colour ? "\033[0m" : "",
               rec->agent[0] ? rec->agent : "-", (unsigned long long)rec->event_count, bytes,
               first, last);
    }
    if (l->left && --l->left == 0)
        return 1;
    return 0;
}

/* A record as GET /v1/sessions serves it, into the fields the table prints. */
static int parse_record(const char *text, size_t n, store_session_t *rec, store_buf_t *scratch)
{
    static const char *status[] = {"active", "ended", "deleted"};
    memset(rec, 0, sizeof *rec);
    const char *v;
    size_t vn;
    if (cmd_json_member(text, n, "id", &v, &vn) || v[0] != '"')
        return -1;
    store_buf_clear(scratch);
    cmd_json_unquote(v, vn, scratch);
    snprintf(rec->id, sizeof rec->id, "%s", store_buf_cstr(scratch));
    if (!cmd_json_member(text, n, "agent", &v, &vn) && v[0] == '"') {
        store_buf_clear(scratch);
        cmd_json_unquote(v, vn, scratch);
        snprintf(rec->agent, sizeof rec->agent, "%s", store_buf_cstr(scratch));
    }
    if (!cmd_json_member(text, n, "status", &v, &vn))
        for (int i = 0; i < 3; i++)
            if (vn == strlen(status[i]) + 2 && !memcmp(v + 1, status[i], vn - 2))
                rec->status = i;
    if (!cmd_json_member(text, n, "event_count", &v, &vn))
        rec->event_count = strtoull(v, NULL, 10);
    if (!cmd_json_member(text, n, "bytes", &v, &vn))
        rec->bytes = strtoull(v, NULL, 10);
    if (!cmd_json_member(text, n, "first_event_at", &v, &vn) && v[0] == '"')
        rec->first_event_ms = store_parse_rfc3339(v + 1, vn - 2);
    if (!cmd_json_member(text, n, "updated_at", &v, &vn) && v[0] == '"')
        rec->updated_ms = store_parse_rfc3339(v + 1, vn - 2);
    return 0;
}

struct remote_page {
    struct lister *l;
    store_buf_t scratch;
    int stop;
};

static int print_remote(void *arg, const char *elem, size_t n)
{
    struct remote_page *pg = arg;
    if (pg->l->json) {
        fwrite(elem, 1, n, stdout);
        putchar('\n');
        if (pg->l->left && --pg->l->left == 0)
            return pg->stop = 1;
        return 0;
    }
    store_session_t rec;
    if (parse_record(elem, n, &rec, &pg->scratch))
        return -1;
    return pg->stop = print_one(pg->l, &rec);
}

/* The listing through GET /v1/sessions, following next_cursor. */
static int list_remote(const cmd_remote_t *r, struct lister *l, int by_id, const char *prefix,
                       const char *agent, int status)
{
    static const char *names[] = {"active", "ended", "deleted"};
    store_buf_t path = STORE_BUF_INIT, body = STORE_BUF_INIT, cursor = STORE_BUF_INIT;
    struct remote_page pg = {.l = l, .scratch = STORE_BUF_INIT};
    int rc = 0;
    for (;;) {
        store_buf_clear(&path);
        store_buf_printf(&path, "/v1/sessions?order=%s&limit=1000", by_id ? "id" : "recent");
        const char *params[][2] = {{"prefix", prefix}, {"agent", agent},
                                   {"status", status >= 0 ? names[status] : NULL},
                                   {"cursor", cursor.len ? store_buf_cstr(&cursor) : NULL}};
        for (size_t i = 0; i < 4; i++)
            if (params[i][1]) {
                store_buf_printf(&path, "&%s=", params[i][0]);
                cmd_remote_escape(&path, params[i][1]);
            }
        if (cmd_remote_get("sessions", r, store_buf_cstr(&path), &body)) {
            rc = -1;
            break;
        }
        const char *b = (const char *)body.data, *v;
        size_t n;
        int e = cmd_json_array_each(b, body.len, "sessions", print_remote, &pg);
        if (e < 0 || cmd_json_member(b, body.len, "next_cursor", &v, &n)) {
            cmd_error("sessions", "%s answered something that is not a sessions page", r->url);
            rc = -1;
            break;
        }
        if (pg.stop || v[0] != '"')
            break;
        store_buf_clear(&cursor);
        cmd_json_unquote(v, n, &cursor);
    }
    store_buf_release(&path);
    store_buf_release(&body);
    store_buf_release(&cursor);
    store_buf_release(&pg.scratch);
    return rc;
}

/* "--prefix": the bytes an id starts with; the same rules as an id, '.' and '..' allowed. */
static int take_prefix(const char *prog, const char *p)
{
    size_t n = strlen(p);
    if (!n || store_session_id_valid(p, n) || !strcmp(p, ".") || !strcmp(p, ".."))
        return 0;
    cmd_error(prog, "invalid --prefix (%zu bytes): use at most %d bytes of UTF-8 without "
              "control characters", n, STORE_SESSION_ID_MAX);
    return -1;
}

int cmd_sessions(int argc, char **argv)
{
    const char *prog = "sessions", *data = CMD_DEFAULT_DATA, *prefix = NULL, *agent = NULL;
    int order = 0, status = -1;
    cmd_remote_t remote = {0};
    struct lister l = {.buf = STORE_BUF_INIT};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "prefix", .type = OPT_STRING, .arg = "P", .dest = &prefix,
         .help = "only sessions whose id starts with P"},
        {.name = "order", .type = OPT_CHOICE, .arg = "recent|id", .dest = &order,
         .help = "by last change (updated_at), newest first, or id order", .def = "recent"},
        {.name = "agent", .type = OPT_STRING, .arg = "NAME", .dest = &agent,
         .help = "only sessions whose agent is NAME"},
        {.name = "status", .type = OPT_CHOICE, .arg = "active|ended|deleted", .dest = &status,
         .help = "only sessions with this status"},
        {.name = "json", .type = OPT_FLAG, .dest = &l.json, .help = "JSON lines instead of a table"},
        {.name = "limit", .type = OPT_U64, .arg = "N", .dest = &l.left,
         .help = "at most N sessions (default: all)"},
        CMD_OPT_REMOTE(&remote),
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .about = about, .opts = rows};
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    if (prefix && take_prefix(prog, prefix))
        return CMD_USAGE;
    store_list_t *q = calloc(1, sizeof *q);
    if (!q) {
        cmd_error(prog, "out of memory");
        return CMD_FAIL;
    }
    q->order = order ? STORE_ORDER_ID : STORE_ORDER_RECENT;
    l.human = isatty(STDOUT_FILENO);
    l.colour = l.human && !getenv("NO_COLOR");
    q->status = status;
    if (prefix && *prefix) {
        q->prefix = prefix;
        q->prefix_len = strlen(prefix);
    }
    if (agent) {
        q->agent = agent;
        q->agent_len = strlen(agent);
    }
    if (!l.json)
        printf("%-32s %-8s %-10s %10s %12s  %-19s  %-19s\n", "SESSION", "STATUS", "AGENT",
               "EVENTS", "BYTES", "FIRST EVENT (UTC)", "LAST EVENT (UTC)");
    if (remote.url) {
        free(q);
        int rc = list_remote(&remote, &l, order, prefix && *prefix ? prefix : NULL, agent, status);
        store_buf_release(&l.buf);
        return rc ? CMD_FAIL : CMD_OK;
    }
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s) {
        free(q);
        return CMD_FAIL;
    }
    int rc = 0, more = 1;
    while (!rc && more) { /* a page per short read */
        store_read_t r;
        if ((rc = store_read_begin(s, &r)))
            break;
        rc = store_sessions_query(&r, q, 512, 4096, print_one, &l, &more);
        store_read_end(&r);
    }
    store_buf_release(&l.buf);
    store_close(s);
    free(q);
    if (rc < 0) {
        cmd_error(prog, "%s", reel_strerror(rc));
        return CMD_FAIL;
    }
    return CMD_OK;
}
