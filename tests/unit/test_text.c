/* Unit tests for lib/core/text: the identifier rule of each kind at its
 * boundaries, the one reserved list, and hex digits against an independent
 * table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"

/* n copies of c, NUL-terminated, into buf (of at least n + 1 bytes). */
static const char *run_of(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void test_ident_shape(void **state)
{
    (void)state;
    assert_true(text_ident_valid("a", 63));
    assert_true(text_ident_valid("crm", 63));
    assert_true(text_ident_valid("a_b_1", 63));
    assert_true(text_ident_valid("a_", 63));
    assert_true(text_ident_valid("z9", 63));
    /* a letter first */
    assert_false(text_ident_valid("1abc", 63));
    assert_false(text_ident_valid("_abc", 63));
    assert_false(text_ident_valid("9", 63));
    /* nothing but lower-case letters, digits and '_' */
    assert_false(text_ident_valid("crm-2", 63));
    assert_false(text_ident_valid("a-", 63));
    assert_false(text_ident_valid("Crm", 63));
    assert_false(text_ident_valid("crM", 63));
    assert_false(text_ident_valid("a b", 63));
    assert_false(text_ident_valid("a.b", 63));
    assert_false(text_ident_valid("a\"b", 63));
    assert_false(text_ident_valid("caf\xc3\xa9", 63));
    assert_false(text_ident_valid("a\n", 63));
    /* empty, NULL, and a zero limit */
    assert_false(text_ident_valid("", 63));
    assert_false(text_ident_valid(NULL, 63));
    assert_false(text_ident_valid("a", 0));
}

/* Each kind's limit: exactly the limit passes, one more byte does not. */
static void test_ident_length_per_kind(void **state)
{
    static const size_t limits[] = {TEXT_NAME_MAX, TEXT_APP_MAX, TEXT_ROLE_MAX, 1};
    char buf[128];

    (void)state;
    assert_int_equal(TEXT_NAME_MAX, 63);
    assert_int_equal(TEXT_APP_MAX, 40);
    assert_int_equal(TEXT_ROLE_MAX, 31);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        size_t max = limits[i];

        assert_true(text_ident_valid(run_of(buf, 'a', max), max));
        assert_false(text_ident_valid(run_of(buf, 'a', max + 1), max));
        buf[0] = 'a';
        run_of(buf + 1, '_', max - 1);
        assert_true(text_ident_valid(buf, max));
    }
    /* a service name of 63 passes as a name and fails as an app's */
    assert_true(text_ident_valid(run_of(buf, 'b', 63), TEXT_NAME_MAX));
    assert_false(text_ident_valid(buf, TEXT_APP_MAX));
    assert_false(text_ident_valid(run_of(buf, 'b', 41), TEXT_APP_MAX));
    assert_false(text_ident_valid(run_of(buf, 'b', 32), TEXT_ROLE_MAX));
}

/* A buffer with no NUL is read no further than max_len + 1 bytes (ASan
 * stops the run if it is) and is not an identifier. */
static void test_ident_reads_within_bound(void **state)
{
    char *exact = malloc(TEXT_NAME_MAX + 1);

    (void)state;
    assert_non_null(exact);
    memset(exact, 'a', TEXT_NAME_MAX + 1);
    assert_false(text_ident_valid(exact, TEXT_NAME_MAX));
    exact[TEXT_NAME_MAX] = '\0';
    assert_true(text_ident_valid(exact, TEXT_NAME_MAX));
    free(exact);
}

static void test_reserved_list(void **state)
{
    static const char *const taken[] = {
        "id", "org_id", "version", "created_at", "updated_at", "expires_at", "deleted_at",
        "cursor", "limit", "order", "search", "schema", "views", "_score",
        "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid",
    };
    static const char *const free_names[] = {
        "name", "ids", "id_", "oid2", "view", "orders", "created", "ID", "Id", "xmin_", "", "crm",
    };

    (void)state;
    for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
        if (!text_reserved(taken[i]))
            fail_msg("%s should be reserved", taken[i]);
    for (size_t i = 0; i < sizeof free_names / sizeof free_names[0]; i++)
        if (text_reserved(free_names[i]))
            fail_msg("%s should not be reserved", free_names[i]);
    assert_false(text_reserved(NULL));
    /* a field name needs both: the shape, and not taken */
    assert_true(text_ident_valid("order", TEXT_NAME_MAX) && text_reserved("order"));
    assert_true(text_ident_valid("ordered", TEXT_NAME_MAX) && !text_reserved("ordered"));
}

static void test_hex_digit_every_byte(void **state)
{
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";

    (void)state;
    for (int c = -200; c < 256; c++) {
        int want = -1;

        for (int v = 0; v < 16; v++)
            if (c == lower[v] || c == upper[v])
                want = v;
        if (text_hex_digit(c) != want)
            fail_msg("text_hex_digit(%d) = %d, want %d", c, text_hex_digit(c), want);
    }
    assert_int_equal(text_hex_digit(EOF), -1);
    assert_int_equal(text_hex_digit('f'), 15);
    assert_int_equal(text_hex_digit('F'), 15);
    assert_int_equal(text_hex_digit('g'), -1);
    assert_int_equal(text_hex_digit('/'), -1);
    assert_int_equal(text_hex_digit(':'), -1);
    assert_int_equal(text_hex_digit('@'), -1);
    assert_int_equal(text_hex_digit('`'), -1);
    assert_int_equal(text_hex_digit((unsigned char)'\xb0'), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ident_shape),
        cmocka_unit_test(test_ident_length_per_kind),
        cmocka_unit_test(test_ident_reads_within_bound),
        cmocka_unit_test(test_reserved_list),
        cmocka_unit_test(test_hex_digit_every_byte),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
