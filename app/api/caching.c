/* caching: the read cache's uses (DESIGN §3, seeds 001-003) over store/cache.
 *
 * Namespaces, each with a version key that a committed write bumps once:
 *   {core:<org>}:ver:principal        memberships, roles, API keys of an org (a
 *                                     JWT's principal is not per mode: "core")
 *   {<mode>:<org>}:ver:rec:<s>.<r>    an org's records of one resource in one mode
 *   {<mode>:schema}:ver:<s>           a service's resource definitions in one mode
 *   {core:apps}:ver                   the app registry
 * A key of a cached value embeds its namespace's version, so after a bump no
 * reader finds the old value: nothing is ever deleted, scanned or listed.
 *
 * The bumps a handler asks for wait in the worker until its unit of work has
 * committed (caching_flush, called by the dispatcher before the reply is
 * sent): a bump before the commit would let a reader cache the old data under
 * the new version; a bump after the reply would let the client's next read
 * see the old value. A rolled-back unit drops them (caching_drop). */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "core/log.h"

int caching_open(struct worker *w)
{
    const struct config *cfg = w->cfg;
    struct caching *c = &w->caching;
    const struct {
        int on, ttl;
    } uses[METRICS_NCACHE] = {
        [METRICS_CACHE_PRINCIPAL] = {cfg->cache.principal, cfg->cache.principal_ttl},
        [METRICS_CACHE_APPS] = {cfg->cache.apps, cfg->cache.apps_ttl},
        [METRICS_CACHE_SCHEMA] = {cfg->cache.schema, cfg->cache.schema_ttl},
        [METRICS_CACHE_RECORDS] = {cfg->cache.records, cfg->cache.records_ttl},
    };
    int rc;

    memset(c, 0, sizeof *c);
    if ((rc = cache_init(&c->cache, w->kv, (unsigned)cfg->cache.lock_ms, (unsigned)cfg->cache.wait_ms)) != 0)
        return rc;
    for (int u = 0; u < METRICS_NCACHE; u++) {
        c->on[u] = uses[u].on != 0;
        c->ttl_ms[u] = (uint64_t)uses[u].ttl * 1000;
        c->st[u] = metrics_cache_stats(w->metrics, w->slot, u);
    }
    return 0;
}

/* Queues a bump of vkey (of cache use `use`), once however often the unit asks. */
static void touch(struct worker *w, int use, const char *vkey)
{
    struct caching *c = &w->caching;

    for (size_t i = 0; i < c->npending; i++)
        if (strcmp(c->pending[i].vkey, vkey) == 0)
            return;
    if (c->npending == CACHING_PENDING) {
        /* more namespaces than one unit of work writes: a handler bug, and an
         * entry that is not bumped would be served stale until its TTL */
        log_msg(LOG_ERROR, "cache_pending_full", "more than %d version bumps in one unit of work", CACHING_PENDING);
        return;
    }
    c->pending[c->npending].use = use;
    snprintf(c->pending[c->npending++].vkey, CACHE_KEY_MAX, "%s", vkey);
}

int caching_vkey_principal(char out[CACHE_KEY_MAX], const char *org)
{
    return cache_key(out, "core", org, "ver:principal");
}

int caching_vkey_records(char out[CACHE_KEY_MAX], const struct eng_scope *s, const char *service,
                         const char *resource)
{
    return cache_key(out, engine_mode_name(s->mode), s->org_id, "ver:rec:%s.%s", service, resource);
}

int caching_vkey_schema(char out[CACHE_KEY_MAX], int mode, const char *service)
{
    return cache_key(out, engine_mode_name(mode), "schema", "ver:%s", service);
}

int caching_vkey_apps(char out[CACHE_KEY_MAX])
{
    return cache_key(out, "core", "apps", "ver");
}

void caching_touch_principal(struct worker *w, const char *org)
{
    char k[CACHE_KEY_MAX];

    if (caching_vkey_principal(k, org) == 0)
        touch(w, METRICS_CACHE_PRINCIPAL, k);
}

void caching_touch_records(struct worker *w, const struct eng_scope *s, const char *service,
                           const char *resource)
{
    char k[CACHE_KEY_MAX];

    if (caching_vkey_records(k, s, service, resource) == 0)
        touch(w, METRICS_CACHE_RECORDS, k);
}

void caching_touch_schema(struct worker *w, int mode, const char *service)
{
    char k[CACHE_KEY_MAX];

    if (caching_vkey_schema(k, mode, service) == 0)
        touch(w, METRICS_CACHE_SCHEMA, k);
}

void caching_touch_apps(struct worker *w)
{
    char k[CACHE_KEY_MAX];

    if (caching_vkey_apps(k) == 0)
        touch(w, METRICS_CACHE_APPS, k);
}

void caching_flush(struct worker *w)
{
    struct caching *c = &w->caching;

    for (size_t i = 0; i < c->npending; i++)
        if (cache_bump(&c->cache, c->st[c->pending[i].use], c->pending[i].vkey) != 0)
            log_msg(LOG_WARN, "cache_bump_failed", "%s: %s (entries of the old version live until their TTL)",
                    c->pending[i].vkey, w->kv->errstr);
    c->npending = 0;
}

void caching_drop(struct worker *w)
{
    w->caching.npending = 0;
}

int app_commit(struct worker *w)
{
    int rc = engine_commit(w->engine);

    if (rc == 0)
        caching_flush(w);
    else
        caching_drop(w);
    return rc;
}

int caching_version(struct worker *w, int use, const char *vkey, int64_t *ver)
{
    return cache_version(&w->caching.cache, w->caching.st[use], vkey, ver);
}

bool caching_on(const struct worker *w, int use)
{
    return w->caching.on[use];
}

void caching_hit(struct worker *w, int use)
{
    cache_count_hit(w->caching.st[use]);
}

int caching_remember(struct worker *w, int use, const char *key, cache_load_fn load, void *ctx,
                     struct buf *out, bool *found)
{
    struct caching *c = &w->caching;

    if (!c->on[use]) {
        buf_reset(out);
        *found = false;
        return load(ctx, out, found);
    }
    return cache_remember(&c->cache, c->st[use], key, c->ttl_ms[use], load, ctx, out, found);
}
