/* libFuzzer harness for jwt_verify (lib/security/jwt.c) with a fixed key set:
 * the signing key, a second Ed25519 key that only verifies, and a P-256 key
 * under a kid of its own (which no token may ever reach: every key is pinned
 * to Ed25519). The first byte picks what the rest is:
 *   0  a token as a client sends it. Nobody but this harness holds the keys,
 *      so verify must never accept one: JWT_OK aborts.
 *   1  a header and a payload (JSON text, split at the first 0xFF byte; with
 *      none, the rest is the payload under the usual header) that the harness
 *      signs with the signing key, so the claims checks are reached. Whatever
 *      verify then accepts must hold up to a reading of its own: the header's
 *      alg, kid and no crit; exp, iat, nbf, sub, org, jti, iss, aud as the
 *      contract says, at the harness's clock.
 *   2  edits (3 bytes each: what, where, which byte) to one genuine token.
 *      An edited token that is not byte for byte the genuine one must be
 *      refused: no second spelling of a signature or of a part verifies
 *      (the blacklist keys on the token's hash). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "core/json.h"
#include "security/crypto.h"
#include "security/jwt.h"

#define NOW INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define SKEW 60
#define LIFE 900
#define ISS "https://tessera.test"
#define AUD "tessera"

static struct jwt_keyset ks;
static char genuine[JWT_MAX_LEN + 1];
static size_t genuine_len;
static const struct jwt_expect expect = { .iss = ISS, .aud = AUD, .now = NOW, .skew = SKEW,
                                          .max_lifetime = LIFE };

static void check(int ok)
{
    if (!ok)
        abort();
}

static void add_key(EVP_PKEY *pkey, int can_sign, const char *kid)
{
    struct jwt_key *k = &ks.keys[ks.n++];
    uint8_t digest[CRYPTO_SHA256_LEN];
    size_t publen = sizeof k->pub;

    check(pkey != NULL);
    k->pkey = pkey;
    k->can_sign = can_sign;
    if (kid != NULL) {
        snprintf(k->kid, sizeof k->kid, "%s", kid);
        return;
    }
    /* the kid as jwt_keyset_load makes it: 16 hex of SHA-256(raw public key) */
    check(EVP_PKEY_get_raw_public_key(pkey, k->pub, &publen) == 1 && publen == 32);
    check(crypto_sha256(k->pub, sizeof k->pub, digest) == ERR_OK);
    check(crypto_hex_encode(digest, JWT_KID_LEN / 2, k->kid, sizeof k->kid) == ERR_OK);
}

/* header.payload signed with keys[0], as jwt_sign would, from any bytes. */
static size_t sign_parts(const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen, char *tok, size_t cap)
{
    uint8_t sig[64];
    size_t o = 0, w = 0, siglen = sizeof sig;
    EVP_MD_CTX *md;

    if (CRYPTO_B64_LEN(hlen) + CRYPTO_B64_LEN(plen) + CRYPTO_B64_LEN(64) + 3 > cap)
        return 0;
    check(crypto_b64url_encode(h, hlen, tok, cap, &w) == ERR_OK);
    o = w;
    tok[o++] = '.';
    check(crypto_b64url_encode(p, plen, tok + o, cap - o, &w) == ERR_OK);
    o += w;
    md = EVP_MD_CTX_new();
    check(md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, ks.keys[0].pkey) == 1 &&
          EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok, o) == 1 && siglen == 64);
    EVP_MD_CTX_free(md);
    tok[o++] = '.';
    check(crypto_b64url_encode(sig, siglen, tok + o, cap - o, &w) == ERR_OK);
    return o + w;
}

/* A verify-only key, as a rotated-out public key file gives one. */
static EVP_PKEY *public_half(const uint8_t seed[32])
{
    EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32), *pub;
    uint8_t raw[32];
    size_t len = sizeof raw;

    check(priv != NULL && EVP_PKEY_get_raw_public_key(priv, raw, &len) == 1 && len == 32);
    EVP_PKEY_free(priv);
    pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, len);
    check(pub != NULL);
    return pub;
}

static void init(void)
{
    static const uint8_t seed1[32] = "tessera fuzz signing key 0000001";
    static const uint8_t seed2[32] = "tessera fuzz rotated key 0000002";
    char header[128], payload[512];
    cJSON *claims = NULL;

    add_key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed1, sizeof seed1), 1, NULL);
    add_key(public_half(seed2), 0, NULL);
    add_key(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), 0, "ec00000000000000");

    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", ks.keys[0].kid);
    snprintf(payload, sizeof payload,
             "{\"sub\":\"u1\",\"org\":\"o1\",\"role\":\"owner\",\"jti\":\"j1\",\"iss\":\"%s\",\"aud\":\"%s\","
             "\"iat\":%lld,\"exp\":%lld}", ISS, AUD, (long long)NOW, (long long)(NOW + LIFE));
    genuine_len = sign_parts((const uint8_t *)header, strlen(header), (const uint8_t *)payload,
                             strlen(payload), genuine, sizeof genuine);
    check(genuine_len > 0);
    genuine[genuine_len] = '\0';
    check(jwt_verify(&ks, genuine, genuine_len, &expect, &claims) == JWT_OK && claims != NULL);
    cJSON_Delete(claims);
}

static enum jwt_status verify(const char *tok, size_t len, cJSON **claims)
{
    enum jwt_status st = jwt_verify(&ks, tok, len, &expect, claims);

    check(jwt_status_str(st) != NULL && jwt_status_message(st) != NULL);
    check((st == JWT_OK) == (*claims != NULL));
    return st;
}

static int is_time(const cJSON *v)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
           v->valuedouble >= 0 && v->valuedouble <= 253402300799.0;
}

static int nonempty(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && v->valuestring[0] != '\0';
}

/* An accepted token, read again by plain cJSON: it must be what the contract allows. */
static void accepted_holds(const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen, const cJSON *claims)
{
    cJSON *hdr = cJSON_ParseWithLength((const char *)h, hlen), *pl = cJSON_ParseWithLength((const char *)p, plen);
    const cJSON *alg, *kid, *exp, *iat, *nbf, *iss, *aud, *e;
    int aud_ok = 0;

    check(cJSON_IsObject(hdr) && cJSON_IsObject(pl));
    alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    kid = cJSON_GetObjectItemCaseSensitive(hdr, "kid");
    check(cJSON_IsString(alg) && (strcmp(alg->valuestring, "EdDSA") == 0 || strcmp(alg->valuestring, "Ed25519") == 0));
    check(cJSON_IsString(kid) && strcmp(kid->valuestring, ks.keys[0].kid) == 0);
    check(cJSON_GetObjectItemCaseSensitive(hdr, "crit") == NULL);

    exp = cJSON_GetObjectItemCaseSensitive(pl, "exp");
    iat = cJSON_GetObjectItemCaseSensitive(pl, "iat");
    nbf = cJSON_GetObjectItemCaseSensitive(pl, "nbf");
    check(is_time(exp) && (iat == NULL || is_time(iat)) && (nbf == NULL || is_time(nbf)));
    check(NOW < (int64_t)exp->valuedouble + SKEW && (int64_t)exp->valuedouble - NOW <= LIFE + SKEW);
    check(iat == NULL || ((int64_t)iat->valuedouble <= NOW + SKEW &&
                          (int64_t)exp->valuedouble - (int64_t)iat->valuedouble <= LIFE));
    check(nbf == NULL || (int64_t)nbf->valuedouble <= NOW + SKEW);
    check(nonempty(pl, "sub") && nonempty(pl, "org") && nonempty(pl, "jti"));
    iss = cJSON_GetObjectItemCaseSensitive(pl, "iss");
    check(cJSON_IsString(iss) && strcmp(iss->valuestring, ISS) == 0);
    aud = cJSON_GetObjectItemCaseSensitive(pl, "aud");
    if (cJSON_IsString(aud))
        aud_ok = strcmp(aud->valuestring, AUD) == 0;
    else if (cJSON_IsArray(aud))
        cJSON_ArrayForEach(e, aud)
            aud_ok |= cJSON_IsString(e) && strcmp(e->valuestring, AUD) == 0;
    check(aud_ok);
    check(cJSON_Compare(pl, claims, 1));
    cJSON_Delete(hdr);
    cJSON_Delete(pl);
}

static void signed_parts(const uint8_t *data, size_t size)
{
    static char tok[JWT_MAX_LEN * 2];
    char header[128];
    const uint8_t *h, *p, *sep = memchr(data, 0xFF, size);
    size_t hlen, plen, len;
    cJSON *claims = NULL;

    if (sep != NULL) {
        h = data;
        hlen = (size_t)(sep - data);
        p = sep + 1;
        plen = size - hlen - 1;
    } else {
        snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", ks.keys[0].kid);
        h = (const uint8_t *)header;
        hlen = strlen(header);
        p = data;
        plen = size;
    }
    if ((len = sign_parts(h, hlen, p, plen, tok, sizeof tok)) == 0)
        return;
    if (verify(tok, len, &claims) == JWT_OK)
        accepted_holds(h, hlen, p, plen, claims);
    cJSON_Delete(claims);
}

static void edited(const uint8_t *data, size_t size)
{
    char tok[JWT_MAX_LEN + 64];
    size_t len = genuine_len;
    cJSON *claims = NULL;

    memcpy(tok, genuine, len);
    for (size_t i = 0; i + 3 <= size && i < 3 * 16; i += 3) {
        size_t at = len > 0 ? data[i + 1] % (len + (data[i] % 3 == 1)) : 0;
        switch (data[i] % 3) {
        case 0: /* replace */
            if (len > 0)
                tok[at] = (char)data[i + 2];
            break;
        case 1: /* insert */
            memmove(tok + at + 1, tok + at, len - at);
            tok[at] = (char)data[i + 2];
            len++;
            break;
        default: /* delete */
            if (len > 0) {
                memmove(tok + at, tok + at + 1, len - at - 1);
                len--;
            }
        }
    }
    /* the offsets reach the first 256 bytes; a tail edit comes from the end */
    if (size % 3 == 2 && len > 0)
        tok[len - 1 - data[size - 1] % (len < 64 ? len : 64)] = (char)data[size - 2];
    if (verify(tok, len, &claims) == JWT_OK)
        check(len == genuine_len && memcmp(tok, genuine, len) == 0);
    cJSON_Delete(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    cJSON *claims = NULL;

    if (!ready) {
        init();
        ready = 1;
    }
    if (size == 0 || size > 2 * JWT_MAX_LEN)
        return 0;
    switch (data[0] % 3) {
    case 0:
        check(verify((const char *)data + 1, size - 1, &claims) != JWT_OK);
        break;
    case 1:
        signed_parts(data + 1, size - 1);
        break;
    default:
        edited(data + 1, size - 1);
    }
    return 0;
}
