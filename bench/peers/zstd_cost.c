/* zstd_cost.c -- what zstd costs per event on this CPU (issue 19: the compression floor of
 * the ingest rows, docs/BENCHMARKS.md "Issue 19, session 10").
 *
 *   build/peers/zstd_cost FILE.ndjson [MAX_EVENTS]
 *
 * Each line of FILE is one event (the JSON text stands in for its msgpack body, which is
 * about as long). A dictionary is trained the way the store trains one (store/zdict.c:
 * the newest 8 MiB of events, each cut at 16 KiB, a dictionary of a tenth of that, at
 * most 256 KiB), then every event is compressed:
 *   - one frame per event with the dictionary, levels 1 and 3 (the store: level 3);
 *   - one frame per event without a dictionary, levels 1 and 3;
 *   - one frame per run of 10 and of 100 consecutive events with the dictionary;
 * warm (events one after another, the tables in the caches: a batched request) and, for
 * the per-event rows, cold (8 MiB of other memory written between two events, as the
 * request threads' network work does between single-event requests).
 * Prints microseconds per event and compressed bytes / input bytes. Numbers, never
 * pass/fail.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticCDict, as store/zdict.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zdict.h>
#include <zstd.h>

#define SAMPLE_BYTES (8u << 20)
#define SAMPLE_CUT (16u << 10)
#define DICT_MAX (256u << 10)
#define JUNK (8u << 20)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct events {
    char *buf;
    size_t n, bytes, longest, *off, *len;
};

static int load(const char *path, size_t max, struct events *e)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    rewind(f);
    e->buf = sz > 0 ? malloc((size_t)sz) : NULL;
    if (!e->buf || fread(e->buf, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        return -1;
    }
    fclose(f);
    size_t lines = 0;
    for (long i = 0; i < sz; i++)
        lines += e->buf[i] == '\n';
    e->off = malloc((lines + 1) * sizeof *e->off);
    e->len = malloc((lines + 1) * sizeof *e->len);
    if (!e->off || !e->len)
        return -1;
    e->n = e->bytes = e->longest = 0;
    for (long i = 0, s = 0; i < sz && e->n < max; i++)
        if (e->buf[i] == '\n') {
            e->off[e->n] = (size_t)s;
            e->len[e->n] = (size_t)(i - s);
            if (e->len[e->n] > e->longest)
                e->longest = e->len[e->n];
            e->bytes += e->len[e->n++];
            s = i + 1;
        }
    return e->n ? 0 : -1;
}

/* The store's training: the newest events first, SAMPLE_BYTES at most. */
static size_t train(const struct events *e, void *dict)
{
    char *sb = malloc(SAMPLE_BYTES);
    size_t *sizes = malloc(e->n * sizeof *sizes), used = 0, k = 0;
    if (!sb || !sizes)
        return 0;
    for (size_t i = e->n; i-- > 0 && used + SAMPLE_CUT <= SAMPLE_BYTES;) {
        size_t l = e->len[i] < SAMPLE_CUT ? e->len[i] : SAMPLE_CUT;
        memcpy(sb + used, e->buf + e->off[i], l);
        sizes[k++] = l;
        used += l;
    }
    size_t cap = used / 10 < DICT_MAX ? used / 10 : DICT_MAX;
    size_t got = ZDICT_trainFromBuffer(dict, cap, sb, sizes, (unsigned)k);
    free(sb);
    free(sizes);
    return ZDICT_isError(got) ? 0 : got;
}

static const ZSTD_CDict *cdict(const void *dict, size_t len, int level)
{
    ZSTD_compressionParameters cp = ZSTD_getCParams(level, ZSTD_CONTENTSIZE_UNKNOWN, len);
    size_t need = ZSTD_estimateCDictSize_advanced(len, cp, ZSTD_dlm_byCopy);
    void *mem = calloc(1, need);
    return mem ? ZSTD_initStaticCDict(mem, need, dict, len, ZSTD_dlm_byCopy, ZSTD_dct_fullDict,
                                      cp)
               : NULL;
}

/* One row: 'run' events a frame; 'cd' NULL compresses without a dictionary at 'level'. */
static void row(const char *what, const struct events *e, ZSTD_CCtx *c, const ZSTD_CDict *cd,
                int level, size_t run, int cold, char *junk)
{
    size_t cap = ZSTD_compressBound(e->longest * run); /* room for any 'run' events */
    char *dst = malloc(cap), *src = malloc(cap);
    size_t out = 0, frames = 0;
    double t = 0;
    if (!dst || !src)
        return;
    ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    for (size_t i = 0; i + run <= e->n; i += run) {
        size_t l = 0;
        for (size_t k = 0; k < run; k++) {
            memcpy(src + l, e->buf + e->off[i + k], e->len[i + k]);
            l += e->len[i + k];
        }
        if (cold)
            memset(junk, (int)i, JUNK);
        double t0 = now();
        size_t r = cd ? ZSTD_compress_usingCDict(c, dst, cap, src, l, cd)
                      : ZSTD_compress2(c, dst, cap, src, l);
        t += now() - t0;
        if (ZSTD_isError(r)) {
            fprintf(stderr, "zstd_cost: %s\n", ZSTD_getErrorName(r));
            exit(1);
        }
        out += r;
        frames++;
    }
    printf("| %s | %s | %.2f | %.4f |\n", what, cold ? "cold" : "warm",
           t / (double)(frames * run) * 1e6, (double)out / (double)e->bytes);
    free(dst);
    free(src);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(stderr, "usage: zstd_cost FILE.ndjson [MAX_EVENTS]   (see the source's head)\n");
        return argc < 2 ? 2 : 0;
    }
    struct events e;
    size_t max = argc > 2 ? strtoull(argv[2], NULL, 10) : 20000;
    if (load(argv[1], max ? max : 20000, &e)) {
        fprintf(stderr, "zstd_cost: cannot read events from '%s'\n", argv[1]);
        return 1;
    }
    void *dict = malloc(DICT_MAX);
    size_t dl = dict ? train(&e, dict) : 0;
    const ZSTD_CDict *cd1 = dl ? cdict(dict, dl, 1) : NULL, *cd3 = dl ? cdict(dict, dl, 3) : NULL;
    ZSTD_CCtx *c = ZSTD_createCCtx();
    char *junk = malloc(JUNK);
    if (!cd1 || !cd3 || !c || !junk) {
        fprintf(stderr, "zstd_cost: training or memory failed\n");
        return 1;
    }
    printf("%s: %zu events, %.0f bytes each on average, dictionary %zu bytes (libzstd %s)\n\n",
           argv[1], e.n, (double)e.bytes / (double)e.n, dl, ZSTD_versionString());
    printf("| frames | cache | us per event | compressed / input |\n| --- | --- | ---: | ---: |\n");
    for (int cold = 0; cold < 2; cold++) {
        row("one per event, dictionary, level 3 (the store)", &e, c, cd3, 3, 1, cold, junk);
        row("one per event, dictionary, level 1", &e, c, cd1, 1, 1, cold, junk);
    }
    row("one per event, no dictionary, level 3", &e, c, NULL, 3, 1, 0, junk);
    row("one per event, no dictionary, level 1", &e, c, NULL, 1, 1, 0, junk);
    row("runs of 10 events, dictionary, level 3", &e, c, cd3, 3, 10, 0, junk);
    row("runs of 100 events, dictionary, level 3", &e, c, cd3, 3, 100, 0, junk);
    row("runs of 100 events, dictionary, level 1", &e, c, cd1, 1, 100, 0, junk);
    return 0;
}
