/* import.c -- reads an export (replay/export.c) back into a store (contract in ingest.h).
 *
 * Events are grouped into one batch per run of lines of the same session (at most
 * BATCH_EVENTS) and appended with their original event_id and time (keep_times), so a
 * second import of the same file appends nothing. Session records are created when first
 * seen and given their exported times and status once every event is in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "ingest/ingest.h"
#include "store/json.h"
#include "store/parse.h"

#define BATCH_EVENTS 1000
#define READ_SIZE (1u << 20)

struct rec {
    store_session_t s; /* times, status, agent, native id; metadata points into 'meta' */
    store_buf_t meta;
};

struct importer {
    store_t *store;
    ingest_import_stats_t *st;
    char *err;
    size_t err_len;
    store_progress_cb progress;
    void *arg;
    ingest_batch_t ib;
    int have_batch;
    struct rec *recs;
    size_t n_recs, cap_recs;
    store_buf_t scratch;
    uint64_t next_progress;
};

static int fail(struct importer *im, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct importer *im, int rc, const char *fmt, ...)
{
    int n = snprintf(im->err, im->err_len, "line %llu: ", (unsigned long long)im->st->lines);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < im->err_len)
        vsnprintf(im->err + n, im->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- top-level scanning ---- */

typedef int (*field_fn)(void *arg, const char *key, size_t klen, store_json_t *j);

/* Calls 'fn' for each top-level key of the object in 'line'; 'fn' consumes the value or
 * returns 1 to have it skipped, or 2 to stop scanning. */
static int scan(struct importer *im, const char *line, size_t len, field_fn fn, void *arg)
{
    store_json_t j;
    store_buf_t key = STORE_BUF_INIT;
    store_json_init(&j, line, len, STORE_JSON_MAX_DEPTH, NULL);
    int rc = store_json_expect(&j, '{');
    if (!rc && store_json_peek(&j) == '}')
        j.p++;
    else
        while (!rc) {
            store_buf_clear(&key);
            if ((rc = store_json_string(&j, &key)) || (rc = store_json_expect(&j, ':')))
                break;
            rc = fn(arg, (const char *)key.data, key.len, &j);
            if (rc == 2) {
                rc = REEL_OK;
                break;
            }
            if (rc == 1) {
                store_buf_clear(&im->scratch);
                rc = store_json_value(&j, &im->scratch, 1);
            }
            if (rc)
                break;
            int c = store_json_peek(&j);
            if (c == '}') {
                j.p++;
                break;
            }
            rc = store_json_expect(&j, ',');
        }
    store_buf_release(&key);
    return rc;
}

#define KEY(k) (klen == sizeof(k) - 1 && !memcmp(key, k, klen))

/* A JSON string (or null, as "") into 'dst' (cap bytes with the NUL after it). With
 * 'len' the bytes are kept exactly, NUL included, and '*len' set; without, the field is
 * an identifier, a kind or a time, and a NUL in it is invalid (it would cut it short). */
static int string_into(store_json_t *j, char *dst, size_t cap, size_t *len)
{
    store_buf_t b = STORE_BUF_INIT;
    int rc = store_json_peek(j) == 'n' ? (j->p += 4, REEL_OK) : store_json_string(j, &b);
    if (!rc && (b.len >= cap || (!len && b.len && memchr(b.data, 0, b.len))))
        rc = REEL_EINVALID_EVENT;
    if (!rc) {
        if (b.len)
            memcpy(dst, b.data, b.len);
        dst[b.len] = 0;
        if (len)
            *len = b.len;
    }
    store_buf_release(&b);
    return rc;
}

struct line_info {
    char record[32];
    char session[STORE_SESSION_ID_MAX + 2];
    char time[40];
    struct rec *rec; /* for session records */
};

static int time_field(store_json_t *j, int64_t *out)
{
    char t[40];
    int rc = string_into(j, t, sizeof t, NULL);
    if (rc)
        return rc;
    *out = t[0] ? store_parse_time(t, strlen(t)) : 0;
    return *out < 0 ? REEL_EINVALID_EVENT : REEL_OK;
}

static int record_field(void *arg, const char *key, size_t klen, store_json_t *j)
{
    struct line_info *li = arg;
    store_session_t *s = &li->rec->s;
    if (KEY("id"))
        return string_into(j, li->session, sizeof li->session, NULL);
    if (KEY("agent"))
        return string_into(j, s->agent, sizeof s->agent, &s->agent_len);
    if (KEY("native_session_id"))
        return string_into(j, s->native_session_id, sizeof s->native_session_id,
                           &s->native_session_id_len);
    if (KEY("created_at"))
        return time_field(j, &s->created_ms);
    if (KEY("updated_at"))
        return time_field(j, &s->updated_ms);
    if (KEY("ended_at"))
        return time_field(j, &s->ended_ms);
    if (KEY("first_event_at"))
        return time_field(j, &s->first_event_ms);
    if (KEY("status")) {
        char st[16];
        int rc = string_into(j, st, sizeof st, NULL);
        s->status = !strcmp(st, "ended") ? STORE_ENDED : !strcmp(st, "deleted") ? STORE_DELETED
                                                                                 : STORE_ACTIVE;
        return rc;
    }
    if (KEY("metadata")) {
        store_buf_clear(&li->rec->meta);
        return store_json_value(j, &li->rec->meta, 1);
    }
    return 1;
}

/* Finds the record kind, or the session and time of an event line (which the exporter
 * writes before the bulky fields, so scanning stops early). */
static int head_field(void *arg, const char *key, size_t klen, store_json_t *j)
{
    struct line_info *li = arg;
    if (KEY("record"))
        return string_into(j, li->record, sizeof li->record, NULL);
    if (KEY("session_id"))
        return string_into(j, li->session, sizeof li->session, NULL);
    if (KEY("time")) {
        int rc = string_into(j, li->time, sizeof li->time, NULL);
        return rc ? rc : li->session[0] ? 2 : 0;
    }
    return 1;
}

/* ---- appending ---- */

static int flush(struct importer *im)
{
    if (!im->have_batch)
        return REEL_OK;
    im->ib.b.keep_times = 1;
    int rc = ingest_append(im->store, &im->ib);
    if (!rc) {
        im->st->events += ingest_count(&im->ib) - im->ib.b.duplicates;
        im->st->duplicates += im->ib.b.duplicates;
    } else {
        fail(im, rc, "append to session '%s' failed: %s", im->ib.session, reel_strerror(rc));
    }
    ingest_batch_release(&im->ib);
    im->have_batch = 0;
    if (im->progress && im->st->events + im->st->duplicates >= im->next_progress) {
        im->progress(im->arg, im->st->events + im->st->duplicates, 0);
        im->next_progress += 10000;
    }
    return rc;
}

static int event_line(struct importer *im, const struct line_info *li, const char *line,
                      size_t len)
{
    size_t slen = strlen(li->session);
    int64_t t = store_parse_time(li->time, strlen(li->time));
    if (!store_session_id_valid(li->session, slen))
        return fail(im, REEL_EINVALID_SESSION_ID, "bad or missing session_id '%s'", li->session);
    if (t < 0)
        return fail(im, REEL_EINVALID_EVENT, "bad or missing time '%s'", li->time);
    int rc;
    if (im->have_batch && (strcmp(im->ib.session, li->session) ||
                           ingest_count(&im->ib) >= BATCH_EVENTS) && (rc = flush(im)))
        return rc;
    if (!im->have_batch) {
        ingest_batch_init(&im->ib, li->session, slen);
        im->have_batch = 1;
    }
    ingest_limits_t lim = {SIZE_MAX, BATCH_EVENTS + 1, STORE_JSON_MAX_DEPTH};
    ingest_error_t e;
    if ((rc = ingest_parse(&im->ib, line, len, INGEST_JSON, &lim, &e)))
        return fail(im, rc, "%s", e.text);
    im->ib.events[ingest_count(&im->ib) - 1].time_ms = (uint64_t)t;
    return REEL_OK;
}

static int session_op(struct importer *im, struct rec *r, int op, int with_times)
{
    store_batch_t b;
    store_batch_init(&b, op, r->s.id, r->s.id_len);
    if (op == STORE_OP_SESSION_PUT) {
        b.agent = r->s.agent;
        b.agent_len = r->s.agent_len;
        b.native_session_id = r->s.native_session_id;
        b.native_session_id_len = r->s.native_session_id_len;
        if (r->meta.len) {
            b.metadata = r->meta.data;
            b.metadata_len = r->meta.len;
        }
        if (with_times)
            b.times = &r->s;
    }
    int rc = store_append(im->store, &b);
    return rc == REEL_EGONE ? REEL_OK : rc; /* already deleted: nothing to restore */
}

static int record_line(struct importer *im, const char *line, size_t len)
{
    if (im->n_recs == im->cap_recs) {
        size_t cap = im->cap_recs ? im->cap_recs * 2 : 64;
        struct rec *v = realloc(im->recs, cap * sizeof *v);
        if (!v)
            return REEL_ENOMEM;
        im->recs = v, im->cap_recs = cap;
    }
    struct rec *r = &im->recs[im->n_recs];
    memset(r, 0, sizeof *r);
    struct line_info li = {.rec = r};
    int rc = scan(im, line, len, record_field, &li);
    size_t idlen = strlen(li.session);
    if (rc || !store_session_id_valid(li.session, idlen)) {
        store_buf_release(&r->meta);
        return fail(im, rc ? rc : REEL_EINVALID_SESSION_ID, "bad session record");
    }
    memcpy(r->s.id, li.session, idlen + 1);
    r->s.id_len = idlen;
    im->n_recs++;
    im->st->sessions++;
    if ((rc = flush(im)) || (rc = session_op(im, r, STORE_OP_SESSION_PUT, 0)))
        return fail(im, rc, "cannot create session '%s': %s", r->s.id, reel_strerror(rc));
    return REEL_OK;
}

static int one_line(struct importer *im, const char *line, size_t len)
{
    im->st->lines++;
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (!len)
        return REEL_OK;
    struct line_info li;
    memset(&li, 0, sizeof li);
    int rc = scan(im, line, len, head_field, &li);
    if (rc)
        return fail(im, rc, "not a JSON object");
    if (!li.record[0])
        return event_line(im, &li, line, len);
    if (!strcmp(li.record, "session"))
        return record_line(im, line, len);
    return REEL_OK; /* "export" header, "end" trailer, and kinds from later versions */
}

/* Gives every recreated session its exported times and status. */
static int finish(struct importer *im)
{
    int rc = flush(im);
    for (size_t i = 0; !rc && i < im->n_recs; i++) {
        struct rec *r = &im->recs[i];
        rc = session_op(im, r, STORE_OP_SESSION_PUT, 1);
        if (!rc && r->s.status == STORE_DELETED)
            rc = session_op(im, r, STORE_OP_SESSION_DELETE, 0);
    }
    return rc;
}

/* ---- input: plain or zstd, split into lines ---- */

struct reader {
    int fd;
    int zstd; /* -1 unknown, 0 plain, 1 zstd */
    ZSTD_DCtx *d;
    store_buf_t raw;  /* bytes read, not yet decompressed */
    size_t raw_pos;
    store_buf_t text; /* decompressed text, not yet split */
    int eof;
};

/* Appends more text to r->text; returns 0 at the end of input, 1 if it added, or an error. */
static int refill(struct reader *r, ingest_import_stats_t *st)
{
    if (r->raw_pos == r->raw.len && !r->eof) {
        store_buf_clear(&r->raw);
        r->raw_pos = 0;
        if (store_buf_reserve(&r->raw, READ_SIZE))
            return REEL_ENOMEM;
        ssize_t n = read(r->fd, r->raw.data, READ_SIZE);
        if (n < 0)
            return REEL_EIO;
        if (n == 0)
            r->eof = 1;
        r->raw.len = (size_t)n;
        st->bytes_in += (uint64_t)n;
        if (r->zstd < 0 && n > 0)
            r->zstd = n >= 4 && !memcmp(r->raw.data, "\x28\xb5\x2f\xfd", 4);
    }
    if (r->raw_pos == r->raw.len)
        return 0;
    if (!r->zstd) {
        store_buf_put(&r->text, r->raw.data + r->raw_pos, r->raw.len - r->raw_pos);
        r->raw_pos = r->raw.len;
        return store_buf_failed(&r->text) ? REEL_ENOMEM : 1;
    }
    ZSTD_inBuffer in = {r->raw.data, r->raw.len, r->raw_pos};
    size_t room = ZSTD_DStreamOutSize();
    if (store_buf_reserve(&r->text, room))
        return REEL_ENOMEM;
    ZSTD_outBuffer out = {r->text.data + r->text.len, room, 0};
    size_t rc = ZSTD_decompressStream(r->d, &out, &in);
    if (ZSTD_isError(rc))
        return REEL_EINVALID_JSON;
    r->raw_pos = in.pos;
    r->text.len += out.pos;
    return 1;
}

int ingest_import(store_t *s, int fd, ingest_import_stats_t *st, char *err, size_t err_len,
                  store_progress_cb progress, void *arg)
{
    memset(st, 0, sizeof *st);
    if (err_len)
        err[0] = 0;
    struct importer im;
    memset(&im, 0, sizeof im);
    im.store = s, im.st = st, im.err = err, im.err_len = err_len;
    im.progress = progress, im.arg = arg;
    im.next_progress = 10000;
    struct reader r = {fd, -1, ZSTD_createDCtx(), STORE_BUF_INIT, 0, STORE_BUF_INIT, 0};
    int rc = r.d ? REEL_OK : REEL_ENOMEM;
    size_t start = 0;
    while (!rc) {
        int more = refill(&r, st);
        if (more < 0) {
            rc = more == REEL_EINVALID_JSON ? fail(&im, more, "the zstd stream is corrupt")
                                            : fail(&im, more, "read error");
            break;
        }
        char *base = (char *)r.text.data;
        for (;;) {
            char *nl = memchr(base + start, '\n', r.text.len - start);
            if (!nl && more)
                break;
            size_t end = nl ? (size_t)(nl - base) : r.text.len;
            if ((rc = one_line(&im, base + start, end - start)))
                break;
            start = nl ? end + 1 : end;
            if (!nl)
                break;
        }
        if (rc || !more)
            break;
        memmove(r.text.data, r.text.data + start, r.text.len - start); /* keep a partial line */
        r.text.len -= start;
        start = 0;
    }
    if (!rc)
        rc = finish(&im);
    else if (im.have_batch)
        ingest_batch_release(&im.ib);
    for (size_t i = 0; i < im.n_recs; i++)
        store_buf_release(&im.recs[i].meta);
    free(im.recs);
    store_buf_release(&im.scratch);
    store_buf_release(&r.raw);
    store_buf_release(&r.text);
    ZSTD_freeDCtx(r.d);
    return rc;
}
