/* rfc3339: the one form tessera's API gives every point in time, and the
 * forms it takes. Stored times stay whole unix seconds (engines, cursors,
 * filters and views compare integers); only the API's JSON speaks text.
 *
 * Out: "2026-12-07T15:31:52Z" — RFC 3339's profile most JSON APIs and their
 * clients use (UTC, "Z", no fraction: a stored time has none).
 * In: any RFC 3339 date-time (§5.6): "T" or "t" (or a space, §5.6's NOTE)
 * between date and time, an optional fraction, "Z"/"z" or a numeric offset.
 * The fraction is dropped (floor to the second, so a time never moves past
 * the instant written); an offset is folded into UTC; a leap second (:60)
 * reads as :59 of the same minute. Hand-written because strptime has no
 * offsets or fractions, and getdate/ICU are far more than this needs. */
#ifndef LIB_CORE_RFC3339_H
#define LIB_CORE_RFC3339_H

#include <stdbool.h>
#include <stdint.h>

#define RFC3339_LEN 20                  /* "YYYY-MM-DDTHH:MM:SSZ" */
#define RFC3339_MIN 0                   /* 1970-01-01T00:00:00Z */
#define RFC3339_MAX 253402300799LL      /* 9999-12-31T23:59:59Z */

/* s as unix seconds into *out; false (and *out untouched) when s is not an
 * RFC 3339 date-time or falls outside RFC3339_MIN..RFC3339_MAX. */
bool rfc3339_parse(const char *s, int64_t *out);

/* t (within RFC3339_MIN..RFC3339_MAX, else clamped to them) into out. */
void rfc3339_format(int64_t t, char out[RFC3339_LEN + 1]);

#endif
