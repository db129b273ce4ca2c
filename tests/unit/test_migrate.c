/* migrate: the file-name rule and the errors that need no database (the
 * database half is tests/integration/40_postgres.sh, against a real server). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

#include "store/pg/migrate.h"

static void test_migration_names_follow_the_pattern(void **state)
{
    (void)state;
    assert_true(migrate_name_valid("0001_core.sql"));
    assert_true(migrate_name_valid("12_add-index_2.sql"));
    assert_false(migrate_name_valid("core.sql"));
    assert_false(migrate_name_valid("_core.sql"));
    assert_false(migrate_name_valid("0001core.sql"));
    assert_false(migrate_name_valid("0001_.sql"));
    assert_false(migrate_name_valid("0001_a b.sql"));
    assert_false(migrate_name_valid("0001_a;drop.sql"));
    assert_false(migrate_name_valid("0001_core.sql.bak"));
    assert_false(migrate_name_valid("0001_core.SQL"));
}

static void test_missing_sql_dir_is_an_io_error_naming_the_key(void **state)
{
    struct migrate_opts o = {.dsn = "host=/nonexistent", .sql_dir = "/nonexistent/sql"};
    struct migrate_report r;
    char errstr[MIGRATE_ERRSTR];
    (void)state;
    assert_int_equal(migrate_run(&o, &r, errstr), ERR_IO);
    assert_non_null(strstr(errstr, "db.sql_dir /nonexistent/sql"));
}

/* A fresh folder holding one file, name, with text; returns dir. */
static char *sql_dir(char dir[UNIT_PATH], const char *name, const char *text)
{
    char path[UNIT_PATH + 64];

    snprintf(path, sizeof path, "%s/%s", unit_tmpdir(dir, "migrate"), name);
    unit_write_text(path, text);
    return dir;
}

static void test_badly_named_sql_file_is_refused_before_connecting(void **state)
{
    char dir[UNIT_PATH];
    struct migrate_opts o = {.dsn = "host=/nonexistent", .sql_dir = sql_dir(dir, "core.sql", "")};
    struct migrate_report r;
    char errstr[MIGRATE_ERRSTR];
    (void)state;
    assert_int_equal(migrate_run(&o, &r, errstr), ERR_INVAL);
    assert_non_null(strstr(errstr, "core.sql: not a migration name"));
    assert_int_equal(unit_rmtree(dir), 0);
}

static void test_unreachable_database_is_unavailable(void **state)
{
    char dir[UNIT_PATH];
    struct migrate_opts o = {.dsn = "host=/nonexistent connect_timeout=1",
                             .sql_dir = sql_dir(dir, "0001_x.sql", "SELECT 1;\n")};
    struct migrate_report r;
    char errstr[MIGRATE_ERRSTR];
    (void)state;
    assert_int_equal(migrate_run(&o, &r, errstr), ERR_UNAVAILABLE);
    assert_int_equal(r.files, 1);
    assert_non_null(strstr(errstr, "cannot connect"));
    assert_int_equal(unit_rmtree(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration_names_follow_the_pattern),
        cmocka_unit_test(test_missing_sql_dir_is_an_io_error_naming_the_key),
        cmocka_unit_test(test_badly_named_sql_file_is_refused_before_connecting),
        cmocka_unit_test(test_unreachable_database_is_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
