/* Conformance vectors of Project Wycheproof (tests/vectors/, Apache 2.0: its
 * LICENSE beside them) through tessera's own wrappers, not through OpenSSL
 * directly:
 *  - Ed25519: every case through jwt_verify_signature, the signature step
 *    that jwt_verify runs for every token, with the group's public key loaded
 *    by the JWT key loader from the vectors' PEM as a verify key.
 *  - AES-GCM: the cases of tessera's PII format (256-bit key, 96-bit IV,
 *    128-bit tag) through the cipher step of crypto_seal/crypto_open, with the
 *    case's key loaded by the keyring from a data-key file; every other case
 *    is counted, and a key of another size is shown to be refused by the
 *    keyring's file format.
 * The files are read from tests/vectors/ under the working folder
 * (tests/run.sh runs unit tests from the repository's root). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include <cJSON.h>

#include "security/crypto.h"
#include "security/jwt.h"

#define VECTORS_DIR "tests/vectors"
#define ED25519_FILE VECTORS_DIR "/wycheproof-ed25519_test.json"
#define AES_GCM_FILE VECTORS_DIR "/wycheproof-aes_gcm_test.json"

/* ---- reading the vectors ------------------------------------------------ */

/* Returns owned (cJSON_Delete): the parsed file; fails the case when it is
 * missing or not JSON. */
static cJSON *load_vectors(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long n;
    cJSON *root;

    if (f == NULL)
        fail_msg("%s: %s (run from the repository's root, as tests/run.sh does)", path,
                 strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    text = malloc((size_t)n);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    root = cJSON_ParseWithLength(text, (size_t)n);
    free(text);
    if (root == NULL)
        fail_msg("%s: not JSON", path);
    return root;
}

static const char *str_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!cJSON_IsString(v))
        fail_msg("vector member \"%s\" is not a string", key);
    return v->valuestring;
}

static int int_of(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!cJSON_IsNumber(v))
        fail_msg("vector member \"%s\" is not a number", key);
    return v->valueint;
}

/* Returns owned (free()): the bytes of a hex member (never NULL, even for ""). */
static uint8_t *hex_of(const cJSON *obj, const char *key, size_t *len)
{
    const char *hex = str_of(obj, key);
    size_t n = strlen(hex);
    uint8_t *out = malloc(n / 2 + 1);

    assert_non_null(out);
    if (crypto_hex_decode(hex, n, out, n / 2 + 1, len) != ERR_OK)
        fail_msg("vector member \"%s\" is not hex", key);
    return out;
}

/* "valid" → true, "invalid" → false; Wycheproof's "acceptable" appears in
 * neither file and would fail the case rather than be guessed at. */
static bool expect_valid(const cJSON *t)
{
    const char *r = str_of(t, "result");

    if (strcmp(r, "valid") == 0)
        return true;
    if (strcmp(r, "invalid") == 0)
        return false;
    fail_msg("tcId %d: result \"%s\" is neither valid nor invalid", int_of(t, "tcId"), r);
    return false;
}

static void flags_of(const cJSON *t, char *out, size_t outsz)
{
    const cJSON *f;
    size_t o = 0;

    out[0] = '\0';
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(t, "flags"))
        if (cJSON_IsString(f) && o < outsz)
            o += (size_t)snprintf(out + o, outsz - o, "%s%s", o ? "," : "", f->valuestring);
}

/* ---- Ed25519 through the JWT verify path -------------------------------- */

struct ed_counts {
    int cases, valid_ok, invalid_ok, failed;
};

static void ed25519_group(const char *dir, const char *signing_key, int gno, const cJSON *g,
                          struct ed_counts *c)
{
    struct jwt_keyset ks;
    char path[UNIT_PATH + 32], errstr[128] = "";
    size_t pklen = 0;
    uint8_t *pk = hex_of(cJSON_GetObjectItemCaseSensitive(g, "publicKey"), "pk", &pklen);
    const cJSON *t;

    /* As a deployment's verify_keys: after the signing key, a public PEM. */
    snprintf(path, sizeof path, "%s/group%d.pub.pem", dir, gno);
    unit_write_text(path, str_of(g, "publicKeyPem"));
    memset(&ks, 0, sizeof ks);
    if (jwt_keyset_add(&ks, signing_key, errstr) != ERR_OK || jwt_keyset_add(&ks, path, errstr) != ERR_OK)
        fail_msg("group %d: the key loader refused the public key: %s", gno, errstr);
    assert_int_equal(ks.n, 2);
    assert_false(ks.keys[1].can_sign);
    /* the loader read the key the vectors mean */
    assert_int_equal(pklen, sizeof ks.keys[1].pub);
    assert_memory_equal(ks.keys[1].pub, pk, pklen);

    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(g, "tests")) {
        size_t msglen = 0, siglen = 0;
        uint8_t *msg = hex_of(t, "msg", &msglen), *sig = hex_of(t, "sig", &siglen);
        bool want = expect_valid(t);
        enum jwt_status st = jwt_verify_signature(&ks.keys[1], msg, msglen, sig, siglen);
        char flags[128];

        c->cases++;
        if (want && st == JWT_OK) {
            c->valid_ok++;
        } else if (!want && st == JWT_BAD_SIGNATURE) {
            c->invalid_ok++;
        } else {
            flags_of(t, flags, sizeof flags);
            print_message("# ed25519 tcId %d (%s, %s): want %s, got %s\n", int_of(t, "tcId"),
                          flags, str_of(t, "comment"), want ? "ok" : "bad_signature",
                          jwt_status_str(st));
            c->failed++;
        }
        free(msg);
        free(sig);
    }
    jwt_keyset_free(&ks);
    free(pk);
}

/* Every case: a valid signature verifies, every invalid one (S >= L, a
 * non-canonical R or key, truncated or extended signatures, edge values) is
 * refused as a bad signature. */
static void test_ed25519_every_case_through_the_jwt_signature_check(void **state)
{
    cJSON *root = load_vectors(ED25519_FILE);
    struct ed_counts c = { 0 };
    char dir[UNIT_PATH], signing[UNIT_PATH + 16];
    const cJSON *g;
    int gno = 0, want;

    (void)state;
    assert_string_equal(str_of(root, "algorithm"), "EDDSA");
    unit_tmpdir(dir, "wycheproof");
    snprintf(signing, sizeof signing, "%s/jwt.pem", dir);
    assert_int_equal(jwt_keygen(signing), ERR_OK);
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(root, "testGroups"))
        ed25519_group(dir, signing, ++gno, g, &c);
    print_message("# ed25519: %d cases: %d valid accepted, %d invalid rejected, %d wrong\n", c.cases,
                  c.valid_ok, c.invalid_ok, c.failed);
    want = int_of(root, "numberOfTests");
    cJSON_Delete(root);
    assert_int_equal(unit_rmtree(dir), 0);
    if (c.failed)
        fail_msg("%d of %d Ed25519 cases judged wrongly", c.failed, c.cases);
    assert_int_equal(c.cases, want);
}

/* ---- AES-GCM through the PII seal/open wrapper -------------------------- */

struct gcm_counts {
    int cases, valid_opened, valid_sealed, invalid_refused, blob_round_trips;
    int key_refused;     /* 128/192-bit keys: the data-key file takes 256-bit keys only */
    int iv_skipped;      /* 256-bit keys under an IV of another length: no tessera call takes one */
    int failed;
};

/* The ring a deployment would load from a data-key file holding `key`;
 * ERR_INVAL when the file format refuses it. */
static int ring_of(const char *dir, const char *key_hex, struct crypto_keyring *ring)
{
    char path[UNIT_PATH + 16], line[256], errstr[128] = "";

    snprintf(path, sizeof path, "%s/data.key", dir);
    snprintf(line, sizeof line, "# a Wycheproof case's key\nwp %s\n", key_hex);
    unit_write_text(path, line);
    return crypto_keyring_load(ring, path, errstr);
}

static void gcm_fail(struct gcm_counts *c, const cJSON *t, const char *what)
{
    char flags[128];

    flags_of(t, flags, sizeof flags);
    print_message("# aes-gcm tcId %d (%s, %s): %s\n", int_of(t, "tcId"), flags, str_of(t, "comment"),
                  what);
    c->failed++;
}

/* One case of tessera's format: open must return exactly msg or refuse,
 * seal under the case's IV must give exactly ct and tag for a valid case
 * (and never the invalid case's pair); a valid case's key, aad and msg also
 * make a full blob round trip through crypto_seal and crypto_open. */
static void gcm_case(const char *dir, const cJSON *t, struct gcm_counts *c)
{
    struct crypto_keyring ring;
    size_t ivlen = 0, aadlen = 0, msglen = 0, ctlen = 0, taglen = 0, ptlen = 0, bloblen = 0;
    uint8_t *iv = hex_of(t, "iv", &ivlen), *aad = hex_of(t, "aad", &aadlen);
    uint8_t *msg = hex_of(t, "msg", &msglen), *ct = hex_of(t, "ct", &ctlen);
    uint8_t *tag = hex_of(t, "tag", &taglen);
    uint8_t *pt = NULL, *blob = NULL, *out = malloc(msglen + 1), sealed_tag[CRYPTO_TAG_LEN];
    bool want = expect_valid(t);
    int rc;

    assert_non_null(out);
    assert_int_equal(ivlen, CRYPTO_IV_LEN);
    assert_int_equal(taglen, CRYPTO_TAG_LEN);
    assert_int_equal(ring_of(dir, str_of(t, "key"), &ring), ERR_OK);
    c->cases++;

    rc = crypto_gcm_open(&ring, iv, aad, aadlen, ct, ctlen, tag, &pt, &ptlen);
    if (want && (rc != ERR_OK || ptlen != msglen || memcmp(pt, msg, msglen) != 0))
        gcm_fail(c, t, rc != ERR_OK ? "open refused a valid case" : "open returned another message");
    else if (!want && (rc != ERR_INVAL || pt != NULL))
        gcm_fail(c, t, rc == ERR_OK ? "open accepted an invalid case" : "open failed, not as a refusal");
    else if (want)
        c->valid_opened++;
    else
        c->invalid_refused++;
    free(pt);
    pt = NULL;

    rc = crypto_gcm_seal_iv(&ring, iv, aad, aadlen, msg, msglen, out, sealed_tag);
    if (rc != ERR_OK)
        gcm_fail(c, t, "seal failed");
    else if (want && (ctlen != msglen || memcmp(out, ct, ctlen) != 0 || memcmp(sealed_tag, tag, taglen) != 0))
        gcm_fail(c, t, "seal under the case's IV gave another ct or tag");
    else if (!want && ctlen == msglen && memcmp(out, ct, ctlen) == 0 && memcmp(sealed_tag, tag, taglen) == 0)
        gcm_fail(c, t, "seal made the invalid case's ct and tag");
    else if (want)
        c->valid_sealed++;

    if (want) {
        if (crypto_seal(&ring, aad, aadlen, msg, msglen, &blob, &bloblen) != ERR_OK ||
            crypto_open(&ring, aad, aadlen, blob, bloblen, &pt, &ptlen) != ERR_OK || ptlen != msglen ||
            memcmp(pt, msg, msglen) != 0)
            gcm_fail(c, t, "a blob sealed with the case's key, aad and msg does not open to msg");
        else
            c->blob_round_trips++;
        free(pt);
        free(blob);
    }
    crypto_keyring_cleanup(&ring);
    free(iv);
    free(aad);
    free(msg);
    free(ct);
    free(tag);
    free(out);
}

/* Tessera seals PII with AES-256-GCM, a 96-bit IV and a 128-bit tag, and
 * nothing else (DESIGN §10): those groups run in full. The others are not
 * skipped silently: a 128- or 192-bit key is refused by the data-key file
 * format (64 hex digits) before any cipher call, which this checks for every
 * such case; a 256-bit key under an IV of another length (0 to 2056 bits) has
 * no way in, as both the blob layout and every call take exactly 12 bytes of
 * IV: those cases are counted as skipped, with this reason. */
static void test_aes_gcm_pii_format_through_seal_and_open(void **state)
{
    cJSON *root = load_vectors(AES_GCM_FILE);
    struct gcm_counts c = { 0 };
    char dir[UNIT_PATH];
    const cJSON *g, *t;
    int total = 0, other_keys = 0, want;

    (void)state;
    assert_string_equal(str_of(root, "algorithm"), "AES-GCM");
    unit_tmpdir(dir, "wycheproof");
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(root, "testGroups")) {
        int key_bits = int_of(g, "keySize"), iv_bits = int_of(g, "ivSize"), tag_bits = int_of(g, "tagSize");

        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(g, "tests")) {
            struct crypto_keyring ring;

            total++;
            if (key_bits == CRYPTO_KEY_LEN * 8 && iv_bits == CRYPTO_IV_LEN * 8 &&
                tag_bits == CRYPTO_TAG_LEN * 8) {
                gcm_case(dir, t, &c);
            } else if (key_bits != CRYPTO_KEY_LEN * 8) {
                other_keys++;
                if (ring_of(dir, str_of(t, "key"), &ring) == ERR_INVAL)
                    c.key_refused++;
                else
                    gcm_fail(&c, t, "the keyring took a key that is not 256 bits");
            } else {
                c.iv_skipped++;
            }
        }
    }
    print_message("# aes-gcm 256/96/128 (tessera's format): %d cases: %d valid opened to msg, %d valid "
                  "sealed to ct+tag, %d blob round trips, %d invalid refused, %d wrong\n",
                  c.cases, c.valid_opened, c.valid_sealed, c.blob_round_trips, c.invalid_refused, c.failed);
    print_message("# aes-gcm other groups: %d cases with a 128/192-bit key refused by the keyring; "
                  "%d cases skipped: a 256-bit key with an IV of another length than 96 bits, which "
                  "no tessera call can take\n", c.key_refused, c.iv_skipped);
    want = int_of(root, "numberOfTests");
    cJSON_Delete(root);
    assert_int_equal(unit_rmtree(dir), 0);
    if (c.failed)
        fail_msg("%d AES-GCM cases judged wrongly", c.failed);
    assert_int_equal(total, want);
    assert_int_equal(c.cases + other_keys + c.iv_skipped, total);
    assert_true(c.cases > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_every_case_through_the_jwt_signature_check),
        cmocka_unit_test(test_aes_gcm_pii_format_through_seal_and_open),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
