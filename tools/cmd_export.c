/* cmd_export.c -- `reel export`: stream an export to a file or stdout. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel export [--data DIR] [--session S | --sessions A,B,...] [--after P]\n"
    "                   [--until P] [--since TIME] [--before TIME] [--compression zstd|none]\n"
    "                   [--level N] [-o FILE] [--progress] [--quiet]\n\n"
    "Writes an export: a header line, session records and events as JSON lines (each event\n"
    "exactly as the HTTP API serves it, raw included), and a trailer line counting them,\n"
    "zstd-compressed by default (`zstd -d` reads it; `reel import` loads it).\n\n"
    "  --session S          one session (its record and every event)\n"
    "  --sessions A,B       only these sessions (whole-store export)\n"
    "  --after P, --until P positions (P, Q] of the all-sessions log\n"
    "  --since T, --before T event times [T1, T2): RFC 3339 (2026-11-22T13:00:00Z) or Unix ms\n"
    "  --compression MODE   zstd (default) or none (plain NDJSON)\n"
    "  --level N            zstd level 1..19 (default 3)\n"
    "  -o, --output FILE    write to FILE (default: standard output)\n"
    "  --progress           progress lines on stderr (default: when stderr is a terminal)\n"
    "  --quiet              no summary line\n";

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int run(store_t *s, const replay_export_opts_t *opt, int fd, cmd_progress_t *pr, int quiet)
{
    replay_export_t *ex;
    int rc = replay_export_new(s, opt, &ex), done = 0;
    if (rc) {
        cmd_error(pr->prog, "%s", rc == REEL_ESESSION_NOT_FOUND ? "no such session"
                                                                 : reel_strerror(rc));
        return CMD_FAIL;
    }
    store_buf_t out = STORE_BUF_INIT;
    uint64_t events = 0, sessions = 0, json = 0, bytes = 0;
    while (!done && !rc) {
        store_buf_clear(&out);
        if ((rc = replay_export_next(ex, &out, &done)))
            cmd_error(pr->prog, "export failed: %s", reel_strerror(rc));
        else if (write_all(fd, out.data, out.len)) {
            cmd_error(pr->prog, "write failed: %s", strerror(errno));
            rc = REEL_EIO;
        }
        replay_export_counts(ex, &events, &sessions, &json, &bytes);
        cmd_progress(pr, events, 0, json);
    }
    if (!rc && !quiet) {
        double t = cmd_progress_elapsed(pr);
        fprintf(stderr, "reel export: %llu events of %llu sessions, %.1f MB of JSON -> %.1f MB "
                        "(ratio %.2f) in %.2fs (%.0f MB/s)\n",
                (unsigned long long)events, (unsigned long long)sessions, json / 1e6,
                bytes / 1e6, bytes ? (double)json / bytes : 0, t, t > 0 ? json / 1e6 / t : 0);
    }
    store_buf_release(&out);
    replay_export_free(ex);
    return rc ? CMD_FAIL : CMD_OK;
}

int cmd_export(int argc, char **argv)
{
    const char *prog = "export", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA), *file = NULL;
    replay_export_opts_t opt = REPLAY_EXPORT_DEFAULT;
    cmd_range_t range = {0};
    int progress = -1, quiet = 0, r;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--progress")) {
            progress = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
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
            opt.session = v;
            opt.session_len = strlen(v);
        } else if (!strcmp(a, "--sessions")) {
            opt.sessions = v;
        } else if (!strcmp(a, "--level")) {
            if (cmd_parse_u64(prog, a, v, &n))
                return CMD_USAGE;
            opt.level = n > 22 ? 0 : (int)n;
        } else if (!strcmp(a, "--compression")) {
            if (strcmp(v, "zstd") && strcmp(v, "none")) {
                cmd_error(prog, "--compression must be 'zstd' or 'none', not '%s'", v);
                return CMD_USAGE;
            }
            opt.compress = !strcmp(v, "zstd");
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            file = v;
        } else {
            cmd_error(prog, "unknown option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        }
    }
    opt.after = range.after, opt.until = range.until;
    opt.since_ms = range.since_ms, opt.before_ms = range.before_ms;
    if (opt.compress && (opt.level < 1 || opt.level > 19)) {
        cmd_error(prog, "--level must be 1..19");
        return CMD_USAGE;
    }
    if (!file && opt.compress && isatty(STDOUT_FILENO)) {
        cmd_error(prog, "refusing to write compressed data to a terminal; use -o FILE or a pipe");
        return CMD_USAGE;
    }
    int fd = file ? open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644) : STDOUT_FILENO;
    if (fd < 0) {
        cmd_error(prog, "cannot create '%s': %s", file, strerror(errno));
        return CMD_FAIL;
    }
    store_t *s = cmd_open_store(prog, data, 1, 0);
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, progress);
    int rc = s ? run(s, &opt, fd, &pr, quiet) : CMD_FAIL;
    store_close(s);
    if (file && (close(fd) || rc)) {
        if (rc == CMD_OK)
            cmd_error(prog, "cannot write '%s': %s", file, strerror(errno));
        unlink(file); /* never leave a partial export behind */
        return CMD_FAIL;
    }
    return rc;
}
