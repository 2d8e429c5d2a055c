/* cmd_transcript.c -- `reel transcript`: a session folded into its transcript. */
#include <stdio.h>
#include <string.h>

#include "replay/replay.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel transcript --session S [--data DIR] [--at SEQ] [--format json|markdown]\n\n"
    "Folds a session into its transcript: messages with their deltas joined, reasoning,\n"
    "tool calls with their results, permissions and questions with their resolutions,\n"
    "usage totals and errors; ACP session/update envelopes are folded the same way and\n"
    "unknown event types are kept under \"other\". --at shows the state as of a sequence.\n\n"
    "  --session S        session id\n"
    "  --at SEQ           as of sequence SEQ (default: the latest)\n"
    "  --format FMT       json (default) or markdown\n";

int cmd_transcript(int argc, char **argv)
{
    const char *prog = "transcript", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA), *session = NULL;
    unsigned long long at = 0;
    int md = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!v) {
            cmd_error(prog, "unknown or incomplete option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        } else if (i++, !strcmp(a, "--data")) {
            data = v;
        } else if (!strcmp(a, "--session")) {
            session = v;
        } else if (!strcmp(a, "--at")) {
            if (cmd_parse_u64(prog, "--at", v, &at))
                return CMD_USAGE;
        } else if (!strcmp(a, "--format")) {
            if (strcmp(v, "json") && strcmp(v, "markdown")) {
                cmd_error(prog, "--format must be 'json' or 'markdown', not '%s'", v);
                return CMD_USAGE;
            }
            md = !strcmp(v, "markdown");
        } else {
            cmd_error(prog, "unknown option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        }
    }
    if (cmd_check_session(prog, session, 1))
        return CMD_USAGE;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    store_buf_t out = STORE_BUF_INIT;
    int rc = replay_transcript(s, session, strlen(session), at, md, &out);
    store_close(s);
    if (rc)
        cmd_error(prog, "session '%s': %s", session,
                  rc == REEL_ESESSION_NOT_FOUND ? "no such session" : reel_strerror(rc));
    else
        printf("%s\n", store_buf_cstr(&out));
    store_buf_release(&out);
    return rc ? CMD_FAIL : CMD_OK;
}
