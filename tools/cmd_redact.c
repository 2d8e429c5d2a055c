/* cmd_redact.c -- `reel redact SESSION --from N --to M --path P --pattern R`: redaction
 * after the fact (ingest_redact_after(), docs/REDACTION.md), on the data directory or
 * through a server (POST /v1/sessions/{id}/redact). Both print the same JSON answer. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"
#include "tools/cmds.h"

static const char about[] =
    "Rewrites the stored events SESSION holds from sequence --from to --to: every value a\n"
    "--path names, and every match of a --pattern in the strings of 'data' and 'raw', becomes\n"
    "[REDACTED:path] or [REDACTED:<kind>]. The events keep their sequence, time and chain\n"
    "hash (the store keeps the original body's hash, so `reel verify` still passes) and are\n"
    "served with \"redacted\":true; a reel.redacted event records who (\"cli\" here, the\n"
    "token's name through a server), the sequences, the paths and kinds and how many values,\n"
    "never a value. All of it is one transaction. Prints the answer as JSON.\n"
    "\n"
    "Paths: 'data' or 'raw', then '.key', '[index]', '.*' or '[*]' steps, e.g. data.output,\n"
    "raw, data.items[2].text. Patterns: 'builtin' (the ingest detectors, docs/REDACTION.md)\n"
    "or a POSIX extended regex, whose kind is --kind.\n"
    "\n"
    "The old bytes stay in data.mdb's free pages until they are reused: to remove them, run\n"
    "`reel backup DEST` (a compacted copy, which holds only live pages) and serve DEST\n"
    "instead (docs/REDACTION.md, \"Compaction\"). While a server serves the directory, prefer\n"
    "--server: with --data the server empties its event cache only when its watcher sees\n"
    "the redaction, up to about 100 ms after this command returned.\n";

#define MAX_ITEMS INGEST_REDACT_MAX_PATHS

struct list {
    const char *items[MAX_ITEMS];
    size_t n;
};

static int add_item(const opt_cmd_t *cmd, const opt_t *row, const char *value)
{
    struct list *l = row->dest;
    if (l->n == MAX_ITEMS) {
        cmd_error(cmd->name, "at most %d --%s options", MAX_ITEMS, row->name);
        return -1;
    }
    l->items[l->n++] = value;
    return 0;
}

/* The request as the route takes it (remote) */
static void request_json(store_buf_t *b, unsigned long long from, unsigned long long to,
                         const struct list *paths, const struct list *pats, const char *kind)
{
    store_buf_printf(b, "{\"from\":%llu,\"to\":%llu,\"paths\":[", from, to);
    for (size_t i = 0; i < paths->n; i++) {
        if (i)
            store_buf_putc(b, ',');
        store_json_write_string(b, paths->items[i], strlen(paths->items[i]));
    }
    store_buf_puts(b, "],\"patterns\":[");
    for (size_t i = 0; i < pats->n; i++) {
        if (i)
            store_buf_putc(b, ',');
        if (!strcmp(pats->items[i], "builtin")) {
            store_buf_puts(b, "\"builtin\"");
            continue;
        }
        store_buf_puts(b, "{\"kind\":");
        store_json_write_string(b, kind, strlen(kind));
        store_buf_puts(b, ",\"regex\":");
        store_json_write_string(b, pats->items[i], strlen(pats->items[i]));
        store_buf_putc(b, '}');
    }
    store_buf_puts(b, "]}");
}

/* The rules ingest_redactor_from_lines() takes: "builtin" or "kind<TAB>regex" (new). */
static char **pattern_rules(const struct list *pats, const char *kind)
{
    char **rules = calloc(pats->n + 1, sizeof *rules);
    for (size_t i = 0; rules && i < pats->n; i++) {
        const char *p = pats->items[i];
        size_t n = strlen(kind) + strlen(p) + 2;
        if ((rules[i] = malloc(n)))
            snprintf(rules[i], n, strcmp(p, "builtin") ? "%s\t%s" : "%.0s%s",
                     strcmp(p, "builtin") ? kind : "", p);
    }
    return rules;
}

static void print_result(const char *session, const ingest_redact_result_t *res)
{
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, "{\"session_id\":");
    store_json_write_string(&b, session, strlen(session));
    store_buf_printf(&b, ",\"events\":%" PRIu64 ",\"values\":%" PRIu64 ",\"sequences\":[",
                     res->events, res->values);
    for (uint64_t i = 0; i < res->events; i++)
        store_buf_printf(&b, "%s%" PRIu64, i ? "," : "", res->sequences[i]);
    store_buf_puts(&b, "],\"record_sequence\":");
    if (res->record_sequence)
        store_buf_printf(&b, "%" PRIu64 "}", res->record_sequence);
    else
        store_buf_puts(&b, "null}");
    printf("%s\n", store_buf_cstr(&b));
    store_buf_release(&b);
}

static int local(const char *prog, const char *data, const char *session,
                 unsigned long long from, unsigned long long to, const struct list *paths,
                 const struct list *pats, const char *kind)
{
    char **rules = pattern_rules(pats, kind);
    int ok = rules != NULL;
    for (size_t i = 0; ok && i < pats->n; i++)
        ok = rules[i] != NULL;
    if (!ok) { /* tools/ may give up on out-of-memory (cmds.h) */
        cmd_error(prog, "out of memory");
        abort();
    }
    store_t *s = cmd_open_store(prog, data, 0, 0);
    int st = CMD_FAIL;
    if (s) {
        ingest_redact_req_t q = {session, strlen(session), from, to, paths->items, paths->n,
                                 (const char *const *)rules, pats->n, "cli"};
        ingest_redact_result_t res;
        ingest_error_t e;
        int rc = ingest_redact_after(s, &q, &res, &e);
        if (rc)
            cmd_error(prog, "%s", e.text[0] ? e.text
                                 : rc == REEL_ESESSION_NOT_FOUND ? "no such session"
                                 : rc == REEL_EGONE ? "the session was deleted"
                                                    : reel_strerror(rc));
        else
            print_result(session, &res), st = CMD_OK;
        ingest_redact_result_release(&res);
        store_close(s);
    }
    for (size_t i = 0; i < pats->n; i++)
        free(rules[i]);
    free(rules);
    return st;
}

int cmd_redact(int argc, char **argv)
{
    const char *prog = "redact", *data = CMD_DEFAULT_DATA, *kind = "pattern";
    unsigned long long from = 0, to = 0;
    struct list paths = {{0}, 0}, pats = {{0}, 0};
    cmd_remote_t remote = {NULL, NULL};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        CMD_OPT_REMOTE(&remote),
        {.name = "from", .type = OPT_U64, .arg = "N", .dest = &from, .min = 1, .max = UINT64_MAX,
         .required = 1, .help = "first sequence to rewrite"},
        {.name = "to", .type = OPT_U64, .arg = "M", .dest = &to, .min = 1, .max = UINT64_MAX,
         .required = 1, .help = "last sequence to rewrite (at most 10000 events in one run)"},
        {.name = "path", .type = OPT_CALL, .arg = "P", .dest = &paths, .fn = add_item,
         .help = "a value to replace: data.output, raw, data.items[2].text, data.*.key\n"
                 "(repeatable)"},
        {.name = "pattern", .type = OPT_CALL, .arg = "R", .dest = &pats, .fn = add_item,
         .help = "'builtin' (the ingest detectors) or a POSIX extended regex (repeatable)"},
        {.name = "kind", .type = OPT_STRING, .arg = "K", .dest = &kind, .def = "pattern",
         .help = "the kind a regex's matches are named by: [REDACTED:K]"},
        OPT_END};
    const opt_cmd_t cmd = {.name = prog, .args = "SESSION", .about = about, .opts = rows};
    int nargs, st = opt_parse(&cmd, argc, argv, &nargs);
    if (st != OPT_GO)
        return st;
    if (nargs != 1) {
        cmd_error(prog, "one SESSION is required (see --help)");
        return CMD_USAGE;
    }
    if (!from || !to) {
        cmd_error(prog, "--from and --to are required: the sequences to rewrite");
        return CMD_USAGE;
    }
    if (!paths.n && !pats.n) {
        cmd_error(prog, "give at least one --path or --pattern");
        return CMD_USAGE;
    }
    if (!remote.url)
        return local(prog, data, argv[0], from, to, &paths, &pats, kind);
    store_buf_t body = STORE_BUF_INIT, path = STORE_BUF_INIT, out = STORE_BUF_INIT;
    request_json(&body, from, to, &paths, &pats, kind);
    cmd_remote_session_path(&path, argv[0], "redact");
    int rc = cmd_remote_post(prog, &remote, store_buf_cstr(&path), (const char *)body.data,
                             body.len, &out);
    if (!rc)
        printf("%.*s\n", (int)out.len, (const char *)out.data);
    store_buf_release(&body);
    store_buf_release(&path);
    store_buf_release(&out);
    return rc ? CMD_FAIL : CMD_OK;
}
