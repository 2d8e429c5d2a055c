/* policy.c -- retention policies: durations, the --retention text, which policy applies
 * (docs/RETENTION.md). */
#include <stdio.h>
#include <string.h>

#include "retain/retain.h"
#include "store/parse.h"

#define MAX_MS (100ull * 366 * 86400 * 1000) /* 100 years: anything longer is a typo */

int retain_duration_parse(const char *s, size_t len, uint64_t *ms)
{
    static const struct { char unit; uint64_t ms; } units[] = {
        {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}, {'w', 604800000}};
    uint64_t mult = 1000, n;
    if (len && (s[len - 1] < '0' || s[len - 1] > '9')) {
        mult = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (s[len - 1] == units[i].unit)
                mult = units[i].ms;
        len--;
    }
    if (!mult || !len || store_parse_u64(s, len, &n) || !n || n > MAX_MS / mult)
        return REEL_EINVALID_PARAMETER;
    *ms = n * mult;
    return REEL_OK;
}

/* One "name=value" of a policy text. */
static int policy_item(const char *p, size_t n, store_retention_t *out, char *why, size_t cap)
{
    const char *eq = memchr(p, '=', n);
    if (!eq) {
        snprintf(why, cap, "'%.*s' is not name=value", (int)n, p);
        return REEL_EINVALID_PARAMETER;
    }
    size_t kl = (size_t)(eq - p), vl = n - kl - 1;
    const char *v = eq + 1;
#define KEY(name) (kl == strlen(name) && !memcmp(p, name, kl))
    int rc = REEL_OK, count = KEY("max_events");
    if (KEY("max_age"))
        rc = retain_duration_parse(v, vl, &out->max_age_ms);
    else if (KEY("max_age_after_end"))
        rc = retain_duration_parse(v, vl, &out->max_age_ended_ms);
    else if (KEY("max_events"))
        rc = store_parse_u64(v, vl, &out->max_events) || !out->max_events
                 ? REEL_EINVALID_PARAMETER : REEL_OK;
    else if (KEY("archive") && (vl == 2 || vl == 3) && (!memcmp(v, "on", vl) || !memcmp(v, "off", vl)))
        out->no_archive = vl == 3;
    else {
        snprintf(why, cap, "unknown setting '%.*s' (max_age, max_age_after_end, max_events, "
                 "archive=on|off)", (int)kl, p);
        return REEL_EINVALID_PARAMETER;
    }
#undef KEY
    if (rc)
        snprintf(why, cap, "'%.*s': %s", (int)n, p,
                 count ? "a positive number of events"
                             : "a positive duration like 30d, 12h, 90m or 3600 (seconds)");
    return rc;
}

int retain_policy_parse(const char *spec, store_retention_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->set = 1;
    if (!strcmp(spec, "none"))
        return REEL_OK;
    for (const char *p = spec; *p;) {
        size_t n = strcspn(p, ",");
        int rc = policy_item(p, n, out, why, cap);
        if (rc)
            return rc;
        p += n + (p[n] == ',');
    }
    return REEL_OK;
}

const store_retention_t *retain_policy_of(const store_session_t *rec,
                                          const store_retention_t *dflt)
{
    return rec->retention.set ? &rec->retention : dflt;
}
