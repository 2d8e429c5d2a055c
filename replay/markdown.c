/* markdown.c -- writing a folded transcript (project.c): JSON exactly as jansson's
 * json_dumps() would (replay__json_write, also used by stats), and the Markdown a person
 * reads: messages, reasoning, tool calls with their results (failed ones marked),
 * permissions and questions with their answers, usage and errors.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- writing ---- */

/* A real as jansson's jsonp_dtostr() writes it: "%.*g", ".0" added when it would read
 * back as an integer, no '+' and no leading zeros in the exponent. */
static void write_real(store_buf_t *out, double d, int precision)
{
    char t[64];
    int n = snprintf(t, sizeof t, "%.*g", precision ? precision : 17, d);
    if (n < 0 || (size_t)n >= sizeof t - 3)
        return;
    if (!strchr(t, '.') && !strchr(t, 'e'))
        memcpy(t + n, ".0", 3), n += 2;
    char *e = strchr(t, 'e');
    if (e) {
        char *from = e + 1, *to = e + 1;
        if (*from == '-')
            from++, to++;
        else if (*from == '+')
            from++;
        while (*from == '0' && from[1])
            from++;
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(t);
    }
    store_buf_put(out, t, (size_t)n);
}

static void write_indent(store_buf_t *out, size_t flags, size_t depth, int space)
{
    size_t ws = flags & JSON_MAX_INDENT;
    if (ws) {
        store_buf_putc(out, '\n');
        for (size_t i = 0; i < ws * depth; i++)
            store_buf_putc(out, ' ');
    } else if (space && !(flags & JSON_COMPACT)) {
        store_buf_putc(out, ' ');
    }
}

/* The layout of json_dump_callback(v, flags) (JSON_INDENT, JSON_COMPACT,
 * JSON_REAL_PRECISION; keys in insertion order), with two differences that make it reel's:
 * strings are written by store_json_write_string() (WTF-8: a lone surrogate is written
 * as its \\udXXX escape, where jansson's dumper fails on it; other escapes in lowercase
 * hex, as JSON.stringify and every other reel writer write them), and containers are
 * walked with an explicit stack rather than by recursion. */
int replay__json_write(store_buf_t *out, const json_t *v, size_t flags)
{
    struct open { const json_t *c; void *iter; size_t i; } local[32], *st = local;
    size_t cap = 32, used = 0;
    int rc = REEL_OK, prec = (int)((flags >> 11) & 0x1f);
    for (;;) {
        if (used) { /* the next element of the innermost open container */
            struct open *top = &st[used - 1];
            int map = json_is_object(top->c);
            int more = map ? top->iter != NULL : top->i < json_array_size(top->c);
            if (!more) {
                write_indent(out, flags, used - 1, 0);
                store_buf_putc(out, map ? '}' : ']');
                if (--used == 0)
                    break;
                continue;
            }
            if (map ? top->iter != json_object_iter((json_t *)top->c) : top->i > 0) {
                store_buf_putc(out, ',');
                write_indent(out, flags, used, 1);
            } else {
                write_indent(out, flags, used, 0);
            }
            if (map) {
                store_json_write_string(out, json_object_iter_key(top->iter),
                                        json_object_iter_key_len(top->iter));
                store_buf_puts(out, flags & JSON_COMPACT ? ":" : ": ");
                v = json_object_iter_value(top->iter);
                top->iter = json_object_iter_next((json_t *)top->c, top->iter);
            } else {
                v = json_array_get(top->c, top->i++);
            }
        }
        switch (json_typeof(v)) {
        case JSON_OBJECT:
        case JSON_ARRAY:
            if (json_is_object(v) ? !json_object_size(v) : !json_array_size(v)) {
                store_buf_puts(out, json_is_object(v) ? "{}" : "[]");
                break;
            }
            if (store_stack_room((void **)&st, &cap, used, local, sizeof *st)) {
                rc = REEL_ENOMEM;
                goto done;
            }
            st[used++] = (struct open){v, json_is_object(v) ? json_object_iter((json_t *)v) : NULL, 0};
            store_buf_putc(out, json_is_object(v) ? '{' : '[');
            continue;
        case JSON_STRING:
            store_json_write_string(out, json_string_value(v), json_string_length(v));
            break;
        case JSON_INTEGER: store_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
        case JSON_REAL: write_real(out, json_real_value(v), prec); break;
        case JSON_TRUE: store_buf_puts(out, "true"); break;
        case JSON_FALSE: store_buf_puts(out, "false"); break;
        case JSON_NULL: store_buf_puts(out, "null"); break;
        }
        if (!used)
            break;
    }
done:
    store_stack_free(st, local);
    return rc || store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}

/* ---- markdown ---- */

static void md_text(store_buf_t *out, const char *s)
{
    store_buf_puts(out, s ? s : "");
    store_buf_puts(out, "\n\n");
}

/* REEL_OK, or REEL_ENOMEM when 'v' could not be dumped. */
static int md_json(store_buf_t *out, json_t *v)
{
    if (!v || json_is_null(v))
        return REEL_OK;
    if (json_is_string(v)) {
        store_buf_puts(out, "```\n");
        store_buf_puts(out, json_string_value(v));
        store_buf_puts(out, "\n```\n\n");
        return REEL_OK;
    }
    store_buf_puts(out, "```json\n");
    if (replay__json_write(out, v, JSON_INDENT(2) | JSON_ENCODE_ANY))
        return REEL_ENOMEM;
    store_buf_puts(out, "\n```\n\n");
    return REEL_OK;
}

/* 's' as inline code: in double backticks when it holds a backtick itself. */
static void md_code(store_buf_t *out, const char *s)
{
    if (strchr(s, '`'))
        store_buf_printf(out, "`` %s ``", s);
    else
        store_buf_printf(out, "`%s`", s);
}

static int md_item(store_buf_t *out, json_t *it)
{
    int rc = REEL_OK;
    const char *kind = str(it, "kind") ? str(it, "kind") : "unknown";
    const char *role = str(it, "role");
    const char *status = str(it, "status") ? str(it, "status") : "";
    if (!strcmp(kind, "message")) {
        store_buf_printf(out, "### %s\n\n", role && !strcmp(role, "user") ? "User"
                                            : role && !strcmp(role, "system") ? "System" : "Assistant");
        md_text(out, str(it, "text"));
    } else if (!strcmp(kind, "reasoning")) {
        store_buf_puts(out, "<details><summary>Reasoning</summary>\n\n");
        md_text(out, str(it, "text"));
        store_buf_puts(out, "</details>\n\n");
    } else if (!strcmp(kind, "tool_call")) {
        json_t *res = json_object_get(it, "result");
        int failed = !strcmp(status, "failed") || json_is_true(json_object_get(it, "is_error")) ||
                     (str(res, "status") && !strcmp(str(res, "status"), "failed")) ||
                     json_is_true(json_object_get(res, "is_error"));
        store_buf_puts(out, "#### Tool call ");
        md_code(out, str(it, "name") ? str(it, "name") : "?");
        store_buf_printf(out, " (%s)\n\n", failed ? "failed" : status);
        json_t *args = json_object_get(it, "arguments") ? json_object_get(it, "arguments")
                                                        : json_object_get(it, "input");
        rc = md_json(out, args);
        if (res && !rc) {
            store_buf_puts(out, failed ? "<details open><summary>Result (failed)</summary>\n\n"
                                       : "<details><summary>Result</summary>\n\n");
            json_t *o = json_object_get(res, "output") ? json_object_get(res, "output")
                                                       : json_object_get(res, "content");
            rc = md_json(out, o ? o : res);
            store_buf_puts(out, "</details>\n\n");
        }
    } else {
        store_buf_printf(out, "#### %s (%s)\n\n", kind, status);
        if (str(it, "text") && *str(it, "text"))
            md_text(out, str(it, "text"));
    }
    return rc;
}

/* 1 when request 'r' was asked before sequence 'at' (an item's first event). */
static int asked_before(json_t *r, json_int_t at)
{
    json_t *seq = json_object_get(r, "requested_sequence");
    return seq && at && json_integer_value(seq) < at;
}

/* The tool_call item with 'call_id' in 'items', or NULL. */
static json_t *item_by_call(json_t *items, const char *call)
{
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v)
        if (call && str(v, "call_id") && !strcmp(str(v, "call_id"), call))
            return v;
    return NULL;
}

/* A permission: the tool and its input (from the request, else from the tool call it is
 * about), and the answer with the option chosen. */
static int md_permission(store_buf_t *out, json_t *p, json_t *items)
{
    json_t *tc = json_object_get(p, "tool_call"), *res = json_object_get(p, "resolution");
    const char *call = str(p, "tool_call_id") ? str(p, "tool_call_id")
                       : str(p, "tool_use_id") ? str(p, "tool_use_id") : str(tc, "toolCallId");
    json_t *item = item_by_call(items, call);
    const char *tool = str(p, "action") ? str(p, "action")
                       : str(p, "tool_name") ? str(p, "tool_name")
                       : str(tc, "title") ? str(tc, "title") : str(item, "name");
    json_t *input = json_object_get(p, "input") ? json_object_get(p, "input")
                    : json_object_get(tc, "rawInput") ? json_object_get(tc, "rawInput")
                    : json_object_get(item, "arguments");
    store_buf_printf(out, "#### Permission `%s`", str(p, "permission_id") ? str(p, "permission_id") : "?");
    if (tool) {
        store_buf_puts(out, " for ");
        md_code(out, tool);
    }
    store_buf_puts(out, "\n\n");
    if (input && md_json(out, input))
        return REEL_ENOMEM;
    const char *opt = str(res, "option_id") ? str(res, "option_id")
                                            : str(json_object_get(res, "outcome"), "optionId");
    if (!res) {
        store_buf_puts(out, "Not answered.\n\n");
        return REEL_OK;
    }
    store_buf_printf(out, "Answer: **%s**", str(p, "status") ? str(p, "status") : "resolved");
    if (opt) {
        const char *name = NULL;
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(p, "options"), i, o)
            if (str(o, "optionId") && !strcmp(str(o, "optionId"), opt))
                name = str(o, "name");
        if (name)
            store_buf_printf(out, " (option `%s`: %s)", opt, name);
        else
            store_buf_printf(out, " (option `%s`)", opt);
    }
    store_buf_puts(out, "\n\n");
    return REEL_OK;
}

/* The option labels of a question: strings, or objects with a label (or title, name). */
static void md_options(store_buf_t *out, json_t *opts)
{
    size_t i;
    json_t *o;
    if (!json_array_size(opts))
        return;
    store_buf_puts(out, " (options: ");
    json_array_foreach(opts, i, o) {
        const char *l = json_is_string(o) ? json_string_value(o)
                        : str(o, "label") ? str(o, "label")
                        : str(o, "title") ? str(o, "title") : str(o, "name");
        store_buf_printf(out, "%s`%s`", i ? ", " : "", l ? l : "?");
    }
    store_buf_putc(out, ')');
}

/* A question: each question's text and options, then the answer. */
static int md_question(store_buf_t *out, json_t *q)
{
    json_t *res = json_object_get(q, "resolution"), *list = json_object_get(q, "questions");
    size_t i, shown = 0;
    json_t *v;
    store_buf_printf(out, "#### Question `%s`\n\n", str(q, "question_id") ? str(q, "question_id") : "?");
    if (str(q, "message"))
        store_buf_printf(out, "> %s\n\n", str(q, "message"));
    json_array_foreach(list, i, v) {
        const char *text = json_is_string(v) ? json_string_value(v)
                           : str(v, "question") ? str(v, "question") : str(v, "header");
        if (text && str(q, "message") && !strcmp(text, str(q, "message")) && !json_object_get(v, "options"))
            continue; /* the message again */
        store_buf_printf(out, "- %s", text ? text : "?");
        md_options(out, json_object_get(v, "options"));
        store_buf_putc(out, '\n');
        shown++;
    }
    if (!json_array_size(list) && str(q, "question")) {
        store_buf_printf(out, "- %s", str(q, "question"));
        md_options(out, json_object_get(q, "options"));
        store_buf_putc(out, '\n');
        shown++;
    }
    if (shown)
        store_buf_putc(out, '\n');
    if (!res) {
        store_buf_puts(out, "Not answered.\n\n");
        return REEL_OK;
    }
    store_buf_printf(out, "Answer: **%s**\n\n", str(q, "status") ? str(q, "status") : "resolved");
    json_t *ans = json_object_get(res, "answer") ? json_object_get(res, "answer")
                  : json_object_get(res, "answers") ? json_object_get(res, "answers")
                  : json_object_get(res, "response");
    return ans ? md_json(out, ans) : REEL_OK;
}

/* Markdown is text for people and must be UTF-8: a lone surrogate (WTF-8 ED A0..BF xx,
 * written raw by the text parts) becomes U+FFFD (EF BF BD, as many bytes), in place. The
 * JSON code blocks keep it, as its \\udXXX escape (replay__json_write()). */
static void md_replace_surrogates(uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++)
        if (p[i] == 0xed && p[i + 1] >= 0xa0)
            p[i] = 0xef, p[i + 1] = 0xbf, p[i + 2] = 0xbd, i += 2;
}

/* REEL_OK, or REEL_ENOMEM when a value could not be dumped ('out' is checked apart). */
static int markdown(store_buf_t *out, json_t *t)
{
    size_t i;
    json_t *v;
    store_buf_printf(out, "# Session `%s`\n\n_as of sequence %lld of %lld_\n\n",
                     str(t, "session_id"), (long long)json_integer_value(json_object_get(t, "at")),
                     (long long)json_integer_value(json_object_get(t, "last_sequence")));
    /* Items in order, each permission and question where it was asked (merged by sequence). */
    json_t *items = json_object_get(t, "items"), *perms = json_object_get(t, "permissions");
    json_t *qs = json_object_get(t, "questions");
    size_t np = 0, nq = 0;
    json_array_foreach(items, i, v) {
        json_int_t at = json_integer_value(json_object_get(v, "started_sequence"));
        while (np < json_array_size(perms) && asked_before(json_array_get(perms, np), at))
            if (md_permission(out, json_array_get(perms, np++), items))
                return REEL_ENOMEM;
        while (nq < json_array_size(qs) && asked_before(json_array_get(qs, nq), at))
            if (md_question(out, json_array_get(qs, nq++)))
                return REEL_ENOMEM;
        if (md_item(out, v))
            return REEL_ENOMEM;
    }
    while (np < json_array_size(perms))
        if (md_permission(out, json_array_get(perms, np++), items))
            return REEL_ENOMEM;
    while (nq < json_array_size(qs))
        if (md_question(out, json_array_get(qs, nq++)))
            return REEL_ENOMEM;
    json_array_foreach(json_object_get(t, "errors"), i, v) {
        json_t *e = json_object_get(v, "error");
        const char *msg = str(e, "message");
        store_buf_printf(out, "- **Error** at sequence %lld: ",
                         (long long)json_integer_value(json_object_get(v, "sequence")));
        if (msg)
            store_buf_puts(out, msg);
        else if (e && replay__json_write(out, e, JSON_COMPACT | JSON_ENCODE_ANY))
            return REEL_ENOMEM;
        store_buf_putc(out, '\n');
    }
    if (json_object_size(json_object_get(t, "usage"))) {
        const char *k;
        store_buf_puts(out, "\n**Usage**:");
        json_object_foreach(json_object_get(t, "usage"), k, v) {
            if (json_is_integer(v))
                store_buf_printf(out, " %s %lld;", k, (long long)json_integer_value(v));
            else
                store_buf_printf(out, " %s %g;", k, json_number_value(v));
        }
        store_buf_putc(out, '\n');
    }
    return REEL_OK;
}

int replay__markdown(store_buf_t *out, json_t *t)
{
    size_t mark = out->len;
    int rc = markdown(out, t);
    if (!rc && !store_buf_failed(out))
        md_replace_surrogates(out->data + mark, out->len - mark);
    return rc;
}
