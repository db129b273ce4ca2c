/* test_engine_mem: every op of the memory engine, tenant isolation across two
 * orgs, unique constraints, audit paging, several processes on one region, a
 * worker killed inside a unit of work, and a region that runs out of space. */
#include "unit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/mem/engine_mem.h"
#include "store/mem/shm.h"
#include "core/uuid.h"

#define BIG_REGION (8u << 20)

static struct engine *engine(struct shm_region *r)
{
    char err[128] = "";
    struct engine *e = engine_mem_new(r, err);

    if (e == NULL)
        fail_msg("engine_mem_new: %s", err);
    return e;
}

/* A prepared region and an engine on it. */
static struct engine *fresh(struct shm_region **r, size_t bytes)
{
    char err[128] = "";

    *r = unit_region(bytes);
    if (engine_mem_prepare(*r, err) != 0)
        fail_msg("engine_mem_prepare: %s", err);
    return engine(*r);
}

static void new_id(char out[ENG_ID])
{
    assert_int_equal(uuid_v7(out), 0);
}

static struct eng_user user_rec(const char *email)
{
    struct eng_user u;

    memset(&u, 0, sizeof u);
    new_id(u.id);
    snprintf(u.email_enc, sizeof u.email_enc, "sealed:%s", email);
    snprintf(u.email_hmac, sizeof u.email_hmac, "hmac:%s", email);
    snprintf(u.password_hash, sizeof u.password_hash, "$scrypt$ln=17,r=8,p=1$salt$hash");
    u.created_at = 1000;
    return u;
}

static struct eng_org org_rec(const char *slug)
{
    struct eng_org o;

    memset(&o, 0, sizeof o);
    new_id(o.id);
    snprintf(o.name, sizeof o.name, "Org %s", slug);
    snprintf(o.slug, sizeof o.slug, "%s", slug);
    snprintf(o.plan, sizeof o.plan, "free");
    o.created_at = 1000;
    return o;
}

static struct eng_scope scope_of(const struct eng_org *o, int mode)
{
    struct eng_scope s;

    memset(&s, 0, sizeof s);
    memcpy(s.org_id, o->id, sizeof s.org_id);
    s.mode = mode;
    return s;
}

static struct eng_membership member_rec(const struct eng_org *o, const struct eng_user *u,
                                        const char *role, int64_t at)
{
    struct eng_membership mb;

    memset(&mb, 0, sizeof mb);
    memcpy(mb.org_id, o->id, sizeof mb.org_id);
    memcpy(mb.user_id, u->id, sizeof mb.user_id);
    snprintf(mb.role, sizeof mb.role, "%s", role);
    mb.created_at = at;
    return mb;
}

static struct eng_api_key key_rec(const struct eng_org *o, int mode, const char *hash, int64_t at)
{
    struct eng_api_key k;

    memset(&k, 0, sizeof k);
    new_id(k.id);
    memcpy(k.org_id, o->id, sizeof k.org_id);
    k.mode = mode;
    snprintf(k.name, sizeof k.name, "key %s", hash);
    snprintf(k.prefix, sizeof k.prefix, "tk_%s_ab12", engine_mode_name(mode));
    snprintf(k.key_hash, sizeof k.key_hash, "%s", hash);
    snprintf(k.role, sizeof k.role, "admin");
    k.created_at = at;
    return k;
}

static struct eng_refresh refresh_rec(const struct eng_org *o, const struct eng_user *u,
                                      const char *family, const char *hash)
{
    struct eng_refresh t;

    memset(&t, 0, sizeof t);
    new_id(t.id);
    snprintf(t.family_id, sizeof t.family_id, "%s", family);
    memcpy(t.user_id, u->id, sizeof t.user_id);
    memcpy(t.org_id, o->id, sizeof t.org_id);
    snprintf(t.token_hash, sizeof t.token_hash, "%s", hash);
    t.created_at = 1000;
    t.expires_at = 1000 + 30 * 86400;
    return t;
}

static struct eng_invite invite_rec(const struct eng_org *o, const char *hash)
{
    struct eng_invite i;

    memset(&i, 0, sizeof i);
    new_id(i.id);
    memcpy(i.org_id, o->id, sizeof i.org_id);
    snprintf(i.role, sizeof i.role, "member");
    snprintf(i.token_hash, sizeof i.token_hash, "%s", hash);
    i.expires_at = 5000;
    return i;
}

static struct eng_audit audit_rec(const struct eng_org *o, const char *id, const char *action)
{
    struct eng_audit a;

    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "%s", id);
    memcpy(a.org_id, o->id, sizeof a.org_id);
    snprintf(a.action, sizeof a.action, "%s", action);
    snprintf(a.target, sizeof a.target, "target");
    snprintf(a.meta, sizeof a.meta, "{\"n\":1}");
    a.created_at = 1000;
    return a;
}

/* Two orgs, A and B, and a user in each, committed. */
struct world {
    struct eng_org a, b;
    struct eng_user ua, ub;
    struct eng_scope sa, sb;
};

static void make_world(struct engine *e, struct world *w)
{
    w->a = org_rec("acme");
    w->b = org_rec("globex");
    w->ua = user_rec("alice@acme.test");
    w->ub = user_rec("bob@globex.test");
    w->sa = scope_of(&w->a, ENG_MODE_TEST);
    w->sb = scope_of(&w->b, ENG_MODE_TEST);
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, org_create, &w->a));
    OK(e, OP(e, org_create, &w->b));
    OK(e, OP(e, user_create, &w->ua));
    OK(e, OP(e, user_create, &w->ub));
    OK(e, engine_commit(e));
}

/* Alice joins acme: a rotation needs its user to be a member (role as given). */
static void join(struct engine *e, const struct world *w, const char *role)
{
    struct eng_membership mb = member_rec(&w->a, &w->ua, role, 1);

    OK(e, engine_begin(e, &w->sa));
    OK(e, OP(e, member_put, &w->sa, &mb));
    OK(e, engine_commit(e));
}

static void test_calls_outside_a_unit_of_work_are_internal_errors(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION), *e2 = engine(r);
    struct eng_membership mb;
    struct eng_user u;
    struct eng_org o;
    struct world w;

    make_world(e, &w);
    EXPECT(e, ERR_INTERNAL, OP(e, user_get, w.ua.id, &u));
    EXPECT(e, ERR_INTERNAL, OP(e, org_get, &w.sa, &o));
    EXPECT(e, ERR_INTERNAL, engine_commit(e));
    engine_rollback(e);                                 /* a no-op */

    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_INTERNAL, engine_begin(e, &w.sa));
    EXPECT(e2, ERR_INTERNAL, engine_begin(e2, NULL));   /* this process holds it: no deadlock */
    OK(e, OP(e, org_get, &w.sa, &o));
    EXPECT(e, ERR_INTERNAL, OP(e, org_get, &w.sb, &o)); /* not the org it began with */
    EXPECT(e, ERR_INTERNAL, OP(e, org_get, NULL, &o));
    mb = member_rec(&w.b, &w.ua, "member", 1);          /* a record of another org */
    EXPECT(e, ERR_INTERNAL, engine_member_put(e, &w.sa, &mb));
    OK(e, engine_commit(e));

    /* Begun without a scope: any org may be named (signup makes one). */
    OK(e2, engine_begin(e2, NULL));
    OK(e2, OP(e2, org_get, &w.sb, &o));
    assert_string_equal(o.slug, "globex");
    OK(e2, engine_commit(e2));

    OK(e, e->ops->ping(e));
    engine_free(e2);
    engine_free(e);
    engine_free(NULL);
    shm_destroy(r);
}

static void test_prepare_is_idempotent_and_new_lays_out_lazily(void **state)
{
    struct shm_region *r = unit_region(BIG_REGION);
    struct engine *e = engine(r);
    struct eng_user u = user_rec("a@b.test"), got;
    char err[128] = "";

    /* The first unit of work lays the root out; a rollback takes it away again. */
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_create, &u));
    engine_rollback(e);
    OK(e, engine_begin(e, NULL));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_get, u.id, &got));
    OK(e, OP(e, user_create, &u));
    OK(e, engine_commit(e));

    assert_int_equal(engine_mem_prepare(r, err), 0);
    assert_int_equal(engine_mem_prepare(r, err), 0);
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_get, u.id, &got));
    assert_string_equal(got.email_hmac, u.email_hmac);
    OK(e, engine_commit(e));
    assert_string_equal(e->ops->name, "memory");
    engine_free(e);
    shm_destroy(r);
}

static void test_users_unique_by_id_and_email(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_user u = user_rec("alice@x.test"), v = user_rec("bob@x.test"), dup, got;
    char longphc[ENG_PHC + 8];

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_create, &u));
    OK(e, OP(e, user_create, &v));
    dup = user_rec("alice@x.test");
    EXPECT(e, ERR_CONFLICT, OP(e, user_create, &dup));
    dup = user_rec("carol@x.test");
    memcpy(dup.id, u.id, sizeof dup.id);
    EXPECT(e, ERR_CONFLICT, OP(e, user_create, &dup));
    dup.id[0] = '\0';
    EXPECT(e, ERR_INVAL, engine_user_create(e, &dup));
    OK(e, engine_commit(e));    /* a conflict changes nothing: the unit of work goes on */

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_get, u.id, &got));
    assert_memory_equal(&got, &u, sizeof got);
    OK(e, OP(e, user_by_email, "hmac:bob@x.test", &got));
    assert_string_equal(got.id, v.id);
    EXPECT(e, ERR_NOTFOUND, OP(e, user_by_email, "hmac:nobody", &got));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_get, "00000000-0000-7000-8000-000000000000", &got));

    OK(e, OP(e, user_set_password, u.id, "$scrypt$new"));
    OK(e, OP(e, user_set_admin, u.id, true));
    OK(e, OP(e, user_by_email, u.email_hmac, &got));
    assert_string_equal(got.password_hash, "$scrypt$new");
    assert_true(got.is_platform_admin);
    assert_string_equal(got.email_enc, u.email_enc);
    memset(longphc, 'x', sizeof longphc - 1);
    longphc[sizeof longphc - 1] = '\0';
    EXPECT(e, ERR_INVAL, engine_user_set_password(e, u.id, longphc));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_set_password, "nope", "$x"));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_set_admin, "nope", true));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_get, u.id, &got));
    assert_string_equal(got.password_hash, "$scrypt$new");
    OK(e, OP(e, user_set_admin, u.id, false));
    OK(e, OP(e, user_get, u.id, &got));
    assert_false(got.is_platform_admin);
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_orgs_unique_by_slug_and_seen_only_by_their_scope(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_org dup, got;
    struct eng_scope nowhere;
    struct world w;

    make_world(e, &w);
    OK(e, engine_begin(e, NULL));
    dup = org_rec("acme");
    EXPECT(e, ERR_CONFLICT, OP(e, org_create, &dup));
    dup = org_rec("initech");
    memcpy(dup.id, w.a.id, sizeof dup.id);
    EXPECT(e, ERR_CONFLICT, OP(e, org_create, &dup));
    dup.slug[0] = '\0';
    EXPECT(e, ERR_INVAL, engine_org_create(e, &dup));
    OK(e, OP(e, org_get, &w.sa, &got));
    assert_memory_equal(&got, &w.a, sizeof got);
    OK(e, OP(e, org_get, &w.sb, &got));
    assert_string_equal(got.slug, "globex");
    dup = org_rec("never-made");
    nowhere = scope_of(&dup, ENG_MODE_TEST);
    EXPECT(e, ERR_NOTFOUND, OP(e, org_get, &nowhere, &got));
    OK(e, engine_commit(e));
    engine_free(e);
    shm_destroy(r);
}

static struct eng_app app_rec(const char *name)
{
    struct eng_app a;

    memset(&a, 0, sizeof a);
    new_id(a.id);
    snprintf(a.name, sizeof a.name, "%s", name);
    snprintf(a.kind, sizeof a.kind, "microservice");
    snprintf(a.base_url, sizeof a.base_url, "http://127.0.0.1:9000/%s", name);
    snprintf(a.status, sizeof a.status, "active");
    a.created_at = 1000;
    return a;
}

static void test_apps_unique_by_name_listed_by_name(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_app crm = app_rec("crm"), billing = app_rec("billing"), dup = app_rec("crm"), got,
                   list[4];
    size_t n = 99;

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, app_list, list, 4, &n));
    assert_int_equal(n, 0);
    OK(e, OP(e, app_create, &crm));
    OK(e, OP(e, app_create, &billing));
    EXPECT(e, ERR_CONFLICT, OP(e, app_create, &dup));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, app_get, "crm", &got));
    assert_memory_equal(&got, &crm, sizeof got);
    EXPECT(e, ERR_NOTFOUND, OP(e, app_get, "erp", &got));
    OK(e, OP(e, app_list, list, 4, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "billing");
    assert_string_equal(list[1].name, "crm");
    OK(e, OP(e, app_list, list, 1, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "billing");
    OK(e, engine_commit(e));
    engine_free(e);
    shm_destroy(r);
}

static void test_members_are_per_org_and_upserted(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_membership mb, got, list[8];
    struct eng_user ghost = user_rec("ghost@x.test");
    struct world w;
    size_t n;

    make_world(e, &w);
    OK(e, engine_begin(e, &w.sa));
    mb = member_rec(&w.a, &w.ua, "owner", 10);
    OK(e, OP(e, member_put, &w.sa, &mb));
    mb = member_rec(&w.a, &w.ub, "member", 20);
    OK(e, OP(e, member_put, &w.sa, &mb));
    mb = member_rec(&w.a, &ghost, "member", 30);
    EXPECT(e, ERR_NOTFOUND, OP(e, member_put, &w.sa, &mb));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sb));
    mb = member_rec(&w.b, &w.ua, "viewer", 5);
    OK(e, OP(e, member_put, &w.sb, &mb));
    /* B sees only its own member; A's are not found. */
    EXPECT(e, ERR_NOTFOUND, OP(e, member_get, &w.sb, w.ub.id, &got));
    EXPECT(e, ERR_NOTFOUND, OP(e, member_remove, &w.sb, w.ub.id));
    OK(e, OP(e, member_list, &w.sb, list, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].user_id, w.ua.id);
    assert_string_equal(list[0].role, "viewer");
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_get, &w.sa, w.ua.id, &got));
    assert_string_equal(got.role, "owner");
    assert_string_equal(got.org_id, w.a.id);
    OK(e, OP(e, member_list, &w.sa, list, 8, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].user_id, w.ua.id);  /* by created_at */
    assert_string_equal(list[1].user_id, w.ub.id);
    OK(e, OP(e, member_list, &w.sa, list, 1, &n));
    assert_int_equal(n, 1);

    /* Upsert: the role changes, created_at stays. */
    mb = member_rec(&w.a, &w.ub, "admin", 999);
    OK(e, OP(e, member_put, &w.sa, &mb));
    OK(e, OP(e, member_get, &w.sa, w.ub.id, &got));
    assert_string_equal(got.role, "admin");
    assert_int_equal(got.created_at, 20);
    OK(e, OP(e, member_list, &w.sa, list, 8, &n));
    assert_int_equal(n, 2);
    OK(e, engine_commit(e));

    /* A user's memberships in every org: the login lookup. */
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_memberships, w.ua.id, list, 8, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].org_id, w.b.id);    /* created 5 */
    assert_string_equal(list[1].org_id, w.a.id);    /* created 10 */
    OK(e, OP(e, user_memberships, w.ub.id, list, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].role, "admin");
    OK(e, OP(e, user_memberships, ghost.id, list, 8, &n));
    assert_int_equal(n, 0);
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_remove, &w.sa, w.ub.id));
    EXPECT(e, ERR_NOTFOUND, OP(e, member_remove, &w.sa, w.ub.id));
    EXPECT(e, ERR_NOTFOUND, OP(e, member_get, &w.sa, w.ub.id, &got));
    OK(e, OP(e, member_remove, &w.sa, w.ua.id));
    OK(e, OP(e, member_list, &w.sa, list, 8, &n));
    assert_int_equal(n, 0);
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_memberships, w.ub.id, list, 8, &n));
    assert_int_equal(n, 0);
    OK(e, OP(e, user_memberships, w.ua.id, list, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].org_id, w.b.id);
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

static struct eng_role role_rec(const struct eng_org *o, const char *name, int nperms)
{
    struct eng_role ro;

    memset(&ro, 0, sizeof ro);
    memcpy(ro.org_id, o->id, sizeof ro.org_id);
    snprintf(ro.name, sizeof ro.name, "%s", name);
    for (int i = 0; i < nperms && i < ENG_MAX_PERMS; i++)
        snprintf(ro.perms[i], sizeof ro.perms[i], "records:read:svc%d/*", i);
    ro.nperms = nperms;
    return ro;
}

static void test_roles_builtins_then_the_orgs_own(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_role ro, got, list[8];
    struct world w;
    size_t n;

    make_world(e, &w);
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, role_builtin, "admin", &got));
    assert_string_equal(got.org_id, "");
    assert_int_equal(got.nperms, ENGINE_BUILTIN_ROLES[1].nperms);
    EXPECT(e, ERR_NOTFOUND, OP(e, role_builtin, "support", &got));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sa));
    ro = role_rec(&w.a, "owner", 1);
    EXPECT(e, ERR_CONFLICT, OP(e, role_put, &w.sa, &ro, true));
    EXPECT(e, ERR_CONFLICT, OP(e, role_put, &w.sa, &ro, false));
    ro = role_rec(&w.a, "support", 2);
    EXPECT(e, ERR_NOTFOUND, OP(e, role_put, &w.sa, &ro, false)); /* a change needs the role */
    OK(e, OP(e, role_put, &w.sa, &ro, true));
    EXPECT(e, ERR_CONFLICT, OP(e, role_put, &w.sa, &ro, true));  /* a create never replaces */
    ro = role_rec(&w.a, "auditor", 1);
    OK(e, OP(e, role_put, &w.sa, &ro, true));
    ro = role_rec(&w.a, "bad", 1);
    ro.nperms = ENG_MAX_PERMS + 1;
    EXPECT(e, ERR_INVAL, engine_role_put(e, &w.sa, &ro, true));
    ro = role_rec(&w.b, "support", 1);
    EXPECT(e, ERR_INTERNAL, engine_role_put(e, &w.sa, &ro, true));
    OK(e, OP(e, role_get, &w.sa, "support", &got));
    assert_string_equal(got.org_id, w.a.id);
    assert_int_equal(got.nperms, 2);
    assert_string_equal(got.perms[1], "records:read:svc1/*");
    OK(e, OP(e, role_get, &w.sa, "viewer", &got));
    assert_string_equal(got.org_id, "");
    EXPECT(e, ERR_NOTFOUND, OP(e, role_get, &w.sa, "nobody", &got));
    /* Replace. */
    ro = role_rec(&w.a, "support", 5);
    OK(e, OP(e, role_put, &w.sa, &ro, false));
    OK(e, OP(e, role_get, &w.sa, "support", &got));
    assert_int_equal(got.nperms, 5);
    OK(e, OP(e, role_list, &w.sa, list, 8, &n));
    assert_int_equal(n, ENGINE_NBUILTIN_ROLES + 2);
    for (size_t i = 0; i < ENGINE_NBUILTIN_ROLES; i++)
        assert_string_equal(list[i].name, ENGINE_BUILTIN_ROLES[i].name);
    assert_string_equal(list[ENGINE_NBUILTIN_ROLES].name, "auditor");
    assert_string_equal(list[ENGINE_NBUILTIN_ROLES + 1].name, "support");
    OK(e, OP(e, role_list, &w.sa, list, 3, &n));
    assert_int_equal(n, 3);
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sb));
    EXPECT(e, ERR_NOTFOUND, OP(e, role_get, &w.sb, "support", &got));
    OK(e, OP(e, role_list, &w.sb, list, 8, &n));
    assert_int_equal(n, ENGINE_NBUILTIN_ROLES);
    EXPECT(e, ERR_NOTFOUND, OP(e, role_delete, &w.sb, "support")); /* another org's role */
    OK(e, engine_commit(e));

    /* Delete: refused while a member, a live key or an open invite holds it. */
    struct eng_membership mb = member_rec(&w.a, &w.ub, "support", 7);
    struct eng_api_key k = key_rec(&w.a, ENG_MODE_TEST, "hk", 8);
    struct eng_invite inv = invite_rec(&w.a, "hi");
    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_NOTFOUND, OP(e, role_delete, &w.sa, "nobody"));
    OK(e, OP(e, member_put, &w.sa, &mb));
    EXPECT(e, ERR_CONFLICT, OP(e, role_delete, &w.sa, "support"));
    snprintf(mb.role, sizeof mb.role, "viewer");
    OK(e, OP(e, member_put, &w.sa, &mb));
    snprintf(k.role, sizeof k.role, "support");
    OK(e, OP(e, api_key_create, &w.sa, &k));
    EXPECT(e, ERR_CONFLICT, OP(e, role_delete, &w.sa, "support"));
    OK(e, OP(e, api_key_revoke, &w.sa, k.id, 9));
    snprintf(inv.role, sizeof inv.role, "support");
    inv.expires_at = (int64_t)time(NULL) + 3600;
    OK(e, OP(e, invite_create, &w.sa, &inv));
    EXPECT(e, ERR_CONFLICT, OP(e, role_delete, &w.sa, "support"));
    OK(e, OP(e, invite_mark_used, &w.sa, inv.id, 10));
    OK(e, OP(e, role_delete, &w.sa, "support")); /* only spent credentials name it now */
    EXPECT(e, ERR_NOTFOUND, OP(e, role_get, &w.sa, "support", &got));
    OK(e, OP(e, role_get, &w.sa, "auditor", &got));
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

static struct eng_session session_rec(const struct eng_org *o, const struct eng_user *u, const char *id,
                                      int64_t at)
{
    struct eng_session ss;

    memset(&ss, 0, sizeof ss);
    snprintf(ss.id, sizeof ss.id, "%s", id);
    memcpy(ss.org_id, o->id, sizeof ss.org_id);
    memcpy(ss.user_id, u->id, sizeof ss.user_id);
    ss.mode = ENG_MODE_TEST;
    snprintf(ss.user_agent, sizeof ss.user_agent, "agent %s", id);
    snprintf(ss.address, sizeof ss.address, "192.0.2.0/24");
    ss.created_at = ss.last_used_at = at;
    ss.expires_at = at + 1000;
    return ss;
}

/* Sessions span a person's orgs: listed live only, newest first; ended by
 * org, by id, all but one; a rotation and a family revocation keep them. */
static void test_sessions_of_a_person(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct world w;
    struct eng_session list[8];
    char ids[8][ENG_ID];
    char f1[ENG_ID], f2[ENG_ID], f3[ENG_ID], fb[ENG_ID];
    struct eng_rotation rot;
    size_t n;
    int64_t now = (int64_t)time(NULL);

    (void)state;
    make_world(e, &w);
    new_id(f1), new_id(f2), new_id(f3), new_id(fb);
    struct eng_membership ma = member_rec(&w.a, &w.ua, "owner", 1), mb = member_rec(&w.b, &w.ua, "viewer", 1);
    struct eng_membership mbob = member_rec(&w.b, &w.ub, "owner", 1);
    struct eng_session s1 = session_rec(&w.a, &w.ua, f1, now - 30), s2 = session_rec(&w.a, &w.ua, f2, now - 20);
    struct eng_session s3 = session_rec(&w.b, &w.ua, f3, now - 10), sbob = session_rec(&w.b, &w.ub, fb, now);
    struct eng_refresh t1 = refresh_rec(&w.a, &w.ua, f1, "t1"), t1b = refresh_rec(&w.a, &w.ua, f1, "t1b");
    struct eng_refresh t2 = refresh_rec(&w.a, &w.ua, f2, "t2");
    t1.expires_at = t1b.expires_at = t2.expires_at = now + 5000;
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, member_put, &w.sa, &ma));
    OK(e, OP(e, member_put, &w.sb, &mb));
    OK(e, OP(e, member_put, &w.sb, &mbob));
    OK(e, OP(e, session_create, &w.sa, &s1));
    EXPECT(e, ERR_CONFLICT, OP(e, session_create, &w.sa, &s1));
    OK(e, OP(e, session_create, &w.sa, &s2));
    OK(e, OP(e, session_create, &w.sb, &s3));
    OK(e, OP(e, session_create, &w.sb, &sbob));
    OK(e, OP(e, refresh_create, &w.sa, &t1));
    OK(e, OP(e, refresh_create, &w.sa, &t2));
    OK(e, OP(e, session_list, w.ua.id, now, list, 8, &n));
    assert_int_equal(n, 3); /* bob's is not alice's */
    assert_string_equal(list[0].id, f3);
    assert_string_equal(list[2].id, f1);
    assert_string_equal(list[1].user_agent, s2.user_agent);
    /* a rotation moves last_used_at and expires_at */
    t1b.expires_at = now + 9000;
    OK(e, OP(e, refresh_rotate, &w.sa, t1.id, &t1b, "sealed", now, 10, &rot));
    assert_int_equal(rot.outcome, ENG_ROTATE_NEW);
    OK(e, OP(e, session_list, w.ua.id, now, list, 8, &n));
    assert_int_equal(list[2].last_used_at, now);
    assert_int_equal(list[2].expires_at, now + 9000);
    /* expired: not listed */
    OK(e, OP(e, session_list, w.ua.id, now + 2000, list, 8, &n));
    assert_int_equal(n, 1);
    /* ended: by family revocation (a logout), then by id, by org, all but one */
    OK(e, OP(e, refresh_revoke_family, &w.sa, f2, now));
    OK(e, OP(e, session_list, w.ua.id, now, list, 8, &n));
    assert_int_equal(n, 2);
    OK(e, OP(e, session_revoke, w.ua.id, "", fb, "", now, ids, 8, &n)); /* bob's id: not alice's to end */
    assert_int_equal(n, 0);
    OK(e, OP(e, session_revoke, w.ua.id, w.b.id, "", "", now, ids, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], f3);
    OK(e, OP(e, session_revoke, w.ua.id, "", "", f1, now, ids, 8, &n)); /* all but f1: none left */
    assert_int_equal(n, 0);
    OK(e, OP(e, session_revoke, w.ua.id, "", "", "", now, ids, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], f1);
    struct eng_refresh got;
    OK(e, OP(e, refresh_resolve, "t1b", &got));
    assert_true(got.revoked_at != 0);    /* its family's tokens went with it */
    OK(e, OP(e, session_list, w.ub.id, now, list, 8, &n));
    assert_int_equal(n, 1);               /* bob's untouched */
    OK(e, engine_commit(e));

    /* the reaper takes sessions past expiry and grace */
    struct eng_reap_policy p = {.now = now + 1000 + 86400 + 1, .token_grace = 86400, .changes_retention = 86400,
                                .max = 100};
    struct eng_reaped rp = {0};
    OK(e, engine_reap(e, &p, NULL, NULL, &rp));
    assert_int_equal(rp.sessions, 3); /* s2, s3, bob's (s1's expiry moved on with its rotation) */
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

/* One-time tokens: used once, of their kind, within their time; the auth
 * outbox in seq order from a cursor; both reaped past expiry and grace. */
static void test_user_tokens_and_the_auth_outbox(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct world w;
    struct eng_user_token t = {0}, got;
    struct eng_auth_event ev = {0}, page[4];
    int64_t seq, now = (int64_t)time(NULL);
    size_t n;

    (void)state;
    make_world(e, &w);
    snprintf(t.token_hash, sizeof t.token_hash, "h-reset");
    t.kind = ENG_TOKEN_RESET;
    memcpy(t.user_id, w.ua.id, sizeof t.user_id);
    t.created_at = now;
    t.expires_at = now + 60;
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_token_create, &t));
    EXPECT(e, ERR_CONFLICT, OP(e, user_token_create, &t));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_token_use, ENG_TOKEN_VERIFY, "h-reset", now, &got)); /* another kind */
    EXPECT(e, ERR_NOTFOUND, OP(e, user_token_use, ENG_TOKEN_RESET, "h-reset", now + 60, &got)); /* expired */
    OK(e, OP(e, user_token_use, ENG_TOKEN_RESET, "h-reset", now, &got));
    assert_string_equal(got.user_id, w.ua.id);
    EXPECT(e, ERR_NOTFOUND, OP(e, user_token_use, ENG_TOKEN_RESET, "h-reset", now, &got)); /* once */
    for (int i = 0; i < 3; i++) {
        snprintf(ev.kind, sizeof ev.kind, "auth.kind_%d", i);
        memcpy(ev.user_id, w.ua.id, sizeof ev.user_id);
        snprintf(ev.sealed, sizeof ev.sealed, "sealed-%d", i);
        ev.created_at = now;
        ev.expires_at = now + 60 * (i + 1);
        OK(e, OP(e, auth_event_append, &ev, &seq));
        assert_int_equal(seq, i + 1);
    }
    OK(e, OP(e, auth_event_list, 0, page, 2, &n));
    assert_int_equal(n, 2);
    assert_int_equal(page[0].seq, 1);
    assert_string_equal(page[1].sealed, "sealed-1");
    OK(e, OP(e, auth_event_list, 2, page, 4, &n));
    assert_int_equal(n, 1);
    assert_int_equal(page[0].seq, 3);
    OK(e, OP(e, user_set_verified, w.ua.id, now));
    struct eng_user u;
    OK(e, OP(e, user_get, w.ua.id, &u));
    assert_int_equal(u.email_verified_at, now);
    OK(e, engine_commit(e));

    struct eng_reap_policy p = {.now = now + 120 + 10, .token_grace = 10, .changes_retention = 86400, .max = 100};
    struct eng_reaped rp = {0};
    OK(e, engine_reap(e, &p, NULL, NULL, &rp));
    assert_int_equal(rp.user_tokens, 1);
    assert_int_equal(rp.auth_events, 2); /* the third lives a minute longer */
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, auth_event_list, 0, page, 4, &n));
    assert_int_equal(n, 1);
    assert_int_equal(page[0].seq, 3);
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

/* An erased person leaves nothing of theirs: user, email index, memberships,
 * sessions and tokens, the keys they made, invites naming their email, their
 * one-time tokens and events; another person's are untouched. */
static void test_user_erase_leaves_nothing(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct world w;
    char fam[ENG_ID], ids[4][ENG_ID];
    struct eng_user u;
    struct eng_membership mlist[4];
    struct eng_api_key kl[4], kgot;
    struct eng_invite igot;
    struct eng_refresh rgot;
    struct eng_user_token t = {0};
    struct eng_auth_event ev = {0};
    int64_t seq, now = (int64_t)time(NULL);
    size_t n;

    (void)state;
    make_world(e, &w);
    new_id(fam);
    struct eng_membership ma = member_rec(&w.a, &w.ua, "owner", 1), mb = member_rec(&w.b, &w.ua, "viewer", 1);
    struct eng_membership mbob = member_rec(&w.b, &w.ub, "owner", 1);
    struct eng_session ss = session_rec(&w.a, &w.ua, fam, now);
    struct eng_refresh tok = refresh_rec(&w.a, &w.ua, fam, "rt-alice");
    tok.expires_at = now + 100;
    struct eng_api_key mine = key_rec(&w.b, ENG_MODE_TEST, "k-alice", 5), bobs = key_rec(&w.b, ENG_MODE_TEST, "k-bob", 6);
    memcpy(mine.created_by, w.ua.id, sizeof mine.created_by);
    memcpy(bobs.created_by, w.ub.id, sizeof bobs.created_by);
    struct eng_invite inv = invite_rec(&w.b, "i-alice"), other = invite_rec(&w.b, "i-other");
    memcpy(inv.email_hmac, w.ua.email_hmac, sizeof inv.email_hmac);
    snprintf(t.token_hash, sizeof t.token_hash, "h-verify");
    t.kind = ENG_TOKEN_VERIFY;
    memcpy(t.user_id, w.ua.id, sizeof t.user_id);
    t.created_at = now;
    t.expires_at = now + 60;
    snprintf(ev.kind, sizeof ev.kind, "auth.email_verification_requested");
    memcpy(ev.user_id, w.ua.id, sizeof ev.user_id);
    snprintf(ev.sealed, sizeof ev.sealed, "sealed");
    ev.created_at = now;
    ev.expires_at = now + 60;
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, member_put, &w.sa, &ma));
    OK(e, OP(e, member_put, &w.sb, &mb));
    OK(e, OP(e, member_put, &w.sb, &mbob));
    OK(e, OP(e, session_create, &w.sa, &ss));
    OK(e, OP(e, refresh_create, &w.sa, &tok));
    OK(e, OP(e, api_key_create, &w.sb, &mine));
    OK(e, OP(e, api_key_create, &w.sb, &bobs));
    OK(e, OP(e, invite_create, &w.sb, &inv));
    OK(e, OP(e, invite_create, &w.sb, &other));
    OK(e, OP(e, user_token_create, &t));
    OK(e, OP(e, auth_event_append, &ev, &seq));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_erase, "00000000-0000-4000-8000-000000000000", now, ids, 4, &n));
    engine_rollback(e);
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, user_erase, w.ua.id, now, ids, 4, &n));
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], fam);
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_get, w.ua.id, &u));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_by_email, w.ua.email_hmac, &u));
    OK(e, OP(e, user_memberships, w.ua.id, mlist, 4, &n));
    assert_int_equal(n, 0);
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_resolve, "rt-alice", &rgot));
    EXPECT(e, ERR_NOTFOUND, OP(e, api_key_resolve, "k-alice", &kgot));
    OK(e, OP(e, api_key_resolve, "k-bob", &kgot));
    EXPECT(e, ERR_NOTFOUND, OP(e, invite_resolve, "i-alice", &igot));
    OK(e, OP(e, invite_resolve, "i-other", &igot));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_token_use, ENG_TOKEN_VERIFY, "h-verify", now, &t));
    struct eng_auth_event page[2];
    OK(e, OP(e, auth_event_list, 0, page, 2, &n));
    assert_int_equal(n, 0);
    OK(e, OP(e, member_list, &w.sb, mlist, 4, &n));
    assert_int_equal(n, 1);                   /* bob, still */
    OK(e, OP(e, api_key_list, &w.sb, kl, 4, &n));
    assert_int_equal(n, 1);
    OK(e, OP(e, user_get, w.ub.id, &u));
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_api_keys_per_org_and_mode(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_api_key k1, k2, k3, kb, dup, got, list[8];
    struct eng_scope sa_live;
    struct world w;
    size_t n;

    make_world(e, &w);
    sa_live = scope_of(&w.a, ENG_MODE_LIVE);
    k1 = key_rec(&w.a, ENG_MODE_TEST, "h1", 100);
    k2 = key_rec(&w.a, ENG_MODE_TEST, "h2", 200);
    k3 = key_rec(&w.a, ENG_MODE_LIVE, "h3", 300);
    kb = key_rec(&w.b, ENG_MODE_TEST, "hb", 400);
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, api_key_create, &w.sa, &k1));
    OK(e, OP(e, api_key_create, &w.sa, &k2));
    OK(e, OP(e, api_key_create, &sa_live, &k3));
    dup = key_rec(&w.a, ENG_MODE_TEST, "h1", 500);
    EXPECT(e, ERR_CONFLICT, OP(e, api_key_create, &w.sa, &dup));
    dup = key_rec(&w.a, 7, "h9", 500);
    EXPECT(e, ERR_INVAL, engine_api_key_create(e, &w.sa, &dup));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, &w.sb));
    dup = key_rec(&w.b, ENG_MODE_TEST, "h2", 500);  /* hashes are unique across orgs */
    EXPECT(e, ERR_CONFLICT, OP(e, api_key_create, &w.sb, &dup));
    OK(e, OP(e, api_key_create, &w.sb, &kb));
    OK(e, OP(e, api_key_list, &w.sb, list, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, kb.id);
    EXPECT(e, ERR_NOTFOUND, OP(e, api_key_revoke, &w.sb, k1.id, 600));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, api_key_resolve, "h3", &got));
    assert_memory_equal(&got, &k3, sizeof got);
    EXPECT(e, ERR_NOTFOUND, OP(e, api_key_resolve, "nope", &got));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, api_key_list, &w.sa, list, 8, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, k2.id);         /* newest first */
    assert_string_equal(list[1].id, k1.id);
    OK(e, OP(e, api_key_list, &w.sa, list, 1, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, k2.id);
    OK(e, OP(e, api_key_list, &sa_live, list, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, k3.id);
    OK(e, OP(e, api_key_revoke, &w.sa, k1.id, 700));
    OK(e, OP(e, api_key_revoke, &w.sa, k1.id, 800));    /* keeps the first time */
    EXPECT(e, ERR_NOTFOUND, OP(e, api_key_revoke, &w.sa, kb.id, 800));
    EXPECT(e, ERR_NOTFOUND, OP(e, api_key_revoke, &w.sa, "nope", 800));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, api_key_resolve, "h1", &got));
    assert_int_equal(got.revoked_at, 700);
    OK(e, OP(e, api_key_resolve, "hb", &got));
    assert_int_equal(got.revoked_at, 0);
    OK(e, engine_commit(e));
    engine_free(e);
    shm_destroy(r);
}

static void test_refresh_tokens_rotate_and_families_revoke(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_refresh t0, t1, t2, t3, other, dup, got;
    struct eng_user ghost = user_rec("ghost@x.test");
    struct world w;

    make_world(e, &w);
    t0 = refresh_rec(&w.a, &w.ua, "fam-1", "r0");
    t0.revoked_at = 300;                            /* already revoked on its own */
    t1 = refresh_rec(&w.a, &w.ua, "fam-1", "r1");
    t2 = refresh_rec(&w.a, &w.ua, "fam-1", "r2");
    other = refresh_rec(&w.a, &w.ua, "fam-2", "r9");
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_create, &w.sa, &t0));
    OK(e, OP(e, refresh_create, &w.sa, &t1));
    OK(e, OP(e, refresh_create, &w.sa, &other));
    dup = refresh_rec(&w.a, &w.ua, "fam-3", "r1");
    EXPECT(e, ERR_CONFLICT, OP(e, refresh_create, &w.sa, &dup));
    dup = refresh_rec(&w.a, &ghost, "fam-3", "r8");
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_create, &w.sa, &dup));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, refresh_resolve, "r1", &got));
    assert_memory_equal(&got, &t1, sizeof got);
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_resolve, "nope", &got));
    OK(e, engine_commit(e));

    /* Another org can neither use nor revoke A's tokens. */
    struct eng_rotation rot;
    join(e, &w, "member");
    OK(e, engine_begin(e, &w.sb));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate, &w.sb, t1.id, &t2, "sealed-r2", 400, 10, &rot));
    OK(e, OP(e, refresh_revoke_family, &w.sb, "fam-1", 400));   /* B has no such family */
    dup = refresh_rec(&w.a, &w.ua, "fam-1", "r7");  /* A's record under B's scope */
    EXPECT(e, ERR_INTERNAL, engine_refresh_create(e, &w.sb, &dup));
    OK(e, engine_commit(e));

    /* Rotation: t1 used, t2 made; a second use is refused. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_resolve, "r1", &got));
    assert_int_equal(got.revoked_at, 0);            /* B's revocation did not reach it */
    OK(e, OP(e, refresh_rotate, &w.sa, t1.id, &t2, "sealed-r2", 400, 10, &rot));
    assert_int_equal(rot.outcome, ENG_ROTATE_NEW);
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate, &w.sa, "nope", &t2, "sealed-r2", 401, 10, &rot));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_revoke_family, &w.sa, "fam-1", 500));
    OK(e, OP(e, refresh_revoke_family, &w.sa, "fam-404", 500));
    OK(e, OP(e, refresh_resolve, "r0", &got));
    assert_int_equal(got.revoked_at, 300);
    OK(e, OP(e, refresh_resolve, "r1", &got));
    assert_int_equal(got.revoked_at, 500);
    assert_int_equal(got.used_at, 400);
    OK(e, OP(e, refresh_resolve, "r2", &got));
    assert_int_equal(got.revoked_at, 500);
    assert_int_equal(got.used_at, 0);
    OK(e, OP(e, refresh_resolve, "r9", &got));  /* another family */
    assert_int_equal(got.revoked_at, 0);
    OK(e, engine_commit(e));

    /* A token made after the revocation is live until the next one. */
    t3 = refresh_rec(&w.a, &w.ua, "fam-1", "r3");
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_create, &w.sa, &t3));
    OK(e, OP(e, refresh_resolve, "r3", &got));
    assert_int_equal(got.revoked_at, 0);
    OK(e, OP(e, refresh_revoke_family, &w.sa, "fam-1", 900));
    OK(e, OP(e, refresh_resolve, "r3", &got));
    assert_int_equal(got.revoked_at, 900);
    OK(e, OP(e, refresh_resolve, "r2", &got));
    assert_int_equal(got.revoked_at, 500);
    OK(e, OP(e, refresh_revoke_family, &w.sa, "fam-1", 950));
    OK(e, OP(e, refresh_resolve, "r3", &got));
    assert_int_equal(got.revoked_at, 900);
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

/* The one-step rotation by hash (a token whose text names its scope): only
 * a live token of that org and mode, whose user is a member, rotates, and
 * its child takes the parent's family and user; every other case changes
 * nothing and is a miss (ERR_NOTFOUND), for the long way to tell apart. */
static void test_refresh_rotation_by_hash_rotates_only_a_live_token_of_the_scope(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_refresh t1 = {0}, expired, revoked, child, got;
    struct eng_rotation rot;
    struct eng_scope live_a;
    struct world w;

    make_world(e, &w);
    t1 = refresh_rec(&w.a, &w.ua, "fam-h", "h1");
    expired = refresh_rec(&w.a, &w.ua, "fam-x", "hx");
    expired.expires_at = 399;
    revoked = refresh_rec(&w.a, &w.ua, "fam-v", "hv");
    revoked.revoked_at = 300;
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_create, &w.sa, &t1));
    OK(e, OP(e, refresh_create, &w.sa, &expired));
    OK(e, OP(e, refresh_create, &w.sa, &revoked));
    OK(e, engine_commit(e));

    /* a child as the handler makes it: no family, no user */
    child = refresh_rec(&w.a, &w.ua, "", "h2");
    child.user_id[0] = '\0';
    child.created_at = 400;

    /* not a member yet: a miss, nothing changed */
    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &w.sa, "h1", &child, "sealed-h2", 400, &rot));
    assert_string_equal(child.family_id, "");
    assert_string_equal(child.user_id, "");
    OK(e, engine_commit(e));
    join(e, &w, "member");

    /* another org, another mode, an expired, a revoked, an unknown token: misses */
    live_a = w.sa;
    live_a.mode = ENG_MODE_LIVE;
    OK(e, engine_begin(e, &w.sb));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &w.sb, "h1", &child, "sealed-h2", 400, &rot));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, &live_a));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &live_a, "h1", &child, "sealed-h2", 400, &rot));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &w.sa, "hx", &child, "sealed-h2", 400, &rot));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &w.sa, "hv", &child, "sealed-h2", 400, &rot));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &w.sa, "nope", &child, "sealed-h2", 400, &rot));
    OK(e, OP(e, refresh_resolve, "h1", &got));
    assert_int_equal(got.used_at, 0);
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_resolve, "h2", &got));
    OK(e, engine_commit(e));

    /* the live token of the scope rotates: the child is its family's and user's */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_rotate_hash, &w.sa, "h1", &child, "sealed-h2", 400, &rot));
    assert_int_equal(rot.outcome, ENG_ROTATE_NEW);
    assert_string_equal(rot.role, "member");
    assert_string_equal(child.family_id, "fam-h");
    assert_string_equal(child.user_id, w.ua.id);
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, refresh_resolve, "h1", &got));
    assert_int_equal(got.used_at, 400);
    OK(e, OP(e, refresh_resolve, "h2", &got));
    assert_string_equal(got.family_id, "fam-h");
    assert_int_equal(got.used_at, 0);
    OK(e, engine_commit(e));

    /* used now: a second use is a miss (the long way replays or burns it) */
    struct eng_refresh again = refresh_rec(&w.a, &w.ua, "", "h3");
    again.user_id[0] = '\0';
    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_rotate_hash, &w.sa, "h1", &again, "sealed-h3", 401, &rot));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_resolve, "h3", &got));
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

/* Rotates parent at now with a fresh child named hash; returns the outcome. */
static int rotate(struct engine *e, const struct world *w, const struct eng_refresh *parent, const char *hash,
                  int64_t now, struct eng_refresh *child, struct eng_rotation *rot)
{
    char sealed[ENG_SEALED];

    *child = refresh_rec(&w->a, &w->ua, parent->family_id, hash);
    child->created_at = now;
    snprintf(sealed, sizeof sealed, "sealed:%s", hash);
    OK(e, engine_begin(e, &w->sa));
    OK(e, OP(e, refresh_rotate, &w->sa, parent->id, child, sealed, now, 10, rot));
    OK(e, engine_commit(e));
    return rot->outcome;
}

static void test_refresh_rotation_keeps_one_live_branch(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_refresh t0, c1, c2, c3, x, got, odd;
    struct eng_rotation rot;
    struct world w;

    make_world(e, &w);
    join(e, &w, "admin");
    t0 = refresh_rec(&w.a, &w.ua, "fam-r", "g0");
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_create, &w.sa, &t0));
    OK(e, engine_commit(e));

    /* The first use rotates; replays within the interval get that same child. */
    assert_int_equal(rotate(e, &w, &t0, "g1", 2000, &c1, &rot), ENG_ROTATE_NEW);
    assert_string_equal(rot.role, "admin");         /* read in the same step */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rotate(e, &w, &t0, "g1-again", 2005 + i, &x, &rot), ENG_ROTATE_REPLAY);
        assert_string_equal(rot.role, "admin");
        assert_string_equal(rot.child.id, c1.id);
        assert_string_equal(rot.child.token_hash, "g1");
        assert_string_equal(rot.sealed, "sealed:g1");
    }
    OK(e, engine_begin(e, NULL));
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_resolve, "g1-again", &got));  /* no second branch stored */
    OK(e, OP(e, refresh_resolve, "g0", &got));
    assert_int_equal(got.used_at, 2000);                              /* replays do not move it */
    OK(e, engine_commit(e));

    /* A child of another family is refused and changes nothing. */
    odd = refresh_rec(&w.a, &w.ua, "fam-other", "odd");
    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_INVAL, OP(e, refresh_rotate, &w.sa, c1.id, &odd, "sealed:odd", 2010, 10, &rot));
    OK(e, engine_commit(e));

    /* The child rotates: its parent, now a grandparent, is reuse even within the interval. */
    assert_int_equal(rotate(e, &w, &c1, "g2", 2011, &c2, &rot), ENG_ROTATE_NEW);
    assert_int_equal(rotate(e, &w, &t0, "g0-late", 2012, &x, &rot), ENG_ROTATE_REUSE);
    assert_int_equal(rotate(e, &w, &c2, "g3", 2013, &c3, &rot), ENG_ROTATE_NEW);
    /* The parent after the interval is reuse too, and so is a replay of a child
     * whose own child has rotated. */
    assert_int_equal(rotate(e, &w, &c2, "g3-late", 2013 + 11, &x, &rot), ENG_ROTATE_REUSE);
    assert_int_equal(rotate(e, &w, &c1, "g2-late", 2014, &x, &rot), ENG_ROTATE_REUSE);

    /* A user who left the org rotates nothing, and the token stays as it was. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_remove, &w.sa, w.ua.id));
    OK(e, engine_commit(e));
    assert_int_equal(rotate(e, &w, &c3, "g4-gone", 2014, &x, &rot), ENG_ROTATE_NOT_MEMBER);
    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, refresh_resolve, c3.token_hash, &got));
    assert_int_equal(got.used_at, 0);
    EXPECT(e, ERR_NOTFOUND, OP(e, refresh_resolve, "g4-gone", &got));
    OK(e, engine_commit(e));
    join(e, &w, "admin");

    /* Once the family is revoked every token of it says so, and nothing replays. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_revoke_family, &w.sa, "fam-r", 2015));
    OK(e, engine_commit(e));
    assert_int_equal(rotate(e, &w, &c2, "g3-again", 2016, &x, &rot), ENG_ROTATE_REVOKED);
    assert_int_equal(rotate(e, &w, &c3, "g4", 2016, &x, &rot), ENG_ROTATE_REVOKED);
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

/* A replay served from a rolled-back rotation would be a child nobody stored. */
static void test_refresh_rotation_rolled_back_leaves_the_parent_live(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_refresh t0, c1, x;
    struct eng_rotation rot;
    struct world w;

    make_world(e, &w);
    join(e, &w, "member");
    t0 = refresh_rec(&w.a, &w.ua, "fam-rb", "b0");
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_create, &w.sa, &t0));
    OK(e, engine_commit(e));
    c1 = refresh_rec(&w.a, &w.ua, "fam-rb", "b1");
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_rotate, &w.sa, t0.id, &c1, "sealed:b1", 3000, 10, &rot));
    assert_int_equal(rot.outcome, ENG_ROTATE_NEW);
    engine_rollback(e);
    assert_int_equal(rotate(e, &w, &t0, "b1-second", 3001, &x, &rot), ENG_ROTATE_NEW);
    assert_int_equal(rotate(e, &w, &t0, "b1-third", 3002, &c1, &rot), ENG_ROTATE_REPLAY);
    assert_string_equal(rot.child.token_hash, "b1-second");
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_invites_resolve_and_are_used_once(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_invite inv, dup, got;
    struct world w;

    make_world(e, &w);
    inv = invite_rec(&w.a, "i1");
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, invite_create, &w.sa, &inv));
    dup = invite_rec(&w.a, "i1");
    EXPECT(e, ERR_CONFLICT, OP(e, invite_create, &w.sa, &dup));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, NULL));
    OK(e, OP(e, invite_resolve, "i1", &got));
    assert_memory_equal(&got, &inv, sizeof got);
    EXPECT(e, ERR_NOTFOUND, OP(e, invite_resolve, "i2", &got));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sb));
    EXPECT(e, ERR_NOTFOUND, OP(e, invite_mark_used, &w.sb, inv.id, 100));
    dup = invite_rec(&w.b, "i1");               /* unique across orgs */
    EXPECT(e, ERR_CONFLICT, OP(e, invite_create, &w.sb, &dup));
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, invite_mark_used, &w.sa, inv.id, 100));
    EXPECT(e, ERR_CONFLICT, OP(e, invite_mark_used, &w.sa, inv.id, 200));
    EXPECT(e, ERR_NOTFOUND, OP(e, invite_mark_used, &w.sa, "nope", 200));
    OK(e, OP(e, invite_resolve, "i1", &got));
    assert_int_equal(got.used_at, 100);
    OK(e, engine_commit(e));
    engine_free(e);
    shm_destroy(r);
}

static void test_audit_newest_first_paged_by_before_id(void **state)
{
    enum { N = 25, NB = 5, PAGE = 10 };
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    char ids[N][ENG_ID], bids[NB][ENG_ID], before[ENG_ID], after[ENG_ID], latest[ENG_ID];
    struct eng_audit a, list[PAGE];
    int order[N];
    struct world w;
    size_t n, seen = 0;

    make_world(e, &w);
    new_id(before);
    for (int i = 0; i < N; i++) {
        new_id(ids[i]);
        order[i] = i;
    }
    for (int i = 0; i < NB; i++)
        new_id(bids[i]);
    new_id(after);
    new_id(latest);
    /* Appended out of id order, as workers racing within a millisecond would. */
    srand(7);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    OK(e, engine_begin(e, &w.sa));
    for (int i = 0; i < N; i++) {
        a = audit_rec(&w.a, ids[order[i]], "keys.create");
        OK(e, OP(e, audit_append, &w.sa, &a));
    }
    a = audit_rec(&w.a, ids[3], "dup");
    EXPECT(e, ERR_CONFLICT, OP(e, audit_append, &w.sa, &a));
    a = audit_rec(&w.a, "not-a-uuid", "bad");
    EXPECT(e, ERR_INVAL, engine_audit_append(e, &w.sa, &a));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, &w.sb));
    for (int i = 0; i < NB; i++) {
        a = audit_rec(&w.b, bids[i], "auth.login");
        OK(e, OP(e, audit_append, &w.sb, &a));
    }
    OK(e, engine_commit(e));

    /* Pages of A: newest first, each starting below the last id of the one before. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, audit_list, &w.sa, NULL, list, PAGE, &n));
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(list[i].id, ids[N - 1 - seen]);
            assert_string_equal(list[i].org_id, w.a.id);
            seen++;
        }
        if (n < PAGE)
            break;
        memcpy(after, list[n - 1].id, sizeof after);
        OK(e, OP(e, audit_list, &w.sa, after, list, PAGE, &n));
    }
    assert_int_equal(seen, N);
    OK(e, OP(e, audit_list, &w.sa, ids[0], list, PAGE, &n));
    assert_int_equal(n, 0);
    OK(e, OP(e, audit_list, &w.sa, "", list, PAGE, &n));
    assert_int_equal(n, PAGE);
    assert_string_equal(list[0].id, ids[N - 1]);
    /* A cursor that is no entry of A still bounds: B's ids, made after all of A's. */
    OK(e, OP(e, audit_list, &w.sa, bids[0], list, PAGE, &n));
    assert_int_equal(n, PAGE);
    assert_string_equal(list[0].id, ids[N - 1]);
    OK(e, OP(e, audit_list, &w.sa, before, list, PAGE, &n));
    assert_int_equal(n, 0);
    OK(e, engine_commit(e));

    OK(e, engine_begin(e, &w.sb));
    OK(e, OP(e, audit_list, &w.sb, NULL, list, PAGE, &n));
    assert_int_equal(n, NB);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].id, bids[NB - 1 - i]);
    OK(e, OP(e, audit_list, &w.sb, latest, list, PAGE, &n));
    assert_int_equal(n, NB);
    OK(e, OP(e, audit_list, &w.sb, ids[N - 1], list, PAGE, &n));   /* A's id, older than B's */
    assert_int_equal(n, 0);
    a = audit_rec(&w.a, after, "cross");
    EXPECT(e, ERR_INTERNAL, engine_audit_append(e, &w.sb, &a));
    OK(e, engine_commit(e));
    engine_free(e);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_forked_child_writes_parent_reads(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_membership mb;
    struct eng_user got;
    struct world w;
    size_t n;
    pid_t pid;

    make_world(e, &w);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct engine *c = engine_mem_new(r, NULL);
        struct eng_membership m = member_rec(&w.a, &w.ub, "admin", 1);

        if (c == NULL || engine_begin(c, &w.sa) != 0 || OP(c, member_put, &w.sa, &m) != 0 ||
            OP(c, user_set_admin, w.ub.id, true) != 0 || engine_commit(c) != 0)
            _exit(1);
        engine_free(c);
        _exit(0);
    }
    unit_wait_success(pid);

    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_get, &w.sa, w.ub.id, &mb));
    assert_string_equal(mb.role, "admin");
    OK(e, OP(e, user_get, w.ub.id, &got));
    assert_true(got.is_platform_admin);
    OK(e, OP(e, member_list, &w.sa, &mb, 1, &n));
    assert_int_equal(n, 1);
    OK(e, engine_commit(e));
    engine_free(e);
    shm_destroy(r);
}

static void test_child_killed_inside_a_unit_of_work_leaves_nothing(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, BIG_REGION);
    struct eng_api_key key, gotk;
    struct eng_membership mb;
    struct eng_audit a, list[4];
    struct eng_user extra = user_rec("carol@acme.test"), got;
    struct eng_role ro;
    struct shm_stats st0, st;
    char audit_id[ENG_ID];
    struct world w;
    int fds[2];
    size_t n;
    pid_t pid;

    make_world(e, &w);
    key = key_rec(&w.a, ENG_MODE_TEST, "hk", 100);
    new_id(audit_id);
    OK(e, engine_begin(e, &w.sa));
    mb = member_rec(&w.a, &w.ua, "owner", 1);
    OK(e, OP(e, member_put, &w.sa, &mb));
    OK(e, OP(e, api_key_create, &w.sa, &key));
    a = audit_rec(&w.a, audit_id, "keys.create");
    OK(e, OP(e, audit_append, &w.sa, &a));
    OK(e, engine_commit(e));
    assert_int_equal(shm_lock(r), 0);
    shm_stats(r, &st0);
    shm_unlock(r);

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct engine *ce = engine_mem_new(r, NULL);
        struct eng_membership m1 = member_rec(&w.a, &extra, "member", 2);
        struct eng_membership m2 = member_rec(&w.a, &w.ua, "viewer", 3);
        struct eng_role cr = role_rec(&w.a, "support", 3);
        struct eng_org co = org_rec("initech");
        char cid[ENG_ID];

        close(fds[0]);
        if (ce == NULL || engine_begin(ce, &w.sa) != 0 || OP(ce, user_create, &extra) != 0 ||
            OP(ce, member_put, &w.sa, &m1) != 0 || OP(ce, member_put, &w.sa, &m2) != 0 ||
            OP(ce, role_put, &w.sa, &cr, true) != 0 || OP(ce, api_key_revoke, &w.sa, key.id, 500) != 0 ||
            OP(ce, user_set_password, w.ua.id, "$changed") != 0 || OP(ce, org_create, &co) != 0)
            _exit(1);
        for (int i = 0; i < 50; i++) {
            struct eng_audit ca;

            if (uuid_v7(cid) != 0)
                _exit(1);
            ca = audit_rec(&w.a, cid, "child");
            if (OP(ce, audit_append, &w.sa, &ca) != 0)
                _exit(1);
        }
        unit_child_ready(fds[1]);
    }
    unit_kill_when_ready(pid, fds);

    OK(e, engine_begin(e, &w.sa));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_get, extra.id, &got));
    EXPECT(e, ERR_NOTFOUND, OP(e, user_by_email, extra.email_hmac, &got));
    OK(e, OP(e, user_get, w.ua.id, &got));
    assert_string_equal(got.password_hash, w.ua.password_hash);
    OK(e, OP(e, member_get, &w.sa, w.ua.id, &mb));
    assert_string_equal(mb.role, "owner");
    OK(e, OP(e, member_list, &w.sa, &mb, 1, &n));
    assert_int_equal(n, 1);
    EXPECT(e, ERR_NOTFOUND, OP(e, role_get, &w.sa, "support", &ro));
    OK(e, OP(e, api_key_resolve, "hk", &gotk));
    assert_int_equal(gotk.revoked_at, 0);
    OK(e, OP(e, audit_list, &w.sa, NULL, list, 4, &n));
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, audit_id);
    OK(e, engine_commit(e));

    /* The slug the child took is free again, and the region is whole. */
    OK(e, engine_begin(e, NULL));
    {
        struct eng_org again = org_rec("initech");

        OK(e, OP(e, org_create, &again));
    }
    OK(e, engine_commit(e));
    assert_int_equal(shm_lock(r), 0);
    shm_stats(r, &st);
    shm_unlock(r);
    assert_int_equal(st.recoveries, st0.recoveries + 1);
    unit_region_check(r);
    engine_free(e);
    shm_destroy(r);
}

/* Appends up to max audit entries; the first failure's code, or 0. */
static int append_many(struct engine *e, const struct world *w, int max, int *done)
{
    char id[ENG_ID];

    for (int i = 0; i < max; i++) {
        struct eng_audit a;
        int rc;

        new_id(id);
        a = audit_rec(&w->a, id, "fill");
        if ((rc = OP(e, audit_append, &w->sa, &a)) != 0)
            return rc;
        (*done)++;
    }
    return 0;
}

static size_t audit_count(struct engine *e, const struct world *w)
{
    struct eng_audit page[64];
    char before[ENG_ID] = "";
    size_t total = 0, n;

    OK(e, engine_begin(e, &w->sa));
    do {
        OK(e, OP(e, audit_list, &w->sa, before, page, 64, &n));
        total += n;
        if (n > 0)
            memcpy(before, page[n - 1].id, sizeof before);
    } while (n == 64);
    OK(e, engine_commit(e));
    return total;
}

static void test_full_region_fails_with_nospace_and_keeps_committed_data(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, SHM_MIN_BYTES);
    struct eng_membership mb, got;
    struct eng_user u;
    struct eng_org o;
    struct world w;
    int committed = 0, pending, rc = 0;

    make_world(e, &w);
    OK(e, engine_begin(e, &w.sa));
    mb = member_rec(&w.a, &w.ua, "owner", 1);
    OK(e, OP(e, member_put, &w.sa, &mb));
    OK(e, engine_commit(e));

    /* Small units of work until one finds the region full; it is rolled back. */
    while (rc == 0) {
        pending = 0;
        OK(e, engine_begin(e, &w.sa));
        rc = append_many(e, &w, 8, &pending);
        if (rc == 0) {
            OK(e, engine_commit(e));
            committed += pending;
        }
    }
    assert_int_equal(rc, ERR_NOSPACE);
    assert_true(committed > 10);
    mb = member_rec(&w.a, &w.ub, "member", 2);
    EXPECT(e, ERR_INTERNAL, OP(e, member_put, &w.sa, &mb));   /* spoiled: roll back */
    engine_rollback(e);
    unit_region_check(r);

    /* Everything committed before is intact and readable. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, org_get, &w.sa, &o));
    assert_string_equal(o.slug, "acme");
    OK(e, OP(e, user_get, w.ua.id, &u));
    OK(e, OP(e, member_get, &w.sa, w.ua.id, &got));
    assert_string_equal(got.role, "owner");
    EXPECT(e, ERR_NOTFOUND, OP(e, member_get, &w.sa, w.ub.id, &got));
    OK(e, engine_commit(e));
    assert_int_equal(audit_count(e, &w), (size_t)committed);

    /* Commit of a spoiled unit of work rolls it back and says why. */
    OK(e, engine_begin(e, &w.sa));
    pending = 0;
    rc = append_many(e, &w, 1000, &pending);
    assert_int_equal(rc, ERR_NOSPACE);
    EXPECT(e, ERR_NOSPACE, engine_commit(e));
    assert_int_equal(audit_count(e, &w), (size_t)committed);

    /* The engine still works: freeing space lets a write through. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_remove, &w.sa, w.ua.id));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, &w.sa));
    mb = member_rec(&w.a, &w.ub, "member", 2);
    OK(e, OP(e, member_put, &w.sa, &mb));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_get, &w.sa, w.ub.id, &got));
    OK(e, engine_commit(e));
    unit_region_check(r);
    engine_free(e);
    shm_destroy(r);
}

/* One unit of work bigger than the section's undo log: ERR_NOSPACE, and none
 * of it stays. */
static void test_unit_of_work_past_the_undo_log_rolls_back_whole(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, 4u << 20);
    struct world w;
    int done = 0, rc;

    make_world(e, &w);
    OK(e, engine_begin(e, &w.sa));
    rc = append_many(e, &w, 100000, &done);
    assert_int_equal(rc, ERR_NOSPACE);
    assert_true(done > 100);
    {
        struct shm_stats st;

        shm_stats(r, &st);      /* the lock is ours: the unit of work holds it */
        assert_true(st.free > 100 * sizeof(struct eng_audit));  /* the log ran out, not the heap */
    }
    engine_rollback(e);
    assert_int_equal(audit_count(e, &w), 0);
    OK(e, engine_begin(e, &w.sa));
    done = 0;
    assert_int_equal(append_many(e, &w, 50, &done), 0);
    OK(e, engine_commit(e));
    assert_int_equal(audit_count(e, &w), 50);
    unit_region_check(r);
    engine_free(e);
    shm_destroy(r);
}

/* Revoking a family with more tokens than the section's undo log has entries
 * still fits one unit of work: the tokens themselves are not written. */
static void test_revoking_a_huge_family_fits_one_unit_of_work(void **state)
{
    struct shm_region *r;
    struct engine *e = fresh(&r, 64u << 20);
    struct eng_refresh t, got;
    struct shm_stats st;
    char hash[ENG_HASH];
    struct world w;
    int tokens;

    make_world(e, &w);
    assert_int_equal(shm_lock(r), 0);
    shm_stats(r, &st);
    shm_unlock(r);
    tokens = (int)st.undo_cap + 1000;
    for (int i = 0; i < tokens; i++) {
        if (i % 500 == 0)
            OK(e, engine_begin(e, &w.sa));
        snprintf(hash, sizeof hash, "h%d", i);
        t = refresh_rec(&w.a, &w.ua, "long-session", hash);
        t.used_at = i + 1 < tokens ? 10 : 0;
        OK(e, OP(e, refresh_create, &w.sa, &t));
        if (i % 500 == 499 || i + 1 == tokens)
            OK(e, engine_commit(e));
    }
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, refresh_revoke_family, &w.sa, "long-session", 77));
    OK(e, engine_commit(e));
    OK(e, engine_begin(e, NULL));
    for (int i = 0; i < tokens; i += 997) {
        snprintf(hash, sizeof hash, "h%d", i);
        OK(e, OP(e, refresh_resolve, hash, &got));
        assert_int_equal(got.revoked_at, 77);
    }
    snprintf(hash, sizeof hash, "h%d", tokens - 1);
    OK(e, OP(e, refresh_resolve, hash, &got));
    assert_int_equal(got.revoked_at, 77);
    OK(e, engine_commit(e));
    engine_free(e);
    shm_destroy(r);
}

/* One unit of work of the kill test: a user, its membership, a refresh token
 * and an audit entry, all named after tag. */
static int whole_step(struct engine *e, const struct world *w, const char *tag)
{
    struct eng_user u = user_rec(tag);
    struct eng_membership mb = member_rec(&w->a, &u, "member", 7);
    struct eng_refresh t;
    struct eng_audit a;
    char id[ENG_ID], hash[ENG_HASH];

    snprintf(hash, sizeof hash, "rt:%s", tag);
    t = refresh_rec(&w->a, &u, u.id, hash);
    if (uuid_v7(id) != 0)
        return ERR_INTERNAL;
    a = audit_rec(&w->a, id, "members.add");
    snprintf(a.target, sizeof a.target, "%s", u.id);
    if (engine_begin(e, &w->sa) != 0)
        return ERR_INTERNAL;
    if (OP(e, user_create, &u) != 0 || OP(e, member_put, &w->sa, &mb) != 0 ||
        OP(e, refresh_create, &w->sa, &t) != 0 || OP(e, audit_append, &w->sa, &a) != 0) {
        engine_rollback(e);
        return ERR_INTERNAL;
    }
    return engine_commit(e);
}

static void test_worker_killed_at_random_points_leaves_whole_units(void **state)
{
    enum { ROUNDS = 40, MAXM = 20000 };
    struct shm_region *r;
    struct engine *e = fresh(&r, 32u << 20);
    struct eng_membership *list = calloc(MAXM, sizeof *list);
    struct eng_audit *audit = calloc(MAXM, sizeof *audit);
    struct shm_stats st0, st;
    struct world w;
    size_t n, na;
    int status, landed = 0;

    assert_non_null(list);
    assert_non_null(audit);
    make_world(e, &w);
    assert_int_equal(shm_lock(r), 0);
    shm_stats(r, &st0);
    shm_unlock(r);
    srand(11);
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            struct engine *ce = engine_mem_new(r, NULL);
            char tag[64];

            for (int i = 0; ce != NULL && i < 400; i++) {
                snprintf(tag, sizeof tag, "u%d-%d", round, i);
                if (whole_step(ce, &w, tag) != 0)
                    _exit(1);
            }
            _exit(0);
        }
        usleep((useconds_t)(rand() % 3000));
        kill(pid, SIGKILL);
        unit_wait_child(pid, &status);
        assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }

    /* Every membership has its user, token and audit entry; nothing half-made. */
    OK(e, engine_begin(e, &w.sa));
    OK(e, OP(e, member_list, &w.sa, list, MAXM, &n));
    OK(e, OP(e, audit_list, &w.sa, NULL, audit, MAXM, &na));
    assert_true(n > 0 && n < MAXM);
    assert_int_equal(na, n);
    for (size_t i = 0; i < n; i++) {
        struct eng_user u;
        struct eng_refresh t;
        char hash[ENG_HASH];

        OK(e, OP(e, user_get, list[i].user_id, &u));
        assert_int_equal(strncmp(u.email_hmac, "hmac:", 5), 0);
        snprintf(hash, sizeof hash, "rt:%s", u.email_hmac + 5);
        OK(e, OP(e, refresh_resolve, hash, &t));
        assert_string_equal(t.user_id, u.id);
    }
    for (size_t i = 0; i < na; i++) {
        struct eng_membership mb;

        OK(e, OP(e, member_get, &w.sa, audit[i].target, &mb));
    }
    OK(e, engine_commit(e));
    assert_int_equal(shm_lock(r), 0);
    shm_stats(r, &st);
    shm_unlock(r);
    landed = (int)(st.recoveries - st0.recoveries);
    print_message("    %zu units of work kept, %d kills landed inside one\n", n, landed);
    assert_true(landed > 0);
    unit_region_check(r);
    free(list);
    free(audit);
    engine_free(e);
    shm_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_outside_a_unit_of_work_are_internal_errors),
        cmocka_unit_test(test_prepare_is_idempotent_and_new_lays_out_lazily),
        cmocka_unit_test(test_users_unique_by_id_and_email),
        cmocka_unit_test(test_orgs_unique_by_slug_and_seen_only_by_their_scope),
        cmocka_unit_test(test_apps_unique_by_name_listed_by_name),
        cmocka_unit_test(test_members_are_per_org_and_upserted),
        cmocka_unit_test(test_roles_builtins_then_the_orgs_own),
        cmocka_unit_test(test_sessions_of_a_person),
        cmocka_unit_test(test_user_tokens_and_the_auth_outbox),
        cmocka_unit_test(test_user_erase_leaves_nothing),
        cmocka_unit_test(test_api_keys_per_org_and_mode),
        cmocka_unit_test(test_refresh_tokens_rotate_and_families_revoke),
        cmocka_unit_test(test_refresh_rotation_keeps_one_live_branch),
        cmocka_unit_test(test_refresh_rotation_by_hash_rotates_only_a_live_token_of_the_scope),
        cmocka_unit_test(test_refresh_rotation_rolled_back_leaves_the_parent_live),
        cmocka_unit_test(test_invites_resolve_and_are_used_once),
        cmocka_unit_test(test_audit_newest_first_paged_by_before_id),
        cmocka_unit_test(test_forked_child_writes_parent_reads),
        cmocka_unit_test(test_child_killed_inside_a_unit_of_work_leaves_nothing),
        cmocka_unit_test(test_worker_killed_at_random_points_leaves_whole_units),
        cmocka_unit_test(test_full_region_fails_with_nospace_and_keeps_committed_data),
        cmocka_unit_test(test_unit_of_work_past_the_undo_log_rolls_back_whole),
        cmocka_unit_test(test_revoking_a_huge_family_fits_one_unit_of_work),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
