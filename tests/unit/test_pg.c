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
    static const struct pg_stmt one = {"SELECT 1", 0, NULL, true, false};
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

/* A double precision[] as array_send writes it (PostgreSQL's
 * src/backend/utils/adt/arrayfuncs.c): ndim, has-nulls, element type, then
 * size and lower bound per dimension, then length and big-endian bytes per
 * element; null_at >= 0 makes that element NULL (length -1, no bytes). */
static size_t put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

static int float8_array(unsigned char *out, const double *v, int n, uint32_t oid, int null_at)
{
    size_t k = 0;

    k += put32(out + k, 1);
    k += put32(out + k, null_at >= 0);
    k += put32(out + k, oid);
    k += put32(out + k, (uint32_t)n);
    k += put32(out + k, 1);
    for (int i = 0; i < n; i++) {
        uint64_t bits;
        if (i == null_at) {
            k += put32(out + k, UINT32_MAX);
            continue;
        }
        memcpy(&bits, &v[i], sizeof bits);
        k += put32(out + k, 8);
        k += put32(out + k, (uint32_t)(bits >> 32));
        k += put32(out + k, (uint32_t)bits);
    }
    return (int)k;
}

static void test_a_binary_float8_array_reads_back_exactly(void **state)
{
    const double v[3] = {1.5, -0.25, 1e-300};
    unsigned char buf[128];
    double out[4] = {0};
    int len;

    (void)state;
    len = float8_array(buf, v, 3, 701, -1);
    assert_int_equal(pg_binary_float8s((const char *)buf, len, out, 3), 0);
    assert_memory_equal(out, v, sizeof v);
    /* what it is not: another count, a short value, float4, a NULL, two dimensions */
    assert_int_equal(pg_binary_float8s((const char *)buf, len, out, 4), ERR_INVAL);
    assert_int_equal(pg_binary_float8s((const char *)buf, len - 1, out, 3), ERR_INVAL);
    assert_int_equal(pg_binary_float8s(NULL, 0, out, 3), ERR_INVAL);
    len = float8_array(buf, v, 3, 700, -1);
    assert_int_equal(pg_binary_float8s((const char *)buf, len, out, 3), ERR_INVAL);
    len = float8_array(buf, v, 3, 701, 1);
    assert_int_equal(pg_binary_float8s((const char *)buf, len, out, 2), ERR_INVAL); /* 2 × 12 + 4: no count fits */
    assert_int_equal(pg_binary_float8s((const char *)buf, len, out, 3), ERR_INVAL);
    len = float8_array(buf, v, 3, 701, -1);
    put32(buf, 2);
    assert_int_equal(pg_binary_float8s((const char *)buf, len, out, 3), ERR_INVAL);
}

static void test_bad_run_arguments_are_refused(void **state)
{
    char errstr[128] = "";
    static const struct pg_stmt one = {"SELECT 1", 0, NULL, true, false};
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
        cmocka_unit_test(test_a_binary_float8_array_reads_back_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
