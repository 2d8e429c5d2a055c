/* env.c -- store lifecycle: opening the LMDB environment, the format check, map growth,
 * and errors. Submission to the committer and the committer itself are in commit.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "store/jfile.h"

#define DEFAULT_MAP (1ull << 30)
#define MAX_READERS 1024

/* ---- errors ---- */

static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char err_text[512] = "no error";

void store__set_error(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&err_mu);
    va_start(ap, fmt);
    vsnprintf(err_text, sizeof err_text, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&err_mu);
}

const char *store_last_error(void)
{
    static __thread char copy[sizeof err_text];
    pthread_mutex_lock(&err_mu);
    memcpy(copy, err_text, sizeof copy);
    pthread_mutex_unlock(&err_mu);
    return copy;
}

int store__err_from_mdb(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return REEL_OK;
    case ENOMEM: return REEL_ENOMEM;
    case ENOSPC: case EDQUOT: case MDB_MAP_FULL: return REEL_EFULL;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID: return REEL_ECORRUPT;
    /* Only a damaged page makes these (a branch pointing back up the tree; a database
     * record whose flags changed): found by tests/fault/test_page_damage.py. */
    case MDB_CURSOR_FULL: case MDB_INCOMPATIBLE: return REEL_ECORRUPT;
    /* A read transaction that met a damaged page is marked failed, and every later call in
     * it answers this (a walk whose earlier lookup found the damage); the committer stops
     * a group at the first error, which is the one it reports. */
    case MDB_BAD_TXN: return REEL_ECORRUPT;
    case MDB_VERSION_MISMATCH: return REEL_EFORMAT;
    case MDB_PANIC: return REEL_EUNAVAILABLE;
    default: return REEL_EIO;
    }
}

int store_session_id_valid(const char *id, size_t len)
{
    if (!id || len == 0 || len > STORE_SESSION_ID_MAX)
        return 0;
    /* "." and ".." are path segments with a meaning in URLs and file systems. */
    if ((len == 1 && id[0] == '.') || (len == 2 && id[0] == '.' && id[1] == '.'))
        return 0;
    const unsigned char *p = (const unsigned char *)id, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) { /* ASCII: no C0 control, no DEL */
            if (c < 0x20 || c == 0x7f)
                return 0;
            p++;
            continue;
        }
        /* Strict UTF-8 (RFC 3629): shortest form, no surrogates, at most U+10FFFF. */
        size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!n || (size_t)(end - p) < n)
            return 0;
        unsigned lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c == 0xe0) lo = 0xa0;
        else if (c == 0xed) hi = 0x9f;
        else if (c == 0xf0) lo = 0x90;
        else if (c == 0xf4) hi = 0x8f;
        if (p[1] < lo || p[1] > hi)
            return 0;
        for (size_t i = 2; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

size_t store__session_key(const char *id, size_t len, uint8_t key[STORE__SESSION_KEY_MAX])
{
    if (len <= STORE__SESSION_KEY_MAX) {
        memcpy(key, id, len);
        return len;
    }
    memcpy(key, id, STORE__SESSION_KEY_CUT);
    key[STORE__SESSION_KEY_CUT] = 0xff;
    if (store__sha256(id, len, key + STORE__SESSION_KEY_CUT + 1))
        return 0;
    return STORE__SESSION_KEY_MAX;
}

/* The meta record 'key' into 'v' ({0, NULL} when absent), checked to be whole 'unit'-byte
 * items: anything else is damage (REEL_ECORRUPT, naming the record). */
int store__meta_get(store_t *s, MDB_txn *txn, const char *key, size_t unit, MDB_val *v)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc = mdb_get(txn, s->db_meta, &k, v);
    if (rc == MDB_NOTFOUND) {
        v->mv_size = 0, v->mv_data = NULL;
        return REEL_OK;
    }
    if (rc)
        return store__err_from_mdb(rc);
    if (v->mv_size == 0 || v->mv_size % unit) {
        store__set_error("meta record '%s' is %zu bytes, not items of %zu", key, v->mv_size,
                         unit);
        return REEL_ECORRUPT;
    }
    return REEL_OK;
}

/* ---- map growth ---- */


int store__grow(store_t *s, int adopt, size_t need)
{
    pthread_rwlock_wrlock(&s->resize_lock);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t size = 0; /* 0 = adopt the size another process set */
    if (!adopt) {
        size = info.me_mapsize * 2;
        if (size < info.me_mapsize + need + (1u << 20))
            size = info.me_mapsize + need + (1u << 20);
    }
    int rc = mdb_env_set_mapsize(s->env, size);
    pthread_rwlock_unlock(&s->resize_lock);
    if (rc) {
        store__set_error("cannot grow the map to %zu bytes: %s", size, mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    store__guard_map(s); /* the map may have moved */
    pthread_mutex_lock(&s->mu);
    s->stats.map_grows += !adopt;
    pthread_mutex_unlock(&s->mu);
    return REEL_OK;
}

int store__txn_begin(store_t *s, unsigned flags, MDB_txn **txn)
{
    for (int tries = 0;; tries++) {
        int rc = mdb_txn_begin(s->env, NULL, flags, txn);
        if (rc != MDB_MAP_RESIZED || tries > 8)
            return rc;
        /* Another process grew the map: adopt its size. Readers of this process hold the
         * resize lock shared, so the caller must not; store_read_begin() retries. */
        if ((rc = store__grow(s, 1, 0)))
            return rc;
    }
}

static int find_map(store_t *s, uintptr_t *start, uintptr_t *end);

/* ---- open / close ---- */

/* Opens reel's databases; 'flags' MDB_CREATE only for a new store, so that a store whose
 * main database lost a name (a damaged page) is refused rather than given a new, empty
 * database under it. */
static int open_dbs(store_t *s, MDB_txn *txn, unsigned f)
{
    unsigned ixdup = s->parts_off & STORE__PART_IXDUP ? 0 : STORE__IXDUP_FLAGS;
    int rc;
    if ((rc = mdb_dbi_open(txn, "meta", f, &s->db_meta)) ||
        (rc = mdb_dbi_open(txn, "sessions", f, &s->db_sessions)) ||
        (rc = mdb_dbi_open(txn, "session_ids", f, &s->db_session_ids)) ||
        (rc = mdb_dbi_open(txn, "events", f, &s->db_events)) ||
        (rc = mdb_dbi_open(txn, "event_ids", f, &s->db_event_ids)) ||
        (rc = mdb_dbi_open(txn, "seqs", f ? f | ixdup : 0, &s->db_seqs)))
        return rc;
    /* A new store's per-session trees (FORMAT.md 21.1): created here, opened again by
     * check_format() once the format record says the store uses them. */
    if (f && ixdup && (rc = mdb_dbi_open(txn, "event_uuids", f | ixdup, &s->db_event_uuids)))
        return rc;
    if (f && ixdup && !(s->parts_off & STORE__PART_IXTAIL) &&
        (rc = mdb_dbi_open(txn, "ixtail", f, &s->db_ixtail)))
        return rc;
    /* Format 2; a format-1 store has none until check_format() upgrades it. */
    rc = mdb_dbi_open(txn, "recent", f, &s->db_recent);
    s->has_recent = rc == MDB_SUCCESS;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    /* Format 4, section 13: the change log, made by the first read-write open of this
     * build (empty until a record changes); a read-only open of an older store has none. */
    rc = mdb_dbi_open(txn, "changes", s->read_only ? 0 : MDB_CREATE, &s->db_changes);
    s->has_changes = rc == MDB_SUCCESS;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    /* Format 4, optional: made by the first consumer change (consumer.c), never here. */
    return store__consumers_open(s, txn);
}

static const char *const db_names[] = {"meta",      "sessions", "session_ids", "events",
                                       "seqs",      "event_ids", "recent",     "changes",
                                       "consumers", "event_uuids", "ixtail"};

/* 1 if the environment holds only reel's databases, all empty (a store being created). */
static int is_new_store(store_t *s, MDB_txn *txn)
{
    MDB_dbi main;
    MDB_cursor *c;
    MDB_val k, v;
    if (mdb_dbi_open(txn, NULL, 0, &main) || mdb_cursor_open(txn, main, &c))
        return 0;
    int fresh = 1;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); fresh && rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        int ours = 0;
        for (size_t i = 0; i < sizeof db_names / sizeof db_names[0]; i++)
            ours |= k.mv_size == strlen(db_names[i]) && !memcmp(k.mv_data, db_names[i], k.mv_size);
        fresh = ours;
    }
    mdb_cursor_close(c);
    MDB_stat st;
    if (fresh && (mdb_stat(txn, s->db_sessions, &st) || st.ms_entries ||
                  mdb_stat(txn, s->db_events, &st) || st.ms_entries))
        fresh = 0;
    return fresh;
}

/* The optional parts a new store gets: every one this build writes, but the per-session
 * trees only if 'seqs' was made with their flags (an environment whose empty databases an
 * older build made keeps the older layout), and none the options turn off. */
static uint32_t new_parts(store_t *s, MDB_txn *txn)
{
    unsigned flags = 0;
    uint32_t parts = STORE__PARTS_NEW & ~s->parts_off;
    if (mdb_dbi_flags(txn, s->db_seqs, &flags) || (flags & STORE__IXDUP_FLAGS) != STORE__IXDUP_FLAGS ||
        mdb_dbi_open(txn, "event_uuids", 0, &s->db_event_uuids))
        parts &= ~STORE__PART_IXDUP;
    if (!(parts & STORE__PART_IXDUP) || mdb_dbi_open(txn, "ixtail", 0, &s->db_ixtail))
        parts &= ~STORE__PART_IXTAIL;
    return parts;
}

/* Opens 'ixtail' of a store with STORE__PART_IXTAIL (which needs STORE__PART_IXDUP). */
static int open_ixtail(store_t *s, MDB_txn *txn, const char *dir)
{
    if (!(s->parts & STORE__PART_IXTAIL))
        return REEL_OK;
    int rc = s->parts & STORE__PART_IXDUP ? mdb_dbi_open(txn, "ixtail", 0, &s->db_ixtail) : EINVAL;
    if (rc == 0)
        return REEL_OK;
    store__set_error("'%s' is damaged: its format record names index tails (part 0x%x) but %s; "
                     "run `reel verify` and restore from a backup", dir, STORE__PART_IXTAIL,
                     rc == EINVAL ? "not per-session index trees (part 0x4)"
                                  : "'ixtail' is missing");
    return rc == EINVAL || rc == MDB_NOTFOUND ? REEL_ECORRUPT : store__err_from_mdb(rc);
}

/* Opens 'event_uuids' of a store with STORE__PART_IXDUP, checking that both trees have
 * the flags the part means, and that a store without it has a plain 'seqs': a format
 * record and trees that disagree are damage, never read in the wrong layout. */
static int open_ixdup(store_t *s, MDB_txn *txn, const char *dir)
{
    unsigned fs = 0, fu = 0;
    if (!(s->parts & STORE__PART_IXDUP)) { /* then 'seqs' must be the older, plain tree */
        if (mdb_dbi_flags(txn, s->db_seqs, &fs) || !(fs & MDB_DUPSORT))
            return open_ixtail(s, txn, dir);
        store__set_error("'%s' is damaged: its 'seqs' database has per-session trees (part "
                         "0x%x) that its format record does not name; run `reel verify` "
                         "and restore from a backup", dir, STORE__PART_IXDUP);
        return REEL_ECORRUPT;
    }
    int rc = mdb_dbi_open(txn, "event_uuids", 0, &s->db_event_uuids);
    if (!rc && ((rc = mdb_dbi_flags(txn, s->db_seqs, &fs)) ||
                (rc = mdb_dbi_flags(txn, s->db_event_uuids, &fu))))
        return store__err_from_mdb(rc);
    if (rc || (fs & STORE__IXDUP_FLAGS) != STORE__IXDUP_FLAGS ||
        (fu & STORE__IXDUP_FLAGS) != STORE__IXDUP_FLAGS) {
        store__set_error("'%s' is damaged: its format record names per-session index trees "
                         "(part 0x%x) but %s; run `reel verify` and restore from a backup", dir,
                         STORE__PART_IXDUP, rc ? "'event_uuids' is missing"
                                               : "'seqs' or 'event_uuids' has other flags");
        return REEL_ECORRUPT;
    }
    return open_ixtail(s, txn, dir);
}

/* Checks (or, in a new store, writes) the format-version record. A store is only created
 * where data.mdb did not exist before this open ('had_file' 0; also when LMDB never
 * committed a transaction in it, a creation cut short), or with 'create': an existing
 * data.mdb without a store (emptied, truncated, another program's) is refused,
 * since a new store there would give out again the sequences and positions clients of
 * the old one already saw (issue 14, finding 5). */
static int check_format(store_t *s, MDB_txn *txn, const char *dir, int had_file, int create)
{
    MDB_val k = {6, "format"}, v;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    if (rc == MDB_NOTFOUND && had_file && !create) {
        store__set_error("'%s/data.mdb' exists but holds no reel store (no format record); "
                         "restore it from a backup, or run `reel serve --create` to make a new, "
                         "empty store there", dir);
        return REEL_EFORMAT;
    }
    if (rc == MDB_NOTFOUND && !s->read_only && is_new_store(s, txn)) {
        s->parts = new_parts(s, txn);
        rc = store__put_format(s, txn);
        if (rc)
            store__set_error("cannot initialise '%s': %s", dir, mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    if (rc) {
        store__set_error("'%s' is not a reel data directory (no format record)", dir);
        return REEL_EFORMAT;
    }
    const uint8_t *p = v.mv_data;
    uint32_t ver = v.mv_size == 4 || v.mv_size == 8
                       ? (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3] : 0;
    /* Optional parts an older format-4 build must not open (FORMAT.md 18.1). */
    s->parts = v.mv_size == 8 ? (uint32_t)p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7] : 0;
    if (v.mv_size == 8 && (ver != STORE_FORMAT_VERSION || (s->parts & ~STORE__PARTS_KNOWN))) {
        store__set_error("data directory '%s' has format version %u with optional parts 0x%x; "
                         "this build of reel knows parts 0x%x of version %u", dir, ver,
                         (unsigned)s->parts, STORE__PARTS_KNOWN, STORE_FORMAT_VERSION);
        return REEL_EFORMAT;
    }
    if (ver >= 1 && ver <= STORE_FORMAT_VERSION && (rc = open_ixdup(s, txn, dir)))
        return rc;
    if (ver == 1 && !s->has_recent) /* read-only: read it as it is, with defaults */
        return s->read_only ? REEL_OK : store__upgrade(s, txn, dir);
    if (ver >= 2 && ver <= STORE_FORMAT_VERSION && !s->has_recent) {
        store__set_error("'%s' is damaged: the 'recent' database is missing; run `reel "
                         "verify` and restore from a backup", dir);
        return REEL_ECORRUPT;
    }
    if ((ver == 2 || ver == 3) && !s->read_only) { /* 3 and 4 only add optional parts */
        rc = store__put_format(s, txn);
        if (rc)
            store__set_error("cannot upgrade '%s' from format %u to %d: %s", dir, ver,
                             STORE_FORMAT_VERSION, mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    if (ver != STORE_FORMAT_VERSION && ver != 2 && ver != 3) {
        store__set_error("data directory '%s' has format version %u; this build of reel "
                         "reads versions 1 to %u", dir, ver, STORE_FORMAT_VERSION);
        return REEL_EFORMAT;
    }
    return REEL_OK;
}

/* A data.mdb shorter than its newest transaction's pages (a torn copy, a truncated file)
 * would make LMDB fault with SIGBUS on the first read of a missing page: refuse it. */
static int check_size(store_t *s, const char *dir)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fs;
    int fd;
    if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st) ||
        mdb_env_get_fd(s->env, &fd) || fstat(fd, &fs))
        return REEL_OK; /* nothing to compare with */
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)fs.st_size >= need)
        return REEL_OK;
    store__set_error("'%s/data.mdb' is truncated: %llu bytes, but its last transaction uses "
                     "%llu; restore it from a backup or an export", dir,
                     (unsigned long long)fs.st_size, (unsigned long long)need);
    return REEL_ECORRUPT;
}

/* The checks of open_env() that read pages, run under STORE__GUARD: a damaged page met
 * while opening refuses the store (REEL_ECORRUPT) instead of aborting. */
static int open_checks_format(store_t *s, MDB_txn *txn, const char *dir, int had_file,
                              int create)
{
    MDB_dbi meta;
    int rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == MDB_SUCCESS) { /* a store: every database must be there */
        if ((rc = open_dbs(s, txn, 0))) {
            store__set_error("'%s' is damaged: a database is missing (%s); run `reel verify` "
                             "and restore from a backup", dir, mdb_strerror(rc));
            return rc == MDB_NOTFOUND ? REEL_ECORRUPT : store__err_from_mdb(rc);
        }
        return check_format(s, txn, dir, had_file, create);
    }
    MDB_envinfo info;
    if (had_file && mdb_env_info(s->env, &info) == 0 && info.me_last_txnid == 0)
        had_file = 0; /* LMDB's initial meta pages only: a creation that failed to commit */
    if (rc == MDB_NOTFOUND && had_file && !create) {
        store__set_error("'%s/data.mdb' exists but holds no reel store (empty, another "
                         "program's, or its names are damaged); restore it from a backup, or "
                         "run `reel serve --create` to make a new, empty store there", dir);
        return REEL_EFORMAT;
    }
    if (rc == MDB_NOTFOUND && s->read_only) {
        store__set_error("'%s' is not a reel data directory (no 'meta' database)", dir);
        return REEL_EFORMAT;
    }
    if (rc != MDB_NOTFOUND || (rc = open_dbs(s, txn, MDB_CREATE))) {
        int err = store__err_from_mdb(rc);
        store__set_error("'%s' %s: %s", dir, err == REEL_ECORRUPT ? "is damaged (run `reel "
                         "verify`; restore from a backup)" : "is not a reel data directory",
                         mdb_strerror(rc));
        return err;
    }
    return check_format(s, txn, dir, had_file, create);
}

/* Loads the meta "secret", making it first in a read-write open that finds none. */
static int load_secret(store_t *s, MDB_txn *txn, const char *dir)
{
    MDB_val k = {6, "secret"}, v;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    if (rc == 0 && v.mv_size == STORE_SECRET_LEN) {
        memcpy(s->secret, v.mv_data, STORE_SECRET_LEN);
        s->has_secret = 1;
        return REEL_OK;
    }
    if ((rc && rc != MDB_NOTFOUND) || (rc == 0 && !s->read_only)) {
        store__set_error("'%s' is damaged: its secret record is %s", dir,
                         rc ? mdb_strerror(rc) : "not 32 bytes");
        return rc ? store__err_from_mdb(rc) : REEL_ECORRUPT;
    }
    if (s->read_only)
        return REEL_OK; /* an older store read as it is */
    if (getrandom(s->secret, STORE_SECRET_LEN, 0) != STORE_SECRET_LEN) {
        store__set_error("cannot make the secret of '%s': %s", dir, strerror(errno));
        return REEL_EIO;
    }
    v.mv_size = STORE_SECRET_LEN;
    v.mv_data = s->secret;
    if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0))) {
        store__set_error("cannot initialise '%s': %s", dir, mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    s->has_secret = 1;
    return REEL_OK;
}

int store_secret(const store_t *s, uint8_t out[STORE_SECRET_LEN])
{
    if (!s->has_secret)
        return REEL_ENOT_FOUND;
    memcpy(out, s->secret, STORE_SECRET_LEN);
    return REEL_OK;
}

static int open_checks(store_t *s, MDB_txn *txn, const char *dir, int had_file, int create)
{
    int rc = open_checks_format(s, txn, dir, had_file, create);
    return rc ? rc : load_secret(s, txn, dir);
}

/* 1 when 'dir'/data.mdb exists; an empty one is refused here unless 'create' (LMDB would
 * silently make a new environment in it). An empty file can also be another process's
 * creation under way: LMDB writes the first pages right after it creates the file (under
 * its exclusive lock, which this stat cannot wait for), so an empty file is only believed
 * once it has stayed empty for a while. */
static int existing_file(const char *dir, int create, int *had_file)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    *had_file = stat(path, &st) == 0;
    for (int i = 0; i < 50 && *had_file && st.st_size == 0 && !create; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        *had_file = stat(path, &st) == 0;
    }
    if (*had_file && st.st_size == 0 && !create) {
        store__set_error("'%s' is empty: the store it held is gone; restore it from a backup, "
                         "or run `reel serve --create` to make a new, empty store there", path);
        return REEL_EFORMAT;
    }
    return REEL_OK;
}

static int open_env(store_t *s, const char *dir, const store_options_t *opt)
{
    int rc, had_file;
    if ((rc = existing_file(dir, opt->create, &had_file)))
        return rc;
    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 16)) ||
        (rc = mdb_env_set_maxreaders(s->env, MAX_READERS)) ||
        (rc = mdb_env_set_mapsize(s->env, opt->map_size ? opt->map_size : DEFAULT_MAP))) {
        store__set_error("lmdb: %s", mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    /* MDB_NOTLS: reader slots belong to transactions, not threads, so the many short reads
     * of a server's threads never depend on thread-local state. Never NOMETASYNC or
     * WRITEMAP (see docs/FORMAT.md). */
    /* The journal turns MDB_NOSYNC on only once it runs (jfile.c): the open's own commit
     * (a new store, an upgrade) is flushed like any other. */
    unsigned flags = MDB_NOTLS | (s->no_sync ? MDB_NOSYNC : 0) | (s->read_only ? MDB_RDONLY : 0);
    rc = mdb_env_open(s->env, dir, flags, 0644);
    if ((rc == EACCES || rc == EROFS) && s->read_only) {
        /* A directory this user cannot write (a snapshot, a read-only mount, another user's
         * store): LMDB cannot take its lock file, so read without it. Such a reader does not
         * hold back a writer's page reuse, which only matters if a writer runs meanwhile
         * (docs/FORMAT.md "Read-only copies"). */
        mdb_env_close(s->env);
        if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 16)) ||
            (rc = mdb_env_set_mapsize(s->env, opt->map_size ? opt->map_size : DEFAULT_MAP)) ||
            (rc = mdb_env_open(s->env, dir, flags | MDB_NOLOCK, 0644)) == 0)
            s->lockless = 1;
    }
    if (rc) {
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) {
            store__set_error("'%s/data.mdb' is not a reel store (%s); restore it from a "
                             "backup, or move it away", dir, mdb_strerror(rc));
            return REEL_EFORMAT;
        }
        store__set_error("cannot open '%s': %s", dir, mdb_strerror(rc));
        return rc == ENOENT ? REEL_EFORMAT : store__err_from_mdb(rc);
    }
    store__guard_install(s);
    if ((rc = check_size(s, dir)))
        return rc;
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* slots of processes killed while reading */
    MDB_txn *txn;
    for (int tries = 0;; tries++) {
        if ((rc = store__txn_begin(s, s->read_only ? MDB_RDONLY : 0, &txn))) {
            store__set_error("cannot begin a transaction on '%s': %s", dir, mdb_strerror(rc));
            return store__err_from_mdb(rc);
        }
        s->upgrade_full = 0;
        STORE__GUARD(s, rc, open_checks(s, txn, dir, had_file, opt->create));
        if (!rc)
            break;
        mdb_txn_abort(txn);
        /* The format-1 upgrade needs more map than the directory had: grow, run it again. */
        if (!s->upgrade_full || tries == 8 || store__grow(s, 0, 64u << 20))
            return rc;
    }
    if ((rc = mdb_txn_commit(txn))) {
        store__set_error("cannot initialise '%s': %s", dir, mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    if (s->upgrade_note[0])
        fprintf(stderr, "%s\n", s->upgrade_note);
    return REEL_OK;
}

int store_open(const char *dir, const store_options_t *opt, store_t **out)
{
    store_options_t defaults = {0};
    if (!opt)
        opt = &defaults;
    *out = NULL;
    if (!opt->read_only && mkdir(dir, 0755) && errno != EEXIST) {
        store__set_error("cannot create '%s': %s", dir, strerror(errno));
        return errno == ENOSPC ? REEL_EFULL : REEL_EIO;
    }
    store_t *s = calloc(1, sizeof *s);
    if (!s)
        return REEL_ENOMEM;
    s->read_only = opt->read_only;
    s->no_sync = opt->no_sync;
    s->parts_off = opt->parts_off;
    /* For the HTTP and CLI tests of the older layouts (store.h, store_options_t.parts_off). */
    const char *off = getenv("REEL_STORE_PARTS_OFF");
    if (off && *off)
        s->parts_off |= (uint32_t)strtoul(off, NULL, 0);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* Writer preference: a waiting map growth must not starve behind a stream of reads. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->resize_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_mutex_init(&s->zd_mu, NULL);
    pthread_cond_init(&s->zd_cv, NULL);
    pthread_mutex_init(&s->vis_mu, NULL);
    s->vis_pos = STORE_VISIBLE_ALL;
    s->vis_idx = UINT32_MAX;
    s->zd_auto = !opt->no_zdict;
    const char *env_journal = getenv("REEL_JOURNAL");
    int journal = !s->read_only && (opt->journal || (env_journal && !strcmp(env_journal, "1")));
    int rc = store__journal_open(s, dir, journal);
    if (!rc)
        rc = open_env(s, dir, opt);
    if (!rc && journal)
        rc = store__journal_start(s, dir);
    else if (!rc && !s->read_only && (s->parts & STORE__PART_JOURNAL))
        rc = store__journal_clear(s); /* a journal closed between its two last steps */
    if (!rc)
        rc = store__zdict_open(s);
    if (!rc)
        rc = store__cache_open(s, opt);
    if (!rc && !s->read_only) {
        if (pthread_create(&s->committer, NULL, store__committer_main, s)) {
            store__set_error("cannot start the committer thread");
            rc = REEL_ENOMEM;
        } else {
            s->started = 1;
        }
    }
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return REEL_OK;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->committer, NULL);
    store__journal_close(s); /* after the committer: its last groups become durable */
    store__zdict_release(s); /* joins a trainer, which may be reading */
    store__cache_free(s);
    if (s->env)
        mdb_env_close(s->env);
    pthread_cond_destroy(&s->zd_cv);
    pthread_mutex_destroy(&s->zd_mu);
    pthread_mutex_destroy(&s->vis_mu);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    pthread_rwlock_destroy(&s->resize_lock);
    free(s);
}

void store__guard_map(store_t *s)
{
    uintptr_t a, b;
    if (find_map(s, &a, &b) == 0)
        s->map_lo = a, s->map_hi = b;
}

/* LMDB does not tell where it mapped the file (me_mapaddr is only set with MDB_FIXEDMAP):
 * find the mapping of data.mdb's inode in /proc/self/maps. */
static int find_map(store_t *s, uintptr_t *start, uintptr_t *end)
{
    int fd;
    struct stat st;
    if (mdb_env_get_fd(s->env, &fd) || fstat(fd, &st))
        return -1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int found = -1;
    while (found && fgets(line, sizeof line, f)) {
        unsigned long a, b, ino;
        char perms[8], dev[16];
        unsigned long long off;
        if (sscanf(line, "%lx-%lx %7s %llx %15s %lu", &a, &b, perms, &off, dev, &ino) == 6 &&
            ino == (unsigned long)st.st_ino && strstr(line, "data.mdb")) {
            *start = a, *end = b;
            found = 0;
        }
    }
    fclose(f);
    return found;
}

void store_drop_mapped_pages(store_t *s)
{
    uintptr_t a, b;
    pthread_rwlock_rdlock(&s->resize_lock); /* the map must not move meanwhile */
    if (find_map(s, &a, &b) == 0)
        madvise((void *)a, b - a, MADV_DONTNEED);
    pthread_rwlock_unlock(&s->resize_lock);
}

void store_get_stats(store_t *s, store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->failed = s->failed;
    pthread_mutex_unlock(&s->mu);
    MDB_envinfo info;
    MDB_stat st;
    pthread_rwlock_rdlock(&s->resize_lock); /* both read through the map (store_last_txn) */
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    pthread_rwlock_unlock(&s->resize_lock);
    out->map_size = info.me_mapsize;
    out->used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}
