/* engine_pg_int: what the PostgreSQL engine's core files share (engine_pg.c:
 * the handle, units of work, the audit relay, users, orgs, apps, upkeep and
 * the table; engine_pg_tenant.c: the tenant-scoped ops and the lookups by
 * hash): the handle's state and the statement helpers, static inline so each
 * file has its own. Private to lib/store/pg/. */
#ifndef LIB_ENGINE_PG_INT_H
#define LIB_ENGINE_PG_INT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/engine.h"
#include "store/pg/pg.h"

#define CORE_PATH "core, pg_catalog"
#define RELAY_MAX 4             /* relayed audit entries per unit of work (one schema change each) */
#define RELAY_BATCH 100         /* relay rows one maintenance pass delivers per mode */
#define AUDIT_MONTHS_AHEAD 3    /* partitions the maintenance keeps ahead of this month */

#define PGE_NAMES 32            /* services whose data schema name a worker keeps */
#define PGE_DEFS 16             /* resource definitions a worker keeps per store for list pages (~70 KB each) */
#define PGE_PLACES 8            /* [svc.*] placements, and as many [database.*] (CONFIG_PLACES_MAX) */
#define PGE_STORES (2 + 2 * 2 * PGE_PLACES)     /* the shared ones, then two per placement at most */
#define PGE_DSN 512

/* How long a search trusts an HNSW index it found without checking it
 * again: the one-round-trip search does not check it (two SQL functions that
 * cost a sixth of the search), and an index dropped by hand, which no
 * definition's version says, would make its scan an exact sort meanwhile
 * (right, slow). A clock that jumps checks early or late, no worse. */
#define PGE_HNSW_SECS 30

/* An HNSW index a search found for a field of a definition at its version:
 * pgvector's schema, so the next search of it is one round trip. */
struct pge_hnsw {
    char service[ENG_SLUG];
    char name[ENG_FIELD];
    char field[ENG_FIELD];
    int64_t version;            /* 0: empty */
    int metric;
    char ext[ENG_SLUG];
    int64_t learnt;             /* time(NULL) when found; known for PGE_HNSW_SECS */
};

/* A data store: one database as one mode's data reaches it (a pool, the
 * unit of work's transaction on it). Stores 0 and 1 are the shared ones
 * ([db] test_dsn / live_dsn, else core_dsn), by enum eng_mode; the others
 * are the placements' (issue 18 §7), one per distinct (DSN, mode): two
 * placements that name the same DSN share a store, so one unit of work never
 * holds two transactions on one database for one mode (a schema change
 * fanned out to both would wait for itself). */
struct pge_store {
    char label[80];             /* the pool's: "test", "svc.orders.live", "database.eu.test" */
    char dsn[PGE_DSN];
    int mode;
    struct pg_pool *pool;
    struct pg_tx tx;
    /* audit entries this unit relayed through core.audit_relay here: their
     * relay rows are dropped once data and core have both committed */
    char relay[RELAY_MAX][ENG_ID];
    int nrelay;
    /* definitions as last read here, for a list page's one round trip
     * (engine_pg_def_known), direct-mapped; allocated on first use */
    struct eng_resource *defs[PGE_DEFS];
    /* HNSW indexes found here (engine_pg_hnsw_known), slotted as defs; allocated on first use */
    struct pge_hnsw *hnsw;
    /* the definition the unit holds here for its writes (engine_pg_held) */
    struct {
        char service[ENG_SLUG];
        char name[ENG_FIELD];
        int64_t version;        /* 0: none */
    } held;
    /* the projector's wake-up (engine_pg_cqrs.c): a LISTEN connection per
     * distinct listen DSN, never pooled; NULL until the first wait */
    char listen_dsn[PGE_DSN];
    PGconn *listen;
    bool listening;             /* LISTEN in force on it (a round that applied events ends it) */
};

/* A placement as the engine resolves it: its store per mode. */
struct pge_place {
    char name[64];
    int store[2];
};

struct pge {
    struct pg_pool *core;
    struct eng_resource *spare_def;     /* pgrec_call_init's room, made at its first call */
    bool spare_lent;
    struct pg_tx core_tx;
    struct pge_store st[PGE_STORES];
    int nst;
    struct pge_place svc[PGE_PLACES];   /* [svc.<name>]: a service's data */
    int nsvc;
    struct pge_place db[PGE_PLACES];    /* [database.<name>]: orgs placed there */
    int ndb;
    bool in_tx;
    bool scoped;                /* begin got a scope: tenant calls must match it */
    struct eng_scope scope;
    /* an org's placement looked up in this unit (a scope that did not carry it) */
    char placed_org[ENG_ID];
    char placed_db[ENG_DB];
    bool placed_moving;
    /* core.svc_schema_name's answers (pgrec_schema_known), direct-mapped */
    struct {
        char service[ENG_SLUG];
        char schema[ENG_SLUG];
    } names[2][PGE_NAMES];
};

/* engine_pg.c: the store of (scope, service): the org's database when the org
 * is placed (the org's placement wins over the service's), else the
 * service's, else the shared one of the mode. ERR_UNAVAILABLE while the org's
 * placement changes, or when it names a database this configuration lacks. */
int engine_pg_route(struct engine *e, const struct eng_scope *s, const char *service, int *store);
/* The store a service's schema changes start in (its own database, else the
 * shared one), ignoring org placement: where its audit relay goes. */
int engine_pg_home(struct engine *e, int mode, const char *service);

/* ---- engine_pg_cqrs.c: the CQRS ops (lib/store/engine.h) ------------------- */
int pgc_project(struct engine *e, size_t max, eng_touch_fn touch, void *ctx, struct eng_projection *out);
int pgc_wait(struct engine *e, int timeout_ms);
int pgc_reap(struct engine *e, const struct eng_reap_policy *p, eng_touch_fn touch, void *ctx,
             struct eng_reaped *out);
int pgc_org_platform(struct engine *e, struct eng_org *out);
int pgc_view_read(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                  const char *view, cJSON **rows, bool *more, int64_t *pending_ms);
int pgc_changes_list(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                     uint64_t after, struct eng_change *out, size_t max, size_t *n, uint64_t *head);
/* engine_pg_place.c: placement (engine_ops.org_records, org_place, placement_sync). */
int pgp_org_records(struct engine *e, const struct eng_scope *s, int64_t *n, char where[80]);
int pgp_org_place(struct engine *e, const struct eng_scope *s, const char *database, bool moving);
int pgp_placement_sync(struct engine *e, const struct eng_scope *s, const char *database, int *made);
/* Closes the LISTEN connections (the handle's end). */
void pgc_listen_close(struct pge *g);

/* Arguments are checked by the wrappers (lib/store/engine.c); this one only
 * guards the arrays indexed by mode. */
static inline bool mode_ok(int mode)
{
    return mode == ENG_MODE_TEST || mode == ENG_MODE_LIVE;
}

/* ---- statements ------------------------------------------------------------ */

/* Which org a statement runs for: the call's scope; NULL for a global call
 * (users, apps, the SECURITY DEFINER lookups: no RLS, every name qualified). */
static inline int enter(struct engine *e, const struct eng_scope *s, bool tenant, const char **org)
{
    struct pge *g = e->impl;

    if (!g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "call outside a unit of work");
    if (tenant) {
        if (s == NULL)
            return engine_fail(e, ERR_INTERNAL, "tenant call without a scope");
        if (g->scoped && strcmp(s->org_id, g->scope.org_id) != 0)
            return engine_fail(e, ERR_INTERNAL, "tenant call for an org other than the one begun");
        *org = s->org_id;
    } else {
        *org = NULL; /* global tables, schema-qualified: no org needed (lib/store/pg/pg.h) */
    }
    return 0;
}

static inline int run_on(struct engine *e, struct pg_tx *tx, const char *org, const char *path,
                  const struct pg_stmt *st, size_t n, bool write, PGresult **res)
{
    char why[128] = "";
    int rc = pg_tx_run(tx, org, path, st, n, write, res, why);

    if (rc != 0) {
        e->retry = pg_tx_retryable(tx);
        return engine_fail(e, rc, "%s", why);
    }
    return 0;
}

/* One statement on the core pool; *res owned by the caller. write: it
 * changes data (it runs in the unit's explicit transaction, begun by it). */
static inline int q_any(struct engine *e, const struct eng_scope *s, bool tenant, bool write, const char *sql,
                 int n, const char *const *vals, PGresult **res)
{
    struct pge *g = e->impl;
    const struct pg_stmt st = {sql, n, vals, true, false}; /* every sql here is a string constant */
    const char *org = NULL;
    int rc;

    *res = NULL;
    if ((rc = enter(e, s, tenant, &org)) != 0)
        return rc;
    return run_on(e, &g->core_tx, org, CORE_PATH, &st, 1, write, res);
}

/* A read. */
static inline int q(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int n,
             const char *const *vals, PGresult **res)
{
    return q_any(e, s, tenant, false, sql, n, vals, res);
}

/* A write whose result is not needed beyond its row count. */
static inline int q_rows(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int n,
                  const char *const *vals, int *rows)
{
    PGresult *r;
    int rc = q_any(e, s, tenant, true, sql, n, vals, &r);

    if (rc == 0)
        *rows = PQntuples(r);
    PQclear(r);
    return rc;
}

/* A write that must touch a row (RETURNING 1): when it touched none, fails
 * with none and why (ERR_CONFLICT for an INSERT … ON CONFLICT DO NOTHING,
 * ERR_NOTFOUND for an UPDATE or DELETE that found nothing). */
static inline int q_must(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int n,
                         const char *const *vals, int none, const char *why)
{
    int rows, rc = q_rows(e, s, tenant, sql, n, vals, &rows);

    if (rc == 0 && rows == 0)
        rc = engine_fail(e, none, "%s", why);
    return rc;
}

/* Decodes row i of r into the struct at out (each table's X_row). */
typedef void pg_row_fn(const PGresult *r, int i, void *out);

/* The row sql finds, decoded by fill into out, or ERR_NOTFOUND "no such <what>". */
static inline int q_one(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int n,
                        const char *const *vals, const char *what, pg_row_fn *fill, void *out)
{
    PGresult *r;
    int rc = q(e, s, tenant, sql, n, vals, &r);

    if (rc == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such %s", what);
    else if (rc == 0)
        fill(r, 0, out);
    PQclear(r);
    return rc;
}

/* Appends rows of r, decoded by fill, to out (structs of size bytes) while *n < max. */
static inline void rows_into(const PGresult *r, pg_row_fn *fill, void *out, size_t size, size_t max, size_t *n)
{
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        fill(r, i, (char *)out + size * (*n)++);
}

/* A listing: the rows sql finds appended to out by fill (rows_into). */
static inline int q_list(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int nv,
                         const char *const *vals, pg_row_fn *fill, void *out, size_t size, size_t max,
                         size_t *n)
{
    PGresult *r;
    int rc = q(e, s, tenant, sql, nv, vals, &r);

    if (rc == 0)
        rows_into(r, fill, out, size, max, n);
    PQclear(r);
    return rc;
}

static inline void cpy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static inline int64_t i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static inline bool flag(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* Unix seconds as text for to_timestamp; "" (null) for 0 where a column is nullable. */
struct ts {
    char s[24];
};

static inline struct ts ts(int64_t v)
{
    struct ts t;
    snprintf(t.s, sizeof t.s, "%" PRId64, v);
    return t;
}

static inline const char *ts_or_null(const struct ts *t)
{
    return strcmp(t->s, "0") == 0 ? NULL : t->s;
}

#define EPOCH(col) "extract(epoch FROM " col ")::bigint"

#define MEMBER_COLS "org_id, user_id, role, " EPOCH("created_at")

static inline void member_row(const PGresult *r, int i, void *out)
{
    struct eng_membership *m = out;

    memset(m, 0, sizeof *m);
    cpy(m->org_id, sizeof m->org_id, r, i, 0);
    cpy(m->user_id, sizeof m->user_id, r, i, 1);
    cpy(m->role, sizeof m->role, r, i, 2);
    m->created_at = i64(r, i, 3);
}

static inline struct ts limit_of(size_t max)
{
    return ts(max > 100000 ? 100000 : (int64_t)max);
}

/* engine_pg_tenant.c: the ops of the table's tenant-scoped and bootstrap rows. */
int pg_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out);
int pg_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out);
int pg_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out);
int pg_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out);
int pg_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *m);
int pg_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                  struct eng_membership *out);
int pg_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                   size_t max, size_t *n);
int pg_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id);
int pg_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k);
int pg_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                    size_t max, size_t *n);
int pg_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
int pg_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t);
int pg_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                      const struct eng_refresh *child, const char *sealed, int64_t now,
                      int64_t reuse_interval, struct eng_rotation *out);
int pg_refresh_rotate_hash(struct engine *e, const struct eng_scope *s, const char *token_hash,
                           struct eng_refresh *child, const char *sealed, int64_t now, struct eng_rotation *out);
int pg_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                             int64_t at);
int pg_session_create(struct engine *e, const struct eng_scope *s, const struct eng_session *ss);
int pg_session_list(struct engine *e, const char *user_id, int64_t now, struct eng_session *out, size_t max,
                    size_t *n);
int pg_session_revoke(struct engine *e, const char *user_id, const char *org_id, const char *family,
                      const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n);
int pg_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i);
int pg_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at);
int pg_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a);
int pg_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
                  struct eng_audit *out, size_t max, size_t *n);

#endif
