/* export.c -- streamed exports (contract in replay.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "replay/replay_int.h"

#define CHUNK_EVENTS 2000
#define CHUNK_BYTES (1u << 20)
#define SESSIONS_PER_READ 256
#define DROP_PAGES_EVERY (8u << 20) /* JSON bytes between store_drop_mapped_pages() */

enum phase { PH_HEADER, PH_RECORDS, PH_EVENTS, PH_TRAILER, PH_DONE };

struct replay_export {
    store_t *s;
    replay_export_opts_t opt;
    char session[STORE_SESSION_ID_MAX + 1];
    int phase;
    uint64_t tail;       /* last position covered */
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
};

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
    }
    store_read_end(&r);
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
            /* One worker thread compresses while this one renders JSON, as the zstd CLI
             * overlaps reading with compressing (ignored by a libzstd without threads). */
            ZSTD_CCtx_setParameter(ex->z, ZSTD_c_nbWorkers, 1);
            ZSTD_CCtx_setParameter(ex->z, ZSTD_c_jobSize, 2u << 20); /* bounds its buffers */
        }
    }
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
    return store_buf_failed(j) ? REEL_ENOMEM : REEL_OK;
}

static int take_record(void *arg, const store_session_t *rec)
{
    replay_export_t *ex = arg;
    memcpy(ex->cursor, rec->id, rec->id_len);
    ex->cursor_len = rec->id_len;
    return record_line(ex, rec);
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
            (rc = record_line(ex, &rec)))
            return rc;
    }
    if ((rc = replay_write_event(&ex->json, ev, 1)))
        return rc;
    store_buf_putc(&ex->json, '\n');
    ex->events++;
    return ex->json.len >= CHUNK_BYTES ? 1 : 0;
}

/* One step of the state machine: appends JSON lines to ex->json. */
static int step(replay_export_t *ex)
{
    store_read_t r;
    int rc, more = 0;
    if (ex->phase == PH_HEADER) {
        store_buf_printf(&ex->json, "{\"record\":\"export\",\"format\":1,\"created_at\":");
        replay_write_time(&ex->json, (int64_t)time(NULL) * 1000);
        store_buf_printf(&ex->json, ",\"after\":%llu,\"until\":%llu}\n",
                         (unsigned long long)(ex->opt.session ? 0 : ex->opt.after),
                         (unsigned long long)ex->tail);
        ex->phase = ex->records_up_front || ex->opt.session ? PH_RECORDS : PH_EVENTS;
        return REEL_OK;
    }
    if ((rc = store_read_begin(ex->s, &r)))
        return rc;
    if (ex->phase == PH_RECORDS && ex->opt.session) {
        store_session_t rec;
        if (!(rc = store_session_get(&r, ex->session, ex->opt.session_len, &rec)))
            rc = record_line(ex, &rec);
        ex->phase = PH_EVENTS;
    } else if (ex->phase == PH_RECORDS) {
        rc = store_sessions_list(&r, ex->cursor, ex->cursor_len, SESSIONS_PER_READ, take_record,
                                 ex, &more);
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
        store_buf_printf(&ex->json, "{\"record\":\"end\",\"events\":%llu,\"sessions\":%llu}\n",
                         (unsigned long long)ex->events, (unsigned long long)ex->sessions);
        ex->phase = PH_DONE;
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
