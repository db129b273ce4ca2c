/* tessera: subcommand dispatch. Each subcommand loads the configuration the
 * same way (a config error names the key and exits 2) and hands over to the
 * module that does the work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "http/cors.h"
#include "fleet/control.h"
#include "core/log.h"
#include "store/pg/migrate.h"
#include "version.h"

#define EXIT_CONFIG 2
#define DEFAULT_CONFIG "/etc/tessera/tessera.conf"

/* The commands, their synopsis and what `tessera COMMAND --help` says: the
 * one list usage() and the per-command help are printed from. */
static const struct command_help {
    const char *name, *synopsis, *help;
} COMMANDS[] = {
    {"fleet", "fleet [--seed DIR]... run the master: bind the socket, supervise the workers",
     "Runs in the foreground: binds [fleet] listen, forks [fleet] workers api workers and\n"
     "[fleet] projectors projector workers, restarts them on a crash, recycles them, and\n"
     "answers status, reload and stop on [fleet] control. --seed DIR (memory engine) loads a\n"
     "seed folder into the fresh shared region first. SIGHUP reloads, SIGTERM stops.\n"},
    {"worker", "worker             one FastCGI worker on fd 0 (as spawn-fcgi starts it)",
     "One api worker serving the FastCGI socket it is handed as fd 0, without a master.\n"},
    {"status", "status [--json]    the fleet's process table",
     "Each slot's role, pid, state, uptime, restarts, requests (a projector: events applied),\n"
     "current request (a projector: its lag), memory and last exit; --json for programs.\n"},
    {"reload", "reload             rolling restart, re-reading the configuration",
     "Re-reads the configuration and replaces every worker, each successor accepting before\n"
     "its predecessor leaves: no request fails. A configuration that does not load is\n"
     "refused and the running fleet keeps its own.\n"},
    {"stop", "stop               graceful stop",
     "Stops accepting, lets requests in flight finish (within [fleet] graceful_timeout).\n"},
    {"check-config", "check-config       validate and print the resolved configuration",
     "Prints every setting in force (file, then TESSERA_SECTION_KEY overrides, secrets masked)\n"
     "and checks the keys and DSNs as the fleet would; a bad value exits 2 naming its key.\n"},
    {"keygen", "keygen [--rotate]  make the JWT signing key and the data key (never overwrites)",
     "Makes [auth] signing_key and [crypto] data_key where missing. --rotate makes a new\n"
     "signing key and keeps the previous one's public half beside it for [auth] verify_keys\n"
     "(README: Signing keys and rotation).\n"},
    {"migrate", "migrate [--dry-run] apply the pending sql/ migrations (db.sql_dir, db.migrate_dsn)",
     "Applies the migrations of [db] sql_dir not yet applied, as the migration owner\n"
     "([db] migrate_dsn, a BYPASSRLS role), then to every placed database that names an owner\n"
     "([svc.<name>] and [database.<name>] migrate_dsn, test_migrate_dsn, live_migrate_dsn);\n"
     "--dry-run lists them.\n"},
    {"org", "org place ORG DB  place an org's service data in a database, or back in shared (postgres)",
     "Places organization ORG (its id) in [database.DATABASE], or back in `shared`, the pooled\n"
     "database. Nothing is moved: refused (exit 1) while the org has records in any data\n"
     "database. The org's data calls are refused for the change's few moments (--grace MS,\n"
     "default 2000, lets requests in flight finish); every worker follows on its next request.\n"
     "Exit 2 on the memory engine, which has one store.\n"},
    {"seed", "seed DIR...        load seed folders into PostgreSQL (idempotent; not in production)",
     "Loads each folder's CSV files (organizations, users, memberships, apps, schemas,\n"
     "records) through the engine; refused when env = production.\n"},
    {"admin", "admin create EMAIL make a platform admin (password on stdin) in a running fleet",
     "Creates (or promotes) EMAIL as a platform admin with the password read from stdin.\n"},
    {"version", "version            versions of tessera and its libraries", "The versions, one per line.\n"},
    {"help", "help [COMMAND]     this list, or one command's help", "tessera help COMMAND, or tessera COMMAND --help.\n"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: tessera [-c FILE] COMMAND\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %s\n", COMMANDS[i].synopsis);
    fprintf(out, "config: -c FILE, else $TESSERA_CONFIG, else " DEFAULT_CONFIG " if present;\n"
                 "every key can be overridden as TESSERA_SECTION_KEY.\n");
}

/* `tessera help CMD` and `tessera CMD --help`: 0, or 2 for no such command. */
static int command_help(const char *name)
{
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (strcmp(COMMANDS[i].name, name) == 0) {
            const char *gap = strstr(COMMANDS[i].synopsis, "  ");
            int n = gap != NULL ? (int)(gap - COMMANDS[i].synopsis) : (int)strlen(COMMANDS[i].synopsis);
            printf("usage: tessera [-c FILE] %.*s\n\n%s", n, COMMANDS[i].synopsis, COMMANDS[i].help);
            return 0;
        }
    fprintf(stderr, "tessera: unknown command %s\n", name);
    usage(stderr);
    return EXIT_CONFIG;
}

/* The file to read: explicit, from the environment, or the system default if it exists. */
static const char *config_path(const char *given)
{
    if (given != NULL)
        return given;
    const char *env = getenv("TESSERA_CONFIG");
    if (env != NULL && env[0] != '\0')
        return env;
    return access(DEFAULT_CONFIG, R_OK) == 0 ? DEFAULT_CONFIG : NULL;
}

static int is_control_command(const char *cmd)
{
    return strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "stop") == 0;
}

/* The key files as check-config shows them: which kid each holds, and which signs. */
static cJSON *keys_to_json(const struct config *cfg, const struct jwt_keyset *ks)
{
    cJSON *arr = cJSON_CreateArray();

    for (size_t k = 0; arr != NULL && k < ks->n; k++) {
        cJSON *o = cJSON_CreateObject();
        const char *file = k == 0 ? cfg->auth.signing_key : cfg->auth.verify_key[k - 1];
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        /* o is the array's now: deleting the array frees it */
        if (cJSON_AddStringToObject(o, "file", file) == NULL ||
            cJSON_AddStringToObject(o, "kid", ks->keys[k].kid) == NULL ||
            cJSON_AddStringToObject(o, "use", k == 0 ? "sign" : "verify") == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static int cmd_check_config(const struct config *cfg)
{
    char why[128], keys_why[256];
    struct jwt_keyset ks;

    /* The keys as the fleet will load them: a key file that is too open, not
     * Ed25519 or unreadable is a config error here as at start. */
    if (cors_list_check(cfg->http.cors_origins, why, sizeof why) != 0) {
        fprintf(stderr, "config: http.cors_origins: %s\n", why);
        return EXIT_CONFIG;
    }
    if (app_keys_load(cfg, &ks, keys_why) != 0) {
        fprintf(stderr, "config: %s\n", keys_why);
        return EXIT_CONFIG;
    }
    cJSON *keys = keys_to_json(cfg, &ks);
    jwt_keyset_free(&ks);
    /* The engine's own checks (DSNs well-formed, limits): nothing connects. */
    struct engine *e = cfg->engine == CONFIG_ENGINE_POSTGRES ? app_engine_new(cfg, NULL, why) : NULL;
    if (cfg->engine == CONFIG_ENGINE_POSTGRES && e == NULL) {
        fprintf(stderr, "config: %s\n", why);
        cJSON_Delete(keys);
        return EXIT_CONFIG;
    }
    engine_free(e);
    /* The Redis URLs as a worker will parse them (it connects only on first use). */
    const struct {
        const char *key, *url;
    } urls[] = {{"redis.url", cfg->redis.url}, {"cache.redis_url", cfg->cache.redis_url}};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct kv *kv = urls[i].url[0] != '\0' ? kv_redis_new(urls[i].url, cfg->redis.timeout_ms, why) : NULL;
        if (urls[i].url[0] != '\0' && kv == NULL) {
            fprintf(stderr, "config: %s: %s\n", urls[i].key, why);
            cJSON_Delete(keys);
            return EXIT_CONFIG;
        }
        kv_free(kv);
    }
    cJSON *j = config_to_json(cfg);
    if (j != NULL && keys != NULL && cJSON_AddItemToObject(j, "jwt_keys", keys))
        keys = NULL;
    cJSON_Delete(keys);
    char *s = j ? cJSON_Print(j) : NULL;

    if (s == NULL) {
        fprintf(stderr, "tessera: out of memory\n");
        cJSON_Delete(j);
        return 1;
    }
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(j);
    return 0;
}

/* `keygen --rotate`: the new signing key in place, the previous one's public
 * half beside it; the operator then lists that file in auth.verify_keys and
 * reloads. The running fleet keeps signing with the key it loaded until that
 * reload, so nothing changes for clients until the config says both keys. */
static int cmd_keygen_rotate(const struct config *cfg)
{
    char pub[CONFIG_PATH_MAX + 64], old_kid[JWT_KID_LEN + 1], new_kid[JWT_KID_LEN + 1], why[128];
    int rc = jwt_rotate(cfg->auth.signing_key, pub, sizeof pub, old_kid, new_kid, why);

    if (rc != 0) {
        fprintf(stderr, "tessera keygen --rotate: auth.signing_key: %s\n", why);
        return rc == ERR_INVAL ? EXIT_CONFIG : 1;
    }
    printf("%s: new signing key, kid %s (signs after the next reload or start)\n",
           cfg->auth.signing_key, new_kid);
    printf("%s: the previous key's public half, kid %s\n", pub, old_kid);
    printf("next: set [auth] verify_keys = %s%s%s\n", cfg->auth.verify_keys,
           cfg->auth.verify_keys[0] != '\0' ? ", " : "", pub);
    printf("      then `tessera reload`; once %d s (auth.access_ttl) have passed, take it out\n"
           "      of verify_keys and reload again\n", cfg->auth.access_ttl);
    return 0;
}

/* Makes the JWT signing key and the data key where the config says, keeping
 * any that exist (a key is never overwritten: tokens and data depend on it). */
static int cmd_keygen(const struct config *cfg, int argc, char **argv)
{
    int rc;

    if (argc == 1 && strcmp(argv[0], "--rotate") == 0)
        return cmd_keygen_rotate(cfg);
    if (argc > 0) {
        fprintf(stderr, "usage: tessera keygen [--rotate]\n");
        return EXIT_CONFIG;
    }

    app_make_parent(cfg->auth.signing_key, 0700); /* the keys' own folders: owner only */
    app_make_parent(cfg->crypto.data_key, 0700);
    rc = jwt_keygen(cfg->auth.signing_key);
    if (rc != 0 && rc != ERR_CONFLICT) {
        fprintf(stderr, "tessera keygen: auth.signing_key %s: %s\n", cfg->auth.signing_key, err_str(rc));
        return 1;
    }
    printf("%s %s\n", cfg->auth.signing_key, rc == ERR_CONFLICT ? "exists, kept" : "created");
    rc = crypto_keyring_write_new(cfg->crypto.data_key, "k1");
    if (rc != 0 && rc != ERR_CONFLICT) {
        fprintf(stderr, "tessera keygen: crypto.data_key %s: %s\n", cfg->crypto.data_key, err_str(rc));
        return 1;
    }
    printf("%s %s\n", cfg->crypto.data_key, rc == ERR_CONFLICT ? "exists, kept" : "created");
    return 0;
}

/* The password comes from stdin (one line), never from argv: argv is visible in ps. */
static int cmd_admin_create(const struct config *cfg, const char *email)
{
    char pw[1100], req[1400];

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "password for %s: ", email);
    if (fgets(pw, sizeof pw, stdin) == NULL) {
        fprintf(stderr, "tessera admin create: no password on stdin\n");
        return 1;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    if (strchr(email, '\n') != NULL || snprintf(req, sizeof req, "admin-create %s\n%s", email, pw) >= (int)sizeof req) {
        fprintf(stderr, "tessera admin create: email or password too long\n");
        return 1;
    }
    explicit_bzero(pw, sizeof pw);
    int rc = control_client(cfg->fleet.control, req);
    explicit_bzero(req, sizeof req);
    return rc;
}

/* The same migrations in every placed database that names its owner (issue
 * 18 §7): each holds its data schemas and the core functions they need
 * (resource definitions, outbox, RLS policies), as the shared one does. Each
 * distinct DSN once; the first failure stops the run. */
static int migrate_places(const struct config *cfg, struct migrate_opts *o)
{
    const struct config_places *lists[2] = {&cfg->svc, &cfg->database};
    const char *kinds[2] = {"svc", "database"};
    const char *done[4 * CONFIG_PLACES_MAX + 1] = {o->dsn};
    int ndone = 1;

    for (int k = 0; k < 2; k++)
        for (int i = 0; i < lists[k]->n; i++)
            for (int m = 0; m < 2; m++) {
                const struct config_place *p = &lists[k]->at[i];
                struct migrate_report r;
                char errstr[MIGRATE_ERRSTR];
                bool seen = false;
                o->dsn = config_place_migrate_dsn(p, m);
                for (int j = 0; j < ndone; j++)
                    seen |= strcmp(done[j], o->dsn) == 0;
                if (o->dsn[0] == '\0' || seen)
                    continue;
                done[ndone++] = o->dsn;
                if (migrate_run(o, &r, errstr) != 0) {
                    fprintf(stderr, "tessera migrate: %s.%s (%s): %s\n", kinds[k], p->name, m ? "live" : "test",
                            errstr);
                    return 1;
                }
                if (o->dry_run)
                    printf("%s.%s: %d of %d migrations pending\n", kinds[k], p->name, r.pending, r.files);
                else
                    printf("%s.%s: %d of %d migrations applied now\n", kinds[k], p->name, r.applied, r.files);
            }
    return 0;
}

/* `org place ORG DATABASE [--grace MS]` */
static int cmd_org(const struct config *cfg, int argc, char **argv)
{
    int grace = 2000;

    if (argc == 5 && strcmp(argv[3], "--grace") == 0) {
        char *end;
        long v = strtol(argv[4], &end, 10);
        if (*end != '\0' || end == argv[4] || v < 0 || v > 600000) {
            fprintf(stderr, "tessera org place: --grace: milliseconds from 0 to 600000\n");
            return EXIT_CONFIG;
        }
        grace = (int)v;
        argc = 3;
    }
    if (argc != 3 || strcmp(argv[0], "place") != 0) {
        fprintf(stderr, "usage: tessera org place ORG DATABASE [--grace MS]\n");
        return EXIT_CONFIG;
    }
    return placement_org_place(cfg, argv[1], argv[2], grace);
}

/* Applies db.sql_dir's pending migrations as the migration owner: db.migrate_dsn,
 * else db.core_dsn (a development database where one role does both). */
static int cmd_migrate(const struct config *cfg, int argc, char **argv)
{
    struct migrate_opts o = {.sql_dir = cfg->db.sql_dir, .out = stdout};
    struct migrate_report r;
    char errstr[MIGRATE_ERRSTR];

    for (int k = 0; k < argc; k++) {
        if (strcmp(argv[k], "--dry-run") != 0) {
            fprintf(stderr, "tessera migrate: unknown argument %s\n", argv[k]);
            return EXIT_CONFIG;
        }
        o.dry_run = true;
    }
    o.dsn = cfg->db.migrate_dsn[0] != '\0' ? cfg->db.migrate_dsn : cfg->db.core_dsn;
    if (o.dsn[0] == '\0') {
        fprintf(stderr, "tessera migrate: db.migrate_dsn (or db.core_dsn) is not set\n");
        return EXIT_CONFIG;
    }
    if (migrate_run(&o, &r, errstr) != 0) {
        fprintf(stderr, "tessera migrate: %s\n", errstr);
        return 1;
    }
    if (o.dry_run)
        printf("%d of %d migrations pending\n", r.pending, r.files);
    else
        printf("%d of %d migrations applied now; %d audit partitions made\n", r.applied, r.files,
               r.partitions_made);
    return migrate_places(cfg, &o);
}

/* Loads seed folders into PostgreSQL through the engine (as the app role, so
 * RLS checks every row it writes): each folder all or nothing, a second run
 * changes nothing. The memory engine is seeded by `fleet --seed` instead: its
 * data lives only as long as the fleet. */
static int cmd_seed(const struct config *cfg, int argc, char **argv)
{
    struct password_cost cost = app_password_cost(cfg);
    struct crypto_keyring ring;
    struct engine *e;
    char why[256];
    int rc = 0;

    if (argc < 1) {
        fprintf(stderr, "usage: tessera seed DIR...\n");
        return EXIT_CONFIG;
    }
    if (cfg->engine != CONFIG_ENGINE_POSTGRES) {
        fprintf(stderr, "tessera seed: engine = %s; the memory engine is seeded by "
                        "`tessera fleet --seed DIR`\n", config_engine_name(cfg->engine));
        return EXIT_CONFIG;
    }
    if (cfg->env == CONFIG_ENV_PRODUCTION) {
        fprintf(stderr, "tessera seed: refused with env = production (use a migration for real data)\n");
        return EXIT_CONFIG;
    }
    if (crypto_keyring_load(&ring, cfg->crypto.data_key, why) != 0) {
        fprintf(stderr, "tessera seed: crypto.data_key: %s\n", why);
        return EXIT_CONFIG;
    }
    if ((e = app_engine_new(cfg, NULL, why)) == NULL) {
        fprintf(stderr, "tessera seed: %s\n", why);
        crypto_keyring_cleanup(&ring);
        return EXIT_CONFIG;
    }
    for (int k = 0; k < argc && rc == 0; k++) {
        if ((rc = seed_load(e, &ring, &cost, argv[k], why)) != 0)
            fprintf(stderr, "tessera seed: %s\n", why);
        else
            printf("seeded %s\n", argv[k]);
    }
    engine_free(e);
    crypto_keyring_cleanup(&ring);
    return rc == 0 ? 0 : 1;
}

static int cmd_worker(const struct config *cfg)
{
    int listening = 0;
    socklen_t len = sizeof listening;

    /* spawn-fcgi (and the FastCGI convention) hands the listen socket over as fd 0 */
    if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) {
        fprintf(stderr, "tessera worker: fd 0 is not a listening socket; run it under "
                        "spawn-fcgi, or use `tessera fleet`\n");
        return 1;
    }
    log_setup(cfg->log.level, "worker", 0);
    return worker_run(cfg, 0, -1, 0, -1, NULL);
}

int main(int argc, char **argv)
{
    const char *given = NULL;
    struct config cfg;
    char errstr[256];
    int i = 1;

    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            given = argv[i + 1];
            i += 2;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_CONFIG;
    }
    const char *cmd = argv[i];
    /* help before the configuration: a broken file must not hide it */
    if (strcmp(cmd, "help") == 0) {
        if (i + 1 < argc)
            return command_help(argv[i + 1]);
        usage(stdout);
        return 0;
    }
    for (int k = i + 1; k < argc; k++)
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0)
            return command_help(cmd);
    if (strcmp(cmd, "version") == 0) {
        version_print(stdout);
        return 0;
    }
    const char *path = config_path(given);
    if (config_load(&cfg, path, errstr) != 0) {
        /* A broken file must not lock the operator out of the running fleet:
         * status, reload (which the master refuses, saying why) and stop still
         * reach it, on the control socket the defaults and environment name. */
        char again[256];
        if (!is_control_command(cmd) || config_load(&cfg, NULL, again) != 0) {
            fprintf(stderr, "%s\n", errstr);
            return EXIT_CONFIG;
        }
        fprintf(stderr, "tessera: warning: %s; trying the control socket %s\n", errstr, cfg.fleet.control);
    }
    log_setup(cfg.log.level, "tessera", -1);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(&cfg);
    if (strcmp(cmd, "fleet") == 0) {
        const char *seeds[8];
        int nseeds = 0;
        for (int k = i + 1; k < argc; k += 2) {
            if (strcmp(argv[k], "--seed") != 0 || k + 1 >= argc || nseeds == 8) {
                fprintf(stderr, "usage: tessera fleet [--seed DIR]... (at most 8)\n");
                return EXIT_CONFIG;
            }
            seeds[nseeds++] = argv[k + 1];
        }
        return fleet_run(&cfg, path, seeds, nseeds);
    }
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "seed") == 0)
        return cmd_seed(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "org") == 0)
        return cmd_org(&cfg, argc - i - 1, argv + i + 1);
    if (strcmp(cmd, "worker") == 0)
        return cmd_worker(&cfg);
    if (strcmp(cmd, "status") == 0) {
        int json = i + 1 < argc && strcmp(argv[i + 1], "--json") == 0;
        return control_client(cfg.fleet.control, json ? "status-json" : "status");
    }
    if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "stop") == 0)
        return control_client(cfg.fleet.control, cmd);
    if (strcmp(cmd, "admin") == 0 && i + 2 < argc && strcmp(argv[i + 1], "create") == 0)
        return cmd_admin_create(&cfg, argv[i + 2]);
    fprintf(stderr, "tessera: unknown command %s\n", cmd);
    usage(stderr);
    return EXIT_CONFIG;
}
