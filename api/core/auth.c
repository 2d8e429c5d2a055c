/* auth.c -- bearer tokens with scopes (docs/HTTP.md "Auth").
 *
 * Tokens are kept only as SHA-256 digests. A presented token is hashed and compared with
 * every configured digest by CRYPTO_memcmp, without stopping at a match, so neither the
 * comparison nor the token's length shows in the response time.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/core.h"

int api_scope_parse(const char *s)
{
    if (!strcmp(s, "full"))
        return API_SCOPE_FULL;
    if (!strcmp(s, "read"))
        return API_SCOPE_READ;
    if (!strcmp(s, "append"))
        return API_SCOPE_APPEND;
    return -1;
}

/* The digests of 't' (NULL when n is 0). */
static int digest_tokens(const api_token_t *t, size_t n, api_token_hash_t **out)
{
    *out = NULL;
    if (n == 0)
        return REEL_OK;
    api_token_hash_t *h = calloc(n, sizeof *h);
    if (!h)
        return REEL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        SHA256((const unsigned char *)t[i].token, strlen(t[i].token), h[i].digest);
        h[i].scope = t[i].scope;
    }
    *out = h;
    return REEL_OK;
}

int api__tokens_init(api_server_t *srv, const api_token_t *t, size_t n)
{
    int rc = digest_tokens(t, n, &srv->tokens);
    srv->n_tokens = rc ? 0 : n;
    return rc;
}

int api_server_set_tokens(api_server_t *srv, const api_token_t *t, size_t n)
{
    api_token_hash_t *h;
    int rc = digest_tokens(t, n, &h);
    if (rc)
        return rc;
    pthread_rwlock_wrlock(&srv->tokens_lock);
    api_token_hash_t *old = srv->tokens;
    srv->tokens = h;
    srv->n_tokens = n;
    pthread_rwlock_unlock(&srv->tokens_lock);
    free(old);
    return REEL_OK;
}

/* The scope of 'tok' (0 if unknown), looked up in constant time over all tokens. */
static int token_scope(const api_server_t *srv, const char *tok, size_t len)
{
    uint8_t d[32];
    SHA256((const unsigned char *)tok, len, d);
    int scope = 0;
    for (size_t i = 0; i < srv->n_tokens; i++) {
        int eq = CRYPTO_memcmp(d, srv->tokens[i].digest, sizeof d) == 0;
        scope |= eq ? srv->tokens[i].scope : 0;
    }
    return scope;
}

/* The auth check with the token set held still (SIGHUP may replace it). */
static int auth_locked(api_req_t *rq, int need, int allow_query)
{
    api_server_t *srv = rq->srv;
    if (srv->n_tokens == 0)
        return REEL_OK;
    const char *h = api__header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        const char *t = h + 7;
        while (*t == ' ')
            t++;
        int scope = token_scope(srv, t, strlen(t));
        if (!scope)
            return rq->bad_token = 1, REEL_EUNAUTHORIZED;
        return (scope & need) == need ? REEL_OK : REEL_EFORBIDDEN;
    }
    if (allow_query) {
        char tok[512];
        if (api__query(rq, "access_token", tok, sizeof tok) > 0) {
            int scope = token_scope(srv, tok, strlen(tok));
            if (!scope)
                return rq->bad_token = 1, REEL_EUNAUTHORIZED;
            return (scope & need) == need ? REEL_OK : REEL_EFORBIDDEN;
        }
    }
    return REEL_EUNAUTHORIZED;
}

int api__auth(api_req_t *rq, int need, int allow_query)
{
    pthread_rwlock_rdlock(&rq->srv->tokens_lock);
    int rc = auth_locked(rq, need, allow_query);
    pthread_rwlock_unlock(&rq->srv->tokens_lock);
    return rc;
}

/* ---- Tokens file ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

void api_tokens_free(api_token_t *tokens, size_t n)
{
    if (!tokens)
        return;
    for (size_t i = 0; i < n; i++)
        free((char *)tokens[i].token);
    free(tokens);
}

/* Parses one non-blank line "TOKEN SCOPE" into 't'. Returns 0 or -1. */
static int parse_line(char *s, api_token_t *t)
{
    char *sp = s;
    while (*sp && !isspace((unsigned char)*sp))
        sp++;
    if (!*sp)
        return -1;
    *sp++ = '\0';
    int scope = api_scope_parse(trim(sp));
    if (scope < 0 || !*s)
        return -1;
    t->token = strdup(s);
    t->scope = scope;
    return t->token ? 0 : -1;
}

int api_tokens_load(const char *path, api_token_t **out, size_t *n, char *msg, size_t msg_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msg_len, "cannot read tokens file '%s': %s", path, strerror(errno));
        return REEL_EIO;
    }
    api_token_t *v = NULL;
    size_t cnt = 0, cap = 0, lineno = 0;
    char line[1024];
    int rc = REEL_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            api_token_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = REEL_ENOMEM;
                break;
            }
            v = nv;
        }
        if (parse_line(s, &v[cnt]) < 0) {
            snprintf(msg, msg_len, "%s:%zu: expected 'TOKEN full|read|append'", path, lineno);
            rc = REEL_EINVALID_PARAMETER;
            break;
        }
        cnt++;
    }
    fclose(f);
    if (rc != REEL_OK) {
        api_tokens_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return REEL_OK;
}
