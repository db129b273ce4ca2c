/* jwt: access tokens signed with Ed25519, and nothing else. JWS alg "EdDSA"
 * (RFC 8037) or its fully specified name "Ed25519" (RFC 9864) both mean that one
 * algorithm, and every key is pinned to it. Keys come only from local PEM files
 * (a private key file must be its owner's alone, as sshd insists); a distinct
 * status per reason a token is refused (DESIGN §3, §10). It never fetches a key
 * (jwk/jku/x5u/x5c headers are ignored), does no JWE, and knows nothing of the
 * blacklist or of refresh tokens, which are opaque and live elsewhere. */
#ifndef LIB_JWT_H
#define LIB_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>
#include <openssl/evp.h>

#include "core/err.h"

#define JWT_MAX_LEN 4096           /* longer tokens are refused unread */
#define JWT_KEYSET_MAX 4           /* signing key plus the ones being rotated out */
#define JWT_KID_LEN 16             /* hex chars: first 8 bytes of SHA-256(raw public key) */
#define JWT_DEFAULT_MAX_LIFETIME 3600 /* exp bound when jwt_expect.max_lifetime <= 0 */

/* Why jwt_verify refused a token. Each is its own value so tests and logs can
 * tell them apart; the HTTP layer maps them all to 401 (expired: token_expired). */
enum jwt_status {
    JWT_OK = 0,
    JWT_TOO_BIG,          /* longer than JWT_MAX_LEN */
    JWT_MALFORMED,        /* not 3 parts, bad base64url (incl. non-canonical), bad JSON
                             (incl. duplicate keys), header or payload not an object */
    JWT_BAD_ALG,          /* alg is not exactly "EdDSA" or "Ed25519", or the kid's key is
                             not Ed25519 (decided before any crypto) */
    JWT_BAD_TYPE,         /* header typ not JWT/at+jwt, or claim typ present and not "access" */
    JWT_UNKNOWN_KID,      /* kid missing, not a string, or not in the key set */
    JWT_BAD_CRIT,         /* any crit header: we understand no extension */
    JWT_BAD_SIGNATURE,    /* not 64 bytes, or Ed25519 verification failed (incl. S >= L) */
    JWT_EXPIRED,          /* now >= exp + skew */
    JWT_NOT_YET_VALID,    /* nbf > now + skew, or iat > now + skew */
    JWT_BAD_ISSUER,       /* iss absent or not expect->iss (or expect->iss NULL) */
    JWT_BAD_AUDIENCE,     /* aud (string or array) lacks expect->aud (or expect->aud NULL) */
    JWT_BAD_CLAIMS,       /* exp missing/non-integer/too far ahead; nbf/iat non-integer;
                             sub, org, jti not non-empty strings; role/mode not strings */
    JWT_INTERNAL,         /* out of memory or an OpenSSL failure: not the token's fault */
};

struct jwt_key {
    EVP_PKEY *pkey;                /* owned by the key set */
    char kid[JWT_KID_LEN + 1];
    uint8_t pub[32];               /* raw Ed25519 public key */
    int can_sign;                  /* loaded from a private key */
};

/* The JWS "alg" names of Ed25519. Verification takes either; sign_alg picks
 * the one jwt_sign writes and the JWKS advertises. */
enum jwt_alg {
    JWT_ALG_EDDSA = 0,             /* "EdDSA": RFC 8037, what every verifier knows */
    JWT_ALG_ED25519,               /* "Ed25519": RFC 9864's fully specified name */
};

/* Embedded by the caller (worker context); zeroed, then filled by
 * jwt_keyset_load or jwt_keyset_add. */
struct jwt_keyset {
    size_t n;                      /* keys[0] signs; all verify */
    int sign_alg;                  /* enum jwt_alg; 0 (EdDSA) when zeroed */
    struct jwt_key keys[JWT_KEYSET_MAX];
};

/* What jwt_verify checks the claims against. */
struct jwt_expect {
    const char *iss;               /* required: NULL refuses every token */
    const char *aud;               /* required: NULL refuses every token */
    int64_t now;                   /* unix seconds */
    int skew;                      /* seconds of clock skew allowed (>= 0) */
    int64_t max_lifetime;          /* exp - now and exp - iat bound; <= 0 → default */
};

/* Loads n PEM files into *ks. paths[0] must hold an Ed25519 private key (it
 * signs); later ones may be private or public keys (verify only). kid of each =
 * first 16 hex of SHA-256(raw public key). A file that holds a private key must
 * have no group or other permission bits (mode & 077 == 0). On failure *ks is
 * left empty and errstr (may be NULL) names the file: ERR_IO, ERR_INVAL (not
 * Ed25519, encrypted, too open, duplicate kid), ERR_NOSPACE (n > JWT_KEYSET_MAX). */
int jwt_keyset_load(struct jwt_keyset *ks, const char *const *paths, size_t n,
                    char errstr[128]) ERR_MUST_CHECK;
/* Adds one PEM file to *ks (zeroed or filled by earlier calls), under the rules
 * of jwt_keyset_load: the first key added signs and must be private. On failure
 * *ks is unchanged and errstr names the file. */
int jwt_keyset_add(struct jwt_keyset *ks, const char *path, char errstr[128]) ERR_MUST_CHECK;
/* Makes *dst (not yet filled) hold the same keys as *src, each key referenced
 * once more, so that either can be freed alone: a forked worker takes the
 * master's keys without reading the files. ERR_INTERNAL (dst left empty). */
int jwt_keyset_copy(struct jwt_keyset *dst, const struct jwt_keyset *src) ERR_MUST_CHECK;
/* Frees the keys that jwt_keyset_load made (not ks itself); ks is empty after. NULL is a no-op. */
void jwt_keyset_free(struct jwt_keyset *ks);
/* Writes a new Ed25519 private key as PKCS#8 PEM, mode 0600, for `tessera keygen`.
 * Never overwrites: ERR_CONFLICT when path exists; ERR_IO, ERR_INTERNAL. */
int jwt_keygen(const char *path) ERR_MUST_CHECK;
/* `tessera keygen --rotate`: writes the public half of the signing key at path
 * to a new file beside it, "<path less .pem>-<kid>.pub.pem" (0644; an existing
 * one is fine if it holds that key), then replaces path with a new Ed25519 key,
 * written aside (0600, the old file's owner when run as root) and renamed over
 * it: a reader sees the old key or the new one, never half of either. Fills
 * pub_path (pubsz bytes) and the two kids. ERR_INVAL (the current key does not
 * load), ERR_CONFLICT (the public file holds another key), ERR_TOOBIG (path too
 * long), ERR_IO, ERR_INTERNAL; errstr says which file. */
int jwt_rotate(const char *path, char *pub_path, size_t pubsz, char old_kid[JWT_KID_LEN + 1],
               char new_kid[JWT_KID_LEN + 1], char errstr[128]) ERR_MUST_CHECK;
/* "EdDSA" or "Ed25519" for an enum jwt_alg; "EdDSA" for anything else. */
const char *jwt_alg_name(int alg);

/* Signs claims (an object; the caller puts in sub, org, role, iat, exp, jti,
 * iss, aud) with keys[0] under header {"alg":<sign_alg>,"typ":"JWT","kid":...}.
 * Returns owned (free()) token in *out. ERR_INVAL (not an object, no signing
 * key), ERR_TOOBIG (over JWT_MAX_LEN), ERR_NOMEM, ERR_INTERNAL. */
int jwt_sign(const struct jwt_keyset *ks, const cJSON *claims, char **out) ERR_MUST_CHECK;

/* Verifies token[0..len) against ks and exp. Order: size, shape, header (alg,
 * crit, typ, kid), signature, then claims: nothing from the payload is trusted
 * before the signature holds. On JWT_OK, *claims_out (may be NULL) is the
 * Returns owned (cJSON_Delete) payload; otherwise it is set to NULL. */
enum jwt_status jwt_verify(const struct jwt_keyset *ks, const char *token, size_t len,
                           const struct jwt_expect *exp, cJSON **claims_out) ERR_MUST_CHECK;

/* The signature step of jwt_verify, and the code it runs: JWT_OK when sig is
 * a 64-byte Ed25519 signature of msg[0..msglen) by key; JWT_BAD_SIGNATURE for
 * any other length or a signature that does not verify (S >= L included);
 * JWT_INTERNAL on a NULL argument or an OpenSSL failure. Exported so that
 * conformance vectors (Wycheproof, tests/unit/test_wycheproof.c), whose
 * messages are arbitrary bytes no token could carry, reach the exact check
 * every token goes through; a token's callers want jwt_verify, which picks the
 * key by kid and checks the header first. */
enum jwt_status jwt_verify_signature(const struct jwt_key *key, const void *msg, size_t msglen,
                                     const uint8_t *sig, size_t siglen) ERR_MUST_CHECK;

/* A short constant name ("bad_signature") for logs; never NULL. */
const char *jwt_status_str(enum jwt_status st);
/* The same as a sentence for the token's holder ("the token's signature does
 * not verify"); never NULL. */
const char *jwt_status_message(enum jwt_status st);

/* Returns owned (free()) JWKS JSON of every key's public half, the signing key
 * first, each with alg = the name of sign_alg:
 * {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}]}. */
int jwt_jwks(const struct jwt_keyset *ks, char **out) ERR_MUST_CHECK;

#endif
