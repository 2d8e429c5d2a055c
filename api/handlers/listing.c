/* listing.c -- lists of session records: GET /v1/sessions, and GET /v1/tenant (what the
 * caller's token may do and has used).
 *
 * A token limited to session prefixes (a tenant) learns nothing of other tenants' records
 * here: see tenant_listing() and docs/HTTP.md "Tenants".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "replay/replay.h"
#include "store/json.h"
#include "store/parse.h"

#define LIST_MAX 1000      /* sessions per page */
#define LIST_BUDGET 20000  /* records one filtered page may examine */

/* ---- List ----
 *
 * GET /v1/sessions?prefix=&order=id|recent&agent=&status=&limit=&cursor= (docs/HTTP.md).
 * The cursor is opaque to clients: in id order it is the last session id examined (what
 * earlier versions served), in recent order "<updated_ms>.<num>" of the last record
 * examined. A page examines at most LIST_BUDGET records; a filtered page that ran out of
 * budget comes back short (even empty) with a next_cursor. */

struct list {
    store_buf_t *out;
    size_t n;
    int err;
    api_req_t *rq;      /* a tenant's listing keeps only its own records */
    int peek, found;    /* the page is full: only look whether another of its own follows */
    int64_t mine_ms;    /* the last record served: a tenant's recent-order cursor */
    char mine_id[STORE_SESSION_ID_MAX + 1];
};

static int list_record(void *arg, const store_session_t *rec)
{
    struct list *l = arg;
    if (l->rq && !api__tenant_allows(l->rq, rec->id, rec->id_len))
        return 0;
    if (l->peek)
        return l->found = 1;
    if (l->n)
        store_buf_putc(l->out, ',');
    int rc = replay_write_session(l->out, rec);
    if (rc != REEL_OK) {
        l->err = rc;
        return 1;
    }
    l->n++;
    l->mine_ms = rec->updated_ms;
    memcpy(l->mine_id, rec->id, rec->id_len);
    l->mine_id[rec->id_len] = '\0';
    return 0;
}

static int parse_status(const char *s)
{
    if (!strcmp(s, "active"))
        return STORE_ACTIVE;
    if (!strcmp(s, "ended"))
        return STORE_ENDED;
    if (!strcmp(s, "deleted"))
        return STORE_DELETED;
    return -1;
}

/* A recent-order cursor: "<updated_ms>.<num>", both decimal. */
static int parse_recent_cursor(const char *c, store_list_t *q)
{
    const char *dot = strchr(c, '.');
    uint64_t ms, num;
    if (!dot || store_parse_u64(c, (size_t)(dot - c), &ms) ||
        store_parse_u64(dot + 1, strlen(dot + 1), &num) || ms > INT64_MAX || !num)
        return -1;
    q->started = 1;
    q->last_ms = (int64_t)ms;
    q->last_num = num;
    return 0;
}

/* A tenant's recent-order cursor: "<updated_ms>.<id>" of the last record it was served
 * (its own), where others get the store-wide session number (docs/HTTP.md "Tenants").
 * The number is looked up again; a session gone for good resumes after every record of
 * that time (some may come again, none is skipped). */
static int parse_tenant_recent_cursor(api_req_t *rq, const char *c, store_list_t *q)
{
    const char *dot = strchr(c, '.');
    uint64_t ms;
    size_t id_len = dot ? strlen(dot + 1) : 0;
    if (!dot || store_parse_u64(c, (size_t)(dot - c), &ms) || ms > INT64_MAX ||
        !store_session_id_valid(dot + 1, id_len) || !api__tenant_allows(rq, dot + 1, id_len))
        return -1;
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return -1;
    rc = store_session_get(&r, dot + 1, id_len, &rec);
    q->last_num = rc == REEL_OK ? rec.num : UINT64_MAX;
    store_read_end(&r);
    q->started = 1;
    q->last_ms = (int64_t)ms;
    return rc == REEL_OK || rc == REEL_ESESSION_NOT_FOUND ? 0 : -1;
}

/* A token limited to session prefixes lists only under them, and learns nothing of other
 * sessions. In id order the listing is narrowed to its prefix (the store then examines no
 * other record, so neither short pages nor cursors speak of them). In recent order the
 * store walks every record by time: the tenant's records are kept (list_record), the page
 * goes on past others' until it is full or the walk ends, and the cursor names its own
 * last record. A token with several prefixes must name one with ?prefix= in id order.
 * '*empty' when the request's prefix lies outside the token's. */
static enum MHD_Result tenant_listing(api_req_t *rq, store_list_t *q, char *prefix, size_t cap,
                                      int *empty)
{
    if (q->order != STORE_ORDER_ID) {
        const char *p = rq->prefixes;
        for (size_t i = 0; i < rq->n_prefixes; i++, p += strlen(p) + 1)
            if (!q->prefix || (strlen(p) >= q->prefix_len && !memcmp(p, q->prefix, q->prefix_len)) ||
                (q->prefix_len >= strlen(p) && !memcmp(q->prefix, p, strlen(p))))
                return MHD_YES;
        *empty = 1;
        return MHD_YES;
    }
    const char *p = rq->prefixes, *mine = NULL;
    for (size_t i = 0; i < rq->n_prefixes; i++, p += strlen(p) + 1) {
        size_t pl = strlen(p);
        if (q->prefix && q->prefix_len >= pl && !memcmp(q->prefix, p, pl))
            return MHD_YES; /* already inside this prefix */
        if (!q->prefix || (pl > q->prefix_len && !memcmp(p, q->prefix, q->prefix_len)))
            mine = mine ? "" : p; /* "" marks a second candidate */
    }
    if (!mine) {
        *empty = 1;
        return MHD_YES;
    }
    if (!*mine)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "this token has several session "
                            "prefixes: name one with ?prefix= (GET /v1/tenant lists them)");
    snprintf(prefix, cap, "%s", mine);
    q->prefix = prefix;
    q->prefix_len = strlen(prefix);
    return MHD_YES;
}

enum MHD_Result api__sessions_list(api_req_t *rq, const char *data, size_t *size)
{
    char cursor[STORE_SESSION_ID_MAX + 1] = "", agent[STORE_NAME_MAX + 1], status[16],
        order[16] = "id";
    char prefix[STORE_SESSION_ID_MAX + 1];
    uint64_t limit = API_DEFAULT_LIMIT;
    store_list_t *q = calloc(1, sizeof *q);
    if (!q)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    q->status = -1;
    enum MHD_Result res = MHD_YES;
    int rc = api__query(rq, "order", order, sizeof order);
    if (rc < 0 || (strcmp(order, "id") && strcmp(order, "recent"))) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER, "'order' must be id or recent, not '%s'",
                           rc < 0 ? "(bad encoding or too long)" : order);
        goto done;
    }
    q->order = strcmp(order, "recent") ? STORE_ORDER_ID : STORE_ORDER_RECENT;
    rc = api__query(rq, "prefix", prefix, sizeof prefix);
    if (rc < 0 || (rc > 0 && prefix[0] && !store_session_id_valid(prefix, strlen(prefix)) &&
                   strcmp(prefix, ".") && strcmp(prefix, ".."))) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER,
                           "'prefix' must be UTF-8 of at most %d bytes without control "
                           "characters (percent-encoded)", STORE_SESSION_ID_MAX);
        goto done;
    }
    if (rc > 0 && prefix[0]) {
        q->prefix = prefix;
        q->prefix_len = strlen(prefix);
    }
    if (rq->n_prefixes) {
        int empty = 0;
        if ((res = tenant_listing(rq, q, prefix, sizeof prefix, &empty)) != MHD_YES || rq->phase == API_PHASE_ANSWERED)
            goto done;
        if (empty) {
            store_buf_t none = STORE_BUF_INIT;
            store_buf_puts(&none, "{\"sessions\":[],\"next_cursor\":null}");
            res = api__reply_json(rq, 200, &none);
            goto done;
        }
    }
    rc = api__query(rq, "cursor", cursor, sizeof cursor);
    if (rc > 0 && cursor[0]) {
        if (q->order == STORE_ORDER_RECENT && rq->n_prefixes) {
            rc = parse_tenant_recent_cursor(rq, cursor, q) ? -1 : rc;
        } else if (q->order == STORE_ORDER_RECENT) {
            rc = parse_recent_cursor(cursor, q) ? -1 : rc;
        } else if (store_session_id_valid(cursor, strlen(cursor))) {
            q->started = 1;
            q->last_id_len = strlen(cursor);
            memcpy(q->last_id, cursor, q->last_id_len + 1);
        } else {
            rc = -1;
        }
    }
    if (rc < 0) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER,
                           "'cursor' is not a cursor of this listing (%s order): pass "
                           "next_cursor as it was served", order);
        goto done;
    }
    if (api__query_u64(rq, "limit", LIST_MAX, &limit) != REEL_OK)
        goto done;
    if (limit == 0) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER, "'limit' must be from 1 to %d", LIST_MAX);
        goto done;
    }
    rc = api__query(rq, "agent", agent, sizeof agent);
    if (rc < 0) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER, "'agent' is not valid");
        goto done;
    }
    if (rc > 0) {
        q->agent = agent;
        q->agent_len = strlen(agent);
    }
    rc = api__query(rq, "status", status, sizeof status);
    if (rc < 0 || (rc > 0 && (q->status = parse_status(status)) < 0)) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER,
                           "'status' must be active, ended or deleted, not '%s'",
                           rc < 0 ? "(bad encoding or too long)" : status);
        goto done;
    }
    store_buf_t out = STORE_BUF_INIT;
    struct list l = {&out, 0, 0, rq->n_prefixes && q->order == STORE_ORDER_RECENT ? rq : NULL,
                     0, 0, 0, ""};
    int more = 0;
    store_buf_puts(&out, "{\"sessions\":[");
    /* A tenant's recent page goes on, a short read at a time, until it holds 'limit' of
     * its own records or the walk ends, then looks on for one more of its own: its length,
     * next_cursor and the page after tell nothing of others' records. */
    do {
        store_read_t r;
        l.peek = l.rq && l.n == limit;
        if ((rc = store_read_begin(rq->srv->store, &r)) == REEL_OK) {
            rc = store_sessions_query(&r, q, l.peek ? LIST_BUDGET : (size_t)limit - l.n,
                                      LIST_BUDGET, list_record, &l, &more);
            store_read_end(&r);
            if (rc == 1 && l.found) /* list_record's stop: one more of its own is there */
                rc = REEL_OK;
        }
    } while (l.rq && rc == REEL_OK && !l.err && more && !l.found);
    if (l.rq)
        more = l.found;
    if (rc == REEL_OK && l.err)
        rc = l.err;
    if (rc != REEL_OK) {
        store_buf_release(&out);
        res = api__problem(rq, rc, "listing sessions failed: %s", reel_strerror(rc));
        goto done;
    }
    store_buf_puts(&out, "],\"next_cursor\":");
    if (!more) {
        store_buf_puts(&out, "null");
    } else if (l.rq) {
        store_buf_t c = STORE_BUF_INIT;
        store_buf_printf(&c, "%lld.%s", (long long)l.mine_ms, l.mine_id);
        store_json_write_string(&out, (const char *)c.data, c.len);
        store_buf_release(&c);
    } else if (q->order == STORE_ORDER_RECENT) {
        char c[48];
        snprintf(c, sizeof c, "%lld.%llu", (long long)q->last_ms,
                 (unsigned long long)q->last_num);
        store_json_write_string(&out, c, strlen(c));
    } else {
        store_json_write_string(&out, q->last_id, q->last_id_len);
    }
    store_buf_putc(&out, '}');
    res = api__reply_json(rq, 200, &out);
done:
    free(q);
    return res;
}

/* ---- GET /v1/tenant: what the caller's token may do ---- */

enum MHD_Result api__tenant(api_req_t *rq, const char *data, size_t *size)
{
    store_buf_t out = STORE_BUF_INIT;
    store_buf_puts(&out, "{\"name\":");
    if (rq->token_name[0])
        store_json_write_string(&out, rq->token_name, strlen(rq->token_name));
    else
        store_buf_puts(&out, "null");
    store_buf_puts(&out, ",\"scopes\":[");
    int scope = rq->token_scope ? rq->token_scope : API_SCOPE_FULL, first = 1; /* 0: no auth */
    for (int i = 0; i < 4; i++)
        if (scope & (1 << i)) {
            store_buf_printf(&out, "%s\"%s\"", first ? "" : ",", api_scope_name(i));
            first = 0;
        }
    store_buf_puts(&out, "],\"prefixes\":");
    if (!rq->n_prefixes) {
        store_buf_puts(&out, "null"); /* every session */
    } else {
        store_buf_putc(&out, '[');
        const char *p = rq->prefixes;
        for (size_t i = 0; i < rq->n_prefixes; i++, p += strlen(p) + 1) {
            if (i)
                store_buf_putc(&out, ',');
            store_json_write_string(&out, p, strlen(p));
        }
        store_buf_putc(&out, ']');
    }
    store_buf_puts(&out, ",\"usage\":");
    api__tenant_usage(rq, &out);
    store_buf_putc(&out, '}');
    return api__reply_json(rq, 200, &out);
}
