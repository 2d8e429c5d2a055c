/* pgrecord.c -- a session record as the feed with changes serves it (replay_write_session,
 * kept verbatim in the sink's changes.record column) back into a store_session_t, for the
 * PostgreSQL loader (pgload.h). Parsed with the store's own JSON reader, so strings keep
 * NUL and lone surrogates exactly (WTF-8) and the metadata comes back byte for byte as the
 * msgpack it was rendered from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/pgload_int.h"
#include "store/json.h"
#include "store/parse.h"

#define KEY(k) (key->len == sizeof(k) - 1 && !memcmp(key->data, k, key->len))

/* A string value into 'dst' (cap with the NUL after it), bytes kept exactly. */
static int string_into(store_json_t *j, store_buf_t *tmp, char *dst, size_t cap, size_t *len)
{
    store_buf_clear(tmp);
    int rc;
    if (store_json_peek(j) == 'n') { /* null: none */
        rc = j->end - j->p >= 4 && !memcmp(j->p, "null", 4) ? REEL_OK : REEL_EINVALID_JSON;
        j->p += rc ? 0 : 4;
    } else {
        rc = store_json_string(j, tmp);
    }
    if (rc || tmp->len >= cap)
        return rc ? rc : REEL_EINVALID_PARAMETER;
    if (tmp->len)
        memcpy(dst, tmp->data, tmp->len);
    dst[tmp->len] = 0;
    *len = tmp->len;
    return REEL_OK;
}

/* A time ("2026-...Z" as replay writes it) in Unix ms. */
static int time_into(store_json_t *j, store_buf_t *tmp, int64_t *out)
{
    char t[48];
    size_t n;
    int rc = string_into(j, tmp, t, sizeof t, &n);
    if (rc || !n) /* null: none */
        return *out = 0, rc;
    *out = store_parse_time(t, n);
    return *out < 0 ? REEL_EINVALID_PARAMETER : REEL_OK;
}

/* The value as msgpack in 'tmp', read back as one object. */
static int value_obj(store_json_t *j, store_buf_t *tmp, store_mp_obj_t *o)
{
    store_buf_clear(tmp);
    int rc = store_json_value(j, tmp, 1);
    if (rc || store_buf_failed(tmp))
        return rc ? rc : REEL_ENOMEM;
    store_mp_t m = {tmp->data, tmp->data + tmp->len};
    return store_mp_next(&m, o) ? REEL_EINVALID_PARAMETER : REEL_OK;
}

static int u64_into(store_json_t *j, store_buf_t *tmp, uint64_t *out)
{
    store_mp_obj_t o;
    int rc = value_obj(j, tmp, &o);
    if (!rc && o.type != STORE_MP_UINT)
        rc = REEL_EINVALID_PARAMETER;
    if (!rc)
        *out = o.u;
    return rc;
}

/* cost_usd: written as N.NNNNNNNNN (exact nano-USD) or an integer. */
static int cost_into(store_json_t *j, store_buf_t *tmp, uint64_t *nusd)
{
    store_mp_obj_t o;
    int rc = value_obj(j, tmp, &o);
    if (rc)
        return rc;
    if (o.type == STORE_MP_UINT) {
        *nusd = o.u * 1000000000u;
        return REEL_OK;
    }
    char t[64];
    if (o.type != STORE_MP_EXT || o.ext != STORE_MP_EXT_NUMBER || o.len >= sizeof t)
        return REEL_EINVALID_PARAMETER;
    memcpy(t, o.ptr, o.len);
    t[o.len] = 0;
    char *dot = strchr(t, '.'), *end;
    uint64_t whole = strtoull(t, &end, 10), frac = 0;
    if (dot) {
        size_t digits = strlen(dot + 1);
        if (digits > 9)
            return REEL_EINVALID_PARAMETER;
        frac = strtoull(dot + 1, &end, 10);
        for (size_t i = digits; i < 9; i++)
            frac *= 10;
    }
    if (*end)
        return REEL_EINVALID_PARAMETER;
    *nusd = whole * 1000000000u + frac;
    return REEL_OK;
}

/* retention: {max_age, max_age_after_end (seconds), max_events, archive:false}. */
static int retention_into(store_json_t *j, store_buf_t *tmp, store_retention_t *p)
{
    store_mp_obj_t o, k, v;
    int rc = value_obj(j, tmp, &o);
    if (rc || o.type != STORE_MP_MAP)
        return rc ? rc : REEL_EINVALID_PARAMETER;
    memset(p, 0, sizeof *p);
    p->set = 1;
    store_mp_t m = {tmp->data, tmp->data + tmp->len};
    store_mp_next(&m, &o);
    for (uint64_t i = 0; i < o.u; i++) {
        if (store_mp_next(&m, &k) || k.type != STORE_MP_STR || store_mp_next(&m, &v))
            return REEL_EINVALID_PARAMETER;
#define RKEY(name) (k.len == sizeof(name) - 1 && !memcmp(k.ptr, name, k.len))
        if (RKEY("max_age") && v.type == STORE_MP_UINT)
            p->max_age_ms = v.u * 1000;
        else if (RKEY("max_age_after_end") && v.type == STORE_MP_UINT)
            p->max_age_ended_ms = v.u * 1000;
        else if (RKEY("max_events") && v.type == STORE_MP_UINT)
            p->max_events = v.u;
        else if (RKEY("archive") && v.type == STORE_MP_BOOL)
            p->no_archive = !v.u;
        else
            return REEL_EINVALID_PARAMETER;
#undef RKEY
    }
    return REEL_OK;
}

static int status_into(store_json_t *j, store_buf_t *tmp, int *status)
{
    char t[16];
    size_t n;
    int rc = string_into(j, tmp, t, sizeof t, &n);
    if (rc)
        return rc;
    static const char *names[] = {"active", "ended", "deleted"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(t, names[i]))
            return *status = i, REEL_OK;
    return REEL_EINVALID_PARAMETER;
}

/* One member of the record. 'meta' gets the metadata's msgpack ("{}" leaves it empty:
 * no metadata, which is how it renders). */
static int field(store_json_t *j, const store_buf_t *key, store_buf_t *tmp,
                 store_session_t *r, store_buf_t *meta)
{
    if (KEY("id"))
        return string_into(j, tmp, r->id, sizeof r->id, &r->id_len);
    if (KEY("agent"))
        return string_into(j, tmp, r->agent, sizeof r->agent, &r->agent_len);
    if (KEY("native_session_id"))
        return string_into(j, tmp, r->native_session_id, sizeof r->native_session_id,
                           &r->native_session_id_len);
    if (KEY("model"))
        return string_into(j, tmp, r->model, sizeof r->model, &r->model_len);
    if (KEY("status"))
        return status_into(j, tmp, &r->status);
    if (KEY("created_at"))
        return time_into(j, tmp, &r->created_ms);
    if (KEY("updated_at"))
        return time_into(j, tmp, &r->updated_ms);
    if (KEY("ended_at"))
        return time_into(j, tmp, &r->ended_ms);
    if (KEY("first_event_at"))
        return time_into(j, tmp, &r->first_event_ms);
    if (KEY("last_sequence"))
        return u64_into(j, tmp, &r->last_sequence);
    if (KEY("event_count"))
        return u64_into(j, tmp, &r->event_count);
    if (KEY("bytes"))
        return u64_into(j, tmp, &r->bytes);
    if (KEY("runs"))
        return u64_into(j, tmp, &r->runs);
    if (KEY("version"))
        return u64_into(j, tmp, &r->version);
    if (KEY("first_sequence"))
        return u64_into(j, tmp, &r->first_sequence);
    if (KEY("turns"))
        return u64_into(j, tmp, &r->turns);
    if (KEY("input_tokens"))
        return u64_into(j, tmp, &r->input_tokens);
    if (KEY("output_tokens"))
        return u64_into(j, tmp, &r->output_tokens);
    if (KEY("cost_usd"))
        return cost_into(j, tmp, &r->cost_nusd);
    if (KEY("retention"))
        return retention_into(j, tmp, &r->retention);
    if (KEY("metadata")) {
        store_buf_clear(meta);
        int rc = store_json_value(j, meta, 1);
        if (!rc && meta->len == 1 && meta->data[0] == 0x80)
            store_buf_clear(meta); /* {}: none */
        return rc;
    }
    store_mp_obj_t ignored; /* a field a newer build added: passed over */
    return value_obj(j, tmp, &ignored);
}

int cluster__record_parse(const char *json, size_t len, store_session_t *r, store_buf_t *meta)
{
    memset(r, 0, sizeof *r);
    r->first_sequence = 1;
    store_buf_clear(meta);
    store_json_t j;
    store_buf_t key = STORE_BUF_INIT, tmp = STORE_BUF_INIT;
    store_json_init(&j, json, len, STORE_JSON_MAX_DEPTH, NULL);
    int rc = store_json_expect(&j, '{');
    if (!rc && store_json_peek(&j) == '}')
        j.p++;
    else
        while (!rc) {
            store_buf_clear(&key);
            if ((rc = store_json_string(&j, &key)) || (rc = store_json_expect(&j, ':')) ||
                (rc = field(&j, &key, &tmp, r, meta)))
                break;
            int c = store_json_peek(&j);
            if (c == '}') {
                j.p++;
                break;
            }
            rc = store_json_expect(&j, ',');
        }
    if (!rc && (!r->id_len || store_buf_failed(meta)))
        rc = store_buf_failed(meta) ? REEL_ENOMEM : REEL_EINVALID_PARAMETER;
    if (!rc && meta->len) {
        r->metadata = meta->data;
        r->metadata_len = meta->len;
    }
    store_buf_release(&key);
    store_buf_release(&tmp);
    return rc;
}
