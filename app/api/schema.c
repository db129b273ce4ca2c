/* The MicroService API's schemas (DESIGN §5, issue 6): GET /v1/svc/{s}/schema
 * and PUT /v1/svc/{s}/schema/{resource}. A service is an app of kind
 * microservice that is active; anything else is a 404 like a missing route.
 * Schemas are per (service, mode) and shared by every org that uses the
 * service, so they are the platform's (DESIGN §8): only a platform admin (or
 * an API key a platform admin made with "platform": true) may PUT one, from
 * the platform's org (the engine refuses any other org, the database's DDL
 * function too). Every authenticated caller may read them. The body is
 * validated here to the last field (422 with details), and the engine casts
 * the records (409 naming the field and how many records fail, nothing
 * changed). Every change is audited in the platform org's trail, committed
 * with the change or not at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/text.h"
#include "store/vector.h"

#define RESOURCES_MAX 64
#define VIEWS_MAX 16
#define EXPIRE_MAX (10LL * 366 * 86400)

/* Resource, field and view names, and the service of a request: identifiers
 * that are not reserved (core/text.h has the rule and the one list). */
bool svc_name_ok(const char *s)
{
    return text_ident_valid(s, TEXT_NAME_MAX) && !text_reserved(s);
}

int svc_check(struct worker *w, struct http_request *r, const char *service)
{
    return svc_open(w, r, NULL, service, NULL, false, NULL);
}

/* The app named service from the worker's copy while the registry's version
 * holds, else from storage. */
static int app_of(struct worker *w, const struct caching_ns *ns, int64_t ver, const char *service,
                  struct eng_app *a, bool *found)
{
    int rc;

    if (caching_memo_get(w, ns, ver, service, a, sizeof *a, found) == 0)
        return 0;
    rc = engine_app_get(w->engine, service, a);
    if (rc != 0 && rc != ERR_NOTFOUND)
        return rc;
    *found = rc == 0;
    caching_memo_put(w, ns, ver, service, a, sizeof *a, *found);
    return 0;
}

int svc_open(struct worker *w, struct http_request *r, const struct principal *p, const char *service,
             const char *name, bool fresh, struct eng_resource *res)
{
    struct caching_ns apps, schema;
    struct caching_read rd[2] = {{.ns = &apps}, {.ns = &schema}};
    struct eng_app a;
    bool found = false;
    int rc;

    if (!svc_name_ok(service) || caching_ns_apps(&apps) != 0 ||
        caching_ns_schema(&schema, p != NULL ? p->scope.mode : ENG_MODE_TEST, service) != 0) {
        respond_error(r, ERR_NOTFOUND, "no such service");
        return ERR_NOTFOUND;
    }
    /* one round trip for both versions; a kv that fails leaves them -1: storage */
    if (caching_fetch(w, rd, name != NULL ? 2 : 1, NULL, 0, NULL, NULL) != 0)
        rd[0].ver = rd[1].ver = -1;
    if ((rc = app_of(w, &apps, rd[0].ver, service, &a, &found)) != 0)
        return rc;
    if (!found || strcmp(a.kind, "microservice") != 0 || strcmp(a.status, "active") != 0) {
        respond_error(r, ERR_NOTFOUND, "no such service");
        return ERR_NOTFOUND;
    }
    if (name == NULL)
        return 0;
    if (!svc_name_ok(name)) {
        respond_error(r, ERR_NOTFOUND, "no such resource");
        return ERR_NOTFOUND;
    }
    /* A write's definition as this worker last read it, when the schema's
     * version says it is still current, is held rather than read: the engine
     * checks it with the write (engine.h resource_hold), and a change since
     * (one whose bump has not reached the kv yet) fails that write, which
     * runs again from here and reads it afresh (the memo is dropped then). */
    if (caching_memo_get(w, &schema, rd[1].ver, name, res, sizeof *res, &found) == 0) {
        if (fresh && found && (rc = engine_resource_hold(w->engine, &p->scope, res)) != 0)
            return rc;
    } else {
        rc = engine_resource_get(w->engine, &p->scope, service, name, res);
        if (rc != 0 && rc != ERR_NOTFOUND)
            return rc;
        found = rc == 0;
        caching_memo_put(w, &schema, rd[1].ver, name, res, sizeof *res, found);
    }
    if (!found) {
        respond_error(r, ERR_NOTFOUND, "no such resource");
        return ERR_NOTFOUND;
    }
    return 0;
}

cJSON *svc_resource_json(const struct eng_resource *res)
{
    cJSON *o = cJSON_CreateObject(), *fields, *opts;
    char tn[24];

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "name", res->name);
    cJSON_AddNumberToObject(o, "version", (double)res->version);
    json_add_time(o, "updated_at", res->updated_at);
    fields = cJSON_AddObjectToObject(o, "fields");
    opts = cJSON_AddObjectToObject(o, "options");
    if (fields == NULL || opts == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    for (int i = 0; i < res->nfields; i++) {
        const struct eng_field *f = &res->fields[i];
        cJSON *fo = cJSON_AddObjectToObject(fields, f->name);
        if (fo == NULL)
            continue;
        cJSON_AddStringToObject(fo, "type", eng_ftype_name(f->type, f->dim, tn));
        cJSON_AddBoolToObject(fo, "required", f->required);
        cJSON_AddBoolToObject(fo, "pii", f->pii);
        cJSON_AddBoolToObject(fo, "index", f->index);
        if (f->type == ENG_FT_VECTOR)
            cJSON_AddStringToObject(fo, "metric", vec_metric_name(f->metric));
        if (f->def[0] != '\0')
            cJSON_AddItemToObject(fo, "default", cJSON_Parse(f->def));
    }
    cJSON_AddNumberToObject(opts, "expire_after", (double)res->expire_after);
    if (res->views[0] != '\0')
        cJSON_AddItemToObject(opts, "views", cJSON_Parse(res->views));
    else
        cJSON_AddObjectToObject(opts, "views");
    return o;
}

HANDLER(handle_schema_get)
{
    const char *service = router_param(&r->match, "service");
    /* about 70 KB each: from the heap and given back now, not held by the arena */
    struct eng_resource *res;
    cJSON *root = http_own(r, cJSON_CreateObject()), *list;
    size_t n = 0;
    int rc;

    if (root == NULL)
        return ERR_NOMEM;
    if (svc_check(w, r, service) != 0)
        return 0;
    if ((res = malloc(sizeof *res * RESOURCES_MAX)) == NULL)
        return ERR_NOMEM;
    rc = engine_resource_list(w->engine, &p->scope, service, res, RESOURCES_MAX, &n);
    cJSON_AddStringToObject(root, "service", service);
    cJSON_AddStringToObject(root, "mode", engine_mode_name(p->scope.mode));
    if (rc == 0 && (list = cJSON_AddObjectToObject(root, "resources")) == NULL)
        rc = ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        cJSON_AddItemToObject(list, res[i].name, svc_resource_json(&res[i]));
    free(res);
    return rc != 0 ? rc : respond_owned(r, 200, root);
}

/* Adds "reason" under key to details (a 422's) and returns false. */
static bool bad(cJSON *details, const char *key, const char *reason)
{
    if (cJSON_GetObjectItemCaseSensitive(details, key) == NULL)
        cJSON_AddStringToObject(details, key, reason);
    return false;
}

static bool parse_field(const char *name, const cJSON *spec, struct eng_field *f, cJSON *details)
{
    static const char *const allowed[] = {"type", "required", "pii", "index", "default", "metric", NULL};
    const char *unknown = NULL, *why = "";
    char key[96];
    const cJSON *v;

    snprintf(key, sizeof key, "fields.%.63s", name);
    memset(f, 0, sizeof *f);
    if (!svc_name_ok(name))
        return bad(details, key, "field names match ^[a-z][a-z0-9_]{0,62}$ and are not reserved");
    snprintf(f->name, sizeof f->name, "%s", name);
    if (!cJSON_IsObject(spec) || !json_only_keys(spec, allowed, &unknown))
        return bad(details, key, "must be an object of type, required, pii, index, default, metric");
    if (eng_ftype_parse(json_get_str(spec, "type"), &f->type, &f->dim) != 0)
        return bad(details, key,
                   "type must be string, text, integer, number, boolean, timestamp, json or vector(N), N 1..4096");
    const char *const flags[] = {"required", "pii", "index"};
    bool *const dst[] = {&f->required, &f->pii, &f->index};
    for (int i = 0; i < 3; i++) {
        v = cJSON_GetObjectItemCaseSensitive(spec, flags[i]);
        if (v != NULL && !cJSON_IsBool(v))
            return bad(details, key, "required, pii and index are booleans");
        *dst[i] = cJSON_IsTrue(v);
    }
    if (f->pii && f->type != ENG_FT_STRING && f->type != ENG_FT_TEXT)
        return bad(details, key, "only string and text fields can be pii");
    /* a vector's metric: its index's (pgvector) and its searches' default */
    v = cJSON_GetObjectItemCaseSensitive(spec, "metric");
    if (v != NULL && f->type != ENG_FT_VECTOR)
        return bad(details, key, "only a vector field has a metric");
    if (f->type == ENG_FT_VECTOR && (f->metric = v == NULL ? ENG_METRIC_COSINE : vec_metric_parse(cJSON_GetStringValue(v))) < 0)
        return bad(details, key, "metric must be cosine, l2 or inner");
    v = cJSON_GetObjectItemCaseSensitive(spec, "default");
    if (v != NULL && !cJSON_IsNull(v)) {
        char *text;
        if (f->pii)
            return bad(details, key, "a pii field has no default");
        if (eng_value_check(f, v, &why) != 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "default %s", why);
            return bad(details, key, msg);
        }
        if ((text = json_print(v)) == NULL || strlen(text) >= sizeof f->def) {
            cJSON_free(text);
            return bad(details, key, "default longer than 255 bytes of JSON");
        }
        memcpy(f->def, text, strlen(text) + 1);
        cJSON_free(text);
    }
    return true;
}

/* options.views: {name: {"group_by": [fields], "count": bool, "sum": [numeric fields]}}. */
static bool parse_views(const cJSON *views, struct eng_resource *res, cJSON *details)
{
    static const char *const allowed[] = {"group_by", "count", "sum", NULL};
    const cJSON *view, *x;
    char *text;
    int nviews = 0;

    if (views == NULL || cJSON_IsNull(views))
        return true;
    if (!cJSON_IsObject(views))
        return bad(details, "options.views", "must be an object of view definitions");
    cJSON_ArrayForEach(view, views) {
        const cJSON *gb = cJSON_GetObjectItemCaseSensitive(view, "group_by");
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(view, "sum");
        const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(view, "count");

        if (++nviews > VIEWS_MAX || !svc_name_ok(view->string) || !cJSON_IsObject(view) ||
            !json_only_keys(view, allowed, NULL) || !cJSON_IsArray(gb) || cJSON_GetArraySize(gb) > 8 ||
            (cnt != NULL && !cJSON_IsBool(cnt)) || (sum != NULL && !cJSON_IsArray(sum)))
            return bad(details, "options.views",
                       "at most 16 views, each {\"group_by\": [fields], \"count\": bool, \"sum\": [numeric fields]}");
        cJSON_ArrayForEach(x, gb) {
            const struct eng_field *f = cJSON_IsString(x) ? eng_resource_field(res, x->valuestring) : NULL;
            if (f == NULL || f->pii)
                return bad(details, "options.views", "group_by names a field of the resource (not pii)");
        }
        cJSON_ArrayForEach(x, sum) {
            const struct eng_field *f = cJSON_IsString(x) ? eng_resource_field(res, x->valuestring) : NULL;
            if (f == NULL || (f->type != ENG_FT_INTEGER && f->type != ENG_FT_NUMBER))
                return bad(details, "options.views", "sum names integer or number fields");
        }
    }
    if ((text = cJSON_PrintUnformatted(views)) == NULL)
        return false;
    if (strlen(text) >= sizeof res->views) {
        cJSON_free(text);
        return bad(details, "options.views", "longer than 4095 bytes of JSON");
    }
    memcpy(res->views, text, strlen(text) + 1);
    cJSON_free(text);
    return true;
}

static bool parse_options(const cJSON *opts, struct eng_resource *res, cJSON *details)
{
    static const char *const allowed[] = {"expire_after", "views", NULL};
    int64_t ea = 0;
    int rc;

    if (opts == NULL || cJSON_IsNull(opts))
        return true;
    if (!cJSON_IsObject(opts) || !json_only_keys(opts, allowed, NULL))
        return bad(details, "options", "must be an object of expire_after and views");
    rc = json_get_int(opts, "expire_after", 0, EXPIRE_MAX, &ea);
    if (rc == ERR_INVAL && !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(opts, "expire_after")))
        return bad(details, "options.expire_after", "seconds, an integer from 0 (never) to 316224000");
    res->expire_after = ea;
    return parse_views(cJSON_GetObjectItemCaseSensitive(opts, "views"), res, details);
}

bool svc_schema_parse(const cJSON *body, const char *service, const char *resource, struct eng_resource *res,
                      struct eng_rename *ren, size_t *nren, cJSON *details)
{
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(body, "fields"), *renames, *x;

    *nren = 0;
    memset(res, 0, sizeof *res);
    if (!cJSON_IsObject(fields))
        return bad(details, "fields", "must be an object of field definitions");
    if (cJSON_GetArraySize(fields) > ENG_MAX_FIELDS)
        return bad(details, "fields", "at most 200 fields per resource");
    snprintf(res->service, sizeof res->service, "%s", service);
    snprintf(res->name, sizeof res->name, "%s", resource);
    cJSON_ArrayForEach(x, fields) {
        if (parse_field(x->string, x, &res->fields[res->nfields], details))
            res->nfields++;
    }
    if (cJSON_GetArraySize(details) == 0)
        parse_options(cJSON_GetObjectItemCaseSensitive(body, "options"), res, details);
    renames = cJSON_GetObjectItemCaseSensitive(body, "rename");
    if (renames != NULL && !cJSON_IsNull(renames)) {
        if (!cJSON_IsObject(renames) || cJSON_GetArraySize(renames) > ENG_MAX_FIELDS)
            bad(details, "rename", "must be an object {old_name: new_name}");
        else
            cJSON_ArrayForEach(x, renames) {
                const struct eng_field *to = cJSON_IsString(x) ? eng_resource_field(res, x->valuestring) : NULL;
                if (!svc_name_ok(x->string) || to == NULL) {
                    bad(details, "rename", "each old name maps to a field of the new definition");
                    break;
                }
                snprintf(ren[*nren].from, sizeof ren[*nren].from, "%s", x->string);
                snprintf(ren[*nren].to, sizeof ren[*nren].to, "%s", to->name);
                (*nren)++;
            }
    }
    return cJSON_GetArraySize(details) == 0;
}

HANDLER(handle_schema_put)
{
    static const char *const allowed[] = {"fields", "options", "rename", NULL};
    const char *service = router_param(&r->match, "service");
    const char *resource = router_param(&r->match, "resource");
    struct eng_resource *res = arena_alloc(r->arena, sizeof *res);
    struct eng_rename ren[ENG_MAX_FIELDS];
    struct eng_schema_conflict why;
    struct eng_audit entry;
    const char *unknown = NULL;
    char object[160];
    cJSON *details = http_own(r, cJSON_CreateObject()), *meta;
    size_t nren = 0;
    int rc;

    if (res == NULL || details == NULL)
        return ERR_NOMEM;
    if ((rc = svc_check(w, r, service)) != 0)
        return 0;
    snprintf(object, sizeof object, "%s/%s", service, resource);
    if (!p->platform_admin)
        return respond_error(r, ERR_FORBIDDEN, "only platform admins change resource schemas");
    if (!svc_name_ok(resource))
        return respond_error(r, ERR_INVAL,
                            "resource names match ^[a-z][a-z0-9_]{0,62}$ and are not reserved");
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "the body must be a JSON object");
    if (!json_only_keys(r->json, allowed, &unknown))
        return respond_error(r, ERR_INVAL, "the body holds only fields, options and rename");
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r->json, "fields")))
        return respond_error(r, ERR_INVAL, "fields must be an object of field definitions");
    svc_schema_parse(r->json, service, resource, res, ren, &nren, details);
    if (nren > 0 && cJSON_GetArraySize(details) == 0) {
        /* a rename must name a field the resource has now */
        struct eng_resource *cur = malloc(sizeof *cur);
        if (cur == NULL)
            return ERR_NOMEM;
        rc = engine_resource_get(w->engine, &p->scope, service, resource, cur);
        for (size_t i = 0; i < nren; i++)
            if (rc != 0 || eng_resource_field(cur, ren[i].from) == NULL) {
                bad(details, "rename", "each old name must be a field of the current definition");
                break;
            }
        free(cur);
        if (rc != 0 && rc != ERR_NOTFOUND)
            return rc;
    }
    if (cJSON_GetArraySize(details) > 0)
        return respond_invalid(r, cJSON_Duplicate(details, true));
    /* the audit entry goes in with the change: the engine commits both or neither */
    if ((meta = cJSON_CreateObject()) == NULL)
        return ERR_NOMEM;
    cJSON_AddNumberToObject(meta, "fields", res->nfields);
    cJSON_AddStringToObject(meta, "mode", engine_mode_name(p->scope.mode));
    rc = audit_entry(&p->scope, p->user_id[0] ? p->user_id : p->key_id, "schema.put", object, meta, &entry);
    cJSON_Delete(meta);
    if (rc != 0)
        return rc;
    rc = engine_resource_put(w->engine, &p->scope, res, ren, nren, entry.created_at, &entry, &why);
    if (rc == ERR_CONFLICT) {
        /* the records may be any org's: the field, a count and a sample of
         * the caller's own org's, never a value or another org's id */
        const char *msg = arena_printf(r->arena, "field %s: %s (%lld record%s%s%s); nothing was changed", why.field,
                                     why.reason, (long long)why.count, why.count == 1 ? "" : "s",
                                     why.record_id[0] ? ", e.g. " : "", why.record_id);
        return respond_error(r, ERR_CONFLICT, msg != NULL ? msg : "the change does not fit the records");
    }
    if (rc == ERR_FORBIDDEN)
        return respond_error(r, ERR_FORBIDDEN, "resource schemas are changed from the platform's organization");
    if (rc != 0)
        return rc;
    struct caching_ns ns;
    if (caching_ns_schema(&ns, p->scope.mode, service) == 0)
        caching_touch(w, &ns);
    if ((rc = engine_resource_get(w->engine, &p->scope, service, resource, res)) != 0)
        return rc;
    cJSON *out = http_own(r, svc_resource_json(res));
    return out == NULL ? ERR_NOMEM : respond_owned(r, 200, out);
}
