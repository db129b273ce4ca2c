/* Unit tests for lib/http/cors: which origins a [http] cors_origins list lets
 * in, at the edges of the origin syntax, and which lists the fleet refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/cors.h"

static void test_exact_origins_match_exactly(void **state)
{
    const char *list = "https://app.example.com, http://localhost:3000";

    (void)state;
    assert_true(cors_allows(list, "https://app.example.com"));
    assert_true(cors_allows(list, "http://localhost:3000"));
    assert_true(cors_allows(list, "HTTPS://App.Example.COM"));          /* scheme and host: any case */
    assert_false(cors_allows(list, "http://app.example.com"));          /* another scheme */
    assert_false(cors_allows(list, "https://app.example.com:443"));     /* an explicit port is another origin */
    assert_false(cors_allows(list, "https://evil.app.example.com"));
    assert_false(cors_allows(list, "https://app.example.com.evil.test"));
    assert_false(cors_allows(list, "http://localhost:30000"));
    assert_false(cors_allows(list, "http://localhost"));
    assert_false(cors_allows(list, "https://app.example.com/"));        /* origins have no path */
    assert_false(cors_allows(list, "null"));
    assert_false(cors_allows(list, ""));
    assert_false(cors_allows(list, NULL));
    assert_false(cors_allows("", "https://app.example.com"));
}

static void test_a_star_port_takes_any_port_of_that_host(void **state)
{
    const char *list = "http://localhost:*";

    (void)state;
    assert_true(cors_allows(list, "http://localhost:5173"));
    assert_true(cors_allows(list, "http://localhost:1"));
    assert_true(cors_allows(list, "http://localhost"));                /* the default port is a port too */
    assert_false(cors_allows(list, "http://localhost:"));
    assert_false(cors_allows(list, "http://localhost:80a"));
    assert_false(cors_allows(list, "http://localhost:123456"));
    assert_false(cors_allows(list, "https://localhost:5173"));
    assert_false(cors_allows(list, "http://localhost.evil.test:5173"));
    assert_false(cors_allows(list, "http://user@localhost:5173"));
    assert_false(cors_allows(list, "http://localhost:*"));              /* a star is the list's, not an origin's */
}

static void test_a_lone_star_takes_every_origin(void **state)
{
    (void)state;
    assert_true(cors_allows("*", "https://anything.test"));
    assert_true(cors_allows("https://a.test *", "http://b.test:8080"));
}

static void test_lists_of_malformed_origins_are_refused_naming_the_entry(void **state)
{
    char why[256];

    (void)state;
    assert_int_equal(cors_list_check("", why, sizeof why), 0);
    assert_int_equal(cors_list_check("https://a.test,http://localhost:*  http://127.0.0.1:8080", why, sizeof why), 0);
    assert_int_equal(cors_list_check("*", why, sizeof why), 0);
    assert_int_equal(cors_list_check("https://a.test/path", why, sizeof why), -1);
    assert_non_null(strstr(why, "https://a.test/path"));
    assert_int_equal(cors_list_check("a.test", why, sizeof why), -1);
    assert_int_equal(cors_list_check("https://", why, sizeof why), -1);
    assert_int_equal(cors_list_check("https://a.test:x", why, sizeof why), -1);
    assert_int_equal(cors_list_check("https://*.a.test", why, sizeof why), -1);
    assert_int_equal(cors_list_check("http://localhost:*, ftp//x", why, sizeof why), -1);
    assert_non_null(strstr(why, "ftp//x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_origins_match_exactly),
        cmocka_unit_test(test_a_star_port_takes_any_port_of_that_host),
        cmocka_unit_test(test_a_lone_star_takes_every_origin),
        cmocka_unit_test(test_lists_of_malformed_origins_are_refused_naming_the_entry),
    };
    return cmocka_run_group_tests_name("cors", tests, NULL, NULL);
}
