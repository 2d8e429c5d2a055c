/* progress.c -- progress lines for long commands (export, import, verify). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "tools/cmds.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cmd_progress_init(cmd_progress_t *p, const char *prog, int enabled)
{
    p->prog = prog;
    p->enabled = enabled < 0 ? isatty(STDERR_FILENO) : enabled;
    p->start = p->last = now();
    p->printed = 0;
}

void cmd_progress(cmd_progress_t *p, unsigned long long events, unsigned long long total,
                  unsigned long long bytes)
{
    double t = now();
    if (!p->enabled || t - p->last < 1.0)
        return;
    p->last = t;
    p->printed = 1;
    double el = t - p->start;
    double rate = el > 0 ? (double)events / el : 0;
    fprintf(stderr, "reel %s: %llu", p->prog, events);
    if (total)
        fprintf(stderr, "/%llu (%.0f%%)", total, 100.0 * (double)events / (double)total);
    fputs(" events", stderr);
    if (bytes)
        fprintf(stderr, ", %.1f MB", (double)bytes / 1e6);
    fprintf(stderr, ", %.0f events/s, %.0fs", rate, el);
    /* The time left at the rate so far: what someone watching a long job wants to know. */
    if (total > events && rate > 0)
        fprintf(stderr, ", about %.0fs left", (double)(total - events) / rate);
    fputs(isatty(STDERR_FILENO) ? "   \r" : "\n", stderr);
}

double cmd_progress_elapsed(const cmd_progress_t *p)
{
    return now() - p->start;
}

void cmd_progress_cb(void *arg, uint64_t done, uint64_t total)
{
    cmd_progress(arg, (unsigned long long)done, (unsigned long long)total, 0);
}
