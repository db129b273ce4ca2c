/* fault_pg: lib/store/pg against a real PostgreSQL that loses the connection
 * in the middle of a pipeline, built with ASan + LeakSanitizer. A statement
 * kills its own backend after earlier ones have answered, or the server is
 * stopped at once (pg_ctl -m immediate) while a statement runs and is then
 * started again; each time pg_tx_run must answer ERR_UNAVAILABLE, the pool
 * must serve again, and the results that had arrived before the loss must
 * all be freed: the last case asks LeakSanitizer, which would find every
 * PGresult a failed pipeline kept (issue 12 item 8).
 *
 * Run by tests/integration/46_pg_faults.sh, which starts the server and
 * passes TESSERA_FAULT_PG_DSN (a database to connect to) and
 * TESSERA_FAULT_PG_CTL (a command taking pg_crash or pg_start). Without
 * them this fails: it is never a skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sanitizer/lsan_interface.h>

#include "store/pg/pg.h"

#define ROUNDS 4            /* lost connections of each kind */
#define RESTARTS 3          /* server stops mid-pipeline */

/* Leak checking on whatever ASAN_OPTIONS says (the suite sets it too). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=1";
}

static const char *dsn, *ctl;
static bool server_down;    /* stopped by a case that has not started it again */

static const char KILL_SELF[] = "SELECT pg_terminate_backend(pg_backend_pid())";
static const char SLEEP[] = "SELECT pg_sleep(20)";

/* Expects a call to return rc, and shows errstr when it does not. */
#define EXPECT(rc, call, errstr)                                                           \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ != (rc))                                                                   \
            fail_msg("%s: got %s, want %s (%s)", #call, err_str(rc_), err_str(rc), errstr); \
    } while (0)

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs `$TESSERA_FAULT_PG_CTL what`; 0 when it succeeded. */
static int pg_ctl(const char *what)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, "%s %s", ctl, what);
    return system(cmd);
}

/* The two pools every case uses: statements sent unnamed, and prepared. */
struct fixture {
    struct pg_pool *plain, *prepared;
};

static int setup(void **state)
{
    static struct fixture fx;
    char errstr[128] = "";

    fx.plain = pg_pool_new("core", dsn, 2, false, errstr);
    fx.prepared = pg_pool_new("core", dsn, 2, true, errstr);
    if (fx.plain == NULL || fx.prepared == NULL) {
        fprintf(stderr, "pg_pool_new: %s\n", errstr);
        pg_pool_free(fx.plain);
        pg_pool_free(fx.prepared);
        return -1;
    }
    *state = &fx;
    return 0;
}

/* Frees the pools whether the case passed or not, so the leak check sees
 * only what the code under test lost, and starts a server a failed case
 * left stopped, so the next case does not fail for it. */
static int teardown(void **state)
{
    struct fixture *fx = *state;

    pg_pool_free(fx->plain);
    pg_pool_free(fx->prepared);
    fx->plain = fx->prepared = NULL;
    if (server_down)
        (void)pg_ctl("pg_start");   /* fails harmlessly if it was not stopped after all */
    server_down = false;
    return 0;
}

/* One read that must succeed: the pool serves (again). */
static void expect_serves(struct pg_pool *p)
{
    static const struct pg_stmt st = {"SELECT 41 + 1", 0, NULL, true, false};
    char errstr[128] = "";
    PGresult *r = NULL;
    struct pg_tx tx;

    pg_tx_init(&tx, p);
    EXPECT(0, pg_tx_run(&tx, "", "pg_catalog", &st, 1, false, &r, errstr), errstr);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    EXPECT(0, pg_tx_commit(&tx, errstr), errstr);
}

/* Until the pool serves, for at most `seconds`: 0, or the last error. */
static int wait_serving(struct pg_pool *p, double seconds)
{
    char errstr[128] = "";
    double deadline = now_s() + seconds;
    int rc;

    while ((rc = pg_pool_ping(p, errstr)) != 0 && now_s() < deadline)
        usleep(100 * 1000);
    return rc;
}

/* n statements whose number `kill_at` kills its own backend; the others
 * answer. write: they open the explicit transaction (BEGIN first); in_tx: a
 * write has opened it already, so nothing may be retried. */
static void run_killed(struct pg_pool *p, size_t n, size_t kill_at, bool write, bool in_tx)
{
    static const char *const SELECTS[] = {"SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "SELECT 5"};
    static const struct pg_stmt opener = {"SELECT 0", 0, NULL, true, false};
    struct pg_stmt st[5];
    PGresult *res[5] = {NULL}, *r = NULL;
    char errstr[128] = "";
    struct pg_pool_stats before, after;
    struct pg_tx tx;

    assert_true(n <= 5 && kill_at < n);
    for (size_t i = 0; i < n; i++)
        st[i] = (struct pg_stmt){i == kill_at ? KILL_SELF : SELECTS[i], 0, NULL, true, false};
    pg_tx_init(&tx, p);
    if (in_tx) {
        EXPECT(0, pg_tx_run(&tx, "", "pg_catalog", &opener, 1, true, &r, errstr), errstr);
        PQclear(r);
    }
    pg_pool_stats(p, &before);
    EXPECT(ERR_UNAVAILABLE, pg_tx_run(&tx, "", "pg_catalog", st, n, write, res, errstr), errstr);
    assert_non_null(strstr(errstr, "connection lost"));
    for (size_t i = 0; i < n; i++)
        assert_null(res[i]);        /* nothing handed out on failure */
    assert_false(pg_tx_active(&tx));
    pg_tx_rollback(&tx);
    pg_pool_stats(p, &after);
    assert_int_equal(after.busy, 0);
    /* outside an explicit transaction the run is tried again on a fresh
     * connection (where it dies again); inside one it is not */
    assert_int_equal(after.errors - before.errors, in_tx ? 1 : 2);
    expect_serves(p);
}

static void test_backend_killed_by_a_later_statement_is_unavailable_and_the_pool_serves(void **state)
{
    struct fixture *fx = *state;

    for (int round = 0; round < ROUNDS; round++) {
        run_killed(fx->plain, 4, 2, false, false); /* two answered before, one after */
        run_killed(fx->plain, 3, 2, false, false); /* the last statement */
        run_killed(fx->plain, 4, 1, true, false);  /* BEGIN, scope, SELECT 1, the kill, … */
        run_killed(fx->plain, 4, 3, true, true);   /* inside an open transaction */
    }
}

static void test_backend_killed_while_statements_are_being_prepared(void **state)
{
    struct fixture *fx = *state;

    for (int round = 0; round < ROUNDS; round++) {
        run_killed(fx->prepared, 4, 2, false, false);
        run_killed(fx->prepared, 5, 3, true, false);
        run_killed(fx->prepared, 3, 1, false, true);
    }
}

/* A child that waits for a statement of ours to be sleeping in the server,
 * then stops the server at once; its exit status says whether it did. */
static pid_t crash_when_sleeping(void)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    PGconn *c = PQconnectdb(dsn);
    double deadline = now_s() + 15;
    int rc = 1;

    while (PQstatus(c) == CONNECTION_OK && now_s() < deadline) {
        const char *const vals[] = {SLEEP};
        PGresult *r = PQexecParams(c, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                      "AND query = $1 AND pid <> pg_backend_pid()",
                                   1, NULL, vals, NULL, NULL, 0);
        bool sleeping = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") != 0;

        PQclear(r);
        if (sleeping) {
            PQfinish(c);
            c = NULL;
            rc = pg_ctl("pg_crash") == 0 ? 0 : 2;
            break;
        }
        usleep(20 * 1000);
    }
    PQfinish(c);
    _exit(rc);      /* no exit handlers: the parent's leak check is the one that counts */
}

static void test_server_stopped_mid_pipeline_is_unavailable_and_the_pool_serves_after_restart(void **state)
{
    struct fixture *fx = *state;
    struct pg_pool *p[2] = {fx->plain, fx->prepared};

    for (int round = 0; round < RESTARTS * 2; round++) {
        struct pg_pool *pl = p[round % 2];
        bool write = round % 4 >= 2;
        const struct pg_stmt st[3] = {
            {"SELECT 1", 0, NULL, true, false}, {SLEEP, 0, NULL, true, false}, {"SELECT 3", 0, NULL, true, false}};
        PGresult *res[3] = {NULL};
        char errstr[128] = "";
        struct pg_tx tx;
        int status = -1;
        double t0;
        pid_t child;

        expect_serves(pl);          /* a warm connection, so the pipeline is what breaks */
        server_down = true;
        child = crash_when_sleeping();
        t0 = now_s();
        pg_tx_init(&tx, pl);
        EXPECT(ERR_UNAVAILABLE, pg_tx_run(&tx, "", "pg_catalog", st, 3, write, res, errstr), errstr);
        if (now_s() - t0 > 15)
            fail_msg("the lost connection took %.1f s to notice", now_s() - t0);
        assert_null(res[0]);
        assert_null(res[1]);
        pg_tx_rollback(&tx);
        assert_int_equal(waitpid(child, &status, 0), child);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("the server was not stopped mid-statement (child status %d)", status);
        EXPECT(ERR_UNAVAILABLE, pg_pool_ping(pl, errstr), errstr);
        assert_int_equal(pg_ctl("pg_start"), 0);
        server_down = false;
        EXPECT(0, wait_serving(pl, 30), "the pool serves within 30 s of the restart");
        expect_serves(pl);
        expect_serves(p[(round + 1) % 2]);  /* the other pool's dead connection too */
    }
}

/* Last: everything above has been freed by now, so any block LeakSanitizer
 * finds unreachable is a leak of the code under test. */
static void test_leak_sanitizer_finds_no_leak(void **state)
{
    if (__lsan_do_recoverable_leak_check() != 0)
        fail_msg("LeakSanitizer found leaks (its report is above)");
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_backend_killed_by_a_later_statement_is_unavailable_and_the_pool_serves),
        T(test_backend_killed_while_statements_are_being_prepared),
        T(test_server_stopped_mid_pipeline_is_unavailable_and_the_pool_serves_after_restart),
        cmocka_unit_test(test_leak_sanitizer_finds_no_leak),
    };

    dsn = getenv("TESSERA_FAULT_PG_DSN");
    ctl = getenv("TESSERA_FAULT_PG_CTL");
    if (dsn == NULL || *dsn == '\0' || ctl == NULL || *ctl == '\0') {
        printf("not ok - fault_pg needs TESSERA_FAULT_PG_DSN and TESSERA_FAULT_PG_CTL "
               "(tests/integration/46_pg_faults.sh sets them)\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("fault_pg", tests, NULL, NULL);
}
