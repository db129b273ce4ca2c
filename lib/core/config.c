/* One table describes every key: where it lives in struct config, its type,
 * its bounds, its default per env and whether it is a secret. Loading is:
 * defaults for the env → file → environment, each value validated as it is
 * applied, so an error always names the key and where the value came from.
 * The env itself is resolved first (file, then TESSERA_ENV) because the other
 * defaults depend on it. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum key_type { T_INT, T_OCTAL, T_STR, T_ENUM };

extern char **environ;

struct key_def {
    const char *section;        /* "" for top-level keys */
    const char *name;
    enum key_type type;
    size_t offset;
    size_t size;                /* string capacity */
    long min, max;              /* ints */
    const char *const *names;   /* enum value names, NULL-terminated */
    const char *dev_default;    /* test and develop */
    const char *prod_default;   /* staging and production; NULL: same as dev */
    int secret;                 /* mask passwords when printed */
};

static const char *const ENV_NAMES[] = {"test", "develop", "staging", "production", NULL};
static const char *const ENGINE_NAMES[] = {"memory", "postgres", NULL};
static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error", NULL};
static const char *const OFF_ON[] = {"off", "on", NULL};
/* In the order of enum jwt_alg (lib/security/jwt.h); config knows no jwt. */
static const char *const JWS_ALG_NAMES[] = {"EdDSA", "Ed25519", NULL};

#define OFF(f) offsetof(struct config, f)
#define INT(sec, key, field, lo, hi, dev, prod) \
    {sec, key, T_INT, OFF(field), 0, lo, hi, NULL, dev, prod, 0}
#define STR(sec, key, field, dev, prod, secret) \
    {sec, key, T_STR, OFF(field), sizeof(((struct config *)0)->field), 0, 0, NULL, dev, prod, secret}

static const struct key_def KEYS[] = {
    {"", "env", T_ENUM, OFF(env), 0, 0, 0, ENV_NAMES, "develop", NULL, 0},
    /* engine's default is derived from env in apply_defaults() */
    {"", "engine", T_ENUM, OFF(engine), 0, 0, 0, ENGINE_NAMES, "memory", "postgres", 0},

    INT("fleet", "workers", fleet.workers, 0, 256, "2", "0"),
    INT("fleet", "projectors", fleet.projectors, 0, 16, "1", NULL),
    STR("fleet", "listen", fleet.listen, "build/run/tessera.sock", "/run/tessera/tessera.sock", 0),
    STR("fleet", "listen_owner", fleet.listen_owner, "", NULL, 0),
    /* dev: nginx started as root runs its workers as nobody, who must reach the
     * socket under build/; production: 0660 plus listen_owner for nginx's group */
    {"fleet", "listen_mode", T_OCTAL, OFF(fleet.listen_mode), 0, 0, 0777, NULL, "0666", "0660", 0},
    STR("fleet", "control", fleet.control, "build/run/control.sock", "/run/tessera/control.sock", 0),
    STR("fleet", "pid_file", fleet.pid_file, "build/run/tessera.pid", "/run/tessera/tessera.pid", 0),
    INT("fleet", "max_requests", fleet.max_requests, 0, INT_MAX, "0", "100000"),
    INT("fleet", "max_memory_mb", fleet.max_memory_mb, 0, 1 << 20, "0", "512"),
    INT("fleet", "graceful_timeout", fleet.graceful_timeout, 1, 3600, "10", "30"),
    INT("fleet", "restart_backoff_max", fleet.restart_backoff_max, 1, 3600, "30", NULL),
    INT("fleet", "request_timeout", fleet.request_timeout, 0, 3600, "60", NULL),
    INT("fleet", "slowlog_ms", fleet.slowlog_ms, 0, 3600000, "500", "1000"),
    INT("fleet", "maintenance_interval", fleet.maintenance_interval, 1, 86400, "60", NULL),

    INT("http", "max_body_kb", http.max_body_kb, 1, 1 << 20, "1024", NULL),
    INT("http", "max_json_depth", http.max_json_depth, 1, 256, "32", NULL),
    INT("http", "max_json_nodes", http.max_json_nodes, 16, 10000000, "100000", NULL),
    /* off unless set (its form is checked by the fleet: lib/http/cors.h) */
    STR("http", "cors_origins", http.cors_origins, "", NULL, 0),

    STR("db", "core_dsn", db.core_dsn, "", NULL, 1),
    STR("db", "test_dsn", db.test_dsn, "", NULL, 1),
    STR("db", "live_dsn", db.live_dsn, "", NULL, 1),
    STR("db", "migrate_dsn", db.migrate_dsn, "", NULL, 1),
    STR("db", "sql_dir", db.sql_dir, "sql", "/usr/share/tessera/sql", 0),
    INT("db", "connection_limit", db.connection_limit, 1, 64, "2", NULL),
    /* off by default: named statements are session state, which PgBouncer in
     * transaction pooling cannot carry (DESIGN §3); on for direct connections */
    {"db", "prepare", T_ENUM, OFF(db.prepare), 0, 0, 0, OFF_ON, "off", NULL, 0},

    STR("redis", "url", redis.url, "", NULL, 1),
    INT("redis", "timeout_ms", redis.timeout_ms, 1, 60000, "250", NULL),

    /* the waiter's bound exceeds the lock's TTL, so a killed loader is replaced by
     * one waiter when its lock expires, not by every waiter at once */
    STR("cache", "redis_url", cache.redis_url, "", NULL, 1),
    INT("cache", "lock_ms", cache.lock_ms, 10, 60000, "2000", NULL),
    INT("cache", "wait_ms", cache.wait_ms, 10, 60000, "3000", NULL),
    {"cache", "principal", T_ENUM, OFF(cache.principal), 0, 0, 0, OFF_ON, "on", NULL, 0},
    INT("cache", "principal_ttl", cache.principal_ttl, 1, 86400, "300", NULL),
    {"cache", "apps", T_ENUM, OFF(cache.apps), 0, 0, 0, OFF_ON, "on", NULL, 0},
    INT("cache", "apps_ttl", cache.apps_ttl, 1, 86400, "30", NULL),
    {"cache", "schema", T_ENUM, OFF(cache.schema), 0, 0, 0, OFF_ON, "on", NULL, 0},
    INT("cache", "schema_ttl", cache.schema_ttl, 1, 86400, "300", NULL),
    {"cache", "records", T_ENUM, OFF(cache.records), 0, 0, 0, OFF_ON, "on", NULL, 0},
    INT("cache", "records_ttl", cache.records_ttl, 1, 86400, "60", NULL),

    STR("auth", "signing_key", auth.signing_key, "build/keys/jwt.pem", "/etc/tessera/jwt.pem", 0),
    STR("auth", "verify_keys", auth.verify_keys, "", NULL, 0),
    /* "EdDSA" until verifiers know RFC 9864's name; both always verify */
    {"auth", "jws_alg", T_ENUM, OFF(auth.jws_alg), 0, 0, 0, JWS_ALG_NAMES, "EdDSA", NULL, 0},
    STR("auth", "issuer", auth.issuer, "tessera", NULL, 0),
    STR("auth", "audience", auth.audience, "tessera-api", NULL, 0),
    INT("auth", "access_ttl", auth.access_ttl, 30, 86400, "900", NULL),
    INT("auth", "refresh_ttl", auth.refresh_ttl, 60, 365 * 86400, "2592000", NULL),
    INT("auth", "refresh_reuse_interval", auth.refresh_reuse_interval, 0, 300, "10", NULL),
    INT("auth", "password_cost", auth.password_cost, 10, 22, "17", NULL),
    /* failed logins per window: an account's (a guesser on one victim) and a client
     * address's (a guesser across many), higher because an office or a NAT shares one */
    INT("auth", "login_max_failures", auth.login_max_failures, 1, 1000000, "10", NULL),
    INT("auth", "login_max_failures_addr", auth.login_max_failures_addr, 1, 10000000, "100", NULL),
    INT("auth", "login_window_s", auth.login_window_s, 1, 86400, "900", NULL),
    /* the account lifecycle: a reset token's and a verification token's life;
     * the least time a password/forgot answer takes, so that a known and an
     * unknown email answer alike; the dev tokens in the log (make run) */
    {"auth", "require_verified_email", T_ENUM, OFF(auth.require_verified_email), 0, 0, 0, OFF_ON, "off", NULL, 0},
    INT("auth", "reset_ttl", auth.reset_ttl, 60, 86400, "1800", NULL),
    INT("auth", "verify_ttl", auth.verify_ttl, 60, 30 * 86400, "86400", NULL),
    INT("auth", "forgot_floor_ms", auth.forgot_floor_ms, 0, 10000, "100", NULL),
    {"auth", "log_tokens", T_ENUM, OFF(auth.log_tokens), 0, 0, 0, OFF_ON, "off", NULL, 0},

    /* the projector (DESIGN §6): events per store per round, the wait between
     * rounds when nothing wakes it, the pause after a busy round (events
     * gather: one round for many under load), the reaper's period, what it keeps */
    INT("cqrs", "batch", cqrs.batch, 1, 10000, "256", NULL),
    INT("cqrs", "poll_ms", cqrs.poll_ms, 10, 60000, "1000", NULL),
    INT("cqrs", "gather_ms", cqrs.gather_ms, 0, 1000, "50", NULL),
    INT("cqrs", "reap_interval", cqrs.reap_interval, 1, 86400, "10", "60"),
    INT("cqrs", "changes_retention", cqrs.changes_retention, 60, 366 * 86400, "604800", NULL),
    INT("cqrs", "token_grace", cqrs.token_grace, 0, 366 * 86400, "86400", NULL),
    /* LISTEN is session state: these must reach PostgreSQL directly (or a
     * session-mode PgBouncer pool), never a transaction-pooled PgBouncer */
    STR("cqrs", "test_listen_dsn", cqrs.test_listen_dsn, "", NULL, 1),
    STR("cqrs", "live_listen_dsn", cqrs.live_listen_dsn, "", NULL, 1),

    INT("audit", "retention_months", audit.retention_months, 0, 1200, "12", NULL),

    STR("crypto", "data_key", crypto.data_key, "build/keys/data.key", "/etc/tessera/data.key", 0),

    INT("memory", "size_mb", memory.size_mb, 1, 1 << 16, "64", NULL),

    {"log", "level", T_ENUM, OFF(log.level), 0, 0, 0, LEVEL_NAMES, "info", NULL, 0},
};

#define NKEYS (sizeof KEYS / sizeof KEYS[0])

/* Where a value came from, for error messages. */
struct origin {
    const char *file;
    int line;
    const char *envvar;
};

static void where(const struct origin *o, char *buf, size_t sz)
{
    if (o->envvar != NULL)
        snprintf(buf, sz, " (from %s)", o->envvar);
    else if (o->file != NULL)
        snprintf(buf, sz, " (%s:%d)", o->file, o->line);
    else
        buf[0] = '\0';
}

static const struct key_def *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].section, section) == 0 && strcmp(KEYS[i].name, name) == 0)
            return &KEYS[i];
    return NULL;
}

static void key_label(const struct key_def *k, char *buf, size_t sz)
{
    if (k->section[0] != '\0')
        snprintf(buf, sz, "%s.%s", k->section, k->name);
    else
        snprintf(buf, sz, "%s", k->name);
}

static int enum_index(const char *const *names, const char *v)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(names[i], v) == 0)
            return i;
    return -1;
}

/* Sets one key from text; on error writes the message naming the key. */
static int apply(struct config *cfg, const struct key_def *k, const char *v,
                 const struct origin *o, char errstr[256])
{
    char label[64], from[CONFIG_PATH_MAX + 32];
    char *field = (char *)cfg + k->offset;

    key_label(k, label, sizeof label);
    where(o, from, sizeof from);
    switch (k->type) {
    case T_INT:
    case T_OCTAL: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, k->type == T_OCTAL ? 8 : 10);
        if (errno != 0 || end == v || *end != '\0' || isspace((unsigned char)v[0])) {
            snprintf(errstr, 256, "config: %s: expected %s, got \"%.40s\"%s", label,
                     k->type == T_OCTAL ? "an octal mode like 0660" : "an integer", v, from);
            return ERR_INVAL;
        }
        if (n < k->min || n > k->max) {
            snprintf(errstr, 256, "config: %s: %ld is out of range [%ld, %ld]%s", label, n,
                     k->min, k->max, from);
            return ERR_INVAL;
        }
        *(int *)field = (int)n;
        return 0;
    }
    case T_STR:
        if (strlen(v) >= k->size) {
            snprintf(errstr, 256, "config: %s: longer than %zu bytes%s", label, k->size - 1, from);
            return ERR_INVAL;
        }
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case T_ENUM: {
        int i = enum_index(k->names, v);
        if (i < 0) {
            char list[128] = "";
            for (int j = 0; k->names[j] != NULL; j++) {
                strncat(list, j ? "|" : "", sizeof list - strlen(list) - 1);
                strncat(list, k->names[j], sizeof list - strlen(list) - 1);
            }
            snprintf(errstr, 256, "config: %s: expected %s, got \"%.40s\"%s", label, list, v, from);
            return ERR_INVAL;
        }
        *(int *)field = i;
        return 0;
    }
    }
    return ERR_INTERNAL;
}

/* One parsed `key = value` of the file, kept so env can be resolved first. */
struct entry {
    char section[80];           /* "svc.<name>" and "database.<name>" too */
    char key[64];
    char value[CONFIG_DSN_MAX];
    int line;
};

#define MAX_ENTRIES 192

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Strips one pair of matching quotes, so `dsn = "host=x port=5"` works. */
static char *unquote(char *v)
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        return v + 1;
    }
    return v;
}

/* ---- placement sections: [svc.<name>], [database.<name>] ------------------ */

static const char *const PLACE_KEYS[CONFIG_PLACE_NKEYS] = {
    "dsn", "test_dsn", "live_dsn", "migrate_dsn", "test_migrate_dsn", "live_migrate_dsn",
    "test_listen_dsn", "live_listen_dsn",
};

const char *config_place_key_name(int key)
{
    return key >= 0 && key < CONFIG_PLACE_NKEYS ? PLACE_KEYS[key] : "?";
}

static int place_key_index(const char *key)
{
    for (int i = 0; i < CONFIG_PLACE_NKEYS; i++)
        if (strcmp(PLACE_KEYS[i], key) == 0)
            return i;
    return -1;
}

/* The kind of a placement section ("svc" or "database") and where its name
 * starts, or NULL for any other section. */
static const char *place_kind(const char *section, const char **name)
{
    static const char *const kinds[] = {"svc", "database"};

    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(section, kinds[i], n) == 0 && section[n] == '.') {
            *name = section + n + 1;
            return kinds[i];
        }
    }
    return NULL;
}

static bool place_key_known(const char *section, const char *key)
{
    const char *name;

    return place_kind(section, &name) != NULL && place_key_index(key) >= 0;
}

/* A service name as the API takes it (apps.name), or a database name: a
 * letter first, at most 31 characters, and never "shared" (the pooled
 * database every org not placed elsewhere shares). */
static bool place_name_ok(const char *kind, const char *name)
{
    bool svc = strcmp(kind, "svc") == 0;
    size_t n = strlen(name), max = svc ? 63 : 31;

    if (n == 0 || n > max || (svc ? !(islower((unsigned char)name[0]) || isdigit((unsigned char)name[0]))
                                  : !islower((unsigned char)name[0])))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '_' || name[i] == '-'))
            return false;
    return svc || strcmp(name, "shared") != 0;
}

static struct config_places *place_list(struct config *cfg, const char *kind)
{
    return strcmp(kind, "svc") == 0 ? &cfg->svc : &cfg->database;
}

/* Sets key of the placement kind.name, making the section on first use. */
static int place_set(struct config *cfg, const char *kind, const char *name, int key, const char *v,
                     const struct origin *o, char errstr[256])
{
    struct config_places *l = place_list(cfg, kind);
    char from[CONFIG_PATH_MAX + 32];
    int i;

    where(o, from, sizeof from);
    if (!place_name_ok(kind, name)) {
        snprintf(errstr, 256, "config: %s.%.64s: not a valid %s name (%s)%s", kind, name, kind,
                 strcmp(kind, "svc") == 0 ? "[a-z0-9][a-z0-9_-]{0,62}" : "[a-z][a-z0-9_-]{0,30}, not \"shared\"",
                 from);
        return ERR_INVAL;
    }
    for (i = 0; i < l->n && strcmp(l->at[i].name, name) != 0; i++)
        ;
    if (i == l->n) {
        if (l->n == CONFIG_PLACES_MAX) {
            snprintf(errstr, 256, "config: %s.%s: more than %d [%s.*] sections%s", kind, name, CONFIG_PLACES_MAX,
                     kind, from);
            return ERR_INVAL;
        }
        memset(&l->at[i], 0, sizeof l->at[i]);
        snprintf(l->at[i].name, sizeof l->at[i].name, "%s", name);
        l->n++;
    }
    if (strlen(v) >= CONFIG_DSN_MAX) {
        snprintf(errstr, 256, "config: %s.%s.%s: longer than %d bytes%s", kind, name, PLACE_KEYS[key],
                 CONFIG_DSN_MAX - 1, from);
        return ERR_INVAL;
    }
    memcpy(l->at[i].dsn[key], v, strlen(v) + 1);
    return 0;
}

/* TESSERA_SVC_<NAME>_<KEY> / TESSERA_DATABASE_<NAME>_<KEY>: the longest key
 * that ends the name wins (so a name cannot itself end in _test_dsn or
 * such); the name is lowercased (a name with '-' is for the file only). 0
 * when var is not such a variable; 1 with kind, name and key set; -1 when it
 * names no key. */
static int place_env_parse(const char *var, const char **kind, char *name, size_t cap, int *key)
{
    static const char *const kinds[][2] = {{"TESSERA_SVC_", "svc"}, {"TESSERA_DATABASE_", "database"}};
    const char *rest = NULL;

    for (size_t i = 0; i < 2 && rest == NULL; i++)
        if (strncmp(var, kinds[i][0], strlen(kinds[i][0])) == 0) {
            rest = var + strlen(kinds[i][0]);
            *kind = kinds[i][1];
        }
    if (rest == NULL)
        return 0;
    size_t n = strlen(rest), best = 0;
    *key = -1;
    for (int k = 0; k < CONFIG_PLACE_NKEYS; k++) {
        size_t kl = strlen(PLACE_KEYS[k]);
        if (n > kl + 1 && rest[n - kl - 1] == '_' && kl > best && strncasecmp(rest + n - kl, PLACE_KEYS[k], kl) == 0) {
            best = kl;
            *key = k;
        }
    }
    if (*key < 0 || n - best - 1 >= cap)
        return -1;
    for (size_t i = 0; i < n - best - 1; i++)
        name[i] = (char)tolower((unsigned char)rest[i]);
    name[n - best - 1] = '\0';
    return 1;
}

/* The placement sections of the file, then their environment overrides. */
static int apply_places(struct config *cfg, const struct entry *ents, int nents, const char *path,
                        char errstr[256])
{
    int rc = 0;

    for (int i = 0; rc == 0 && i < nents; i++) {
        const char *name, *kind = place_kind(ents[i].section, &name);
        if (kind != NULL) {
            struct origin o = {.file = path, .line = ents[i].line};
            rc = place_set(cfg, kind, name, place_key_index(ents[i].key), ents[i].value, &o, errstr);
        }
    }
    for (char **e = environ; rc == 0 && e != NULL && *e != NULL; e++) {
        const char *v = *e, *eq = strchr(v, '='), *kind;
        char var[128], name[CONFIG_PLACE_NAME + 1];
        int key, found;

        if (eq == NULL || (size_t)(eq - v) >= sizeof var)
            continue;
        memcpy(var, v, (size_t)(eq - v));
        var[eq - v] = '\0';
        if ((found = place_env_parse(var, &kind, name, sizeof name, &key)) == 0)
            continue;
        if (found < 0) {
            snprintf(errstr, 256, "config: %s: no such setting (TESSERA_%s_<NAME>_<KEY>, KEY one of dsn, "
                                  "test_dsn, live_dsn, …)", var, strcmp(kind, "svc") == 0 ? "SVC" : "DATABASE");
            return ERR_INVAL;
        }
        struct origin o = {.envvar = var};
        rc = place_set(cfg, kind, name, key, eq + 1, &o, errstr);
    }
    return rc;
}

const char *config_place_dsn(const struct config_place *p, int mode)
{
    const char *own = p->dsn[mode == 1 ? CONFIG_PLACE_LIVE_DSN : CONFIG_PLACE_TEST_DSN];

    return own[0] != '\0' ? own : p->dsn[CONFIG_PLACE_DSN];
}

const char *config_place_migrate_dsn(const struct config_place *p, int mode)
{
    const char *own = p->dsn[mode == 1 ? CONFIG_PLACE_LIVE_MIGRATE_DSN : CONFIG_PLACE_TEST_MIGRATE_DSN];

    return own[0] != '\0' ? own : p->dsn[CONFIG_PLACE_MIGRATE_DSN];
}

const struct config_place *config_place_find(const struct config_places *list, const char *name)
{
    for (int i = 0; i < list->n; i++)
        if (strcmp(list->at[i].name, name) == 0)
            return &list->at[i];
    return NULL;
}

/* A placement section must name a database (an app or a migrate DSN); app
 * DSNs need engine = postgres: the memory engine has one store, and a
 * setting it would silently ignore is refused instead. */
static int check_places(const struct config *cfg, char errstr[256])
{
    const struct config_places *lists[2] = {&cfg->svc, &cfg->database};
    const char *kinds[2] = {"svc", "database"};

    for (int k = 0; k < 2; k++)
        for (int i = 0; i < lists[k]->n; i++) {
            const struct config_place *p = &lists[k]->at[i];
            bool app = config_place_dsn(p, 0)[0] != '\0' || config_place_dsn(p, 1)[0] != '\0';
            bool owner = config_place_migrate_dsn(p, 0)[0] != '\0' || config_place_migrate_dsn(p, 1)[0] != '\0';
            if (!app && !owner) {
                snprintf(errstr, 256, "config: %s.%s: names no database (set dsn, test_dsn or live_dsn)", kinds[k],
                         p->name);
                return ERR_INVAL;
            }
            if (app && cfg->engine != CONFIG_ENGINE_POSTGRES) {
                snprintf(errstr, 256, "config: %s.%s.%s: placement needs engine = postgres (the memory engine "
                                      "has one store)", kinds[k], p->name,
                         p->dsn[CONFIG_PLACE_DSN][0] != '\0' ? "dsn" : p->dsn[CONFIG_PLACE_TEST_DSN][0] != '\0' ? "test_dsn" : "live_dsn");
                return ERR_INVAL;
            }
        }
    return 0;
}

static int read_file(const char *path, struct entry *ents, int *nents, char errstr[256])
{
    FILE *f = fopen(path, "r");
    char line[1024], section[80] = "";
    int lineno = 0, rc = 0;

    if (f == NULL) {
        snprintf(errstr, 256, "config: cannot open %s: %s", path, strerror(errno));
        return ERR_INVAL;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(errstr, 256, "config: %s:%d: line longer than %zu bytes", path, lineno,
                     sizeof line - 2);
            rc = ERR_INVAL;
            goto out;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (close == NULL || close[1] != '\0' || (size_t)(close - s - 1) >= sizeof section) {
                snprintf(errstr, 256, "config: %s:%d: malformed section header", path, lineno);
                rc = ERR_INVAL;
                goto out;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(errstr, 256, "config: %s:%d: expected key = value", path, lineno);
            rc = ERR_INVAL;
            goto out;
        }
        *eq = '\0';
        char *key = trim(s), *val = unquote(trim(eq + 1));
        if (find_key(section, key) == NULL && !place_key_known(section, key)) {
            snprintf(errstr, 256, "config: %s%s%s: unknown key (%s:%d)", section,
                     section[0] ? "." : "", key, path, lineno);
            rc = ERR_INVAL;
            goto out;
        }
        if (*nents == MAX_ENTRIES) {
            snprintf(errstr, 256, "config: %s:%d: too many keys", path, lineno);
            rc = ERR_INVAL;
            goto out;
        }
        struct entry *e = &ents[(*nents)++];
        snprintf(e->section, sizeof e->section, "%s", section);
        snprintf(e->key, sizeof e->key, "%s", key);
        if (strlen(val) >= sizeof e->value) {
            snprintf(errstr, 256, "config: %s.%s: value too long (%s:%d)", section, key, path,
                     lineno);
            rc = ERR_INVAL;
            goto out;
        }
        snprintf(e->value, sizeof e->value, "%s", val);
        e->line = lineno;
    }
out:
    fclose(f);
    return rc;
}

static void env_name(const struct key_def *k, char *buf, size_t sz)
{
    size_t n = (size_t)snprintf(buf, sz, "TESSERA_%s%s%s", k->section, k->section[0] ? "_" : "",
                                k->name);
    for (size_t i = 0; i < n && i < sz; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

static int is_dev(int env)
{
    return env == CONFIG_ENV_TEST || env == CONFIG_ENV_DEVELOP;
}

/* Every value set so far for one key, in the order file then environment. */
static int apply_key(struct config *cfg, const struct key_def *k, const struct entry *ents,
                     int nents, const char *path, char errstr[256])
{
    const char *dflt = is_dev(cfg->env) || k->prod_default == NULL ? k->dev_default : k->prod_default;
    struct origin none = {0};
    int rc = apply(cfg, k, dflt, &none, errstr);

    for (int i = 0; rc == 0 && i < nents; i++)
        if (strcmp(ents[i].section, k->section) == 0 && strcmp(ents[i].key, k->name) == 0) {
            struct origin o = {.file = path, .line = ents[i].line};
            rc = apply(cfg, k, ents[i].value, &o, errstr);
        }
    char var[96];
    env_name(k, var, sizeof var);
    const char *ev = getenv(var);
    if (rc == 0 && ev != NULL) {
        struct origin o = {.envvar = var};
        rc = apply(cfg, k, ev, &o, errstr);
    }
    return rc;
}

/* Splits auth.verify_keys (file names between commas or spaces) into
 * auth.verify_key[]: at most CONFIG_VERIFY_KEYS_MAX, each a path that fits. */
static int split_verify_keys(struct config *cfg, char errstr[256])
{
    const char *p = cfg->auth.verify_keys;
    int n = 0;

    while (*p != '\0') {
        size_t len;

        p += strspn(p, ", \t");
        len = strcspn(p, ", \t");
        if (len == 0)
            break;
        if (n == CONFIG_VERIFY_KEYS_MAX) {
            snprintf(errstr, 256, "config: auth.verify_keys: more than %d files",
                     CONFIG_VERIFY_KEYS_MAX);
            return ERR_INVAL;
        }
        if (len >= CONFIG_PATH_MAX) {
            snprintf(errstr, 256, "config: auth.verify_keys: a file name longer than %d bytes",
                     CONFIG_PATH_MAX - 1);
            return ERR_INVAL;
        }
        memcpy(cfg->auth.verify_key[n], p, len);
        cfg->auth.verify_key[n][len] = '\0';
        n++;
        p += len;
    }
    cfg->auth.nverify_keys = n;
    return 0;
}

/* A TESSERA_<SECTION>_<KEY> variable of a known section that names no key
 * is a typo (TESSERA_FLEET_WORKER): refused as the file's unknown keys are,
 * rather than silently ignored. Variables outside the sections
 * (TESSERA_CONFIG, test hooks) are not settings and are left alone. */

static int check_env_names(char errstr[256])
{
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *v = *e, *eq = strchr(v, '=');
        char name[96];

        if (strncmp(v, "TESSERA_", 8) != 0 || eq == NULL || (size_t)(eq - v) >= sizeof name)
            continue;
        memcpy(name, v, (size_t)(eq - v));
        name[eq - v] = '\0';
        bool section = false, known = false;
        for (size_t i = 0; i < NKEYS && !known; i++) {
            char var[96], sec[64];
            size_t n = (size_t)snprintf(sec, sizeof sec, "TESSERA_%s_", KEYS[i].section);
            for (size_t j = 0; j < n && j < sizeof sec; j++)
                sec[j] = (char)toupper((unsigned char)sec[j]);
            env_name(&KEYS[i], var, sizeof var);
            section = section || (KEYS[i].section[0] != '\0' && strncmp(name, sec, n) == 0);
            known = strcmp(name, var) == 0;
        }
        if (section && !known) {
            snprintf(errstr, 256, "config: %s: no such setting (TESSERA_<SECTION>_<KEY>, as in the file's [section] key)",
                     name);
            return ERR_INVAL;
        }
    }
    return 0;
}

/* Rules that span keys or depend on env. */
static int cross_check(const struct config *cfg, char errstr[256])
{
    if (cfg->env == CONFIG_ENV_PRODUCTION && cfg->auth.password_cost < 17) {
        snprintf(errstr, 256,
                 "config: auth.password_cost: %d is below 17, allowed in test and develop only",
                 cfg->auth.password_cost);
        return ERR_INVAL;
    }
    if (cfg->engine == CONFIG_ENGINE_POSTGRES && cfg->db.core_dsn[0] == '\0') {
        snprintf(errstr, 256, "config: db.core_dsn: required when engine = postgres");
        return ERR_INVAL;
    }
    if (cfg->fleet.listen[0] == '\0') {
        snprintf(errstr, 256, "config: fleet.listen: must not be empty");
        return ERR_INVAL;
    }
    if (cfg->cache.wait_ms <= cfg->cache.lock_ms) {
        snprintf(errstr, 256, "config: cache.wait_ms: %d must exceed cache.lock_ms (%d)", cfg->cache.wait_ms,
                 cfg->cache.lock_ms);
        return ERR_INVAL;
    }
    return 0;
}

int config_load(struct config *cfg, const char *path, char errstr[256])
{
    struct entry ents[MAX_ENTRIES];
    int nents = 0, rc;

    memset(cfg, 0, sizeof *cfg);
    errstr[0] = '\0';
    if (path != NULL && (rc = read_file(path, ents, &nents, errstr)) != 0)
        return rc;
    /* env first: every other default depends on it */
    cfg->env = CONFIG_ENV_DEVELOP;
    if ((rc = apply_key(cfg, &KEYS[0], ents, nents, path, errstr)) != 0)
        return rc;
    for (size_t i = 1; i < NKEYS; i++)
        if ((rc = apply_key(cfg, &KEYS[i], ents, nents, path, errstr)) != 0)
            return rc;
    if ((rc = split_verify_keys(cfg, errstr)) != 0 || (rc = check_env_names(errstr)) != 0 ||
        (rc = apply_places(cfg, ents, nents, path, errstr)) != 0)
        return rc;
    if ((rc = cross_check(cfg, errstr)) != 0)
        return rc;
    return check_places(cfg, errstr);
}

const char *config_env_name(int env)
{
    return env >= 0 && env <= CONFIG_ENV_PRODUCTION ? ENV_NAMES[env] : "?";
}

const char *config_engine_name(int engine)
{
    return engine >= 0 && engine <= CONFIG_ENGINE_POSTGRES ? ENGINE_NAMES[engine] : "?";
}

/* Length of a password key at p, its '=' included, or 0: `password=` or
 * `password = ` in a key/value DSN (libpq allows spaces around '='), or a URI
 * query parameter (`?password=` / `&password=`, query set). */
static size_t password_key(const char *s, const char *p, int query)
{
    const char *v;

    if (strncmp(p, "password", 8) != 0 || !(p == s || query || isspace((unsigned char)p[-1])))
        return 0;
    v = p + 8;
    while (!query && isspace((unsigned char)*v))
        v++;
    return *v == '=' ? (size_t)(v + 1 - p) : 0;
}

void config_mask_secret(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    const char *url_at = NULL, *scheme = strstr(s, "://");

    if (outsz == 0)
        return;
    if (scheme != NULL) {
        const char *auth_end = strpbrk(scheme + 3, "/?#");
        const char *at = memchr(scheme + 3, '@', auth_end ? (size_t)(auth_end - scheme - 3)
                                                          : strlen(scheme + 3));
        if (at != NULL)
            url_at = at;
    }
    for (const char *p = s; *p != '\0' && o + 1 < outsz;) {
        if (url_at != NULL && p > scheme + 2 && p < url_at && *p == ':' &&
            memchr(scheme + 3, ':', (size_t)(p - scheme - 3)) == NULL) {
            /* user:pass@ → user:***@ */
            o += (size_t)snprintf(out + o, outsz - o, ":***");
            p = url_at;
            continue;
        }
        int query = p != s && (p[-1] == '?' || p[-1] == '&');
        size_t klen = password_key(s, p, query);
        if (klen != 0) {
            o += (size_t)snprintf(out + o, outsz - o, "password=***");
            p += klen;
            while (!query && isspace((unsigned char)*p))
                p++;
            if (query) {
                while (*p != '\0' && *p != '&' && *p != '#')
                    p++;
            } else if (*p == '\'') {
                for (p++; *p != '\0' && *p != '\''; p++)
                    if (*p == '\\' && p[1] != '\0')
                        p++;
                if (*p == '\'')
                    p++;
            } else {
                while (*p != '\0' && !isspace((unsigned char)*p))
                    p++;
            }
            continue;
        }
        out[o++] = *p++;
    }
    out[o < outsz ? o : outsz - 1] = '\0';
}

/* {"<name>": {"dsn": masked, …}} under kind, the keys set only. */
static int places_to_json(cJSON *root, const char *kind, const struct config_places *l)
{
    cJSON *all = cJSON_AddObjectToObject(root, kind);

    for (int i = 0; all != NULL && i < l->n; i++) {
        cJSON *o = cJSON_AddObjectToObject(all, l->at[i].name);
        if (o == NULL)
            return ERR_NOMEM;
        for (int k = 0; k < CONFIG_PLACE_NKEYS; k++) {
            char masked[CONFIG_DSN_MAX];
            if (l->at[i].dsn[k][0] == '\0')
                continue;
            config_mask_secret(l->at[i].dsn[k], masked, sizeof masked);
            if (cJSON_AddStringToObject(o, PLACE_KEYS[k], masked) == NULL)
                return ERR_NOMEM;
        }
    }
    return all != NULL ? 0 : ERR_NOMEM;
}

cJSON *config_to_json(const struct config *cfg)
{
    cJSON *root = cJSON_CreateObject();

    if (root == NULL)
        return NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_def *k = &KEYS[i];
        const char *field = (const char *)cfg + k->offset;
        cJSON *parent = root;

        if (k->section[0] != '\0') {
            parent = cJSON_GetObjectItemCaseSensitive(root, k->section);
            if (parent == NULL)
                parent = cJSON_AddObjectToObject(root, k->section);
        }
        if (parent == NULL)
            goto fail;
        cJSON *v = NULL;
        switch (k->type) {
        case T_INT:
            v = cJSON_CreateNumber(*(const int *)field);
            break;
        case T_OCTAL: {
            char buf[16];
            snprintf(buf, sizeof buf, "%04o", (unsigned)*(const int *)field);
            v = cJSON_CreateString(buf);
            break;
        }
        case T_STR:
            if (k->secret) {
                char masked[CONFIG_DSN_MAX];
                config_mask_secret(field, masked, sizeof masked);
                v = cJSON_CreateString(masked);
            } else {
                v = cJSON_CreateString(field);
            }
            break;
        case T_ENUM:
            v = cJSON_CreateString(k->names[*(const int *)field]);
            break;
        }
        if (v == NULL || !cJSON_AddItemToObject(parent, k->name, v)) {
            cJSON_Delete(v);
            goto fail;
        }
    }
    if (places_to_json(root, "svc", &cfg->svc) != 0 || places_to_json(root, "database", &cfg->database) != 0)
        goto fail;
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}
