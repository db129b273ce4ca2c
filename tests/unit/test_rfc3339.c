/* Unit tests for lib/core/rfc3339: the forms a time is taken in (RFC 3339
 * §5.6, offsets and fractions), what is refused, the range, and that every
 * second formats to text that parses back to it. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"

#include "core/rfc3339.h"

static int64_t parsed(const char *s)
{
    int64_t t = -42;

    assert_true(rfc3339_parse(s, &t));
    return t;
}

static void refused(const char *s)
{
    int64_t t = -42;

    if (rfc3339_parse(s, &t))
        fail_msg("accepted \"%s\" as %lld", s, (long long)t);
    assert_int_equal(t, -42); /* *out untouched */
}

static void test_forms_taken(void **state)
{
    (void)state;
    assert_int_equal(parsed("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parsed("2026-12-07T15:31:52Z"), 1796657512);
    assert_int_equal(parsed("2026-12-07t15:31:52z"), 1796657512);  /* §5.6: case-insensitive */
    assert_int_equal(parsed("2026-12-07 15:31:52Z"), 1796657512);  /* §5.6 NOTE: a space */
    assert_int_equal(parsed("2026-12-07T15:31:52.999Z"), 1796657512); /* floor, never past the instant */
    assert_int_equal(parsed("2026-12-07T15:31:52.123456789Z"), 1796657512);
    assert_int_equal(parsed("2026-12-07T16:31:52+01:00"), 1796657512);
    assert_int_equal(parsed("2026-12-07T10:01:52-05:30"), 1796657512);
    assert_int_equal(parsed("2026-12-07T15:31:52-00:00"), 1796657512);
    assert_int_equal(parsed("2024-02-29T00:00:00Z"), 1709164800);   /* a leap day */
    assert_int_equal(parsed("2000-02-29T12:00:00Z"), 951825600);    /* 400-year rule */
    assert_int_equal(parsed("2016-12-31T23:59:60Z"), parsed("2016-12-31T23:59:59Z")); /* leap second */
    assert_int_equal(parsed("9999-12-31T23:59:59Z"), RFC3339_MAX);
}

static void test_forms_refused(void **state)
{
    static const char *const bad[] = {
        "", "2026", "2026-12-07", "2026-12-07T15:31Z", "2026-12-07T15:31:52", /* no offset */
        "2026-12-07T15:31:52+0100", "2026-12-07T15:31:52+01", "2026-12-07T15:31:52.Z",
        "2026-12-07T15:31:52ZZ", "2026-12-07T15:31:52Z ", " 2026-12-07T15:31:52Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z", "2026-12-00T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T23:60:00Z",
        "2026-12-07T23:59:61Z", "2026-12-07T15:31:52+24:00", "2026-12-07T15:31:52+01:60",
        "2026/12/07T15:31:52Z", "2026-12-07X15:31:52Z", "+2026-12-07T15:31:52Z", "2026-1-07T15:31:52Z",
        "1796657512", "1969-12-31T23:59:59Z",                   /* before the range */
        "1970-01-01T00:59:59+01:00",                            /* ... after its offset */
        "9999-12-31T23:59:59-00:01",                            /* past the range */
    };
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        refused(bad[i]);
    refused(NULL);
}

static void test_format_round_trips(void **state)
{
    char buf[RFC3339_LEN + 1];
    int64_t t;

    (void)state;
    rfc3339_format(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    rfc3339_format(1796657512, buf);
    assert_string_equal(buf, "2026-12-07T15:31:52Z");
    rfc3339_format(RFC3339_MAX, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    rfc3339_format(-5, buf); /* clamped, never a malformed year */
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    rfc3339_format(RFC3339_MAX + 1, buf);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    /* a spread of seconds over the whole range: text → the same second */
    srand(7);
    for (int i = 0; i < 200000; i++) {
        int64_t want = (int64_t)(((uint64_t)rand() << 31 | (uint64_t)rand()) % (uint64_t)(RFC3339_MAX + 1));
        rfc3339_format(want, buf);
        assert_int_equal(strlen(buf), RFC3339_LEN);
        assert_true(rfc3339_parse(buf, &t));
        assert_int_equal(t, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_taken),
        cmocka_unit_test(test_forms_refused),
        cmocka_unit_test(test_format_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
