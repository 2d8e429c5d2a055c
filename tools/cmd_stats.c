/* cmd_stats.c -- `reel stats`: analytics over a range of the log. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char about[] =
    "Analytics over a range of the log: events and sessions, events by type, agent and\n"
    "source, tool calls by tool name, token usage sums, session durations (first to last\n"
    "event), errors and agent.unparsed counts. A readable table, or --json (the object\n"
    "GET /v1/stats serves). With --server URL the server computes it (GET /v1/stats).\n";

static void table(const char *title, json_t *map)
{
    const char *k;
    json_t *v;
    if (!json_object_size(map))
        return;
    printf("\n%s\n", title);
    json_object_foreach(map, k, v) {
        if (json_is_integer(v))
            printf("  %-40s %12lld\n", k, (long long)json_integer_value(v));
        else
            printf("  %-40s %12.4f\n", k, json_number_value(v));
    }
}

static int hex4(const char *p, unsigned *v)
{
    char t[5] = {0};
    for (int i = 0; i < 4; i++)
        if (!p[i] || !strchr("0123456789abcdefABCDEF", p[i]))
            return 0;
    memcpy(t, p, 4);
    *v = (unsigned)strtoul(t, NULL, 16);
    return 1;
}

/* The table is for people, and jansson's parser refuses a lone surrogate escape (which
 * reel writes for a name that holds one, docs/FORMAT.md): shown as U+FFFD, in place. */
static void replace_lone_surrogates(char *t)
{
    for (char *p = t; *p; p++) {
        if (*p != '\\')
            continue;
        unsigned hi, lo;
        if (p[1] == 'u' && hex4(p + 2, &hi) && hi >= 0xd800 && hi <= 0xdfff) {
            if (hi < 0xdc00 && p[6] == '\\' && p[7] == 'u' && hex4(p + 8, &lo) && lo >= 0xdc00 &&
                lo <= 0xdfff) {
                p += 11; /* a pair */
                continue;
            }
            memcpy(p + 2, "fffd", 4);
            p += 5;
        } else if (p[1]) {
            p++; /* any other escape, "\\\\" included */
        }
    }
}

static void print_table(char *text)
{
    replace_lone_surrogates(text);
    json_t *r = json_loads(text, 0, NULL);
    if (!r)
        return;
    json_t *range = json_object_get(r, "range"), *d = json_object_get(r, "session_durations");
    printf("positions %lld..%lld: %lld events in %lld sessions, %lld errors, %lld unparsed\n",
           (long long)json_integer_value(json_object_get(r, "first_position")),
           (long long)json_integer_value(json_object_get(r, "last_position")),
           (long long)json_integer_value(json_object_get(r, "events")),
           (long long)json_integer_value(json_object_get(r, "sessions")),
           (long long)json_integer_value(json_object_get(r, "errors")),
           (long long)json_integer_value(json_object_get(r, "unparsed")));
    (void)range;
    table("events by type", json_object_get(r, "by_type"));
    table("events by agent", json_object_get(r, "by_agent"));
    table("events by source", json_object_get(r, "by_source"));
    table("tool calls by tool", json_object_get(r, "tool_calls"));
    table("usage (sums)", json_object_get(r, "usage"));
    printf("\nsession durations (first to last event): %lld sessions, mean %.1fs, p50 %.1fs, "
           "p90 %.1fs, max %.1fs\n",
           (long long)json_integer_value(json_object_get(d, "count")),
           json_integer_value(json_object_get(d, "mean_ms")) / 1e3,
           json_integer_value(json_object_get(d, "p50_ms")) / 1e3,
           json_integer_value(json_object_get(d, "p90_ms")) / 1e3,
           json_integer_value(json_object_get(d, "max_ms")) / 1e3);
    json_decref(r);
}

int cmd_stats(int argc, char **argv)
{
    const char *prog = "stats", *data = CMD_DEFAULT_DATA, *session = NULL;
    replay_stats_opts_t opt = {0};
    cmd_range_t range = {0};
    int json = 0, progress = -1;
    cmd_remote_t rem = {0};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session,
         .help = "one session only"},
        CMD_OPT_RANGE(&range),
        {.name = "json", .type = OPT_FLAG, .dest = &json, .help = "print the JSON object"},
        CMD_OPT_PROGRESS(&progress),
        CMD_OPT_REMOTE(&rem),
        OPT_END,
    };
    int st = cmd_parse_session(prog, about, rows, argc, argv, &session, 0);
    if (st != OPT_GO)
        return st;
    if (session)
        opt.session = session, opt.session_len = strlen(session);
    opt.after = range.after, opt.until = range.until;
    opt.since_ms = range.since_ms, opt.before_ms = range.before_ms;
    store_buf_t out = STORE_BUF_INIT;
    int rc;
    if (rem.url) {
        store_buf_t path = STORE_BUF_INIT;
        store_buf_printf(&path, "/v1/stats?after=%llu&until=%llu", range.after, range.until);
        if (range.since_ms)
            store_buf_printf(&path, "&since=%lld", (long long)range.since_ms);
        if (range.before_ms)
            store_buf_printf(&path, "&before=%lld", (long long)range.before_ms);
        if (session) {
            store_buf_printf(&path, "&session=");
            cmd_remote_escape(&path, session);
        }
        rc = cmd_remote_get(prog, &rem, store_buf_cstr(&path), &out);
        store_buf_release(&path);
        if (rc) {
            store_buf_release(&out);
            return CMD_FAIL;
        }
    } else {
        store_t *s = cmd_open_store(prog, data, 1, 0);
        if (!s)
            return CMD_FAIL;
        cmd_progress_t pr;
        cmd_progress_init(&pr, prog, progress);
        rc = replay_stats(s, &opt, &out, cmd_progress_cb, &pr);
        store_close(s);
    }
    if (rc) {
        cmd_store_error(prog, rc, opt.session);
    } else if (json) {
        printf("%s\n", store_buf_cstr(&out));
    } else {
        print_table((char *)store_buf_cstr(&out));
    }
    store_buf_release(&out);
    return rc ? CMD_FAIL : CMD_OK;
}
