/* The Auth API (DESIGN §5): signup, login, refresh with rotation and reuse
 * detection, logout through the blacklist, me, JWKS and API keys.
 *
 * Password hashing (scrypt, ~100 ms) always runs outside the engine's unit of
 * work: on the memory engine that unit holds the fleet-wide lock. So signup
 * and login look up, hash or verify, then open a short unit to write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "security/rbac.h"
#include "core/uuid.h"

#define ORG_NAME_MAX 100
#define INVITE_TTL (7 * 86400)

/* Collects per-field problems for one 422. */
struct problems {
    cJSON *details;
};

static void problem(struct problems *pr, const char *field, const char *why)
{
    if (pr->details == NULL)
        pr->details = cJSON_CreateObject();
    if (pr->details != NULL && !cJSON_HasObjectItem(pr->details, field))
        cJSON_AddStringToObject(pr->details, field, why);
}

static int problems_send(struct http_request *r, struct problems *pr)
{
    if (pr->details == NULL)
        return ERR_NOMEM;
    return respond_invalid(r, pr->details);
}

/* A required string member: absent, not a string, or out of bounds goes into pr. */
static const char *need_str(const cJSON *body, const char *key, size_t min, size_t max,
                            struct problems *pr)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);

    if (v == NULL) {
        problem(pr, key, "is required");
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        problem(pr, key, "must be a string");
        return NULL;
    }
    size_t n = strlen(v->valuestring);
    if (n < min || n > max) {
        char msg[64];
        snprintf(msg, sizeof msg, "must be %zu to %zu characters", min, max);
        problem(pr, key, msg);
        return NULL;
    }
    return v->valuestring;
}

/* The body must be a JSON object with only the allowed keys. */
static int body_object(struct http_request *r, const char *const *allowed)
{
    const char *unknown = NULL;

    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body is required");
    if (!json_only_keys(r->json, allowed, &unknown)) {
        struct problems pr = {0};
        problem(&pr, unknown, "is not a known field");
        return problems_send(r, &pr);
    }
    return 0;
}

static cJSON *user_json(struct worker *w, struct http_request *r, const struct eng_user *u)
{
    cJSON *o = cJSON_CreateObject();
    const char *email = email_open(w, r, u);

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", u->id);
    if (email != NULL)
        cJSON_AddStringToObject(o, "email", email);
    else
        cJSON_AddNullToObject(o, "email");
    cJSON_AddBoolToObject(o, "is_platform_admin", u->is_platform_admin);
    cJSON_AddBoolToObject(o, "email_verified", u->email_verified_at != 0);
    json_add_time(o, "created_at", u->created_at);
    return o;
}

static cJSON *org_json(const struct eng_org *o)
{
    cJSON *j = cJSON_CreateObject();

    if (j == NULL)
        return NULL;
    cJSON_AddStringToObject(j, "id", o->id);
    cJSON_AddStringToObject(j, "name", o->name);
    cJSON_AddStringToObject(j, "slug", o->slug);
    cJSON_AddStringToObject(j, "plan", o->plan);
    cJSON_AddBoolToObject(j, "platform", o->platform);
    json_add_time(j, "created_at", o->created_at);
    return j;
}

/* "Acme Corp!" → "acme-corp-3f2a" : readable and unique enough; a clash is a retry. */
static void make_slug(const char *name, char out[ENG_SLUG])
{
    size_t o = 0;
    uint8_t rnd[2] = {0};

    for (const char *p = name; *p != '\0' && o < 40; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            out[o++] = c;
        else if (o > 0 && out[o - 1] != '-')
            out[o++] = '-';
    }
    while (o > 0 && out[o - 1] == '-')
        o--;
    if (crypto_random(rnd, sizeof rnd) != 0)
        rnd[0] = rnd[1] = 0;
    snprintf(out + o, ENG_SLUG - o, "%s%02x%02x", o ? "-" : "org-", rnd[0], rnd[1]);
}

HANDLER(handle_auth_signup)
{
    static const char *const allowed[] = {"email", "password", "org_name", "invite_token", NULL};
    struct problems pr = {0};
    char email[256];
    const char *pw, *org_name = NULL, *invite = NULL;
    struct eng_user u = {0};
    struct eng_org org = {0};
    struct eng_invite inv = {0};
    char *phc = NULL;
    int rc;

    if ((rc = body_object(r, allowed)) != 0 || r->status != 0)
        return rc;
    const char *raw_email = need_str(r->json, "email", 3, 254, &pr);
    pw = need_str(r->json, "password", PASSWORD_MIN, PASSWORD_MAX, &pr);
    if (raw_email != NULL && email_normalize(raw_email, email, sizeof email) != 0)
        problem(&pr, "email", "is not a valid email address");
    if (cJSON_HasObjectItem(r->json, "invite_token"))
        invite = need_str(r->json, "invite_token", 10, 128, &pr);
    else
        org_name = need_str(r->json, "org_name", 1, ORG_NAME_MAX, &pr);
    if (pr.details != NULL)
        return problems_send(r, &pr);

    /* the expensive part, before any lock */
    if ((rc = password_hash(pw, strlen(pw), &w->pwcost, &phc)) != 0)
        return rc;
    int64_t now = (int64_t)time(NULL);
    if ((rc = uuid_v4(u.id)) != 0 || (rc = email_seal(&w->ring, &u, email)) != 0)
        goto out;
    snprintf(u.password_hash, sizeof u.password_hash, "%s", phc);
    u.created_at = now;

    struct eng_scope s = {.mode = ENG_MODE_TEST};
    const char *role = "owner";
    if (invite != NULL) {
        char h[ENG_HASH];
        token_sha256_hex(invite, strlen(invite), h);
        if ((rc = engine_begin(w->engine, NULL)) != 0)
            goto out;
        rc = engine_invite_resolve(w->engine, h, &inv);
        engine_rollback(w->engine);
        if (rc == ERR_NOTFOUND || (rc == 0 && (inv.used_at != 0 || inv.expires_at < now))) {
            rc = respond_error(r, ERR_INVAL, "the invite is unknown, used or expired");
            goto out;
        }
        if (rc != 0)
            goto out;
        if (inv.email_hmac[0] != '\0' && strcmp(inv.email_hmac, u.email_hmac) != 0) {
            rc = respond_error(r, ERR_FORBIDDEN, "this invite is for another email address");
            goto out;
        }
        snprintf(s.org_id, sizeof s.org_id, "%s", inv.org_id);
        role = inv.role;
    } else {
        if ((rc = uuid_v4(org.id)) != 0)
            goto out;
        snprintf(org.name, sizeof org.name, "%s", org_name);
        make_slug(org_name, org.slug);
        snprintf(org.plan, sizeof org.plan, "free");
        org.created_at = now;
        snprintf(s.org_id, sizeof s.org_id, "%s", org.id);
    }
    /* one unit of work: user, org, membership, tokens and audit land together or not at all */
    if ((rc = engine_begin(w->engine, &s)) != 0)
        goto out;
    rc = engine_user_create(w->engine, &u);
    if (rc == ERR_CONFLICT) {
        engine_rollback(w->engine);
        rc = respond_error(r, ERR_CONFLICT, invite != NULL
                                                ? "an account with this email already exists: log in and "
                                                  "accept the invite with POST /v1/auth/invites/accept"
                                                : "an account with this email already exists");
        goto out;
    }
    if (rc != 0 || (invite == NULL && (rc = engine_org_create(w->engine, &org)) != 0) ||
        (rc = account_token_issue(w, &u, email, ENG_TOKEN_VERIFY)) != 0)
        goto fail;
    if (invite != NULL) {
        /* re-read inside the unit: a concurrent signup may have spent the invite */
        char h[ENG_HASH];
        token_sha256_hex(invite, strlen(invite), h);
        if ((rc = engine_invite_resolve(w->engine, h, &inv)) != 0)
            goto fail;
        if (inv.used_at != 0) {
            engine_rollback(w->engine);
            rc = respond_error(r, ERR_INVAL, "the invite is unknown, used or expired");
            goto out;
        }
    }
    struct eng_membership m = {0};
    snprintf(m.org_id, sizeof m.org_id, "%s", s.org_id);
    snprintf(m.user_id, sizeof m.user_id, "%s", u.id);
    snprintf(m.role, sizeof m.role, "%s", role);
    m.created_at = now;
    if ((rc = engine_member_put(w->engine, &s, &m)) != 0)
        goto fail;
    caching_touch_principal(w, s.org_id); /* a cached "not a member" of a returning one */
    if (invite != NULL && (rc = engine_invite_mark_used(w->engine, &s, inv.id, now)) != 0)
        goto fail;
    if ((rc = engine_org_get(w->engine, &s, &org)) != 0)
        goto fail;
    cJSON *root = http_own(r, cJSON_CreateObject()), *meta = NULL;
    if (root == NULL)
        goto nomem;
    cJSON_AddItemToObject(root, "user", user_json(w, r, &u));
    cJSON_AddItemToObject(root, "org", org_json(&org));
    cJSON_AddStringToObject(root, "role", role);
    if ((rc = token_issue(w, r, &s, u.id, role, root)) != 0)
        goto fail;
    if ((meta = cJSON_CreateObject()) == NULL)
        goto nomem;
    cJSON_AddStringToObject(meta, "via", invite != NULL ? "invite" : "signup");
    rc = audit_record(w, &s, u.id, "auth.signup", u.id, meta);
    cJSON_Delete(meta);
    if (rc != 0)
        goto fail;
    if ((rc = app_commit(w)) != 0)
        goto out;
    rc = respond_owned(r, 201, root);
    goto out;
nomem:
    rc = ERR_NOMEM;
fail:
    engine_rollback(w->engine);
out:
    free(phc);
    return rc;
}

/* Picks the org to log into: the one asked for (id or slug), else the first. */
static int pick_org(struct worker *w, const char *user_id, const char *want, struct eng_membership *out)
{
    struct eng_membership ms[64];
    size_t n = 0;
    int rc = engine_user_memberships(w->engine, user_id, ms, 64, &n);

    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (want == NULL) {
            *out = ms[i];
            return 0;
        }
        struct eng_scope s = {.mode = ENG_MODE_TEST};
        struct eng_org o;
        snprintf(s.org_id, sizeof s.org_id, "%s", ms[i].org_id);
        if (strcmp(ms[i].org_id, want) == 0 ||
            (engine_org_get(w->engine, &s, &o) == 0 && strcmp(o.slug, want) == 0)) {
            *out = ms[i];
            return 0;
        }
    }
    return ERR_NOTFOUND;
}

HANDLER(handle_auth_login)
{
    static const char *const allowed[] = {"email", "password", "org", NULL};
    struct problems pr = {0};
    char email[256], h[ENG_HASH];
    struct eng_user u;
    struct eng_membership m;
    struct login_throttle thr;
    bool rehash = false;
    int rc;

    if ((rc = body_object(r, allowed)) != 0 || r->status != 0)
        return rc;
    const char *raw_email = need_str(r->json, "email", 1, 254, &pr);
    const char *pw = need_str(r->json, "password", 1, PASSWORD_MAX, &pr);
    const char *org = cJSON_HasObjectItem(r->json, "org") ? need_str(r->json, "org", 1, 64, &pr) : NULL;
    if (pr.details != NULL)
        return problems_send(r, &pr);
    /* before the lookup and the scrypt: a throttled attempt costs neither, and
     * answers alike for a known and an unknown email */
    if ((rc = throttle_begin(w, r, raw_email, &thr)) != 0 || (rc = throttle_check(w, r, &thr)) != 0 ||
        r->status != 0)
        return rc;
    int known = email_normalize(raw_email, email, sizeof email) == 0 &&
                crypto_blind_index(&w->ring, email, h) == 0;

    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    if (known) {
        rc = engine_user_by_email(w->engine, h, &u);
        known = rc == 0;
        if (rc != 0 && rc != ERR_NOTFOUND) {
            engine_rollback(w->engine);
            return rc;
        }
    }
    engine_rollback(w->engine);
    /* an unknown email spends the same work as a wrong password */
    if (!known) {
        password_burn(&w->pwcost);
        throttle_failed(w, &thr);
        return respond_error(r, ERR_CREDENTIALS, "wrong email or password");
    }
    rc = password_verify(pw, strlen(pw), u.password_hash, &w->pwcost, &rehash);
    if (rc == ERR_UNAUTHORIZED)
        throttle_failed(w, &thr);   /* outside any unit of work: the kv has a lock of its own */
    char *phc = NULL;
    if (rc == 0 && rehash && password_hash(pw, strlen(pw), &w->pwcost, &phc) != 0)
        phc = NULL; /* a failed upgrade keeps the old hash; the login still stands */

    if ((rc != 0 && rc != ERR_UNAUTHORIZED) || engine_begin(w->engine, NULL) != 0) {
        free(phc);
        return rc != 0 && rc != ERR_UNAUTHORIZED ? rc : ERR_UNAVAILABLE;
    }
    int verified = rc == 0;
    if (verified && w->cfg->auth.require_verified_email && u.email_verified_at == 0) {
        engine_rollback(w->engine);
        free(phc);
        throttle_succeeded(w, &thr); /* the password was right */
        return respond_error(r, ERR_UNVERIFIED, "verify your email address first: follow the link sent when you "
                                                "signed up (POST /v1/auth/verify/resend sends another)");
    }
    rc = pick_org(w, u.id, org, &m);
    if (rc == 0 && phc != NULL)
        rc = engine_user_set_password(w->engine, u.id, phc);
    free(phc);
    if (rc == ERR_NOTFOUND) {
        engine_rollback(w->engine);
        return respond_error(r, verified ? ERR_FORBIDDEN : ERR_CREDENTIALS,
                            verified ? "no membership in that organization" : "wrong email or password");
    }
    if (rc != 0 || (rc = app_commit(w)) != 0)
        goto fail_nolock;

    struct eng_scope s = {.mode = ENG_MODE_TEST};
    snprintf(s.org_id, sizeof s.org_id, "%s", m.org_id);
    if ((rc = engine_begin(w->engine, &s)) != 0)
        return rc;
    if (!verified) {
        rc = audit_record(w, &s, u.id, "auth.login_failed", u.id, NULL);
        if (rc != 0 || (rc = app_commit(w)) != 0)
            goto fail;
        return respond_error(r, ERR_CREDENTIALS, "wrong email or password");
    }
    cJSON *root = http_own(r, cJSON_CreateObject());
    struct eng_org o;
    if (root == NULL) {
        rc = ERR_NOMEM;
        goto fail;
    }
    if ((rc = engine_org_get(w->engine, &s, &o)) != 0 ||
        (rc = token_issue(w, r, &s, u.id, m.role, root)) != 0 ||
        (rc = audit_record(w, &s, u.id, "auth.login", u.id, NULL)) != 0)
        goto fail;
    cJSON_AddItemToObject(root, "user", user_json(w, r, &u));
    cJSON_AddItemToObject(root, "org", org_json(&o));
    cJSON_AddStringToObject(root, "role", m.role);
    if ((rc = app_commit(w)) != 0)
        return rc;
    throttle_succeeded(w, &thr);
    return respond_owned(r, 200, root);
fail:
    engine_rollback(w->engine);
    return rc;
fail_nolock:
    engine_rollback(w->engine);
    return rc;
}

/* RFC 9700 reuse detection: a spent token came back outside what a replay may
 * be; the family is burnt, in the unit of work the caller opened, and audited. */
static int refresh_reused(struct worker *w, struct http_request *r, const struct eng_scope *s,
                          const struct eng_refresh *t, int64_t now)
{
    cJSON *meta = cJSON_CreateObject();
    int rc = ERR_NOMEM;

    if (meta != NULL && cJSON_AddStringToObject(meta, "family_id", t->family_id) != NULL &&
        cJSON_AddStringToObject(meta, "token_id", t->id) != NULL)
        rc = engine_refresh_revoke_family(w->engine, s, t->family_id, now);
    if (rc == 0)
        rc = audit_record(w, s, t->user_id, "auth.refresh_reuse", t->user_id, meta);
    cJSON_Delete(meta);
    if (rc != 0) {
        engine_rollback(w->engine);
        return rc;
    }
    if ((rc = app_commit(w)) != 0)
        return rc;
    log_msg(LOG_WARN, "refresh_reuse", "family %s revoked (request %s)", t->family_id, r->request_id);
    return respond_error(r, ERR_REVOKED, "the refresh token was already used");
}

/* The one step a live token whose text names its scope takes (tokens.c):
 * the child made and sealed before asking, the rotation found by the token's
 * hash in that scope, a pair. *answered false: the long way decides (a text
 * naming no scope, or a token of that scope not live: used — a replay or a
 * reuse —, revoked, expired, no longer a member's, or none at all). */
static int refresh_one_step(struct worker *w, struct http_request *r, const char *tok, const char *h,
                            int64_t now, bool *answered)
{
    struct eng_scope s;
    struct eng_refresh parent = {0}, child;
    struct eng_rotation rot;
    char text[TOKEN_REFRESH_TEXT], sealed[ENG_SEALED];
    int rc;

    *answered = false;
    if (token_refresh_scope(tok, &s) != 0)
        return 0;
    snprintf(parent.org_id, sizeof parent.org_id, "%s", s.org_id);
    snprintf(parent.token_hash, sizeof parent.token_hash, "%s", h);
    *answered = true;
    if ((rc = token_refresh_new(w->cfg, &s, "", "", now, &child, text)) != 0 ||
        (rc = token_refresh_seal(&w->ring, &parent, text, sealed)) != 0 ||
        (rc = engine_begin(w->engine, &s)) != 0)
        goto wipe;
    if ((rc = engine_refresh_rotate_hash(w->engine, &s, h, &child, sealed, now, &rot)) != 0) {
        engine_rollback(w->engine);
        *answered = rc != ERR_NOTFOUND;
        rc = *answered ? rc : 0;
        goto wipe;
    }
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || (rc = token_pair_json(w, &s, child.user_id, rot.role, child.family_id, text, now, root)) != 0) {
        engine_rollback(w->engine);
        rc = root == NULL ? ERR_NOMEM : rc;
    } else if ((rc = app_commit(w)) == 0)
        rc = respond_owned(r, 200, root);
wipe:
    OPENSSL_cleanse(text, sizeof text);
    return rc;
}

/* A family has at most one live token (DESIGN §3): the engine's refresh_rotate
 * decides, atomically against every other refresh of the same token, whether
 * this one rotates it (the child made here), replays it within the interval
 * (the child the first use made, opened from its seal) or reuses it. So the
 * child and its seal are made before asking, and thrown away unless used. */
HANDLER(handle_auth_refresh)
{
    static const char *const allowed[] = {"refresh_token", NULL};
    struct problems pr = {0};
    struct eng_refresh t, child;
    struct eng_rotation rot;
    char h[ENG_HASH], text[TOKEN_REFRESH_TEXT], sealed[ENG_SEALED];
    int rc;

    if ((rc = body_object(r, allowed)) != 0 || r->status != 0)
        return rc;
    const char *tok = need_str(r->json, "refresh_token", 1, 256, &pr);
    if (pr.details != NULL)
        return problems_send(r, &pr);
    token_sha256_hex(tok, strlen(tok), h);
    int64_t now = (int64_t)time(NULL);
    bool answered;
    if ((rc = refresh_one_step(w, r, tok, h, now, &answered)) != 0 || answered)
        return rc;
    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    rc = engine_refresh_resolve(w->engine, h, &t);
    engine_rollback(w->engine);
    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_UNAUTHORIZED, "unknown refresh token");
    if (rc != 0)
        return rc;

    struct eng_scope s = {.mode = t.mode};
    snprintf(s.org_id, sizeof s.org_id, "%s", t.org_id);
    if (t.revoked_at != 0)
        return respond_error(r, ERR_REVOKED, "the refresh token has been revoked");
    if (t.expires_at <= now)
        return respond_error(r, ERR_EXPIRED, "the refresh token has expired");
    if ((rc = token_refresh_new(w->cfg, &s, t.user_id, t.family_id, now, &child, text)) != 0 ||
        (rc = token_refresh_seal(&w->ring, &t, text, sealed)) != 0)
        goto wipe;
    if ((rc = engine_begin(w->engine, &s)) != 0)
        goto wipe;
    /* the membership is checked, and the role read, in the rotation's step */
    if ((rc = engine_refresh_rotate(w->engine, &s, t.id, &child, sealed, now, w->cfg->auth.refresh_reuse_interval,
                                    &rot)) != 0)
        goto fail;
    switch (rot.outcome) {
    case ENG_ROTATE_NEW:
        break;
    case ENG_ROTATE_NOT_MEMBER:
        engine_rollback(w->engine);
        rc = respond_error(r, ERR_UNAUTHORIZED, "no longer a member of this organization");
        goto wipe;
    case ENG_ROTATE_REPLAY:
        /* the same child as the first use got: a second branch never exists */
        if ((rc = token_refresh_open(&w->ring, &t, rot.sealed, text)) != 0) {
            log_msg(LOG_ERROR, "refresh_seal", "family %s: the kept child does not open (%s)", t.family_id,
                    err_str(rc));
            rc = ERR_INTERNAL;
            goto fail;
        }
        break;
    case ENG_ROTATE_REUSE:
        rc = refresh_reused(w, r, &s, &t, now);
        goto wipe;
    default: /* revoked since it was resolved: a logout or a reuse elsewhere */
        engine_rollback(w->engine);
        rc = respond_error(r, ERR_REVOKED, "the refresh token has been revoked");
        goto wipe;
    }
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL) {
        rc = ERR_NOMEM;
        goto fail;
    }
    if ((rc = token_pair_json(w, &s, t.user_id, rot.role, t.family_id, text, now, root)) != 0)
        goto fail;
    if ((rc = app_commit(w)) == 0)
        rc = respond_owned(r, 200, root);
    goto wipe;
fail:
    engine_rollback(w->engine);
wipe:
    OPENSSL_cleanse(text, sizeof text);
    return rc;
}

HANDLER(handle_auth_logout)
{
    char key[8 + ENG_HASH];
    int64_t ttl = p->token_exp - (int64_t)time(NULL);
    int rc;

    if (p->key_id[0] != '\0')
        return respond_error(r, ERR_INVAL, "API keys are revoked, not logged out");
    if (p->family_id[0] != '\0' &&
        (rc = engine_refresh_revoke_family(w->engine, &p->scope, p->family_id, (int64_t)time(NULL))) != 0)
        return rc;
    if ((rc = audit_record(w, &p->scope, p->user_id, "auth.logout", p->user_id, NULL)) != 0)
        return rc;
    /* the blacklist entry lives exactly as long as the token could; the
     * session's other access tokens (from its earlier refreshes) go too */
    snprintf(key, sizeof key, "bl:%s", p->token_sha);
    if ((ttl > 0 && (rc = kv_set(w->kv, key, "1", 1, (uint64_t)ttl * 1000)) != 0) ||
        (p->family_id[0] != '\0' && session_refuse_tokens(w, (const char (*)[ENG_ID])p->family_id, 1) != 0)) {
        log_msg(LOG_ERROR, "blacklist_unavailable", "%s", w->kv->errstr);
        return respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be written");
    }
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL)
        return ERR_NOMEM;
    return respond_owned(r, 204, root);
}

/* The caller, its org and its permissions, all as the principal holds them
 * (authn.c): no query. */
HANDLER(handle_auth_me)
{
    cJSON *root = http_own(r, cJSON_CreateObject()), *perms;

    if (root == NULL)
        return ERR_NOMEM;
    if (p->user_id[0] != '\0') {
        cJSON_AddItemToObject(root, "user", user_json(w, r, &p->user));
    } else {
        cJSON_AddNullToObject(root, "user");
        cJSON_AddStringToObject(root, "api_key_id", p->key_id);
    }
    cJSON_AddItemToObject(root, "org", org_json(&p->org));
    cJSON_AddStringToObject(root, "role", p->role);
    if ((perms = cJSON_AddArrayToObject(root, "permissions")) == NULL)
        return ERR_NOMEM;
    for (int i = 0; i < p->perms.nperms; i++)
        cJSON_AddItemToArray(perms, cJSON_CreateString(p->perms.perms[i]));
    cJSON_AddStringToObject(root, "mode", engine_mode_name(p->scope.mode));
    return respond_owned(r, 200, root);
}

HANDLER(handle_auth_jwks)
{
    if (http_add_header(r, "Cache-Control", "public, max-age=300") != 0)
        return ERR_NOMEM;
    return http_send(r, 200, "application/json; charset=utf-8", w->jwks, strlen(w->jwks));
}

static cJSON *key_json(const struct eng_api_key *k)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", k->id);
    cJSON_AddStringToObject(o, "name", k->name);
    cJSON_AddStringToObject(o, "prefix", k->prefix);
    cJSON_AddStringToObject(o, "mode", engine_mode_name(k->mode));
    cJSON_AddStringToObject(o, "role", k->role);
    cJSON_AddBoolToObject(o, "platform", k->platform);
    json_add_time(o, "created_at", k->created_at);
    if (k->revoked_at)
        json_add_time(o, "revoked_at", k->revoked_at);
    else
        cJSON_AddNullToObject(o, "revoked_at");
    return o;
}

/* The modes a caller manages keys of: a person (JWT) both, so one screen
 * shows and revokes test and live keys alike; an API key its own only, so a
 * test key (the one in a developer's laptop) never reaches live. */
static bool manages_mode(const struct principal *p, int mode)
{
    return p->key_id[0] == '\0' || p->scope.mode == mode;
}

HANDLER(handle_keys_create)
{
    static const char *const allowed[] = {"name", "role", "platform", "mode", NULL};
    struct problems pr = {0};
    struct eng_api_key k = {0};
    struct eng_role role;
    uint8_t raw[24];
    char secret[64];
    int rc;

    if ((rc = body_object(r, allowed)) != 0 || r->status != 0)
        return rc;
    const char *name = need_str(r->json, "name", 1, 100, &pr);
    const char *want = cJSON_HasObjectItem(r->json, "role") ? need_str(r->json, "role", 1, ENG_ROLE - 1, &pr) : p->role;
    const cJSON *platform = cJSON_GetObjectItemCaseSensitive(r->json, "platform");
    const cJSON *jmode = cJSON_GetObjectItemCaseSensitive(r->json, "mode");
    int mode = p->scope.mode;
    if (jmode != NULL && (!cJSON_IsString(jmode) || (mode = engine_mode_parse(jmode->valuestring)) < 0))
        problem(&pr, "mode", "must be \"test\" or \"live\"");
    if (want != NULL && engine_role_get(w->engine, &p->scope, want, &role) != 0)
        problem(&pr, "role", "is not a role of this organization");
    if (platform != NULL && !cJSON_IsBool(platform))
        problem(&pr, "platform", "must be a boolean");
    if (pr.details != NULL)
        return problems_send(r, &pr);
    if (!manages_mode(p, mode))
        return respond_error(r, ERR_FORBIDDEN, "an API key manages keys of its own mode only");
    /* a key that acts as a platform admin (schema changes) only from one */
    if (cJSON_IsTrue(platform) && !p->platform_admin)
        return respond_error(r, ERR_FORBIDDEN, "only platform admins make platform keys");
    /* a key acts with its role: it may carry no permission its creator lacks */
    if (!rbac_covers(p->perms.perms, p->perms.nperms, role.perms, role.nperms))
        return respond_error(r, ERR_FORBIDDEN, "a key cannot carry more than you hold");
    if ((rc = crypto_random(raw, sizeof raw)) != 0)
        return rc;
    int n = snprintf(secret, sizeof secret, "tk_%s_", engine_mode_name(mode));
    if ((rc = crypto_b64url_encode(raw, sizeof raw, secret + n, sizeof secret - (size_t)n, NULL)) != 0 ||
        (rc = uuid_v4(k.id)) != 0)
        return rc;
    snprintf(k.org_id, sizeof k.org_id, "%s", p->scope.org_id);
    k.mode = mode;
    snprintf(k.name, sizeof k.name, "%s", name);
    snprintf(k.prefix, sizeof k.prefix, "%.12s", secret);
    token_sha256_hex(secret, strlen(secret), k.key_hash);
    snprintf(k.role, sizeof k.role, "%s", want);
    /* the person behind it: a key made with a key belongs to that key's creator */
    snprintf(k.created_by, sizeof k.created_by, "%s", p->user_id[0] ? p->user_id : p->key_creator);
    k.platform = cJSON_IsTrue(platform);
    k.created_at = (int64_t)time(NULL);
    struct eng_scope ks = p->scope; /* the key's mode: keys live in core, of the org, not of a mode's data */
    ks.mode = mode;
    if ((rc = engine_api_key_create(w->engine, &ks, &k)) != 0 ||
        (rc = audit_record(w, &p->scope, p->user_id[0] ? p->user_id : p->key_id, "keys.create", k.id, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, key_json(&k));
    if (root == NULL)
        return ERR_NOMEM;
    cJSON_AddStringToObject(root, "key", secret); /* shown once, never stored */
    return respond_owned(r, 201, root);
}

static int key_newer(const void *a, const void *b)
{
    const struct eng_api_key *x = a, *y = b;

    if (x->created_at != y->created_at)
        return x->created_at > y->created_at ? -1 : 1;
    return strcmp(y->id, x->id);
}

/* GET /v1/auth/api-keys[?mode=test|live]: the keys of the modes the caller
 * manages (manages_mode), newest first, each with its mode. */
HANDLER(handle_keys_list)
{
    size_t max = 200, n = 0, got;
    struct eng_api_key *keys = arena_alloc(r->arena, sizeof *keys * max * 2);
    cJSON *data, *root = respond_list(r, &data);
    const char *only = query_get(&r->query, "mode");
    int want = only != NULL ? engine_mode_parse(only) : -1;
    int rc;

    if (keys == NULL || root == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < r->query.n; i++)
        if (strcmp(r->query.p[i].key, "mode") != 0)
            return respond_error(r, ERR_INVAL, arena_printf(r->arena, "unknown parameter %.64s", r->query.p[i].key));
    if (only != NULL && want < 0)
        return respond_error(r, ERR_INVAL, "mode must be test or live");
    for (int m = ENG_MODE_TEST; m <= ENG_MODE_LIVE; m++) {
        struct eng_scope s = p->scope;
        if ((want >= 0 && m != want) || !manages_mode(p, m))
            continue;
        s.mode = m;
        if ((rc = engine_api_key_list(w->engine, &s, keys + n, max, &got)) != 0)
            return rc;
        n += got;
    }
    qsort(keys, n, sizeof *keys, key_newer);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(data, key_json(&keys[i]));
    return respond_owned(r, 200, root);
}

HANDLER(handle_keys_revoke)
{
    const char *id = router_param(&r->match, "id");
    const char *actor = p->user_id[0] ? p->user_id : p->key_id;
    int rc;

    if (!uuid_valid(id))
        return respond_error(r, ERR_NOTFOUND, "no such API key");
    rc = engine_api_key_revoke(w->engine, &p->scope, id, (int64_t)time(NULL));
    if (rc == ERR_NOTFOUND && manages_mode(p, !p->scope.mode)) {
        struct eng_scope other = p->scope;  /* a person revokes a key of either mode */
        other.mode = !p->scope.mode;
        rc = engine_api_key_revoke(w->engine, &other, id, (int64_t)time(NULL));
    }
    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such API key");
    if (rc != 0)
        return rc;
    caching_touch_principal(w, p->scope.org_id);
    if ((rc = audit_record(w, &p->scope, actor, "keys.revoke", id, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, cJSON_CreateObject());
    return root == NULL ? ERR_NOMEM : respond_owned(r, 204, root);
}

/* POST /v1/auth/invites/accept {invite_token}: a person who has an account
 * joins the invite's org in its role, with their own access token; the
 * invite must name their email. The answer is a token pair for that org, as
 * a login to it would give. The request's unit of work is the caller's org's
 * and the membership is the invite's org's, so this handler ends the one and
 * opens the other (the dispatcher commits whichever unit is open; a rerun
 * after a serialization failure starts again from the caller). */
HANDLER(handle_invites_accept)
{
    static const char *const allowed[] = {"invite_token", NULL};
    struct problems pr = {0};
    struct eng_invite inv;
    struct eng_user u;
    struct eng_membership m = {0};
    struct eng_org o;
    char h[ENG_HASH];
    int64_t now = (int64_t)time(NULL);
    int rc;

    if (p->user_id[0] == '\0')
        return respond_error(r, ERR_FORBIDDEN, "an API key cannot accept an invite: log in as the person invited");
    if ((rc = body_object(r, allowed)) != 0 || r->status != 0)
        return rc;
    const char *token = need_str(r->json, "invite_token", 10, 128, &pr);
    if (pr.details != NULL)
        return problems_send(r, &pr);
    token_sha256_hex(token, strlen(token), h);
    if ((rc = engine_user_get(w->engine, p->user_id, &u)) != 0)
        return rc;
    rc = engine_invite_resolve(w->engine, h, &inv);
    if (rc == ERR_NOTFOUND || (rc == 0 && (inv.used_at != 0 || inv.expires_at < now)))
        return respond_error(r, ERR_INVAL, "the invite is unknown, used or expired");
    if (rc != 0)
        return rc;
    if (inv.email_hmac[0] != '\0' && strcmp(inv.email_hmac, u.email_hmac) != 0)
        return respond_error(r, ERR_FORBIDDEN, "this invite is for another email address");

    struct eng_scope s = {.mode = p->scope.mode};
    snprintf(s.org_id, sizeof s.org_id, "%s", inv.org_id);
    engine_rollback(w->engine); /* nothing written in the caller's org */
    if ((rc = engine_begin(w->engine, &s)) != 0)
        return rc;
    /* re-read inside the unit: a concurrent accept may have spent it */
    if ((rc = engine_invite_resolve(w->engine, h, &inv)) != 0)
        return rc;
    if (inv.used_at != 0)
        return respond_error(r, ERR_INVAL, "the invite is unknown, used or expired");
    rc = engine_member_get(w->engine, &s, u.id, &m);
    if (rc == 0)
        return respond_error(r, ERR_CONFLICT, "you are already a member of this organization");
    if (rc != ERR_NOTFOUND)
        return rc;
    snprintf(m.org_id, sizeof m.org_id, "%s", s.org_id);
    snprintf(m.user_id, sizeof m.user_id, "%s", u.id);
    snprintf(m.role, sizeof m.role, "%s", inv.role);
    m.created_at = now;
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL)
        return ERR_NOMEM;
    if ((rc = engine_member_put(w->engine, &s, &m)) != 0 ||
        (rc = engine_invite_mark_used(w->engine, &s, inv.id, now)) != 0 ||
        (rc = engine_org_get(w->engine, &s, &o)) != 0 ||
        (rc = token_issue(w, r, &s, u.id, m.role, root)) != 0 ||
        (rc = audit_record(w, &s, u.id, "members.join", u.id, NULL)) != 0)
        return rc;
    caching_touch_principal(w, s.org_id); /* a cached "not a member" */
    cJSON_AddItemToObject(root, "user", user_json(w, r, &u));
    cJSON_AddItemToObject(root, "org", org_json(&o));
    cJSON_AddStringToObject(root, "role", m.role);
    return respond_owned(r, 200, root);
}

/* POST /v1/auth/password {current_password, new_password}: a person changes
 * their password. The current one is checked as a login checks it (same
 * cost; failures count in the login throttle of the account), the new one
 * must meet the same policy as at signup and is hashed at the configured
 * cost. Every other session of the person, in every org, ends (its refresh
 * family revoked, its access tokens refused from the next request); the one
 * that asked goes on, since it just proved the password. Audited. */
HANDLER(handle_auth_password)
{
    static const char *const allowed[] = {"current_password", "new_password", NULL};
    struct problems pr = {0};
    struct login_throttle thr;
    struct eng_user u;
    char (*ids)[ENG_ID] = arena_alloc(r->arena, sizeof *ids * ENG_SESSIONS_MAX);
    char *phc = NULL;
    bool rehash = false;
    size_t n = 0;
    int rc;

    if (ids == NULL)
        return ERR_NOMEM;
    if (p->user_id[0] == '\0')
        return respond_error(r, ERR_FORBIDDEN, "an API key has no password: log in as the person");
    if ((rc = body_object(r, allowed)) != 0 || r->status != 0)
        return rc;
    const char *cur = need_str(r->json, "current_password", 1, PASSWORD_MAX, &pr);
    const char *pw = need_str(r->json, "new_password", PASSWORD_MIN, PASSWORD_MAX, &pr);
    if (pr.details != NULL)
        return problems_send(r, &pr);
    if ((rc = engine_user_get(w->engine, p->user_id, &u)) != 0)
        return rc;
    if ((rc = throttle_begin(w, r, p->user_id, &thr)) != 0 || (rc = throttle_check(w, r, &thr)) != 0 ||
        r->status != 0)
        return rc;
    /* the expensive part outside the unit of work: nothing is held meanwhile */
    engine_rollback(w->engine);
    rc = password_verify(cur, strlen(cur), u.password_hash, &w->pwcost, &rehash);
    if (rc == ERR_UNAUTHORIZED) {
        throttle_failed(w, &thr);
        return respond_error(r, ERR_FORBIDDEN, "the current password is wrong");
    }
    if (rc != 0 || (rc = password_hash(pw, strlen(pw), &w->pwcost, &phc)) != 0)
        return rc;
    int64_t now = (int64_t)time(NULL);
    if ((rc = engine_begin(w->engine, &p->scope)) != 0 ||
        (rc = engine_user_set_password(w->engine, u.id, phc)) != 0 ||
        (rc = engine_session_revoke(w->engine, u.id, "", "", p->family_id, now, ids, ENG_SESSIONS_MAX, &n)) != 0 ||
        (rc = audit_record(w, &p->scope, u.id, "auth.password_change", u.id, NULL)) != 0)
        goto out;
    throttle_succeeded(w, &thr);
    if (session_refuse_tokens(w, (const char (*)[ENG_ID])ids, n) != 0) {
        rc = respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be written");
        goto out;
    }
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || cJSON_AddNumberToObject(root, "sessions_ended", (double)n) == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    rc = respond_owned(r, 200, root);
out:
    free(phc);
    return rc;
}
