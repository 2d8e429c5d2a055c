/* meta.c -- Durable Streams: path <-> session id mapping, the stream state kept in the
 * session record's metadata, offsets, cursors and small encoders (ds_int.h). Pure
 * functions: no libmicrohttpd calls and no server state (tests/unit/api_ds_meta.c).
 *
 * The format of everything here is documented in docs/durable-streams.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"
#include "store/json.h"
#include "store/parse.h"

/* ---- Path <-> session id ---- */

static int keep_byte(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

int ds__base_id(const char *path, size_t len, char *out, size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    memcpy(out, DS_ID_PREFIX, sizeof DS_ID_PREFIX - 1);
    o = sizeof DS_ID_PREFIX - 1;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)path[i];
        if (o + 3 > DS_BASE_MAX)
            return -1;
        if (keep_byte(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '~';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

void ds__gen_id(const char *base, size_t base_len, unsigned gen, char *out, size_t *out_len)
{
    memcpy(out, base, base_len);
    size_t n = base_len;
    if (gen > 1)
        n += (size_t)snprintf(out + n, STORE_SESSION_ID_MAX + 1 - n, ":%u", gen);
    out[n] = '\0';
    *out_len = n;
}

/* ---- Time ---- */

int ds__expired(const ds_meta_t *m, const store_session_t *rec, int64_t r, int64_t now)
{
    if (m->has_expires && now >= m->expires_ms)
        return 1;
    if (m->has_ttl) {
        int64_t last = rec->updated_ms;
        if (r > last)
            last = r;
        if (now >= last + (int64_t)m->ttl_s * 1000)
            return 1;
    }
    return 0;
}

/* ---- Stream state: msgpack in the session record ---- */

/* Called with 'm' already zeroed; may leave producers behind on failure. */
static int meta_parse(const uint8_t *p, size_t len, ds_meta_t *m);

void ds__meta_release(ds_meta_t *m)
{
    free(m->producers);
    m->producers = NULL;
    m->n_producers = m->cap_producers = 0;
}

/* A stored string into 'out' as a C string. One with a NUL is refused, not cut at it:
 * the protocol's own values come from headers (which cannot hold one), but a client can
 * write this metadata through PUT /v1/sessions/{id} (issue 14, finding 8). */
static int copy_str(const store_mp_obj_t *o, char *out, size_t cap)
{
    if (o->type != STORE_MP_STR || o->len > cap || (o->len && memchr(o->ptr, 0, o->len)))
        return -1;
    memcpy(out, o->ptr, o->len);
    out[o->len] = '\0';
    return 0;
}

static int key_is(const store_mp_obj_t *k, const char *name)
{
    return k->type == STORE_MP_STR && k->len == strlen(name) && !memcmp(k->ptr, name, k->len);
}

static int read_uint(store_mp_t *mp, uint64_t *v)
{
    store_mp_obj_t o;
    if (store_mp_next(mp, &o) || o.type != STORE_MP_UINT)
        return -1;
    *v = o.u;
    return 0;
}

ds_producer_t *ds__producer(ds_meta_t *m, const char *id, int create)
{
    for (size_t i = 0; i < m->n_producers; i++)
        if (!strcmp(m->producers[i].id, id))
            return &m->producers[i];
    if (!create)
        return NULL;
    if (m->n_producers == m->cap_producers) {
        size_t cap = m->cap_producers ? m->cap_producers * 2 : 4;
        ds_producer_t *p = realloc(m->producers, cap * sizeof *p);
        if (!p)
            return NULL;
        m->producers = p;
        m->cap_producers = cap;
    }
    ds_producer_t *p = &m->producers[m->n_producers++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    return p;
}

static int parse_producers(store_mp_t *mp, uint64_t n, ds_meta_t *m)
{
    for (uint64_t i = 0; i < n; i++) {
        store_mp_obj_t k, a;
        char id[DS_PRODUCER_ID_MAX + 1];
        if (store_mp_next(mp, &k) || copy_str(&k, id, DS_PRODUCER_ID_MAX) ||
            store_mp_next(mp, &a) || a.type != STORE_MP_ARRAY || a.u != 3)
            return -1;
        ds_producer_t *p = ds__producer(m, id, 1);
        if (!p || read_uint(mp, &p->epoch) || read_uint(mp, &p->seq) ||
            read_uint(mp, &p->updated_ms))
            return -1;
    }
    return 0;
}

static int parse_field(store_mp_t *mp, const store_mp_obj_t *k, ds_meta_t *m)
{
    store_mp_obj_t o;
    if (key_is(k, "content_type"))
        return store_mp_next(mp, &o) || copy_str(&o, m->ctype, DS_CTYPE_MAX) ? -1 : 0;
    if (key_is(k, "ttl")) {
        m->has_ttl = 1;
        return read_uint(mp, &m->ttl_s);
    }
    if (key_is(k, "expires_at")) {
        if (store_mp_next(mp, &o) || copy_str(&o, m->expires, sizeof m->expires - 1))
            return -1;
        m->has_expires = 1;
        m->expires_ms = store_parse_rfc3339(m->expires, strlen(m->expires));
        return 0;
    }
    if (key_is(k, "closed")) {
        if (store_mp_next(mp, &o) || o.type != STORE_MP_BOOL)
            return -1;
        m->closed = (int)o.u;
        return 0;
    }
    if (key_is(k, "closed_by")) {
        if (store_mp_next(mp, &o) || o.type != STORE_MP_ARRAY || o.u != 3 ||
            store_mp_next(mp, &o) || copy_str(&o, m->closed_by, DS_PRODUCER_ID_MAX) ||
            read_uint(mp, &m->closed_epoch) || read_uint(mp, &m->closed_seq))
            return -1;
        m->has_closed_by = 1;
        return 0;
    }
    if (key_is(k, "seq")) {
        m->has_seq = 1;
        return store_mp_next(mp, &o) || copy_str(&o, m->seq, DS_SEQ_MAX) ? -1 : 0;
    }
    if (key_is(k, "producers")) {
        if (store_mp_next(mp, &o) || o.type != STORE_MP_MAP)
            return -1;
        return parse_producers(mp, o.u, m);
    }
    if (key_is(k, "fork_of")) {
        m->is_fork = 1;
        return store_mp_next(mp, &o) || copy_str(&o, m->fork_of, STORE_SESSION_ID_MAX) ? -1 : 0;
    }
    if (key_is(k, "fork_offset"))
        return read_uint(mp, &m->fork_offset);
    if (key_is(k, "fork_req"))
        return read_uint(mp, &m->fork_req);
    if (key_is(k, "fork_sub"))
        return read_uint(mp, &m->fork_sub);
    if (key_is(k, "path"))
        return store_mp_next(mp, &o) || copy_str(&o, m->path, DS_PATH_MAX) ? -1 : 0;
    if (key_is(k, "forks"))
        return read_uint(mp, &m->forks);
    if (key_is(k, "soft_deleted")) {
        if (store_mp_next(mp, &o) || o.type != STORE_MP_BOOL)
            return -1;
        m->soft_deleted = (int)o.u;
        return 0;
    }
    return store_mp_skip(mp, STORE_JSON_MAX_DEPTH) ? -1 : 0;
}

static int meta_parse(const uint8_t *p, size_t len, ds_meta_t *m)
{
    snprintf(m->ctype, sizeof m->ctype, "%s", "application/json"); /* a plain session */
    if (!p || !len)
        return 0;
    store_mp_t mp = {p, p + len};
    store_mp_obj_t o, k;
    if (store_mp_next(&mp, &o) || o.type != STORE_MP_MAP)
        return -1;
    for (uint64_t i = 0; i < o.u; i++) {
        if (store_mp_next(&mp, &k))
            return -1;
        if (!key_is(&k, DS_META_KEY)) {
            if (store_mp_skip(&mp, STORE_JSON_MAX_DEPTH))
                return -1;
            continue;
        }
        store_mp_obj_t inner;
        if (store_mp_next(&mp, &inner) || inner.type != STORE_MP_MAP)
            return -1;
        m->is_stream = 1;
        m->ctype[0] = '\0';
        for (uint64_t j = 0; j < inner.u; j++)
            if (store_mp_next(&mp, &k) || parse_field(&mp, &k, m))
                return -1;
    }
    return 0;
}

void ds__meta_encode(const ds_meta_t *m, const char *path, size_t path_len, store_buf_t *out)
{
    uint32_t n = 4 + (m->has_ttl != 0) + (m->has_expires != 0) + (m->has_closed_by != 0) +
                 (m->has_seq != 0) + (m->is_fork ? 4 : 0) + (m->forks != 0) +
                 (m->soft_deleted != 0);
    store_mp_map(out, 1);
    store_mp_str(out, DS_META_KEY, strlen(DS_META_KEY));
    store_mp_map(out, n);
    store_mp_str(out, "path", 4);
    store_mp_str(out, path, path_len);
    store_mp_str(out, "content_type", 12);
    store_mp_str(out, m->ctype, strlen(m->ctype));
    if (m->has_ttl) {
        store_mp_str(out, "ttl", 3);
        store_mp_uint(out, m->ttl_s);
    }
    if (m->has_expires) {
        store_mp_str(out, "expires_at", 10);
        store_mp_str(out, m->expires, strlen(m->expires));
    }
    store_mp_str(out, "closed", 6);
    store_mp_bool(out, m->closed);
    if (m->has_closed_by) {
        store_mp_str(out, "closed_by", 9);
        store_mp_array(out, 3);
        store_mp_str(out, m->closed_by, strlen(m->closed_by));
        store_mp_uint(out, m->closed_epoch);
        store_mp_uint(out, m->closed_seq);
    }
    if (m->has_seq) {
        store_mp_str(out, "seq", 3);
        store_mp_str(out, m->seq, strlen(m->seq));
    }
    if (m->is_fork) {
        store_mp_str(out, "fork_of", 7);
        store_mp_str(out, m->fork_of, strlen(m->fork_of));
        store_mp_str(out, "fork_offset", 11);
        store_mp_uint(out, m->fork_offset);
        store_mp_str(out, "fork_req", 8);
        store_mp_uint(out, m->fork_req);
        store_mp_str(out, "fork_sub", 8);
        store_mp_uint(out, m->fork_sub);
    }
    if (m->forks) {
        store_mp_str(out, "forks", 5);
        store_mp_uint(out, m->forks);
    }
    if (m->soft_deleted) {
        store_mp_str(out, "soft_deleted", 12);
        store_mp_bool(out, 1);
    }
    store_mp_str(out, "producers", 9);
    store_mp_map(out, (uint32_t)m->n_producers);
    for (size_t i = 0; i < m->n_producers; i++) {
        const ds_producer_t *p = &m->producers[i];
        store_mp_str(out, p->id, strlen(p->id));
        store_mp_array(out, 3);
        store_mp_uint(out, p->epoch);
        store_mp_uint(out, p->seq);
        store_mp_uint(out, p->updated_ms);
    }
}

/* ---- Content types ---- */

void ds__ctype_norm(const char *ct, char *out, size_t cap)
{
    size_t n = 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    for (; *ct && *ct != ';' && n + 1 < cap; ct++)
        out[n++] = (char)((*ct >= 'A' && *ct <= 'Z') ? *ct + 32 : *ct);
    while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    if (!n)
        snprintf(out, cap, "%s", "application/octet-stream");
}

int ds__is_json(const char *ct)
{
    char n[DS_CTYPE_MAX + 1];
    ds__ctype_norm(ct, n, sizeof n);
    return !strcmp(n, "application/json");
}

int ds__is_text(const char *ct)
{
    char n[DS_CTYPE_MAX + 1];
    ds__ctype_norm(ct, n, sizeof n);
    return !strncmp(n, "text/", 5) || !strcmp(n, "application/json");
}

/* ---- Offsets and cursors ---- */

void ds__offset(uint64_t seq, char out[DS_OFFSET_LEN + 1])
{
    snprintf(out, DS_OFFSET_LEN + 1, "%016llu_%016llu", (unsigned long long)seq, 0ULL);
}

int ds__offset_parse(const char *s, uint64_t *seq)
{
    uint64_t x = 0;
    const char *p = s;
    int n = 0;
    for (; *p >= '0' && *p <= '9'; p++, n++) {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (!n || *p != '_' || x > INT64_MAX)
        return -1;
    for (p++, n = 0; *p >= '0' && *p <= '9'; p++, n++)
        ;
    if (!n || *p || n > 20)
        return -1;
    *seq = x;
    return 0;
}

/* The protocol's cursor: 20-second intervals since 2024-10-09T00:00:00Z. A client's
 * cursor at or past the current interval is moved forward by a random jitter, so a
 * response never repeats the cursor of the request that produced it (CDN cache loops). */
uint64_t ds__cursor(const char *client)
{
    uint64_t cur = (uint64_t)((int64_t)store_wall_ms() - 1728432000000LL) / 20000;
    if (!client || !*client)
        return cur;
    uint64_t c;
    if (store_parse_u64(client, strlen(client), &c) != REEL_OK || c < cur)
        return cur;
    unsigned jitter_s = 1 + (unsigned)(rand() % 3600);
    return (uint64_t)c + (jitter_s + 19) / 20;
}

/* ---- Base64 ---- */

void ds__base64(store_buf_t *out, const uint8_t *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = t[v >> 18], q[1] = t[(v >> 12) & 63], q[2] = t[(v >> 6) & 63], q[3] = t[v & 63];
        store_buf_put(out, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        q[0] = t[v >> 18], q[1] = t[(v >> 12) & 63];
        q[2] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        q[3] = '=';
        store_buf_put(out, q, 4);
    }
}

int ds__unbase64(store_buf_t *out, const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    int bits = 0;
    size_t mark = out->len, i = 0;
    if (n % 4)
        return -1;
    for (; i < n && p[i] != '='; i++) {
        int c = p[i], d;
        if (c >= 'A' && c <= 'Z')
            d = c - 'A';
        else if (c >= 'a' && c <= 'z')
            d = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            d = c - '0' + 52;
        else if (c == '+')
            d = 62;
        else if (c == '/')
            d = 63;
        else
            goto bad;
        v = (v << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            store_buf_putc(out, (char)((v >> bits) & 0xff));
        }
    }
    if (n - i > 2)
        goto bad;
    for (; i < n; i++)
        if (p[i] != '=')
            goto bad;
    return 0;
bad:
    out->len = mark;
    return -1;
}

int ds__meta_parse(const uint8_t *p, size_t len, ds_meta_t *m)
{
    memset(m, 0, sizeof *m);
    if (meta_parse(p, len, m) == 0)
        return 0;
    ds__meta_release(m); /* a failed parse keeps nothing; releasing again is harmless */
    return -1;
}
