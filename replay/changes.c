/* changes.c -- the items of the feed with changes as JSON (docs/HTTP.md "The feed with
 * changes"): a change, and what a copy needs to rebuild an event (its chain hash and
 * stored body). The server's pages and SSE and `reel sink postgres --data` write them with
 * these, so the two cannot differ. */
#include "replay/replay.h"
#include "store/json.h"

static void put_hex(store_buf_t *out, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        store_buf_putc(out, hex[p[i] >> 4]);
        store_buf_putc(out, hex[p[i] & 15]);
    }
}

static void put_base64(store_buf_t *out, const uint8_t *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        store_buf_putc(out, b64[w >> 18 & 63]);
        store_buf_putc(out, b64[w >> 12 & 63]);
        store_buf_putc(out, i + 1 < n ? b64[w >> 6 & 63] : '=');
        store_buf_putc(out, i + 2 < n ? b64[w & 63] : '=');
    }
}

void replay_write_cursor(store_buf_t *out, uint64_t pos, uint32_t index)
{
    if (index)
        store_buf_printf(out, "%llu.%u", (unsigned long long)pos, index);
    else
        store_buf_printf(out, "%llu", (unsigned long long)pos);
}

int replay_write_event_body(store_buf_t *out, size_t mark, const store_event_view_t *ev,
                            int kept)
{
    if (out->len <= mark || out->data[out->len - 1] != '}')
        return REEL_ECORRUPT;
    out->len--;
    store_buf_puts(out, ",\"hash\":\"");
    put_hex(out, ev->hash, STORE_HASH_LEN);
    uint8_t k[STORE_HASH_LEN];
    if (kept && store_event_kept_hash(ev, k) == REEL_OK) { /* restore rebuilds the chain */
        store_buf_puts(out, "\",\"kept_hash\":\"");
        put_hex(out, k, STORE_HASH_LEN);
    }
    store_buf_puts(out, "\",\"body\":\"");
    put_base64(out, ev->body, ev->body_len);
    store_buf_puts(out, "\"}");
    return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}

int replay_write_change(store_buf_t *out, const store_change_view_t *ch)
{
    const char *name = store_change_name(ch->kind);
    const store_session_t *rec = ch->record;
    store_buf_printf(out, "{\"change\":\"%s\",\"kind\":%d,\"session_id\":", name ? name : "unknown",
                     ch->kind);
    store_json_write_string(out, rec->id, rec->id_len);
    store_buf_printf(out, ",\"position\":%llu,\"index\":%u,\"cursor\":\"",
                     (unsigned long long)ch->position, ch->index);
    replay_write_cursor(out, ch->position, ch->index);
    store_buf_puts(out, "\",\"time\":");
    replay_write_time(out, (int64_t)ch->time_ms);
    store_buf_puts(out, ",\"record\":");
    int rc = replay_write_session(out, rec);
    if (!rc && rec->last_sequence) { /* where a copy's chain goes on (restore, the sink) */
        store_buf_puts(out, ",\"last_hash\":\"");
        put_hex(out, rec->last_hash, STORE_HASH_LEN);
        store_buf_putc(out, '"');
    }
    if (!rc && rec->first_sequence > 1) { /* where a trimmed session's chain starts */
        store_buf_puts(out, ",\"first_hash\":\"");
        put_hex(out, rec->first_prev_hash, STORE_HASH_LEN);
        store_buf_putc(out, '"');
    }
    store_buf_putc(out, '}');
    return rc ? rc : store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}
