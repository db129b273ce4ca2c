/* Unit tests for lib/reqid: which client ids are echoed (they land in logs and
 * headers) and the shape and uniqueness of generated ones. */
#include <string.h>

#include "unit.h"

#include "http/reqid.h"

static void test_valid_accepts_the_safe_alphabet(void **state)
{
    assert_true(reqid_valid("a"));
    assert_true(reqid_valid("abc-DEF_123.x:y"));
    assert_true(reqid_valid("0123456789abcdef0123456789abcdef"));
    assert_true(reqid_valid("550e8400-e29b-41d4-a716-446655440000"));
}

static void test_valid_accepts_64_characters_and_refuses_65(void **state)
{
    char s[REQID_MAX + 2];

    memset(s, 'a', REQID_MAX);
    s[REQID_MAX] = '\0';
    assert_true(reqid_valid(s));
    s[REQID_MAX] = 'a';
    s[REQID_MAX + 1] = '\0';
    assert_false(reqid_valid(s));
}

static void test_valid_refuses_empty_and_null(void **state)
{
    assert_false(reqid_valid(""));
    assert_false(reqid_valid(NULL));
}

static void test_valid_refuses_characters_unsafe_in_logs_and_headers(void **state)
{
    static const char *const bad[] = {
        "a b", " a", "a ", "a\"b", "a'b", "a\rb", "a\nb", "a\r\nX-Evil: 1", "a\tb",
        "a\\b", "a/b", "a;b", "a,b", "a=b", "a%20b", "a{b}", "a<b>", "\xc3\xa9", "a\x7f",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (reqid_valid(bad[i]))
            fail_msg("reqid_valid accepted bad id #%zu", i);
}

static int is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return 0;
    for (const char *p = s; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void test_generated_id_is_32_hex_and_itself_valid(void **state)
{
    struct reqid_gen g;
    char id[REQID_MAX + 1];

    assert_int_equal(reqid_gen_init(&g), 0);
    for (int i = 0; i < 3; i++) {
        reqid_next(&g, id);
        if (!is_hex32(id))
            fail_msg("generated id \"%s\" is not 32 lowercase hex characters", id);
        assert_true(reqid_valid(id));
    }
}

static void test_consecutive_ids_are_distinct(void **state)
{
    struct reqid_gen g;
    char prev[REQID_MAX + 1], id[REQID_MAX + 1];

    assert_int_equal(reqid_gen_init(&g), 0);
    reqid_next(&g, prev);
    for (int i = 0; i < 1000; i++) {
        reqid_next(&g, id);
        assert_string_not_equal(prev, id);
        /* the per-process prefix is stable; the counter part moves */
        assert_memory_equal(prev, id, 16);
        memcpy(prev, id, sizeof id);
    }
}

static void test_two_generators_differ(void **state)
{
    struct reqid_gen a, b;
    char ida[REQID_MAX + 1], idb[REQID_MAX + 1];

    assert_int_equal(reqid_gen_init(&a), 0);
    assert_int_equal(reqid_gen_init(&b), 0);
    reqid_next(&a, ida);
    reqid_next(&b, idb);
    /* 64 random bits each: equal prefixes would mean the seed is not random */
    assert_string_not_equal(ida, idb);
    assert_memory_not_equal(ida, idb, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_accepts_the_safe_alphabet),
        cmocka_unit_test(test_valid_accepts_64_characters_and_refuses_65),
        cmocka_unit_test(test_valid_refuses_empty_and_null),
        cmocka_unit_test(test_valid_refuses_characters_unsafe_in_logs_and_headers),
        cmocka_unit_test(test_generated_id_is_32_hex_and_itself_valid),
        cmocka_unit_test(test_consecutive_ids_are_distinct),
        cmocka_unit_test(test_two_generators_differ),
    };
    return cmocka_run_group_tests_name("reqid", tests, NULL, NULL);
}
