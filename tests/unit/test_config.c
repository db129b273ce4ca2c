/* Unit tests for lib/config: the INI file (sections, quotes, comments),
 * TESSERA_SECTION_KEY overrides, per-env defaults, validation whose errors
 * name the key, and secrets masked wherever settings are printed.
 * Every test starts with no TESSERA_* variable set and removes its files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include "unit.h"

#include "core/config.h"

extern char **environ;

struct fixture {
    char path[UNIT_PATH];   /* the temp config file, "" when none */
    struct config cfg;
    char errstr[256];
};

static void clear_tessera_env(void)
{
    char name[128];

    /* unsetenv edits environ: rescan from the start after each removal */
    for (;;) {
        char **e = environ;
        while (*e != NULL && strncmp(*e, "TESSERA_", 8) != 0)
            e++;
        if (*e == NULL)
            return;
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)n, *e);
        if (unsetenv(name) != 0)
            return;
    }
}

static int setup(void **state)
{
    static struct fixture f;

    memset(&f, 0, sizeof f);
    clear_tessera_env();
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f->path[0] != '\0')
        unlink(f->path);
    clear_tessera_env();
    return 0;
}

/* Writes text to a fresh temp file; returns its path (kept in the fixture). */
static const char *write_file(struct fixture *f, const char *text)
{
    if (f->path[0] != '\0')
        unlink(f->path);
    return unit_tmpfile(f->path, "config", text, strlen(text));
}

static int load_text(struct fixture *f, const char *text)
{
    return config_load(&f->cfg, write_file(f, text), f->errstr);
}

/* Asserts a refusal whose message names `key` (and `also`, when not NULL). */
static void assert_refused(struct fixture *f, int rc, const char *key, const char *also)
{
    if (rc != ERR_INVAL)
        fail_msg("expected ERR_INVAL naming %s, got %d (%s)", key, rc, f->errstr);
    if (strstr(f->errstr, key) == NULL)
        fail_msg("errstr does not name %s: %s", key, f->errstr);
    if (also != NULL && strstr(f->errstr, also) == NULL)
        fail_msg("errstr does not mention \"%s\": %s", also, f->errstr);
}

/* ---- defaults per env ---- */

static void test_defaults_without_file_are_develop_with_memory_engine(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    assert_int_equal(config_load(c, NULL, f->errstr), 0);
    assert_int_equal(c->env, CONFIG_ENV_DEVELOP);
    assert_int_equal(c->engine, CONFIG_ENGINE_MEMORY);
    assert_int_equal(c->fleet.workers, 2);
    assert_int_equal(c->fleet.projectors, 1);
    assert_int_equal(c->fleet.listen_mode, 0666);
    assert_string_equal(c->fleet.listen, "build/run/tessera.sock");
    assert_int_equal(c->auth.password_cost, 17);
    assert_string_equal(c->auth.issuer, "tessera");
    assert_int_equal(c->log.level, 1); /* info */
    assert_string_equal(c->db.core_dsn, "");
}

static void test_production_defaults_use_postgres_and_system_paths(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    setenv("TESSERA_ENV", "production", 1);
    setenv("TESSERA_DB_CORE_DSN", "host=db dbname=tessera", 1);
    assert_int_equal(config_load(c, NULL, f->errstr), 0);
    assert_int_equal(c->env, CONFIG_ENV_PRODUCTION);
    assert_int_equal(c->engine, CONFIG_ENGINE_POSTGRES);
    assert_int_equal(c->fleet.workers, 0);
    assert_int_equal(c->fleet.projectors, 1);
    assert_int_equal(c->fleet.listen_mode, 0660);
    assert_string_equal(c->fleet.listen, "/run/tessera/tessera.sock");
    assert_string_equal(c->auth.signing_key, "/etc/tessera/jwt.pem");
    assert_int_equal(c->fleet.max_requests, 100000);
    assert_string_equal(c->db.core_dsn, "host=db dbname=tessera");
}

static void test_env_in_file_selects_the_defaults(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "env = staging\n[db]\ncore_dsn = host=db\n"), 0);
    assert_int_equal(f->cfg.env, CONFIG_ENV_STAGING);
    assert_int_equal(f->cfg.engine, CONFIG_ENGINE_POSTGRES);

    assert_int_equal(load_text(f, "env = test\n"), 0);
    assert_int_equal(f->cfg.env, CONFIG_ENV_TEST);
    assert_int_equal(f->cfg.engine, CONFIG_ENGINE_MEMORY);
}

static void test_production_without_core_dsn_is_refused(void **state)
{
    struct fixture *f = *state;

    setenv("TESSERA_ENV", "production", 1);
    assert_refused(f, config_load(&f->cfg, NULL, f->errstr), "db.core_dsn", NULL);
}

static void test_engine_postgres_without_core_dsn_is_refused(void **state)
{
    struct fixture *f = *state;

    assert_refused(f, load_text(f, "engine = postgres\n"), "db.core_dsn", NULL);
    assert_int_equal(load_text(f, "engine = postgres\n[db]\ncore_dsn = host=x\n"), 0);
    assert_int_equal(f->cfg.engine, CONFIG_ENGINE_POSTGRES);
}

/* ---- the file ---- */

static void test_file_sections_comments_blank_lines_and_whitespace(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    assert_int_equal(load_text(f,
                               "# a comment\n"
                               "; another comment\n"
                               "\n"
                               "env = test\n"
                               "[fleet]\n"
                               "  workers=4   \n"
                               "\t# indented comment\n"
                               "   slowlog_ms   =   0\n"
                               "[ auth ]\n"
                               "issuer = me\n"
                               "[http]\n"
                               "max_body_kb = 64\n"),
                     0);
    assert_int_equal(c->env, CONFIG_ENV_TEST);
    assert_int_equal(c->fleet.workers, 4);
    assert_int_equal(c->fleet.slowlog_ms, 0);
    assert_string_equal(c->auth.issuer, "me");
    assert_int_equal(c->http.max_body_kb, 64);
    /* untouched keys keep their defaults */
    assert_int_equal(c->fleet.projectors, 1);
}

static void test_file_quotes_are_stripped_once_and_only_when_matching(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    assert_int_equal(load_text(f,
                               "[db]\n"
                               "core_dsn = \"host=x port=5432\"\n"
                               "test_dsn = 'host=y'\n"
                               "live_dsn = \"'nested'\"\n"
                               "[auth]\n"
                               "issuer = \"unbalanced'\n"
                               "audience = \" padded \"\n"),
                     0);
    assert_string_equal(c->db.core_dsn, "host=x port=5432");
    assert_string_equal(c->db.test_dsn, "host=y");
    assert_string_equal(c->db.live_dsn, "'nested'");
    assert_string_equal(c->auth.issuer, "\"unbalanced'");
    assert_string_equal(c->auth.audience, " padded ");
}

static void test_file_repeated_key_last_wins(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "[fleet]\nworkers = 3\nworkers = 5\n"), 0);
    assert_int_equal(f->cfg.fleet.workers, 5);
}

static void test_unknown_key_is_refused_naming_section_and_key(void **state)
{
    struct fixture *f = *state;

    assert_refused(f, load_text(f, "[fleet]\nworkers = 2\nworkerz = 2\n"), "fleet.workerz", "unknown");
    assert_non_null(strstr(f->errstr, ":3")); /* and the line */
    assert_refused(f, load_text(f, "[nosuch]\nkey = 1\n"), "nosuch.key", "unknown");
    /* a sectioned key written before any section is unknown at top level */
    assert_refused(f, load_text(f, "workers = 2\n"), "workers", "unknown");
}

static void test_malformed_lines_are_refused_with_the_line_number(void **state)
{
    struct fixture *f = *state;

    assert_refused(f, load_text(f, "[fleet\nworkers = 2\n"), ":1", "section");
    assert_refused(f, load_text(f, "[fleet] trailing\n"), ":1", "section");
    assert_refused(f, load_text(f, "[fleet]\n\njust words\n"), ":3", "key = value");
}

static void test_overlong_line_is_refused(void **state)
{
    struct fixture *f = *state;
    char text[1200] = "[auth]\nissuer = ";
    size_t n = strlen(text);

    memset(text + n, 'a', 1100);
    text[n + 1100] = '\n';
    text[n + 1101] = '\0';
    assert_refused(f, load_text(f, text), ":2", "longer");
}

static void test_missing_file_is_refused(void **state)
{
    struct fixture *f = *state;

    assert_refused(f, config_load(&f->cfg, "/nonexistent/tessera.ini", f->errstr),
                   "/nonexistent/tessera.ini", "cannot open");
}

/* ---- environment overrides ---- */

static void test_env_override_with_non_integer_is_refused_naming_key(void **state)
{
    struct fixture *f = *state;

    setenv("TESSERA_FLEET_WORKERS", "abc", 1);
    assert_refused(f, config_load(&f->cfg, NULL, f->errstr), "fleet.workers",
                   "TESSERA_FLEET_WORKERS");
}

/* The projector's keys (issue 14): defaults per env, bounds named on refusal. */
static void test_cqrs_and_audit_keys(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    assert_int_equal(config_load(c, NULL, f->errstr), 0);
    assert_int_equal(c->cqrs.batch, 256);
    assert_int_equal(c->cqrs.poll_ms, 1000);
    assert_int_equal(c->cqrs.gather_ms, 50);
    assert_int_equal(c->cqrs.reap_interval, 10);
    assert_int_equal(c->cqrs.changes_retention, 7 * 86400);
    assert_int_equal(c->cqrs.token_grace, 86400);
    assert_string_equal(c->cqrs.test_listen_dsn, "");
    assert_int_equal(c->audit.retention_months, 12);
    setenv("TESSERA_ENV", "production", 1);
    setenv("TESSERA_DB_CORE_DSN", "host=db dbname=tessera", 1);
    assert_int_equal(config_load(c, NULL, f->errstr), 0);
    assert_int_equal(c->cqrs.reap_interval, 60);
    assert_int_equal(c->fleet.projectors, 1);
    setenv("TESSERA_CQRS_BATCH", "0", 1);
    assert_refused(f, config_load(c, NULL, f->errstr), "cqrs.batch", "TESSERA_CQRS_BATCH");
    unsetenv("TESSERA_CQRS_BATCH");
    setenv("TESSERA_AUDIT_RETENTION_MONTHS", "-1", 1);
    assert_refused(f, config_load(c, NULL, f->errstr), "audit.retention_months", "TESSERA_AUDIT_RETENTION_MONTHS");
    unsetenv("TESSERA_AUDIT_RETENTION_MONTHS");
    setenv("TESSERA_CQRS_CHANGES_RETENTION", "59", 1);
    assert_refused(f, config_load(c, NULL, f->errstr), "cqrs.changes_retention", "TESSERA_CQRS_CHANGES_RETENTION");
    unsetenv("TESSERA_CQRS_CHANGES_RETENTION");
    setenv("TESSERA_CQRS_GATHER_MS", "1001", 1);
    assert_refused(f, config_load(c, NULL, f->errstr), "cqrs.gather_ms", "TESSERA_CQRS_GATHER_MS");
    unsetenv("TESSERA_CQRS_GATHER_MS");
}

static void test_a_mistyped_setting_variable_is_refused_naming_it(void **state)
{
    struct fixture *f = *state;

    setenv("TESSERA_FLEET_WORKER", "4", 1);         /* workers */
    assert_refused(f, config_load(&f->cfg, NULL, f->errstr), "TESSERA_FLEET_WORKER", "no such setting");
    unsetenv("TESSERA_FLEET_WORKER");
    setenv("TESSERA_CONFIG", "/dev/null", 1);       /* not a setting: no section of that name */
    setenv("TESSERA_TEST_HOOK", "1", 1);
    assert_int_equal(config_load(&f->cfg, NULL, f->errstr), 0);
    unsetenv("TESSERA_CONFIG");
    unsetenv("TESSERA_TEST_HOOK");
}

static void test_env_overrides_beat_the_file(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    setenv("TESSERA_FLEET_WORKERS", "8", 1);
    setenv("TESSERA_AUTH_ISSUER", "from-env", 1);
    setenv("TESSERA_ENV", "test", 1);
    assert_int_equal(load_text(f, "env = production\n[fleet]\nworkers = 4\nprojectors = 3\n"
                                  "[auth]\nissuer = from-file\n"),
                     0);
    assert_int_equal(c->fleet.workers, 8);
    assert_string_equal(c->auth.issuer, "from-env");
    assert_int_equal(c->env, CONFIG_ENV_TEST);
    assert_int_equal(c->engine, CONFIG_ENGINE_MEMORY); /* test's default, not production's */
    assert_int_equal(c->fleet.projectors, 3);          /* not overridden: the file's */
}

static void test_bad_file_value_is_refused_even_when_env_overrides_it(void **state)
{
    struct fixture *f = *state;

    setenv("TESSERA_FLEET_WORKERS", "8", 1);
    assert_refused(f, load_text(f, "[fleet]\nworkers = lots\n"), "fleet.workers", ":2");
}

/* ---- values and ranges ---- */

static void test_integers_out_of_range_or_malformed_are_refused(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {"257", "-1", "", "4x", "x4", " 4", "4.0",
                                      "99999999999999999999"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("TESSERA_FLEET_WORKERS", bad[i], 1);
        assert_refused(f, config_load(&f->cfg, NULL, f->errstr), "fleet.workers", NULL);
    }
    setenv("TESSERA_FLEET_WORKERS", "256", 1);
    assert_int_equal(config_load(&f->cfg, NULL, f->errstr), 0);
    assert_int_equal(f->cfg.fleet.workers, 256);
    setenv("TESSERA_FLEET_WORKERS", "0", 1);
    assert_int_equal(config_load(&f->cfg, NULL, f->errstr), 0);
    assert_int_equal(f->cfg.fleet.workers, 0);

    unsetenv("TESSERA_FLEET_WORKERS");
    assert_refused(f, load_text(f, "[auth]\naccess_ttl = 29\n"), "auth.access_ttl", "range");
    assert_refused(f, load_text(f, "[auth]\npassword_cost = 23\n"), "auth.password_cost", "range");
    assert_refused(f, load_text(f, "[db]\nconnection_limit = 0\n"), "db.connection_limit", NULL);
}

static void test_login_throttle_limits_default_and_are_bounded(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(config_load(&f->cfg, NULL, f->errstr), 0);
    assert_int_equal(f->cfg.auth.login_max_failures, 10);
    assert_int_equal(f->cfg.auth.login_max_failures_addr, 100);
    assert_int_equal(f->cfg.auth.login_window_s, 900);
    setenv("TESSERA_AUTH_LOGIN_MAX_FAILURES", "3", 1);
    assert_int_equal(load_text(f, "[auth]\nlogin_window_s = 60\nlogin_max_failures_addr = 7\n"), 0);
    assert_int_equal(f->cfg.auth.login_max_failures, 3);
    assert_int_equal(f->cfg.auth.login_max_failures_addr, 7);
    assert_int_equal(f->cfg.auth.login_window_s, 60);
    setenv("TESSERA_AUTH_LOGIN_MAX_FAILURES", "0", 1);
    assert_refused(f, config_load(&f->cfg, NULL, f->errstr), "auth.login_max_failures", "range");
    unsetenv("TESSERA_AUTH_LOGIN_MAX_FAILURES");
    assert_refused(f, load_text(f, "[auth]\nlogin_window_s = 0\n"), "auth.login_window_s", "range");
    assert_refused(f, load_text(f, "[auth]\nlogin_window_s = 86401\n"), "auth.login_window_s", "range");
    assert_refused(f, load_text(f, "[auth]\nlogin_max_failures_addr = x\n"), "auth.login_max_failures_addr",
                   "integer");
}

static void test_listen_mode_is_octal(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "[fleet]\nlisten_mode = 0600\n"), 0);
    assert_int_equal(f->cfg.fleet.listen_mode, 0600);
    assert_int_equal(load_text(f, "[fleet]\nlisten_mode = 640\n"), 0);
    assert_int_equal(f->cfg.fleet.listen_mode, 0640);
    assert_refused(f, load_text(f, "[fleet]\nlisten_mode = 0698\n"), "fleet.listen_mode", "octal");
    assert_refused(f, load_text(f, "[fleet]\nlisten_mode = 01000\n"), "fleet.listen_mode", "range");
}

static void test_password_cost_below_17_refused_in_production(void **state)
{
    struct fixture *f = *state;

    setenv("TESSERA_DB_CORE_DSN", "host=db", 1);
    assert_refused(f, load_text(f, "env = production\n[auth]\npassword_cost = 12\n"),
                   "auth.password_cost", NULL);
    assert_int_equal(load_text(f, "env = production\n[auth]\npassword_cost = 17\n"), 0);
    assert_int_equal(f->cfg.auth.password_cost, 17);
}

static void test_password_cost_below_17_allowed_in_test_and_develop(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "env = test\n[auth]\npassword_cost = 10\n"), 0);
    assert_int_equal(f->cfg.auth.password_cost, 10);
    assert_int_equal(load_text(f, "env = develop\n[auth]\npassword_cost = 12\n"), 0);
    assert_int_equal(f->cfg.auth.password_cost, 12);
}

static void test_enums_accept_their_names_only(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "[log]\nlevel = debug\n"), 0);
    assert_int_equal(f->cfg.log.level, 0);
    assert_int_equal(load_text(f, "[log]\nlevel = error\n"), 0);
    assert_int_equal(f->cfg.log.level, 3);
    assert_refused(f, load_text(f, "[log]\nlevel = loud\n"), "log.level", "debug|info|warn|error");
    assert_refused(f, load_text(f, "env = prod\n"), "env", "test|develop|staging|production");
    assert_refused(f, load_text(f, "engine = sqlite\n"), "engine", "memory|postgres");
}

/* auth.verify_keys: previous keys during a rotation, split on commas or spaces. */
static void test_verify_keys_are_split_and_bounded(void **state)
{
    struct fixture *f = *state;
    char text[1200];

    assert_int_equal(load_text(f, "[auth]\n"), 0);
    assert_int_equal(f->cfg.auth.nverify_keys, 0);
    assert_int_equal(load_text(f, "[auth]\nverify_keys = /k/a.pub.pem\n"), 0);
    assert_int_equal(f->cfg.auth.nverify_keys, 1);
    assert_string_equal(f->cfg.auth.verify_key[0], "/k/a.pub.pem");
    assert_int_equal(load_text(f, "[auth]\nverify_keys = \"/k/a.pem, /k/b.pem,,  /k/c.pem \"\n"), 0);
    assert_int_equal(f->cfg.auth.nverify_keys, 3);
    assert_string_equal(f->cfg.auth.verify_key[0], "/k/a.pem");
    assert_string_equal(f->cfg.auth.verify_key[1], "/k/b.pem");
    assert_string_equal(f->cfg.auth.verify_key[2], "/k/c.pem");
    assert_refused(f, load_text(f, "[auth]\nverify_keys = a b c d\n"), "auth.verify_keys",
                   "more than 3");
    /* A removal is an emptied value, from the file or the environment. */
    setenv("TESSERA_AUTH_VERIFY_KEYS", "", 1);
    assert_int_equal(load_text(f, "[auth]\nverify_keys = /k/a.pem\n"), 0);
    assert_int_equal(f->cfg.auth.nverify_keys, 0);
    unsetenv("TESSERA_AUTH_VERIFY_KEYS");
    snprintf(text, sizeof text, "[auth]\nverify_keys = /%0300d\n", 0);
    assert_refused(f, load_text(f, text), "auth.verify_keys", "longer");
}

static void test_jws_alg_is_eddsa_unless_configured(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "[auth]\n"), 0);
    assert_int_equal(f->cfg.auth.jws_alg, 0);
    assert_int_equal(load_text(f, "[auth]\njws_alg = Ed25519\n"), 0);
    assert_int_equal(f->cfg.auth.jws_alg, 1);
    assert_refused(f, load_text(f, "[auth]\njws_alg = ES256\n"), "auth.jws_alg", "EdDSA|Ed25519");
    assert_refused(f, load_text(f, "[auth]\njws_alg = ed25519\n"), "auth.jws_alg", NULL);
}

static void test_string_longer_than_its_field_is_refused(void **state)
{
    struct fixture *f = *state;
    char text[400] = "[auth]\nissuer = ";
    size_t n = strlen(text);

    memset(text + n, 'i', 128); /* issuer holds 127 */
    snprintf(text + n + 128, sizeof text - n - 128, "\n");
    assert_refused(f, load_text(f, text), "auth.issuer", "longer");
    text[n + 127] = '\n';
    text[n + 128] = '\0';
    assert_int_equal(load_text(f, text), 0);
    assert_int_equal(strlen(f->cfg.auth.issuer), 127);
}

static void test_empty_listen_is_refused(void **state)
{
    struct fixture *f = *state;

    assert_refused(f, load_text(f, "[fleet]\nlisten = \"\"\n"), "fleet.listen", NULL);
}

/* ---- masking and the JSON dump ---- */

static void mask(const char *in, char *out, size_t sz)
{
    memset(out, 'X', sz);
    config_mask_secret(in, out, sz);
}

/* Masks `in` into a 128-byte buffer and expects exactly `want`. */
static void assert_masked(const char *in, const char *want)
{
    char out[128];

    mask(in, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_mask_dsn_password(void **state)
{
    assert_masked("host=x password=secret user=y", "host=x password=*** user=y");
    assert_masked("password=secret", "password=***");
}

static void test_mask_quoted_dsn_password_with_spaces(void **state)
{
    assert_masked("password='a b'", "password=***");
    assert_masked("host=x password='a \\' b' user=y", "host=x password=*** user=y");
}

static void test_mask_url_userinfo_password(void **state)
{
    assert_masked("redis://user:pass@host:6379/0", "redis://user:***@host:6379/0");
    assert_masked("redis://:pass@host:6379", "redis://:***@host:6379");
    assert_masked("postgresql://app:s3cr3t@db.internal:5432/core?sslmode=require",
                  "postgresql://app:***@db.internal:5432/core?sslmode=require");
}

static void test_mask_leaves_strings_without_password_unchanged(void **state)
{
    static const char *const same[] = {
        "redis://host:6379/0",
        "redis://user@host:6379/0",
        "redis://host:6379/0?x=a@b",
        "host=x user=y dbname=z",
        "mypassword=notakey",
        "host=x password",
        "user=password",
        "",
    };

    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        assert_masked(same[i], same[i]);
}

static void test_mask_password_in_uri_query_parameter(void **state)
{
    assert_masked("postgresql://app@db/core?sslmode=require&password=s3cr3t",
                  "postgresql://app@db/core?sslmode=require&password=***");
    assert_masked("postgresql:///core?password=s3cr3t&host=/run/pg",
                  "postgresql:///core?password=***&host=/run/pg");
}

static void test_mask_dsn_password_with_spaces_around_equals(void **state)
{
    /* libpq allows spaces around '=' in a key/value DSN */
    assert_masked("host=x password = secret user=y", "host=x password=*** user=y");
    assert_masked("password= 'a b' user=y", "password=*** user=y");
}

static void test_mask_output_is_bounded_and_terminated(void **state)
{
    char out[12];

    memset(out, 'X', sizeof out);
    config_mask_secret("host=x password=secret user=y", out, 10);
    assert_int_equal(strlen(out), 9);
    assert_memory_equal(out, "host=x pa", 9);
    assert_int_equal(out[10], 'X');
    mask("redis://user:pass@host", out, 8);
    assert_int_equal(strlen(out), 7);
    assert_null(strstr(out, "pass"));
    mask("password=secret", out, 1);
    assert_string_equal(out, "");
}

static const char *json_str(const cJSON *root, const char *section, const char *key)
{
    const cJSON *s = section != NULL ? cJSON_GetObjectItemCaseSensitive(root, section) : root;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!cJSON_IsString(v))
        fail_msg("%s.%s is not a string", section ? section : "", key);
    return v->valuestring;
}

static void test_to_json_masks_secrets_and_shows_resolved_values(void **state)
{
    struct fixture *f = *state;
    cJSON *j;
    char *text;

    assert_int_equal(load_text(f,
                               "env = production\n"
                               "[db]\n"
                               "core_dsn = host=x password=secret user=y\n"
                               "live_dsn = \"host=z password='a b'\"\n"
                               "[redis]\n"
                               "url = redis://user:pass@host:6379/0\n"),
                     0);
    j = config_to_json(&f->cfg);
    assert_non_null(j);
    assert_string_equal(json_str(j, NULL, "env"), "production");
    assert_string_equal(json_str(j, NULL, "engine"), "postgres");
    assert_string_equal(json_str(j, "db", "core_dsn"), "host=x password=*** user=y");
    assert_string_equal(json_str(j, "db", "live_dsn"), "host=z password=***");
    assert_string_equal(json_str(j, "redis", "url"), "redis://user:***@host:6379/0");
    assert_string_equal(json_str(j, "fleet", "listen_mode"), "0660");
    assert_string_equal(json_str(j, "log", "level"), "info");
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "fleet"), "workers");
    assert_true(cJSON_IsNumber(workers));
    assert_int_equal(workers->valueint, 0);

    text = cJSON_PrintUnformatted(j);
    assert_non_null(text);
    assert_null(strstr(text, "secret"));
    assert_null(strstr(text, "a b"));
    assert_null(strstr(text, ":pass@"));
    cJSON_free(text);
    cJSON_Delete(j);
    /* the struct itself keeps the real values */
    assert_string_equal(f->cfg.db.core_dsn, "host=x password=secret user=y");
}

static void test_env_and_engine_names(void **state)
{
    assert_string_equal(config_env_name(CONFIG_ENV_TEST), "test");
    assert_string_equal(config_env_name(CONFIG_ENV_DEVELOP), "develop");
    assert_string_equal(config_env_name(CONFIG_ENV_STAGING), "staging");
    assert_string_equal(config_env_name(CONFIG_ENV_PRODUCTION), "production");
    assert_string_equal(config_env_name(-1), "?");
    assert_string_equal(config_env_name(4), "?");
    assert_string_equal(config_engine_name(CONFIG_ENGINE_MEMORY), "memory");
    assert_string_equal(config_engine_name(CONFIG_ENGINE_POSTGRES), "postgres");
    assert_string_equal(config_engine_name(2), "?");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)


/* ---- placement sections (issue 18 §7) ---- */

static void test_svc_and_database_sections_parse_with_mode_fallbacks(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    assert_int_equal(load_text(f, "engine = postgres\n[db]\ncore_dsn = host=core\n"
                                  "[svc.orders]\ndsn = \"host=a dbname=orders password=s3cret\"\n"
                                  "live_dsn = host=b\nmigrate_dsn = host=a user=owner\n"
                                  "[database.eu-1]\ntest_dsn = host=eu\ntest_listen_dsn = host=eu-direct\n"
                                  "[svc.orders]\ntest_migrate_dsn = host=a2\n"),
                     0);
    assert_int_equal(c->svc.n, 1);
    assert_int_equal(c->database.n, 1);
    const struct config_place *o = config_place_find(&c->svc, "orders");
    assert_non_null(o);
    assert_string_equal(config_place_dsn(o, 0), "host=a dbname=orders password=s3cret");
    assert_string_equal(config_place_dsn(o, 1), "host=b");
    assert_string_equal(config_place_migrate_dsn(o, 0), "host=a2");
    assert_string_equal(config_place_migrate_dsn(o, 1), "host=a user=owner");
    const struct config_place *d = config_place_find(&c->database, "eu-1");
    assert_non_null(d);
    assert_string_equal(config_place_dsn(d, 0), "host=eu");
    assert_string_equal(config_place_dsn(d, 1), "");    /* the [db] live DSN applies */
    assert_string_equal(d->dsn[CONFIG_PLACE_TEST_LISTEN_DSN], "host=eu-direct");
    assert_null(config_place_find(&c->database, "orders"));
}

static void test_placement_env_overrides_make_and_change_sections(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;

    setenv("TESSERA_ENGINE", "postgres", 1);
    setenv("TESSERA_DB_CORE_DSN", "host=core", 1);
    setenv("TESSERA_SVC_BILLING_TEST_DSN", "host=t", 1);
    setenv("TESSERA_SVC_BILLING_DSN", "host=any", 1);
    setenv("TESSERA_DATABASE_TENANT_A_LIVE_MIGRATE_DSN", "host=o", 1);
    setenv("TESSERA_DATABASE_TENANT_A_DSN", "host=file-loses", 1);
    assert_int_equal(load_text(f, "[database.tenant_a]\ndsn = host=file\n"), 0);
    const struct config_place *b = config_place_find(&c->svc, "billing");
    assert_non_null(b);
    assert_string_equal(config_place_dsn(b, 0), "host=t");
    assert_string_equal(config_place_dsn(b, 1), "host=any");
    const struct config_place *d = config_place_find(&c->database, "tenant_a");
    assert_non_null(d);
    assert_string_equal(config_place_dsn(d, 1), "host=file-loses");
    assert_string_equal(config_place_migrate_dsn(d, 1), "host=o");
}

static void test_placement_mistakes_are_refused_naming_the_key(void **state)
{
    struct fixture *f = *state;
    struct config *c = &f->cfg;
    static const char base[] = "engine = postgres\n[db]\ncore_dsn = host=core\n";
    char text[512];

    snprintf(text, sizeof text, "%s[svc.orders]\ndsnn = host=a\n", base);
    assert_refused(f, load_text(f, text), "svc.orders.dsnn", "unknown key");
    snprintf(text, sizeof text, "%s[database.x]\ncore_dsn = host=a\n", base);
    assert_refused(f, load_text(f, text), "database.x.core_dsn", "unknown key");
    snprintf(text, sizeof text, "%s[database.shared]\ndsn = host=a\n", base);
    assert_refused(f, load_text(f, text), "database.shared", "not a valid database name");
    snprintf(text, sizeof text, "%s[svc.Orders]\ndsn = host=a\n", base);
    assert_refused(f, load_text(f, text), "svc.Orders", "not a valid svc name");
    snprintf(text, sizeof text, "%s[svc.orders]\nmigrate_dsn =\n", base);
    assert_refused(f, load_text(f, text), "svc.orders", "names no database");
    /* the memory engine has one store: a placement it would ignore is refused */
    assert_refused(f, load_text(f, "engine = memory\n[svc.orders]\ndsn = host=a\n"), "svc.orders.dsn",
                   "engine = postgres");
    /* a migrate DSN alone is migrate.conf's business, on any engine */
    assert_int_equal(load_text(f, "engine = memory\n[database.eu]\nmigrate_dsn = host=a\n"), 0);
    assert_int_equal(c->database.n, 1);
    setenv("TESSERA_SVC_ORDERS_DNS", "host=a", 1);
    assert_refused(f, config_load(c, NULL, f->errstr), "TESSERA_SVC_ORDERS_DNS", "no such setting");
    unsetenv("TESSERA_SVC_ORDERS_DNS");
    char many[2048] = "engine = postgres\n[db]\ncore_dsn = host=core\n";
    for (int i = 0; i <= CONFIG_PLACES_MAX; i++) {
        char sec[64];
        snprintf(sec, sizeof sec, "[svc.s%d]\ndsn = host=a\n", i);
        strncat(many, sec, sizeof many - strlen(many) - 1);
    }
    assert_refused(f, load_text(f, many), "svc.s8", "more than");
}

static void test_placement_dsns_are_masked_in_the_dump(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, "engine = postgres\n[db]\ncore_dsn = host=core\n"
                                  "[svc.orders]\ndsn = host=a password=hunter2\n"
                                  "[database.eu]\nmigrate_dsn = postgresql://owner:pw@h/db\n"),
                     0);
    cJSON *j = config_to_json(&f->cfg);
    assert_non_null(j);
    char *text = cJSON_PrintUnformatted(j);
    assert_non_null(text);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, ":pw@"));
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "svc"), "orders");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "dsn")), "host=a password=***");
    assert_non_null(strstr(text, "\"database\":{\"eu\":{\"migrate_dsn\":\"postgresql://owner:***@h/db\"}}"));
    cJSON_free(text);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_without_file_are_develop_with_memory_engine),
        T(test_production_defaults_use_postgres_and_system_paths),
        T(test_env_in_file_selects_the_defaults),
        T(test_production_without_core_dsn_is_refused),
        T(test_engine_postgres_without_core_dsn_is_refused),
        T(test_file_sections_comments_blank_lines_and_whitespace),
        T(test_file_quotes_are_stripped_once_and_only_when_matching),
        T(test_file_repeated_key_last_wins),
        T(test_unknown_key_is_refused_naming_section_and_key),
        T(test_malformed_lines_are_refused_with_the_line_number),
        T(test_overlong_line_is_refused),
        T(test_missing_file_is_refused),
        T(test_env_override_with_non_integer_is_refused_naming_key),
        T(test_env_overrides_beat_the_file),
        T(test_bad_file_value_is_refused_even_when_env_overrides_it),
        T(test_integers_out_of_range_or_malformed_are_refused),
        T(test_login_throttle_limits_default_and_are_bounded),
        T(test_listen_mode_is_octal),
        T(test_password_cost_below_17_refused_in_production),
        T(test_password_cost_below_17_allowed_in_test_and_develop),
        T(test_enums_accept_their_names_only),
        T(test_verify_keys_are_split_and_bounded),
        T(test_jws_alg_is_eddsa_unless_configured),
        T(test_string_longer_than_its_field_is_refused),
        T(test_empty_listen_is_refused),
        cmocka_unit_test(test_mask_dsn_password),
        cmocka_unit_test(test_mask_quoted_dsn_password_with_spaces),
        cmocka_unit_test(test_mask_url_userinfo_password),
        cmocka_unit_test(test_mask_leaves_strings_without_password_unchanged),
        cmocka_unit_test(test_mask_password_in_uri_query_parameter),
        cmocka_unit_test(test_mask_dsn_password_with_spaces_around_equals),
        cmocka_unit_test(test_mask_output_is_bounded_and_terminated),
        T(test_to_json_masks_secrets_and_shows_resolved_values),
        cmocka_unit_test(test_env_and_engine_names),
        cmocka_unit_test_setup_teardown(test_cqrs_and_audit_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_mistyped_setting_variable_is_refused_naming_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_svc_and_database_sections_parse_with_mode_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_env_overrides_make_and_change_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_mistakes_are_refused_naming_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_dsns_are_masked_in_the_dump, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
