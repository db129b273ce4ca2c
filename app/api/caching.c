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
 * see the old value. A rolled-back unit drops them (caching_drop).
 *
 * Reading ahead (caching_ahead): a handler's reads need versions, and guesses
 * of entries, that authn's round trip could have carried. Each worker keeps,
 * per request shape, the keys the last such request read after that round
 * trip, and sends them with the next one's; later fetches take them from the
 * request's stash, which holds each value under its own key only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    /* without room for shapes a worker only reads nothing ahead */
    c->shapes = calloc(CACHING_SHAPES, sizeof *c->shapes);
    if ((rc = cache_init(&c->cache, w->cache_kv, (unsigned)cfg->cache.lock_ms, (unsigned)cfg->cache.wait_ms)) != 0)
        return rc;
    for (int u = 0; u < METRICS_NCACHE; u++) {
        c->on[u] = uses[u].on != 0;
        c->ttl_ms[u] = (uint64_t)uses[u].ttl * 1000;
        c->st[u] = metrics_cache_stats(w->metrics, w->slot, u);
    }
    return 0;
}

void caching_memo_drop(struct worker *w)
{
    struct caching *c = &w->caching;

    for (int i = 0; i < CACHING_MEMOS; i++)
        free(c->memo[i].val);
    memset(c->memo, 0, sizeof c->memo);
}

void caching_close(struct worker *w)
{
    struct caching *c = &w->caching;

    caching_end(w);
    caching_memo_drop(w);
    free(c->shapes);
    c->shapes = NULL;
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

int caching_ns_principal(struct caching_ns *ns, const char *org)
{
    return caching_ns(ns, METRICS_CACHE_PRINCIPAL, "core", org, "principal");
}

int caching_ns_records(struct caching_ns *ns, const struct eng_scope *s, const char *service, const char *resource)
{
    return caching_ns(ns, METRICS_CACHE_RECORDS, engine_mode_name(s->mode), s->org_id, "rec:%s.%s", service,
                      resource);
}

int caching_ns_views(struct caching_ns *ns, const struct eng_scope *s, const char *service, const char *resource)
{
    return caching_ns(ns, METRICS_CACHE_RECORDS, engine_mode_name(s->mode), s->org_id, "view:%s.%s", service,
                      resource);
}

int caching_ns_schema(struct caching_ns *ns, int mode, const char *service)
{
    return caching_ns(ns, METRICS_CACHE_SCHEMA, engine_mode_name(mode), "schema", "svc:%s", service);
}

int caching_ns_apps(struct caching_ns *ns)
{
    return caching_ns(ns, METRICS_CACHE_APPS, "core", "apps", "apps");
}

void caching_touch(struct worker *w, const struct caching_ns *ns)
{
    touch(w, ns->use, ns->vkey);
}

void caching_touch_principal(struct worker *w, const char *org)
{
    struct caching_ns ns;

    if (caching_ns_principal(&ns, org) == 0)
        caching_touch(w, &ns);
}

void caching_flush(struct worker *w)
{
    struct caching *c = &w->caching;

    for (size_t i = 0; i < c->npending; i++)
        if (cache_bump(&c->cache, c->st[c->pending[i].use], c->pending[i].vkey) != 0)
            log_msg(LOG_WARN, "cache_bump_failed", "%s: %s (entries of the old version live until their TTL)",
                    c->pending[i].vkey, w->cache_kv->errstr);
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

static int version_of(struct worker *w, int use, const char *vkey, int64_t *ver)
{
    return cache_version(&w->caching.cache, w->caching.st[use], vkey, ver);
}

bool caching_on(const struct worker *w, int use)
{
    return w->caching.on[use];
}


/* ---- versioned reads planned into one round trip ------------------------------ */

int caching_ns(struct caching_ns *ns, int use, const char *mode, const char *org, const char *fmt, ...)
{
    va_list ap;
    int n;

    memset(ns, 0, sizeof *ns);
    ns->use = use;
    n = snprintf(ns->tag, sizeof ns->tag, "{%s:%s}:", mode, org);
    if (n < 0 || (size_t)n >= sizeof ns->tag)
        return ERR_TOOBIG;
    va_start(ap, fmt);
    n = vsnprintf(ns->name, sizeof ns->name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof ns->name)
        return ERR_TOOBIG;
    n = snprintf(ns->vkey, sizeof ns->vkey, "%sver:%s", ns->tag, ns->name);
    return n < 0 || (size_t)n >= sizeof ns->vkey ? ERR_TOOBIG : 0;
}

int caching_ns_key(const struct caching_ns *ns, int64_t ver, const char *suffix, char out[CACHE_KEY_MAX])
{
    int n = snprintf(out, CACHE_KEY_MAX, "%s%s:v%lld:%s", ns->tag, ns->name, (long long)ver, suffix);

    return n < 0 || n >= CACHE_KEY_MAX ? ERR_TOOBIG : 0;
}

/* The slot of the version of vkey last seen. A guess only: it is compared
 * with the version read in the same round trip, so a collision costs a miss. */
static struct caching_seen *seen(struct worker *w, const char *vkey, uint64_t *hash)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */

    for (const char *p = vkey; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    *hash = h;
    return &w->caching.seen[h % CACHING_SEEN];
}

static uint64_t fnv(uint64_t h, const char *p)
{
    for (; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

void caching_ahead(struct worker *w, const char *const *parts, size_t n)
{
    struct caching *c = &w->caching;
    uint64_t h = 1469598103934665603ull;

    if (c->shapes == NULL || c->phase != 0)
        return; /* no room for shapes; or a request run again keeps its first */
    for (size_t i = 0; i < n; i++)
        h = (fnv(h, parts[i] != NULL ? parts[i] : "") ^ 0x1f) * 1099511628211ull;
    c->shape = h != 0 ? h : 1;
    c->phase = 1;
}

void caching_end(struct worker *w)
{
    struct caching *c = &w->caching;

    for (size_t i = 0; i < c->nstash; i++)
        free(c->stash[i].val);
    c->nstash = 0; /* before the slot its keys point into is written */
    if (c->phase == 2) {
        struct caching_shape *s = &c->shapes[c->shape % CACHING_SHAPES];
        s->hash = c->nlate > 0 ? c->shape : 0;
        s->nkeys = c->nlate;
        for (size_t i = 0; i < c->nlate; i++)
            memcpy(s->keys[i], c->late[i], CACHE_KEY_MAX);
    }
    c->nlate = 0;
    c->phase = 0;
    c->shape = 0;
}

/* A copy of key's value read ahead: true with *val (NULL: no such key);
 * false when it was not read ahead, or there is no memory for the copy (then
 * the kv is asked). */
static bool stash_get(struct caching *c, const char *key, char **val, size_t *len)
{
    for (size_t i = 0; i < c->nstash; i++) {
        if (strcmp(c->stash[i].key, key) != 0)
            continue;
        *val = NULL;
        *len = c->stash[i].len;
        if (c->stash[i].val != NULL) {
            if ((*val = malloc(*len + 1)) == NULL)
                return false;
            memcpy(*val, c->stash[i].val, *len + 1);
        }
        return true;
    }
    return false;
}

/* Notes a key this request read past its first round trip, for its shape. */
static void learn(struct caching *c, const char *key)
{
    for (size_t i = 0; i < c->nlate; i++)
        if (strcmp(c->late[i], key) == 0)
            return;
    if (c->nlate < CACHING_AHEAD)
        snprintf(c->late[c->nlate++], CACHE_KEY_MAX, "%s", key);
}

/* The kv round trip of a fetch: keys[0..k) into vals, the ones read ahead
 * taken from the stash; on the request's first trip the shape's keys too. */
static int mget_ahead(struct worker *w, const char **keys, size_t k, char **vals, size_t *lens, bool *stashed)
{
    struct caching *c = &w->caching;
    const char *send[KV_MGET_MAX];
    char *svals[KV_MGET_MAX];
    size_t slens[KV_MGET_MAX], from[KV_MGET_MAX], ns = 0, na = 0;
    const struct caching_shape *shape = NULL;
    int rc;

    if (c->phase == 1) {
        shape = &c->shapes[c->shape % CACHING_SHAPES];
        if (shape->hash != c->shape)
            shape = NULL;
    }
    for (size_t i = 0; i < k; i++) {
        if (c->phase == 2)
            learn(c, keys[i]);
        if ((stashed[i] = stash_get(c, keys[i], &vals[i], &lens[i])))
            continue;
        vals[i] = NULL;
        send[ns] = keys[i];
        from[ns++] = i;
    }
    if (shape != NULL && ns > 0) /* ahead only with a trip that goes anyway */
        for (size_t a = 0; a < shape->nkeys && ns < KV_MGET_MAX && c->nstash + na < CACHING_AHEAD; a++) {
            bool dup = false;
            for (size_t j = 0; j < ns && !dup; j++)
                dup = strcmp(send[j], shape->keys[a]) == 0;
            if (!dup) {
                send[ns] = shape->keys[a];
                from[ns++] = SIZE_MAX;
                na++;
            }
        }
    if (c->phase == 1)
        c->phase = 2;
    if (ns == 0)
        return 0; /* all of it read ahead */
    if ((rc = kv_mget(w->cache_kv, send, ns, svals, slens)) != 0) {
        for (size_t i = 0; i < k; i++) {
            free(vals[i]);
            vals[i] = NULL;
        }
        return rc;
    }
    for (size_t j = 0; j < ns; j++) {
        if (from[j] != SIZE_MAX) {
            vals[from[j]] = svals[j];
            lens[from[j]] = slens[j];
        } else if (c->nstash < CACHING_AHEAD) {
            c->stash[c->nstash++] = (struct caching_stash){send[j], svals[j], slens[j]};
        } else {
            free(svals[j]);
        }
    }
    return 0;
}

int caching_fetch(struct worker *w, struct caching_read *rd, size_t n, const char *const *extra, size_t nextra,
                  char **xvals, size_t *xlens)
{
    const char *keys[KV_MGET_MAX];
    char guess_key[KV_MGET_MAX][CACHE_KEY_MAX];
    char *vals[KV_MGET_MAX];
    size_t lens[KV_MGET_MAX], k = 0;
    bool stashed[KV_MGET_MAX];
    int rc;

    for (size_t i = 0; i < nextra; i++)
        keys[k++] = extra[i];
    for (size_t i = 0; i < n; i++) {
        struct caching_seen *s;
        uint64_t h;
        rd[i].ver = -1;
        rd[i].cached = NULL;
        rd[i].cached_len = 0;
        rd[i].guess = -1;
        rd[i].vslot = -1;
        if (!w->caching.on[rd[i].ns->use] || k + 2 > KV_MGET_MAX || i >= KV_MGET_MAX)
            continue; /* switched off, or past the round trip: loaded alone */
        rd[i].vslot = (int)k;
        keys[k++] = rd[i].ns->vkey;
        s = seen(w, rd[i].ns->vkey, &h);
        if (rd[i].suffix != NULL && s->hash == h &&
            caching_ns_key(rd[i].ns, s->ver, rd[i].suffix, guess_key[i]) == 0) {
            rd[i].guess = s->ver;
            keys[k++] = guess_key[i];
        }
    }
    if (k == 0)
        return 0;
    if ((rc = mget_ahead(w, keys, k, vals, lens, stashed)) != 0) {
        for (size_t i = 0; i < n; i++) {
            rd[i].guess = -1; /* fail open: every read loads */
            if (rd[i].vslot >= 0)
                cache_count(&w->caching.st[rd[i].ns->use]->fallbacks);
        }
        return rc;
    }
    for (size_t i = 0; i < nextra; i++) {
        xvals[i] = vals[i];
        xlens[i] = lens[i];
    }
    for (size_t i = 0, j = nextra; i < n; i++) {
        int64_t ver = 0;
        if (!w->caching.on[rd[i].ns->use] || (int)j != rd[i].vslot)
            continue;
        if (vals[j] != NULL && (!kv_parse_i64(vals[j], lens[j], &ver) || ver < 0))
            ver = -1; /* not a version: this read leaves the cache out */
        if (stashed[j])
            cache_count(&w->caching.st[rd[i].ns->use]->ahead);
        free(vals[j++]);
        rd[i].ver = ver;
        if (rd[i].guess >= 0) {
            if (ver == rd[i].guess && vals[j] != NULL) {
                rd[i].cached = vals[j];
                rd[i].cached_len = lens[j];
            } else {
                free(vals[j]);
            }
            j++;
        }
        if (ver >= 0) {
            uint64_t h;
            struct caching_seen *s = seen(w, rd[i].ns->vkey, &h);
            s->hash = h;
            s->ver = ver;
        }
    }
    return 0;
}

int caching_finish(struct worker *w, struct caching_read *rd)
{
    struct caching *c = &w->caching;
    const char *payload;
    size_t plen;
    char key[CACHE_KEY_MAX];
    int rc;

    buf_reset(rd->out);
    rd->found = false;
    if (rd->cached != NULL) {
        rc = cache_unwrap(rd->cached, rd->cached_len, &payload, &plen, &rd->found);
        if (rc == 0 && rd->found)
            rc = buf_append(rd->out, payload, plen); /* payload points into rd->cached */
        caching_read_cleanup(rd);
        if (rc == 0) {
            cache_count(&c->st[rd->ns->use]->hits);
            return 0;
        }
        buf_reset(rd->out);
        rd->found = false;
    }
    if (c->on[rd->ns->use] && rd->ver < 0 && rd->vslot < 0) {
        /* not in a round trip (past its keys): ask the version alone */
        if (version_of(w, rd->ns->use, rd->ns->vkey, &rd->ver) != 0)
            rd->ver = -1;
    }
    if (!c->on[rd->ns->use] || rd->ver < 0 || caching_ns_key(rd->ns, rd->ver, rd->suffix, key) != 0)
        return rd->load(rd->ctx, rd->out, &rd->found); /* off, or the kv failed: fail open */
    return cache_remember(&c->cache, c->st[rd->ns->use], key, c->ttl_ms[rd->ns->use], rd->load, rd->ctx,
                          rd->out, &rd->found);
}

void caching_read_cleanup(struct caching_read *rd)
{
    free(rd->cached);
    rd->cached = NULL;
}

/* ---- in-process copies checked against their namespace's version ----------- */

/* The memo slot of (ns, name). */
static struct caching_memo *memo_slot(struct worker *w, const struct caching_ns *ns, const char *name, uint64_t *h)
{
    uint64_t x = 1469598103934665603ull;

    for (const char *p = ns->vkey; *p != '\0'; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ull;
    x = (x ^ '/') * 1099511628211ull;
    for (const char *p = name; *p != '\0'; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ull;
    *h = x;
    return &w->caching.memo[x % CACHING_MEMOS];
}

int caching_memo_get(struct worker *w, const struct caching_ns *ns, int64_t ver, const char *name, void *out,
                     size_t size, bool *found)
{
    uint64_t h;
    struct caching_memo *m = memo_slot(w, ns, name, &h);
    int64_t now = (int64_t)time(NULL);

    if (ver < 0 || !w->caching.on[ns->use] || m->val == NULL || m->hash != h || m->ver != ver ||
        m->size != size || now - m->at >= (int64_t)(w->caching.ttl_ms[ns->use] / 1000))
        return ERR_NOTFOUND;
    *found = m->found;
    if (m->found)
        memcpy(out, m->val, size);
    cache_count(&w->caching.st[ns->use]->hits);
    return 0;
}

void caching_memo_put(struct worker *w, const struct caching_ns *ns, int64_t ver, const char *name, const void *val,
                      size_t size, bool found)
{
    uint64_t h;
    struct caching_memo *m = memo_slot(w, ns, name, &h);

    if (ver < 0 || !w->caching.on[ns->use])
        return;
    if (m->size != size) {
        free(m->val);
        m->size = 0;
        if ((m->val = malloc(size)) == NULL)
            return;
        m->size = size;
    }
    m->hash = h;
    m->ver = ver;
    m->at = (int64_t)time(NULL);
    m->found = found;
    if (found)
        memcpy(m->val, val, size);
}
