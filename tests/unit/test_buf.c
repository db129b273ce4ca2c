/* Unit tests for lib/buf: appending, the hard cap (refused writes leave the
 * content as it was) and printf output of any length. */
#include <string.h>

#include "unit.h"

#include "core/buf.h"

static void test_append_puts_and_printf_concatenate(void **state)
{
    struct buf b;

    buf_init(&b, 1024);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_append(&b, ", world!!", 7), 0);
    assert_int_equal(buf_printf(&b, " %d-%s", 42, "x"), 0);
    assert_string_equal(b.p, "hello, world 42-x");
    assert_int_equal(b.len, strlen("hello, world 42-x"));
    buf_cleanup(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_append_keeps_embedded_nul_bytes(void **state)
{
    struct buf b;

    buf_init(&b, 64);
    assert_int_equal(buf_append(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.p, "a\0b\0", 4);
    buf_cleanup(&b);
}

static void test_write_up_to_the_cap_succeeds(void **state)
{
    struct buf b;
    char chunk[100];

    memset(chunk, 'a', sizeof chunk);
    buf_init(&b, 300);
    for (int i = 0; i < 3; i++)
        assert_int_equal(buf_append(&b, chunk, sizeof chunk), 0);
    assert_int_equal(b.len, 300);
    assert_int_equal(b.p[300], '\0');
    buf_cleanup(&b);
}

static void test_write_past_the_cap_is_toobig_and_content_intact(void **state)
{
    struct buf b;
    char big[400];

    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    assert_int_equal(buf_puts(&b, "abc"), ERR_TOOBIG);
    assert_int_equal(buf_append(&b, "abc", 3), ERR_TOOBIG);
    assert_int_equal(buf_printf(&b, "%d", 123), ERR_TOOBIG);
    assert_int_equal(buf_printf(&b, "%s", big), ERR_TOOBIG); /* the long printf path */
    assert_int_equal(b.len, 8);
    assert_string_equal(b.p, "12345678");
    /* what still fits is accepted */
    assert_int_equal(buf_puts(&b, "90"), 0);
    assert_string_equal(b.p, "1234567890");
    assert_int_equal(buf_puts(&b, "!"), ERR_TOOBIG);
    assert_string_equal(b.p, "1234567890");
    buf_cleanup(&b);
}

static void test_zero_cap_refuses_any_byte(void **state)
{
    struct buf b;

    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "x"), ERR_TOOBIG);
    assert_int_equal(b.len, 0);
    buf_cleanup(&b);
}

static void test_printf_longer_than_256_bytes(void **state)
{
    struct buf b;
    char s[1000];

    memset(s, 'q', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_puts(&b, "<"), 0);
    assert_int_equal(buf_printf(&b, "%s|%s", s, s), 0);
    assert_int_equal(buf_puts(&b, ">"), 0);
    assert_int_equal(b.len, 1 + 999 + 1 + 999 + 1);
    assert_int_equal(strlen(b.p), b.len);
    assert_int_equal(b.p[0], '<');
    assert_int_equal(b.p[1], 'q');
    assert_int_equal(b.p[1000], '|');
    assert_int_equal(b.p[1999], 'q');
    assert_int_equal(b.p[2000], '>');
    buf_cleanup(&b);
}

static void test_printf_at_the_256_byte_boundary(void **state)
{
    /* 255 fits the stack buffer with its NUL; 256 and 257 take the long path */
    for (int n = 254; n <= 258; n++) {
        struct buf b;
        buf_init(&b, 4096);
        assert_int_equal(buf_puts(&b, "ab"), 0);
        assert_int_equal(buf_printf(&b, "%0*d", n, 7), 0);
        assert_int_equal(b.len, 2 + (size_t)n);
        assert_int_equal(strlen(b.p), b.len);
        assert_int_equal(b.p[b.len - 1], '7');
        assert_int_equal(b.p[2], '0');
        buf_cleanup(&b);
    }
}

static void test_reset_empties_and_allows_reuse(void **state)
{
    struct buf b;

    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    assert_int_equal(buf_puts(&b, "abcdefgh"), 0);
    assert_string_equal(b.p, "abcdefgh");
    buf_cleanup(&b);
    buf_init(&b, 8);
    assert_int_equal(buf_puts(&b, "again"), 0);
    assert_string_equal(b.p, "again");
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_puts_and_printf_concatenate),
        cmocka_unit_test(test_append_keeps_embedded_nul_bytes),
        cmocka_unit_test(test_write_up_to_the_cap_succeeds),
        cmocka_unit_test(test_write_past_the_cap_is_toobig_and_content_intact),
        cmocka_unit_test(test_zero_cap_refuses_any_byte),
        cmocka_unit_test(test_printf_longer_than_256_bytes),
        cmocka_unit_test(test_printf_at_the_256_byte_boundary),
        cmocka_unit_test(test_reset_empties_and_allows_reuse),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
