/* engine_pg_place: placing an org's service data in a database of its own
 * (issue 18 §7, `tessera org place`). The placement is a row of
 * core.org_placement in the core database (sql/0012_placement.sql); workers
 * learn it with the org (pg_org_get), which the principal cache carries, so
 * a request's data calls find their store without a round trip
 * (engine_pg_route).
 *
 * Nothing is moved: a placement changes only while the org has no records in
 * any data database this engine knows (org_records counts them as the org,
 * under RLS), so no row is ever left where its org no longer looks. The
 * caller (app/placement.c) runs the change in two steps around that count,
 * "moving" first, in which every data call of the org is refused, so a
 * request that raced the first count cannot write into the old database
 * unseen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/engine_pg_int.h"
#include "store/pg/pgrec.h"

int pgp_org_records(struct engine *e, const struct eng_scope *s, int64_t *n, char where[80])
{
    struct pge *g = e->impl;
    int rc;

    *n = 0;
    where[0] = '\0';
    for (int i = 0; i < g->nst; i++) {
        const struct pg_stmt st = {"SELECT core.org_records($1)", 1,
                                   (const char *[]){engine_mode_name(g->st[i].mode)}, true, false};
        PGresult *r = NULL;
        int64_t here;
        if ((rc = engine_pg_data_at(e, s, i, DATA_PATH, &st, 1, false, &r)) != 0)
            return rc;
        here = i64(r, 0, 0);
        PQclear(r);
        if (here > 0 && where[0] == '\0')
            snprintf(where, 80, "%s", g->st[i].label);
        *n += here;
    }
    return 0;
}

int pgp_org_place(struct engine *e, const struct eng_scope *s, const char *database, bool moving)
{
    struct pge *g = e->impl;
    bool known = strcmp(database, "shared") == 0;

    for (int i = 0; i < g->ndb && !known; i++)
        known = strcmp(g->db[i].name, database) == 0;
    if (!known)
        return engine_fail(e, ERR_NOTFOUND, "no [database.%.31s] in this configuration", database);
    return q_must(e, s, true,
                  "INSERT INTO core.org_placement AS p (org_id, database, moving, updated_at) "
                  "VALUES ($1, $2, $3, now()) ON CONFLICT (org_id) DO UPDATE "
                  "SET database = EXCLUDED.database, moving = EXCLUDED.moving, updated_at = now() RETURNING 1",
                  3, (const char *[]){s->org_id, database, moving ? "t" : "f"}, ERR_NOTFOUND, "no such org");
}

/* The definitions store from holds of services whose home it is, as
 * svc_resource_put takes them: rows of (service, definition text). */
static int home_defs(struct engine *e, const struct eng_scope *s, int from, PGresult **r)
{
    const struct pg_stmt st = {
        "SELECT service, jsonb_build_object('name', name, 'fields', fields, 'expire_after', expire_after, "
        "'views', options->'views')::text, name FROM core.resources WHERE mode = $1 ORDER BY service, name",
        1, (const char *[]){engine_mode_name(s->mode)}, true, false};

    return engine_pg_data_at(e, s, from, DATA_PATH, &st, 1, false, r);
}

/* Makes one definition in store `to` when it has none of that name. */
static int sync_one(struct engine *e, const struct eng_scope *s, int to, const char *org[5], const char *service,
                    const char *def, const char *name, int *made)
{
    const char *mode = engine_mode_name(s->mode);
    const char *vals[3] = {service, mode, name};
    const struct pg_stmt has = {"SELECT 1 FROM core.resources WHERE service = $1 AND mode = $2 AND name = $3", 3,
                                vals, true, false};
    PGresult *r = NULL, *res[3] = {NULL, NULL, NULL};
    int rc;

    if ((rc = engine_pg_data_at(e, s, to, DATA_PATH, &has, 1, true, &r)) != 0)
        return rc;
    bool present = PQntuples(r) > 0;
    PQclear(r);
    if (present)
        return 0;
    const char *pv[4] = {service, mode, def, "0"};
    const struct pg_stmt st[3] = {
        {"INSERT INTO core.organizations (id, name, slug, plan, is_platform, created_at) "
         "SELECT $1::uuid, $2, $3, $4, true, to_timestamp($5::bigint) ON CONFLICT DO NOTHING",
         5, org, true, false},
        {"SELECT core.svc_resource_put($1, $2, $3::jsonb, '[]'::jsonb, extract(epoch FROM now())::bigint + $4::bigint, "
         "NULL)::text", 4, pv, true, false},
        {"SELECT core.svc_vector_indexes($1, $2, $3::jsonb->>'name', NULL)", 3, pv, true, false}};
    if ((rc = engine_pg_data_at(e, s, to, DATA_PATH, st, 3, true, res)) == 0) {
        const char *answer = PQntuples(res[1]) == 1 ? PQgetvalue(res[1], 0, 0) : "";
        if (strstr(answer, "\"ok\": true") == NULL && strstr(answer, "\"ok\":true") == NULL)
            rc = engine_fail(e, ERR_CONFLICT, "%.31s.%.64s: the definition could not be made there: %.60s",
                             service, name, answer);
        else
            (*made)++;
    }
    for (int i = 0; i < 3; i++)
        PQclear(res[i]);
    return rc;
}

int pgp_placement_sync(struct engine *e, const struct eng_scope *s, const char *database, int *made)
{
    struct pge *g = e->impl;
    const struct pge_place *dst = NULL;
    struct eng_org o;
    char created[24];
    int rc;

    *made = 0;
    for (int i = 0; i < g->ndb; i++)
        if (strcmp(g->db[i].name, database) == 0)
            dst = &g->db[i];
    if (dst == NULL)
        return engine_fail(e, ERR_NOTFOUND, "no [database.%.31s] in this configuration", database);
    if ((rc = pg_org_get(e, s, &o)) != 0)
        return rc;
    if (!o.platform)
        return engine_fail(e, ERR_FORBIDDEN, "definitions are made as the platform's organization");
    snprintf(created, sizeof created, "%lld", (long long)o.created_at);
    const char *org[5] = {o.id, o.name, o.slug, o.plan, created};
    int to = dst->store[s->mode];
    /* the homes: the shared store (services without a database of their
     * own) and each [svc.*] store (its own service only) */
    int from[1 + PGE_PLACES], nfrom = 0;
    from[nfrom++] = s->mode;
    for (int i = 0; i < g->nsvc; i++)
        from[nfrom++] = g->svc[i].store[s->mode];
    for (int k = 0; k < nfrom && rc == 0; k++) {
        PGresult *r = NULL;
        if (from[k] == to)
            continue;
        if ((rc = home_defs(e, s, from[k], &r)) != 0)
            break;
        for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
            const char *service = PQgetvalue(r, i, 0);
            if (engine_pg_home(e, s->mode, service) != from[k])
                continue; /* not this store's service: its home has it */
            rc = sync_one(e, s, to, org, service, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), made);
        }
        PQclear(r);
    }
    return rc;
}
