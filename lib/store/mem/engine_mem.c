/* engine_mem: the memory engine on the shared region.
 *
 * Everything hangs off one root record (root name "engine.mem") holding the
 * global maps; each org has a node (struct mem_org) holding its own maps, so a
 * tenant-scoped call finds the org by id and never looks at another org's rows.
 * Map values are offsets of records, which are the structs of engine.h stored
 * as they are (a few with an engine-private tail). Where a record has two
 * indexes (a user by id and by email_hmac, an api key by its org's id map and
 * the global hash map) both hold the same offset.
 *
 *   root: users        user id     → struct eng_user
 *         emails       email_hmac  → the same
 *         user_orgs    user id     → map: org id → struct eng_membership
 *         orgs, slugs  id, slug    → struct mem_org
 *         apps, app_ids name, id   → struct eng_app
 *         key_hashes   key_hash    → struct eng_api_key
 *         refresh_hashes token_hash → struct mem_refresh
 *         invite_hashes token_hash → struct eng_invite
 *   org:  members      user id     → struct eng_membership (shared with user_orgs)
 *         roles        name        → struct eng_role
 *         keys         key id      → struct eng_api_key
 *         refresh      token id    → struct mem_refresh
 *         families     family id   → struct mem_family
 *         invites      invite id   → struct eng_invite
 *         audit_ids    audit id    → struct mem_audit, also on a list newest first
 *
 * Crash consistency is shm's: a unit of work is one section, so whatever a
 * dead worker did is undone by the next shm_lock. Within that, records are
 * replaced copy-on-write (a new block, filled with plain stores, published by
 * map puts, the old one freed), except a few 8-byte words changed with
 * shm_set64: a token's used_at or revoked_at, a family's counters, the links of
 * the audit list. One logged word is as atomic as a map put and costs one undo
 * entry instead of ~15, which is what keeps a rotation and friends cheap
 * and lets the undo log hold a long unit of work.
 *
 * Revoking a refresh family must not fail on a large family (it is the answer
 * to a stolen token), so it does not touch the tokens: the family record keeps
 * the first revocation as (revoked_upto, revoked_at), tokens carry their
 * position in the family (seq), and a token's revoked_at reads as the family's
 * when its own is 0 and seq <= revoked_upto. A later revocation that finds
 * tokens made after the first one stamps those few with shm_set64.
 *
 * A family serves at most one replay at a time (lib/store/engine.h, refresh
 * rotation): the family record holds the one seal kept, with the token whose
 * rotation stored it and the child it made. The next rotation in the family
 * replaces it (so the grandparent's seal is gone once its child rotates), a
 * revocation frees it.
 *
 * The audit list is kept in descending id order; ids are uuid v7, so that is
 * newest first. Ids made by different workers within one millisecond may
 * arrive out of order, so an append walks past the few newer entries first.
 * Paging from before_id starts at that entry's successor through audit_ids. */
#include "store/mem/engine_mem.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/mem/engine_mem_records.h"
#include "store/mem/shm.h"

#define MEM_ROOT "engine.mem"
#define MEM_MAGIC 0x326d656d61727374ull     /* "tsramem2": struct mem_family grew the seal */
#define MEM_ROOT_HINT 64                    /* keys each global map starts sized for */
#define MEM_ORG_HINT 4                      /* ... each per-org map */

struct mem_root {
    uint64_t magic;
    uint64_t users;
    uint64_t emails;
    uint64_t user_orgs;
    uint64_t orgs;
    uint64_t slugs;
    uint64_t apps;
    uint64_t app_ids;
    uint64_t key_hashes;
    uint64_t refresh_hashes;
    uint64_t invite_hashes;
};

struct mem_org {
    struct eng_org org;
    uint64_t members;
    uint64_t roles;
    uint64_t keys;
    uint64_t refresh;
    uint64_t families;
    uint64_t invites;
    uint64_t audit_ids;
    uint64_t audit_head;        /* newest struct mem_audit, 0 when none */
};

struct mem_family {
    uint64_t count;             /* tokens made in the family: the last seq */
    uint64_t revoked_upto;      /* tokens with seq <= this were revoked ... */
    int64_t revoked_at;         /* ... at this time; 0: never revoked */
    uint64_t seal;              /* block: the child's sealed text (NUL-terminated); 0: none */
    uint64_t seal_parent;       /* the struct mem_refresh whose rotation stored it */
    uint64_t seal_child;        /* ... and the struct mem_refresh that rotation made */
};

struct mem_refresh {
    struct eng_refresh t;
    uint64_t family;            /* offset of its struct mem_family */
    uint64_t seq;               /* 1, 2, … in order of creation within the family */
};

struct mem_audit {
    uint64_t next;              /* the next older entry */
    struct eng_audit a;
};

/* The handle's state: the region, the unit of work in progress. */
struct mem {
    struct shm_region *r;
    uint64_t root;              /* offset of struct mem_root; 0 until found */
    bool root_new;              /* root laid out by this unit of work */
    bool in_tx;
    bool scoped;                /* begin got a scope: scoped calls must match it */
    struct eng_scope scope;
    int poisoned;               /* 0, or the failure that spoiled the unit of work */
};

/* A failure after the unit of work may have changed the region: only a
 * rollback is safe now. */
static int broke(struct engine *e, int rc, const char *what)
{
    ((struct mem *)e->impl)->poisoned = rc;
    return engine_fail(e, rc, "%s: %s; unit of work must roll back", what, err_str(rc));
}

static inline void *ptr(const struct mem *m, uint64_t off)
{
    return shm_ptr(m->r, off);
}

static inline struct mem_root *root(const struct mem *m)
{
    return ptr(m, m->root);
}

/* ---- map helpers: NUL-terminated keys, errors turned into engine errors ---- */

static bool map_find(const struct mem *m, uint64_t map, const char *key, uint64_t *val)
{
    return shm_map_get(m->r, map, key, strlen(key), val) == 0;
}

/* Inserts a key the caller has checked is absent. */
static int map_add(struct engine *e, uint64_t map, const char *key, uint64_t val)
{
    const struct mem *m = e->impl;
    int rc = shm_map_add(m->r, map, key, strlen(key), val);

    if (rc == 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index insert");
}

static int map_set(struct engine *e, uint64_t map, const char *key, uint64_t val)
{
    const struct mem *m = e->impl;
    int rc = shm_map_put(m->r, map, key, strlen(key), val, NULL);

    if (rc >= 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index update");
}

/* Removes a key the caller has checked is present. */
static int map_del(struct engine *e, uint64_t map, const char *key)
{
    const struct mem *m = e->impl;
    int rc = shm_map_del(m->r, map, key, strlen(key), NULL);

    if (rc == 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index delete");
}

static int set64(struct engine *e, uint64_t off, uint64_t v)
{
    const struct mem *m = e->impl;
    int rc = shm_set64(m->r, off, v);

    if (rc == 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "field update");
}

/* A new block holding a copy of n bytes at src (0 after broke()). */
static uint64_t rec_new(struct engine *e, const void *src, size_t n)
{
    const struct mem *m = e->impl;
    uint64_t off = shm_alloc(m->r, n);

    if (off == 0) {
        broke(e, ERR_NOSPACE, "region full");
        return 0;
    }
    memcpy(ptr(m, off), src, n);        /* new in this section: plain stores */
    return off;
}

static uint64_t map_new(struct engine *e, size_t hint)
{
    const struct mem *m = e->impl;
    uint64_t map = shm_map_new(m->r, hint);

    if (map == 0)
        broke(e, ERR_NOSPACE, "region full");
    return map;
}

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
                                  &rt->invite_hashes};

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

/* Every call but begin/commit/rollback/ping starts here. */
static int enter(struct engine *e)
{
    const struct mem *m = e->impl;

    if (!m->in_tx)
        return engine_fail(e, ERR_INTERNAL, "call outside a unit of work");
    if (m->poisoned != 0)
        return engine_fail(e, ERR_INTERNAL, "call after a failure that needs a rollback");
    return 0;
}

/* ... and every tenant-scoped call here: the org's node, or ERR_NOTFOUND. */
static int enter_org(struct engine *e, const struct eng_scope *s, uint64_t *node)
{
    const struct mem *m = e->impl;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (s == NULL)
        return engine_fail(e, ERR_INTERNAL, "tenant call without a scope");
    if (m->scoped && strcmp(s->org_id, m->scope.org_id) != 0)
        return engine_fail(e, ERR_INTERNAL, "tenant call for an org other than the one begun");
    if (!map_find(m, root(m)->orgs, s->org_id, node))
        return engine_fail(e, ERR_NOTFOUND, "no such org");
    return 0;
}

/* ---- sorted listings ----------------------------------------------------- */

/* Returns owned (free): pointers to every record of map, sorted by cmp. */
static int collect(struct engine *e, uint64_t map, int (*cmp)(const void *, const void *),
                   const void ***out, size_t *count)
{
    const struct mem *m = e->impl;
    size_t n = shm_map_count(m->r, map), i = 0;
    struct shm_map_entry me;
    uint64_t pos = 0;
    const void **v;

    *out = NULL;
    *count = 0;
    if (n == 0)
        return 0;
    if ((v = malloc(n * sizeof *v)) == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    while (i < n && shm_map_next(m->r, map, &pos, &me))
        v[i++] = ptr(m, me.val);
    qsort(v, i, sizeof *v, cmp);
    *out = v;
    *count = i;
    return 0;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_membership(const void *pa, const void *pb)
{
    const struct eng_membership *a = *(const void *const *)pa, *b = *(const void *const *)pb;
    int c = cmp_i64(a->created_at, b->created_at);

    if (c == 0)
        c = strcmp(a->org_id, b->org_id);
    return c != 0 ? c : strcmp(a->user_id, b->user_id);
}

static int cmp_app(const void *pa, const void *pb)
{
    const struct eng_app *a = *(const void *const *)pa, *b = *(const void *const *)pb;

    return strcmp(a->name, b->name);
}

static int cmp_role(const void *pa, const void *pb)
{
    const struct eng_role *a = *(const void *const *)pa, *b = *(const void *const *)pb;

    return strcmp(a->name, b->name);
}

static int cmp_key_newest(const void *pa, const void *pb)
{
    const struct eng_api_key *a = *(const void *const *)pa, *b = *(const void *const *)pb;
    int c = cmp_i64(b->created_at, a->created_at);

    return c != 0 ? c : strcmp(b->id, a->id);
}

/* Copies the first max records of map in cmp's order. */
static int list_map(struct engine *e, uint64_t map, int (*cmp)(const void *, const void *),
                    void *out, size_t size, size_t max, size_t *n)
{
    const void **v;
    size_t count;
    int rc;

    if ((rc = collect(e, map, cmp, &v, &count)) != 0)
        return rc;
    for (size_t i = 0; i < count && *n < max; i++)
        memcpy((char *)out + size * (*n)++, v[i], size);
    free(v);
    return 0;
}

/* ---- users --------------------------------------------------------------- */

static int mem_user_create(struct engine *e, const struct eng_user *u)
{
    const struct mem *m = e->impl;
    const struct mem_root *rt;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    rt = root(m);
    if (map_find(m, rt->users, u->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "user id taken");
    if (map_find(m, rt->emails, u->email_hmac, NULL))
        return engine_fail(e, ERR_CONFLICT, "email taken");
    if ((off = rec_new(e, u, sizeof *u)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, rt->users, u->id, off)) != 0 ||
        (rc = map_add(e, rt->emails, u->email_hmac, off)) != 0)
        return rc;
    return 0;
}

static int user_find(struct engine *e, const char *id, uint64_t *off)
{
    const struct mem *m = e->impl;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->users, id, off))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    return 0;
}

static int mem_user_get(struct engine *e, const char *id, struct eng_user *out)
{
    uint64_t off;
    int rc;

    if ((rc = user_find(e, id, &off)) != 0)
        return rc;
    memcpy(out, ptr(e->impl, off), sizeof *out);
    return 0;
}

static int mem_user_by_email(struct engine *e, const char *email_hmac, struct eng_user *out)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->emails, email_hmac, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    memcpy(out, ptr(m, off), sizeof *out);
    return 0;
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

    if ((rc = user_find(e, id, &off)) != 0)
        return rc;
    memcpy(&u, ptr(e->impl, off), sizeof u);
    memset(u.password_hash, 0, sizeof u.password_hash);
    memcpy(u.password_hash, phc, strlen(phc));
    return user_replace(e, off, &u);
}

static int mem_user_set_admin(struct engine *e, const char *id, bool admin)
{
    struct eng_user u;
    uint64_t off;
    int rc;

    if ((rc = user_find(e, id, &off)) != 0)
        return rc;
    memcpy(&u, ptr(e->impl, off), sizeof u);
    if (u.is_platform_admin == admin)
        return 0;
    u.is_platform_admin = admin;
    return user_replace(e, off, &u);
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
    const struct mem *m = e->impl;
    const struct mem_root *rt;
    struct mem_org node;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    rt = root(m);
    if (map_find(m, rt->orgs, o->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "org id taken");
    if (map_find(m, rt->slugs, o->slug, NULL))
        return engine_fail(e, ERR_CONFLICT, "org slug taken");
    memset(&node, 0, sizeof node);
    node.org = *o;
    {
        uint64_t *const maps[] = {&node.members,  &node.roles,   &node.keys,     &node.refresh,
                                  &node.families, &node.invites, &node.audit_ids};

        for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
            if ((*maps[i] = map_new(e, MEM_ORG_HINT)) == 0)
                return ERR_NOSPACE;
    }
    if ((off = rec_new(e, &node, sizeof node)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, rt->orgs, o->id, off)) != 0 || (rc = map_add(e, rt->slugs, o->slug, off)) != 0)
        return rc;
    return 0;
}

static int mem_app_create(struct engine *e, const struct eng_app *a)
{
    const struct mem *m = e->impl;
    const struct mem_root *rt;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    rt = root(m);
    if (map_find(m, rt->apps, a->name, NULL))
        return engine_fail(e, ERR_CONFLICT, "app name taken");
    if (map_find(m, rt->app_ids, a->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "app id taken");
    if ((off = rec_new(e, a, sizeof *a)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, rt->apps, a->name, off)) != 0 || (rc = map_add(e, rt->app_ids, a->id, off)) != 0)
        return rc;
    return 0;
}

static int mem_app_get(struct engine *e, const char *name, struct eng_app *out)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->apps, name, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such app");
    memcpy(out, ptr(m, off), sizeof *out);
    return 0;
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

/* ---- bootstrap lookups ----------------------------------------------------- */

/* A token as callers see it: its family's revocation folded in. */
static void refresh_out(const struct mem *m, const struct mem_refresh *rec, struct eng_refresh *out)
{
    const struct mem_family *f = ptr(m, rec->family);

    *out = rec->t;
    if (out->revoked_at == 0 && f->revoked_at != 0 && rec->seq <= f->revoked_upto)
        out->revoked_at = f->revoked_at;
}

static int mem_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->key_hashes, key_hash, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such api key");
    memcpy(out, ptr(m, off), sizeof *out);
    return 0;
}

static int mem_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->refresh_hashes, token_hash, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such refresh token");
    refresh_out(m, ptr(m, off), out);
    return 0;
}

static int mem_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out)
{
    const struct mem *m = e->impl;
    uint64_t off;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->invite_hashes, token_hash, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such invite");
    memcpy(out, ptr(m, off), sizeof *out);
    return 0;
}

/* ---- tenant-scoped: org, members, roles ------------------------------------ */

static int mem_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out)
{
    uint64_t node;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    *out = ((const struct mem_org *)ptr(e->impl, node))->org;
    return 0;
}

static int mem_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *mb)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    struct eng_membership rec;
    uint64_t node, old = 0, off, umap;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (!map_find(m, root(m)->users, mb->user_id, NULL))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    rec = *mb;
    if (map_find(m, org->members, mb->user_id, &old))
        rec.created_at = ((const struct eng_membership *)ptr(m, old))->created_at;
    if ((off = rec_new(e, &rec, sizeof rec)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_set(e, org->members, rec.user_id, off)) != 0)
        return rc;
    if (!map_find(m, root(m)->user_orgs, rec.user_id, &umap)) {
        if ((umap = map_new(e, MEM_ORG_HINT)) == 0)
            return ERR_NOSPACE;
        if ((rc = map_add(e, root(m)->user_orgs, rec.user_id, umap)) != 0)
            return rc;
    }
    if ((rc = map_set(e, umap, rec.org_id, off)) != 0)
        return rc;
    shm_free(m->r, old);
    return 0;
}

static int mem_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                          struct eng_membership *out)
{
    const struct mem *m = e->impl;
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    if (!map_find(m, ((const struct mem_org *)ptr(m, node))->members, user_id, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such member");
    memcpy(out, ptr(m, off), sizeof *out);
    return 0;
}

static int mem_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                           size_t max, size_t *n)
{
    uint64_t node;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    return list_map(e, ((const struct mem_org *)ptr(e->impl, node))->members, cmp_membership, out,
                    sizeof *out, max, n);
}

static int mem_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, off, umap;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (!map_find(m, org->members, user_id, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such member");
    if ((rc = map_del(e, org->members, user_id)) != 0)
        return rc;
    if (!map_find(m, root(m)->user_orgs, user_id, &umap))
        return broke(e, ERR_INTERNAL, "membership missing from its user's index");
    if ((rc = map_del(e, umap, s->org_id)) != 0)
        return rc;
    if (shm_map_count(m->r, umap) == 0) {
        if ((rc = map_del(e, root(m)->user_orgs, user_id)) != 0)
            return rc;
        shm_map_free(m->r, umap);
    }
    shm_free(m->r, off);
    return 0;
}

static int mem_role_get(struct engine *e, const struct eng_scope *s, const char *name,
                        struct eng_role *out)
{
    const struct mem *m = e->impl;
    const struct eng_role *b;
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    if (map_find(m, ((const struct mem_org *)ptr(m, node))->roles, name, &off)) {
        memcpy(out, ptr(m, off), sizeof *out);
        return 0;
    }
    if ((b = engine_builtin_role(name)) == NULL)
        return engine_fail(e, ERR_NOTFOUND, "no such role");
    *out = *b;
    return 0;
}

static int mem_role_list(struct engine *e, const struct eng_scope *s, struct eng_role *out,
                         size_t max, size_t *n)
{
    uint64_t node;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    for (size_t i = 0; i < ENGINE_NBUILTIN_ROLES && *n < max; i++)
        out[(*n)++] = ENGINE_BUILTIN_ROLES[i];
    return list_map(e, ((const struct mem_org *)ptr(e->impl, node))->roles, cmp_role, out,
                    sizeof *out, max, n);
}

static int mem_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *r)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, old = 0, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (engine_builtin_role(r->name) != NULL)
        return engine_fail(e, ERR_CONFLICT, "role name is a built-in's");
    (void)map_find(m, org->roles, r->name, &old);
    if ((off = rec_new(e, r, sizeof *r)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_set(e, org->roles, r->name, off)) != 0)
        return rc;
    shm_free(m->r, old);
    return 0;
}

/* ---- tenant-scoped: api keys ----------------------------------------------- */

static int mem_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (map_find(m, root(m)->key_hashes, k->key_hash, NULL))
        return engine_fail(e, ERR_CONFLICT, "api key hash taken");
    if (map_find(m, org->keys, k->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "api key id taken");
    if ((off = rec_new(e, k, sizeof *k)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, org->keys, k->id, off)) != 0 ||
        (rc = map_add(e, root(m)->key_hashes, k->key_hash, off)) != 0)
        return rc;
    return 0;
}

static int mem_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                            size_t max, size_t *n)
{
    const void **v;
    uint64_t node;
    size_t count;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    if ((rc = collect(e, ((const struct mem_org *)ptr(e->impl, node))->keys, cmp_key_newest, &v,
                      &count)) != 0)
        return rc;
    for (size_t i = 0; i < count && *n < max; i++) {
        const struct eng_api_key *k = v[i];

        if (k->mode == s->mode)
            out[(*n)++] = *k;
    }
    free(v);
    return 0;
}

static int mem_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    const struct mem *m = e->impl;
    const struct eng_api_key *k;
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    if (!map_find(m, ((const struct mem_org *)ptr(m, node))->keys, id, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such api key");
    k = ptr(m, off);
    if (k->mode != s->mode) /* test never reaches live, as api_key_list */
        return engine_fail(e, ERR_NOTFOUND, "no such api key in this mode");
    if (k->revoked_at != 0)
        return 0;
    return set64(e, off + offsetof(struct eng_api_key, revoked_at), (uint64_t)at);
}

/* ---- tenant-scoped: refresh tokens ----------------------------------------- */

/* Stores t in the org at node; *at (may be NULL) gets its record's offset. */
static int refresh_insert(struct engine *e, const struct eng_scope *s, uint64_t node,
                          const struct eng_refresh *t, uint64_t *at)
{
    const struct mem *m = e->impl;
    const struct mem_org *org = ptr(m, node);
    struct mem_refresh rec;
    uint64_t fam, off;
    int rc;

    if (!map_find(m, root(m)->users, t->user_id, NULL))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    if (map_find(m, root(m)->refresh_hashes, t->token_hash, NULL))
        return engine_fail(e, ERR_CONFLICT, "refresh token hash taken");
    if (map_find(m, org->refresh, t->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "refresh token id taken");
    if (!map_find(m, org->families, t->family_id, &fam)) {
        const struct mem_family fresh = {0};

        if ((fam = rec_new(e, &fresh, sizeof fresh)) == 0)
            return ERR_NOSPACE;
        if ((rc = map_add(e, org->families, t->family_id, fam)) != 0)
            return rc;
    }
    memset(&rec, 0, sizeof rec);
    rec.t = *t;
    rec.family = fam;
    rec.seq = ((const struct mem_family *)ptr(m, fam))->count + 1;
    if ((rc = set64(e, fam + offsetof(struct mem_family, count), rec.seq)) != 0)
        return rc;
    if ((off = rec_new(e, &rec, sizeof rec)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, org->refresh, t->id, off)) != 0 ||
        (rc = map_add(e, root(m)->refresh_hashes, t->token_hash, off)) != 0)
        return rc;
    if (at != NULL)
        *at = off;
    return 0;
}

static int mem_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t)
{
    uint64_t node;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    return refresh_insert(e, s, node, t, NULL);
}

/* Stamps a one-time record (an invite) of scope's org as used:
 * map is the org's map it lives in (an offset into struct mem_org), used_at
 * the offset of its timestamp; a second use is ERR_CONFLICT. */
static int mark_used(struct engine *e, const struct eng_scope *s, size_t map, size_t used_at,
                     const char *what, const char *id, int64_t at)
{
    const struct mem *m = e->impl;
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    uint64_t org_map = *(const uint64_t *)((const char *)ptr(m, node) + map);
    if (!map_find(m, org_map, id, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such %s", what);
    if (*(const int64_t *)((const char *)ptr(m, off) + used_at) != 0)
        return engine_fail(e, ERR_CONFLICT, "%s already used", what);
    return set64(e, off + used_at, (uint64_t)at);
}

/* Frees the family's seal, if it keeps one. */
static int seal_wipe(struct engine *e, uint64_t fam)
{
    const struct mem *m = e->impl;
    uint64_t old = ((const struct mem_family *)ptr(m, fam))->seal;
    int rc;

    if (old == 0)
        return 0;
    if ((rc = set64(e, fam + offsetof(struct mem_family, seal), 0)) != 0)
        return rc;
    shm_free(m->r, old);        /* reusable only once the section commits: undo stays safe */
    return 0;
}

/* The whole decision runs under the region's lock the unit of work holds, so
 * no other worker's rotation of the same token can come between. */
static int mem_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                              const struct eng_refresh *child, const char *sealed, int64_t now,
                              int64_t reuse_interval, struct eng_rotation *out)
{
    const struct mem *m = e->impl;
    const struct mem_refresh *rec;
    const struct mem_family *f;
    struct eng_refresh parent, kept;
    uint64_t node, off, fam, child_off, seal;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    memset(out, 0, sizeof *out);
    if (!map_find(m, ((const struct mem_org *)ptr(m, node))->refresh, parent_id, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such refresh token");
    rec = ptr(m, off);
    fam = rec->family;
    f = ptr(m, fam);
    refresh_out(m, rec, &parent);
    if (parent.revoked_at != 0) {
        out->outcome = ENG_ROTATE_REVOKED;
        return 0;
    }
    if (parent.used_at != 0) {
        bool kept_here = f->seal != 0 && f->seal_parent == off;

        if (kept_here)
            refresh_out(m, ptr(m, f->seal_child), &kept);
        out->outcome = ENG_ROTATE_REUSE;
        if (eng_refresh_replayable(&parent, kept_here ? &kept : NULL, now, reuse_interval)) {
            out->outcome = ENG_ROTATE_REPLAY;
            out->child = kept;
            snprintf(out->sealed, sizeof out->sealed, "%s", (const char *)ptr(m, f->seal));
        }
        return 0;
    }
    if (strcmp(child->family_id, parent.family_id) != 0 || strcmp(child->user_id, parent.user_id) != 0 ||
        child->mode != parent.mode)
        return engine_fail(e, ERR_INVAL, "the child is not the parent's successor");
    if ((rc = refresh_insert(e, s, node, child, &child_off)) != 0)
        return rc;
    if ((seal = rec_new(e, sealed, strlen(sealed) + 1)) == 0)
        return ERR_NOSPACE;
    /* the family's previous seal (the grandparent's) can no longer be served */
    if ((rc = seal_wipe(e, fam)) != 0 ||
        (rc = set64(e, off + offsetof(struct mem_refresh, t.used_at), (uint64_t)now)) != 0 ||
        (rc = set64(e, fam + offsetof(struct mem_family, seal_parent), off)) != 0 ||
        (rc = set64(e, fam + offsetof(struct mem_family, seal_child), child_off)) != 0 ||
        (rc = set64(e, fam + offsetof(struct mem_family, seal), seal)) != 0)
        return rc;
    out->outcome = ENG_ROTATE_NEW;
    return 0;
}

static int mem_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                                     int64_t at)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    const struct mem_family *f;
    struct shm_map_entry me;
    uint64_t node, fam, pos = 0;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    /* A family this org has no token of: nothing to revoke, as an UPDATE of
     * no rows (another org's family is never touched). */
    if (!map_find(m, org->families, family_id, &fam))
        return 0;
    if ((rc = seal_wipe(e, fam)) != 0)
        return rc;
    f = ptr(m, fam);
    if (f->revoked_at == 0) {
        if ((rc = set64(e, fam + offsetof(struct mem_family, revoked_at), (uint64_t)at)) != 0)
            return rc;
        return set64(e, fam + offsetof(struct mem_family, revoked_upto), f->count);
    }
    if (f->count == f->revoked_upto)
        return 0;
    /* Tokens made since the first revocation: rare, so a walk of the org's
     * tokens stamping each is fine (set64 changes no map: iteration stays valid). */
    while (shm_map_next(m->r, org->refresh, &pos, &me)) {
        const struct mem_refresh *rec = ptr(m, me.val);

        if (rec->family != fam || rec->seq <= f->revoked_upto || rec->t.revoked_at != 0)
            continue;
        if ((rc = set64(e, me.val + offsetof(struct mem_refresh, t.revoked_at), (uint64_t)at)) != 0)
            return rc;
    }
    return 0;
}

/* ---- tenant-scoped: invites ------------------------------------------------ */

static int mem_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (map_find(m, root(m)->invite_hashes, i->token_hash, NULL))
        return engine_fail(e, ERR_CONFLICT, "invite token hash taken");
    if (map_find(m, org->invites, i->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "invite id taken");
    if ((off = rec_new(e, i, sizeof *i)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, org->invites, i->id, off)) != 0 ||
        (rc = map_add(e, root(m)->invite_hashes, i->token_hash, off)) != 0)
        return rc;
    return 0;
}

static int mem_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    return mark_used(e, s, offsetof(struct mem_org, invites), offsetof(struct eng_invite, used_at), "invite",
                     id, at);
}

/* ---- tenant-scoped: audit -------------------------------------------------- */

static int mem_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    struct mem_audit rec;
    uint64_t node, prev = 0, cur, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (map_find(m, org->audit_ids, a->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "audit id taken");
    for (cur = org->audit_head; cur != 0; prev = cur, cur = ((const struct mem_audit *)ptr(m, cur))->next)
        if (strcmp(((const struct mem_audit *)ptr(m, cur))->a.id, a->id) < 0)
            break;
    memset(&rec, 0, sizeof rec);
    rec.next = cur;
    rec.a = *a;
    if ((off = rec_new(e, &rec, sizeof rec)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_add(e, org->audit_ids, a->id, off)) != 0)
        return rc;
    if (prev == 0)
        return set64(e, node + offsetof(struct mem_org, audit_head), off);
    return set64(e, prev + offsetof(struct mem_audit, next), off);
}

static int mem_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
                          struct eng_audit *out, size_t max, size_t *n)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, cur;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    cur = org->audit_head;
    if (before_id != NULL && before_id[0] != '\0') {
        if (map_find(m, org->audit_ids, before_id, &cur)) {
            cur = ((const struct mem_audit *)ptr(m, cur))->next;
        } else {
            /* A cursor that names no entry of this org: still a bound. */
            for (cur = org->audit_head; cur != 0; cur = ((const struct mem_audit *)ptr(m, cur))->next)
                if (strcmp(((const struct mem_audit *)ptr(m, cur))->a.id, before_id) < 0)
                    break;
        }
    }
    for (; cur != 0 && *n < max; cur = ((const struct mem_audit *)ptr(m, cur))->next)
        out[(*n)++] = ((const struct mem_audit *)ptr(m, cur))->a;
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
    .api_key_create = mem_api_key_create,
    .api_key_list = mem_api_key_list,
    .api_key_revoke = mem_api_key_revoke,
    .refresh_create = mem_refresh_create,
    .refresh_rotate = mem_refresh_rotate,
    .refresh_revoke_family = mem_refresh_revoke_family,
    .invite_create = mem_invite_create,
    .invite_mark_used = mem_invite_mark_used,
    .audit_append = mem_audit_append,
    .audit_list = mem_audit_list,
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
