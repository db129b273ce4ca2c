/* Unit tests for lib/password. Most run at ln=10 (1024 iterations) for speed;
 * one runs the default cost (ln=17, 128 MiB) to prove maxmem is passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"

#include "security/password.h"

static const struct password_cost FAST = { .ln = 10, .r = 8, .p = 1 };
static const char PW[] = "correct horse battery staple";

/* Made independently (Python's hashlib.scrypt, salt bytes 0..15). */
static const char KNOWN_PHC[] =
    "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU";

static void test_hash_format(void **state)
{
    char *phc = NULL;
    const char *salt, *hash;

    assert_int_equal(password_hash(PW, strlen(PW), &FAST, &phc), ERR_OK);
    assert_non_null(phc);
    assert_memory_equal(phc, "$scrypt$ln=10,r=8,p=1$", 22);
    salt = phc + 22;
    hash = strchr(salt, '$');
    assert_non_null(hash);
    assert_int_equal(hash - salt, 22);             /* 16 bytes, unpadded */
    assert_int_equal(strlen(hash + 1), 43);        /* 32 bytes, unpadded */
    assert_null(strchr(salt, '='));   /* no padding in salt or hash */
    free(phc);
}

static void test_hash_then_verify(void **state)
{
    char *phc = NULL;
    bool rehash = true;

    assert_int_equal(password_hash(PW, strlen(PW), &FAST, &phc), ERR_OK);
    assert_int_equal(password_verify(PW, strlen(PW), phc, &FAST, &rehash), ERR_OK);
    assert_false(rehash);
    assert_int_equal(password_verify(PW, strlen(PW), phc, &FAST, NULL), ERR_OK);
    free(phc);
}

static void test_wrong_password_is_unauthorized(void **state)
{
    char *phc = NULL;
    bool rehash = true;

    assert_int_equal(password_hash(PW, strlen(PW), &FAST, &phc), ERR_OK);
    assert_int_equal(password_verify("correct horse battery stapl", strlen(PW) - 1, phc, &FAST, &rehash),
                     ERR_UNAUTHORIZED);
    assert_false(rehash);
    assert_int_equal(password_verify("Correct horse battery staple", strlen(PW), phc, &FAST, NULL),
                     ERR_UNAUTHORIZED);
    assert_int_equal(password_verify("", 0, phc, &FAST, NULL), ERR_UNAUTHORIZED);
    /* Bytes after len do not count. */
    assert_int_equal(password_verify("correct horse battery staple!", strlen(PW), phc, &FAST, NULL), ERR_OK);
    free(phc);
}

static void test_salt_is_fresh(void **state)
{
    char *a = NULL, *b = NULL;

    assert_int_equal(password_hash(PW, strlen(PW), &FAST, &a), ERR_OK);
    assert_int_equal(password_hash(PW, strlen(PW), &FAST, &b), ERR_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(password_verify(PW, strlen(PW), b, &FAST, NULL), ERR_OK);
    free(a);
    free(b);
}

static void test_verifies_known_vector(void **state)
{
    assert_int_equal(password_verify(PW, strlen(PW), KNOWN_PHC, &FAST, NULL), ERR_OK);
    assert_int_equal(password_verify("wrong", 5, KNOWN_PHC, &FAST, NULL), ERR_UNAUTHORIZED);
}

static void test_needs_rehash_when_weaker_than_configured(void **state)
{
    char *phc = NULL;
    bool rehash = false;
    struct password_cost stronger_ln = { 11, 8, 1 }, stronger_r = { 10, 9, 1 };
    struct password_cost stronger_p = { 10, 8, 2 }, weaker = { 9, 4, 1 };

    assert_int_equal(password_hash(PW, strlen(PW), &FAST, &phc), ERR_OK);
    assert_int_equal(password_verify(PW, strlen(PW), phc, &stronger_ln, &rehash), ERR_OK);
    assert_true(rehash);
    rehash = false;
    assert_int_equal(password_verify(PW, strlen(PW), phc, &stronger_r, &rehash), ERR_OK);
    assert_true(rehash);
    rehash = false;
    assert_int_equal(password_verify(PW, strlen(PW), phc, &stronger_p, &rehash), ERR_OK);
    assert_true(rehash);
    assert_int_equal(password_verify(PW, strlen(PW), phc, &weaker, &rehash), ERR_OK);
    assert_false(rehash);
    /* NULL configured means the default (ln=17): ln=10 is weaker. */
    assert_int_equal(password_verify(PW, strlen(PW), phc, NULL, &rehash), ERR_OK);
    assert_true(rehash);
    /* A mismatch never asks for a rehash. */
    assert_int_equal(password_verify("nope", 4, phc, &stronger_ln, &rehash), ERR_UNAUTHORIZED);
    assert_false(rehash);
    free(phc);
}

static void test_malformed_phc_is_inval(void **state)
{
    static const char *const bad[] = {
        "",
        "$scrypt$",
        "scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$argon2id$v=19$m=65536,t=3,p=4$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=010,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$r=8,ln=10,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=-1,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=0,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=40,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=24,r=32,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=0,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=99$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw==$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU=",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S_AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRV",
        "$scrypt$ln=10,r=8,p=1$AAECAw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGh",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU$",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU ",
        "$scrypt$ln=10,r=8,p=1 $AAECAwQFBgcICQoLDA0ODw$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
        "$scrypt$ln=10,r=8,p=1$$mp90zEQd5XGhjEv4WArVH4Z0XRSzkGWtJK2S/AXJlRU",
    };
    bool rehash = true;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = password_verify(PW, strlen(PW), bad[i], &FAST, &rehash);
        if (rc != ERR_INVAL)
            fail_msg("%s: got %d, want ERR_INVAL", bad[i], rc);
        assert_false(rehash);
    }
    assert_int_equal(password_verify(PW, strlen(PW), NULL, &FAST, NULL), ERR_INVAL);
}

static void test_length_cap(void **state)
{
    char *big = malloc(PASSWORD_MAX_LEN + 1), *phc = NULL;

    assert_non_null(big);
    memset(big, 'x', PASSWORD_MAX_LEN + 1);
    assert_int_equal(password_hash(big, PASSWORD_MAX_LEN + 1, &FAST, &phc), ERR_TOOBIG);
    assert_null(phc);
    assert_int_equal(password_verify(big, PASSWORD_MAX_LEN + 1, KNOWN_PHC, &FAST, NULL), ERR_TOOBIG);
    assert_int_equal(password_hash(big, PASSWORD_MAX_LEN, &FAST, &phc), ERR_OK);
    assert_int_equal(password_verify(big, PASSWORD_MAX_LEN, phc, &FAST, NULL), ERR_OK);
    free(phc);
    free(big);
}

static void test_bad_cost_refused(void **state)
{
    struct password_cost zero = { 0, 8, 1 }, huge = { 24, 32, 1 }, neg = { 10, -1, 1 };
    char *phc = NULL;

    assert_false(password_cost_valid(NULL));
    assert_false(password_cost_valid(&zero));
    assert_false(password_cost_valid(&huge));
    assert_false(password_cost_valid(&neg));
    assert_true(password_cost_valid(&FAST));
    assert_true(password_cost_valid(&PASSWORD_COST_DEFAULT));
    assert_int_equal(password_hash(PW, strlen(PW), &huge, &phc), ERR_INVAL);
    assert_null(phc);
}

/* OpenSSL's default maxmem (32 MiB) refuses N=2^17, r=8; this passes only
 * because password.c computes and passes maxmem. */
static void test_default_cost_round_trip(void **state)
{
    char *phc = NULL;
    bool rehash = true;

    assert_int_equal(password_hash(PW, strlen(PW), NULL, &phc), ERR_OK);
    assert_memory_equal(phc, "$scrypt$ln=17,r=8,p=1$", 22);
    assert_int_equal(password_verify(PW, strlen(PW), phc, NULL, &rehash), ERR_OK);
    assert_false(rehash);
    free(phc);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The burn must cost about what a verify costs, or login timing tells which
 * emails exist. Loose bounds (best of three) so a busy machine cannot flake it. */
static void test_burn_costs_like_verify(void **state)
{
    const struct password_cost cost = { 13, 8, 1 };
    double best_verify = 1e9, best_burn = 1e9;
    char *phc = NULL;

    assert_int_equal(password_hash(PW, strlen(PW), &cost, &phc), ERR_OK);
    for (int i = 0; i < 3; i++) {
        double t0 = seconds(), t1, t2;
        assert_int_equal(password_verify("wrong", 5, phc, &cost, NULL), ERR_UNAUTHORIZED);
        t1 = seconds();
        password_burn(&cost);
        t2 = seconds();
        if (t1 - t0 < best_verify)
            best_verify = t1 - t0;
        if (t2 - t1 < best_burn)
            best_burn = t2 - t1;
    }
    assert_true(best_burn > best_verify / 4);
    assert_true(best_burn < best_verify * 4);
    free(phc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_format),
        cmocka_unit_test(test_hash_then_verify),
        cmocka_unit_test(test_wrong_password_is_unauthorized),
        cmocka_unit_test(test_salt_is_fresh),
        cmocka_unit_test(test_verifies_known_vector),
        cmocka_unit_test(test_needs_rehash_when_weaker_than_configured),
        cmocka_unit_test(test_malformed_phc_is_inval),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_bad_cost_refused),
        cmocka_unit_test(test_default_cost_round_trip),
        cmocka_unit_test(test_burn_costs_like_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
