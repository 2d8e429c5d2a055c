/* ingest_redact.c -- secrets are replaced before they are stored (docs/REDACTION.md): each
 * built-in detector, the JSON-safe replacement through the whole ingest path, custom
 * patterns, and a generated corpus of secrets and near-misses (recall, false positives). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/unit/testutil.h"

/* ---- helpers ---- */

/* Redacts 's' with the built-in detectors; returns a malloc'ed result (s itself when
 * nothing matched) and the count in *n. */
static char *red(const char *s, size_t *n, uint64_t *kinds)
{
    ingest_redactor_t *r;
    TU_OK(ingest_redactor_new("builtin", &r, NULL, 0));
    store_buf_t out = STORE_BUF_INIT;
    uint64_t k = 0;
    *n = ingest_redact_str(r, s, strlen(s), &out, &k);
    if (kinds)
        *kinds = k;
    if (!*n)
        return strdup(s);
    store_buf_cstr(&out);
    size_t len;
    return (char *)store_buf_detach(&out, &len);
}

static void expect(const char *in, const char *want)
{
    size_t n;
    char *got = red(in, &n, NULL);
    cr_assert_str_eq(got, want, "redacting '%s'", in);
    free(got);
}

static void expect_none(const char *in) { expect(in, in); }

/* ---- one test per detector ---- */

Test(ingest_redact, anthropic)
{
    expect("key sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA_-q1w2e3r4t5 end",
           "key [REDACTED:anthropic_key] end");
    expect_none("sk-ant-api03-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
}

Test(ingest_redact, openai)
{
    expect("OPENAI_API_KEY=sk-proj-Ab3dEf9hIjKlMnOpQrStUvWx12\n",
           "OPENAI_API_KEY=[REDACTED:openai_key]\n");
    expect("\"sk-9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sT9uV8wX7yZ6aB5cD4eF\"",
           "\"[REDACTED:openai_key]\"");
    expect_none("sk-...XXXX");
    expect_none("task-manager-for-everyone-2024-release-1");
    expect_none("sk-your-api-key-here-please");
}

Test(ingest_redact, aws)
{
    expect("id=AKIAQ3EGRZ7N2LXPVB4K,", "id=[REDACTED:aws_access_key],");
    expect("ASIAJ5K2M3N4P5Q6R7S8", "[REDACTED:aws_access_key]");
    expect_none("AKIAIOSFODNN7EXAMPLE");          /* the documentation's example */
    expect_none("AKIAQ3EGRZ7N2LXPVB4KZZ");        /* longer: not an access key id */
    expect("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9Lm4Np2T\n",
           "aws_secret_access_key = [REDACTED:aws_secret_key]\n");
    expect("{\"SecretAccessKey\": \"Qm9vbGVhbkZhbHNlK2tleS8xMjM0NTY3ODkwYWJj\"}",
           "{\"SecretAccessKey\": \"[REDACTED:aws_secret_key]\"}");
    expect_none("checksum: Qm9vbGVhbkZhbHNlK2tleS8xMjM0NTY3ODkwYWJj");
}

Test(ingest_redact, github)
{
    expect("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789.", "token [REDACTED:github_token].");
    expect("gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "[REDACTED:github_token]");
    expect("github_pat_11ABCDEFG0123456789abc_defGHIJKLmnopQRSTuvwxYZ0123456789abcdefGHIJKLmnopq",
           "[REDACTED:github_token]");
    expect_none("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    expect_none("ghp_short");
}

Test(ingest_redact, google_slack_stripe)
{
    expect("AIzaSyD4x9K2m3N4p5Q6r7S8t9U0v1W2x3Y4z5A ok", "[REDACTED:google_api_key] ok");
    expect("xoxb-1234567890-9876543210-AbCdEfGhIjKlMnOpQrStUvWx",
           "[REDACTED:slack_token]");
    expect_none("xoxb-your-token");
    expect("sk_live_51H8aBcDeFgHiJkLmNoPqRsTu", "[REDACTED:stripe_key]");
    expect("rk_live_51H8aBcDeFgHiJkLmNoPqRsTu", "[REDACTED:stripe_key]");
}

Test(ingest_redact, jwt)
{
    /* {"alg":"HS256","typ":"JWT"} . {"sub":"1234567890"} . signature */
    expect("Cookie: s=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
           "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U; path=/",
           "Cookie: s=[REDACTED:jwt]; path=/");
    /* {"name":"x"}: not a JOSE header */
    expect_none("eyJuYW1lIjoieCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc");
}

Test(ingest_redact, private_key)
{
    expect("cat id_rsa\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE "
           "KEY-----\n$ ",
           "cat id_rsa\n[REDACTED:private_key]\n$ ");
    expect("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA (cut",
           "[REDACTED:private_key]");
    expect_none("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END "
                "PUBLIC KEY-----");
}

Test(ingest_redact, authorization)
{
    expect("Authorization: Bearer abcDEF1234567890xyz\r\nHost: x",
           "Authorization: Bearer [REDACTED:authorization]\r\nHost: x");
    expect("curl -H 'Authorization: Basic dXNlcjpwYXNzMTIz' https://x",
           "curl -H 'Authorization: Basic [REDACTED:authorization]' https://x");
    expect("{\"headers\": {\"authorization\": \"Bearer tok_8f7e6d5c4b3a2910\"}}",
           "{\"headers\": {\"authorization\": \"Bearer [REDACTED:authorization]\"}}");
    expect_none("Authorization: Bearer <token>");
    expect_none("Authorization: Bearer $TOKEN");
    expect_none("Bearer tokens and Basic authentication are described in RFC 6750");
}

Test(ingest_redact, passwords_in_urls)
{
    expect("GET /login?user=bob&password=Hunter2xyz&next=/ HTTP/1.1",
           "GET /login?user=bob&password=[REDACTED:password]&next=/ HTTP/1.1");
    expect("https://h/x?passwd=s3cr3tV4lue", "https://h/x?passwd=[REDACTED:password]");
    expect("DATABASE_URL=postgres://app:S3cr3tPw9x@db.internal:5432/app",
           "DATABASE_URL=postgres://app:[REDACTED:url_userinfo]@db.internal:5432/app");
    expect_none("password=${DB_PASSWORD}");
    expect_none("https://example.com:8443/path?q=1");
    expect_none("postgres://user:${PASS}@host/db");
    expect_none("git@github.com:org/repo.git");
}

/* ---- custom patterns ---- */

Test(ingest_redact, custom_file)
{
    char path[] = "/tmp/reel-redact-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *text = "# internal ids\ninternal\tINT-[0-9]{6}\nbuiltin\nshort\t[a-z]q[0-9]\n";
    cr_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    ingest_redactor_t *r;
    char err[256] = "";
    TU_OK(ingest_redactor_new(path, &r, err, sizeof err));
    const char *in = "a INT-123456 b aq1 c ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
    store_buf_t out = STORE_BUF_INIT;
    uint64_t k = 0;
    cr_assert_eq(ingest_redact_str(r, in, strlen(in), &out, &k), 3);
    cr_assert(store_buf_is(&out, "a [REDACTED:internal] b [REDACTED:short] c "
                                 "[REDACTED:github_token]"),
              "%s", store_buf_cstr(&out));
    cr_assert_eq(ingest_redact_kinds(r), INGEST_REDACT_BUILTIN_KINDS + 2);
    cr_assert_eq(ingest_redact_count(r, INGEST_REDACT_BUILTIN_KINDS), 1);
    store_buf_release(&out);
    ingest_redactor_free(r);

    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert(fd >= 0);
    text = "bad\t(unclosed\n";
    cr_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    TU_ERR(ingest_redactor_new(path, &r, err, sizeof err), REEL_EINVALID_PARAMETER);
    cr_assert(strstr(err, ":1: bad regex"), "%s", err);
    unlink(path);
    TU_ERR(ingest_redactor_new("/nonexistent/x", &r, err, sizeof err), REEL_EINVALID_PARAMETER);
    TU_OK(ingest_redactor_new("off", &r, err, sizeof err));
    cr_assert_null(r);
}

/* ---- through ingest: JSON-safe, hashed after redaction, recorded ---- */

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(60);
    tu_tmpdir(dir);
    st = tu_open(dir, 8u << 20, 1);
}

static void teardown(void)
{
    ingest_redact_set(NULL);
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

/* Appends 'ndjson' to session 's' and returns the events as the API renders them. */
static char *append_and_read(const char *s, const char *ndjson)
{
    ingest_batch_t ib;
    ingest_error_t e;
    TU_OK(ingest_batch_init(&ib, s, strlen(s)));
    int rc = ingest_parse(&ib, ndjson, strlen(ndjson), INGEST_NDJSON, NULL, &e);
    cr_assert_eq(rc, 0, "%s", e.text);
    TU_OK(ingest_append(st, &ib));
    ingest_batch_release(&ib);
    store_buf_t out = STORE_BUF_INIT;
    tu_events_t evs = {0};
    tu_read_session(st, s, &evs);
    for (size_t i = 0; i < evs.n; i++)
        store_buf_puts(&out, evs.v[i].json);
    tu_events_free(&evs);
    store_buf_cstr(&out);
    size_t len;
    return (char *)store_buf_detach(&out, &len);
}

Test(ingest_redact, json_safe_through_ingest, .init = setup, .fini = teardown)
{
    ingest_redactor_t *r;
    TU_OK(ingest_redactor_new("builtin", &r, NULL, 0));
    ingest_redact_set(r);
    /* A secret next to escapes, quotes and non-ASCII text, in nested
     * arrays and maps, in a map key (kept), and in raw as a plain native line. */
    const char *ev =
        "{\"type\":\"tool.result\",\"data\":{\"out\":[\"\\\"sk-proj-Ab3dEf9hIjKlMnOpQrStUvWx12"
        "\\\"\\n\\u00e9\",{\"k\":\"x\\tAKIAQ3EGRZ7N2LXPVB4K\\\\\"}],"
        "\"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\":1,\"n\":1.50},"
        "\"raw\":\"Authorization: Bearer abcDEF1234567890xyz\"}\n"
        "{\"type\":\"plain\",\"data\":{\"a\":\"no secret\"}}\n";
    char *j = append_and_read("s", ev);
    cr_assert_null(strstr(j, "Ab3dEf9hIjKlMnOp"), "%s", j);
    cr_assert_null(strstr(j, "RZ7N2LXPVB4K"), "%s", j);
    cr_assert_null(strstr(j, "abcDEF1234567890xyz"), "%s", j);
    cr_assert(strstr(j, "\"\\\"[REDACTED:openai_key]\\\"\\n\xc3\xa9\""), "%s", j);
    cr_assert(strstr(j, "\"x\\t[REDACTED:aws_access_key]\\\\\""), "%s", j);
    cr_assert(strstr(j, "\"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\":1"), "keys are kept: %s", j);
    cr_assert(strstr(j, "\"n\":1.50"), "%s", j);
    cr_assert(strstr(j, "\"redactions\":{\"count\":3,\"kinds\":[\"openai_key\","
                        "\"aws_access_key\",\"authorization\"]}}{"),
              "%s", j);
    cr_assert(strstr(j, "\"data\":{\"a\":\"no secret\"},\"raw\":null}"), "no record: %s", j);
    /* each rendered event is valid JSON */
    char *second = strstr(j, "}{");
    cr_assert(second);
    second[1] = 0;
    json_error_t je;
    json_t *v = json_loads(j, 0, &je);
    cr_assert(v, "%s: %s", je.text, j);
    json_decref(v);
    free(j);
    store_verify_report_t rep;
    TU_OK(store_verify(st, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok);
}

Test(ingest_redact, off_keeps_and_import_record_kept, .init = setup, .fini = teardown)
{
    ingest_redact_set(NULL);
    char *j = append_and_read("s", "{\"type\":\"t\",\"data\":\"AKIAQ3EGRZ7N2LXPVB4K\"}\n");
    cr_assert(strstr(j, "AKIAQ3EGRZ7N2LXPVB4K") && !strstr(j, "redactions"), "%s", j);
    free(j);
    /* An event read back (an import) keeps its record; a new match adds to it. */
    ingest_redactor_t *r;
    TU_OK(ingest_redactor_new("builtin", &r, NULL, 0));
    ingest_redact_set(r);
    j = append_and_read("t", "{\"type\":\"t\",\"data\":\"[REDACTED:jwt] AKIAQ3EGRZ7N2LXPVB4K\","
                             "\"redactions\":{\"count\":1,\"kinds\":[\"jwt\"]}}\n");
    cr_assert(strstr(j, "\"redactions\":{\"count\":2,\"kinds\":[\"jwt\",\"aws_access_key\"]}"),
              "%s", j);
    free(j);
    ingest_batch_t ib;
    ingest_error_t e;
    TU_OK(ingest_batch_init(&ib, "u", 1));
    const char *bad = "{\"type\":\"t\",\"redactions\":{\"count\":\"x\",\"kinds\":[]}}";
    TU_ERR(ingest_parse(&ib, bad, strlen(bad), INGEST_JSON, NULL, &e), REEL_EINVALID_EVENT);
    cr_assert(strstr(e.text, "'redactions'"), "%s", e.text);
    ingest_batch_release(&ib);
}

/* ---- the corpus: generated secrets in agent events, and near-misses ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char URL64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char UPNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char HEX[] = "0123456789abcdef";

static void rand_put(store_buf_t *b, const char *set, size_t n)
{
    size_t k = strlen(set);
    for (size_t i = 0; i < n; i++)
        store_buf_putc(b, set[rnd() % k]);
}

static void b64url_put(store_buf_t *b, const uint8_t *p, size_t n)
{
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            store_buf_putc(b, URL64[acc >> bits & 63]);
        }
    }
    if (bits)
        store_buf_putc(b, URL64[acc << (6 - bits) & 63]);
}

/* One generated secret: the text around it ('pre' + secret + 'post' is the snippet that
 * goes into a context) and the kind it must be found as. */
struct sample {
    store_buf_t pre, secret, post;
    int kind;
};

static void gen_secret(struct sample *s, int g)
{
    store_buf_t *p = &s->pre, *x = &s->secret, *q = &s->post;
    switch (g) {
    case 0:
        store_buf_puts(x, "sk-ant-api03-"), rand_put(x, URL64, 93), store_buf_puts(x, "AA");
        s->kind = INGEST_REDACT_ANTHROPIC;
        break;
    case 1:
        store_buf_puts(x, "sk-proj-"), rand_put(x, URL64, 48 + rnd() % 100);
        s->kind = INGEST_REDACT_OPENAI;
        break;
    case 2:
        store_buf_puts(x, "sk-"), rand_put(x, ALNUM, 48);
        s->kind = INGEST_REDACT_OPENAI;
        break;
    case 3:
        store_buf_puts(x, rnd() & 1 ? "AKIA" : "ASIA"), rand_put(x, UPNUM, 16);
        s->kind = INGEST_REDACT_AWS_ACCESS;
        break;
    case 4: {
        static const char *const ctx[] = {"aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=",
                                          "\"SecretAccessKey\": \"", "secret_access_key: "};
        store_buf_puts(p, ctx[rnd() % 4]), rand_put(x, B64, 40);
        s->kind = INGEST_REDACT_AWS_SECRET;
        break;
    }
    case 5: {
        static const char *const pre[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"};
        store_buf_puts(x, pre[rnd() % 5]), rand_put(x, ALNUM, 36);
        s->kind = INGEST_REDACT_GITHUB;
        break;
    }
    case 6:
        store_buf_puts(x, "github_pat_"), rand_put(x, ALNUM, 22), store_buf_putc(x, '_');
        rand_put(x, ALNUM, 59);
        s->kind = INGEST_REDACT_GITHUB;
        break;
    case 7:
        store_buf_puts(x, "AIza"), rand_put(x, URL64, 35);
        s->kind = INGEST_REDACT_GOOGLE;
        break;
    case 8: {
        static const char *const pre[] = {"xoxb-", "xoxp-", "xoxa-", "xoxr-"};
        store_buf_puts(x, pre[rnd() % 4]), rand_put(x, "0123456789", 12);
        store_buf_putc(x, '-'), rand_put(x, "0123456789", 13), store_buf_putc(x, '-');
        rand_put(x, ALNUM, 24);
        s->kind = INGEST_REDACT_SLACK;
        break;
    }
    case 9:
        store_buf_puts(x, rnd() & 1 ? "sk_live_" : "rk_live_"), rand_put(x, ALNUM, 24 + rnd() % 76);
        s->kind = INGEST_REDACT_STRIPE;
        break;
    case 10: {
        static const char *const hdr[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                                          "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"k1\"}"};
        const char *h = hdr[rnd() % 2];
        b64url_put(x, (const uint8_t *)h, strlen(h));
        store_buf_putc(x, '.');
        char pl[128];
        snprintf(pl, sizeof pl, "{\"sub\":\"%llu\",\"exp\":%llu}",
                 (unsigned long long)(rnd() % 1000000), (unsigned long long)(1700000000 + rnd() % 9999999));
        b64url_put(x, (const uint8_t *)pl, strlen(pl));
        store_buf_putc(x, '.');
        uint8_t sig[32];
        for (int i = 0; i < 32; i++)
            sig[i] = (uint8_t)rnd();
        b64url_put(x, sig, 32);
        s->kind = INGEST_REDACT_JWT;
        break;
    }
    case 11: {
        static const char *const t[] = {"RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "};
        const char *k = t[rnd() % 5];
        store_buf_printf(x, "-----BEGIN %sPRIVATE KEY-----\n", k);
        for (int l = 0; l < 4 + (int)(rnd() % 10); l++)
            rand_put(x, B64, 64), store_buf_putc(x, '\n');
        store_buf_printf(x, "-----END %sPRIVATE KEY-----", k);
        s->kind = INGEST_REDACT_PRIVATE_KEY;
        break;
    }
    case 12:
        store_buf_puts(p, rnd() & 1 ? "Authorization: Bearer " : "authorization: Basic ");
        rand_put(x, B64, 20 + rnd() % 40);
        s->kind = INGEST_REDACT_AUTHORIZATION;
        break;
    case 13:
        store_buf_puts(p, "https://api.internal.example/v1/login?user=ops&");
        store_buf_puts(p, rnd() & 1 ? "password=" : "passwd=");
        rand_put(x, ALNUM, 10 + rnd() % 12);
        store_buf_puts(q, "&remember=1");
        s->kind = INGEST_REDACT_PASSWORD;
        break;
    default: {
        static const char *const sch[] = {"postgres://app:", "https://deploy:", "redis://default:",
                                          "mongodb+srv://admin:", "amqp://guest2:"};
        store_buf_puts(p, sch[rnd() % 5]), rand_put(x, ALNUM, 12 + rnd() % 12);
        store_buf_puts(q, "@db-1.prod.internal:5432/main");
        s->kind = INGEST_REDACT_USERINFO;
        break;
    }
    }
}
#define N_SECRET_GEN 15

static void gen_near_miss(store_buf_t *b, int g)
{
    switch (g) {
    case 0: rand_put(b, HEX, 40); break;                                  /* git SHA-1 */
    case 1: store_buf_puts(b, "sha256:"), rand_put(b, HEX, 64); break;    /* digest */
    case 2: {
        char u[37];
        ingest_uuid7(u);
        store_buf_puts(b, u);
        break;
    }
    case 3: rand_put(b, B64, 44); store_buf_putc(b, '='); break;          /* base64 blob */
    case 4: store_buf_puts(b, "sk-...XXXX"); break;
    case 5: store_buf_puts(b, "sk-"), rand_put(b, "X", 32); break;
    case 6: store_buf_puts(b, "AKIAIOSFODNN7EXAMPLE"); break;
    case 7: store_buf_puts(b, "ghp_"), rand_put(b, "x", 36); break;
    case 8: store_buf_puts(b, "Authorization: Bearer <token>"); break;
    case 9: store_buf_puts(b, "Authorization: Bearer $GITHUB_TOKEN"); break;
    case 10: store_buf_puts(b, "password=${DB_PASSWORD}"); break;
    case 11: store_buf_puts(b, "https://example.com:8443/path?q="), rand_put(b, ALNUM, 8); break;
    case 12: store_buf_puts(b, "git@github.com:org/repo-"), rand_put(b, ALNUM, 6); break;
    case 13: store_buf_puts(b, "-----BEGIN CERTIFICATE-----\n"), rand_put(b, B64, 64);
             store_buf_puts(b, "\n-----END CERTIFICATE-----"); break;
    case 14: store_buf_puts(b, "task-"), rand_put(b, ALNUM, 30); break;   /* "sk-" inside a word */
    case 15: rand_put(b, UPNUM, 20); break;                               /* upper-case id */
    case 16: store_buf_puts(b, "xoxb-your-token"); break;
    case 17: store_buf_puts(b, "checksum: "), rand_put(b, B64, 40); break; /* 40 chars, no context */
    case 18: store_buf_puts(b, "integrity sha512-"), rand_put(b, B64, 86); store_buf_puts(b, "=="); break;
    case 19: store_buf_puts(b, "eyJuYW1lIjoiYm9iIn0."), rand_put(b, URL64, 20); /* no "alg" */
             store_buf_puts(b, "."), rand_put(b, URL64, 20); break;
    case 20: store_buf_puts(b, "Bearer tokens are described in RFC 6750; Basic authentication in RFC 7617"); break;
    case 21: store_buf_puts(b, "sk_live_"), store_buf_puts(b, "..."); break;
    case 22: store_buf_puts(b, "postgres://user:${PGPASSWORD}@localhost/db"); break;
    case 23: store_buf_puts(b, "AIza"), rand_put(b, URL64, 10); break;    /* too short */
    case 24: store_buf_puts(b, "password=<your-password>"); break;
    default: store_buf_puts(b, "risk-assessment-"), rand_put(b, HEX, 24); break;
    }
}
#define N_MISS_GEN 26

/* Puts 'snippet' into one of the contexts an agent's events carry it in. */
static void in_context(store_buf_t *b, const char *snippet, int c)
{
    switch (c % 6) {
    case 0: store_buf_printf(b, "$ env\nPATH=/usr/local/bin:/usr/bin\nHOME=/home/dev\nVAL=%s\n"
                                "SHELL=/bin/bash\n", snippet); break;
    case 1: store_buf_printf(b, "diff --git a/.env b/.env\n--- a/.env\n+++ b/.env\n@@ -1,2 +1,3 "
                                "@@\n NODE_ENV=production\n+%s\n", snippet); break;
    case 2: store_buf_printf(b, "{\n  \"region\": \"us-east-1\",\n  \"value\": \"%s\",\n  "
                                "\"retries\": 3\n}", snippet); break;
    case 3: store_buf_printf(b, "Running curl -sS '%s' ... done (200 OK)", snippet); break;
    case 4: store_buf_printf(b, "config.yaml:12: value: %s\nconfig.yaml:13: timeout: 30", snippet); break;
    default: store_buf_printf(b, "%s", snippet); break;
    }
}

Test(ingest_redact, corpus, .init = setup, .fini = teardown)
{
    ingest_redactor_t *r;
    TU_OK(ingest_redactor_new("builtin", &r, NULL, 0));
    ingest_redact_set(r);
    enum { PER_GEN_SECRET = 16, PER_GEN_MISS = 10 };
    const char *seed = getenv("REEL_CORPUS_SEED"); /* another corpus of the same shapes */
    if (seed && strtoull(seed, NULL, 10))
        rng = strtoull(seed, NULL, 10);
    size_t secrets = 0, found = 0, misses = 0, fp = 0;
    size_t by_kind_n[INGEST_REDACT_BUILTIN_KINDS] = {0}, by_kind_ok[INGEST_REDACT_BUILTIN_KINDS] = {0};
    store_buf_t nd = STORE_BUF_INIT; /* every sample as an event, for the ingest pass */
    char *list[N_SECRET_GEN * PER_GEN_SECRET];
    for (int g = 0; g < N_SECRET_GEN; g++)
        for (int i = 0; i < PER_GEN_SECRET; i++) {
            struct sample s = {STORE_BUF_INIT, STORE_BUF_INIT, STORE_BUF_INIT, 0};
            gen_secret(&s, g);
            store_buf_t snip = STORE_BUF_INIT, text = STORE_BUF_INIT;
            store_buf_put(&snip, s.pre.data, s.pre.len);
            store_buf_put(&snip, s.secret.data, s.secret.len);
            store_buf_put(&snip, s.post.data, s.post.len);
            in_context(&text, store_buf_cstr(&snip), i);
            const char *t = store_buf_cstr(&text), *sec = store_buf_cstr(&s.secret);
            ingest_redact_match_t *m;
            size_t n = ingest_redact_find(r, t, text.len, &m);
            int ok = 0;
            for (size_t k = 0; k < n; k++)
                ok |= m[k].kind == s.kind && (size_t)(strstr(t, sec) - t) >= m[k].from &&
                      (size_t)(strstr(t, sec) - t) + s.secret.len <= m[k].to;
            free(m);
            list[secrets] = strdup(sec);
            secrets++, found += ok;
            by_kind_n[s.kind]++, by_kind_ok[s.kind] += ok;
            if (!ok)
                fprintf(stderr, "corpus: missed %s in: %s\n", ingest_redact_kind(r, s.kind), t);
            store_buf_puts(&nd, "{\"type\":\"item.completed\",\"data\":{\"output\":");
            store_json_write_string(&nd, t, text.len);
            store_buf_puts(&nd, "}}\n");
            store_buf_release(&s.pre), store_buf_release(&s.secret), store_buf_release(&s.post);
            store_buf_release(&snip), store_buf_release(&text);
        }
    for (int g = 0; g < N_MISS_GEN; g++)
        for (int i = 0; i < PER_GEN_MISS; i++) {
            store_buf_t snip = STORE_BUF_INIT, text = STORE_BUF_INIT;
            gen_near_miss(&snip, g);
            in_context(&text, store_buf_cstr(&snip), i);
            ingest_redact_match_t *m;
            size_t n = ingest_redact_find(r, text.data, text.len, &m);
            misses++;
            if (n) {
                fp++;
                fprintf(stderr, "corpus: false positive %s in: %s\n",
                        ingest_redact_kind(r, m[0].kind), store_buf_cstr(&text));
            }
            free(m);
            store_buf_release(&snip), store_buf_release(&text);
        }
    fprintf(stderr, "redaction corpus: %zu secrets, %zu found (recall %.1f%%); %zu near-misses, "
                    "%zu false positives (%.1f%%)\n",
            secrets, found, 100.0 * (double)found / (double)secrets, misses, fp,
            100.0 * (double)fp / (double)misses);
    for (int k = 0; k < INGEST_REDACT_BUILTIN_KINDS; k++)
        fprintf(stderr, "  %-16s %zu/%zu\n", ingest_redact_kind(r, k), by_kind_ok[k], by_kind_n[k]);
    cr_assert_geq(secrets, 200);
    cr_assert_geq(misses, 200);
    cr_assert_eq(found, secrets, "recall below 100%%");
    cr_assert_eq(fp, 0, "false positives");

    /* The same secrets through ingest: none of them in the stored events. */
    char *j = append_and_read("corpus", store_buf_cstr(&nd));
    for (size_t i = 0; i < secrets; i++) {
        cr_assert_null(strstr(j, list[i]), "stored: %s", list[i]);
        free(list[i]);
    }
    cr_assert(strstr(j, "\"redactions\":{\"count\":1,"));
    store_buf_release(&nd);
    free(j);
}

/* The 16-byte block prefilter (SSSE3) finds exactly what the byte loop finds: texts of
 * every length from 0 to 300 bytes (block edges, the byte loop's tail), made of generated
 * secrets, near-misses, triggers cut short and noise at random offsets, scanned both ways.
 * A prefilter that dropped a position where a trigger starts fails here. */
Test(ingest_redact, blocks_find_what_bytes_find)
{
    ingest_redactor_t *r;
    TU_OK(ingest_redactor_new("builtin", &r, NULL, 0));
    static const char *const bits[] = {"sk-", "sk_", "rk_", "AKIA", "ASIA", "AIza", "ghp_",
                                       "xoxb-", "eyJ", "-----BEGIN ", "://", "Authorization",
                                       "bearer ", "Basic ", "password=", "aws_secret",
                                       "SECRET_ACCESS_KEY", "as", "As", "(-", " ", "\n"};
    if (!ingest__redact_blocks(1))
        cr_skip_test("the CPU has no SSSE3: the byte loop is the only one");
    size_t texts = 0, found = 0;
    for (size_t len = 0; len <= 300; len++)
        for (int round = 0; round < 24; round++) {
            store_buf_t t = STORE_BUF_INIT;
            while (t.len < len) {
                unsigned pick = (unsigned)(rnd() % 8);
                if (pick == 0) {
                    struct sample x = {STORE_BUF_INIT, STORE_BUF_INIT, STORE_BUF_INIT, 0};
                    gen_secret(&x, (int)(rnd() % N_SECRET_GEN));
                    store_buf_put(&t, x.pre.data, x.pre.len);
                    store_buf_put(&t, x.secret.data, x.secret.len);
                    store_buf_put(&t, x.post.data, x.post.len);
                    store_buf_release(&x.pre), store_buf_release(&x.secret);
                    store_buf_release(&x.post);
                } else if (pick == 1) {
                    gen_near_miss(&t, (int)(rnd() % N_MISS_GEN));
                } else if (pick < 5) {
                    store_buf_puts(&t, bits[rnd() % (sizeof bits / sizeof *bits)]);
                } else {
                    rand_put(&t, pick == 5 ? B64 : ALNUM, 1 + rnd() % 12);
                }
            }
            t.len = len; /* cut anywhere: a trigger may end the text */
            ingest_redact_match_t *a, *b;
            size_t na = ingest_redact_find(r, t.data, t.len, &a);
            ingest__redact_blocks(0);
            size_t nb = ingest_redact_find(r, t.data, t.len, &b);
            ingest__redact_blocks(1);
            const char *txt = t.data ? (const char *)t.data : "";
            cr_assert_eq(na, nb, "blocks %zu, bytes %zu matches in: %.*s", na, nb, (int)len, txt);
            for (size_t k = 0; k < na; k++)
                cr_assert(a[k].from == b[k].from && a[k].to == b[k].to && a[k].kind == b[k].kind,
                          "match %zu differs in: %.*s", k, (int)len, txt);
            texts++, found += na;
            free(a), free(b);
            store_buf_release(&t);
        }
    fprintf(stderr, "redaction blocks vs bytes: %zu texts, %zu matches, all the same\n", texts,
            found);
    cr_assert_gt(found, 1000);
    ingest_redactor_free(r);
}

/* Values may nest 100000 deep (--max-depth) and are read on small thread stacks: the walk
 * does not recurse. */
Test(ingest_redact, deep_value_without_recursion)
{
    ingest_redactor_t *r;
    TU_OK(ingest_redactor_new("builtin", &r, NULL, 0));
    store_buf_t in = STORE_BUF_INIT, out = STORE_BUF_INIT;
    enum { DEPTH = 100000 };
    for (int i = 0; i < DEPTH; i++)
        store_mp_map(&in, 1), store_mp_str(&in, "AKIAQ3EGRZ7N2LXPVB4K", 20); /* a key: kept */
    store_mp_str(&in, "x AKIAQ3EGRZ7N2LXPVB4K", 22);
    uint64_t k = 0;
    cr_assert_eq(ingest_redact_mp(r, in.data, in.len, &out, &k), 1);
    cr_assert_eq(k, 1ull << INGEST_REDACT_AWS_ACCESS);
    cr_assert_eq(out.len, in.len - 23 + 28); /* fixstr header + 22 bytes -> + 27 bytes */
    cr_assert(!memcmp(out.data + out.len - 27, "x [REDACTED:aws_access_key]", 27));
    store_buf_release(&in);
    store_buf_release(&out);
}
