/* buf.h -- growable byte buffer used by every module.
 *
 * Rules:
 *  - A store_buf_t lives in caller storage: store_buf_init() before use,
 *    store_buf_release() when done (frees the heap block; the struct may be reused).
 *  - Allocation failure is sticky: the buffer stops growing, sets 'oom', and every later
 *    append is a no-op. Check store_buf_failed() once after a series of appends instead of
 *    after each one (the one OOM policy of the store: return REEL_ENOMEM, never abort).
 *  - 'data' is not NUL-terminated unless store_buf_cstr() is called.
 */
#ifndef REEL_BUF_H
#define REEL_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct store_buf {
    uint8_t *data; /* heap block, or NULL while empty */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
    int oom;       /* 1 after an allocation failed */
} store_buf_t;

#define STORE_BUF_INIT {NULL, 0, 0, 0}

void store_buf_init(store_buf_t *b);
void store_buf_release(store_buf_t *b);
/* Makes room for 'n' more bytes; returns 0 or REEL_ENOMEM (and sets 'oom'). */
int store_buf_reserve(store_buf_t *b, size_t n);
void store_buf_puts(store_buf_t *b, const char *s);
void store_buf_printf(store_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void store_buf_vprintf(store_buf_t *b, const char *fmt, va_list ap);
/* Appends 'v' in decimal (no printf: this is on every read path). */
void store_buf_put_u64(store_buf_t *b, uint64_t v);
void store_buf_put_i64(store_buf_t *b, int64_t v);
/* Appends a NUL (not counted in 'len') and returns 'data' as a C string ("" if empty). */
const char *store_buf_cstr(store_buf_t *b);
/* 1 when the bytes of 'b' are exactly the string 'lit' (by length: a NUL in 'b' is a byte
 * like any other, so "agent\0x" is not "agent", as strcmp on store_buf_cstr() would say). */
int store_buf_is(const store_buf_t *b, const char *lit);
/* Gives up the heap block to the caller (who frees it with free()); 'b' becomes empty. */
uint8_t *store_buf_detach(store_buf_t *b, size_t *len);
static inline int store_buf_failed(const store_buf_t *b) { return b->oom; }

/* A stack for walking nested data without recursion: it starts in the caller's 'local'
 * array of '*cap' entries of 'size' bytes and moves to the heap when it must grow, so
 * nesting is bounded by the caller's depth limit, never by the C stack.
 * store_stack_room() makes room for one more entry after 'used' ones: 0, or -1 out of
 * memory ('*st' unchanged). store_stack_free() frees it when it went to the heap. */
int store_stack_room(void **st, size_t *cap, size_t used, const void *local, size_t size);
void store_stack_free(void *st, const void *local);
static inline void store_buf_clear(store_buf_t *b) { b->len = 0; }

/* put and putc are on every read path (one call per JSON token), so the case where the
 * bytes fit is inline. After a failed allocation 'cap' is cut to 'len', which sends every
 * later append to store_buf_reserve(), where 'oom' makes it a no-op. */
static inline void store_buf_put(store_buf_t *b, const void *p, size_t n)
{
    if (n == 0 || (b->cap - b->len <= n && store_buf_reserve(b, n)))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void store_buf_putc(store_buf_t *b, int c)
{
    if (b->cap - b->len <= 1 && store_buf_reserve(b, 1))
        return;
    b->data[b->len++] = (uint8_t)c;
}

#endif
