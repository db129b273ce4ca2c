/* The projector: the fleet's `projector` role (DESIGN §6). One process per
 * projector slot, serving no HTTP: it applies the outbox's events to the
 * resources' views and numbers the change feed (engine_project), bumps the
 * cache versions of what it changed, and every reap_interval runs the reaper
 * (engine_reap): expired records, refresh tokens and invites, changes past
 * their retention, audit past its retention. Between rounds it waits on the
 * engine's wake-up (LISTEN/NOTIFY on PostgreSQL, a futex in the shared region
 * on memory) for at most poll_ms, so a lost notification costs one poll.
 *
 * Several projectors may run at once (projectors > 1, or a reload's
 * successor beside its predecessor): the engines make that safe (one
 * projector per org's feed at a time, claims that skip what another holds,
 * contributions that make a second apply a no-op). A projector killed
 * mid-batch loses nothing: its unit of work rolls back and the events wait
 * for the next round.
 *
 * Its scoreboard row carries the events it applied and the lag it last saw
 * (`tessera status`); /metrics counts events, rebuilds, reapings, errors. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "core/log.h"

#define ERROR_BACKOFF_MS 1000   /* after a failed round: the store is likely down */

static volatile sig_atomic_t projector_stop;

static void on_stop(int sig)
{
    (void)sig;
    projector_stop = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct projector {
    const struct config *cfg;
    int slot;
    struct sb_row *row;         /* NULL without a fleet */
    struct metrics *metrics;
    struct engine *engine;
    struct kv *kv;              /* the read cache's kv, for version bumps; NULL: no cache */
    struct cache cache;
    struct cache_stats *st;
    uint64_t bump_errors_logged;
};

/* The versions readers key their cached entries by: a view's after project()
 * changed it, a resource's records after reap() deleted some. A failed bump
 * is counted by the cache (bump_errors) and logged once per run of failures:
 * entries of an old version then live until their TTL, as after any cache
 * outage. */
static void bump(struct projector *pj, int rc, const struct caching_ns *ns)
{
    if (rc == 0)
        rc = cache_bump(&pj->cache, pj->st, ns->vkey);
    if (rc != 0 && pj->bump_errors_logged++ == 0)
        log_msg(LOG_WARN, "projector", "cache version bump failed (entries age out by TTL)");
    else if (rc == 0)
        pj->bump_errors_logged = 0;
}

/* eng_touch_fn of project: the resource's views changed. */
static void touch_views(void *ctx, const struct eng_scope *s, const char *service, const char *resource)
{
    struct projector *pj = ctx;
    struct caching_ns ns;

    if (pj->kv != NULL)
        bump(pj, caching_ns_views(&ns, s, service, resource), &ns);
}

/* eng_touch_fn of reap: the resource lost records, and its views now wait
 * for their deletes' events (as after an api write: records.c touch_records). */
static void touch_records(void *ctx, const struct eng_scope *s, const char *service, const char *resource)
{
    struct projector *pj = ctx;
    struct caching_ns ns;

    if (pj->kv == NULL)
        return;
    bump(pj, caching_ns_records(&ns, s, service, resource), &ns);
    bump(pj, caching_ns_views(&ns, s, service, resource), &ns);
}

static int projector_open(struct projector *pj, const struct config *cfg, int slot, int row,
                          const struct fleet_shared *sh)
{
    char errstr[128] = "";

    memset(pj, 0, sizeof *pj);
    pj->cfg = cfg;
    pj->slot = slot;
    pj->row = sh != NULL && sh->sb != NULL && row >= 0 ? &sh->sb->row[row] : NULL;
    pj->metrics = sh != NULL ? sh->metrics : NULL;
    pj->st = metrics_cache_stats(pj->metrics, slot, METRICS_CACHE_RECORDS);
    if ((pj->engine = app_engine_new(cfg, sh != NULL ? sh->data : NULL, errstr)) == NULL) {
        log_msg(LOG_ERROR, "projector_init", "engine: %s", errstr);
        return ERR_UNAVAILABLE;
    }
    /* The cache's kv, as the api workers choose it (worker.c open_deps). */
    const char *url = cfg->cache.redis_url[0] != '\0' ? cfg->cache.redis_url : cfg->redis.url;
    if (url[0] != '\0')
        pj->kv = kv_redis_new(url, cfg->redis.timeout_ms, errstr);
    else if (sh != NULL && sh->kvmem != NULL)
        pj->kv = kv_shm_new(sh->kvmem, errstr);
    if (pj->kv == NULL && (url[0] != '\0' || (sh != NULL && sh->kvmem != NULL))) {
        log_msg(LOG_ERROR, "projector_init", "cache kv: %s", errstr);
        return ERR_UNAVAILABLE;
    }
    if (pj->kv != NULL &&
        cache_init(&pj->cache, pj->kv, (unsigned)cfg->cache.lock_ms, (unsigned)cfg->cache.wait_ms) != 0)
        return ERR_INTERNAL;
    return 0;
}

static void projector_close(struct projector *pj)
{
    engine_free(pj->engine);
    kv_free(pj->kv);
}

/* One round: every store's pending events, up to batch each; more when some
 * are left; *applied: how many it applied. */
static int project_round(struct projector *pj, bool *more, uint64_t *applied)
{
    struct eng_projection pr;
    int rc = engine_project(pj->engine, (size_t)pj->cfg->cqrs.batch, touch_views, pj, &pr);

    *more = rc == 0 && pr.more;
    *applied = rc == 0 ? pr.applied : 0;
    if (rc != 0) {
        metrics_count(pj->metrics, pj->slot, METRICS_PROJECTOR_ERRORS);
        log_msg(LOG_ERROR, "projector", "%s", pj->engine->errstr);
        return rc;
    }
    metrics_add(pj->metrics, pj->slot, METRICS_PROJECTOR_EVENTS, pr.applied);
    metrics_add(pj->metrics, pj->slot, METRICS_PROJECTOR_REBUILDS, pr.rebuilt);
    if (pr.rebuilt > 0)
        log_msg(LOG_INFO, "projector", "read models rebuilt from their records: %llu",
                (unsigned long long)pr.rebuilt);
    if (pj->row != NULL) {
        int64_t lag = pr.pending_ms > 0 ? wall_ms() - pr.pending_ms : 0;
        pj->row->applied += pr.applied;
        pj->row->lag_ms = lag > 0 ? lag : 0;
    }
    return 0;
}

/* The reaper's summary: one audit row per run that deleted something, in the
 * platform's org (the deployment's operators' trail), never one per row. */
static void reap_audit(struct projector *pj, const struct eng_reaped *rp)
{
    struct engine *e = pj->engine;
    struct eng_org platform;
    struct eng_audit a;
    struct eng_scope s;
    char line[256];
    cJSON *meta = cJSON_CreateObject();
    int rc;

    snprintf(line, sizeof line,
             "records %llu, refresh tokens %llu, invites %llu, sessions %llu, user tokens %llu, "
             "auth events %llu, changes %llu, audit partitions %llu, audit entries %llu",
             (unsigned long long)rp->records, (unsigned long long)rp->refresh_tokens,
             (unsigned long long)rp->invites, (unsigned long long)rp->sessions,
             (unsigned long long)rp->user_tokens, (unsigned long long)rp->auth_events,
             (unsigned long long)rp->changes,
             (unsigned long long)rp->audit_partitions, (unsigned long long)rp->audit_entries);
    log_msg(LOG_INFO, "reaper", "deleted %s", line);
    const struct {
        const char *name;
        uint64_t n;
    } kinds[] = {{"records", rp->records}, {"refresh_tokens", rp->refresh_tokens}, {"invites", rp->invites},
                 {"sessions", rp->sessions}, {"user_tokens", rp->user_tokens},
                 {"auth_events", rp->auth_events}, {"changes", rp->changes}, {"audit_partitions", rp->audit_partitions},
                 {"audit_entries", rp->audit_entries}};
    for (size_t i = 0; meta != NULL && i < sizeof kinds / sizeof kinds[0]; i++)
        if (cJSON_AddNumberToObject(meta, kinds[i].name, (double)kinds[i].n) == NULL) {
            cJSON_Delete(meta);
            meta = NULL;
        }
    if (meta == NULL) {
        rc = ERR_NOMEM;
        goto fail;
    }
    if ((rc = engine_begin(e, NULL)) != 0)
        goto fail;
    rc = engine_org_platform(e, &platform);
    engine_rollback(e);
    if (rc == ERR_NOTFOUND) {
        cJSON_Delete(meta);
        return; /* no platform org: the log line is the record */
    }
    if (rc != 0)
        goto fail;
    s = (struct eng_scope){.mode = ENG_MODE_LIVE};
    memcpy(s.org_id, platform.id, sizeof s.org_id);
    if ((rc = audit_entry(&s, "", "reaper.run", "", meta, &a)) != 0 || (rc = engine_begin(e, &s)) != 0)
        goto fail;
    if ((rc = engine_audit_append(e, &s, &a)) != 0) {
        engine_rollback(e);
        goto fail;
    }
    if ((rc = engine_commit(e)) == 0) {
        cJSON_Delete(meta);
        return;
    }
fail:
    cJSON_Delete(meta);
    log_msg(LOG_ERROR, "reaper", "summary not audited: %s", e->errstr[0] ? e->errstr : err_str(rc));
}

static void reap(struct projector *pj)
{
    const struct config *cfg = pj->cfg;
    struct eng_reap_policy p = {
        .now = (int64_t)time(NULL),
        .token_grace = cfg->cqrs.token_grace,
        .changes_retention = cfg->cqrs.changes_retention,
        .audit_retention_months = cfg->audit.retention_months,
        .max = (size_t)cfg->cqrs.batch,
    };
    struct eng_reaped rp;
    int rc = engine_reap(pj->engine, &p, touch_records, pj, &rp);

    if (rc != 0) {
        metrics_count(pj->metrics, pj->slot, METRICS_REAPER_ERRORS);
        log_msg(LOG_ERROR, "reaper", "%s", pj->engine->errstr);
        return;
    }
    static const int counter[] = {METRICS_REAPED_RECORDS, METRICS_REAPED_REFRESH_TOKENS, METRICS_REAPED_INVITES,
                                  METRICS_REAPED_SESSIONS, METRICS_REAPED_USER_TOKENS,
                                  METRICS_REAPED_AUTH_EVENTS, METRICS_REAPED_CHANGES, METRICS_REAPED_AUDIT_PARTITIONS,
                                  METRICS_REAPED_AUDIT_ENTRIES};
    const uint64_t n[] = {rp.records, rp.refresh_tokens, rp.invites, rp.sessions, rp.user_tokens,
                          rp.auth_events, rp.changes, rp.audit_partitions,
                          rp.audit_entries};
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        metrics_add(pj->metrics, pj->slot, counter[i], n[i]);
        total += n[i];
    }
    metrics_count(pj->metrics, pj->slot, METRICS_REAPER_RUNS);
    if (total > 0)
        reap_audit(pj, &rp);
}

int projector_run(const struct config *cfg, int listen_fd, int channel_fd, int slot, int row,
                  const struct fleet_shared *sh)
{
    struct projector pj;
    /* No SA_RESTART: a stop must end the wait between rounds (poll, futex,
     * nanosleep return EINTR); a round in progress finishes first. */
    struct sigaction sa = {.sa_handler = on_stop};
    int64_t next_reap_ms = 0;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* It serves no HTTP and hands over no connections. */
    if (listen_fd >= 0)
        close(listen_fd);
    if (channel_fd >= 0)
        close(channel_fd);
    if (projector_open(&pj, cfg, slot, row, sh) != 0) {
        projector_close(&pj);
        return 1;
    }
    if (pj.row != NULL)
        pj.row->state = SB_IDLE; /* ready: the master may now retire our predecessor */
    log_msg(LOG_INFO, "projector_ready", "batch %d, poll %d ms, gather %d ms, reap every %d s", cfg->cqrs.batch,
            cfg->cqrs.poll_ms, cfg->cqrs.gather_ms, cfg->cqrs.reap_interval);

    while (!projector_stop) {
        bool more = false;
        uint64_t applied = 0;
        int rc;

        if (pj.row != NULL)
            pj.row->state = SB_BUSY;
        rc = project_round(&pj, &more, &applied);
        if (rc == 0 && sb_now_ms() >= next_reap_ms) {
            reap(&pj);
            next_reap_ms = sb_now_ms() + (int64_t)cfg->cqrs.reap_interval * 1000;
        }
        if (pj.row != NULL) {
            pj.row->state = SB_IDLE;
            pj.row->rss_kb = sb_rss_kb(getpid());
        }
        if (getppid() == 1 && row >= 0)
            break; /* the master is gone */
        if (projector_stop)
            break;
        if (rc != 0) {
            struct timespec ts = {ERROR_BACKOFF_MS / 1000, (ERROR_BACKOFF_MS % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (applied > 0 && !more) {
            /* Under a steady write load every commit would wake us: a round
             * per event would spend a round's fixed cost (every resource's
             * definition looked at, the pending scans) on each one. After a
             * round that found work, let the next events gather for a
             * moment and look again, with no wait (the engine need not wake
             * us meanwhile); an idle projector still answers the first at
             * once. */
            struct timespec ts = {cfg->cqrs.gather_ms / 1000, (cfg->cqrs.gather_ms % 1000) * 1000000L};
            if (cfg->cqrs.gather_ms > 0)
                nanosleep(&ts, NULL);
            continue;
        }
        if (!more && engine_wait(pj.engine, cfg->cqrs.poll_ms) != 0) {
            /* no wake-up source now (LISTEN connection down): poll instead */
            struct timespec ts = {cfg->cqrs.poll_ms / 1000, (cfg->cqrs.poll_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (pj.row != NULL)
        pj.row->state = SB_RETIRING;
    log_msg(LOG_INFO, "projector_exit", "leaving after %llu events",
            pj.row != NULL ? (unsigned long long)pj.row->applied : 0ULL);
    projector_close(&pj);
    return 0;
}
