/* `tessera org place ORG DATABASE` (issue 18 §7): an org's service data in a
 * [database.<name>] of its own, or back in the shared, pooled one.
 *
 * Refusal, not a move: the change is refused while the org has records in
 * any data database (engine_org_records counts them as the org, under RLS).
 * Moving rows between databases, with their outbox, feed and read models,
 * under live writes, is a migration job of its own; refusing keeps every row
 * where its org looks for it.
 *
 * A platform org (where schema changes are made from) is never placed: see
 * the refusal below.
 *
 * The steps, each its own unit of work:
 *   1. the org exists, has no records; the target database gets the resource
 *      definitions it lacks (as the platform org: schemas are the platform's);
 *   2. placement = target, moving: from the next request on, every worker
 *      (the principal's version is bumped) refuses the org's data calls;
 *   3. after a grace for requests already past authentication, the count
 *      again: still none → placement = target, settled; some (a request
 *      raced step 1) → placement back to where it was, and refused.
 * Every step bumps the org's principal version, so each worker sees the
 * placement on its next request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/uuid.h"
#include "store/kv.h"

#define EXIT_CONFIG 2

struct placer {
    const struct config *cfg;
    struct engine *e;
    struct kv *kv;              /* the cache's, for the principal's version; NULL: none configured */
    struct eng_scope s;
};

/* The org's principal version bumped: each worker reloads its principal, and
 * with it the placement, on its next request. A failure is said, not fatal:
 * the entries then live until [cache] principal_ttl. */
static void bump(struct placer *pl)
{
    struct caching_ns ns;
    int64_t v;

    if (pl->kv == NULL)
        return;
    if (caching_ns_principal(&ns, pl->s.org_id) != 0 || kv_incr(pl->kv, ns.vkey, &v) != 0)
        fprintf(stderr, "tessera org place: warning: the principal cache was not bumped (%s): workers follow "
                        "the placement within [cache] principal_ttl (%d s)\n",
                pl->kv->errstr, pl->cfg->cache.principal_ttl);
}

/* The org's records in every data database: 0, or the exit status with why said. */
static int no_records(struct placer *pl, const char *when)
{
    int64_t n = 0;
    char where[80];
    int rc;

    if ((rc = engine_begin(pl->e, &pl->s)) != 0 || (rc = engine_org_records(pl->e, &pl->s, &n, where)) != 0) {
        fprintf(stderr, "tessera org place: cannot count the organization's records: %s\n", pl->e->errstr);
        engine_rollback(pl->e);
        return 1;
    }
    engine_rollback(pl->e);
    if (n > 0) {
        fprintf(stderr, "tessera org place: refused%s: organization %s has %lld records (in %s, …); placement "
                        "moves no data: delete or export them first\n", when, pl->s.org_id, (long long)n, where);
        return 1;
    }
    return 0;
}

static int set_placement(struct placer *pl, const char *database, bool moving)
{
    int rc;

    if ((rc = engine_begin(pl->e, &pl->s)) != 0 || (rc = engine_org_place(pl->e, &pl->s, database, moving)) != 0 ||
        (rc = engine_commit(pl->e)) != 0) {
        fprintf(stderr, "tessera org place: cannot record the placement: %s\n", pl->e->errstr);
        engine_rollback(pl->e);
        return 1;
    }
    bump(pl);
    return 0;
}

/* The definitions the target lacks, made there in each mode as the platform org. */
static int sync_definitions(struct placer *pl, const char *database)
{
    struct eng_org platform;
    int rc, made[2] = {0, 0};

    if ((rc = engine_begin(pl->e, NULL)) == 0)
        rc = engine_org_platform(pl->e, &platform);
    engine_rollback(pl->e);
    if (rc == ERR_NOTFOUND)
        return 0; /* no platform org: no schema anywhere yet */
    for (int m = 0; rc == 0 && m < 2; m++) {
        struct eng_scope ps = {.mode = m};
        memcpy(ps.org_id, platform.id, sizeof ps.org_id);
        snprintf(ps.db, sizeof ps.db, "shared");
        if ((rc = engine_begin(pl->e, &ps)) == 0 && (rc = engine_placement_sync(pl->e, &ps, database, &made[m])) == 0)
            rc = engine_commit(pl->e);
        if (rc != 0)
            engine_rollback(pl->e);
    }
    if (rc != 0) {
        fprintf(stderr, "tessera org place: cannot make the resource definitions in %s: %s\n", database,
                pl->e->errstr);
        return 1;
    }
    if (made[0] + made[1] > 0)
        printf("made %d resource definitions in %s (test %d, live %d)\n", made[0] + made[1], database, made[0],
               made[1]);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

int placement_org_place(const struct config *cfg, const char *org, const char *database, int grace_ms)
{
    struct placer pl = {.cfg = cfg};
    struct eng_org o;
    char why[128];
    int rc = 1;

    if (cfg->engine != CONFIG_ENGINE_POSTGRES) {
        fprintf(stderr, "tessera org place: engine = %s: placement needs engine = postgres (the memory engine "
                        "has one store)\n", config_engine_name(cfg->engine));
        return EXIT_CONFIG;
    }
    if (!uuid_valid(org)) {
        fprintf(stderr, "tessera org place: %s is not an organization id (a uuid)\n", org);
        return EXIT_CONFIG;
    }
    if (strcmp(database, "shared") != 0) {
        const struct config_place *p = config_place_find(&cfg->database, database);
        if (p == NULL || (config_place_dsn(p, 0)[0] == '\0' && config_place_dsn(p, 1)[0] == '\0')) {
            fprintf(stderr, "tessera org place: no [database.%s] with a dsn in the configuration (or `shared`)\n",
                    database);
            return EXIT_CONFIG;
        }
    }
    if ((pl.e = app_engine_new(cfg, NULL, why)) == NULL) {
        fprintf(stderr, "tessera org place: %s\n", why);
        return EXIT_CONFIG;
    }
    const char *url = cfg->cache.redis_url[0] != '\0' ? cfg->cache.redis_url : cfg->redis.url;
    if (url[0] != '\0' && (pl.kv = kv_redis_new(url, cfg->redis.timeout_ms, why)) == NULL) {
        fprintf(stderr, "tessera org place: cache.redis_url: %s\n", why);
        rc = EXIT_CONFIG;
        goto out;
    }
    snprintf(pl.s.org_id, sizeof pl.s.org_id, "%s", org);
    pl.s.mode = ENG_MODE_TEST;
    snprintf(pl.s.db, sizeof pl.s.db, "shared"); /* the counts go everywhere; no data call is routed */
    if ((rc = engine_begin(pl.e, &pl.s)) == 0)
        rc = engine_org_get(pl.e, &pl.s, &o);
    engine_rollback(pl.e);
    if (rc != 0) {
        fprintf(stderr, "tessera org place: %s\n", rc == ERR_NOTFOUND ? "no such organization" : pl.e->errstr);
        rc = 1;
        goto out;
    }
    if (o.platform && strcmp(database, "shared") != 0) {
        /* its admins' schema changes would lock the definitions in its own
         * database before the home's, the opposite order of everyone else's:
         * a wait across two databases that no server can see as a deadlock */
        fprintf(stderr, "tessera org place: refused: %s is a platform organization; those stay in the shared "
                        "database\n", org);
        rc = 1;
        goto out;
    }
    if (strcmp(o.database, database) == 0 && !o.moving) {
        printf("organization %s is in database %s already\n", org, database);
        rc = 0;
        goto out;
    }
    if ((rc = no_records(&pl, "")) != 0 ||
        (strcmp(database, "shared") != 0 && (rc = sync_definitions(&pl, database)) != 0) ||
        (rc = set_placement(&pl, database, true)) != 0)
        goto out;
    sleep_ms(grace_ms);
    if (no_records(&pl, " (records were written while it changed)") != 0) {
        /* back where it was: those records are there, and stay found */
        (void)set_placement(&pl, o.database, false);
        rc = 1;
        goto out;
    }
    if ((rc = set_placement(&pl, database, false)) != 0)
        goto out;
    printf("placed organization %s in database %s (was %s)\n", org, database, o.database);
out:
    kv_free(pl.kv);
    engine_free(pl.e);
    return rc;
}
