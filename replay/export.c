/* export.c -- streamed exports (contract in replay.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "replay/replay_int.h"

#define CHUNK_EVENTS 2000
#define CHUNK_BYTES (1u << 20)
#define SESSIONS_PER_READ 256
#define DROP_PAGES_EVERY (8u << 20) /* JSON bytes between store_drop_mapped_pages() */
#define CHECK_LINES 100             /* a check record after this many lines ... */
#define CHECK_BYTES (64u << 10)     /* ... or this many bytes, whichever comes first */

enum phase { PH_HEADER, PH_RECORDS, PH_EVENTS, PH_TRAILER, PH_DONE };

struct replay_export {
    store_t *s;
    replay_export_opts_t opt;
    char session[STORE_SESSION_ID_MAX + 1];
    int phase;
    uint64_t tail;       /* last position covered */
    uint64_t snap;       /* the tail when the export began: session records are cut to it */
    uint64_t last;       /* cursor: last sequence (one session) or position (all) done */
    uint64_t last_seq;   /* one session: its last sequence at the start */
    char cursor[STORE_SESSION_ID_MAX + 1]; /* records: last session id written */
    size_t cursor_len;
    char **filter;       /* session filter, sorted; NULL = all */
    size_t n_filter;
    char **seen;         /* filtered export: sessions whose record was written (hash set) */
    size_t seen_cap, seen_n;
    int records_up_front;
    ZSTD_CCtx *z;
    store_buf_t json;    /* JSON of the current chunk */
    uint64_t next_drop;  /* json_bytes at which to drop mapped pages again */
    uint64_t events, sessions, json_bytes, out_bytes;
    EVP_MD_CTX *sha;     /* SHA-256 of every byte written so far */
    uint64_t lines;      /* lines written, check records included */
    uint64_t check_lines, check_bytes; /* since the last check record */
};

/* An OpenSSL call failed (it allocates only in creating contexts): drop the error it
 * queued with heap-allocated text, as store__sha256() does, and report out-of-memory. */
static int openssl_failed(void)
{
    ERR_clear_error();
    return REEL_ENOMEM;
}

/* ---- session sets ---- */

static unsigned hash_str(const char *p, size_t n)
{
    unsigned h = 2166136261u;
    while (n--)
        h = (h ^ (unsigned char)*p++) * 16777619u;
    return h;
}

/* Adds 'id' to the seen set; returns 1 if it was new, -1 on out-of-memory. */
static int seen_add(replay_export_t *ex, const char *id, size_t len)
{
    if (ex->seen_n * 2 >= ex->seen_cap) {
        size_t cap = ex->seen_cap ? ex->seen_cap * 2 : 64;
        char **t = calloc(cap, sizeof *t);
        if (!t)
            return -1;
        for (size_t i = 0; i < ex->seen_cap; i++) {
            if (!ex->seen[i])
                continue;
            size_t j = hash_str(ex->seen[i], strlen(ex->seen[i])) & (cap - 1);
            while (t[j])
                j = (j + 1) & (cap - 1);
            t[j] = ex->seen[i];
        }
        free(ex->seen);
        ex->seen = t;
        ex->seen_cap = cap;
    }
    size_t j = hash_str(id, len) & (ex->seen_cap - 1);
    for (; ex->seen[j]; j = (j + 1) & (ex->seen_cap - 1))
        if (strlen(ex->seen[j]) == len && !memcmp(ex->seen[j], id, len))
            return 0;
    if (!(ex->seen[j] = strndup(id, len)))
        return -1;
    ex->seen_n++;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int in_filter(const replay_export_t *ex, const char *id, size_t len)
{
    if (!ex->filter)
        return 1;
    char key[STORE_SESSION_ID_MAX + 1];
    memcpy(key, id, len);
    key[len] = 0;
    const char *k = key;
    return bsearch(&k, ex->filter, ex->n_filter, sizeof *ex->filter, cmp_str) != NULL;
}

static int parse_filter(replay_export_t *ex, const char *list)
{
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!store_session_id_valid(p, len))
            return REEL_EINVALID_PARAMETER;
        char **f = realloc(ex->filter, (ex->n_filter + 1) * sizeof *f);
        if (!f)
            return REEL_ENOMEM;
        ex->filter = f;
        if (!(f[ex->n_filter++] = strndup(p, len)))
            return REEL_ENOMEM;
        p += len + (comma ? 1 : 0);
    }
    if (ex->filter)
        qsort(ex->filter, ex->n_filter, sizeof *ex->filter, cmp_str);
    return REEL_OK;
}

/* ---- lifecycle ---- */

static int start(replay_export_t *ex)
{
    store_read_t r;
    int rc = store_read_begin(ex->s, &r);
    if (rc)
        return rc;
    rc = store_tail_position(&r, &ex->tail);
    if (!rc && ex->opt.session) {
        store_session_t rec;
        rc = store_session_get(&r, ex->session, ex->opt.session_len, &rec);
        ex->last_seq = rec.last_sequence;
        if (ex->opt.until_sequence && ex->opt.until_sequence < ex->last_seq)
            ex->last_seq = ex->opt.until_sequence;
    }
    store_read_end(&r);
    ex->snap = ex->tail;
    if (ex->opt.until && ex->opt.until < ex->tail)
        ex->tail = ex->opt.until;
    ex->last = ex->opt.session ? 0 : ex->opt.after;
    return rc;
}

int replay_export_new(store_t *s, const replay_export_opts_t *opt, replay_export_t **out)
{
    static const replay_export_opts_t defaults = REPLAY_EXPORT_DEFAULT;
    *out = NULL;
    if (!opt)
        opt = &defaults;
    if (opt->compress && (opt->level < 1 || opt->level > ZSTD_maxCLevel()))
        return REEL_EINVALID_PARAMETER;
    replay_export_t *ex = calloc(1, sizeof *ex);
    if (!ex)
        return REEL_ENOMEM;
    ex->s = s;
    ex->opt = *opt;
    int rc = REEL_OK;
    if (opt->session) {
        if (!store_session_id_valid(opt->session, opt->session_len))
            rc = REEL_EINVALID_SESSION_ID;
        else
            memcpy(ex->session, opt->session, opt->session_len);
        ex->opt.session = ex->session;
    } else if (opt->sessions && *opt->sessions) {
        rc = parse_filter(ex, opt->sessions);
    }
    ex->opt.sessions = NULL; /* borrowed: parsed into 'filter' */
    /* Without a range or filter, every record goes first (sessions without events too);
     * otherwise a record is written before the first event of its session. */
    ex->records_up_front = !opt->session && !ex->filter && !opt->after && !opt->until &&
                           !opt->since_ms && !opt->before_ms;
    if (!rc && opt->compress) {
        if (!(ex->z = ZSTD_createCCtx()))
            rc = REEL_ENOMEM;
        else {
            ZSTD_CCtx_setParameter(ex->z, ZSTD_c_compressionLevel, opt->level);
            ZSTD_CCtx_setParameter(ex->z, ZSTD_c_checksumFlag, 1); /* XXH64 of the content */
            /* One worker thread compresses while this one renders JSON, as the zstd CLI
             * overlaps reading with compressing (ignored by a libzstd without threads). */
            ZSTD_CCtx_setParameter(ex->z, ZSTD_c_nbWorkers, 1);
            ZSTD_CCtx_setParameter(ex->z, ZSTD_c_jobSize, 2u << 20); /* bounds its buffers */
        }
    }
    if (!rc && (!(ex->sha = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(ex->sha, EVP_sha256(), NULL)))
        rc = openssl_failed();
    if (!rc)
        rc = start(ex);
    if (rc) {
        replay_export_free(ex);
        return rc;
    }
    *out = ex;
    return REEL_OK;
}

void replay_export_free(replay_export_t *ex)
{
    if (!ex)
        return;
    for (size_t i = 0; i < ex->n_filter; i++)
        free(ex->filter[i]);
    free(ex->filter);
    for (size_t i = 0; i < ex->seen_cap; i++)
        free(ex->seen[i]);
    free(ex->seen);
    ZSTD_freeCCtx(ex->z);
    EVP_MD_CTX_free(ex->sha);
    store_buf_release(&ex->json);
    free(ex);
}

void replay_export_counts(const replay_export_t *ex, uint64_t *events, uint64_t *sessions,
                          uint64_t *json_bytes, uint64_t *out_bytes)
{
    if (events)
        *events = ex->events;
    if (sessions)
        *sessions = ex->sessions;
    if (json_bytes)
        *json_bytes = ex->json_bytes;
    if (out_bytes)
        *out_bytes = ex->out_bytes;
}

/* ---- integrity (docs/REPLAY.md "Integrity") ---- */

/* The SHA-256 of every byte written so far, in hex; the running digest goes on. */
static int digest_hex(replay_export_t *ex, char hex[2 * STORE_HASH_LEN + 1])
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_MD_CTX_copy_ex(c, ex->sha) && EVP_DigestFinal_ex(c, d, &n) &&
             n == STORE_HASH_LEN;
    EVP_MD_CTX_free(c);
    if (!ok)
        return openssl_failed();
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return REEL_OK;
}

/* Adds the line that starts at 'mark' in ex->json (its '\n' included) to the digest. */
static int digest_line(replay_export_t *ex, size_t mark)
{
    if (store_buf_failed(&ex->json))
        return REEL_ENOMEM;
    size_t n = ex->json.len - mark;
    if (!EVP_DigestUpdate(ex->sha, ex->json.data + mark, n))
        return openssl_failed();
    ex->lines++;
    ex->check_bytes += n;
    return REEL_OK;
}

/* Called after each line: adds it to the digest, then writes a check record when
 * CHECK_LINES lines or CHECK_BYTES bytes went by since the last one. A check record holds
 * the number of lines before it and the SHA-256 of every byte before it, so an importer
 * finds a damaged block before it writes anything of it. */
static int line_done(replay_export_t *ex, size_t mark)
{
    char hex[2 * STORE_HASH_LEN + 1];
    int rc = digest_line(ex, mark);
    if (rc || (++ex->check_lines < CHECK_LINES && ex->check_bytes < CHECK_BYTES))
        return rc;
    if ((rc = digest_hex(ex, hex)))
        return rc;
    mark = ex->json.len;
    store_buf_printf(&ex->json, "{\"record\":\"check\",\"lines\":%llu,\"sha256\":\"%s\"}\n",
                     (unsigned long long)ex->lines, hex);
    ex->check_lines = 0;
    rc = digest_line(ex, mark);
    ex->check_bytes = 0;
    return rc;
}

/* ---- lines ---- */

static int record_line(replay_export_t *ex, const store_session_t *rec)
{
    store_buf_t *j = &ex->json;
    size_t mark = j->len;
    int rc = replay_write_session(j, rec);
    if (rc)
        return rc;
    /* {"id":... -> {"record":"session","id":... */
    static const char tag[] = "{\"record\":\"session\",";
    if (store_buf_reserve(j, sizeof tag))
        return REEL_ENOMEM;
    memmove(j->data + mark + sizeof tag - 1, j->data + mark + 1, j->len - mark - 1);
    memcpy(j->data + mark, tag, sizeof tag - 1);
    j->len += sizeof tag - 2;
    store_buf_putc(j, '\n');
    ex->sessions++;
    return line_done(ex, mark);
}

/* ---- session records as of the export's snapshot ---- */

/* A record is read in a later transaction than the one that fixed the export's end, so
 * appends made since then show in its counters (issue 14, finding 7). 'cut' rolls it back
 * to the snapshot using the events themselves, which never change once committed. */
struct cut {
    uint64_t pos;           /* probe: the position of the event found */
    uint64_t removed, bytes; /* events past the snapshot, and their stored bytes */
    uint64_t starts;        /* session.started among them */
    int64_t ended_ms;       /* time of the last session.ended among them, or -1 */
    int last_ended;         /* find_end: the last event seen is a session.ended */
};

static int is_type(const store_event_view_t *ev, const char *want)
{
    const char *type;
    size_t n;
    return !replay_event_type(ev, &type, &n) && n == strlen(want) && !memcmp(type, want, n);
}

/* Kept events: the last session.ended, and whether the last event is one. */
static int find_end(void *arg, const store_event_view_t *ev)
{
    struct cut *c = arg;
    c->last_ended = is_type(ev, "session.ended");
    if (c->last_ended)
        c->ended_ms = (int64_t)ev->time_ms;
    return 0;
}

static int probe_event(void *arg, const store_event_view_t *ev)
{
    ((struct cut *)arg)->pos = ev->position;
    return 1;
}

static int count_removed(void *arg, const store_event_view_t *ev)
{
    struct cut *c = arg;
    c->removed++;
    c->bytes += ev->stored_len;
    if (is_type(ev, "session.ended"))
        c->ended_ms = (int64_t)ev->time_ms;
    else if (is_type(ev, "session.started"))
        c->starts++;
    return 0;
}

/* The position of event 'seq' of 'rec' into '*pos'. */
static int position_of(store_read_t *r, const store_session_t *rec, uint64_t seq, uint64_t *pos)
{
    struct cut c = {0, 0, 0, 0, -1, 0};
    int rc = store_events_after(r, rec->id, rec->id_len, seq - 1, 1, probe_event, &c, NULL);
    if (rc == 1)
        rc = REEL_OK;
    else if (!rc)
        rc = REEL_ECORRUPT; /* the record names a sequence the session does not have */
    *pos = c.pos;
    return rc;
}

/* Rolls the counters of 'rec' (read in 'r') back to the export's snapshot position:
 * last_sequence, event_count, bytes, first_event_at, runs, status and an end that came
 * later. Its agent, native id, metadata, version and updated_at are as read: they have no
 * history. */
static int cut(replay_export_t *ex, store_read_t *r, store_session_t *rec)
{
    /* Events before first_sequence were trimmed: the search starts at the first kept one. */
    uint64_t pos, lo = rec->first_sequence ? rec->first_sequence - 1 : 0, hi = rec->last_sequence;
    if (rec->status == STORE_DELETED || !hi || !rec->event_count)
        return REEL_OK;
    int rc = position_of(r, rec, hi, &pos);
    if (rc || pos <= ex->snap)
        return rc;
    /* Positions grow with the sequence: find the last event at or before the snapshot,
     * keeping position(lo) <= snap < position(hi), event 0 being "before the first". */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((rc = position_of(r, rec, mid, &pos)))
            return rc;
        *(pos <= ex->snap ? &lo : &hi) = mid;
    }
    struct cut c = {0, 0, 0, 0, -1, 0};
    rc = store_events_after(r, rec->id, rec->id_len, lo, (size_t)(rec->last_sequence - lo),
                            count_removed, &c, NULL);
    if (rc)
        return rc;
    rec->last_sequence = lo;
    rec->event_count -= c.removed <= rec->event_count ? c.removed : rec->event_count;
    rec->bytes -= c.bytes <= rec->bytes ? c.bytes : rec->bytes;
    if (!lo)
        rec->first_event_ms = 0;
    rec->runs -= c.starts <= rec->runs ? c.starts : rec->runs;
    /* The usage summary has no history either, but it counts events past the snapshot:
     * left out (an import counts it again from the events it appends). */
    if (c.removed) {
        rec->model_len = 0;
        rec->input_tokens = rec->output_tokens = rec->cost_nusd = rec->turns = 0;
    }
    /* An event leaves its session ended if it is a session.ended, active otherwise: the
     * status at the snapshot is the last kept event's; an end past the snapshot gives way
     * to the last kept one (a walk of the kept events, only when a run ended meanwhile). */
    struct cut k = {0, 0, 0, 0, -1, 0};
    if (c.ended_ms >= 0 && rec->ended_ms == c.ended_ms) {
        rc = lo ? store_events_after(r, rec->id, rec->id_len, 0, (size_t)lo, find_end, &k, NULL)
                : REEL_OK;
        rec->ended_ms = k.ended_ms >= 0 ? k.ended_ms : 0;
    } else if (lo && lo >= rec->first_sequence) {
        rc = store_events_after(r, rec->id, rec->id_len, lo - 1, 1, find_end, &k, NULL);
    }
    rec->status = k.last_ended ? STORE_ENDED : STORE_ACTIVE;
    return rc;
}

struct rec_ctx {
    replay_export_t *ex;
    store_read_t *r;
};

static int take_record(void *arg, const store_session_t *rec)
{
    struct rec_ctx *c = arg;
    replay_export_t *ex = c->ex;
    store_session_t copy = *rec;
    memcpy(ex->cursor, rec->id, rec->id_len);
    ex->cursor_len = rec->id_len;
    int rc = cut(ex, c->r, &copy);
    return rc ? rc : record_line(ex, &copy);
}

struct ev_ctx {
    replay_export_t *ex;
    store_read_t *r;
    size_t n;
};

static int take_event(void *arg, const store_event_view_t *ev)
{
    struct ev_ctx *c = arg;
    replay_export_t *ex = c->ex;
    ex->last = ex->opt.session ? ev->sequence : ev->position;
    c->n++;
    if (!ex->opt.session && ev->position > ex->tail)
        return 1; /* past the end of the export */
    if (!in_filter(ex, ev->session, ev->session_len) ||
        (ex->opt.since_ms && (int64_t)ev->time_ms < ex->opt.since_ms) ||
        (ex->opt.before_ms && (int64_t)ev->time_ms >= ex->opt.before_ms))
        return 0;
    int rc;
    if (!ex->records_up_front && !ex->opt.session &&
        (rc = seen_add(ex, ev->session, ev->session_len))) {
        store_session_t rec;
        if (rc < 0)
            return REEL_ENOMEM;
        if ((rc = store_session_get(c->r, ev->session, ev->session_len, &rec)) ||
            (rc = cut(ex, c->r, &rec)) || (rc = record_line(ex, &rec)))
            return rc;
    }
    size_t mark = ex->json.len;
    if ((rc = replay_write_event(&ex->json, ev, REPLAY_RAW | ex->opt.flags)))
        return rc;
    store_buf_putc(&ex->json, '\n');
    ex->events++;
    if ((rc = line_done(ex, mark)))
        return rc;
    return ex->json.len >= CHUNK_BYTES ? 1 : 0;
}

/* One step of the state machine: appends JSON lines to ex->json. */
static int step(replay_export_t *ex)
{
    store_read_t r;
    int rc, more = 0;
    if (ex->phase == PH_HEADER) {
        size_t mark = ex->json.len;
        store_buf_printf(&ex->json, "{\"record\":\"export\",\"format\":%d,\"created_at\":",
                         REPLAY_EXPORT_FORMAT);
        replay_write_time(&ex->json, ex->opt.created_ms ? ex->opt.created_ms
                                                        : (int64_t)time(NULL) * 1000);
        if (!(ex->opt.flags & REPLAY_NO_POSITION))
            store_buf_printf(&ex->json, ",\"after\":%llu,\"until\":%llu",
                             (unsigned long long)(ex->opt.session ? 0 : ex->opt.after),
                             (unsigned long long)ex->tail);
        store_buf_puts(&ex->json, "}\n");
        ex->phase = ex->records_up_front || ex->opt.session ? PH_RECORDS : PH_EVENTS;
        return line_done(ex, mark);
    }
    if ((rc = store_read_begin(ex->s, &r)))
        return rc;
    if (ex->phase == PH_RECORDS && ex->opt.session) {
        store_session_t rec;
        if (!(rc = store_session_get(&r, ex->session, ex->opt.session_len, &rec)) &&
            !(rc = cut(ex, &r, &rec)))
            rc = record_line(ex, &rec);
        ex->phase = PH_EVENTS;
    } else if (ex->phase == PH_RECORDS) {
        struct rec_ctx c = {ex, &r};
        rc = store_sessions_list(&r, ex->cursor, ex->cursor_len, SESSIONS_PER_READ, take_record,
                                 &c, &more);
        if (!more)
            ex->phase = PH_EVENTS;
    } else if (ex->phase == PH_EVENTS) {
        struct ev_ctx c = {ex, &r, 0};
        uint64_t before = ex->last;
        if (ex->opt.session) {
            size_t room = ex->last_seq > ex->last ? (size_t)(ex->last_seq - ex->last) : 0;
            rc = room ? store_events_after(&r, ex->session, ex->opt.session_len, ex->last,
                                           room < CHUNK_EVENTS ? room : CHUNK_EVENTS, take_event,
                                           &c, &more)
                      : REEL_OK;
            if (rc == 1)
                rc = REEL_OK;
            if (ex->last >= ex->last_seq || (!c.n && ex->last == before))
                ex->phase = PH_TRAILER;
        } else {
            rc = ex->last < ex->tail ? store_feed_after(&r, ex->last, CHUNK_EVENTS, take_event,
                                                        &c, &more)
                                     : REEL_OK;
            if (rc == 1)
                rc = REEL_OK;
            if (ex->last >= ex->tail || (!more && c.n < CHUNK_EVENTS && ex->json.len < CHUNK_BYTES))
                ex->phase = PH_TRAILER;
        }
    } else if (ex->phase == PH_TRAILER) {
        char hex[2 * STORE_HASH_LEN + 1];
        if (!(rc = digest_hex(ex, hex))) {
            store_buf_printf(&ex->json, "{\"record\":\"end\",\"events\":%llu,\"sessions\":%llu,"
                             "\"lines\":%llu,\"sha256\":\"%s\"}\n",
                             (unsigned long long)ex->events, (unsigned long long)ex->sessions,
                             (unsigned long long)ex->lines, hex);
            ex->phase = PH_DONE;
            rc = store_buf_failed(&ex->json) ? REEL_ENOMEM : REEL_OK;
        }
    }
    store_read_end(&r);
    return rc;
}

static int emit(replay_export_t *ex, store_buf_t *out, int last)
{
    ex->json_bytes += ex->json.len;
    if (!ex->z) {
        store_buf_put(out, ex->json.data, ex->json.len);
        ex->out_bytes += ex->json.len;
        store_buf_clear(&ex->json);
        return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
    }
    ZSTD_inBuffer in = {ex->json.data, ex->json.len, 0};
    for (;;) {
        size_t room = ZSTD_CStreamOutSize();
        if (store_buf_reserve(out, room))
            return REEL_ENOMEM;
        ZSTD_outBuffer o = {out->data + out->len, room, 0};
        size_t left = ZSTD_compressStream2(ex->z, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return REEL_EINTERNAL;
        out->len += o.pos;
        ex->out_bytes += o.pos;
        if (last ? left == 0 : in.pos == in.size)
            break;
    }
    store_buf_clear(&ex->json);
    return REEL_OK;
}

int replay_export_next(replay_export_t *ex, store_buf_t *out, int *done)
{
    *done = 0;
    if (ex->json_bytes >= ex->next_drop) { /* keep RSS flat on exports larger than memory */
        store_drop_mapped_pages(ex->s);
        ex->next_drop = ex->json_bytes + DROP_PAGES_EVERY;
    }
    int rc = REEL_OK;
    while (ex->phase != PH_DONE && ex->json.len < CHUNK_BYTES && !rc)
        rc = step(ex);
    if (!rc)
        rc = emit(ex, out, ex->phase == PH_DONE);
    if (!rc && ex->phase == PH_DONE)
        *done = 1;
    return rc;
}
