/* subs_webhook.c -- webhook deliveries of the Durable Streams subscriptions (subs.c):
 * which URLs may be called, the Ed25519 signature, the POST (libcurl). The rules are in
 * docs/durable-streams.md "Subscriptions".
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "api/ds/subs_int.h"

/* ---- webhook URLs ---- */

/* 1 when connecting to 'sa' is allowed: not a private, link-local or unspecified address;
 * loopback only while the server itself listens on loopback only (a local setup). */
static int addr_allowed(const api_server_t *srv, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        if ((a >> 24) == 127)
            return srv->loopback;
        return !((a >> 24) == 10 || (a >> 24) == 0 || (a >> 20) == (172u << 4 | 1) ||
                 (a >> 16) == (192u << 8 | 168) || (a >> 16) == (169u << 8 | 254) ||
                 (a >> 22) == (100u << 2 | 1) || a >= 0xe0000000u);
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t lo[16] = {[15] = 1}, any[16] = {0};
        if (!memcmp(b, lo, 16))
            return srv->loopback;
        if (!memcmp(b, any, 16) || (b[0] & 0xfe) == 0xfc ||
            (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
            b[0] == 0xff)
            return 0;
        if (!memcmp(b, any, 10) && b[10] == 0xff && b[11] == 0xff) { /* IPv4-mapped */
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, b + 12, 4);
            return addr_allowed(srv, (struct sockaddr *)&v4);
        }
        return 1;
    }
    return 0;
}

/* 0 when 'url' is an http(s) URL whose host (when a literal address) is allowed; names are
 * checked again at each delivery, on the address connected to (DNS may change). */
int ds__sub_url_allowed(const api_server_t *srv, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             (!strcasecmp(scheme, "http") || !strcasecmp(scheme, "https"));
    if (ok) {
        char h[256];
        snprintf(h, sizeof h, "%s", host);
        size_t n = strlen(h);
        if (n > 2 && h[0] == '[' && h[n - 1] == ']') {
            memmove(h, h + 1, n - 2);
            h[n - 2] = '\0';
        }
        struct sockaddr_in v4 = {.sin_family = AF_INET};
        struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
        if (inet_pton(AF_INET, h, &v4.sin_addr) == 1)
            ok = addr_allowed(srv, (struct sockaddr *)&v4);
        else if (inet_pton(AF_INET6, h, &v6.sin6_addr) == 1)
            ok = addr_allowed(srv, (struct sockaddr *)&v6);
        else if (!strcasecmp(h, "localhost") || strstr(h, ".localhost"))
            ok = srv->loopback;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    if (purpose != CURLSOCKTYPE_IPCXN || !addr_allowed(arg, &a->addr))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype, a->protocol);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    store_buf_t *b = arg;
    if (b->len < 65536)
        store_buf_put(b, p, size * n);
    return size * n;
}

/* POSTs 'body' signed; 1 when the receiver answered 2xx with {"done":true}, 0 on another
 * 2xx, -1 when the delivery failed. */
int ds__sub_webhook_post(struct ds_subs *x, const char *url, const char *body)
{
    char ts[24], hdr[256];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    size_t mlen = strlen(ts) + 1 + strlen(body);
    uint8_t *msg = malloc(mlen + 1), sig[64];
    size_t slen = sizeof sig;
    if (!msg)
        return -1;
    snprintf((char *)msg, mlen + 1, "%s.%s", ts, body);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, x->key) == 1 &&
             EVP_DigestSign(ctx, sig, &slen, msg, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    free(msg);
    if (!ok)
        return -1;
    char sig64[100];
    ds__sub_b64url(sig, slen, sig64);
    snprintf(hdr, sizeof hdr, "Webhook-Signature: t=%s,kid=%s,ed25519=%s", ts, x->kid, sig64);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, hdr);
    store_buf_t resp = STORE_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x->srv);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    long status = 0;
    int rc = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc == 0 && (status < 200 || status > 299))
        rc = -1;
    if (rc == 0) {
        json_t *j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
        rc = json_is_true(json_object_get(j, "done")) ? 1 : 0;
        json_decref(j);
    }
    store_buf_release(&resp);
    return rc;
}
