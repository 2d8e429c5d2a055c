/* buf.c -- growable byte buffer (see buf.h for the rules). */
#include "store/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/err.h"

void store_buf_init(store_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void store_buf_release(store_buf_t *b)
{
    free(b->data);
    store_buf_init(b);
}

int store_buf_reserve(store_buf_t *b, size_t n)
{
    if (b->oom)
        return REEL_ENOMEM;
    if (b->cap - b->len > n)
        return REEL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        goto fail;
    b->data = p;
    b->cap = cap;
    return REEL_OK;
fail:
    b->oom = 1;
    b->cap = b->len; /* the inline fast paths of buf.h now always come here */
    return REEL_ENOMEM;
}

void store_buf_puts(store_buf_t *b, const char *s)
{
    store_buf_put(b, s, strlen(s));
}

void store_buf_vprintf(store_buf_t *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    char small[128];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(again);
        return;
    }
    if ((size_t)n < sizeof small) {
        store_buf_put(b, small, (size_t)n);
    } else if (store_buf_reserve(b, (size_t)n + 1) == REEL_OK) {
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void store_buf_printf(store_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    store_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void store_buf_put_u64(store_buf_t *b, uint64_t v)
{
    char tmp[20], *p = tmp + sizeof tmp;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    store_buf_put(b, p, (size_t)(tmp + sizeof tmp - p));
}

void store_buf_put_i64(store_buf_t *b, int64_t v)
{
    if (v < 0) {
        store_buf_putc(b, '-');
        store_buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        store_buf_put_u64(b, (uint64_t)v);
    }
}

int store_buf_is(const store_buf_t *b, const char *lit)
{
    size_t n = strlen(lit);
    return b->len == n && (n == 0 || !memcmp(b->data, lit, n));
}

const char *store_buf_cstr(store_buf_t *b)
{
    if (store_buf_reserve(b, 1) != REEL_OK)
        return "";
    b->data[b->len] = 0;
    return (const char *)b->data;
}

uint8_t *store_buf_detach(store_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    store_buf_init(b);
    return p;
}

int store_stack_room(void **st, size_t *cap, size_t used, const void *local, size_t size)
{
    if (used < *cap)
        return 0;
    size_t ncap = *cap * 2;
    void *n = *st == local ? malloc(ncap * size) : realloc(*st, ncap * size);
    if (!n)
        return -1;
    if (*st == local)
        memcpy(n, local, used * size);
    *st = n, *cap = ncap;
    return 0;
}

void store_stack_free(void *st, const void *local)
{
    if (st != local)
        free(st);
}
