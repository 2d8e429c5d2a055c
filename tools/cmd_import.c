/* cmd_import.c -- `reel import`: load an export (zstd or plain) into a store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "tools/cmds.h"

static const char about[] =
    "Loads an export made by `reel export` (zstd-compressed or plain JSON lines, detected)\n"
    "from FILE or standard input. Events keep their event_id and time, session records are\n"
    "recreated; importing the same file twice appends nothing the second time.\n"
    "\n"
    "The whole file is checked before anything is written: its check records and end record\n"
    "(SHA-256 and counts), the zstd checksum, every line. A cut or damaged file imports\n"
    "nothing and exits 1 naming the first bad line, unless --partial is given.\n";

/* Copies standard input (a pipe) into an unlinked temporary file: the import reads its
 * input twice, once to check it and once to write. Returns the file's descriptor or -1. */
static int spool(const char *prog, int in)
{
    FILE *f = tmpfile();
    char buf[1 << 16];
    ssize_t n;
    if (!f) {
        cmd_error(prog, "cannot create a temporary file for standard input: %s", strerror(errno));
        return -1;
    }
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || fwrite(buf, 1, (size_t)n, f) != (size_t)n) {
            cmd_error(prog, "cannot copy standard input: %s", strerror(errno));
            fclose(f);
            return -1;
        }
    }
    int fd = fflush(f) || fseek(f, 0, SEEK_SET) ? -1 : dup(fileno(f));
    fclose(f);
    if (fd < 0)
        cmd_error(prog, "cannot copy standard input: %s", strerror(errno));
    return fd;
}

/* Damage, with the same words as after an import that wrote nothing. */
static void report_damage(const char *prog, const char *file, const char *err,
                          const ingest_import_stats_t *st)
{
    cmd_error(prog, "%s: %s; nothing was imported (--partial imports the %llu verified "
                    "lines before the damage)", file, err, (unsigned long long)st->good_lines);
}

/* The checking pass alone (nothing written), rewinding 'fd' after it: 0 when the file is
 * an export import would take, else -1 after saying why (and closing 'fd'). */
static int refuse_bad_file(const char *prog, const char *file, int fd, int partial)
{
    ingest_import_stats_t st;
    char err[512];
    off_t at = lseek(fd, 0, SEEK_CUR);
    int rc = ingest_import(NULL, fd, INGEST_IMPORT_CHECK | (partial ? INGEST_IMPORT_PARTIAL : 0),
                           &st, err, sizeof err, NULL, NULL);
    if (!rc && lseek(fd, at, SEEK_SET) == at)
        return 0;
    if (rc == REEL_EDAMAGED)
        report_damage(prog, file, err, &st);
    else
        cmd_error(prog, "%s: %s", file, rc ? err : strerror(errno));
    if (fd != STDIN_FILENO)
        close(fd);
    return -1;
}

static void summary(const char *file, const ingest_import_stats_t *st, double secs)
{
    fprintf(stderr, "reel import: %llu lines, %llu events appended, %llu duplicates skipped, "
                    "%llu session records, in %.2fs\n",
            (unsigned long long)st->lines, (unsigned long long)st->events,
            (unsigned long long)st->duplicates, (unsigned long long)st->sessions, secs);
    if (st->damaged_line)
        fprintf(stderr, "reel import: %s is damaged (%s); --partial imported its first %llu "
                        "lines, the verified part\n", file, st->damage,
                (unsigned long long)st->good_lines);
    else if (st->format < 2)
        fprintf(stderr, "reel import: warning: %s is a format %d export, which carries no "
                        "checksums: its lines and counts were checked, a changed value "
                        "would not be seen\n", file, st->format);
}

int cmd_import(int argc, char **argv)
{
    const char *prog = "import", *data = CMD_DEFAULT_DATA, *file = "-";
    int progress = -1, quiet = 0, no_sync = 0, partial = 0;
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        CMD_OPT_SYNC(&no_sync),
        CMD_OPT_PROGRESS(&progress),
        {.name = "partial", .type = OPT_FLAG, .dest = &partial,
         .help = "a cut or damaged file: import its verified part (the lines\n"
                 "before the damage) instead of nothing"},
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
    if (lseek(fd, 0, SEEK_CUR) < 0) { /* a pipe */
        int copy = spool(prog, fd);
        if (fd != STDIN_FILENO)
            close(fd);
        if ((fd = copy) < 0)
            return CMD_FAIL;
    }
    struct stat fst;
    if (fstat(fd, &fst) == 0 && fst.st_size == 0) {
        cmd_error(prog, "%s is empty: not an export; nothing was imported",
                  strcmp(file, "-") ? file : "standard input");
        if (fd != STDIN_FILENO)
            close(fd);
        return CMD_FAIL;
    }
    /* A new data directory is created only for a file that passes the check: a wrong or
     * cut file must leave nothing behind (the check reads the file once more). */
    struct stat dst;
    if (stat(data, &dst) && errno == ENOENT && refuse_bad_file(prog, file, fd, partial))
        return CMD_FAIL;
    store_t *s = cmd_open_store(prog, data, 0, no_sync);
    if (!s) {
        if (fd != STDIN_FILENO)
            close(fd);
        return CMD_FAIL;
    }
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, progress);
    ingest_import_stats_t st;
    char err[512];
    int rc = ingest_import(s, fd, partial ? INGEST_IMPORT_PARTIAL : 0, &st, err, sizeof err,
                           cmd_progress_cb, &pr);
    store_close(s);
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc == REEL_EDAMAGED && !st.events && !st.duplicates) {
        report_damage(prog, file, err, &st);
        return CMD_FAIL;
    }
    if (rc) {
        cmd_error(prog, "%s: %s; %llu events were imported before it", file, err,
                  (unsigned long long)st.events);
        return CMD_FAIL;
    }
    if (!quiet || st.damaged_line)
        summary(file, &st, cmd_progress_elapsed(&pr));
    return CMD_OK;
}
