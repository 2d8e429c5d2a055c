/* parse.c -- strict number and time parsers (contract in parse.h). */
#include <time.h>

#include "store/err.h"
#include "store/parse.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int store_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return REEL_EINVALID_PARAMETER;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return REEL_EINVALID_PARAMETER;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return REEL_EINVALID_PARAMETER;
        v = v * 10 + d;
    }
    *out = v;
    return REEL_OK;
}

/* A cursor over the text being parsed; 'p' never passes 'end'. */
struct text {
    const char *p, *end;
};

/* Reads 1..'max' digits into '*v'; -1 when there is none. */
static int field(struct text *t, int max, int *v)
{
    int k = 0, x = 0;
    for (; k < max && t->p < t->end && is_digit(*t->p); k++, t->p++)
        x = x * 10 + (*t->p - '0');
    *v = x;
    return k ? 0 : -1;
}

/* Consumes the next byte if it is one of 'alts'; -1 otherwise. */
static int sep(struct text *t, const char *alts)
{
    if (t->p == t->end)
        return -1;
    for (const char *a = alts; *a; a++)
        if (*t->p == *a)
            return t->p++, 0;
    return -1;
}

/* Reads ".digits" (any number of digits, even none) as milliseconds, if present. */
static int fraction(struct text *t)
{
    int ms = 0, scale = 100;
    if (sep(t, "."))
        return 0;
    for (; t->p < t->end && is_digit(*t->p); t->p++, scale /= 10)
        ms += (*t->p - '0') * scale;
    return ms;
}

/* Reads "Z", "z" or "+HH:MM"/"-HH:MM" into minutes east of UTC; -1 when malformed. */
static int zone(struct text *t, int *minutes)
{
    int h, m;
    *minutes = 0;
    if (!sep(t, "Zz"))
        return 0;
    if (t->p == t->end || (*t->p != '+' && *t->p != '-'))
        return -1;
    int sign = *t->p++ == '-' ? -1 : 1;
    /* Five bytes left that read as 1..2 digits, ':', 1..2 digits can only be "HH:MM". */
    if (t->end - t->p != 5 || field(t, 2, &h) || sep(t, ":") || field(t, 2, &m) ||
        t->p != t->end || h > 23 || m > 59)
        return -1;
    *minutes = sign * (h * 60 + m);
    return 0;
}

int64_t store_parse_rfc3339(const char *s, size_t n)
{
    struct text t = {s, s + n};
    struct tm tm = {0};
    int off;
    if (field(&t, 4, &tm.tm_year) || sep(&t, "-") || field(&t, 2, &tm.tm_mon) ||
        sep(&t, "-") || field(&t, 2, &tm.tm_mday) || sep(&t, "Tt ") ||
        field(&t, 2, &tm.tm_hour) || sep(&t, ":") || field(&t, 2, &tm.tm_min) ||
        sep(&t, ":") || field(&t, 2, &tm.tm_sec))
        return -1;
    int ms = fraction(&t);
    if (zone(&t, &off) || t.p != t.end)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t secs = (int64_t)timegm(&tm) - (int64_t)off * 60;
    return secs < 0 ? -1 : secs * 1000 + ms;
}

/* Reads exactly 'k' digits. */
static int digits(struct text *t, int k, int *v)
{
    if (t->end - t->p < k)
        return -1;
    int x = 0;
    for (int i = 0; i < k; i++, t->p++) {
        if (!is_digit(*t->p))
            return -1;
        x = x * 10 + (*t->p - '0');
    }
    *v = x;
    return 0;
}

/* Days from 1970-01-01 to the civil date y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t store_parse_rfc3339_js(const char *s, size_t n)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct text t = {s, s + n};
    int y, mo, d, h, mi, sec, ms = 0, off = 0;
    if (digits(&t, 4, &y) || sep(&t, "-") || digits(&t, 2, &mo) || sep(&t, "-") ||
        digits(&t, 2, &d) || sep(&t, "Tt ") || digits(&t, 2, &h) || sep(&t, ":") ||
        digits(&t, 2, &mi) || sep(&t, ":") || digits(&t, 2, &sec))
        return -1;
    if (!sep(&t, ".")) {
        if (t.p == t.end || !is_digit(*t.p))
            return -1;
        const char *f = t.p;
        for (int scale = 100; t.p < t.end && is_digit(*t.p); t.p++, scale /= 10)
            ms += (*t.p - '0') * scale;
        if (t.p - f > 9) /* V8 reads 10 or more digits with their leading zeros lost */
            return -1;
    }
    if (!sep(&t, "Zz")) {
        if (t.p != t.end)
            return -1;
    } else {
        int oh, om;
        if (t.p == t.end || (*t.p != '+' && *t.p != '-'))
            return -1;
        int sign = *t.p++ == '-' ? -1 : 1;
        if (digits(&t, 2, &oh) || sep(&t, ":") || digits(&t, 2, &om) || t.p != t.end ||
            oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 60 + om);
    }
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 59)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60;
    return secs < 0 ? -1 : secs * 1000 + ms;
}

int64_t store_parse_time(const char *s, size_t n)
{
    uint64_t v;
    if (n && n <= 15 && store_parse_u64(s, n, &v) == REEL_OK)
        return (int64_t)v;
    return store_parse_rfc3339(s, n);
}
