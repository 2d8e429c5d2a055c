/* cluster.h -- cells and virtual shards: which cell owns a session (docs/CLUSTER.md).
 *
 * A cluster has V virtual shards (CLUSTER_V_DEFAULT, at most CLUSTER_V_MAX), fixed when
 * it is created, and a cluster map (a JSON file) that gives each cell a set of shard
 * ranges under an epoch. A session belongs to one shard, computed from its id so that
 * nginx computes the same shard from the request line without asking reel:
 *
 *   key    the routing key: the id (or a Durable Streams path) in canonical percent-
 *          encoding (RFC 3986 6.2.2: every byte but A-Z a-z 0-9 - . _ ~ as %XX with upper-
 *          case hex; a stream path keeps its '/'). A session "ds:E" or "ds:E:N" made by a
 *          stream (docs/durable-streams.md) has its stream's key, so both live on one cell.
 *   hash   MurmurHash2 of the key's bytes, seed 0: nginx's ngx_murmur_hash2(), the hash
 *          of split_clients.
 *   shard  split_clients' own rule with one entry per shard: shard i has p(i) =
 *          floor((i+1)*10000/V) - floor(i*10000/V) hundredths of a percent; its upper
 *          bound is B(i) = sum over j <= i of floor(p(j) * 0xffffffff / 10000); the shard
 *          of a hash h is the first i with h < B(i), the last shard takes the rest.
 *
 * So the generated nginx configuration (cluster_nginx_conf) is a split_clients block of V
 * lines naming each shard's cell, and nginx and reel agree on every key by construction.
 *
 * Rules:
 *  - Pure functions and one immutable map object: no HTTP, no store, no globals. A loaded
 *    map is never changed; a reload builds a new one and the caller swaps pointers. A
 *    move edits a copy (cluster_map_dup) before anyone uses it, and writes it out.
 *  - Ownership: cluster_map_load() returns a new map (free with cluster_map_free());
 *    every pointer into it (cells, ids, addresses) is borrowed for the map's life.
 *  - Errors: REEL_OK or a reel_err (store/err.h); a message naming the file and the bad
 *    value goes into the caller's buffer.
 */
#ifndef REEL_CLUSTER_H
#define REEL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store/buf.h"
#include "store/err.h"

#define CLUSTER_V_DEFAULT 4096
#define CLUSTER_V_MAX 10000   /* split_clients counts in hundredths of a percent */
#define CLUSTER_ID_MAX 63     /* cell id bytes: A-Z a-z 0-9 - _ */
#define CLUSTER_ADDR_MAX 255  /* "host:port" */
#define CLUSTER_KEY_MAX (3 * 1024) /* a key: at most 1024 bytes, each at most "%XX" */
#define CLUSTER_MAP_VERSION 1

/* ---- The shard of a key ---- */

/* MurmurHash2 (Austin Appleby), seed 0, 4-byte little-endian blocks: the same numbers as
 * nginx's ngx_murmur_hash2() on every platform. */
uint32_t cluster_murmur2(const void *data, size_t len);

/* The routing key of session id 'id' ('len' bytes, a valid id) into 'out' (room for
 * CLUSTER_KEY_MAX + 1 bytes, NUL-terminated); returns its length. */
size_t cluster_key_session(const char *id, size_t len, char *out);
/* The routing key of the Durable Streams path 'path' (decoded, 'len' <= 1024 bytes). */
size_t cluster_key_stream(const char *path, size_t len, char *out);

/* Fills 'bounds' (V entries) with the shards' upper bounds B(i) as uint64 (the last is
 * 2^32); 'v' in 1..CLUSTER_V_MAX. */
void cluster_bounds(unsigned v, uint64_t *bounds);
/* The shard of hash 'h' under 'bounds' ('v' entries): binary search. */
unsigned cluster_shard_of(const uint64_t *bounds, unsigned v, uint32_t h);

/* ---- The cluster map ---- */

typedef struct cluster_cell {
    char id[CLUSTER_ID_MAX + 1];
    char address[CLUSTER_ADDR_MAX + 1]; /* host:port, what nginx proxies to */
    unsigned n_shards;                  /* how many shards it owns (0: a spare) */
} cluster_cell_t;

typedef struct cluster_map {
    unsigned v;            /* virtual shards */
    uint64_t epoch;        /* >= 1; a cell never accepts a lower one than it has seen */
    cluster_cell_t *cells; /* in file order */
    size_t n_cells;
    uint16_t *owner;       /* owner[shard] = index into 'cells' */
    uint64_t *bounds;      /* cluster_bounds(v) */
    uint8_t *loading;      /* loading[shard] = 1: its owner is still copying it in (a move,
                            * docs/CLUSTER.md "Moving shards") and answers 503 for it */
} cluster_map_t;

/* Reads and checks the map file 'path' (format in docs/CLUSTER.md "Cluster map"): every
 * shard owned by exactly one cell, cell ids and addresses unique and well formed. On
 * success '*out' is a new map. Errors: REEL_EIO (unreadable), REEL_EINVALID_PARAMETER
 * (bad content; 'msg' names the value), REEL_ENOMEM. */
int cluster_map_load(const char *path, cluster_map_t **out, char *msg, size_t mlen);
/* The same from the JSON text 'text' ('len' bytes); 'name' names it in messages. */
int cluster_map_parse(const char *text, size_t len, const char *name, cluster_map_t **out,
                      char *msg, size_t mlen);
void cluster_map_free(cluster_map_t *m);

/* The index of the cell named 'id', or -1. */
int cluster_map_cell(const cluster_map_t *m, const char *id);

/* The shard of routing key 'key' ('len' bytes) and its owner's index in m->cells. */
unsigned cluster_map_shard(const cluster_map_t *m, const char *key, size_t len, int *owner);

/* ---- Writing maps (mapwrite.c; for `reel cluster move`) ---- */

/* A new copy of 'm' (free with cluster_map_free()), or NULL when out of memory. */
cluster_map_t *cluster_map_dup(const cluster_map_t *m);
/* Counts each cell's shards again after 'owner' was changed. */
void cluster_map_recount(cluster_map_t *m);
/* Appends the JSON text of 'm' (the file format; each cell's shards and loading shards as
 * ranges) to 'out'. cluster_map_parse() of it gives 'm' back. */
void cluster_map_write(const cluster_map_t *m, store_buf_t *out);
/* Reads shard ranges "A-B,C,..." (each in 0..v-1) into 'set' (v bytes, set to 1).
 * REEL_OK or REEL_EINVALID_PARAMETER with 'msg' naming the bad part. */
int cluster_shards_parse(const char *text, unsigned v, uint8_t *set, char *msg, size_t mlen);

/* ---- nginx ---- */

typedef struct cluster_nginx_opt {
    const char *listen;      /* nginx's listen address ("127.0.0.1:8080"); NULL: only the
                              * http-level blocks are written (include them yourself) */
    const char *map_path;    /* named in the header comment */
    unsigned keepalive;      /* idle upstream connections kept per worker and cell */
    unsigned read_timeout_s; /* proxy_read_timeout: longer than an SSE stream's life */
} cluster_nginx_opt_t;

/* Writes the nginx configuration for map 'm' to 'f' (docs/CLUSTER.md "Routing with
 * nginx"): an upstream per cell, the routing key taken from $request_uri, the
 * split_clients block, and with 'listen' a server block. REEL_OK or REEL_EIO. */
int cluster_nginx_conf(const cluster_map_t *m, const cluster_nginx_opt_t *opt, FILE *f);

#endif
