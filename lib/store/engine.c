/* What both engines share: the built-in roles, the mode names, the rule
 * that decides a refresh replay, the one failure formatter, and the checked
 * wrappers (engine_<op>) that validate every argument once for both engines,
 * so the engines hold only what differs between them. */
#include "store/engine.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/uuid.h"

/* DESIGN §4: owner and admin manage everything of their org; members write
 * records; viewers read. Schemas are the platform's, not an org's: no role
 * grants changing them (sql/0006_platform_schemas.sql has the same list). */
const struct eng_role ENGINE_BUILTIN_ROLES[] = {
    {"", "owner", {"*:*"}, 1},
    {"", "admin",
     {"records:read:*", "records:write:*", "records:delete:*", "members:manage:*", "keys:manage:*",
      "audit:read:*", "roles:manage:*"},
     7},
    {"", "member", {"records:read:*", "records:write:*", "records:delete:*"}, 3},
    {"", "viewer", {"records:read:*"}, 1},
};

const size_t ENGINE_NBUILTIN_ROLES = sizeof ENGINE_BUILTIN_ROLES / sizeof ENGINE_BUILTIN_ROLES[0];

const struct eng_role *engine_builtin_role(const char *name)
{
    for (size_t i = 0; name != NULL && i < ENGINE_NBUILTIN_ROLES; i++)
        if (strcmp(ENGINE_BUILTIN_ROLES[i].name, name) == 0)
            return &ENGINE_BUILTIN_ROLES[i];
    return NULL;
}

void engine_free(struct engine *e)
{
    if (e != NULL && e->ops != NULL)
        e->ops->free(e);
}

int engine_vfail(struct engine *e, int rc, const char *fmt, va_list ap)
{
    int len = snprintf(e->errstr, sizeof e->errstr, "%s: ", e->ops != NULL ? e->ops->name : "engine");

    if (len < 0 || (size_t)len >= sizeof e->errstr)
        return rc;
    vsnprintf(e->errstr + len, sizeof e->errstr - (size_t)len, fmt, ap);
    return rc;
}

int engine_fail(struct engine *e, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    engine_vfail(e, rc, fmt, ap);
    va_end(ap);
    return rc;
}

int engine_mode_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "test") == 0)
        return ENG_MODE_TEST;
    if (strcmp(s, "live") == 0)
        return ENG_MODE_LIVE;
    return -1;
}

const char *engine_mode_name(int mode)
{
    return mode == ENG_MODE_LIVE ? "live" : "test";
}

/* Within the interval, and only while the child is the family's live token:
 * once it has rotated (or the family was revoked) a replay is reuse. A clock
 * a little behind the one that marked the parent still counts as within. */
bool eng_refresh_replayable(const struct eng_refresh *parent, const struct eng_refresh *child,
                            int64_t now, int64_t reuse_interval)
{
    return parent->used_at != 0 && parent->revoked_at == 0 && now - parent->used_at <= reuse_interval &&
           child != NULL && child->used_at == 0 && child->revoked_at == 0 && child->expires_at > now;
}

/* ---- argument checks ------------------------------------------------------
 * A check records the first failure of a call in a struct chk and ignores the
 * rest, so a wrapper reads as the list of what its op needs. */

struct chk {
    struct engine *e;
    const char *op;
    int rc;
};

static bool bad(struct chk *c, int rc, const char *what, const char *why)
{
    if (c->rc == 0)
        c->rc = engine_fail(c->e, rc, "%s: %s %s", c->op, what, why);
    return false;
}

/* An op an engine may not have yet: a clear failure rather than a NULL call. */
static bool has(struct chk *c, const void *op)
{
    return op != NULL || bad(c, ERR_INTERNAL, "op", "not provided by this engine");
}

/* cap: the size of the field s is (0 for a free-standing string). */
static bool ends_within(const char *s, size_t cap)
{
    return cap == 0 || memchr(s, '\0', cap) != NULL;
}

static bool ptr(struct chk *c, const char *what, const void *p)
{
    return p != NULL || bad(c, ERR_INVAL, what, "missing");
}

/* A string that ends inside its field; filled: and is not empty. */
static bool text(struct chk *c, const char *what, const char *s, size_t cap, bool filled)
{
    if (!ptr(c, what, s))
        return false;
    if (!ends_within(s, cap))
        return bad(c, ERR_INVAL, what, "does not end inside its field");
    return !filled || s[0] != '\0' || bad(c, ERR_INVAL, what, "empty");
}

static bool id(struct chk *c, const char *what, const char *s, size_t cap)
{
    if (!ptr(c, what, s))
        return false;
    if (!ends_within(s, cap) || !uuid_valid(s))
        return bad(c, ERR_INVAL, what, "not a canonical uuid");
    return true;
}

/* An optional id: "" or a uuid. */
static bool id_or_empty(struct chk *c, const char *what, const char *s, size_t cap)
{
    return (s != NULL && s[0] == '\0') || id(c, what, s, cap);
}

/* SHA-256 / HMAC-SHA256 as the callers make them: 64 lowercase hex digits. */
static bool hash(struct chk *c, const char *what, const char *s, size_t cap)
{
    size_t i = 0;

    if (!ptr(c, what, s))
        return false;
    while (i < ENG_HASH - 1 && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
        i++;
    if (i != ENG_HASH - 1 || s[i] != '\0' || !ends_within(s, cap))
        return bad(c, ERR_INVAL, what, "not 64 lowercase hex digits");
    return true;
}

static bool mode(struct chk *c, const char *what, int m)
{
    return m == ENG_MODE_TEST || m == ENG_MODE_LIVE || bad(c, ERR_INVAL, what, "neither test nor live");
}

static bool positive(struct chk *c, const char *what, int64_t v)
{
    return v > 0 || bad(c, ERR_INVAL, what, "not positive");
}

static bool scope(struct chk *c, const struct eng_scope *s)
{
    return ptr(c, "scope", s) && id(c, "scope org_id", s->org_id, sizeof s->org_id) &&
           mode(c, "scope mode", s->mode) &&
           (ends_within(s->db, sizeof s->db) || bad(c, ERR_INVAL, "scope db", "unterminated"));
}

/* A record stored under a scope carries the scope's org: anything else is a
 * handler bug, not bad input. */
static bool same_org(struct chk *c, const struct eng_scope *s, const char *org_id, size_t cap)
{
    if (c->rc != 0)
        return false;
    if (!ends_within(org_id, cap) || strcmp(org_id, s->org_id) != 0)
        return bad(c, ERR_INTERNAL, "org_id", "is not the scope's org");
    return true;
}

static bool list(struct chk *c, const void *out, size_t max, size_t *n)
{
    if (!ptr(c, "n", n))
        return false;
    *n = 0;
    return out != NULL || max == 0 || bad(c, ERR_INVAL, "out", "missing with max > 0");
}

static bool name(struct chk *c, const char *what, const char *s, size_t cap)
{
    return ptr(c, what, s) && (eng_name_valid(s, cap) || bad(c, ERR_INVAL, what, "not a valid name"));
}

static bool names(struct chk *c, const char *service, const char *resource)
{
    return name(c, "service", service, ENG_SLUG) && name(c, "resource", resource, ENG_FIELD);
}

/* The groups of checks many ops share. */

/* A tenant listing: its out/max/n, then its scope. */
static bool scoped_list(struct chk *c, const struct eng_scope *s, const void *out, size_t max, size_t *n)
{
    return list(c, out, max, n) && scope(c, s);
}

/* A stamp (revoked, used) on the row with this id of s's org, at a positive time. */
static bool stamp(struct chk *c, const struct eng_scope *s, const char *what, const char *rid, int64_t at)
{
    return scope(c, s) && id(c, what, rid, 0) && positive(c, "at", at);
}

/* A lookup by a secret's hash (a credential, a user's email_hmac) into out. */
static bool by_hash(struct chk *c, const char *what, const char *h, const void *out)
{
    return hash(c, what, h, 0) && ptr(c, "out", out);
}

/* Where records live: the scope, the service and the resource. */
static bool at_resource(struct chk *c, const struct eng_scope *s, const char *service, const char *resource)
{
    return scope(c, s) && names(c, service, resource);
}

/* if_version: 0 (any) or the version a write expects. */
static bool version(struct chk *c, int64_t if_version)
{
    return if_version >= 0 || bad(c, ERR_INVAL, "if_version", "negative");
}

#define CHK(op_) struct chk c = {e, #op_, 0}
/* Runs the op when every check passed. */
#define RUN(op_, ...) (c.rc != 0 ? c.rc : TIMED(e, e->ops->op_(e, __VA_ARGS__)))

/* The time of one op into e->busy_us (a GNU statement expression; -std=gnu11). */
static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
#define TIMED(e, call)                      \
    ({                                      \
        uint64_t t0_ = now_us();            \
        int rc_ = (call);                   \
        (e)->busy_us += now_us() - t0_;     \
        rc_;                                \
    })

/* ---- units of work --------------------------------------------------------- */

int engine_begin(struct engine *e, const struct eng_scope *s)
{
    e->retry = false;
    CHK(begin);
    if (s != NULL)
        scope(&c, s);
    return RUN(begin, s);
}

int engine_commit(struct engine *e)
{
    return TIMED(e, e->ops->commit(e));
}

void engine_rollback(struct engine *e)
{
    uint64_t t0 = now_us();

    e->ops->rollback(e);
    e->busy_us += now_us() - t0;
}

const char *engine_name(const struct engine *e)
{
    return e->ops->name;
}

int engine_ping(struct engine *e)
{
    return e->ops->ping(e);
}

size_t engine_pools(struct engine *e, bool ping, struct eng_pool_info *out, size_t max)
{
    if (e->ops->pools == NULL || out == NULL)
        return 0;
    return e->ops->pools(e, ping, out, max);
}

int engine_maintain(struct engine *e, int64_t now, char report[256])
{
    CHK(maintain);
    if (ptr(&c, "report", report))
        report[0] = '\0';
    if (c.rc != 0 || e->ops->maintain == NULL)
        return c.rc;
    return e->ops->maintain(e, now, report);
}

/* ---- global: users, orgs, apps ------------------------------------------------ */

int engine_user_create(struct engine *e, const struct eng_user *u)
{
    CHK(user_create);
    if (ptr(&c, "user", u)) {
        id(&c, "user id", u->id, sizeof u->id);
        text(&c, "user email_enc", u->email_enc, sizeof u->email_enc, false);
        hash(&c, "user email_hmac", u->email_hmac, sizeof u->email_hmac);
        text(&c, "user password_hash", u->password_hash, sizeof u->password_hash, false);
    }
    return RUN(user_create, u);
}

int engine_user_get(struct engine *e, const char *uid, struct eng_user *out)
{
    CHK(user_get);
    id(&c, "id", uid, 0);
    ptr(&c, "out", out);
    return RUN(user_get, uid, out);
}

int engine_user_by_email(struct engine *e, const char *email_hmac, struct eng_user *out)
{
    CHK(user_by_email);
    by_hash(&c, "email_hmac", email_hmac, out);
    return RUN(user_by_email, email_hmac, out);
}

int engine_user_set_password(struct engine *e, const char *uid, const char *phc)
{
    CHK(user_set_password);
    id(&c, "id", uid, 0);
    text(&c, "phc", phc, ENG_PHC, true);
    return RUN(user_set_password, uid, phc);
}

int engine_user_set_admin(struct engine *e, const char *uid, bool admin)
{
    CHK(user_set_admin);
    id(&c, "id", uid, 0);
    return RUN(user_set_admin, uid, admin);
}

int engine_user_memberships(struct engine *e, const char *user_id, struct eng_membership *out, size_t max,
                            size_t *n)
{
    CHK(user_memberships);
    list(&c, out, max, n);
    id(&c, "user_id", user_id, 0);
    return RUN(user_memberships, user_id, out, max, n);
}

int engine_user_set_verified(struct engine *e, const char *id_, int64_t at)
{
    CHK(user_set_verified);
    id(&c, "id", id_, 0);
    positive(&c, "at", at);
    return RUN(user_set_verified, id_, at);
}

int engine_user_erase(struct engine *e, const char *id_, int64_t now, char (*out)[ENG_ID], size_t max, size_t *n)
{
    CHK(user_erase);
    id(&c, "id", id_, 0);
    positive(&c, "now", now);
    list(&c, out, max, n);
    return RUN(user_erase, id_, now, out, max, n);
}

static bool token_kind(struct chk *c, int kind)
{
    return kind == ENG_TOKEN_RESET || kind == ENG_TOKEN_VERIFY || bad(c, ERR_INVAL, "kind", "not a token kind");
}

int engine_user_token_create(struct engine *e, const struct eng_user_token *t)
{
    CHK(user_token_create);
    if (ptr(&c, "token", t) && token_kind(&c, t->kind)) {
        hash(&c, "token token_hash", t->token_hash, sizeof t->token_hash);
        id(&c, "token user_id", t->user_id, sizeof t->user_id);
        positive(&c, "token created_at", t->created_at);
        if (c.rc == 0 && (t->expires_at <= t->created_at || t->used_at != 0))
            bad(&c, ERR_INVAL, "token times", "expires before it is made, or already used");
    }
    return RUN(user_token_create, t);
}

int engine_user_token_use(struct engine *e, int kind, const char *token_hash, int64_t now, struct eng_user_token *out)
{
    CHK(user_token_use);
    token_kind(&c, kind);
    by_hash(&c, "token_hash", token_hash, out);
    positive(&c, "now", now);
    return RUN(user_token_use, kind, token_hash, now, out);
}

int engine_auth_event_append(struct engine *e, const struct eng_auth_event *ev, int64_t *seq)
{
    CHK(auth_event_append);
    if (ptr(&c, "event", ev) && ptr(&c, "seq", seq)) {
        text(&c, "event kind", ev->kind, sizeof ev->kind, true);
        id(&c, "event user_id", ev->user_id, sizeof ev->user_id);
        text(&c, "event sealed", ev->sealed, sizeof ev->sealed, true);
        positive(&c, "event created_at", ev->created_at);
        positive(&c, "event expires_at", ev->expires_at);
    }
    return RUN(auth_event_append, ev, seq);
}

int engine_auth_event_list(struct engine *e, int64_t after, struct eng_auth_event *out, size_t max, size_t *n)
{
    CHK(auth_event_list);
    if (after < 0)
        bad(&c, ERR_INVAL, "after", "negative");
    list(&c, out, max, n);
    return RUN(auth_event_list, after, out, max, n);
}

int engine_org_create(struct engine *e, const struct eng_org *o)
{
    CHK(org_create);
    if (ptr(&c, "org", o)) {
        id(&c, "org id", o->id, sizeof o->id);
        text(&c, "org slug", o->slug, sizeof o->slug, true);
        text(&c, "org name", o->name, sizeof o->name, false);
        text(&c, "org plan", o->plan, sizeof o->plan, false);
    }
    return RUN(org_create, o);
}

int engine_app_create(struct engine *e, const struct eng_app *a)
{
    CHK(app_create);
    if (ptr(&c, "app", a)) {
        id(&c, "app id", a->id, sizeof a->id);
        text(&c, "app name", a->name, sizeof a->name, true);
        text(&c, "app kind", a->kind, sizeof a->kind, false);
        text(&c, "app base_url", a->base_url, sizeof a->base_url, false);
        text(&c, "app status", a->status, sizeof a->status, false);
    }
    return RUN(app_create, a);
}

int engine_app_get(struct engine *e, const char *app, struct eng_app *out)
{
    CHK(app_get);
    ptr(&c, "name", app);
    ptr(&c, "out", out);
    return RUN(app_get, app, out);
}

int engine_app_list(struct engine *e, struct eng_app *out, size_t max, size_t *n)
{
    CHK(app_list);
    list(&c, out, max, n);
    return RUN(app_list, out, max, n);
}

int engine_role_builtin(struct engine *e, const char *role, struct eng_role *out)
{
    CHK(role_builtin);
    ptr(&c, "name", role);
    ptr(&c, "out", out);
    return RUN(role_builtin, role, out);
}

/* ---- bootstrap lookups -------------------------------------------------------- */

int engine_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out)
{
    CHK(api_key_resolve);
    by_hash(&c, "key_hash", key_hash, out);
    return RUN(api_key_resolve, key_hash, out);
}

int engine_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out)
{
    CHK(refresh_resolve);
    by_hash(&c, "token_hash", token_hash, out);
    return RUN(refresh_resolve, token_hash, out);
}

int engine_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out)
{
    CHK(invite_resolve);
    by_hash(&c, "token_hash", token_hash, out);
    return RUN(invite_resolve, token_hash, out);
}

/* ---- tenant-scoped: org, members, roles ------------------------------------------ */

int engine_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out)
{
    CHK(org_get);
    scope(&c, s);
    ptr(&c, "out", out);
    return RUN(org_get, s, out);
}

int engine_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *m)
{
    CHK(member_put);
    if (scope(&c, s) && ptr(&c, "membership", m)) {
        same_org(&c, s, m->org_id, sizeof m->org_id);
        id(&c, "membership user_id", m->user_id, sizeof m->user_id);
        text(&c, "membership role", m->role, sizeof m->role, true);
    }
    return RUN(member_put, s, m);
}

int engine_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                      struct eng_membership *out)
{
    CHK(member_get);
    scope(&c, s);
    id(&c, "user_id", user_id, 0);
    ptr(&c, "out", out);
    return RUN(member_get, s, user_id, out);
}

int engine_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out, size_t max,
                       size_t *n)
{
    CHK(member_list);
    scoped_list(&c, s, out, max, n);
    return RUN(member_list, s, out, max, n);
}

int engine_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id)
{
    CHK(member_remove);
    scope(&c, s);
    id(&c, "user_id", user_id, 0);
    return RUN(member_remove, s, user_id);
}

int engine_role_get(struct engine *e, const struct eng_scope *s, const char *role, struct eng_role *out)
{
    CHK(role_get);
    scope(&c, s);
    ptr(&c, "name", role);
    ptr(&c, "out", out);
    return RUN(role_get, s, role, out);
}

int engine_role_list(struct engine *e, const struct eng_scope *s, struct eng_role *out, size_t max, size_t *n)
{
    CHK(role_list);
    scoped_list(&c, s, out, max, n);
    return RUN(role_list, s, out, max, n);
}

int engine_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *r, bool create)
{
    CHK(role_put);
    if (scope(&c, s) && ptr(&c, "role", r)) {
        same_org(&c, s, r->org_id, sizeof r->org_id);
        text(&c, "role name", r->name, sizeof r->name, true);
        if (r->nperms < 0 || r->nperms > ENG_MAX_PERMS)
            bad(&c, ERR_INVAL, "role nperms", "out of 0..ENG_MAX_PERMS");
        for (int i = 0; c.rc == 0 && i < r->nperms; i++)
            text(&c, "role permission", r->perms[i], sizeof r->perms[i], true);
    }
    return RUN(role_put, s, r, create);
}

int engine_role_delete(struct engine *e, const struct eng_scope *s, const char *name)
{
    CHK(role_delete);
    if (scope(&c, s))
        text(&c, "role name", name, ENG_ROLE, true);
    return RUN(role_delete, s, name);
}

/* ---- tenant-scoped: api keys, refresh tokens, invites ------------------------------ */

int engine_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k)
{
    CHK(api_key_create);
    if (scope(&c, s) && ptr(&c, "api key", k)) {
        same_org(&c, s, k->org_id, sizeof k->org_id);
        id(&c, "api key id", k->id, sizeof k->id);
        mode(&c, "api key mode", k->mode);
        text(&c, "api key name", k->name, sizeof k->name, false);
        text(&c, "api key prefix", k->prefix, sizeof k->prefix, false);
        hash(&c, "api key key_hash", k->key_hash, sizeof k->key_hash);
        text(&c, "api key role", k->role, sizeof k->role, true);
        id_or_empty(&c, "api key created_by", k->created_by, sizeof k->created_by);
    }
    return RUN(api_key_create, s, k);
}

int engine_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out, size_t max,
                        size_t *n)
{
    CHK(api_key_list);
    scoped_list(&c, s, out, max, n);
    return RUN(api_key_list, s, out, max, n);
}

int engine_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *kid, int64_t at)
{
    CHK(api_key_revoke);
    stamp(&c, s, "id", kid, at);
    return RUN(api_key_revoke, s, kid, at);
}

/* What refresh_create and a rotation's child both need. */
static void refresh_ok(struct chk *c, const struct eng_scope *s, const char *what, const struct eng_refresh *t)
{
    char w[5][40];

    if (!ptr(c, what, t))
        return;
    snprintf(w[0], sizeof w[0], "%s id", what);
    snprintf(w[1], sizeof w[1], "%s family_id", what);
    snprintf(w[2], sizeof w[2], "%s user_id", what);
    snprintf(w[3], sizeof w[3], "%s token_hash", what);
    snprintf(w[4], sizeof w[4], "%s mode", what);
    same_org(c, s, t->org_id, sizeof t->org_id);
    id(c, w[0], t->id, sizeof t->id);
    id(c, w[1], t->family_id, sizeof t->family_id);
    id(c, w[2], t->user_id, sizeof t->user_id);
    hash(c, w[3], t->token_hash, sizeof t->token_hash);
    mode(c, w[4], t->mode);
}

int engine_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t)
{
    CHK(refresh_create);
    if (scope(&c, s))
        refresh_ok(&c, s, "token", t);
    return RUN(refresh_create, s, t);
}

int engine_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                          const struct eng_refresh *child, const char *sealed, int64_t now, int64_t reuse_interval,
                          struct eng_rotation *out)
{
    CHK(refresh_rotate);
    if (scope(&c, s)) {
        id(&c, "parent_id", parent_id, 0);
        refresh_ok(&c, s, "child", child);
        if (c.rc == 0 && (child->used_at != 0 || child->revoked_at != 0))
            bad(&c, ERR_INVAL, "child", "already used or revoked");
        text(&c, "sealed", sealed, ENG_SEALED, true);
        positive(&c, "now", now);
        if (reuse_interval < 0)
            bad(&c, ERR_INVAL, "reuse_interval", "negative");
        ptr(&c, "out", out);
    }
    return RUN(refresh_rotate, s, parent_id, child, sealed, now, reuse_interval, out);
}

int engine_refresh_rotate_hash(struct engine *e, const struct eng_scope *s, const char *token_hash,
                               struct eng_refresh *child, const char *sealed, int64_t now, struct eng_rotation *out)
{
    CHK(refresh_rotate_hash);
    if (scope(&c, s) && hash(&c, "token_hash", token_hash, 0) && ptr(&c, "child", child)) {
        same_org(&c, s, child->org_id, sizeof child->org_id);
        id(&c, "child id", child->id, sizeof child->id);
        hash(&c, "child token_hash", child->token_hash, sizeof child->token_hash);
        mode(&c, "child mode", child->mode);
        if (c.rc == 0 && child->mode != s->mode)
            bad(&c, ERR_INVAL, "child mode", "not the scope's");
        if (c.rc == 0 && (child->family_id[0] != '\0' || child->user_id[0] != '\0'))
            bad(&c, ERR_INVAL, "child", "family_id and user_id come from the parent");
        if (c.rc == 0 && (child->used_at != 0 || child->revoked_at != 0))
            bad(&c, ERR_INVAL, "child", "already used or revoked");
        text(&c, "sealed", sealed, ENG_SEALED, true);
        positive(&c, "now", now);
        ptr(&c, "out", out);
    }
    return RUN(refresh_rotate_hash, s, token_hash, child, sealed, now, out);
}

int engine_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id, int64_t at)
{
    CHK(refresh_revoke_family);
    stamp(&c, s, "family_id", family_id, at);
    return RUN(refresh_revoke_family, s, family_id, at);
}

int engine_session_create(struct engine *e, const struct eng_scope *s, const struct eng_session *ss)
{
    CHK(session_create);
    if (scope(&c, s) && ptr(&c, "session", ss)) {
        same_org(&c, s, ss->org_id, sizeof ss->org_id);
        id(&c, "session id", ss->id, sizeof ss->id);
        id(&c, "session user_id", ss->user_id, sizeof ss->user_id);
        if (c.rc == 0 && ss->mode != s->mode)
            bad(&c, ERR_INVAL, "session mode", "not the scope's");
        text(&c, "session user_agent", ss->user_agent, sizeof ss->user_agent, false);
        text(&c, "session address", ss->address, sizeof ss->address, false);
        positive(&c, "session created_at", ss->created_at);
        if (c.rc == 0 && (ss->last_used_at < 0 || ss->expires_at < 0 || ss->revoked_at < 0))
            bad(&c, ERR_INVAL, "session times", "negative");
    }
    return RUN(session_create, s, ss);
}

int engine_session_list(struct engine *e, const char *user_id, int64_t now, struct eng_session *out, size_t max,
                        size_t *n)
{
    CHK(session_list);
    id(&c, "user_id", user_id, 0);
    positive(&c, "now", now);
    list(&c, out, max, n);
    return RUN(session_list, user_id, now, out, max, n);
}

int engine_session_revoke(struct engine *e, const char *user_id, const char *org_id, const char *family,
                          const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n)
{
    CHK(session_revoke);
    id(&c, "user_id", user_id, 0);
    id_or_empty(&c, "org_id", org_id, ENG_ID);
    id_or_empty(&c, "family", family, ENG_ID);
    id_or_empty(&c, "except", except, ENG_ID);
    positive(&c, "at", at);
    list(&c, out, max, n);
    return RUN(session_revoke, user_id, org_id, family, except, at, out, max, n);
}

int engine_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i)
{
    CHK(invite_create);
    if (scope(&c, s) && ptr(&c, "invite", i)) {
        same_org(&c, s, i->org_id, sizeof i->org_id);
        id(&c, "invite id", i->id, sizeof i->id);
        text(&c, "invite role", i->role, sizeof i->role, true);
        hash(&c, "invite token_hash", i->token_hash, sizeof i->token_hash);
        id_or_empty(&c, "invite created_by", i->created_by, sizeof i->created_by);
        if (i->email_hmac[0] != '\0')
            hash(&c, "invite email_hmac", i->email_hmac, sizeof i->email_hmac);
    }
    return RUN(invite_create, s, i);
}

int engine_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *iid, int64_t at)
{
    CHK(invite_mark_used);
    stamp(&c, s, "id", iid, at);
    return RUN(invite_mark_used, s, iid, at);
}

/* ---- tenant-scoped: audit --------------------------------------------------------- */

/* Paging compares ids as text: only the canonical spelling orders right. */
static void audit_ok(struct chk *c, const struct eng_scope *s, const struct eng_audit *a)
{
    if (!ptr(c, "audit entry", a))
        return;
    same_org(c, s, a->org_id, sizeof a->org_id);
    id(c, "audit entry id", a->id, sizeof a->id);
    text(c, "audit entry actor", a->actor, sizeof a->actor, false);
    text(c, "audit entry action", a->action, sizeof a->action, true);
    text(c, "audit entry target", a->target, sizeof a->target, false);
    text(c, "audit entry meta", a->meta, sizeof a->meta, false);
}

int engine_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a)
{
    CHK(audit_append);
    if (scope(&c, s))
        audit_ok(&c, s, a);
    return RUN(audit_append, s, a);
}

int engine_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id, struct eng_audit *out,
                      size_t max, size_t *n)
{
    CHK(audit_list);
    scoped_list(&c, s, out, max, n);
    if (before_id != NULL)
        id_or_empty(&c, "before_id", before_id, 0);
    return RUN(audit_list, s, before_id, out, max, n);
}

/* ---- resources and records ---------------------------------------------------------- */

int engine_resource_get(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                        struct eng_resource *out)
{
    CHK(resource_get);
    at_resource(&c, s, service, res);
    ptr(&c, "out", out);
    return RUN(resource_get, s, service, res, out);
}

int engine_resource_hold(struct engine *e, const struct eng_scope *s, const struct eng_resource *def)
{
    CHK(resource_hold);
    if (ptr(&c, "def", def) && at_resource(&c, s, def->service, def->name))
        positive(&c, "def version", def->version);
    return RUN(resource_hold, s, def);
}

int engine_resource_list(struct engine *e, const struct eng_scope *s, const char *service, struct eng_resource *out,
                         size_t max, size_t *n)
{
    CHK(resource_list);
    scoped_list(&c, s, out, max, n);
    name(&c, "service", service, ENG_SLUG);
    return RUN(resource_list, s, service, out, max, n);
}

int engine_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                        const struct eng_rename *ren, size_t nren, int64_t now, const struct eng_audit *audit,
                        struct eng_schema_conflict *why)
{
    CHK(resource_put);
    if (scope(&c, s) && ptr(&c, "def", def)) {
        name(&c, "def service", def->service, sizeof def->service);
        name(&c, "def name", def->name, sizeof def->name);
        if (def->nfields < 0 || def->nfields > ENG_MAX_FIELDS)
            bad(&c, ERR_INVAL, "def nfields", "out of 0..ENG_MAX_FIELDS");
        if (ren == NULL && nren > 0)
            bad(&c, ERR_INVAL, "ren", "missing with nren > 0");
        if (audit != NULL)
            audit_ok(&c, s, audit);
    }
    return RUN(resource_put, s, def, ren, nren, now, audit, why);
}

int engine_record_create(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                         const struct eng_record *rec)
{
    CHK(record_create);
    at_resource(&c, s, service, res);
    if (ptr(&c, "record", rec))
        id(&c, "record id", rec->id, sizeof rec->id);
    return RUN(record_create, s, service, res, rec);
}

int engine_record_get(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                      const char *rid, int64_t now, struct eng_record *out)
{
    CHK(record_get);
    at_resource(&c, s, service, res);
    id(&c, "id", rid, 0);
    ptr(&c, "out", out);
    return RUN(record_get, s, service, res, rid, now, out);
}

int engine_record_update(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                         struct eng_record *rec, int64_t if_version)
{
    CHK(record_update);
    at_resource(&c, s, service, res);
    if (ptr(&c, "record", rec))
        id(&c, "record id", rec->id, sizeof rec->id);
    version(&c, if_version);
    return RUN(record_update, s, service, res, rec, if_version);
}

int engine_record_delete(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                         const char *rid, int64_t if_version, int64_t now)
{
    CHK(record_delete);
    at_resource(&c, s, service, res);
    id(&c, "id", rid, 0);
    version(&c, if_version);
    return RUN(record_delete, s, service, res, rid, if_version, now);
}

int engine_record_list(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                       const struct eng_query *q, struct eng_record *out, size_t max, size_t *n)
{
    CHK(record_list);
    if (scoped_list(&c, s, out, max, n))
        names(&c, service, res);
    if (ptr(&c, "query", q)) {
        if (q->nfilters > ENG_MAX_FILTERS)
            bad(&c, ERR_INVAL, "query nfilters", "over ENG_MAX_FILTERS");
        for (size_t i = 0; c.rc == 0 && i < q->nfilters; i++)
            text(&c, "query filter field", q->filters[i].field, sizeof q->filters[i].field, true);
        text(&c, "query order", q->order, sizeof q->order, false);
        text(&c, "query after_id", q->after_id, sizeof q->after_id, false);
    }
    return RUN(record_list, s, service, res, q, out, max, n);
}

int engine_record_search(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                         const struct eng_search *q, struct eng_hit *out, size_t *n, int *strategy)
{
    CHK(record_search);
    if (ptr(&c, "strategy", strategy))
        *strategy = 0;
    /* n first, so that *n is 0 on any failure */
    if (scoped_list(&c, s, out, q != NULL ? q->k : 0, n) && names(&c, service, res) && ptr(&c, "query", q) &&
        text(&c, "query field", q->field, sizeof q->field, true) && ptr(&c, "query where", q->where) &&
        ptr(&c, "query vector", q->vector)) {
        if (q->k < 1 || q->k > ENG_SEARCH_K_MAX)
            bad(&c, ERR_INVAL, "query k", "outside 1..ENG_SEARCH_K_MAX");
        else if (q->metric < ENG_METRIC_COSINE || q->metric > ENG_METRIC_INNER)
            bad(&c, ERR_INVAL, "query metric", "not an eng_metric");
        else if (q->dim < 1 || q->dim > ENG_VECTOR_MAX)
            bad(&c, ERR_INVAL, "query dim", "outside 1..ENG_VECTOR_MAX");
        else if (q->where->nfilters > ENG_MAX_FILTERS)
            bad(&c, ERR_INVAL, "query nfilters", "over ENG_MAX_FILTERS");
        bool zero = true;
        for (int i = 0; c.rc == 0 && i < q->dim; i++) {
            if (!isfinite(q->vector[i]))
                bad(&c, ERR_INVAL, "query vector", "not finite");
            zero = zero && q->vector[i] == 0;
        }
        if (c.rc == 0 && zero && q->metric == ENG_METRIC_COSINE)
            bad(&c, ERR_INVAL, "query vector", "all zeros under cosine");
        for (size_t i = 0; c.rc == 0 && i < q->where->nfilters; i++)
            text(&c, "query filter field", q->where->filters[i].field, sizeof q->where->filters[i].field, true);
    }
    if (c.rc == 0)
        has(&c, e->ops->record_search);
    return RUN(record_search, s, service, res, q, out, n, strategy);
}

int engine_outbox_list(struct engine *e, const struct eng_scope *s, const char *service, uint64_t after_seq,
                       struct eng_outbox *out, size_t max, size_t *n)
{
    CHK(outbox_list);
    scoped_list(&c, s, out, max, n);
    name(&c, "service", service, ENG_SLUG);
    return RUN(outbox_list, s, service, after_seq, out, max, n);
}

/* ---- CQRS ------------------------------------------------------------------------- */


int engine_project(struct engine *e, size_t max, eng_touch_fn touch, void *ctx, struct eng_projection *out)
{
    CHK(project);
    if (ptr(&c, "out", out))
        memset(out, 0, sizeof *out);
    if (max == 0)
        bad(&c, ERR_INVAL, "max", "zero");
    has(&c, (const void *)e->ops->project);
    return RUN(project, max, touch, ctx, out);
}

int engine_wait(struct engine *e, int timeout_ms)
{
    if (timeout_ms < 0)
        return engine_fail(e, ERR_INVAL, "wait: timeout_ms negative");
    if (e->ops->wait == NULL) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);   /* a signal ends it early, as a wake-up would */
        return 0;
    }
    return e->ops->wait(e, timeout_ms);
}

int engine_reap(struct engine *e, const struct eng_reap_policy *p, eng_touch_fn touch, void *ctx,
                struct eng_reaped *out)
{
    CHK(reap);
    if (ptr(&c, "out", out))
        memset(out, 0, sizeof *out);
    if (ptr(&c, "policy", p)) {
        positive(&c, "policy now", p->now);
        if (p->token_grace < 0 || p->changes_retention < 0 || p->audit_retention_months < 0)
            bad(&c, ERR_INVAL, "policy", "negative duration");
        if (p->max == 0)
            bad(&c, ERR_INVAL, "policy max", "zero");
    }
    has(&c, (const void *)e->ops->reap);
    return RUN(reap, p, touch, ctx, out);
}

int engine_view_read(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                     const char *view, cJSON **rows, bool *more, int64_t *pending_ms)
{
    CHK(view_read);
    if (ptr(&c, "rows", rows))
        *rows = NULL;
    if (ptr(&c, "more", more))
        *more = false;
    if (ptr(&c, "pending_ms", pending_ms))
        *pending_ms = 0;
    if (at_resource(&c, s, service, res))
        name(&c, "view", view, ENG_FIELD);
    has(&c, (const void *)e->ops->view_read);
    return RUN(view_read, s, service, res, view, rows, more, pending_ms);
}

int engine_changes_list(struct engine *e, const struct eng_scope *s, const char *service, const char *res,
                        uint64_t after, struct eng_change *out, size_t max, size_t *n, uint64_t *head)
{
    CHK(changes_list);
    if (ptr(&c, "head", head))
        *head = 0;
    if (list(&c, out, max, n))
        at_resource(&c, s, service, res);
    has(&c, (const void *)e->ops->changes_list);
    return RUN(changes_list, s, service, res, after, out, max, n, head);
}

int engine_org_records(struct engine *e, const struct eng_scope *s, int64_t *n, char where[80])
{
    CHK(org_records);
    if (ptr(&c, "n", n) && ptr(&c, "where", where)) {
        *n = 0;
        where[0] = '\0';
    }
    scope(&c, s);
    has(&c, (const void *)e->ops->org_records);
    return RUN(org_records, s, n, where);
}

int engine_org_place(struct engine *e, const struct eng_scope *s, const char *database, bool moving)
{
    CHK(org_place);
    if (scope(&c, s) && ptr(&c, "database", database) && (strlen(database) == 0 || strlen(database) >= ENG_DB))
        bad(&c, ERR_INVAL, "database", "empty or too long");
    has(&c, (const void *)e->ops->org_place);
    return RUN(org_place, s, database, moving);
}

int engine_placement_sync(struct engine *e, const struct eng_scope *s, const char *database, int *made)
{
    CHK(placement_sync);
    if (ptr(&c, "made", made))
        *made = 0;
    if (scope(&c, s) && ptr(&c, "database", database) && (strlen(database) == 0 || strlen(database) >= ENG_DB))
        bad(&c, ERR_INVAL, "database", "empty or too long");
    has(&c, (const void *)e->ops->placement_sync);
    return RUN(placement_sync, s, database, made);
}

int engine_org_platform(struct engine *e, struct eng_org *out)
{
    CHK(org_platform);
    ptr(&c, "out", out);
    has(&c, (const void *)e->ops->org_platform);
    return RUN(org_platform, out);
}
