/* cmd_restore.c -- `reel restore`: print a session's replay text (durable resume). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel restore --session S [--data DIR] [--max-events N] [--max-chars N]\n"
    "                    [--fit newest|sdk] [--json]\n\n"
    "Prints the replay text that resumes session S in a fresh agent: a header line, then\n"
    "one JSON line per event {createdAt, sender, payload}, from the newest events only.\n\n"
    "  --session S       session id\n"
    "  --data DIR        data directory [REEL_DATA] (default ./reel-data)\n"
    "  --max-events N    newest events considered (default 50, at most 10000)\n"
    "  --max-chars N     text budget in UTF-16 code units (default 12000)\n"
    "  --fit newest|sdk  newest: keep the newest events that fit (default); sdk: the\n"
    "                    sandbox-agent SDK's algorithm, byte for byte\n"
    "  --json            print the HTTP API's restore object instead of the text\n";

int cmd_restore(int argc, char **argv)
{
    const char *prog = "restore", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA);
    const char *session = NULL;
    replay_restore_opts_t opt = REPLAY_RESTORE_DEFAULT;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(a, "--session") && i + 1 < argc) {
            session = argv[++i];
        } else if (!strcmp(a, "--max-events") && i + 1 < argc) {
            if (cmd_parse_u64(prog, "--max-events", argv[++i], &n))
                return CMD_USAGE;
            opt.max_events = (size_t)n;
        } else if (!strcmp(a, "--max-chars") && i + 1 < argc) {
            if (cmd_parse_u64(prog, "--max-chars", argv[++i], &n))
                return CMD_USAGE;
            opt.max_chars = (size_t)n;
        } else if (!strcmp(a, "--fit") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "sdk"))
                opt.fit = REPLAY_FIT_SDK;
            else if (!strcmp(v, "newest"))
                opt.fit = REPLAY_FIT_NEWEST;
            else {
                cmd_error(prog, "--fit must be 'newest' or 'sdk', not '%s'", v);
                return CMD_USAGE;
            }
        } else {
            cmd_error(prog, "unknown or incomplete option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        }
    }
    if (cmd_check_session(prog, session, 1))
        return CMD_USAGE;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    store_read_t r;
    replay_restore_t res;
    store_session_t rec;
    store_buf_t out = STORE_BUF_INIT;
    int rc = store_read_begin(s, &r);
    if (!rc) {
        rc = replay_restore(&r, session, strlen(session), &opt, &res);
        if (!rc && json && !(rc = store_session_get(&r, session, strlen(session), &rec)))
            rc = replay_write_restore(&out, &rec, &res);
        else if (!rc)
            store_buf_put(&out, res.text.data, res.text.len);
        if (!rc)
            replay_restore_release(&res);
        store_read_end(&r);
    }
    if (rc)
        cmd_error(prog, "session '%s': %s", session, reel_strerror(rc));
    else
        fwrite(out.data, 1, out.len, stdout);
    if (!rc && json)
        putchar('\n');
    store_buf_release(&out);
    store_close(s);
    return rc ? CMD_FAIL : CMD_OK;
}
