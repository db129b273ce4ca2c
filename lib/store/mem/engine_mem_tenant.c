/* engine_mem_tenant: the memory engine's tenant-scoped ops (org, members,
 * roles, api keys, refresh tokens, invites, audit) and the lookups of a
 * credential by its hash, on the layout of engine_mem_int.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/mem/engine_mem_int.h"
#include "store/mem/shm.h"

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

/* ---- credentials: api keys, refresh tokens, invites ------------------------- */

/* The three credentials are each stored twice (struct mem_kind): by hash in
 * the root's map (the lookup by hash comes before any org is known) and by
 * id in their org's (the tenant-scoped ops). */
static const struct mem_kind KEY = {"api key", {"api key hash", "api key id"},
                                    {offsetof(struct mem_root, key_hashes), offsetof(struct mem_org, keys)},
                                    {false, true}};
static const struct mem_kind REFRESH = {"refresh token", {"refresh token hash", "refresh token id"},
                                        {offsetof(struct mem_root, refresh_hashes), offsetof(struct mem_org, refresh)},
                                        {false, true}};
static const struct mem_kind INVITE = {"invite", {"invite token hash", "invite id"},
                                       {offsetof(struct mem_root, invite_hashes), offsetof(struct mem_org, invites)},
                                       {false, true}};

/* Stores n bytes at rec, a credential whose id and hash are both free, in s's org. */
static int cred_create(struct engine *e, const struct eng_scope *s, const struct mem_kind *kd,
                       const char *hash, const char *id, const void *rec, size_t n)
{
    struct mem_key k[2];
    uint64_t node;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    kind_keys(e->impl, kd, node, hash, id, k);
    return rec_insert_twice(e, k, rec, n);
}

/* The credential of s's org with this id (*node: the org). */
static int cred_find(struct engine *e, const struct eng_scope *s, const struct mem_kind *kd, const char *id,
                     uint64_t *node, uint64_t *off)
{
    return org_find(e, s, kd->map[1], id, kd->what, node, off);
}

/* A token as callers see it: its family's revocation folded in. */
static void refresh_out(const struct mem *m, const struct mem_refresh *rec, struct eng_refresh *out)
{
    const struct mem_family *f = ptr(m, rec->family);

    *out = rec->t;
    if (out->revoked_at == 0 && f->revoked_at != 0 && rec->seq <= f->revoked_upto)
        out->revoked_at = f->revoked_at;
}

int mem_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out)
{
    return root_get(e, KEY.map[0], key_hash, KEY.what, out, sizeof *out);
}

int mem_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out)
{
    uint64_t off;
    int rc;

    if ((rc = root_find(e, REFRESH.map[0], token_hash, REFRESH.what, &off)) != 0)
        return rc;
    refresh_out(e->impl, ptr(e->impl, off), out);
    return 0;
}

int mem_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out)
{
    return root_get(e, INVITE.map[0], token_hash, INVITE.what, out, sizeof *out);
}

/* ---- tenant-scoped: org, members, roles ------------------------------------ */

int mem_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out)
{
    uint64_t node;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    *out = ((const struct mem_org *)ptr(e->impl, node))->org;
    return 0;
}

int mem_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *mb)
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

int mem_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                   struct eng_membership *out)
{
    const struct mem *m = e->impl;
    uint64_t node, off;
    int rc;

    if ((rc = org_find(e, s, offsetof(struct mem_org, members), user_id, "member", &node, &off)) != 0)
        return rc;
    memcpy(out, ptr(m, off), sizeof *out);
    return 0;
}

int mem_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
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

int mem_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, off, umap;
    int rc;

    if ((rc = org_find(e, s, offsetof(struct mem_org, members), user_id, "member", &node, &off)) != 0)
        return rc;
    org = ptr(m, node);
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

int mem_role_get(struct engine *e, const struct eng_scope *s, const char *name,
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

int mem_role_list(struct engine *e, const struct eng_scope *s, struct eng_role *out,
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

int mem_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *r, bool create)
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
    bool exists = map_find(m, org->roles, r->name, &old);
    if (create && exists)
        return engine_fail(e, ERR_CONFLICT, "the org has a role of that name");
    if (!create && !exists)
        return engine_fail(e, ERR_NOTFOUND, "no such role");
    if ((off = rec_new(e, r, sizeof *r)) == 0)
        return ERR_NOSPACE;
    if ((rc = map_set(e, org->roles, r->name, off)) != 0)
        return rc;
    shm_free(m->r, old);
    return 0;
}

/* How many entries of an org's map name the role (at offset role_at of their
 * record) and pass live. */
static size_t holders(const struct mem *m, uint64_t map, size_t role_at, const char *role,
                      bool (*live)(const void *rec, int64_t now), int64_t now)
{
    uint64_t pos = 0;
    struct shm_map_entry me;
    size_t n = 0;

    while (shm_map_next(m->r, map, &pos, &me)) {
        const char *rec = ptr(m, me.val);
        n += strcmp(rec + role_at, role) == 0 && (live == NULL || live(rec, now));
    }
    return n;
}

static bool key_live(const void *rec, int64_t now)
{
    (void)now;
    return ((const struct eng_api_key *)rec)->revoked_at == 0;
}

static bool invite_open(const void *rec, int64_t now)
{
    const struct eng_invite *i = rec;
    return i->used_at == 0 && i->expires_at > now;
}

int mem_role_delete(struct engine *e, const struct eng_scope *s, const char *name)
{
    const struct mem *m = e->impl;
    const struct mem_org *org;
    uint64_t node, off;
    int64_t now = (int64_t)time(NULL);
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    org = ptr(m, node);
    if (!map_find(m, org->roles, name, &off))
        return engine_fail(e, ERR_NOTFOUND, "no such role");
    if (holders(m, org->members, offsetof(struct eng_membership, role), name, NULL, now) > 0 ||
        holders(m, org->keys, offsetof(struct eng_api_key, role), name, key_live, now) > 0 ||
        holders(m, org->invites, offsetof(struct eng_invite, role), name, invite_open, now) > 0)
        return engine_fail(e, ERR_CONFLICT, "members, live API keys or open invites hold the role");
    if ((rc = map_del(e, org->roles, name)) != 0)
        return rc;
    shm_free(m->r, off);
    return 0;
}

/* ---- tenant-scoped: api keys ----------------------------------------------- */

int mem_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k)
{
    return cred_create(e, s, &KEY, k->key_hash, k->id, k, sizeof *k);
}

int mem_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
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

int mem_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    const struct mem *m = e->impl;
    const struct eng_api_key *k;
    uint64_t node, off;
    int rc;

    if ((rc = cred_find(e, s, &KEY, id, &node, &off)) != 0)
        return rc;
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
    struct mem_key k[2];
    uint64_t fam;
    int rc;

    if (!map_find(m, root(m)->users, t->user_id, NULL))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    kind_keys(m, &REFRESH, node, t->token_hash, t->id, k);
    if ((rc = keys_free(e, k)) != 0)
        return rc;
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
    return rec_add_twice(e, k, &rec, sizeof rec, at);
}

int mem_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t)
{
    uint64_t node;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    return refresh_insert(e, s, node, t, NULL);
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
 * no other worker's rotation of the same token, nor a change of the user's
 * membership, can come between. */
int mem_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                       const struct eng_refresh *child, const char *sealed, int64_t now,
                       int64_t reuse_interval, struct eng_rotation *out)
{
    const struct mem *m = e->impl;
    const struct mem_refresh *rec;
    const struct mem_family *f;
    struct eng_refresh parent, kept;
    uint64_t node, off, fam, child_off, seal;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = cred_find(e, s, &REFRESH, parent_id, &node, &off)) != 0)
        return rc;
    rec = ptr(m, off);
    fam = rec->family;
    f = ptr(m, fam);
    refresh_out(m, rec, &parent);
    struct eng_membership mb;
    if (mem_member_get(e, s, parent.user_id, &mb) != 0) {
        out->outcome = ENG_ROTATE_NOT_MEMBER;
        return 0;
    }
    snprintf(out->role, sizeof out->role, "%s", mb.role);
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
    uint64_t so; /* a family from before sessions were kept has none */
    if (map_find(m, ((const struct mem_org *)ptr(m, node))->sessions, child->family_id, &so) &&
        ((rc = set64(e, so + offsetof(struct eng_session, last_used_at), (uint64_t)now)) != 0 ||
         (rc = set64(e, so + offsetof(struct eng_session, expires_at), (uint64_t)child->expires_at)) != 0))
        return rc;
    out->outcome = ENG_ROTATE_NEW;
    return 0;
}

/* The one-step rotation (lib/store/engine.h): the memory engine has no round
 * trip to save, so it is the resolve and mem_refresh_rotate under the lock
 * the unit holds, with every refusal a miss. */
int mem_refresh_rotate_hash(struct engine *e, const struct eng_scope *s, const char *token_hash,
                            struct eng_refresh *child, const char *sealed, int64_t now, struct eng_rotation *out)
{
    struct eng_refresh parent;
    int rc = mem_refresh_resolve(e, token_hash, &parent);

    memset(out, 0, sizeof *out);
    if (rc != 0 && rc != ERR_NOTFOUND)
        return rc;
    if (rc == 0 && strcmp(parent.org_id, s->org_id) == 0 && parent.mode == s->mode && parent.used_at == 0 &&
        parent.revoked_at == 0 && parent.expires_at > now) {
        snprintf(child->family_id, sizeof child->family_id, "%s", parent.family_id);
        snprintf(child->user_id, sizeof child->user_id, "%s", parent.user_id);
        if ((rc = mem_refresh_rotate(e, s, parent.id, child, sealed, now, 0, out)) != 0 ||
            out->outcome == ENG_ROTATE_NEW)
            return rc;
        /* not a member: nothing changed */
        child->family_id[0] = child->user_id[0] = '\0';
        memset(out, 0, sizeof *out);
    }
    return engine_fail(e, ERR_NOTFOUND, "no live refresh token of this org by that hash");
}

/* Revokes the family of the org at node (and ends its session). */
static int family_revoke(struct engine *e, uint64_t node, const char *family_id, int64_t at)
{
    const struct mem *m = e->impl;
    const struct mem_org *org = ptr(m, node);
    const struct mem_family *f;
    struct shm_map_entry me;
    uint64_t fam, so, pos = 0;
    int rc;

    if (map_find(m, org->sessions, family_id, &so) && ((const struct eng_session *)ptr(m, so))->revoked_at == 0 &&
        (rc = set64(e, so + offsetof(struct eng_session, revoked_at), (uint64_t)at)) != 0)
        return rc;
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

int mem_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                              int64_t at)
{
    uint64_t node;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    return family_revoke(e, node, family_id, at);
}

/* ---- sessions ---------------------------------------------------------------- */

int mem_session_create(struct engine *e, const struct eng_scope *s, const struct eng_session *ss)
{
    uint64_t node, off;
    int rc;

    if ((rc = enter_org(e, s, &node)) != 0)
        return rc;
    uint64_t map = ((const struct mem_org *)ptr(e->impl, node))->sessions;
    if (map_find(e->impl, map, ss->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "session id taken");
    if ((off = rec_new(e, ss, sizeof *ss)) == 0)
        return ERR_NOSPACE;
    return map_add(e, map, ss->id, off);
}

static bool session_live(const struct eng_session *ss, int64_t now)
{
    return ss->revoked_at == 0 && ss->expires_at > now;
}

static int cmp_session_newest(const void *pa, const void *pb)
{
    const struct eng_session *a = pa, *b = pb;
    int c = cmp_i64(b->created_at, a->created_at);

    return c != 0 ? c : strcmp(b->id, a->id);
}

/* Calls fn on each of user_id's sessions in the orgs the user is a member of
 * (org_id "": all of them), with the org's node; stops at fn's first error. */
static int each_session(struct engine *e, const char *user_id, const char *org_id,
                        int (*fn)(struct engine *e, uint64_t node, uint64_t off, void *ctx), void *ctx)
{
    const struct mem *m = e->impl;
    struct shm_map_entry oe, se;
    uint64_t umap, node, opos = 0;
    int rc;

    if (!map_find(m, root(m)->user_orgs, user_id, &umap))
        return 0;
    while (shm_map_next(m->r, umap, &opos, &oe)) {
        const struct eng_membership *mb = ptr(m, oe.val);
        uint64_t spos = 0;

        if ((org_id[0] != '\0' && strcmp(mb->org_id, org_id) != 0) || !map_find(m, root(m)->orgs, mb->org_id, &node))
            continue;
        while (shm_map_next(m->r, ((const struct mem_org *)ptr(m, node))->sessions, &spos, &se))
            if (strcmp(((const struct eng_session *)ptr(m, se.val))->user_id, user_id) == 0 &&
                (rc = fn(e, node, se.val, ctx)) != 0)
                return rc;
    }
    return 0;
}

struct session_pick {
    int64_t now;
    const char *family, *except;
    struct eng_session *out;
    char (*ids)[ENG_ID];
    size_t max, *n;
};

static int session_listed(struct engine *e, uint64_t node, uint64_t off, void *ctx)
{
    struct session_pick *k = ctx;
    const struct eng_session *ss = ptr(e->impl, off);

    (void)node;
    if (session_live(ss, k->now) && *k->n < k->max)
        k->out[(*k->n)++] = *ss;
    return 0;
}

int mem_session_list(struct engine *e, const char *user_id, int64_t now, struct eng_session *out, size_t max,
                     size_t *n)
{
    struct session_pick k = {.now = now, .out = out, .max = max, .n = n};
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter(e)) != 0 || (rc = each_session(e, user_id, "", session_listed, &k)) != 0)
        return rc;
    qsort(out, *n, sizeof *out, cmp_session_newest);
    return 0;
}

static int session_ended(struct engine *e, uint64_t node, uint64_t off, void *ctx)
{
    struct session_pick *k = ctx;
    const struct eng_session *ss = ptr(e->impl, off);
    char id[ENG_ID];
    int rc;

    if (ss->revoked_at != 0 || (k->family[0] != '\0' && strcmp(ss->id, k->family) != 0) ||
        (k->except[0] != '\0' && strcmp(ss->id, k->except) == 0))
        return 0;
    memcpy(id, ss->id, sizeof id); /* family_revoke stamps the record itself */
    if ((rc = family_revoke(e, node, id, k->now)) != 0)
        return rc;
    if (*k->n < k->max)
        memcpy(k->ids[(*k->n)++], id, ENG_ID);
    return 0;
}

int mem_session_revoke(struct engine *e, const char *user_id, const char *org_id, const char *family,
                       const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n)
{
    struct session_pick k = {.now = at, .family = family, .except = except, .ids = out, .max = max, .n = n};
    int rc;

    *n = 0;
    if ((rc = enter(e)) != 0)
        return rc;
    return each_session(e, user_id, org_id, session_ended, &k);
}

/* ---- tenant-scoped: invites ------------------------------------------------ */

int mem_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i)
{
    return cred_create(e, s, &INVITE, i->token_hash, i->id, i, sizeof *i);
}

/* One use: a second is ERR_CONFLICT. */
int mem_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    const struct mem *m = e->impl;
    uint64_t node, off;
    int rc;

    if ((rc = cred_find(e, s, &INVITE, id, &node, &off)) != 0)
        return rc;
    if (((const struct eng_invite *)ptr(m, off))->used_at != 0)
        return engine_fail(e, ERR_CONFLICT, "%s already used", INVITE.what);
    return set64(e, off + offsetof(struct eng_invite, used_at), (uint64_t)at);
}

/* ---- tenant-scoped: audit -------------------------------------------------- */

int mem_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a)
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

int mem_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
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


/* ---- the reaper's part (engine.h reap) ----------------------------------------- */

/* The first instant of the month retention_months whole months before now's. */
static int64_t months_back(int64_t now, int months)
{
    time_t t = (time_t)now;
    struct tm tm;

    gmtime_r(&t, &tm);
    int m = tm.tm_year * 12 + tm.tm_mon - months;
    struct tm first = {.tm_year = m / 12, .tm_mon = m % 12, .tm_mday = 1};
    return (int64_t)timegm(&first);
}

/* A token goes: out of both maps, and out of its family's kept seal when the
 * seal names it (a freed block must never be matched as a parent again). */
static int refresh_drop(struct engine *e, uint64_t off)
{
    struct mem *m = e->impl;
    const struct mem_refresh *t = ptr(m, off);
    uint64_t node;
    int rc;

    if (t->family != 0) {
        const struct mem_family *f = ptr(m, t->family);
        if (f->seal != 0 && (f->seal_parent == off || f->seal_child == off)) {
            uint64_t seal = f->seal;
            if ((rc = set64(e, t->family + offsetof(struct mem_family, seal), 0)) != 0 ||
                (rc = set64(e, t->family + offsetof(struct mem_family, seal_parent), 0)) != 0 ||
                (rc = set64(e, t->family + offsetof(struct mem_family, seal_child), 0)) != 0)
                return rc;
            shm_free(m->r, seal);
        }
    }
    if (!map_find(m, root(m)->orgs, t->t.org_id, &node))
        return broke(e, ERR_INTERNAL, "refresh token of a missing org");
    if ((rc = map_del(e, root(m)->refresh_hashes, t->t.token_hash)) != 0 ||
        (rc = map_del(e, map_at(m, node, offsetof(struct mem_org, refresh)), t->t.id)) != 0)
        return rc;
    shm_free(m->r, off);
    return 0;
}

static int invite_drop(struct engine *e, uint64_t off)
{
    struct mem *m = e->impl;
    const struct eng_invite *i = ptr(m, off);
    uint64_t node;
    int rc;

    if (!map_find(m, root(m)->orgs, i->org_id, &node))
        return broke(e, ERR_INTERNAL, "invite of a missing org");
    if ((rc = map_del(e, root(m)->invite_hashes, i->token_hash)) != 0 ||
        (rc = map_del(e, map_at(m, node, offsetof(struct mem_org, invites)), i->id)) != 0)
        return rc;
    shm_free(m->r, off);
    return 0;
}

/* Collects up to max offsets of a map's entries that pass keep == false. */
static size_t doomed(struct mem *m, uint64_t map, bool (*gone)(const void *, const struct eng_reap_policy *),
                     const struct eng_reap_policy *p, uint64_t *out, size_t max)
{
    uint64_t pos = 0;
    struct shm_map_entry me;
    size_t n = 0;

    while (n < max && shm_map_next(m->r, map, &pos, &me))
        if (gone(ptr(m, me.val), p))
            out[n++] = me.val;
    return n;
}

static bool refresh_gone(const void *rec, const struct eng_reap_policy *p)
{
    const struct mem_refresh *t = rec;
    return t->t.expires_at + p->token_grace <= p->now;
}

static bool user_token_gone(const void *rec, const struct eng_reap_policy *p)
{
    return ((const struct eng_user_token *)rec)->expires_at + p->token_grace <= p->now;
}

static bool auth_event_gone(const void *rec, const struct eng_reap_policy *p)
{
    return ((const struct eng_auth_event *)rec)->expires_at + p->token_grace <= p->now;
}

/* Drops the n records at offs from a root map, each keyed as key() says. */
static int root_drop(struct engine *e, uint64_t map, const uint64_t *offs, size_t n,
                     void (*key)(const void *rec, char out[ENG_HASH]))
{
    struct mem *m = e->impl;
    char k[ENG_HASH];
    int rc;

    for (size_t i = 0; i < n; i++) {
        key(ptr(m, offs[i]), k);
        if ((rc = map_del(e, map, k)) != 0)
            return rc;
        shm_free(m->r, offs[i]);
    }
    return 0;
}

static void user_token_key(const void *rec, char out[ENG_HASH])
{
    memcpy(out, ((const struct eng_user_token *)rec)->token_hash, ENG_HASH);
}

static void auth_event_key(const void *rec, char out[ENG_HASH])
{
    snprintf(out, ENG_HASH, "%020lld", (long long)((const struct eng_auth_event *)rec)->seq);
}

static bool session_gone(const void *rec, const struct eng_reap_policy *p)
{
    const struct eng_session *ss = rec;
    return ss->expires_at + p->token_grace <= p->now;
}

static bool invite_gone(const void *rec, const struct eng_reap_policy *p)
{
    const struct eng_invite *i = rec;
    return i->expires_at + p->token_grace <= p->now;
}

int mem_reap_tenant(struct engine *e, const struct eng_reap_policy *p, size_t budget, struct eng_reaped *out,
                    bool *more)
{
    struct mem *m = e->impl;
    uint64_t *offs = calloc(budget, sizeof *offs);
    size_t n;
    int rc = 0;

    *more = false;
    if (offs == NULL)
        return ERR_NOMEM;
    if ((rc = enter(e)) != 0)
        goto out;
    n = doomed(m, root(m)->refresh_hashes, refresh_gone, p, offs, budget);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = refresh_drop(e, offs[i]);
    out->refresh_tokens += rc == 0 ? n : 0;
    budget -= n;
    *more = budget == 0;
    if (rc != 0 || budget == 0)
        goto out;
    n = doomed(m, root(m)->invite_hashes, invite_gone, p, offs, budget);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = invite_drop(e, offs[i]);
    out->invites += rc == 0 ? n : 0;
    budget -= n;
    *more = budget == 0;
    if (rc != 0 || budget == 0)
        goto out;
    /* a person's one-time tokens and the auth outbox's events */
    n = doomed(m, root(m)->user_tokens, user_token_gone, p, offs, budget);
    if ((rc = root_drop(e, root(m)->user_tokens, offs, n, user_token_key)) != 0)
        goto out;
    out->user_tokens += n;
    budget -= n;
    n = doomed(m, root(m)->auth_events, auth_event_gone, p, offs, budget);
    if ((rc = root_drop(e, root(m)->auth_events, offs, n, auth_event_key)) != 0)
        goto out;
    out->auth_events += n;
    budget -= n;
    /* sessions, per org: what they kept of the client goes with them */
    uint64_t opos = 0;
    struct shm_map_entry oe;
    while (rc == 0 && budget > 0 && shm_map_next(m->r, root(m)->orgs, &opos, &oe)) {
        uint64_t map = ((const struct mem_org *)ptr(m, oe.val))->sessions;
        n = doomed(m, map, session_gone, p, offs, budget);
        for (size_t i = 0; i < n && rc == 0; i++) {
            char id[ENG_ID];
            memcpy(id, ((const struct eng_session *)ptr(m, offs[i]))->id, sizeof id);
            if ((rc = map_del(e, map, id)) == 0)
                shm_free(m->r, offs[i]);
        }
        out->sessions += rc == 0 ? n : 0;
        budget -= n;
    }
    *more = budget == 0;
    if (rc != 0 || budget == 0 || p->audit_retention_months == 0)
        goto out;
    /* audit: each org's list is newest first; cut it at the first entry
     * older than the cutoff, then free the tail */
    int64_t cutoff = months_back(p->now, p->audit_retention_months);
    uint64_t pos = 0;
    struct shm_map_entry me;
    while (rc == 0 && budget > 0 && shm_map_next(m->r, root(m)->orgs, &pos, &me)) {
        uint64_t node = me.val, prev = 0, cur = ((const struct mem_org *)ptr(m, node))->audit_head;
        while (cur != 0 && ((const struct mem_audit *)ptr(m, cur))->a.created_at >= cutoff) {
            prev = cur;
            cur = ((const struct mem_audit *)ptr(m, cur))->next;
        }
        if (cur == 0)
            continue;
        /* the tail from cur on goes; at most budget of it now, the rest next round */
        uint64_t last = cur;
        size_t k = 1;
        while (k < budget && ((const struct mem_audit *)ptr(m, last))->next != 0) {
            last = ((const struct mem_audit *)ptr(m, last))->next;
            k++;
        }
        uint64_t rest = ((const struct mem_audit *)ptr(m, last))->next;
        /* unlink [cur, last]: prev (or the head) now points past it */
        rc = prev != 0 ? set64(e, prev + offsetof(struct mem_audit, next), rest)
                       : set64(e, node + offsetof(struct mem_org, audit_head), rest);
        for (uint64_t q = cur; rc == 0 && k > 0; k--) {
            uint64_t next = ((const struct mem_audit *)ptr(m, q))->next;
            rc = map_del(e, ((const struct mem_org *)ptr(m, node))->audit_ids, ((const struct mem_audit *)ptr(m, q))->a.id);
            shm_free(m->r, q);
            out->audit_entries++;
            budget--;
            q = next;
        }
        if (rest != 0)
            *more = true;
    }
    if (budget == 0)
        *more = true;
out:
    free(offs);
    return rc;
}

/* ---- erasing a person ----------------------------------------------------------- */

/* The offsets of a map's entries that match(rec, ctx), collected first: the
 * map is changed only after the walk. Returns owned (free), NULL when out of memory. */
static uint64_t *matching(struct mem *m, uint64_t map, bool (*match)(const void *rec, const void *ctx),
                          const void *ctx, size_t *n)
{
    struct shm_map_entry me;
    uint64_t pos = 0, *out = malloc(sizeof *out * (shm_map_count(m->r, map) + 1));

    *n = 0;
    while (out != NULL && shm_map_next(m->r, map, &pos, &me))
        if (match(ptr(m, me.val), ctx))
            out[(*n)++] = me.val;
    return out;
}

static bool refresh_of(const void *rec, const void *user)
{
    return strcmp(((const struct mem_refresh *)rec)->t.user_id, user) == 0;
}

static bool session_of(const void *rec, const void *user)
{
    return strcmp(((const struct eng_session *)rec)->user_id, user) == 0;
}

static bool key_by(const void *rec, const void *user)
{
    return strcmp(((const struct eng_api_key *)rec)->created_by, user) == 0;
}

static bool invite_for(const void *rec, const void *hmac)
{
    return strcmp(((const struct eng_invite *)rec)->email_hmac, hmac) == 0;
}

static bool token_of(const void *rec, const void *user)
{
    return strcmp(((const struct eng_user_token *)rec)->user_id, user) == 0;
}

static bool event_of(const void *rec, const void *user)
{
    return strcmp(((const struct eng_auth_event *)rec)->user_id, user) == 0;
}

/* One org's part: the person's sessions (with their families and tokens), the
 * keys they made, their membership. */
static int erase_in_org(struct engine *e, uint64_t node, const char *user, int64_t now, char (*out)[ENG_ID],
                        size_t max, size_t *n)
{
    struct mem *m = e->impl;
    const struct mem_org *org = ptr(m, node);
    uint64_t *offs, fam;
    size_t k;
    int rc = 0;

    if ((offs = matching(m, org->refresh, refresh_of, user, &k)) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < k && rc == 0; i++)
        rc = refresh_drop(e, offs[i]);
    free(offs);
    if (rc != 0 || (offs = matching(m, org->sessions, session_of, user, &k)) == NULL)
        return rc != 0 ? rc : ERR_NOMEM;
    for (size_t i = 0; i < k && rc == 0; i++) {
        const struct eng_session *ss = ptr(m, offs[i]);
        char id[ENG_ID];
        memcpy(id, ss->id, sizeof id);
        if (ss->revoked_at == 0 && ss->expires_at > now && *n < max)
            memcpy(out[(*n)++], id, ENG_ID);
        if (map_find(m, org->families, id, &fam)) {
            if ((rc = seal_wipe(e, fam)) != 0 || (rc = map_del(e, org->families, id)) != 0)
                break;
            shm_free(m->r, fam);
        }
        if ((rc = map_del(e, org->sessions, id)) == 0)
            shm_free(m->r, offs[i]);
    }
    free(offs);
    if (rc != 0 || (offs = matching(m, org->keys, key_by, user, &k)) == NULL)
        return rc != 0 ? rc : ERR_NOMEM;
    for (size_t i = 0; i < k && rc == 0; i++) {
        struct eng_api_key key = *(const struct eng_api_key *)ptr(m, offs[i]);
        if ((rc = map_del(e, org->keys, key.id)) == 0 && (rc = map_del(e, root(m)->key_hashes, key.key_hash)) == 0)
            shm_free(m->r, offs[i]);
    }
    free(offs);
    uint64_t mb;
    if (rc == 0 && map_find(m, org->members, user, &mb) && (rc = map_del(e, org->members, user)) == 0)
        shm_free(m->r, mb);
    return rc;
}

/* Drops the records at offs from a root map keyed by their token hash or seq. */
static int erase_root(struct engine *e, uint64_t map, bool (*match)(const void *, const void *), const void *ctx,
                      void (*key)(const void *rec, char out[ENG_HASH]))
{
    struct mem *m = e->impl;
    size_t k;
    uint64_t *offs = matching(m, map, match, ctx, &k);
    int rc;

    if (offs == NULL)
        return ERR_NOMEM;
    rc = root_drop(e, map, offs, k, key);
    free(offs);
    return rc;
}

int mem_user_erase(struct engine *e, const char *id, int64_t now, char (*out)[ENG_ID], size_t max, size_t *n)
{
    struct mem *m = e->impl;
    struct eng_user u;
    uint64_t uoff, umap, node, *offs;
    size_t k;
    int rc;

    *n = 0;
    if ((rc = enter(e)) != 0)
        return rc;
    if (!map_find(m, root(m)->users, id, &uoff))
        return engine_fail(e, ERR_NOTFOUND, "no such user");
    u = *(const struct eng_user *)ptr(m, uoff);
    if (map_find(m, root(m)->user_orgs, id, &umap)) {
        struct shm_map_entry me;
        uint64_t pos = 0;
        size_t norgs = 0;
        char (*orgs)[ENG_ID] = malloc(sizeof *orgs * (shm_map_count(m->r, umap) + 1));
        if (orgs == NULL)
            return ERR_NOMEM;
        while (shm_map_next(m->r, umap, &pos, &me))
            memcpy(orgs[norgs++], ((const struct eng_membership *)ptr(m, me.val))->org_id, ENG_ID);
        for (size_t i = 0; i < norgs && rc == 0; i++)
            if (map_find(m, root(m)->orgs, orgs[i], &node))
                rc = erase_in_org(e, node, id, now, out, max, n);
        free(orgs);
        if (rc != 0 || (rc = map_del(e, root(m)->user_orgs, id)) != 0)
            return rc;
        shm_map_free(m->r, umap);
    }
    /* invites naming the email, in any org */
    if ((offs = matching(m, root(m)->invite_hashes, invite_for, u.email_hmac, &k)) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < k && rc == 0; i++)
        rc = invite_drop(e, offs[i]);
    free(offs);
    if (rc != 0 || (rc = erase_root(e, root(m)->user_tokens, token_of, id, user_token_key)) != 0 ||
        (rc = erase_root(e, root(m)->auth_events, event_of, id, auth_event_key)) != 0 ||
        (rc = map_del(e, root(m)->users, id)) != 0 || (rc = map_del(e, root(m)->emails, u.email_hmac)) != 0)
        return rc;
    shm_free(m->r, uoff);
    return 0;
}

