/* cmd_tokens.c -- `reel tokens add|list|revoke`: the named-tokens file of `reel serve
 * --tokens FILE` (docs/HTTP.md "Tenants").
 *
 * The file holds one JSON object per line: {"name","sha256","scopes","prefixes"}; never a
 * secret. `add` makes a random token, prints it once and stores only its SHA-256. Every
 * change rewrites the file as FILE.partial, fsyncs and renames it (tools/partial.c), so a
 * server reading it on SIGHUP sees the old file or the new one, never half of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/api.h"
#include "tools/cmds.h"

static const char about[] =
    "Manages the named tokens `reel serve --tokens FILE` accepts:\n"
    "  add NAME --scopes read,append[,delete,admin|full] [--prefixes P,Q]\n"
    "      [--rate-requests N] [--rate-events N] [--quota-bytes N] [--quota-sessions N]\n"
    "      makes a token, prints it once on stdout, stores only its SHA-256\n"
    "  list     names, scopes and session prefixes (never secrets)\n"
    "  revoke NAME\n"
    "A token with prefixes sees only the sessions (and Durable Streams paths) whose ids\n"
    "start with one of them: outside, they do not exist for it. The file is replaced\n"
    "atomically; send the server SIGHUP to apply a change (open connections included).\n";

/* The file's lines (without their newlines), or an empty list when it does not exist. */
static int read_lines(const char *prog, const char *path, json_t **lines)
{
    *lines = json_array();
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : (cmd_error(prog, "cannot read '%s': %s", path, strerror(errno)), -1);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n)
            json_array_append_new(*lines, json_stringn(line, (size_t)n));
    }
    free(line);
    fclose(f);
    return 0;
}

static int write_lines(const char *prog, const char *path, json_t *lines)
{
    cmd_partial_t out;
    if (cmd_partial_begin(&out, prog, path, 0))
        return -1;
    int fd = open(out.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
    size_t i;
    json_t *v;
    int bad = !f;
    json_array_foreach(lines, i, v)
        bad |= f && fprintf(f, "%s\n", json_string_value(v)) < 0;
    bad |= f && fclose(f) != 0;
    if (bad) {
        cmd_error(prog, "cannot write '%s': %s", out.tmp, strerror(errno));
        cmd_partial_abort(&out);
        return -1;
    }
    return cmd_partial_commit(&out);
}

/* The line's token name, or NULL when it is not a token line. */
static const char *line_name(json_t *line, json_t **parsed)
{
    const char *s = json_string_value(line);
    *parsed = s[0] == '#' ? NULL : json_loads(s, 0, NULL);
    return json_string_value(json_object_get(*parsed, "name"));
}

static int add(const char *prog, const char *path, const char *name, const char *scopes,
               const char *prefixes, const unsigned long long lim[4])
{
    json_t *sc = json_array(), *px = json_array(), *lines;
    for (const char *p = scopes; p && *p;) {
        size_t n = strcspn(p, ",");
        char w[16];
        snprintf(w, sizeof w, "%.*s", (int)(n < 15 ? n : 15), p);
        if (api_scope_parse(w) < 0) {
            cmd_error(prog, "--scopes: '%.*s' is not read, append, delete, admin or full", (int)n, p);
            return CMD_USAGE;
        }
        json_array_append_new(sc, json_string(w));
        p += n + (p[n] == ',');
    }
    for (const char *p = prefixes; p && *p;) {
        size_t n = strcspn(p, ",");
        if (!n || n > STORE_SESSION_ID_MAX || !store_session_id_valid(p, n)) {
            cmd_error(prog, "--prefixes: '%.*s' is not a session-id prefix", (int)(n > 80 ? 80 : n), p);
            return CMD_USAGE;
        }
        json_array_append_new(px, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    if (!json_array_size(sc)) {
        cmd_error(prog, "--scopes is required (read, append, delete, admin, full)");
        return CMD_USAGE;
    }
    if (read_lines(prog, path, &lines))
        return CMD_FAIL;
    size_t i;
    json_t *v, *o;
    json_array_foreach(lines, i, v) {
        const char *have = line_name(v, &o);
        int dup = have && !strcmp(have, name);
        json_decref(o);
        if (dup) {
            cmd_error(prog, "'%s' already has a token in '%s' (revoke it first)", name, path);
            return CMD_FAIL;
        }
    }
    uint8_t rnd[24], digest[32];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
        cmd_error(prog, "no randomness: %s", strerror(errno));
        return CMD_FAIL;
    }
    char secret[8 + 2 * sizeof rnd + 1] = "reel_", hex[65];
    for (size_t k = 0; k < sizeof rnd; k++)
        sprintf(secret + 5 + 2 * k, "%02x", rnd[k]);
    SHA256((const unsigned char *)secret, strlen(secret), digest);
    for (int k = 0; k < 32; k++)
        sprintf(hex + 2 * k, "%02x", digest[k]);
    json_t *rec = json_pack("{s:s,s:s,s:o,s:o}", "name", name, "sha256", hex, "scopes", sc,
                            "prefixes", px);
    /* lim: requests/s, events/s, quota bytes, quota sessions; 0 = none */
    static const char *const keys[4][2] = {{"rate", "requests"}, {"rate", "events"},
                                            {"quota", "bytes"}, {"quota", "sessions"}};
    for (int k = 0; k < 4; k++)
        if (lim[k]) {
            json_t *group = json_object_get(rec, keys[k][0]);
            if (!group)
                json_object_set_new(rec, keys[k][0], group = json_object());
            json_object_set_new(group, keys[k][1], json_integer((json_int_t)lim[k]));
        }
    char *text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_array_append_new(lines, json_string(text));
    int rc = write_lines(prog, path, lines);
    free(text);
    json_decref(rec);
    json_decref(lines);
    if (rc)
        return CMD_FAIL;
    printf("%s\n", secret);
    fprintf(stderr, "reel tokens: '%s' added to '%s'; the token above is shown only now. "
                    "Send the server SIGHUP to use it.\n", name, path);
    return CMD_OK;
}

static int list(const char *prog, const char *path)
{
    api_token_t *t;
    size_t n;
    char msg[512];
    if (api_tokens_load_named(path, &t, &n, msg, sizeof msg)) {
        cmd_error(prog, "%s", msg);
        return CMD_FAIL;
    }
    printf("%-24s %-26s %s\n", "NAME", "SCOPES", "PREFIXES");
    for (size_t i = 0; i < n; i++) {
        char sc[40] = "";
        for (int b = 0; b < 4; b++)
            if (t[i].scope & (1 << b))
                strcat(strcat(sc, sc[0] ? "," : ""), api_scope_name(b));
        printf("%-24s %-26s ", t[i].name, sc);
        for (size_t j = 0; j < t[i].n_prefixes; j++)
            printf("%s%s", j ? "," : "", t[i].prefixes[j]);
        printf("%s\n", t[i].n_prefixes ? "" : "(every session)");
    }
    api_tokens_free(t, n);
    return CMD_OK;
}

static int revoke_token(const char *prog, const char *path, const char *name)
{
    json_t *lines, *keep = json_array(), *v, *o;
    if (read_lines(prog, path, &lines))
        return CMD_FAIL;
    size_t i, gone = 0;
    json_array_foreach(lines, i, v) {
        const char *have = line_name(v, &o);
        if (have && !strcmp(have, name))
            gone++;
        else
            json_array_append(keep, v);
        json_decref(o);
    }
    json_decref(lines);
    if (!gone) {
        cmd_error(prog, "no token named '%s' in '%s'", name, path);
        json_decref(keep);
        return CMD_FAIL;
    }
    int rc = write_lines(prog, path, keep);
    json_decref(keep);
    if (!rc)
        fprintf(stderr, "reel tokens: '%s' revoked; send the server SIGHUP to apply it\n", name);
    return rc ? CMD_FAIL : CMD_OK;
}

int cmd_tokens(int argc, char **argv)
{
    const char *prog = "tokens", *file = NULL, *scopes = NULL, *prefixes = NULL;
    unsigned long long lim[4] = {0}; /* requests/s, events/s, quota bytes, quota sessions */
    const opt_t rows[] = {
        {.name = "file", .type = OPT_STRING, .arg = "FILE", .env = "REEL_TOKENS", .dest = &file,
         .help = "the named-tokens file (as given to reel serve --tokens)"},
        {.name = "scopes", .type = OPT_STRING, .arg = "S,T", .dest = &scopes,
         .help = "add: read, append, delete, admin or full, comma-separated"},
        {.name = "prefixes", .type = OPT_STRING, .arg = "P,Q", .dest = &prefixes,
         .help = "add: session-id prefixes it is limited to (default: none, every session)"},
        {.name = "rate-requests", .type = OPT_U64, .arg = "N", .dest = &lim[0], .max = 1000000,
         .help = "add: at most N requests per second (429 past it; default: no limit)"},
        {.name = "rate-events", .type = OPT_U64, .arg = "N", .dest = &lim[1], .max = 100000000,
         .help = "add: at most N appended events per second (default: no limit)"},
        {.name = "quota-bytes", .type = OPT_U64, .arg = "N", .dest = &lim[2],
         .help = "add: at most N stored bytes in its sessions (default: no quota)"},
        {.name = "quota-sessions", .type = OPT_U64, .arg = "N", .dest = &lim[3],
         .help = "add: at most N sessions (default: no quota)"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .args = "add NAME | list | revoke NAME", .about = about,
                           .opts = rows};
    int nargs, st = opt_parse(&cmd, argc, argv, &nargs);
    if (st != OPT_GO)
        return st;
    if (!file) {
        cmd_error(prog, "--file FILE (or REEL_TOKENS) is required");
        return CMD_USAGE;
    }
    const char *verb = nargs ? argv[0] : "";
    if (!strcmp(verb, "list") && nargs == 1)
        return list(prog, file);
    if ((!strcmp(verb, "add") || !strcmp(verb, "revoke")) && nargs == 2) {
        const char *name = argv[1];
        size_t n = strlen(name);
        if (!n || n > 63 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != n) {
            cmd_error(prog, "a token name is 1-63 characters of A-Z a-z 0-9 - _ ., not '%.80s'", name);
            return CMD_USAGE;
        }
        return verb[0] == 'a' ? add(prog, file, name, scopes, prefixes, lim)
                              : revoke_token(prog, file, name);
    }
    cmd_error(prog, "expected 'add NAME', 'list' or 'revoke NAME' (see --help)");
    return CMD_USAGE;
}
