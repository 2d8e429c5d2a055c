/* cmd_backup.c -- `reel backup DIR`: consistent, compacted hot copy. */
#include <stdio.h>
#include <string.h>

#include "tools/cmds.h"

static const char usage[] =
    "usage: reel backup [--data DIR] DEST\n\n"
    "Writes a consistent, compacted copy of the store into directory DEST (created if\n"
    "missing; must not already hold a store) while the server keeps running. DEST is a\n"
    "data directory of its own: `reel serve --data DEST` serves it.\n\n"
    "  --data DIR   data directory [REEL_DATA] (default ./reel-data)\n";

int cmd_backup(int argc, char **argv)
{
    const char *prog = "backup", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA), *dest = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (a[0] == '-') {
            cmd_error(prog, "unknown or incomplete option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        } else if (!dest) {
            dest = a;
        } else {
            cmd_error(prog, "one destination only ('%s' and '%s')", dest, a);
            return CMD_USAGE;
        }
    }
    if (!dest) {
        cmd_error(prog, "a destination directory is required\n\n%s", usage);
        return CMD_USAGE;
    }
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, 0);
    int rc = store_backup(s, dest);
    store_close(s);
    if (rc) {
        cmd_error(prog, "%s", store_last_error());
        return CMD_FAIL;
    }
    fprintf(stderr, "reel backup: '%s' copied to '%s' in %.2fs\n", data, dest,
            cmd_progress_elapsed(&pr));
    return CMD_OK;
}
