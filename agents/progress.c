/* progress.c -- the lines `reel run` prints on stderr while an agent works (--progress, or
 * stderr a terminal): one per tool call, failed tool, turn and error, and a summary when
 * the session ends (docs/AGENTS.md "Progress"). Fed the converted events, in order, on the
 * runner's thread; the state is the run's (agent__progress_t in agent_int.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent_int.h"


/* 'n' with thousands separators ("1,234"). */
static void thousands(char *out, size_t n, long long v)
{
    char t[32];
    int len = snprintf(t, sizeof t, "%lld", v < 0 ? -v : v), o = 0;
    if (v < 0 && n > 1)
        out[o++] = '-';
    for (int i = 0; i < len && (size_t)o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = t[i];
    }
    out[o] = 0;
}

/* One line of at most 'max' bytes of 's' (newlines and tabs as spaces, "..." when cut,
 * never inside a UTF-8 sequence). */
static void one_line(char *out, size_t max, const char *s)
{
    size_t o = 0;
    for (; s && *s && o + 4 < max; s++)
        out[o++] = *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s;
    if (s && *s) {
        while (o && ((unsigned char)out[o - 1] & 0xc0) == 0x80)
            o--; /* a continuation byte: drop the partial sequence */
        if (o && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
            o--;
        memcpy(out + o, "...", 3), o += 3;
    }
    out[o] = 0;
}

/* What a tool call is about, in a few words: its command, path, pattern, url or query,
 * else its arguments as compact JSON. */
static void tool_summary(char *out, size_t n, json_t *args)
{
    static const char *const keys[] = {"command", "cmd", "file_path", "path", "filePath",
                                       "pattern", "url", "query", "description", "prompt"};
    json_t *cmd = NULL;
    for (size_t i = 0; !cmd && i < sizeof keys / sizeof keys[0]; i++)
        if (json_is_string(agent__get(args, keys[i])) ||
            json_is_array(agent__get(args, keys[i])))
            cmd = agent__get(args, keys[i]);
    char *t = NULL;
    if (json_is_string(cmd))
        one_line(out, n, json_string_value(cmd));
    else if (cmd || (args && !json_is_null(args) && json_object_size(args)))
        t = json_dumps(cmd ? cmd : args, JSON_COMPACT | JSON_ENCODE_ANY), one_line(out, n, t);
    else if (json_is_string(args))
        one_line(out, n, json_string_value(args));
    else
        out[0] = 0;
    free(t);
}

void agent__progress_event(agent__progress_t *r, const agent_event_t *ev)
{
    const char *t = ev->type;
    if (strcmp(t, "usage") && strcmp(t, "item.completed") && strcmp(t, "error") &&
        strcmp(t, "session.ended"))
        return;
    json_t *d = json_loadb(ev->data, ev->data_len, 0, NULL);
    char a[200], b[64];
    if (!strcmp(t, "item.completed")) {
        const char *kind = agent__str(d, "kind"), *role = agent__str(d, "role");
        if (kind && !strcmp(kind, "tool_call")) {
            const char *st = agent__str(d, "status");
            tool_summary(a, 100, agent__get(d, "arguments"));
            if (!r->tool_names)
                r->tool_names = json_object();
            if (agent__str(d, "call_id") && agent__str(d, "name") && json_object_size(r->tool_names) < 10000)
                json_object_set(r->tool_names, agent__str(d, "call_id"), agent__get(d, "name"));
            fprintf(stderr, "[tool] %s%s%s%s\n", agent__str(d, "name") ? agent__str(d, "name") : "?",
                    a[0] ? " " : "", a, st && !strcmp(st, "failed") ? " (failed)" : "");
        } else if (kind && !strcmp(kind, "tool_result") &&
                   (json_is_true(agent__get(d, "is_error")) ||
                    (agent__str(d, "status") && !strcmp(agent__str(d, "status"), "failed")))) {
            const char *name = agent__str(r->tool_names, agent__str(d, "call_id") ? agent__str(d, "call_id") : "");
            one_line(a, 120, agent__str(d, "output"));
            fprintf(stderr, "[failed] %s%s%s\n", name ? name : "tool", a[0] ? ": " : "", a);
        } else if (kind && !strcmp(kind, "message") && role && !strcmp(role, "assistant") &&
                   agent__str(d, "text") && *agent__str(d, "text")) {
            one_line(r->last_text, 80, agent__str(d, "text"));
        }
    } else if (!strcmp(t, "usage")) {
        json_int_t in = json_integer_value(agent__get(d, "input_tokens"));
        json_int_t out = json_integer_value(agent__get(d, "output_tokens"));
        r->tok_in += in, r->tok_out += out;
        if (json_is_number(agent__get(d, "cost_usd")))
            r->cost += json_number_value(agent__get(d, "cost_usd")), r->have_cost = 1;
        if (json_is_true(agent__get(d, "turn_end"))) {
            fprintf(stderr, "[turn %u]", ++r->turns);
            if (r->last_text[0])
                fprintf(stderr, " %s", r->last_text);
            if (in || out) {
                thousands(a, 32, in), thousands(b, 32, out);
                fprintf(stderr, " (%s in, %s out)", a, b);
            }
            fputc('\n', stderr);
            r->last_text[0] = 0;
        }
    } else if (!strcmp(t, "error")) {
        one_line(a, 160, agent__str(d, "message") ? agent__str(d, "message") : agent__str(d, "code"));
        fprintf(stderr, "[error] %s\n", a[0] ? a : "(no message)");
    } else {
        thousands(a, 32, r->tok_in), thousands(b, 32, r->tok_out);
        fprintf(stderr, "[done] %u turn%s, %s tokens in, %s out", r->turns, r->turns == 1 ? "" : "s",
                a, b);
        if (r->have_cost)
            fprintf(stderr, ", $%.4f", r->cost);
        const char *reason = agent__str(d, "reason");
        if (reason && strcmp(reason, "completed"))
            fprintf(stderr, " (%s)", reason);
        fputc('\n', stderr);
    }
    fflush(stderr);
    json_decref(d);
}

void agent__progress_free(agent__progress_t *r)
{
    json_decref(r->tool_names);
    r->tool_names = NULL;
}
