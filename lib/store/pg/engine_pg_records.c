/* engine_pg_records: resources and records on PostgreSQL (engine.h's
 * "resources and records"), behaving as the memory engine's reference
 * (engine_mem_records.c) does.
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
 * Everything runs on the data pool of the scope's mode (engine_pg_data), the
 * metadata included: a schema change and its DDL are one transaction, and a
 * mode whose DSN points at another database keeps its schemas there. Every
 * identifier in a statement is quoted here (qident) after it passed the
 * name regex; every value is a $n parameter. A record op costs two round
 * trips: the definition (to know the columns), then the statement(s), which
 * go pipelined in one (a handler's own resource_get before it is a third:
 * the engine keeps no definition across calls, so none can go stale).
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
 * outcomes raise no SQL error: ids are checked with uuid_valid first (a
 * malformed id is NOTFOUND), values against the schema (eng_value_check), and
 * a filter whose value cannot be of the column's type becomes a constant
 * condition, never a failing cast. */
#include "store/pg/engine_pg_records.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/uuid.h"

#define fail engine_pg_fail
#define DATA_PATH "pg_catalog, pg_temp"
#define SQL_MAX (4u * 1024 * 1024)
#define PARAMS_MAX 512          /* 7 system values + 200 fields, or 16 filters + keyset */
#define LIST_CAP 100000

/* ---- names ------------------------------------------------------------------- */

/* Service names are app names: ^[a-z0-9][a-z0-9_-]{0,62}$ (core.apps). */
static bool service_ok(const char *s)
{
    size_t n = s != NULL ? strnlen(s, ENG_SLUG) : ENG_SLUG;

    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              (i > 0 && (s[i] == '_' || s[i] == '-'))))
            return false;
    return true;
}

/* The system columns: a field may not take their names (the API refuses
 * them too; here it would break the table). */
static bool reserved(const char *name)
{
    static const char *const sys[] = {"id", "org_id", "version", "created_at", "updated_at",
                                      "expires_at", "deleted_at", NULL};

    for (size_t i = 0; sys[i] != NULL; i++)
        if (strcmp(name, sys[i]) == 0)
            return true;
    return false;
}

static bool scope_ok(const struct eng_scope *s)
{
    return s != NULL && (s->mode == ENG_MODE_TEST || s->mode == ENG_MODE_LIVE);
}

/* A quoted identifier, as quote_ident makes it (names passed the regex, so
 * the doubling of '"' is belt and braces). */
static int qident(struct buf *b, const char *name)
{
    int rc = buf_puts(b, "\"");

    for (const char *p = name; rc == 0 && *p != '\0'; p++)
        rc = *p == '"' ? buf_puts(b, "\"\"") : buf_append(b, p, 1);
    return rc != 0 ? rc : buf_puts(b, "\"");
}

/* "schema"."table" */
static int qtable(struct buf *b, const char *schema, const char *table)
{
    int rc = qident(b, schema);

    if (rc == 0)
        rc = buf_puts(b, ".");
    return rc != 0 ? rc : qident(b, table);
}

/* ---- parameters ------------------------------------------------------------------ */

/* The $n values of one statement; texts made here are owned by it. */
struct params {
    const char *v[PARAMS_MAX];
    char *owned[PARAMS_MAX];
    int n;
};

static void params_cleanup(struct params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
    p->n = 0;
}

/* Adds a borrowed value (NULL: SQL null); returns its $n, or 0 when full. */
static int param(struct params *p, const char *v)
{
    if (p->n >= PARAMS_MAX)
        return 0;
    p->owned[p->n] = NULL;
    p->v[p->n++] = v;
    return p->n;
}

/* Takes v (malloc'd; NULL means out of memory): its $n, or 0. */
static int param_own(struct params *p, char *v)
{
    if (v == NULL || p->n >= PARAMS_MAX) {
        free(v);
        return 0;
    }
    p->owned[p->n] = v;
    p->v[p->n++] = v;
    return p->n;
}

static char *fmt_i64(int64_t v)
{
    char *s = malloc(24);

    if (s != NULL)
        snprintf(s, 24, "%" PRId64, v);
    return s;
}

static char *fmt_num(double d)
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
        return fmt_i64((int64_t)v->valuedouble);
    case ENG_FT_NUMBER:
        return fmt_num(v->valuedouble);
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

/* ---- resources ------------------------------------------------------------------- */

#define RES_COLS                                                                          \
    "name, fields::text, options::text, version, expire_after, "                          \
    "extract(epoch FROM updated_at)::bigint, core.svc_schema_name(service, mode)"

/* A field of core.resources.fields. */
static int field_from_json(const cJSON *o, struct eng_field *f)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(o, "default");

    memset(f, 0, sizeof *f);
    if (!cJSON_IsString(name) || !eng_name_valid(name->valuestring, sizeof f->name) ||
        !cJSON_IsString(type) || eng_ftype_parse(type->valuestring, &f->type, &f->dim) != 0)
        return ERR_INTERNAL;
    snprintf(f->name, sizeof f->name, "%s", name->valuestring);
    f->required = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "required"));
    f->pii = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "pii"));
    f->index = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "index"));
    if (def != NULL && !cJSON_IsNull(def)) {
        char *t = cJSON_PrintUnformatted(def);
        bool fits = t != NULL && strlen(t) < sizeof f->def;
        if (fits)
            memcpy(f->def, t, strlen(t) + 1);
        cJSON_free(t);
        if (!fits)
            return ERR_INTERNAL;
    }
    return 0;
}

/* Row i of a RES_COLS result into out, and the data schema's name. */
static int res_row(const PGresult *r, int i, const char *service, struct eng_resource *out,
                   char schema[ENG_SLUG])
{
    cJSON *fields = cJSON_Parse(PQgetvalue(r, i, 1)), *opts = cJSON_Parse(PQgetvalue(r, i, 2));
    const cJSON *x, *views;
    int rc = 0;

    memset(out, 0, offsetof(struct eng_resource, fields));
    out->nfields = 0;
    snprintf(out->service, sizeof out->service, "%s", service);
    snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, i, 0));
    out->version = strtoll(PQgetvalue(r, i, 3), NULL, 10);
    out->expire_after = strtoll(PQgetvalue(r, i, 4), NULL, 10);
    out->updated_at = strtoll(PQgetvalue(r, i, 5), NULL, 10);
    if (schema != NULL)
        snprintf(schema, ENG_SLUG, "%s", PQgetvalue(r, i, 6));
    if (!cJSON_IsArray(fields) || !cJSON_IsObject(opts)) {
        rc = ERR_INTERNAL;
        goto out;
    }
    cJSON_ArrayForEach(x, fields) {
        if (out->nfields >= ENG_MAX_FIELDS || (rc = field_from_json(x, &out->fields[out->nfields])) != 0) {
            rc = ERR_INTERNAL;
            goto out;
        }
        out->nfields++;
    }
    views = cJSON_GetObjectItemCaseSensitive(opts, "views");
    if (cJSON_IsObject(views)) {
        /* jsonb prints ", " and ": ": back to compact, as the memory engine keeps it */
        char *t = cJSON_PrintUnformatted(views);
        if (t != NULL && strlen(t) < sizeof out->views)
            memcpy(out->views, t, strlen(t) + 1);
        else
            rc = ERR_INTERNAL;
        cJSON_free(t);
    }
out:
    cJSON_Delete(fields);
    cJSON_Delete(opts);
    return rc;
}

/* The definition of (service, resource) in s's mode and its data schema;
 * with lock, FOR KEY SHARE on its row until the unit of work ends (see the
 * header comment). ERR_NOTFOUND when it has none. */
static int res_load(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                    bool lock, struct eng_resource *out, char schema[ENG_SLUG])
{
    const char *vals[3] = {service, engine_mode_name(s != NULL ? s->mode : 0), name};
    const struct pg_stmt st = {
        lock ? "SELECT " RES_COLS " FROM core.resources WHERE service = $1 AND mode = $2 AND name = $3 "
               "FOR KEY SHARE"
             : "SELECT " RES_COLS " FROM core.resources WHERE service = $1 AND mode = $2 AND name = $3",
        3, vals, true};
    PGresult *r = NULL;
    int rc;

    if (!scope_ok(s) || !service_ok(service) || !eng_name_valid(name, ENG_FIELD))
        return fail(e, ERR_INVAL, "bad service or resource name");
    if ((rc = engine_pg_data(e, s, DATA_PATH, &st, 1, &r)) != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = fail(e, ERR_NOTFOUND, "no such resource");
    else if ((rc = res_row(r, 0, service, out, schema)) != 0)
        rc = fail(e, rc, "resource %.64s: unreadable definition", name);
    PQclear(r);
    return rc;
}

/* With the lock: a handler checks a body against this definition and the
 * record write that follows must see the same one (the memory engine's region
 * lock gives it that). The price: two schema changes with renames on one
 * resource at once (each reads, then changes) each hold the share lock the
 * other's FOR UPDATE waits for; PostgreSQL breaks that deadlock by failing
 * one (ERR_CONFLICT), which may simply retry. */
int pgrec_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *name, struct eng_resource *out)
{
    return res_load(e, s, service, name, true, out, NULL);
}

int pgrec_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                        struct eng_resource *out, size_t max, size_t *n)
{
    char lim[24];
    const char *vals[3] = {service, engine_mode_name(s != NULL ? s->mode : 0), lim};
    const struct pg_stmt st = {"SELECT " RES_COLS " FROM core.resources WHERE service = $1 AND mode = $2 "
                               "ORDER BY name COLLATE \"C\" LIMIT $3",
                               3, vals, true};
    PGresult *r = NULL;
    int rc;

    if (n == NULL || (out == NULL && max > 0))
        return fail(e, ERR_INVAL, "bad list arguments");
    *n = 0;
    if (!scope_ok(s) || !service_ok(service))
        return fail(e, ERR_INVAL, "bad service name");
    if (max == 0)
        return 0;
    snprintf(lim, sizeof lim, "%zu", max > LIST_CAP ? (size_t)LIST_CAP : max);
    /* A read no write depends on: no transaction of its own (lib/store/pg/pg.h). */
    if ((rc = engine_pg_data_read(e, s, DATA_PATH, &st, 1, &r)) != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max && rc == 0; i++)
        if ((rc = res_row(r, i, service, &out[*n], NULL)) == 0)
            (*n)++;
    PQclear(r);
    return rc != 0 ? fail(e, rc, "unreadable resource definition") : 0;
}

/* The memory engine's def_ok, plus the system columns' names. */
static bool def_ok(const struct eng_resource *d)
{
    if (!service_ok(d->service) || !eng_name_valid(d->name, sizeof d->name) || d->nfields < 0 ||
        d->nfields > ENG_MAX_FIELDS || d->expire_after < 0 || memchr(d->views, 0, sizeof d->views) == NULL)
        return false;
    for (int i = 0; i < d->nfields; i++) {
        const struct eng_field *f = &d->fields[i];
        if (!eng_name_valid(f->name, sizeof f->name) || reserved(f->name) || memchr(f->def, 0, sizeof f->def) == NULL ||
            f->type < ENG_FT_STRING || f->type > ENG_FT_VECTOR || (f->type == ENG_FT_VECTOR) != (f->dim > 0) ||
            f->dim > ENG_VECTOR_MAX || (f->pii && f->type != ENG_FT_STRING && f->type != ENG_FT_TEXT) ||
            (f->pii && f->def[0]))
            return false;
        for (int j = 0; j < i; j++)
            if (strcmp(d->fields[j].name, f->name) == 0)
                return false;
    }
    return true;
}

/* The definition as core.svc_resource_put takes it: Returns owned text. */
static char *def_json(const struct eng_resource *d)
{
    cJSON *o = cJSON_CreateObject(), *fields = cJSON_AddArrayToObject(o, "fields");
    char tn[24], *text = NULL;

    if (o == NULL || fields == NULL)
        goto out;
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddNumberToObject(o, "expire_after", (double)d->expire_after);
    cJSON_AddItemToObject(o, "views", d->views[0] ? cJSON_Parse(d->views) : cJSON_CreateNull());
    for (int i = 0; i < d->nfields; i++) {
        const struct eng_field *f = &d->fields[i];
        cJSON *fo = cJSON_CreateObject();

        if (fo == NULL || !cJSON_AddItemToArray(fields, fo)) {
            cJSON_Delete(fo);
            goto out;
        }
        cJSON_AddStringToObject(fo, "name", f->name);
        cJSON_AddStringToObject(fo, "type", eng_ftype_name(f->type, f->dim, tn));
        if (f->required)
            cJSON_AddTrueToObject(fo, "required");
        if (f->pii)
            cJSON_AddTrueToObject(fo, "pii");
        if (f->index)
            cJSON_AddTrueToObject(fo, "index");
        if (f->def[0] != '\0') {
            cJSON *dv = cJSON_Parse(f->def);
            if (dv == NULL)
                goto out;
            cJSON_AddItemToObject(fo, "default", dv);
        }
    }
    text = cJSON_PrintUnformatted(o);
out:
    cJSON_Delete(o);
    return text;
}

static char *renames_json(const struct eng_rename *ren, size_t nren)
{
    cJSON *a = cJSON_CreateArray();
    char *text = NULL;

    for (size_t i = 0; a != NULL && i < nren; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            goto out;
        }
        cJSON_AddStringToObject(o, "from", ren[i].from);
        cJSON_AddStringToObject(o, "to", ren[i].to);
    }
    if (a != NULL)
        text = cJSON_PrintUnformatted(a);
out:
    cJSON_Delete(a);
    return text;
}

/* The function's answer: 0, or ERR_CONFLICT with *why filled. */
static int put_answer(struct engine *e, const char *text, struct eng_schema_conflict *why)
{
    cJSON *o = cJSON_Parse(text);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "field");
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(o, "record_id");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(o, "reason");
    int rc = 0;

    const cJSON *count = cJSON_GetObjectItemCaseSensitive(o, "count");

    if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "ok")))
        rc = fail(e, ERR_INTERNAL, "svc_resource_put: unexpected answer");
    else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        snprintf(why->field, sizeof why->field, "%s", cJSON_IsString(f) ? f->valuestring : "");
        snprintf(why->record_id, sizeof why->record_id, "%s", cJSON_IsString(rid) ? rid->valuestring : "");
        why->count = cJSON_IsNumber(count) && count->valuedouble >= 1 ? (int64_t)count->valuedouble : 1;
        snprintf(why->reason, sizeof why->reason, "%s", cJSON_IsString(reason) ? reason->valuestring : "");
        rc = fail(e, ERR_CONFLICT, "field %s: %s", why->field, why->reason);
    }
    cJSON_Delete(o);
    return rc;
}

/* The audit entry as core.svc_resource_put takes it: Returns owned text; NULL
 * for no entry with *rc 0, or on failure with *rc set. */
static char *audit_json(struct engine *e, const struct eng_scope *s, const struct eng_audit *a, int *rc)
{
    cJSON *o, *meta;
    char *text = NULL;

    *rc = 0;
    if (a == NULL)
        return NULL;
    if (memchr(a->org_id, 0, sizeof a->org_id) == NULL || strcmp(a->org_id, s->org_id) != 0 ||
        memchr(a->id, 0, sizeof a->id) == NULL || memchr(a->meta, 0, sizeof a->meta) == NULL) {
        *rc = fail(e, ERR_INVAL, "malformed audit entry");
        return NULL;
    }
    meta = cJSON_Parse(a->meta[0] ? a->meta : "{}");
    if ((o = cJSON_CreateObject()) != NULL && meta != NULL) {
        cJSON_AddStringToObject(o, "id", a->id);
        cJSON_AddStringToObject(o, "org_id", a->org_id);
        cJSON_AddStringToObject(o, "actor", a->actor);
        cJSON_AddStringToObject(o, "action", a->action);
        cJSON_AddStringToObject(o, "target", a->target);
        cJSON_AddNumberToObject(o, "created_at", (double)a->created_at);
        if (cJSON_AddItemToObject(o, "meta", meta))
            meta = NULL;
        text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(meta);
    cJSON_Delete(o);
    if (text == NULL)
        *rc = fail(e, ERR_NOMEM, "out of memory");
    return text;
}

int pgrec_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                       const struct eng_rename *ren, size_t nren, int64_t now,
                       const struct eng_audit *audit, struct eng_schema_conflict *why)
{
    struct eng_schema_conflict scratch;
    char *dj = NULL, *rj = NULL, *aj = NULL, at[24];
    PGresult *r = NULL;
    int rc;

    if (why == NULL)
        why = &scratch;
    memset(why, 0, sizeof *why);
    if (def == NULL || !scope_ok(s) || !def_ok(def) || (nren > 0 && ren == NULL) || nren > ENG_MAX_FIELDS)
        return fail(e, ERR_INVAL, "malformed resource definition");
    for (size_t i = 0; i < nren; i++)
        if (!eng_name_valid(ren[i].from, ENG_FIELD) || eng_resource_field(def, ren[i].to) == NULL)
            return fail(e, ERR_INVAL, "rename of %.64s names no new field", ren[i].from);
    snprintf(at, sizeof at, "%" PRId64, now);
    if ((aj = audit_json(e, s, audit, &rc)) == NULL && rc != 0)
        goto out;
    if ((dj = def_json(def)) == NULL || (rj = renames_json(ren, nren)) == NULL) {
        rc = fail(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    {
        const char *vals[6] = {def->service, engine_mode_name(s->mode), dj, rj, at, aj};
        const struct pg_stmt st = {
            "SELECT core.svc_resource_put($1, $2, $3::jsonb, $4::jsonb, $5::bigint, $6::jsonb)::text", 6, vals,
            true};
        if ((rc = engine_pg_data(e, s, DATA_PATH, &st, 1, &r)) == ERR_CONFLICT) {
            /* a deadlock or serialization failure: two changes of one resource met */
            snprintf(why->field, sizeof why->field, "*");
            snprintf(why->reason, sizeof why->reason, "another change of this resource ran at the same time; retry");
        }
        if (rc != 0)
            goto out;
    }
    rc = PQntuples(r) == 1 ? put_answer(e, PQgetvalue(r, 0, 0), why)
                           : fail(e, ERR_INTERNAL, "svc_resource_put: no answer");
    if (rc == 0 && audit != NULL)
        rc = engine_pg_relayed(e, s, audit);
out:
    PQclear(r);
    cJSON_free(dj);
    cJSON_free(rj);
    cJSON_free(aj);
    return rc;
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
 * system columns leave data; so do nulls (a stored record has no null members). */
static int row_record(const char *text, size_t len, const struct eng_resource *def, struct eng_record *out)
{
    cJSON *o = cJSON_ParseWithLength(text, len), *x, *next;
    const cJSON *id;

    memset(out, 0, sizeof *out);
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
        if (cJSON_IsNull(x) || reserved(x->string))
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

    return eng_record_fits(def, rec, why) != 0 ? fail(e, ERR_INVAL, "%s", why) : 0;
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
        int k = v == NULL || cJSON_IsNull(v) ? param(p, NULL) : param_own(p, value_text(f, v));

        if (k == 0)
            return ERR_NOMEM;
        rc = buf_puts(b, ", ");
        if (rc == 0 && assign && (rc = qident(b, f->name)) == 0)
            rc = buf_puts(b, " = ");
        if (rc == 0)
            rc = buf_printf(b, "$%d::%s", k, sql_cast(f->type));
    }
    return rc;
}

/* Runs n statements (their params in p[i]) on the data pool. */
static int run(struct engine *e, const struct eng_scope *s, const char *const *sql, struct params *p,
               size_t n, PGresult **res)
{
    struct pg_stmt st[PG_STMT_MAX];

    for (size_t i = 0; i < n; i++)
        st[i] = (struct pg_stmt){sql[i], p[i].n, p[i].v, false}; /* built per call: never prepared */
    return engine_pg_data(e, s, DATA_PATH, st, n, res);
}

static int nomem(struct engine *e)
{
    return fail(e, ERR_NOMEM, "out of memory building a statement");
}

int pgrec_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const struct eng_record *rec)
{
    struct eng_resource *def = malloc(sizeof *def);
    char schema[ENG_SLUG];
    struct params p = {0};
    struct buf b;
    PGresult *r = NULL;
    int rc;

    buf_init(&b, SQL_MAX);
    if (def == NULL) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = res_load(e, s, service, resource, true, def, schema)) != 0)
        goto out;
    if (rec == NULL || !uuid_valid(rec->id)) {
        rc = fail(e, ERR_INVAL, "record without a valid id");
        goto out;
    }
    if ((rc = record_fits(e, def, rec)) != 0)
        goto out;
    /* $1 id, $2 org, $3 created, $4 updated, $5 expires (null: never), $6 bidx, $7 resource */
    if (param(&p, rec->id) == 0 || param(&p, s->org_id) == 0 || param_own(&p, fmt_i64(rec->created_at)) == 0 ||
        param_own(&p, fmt_i64(rec->updated_at)) == 0 ||
        (rec->expires_at != 0 ? param_own(&p, fmt_i64(rec->expires_at)) : param(&p, NULL)) == 0 ||
        param_own(&p, bidx_text(def, rec)) == 0 || param(&p, resource) == 0) {
        rc = nomem(e);
        goto out;
    }
    rc = buf_puts(&b, "WITH ins AS (INSERT INTO ");
    if (rc == 0)
        rc = qtable(&b, schema, resource);
    if (rc == 0)
        rc = buf_puts(&b, " (id, org_id, version, created_at, updated_at, expires_at, _bidx");
    for (int i = 0; rc == 0 && i < def->nfields; i++)
        if ((rc = buf_puts(&b, ", ")) == 0)
            rc = qident(&b, def->fields[i].name);
    if (rc == 0)
        rc = buf_puts(&b, ") VALUES ($1::uuid, $2::uuid, 1, $3::bigint, $4::bigint, $5::bigint, $6::jsonb");
    if (rc == 0)
        rc = field_values(&b, &p, def, rec, false);
    if (rc == 0)
        rc = buf_puts(&b, ") ON CONFLICT DO NOTHING RETURNING id, version, updated_at), ob AS (INSERT INTO ");
    if (rc == 0)
        rc = qtable(&b, schema, "_outbox");
    if (rc == 0)
        rc = buf_puts(&b, " (org_id, resource, record_id, op, version, created_at) "
                          "SELECT $2::uuid, $7::text, id, 'create', version, updated_at FROM ins) "
                          "SELECT count(*) FROM ins");
    if (rc != 0) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = run(e, s, (const char *[]){b.p}, &p, 1, &r)) != 0)
        goto out;
    if (strcmp(PQgetvalue(r, 0, 0), "0") == 0)
        rc = fail(e, ERR_CONFLICT, "record id taken");
out:
    PQclear(r);
    params_cleanup(&p);
    buf_cleanup(&b);
    free(def);
    return rc;
}

/* "FROM schema.table _r WHERE org_id = $1 AND <live at $now>": the alias starts
 * with "_", so no field (a letter first) can shadow the whole-row reference. */
static int from_live(struct buf *b, const char *schema, const char *table, int now)
{
    int rc = buf_puts(b, " FROM ");

    if (rc == 0)
        rc = qtable(b, schema, table);
    if (rc == 0)
        rc = buf_printf(b, " _r WHERE org_id = $1::uuid AND (expires_at IS NULL OR expires_at > $%d::bigint)", now);
    return rc;
}

int pgrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                     const char *resource, const char *id, int64_t now, struct eng_record *out)
{
    struct eng_resource *def = malloc(sizeof *def);
    char schema[ENG_SLUG];
    struct params p = {0};
    struct buf b;
    PGresult *r = NULL;
    int rc;

    buf_init(&b, SQL_MAX);
    if (def == NULL) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = res_load(e, s, service, resource, false, def, schema)) != 0)
        goto out;
    if (id == NULL || !uuid_valid(id)) {
        rc = fail(e, ERR_NOTFOUND, "no such record");
        goto out;
    }
    if (param(&p, s->org_id) == 0 || param_own(&p, fmt_i64(now)) == 0 || param(&p, id) == 0 ||
        buf_puts(&b, "SELECT to_jsonb(_r)::text") != 0 || from_live(&b, schema, resource, 2) != 0 ||
        buf_puts(&b, " AND id = $3::uuid") != 0) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = run(e, s, (const char *[]){b.p}, &p, 1, &r)) != 0)
        goto out;
    if (PQntuples(r) == 0)
        rc = fail(e, ERR_NOTFOUND, "no such record");
    else if ((rc = row_record(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), def, out)) != 0)
        rc = fail(e, rc, "record unreadable");
out:
    PQclear(r);
    params_cleanup(&p);
    buf_cleanup(&b);
    free(def);
    return rc;
}

int pgrec_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, struct eng_record *rec, int64_t if_version)
{
    struct eng_resource *def = malloc(sizeof *def);
    char schema[ENG_SLUG];
    struct params p[2];
    struct buf b[2];
    PGresult *r[2] = {NULL, NULL};
    int rc;

    memset(p, 0, sizeof p);
    buf_init(&b[0], SQL_MAX);
    buf_init(&b[1], SQL_MAX);
    if (def == NULL) {
        rc = nomem(e);
        goto out;
    }
    if (rec == NULL) {
        rc = fail(e, ERR_INVAL, "no record");
        goto out;
    }
    if ((rc = res_load(e, s, service, resource, true, def, schema)) != 0)
        goto out;
    if (!uuid_valid(rec->id)) {
        rc = fail(e, ERR_NOTFOUND, "no such record");
        goto out;
    }
    if ((rc = record_fits(e, def, rec)) != 0)
        goto out;
    /* the probe: is the record there (locked), and at which version */
    if (param(&p[0], s->org_id) == 0 || param_own(&p[0], fmt_i64(rec->updated_at)) == 0 ||
        param(&p[0], rec->id) == 0 || buf_puts(&b[0], "SELECT version") != 0 ||
        from_live(&b[0], schema, resource, 2) != 0 || buf_puts(&b[0], " AND id = $3::uuid FOR UPDATE") != 0) {
        rc = nomem(e);
        goto out;
    }
    /* $1 org, $2 updated (and now), $3 id, $4 if_version, $5 resource, $6 bidx */
    rc = param(&p[1], s->org_id) == 0 || param_own(&p[1], fmt_i64(rec->updated_at)) == 0 ||
         param(&p[1], rec->id) == 0 || param_own(&p[1], fmt_i64(if_version)) == 0 ||
         param(&p[1], resource) == 0 || param_own(&p[1], bidx_text(def, rec)) == 0;
    if (rc == 0)
        rc = buf_puts(&b[1], "WITH upd AS (UPDATE ");
    if (rc == 0)
        rc = qtable(&b[1], schema, resource);
    if (rc == 0)
        rc = buf_puts(&b[1], " _r SET version = _r.version + 1, updated_at = $2::bigint, _bidx = $6::jsonb");
    if (rc == 0)
        rc = field_values(&b[1], &p[1], def, rec, true);
    if (rc == 0)
        rc = buf_puts(&b[1], " WHERE org_id = $1::uuid AND id = $3::uuid "
                             "AND (expires_at IS NULL OR expires_at > $2::bigint) "
                             "AND ($4::bigint = 0 OR version = $4::bigint) "
                             "RETURNING id, version, created_at, expires_at, updated_at), ob AS (INSERT INTO ");
    if (rc == 0)
        rc = qtable(&b[1], schema, "_outbox");
    if (rc == 0)
        rc = buf_puts(&b[1], " (org_id, resource, record_id, op, version, created_at) "
                             "SELECT $1::uuid, $5::text, id, 'update', version, updated_at FROM upd) "
                             "SELECT version, created_at, coalesce(expires_at, 0) FROM upd");
    if (rc != 0) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = run(e, s, (const char *[]){b[0].p, b[1].p}, p, 2, r)) != 0)
        goto out;
    if (PQntuples(r[0]) == 0)
        rc = fail(e, ERR_NOTFOUND, "no such record");
    else if (PQntuples(r[1]) == 0)
        rc = fail(e, ERR_PRECONDITION, "version is %s", PQgetvalue(r[0], 0, 0));
    else {
        rec->version = strtoll(PQgetvalue(r[1], 0, 0), NULL, 10);
        rec->created_at = strtoll(PQgetvalue(r[1], 0, 1), NULL, 10);
        rec->expires_at = strtoll(PQgetvalue(r[1], 0, 2), NULL, 10);
    }
out:
    PQclear(r[0]);
    PQclear(r[1]);
    params_cleanup(&p[0]);
    params_cleanup(&p[1]);
    buf_cleanup(&b[0]);
    buf_cleanup(&b[1]);
    free(def);
    return rc;
}

int pgrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const char *id, int64_t if_version, int64_t now)
{
    struct eng_resource *def = malloc(sizeof *def);
    char schema[ENG_SLUG];
    struct params p[2];
    struct buf b[2];
    PGresult *r[2] = {NULL, NULL};
    int rc;

    memset(p, 0, sizeof p);
    buf_init(&b[0], SQL_MAX);
    buf_init(&b[1], SQL_MAX);
    if (def == NULL) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = res_load(e, s, service, resource, true, def, schema)) != 0)
        goto out;
    if (id == NULL || !uuid_valid(id)) {
        rc = fail(e, ERR_NOTFOUND, "no such record");
        goto out;
    }
    for (int i = 0; i < 2; i++)
        if (param(&p[i], s->org_id) == 0 || param_own(&p[i], fmt_i64(now)) == 0 || param(&p[i], id) == 0) {
            rc = nomem(e);
            goto out;
        }
    rc = buf_puts(&b[0], "SELECT version") != 0 || from_live(&b[0], schema, resource, 2) != 0 ||
         buf_puts(&b[0], " AND id = $3::uuid FOR UPDATE") != 0;
    /* $4 if_version, $5 resource */
    if (rc == 0)
        rc = param_own(&p[1], fmt_i64(if_version)) == 0 || param(&p[1], resource) == 0;
    if (rc == 0)
        rc = buf_puts(&b[1], "WITH d AS (DELETE");
    if (rc == 0)
        rc = from_live(&b[1], schema, resource, 2);
    if (rc == 0)
        rc = buf_puts(&b[1], " AND id = $3::uuid AND ($4::bigint = 0 OR version = $4::bigint) "
                             "RETURNING id, version), ob AS (INSERT INTO ");
    if (rc == 0)
        rc = qtable(&b[1], schema, "_outbox");
    if (rc == 0)
        rc = buf_puts(&b[1], " (org_id, resource, record_id, op, version, created_at) "
                             "SELECT $1::uuid, $5::text, id, 'delete', version + 1, $2::bigint FROM d) "
                             "SELECT count(*) FROM d");
    if (rc != 0) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = run(e, s, (const char *[]){b[0].p, b[1].p}, p, 2, r)) != 0)
        goto out;
    if (PQntuples(r[0]) == 0)
        rc = fail(e, ERR_NOTFOUND, "no such record");
    else if (strcmp(PQgetvalue(r[1], 0, 0), "0") == 0)
        rc = fail(e, ERR_PRECONDITION, "version is %s", PQgetvalue(r[0], 0, 0));
out:
    PQclear(r[0]);
    PQclear(r[1]);
    params_cleanup(&p[0]);
    params_cleanup(&p[1]);
    buf_cleanup(&b[0]);
    buf_cleanup(&b[1]);
    free(def);
    return rc;
}

/* ---- list: filters, order, keyset ------------------------------------------------------ */

/* What a query compares: a column's SQL and its type (ENG_FT_*), with id as
 * its own kind (a uuid compared as text when the value is no uuid). */
#define COL_ID (-1)

struct column {
    char sql[80];               /* quoted */
    int type;
    const struct eng_field *f;  /* NULL for system columns */
};

static bool column_of(const struct eng_resource *def, const char *name, struct column *c)
{
    struct buf b;

    memset(c, 0, sizeof *c);
    if (strcmp(name, "id") == 0) {
        c->type = COL_ID;
        snprintf(c->sql, sizeof c->sql, "id");
        return true;
    }
    if (strcmp(name, "created_at") == 0 || strcmp(name, "updated_at") == 0) {
        c->type = ENG_FT_TIMESTAMP;
        snprintf(c->sql, sizeof c->sql, "%s", name);
        return true;
    }
    if ((c->f = eng_resource_field(def, name)) == NULL)
        return false;
    c->type = c->f->type;
    buf_init(&b, sizeof c->sql - 1);
    if (qident(&b, name) != 0) {
        buf_cleanup(&b);
        return false;
    }
    snprintf(c->sql, sizeof c->sql, "%s", b.p);
    buf_cleanup(&b);
    return true;
}

static bool integral(double d)
{
    return isfinite(d) && d == floor(d) && fabs(d) <= (double)ENG_INT_MAX;
}

/* One scalar w compared with column c: its parameter and how to write it
 * ("$k::type"), and the column's SQL as the comparison needs it. false when
 * w cannot be a value of the column (the memory engine's "kinds differ"). */
static bool scalar(struct params *p, const struct column *c, const cJSON *w, char lhs[96], char rhs[64],
                   bool *nomem_)
{
    int k = 0;
    const char *cast = NULL;

    snprintf(lhs, 96, "%s", c->sql);
    switch (c->type) {
    case COL_ID:
        if (!cJSON_IsString(w))
            return false;
        k = param(p, w->valuestring);
        if (uuid_valid(w->valuestring)) {
            cast = "uuid";
        } else {
            snprintf(lhs, 96, "id::text COLLATE \"C\"");
            cast = "text COLLATE \"C\"";
        }
        break;
    case ENG_FT_STRING:
    case ENG_FT_TEXT:
        if (!cJSON_IsString(w))
            return false;
        k = param(p, w->valuestring);
        cast = "text COLLATE \"C\"";
        break;
    case ENG_FT_INTEGER:
    case ENG_FT_TIMESTAMP:
    case ENG_FT_NUMBER:
        if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble))
            return false;
        if (c->type != ENG_FT_NUMBER && integral(w->valuedouble)) {
            k = param_own(p, fmt_i64((int64_t)w->valuedouble));
            cast = "bigint";
        } else {
            k = param_own(p, fmt_num(w->valuedouble));
            cast = "double precision";
        }
        break;
    case ENG_FT_BOOLEAN:
        if (!cJSON_IsBool(w))
            return false;
        k = param(p, cJSON_IsTrue(w) ? "t" : "f");
        cast = "boolean";
        break;
    default:
        return false;           /* json and vectors compare only by is */
    }
    if (k == 0) {
        *nomem_ = true;
        return false;
    }
    snprintf(rhs, 64, "$%d::%s", k, cast);
    return true;
}

/* An `in` list as an array parameter of the column's kind; false when no
 * element can match. */
static bool array_of(struct params *p, const struct column *c, const cJSON *w, char lhs[96], char rhs[64],
                     bool *nomem_)
{
    struct buf b;
    const cJSON *x;
    const char *cast;
    int count = 0, k, rc;

    if (!cJSON_IsArray(w))
        return false;
    switch (c->type) {
    case COL_ID: cast = "text[]"; snprintf(lhs, 96, "id::text"); break;
    case ENG_FT_STRING:
    case ENG_FT_TEXT: cast = "text[]"; snprintf(lhs, 96, "%s", c->sql); break;
    case ENG_FT_INTEGER:
    case ENG_FT_TIMESTAMP: cast = "bigint[]"; snprintf(lhs, 96, "%s", c->sql); break;
    case ENG_FT_NUMBER: cast = "double precision[]"; snprintf(lhs, 96, "%s", c->sql); break;
    case ENG_FT_BOOLEAN: cast = "boolean[]"; snprintf(lhs, 96, "%s", c->sql); break;
    default: return false;
    }
    buf_init(&b, SQL_MAX);
    rc = buf_puts(&b, "{");
    cJSON_ArrayForEach(x, w) {
        bool fits = false;
        if (rc != 0)
            break;
        if (c->type == COL_ID || c->type == ENG_FT_STRING || c->type == ENG_FT_TEXT) {
            if ((fits = cJSON_IsString(x))) {
                /* an array literal's element: quoted, " and \ escaped */
                rc = buf_puts(&b, count ? ",\"" : "\"");
                for (const char *q = x->valuestring; rc == 0 && *q; q++)
                    rc = (*q == '"' || *q == '\\') ? buf_printf(&b, "\\%c", *q) : buf_append(&b, q, 1);
                if (rc == 0)
                    rc = buf_puts(&b, "\"");
            }
        } else if (c->type == ENG_FT_BOOLEAN) {
            if ((fits = cJSON_IsBool(x)))
                rc = buf_printf(&b, "%s%s", count ? "," : "", cJSON_IsTrue(x) ? "t" : "f");
        } else if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
            if (c->type == ENG_FT_NUMBER && (fits = true))
                rc = buf_printf(&b, "%s%.17g", count ? "," : "", x->valuedouble);
            else if ((fits = integral(x->valuedouble)))
                rc = buf_printf(&b, "%s%" PRId64, count ? "," : "", (int64_t)x->valuedouble);
        }
        count += fits;
    }
    if (rc == 0)
        rc = buf_puts(&b, "}");
    if (rc != 0 || count == 0) {
        *nomem_ = rc != 0;
        buf_cleanup(&b);
        return false;
    }
    if ((k = param_own(p, b.p)) == 0) {
        *nomem_ = true;
        return false;
    }
    snprintf(rhs, 64, "ANY($%d::%s)", k, cast);
    return true;
}

/* A LIKE pattern with the memory engine's reading of a trailing lone
 * backslash (a literal one), which PostgreSQL would refuse: Returns owned. */
static char *like_pattern(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    bool lone = false;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            if (i + 1 == n)
                lone = true;
            else
                i++;
        }
    }
    memcpy(out, s, n + 1);
    if (lone)
        memcpy(out + n, "\\", 2);
    return out;
}

/* One filter as SQL into b (parameters into p), the memory engine's matches(). */
static int filter_sql(struct buf *b, struct params *p, const struct eng_resource *def, const struct eng_filter *fl)
{
    static const char *const CMP[] = {[ENG_OP_EQ] = "=", [ENG_OP_NEQ] = "<>", [ENG_OP_GT] = ">",
                                      [ENG_OP_GTE] = ">=", [ENG_OP_LT] = "<", [ENG_OP_LTE] = "<="};
    struct column c;
    const cJSON *w = fl->value;
    char lhs[96], rhs[64];
    bool oom = false;
    int k;

    if (!column_of(def, fl->field, &c))
        return ERR_INVAL;
    if (fl->op == ENG_OP_IS) {
        if (w == NULL || cJSON_IsNull(w))
            return buf_printf(b, " AND %s IS NULL", c.sql);
        if (c.type != ENG_FT_BOOLEAN || (c.f != NULL && c.f->pii))
            return buf_puts(b, " AND false");
        return buf_printf(b, " AND %s IS %s", c.sql, cJSON_IsTrue(w) ? "TRUE" : "FALSE");
    }
    if (c.f != NULL && c.f->pii) {
        if (fl->op != ENG_OP_EQ || !cJSON_IsString(w))
            return buf_puts(b, " AND false");
        if ((k = param(p, c.f->name)) == 0 || param(p, w->valuestring) == 0)
            return ERR_NOMEM;
        return buf_printf(b, " AND _bidx->>$%d::text = $%d::text", k, k + 1);
    }
    if (w == NULL || cJSON_IsNull(w))
        return buf_printf(b, fl->op == ENG_OP_NEQ ? " AND %s IS NOT NULL" : " AND false", c.sql);
    switch (fl->op) {
    case ENG_OP_EQ:
    case ENG_OP_NEQ:
    case ENG_OP_GT:
    case ENG_OP_GTE:
    case ENG_OP_LT:
    case ENG_OP_LTE:
        if (scalar(p, &c, w, lhs, rhs, &oom))
            return buf_printf(b, " AND %s %s %s", lhs, CMP[fl->op], rhs);
        if (oom)
            return ERR_NOMEM;
        /* kinds differ: never equal, so neq holds for every value */
        return buf_printf(b, fl->op == ENG_OP_NEQ ? " AND %s IS NOT NULL" : " AND false", c.sql);
    case ENG_OP_LIKE:
        if (!cJSON_IsString(w) || (c.type != ENG_FT_STRING && c.type != ENG_FT_TEXT && c.type != COL_ID))
            return buf_puts(b, " AND false");
        if ((k = param_own(p, like_pattern(w->valuestring))) == 0)
            return ERR_NOMEM;
        return buf_printf(b, " AND %s LIKE $%d::text COLLATE \"C\"", c.type == COL_ID ? "id::text" : c.sql, k);
    case ENG_OP_IN:
        if (array_of(p, &c, w, lhs, rhs, &oom))
            return buf_printf(b, " AND %s = %s", lhs, rhs);
        return oom ? ERR_NOMEM : buf_puts(b, " AND false");
    default:
        return ERR_INVAL;
    }
}

/* The keyset's bound for a numeric order: the cursor's value, or the exact
 * value of the after_id row when the cursor's is that value as printed. A
 * cursor carries its value as cJSON prints a double, which keeps only 15
 * digits whenever they read back within DBL_EPSILON (9007199254740991 comes
 * back as 9007199254740990); this engine stores the exact value, so paging by
 * the printed one would repeat or skip rows. The row is found by id (the
 * cursor's other half) and used only when its value is within that rounding
 * of the cursor's, so a row updated or deleted since falls back to the
 * cursor as the memory engine reads it. Borrowed rhs in, *anchor out (owned
 * by the caller's buf). */
static int keyset_anchor(struct buf *anchor, const struct column *c, const char *schema, const char *table,
                         const char *rhs, int id_param)
{
    int rc = buf_printf(anchor, "coalesce((SELECT _a.%s FROM ", c->sql);

    if (rc == 0)
        rc = qtable(anchor, schema, table);
    if (rc == 0)
        rc = buf_printf(anchor,
                        " _a WHERE _a.org_id = $1::uuid AND _a.id = $%d::uuid AND abs(_a.%s - %s::double precision) "
                        "<= abs(%s::double precision) * 4.5e-16), %s)",
                        id_param, c->sql, rhs, rhs, rhs);
    return rc;
}

/* Rows strictly after (after_value, after_id) in the order: nulls after every
 * value ascending, before every value descending, ties by id. */
static int keyset_sql(struct buf *b, struct params *p, const struct column *c, const struct eng_query *q,
                      const char *schema, const char *table)
{
    const char *gt = q->desc ? "<" : ">";
    const cJSON *av = q->after_value;
    char lhs[96], rhs[64], idcmp[96];
    bool oom = false, by_id = uuid_valid(q->after_id);
    struct buf anchor;
    const char *bound = rhs;
    int k = param(p, q->after_id), rc;

    if (k == 0)
        return ERR_NOMEM;
    /* an id that is no uuid still bounds, compared as text as ids sort */
    if (by_id)
        snprintf(idcmp, sizeof idcmp, "id %s $%d::uuid", gt, k);
    else
        snprintf(idcmp, sizeof idcmp, "id::text COLLATE \"C\" %s $%d::text COLLATE \"C\"", gt, k);
    if (c->type == COL_ID)
        return buf_printf(b, " AND %s", idcmp);
    if (av == NULL || cJSON_IsNull(av))
        return q->desc ? buf_printf(b, " AND (%s IS NOT NULL OR %s)", c->sql, idcmp)
                       : buf_printf(b, " AND (%s IS NULL AND %s)", c->sql, idcmp);
    if (!scalar(p, c, av, lhs, rhs, &oom))
        return oom ? ERR_NOMEM : ERR_INVAL;
    buf_init(&anchor, 4096);
    /* only when the bound keeps the column's type (an integer column's bound
     * is a bigint unless the cursor's value has a fraction, which no stored
     * integer printed can have) */
    if (by_id && c->f != NULL && (c->type == ENG_FT_NUMBER || strstr(rhs, "::bigint") != NULL) &&
        (c->type == ENG_FT_NUMBER || c->type == ENG_FT_INTEGER || c->type == ENG_FT_TIMESTAMP)) {
        if ((rc = keyset_anchor(&anchor, c, schema, table, rhs, k)) != 0) {
            buf_cleanup(&anchor);
            return rc;
        }
        bound = anchor.p;
    }
    if (q->desc)
        rc = buf_printf(b, " AND (%s < %s OR (%s = %s AND %s))", lhs, bound, lhs, bound, idcmp);
    else
        rc = buf_printf(b, " AND (%s > %s OR (%s = %s AND %s) OR %s IS NULL)", lhs, bound, lhs, bound, idcmp, lhs);
    buf_cleanup(&anchor);
    return rc;
}

static int list_sql(struct engine *e, struct buf *b, struct params *p, const char *org, const char *schema,
                    const char *resource, const struct eng_resource *def, const struct eng_query *q, size_t max)
{
    struct column oc;
    int rc;

    if (!column_of(def, q->order[0] != '\0' ? q->order : "id", &oc))
        return fail(e, ERR_INVAL, "no field %.64s", q->order);
    for (size_t i = 0; i < q->nfilters; i++) {
        struct column c;
        if (!column_of(def, q->filters[i].field, &c))
            return fail(e, ERR_INVAL, "no field %.64s", q->filters[i].field);
    }
    /* $1 org, $2 now, $3 limit */
    if (param(p, org) == 0 || param_own(p, fmt_i64(q->now)) == 0 ||
        param_own(p, fmt_i64((int64_t)(max > LIST_CAP ? LIST_CAP : max))) == 0)
        return nomem(e);
    rc = buf_puts(b, "SELECT to_jsonb(_r)::text");
    if (rc == 0)
        rc = from_live(b, schema, resource, 2);
    for (size_t i = 0; rc == 0 && i < q->nfilters; i++)
        rc = filter_sql(b, p, def, &q->filters[i]);
    if (rc == 0 && q->has_after)
        rc = keyset_sql(b, p, &oc, q, schema, resource);
    if (rc == 0 && oc.type == COL_ID)
        rc = buf_printf(b, " ORDER BY id %s", q->desc ? "DESC" : "ASC");
    else if (rc == 0)
        rc = buf_printf(b, " ORDER BY %s %s, id %s", oc.sql, q->desc ? "DESC" : "ASC", q->desc ? "DESC" : "ASC");
    if (rc == 0)
        rc = buf_puts(b, " LIMIT $3::bigint");
    if (rc == ERR_INVAL)
        return fail(e, rc, "a filter or cursor value does not fit its column");
    return rc != 0 ? nomem(e) : 0;
}

int pgrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_query *q, struct eng_record *out,
                      size_t max, size_t *n)
{
    struct eng_resource *def = NULL;
    char schema[ENG_SLUG];
    struct params p = {0};
    struct buf b;
    PGresult *r = NULL;
    int rc;

    buf_init(&b, SQL_MAX);
    if (n == NULL || q == NULL || (out == NULL && max > 0) || q->nfilters > ENG_MAX_FILTERS)
        return fail(e, ERR_INVAL, "bad list arguments");
    *n = 0;
    if ((def = malloc(sizeof *def)) == NULL) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = res_load(e, s, service, resource, false, def, schema)) != 0)
        goto out;
    if ((rc = list_sql(e, &b, &p, s->org_id, schema, resource, def, q, max)) != 0)
        goto out;
    if (max == 0)
        goto out;
    if ((rc = run(e, s, (const char *[]){b.p}, &p, 1, &r)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        if ((rc = row_record(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), def, &out[*n])) != 0) {
            for (size_t j = 0; j < *n; j++)
                eng_record_cleanup(&out[j]);
            *n = 0;
            rc = fail(e, rc, "record unreadable");
            break;
        }
        (*n)++;
    }
out:
    PQclear(r);
    params_cleanup(&p);
    buf_cleanup(&b);
    free(def);
    return rc;
}

/* ---- outbox ------------------------------------------------------------------------------ */

int pgrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                      uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n)
{
    const char *vals[2] = {service, engine_mode_name(s != NULL ? s->mode : 0)};
    const struct pg_stmt st = {"SELECT core.svc_schema_name($1, $2) WHERE EXISTS "
                               "(SELECT 1 FROM core.resources WHERE service = $1 AND mode = $2)",
                               2, vals, true};
    struct params p = {0};
    struct buf b;
    PGresult *r = NULL, *rows = NULL;
    int rc;

    buf_init(&b, SQL_MAX);
    if (n == NULL || (out == NULL && max > 0))
        return fail(e, ERR_INVAL, "bad list arguments");
    *n = 0;
    if (!scope_ok(s) || !service_ok(service))
        return fail(e, ERR_INVAL, "bad service name");
    if ((rc = engine_pg_data(e, s, DATA_PATH, &st, 1, &r)) != 0 || PQntuples(r) == 0 || max == 0)
        goto out;               /* no resource yet: no outbox yet */
    if (param(&p, s->org_id) == 0 ||
        param_own(&p, fmt_i64(after_seq > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)after_seq)) == 0 ||
        param_own(&p, fmt_i64((int64_t)(max > LIST_CAP ? LIST_CAP : max))) == 0 ||
        buf_puts(&b, "SELECT seq, org_id, resource, record_id, op, version, created_at FROM ") != 0 ||
        qtable(&b, PQgetvalue(r, 0, 0), "_outbox") != 0 ||
        buf_puts(&b, " WHERE org_id = $1::uuid AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint") != 0) {
        rc = nomem(e);
        goto out;
    }
    if ((rc = run(e, s, (const char *[]){b.p}, &p, 1, &rows)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(rows) && *n < max; i++) {
        struct eng_outbox *o = &out[(*n)++];
        memset(o, 0, sizeof *o);
        o->seq = strtoull(PQgetvalue(rows, i, 0), NULL, 10);
        snprintf(o->org_id, sizeof o->org_id, "%s", PQgetvalue(rows, i, 1));
        snprintf(o->service, sizeof o->service, "%s", service);
        snprintf(o->resource, sizeof o->resource, "%s", PQgetvalue(rows, i, 2));
        snprintf(o->record_id, sizeof o->record_id, "%s", PQgetvalue(rows, i, 3));
        snprintf(o->op, sizeof o->op, "%s", PQgetvalue(rows, i, 4));
        o->version = strtoll(PQgetvalue(rows, i, 5), NULL, 10);
        o->created_at = strtoll(PQgetvalue(rows, i, 6), NULL, 10);
    }
out:
    PQclear(r);
    PQclear(rows);
    params_cleanup(&p);
    buf_cleanup(&b);
    return rc;
}
