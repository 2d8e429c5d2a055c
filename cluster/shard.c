/* shard.c -- the routing key, its hash and its shard (cluster.h has the definitions,
 * docs/CLUSTER.md "Shards" the worked example). Everything here must give the numbers
 * nginx gives: the hash is nginx's MurmurHash2 and the bounds are split_clients' sums,
 * including its rounding, so that one split_clients line per shard routes exactly. */
#include <string.h>

#include "cluster/cluster.h"

#define M 0x5bd1e995u

uint32_t cluster_murmur2(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = (uint32_t)len; /* seed 0 ^ len */
    while (len >= 4) {
        uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        k *= M;
        k ^= k >> 24;
        k *= M;
        h *= M;
        h ^= k;
        p += 4;
        len -= 4;
    }
    switch (len) {
    case 3:
        h ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        h ^= p[0];
        h *= M;
    }
    h ^= h >> 13;
    h *= M;
    h ^= h >> 15;
    return h;
}

/* ---- Keys ---- */

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Canonical percent-encoding of 'n' bytes; 'slash' keeps '/' (a stream path's). */
static size_t canon(const unsigned char *s, size_t n, int slash, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 <= CLUSTER_KEY_MAX; i++) {
        if (unreserved(s[i]) || (slash && s[i] == '/')) {
            out[o++] = (char)s[i];
        } else {
            out[o++] = '%';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 15];
        }
    }
    out[o] = '\0';
    return o;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A stream's session id is "ds:" E [":" digits], E the path with every byte outside
 * A-Z a-z 0-9 . _ - written as "~XX" (docs/durable-streams.md "Session id"). Decodes E
 * into 'path'; returns its length, or -1 when 'id' does not have that shape. */
static long stream_path_of(const char *id, size_t len, unsigned char *path)
{
    if (len < 4 || memcmp(id, "ds:", 3))
        return -1;
    size_t end = 3;
    while (end < len && id[end] != ':')
        end++;
    if (end == 3)
        return -1;
    if (end < len) { /* a generation: ":" and digits only */
        if (end + 1 == len)
            return -1;
        for (size_t i = end + 1; i < len; i++)
            if (id[i] < '0' || id[i] > '9')
                return -1;
    }
    long o = 0;
    for (size_t i = 3; i < end; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c == '~') {
            int a = i + 2 < end ? hexval(id[i + 1]) : -1, b = a >= 0 ? hexval(id[i + 2]) : -1;
            if (b < 0)
                return -1;
            path[o++] = (unsigned char)(a << 4 | b);
            i += 2;
        } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-') {
            path[o++] = c;
        } else {
            return -1;
        }
    }
    return o;
}

size_t cluster_key_session(const char *id, size_t len, char *out)
{
    unsigned char path[1024];
    long n = len <= sizeof path + 3 ? stream_path_of(id, len, path) : -1;
    if (n >= 0)
        return canon(path, (size_t)n, 1, out);
    return canon((const unsigned char *)id, len, 0, out);
}

size_t cluster_key_stream(const char *path, size_t len, char *out)
{
    return canon((const unsigned char *)path, len, 1, out);
}

/* ---- Shards ---- */

void cluster_bounds(unsigned v, uint64_t *bounds)
{
    /* split_clients keeps its running bound in a uint32_t and adds each entry's
     * floor(percent * 0xffffffff / 10000); the last entry is "*" (everything left). */
    uint32_t last = 0;
    for (unsigned i = 0; i < v; i++) {
        uint64_t p = (uint64_t)(i + 1) * 10000 / v - (uint64_t)i * 10000 / v;
        last += (uint32_t)(p * 0xffffffffull / 10000);
        bounds[i] = i + 1 == v ? 1ull << 32 : last;
    }
}

unsigned cluster_shard_of(const uint64_t *bounds, unsigned v, uint32_t h)
{
    unsigned lo = 0, hi = v - 1; /* the answer is in [lo, hi] */
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (h < bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
