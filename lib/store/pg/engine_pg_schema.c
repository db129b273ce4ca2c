/* engine_pg_schema: resources on PostgreSQL, their definitions read from
 * core.resources and changed through core.svc_resource_put (the DDL runs in
 * the database, as its owner). Part of the records code: engine_pg_records.c
 * opens with the design, store/pg/pgrec.h has what the three files share. */
#include "store/pg/engine_pg_int.h"
#include "store/pg/pgrec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "store/vector.h"


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
    if (f->type == ENG_FT_VECTOR)
        f->metric = vec_metric_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "metric")));
    if (f->metric < 0)
        f->metric = 0;          /* stored before metrics existed: cosine */
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

/* The unlocked read of (service, name)'s definition in s's mode, as a
 * statement over vals (kept by the caller): for a pipeline of its own. */
void pgrec_res_stmt(const struct eng_scope *s, const char *service, const char *name, const char *vals[3],
                    struct pg_stmt *st)
{
    vals[0] = service;
    vals[1] = engine_mode_name(s != NULL ? s->mode : 0);
    vals[2] = name;
    *st = (struct pg_stmt){"SELECT " RES_COLS " FROM core.resources WHERE service = $1 AND mode = $2 AND name = $3",
                           3, vals, true, false};
}

int pgrec_res_result(struct engine *e, const struct eng_scope *s, const PGresult *r, const char *service,
                     const char *name, struct eng_resource *out, char schema[ENG_SLUG])
{
    int rc;

    if (PQntuples(r) == 0)
        return engine_fail(e, ERR_NOTFOUND, "no such resource");
    if ((rc = res_row(r, 0, service, out, schema)) != 0)
        return engine_fail(e, rc, "resource %.64s: unreadable definition", name);
    if (schema != NULL && s != NULL)
        engine_pg_schema_learn(e, s->mode, service, schema);
    return 0;
}

/* Whether store defines (service, name) in s's mode: 1, 0, or an error. */
static int defined_in(struct engine *e, const struct eng_scope *s, int store, const char *service, const char *name)
{
    const char *vals[3];
    struct pg_stmt st;
    PGresult *r = NULL;
    int rc;

    pgrec_res_stmt(s, service, name, vals, &st);
    if ((rc = engine_pg_data_at(e, s, store, DATA_PATH, &st, 1, false, &r)) == 0)
        rc = PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

/* A service placed in a database of its own ([svc.<name>]) whose resource
 * its database lacks but the shared one still defines: its records were made
 * there before the placement and are unseen from here. That is said
 * (ERR_UNAVAILABLE), never taken for a resource that does not exist, on
 * which a schema change would start afresh and new records would land apart
 * from the old (OPERATIONS.md, placement). 0 when not so; costs round trips
 * on a placed service's not-found and schema-change paths only. */
static int left_behind(struct engine *e, const struct eng_scope *s, const char *service, const char *name)
{
    int home = engine_pg_home(e, s->mode, service), rc;

    if (home == s->mode)
        return 0;
    if ((rc = defined_in(e, s, home, service, name)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = defined_in(e, s, s->mode, service, name)) <= 0)
        return rc;
    return engine_fail(e, ERR_UNAVAILABLE,
                       "%.32s.%.32s is placed in a database of its own but still defined in the shared one, "
                       "with the records made before", service, name);
}

/* After ERR_NOTFOUND in the store of (s, service): left_behind's answer, or
 * that ERR_NOTFOUND again. */
static int not_found(struct engine *e, const struct eng_scope *s, const char *service, const char *name)
{
    char why[sizeof e->errstr];
    int store, rc;

    snprintf(why, sizeof why, "%s", e->errstr);
    if (engine_pg_route(e, s, service, &store) == 0 && store == engine_pg_home(e, s->mode, service) &&
        (rc = left_behind(e, s, service, name)) != 0)
        return rc;
    return engine_fail(e, ERR_NOTFOUND, "%s", why);
}

/* The definition of (service, resource) in s's mode and its data schema;
 * with lock, FOR KEY SHARE on its row until the unit of work ends (see the
 * header comment). ERR_NOTFOUND when it has none. */
int pgrec_res_load(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                   bool lock, struct eng_resource *out, char schema[ENG_SLUG])
{
    const char *vals[3];
    struct pg_stmt st;
    PGresult *r = NULL;
    int rc;

    pgrec_res_stmt(s, service, name, vals, &st);
    if (lock)
        st.sql = "SELECT " RES_COLS " FROM core.resources WHERE service = $1 AND mode = $2 AND name = $3 "
                 "FOR KEY SHARE";
    /* unlocked, it is a read: outside a write, no BEGIN and no COMMIT for it */
    if ((rc = (lock ? engine_pg_data : engine_pg_data_read)(e, s, service, DATA_PATH, &st, 1, &r)) != 0)
        return rc;
    rc = pgrec_res_result(e, s, r, service, name, out, schema);
    PQclear(r);
    return rc == ERR_NOTFOUND ? not_found(e, s, service, name) : rc;
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
    char schema[ENG_SLUG];
    int rc;

    if ((rc = pgrec_res_load(e, s, service, name, true, out, schema)) != 0)
        return rc;
    /* kept and held: a record write of it in this unit needs no read of its own */
    engine_pg_def_learn(e, s, out);
    engine_pg_held_set(e, s, service, name, out->version);
    return 0;
}

/* No round trip of its own: the guard goes with the unit's first write on
 * the data pool, at the latest its commit (engine_pg_data_defer). Its
 * statement names no field: a write built from def follows it, so a record
 * write needs the data schema's name kept (pgrec_call_open reads the
 * definition when it is not). */
int pgrec_resource_hold(struct engine *e, const struct eng_scope *s, const struct eng_resource *def)
{
    char ver[24];
    const char *vals[4] = {def->service, engine_mode_name(s->mode), def->name, ver};
    const struct pg_stmt guard = {"SELECT core.svc_resource_guard($1, $2, $3, $4::integer)", 4, vals, true, false};
    int rc;

    snprintf(ver, sizeof ver, "%" PRId64, def->version);
    if ((rc = engine_pg_data_defer(e, s, def->service, DATA_PATH, &guard, 1)) != 0)
        return rc;
    engine_pg_def_learn(e, s, def);
    engine_pg_held_set(e, s, def->service, def->name, def->version);
    return 0;
}

int pgrec_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                        struct eng_resource *out, size_t max, size_t *n)
{
    char lim[24];
    const char *vals[3] = {service, engine_mode_name(s != NULL ? s->mode : 0), lim};
    const struct pg_stmt st = {"SELECT " RES_COLS " FROM core.resources WHERE service = $1 AND mode = $2 "
                               "ORDER BY name COLLATE \"C\" LIMIT $3",
                               3, vals, true, false};
    PGresult *r = NULL;
    int rc;

    *n = 0;
    if (max == 0)
        return 0;
    snprintf(lim, sizeof lim, "%zu", max > LIST_CAP ? (size_t)LIST_CAP : max);
    /* A read no write depends on: no transaction of its own (lib/store/pg/pg.h). */
    if ((rc = engine_pg_data_read(e, s, service, DATA_PATH, &st, 1, &r)) != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max && rc == 0; i++)
        if ((rc = res_row(r, i, service, &out[*n], NULL)) == 0)
            (*n)++;
    PQclear(r);
    return rc != 0 ? engine_fail(e, rc, "unreadable resource definition") : 0;
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
        if (f->type == ENG_FT_VECTOR)
            cJSON_AddStringToObject(fo, "metric", vec_metric_name(f->metric));
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
        rc = engine_fail(e, ERR_INTERNAL, "svc_resource_put: unexpected answer");
    else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"))) {
        snprintf(why->field, sizeof why->field, "%s", cJSON_IsString(f) ? f->valuestring : "");
        snprintf(why->record_id, sizeof why->record_id, "%s", cJSON_IsString(rid) ? rid->valuestring : "");
        why->count = cJSON_IsNumber(count) && count->valuedouble >= 1 ? (int64_t)count->valuedouble : 1;
        snprintf(why->reason, sizeof why->reason, "%s", cJSON_IsString(reason) ? reason->valuestring : "");
        rc = engine_fail(e, ERR_CONFLICT, "field %s: %s", why->field, why->reason);
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
        *rc = engine_fail(e, ERR_INVAL, "malformed audit entry");
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
        *rc = engine_fail(e, ERR_NOMEM, "out of memory");
    return text;
}

/* The scope org's row when it is a platform org (id, name, slug, plan,
 * created_at into org[], pointing into row), else org[] all NULL: a
 * customer's change is refused by svc_resource_put itself. */
static int platform_row_into(struct engine *e, const struct eng_scope *s, const char *org[5], char row[5][ENG_NAME])
{
    const struct pg_stmt st = {"SELECT id, name, slug, plan, extract(epoch FROM created_at)::bigint "
                               "FROM core.organizations WHERE id = $1 AND is_platform",
                               1, (const char *[]){s->org_id}, true, false};
    PGresult *r = NULL;
    int rc = engine_pg_core(e, s, &st, 1, &r);

    if (rc == 0 && PQntuples(r) == 1)
        for (int i = 0; i < 5; i++) {
            snprintf(row[i], ENG_NAME, "%s", PQgetvalue(r, 0, i));
            org[i] = row[i];
        }
    PQclear(r);
    return rc;
}

int pgrec_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                       const struct eng_rename *ren, size_t nren, int64_t now,
                       const struct eng_audit *audit, struct eng_schema_conflict *why)
{
    struct eng_schema_conflict scratch;
    char *dj = NULL, *rj = NULL, *aj = NULL, at[24], orow[5][ENG_NAME];
    const char *org[5] = {NULL, NULL, NULL, NULL, NULL};
    int stores[PGE_FANOUT_MAX];
    size_t nstores = 0;
    PGresult *r = NULL;
    int rc;

    for (int i = 0; i < 5; i++)
        orow[i][0] = '\0';

    if (why == NULL)
        why = &scratch;
    memset(why, 0, sizeof *why);
    if (!eng_resource_valid(def) || nren > ENG_MAX_FIELDS)
        return engine_fail(e, ERR_INVAL, "malformed resource definition");
    for (size_t i = 0; i < nren; i++)
        if (!eng_name_valid(ren[i].from, ENG_FIELD) || eng_resource_field(def, ren[i].to) == NULL)
            return engine_fail(e, ERR_INVAL, "rename of %.64s names no new field", ren[i].from);
    snprintf(at, sizeof at, "%" PRId64, now);
    if ((aj = audit_json(e, s, audit, &rc)) == NULL && rc != 0)
        goto out;
    if ((dj = def_json(def)) == NULL || (rj = renames_json(ren, nren)) == NULL) {
        rc = engine_fail(e, ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = left_behind(e, s, def->service, def->name)) != 0 || (rc = platform_row_into(e, s, org, orow)) != 0 || (rc = engine_pg_fanout(e, s, def->service, stores, &nstores)) != 0)
        goto out;
    /* every store holding the service's data, its home first: a refusal in
     * any of them refuses the change (the caller rolls the unit back, all
     * stores with it); the audit entry is relayed from the home only */
    for (size_t i = 0; i < nstores; i++) {
        const char *vals[6] = {def->service, engine_mode_name(s->mode), dj, rj, at, i == 0 ? aj : NULL};
        const char *ivals[3] = {def->service, engine_mode_name(s->mode), def->name};
        /* the platform org's row where this store's core.organizations lacks
         * it: svc_resource_put asks that database who may change schemas */
        const struct pg_stmt mirror = {
            "INSERT INTO core.organizations (id, name, slug, plan, is_platform, created_at) "
            "SELECT $1::uuid, $2, $3, $4, true, to_timestamp($5::bigint) WHERE $1 IS NOT NULL ON CONFLICT DO NOTHING",
            5, org, true, false};
        /* the HNSW indexes (0009) around the change: those the new definition
         * does not keep dropped before it (an ALTER never meets an index on a
         * column's old type), the ones it asks for built after it */
        const struct pg_stmt st[4] = {
            mirror,
            {"SELECT core.svc_vector_indexes($1, $2, $3::jsonb->>'name', $3::jsonb->'fields')", 3, vals, true, false},
            {"SELECT core.svc_resource_put($1, $2, $3::jsonb, $4::jsonb, $5::bigint, $6::jsonb)::text", 6, vals,
             true, false},
            {"SELECT core.svc_vector_indexes($1, $2, $3, NULL)", 3, ivals, true, false}};
        PGresult *res[4] = {NULL, NULL, NULL, NULL};
        rc = engine_pg_data_at(e, s, stores[i], DATA_PATH, st, 4, true, res);
        PQclear(res[0]);
        PQclear(res[1]);
        PQclear(res[3]);
        PQclear(r);
        r = res[2];
        if (rc == ERR_CONFLICT) {
            /* a deadlock or serialization failure: two changes of one resource met */
            snprintf(why->field, sizeof why->field, "*");
            snprintf(why->reason, sizeof why->reason, "another change of this resource ran at the same time; retry");
        }
        if (rc != 0)
            goto out;
        rc = PQntuples(r) == 1 ? put_answer(e, PQgetvalue(r, 0, 0), why)
                               : engine_fail(e, ERR_INTERNAL, "svc_resource_put: no answer");
        if (rc != 0)
            goto out;
    }
    if (audit != NULL)
        rc = engine_pg_relayed(e, s, def->service, audit);
out:
    PQclear(r);
    cJSON_free(dj);
    cJSON_free(rj);
    cJSON_free(aj);
    return rc;
}
