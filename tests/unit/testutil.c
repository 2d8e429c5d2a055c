/* testutil.c -- helpers shared by the unit tests (see testutil.h). */
#include "tests/unit/testutil.h"

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tu_watchdog(unsigned seconds)
{
    alarm(seconds);
}

void tu_tmpdir(char out[TU_PATH_MAX])
{
    snprintf(out, TU_PATH_MAX, "/tmp/reel-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(out), "mkdtemp(%s) failed", out);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_rmrf(const char *dir)
{
    if (!dir || !*dir)
        return;
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

store_t *tu_open(const char *dir, size_t map_size, int no_sync)
{
    /* REEL_TEST_PARTS_OFF: run the suites on stores without some optional parts (the
     * layouts of older builds), e.g. 4 for the per-session index trees. */
    const char *off = getenv("REEL_TEST_PARTS_OFF");
    return tu_open_parts(dir, map_size, no_sync, off ? (unsigned)strtoul(off, NULL, 0) : 0);
}

store_t *tu_open_parts(const char *dir, size_t map_size, int no_sync, unsigned parts_off)
{
    store_options_t opt = {.map_size = map_size, .no_sync = no_sync, .parts_off = parts_off};
    store_t *s = NULL;
    TU_OK(store_open(dir, &opt, &s));
    cr_assert_not_null(s, "store_open returned OK without a handle");
    return s;
}

int tu_append(store_t *s, const char *session, const char *text, int format,
              int64_t expected_sequence, tu_result_t *res, ingest_error_t *e)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t ib;
    int rc = ingest_batch_init(&ib, session, strlen(session));
    if (rc)
        return rc;
    rc = ingest_parse(&ib, text, strlen(text), format, &lim, e);
    if (rc == 0) {
        ib.b.expected_sequence = expected_sequence;
        rc = ingest_append(s, &ib);
        if (res) {
            res->err = ib.b.err;
            res->n = ib.b.n_events;
            res->first_sequence = ib.b.first_sequence;
            res->last_sequence = ib.b.last_sequence;
            res->position = ib.b.position;
            res->duplicates = ib.b.duplicates;
        }
    }
    ingest_batch_release(&ib);
    return rc;
}

static char *dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* The content of a JSON string value (no unescaping: test ids and types are plain). */
static char *dup_string_member(const char *obj, size_t len, const char *key)
{
    size_t vlen;
    const char *v = tu_json_member(obj, len, key, &vlen);
    if (!v || vlen < 2 || v[0] != '"')
        return dup_n("", 0);
    return dup_n(v + 1, vlen - 2);
}

int tu_collect_cb(void *arg, const store_event_view_t *ev)
{
    tu_events_t *v = arg;
    store_buf_t b = STORE_BUF_INIT;
    int rc = replay_write_event(&b, ev, 1);
    if (rc == 0 && store_buf_failed(&b))
        rc = REEL_ENOMEM;
    if (rc) {
        if (!v->err)
            v->err = rc;
        store_buf_release(&b);
        return rc;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        tu_event_t *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv) {
            store_buf_release(&b);
            return v->err = REEL_ENOMEM;
        }
        v->v = nv;
        v->cap = cap;
    }
    tu_event_t *e = &v->v[v->n++];
    memset(e, 0, sizeof *e);
    size_t sl = ev->session_len < STORE_SESSION_ID_MAX ? ev->session_len : STORE_SESSION_ID_MAX;
    memcpy(e->session, ev->session, sl);
    e->session[sl] = '\0';
    e->sequence = ev->sequence;
    e->position = ev->position;
    e->time_ms = ev->time_ms;
    if (ev->hash)
        memcpy(e->hash, ev->hash, STORE_HASH_LEN);
    e->json = dup_n((const char *)b.data, b.len);
    size_t dlen = 0;
    const char *d = tu_json_member((const char *)b.data, b.len, "data", &dlen);
    e->data = d ? dup_n(d, dlen) : dup_n("", 0);
    e->event_id = dup_string_member((const char *)b.data, b.len, "event_id");
    e->type = dup_string_member((const char *)b.data, b.len, "type");
    store_buf_release(&b);
    return 0;
}

void tu_events_free(tu_events_t *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->v[i].json);
        free(v->v[i].data);
        free(v->v[i].event_id);
        free(v->v[i].type);
    }
    free(v->v);
    memset(v, 0, sizeof *v);
}

void tu_read_session(store_t *s, const char *session, tu_events_t *out)
{
    uint64_t after = 0;
    for (;;) {
        store_read_t r;
        int more = 0;
        size_t before = out->n;
        TU_OK(store_read_begin(s, &r));
        int rc = store_events_after(&r, session, strlen(session), after, 500, tu_collect_cb,
                                    out, &more);
        store_read_end(&r);
        TU_OK(rc);
        if (out->n > before)
            after = out->v[out->n - 1].sequence;
        if (!more)
            break;
        cr_assert_gt(out->n, before, "store_events_after set more=1 but gave no event");
    }
}

void tu_read_feed(store_t *s, tu_events_t *out)
{
    uint64_t after = 0;
    for (;;) {
        store_read_t r;
        int more = 0;
        size_t before = out->n;
        TU_OK(store_read_begin(s, &r));
        int rc = store_feed_after(&r, after, 500, tu_collect_cb, out, &more);
        store_read_end(&r);
        TU_OK(rc);
        if (out->n > before)
            after = out->v[out->n - 1].position;
        if (!more)
            break;
        cr_assert_gt(out->n, before, "store_feed_after set more=1 but gave no event");
    }
}

int tu_session(store_t *s, const char *session, store_session_t *out)
{
    store_read_t r;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    rc = store_session_get(&r, session, strlen(session), out);
    out->metadata = NULL; /* borrowed from the read; not valid after it */
    out->metadata_len = 0;
    store_read_end(&r);
    return rc;
}

/* ---- a small JSON structure scanner (no DOM) ---- */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *e)
{
    if (p >= e || *p != '"')
        return NULL;
    for (p++; p < e; p++) {
        if (*p == '\\') {
            if (++p >= e)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        } else if ((unsigned char)*p < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *e, int depth)
{
    p = skip_ws(p, e);
    if (p >= e || depth > 100000)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = skip_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = skip_string(skip_ws(p, e), e);
                if (!p)
                    return NULL;
                p = skip_ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            p = skip_value(p, e, depth + 1);
            if (!p)
                return NULL;
            p = skip_ws(p, e);
            if (p < e && *p == ',') {
                p++;
                continue;
            }
            if (p < e && *p == close)
                return p + 1;
            return NULL;
        }
    }
    static const char *const lit[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lit[i]);
        if ((size_t)(e - p) >= n && !memcmp(p, lit[i], n))
            return p + n;
    }
    const char *s = p;
    while (p < e && strchr("-+0123456789.eE", *p))
        p++;
    return p > s ? p : NULL;
}

int tu_json_valid(const char *text, size_t len)
{
    const char *e = text + len;
    const char *p = skip_value(text, e, 0);
    return p && skip_ws(p, e) == e;
}

const char *tu_json_member(const char *obj, size_t len, const char *key, size_t *vlen)
{
    const char *e = obj + len, *p = skip_ws(obj, e);
    size_t klen = strlen(key);
    if (p >= e || *p != '{')
        return NULL;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        return NULL;
    for (;;) {
        const char *k = skip_ws(p, e);
        p = skip_string(k, e);
        if (!p)
            return NULL;
        int match = (size_t)(p - k) == klen + 2 && !memcmp(k + 1, key, klen);
        p = skip_ws(p, e);
        if (p >= e || *p != ':')
            return NULL;
        const char *v = skip_ws(p + 1, e);
        p = skip_value(v, e, 1);
        if (!p)
            return NULL;
        if (match) {
            *vlen = (size_t)(p - v);
            return v;
        }
        p = skip_ws(p, e);
        if (p >= e || *p != ',')
            return NULL;
        p++;
    }
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

char tu_dir[TU_PATH_MAX];
store_t *tu_store;

void tu_store_setup(void)
{
    tu_watchdog(60);
    tu_tmpdir(tu_dir);
    tu_store = tu_open(tu_dir, 8u << 20, 0);
}

void tu_store_teardown(void)
{
    store_close(tu_store);
    tu_store = NULL;
    tu_rmrf(tu_dir);
}

/* ---- The format record, read and written behind the store's back ---- */

void tu_put_raw(const char *d, const char *tree, const void *key, size_t klen, const void *val,
                size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    int rc = mdb_env_open(env, d, 0, 0644);
    cr_assert_eq(rc, 0, "mdb_env_open(%s): %s", d, mdb_strerror(rc));
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    rc = mdb_dbi_open(txn, tree, 0, &dbi);
    cr_assert_eq(rc, 0, "no %s db: %s", tree, mdb_strerror(rc));
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

void tu_put_format(const char *d, uint32_t version)
{
    uint8_t be[4] = {(uint8_t)(version >> 24), (uint8_t)(version >> 16), (uint8_t)(version >> 8),
                     (uint8_t)version};
    tu_put_raw(d, "meta", "format", 6, be, sizeof be);
}

size_t tu_format_record(const char *d, uint8_t out[16])
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, "format"}, v;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    size_t n = v.mv_size < 16 ? v.mv_size : 16;
    memcpy(out, v.mv_data, n);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return v.mv_size;
}

uint32_t tu_format_of(const char *d)
{
    uint8_t p[16];
    cr_assert_geq(tu_format_record(d, p), 4);
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

