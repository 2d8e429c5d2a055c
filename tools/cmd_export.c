/* cmd_export.c -- `reel export`: stream an export to a file or stdout. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char about[] =
    "Writes an export: a header line, session records and events as JSON lines (each event\n"
    "exactly as the HTTP API serves it, raw included), a check record after every 100\n"
    "lines or 64 KiB and an end record, each with the SHA-256 of the bytes before it (the\n"
    "end record also counts events and sessions), zstd-compressed by default with zstd's\n"
    "content checksum (`zstd -d` reads it; `reel import` checks and loads it).\n"
    "\n"
    "With -o FILE it is all or nothing: the export is written to FILE.partial and renamed\n"
    "to FILE once complete and synced; interrupted (Ctrl-C, SIGTERM) it removes\n"
    "FILE.partial, and after a SIGKILL the next export to FILE does.\n"
    "\n"
    "With --server URL the server writes it (GET /v1/export, /v1/sessions/{id}/export) at\n"
    "its zstd level (3); the file is checked by `reel import` the same way.\n";

/* The export through the server, streamed to 'fd'. */
static int remote(const cmd_remote_t *r, const replay_export_opts_t *o, const cmd_range_t *range,
                  int fd)
{
    store_buf_t path = STORE_BUF_INIT;
    const char *comp = o->compress ? "zstd" : "none";
    if (o->session) {
        cmd_remote_session_path(&path, o->session, "export");
        store_buf_printf(&path, "?compression=%s", comp);
    } else {
        store_buf_printf(&path, "/v1/export?compression=%s&after=%llu&until=%llu", comp,
                         range->after, range->until);
        if (range->since_ms)
            store_buf_printf(&path, "&since=%lld", (long long)range->since_ms);
        if (range->before_ms)
            store_buf_printf(&path, "&before=%lld", (long long)range->before_ms);
        if (o->sessions) {
            store_buf_printf(&path, "&sessions=");
            cmd_remote_escape(&path, o->sessions);
        }
    }
    int rc = cmd_remote_stream("export", r, store_buf_cstr(&path), fd);
    store_buf_release(&path);
    return rc ? CMD_FAIL : CMD_OK;
}

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
        cmd_store_error(pr->prog, rc, opt->session);
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
    const char *prog = "export", *data = CMD_DEFAULT_DATA, *file = NULL, *session = NULL;
    replay_export_opts_t opt = REPLAY_EXPORT_DEFAULT;
    cmd_range_t range = {0};
    unsigned long long level = (unsigned long long)opt.level;
    int progress = -1, quiet = 0, plain = !opt.compress;
    cmd_remote_t rem = {0};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session,
         .help = "one session (its record and every event)"},
        {.name = "sessions", .type = OPT_STRING, .arg = "A,B,...", .dest = &opt.sessions,
         .help = "only these sessions (whole-store export)"},
        CMD_OPT_RANGE(&range),
        {.name = "compression", .type = OPT_CHOICE, .arg = "zstd|none", .dest = &plain,
         .help = "zstd, or none (plain NDJSON)", .def = "zstd"},
        {.name = "level", .type = OPT_U64, .arg = "N", .dest = &level,
         .help = "zstd level 1..19", .def = "3"},
        {.name = "output", .alias = 'o', .type = OPT_STRING, .arg = "FILE", .dest = &file,
         .help = "write to FILE", .def = "standard output"},
        CMD_OPT_PROGRESS(&progress),
        {.name = "quiet", .type = OPT_FLAG, .dest = &quiet, .help = "no summary line"},
        CMD_OPT_REMOTE(&rem),
        OPT_END,
    };
    int st = cmd_parse_session(prog, about, rows, argc, argv, &session, 0);
    if (st != OPT_GO)
        return st;
    if (session)
        opt.session = session, opt.session_len = strlen(session);
    opt.compress = !plain;
    opt.level = level > 22 ? 0 : (int)level;
    opt.after = range.after, opt.until = range.until;
    opt.since_ms = range.since_ms, opt.before_ms = range.before_ms;
    if (opt.compress && (opt.level < 1 || opt.level > 19)) {
        cmd_error(prog, "--level must be from 1 to 19, not %llu", level);
        return CMD_USAGE;
    }
    if (!file && opt.compress && isatty(STDOUT_FILENO)) {
        cmd_error(prog, "refusing to write compressed data to a terminal; use -o FILE or a pipe");
        return CMD_USAGE;
    }
    if (rem.url && opt.session && (range.after || range.until || range.since_ms || range.before_ms)) {
        cmd_error(prog, "--server exports a whole session (--session) without a range");
        return CMD_USAGE;
    }
    if (rem.url && opt.level != 3) {
        cmd_error(prog, "--level with --server: the server compresses at level 3");
        return CMD_USAGE;
    }
    store_t *s = rem.url ? NULL : cmd_open_store(prog, data, 1, 0);
    if (!s && !rem.url)
        return CMD_FAIL;
    cmd_partial_t out;
    int fd = STDOUT_FILENO;
    if (file && cmd_partial_begin(&out, prog, file, 0)) {
        store_close(s);
        return CMD_FAIL;
    }
    if (file && (fd = open(out.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        cmd_error(prog, "cannot create '%s': %s", out.tmp, strerror(errno));
        cmd_partial_abort(&out);
        store_close(s);
        return CMD_FAIL;
    }
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, progress);
    int rc = rem.url ? remote(&rem, &opt, &range, fd) : run(s, &opt, fd, &pr, quiet);
    store_close(s);
    if (file && (close(fd) || rc)) {
        if (rc == CMD_OK)
            cmd_error(prog, "cannot write '%s': %s", out.tmp, strerror(errno));
        cmd_partial_abort(&out); /* never leave a partial export behind */
        return CMD_FAIL;
    }
    if (file && cmd_partial_commit(&out))
        return CMD_FAIL;
    return rc;
}
