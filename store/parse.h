/* parse.h -- strict parsers for the text forms every boundary accepts: unsigned decimal
 * integers and times (RFC 3339 or Unix milliseconds).
 *
 * These are the only number and time parsers of reel: the HTTP API (query values,
 * headers, Durable Streams' Stream-TTL and Expires-At), the CLI (options) and imports
 * (exported times) all call them, so every boundary accepts exactly the same text. They
 * live in store/, the bottom of the tree, so that every module may use them.
 *
 * Rules:
 *  - Pure functions: no allocation, no locale, no errno, thread-safe. Input is '(s, n)',
 *    not NUL-terminated; a NUL byte inside it is refused.
 *  - Nothing is skipped: no leading or trailing space, no sign unless stated.
 */
#ifndef REEL_PARSE_H
#define REEL_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Parses 's' (n bytes) as an unsigned decimal integer: one or more ASCII digits and
 * nothing else (no sign, no space, no "0x"; leading zeros are allowed). Returns REEL_OK
 * and sets '*out', or REEL_EINVALID_PARAMETER when malformed, empty, or above
 * UINT64_MAX ('*out' is then left alone). */
int store_parse_u64(const char *s, size_t n, uint64_t *out);

/* Parses an RFC 3339 date-time and returns it in Unix milliseconds (fraction digits past
 * the third are dropped), or -1 when malformed or before 1970. Accepted:
 *
 *   YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
 *
 * with 't' or ' ' for 'T' and 'z' for 'Z' (RFC 3339 §5.6 allows both), seconds up to 60
 * (a leap second counts as the next second's first millisecond), a fraction of any number
 * of digits (none after the dot is accepted, as the first time parser did). Month, day,
 * hour, minute and second may be written with one digit and the year with one to four
 * ("2026-1-2T3:04:05Z"), as the sscanf-based parser this one replaced accepted. */
int64_t store_parse_rfc3339(const char *s, size_t n);

/* Parses the strict RFC 3339 subset that JavaScript's Date.parse reads as the same
 * instant, for the time a client gives ('client_time' of an event):
 *
 *   YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|+HH:MM|-HH:MM)
 *
 * every field with exactly its digits, a real calendar day (no February 30: Date.parse
 * rolls that over), hour 00..23, second 00..59 (Date.parse refuses 60), offsets up to
 * 23:59, a fraction of 1 to 9 digits of which those past the third are dropped (as
 * Date.parse truncates; V8 misreads 10 or more digits after a zero: ".0123456789" is
 * 123 ms to it). Returns Unix ms, or -1 when malformed or before 1970. */
int64_t store_parse_rfc3339_js(const char *s, size_t n);

/* Parses a time given either as Unix milliseconds (1 to 15 digits) or as RFC 3339
 * (store_parse_rfc3339). Returns Unix ms, or -1 when malformed. This is what --since,
 * --before, ?since= and ?before= accept, and what an import reads. */
int64_t store_parse_time(const char *s, size_t n);

#endif
