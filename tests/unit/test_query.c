/* Unit tests for lib/query: percent-decoding, query strings and path splitting,
 * the parsing every request goes through before routing. */
#include <stdio.h>
#include <string.h>

#include "unit.h"

#include "http/query.h"

static int setup(void **state)
{
    *state = arena_new(1024);
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    arena_free(*state);
    return 0;
}

/* Decodes a C string; returns the code and leaves *out NULL on failure. */
static int decode(struct arena *a, const char *s, bool plus, char **out)
{
    *out = NULL;
    return query_decode(a, s, strlen(s), plus, out);
}

static void test_decode_percent_escapes_in_either_case(void **state)
{
    char *out;

    assert_int_equal(decode(*state, "a%20b%2Fc%2fd", false, &out), 0);
    assert_string_equal(out, "a b/c/d");
    assert_int_equal(decode(*state, "%41%62%7E", false, &out), 0);
    assert_string_equal(out, "Ab~");
    assert_int_equal(decode(*state, "%C3%A9", false, &out), 0);
    assert_string_equal(out, "\xc3\xa9");
    assert_int_equal(decode(*state, "", false, &out), 0);
    assert_string_equal(out, "");
}

static void test_decode_uses_only_the_given_length(void **state)
{
    char *out = NULL;

    assert_int_equal(query_decode(*state, "abc%41zzz", 6, false, &out), 0);
    assert_string_equal(out, "abcA");
}

static void test_decode_refuses_truncated_and_non_hex_escapes(void **state)
{
    static const char *const bad[] = {"%", "%4", "%zz", "a%", "a%4", "%4g", "%g4", "x%%41"};
    char *out;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = decode(*state, bad[i], false, &out);
        if (rc != ERR_INVAL)
            fail_msg("\"%s\" decoded with %d, want ERR_INVAL", bad[i], rc);
        assert_null(out);
    }
}

static void test_decode_refuses_an_encoded_nul(void **state)
{
    char *out;

    assert_int_equal(decode(*state, "%00", false, &out), ERR_INVAL);
    assert_int_equal(decode(*state, "abc%00def", true, &out), ERR_INVAL);
    assert_null(out);
    /* a raw NUL inside the given length is refused too */
    assert_int_equal(query_decode(*state, "a\0b", 3, false, &out), ERR_INVAL);
}

static void test_decode_plus_is_space_only_when_asked(void **state)
{
    char *out;

    assert_int_equal(decode(*state, "a+b%2B", true, &out), 0);
    assert_string_equal(out, "a b+");
    assert_int_equal(decode(*state, "a+b%2B", false, &out), 0);
    assert_string_equal(out, "a+b+");
}

static void test_parse_keys_values_and_repeated_keys(void **state)
{
    struct query q;

    assert_int_equal(query_parse(*state, "a=1&b=x%20y&a=2&c=p+q", &q), 0);
    assert_int_equal(q.n, 4);
    assert_string_equal(q.p[0].key, "a");
    assert_string_equal(q.p[0].value, "1");
    assert_string_equal(q.p[1].value, "x y");
    assert_string_equal(q.p[2].key, "a");
    assert_string_equal(q.p[2].value, "2");
    assert_string_equal(query_get(&q, "a"), "1"); /* the first value wins */
    assert_string_equal(query_get(&q, "c"), "p q");
    assert_null(query_get(&q, "missing"));
}

static void test_parse_value_may_contain_equals_and_decoded_ampersand(void **state)
{
    struct query q;

    assert_int_equal(query_parse(*state, "f=a=b&g=x%26y", &q), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(query_get(&q, "f"), "a=b");
    assert_string_equal(query_get(&q, "g"), "x&y");
}

static void test_parse_skips_empty_pieces(void **state)
{
    struct query q;

    assert_int_equal(query_parse(*state, "&a=1&&b=2&", &q), 0);
    assert_int_equal(q.n, 2);
    assert_string_equal(q.p[0].key, "a");
    assert_string_equal(q.p[1].key, "b");
    assert_int_equal(query_parse(*state, "", &q), 0);
    assert_int_equal(q.n, 0);
    assert_int_equal(query_parse(*state, NULL, &q), 0);
    assert_int_equal(q.n, 0);
}

static void test_parse_flag_without_value_is_empty_string(void **state)
{
    struct query q;

    assert_int_equal(query_parse(*state, "flag&x=1&empty=", &q), 0);
    assert_int_equal(q.n, 3);
    assert_string_equal(q.p[0].key, "flag");
    assert_non_null(query_get(&q, "flag"));
    assert_string_equal(query_get(&q, "flag"), "");
    assert_string_equal(query_get(&q, "empty"), "");
    assert_string_equal(query_get(&q, "x"), "1");
}

static void test_parse_refuses_bad_escape_in_key_or_value(void **state)
{
    struct query q;

    assert_int_equal(query_parse(*state, "a=%zz", &q), ERR_INVAL);
    assert_int_equal(query_parse(*state, "a%4=1", &q), ERR_INVAL);
    assert_int_equal(query_parse(*state, "a=1&b=%00", &q), ERR_INVAL);
}

static void test_parse_accepts_max_params_and_refuses_one_more(void **state)
{
    char qs[QUERY_MAX_PARAMS * 8 + 16];
    size_t o = 0;
    struct query q;

    for (int i = 0; i < QUERY_MAX_PARAMS; i++)
        o += (size_t)snprintf(qs + o, sizeof qs - o, "%sk%d=%d", i ? "&" : "", i, i);
    assert_int_equal(query_parse(*state, qs, &q), 0);
    assert_int_equal(q.n, QUERY_MAX_PARAMS);
    assert_string_equal(query_get(&q, "k63"), "63");

    snprintf(qs + o, sizeof qs - o, "&one=more");
    assert_int_equal(query_parse(*state, qs, &q), ERR_TOOBIG);
}

static int split(struct arena *a, const char *path, const char **segs, size_t max, size_t *n)
{
    return query_split_path(a, path, strlen(path), segs, max, n);
}

static void test_split_root_has_no_segments(void **state)
{
    const char *segs[4];
    size_t n = 99;

    assert_int_equal(split(*state, "/", segs, 4, &n), 0);
    assert_int_equal(n, 0);
}

static void test_split_segments_in_order(void **state)
{
    const char *segs[4];
    size_t n;

    assert_int_equal(split(*state, "/a/b", segs, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(segs[0], "a");
    assert_string_equal(segs[1], "b");
}

static void test_split_encoded_slash_stays_inside_its_segment(void **state)
{
    const char *segs[8];
    size_t n;

    assert_int_equal(split(*state, "/v1/svc/a%2Fb/x", segs, 8, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(segs[0], "v1");
    assert_string_equal(segs[1], "svc");
    assert_string_equal(segs[2], "a/b");
    assert_string_equal(segs[3], "x");
}

static void test_split_plus_is_not_space_in_a_path(void **state)
{
    const char *segs[2];
    size_t n;

    assert_int_equal(split(*state, "/a+b", segs, 2, &n), 0);
    assert_string_equal(segs[0], "a+b");
}

static void test_split_refuses_empty_segments_and_trailing_slash(void **state)
{
    static const char *const bad[] = {"//", "/a/", "/a//b", "//a", "", "a/b", "/a/%zz"};
    const char *segs[8];
    size_t n;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = split(*state, bad[i], segs, 8, &n);
        if (rc != ERR_INVAL)
            fail_msg("path \"%s\" split with %d, want ERR_INVAL", bad[i], rc);
    }
}

static void test_split_refuses_more_segments_than_max(void **state)
{
    const char *segs[3];
    size_t n;

    assert_int_equal(split(*state, "/a/b/c", segs, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(split(*state, "/a/b/c/d", segs, 3, &n), ERR_TOOBIG);
}

static void test_split_uses_only_the_given_length(void **state)
{
    const char *path = "/v1/x?q=1";
    const char *segs[4];
    size_t n;

    assert_int_equal(query_split_path(*state, path, 5, segs, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(segs[1], "x");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_decode_percent_escapes_in_either_case),
        T(test_decode_uses_only_the_given_length),
        T(test_decode_refuses_truncated_and_non_hex_escapes),
        T(test_decode_refuses_an_encoded_nul),
        T(test_decode_plus_is_space_only_when_asked),
        T(test_parse_keys_values_and_repeated_keys),
        T(test_parse_value_may_contain_equals_and_decoded_ampersand),
        T(test_parse_skips_empty_pieces),
        T(test_parse_flag_without_value_is_empty_string),
        T(test_parse_refuses_bad_escape_in_key_or_value),
        T(test_parse_accepts_max_params_and_refuses_one_more),
        T(test_split_root_has_no_segments),
        T(test_split_segments_in_order),
        T(test_split_encoded_slash_stays_inside_its_segment),
        T(test_split_plus_is_not_space_in_a_path),
        T(test_split_refuses_empty_segments_and_trailing_slash),
        T(test_split_refuses_more_segments_than_max),
        T(test_split_uses_only_the_given_length),
    };
    return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
