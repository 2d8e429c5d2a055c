/* common.c -- helpers shared by the subcommands (see cmds.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cmds.h"

const char *cmd_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

void cmd_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "reel %s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_parse_sync(const char *prog, const char *v, int *no_sync)
{
    if (!strcmp(v, "full")) {
        *no_sync = 0;
        return 0;
    }
    if (!strcmp(v, "none")) {
        *no_sync = 1;
        return 0;
    }
    cmd_error(prog, "--sync must be 'full' or 'none', not '%s'", v);
    return -1;
}

int cmd_parse_u64(const char *prog, const char *what, const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!v || !*v || *v == '-' || *v == '+') {
        cmd_error(prog, "%s must be a non-negative integer, not '%s'", what, v ? v : "");
        return -1;
    }
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end) {
        cmd_error(prog, "%s must be a non-negative integer, not '%s'", what, v);
        return -1;
    }
    *out = n;
    return 0;
}

store_t *cmd_open_store(const char *prog, const char *dir, int read_only, int no_sync)
{
    store_options_t opt = {0};
    opt.read_only = read_only;
    opt.no_sync = no_sync;
    store_t *s = NULL;
    int rc = store_open(dir, &opt, &s);
    if (rc != REEL_OK) {
        cmd_error(prog, "cannot open data directory '%s': %s", dir, store_last_error());
        return NULL;
    }
    return s;
}
