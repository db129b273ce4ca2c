/* engine_mem_int: what the memory engine's files share (engine_mem.c: the
 * handle, units of work, users, orgs and apps; engine_mem_tenant.c: the
 * tenant-scoped ops and the lookups by hash): the region's layout and the
 * primitives every op is made of, static inline so each file has its own.
 * Private to lib/store/mem/.
 *
 * Everything hangs off one root record (root name "engine.mem") holding the
 * global maps; each org has a node (struct mem_org) holding its own maps, so a
 * tenant-scoped call finds the org by id and never looks at another org's rows.
 * Map values are offsets of records, which are the structs of engine.h stored
 * as they are (a few with an engine-private tail). Where a record has two
 * indexes (a user by id and by email_hmac, an api key by its org's id map and
 * the global hash map) both hold the same offset, and a struct mem_kind row
 * names the two maps, so storing, finding and refusing a clash are written once.
 *
 *   root: users        user id     → struct eng_user
 *         emails       email_hmac  → the same
 *         user_orgs    user id     → map: org id → struct eng_membership
 *         orgs, slugs  id, slug    → struct mem_org
 *         apps, app_ids name, id   → struct eng_app
 *         key_hashes   key_hash    → struct eng_api_key
 *         refresh_hashes token_hash → struct mem_refresh
 *         invite_hashes token_hash → struct eng_invite
 *         user_tokens  token_hash  → struct eng_user_token (used_at set with shm_set64)
 *         auth_events  seq (20 digits) → struct eng_auth_event; event_seq the last given
 *   org:  members      user id     → struct eng_membership (shared with user_orgs)
 *         roles        name        → struct eng_role
 *         keys         key id      → struct eng_api_key
 *         refresh      token id    → struct mem_refresh
 *         families     family id   → struct mem_family
 *         invites      invite id   → struct eng_invite
 *         sessions     family id   → struct eng_session (its last_used_at,
 *                                    expires_at, revoked_at set with shm_set64)
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
#ifndef LIB_ENGINE_MEM_INT_H
#define LIB_ENGINE_MEM_INT_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/engine.h"
#include "store/mem/shm.h"

#define MEM_ROOT "engine.mem"
#define MEM_MAGIC 0x336d656d61727374ull     /* "tsramem3": struct mem_org grew sessions */
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
    uint64_t user_tokens;       /* token_hash → struct eng_user_token */
    uint64_t auth_events;       /* seq as 20 digits → struct eng_auth_event */
    uint64_t event_seq;         /* the last seq given (shm_set64) */
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
    uint64_t sessions;
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
static inline int broke(struct engine *e, int rc, const char *what)
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

static inline bool map_find(const struct mem *m, uint64_t map, const char *key, uint64_t *val)
{
    return shm_map_get(m->r, map, key, strlen(key), val) == 0;
}

/* Inserts a key the caller has checked is absent. */
static inline int map_add(struct engine *e, uint64_t map, const char *key, uint64_t val)
{
    const struct mem *m = e->impl;
    int rc = shm_map_add(m->r, map, key, strlen(key), val);

    if (rc == 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index insert");
}

static inline int map_set(struct engine *e, uint64_t map, const char *key, uint64_t val)
{
    const struct mem *m = e->impl;
    int rc = shm_map_put(m->r, map, key, strlen(key), val, NULL);

    if (rc >= 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index update");
}

/* Removes a key the caller has checked is present. */
static inline int map_del(struct engine *e, uint64_t map, const char *key)
{
    const struct mem *m = e->impl;
    int rc = shm_map_del(m->r, map, key, strlen(key), NULL);

    if (rc == 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index delete");
}

static inline int set64(struct engine *e, uint64_t off, uint64_t v)
{
    const struct mem *m = e->impl;
    int rc = shm_set64(m->r, off, v);

    if (rc == 0)
        return 0;
    return broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "field update");
}

/* A new block holding a copy of n bytes at src (0 after broke()). */
static inline uint64_t rec_new(struct engine *e, const void *src, size_t n)
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

static inline uint64_t map_new(struct engine *e, size_t hint)
{
    const struct mem *m = e->impl;
    uint64_t map = shm_map_new(m->r, hint);

    if (map == 0)
        broke(e, ERR_NOSPACE, "region full");
    return map;
}

/* Every call but begin/commit/rollback/ping starts here. */
static inline int enter(struct engine *e)
{
    const struct mem *m = e->impl;

    if (!m->in_tx)
        return engine_fail(e, ERR_INTERNAL, "call outside a unit of work");
    if (m->poisoned != 0)
        return engine_fail(e, ERR_INTERNAL, "call after a failure that needs a rollback");
    return 0;
}

/* ... and every tenant-scoped call here: the org's node, or ERR_NOTFOUND. */
static inline int enter_org(struct engine *e, const struct eng_scope *s, uint64_t *node)
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

/* ---- lookups and records kept under two keys ------------------------------ */

/* The map held at field of the record at node (the root or an org): field is
 * an offsetof(struct mem_root, …) or offsetof(struct mem_org, …), so one
 * helper serves every map of either, named by the caller. */
static inline uint64_t map_at(const struct mem *m, uint64_t node, size_t field)
{
    return *(const uint64_t *)((const char *)ptr(m, node) + field);
}

/* Every lookup of a global record: enter, then the offset of the record under
 * key in the root's map at field, or ERR_NOTFOUND "no such <what>". */
static inline int root_find(struct engine *e, size_t field, const char *key, const char *what, uint64_t *off)
{
    const struct mem *m = e->impl;
    int rc;

    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, map_at(m, m->root, field), key, off))
        return engine_fail(e, ERR_NOTFOUND, "no such %s", what);
    return 0;
}

/* root_find, then a copy of the record's first n bytes (its engine.h struct). */
static inline int root_get(struct engine *e, size_t field, const char *key, const char *what, void *out,
                           size_t n)
{
    uint64_t off;
    int rc;

    if ((rc = root_find(e, field, key, what, &off)) != 0)
        return rc;
    memcpy(out, ptr(e->impl, off), n);
    return 0;
}

/* ... and of a tenant's: enter_org (*node: the org), then the record under key
 * in the org's map at field, or ERR_NOTFOUND "no such <what>". */
static inline int org_find(struct engine *e, const struct eng_scope *s, size_t field, const char *key,
                           const char *what, uint64_t *node, uint64_t *off)
{
    const struct mem *m = e->impl;
    int rc;

    if ((rc = enter_org(e, s, node)) != 0)
        return rc;
    if (!map_find(m, map_at(m, *node, field), key, off))
        return engine_fail(e, ERR_NOTFOUND, "no such %s", what);
    return 0;
}

/* One of the two keys a record is stored under: the map, the key, and what
 * a clash is called ("user id" → "user id taken"). */
struct mem_key {
    uint64_t map;
    const char *key;
    const char *what;
};

/* A kind of record stored under two keys (a user by id and by email_hmac, an
 * api key by its id in its org's map and by its hash in the root's, ...): a
 * row per kind names both maps and the words its failures use, so storing,
 * finding and refusing a clash are written once for all of them. */
struct mem_kind {
    const char *what;           /* "no such <what>" */
    const char *taken[2];       /* "<taken[i]> taken"; key 0 is checked first */
    size_t map[2];              /* offsetof(struct mem_root, …), or of struct mem_org where in_org */
    bool in_org[2];
};

/* The keys of a record of kind kd: key0, key1 in their maps (node: the org, where one is the org's). */
static inline void kind_keys(const struct mem *m, const struct mem_kind *kd, uint64_t node, const char *key0,
                             const char *key1, struct mem_key k[2])
{
    const char *key[2] = {key0, key1};

    for (int i = 0; i < 2; i++)
        k[i] = (struct mem_key){map_at(m, kd->in_org[i] ? node : m->root, kd->map[i]), key[i], kd->taken[i]};
}

/* ERR_CONFLICT "<what> taken" for the first of k[0], k[1] already in its map;
 * nothing is changed, so a clash leaves the unit of work usable. */
static inline int keys_free(struct engine *e, const struct mem_key k[2])
{
    const struct mem *m = e->impl;

    for (int i = 0; i < 2; i++)
        if (map_find(m, k[i].map, k[i].key, NULL))
            return engine_fail(e, ERR_CONFLICT, "%s taken", k[i].what);
    return 0;
}

/* A new record holding n bytes at src, published under both keys (checked
 * free by keys_free); *at (may be NULL) gets its offset. */
static inline int rec_add_twice(struct engine *e, const struct mem_key k[2], const void *src, size_t n,
                                uint64_t *at)
{
    uint64_t off;
    int rc;

    if ((off = rec_new(e, src, n)) == 0)
        return ERR_NOSPACE;
    for (int i = 0; i < 2; i++)
        if ((rc = map_add(e, k[i].map, k[i].key, off)) != 0)
            return rc;
    if (at != NULL)
        *at = off;
    return 0;
}

/* keys_free, then rec_add_twice: a create that needs nothing else. */
static inline int rec_insert_twice(struct engine *e, const struct mem_key k[2], const void *src, size_t n)
{
    int rc = keys_free(e, k);

    return rc != 0 ? rc : rec_add_twice(e, k, src, n, NULL);
}

/* ---- sorted listings ----------------------------------------------------- */

/* Returns owned (free): pointers to every record of map, sorted by cmp. */
static inline int collect(struct engine *e, uint64_t map, int (*cmp)(const void *, const void *),
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

static inline int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static inline int cmp_membership(const void *pa, const void *pb)
{
    const struct eng_membership *a = *(const void *const *)pa, *b = *(const void *const *)pb;
    int c = cmp_i64(a->created_at, b->created_at);

    if (c == 0)
        c = strcmp(a->org_id, b->org_id);
    return c != 0 ? c : strcmp(a->user_id, b->user_id);
}

/* Copies the first max records of map in cmp's order. */
static inline int list_map(struct engine *e, uint64_t map, int (*cmp)(const void *, const void *),
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

/* engine_mem_tenant.c: the ops of the table's tenant-scoped and bootstrap rows. */
int mem_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out);
int mem_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out);
int mem_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out);
int mem_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out);
int mem_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *mb);
int mem_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                   struct eng_membership *out);
int mem_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                    size_t max, size_t *n);
int mem_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id);
int mem_role_get(struct engine *e, const struct eng_scope *s, const char *name,
                 struct eng_role *out);
int mem_role_list(struct engine *e, const struct eng_scope *s, struct eng_role *out,
                  size_t max, size_t *n);
int mem_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *r, bool create);
int mem_role_delete(struct engine *e, const struct eng_scope *s, const char *name);
int mem_session_create(struct engine *e, const struct eng_scope *s, const struct eng_session *ss);
int mem_user_erase(struct engine *e, const char *id, int64_t now, char (*out)[ENG_ID], size_t max, size_t *n);
int mem_session_list(struct engine *e, const char *user_id, int64_t now, struct eng_session *out, size_t max,
                     size_t *n);
int mem_session_revoke(struct engine *e, const char *user_id, const char *org_id, const char *family,
                       const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n);
int mem_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k);
int mem_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                     size_t max, size_t *n);
int mem_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
int mem_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t);
int mem_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                       const struct eng_refresh *child, const char *sealed, int64_t now,
                       int64_t reuse_interval, struct eng_rotation *out);
int mem_refresh_rotate_hash(struct engine *e, const struct eng_scope *s, const char *token_hash,
                            struct eng_refresh *child, const char *sealed, int64_t now, struct eng_rotation *out);
int mem_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                              int64_t at);
int mem_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i);
int mem_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
int mem_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a);
/* Inside a section: up to budget refresh tokens and invites past expiry +
 * grace and audit entries past the retention deleted; *more when some are left. */
int mem_reap_tenant(struct engine *e, const struct eng_reap_policy *p, size_t budget, struct eng_reaped *out,
                    bool *more);
int mem_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
                   struct eng_audit *out, size_t max, size_t *n);

#endif
