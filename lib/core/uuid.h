/* uuid: RFC 9562 identifiers. v7 (time-ordered) for every row tessera
 * creates, so keyset pagination over ids follows creation order; v4 where
 * order must not leak. Randomness comes from OpenSSL's RAND_bytes.
 * Text is only ever the canonical lowercase 8-4-4-4-12 form: no braces, no
 * "urn:uuid:", no uppercase. One spelling per id keeps cache keys, ETags and
 * string comparisons honest (PostgreSQL prints lowercase, and "A…" and "a…"
 * would otherwise name one row under two keys). */
#ifndef LIB_UUID_H
#define LIB_UUID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define UUID_STR_LEN 36         /* characters, without the NUL */
#define UUID_STR_SIZE 37        /* with it: the size of every out[] below */

/* Random (version 4) and time-ordered (version 7) ids as text.
 * ERR_INTERNAL when the random generator fails; out is then "". */
int uuid_v4(char out[UUID_STR_SIZE]) ERR_MUST_CHECK;
int uuid_v7(char out[UUID_STR_SIZE]) ERR_MUST_CHECK;

/* The same as 16 bytes (network order). */
int uuid_v4_bytes(uint8_t out[16]) ERR_MUST_CHECK;
int uuid_v7_bytes(uint8_t out[16]) ERR_MUST_CHECK;

/* v7 layout: 48-bit Unix milliseconds, version, a 12-bit counter (rand_a),
 * variant, 62 random bits. Within one process each id is greater than the one
 * before, even within one millisecond or when the clock steps back (RFC 9562
 * §6.2 method 1: a counter seeded randomly each new millisecond; if it runs
 * out, the timestamp moves one millisecond ahead). Across processes, order is
 * by millisecond only. uuid_v7() keeps one such generator per process (forked
 * workers each continue their own copy; the random bits keep them apart).
 * The generator is exposed so tests can drive its clock. */
struct uuid_v7_gen {
    uint64_t last_ms;
    uint16_t counter;
};

/* Next id from g for the clock reading now_ms. ERR_INTERNAL when RAND_bytes fails. */
int uuid_v7_gen_next(struct uuid_v7_gen *g, uint64_t now_ms, uint8_t out[16]) ERR_MUST_CHECK;

/* True when s is exactly 36 characters of canonical lowercase 8-4-4-4-12 hex.
 * Any version and variant is accepted (ids may come from PostgreSQL or older
 * data); NULL is false. */
bool uuid_valid(const char *s);

/* Canonical text to 16 bytes. ERR_INVAL when !uuid_valid(s); out is then untouched. */
int uuid_parse(const char *s, uint8_t out[16]) ERR_MUST_CHECK;

/* 16 bytes to canonical lowercase text (always 36 characters and a NUL). */
void uuid_format(const uint8_t in[16], char out[UUID_STR_SIZE]);

/* The version nibble (4, 7, …) of a binary id. */
int uuid_version(const uint8_t in[16]);

/* The Unix milliseconds of a v7 id (meaningless for other versions). */
uint64_t uuid_v7_ms(const uint8_t in[16]);

#endif
