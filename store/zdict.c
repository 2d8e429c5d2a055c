/* zdict.c -- zstd dictionaries trained on the store's own events (issue 19, bytes on disk).
 * The format is docs/FORMAT.md section 15; in short:
 *
 *   meta key "zdict" | id u32 BE (9 bytes), id 1..255, never rewritten or removed:
 *     off 0 u64 BE the last position when the samples were taken ('trained_at')
 *     off 8 u8[32] SHA-256 of the dictionary, off 40 the zstd dictionary (its header's
 *     dictionary id is 'id')
 *   event value with flags 0x05: the body is a zstd frame made with that dictionary, whose
 *     header names the id, stored without the frame's 4-byte magic number.
 *
 * Rules:
 *  - Readers on any thread: a dictionary is loaded from the meta database of the read that
 *    first meets its id and installed in s->zd[id] once (under zd_mu; a slot never changes
 *    afterwards), so a ZSTD_DDict is prepared once per dictionary and shared by every
 *    thread's own ZSTD_DCtx (record.c). A damaged record is installed as damaged: every
 *    value that names it reads as REEL_ECORRUPT, and verify reports the record.
 *  - Training reads samples in its own read, trains, and posts the result: the store's
 *    first dictionary on the committer thread between two groups, later ones on a trainer
 *    thread (or on the caller of store_zdict_train()). ZDICT_trainFromBuffer() itself runs
 *    in a child process (ztrain.c): libzstd 1.5.4 dies there when an allocation fails. For
 *    the same reason the compression dictionary is a static CDict (cdict_make()). The committer writes it in its next
 *    group, so a dictionary appears atomically with a group or not at all (kill -9 during
 *    training leaves the store as it was).
 *  - Compression runs in store_submit(), on the submitting thread with its own ZSTD_CCtx
 *    and the shared ZSTD_CDict of s->zd_enc (set by the committer once the dictionary is
 *    committed, never freed before store_close()), so the committer does not pay for it.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticCDict(): cdict_make() */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zdict.h>

#include "store/store_int.h"

#define KEY_LEN 9
#define REC_HEAD 40                 /* trained_at + SHA-256 before the dictionary */
#define DICT_MAX (256u << 10)       /* dictionary size, at most */
#define SAMPLE_BYTES (8u << 20)     /* newest events' bodies read to train on, at most */
#define SAMPLE_MAX 16384            /* samples, at most */
#define SAMPLE_CUT (16u << 10)      /* bytes of one body taken, at most */
#define SAMPLE_MIN 256              /* fewer samples train nothing useful */
#define LEVEL 3                     /* compression level with a dictionary */
#define GROWTH 16                   /* retrain when the log has grown this many times */
#define MAX_BODY (256u << 20)       /* a decompressed body larger than this is corrupt */

struct store__zdict {
    ZSTD_DDict *dd; /* NULL when the record is damaged */
    const ZSTD_CDict *cd; /* set (by the committer) before the dictionary becomes s->zd_enc */
    void *cd_mem;         /* cd's memory (cd lives in it: cdict_make()) */
};

static const uint8_t frame_magic[4] = {0x28, 0xb5, 0x2f, 0xfd}; /* ZSTD_MAGICNUMBER, LE */

static void zkey(uint8_t key[KEY_LEN], uint32_t id)
{
    memcpy(key, "zdict", 5);
    key[5] = (uint8_t)(id >> 24);
    key[6] = (uint8_t)(id >> 16);
    key[7] = (uint8_t)(id >> 8);
    key[8] = (uint8_t)id;
}

/* 1 when the record 'v' of dictionary 'id' is whole: its hash matches and the dictionary's
 * own header names 'id'; 0 when it is damaged; -1 when memory ran out hashing it (which
 * says nothing about the record: it must not be taken for damaged, for good). */
static int record_ok(const MDB_val *v, uint32_t id)
{
    uint8_t h[STORE_HASH_LEN];
    const uint8_t *p = v->mv_data;
    if (v->mv_size <= REC_HEAD + 8)
        return 0;
    if (store__sha256(p + REC_HEAD, v->mv_size - REC_HEAD, h))
        return -1;
    return !memcmp(h, p + 8, STORE_HASH_LEN) &&
           ZDICT_getDictID(p + REC_HEAD, v->mv_size - REC_HEAD) == id;
}

/* Installs 'z' as dictionary 'id' unless another thread did first; returns the slot's. */
static struct store__zdict *install(store_t *s, uint32_t id, struct store__zdict *z)
{
    pthread_mutex_lock(&s->zd_mu);
    struct store__zdict *had = atomic_load_explicit(&s->zd[id], memory_order_acquire);
    if (!had)
        atomic_store_explicit(&s->zd[id], z, memory_order_release);
    pthread_mutex_unlock(&s->zd_mu);
    if (had) {
        ZSTD_freeDDict(z->dd);
        free(z->cd_mem);
        free(z);
        return had;
    }
    return z;
}

/* The dictionary 'id' as read in 'txn', loaded on first use; NULL when 'txn' has no such
 * record (or memory ran out: '*nomem'). */
static struct store__zdict *lookup(store_t *s, MDB_txn *txn, uint32_t id, int *nomem)
{
    *nomem = 0;
    if (!id || id > STORE__ZDICT_MAX || !s)
        return NULL;
    struct store__zdict *z = atomic_load_explicit(&s->zd[id], memory_order_acquire);
    if (z || !txn)
        return z;
    uint8_t key[KEY_LEN];
    zkey(key, id);
    MDB_val k = {KEY_LEN, key}, v;
    if (mdb_get(txn, s->db_meta, &k, &v))
        return NULL;
    int ok = record_ok(&v, id);
    if (ok < 0 || !(z = calloc(1, sizeof *z)))
        return *nomem = 1, NULL;
    if (ok) {
        z->dd = ZSTD_createDDict((const uint8_t *)v.mv_data + REC_HEAD, v.mv_size - REC_HEAD);
        if (!z->dd) {
            free(z);
            return *nomem = 1, NULL;
        }
    } else {
        store__set_error("the dictionary record zdict %u is damaged", (unsigned)id);
    }
    return install(s, id, z);
}

int store__zdict_decode(store_t *s, MDB_txn *txn, ZSTD_DCtx *d, const uint8_t *b, size_t blen,
                        store_buf_t *scratch, const uint8_t **out, size_t *out_len)
{
    /* The frame is stored without its magic number: put it back in front of a copy, and
     * decompress after that copy in the same buffer. */
    size_t flen = blen + sizeof frame_magic;
    store_buf_clear(scratch);
    store_buf_put(scratch, frame_magic, sizeof frame_magic);
    store_buf_put(scratch, b, blen);
    if (store_buf_failed(scratch))
        return REEL_ENOMEM;
    unsigned long long n = ZSTD_getFrameContentSize(scratch->data, flen);
    unsigned id = ZSTD_getDictID_fromFrame(scratch->data, flen);
    if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > MAX_BODY || !id)
        return REEL_ECORRUPT;
    int nomem;
    struct store__zdict *z = lookup(s, txn, id, &nomem);
    if (!z || !z->dd)
        return nomem ? REEL_ENOMEM : REEL_ECORRUPT;
    if (store_buf_reserve(scratch, (size_t)n + 1))
        return REEL_ENOMEM;
    uint8_t *dst = scratch->data + flen;
    size_t got = ZSTD_decompress_usingDDict(d, dst, (size_t)n + 1, scratch->data, flen, z->dd);
    if (ZSTD_isError(got) || got != n)
        return REEL_ECORRUPT;
    *out = dst;
    *out_len = got;
    return REEL_OK;
}

/* ---- the committer's side ---- */

/* The highest dictionary id in 'txn' (0: none), and whether that record is whole. */
static int newest(store_t *s, MDB_txn *txn, uint32_t *id, MDB_val *val)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_meta, &c);
    if (rc)
        return rc;
    uint8_t key[KEY_LEN];
    zkey(key, STORE__ZDICT_MAX + 1);
    MDB_val k = {KEY_LEN, key}, v;
    *id = 0;
    /* Seek past the highest possible key, step back once: the last "zdict" record. */
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    const uint8_t *kp = k.mv_data;
    if (!rc && k.mv_size == KEY_LEN && !memcmp(kp, "zdict", 5)) {
        *id = (uint32_t)kp[5] << 24 | (uint32_t)kp[6] << 16 | (uint32_t)kp[7] << 8 | kp[8];
        *val = v;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Prepares z->cd for compressing with dictionary 'dict' in memory the store allocates:
 * ZSTD_createCDict() of libzstd 1.5.4 dereferences a failed allocation of its own (see
 * ztrain.c), ZSTD_initStaticCDict() allocates nothing. The memory is zeroed because that
 * function leaves the CDict's compression level unset, and 0 there means "use the CDict's
 * parameters". 0 or -1 (out of memory). */
static int cdict_make(struct store__zdict *z, const uint8_t *dict, size_t len)
{
    ZSTD_compressionParameters cp = ZSTD_getCParams(LEVEL, ZSTD_CONTENTSIZE_UNKNOWN, len);
    size_t need = ZSTD_estimateCDictSize_advanced(len, cp, ZSTD_dlm_byCopy);
    void *mem = calloc(1, need); /* malloc's alignment is the 8 bytes it asks for */
    const ZSTD_CDict *cd = mem ? ZSTD_initStaticCDict(mem, need, dict, len, ZSTD_dlm_byCopy,
                                                      ZSTD_dct_fullDict, cp)
                               : NULL;
    if (!cd) {
        free(mem);
        return -1;
    }
    z->cd = cd;
    z->cd_mem = mem;
    return 0;
}

/* Makes 'id' (its record 'v', whole, read in 'txn' or just committed) the dictionary values
 * are compressed with: submitters see it through s->zd_enc. */
static int use(store_t *s, MDB_txn *txn, uint32_t id, const MDB_val *v)
{
    int nomem;
    struct store__zdict *z = lookup(s, txn, id, &nomem);
    if (!z) { /* not installed yet and 'txn' is gone (just committed): from 'v' */
        if (!(z = calloc(1, sizeof *z)))
            return ENOMEM;
        z->dd = ZSTD_createDDict((const uint8_t *)v->mv_data + REC_HEAD, v->mv_size - REC_HEAD);
        if (!z->dd) {
            free(z);
            return ENOMEM;
        }
        z = install(s, id, z);
    }
    if (!z->dd)
        return 0; /* damaged: never compress with it */
    if (!z->cd && cdict_make(z, (const uint8_t *)v->mv_data + REC_HEAD, v->mv_size - REC_HEAD))
        return ENOMEM;
    atomic_store_explicit(&s->zd_enc, z, memory_order_release);
    s->zd_cur = id;
    s->zd_next_train = store__get_u64(v->mv_data) * GROWTH;
    return 0;
}

/* Writes the posted dictionary as id 'newest + 1' in the group's transaction. */
static int write_new(store__wg_t *w, uint32_t top)
{
    store_t *s = w->s;
    s->zd_new_id = 0;
    if (top >= STORE__ZDICT_MAX) /* ids are used up: keep the ones there are */
        return 0;
    uint32_t id = top + 1;
    uint8_t *p = s->zd_new, key[KEY_LEN];
    /* The dictionary header (RFC 8878 section 5): magic u32 LE, then the id u32 LE. */
    p[REC_HEAD + 4] = (uint8_t)id;
    p[REC_HEAD + 5] = p[REC_HEAD + 6] = p[REC_HEAD + 7] = 0;
    store__put_u64(p, s->zd_new_at);
    if (store__sha256(p + REC_HEAD, s->zd_new_len - REC_HEAD, p + 8))
        return ENOMEM;
    zkey(key, id);
    MDB_val k = {KEY_LEN, key}, v = {s->zd_new_len, p};
    s->zd_new_id = id;
    return store__put(w, s->db_meta, &k, &v, MDB_NOOVERWRITE);
}

/* Looks up the newest dictionary in 'txn' once and makes it the one values use. */
static int load_newest(store_t *s, MDB_txn *txn)
{
    uint32_t top = 0;
    MDB_val v;
    int rc = newest(s, txn, &top, &v);
    if (rc)
        return rc;
    s->zd_next_train = STORE_ZDICT_FIRST;
    /* A damaged newest record: compress with none (reads of older values still work, and
     * verify reports it); the next training writes a whole one after it. */
    int ok = top ? record_ok(&v, top) : 0;
    if (ok < 0)
        return ENOMEM;
    if (ok && (rc = use(s, txn, top, &v)))
        return rc;
    if (top && !ok)
        s->zd_next_train = 0;
    s->zd_loaded = 1;
    return 0;
}

int store__zdict_open(store_t *s)
{
    MDB_txn *txn;
    if (s->read_only || !s->zd_auto || store__txn_begin(s, MDB_RDONLY, &txn))
        return REEL_OK;
    int rc;
    STORE__GUARD(s, rc, load_newest(s, txn));
    mdb_txn_abort(txn);
    /* Anything else is left to the committer's first group, which looks again. */
    return rc == ENOMEM ? REEL_ENOMEM : REEL_OK;
}

int store__zdict_group(store__wg_t *w)
{
    store_t *s = w->s;
    MDB_txn *txn = w->txn;
    uint32_t top = 0;
    MDB_val v;
    int rc;
    if (!s->zd_loaded && (rc = load_newest(s, txn)))
        return rc;
    if (!s->zd_new)
        return 0;
    if ((rc = newest(s, txn, &top, &v)))
        return rc;
    return write_new(w, top);
}

/* Compresses one encoded body (flags byte first) with 'cd' onto 'out' (the frame without
 * its magic number); returns its length, 0 when it would not be smaller or failed. */
static size_t compress_one(const ZSTD_CDict *cd, const uint8_t *body, size_t len,
                           store_buf_t *tmp, store_buf_t *out)
{
    ZSTD_CCtx *c = store__cctx();
    const uint8_t *src = body + 1;
    size_t n = len - 1;
    if (!c || len < 2 || (body[0] & ~STORE_FLAG_ZSTD))
        return 0;
    if (body[0] & STORE_FLAG_ZSTD) { /* compressed without the dictionary: undo that first */
        unsigned long long m = ZSTD_getFrameContentSize(src, n);
        ZSTD_DCtx *d = store__dctx();
        if (!d || m == ZSTD_CONTENTSIZE_ERROR || m == ZSTD_CONTENTSIZE_UNKNOWN || m > MAX_BODY)
            return 0;
        store_buf_clear(tmp);
        if (store_buf_reserve(tmp, (size_t)m + 1))
            return 0;
        size_t got = ZSTD_decompressDCtx(d, tmp->data, (size_t)m + 1, src, n);
        if (ZSTD_isError(got) || got != m)
            return 0;
        src = tmp->data;
        n = got;
    }
    size_t bound = ZSTD_compressBound(n);
    if (store_buf_reserve(out, bound))
        return 0;
    uint8_t *dst = out->data + out->len;
    size_t c_len = ZSTD_compress_usingCDict(c, dst, bound, src, n, cd);
    if (ZSTD_isError(c_len) || c_len <= sizeof frame_magic ||
        c_len - sizeof frame_magic >= len - 1)
        return 0;
    c_len -= sizeof frame_magic;
    memmove(dst, dst + sizeof frame_magic, c_len);
    out->len += c_len;
    return c_len;
}

/* A body left uncompressed by store_body_encode_raw() that store_body_encode() would have
 * compressed without a dictionary: STORE_COMPRESS_MIN bytes or more, flags 0. */
static int wants_plain(const store_event_t *ev)
{
    return ev->body_len >= 1 + STORE_COMPRESS_MIN && ev->body[0] == 0x00;
}

int store__zdict_batch(store_t *s, store_batch_t *b)
{
    struct store__zdict *z = atomic_load_explicit(&s->zd_enc, memory_order_acquire);
    int dict = s->zd_auto && z && z->cd;
    size_t first = 0;
    if (!dict) /* without a dictionary only large raw bodies are compressed (plain frames) */
        while (first < b->n_events && !wants_plain(&b->events[first]))
            first++;
    if (!b->events || first == b->n_events)
        return REEL_OK;
    size_t *off = malloc(2 * b->n_events * sizeof *off);
    store_buf_t out = STORE_BUF_INIT, tmp = STORE_BUF_INIT;
    size_t used = 0, room = 1;
    int rc = off ? REEL_OK : REEL_ENOMEM;
    /* Room for every frame at once: growing by doubling cost 0.7 % of the server's CPU
     * on batched ingest (issue 19). Bodies compressed without the dictionary may grow
     * when recompressed: their frames are left to store_buf_reserve(). */
    for (size_t i = first; i < b->n_events; i++)
        if (dict || wants_plain(&b->events[i]))
            room += ZSTD_compressBound(b->events[i].body_len);
    store_buf_reserve(&out, room);
    for (size_t i = 0; !rc && i < b->n_events; i++) {
        const store_event_t *ev = &b->events[i];
        off[2 * i] = out.len;
        off[2 * i + 1] = 0;
        if (dict)
            off[2 * i + 1] = compress_one(z->cd, ev->body, ev->body_len, &tmp, &out);
        else if (wants_plain(ev))
            rc = store__zstd_plain(ev->body + 1, ev->body_len - 1, &out, &off[2 * i + 1]);
        used += off[2 * i + 1] != 0;
    }
    store_buf_release(&tmp);
    if (!rc && store_buf_failed(&out))
        rc = REEL_ENOMEM;
    if (rc || !used) {
        free(off);
        store_buf_release(&out);
        return dict ? REEL_OK : rc; /* the dictionary is best effort: bodies go as given */
    }
    b->zbodies_ = out.data; /* the buffer's memory, owned by the batch until it completes */
    b->zoff_ = off;
    b->zplain_ = !dict;
    return REEL_OK;
}

void store__zdict_batch_free(store_batch_t *b)
{
    free(b->zbodies_);
    free(b->zoff_);
    b->zbodies_ = NULL;
    b->zoff_ = NULL;
}

/* ---- what there is ---- */

static int info_walk(store_t *s, store_read_t *r, store_zdict_info_t *out)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, s->db_meta, &c);
    if (rc)
        return rc;
    MDB_val k = {5, "zdict"}, v;
    for (int got = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
         !got && k.mv_size == KEY_LEN && !memcmp(k.mv_data, "zdict", 5);
         got = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        uint32_t id = (uint32_t)kp[5] << 24 | (uint32_t)kp[6] << 16 | (uint32_t)kp[7] << 8 | kp[8];
        out->count++;
        int ok = record_ok(&v, id);
        if (ok < 0) {
            rc = REEL_ENOMEM;
            break;
        }
        if (!ok && !out->damaged++)
            out->first_damaged = id;
        out->id = id;
        out->trained_at = v.mv_size >= 8 ? store__get_u64(v.mv_data) : 0;
        out->bytes = v.mv_size > REC_HEAD ? v.mv_size - REC_HEAD : 0;
    }
    store__cursor_close(r, c);
    return rc;
}

int store_zdict_info(store_t *s, store_zdict_info_t *out)
{
    memset(out, 0, sizeof *out);
    store_read_t r;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    STORE__GUARD(s, rc, info_walk(s, &r, out));
    store_read_end(&r);
    return rc;
}

/* ---- training ---- */

struct samples {
    store_buf_t all;
    size_t *sizes;
    size_t n;
    uint64_t at; /* last position */
};

/* Takes the newest events' bodies from read 'r' (under a guard: see read.c). */
static int take_samples(store_t *s, store_read_t *r, struct samples *sm)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, s->db_events, &c);
    if (rc)
        return rc;
    store_buf_t scratch = STORE_BUF_INIT;
    MDB_val k, v;
    int got = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (!got && k.mv_size == 8)
        sm->at = store__get_u64(k.mv_data);
    for (; !got && sm->n < SAMPLE_MAX && sm->all.len < SAMPLE_BYTES;
         got = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
        store_event_view_t ev = {0};
        uint64_t num;
        if (k.mv_size != 8)
            continue;
        rc = store__value_decode(s, r->txn_, store__get_u64(k.mv_data), v.mv_data, v.mv_size,
                                 &scratch, &ev, &num);
        if (rc == REEL_ECORRUPT) /* verify's business: train on the others */
            continue;
        if (rc)
            break;
        size_t n = ev.body_len < SAMPLE_CUT ? ev.body_len : SAMPLE_CUT;
        store_buf_put(&sm->all, ev.body, n);
        sm->sizes[sm->n++] = n;
    }
    store_buf_release(&scratch);
    store__cursor_close(r, c);
    if (!rc && store_buf_failed(&sm->all))
        rc = REEL_ENOMEM;
    return rc;
}

static int guarded_samples(store_t *s, store_read_t *r, struct samples *sm)
{
    int rc;
    STORE__GUARD(s, rc, take_samples(s, r, sm));
    return rc;
}

/* Trains on the newest events; on success '*dict' is a new record-to-be (REC_HEAD bytes
 * left for write_new(), then the dictionary), '*len' its size, '*at' the last position. */
static int train(store_t *s, uint8_t **dict, size_t *len, uint64_t *at)
{
    struct samples sm = {STORE_BUF_INIT, calloc(SAMPLE_MAX, sizeof(size_t)), 0, 0};
    store_read_t r;
    int rc = sm.sizes ? store_read_begin(s, &r) : REEL_ENOMEM;
    if (!rc) {
        rc = guarded_samples(s, &r, &sm);
        store_read_end(&r);
    }
    if (!rc && (sm.n < SAMPLE_MIN || sm.all.len < 8 * 1024))
        rc = REEL_ENOT_FOUND;
    uint8_t *out = rc ? NULL : malloc(REC_HEAD + DICT_MAX);
    if (!rc && !out)
        rc = REEL_ENOMEM;
    if (!rc) {
        /* A dictionary much larger than a tenth of its samples overfits them. */
        size_t cap = sm.all.len / 10 < DICT_MAX ? sm.all.len / 10 : DICT_MAX;
        size_t n = 0;
        rc = store__ztrain(sm.all.data, sm.sizes, (unsigned)sm.n, out + REC_HEAD, cap, &n);
        if (!rc) {
            *dict = out, *len = REC_HEAD + n, *at = sm.at;
            out = NULL;
        }
    }
    free(out);
    free(sm.sizes);
    store_buf_release(&sm.all);
    return rc;
}

/* Hands a trained dictionary to the committer; returns the generation that will report
 * its result. */
static uint64_t post(store_t *s, uint8_t *dict, size_t len, uint64_t at)
{
    pthread_mutex_lock(&s->mu);
    free(s->zd_pending);
    s->zd_pending = dict;
    s->zd_pending_len = len;
    s->zd_pending_at = at;
    uint64_t gen = s->zd_done + 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return gen;
}

static void *trainer_main(void *arg)
{
    store_t *s = arg;
    uint8_t *dict;
    size_t len;
    uint64_t at;
    /* A failure posts nothing: the committer tries again when the log has doubled. */
    if (train(s, &dict, &len, &at) == REEL_OK)
        post(s, dict, len, at);
    pthread_mutex_lock(&s->mu);
    s->zd_finished = 1;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int store_zdict_train(store_t *s)
{
    if (s->read_only || !s->zd_auto)
        return REEL_EUNAVAILABLE;
    uint8_t *dict;
    size_t len;
    uint64_t at;
    int rc = train(s, &dict, &len, &at);
    if (rc)
        return rc;
    uint64_t gen = post(s, dict, len, at);
    pthread_mutex_lock(&s->mu);
    while (s->zd_done < gen && !s->failed && !s->stopping)
        pthread_cond_wait(&s->zd_cv, &s->mu);
    rc = s->zd_done >= gen ? s->zd_result : REEL_EUNAVAILABLE;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Starts a trainer thread unless one runs (committer, after a commit); joins the one that
 * ran before, so at most one exists. */
static void start_trainer(store_t *s)
{
    pthread_mutex_lock(&s->mu);
    int busy = (s->zd_training && !s->zd_finished) || s->zd_pending || s->stopping;
    int join = !busy && s->zd_training;
    pthread_mutex_unlock(&s->mu);
    if (busy)
        return;
    if (join)
        pthread_join(s->zd_thread, NULL);
    pthread_mutex_lock(&s->mu);
    s->zd_finished = 0;
    s->zd_training = pthread_create(&s->zd_thread, NULL, trainer_main, s) == 0;
    pthread_mutex_unlock(&s->mu);
}

void store__zdict_after(store_t *s, int ok, uint64_t last_pos)
{
    if (s->zd_new) { /* the group carried a posted dictionary */
        int rc = ok ? REEL_EINTERNAL : REEL_EIO; /* no id left (255 of them) or no commit */
        if (ok && s->zd_new_id) {
            MDB_val v = {s->zd_new_len, s->zd_new};
            rc = use(s, NULL, s->zd_new_id, &v) ? REEL_ENOMEM : REEL_OK;
        }
        free(s->zd_new);
        s->zd_new = NULL;
        s->zd_new_id = 0;
        pthread_mutex_lock(&s->mu);
        s->zd_done++;
        s->zd_result = rc;
        pthread_cond_broadcast(&s->zd_cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (!ok || !s->zd_auto || !s->zd_loaded || last_pos < s->zd_next_train)
        return;
    /* Not again before the log doubled, whatever this training gives (a success sets
     * the next time to sixteen times its samples' last position: use()). */
    s->zd_next_train = last_pos * 2;
    if (s->zd_cur) {
        start_trainer(s);
        return;
    }
    /* The first one is trained right here, between two groups: appends wait for it once
     * (~0.2 s on 4096 events), so that the store does not write many more values without
     * a dictionary while a trainer runs (a bulk import writes 50,000 events a second). */
    uint8_t *dict;
    size_t len;
    uint64_t at;
    if (train(s, &dict, &len, &at) == REEL_OK)
        post(s, dict, len, at);
}

void store__zdict_release(store_t *s)
{
    /* Called after the committer stopped: nobody starts a trainer any more. */
    if (s->zd_training)
        pthread_join(s->zd_thread, NULL);
    free(s->zd_pending);
    free(s->zd_new);
    for (int i = 0; i <= STORE__ZDICT_MAX; i++) {
        struct store__zdict *z = atomic_load(&s->zd[i]);
        if (z) {
            ZSTD_freeDDict(z->dd);
            free(z->cd_mem);
            free(z);
        }
    }
}
