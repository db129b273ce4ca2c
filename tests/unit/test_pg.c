/* pg: what the pool decides without a server — SQLSTATE mapping, DSN and
 * limit checks that never echo the DSN, laziness, and an unreachable server
 * failing as "unavailable" with the failure counted. Transactions against a
 * real server are tests/integration/45_pg_engine.sh and 30_auth.sh [postgres]. */
#include <string.h>

#include "unit.h"

#include "store/pg/pg.h"

static void test_sqlstates_map_to_the_error_vocabulary(void **state)
{
    (void)state;
    assert_int_equal(pg_sqlstate_err("23505"), ERR_CONFLICT);   /* unique_violation */
    assert_int_equal(pg_sqlstate_err("40001"), ERR_CONFLICT);   /* serialization_failure */
    assert_int_equal(pg_sqlstate_err("40P01"), ERR_CONFLICT);   /* deadlock_detected */
    assert_int_equal(pg_sqlstate_err("23503"), ERR_NOTFOUND);   /* foreign_key_violation */
    assert_int_equal(pg_sqlstate_err("22P02"), ERR_INVAL);      /* invalid_text_representation */
    assert_int_equal(pg_sqlstate_err("23514"), ERR_INVAL);      /* check_violation */
    assert_int_equal(pg_sqlstate_err("42501"), ERR_FORBIDDEN);  /* insufficient_privilege, RLS */
    assert_int_equal(pg_sqlstate_err("08006"), ERR_UNAVAILABLE);
    assert_int_equal(pg_sqlstate_err("57P01"), ERR_UNAVAILABLE); /* admin_shutdown */
    assert_int_equal(pg_sqlstate_err("53300"), ERR_UNAVAILABLE); /* too_many_connections */
    assert_int_equal(pg_sqlstate_err("57014"), ERR_UNAVAILABLE); /* query_canceled (timeout) */
    assert_int_equal(pg_sqlstate_err("42P01"), ERR_INTERNAL);   /* undefined_table: a bug */
    assert_int_equal(pg_sqlstate_err(NULL), ERR_UNAVAILABLE);   /* no SQLSTATE: connection broke */
    assert_int_equal(pg_sqlstate_err("2350"), ERR_UNAVAILABLE);
}

static void test_a_malformed_dsn_is_refused_without_quoting_it(void **state)
{
    char errstr[128] = "";
    (void)state;
    assert_null(pg_pool_new("core", "host=x password=s3cret-value oops", 2, false, errstr));
    assert_non_null(strstr(errstr, "not a valid libpq connection string"));
    assert_null(strstr(errstr, "s3cret"));
    assert_null(strstr(errstr, "oops"));
}

static void test_the_limit_must_be_within_range(void **state)
{
    char errstr[128] = "";
    (void)state;
    assert_null(pg_pool_new("core", "host=/nonexistent", 0, false, errstr));
    assert_non_null(strstr(errstr, "connection_limit"));
    assert_null(pg_pool_new("core", "host=/nonexistent", PG_POOL_MAX + 1, false, errstr));
}

static void test_a_new_pool_opens_nothing(void **state)
{
    char errstr[128] = "";
    struct pg_pool_stats st;
    struct pg_pool *p = pg_pool_new("live", "host=/nonexistent port=1 dbname=x", 2, false, errstr);
    (void)state;
    assert_non_null(p);
    pg_pool_stats(p, &st);
    assert_string_equal(st.label, "live");
    assert_false(st.used);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.limit, 2);
    assert_int_equal(st.connects, 0);
    pg_pool_free(p);
    pg_pool_free(NULL);
}

static void test_an_unreachable_server_is_unavailable_and_counted(void **state)
{
    char errstr[128] = "";
    static const struct pg_stmt one = {"SELECT 1", 0, NULL, true};
    struct pg_pool_stats st;
    struct pg_tx tx;
    PGresult *r = NULL;
    struct pg_pool *p = pg_pool_new("core", "host=/nonexistent port=1 dbname=x connect_timeout=1", 1, false, errstr);
    (void)state;
    assert_non_null(p);
    pg_tx_init(&tx, p);
    assert_int_equal(pg_tx_run(&tx, "", "core", &one, 1, false, &r, errstr), ERR_UNAVAILABLE);
    assert_null(r);
    assert_false(pg_tx_active(&tx));
    assert_non_null(strstr(errstr, "cannot connect"));
    pg_tx_rollback(&tx);                 /* nothing begun: a no-op */
    assert_int_equal(pg_tx_commit(&tx, errstr), 0);
    assert_int_equal(pg_pool_ping(p, errstr), ERR_UNAVAILABLE);
    pg_pool_stats(p, &st);
    assert_true(st.used);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.connect_errors, 2);
    pg_pool_free(p);
}

static void test_bad_run_arguments_are_refused(void **state)
{
    char errstr[128] = "";
    static const struct pg_stmt one = {"SELECT 1", 0, NULL, true};
    struct pg_tx tx;
    PGresult *r[PG_STMT_MAX + 1];
    struct pg_pool *p = pg_pool_new("core", "host=/nonexistent", 1, false, errstr);
    (void)state;
    pg_tx_init(&tx, p);
    assert_int_equal(pg_tx_run(&tx, "", "core", &one, 0, true, r, errstr), ERR_INTERNAL);
    assert_int_equal(pg_tx_run(&tx, "", "core", &one, PG_STMT_MAX + 1, true, r, errstr), ERR_INTERNAL);
    pg_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstates_map_to_the_error_vocabulary),
        cmocka_unit_test(test_a_malformed_dsn_is_refused_without_quoting_it),
        cmocka_unit_test(test_the_limit_must_be_within_range),
        cmocka_unit_test(test_a_new_pool_opens_nothing),
        cmocka_unit_test(test_an_unreachable_server_is_unavailable_and_counted),
        cmocka_unit_test(test_bad_run_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
