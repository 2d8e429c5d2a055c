/* common.c -- helpers shared by the subcommands (see cmds.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay/replay.h"
#include "store/parse.h"
#include "ingest/ingest.h"
#include "tools/cmds.h"

const char *cmd_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

void cmd_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "reel %s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_parse_u64(const char *prog, const char *what, const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!v || !*v || *v == '-' || *v == '+') {
        cmd_error(prog, "%s must be a non-negative integer, not '%s'", what, v ? v : "");
        return -1;
    }
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end) {
        cmd_error(prog, "%s must be a non-negative integer, not '%s'", what, v);
        return -1;
    }
    *out = n;
    return 0;
}

int cmd_opt_time(const opt_cmd_t *cmd, const opt_t *row, const char *v)
{
    int64_t t = store_parse_time(v, strlen(v));
    if (t < 0) {
        cmd_error(cmd->name, "--%s must be an RFC 3339 UTC time (2026-11-22T13:00:00Z) or Unix "
                             "milliseconds, not '%s'", row->name, v);
        return -1;
    }
    *(int64_t *)row->dest = t;
    return 0;
}

int cmd_parse_session(const char *prog, const char *about, const opt_t *rows, int argc,
                      char **argv, const char *const *session, int required)
{
    const opt_cmd_t cmd = {.name = prog, .about = about, .opts = rows};
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    return cmd_check_session(prog, *session, required) ? CMD_USAGE : OPT_GO;
}

int cmd_check_session(const char *prog, const char *id, int required)
{
    if (!id) {
        if (required)
            cmd_error(prog, "--session is required (see --help)");
        return required ? -1 : 0;
    }
    if (store_session_id_valid(id, strlen(id)))
        return 0;
    /* Shown with control bytes as \xNN: the id must not put them on the terminal. */
    char shown[200];
    size_t o = 0, n = strlen(id);
    for (size_t i = 0; i < n && o + 5 < sizeof shown; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(shown + o, sizeof shown - o, "\\x%02X", c);
        else
            shown[o++] = (char)c;
    }
    shown[o] = 0;
    cmd_error(prog, "invalid session id '%s%s' (%zu bytes): use 1..%d bytes of UTF-8 without "
              "control characters, not '.' or '..'", shown, o + 5 >= sizeof shown ? "..." : "",
              n, STORE_SESSION_ID_MAX);
    return -1;
}

int cmd_redact_setup(const char *prog, const char *spec)
{
    ingest_redactor_t *r;
    char err[512] = "";
    int rc = ingest_redactor_new(spec, &r, err, sizeof err);
    if (rc) {
        cmd_error(prog, "%s", err[0] ? err : reel_strerror(rc));
        return -1;
    }
    ingest_redact_set(r); /* kept for the life of the process */
    return 0;
}

store_t *cmd_open_store(const char *prog, const char *dir, int read_only, int no_sync)
{
    store_options_t opt = {.read_only = read_only, .no_sync = no_sync};
    return cmd_open_store_opt(prog, dir, &opt);
}

store_t *cmd_open_store_opt(const char *prog, const char *dir, const store_options_t *opt)
{
    store_t *s = NULL;
    store_options_t o = *opt;
    if (!o.render) /* the envelopes every command serves, kept by the store (store/cache.c) */
        o.render = replay_envelope;
    int rc = store_open(dir, &o, &s);
    if (rc != REEL_OK) {
        cmd_error(prog, "cannot open data directory '%s': %s", dir, store_last_error());
        return NULL;
    }
    return s;
}

void cmd_store_error(const char *prog, int rc, const char *session)
{
    if (rc == REEL_ESESSION_NOT_FOUND && session)
        cmd_error(prog, "no session '%s' in this data directory (reel sessions lists them)",
                  session);
    else
        cmd_error(prog, "%s", reel_strerror(rc));
}

void cmd_human_bytes(char *out, size_t n, uint64_t b)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    if (u == 0)
        snprintf(out, n, "%llu B", (unsigned long long)b);
    else
        snprintf(out, n, "%.1f %s", v, unit[u]);
}

size_t cmd_utf8_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80; /* one per code point */
    return w;
}

void cmd_utf8_prefix(char *out, size_t cap, const char *s, size_t chars)
{
    size_t i = 0, seen = 0;
    while (s[i] && i + 1 < cap) {
        if (((unsigned char)s[i] & 0xc0) != 0x80 && seen++ == chars)
            break;
        i++;
    }
    /* never cut inside a character: back off to its first byte */
    while (i > 0 && s[i] && ((unsigned char)s[i] & 0xc0) == 0x80)
        i--;
    memcpy(out, s, i);
    out[i] = '\0';
}

/* 0 when 'dir' can receive a new store (restore, backup): absent, or an empty directory;
 * otherwise says why, naming the directory after 'label' (e.g. "--data "). */
int cmd_check_new_dir(const char *prog, const char *label, const char *dir, const char *why)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        cmd_error(prog, "%s'%s' %s", label, dir,
                  errno == ENOTDIR ? "exists and is not a directory" : strerror(errno));
        return -1;
    }
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    if (!empty)
        cmd_error(prog, "%s'%s' is not empty (%s)", label, dir, why);
    return empty ? 0 : -1;
}

volatile sig_atomic_t cmd_stop;

static void on_stop(int sig)
{
    (void)sig;
    cmd_stop = 1;
}

void cmd_stop_on_signals(void)
{
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
}

uint64_t cmd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
