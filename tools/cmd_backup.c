/* cmd_backup.c -- `reel backup DIR`: consistent, compacted hot copy. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tools/cmds.h"

static const char about[] =
    "Writes a consistent, compacted copy of the store into directory DEST (created; if it\n"
    "exists it must be empty) while the server keeps running. DEST is a data directory of\n"
    "its own: `reel serve --data DEST` serves it.\n"
    "\n"
    "All or nothing: the copy is written to DEST.partial and renamed to DEST once complete\n"
    "and synced. Interrupted (Ctrl-C, SIGTERM), it removes DEST.partial; after a SIGKILL or\n"
    "a power cut the next backup to DEST removes it. DEST never holds a partial copy.\n"
    "\n"
    "The copy is always compacted (LMDB's MDB_CP_COMPACT): only pages in use, and of each\n"
    "only its used part, so pages freed by deletes, purges and retention are left out (DEST\n"
    "is as small as the live data, docs/RETENTION.md), and it is the step that takes the old\n"
    "bytes of redacted or deleted events out of the data file (docs/REDACTION.md).\n";

int cmd_backup(int argc, char **argv)
{
    const char *prog = "backup", *data = CMD_DEFAULT_DATA;
    int compact = 1; /* always: the option says so explicitly */
    const opt_t rows[] = {CMD_OPT_DATA(&data),
                          {.name = "compact", .type = OPT_FLAG, .dest = &compact,
                           .help = "leave free pages out (always on; accepted to say so)"},
                          OPT_END};
    const opt_cmd_t cmd = {.name = prog, .args = "DEST", .about = about, .opts = rows};
    int nargs, st = opt_parse(&cmd, argc, argv, &nargs);
    if (st != OPT_GO)
        return st;
    if (nargs > 1) {
        cmd_error(prog, "one destination only ('%s' and '%s')", argv[0], argv[1]);
        return CMD_USAGE;
    }
    if (nargs == 0) {
        cmd_error(prog, "a destination directory is required (see --help)");
        return CMD_USAGE;
    }
    const char *dest = argv[0];
    if (cmd_check_new_dir(prog, "", dest, "a backup goes to a new or empty directory"))
        return CMD_FAIL;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    cmd_partial_t out;
    if (cmd_partial_begin(&out, prog, dest, 1)) {
        store_close(s);
        return CMD_FAIL;
    }
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, 0);
    int rc = store_backup(s, out.tmp);
    store_close(s);
    if (rc) {
        cmd_error(prog, "%s", store_last_error());
        cmd_partial_abort(&out);
        return CMD_FAIL;
    }
    if (cmd_partial_commit(&out))
        return CMD_FAIL;
    fprintf(stderr, "reel backup: '%s' copied to '%s' in %.2fs\n", data, dest,
            cmd_progress_elapsed(&pr));
    return CMD_OK;
}
