/* engine_mem: the memory engine on the shared region: the handle, the layout
 * of the root, units of work, users, orgs, apps and the table. The layout of
 * the region and the design of its records are in engine_mem_int.h; the
 * tenant-scoped ops in engine_mem_tenant.c. */
#include "store/mem/engine_mem.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/mem/engine_mem_int.h"
#include "store/mem/engine_mem_records.h"
#include "store/mem/shm.h"

/* ---- layout ------------------------------------------------------------ */

/* Finds the root, or lays it out in the current section (*made is then true). */
static int layout(struct shm_region *r, uint64_t *out, bool *made, char errstr[128])
{
    uint64_t off = shm_root_get(r, MEM_ROOT);
    struct mem_root *rt;
    int rc;

    *made = false;
    if (off != 0) {
        if (((struct mem_root *)shm_ptr(r, off))->magic != MEM_MAGIC) {
            snprintf(errstr, 128, "memory: root \"%s\" is not ours", MEM_ROOT);
            return ERR_INTERNAL;
        }
        *out = off;
        return 0;
    }
    if ((off = shm_alloc(r, sizeof *rt)) == 0)
        goto full;
    rt = shm_ptr(r, off);
    memset(rt, 0, sizeof *rt);
    {
        uint64_t *const maps[] = {&rt->users,   &rt->emails,     &rt->user_orgs,
                                  &rt->orgs,    &rt->slugs,      &rt->apps,
                                  &rt->app_ids, &rt->key_hashes, &rt->refresh_hashes,
                                  &rt->invite_hashes, &rt->user_tokens, &rt->auth_events};

        for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
            if ((*maps[i] = shm_map_new(r, MEM_ROOT_HINT)) == 0)
                goto full;
    }
    rt->magic = MEM_MAGIC;
    if ((rc = shm_root_set(r, MEM_ROOT, off)) != 0) {
        snprintf(errstr, 128, "memory: root directory: %s", err_str(rc));
        return rc;
    }
    *out = off;
    *made = true;
    return 0;
full:
    snprintf(errstr, 128, "memory: region too small for the engine's root");
    return ERR_NOSPACE;
}

int engine_mem_prepare(struct shm_region *r, char errstr[128])
{
    char scratch[128];
    uint64_t off;
    bool made;
    int rc;

    if (errstr == NULL)
        errstr = scratch;
    if (shm_locked(r)) {
        snprintf(errstr, 128, "memory: prepare inside a section");
        return ERR_INTERNAL;
    }
    if (shm_lock(r) != 0) {
        snprintf(errstr, 128, "memory: region lock unusable");
        return ERR_UNAVAILABLE;
    }
    rc = layout(r, &off, &made, errstr);
    if (rc != 0)
        shm_abort(r);
    else
        shm_unlock(r);
    return rc;
}

/* ---- units of work ------------------------------------------------------- */

static void end(struct mem *m, bool rolled_back)
{
    if (rolled_back && m->root_new)
        m->root = 0;
    m->root_new = false;
    m->in_tx = false;
    m->scoped = false;
    m->poisoned = 0;
}

static int mem_begin(struct engine *e, const struct eng_scope *s)
{
    struct mem *m = e->impl;
    int rc;

    if (m->in_tx)
        return engine_fail(e, ERR_INTERNAL, "begin inside a unit of work");
    if (shm_locked(m->r))
        return engine_fail(e, ERR_INTERNAL, "region lock already held by this process");
    if (shm_lock(m->r) != 0)
        return engine_fail(e, ERR_UNAVAILABLE, "region lock unusable");
    m->in_tx = true;
    m->poisoned = 0;
    m->scoped = s != NULL;
    if (s != NULL)
        m->scope = *s;
    if (m->root == 0 && (rc = layout(m->r, &m->root, &m->root_new, e->errstr)) != 0) {
        shm_abort(m->r);
        end(m, true);
        return rc;
    }
    return 0;
}

static int mem_commit(struct engine *e)
{
    struct mem *m = e->impl;
    int rc = m->poisoned;

    if (!m->in_tx)
        return engine_fail(e, ERR_INTERNAL, "commit outside a unit of work");
    if (rc != 0) {
        shm_abort(m->r);        /* errstr still tells the failure that spoiled it */
        end(m, true);
        return rc;
    }
    shm_unlock(m->r);
    end(m, false);
    return 0;
}

static void mem_rollback(struct engine *e)
{
    struct mem *m = e->impl;

    if (!m->in_tx)
        return;
    shm_abort(m->r);
    end(m, true);
}

static int mem_ping(struct engine *e)
{
    struct mem *m = e->impl;

    if (m->in_tx)
        return 0;
    if (shm_locked(m->r))
        return engine_fail(e, ERR_INTERNAL, "region lock already held by this process");
    if (shm_lock(m->r) != 0)
        return engine_fail(e, ERR_UNAVAILABLE, "region lock unusable");
    shm_unlock(m->r);
    return 0;
}

static void mem_free(struct engine *e)
{
    mem_rollback(e);
    free(e->impl);
    free(e);
}

static int cmp_app(const void *pa, const void *pb)
{
    const struct eng_app *a = *(const void *const *)pa, *b = *(const void *const *)pb;

    return strcmp(a->name, b->name);
}

/* ---- users --------------------------------------------------------------- */

/* The global records kept under two keys of the root (struct mem_kind). */
static const struct mem_kind USER = {"user", {"user id", "email"},
                                     {offsetof(struct mem_root, users), offsetof(struct mem_root, emails)}, {0}};
static const struct mem_kind ORG = {"org", {"org id", "org slug"},
                                    {offsetof(struct mem_root, orgs), offsetof(struct mem_root, slugs)}, {0}};
static const struct mem_kind APP = {"app", {"app name", "app id"},
                                    {offsetof(struct mem_root, apps), offsetof(struct mem_root, app_ids)}, {0}};

/* Stores n bytes at src, a global record of kind kd whose keys are both free. */
static int global_create(struct engine *e, const struct mem_kind *kd, const char *key0, const char *key1,
                         const void *src, size_t n)
{
    struct mem_key k[2];
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    kind_keys(e->impl, kd, 0, key0, key1, k);
    return rec_insert_twice(e, k, src, n);
}

static int mem_user_create(struct engine *e, const struct eng_user *u)
{
    return global_create(e, &USER, u->id, u->email_hmac, u, sizeof *u);
}

/* A copy of the user with this id to change, and where its record is. */
static int user_load(struct engine *e, const char *id, struct eng_user *u, uint64_t *off)
{
    int rc;

    if ((rc = root_find(e, USER.map[0], id, USER.what, off)) != 0)
        return rc;
    memcpy(u, ptr(e->impl, *off), sizeof *u);
    return 0;
}

static int mem_user_get(struct engine *e, const char *id, struct eng_user *out)
{
    return root_get(e, USER.map[0], id, USER.what, out, sizeof *out);
}

static int mem_user_by_email(struct engine *e, const char *email_hmac, struct eng_user *out)
{
    return root_get(e, USER.map[1], email_hmac, USER.what, out, sizeof *out);
}

/* Publishes *u in place of the record at old (same id and email_hmac). */
static int user_replace(struct engine *e, uint64_t old, const struct eng_user *u)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((off = rec_new(e, u, sizeof *u)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_set(e, root(m)->users, u->id, off)) != 0 ||
        (rc = map_set(e, root(m)->emails, u->email_hmac, off)) != 0)
        return rc;
    shm_free(m->r, old);
    return 0;
}

static int mem_user_set_password(struct engine *e, const char *id, const char *phc)
{
    struct eng_user u;
    uint64_t off;
    int rc;

    if ((rc = user_load(e, id, &u, &off)) != 0)
        return rc;
    memset(u.password_hash, 0, sizeof u.password_hash);
    memcpy(u.password_hash, phc, strlen(phc));
    return user_replace(e, off, &u);
}

static int mem_user_set_admin(struct engine *e, const char *id, bool admin)
{
    struct eng_user u;
    uint64_t off;
    int rc;

    if ((rc = user_load(e, id, &u, &off)) != 0)
        return rc;
    if (u.is_platform_admin == admin)
        return 0;
    u.is_platform_admin = admin;
    return user_replace(e, off, &u);
}

static int mem_user_set_verified(struct engine *e, const char *id, int64_t at)
{
    struct eng_user u;
    uint64_t off;
    int rc;

    if ((rc = user_load(e, id, &u, &off)) != 0)
        return rc;
    if (u.email_verified_at != 0)
        return 0;
    u.email_verified_at = at;
    return user_replace(e, off, &u);
}

/* ---- a person's one-time tokens and the auth outbox --------------------------- */

static int mem_user_token_create(struct engine *e, const struct eng_user_token *t)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->users, t->user_id, NULL))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    if (map_find(m, root(m)->user_tokens, t->token_hash, NULL))
        return engine_fail(e, ERR_CONFLICT, "token hash taken");
    if ((off = rec_new(e, t, sizeof *t)) == 0)
        return ERR_NOSPACE;
    return map_add(e, root(m)->user_tokens, t->token_hash, off);
}

static int mem_user_token_use(struct engine *e, int kind, const char *token_hash, int64_t now,
                              struct eng_user_token *out)
{
    const struct mem *m = e->impl;
    const struct eng_user_token *t;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->user_tokens, token_hash, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such token");
    t = ptr(m, off);
    if (t->kind != kind || t->used_at != 0 || t->expires_at <= now)
        return engine_fail(e, ERR_NOTFOUND, "no such token");
    if ((rc = set64(e, off + offsetof(struct eng_user_token, used_at), (uint64_t)now)) != 0)
        return rc;
    *out = *t;
    return 0;
}

static int mem_auth_event_append(struct engine *e, const struct eng_auth_event *ev, int64_t *seq)
{
    const struct mem *m = e->impl;
    struct eng_auth_event rec = *ev;
    char key[24];
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    rec.seq = (int64_t)root(m)->event_seq + 1;
    snprintf(key, sizeof key, "%020lld", (long long)rec.seq);
    if ((off = rec_new(e, &rec, sizeof rec)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, root(m)->auth_events, key, off)) != 0 ||
        (rc = set64(e, m->root + offsetof(struct mem_root, event_seq), (uint64_t)rec.seq)) != 0)
        return rc;
    *seq = rec.seq;
    return 0;
}

static int cmp_event(const void *pa, const void *pb)
{
    const struct eng_auth_event *a = pa, *b = pb;

    return cmp_i64(a->seq, b->seq);
}

/* The events past after in seq order: the map is a hash, so every live one is
 * looked at (the reaper keeps them few: a day past their token's expiry). */
static int mem_auth_event_list(struct engine *e, int64_t after, struct eng_auth_event *out, size_t max,
                               size_t *n)
{
    const struct mem *m = e->impl;
    struct shm_map_entry me;
    struct eng_auth_event *all = NULL;
    size_t k = 0, cap = 0;
    uint64_t pos = 0;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter(e)) != 0)
        return rc;
    while (shm_map_next(m->r, root(m)->auth_events, &pos, &me)) {
        const struct eng_auth_event *ev = ptr(m, me.val);
        if (ev->seq <= after)
            continue;
        if (k == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct eng_auth_event *grown = realloc(all, ncap * sizeof *grown);
            if (grown == NULL) {
                free(all);
                return engine_fail(e, ERR_NOMEM, "out of memory");
            }
            all = grown;
            cap = ncap;
        }
        all[k++] = *ev;
    }
    if (k > 0)
        qsort(all, k, sizeof *all, cmp_event);
    for (size_t i = 0; i < k && *n < max; i++)
        out[(*n)++] = all[i];
    free(all);
    return 0;
}

static int mem_user_memberships(struct engine *e, const char *user_id, struct eng_membership *out,
                                size_t max, size_t *n)
{
    const struct mem *m = e->impl;
    uint64_t map;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->user_orgs, user_id, &map))
        return 0;
    return list_map(e, map, cmp_membership, out, sizeof *out, max, n);
}

/* ---- orgs, apps, built-in roles ------------------------------------------ */

static int mem_org_create(struct engine *e, const struct eng_org *o)
{
    struct mem_key k[2];
    struct mem_org node;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    kind_keys(e->impl, &ORG, 0, o->id, o->slug, k);
    if ((rc = keys_free(e, k)) != 0)
        return rc;
    memset(&node, 0, sizeof node);
    node.org = *o;
    {
        uint64_t *const maps[] = {&node.members, &node.roles,   &node.keys,      &node.refresh,
                                  &node.families, &node.invites, &node.audit_ids, &node.sessions};

        for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
            if ((*maps[i] = map_new(e, MEM_ORG_HINT)) == 0)
                return ERR_NOSPACE;
    }
    return rec_add_twice(e, k, &node, sizeof node, NULL);
}

static int mem_app_create(struct engine *e, const struct eng_app *a)
{
    return global_create(e, &APP, a->name, a->id, a, sizeof *a);
}

static int mem_app_get(struct engine *e, const char *name, struct eng_app *out)
{
    return root_get(e, APP.map[0], name, APP.what, out, sizeof *out);
}

static int mem_app_list(struct engine *e, struct eng_app *out, size_t max, size_t *n)
{
    const struct mem *m = e->impl;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter(e)) != 0)
        return rc;
    return list_map(e, root(m)->apps, cmp_app, out, sizeof *out, max, n);
}

static int mem_role_builtin(struct engine *e, const char *name, struct eng_role *out)
{
    const struct eng_role *b;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if ((b = engine_builtin_role(name)) == NULL)
        return engine_fail(e, ERR_NOTFOUND, "no such built-in role");
    *out = *b;
    return 0;
}

/* ---- hooks for engine_mem_records.c -------------------------------------- */

struct shm_region *engine_mem_region(struct engine *e)
{
    return ((struct mem *)e->impl)->r;
}

int engine_mem_enter_org(struct engine *e, const struct eng_scope *s)
{
    uint64_t node;

    return enter_org(e, s, &node);
}

int engine_mem_broke(struct engine *e, int rc, const char *what)
{
    return broke(e, rc, what);
}

/* ---- CQRS: each op its own units of work (engine.h) ------------------------ */

/* After the unit committed: what it changed, to the caller's touch. */
static void touched_report(struct memrec_touched *t, eng_touch_fn touch, void *ctx)
{
    for (size_t i = 0; touch != NULL && i < t->n; i++)
        touch(ctx, &t->v[i].scope, t->v[i].service, t->v[i].resource);
    memrec_touched_free(t);
}

/* One section per call: the lock is held for one batch of every service,
 * and the batch's size bounds what the undo log and the waiting requests see. */
static int mem_project(struct engine *e, size_t max, eng_touch_fn touch, void *ctx, struct eng_projection *out)
{
    struct memrec_touched t = {0};
    int rc;

    if ((rc = mem_begin(e, NULL)) != 0)
        return rc;
    if ((rc = memrec_project(e, max, &t, out)) != 0) {
        mem_rollback(e);
        memrec_touched_free(&t);
        memset(out, 0, sizeof *out);
        return rc == ERR_NOMEM ? engine_fail(e, rc, "out of memory") : rc;
    }
    if ((rc = mem_commit(e)) != 0) {
        memrec_touched_free(&t);
        memset(out, 0, sizeof *out);
        return rc;
    }
    touched_report(&t, touch, ctx);
    return 0;
}

static int mem_wait(struct engine *e, int timeout_ms)
{
    struct memrec_wake w;
    bool pending;
    int rc;

    if ((rc = mem_begin(e, NULL)) != 0)
        return rc;
    rc = memrec_wait_prepare(e, &w, &pending);
    mem_rollback(e); /* it changed nothing the undo log keeps: the waiter count is atomic */
    if (rc != 0 || pending)
        return rc;
    if (w.word == NULL) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    memrec_wait_on(&w, timeout_ms);
    return 0;
}

/* Bounded sections until nothing is left: each deletes at most REAP_BUDGET
 * rows, so no section outgrows the undo log or holds the lock for long. */
#define REAP_BUDGET 256

static int mem_reap(struct engine *e, const struct eng_reap_policy *p, eng_touch_fn touch, void *ctx,
                    struct eng_reaped *out)
{
    int rc = 0;

    for (int part = 0; part < 2 && rc == 0; part++) {
        bool more = true;
        for (int round = 0; more && round < 10000 && rc == 0; round++) {
            struct memrec_touched t = {0};
            struct eng_reaped got = {0};

            if ((rc = mem_begin(e, NULL)) != 0)
                break;
            rc = part == 0 ? memrec_reap(e, p, REAP_BUDGET, &t, &got, &more)
                           : mem_reap_tenant(e, p, REAP_BUDGET, &got, &more);
            if (rc != 0) {
                mem_rollback(e);
                memrec_touched_free(&t);
                break;
            }
            if ((rc = mem_commit(e)) != 0) {
                memrec_touched_free(&t);
                break;
            }
            out->records += got.records;
            out->changes += got.changes;
            out->refresh_tokens += got.refresh_tokens;
            out->invites += got.invites;
            out->sessions += got.sessions;
            out->user_tokens += got.user_tokens;
            out->auth_events += got.auth_events;
            out->audit_entries += got.audit_entries;
            touched_report(&t, touch, ctx);
        }
    }
    return rc == ERR_NOMEM ? engine_fail(e, rc, "out of memory") : rc;
}

/* The oldest org with platform set (ties by id). */
static int mem_org_platform(struct engine *e, struct eng_org *out)
{
    struct mem *m = e->impl;
    uint64_t pos = 0;
    struct shm_map_entry me;
    bool found = false;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    while (shm_map_next(m->r, root(m)->orgs, &pos, &me)) {
        const struct mem_org *o = ptr(m, me.val);
        if (!o->org.platform)
            continue;
        if (!found || o->org.created_at < out->created_at ||
            (o->org.created_at == out->created_at && strcmp(o->org.id, out->id) < 0))
            *out = o->org;
        found = true;
    }
    return found ? 0 : engine_fail(e, ERR_NOTFOUND, "no platform org");
}

/* ---- the table ------------------------------------------------------------- */

static const struct engine_ops mem_ops = {
    .name = "memory",
    .begin = mem_begin,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .ping = mem_ping,
    .free = mem_free,
    .user_create = mem_user_create,
    .user_get = mem_user_get,
    .user_by_email = mem_user_by_email,
    .user_set_password = mem_user_set_password,
    .user_set_admin = mem_user_set_admin,
    .user_memberships = mem_user_memberships,
    .user_set_verified = mem_user_set_verified,
    .user_erase = mem_user_erase,
    .user_token_create = mem_user_token_create,
    .user_token_use = mem_user_token_use,
    .auth_event_append = mem_auth_event_append,
    .auth_event_list = mem_auth_event_list,
    .org_create = mem_org_create,
    .app_create = mem_app_create,
    .app_get = mem_app_get,
    .app_list = mem_app_list,
    .role_builtin = mem_role_builtin,
    .api_key_resolve = mem_api_key_resolve,
    .refresh_resolve = mem_refresh_resolve,
    .invite_resolve = mem_invite_resolve,
    .org_get = mem_org_get,
    .member_put = mem_member_put,
    .member_get = mem_member_get,
    .member_list = mem_member_list,
    .member_remove = mem_member_remove,
    .role_get = mem_role_get,
    .role_list = mem_role_list,
    .role_put = mem_role_put,
    .role_delete = mem_role_delete,
    .session_create = mem_session_create,
    .session_list = mem_session_list,
    .session_revoke = mem_session_revoke,
    .api_key_create = mem_api_key_create,
    .api_key_list = mem_api_key_list,
    .api_key_revoke = mem_api_key_revoke,
    .refresh_create = mem_refresh_create,
    .refresh_rotate = mem_refresh_rotate,
    .refresh_rotate_hash = mem_refresh_rotate_hash,
    .refresh_revoke_family = mem_refresh_revoke_family,
    .invite_create = mem_invite_create,
    .invite_mark_used = mem_invite_mark_used,
    .audit_append = mem_audit_append,
    .audit_list = mem_audit_list,
    .project = mem_project,
    .wait = mem_wait,
    .reap = mem_reap,
    .org_platform = mem_org_platform,
    ENGINE_MEM_RECORD_OPS,
};

struct engine *engine_mem_new(struct shm_region *r, char errstr[128])
{
    struct engine *e = calloc(1, sizeof *e);
    struct mem *m = calloc(1, sizeof *m);

    if (e == NULL || m == NULL || r == NULL) {
        if (errstr != NULL)
            snprintf(errstr, 128, "memory: %s", r == NULL ? "no region" : "out of memory");
        free(m);
        free(e);
        return NULL;
    }
    m->r = r;
    e->ops = &mem_ops;
    e->impl = m;
    return e;
}
