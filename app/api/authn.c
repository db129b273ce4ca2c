/* Authentication of a request (DESIGN §3 "Tokens, blacklist, modes"):
 * bearer → blacklist → API key or JWT → org membership and role → mode.
 * Every failure fails closed; the blacklist is checked before anything else
 * and a blacklist that cannot be asked is a 503, never a pass. The org's role
 * is read from storage on every request, so a permission change takes effect
 * on the next request whatever the token says. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/uuid.h"
#include "security/rbac.h"
#include "core/text.h"

#define BEARER_MAX 4096

/* The mode a JWT request asks for: header Tessera-Mode, test by default. */
static int requested_mode(struct http_request *r, int *mode)
{
    const char *h = http_param(r, "HTTP_TESSERA_MODE");

    *mode = h == NULL ? ENG_MODE_TEST : engine_mode_parse(h);
    return *mode < 0 ? ERR_INVAL : 0;
}

static int from_api_key(struct worker *w, struct http_request *r, const char *token,
                        struct principal *p)
{
    struct eng_api_key k;
    int mode, rc;

    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    rc = engine_api_key_resolve(w->engine, p->token_sha, &k);
    engine_rollback(w->engine);
    if (rc == ERR_NOTFOUND || (rc == 0 && k.revoked_at != 0))
        return respond_error(r, ERR_UNAUTHORIZED, "unknown or revoked API key");
    if (rc != 0)
        return rc;
    /* the prefix names the key's mode; a key cannot be used for the other one */
    if (requested_mode(r, &mode) != 0)
        return respond_error(r, ERR_INVAL, "Tessera-Mode must be test or live");
    if (http_param(r, "HTTP_TESSERA_MODE") != NULL && mode != k.mode)
        return respond_error(r, ERR_FORBIDDEN, "this API key cannot act in that mode");
    snprintf(p->scope.org_id, sizeof p->scope.org_id, "%s", k.org_id);
    p->scope.mode = k.mode;
    snprintf(p->key_id, sizeof p->key_id, "%s", k.id);
    snprintf(p->key_creator, sizeof p->key_creator, "%s", k.created_by);
    snprintf(p->role, sizeof p->role, "%s", k.role);
    p->platform_admin = k.platform; /* until key_creator_holds has asked whether its creator still is one */
    return 0;
}

/* The cache slot for a token hash: direct-mapped on its first hex digits. */
static struct jwt_seen *seen_slot(struct worker *w, const char *sha)
{
    unsigned h = 0;
    int d;

    for (int i = 0; i < 8 && (d = text_hex_digit((unsigned char)sha[i])) >= 0; i++)
        h = h * 16 + (unsigned)d;
    return &w->jwt_seen[h % JWT_SEEN_SLOTS];
}

/* Fills p from claims we verified (now, or earlier and cached). */
static int claims_to_principal(struct http_request *r, const char *sub, const char *org,
                               const char *fam, int64_t exp, struct principal *p)
{
    if (requested_mode(r, &p->scope.mode) != 0)
        return respond_error(r, ERR_INVAL, "Tessera-Mode must be test or live");
    snprintf(p->scope.org_id, sizeof p->scope.org_id, "%s", org);
    snprintf(p->user_id, sizeof p->user_id, "%s", sub);
    snprintf(p->family_id, sizeof p->family_id, "%s", fam != NULL ? fam : "");
    p->token_exp = exp;
    return 0;
}

static int from_jwt(struct worker *w, struct http_request *r, const char *token, size_t len,
                    struct principal *p)
{
    int64_t now = (int64_t)time(NULL);
    struct jwt_seen *seen = seen_slot(w, p->token_sha);

    if (strcmp(seen->sha, p->token_sha) == 0) {
        if (now >= seen->exp)
            return respond_error(r, ERR_EXPIRED, "the access token has expired");
        return claims_to_principal(r, seen->sub, seen->org, seen->fam, seen->exp, p);
    }
    struct jwt_expect ex = {
        .iss = w->cfg->auth.issuer,
        .aud = w->cfg->auth.audience,
        .now = now,
        .skew = 30,
        .max_lifetime = w->cfg->auth.access_ttl + 60,
    };
    cJSON *claims = NULL;
    enum jwt_status st = jwt_verify(&w->keys, token, len, &ex, &claims);

    if (st == JWT_EXPIRED)
        return respond_error(r, ERR_EXPIRED, "the access token has expired");
    if (st != JWT_OK)
        return respond_error(r, ERR_UNAUTHORIZED, jwt_status_str(st));
    http_own(r, claims);
    const char *sub = json_get_str(claims, "sub"), *org = json_get_str(claims, "org");
    const char *fam = json_get_str(claims, "fam"), *typ = json_get_str(claims, "typ");
    int64_t exp;
    /* only access tokens are accepted here, and only those that say so */
    if (typ == NULL || strcmp(typ, "access") != 0)
        return respond_error(r, ERR_UNAUTHORIZED, "not an access token");
    if (sub == NULL || org == NULL || strlen(sub) >= ENG_ID || strlen(org) >= ENG_ID ||
        (fam != NULL && strlen(fam) >= ENG_ID) || json_get_int(claims, "exp", 0, INT64_MAX, &exp) != 0)
        return respond_error(r, ERR_UNAUTHORIZED, "the token lacks sub, org or exp");
    /* exp is the only claim whose meaning changes with time; nbf/iat were checked now */
    snprintf(seen->sha, sizeof seen->sha, "%s", p->token_sha);
    snprintf(seen->sub, sizeof seen->sub, "%s", sub);
    snprintf(seen->org, sizeof seen->org, "%s", org);
    snprintf(seen->fam, sizeof seen->fam, "%s", fam != NULL ? fam : "");
    seen->exp = exp;
    return claims_to_principal(r, sub, org, fam, exp, p);
}

/* An API key is only as good as the person who made it: one whose creator has
 * left the org, or no longer holds what the key carries, stops working; a
 * platform key whose creator is no longer a platform admin acts as an
 * ordinary key. */
static int key_creator_holds(struct worker *w, struct http_request *r, struct principal *p)
{
    struct eng_membership m;
    struct eng_role have, carried;
    /* a key without a (well-formed) creator has no one to vouch for it */
    int rc = uuid_valid(p->key_creator) ? engine_member_get(w->engine, &p->scope, p->key_creator, &m) : ERR_NOTFOUND;

    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_UNAUTHORIZED, "the API key's creator is no longer a member");
    if (rc == 0 && p->platform_admin) {
        struct eng_user u;
        if ((rc = engine_user_get(w->engine, p->key_creator, &u)) == 0)
            p->platform_admin = u.is_platform_admin;
        else if (rc == ERR_NOTFOUND)
            return respond_error(r, ERR_UNAUTHORIZED, "the API key's creator is gone");
    }
    if (rc != 0 || (rc = engine_role_get(w->engine, &p->scope, m.role, &have)) != 0 ||
        (rc = engine_role_get(w->engine, &p->scope, p->role, &carried)) != 0)
        return rc == ERR_NOTFOUND ? respond_error(r, ERR_UNAUTHORIZED, "the API key's role is gone") : rc;
    if (!rbac_covers(have.perms, have.nperms, carried.perms, carried.nperms))
        return respond_error(r, ERR_UNAUTHORIZED, "the API key carries more than its creator now holds");
    return 0;
}

int authn_principal(struct worker *w, struct http_request *r, struct principal *p)
{
    const char *h = http_param(r, "HTTP_AUTHORIZATION");
    bool revoked;
    int rc;

    memset(p, 0, sizeof *p);
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0 || h[7] == '\0')
        return respond_error(r, ERR_UNAUTHORIZED, "an Authorization: Bearer token is required");
    const char *token = h + 7;
    size_t len = strlen(token);
    if (len > BEARER_MAX)
        return respond_error(r, ERR_UNAUTHORIZED, "the token is too large");
    token_sha256_hex(token, len, p->token_sha);

    char key[8 + ENG_HASH];
    snprintf(key, sizeof key, "bl:%s", p->token_sha);
    rc = kv_exists(w->kv, key, &revoked);
    if (rc != 0) {
        log_msg(LOG_ERROR, "blacklist_unavailable", "%s", w->kv->errstr);
        return respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be checked");
    }
    if (revoked)
        return respond_error(r, ERR_REVOKED, "the token has been revoked");

    if (strncmp(token, "tk_test_", 8) == 0 || strncmp(token, "tk_live_", 8) == 0)
        rc = from_api_key(w, r, token, p);
    else
        rc = from_jwt(w, r, token, len, p);
    if (rc != 0 || r->status != 0)
        return rc;

    /* the unit of work the handler runs in; the caller commits or rolls back */
    if ((rc = engine_begin(w->engine, &p->scope)) != 0)
        return rc;
    if (p->user_id[0] != '\0') {
        struct eng_membership m;
        struct eng_user u;
        rc = engine_member_get(w->engine, &p->scope, p->user_id, &m);
        if (rc == 0)
            rc = engine_user_get(w->engine, p->user_id, &u);
        if (rc == ERR_NOTFOUND) {
            engine_rollback(w->engine);
            return respond_error(r, ERR_UNAUTHORIZED, "not a member of this organization");
        }
        if (rc != 0)
            goto fail;
        snprintf(p->role, sizeof p->role, "%s", m.role);
        p->platform_admin = u.is_platform_admin;
    }
    if (p->key_id[0] != '\0' && (rc = key_creator_holds(w, r, p)) != 0)
        goto fail;
    if (r->status != 0) {
        engine_rollback(w->engine);
        return 0;
    }
    rc = engine_role_get(w->engine, &p->scope, p->role, &p->perms);
    if (rc == ERR_NOTFOUND) {
        p->perms.nperms = 0; /* a deleted custom role grants nothing */
        rc = 0;
    }
    if (rc != 0)
        goto fail;
    return 0;
fail:
    engine_rollback(w->engine);
    return rc;
}
