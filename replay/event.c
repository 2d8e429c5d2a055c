/* event.c -- events and session records rendered as JSON from the stored msgpack. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay/replay_int.h"

#define BODY_FIELDS REPLAY_NFIELDS

static char *two(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* gmtime_r without its time-zone lock (every rendered event has a time): civil date from
 * days since 1970-01-01, after H. Hinnant's "chrono-compatible low-level date
 * algorithms". For 0 <= secs only; the caller keeps gmtime_r for the rest. */
static void utc_fields(int64_t secs, struct tm *tm)
{
    int64_t days = secs / 86400, rem = secs % 86400;
    int64_t z = days + 719468, era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t mon = mp < 10 ? mp + 3 : mp - 9;
    tm->tm_year = (int)(yoe + era * 400 + (mon <= 2)) - 1900;
    tm->tm_mon = (int)mon - 1;
    tm->tm_mday = (int)(doy - (153 * mp + 2) / 5 + 1);
    tm->tm_hour = (int)(rem / 3600);
    tm->tm_min = (int)(rem / 60 % 60);
    tm->tm_sec = (int)(rem % 60);
}

void replay_write_time(store_buf_t *out, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (ms >= 0)
        utc_fields((int64_t)secs, &tm);
    else
        gmtime_r(&secs, &tm);
    if (tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) { /* not RFC 3339: keep the value */
        store_buf_printf(out, "\"%lld\"", (long long)ms);
        return;
    }
    char t[26], *p = t; /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
    *p++ = '"';
    p = two(p, (tm.tm_year + 1900) / 100);
    p = two(p, (tm.tm_year + 1900) % 100);
    *p++ = '-', p = two(p, tm.tm_mon + 1), *p++ = '-', p = two(p, tm.tm_mday);
    *p++ = 'T', p = two(p, tm.tm_hour), *p++ = ':', p = two(p, tm.tm_min);
    *p++ = ':', p = two(p, tm.tm_sec), *p++ = '.';
    *p++ = (char)('0' + (int)(ms % 1000) / 100);
    p = two(p, (int)(ms % 100));
    *p++ = 'Z', *p++ = '"';
    store_buf_put(out, t, (size_t)(p - t));
}

/* Opens the body array and checks its shape: 8 fields, 9 with the redactions record, or 7
 * without client_time (format 1). */
static int body_fields_n(const store_event_view_t *ev, store_mp_t *m, int *n)
{
    store_mp_obj_t o;
    m->p = ev->body;
    m->end = ev->body + ev->body_len;
    if (store_mp_next(m, &o) || o.type != STORE_MP_ARRAY ||
        o.u < BODY_FIELDS - 1 || o.u > BODY_FIELDS + 1)
        return REEL_ECORRUPT;
    *n = (int)o.u;
    if (o.u == BODY_FIELDS + 1) { /* the 9th, the redactions record, is a map */
        store_mp_t f = *m;
        for (int i = 0; i < BODY_FIELDS; i++)
            if (store_mp_skip(&f, STORE_JSON_MAX_DEPTH))
                return REEL_ECORRUPT;
        if (store_mp_next(&f, &o) || o.type != STORE_MP_MAP)
            return REEL_ECORRUPT;
    }
    return REEL_OK;
}

static int body_start(const store_event_view_t *ev, store_mp_t *m)
{
    int n;
    return body_fields_n(ev, m, &n);
}

static const uint8_t mp_nil = 0xc0;

int replay_type_listed(const store_event_view_t *ev, const char *csv)
{
    const char *t;
    size_t tl;
    if (replay_event_type(ev, &t, &tl) != REEL_OK)
        return 0;
    for (const char *p = csv; *p;) {
        size_t n = strcspn(p, ",");
        if (n == tl && !memcmp(p, t, n))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

int replay__body_fields(const store_event_view_t *ev, store_mp_t fields[REPLAY_NFIELDS])
{
    store_mp_t m;
    int n;
    if (body_fields_n(ev, &m, &n))
        return REEL_ECORRUPT;
    for (int i = 0; i < REPLAY_NFIELDS; i++) {
        if (i == n) { /* a 7-field body */
            fields[i].p = &mp_nil;
            fields[i].end = &mp_nil + 1;
            break;
        }
        fields[i].p = m.p;
        if (store_mp_skip(&m, STORE_JSON_MAX_DEPTH))
            return REEL_ECORRUPT;
        fields[i].end = m.p;
    }
    return REEL_OK;
}

int replay_event_type(const store_event_view_t *ev, const char **type, size_t *len)
{
    store_mp_t m;
    store_mp_obj_t o;
    if (body_start(ev, &m) || store_mp_skip(&m, 1) || store_mp_next(&m, &o) ||
        o.type != STORE_MP_STR)
        return REEL_ECORRUPT;
    *type = (const char *)o.ptr;
    *len = o.len;
    return REEL_OK;
}

static void key(store_buf_t *out, const char *k)
{
    store_buf_putc(out, ',');
    store_buf_putc(out, '"');
    store_buf_puts(out, k);
    store_buf_put(out, "\":", 2);
}

/* 'ct' at the client_time of a body of 'n' fields whose first field is at 'm', or ct->p
 * NULL when it has none (nil, or a 7-field body). */
static int client_time(const store_mp_t *m, int n, store_mp_t *ct)
{
    store_mp_t f = *m;
    ct->p = NULL;
    if (n <= REPLAY_F_CLIENT_TIME)
        return REEL_OK;
    for (int i = 0; i < REPLAY_F_CLIENT_TIME; i++)
        if (store_mp_skip(&f, STORE_JSON_MAX_DEPTH))
            return REEL_ECORRUPT;
    if (f.p == f.end || *f.p == mp_nil)
        return REEL_OK;
    *ct = f;
    return REEL_OK;
}

/* 'rd' at the redactions record of a body of 'n' fields (the 9th), or rd->p NULL. */
static int redactions(const store_mp_t *m, int n, store_mp_t *rd)
{
    store_mp_t f = *m;
    rd->p = NULL;
    if (n <= REPLAY_NFIELDS)
        return REEL_OK;
    for (int i = 0; i < REPLAY_NFIELDS; i++)
        if (store_mp_skip(&f, STORE_JSON_MAX_DEPTH))
            return REEL_ECORRUPT;
    *rd = f;
    return REEL_OK;
}

int replay_write_event(store_buf_t *out, const store_event_view_t *ev, int flags)
{
    static const char *names[REPLAY_F_CLIENT_TIME] = {"event_id", "type", "source",
                                                      "synthetic", "native_session_id",
                                                      "data", "raw"};
    store_mp_t m, ct, rd;
    int n;
    size_t mark = out->len;
    if (body_fields_n(ev, &m, &n) || client_time(&m, n, &ct) || redactions(&m, n, &rd))
        return REEL_ECORRUPT;
    store_buf_puts(out, "{\"session_id\":");
    store_json_write_string(out, ev->session, ev->session_len);
    store_buf_puts(out, ",\"sequence\":");
    store_buf_put_u64(out, ev->sequence);
    if (!(flags & REPLAY_NO_POSITION)) {
        store_buf_puts(out, ",\"position\":");
        store_buf_put_u64(out, ev->position);
    }
    for (int i = 0; i < REPLAY_F_CLIENT_TIME; i++) {
        if (i == 6 && !(flags & REPLAY_RAW))
            break;
        key(out, names[i]);
        if (store_mp_to_json(&m, out, STORE_JSON_MAX_DEPTH)) {
            out->len = mark;
            return REEL_ECORRUPT;
        }
        if (i == 0) { /* time follows event_id, then client_time if given (docs/HTTP.md) */
            key(out, "time");
            replay_write_time(out, (int64_t)ev->time_ms);
            if (ct.p) {
                key(out, "client_time");
                if (store_mp_to_json(&ct, out, STORE_JSON_MAX_DEPTH)) {
                    out->len = mark;
                    return REEL_ECORRUPT;
                }
            }
        }
    }
    if (rd.p) { /* what ingest redacted (docs/REDACTION.md) */
        key(out, "redactions");
        if (store_mp_to_json(&rd, out, STORE_JSON_MAX_DEPTH)) {
            out->len = mark;
            return REEL_ECORRUPT;
        }
    }
    if (ev->redacted) /* rewritten after the fact (docs/REDACTION.md) */
        store_buf_puts(out, ",\"redacted\":true");
    store_buf_putc(out, '}');
    return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}

int replay_envelope(store_buf_t *out, const store_event_view_t *ev)
{
    return replay_write_event(out, ev, 0);
}

/* The end of the digits at 'p' (at most 'end'). */
static const char *digits_end(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

void replay_drop_position(store_buf_t *out, size_t mark)
{
    static const char head[] = "{\"session_id\":\"", seq[] = ",\"sequence\":",
                      pos[] = ",\"position\":";
    char *p = (char *)out->data + mark, *end = (char *)out->data + out->len;
    if ((size_t)(end - p) < sizeof head - 1 || memcmp(p, head, sizeof head - 1))
        return;
    /* The id is a JSON string: its end is the first quote no backslash escapes. */
    for (p += sizeof head - 1; p < end && *p != '"'; p++)
        if (*p == '\\')
            p++;
    if (p >= end || (size_t)(end - ++p) < sizeof seq - 1 || memcmp(p, seq, sizeof seq - 1))
        return;
    p = (char *)digits_end(p + sizeof seq - 1, end);
    if ((size_t)(end - p) < sizeof pos - 1 || memcmp(p, pos, sizeof pos - 1))
        return;
    const char *q = digits_end(p + sizeof pos - 1, end);
    memmove(p, q, (size_t)(end - q));
    out->len -= (size_t)(q - p);
}

int replay_write_verify(store_buf_t *out, const store_verify_report_t *rep, int flags)
{
    store_buf_printf(out, "{\"ok\":%s,\"sessions\":%llu,\"events\":%llu,\"log_entries\":%llu",
                     rep->ok ? "true" : "false", (unsigned long long)rep->sessions,
                     (unsigned long long)rep->events, (unsigned long long)rep->log_entries);
    if (!rep->ok) {
        store_buf_puts(out, ",\"first_error\":{\"session\":");
        store_json_write_string(out, rep->session, strlen(rep->session));
        store_buf_printf(out, ",\"sequence\":%llu", (unsigned long long)rep->sequence);
        if (!(flags & REPLAY_NO_POSITION))
            store_buf_printf(out, ",\"position\":%llu", (unsigned long long)rep->position);
        store_buf_printf(out, ",\"ok_up_to\":%llu,\"problem\":",
                         (unsigned long long)rep->ok_up_to);
        store_json_write_string(out, rep->problem, strlen(rep->problem));
        store_buf_putc(out, '}');
    }
    store_buf_putc(out, '}');
    return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}

static void opt_time(store_buf_t *out, const char *k, int64_t ms)
{
    key(out, k);
    if (ms)
        replay_write_time(out, ms);
    else
        store_buf_puts(out, "null");
}

static void opt_str(store_buf_t *out, const char *k, const char *v, size_t n)
{
    key(out, k);
    if (n)
        store_json_write_string(out, v, n);
    else
        store_buf_puts(out, "null");
}

void replay_write_retention(store_buf_t *out, const store_retention_t *p)
{
    store_buf_puts(out, ",\"retention\":{");
    const char *sep = "";
    if (p->max_age_ms) {
        store_buf_printf(out, "\"max_age\":%llu", (unsigned long long)(p->max_age_ms / 1000));
        sep = ",";
    }
    if (p->max_age_ended_ms) {
        store_buf_printf(out, "%s\"max_age_after_end\":%llu", sep,
                         (unsigned long long)(p->max_age_ended_ms / 1000));
        sep = ",";
    }
    if (p->max_events) {
        store_buf_printf(out, "%s\"max_events\":%llu", sep, (unsigned long long)p->max_events);
        sep = ",";
    }
    if (p->no_archive)
        store_buf_printf(out, "%s\"archive\":false", sep);
    store_buf_putc(out, '}');
}

/* The usage summary (docs/FORMAT.md section 16), only the parts that are set: a session
 * without usage events renders exactly as before. */
static void write_usage(store_buf_t *out, const store_session_t *rec)
{
    if (rec->model_len)
        opt_str(out, "model", rec->model, rec->model_len);
    if (rec->turns)
        store_buf_printf(out, ",\"turns\":%llu", (unsigned long long)rec->turns);
    if (rec->input_tokens || rec->output_tokens)
        store_buf_printf(out, ",\"input_tokens\":%llu,\"output_tokens\":%llu",
                         (unsigned long long)rec->input_tokens,
                         (unsigned long long)rec->output_tokens);
    if (rec->cost_nusd) /* nano-USD as a decimal: exact, no float rounding */
        store_buf_printf(out, ",\"cost_usd\":%llu.%09llu",
                         (unsigned long long)(rec->cost_nusd / 1000000000u),
                         (unsigned long long)(rec->cost_nusd % 1000000000u));
}

int replay_write_session(store_buf_t *out, const store_session_t *rec)
{
    static const char *status[] = {"active", "ended", "deleted"};
    store_buf_puts(out, "{\"id\":");
    store_json_write_string(out, rec->id, rec->id_len);
    opt_str(out, "agent", rec->agent, rec->agent_len);
    opt_str(out, "native_session_id", rec->native_session_id, rec->native_session_id_len);
    key(out, "status");
    store_buf_printf(out, "\"%s\"", status[rec->status]);
    opt_time(out, "created_at", rec->created_ms);
    opt_time(out, "updated_at", rec->updated_ms);
    opt_time(out, "ended_at", rec->ended_ms);
    opt_time(out, "first_event_at", rec->first_event_ms);
    store_buf_printf(out, ",\"last_sequence\":%llu,\"event_count\":%llu,\"bytes\":%llu"
                          ",\"runs\":%llu,\"version\":%llu",
                     (unsigned long long)rec->last_sequence,
                     (unsigned long long)rec->event_count, (unsigned long long)rec->bytes,
                     (unsigned long long)rec->runs, (unsigned long long)rec->version);
    /* retention (docs/RETENTION.md): the first kept sequence of a trimmed session, and the
     * policy when set; a session retention never touched renders exactly as before */
    if (rec->first_sequence > 1)
        store_buf_printf(out, ",\"first_sequence\":%llu",
                         (unsigned long long)rec->first_sequence);
    if (rec->retention.set)
        replay_write_retention(out, &rec->retention);
    write_usage(out, rec);
    key(out, "metadata");
    if (rec->metadata) {
        store_mp_t m = {rec->metadata, rec->metadata + rec->metadata_len};
        if (store_mp_to_json(&m, out, STORE_JSON_MAX_DEPTH))
            return REEL_ECORRUPT;
    } else {
        store_buf_puts(out, "{}");
    }
    store_buf_putc(out, '}');
    return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}
