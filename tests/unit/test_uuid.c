/* Unit tests for lib/uuid: layout of v4 and v7, v7 ordering under a driven
 * clock, and the one accepted text form. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"

#include "core/uuid.h"

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void assert_layout(const char *s, char version)
{
    assert_true(uuid_valid(s));
    assert_int_equal(strlen(s), UUID_STR_LEN);
    assert_int_equal(s[14], version);
    assert_non_null(strchr("89ab", s[19]));
}

static void test_v4_layout_and_uniqueness(void **state)
{
    enum { N = 2000 };
    char (*ids)[UUID_STR_SIZE] = calloc(N, UUID_STR_SIZE);
    uint8_t b[16];

    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        assert_int_equal(uuid_v4(ids[i]), ERR_OK);
        assert_layout(ids[i], '4');
    }
    qsort(ids, N, UUID_STR_SIZE, cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
    assert_int_equal(uuid_v4_bytes(b), ERR_OK);
    assert_int_equal(uuid_version(b), 4);
    assert_int_equal(b[8] & 0xC0, 0x80);
}

static void test_v7_layout_and_time(void **state)
{
    char s[UUID_STR_SIZE];
    uint8_t b[16];
    uint64_t before = now_ms(), after;

    assert_int_equal(uuid_v7(s), ERR_OK);
    after = now_ms();
    assert_layout(s, '7');
    assert_int_equal(uuid_parse(s, b), ERR_OK);
    assert_int_equal(uuid_version(b), 7);
    /* the counter may have pushed the stamp a few ms ahead, never behind */
    assert_true(uuid_v7_ms(b) >= before);
    assert_true(uuid_v7_ms(b) <= after + 5);
    assert_int_equal(uuid_v7_bytes(b), ERR_OK);
    assert_int_equal(uuid_version(b), 7);
    assert_int_equal(b[8] & 0xC0, 0x80);
}

static void test_v7_strictly_increasing_in_a_tight_loop(void **state)
{
    enum { N = 50000 };
    char prev[UUID_STR_SIZE], cur[UUID_STR_SIZE];

    assert_int_equal(uuid_v7(prev), ERR_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(uuid_v7(cur), ERR_OK);
        assert_layout(cur, '7');
        if (strcmp(prev, cur) >= 0)
            fail_msg("not increasing at %d: %s then %s", i, prev, cur);
        memcpy(prev, cur, sizeof cur);
    }
}

static void test_v7_gen_same_ms_counts_up(void **state)
{
    struct uuid_v7_gen g = { 0 };
    uint8_t a[16], b[16];

    assert_int_equal(uuid_v7_gen_next(&g, 1000, a), ERR_OK);
    assert_int_equal(uuid_v7_ms(a), 1000);
    assert_true(g.counter <= 0x7FF);        /* seeded with room to count */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(uuid_v7_gen_next(&g, 1000, b), ERR_OK);
        assert_int_equal(uuid_v7_ms(b), 1000);
        assert_true(memcmp(a, b, 16) < 0);
        memcpy(a, b, 16);
    }
}

static void test_v7_gen_clock_step_back_keeps_order(void **state)
{
    struct uuid_v7_gen g = { 0 };
    uint8_t a[16], b[16];

    assert_int_equal(uuid_v7_gen_next(&g, 5000, a), ERR_OK);
    assert_int_equal(uuid_v7_gen_next(&g, 4000, b), ERR_OK);
    assert_int_equal(uuid_v7_ms(b), 5000);
    assert_true(memcmp(a, b, 16) < 0);
    memcpy(a, b, 16);
    assert_int_equal(uuid_v7_gen_next(&g, 5001, b), ERR_OK);
    assert_int_equal(uuid_v7_ms(b), 5001);
    assert_true(memcmp(a, b, 16) < 0);
}

static void test_v7_gen_counter_overflow_moves_the_stamp(void **state)
{
    struct uuid_v7_gen g = { 0 };
    uint8_t a[16], b[16];
    int bumped = 0;

    assert_int_equal(uuid_v7_gen_next(&g, 7000, a), ERR_OK);
    /* at most 4096 ids fit one millisecond, so 4097 spill into the next, and
     * at least 2049 fit there (the seed leaves that room), so not further */
    for (int i = 0; i < 4096; i++) {
        assert_int_equal(uuid_v7_gen_next(&g, 7000, b), ERR_OK);
        assert_true(memcmp(a, b, 16) < 0);
        assert_int_equal(uuid_version(b), 7);
        if (uuid_v7_ms(b) != 7000)
            bumped = 1;
        memcpy(a, b, 16);
    }
    assert_true(bumped);
    assert_int_equal(uuid_v7_ms(b), 7001);
    /* the real clock catching up continues from there */
    assert_int_equal(uuid_v7_gen_next(&g, 7001, b), ERR_OK);
    assert_true(memcmp(a, b, 16) < 0);
    assert_int_equal(uuid_v7_gen_next(&g, 7002, b), ERR_OK);
    assert_int_equal(uuid_v7_ms(b), 7002);
}

static void test_v7_gen_rand_b_differs(void **state)
{
    struct uuid_v7_gen g1 = { 0 }, g2 = { 0 };
    uint8_t a[16], b[16];

    /* two processes forked from one state still differ in the random tail */
    assert_int_equal(uuid_v7_gen_next(&g1, 9000, a), ERR_OK);
    g2 = g1;
    assert_int_equal(uuid_v7_gen_next(&g1, 9000, a), ERR_OK);
    assert_int_equal(uuid_v7_gen_next(&g2, 9000, b), ERR_OK);
    assert_memory_equal(a, b, 8);
    assert_memory_not_equal(a + 8, b + 8, 8);
}

static void test_valid_accepts_only_canonical_lowercase(void **state)
{
    static const char *const good[] = {
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "0190a6e2-7b1c-7d3e-9f00-1234567890ab",
        "123e4567-e89b-12d3-a456-426614174000",  /* v1: other versions are fine */
    };
    static const char *const bad[] = {
        "",
        "0190A6E2-7B1C-7D3E-9F00-1234567890AB",
        "0190a6e2-7b1c-7d3e-9f00-1234567890aB",
        "{0190a6e2-7b1c-7d3e-9f00-1234567890ab}",
        "urn:uuid:0190a6e2-7b1c-7d3e-9f00-1234567890ab",
        "0190a6e27b1c7d3e9f001234567890ab",
        "0190a6e2-7b1c-7d3e-9f00-1234567890a",
        "0190a6e2-7b1c-7d3e-9f00-1234567890abc",
        "0190a6e2-7b1c-7d3e-9f00-1234567890ab ",
        " 0190a6e2-7b1c-7d3e-9f00-1234567890ab",
        "0190a6e2-7b1c-7d3e-9f00-1234567890ag",
        "0190a6e2+7b1c-7d3e-9f00-1234567890ab",
        "0190a6e-27b1c-7d3e-9f00-1234567890ab",
        "0190a6e2-7b1c-7d3e-9f0-01234567890ab",
        "------------------------------------",
        "0190a6e2-7b1c-7d3e-9f00-1234567890\n",
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(uuid_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (uuid_valid(bad[i]))
            fail_msg("accepted %s", bad[i]);
    assert_false(uuid_valid(NULL));
}

static void test_parse_and_format_round_trip(void **state)
{
    static const uint8_t want[16] = {
        0x01, 0x90, 0xa6, 0xe2, 0x7b, 0x1c, 0x7d, 0x3e,
        0x9f, 0x00, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab,
    };
    const char *s = "0190a6e2-7b1c-7d3e-9f00-1234567890ab";
    uint8_t b[16];
    char out[UUID_STR_SIZE];

    assert_int_equal(uuid_parse(s, b), ERR_OK);
    assert_memory_equal(b, want, 16);
    uuid_format(b, out);
    assert_string_equal(out, s);
    assert_int_equal(uuid_version(b), 7);
    assert_int_equal(uuid_v7_ms(b), UINT64_C(0x0190a6e27b1c));

    memset(b, 0x5a, sizeof b);
    assert_int_equal(uuid_parse("0190A6E2-7B1C-7D3E-9F00-1234567890AB", b), ERR_INVAL);
    assert_int_equal(uuid_parse(NULL, b), ERR_INVAL);
    for (int i = 0; i < 16; i++)
        assert_int_equal(b[i], 0x5a);   /* untouched */

    for (int i = 0; i < 200; i++) {
        char s1[UUID_STR_SIZE];
        uint8_t b1[16];

        assert_int_equal(i % 2 ? uuid_v4(s1) : uuid_v7(s1), ERR_OK);
        assert_int_equal(uuid_parse(s1, b1), ERR_OK);
        uuid_format(b1, out);
        assert_string_equal(out, s1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_layout_and_uniqueness),
        cmocka_unit_test(test_v7_layout_and_time),
        cmocka_unit_test(test_v7_strictly_increasing_in_a_tight_loop),
        cmocka_unit_test(test_v7_gen_same_ms_counts_up),
        cmocka_unit_test(test_v7_gen_clock_step_back_keeps_order),
        cmocka_unit_test(test_v7_gen_counter_overflow_moves_the_stamp),
        cmocka_unit_test(test_v7_gen_rand_b_differs),
        cmocka_unit_test(test_valid_accepts_only_canonical_lowercase),
        cmocka_unit_test(test_parse_and_format_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
