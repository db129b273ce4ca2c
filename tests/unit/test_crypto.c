/* Unit tests for lib/crypto: known-answer vectors for the primitives, the
 * strictness of the codecs (one spelling per byte string), the keyring file
 * format, and that a sealed blob opens only unmodified, under its own AAD. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "security/crypto.h"

struct fixture {
    char dir[UNIT_PATH];
    char path[128];   /* data-key file made by crypto_keyring_write_new */
    struct crypto_keyring ring;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char errstr[128] = "";

    if (!fx)
        return -1;
    unit_tmpdir(fx->dir, "crypto");
    snprintf(fx->path, sizeof(fx->path), "%s/data.key", fx->dir);
    if (crypto_keyring_write_new(fx->path, "k1") != ERR_OK)
        return -1;
    if (crypto_keyring_load(&fx->ring, fx->path, errstr) != ERR_OK)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    crypto_keyring_cleanup(&fx->ring);
    if (unit_rmtree(fx->dir) != 0)
        return -1;
    free(fx);
    return 0;
}

static void hex_of(const uint8_t *d, size_t n, char *out)
{
    assert_int_equal(crypto_hex_encode(d, n, out, n * 2 + 1), ERR_OK);
}

/* ---- primitives ------------------------------------------------------- */

static void test_sha256_known_answer(void **state)
{
    uint8_t d[CRYPTO_SHA256_LEN];
    char hex[65];

    assert_int_equal(crypto_sha256("abc", 3, d), ERR_OK);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(crypto_sha256(NULL, 0, d), ERR_OK);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hmac_sha256_rfc4231_case2(void **state)
{
    static const char msg[] = "what do ya want for nothing?";
    uint8_t d[CRYPTO_SHA256_LEN];
    char hex[65];

    assert_int_equal(crypto_hmac_sha256("Jefe", 4, msg, sizeof(msg) - 1, d), ERR_OK);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_random_fills_and_differs(void **state)
{
    uint8_t a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };

    assert_int_equal(crypto_random(a, sizeof(a)), ERR_OK);
    assert_int_equal(crypto_random(b, sizeof(b)), ERR_OK);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(crypto_random(NULL, 0), ERR_OK);
}

static void test_ct_eq(void **state)
{
    assert_true(crypto_ct_eq("abcd", "abcd", 4));
    assert_false(crypto_ct_eq("abcd", "abce", 4));
    assert_false(crypto_ct_eq("abcd", "xbcd", 4));
    assert_true(crypto_ct_eq(NULL, NULL, 0));
}

/* ---- hex -------------------------------------------------------------- */

static void test_hex_round_trip_and_strictness(void **state)
{
    const uint8_t in[] = { 0x00, 0x7f, 0x80, 0xff, 0xab };
    uint8_t out[8];
    char hex[11], small[10];
    size_t n = 0;

    assert_int_equal(crypto_hex_encode(in, sizeof(in), hex, sizeof(hex)), ERR_OK);
    assert_string_equal(hex, "007f80ffab");
    assert_int_equal(crypto_hex_encode(in, sizeof(in), small, sizeof(small)), ERR_NOSPACE);
    assert_int_equal(crypto_hex_decode(hex, 10, out, sizeof(out), &n), ERR_OK);
    assert_int_equal(n, sizeof(in));
    assert_memory_equal(out, in, sizeof(in));
    assert_int_equal(crypto_hex_decode("007F80FFAB", 10, out, sizeof(out), &n), ERR_OK);
    assert_memory_equal(out, in, sizeof(in));

    assert_int_equal(crypto_hex_decode("abc", 3, out, sizeof(out), &n), ERR_INVAL);
    assert_int_equal(crypto_hex_decode("0g", 2, out, sizeof(out), &n), ERR_INVAL);
    assert_int_equal(crypto_hex_decode("0x00", 4, out, sizeof(out), &n), ERR_INVAL);
    assert_int_equal(crypto_hex_decode(" 0", 2, out, sizeof(out), &n), ERR_INVAL);
    assert_int_equal(crypto_hex_decode("00112233445566778899", 20, out, sizeof(out), &n), ERR_NOSPACE);
}

/* ---- base64 ----------------------------------------------------------- */

static void test_b64url_rfc4648_vectors(void **state)
{
    static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    static const char *const enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
    char out[16];
    uint8_t dec[16];
    size_t n;

    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(crypto_b64url_encode(plain[i], strlen(plain[i]), out, sizeof(out), &n), ERR_OK);
        assert_string_equal(out, enc[i]);
        assert_int_equal(n, strlen(enc[i]));
        assert_int_equal(n, CRYPTO_B64_LEN(strlen(plain[i])));
        assert_int_equal(crypto_b64url_decode(enc[i], strlen(enc[i]), dec, sizeof(dec), &n), ERR_OK);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(dec, plain[i], n);
    }
}

static void test_b64url_alphabet_is_url_safe(void **state)
{
    const uint8_t in[] = { 0xfb, 0xff, 0xbf };   /* 111110 111111 111110 111111 */
    char out[8];
    uint8_t dec[8];
    size_t n;

    assert_int_equal(crypto_b64url_encode(in, 3, out, sizeof(out), NULL), ERR_OK);
    assert_string_equal(out, "-_-_");
    assert_int_equal(crypto_b64_encode(in, 3, out, sizeof(out), NULL), ERR_OK);
    assert_string_equal(out, "+/+/");
    assert_int_equal(crypto_b64url_decode("-_-_", 4, dec, sizeof(dec), &n), ERR_OK);
    assert_memory_equal(dec, in, 3);
    assert_int_equal(crypto_b64url_decode("+/+/", 4, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("-_+/", 4, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64_decode("-_-_", 4, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64_decode("+/+/", 4, dec, sizeof(dec), &n), ERR_OK);
    assert_memory_equal(dec, in, 3);
}

static void test_b64url_rejects_padding_whitespace_and_bad_length(void **state)
{
    uint8_t dec[16];
    size_t n;

    assert_int_equal(crypto_b64url_decode("Zg==", 4, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm8=", 4, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm9v ", 5, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm\n9v", 5, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm9vY", 5, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Z", 1, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm\0v", 4, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm9vYmFy", 8, dec, 5, &n), ERR_NOSPACE);
}

static void test_b64url_rejects_nonzero_unused_bits(void **state)
{
    uint8_t dec[16];
    size_t n;

    /* "f" is Zg; Zh..Zv carry the same 8 bits with junk in the 4 unused ones. */
    assert_int_equal(crypto_b64url_decode("Zh", 2, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zv", 2, dec, sizeof(dec), &n), ERR_INVAL);
    /* "fo" is Zm8; Zm9 differs only in the 2 unused bits. */
    assert_int_equal(crypto_b64url_decode("Zm9", 3, dec, sizeof(dec), &n), ERR_INVAL);
    assert_int_equal(crypto_b64url_decode("Zm8", 3, dec, sizeof(dec), &n), ERR_OK);
}

/* For random inputs whose length leaves unused bits in the last character
 * (n % 3 != 0; a 64-byte signature among them): of the 64 possible last
 * characters, only those with zero unused bits decode (4 or 16 of them, one per
 * value of the used bits), so exactly one spells the original bytes. */
static void test_b64url_exactly_one_spelling(void **state)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t in[66], dec[66];
    char text[CRYPTO_B64_LEN(66) + 1];
    size_t lens[] = { 1, 2, 4, 5, 32, 64, 65 };

    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        size_t len = lens[li], tl, n, decodes = 0, same = 0;
        char orig;

        assert_int_equal(crypto_random(in, len), ERR_OK);
        assert_int_equal(crypto_b64url_encode(in, len, text, sizeof(text), &tl), ERR_OK);
        orig = text[tl - 1];
        for (int c = 0; c < 64; c++) {
            text[tl - 1] = alpha[c];
            if (crypto_b64url_decode(text, tl, dec, sizeof(dec), &n) != ERR_OK)
                continue;
            decodes++;
            assert_int_equal(n, len);
            if (memcmp(dec, in, len) == 0) {
                same++;
                assert_int_equal(alpha[c], orig);
            }
        }
        assert_int_equal(same, 1);
        assert_int_equal(decodes, len % 3 == 1 ? 4 : 16);
    }
}

static void test_b64_round_trip_all_lengths(void **state)
{
    uint8_t in[100], dec[100];
    char text[CRYPTO_B64_LEN(100) + 1];

    assert_int_equal(crypto_random(in, sizeof(in)), ERR_OK);
    for (size_t len = 0; len <= sizeof(in); len++) {
        size_t tl, n;
        assert_int_equal(crypto_b64url_encode(in, len, text, sizeof(text), &tl), ERR_OK);
        assert_int_equal(crypto_b64url_decode(text, tl, dec, sizeof(dec), &n), ERR_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, in, len);
        assert_int_equal(crypto_b64_encode(in, len, text, sizeof(text), &tl), ERR_OK);
        assert_int_equal(crypto_b64_decode(text, tl, dec, sizeof(dec), &n), ERR_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, in, len);
        assert_true(n <= CRYPTO_B64_DECODED_MAX(tl));
    }
}

/* ---- keyring file ----------------------------------------------------- */

static void test_keyring_write_new_is_0600_and_never_overwrites(void **state)
{
    struct fixture *fx = *state;
    struct stat st;

    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(crypto_keyring_write_new(fx->path, "k2"), ERR_CONFLICT);
    assert_int_equal(fx->ring.n, 1);
    assert_string_equal(fx->ring.keys[0].kid, "k1");
}

static void test_keyring_write_new_rejects_bad_kid(void **state)
{
    struct fixture *fx = *state;
    char p[160];

    snprintf(p, sizeof(p), "%s/bad.key", fx->dir);
    assert_int_equal(crypto_keyring_write_new(p, "has space"), ERR_INVAL);
    assert_int_equal(crypto_keyring_write_new(p, ""), ERR_INVAL);
    assert_int_equal(crypto_keyring_write_new(p, "abcdefghijklmnopq"), ERR_INVAL);
    assert_int_equal(access(p, F_OK), -1);
}

static void test_keyring_load_comments_order_and_rotation(void **state)
{
    struct fixture *fx = *state;
    struct crypto_keyring ring;
    char p[160], errstr[128] = "";

    snprintf(p, sizeof(p), "%s/two.key", fx->dir);
    unit_write_text(p, "# rotated 2024-06\n"
                  "\n"
                  "  k2\t0000000000000000000000000000000000000000000000000000000000000001  \r\n"
                  "   # old key, kept until every row is re-sealed\n"
                  "k1 FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\n");
    assert_int_equal(crypto_keyring_load(&ring, p, errstr), ERR_OK);
    assert_int_equal(ring.n, 2);
    assert_string_equal(ring.keys[0].kid, "k2");
    assert_int_equal(ring.keys[0].key[31], 1);
    assert_string_equal(ring.keys[1].kid, "k1");
    assert_int_equal(ring.keys[1].key[0], 0xff);
    crypto_keyring_cleanup(&ring);
    assert_int_equal(ring.n, 0);
}

static void expect_load_fails(const char *dir, const char *text, int want, const char *needle)
{
    struct crypto_keyring ring;
    char p[160], errstr[128] = "";

    snprintf(p, sizeof(p), "%s/bad.key", dir);
    unit_write_text(p, text);
    assert_int_equal(crypto_keyring_load(&ring, p, errstr), want);
    assert_int_equal(ring.n, 0);
    assert_non_null(strstr(errstr, needle));
    unlink(p);
}

static void test_keyring_load_rejects_bad_files(void **state)
{
    struct fixture *fx = *state;
    struct crypto_keyring ring;
    char errstr[128] = "";
    const char *k = "0000000000000000000000000000000000000000000000000000000000000000";
    char text[1024];

    expect_load_fails(fx->dir, "", ERR_INVAL, "no key");
    expect_load_fails(fx->dir, "# only a comment\n", ERR_INVAL, "no key");
    expect_load_fails(fx->dir, "k1 00\n", ERR_INVAL, ":1:");
    expect_load_fails(fx->dir, "# c\nk1 zz00000000000000000000000000000000000000000000000000000000000000\n",
                      ERR_INVAL, ":2:");
    snprintf(text, sizeof(text), "k1 %s extra\n", k);
    expect_load_fails(fx->dir, text, ERR_INVAL, ":1:");
    snprintf(text, sizeof(text), "k/1 %s\n", k);
    expect_load_fails(fx->dir, text, ERR_INVAL, ":1:");
    snprintf(text, sizeof(text), "%s\n", k);
    expect_load_fails(fx->dir, text, ERR_INVAL, ":1:");
    snprintf(text, sizeof(text), "k1 %s\nk1 %s\n", k, k);
    expect_load_fails(fx->dir, text, ERR_INVAL, "duplicate");
    text[0] = '\0';
    for (int i = 0; i <= CRYPTO_KEYRING_MAX; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "k%d %s\n", i, k);
    expect_load_fails(fx->dir, text, ERR_NOSPACE, "more than");
    assert_int_equal(crypto_keyring_load(&ring, "/nonexistent/data.key", errstr), ERR_IO);
    assert_non_null(strstr(errstr, "/nonexistent/data.key"));
}

/* ---- seal / open ------------------------------------------------------ */

static const char AAD[] = "org:3f1c|users:42|email";
static const char PT[] = "alice@example.com";

static void test_seal_open_round_trip(void **state)
{
    struct fixture *fx = *state;
    uint8_t *blob = NULL, *pt = NULL;
    size_t bloblen = 0, ptlen = 0;

    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &blob, &bloblen), ERR_OK);
    assert_int_equal(bloblen, 1 + 1 + 2 + CRYPTO_IV_LEN + strlen(PT) + CRYPTO_TAG_LEN);
    assert_int_equal(blob[0], CRYPTO_SEAL_VERSION);
    assert_int_equal(blob[1], 2);
    assert_memory_equal(blob + 2, "k1", 2);
    assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD), blob, bloblen, &pt, &ptlen), ERR_OK);
    assert_int_equal(ptlen, strlen(PT));
    assert_string_equal((char *)pt, PT);
    free(pt);
    free(blob);

    assert_int_equal(crypto_seal(&fx->ring, NULL, 0, NULL, 0, &blob, &bloblen), ERR_OK);
    assert_int_equal(crypto_open(&fx->ring, NULL, 0, blob, bloblen, &pt, &ptlen), ERR_OK);
    assert_int_equal(ptlen, 0);
    assert_string_equal((char *)pt, "");
    free(pt);
    free(blob);
}

static void test_seal_uses_a_fresh_iv_each_time(void **state)
{
    struct fixture *fx = *state;
    uint8_t *a = NULL, *b = NULL;
    size_t alen, blen;
    const size_t iv_at = 2 + 2;

    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &a, &alen), ERR_OK);
    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &b, &blen), ERR_OK);
    assert_int_equal(alen, blen);
    assert_memory_not_equal(a + iv_at, b + iv_at, CRYPTO_IV_LEN);
    assert_memory_not_equal(a + iv_at + CRYPTO_IV_LEN, b + iv_at + CRYPTO_IV_LEN, alen - iv_at - CRYPTO_IV_LEN);
    free(a);
    free(b);
}

static void test_open_fails_on_wrong_aad(void **state)
{
    struct fixture *fx = *state;
    static const char other_row[] = "org:3f1c|users:43|email";
    static const char other_org[] = "org:9999|users:42|email";
    uint8_t *blob = NULL, *pt = (uint8_t *)"sentinel";
    size_t bloblen, ptlen = 7;

    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &blob, &bloblen), ERR_OK);
    assert_int_equal(crypto_open(&fx->ring, other_row, strlen(other_row), blob, bloblen, &pt, &ptlen), ERR_INVAL);
    assert_null(pt);
    assert_int_equal(ptlen, 0);
    assert_int_equal(crypto_open(&fx->ring, other_org, strlen(other_org), blob, bloblen, &pt, &ptlen), ERR_INVAL);
    assert_int_equal(crypto_open(&fx->ring, NULL, 0, blob, bloblen, &pt, &ptlen), ERR_INVAL);
    assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD) - 1, blob, bloblen, &pt, &ptlen), ERR_INVAL);
    free(blob);
}

static void test_open_fails_on_any_flipped_bit(void **state)
{
    struct fixture *fx = *state;
    uint8_t *blob = NULL, *pt = NULL;
    size_t bloblen, ptlen;

    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &blob, &bloblen), ERR_OK);
    for (size_t i = 0; i < bloblen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            int rc;
            blob[i] ^= (uint8_t)(1u << bit);
            rc = crypto_open(&fx->ring, AAD, strlen(AAD), blob, bloblen, &pt, &ptlen);
            /* A flipped kid names a key we lack; everything else is a plain failure. */
            assert_true(rc == ERR_INVAL || (rc == ERR_NOTFOUND && i >= 1 && i < 4));
            assert_null(pt);
            blob[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD), blob, bloblen, &pt, &ptlen), ERR_OK);
    free(pt);
    free(blob);
}

static void test_open_insists_on_full_tag(void **state)
{
    struct fixture *fx = *state;
    uint8_t *blob = NULL, *pt = NULL;
    size_t bloblen, ptlen;

    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &blob, &bloblen), ERR_OK);
    /* A blob cut short by 4 bytes: a reader that took "whatever is left" as the
     * tag would now check a 12-byte tag over a shorter ciphertext. */
    for (size_t cut = 1; cut <= CRYPTO_TAG_LEN; cut++)
        assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD), blob, bloblen - cut, &pt, &ptlen), ERR_INVAL);
    assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD), blob, 3, &pt, &ptlen), ERR_INVAL);
    assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD), blob, 0, &pt, &ptlen), ERR_INVAL);
    free(blob);
}

static void test_open_with_rotated_ring(void **state)
{
    struct fixture *fx = *state;
    struct crypto_keyring rotated, fresh;
    uint8_t *blob = NULL, *blob2 = NULL, *pt = NULL;
    size_t bloblen, blob2len, ptlen;
    char p[160], hex[65], text[256], errstr[128] = "";

    assert_int_equal(crypto_seal(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &blob, &bloblen), ERR_OK);

    /* New key first, the old one kept: old blobs open, new ones use k2. */
    hex_of(fx->ring.keys[0].key, CRYPTO_KEY_LEN, hex);
    snprintf(text, sizeof(text), "k2 %s\nk1 %s\n",
             "1111111111111111111111111111111111111111111111111111111111111111", hex);
    snprintf(p, sizeof(p), "%s/rotated.key", fx->dir);
    unit_write_text(p, text);
    assert_int_equal(crypto_keyring_load(&rotated, p, errstr), ERR_OK);
    assert_int_equal(crypto_open(&rotated, AAD, strlen(AAD), blob, bloblen, &pt, &ptlen), ERR_OK);
    assert_string_equal((char *)pt, PT);
    free(pt);
    pt = NULL;
    assert_int_equal(crypto_seal(&rotated, AAD, strlen(AAD), PT, strlen(PT), &blob2, &blob2len), ERR_OK);
    assert_memory_equal(blob2 + 2, "k2", 2);
    /* The old ring has no k2. */
    assert_int_equal(crypto_open(&fx->ring, AAD, strlen(AAD), blob2, blob2len, &pt, &ptlen), ERR_NOTFOUND);

    /* A ring with a different key under the same kid opens nothing. */
    snprintf(p, sizeof(p), "%s/fresh.key", fx->dir);
    assert_int_equal(crypto_keyring_write_new(p, "k1"), ERR_OK);
    assert_int_equal(crypto_keyring_load(&fresh, p, errstr), ERR_OK);
    assert_int_equal(crypto_open(&fresh, AAD, strlen(AAD), blob, bloblen, &pt, &ptlen), ERR_INVAL);

    crypto_keyring_cleanup(&fresh);
    crypto_keyring_cleanup(&rotated);
    free(blob2);
    free(blob);
}

static void test_seal_text_round_trip_and_tamper(void **state)
{
    struct fixture *fx = *state;
    char *text = NULL;
    uint8_t *pt = NULL;
    size_t ptlen, tl;

    assert_int_equal(crypto_seal_text(&fx->ring, AAD, strlen(AAD), PT, strlen(PT), &text), ERR_OK);
    tl = strlen(text);
    assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), tl);
    assert_int_equal(crypto_open_text(&fx->ring, AAD, strlen(AAD), text, tl, &pt, &ptlen), ERR_OK);
    assert_string_equal((char *)pt, PT);
    free(pt);
    pt = NULL;

    text[tl / 2] = text[tl / 2] == 'A' ? 'B' : 'A';
    assert_int_equal(crypto_open_text(&fx->ring, AAD, strlen(AAD), text, tl, &pt, &ptlen), ERR_INVAL);
    assert_null(pt);
    assert_int_equal(crypto_open_text(&fx->ring, AAD, strlen(AAD), "not base64!", 11, &pt, &ptlen), ERR_INVAL);
    assert_int_equal(crypto_open_text(&fx->ring, AAD, strlen(AAD), "", 0, &pt, &ptlen), ERR_INVAL);
    free(text);
}

static void test_seal_caps_and_empty_ring(void **state)
{
    struct fixture *fx = *state;
    struct crypto_keyring empty;
    uint8_t *blob = (uint8_t *)"x";
    size_t bloblen;

    memset(&empty, 0, sizeof(empty));
    assert_int_equal(crypto_seal(&empty, NULL, 0, PT, strlen(PT), &blob, &bloblen), ERR_INVAL);
    assert_null(blob);
    assert_int_equal(crypto_seal(&fx->ring, NULL, 0, PT, (size_t)CRYPTO_SEAL_MAX + 1, &blob, &bloblen), ERR_TOOBIG);
}

/* ---- blind index ------------------------------------------------------ */

static void test_blind_index_is_hmac_under_derived_key(void **state)
{
    struct fixture *fx = *state;
    char idx[65], again[65], other[65], raw_hex[65], want_hex[65];
    uint8_t derived[32], mac[32];
    EVP_KDF *kdf;
    EVP_KDF_CTX *kctx;
    OSSL_PARAM params[4];
    static const char label[] = "tessera blind index v1";

    assert_int_equal(crypto_blind_index(&fx->ring, "alice@example.com", idx), ERR_OK);
    assert_int_equal(strlen(idx), 64);
    assert_int_equal(crypto_blind_index(&fx->ring, "alice@example.com", again), ERR_OK);
    assert_string_equal(idx, again);
    assert_int_equal(crypto_blind_index(&fx->ring, "bob@example.com", other), ERR_OK);
    assert_string_not_equal(idx, other);

    /* Recompute independently: HMAC-SHA256 under HKDF-SHA256(key, label). */
    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    assert_non_null(kdf);
    kctx = EVP_KDF_CTX_new(kdf);
    assert_non_null(kctx);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, fx->ring.keys[0].key, 32);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, sizeof(label) - 1);
    params[3] = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_KDF_derive(kctx, derived, sizeof(derived), params), 1);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    assert_int_equal(crypto_hmac_sha256(derived, 32, "alice@example.com", 17, mac), ERR_OK);
    hex_of(mac, 32, want_hex);
    assert_string_equal(idx, want_hex);

    /* And the data key itself is not the HMAC key. */
    assert_int_equal(crypto_hmac_sha256(fx->ring.keys[0].key, 32, "alice@example.com", 17, mac), ERR_OK);
    hex_of(mac, 32, raw_hex);
    assert_string_not_equal(idx, raw_hex);
}

static void test_blind_index_by_kid_during_rotation(void **state)
{
    struct fixture *fx = *state;
    struct crypto_keyring rotated;
    char p[160], hex[65], text[256], errstr[128] = "";
    char old_idx[65], via_kid[65], new_idx[65];

    hex_of(fx->ring.keys[0].key, CRYPTO_KEY_LEN, hex);
    snprintf(text, sizeof(text), "k2 %s\nk1 %s\n",
             "2222222222222222222222222222222222222222222222222222222222222222", hex);
    snprintf(p, sizeof(p), "%s/rot-bidx.key", fx->dir);
    unit_write_text(p, text);
    assert_int_equal(crypto_keyring_load(&rotated, p, errstr), ERR_OK);

    assert_int_equal(crypto_blind_index(&fx->ring, "alice@example.com", old_idx), ERR_OK);
    assert_int_equal(crypto_blind_index_kid(&rotated, "k1", "alice@example.com", via_kid), ERR_OK);
    assert_string_equal(old_idx, via_kid);
    assert_int_equal(crypto_blind_index(&rotated, "alice@example.com", new_idx), ERR_OK);
    assert_string_not_equal(old_idx, new_idx);
    assert_int_equal(crypto_blind_index_kid(&rotated, "k9", "alice@example.com", via_kid), ERR_NOTFOUND);
    crypto_keyring_cleanup(&rotated);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_answer),
        cmocka_unit_test(test_hmac_sha256_rfc4231_case2),
        cmocka_unit_test(test_random_fills_and_differs),
        cmocka_unit_test(test_ct_eq),
        cmocka_unit_test(test_hex_round_trip_and_strictness),
        cmocka_unit_test(test_b64url_rfc4648_vectors),
        cmocka_unit_test(test_b64url_alphabet_is_url_safe),
        cmocka_unit_test(test_b64url_rejects_padding_whitespace_and_bad_length),
        cmocka_unit_test(test_b64url_rejects_nonzero_unused_bits),
        cmocka_unit_test(test_b64url_exactly_one_spelling),
        cmocka_unit_test(test_b64_round_trip_all_lengths),
        cmocka_unit_test_setup_teardown(test_keyring_write_new_is_0600_and_never_overwrites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_write_new_rejects_bad_kid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_load_comments_order_and_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring_load_rejects_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_open_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_uses_a_fresh_iv_each_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_fails_on_wrong_aad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_fails_on_any_flipped_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_insists_on_full_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_with_rotated_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_text_round_trip_and_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_caps_and_empty_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blind_index_is_hmac_under_derived_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blind_index_by_kid_during_rotation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
