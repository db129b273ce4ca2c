/* Authentication of a request (DESIGN §3 "Tokens, blacklist, modes"):
 * bearer → the JWT verified (or an API key's org known) → one kv round trip
 * for the blacklist entry, the org's principal version and the principal
 * cached under the version this worker saw last → on a miss the principal
 * from storage, through the single-flight cache → the mode.
 *
 * Every failure fails closed: the blacklist is asked on every request, one
 * that cannot be asked is a 503, never a pass, and its verdict comes before
 * any other (a revoked token is "revoked" whatever else is wrong with it).
 * The principal — membership, role, permissions and platform flag, and for an
 * API key its state and its creator's standing — is cached per org for
 * [cache] principal_ttl under a version that every member, role and key
 * change bumps after it commits (caching.c), so a demotion or a revocation
 * holds from the next request on every worker. With it go the org's row and a
 * JWT user's (neither changes once made), so the routes that show them ask
 * storage nothing; the user's email stays sealed as it is at rest, and no
 * password hash is ever in it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/text.h"
#include "core/uuid.h"
#include "security/rbac.h"

#define BEARER_MAX 4096

/* A refusal decided before the blacklist has spoken, answered after it. */
struct verdict {
    int code;                   /* an err.h code; 0: none */
    const char *msg;
};

static int deny(struct verdict *v, int code, const char *msg)
{
    v->code = code;
    v->msg = msg;
    return 0;
}

/* The mode a JWT request asks for: header Tessera-Mode, test by default. */
static int requested_mode(struct http_request *r, int *mode)
{
    const char *h = http_param(r, "HTTP_TESSERA_MODE");

    *mode = h == NULL ? ENG_MODE_TEST : engine_mode_parse(h);
    return *mode < 0 ? ERR_INVAL : 0;
}

/* Direct-mapped slot of a text (an org id, a token hash) among n. */
static size_t slot_of(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % n;
}

/* ---- API keys ----------------------------------------------------------------- */

/* The org of an API key: remembered by this worker once it has been looked up
 * (a key never changes org), else from storage. The key's state is not taken
 * from here but from its principal, which every revocation bumps. */
static int key_org(struct worker *w, struct http_request *r, const char *token, struct principal *p,
                   struct verdict *v)
{
    struct authn_key_org *ko = &w->key_orgs[slot_of(p->token_sha, AUTHN_KEY_ORGS)];
    struct eng_api_key k;
    int mode, rc;

    /* the prefix names the key's mode; a key cannot be used for the other one */
    p->scope.mode = strncmp(token, "tk_live_", 8) == 0 ? ENG_MODE_LIVE : ENG_MODE_TEST;
    if (requested_mode(r, &mode) != 0)
        return deny(v, ERR_INVAL, "Tessera-Mode must be test or live");
    if (http_param(r, "HTTP_TESSERA_MODE") != NULL && mode != p->scope.mode)
        return deny(v, ERR_FORBIDDEN, "this API key cannot act in that mode");
    if (strcmp(ko->sha, p->token_sha) == 0) {
        snprintf(p->scope.org_id, sizeof p->scope.org_id, "%s", ko->org);
        return 0;
    }
    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    rc = engine_api_key_resolve(w->engine, p->token_sha, &k);
    engine_rollback(w->engine);
    if (rc == ERR_NOTFOUND || (rc == 0 && (k.revoked_at != 0 || k.mode != p->scope.mode)))
        return deny(v, ERR_UNAUTHORIZED, "unknown or revoked API key");
    if (rc != 0)
        return rc;
    snprintf(p->scope.org_id, sizeof p->scope.org_id, "%s", k.org_id);
    snprintf(ko->sha, sizeof ko->sha, "%s", p->token_sha);
    snprintf(ko->org, sizeof ko->org, "%s", k.org_id);
    return 0;
}

/* An API key is only as good as the person who made it: one whose creator has
 * left the org, or no longer holds what the key carries, stops working (*why
 * says so); a platform key whose creator is no longer a platform admin acts as
 * an ordinary key. */
static int key_creator_holds(struct worker *w, struct principal *p, const char **why)
{
    struct eng_membership m;
    struct eng_role have, carried;
    /* a key without a (well-formed) creator has no one to vouch for it */
    int rc = uuid_valid(p->key_creator) ? engine_member_get(w->engine, &p->scope, p->key_creator, &m) : ERR_NOTFOUND;

    if (rc == ERR_NOTFOUND) {
        *why = "the API key's creator is no longer a member";
        return 0;
    }
    if (rc == 0 && p->platform_admin) {
        struct eng_user u;
        if ((rc = engine_user_get(w->engine, p->key_creator, &u)) == 0) {
            p->platform_admin = u.is_platform_admin;
        } else if (rc == ERR_NOTFOUND) {
            *why = "the API key's creator is gone";
            return 0;
        }
    }
    if (rc != 0 || (rc = engine_role_get(w->engine, &p->scope, m.role, &have)) != 0 ||
        (rc = engine_role_get(w->engine, &p->scope, p->role, &carried)) != 0) {
        if (rc != ERR_NOTFOUND)
            return rc;
        *why = "the API key's role is gone";
        return 0;
    }
    if (!rbac_covers(have.perms, have.nperms, carried.perms, carried.nperms))
        *why = "the API key carries more than its creator now holds";
    return 0;
}

/* ---- JWTs --------------------------------------------------------------------- */

/* The cache slot for a token hash: direct-mapped on its first hex digits. */
static struct jwt_seen *seen_slot(struct worker *w, const char *sha)
{
    unsigned h = 0;

    for (int i = 0; i < 8 && sha[i] != '\0'; i++) /* lowercase hex from token_sha256_hex */
        h = h * 16 + (unsigned)text_hex_digit((unsigned char)sha[i]);
    return &w->jwt_seen[h % JWT_SEEN_SLOTS];
}

/* Fills p from claims we verified (now, or earlier and cached). */
static int claims_to_principal(struct http_request *r, const char *sub, const char *org,
                               const char *fam, int64_t exp, int64_t iat, struct principal *p, struct verdict *v)
{
    if (requested_mode(r, &p->scope.mode) != 0)
        return deny(v, ERR_INVAL, "Tessera-Mode must be test or live");
    snprintf(p->scope.org_id, sizeof p->scope.org_id, "%s", org);
    snprintf(p->user_id, sizeof p->user_id, "%s", sub);
    snprintf(p->family_id, sizeof p->family_id, "%s", fam != NULL ? fam : "");
    p->token_exp = exp;
    p->token_iat = iat;
    return 0;
}

static int from_jwt(struct worker *w, struct http_request *r, const char *token, size_t len,
                    struct principal *p, struct verdict *v)
{
    int64_t now = (int64_t)time(NULL);
    struct jwt_seen *seen = seen_slot(w, p->token_sha);

    if (strcmp(seen->sha, p->token_sha) == 0) {
        if (now >= seen->exp)
            return deny(v, ERR_EXPIRED, "the access token has expired");
        return claims_to_principal(r, seen->sub, seen->org, seen->fam, seen->exp, seen->iat, p, v);
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
        return deny(v, ERR_EXPIRED, "the access token has expired");
    if (st != JWT_OK)
        return deny(v, ERR_UNAUTHORIZED, jwt_status_message(st));
    http_own(r, claims);
    const char *sub = json_get_str(claims, "sub"), *org = json_get_str(claims, "org");
    const char *fam = json_get_str(claims, "fam"), *typ = json_get_str(claims, "typ");
    int64_t exp, iat = 0;
    /* only access tokens are accepted here, and only those that say so */
    if (typ == NULL || strcmp(typ, "access") != 0)
        return deny(v, ERR_UNAUTHORIZED, "not an access token");
    if (sub == NULL || org == NULL || !uuid_valid(sub) || !uuid_valid(org) ||
        (fam != NULL && strlen(fam) >= ENG_ID) || json_get_int(claims, "exp", 0, INT64_MAX, &exp) != 0 ||
        json_get_int(claims, "iat", 0, INT64_MAX, &iat) != 0)
        return deny(v, ERR_UNAUTHORIZED, "the token lacks sub, org, iat or exp");
    /* exp is the only claim whose meaning changes with time; nbf/iat were checked now */
    snprintf(seen->sha, sizeof seen->sha, "%s", p->token_sha);
    snprintf(seen->sub, sizeof seen->sub, "%s", sub);
    snprintf(seen->org, sizeof seen->org, "%s", org);
    snprintf(seen->fam, sizeof seen->fam, "%s", fam != NULL ? fam : "");
    seen->exp = exp;
    seen->iat = iat;
    return claims_to_principal(r, sub, org, fam, exp, iat, p, v);
}

/* ---- the principal, cached -------------------------------------------------- */

/* The principal as cached: {"role","platform","perms","org"} (a key's with
 * "key" and "creator", a JWT's with "user"), or {"deny": why} for a key that
 * no longer works. */
static int principal_render(const struct principal *p, const char *why, struct buf *out)
{
    cJSON *o = cJSON_CreateObject(), *perms, *org, *user;
    char *text = NULL;
    int rc = ERR_NOMEM;

    if (o == NULL)
        return ERR_NOMEM;
    if (why != NULL) {
        if (cJSON_AddStringToObject(o, "deny", why) == NULL)
            goto out;
    } else {
        if (cJSON_AddStringToObject(o, "role", p->role) == NULL ||
            cJSON_AddBoolToObject(o, "platform", p->platform_admin) == NULL ||
            (perms = cJSON_AddArrayToObject(o, "perms")) == NULL)
            goto out;
        for (int i = 0; i < p->perms.nperms; i++)
            if (!cJSON_AddItemToArray(perms, cJSON_CreateString(p->perms.perms[i])))
                goto out;
        if (p->key_id[0] != '\0' && (cJSON_AddStringToObject(o, "key", p->key_id) == NULL ||
                                     cJSON_AddStringToObject(o, "creator", p->key_creator) == NULL))
            goto out;
        if ((org = cJSON_AddObjectToObject(o, "org")) == NULL ||
            cJSON_AddStringToObject(org, "name", p->org.name) == NULL ||
            cJSON_AddStringToObject(org, "slug", p->org.slug) == NULL ||
            cJSON_AddStringToObject(org, "plan", p->org.plan) == NULL ||
            cJSON_AddBoolToObject(org, "platform", p->org.platform) == NULL ||
            cJSON_AddNumberToObject(org, "created_at", (double)p->org.created_at) == NULL ||
            cJSON_AddStringToObject(org, "database", p->org.database) == NULL ||
            cJSON_AddBoolToObject(org, "moving", p->org.moving) == NULL)
            goto out;
        if (p->user_id[0] != '\0' &&
            ((user = cJSON_AddObjectToObject(o, "user")) == NULL ||
             cJSON_AddStringToObject(user, "email_enc", p->user.email_enc) == NULL ||
             cJSON_AddNumberToObject(user, "created_at", (double)p->user.created_at) == NULL ||
             cJSON_AddNumberToObject(user, "verified_at", (double)p->user.email_verified_at) == NULL))
            goto out;
    }
    if ((text = cJSON_PrintUnformatted(o)) != NULL)
        rc = buf_puts(out, text);
out:
    free(text);
    cJSON_Delete(o);
    return rc;
}

/* copies a string member into dst[size]: ERR_INVAL when it is missing or too long */
static int cached_str(const cJSON *o, const char *name, char *dst, size_t size)
{
    const char *v = json_get_str(o, name);

    if (v == NULL || strlen(v) >= size)
        return ERR_INVAL;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* The org's placement into the request's scope: the engine routes the org's
 * data calls by it without asking (issue 18 §7). "" (the memory engine's)
 * stays "": no placement to follow there. */
static void placement_into_scope(struct principal *p)
{
    snprintf(p->scope.db, sizeof p->scope.db, "%s", p->org.database);
    p->scope.db_moving = p->org.moving;
}

static int cached_org(const cJSON *o, struct principal *p)
{
    struct eng_org *g = &p->org;

    /* an entry without "database" is of the shape before placement: loaded again */
    if (!cJSON_IsObject(o) || cached_str(o, "name", g->name, sizeof g->name) != 0 ||
        cached_str(o, "slug", g->slug, sizeof g->slug) != 0 || cached_str(o, "plan", g->plan, sizeof g->plan) != 0 ||
        json_get_int(o, "created_at", 0, INT64_MAX, &g->created_at) != 0 ||
        cached_str(o, "database", g->database, sizeof g->database) != 0)
        return ERR_INVAL;
    snprintf(g->id, sizeof g->id, "%s", p->scope.org_id);
    g->platform = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "platform"));
    g->moving = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "moving"));
    placement_into_scope(p);
    return 0;
}

static int cached_user(const cJSON *o, struct principal *p)
{
    struct eng_user *u = &p->user;

    if (!cJSON_IsObject(o) || cached_str(o, "email_enc", u->email_enc, sizeof u->email_enc) != 0 ||
        json_get_int(o, "created_at", 0, INT64_MAX, &u->created_at) != 0 ||
        json_get_int(o, "verified_at", 0, INT64_MAX, &u->email_verified_at) != 0)
        return ERR_INVAL;
    snprintf(u->id, sizeof u->id, "%s", p->user_id);
    u->is_platform_admin = p->platform_admin;
    return 0;
}

/* Fills p from a cached principal; *why for a key's refusal. ERR_INVAL when it
 * is not one (then it is loaded again). */
static int principal_apply(struct arena *a, const char *text, size_t len, struct principal *p, const char **why)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *perms, *it;
    const char *role, *d, *key, *creator;
    int rc = ERR_INVAL;

    *why = NULL;
    if (o == NULL)
        return ERR_INVAL;
    if ((d = json_get_str(o, "deny")) != NULL) {
        *why = arena_strdup(a, d); /* kept past the parse, for the reply */
        rc = *why != NULL ? 0 : ERR_NOMEM;
        goto out;
    }
    role = json_get_str(o, "role");
    perms = cJSON_GetObjectItemCaseSensitive(o, "perms");
    if (role == NULL || strlen(role) >= sizeof p->role || !cJSON_IsArray(perms) ||
        cJSON_GetArraySize(perms) > ENG_MAX_PERMS)
        goto out;
    snprintf(p->role, sizeof p->role, "%s", role);
    p->platform_admin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "platform"));
    p->perms.nperms = 0;
    cJSON_ArrayForEach(it, perms) {
        if (!cJSON_IsString(it) || strlen(it->valuestring) >= ENG_PERM)
            goto out;
        snprintf(p->perms.perms[p->perms.nperms++], ENG_PERM, "%s", it->valuestring);
    }
    snprintf(p->perms.name, sizeof p->perms.name, "%s", p->role);
    if ((key = json_get_str(o, "key")) != NULL && (creator = json_get_str(o, "creator")) != NULL) {
        snprintf(p->key_id, sizeof p->key_id, "%s", key);
        snprintf(p->key_creator, sizeof p->key_creator, "%s", creator);
    }
    if (cached_org(cJSON_GetObjectItemCaseSensitive(o, "org"), p) != 0 ||
        (p->user_id[0] != '\0' && cached_user(cJSON_GetObjectItemCaseSensitive(o, "user"), p) != 0))
        goto out; /* an entry of an older shape: loaded again */
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

struct principal_load {
    struct worker *w;
    struct principal *p;
};

/* Loads the principal from storage (inside the request's unit of work) and
 * renders it; a JWT's user who is not a member is "none", cached too. */
static int principal_load(void *ctx, struct buf *out, bool *found)
{
    struct principal_load *l = ctx;
    struct worker *w = l->w;
    struct principal *p = l->p;
    const char *why = NULL;
    int rc;

    if (p->user_id[0] != '\0') {
        struct eng_membership m;
        struct eng_user u;
        rc = engine_member_get(w->engine, &p->scope, p->user_id, &m);
        if (rc == 0)
            rc = engine_user_get(w->engine, p->user_id, &u);
        if (rc == ERR_NOTFOUND)
            return 0; /* *found stays false: not a member */
        if (rc != 0)
            return rc;
        snprintf(p->role, sizeof p->role, "%s", m.role);
        p->platform_admin = u.is_platform_admin;
        p->user = u;
        p->user.password_hash[0] = '\0'; /* never rendered, never cached */
    } else {
        struct eng_api_key k;
        rc = engine_api_key_resolve(w->engine, p->token_sha, &k);
        if (rc == ERR_NOTFOUND || (rc == 0 && (k.revoked_at != 0 || strcmp(k.org_id, p->scope.org_id) != 0 ||
                                               k.mode != p->scope.mode))) {
            why = "unknown or revoked API key";
        } else if (rc != 0) {
            return rc;
        } else {
            snprintf(p->key_id, sizeof p->key_id, "%s", k.id);
            snprintf(p->key_creator, sizeof p->key_creator, "%s", k.created_by);
            snprintf(p->role, sizeof p->role, "%s", k.role);
            p->platform_admin = k.platform; /* until its creator is asked whether they still are one */
            if ((rc = key_creator_holds(w, p, &why)) != 0)
                return rc;
        }
    }
    if (why == NULL && (rc = engine_org_get(w->engine, &p->scope, &p->org)) != 0)
        return rc; /* a member's or a key's org exists (the foreign keys say so) */
    if (why == NULL) {
        rc = engine_role_get(w->engine, &p->scope, p->role, &p->perms);
        if (rc == ERR_NOTFOUND) {
            p->perms.nperms = 0; /* a deleted custom role grants nothing */
            rc = 0;
        }
        if (rc != 0)
            return rc;
    }
    *found = true;
    return principal_render(p, why, out);
}

/* The principal of p's org and caller into p, served by the cache read rd
 * (fetched with the blacklist) or loaded. The unit of work is open. */
static int principal_resolve(struct worker *w, struct http_request *r, struct principal *p,
                             struct caching_read *rd)
{
    const char *why = NULL;
    int rc = caching_finish(w, rd);

    if (rc == 0 && rd->found)
        rc = principal_apply(r->arena, rd->out->p != NULL ? rd->out->p : "", rd->out->len, p, &why);
    if (rc == ERR_INVAL) {
        /* not a principal this build reads (a cached form an older build
         * wrote, say): loaded from storage instead, as on a miss */
        rd->out->len = 0;
        why = NULL;
        if ((rc = principal_load(rd->ctx, rd->out, &rd->found)) == 0 && rd->found)
            rc = principal_apply(r->arena, rd->out->p != NULL ? rd->out->p : "", rd->out->len, p, &why);
    }
    if (rc != 0)
        return rc;
    if (!rd->found)
        return respond_error(r, ERR_UNAUTHORIZED, "not a member of this organization");
    if (why != NULL)
        return respond_error(r, ERR_UNAUTHORIZED, why);
    return 0;
}

/* The blacklist's verdict on what kv_mget brought for extra (authn_principal):
 * NULL, or why the token is refused. */
static const char *revoked_why(const struct principal *p, char *const *xv, const size_t *xl, size_t nx)
{
    if (xv[0] != NULL)
        return "the token has been revoked";
    if (nx == 3 && xv[1] != NULL)
        return "the session this token belongs to has ended";
    if (nx >= 2 && xv[nx - 1] != NULL) {
        char buf[24];
        size_t n = xl[nx - 1] < sizeof buf - 1 ? xl[nx - 1] : sizeof buf - 1;
        memcpy(buf, xv[nx - 1], n);
        buf[n] = '\0';
        /* issued before the account's password was reset: refused; one
         * unreadable entry refuses too (fail closed) */
        char *end;
        long long before = strtoll(buf, &end, 10);
        if (*end != '\0' || end == buf || p->token_iat < before)
            return "the token was issued before the account's password was reset";
    }
    return NULL;
}

int authn_principal(struct worker *w, struct http_request *r, struct principal *p)
{
    const char *h = http_param(r, "HTTP_AUTHORIZATION");
    struct verdict v = {0, NULL};
    struct principal_load l = {w, p};
    struct caching_ns ns;
    char bl[8 + ENG_HASH], who[8 + ENG_HASH], fam[16 + ENG_ID], usr[16 + ENG_ID];
    /* the blacklist's three questions: this token, its session (ended), its
     * user (tokens issued before a reset or an erasure) */
    const char *extra[3] = {bl, fam, usr};
    char *xv[3] = {NULL, NULL, NULL};
    size_t xl[3] = {0, 0, 0}, nx = 1;
    struct buf out;
    struct caching_read rd = {.ns = &ns, .suffix = who, .load = principal_load, .ctx = &l, .out = &out};
    int rc;

    memset(p, 0, sizeof *p);
    /* the scheme is case-insensitive (RFC 9110 §11.1): "bearer" is "Bearer" */
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0')
        return respond_error(r, ERR_UNAUTHORIZED, "an Authorization: Bearer token is required");
    const char *token = h + 7;
    size_t len = strlen(token);
    if (len > BEARER_MAX)
        return respond_error(r, ERR_UNAUTHORIZED, "the token is too large");
    token_sha256_hex(token, len, p->token_sha);

    if (strncmp(token, "tk_test_", 8) == 0 || strncmp(token, "tk_live_", 8) == 0)
        rc = key_org(w, r, token, p, &v);
    else
        rc = from_jwt(w, r, token, len, p, &v);
    if (rc != 0)
        return rc;

    /* one round trip: the blacklist and, when the caller is known, its
     * principal's version and the principal at the version last seen, and
     * the keys its handler will read */
    snprintf(bl, sizeof bl, "bl:%s", p->token_sha);
    if (v.code == 0 && p->user_id[0] != '\0') {
        snprintf(usr, sizeof usr, "bl:user:%s", p->user_id);
        snprintf(fam, sizeof fam, "bl:fam:%s", p->family_id);
        extra[1] = p->family_id[0] != '\0' ? fam : usr;
        extra[2] = usr;
        nx = p->family_id[0] != '\0' ? 3 : 2;
    }
    snprintf(who, sizeof who, "%s:%s", p->user_id[0] != '\0' ? "u" : "k",
             p->user_id[0] != '\0' ? p->user_id : p->token_sha);
    bool known = v.code == 0 && caching_ns_principal(&ns, p->scope.org_id) == 0;
    if (known) {
        /* and what the handler read after it, last time (caching_ahead) */
        const struct app_route *ar = r->match.route->data;
        const char *shape[] = {ar->label, http_param(r, "REQUEST_URI"), p->scope.org_id,
                               engine_mode_name(p->scope.mode)};
        caching_ahead(w, shape, sizeof shape / sizeof shape[0]);
    }
    if (w->cache_kv == w->kv) {
        rc = caching_fetch(w, &rd, known ? 1 : 0, extra, nx, xv, xl);
    } else {
        /* the cache in a Redis of its own: the blacklist alone first (fail
         * closed), then the cache's round trip, which fails open (it loads) */
        rc = kv_mget(w->kv, extra, nx, xv, xl);
        if (rc == 0 && caching_fetch(w, &rd, known ? 1 : 0, NULL, 0, NULL, NULL) != 0)
            log_msg(LOG_WARN, "cache_unavailable", "%s (served from storage)", w->cache_kv->errstr);
    }
    if (rc != 0) {
        log_msg(LOG_ERROR, "blacklist_unavailable", "%s", w->kv->errstr);
        return respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be checked");
    }
    const char *why = revoked_why(p, xv, xl, nx);
    for (size_t i = 0; i < nx; i++)
        free(xv[i]);
    if (why != NULL) {
        caching_read_cleanup(&rd);
        return respond_error(r, ERR_REVOKED, why);
    }
    if (v.code != 0)
        return respond_error(r, v.code, v.msg);

    /* the unit of work the handler runs in; the caller commits or rolls back */
    buf_init(&out, 64 * 1024);
    if ((rc = engine_begin(w->engine, &p->scope)) == 0) {
        rc = principal_resolve(w, r, p, &rd);
        if (rc != 0 || r->status != 0)
            engine_rollback(w->engine);
    }
    caching_read_cleanup(&rd);
    buf_cleanup(&out);
    return rc;
}
