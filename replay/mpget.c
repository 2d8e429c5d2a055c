/* mpget.c -- small lookups in stored msgpack values (map fields by key). */
#include <string.h>

#include "replay/replay_int.h"

int replay__mp_get(store_mp_t map, const char *key, store_mp_t *val)
{
    store_mp_obj_t o, k;
    size_t klen = strlen(key);
    if (store_mp_next(&map, &o) || o.type != STORE_MP_MAP)
        return 0;
    for (uint64_t i = 0; i < o.u; i++) {
        if (store_mp_next(&map, &k))
            return 0;
        const uint8_t *v = map.p;
        if (store_mp_skip(&map, STORE_JSON_MAX_DEPTH))
            return 0;
        if (k.type == STORE_MP_STR && k.len == klen && !memcmp(k.ptr, key, klen)) {
            val->p = v;
            val->end = map.p;
            return 1;
        }
    }
    return 0;
}

int replay__mp_str(store_mp_t v, const char **s, size_t *len)
{
    store_mp_obj_t o;
    if (store_mp_next(&v, &o) || o.type != STORE_MP_STR)
        return 0;
    *s = (const char *)o.ptr;
    *len = o.len;
    return 1;
}

int replay__mp_path_str(store_mp_t v, const char *const *path, const char **s, size_t *len)
{
    for (; *path; path++)
        if (!replay__mp_get(v, *path, &v))
            return 0;
    return replay__mp_str(v, s, len);
}
