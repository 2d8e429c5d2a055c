/* mapwrite.c -- making new cluster maps from old ones (cluster.h): the copy a move edits,
 * its JSON text, and shard lists as an operator types them ("0-99,4000").
 *
 * The text written is what cluster_map_parse() reads, ranges merged, so a map written by
 * `reel cluster move` reads back exactly (the same owners, epoch and loading shards). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

cluster_map_t *cluster_map_dup(const cluster_map_t *m)
{
    cluster_map_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *m;
    c->cells = malloc(m->n_cells * sizeof *c->cells);
    c->owner = malloc(m->v * sizeof *c->owner);
    c->bounds = malloc(m->v * sizeof *c->bounds);
    c->loading = malloc(m->v);
    if (!c->cells || !c->owner || !c->bounds || !c->loading) {
        cluster_map_free(c);
        return NULL;
    }
    memcpy(c->cells, m->cells, m->n_cells * sizeof *c->cells);
    memcpy(c->owner, m->owner, m->v * sizeof *c->owner);
    memcpy(c->bounds, m->bounds, m->v * sizeof *c->bounds);
    memcpy(c->loading, m->loading, m->v);
    return c;
}

void cluster_map_recount(cluster_map_t *m)
{
    for (size_t i = 0; i < m->n_cells; i++)
        m->cells[i].n_shards = 0;
    for (unsigned s = 0; s < m->v; s++)
        m->cells[m->owner[s]].n_shards++;
}

/* The ranges of shards s with owner[s] == ci (and, when 'loading', loading[s]). */
static void ranges(const cluster_map_t *m, size_t ci, int loading, store_buf_t *out)
{
    int first = 1;
    store_buf_putc(out, '[');
    for (unsigned s = 0; s < m->v;) {
        if (m->owner[s] != ci || (loading && !m->loading[s])) {
            s++;
            continue;
        }
        unsigned e = s;
        while (e + 1 < m->v && m->owner[e + 1] == ci && (!loading || m->loading[e + 1]))
            e++;
        store_buf_printf(out, "%s[%u, %u]", first ? "" : ", ", s, e);
        first = 0;
        s = e + 1;
    }
    store_buf_putc(out, ']');
}

void cluster_map_write(const cluster_map_t *m, store_buf_t *out)
{
    store_buf_printf(out, "{\"version\": %d, \"shards\": %u, \"epoch\": %llu, \"cells\": [",
                     CLUSTER_MAP_VERSION, m->v, (unsigned long long)m->epoch);
    for (size_t i = 0; i < m->n_cells; i++) {
        int any_loading = 0;
        for (unsigned s = 0; s < m->v && !any_loading; s++)
            any_loading = m->owner[s] == i && m->loading[s];
        store_buf_printf(out, "%s\n  {\"id\": \"%s\", \"address\": \"%s\", \"shards\": ",
                         i ? "," : "", m->cells[i].id, m->cells[i].address);
        ranges(m, i, 0, out);
        if (any_loading) {
            store_buf_puts(out, ", \"loading\": ");
            ranges(m, i, 1, out);
        }
        store_buf_putc(out, '}');
    }
    store_buf_puts(out, "\n]}\n");
}

static int parse_num(const char *p, char **end, unsigned v, unsigned *out)
{
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    unsigned long x = strtoul(p, end, 10);
    if (errno || x >= v)
        return -1;
    *out = (unsigned)x;
    return 0;
}

int cluster_shards_parse(const char *text, unsigned v, uint8_t *set, char *msg, size_t mlen)
{
    const char *p = text;
    int any = 0;
    while (*p) {
        char *e;
        unsigned a, b;
        if (parse_num(p, &e, v, &a))
            goto bad;
        b = a;
        if (*e == '-' && parse_num(e + 1, &e, v, &b))
            goto bad;
        if (b < a || (*e && *e != ','))
            goto bad;
        for (unsigned s = a; s <= b; s++)
            set[s] = 1;
        any = 1;
        p = *e ? e + 1 : e;
        if (*e && !*p)
            goto bad;
        continue;
    bad:
        snprintf(msg, mlen, "shards '%.100s': expected FIRST[-LAST][,...] with shards in 0..%u, "
                 "at '%.20s'", text, v - 1, p);
        return REEL_EINVALID_PARAMETER;
    }
    if (!any) {
        snprintf(msg, mlen, "shards: none given (FIRST[-LAST][,...])");
        return REEL_EINVALID_PARAMETER;
    }
    return REEL_OK;
}
