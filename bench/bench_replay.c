/* bench_replay.c -- benchmarks of what is read back out: restore and export.
 *
 *   build/bench_replay [--quick] [--dir DIR]
 *
 * 1. Restore of the newest 50 events (replay_restore, fit=newest and fit=sdk) on a 1k-event
 *    and a 1M-event session: p50/p99 latency and the 1M/1k ratio.
 * 2. Export of a realistic transcript mix (small deltas, tool calls, tool results of
 *    1-20 KB of code-like text, usage events): JSON MB/s at zstd level 3 and the ratio,
 *    beside the `zstd -3` CLI compressing the very same JSON bytes, measured in this run.
 * Prints numbers, never pass/fail. The stores are built with --sync=none (building is not
 * what is measured).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "bench/bench_util.h"
#include "replay/replay.h"

static const char *words[] = {
    "the", "file", "function", "return", "error", "test", "const", "struct", "buffer", "size",
    "if", "else", "for", "while", "int", "char", "void", "static", "session", "event",
    "parse", "value", "index", "store", "read", "write", "check", "length", "pointer", "free",
    "malloc", "include", "define", "todo", "fixed", "failing", "passes", "npm", "src/main.c",
    "README.md", "{", "}", "(", ");", "=", "==", "->", "0", "1", "42", "\\n", "\\t"};

static void text(store_buf_t *b, size_t n)
{
    size_t start = b->len;
    while (b->len - start < n) {
        store_buf_puts(b, words[bench_next() % (sizeof words / sizeof words[0])]);
        store_buf_putc(b, bench_next() % 9 ? ' ' : '.');
    }
}

/* One event of the transcript mix, as a JSON line. */
static void mix_event(store_buf_t *b, unsigned i)
{
    unsigned r = bench_next() % 100;
    if (r < 70) {
        store_buf_printf(b, "{\"type\":\"item.delta\",\"source\":\"agent\",\"data\":{\"item_id\":\"itm_%u\","
                            "\"delta\":\"", i / 20);
        text(b, 20 + bench_next() % 120);
        store_buf_puts(b, "\"}}\n");
    } else if (r < 82) {
        store_buf_printf(b, "{\"type\":\"item.started\",\"source\":\"agent\",\"data\":{\"item_id\":\"itm_%u\","
                            "\"kind\":\"tool_call\",\"name\":\"Bash\",\"call_id\":\"toolu_%u\","
                            "\"arguments\":{\"command\":\"", i, i);
        text(b, 30 + bench_next() % 80);
        store_buf_puts(b, "\"}}}\n");
    } else if (r < 94) {
        store_buf_printf(b, "{\"type\":\"item.completed\",\"source\":\"agent\",\"data\":{\"item_id\":\"itm_%u\","
                            "\"kind\":\"tool_result\",\"call_id\":\"toolu_%u\",\"status\":\"completed\","
                            "\"output\":\"", i, i);
        text(b, 1000 + bench_next() % 19000);
        store_buf_puts(b, "\"}}\n");
    } else {
        store_buf_printf(b, "{\"type\":\"usage\",\"source\":\"agent\",\"data\":{\"input_tokens\":%u,"
                            "\"output_tokens\":%u,\"cost_usd\":0.0%u}}\n",
                         bench_next() % 20000, bench_next() % 2000, bench_next() % 1000);
    }
}

/* Appends 'n' events to 'session' in batches of 1000 (1 KiB-ish deltas, or the mix). */
static int fill(store_t *s, const char *session, unsigned n, int mix)
{
    store_buf_t b = STORE_BUF_INIT;
    for (unsigned done = 0; done < n;) {
        unsigned k = n - done < 1000 ? n - done : 1000;
        store_buf_clear(&b);
        for (unsigned i = 0; i < k; i++) {
            if (mix) {
                mix_event(&b, done + i);
            } else {
                store_buf_printf(&b, "{\"type\":\"item.delta\",\"source\":\"agent\",\"data\":{\"i\":%u,\"delta\":\"", done + i);
                text(&b, 900);
                store_buf_puts(&b, "\"}}\n");
            }
        }
        ingest_batch_t ib;
        ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
        int rc = ingest_batch_init(&ib, session, strlen(session));
        if (!rc)
            rc = ingest_parse(&ib, (const char *)b.data, b.len, INGEST_NDJSON, &lim, NULL);
        if (!rc)
            rc = ingest_append(s, &ib);
        ingest_batch_release(&ib);
        if (rc) {
            fprintf(stderr, "bench_replay: append failed: %s\n", reel_strerror(rc));
            store_buf_release(&b);
            return -1;
        }
        done += k;
    }
    store_buf_release(&b);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 of 'reads' restores of the newest 50 events of 'session', in µs. */
static void restore_latency(store_t *s, const char *session, int fit, int reads, double *p50,
                            double *p99)
{
    double *t = malloc((size_t)reads * sizeof *t);
    replay_restore_opts_t opt = REPLAY_RESTORE_DEFAULT;
    opt.fit = fit;
    for (int i = 0; i < reads; i++) {
        double t0 = bench_now();
        store_read_t r;
        replay_restore_t res;
        store_read_begin(s, &r);
        replay_restore(&r, session, strlen(session), &opt, &res);
        store_read_end(&r);
        replay_restore_release(&res);
        t[i] = (bench_now() - t0) * 1e6;
    }
    qsort(t, (size_t)reads, sizeof *t, cmp_d);
    *p50 = t[reads / 2];
    *p99 = t[reads * 99 / 100];
    free(t);
}

static double export_to(store_t *s, int compress, const char *path, uint64_t *json, uint64_t *out)
{
    replay_export_opts_t opt = REPLAY_EXPORT_DEFAULT;
    opt.compress = compress;
    replay_export_t *ex;
    FILE *f = fopen(path, "wb");
    if (!f || replay_export_new(s, &opt, &ex))
        return -1;
    store_buf_t b = STORE_BUF_INIT;
    int done = 0;
    double t0 = bench_now();
    while (!done) {
        store_buf_clear(&b);
        if (replay_export_next(ex, &b, &done))
            break;
        fwrite(b.data, 1, b.len, f);
    }
    fclose(f);
    double t = bench_now() - t0;
    replay_export_counts(ex, NULL, NULL, json, out);
    replay_export_free(ex);
    store_buf_release(&b);
    return t;
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *base = "build/bench-tmp";
    int args = bench_args(argc, argv, "bench_replay", &quick, &base);
    if (args >= 0)
        return args;
    char dir[512], cmd[2048];
    snprintf(dir, sizeof dir, "%s/replay-%d", base, (int)getpid());
    mkdir(base, 0755);
    store_options_t so = {0};
    so.no_sync = 1;
    store_t *s;
    if (store_open(dir, &so, &s)) {
        fprintf(stderr, "bench_replay: cannot open %s: %s\n", dir, store_last_error());
        return 1;
    }
    unsigned big = quick ? 100000 : 1000000, mix = quick ? 20000 : 200000;
    int reads = quick ? 2000 : 10000;
    printf("## Restore and export (bench_replay%s)\n\n", quick ? ", quick" : "");
    double t0 = bench_now();
    if (fill(s, "small", 1000, 0) || fill(s, "big", big, 0))
        return 1;
    fprintf(stderr, "bench_replay: built sessions of 1k and %u events in %.1fs\n", big, bench_now() - t0);
    printf("| restore newest 50 | 1k-event session p50 / p99 (µs) | %uk-event session p50 / p99 (µs) | ratio p50 |\n", big / 1000);
    printf("|---|---|---|---|\n");
    for (int fit = 0; fit < 2; fit++) {
        double a50, a99, b50, b99;
        restore_latency(s, "small", fit, reads, &a50, &a99);
        restore_latency(s, "big", fit, reads, &b50, &b99);
        printf("| fit=%s | %.0f / %.0f | %.0f / %.0f | %.2f |\n", fit ? "sdk" : "newest", a50, a99,
               b50, b99, b50 / a50);
    }
    store_close(s);

    /* Export: a fresh store holding only the transcript mix. */
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "-mix");
    if (store_open(dir, &so, &s) || fill(s, "mix", mix, 1))
        return 1;
    char plain[600], zst[600], cli[600];
    snprintf(plain, sizeof plain, "%s.jsonl", dir);
    snprintf(zst, sizeof zst, "%s.jsonl.zst", dir);
    snprintf(cli, sizeof cli, "%s.cli.zst", dir);
    uint64_t json = 0, out = 0, pjson = 0, pout = 0;
    double tz = export_to(s, 1, zst, &json, &out);
    double tp = export_to(s, 0, plain, &pjson, &pout);
    store_close(s);
    snprintf(cmd, sizeof cmd, "zstd -q -f -3 -T1 '%s' -o '%s'", plain, cli);
    double c0 = bench_now();
    int crc = system(cmd);
    double tc = bench_now() - c0;
    struct stat st;
    uint64_t cli_bytes = crc == 0 && stat(cli, &st) == 0 ? (uint64_t)st.st_size : 0;
    printf("\n| export of %u mixed events (%.0f MB of JSON) | MB/s of JSON | output MB | ratio |\n",
           mix, json / 1e6);
    printf("|---|---|---|---|\n");
    printf("| reel export, zstd level 3 | %.0f | %.1f | %.2f |\n", json / 1e6 / tz, out / 1e6,
           (double)json / (double)out);
    printf("| reel export, no compression | %.0f | %.1f | 1.00 |\n", pjson / 1e6 / tp, pout / 1e6);
    if (cli_bytes)
        printf("| `zstd -3 -T1` CLI on the same JSON | %.0f | %.1f | %.2f |\n", pjson / 1e6 / tc,
               cli_bytes / 1e6, (double)pjson / (double)cli_bytes);
    printf("\nreel export at level 3 runs at %.2f× the zstd CLI's speed on the same bytes "
           "(size %.3f× of the CLI's output).\n", (json / tz) / (pjson / tc),
           cli_bytes ? (double)out / (double)cli_bytes : 0.0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'* ", dir, dir);
    dir[strlen(dir) - 4] = 0; /* the restore store too */
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "'%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_replay: could not remove %s\n", dir);
    return 0;
}
