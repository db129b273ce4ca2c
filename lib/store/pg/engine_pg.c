/* engine_pg: the core half of the PostgreSQL engine (users, orgs, members,
 * roles, keys, tokens, invites, apps, audit); resources and records are in
 * engine_pg_records.c.
 *
 * Every statement is a constant string with $n parameters. Timestamps cross
 * as unix seconds (to_timestamp / extract(epoch)), 0 meaning SQL null where a
 * column is nullable, as struct fields do. Arguments arrive checked by the
 * wrappers (lib/store/engine.c): every id is a canonical uuid before it
 * reaches a uuid parameter, so a malformed one is ERR_INVAL there, as on the
 * memory engine, and never a cast error that would spoil the transaction.
 *
 * Built-in roles come from ENGINE_BUILTIN_ROLES, the table both engines share
 * (sql/0001_core.sql seeds the same list, and the suite checks they agree). */
#include "store/pg/engine_pg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/engine_pg_records.h"
#include "store/pg/pg.h"

#define CORE_PATH "core, pg_catalog"
#define RELAY_MAX 4             /* relayed audit entries per unit of work (one schema change each) */
#define RELAY_BATCH 100         /* relay rows one maintenance pass delivers per mode */
#define AUDIT_MONTHS_AHEAD 3    /* partitions the maintenance keeps ahead of this month */

struct pge {
    struct pg_pool *core;
    struct pg_pool *data[2];    /* by enum eng_mode; opened lazily */
    struct pg_tx core_tx;
    struct pg_tx data_tx[2];
    bool in_tx;
    bool scoped;                /* begin got a scope: tenant calls must match it */
    struct eng_scope scope;
    /* audit entries this unit relayed through core.audit_relay, by mode: their
     * relay rows are dropped once data and core have both committed */
    char relay[2][RELAY_MAX][ENG_ID];
    int nrelay[2];
};

/* The records code's name for engine_fail, until it calls that itself. */
int engine_pg_fail(struct engine *e, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    engine_vfail(e, rc, fmt, ap);
    va_end(ap);
    return rc;
}

/* Arguments are checked by the wrappers (lib/store/engine.c); this one only
 * guards the arrays indexed by mode. */
static bool mode_ok(int mode)
{
    return mode == ENG_MODE_TEST || mode == ENG_MODE_LIVE;
}

/* ---- statements ------------------------------------------------------------ */

/* Which org a statement runs for: the call's scope; NULL for a global call
 * (users, apps, the SECURITY DEFINER lookups: no RLS, every name qualified). */
static int enter(struct engine *e, const struct eng_scope *s, bool tenant, const char **org)
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

static int run_on(struct engine *e, struct pg_tx *tx, const char *org, const char *path,
                  const struct pg_stmt *st, size_t n, bool write, PGresult **res)
{
    char why[128] = "";
    int rc = pg_tx_run(tx, org, path, st, n, write, res, why);

    if (rc != 0)
        return engine_fail(e, rc, "%s", why);
    return 0;
}

int engine_pg_core(struct engine *e, const struct eng_scope *s, const struct pg_stmt *st, size_t n,
                   PGresult **res)
{
    struct pge *g = e->impl;
    const char *org = NULL;
    int rc;

    if ((rc = enter(e, s, s != NULL, &org)) != 0)
        return rc;
    return run_on(e, &g->core_tx, org, CORE_PATH, st, n, true, res);
}

static int data_run(struct engine *e, const struct eng_scope *s, const char *search_path,
                    const struct pg_stmt *st, size_t n, bool write, PGresult **res)
{
    struct pge *g = e->impl;
    const char *org = NULL;
    int rc;

    if ((rc = enter(e, s, true, &org)) != 0)
        return rc;
    if (!mode_ok(s->mode))
        return engine_fail(e, ERR_INTERNAL, "bad mode");
    return run_on(e, &g->data_tx[s->mode], org, search_path, st, n, write, res);
}

int engine_pg_data(struct engine *e, const struct eng_scope *s, const char *search_path,
                   const struct pg_stmt *st, size_t n, PGresult **res)
{
    return data_run(e, s, search_path, st, n, true, res);
}

int engine_pg_data_read(struct engine *e, const struct eng_scope *s, const char *search_path,
                        const struct pg_stmt *st, size_t n, PGresult **res)
{
    return data_run(e, s, search_path, st, n, false, res);
}

/* One statement on the core pool; *res owned by the caller. write: it
 * changes data (it runs in the unit's explicit transaction, begun by it). */
static int q_any(struct engine *e, const struct eng_scope *s, bool tenant, bool write, const char *sql,
                 int n, const char *const *vals, PGresult **res)
{
    struct pge *g = e->impl;
    const struct pg_stmt st = {sql, n, vals, true}; /* every sql here is a string constant */
    const char *org = NULL;
    int rc;

    *res = NULL;
    if ((rc = enter(e, s, tenant, &org)) != 0)
        return rc;
    return run_on(e, &g->core_tx, org, CORE_PATH, &st, 1, write, res);
}

/* A read. */
static int q(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int n,
             const char *const *vals, PGresult **res)
{
    return q_any(e, s, tenant, false, sql, n, vals, res);
}

/* A write whose result is not needed beyond its row count. */
static int q_rows(struct engine *e, const struct eng_scope *s, bool tenant, const char *sql, int n,
                  const char *const *vals, int *rows)
{
    PGresult *r;
    int rc = q_any(e, s, tenant, true, sql, n, vals, &r);

    if (rc == 0)
        *rows = PQntuples(r);
    PQclear(r);
    return rc;
}

static void cpy(char *dst, size_t cap, const PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static int64_t i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool flag(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* Unix seconds as text for to_timestamp; "" (null) for 0 where a column is nullable. */
struct ts {
    char s[24];
};

static struct ts ts(int64_t v)
{
    struct ts t;
    snprintf(t.s, sizeof t.s, "%" PRId64, v);
    return t;
}

static const char *ts_or_null(const struct ts *t)
{
    return strcmp(t->s, "0") == 0 ? NULL : t->s;
}

#define EPOCH(col) "extract(epoch FROM " col ")::bigint"

/* ---- units of work ---------------------------------------------------------- */

static int pg_begin(struct engine *e, const struct eng_scope *s)
{
    struct pge *g = e->impl;

    if (g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "begin inside a unit of work");
    g->in_tx = true;
    g->scoped = s != NULL;
    if (s != NULL)
        g->scope = *s;
    return 0; /* transactions begin with their first statement */
}

static void end(struct pge *g)
{
    g->in_tx = false;
    g->scoped = false;
    g->nrelay[0] = g->nrelay[1] = 0;
}

static int pg_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a);

int engine_pg_relayed(struct engine *e, const struct eng_scope *s, const struct eng_audit *audit)
{
    struct pge *g = e->impl;
    int rc;

    if (!mode_ok(s->mode) || g->nrelay[s->mode] == RELAY_MAX)
        return engine_fail(e, ERR_INTERNAL, "too many relayed audit entries in one unit of work");
    if ((rc = pg_audit_append(e, s, audit)) != 0)
        return rc;
    snprintf(g->relay[s->mode][g->nrelay[s->mode]++], ENG_ID, "%s", audit->id);
    return 0;
}

/* "{id,id}" for a uuid[] parameter; ids are canonical uuids (checked when relayed). */
static void uuid_array(char (*ids)[ENG_ID], int n, char *out, size_t cap)
{
    size_t len = 0;

    out[len++] = '{';
    for (int i = 0; i < n && len + ENG_ID + 2 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", ids[i]);
    snprintf(out + len, cap - len, "}");
}

/* Drops the relay rows of mode whose entries core.audit_log now holds, on a
 * unit of its own. A failure only leaves them for the maintenance run, which
 * finds the entries already logged (ON CONFLICT DO NOTHING). */
static int relay_done(struct engine *e, int mode, char (*ids)[ENG_ID], int n)
{
    struct pge *g = e->impl;
    char arr[RELAY_BATCH * (ENG_ID + 1) + 4], why[128] = "";
    PGresult *r = NULL;
    int rc;

    uuid_array(ids, n, arr, sizeof arr);
    const struct pg_stmt st = {"SELECT core.audit_relay_done($1::uuid[])", 1, (const char *[]){arr}, true};
    rc = pg_tx_run(&g->data_tx[mode], NULL, CORE_PATH, &st, 1, true, &r, why);
    PQclear(r);
    if (rc == 0)
        rc = pg_tx_commit(&g->data_tx[mode], why);
    else
        pg_tx_rollback(&g->data_tx[mode]);
    return rc != 0 ? engine_fail(e, rc, "audit relay (%s): %s", engine_mode_name(mode), why) : 0;
}

static void pg_rollback(struct engine *e)
{
    struct pge *g = e->impl;

    pg_tx_rollback(&g->core_tx);
    for (int m = 0; m < 2; m++)
        pg_tx_rollback(&g->data_tx[m]);
    end(g);
}

/* Data first: a record and its outbox entry are one data transaction; the
 * core one (audit, credentials) commits after it, so a failed data commit
 * leaves no audit entry for a change that did not happen. */
static int pg_commit(struct engine *e)
{
    struct pge *g = e->impl;
    char why[128] = "";
    int rc = 0;

    if (!g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "commit outside a unit of work");
    for (int m = 0; m < 2 && rc == 0; m++)
        if ((rc = pg_tx_commit(&g->data_tx[m], why)) != 0)
            engine_fail(e, rc, "commit (%s): %s", engine_mode_name(m), why);
    if (rc == 0 && (rc = pg_tx_commit(&g->core_tx, why)) != 0)
        engine_fail(e, rc, "commit (core): %s", why);
    if (rc != 0) {
        pg_rollback(e);
        return rc;
    }
    /* both committed: the relayed entries are in the log; their relay rows may
     * go (best effort: what stays is found logged by the next maintenance) */
    for (int m = 0; m < 2; m++)
        if (g->nrelay[m] > 0)
            (void)relay_done(e, m, g->relay[m], g->nrelay[m]);
    end(g);
    return 0;
}

static int pg_ping(struct engine *e)
{
    struct pge *g = e->impl;
    char why[128] = "";
    int rc;

    if (g->in_tx)
        return 0;
    if ((rc = pg_pool_ping(g->core, why)) != 0)
        return engine_fail(e, rc, "core: %s", why);
    for (int m = 0; m < 2; m++) {
        struct pg_pool_stats st;
        pg_pool_stats(g->data[m], &st);
        if (st.used && (rc = pg_pool_ping(g->data[m], why)) != 0)
            return engine_fail(e, rc, "%s: %s", engine_mode_name(m), why);
    }
    return 0;
}

static size_t pg_pools(struct engine *e, bool ping, struct eng_pool_info *out, size_t max)
{
    struct pge *g = e->impl;
    struct pg_pool *pools[3] = {g->core, g->data[ENG_MODE_TEST], g->data[ENG_MODE_LIVE]};
    size_t n = 0;

    for (size_t i = 0; i < 3 && n < max; i++) {
        struct eng_pool_info *o = &out[n++];
        struct pg_pool_stats st;
        char why[128] = "";

        memset(o, 0, sizeof *o);
        if (ping && !g->in_tx && (i == 0 || (pg_pool_stats(pools[i], &st), st.used)))
            o->ping = pg_pool_ping(pools[i], why);
        snprintf(o->error, sizeof o->error, "%s", why);
        pg_pool_stats(pools[i], &st);
        snprintf(o->name, sizeof o->name, "%s", st.label);
        o->used = st.used;
        o->limit = st.limit;
        o->open = st.open;
        o->busy = st.busy;
        o->connects = st.connects;
        o->connect_errors = st.connect_errors;
        o->waits = st.waits;
        o->errors = st.errors;
        o->discards = st.discards;
    }
    return n;
}

static void pg_free(struct engine *e)
{
    struct pge *g = e->impl;

    if (g != NULL) {
        pg_rollback(e);
        pg_pool_free(g->core);
        pg_pool_free(g->data[0]);
        pg_pool_free(g->data[1]);
        free(g);
    }
    free(e);
}

/* ---- users ------------------------------------------------------------------ */

#define USER_COLS "id, email_enc, email_hmac, password_hash, is_platform_admin, " EPOCH("created_at")

static void user_row(const PGresult *r, int i, struct eng_user *u)
{
    memset(u, 0, sizeof *u);
    cpy(u->id, sizeof u->id, r, i, 0);
    cpy(u->email_enc, sizeof u->email_enc, r, i, 1);
    cpy(u->email_hmac, sizeof u->email_hmac, r, i, 2);
    cpy(u->password_hash, sizeof u->password_hash, r, i, 3);
    u->is_platform_admin = flag(r, i, 4);
    u->created_at = i64(r, i, 5);
}

static int one_user(struct engine *e, const char *sql, const char *key, struct eng_user *out)
{
    PGresult *r;
    int rc = q(e, NULL, false, sql, 1, (const char *[]){key}, &r);

    if (rc == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such user");
    else if (rc == 0)
        user_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_user_create(struct engine *e, const struct eng_user *u)
{
    struct ts at = ts(u->created_at);
    int rows, rc;

    rc = q_rows(e, NULL, false,
                "INSERT INTO core.users (id, email_enc, email_hmac, password_hash, is_platform_admin, "
                "created_at) VALUES ($1, $2, $3, $4, $5, to_timestamp($6)) ON CONFLICT DO NOTHING "
                "RETURNING 1",
                6,
                (const char *[]){u->id, u->email_enc, u->email_hmac, u->password_hash,
                                 u->is_platform_admin ? "t" : "f", at.s},
                &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_CONFLICT, "user id or email taken");
    return rc;
}

static int pg_user_get(struct engine *e, const char *id, struct eng_user *out)
{
    return one_user(e, "SELECT " USER_COLS " FROM core.users WHERE id = $1", id, out);
}

static int pg_user_by_email(struct engine *e, const char *email_hmac, struct eng_user *out)
{
    return one_user(e, "SELECT " USER_COLS " FROM core.users WHERE email_hmac = $1", email_hmac, out);
}

static int update_user(struct engine *e, const char *sql, const char *id, const char *val)
{
    int rows, rc;

    if ((rc = q_rows(e, NULL, false, sql, 2, (const char *[]){id, val}, &rows)) == 0 && rows == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such user");
    return rc;
}

static int pg_user_set_password(struct engine *e, const char *id, const char *phc)
{
    return update_user(e, "UPDATE core.users SET password_hash = $2 WHERE id = $1 RETURNING 1", id, phc);
}

static int pg_user_set_admin(struct engine *e, const char *id, bool admin)
{
    return update_user(e, "UPDATE core.users SET is_platform_admin = $2 WHERE id = $1 RETURNING 1", id,
                       admin ? "t" : "f");
}

#define MEMBER_COLS "org_id, user_id, role, " EPOCH("created_at")

static void member_row(const PGresult *r, int i, struct eng_membership *m)
{
    memset(m, 0, sizeof *m);
    cpy(m->org_id, sizeof m->org_id, r, i, 0);
    cpy(m->user_id, sizeof m->user_id, r, i, 1);
    cpy(m->role, sizeof m->role, r, i, 2);
    m->created_at = i64(r, i, 3);
}

/* Copies up to max rows of r into out through fill. */
#define LIST_ROWS(r, out, max, n, fill)                                   \
    do {                                                                  \
        for (int i_ = 0; i_ < PQntuples(r) && *(n) < (max); i_++)         \
            fill(r, i_, &(out)[(*(n))++]);                                \
    } while (0)

static struct ts limit_of(size_t max)
{
    return ts(max > 100000 ? 100000 : (int64_t)max);
}

static int pg_user_memberships(struct engine *e, const char *user_id, struct eng_membership *out,
                               size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    const char *org = NULL;
    PGresult *r;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter(e, NULL, false, &org)) != 0)
        return rc;
    if (max == 0)
        return 0;
    if ((rc = q(e, NULL, false, "SELECT " MEMBER_COLS " FROM core.user_memberships($1) LIMIT $2", 2,
                (const char *[]){user_id, lim.s}, &r)) == 0)
        LIST_ROWS(r, out, max, n, member_row);
    PQclear(r);
    return rc;
}

/* ---- orgs and apps ------------------------------------------------------------ */

static int pg_org_create(struct engine *e, const struct eng_org *o)
{
    struct pge *g = e->impl;
    struct ts at = ts(o->created_at);
    const char *org = NULL;
    PGresult *r;
    int rc;

    if ((rc = enter(e, NULL, false, &org)) != 0)
        return rc;
    /* The insert runs as the new org (WITH CHECK); the next call sets its own. */
    const struct pg_stmt st = {
        "INSERT INTO core.organizations (id, name, slug, plan, is_platform, created_at) "
        "VALUES ($1, $2, $3, $4, $5, to_timestamp($6)) ON CONFLICT DO NOTHING RETURNING 1",
        6, (const char *[]){o->id, o->name, o->slug, o->plan[0] ? o->plan : "free", o->platform ? "t" : "f", at.s},
        true};
    if ((rc = run_on(e, &g->core_tx, o->id, CORE_PATH, &st, 1, true, &r)) == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_CONFLICT, "org id or slug taken");
    PQclear(r);
    return rc;
}

#define APP_COLS "id, name, kind, base_url, status, " EPOCH("created_at")

static void app_row(const PGresult *r, int i, struct eng_app *a)
{
    memset(a, 0, sizeof *a);
    cpy(a->id, sizeof a->id, r, i, 0);
    cpy(a->name, sizeof a->name, r, i, 1);
    cpy(a->kind, sizeof a->kind, r, i, 2);
    cpy(a->base_url, sizeof a->base_url, r, i, 3);
    cpy(a->status, sizeof a->status, r, i, 4);
    a->created_at = i64(r, i, 5);
}

static int pg_app_create(struct engine *e, const struct eng_app *a)
{
    struct ts at = ts(a->created_at);
    int rows, rc;

    rc = q_rows(e, NULL, false,
                "INSERT INTO core.apps (id, name, kind, base_url, status, created_at) "
                "VALUES ($1, $2, $3, $4, $5, to_timestamp($6)) ON CONFLICT DO NOTHING RETURNING 1",
                6,
                (const char *[]){a->id, a->name, a->kind, a->base_url,
                                 a->status[0] ? a->status : "active", at.s},
                &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_CONFLICT, "app name or id taken");
    return rc;
}

static int pg_app_get(struct engine *e, const char *name, struct eng_app *out)
{
    PGresult *r;
    int rc;

    rc = q(e, NULL, false, "SELECT " APP_COLS " FROM core.apps WHERE name = $1", 1, (const char *[]){name},
           &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such app");
    else if (rc == 0)
        app_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_app_list(struct engine *e, struct eng_app *out, size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    PGresult *r;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = q(e, NULL, false, "SELECT " APP_COLS " FROM core.apps ORDER BY name COLLATE \"C\" LIMIT $1",
                1, (const char *[]){lim.s}, &r)) == 0)
        LIST_ROWS(r, out, max, n, app_row);
    PQclear(r);
    return rc;
}

/* ---- roles -------------------------------------------------------------------- */

static int pg_role_builtin(struct engine *e, const char *name, struct eng_role *out)
{
    const struct eng_role *b = engine_builtin_role(name);

    if (b == NULL)
        return engine_fail(e, ERR_NOTFOUND, "no such built-in role");
    *out = *b;
    return 0;
}

/* Columns: org_id, name, permissions as a JSON array. */
#define ROLE_COLS "org_id, name, to_json(permissions)::text"

static void role_row(const PGresult *r, int i, struct eng_role *ro)
{
    cJSON *perms = cJSON_Parse(PQgetvalue(r, i, 2)), *p;

    memset(ro, 0, sizeof *ro);
    cpy(ro->org_id, sizeof ro->org_id, r, i, 0);
    cpy(ro->name, sizeof ro->name, r, i, 1);
    cJSON_ArrayForEach(p, perms) {
        if (ro->nperms < ENG_MAX_PERMS && cJSON_IsString(p))
            snprintf(ro->perms[ro->nperms++], ENG_PERM, "%s", p->valuestring);
    }
    cJSON_Delete(perms);
}

static int pg_role_get(struct engine *e, const struct eng_scope *s, const char *name,
                       struct eng_role *out)
{
    const char *org = NULL;
    PGresult *r;
    int rc;

    /* An org's role never has a built-in's name (role_put refuses it), so a
     * built-in is answered without a round trip: every request asks for its
     * caller's role. */
    if (engine_builtin_role(name) != NULL) {
        if ((rc = enter(e, s, true, &org)) != 0)
            return rc;
        return pg_role_builtin(e, name, out);
    }
    if ((rc = q(e, s, true, "SELECT " ROLE_COLS " FROM core.roles WHERE org_id = $1 AND name = $2", 2,
                (const char *[]){s->org_id, name}, &r)) != 0)
        return rc;
    if (PQntuples(r) > 0)
        role_row(r, 0, out);
    else if ((rc = pg_role_builtin(e, name, out)) != 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such role");
    PQclear(r);
    return rc;
}

static int pg_role_list(struct engine *e, const struct eng_scope *s, struct eng_role *out, size_t max,
                        size_t *n)
{
    PGresult *r;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = q(e, s, true,
                "SELECT " ROLE_COLS " FROM core.roles WHERE org_id = $1 ORDER BY name COLLATE \"C\"", 1,
                (const char *[]){s->org_id}, &r)) != 0)
        return rc;
    for (size_t i = 0; i < ENGINE_NBUILTIN_ROLES && *n < max; i++)
        out[(*n)++] = ENGINE_BUILTIN_ROLES[i];
    LIST_ROWS(r, out, max, n, role_row);
    PQclear(r);
    return 0;
}

static int pg_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *ro)
{
    cJSON *perms;
    char *json;
    int rows, rc;

    if ((perms = cJSON_CreateArray()) == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    for (int i = 0; i < ro->nperms; i++) {
        if (!cJSON_AddItemToArray(perms, cJSON_CreateString(ro->perms[i]))) {
            cJSON_Delete(perms);
            return engine_fail(e, ERR_NOMEM, "out of memory");
        }
    }
    json = cJSON_PrintUnformatted(perms);
    cJSON_Delete(perms);
    if (json == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    if (engine_builtin_role(ro->name) != NULL) {
        free(json);
        return engine_fail(e, ERR_CONFLICT, "role name is a built-in's");
    }
    rc = q_rows(e, s, true,
                "INSERT INTO core.roles (org_id, name, permissions) "
                "SELECT $1, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) "
                "ON CONFLICT ON CONSTRAINT roles_org_name_key DO UPDATE SET permissions = EXCLUDED.permissions "
                "RETURNING 1",
                3, (const char *[]){s->org_id, ro->name, json}, &rows);
    free(json);
    return rc;
}

/* ---- bootstrap lookups -------------------------------------------------------- */

#define KEY_COLS                                                                     \
    "id, org_id, mode, name, prefix, key_hash, role, coalesce(created_by::text, ''), " \
    EPOCH("created_at") ", " EPOCH("revoked_at") ", platform"

static void key_row(const PGresult *r, int i, struct eng_api_key *k)
{
    memset(k, 0, sizeof *k);
    cpy(k->id, sizeof k->id, r, i, 0);
    cpy(k->org_id, sizeof k->org_id, r, i, 1);
    k->mode = engine_mode_parse(PQgetvalue(r, i, 2));
    cpy(k->name, sizeof k->name, r, i, 3);
    cpy(k->prefix, sizeof k->prefix, r, i, 4);
    cpy(k->key_hash, sizeof k->key_hash, r, i, 5);
    cpy(k->role, sizeof k->role, r, i, 6);
    cpy(k->created_by, sizeof k->created_by, r, i, 7);
    k->created_at = i64(r, i, 8);
    k->revoked_at = i64(r, i, 9);
    k->platform = flag(r, i, 10);
}

#define REFRESH_COLS                                                                   \
    "id, family_id, user_id, org_id, mode, token_hash, " EPOCH("created_at") ", "      \
    EPOCH("expires_at") ", " EPOCH("used_at") ", " EPOCH("revoked_at")

static void refresh_row(const PGresult *r, int i, struct eng_refresh *t)
{
    memset(t, 0, sizeof *t);
    cpy(t->id, sizeof t->id, r, i, 0);
    cpy(t->family_id, sizeof t->family_id, r, i, 1);
    cpy(t->user_id, sizeof t->user_id, r, i, 2);
    cpy(t->org_id, sizeof t->org_id, r, i, 3);
    t->mode = engine_mode_parse(PQgetvalue(r, i, 4));
    cpy(t->token_hash, sizeof t->token_hash, r, i, 5);
    t->created_at = i64(r, i, 6);
    t->expires_at = i64(r, i, 7);
    t->used_at = i64(r, i, 8);
    t->revoked_at = i64(r, i, 9);
}

#define INVITE_COLS                                                                    \
    "id, org_id, role, token_hash, coalesce(created_by::text, ''), " EPOCH("expires_at") \
    ", " EPOCH("used_at")

static void invite_row(const PGresult *r, int i, struct eng_invite *v)
{
    memset(v, 0, sizeof *v);
    cpy(v->id, sizeof v->id, r, i, 0);
    cpy(v->org_id, sizeof v->org_id, r, i, 1);
    cpy(v->role, sizeof v->role, r, i, 2);
    cpy(v->token_hash, sizeof v->token_hash, r, i, 3);
    cpy(v->created_by, sizeof v->created_by, r, i, 4);
    v->expires_at = i64(r, i, 5);
    v->used_at = i64(r, i, 6);
}

/* One row by a secret's hash through a SECURITY DEFINER lookup (no org yet). */
static int resolve(struct engine *e, const char *sql, const char *hash, const char *what, PGresult **r)
{
    int rc;

    *r = NULL;
    if ((rc = q(e, NULL, false, sql, 1, (const char *[]){hash}, r)) == 0 && PQntuples(*r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such %s", what);
    return rc;
}

static int pg_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out)
{
    PGresult *r;
    int rc = resolve(e, "SELECT " KEY_COLS " FROM core.api_key_resolve($1)", key_hash, "api key", &r);

    if (rc == 0)
        key_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out)
{
    PGresult *r;
    int rc = resolve(e, "SELECT " REFRESH_COLS " FROM core.refresh_resolve($1)", token_hash,
                     "refresh token", &r);

    if (rc == 0)
        refresh_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out)
{
    PGresult *r;
    int rc = resolve(e, "SELECT " INVITE_COLS " FROM core.invite_resolve($1)", token_hash, "invite", &r);

    if (rc == 0)
        invite_row(r, 0, out);
    PQclear(r);
    return rc;
}

/* ---- tenant-scoped: org, members ------------------------------------------------ */

static int pg_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out)
{
    PGresult *r;
    int rc = q(e, s, true,
               "SELECT id, name, slug, plan, " EPOCH("created_at") ", is_platform FROM core.organizations WHERE id = $1",
               1, (const char *[]){s->org_id}, &r);

    if (rc == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such org");
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        cpy(out->id, sizeof out->id, r, 0, 0);
        cpy(out->name, sizeof out->name, r, 0, 1);
        cpy(out->slug, sizeof out->slug, r, 0, 2);
        cpy(out->plan, sizeof out->plan, r, 0, 3);
        out->created_at = i64(r, 0, 4);
        out->platform = flag(r, 0, 5);
    }
    PQclear(r);
    return rc;
}

/* Runs a write of the shape "WITH … SELECT <found>, <done>": two counts,
 * so one round trip says both whether what it needed exists and whether it wrote. */
static int q_counts(struct engine *e, const struct eng_scope *s, const char *sql, int n,
                    const char *const *vals, int64_t *found, int64_t *done)
{
    PGresult *r;
    int rc = q_any(e, s, true, true, sql, n, vals, &r);

    if (rc == 0 && PQntuples(r) != 1)
        rc = engine_fail(e, ERR_INTERNAL, "counts query returned %d rows", PQntuples(r));
    if (rc == 0) {
        *found = i64(r, 0, 0);
        *done = i64(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

static int pg_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *m)
{
    struct ts at = ts(m->created_at);
    int64_t found, done;
    int rc;

    rc = q_counts(e, s,
                  "WITH u AS (SELECT 1 FROM core.users WHERE id = $2 "
                  "           AND EXISTS (SELECT 1 FROM core.organizations WHERE id = $1)), "
                  "ins AS (INSERT INTO core.memberships (org_id, user_id, role, created_at) "
                  "        SELECT $1, $2, $3, to_timestamp($4) FROM u "
                  "        ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING 1) "
                  "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ins)",
                  4, (const char *[]){s->org_id, m->user_id, m->role, at.s}, &found, &done);
    if (rc == 0 && found == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such user or org");
    return rc;
}

static int pg_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                         struct eng_membership *out)
{
    PGresult *r;
    int rc;

    rc = q(e, s, true, "SELECT " MEMBER_COLS " FROM core.memberships WHERE org_id = $1 AND user_id = $2",
           2, (const char *[]){s->org_id, user_id}, &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such member");
    else if (rc == 0)
        member_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                          size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    PGresult *r;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = q(e, s, true,
                "SELECT " MEMBER_COLS " FROM core.memberships WHERE org_id = $1 "
                "ORDER BY created_at, user_id LIMIT $2",
                2, (const char *[]){s->org_id, lim.s}, &r)) == 0)
        LIST_ROWS(r, out, max, n, member_row);
    PQclear(r);
    return rc;
}

static int pg_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id)
{
    int rows, rc;

    rc = q_rows(e, s, true, "DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2 RETURNING 1",
                2, (const char *[]){s->org_id, user_id}, &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such member");
    return rc;
}

/* ---- tenant-scoped: api keys ------------------------------------------------------ */

static int pg_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k)
{
    struct ts at = ts(k->created_at);
    int rows, rc;

    rc = q_rows(e, s, true,
                "INSERT INTO core.api_keys (id, org_id, mode, name, prefix, key_hash, role, created_by, "
                "created_at, platform) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9), $10) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                10,
                (const char *[]){k->id, s->org_id, engine_mode_name(k->mode), k->name, k->prefix,
                                 k->key_hash, k->role, k->created_by[0] ? k->created_by : NULL, at.s,
                                 k->platform ? "t" : "f"},
                &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_CONFLICT, "api key id or hash taken");
    return rc;
}

static int pg_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                           size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    PGresult *r;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = q(e, s, true,
                "SELECT " KEY_COLS " FROM core.api_keys WHERE org_id = $1 AND mode = $2 "
                "ORDER BY created_at DESC, id DESC LIMIT $3",
                3, (const char *[]){s->org_id, engine_mode_name(s->mode), lim.s},
                &r)) == 0)
        LIST_ROWS(r, out, max, n, key_row);
    PQclear(r);
    return rc;
}

static int pg_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    struct ts t = ts(at);
    int rows, rc;

    /* Already revoked: unchanged, and still found (as the memory engine). */
    rc = q_rows(e, s, true,
                "UPDATE core.api_keys SET revoked_at = coalesce(revoked_at, to_timestamp($4)) "
                "WHERE id = $1 AND org_id = $2 AND mode = $3 RETURNING 1",
                4, (const char *[]){id, s->org_id, engine_mode_name(s->mode), t.s}, &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such api key in this mode");
    return rc;
}

/* ---- tenant-scoped: refresh tokens and invites ---------------------------------- */

static int pg_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t)
{
    struct ts c = ts(t->created_at), x = ts(t->expires_at), u = ts(t->used_at), v = ts(t->revoked_at);
    int64_t found, done;
    int rc;

    rc = q_counts(e, s,
                  "WITH u AS (SELECT 1 FROM core.users WHERE id = $3), "
                  "ins AS (INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, "
                  "        token_hash, created_at, expires_at, used_at, revoked_at) "
                  "        SELECT $1, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), "
                  "               to_timestamp($9), to_timestamp($10) FROM u "
                  "        ON CONFLICT DO NOTHING RETURNING 1) "
                  "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ins)",
                  10,
                  (const char *[]){t->id, t->family_id, t->user_id, s->org_id, engine_mode_name(t->mode),
                                   t->token_hash, c.s, x.s, ts_or_null(&u), ts_or_null(&v)},
                  &found, &done);
    if (rc == 0 && found == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such user");
    else if (rc == 0 && done == 0)
        rc = engine_fail(e, ERR_CONFLICT, "refresh token id or hash taken");
    return rc;
}

/* Stamps a one-time row (an invite) of s's org as used; the
 * UPDATE's own condition makes two concurrent uses end with one winner, and
 * only a miss costs a second statement to tell "absent" from "already used". */
static int mark_used(struct engine *e, const struct eng_scope *s, const char *update, const char *probe,
                     const char *what, const char *id, int64_t at)
{
    struct ts t = ts(at);
    int rows, rc;

    if ((rc = q_rows(e, s, true, update, 3, (const char *[]){id, s->org_id, t.s}, &rows)) != 0 || rows > 0)
        return rc;
    if ((rc = q_rows(e, s, true, probe, 2, (const char *[]){id, s->org_id}, &rows)) != 0)
        return rc;
    return rows == 0 ? engine_fail(e, ERR_NOTFOUND, "no such %s", what) : engine_fail(e, ERR_CONFLICT, "%s already used", what);
}

/* Rotation in one round trip when the parent is live: the UPDATE's condition
 * is the compare-and-set (a concurrent rotation holds the row's lock until it
 * commits; this one then re-reads the row, finds it used and matches
 * nothing), and the child's INSERT and the wipe of the grandparent's seal hang
 * on its RETURNING, so all three happen or none. The wipe skips a grandparent
 * another transaction holds (a replay of it, a revocation of the family):
 * waiting there, with this row locked, could close a cycle with a revocation
 * that locks the family's rows the other way round; a seal so left is never
 * served (its child is used now) and the revocation wipes it. Only a miss pays a second
 * round trip: the parent under FOR UPDATE (replays and reuse of it queue
 * behind one another until this transaction ends), then in a statement of its
 * own, whose snapshot is taken after that lock, the child its rotation made.
 * Both work through PgBouncer's transaction pooling: nothing outlives the
 * transaction. */
static int pg_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                             const struct eng_refresh *child, const char *sealed, int64_t now,
                             int64_t reuse_interval, struct eng_rotation *out)
{
    struct ts c = ts(child->created_at), x = ts(child->expires_at), at = ts(now);
    struct eng_refresh parent, kept;
    PGresult *res[2] = {NULL, NULL};
    int64_t rotated, inserted;
    int rc;

    memset(out, 0, sizeof *out);
    rc = q_counts(e, s,
                  "WITH p AS (UPDATE core.refresh_tokens SET used_at = to_timestamp($9), child_id = $1, "
                  "           child_sealed = $11 "
                  "         WHERE id = $10 AND org_id = $4 AND used_at IS NULL AND revoked_at IS NULL "
                  "           AND family_id = $2 AND user_id = $3 AND mode = $5 RETURNING parent_id), "
                  "ins AS (INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, token_hash, "
                  "        created_at, expires_at, parent_id) "
                  "        SELECT $1, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), $10 FROM p "
                  "        RETURNING 1), "
                  "wipe AS (UPDATE core.refresh_tokens SET child_sealed = NULL WHERE org_id = $4 AND id IN "
                  "         (SELECT g.id FROM core.refresh_tokens g, p WHERE g.id = p.parent_id "
                  "          AND g.org_id = $4 AND g.child_sealed IS NOT NULL FOR UPDATE OF g SKIP LOCKED)) "
                  "SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM ins)",
                  11,
                  (const char *[]){child->id, child->family_id, child->user_id, s->org_id,
                                   engine_mode_name(child->mode), child->token_hash, c.s, x.s, at.s, parent_id,
                                   sealed},
                  &rotated, &inserted);
    if (rc != 0)
        return rc;
    if (rotated == 1) {
        if (inserted != 1)
            return engine_fail(e, ERR_INTERNAL, "rotation stored no child");
        out->outcome = ENG_ROTATE_NEW;
        return 0;
    }
    const char *const key[] = {parent_id, s->org_id};
    const struct pg_stmt st[2] = {
        {"SELECT " REFRESH_COLS ", coalesce(child_sealed, '') FROM core.refresh_tokens "
         "WHERE id = $1 AND org_id = $2 FOR UPDATE",
         2, key, true},
        {"SELECT " REFRESH_COLS " FROM core.refresh_tokens WHERE org_id = $2 AND id = "
         "(SELECT child_id FROM core.refresh_tokens WHERE id = $1 AND org_id = $2)",
         2, key, true},
    };
    if ((rc = engine_pg_core(e, s, st, 2, res)) != 0)
        return rc;
    if (PQntuples(res[0]) == 0) {
        rc = engine_fail(e, ERR_NOTFOUND, "no such refresh token");
        goto out;
    }
    refresh_row(res[0], 0, &parent);
    if (parent.revoked_at != 0) {
        out->outcome = ENG_ROTATE_REVOKED;
        goto out;
    }
    if (parent.used_at == 0) { /* live, yet the compare-and-set missed: the child did not match */
        rc = engine_fail(e, ERR_INVAL, "the child is not the parent's successor");
        goto out;
    }
    bool kept_here = PQntuples(res[1]) == 1 && PQgetvalue(res[0], 0, 10)[0] != '\0';
    if (kept_here)
        refresh_row(res[1], 0, &kept);
    out->outcome = ENG_ROTATE_REUSE;
    if (eng_refresh_replayable(&parent, kept_here ? &kept : NULL, now, reuse_interval)) {
        if (strlen(PQgetvalue(res[0], 0, 10)) >= sizeof out->sealed) {
            rc = engine_fail(e, ERR_INTERNAL, "stored seal too long");
            goto out;
        }
        out->outcome = ENG_ROTATE_REPLAY;
        out->child = kept;
        snprintf(out->sealed, sizeof out->sealed, "%s", PQgetvalue(res[0], 0, 10));
    }
out:
    PQclear(res[0]);
    PQclear(res[1]);
    return rc;
}

static int pg_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                                    int64_t at)
{
    struct ts t = ts(at);
    int rows;

    return q_rows(e, s, true,
                  "UPDATE core.refresh_tokens SET revoked_at = to_timestamp($3), child_sealed = NULL "
                  "WHERE org_id = $1 AND family_id = $2 AND revoked_at IS NULL",
                  3, (const char *[]){s->org_id, family_id, t.s}, &rows);
}

static int pg_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i)
{
    struct ts x = ts(i->expires_at), u = ts(i->used_at);
    int rows, rc;

    rc = q_rows(e, s, true,
                "INSERT INTO core.invites (id, org_id, role, token_hash, created_by, expires_at, used_at) "
                "VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7)) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                7,
                (const char *[]){i->id, s->org_id, i->role, i->token_hash,
                                 i->created_by[0] ? i->created_by : NULL, x.s, ts_or_null(&u)},
                &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_CONFLICT, "invite id or hash taken");
    return rc;
}

static int pg_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    return mark_used(e, s,
                     "UPDATE core.invites SET used_at = to_timestamp($3) "
                     "WHERE id = $1 AND org_id = $2 AND used_at IS NULL RETURNING 1",
                     "SELECT 1 FROM core.invites WHERE id = $1 AND org_id = $2", "invite", id, at);
}

/* ---- tenant-scoped: audit ----------------------------------------------------------- */

static int pg_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a)
{
    struct ts at = ts(a->created_at);
    int rows, rc;

    rc = q_rows(e, s, true,
                "INSERT INTO core.audit_log (id, org_id, actor, action, target, meta, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, to_timestamp($7)) ON CONFLICT DO NOTHING RETURNING 1",
                7,
                (const char *[]){a->id, s->org_id, a->actor, a->action, a->target,
                                 a->meta[0] ? a->meta : "{}", at.s},
                &rows);
    if (rc == 0 && rows == 0)
        rc = engine_fail(e, ERR_CONFLICT, "audit id taken");
    return rc;
}

static void audit_row(const PGresult *r, int i, struct eng_audit *a)
{
    memset(a, 0, sizeof *a);
    cpy(a->id, sizeof a->id, r, i, 0);
    cpy(a->org_id, sizeof a->org_id, r, i, 1);
    cpy(a->actor, sizeof a->actor, r, i, 2);
    cpy(a->action, sizeof a->action, r, i, 3);
    cpy(a->target, sizeof a->target, r, i, 4);
    cpy(a->meta, sizeof a->meta, r, i, 5);
    a->created_at = i64(r, i, 6);
}

static int pg_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
                         struct eng_audit *out, size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    bool bound = before_id != NULL && before_id[0] != '\0';
    PGresult *r;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
#define AUDIT_SELECT \
    "SELECT id, org_id, actor, action, target, meta::text, " EPOCH("created_at") " FROM core.audit_log "
    if (!bound)
        rc = q(e, s, true, AUDIT_SELECT "WHERE org_id = $1 ORDER BY id DESC LIMIT $2", 2,
               (const char *[]){s->org_id, lim.s}, &r);
    else /* a uuid (the wrapper checked it) */
        rc = q(e, s, true, AUDIT_SELECT "WHERE org_id = $1 AND id < $3::uuid ORDER BY id DESC LIMIT $2", 3,
               (const char *[]){s->org_id, lim.s, before_id}, &r);
#undef AUDIT_SELECT
    if (rc == 0)
        LIST_ROWS(r, out, max, n, audit_row);
    PQclear(r);
    return rc;
}

/* ---- upkeep ------------------------------------------------------------------------------ */

/* Delivers mode's relay rows to core.audit_log: read them (data), insert
 * each as its org with ON CONFLICT DO NOTHING (core: an entry its request
 * logged already is skipped), commit, then drop the rows (data). Exactly one
 * log row per relay row, whichever step a crash interrupts. *n: delivered. */
static int relay_flush(struct engine *e, int mode, int *n)
{
    struct pge *g = e->impl;
    char why[128] = "", ids[RELAY_BATCH][ENG_ID], batch[16];
    PGresult *r = NULL;
    int rc, rows;

    *n = 0;
    snprintf(batch, sizeof batch, "%d", RELAY_BATCH);
    const struct pg_stmt st = {"SELECT id, org_id, actor, action, target, meta, created_at "
                               "FROM core.audit_relay_pending($1::int)",
                               1, (const char *[]){batch}, true};
    rc = pg_tx_run(&g->data_tx[mode], NULL, CORE_PATH, &st, 1, false, &r, why);
    pg_tx_rollback(&g->data_tx[mode]);
    if (rc != 0)
        return engine_fail(e, rc, "audit relay (%s): %s", engine_mode_name(mode), why);
    rows = PQntuples(r) < RELAY_BATCH ? PQntuples(r) : RELAY_BATCH;
    if (rows == 0) {
        PQclear(r);
        return 0;
    }
    if ((rc = pg_begin(e, NULL)) != 0) {
        PQclear(r);
        return rc;
    }
    for (int i = 0; rc == 0 && i < rows; i++) {
        struct eng_audit a = {0};
        struct eng_scope sc = {.mode = mode};
        cpy(a.id, sizeof a.id, r, i, 0);
        cpy(a.org_id, sizeof a.org_id, r, i, 1);
        cpy(a.actor, sizeof a.actor, r, i, 2);
        cpy(a.action, sizeof a.action, r, i, 3);
        cpy(a.target, sizeof a.target, r, i, 4);
        cpy(a.meta, sizeof a.meta, r, i, 5);
        a.created_at = i64(r, i, 6);
        snprintf(sc.org_id, sizeof sc.org_id, "%s", a.org_id);
        snprintf(ids[i], ENG_ID, "%s", a.id);
        rc = pg_audit_append(e, &sc, &a);
        if (rc == ERR_CONFLICT) /* logged already, by its own request */
            rc = 0;
    }
    PQclear(r);
    if (rc != 0) {
        pg_rollback(e);
        return rc;
    }
    if ((rc = pg_commit(e)) != 0)
        return rc;
    if ((rc = relay_done(e, mode, ids, rows)) == 0)
        *n = rows;
    return rc;
}

static int pg_maintain(struct engine *e, int64_t now, char report[256])
{
    struct pge *g = e->impl;
    char why[128] = "", months[16];
    PGresult *r = NULL;
    int rc, made = -1, sent[2] = {0, 0};

    (void)now; /* the server's clock places partitions, as it dates the rows */
    if (g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "maintain inside a unit of work");
    snprintf(months, sizeof months, "%d", AUDIT_MONTHS_AHEAD);
    const struct pg_stmt st = {"SELECT core.ensure_audit_partitions($1::int)", 1, (const char *[]){months}, true};
    rc = pg_tx_run(&g->core_tx, NULL, CORE_PATH, &st, 1, true, &r, why);
    if (rc == 0) {
        made = atoi(PQgetvalue(r, 0, 0));
        rc = pg_tx_commit(&g->core_tx, why);
    } else {
        pg_tx_rollback(&g->core_tx);
    }
    PQclear(r);
    if (rc != 0)
        return engine_fail(e, rc, "audit partitions: %s", why);
    for (int m = 0; m < 2 && rc == 0; m++)
        rc = relay_flush(e, m, &sent[m]);
    report[0] = '\0';
    if (made > 0 || sent[0] > 0 || sent[1] > 0)
        snprintf(report, 256, "audit partitions made: %d; relayed audit entries delivered: test %d, live %d",
                 made, sent[0], sent[1]);
    return rc;
}

/* ---- the table ------------------------------------------------------------------------ */

static const struct engine_ops PG_OPS = {
    .name = "postgres",
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .ping = pg_ping,
    .pools = pg_pools,
    .free = pg_free,
    .user_create = pg_user_create,
    .user_get = pg_user_get,
    .user_by_email = pg_user_by_email,
    .user_set_password = pg_user_set_password,
    .user_set_admin = pg_user_set_admin,
    .user_memberships = pg_user_memberships,
    .org_create = pg_org_create,
    .app_create = pg_app_create,
    .app_get = pg_app_get,
    .app_list = pg_app_list,
    .role_builtin = pg_role_builtin,
    .api_key_resolve = pg_api_key_resolve,
    .refresh_resolve = pg_refresh_resolve,
    .invite_resolve = pg_invite_resolve,
    .org_get = pg_org_get,
    .member_put = pg_member_put,
    .member_get = pg_member_get,
    .member_list = pg_member_list,
    .member_remove = pg_member_remove,
    .role_get = pg_role_get,
    .role_list = pg_role_list,
    .role_put = pg_role_put,
    .api_key_create = pg_api_key_create,
    .api_key_list = pg_api_key_list,
    .api_key_revoke = pg_api_key_revoke,
    .refresh_create = pg_refresh_create,
    .refresh_rotate = pg_refresh_rotate,
    .refresh_revoke_family = pg_refresh_revoke_family,
    .invite_create = pg_invite_create,
    .invite_mark_used = pg_invite_mark_used,
    .audit_append = pg_audit_append,
    .audit_list = pg_audit_list,
    ENGINE_PG_RECORD_OPS,
    .maintain = pg_maintain,
};

struct engine *engine_pg_new(const struct engine_pg_config *c, char errstr[128])
{
    struct engine *e = calloc(1, sizeof *e);
    struct pge *g = calloc(1, sizeof *g);
    const char *dsn[2] = {c->test_dsn, c->live_dsn};
    char why[128];

    if (e == NULL || g == NULL) {
        free(e);
        free(g);
        err_set(errstr, "out of memory");
        return NULL;
    }
    e->ops = &PG_OPS;
    e->impl = g;
    pg_tx_init(&g->core_tx, NULL);
    for (int m = 0; m < 2; m++)
        pg_tx_init(&g->data_tx[m], NULL);
    if (c->core_dsn == NULL || c->core_dsn[0] == '\0') {
        err_set(errstr, "db.core_dsn is empty");
        goto fail;
    }
    if ((g->core = pg_pool_new("core", c->core_dsn, c->connection_limit, c->prepare, why)) == NULL) {
        err_set(errstr, "db.core_dsn: %s", why);
        goto fail;
    }
    for (int m = 0; m < 2; m++) {
        const char *d = dsn[m] != NULL && dsn[m][0] != '\0' ? dsn[m] : c->core_dsn;
        if ((g->data[m] = pg_pool_new(engine_mode_name(m), d, c->connection_limit, c->prepare, why)) == NULL) {
            err_set(errstr, "db.%s_dsn: %s", engine_mode_name(m), why);
            goto fail;
        }
        g->data_tx[m].pool = g->data[m];
    }
    g->core_tx.pool = g->core;
    return e;
fail:
    pg_free(e);
    return NULL;
}
