/* cmd_backup.c -- `reel backup DIR`: consistent, compacted hot copy. */
#include <stdio.h>
#include <string.h>

#include "tools/cmds.h"

static const char about[] =
    "Writes a consistent, compacted copy of the store into directory DEST (created if\n"
    "missing; must not already hold a store) while the server keeps running. DEST is a\n"
    "data directory of its own: `reel serve --data DEST` serves it.\n";

int cmd_backup(int argc, char **argv)
{
    const char *prog = "backup", *data = CMD_DEFAULT_DATA;
    const opt_t rows[] = {CMD_OPT_DATA(&data), OPT_END};
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
