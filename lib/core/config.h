/* config: tessera's settings, from an INI file, TESSERA_SECTION_KEY environment
 * overrides and per-env defaults, validated in one pass.
 * Every key is described once in a table (config.c) that drives parsing,
 * defaults, validation and the masked dump; there is no other list of keys.
 * Does not watch files: the fleet re-reads on reload and swaps whole structs. */
#ifndef LIB_CONFIG_H
#define LIB_CONFIG_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

enum config_env { CONFIG_ENV_TEST, CONFIG_ENV_DEVELOP, CONFIG_ENV_STAGING, CONFIG_ENV_PRODUCTION };
enum config_engine { CONFIG_ENGINE_MEMORY, CONFIG_ENGINE_POSTGRES };

#define CONFIG_PATH_MAX 256
#define CONFIG_DSN_MAX 512
#define CONFIG_VERIFY_KEYS_MAX 3     /* auth.verify_keys: previous keys kept during rotations */
#define CONFIG_PLACES_MAX 8          /* [svc.<name>] sections; as many [database.<name>] */
#define CONFIG_PLACE_NAME 64

/* Where data lives besides the [db] databases (issue 18 §7): a [svc.<name>]
 * section places one service's data in a database of its own; a
 * [database.<name>] section names a database organizations are placed in
 * (`tessera org place`). Every DSN is a libpq connection string; "" means
 * "not set here": a mode's DSN falls back to dsn, then to the [db] data DSN
 * of that mode (config_place_dsn). The migrate DSNs are the migration
 * owner's, read by `tessera migrate` only (keep them in migrate.conf). */
enum config_place_key {
    CONFIG_PLACE_DSN, CONFIG_PLACE_TEST_DSN, CONFIG_PLACE_LIVE_DSN,
    CONFIG_PLACE_MIGRATE_DSN, CONFIG_PLACE_TEST_MIGRATE_DSN, CONFIG_PLACE_LIVE_MIGRATE_DSN,
    CONFIG_PLACE_TEST_LISTEN_DSN, CONFIG_PLACE_LIVE_LISTEN_DSN,
    CONFIG_PLACE_NKEYS
};

struct config_place {
    char name[CONFIG_PLACE_NAME];       /* the service's, or the database's */
    char dsn[CONFIG_PLACE_NKEYS][CONFIG_DSN_MAX];   /* by enum config_place_key */
};

struct config_places {
    int n;
    struct config_place at[CONFIG_PLACES_MAX];
};

struct config {
    int env;                    /* enum config_env */
    int engine;                 /* enum config_engine */

    struct {
        int workers;            /* 0: one per CPU */
        int projectors;
        char listen[CONFIG_PATH_MAX];   /* unix socket path, or host:port */
        char listen_owner[64];  /* user[:group] for the unix socket; empty: ours */
        int listen_mode;        /* octal permission bits of the unix socket */
        char control[CONFIG_PATH_MAX];  /* the master's control socket */
        char pid_file[CONFIG_PATH_MAX];
        int max_requests;       /* 0: never recycle on count */
        int max_memory_mb;      /* 0: never recycle on RSS */
        int graceful_timeout;   /* seconds */
        int restart_backoff_max;/* seconds */
        int request_timeout;    /* seconds; 0: none */
        int slowlog_ms;         /* 0: off */
        int maintenance_interval; /* seconds between the store's upkeep runs (engine maintain) */
    } fleet;

    struct {
        int max_body_kb;
        int max_json_depth;
        int max_json_nodes;
        /* origins browsers may call the API from (lib/http/cors.h); "": none */
        char cors_origins[CONFIG_DSN_MAX];
    } http;

    struct {
        char core_dsn[CONFIG_DSN_MAX];
        char test_dsn[CONFIG_DSN_MAX];
        char live_dsn[CONFIG_DSN_MAX];
        char migrate_dsn[CONFIG_DSN_MAX];   /* the migration owner; empty: core_dsn */
        char sql_dir[CONFIG_PATH_MAX];      /* migrations applied by `tessera migrate` */
        int connection_limit;
        int prepare;            /* 0 off, 1 on: named statements per connection */
    } db;

    struct {
        char url[CONFIG_DSN_MAX];
        int timeout_ms;
    } redis;

    /* The read cache (DESIGN §3): a switch and a TTL in seconds per use. */
    struct {
        /* The cache's own Redis; "": the blacklist's ([redis] url). Its own,
         * a cache outage fails open while the blacklist still answers. */
        char redis_url[CONFIG_DSN_MAX];
        int lock_ms;            /* single-flight lock TTL: how long a dead loader blocks a key */
        int wait_ms;            /* the longest a request waits for another's load */
        int principal, principal_ttl;   /* membership, role, permissions per caller */
        int apps, apps_ttl;             /* app discovery (GET /v1/apps) */
        int schema, schema_ttl;         /* resource definitions per (service, mode) */
        int records, records_ttl;       /* record reads: GET by id and list pages */
    } cache;

    struct {
        char signing_key[CONFIG_PATH_MAX];
        /* Previous keys that still verify during a rotation (README): the file
         * names as written, and split (commas or spaces between names). */
        char verify_keys[CONFIG_DSN_MAX];
        int nverify_keys;
        char verify_key[CONFIG_VERIFY_KEYS_MAX][CONFIG_PATH_MAX];
        int jws_alg;            /* 0 "EdDSA", 1 "Ed25519": the alg tokens are issued under */
        char issuer[128];
        char audience[128];
        int access_ttl;         /* seconds */
        int refresh_ttl;        /* seconds */
        int refresh_reuse_interval; /* seconds */
        int password_cost;      /* scrypt log2(N) */
        /* failed-login throttle: failures per window, per account and per client address */
        int login_max_failures;
        int login_max_failures_addr;
        int login_window_s;     /* seconds, from the first failure (fixed window) */
        /* the account lifecycle (issue 17) */
        int require_verified_email; /* 0/1: login refuses an unverified email */
        int reset_ttl;          /* seconds a password reset token lives */
        int verify_ttl;         /* seconds an email verification token lives */
        int forgot_floor_ms;    /* every password/forgot answer takes at least this long */
        int log_tokens;         /* 0/1: reset and verification tokens in the log (development) */
    } auth;

    /* The projector role (DESIGN §6): views, the change feed, the reaper. */
    struct {
        int batch;              /* events per data store per project round */
        int poll_ms;            /* the longest wait between rounds with no wake-up */
        int gather_ms;          /* the pause after a round that applied events */
        int reap_interval;      /* seconds between reaper runs */
        int changes_retention;  /* seconds a projected change stays in the feed */
        int token_grace;        /* seconds expired refresh tokens and invites stay */
        /* where the projector LISTENs, per mode ("": the mode's [db] DSN);
         * LISTEN is session state: never through a transaction-pooled PgBouncer */
        char test_listen_dsn[CONFIG_DSN_MAX];
        char live_listen_dsn[CONFIG_DSN_MAX];
    } cqrs;

    struct {
        int retention_months;   /* audit kept this many whole months; 0: forever */
    } audit;

    /* [svc.<name>] and [database.<name>] sections, in the order first seen */
    struct config_places svc;
    struct config_places database;

    struct {
        char data_key[CONFIG_PATH_MAX];
    } crypto;

    struct {
        int size_mb;
    } memory;

    struct {
        int level;              /* enum log_level */
    } log;
};

/* Loads `path` (NULL: defaults and environment only) into *cfg.
 * On failure returns ERR_INVAL and writes one line naming the key into errstr. */
int config_load(struct config *cfg, const char *path, char errstr[256]) ERR_MUST_CHECK;

/* Returns owned: the resolved settings as JSON, secrets in DSNs and URLs masked. */
cJSON *config_to_json(const struct config *cfg);

const char *config_env_name(int env);

/* Borrowed (cfg's): the key names of a placement section, by enum config_place_key. */
const char *config_place_key_name(int key);
/* The app DSN a placement gives mode (0 test, 1 live): the mode's own, else
 * dsn, else "" (the [db] data DSN of that mode applies). Borrowed (p's). */
const char *config_place_dsn(const struct config_place *p, int mode);
/* The same for the migration owner's DSN (test_/live_migrate_dsn, migrate_dsn). */
const char *config_place_migrate_dsn(const struct config_place *p, int mode);
/* The placement named name in list, or NULL. */
const struct config_place *config_place_find(const struct config_places *list, const char *name);
const char *config_engine_name(int engine);

/* Copies s into out with any password in a DSN (`password=…`) or URL
 * (`scheme://user:pass@`) replaced by "***". */
void config_mask_secret(const char *s, char *out, size_t outsz);

#endif
