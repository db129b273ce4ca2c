/* engine_pg: the core half of the PostgreSQL engine: the handle, units of
 * work, the audit relay, users, orgs, apps, upkeep and the table; members,
 * roles, keys, tokens, invites and audit are in engine_pg_tenant.c, resources
 * and records in engine_pg_records.c. What these rules say holds for all three.
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
#include <time.h>

#include "store/pg/engine_pg_int.h"
#include "store/pg/engine_pg_records.h"
#include "store/pg/pg.h"

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

_Static_assert(PGE_FANOUT_MAX >= PGE_STORES, "a schema change's fan-out holds every store");

/* ---- placement: which store a data call goes to ------------------------------- */

static const struct pge_place *place_named(const struct pge_place *p, int n, const char *name)
{
    for (int i = 0; name != NULL && i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return &p[i];
    return NULL;
}

int engine_pg_home(struct engine *e, int mode, const char *service)
{
    struct pge *g = e->impl;
    const struct pge_place *p = place_named(g->svc, g->nsvc, service);

    return p != NULL ? p->store[mode] : mode;
}

/* The org's placement: as the scope carries it, else as this unit looked it
 * up (core.org_placement; no row: shared). */
static int placement_of(struct engine *e, const struct eng_scope *s, const char **db, bool *moving)
{
    struct pge *g = e->impl;
    PGresult *r;
    int rc;

    if (s->db[0] != '\0') {
        *db = s->db;
        *moving = s->db_moving;
        return 0;
    }
    if (strcmp(g->placed_org, s->org_id) != 0) {
        if ((rc = q(e, s, true, "SELECT database, moving FROM core.org_placement WHERE org_id = $1", 1,
                    (const char *[]){s->org_id}, &r)) != 0)
            return rc;
        snprintf(g->placed_db, sizeof g->placed_db, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "shared");
        g->placed_moving = PQntuples(r) > 0 && flag(r, 0, 1);
        snprintf(g->placed_org, sizeof g->placed_org, "%s", s->org_id);
        PQclear(r);
    }
    *db = g->placed_db;
    *moving = g->placed_moving;
    return 0;
}

int engine_pg_route(struct engine *e, const struct eng_scope *s, const char *service, int *store)
{
    struct pge *g = e->impl;
    const struct pge_place *p;
    const char *db;
    bool moving;
    int rc;

    if (!mode_ok(s->mode))
        return engine_fail(e, ERR_INTERNAL, "bad mode");
    if ((rc = placement_of(e, s, &db, &moving)) != 0)
        return rc;
    if (moving)
        return engine_fail(e, ERR_UNAVAILABLE, "the organization's data is being placed in another database");
    if (strcmp(db, "shared") != 0) {
        /* never the shared database instead: the org's data is not there */
        if ((p = place_named(g->db, g->ndb, db)) == NULL)
            return engine_fail(e, ERR_UNAVAILABLE,
                               "the organization is placed in database %.31s, which this configuration "
                               "does not name ([database.%.31s])", db, db);
        *store = p->store[s->mode];
        return 0;
    }
    *store = engine_pg_home(e, s->mode, service);
    return 0;
}

static void held_forget(struct pge_store *st);

int engine_pg_data_at(struct engine *e, const struct eng_scope *s, int store, const char *search_path,
                      const struct pg_stmt *st, size_t n, bool write, PGresult **res)
{
    struct pge *g = e->impl;
    const char *org = NULL;
    int rc;

    if ((rc = enter(e, s, true, &org)) != 0)
        return rc;
    if (store < 0 || store >= g->nst)
        return engine_fail(e, ERR_INTERNAL, "bad store");
    rc = run_on(e, &g->st[store].tx, org, search_path, st, n, write, res);
    /* a guard held back may have found the held definition changed: the
     * request runs again, and must read it afresh */
    if (rc != 0 && e->retry)
        held_forget(&g->st[store]);
    return rc;
}

static int data_run(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                    const struct pg_stmt *st, size_t n, bool write, PGresult **res)
{
    int store, rc;

    if ((rc = enter(e, s, true, &(const char *){NULL})) != 0 || (rc = engine_pg_route(e, s, service, &store)) != 0)
        return rc;
    return engine_pg_data_at(e, s, store, search_path, st, n, write, res);
}

int engine_pg_data(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                   const struct pg_stmt *st, size_t n, PGresult **res)
{
    return data_run(e, s, service, search_path, st, n, true, res);
}

int engine_pg_data_read(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                        const struct pg_stmt *st, size_t n, PGresult **res)
{
    return data_run(e, s, service, search_path, st, n, false, res);
}

int engine_pg_fanout(struct engine *e, const struct eng_scope *s, const char *service, int *stores, size_t *n)
{
    struct pge *g = e->impl;

    *n = 0;
    if (!mode_ok(s->mode))
        return engine_fail(e, ERR_INTERNAL, "bad mode");
    stores[(*n)++] = engine_pg_home(e, s->mode, service);
    for (int i = 0; i < g->ndb; i++) {
        int k = g->db[i].store[s->mode];
        bool seen = false;
        for (size_t j = 0; j < *n; j++)
            seen |= stores[j] == k;
        if (!seen)
            stores[(*n)++] = k;
    }
    return 0;
}

int engine_pg_data_defer(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                         const struct pg_stmt *st, size_t n)
{
    struct pge *g = e->impl;
    const char *org = NULL;
    char why[128] = "";
    int store, rc;

    if ((rc = enter(e, s, true, &org)) != 0 || (rc = engine_pg_route(e, s, service, &store)) != 0)
        return rc;
    if ((rc = pg_tx_defer(&g->st[store].tx, org, search_path, st, n, why)) != 0)
        return engine_fail(e, rc, "%s", why);
    return 0;
}

void engine_pg_held_set(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                        int64_t version)
{
    struct pge *g = e->impl;
    struct pge_store *st;
    int store;

    if (engine_pg_route(e, s, service, &store) != 0)
        return;
    st = &g->st[store];
    snprintf(st->held.service, sizeof st->held.service, "%s", service);
    snprintf(st->held.name, sizeof st->held.name, "%s", name);
    st->held.version = version;
}

bool engine_pg_held(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                    int64_t version)
{
    const struct pge *g = e->impl;
    const struct pge_store *st;
    int store;

    if (!g->in_tx || version < 1 || engine_pg_route(e, s, service, &store) != 0)
        return false;
    st = &g->st[store];
    return st->held.version == version && strcmp(st->held.service, service) == 0 &&
           strcmp(st->held.name, name) == 0;
}

/* ---- data schema names ---------------------------------------------------- */

static unsigned name_slot(const char *service)
{
    unsigned h = 2166136261u;

    for (const char *p = service; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % PGE_NAMES;
}

const char *engine_pg_schema_known(struct engine *e, int mode, const char *service)
{
    struct pge *g = e->impl;
    unsigned i = name_slot(service);

    if (!mode_ok(mode) || strcmp(g->names[mode][i].service, service) != 0 || g->names[mode][i].schema[0] == '\0')
        return NULL;
    return g->names[mode][i].schema;
}

void engine_pg_schema_learn(struct engine *e, int mode, const char *service, const char *schema)
{
    struct pge *g = e->impl;
    unsigned i = name_slot(service);

    if (!mode_ok(mode) || strlen(service) >= ENG_SLUG || strlen(schema) >= ENG_SLUG)
        return;
    snprintf(g->names[mode][i].service, ENG_SLUG, "%s", service);
    snprintf(g->names[mode][i].schema, ENG_SLUG, "%s", schema);
}

static unsigned def_slot(const char *service, const char *resource)
{
    return (name_slot(service) * 31u + name_slot(resource)) % PGE_DEFS;
}

const struct eng_resource *engine_pg_def_known(struct engine *e, const struct eng_scope *s, const char *service,
                                               const char *resource)
{
    struct pge *g = e->impl;
    const struct eng_resource *d;
    int store;

    if (engine_pg_route(e, s, service, &store) != 0 || (d = g->st[store].defs[def_slot(service, resource)]) == NULL)
        return NULL;
    return strcmp(d->service, service) == 0 && strcmp(d->name, resource) == 0 ? d : NULL;
}

struct eng_resource *engine_pg_def_spare(struct engine *e, bool **lent)
{
    struct pge *g = e->impl;

    if (g->spare_lent || (g->spare_def == NULL && (g->spare_def = malloc(sizeof *g->spare_def)) == NULL))
        return NULL;
    g->spare_lent = true;
    *lent = &g->spare_lent;
    return g->spare_def;
}

void engine_pg_def_learn(struct engine *e, const struct eng_scope *s, const struct eng_resource *def)
{
    struct pge *g = e->impl;
    struct eng_resource **slot;
    int store;

    if (engine_pg_route(e, s, def->service, &store) != 0)
        return;
    slot = &g->st[store].defs[def_slot(def->service, def->name)];
    if (*slot == NULL && (*slot = malloc(sizeof **slot)) == NULL)
        return; /* not kept: the next list reads the definition first, as before */
    memcpy(*slot, def, sizeof **slot);
}

const char *engine_pg_hnsw_known(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                                 const char *field, int metric)
{
    struct pge *g = e->impl;
    const struct pge_hnsw *h;
    int store;

    if (engine_pg_route(e, s, def->service, &store) != 0 || g->st[store].hnsw == NULL)
        return NULL;
    h = &g->st[store].hnsw[def_slot(def->service, def->name)];
    return h->version == def->version && h->metric == metric && h->ext[0] != '\0' &&
                   time(NULL) - h->learnt < PGE_HNSW_SECS &&
                   strcmp(h->service, def->service) == 0 && strcmp(h->name, def->name) == 0 &&
                   strcmp(h->field, field) == 0
               ? h->ext
               : NULL;
}

void engine_pg_hnsw_learn(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                          const char *field, int metric, const char *ext)
{
    struct pge *g = e->impl;
    struct pge_hnsw *h;
    int store;

    if (engine_pg_route(e, s, def->service, &store) != 0)
        return;
    if (g->st[store].hnsw == NULL && (g->st[store].hnsw = calloc(PGE_DEFS, sizeof *g->st[store].hnsw)) == NULL)
        return; /* not kept: the next search checks the index in a round trip of its own, as before */
    h = &g->st[store].hnsw[def_slot(def->service, def->name)];
    snprintf(h->service, sizeof h->service, "%s", def->service);
    snprintf(h->name, sizeof h->name, "%s", def->name);
    snprintf(h->field, sizeof h->field, "%s", field);
    snprintf(h->ext, sizeof h->ext, "%s", ext);
    h->version = def->version;
    h->metric = metric;
    h->learnt = (int64_t)time(NULL);
}

/* Forgets the kept definition the store's unit held: it turned out stale. */
static void held_forget(struct pge_store *st)
{
    struct eng_resource *d;

    if (st->held.version > 0 && (d = st->defs[def_slot(st->held.service, st->held.name)]) != NULL &&
        strcmp(d->service, st->held.service) == 0 && strcmp(d->name, st->held.name) == 0)
        d->service[0] = '\0'; /* matches nothing until learnt again */
}

bool engine_pg_data_explicit(struct engine *e, const struct eng_scope *s, const char *service)
{
    const struct pge *g = e->impl;
    int store;

    return engine_pg_route(e, s, service, &store) == 0 &&
           (g->st[store].tx.explicit_tx || pg_tx_deferred(&g->st[store].tx));
}

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
    g->placed_org[0] = '\0';
    for (int i = 0; i < g->nst; i++) {
        g->st[i].nrelay = 0;
        memset(&g->st[i].held, 0, sizeof g->st[i].held);
    }
}

int engine_pg_relayed(struct engine *e, const struct eng_scope *s, const char *service, const struct eng_audit *audit)
{
    struct pge *g = e->impl;
    struct pge_store *st;
    int rc;

    if (!mode_ok(s->mode) || (st = &g->st[engine_pg_home(e, s->mode, service)])->nrelay == RELAY_MAX)
        return engine_fail(e, ERR_INTERNAL, "too many relayed audit entries in one unit of work");
    if ((rc = pg_audit_append(e, s, audit)) != 0)
        return rc;
    snprintf(st->relay[st->nrelay++], ENG_ID, "%s", audit->id);
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
static int relay_done(struct engine *e, int store, char (*ids)[ENG_ID], int n)
{
    struct pge *g = e->impl;
    struct pg_tx *tx = &g->st[store].tx;
    char arr[RELAY_BATCH * (ENG_ID + 1) + 4], why[128] = "";
    PGresult *r = NULL;
    int rc;

    uuid_array(ids, n, arr, sizeof arr);
    const struct pg_stmt st = {"SELECT core.audit_relay_done($1::uuid[])", 1, (const char *[]){arr}, true, false};
    rc = pg_tx_run(tx, NULL, CORE_PATH, &st, 1, true, &r, why);
    PQclear(r);
    if (rc == 0)
        rc = pg_tx_commit(tx, why);
    else
        pg_tx_rollback(tx);
    return rc != 0 ? engine_fail(e, rc, "audit relay (%s): %s", g->st[store].label, why) : 0;
}

static void pg_rollback(struct engine *e)
{
    struct pge *g = e->impl;

    pg_tx_rollback(&g->core_tx);
    for (int i = 0; i < g->nst; i++)
        pg_tx_rollback(&g->st[i].tx);
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
    /* A unit writes data in one store, but for a schema change, which runs
     * in every store holding its service's data (engine_pg_fanout): a commit
     * that fails after an earlier store's committed leaves them apart until
     * the same change is made again (docs/OPERATIONS.md, placement). */
    for (int i = 0; i < g->nst && rc == 0; i++)
        if ((rc = pg_tx_commit(&g->st[i].tx, why)) != 0) {
            engine_fail(e, rc, "commit (%s): %s", g->st[i].label, why);
            /* a guard held back may have found the definition changed: the
             * request runs again, and must read it afresh */
            if ((e->retry = pg_tx_retryable(&g->st[i].tx)))
                held_forget(&g->st[i]);
        }
    if (rc == 0 && (rc = pg_tx_commit(&g->core_tx, why)) != 0) {
        engine_fail(e, rc, "commit (core): %s", why);
        e->retry = pg_tx_retryable(&g->core_tx);
    }
    if (rc != 0) {
        pg_rollback(e);
        return rc;
    }
    /* both committed: the relayed entries are in the log; their relay rows may
     * go (best effort: what stays is found logged by the next maintenance) */
    for (int i = 0; i < g->nst; i++)
        if (g->st[i].nrelay > 0)
            (void)relay_done(e, i, g->st[i].relay, g->st[i].nrelay);
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
    for (int i = 0; i < g->nst; i++) {
        struct pg_pool_stats st;
        pg_pool_stats(g->st[i].pool, &st);
        if (st.used && (rc = pg_pool_ping(g->st[i].pool, why)) != 0)
            return engine_fail(e, rc, "%s: %s", g->st[i].label, why);
    }
    return 0;
}

static size_t pg_pools(struct engine *e, bool ping, struct eng_pool_info *out, size_t max)
{
    struct pge *g = e->impl;
    struct pg_pool *pools[1 + PGE_STORES] = {g->core};
    size_t n = 0, npools = 1;

    for (int i = 0; i < g->nst; i++)
        pools[npools++] = g->st[i].pool;
    for (size_t i = 0; i < npools && n < max; i++) {
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
        o->round_trips = st.round_trips;
        o->statements = st.statements;
    }
    return n;
}

static void pg_free(struct engine *e)
{
    struct pge *g = e->impl;

    if (g != NULL) {
        pg_rollback(e);
        pgc_listen_close(g);
        pg_pool_free(g->core);
        for (int i = 0; i < g->nst; i++) {
            pg_pool_free(g->st[i].pool);
            for (int k = 0; k < PGE_DEFS; k++)
                free(g->st[i].defs[k]);
            free(g->st[i].hnsw);
        }
        free(g->spare_def);
        free(g);
    }
    free(e);
}

/* ---- users ------------------------------------------------------------------ */

#define USER_COLS \
    "id, email_enc, email_hmac, password_hash, is_platform_admin, " EPOCH("created_at") ", " EPOCH("email_verified_at")

static void user_row(const PGresult *r, int i, void *out)
{
    struct eng_user *u = out;

    memset(u, 0, sizeof *u);
    cpy(u->id, sizeof u->id, r, i, 0);
    cpy(u->email_enc, sizeof u->email_enc, r, i, 1);
    cpy(u->email_hmac, sizeof u->email_hmac, r, i, 2);
    cpy(u->password_hash, sizeof u->password_hash, r, i, 3);
    u->is_platform_admin = flag(r, i, 4);
    u->created_at = i64(r, i, 5);
    u->email_verified_at = i64(r, i, 6);
}

static int one_user(struct engine *e, const char *sql, const char *key, struct eng_user *out)
{
    return q_one(e, NULL, false, sql, 1, (const char *[]){key}, "user", user_row, out);
}

static int pg_user_create(struct engine *e, const struct eng_user *u)
{
    struct ts at = ts(u->created_at), v = ts(u->email_verified_at);

    return q_must(e, NULL, false,
                  "INSERT INTO core.users (id, email_enc, email_hmac, password_hash, is_platform_admin, "
                  "created_at, email_verified_at) VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7)) "
                  "ON CONFLICT DO NOTHING RETURNING 1",
                  7,
                  (const char *[]){u->id, u->email_enc, u->email_hmac, u->password_hash,
                                   u->is_platform_admin ? "t" : "f", at.s, ts_or_null(&v)},
                  ERR_CONFLICT, "user id or email taken");
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
    return q_must(e, NULL, false, sql, 2, (const char *[]){id, val}, ERR_NOTFOUND, "no such user");
}

static int pg_user_set_password(struct engine *e, const char *id, const char *phc)
{
    return update_user(e, "UPDATE core.users SET password_hash = $2 WHERE id = $1 RETURNING 1", id, phc);
}

static int pg_user_set_verified(struct engine *e, const char *id, int64_t at)
{
    struct ts t = ts(at);

    return update_user(e, "UPDATE core.users SET email_verified_at = coalesce(email_verified_at, to_timestamp($2)) "
                          "WHERE id = $1 RETURNING 1", id, t.s);
}

static int pg_user_erase(struct engine *e, const char *id, int64_t now, char (*out)[ENG_ID], size_t max, size_t *n)
{
    struct ts t = ts(now);
    PGresult *r;
    int rc;

    *n = 0;
    if ((rc = q_any(e, NULL, false, true, "SELECT * FROM core.user_erase($1, $2::bigint)", 2,
                    (const char *[]){id, t.s}, &r)) != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        cpy(out[(*n)++], ENG_ID, r, i, 0);
    PQclear(r);
    return 0;
}

/* ---- a person's one-time tokens and the auth outbox ------------------------------ */

static const char *token_kind_name(int kind)
{
    return kind == ENG_TOKEN_RESET ? "reset" : "verify";
}

static int pg_user_token_create(struct engine *e, const struct eng_user_token *t)
{
    struct ts c = ts(t->created_at), x = ts(t->expires_at);

    return q_must(e, NULL, false,
                  "INSERT INTO core.user_tokens (token_hash, kind, user_id, created_at, expires_at) "
                  "VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5)) ON CONFLICT DO NOTHING RETURNING 1",
                  5, (const char *[]){t->token_hash, token_kind_name(t->kind), t->user_id, c.s, x.s},
                  ERR_CONFLICT, "token hash taken");
}

static void user_token_row(const PGresult *r, int i, void *out)
{
    struct eng_user_token *t = out;

    memset(t, 0, sizeof *t);
    cpy(t->token_hash, sizeof t->token_hash, r, i, 0);
    t->kind = strcmp(PQgetvalue(r, i, 1), "reset") == 0 ? ENG_TOKEN_RESET : ENG_TOKEN_VERIFY;
    cpy(t->user_id, sizeof t->user_id, r, i, 2);
    t->created_at = i64(r, i, 3);
    t->expires_at = i64(r, i, 4);
    t->used_at = i64(r, i, 5);
}

/* One UPDATE: a concurrent use of the same token finds it used. */
static int pg_user_token_use(struct engine *e, int kind, const char *token_hash, int64_t now,
                             struct eng_user_token *out)
{
    struct ts t = ts(now);

    return q_one(e, NULL, false,
                 "UPDATE core.user_tokens SET used_at = to_timestamp($3) "
                 "WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > to_timestamp($3) "
                 "RETURNING token_hash, kind, user_id, " EPOCH("created_at") ", " EPOCH("expires_at") ", "
                 EPOCH("used_at"),
                 3, (const char *[]){token_hash, token_kind_name(kind), t.s}, "token", user_token_row, out);
}

static int pg_auth_event_append(struct engine *e, const struct eng_auth_event *ev, int64_t *seq)
{
    struct ts c = ts(ev->created_at), x = ts(ev->expires_at);
    PGresult *r;
    int rc;

    if ((rc = q_any(e, NULL, false, true,
                    "INSERT INTO core.auth_events (kind, user_id, sealed, created_at, expires_at) "
                    "VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5)) RETURNING seq",
                    5, (const char *[]){ev->kind, ev->user_id, ev->sealed, c.s, x.s}, &r)) != 0)
        return rc;
    if (PQntuples(r) == 1)
        *seq = i64(r, 0, 0);
    else
        rc = engine_fail(e, ERR_INTERNAL, "event insert returned %d rows", PQntuples(r));
    PQclear(r);
    return rc;
}

static void auth_event_row(const PGresult *r, int i, void *out)
{
    struct eng_auth_event *ev = out;

    memset(ev, 0, sizeof *ev);
    ev->seq = i64(r, i, 0);
    cpy(ev->kind, sizeof ev->kind, r, i, 1);
    cpy(ev->user_id, sizeof ev->user_id, r, i, 2);
    cpy(ev->sealed, sizeof ev->sealed, r, i, 3);
    ev->created_at = i64(r, i, 4);
    ev->expires_at = i64(r, i, 5);
}

static int pg_auth_event_list(struct engine *e, int64_t after, struct eng_auth_event *out, size_t max, size_t *n)
{
    struct ts a = ts(after), lim = limit_of(max);

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    return q_list(e, NULL, false,
                  "SELECT seq, kind, user_id, sealed, " EPOCH("created_at") ", " EPOCH("expires_at")
                  " FROM core.auth_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                  2, (const char *[]){a.s, lim.s}, auth_event_row, out, sizeof *out, max, n);
}

static int pg_user_set_admin(struct engine *e, const char *id, bool admin)
{
    return update_user(e, "UPDATE core.users SET is_platform_admin = $2 WHERE id = $1 RETURNING 1", id,
                       admin ? "t" : "f");
}

static int pg_user_memberships(struct engine *e, const char *user_id, struct eng_membership *out,
                               size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    const char *org = NULL;
    int rc;

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    if ((rc = enter(e, NULL, false, &org)) != 0)
        return rc;
    if (max == 0)
        return 0;
    return q_list(e, NULL, false, "SELECT " MEMBER_COLS " FROM core.user_memberships($1) LIMIT $2", 2,
                  (const char *[]){user_id, lim.s}, member_row, out, sizeof *out, max, n);
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
        true, false};
    if ((rc = run_on(e, &g->core_tx, o->id, CORE_PATH, &st, 1, true, &r)) == 0 && PQntuples(r) == 0)
        rc = engine_fail(e, ERR_CONFLICT, "org id or slug taken");
    PQclear(r);
    return rc;
}

#define APP_COLS "id, name, kind, base_url, status, " EPOCH("created_at")

static void app_row(const PGresult *r, int i, void *out)
{
    struct eng_app *a = out;

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

    return q_must(e, NULL, false,
                  "INSERT INTO core.apps (id, name, kind, base_url, status, created_at) "
                  "VALUES ($1, $2, $3, $4, $5, to_timestamp($6)) ON CONFLICT DO NOTHING RETURNING 1",
                  6,
                  (const char *[]){a->id, a->name, a->kind, a->base_url,
                                   a->status[0] ? a->status : "active", at.s},
                  ERR_CONFLICT, "app name or id taken");
}

static int pg_app_get(struct engine *e, const char *name, struct eng_app *out)
{
    return q_one(e, NULL, false, "SELECT " APP_COLS " FROM core.apps WHERE name = $1", 1, (const char *[]){name},
                 "app", app_row, out);
}

static int pg_app_list(struct engine *e, struct eng_app *out, size_t max, size_t *n)
{
    struct ts lim = limit_of(max);

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    return q_list(e, NULL, false, "SELECT " APP_COLS " FROM core.apps ORDER BY name COLLATE \"C\" LIMIT $1", 1,
                  (const char *[]){lim.s}, app_row, out, sizeof *out, max, n);
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

static void role_row(const PGresult *r, int i, void *out)
{
    cJSON *perms = cJSON_Parse(PQgetvalue(r, i, 2)), *p;
    struct eng_role *ro = out;

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
    rows_into(r, role_row, out, sizeof *out, max, n);
    PQclear(r);
    return 0;
}

static int pg_role_put(struct engine *e, const struct eng_scope *s, const struct eng_role *ro, bool create)
{
    cJSON *perms;
    char *json;
    int rc;

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
    if (create)
        rc = q_must(e, s, true,
                    "INSERT INTO core.roles (org_id, name, permissions) "
                    "SELECT $1, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) "
                    "ON CONFLICT ON CONSTRAINT roles_org_name_key DO NOTHING RETURNING 1",
                    3, (const char *[]){s->org_id, ro->name, json}, ERR_CONFLICT,
                    "the org has a role of that name");
    else
        rc = q_must(e, s, true,
                    "UPDATE core.roles SET permissions = ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) "
                    "WHERE org_id = $1 AND name = $2 RETURNING 1",
                    3, (const char *[]){s->org_id, ro->name, json}, ERR_NOTFOUND, "no such role");
    free(json);
    return rc;
}

/* One statement: whether the role exists, whether anything holds it, and the
 * delete only when nothing does. A grant of the role committed by another
 * request between this statement's snapshot and its commit is not seen (the
 * memory engine's lock has no such window); the member is then left with no
 * permissions until an admin gives them a role, never with more. */
static int pg_role_delete(struct engine *e, const struct eng_scope *s, const char *name)
{
    PGresult *r;
    int rc;

    if ((rc = q_any(e, s, true, true,
                    "WITH held AS (SELECT EXISTS (SELECT 1 FROM core.memberships WHERE org_id = $1 AND role = $2)"
                    " OR EXISTS (SELECT 1 FROM core.api_keys WHERE org_id = $1 AND role = $2 AND revoked_at IS NULL)"
                    " OR EXISTS (SELECT 1 FROM core.invites WHERE org_id = $1 AND role = $2 AND used_at IS NULL"
                    " AND expires_at > now()) AS yes), "
                    "gone AS (DELETE FROM core.roles WHERE org_id = $1 AND name = $2 AND NOT (SELECT yes FROM held)"
                    " RETURNING 1) "
                    "SELECT EXISTS (SELECT 1 FROM core.roles WHERE org_id = $1 AND name = $2), "
                    "(SELECT count(*) FROM gone)",
                    2, (const char *[]){s->org_id, name}, &r)) != 0)
        return rc;
    if (PQntuples(r) != 1)
        rc = engine_fail(e, ERR_INTERNAL, "role delete returned %d rows", PQntuples(r));
    else if (!flag(r, 0, 0))
        rc = engine_fail(e, ERR_NOTFOUND, "no such role");
    else if (i64(r, 0, 1) != 1)
        rc = engine_fail(e, ERR_CONFLICT, "members, live API keys or open invites hold the role");
    PQclear(r);
    return rc;
}

/* ---- upkeep ------------------------------------------------------------------------------ */

/* Delivers mode's relay rows to core.audit_log: read them (data), insert
 * each as its org with ON CONFLICT DO NOTHING (core: an entry its request
 * logged already is skipped), commit, then drop the rows (data). Exactly one
 * log row per relay row, whichever step a crash interrupts. *n: delivered. */
static int relay_flush(struct engine *e, int store, int *n)
{
    struct pge *g = e->impl;
    struct pg_tx *tx = &g->st[store].tx;
    int mode = g->st[store].mode;
    char why[128] = "", ids[RELAY_BATCH][ENG_ID], batch[16];
    PGresult *r = NULL;
    int rc, rows;

    *n = 0;
    snprintf(batch, sizeof batch, "%d", RELAY_BATCH);
    const struct pg_stmt st = {"SELECT id, org_id, actor, action, target, meta, created_at "
                               "FROM core.audit_relay_pending($1::int)",
                               1, (const char *[]){batch}, true, false};
    rc = pg_tx_run(tx, NULL, CORE_PATH, &st, 1, false, &r, why);
    pg_tx_rollback(tx);
    if (rc != 0)
        return engine_fail(e, rc, "audit relay (%s): %s", g->st[store].label, why);
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
    if ((rc = relay_done(e, store, ids, rows)) == 0)
        *n = rows;
    return rc;
}

/* The HNSW indexes a mode's data database lacks (sql/0009: pgvector added
 * since, or a build that failed), built; *n how many. */
static int vector_indexes(struct engine *e, int store, int *n)
{
    struct pge *g = e->impl;
    struct pg_tx *tx = &g->st[store].tx;
    char why[128] = "";
    PGresult *r = NULL;
    const struct pg_stmt st = {"SELECT core.svc_vector_indexes_all($1)", 1,
                               (const char *[]){engine_mode_name(g->st[store].mode)}, true, false};
    int rc = pg_tx_run(tx, NULL, CORE_PATH, &st, 1, true, &r, why);

    *n = 0;
    if (rc == 0) {
        *n = atoi(PQgetvalue(r, 0, 0));
        rc = pg_tx_commit(tx, why);
    } else {
        pg_tx_rollback(tx);
    }
    PQclear(r);
    return rc != 0 ? engine_fail(e, rc, "vector indexes (%s): %s", g->st[store].label, why) : 0;
}

static int pg_maintain(struct engine *e, int64_t now, char report[256])
{
    struct pge *g = e->impl;
    char why[128] = "", months[16];
    PGresult *r = NULL;
    int rc, made = -1, sent[2] = {0, 0}, built[2] = {0, 0};

    (void)now; /* the server's clock places partitions, as it dates the rows */
    if (g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "maintain inside a unit of work");
    snprintf(months, sizeof months, "%d", AUDIT_MONTHS_AHEAD);
    const struct pg_stmt st = {"SELECT core.ensure_audit_partitions($1::int)", 1, (const char *[]){months}, true, false};
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
    /* every store, each on its own: a placed database that is down delays
     * its own relay rows and indexes, not the others'; the first failure is
     * what maintain answers */
    for (int i = 0; i < g->nst; i++) {
        int sent_here = 0, built_here = 0;
        int frc = relay_flush(e, i, &sent_here);
        int vrc = frc == 0 ? vector_indexes(e, i, &built_here) : frc;
        sent[g->st[i].mode] += sent_here;
        built[g->st[i].mode] += built_here;
        if (rc == 0)
            rc = vrc;
    }
    report[0] = '\0';
    if (made > 0 || sent[0] > 0 || sent[1] > 0 || built[0] > 0 || built[1] > 0)
        snprintf(report, 256,
                 "audit partitions made: %d; relayed audit entries delivered: test %d, live %d; "
                 "vector indexes built: test %d, live %d",
                 made, sent[0], sent[1], built[0], built[1]);
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
    .user_set_verified = pg_user_set_verified,
    .user_erase = pg_user_erase,
    .user_token_create = pg_user_token_create,
    .user_token_use = pg_user_token_use,
    .auth_event_append = pg_auth_event_append,
    .auth_event_list = pg_auth_event_list,
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
    .role_delete = pg_role_delete,
    .api_key_create = pg_api_key_create,
    .api_key_list = pg_api_key_list,
    .api_key_revoke = pg_api_key_revoke,
    .refresh_create = pg_refresh_create,
    .refresh_rotate = pg_refresh_rotate,
    .refresh_rotate_hash = pg_refresh_rotate_hash,
    .refresh_revoke_family = pg_refresh_revoke_family,
    .session_create = pg_session_create,
    .session_list = pg_session_list,
    .session_revoke = pg_session_revoke,
    .invite_create = pg_invite_create,
    .invite_mark_used = pg_invite_mark_used,
    .audit_append = pg_audit_append,
    .audit_list = pg_audit_list,
    ENGINE_PG_RECORD_OPS,
    .maintain = pg_maintain,
    .project = pgc_project,
    .wait = pgc_wait,
    .reap = pgc_reap,
    .view_read = pgc_view_read,
    .changes_list = pgc_changes_list,
    .org_platform = pgc_org_platform,
    .org_records = pgp_org_records,
    .org_place = pgp_org_place,
    .placement_sync = pgp_placement_sync,
};

/* The store of (dsn, mode), made unless one with the same DSN and mode exists. */
static int store_add(struct pge *g, const struct engine_pg_config *c, const char *label, int mode, const char *dsn,
                     const char *listen, const char *key, int *idx, char errstr[128])
{
    struct pge_store *st;
    char why[128];

    for (int i = 0; i < g->nst; i++)
        if (g->st[i].mode == mode && strcmp(g->st[i].dsn, dsn) == 0) {
            *idx = i;
            return 0;
        }
    if (g->nst == PGE_STORES) {
        err_set(errstr, "%s: more than %d data stores", key, PGE_STORES);
        return ERR_INVAL;
    }
    st = &g->st[g->nst];
    if (strlen(dsn) >= sizeof st->dsn || strlen(listen) >= sizeof st->listen_dsn) {
        err_set(errstr, "%s: too long", key);
        return ERR_INVAL;
    }
    snprintf(st->label, sizeof st->label, "%s", label);
    snprintf(st->dsn, sizeof st->dsn, "%s", dsn);
    snprintf(st->listen_dsn, sizeof st->listen_dsn, "%s", listen);
    st->mode = mode;
    if ((st->pool = pg_pool_new(label, dsn, c->connection_limit, c->prepare, why)) == NULL) {
        err_set(errstr, "%s: %s", key, why);
        return ERR_INVAL;
    }
    pg_tx_init(&st->tx, st->pool);
    *idx = g->nst++;
    return 0;
}

static const char *or_else(const char *a, const char *b)
{
    return a != NULL && a[0] != '\0' ? a : b;
}

/* The stores of kind's placements (svc or database), after the shared ones. */
static int places_add(struct pge *g, const struct engine_pg_config *c, const char *kind,
                      const struct engine_pg_place *in, int n, struct pge_place *out, int *nout,
                      char errstr[128])
{
    if (n > PGE_PLACES) {
        err_set(errstr, "more than %d [%s.*] sections", PGE_PLACES, kind);
        return ERR_INVAL;
    }
    for (int i = 0; i < n; i++) {
        struct pge_place *p = &out[(*nout)++];
        snprintf(p->name, sizeof p->name, "%s", in[i].name);
        for (int m = 0; m < 2; m++) {
            const char *dsn = or_else(in[i].dsn[m], g->st[m].dsn);
            char label[80], key[96];
            snprintf(label, sizeof label, "%s.%.48s.%s", kind, in[i].name, engine_mode_name(m));
            snprintf(key, sizeof key, "%s.%.48s.%s_dsn", kind, in[i].name, engine_mode_name(m));
            if (store_add(g, c, label, m, dsn, or_else(in[i].listen_dsn[m], dsn), key, &p->store[m], errstr) != 0)
                return ERR_INVAL;
        }
    }
    return 0;
}

struct engine *engine_pg_new(const struct engine_pg_config *c, char errstr[128])
{
    struct engine *e = calloc(1, sizeof *e);
    struct pge *g = calloc(1, sizeof *g);
    const char *dsn[2] = {c->test_dsn, c->live_dsn};
    const char *listen[2] = {c->listen_test_dsn, c->listen_live_dsn};
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
    if (c->core_dsn == NULL || c->core_dsn[0] == '\0') {
        err_set(errstr, "db.core_dsn is empty");
        goto fail;
    }
    if ((g->core = pg_pool_new("core", c->core_dsn, c->connection_limit, c->prepare, why)) == NULL) {
        err_set(errstr, "db.core_dsn: %s", why);
        goto fail;
    }
    g->core_tx.pool = g->core;
    for (int m = 0; m < 2; m++) {
        char key[32];
        int idx;
        const char *d = or_else(dsn[m], c->core_dsn);
        snprintf(key, sizeof key, "db.%s_dsn", engine_mode_name(m));
        /* the two shared stores are 0 and 1, by mode (engine_pg_home) */
        if (store_add(g, c, engine_mode_name(m), m, d, or_else(listen[m], d), key, &idx, errstr) != 0)
            goto fail;
    }
    if (places_add(g, c, "svc", c->svc, c->nsvc, g->svc, &g->nsvc, errstr) != 0 ||
        places_add(g, c, "database", c->db, c->ndb, g->db, &g->ndb, errstr) != 0)
        goto fail;
    return e;
fail:
    pg_free(e);
    return NULL;
}
