/* Credentials tessera issues: access tokens (EdDSA JWTs), refresh tokens
 * (opaque, stored as SHA-256, rotated; the child of a rotation also kept
 * sealed for replays within the reuse interval), and the email handling
 * around users (normalized, sealed with AES-GCM, found by blind index).
 *
 * A refresh token's text is "rt_" and the base64url of [mode byte, org id
 * (16 bytes), 32 random bytes]: opaque to its holder, it tells tessera the
 * scope to rotate it in without asking storage first (one round trip on
 * PostgreSQL instead of a resolve and then the rotation). Only the random
 * part is a secret and the hash covers the whole text, so a text whose scope
 * was altered matches no row. Tokens issued before this form ("rt_" and the
 * base64url of the 32 random bytes alone) name no scope and take the long
 * way: a resolve by hash, then the rotation. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "app.h"
#include "core/uuid.h"

#define REFRESH_BYTES 32
#define REFRESH_SCOPED (1 + 16 + REFRESH_BYTES)  /* mode, org id, secret */
#define REFRESH_SCOPED_TEXT 69                    /* "rt_" + base64url of REFRESH_SCOPED bytes */
_Static_assert(3 + CRYPTO_B64_LEN(REFRESH_SCOPED) == REFRESH_SCOPED_TEXT && REFRESH_SCOPED_TEXT < TOKEN_REFRESH_TEXT,
               "a scoped refresh token's text and its buffer");

void token_sha256_hex(const char *s, size_t n, char out[ENG_HASH])
{
    uint8_t d[32];

    if (crypto_sha256(s, n, d) != 0 || crypto_hex_encode(d, sizeof d, out, ENG_HASH) != 0)
        out[0] = '\0'; /* cannot happen with OpenSSL working; an empty hash matches nothing */
}

int email_normalize(const char *in, char *out, size_t outsz)
{
    size_t n = 0;
    int at = -1;

    while (isspace((unsigned char)*in))
        in++;
    for (; in[n] != '\0'; n++) {
        unsigned char c = (unsigned char)in[n];
        if (n + 1 >= outsz || n >= 254)
            return ERR_INVAL;
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '(' || c == ')' || c == ',' || c == ':' ||
            c == ';' || c == '<' || c == '>' || c == '[' || c == ']' || c == '\\')
            break;
        if (c == '@') {
            if (at >= 0)
                return ERR_INVAL;
            at = (int)n;
        }
        out[n] = (char)tolower(c);
    }
    out[n] = '\0';
    const char *rest = in + n;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest != '\0' || at <= 0 || (size_t)at + 1 >= n)
        return ERR_INVAL;
    const char *dot = strrchr(out + at + 1, '.');
    if (dot == NULL || dot == out + at + 1 || dot[1] == '\0')
        return ERR_INVAL;
    return 0;
}

int email_seal(const struct crypto_keyring *ring, struct eng_user *u, const char *email)
{
    char aad[64], *sealed = NULL;
    int rc;

    /* the user id in the AAD: a sealed email moved to another row fails to open */
    snprintf(aad, sizeof aad, "user:%s", u->id);
    if ((rc = crypto_blind_index(ring, email, u->email_hmac)) != 0)
        return rc;
    if ((rc = crypto_seal_text(ring, aad, strlen(aad), email, strlen(email), &sealed)) != 0)
        return rc;
    if (strlen(sealed) >= sizeof u->email_enc)
        rc = ERR_TOOBIG;
    else
        snprintf(u->email_enc, sizeof u->email_enc, "%s", sealed);
    free(sealed);
    return rc;
}

const char *email_open(struct worker *w, struct http_request *r, const struct eng_user *u)
{
    char aad[64];
    uint8_t *pt = NULL;
    size_t len;

    snprintf(aad, sizeof aad, "user:%s", u->id);
    if (crypto_open_text(&w->ring, aad, strlen(aad), u->email_enc, strlen(u->email_enc), &pt, &len) != 0)
        return NULL;
    char *s = arena_strndup(r->arena, (const char *)pt, len);
    free(pt);
    return s;
}

static int add_str(cJSON *o, const char *k, const char *v)
{
    return cJSON_AddStringToObject(o, k, v) != NULL ? 0 : ERR_NOMEM;
}

int token_refresh_new(const struct config *cfg, const struct eng_scope *s, const char *user_id,
                      const char *family, int64_t now, struct eng_refresh *t, char text[TOKEN_REFRESH_TEXT])
{
    uint8_t raw[REFRESH_SCOPED];
    int rc;

    memset(t, 0, sizeof *t);
    raw[0] = (uint8_t)s->mode;
    if ((rc = uuid_parse(s->org_id, raw + 1)) != 0 ||
        (rc = crypto_random(raw + 17, REFRESH_BYTES)) != 0 ||
        (rc = crypto_b64url_encode(raw, sizeof raw, text + 3, TOKEN_REFRESH_TEXT - 3, NULL)) != 0 ||
        (rc = uuid_v7(t->id)) != 0)
        goto out;
    memcpy(text, "rt_", 3);
    /* a new family is a new session: v7, so sessions begun in one second still list newest first */
    if (family != NULL)
        snprintf(t->family_id, sizeof t->family_id, "%s", family);
    else if ((rc = uuid_v7(t->family_id)) != 0)
        goto out;
    snprintf(t->user_id, sizeof t->user_id, "%s", user_id);
    snprintf(t->org_id, sizeof t->org_id, "%s", s->org_id);
    t->mode = s->mode;
    token_sha256_hex(text, strlen(text), t->token_hash);
    t->created_at = now;
    t->expires_at = now + cfg->auth.refresh_ttl;
out:
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

int token_refresh_scope(const char *text, struct eng_scope *s)
{
    uint8_t raw[REFRESH_SCOPED];
    size_t n = 0;
    int rc = ERR_INVAL;

    if (strlen(text) == REFRESH_SCOPED_TEXT && strncmp(text, "rt_", 3) == 0 &&
        crypto_b64url_decode(text + 3, REFRESH_SCOPED_TEXT - 3, raw, sizeof raw, &n) == 0 &&
        n == sizeof raw && (raw[0] == ENG_MODE_TEST || raw[0] == ENG_MODE_LIVE)) {
        memset(s, 0, sizeof *s);
        s->mode = raw[0];
        uuid_format(raw + 1, s->org_id);
        rc = 0;
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

/* The seal's AAD: the tenant and the parent whose row keeps it, by its token's
 * hash (unique; known before the row is read, so the one-step rotation can
 * seal). Seals made before named the parent by family and id: still opened
 * (legacy_aad) for as long as one can be served, the reuse interval. */
static void refresh_aad(const struct eng_refresh *parent, char aad[128])
{
    snprintf(aad, 128, "refresh:%s:%s", parent->org_id, parent->token_hash);
}

static void legacy_aad(const struct eng_refresh *parent, char aad[128])
{
    snprintf(aad, 128, "refresh:%s:%s:%s", parent->org_id, parent->family_id, parent->id);
}

int token_refresh_seal(const struct crypto_keyring *ring, const struct eng_refresh *parent, const char *text,
                       char out[ENG_SEALED])
{
    char aad[128], *sealed = NULL;
    int rc;

    refresh_aad(parent, aad);
    if ((rc = crypto_seal_text(ring, aad, strlen(aad), text, strlen(text), &sealed)) != 0)
        return rc;
    if (strlen(sealed) >= ENG_SEALED)
        rc = ERR_TOOBIG;
    else
        snprintf(out, ENG_SEALED, "%s", sealed);
    free(sealed);
    return rc;
}

int token_refresh_open(const struct crypto_keyring *ring, const struct eng_refresh *parent, const char *sealed,
                       char text[TOKEN_REFRESH_TEXT])
{
    char aad[128];
    uint8_t *pt = NULL;
    size_t len = 0;
    int rc;

    refresh_aad(parent, aad);
    if ((rc = crypto_open_text(ring, aad, strlen(aad), sealed, strlen(sealed), &pt, &len)) != 0) {
        legacy_aad(parent, aad);
        if ((rc = crypto_open_text(ring, aad, strlen(aad), sealed, strlen(sealed), &pt, &len)) != 0)
            return rc;
    }
    if (len >= TOKEN_REFRESH_TEXT || memchr(pt, '\0', len) != NULL)
        rc = ERR_INVAL;
    else
        memcpy(text, pt, len + 1);  /* crypto_open NUL-terminates */
    OPENSSL_cleanse(pt, len);
    free(pt);
    return rc;
}

int token_pair_json(struct worker *w, const struct eng_scope *s, const char *user_id, const char *role,
                    const char *family, const char *refresh_text, int64_t now, cJSON *obj)
{
    const struct config *cfg = w->cfg;
    char jti[ENG_ID];
    char *access = NULL;
    cJSON *claims = NULL;
    int rc;

    if ((rc = uuid_v4(jti)) != 0)
        return rc;
    /* the org's role is re-read on every request, this one is informational */
    rc = ERR_NOMEM;
    if ((claims = cJSON_CreateObject()) == NULL || add_str(claims, "sub", user_id) ||
        add_str(claims, "org", s->org_id) || add_str(claims, "role", role) ||
        add_str(claims, "mode", engine_mode_name(s->mode)) || add_str(claims, "jti", jti) ||
        add_str(claims, "fam", family) || add_str(claims, "iss", cfg->auth.issuer) ||
        add_str(claims, "aud", cfg->auth.audience) || add_str(claims, "typ", "access") ||
        cJSON_AddNumberToObject(claims, "iat", (double)now) == NULL ||
        cJSON_AddNumberToObject(claims, "exp", (double)(now + cfg->auth.access_ttl)) == NULL)
        goto out;
    if ((rc = jwt_sign(&w->keys, claims, &access)) != 0)
        goto out;
    rc = ERR_NOMEM;
    if (add_str(obj, "access_token", access) || add_str(obj, "refresh_token", refresh_text) ||
        add_str(obj, "token_type", "Bearer") ||
        cJSON_AddNumberToObject(obj, "expires_in", cfg->auth.access_ttl) == NULL)
        goto out;
    rc = 0;
out:
    cJSON_Delete(claims);
    free(access);
    return rc;
}

int token_issue(struct worker *w, struct http_request *r, const struct eng_scope *s, const char *user_id,
                const char *role, cJSON *obj)
{
    int64_t now = (int64_t)time(NULL);
    char text[TOKEN_REFRESH_TEXT];
    struct eng_refresh t;
    struct eng_session ss = {0};
    int rc;

    /* the refresh token: random, shown once, stored as its hash; its new
     * family is the session */
    if ((rc = token_refresh_new(w->cfg, s, user_id, NULL, now, &t, text)) == 0) {
        snprintf(ss.id, sizeof ss.id, "%s", t.family_id);
        snprintf(ss.org_id, sizeof ss.org_id, "%s", s->org_id);
        snprintf(ss.user_id, sizeof ss.user_id, "%s", user_id);
        ss.mode = s->mode;
        session_client(r, &ss);
        ss.created_at = ss.last_used_at = now;
        ss.expires_at = t.expires_at;
    }
    if (rc == 0 && (rc = engine_session_create(w->engine, s, &ss)) == 0 &&
        (rc = engine_refresh_create(w->engine, s, &t)) == 0)
        rc = token_pair_json(w, s, user_id, role, t.family_id, text, now, obj);
    OPENSSL_cleanse(text, sizeof text);
    return rc;
}
