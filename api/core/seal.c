/* seal.c -- sealed cursors: store-wide positions handed to tenant tokens without telling
 * them anything (docs/HTTP.md "Tenants").
 *
 * Why: a position counts the events of every session, so two positions (or one position
 * and a later one) would tell a tenant how much other tenants wrote. A token limited to
 * session prefixes therefore gets its feed cursor as "t" + 48 hex digits: the position and
 * 8 random bytes as one AES-128 block (a fresh cursor for the same position every time, so
 * not even equality is visible), then 8 bytes of HMAC-SHA-256 over that block, so a cursor
 * that was altered or made up is refused instead of read as some other position. The keys
 * come from the store's own secret (store_secret()), so cursors outlive restarts and stay
 * valid on a restored backup.
 *
 * Threads: the keys are set once before the server starts; the functions are reentrant.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/random.h>

#include "api/core/core.h"

#define TAG_LEN 8

/* One HMAC-SHA-256 of 'msg' under 'key', into 'out' (32 bytes). */
static int hmac(const uint8_t *key, size_t key_len, const void *msg, size_t len, uint8_t *out)
{
    unsigned olen = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, msg, len, out, &olen) && olen == 32 ? 0 : -1;
}

int api__seal_init(api_server_t *srv)
{
    uint8_t secret[STORE_SECRET_LEN], k[32];
    int rc = store_secret(srv->store, secret);
    if (rc != REEL_OK)
        return rc;
    if (hmac(secret, sizeof secret, "reel sealed cursor: aes", 23, k))
        return REEL_EINTERNAL;
    memcpy(srv->seal_aes, k, sizeof srv->seal_aes);
    if (hmac(secret, sizeof secret, "reel sealed cursor: mac", 23, srv->seal_mac))
        return REEL_EINTERNAL;
    srv->has_seal = 1;
    return REEL_OK;
}

/* AES-128 of one block, forward (enc 1) or back (enc 0). */
static int aes_block(const uint8_t key[16], const uint8_t in[16], uint8_t out[16], int enc)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = c && EVP_CipherInit_ex(c, EVP_aes_128_ecb(), NULL, key, NULL, enc) &&
                    EVP_CIPHER_CTX_set_padding(c, 0) && EVP_CipherUpdate(c, out, &n, in, 16) &&
                    n == 16;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

int api__seal(const api_server_t *srv, uint64_t v, char out[API_SEAL_LEN + 1])
{
    uint8_t block[16], sealed[16 + TAG_LEN], tag[32];
    for (int i = 0; i < 8; i++)
        block[i] = (uint8_t)(v >> (56 - 8 * i));
    if (!srv->has_seal || getrandom(block + 8, 8, 0) != 8 ||
        aes_block(srv->seal_aes, block, sealed, 1) ||
        hmac(srv->seal_mac, sizeof srv->seal_mac, sealed, 16, tag))
        return REEL_EINTERNAL;
    memcpy(sealed + 16, tag, TAG_LEN);
    static const char hex[] = "0123456789abcdef";
    out[0] = 't';
    for (size_t i = 0; i < sizeof sealed; i++) {
        out[1 + 2 * i] = hex[sealed[i] >> 4];
        out[2 + 2 * i] = hex[sealed[i] & 15];
    }
    out[API_SEAL_LEN] = '\0';
    return REEL_OK;
}

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int api__unseal(const api_server_t *srv, const char *s, size_t n, uint64_t *v)
{
    uint8_t sealed[16 + TAG_LEN], tag[32], block[16];
    if (!srv->has_seal || n != API_SEAL_LEN || s[0] != 't')
        return REEL_EINVALID_PARAMETER;
    for (size_t i = 0; i < sizeof sealed; i++) {
        int hi = unhex(s[1 + 2 * i]), lo = unhex(s[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return REEL_EINVALID_PARAMETER;
        sealed[i] = (uint8_t)(hi << 4 | lo);
    }
    if (hmac(srv->seal_mac, sizeof srv->seal_mac, sealed, 16, tag))
        return REEL_EINTERNAL;
    /* constant time: a forger learns nothing from how fast a wrong tag is refused */
    unsigned diff = 0;
    for (int i = 0; i < TAG_LEN; i++)
        diff |= (unsigned)(tag[i] ^ sealed[16 + i]);
    if (diff || aes_block(srv->seal_aes, sealed, block, 0))
        return REEL_EINVALID_PARAMETER;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | block[i];
    *v = x;
    return REEL_OK;
}
