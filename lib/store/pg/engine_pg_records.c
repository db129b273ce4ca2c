/* engine_pg_records: resources and records on PostgreSQL (engine.h's
 * "resources and records"), behaving as the memory engine's reference
 * (engine_mem_records.c) does. Three files: this one (names, parameters,
 * rows, record writes), engine_pg_schema.c (resources) and engine_pg_list.c
 * (lists, the outbox); store/pg/pgrec.h is what they share.
 *
 * Layout (sql/0004_svc_records.sql has the whole story). A resource's schema
 * is a row of core.resources (service, mode, name → fields jsonb, options,
 * version); its records are the rows of one table per resource, in the data
 * schema of (service, mode) that core.svc_schema_name names (svc_<service>_
 * sandbox / _live, long names shortened with a hash), one typed column per
 * field next to the system columns id, org_id, version, created_at,
 * updated_at, expires_at (unix seconds, NULL: never) and _bidx (pii field →
 * blind index). Each data schema has an outbox, "_outbox", written by the
 * same statement as the record. Tables and outboxes are under forced RLS
 * like the core tenant tables (core.resources is global: a schema is shared
 * by every org); tessera_app owns none of them.
 *
 * Schema changes go through core.svc_resource_put, a SECURITY DEFINER
 * function that validates the definition again, probes every cast before it
 * alters anything and answers a refusal as data, so a 409 leaves the unit of
 * work usable. resource_get and the record writes hold FOR KEY SHARE on the
 * resource's metadata row for the rest of the transaction, and a schema
 * change takes FOR UPDATE on it: a change waits for the requests already
 * using the definition and they for it, so a request sees one definition from
 * its body check to its write, and no statement ever names a column another
 * transaction is renaming or retyping (the memory engine's region lock gives
 * the same). The cost is a tuple lock per request on that row.
 *
 * Everything runs on the data store of the scope and service (engine_pg_data:
 * the org's placed database, else the service's own, else the shared one of
 * the mode), the metadata included: a schema change and its DDL are one
 * transaction per store, and a database that holds a service's data keeps its
 * schemas and definitions (issue 18 §7: a schema change runs in each). Every
 * identifier in a statement is quoted here (qident) after it passed the
 * name regex; every value is a $n parameter. Round trips: a record write
 * uses the definition the handler's resource_get locked (or resource_hold
 * held: a guard, sql/0013_write_guard.sql, sent first with the write), never
 * a second read; a create is held back to its unit's commit (pg_tx_defer),
 * so a create from a held definition is one round trip, [scope, guard,
 * insert] as one implicit transaction, and an update or delete two (theirs,
 * then COMMIT). A read by id costs one: its statement names no column, so
 * once the worker knows the data schema's name (core.svc_schema_name is
 * IMMUTABLE: engine_pg.c keeps it) the definition and the row are read in
 * the same pipeline; a list page too (pgrec_record_list).
 *
 * Where it differs from the memory engine, beyond what no API call reaches:
 * a json value cast to a string prints its object keys in jsonb's order, not
 * the order they were written, and objects in json fields and options.views
 * come back in that order too. (LIKE's _ and numbers past 15 digits, which
 * differed once, now behave alike on both: one character; exact values.)
 *
 * Values cross as text parameters cast in SQL ($n::bigint …); rows come back
 * as to_jsonb(row), so each column arrives as the JSON value its type gives
 * (bigint → number, double precision[] → array, jsonb → itself), its members
 * put back in the schema's order as the memory engine keeps them. Expected
 * outcomes raise no SQL error: ids are canonical uuids (the engine.h
 * wrappers refuse any other), values against the schema (eng_value_check), and
 * a filter whose value cannot be of the column's type becomes a constant
 * condition, never a failing cast. */
#include "store/pg/pgrec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/text.h"
#include "core/uuid.h"

/* ---- names ------------------------------------------------------------------- */

/* A quoted identifier, as quote_ident makes it (names passed the regex, so
 * the doubling of '"' is belt and braces). */
int pgrec_qident(struct buf *b, const char *name)
{
    int rc = buf_puts(b, "\"");

    for (const char *p = name; rc == 0 && *p != '\0'; p++)
        rc = *p == '"' ? buf_puts(b, "\"\"") : buf_append(b, p, 1);
    return rc != 0 ? rc : buf_puts(b, "\"");
}

/* "schema"."table" */
int pgrec_qtable(struct buf *b, const char *schema, const char *table)
{
    int rc = pgrec_qident(b, schema);

    if (rc == 0)
        rc = buf_puts(b, ".");
    return rc != 0 ? rc : pgrec_qident(b, table);
}

/* ---- parameters ------------------------------------------------------------------ */

void pgrec_params_cleanup(struct params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
    p->n = 0;
}

/* Adds a borrowed value (NULL: SQL null); returns its $n, or 0 when full. */
int pgrec_param(struct params *p, const char *v)
{
    if (p->n >= PARAMS_MAX)
        return 0;
    p->owned[p->n] = NULL;
    p->v[p->n++] = v;
    return p->n;
}

/* Takes v (malloc'd; NULL means out of memory): its $n, or 0. */
int pgrec_param_own(struct params *p, char *v)
{
    if (v == NULL || p->n >= PARAMS_MAX) {
        free(v);
        return 0;
    }
    p->owned[p->n] = v;
    p->v[p->n++] = v;
    return p->n;
}

char *pgrec_fmt_i64(int64_t v)
{
    char *s = malloc(24);

    if (s != NULL)
        snprintf(s, 24, "%" PRId64, v);
    return s;
}

char *pgrec_fmt_num(double d)
{
    char *s = malloc(32);

    if (s != NULL)
        snprintf(s, 32, "%.17g", d);
    return s;
}

/* ---- field types ----------------------------------------------------------------- */

static const char *sql_cast(int type)
{
    switch (type) {
    case ENG_FT_STRING:
    case ENG_FT_TEXT: return "text";
    case ENG_FT_INTEGER:
    case ENG_FT_TIMESTAMP: return "bigint";
    case ENG_FT_NUMBER: return "double precision";
    case ENG_FT_BOOLEAN: return "boolean";
    case ENG_FT_JSON: return "jsonb";
    default: return "double precision[]";
    }
}

/* A stored value (checked against its field) as the text of its parameter:
 * Returns owned. Numbers print with 17 digits, which double precision reads
 * back exactly. */
static char *value_text(const struct eng_field *f, const cJSON *v)
{
    switch (f->type) {
    case ENG_FT_STRING:
    case ENG_FT_TEXT:
        return strdup(v->valuestring);
    case ENG_FT_INTEGER:
    case ENG_FT_TIMESTAMP:
        return pgrec_fmt_i64((int64_t)v->valuedouble);
    case ENG_FT_NUMBER:
        return pgrec_fmt_num(v->valuedouble);
    case ENG_FT_BOOLEAN:
        return strdup(cJSON_IsTrue(v) ? "t" : "f");
    case ENG_FT_JSON: {
        char *t = json_print(v), *out = t != NULL ? strdup(t) : NULL;
        cJSON_free(t);
        return out;
    }
    default: {
        struct buf b;
        const cJSON *x;
        int rc;
        buf_init(&b, SQL_MAX);
        rc = buf_puts(&b, "{");
        cJSON_ArrayForEach(x, v) if (rc == 0)
            rc = buf_printf(&b, "%s%.17g", x == v->child ? "" : ",", x->valuedouble);
        if (rc == 0 && (rc = buf_puts(&b, "}")) == 0)
            return b.p;
        buf_cleanup(&b);
        return NULL;
    }
    }
}

/* ---- records: reading rows ----------------------------------------------------------- */

static int64_t num_member(const cJSON *o, const char *name)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(x) ? (int64_t)x->valuedouble : 0;
}

/* o's members in the order of def's fields (jsonb orders keys by length,
 * then bytes; the memory engine keeps the order they were written, which is
 * the schema's); members def does not know come last. Takes o; NULL when out
 * of memory. */
static cJSON *order_like(cJSON *o, const struct eng_resource *def)
{
    cJSON *d = cJSON_CreateObject(), *x;

    for (int i = 0; d != NULL && i < def->nfields; i++)
        if ((x = cJSON_DetachItemFromObjectCaseSensitive(o, def->fields[i].name)) != NULL &&
            !cJSON_AddItemToObject(d, x->string, x)) {
            cJSON_Delete(x);
            cJSON_Delete(d);
            d = NULL;
        }
    while (d != NULL && (x = o->child) != NULL) {
        cJSON_DetachItemViaPointer(o, x);
        if (!cJSON_AddItemToObject(d, x->string, x)) {
            cJSON_Delete(x);
            cJSON_Delete(d);
            d = NULL;
        }
    }
    cJSON_Delete(o);
    return d;
}

/* A row as to_jsonb(_r) prints it → *out (data and bidx Returns owned). The
 * system columns leave data (no field takes a reserved name); so do nulls (a
 * stored record has no null members). */
int pgrec_row_record(const char *text, size_t len, const struct eng_resource *def, struct eng_record *out)
{
    return pgrec_row_record_plus(text, len, def, NULL, NULL, out);
}

int pgrec_row_record_plus(const char *text, size_t len, const struct eng_resource *def, const char *name,
                          cJSON *value, struct eng_record *out)
{
    cJSON *o = cJSON_ParseWithLength(text, len), *x, *next;
    const cJSON *id;

    memset(out, 0, sizeof *out);
    if (o != NULL && name != NULL && (value == NULL || !cJSON_AddItemToObject(o, name, value))) {
        cJSON_Delete(o);
        o = NULL;
    } else if (o == NULL) {
        cJSON_Delete(value);
    }
    if (o == NULL)
        return ERR_NOMEM;
    id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(id)) {
        cJSON_Delete(o);
        return ERR_INTERNAL;
    }
    snprintf(out->id, sizeof out->id, "%s", id->valuestring);
    out->version = num_member(o, "version");
    out->created_at = num_member(o, "created_at");
    out->updated_at = num_member(o, "updated_at");
    out->expires_at = num_member(o, "expires_at");
    out->bidx = cJSON_DetachItemFromObjectCaseSensitive(o, "_bidx");
    for (x = o->child; x != NULL; x = next) {
        next = x->next;
        if (cJSON_IsNull(x) || text_reserved(x->string))
            cJSON_Delete(cJSON_DetachItemViaPointer(o, x));
    }
    if ((out->data = order_like(o, def)) == NULL) {
        cJSON_Delete(out->bidx);
        out->bidx = NULL;
        return ERR_NOMEM;
    }
    return 0;
}

/* ---- records: writing ----------------------------------------------------------------- */


static int record_fits(struct engine *e, const struct eng_resource *def, const struct eng_record *rec)
{
    char why[128];

    return eng_record_fits(def, rec, why) != 0 ? engine_fail(e, ERR_INVAL, "%s", why) : 0;
}

/* The blind indexes of rec's non-null pii values: Returns owned JSON text. */
static char *bidx_text(const struct eng_resource *def, const struct eng_record *rec)
{
    cJSON *o = cJSON_CreateObject();
    char *t, *out;

    if (o == NULL)
        return NULL;
    for (int i = 0; i < def->nfields; i++) {
        const struct eng_field *f = &def->fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec->data, f->name);
        const cJSON *h = rec->bidx != NULL ? cJSON_GetObjectItemCaseSensitive(rec->bidx, f->name) : NULL;
        if (f->pii && v != NULL && !cJSON_IsNull(v) && cJSON_IsString(h))
            cJSON_AddStringToObject(o, f->name, h->valuestring);
    }
    t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    out = t != NULL ? strdup(t) : NULL;
    cJSON_free(t);
    return out;
}

/* Each field's value of rec as a parameter, in the order of def's fields:
 * "$k::type" (or $k for NULL) appended to b, joined by sep. */
static int field_values(struct buf *b, struct params *p, const struct eng_resource *def,
                        const struct eng_record *rec, bool assign)
{
    int rc = 0;

    for (int i = 0; rc == 0 && i < def->nfields; i++) {
        const struct eng_field *f = &def->fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec->data, f->name);
        int k = v == NULL || cJSON_IsNull(v) ? pgrec_param(p, NULL) : pgrec_param_own(p, value_text(f, v));

        if (k == 0)
            return ERR_NOMEM;
        rc = buf_puts(b, ", ");
        if (rc == 0 && assign && (rc = pgrec_qident(b, f->name)) == 0)
            rc = buf_puts(b, " = ");
        if (rc == 0)
            rc = buf_printf(b, "$%d::%s", k, sql_cast(f->type));
    }
    return rc;
}

/* Runs n statements (their params in p[i]) on the data store of (s, service). */
int pgrec_run(struct engine *e, const struct eng_scope *s, const char *service, const char *const *sql,
              struct params *p, size_t n, PGresult **res)
{
    struct pg_stmt st[PG_STMT_MAX];

    for (size_t i = 0; i < n; i++)
        st[i] = (struct pg_stmt){sql[i], p[i].n, p[i].v, false, false}; /* built per call: never prepared */
    return engine_pg_data(e, s, service, DATA_PATH, st, n, res);
}

int pgrec_run_read(struct engine *e, const struct eng_scope *s, const char *service, const char *const *sql,
                   struct params *p, size_t n, PGresult **res)
{
    struct pg_stmt st[PG_STMT_MAX];

    for (size_t i = 0; i < n; i++)
        st[i] = (struct pg_stmt){sql[i], p[i].n, p[i].v, false, false};
    return engine_pg_data_read(e, s, service, DATA_PATH, st, n, res);
}

int pgrec_nomem(struct engine *e)
{
    return engine_fail(e, ERR_NOMEM, "out of memory building a statement");
}

int pgrec_call_init(struct engine *e, const char *service, struct pgrec_call *c)
{
    memset(c, 0, sizeof *c);
    c->service = service;
    buf_init(&c->b[0], SQL_MAX);
    buf_init(&c->b[1], SQL_MAX);
    if ((c->def = engine_pg_def_spare(e, &c->lent)) == NULL && (c->def = malloc(sizeof *c->def)) == NULL)
        return pgrec_nomem(e);
    return 0;
}

int pgrec_call_open(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                    bool lock, struct pgrec_call *c)
{
    const struct eng_resource *kept = engine_pg_def_known(e, s, service, resource);
    const char *schema = engine_pg_schema_known(e, s->mode, service);
    int rc;

    if ((rc = pgrec_call_init(e, service, c)) != 0)
        return rc;
    /* the definition the unit's resource read locked (or guards) for its
     * writes: the handler checked the body against it; no second read */
    if (lock && kept != NULL && schema != NULL && engine_pg_held(e, s, service, resource, kept->version)) {
        memcpy(c->def, kept, sizeof *c->def);
        snprintf(c->schema, sizeof c->schema, "%s", schema);
        return 0;
    }
    if ((rc = pgrec_res_load(e, s, service, resource, lock, c->def, c->schema)) == 0 && lock) {
        engine_pg_def_learn(e, s, c->def);
        engine_pg_held_set(e, s, service, resource, c->def->version);
    }
    return rc;
}

int pgrec_call_run(struct engine *e, const struct eng_scope *s, struct pgrec_call *c, size_t n)
{
    return pgrec_run(e, s, c->service, (const char *[]){c->b[0].p, c->b[1].p}, c->p, n, c->r);
}

void pgrec_call_close(struct pgrec_call *c)
{
    for (int i = 0; i < 2; i++) {
        PQclear(c->r[i]);
        pgrec_params_cleanup(&c->p[i]);
        buf_cleanup(&c->b[i]);
    }
    if (c->lent != NULL)
        *c->lent = false;
    else
        free(c->def);
    c->def = NULL;
    c->lent = NULL;
}

/* ", ob AS (INSERT INTO <schema>._outbox …)": the outbox entry of the change
 * the CTE named from returns, written by the same statement as the change;
 * row is what the entry takes from it (org, resource, id, op, version, time). */
static int outbox_sql(struct buf *b, const char *schema, const char *row, const char *from)
{
    int rc = buf_puts(b, ", ob AS (INSERT INTO ");

    if (rc == 0)
        rc = pgrec_qtable(b, schema, "_outbox");
    if (rc == 0)
        rc = buf_printf(b, " (org_id, resource, record_id, op, version, created_at) SELECT %s FROM %s)", row, from);
    return rc;
}

int pgrec_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const struct eng_record *rec)
{
    struct pgrec_call c;
    struct params *p = &c.p[0];
    struct buf *b = &c.b[0];
    int rc;

    if ((rc = pgrec_call_open(e, s, service, resource, true, &c)) != 0 || (rc = record_fits(e, c.def, rec)) != 0)
        goto out;
    /* $1 id, $2 org, $3 created, $4 updated, $5 expires (null: never), $6 bidx, $7 resource */
    if (pgrec_param(p, rec->id) == 0 || pgrec_param(p, s->org_id) == 0 ||
        pgrec_param_own(p, pgrec_fmt_i64(rec->created_at)) == 0 ||
        pgrec_param_own(p, pgrec_fmt_i64(rec->updated_at)) == 0 ||
        (rec->expires_at != 0 ? pgrec_param_own(p, pgrec_fmt_i64(rec->expires_at))
                              : pgrec_param(p, NULL)) == 0 ||
        pgrec_param_own(p, bidx_text(c.def, rec)) == 0 || pgrec_param(p, resource) == 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    /* Held back to go with the unit's commit, when its owner runs a unit
     * that conflicts again (e->reruns): [guard, insert] then commit in one
     * round trip. Its answer is never read, so a taken id is the unique
     * key's error, ERR_CONFLICT at the commit: the request runs again, with
     * a new id. Otherwise (a seed, which counts a taken id as seeded) it
     * runs now and a taken id is ERR_CONFLICT here. */
    bool defer = e->reruns;
    rc = buf_puts(b, "WITH ins AS (INSERT INTO ");
    if (rc == 0)
        rc = pgrec_qtable(b, c.schema, resource);
    if (rc == 0)
        rc = buf_puts(b, " (id, org_id, version, created_at, updated_at, expires_at, _bidx");
    for (int i = 0; rc == 0 && i < c.def->nfields; i++)
        if ((rc = buf_puts(b, ", ")) == 0)
            rc = pgrec_qident(b, c.def->fields[i].name);
    if (rc == 0)
        rc = buf_puts(b, ") VALUES ($1::uuid, $2::uuid, 1, $3::bigint, $4::bigint, $5::bigint, $6::jsonb");
    if (rc == 0)
        rc = field_values(b, p, c.def, rec, false);
    if (rc == 0)
        rc = buf_puts(b, defer ? ") RETURNING id, version, updated_at)"
                               : ") ON CONFLICT DO NOTHING RETURNING id, version, updated_at)");
    if (rc == 0)
        rc = outbox_sql(b, c.schema, "$2::uuid, $7::text, id, 'create', version, updated_at", "ins");
    if (rc == 0)
        rc = buf_puts(b, " SELECT count(*) FROM ins");
    if (rc != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if (defer) {
        /* known by its text: one resource's inserts repeat it (prepared once per connection) */
        const struct pg_stmt st = {b->p, p->n, p->v, PG_REUSE_TEXT, false};
        rc = engine_pg_data_defer(e, s, service, DATA_PATH, &st, 1);
        goto out;
    }
    if ((rc = pgrec_call_run(e, s, &c, 1)) != 0)
        goto out;
    if (strcmp(PQgetvalue(c.r[0], 0, 0), "0") == 0)
        rc = engine_fail(e, ERR_CONFLICT, "record id taken");
out:
    pgrec_call_close(&c);
    return rc;
}

/* "FROM schema.table _r WHERE org_id = $1 AND <live at $now>": the alias starts
 * with "_", so no field (a letter first) can shadow the whole-row reference. */
int pgrec_from_live(struct buf *b, const char *schema, const char *table, int now)
{
    int rc = buf_puts(b, " FROM ");

    if (rc == 0)
        rc = pgrec_qtable(b, schema, table);
    if (rc == 0)
        rc = buf_printf(b, " _r WHERE org_id = $1::uuid AND (expires_at IS NULL OR expires_at > $%d::bigint)", now);
    return rc;
}

/* A read by id. Once the data schema's name is known (it never changes), the
 * definition and the record go in one round trip, one implicit transaction
 * (no BEGIN, no COMMIT): the statement names no field, only the table, so it
 * needs nothing of the definition but what comes back with it. */
int pgrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                     const char *resource, const char *id, int64_t now, struct eng_record *out)
{
    struct pgrec_call c;
    struct params *p = &c.p[0];
    const char *known = engine_pg_schema_known(e, s->mode, service);
    PGresult **row = &c.r[0];
    int rc;

    if (known != NULL) {
        rc = pgrec_call_init(e, service, &c);
        snprintf(c.schema, sizeof c.schema, "%s", known);
        if (rc != 0)
            goto out;
    } else if ((rc = pgrec_call_open(e, s, service, resource, false, &c)) != 0) {
        goto out;
    }
    if (pgrec_param(p, s->org_id) == 0 || pgrec_param_own(p, pgrec_fmt_i64(now)) == 0 || pgrec_param(p, id) == 0 ||
        buf_puts(&c.b[0], "SELECT to_jsonb(_r)::text") != 0 || pgrec_from_live(&c.b[0], c.schema, resource, 2) != 0 ||
        buf_puts(&c.b[0], " AND id = $3::uuid") != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if (known != NULL) {
        const char *vals[3];
        struct pg_stmt st[2] = {[1] = {c.b[0].p, p->n, p->v, PG_REUSE_TEXT}};
        char schema[ENG_SLUG];
        pgrec_res_stmt(s, service, resource, vals, &st[0]);
        if ((rc = engine_pg_data_read(e, s, service, DATA_PATH, st, 2, c.r)) != 0 ||
            (rc = pgrec_res_result(e, s, c.r[0], service, resource, c.def, schema)) != 0)
            goto out;
        row = &c.r[1];
    } else if ((rc = pgrec_call_run(e, s, &c, 1)) != 0) {
        goto out;
    }
    if (PQntuples(*row) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such record");
    else if ((rc = pgrec_row_record(PQgetvalue(*row, 0, 0), (size_t)PQgetlength(*row, 0, 0), c.def, out)) != 0)
        rc = engine_fail(e, rc, "record unreadable");
out:
    pgrec_call_close(&c);
    return rc;
}

/* ---- a change (update, delete): a probe, then the write ----------------------------------- */

/* The parameters a change's two statements start with ($1 org, $2 at: its
 * time, $3 id), and its probe: the live record's version, locked until the
 * unit of work ends, so the write's version check cannot race another's. */
static int change_probe(struct pgrec_call *c, const char *org, int64_t at, const char *id, const char *resource)
{
    for (int i = 0; i < 2; i++)
        if (pgrec_param(&c->p[i], org) == 0 || pgrec_param_own(&c->p[i], pgrec_fmt_i64(at)) == 0 ||
            pgrec_param(&c->p[i], id) == 0)
            return ERR_NOMEM;
    if (buf_puts(&c->b[0], "SELECT version") != 0 || pgrec_from_live(&c->b[0], c->schema, resource, 2) != 0 ||
        buf_puts(&c->b[0], " AND id = $3::uuid FOR UPDATE") != 0)
        return ERR_NOMEM;
    return 0;
}

/* Runs the probe and the write: ERR_NOTFOUND when the probe found no record. */
static int change_run(struct engine *e, const struct eng_scope *s, struct pgrec_call *c)
{
    int rc = pgrec_call_run(e, s, c, 2);

    if (rc == 0 && PQntuples(c->r[0]) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such record");
    return rc;
}

/* The record is there but the write matched nothing: if_version was not its version. */
static int stale(struct engine *e, const struct pgrec_call *c)
{
    return engine_fail(e, ERR_PRECONDITION, "version is %s", PQgetvalue(c->r[0], 0, 0));
}

int pgrec_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, struct eng_record *rec, int64_t if_version)
{
    struct pgrec_call c;
    struct buf *b = &c.b[1];
    int rc;

    if ((rc = pgrec_call_open(e, s, service, resource, true, &c)) != 0 || (rc = record_fits(e, c.def, rec)) != 0)
        goto out;
    /* $1 org, $2 updated (and now), $3 id; the write's $4 if_version, $5 resource, $6 bidx */
    rc = change_probe(&c, s->org_id, rec->updated_at, rec->id, resource) != 0 ||
         pgrec_param_own(&c.p[1], pgrec_fmt_i64(if_version)) == 0 || pgrec_param(&c.p[1], resource) == 0 ||
         pgrec_param_own(&c.p[1], bidx_text(c.def, rec)) == 0;
    if (rc == 0)
        rc = buf_puts(b, "WITH upd AS (UPDATE ");
    if (rc == 0)
        rc = pgrec_qtable(b, c.schema, resource);
    if (rc == 0)
        rc = buf_puts(b, " _r SET version = _r.version + 1, updated_at = $2::bigint, _bidx = $6::jsonb");
    if (rc == 0)
        rc = field_values(b, &c.p[1], c.def, rec, true);
    if (rc == 0)
        rc = buf_puts(b, " WHERE org_id = $1::uuid AND id = $3::uuid "
                         "AND (expires_at IS NULL OR expires_at > $2::bigint) "
                         "AND ($4::bigint = 0 OR version = $4::bigint) "
                         "RETURNING id, version, created_at, expires_at, updated_at)");
    if (rc == 0)
        rc = outbox_sql(b, c.schema, "$1::uuid, $5::text, id, 'update', version, updated_at", "upd");
    if (rc == 0)
        rc = buf_puts(b, " SELECT version, created_at, coalesce(expires_at, 0) FROM upd");
    if (rc != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if ((rc = change_run(e, s, &c)) != 0)
        goto out;
    if (PQntuples(c.r[1]) == 0) {
        rc = stale(e, &c);
    } else {
        rec->version = strtoll(PQgetvalue(c.r[1], 0, 0), NULL, 10);
        rec->created_at = strtoll(PQgetvalue(c.r[1], 0, 1), NULL, 10);
        rec->expires_at = strtoll(PQgetvalue(c.r[1], 0, 2), NULL, 10);
    }
out:
    pgrec_call_close(&c);
    return rc;
}

int pgrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const char *id, int64_t if_version, int64_t now)
{
    struct pgrec_call c;
    struct buf *b = &c.b[1];
    int rc;

    if ((rc = pgrec_call_open(e, s, service, resource, true, &c)) != 0)
        goto out;
    /* $1 org, $2 now, $3 id; the write's $4 if_version, $5 resource */
    rc = change_probe(&c, s->org_id, now, id, resource) != 0 ||
         pgrec_param_own(&c.p[1], pgrec_fmt_i64(if_version)) == 0 || pgrec_param(&c.p[1], resource) == 0;
    if (rc == 0)
        rc = buf_puts(b, "WITH d AS (DELETE");
    if (rc == 0)
        rc = pgrec_from_live(b, c.schema, resource, 2);
    if (rc == 0)
        rc = buf_puts(b, " AND id = $3::uuid AND ($4::bigint = 0 OR version = $4::bigint) "
                         "RETURNING id, version)");
    if (rc == 0)
        rc = outbox_sql(b, c.schema, "$1::uuid, $5::text, id, 'delete', version + 1, $2::bigint", "d");
    if (rc == 0)
        rc = buf_puts(b, " SELECT count(*) FROM d");
    if (rc != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if ((rc = change_run(e, s, &c)) != 0)
        goto out;
    if (strcmp(PQgetvalue(c.r[1], 0, 0), "0") == 0)
        rc = stale(e, &c);
out:
    pgrec_call_close(&c);
    return rc;
}
