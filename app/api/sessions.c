/* A person's sessions (issue 17): each is one refresh family, begun by a
 * login, a signup or an accepted invite (token_issue). A person lists theirs
 * across orgs and ends any one; an org's member manager ends a member's
 * sessions in that org. Ending one revokes its refresh family in the store
 * and refuses its access tokens from the next request on every worker,
 * through the kv entries authn asks with the blacklist (bl:fam:<id>); a
 * reset or an erased account refuses all of a user's earlier tokens
 * (bl:user:<id>, the time before which they were issued). Both entries live
 * as long as an access token can, and fail closed as the blacklist does. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/log.h"
#include "core/uuid.h"
#include "security/rbac.h"

void session_client(struct http_request *r, struct eng_session *ss)
{
    const char *ua = http_param(r, "HTTP_USER_AGENT"), *addr = http_param(r, "REMOTE_ADDR");
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    size_t i = 0;

    /* printable ASCII only: what a console shows and a log line holds as is */
    for (; ua != NULL && ua[i] != '\0' && i + 1 < sizeof ss->user_agent; i++)
        ss->user_agent[i] = ua[i] >= 0x20 && ua[i] < 0x7f ? ua[i] : '?';
    ss->user_agent[i] = '\0';
    ss->address[0] = '\0';
    if (addr == NULL)
        return;
    if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.') != NULL)
        addr += 7; /* an IPv4 client on a dual-stack socket */
    if (inet_pton(AF_INET, addr, a) == 1) {
        snprintf(ss->address, sizeof ss->address, "%u.%u.%u.0/24", a[0], a[1], a[2]);
    } else if (inet_pton(AF_INET6, addr, a) == 1) {
        memset(a + 6, 0, sizeof a - 6);
        if (inet_ntop(AF_INET6, a, text, sizeof text) != NULL)
            snprintf(ss->address, sizeof ss->address, "%s/48", text);
    }
}

/* One kv entry per key, living as long as an access token can. */
static int refuse(struct worker *w, const char *key, const char *val)
{
    uint64_t ttl_ms = ((uint64_t)w->cfg->auth.access_ttl + 60) * 1000;

    if (kv_set(w->kv, key, val, strlen(val), ttl_ms) != 0) {
        log_msg(LOG_ERROR, "blacklist_unavailable", "%s", w->kv->errstr);
        return ERR_UNAVAILABLE;
    }
    return 0;
}

int session_refuse_tokens(struct worker *w, const char (*ids)[ENG_ID], size_t n)
{
    char key[16 + ENG_ID];
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        snprintf(key, sizeof key, "bl:fam:%s", ids[i]);
        rc = refuse(w, key, "1");
    }
    return rc;
}

int session_refuse_user(struct worker *w, const char *user_id, int64_t now)
{
    char key[16 + ENG_ID], val[24];

    snprintf(key, sizeof key, "bl:user:%s", user_id);
    snprintf(val, sizeof val, "%lld", (long long)now);
    return refuse(w, key, val);
}

/* Ends what session_revoke ended for the tokens too, and answers. */
static int ended(struct worker *w, struct http_request *r, char (*ids)[ENG_ID], size_t n, int status)
{
    if (session_refuse_tokens(w, (const char (*)[ENG_ID])ids, n) != 0)
        return respond_error(r, ERR_UNAVAILABLE, "the token blacklist cannot be written");
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || (status != 204 && cJSON_AddNumberToObject(root, "ended", (double)n) == NULL))
        return ERR_NOMEM;
    return respond_owned(r, status, root);
}

/* GET /v1/auth/sessions: the caller's live sessions in every org, newest
 * first; "current" marks the one the request's token belongs to. */
HANDLER(handle_sessions_list)
{
    struct eng_session *list = arena_alloc(r->arena, sizeof *list * ENG_SESSIONS_MAX);
    cJSON *data, *root = respond_list(r, &data);
    size_t n = 0;
    int rc;

    if (list == NULL || root == NULL)
        return ERR_NOMEM;
    if (p->user_id[0] == '\0')
        return respond_error(r, ERR_FORBIDDEN, "an API key has no sessions: they are a person's logins");
    if ((rc = engine_session_list(w->engine, p->user_id, (int64_t)time(NULL), list, ENG_SESSIONS_MAX, &n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const struct eng_session *ss = &list[i];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            return ERR_NOMEM;
        }
        cJSON_AddStringToObject(o, "id", ss->id);
        cJSON_AddStringToObject(o, "org_id", ss->org_id);
        cJSON_AddStringToObject(o, "mode", engine_mode_name(ss->mode));
        cJSON_AddBoolToObject(o, "current", strcmp(ss->id, p->family_id) == 0);
        json_add_time(o, "created_at", ss->created_at);
        json_add_time(o, "last_used_at", ss->last_used_at);
        json_add_time(o, "expires_at", ss->expires_at);
        cJSON_AddStringToObject(o, "user_agent", ss->user_agent);
        cJSON_AddStringToObject(o, "address", ss->address);
    }
    return respond_owned(r, 200, root);
}

/* DELETE /v1/auth/sessions/{id}: one of the caller's sessions (the current
 * one too: that is a logout from wherever it was). */
HANDLER(handle_sessions_end)
{
    const char *id = router_param(&r->match, "id");
    char (*ids)[ENG_ID] = arena_alloc(r->arena, ENG_ID);
    size_t n = 0;
    int rc;

    if (ids == NULL)
        return ERR_NOMEM;
    if (p->user_id[0] == '\0')
        return respond_error(r, ERR_FORBIDDEN, "an API key has no sessions: they are a person's logins");
    if (!uuid_valid(id))
        return respond_error(r, ERR_NOTFOUND, "you have no live session with that id");
    if ((rc = engine_session_revoke(w->engine, p->user_id, "", id, "", (int64_t)time(NULL), ids, 1, &n)) != 0)
        return rc;
    if (n == 0)
        return respond_error(r, ERR_NOTFOUND, "you have no live session with that id");
    if ((rc = audit_record(w, &p->scope, p->user_id, "auth.session_end", id, NULL)) != 0)
        return rc;
    return ended(w, r, ids, n, 204);
}

/* DELETE /v1/orgs/current/members/{user_id}/sessions (members:manage): every
 * session of a member in this org; not of one who holds more than the caller. */
HANDLER(handle_members_sessions_end)
{
    const char *uid = router_param(&r->match, "user_id");
    char (*ids)[ENG_ID] = arena_alloc(r->arena, sizeof *ids * ENG_SESSIONS_MAX);
    struct eng_membership m;
    struct eng_role ro;
    size_t n = 0;
    int rc;

    if (ids == NULL)
        return ERR_NOMEM;
    if (!uuid_valid(uid) || (rc = engine_member_get(w->engine, &p->scope, uid, &m)) == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such member");
    if (rc != 0)
        return rc;
    rc = engine_role_get(w->engine, &p->scope, m.role, &ro);
    if (rc == 0 && !rbac_covers(p->perms.perms, p->perms.nperms, ro.perms, ro.nperms))
        return respond_error(r, ERR_FORBIDDEN, "you cannot end the sessions of a member who holds more than you");
    if (rc != 0 && rc != ERR_NOTFOUND) /* a member whose custom role was deleted holds nothing */
        return rc;
    if ((rc = engine_session_revoke(w->engine, uid, p->scope.org_id, "", "", (int64_t)time(NULL), ids,
                                    ENG_SESSIONS_MAX, &n)) != 0 ||
        (rc = audit_record(w, &p->scope, p->user_id[0] ? p->user_id : p->key_id, "members.sessions_end", uid,
                           NULL)) != 0)
        return rc;
    return ended(w, r, ids, n, 200);
}
