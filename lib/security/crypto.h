/* crypto: the small set of primitives tessera needs, all on OpenSSL's EVP APIs:
 * random bytes, SHA-256, HMAC-SHA256, constant-time compare, strict hex and
 * base64 codecs, AES-256-GCM sealing with key ids for rotation, and the HMAC
 * blind index that makes encrypted emails searchable.
 * It does not do JWTs (lib/jwt) or password hashing (lib/password), and it holds
 * no global state: keys live in a struct crypto_keyring the caller owns. */
#ifndef LIB_CRYPTO_H
#define LIB_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_KEY_LEN 32          /* AES-256 */
#define CRYPTO_IV_LEN 12           /* GCM nonce: fresh and random for every seal */
#define CRYPTO_TAG_LEN 16          /* GCM tag: always full length, never truncated */
#define CRYPTO_KID_MAX 16          /* key id: 1..16 of [A-Za-z0-9_-] */
#define CRYPTO_KEYRING_MAX 8       /* keys one data-key file may hold */
#define CRYPTO_SEAL_VERSION 1      /* first byte of every sealed blob */
#define CRYPTO_SEAL_MAX (16u << 20) /* plaintext cap for one seal */

/* Lengths of the codecs' output, without the terminating NUL. */
#define CRYPTO_HEX_LEN(n) ((n) * 2)
#define CRYPTO_B64_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Upper bound of the bytes a base64 text of `len` characters decodes to. */
#define CRYPTO_B64_DECODED_MAX(len) (((len) / 4) * 3 + 2)

/* ---- primitives ------------------------------------------------------- */

/* Fills buf with n bytes from OpenSSL's CSPRNG. ERR_INTERNAL when it fails. */
int crypto_random(void *buf, size_t n) ERR_MUST_CHECK;
/* out = SHA-256(d[0..n)). ERR_INTERNAL when OpenSSL fails. */
int crypto_sha256(const void *d, size_t n, uint8_t out[CRYPTO_SHA256_LEN]) ERR_MUST_CHECK;
/* out = HMAC-SHA256(key, data). ERR_INTERNAL when OpenSSL fails. */
int crypto_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                       uint8_t out[CRYPTO_SHA256_LEN]) ERR_MUST_CHECK;
/* True when a[0..n) == b[0..n), in time that depends only on n. */
bool crypto_ct_eq(const void *a, const void *b, size_t n);

/* ---- codecs ----------------------------------------------------------
 * Encoders write into the caller's buffer and NUL-terminate it: ERR_NOSPACE
 * when outsz cannot hold the text and its NUL. Decoders are strict: one
 * spelling per byte string, anything else is ERR_INVAL; ERR_NOSPACE when the
 * decoded bytes do not fit in outsz. */

/* Lower-case hex of in[0..n). */
int crypto_hex_encode(const void *in, size_t n, char *out, size_t outsz) ERR_MUST_CHECK;
/* Hex (either case, even length, nothing else: no 0x, no spaces) to bytes. */
int crypto_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
                      size_t *outlen) ERR_MUST_CHECK;

/* base64url (RFC 4648 §5) without padding, as JWTs use it. *outlen (may be NULL)
 * receives the text length. */
int crypto_b64url_encode(const void *in, size_t n, char *out, size_t outsz,
                         size_t *outlen) ERR_MUST_CHECK;
/* Canonical base64url: only A-Z a-z 0-9 - _, no padding, length % 4 != 1, and
 * the unused low bits of the last character zero. A lenient decoder maps 16
 * spellings of a 64-byte signature to the same bytes (DESIGN §10); this one
 * accepts exactly the one crypto_b64url_encode writes. */
int crypto_b64url_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
                         size_t *outlen) ERR_MUST_CHECK;
/* Standard-alphabet base64 (A-Z a-z 0-9 + /) without padding: the "B64" of
 * PHC strings. Same rules as the base64url pair. */
int crypto_b64_encode(const void *in, size_t n, char *out, size_t outsz,
                      size_t *outlen) ERR_MUST_CHECK;
int crypto_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
                      size_t *outlen) ERR_MUST_CHECK;

/* ---- keyring: AES-256-GCM with key ids --------------------------------
 * The data-key file ([crypto] key file) holds lines `<kid> <64 hex chars>`;
 * blank lines and lines starting with '#' are skipped. The first key is the
 * current one: it seals; every key opens what it sealed. To rotate, put a new
 * line first and keep the old ones until every row is re-sealed. */

struct crypto_key {
    char kid[CRYPTO_KID_MAX + 1];
    uint8_t key[CRYPTO_KEY_LEN];       /* AES-256-GCM key, straight from the file */
    uint8_t bidx_key[CRYPTO_KEY_LEN];  /* derived: HKDF(key, "tessera blind index v1") */
};

struct crypto_keyring {
    size_t n;                          /* keys[0] is the current key */
    struct crypto_key keys[CRYPTO_KEYRING_MAX];
};

/* Initialises *ring from the data-key file at path. On failure the ring is left
 * empty (no cleanup needed) and errstr (may be NULL) says why, naming the line:
 * ERR_IO (cannot read), ERR_INVAL (bad line, duplicate kid, no key), ERR_NOSPACE
 * (more than CRYPTO_KEYRING_MAX keys). */
int crypto_keyring_load(struct crypto_keyring *ring, const char *path, char errstr[128]) ERR_MUST_CHECK;
/* Wipes the key material; the ring is empty afterwards. NULL is a no-op. */
void crypto_keyring_cleanup(struct crypto_keyring *ring);
/* Creates a new data-key file (mode 0600) holding one fresh random key named kid,
 * for `tessera keygen`. Never overwrites: ERR_CONFLICT when path exists (a lost
 * data key is lost data); ERR_INVAL for a bad kid; ERR_IO otherwise. */
int crypto_keyring_write_new(const char *path, const char *kid) ERR_MUST_CHECK;

/* Seals pt with the current key under a fresh random IV. aad is what the
 * ciphertext is bound to (tenant id and row id: moved elsewhere, it will not
 * open). Returns owned (free()) blob in *out:
 *   version(1) | kid length(1) | kid | iv(12) | ciphertext | tag(16)
 * The version/kid header is authenticated too. ERR_TOOBIG over CRYPTO_SEAL_MAX,
 * ERR_INVAL on an empty ring, ERR_NOMEM, ERR_INTERNAL. */
int crypto_seal(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                const void *pt, size_t ptlen, uint8_t **out, size_t *outlen) ERR_MUST_CHECK;
/* Opens a blob from crypto_seal with the key its kid names. Returns owned
 * (free()) plaintext in *pt_out, NUL-terminated for convenience (*ptlen excludes
 * the NUL). ERR_INVAL on any malformed blob, tamper or wrong aad; ERR_NOTFOUND
 * when the kid is not in the ring (a key retired too early). */
int crypto_open(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                const uint8_t *blob, size_t bloblen, uint8_t **pt_out, size_t *ptlen) ERR_MUST_CHECK;
/* crypto_seal, then base64url: Returns owned (free()) NUL-terminated text, for text columns. */
int crypto_seal_text(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                     const void *pt, size_t ptlen, char **out) ERR_MUST_CHECK;
/* Inverse of crypto_seal_text; same results as crypto_open (ERR_INVAL for bad base64url). */
int crypto_open_text(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                     const char *text, size_t textlen, uint8_t **pt_out, size_t *ptlen) ERR_MUST_CHECK;

#ifdef TESSERA_TEST_HOOKS
/* ---- test builds only: the cipher step, for conformance vectors --------
 * What crypto_seal and crypto_open run once the blob is laid out or parsed
 * (the same static functions), with the ring's current key but an IV and
 * additional data the caller gives: Wycheproof's AES-GCM cases
 * (tests/unit/test_wycheproof.c) carry both, and the blob cannot (it draws its
 * IV and puts its own header first in the additional data). Release builds
 * have neither function: a seal under a chosen IV is how GCM's key leaks.
 * Seal: ct gets ptlen bytes, tag 16. Open: as crypto_open, *pt_out only when
 * the tag verifies (Returns owned, free()); ERR_INVAL otherwise. */
int crypto_gcm_seal_iv(const struct crypto_keyring *ring, const uint8_t iv[CRYPTO_IV_LEN],
                       const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                       uint8_t *ct, uint8_t tag[CRYPTO_TAG_LEN]) ERR_MUST_CHECK;
int crypto_gcm_open(const struct crypto_keyring *ring, const uint8_t iv[CRYPTO_IV_LEN],
                    const void *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
                    const uint8_t tag[CRYPTO_TAG_LEN], uint8_t **pt_out,
                    size_t *ptlen) ERR_MUST_CHECK;
#endif

/* ---- blind index ------------------------------------------------------
 * out_hex = hex(HMAC-SHA256(bidx_key, normalized)) where bidx_key =
 * HKDF-SHA256(ikm = the current data key, info = "tessera blind index v1"):
 * a separate key, so the AES key is never used for anything but AES. The index
 * is deterministic (equality lookups work) and reveals only equality. The
 * caller normalises first (e.g. lower-cased, trimmed email).
 * Rotation: a new current key changes every index, so re-index rows together
 * with re-sealing them; during that window look up under both keys with
 * crypto_blind_index_kid. */
int crypto_blind_index(const struct crypto_keyring *ring, const char *normalized,
                       char out_hex[CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1]) ERR_MUST_CHECK;
/* The same index under the key named kid. ERR_NOTFOUND when the ring lacks it. */
int crypto_blind_index_kid(const struct crypto_keyring *ring, const char *kid,
                           const char *normalized,
                           char out_hex[CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1]) ERR_MUST_CHECK;

#endif
