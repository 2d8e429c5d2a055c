/* import.c -- reads an export (replay/export.c) back into a store (contract in ingest.h).
 *
 * Two passes over the file. The first checks it and writes nothing: the check records and
 * the end record are compared with the SHA-256 of the lines before them and with the
 * counts, a zstd frame must end with its content checksum, and in a format 1 file (no
 * digests) every line is parsed as the second pass would. Only then does the second pass append, so a cut or damaged file
 * imports nothing (or, with INGEST_IMPORT_PARTIAL, the part the first pass verified).
 *
 * Events are grouped into one batch per run of lines of the same session (at most
 * BATCH_EVENTS) and appended with their original event_id and time (keep_times), so a
 * second import of the same file appends nothing. Session records are created when first
 * seen and given their exported times and status once every event is in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "ingest/ingest.h"
#include "store/json.h"
#include "store/parse.h"

#define BATCH_EVENTS 1000
#define READ_SIZE (1u << 20)
#define FORMAT_NEWEST 2 /* the newest export format this reader knows (REPLAY_EXPORT_FORMAT) */

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
    /* integrity (docs/REPLAY.md "Integrity") */
    int dry;               /* the checking pass: parse every line, write nothing */
    int damaged;           /* the error in 'err' is a fault of the file, not of the store */
    uint64_t limit;        /* the writing pass stops after this line */
    EVP_MD_CTX *sha;       /* SHA-256 of the lines before the current one */
    int format;            /* the header's format: 2, or 1 (no digests) */
    int ended;             /* the end record was read */
    uint64_t n_events, n_sessions; /* event and session lines so far */
    uint64_t total_events;         /* events the checking pass counted (progress's total) */
    uint64_t good;         /* lines known good: through the last verified check record
                            * (format 2) or the last line that parsed (format 1) */
};

static int fail(struct importer *im, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct importer *im, int rc, const char *fmt, ...)
{
    uint64_t line = im->st->lines ? im->st->lines : 1; /* 0: damage before the first line */
    int n = snprintf(im->err, im->err_len, "line %llu: ", (unsigned long long)line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < im->err_len)
        vsnprintf(im->err + n, im->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

#define damaged(im, ...) ((im)->damaged = 1, fail((im), REEL_EDAMAGED, __VA_ARGS__))

/* An OpenSSL call failed (it allocates only in creating contexts): drop the error it
 * queued with heap-allocated text, as store__sha256() does, and report out-of-memory. */
static int openssl_failed(struct importer *im)
{
    ERR_clear_error();
    return fail(im, REEL_ENOMEM, "out of memory");
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

static int u64_value(store_json_t *j, store_buf_t *scratch, uint64_t *out);

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
    if (KEY("version")) { /* absent (older exports): the import's own count */
        store_buf_t tmp = STORE_BUF_INIT;
        int rc = u64_value(j, &tmp, &s->version);
        store_buf_release(&tmp);
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
    int rc = im->dry ? REEL_OK : ingest_append(im->store, &im->ib);
    if (!rc) {
        im->st->events += ingest_count(&im->ib) - im->ib.b.duplicates;
        im->st->duplicates += im->ib.b.duplicates;
    } else {
        fail(im, rc, "append to session '%s' failed: %s", im->ib.session, reel_strerror(rc));
    }
    ingest_batch_release(&im->ib);
    im->have_batch = 0;
    if (im->progress && im->st->events + im->st->duplicates >= im->next_progress) {
        im->progress(im->arg, im->st->events + im->st->duplicates, im->total_events);
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
    int rc = store_append(im->store, &b); /* the version: see apply_put() in store/commit.c */
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
    if (im->dry) {
        store_buf_release(&r->meta);
        return REEL_OK;
    }
    im->n_recs++;
    im->st->sessions++;
    if ((rc = flush(im)) || (rc = session_op(im, r, STORE_OP_SESSION_PUT, 0)))
        return fail(im, rc, "cannot create session '%s': %s", r->s.id, reel_strerror(rc));
    return REEL_OK;
}

/* ---- integrity: the header, check records, the end record ---- */

enum { F_FORMAT = 1, F_LINES = 2, F_EVENTS = 4, F_SESSIONS = 8, F_SHA = 16 };

struct control { /* the fields of an export, check or end record */
    unsigned seen; /* F_* */
    uint64_t format, lines, events, sessions;
    char sha256[2 * STORE_HASH_LEN + 2];
    store_buf_t *scratch;
};

static int u64_value(store_json_t *j, store_buf_t *scratch, uint64_t *out)
{
    store_json_peek(j);
    const char *a = j->p;
    store_buf_clear(scratch);
    int rc = store_json_value(j, scratch, 1);
    if (!rc && store_parse_u64(a, (size_t)(j->p - a), out))
        rc = REEL_EINVALID_EVENT;
    return rc;
}

static int control_field(void *arg, const char *key, size_t klen, store_json_t *j)
{
    struct control *c = arg;
    static const struct { const char *name; unsigned bit; size_t off; } u64s[] = {
        {"format", F_FORMAT, offsetof(struct control, format)},
        {"lines", F_LINES, offsetof(struct control, lines)},
        {"events", F_EVENTS, offsetof(struct control, events)},
        {"sessions", F_SESSIONS, offsetof(struct control, sessions)},
    };
    for (size_t i = 0; i < sizeof u64s / sizeof *u64s; i++)
        if (klen == strlen(u64s[i].name) && !memcmp(key, u64s[i].name, klen)) {
            c->seen |= u64s[i].bit;
            return u64_value(j, c->scratch, (uint64_t *)((char *)c + u64s[i].off));
        }
    if (KEY("sha256")) {
        c->seen |= F_SHA;
        return string_into(j, c->sha256, sizeof c->sha256, NULL);
    }
    return 1;
}

/* 0 if 'hex' is the SHA-256 of the lines before the current one, 1 if not, or an error. */
static int digest_differs(struct importer *im, const char *hex)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    char mine[2 * STORE_HASH_LEN + 1];
    unsigned n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_MD_CTX_copy_ex(c, im->sha) && EVP_DigestFinal_ex(c, d, &n) &&
             n == STORE_HASH_LEN;
    EVP_MD_CTX_free(c);
    if (!ok)
        return openssl_failed(im);
    for (unsigned i = 0; i < n; i++)
        snprintf(mine + 2 * i, 3, "%02x", d[i]);
    return strcmp(mine, hex) != 0;
}

static int header_line(struct importer *im, const struct control *c)
{
    if (im->st->lines != 1)
        return damaged(im, "an export header in the middle of the file (two files joined?)");
    if (!(c->seen & F_FORMAT) || !c->format)
        return damaged(im, "the export header has no format number");
    if (c->format > FORMAT_NEWEST)
        return damaged(im, "export format %llu is newer than this reel reads (%d)",
                       (unsigned long long)c->format, FORMAT_NEWEST);
    im->format = (int)c->format;
    return REEL_OK;
}

/* A check or end record: the lines and the SHA-256 of everything before it (format 2,
 * or any record that carries a digest), and for the end record the counts. */
static int check_line(struct importer *im, const struct control *c, int end)
{
    uint64_t n = im->st->lines;
    const char *kind = end ? "end" : "check";
    if (im->format >= 2 || (c->seen & F_SHA)) {
        if ((c->seen & (F_LINES | F_SHA)) != (F_LINES | F_SHA))
            return damaged(im, "the %s record has no line count or no sha256", kind);
        if (c->lines != n - 1)
            return damaged(im, "the %s record counts %llu lines before it, the file has %llu: "
                           "lines are missing or extra", kind, (unsigned long long)c->lines,
                           (unsigned long long)(n - 1));
        int rc = digest_differs(im, c->sha256);
        if (rc < 0)
            return rc;
        if (rc)
            return damaged(im, "lines %llu to %llu do not match the SHA-256 of the %s record "
                           "after them: the file is damaged there", (unsigned long long)im->good + 1,
                           (unsigned long long)(n - 1), kind);
    }
    if (end && ((c->seen & (F_EVENTS | F_SESSIONS)) != (F_EVENTS | F_SESSIONS) ||
                c->events != im->n_events || c->sessions != im->n_sessions))
        return damaged(im, "the end record counts %llu events and %llu sessions, the file holds "
                       "%llu and %llu", (unsigned long long)c->events,
                       (unsigned long long)c->sessions, (unsigned long long)im->n_events,
                       (unsigned long long)im->n_sessions);
    im->ended = end;
    im->good = n;
    return REEL_OK;
}

static int control_line(struct importer *im, const char *kind, const char *line, size_t len)
{
    struct control c;
    memset(&c, 0, sizeof c);
    c.scratch = &im->scratch;
    int rc = scan(im, line, len, control_field, &c);
    if (rc)
        return damaged(im, "a bad '%s' record", kind);
    if (!strcmp(kind, "export"))
        return header_line(im, &c);
    if (!strcmp(kind, "check") || !strcmp(kind, "end"))
        return check_line(im, &c, !strcmp(kind, "end"));
    if (im->format >= 2)
        return damaged(im, "unknown record kind '%s'", kind);
    return REEL_OK; /* format 1 skipped kinds it did not know */
}

/* One line of the file; 'nl' is 0 for a last line without its newline. */
static int one_line(struct importer *im, const char *line, size_t len, int nl)
{
    uint64_t n = ++im->st->lines;
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (im->ended)
        return len ? damaged(im, "data after the end record") : REEL_OK;
    if (!nl)
        return damaged(im, "the last line has no newline: the file was cut");
    if (!len && n > 1)
        return REEL_OK;
    struct line_info li;
    memset(&li, 0, sizeof li);
    int rc = len ? scan(im, line, len, head_field, &li) : REEL_EINVALID_JSON;
    if (rc)
        return damaged(im, "not a JSON object");
    if (n == 1 && strcmp(li.record, "export"))
        return damaged(im, "not a reel export: the first line is not an export header");
    /* A format 2 file's digests cover every byte, so its checking pass leaves the full
     * parse to the writing pass; an older file has only its lines to be checked by. */
    int parse = !im->dry || im->format < 2;
    if (!li.record[0]) {
        im->n_events++;
        rc = parse ? event_line(im, &li, line, len) : REEL_OK;
    } else if (!strcmp(li.record, "session")) {
        im->n_sessions++;
        rc = parse ? record_line(im, line, len) : REEL_OK;
    } else {
        return control_line(im, li.record, line, len);
    }
    if (!rc && im->format < 2)
        im->good = n; /* no digest: a line that parses is as good as it gets */
    return rc;
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
    int zstd;    /* -1 unknown, 0 plain, 1 zstd */
    int framed;  /* zstd: the last frame ended (content checksum verified) */
    int pending; /* zstd: the last call filled the output, more may be inside */
    ZSTD_DCtx *d;
    store_buf_t raw;  /* bytes read, not yet decompressed */
    size_t raw_pos;
    store_buf_t text; /* decompressed text, not yet split */
    int eof;
};

/* Appends more text to r->text; returns 0 at the end of input, 1 if it added, or an error
 * (REEL_EDAMAGED for a zstd stream that fails to decompress). */
static int refill(struct reader *r, ingest_import_stats_t *st)
{
    if (r->raw_pos == r->raw.len && !r->eof && !r->pending) {
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
    if (r->raw_pos == r->raw.len && !r->pending)
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
        return ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation ? REEL_ENOMEM : REEL_EDAMAGED;
    r->framed = rc == 0;
    r->pending = out.pos == room;
    r->raw_pos = in.pos;
    r->text.len += out.pos;
    return 1;
}

/* One pass over the file from its start: every line to one_line(), the first
 * 'im->limit' lines only; each line is added to the running SHA-256 after it was
 * checked. At the end of the file, a missing end record or an unfinished zstd frame is
 * damage. */
static int read_lines(struct importer *im, int fd)
{
    struct reader r = {fd, -1, 0, 0, ZSTD_createDCtx(), STORE_BUF_INIT, 0, STORE_BUF_INIT, 0};
    int rc = !r.d                                              ? REEL_ENOMEM
             : !EVP_DigestInit_ex(im->sha, EVP_sha256(), NULL) ? openssl_failed(im)
                                                               : REEL_OK;
    int stop = 0;
    size_t start = 0;
    im->st->lines = 0;
    im->format = 1, im->ended = 0, im->good = 0, im->n_events = im->n_sessions = 0;
    while (!rc && !stop) {
        int more = refill(&r, im->st);
        if (more < 0) {
            rc = more == REEL_EDAMAGED
                     ? damaged(im, "the zstd stream is damaged after this line")
                     : fail(im, more, more == REEL_EIO ? "read error" : "out of memory");
            break;
        }
        char *base = (char *)r.text.data;
        for (;;) {
            char *nl = r.text.len > start ? memchr(base + start, '\n', r.text.len - start)
                                          : NULL; /* an empty file: no buffer at all */
            if ((!nl && more) || (!nl && start == r.text.len))
                break;
            if (im->st->lines >= im->limit) {
                stop = 1;
                break;
            }
            size_t end = nl ? (size_t)(nl - base) : r.text.len;
            if ((rc = one_line(im, base + start, end - start, nl != NULL)))
                break;
            if (!EVP_DigestUpdate(im->sha, base + start, end - start + (nl ? 1 : 0)))
                rc = openssl_failed(im);
            start = nl ? end + 1 : end;
            if (!nl || rc)
                break;
        }
        if (rc || !more)
            break;
        memmove(r.text.data, r.text.data + start, r.text.len - start); /* keep a partial line */
        r.text.len -= start;
        start = 0;
    }
    stop = stop || im->st->lines >= im->limit; /* --partial: the end of the verified part */
    if (!rc && !stop && r.zstd == 1 && !r.framed)
        rc = damaged(im, "the zstd frame is cut: the file ends inside it");
    if (!rc && !stop && !im->ended)
        rc = damaged(im, "the file ends without its end record: it was cut");
    if (rc && im->dry && rc != REEL_ENOMEM && rc != REEL_EIO)
        im->damaged = 1; /* a line that does not parse is damage too */
    store_buf_release(&r.raw);
    store_buf_release(&r.text);
    ZSTD_freeDCtx(r.d);
    return rc;
}

static void forget_records(struct importer *im)
{
    if (im->have_batch)
        ingest_batch_release(&im->ib);
    im->have_batch = 0;
    for (size_t i = 0; i < im->n_recs; i++)
        store_buf_release(&im->recs[i].meta);
    im->n_recs = 0;
}

int ingest_import(store_t *s, int fd, unsigned flags, ingest_import_stats_t *st, char *err,
                  size_t err_len, store_progress_cb progress, void *arg)
{
    memset(st, 0, sizeof *st);
    if (err_len)
        err[0] = 0;
    struct importer im;
    memset(&im, 0, sizeof im);
    im.store = s, im.st = st, im.err = err, im.err_len = err_len;
    im.progress = progress, im.arg = arg;
    im.next_progress = 10000;
    im.limit = UINT64_MAX;
    im.dry = 1;
    off_t at = lseek(fd, 0, SEEK_CUR);
    int rc = at < 0 ? fail(&im, REEL_EIO, "cannot read the input twice (not a regular file)")
             : (im.sha = EVP_MD_CTX_new()) ? read_lines(&im, fd) : openssl_failed(&im);
    forget_records(&im);
    im.total_events = im.n_events;
    st->format = im.format;
    st->lines_in_file = st->lines;
    st->lines = st->events = st->duplicates = st->sessions = 0;
    if (rc && im.damaged) {
        st->damaged_line = st->lines_in_file ? st->lines_in_file : 1;
        st->good_lines = im.good;
        if (err_len)
            snprintf(st->damage, sizeof st->damage, "%s", err);
        if (flags & INGEST_IMPORT_PARTIAL)
            rc = REEL_OK, im.limit = im.good;
    }
    if (!rc && im.limit && !(flags & INGEST_IMPORT_CHECK)) {
        if (lseek(fd, at, SEEK_SET) != at) {
            rc = fail(&im, REEL_EIO, "cannot read the input a second time");
        } else {
            uint64_t bytes = st->bytes_in;
            im.dry = 0, im.damaged = 0;
            if (err_len)
                err[0] = 0;
            rc = read_lines(&im, fd);
            if (!rc)
                rc = finish(&im);
            st->bytes_in = bytes;
        }
    }
    forget_records(&im);
    free(im.recs);
    store_buf_release(&im.scratch);
    EVP_MD_CTX_free(im.sha);
    return rc;
}
