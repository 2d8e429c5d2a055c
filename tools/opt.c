/* opt.c -- the option parser and usage generator of every subcommand (see opt.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cmds.h"
#include "tools/opt.h"

#define HELP_WIDTH 100 /* columns of the --help text */
#define HELP_COLUMN 28 /* where option descriptions start, unless every name is shorter */

/* ---- Looking rows up ---- */

static const opt_t *find_long(const opt_t *t, const char *name, size_t n)
{
    for (; t->name; t++)
        if (strlen(t->name) == n && !strncmp(t->name, name, n))
            return t;
    return NULL;
}

static const opt_t *find_alias(const opt_t *t, char c)
{
    for (; t->name; t++)
        if (t->alias && t->alias == c)
            return t;
    return NULL;
}

/* ---- Storing values ---- */

/* 'v' is one of the '|'-separated words of 'choices': its index, else -1. */
static int choice_index(const char *choices, const char *v)
{
    size_t n = strlen(v);
    int i = 0;
    for (const char *p = choices;; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return i;
        if (!bar)
            return -1;
        p = bar + 1;
    }
}

/* "--x must be 'a' or 'b', not 'v'" (and "'a', 'b' or 'c'" for three). */
static void choice_error(const opt_cmd_t *cmd, const opt_t *row, const char *v)
{
    char list[256] = "";
    size_t used = 0;
    for (const char *p = row->arg; used < sizeof list;) {
        const char *bar = strchr(p, '|'), *sep = p == row->arg ? "" : bar ? ", " : " or ";
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s'%.*s'", sep, (int)len, p);
        if (!bar)
            break;
        p = bar + 1;
    }
    cmd_error(cmd->name, "--%s must be %s, not '%s'", row->name, list, v);
}

static int store_u64(const opt_cmd_t *cmd, const opt_t *row, const char *v)
{
    char what[80];
    unsigned long long n;
    snprintf(what, sizeof what, "--%s", row->name);
    if (cmd_parse_u64(cmd->name, what, v, &n))
        return -1;
    if (row->max && (n < row->min || n > row->max)) {
        cmd_error(cmd->name, "%s must be from %llu to %llu, not %llu", what, row->min, row->max,
                  n);
        return -1;
    }
    *(unsigned long long *)row->dest = n;
    return 0;
}

/* Stores the value 'v' (NULL for a flag) of 'row'; 0, or -1 after printing why not. */
static int store(const opt_cmd_t *cmd, const opt_t *row, const char *v)
{
    int i;
    switch (row->type) {
    case OPT_STRING:
        *(const char **)row->dest = v;
        return 0;
    case OPT_U64:
        return store_u64(cmd, row, v);
    case OPT_FLAG:
        *(int *)row->dest = 1;
        return 0;
    case OPT_CHOICE:
        if ((i = choice_index(row->arg, v)) < 0) {
            choice_error(cmd, row, v);
            return -1;
        }
        *(int *)row->dest = i;
        return 0;
    case OPT_CALL:
        return row->fn(cmd, row, v);
    }
    return -1;
}

/* ---- Parsing ---- */

static int usage_error(const opt_cmd_t *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "reel %s: ", cmd->name);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    opt_usage(cmd, stderr);
    return CMD_USAGE;
}

/* Handles the option argv[*i] (it starts with '-'): finds its row, takes its value from
 * "=VALUE" or the next argument, stores it and marks the row in 'seen'. */
static int one_option(const opt_cmd_t *cmd, int argc, char **argv, int *i, char *seen)
{
    const char *a = argv[*i], *eq = NULL, *v = NULL;
    const opt_t *row;
    if (a[1] == '-') {
        eq = strchr(a, '=');
        row = find_long(cmd->opts, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
    } else {
        row = a[2] ? NULL : find_alias(cmd->opts, a[1]);
    }
    if (!row)
        return usage_error(cmd, "unknown option '%s'", a);
    if (row->type == OPT_FLAG && eq) {
        cmd_error(cmd->name, "option '--%s' takes no value", row->name);
        return CMD_USAGE;
    }
    if (row->type != OPT_FLAG) {
        if (!eq && *i + 1 >= argc)
            return usage_error(cmd, "option '%s' needs a value", a);
        v = eq ? eq + 1 : argv[++*i];
    }
    seen[row - cmd->opts] = 1;
    return store(cmd, row, v) ? CMD_USAGE : OPT_GO;
}

/* Applies the environment twins of the rows not given on the command line. */
static int environment(const opt_cmd_t *cmd, const char *seen)
{
    for (const opt_t *row = cmd->opts; row->name; row++) {
        const char *v = row->env ? cmd_env(row->env, NULL) : NULL;
        if (v && !seen[row - cmd->opts] && store(cmd, row, row->type == OPT_FLAG ? NULL : v))
            return CMD_USAGE;
    }
    return OPT_GO;
}

int opt_parse(const opt_cmd_t *cmd, int argc, char **argv, int *nargs)
{
    size_t rows = 0;
    while (cmd->opts[rows].name)
        rows++;
    char *seen = calloc(rows + 1, 1);
    int n = 0, rc = OPT_GO, dashdash = 0;
    if (!seen)
        abort(); /* tools/ may abort on out-of-memory (cmds.h) */
    for (int i = 1; i < argc && rc == OPT_GO; i++) {
        const char *a = argv[i];
        if (dashdash || a[0] != '-' || !a[1]) {
            if (!cmd->args)
                rc = usage_error(cmd, "unexpected argument '%s'", a);
            argv[n++] = argv[i];
        } else if (!strcmp(a, "--")) {
            dashdash = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            opt_usage(cmd, stdout);
            rc = CMD_OK;
        } else {
            rc = one_option(cmd, argc, argv, &i, seen);
        }
    }
    if (rc == OPT_GO)
        rc = environment(cmd, seen);
    free(seen);
    if (nargs)
        *nargs = n;
    return rc;
}

/* ---- Usage ---- */

/* "[--name ARG]" for each row, wrapped under the first one. */
static void synopsis(const opt_cmd_t *cmd, FILE *f)
{
    int indent = (int)strlen("usage: reel ") + (int)strlen(cmd->name) + 1, col = indent;
    fprintf(f, "usage: reel %s", cmd->name);
    for (const opt_t *row = cmd->opts;; row++) {
        char item[128];
        if (row->name)
            snprintf(item, sizeof item, "%s--%s%s%s%s", row->required ? "" : "[", row->name,
                     row->arg ? " " : "", row->arg ? row->arg : "", row->required ? "" : "]");
        else if (cmd->args)
            snprintf(item, sizeof item, "%s", cmd->args);
        else
            break;
        if (col > indent && col + 1 + (int)strlen(item) > HELP_WIDTH - 10)
            col = fprintf(f, "\n%*s", indent - 1, "") - 1;
        col += fprintf(f, " %s", item);
        if (!row->name)
            break;
    }
    fputc('\n', f);
}

/* "  -o, --output FILE" or "  --data DIR": the left column of a row. */
static int row_name(const opt_t *row, char *buf, size_t n)
{
    char alias[8] = "";
    if (row->alias)
        snprintf(alias, sizeof alias, "-%c, ", row->alias);
    return snprintf(buf, n, "  %s--%s%s%s", alias, row->name, row->arg ? " " : "",
                    row->arg ? row->arg : "");
}

/* The help text, its lines indented to 'col', then " [ENV] (default D)" on the last line
 * or, when that would pass HELP_WIDTH, on a line of its own. */
static void row_help(const opt_t *row, int col, FILE *f)
{
    const char *h = row->help ? row->help : "", *nl;
    int last = 0;
    while ((nl = strchr(h, '\n'))) {
        fprintf(f, "%.*s\n%*s", (int)(nl - h), h, col, "");
        h = nl + 1;
    }
    last = col + fprintf(f, "%s", h);
    char tail[160] = "";
    size_t used = 0;
    if (row->env)
        used += (size_t)snprintf(tail, sizeof tail, " [%s]", row->env);
    if (row->def)
        snprintf(tail + used, sizeof tail - used, " (default %s)", row->def);
    if (tail[0] && last + (int)strlen(tail) > HELP_WIDTH)
        fprintf(f, "\n%*s%s", col, "", tail + 1);
    else
        fputs(tail, f);
    fputc('\n', f);
}

void opt_usage(const opt_cmd_t *cmd, FILE *f)
{
    char name[128];
    int col = 0, env = 0;
    if (cmd->synopsis)
        fprintf(f, "usage: reel %s %s\n", cmd->name, cmd->synopsis);
    else
        synopsis(cmd, f);
    if (cmd->about)
        fprintf(f, "\n%s", cmd->about);
    for (const opt_t *row = cmd->opts; row->name; row++) {
        int w = row_name(row, name, sizeof name) + 2;
        if (w <= HELP_COLUMN && w > col)
            col = w;
        env |= row->env != NULL;
    }
    if (cmd->opts[0].name)
        fprintf(f, "\noptions%s:\n", env ? " (environment twin in brackets)" : "");
    for (const opt_t *row = cmd->opts; row->name; row++) {
        int w = row_name(row, name, sizeof name);
        fputs(name, f);
        if (w + 2 > col)
            fprintf(f, "\n%*s", col, "");
        else
            fprintf(f, "%*s", col - w, "");
        row_help(row, col, f);
    }
    if (cmd->footer)
        fprintf(f, "\n%s", cmd->footer);
}
