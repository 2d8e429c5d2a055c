/* cell.c -- cluster mode: the 421 rule and the map a cell serves under (core.h,
 * docs/CLUSTER.md).
 *
 * A cell answers a request that names a session (an {id} route) or a Durable Stream only
 * when the current map gives that session's shard to this cell; otherwise 421 Misdirected
 * Request naming the owner (Reel-Owner, Reel-Owner-Address, Location). nginx normally
 * routes every request to its owner: a 421 means a client addressed a cell directly, sent
 * an id in another than the canonical encoding, or a map change is on its way. The check
 * runs before the handler, so a refused request changes nothing. Store-wide routes (the
 * listing, the feed, stats) are not checked: they serve this cell's own data, and every
 * answer says which cell it comes from (Reel-Cell).
 *
 * The epoch a cell accepts only grows (store_epoch_raise): a map is stored before it is
 * used, and an older one is refused, so a cell restarted with a stale map file refuses to
 * serve rather than take sessions back (the fencing basis of moving shards).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/core/core.h"

/* Checks 'm' against this cell and the current map, then stores its epoch. */
static int admit(api_server_t *srv, const cluster_map_t *m, const char *cell, char *msg,
                 size_t mlen)
{
    if (cluster_map_cell(m, cell) < 0) {
        snprintf(msg, mlen, "the cluster map (epoch %llu) has no cell '%s'",
                 (unsigned long long)m->epoch, cell);
        return REEL_EINVALID_PARAMETER;
    }
    const cluster_map_t *cur = srv->cluster; /* only the SIGHUP thread replaces it */
    if (cur && cur->epoch == m->epoch) {
        int same = cur->v == m->v;
        for (unsigned s = 0; same && s < m->v; s++)
            same = !strcmp(cur->cells[cur->owner[s]].id, m->cells[m->owner[s]].id) &&
                   cur->loading[s] == m->loading[s];
        if (!same) {
            snprintf(msg, mlen, "the cluster map gives shards to other cells (or changes "
                     "which are loading) under the current epoch %llu: a change of owners "
                     "needs a higher epoch",
                     (unsigned long long)m->epoch);
            return REEL_ECONFLICT;
        }
    }
    uint64_t stored = 0;
    int rc = store_epoch_raise(srv->store, m->epoch, &stored);
    if (rc == REEL_ECONFLICT)
        snprintf(msg, mlen, "the cluster map's epoch %llu is older than epoch %llu, which "
                 "this cell's store has accepted", (unsigned long long)m->epoch,
                 (unsigned long long)stored);
    else if (rc)
        snprintf(msg, mlen, "cannot store the cluster epoch: %s", store_last_error());
    return rc;
}

static void install(api_server_t *srv, cluster_map_t *m)
{
    pthread_rwlock_wrlock(&srv->cluster_lock);
    cluster_map_t *old = srv->cluster;
    srv->cluster = m;
    srv->cluster_gen++;
    atomic_store(&srv->cluster_epoch, m->epoch);
    pthread_rwlock_unlock(&srv->cluster_lock);
    cluster_map_free(old);
    if (old) /* suspended SSE streams look again: a session that moved away ends its stream */
        api__wake_all(srv, 0);
}

int api__cell_init(api_server_t *srv, cluster_map_t *m, const char *cell, char *msg,
                   size_t mlen)
{
    if (!cell || strlen(cell) > CLUSTER_ID_MAX) {
        snprintf(msg, mlen, "cluster mode needs this cell's id (--cell)");
        return REEL_EINVALID_PARAMETER;
    }
    int rc = admit(srv, m, cell, msg, mlen);
    if (rc)
        return rc;
    snprintf(srv->cell_id, sizeof srv->cell_id, "%s", cell);
    install(srv, m);
    return REEL_OK;
}

int api_server_set_cluster(api_server_t *srv, cluster_map_t *m, char *msg, size_t mlen)
{
    int rc = REEL_EINVALID_PARAMETER;
    if (!srv->cell_id[0])
        snprintf(msg, mlen, "the server was not started in cluster mode");
    else
        rc = admit(srv, m, srv->cell_id, msg, mlen);
    if (rc) {
        cluster_map_free(m);
        return rc;
    }
    install(srv, m);
    return REEL_OK;
}

void api__cell_free(api_server_t *srv)
{
    cluster_map_free(srv->cluster);
    srv->cluster = NULL;
}

/* The routing key of the request, or 0 when its route names no session. */
static size_t request_key(api_req_t *rq, char *key, int *stream)
{
    *stream = 0;
    if (rq->session_len)
        return cluster_key_session(rq->session, rq->session_len, key);
    if (rq->route->tenant != API_TENANT_STREAM || !rq->param_len)
        return 0;
    char path[1025];
    long n = api__pct_decode(rq->param, rq->param_len, path, sizeof path - 1, 0);
    if (n <= 0) /* the stream handler names the bad path */
        return 0;
    *stream = 1;
    return cluster_key_stream(path, (size_t)n, key);
}

int api__cell_check(api_req_t *rq, enum MHD_Result *r)
{
    api_server_t *srv = rq->srv;
    if (!srv->cell_id[0])
        return 1;
    static _Thread_local char key[CLUSTER_KEY_MAX + 1];
    int stream;
    size_t kn = request_key(rq, key, &stream);
    if (!kn)
        return 1;
    pthread_rwlock_rdlock(&srv->cluster_lock);
    const cluster_map_t *m = srv->cluster;
    int owner;
    unsigned shard = cluster_map_shard(m, key, kn, &owner);
    const cluster_cell_t *c = &m->cells[owner];
    int mine = !strcmp(c->id, srv->cell_id), loading = mine && m->loading[shard];
    unsigned long long epoch = (unsigned long long)m->epoch;
    if (!mine) {
        snprintf(rq->owner, sizeof rq->owner, "%s", c->id);
        snprintf(rq->owner_addr, sizeof rq->owner_addr, "%s", c->address);
    }
    /* Counted under the lock: once a new map is installed, every write admitted under
     * an older one is in its parity's count (api__cell_push waits for it). */
    if (mine && !loading && rq->method_bit != API_M_GET && rq->method_bit != API_M_HEAD) {
        unsigned g = (unsigned)(srv->cluster_gen & 1); /* stable under the read lock */
        rq->cell_write = 1 + (int)g;
        atomic_fetch_add(&srv->cell_writes[g], 1);
    }
    pthread_rwlock_unlock(&srv->cluster_lock);
    if (loading) {
        atomic_fetch_add(&srv->shard_loading, 1);
        rq->retry_after = 1;
        *r = api__problem(rq, REEL_ESHARD_LOADING,
                          "%s '%.200s' is in shard %u, which is being moved to this cell "
                          "(cluster map epoch %llu): it is served once its sessions are "
                          "copied in; retry after a second", stream ? "stream" : "session",
                          stream ? key : rq->session, shard, epoch);
        return 0;
    }
    if (mine)
        return 1;
    atomic_fetch_add(&srv->misdirected, 1);
    *r = api__problem(rq, REEL_EMISDIRECTED,
                      "%s '%.200s' is in shard %u, which cell '%s' (%s) owns under cluster map "
                      "epoch %llu; this is cell '%s'. Send it to the owner, with the id in "
                      "canonical percent-encoding (docs/CLUSTER.md \"Shards\")",
                      stream ? "stream" : "session", stream ? key : rq->session, shard,
                      rq->owner, rq->owner_addr, epoch, srv->cell_id);
    return 0;
}

int api__cell_owns_stream(api_server_t *srv, const char *path, size_t len, char *owner,
                          size_t cap)
{
    if (!srv->cell_id[0])
        return 1;
    static _Thread_local char key[CLUSTER_KEY_MAX + 1];
    size_t kn = cluster_key_stream(path, len, key);
    pthread_rwlock_rdlock(&srv->cluster_lock);
    int o;
    cluster_map_shard(srv->cluster, key, kn, &o);
    snprintf(owner, cap, "%s", srv->cluster->cells[o].id);
    pthread_rwlock_unlock(&srv->cluster_lock);
    return !strcmp(owner, srv->cell_id);
}

char *api__cell_key_dup(api_req_t *rq, size_t *len)
{
    if (!rq->srv->cell_id[0])
        return NULL;
    static _Thread_local char key[CLUSTER_KEY_MAX + 1];
    int stream;
    size_t kn = request_key(rq, key, &stream);
    char *out = kn ? malloc(kn + 1) : NULL;
    if (out) {
        memcpy(out, key, kn + 1);
        *len = kn;
    }
    return out;
}

int api__cell_still_owns(api_server_t *srv, const char *key, size_t len, uint64_t *epoch)
{
    if (atomic_load(&srv->cluster_epoch) == *epoch)
        return 1;
    pthread_rwlock_rdlock(&srv->cluster_lock);
    const cluster_map_t *m = srv->cluster;
    int owner;
    unsigned shard = cluster_map_shard(m, key, len, &owner);
    int mine = !strcmp(m->cells[owner].id, srv->cell_id) && !m->loading[shard];
    *epoch = m->epoch;
    pthread_rwlock_unlock(&srv->cluster_lock);
    return mine;
}

void api__cell_done(api_req_t *rq)
{
    if (rq->cell_write)
        atomic_fetch_sub(&rq->srv->cell_writes[rq->cell_write - 1], 1);
    rq->cell_write = 0;
}

/* Writes 'text' to the --cluster-map file: a temporary file, synced, renamed over it, so
 * a crash leaves the old map or the new one, and a restart reads the one in force. */
static int keep_file(const char *path, const char *cell, const char *text, size_t len,
                     char *msg, size_t mlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%s.tmp", path, cell);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f))
        ok = 0;
    if (ok && rename(tmp, path))
        ok = 0;
    if (!ok) {
        snprintf(msg, mlen, "the map is in force but could not replace %s: %s (a restart "
                 "would read the old one and refuse it)", path, strerror(errno));
        unlink(tmp);
        return REEL_EIO;
    }
    return REEL_OK;
}

int api__cell_push(api_server_t *srv, const char *text, size_t len, unsigned drain_ms,
                   int *drained, char *msg, size_t mlen)
{
    cluster_map_t *m;
    *drained = 0;
    int rc = cluster_map_parse(text, len, "(pushed)", &m, msg, mlen);
    if (rc)
        return rc;
    pthread_mutex_lock(&srv->cluster_push);
    rc = api_server_set_cluster(srv, m, msg, mlen); /* takes 'm' over */
    pthread_rwlock_rdlock(&srv->cluster_lock);
    uint64_t gen = srv->cluster_gen;
    pthread_rwlock_unlock(&srv->cluster_lock);
    if (rc == REEL_OK && srv->cluster_map_path)
        rc = keep_file(srv->cluster_map_path, srv->cell_id, text, len, msg, mlen);
    /* The other parity counts every write admitted under an older map (two maps in one
     * drain period would share one: pushes are serialised and each waits; a SIGHUP
     * reload meanwhile would make this wait for a newer map's writes too, never less). */
    unsigned waited = 0;
    while (rc == REEL_OK && atomic_load(&srv->cell_writes[(gen + 1) & 1]) &&
           waited < drain_ms) {
        usleep(2000);
        waited += 2;
    }
    *drained = rc == REEL_OK && !atomic_load(&srv->cell_writes[(gen + 1) & 1]);
    pthread_mutex_unlock(&srv->cluster_push);
    return rc;
}

void api__cell_metrics(api_server_t *srv, store_buf_t *o)
{
    if (!srv->cell_id[0])
        return;
    pthread_rwlock_rdlock(&srv->cluster_lock);
    const cluster_map_t *m = srv->cluster;
    int me = cluster_map_cell(m, srv->cell_id);
    unsigned owned = me >= 0 ? m->cells[me].n_shards : 0, v = m->v;
    unsigned long long epoch = (unsigned long long)m->epoch;
    pthread_rwlock_unlock(&srv->cluster_lock);
    store_buf_printf(o, "# HELP reel_cluster_epoch The cluster map epoch this cell serves under.\n"
                        "# TYPE reel_cluster_epoch gauge\nreel_cluster_epoch{cell=\"%s\"} %llu\n"
                        "# HELP reel_cluster_shards Virtual shards this cell owns, of all.\n"
                        "# TYPE reel_cluster_shards gauge\nreel_cluster_shards{cell=\"%s\"} %u\n"
                        "reel_cluster_shards{cell=\"all\"} %u\n"
                        "# HELP reel_cluster_misdirected_total Requests answered 421 (another "
                        "cell's session).\n# TYPE reel_cluster_misdirected_total counter\n"
                        "reel_cluster_misdirected_total %llu\n"
                        "# HELP reel_cluster_shard_loading_total Requests answered 503 "
                        "(their shard is being moved to this cell).\n"
                        "# TYPE reel_cluster_shard_loading_total counter\n"
                        "reel_cluster_shard_loading_total %llu\n",
                     srv->cell_id, epoch, srv->cell_id, owned, v,
                     (unsigned long long)atomic_load(&srv->misdirected),
                     (unsigned long long)atomic_load(&srv->shard_loading));
}

void api__cell_headers(api_req_t *rq, struct MHD_Response *resp)
{
    api_server_t *srv = rq->srv;
    if (!srv->cell_id[0])
        return;
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)atomic_load(&srv->cluster_epoch));
    MHD_add_response_header(resp, "Reel-Cell", srv->cell_id);
    MHD_add_response_header(resp, "Reel-Cluster-Epoch", epoch);
    if (!rq->owner[0])
        return;
    char loc[CLUSTER_ADDR_MAX + 2048];
    MHD_add_response_header(resp, "Reel-Owner", rq->owner);
    MHD_add_response_header(resp, "Reel-Owner-Address", rq->owner_addr);
    snprintf(loc, sizeof loc, "http://%s%.2000s", rq->owner_addr, rq->uri);
    MHD_add_response_header(resp, "Location", loc);
}
