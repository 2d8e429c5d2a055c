/* json_int.h -- what store/json.c (JSON text -> msgpack) and store/mp.c (msgpack -> JSON
 * text, msgpack reading) share: scanning a string eight bytes at a time for the bytes that
 * need attention. Private to store/.
 */
#ifndef REEL_JSON_INT_H
#define REEL_JSON_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- word-at-a-time scanning ---- */

/* Strings are mostly long runs of plain bytes; both directions look at 8 bytes at a time
 * and fall back to the byte loop only for a word holding a byte that needs attention. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Non-zero if a byte of 'v' is '"', '\\', 0xed (the lead byte of a WTF-8 surrogate) or
 * below 0x20 ('high' also flags every byte >= 0x80). */
static inline uint64_t special8(uint64_t v, int high)
{
    uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\'), e = v ^ (ONES * 0xed);
    uint64_t hit = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((e - ONES) & ~e) |
                   ((v - ONES * 0x20) & ~v);
    return (hit | (high ? v : 0)) & HIGHS;
}

/* Length of the leading run of bytes that need no attention. Strings are most of the
 * bytes of every event read and written, so on x86-64 (SSE2 is part of the base ISA) 16
 * bytes are checked per step, then 8 at a time in a register, then one by one. */
static inline size_t plain_run(const unsigned char *p, const unsigned char *end, int high)
{
    const unsigned char *q = p;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1f), ed = _mm_set1_epi8((char)0xed);
    for (; end - q >= 16; q += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v)); /* v <= 0x1f */
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, ed));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (high)
            mask |= (unsigned)_mm_movemask_epi8(v); /* bytes >= 0x80 */
        if (mask)
            return (size_t)(q - p) + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; end - q >= 8; q += 8) {
        /* The lowest flagged byte is exact (a borrow only flags bytes above a hit), so the
         * run ends there: little-endian byte order makes it the lowest set bit. */
        uint64_t hit = special8(load8(q), high);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (hit)
            return (size_t)(q - p) + (size_t)(__builtin_ctzll(hit) >> 3);
#else
        if (hit) /* big-endian: find it byte by byte below */
            break;
#endif
    }
    while (q < end && *q >= 0x20 && *q != '"' && *q != '\\' && *q != 0xed &&
           (!high || *q < 0x80))
        q++;
    return (size_t)(q - p);
}


#endif
