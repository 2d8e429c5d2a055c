/* access.c -- the last read of each session, kept by the server, not in the store.
 *
 * Reads refresh a sliding TTL (a Durable Stream's Stream-TTL) but write nothing to the
 * store, so the time of the last read is kept here, per server; writes move the record's
 * updated_ms. The table is a fixed array of slots hashed by session id: a collision only
 * forgets a read (a stream may expire a little early after a restart or under thousands
 * of TTL streams), never keeps one alive longer than its TTL.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/live/live.h"

#define ACCESS_SLOTS 4096

struct api_access {
    pthread_mutex_t lock;
    struct {
        char sid[STORE_SESSION_ID_MAX + 1];
        int64_t ms;
    } slots[ACCESS_SLOTS];
};

api_access_t *api__access_new(void)
{
    api_access_t *a = calloc(1, sizeof *a);
    if (a)
        pthread_mutex_init(&a->lock, NULL);
    return a;
}

void api__access_free(api_access_t *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static unsigned slot(const char *sid, size_t len)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)sid[i]) * 16777619u;
    return h % ACCESS_SLOTS;
}

void api__access_touch(api_server_t *srv, const char *sid, size_t len)
{
    api_access_t *a = srv->access;
    if (!a || len > STORE_SESSION_ID_MAX)
        return;
    unsigned i = slot(sid, len);
    pthread_mutex_lock(&a->lock);
    memcpy(a->slots[i].sid, sid, len);
    a->slots[i].sid[len] = '\0';
    a->slots[i].ms = (int64_t)store_wall_ms();
    pthread_mutex_unlock(&a->lock);
}

int64_t api__access_last(api_server_t *srv, const char *sid, size_t len)
{
    api_access_t *a = srv->access;
    if (!a || len > STORE_SESSION_ID_MAX)
        return 0;
    unsigned i = slot(sid, len);
    int64_t ms = 0;
    pthread_mutex_lock(&a->lock);
    if (!strncmp(a->slots[i].sid, sid, len) && a->slots[i].sid[len] == '\0')
        ms = a->slots[i].ms;
    pthread_mutex_unlock(&a->lock);
    return ms;
}
