/* app: what the program's files share: the worker context every handler
 * receives, the route table's row type, and the one place errors become HTTP
 * statuses (respond.c), and the read cache's uses (caching.c). Handlers reach
 * storage only through store/engine.h's checked wrappers and the kv only
 * through store/kv.h's and the cache's; nothing here includes libpq or hiredis. */
#ifndef APP_APP_H
#define APP_APP_H

#include <fcgiapp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/arena.h"
#include "core/config.h"
#include "security/crypto.h"
#include "store/engine.h"
#include "security/jwt.h"
#include "store/kv.h"
#include "security/password.h"
#include "http/http.h"
#include "fleet/metrics.h"
#include "store/cache.h"
#include "http/reqid.h"
#include "http/router.h"
#include "fleet/scoreboard.h"

#define WORKER_CONNS 128        /* kept-alive FastCGI connections per worker */
#define JWT_SEEN_SLOTS 512      /* verified-token cache, direct-mapped */
#define CACHING_PENDING 8       /* version bumps one unit of work may queue */
#define AUTHN_KEY_ORGS 256      /* API keys' orgs a worker remembers, direct-mapped */

#define CACHING_SEEN 256        /* namespaces' versions a worker last saw */
#define CACHING_MEMOS 32        /* apps and schemas a worker keeps a copy of */
#define CACHING_AHEAD 8         /* keys a request shape reads ahead */
#define CACHING_SHAPES 64       /* request shapes a worker remembers the reads of */

/* The read cache's state in a worker (caching.c). */
struct caching_seen {
    uint64_t hash;              /* of the version key; 0: empty */
    int64_t ver;
};

/* An app or a resource definition as loaded at a namespace's version. */
struct caching_memo {
    uint64_t hash;              /* of the namespace and the name */
    int64_t ver, at;            /* the version it was loaded at, and when */
    bool found;                 /* false: there is none */
    void *val;                  /* malloc'd, size bytes */
    size_t size;
};

/* What a request shape (route, URI, org, mode) read past its first round
 * trip, the last time it ran: read ahead with the next one's first. */
struct caching_shape {
    uint64_t hash;              /* of the shape; 0: empty */
    size_t nkeys;
    char keys[CACHING_AHEAD][CACHE_KEY_MAX];
};

/* A value read ahead, for the current request only. */
struct caching_stash {
    const char *key;            /* in the shape's slot, which outlives the request */
    char *val;                  /* malloc'd; NULL: the kv has no such key */
    size_t len;
};

struct caching {
    struct cache cache;
    bool on[METRICS_NCACHE];
    uint64_t ttl_ms[METRICS_NCACHE];
    struct cache_stats *st[METRICS_NCACHE];     /* the slot's, in shared memory */
    struct {
        int use;
        char vkey[CACHE_KEY_MAX];
    } pending[CACHING_PENDING];                 /* bumps waiting for the commit */
    size_t npending;
    struct caching_seen seen[CACHING_SEEN];
    struct caching_memo memo[CACHING_MEMOS];
    /* reading ahead (caching_ahead): the request's shape, what it read ahead
     * and what it read after its first round trip */
    struct caching_shape *shapes;               /* [CACHING_SHAPES], malloc'd */
    uint64_t shape;
    int phase;                                  /* 0 none, 1 first trip next, 2 learning */
    struct caching_stash stash[CACHING_AHEAD];
    size_t nstash;
    char late[CACHING_AHEAD][CACHE_KEY_MAX];
    size_t nlate;
};

/* A namespace of cached entries: its version key "{<mode>:<org>}:ver:<name>"
 * and its entries "{<mode>:<org>}:<name>:v<version>:<suffix>". */
struct caching_ns {
    int use;                    /* enum metrics_cache_use */
    char tag[CACHE_KEY_MAX / 4];        /* "{<mode>:<org>}:" */
    char name[CACHE_KEY_MAX / 4];
    char vkey[CACHE_KEY_MAX];
};

/* One versioned read, fetched with others in one round trip (caching_fetch)
 * and then served or loaded (caching_finish). */
struct caching_read {
    const struct caching_ns *ns;
    const char *suffix;         /* the entry within the namespace */
    cache_load_fn load;
    void *ctx;
    struct buf *out;            /* the value (JSON text) */
    bool found;                 /* false: a cached or loaded "none" */
    /* caching_fetch's */
    int vslot;
    int64_t ver, guess;
    char *cached;
    size_t cached_len;
};

/* openapi.c: a GET /openapi.json document a worker built, kept for the next
 * request that would build the same one: without a token (the route table
 * only: kept for the worker's life), or for a mode, while the app registry's
 * version and the schema versions of the services it lists are those it was
 * built at (read on every request, so a change on any worker holds from the
 * next one) and no older than [cache] schema_ttl. */
#define OPENAPI_KEPT 3              /* without a token, test, live */
#define OPENAPI_SERVICES 64         /* microservices a document lists */
struct openapi_kept {
    char *json;                     /* malloc'd; NULL: nothing kept */
    size_t len;
    int64_t at;                     /* when it was built (unix s) */
    int64_t apps_ver;               /* the app registry's version it was built at */
    size_t nsvc;
    char svc[OPENAPI_SERVICES][ENG_SLUG];      /* the services it lists */
    int64_t svc_ver[OPENAPI_SERVICES];         /* their schemas' versions in its mode */
};

/* Everything a worker process owns; made at start, freed at exit. The only
 * mutable state outside it are the signal flags in worker.c. */
struct worker {
    const struct config *cfg;
    int slot;                   /* logical fleet slot (metrics block) */
    int row;                    /* scoreboard row; -1 when run without a fleet */
    int listen_fd;
    int channel_fd;             /* to the master (connection hand-over); -1 when none */
    struct metrics *metrics;    /* shared; may be NULL (standalone worker) */
    struct scoreboard *sb;      /* shared; may be NULL */
    const struct fleet_shared *shared;
    struct router router;
    struct arena *arena;        /* the current request's; reset after each */
    struct reqid_gen ids;
    const char *labels[METRICS_MAX_ROUTES];
    size_t nlabels;
    uint64_t served;
    int64_t started_ms;
    FCGX_Request conn[WORKER_CONNS];

    /* storage and secrets, opened at start (worker_open_deps) */
    struct engine *engine;
    struct kv *kv;                  /* blacklist (and rate limits) */
    struct kv *cache_kv;            /* the read cache's: kv itself unless [cache] redis_url */
    struct caching caching;
    struct openapi_kept *openapi;   /* [OPENAPI_KEPT], malloc'd at first use; NULL: none yet */
    uint64_t auth_us, render_us;    /* this request's phases for the slowlog (with kv and engine busy_us) */
    struct jwt_keyset keys;
    struct crypto_keyring ring;
    struct password_cost pwcost;
    char *jwks;                     /* the JWKS document, made once */
    /* JWTs this worker has verified, by the SHA-256 the blacklist check computes
     * anyway: an Ed25519 verify costs as much as the rest of a cheap request.
     * The blacklist is still asked every time and exp is still honoured. */
    struct jwt_seen {
        char sha[ENG_HASH];
        char sub[ENG_ID];
        char org[ENG_ID];
        char fam[ENG_ID];
        int64_t exp, iat;
    } jwt_seen[JWT_SEEN_SLOTS];
    /* authn.c: an API key's org (it never changes; its state is the principal's) */
    struct authn_key_org {
        char sha[ENG_HASH];
        char org[ENG_ID];
    } key_orgs[AUTHN_KEY_ORGS];
};

/* What the master shares with every worker it forks. */
struct fleet_shared {
    struct metrics *metrics;
    struct scoreboard *sb;
    struct shm_region *data;        /* memory engine; NULL for postgres */
    struct shm_region *kvmem;       /* kv when no Redis is configured; NULL otherwise */
    const struct jwt_keyset *keys;  /* the JWT keys the master loaded (start, reload) */
};

/* Who is calling: set by the dispatcher for routes that need auth. */
struct principal {
    struct eng_scope scope;         /* org and mode of this request */
    char user_id[ENG_ID];           /* "" for an API key */
    char key_id[ENG_ID];            /* "" for a JWT */
    char key_creator[ENG_ID];       /* the user who made the API key */
    char family_id[ENG_ID];         /* refresh family of the JWT's session */
    char role[ENG_ROLE];
    struct eng_role perms;
    bool platform_admin;
    char token_sha[ENG_HASH];       /* the blacklist key's hash */
    int64_t token_exp;
    int64_t token_iat;              /* a JWT's; 0 for an API key */
    /* The org, and a JWT's user, as the principal cache holds them (an org
     * never changes after it is made; a user's email and creation neither):
     * /v1/orgs/current and /v1/auth/me answer without a query. The user's
     * email stays sealed (email_enc) and it has no password hash. */
    struct eng_org org;
    struct eng_user user;
};

/* A handler answers with respond_json (held until the request's work commits)
 * or respond_error, and returns 0; or it returns an err.h code and lets the
 * dispatcher answer with the mapped status. For routes with auth, p is the
 * caller and the engine's unit of work is open; otherwise p is NULL and a
 * handler that needs storage begins and commits its own. */
typedef int (*handler_fn)(struct worker *w, struct http_request *r, const struct principal *p);

/* AUTH_OPTIONAL: authenticated as AUTH_REQUIRED when the request has an
 * Authorization header (a bad one is still a 401), else run without a caller. */
enum route_auth { AUTH_NONE, AUTH_REQUIRED, AUTH_OPTIONAL };

struct app_route {
    handler_fn fn;
    const char *label;          /* metrics label, e.g. "GET /v1/auth/me" */
    int auth;                   /* enum route_auth */
    const char *perm;           /* action the caller needs on object "*", or NULL */
    /* for the OpenAPI document (openapi.c); summary NULL: not documented */
    const char *summary;
    const char *req, *res;      /* schema names in app/api/openapi.json; NULL: no body */
    const char *statuses;       /* the statuses it answers besides the common ones, "200 404" */
};

/* routes.c: the route table, its router rows and metrics labels. */
extern const struct route APP_ROUTES[];
extern const size_t APP_NROUTES;
/* Fills out with the metrics labels: one per route, then "unmatched" (the
 * index for requests no route took); returns how many. */
size_t app_route_labels(const char **out, size_t max);

/* respond.c: err.h code → HTTP status and error code; the only such mapping. */
/* Holds a reply (takes json) until the request's work has committed. */
int respond_json(struct http_request *r, int status, cJSON *json);
/* The same for a tree the request already owns (made with http_own). */
int respond_owned(struct http_request *r, int status, cJSON *json);
/* A request-owned {"data": []} for a list reply; *data is the array. NULL on ENOMEM. */
cJSON *respond_list(struct http_request *r, cJSON **data);
/* 422 validation_failed with details {field: reason}; takes details. */
int respond_invalid(struct http_request *r, cJSON *details);
int respond_status(int err, const char **code);
/* A sentence for a code a handler returned without answering (the envelope's
 * message when nothing more specific was said); never NULL. */
const char *respond_message(int err);
/* Sends the error envelope for err with message (a constant or arena string). */
int respond_error(struct http_request *r, int err, const char *message);

/* The password cost the config asks for: N = 2^auth.password_cost, r 8, p 1
 * (OWASP's scrypt parameters; only N is configurable). */
static inline struct password_cost app_password_cost(const struct config *cfg)
{
    return (struct password_cost){cfg->auth.password_cost, 8, 1};
}

#define HANDLER(name) int name(struct worker *w, struct http_request *r, const struct principal *p)

/* ops.c */
HANDLER(handle_ops_healthz);
HANDLER(handle_ops_readyz);
HANDLER(handle_ops_metrics);
HANDLER(handle_ops_fleet);
#ifdef TESSERA_TEST_HOOKS
HANDLER(handle_debug_sleep);
HANDLER(handle_debug_echo);
#endif

/* auth.c */
HANDLER(handle_auth_signup);
HANDLER(handle_auth_login);
HANDLER(handle_auth_refresh);
HANDLER(handle_auth_logout);
HANDLER(handle_auth_me);
HANDLER(handle_auth_jwks);
HANDLER(handle_keys_create);
HANDLER(handle_keys_list);
HANDLER(handle_keys_revoke);

/* orgs.c */
HANDLER(handle_orgs_current);
HANDLER(handle_members_list);
HANDLER(handle_members_invite);
HANDLER(handle_members_update);
HANDLER(handle_members_remove);
HANDLER(handle_roles_list);
HANDLER(handle_roles_create);
HANDLER(handle_invites_accept);
HANDLER(handle_roles_get);
HANDLER(handle_roles_update);
HANDLER(handle_roles_delete);

/* apps.c */
HANDLER(handle_apps_list);
HANDLER(handle_apps_create);

/* audit.c */
HANDLER(handle_audit_list);
/* Fills *a with a new entry (id, now) of org s; meta may be NULL (borrowed). */
int audit_entry(const struct eng_scope *s, const char *actor, const char *action, const char *target,
                const cJSON *meta, struct eng_audit *a) ERR_MUST_CHECK;
/* Appends an audit entry in the current unit of work; meta may be NULL (borrowed). */
int audit_record(struct worker *w, const struct eng_scope *s, const char *actor, const char *action,
                 const char *target, const cJSON *meta) ERR_MUST_CHECK;

/* schema.c: the MicroService API's schemas, and what records.c shares with it */
HANDLER(handle_schema_get);
HANDLER(handle_schema_put);
/* A field, resource or service name: ^[a-z][a-z0-9_]{0,62}$ and not reserved (id, version, …). */
bool svc_name_ok(const char *s);
/* 0 when service is an active microservice; otherwise sends the 404 and returns ERR_NOTFOUND. */
int svc_check(struct worker *w, struct http_request *r, const char *service);
/* svc_check and, when name is not NULL, its resource's definition into res
 * (404 "no such resource" sent when it has none): from the worker's copies
 * while the registry's and the schema's versions hold, one kv round trip for
 * both (caching.c). fresh: for a write, which must be checked against the
 * schema it will be stored under, not one a concurrent change is replacing:
 * the definition read in the unit of work, or the worker's copy held there
 * (engine_resource_hold: checked with the write, which runs again when it
 * changed meanwhile). p may be NULL only without a name. */
int svc_open(struct worker *w, struct http_request *r, const struct principal *p, const char *service,
             const char *name, bool fresh, struct eng_resource *res);
/* Returns owned: a resource's schema as the API shows it. */
cJSON *svc_resource_json(const struct eng_resource *res);

/* schema.c: a PUT body ({fields, options, rename}) into res and ren[ENG_MAX_FIELDS];
 * false with the reasons in details (a 422's) when it does not hold. */
bool svc_schema_parse(const cJSON *body, const char *service, const char *resource, struct eng_resource *res,
                      struct eng_rename *ren, size_t *nren, cJSON *details);

/* records.c, and what search.c shares with the list */
struct records_ctx {
    const char *service, *resource;
    char object[160];           /* "service/resource", the permission's object */
    struct eng_resource *res;   /* in the arena */
};
/* The route's service and resource, the caller's permission action on them
 * and the schema into c: 0, or the reply is sent (or an error returned). */
int records_open(struct worker *w, struct http_request *r, const struct principal *p, const char *action,
                 struct records_ctx *c);
/* Reply already sent by records_open: the handler returns 0; otherwise its error. */
#define RECORDS_OPEN_OR_RETURN(w, r, p, action, c)                          \
    do {                                                                    \
        int rc_ = records_open(w, r, p, action, c);                         \
        if (rc_ != 0)                                                       \
            return r->status != 0 ? 0 : rc_;                                \
    } while (0)
/* A list filter, key=op.value (the query string's form), into q's next
 * filter; NULL, or the reason it is refused (in the request's arena). */
const char *records_filter(struct worker *w, struct http_request *r, const struct principal *p,
                           const struct records_ctx *c, const char *key, const char *val, struct eng_query *q);
/* Returns owned: a record as the API shows it (pii opened, blind indexes left out). */
cJSON *records_json(struct worker *w, const struct principal *p, const struct records_ctx *c,
                    const struct eng_record *rec);
/* Puts value v (NULL or null: none) of field f into rec->data, sealed with AAD
 * org|service|resource|id|field and indexed in rec->bidx when f is pii. */
int records_set_value(const struct crypto_keyring *ring, const struct eng_scope *s, const char *service,
                      const char *resource, struct eng_record *rec, const struct eng_field *f,
                      const cJSON *v) ERR_MUST_CHECK;
HANDLER(handle_records_create);
HANDLER(handle_records_list);
HANDLER(handle_views_get);
HANDLER(handle_changes_list);
HANDLER(handle_records_get);
HANDLER(handle_records_update);
HANDLER(handle_records_delete);
/* search.c */
HANDLER(handle_records_search);
/* openapi.c: GET /openapi.json, this deployment's OpenAPI 3.1 document */
HANDLER(handle_openapi);
/* Frees the documents the worker kept (w->openapi); at exit. */
void openapi_forget(struct worker *w);

/* authn.c: the caller of a request, from its bearer token; opens the unit of work. */
int authn_principal(struct worker *w, struct http_request *r, struct principal *p);

/* caching.c: the read cache's uses (its header comment says how they are keyed
 * and invalidated). caching_open after the kv is open. */
int caching_open(struct worker *w) ERR_MUST_CHECK;
void caching_close(struct worker *w);
/* The namespaces (caching.c's header comment): ERR_TOOBIG if a name is too long. */
int caching_ns_principal(struct caching_ns *ns, const char *org) ERR_MUST_CHECK;
int caching_ns_records(struct caching_ns *ns, const struct eng_scope *s, const char *service,
                       const char *resource) ERR_MUST_CHECK;
/* A resource's views (the projector bumps it when it changed them). */
int caching_ns_views(struct caching_ns *ns, const struct eng_scope *s, const char *service,
                     const char *resource) ERR_MUST_CHECK;
int caching_ns_schema(struct caching_ns *ns, int mode, const char *service) ERR_MUST_CHECK;
int caching_ns_apps(struct caching_ns *ns) ERR_MUST_CHECK;
/* What a handler's write changed: ns's version is bumped once its unit of work commits. */
void caching_touch(struct worker *w, const struct caching_ns *ns);
void caching_touch_principal(struct worker *w, const char *org);
/* After a commit: the queued bumps (a failed one is logged and counted, never
 * the request's failure); after a rollback: forgets them. */
void caching_flush(struct worker *w);
void caching_drop(struct worker *w);
/* Commits the worker's unit of work and then runs the bumps it queued (every
 * handler that commits its own unit does it through this). */
int app_commit(struct worker *w) ERR_MUST_CHECK;
/* Whether use (enum metrics_cache_use) is switched on in [cache]. */
bool caching_on(const struct worker *w, int use);
/* A namespace of use `use`, its name printf-formatted. ERR_TOOBIG if too long. */
int caching_ns(struct caching_ns *ns, int use, const char *mode, const char *org, const char *fmt, ...)
    __attribute__((format(printf, 5, 6))) ERR_MUST_CHECK;
int caching_ns_key(const struct caching_ns *ns, int64_t ver, const char *suffix, char out[CACHE_KEY_MAX]) ERR_MUST_CHECK;
/* One kv round trip for the extra keys (raw values into xvals, Returns owned,
 * NULL when absent) and, for each read, its namespace's version and the entry
 * at the version this worker saw last. 0, or the kv's error (then nothing is
 * in xvals and every read will load: the cache fails open; what the extra keys
 * were for is the caller's to decide). At most KV_MGET_MAX keys travel: reads
 * past them ask later, alone. */
int caching_fetch(struct worker *w, struct caching_read *rd, size_t n, const char *const *extra, size_t nextra,
                  char **xvals, size_t *xlens) ERR_MUST_CHECK;
/* Serves rd from what the round trip brought, or through cache_remember at the
 * version read (loading directly when the cache is off or the kv failed).
 * 0, or the loader's error. */
int caching_finish(struct worker *w, struct caching_read *rd) ERR_MUST_CHECK;
/* Reading ahead. Before a request's first round trip (authn's), the request's
 * shape: the parts that decide which keys its handler will read (route, URI,
 * org, mode). That round trip then also reads the keys the same shape read
 * after it last time, and the later caching_fetch calls take them from there
 * instead of the kv (they only ever get a key's own value: a guess that no
 * longer holds costs the round trip it would have anyway). caching_end after
 * the reply: remembers this request's later keys for its shape, frees the
 * values read ahead. */
void caching_ahead(struct worker *w, const char *const *parts, size_t n);
void caching_end(struct worker *w);
/* Frees what caching_fetch kept for a read that caching_finish did not take. */
void caching_read_cleanup(struct caching_read *rd);
/* A worker's own copy of a small definition (an app, a resource's schema) as
 * loaded at version ver of its namespace (read by caching_fetch with a NULL
 * suffix): the version is asked on every use, so a change on any worker holds
 * from the next request; the copy is also dropped after the use's TTL.
 * caching_memo_get: 0 with *found and out filled, or ERR_NOTFOUND (load it and
 * caching_memo_put it). Nothing is kept for ver < 0 (the kv failed) or a use
 * switched off. */
int caching_memo_get(struct worker *w, const struct caching_ns *ns, int64_t ver, const char *name, void *out,
                     size_t size, bool *found) ERR_MUST_CHECK;
void caching_memo_put(struct worker *w, const struct caching_ns *ns, int64_t ver, const char *name, const void *val,
                      size_t size, bool found);
/* Drops every copy: a request runs again because one was out of date. */
void caching_memo_drop(struct worker *w);
int caching_remember(struct worker *w, int use, const char *key, cache_load_fn load, void *ctx,
                     struct buf *out, bool *found) ERR_MUST_CHECK;

/* tokens.c: issuing and hashing credentials */
/* SHA-256 hex of s. */
void token_sha256_hex(const char *s, size_t n, char out[ENG_HASH]);
/* Begins a session of user in scope (a new refresh family, with what
 * session_client keeps of r's client) and issues its first access and refresh
 * tokens; adds them to obj as access_token, refresh_token, token_type,
 * expires_in. Inside the caller's unit of work. */
int token_issue(struct worker *w, struct http_request *r, const struct eng_scope *s, const char *user_id,
                const char *role, cJSON *obj) ERR_MUST_CHECK;
#define TOKEN_REFRESH_TEXT 80   /* "rt_" + 66 base64url characters (tokens.c) + NUL, with room */
/* A new refresh token of user in scope, in family (a new one when NULL): its row
 * into t, not stored, and its text, shown once, into text; the text names
 * the scope (token_refresh_scope). */
int token_refresh_new(const struct config *cfg, const struct eng_scope *s, const char *user_id,
                      const char *family, int64_t now, struct eng_refresh *t,
                      char text[TOKEN_REFRESH_TEXT]) ERR_MUST_CHECK;
/* The scope (org and mode) a refresh token's text names; ERR_INVAL for a
 * text that names none (one issued before, or not a token of ours). Not a
 * proof of anything: only a row with the text's hash in that scope is. */
int token_refresh_scope(const char *text, struct eng_scope *s) ERR_MUST_CHECK;
/* A rotation's child text sealed for replays (AAD: parent's org and token
 * hash; seals of older builds, AAD org, family and id, still open), and back;
 * open fails (ERR_INVAL) on any other parent's row. */
int token_refresh_seal(const struct crypto_keyring *ring, const struct eng_refresh *parent, const char *text,
                       char out[ENG_SEALED]) ERR_MUST_CHECK;
int token_refresh_open(const struct crypto_keyring *ring, const struct eng_refresh *parent, const char *sealed,
                       char text[TOKEN_REFRESH_TEXT]) ERR_MUST_CHECK;
/* Signs an access token of the session (user, family) at now and adds it, with
 * refresh_text, to obj as token_issue does. */
int token_pair_json(struct worker *w, const struct eng_scope *s, const char *user_id, const char *role,
                    const char *family, const char *refresh_text, int64_t now, cJSON *obj) ERR_MUST_CHECK;
/* Normalizes an email (trim, lower-case) into out and checks its shape; ERR_INVAL otherwise. */
int email_normalize(const char *in, char *out, size_t outsz) ERR_MUST_CHECK;
/* Seals a normalized email into u->email_enc (AAD: the user id, already set)
 * and sets u->email_hmac, its blind index. */
int email_seal(const struct crypto_keyring *ring, struct eng_user *u, const char *email) ERR_MUST_CHECK;
/* The user's email, decrypted into out (arena); NULL when it does not open. */
const char *email_open(struct worker *w, struct http_request *r, const struct eng_user *u);

/* The password policy: signup, change and reset alike (bytes). */
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

/* account.c: a person's one-time tokens (password reset, email verification)
 * and the auth outbox that carries them to the deployment's mailer */
/* Makes a token of kind (enum eng_user_token_kind) for u at email and its
 * event, in the caller's unit of work. */
int account_token_issue(struct worker *w, const struct eng_user *u, const char *email, int kind) ERR_MUST_CHECK;
HANDLER(handle_auth_forgot);
HANDLER(handle_auth_reset);
HANDLER(handle_auth_verify);
HANDLER(handle_auth_verify_resend);
HANDLER(handle_admin_events);
HANDLER(handle_auth_erase);
HANDLER(handle_admin_user_erase);

/* sessions.c: a person's sessions (refresh families) and password */
/* What a session keeps of r's client, minimized: its User-Agent as printable
 * ASCII cut to ENG_UA - 1 bytes, its address as the /24 (IPv4) or /48 (IPv6)
 * it is in ("" when not an IP address). */
void session_client(struct http_request *r, struct eng_session *ss);
/* Refuses the access tokens of the sessions ids[0..n) from the next request
 * on every worker (the kv entries authn asks: bl:fam:<id>, as long as a token
 * lives). 0 or ERR_UNAVAILABLE (the caller answers 503: fail closed). */
int session_refuse_tokens(struct worker *w, const char (*ids)[ENG_ID], size_t n) ERR_MUST_CHECK;
/* Refuses every access token of user issued before now (bl:user:<id>). */
int session_refuse_user(struct worker *w, const char *user_id, int64_t now) ERR_MUST_CHECK;
HANDLER(handle_auth_password);
HANDLER(handle_sessions_list);
HANDLER(handle_sessions_end);
HANDLER(handle_members_sessions_end);

/* throttle.c: the failed-login throttle: failures per account and per client
 * address in kv windows, 429 with Retry-After past a limit; fails open (logged,
 * counted) when the kv is down. */
#define THROTTLE_KEY_MAX 96
struct login_throttle {
    char acct[THROTTLE_KEY_MAX];    /* thr:login:acct:<hmac of the normalized email> */
    char addr[THROTTLE_KEY_MAX];    /* thr:login:addr:<hmac of the client address> */
    bool down;                      /* a kv call failed: no more calls this request */
    const char *request_id;         /* borrowed from the request, for the log */
};
/* The keys of one login attempt: email as sent, the request's REMOTE_ADDR. */
int throttle_begin(struct worker *w, struct http_request *r, const char *email,
                   struct login_throttle *t) ERR_MUST_CHECK;
/* Before any lookup or password work: past a limit sends the 429 (r->status set)
 * and returns 0, as a handler does; 0 with nothing sent to go on. */
int throttle_check(struct worker *w, struct http_request *r, struct login_throttle *t) ERR_MUST_CHECK;
/* One failure (wrong password, unknown email) on both counts. */
void throttle_failed(struct worker *w, struct login_throttle *t);
/* Counts and checks only the client address from now on: asking for a reset
 * is throttled per address, so nobody can lock another person's account by
 * asking on their behalf. */
void throttle_address_only(struct login_throttle *t);
/* A login succeeded: its account's count starts again (the address's does not). */
void throttle_succeeded(struct worker *w, struct login_throttle *t);

/* worker.c: serves on listen_fd until told to stop; returns the exit status. */
/* The projector role (app/fleet/projector.c): no HTTP; projects the outbox
 * and runs the reaper until told to stop. Its exit status. */
int projector_run(const struct config *cfg, int listen_fd, int channel_fd, int slot, int row,
                  const struct fleet_shared *sh);
int worker_run(const struct config *cfg, int listen_fd, int channel_fd, int slot, int row,
               const struct fleet_shared *sh);

/* fleet.c: the master; returns the process exit status. The seed folders
 * (--seed, repeatable) are loaded in order into the memory engine before the
 * workers start. */
int fleet_run(const struct config *cfg, const char *config_path, const char *const *seeds, int nseeds);

/* seed.c: loads a seed folder's CSV files through the engine, all or nothing;
 * rows already present are left as they are, so a second run changes nothing. */
int seed_load(struct engine *e, const struct crypto_keyring *ring, const struct password_cost *cost,
              const char *dir, char errstr[256]) ERR_MUST_CHECK;

/* store.c: Returns owned (engine_free): the engine config names; data is the
 * memory engine's region (NULL for postgres). NULL with errstr when it cannot. */
struct engine *app_engine_new(const struct config *cfg, struct shm_region *data, char errstr[128]);

/* keys.c: the JWT key set the config names: auth.signing_key (signs), then
 * auth.verify_keys (previous keys, verify only), issuing under auth.jws_alg.
 * *ks is filled on success; on failure it is empty and errstr names the
 * config key and the file ("auth.signing_key: FILE: why"). */
int app_keys_load(const struct config *cfg, struct jwt_keyset *ks, char errstr[256]) ERR_MUST_CHECK;

/* admin.c: a platform admin with an organization of its own (owner); msg says
 * what happened, for the operator. */
int admin_create(struct engine *e, const struct crypto_keyring *ring, const struct password_cost *cost,
                 const char *email, const char *password, char *msg, size_t msgsz) ERR_MUST_CHECK;

/* placement.c: `tessera org place ORG DATABASE` (issue 18 §7): the exit
 * status (0 placed or already there; 1 refused or failed, said on stderr; 2
 * a usage or configuration error, the memory engine's among them). grace_ms:
 * how long requests already past authentication get to finish between the
 * change and the count that confirms it. */
int placement_org_place(const struct config *cfg, const char *org, const char *database, int grace_ms);

/* path.c: creates the folders above path ("build/run/x.sock" makes build/run),
 * the last with mode, those above it 0755; existing ones are left as they are.
 * A failure is not reported here: making the file itself fails next, naming it. */
void app_make_parent(const char *path, mode_t mode);

#endif
