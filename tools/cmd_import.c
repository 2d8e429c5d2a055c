/* cmd_import.c -- `reel import`: load an export (zstd or plain) into a store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel import [--data DIR] [--sync full|none] [--progress] [--quiet] [FILE|-]\n\n"
    "Loads an export made by `reel export` (zstd-compressed or plain JSON lines, detected)\n"
    "from FILE or standard input. Events keep their event_id and time, session records are\n"
    "recreated; importing the same file twice appends nothing the second time.\n\n"
    "  --data DIR          data directory [REEL_DATA] (default ./reel-data)\n"
    "  --sync full|none    fsync every commit [REEL_SYNC] (default full)\n"
    "  --progress          progress lines on stderr (default: when stderr is a terminal)\n"
    "  --quiet             no summary line\n";

int cmd_import(int argc, char **argv)
{
    const char *prog = "import", *data = cmd_env("REEL_DATA", CMD_DEFAULT_DATA), *file = "-";
    const char *sync = cmd_env("REEL_SYNC", "full");
    int progress = -1, quiet = 0, no_sync = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--progress")) {
            progress = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--data") && i + 1 < argc) {
            data = argv[++i];
        } else if (!strcmp(a, "--sync") && i + 1 < argc) {
            sync = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            cmd_error(prog, "unknown or incomplete option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        } else {
            file = a;
        }
    }
    if (cmd_parse_sync(prog, sync, &no_sync))
        return CMD_USAGE;
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
