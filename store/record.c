/* record.c -- encodings of stored values: event values, bodies, session records.
 * Layouts are documented in store.h and docs/FORMAT.md. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "store/json.h"
#include "store/store_int.h"

#define MAX_BODY (256u << 20) /* a decompressed body larger than this is corrupt */
#define ZSTD_LEVEL 1          /* per-event compression: speed first, the committer waits */

/* ---- per-thread zstd contexts ---- */

struct zctx {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
    EVP_MD_CTX *h; /* SHA-256, reused: a context per hash cost ~0.3 us per event read */
};

static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;

static void zfree(void *p)
{
    struct zctx *z = p;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    EVP_MD_CTX_free(z->h);
    free(z);
}

static EVP_MD *sha256_md; /* fetched once: EVP_sha256() in EVP_DigestInit_ex fetches per call */

static void zinit(void)
{
    pthread_key_create(&zkey, zfree);
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    ERR_clear_error();
}

static struct zctx *zget(void)
{
    pthread_once(&zonce, zinit);
    struct zctx *z = pthread_getspecific(zkey);
    if (!z && (z = calloc(1, sizeof *z))) {
        z->c = ZSTD_createCCtx();
        z->d = ZSTD_createDCtx();
        z->h = EVP_MD_CTX_new();
        if (!z->c || !z->d || !z->h || pthread_setspecific(zkey, z)) {
            zfree(z);
            return NULL;
        }
        ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, ZSTD_LEVEL);
        ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 0);
    }
    return z;
}

ZSTD_CCtx *store__cctx(void)
{
    struct zctx *z = zget();
    return z ? z->c : NULL;
}

ZSTD_DCtx *store__dctx(void)
{
    struct zctx *z = zget();
    return z ? z->d : NULL;
}

/* ---- event_ids keys (docs/FORMAT.md section 18.2) ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 1 and 'out' set when 'id' is a UUID in its canonical lowercase text form (RFC 9562
 * section 4: 8-4-4-4-12 hex digits), the only text that maps back to the same bytes. */
int store__uuid_bytes(const char *id, size_t len, uint8_t out[16])
{
    if (len != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-')
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < 36; i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            i++;
        int hi = hexval(id[i]), lo = hexval(id[i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return n == 16;
}

size_t store__id_key(const store_t *s, uint8_t *key, uint64_t num, const char *id, size_t len)
{
    store__put_u64(key, num);
    if (!(s->parts & STORE__PART_IDKEYS)) {
        memcpy(key + 8, id, len);
        return 8 + len;
    }
    if (store__uuid_bytes(id, len, key + 9)) {
        key[8] = 0x00;
        return 8 + 1 + 16;
    }
    key[8] = 0x01; /* any other id, as it is: a tag keeps it apart from every UUID key */
    memcpy(key + 9, id, len);
    return 9 + len;
}

/* ---- bodies ---- */

int store__sha256(const void *p, size_t n, uint8_t out[STORE_HASH_LEN])
{
    struct zctx *z = zget();
    unsigned len = 0;
    int ok = z && EVP_DigestInit_ex(z->h, sha256_md ? sha256_md : EVP_sha256(), NULL) &&
             EVP_DigestUpdate(z->h, p, n) && EVP_DigestFinal_ex(z->h, out, &len) &&
             len == STORE_HASH_LEN;
    if (ok)
        return REEL_OK;
    /* OpenSSL queued an error on this thread (with heap-allocated text): drop it, or it
     * stays until the thread exits and a later OpenSSL user may take it for its own. */
    ERR_clear_error();
    return REEL_ENOMEM;
}

int store__zstd_plain(const uint8_t *src, size_t len, store_buf_t *out, size_t *n)
{
    struct zctx *z = zget();
    size_t bound = ZSTD_compressBound(len);
    *n = 0;
    if (!z || store_buf_reserve(out, bound))
        return REEL_ENOMEM;
    size_t got = ZSTD_compress2(z->c, out->data + out->len, bound, src, len);
    if (ZSTD_isError(got))
        return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? REEL_ENOMEM : REEL_OK;
    /* Keep the compressed form only when it saves an eighth or more. */
    if (got + got / 8 < len) {
        out->len += got;
        *n = got;
    }
    return REEL_OK;
}

/* The flags byte 0 and the body as it is. */
static int put_raw(const uint8_t *msgpack, size_t len, store_buf_t *out)
{
    store_buf_putc(out, 0x00);
    store_buf_put(out, msgpack, len);
    return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}

int store_body_encode_raw(const uint8_t *msgpack, size_t len, store_buf_t *out,
                          uint8_t hash[STORE_HASH_LEN])
{
    return store__sha256(msgpack, len, hash) ? REEL_ENOMEM : put_raw(msgpack, len, out);
}

int store_body_encode(const uint8_t *msgpack, size_t len, store_buf_t *out,
                      uint8_t hash[STORE_HASH_LEN])
{
    if (store__sha256(msgpack, len, hash))
        return REEL_ENOMEM;
    if (len >= STORE_COMPRESS_MIN) {
        size_t mark = out->len, n = 0;
        store_buf_putc(out, 0x01);
        if (store_buf_failed(out) || store__zstd_plain(msgpack, len, out, &n))
            return REEL_ENOMEM;
        if (n)
            return REEL_OK;
        out->len = mark;
    }
    return put_raw(msgpack, len, out);
}

int store__chain(const uint8_t prev[STORE_HASH_LEN], uint64_t seq, uint64_t pos,
                  uint64_t time_ms, const uint8_t body_hash[STORE_HASH_LEN],
                  uint8_t out[STORE_HASH_LEN])
{
    uint8_t m[STORE_HASH_LEN * 2 + 24];
    memcpy(m, prev, STORE_HASH_LEN);
    store__put_u64(m + 32, seq);
    store__put_u64(m + 40, pos);
    store__put_u64(m + 48, time_ms);
    memcpy(m + 56, body_hash, STORE_HASH_LEN);
    return store__sha256(m, sizeof m, out);
}

int store__body_hash(const store_event_view_t *ev, uint8_t out[STORE_HASH_LEN])
{
    if (ev->redacted) {
        memcpy(out, ev->kept_hash_, STORE_HASH_LEN);
        return REEL_OK;
    }
    return store__sha256(ev->body, ev->body_len, out);
}

/* ---- the value header (docs/FORMAT.md 3 and 21.2) ---- */

/* An unsigned LEB128 varint at p[*at..len) into '*v': 0, or -1 when cut or over 64 bits. */
static int varint_get(const uint8_t *p, size_t len, size_t *at, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; *at < len && shift < 64; shift += 7) {
        uint8_t b = p[(*at)++];
        if (shift == 63 && b > 1)
            return -1;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return *v = x, 0;
    }
    return -1;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

int store__head_parse(const uint8_t *p, size_t len, store__head_t *h)
{
    if (len < 1 || (p[0] & ~(STORE_FLAG_ZSTD | STORE_FLAG_REDACTED | STORE_FLAG_ZDICT |
                             STORE_FLAG_SHORT)) ||
        (p[0] & (STORE_FLAG_ZSTD | STORE_FLAG_ZDICT)) == STORE_FLAG_ZDICT)
        return REEL_ECORRUPT;
    size_t at = 1;
    if (p[0] & STORE_FLAG_SHORT) {
        if (varint_get(p, len, &at, &h->num) || varint_get(p, len, &at, &h->seq) ||
            varint_get(p, len, &at, &h->time_ms))
            return REEL_ECORRUPT;
    } else {
        if (len < STORE_HEADER_LEN)
            return REEL_ECORRUPT;
        h->num = store__get_u64(p + 1);
        h->seq = store__get_u64(p + 9);
        h->time_ms = store__get_u64(p + 17);
        at = 25;
    }
    h->hash = p + at;
    h->len = at + STORE_HASH_LEN;
    /* the kept hash of a redacted value, then at least one body byte */
    if (len < h->len + (p[0] & STORE_FLAG_REDACTED ? STORE_HASH_LEN : 0) + 1)
        return REEL_ECORRUPT;
    return REEL_OK;
}

size_t store__head_size(uint8_t flags, uint64_t num, uint64_t seq, uint64_t time_ms)
{
    if (!(flags & STORE_FLAG_SHORT))
        return STORE_HEADER_LEN;
    return 1 + varint_len(num) + varint_len(seq) + varint_len(time_ms) + STORE_HASH_LEN;
}

size_t store__head_write(uint8_t *p, uint8_t flags, uint64_t num, uint64_t seq,
                         uint64_t time_ms, const uint8_t hash[STORE_HASH_LEN])
{
    p[0] = flags;
    size_t at = 1;
    if (flags & STORE_FLAG_SHORT) {
        at += varint_put(p + at, num);
        at += varint_put(p + at, seq);
        at += varint_put(p + at, time_ms);
    } else {
        store__put_u64(p + 1, num);
        store__put_u64(p + 9, seq);
        store__put_u64(p + 17, time_ms);
        at = 25;
    }
    memcpy(p + at, hash, STORE_HASH_LEN);
    return at + STORE_HASH_LEN;
}

int store__value_head(uint64_t pos, const uint8_t *p, size_t len, store_event_view_t *ev,
                      uint64_t *num)
{
    store__head_t h;
    if (store__head_parse(p, len, &h))
        return REEL_ECORRUPT;
    size_t head = h.len + (p[0] & STORE_FLAG_REDACTED ? STORE_HASH_LEN : 0);
    *num = h.num;
    ev->sequence = h.seq;
    ev->time_ms = h.time_ms;
    ev->hash = h.hash;
    ev->position = pos;
    ev->stored_len = len;
    ev->redacted = (p[0] & STORE_FLAG_REDACTED) != 0;
    ev->kept_hash_ = ev->redacted ? p + h.len : NULL;
    ev->zflags_ = p[0];
    if (!(p[0] & STORE_FLAG_ZSTD)) {
        ev->body = p + head;
        ev->body_len = len - head;
        ev->zbody_ = NULL;
    } else {
        ev->body = NULL;
        ev->body_len = 0;
        ev->zbody_ = p + head;
        ev->zbody_len_ = len - head;
    }
    return REEL_OK;
}

int store__value_body(store_t *s, MDB_txn *txn, store_buf_t *scratch, store_event_view_t *ev)
{
    const uint8_t *b = ev->zbody_;
    size_t blen = ev->zbody_len_;
    if (!b)
        return REEL_OK;
    ZSTD_DCtx *d = store__dctx();
    if (!d)
        return REEL_ENOMEM;
    int rc;
    if (ev->zflags_ & STORE_FLAG_ZDICT) {
        rc = store__zdict_decode(s, txn, d, b, blen, scratch, &ev->body, &ev->body_len);
    } else {
        unsigned long long n = ZSTD_getFrameContentSize(b, blen);
        if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > MAX_BODY)
            return REEL_ECORRUPT;
        store_buf_clear(scratch);
        if (store_buf_reserve(scratch, (size_t)n + 1))
            return REEL_ENOMEM;
        size_t got = ZSTD_decompressDCtx(d, scratch->data, (size_t)n + 1, b, blen);
        if (ZSTD_isError(got) || got != n)
            return REEL_ECORRUPT;
        scratch->len = got;
        ev->body = scratch->data;
        ev->body_len = got;
        rc = REEL_OK;
    }
    if (!rc)
        ev->zbody_ = NULL;
    return rc;
}

int store__value_decode(store_t *s, MDB_txn *txn, uint64_t pos, const uint8_t *p, size_t len,
                        store_buf_t *scratch, store_event_view_t *ev, uint64_t *num)
{
    int rc = store__value_head(pos, p, len, ev, num);
    return rc ? rc : store__value_body(s, txn, scratch, ev);
}

/* ---- session records ---- */

static void kv_str(store_buf_t *out, const char *k, const char *v, size_t n)
{
    store_mp_str(out, k, strlen(k));
    store_mp_str(out, v, n);
}

static void kv_u64(store_buf_t *out, const char *k, uint64_t v)
{
    store_mp_str(out, k, strlen(k));
    store_mp_uint(out, v);
}

/* The retention policy as a map of its non-zero limits (docs/FORMAT.md section 10). */
static void encode_retention(const store_retention_t *p, store_buf_t *out)
{
    uint32_t n = !!p->max_age_ms + !!p->max_age_ended_ms + !!p->max_events + !!p->no_archive;
    store_mp_str(out, "retention", 9);
    store_mp_map(out, n);
    if (p->max_age_ms)
        kv_u64(out, "max_age", p->max_age_ms);
    if (p->max_age_ended_ms)
        kv_u64(out, "max_age_ended", p->max_age_ended_ms);
    if (p->max_events)
        kv_u64(out, "max_events", p->max_events);
    if (p->no_archive)
        kv_u64(out, "no_archive", 1);
}

void store__session_encode(const store_session_t *rec, store_buf_t *out)
{
    int long_id = rec->id_len > STORE__SESSION_KEY_MAX; /* its key is not the id: keep it */
    /* Retention's keys are written only when used: a store that uses none reads and
     * writes exactly as format 3 did. */
    int trimmed = rec->first_sequence > 1;
    /* The usage summary's keys (section 16) likewise: only those that are non-zero. */
    uint32_t usage = !!rec->model_len + !!rec->input_tokens + !!rec->output_tokens +
                     !!rec->cost_nusd + !!rec->turns;
    store_mp_map(out, (rec->metadata ? 15 : 14) + (uint32_t)long_id + 2u * (uint32_t)trimmed +
                          (uint32_t)!!rec->retention.set + usage);
    kv_u64(out, "num", rec->num);
    kv_str(out, "agent", rec->agent, rec->agent_len);
    kv_str(out, "native", rec->native_session_id, rec->native_session_id_len);
    kv_u64(out, "status", (uint64_t)rec->status);
    kv_u64(out, "created", (uint64_t)rec->created_ms);
    kv_u64(out, "updated", (uint64_t)rec->updated_ms);
    kv_u64(out, "ended", (uint64_t)rec->ended_ms);
    kv_u64(out, "first", (uint64_t)rec->first_event_ms);
    kv_u64(out, "last_seq", rec->last_sequence);
    kv_u64(out, "count", rec->event_count);
    kv_u64(out, "bytes", rec->bytes);
    kv_u64(out, "version", rec->version);
    kv_u64(out, "runs", rec->runs);
    store_mp_str(out, "hash", 4);
    store_mp_bin(out, rec->last_hash, STORE_HASH_LEN);
    if (long_id)
        kv_str(out, "id", rec->id, rec->id_len);
    if (trimmed) {
        kv_u64(out, "first_seq", rec->first_sequence);
        store_mp_str(out, "first_hash", 10);
        store_mp_bin(out, rec->first_prev_hash, STORE_HASH_LEN);
    }
    if (rec->retention.set)
        encode_retention(&rec->retention, out);
    if (rec->model_len)
        kv_str(out, "model", rec->model, rec->model_len);
    if (rec->input_tokens)
        kv_u64(out, "tok_in", rec->input_tokens);
    if (rec->output_tokens)
        kv_u64(out, "tok_out", rec->output_tokens);
    if (rec->cost_nusd)
        kv_u64(out, "cost_nusd", rec->cost_nusd);
    if (rec->turns)
        kv_u64(out, "turns", rec->turns);
    if (rec->metadata) {
        store_mp_str(out, "meta", 4);
        store_buf_put(out, rec->metadata, rec->metadata_len);
    }
}

static int copy_name(char *dst, size_t *dst_len, const store_mp_obj_t *v)
{
    if (v->type != STORE_MP_STR || v->len > STORE_NAME_MAX)
        return REEL_ECORRUPT;
    memcpy(dst, v->ptr, v->len);
    dst[v->len] = 0;
    *dst_len = v->len;
    return REEL_OK;
}

/* Decodes the "retention" map (its value 'v' already read): uint values; unknown keys
 * are skipped like the record's own. */
static int decode_retention(store_retention_t *p, store_mp_t *m, const store_mp_obj_t *v)
{
    memset(p, 0, sizeof *p);
    p->set = 1;
    for (uint64_t i = 0; i < v->u; i++) {
        store_mp_obj_t k, x;
        if (store_mp_next(m, &k) || k.type != STORE_MP_STR)
            return REEL_ECORRUPT;
        const uint8_t *start = m->p;
        if (store_mp_next(m, &x))
            return REEL_ECORRUPT;
        if (x.type == STORE_MP_ARRAY || x.type == STORE_MP_MAP) {
            m->p = start;
            if (store_mp_skip(m, STORE_JSON_MAX_DEPTH))
                return REEL_ECORRUPT;
            continue;
        }
        if (x.type != STORE_MP_UINT)
            continue;
#define KEY(name) (k.len == strlen(name) && !memcmp(k.ptr, name, k.len))
        if (KEY("max_age")) p->max_age_ms = x.u;
        else if (KEY("max_age_ended")) p->max_age_ended_ms = x.u;
        else if (KEY("max_events")) p->max_events = x.u;
        else if (KEY("no_archive")) p->no_archive = x.u != 0;
#undef KEY
    }
    return REEL_OK;
}

static int field(store_session_t *rec, store_mp_t *m, const store_mp_obj_t *k)
{
    const uint8_t *start = m->p;
    store_mp_obj_t v;
    int rc = store_mp_next(m, &v);
    if (rc)
        return rc;
    const char *key = (const char *)k->ptr;
#define IS(name) (k->len == strlen(name) && !memcmp(key, name, k->len))
    if (IS("agent"))
        return copy_name(rec->agent, &rec->agent_len, &v);
    if (IS("native"))
        return copy_name(rec->native_session_id, &rec->native_session_id_len, &v);
    if (IS("model"))
        return copy_name(rec->model, &rec->model_len, &v);
    if (IS("hash")) {
        if (v.type != STORE_MP_BIN || v.len != STORE_HASH_LEN)
            return REEL_ECORRUPT;
        memcpy(rec->last_hash, v.ptr, STORE_HASH_LEN);
        return REEL_OK;
    }
    if (IS("first_hash")) {
        if (v.type != STORE_MP_BIN || v.len != STORE_HASH_LEN)
            return REEL_ECORRUPT;
        memcpy(rec->first_prev_hash, v.ptr, STORE_HASH_LEN);
        return REEL_OK;
    }
    if (IS("retention")) {
        if (v.type != STORE_MP_MAP)
            return REEL_ECORRUPT;
        return decode_retention(&rec->retention, m, &v);
    }
    if (IS("meta")) {
        if (v.type != STORE_MP_MAP)
            return REEL_ECORRUPT;
        m->p = start;
        if ((rc = store_mp_skip(m, STORE_JSON_MAX_DEPTH)))
            return rc;
        rec->metadata = start;
        rec->metadata_len = (size_t)(m->p - start);
        return REEL_OK;
    }
    if (v.type != STORE_MP_UINT) /* unknown keys of other types are skipped */
        return v.type == STORE_MP_ARRAY || v.type == STORE_MP_MAP
                   ? (m->p = start, store_mp_skip(m, STORE_JSON_MAX_DEPTH))
                   : REEL_OK;
    if (IS("num")) rec->num = v.u;
    else if (IS("status")) rec->status = v.u <= STORE_DELETED ? (int)v.u : STORE_ACTIVE;
    else if (IS("created")) rec->created_ms = (int64_t)v.u;
    else if (IS("updated")) rec->updated_ms = (int64_t)v.u;
    else if (IS("ended")) rec->ended_ms = (int64_t)v.u;
    else if (IS("first")) rec->first_event_ms = (int64_t)v.u;
    else if (IS("last_seq")) rec->last_sequence = v.u;
    else if (IS("count")) rec->event_count = v.u;
    else if (IS("bytes")) rec->bytes = v.u;
    else if (IS("version")) rec->version = v.u ? v.u : 1;
    else if (IS("runs")) rec->runs = v.u;
    else if (IS("first_seq")) rec->first_sequence = v.u;
    else if (IS("tok_in")) rec->input_tokens = v.u;
    else if (IS("tok_out")) rec->output_tokens = v.u;
    else if (IS("cost_nusd")) rec->cost_nusd = v.u;
    else if (IS("turns")) rec->turns = v.u;
#undef IS
    return REEL_OK;
}

int store__session_decode(const uint8_t *p, size_t len, const char *key, size_t key_len,
                          store_session_t *rec)
{
    memset(rec, 0, sizeof *rec);
    int long_key = store__session_key_long(key, key_len), has_id = 0;
    if (key_len > STORE__SESSION_KEY_MAX)
        return REEL_ECORRUPT;
    rec->version = 1; /* absent in records written before format 2 */
    rec->first_sequence = 1; /* absent: nothing was trimmed */
    if (!long_key) {
        memcpy(rec->id, key, key_len);
        rec->id_len = key_len;
    }
    store_mp_t m = {p, p + len};
    store_mp_obj_t o, k, v;
    int rc = store_mp_next(&m, &o);
    if (rc || o.type != STORE_MP_MAP)
        return REEL_ECORRUPT;
    for (uint64_t i = 0; i < o.u; i++) {
        if ((rc = store_mp_next(&m, &k)) || k.type != STORE_MP_STR)
            return REEL_ECORRUPT;
        if (k.len == 2 && !memcmp(k.ptr, "id", 2)) { /* the full id of a long-id key */
            if (store_mp_next(&m, &v) || v.type != STORE_MP_STR ||
                v.len <= STORE__SESSION_KEY_MAX || v.len > STORE_SESSION_ID_MAX || !long_key)
                return REEL_ECORRUPT;
            memcpy(rec->id, v.ptr, v.len);
            rec->id[v.len] = 0;
            rec->id_len = v.len;
            has_id = 1;
            continue;
        }
        if ((rc = field(rec, &m, &k)))
            return rc;
    }
    if (long_key) { /* the id must be the one the key was made from */
        uint8_t want[STORE__SESSION_KEY_MAX];
        if (!has_id)
            return REEL_ECORRUPT;
        size_t n = store__session_key(rec->id, rec->id_len, want);
        if (!n)
            return REEL_ENOMEM;
        if (n != key_len || memcmp(want, key, n))
            return REEL_ECORRUPT;
    }
    /* Sequences are dense from first_sequence (1 unless trimmed) and only a delete drops
     * all events: a live record whose count differs from its kept range is damaged (a
     * flipped byte would otherwise serve a session cut short). */
    if (!rec->num || !rec->first_sequence || rec->first_sequence > rec->last_sequence + 1 ||
        (rec->status != STORE_DELETED &&
         rec->event_count != rec->last_sequence + 1 - rec->first_sequence))
        return REEL_ECORRUPT;
    return REEL_OK;
}
