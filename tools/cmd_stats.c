/* cmd_stats.c -- `reel stats`: analytics over a range of the log. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel stats [--data DIR] [--session S] [--after P] [--until P] [--since TIME]\n"
    "                  [--before TIME] [--json] [--progress]\n\n"
    "Analytics over a range of the log: events and sessions, events by type, agent and\n"
    "source, tool calls by tool name, token usage sums, session durations (first to last\n"
    "event), errors and agent.unparsed counts. A readable table, or --json (the object\n"
    "GET /v1/stats serves).\n\n"
    "  --session S            one session only\n"
    "  --after P, --until P   positions (P, Q] of the all-sessions log\n"
    "  --since T, --before T  event times [T1, T2): RFC 3339 UTC or Unix ms\n";

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

static void print_table(const char *text)
{
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
    const char *prog = "stats", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA);
    replay_stats_opts_t opt = {0};
    cmd_range_t range = {0};
    int json = 0, progress = -1, r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--progress")) {
            progress = 1;
        } else if (!v) {
            cmd_error(prog, "unknown or incomplete option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        } else if (i++, !strcmp(a, "--data")) {
            data = v;
        } else if ((r = cmd_range_opt(prog, a, v, &range))) {
            if (r < 0)
                return CMD_USAGE;
        } else if (!strcmp(a, "--session")) {
            if (cmd_check_session(prog, v, 1))
                return CMD_USAGE;
            opt.session = v, opt.session_len = strlen(v);
        } else {
            cmd_error(prog, "unknown option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        }
    }
    opt.after = range.after, opt.until = range.until;
    opt.since_ms = range.since_ms, opt.before_ms = range.before_ms;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, progress);
    store_buf_t out = STORE_BUF_INIT;
    int rc = replay_stats(s, &opt, &out, cmd_progress_cb, &pr);
    store_close(s);
    if (rc) {
        cmd_error(prog, "%s", rc == REEL_ESESSION_NOT_FOUND ? "no such session" : reel_strerror(rc));
    } else if (json) {
        printf("%s\n", store_buf_cstr(&out));
    } else {
        print_table(store_buf_cstr(&out));
    }
    store_buf_release(&out);
    return rc ? CMD_FAIL : CMD_OK;
}
