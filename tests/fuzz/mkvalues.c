/* mkvalues.c -- writes seed files for fuzz_value into the directory given: real stored
 * event values (plain and zstd-framed bodies), session records and bare msgpack, each
 * prefixed with the harness's selector byte (0 msgpack, 1 event value, 2 session record).
 * Built and run by `make fuzz-seeds` (tests/fuzz/fuzz.mk). */
#include <stdio.h>
#include <string.h>

#include "ingest/ingest.h"
#include "store/json.h"
#include "store/store_int.h"
#include "tests/fuzz/fuzz_util.h"

static void put(const char *dir, const char *name, int sel, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return;
    }
    fputc(sel, f);
    fwrite(p, 1, n, f);
    fclose(f);
}

static void value(const char *dir, const char *name, const char *json)
{
    ingest_batch_t ib;
    ingest_error_t e;
    ingest_batch_init(&ib, "seed", 4);
    if (ingest_parse(&ib, json, strlen(json), INGEST_JSON, NULL, &e)) {
        fprintf(stderr, "%s: %s\n", name, e.text);
        return;
    }
    const store_event_t *ev = &ib.b.events[0];
    store_buf_t v = STORE_BUF_INIT;
    uint8_t hdr[STORE_HEADER_LEN - 1];
    fz_header(hdr);
    store_buf_putc(&v, ev->body[0]);
    store_buf_put(&v, hdr, sizeof hdr);
    store_buf_put(&v, ev->body + 1, ev->body_len - 1);
    put(dir, name, 1, v.data, v.len);
    /* The bare body as msgpack too. */
    store_buf_t mp = STORE_BUF_INIT;
    if (store_json_to_msgpack(json, strlen(json), 64, &mp, NULL) == REEL_OK) {
        char n2[128];
        snprintf(n2, sizeof n2, "mp-%s", name);
        put(dir, n2, 0, mp.data, mp.len);
    }
    store_buf_release(&mp);
    store_buf_release(&v);
    ingest_batch_release(&ib);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/value";
    value(dir, "event-small", "{\"event_id\":\"e1\",\"type\":\"item.delta\",\"source\":\"agent\","
                              "\"synthetic\":false,\"native_session_id\":\"n\","
                              "\"data\":{\"item_id\":\"itm_1\",\"delta\":\"Hi \\u00e9\"},"
                              "\"raw\":[1,-1,0.5,1e400,null,true]}");
    char big[8192];
    int n = snprintf(big, sizeof big, "{\"type\":\"item.completed\",\"data\":{\"text\":\"");
    for (int i = 0; i < 300; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "word%d ", i % 7);
    snprintf(big + n, sizeof big - (size_t)n, "\",\"n\":[1,2,3]}}");
    value(dir, "event-zstd", big);
    value(dir, "event-min", "{\"type\":\"t\"}");
    /* Format 2's 8th field (the committed event-* seeds above predate it: format 1). */
    value(dir, "event-client-time", "{\"type\":\"t\",\"client_time\":\"2026-01-02T03:04:05.123+05:30\"}");
    value(dir, "event-client-ms", "{\"type\":\"t\",\"client_time\":1700000000123}");

    store_session_t rec = {0};
    rec.num = 7;
    strcpy(rec.agent, "claude");
    strcpy(rec.native_session_id, "thread_1");
    rec.status = STORE_ENDED;
    rec.created_ms = 1700000000000;
    rec.updated_ms = rec.ended_ms = 1700000001000;
    rec.last_sequence = rec.event_count = 3;
    rec.bytes = 300;
    store_buf_t meta = STORE_BUF_INIT, out = STORE_BUF_INIT;
    store_json_to_msgpack("{\"k\":[1,{\"x\":\"y\"}]}", 19, 64, &meta, NULL);
    rec.metadata = meta.data;
    rec.metadata_len = meta.len;
    store__session_encode(&rec, &out);
    put(dir, "session", 2, out.data, out.len);
    store_buf_clear(&out);
    rec.metadata = NULL;
    store__session_encode(&rec, &out);
    put(dir, "session-nometa", 2, out.data, out.len);
    static const uint8_t odd[] = {0xdd, 0x00, 0x98, 0x96, 0x80}; /* array32 with a huge count */
    put(dir, "mp-array32-lie", 0, odd, sizeof odd);
    static const uint8_t ext[] = {0xd5, 0x01, '1', 'e'}; /* ext number "1e" */
    put(dir, "mp-ext-number", 0, ext, sizeof ext);
    store_buf_release(&meta);
    store_buf_release(&out);
    return 0;
}
