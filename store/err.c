/* err.c -- tables generated from REEL_ERR_MAP (see err.h). */
#include "store/err.h"

#include <stddef.h>

struct row {
    int status;
    const char *code;
    const char *msg;
};

static const struct row rows[] = {
#define XX(name, status, code, msg) {status, code, msg},
    REEL_ERR_MAP(XX)
#undef XX
};

static const struct row *find(int err)
{
    int i = err - REEL__ERR_FIRST - 1;
    if (err >= 0 || i < 0 || (size_t)i >= sizeof rows / sizeof rows[0])
        return NULL;
    return &rows[i];
}

const char *reel_strerror(int err)
{
    const struct row *r = find(err);
    return err == REEL_OK ? "success" : r ? r->msg : "unknown error";
}

const char *reel_err_code(int err)
{
    const struct row *r = find(err);
    return err == REEL_OK ? "ok" : r ? r->code : "internal";
}

int reel_err_status(int err)
{
    const struct row *r = find(err);
    return err == REEL_OK ? 200 : r ? r->status : 500;
}
