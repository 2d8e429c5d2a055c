/* stats.c -- analytics over a range of the log (contract in replay.h).
 *
 * Counting maps are jansson objects: the report is JSON anyway, and their hash tables are
 * plenty for the number of distinct types, agents, sources and tools a log holds.
 *
 * Out of memory: every jansson call that can allocate goes through set_new() or is
 * checked where it is made; a failure is sticky in 'stats.failed', the scan stops and
 * replay_stats() returns REEL_ENOMEM (as store_buf_t does with its sticky OOM).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"

#define CHUNK 4096

struct span {
    int64_t first, last; /* event times (ms) */
};

struct stats {
    store_t *s;
    const replay_stats_opts_t *opt;
    uint64_t events, errors, unparsed, first_pos, last_pos, tail;
    json_t *by_type, *by_agent, *by_source, *tools, *usage;
    json_t *sessions; /* id -> index into spans */
    struct span *spans;
    size_t n_spans, cap_spans;
    store_read_t *r;
    uint64_t last;
    int done;
    int failed; /* sticky: an allocation failed, the counts are incomplete */
};

/* json_object_set_new() that records a failure (a NULL 'v' from its constructor, or a
 * refused insert) in 'st'. Steals 'v'. Keys are whole UTF-8 characters (see key()), and
 * may hold a lone surrogate (WTF-8, store/json.h): not checked by jansson, written by
 * replay__json_write(). */
static void set_new(struct stats *st, json_t *o, const char *k, json_t *v)
{
    if (json_object_set_new_nocheck(o, k, v))
        st->failed = 1;
}

/* Copies 'len' bytes of 'p' into 'k' (of 'size' bytes) as a C string, cut to fit; 0 if
 * the cut falls inside a UTF-8 character. jansson refuses such a key, so the count is
 * left out, as it always was. */
static int key(char *k, size_t size, const char *p, size_t len)
{
    int split = len >= size && ((unsigned char)p[size - 1] & 0xc0) == 0x80 &&
                !memchr(p, 0, size - 1); /* jansson's key ends at a NUL */
    if (len >= size)
        len = size - 1;
    memcpy(k, p, len);
    k[len] = 0;
    return !split;
}

static void bump(struct stats *st, json_t *map, const char *name, size_t len, json_int_t by)
{
    char k[STORE_TYPE_MAX + STORE_NAME_MAX + 2];
    if (!key(k, sizeof k, name, len))
        return;
    json_t *v = json_object_get(map, k);
    if (v)
        json_integer_set(v, json_integer_value(v) + by);
    else
        set_new(st, map, k, json_integer(by));
}

/* Adds every numeric field of a usage event's data into st->usage. */
static void add_usage(struct stats *st, store_mp_t data)
{
    store_mp_obj_t o, k, v;
    if (store_mp_next(&data, &o) || o.type != STORE_MP_MAP)
        return;
    for (uint64_t i = 0; i < o.u; i++) {
        if (store_mp_next(&data, &k) || k.type != STORE_MP_STR)
            return;
        const uint8_t *start = data.p;
        if (store_mp_next(&data, &v))
            return;
        double x;
        if (v.type == STORE_MP_UINT)
            x = (double)v.u;
        else if (v.type == STORE_MP_INT)
            x = (double)v.i;
        else if (v.type == STORE_MP_EXT && v.ext == STORE_MP_EXT_NUMBER && v.len < 64) {
            char num[64];
            memcpy(num, v.ptr, v.len);
            num[v.len] = 0;
            x = strtod(num, NULL);
        } else {
            data.p = start;
            if (store_mp_skip(&data, STORE_JSON_MAX_DEPTH))
                return;
            continue;
        }
        char name[128];
        if (!key(name, sizeof name, (const char *)k.ptr, k.len))
            continue;
        json_t *cur = json_object_get(st->usage, name);
        double sum = (cur ? json_number_value(cur) : 0) + x;
        if (isfinite(sum)) /* jansson has no infinite reals: the total stays as it was */
            set_new(st, st->usage, name, json_real(sum));
    }
}

/* The tool name of a tool-call item.started (flat universal data, sandbox-agent's
 * data.item, or an ACP session/update tool_call). */
static int tool_name(store_mp_t data, const char **name, size_t *len)
{
    static const char *const kind_flat[] = {"kind", NULL}, *const kind_item[] = {"item", "kind", NULL};
    static const char *const names[][3] = {{"name", NULL}, {"tool_name", NULL}, {"title", NULL},
                                           {"item", "name", NULL}};
    const char *k;
    size_t kl;
    if (!(replay__mp_path_str(data, kind_flat, &k, &kl) ||
          replay__mp_path_str(data, kind_item, &k, &kl)) ||
        kl != 9 || memcmp(k, "tool_call", 9))
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (replay__mp_path_str(data, names[i], name, len))
            return 1;
    *name = "unknown";
    *len = 7;
    return 1;
}

static int acp_tool_name(store_mp_t data, const char **name, size_t *len)
{
    static const char *const upd[] = {"params", "update", "sessionUpdate", NULL};
    static const char *const title[] = {"params", "update", "title", NULL};
    const char *u;
    size_t ul;
    if (!replay__mp_path_str(data, upd, &u, &ul) || ul != 9 || memcmp(u, "tool_call", 9))
        return 0;
    if (!replay__mp_path_str(data, title, name, len))
        *name = "unknown", *len = 7;
    return 1;
}

static int session_span(struct stats *st, const store_event_view_t *ev)
{
    char id[STORE_SESSION_ID_MAX + 1];
    memcpy(id, ev->session, ev->session_len);
    id[ev->session_len] = 0;
    json_t *ix = json_object_get(st->sessions, id);
    if (!ix) {
        if (st->n_spans == st->cap_spans) {
            size_t cap = st->cap_spans ? st->cap_spans * 2 : 64;
            struct span *v = realloc(st->spans, cap * sizeof *v);
            if (!v)
                return REEL_ENOMEM;
            st->spans = v, st->cap_spans = cap;
        }
        st->spans[st->n_spans] = (struct span){(int64_t)ev->time_ms, (int64_t)ev->time_ms};
        set_new(st, st->sessions, id, json_integer((json_int_t)st->n_spans++));
        return REEL_OK;
    }
    struct span *sp = &st->spans[json_integer_value(ix)];
    if ((int64_t)ev->time_ms < sp->first)
        sp->first = (int64_t)ev->time_ms;
    if ((int64_t)ev->time_ms > sp->last)
        sp->last = (int64_t)ev->time_ms;
    return REEL_OK;
}

static int count_event(void *arg, const store_event_view_t *ev)
{
    struct stats *st = arg;
    st->last = st->opt->session ? ev->sequence : ev->position;
    if (!st->opt->session && ev->position > st->tail) {
        st->done = 1;
        return 1;
    }
    if ((st->opt->since_ms && (int64_t)ev->time_ms < st->opt->since_ms) ||
        (st->opt->before_ms && (int64_t)ev->time_ms >= st->opt->before_ms))
        return 0;
    store_mp_t f[REPLAY_NFIELDS];
    const char *type, *src, *name;
    size_t tlen, slen, nlen;
    if (replay__body_fields(ev, f) || !replay__mp_str(f[REPLAY_F_TYPE], &type, &tlen))
        return REEL_ECORRUPT;
    st->events++;
    if (!st->first_pos)
        st->first_pos = ev->position;
    st->last_pos = ev->position;
    bump(st, st->by_type, type, tlen, 1);
    if (replay__mp_str(f[REPLAY_F_SOURCE], &src, &slen))
        bump(st, st->by_source, src, slen, 1);
    else
        bump(st, st->by_source, "none", 4, 1);
    int rc = session_span(st, ev);
    if (rc)
        return rc;
    store_session_t rec;
    if (!store_session_get(st->r, ev->session, ev->session_len, &rec))
        bump(st, st->by_agent, rec.agent_len ? rec.agent : "unknown",
             rec.agent_len ? rec.agent_len : 7, 1);
#define IS(t) (tlen == sizeof(t) - 1 && !memcmp(type, t, tlen))
    if (IS("error"))
        st->errors++;
    else if (IS("agent.unparsed"))
        st->unparsed++;
    else if (IS("usage"))
        add_usage(st, f[REPLAY_F_DATA]);
    else if (IS("item.started") && tool_name(f[REPLAY_F_DATA], &name, &nlen))
        bump(st, st->tools, name, nlen, 1);
    else if (acp_tool_name(f[REPLAY_F_DATA], &name, &nlen))
        bump(st, st->tools, name, nlen, 1);
#undef IS
    return st->failed ? REEL_ENOMEM : 0;
}

/* Sums are doubles; integral ones are written as integers (token counts). */
static void integral_usage(struct stats *st)
{
    const char *k;
    json_t *v;
    json_object_foreach(st->usage, k, v) {
        double x = json_real_value(v);
        if (x == (double)(json_int_t)x && x < 9007199254740992.0 && x > -9007199254740992.0)
            set_new(st, st->usage, k, json_integer((json_int_t)x));
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The session_durations object (new); NULL with 'st->failed' set when out of memory. */
static json_t *durations(struct stats *st)
{
    json_t *d = json_object();
    size_t n = st->n_spans;
    int64_t *v = n ? malloc(n * sizeof *v) : NULL, total = 0;
    if (!d || (n && !v)) {
        st->failed = 1;
        json_decref(d);
        free(v);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = st->spans[i].last - st->spans[i].first;
        total += v[i];
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_i64);
    set_new(st, d, "count", json_integer((json_int_t)n));
    set_new(st, d, "total_ms", json_integer(total));
    set_new(st, d, "mean_ms", json_integer(n ? total / (int64_t)n : 0));
    set_new(st, d, "p50_ms", json_integer(n ? v[n / 2] : 0));
    set_new(st, d, "p90_ms", json_integer(n ? v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1] : 0));
    set_new(st, d, "max_ms", json_integer(n ? v[n - 1] : 0));
    free(v);
    return d;
}

static int scan(struct stats *st, store_progress_cb progress, void *arg)
{
    const replay_stats_opts_t *o = st->opt;
    st->last = o->session ? 0 : o->after;
    while (!st->done) {
        store_read_t r;
        int rc = store_read_begin(st->s, &r), more = 0;
        if (rc)
            return rc;
        st->r = &r;
        uint64_t before = st->last;
        if (o->session)
            rc = store_events_after(&r, o->session, o->session_len, st->last, CHUNK, count_event,
                                    st, &more);
        else
            rc = st->last < st->tail ? store_feed_after(&r, st->last, CHUNK, count_event, st, &more)
                                     : REEL_OK;
        store_read_end(&r);
        if (rc < 0)
            return rc;
        if (!more || st->last == before || (!o->session && st->last >= st->tail))
            st->done = 1;
        if (progress)
            progress(arg, st->events, 0);
    }
    return REEL_OK;
}

/* The report object (new); NULL with 'st->failed' set when out of memory. */
static json_t *report(struct stats *st)
{
    const replay_stats_opts_t *opt = st->opt;
    int pos = !(opt->flags & REPLAY_NO_POSITION);
    json_t *res = json_object();
    json_t *range = pos ? json_pack("{s:I,s:I}", "after",
                                    (json_int_t)(opt->session ? 0 : opt->after), "until",
                                    (json_int_t)st->tail)
                        : json_object();
    if (!res || !range) {
        st->failed = 1;
        json_decref(res);
        json_decref(range);
        return NULL;
    }
    if (opt->since_ms)
        set_new(st, range, "since_ms", json_integer(opt->since_ms));
    if (opt->before_ms)
        set_new(st, range, "before_ms", json_integer(opt->before_ms));
    set_new(st, res, "range", range);
    set_new(st, res, "events", json_integer((json_int_t)st->events));
    set_new(st, res, "sessions", json_integer((json_int_t)st->n_spans));
    if (pos) {
        set_new(st, res, "first_position", json_integer((json_int_t)st->first_pos));
        set_new(st, res, "last_position", json_integer((json_int_t)st->last_pos));
    }
    set_new(st, res, "by_type", json_incref(st->by_type));
    set_new(st, res, "by_agent", json_incref(st->by_agent));
    set_new(st, res, "by_source", json_incref(st->by_source));
    set_new(st, res, "tool_calls", json_incref(st->tools));
    integral_usage(st);
    set_new(st, res, "usage", json_incref(st->usage));
    set_new(st, res, "session_durations", durations(st));
    set_new(st, res, "errors", json_integer((json_int_t)st->errors));
    set_new(st, res, "unparsed", json_integer((json_int_t)st->unparsed));
    return res;
}

int replay_stats(store_t *s, const replay_stats_opts_t *opt, store_buf_t *out,
                 store_progress_cb progress, void *arg)
{
    struct stats st;
    memset(&st, 0, sizeof st);
    st.s = s;
    st.opt = opt;
    store_read_t r;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    rc = store_tail_position(&r, &st.tail);
    if (!rc && opt->session) {
        store_session_t rec;
        rc = store_session_get(&r, opt->session, opt->session_len, &rec);
    }
    store_read_end(&r);
    if (rc)
        return rc;
    if (opt->until && opt->until < st.tail)
        st.tail = opt->until;
    st.by_type = json_object(), st.by_agent = json_object(), st.by_source = json_object();
    st.tools = json_object(), st.usage = json_object(), st.sessions = json_object();
    st.failed = !st.by_type || !st.by_agent || !st.by_source || !st.tools || !st.usage ||
                !st.sessions;
    rc = st.failed ? REEL_ENOMEM : scan(&st, progress, arg);
    json_t *res = rc ? NULL : report(&st);
    size_t mark = out->len;
    if (!rc)
        rc = st.failed ? REEL_ENOMEM
                       : replay__json_write(out, res, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (rc)
        out->len = mark; /* no half answer */
    json_decref(res);
    json_decref(st.by_type), json_decref(st.by_agent), json_decref(st.by_source);
    json_decref(st.tools), json_decref(st.usage), json_decref(st.sessions);
    free(st.spans);
    return rc;
}
