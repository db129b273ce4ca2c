/* The caller's organization: its record, members (invite, change role, remove)
 * and roles. The org always comes from the token, never from the URL or body;
 * another org's user id is simply not found. An org never loses its last owner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/text.h"
#include "security/rbac.h"
#include "core/uuid.h"

#define INVITE_TTL (7 * 86400)
#define MEMBERS_MAX 1000
#define ROLES_MAX 64

static const char *actor_of(const struct principal *p)
{
    return p->user_id[0] ? p->user_id : p->key_id;
}

/* A caller may hand out (or take away) a role only when its own permissions
 * cover every permission of that role: admins cannot make owners, and a
 * custom role that manages members cannot promote anyone, itself included,
 * past what it holds. 0, ERR_NOTFOUND (no such role) or ERR_FORBIDDEN. */
static int may_grant(struct worker *w, const struct principal *p, const char *role)
{
    struct eng_role ro;
    int rc = engine_role_get(w->engine, &p->scope, role, &ro);

    if (rc != 0)
        return rc;
    return rbac_covers(p->perms.perms, p->perms.nperms, ro.perms, ro.nperms) ? 0 : ERR_FORBIDDEN;
}

static int owners(struct worker *w, const struct principal *p, size_t *count)
{
    size_t n = 0;
    struct eng_membership *ms = malloc(sizeof *ms * MEMBERS_MAX);
    int rc;

    if (ms == NULL)
        return ERR_NOMEM;
    *count = 0;
    rc = engine_member_list(w->engine, &p->scope, ms, MEMBERS_MAX, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        *count += strcmp(ms[i].role, "owner") == 0;
    free(ms);
    return rc;
}

/* The org as the principal holds it (authn.c): no query. */
HANDLER(handle_orgs_current)
{
    const struct eng_org *o = &p->org;
    cJSON *root;

    (void)w;
    if ((root = http_own(r, cJSON_CreateObject())) == NULL)
        return ERR_NOMEM;
    cJSON_AddStringToObject(root, "id", o->id);
    cJSON_AddStringToObject(root, "name", o->name);
    cJSON_AddStringToObject(root, "slug", o->slug);
    cJSON_AddStringToObject(root, "plan", o->plan);
    json_add_time(root, "created_at", o->created_at);
    return respond_owned(r, 200, root);
}

HANDLER(handle_members_list)
{
    bool may_see_emails = rbac_allows(p->perms.perms, p->perms.nperms, "members:manage", "*");
    size_t n = 0;
    struct eng_membership *ms = arena_alloc(r->arena, sizeof *ms * MEMBERS_MAX);
    cJSON *data, *root = respond_list(r, &data);
    int rc;

    if (ms == NULL || root == NULL)
        return ERR_NOMEM;
    if ((rc = engine_member_list(w->engine, &p->scope, ms, MEMBERS_MAX, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        struct eng_user u;
        if (o == NULL || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            return ERR_NOMEM;
        }
        cJSON_AddStringToObject(o, "user_id", ms[i].user_id);
        cJSON_AddStringToObject(o, "role", ms[i].role);
        json_add_time(o, "created_at", ms[i].created_at);
        const char *email = NULL;
        /* data minimization: addresses only for those who manage members */
        if (may_see_emails && engine_user_get(w->engine, ms[i].user_id, &u) == 0)
            email = email_open(w, r, &u);
        if (email != NULL)
            cJSON_AddStringToObject(o, "email", email);
    }
    return respond_owned(r, 200, root);
}

/* POST {email, role}: a one-time token for that email only (its blind index
 * is kept, never the address). A new person signs up with it; someone who has
 * an account accepts it after logging in (POST /v1/auth/invites/accept). */
HANDLER(handle_members_invite)
{
    static const char *const allowed[] = {"email", "role", NULL};
    const char *unknown = NULL;
    struct eng_invite inv = {0};
    char email[256];
    uint8_t raw[24];
    char token[48];
    cJSON *d = NULL;
    int rc;

    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body {\"email\", \"role\"} is required");
    if (!json_only_keys(r->json, allowed, &unknown)) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown, "is not a known field");
        return respond_invalid(r, d);
    }
    const char *raw_email = json_get_str(r->json, "email");
    const char *want = json_get_str(r->json, "role");
    if (raw_email == NULL || email_normalize(raw_email, email, sizeof email) != 0) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "email", "must be the email address of the person invited");
        return respond_invalid(r, d);
    }
    if (cJSON_HasObjectItem(r->json, "role") && want == NULL) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "role", "must be a string");
        return respond_invalid(r, d);
    }
    if (want == NULL)
        want = "member";
    if (!text_ident_valid(want, TEXT_ROLE_MAX) || (rc = may_grant(w, p, want)) == ERR_NOTFOUND) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "role", "is not a role of this organization");
        return respond_invalid(r, d);
    }
    if (rc == ERR_FORBIDDEN)
        return respond_error(r, ERR_FORBIDDEN, "you cannot invite into a role with more than you hold");
    if (rc != 0)
        return rc;
    if ((rc = crypto_random(raw, sizeof raw)) != 0 ||
        (rc = crypto_b64url_encode(raw, sizeof raw, token, sizeof token, NULL)) != 0 ||
        (rc = uuid_v4(inv.id)) != 0 || (rc = crypto_blind_index(&w->ring, email, inv.email_hmac)) != 0)
        return rc;
    snprintf(inv.org_id, sizeof inv.org_id, "%s", p->scope.org_id);
    snprintf(inv.role, sizeof inv.role, "%s", want);
    token_sha256_hex(token, strlen(token), inv.token_hash);
    snprintf(inv.created_by, sizeof inv.created_by, "%s", actor_of(p));
    inv.expires_at = (int64_t)time(NULL) + INVITE_TTL;
    if ((rc = engine_invite_create(w->engine, &p->scope, &inv)) != 0 ||
        (rc = audit_record(w, &p->scope, actor_of(p), "members.invite", inv.id, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL)
        return ERR_NOMEM;
    cJSON_AddStringToObject(root, "invite_id", inv.id);
    cJSON_AddStringToObject(root, "invite_token", token); /* shown once */
    cJSON_AddStringToObject(root, "email", email);
    cJSON_AddStringToObject(root, "role", inv.role);
    json_add_time(root, "expires_at", inv.expires_at);
    return respond_owned(r, 201, root);
}

HANDLER(handle_members_update)
{
    static const char *const allowed[] = {"role", NULL};
    const char *uid = router_param(&r->match, "user_id"), *unknown = NULL;
    struct eng_membership m;
    size_t n;
    int rc;

    if (r->json == NULL || !cJSON_IsObject(r->json) || !json_only_keys(r->json, allowed, &unknown))
        return respond_error(r, ERR_INVAL, "a body {\"role\": …} is required");
    const char *want = json_get_str(r->json, "role");
    if (want == NULL || !text_ident_valid(want, TEXT_ROLE_MAX) || (rc = may_grant(w, p, want)) == ERR_NOTFOUND) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "role", "is not a role of this organization");
        return respond_invalid(r, d);
    }
    if (rc != 0 && rc != ERR_FORBIDDEN)
        return rc;
    int grant = rc;
    if (!uuid_valid(uid) || (rc = engine_member_get(w->engine, &p->scope, uid, &m)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such member");
    if (rc != 0)
        return rc;
    if (grant == ERR_FORBIDDEN || (rc = may_grant(w, p, m.role)) == ERR_FORBIDDEN)
        return respond_error(r, ERR_FORBIDDEN, "you cannot grant or take away more than you hold");
    if (rc != 0 && rc != ERR_NOTFOUND) /* a member whose custom role was deleted holds nothing */
        return rc;
    if (strcmp(m.role, "owner") == 0 && strcmp(want, "owner") != 0) {
        if ((rc = owners(w, p, &n)) != 0)
            return rc;
        if (n <= 1)
            return respond_error(r, ERR_CONFLICT, "the last owner cannot be demoted");
    }
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "from", m.role);
    cJSON_AddStringToObject(meta, "to", want);
    snprintf(m.role, sizeof m.role, "%s", want);
    rc = engine_member_put(w->engine, &p->scope, &m);
    if (rc == 0) {
        caching_touch_principal(w, p->scope.org_id);
        rc = audit_record(w, &p->scope, actor_of(p), "members.role", uid, meta);
    }
    cJSON_Delete(meta);
    if (rc != 0)
        return rc;
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL)
        return ERR_NOMEM;
    cJSON_AddStringToObject(root, "user_id", m.user_id);
    cJSON_AddStringToObject(root, "role", m.role);
    return respond_owned(r, 200, root);
}

HANDLER(handle_members_remove)
{
    const char *uid = router_param(&r->match, "user_id");
    struct eng_membership m;
    size_t n;
    int rc;

    if (!uuid_valid(uid) || (rc = engine_member_get(w->engine, &p->scope, uid, &m)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such member");
    if (rc != 0)
        return rc;
    if ((rc = may_grant(w, p, m.role)) == ERR_FORBIDDEN)
        return respond_error(r, ERR_FORBIDDEN, "you cannot remove a member who holds more than you");
    if (rc != 0 && rc != ERR_NOTFOUND)
        return rc;
    if (strcmp(m.role, "owner") == 0) {
        if ((rc = owners(w, p, &n)) != 0)
            return rc;
        if (n <= 1)
            return respond_error(r, ERR_CONFLICT, "the last owner cannot be removed");
    }
    if ((rc = engine_member_remove(w->engine, &p->scope, uid)) != 0)
        return rc;
    caching_touch_principal(w, p->scope.org_id);
    if ((rc = audit_record(w, &p->scope, actor_of(p), "members.remove", uid, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, cJSON_CreateObject());
    return root == NULL ? ERR_NOMEM : respond_owned(r, 204, root);
}

static cJSON *role_json(const struct eng_role *ro)
{
    cJSON *o = cJSON_CreateObject(), *perms;

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "name", ro->name);
    cJSON_AddBoolToObject(o, "builtin", ro->org_id[0] == '\0');
    if ((perms = cJSON_AddArrayToObject(o, "permissions")) != NULL)
        for (int i = 0; i < ro->nperms; i++)
            cJSON_AddItemToArray(perms, cJSON_CreateString(ro->perms[i]));
    return o;
}

HANDLER(handle_roles_list)
{
    size_t n = 0;
    struct eng_role *roles = arena_alloc(r->arena, sizeof *roles * ROLES_MAX);
    cJSON *data, *root = respond_list(r, &data);
    int rc;

    if (roles == NULL || root == NULL)
        return ERR_NOMEM;
    if ((rc = engine_role_list(w->engine, &p->scope, roles, ROLES_MAX, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, role_json(&roles[i]));
    return respond_owned(r, 200, root);
}

/* Fills ro->perms from the body's "permissions"; 0, or the 422 answered. */
static int role_perms(struct http_request *r, const cJSON *perms, struct eng_role *ro)
{
    cJSON *d, *perm;

    if (!cJSON_IsArray(perms) || cJSON_GetArraySize(perms) < 1 || cJSON_GetArraySize(perms) > ENG_MAX_PERMS) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "permissions", "must be an array of 1 to 32 permissions");
        return respond_invalid(r, d);
    }
    ro->nperms = 0;
    cJSON_ArrayForEach(perm, perms)
    {
        if (!cJSON_IsString(perm) || !rbac_valid(perm->valuestring)) {
            d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "permissions",
                                    "each is action:object, the action one of records:read, records:write, "
                                    "records:delete, members:manage, roles:manage, keys:manage, audit:read or *, "
                                    "the object *, service/* or service/resource (records:read:crm/contacts)");
            return respond_invalid(r, d);
        }
        /* schemas are every org's: the platform's admins shape them (DESIGN §8) */
        if (strncmp(perm->valuestring, "schema:", 7) == 0) {
            d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "permissions",
                                    "schema changes are not an org permission: platform admins make them");
            return respond_invalid(r, d);
        }
        snprintf(ro->perms[ro->nperms++], ENG_PERM, "%s", perm->valuestring);
    }
    return 0;
}

/* The org's own role named by the path, for a change: 0 with *ro filled, or
 * the answer given (404; 403 for a built-in, which every org shares). A role
 * that grants more than the caller holds is out of the caller's reach. */
static int own_role(struct worker *w, struct http_request *r, const struct principal *p, struct eng_role *ro)
{
    const char *name = router_param(&r->match, "name");
    int rc;

    if (name == NULL || !text_ident_valid(name, TEXT_ROLE_MAX) ||
        (rc = engine_role_get(w->engine, &p->scope, name, ro)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "this organization has no role of that name");
    if (rc != 0)
        return rc;
    if (ro->org_id[0] == '\0')
        return respond_error(r, ERR_FORBIDDEN, "built-in roles are the same for every organization and cannot "
                                               "be changed: define a role of your own instead");
    if (!rbac_covers(p->perms.perms, p->perms.nperms, ro->perms, ro->nperms))
        return respond_error(r, ERR_FORBIDDEN, "this role grants more than you hold");
    return 0;
}

HANDLER(handle_roles_create)
{
    static const char *const allowed[] = {"name", "permissions", NULL};
    const char *unknown = NULL;
    struct eng_role ro = {0};
    cJSON *d = NULL;
    int rc;

    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body is required");
    if (!json_only_keys(r->json, allowed, &unknown)) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown, "is not a known field");
        return respond_invalid(r, d);
    }
    const char *name = json_get_str(r->json, "name");
    if (name == NULL || !text_ident_valid(name, TEXT_ROLE_MAX)) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "name", "must match ^[a-z][a-z0-9_]{0,30}$");
        return respond_invalid(r, d);
    }
    if ((rc = role_perms(r, cJSON_GetObjectItemCaseSensitive(r->json, "permissions"), &ro)) != 0 ||
        r->status != 0)
        return rc;
    /* a role never grants more than its author holds */
    if (!rbac_covers(p->perms.perms, p->perms.nperms, ro.perms, ro.nperms))
        return respond_error(r, ERR_FORBIDDEN, "a role cannot grant more than you hold");
    if (engine_builtin_role(name) != NULL)
        return respond_error(r, ERR_CONFLICT, "a built-in role has that name");
    snprintf(ro.org_id, sizeof ro.org_id, "%s", p->scope.org_id);
    snprintf(ro.name, sizeof ro.name, "%s", name);
    rc = engine_role_put(w->engine, &p->scope, &ro, true);
    if (rc == ERR_CONFLICT)
        return respond_error(r, ERR_CONFLICT, "this organization already has a role of that name: PATCH "
                                              "/v1/roles/{name} changes its permissions");
    if (rc != 0)
        return rc;
    caching_touch_principal(w, p->scope.org_id); /* a member left holding a deleted role of that name */
    if ((rc = audit_record(w, &p->scope, actor_of(p), "roles.create", name, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, role_json(&ro));
    return root == NULL ? ERR_NOMEM : respond_owned(r, 201, root);
}

HANDLER(handle_roles_get)
{
    const char *name = router_param(&r->match, "name");
    struct eng_role ro;
    int rc;

    if (name == NULL || !text_ident_valid(name, TEXT_ROLE_MAX) ||
        (rc = engine_role_get(w->engine, &p->scope, name, &ro)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "this organization has no role of that name");
    if (rc != 0)
        return rc;
    cJSON *root = http_own(r, role_json(&ro));
    return root == NULL ? ERR_NOMEM : respond_owned(r, 200, root);
}

/* PATCH {permissions}: the whole new list (a role is its list). Members and
 * keys that hold the role act with it from their next request. */
HANDLER(handle_roles_update)
{
    static const char *const allowed[] = {"permissions", NULL};
    const char *unknown = NULL;
    struct eng_role ro;
    cJSON *d;
    int rc;

    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body is required");
    if (!json_only_keys(r->json, allowed, &unknown)) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown, strcmp(unknown, "name") == 0
                                                ? "cannot change: a role's name is how members hold it"
                                                : "is not a known field");
        return respond_invalid(r, d);
    }
    if ((rc = own_role(w, r, p, &ro)) != 0 || r->status != 0)
        return rc;
    if ((rc = role_perms(r, cJSON_GetObjectItemCaseSensitive(r->json, "permissions"), &ro)) != 0 ||
        r->status != 0)
        return rc;
    if (!rbac_covers(p->perms.perms, p->perms.nperms, ro.perms, ro.nperms))
        return respond_error(r, ERR_FORBIDDEN, "a role cannot grant more than you hold");
    if ((rc = engine_role_put(w->engine, &p->scope, &ro, false)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "this organization has no role of that name");
    if (rc != 0)
        return rc;
    caching_touch_principal(w, p->scope.org_id);
    if ((rc = audit_record(w, &p->scope, actor_of(p), "roles.update", ro.name, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, role_json(&ro));
    return root == NULL ? ERR_NOMEM : respond_owned(r, 200, root);
}

HANDLER(handle_roles_delete)
{
    struct eng_role ro;
    int rc;

    if ((rc = own_role(w, r, p, &ro)) != 0 || r->status != 0)
        return rc;
    rc = engine_role_delete(w->engine, &p->scope, ro.name);
    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "this organization has no role of that name");
    if (rc == ERR_CONFLICT)
        return respond_error(r, ERR_CONFLICT, "members, live API keys or open invites hold this role: give "
                                              "them another role (or revoke them) first");
    if (rc != 0)
        return rc;
    caching_touch_principal(w, p->scope.org_id);
    if ((rc = audit_record(w, &p->scope, actor_of(p), "roles.delete", ro.name, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, cJSON_CreateObject());
    return root == NULL ? ERR_NOMEM : respond_owned(r, 204, root);
}
