/* The account lifecycle's one-time tokens (issue 17): a password reset and an
 * email verification, and the auth outbox through which they reach a person.
 *
 * tessera sends no mail (no SMTP in a FastCGI worker): a token is made, kept
 * as its SHA-256 only, and handed to the deployment's mailer as an event in
 * the auth outbox, committed in the same unit of work as the token; the
 * mailer (a platform admin's API key) reads GET /v1/admin/events from the
 * cursor it last kept, so every event reaches it at least once whatever
 * crashes between the commit and its read. The event's payload — address and
 * token — is sealed at rest under the data key and opened only in that
 * answer. With [auth] log_tokens (make run) the tokens also go to the log,
 * so a developer can try the flows without a mailer.
 *
 * Asking for a reset or another verification answers 202 with one body
 * whether or not the email has an account, and no sooner than
 * [auth] forgot_floor_ms after the request began, so neither the answer nor
 * its time tells which; the attempts count in the login throttle of the
 * client's address. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rfc3339.h"
#include "core/uuid.h"
#include "security/crypto.h"
#include "security/password.h"

#define TOKEN_TEXT 64           /* "pr_"/"ev_" + 43 base64url characters + NUL, with room */
#define FORGOT_BODY "if an account has this email address, a message is on its way to it"

static const char *const KIND_NAME[] = {
    [ENG_TOKEN_RESET] = "auth.password_reset_requested",
    [ENG_TOKEN_VERIFY] = "auth.email_verification_requested",
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until start_ms + the floor: the answer's time says nothing. */
static void floor_wait(const struct worker *w, int64_t start_ms)
{
    int64_t left = start_ms + w->cfg->auth.forgot_floor_ms - mono_ms();
    struct timespec ts = {left / 1000, (left % 1000) * 1000000L};

    while (left > 0 && nanosleep(&ts, &ts) != 0)
        ; /* a signal (reload) must not cut it short */
}

/* The AAD of an event's seal: its kind and user, so a payload moved to
 * another row does not open. */
static void event_aad(const char *kind, const char *user_id, char out[128])
{
    snprintf(out, 128, "auth_event:%s:%s", kind, user_id);
}

int account_token_issue(struct worker *w, const struct eng_user *u, const char *email, int kind)
{
    const int64_t now = (int64_t)time(NULL);
    const int64_t ttl = kind == ENG_TOKEN_RESET ? w->cfg->auth.reset_ttl : w->cfg->auth.verify_ttl;
    struct eng_user_token t = {0};
    struct eng_auth_event ev = {0};
    char token[TOKEN_TEXT], aad[128], when[RFC3339_LEN + 1];
    uint8_t raw[32];
    char *payload = NULL, *sealed = NULL;
    cJSON *o = NULL;
    int64_t seq;
    int rc;

    memcpy(token, kind == ENG_TOKEN_RESET ? "pr_" : "ev_", 3);
    if ((rc = crypto_random(raw, sizeof raw)) != 0 ||
        (rc = crypto_b64url_encode(raw, sizeof raw, token + 3, sizeof token - 3, NULL)) != 0)
        goto out;
    token_sha256_hex(token, strlen(token), t.token_hash);
    t.kind = kind;
    snprintf(t.user_id, sizeof t.user_id, "%s", u->id);
    t.created_at = now;
    t.expires_at = now + ttl;
    rfc3339_format(t.expires_at, when);
    rc = ERR_NOMEM;
    if ((o = cJSON_CreateObject()) == NULL || cJSON_AddStringToObject(o, "user", u->id) == NULL ||
        cJSON_AddStringToObject(o, "email", email) == NULL || cJSON_AddStringToObject(o, "token", token) == NULL ||
        cJSON_AddStringToObject(o, "expires_at", when) == NULL || (payload = cJSON_PrintUnformatted(o)) == NULL)
        goto out;
    snprintf(ev.kind, sizeof ev.kind, "%s", KIND_NAME[kind]);
    snprintf(ev.user_id, sizeof ev.user_id, "%s", u->id);
    event_aad(ev.kind, ev.user_id, aad);
    if ((rc = crypto_seal_text(&w->ring, aad, strlen(aad), payload, strlen(payload), &sealed)) != 0)
        goto out;
    if (strlen(sealed) >= sizeof ev.sealed) {
        rc = ERR_TOOBIG;
        goto out;
    }
    snprintf(ev.sealed, sizeof ev.sealed, "%s", sealed);
    ev.created_at = now;
    ev.expires_at = t.expires_at;
    if ((rc = engine_user_token_create(w->engine, &t)) != 0 || (rc = engine_auth_event_append(w->engine, &ev, &seq)) != 0)
        goto out;
    if (w->cfg->auth.log_tokens)
        log_msg(LOG_INFO, "dev_token", "%s for %s: %s (log_tokens is on: development only)", ev.kind, email, token);
out:
    if (payload != NULL)
        OPENSSL_cleanse(payload, strlen(payload));
    cJSON_free(payload);
    free(sealed);
    cJSON_Delete(o);
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}

/* The user with this email, as login finds one: 0, ERR_NOTFOUND, or an error. */
static int user_of(struct worker *w, const char *email, struct eng_user *u)
{
    char h[ENG_HASH];
    int rc;

    if ((rc = crypto_blind_index(&w->ring, email, h)) != 0)
        return rc;
    return engine_user_by_email(w->engine, h, u);
}

/* POST /v1/auth/password/forgot {email} and POST /v1/auth/verify/resend
 * {email}: 202 and one body, known email or not, no sooner than the floor. */
static int ask_again(struct worker *w, struct http_request *r, int kind)
{
    static const char *const allowed[] = {"email", NULL};
    const int64_t start = mono_ms();
    const char *unknown = NULL, *raw;
    struct login_throttle thr;
    struct eng_user u;
    char email[256];
    int rc;

    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body {\"email\"} is required");
    if (!json_only_keys(r->json, allowed, &unknown)) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown, "is not a known field");
        return respond_invalid(r, d);
    }
    if ((raw = json_get_str(r->json, "email")) == NULL || email_normalize(raw, email, sizeof email) != 0) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "email", "must be an email address");
        return respond_invalid(r, d);
    }
    /* an attempt of the client address, as a failed login is: asking is no
     * free guess; not of the account, which a stranger could lock so */
    if ((rc = throttle_begin(w, r, email, &thr)) != 0)
        return rc;
    throttle_address_only(&thr);
    if ((rc = throttle_check(w, r, &thr)) != 0 || r->status != 0)
        return rc;
    throttle_failed(w, &thr);
    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    rc = user_of(w, email, &u);
    bool send = rc == 0 && (kind == ENG_TOKEN_RESET || u.email_verified_at == 0);
    if (send && (rc = account_token_issue(w, &u, email, kind)) == 0)
        rc = app_commit(w);
    else
        engine_rollback(w->engine);
    if (rc != 0 && rc != ERR_NOTFOUND) /* nothing to send is the same answer */
        return rc;
    floor_wait(w, start);
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || cJSON_AddStringToObject(root, "message", FORGOT_BODY) == NULL)
        return ERR_NOMEM;
    return respond_owned(r, 202, root);
}

HANDLER(handle_auth_forgot)
{
    (void)p;
    return ask_again(w, r, ENG_TOKEN_RESET);
}

HANDLER(handle_auth_verify_resend)
{
    (void)p;
    return ask_again(w, r, ENG_TOKEN_VERIFY);
}

/* The token of the body's "token" member spent in the open unit of work:
 * 0 with it in *t, or the answer given. */
static int spend(struct worker *w, struct http_request *r, int kind, const char *text, struct eng_user_token *t)
{
    char h[ENG_HASH];
    int rc;

    token_sha256_hex(text, strlen(text), h);
    rc = engine_user_token_use(w->engine, kind, h, (int64_t)time(NULL), t);
    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_INVAL, kind == ENG_TOKEN_RESET ? "the reset token is unknown, used or expired"
                                                                   : "the verification token is unknown, used or expired");
    return rc;
}

/* Audits action in every org the user is in: a person's account has no org
 * of its own, and each org's trail shows what happened to its member. touch:
 * the user row changed, so each org's cached principal is bumped too. */
static int audit_user(struct worker *w, const char *user_id, const char *action, bool touch)
{
    struct eng_membership *ms = malloc(sizeof *ms * 1000);
    size_t n = 0;
    int rc;

    if (ms == NULL)
        return ERR_NOMEM;
    rc = engine_user_memberships(w->engine, user_id, ms, 1000, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct eng_scope s = {.mode = ENG_MODE_TEST};
        snprintf(s.org_id, sizeof s.org_id, "%s", ms[i].org_id);
        rc = audit_record(w, &s, user_id, action, user_id, NULL);
        if (touch)
            caching_touch_principal(w, s.org_id);
    }
    free(ms);
    return rc;
}

/* POST /v1/auth/password/reset {token, new_password}: the password set, the
 * token spent, every session of the person ended and every access token of
 * theirs issued before now refused (on every worker, from the next request). */
HANDLER(handle_auth_reset)
{
    static const char *const allowed[] = {"token", "new_password", NULL};
    const char *unknown = NULL;
    char (*ids)[ENG_ID] = arena_alloc(r->arena, sizeof *ids * ENG_SESSIONS_MAX);
    struct eng_user_token t;
    char *phc = NULL;
    size_t n = 0;
    int rc;

    (void)p;
    if (ids == NULL)
        return ERR_NOMEM;
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body {\"token\", \"new_password\"} is required");
    cJSON *d = cJSON_CreateObject();
    if (d == NULL || http_own(r, d) == NULL)
        return ERR_NOMEM;
    if (!json_only_keys(r->json, allowed, &unknown))
        cJSON_AddStringToObject(d, unknown, "is not a known field");
    const char *tok = json_get_str(r->json, "token"), *pw = json_get_str(r->json, "new_password");
    if (tok == NULL || strlen(tok) < 10 || strlen(tok) >= TOKEN_TEXT)
        cJSON_AddStringToObject(d, "token", "must be the token of the reset message");
    if (pw == NULL || strlen(pw) < PASSWORD_MIN || strlen(pw) > PASSWORD_MAX)
        cJSON_AddStringToObject(d, "new_password", "must be a string of 8 to 1024 bytes");
    if (cJSON_GetArraySize(d) > 0)
        return respond_invalid(r, cJSON_Duplicate(d, true));
    /* the expensive part before the unit of work */
    if ((rc = password_hash(pw, strlen(pw), &w->pwcost, &phc)) != 0)
        return rc;
    int64_t now = (int64_t)time(NULL);
    if ((rc = engine_begin(w->engine, NULL)) != 0)
        goto out;
    if ((rc = spend(w, r, ENG_TOKEN_RESET, tok, &t)) != 0 || r->status != 0)
        goto fail;
    if ((rc = engine_user_set_password(w->engine, t.user_id, phc)) != 0 ||
        (rc = engine_session_revoke(w->engine, t.user_id, "", "", "", now, ids, ENG_SESSIONS_MAX, &n)) != 0 ||
        (rc = audit_user(w, t.user_id, "auth.password_reset", false)) != 0)
        goto fail;
    /* refused before the commit: a failed commit leaves tokens refused, never
     * a changed password with the old sessions' tokens still good */
    if (session_refuse_tokens(w, (const char (*)[ENG_ID])ids, n) != 0 || session_refuse_user(w, t.user_id, now) != 0) {
        rc = respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be written");
        goto fail;
    }
    if ((rc = app_commit(w)) != 0)
        goto out;
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || cJSON_AddNumberToObject(root, "sessions_ended", (double)n) == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    rc = respond_owned(r, 200, root);
    goto out;
fail:
    engine_rollback(w->engine);
out:
    free(phc);
    return rc;
}

/* POST /v1/auth/verify {token}: the account's email is verified. */
HANDLER(handle_auth_verify)
{
    static const char *const allowed[] = {"token", NULL};
    const char *unknown = NULL;
    struct eng_user_token t;
    int rc;

    (void)p;
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body {\"token\"} is required");
    const char *tok = json_get_str(r->json, "token");
    if (!json_only_keys(r->json, allowed, &unknown) || tok == NULL || strlen(tok) < 10 || strlen(tok) >= TOKEN_TEXT) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown != NULL ? unknown : "token",
                                unknown != NULL ? "is not a known field" : "must be the token of the verification message");
        return respond_invalid(r, d);
    }
    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    if ((rc = spend(w, r, ENG_TOKEN_VERIFY, tok, &t)) != 0 || r->status != 0 ||
        (rc = engine_user_set_verified(w->engine, t.user_id, (int64_t)time(NULL))) != 0 ||
        (rc = audit_user(w, t.user_id, "auth.email_verified", true)) != 0) {
        engine_rollback(w->engine);
        return rc;
    }
    if ((rc = app_commit(w)) != 0)
        return rc;
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || cJSON_AddTrueToObject(root, "email_verified") == NULL)
        return ERR_NOMEM;
    return respond_owned(r, 200, root);
}

/* GET /v1/admin/events?after=SEQ&limit=N (platform admins: the deployment's
 * mailer): the auth outbox from after on, each event's payload opened. The
 * reader keeps next_cursor once it has sent what it read: at least once. */
HANDLER(handle_admin_events)
{
    const char *after_s = query_get(&r->query, "after"), *limit_s = query_get(&r->query, "limit");
    struct eng_auth_event *page = arena_alloc(r->arena, sizeof *page * ENG_EVENTS_MAX);
    cJSON *data, *root = respond_list(r, &data);
    long long after = 0, limit = ENG_EVENTS_MAX;
    char *end;
    size_t n = 0;
    int rc;

    if (page == NULL || root == NULL)
        return ERR_NOMEM;
    if (!p->platform_admin)
        return respond_error(r, ERR_FORBIDDEN, "only platform admins read the auth outbox");
    if (after_s != NULL && ((after = strtoll(after_s, &end, 10)) < 0 || *end != '\0' || end == after_s))
        return respond_error(r, ERR_INVAL, "after must be a next_cursor this endpoint gave");
    if (limit_s != NULL && ((limit = strtoll(limit_s, &end, 10)) < 1 || limit > ENG_EVENTS_MAX || *end != '\0'))
        return respond_error(r, ERR_INVAL, "limit must be an integer from 1 to 100");
    if ((rc = engine_auth_event_list(w->engine, after, page, (size_t)limit, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char aad[128];
        uint8_t *pt = NULL;
        size_t len = 0;
        cJSON *o = cJSON_CreateObject(), *payload = NULL;
        if (o == NULL || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            return ERR_NOMEM;
        }
        event_aad(page[i].kind, page[i].user_id, aad);
        if (crypto_open_text(&w->ring, aad, strlen(aad), page[i].sealed, strlen(page[i].sealed), &pt, &len) == 0)
            payload = cJSON_ParseWithLength((const char *)pt, len);
        if (pt != NULL)
            OPENSSL_cleanse(pt, len);
        free(pt);
        cJSON_AddNumberToObject(o, "seq", (double)page[i].seq);
        cJSON_AddStringToObject(o, "kind", page[i].kind);
        json_add_time(o, "created_at", page[i].created_at);
        /* a key retired too early: the event is listed, its payload is not */
        cJSON_AddItemToObject(o, "data", payload != NULL ? payload : cJSON_CreateNull());
    }
    char cur[24];
    snprintf(cur, sizeof cur, "%lld", n > 0 ? (long long)page[n - 1].seq : after);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "next_cursor");
    if (cJSON_AddStringToObject(root, "next_cursor", cur) == NULL)
        return ERR_NOMEM;
    return respond_owned(r, 200, root);
}

/* ---- erasing a person (DELETE /v1/auth/me, DELETE /v1/admin/users/{id}) ------- */

/* Erases user_id in the open, unscoped unit of work: refused (409, naming the
 * org) while they are the last owner of an org that has other members; else
 * audited in each of their orgs under actor, erased (engine_user_erase), the
 * orgs' cached principals bumped and every token of theirs refused. An org
 * left with no members keeps its data: it is the org's, not the person's. */
static int erase(struct worker *w, struct http_request *r, const char *actor, const char *user_id)
{
    struct eng_membership *ms = malloc(sizeof *ms * 1000), *mm = malloc(sizeof *mm * 1000);
    char (*ids)[ENG_ID] = arena_alloc(r->arena, sizeof *ids * ENG_SESSIONS_MAX);
    int64_t now = (int64_t)time(NULL);
    size_t n = 0, k, ended = 0;
    int rc = ERR_NOMEM;

    if (ms == NULL || mm == NULL || ids == NULL)
        goto out;
    if ((rc = engine_user_memberships(w->engine, user_id, ms, 1000, &n)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        struct eng_scope s = {.mode = ENG_MODE_TEST};
        size_t owners = 0;
        snprintf(s.org_id, sizeof s.org_id, "%s", ms[i].org_id);
        if (strcmp(ms[i].role, "owner") == 0) {
            if ((rc = engine_member_list(w->engine, &s, mm, 1000, &k)) != 0)
                goto out;
            for (size_t j = 0; j < k; j++)
                owners += strcmp(mm[j].role, "owner") == 0;
            if (owners <= 1 && k > 1) {
                struct eng_org o;
                if ((rc = engine_org_get(w->engine, &s, &o)) != 0)
                    goto out;
                rc = respond_error(r, ERR_CONFLICT,
                                   arena_printf(r->arena, "the account is the last owner of %s, which has other "
                                                          "members: make one of them an owner first", o.name));
                goto out;
            }
        }
        if ((rc = audit_record(w, &s, actor, "auth.account_erased", user_id, NULL)) != 0)
            goto out;
        caching_touch_principal(w, s.org_id); /* the keys they made are gone */
    }
    if ((rc = engine_user_erase(w->engine, user_id, now, ids, ENG_SESSIONS_MAX, &ended)) != 0)
        goto out;
    if (session_refuse_tokens(w, (const char (*)[ENG_ID])ids, ended) != 0 || session_refuse_user(w, user_id, now) != 0) {
        rc = respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be written");
        goto out;
    }
    cJSON *root = http_own(r, cJSON_CreateObject());
    rc = root == NULL ? ERR_NOMEM : respond_owned(r, 204, root);
out:
    free(ms);
    free(mm);
    return rc;
}

/* DELETE /v1/auth/me {password}: a person erases their own account, proving
 * it with their password (checked as a login checks it, outside the unit). */
HANDLER(handle_auth_erase)
{
    static const char *const allowed[] = {"password", NULL};
    const char *unknown = NULL, *pw;
    struct login_throttle thr;
    struct eng_user u;
    bool rehash = false;
    int rc;

    if (p->user_id[0] == '\0')
        return respond_error(r, ERR_FORBIDDEN, "an API key is not a person: log in as the person to erase");
    if (r->json == NULL || !cJSON_IsObject(r->json) || !json_only_keys(r->json, allowed, &unknown) ||
        (pw = json_get_str(r->json, "password")) == NULL || strlen(pw) > PASSWORD_MAX) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown != NULL ? unknown : "password",
                                unknown != NULL ? "is not a known field" : "your password is required");
        return respond_invalid(r, d);
    }
    if ((rc = engine_user_get(w->engine, p->user_id, &u)) != 0)
        return rc;
    if ((rc = throttle_begin(w, r, p->user_id, &thr)) != 0 || (rc = throttle_check(w, r, &thr)) != 0 ||
        r->status != 0)
        return rc;
    engine_rollback(w->engine); /* the expensive check holds nothing */
    rc = password_verify(pw, strlen(pw), u.password_hash, &w->pwcost, &rehash);
    if (rc == ERR_UNAUTHORIZED) {
        throttle_failed(w, &thr);
        return respond_error(r, ERR_FORBIDDEN, "the password is wrong");
    }
    if (rc != 0 || (rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    return erase(w, r, u.id, u.id);
}

/* DELETE /v1/admin/users/{id} (platform admins): the same erasure, without
 * the person's password. */
HANDLER(handle_admin_user_erase)
{
    const char *id = router_param(&r->match, "id");
    struct eng_user u;
    int rc;

    if (!p->platform_admin)
        return respond_error(r, ERR_FORBIDDEN, "only platform admins erase accounts");
    engine_rollback(w->engine); /* the erasure spans orgs: an unscoped unit */
    if ((rc = engine_begin(w->engine, NULL)) != 0)
        return rc;
    if (!uuid_valid(id) || (rc = engine_user_get(w->engine, id, &u)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such user");
    if (rc != 0)
        return rc;
    return erase(w, r, p->user_id[0] ? p->user_id : p->key_id, u.id);
}
