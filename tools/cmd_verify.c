/* cmd_verify.c -- `reel verify`: integrity check (like redis-check-aof, changes nothing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char about[] =
    "Checks the store: per session, sequences dense from 1, every stored value decodable,\n"
    "the SHA-256 hash chain recomputed from the bodies, the event_id index and the session\n"
    "record (a session trimmed by retention: from its first kept sequence, the chain from\n"
    "the hash its record keeps for it); then the position index of the all-sessions log.\n"
    "Reports the first bad place\n"
    "and the last good sequence before it. Changes nothing. Exit status 0 when sound, 1 when\n"
    "a problem was found or the check could not run. With --server URL (and --session)\n"
    "the server checks the session (GET /v1/sessions/{id}/verify).\n";

static uint64_t member_u64(const char *j, size_t n, const char *name)
{
    const char *v;
    size_t vn;
    return cmd_json_member(j, n, name, &v, &vn) ? 0 : strtoull(v, NULL, 10);
}

/* The server's report (replay_write_verify's JSON) back into 'rep'. */
static int remote(const cmd_remote_t *r, const char *session, store_verify_report_t *rep,
                  store_buf_t *json)
{
    store_buf_t path = STORE_BUF_INIT, t = STORE_BUF_INIT;
    cmd_remote_session_path(&path, session, "verify");
    int rc = cmd_remote_get("verify", r, store_buf_cstr(&path), json);
    store_buf_release(&path);
    if (rc)
        return -1;
    const char *j = (const char *)json->data, *v, *e;
    size_t n = json->len, vn, en;
    memset(rep, 0, sizeof *rep);
    rep->ok = !cmd_json_member(j, n, "ok", &v, &vn) && vn == 4 && !memcmp(v, "true", 4);
    rep->sessions = member_u64(j, n, "sessions");
    rep->events = member_u64(j, n, "events");
    rep->log_entries = member_u64(j, n, "log_entries");
    if (!rep->ok && !cmd_json_member(j, n, "first_error", &e, &en)) {
        rep->sequence = member_u64(e, en, "sequence");
        rep->position = member_u64(e, en, "position");
        rep->ok_up_to = member_u64(e, en, "ok_up_to");
        if (!cmd_json_member(e, en, "session", &v, &vn) && v[0] == '"')
            cmd_json_unquote(v, vn, &t), snprintf(rep->session, sizeof rep->session, "%s",
                                                  store_buf_cstr(&t));
        store_buf_clear(&t);
        if (!cmd_json_member(e, en, "problem", &v, &vn) && v[0] == '"')
            cmd_json_unquote(v, vn, &t), snprintf(rep->problem, sizeof rep->problem, "%s",
                                                  store_buf_cstr(&t));
    }
    store_buf_release(&t);
    return 0;
}

int cmd_verify(int argc, char **argv)
{
    const char *prog = "verify", *data = CMD_DEFAULT_DATA, *session = NULL;
    int progress = -1, json = 0;
    cmd_remote_t rem = {0};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session,
         .help = "check one session only"},
        CMD_OPT_PROGRESS(&progress),
        {.name = "json", .type = OPT_FLAG, .dest = &json, .help = "print the report as JSON on stdout"},
        CMD_OPT_REMOTE(&rem),
        OPT_END,
    };
    int st = cmd_parse_session(prog, about, rows, argc, argv, &session, 0);
    if (st != OPT_GO)
        return st;
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, progress);
    store_verify_report_t rep;
    store_buf_t b = STORE_BUF_INIT;
    if (rem.url) {
        if (!session) {
            cmd_error(prog, "--server checks one session: give --session S (the whole store "
                            "is checked with --data, on the server's machine)");
            return CMD_USAGE;
        }
        if (remote(&rem, session, &rep, &b)) {
            store_buf_release(&b);
            return CMD_FAIL;
        }
    } else {
        store_t *s = cmd_open_store(prog, data, 1, 0);
        if (!s)
            return CMD_FAIL;
        int rc = store_verify(s, session, session ? strlen(session) : 0, &rep, cmd_progress_cb, &pr);
        store_close(s);
        if (rc) {
            cmd_store_error(prog, rc, session);
            return CMD_FAIL;
        }
        if (json)
            replay_write_verify(&b, &rep, 0);
    }
    if (json) {
        printf("%s\n", store_buf_cstr(&b));
    } else if (rep.ok) {
        printf("ok: %llu sessions, %llu events, %llu log entries checked in %.2fs\n",
               (unsigned long long)rep.sessions, (unsigned long long)rep.events,
               (unsigned long long)rep.log_entries, cmd_progress_elapsed(&pr));
    } else {
        printf("FAILED: session '%s'", rep.session);
        if (rep.sequence)
            printf(" sequence %llu", (unsigned long long)rep.sequence);
        if (rep.position)
            printf(" (position %llu)", (unsigned long long)rep.position);
        printf(": %s\nok_up_to: sequence %llu of session '%s'\n", rep.problem,
               (unsigned long long)rep.ok_up_to, rep.session);
    }
    store_buf_release(&b);
    return rep.ok ? CMD_OK : CMD_FAIL;
}
