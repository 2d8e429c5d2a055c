/* cmd_import.c -- `reel import`: load an export (zstd or plain) into a store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "tools/cmds.h"

static const char about[] =
    "Loads an export made by `reel export` (zstd-compressed or plain JSON lines, detected)\n"
    "from FILE or standard input. Events keep their event_id and time, session records are\n"
    "recreated; importing the same file twice appends nothing the second time.\n";

int cmd_import(int argc, char **argv)
{
    const char *prog = "import", *data = CMD_DEFAULT_DATA, *file = "-";
    int progress = -1, quiet = 0, no_sync = 0;
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        CMD_OPT_SYNC(&no_sync),
        CMD_OPT_PROGRESS(&progress),
        {.name = "quiet", .type = OPT_FLAG, .dest = &quiet, .help = "no summary line"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .args = "[FILE|-]", .about = about, .opts = rows};
    int nargs, go = opt_parse(&cmd, argc, argv, &nargs);
    if (go != OPT_GO)
        return go;
    if (nargs)
        file = argv[nargs - 1]; /* the last one, as before the option table */
    int fd = strcmp(file, "-") ? open(file, O_RDONLY) : STDIN_FILENO;
    if (fd < 0) {
        cmd_error(prog, "cannot open '%s': %s", file, strerror(errno));
        return CMD_FAIL;
    }
    store_t *s = cmd_open_store(prog, data, 0, no_sync);
    if (!s)
        return CMD_FAIL;
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, progress);
    ingest_import_stats_t st;
    char err[512];
    int rc = ingest_import(s, fd, &st, err, sizeof err, cmd_progress_cb, &pr);
    store_close(s);
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc) {
        cmd_error(prog, "%s: %s; %llu events were imported before it", file, err,
                  (unsigned long long)st.events);
        return CMD_FAIL;
    }
    if (!quiet)
        fprintf(stderr, "reel import: %llu lines, %llu events appended, %llu duplicates skipped, "
                        "%llu session records, in %.2fs\n",
                (unsigned long long)st.lines, (unsigned long long)st.events,
                (unsigned long long)st.duplicates, (unsigned long long)st.sessions,
                cmd_progress_elapsed(&pr));
    return CMD_OK;
}
