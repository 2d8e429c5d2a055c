/* map.c -- the cluster map file: reading and checking it (cluster.h; the format is in
 * docs/CLUSTER.md "Cluster map"). A map that does not give every shard exactly one owner
 * is refused whole: a half-understood map could make two cells accept one session. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

#define NO_OWNER 0xffffu

static int fail(char *msg, size_t mlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *msg, size_t mlen, const char *name, const char *fmt, ...)
{
    char why[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(msg, mlen, "cluster map %s: %s", name, why);
    return REEL_EINVALID_PARAMETER;
}

/* Cell ids become nginx upstream names and header values: a small alphabet. */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= CLUSTER_ID_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

/* "host:port" or "[v6]:port", written into the nginx configuration as it is. */
static int address_ok(const char *s)
{
    size_t n = strlen(s);
    const char *colon = strrchr(s, ':');
    if (n < 3 || n > CLUSTER_ADDR_MAX || !colon || colon == s || !colon[1])
        return 0;
    if (strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:[]") == n;
}

static int u64_field(json_t *o, const char *key, uint64_t lo, uint64_t hi, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    uint64_t x = (uint64_t)json_integer_value(v);
    if (x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* Checks "shards" or "loading" ("what") of cell 'ci': an array of [first, last] ranges
 * with 0 <= first <= last < V. Gives each shard to the cell ('loading' 0), or marks it
 * loading: shards a move is copying in, which must be the cell's own (docs/CLUSTER.md
 * "Moving shards"). */
static int take_ranges(cluster_map_t *m, size_t ci, json_t *ranges, const char *what,
                       int loading, const char *name, char *msg, size_t mlen)
{
    const char *id = m->cells[ci].id;
    if (!json_is_array(ranges))
        return fail(msg, mlen, name, "cell '%s': \"%s\" must be an array of [first, last] "
                    "ranges", id, what);
    size_t i;
    json_t *r;
    json_array_foreach(ranges, i, r) {
        json_t *a = json_array_get(r, 0), *b = json_array_get(r, 1);
        if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_integer(a) ||
            !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) < json_integer_value(a) ||
            json_integer_value(b) >= (json_int_t)m->v)
            return fail(msg, mlen, name, "cell '%s': %s range %zu is not [first, last] with "
                        "0 <= first <= last < %u", id, loading ? "loading" : "shard", i, m->v);
        for (json_int_t s = json_integer_value(a); s <= json_integer_value(b); s++) {
            if (loading && m->owner[s] != ci)
                return fail(msg, mlen, name, "cell '%s' is loading shard %lld, which it does "
                            "not own", id, (long long)s);
            if (loading) {
                m->loading[s] = 1;
                continue;
            }
            if (m->owner[s] != NO_OWNER)
                return fail(msg, mlen, name, "shard %lld is given to both '%s' and '%s'",
                            (long long)s, m->cells[m->owner[s]].id, id);
            m->owner[s] = (uint16_t)ci;
            m->cells[ci].n_shards++;
        }
    }
    return REEL_OK;
}

static int take_cell(cluster_map_t *m, size_t ci, json_t *c, const char *name, char *msg,
                     size_t mlen)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *addr = json_string_value(json_object_get(c, "address"));
    if (!json_is_object(c) || !id || !id_ok(id))
        return fail(msg, mlen, name, "cell %zu: \"id\" must be 1-%d characters of A-Z a-z 0-9 "
                    "- _", ci, CLUSTER_ID_MAX);
    if (!addr || !address_ok(addr))
        return fail(msg, mlen, name, "cell '%s': \"address\" must be HOST:PORT, not '%.80s'",
                    id, addr ? addr : "(missing)");
    for (size_t j = 0; j < ci; j++) {
        if (!strcmp(m->cells[j].id, id))
            return fail(msg, mlen, name, "cell id '%s' appears twice", id);
        if (!strcmp(m->cells[j].address, addr))
            return fail(msg, mlen, name, "cells '%s' and '%s' have the same address %s",
                        m->cells[j].id, id, addr);
    }
    snprintf(m->cells[ci].id, sizeof m->cells[ci].id, "%s", id);
    snprintf(m->cells[ci].address, sizeof m->cells[ci].address, "%s", addr);
    int rc = take_ranges(m, ci, json_object_get(c, "shards"), "shards", 0, name, msg, mlen);
    json_t *loading = json_object_get(c, "loading");
    return rc || !loading ? rc : take_ranges(m, ci, loading, "loading", 1, name, msg, mlen);
}

static int build(cluster_map_t *m, json_t *root, const char *name, char *msg, size_t mlen)
{
    uint64_t version, v, epoch;
    json_t *cells = json_object_get(root, "cells");
    if (!json_is_object(root))
        return fail(msg, mlen, name, "not a JSON object");
    if (u64_field(root, "version", CLUSTER_MAP_VERSION, CLUSTER_MAP_VERSION, &version))
        return fail(msg, mlen, name, "\"version\" must be %d", CLUSTER_MAP_VERSION);
    if (u64_field(root, "shards", 1, CLUSTER_V_MAX, &v))
        return fail(msg, mlen, name, "\"shards\" must be an integer in 1..%d", CLUSTER_V_MAX);
    if (u64_field(root, "epoch", 1, (uint64_t)1 << 53, &epoch))
        return fail(msg, mlen, name, "\"epoch\" must be a positive integer");
    if (!json_is_array(cells) || json_array_size(cells) == 0 || json_array_size(cells) >= NO_OWNER)
        return fail(msg, mlen, name, "\"cells\" must be a non-empty array");
    m->v = (unsigned)v;
    m->epoch = epoch;
    m->n_cells = json_array_size(cells);
    m->cells = calloc(m->n_cells, sizeof *m->cells);
    m->owner = malloc(m->v * sizeof *m->owner);
    m->bounds = malloc(m->v * sizeof *m->bounds);
    m->loading = calloc(m->v, 1);
    if (!m->cells || !m->owner || !m->bounds || !m->loading)
        return REEL_ENOMEM;
    memset(m->owner, 0xff, m->v * sizeof *m->owner);
    cluster_bounds(m->v, m->bounds);
    for (size_t i = 0; i < m->n_cells; i++) {
        int rc = take_cell(m, i, json_array_get(cells, i), name, msg, mlen);
        if (rc)
            return rc;
    }
    for (unsigned s = 0; s < m->v; s++)
        if (m->owner[s] == NO_OWNER)
            return fail(msg, mlen, name, "shard %u has no cell (every shard 0..%u needs one)",
                        s, m->v - 1);
    return REEL_OK;
}

int cluster_map_parse(const char *text, size_t len, const char *name, cluster_map_t **out,
                      char *msg, size_t mlen)
{
    *out = NULL;
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!root)
        return fail(msg, mlen, name, "not valid JSON (line %d: %s)", e.line, e.text);
    cluster_map_t *m = calloc(1, sizeof *m);
    int rc = m ? build(m, root, name, msg, mlen) : REEL_ENOMEM;
    json_decref(root);
    if (rc == REEL_ENOMEM)
        snprintf(msg, mlen, "cluster map %s: out of memory", name);
    if (rc) {
        cluster_map_free(m);
        return rc;
    }
    *out = m;
    return REEL_OK;
}

int cluster_map_load(const char *path, cluster_map_t **out, char *msg, size_t mlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, mlen, "cluster map %s: %s", path, strerror(errno));
        return REEL_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap ? cap * 2 : 65536) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(msg, mlen, "cluster map %s: too large or out of memory", path);
                return REEL_ENOMEM;
            }
            buf = nb;
            cap = cap ? cap * 2 : 65536;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    int rc = err ? (snprintf(msg, mlen, "cluster map %s: read error", path), REEL_EIO)
                 : cluster_map_parse(buf, len, path, out, msg, mlen);
    free(buf);
    return rc;
}

void cluster_map_free(cluster_map_t *m)
{
    if (!m)
        return;
    free(m->cells);
    free(m->owner);
    free(m->bounds);
    free(m->loading);
    free(m);
}

int cluster_map_cell(const cluster_map_t *m, const char *id)
{
    for (size_t i = 0; i < m->n_cells; i++)
        if (!strcmp(m->cells[i].id, id))
            return (int)i;
    return -1;
}

unsigned cluster_map_shard(const cluster_map_t *m, const char *key, size_t len, int *owner)
{
    unsigned s = cluster_shard_of(m->bounds, m->v, cluster_murmur2(key, len));
    *owner = m->owner[s];
    return s;
}
