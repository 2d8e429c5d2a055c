/* bench_redact.c -- what redaction at ingest costs (docs/REDACTION.md).
 *
 *   build/bench_redact [--quick] [--dir DIR]
 *
 * The same transcript mix as bench_replay (70% small deltas, 12% tool calls, 12% tool
 * results of 1-20 KB of code-like text, 6% usage), with a secret (a generated GitHub,
 * AWS, OpenAI or Slack token) in 1 event in 50, ingested with --redact off and builtin:
 *  1. parse + transcode + redact + encode + hash only (ingest_parse, nothing stored);
 *  2. appended to a store (batches of 1000, --sync none, so the fsync does not hide it).
 * Each is run 5 times alternating off/on; the best run of each is printed, with the ratio,
 * and the scanner's own speed over the NDJSON text (best of 3) with its matches by kind
 * (BENCH_REDACT_SHOW=1 prints those of the first chunk). Numbers, never pass/fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "ingest/ingest.h"

static const char *words[] = {
    "the", "file", "function", "return", "error", "test", "const", "struct", "buffer", "size",
    "if", "else", "for", "while", "int", "char", "void", "static", "session", "event",
    "parse", "value", "index", "store", "read", "write", "check", "length", "pointer", "free",
    "malloc", "include", "define", "todo", "fixed", "failing", "passes", "npm", "src/main.c",
    "README.md", "{", "}", "(", ");", "=", "==", "->", "0", "1", "42", "\\n", "\\t",
    "https://github.com/org/repo", "sha256:9f86d081884c7d65", "basic", "password", "secret",
    "Bearer", "--verbose", "auth", "skip", "task-queue", "AKIA", "eyJ"};

static void text(store_buf_t *b, size_t n)
{
    size_t start = b->len;
    while (b->len - start < n) {
        store_buf_puts(b, words[bench_next() % (sizeof words / sizeof words[0])]);
        store_buf_putc(b, bench_next() % 9 ? ' ' : '.');
    }
}

static void token(store_buf_t *b)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static const char *const pre[] = {"ghp_", "AKIA", "sk-proj-", "xoxb-1234567890-"};
    static const unsigned len[] = {36, 16, 60, 30};
    unsigned k = bench_next() % 4;
    store_buf_puts(b, pre[k]);
    for (unsigned i = 0; i < len[k]; i++)
        store_buf_putc(b, k == 1 ? "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[bench_next() % 32] : al[bench_next() % 62]);
}

static void mix_event(store_buf_t *b, unsigned i)
{
    unsigned r = bench_next() % 100;
    int secret = bench_next() % 50 == 0;
    if (r < 70) {
        store_buf_printf(b, "{\"type\":\"item.delta\",\"source\":\"agent\",\"data\":{\"item_id\":"
                            "\"itm_%u\",\"delta\":\"", i / 20);
        text(b, 20 + bench_next() % 120);
    } else if (r < 82) {
        store_buf_printf(b, "{\"type\":\"item.started\",\"source\":\"agent\",\"data\":{\"item_id\":"
                            "\"itm_%u\",\"kind\":\"tool_call\",\"name\":\"Bash\",\"call_id\":"
                            "\"toolu_%u\",\"arguments\":{\"command\":\"", i, i);
        text(b, 30 + bench_next() % 80);
        if (secret)
            store_buf_puts(b, " TOKEN="), token(b);
        store_buf_puts(b, "\"}}}\n");
        return;
    } else if (r < 94) {
        store_buf_printf(b, "{\"type\":\"item.completed\",\"source\":\"agent\",\"data\":{\"item_id\":"
                            "\"itm_%u\",\"kind\":\"tool_result\",\"call_id\":\"toolu_%u\","
                            "\"status\":\"completed\",\"output\":\"", i, i);
        text(b, 1000 + bench_next() % 19000);
    } else {
        store_buf_printf(b, "{\"type\":\"usage\",\"source\":\"agent\",\"data\":{\"input_tokens\":%u,"
                            "\"output_tokens\":%u,\"cost_usd\":0.0%u}}\n",
                         bench_next() % 20000, bench_next() % 2000, bench_next() % 1000);
        return;
    }
    if (secret)
        store_buf_puts(b, "\\nexport TOKEN="), token(b);
    store_buf_puts(b, "\"}}\n");
}

#define BATCH 1000

/* Ingests the chunks (each BATCH events of NDJSON); stores them when 's' is not NULL.
 * Returns seconds, or -1. */
static double run(store_t *s, const char *session, store_buf_t *chunks, size_t n_chunks)
{
    double t0 = bench_now();
    for (size_t c = 0; c < n_chunks; c++) {
        ingest_batch_t ib;
        ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
        int rc = ingest_batch_init(&ib, session, strlen(session));
        if (!rc)
            rc = ingest_parse(&ib, (const char *)chunks[c].data, chunks[c].len, INGEST_NDJSON,
                              &lim, NULL);
        if (!rc && s)
            rc = ingest_append(s, &ib);
        ingest_batch_release(&ib);
        if (rc) {
            fprintf(stderr, "bench_redact: %s\n", reel_strerror(rc));
            return -1;
        }
    }
    return bench_now() - t0;
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *base = "/tmp/reel-bench";
    int st = bench_args(argc, argv, "bench_redact", &quick, &base);
    if (st >= 0)
        return st;
    size_t n_chunks = quick ? 20 : 100;
    store_buf_t *chunks = calloc(n_chunks, sizeof *chunks);
    size_t bytes = 0;
    for (size_t c = 0; c < n_chunks; c++) {
        for (unsigned i = 0; i < BATCH; i++)
            mix_event(&chunks[c], (unsigned)(c * BATCH + i));
        bytes += chunks[c].len;
    }
    size_t events = n_chunks * BATCH;
    ingest_redactor_t *on;
    if (ingest_redactor_new("builtin", &on, NULL, 0))
        return 1;

    /* the scanner alone, over the JSON text (about the string bytes it sees) */
    double best_scan = 1e9;
    size_t matches = 0, by_kind[INGEST_REDACT_BUILTIN_KINDS];
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now();
        matches = 0;
        memset(by_kind, 0, sizeof by_kind);
        for (size_t c = 0; c < n_chunks; c++) {
            ingest_redact_match_t *m;
            size_t k = ingest_redact_find(on, chunks[c].data, chunks[c].len, &m);
            matches += k;
            for (size_t j = 0; j < k; j++) {
                by_kind[m[j].kind]++;
                if (getenv("BENCH_REDACT_SHOW") && rep == 0 && c == 0) /* what matched */
                    printf("%s: %.*s\n", ingest_redact_kind(on, m[j].kind),
                           (int)(m[j].to - m[j].from + 30),
                           (const char *)chunks[c].data + m[j].from - 30);
            }
            free(m);
        }
        double t = bench_now() - t0;
        best_scan = t < best_scan ? t : best_scan;
    }

    char dir[512];
    snprintf(dir, sizeof dir, "%s/redact-%d", base, (int)getpid());
    mkdir(base, 0755);
    store_options_t so = {0};
    so.no_sync = 1;
    store_t *s;
    if (store_open(dir, &so, &s)) {
        fprintf(stderr, "bench_redact: cannot open %s: %s\n", dir, store_last_error());
        return 1;
    }
    double parse[2] = {1e9, 1e9}, append[2] = {1e9, 1e9};
    for (int rep = 0; rep < 5; rep++)
        for (int mode = 0; mode < 2; mode++) {
            ingest_redact_set(mode ? on : NULL);
            double t = run(NULL, "p", chunks, n_chunks);
            char sess[32];
            snprintf(sess, sizeof sess, "a%d-%d", mode, rep);
            double u = run(s, sess, chunks, n_chunks);
            if (t < 0 || u < 0)
                return 1;
            parse[mode] = t < parse[mode] ? t : parse[mode];
            append[mode] = u < append[mode] ? u : append[mode];
        }
    store_close(s);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
    printf("## Redaction at ingest (bench_redact%s)\n\n", quick ? ", quick" : "");
    printf("%zu events, %.1f MB of NDJSON, a secret in about 1 event in 50 (%zu found by the "
           "scanner)\n\n", events, (double)bytes / 1e6, matches);
    printf("| | redact off | redact builtin | on/off |\n|---|---|---|---|\n");
    printf("| parse+encode+hash, events/s | %.0f | %.0f | %.3f |\n", events / parse[0],
           events / parse[1], (events / parse[1]) / (events / parse[0]));
    printf("| parse+encode+hash, MB/s | %.0f | %.0f | |\n", bytes / parse[0] / 1e6,
           bytes / parse[1] / 1e6);
    printf("| appended (sync none), events/s | %.0f | %.0f | %.3f |\n", events / append[0],
           events / append[1], (events / append[1]) / (events / append[0]));
    printf("\nscanner alone: %.0f MB/s of text; matches by kind:", bytes / best_scan / 1e6);
    for (int k = 0; k < INGEST_REDACT_BUILTIN_KINDS; k++)
        if (by_kind[k])
            printf(" %s %zu", ingest_redact_kind(on, k), by_kind[k]);
    printf("\n");
    for (size_t c = 0; c < n_chunks; c++)
        store_buf_release(&chunks[c]);
    free(chunks);
    return 0;
}
