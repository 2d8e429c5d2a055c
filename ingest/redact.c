/* redact.c -- secrets out of event strings before they are stored (contract in ingest.h,
 * "Redaction"; detectors and their rules in docs/REDACTION.md).
 *
 * A scan is one pass over a string: the first three bytes of every built-in trigger
 * ("sk-", "AKI", "ghp", "eyJ", "---", "aut" in any case, ...) are looked for 16 positions
 * at a time (SSSE3), or byte by byte through a table of the triggers' first two bytes and
 * one of their (hashed) first three; a hit runs that trigger's small hand-written matcher.
 * Custom patterns (POSIX ERE) run only on strings that contain their literal prefix when
 * they have one of 3 bytes or more, else on every string. Matches are collected, overlaps
 * dropped (the earlier wins), and the string is rebuilt with "[REDACTED:kind]" in place
 * of each match.
 */
#include "ingest/ingest.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <tmmintrin.h> /* SSSE3: the block prefilter, used when the CPU has it */
#define REDACT_BLOCKS 1
#endif

static const char *const builtin_names[INGEST_REDACT_BUILTIN_KINDS] = {
    "anthropic_key", "openai_key",  "aws_access_key", "aws_secret_key", "github_token",
    "google_api_key", "slack_token", "stripe_key",    "jwt",            "private_key",
    "authorization",  "password",    "url_userinfo",
};

struct custom {
    regex_t re;
    char prefix[32]; /* the literal the pattern starts with (when 3+ bytes), else "" */
    size_t prefix_len;
};

struct ingest_redactor {
    int builtin;
    size_t n_kinds; /* builtin kinds, then one per custom pattern */
    char **kinds;   /* custom kind names (index - INGEST_REDACT_BUILTIN_KINDS) */
    struct custom *custom;
    size_t n_custom;
    _Atomic uint64_t *counts; /* n_kinds */
};

static ingest_redactor_t builtin_only;
static _Atomic uint64_t builtin_counts[INGEST_REDACT_BUILTIN_KINDS];
static ingest_redactor_t *current;

/* ---- the trigger table ---- */

static uint8_t bigram[65536 / 8];
/* The exact first two bytes of every trigger (64 Ki bits, 8 KiB: stays in L1). Checked
 * before the three-byte hash, it rejects most bytes of ordinary text with one 16-bit load
 * and a bit test instead of three loads and a multiply (issue 19: the scan was 18 % of
 * the server's CPU on batched ingest). Every trigger's pair is marked, so it only
 * filters positions where no trigger starts. */
static uint8_t pair[65536 / 8];
static uint8_t tok[256]; /* character classes, below */

/* The block prefilter: 16 positions at a time, a superset of the positions whose first
 * three bytes are those of a trigger, so scan_builtin() looks at a position only when one
 * may start there (the byte loop alone was 1.3 ns a byte, 10 % of the server's CPU on
 * batched ingest, issue 19). Each trigger's three bytes (a, b, c) set bit bucket(a) in
 * the class of a as a first byte, b as a second and c as a third; a class is looked up by
 * nibbles (lo[x & 15] & hi[x >> 4], two PSHUFB), which may add bytes to a class but never
 * drops one, so a position whose three classes share no bit starts no trigger. Every
 * matcher checks its trigger's first three bytes itself, so skipping the others changes
 * no result. */
static uint8_t cls_lo[3][16], cls_hi[3][16];
static int use_blocks; /* set once (init_once) when the CPU has SSSE3 */
enum { T_ALNUM = 1, T_URL64 = 2, T_B64 = 4, T_UPNUM = 8, T_CRED = 16 };

/* A 64 Ki-bit set of the first three bytes of every trigger, hashed (a collision only
 * costs a matcher call). */
static inline unsigned tri(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    return (v * 0x9e3779b1u) >> 16;
}

static inline unsigned duo(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

/* Case variants of one letter share a bucket, so the few triggers of a bucket keep its
 * nibble classes tight (8 buckets for the triggers' 14 first bytes). */
static unsigned bucket(int c)
{
    switch (tolower(c)) {
    case 's': return 0;
    case 'r': return 1;
    case 'a': return 2;
    case 'g': return 3;
    case 'e': return 4;
    case 'b': return 6;
    case 'p': return 7;
    default: return 5; /* '-', ':', 'x' */
    }
}

static void mark3(const char *three)
{
    const uint8_t *t = (const uint8_t *)three;
    unsigned v = tri(t), d = duo(t), bit = 1u << bucket(t[0]);
    bigram[v >> 3] |= (uint8_t)(1u << (v & 7));
    pair[d >> 3] |= (uint8_t)(1u << (d & 7));
    for (int k = 0; k < 3; k++) {
        cls_lo[k][t[k] & 15] |= (uint8_t)bit;
        cls_hi[k][t[k] >> 4] |= (uint8_t)bit;
    }
}

/* Marks every upper/lower combination of the first three letters of 'word'. */
static void mark_ci(const char *word)
{
    for (int m = 0; m < 8; m++) {
        char t[3];
        for (int k = 0; k < 3; k++)
            t[k] = (char)(m >> k & 1 ? toupper((uint8_t)word[k]) : tolower((uint8_t)word[k]));
        mark3(t);
    }
}

static void init_blocks(void)
{
#ifdef REDACT_BLOCKS
    __builtin_cpu_init();
    use_blocks = __builtin_cpu_supports("ssse3");
#endif
}

static void init_once(void)
{
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        tok[c] = (uint8_t)((alnum ? T_ALNUM | T_URL64 | T_B64 | T_CRED : 0) |
                           ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ? T_UPNUM : 0));
    }
    tok['-'] |= T_URL64 | T_CRED;
    tok['_'] |= T_URL64 | T_CRED;
    tok['+'] |= T_B64 | T_CRED;
    tok['/'] |= T_B64 | T_CRED;
    tok['='] |= T_CRED;
    tok['.'] |= T_CRED;
    tok['~'] |= T_CRED;
    static const char *const exact[] = {"sk-", "sk_", "rk_", "AKI", "ASI", "AIz", "ghp", "gho",
                                        "ghu", "ghs", "ghr", "git", "xox", "eyJ", "---", "://"};
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        mark3(exact[i]);
    static const char *const words[] = {"authorization", "bearer", "basic", "password",
                                        "passwd", "aws_secret", "secret_access_key",
                                        "secretaccesskey"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        mark_ci(words[i]);
    init_blocks();
    builtin_only.builtin = 1;
    builtin_only.n_kinds = INGEST_REDACT_BUILTIN_KINDS;
    builtin_only.counts = builtin_counts;
}

static void init_tables(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);
}

/* ---- helpers ---- */

struct scan {
    const uint8_t *s;
    size_t n;
    ingest_redact_match_t *m; /* matches found */
    size_t nm, cap;
    int oom;
};

static void add(struct scan *sc, size_t from, size_t to, int kind)
{
    if (sc->nm == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 8;
        ingest_redact_match_t *m = realloc(sc->m, cap * sizeof *m);
        if (!m) {
            sc->oom = 1;
            return;
        }
        sc->m = m, sc->cap = cap;
    }
    sc->m[sc->nm++] = (ingest_redact_match_t){from, to, kind};
}

static size_t run(const uint8_t *s, size_t i, size_t n, uint8_t cls)
{
    while (i < n && (tok[s[i]] & cls))
        i++;
    return i;
}

static int has_prefix(const uint8_t *s, size_t i, size_t n, const char *p)
{
    size_t l = strlen(p);
    return n - i >= l && !memcmp(s + i, p, l);
}

static int has_prefix_ci(const uint8_t *s, size_t i, size_t n, const char *p)
{
    size_t l = strlen(p);
    return n - i >= l && !strncasecmp((const char *)s + i, p, l);
}

/* 1 if s[a..b) looks like a placeholder, not a secret: few distinct characters
 * (XXXXXXXX, 00000000, abababab), or a telltale word. */
static int placeholder(const uint8_t *s, size_t a, size_t b)
{
    uint8_t seen[256] = {0};
    int distinct = 0;
    for (size_t i = a; i < b; i++)
        if (!seen[s[i]]++)
            distinct++;
    if (distinct < 6)
        return 1;
    static const char *const words[] = {"EXAMPLE", "example", "XXXXX", "xxxxx", "your_",
                                        "your-", "YOUR_", "YOUR-", "placeholder", "redacted",
                                        "REDACTED", "changeme"};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++)
        if (memmem(s + a, b - a, words[w], strlen(words[w])))
            return 1;
    return 0;
}

static int has_digit(const uint8_t *s, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (s[i] >= '0' && s[i] <= '9')
            return 1;
    return 0;
}

/* The left edge of a token: the start or a byte other than a letter, digit or '_' (a
 * diff's '+', a path's '/', '=', a quote...). */
static int left_edge(const uint8_t *s, size_t i)
{
    return i == 0 || !((tok[s[i - 1]] & T_ALNUM) || s[i - 1] == '_');
}

/* ---- the detectors: each returns the end of its match at 'i', or 0 ---- */

static size_t m_sk(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (!left_edge(s, i))
        return 0;
    if (has_prefix(s, i, n, "sk-ant-")) {
        size_t e = run(s, i + 7, n, T_URL64);
        if (e - (i + 7) >= 32 && !placeholder(s, i + 7, e) &&
            (e - (i + 7) >= 40 || has_digit(s, i + 7, e)))
            return *kind = INGEST_REDACT_ANTHROPIC, e;
        return 0;
    }
    if (has_prefix(s, i, n, "sk-")) {
        size_t e = run(s, i + 3, n, T_URL64);
        if (e - (i + 3) >= 20 && !placeholder(s, i + 3, e) &&
            (e - (i + 3) >= 40 || has_digit(s, i + 3, e)))
            return *kind = INGEST_REDACT_OPENAI, e;
        return 0;
    }
    if (has_prefix(s, i, n, "sk_live_") || has_prefix(s, i, n, "sk_test_")) {
        size_t e = run(s, i + 8, n, T_ALNUM);
        if (e - (i + 8) >= 20 && !placeholder(s, i + 8, e))
            return *kind = INGEST_REDACT_STRIPE, e;
    }
    return 0;
}

static size_t m_rk(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (left_edge(s, i) && (has_prefix(s, i, n, "rk_live_") || has_prefix(s, i, n, "rk_test_"))) {
        size_t e = run(s, i + 8, n, T_ALNUM);
        if (e - (i + 8) >= 20 && !placeholder(s, i + 8, e))
            return *kind = INGEST_REDACT_STRIPE, e;
    }
    return 0;
}

static size_t m_A(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (!left_edge(s, i))
        return 0;
    if (has_prefix(s, i, n, "AKIA") || has_prefix(s, i, n, "ASIA")) {
        size_t e = run(s, i + 4, n, T_UPNUM);
        if (e - i == 20 && !(e < n && (tok[s[e]] & T_ALNUM)) && !placeholder(s, i + 4, e))
            return *kind = INGEST_REDACT_AWS_ACCESS, e;
        return 0;
    }
    if (has_prefix(s, i, n, "AIza")) {
        size_t e = run(s, i + 4, n, T_URL64);
        if (e - i == 39 && !placeholder(s, i + 4, e))
            return *kind = INGEST_REDACT_GOOGLE, e;
    }
    return 0;
}

static size_t m_gh(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (!left_edge(s, i))
        return 0;
    /* "gh" + one of "pousr" + "_" (the 'h' is checked: "github_pat_" gets here too). */
    if (n - i >= 4 && s[i + 1] == 'h' && s[i + 3] == '_' && s[i + 2] &&
        strchr("pousr", s[i + 2])) {
        size_t e = run(s, i + 4, n, T_ALNUM);
        if (e - (i + 4) >= 36 && e - (i + 4) <= 251 && !placeholder(s, i + 4, e))
            return *kind = INGEST_REDACT_GITHUB, e;
        return 0;
    }
    if (has_prefix(s, i, n, "github_pat_")) {
        size_t e = run(s, i + 11, n, T_ALNUM | T_URL64);
        if (e - (i + 11) >= 40 && !placeholder(s, i + 11, e))
            return *kind = INGEST_REDACT_GITHUB, e;
    }
    return 0;
}

static size_t m_xo(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (left_edge(s, i) && n - i >= 5 && s[i + 2] == 'x' && strchr("abpr", s[i + 3]) &&
        s[i + 3] && s[i + 4] == '-') {
        size_t e = run(s, i + 5, n, T_ALNUM | T_URL64);
        if (e - (i + 5) >= 20 && !placeholder(s, i + 5, e) && has_digit(s, i + 5, e))
            return *kind = INGEST_REDACT_SLACK, e;
    }
    return 0;
}

static int b64url_val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
}

/* 1 if base64url s[a..b) decodes to a JSON object that has the key "alg". */
static int jwt_header(const uint8_t *s, size_t a, size_t b)
{
    char out[512];
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = a; i < b && o < sizeof out - 1; i++) {
        int v = b64url_val(s[i]);
        if (v < 0)
            return 0;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    out[o] = 0;
    return o > 2 && out[0] == '{' && strstr(out, "\"alg\"") != NULL;
}

static size_t m_ey(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (!left_edge(s, i) || !has_prefix(s, i, n, "eyJ"))
        return 0;
    size_t h = run(s, i, n, T_ALNUM | T_URL64);
    if (h - i < 10 || h >= n || s[h] != '.')
        return 0;
    size_t p = run(s, h + 1, n, T_ALNUM | T_URL64);
    if (p - (h + 1) < 4 || p >= n || s[p] != '.')
        return 0;
    size_t g = run(s, p + 1, n, T_ALNUM | T_URL64);
    if (!jwt_header(s, i, h))
        return 0;
    return *kind = INGEST_REDACT_JWT, g;
}

static size_t m_pem(const uint8_t *s, size_t i, size_t n, int *kind)
{
    if (!has_prefix(s, i, n, "-----BEGIN "))
        return 0;
    const uint8_t *eol = memchr(s + i, '\n', n - i);
    size_t head_end = eol ? (size_t)(eol - s) : n;
    const char *pk = memmem(s + i, head_end - i, "PRIVATE KEY-----", 16);
    if (!pk)
        return 0;
    const uint8_t *end = memmem(s + i + 11, n - i - 11, "-----END ", 9);
    if (!end)
        return *kind = INGEST_REDACT_PRIVATE_KEY, n; /* cut off: to the end of the string */
    const uint8_t *close = memmem(end + 9, (size_t)(s + n - end - 9), "-----", 5);
    return *kind = INGEST_REDACT_PRIVATE_KEY, close ? (size_t)(close - s) + 5 : n;
}

/* 1 if base64 s[a..b) decodes to "user:password" (printable, with a ':'). */
static int basic_pair(const uint8_t *s, size_t a, size_t b)
{
    unsigned acc = 0;
    int bits = 0, colon = 0;
    for (size_t i = a; i < b && s[i] != '='; i++) {
        int v = b64url_val(s[i]);
        if (v < 0)
            return 0;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            int c = (int)(acc >> bits & 0xff);
            if (c < 0x20 || c > 0x7e)
                return 0;
            colon |= c == ':';
        }
    }
    return colon;
}

/* A bare "Bearer X" / "Basic X" (no header name before it): X is a credential when it is
 * 16+ token68 characters mixing upper case, lower case and digits (random tokens, JWTs),
 * or, after Basic, base64 of "user:pass". Prose ("Bearer tokens", "basic 3.5.1") is not. */
static size_t credential(const uint8_t *s, size_t i, size_t n, int basic)
{
    size_t e = run(s, i, n, T_CRED);
    if (e - i < 8 || placeholder(s, i, e))
        return 0;
    if (basic && basic_pair(s, i, e))
        return e;
    int up = 0, lo = 0, dg = 0;
    for (size_t k = i; k < e; k++)
        up |= s[k] >= 'A' && s[k] <= 'Z', lo |= s[k] >= 'a' && s[k] <= 'z',
            dg |= s[k] >= '0' && s[k] <= '9';
    return e - i >= 16 && up && lo && dg ? e : 0;
}

/* After "Authorization:" the context says enough: any 8+ token68 characters that are not
 * a placeholder ("<token>" and "$TOKEN" are not token68 at all). */
static size_t header_credential(const uint8_t *s, size_t i, size_t n)
{
    size_t e = run(s, i, n, T_CRED);
    return e - i >= 8 && !placeholder(s, i, e) ? e : 0;
}

/* "Bearer X" / "Basic X" after a boundary: only X is redacted. */
static size_t m_scheme(const uint8_t *s, size_t i, size_t n, int *kind, size_t *from)
{
    if (i > 0 && (tok[s[i - 1]] & T_ALNUM))
        return 0;
    size_t w = has_prefix(s, i, n, "Bearer ") ? 7 : has_prefix(s, i, n, "Basic ") ? 6 : 0;
    if (!w)
        return 0;
    size_t c = i + w;
    while (c < n && s[c] == ' ')
        c++;
    size_t e = credential(s, c, n, w == 6);
    if (!e)
        return 0;
    *from = c;
    return *kind = INGEST_REDACT_AUTHORIZATION, e;
}

/* "Authorization: <scheme> <cred>" (also "authorization=", quoted keys): the value after
 * the scheme word up to the end of the line or a quote. */
static size_t m_auth(const uint8_t *s, size_t i, size_t n, int *kind, size_t *from)
{
    if (!has_prefix_ci(s, i, n, "authorization") || (i > 0 && (tok[s[i - 1]] & T_ALNUM)))
        return 0;
    size_t c = i + 13;
    while (c < n && (s[c] == '"' || s[c] == '\'' || s[c] == ' '))
        c++;
    if (c >= n || (s[c] != ':' && s[c] != '='))
        return 0;
    c++;
    while (c < n && (s[c] == ' ' || s[c] == '"' || s[c] == '\''))
        c++;
    size_t w = run(s, c, n, T_ALNUM); /* the scheme word, kept when a credential follows */
    if (w < n && s[w] == ' ' && w - c <= 20) {
        size_t v = w;
        while (v < n && s[v] == ' ')
            v++;
        if (header_credential(s, v, n)) {
            size_t e = v;
            while (e < n && s[e] != '\n' && s[e] != '\r' && s[e] != '"' && s[e] != '\'')
                e++;
            *from = v;
            return *kind = INGEST_REDACT_AUTHORIZATION, e;
        }
        return 0;
    }
    size_t e = header_credential(s, c, n); /* no scheme: "Authorization: <token>" */
    if (!e)
        return 0;
    *from = c;
    return *kind = INGEST_REDACT_AUTHORIZATION, e;
}

/* "password=V" / "passwd=V" (URL query or form): V up to '&', '#', a quote or a space. */
static size_t m_password(const uint8_t *s, size_t i, size_t n, int *kind, size_t *from)
{
    size_t w = has_prefix_ci(s, i, n, "password=") ? 9 : has_prefix_ci(s, i, n, "passwd=") ? 7 : 0;
    if (!w || (i > 0 && (tok[s[i - 1]] & T_ALNUM)))
        return 0;
    size_t c = i + w, e = c;
    while (e < n && !strchr("&# \t\r\n\"'<>", s[e]) && s[e])
        e++;
    if (e - c < 4 || s[c] == '$' || s[c] == '{' || s[c] == '<' || s[c] == '%' ||
        placeholder(s, c, e))
        return 0;
    *from = c;
    return *kind = INGEST_REDACT_PASSWORD, e;
}

/* "scheme://user:pass@host": only pass is redacted. */
static size_t m_userinfo(const uint8_t *s, size_t i, size_t n, int *kind, size_t *from)
{
    if (!has_prefix(s, i, n, "://") || i == 0 || !(tok[s[i - 1]] & T_ALNUM))
        return 0;
    size_t c = i + 3, colon = 0;
    for (size_t e = c; e < n && e - c < 256; e++) {
        uint8_t ch = s[e];
        if (ch == ':' && !colon)
            colon = e;
        else if (ch == '@') {
            if (!colon || colon == c || e - colon - 1 < 3)
                return 0;
            size_t p = colon + 1;
            if (s[p] == '$' || s[p] == '{' || s[p] == '<' || s[p] == '%' || placeholder(s, p, e))
                return 0;
            *from = p;
            return *kind = INGEST_REDACT_USERINFO, e;
        } else if (ch == '/' || ch == '?' || ch == '#' || ch <= ' ' || ch == '"' || ch == '\'')
            return 0;
    }
    return 0;
}

/* AWS secret keys: 40 characters of [A-Za-z0-9/+] in the context of their name
 * (aws_secret_access_key=..., "SecretAccessKey": "..."). */
static size_t m_aws_secret(const uint8_t *s, size_t i, size_t n, int *kind, size_t *from)
{
    size_t w = has_prefix_ci(s, i, n, "aws_secret_access_key") ? 21
               : has_prefix_ci(s, i, n, "secret_access_key")   ? 17
               : has_prefix_ci(s, i, n, "secretaccesskey")     ? 15
               : has_prefix_ci(s, i, n, "aws_secret_key")      ? 14
                                                                : 0;
    if (!w)
        return 0;
    size_t c = i + w, k = 0;
    while (c < n && k < 6 && strchr(" \t\"':=", s[c]) && s[c])
        c++, k++;
    size_t e = run(s, c, n, T_B64);
    if (e - c != 40 || (e < n && s[e] == '=') || placeholder(s, c, e))
        return 0;
    *from = c;
    return *kind = INGEST_REDACT_AWS_SECRET, e;
}

/* 1 when the two bytes at p are the first two of a trigger. */
static inline int pair_has(const uint8_t *p)
{
    unsigned d = duo(p);
    return (pair[d >> 3] >> (d & 7)) & 1;
}

/* The end of a built-in match starting at s[i] (adding it), else 0. Needs i + 2 < n and
 * pair_has(s + i). */
static size_t match_at(struct scan *sc, size_t i)
{
    const uint8_t *s = sc->s;
    size_t n = sc->n;
    unsigned v = tri(s + i);
    if (!(bigram[v >> 3] & (1u << (v & 7))))
        return 0;
    int kind = -1;
    size_t from = i, e = 0;
    switch (s[i]) {
    case 's': e = m_sk(s, i, n, &kind); if (!e) e = m_aws_secret(s, i, n, &kind, &from); break;
    case 'S': e = m_aws_secret(s, i, n, &kind, &from); break;
    case 'r': e = m_rk(s, i, n, &kind); break;
    case 'A':
        e = m_A(s, i, n, &kind);
        if (!e) e = m_auth(s, i, n, &kind, &from);
        if (!e) e = m_aws_secret(s, i, n, &kind, &from);
        break;
    case 'a': e = m_auth(s, i, n, &kind, &from); if (!e) e = m_aws_secret(s, i, n, &kind, &from); break;
    case 'g': e = m_gh(s, i, n, &kind); break;
    case 'x': e = m_xo(s, i, n, &kind); break;
    case 'e': e = m_ey(s, i, n, &kind); break;
    case '-': e = m_pem(s, i, n, &kind); break;
    case 'B': case 'b': e = m_scheme(s, i, n, &kind, &from); break;
    case 'P': case 'p': e = m_password(s, i, n, &kind, &from); break;
    case ':': e = m_userinfo(s, i, n, &kind, &from); break;
    default: break;
    }
    if (e)
        add(sc, from, e, kind);
    return e;
}

#ifdef REDACT_BLOCKS
/* Per byte of p[0..16): the buckets whose triggers may have that byte at place k (0..2). */
__attribute__((target("ssse3"))) static inline __m128i block_class(const uint8_t *p, int k)
{
    const __m128i nib = _mm_set1_epi8(0x0f);
    __m128i x = _mm_loadu_si128((const __m128i *)p);
    __m128i lo = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)cls_lo[k]),
                                  _mm_and_si128(x, nib));
    __m128i hi = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)cls_hi[k]),
                                  _mm_and_si128(_mm_srli_epi16(x, 4), nib));
    return _mm_and_si128(lo, hi);
}

/* The block loop of scan_builtin(): returns where the byte loop takes over. A block covers
 * positions i..i+15, whose first three bytes reach s[i+17]; bit k of its mask is set when
 * position i+k may start a trigger. */
__attribute__((target("ssse3"))) static size_t scan_blocks(struct scan *sc)
{
    size_t n = sc->n, i = 0;
    while (i + 18 <= n) {
        const uint8_t *p = sc->s + i;
        __m128i c = _mm_and_si128(_mm_and_si128(block_class(p, 0), block_class(p + 1, 1)),
                                  block_class(p + 2, 2));
        unsigned m = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(c, _mm_setzero_si128()));
        m &= 0xffffu;
        size_t next = i + 16;
        while (m) {
            size_t j = i + (size_t)__builtin_ctz(m);
            size_t e = pair_has(sc->s + j) ? match_at(sc, j) : 0;
            if (!e) {
                m &= m - 1;
            } else if (e >= i + 16) { /* the next match may start where this one ended */
                next = e;
                break;
            } else {
                m &= ~0u << (e - i);
            }
        }
        i = next;
    }
    return i;
}
#endif

static void scan_builtin(struct scan *sc)
{
    size_t n = sc->n, i = 0;
#ifdef REDACT_BLOCKS
    if (use_blocks)
        i = scan_blocks(sc);
#endif
    while (i + 2 < n) {
        size_t e = pair_has(sc->s + i) ? match_at(sc, i) : 0;
        i = e ? e : i + 1; /* after a match, the next one may start where it ended */
    }
}

static void scan_custom(const ingest_redactor_t *r, struct scan *sc)
{
    /* regexec() is given the span with REG_STARTEND, but the string must still end in a
     * NUL (sanitizers' regexec reads up to it, and so may other libcs): a copy. */
    char *text = r->n_custom ? malloc(sc->n + 1) : NULL;
    if (!text) {
        sc->oom = 1; /* the append fails: a secret is never let through for want of memory */
        return;
    }
    memcpy(text, sc->s, sc->n);
    text[sc->n] = '\0';
    for (size_t k = 0; k < r->n_custom; k++) {
        const struct custom *c = &r->custom[k];
        size_t at = 0;
        if (c->prefix_len) {
            const uint8_t *p = memmem(sc->s, sc->n, c->prefix, c->prefix_len);
            if (!p)
                continue;
            at = (size_t)(p - sc->s);
        }
        while (at < sc->n) {
            regmatch_t m = {(regoff_t)at, (regoff_t)sc->n};
            if (regexec(&c->re, text, 1, &m, REG_STARTEND | (at ? REG_NOTBOL : 0)))
                break;
            if (m.rm_eo <= m.rm_so) { /* an empty match: step over it */
                at = (size_t)m.rm_so + 1;
                continue;
            }
            add(sc, (size_t)m.rm_so, (size_t)m.rm_eo, INGEST_REDACT_BUILTIN_KINDS + (int)k);
            at = (size_t)m.rm_eo;
        }
    }
    free(text);
}

static int by_start(const void *a, const void *b)
{
    const ingest_redact_match_t *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from ? 1 : x->kind - y->kind;
}

/* ---- public ---- */

int ingest__redact_blocks(int on)
{
    init_tables();
    int was = use_blocks;
#ifdef REDACT_BLOCKS
    use_blocks = on && __builtin_cpu_supports("ssse3");
#else
    (void)on;
#endif
    return was;
}

const char *ingest_redact_kind(const ingest_redactor_t *r, int kind)
{
    if (kind < INGEST_REDACT_BUILTIN_KINDS)
        return kind >= 0 ? builtin_names[kind] : "?";
    return r && (size_t)kind < r->n_kinds ? r->kinds[kind - INGEST_REDACT_BUILTIN_KINDS] : "?";
}

size_t ingest_redact_kinds(const ingest_redactor_t *r) { return r ? r->n_kinds : 0; }

uint64_t ingest_redact_count(const ingest_redactor_t *r, int kind)
{
    return r && kind >= 0 && (size_t)kind < r->n_kinds ? atomic_load(&r->counts[kind]) : 0;
}

size_t ingest_redact_find(const ingest_redactor_t *r, const void *s, size_t n,
                          ingest_redact_match_t **out)
{
    *out = NULL;
    if (!r || n < 2)
        return 0;
    struct scan sc = {s, n, NULL, 0, 0, 0};
    if (r->builtin)
        scan_builtin(&sc);
    if (r->n_custom) {
        scan_custom(r, &sc);
        if (sc.nm > 1) { /* drop overlaps: the earlier match wins */
            qsort(sc.m, sc.nm, sizeof *sc.m, by_start);
            size_t k = 1;
            for (size_t i = 1; i < sc.nm; i++)
                if (sc.m[i].from >= sc.m[k - 1].to)
                    sc.m[k++] = sc.m[i];
            sc.nm = k;
        }
    }
    if (sc.oom) {
        free(sc.m);
        return (size_t)-1;
    }
    *out = sc.m;
    return sc.nm;
}

size_t ingest_redact_str(const ingest_redactor_t *r, const void *s, size_t n, store_buf_t *out,
                         uint64_t *kinds_seen)
{
    ingest_redact_match_t *m;
    size_t nm = ingest_redact_find(r, s, n, &m);
    if (nm == (size_t)-1) {
        out->oom = 1;
        return 0;
    }
    const uint8_t *p = s;
    size_t at = 0;
    for (size_t i = 0; i < nm; i++) {
        store_buf_put(out, p + at, m[i].from - at);
        store_buf_puts(out, "[REDACTED:");
        store_buf_puts(out, ingest_redact_kind(r, m[i].kind));
        store_buf_putc(out, ']');
        at = m[i].to;
        if (m[i].kind < 64)
            *kinds_seen |= 1ull << m[i].kind;
        atomic_fetch_add_explicit(&r->counts[m[i].kind], 1, memory_order_relaxed);
    }
    if (nm)
        store_buf_put(out, p + at, n - at);
    free(m);
    return nm;
}

/* Walks one msgpack value without recursion (values may nest 100000 deep on small thread
 * stacks: docs/FORMAT.md section 5), scanning each string that is not a map key. With
 * 'out' NULL it only looks: 1 at the first match, else 0. With 'out' it copies the value
 * there with its strings redacted and adds the matches to *count. -1: not msgpack it can
 * follow, or out of memory (out->oom set). */
struct frame {
    uint64_t left; /* elements still to read; a map counts keys and values */
    int map;
};

static int walk(const ingest_redactor_t *r, const uint8_t *mp, size_t len, store_buf_t *out,
                size_t *count, uint64_t *kinds)
{
    store_mp_t m = {mp, mp + len};
    struct frame *fr = malloc(16 * sizeof *fr);
    size_t n = 0, cap = 16;
    store_buf_t tmp = STORE_BUF_INIT;
    int rc = 0;
    if (!fr)
        return -1;
    fr[n++] = (struct frame){1, 0};
    while (n) {
        struct frame *f = &fr[n - 1];
        if (!f->left) {
            n--;
            continue;
        }
        int key = f->map && f->left % 2 == 0;
        f->left--;
        const uint8_t *start = m.p;
        store_mp_obj_t o;
        if (store_mp_next(&m, &o)) {
            rc = -1;
            break;
        }
        if (o.type == STORE_MP_STR && !key) {
            if (!out) {
                ingest_redact_match_t *x;
                size_t k = ingest_redact_find(r, o.ptr, o.len, &x);
                free(x);
                if (k) {
                    rc = 1;
                    break;
                }
                continue;
            }
            store_buf_clear(&tmp);
            size_t k = ingest_redact_str(r, o.ptr, o.len, &tmp, kinds);
            if (store_buf_failed(&tmp)) {
                out->oom = 1;
                rc = -1;
                break;
            }
            if (k) {
                *count += k;
                store_mp_str(out, (const char *)tmp.data, tmp.len);
            } else
                store_buf_put(out, start, (size_t)(m.p - start));
            continue;
        }
        if (out)
            store_buf_put(out, start, (size_t)(m.p - start));
        if (o.type == STORE_MP_ARRAY || o.type == STORE_MP_MAP) {
            if (n == cap) {
                struct frame *g = realloc(fr, 2 * cap * sizeof *fr);
                if (!g) {
                    if (out)
                        out->oom = 1;
                    rc = -1;
                    break;
                }
                fr = g, cap *= 2;
            }
            fr[n++] = (struct frame){o.type == STORE_MP_MAP ? 2 * o.u : o.u,
                                     o.type == STORE_MP_MAP};
        }
    }
    if (!rc && m.p != mp + len)
        rc = -1;
    free(fr);
    store_buf_release(&tmp);
    return rc;
}

size_t ingest_redact_mp(const ingest_redactor_t *r, const uint8_t *mp, size_t len,
                        store_buf_t *out, uint64_t *kinds_seen)
{
    if (!r || !len)
        return 0;
    if (walk(r, mp, len, NULL, NULL, NULL) == 0) /* the common case: no match, no copy */
        return 0;
    size_t count = 0;
    store_buf_clear(out);
    if (walk(r, mp, len, out, &count, kinds_seen))
        return 0; /* not msgpack the walk can follow (out of memory: out->oom) */
    return count;
}

/* ---- configuration ---- */

static void free_redactor(ingest_redactor_t *r)
{
    if (!r || r == &builtin_only)
        return;
    for (size_t i = 0; i < r->n_custom; i++) {
        regfree(&r->custom[i].re);
        free(r->kinds[i]);
    }
    free(r->custom);
    free(r->kinds);
    free((void *)r->counts);
    free(r);
}

void ingest_redactor_free(ingest_redactor_t *r) { free_redactor(r); }

/* The literal a pattern starts with (no ERE metacharacter), for the memmem prefilter. */
static size_t literal_prefix(const char *re, char *out, size_t cap)
{
    size_t n = 0;
    if (re[0] == '^')
        re++;
    for (; re[n] && n < cap - 1; n++) {
        if (strchr(".[]()*+?{}|^$\\", re[n]))
            break;
        out[n] = re[n];
    }
    /* a quantifier after the literal applies to its last character */
    if (n && re[n] && strchr("*?{", re[n]))
        n--;
    out[n] = 0;
    return n >= 3 ? n : 0;
}

/* Adds one rule, a line of a patterns file ("builtin" or "kind<TAB>regex"; modified in
 * place); 'where' and 'lineno' name it in errors. */
static int add_rule(ingest_redactor_t *r, char *line, const char *where, size_t lineno,
                    char *err, size_t err_len)
{
    if (!strcmp(line, "builtin")) {
        r->builtin = 1;
        return REEL_OK;
    }
    char *tab = strchr(line, '\t');
    if (!tab || tab == line || !tab[1]) {
        snprintf(err, err_len, "%s:%zu: expected 'kind<TAB>regex' (or 'builtin')", where,
                 lineno);
        return REEL_EINVALID_PARAMETER;
    }
    *tab = 0;
    for (const char *k = line; *k; k++)
        if (!(tok[(uint8_t)*k] & T_ALNUM) && *k != '_' && *k != '-' && *k != '.') {
            snprintf(err, err_len, "%s:%zu: kind '%s': letters, digits, '_', '-', '.' only",
                     where, lineno, line);
            return REEL_EINVALID_PARAMETER;
        }
    struct custom *c = realloc(r->custom, (r->n_custom + 1) * sizeof *c);
    char **kinds = c ? realloc(r->kinds, (r->n_custom + 1) * sizeof *kinds) : NULL;
    if (c)
        r->custom = c;
    if (kinds)
        r->kinds = kinds;
    if (!c || !kinds || !(r->kinds[r->n_custom] = strdup(line)))
        return REEL_ENOMEM;
    struct custom *cu = &r->custom[r->n_custom];
    int e = regcomp(&cu->re, tab + 1, REG_EXTENDED);
    if (e) {
        char msg[128];
        regerror(e, &cu->re, msg, sizeof msg);
        free(r->kinds[r->n_custom]);
        snprintf(err, err_len, "%s:%zu: bad regex: %s", where, lineno, msg);
        return REEL_EINVALID_PARAMETER;
    }
    cu->prefix_len = literal_prefix(tab + 1, cu->prefix, sizeof cu->prefix);
    r->n_custom++;
    return REEL_OK;
}

static int load_file(ingest_redactor_t *r, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "--redact %s: cannot open it (%s)", path, strerror(errno));
        return REEL_EINVALID_PARAMETER;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = REEL_OK;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (!got || line[0] == '#')
            continue;
        if ((rc = add_rule(r, line, path, lineno, err, err_len)))
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

int ingest_redactor_new(const char *spec, ingest_redactor_t **out, char *err, size_t err_len)
{
    init_tables();
    *out = NULL;
    if (!spec || !*spec || !strcmp(spec, "builtin")) {
        *out = &builtin_only;
        return REEL_OK;
    }
    if (!strcmp(spec, "off"))
        return REEL_OK;
    ingest_redactor_t *r = calloc(1, sizeof *r);
    if (!r)
        return REEL_ENOMEM;
    int rc = load_file(r, spec, err, err_len);
    if (!rc) {
        r->n_kinds = INGEST_REDACT_BUILTIN_KINDS + r->n_custom;
        r->counts = calloc(r->n_kinds, sizeof *r->counts);
        if (!r->counts)
            rc = REEL_ENOMEM;
    }
    if (rc) {
        free_redactor(r);
        return rc;
    }
    *out = r;
    return REEL_OK;
}

/* Sizes the counters of a redactor whose rules are loaded. */
static int finish_redactor(ingest_redactor_t *r)
{
    r->n_kinds = INGEST_REDACT_BUILTIN_KINDS + r->n_custom;
    r->counts = calloc(r->n_kinds, sizeof *r->counts);
    return r->counts ? REEL_OK : REEL_ENOMEM;
}

int ingest_redactor_from_lines(const char *const *lines, size_t n, ingest_redactor_t **out,
                               char *err, size_t err_len)
{
    init_tables();
    *out = NULL;
    ingest_redactor_t *r = calloc(1, sizeof *r);
    if (!r)
        return REEL_ENOMEM;
    int rc = REEL_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        char *line = strdup(lines[i]);
        rc = line ? add_rule(r, line, "pattern", i + 1, err, err_len) : REEL_ENOMEM;
        free(line);
    }
    if (!rc)
        rc = finish_redactor(r);
    if (rc) {
        free_redactor(r);
        return rc;
    }
    *out = r;
    return REEL_OK;
}

static int configured;

void ingest_redact_set(ingest_redactor_t *r)
{
    init_tables();
    current = r;
    configured = 1;
}

const ingest_redactor_t *ingest_redact_current(void)
{
    if (!configured) {
        init_tables();
        return &builtin_only;
    }
    return current;
}
