/* Unit tests for lib/router: literal segments beat parameters, parameters are
 * extracted by name, 404 and 405 are told apart (with the Allow set), HEAD
 * rides on GET, and a malformed table is refused at start-up. */
#include <string.h>

#include "unit.h"

#include "http/router.h"

/* The data field identifies the row, so a match can be checked by identity. */
static const struct route ROUTES[] = {
    {ROUTER_GET, "/healthz", "healthz"},
    {ROUTER_GET, "/v1/svc/{s}/{r}", "list"},
    {ROUTER_POST, "/v1/svc/{s}/{r}", "create"},
    {ROUTER_GET, "/v1/svc/{s}/schema", "schema_get"},
    {ROUTER_PUT, "/v1/svc/{s}/schema", "schema_put"},
    {ROUTER_GET, "/v1/svc/{s}/{r}/{id}", "get"},
    {ROUTER_DELETE, "/v1/svc/{s}/{r}/{id}", "delete"},
    {ROUTER_POST, "/v1/auth/login", "login"},
    {ROUTER_GET, "/", "root"},
};
#define NROUTES (sizeof ROUTES / sizeof ROUTES[0])

static int setup(void **state)
{
    static struct router r;
    char errstr[128] = "";

    if (router_init(&r, ROUTES, NROUTES, errstr) != 0) {
        print_error("router_init: %s\n", errstr);
        return -1;
    }
    *state = &r;
    return 0;
}

static int teardown(void **state)
{
    router_cleanup(*state);
    return 0;
}

#define SEGS(...) ((const char *const[]){__VA_ARGS__})
#define NSEGS(...) (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define MATCH(r, method, m, ...) router_match((r), (method), SEGS(__VA_ARGS__), NSEGS(__VA_ARGS__), (m))

static void test_literal_segment_beats_parameter(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "v1", "svc", "crm", "schema"), 0);
    assert_string_equal(m.route->data, "schema_get");
    assert_int_equal(m.nparams, 1);
    assert_string_equal(router_param(&m, "s"), "crm");
    assert_null(router_param(&m, "r"));

    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "v1", "svc", "crm", "contacts"), 0);
    assert_string_equal(m.route->data, "list");
}

static void test_parameters_are_extracted_by_name(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, ROUTER_DELETE, &m, "v1", "svc", "crm", "contacts", "42"), 0);
    assert_string_equal(m.route->data, "delete");
    assert_int_equal(m.nparams, 3);
    assert_string_equal(router_param(&m, "s"), "crm");
    assert_string_equal(router_param(&m, "r"), "contacts");
    assert_string_equal(router_param(&m, "id"), "42");
    assert_null(router_param(&m, "nope"));
}

static void test_method_selects_among_rows_of_one_pattern(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, ROUTER_POST, &m, "v1", "svc", "crm", "contacts"), 0);
    assert_string_equal(m.route->data, "create");
    assert_int_equal(MATCH(*state, ROUTER_PUT, &m, "v1", "svc", "crm", "schema"), 0);
    assert_string_equal(m.route->data, "schema_put");
}

static void test_unknown_path_is_not_found(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "nope"), ERR_NOTFOUND);
    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "v1", "svc"), ERR_NOTFOUND);
    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "v1", "svc", "a", "b", "c", "d"), ERR_NOTFOUND);
    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "healthz", "x"), ERR_NOTFOUND);
    assert_null(m.route);
}

static void test_wrong_method_is_405_with_the_allowed_methods(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, ROUTER_PATCH, &m, "v1", "svc", "crm", "contacts"), ERR_INVAL);
    assert_null(m.route);
    assert_int_equal(m.allow, ROUTER_GET | ROUTER_POST);

    /* the literal pattern owns the path: its methods only, not the {r} row's POST */
    assert_int_equal(MATCH(*state, ROUTER_DELETE, &m, "v1", "svc", "crm", "schema"), ERR_INVAL);
    assert_int_equal(m.allow, ROUTER_GET | ROUTER_PUT);

    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "v1", "auth", "login"), ERR_INVAL);
    assert_int_equal(m.allow, ROUTER_POST);
}

static void test_allow_header_of_a_get_route_includes_head(void **state)
{
    struct router_match m;
    char allow[96];

    assert_int_equal(MATCH(*state, ROUTER_PATCH, &m, "v1", "svc", "crm", "contacts"), ERR_INVAL);
    router_allow_str(m.allow, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, POST");

    assert_int_equal(MATCH(*state, ROUTER_GET, &m, "v1", "auth", "login"), ERR_INVAL);
    router_allow_str(m.allow, allow, sizeof allow);
    assert_string_equal(allow, "POST");
}

static void test_head_matches_the_get_route(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, ROUTER_HEAD, &m, "healthz"), 0);
    assert_string_equal(m.route->data, "healthz");
    assert_int_equal(MATCH(*state, ROUTER_HEAD, &m, "v1", "svc", "a", "b", "7"), 0);
    assert_string_equal(m.route->data, "get");
    assert_string_equal(router_param(&m, "id"), "7");
    /* but not a path with no GET */
    assert_int_equal(MATCH(*state, ROUTER_HEAD, &m, "v1", "auth", "login"), ERR_INVAL);
    assert_int_equal(m.allow, ROUTER_POST);
}

static void test_root_pattern_matches_zero_segments(void **state)
{
    struct router_match m;

    assert_int_equal(router_match(*state, ROUTER_GET, NULL, 0, &m), 0);
    assert_string_equal(m.route->data, "root");
    assert_int_equal(m.nparams, 0);
}

static void test_unknown_method_is_405_not_404(void **state)
{
    struct router_match m;

    assert_int_equal(MATCH(*state, 0, &m, "healthz"), ERR_INVAL);
    assert_int_equal(m.allow, ROUTER_GET);
}

static void test_method_parse_accepts_only_exact_uppercase_names(void **state)
{
    assert_int_equal(router_method_parse("GET"), ROUTER_GET);
    assert_int_equal(router_method_parse("HEAD"), ROUTER_HEAD);
    assert_int_equal(router_method_parse("POST"), ROUTER_POST);
    assert_int_equal(router_method_parse("PUT"), ROUTER_PUT);
    assert_int_equal(router_method_parse("PATCH"), ROUTER_PATCH);
    assert_int_equal(router_method_parse("DELETE"), ROUTER_DELETE);
    assert_int_equal(router_method_parse("OPTIONS"), ROUTER_OPTIONS);
    assert_int_equal(router_method_parse("get"), 0);
    assert_int_equal(router_method_parse("GETX"), 0);
    assert_int_equal(router_method_parse(""), 0);
}

static void test_allow_str_lists_methods_in_fixed_order(void **state)
{
    char buf[96];

    router_allow_str(ROUTER_DELETE | ROUTER_PUT | ROUTER_GET, buf, sizeof buf);
    assert_string_equal(buf, "GET, HEAD, PUT, DELETE");
    router_allow_str(ROUTER_OPTIONS, buf, sizeof buf);
    assert_string_equal(buf, "OPTIONS");
    router_allow_str(0, buf, sizeof buf);
    assert_string_equal(buf, "");
}

static void test_allow_str_truncates_within_the_buffer(void **state)
{
    char buf[12];

    memset(buf, 'x', sizeof buf);
    router_allow_str(ROUTER_GET | ROUTER_POST | ROUTER_DELETE, buf, 8);
    assert_true(strlen(buf) < 8);
    assert_memory_equal(buf, "GET, ", 5);
    assert_int_equal(buf[8], 'x'); /* nothing written past sz */
}

static void test_init_refuses_malformed_patterns(void **state)
{
    static const char *const bad[] = {
        "v1/x",                       /* no leading slash */
        "",                           /* empty */
        "/v1//x",                     /* empty segment */
        "/v1/x/",                     /* trailing slash: no path could match it as written */
        "//",                         /* empty segment */
        "/v1/{id",                    /* unclosed parameter */
        "/v1/{}",                     /* unnamed parameter */
        "/v1/{id}x",                  /* parameter with a tail */
        "/a/b/c/d/e/f/g/h/i/j/k/l/m", /* ROUTER_MAX_SEGS + 1 segments */
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct route rt[2] = {{ROUTER_GET, "/ok/{fine}", NULL}, {ROUTER_GET, bad[i], NULL}};
        struct router r;
        char errstr[128] = "";
        int rc = router_init(&r, rt, 2, errstr);

        if (rc != ERR_INVAL)
            fail_msg("pattern \"%s\" compiled with %d, want ERR_INVAL", bad[i], rc);
        if (errstr[0] == '\0')
            fail_msg("pattern \"%s\" refused with an empty errstr", bad[i]);
        assert_null(r.c);
    }
}

static void test_init_accepts_the_maximum_segments(void **state)
{
    struct route rt[] = {{ROUTER_GET, "/a/b/c/d/e/f/g/h/i/j/k/{l}", NULL}};
    struct router r;
    struct router_match m;
    char errstr[128] = "";

    assert_int_equal(router_init(&r, rt, 1, errstr), 0);
    assert_int_equal(MATCH(&r, ROUTER_GET, &m, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
                           "k", "last"),
                     0);
    assert_string_equal(router_param(&m, "l"), "last");
    router_cleanup(&r);
    router_cleanup(&r); /* idempotent */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_literal_segment_beats_parameter),
        T(test_parameters_are_extracted_by_name),
        T(test_method_selects_among_rows_of_one_pattern),
        T(test_unknown_path_is_not_found),
        T(test_wrong_method_is_405_with_the_allowed_methods),
        T(test_allow_header_of_a_get_route_includes_head),
        T(test_head_matches_the_get_route),
        T(test_root_pattern_matches_zero_segments),
        T(test_unknown_method_is_405_not_404),
        cmocka_unit_test(test_method_parse_accepts_only_exact_uppercase_names),
        cmocka_unit_test(test_allow_str_lists_methods_in_fixed_order),
        cmocka_unit_test(test_allow_str_truncates_within_the_buffer),
        cmocka_unit_test(test_init_refuses_malformed_patterns),
        cmocka_unit_test(test_init_accepts_the_maximum_segments),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
