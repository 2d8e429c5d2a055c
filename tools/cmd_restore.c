/* cmd_restore.c -- `reel restore`: print a session's replay text (durable resume). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char about[] =
    "Prints the replay text that resumes session S in a fresh agent: a header line, then\n"
    "one JSON line per event {createdAt, sender, payload}, from the newest events only.\n"
    "With --server URL it comes from GET /v1/sessions/{id}/restore.\n";

static int remote(const cmd_remote_t *r, const char *session, const replay_restore_opts_t *o,
                  int json)
{
    store_buf_t path = STORE_BUF_INIT, body = STORE_BUF_INIT, text = STORE_BUF_INIT;
    cmd_remote_session_path(&path, session, "restore");
    store_buf_printf(&path, "?max_events=%zu&max_chars=%zu&fit=%s", o->max_events, o->max_chars,
                     o->fit == REPLAY_FIT_SDK ? "sdk" : "newest");
    int rc = cmd_remote_get("restore", r, store_buf_cstr(&path), &body);
    const char *v;
    size_t n;
    if (!rc && json) {
        printf("%s\n", store_buf_cstr(&body));
    } else if (!rc && !cmd_json_member((const char *)body.data, body.len, "replay_text", &v, &n) &&
               v[0] == '"') {
        cmd_json_unquote(v, n, &text);
        fwrite(text.data, 1, text.len, stdout);
    } else if (!rc) {
        cmd_error("restore", "%s answered a restore object without its text", r->url);
        rc = -1;
    }
    store_buf_release(&path);
    store_buf_release(&body);
    store_buf_release(&text);
    return rc ? CMD_FAIL : CMD_OK;
}

int cmd_restore(int argc, char **argv)
{
    const char *prog = "restore", *data = CMD_DEFAULT_DATA, *session = NULL;
    replay_restore_opts_t opt = REPLAY_RESTORE_DEFAULT;
    unsigned long long max_events = opt.max_events, max_chars = opt.max_chars;
    int json = 0, sdk = opt.fit == REPLAY_FIT_SDK;
    cmd_remote_t rem = {0};
    const opt_t rows[] = {
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session, .required = 1,
         .help = "session id"},
        CMD_OPT_DATA(&data),
        {.name = "max-events", .type = OPT_U64, .arg = "N", .dest = &max_events,
         .help = "newest events considered (default 50, at most 10000)"},
        {.name = "max-chars", .type = OPT_U64, .arg = "N", .dest = &max_chars,
         .help = "text budget in UTF-16 code units", .def = "12000"},
        {.name = "fit", .type = OPT_CHOICE, .arg = "newest|sdk", .dest = &sdk,
         .help = "newest: keep the newest events that fit (default); sdk: the\n"
                 "sandbox-agent SDK's algorithm, byte for byte"},
        {.name = "json", .type = OPT_FLAG, .dest = &json,
         .help = "print the HTTP API's restore object instead of the text"},
        CMD_OPT_REMOTE(&rem),
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .about = about, .opts = rows};
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    opt.max_events = (size_t)max_events;
    opt.max_chars = (size_t)max_chars;
    opt.fit = sdk ? REPLAY_FIT_SDK : REPLAY_FIT_NEWEST;
    if (cmd_check_session(prog, session, 1))
        return CMD_USAGE;
    if (rem.url)
        return remote(&rem, session, &opt, json);
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
        cmd_store_error(prog, rc, session);
    else
        fwrite(out.data, 1, out.len, stdout);
    if (!rc && json)
        putchar('\n');
    store_buf_release(&out);
    store_close(s);
    return rc ? CMD_FAIL : CMD_OK;
}
