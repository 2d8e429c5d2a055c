/* wait.c -- suspended connections and what wakes them (see core.h, docs/HTTP.md).
 *
 * A waiting connection (long-poll, caught-up SSE) is linked in the server's waiter list
 * exactly while it is suspended. Wakers unlink it and call MHD_resume_connection() under
 * the same lock, so a waiter is never resumed twice and never left behind.
 *
 * Lost wake-ups are prevented by a generation counter: a handler reads api__gen() before
 * it checks the store, and api__wait() refuses to suspend when any commit was observed
 * since then (the handler re-checks instead). Commits are observed by the store's commit
 * hook (this process) and by the watcher thread, which polls the last transaction id
 * every API_WATCH_MS so that what another process commits reaches waiters within 100 ms:
 * LMDB gives every commit of any process the next transaction id, so when the last id
 * moved further than this process's own commits (noted by the hook) account for, another
 * process committed and every waiter is woken to look.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api/core/core.h"

uint64_t api__now_ms(void)
{
    return api__now_us() / 1000;
}

uint64_t api__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void unlink_waiter(api_waiter_t *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = 0;
}

/* Unlinks and resumes 'w'. Caller holds srv->lock. */
static void wake(api_server_t *srv, api_waiter_t *w)
{
    unlink_waiter(w);
    atomic_fetch_add(&srv->wakeups, 1);
    MHD_resume_connection(w->conn);
}

uint64_t api__gen(api_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    uint64_t g = srv->gen;
    pthread_mutex_unlock(&srv->lock);
    return g;
}

int api__stopping(api_server_t *srv)
{
    pthread_mutex_lock(&srv->lock);
    int s = srv->stopping;
    pthread_mutex_unlock(&srv->lock);
    return s;
}

int api__wait(api_server_t *srv, api_waiter_t *w, uint64_t gen)
{
    pthread_mutex_lock(&srv->lock);
    if (srv->gen != gen || srv->stopping) {
        pthread_mutex_unlock(&srv->lock);
        return 0;
    }
    /* Suspend while holding the lock: a waker that finds 'w' linked can then only run
     * after the suspension, so its resume is never lost. */
    api_waiter_t *head = &srv->waiters;
    w->next = head;
    w->prev = head->prev;
    head->prev->next = w;
    head->prev = w;
    w->linked = 1;
    MHD_suspend_connection(w->conn);
    pthread_mutex_unlock(&srv->lock);
    return 1;
}

int api__wait_for(api_req_t *rq, api_waiter_t *w, int kind, const char *session, size_t len,
                   uint64_t deadline_ms, uint64_t gen)
{
    w->conn = rq->conn;
    w->kind = kind;
    w->session = session;
    w->session_len = len;
    w->deadline_ms = deadline_ms;
    return api__wait(rq->srv, w, gen);
}

static int touched(const store_commit_t *c, const api_waiter_t *w)
{
    for (size_t i = 0; i < c->n_sessions; i++) {
        const store_touched_t *t = &c->sessions[i];
        if (t->session_len == w->session_len && !memcmp(t->session, w->session, w->session_len))
            return 1;
    }
    return 0;
}

void api__wake_commit(api_server_t *srv, const store_commit_t *c)
{
    pthread_mutex_lock(&srv->lock);
    srv->gen++;
    api_waiter_t *head = &srv->waiters;
    for (api_waiter_t *w = head->next, *nx; w != head; w = nx) {
        nx = w->next;
        if (w->kind == API_WAIT_FEED || (w->kind == API_WAIT_SESSION && touched(c, w)))
            wake(srv, w);
    }
    pthread_mutex_unlock(&srv->lock);
}

void api__wake_all(api_server_t *srv, int stopping)
{
    pthread_mutex_lock(&srv->lock);
    srv->gen++;
    if (stopping)
        srv->stopping = 1;
    api_waiter_t *head = &srv->waiters;
    while (head->next != head)
        wake(srv, head->next);
    pthread_mutex_unlock(&srv->lock);
}

void api__wake_expired(api_server_t *srv, uint64_t now_ms)
{
    pthread_mutex_lock(&srv->lock);
    api_waiter_t *head = &srv->waiters;
    for (api_waiter_t *w = head->next, *nx; w != head; w = nx) {
        nx = w->next;
        if (w->deadline_ms && w->deadline_ms <= now_ms)
            wake(srv, w);
    }
    pthread_mutex_unlock(&srv->lock);
}

/* ---- Watcher thread ---- */

void api__own_commit(api_server_t *srv, const store_commit_t *c)
{
    pthread_mutex_lock(&srv->own_lock);
    if (srv->own_n == API_OWN_TXNS) { /* full: the oldest goes; at worst a spare wake-up */
        srv->own_head = (srv->own_head + 1) % API_OWN_TXNS;
        srv->own_n--;
    }
    srv->own[(srv->own_head + srv->own_n++) % API_OWN_TXNS] = c->txn_id;
    pthread_mutex_unlock(&srv->own_lock);
}

/* How many of the commits (lo, hi] were this process's. Ids at or below 'hi' are dropped:
 * the watcher never asks about them again. */
static uint64_t own_commits(api_server_t *srv, uint64_t lo, uint64_t hi)
{
    uint64_t n = 0;
    pthread_mutex_lock(&srv->own_lock);
    for (size_t k = 0; k < srv->own_n; k++) {
        uint64_t id = srv->own[(srv->own_head + k) % API_OWN_TXNS];
        n += id > lo && id <= hi;
    }
    while (srv->own_n && srv->own[srv->own_head] <= hi) {
        srv->own_head = (srv->own_head + 1) % API_OWN_TXNS;
        srv->own_n--;
    }
    pthread_mutex_unlock(&srv->own_lock);
    return n;
}

/* Returns 1 when commits were made since the last look that this process's commit hook
 * does not account for: another process appended, or changed or deleted a session, and
 * every reader must be woken to look. (A commit of this process whose hook has not run yet
 * counts as another process's: a spare wake-up, never a lost one.) */
static int foreign_commit(api_server_t *srv)
{
    uint64_t last = store_last_txn(srv->store), from = srv->watch_txn;
    if (last <= from)
        return 0;
    srv->watch_txn = last;
    return own_commits(srv, from, last) < last - from;
}

static void *watch(void *arg)
{
    api_server_t *srv = arg;
    pthread_mutex_lock(&srv->tick_lock);
    while (!srv->watch_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += API_WATCH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->tick_cond, &srv->tick_lock, &ts);
        if (srv->watch_stop)
            break;
        pthread_mutex_unlock(&srv->tick_lock);
        /* (A redaction by another process is the store's envelope cache's business: its
         * next read finds it, store/cache.c.) */
        if (foreign_commit(srv))
            api__wake_all(srv, 0);
        uint64_t now = api__now_ms();
        api__wake_expired(srv, now);
        if (now - srv->last_sweep_ms >= 1000) {
            srv->last_sweep_ms = now;
            api__sweep_heads(srv, now);
        }
        pthread_mutex_lock(&srv->tick_lock);
    }
    pthread_mutex_unlock(&srv->tick_lock);
    return NULL;
}

int api__watcher_start(api_server_t *srv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->tick_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&srv->tick_lock, NULL);
    foreign_commit(srv); /* start from the current tail: nothing to wake yet */
    if (pthread_create(&srv->watcher, NULL, watch, srv) != 0)
        return REEL_EIO;
    srv->watcher_started = 1;
    return REEL_OK;
}

void api__watcher_stop(api_server_t *srv)
{
    if (!srv->watcher_started)
        return;
    pthread_mutex_lock(&srv->tick_lock);
    srv->watch_stop = 1;
    pthread_cond_signal(&srv->tick_cond);
    pthread_mutex_unlock(&srv->tick_lock);
    pthread_join(srv->watcher, NULL);
    srv->watcher_started = 0;
    pthread_cond_destroy(&srv->tick_cond);
    pthread_mutex_destroy(&srv->tick_lock);
}

int api__peer_closed(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}
