/* agents_golden.c -- golden cases for the agent converters (agents/agent.h).
 *
 * Each case is a folder tests/cases/agents/<agent>/<case>/ holding input.jsonl (native
 * lines as the agent writes them) and expected.jsonl (one universal event per line:
 * {type, source, synthetic, native_session_id, data}; event_id and time are left out).
 * Adding a case is adding files. Besides the comparison, every case checks that each
 * event carries its native line as 'raw' and that valid input ("broken*" cases aside)
 * yields no agent.unparsed. REEL_UPDATE_GOLDEN=1 rewrites expected.jsonl from the
 * converter's output (review the diff before committing it).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "agents/agent.h"

#define CASES "tests/cases/agents"

typedef struct got {
    json_t *events; /* rendered events */
    json_t *raws;   /* the 'raw' of each event, parsed */
    int bad_data;
} got_t;

static int collect(void *arg, const agent_event_t *ev)
{
    got_t *g = arg;
    json_t *data = json_loadb(ev->data, ev->data_len, 0, NULL);
    json_t *raw = ev->raw ? json_loadb(ev->raw, ev->raw_len, JSON_DECODE_ANY, NULL) : json_null();
    if (!data || !raw)
        g->bad_data++;
    json_array_append_new(g->events,
                          json_pack("{s:s,s:s,s:b,s:s?,s:o}", "type", ev->type, "source",
                                    ev->source, "synthetic", ev->synthetic, "native_session_id",
                                    ev->native_session_id, "data", data ? data : json_null()));
    json_array_append_new(g->raws, raw ? raw : json_null());
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

/* The raw an event must carry for native line 'line': the line as JSON, else a string. */
static json_t *expected_raw(const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY, NULL);
    return j ? j : json_stringn(line, len);
}

/* Runs one case; returns the number of problems (printed with the case name). */
static int run_case(const char *agent, const char *name)
{
    char path[512];
    size_t len;
    snprintf(path, sizeof path, CASES "/%s/%s/input.jsonl", agent, name);
    char *in = slurp(path, &len);
    if (!in) {
        cr_log_error("%s: cannot read", path);
        return 1;
    }
    got_t g = {json_array(), json_array(), 0};
    agent_conv_t *c = agent_conv_new(agent_find(agent), collect, &g, "t/", NULL);
    int problems = 0;
    json_t *line_raw = json_array(); /* per event: the raw its line should give */
    for (size_t off = 0; off < len;) {
        char *nl = memchr(in + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - in) : len;
        size_t before = json_array_size(g.events);
        if (agent_conv_line(c, AGENT_STDOUT, in + off, end - off)) {
            cr_log_error("%s/%s: agent_conv_line failed", agent, name);
            problems++;
        }
        int blank = strspn(in + off, " \t\r") >= end - off;
        if (json_array_size(g.events) == before && !blank) {
            cr_log_error("%s/%s: line at byte %zu gave no event", agent, name, off);
            problems++;
        }
        while (json_array_size(line_raw) < json_array_size(g.events))
            json_array_append_new(line_raw, expected_raw(in + off, end - off));
        off = end + 1;
    }
    agent_conv_finish(c);
    agent_conv_free(c);
    while (json_array_size(line_raw) < json_array_size(g.events))
        json_array_append_new(line_raw, json_null()); /* closing events carry no raw */
    problems += g.bad_data;
    size_t i;
    json_t *ev;
    int unparsed = 0;
    json_array_foreach(g.events, i, ev) {
        if (!strcmp(json_string_value(json_object_get(ev, "type")), "agent.unparsed"))
            unparsed++;
        if (!json_equal(json_array_get(g.raws, i), json_array_get(line_raw, i))) {
            cr_log_error("%s/%s: event %zu does not carry its native line as raw", agent, name, i);
            problems++;
        }
    }
    int broken = !strncmp(name, "broken", 6);
    if (broken ? unparsed == 0 : unparsed != 0) {
        cr_log_error("%s/%s: %d agent.unparsed events", agent, name, unparsed);
        problems++;
    }

    snprintf(path, sizeof path, CASES "/%s/%s/expected.jsonl", agent, name);
    if (getenv("REEL_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        json_array_foreach(g.events, i, ev) {
            char *t = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(16));
            fprintf(f, "%s\n", t);
            free(t);
        }
        fclose(f);
    }
    char *exp = slurp(path, &len);
    size_t n = 0;
    for (size_t off = 0; exp && off < len; n++) {
        char *nl = memchr(exp + off, '\n', len - off);
        size_t end = nl ? (size_t)(nl - exp) : len;
        json_t *want = json_loadb(exp + off, end - off, 0, NULL);
        json_t *have = json_array_get(g.events, n);
        if (!json_equal(want, have)) {
            char *h = have ? json_dumps(have, JSON_COMPACT) : NULL;
            cr_log_error("%s/%s: event %zu differs\n  want %.*s\n  have %s", agent, name, n,
                         (int)(end - off), exp + off, h ? h : "(none)");
            free(h);
            problems++;
        }
        json_decref(want);
        off = end + 1;
    }
    if (!exp || n != json_array_size(g.events)) {
        cr_log_error("%s/%s: %zu expected events, %zu converted", agent, name, n,
                     json_array_size(g.events));
        problems++;
    }
    free(exp);
    free(in);
    json_decref(g.events);
    json_decref(g.raws);
    json_decref(line_raw);
    return problems;
}

static void run_agent(const char *agent)
{
    char path[256];
    snprintf(path, sizeof path, CASES "/%s", agent);
    DIR *d = opendir(path);
    cr_assert(d, "cannot open %s (run the unit tests from the repository root)", path);
    int cases = 0, problems = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            cases++;
            problems += run_case(agent, e->d_name);
        }
    closedir(d);
    cr_assert_gt(cases, 0, "no case for %s", agent);
    cr_assert_eq(problems, 0, "%d problems in the %s cases (see the log above)", problems, agent);
}

TestSuite(agents_golden, .timeout = 60);

Test(agents_golden, claude_cases_convert_as_expected) { run_agent("claude"); }
Test(agents_golden, codex_cases_convert_as_expected) { run_agent("codex"); }
Test(agents_golden, opencode_cases_convert_as_expected) { run_agent("opencode"); }
Test(agents_golden, amp_cases_convert_as_expected) { run_agent("amp"); }
Test(agents_golden, acp_cases_convert_as_expected) { run_agent("acp"); }
