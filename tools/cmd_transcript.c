/* cmd_transcript.c -- `reel transcript`: a session folded into its transcript. */
#include <stdio.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char about[] =
    "Folds a session into its transcript: messages with their deltas joined, reasoning,\n"
    "tool calls with their results, permissions and questions with their resolutions,\n"
    "usage totals and errors; ACP session/update envelopes are folded the same way and\n"
    "unknown event types are kept under \"other\". --at shows the state as of a sequence.\n"
    "With --server URL it comes from GET /v1/sessions/{id}/transcript.\n";

static int remote(const cmd_remote_t *r, const char *session, unsigned long long at, int md)
{
    store_buf_t path = STORE_BUF_INIT, body = STORE_BUF_INIT;
    cmd_remote_session_path(&path, session, "transcript");
    store_buf_printf(&path, "?format=%s", md ? "markdown" : "json");
    if (at)
        store_buf_printf(&path, "&at=%llu", at);
    int rc = cmd_remote_get("transcript", r, store_buf_cstr(&path), &body);
    if (!rc)
        printf("%s\n", store_buf_cstr(&body));
    store_buf_release(&path);
    store_buf_release(&body);
    return rc ? CMD_FAIL : CMD_OK;
}

int cmd_transcript(int argc, char **argv)
{
    const char *prog = "transcript", *data = CMD_DEFAULT_DATA, *session = NULL;
    unsigned long long at = 0;
    int md = 0;
    cmd_remote_t rem = {0};
    const opt_t rows[] = {
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session, .required = 1,
         .help = "session id"},
        CMD_OPT_DATA(&data),
        {.name = "at", .type = OPT_U64, .arg = "SEQ", .dest = &at,
         .help = "as of sequence SEQ (default: the latest)"},
        {.name = "format", .type = OPT_CHOICE, .arg = "json|markdown", .dest = &md,
         .help = "output format", .def = "json"},
        CMD_OPT_REMOTE(&rem),
        OPT_END,
    };
    int st = cmd_parse_session(prog, about, rows, argc, argv, &session, 1);
    if (st != OPT_GO)
        return st;
    if (rem.url)
        return remote(&rem, session, at, md);
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    store_buf_t out = STORE_BUF_INIT;
    int rc = replay_transcript(s, session, strlen(session), at, md, &out);
    store_close(s);
    if (rc)
        cmd_store_error(prog, rc, session);
    else
        printf("%s\n", store_buf_cstr(&out));
    store_buf_release(&out);
    return rc ? CMD_FAIL : CMD_OK;
}
