/* engine: the storage interface between API handlers and data (DESIGN §3, §4).
 * Two implementations sit behind one table of function pointers: the memory
 * engine (engine_mem.c, one shared-memory region for the whole fleet) and the
 * PostgreSQL engine (engine_pg.c, RLS per request). Handlers never know which.
 *
 * Rules every implementation keeps:
 *   - Every tenant-scoped call takes a scope (org id + mode); there is no such
 *     call without one, and an object of another org is ERR_NOTFOUND, never
 *     ERR_FORBIDDEN. The few lookups that must run before the org is known
 *     (resolving an API key, a refresh token or an invite by its hash, a user's
 *     memberships at login) are named *_resolve / user_* and documented so.
 *   - Work happens inside engine_begin()/engine_commit() (or engine_rollback()):
 *     one transaction per request on PostgreSQL, the region's lock on memory.
 *     A failed call leaves the transaction usable only for rollback. Global
 *     calls (users, org creation, apps) work inside any unit; tenant calls in
 *     a unit begun with a scope must name that same org.
 *   - Records are fixed-size structs copied in and out: no pointer into
 *     storage ever escapes, so nothing the caller holds can dangle.
 * Plaintext personal data never reaches an engine: emails arrive encrypted
 * (email_enc) with their blind index (email_hmac), both made by the caller. */
#ifndef LIB_ENGINE_H
#define LIB_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ENG_ID 37               /* canonical uuid + NUL */
#define ENG_HASH 65             /* 64 hex + NUL (SHA-256, HMAC-SHA256) */
#define ENG_NAME 128
#define ENG_SLUG 64
#define ENG_ROLE 32
#define ENG_PERM 96             /* "records:write:crm/contacts" */
#define ENG_MAX_PERMS 32
#define ENG_EMAIL_ENC 512       /* sealed email, base64url text */
#define ENG_PHC 256             /* password hash, PHC string */
#define ENG_URL 256
#define ENG_META 1024           /* audit meta, serialized JSON */

enum eng_mode { ENG_MODE_TEST = 0, ENG_MODE_LIVE = 1 };

/* Whose data a call may touch. */
struct eng_scope {
    char org_id[ENG_ID];
    int mode;                   /* enum eng_mode */
};

struct eng_org {
    char id[ENG_ID];
    char name[ENG_NAME];
    char slug[ENG_SLUG];        /* unique */
    char plan[ENG_ROLE];
    int64_t created_at;         /* unix seconds */
};

struct eng_user {
    char id[ENG_ID];
    char email_enc[ENG_EMAIL_ENC];
    char email_hmac[ENG_HASH];  /* unique */
    char password_hash[ENG_PHC];
    bool is_platform_admin;
    int64_t created_at;
};

struct eng_membership {
    char org_id[ENG_ID];
    char user_id[ENG_ID];
    char role[ENG_ROLE];
    int64_t created_at;
};

/* A role: a built-in (org_id "") or an org's own. */
struct eng_role {
    char org_id[ENG_ID];
    char name[ENG_ROLE];
    char perms[ENG_MAX_PERMS][ENG_PERM];
    int nperms;
};

struct eng_api_key {
    char id[ENG_ID];
    char org_id[ENG_ID];
    int mode;
    char name[ENG_NAME];
    char prefix[24];            /* "tk_live_ab12" — shown in lists, not secret */
    char key_hash[ENG_HASH];    /* SHA-256 of the whole key; unique */
    char role[ENG_ROLE];        /* the permissions the key acts with */
    char created_by[ENG_ID];
    int64_t created_at;
    int64_t revoked_at;         /* 0: live */
};

struct eng_refresh {
    char id[ENG_ID];
    char family_id[ENG_ID];
    char user_id[ENG_ID];
    char org_id[ENG_ID];
    int mode;
    char token_hash[ENG_HASH];  /* unique */
    int64_t created_at;
    int64_t expires_at;
    int64_t used_at;            /* 0: not yet rotated */
    int64_t revoked_at;         /* 0: live */
};

struct eng_invite {
    char id[ENG_ID];
    char org_id[ENG_ID];
    char role[ENG_ROLE];
    char token_hash[ENG_HASH];  /* unique */
    char created_by[ENG_ID];
    int64_t expires_at;
    int64_t used_at;
};

struct eng_app {
    char id[ENG_ID];
    char name[ENG_SLUG];        /* unique; a microservice's name is its URL segment */
    char kind[ENG_ROLE];        /* "microservice", "web", … */
    char base_url[ENG_URL];
    char status[ENG_ROLE];      /* "active", "disabled" */
    int64_t created_at;
};

struct eng_audit {
    char id[ENG_ID];            /* uuid v7: time-ordered */
    char org_id[ENG_ID];
    char actor[ENG_ID];         /* user id, key id, or "" for anonymous */
    char action[ENG_ROLE];      /* "auth.login", "keys.create", … */
    char target[ENG_NAME];
    char meta[ENG_META];        /* JSON object text */
    int64_t created_at;
};

struct engine;

struct engine_ops {
    const char *name;
    int (*begin)(struct engine *e, const struct eng_scope *scope);
    int (*commit)(struct engine *e);
    void (*rollback)(struct engine *e);
    int (*ping)(struct engine *e);
    void (*free)(struct engine *e);

    /* global: users, orgs (creation), apps */
    int (*user_create)(struct engine *e, const struct eng_user *u);
    int (*user_get)(struct engine *e, const char *id, struct eng_user *out);
    int (*user_by_email)(struct engine *e, const char *email_hmac, struct eng_user *out);
    int (*user_set_password)(struct engine *e, const char *id, const char *phc);
    int (*user_set_admin)(struct engine *e, const char *id, bool admin);
    int (*user_memberships)(struct engine *e, const char *user_id, struct eng_membership *out,
                            size_t max, size_t *n);
    int (*org_create)(struct engine *e, const struct eng_org *o);
    int (*app_create)(struct engine *e, const struct eng_app *a);
    int (*app_get)(struct engine *e, const char *name, struct eng_app *out);
    int (*app_list)(struct engine *e, struct eng_app *out, size_t max, size_t *n);
    int (*role_builtin)(struct engine *e, const char *name, struct eng_role *out);

    /* bootstrap lookups: find the org a credential belongs to */
    int (*api_key_resolve)(struct engine *e, const char *key_hash, struct eng_api_key *out);
    int (*refresh_resolve)(struct engine *e, const char *token_hash, struct eng_refresh *out);
    int (*invite_resolve)(struct engine *e, const char *token_hash, struct eng_invite *out);

    /* tenant-scoped */
    int (*org_get)(struct engine *e, const struct eng_scope *s, struct eng_org *out);
    int (*member_put)(struct engine *e, const struct eng_scope *s, const struct eng_membership *m);
    int (*member_get)(struct engine *e, const struct eng_scope *s, const char *user_id,
                      struct eng_membership *out);
    int (*member_list)(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                       size_t max, size_t *n);
    int (*member_remove)(struct engine *e, const struct eng_scope *s, const char *user_id);
    int (*role_get)(struct engine *e, const struct eng_scope *s, const char *name,
                    struct eng_role *out);
    int (*role_list)(struct engine *e, const struct eng_scope *s, struct eng_role *out,
                     size_t max, size_t *n);
    int (*role_put)(struct engine *e, const struct eng_scope *s, const struct eng_role *r);
    int (*api_key_create)(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k);
    int (*api_key_list)(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                        size_t max, size_t *n);
    int (*api_key_revoke)(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
    int (*refresh_create)(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t);
    int (*refresh_mark_used)(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
    int (*refresh_revoke_family)(struct engine *e, const struct eng_scope *s, const char *family_id,
                                 int64_t at);
    int (*invite_create)(struct engine *e, const struct eng_scope *s, const struct eng_invite *i);
    int (*invite_mark_used)(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
    int (*audit_append)(struct engine *e, const struct eng_scope *s, const struct eng_audit *a);
    int (*audit_list)(struct engine *e, const struct eng_scope *s, const char *before_id,
                      struct eng_audit *out, size_t max, size_t *n);
};

/* The handle: an implementation's table and state, and the reason of the last failure. */
struct engine {
    const struct engine_ops *ops;
    void *impl;
    char errstr[128];
};

/* Starts the request's unit of work; scope may be NULL for global-only work.
 * ERR_UNAVAILABLE when the store cannot be reached. */
static inline int engine_begin(struct engine *e, const struct eng_scope *s)
{
    return e->ops->begin(e, s);
}
static inline int engine_commit(struct engine *e)
{
    return e->ops->commit(e);
}
static inline void engine_rollback(struct engine *e)
{
    e->ops->rollback(e);
}

/* Frees the engine; NULL is a no-op. */
void engine_free(struct engine *e);

/* Built-in roles and their permissions (DESIGN §4), shared by both engines so
 * they cannot drift: owner, admin, member, viewer. */
extern const struct eng_role ENGINE_BUILTIN_ROLES[];
extern const size_t ENGINE_NBUILTIN_ROLES;

/* "test" / "live" ↔ enum eng_mode; -1 for anything else. */
int engine_mode_parse(const char *s);
const char *engine_mode_name(int mode);

#endif
