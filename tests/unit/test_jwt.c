/* Unit tests for lib/jwt: a round trip, the JWKS shape, key files, and one test
 * per reason a token is refused (DESIGN §10), each with a token that is wrong in
 * exactly that one way. Tokens with hand-written headers or payloads are signed
 * here with the fixture's real key, so the check under test is the one that fires. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "security/crypto.h"
#include "security/jwt.h"

#define ISS "https://auth.tessera.test"
#define AUD "tessera"
#define NOW INT64_C(1700000000)
#define SKEW 30
#define LIFETIME 900

struct fixture {
    char dir[UNIT_PATH];
    char key1[128], key2[128];
    struct jwt_keyset ks;      /* key1: the deployment's key set */
    struct jwt_keyset other;   /* key2: someone else's key */
};

static const struct jwt_expect EXPECTED = {
    .iss = ISS, .aud = AUD, .now = NOW, .skew = SKEW, .max_lifetime = LIFETIME,
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    const char *p1[1], *p2[1];
    char errstr[128] = "";

    if (!fx)
        return -1;
    unit_tmpdir(fx->dir, "jwt");
    snprintf(fx->key1, sizeof(fx->key1), "%s/jwt1.pem", fx->dir);
    snprintf(fx->key2, sizeof(fx->key2), "%s/jwt2.pem", fx->dir);
    if (jwt_keygen(fx->key1) != ERR_OK || jwt_keygen(fx->key2) != ERR_OK)
        return -1;
    p1[0] = fx->key1;
    p2[0] = fx->key2;
    if (jwt_keyset_load(&fx->ks, p1, 1, errstr) != ERR_OK ||
        jwt_keyset_load(&fx->other, p2, 1, errstr) != ERR_OK)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    jwt_keyset_free(&fx->ks);
    jwt_keyset_free(&fx->other);
    if (unit_rmtree(fx->dir) != 0)
        return -1;
    free(fx);
    return 0;
}

/* ---- token builders --------------------------------------------------- */

static char *b64url(const void *d, size_t n)
{
    char *s = malloc(CRYPTO_B64_LEN(n) + 1);
    assert_non_null(s);
    assert_int_equal(crypto_b64url_encode(d, n, s, CRYPTO_B64_LEN(n) + 1, NULL), ERR_OK);
    return s;
}

/* "b64(hdr).b64(payload)" plus room for a signature. */
static char *signing_input(const char *hdr, const char *payload)
{
    char *h = b64url(hdr, strlen(hdr)), *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 2 + 100;
    char *s = malloc(n);

    assert_non_null(s);
    snprintf(s, n, "%s.%s", h, p);
    free(h);
    free(p);
    return s;
}

static char *join_sig(char *input, const uint8_t *sig, size_t siglen)
{
    char *sb = b64url(sig, siglen);
    size_t n = strlen(input) + strlen(sb) + 2;
    char *tok = malloc(n);

    assert_non_null(tok);
    snprintf(tok, n, "%s.%s", input, sb);
    free(sb);
    free(input);
    return tok;
}

/* A token with exactly these header and payload texts, signed with pkey. */
static char *sign_raw(EVP_PKEY *pkey, const char *hdr, const char *payload)
{
    char *input = signing_input(hdr, payload);
    uint8_t sig[64];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, pkey), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    return join_sig(input, sig, siglen);
}

static char *header_with(const char *kid, const char *extra)
{
    char *h = malloc(512);
    assert_non_null(h);
    snprintf(h, 512, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"%s}", kid, extra);
    return h;
}

/* The claims of a good access token, times relative to NOW, plus `extra`. */
static char *claims_with(int64_t iat_off, int64_t exp_off, const char *extra)
{
    char *c = malloc(1024);
    assert_non_null(c);
    snprintf(c, 1024,
             "{\"sub\":\"u1\",\"org\":\"o1\",\"role\":\"owner\",\"jti\":\"j1\",\"iss\":\"" ISS
             "\",\"aud\":\"" AUD "\",\"iat\":%lld,\"exp\":%lld%s}",
             (long long)(NOW + iat_off), (long long)(NOW + exp_off), extra);
    return c;
}

/* Signs claims_with(...) under a normal header for the fixture's key. */
static char *good_token_with(struct fixture *fx, int64_t iat_off, int64_t exp_off, const char *extra)
{
    char *h = header_with(fx->ks.keys[0].kid, "");
    char *c = claims_with(iat_off, exp_off, extra);
    char *tok = sign_raw(fx->ks.keys[0].pkey, h, c);

    free(h);
    free(c);
    return tok;
}

static enum jwt_status verify(struct fixture *fx, const char *tok)
{
    return jwt_verify(&fx->ks, tok, strlen(tok), &EXPECTED, NULL);
}

static void expect_status(struct fixture *fx, char *tok, enum jwt_status want)
{
    cJSON *claims = (cJSON *)&claims;   /* must come back NULL on refusal */
    enum jwt_status got = jwt_verify(&fx->ks, tok, strlen(tok), &EXPECTED, &claims);

    if (got != want)
        fail_msg("token %s: got %s, want %s", tok, jwt_status_str(got), jwt_status_str(want));
    if (want != JWT_OK)
        assert_null(claims);
    cJSON_Delete(want == JWT_OK ? claims : NULL);
    free(tok);
}

static cJSON *std_claims(void)
{
    cJSON *c = cJSON_CreateObject();

    assert_non_null(c);
    assert_non_null(cJSON_AddStringToObject(c, "sub", "u1"));
    assert_non_null(cJSON_AddStringToObject(c, "org", "o1"));
    assert_non_null(cJSON_AddStringToObject(c, "role", "owner"));
    assert_non_null(cJSON_AddStringToObject(c, "mode", "test"));
    assert_non_null(cJSON_AddStringToObject(c, "jti", "9b2f0c1e"));
    assert_non_null(cJSON_AddStringToObject(c, "iss", ISS));
    assert_non_null(cJSON_AddStringToObject(c, "aud", AUD));
    assert_non_null(cJSON_AddNumberToObject(c, "iat", (double)NOW));
    assert_non_null(cJSON_AddNumberToObject(c, "exp", (double)(NOW + 900)));
    return c;
}

static char *signed_std(struct fixture *fx)
{
    cJSON *c = std_claims();
    char *tok = NULL;

    assert_int_equal(jwt_sign(&fx->ks, c, &tok), ERR_OK);
    cJSON_Delete(c);
    return tok;
}

/* ---- round trip, keys, JWKS ------------------------------------------ */

static void test_sign_verify_round_trip(void **state)
{
    struct fixture *fx = *state;
    char *tok = signed_std(fx), *dot, hdr[256], want[128];
    cJSON *claims = NULL;
    uint8_t raw[256];
    size_t n;

    assert_int_equal(jwt_verify(&fx->ks, tok, strlen(tok), &EXPECTED, &claims), JWT_OK);
    assert_non_null(claims);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(claims, "sub")->valuestring, "u1");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(claims, "org")->valuestring, "o1");
    assert_int_equal((int64_t)cJSON_GetObjectItemCaseSensitive(claims, "exp")->valuedouble, NOW + 900);
    cJSON_Delete(claims);

    dot = strchr(tok, '.');
    assert_int_equal(crypto_b64url_decode(tok, (size_t)(dot - tok), raw, sizeof(raw), &n), ERR_OK);
    memcpy(hdr, raw, n);
    hdr[n] = '\0';
    snprintf(want, sizeof(want), "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    assert_string_equal(hdr, want);
    assert_int_equal(strlen(strrchr(tok, '.') + 1), 86);
    /* claims_out may be NULL. */
    assert_int_equal(verify(fx, tok), JWT_OK);
    free(tok);
}

static void test_kid_is_sha256_prefix_of_public_key(void **state)
{
    struct fixture *fx = *state;
    uint8_t d[32];
    char hex[65];

    assert_int_equal(crypto_sha256(fx->ks.keys[0].pub, 32, d), ERR_OK);
    assert_int_equal(crypto_hex_encode(d, 32, hex, sizeof(hex)), ERR_OK);
    hex[16] = '\0';
    assert_string_equal(fx->ks.keys[0].kid, hex);
    assert_string_not_equal(fx->ks.keys[0].kid, fx->other.keys[0].kid);
}

static void test_jwks_shape(void **state)
{
    struct fixture *fx = *state;
    char *json = NULL;
    cJSON *root, *keys, *k;
    uint8_t x[64];
    size_t n;
    static const char *const fields[] = { "kty", "crv", "x", "kid", "alg", "use" };

    assert_int_equal(jwt_jwks(&fx->ks, &json), ERR_OK);
    root = cJSON_Parse(json);
    assert_non_null(root);
    keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    assert_true(cJSON_IsArray(keys));
    assert_int_equal(cJSON_GetArraySize(keys), 1);
    assert_int_equal(cJSON_GetArraySize(root), 1);
    k = cJSON_GetArrayItem(keys, 0);
    assert_int_equal(cJSON_GetArraySize(k), 6);
    for (size_t i = 0; i < 6; i++)
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(k, fields[i])));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(k, "kty")->valuestring, "OKP");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(k, "crv")->valuestring, "Ed25519");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(k, "alg")->valuestring, "EdDSA");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(k, "use")->valuestring, "sig");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(k, "kid")->valuestring, fx->ks.keys[0].kid);
    const char *xs = cJSON_GetObjectItemCaseSensitive(k, "x")->valuestring;
    assert_int_equal(crypto_b64url_decode(xs, strlen(xs), x, sizeof(x), &n), ERR_OK);
    assert_int_equal(n, 32);
    assert_memory_equal(x, fx->ks.keys[0].pub, 32);
    /* Nothing private leaks into it. */
    assert_null(strstr(json, "\"d\""));
    cJSON_Delete(root);
    free(json);
}

static void test_keygen_is_0600_and_never_overwrites(void **state)
{
    struct fixture *fx = *state;
    struct stat st;

    assert_int_equal(stat(fx->key1, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(jwt_keygen(fx->key1), ERR_CONFLICT);
}

/* A PEM file of pkey: 0644 for a public half, 0600 for a private key (the
 * loader refuses one that group or others can reach; tests of that chmod). */
static void write_pem(const char *path, EVP_PKEY *pkey, int public_only)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    if (public_only)
        assert_int_equal(PEM_write_PUBKEY(f, pkey), 1);
    else
        assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, public_only ? 0644 : 0600), 0);
}

static void test_keyset_load_errors(void **state)
{
    struct fixture *fx = *state;
    struct jwt_keyset ks;
    char errstr[128] = "", pub[160], ec[160], junk[160];
    const char *paths[5];
    EVP_PKEY *eckey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FILE *f;

    assert_non_null(eckey);
    snprintf(pub, sizeof(pub), "%s/pub.pem", fx->dir);
    snprintf(ec, sizeof(ec), "%s/ec.pem", fx->dir);
    snprintf(junk, sizeof(junk), "%s/junk.pem", fx->dir);
    write_pem(pub, fx->ks.keys[0].pkey, 1);
    write_pem(ec, eckey, 0);
    EVP_PKEY_free(eckey);
    f = fopen(junk, "w");
    assert_non_null(f);
    fputs("not a key\n", f);
    fclose(f);

    paths[0] = "/nonexistent/jwt.pem";
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_IO);
    assert_int_equal(ks.n, 0);
    assert_non_null(strstr(errstr, "/nonexistent/jwt.pem"));
    paths[0] = ec;
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_INVAL);
    assert_non_null(strstr(errstr, "Ed25519"));
    paths[0] = junk;
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_INVAL);
    /* The signing key must be private. */
    paths[0] = pub;
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_INVAL);
    /* The same key twice. */
    paths[0] = fx->key1;
    paths[1] = pub;
    assert_int_equal(jwt_keyset_load(&ks, paths, 2, errstr), ERR_INVAL);
    assert_int_equal(ks.n, 0);
    paths[1] = ec;
    assert_int_equal(jwt_keyset_load(&ks, paths, 2, errstr), ERR_INVAL);
    assert_int_equal(jwt_keyset_load(&ks, paths, 0, errstr), ERR_INVAL);
    for (int i = 0; i < 5; i++)
        paths[i] = fx->key1;
    assert_int_equal(jwt_keyset_load(&ks, paths, 5, errstr), ERR_NOSPACE);
}

/* Rotation: the new key signs; tokens of the old one (kept as a public key) verify. */
static void test_rotation_old_key_verifies(void **state)
{
    struct fixture *fx = *state;
    struct jwt_keyset both;
    char errstr[128] = "", pub2[160], *old_tok, *new_tok, *json = NULL;
    const char *paths[2];
    cJSON *c = std_claims(), *root;

    snprintf(pub2, sizeof(pub2), "%s/jwt2.pub.pem", fx->dir);
    write_pem(pub2, fx->other.keys[0].pkey, 1);
    paths[0] = fx->key1;
    paths[1] = pub2;
    assert_int_equal(jwt_keyset_load(&both, paths, 2, errstr), ERR_OK);
    assert_int_equal(both.n, 2);
    assert_int_equal(both.keys[1].can_sign, 0);

    assert_int_equal(jwt_sign(&fx->other, c, &old_tok), ERR_OK);
    assert_int_equal(jwt_sign(&both, c, &new_tok), ERR_OK);
    assert_int_equal(jwt_verify(&both, old_tok, strlen(old_tok), &EXPECTED, NULL), JWT_OK);
    assert_int_equal(jwt_verify(&both, new_tok, strlen(new_tok), &EXPECTED, NULL), JWT_OK);
    assert_int_equal(verify(fx, old_tok), JWT_UNKNOWN_KID);

    assert_int_equal(jwt_jwks(&both, &json), ERR_OK);
    root = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "keys")), 2);
    cJSON_Delete(root);
    free(json);
    free(old_tok);
    free(new_tok);
    cJSON_Delete(c);
    jwt_keyset_free(&both);
    assert_int_equal(both.n, 0);
}

/* ---- key files: modes, rotation, copies, alg names --------------------- */

/* As sshd: a private key that group or others can reach is refused, naming
 * the file and its mode; public halves may be world-readable. */
static void test_private_key_open_to_group_or_others_is_refused(void **state)
{
    struct fixture *fx = *state;
    static const mode_t bad[] = { 0644, 0640, 0604, 0660, 0620, 0602, 0601, 0610 };
    struct jwt_keyset ks;
    char errstr[128], pub[160], want[16];
    const char *paths[2];

    paths[0] = fx->key1;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chmod(fx->key1, bad[i]), 0);
        errstr[0] = '\0';
        assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_INVAL);
        assert_int_equal(ks.n, 0);
        snprintf(want, sizeof(want), "mode %04o", (unsigned)bad[i]);
        if (!strstr(errstr, want) || !strstr(errstr, fx->key1))
            fail_msg("mode %04o: %s", (unsigned)bad[i], errstr);
    }
    assert_int_equal(chmod(fx->key1, 0400), 0);
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_OK);
    jwt_keyset_free(&ks);
    assert_int_equal(chmod(fx->key1, 0600), 0);

    /* A previous key: its public half at 0644 is fine, its private key is not. */
    snprintf(pub, sizeof(pub), "%s/jwt2.pub.pem", fx->dir);
    write_pem(pub, fx->other.keys[0].pkey, 1);
    paths[1] = pub;
    assert_int_equal(jwt_keyset_load(&ks, paths, 2, errstr), ERR_OK);
    jwt_keyset_free(&ks);
    assert_int_equal(chmod(fx->key2, 0644), 0);
    paths[1] = fx->key2;
    assert_int_equal(jwt_keyset_load(&ks, paths, 2, errstr), ERR_INVAL);
    assert_non_null(strstr(errstr, "mode 0644"));
    assert_non_null(strstr(errstr, fx->key2));
    assert_int_equal(chmod(fx->key2, 0600), 0);
    assert_int_equal(jwt_keyset_load(&ks, paths, 2, errstr), ERR_OK);
    assert_int_equal(ks.keys[1].can_sign, 1);
    jwt_keyset_free(&ks);
}

/* keyset_add builds a set one file at a time; a refused file changes nothing. */
static void test_keyset_add_refuses_without_changing_the_set(void **state)
{
    struct fixture *fx = *state;
    struct jwt_keyset ks;
    char errstr[128] = "", pub[160];

    memset(&ks, 0, sizeof(ks));
    snprintf(pub, sizeof(pub), "%s/jwt1.pub.pem", fx->dir);
    write_pem(pub, fx->ks.keys[0].pkey, 1);
    /* The first key signs: a public half cannot be it. */
    assert_int_equal(jwt_keyset_add(&ks, pub, errstr), ERR_INVAL);
    assert_int_equal(ks.n, 0);
    assert_int_equal(jwt_keyset_add(&ks, fx->key1, errstr), ERR_OK);
    assert_int_equal(jwt_keyset_add(&ks, pub, errstr), ERR_INVAL);
    assert_non_null(strstr(errstr, "same key"));
    assert_int_equal(jwt_keyset_add(&ks, "/nonexistent/k.pem", errstr), ERR_IO);
    assert_int_equal(ks.n, 1);
    assert_string_equal(ks.keys[0].kid, fx->ks.keys[0].kid);
    assert_int_equal(jwt_keyset_add(&ks, fx->key2, errstr), ERR_OK);
    assert_int_equal(ks.n, 2);
    jwt_keyset_free(&ks);
}

/* Either name of the algorithm verifies, with the same key. */
static void test_alg_ed25519_verifies_as_eddsa_does(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, ""), hdr[160];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"Ed25519\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_OK);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_OK);
    /* Ed25519 under the wrong key is still a bad signature. */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"Ed25519\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->other.keys[0].pkey, hdr, c), JWT_BAD_SIGNATURE);
    free(c);
}

/* A key set that somehow holds another key type (the loader admits none):
 * neither alg name gets a token past the header to that key. */
static void test_alg_names_with_another_key_type_are_refused(void **state)
{
    struct fixture *fx = *state;
    static const char *const types[][2] = { { "EC", "P-256" }, { "ED448", NULL }, { "X25519", NULL } };
    static const char *const algs[] = { "Ed25519", "EdDSA" };
    char *c = claims_with(0, 900, ""), hdr[160];

    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        struct jwt_keyset ks;
        EVP_PKEY *alien = types[t][1] ? EVP_PKEY_Q_keygen(NULL, NULL, types[t][0], types[t][1])
                                      : EVP_PKEY_Q_keygen(NULL, NULL, types[t][0]);

        assert_non_null(alien);
        memset(&ks, 0, sizeof(ks));
        ks.n = 1;
        ks.keys[0].pkey = alien;
        snprintf(ks.keys[0].kid, sizeof(ks.keys[0].kid), "a1a1a1a1a1a1a1a1");
        for (size_t a = 0; a < 2; a++) {
            char *tok;
            snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"a1a1a1a1a1a1a1a1\"}", algs[a]);
            /* signed with a real Ed25519 key so only the key type can refuse it */
            tok = sign_raw(fx->ks.keys[0].pkey, hdr, c);
            if (jwt_verify(&ks, tok, strlen(tok), &EXPECTED, NULL) != JWT_BAD_ALG)
                fail_msg("alg %s with a %s key was not refused as bad_alg", algs[a], types[t][0]);
            free(tok);
        }
        jwt_keyset_free(&ks);
    }
    free(c);
}

/* sign_alg picks the issued header's alg and the JWKS's; both verify. */
static void test_sign_alg_ed25519_is_issued_and_advertised(void **state)
{
    struct fixture *fx = *state;
    char *tok, *json = NULL, want[128];
    uint8_t raw[256];
    size_t n;
    cJSON *root;

    fx->ks.sign_alg = JWT_ALG_ED25519;
    tok = signed_std(fx);
    assert_int_equal(crypto_b64url_decode(tok, (size_t)(strchr(tok, '.') - tok), raw, sizeof(raw) - 1, &n),
                     ERR_OK);
    raw[n] = '\0';
    snprintf(want, sizeof(want), "{\"alg\":\"Ed25519\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    assert_string_equal((const char *)raw, want);
    assert_int_equal(verify(fx, tok), JWT_OK);
    free(tok);
    assert_int_equal(jwt_jwks(&fx->ks, &json), ERR_OK);
    root = cJSON_Parse(json);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "keys"), 0), "alg")
                            ->valuestring,
                        "Ed25519");
    cJSON_Delete(root);
    free(json);
    assert_string_equal(jwt_alg_name(JWT_ALG_EDDSA), "EdDSA");
    assert_string_equal(jwt_alg_name(JWT_ALG_ED25519), "Ed25519");
    assert_string_equal(jwt_alg_name(42), "EdDSA");
}

/* A copy outlives the set it was made from (a worker frees its own). */
static void test_keyset_copy_holds_its_own_references(void **state)
{
    struct fixture *fx = *state;
    struct jwt_keyset src, dst;
    const char *paths[2] = { fx->key1, fx->key2 };
    char errstr[128] = "", *tok = NULL;
    cJSON *c = std_claims();

    assert_int_equal(jwt_keyset_load(&src, paths, 2, errstr), ERR_OK);
    src.sign_alg = JWT_ALG_ED25519;
    assert_int_equal(jwt_keyset_copy(&dst, &src), ERR_OK);
    jwt_keyset_free(&src);
    assert_int_equal(dst.n, 2);
    assert_int_equal(dst.sign_alg, JWT_ALG_ED25519);
    assert_string_equal(dst.keys[0].kid, fx->ks.keys[0].kid);
    assert_int_equal(jwt_sign(&dst, c, &tok), ERR_OK);
    assert_int_equal(jwt_verify(&dst, tok, strlen(tok), &EXPECTED, NULL), JWT_OK);
    assert_int_equal(verify(fx, tok), JWT_OK);
    free(tok);
    cJSON_Delete(c);
    jwt_keyset_free(&dst);
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* keygen --rotate: a new key in place, the old one's public half beside it;
 * with both listed, tokens of either verify; without it, the old ones stop. */
static void test_rotate_keeps_the_previous_public_half(void **state)
{
    struct fixture *fx = *state;
    struct jwt_keyset ks;
    char pub[256], pub2[256], want[256], old_kid[JWT_KID_LEN + 1], new_kid[JWT_KID_LEN + 1];
    char k2[JWT_KID_LEN + 1], errstr[128] = "", *old_tok = signed_std(fx), *new_tok = NULL;
    const char *paths[3];
    cJSON *c = std_claims();

    assert_int_equal(jwt_rotate(fx->key1, pub, sizeof(pub), old_kid, new_kid, errstr), ERR_OK);
    snprintf(want, sizeof(want), "%s/jwt1-%s.pub.pem", fx->dir, fx->ks.keys[0].kid);
    assert_string_equal(pub, want);
    assert_string_equal(old_kid, fx->ks.keys[0].kid);
    assert_string_not_equal(new_kid, old_kid);
    assert_int_equal(file_mode(fx->key1), 0600);
    assert_int_equal(file_mode(pub), 0644);
    snprintf(want, sizeof(want), "%s.next", fx->key1);
    assert_int_equal(access(want, F_OK), -1);

    paths[0] = fx->key1;
    paths[1] = pub;
    assert_int_equal(jwt_keyset_load(&ks, paths, 2, errstr), ERR_OK);
    assert_string_equal(ks.keys[0].kid, new_kid);
    assert_string_equal(ks.keys[1].kid, old_kid);
    assert_int_equal(ks.keys[1].can_sign, 0);
    assert_int_equal(jwt_sign(&ks, c, &new_tok), ERR_OK);
    assert_int_equal(jwt_verify(&ks, old_tok, strlen(old_tok), &EXPECTED, NULL), JWT_OK);
    assert_int_equal(jwt_verify(&ks, new_tok, strlen(new_tok), &EXPECTED, NULL), JWT_OK);
    jwt_keyset_free(&ks);
    /* The previous key removed: its tokens are an unknown kid. */
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_OK);
    assert_int_equal(jwt_verify(&ks, old_tok, strlen(old_tok), &EXPECTED, NULL), JWT_UNKNOWN_KID);
    assert_int_equal(jwt_verify(&ks, new_tok, strlen(new_tok), &EXPECTED, NULL), JWT_OK);
    jwt_keyset_free(&ks);

    /* A second rotation during the overlap: three keys, each its own file. */
    assert_int_equal(jwt_rotate(fx->key1, pub2, sizeof(pub2), k2, want, errstr), ERR_OK);
    assert_string_equal(k2, new_kid);
    assert_string_not_equal(pub2, pub);
    paths[1] = pub2;
    paths[2] = pub;
    assert_int_equal(jwt_keyset_load(&ks, paths, 3, errstr), ERR_OK);
    assert_int_equal(jwt_verify(&ks, old_tok, strlen(old_tok), &EXPECTED, NULL), JWT_OK);
    assert_int_equal(jwt_verify(&ks, new_tok, strlen(new_tok), &EXPECTED, NULL), JWT_OK);
    jwt_keyset_free(&ks);
    free(old_tok);
    free(new_tok);
    cJSON_Delete(c);
}

/* Rotation refuses what a start would refuse, and never leaves half a key. */
static void test_rotate_refusals_leave_the_signing_key(void **state)
{
    struct fixture *fx = *state;
    struct jwt_keyset ks;
    char pub[256], clash[256], old_kid[JWT_KID_LEN + 1], new_kid[JWT_KID_LEN + 1], errstr[128] = "";
    const char *paths[1] = { fx->key1 };

    assert_int_equal(chmod(fx->key1, 0640), 0);
    assert_int_equal(jwt_rotate(fx->key1, pub, sizeof(pub), old_kid, new_kid, errstr), ERR_INVAL);
    assert_non_null(strstr(errstr, "mode 0640"));
    assert_int_equal(chmod(fx->key1, 0600), 0);
    assert_int_equal(jwt_rotate("/nonexistent/jwt.pem", pub, sizeof(pub), old_kid, new_kid, errstr),
                     ERR_IO);
    /* The public file's name taken by another key: refused, the key kept. */
    snprintf(clash, sizeof(clash), "%s/jwt1-%s.pub.pem", fx->dir, fx->ks.keys[0].kid);
    write_pem(clash, fx->other.keys[0].pkey, 1);
    assert_int_equal(jwt_rotate(fx->key1, pub, sizeof(pub), old_kid, new_kid, errstr), ERR_CONFLICT);
    assert_non_null(strstr(errstr, clash));
    assert_int_equal(jwt_keyset_load(&ks, paths, 1, errstr), ERR_OK);
    assert_string_equal(ks.keys[0].kid, fx->ks.keys[0].kid);
    jwt_keyset_free(&ks);
    /* The same key there (a rotation stopped half way): it goes on. */
    assert_int_equal(unlink(clash), 0);
    write_pem(clash, fx->ks.keys[0].pkey, 1);
    assert_int_equal(jwt_rotate(fx->key1, pub, sizeof(pub), old_kid, new_kid, errstr), ERR_OK);
    assert_string_equal(pub, clash);
}

static void test_sign_refuses_non_object_and_oversize(void **state)
{
    struct fixture *fx = *state;
    cJSON *arr = cJSON_CreateArray(), *c = std_claims();
    char *tok = (char *)"x", *big = malloc(4000);

    assert_non_null(big);
    assert_int_equal(jwt_sign(&fx->ks, arr, &tok), ERR_INVAL);
    assert_null(tok);
    memset(big, 'a', 3999);
    big[3999] = '\0';
    assert_non_null(cJSON_AddStringToObject(c, "pad", big));
    assert_int_equal(jwt_sign(&fx->ks, c, &tok), ERR_TOOBIG);
    cJSON_Delete(arr);
    cJSON_Delete(c);
    free(big);
}

/* ---- refusals: header ------------------------------------------------- */

static void test_rejects_alg_none(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, ""), *input, *tok;
    char hdr[160];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    input = signing_input(hdr, c);
    tok = malloc(strlen(input) + 2);
    snprintf(tok, strlen(input) + 2, "%s.", input);
    expect_status(fx, tok, JWT_BAD_ALG);
    /* "None", "NONE" and a real-looking signature change nothing. */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"None\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_BAD_ALG);
    free(input);
    free(c);
}

/* The classic key-confusion attack: HS256 with the public key as HMAC secret. */
static void test_rejects_hs256_signed_with_public_key(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, ""), *input, *tok;
    char hdr[160];
    uint8_t mac[32];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    input = signing_input(hdr, c);
    assert_int_equal(crypto_hmac_sha256(fx->ks.keys[0].pub, 32, input, strlen(input), mac), ERR_OK);
    tok = join_sig(input, mac, sizeof(mac));
    expect_status(fx, tok, JWT_BAD_ALG);
    free(c);
}

static void test_rejects_other_alg_spellings(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    static const char *const algs[] = { "\"eddsa\"", "\"ed25519\"", "\"Ed448\"", "\"ES256\"",
                                        "\"RS256\"", "\"EdDSA \"", "\"Ed25519 \"", "null", "1",
                                        "[\"EdDSA\"]", "[\"Ed25519\"]" };
    char hdr[200];

    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        snprintf(hdr, sizeof(hdr), "{\"alg\":%s,\"kid\":\"%s\"}", algs[i], fx->ks.keys[0].kid);
        expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_BAD_ALG);
    }
    snprintf(hdr, sizeof(hdr), "{\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_BAD_ALG);
    free(c);
}

static void test_rejects_unknown_kid(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    char *h;

    h = header_with("0000000000000000", "");
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_UNKNOWN_KID);
    free(h);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", c),
                  JWT_UNKNOWN_KID);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, "{\"alg\":\"EdDSA\",\"kid\":7}", c), JWT_UNKNOWN_KID);
    /* The other deployment's key and kid: we do not know it. */
    h = header_with(fx->other.keys[0].kid, "");
    expect_status(fx, sign_raw(fx->other.keys[0].pkey, h, c), JWT_UNKNOWN_KID);
    free(h);
    free(c);
}

static void test_rejects_crit_header(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    char *h = header_with(fx->ks.keys[0].kid, ",\"crit\":[\"exp\"],\"exp\":1");

    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_BAD_CRIT);
    free(h);
    h = header_with(fx->ks.keys[0].kid, ",\"crit\":[]");
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_BAD_CRIT);
    free(h);
    free(c);
}

static void test_rejects_wrong_header_typ(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    char hdr[200];

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"typ\":\"refresh+jwt\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_BAD_TYPE);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"typ\":1,\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_BAD_TYPE);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_OK);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", fx->ks.keys[0].kid);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, hdr, c), JWT_OK);
    free(c);
}

static void test_rejects_non_access_token_kind(void **state)
{
    struct fixture *fx = *state;

    expect_status(fx, good_token_with(fx, 0, 900, ",\"typ\":\"refresh\""), JWT_BAD_TYPE);
    expect_status(fx, good_token_with(fx, 0, 900, ",\"typ\":\"invite\""), JWT_BAD_TYPE);
    expect_status(fx, good_token_with(fx, 0, 900, ",\"typ\":null"), JWT_BAD_TYPE);
    expect_status(fx, good_token_with(fx, 0, 900, ",\"typ\":\"access\""), JWT_OK);
}

/* jwk / jku / x5u / x5c are never used: the key comes from the key set or not at all. */
static void test_ignores_embedded_and_remote_keys(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    char *h = header_with(fx->ks.keys[0].kid,
                          ",\"jku\":\"http://127.0.0.1:9/jwks\",\"x5u\":\"http://127.0.0.1:9/c\","
                          "\"x5c\":[\"AAAA\"],\"jwk\":{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}");

    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_OK);
    free(h);
    /* Signed by the attacker's key, announced in jwk with our kid: still refused. */
    h = header_with(fx->ks.keys[0].kid, ",\"jwk\":{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}");
    expect_status(fx, sign_raw(fx->other.keys[0].pkey, h, c), JWT_BAD_SIGNATURE);
    free(h);
    free(c);
}

/* ---- refusals: shape and encoding ------------------------------------ */

static void test_rejects_too_big(void **state)
{
    struct fixture *fx = *state;
    char *tok = malloc(JWT_MAX_LEN + 2);

    memset(tok, 'A', JWT_MAX_LEN + 1);
    tok[10] = '.';
    tok[20] = '.';
    tok[JWT_MAX_LEN + 1] = '\0';
    expect_status(fx, tok, JWT_TOO_BIG);
}

static void test_rejects_wrong_part_count(void **state)
{
    struct fixture *fx = *state;
    char *good = signed_std(fx);
    char buf[JWT_MAX_LEN + 8];

    expect_status(fx, strdup(""), JWT_MALFORMED);
    expect_status(fx, strdup("abc"), JWT_MALFORMED);
    expect_status(fx, strdup("abc.def"), JWT_MALFORMED);
    expect_status(fx, strdup(".."), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.", good);
    expect_status(fx, strdup(buf), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.e30", good);
    expect_status(fx, strdup(buf), JWT_MALFORMED);
    /* Only the first len bytes count: a valid token followed by junk outside len verifies. */
    snprintf(buf, sizeof(buf), "%s.junk", good);
    assert_int_equal(jwt_verify(&fx->ks, buf, strlen(good), &EXPECTED, NULL), JWT_OK);
    free(good);
}

static void test_rejects_non_json_and_non_object_parts(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    char *h = header_with(fx->ks.keys[0].kid, "");

    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, "not json", c), JWT_MALFORMED);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, "[\"EdDSA\"]", c), JWT_MALFORMED);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, "[1,2]"), JWT_MALFORMED);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, "{\"sub\":"), JWT_MALFORMED);
    free(h);
    /* Trailing bytes after the header object. */
    h = header_with(fx->ks.keys[0].kid, "");
    snprintf(h + strlen(h), 512 - strlen(h), " x"); /* header_with allocates 512 */
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_MALFORMED);
    free(h);
    free(c);
}

static void test_rejects_duplicate_key_in_payload(void **state)
{
    struct fixture *fx = *state;
    char *h = header_with(fx->ks.keys[0].kid, "");
    /* cJSON would keep the first "role", PostgreSQL's jsonb the last. */
    char *c = claims_with(0, 900, ",\"role\":\"owner\"");

    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_MALFORMED);
    free(c);
    free(h);
    /* And in the header. */
    h = header_with(fx->ks.keys[0].kid, ",\"alg\":\"none\"");
    c = claims_with(0, 900, "");
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, c), JWT_MALFORMED);
    free(c);
    free(h);
}

static size_t b64url_index(char ch)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = strchr(alpha, ch);
    assert_non_null(p);
    return (size_t)(p - alpha);
}

/* The last of 86 characters holds 2 bits of the signature and 4 unused bits:
 * 15 other spellings decode to the same 64 bytes in a lenient decoder. */
static void test_rejects_non_canonical_signature_encoding(void **state)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    struct fixture *fx = *state;
    char *tok = signed_std(fx);
    size_t len = strlen(tok), v = b64url_index(tok[len - 1]);

    assert_int_equal(strlen(strrchr(tok, '.') + 1), 86);
    assert_int_equal(v & 15, 0);
    assert_int_equal(verify(fx, tok), JWT_OK);
    for (size_t junk = 1; junk < 16; junk++) {
        char *t = strdup(tok);
        t[len - 1] = alpha[v | junk];
        /* Same significant bits: the same signature bytes to a lenient decoder. */
        assert_int_equal(b64url_index(t[len - 1]) >> 4, v >> 4);
        expect_status(fx, t, JWT_MALFORMED);
    }
    free(tok);
}

static void test_rejects_padding(void **state)
{
    struct fixture *fx = *state;
    char *tok = signed_std(fx), buf[JWT_MAX_LEN];
    char *d1 = strchr(tok, '.');

    snprintf(buf, sizeof(buf), "%s==", tok);
    expect_status(fx, strdup(buf), JWT_MALFORMED);
    snprintf(buf, sizeof(buf), "%s=", tok);
    expect_status(fx, strdup(buf), JWT_MALFORMED);
    /* Padding inside the header part. */
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(d1 - tok), tok, d1);
    expect_status(fx, strdup(buf), JWT_MALFORMED);
    free(tok);
}

/* The same token in the standard alphabet ('+' '/' for '-' '_'). */
static void test_rejects_standard_base64_alphabet(void **state)
{
    struct fixture *fx = *state;
    cJSON *c = std_claims();
    char *tok = NULL, jti[32];
    bool found = false;

    for (int i = 0; i < 200 && !found; i++) {
        free(tok);
        snprintf(jti, sizeof(jti), "jti-%d", i);
        cJSON_ReplaceItemInObjectCaseSensitive(c, "jti", cJSON_CreateString(jti));
        assert_int_equal(jwt_sign(&fx->ks, c, &tok), ERR_OK);
        found = strpbrk(strrchr(tok, '.'), "-_") != NULL;
    }
    assert_true(found);
    assert_int_equal(verify(fx, tok), JWT_OK);
    for (char *p = tok; *p; p++) {
        if (*p == '-')
            *p = '+';
        else if (*p == '_')
            *p = '/';
    }
    expect_status(fx, tok, JWT_MALFORMED);
    cJSON_Delete(c);
}

/* ---- refusals: signature --------------------------------------------- */

static void test_rejects_bad_signature(void **state)
{
    struct fixture *fx = *state;
    char *c = claims_with(0, 900, "");
    char *h = header_with(fx->ks.keys[0].kid, "");
    char *tok, *input;
    uint8_t short_sig[63] = { 1 };

    /* Our kid, someone else's key. */
    expect_status(fx, sign_raw(fx->other.keys[0].pkey, h, c), JWT_BAD_SIGNATURE);
    /* A flipped bit in the signature. */
    tok = sign_raw(fx->ks.keys[0].pkey, h, c);
    tok[strlen(tok) - 10] = tok[strlen(tok) - 10] == 'A' ? 'B' : 'A';
    expect_status(fx, tok, JWT_BAD_SIGNATURE);
    /* Not 64 bytes. */
    input = signing_input(h, c);
    expect_status(fx, join_sig(input, short_sig, sizeof(short_sig)), JWT_BAD_SIGNATURE);
    input = signing_input(h, c);
    tok = malloc(strlen(input) + 2);
    snprintf(tok, strlen(input) + 2, "%s.", input);
    free(input);
    expect_status(fx, tok, JWT_BAD_SIGNATURE);
    free(h);
    free(c);
}

static void test_rejects_modified_payload(void **state)
{
    struct fixture *fx = *state;
    char *tok = signed_std(fx), *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    char *evil_claims = claims_with(0, 900, ""), *evil, buf[JWT_MAX_LEN];

    /* Same signature, payload re-encoded with another role. */
    memcpy(strstr(evil_claims, "owner"), "admin", 5);
    evil = b64url(evil_claims, strlen(evil_claims));
    snprintf(buf, sizeof(buf), "%.*s.%s%s", (int)(d1 - tok), tok, evil, d2);
    expect_status(fx, strdup(buf), JWT_BAD_SIGNATURE);
    /* One character of the payload changed in place. */
    snprintf(buf, sizeof(buf), "%s", tok);
    buf[d1 - tok + 5] = buf[d1 - tok + 5] == 'x' ? 'y' : 'x';
    assert_int_not_equal(verify(fx, buf), JWT_OK);
    free(evil);
    free(evil_claims);
    free(tok);
}

/* Ed25519's S is a scalar mod L; S + L satisfies the verification equation of a
 * verifier that does not insist S < L, giving a second valid signature (and a
 * second SHA-256 for the blacklist). OpenSSL insists; this proves it. */
static void test_rejects_signature_with_s_not_below_group_order(void **state)
{
    static const uint8_t L[32] = {   /* 2^252 + 27742317777372353535851937790883648493, little-endian */
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    };
    struct fixture *fx = *state;
    char *tok = signed_std(fx), *d2 = strrchr(tok, '.'), *input;
    uint8_t sig[64];
    size_t n;
    unsigned carry = 0;
    EVP_MD_CTX *md;

    assert_int_equal(crypto_b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof(sig), &n), ERR_OK);
    assert_int_equal(n, 64);
    for (int i = 0; i < 32; i++) {
        unsigned s = (unsigned)sig[32 + i] + L[i] + carry;
        sig[32 + i] = (uint8_t)s;
        carry = s >> 8;
    }
    assert_int_equal(carry, 0);       /* S < L < 2^253, so S + L fits */
    assert_true(sig[63] >= 0x10);     /* and is >= L */

    input = strndup(tok, (size_t)(d2 - tok));
    assert_non_null(input);
    /* OpenSSL's own verdict on the raw signature... */
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, fx->ks.keys[0].pkey), 1);
    assert_int_not_equal(EVP_DigestVerify(md, sig, 64, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    /* ...and jwt_verify's on the token carrying it, canonically encoded. */
    assert_int_equal(verify(fx, tok), JWT_OK);
    expect_status(fx, join_sig(input, sig, sizeof(sig)), JWT_BAD_SIGNATURE);
    free(tok);
}

/* ---- refusals: claims ------------------------------------------------- */

static void test_rejects_expired(void **state)
{
    struct fixture *fx = *state;

    /* now >= exp + skew */
    expect_status(fx, good_token_with(fx, -900, -SKEW, ""), JWT_EXPIRED);
    expect_status(fx, good_token_with(fx, -900, -3600 + 900, ""), JWT_EXPIRED);
    expect_status(fx, good_token_with(fx, -900, -SKEW + 1, ""), JWT_OK);
    expect_status(fx, good_token_with(fx, -900, 0, ""), JWT_OK);
}

static void test_rejects_nbf_in_future(void **state)
{
    struct fixture *fx = *state;

    expect_status(fx, good_token_with(fx, 0, 900, ",\"nbf\":1700000031"), JWT_NOT_YET_VALID);
    expect_status(fx, good_token_with(fx, 0, 900, ",\"nbf\":1700000030"), JWT_OK);
    expect_status(fx, good_token_with(fx, 0, 900, ",\"nbf\":\"soon\""), JWT_BAD_CLAIMS);
}

static void test_rejects_iat_in_future(void **state)
{
    struct fixture *fx = *state;

    expect_status(fx, good_token_with(fx, SKEW + 1, 900, ""), JWT_NOT_YET_VALID);
    expect_status(fx, good_token_with(fx, SKEW, 900, ""), JWT_OK);
}

static void test_rejects_wrong_issuer(void **state)
{
    struct fixture *fx = *state;
    char *h = header_with(fx->ks.keys[0].kid, "");
    struct jwt_expect x = EXPECTED;
    char *tok;

    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"https://evil\","
                               "\"aud\":\"tessera\",\"exp\":1700000900}"), JWT_BAD_ISSUER);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\","
                               "\"aud\":\"tessera\",\"exp\":1700000900}"), JWT_BAD_ISSUER);
    /* An expectation without an issuer fails closed. */
    tok = good_token_with(fx, 0, 900, "");
    x.iss = NULL;
    assert_int_equal(jwt_verify(&fx->ks, tok, strlen(tok), &x, NULL), JWT_BAD_ISSUER);
    free(tok);
    free(h);
}

static void test_rejects_wrong_audience(void **state)
{
    struct fixture *fx = *state;
    char *h = header_with(fx->ks.keys[0].kid, "");
    struct jwt_expect x = EXPECTED;
    char *tok;

    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\","
                               "\"aud\":\"billing\",\"exp\":1700000900}"), JWT_BAD_AUDIENCE);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\","
                               "\"aud\":[\"billing\",\"x\"],\"exp\":1700000900}"), JWT_BAD_AUDIENCE);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\","
                               "\"exp\":1700000900}"), JWT_BAD_AUDIENCE);
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\","
                               "\"aud\":[\"billing\",\"tessera\"],\"exp\":1700000900}"), JWT_OK);
    tok = good_token_with(fx, 0, 900, "");
    x.aud = NULL;
    assert_int_equal(jwt_verify(&fx->ks, tok, strlen(tok), &x, NULL), JWT_BAD_AUDIENCE);
    free(tok);
    free(h);
}

static void test_rejects_bad_claims(void **state)
{
    struct fixture *fx = *state;
    char *h = header_with(fx->ks.keys[0].kid, "");
    static const char *const payloads[] = {
        /* exp missing, a string, fractional, negative, absurd */
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":\"1700000900\"}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900.5}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":-1}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1e300}",
        /* exp beyond the lifetime bound, from now and from iat */
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000931}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"iat\":1699999000,\"exp\":1700000000}",
        /* required claims missing or mistyped */
        "{\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":\"u1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":42,\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":\"\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":\"u1\",\"org\":[\"o1\"],\"jti\":\"j\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"role\":1,\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
        "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iat\":true,\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000900}",
    };

    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
        expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h, payloads[i]), JWT_BAD_CLAIMS);
    /* At the bound itself: fine. */
    expect_status(fx, sign_raw(fx->ks.keys[0].pkey, h,
                               "{\"sub\":\"u1\",\"org\":\"o1\",\"jti\":\"j\",\"iss\":\"" ISS "\","
                               "\"aud\":\"" AUD "\",\"exp\":1700000930}"), JWT_OK);
    free(h);
}

static void test_status_strings_are_distinct(void **state)
{
    for (int a = JWT_OK; a <= JWT_INTERNAL; a++) {
        assert_non_null(jwt_status_str((enum jwt_status)a));
        for (int b = a + 1; b <= JWT_INTERNAL; b++)
            assert_string_not_equal(jwt_status_str((enum jwt_status)a), jwt_status_str((enum jwt_status)b));
    }
    assert_string_equal(jwt_status_str(JWT_BAD_SIGNATURE), "bad_signature");
}

/* What a token's holder reads: a sentence per status, each its own. */
static void test_status_messages_are_sentences(void **state)
{
    (void)state;
    for (int a = JWT_OK; a <= JWT_INTERNAL; a++) {
        const char *m = jwt_status_message((enum jwt_status)a);
        assert_non_null(m);
        assert_non_null(strchr(m, ' '));            /* words, not an identifier */
        assert_null(strchr(m, '_'));
        for (int b = a + 1; b <= JWT_INTERNAL; b++)
            assert_string_not_equal(m, jwt_status_message((enum jwt_status)b));
    }
    assert_string_equal(jwt_status_message(JWT_BAD_SIGNATURE), "the token's signature does not verify");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_sign_verify_round_trip),
        T(test_kid_is_sha256_prefix_of_public_key),
        T(test_jwks_shape),
        T(test_keygen_is_0600_and_never_overwrites),
        T(test_keyset_load_errors),
        T(test_rotation_old_key_verifies),
        T(test_private_key_open_to_group_or_others_is_refused),
        T(test_keyset_add_refuses_without_changing_the_set),
        T(test_alg_ed25519_verifies_as_eddsa_does),
        T(test_alg_names_with_another_key_type_are_refused),
        T(test_sign_alg_ed25519_is_issued_and_advertised),
        T(test_keyset_copy_holds_its_own_references),
        T(test_rotate_keeps_the_previous_public_half),
        T(test_rotate_refusals_leave_the_signing_key),
        T(test_sign_refuses_non_object_and_oversize),
        T(test_rejects_alg_none),
        T(test_rejects_hs256_signed_with_public_key),
        T(test_rejects_other_alg_spellings),
        T(test_rejects_unknown_kid),
        T(test_rejects_crit_header),
        T(test_rejects_wrong_header_typ),
        T(test_rejects_non_access_token_kind),
        T(test_ignores_embedded_and_remote_keys),
        T(test_rejects_too_big),
        T(test_rejects_wrong_part_count),
        T(test_rejects_non_json_and_non_object_parts),
        T(test_rejects_duplicate_key_in_payload),
        T(test_rejects_non_canonical_signature_encoding),
        T(test_rejects_padding),
        T(test_rejects_standard_base64_alphabet),
        T(test_rejects_bad_signature),
        T(test_rejects_modified_payload),
        T(test_rejects_signature_with_s_not_below_group_order),
        T(test_rejects_expired),
        T(test_rejects_nbf_in_future),
        T(test_rejects_iat_in_future),
        T(test_rejects_wrong_issuer),
        T(test_rejects_wrong_audience),
        T(test_rejects_bad_claims),
        T(test_status_strings_are_distinct),
        T(test_status_messages_are_sentences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
