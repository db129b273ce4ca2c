/* test_engine: the checked wrappers of lib/store/engine.h. One table of
 * malformed arguments (bad uuids, hashes, modes, list arguments, strings that
 * overrun their fields, names) runs through the wrappers of both engines: a
 * memory engine on a fresh region and a PostgreSQL engine on a server that
 * does not exist. Each case must be ERR_INVAL from both, with a reason that
 * names the engine and the argument, and must reach no store: the calls run
 * outside any unit of work, where an op that ran would answer ERR_INTERNAL,
 * and the PostgreSQL pools must never have tried to connect. The same calls
 * with the well-formed fixture do reach the op (the control), so each case
 * fails for its one spoiled argument and nothing else. */
#include "unit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/engine.h"
#include "store/mem/engine_mem.h"
#include "store/mem/shm.h"
#include "store/pg/engine_pg.h"

#define ORG "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define ORG2 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
#define UID "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60"
#define KID "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a61"
#define FAM "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a62"
#define TID "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a63"
#define HASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* Every argument a call takes, well-formed; a case spoils one of them. */
struct fx {
    struct eng_scope s;
    const struct eng_scope *sp;
    const char *id, *hash, *phc, *before, *service, *resource, *sealed;
    int64_t at;
    struct eng_user u;
    struct eng_org o;
    struct eng_membership m;
    struct eng_role r;
    struct eng_api_key k;
    struct eng_refresh t;
    struct eng_invite i;
    struct eng_audit a;
    struct eng_session ss;
    struct eng_user_token ut;
    struct eng_auth_event ev;
    const char *family, *except;
    struct eng_resource *def;
    struct eng_query q;
    const struct eng_query *qp;
    struct eng_record rec;
    struct eng_search sq;
    double vec[3];
    /* outputs */
    struct eng_user uo;
    struct eng_membership mo[4];
    struct eng_membership *mout;
    struct eng_audit ao[4];
    struct eng_session sso[4];
    struct eng_auth_event evo[4];
    char ids[4][ENG_ID];
    int64_t seq;
    struct eng_rotation rot;
    bool child_named;           /* c_rotate_hash: the child keeps the fixture's family and user */
    struct eng_record ro;
    struct eng_hit ho[2];
    int strategy;
    size_t max, n;
    size_t *np;
};

static void fx_init(struct fx *f)
{
    struct eng_resource *def = f->def;

    memset(f, 0, sizeof *f);
    f->def = def;
    memset(def, 0, sizeof *def);
    snprintf(f->s.org_id, sizeof f->s.org_id, ORG);
    f->s.mode = ENG_MODE_TEST;
    f->sp = &f->s;
    f->id = UID;
    f->hash = HASH;
    f->phc = "$scrypt$ln=17,r=8,p=1$salt$hash";
    f->before = "";
    f->service = "crm";
    f->resource = "contacts";
    f->sealed = "sealed-child";
    f->at = 1000;
    snprintf(f->u.id, ENG_ID, UID);
    snprintf(f->u.email_enc, sizeof f->u.email_enc, "sealed-email");
    snprintf(f->u.email_hmac, ENG_HASH, HASH);
    snprintf(f->o.id, ENG_ID, ORG);
    snprintf(f->o.slug, sizeof f->o.slug, "acme");
    snprintf(f->m.org_id, ENG_ID, ORG);
    snprintf(f->m.user_id, ENG_ID, UID);
    snprintf(f->m.role, sizeof f->m.role, "member");
    snprintf(f->r.org_id, ENG_ID, ORG);
    snprintf(f->r.name, sizeof f->r.name, "support");
    snprintf(f->r.perms[0], ENG_PERM, "records:read:*");
    f->r.nperms = 1;
    snprintf(f->k.id, ENG_ID, KID);
    snprintf(f->k.org_id, ENG_ID, ORG);
    snprintf(f->k.key_hash, ENG_HASH, HASH);
    snprintf(f->k.role, sizeof f->k.role, "member");
    snprintf(f->t.id, ENG_ID, TID);
    snprintf(f->t.family_id, ENG_ID, FAM);
    snprintf(f->t.user_id, ENG_ID, UID);
    snprintf(f->t.org_id, ENG_ID, ORG);
    snprintf(f->t.token_hash, ENG_HASH, HASH);
    snprintf(f->i.id, ENG_ID, KID);
    snprintf(f->i.org_id, ENG_ID, ORG);
    snprintf(f->i.role, sizeof f->i.role, "member");
    snprintf(f->i.token_hash, ENG_HASH, HASH);
    snprintf(f->a.id, ENG_ID, KID);
    snprintf(f->a.org_id, ENG_ID, ORG);
    snprintf(f->a.action, sizeof f->a.action, "keys.create");
    snprintf(f->ss.id, ENG_ID, FAM);
    snprintf(f->ss.org_id, ENG_ID, ORG);
    snprintf(f->ss.user_id, ENG_ID, UID);
    f->ss.mode = ENG_MODE_TEST;
    f->ss.created_at = f->ss.last_used_at = 1000;
    f->ss.expires_at = 2000;
    f->family = "";
    f->except = FAM;
    snprintf(f->ut.token_hash, ENG_HASH, HASH);
    f->ut.kind = ENG_TOKEN_RESET;
    snprintf(f->ut.user_id, ENG_ID, UID);
    f->ut.created_at = 1000;
    f->ut.expires_at = 2800;
    snprintf(f->ev.kind, sizeof f->ev.kind, "auth.password_reset_requested");
    snprintf(f->ev.user_id, ENG_ID, UID);
    snprintf(f->ev.sealed, sizeof f->ev.sealed, "sealed-payload");
    f->ev.created_at = 1000;
    f->ev.expires_at = 2800;
    snprintf(def->service, sizeof def->service, "crm");
    snprintf(def->name, sizeof def->name, "contacts");
    f->qp = &f->q;
    snprintf(f->sq.field, sizeof f->sq.field, "emb");
    f->sq.metric = ENG_METRIC_COSINE;
    f->vec[0] = 1;
    f->sq.vector = f->vec;
    f->sq.dim = 3;
    f->sq.k = 2;
    f->sq.where = &f->q;
    snprintf(f->rec.id, ENG_ID, TID);
    f->mout = f->mo;
    f->max = 4;
    f->np = &f->n;
}

/* ---- the calls ------------------------------------------------------------ */

static int c_begin(struct engine *e, struct fx *f) { return engine_begin(e, f->sp); }
static int c_user_create(struct engine *e, struct fx *f) { return engine_user_create(e, &f->u); }
static int c_user_get(struct engine *e, struct fx *f) { return engine_user_get(e, f->id, &f->uo); }
static int c_user_by_email(struct engine *e, struct fx *f) { return engine_user_by_email(e, f->hash, &f->uo); }
static int c_set_password(struct engine *e, struct fx *f) { return engine_user_set_password(e, f->id, f->phc); }
static int c_memberships(struct engine *e, struct fx *f)
{
    return engine_user_memberships(e, f->id, f->mout, f->max, f->np);
}
static int c_org_create(struct engine *e, struct fx *f) { return engine_org_create(e, &f->o); }
static int c_key_resolve(struct engine *e, struct fx *f)
{
    struct eng_api_key k;
    return engine_api_key_resolve(e, f->hash, &k);
}
static int c_refresh_resolve(struct engine *e, struct fx *f)
{
    struct eng_refresh t;
    return engine_refresh_resolve(e, f->hash, &t);
}
static int c_invite_resolve(struct engine *e, struct fx *f)
{
    struct eng_invite i;
    return engine_invite_resolve(e, f->hash, &i);
}
static int c_org_get(struct engine *e, struct fx *f)
{
    struct eng_org o;
    return engine_org_get(e, f->sp, &o);
}
static int c_member_put(struct engine *e, struct fx *f) { return engine_member_put(e, f->sp, &f->m); }
static int c_member_get(struct engine *e, struct fx *f) { return engine_member_get(e, f->sp, f->id, f->mo); }
static int c_member_list(struct engine *e, struct fx *f)
{
    return engine_member_list(e, f->sp, f->mout, f->max, f->np);
}
static int c_member_remove(struct engine *e, struct fx *f) { return engine_member_remove(e, f->sp, f->id); }
static int c_role_put(struct engine *e, struct fx *f) { return engine_role_put(e, f->sp, &f->r, true); }
static int c_role_delete(struct engine *e, struct fx *f) { return engine_role_delete(e, f->sp, f->r.name); }
static int c_session_create(struct engine *e, struct fx *f) { return engine_session_create(e, f->sp, &f->ss); }
static int c_session_list(struct engine *e, struct fx *f)
{
    return engine_session_list(e, f->id, f->at, f->sso, f->max, f->np);
}
static int c_session_revoke(struct engine *e, struct fx *f)
{
    return engine_session_revoke(e, f->id, "", f->family, f->except, f->at, f->ids, f->max, f->np);
}
static int c_token_create(struct engine *e, struct fx *f) { return engine_user_token_create(e, &f->ut); }
static int c_token_use(struct engine *e, struct fx *f)
{
    return engine_user_token_use(e, f->ut.kind, f->hash, f->at, &f->ut);
}
static int c_event_append(struct engine *e, struct fx *f) { return engine_auth_event_append(e, &f->ev, &f->seq); }
static int c_event_list(struct engine *e, struct fx *f) { return engine_auth_event_list(e, 0, f->evo, f->max, f->np); }
static int c_user_erase(struct engine *e, struct fx *f) { return engine_user_erase(e, f->id, f->at, f->ids, f->max, f->np); }
static int c_set_verified(struct engine *e, struct fx *f) { return engine_user_set_verified(e, f->id, f->at); }
static int c_key_create(struct engine *e, struct fx *f) { return engine_api_key_create(e, f->sp, &f->k); }
static int c_key_revoke(struct engine *e, struct fx *f) { return engine_api_key_revoke(e, f->sp, f->id, f->at); }
static int c_refresh_create(struct engine *e, struct fx *f) { return engine_refresh_create(e, f->sp, &f->t); }
static int c_rotate(struct engine *e, struct fx *f)
{
    return engine_refresh_rotate(e, f->sp, f->id, &f->t, f->sealed, f->at, 10, &f->rot);
}
/* The one-step rotation's child comes without family and user (the parent's) */
static int c_rotate_hash(struct engine *e, struct fx *f)
{
    if (!f->child_named)
        f->t.family_id[0] = f->t.user_id[0] = '\0';
    return engine_refresh_rotate_hash(e, f->sp, f->hash, &f->t, f->sealed, f->at, &f->rot);
}
static int c_revoke_family(struct engine *e, struct fx *f)
{
    return engine_refresh_revoke_family(e, f->sp, f->id, f->at);
}
static int c_invite_create(struct engine *e, struct fx *f) { return engine_invite_create(e, f->sp, &f->i); }
static int c_mark_used(struct engine *e, struct fx *f) { return engine_invite_mark_used(e, f->sp, f->id, f->at); }
static int c_audit_append(struct engine *e, struct fx *f) { return engine_audit_append(e, f->sp, &f->a); }
static int c_audit_list(struct engine *e, struct fx *f)
{
    return engine_audit_list(e, f->sp, f->before, f->ao, f->max, f->np);
}
static int c_resource_put(struct engine *e, struct fx *f)
{
    return engine_resource_put(e, f->sp, f->def, NULL, 0, f->at, NULL, NULL);
}
static int c_record_create(struct engine *e, struct fx *f)
{
    return engine_record_create(e, f->sp, f->service, f->resource, &f->rec);
}
static int c_record_get(struct engine *e, struct fx *f)
{
    return engine_record_get(e, f->sp, f->service, f->resource, f->id, f->at, &f->ro);
}
static int c_record_list(struct engine *e, struct fx *f)
{
    return engine_record_list(e, f->sp, f->service, f->resource, f->qp, &f->ro, 1, f->np);
}

static int c_record_search(struct engine *e, struct fx *f)
{
    return engine_record_search(e, f->sp, f->service, f->resource, &f->sq, f->ho, f->np, &f->strategy);
}

/* ---- the spoilers ----------------------------------------------------------- */

static const char UPPER[] = "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A60";
static const char NONHEX[] = "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz";
static const char LONGER[] = UID "0";
static const char HASH_UPPER[] = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
static const char HASH_SHORT[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0";
static const char HASH_LONG[] = HASH "0";
static const char HASH_NONHEX[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g";

static void id_empty(struct fx *f) { f->id = ""; }
static void id_x(struct fx *f) { f->id = "x"; }
static void id_nonhex(struct fx *f) { f->id = NONHEX; }
static void id_upper(struct fx *f) { f->id = UPPER; }
static void id_long(struct fx *f) { f->id = LONGER; }
static void id_null(struct fx *f) { f->id = NULL; }
static void hash_upper(struct fx *f) { f->hash = HASH_UPPER; }
static void hash_short(struct fx *f) { f->hash = HASH_SHORT; }
static void hash_long(struct fx *f) { f->hash = HASH_LONG; }
static void hash_nonhex(struct fx *f) { f->hash = HASH_NONHEX; }
static void hash_empty(struct fx *f) { f->hash = ""; }
static void hash_null(struct fx *f) { f->hash = NULL; }
static void scope_null(struct fx *f) { f->sp = NULL; }
static void scope_org_x(struct fx *f) { snprintf(f->s.org_id, ENG_ID, "x"); }
static void scope_org_upper(struct fx *f) { snprintf(f->s.org_id, ENG_ID, "%s", UPPER); }
static void scope_org_overrun(struct fx *f) { memset(f->s.org_id, 'a', sizeof f->s.org_id); }
static void scope_mode_2(struct fx *f) { f->s.mode = 2; }
static void scope_mode_neg(struct fx *f) { f->s.mode = -1; }
static void n_null(struct fx *f) { f->np = NULL; }
static void out_null(struct fx *f) { f->mout = NULL; }
static void user_id_empty(struct fx *f) { f->u.id[0] = '\0'; }
static void user_id_overrun(struct fx *f) { memset(f->u.id, '0', sizeof f->u.id); }
static void user_hmac_upper(struct fx *f) { snprintf(f->u.email_hmac, ENG_HASH, "%s", HASH_UPPER); }
static void user_hmac_overrun(struct fx *f) { memset(f->u.email_hmac, 'a', sizeof f->u.email_hmac); }
static void user_enc_overrun(struct fx *f) { memset(f->u.email_enc, 'a', sizeof f->u.email_enc); }
static void phc_long(struct fx *f)
{
    static char big[ENG_PHC + 1];
    memset(big, 'x', ENG_PHC);
    f->phc = big;
}
static void phc_empty(struct fx *f) { f->phc = ""; }
static void org_id_x(struct fx *f) { snprintf(f->o.id, ENG_ID, "x"); }
static void org_slug_empty(struct fx *f) { f->o.slug[0] = '\0'; }
static void org_slug_overrun(struct fx *f) { memset(f->o.slug, 'a', sizeof f->o.slug); }
static void org_name_overrun(struct fx *f) { memset(f->o.name, 'a', sizeof f->o.name); }
static void member_user_x(struct fx *f) { snprintf(f->m.user_id, ENG_ID, "u1"); }
static void member_role_empty(struct fx *f) { f->m.role[0] = '\0'; }
static void role_nperms(struct fx *f) { f->r.nperms = ENG_MAX_PERMS + 1; }
static void role_nperms_neg(struct fx *f) { f->r.nperms = -1; }
static void role_perm_empty(struct fx *f) { f->r.perms[0][0] = '\0'; }
static void role_name_overrun(struct fx *f) { memset(f->r.name, 'a', sizeof f->r.name); }
static void key_mode_2(struct fx *f) { f->k.mode = 2; }
static void key_mode_neg(struct fx *f) { f->k.mode = -1; }
static void key_id_x(struct fx *f) { snprintf(f->k.id, ENG_ID, "k1"); }
static void key_hash_bad(struct fx *f) { snprintf(f->k.key_hash, ENG_HASH, "h1"); }
static void key_creator_bad(struct fx *f) { snprintf(f->k.created_by, ENG_ID, "someone"); }
static void key_prefix_overrun(struct fx *f) { memset(f->k.prefix, 'a', sizeof f->k.prefix); }
static void at_zero(struct fx *f) { f->at = 0; }
static void at_neg(struct fx *f) { f->at = -5; }
static void token_family_x(struct fx *f) { snprintf(f->t.family_id, ENG_ID, "fam-1"); }
static void token_user_x(struct fx *f) { snprintf(f->t.user_id, ENG_ID, "u1"); }
static void token_hash_bad(struct fx *f) { snprintf(f->t.token_hash, ENG_HASH, "r1"); }
static void token_mode_2(struct fx *f) { f->t.mode = 2; }
static void token_used(struct fx *f) { f->t.used_at = 5; }
static void sealed_empty(struct fx *f) { f->sealed = ""; }
static void child_named(struct fx *f) { f->child_named = true; }
static void sealed_long(struct fx *f)
{
    static char big[ENG_SEALED + 1];
    memset(big, 's', ENG_SEALED);
    f->sealed = big;
}
static void invite_hash_bad(struct fx *f) { snprintf(f->i.token_hash, ENG_HASH, "%s", HASH_UPPER); }
static void invite_creator_bad(struct fx *f) { snprintf(f->i.created_by, ENG_ID, "x"); }
static void invite_email_bad(struct fx *f) { snprintf(f->i.email_hmac, ENG_HASH, "not-a-blind-index"); }
static void role_name_empty(struct fx *f) { f->r.name[0] = '\0'; }
static void session_mode_live(struct fx *f) { f->ss.mode = ENG_MODE_LIVE; }
static void session_ua_overrun(struct fx *f) { memset(f->ss.user_agent, 'a', sizeof f->ss.user_agent); }
static void session_family_x(struct fx *f) { f->family = "fam"; }
static void token_kind_9(struct fx *f) { f->ut.kind = 9; }
static void token_expired_made(struct fx *f) { f->ut.expires_at = f->ut.created_at; }
static void event_kind_empty(struct fx *f) { f->ev.kind[0] = '\0'; }
static void event_sealed_empty(struct fx *f) { f->ev.sealed[0] = '\0'; }
static void audit_id_bad(struct fx *f) { snprintf(f->a.id, ENG_ID, "not-a-uuid"); }
static void audit_action_empty(struct fx *f) { f->a.action[0] = '\0'; }
static void audit_meta_overrun(struct fx *f) { memset(f->a.meta, '{', sizeof f->a.meta); }
static void before_bad(struct fx *f) { f->before = "zzz"; }
static void def_name_bad(struct fx *f) { snprintf(f->def->name, sizeof f->def->name, "Contacts"); }
static void def_service_bad(struct fx *f) { f->def->service[0] = '\0'; }
static void def_nfields(struct fx *f) { f->def->nfields = ENG_MAX_FIELDS + 1; }
static void service_bad(struct fx *f) { f->service = "my-crm"; }
static void service_null(struct fx *f) { f->service = NULL; }
static void resource_bad(struct fx *f) { f->resource = "9lives"; }
static void resource_long(struct fx *f) { f->resource = "a123456789012345678901234567890123456789012345678901234567890123"; }
static void record_id_bad(struct fx *f) { snprintf(f->rec.id, ENG_ID, "r1"); }
static void query_null(struct fx *f) { f->qp = NULL; }
static void query_nfilters(struct fx *f) { f->q.nfilters = ENG_MAX_FILTERS + 1; }
static void search_k_zero(struct fx *f) { f->sq.k = 0; }
static void search_k_over(struct fx *f) { f->sq.k = ENG_SEARCH_K_MAX + 1; }
static void search_metric_bad(struct fx *f) { f->sq.metric = 0; }
static void search_dim_zero(struct fx *f) { f->sq.dim = 0; }
static void search_nan(struct fx *f) { f->vec[1] = NAN; }
static void search_inf(struct fx *f) { f->vec[2] = -INFINITY; }
static void search_zero_cosine(struct fx *f) { f->vec[0] = 0; }
static void search_field_empty(struct fx *f) { f->sq.field[0] = '\0'; }
static void search_vector_null(struct fx *f) { f->sq.vector = NULL; }
static void search_where_null(struct fx *f) { f->sq.where = NULL; }
static void search_nfilters(struct fx *f) { f->q.nfilters = ENG_MAX_FILTERS + 1; }
static void query_after_overrun(struct fx *f) { memset(f->q.after_id, 'a', sizeof f->q.after_id); }

struct bad_case {
    const char *what;                   /* the case, for the failure message */
    int (*call)(struct engine *, struct fx *);
    void (*spoil)(struct fx *);
    const char *arg;                    /* the errstr names it */
    int rc;
};

static const struct bad_case CASES[] = {
    /* ids: canonical lowercase uuids, wherever an id is an id */
    {"user_get id \"\"", c_user_get, id_empty, "id", ERR_INVAL},
    {"user_get id \"x\"", c_user_get, id_x, "id", ERR_INVAL},
    {"user_get id of 36 non-hex", c_user_get, id_nonhex, "id", ERR_INVAL},
    {"user_get id uppercase", c_user_get, id_upper, "id", ERR_INVAL},
    {"user_get id too long", c_user_get, id_long, "id", ERR_INVAL},
    {"user_get id NULL", c_user_get, id_null, "id", ERR_INVAL},
    {"user_set_password id \"x\"", c_set_password, id_x, "id", ERR_INVAL},
    {"user_memberships user_id uppercase", c_memberships, id_upper, "user_id", ERR_INVAL},
    {"member_get user_id \"x\"", c_member_get, id_x, "user_id", ERR_INVAL},
    {"member_remove user_id NULL", c_member_remove, id_null, "user_id", ERR_INVAL},
    {"api_key_revoke id non-hex", c_key_revoke, id_nonhex, "id", ERR_INVAL},
    {"refresh_rotate parent_id too long", c_rotate, id_long, "parent_id", ERR_INVAL},
    {"refresh_revoke_family family_id \"\"", c_revoke_family, id_empty, "family_id", ERR_INVAL},
    {"invite_mark_used id uppercase", c_mark_used, id_upper, "id", ERR_INVAL},
    {"record_get id \"x\"", c_record_get, id_x, "id", ERR_INVAL},
    {"user_create id \"\"", c_user_create, user_id_empty, "user id", ERR_INVAL},
    {"user_create id overruns its field", c_user_create, user_id_overrun, "user id", ERR_INVAL},
    {"org_create id \"x\"", c_org_create, org_id_x, "org id", ERR_INVAL},
    {"member_put user_id \"u1\"", c_member_put, member_user_x, "membership user_id", ERR_INVAL},
    {"api_key_create id \"k1\"", c_key_create, key_id_x, "api key id", ERR_INVAL},
    {"api_key_create created_by not a uuid", c_key_create, key_creator_bad, "api key created_by", ERR_INVAL},
    {"refresh_create family_id \"fam-1\"", c_refresh_create, token_family_x, "token family_id", ERR_INVAL},
    {"refresh_create user_id \"u1\"", c_refresh_create, token_user_x, "token user_id", ERR_INVAL},
    {"refresh_rotate child family_id", c_rotate, token_family_x, "child family_id", ERR_INVAL},
    {"invite_create created_by \"x\"", c_invite_create, invite_creator_bad, "invite created_by", ERR_INVAL},
    {"invite_create email_hmac not hex", c_invite_create, invite_email_bad, "invite email_hmac", ERR_INVAL},
    {"audit_append id not a uuid", c_audit_append, audit_id_bad, "audit entry id", ERR_INVAL},
    {"audit_list before_id not a uuid", c_audit_list, before_bad, "before_id", ERR_INVAL},
    {"record_create id \"r1\"", c_record_create, record_id_bad, "record id", ERR_INVAL},
    /* scopes */
    {"begin scope org \"x\"", c_begin, scope_org_x, "scope org_id", ERR_INVAL},
    {"begin scope mode 2", c_begin, scope_mode_2, "scope mode", ERR_INVAL},
    {"org_get scope NULL", c_org_get, scope_null, "scope", ERR_INVAL},
    {"org_get scope org \"x\"", c_org_get, scope_org_x, "scope org_id", ERR_INVAL},
    {"org_get scope org uppercase", c_org_get, scope_org_upper, "scope org_id", ERR_INVAL},
    {"org_get scope org overruns its field", c_org_get, scope_org_overrun, "scope org_id", ERR_INVAL},
    {"member_list scope mode 2", c_member_list, scope_mode_2, "scope mode", ERR_INVAL},
    {"member_list scope mode -1", c_member_list, scope_mode_neg, "scope mode", ERR_INVAL},
    {"record_get scope mode -1", c_record_get, scope_mode_neg, "scope mode", ERR_INVAL},
    /* hashes: 64 lowercase hex */
    {"user_by_email hmac uppercase", c_user_by_email, hash_upper, "email_hmac", ERR_INVAL},
    {"user_by_email hmac 63 digits", c_user_by_email, hash_short, "email_hmac", ERR_INVAL},
    {"user_by_email hmac 65 digits", c_user_by_email, hash_long, "email_hmac", ERR_INVAL},
    {"user_by_email hmac NULL", c_user_by_email, hash_null, "email_hmac", ERR_INVAL},
    {"api_key_resolve hash non-hex", c_key_resolve, hash_nonhex, "key_hash", ERR_INVAL},
    {"api_key_resolve hash \"\"", c_key_resolve, hash_empty, "key_hash", ERR_INVAL},
    {"refresh_resolve hash uppercase", c_refresh_resolve, hash_upper, "token_hash", ERR_INVAL},
    {"invite_resolve hash 63 digits", c_invite_resolve, hash_short, "token_hash", ERR_INVAL},
    {"user_create email_hmac uppercase", c_user_create, user_hmac_upper, "user email_hmac", ERR_INVAL},
    {"user_create email_hmac overruns", c_user_create, user_hmac_overrun, "user email_hmac", ERR_INVAL},
    {"api_key_create key_hash \"h1\"", c_key_create, key_hash_bad, "api key key_hash", ERR_INVAL},
    {"refresh_create token_hash \"r1\"", c_refresh_create, token_hash_bad, "token token_hash", ERR_INVAL},
    {"invite_create token_hash uppercase", c_invite_create, invite_hash_bad, "invite token_hash", ERR_INVAL},
    /* modes */
    {"api_key_create mode 2", c_key_create, key_mode_2, "api key mode", ERR_INVAL},
    {"api_key_create mode -1", c_key_create, key_mode_neg, "api key mode", ERR_INVAL},
    {"refresh_create mode 2", c_refresh_create, token_mode_2, "token mode", ERR_INVAL},
    /* list arguments */
    {"member_list n NULL", c_member_list, n_null, "n", ERR_INVAL},
    {"member_list out NULL, max 4", c_member_list, out_null, "out", ERR_INVAL},
    {"user_memberships n NULL", c_memberships, n_null, "n", ERR_INVAL},
    {"user_memberships out NULL, max 4", c_memberships, out_null, "out", ERR_INVAL},
    {"audit_list n NULL", c_audit_list, n_null, "n", ERR_INVAL},
    {"record_list n NULL", c_record_list, n_null, "n", ERR_INVAL},
    /* strings that overrun or leave empty their fields */
    {"user_create email_enc overruns", c_user_create, user_enc_overrun, "user email_enc", ERR_INVAL},
    {"user_set_password phc of ENG_PHC bytes", c_set_password, phc_long, "phc", ERR_INVAL},
    {"user_set_password phc \"\"", c_set_password, phc_empty, "phc", ERR_INVAL},
    {"org_create slug \"\"", c_org_create, org_slug_empty, "org slug", ERR_INVAL},
    {"org_create slug overruns", c_org_create, org_slug_overrun, "org slug", ERR_INVAL},
    {"org_create name overruns", c_org_create, org_name_overrun, "org name", ERR_INVAL},
    {"member_put role \"\"", c_member_put, member_role_empty, "membership role", ERR_INVAL},
    {"role_put name overruns", c_role_put, role_name_overrun, "role name", ERR_INVAL},
    {"role_put nperms over the cap", c_role_put, role_nperms, "role nperms", ERR_INVAL},
    {"role_put nperms -1", c_role_put, role_nperms_neg, "role nperms", ERR_INVAL},
    {"role_put empty permission", c_role_put, role_perm_empty, "role permission", ERR_INVAL},
    {"role_delete name overruns", c_role_delete, role_name_overrun, "role name", ERR_INVAL},
    {"role_delete name \"\"", c_role_delete, role_name_empty, "role name", ERR_INVAL},
    {"session_create mode not the scope's", c_session_create, session_mode_live, "session mode", ERR_INVAL},
    {"session_create user_agent overruns", c_session_create, session_ua_overrun, "session user_agent", ERR_INVAL},
    {"session_list user_id \"x\"", c_session_list, id_x, "user_id", ERR_INVAL},
    {"session_list n NULL", c_session_list, n_null, "n", ERR_INVAL},
    {"session_revoke family \"fam\"", c_session_revoke, session_family_x, "family", ERR_INVAL},
    {"session_revoke at 0", c_session_revoke, at_zero, "at", ERR_INVAL},
    {"user_token_create kind 9", c_token_create, token_kind_9, "kind", ERR_INVAL},
    {"user_token_create expiring as it is made", c_token_create, token_expired_made, "token times", ERR_INVAL},
    {"user_token_use hash \"h1\"", c_token_use, hash_short, "token_hash", ERR_INVAL},
    {"auth_event_append kind \"\"", c_event_append, event_kind_empty, "event kind", ERR_INVAL},
    {"auth_event_append sealed \"\"", c_event_append, event_sealed_empty, "event sealed", ERR_INVAL},
    {"auth_event_list n NULL", c_event_list, n_null, "n", ERR_INVAL},
    {"user_erase id \"x\"", c_user_erase, id_x, "id", ERR_INVAL},
    {"user_erase now 0", c_user_erase, at_zero, "now", ERR_INVAL},
    {"user_set_verified at 0", c_set_verified, at_zero, "at", ERR_INVAL},
    {"api_key_create prefix overruns", c_key_create, key_prefix_overrun, "api key prefix", ERR_INVAL},
    {"audit_append action \"\"", c_audit_append, audit_action_empty, "audit entry action", ERR_INVAL},
    {"audit_append meta overruns", c_audit_append, audit_meta_overrun, "audit entry meta", ERR_INVAL},
    {"refresh_rotate sealed \"\"", c_rotate, sealed_empty, "sealed", ERR_INVAL},
    {"refresh_rotate sealed of ENG_SEALED bytes", c_rotate, sealed_long, "sealed", ERR_INVAL},
    {"query after_id overruns", c_record_list, query_after_overrun, "query after_id", ERR_INVAL},
    /* times and states */
    {"api_key_revoke at 0", c_key_revoke, at_zero, "at", ERR_INVAL},
    {"refresh_revoke_family at -5", c_revoke_family, at_neg, "at", ERR_INVAL},
    {"invite_mark_used at 0", c_mark_used, at_zero, "at", ERR_INVAL},
    {"refresh_rotate now 0", c_rotate, at_zero, "now", ERR_INVAL},
    {"refresh_rotate child already used", c_rotate, token_used, "child", ERR_INVAL},
    {"refresh_rotate_hash token_hash short", c_rotate_hash, hash_short, "token_hash", ERR_INVAL},
    {"refresh_rotate_hash token_hash NULL", c_rotate_hash, hash_null, "token_hash", ERR_INVAL},
    {"refresh_rotate_hash child with a family and user", c_rotate_hash, child_named, "child", ERR_INVAL},
    {"refresh_rotate_hash child of mode 2", c_rotate_hash, token_mode_2, "child mode", ERR_INVAL},
    {"refresh_rotate_hash child hash \"r1\"", c_rotate_hash, token_hash_bad, "child token_hash", ERR_INVAL},
    {"refresh_rotate_hash child already used", c_rotate_hash, token_used, "child", ERR_INVAL},
    {"refresh_rotate_hash sealed \"\"", c_rotate_hash, sealed_empty, "sealed", ERR_INVAL},
    {"refresh_rotate_hash now 0", c_rotate_hash, at_zero, "now", ERR_INVAL},
    /* resources and records: service and resource names */
    {"record_create service \"my-crm\"", c_record_create, service_bad, "service", ERR_INVAL},
    {"record_get service NULL", c_record_get, service_null, "service", ERR_INVAL},
    {"record_get resource \"9lives\"", c_record_get, resource_bad, "resource", ERR_INVAL},
    {"record_list resource of 64 bytes", c_record_list, resource_long, "resource", ERR_INVAL},
    {"record_list query NULL", c_record_list, query_null, "query", ERR_INVAL},
    {"record_list nfilters over the cap", c_record_list, query_nfilters, "query nfilters", ERR_INVAL},
    /* vector search */
    {"record_search k 0", c_record_search, search_k_zero, "query k", ERR_INVAL},
    {"record_search k 1001", c_record_search, search_k_over, "query k", ERR_INVAL},
    {"record_search metric 0", c_record_search, search_metric_bad, "query metric", ERR_INVAL},
    {"record_search dim 0", c_record_search, search_dim_zero, "query dim", ERR_INVAL},
    {"record_search a NaN component", c_record_search, search_nan, "query vector", ERR_INVAL},
    {"record_search an infinite component", c_record_search, search_inf, "query vector", ERR_INVAL},
    {"record_search all zeros under cosine", c_record_search, search_zero_cosine, "query vector", ERR_INVAL},
    {"record_search field \"\"", c_record_search, search_field_empty, "query field", ERR_INVAL},
    {"record_search vector NULL", c_record_search, search_vector_null, "query vector", ERR_INVAL},
    {"record_search where NULL", c_record_search, search_where_null, "query where", ERR_INVAL},
    {"record_search nfilters over the cap", c_record_search, search_nfilters, "query nfilters", ERR_INVAL},
    {"record_search n NULL", c_record_search, n_null, "n", ERR_INVAL},
    {"record_search resource \"9lives\"", c_record_search, resource_bad, "resource", ERR_INVAL},
    {"resource_put def name \"Contacts\"", c_resource_put, def_name_bad, "def name", ERR_INVAL},
    {"resource_put def service \"\"", c_resource_put, def_service_bad, "def service", ERR_INVAL},
    {"resource_put nfields over the cap", c_resource_put, def_nfields, "def nfields", ERR_INVAL},
};

/* ---- the two engines ------------------------------------------------------------ */

struct two {
    struct shm_region *region;
    struct engine *mem, *pg;
    struct fx f;
};

static int setup(void **state)
{
    char err[128] = "";
    struct two *t = calloc(1, sizeof *t);
    const struct engine_pg_config pc = {
        .core_dsn = "host=/nonexistent port=1 dbname=x connect_timeout=1",
        .connection_limit = 2,
    };

    if (t == NULL || (t->f.def = calloc(1, sizeof *t->f.def)) == NULL)
        return -1;
    if ((t->region = shm_create(4u << 20, err)) == NULL || engine_mem_prepare(t->region, err) != 0 ||
        (t->mem = engine_mem_new(t->region, err)) == NULL || (t->pg = engine_pg_new(&pc, err)) == NULL) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct two *t = *state;

    engine_free(t->mem);
    engine_free(t->pg);
    shm_destroy(t->region);
    free(t->f.def);
    free(t);
    return 0;
}

/* No pool of e has tried to connect (the memory engine has none). */
static void assert_never_connected(struct engine *e)
{
    struct eng_pool_info p[4];
    size_t n = engine_pools(e, false, p, 4);

    for (size_t i = 0; i < n; i++) {
        if (p[i].used || p[i].connects != 0 || p[i].connect_errors != 0)
            fail_msg("%s pool %s: used %d, %llu connects, %llu errors", engine_name(e), p[i].name, p[i].used,
                     (unsigned long long)p[i].connects, (unsigned long long)p[i].connect_errors);
    }
}

static void test_the_engines_agree_on_every_malformed_argument(void **state)
{
    struct two *t = *state;
    struct engine *const engines[2] = {t->mem, t->pg};
    const char *const prefix[2] = {"memory: ", "postgres: "};

    for (size_t k = 0; k < 2; k++) {
        struct engine *e = engines[k];

        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
            const struct bad_case *bc = &CASES[i];
            int rc;

            fx_init(&t->f);
            bc->spoil(&t->f);
            e->errstr[0] = '\0';
            rc = bc->call(e, &t->f);
            if (rc != bc->rc)
                fail_msg("%s on %s: got %s, want %s (%s)", bc->what, engine_name(e), err_str(rc), err_str(bc->rc),
                         e->errstr);
            if (strncmp(e->errstr, prefix[k], strlen(prefix[k])) != 0 || strstr(e->errstr, bc->arg) == NULL)
                fail_msg("%s on %s: errstr \"%s\" should start \"%s\" and name \"%s\"", bc->what, engine_name(e),
                         e->errstr, prefix[k], bc->arg);
            if (t->f.np != NULL && t->f.n != 0)
                fail_msg("%s on %s: *n is %zu after a failure", bc->what, engine_name(e), t->f.n);
        }
        assert_never_connected(e);
    }
}

/* The control: each call of the table with the well-formed fixture passes the
 * checks and reaches its op, which outside a unit of work answers ERR_INTERNAL
 * (begin, the one call that may run there, opens a unit and is rolled back). */
static void test_well_formed_arguments_reach_the_op(void **state)
{
    struct two *t = *state;
    struct engine *const engines[2] = {t->mem, t->pg};

    for (size_t k = 0; k < 2; k++) {
        struct engine *e = engines[k];

        for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
            const struct bad_case *bc = &CASES[i];
            int want = bc->call == c_begin ? 0 : ERR_INTERNAL, rc;

            fx_init(&t->f);
            rc = bc->call(e, &t->f);
            engine_rollback(e);
            if (rc != want)
                fail_msg("%s, unspoiled, on %s: got %s, want %s (%s)", bc->what, engine_name(e), err_str(rc),
                         err_str(want), e->errstr);
        }
        assert_never_connected(e);
    }
}

/* A record of another org than its scope's is a handler bug on both. */
static void test_a_record_of_another_org_is_internal_on_both(void **state)
{
    struct two *t = *state;
    struct engine *const engines[2] = {t->mem, t->pg};

    for (size_t k = 0; k < 2; k++) {
        struct engine *e = engines[k];
        struct fx *f = &t->f;

        fx_init(f);
        snprintf(f->m.org_id, ENG_ID, ORG2);
        assert_int_equal(engine_member_put(e, f->sp, &f->m), ERR_INTERNAL);
        assert_non_null(strstr(e->errstr, "org_id"));
        fx_init(f);
        snprintf(f->a.org_id, ENG_ID, ORG2);
        assert_int_equal(engine_audit_append(e, f->sp, &f->a), ERR_INTERNAL);
        fx_init(f);
        snprintf(f->t.org_id, ENG_ID, ORG2);
        assert_int_equal(engine_refresh_create(e, f->sp, &f->t), ERR_INTERNAL);
        assert_never_connected(e);
    }
}

/* One formatter: every reason carries its engine's name, within errstr. */
static void test_engine_fail_prefixes_the_engine_name(void **state)
{
    struct two *t = *state;
    char longer[300];

    assert_int_equal(engine_fail(t->mem, ERR_CONFLICT, "x %d", 7), ERR_CONFLICT);
    assert_string_equal(t->mem->errstr, "memory: x 7");
    assert_int_equal(engine_fail(t->pg, ERR_NOTFOUND, "no such %s", "row"), ERR_NOTFOUND);
    assert_string_equal(t->pg->errstr, "postgres: no such row");
    memset(longer, 'y', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(engine_fail(t->pg, ERR_INVAL, "%s", longer), ERR_INVAL);
    assert_int_equal(strlen(t->pg->errstr), sizeof t->pg->errstr - 1);
    assert_string_equal(engine_name(t->mem), "memory");
    assert_string_equal(engine_name(t->pg), "postgres");
}

/* The optional ops have wrappers that work without them. */
static void test_wrappers_of_optional_ops(void **state)
{
    struct two *t = *state;
    struct eng_pool_info p[4];
    char report[256] = "junk";

    assert_int_equal(engine_pools(t->mem, true, p, 4), 0);
    assert_int_equal(engine_pools(t->pg, false, p, 4), 3);
    assert_int_equal(engine_maintain(t->mem, 1000, report), 0);
    assert_string_equal(report, "");
    assert_int_equal(engine_maintain(t->pg, 1000, NULL), ERR_INVAL);
    assert_never_connected(t->pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_engines_agree_on_every_malformed_argument, setup, teardown),
        cmocka_unit_test_setup_teardown(test_well_formed_arguments_reach_the_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_record_of_another_org_is_internal_on_both, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_fail_prefixes_the_engine_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrappers_of_optional_ops, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
