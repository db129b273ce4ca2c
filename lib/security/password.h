/* password: scrypt password hashes (OpenSSL EVP_PBE_scrypt) as PHC strings
 *   $scrypt$ln=17,r=8,p=1$<salt>$<hash>   (standard base64, unpadded; 16-byte
 * salt, 32-byte hash), so the cost can rise later and old hashes still verify.
 * It does not decide password policy (length, breach lists) nor store anything. */
#ifndef LIB_PASSWORD_H
#define LIB_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define PASSWORD_MAX_LEN 1024      /* longer passwords: ERR_TOOBIG before any work */
#define PASSWORD_SALT_LEN 16
#define PASSWORD_HASH_LEN 32
#define PASSWORD_PHC_MAX 160       /* longest PHC string we write or accept */

/* scrypt cost: N = 2^ln, block size r, parallelism p. Memory ≈ 128·r·N bytes. */
struct password_cost {
    int ln;
    int r;
    int p;
};

/* OWASP's scrypt floor is N=2^17, r=8, p=1 (128 MiB, about 0.2–0.4 s). */
#define PASSWORD_COST_DEFAULT ((struct password_cost){ .ln = 17, .r = 8, .p = 1 })

/* True when cost is within what this module runs: 1 <= ln <= 24, 1 <= r <= 32,
 * 1 <= p <= 16, memory <= 1 GiB (a hostile stored hash cannot exhaust RAM). */
bool password_cost_valid(const struct password_cost *cost);

/* Hashes pw[0..len) under a fresh random salt; cost NULL means the default.
 * Returns owned (free()) PHC string in *phc_out. ERR_TOOBIG over
 * PASSWORD_MAX_LEN, ERR_INVAL for a bad cost, ERR_NOMEM, ERR_INTERNAL. */
int password_hash(const char *pw, size_t len, const struct password_cost *cost,
                  char **phc_out) ERR_MUST_CHECK;

/* Checks pw against a stored PHC string, comparing in constant time.
 * 0 on match, ERR_UNAUTHORIZED on mismatch, ERR_INVAL for a malformed or
 * unsupported PHC string, ERR_TOOBIG over PASSWORD_MAX_LEN, ERR_INTERNAL.
 * *needs_rehash (may be NULL) is set on a match when the stored cost is below
 * `configured` (NULL: the default) in any parameter: hash again and store it. */
int password_verify(const char *pw, size_t len, const char *phc,
                    const struct password_cost *configured, bool *needs_rehash) ERR_MUST_CHECK;

/* Spends the work of one verify at `cost` (NULL: the default) and discards it:
 * call it for an unknown email so the response time does not tell whether the
 * account exists. Pass the configured cost: stored hashes converge on it as
 * logins rehash them. */
void password_burn(const struct password_cost *cost);

#endif
