/* engine: the storage interface between API handlers and data (DESIGN §3, §4).
 * Two implementations sit behind one table of function pointers: the memory
 * engine (engine_mem.c, one shared-memory region for the whole fleet) and the
 * PostgreSQL engine (engine_pg.c, RLS per request). Handlers never know which:
 * they call only the checked wrappers (engine_<op>, below the table), never
 * the table itself, so every argument is checked once for both engines.
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

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "core/err.h"

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
#define ENG_DB 32               /* a data database's name: "shared" or a [database.<name>] */

enum eng_mode { ENG_MODE_TEST = 0, ENG_MODE_LIVE = 1 };

/* Whose data a call may touch. */
struct eng_scope {
    char org_id[ENG_ID];
    int mode;                   /* enum eng_mode */
    /* Where the org's service data lives (issue 18 §7), as the caller learnt
     * it with the org (eng_org.database, carried in the cached principal):
     * "shared", a [database.<name>], or "" when the caller does not know (the
     * PostgreSQL engine then looks it up: one more round trip). The memory
     * engine has one store and ignores it. */
    char db[ENG_DB];
    bool db_moving;             /* a placement change in progress: data calls are refused (ERR_UNAVAILABLE) */
};

struct eng_org {
    char id[ENG_ID];
    char name[ENG_NAME];
    char slug[ENG_SLUG];        /* unique */
    char plan[ENG_ROLE];
    /* The platform's own organization (its admins' home, DESIGN §8): only such
     * an org may change a service's resource schemas. Set at creation only
     * (tessera admin create, seed data); signup never sets it. */
    bool platform;
    int64_t created_at;         /* unix seconds */
    /* Its placement (PostgreSQL; `tessera org place`): "shared" or the
     * [database.<name>] its service data lives in; moving while a change is
     * under way. "" on the memory engine. */
    char database[ENG_DB];
    bool moving;
};

struct eng_user {
    char id[ENG_ID];
    char email_enc[ENG_EMAIL_ENC];
    char email_hmac[ENG_HASH];  /* unique */
    char password_hash[ENG_PHC];
    bool is_platform_admin;
    int64_t created_at;
    int64_t email_verified_at;  /* 0: not yet */
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
    /* Made by a platform admin and saying so: acts as one (schema changes)
     * for as long as its creator still is one. */
    bool platform;
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

/* ---- refresh rotation (DESIGN §3: a family has at most one live token) ----
 * refresh_rotate spends a token and stores its successor in one step, atomic
 * against every other rotation of that token (the region's lock on memory, a
 * row lock and a compare-and-set on PostgreSQL), only while its user is a
 * member of the org, whose role it returns (the new access token's). The successor's text arrives
 * sealed by the caller (AES-GCM, AAD org|family|parent: lib/security/crypto.h), never
 * in the clear, and is kept only so that a replay of the parent within the
 * reuse interval can be given that same child. The seal is wiped as soon as
 * it can no longer be served: when the child rotates in its turn, or when
 * the family is revoked. Otherwise it lives on, unusable, until the parent
 * expires (refresh_ttl): after the interval no call ever returns it. */
#define ENG_SEALED 192          /* a sealed refresh token text (base64url) and its NUL */

enum eng_rotate_outcome {
    ENG_ROTATE_NEW = 1,         /* the parent was live: now used, the child stored with its seal */
    ENG_ROTATE_REPLAY,          /* the parent was rotated within the interval and that child is
                                 * still unused and live: out->child and out->sealed are it */
    ENG_ROTATE_REUSE,           /* the parent was spent otherwise (the grandparent, after the
                                 * interval, a child that rotated since): nothing changed; the
                                 * caller revokes the family and audits in the same unit */
    ENG_ROTATE_REVOKED,         /* the parent is revoked: nothing changed */
    ENG_ROTATE_NOT_MEMBER,      /* its user is no longer a member of the scope's org: nothing changed */
};

struct eng_rotation {
    int outcome;                /* enum eng_rotate_outcome */
    struct eng_refresh child;   /* REPLAY: the child the first use stored */
    char sealed[ENG_SEALED];    /* REPLAY: its seal, as that call gave it */
    char role[ENG_ROLE];        /* NEW, REPLAY: the user's role in the org, read in the same step */
};

/* A session: one refresh family, from the login that began it to its
 * revocation or its last token's expiry (DESIGN §3). What it keeps of the
 * client is minimized (seed 001): the user agent cut to ENG_UA - 1 bytes of
 * printable ASCII and the address as its network (/24, /48), gone with the
 * family when the reaper takes it. */
#define ENG_UA 128
#define ENG_ADDR 48                 /* "203.0.113.0/24", "2001:db8:1::/48" */
struct eng_session {
    char id[ENG_ID];            /* the refresh family's id */
    char org_id[ENG_ID];
    char user_id[ENG_ID];
    int mode;
    char user_agent[ENG_UA];
    char address[ENG_ADDR];
    int64_t created_at;
    int64_t last_used_at;       /* its last refresh; created_at until one */
    int64_t expires_at;         /* its newest refresh token's */
    int64_t revoked_at;         /* 0: live */
};
#define ENG_SESSIONS_MAX 200    /* a user's sessions one call lists or revokes */

/* A one-time token of a person's own (issue 17): a password reset or an
 * email verification. Stored as its hash only; used once, within its time. */
enum eng_user_token_kind { ENG_TOKEN_RESET = 1, ENG_TOKEN_VERIFY = 2 };
struct eng_user_token {
    char token_hash[ENG_HASH];  /* unique */
    int kind;                   /* enum eng_user_token_kind */
    char user_id[ENG_ID];
    int64_t created_at;
    int64_t expires_at;
    int64_t used_at;            /* 0: not yet */
};

/* The auth outbox: what a deployment's mailer sends (a reset link, a
 * verification link), committed with the token it carries and read by the
 * mailer from a cursor (at least once). The payload holds the address and
 * the token, so it is sealed by the caller (AES-GCM under the data key). */
#define ENG_EVENT_KIND 48
#define ENG_EVENT_SEALED 1024
struct eng_auth_event {
    int64_t seq;                /* the store's, increasing; 0 on append */
    char kind[ENG_EVENT_KIND];  /* "auth.password_reset_requested", … */
    char user_id[ENG_ID];
    char sealed[ENG_EVENT_SEALED];
    int64_t created_at;
    int64_t expires_at;         /* its token's: the reaper takes it past that and the grace */
};
#define ENG_EVENTS_MAX 100      /* events one auth_event_list call returns */

struct eng_invite {
    char id[ENG_ID];
    char org_id[ENG_ID];
    char role[ENG_ROLE];
    char token_hash[ENG_HASH];  /* unique */
    char created_by[ENG_ID];
    /* the invitee's email as a blind index (crypto_blind_index): only an
     * account with that email redeems it; "" for invites made before emails
     * were named (anyone holding the token) */
    char email_hmac[ENG_HASH];
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

/* ---- resources and records (the MicroService API, DESIGN §3, §5) ----------
 * A resource's schema belongs to a (service, mode), as the tables of
 * svc_<service>_sandbox / _live do on PostgreSQL, shared by every org (rows
 * under RLS); records belong to (org, service, mode, resource): two orgs, two
 * modes or two services never see each other's records.
 * Values travel as cJSON trees typed by the schema (null = no value):
 *   string, text  JSON string of at most ENG_STRING_MAX bytes
 *   integer       JSON number without fraction in ±ENG_INT_MAX (exact in a double)
 *   timestamp     the same, unix seconds
 *   number        finite JSON number;  boolean  true/false;  json  any value
 *   vector(N)     array of N finite numbers
 * A pii field (string or text) holds the caller's sealed text and the record's
 * bidx object its blind index under the field's name: the engine never sees the
 * plaintext, and filters such a field only by eq on the index.
 * Every record write appends an outbox entry in the same unit of work. */
#define ENG_FIELD 64                /* field and resource names: ^[a-z][a-z0-9_]{0,62}$ */
#define ENG_MAX_FIELDS 200
#define ENG_DEFAULT 256             /* a field's default, JSON text */
#define ENG_VIEWS 4096              /* options.views, JSON text */
#define ENG_STRING_MAX (64u * 1024) /* bytes in a string or text value */
#define ENG_INT_MAX 9007199254740991LL
#define ENG_VECTOR_MAX 4096         /* N of vector(N) */
#define ENG_MAX_FILTERS 16
#define ENG_IN_MAX 100              /* values of one `in` filter */

enum eng_ftype {
    ENG_FT_STRING = 1,
    ENG_FT_TEXT,
    ENG_FT_INTEGER,
    ENG_FT_NUMBER,
    ENG_FT_BOOLEAN,
    ENG_FT_TIMESTAMP,
    ENG_FT_JSON,
    ENG_FT_VECTOR,
};

struct eng_field {
    char name[ENG_FIELD];
    int type;                   /* enum eng_ftype */
    int dim;                    /* N of vector(N); 0 otherwise */
    int metric;                 /* vector fields: enum eng_metric, the index's and the search's
                                 * default (0 reads as cosine); 0 for every other type */
    bool required, pii, index;
    char def[ENG_DEFAULT];      /* default value as JSON text; "" when none */
};

/* A resource's schema. Large (about 70 KB): callers keep it off small stacks. */
struct eng_resource {
    char service[ENG_SLUG];
    char name[ENG_FIELD];
    int64_t version;            /* 1 for the first definition, +1 per change */
    int64_t expire_after;       /* seconds; 0: records never expire */
    char views[ENG_VIEWS];      /* JSON object text; "" when none */
    int64_t updated_at;
    int nfields;
    struct eng_field fields[ENG_MAX_FIELDS];
};

/* An explicit rename in a schema change: old field `from` is field `to` of the new definition. */
struct eng_rename {
    char from[ENG_FIELD];
    char to[ENG_FIELD];
};

/* Why resource_put refused a change (ERR_CONFLICT): the first field (in the
 * definition's order) that some record cannot take, how many records (of
 * every org) cannot take it, one of the caller's org's as a sample ("" when
 * only other orgs' records fail), and the reason. Never a value, never another
 * org's id. */
struct eng_schema_conflict {
    char field[ENG_FIELD];
    char record_id[ENG_ID];
    int64_t count;
    char reason[128];
};

/* A record. data and bidx are cJSON objects; who owns them is said per op. */
struct eng_record {
    char id[ENG_ID];            /* uuid v7, made by the caller */
    int64_t version;            /* 1 on create, +1 per update */
    int64_t created_at, updated_at;
    int64_t expires_at;         /* 0: never */
    cJSON *data;                /* field name → value */
    cJSON *bidx;                /* pii field name → blind index hex; may be NULL when none */
};

enum eng_filter_op {
    ENG_OP_EQ = 1, ENG_OP_NEQ, ENG_OP_GT, ENG_OP_GTE, ENG_OP_LT, ENG_OP_LTE,
    ENG_OP_LIKE,                /* SQL LIKE: % and _, \ escapes; case-sensitive */
    ENG_OP_IN,                  /* value: array */
    ENG_OP_IS,                  /* value: null, true or false */
};

/* One condition, as data (never text spliced into a query). The field is a
 * schema field or id, created_at, updated_at; value has the field's type (eq
 * on a pii field: the blind index hex). Comparisons with null are false, as
 * in SQL: only `is` matches null. */
struct eng_filter {
    char field[ENG_FIELD];
    int op;                     /* enum eng_filter_op */
    const cJSON *value;         /* Borrowed */
};

/* A list query: conditions ANDed; order by one field (id when ""), ties by id
 * in the same direction; nulls sort after every value (PostgreSQL's default).
 * Keyset: with has_after, only rows strictly after (after_value, after_id) in
 * that order. Expired rows (expires_at <= now) are never returned. */
struct eng_query {
    struct eng_filter filters[ENG_MAX_FILTERS];
    size_t nfilters;
    char order[ENG_FIELD];
    bool desc;
    bool has_after;
    const cJSON *after_value;   /* Borrowed; NULL or a cJSON null for null */
    char after_id[ENG_ID];
    int64_t now;
};

/* The outbox: one entry per record write, for the projector (DESIGN §6). */
struct eng_outbox {
    uint64_t seq;               /* increasing per (service, mode) */
    char org_id[ENG_ID];
    char service[ENG_SLUG];
    char resource[ENG_FIELD];
    char record_id[ENG_ID];
    char op[8];                 /* "create", "update", "delete" */
    int64_t version;
    int64_t created_at;
};

/* ---- vector search (DESIGN §5, §6) ---------------------------------------
 * The k live records of the scope's org nearest to a query vector in one
 * vector field, among those that pass the filters (as a list's, ANDed), read
 * in the request's unit of work: the mode's schema and RLS apply to the
 * candidates as to a list, and a record written earlier in the same unit, or
 * committed before it began, is found (no separate index to lag). Scores are
 * distances, smaller nearer, ties by id ascending:
 *   cosine  1 - a.q / (|a| |q|)    a record whose vector is all zeros never matches
 *   l2      |a - q|
 *   inner   -(a.q)                 (pgvector's <#>)
 * A record whose field is null never matches. An engine may answer from an
 * approximate index (PostgreSQL with pgvector: HNSW on a field flagged index,
 * for the field's metric): then *strategy says so; whenever the index gives
 * fewer than k rows it answers with an exact scan in the same unit, so k rows
 * come back whenever k match. */
enum eng_metric { ENG_METRIC_COSINE = 1, ENG_METRIC_L2, ENG_METRIC_INNER };
enum eng_strategy {
    ENG_STRATEGY_EXACT = 1,     /* every candidate scored: the true top k */
    ENG_STRATEGY_HNSW,          /* from the approximate index (may miss a nearer row) */
    ENG_STRATEGY_HNSW_EXACT,    /* the index gave fewer than k: then an exact scan */
};
#define ENG_SEARCH_K_MAX 1000

struct eng_search {
    char field[ENG_FIELD];      /* a vector field of the resource */
    int metric;                 /* enum eng_metric */
    const double *vector;       /* Borrowed: dim finite values (not all zero for cosine) */
    int dim;                    /* the field's N */
    size_t k;                   /* 1..ENG_SEARCH_K_MAX */
    const struct eng_query *where;  /* Borrowed: its filters and now; order and keyset are ignored */
};

/* One result: the record (Returns owned, as get) and its score. */
struct eng_hit {
    struct eng_record rec;
    double score;
};

/* ---- CQRS (DESIGN §6): the projector, views, the change feed, the reaper ----
 * Each record write's outbox entry is an event. project() takes every data
 * store's unprojected events in batches, oldest first, and in one unit of
 * work per batch: brings the views of each event's resource up to date with
 * the record as it is now, gives the event the next position of its org's
 * change feed, and marks it projected. Each record's contribution to each view
 * (its group and its summed values) is kept with the read model, so an event
 * applied twice, or made stale by a later write of the same record, changes
 * nothing: exactly once by construction, with no ordering assumption. A read
 * model whose definition (the resource's options.views, or the type of a
 * field one of its views names) differs from the one it was built for is
 * rebuilt from the records first, in the same unit: that is the back-fill of
 * a new view, the drop of a removed one, the rebuild after a retype.
 *
 * Feed positions are per org, increasing in the order events are projected;
 * one projector at a time assigns an org's (a lock on the org's feed head), so
 * a position becomes visible only once every smaller one is: a reader paging
 * by position never misses an event, and a record's changes appear in the
 * order of their versions. A rolled-back write has no event. Projected events
 * stay for the feed until the reaper trims them (changes_retention); the
 * org's trim point is the largest position trimmed.
 *
 * Views: options.views is {name: {"group_by": [fields], "count": bool,
 * "sum": [integer or number fields]}}. A view row is a cJSON object
 *   {"key": {field: value, …}, "count": n, "sum": {field: total, …}}
 * with "key" always (one member per group_by field, in order; null groups
 * with null, as SQL's GROUP BY), "count" when the view counts, "sum" when it
 * sums: the total of the group's non-null values (0 when none), an integer
 * for an integer field, a number for a number field. Views hold only their
 * org's rows: on PostgreSQL a table under the same forced RLS as every tenant
 * table, on memory the org's store. */
#define ENG_VIEW_ROWS_MAX 1000      /* groups view_read returns */

/* One change of the feed. */
struct eng_change {
    uint64_t pos;               /* the org's feed position (the cursor) */
    char record_id[ENG_ID];
    char op[8];                 /* "create", "update", "delete" */
    int64_t version;            /* the record's version after the change (a delete: the last + 1) */
    int64_t at;                 /* unix seconds: the write's updated_at, a delete's time */
};

/* What one project() call did. */
struct eng_projection {
    uint64_t applied;           /* events applied */
    uint64_t rebuilt;           /* read models built from their records */
    bool more;                  /* events were left (max reached): call again */
    int64_t pending_ms;         /* write time (unix ms) of the oldest event still unapplied; 0: none */
};

/* What the reaper may delete, and when. */
struct eng_reap_policy {
    int64_t now;                /* unix seconds */
    int64_t token_grace;        /* refresh tokens and invites stay this long past their expiry */
    int64_t changes_retention;  /* projected events stay this long for the feed */
    int audit_retention_months; /* audit older than this many whole months goes; 0: kept */
    size_t max;                 /* records deleted per resource per call, at most */
};

/* What one reap() call deleted. */
struct eng_reaped {
    uint64_t records;           /* past expires_at, with their sealed values and blind indexes */
    uint64_t refresh_tokens;
    uint64_t invites;
    uint64_t sessions;          /* past their last token's expiry and grace */
    uint64_t user_tokens;       /* resets and verifications past expiry and grace */
    uint64_t auth_events;       /* the auth outbox's, past their token's expiry and grace */
    uint64_t changes;           /* projected events past the retention */
    uint64_t audit_partitions;  /* PostgreSQL: monthly partitions dropped */
    uint64_t audit_entries;     /* memory: entries deleted */
};

/* Called by project() and reap(), after their unit commits, for each
 * (org and mode, service, resource) whose views (project) or records (reap)
 * changed: the caller bumps the cache versions that depend on them. */
typedef void (*eng_touch_fn)(void *ctx, const struct eng_scope *s, const char *service,
                             const char *resource);

/* A connection pool of an engine, for /readyz and /metrics. */
struct eng_pool_info {
    char name[80];              /* "core", "test", "live", "svc.<name>.<mode>", "database.<name>.<mode>" */
    bool used;                  /* opened at least once (pools open lazily) */
    int limit, open, busy;
    uint64_t connects, connect_errors, waits, errors, discards, round_trips, statements;
    int ping;                   /* with ping asked: 0 or why the pool is down */
    char error[96];
};

struct engine;

struct engine_ops {
    const char *name;
    int (*begin)(struct engine *e, const struct eng_scope *scope);
    int (*commit)(struct engine *e);
    void (*rollback)(struct engine *e);
    int (*ping)(struct engine *e);
    /* Optional (NULL: no pools). Up to max pools' figures into out; with ping,
     * each pool in use (and the core one always) is also asked to answer. */
    size_t (*pools)(struct engine *e, bool ping, struct eng_pool_info *out, size_t max);
    void (*free)(struct engine *e);

    /* global: users, orgs (creation), apps */
    int (*user_create)(struct engine *e, const struct eng_user *u);
    int (*user_get)(struct engine *e, const char *id, struct eng_user *out);
    int (*user_by_email)(struct engine *e, const char *email_hmac, struct eng_user *out);
    int (*user_set_password)(struct engine *e, const char *id, const char *phc);
    int (*user_set_admin)(struct engine *e, const char *id, bool admin);
    int (*user_memberships)(struct engine *e, const char *user_id, struct eng_membership *out,
                            size_t max, size_t *n);
    int (*user_set_verified)(struct engine *e, const char *id, int64_t at);
    /* Erases a person (issue 17): the user row (its sealed email and blind
     * index), their memberships, sessions and refresh tokens, the API keys
     * they made, the invites naming their email, their one-time tokens and
     * outbox events. Audit entries keep their actor id, which then names
     * nobody. out: the ids of the sessions that were live. */
    int (*user_erase)(struct engine *e, const char *id, int64_t now, char (*out)[ENG_ID], size_t max,
                      size_t *n);
    int (*user_token_create)(struct engine *e, const struct eng_user_token *t);
    /* Spends the token of that kind and hash: 0 with it in out (used_at set
     * to now), or ERR_NOTFOUND when there is none, it was used or it expired
     * (one answer for all three). Atomic against a concurrent use. */
    int (*user_token_use)(struct engine *e, int kind, const char *token_hash, int64_t now,
                          struct eng_user_token *out);
    /* ev->seq is ignored; *seq gets the one given */
    int (*auth_event_append)(struct engine *e, const struct eng_auth_event *ev, int64_t *seq);
    /* events with seq > after, in seq order */
    int (*auth_event_list)(struct engine *e, int64_t after, struct eng_auth_event *out, size_t max,
                           size_t *n);
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
    /* create: ERR_CONFLICT when the org has a role of that name; else
     * ERR_NOTFOUND when it has none. A built-in's name is ERR_CONFLICT. */
    int (*role_put)(struct engine *e, const struct eng_scope *s, const struct eng_role *r, bool create);
    /* ERR_NOTFOUND when the org has no role of that name; ERR_CONFLICT (and
     * nothing deleted) while a member, a live API key or an open invite holds
     * it: a principal whose role is gone would lose every permission at once. */
    int (*role_delete)(struct engine *e, const struct eng_scope *s, const char *name);
    int (*api_key_create)(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k);
    int (*api_key_list)(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                        size_t max, size_t *n);
    /* ERR_NOTFOUND for a key of another org or another mode */
    int (*api_key_revoke)(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
    int (*refresh_create)(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t);
    /* Rotates token parent_id of s's org (the section above): child is its successor
     * (same family, user and mode; created_at now), sealed the child's sealed text.
     * ERR_NOTFOUND when the org has no such token; ERR_INVAL for a child of another
     * family or a malformed one. reuse_interval in seconds. */
    int (*refresh_rotate)(struct engine *e, const struct eng_scope *s, const char *parent_id,
                          const struct eng_refresh *child, const char *sealed, int64_t now,
                          int64_t reuse_interval, struct eng_rotation *out);
    /* The rotation in one step, for a token whose text names its org and
     * mode (s): rotates the token of s's org and mode whose hash is
     * token_hash as refresh_rotate does (ENG_ROTATE_NEW) when it is live —
     * unused, unrevoked, unexpired at now — and its user still a member.
     * child comes without family_id and user_id, which the parent gives it
     * (both filled in on return). Anything else changes nothing and is
     * ERR_NOTFOUND, whatever the reason (no such token in s, used, revoked,
     * expired, not a member): the caller resolves and rotates the long way,
     * which tells those apart. */
    int (*refresh_rotate_hash)(struct engine *e, const struct eng_scope *s, const char *token_hash,
                               struct eng_refresh *child, const char *sealed, int64_t now,
                               struct eng_rotation *out);
    /* also ends the family's session (revoked_at) */
    int (*refresh_revoke_family)(struct engine *e, const struct eng_scope *s, const char *family_id,
                                 int64_t at);
    /* A new session; its family's first token is refresh_create's. A
     * rotation (ENG_ROTATE_NEW) moves its last_used_at and expires_at. */
    int (*session_create)(struct engine *e, const struct eng_scope *s, const struct eng_session *ss);
    /* global (a person's sessions span orgs): user_id's sessions neither
     * revoked nor expired at now, newest first */
    int (*session_list)(struct engine *e, const char *user_id, int64_t now, struct eng_session *out,
                        size_t max, size_t *n);
    /* global: ends user_id's live sessions and revokes their refresh
     * families — in org_id's org only unless it is "", only the one named
     * family unless it is "", all but except unless it is "". out: the ids
     * ended (their access tokens are the caller's to refuse). */
    int (*session_revoke)(struct engine *e, const char *user_id, const char *org_id, const char *family,
                          const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n);
    int (*invite_create)(struct engine *e, const struct eng_scope *s, const struct eng_invite *i);
    int (*invite_mark_used)(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
    int (*audit_append)(struct engine *e, const struct eng_scope *s, const struct eng_audit *a);
    int (*audit_list)(struct engine *e, const struct eng_scope *s, const char *before_id,
                      struct eng_audit *out, size_t max, size_t *n);

    /* resources and records (the section above). service must name an active
     * microservice (the caller checks the registry); the mode is the scope's. */
    /* ERR_NOTFOUND when the resource has no schema yet. Read for a write
     * (the unit then writes), it is the definition in force until the unit
     * ends: a schema change waits for the unit, or the unit for it. */
    int (*resource_get)(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *name, struct eng_resource *out);
    /* What resource_get gives a write, from a definition the caller read
     * before (def, at def->version) instead of a read: the unit's writes of
     * that resource use def, and the engine checks def is still the one in
     * force no later than with the unit's first write (PostgreSQL: a guard in
     * that write's round trip, sql/0013_write_guard.sql; memory: now, under
     * the unit's lock). A definition changed meanwhile fails the check with
     * ERR_CONFLICT and e->retry: nothing of the unit is kept, and the request
     * runs again reading it afresh. ERR_NOTFOUND: the resource is gone. */
    int (*resource_hold)(struct engine *e, const struct eng_scope *s, const struct eng_resource *def);
    /* Sorted by name. */
    int (*resource_list)(struct engine *e, const struct eng_scope *s, const char *service,
                         struct eng_resource *out, size_t max, size_t *n);
    /* Creates or changes def->name to exactly def (its version is ignored: the
     * engine sets the next one, and updated_at to now). Fields of the old
     * definition absent from def are dropped from every record; renamed ones
     * keep their values; retyped ones are cast in every record of every org
     * (strict: "12" → 12, "1.5" ↛ integer). ERR_CONFLICT with *why when a value
     * cannot cast, a new required field has no default while records exist,
     * a field becomes required while some record lacks it, or a pii field
     * is renamed or changes type or flag while records hold it (a sealed value
     * is bound to its field's name): then nothing has changed.
     * ERR_FORBIDDEN unless the scope's org is the platform's (eng_org.platform):
     * a schema is shared by every org, so no customer may shape it.
     * audit (borrowed, its org the scope's; NULL for seed data) is recorded with the change: both
     * commit or neither does, even where the data lives in another database
     * than the audit log (the PostgreSQL engine relays it; see engine_pg.c).
     * ERR_INVAL for a malformed def. */
    int (*resource_put)(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                        const struct eng_rename *ren, size_t nren, int64_t now,
                        const struct eng_audit *audit, struct eng_schema_conflict *why);
    /* Stores rec (data and bidx borrowed) with version 1. ERR_NOTFOUND without
     * a schema, ERR_INVAL when data does not fit it, ERR_CONFLICT for a taken id. */
    int (*record_create)(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_record *rec);
    /* Fills *out; out->data and out->bidx are Returns owned (eng_record_cleanup).
     * ERR_NOTFOUND for an absent, expired or other org's record. */
    int (*record_get)(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const char *id, int64_t now, struct eng_record *out);
    /* Replaces the data of rec->id with rec->data/bidx (borrowed) when its
     * version is if_version (0: any), else ERR_PRECONDITION; sets rec->version,
     * created_at and expires_at from storage (updated_at is the caller's). */
    int (*record_update)(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, struct eng_record *rec, int64_t if_version);
    /* As update for if_version; ERR_NOTFOUND as get. */
    int (*record_delete)(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const char *id, int64_t if_version, int64_t now);
    /* Up to max records of q's page into out (each Returns owned, as get).
     * ERR_INVAL for a filter or order on no such field. */
    int (*record_list)(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *resource, const struct eng_query *q, struct eng_record *out,
                       size_t max, size_t *n);
    /* Up to q->k nearest records into out (room for q->k; the section above),
     * nearest first, and how they were found in *strategy. ERR_INVAL for a
     * filter on no such field or a field that is not a vector of q->dim. */
    int (*record_search)(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_search *q, struct eng_hit *out,
                         size_t *n, int *strategy);
    /* The scope org's outbox entries of service after seq, oldest first. */
    int (*outbox_list)(struct engine *e, const struct eng_scope *s, const char *service,
                       uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n);

    /* CQRS (the section above). project, wait and reap run outside any unit
     * of work (each makes its own); view_read and changes_list inside one. */
    /* Applies up to max events of each data store (service, mode) that has
     * some, oldest first, in batches of units of work of its own. */
    int (*project)(struct engine *e, size_t max, eng_touch_fn touch, void *ctx,
                   struct eng_projection *out);
    /* Optional (NULL: the caller sleeps). Blocks until a record write may
     * have left events, timeout_ms passes or a signal arrives; 0 in each case.
     * An engine may stop listening while project keeps finding work (the
     * caller goes round again without waiting then); its next wait may
     * return at once, for a round to run before it blocks.
     * ERR_UNAVAILABLE when the wake-up source is down (the caller sleeps and
     * polls; the next call tries again). */
    int (*wait)(struct engine *e, int timeout_ms);
    /* Records past expires_at (as deletes, with their events), refresh tokens
     * and invites past expiry + grace, projected events past the retention,
     * audit past its retention (PostgreSQL: through a SECURITY DEFINER
     * function; the app role still cannot DROP or TRUNCATE). */
    int (*reap)(struct engine *e, const struct eng_reap_policy *p, eng_touch_fn touch, void *ctx,
                struct eng_reaped *out);
    /* The scope org's rows of view `view` of the resource (Returns owned: a
     * cJSON array of at most ENG_VIEW_ROWS_MAX rows, in no particular order;
     * *more when groups were left out), and *pending_ms: the write time (unix
     * ms) of the org's oldest event of that resource not applied yet, 0 when
     * none (a read model not yet rebuilt for the current definition answers
     * [] with the definition's time). ERR_NOTFOUND: no such resource or view. */
    int (*view_read)(struct engine *e, const struct eng_scope *s, const char *service,
                     const char *resource, const char *view, cJSON **rows, bool *more,
                     int64_t *pending_ms);
    /* The scope org's projected changes of the resource with after < pos <=
     * *head, in position order, up to max; *head is the org's feed head (its
     * last position) as read before the changes, so a page shorter than max
     * has all of them up to *head. after 0: from the oldest kept. ERR_GONE
     * when after > 0 and after is below the org's trim point (changes after
     * it may be gone). ERR_NOTFOUND: no such resource. */
    int (*changes_list)(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, uint64_t after, struct eng_change *out, size_t max,
                        size_t *n, uint64_t *head);
    /* The platform's own organization (eng_org.platform; the oldest when
     * several), global. ERR_NOTFOUND when there is none. */
    int (*org_platform)(struct engine *e, struct eng_org *out);

    /* Optional (NULL: nothing to keep). The store's upkeep, run outside any
     * unit of work by the fleet's maintenance process at start and then
     * periodically: audit partitions made ahead, relayed audit entries
     * delivered. What it did goes into report (a line for the log; "" when
     * there was nothing to do). */
    int (*maintain)(struct engine *e, int64_t now, char report[256]);

    /* Optional (NULL: one store, where placement means nothing). Placement
     * of an org's service data (issue 18 §7), inside a unit of work:
     * org_records counts the scope org's records in every data database the
     * engine knows, both modes (*n; where: the first database holding any,
     * "" when none); org_place records the org's placement ("shared" or a
     * configured database; ERR_NOTFOUND for a name the configuration does
     * not have), moving while data calls must be refused; placement_sync
     * makes, in database's stores, every resource definition the services'
     * home databases have and it lacks (*made: how many), as the platform
     * org s (schema changes are the platform's). */
    int (*org_records)(struct engine *e, const struct eng_scope *s, int64_t *n, char where[80]);
    int (*org_place)(struct engine *e, const struct eng_scope *s, const char *database, bool moving);
    int (*placement_sync)(struct engine *e, const struct eng_scope *s, const char *database, int *made);
};

/* The handle: an implementation's table and state, and the reason of the last failure. */
struct engine {
    const struct engine_ops *ops;
    void *impl;
    char errstr[128];
    /* the unit of work failed in a way the whole request may simply run
     * again: nothing of it was kept (a serialization failure, a deadlock, a
     * definition that changed under a write); cleared by engine_begin */
    bool retry;
    /* set by an owner that runs a unit failing with ERR_CONFLICT again from
     * its start (app/fleet/worker.c): an engine may then hold a write back
     * to its commit, where a taken key is that ERR_CONFLICT */
    bool reruns;
    uint64_t busy_us;           /* time spent in the ops the wrappers ran (the slowlog's engine phase); the owner resets it */
};

/* ---- the wrappers: how everything above the engines calls them ----------
 * One per op, as kv.h has. Each checks its arguments once for both engines
 * before the op runs (so before any unit of work or connection is needed):
 * pointers present, ids canonical uuids (core/uuid.h) wherever an id is an
 * id, hashes 64 lowercase hex, strings ending inside their fields (and non-
 * empty where a key or name), modes ENG_MODE_TEST/LIVE, list arguments sane
 * (n set, out present unless max is 0; *n is 0 on any failure), the scope's
 * org a uuid, and service/resource names eng_name_valid. A failed check is
 * ERR_INVAL ("<engine>: <op>: <argument> <why>" in errstr) and reaches no
 * store; a record (membership, role, key, token, invite, audit entry) naming
 * an org other than its scope's is a handler bug, ERR_INTERNAL. What the
 * engine.h comments above say of each op holds for its wrapper. */

/* Starts the request's unit of work; scope may be NULL for global-only work.
 * ERR_UNAVAILABLE when the store cannot be reached. */
int engine_begin(struct engine *e, const struct eng_scope *s) ERR_MUST_CHECK;
int engine_commit(struct engine *e) ERR_MUST_CHECK;
/* Undoes the unit of work; outside one it does nothing. */
void engine_rollback(struct engine *e);
/* Borrowed (static): "memory", "postgres". */
const char *engine_name(const struct engine *e);
/* 0 if the store answers (outside a unit of work; inside one, 0). */
int engine_ping(struct engine *e) ERR_MUST_CHECK;
/* Up to max pools' figures into out, how many were written (0 for an engine
 * without pools); with ping, each pool in use (and the core one) is asked too. */
size_t engine_pools(struct engine *e, bool ping, struct eng_pool_info *out, size_t max);
/* The store's upkeep (engine_ops.maintain), outside any unit of work; report
 * is "" when there was nothing to do (always for an engine without upkeep). */
int engine_maintain(struct engine *e, int64_t now, char report[256]) ERR_MUST_CHECK;

int engine_user_create(struct engine *e, const struct eng_user *u) ERR_MUST_CHECK;
int engine_user_get(struct engine *e, const char *id, struct eng_user *out) ERR_MUST_CHECK;
int engine_user_by_email(struct engine *e, const char *email_hmac, struct eng_user *out) ERR_MUST_CHECK;
/* phc: a non-empty PHC string shorter than ENG_PHC. */
int engine_user_set_password(struct engine *e, const char *id, const char *phc) ERR_MUST_CHECK;
int engine_user_set_admin(struct engine *e, const char *id, bool admin) ERR_MUST_CHECK;
int engine_user_memberships(struct engine *e, const char *user_id, struct eng_membership *out,
                            size_t max, size_t *n) ERR_MUST_CHECK;
/* at > 0. */
int engine_user_set_verified(struct engine *e, const char *id, int64_t at) ERR_MUST_CHECK;
/* now > 0. */
int engine_user_erase(struct engine *e, const char *id, int64_t now, char (*out)[ENG_ID], size_t max,
                      size_t *n) ERR_MUST_CHECK;
/* kind one of enum eng_user_token_kind; created_at > 0, expires_at > created_at, used_at 0. */
int engine_user_token_create(struct engine *e, const struct eng_user_token *t) ERR_MUST_CHECK;
int engine_user_token_use(struct engine *e, int kind, const char *token_hash, int64_t now,
                          struct eng_user_token *out) ERR_MUST_CHECK;
/* kind an identifier-like text, sealed non-empty, times > 0. */
int engine_auth_event_append(struct engine *e, const struct eng_auth_event *ev, int64_t *seq) ERR_MUST_CHECK;
/* after >= 0. */
int engine_auth_event_list(struct engine *e, int64_t after, struct eng_auth_event *out, size_t max,
                           size_t *n) ERR_MUST_CHECK;
int engine_org_create(struct engine *e, const struct eng_org *o) ERR_MUST_CHECK;
int engine_app_create(struct engine *e, const struct eng_app *a) ERR_MUST_CHECK;
int engine_app_get(struct engine *e, const char *name, struct eng_app *out) ERR_MUST_CHECK;
int engine_app_list(struct engine *e, struct eng_app *out, size_t max, size_t *n) ERR_MUST_CHECK;
int engine_role_builtin(struct engine *e, const char *name, struct eng_role *out) ERR_MUST_CHECK;

int engine_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out) ERR_MUST_CHECK;
int engine_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out) ERR_MUST_CHECK;
int engine_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out) ERR_MUST_CHECK;

int engine_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out) ERR_MUST_CHECK;
int engine_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *m) ERR_MUST_CHECK;
int engine_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                      struct eng_membership *out) ERR_MUST_CHECK;
int engine_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                       size_t max, size_t *n) ERR_MUST_CHECK;
int engine_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id) ERR_MUST_CHECK;
int engine_role_get(struct engine *e, const struct eng_scope *s, const char *name,
                    struct eng_role *out) ERR_MUST_CHECK;
int engine_role_list(struct engine *e, const struct eng_scope *s, struct eng_role *out, size_t max,
                     size_t *n) ERR_MUST_CHECK;
int engine_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *r,
                    bool create) ERR_MUST_CHECK;
int engine_role_delete(struct engine *e, const struct eng_scope *s, const char *name) ERR_MUST_CHECK;
int engine_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k) ERR_MUST_CHECK;
int engine_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                        size_t max, size_t *n) ERR_MUST_CHECK;
/* at > 0. */
int engine_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at) ERR_MUST_CHECK;
int engine_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t) ERR_MUST_CHECK;
/* child as refresh_create wants it, unused and unrevoked; sealed non-empty and
 * shorter than ENG_SEALED; now > 0, reuse_interval >= 0. */
int engine_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                          const struct eng_refresh *child, const char *sealed, int64_t now,
                          int64_t reuse_interval, struct eng_rotation *out) ERR_MUST_CHECK;
/* token_hash a SHA-256 hex; child as refresh_create wants it but with
 * family_id and user_id empty; sealed and now as refresh_rotate's. */
int engine_refresh_rotate_hash(struct engine *e, const struct eng_scope *s, const char *token_hash,
                               struct eng_refresh *child, const char *sealed, int64_t now,
                               struct eng_rotation *out) ERR_MUST_CHECK;
/* at > 0. */
int engine_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                                 int64_t at) ERR_MUST_CHECK;
/* ss in s's org and mode; ids uuids; times: created_at > 0, the others >= 0. */
int engine_session_create(struct engine *e, const struct eng_scope *s, const struct eng_session *ss) ERR_MUST_CHECK;
int engine_session_list(struct engine *e, const char *user_id, int64_t now, struct eng_session *out, size_t max,
                        size_t *n) ERR_MUST_CHECK;
/* org_id, family, except: "" or uuids; at > 0. */
int engine_session_revoke(struct engine *e, const char *user_id, const char *org_id, const char *family,
                          const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n) ERR_MUST_CHECK;
int engine_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i) ERR_MUST_CHECK;
/* at > 0. */
int engine_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at) ERR_MUST_CHECK;
int engine_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a) ERR_MUST_CHECK;
/* before_id: NULL or "" for the newest page, else an entry's id (a uuid). */
int engine_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
                      struct eng_audit *out, size_t max, size_t *n) ERR_MUST_CHECK;

int engine_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *name, struct eng_resource *out) ERR_MUST_CHECK;
int engine_resource_hold(struct engine *e, const struct eng_scope *s, const struct eng_resource *def) ERR_MUST_CHECK;
int engine_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                         struct eng_resource *out, size_t max, size_t *n) ERR_MUST_CHECK;
/* ren may be NULL only with nren 0; audit may be NULL (seed data); why may be NULL. */
int engine_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                        const struct eng_rename *ren, size_t nren, int64_t now,
                        const struct eng_audit *audit, struct eng_schema_conflict *why) ERR_MUST_CHECK;
int engine_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_record *rec) ERR_MUST_CHECK;
int engine_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const char *id, int64_t now, struct eng_record *out) ERR_MUST_CHECK;
/* if_version >= 0. */
int engine_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, struct eng_record *rec, int64_t if_version) ERR_MUST_CHECK;
int engine_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const char *id, int64_t if_version, int64_t now) ERR_MUST_CHECK;
int engine_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *resource, const struct eng_query *q, struct eng_record *out,
                       size_t max, size_t *n) ERR_MUST_CHECK;
/* q as engine_ops.record_search has it (k, dim, metric and every value checked here). */
int engine_record_search(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_search *q, struct eng_hit *out,
                         size_t *n, int *strategy) ERR_MUST_CHECK;
int engine_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                       uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n) ERR_MUST_CHECK;

/* CQRS. max > 0; touch may be NULL; out is zeroed first. */
int engine_project(struct engine *e, size_t max, eng_touch_fn touch, void *ctx,
                   struct eng_projection *out) ERR_MUST_CHECK;
/* timeout_ms >= 0; without a wake-up source (ops.wait NULL) it sleeps timeout_ms. */
int engine_wait(struct engine *e, int timeout_ms) ERR_MUST_CHECK;
/* p->now > 0, the durations >= 0, p->max > 0; out is zeroed first. */
int engine_reap(struct engine *e, const struct eng_reap_policy *p, eng_touch_fn touch, void *ctx,
                struct eng_reaped *out) ERR_MUST_CHECK;
/* view: a name as eng_name_valid; *rows NULL on failure. */
int engine_view_read(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                     const char *view, cJSON **rows, bool *more, int64_t *pending_ms) ERR_MUST_CHECK;
int engine_changes_list(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                        uint64_t after, struct eng_change *out, size_t max, size_t *n,
                        uint64_t *head) ERR_MUST_CHECK;
int engine_org_platform(struct engine *e, struct eng_org *out) ERR_MUST_CHECK;
/* Placement (engine_ops.org_records, org_place, placement_sync): ERR_INTERNAL
 * "not provided by this engine" on the memory engine. */
int engine_org_records(struct engine *e, const struct eng_scope *s, int64_t *n, char where[80]) ERR_MUST_CHECK;
int engine_org_place(struct engine *e, const struct eng_scope *s, const char *database, bool moving) ERR_MUST_CHECK;
int engine_placement_sync(struct engine *e, const struct eng_scope *s, const char *database,
                          int *made) ERR_MUST_CHECK;

/* For the engines: "<engine's name>: <fmt>" into e->errstr; returns rc. The
 * one formatter of every engine failure, so each reason names its engine. */
int engine_fail(struct engine *e, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int engine_vfail(struct engine *e, int rc, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Frees the engine; NULL is a no-op. */
void engine_free(struct engine *e);

/* Built-in roles and their permissions (DESIGN §4), shared by both engines so
 * they cannot drift: owner, admin, member, viewer. */
extern const struct eng_role ENGINE_BUILTIN_ROLES[];
extern const size_t ENGINE_NBUILTIN_ROLES;
/* Borrowed: the built-in role named name, or NULL (also for NULL). */
const struct eng_role *engine_builtin_role(const char *name);

/* "test" / "live" ↔ enum eng_mode; -1 for anything else. */
int engine_mode_parse(const char *s);
const char *engine_mode_name(int mode);

/* Whether a replay of parent (used) gets child (the one its rotation stored; NULL
 * when none is kept any more) at now: both engines decide a rotation by this. */
bool eng_refresh_replayable(const struct eng_refresh *parent, const struct eng_refresh *child,
                            int64_t now, int64_t reuse_interval);

/* The rules of the resources section that both engines and the API share
 * (types, names, value checks and casts): store/values.h. */
#include "store/values.h"

#endif
