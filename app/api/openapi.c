/* GET /openapi.json: this deployment's OpenAPI 3.1 document (issue 16, DESIGN §5).
 *
 * Two sources, no hand-kept list of routes: the route table (routes.c) gives
 * every path, method, summary, body and response schema names and the
 * statuses each answers; app/api/openapi.json (compiled in) gives what does
 * not change, the info, the security scheme and the component schemas those
 * names point to. A caller who brings a token also gets, for the mode the
 * token acts in, every active microservice's resources as they are defined
 * now: a path for each, a record schema and an input schema generated from
 * the definition (types, required, pii, defaults, vector dimensions), the
 * list's filter and cursor parameters. Without a token: the fixed routes
 * only (schemas are members' knowledge, as GET …/schema is).
 *
 * Request bodies carry the examples of app/api/openapi.json's
 * components.examples named after their schema ("SignupRequest",
 * "SignupRequest.invite"), and path parameters its components.parameters
 * "Path<Name>" where there is one: one source, attached by name, so a route
 * added to the table gets them without a list kept by hand.
 *
 * Kept per worker (struct openapi_kept, app.h): printing ~50 KB of JSON
 * and, with a token, reading every resource definition costs more than the
 * versions that say whether any of it changed. The document of a mode
 * depends on the active microservices (the app registry's version) and their
 * resource definitions in that mode (each service's schema version, bumped
 * by PUT …/schema/… after its commit); both are read, in one kv round trip,
 * on every request, before anything is loaded: a change on any worker shows
 * in the next document on every worker, and a document built while a change
 * commits is kept under the older version, so it is built again next time.
 * Without a token the document is the route table's: kept for the worker's
 * life. A kv that fails, or [cache] apps or schema switched off: built per
 * request. /metrics counts tessera_openapi_{built,kept}_total. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "openapi_json.h"       /* openapi_json[], openapi_json_len: xxd -i of app/api/openapi.json */

#define SERVICES_MAX 64
#define RESOURCES_MAX 64

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No content";
    case 400: return "Malformed request (invalid_request, invalid_json)";
    case 401: return "No valid credentials (unauthorized, invalid_credentials, token_expired, token_revoked)";
    case 403: return "Not allowed to the caller's role (forbidden)";
    case 404: return "Not found (another org's object is not found too)";
    case 409: return "Conflict";
    case 410: return "No longer kept (gone)";
    case 412: return "The version changed (precondition_failed)";
    case 413: return "Body too large (payload_too_large)";
    case 415: return "Not JSON (unsupported_media_type)";
    case 422: return "Invalid fields (validation_failed, with details)";
    case 429: return "Too many requests (with Retry-After)";
    case 503: return "A dependency is down (unavailable)";
    default: return "Answer";
    }
}

static cJSON *ref(const char *name)
{
    cJSON *o = cJSON_CreateObject();
    char path[160];

    snprintf(path, sizeof path, "#/components/schemas/%s", name);
    cJSON_AddStringToObject(o, "$ref", path);
    return o;
}

static cJSON *json_content(cJSON *schema)
{
    cJSON *c = cJSON_CreateObject(), *mt = cJSON_AddObjectToObject(c, "application/json");

    cJSON_AddItemToObject(mt, "schema", schema);
    return c;
}

/* statuses: "200 404 …" besides the common ones the route's shape implies. */
static cJSON *responses(const char *statuses, const char *res, bool authed, bool body)
{
    cJSON *out = cJSON_CreateObject();
    char all[160];
    int seen[64], n = 0;

    snprintf(all, sizeof all, "%s%s%s 503", statuses != NULL ? statuses : "200", authed ? " 401" : "",
             body ? " 400 413 415" : "");
    for (char *save = NULL, *t = strtok_r(all, " ", &save); t != NULL && n < 64; t = strtok_r(NULL, " ", &save)) {
        int st = atoi(t), dup = 0;
        char key[8];
        cJSON *r;

        for (int i = 0; i < n; i++)
            dup |= seen[i] == st;
        if (dup || st < 100)
            continue;
        seen[n++] = st;
        snprintf(key, sizeof key, "%d", st);
        r = cJSON_AddObjectToObject(out, key);
        cJSON_AddStringToObject(r, "description", reason(st));
        if (st >= 400)
            cJSON_AddItemToObject(r, "content", json_content(ref("Error")));
        else if (st != 204 && res != NULL)
            cJSON_AddItemToObject(r, "content", json_content(ref(res)));
    }
    return out;
}

/* "GET /v1/svc/{service}/{resource}" → "get_v1_svc_service_resource". */
static void operation_id(const char *method, const char *path, char *out, size_t cap)
{
    size_t k = 0;

    for (const char *p = method; *p != '\0' && k + 1 < cap; p++)
        out[k++] = (char)tolower((unsigned char)*p);
    for (const char *p = path; *p != '\0' && k + 1 < cap; p++) {
        if (isalnum((unsigned char)*p))
            out[k++] = (char)tolower((unsigned char)*p);
        else if (k > 0 && out[k - 1] != '_' && (*p == '/' || *p == '.' || *p == '-'))
            out[k++] = '_';
    }
    while (k > 0 && out[k - 1] == '_')
        k--;
    out[k] = '\0';
}

static void add_param_ref(cJSON *params, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    char path[96];

    snprintf(path, sizeof path, "#/components/parameters/%s", name);
    cJSON_AddStringToObject(o, "$ref", path);
    cJSON_AddItemToArray(params, o);
}

/* A path parameter: components.parameters' Path<Name> ("user_id" → PathUserId,
 * with its description and example) when there is one, else a plain string. */
static void add_path_param(cJSON *params, const cJSON *comp, const char *name)
{
    cJSON *o, *s;
    char key[80] = "Path";
    size_t k = 4;

    for (const char *c = name; *c != '\0' && k + 1 < sizeof key; c++) {
        if (*c == '_')
            continue;
        key[k++] = c == name || c[-1] == '_' ? (char)toupper((unsigned char)*c) : *c;
    }
    key[k] = '\0';
    if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(comp, "parameters"), key) != NULL) {
        add_param_ref(params, key);
        return;
    }
    o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "in", "path");
    cJSON_AddTrueToObject(o, "required");
    s = cJSON_AddObjectToObject(o, "schema");
    cJSON_AddStringToObject(s, "type", "string");
    cJSON_AddItemToArray(params, o);
}

/* The request body of schema req, with the examples (components.examples, or
 * NULL) named req or "req.<variant>". */
static cJSON *request_body(const cJSON *examples, const char *req)
{
    cJSON *rb = cJSON_CreateObject(), *content = json_content(ref(req)), *exs = NULL;
    const cJSON *e;
    size_t n = strlen(req);

    cJSON_AddTrueToObject(rb, "required");
    cJSON_ArrayForEach(e, examples)
    {
        char path[160];
        if (strncmp(e->string, req, n) != 0 || (e->string[n] != '\0' && e->string[n] != '.'))
            continue;
        if (exs == NULL)
            exs = cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(content, "application/json"), "examples");
        snprintf(path, sizeof path, "#/components/examples/%s", e->string);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(exs, e->string), "$ref", path);
    }
    cJSON_AddItemToObject(rb, "content", content);
    return rb;
}

/* One operation; method as the table spells it ("GET"); comp: the document's
 * components; examples: the route table's request examples (NULL for a
 * resource's own paths, whose bodies those do not fit). */
static cJSON *operation(const cJSON *comp, const cJSON *examples, const char *method, const char *path,
                        const char *summary, const char *req, const char *res, const char *statuses, bool authed)
{
    cJSON *op = cJSON_CreateObject(), *params;
    char id[160];
    bool body = req != NULL;

    operation_id(method, path, id, sizeof id);
    cJSON_AddStringToObject(op, "operationId", id);
    cJSON_AddStringToObject(op, "summary", summary);
    params = cJSON_AddArrayToObject(op, "parameters");
    for (const char *p = strchr(path, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        char name[64];
        if (end == NULL || (size_t)(end - p) >= sizeof name)
            break;
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        add_path_param(params, comp, name);
    }
    if (authed)
        add_param_ref(params, "TesseraMode");
    if (!authed) {
        cJSON *sec = cJSON_AddArrayToObject(op, "security");
        cJSON_AddItemToArray(sec, cJSON_CreateObject()); /* none needed */
    }
    if (body)
        cJSON_AddItemToObject(op, "requestBody", request_body(examples, req));
    cJSON_AddItemToObject(op, "responses", responses(statuses, res, authed, body));
    return op;
}

static void add_operation(cJSON *paths, const char *path, const char *method, cJSON *op)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, path);
    char m[8];
    size_t i = 0;

    if (item == NULL)
        item = cJSON_AddObjectToObject(paths, path);
    for (; method[i] != '\0' && i + 1 < sizeof m; i++)
        m[i] = (char)tolower((unsigned char)method[i]);
    m[i] = '\0';
    cJSON_AddItemToObject(item, m, op);
}

/* ---- a resource's own paths and schemas ------------------------------------ */

/* A field's schema in answers, or in bodies (input: a timestamp is RFC 3339
 * text or unix seconds there; answers always give the text). */
static cJSON *field_schema(const struct eng_field *f, bool input)
{
    cJSON *s = cJSON_CreateObject(), *type = NULL;
    const char *t = NULL;

    switch (f->type) {
    case ENG_FT_STRING:
    case ENG_FT_TEXT:
    case ENG_FT_TIMESTAMP: t = "string"; break;
    case ENG_FT_INTEGER: t = "integer"; break;
    case ENG_FT_NUMBER: t = "number"; break;
    case ENG_FT_BOOLEAN: t = "boolean"; break;
    case ENG_FT_VECTOR: t = "array"; break;
    default: break;             /* json: any value */
    }
    if (t != NULL && f->required && !(input && f->type == ENG_FT_TIMESTAMP)) {
        cJSON_AddStringToObject(s, "type", t);
    } else if (t != NULL) {
        type = cJSON_AddArrayToObject(s, "type");
        cJSON_AddItemToArray(type, cJSON_CreateString(t));
        if (input && f->type == ENG_FT_TIMESTAMP)
            cJSON_AddItemToArray(type, cJSON_CreateString("integer"));
        if (!f->required)
            cJSON_AddItemToArray(type, cJSON_CreateString("null"));
    }
    if (f->type == ENG_FT_STRING || f->type == ENG_FT_TEXT)
        cJSON_AddNumberToObject(s, "maxLength", ENG_STRING_MAX);
    if (f->type == ENG_FT_INTEGER) {
        cJSON_AddNumberToObject(s, "minimum", (double)-ENG_INT_MAX);
        cJSON_AddNumberToObject(s, "maximum", (double)ENG_INT_MAX);
    }
    if (f->type == ENG_FT_TIMESTAMP) {
        /* format binds the text, minimum the number (JSON Schema 2020-12) */
        cJSON_AddStringToObject(s, "format", "date-time");
        if (input)
            cJSON_AddNumberToObject(s, "minimum", 0);
        cJSON_AddStringToObject(s, "description", input ? "RFC 3339 (2026-01-31T12:00:00Z) or unix seconds"
                                                        : "RFC 3339, UTC (2026-01-31T12:00:00Z)");
    }
    if (f->type == ENG_FT_VECTOR) {
        cJSON *it = cJSON_AddObjectToObject(s, "items");
        cJSON_AddStringToObject(it, "type", "number");
        cJSON_AddNumberToObject(s, "minItems", f->dim);
        cJSON_AddNumberToObject(s, "maxItems", f->dim);
    }
    if (f->pii)
        cJSON_AddStringToObject(s, "description", "personal data: sealed at rest; filtered only by eq and is.null");
    if (f->def[0] != '\0' && f->type != ENG_FT_TIMESTAMP)
        cJSON_AddItemToObject(s, "default", cJSON_Parse(f->def));
    return s;
}

/* name_Record (as stored and answered) and name_Input (what a create takes). */
static void resource_schemas(cJSON *schemas, const char *name, const struct eng_resource *res)
{
    cJSON *rec = cJSON_AddObjectToObject(schemas, name), *in, *props, *iprops, *req, *ireq;
    char iname[200];
    static const char *const sys[] = {"id", "created_at", "updated_at", "version"};

    snprintf(iname, sizeof iname, "%s_Input", name);
    in = cJSON_AddObjectToObject(schemas, iname);
    cJSON_AddStringToObject(rec, "type", "object");
    cJSON_AddStringToObject(in, "type", "object");
    props = cJSON_AddObjectToObject(rec, "properties");
    iprops = cJSON_AddObjectToObject(in, "properties");
    req = cJSON_AddArrayToObject(rec, "required");
    ireq = cJSON_AddArrayToObject(in, "required");
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        cJSON *s = cJSON_AddObjectToObject(props, sys[i]);
        cJSON_AddStringToObject(s, "type", i == 3 ? "integer" : "string");
        if (i < 3)
            cJSON_AddStringToObject(s, "format", i == 0 ? "uuid" : "date-time");
        cJSON_AddItemToArray(req, cJSON_CreateString(sys[i]));
    }
    cJSON *exp = cJSON_AddObjectToObject(props, "expires_at");
    cJSON_AddStringToObject(exp, "type", "string");
    cJSON_AddStringToObject(exp, "format", "date-time");
    for (int i = 0; i < res->nfields; i++) {
        const struct eng_field *f = &res->fields[i];
        cJSON_AddItemToObject(props, f->name, field_schema(f, false));
        cJSON_AddItemToObject(iprops, f->name, field_schema(f, true));
        cJSON_AddItemToArray(req, cJSON_CreateString(f->name));      /* answered always, null when none */
        if (f->required && f->def[0] == '\0')
            cJSON_AddItemToArray(ireq, cJSON_CreateString(f->name));
    }
    cJSON_AddFalseToObject(rec, "additionalProperties");
    cJSON_AddFalseToObject(in, "additionalProperties");
}

static void add_filter_params(cJSON *params, const struct eng_resource *res)
{
    for (int i = 0; i < res->nfields; i++) {
        const struct eng_field *f = &res->fields[i];
        cJSON *o = cJSON_CreateObject(), *s;
        cJSON_AddStringToObject(o, "name", f->name);
        cJSON_AddStringToObject(o, "in", "query");
        cJSON_AddStringToObject(o, "description",
                                f->pii ? "eq.VALUE (by its blind index) or is.null"
                                : f->type == ENG_FT_JSON || f->type == ENG_FT_VECTOR
                                    ? "is.null"
                                    : "op.value, op one of eq neq gt gte lt lte like in is");
        s = cJSON_AddObjectToObject(o, "schema");
        cJSON_AddStringToObject(s, "type", "string");
        cJSON_AddItemToArray(params, o);
    }
    add_param_ref(params, "Limit");
    add_param_ref(params, "Cursor");
    add_param_ref(params, "Order");
}

static void resource_paths(cJSON *paths, cJSON *comp, const char *service, const struct eng_resource *res)
{
    char name[160], list[200], input[200], base[200], one[220];
    cJSON *op, *params, *lst, *props, *data;
    cJSON *schemas = cJSON_GetObjectItemCaseSensitive(comp, "schemas");

    snprintf(name, sizeof name, "svc_%s_%s", service, res->name);
    snprintf(list, sizeof list, "%s_List", name);
    snprintf(input, sizeof input, "%s_Input", name);
    resource_schemas(schemas, name, res);
    lst = cJSON_AddObjectToObject(schemas, list);
    cJSON_AddStringToObject(lst, "type", "object");
    props = cJSON_AddObjectToObject(lst, "properties");
    data = cJSON_AddObjectToObject(props, "data");
    cJSON_AddStringToObject(data, "type", "array");
    cJSON_AddItemToObject(data, "items", ref(name));
    cJSON_AddItemToObject(cJSON_AddObjectToObject(props, "next_cursor"), "type", cJSON_Parse("[\"string\",\"null\"]"));

    snprintf(base, sizeof base, "/v1/svc/%s/%s", service, res->name);
    snprintf(one, sizeof one, "%s/{id}", base);
    op = operation(comp, NULL, "GET", base, "List records (this resource)", NULL, list, "200 400 403", true);
    params = cJSON_GetObjectItemCaseSensitive(op, "parameters");
    add_filter_params(params, res);
    add_operation(paths, base, "GET", op);
    add_operation(paths, base, "POST", operation(comp, NULL, "POST", base, "Create a record (this resource)", input,
                                                 name, "201 403 422", true));
    add_operation(paths, one, "GET", operation(comp, NULL, "GET", one, "Read a record (this resource)", NULL, name,
                                               "200 403 404", true));
    /* a PATCH takes any subset of the fields */
    op = operation(comp, NULL, "PATCH", one, "Update a record (this resource)", "RecordInput", name,
                   "200 403 404 412 422", true);
    add_param_ref(cJSON_GetObjectItemCaseSensitive(op, "parameters"), "IfMatch");
    add_operation(paths, one, "PATCH", op);
    op = operation(comp, NULL, "DELETE", one, "Delete a record (this resource)", NULL, NULL, "204 403 404 412", true);
    add_param_ref(cJSON_GetObjectItemCaseSensitive(op, "parameters"), "IfMatch");
    add_operation(paths, one, "DELETE", op);
}

/* ---- building, and keeping, the document ---------------------------------- */

/* The active microservices, in the registry's order, into svc (at most OPENAPI_SERVICES). */
static int list_services(struct worker *w, char (*svc)[ENG_SLUG], size_t *n)
{
    struct eng_app *apps = calloc(SERVICES_MAX, sizeof *apps);
    size_t na = 0;
    int rc = apps == NULL ? ERR_NOMEM : engine_app_list(w->engine, apps, SERVICES_MAX, &na);

    *n = 0;
    for (size_t i = 0; rc == 0 && i < na && *n < OPENAPI_SERVICES; i++)
        if (strcmp(apps[i].kind, "microservice") == 0 && strcmp(apps[i].status, "active") == 0)
            snprintf(svc[(*n)++], ENG_SLUG, "%s", apps[i].name);
    free(apps);
    return rc;
}

/* The versions a mode's document depends on: the app registry's (apps_ver
 * NULL: not asked) and each service's schema's in mode, into ver; -1 for
 * any the kv could not give (then nothing is kept). A round trip per
 * KV_MGET_MAX - 2 of them, the first usually read ahead with authn's. */
static void read_versions(struct worker *w, int mode, int64_t *apps_ver, const char (*svc)[ENG_SLUG], size_t n,
                          int64_t *ver)
{
    struct caching_ns ns[OPENAPI_SERVICES + 1];
    struct caching_read rd[OPENAPI_SERVICES + 1];
    size_t m = 0;
    bool named = true;          /* a name too long for a key: none is known */

    memset(rd, 0, sizeof rd);
    if (apps_ver != NULL)
        named &= caching_ns_apps(&ns[m++]) == 0;
    for (size_t i = 0; i < n; i++)
        named &= caching_ns_schema(&ns[m++], mode, svc[i]) == 0;
    for (size_t i = 0; i < m; i++) {
        rd[i].ns = &ns[i];
        rd[i].ver = -1;
    }
    /* caching_fetch carries at most KV_MGET_MAX - 2 versions in a trip */
    for (size_t off = 0; named && off < m; off += KV_MGET_MAX - 2) {
        size_t k = m - off < KV_MGET_MAX - 2 ? m - off : KV_MGET_MAX - 2;
        if (caching_fetch(w, rd + off, k, NULL, 0, NULL, NULL) != 0)
            for (size_t i = off; i < off + k; i++)
                rd[i].ver = -1;
    }
    m = 0;
    if (apps_ver != NULL)
        *apps_ver = rd[m++].ver;
    for (size_t i = 0; i < n; i++)
        ver[i] = rd[m++].ver;
}

/* Whether kept k of mode still holds: young enough, and every version it
 * was built at read the same now. */
static bool kept_holds(struct worker *w, int mode, const struct openapi_kept *k)
{
    int64_t apps_ver, ver[OPENAPI_SERVICES];

    if ((int64_t)time(NULL) - k->at >= (int64_t)(w->caching.ttl_ms[METRICS_CACHE_SCHEMA] / 1000))
        return false;
    read_versions(w, mode, &apps_ver, (const char (*)[ENG_SLUG])k->svc, k->nsvc, ver);
    if (apps_ver < 0 || apps_ver != k->apps_ver)
        return false;
    for (size_t i = 0; i < k->nsvc; i++)
        if (ver[i] < 0 || ver[i] != k->svc_ver[i])
            return false;
    return true;
}

/* The fixed part: app/api/openapi.json and a path per documented route. */
static cJSON *fixed_document(void)
{
    cJSON *doc = cJSON_ParseWithLength((const char *)openapi_json, openapi_json_len);
    cJSON *paths, *comp;
    const cJSON *examples;

    if (doc == NULL)
        return NULL;
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "info"), "version",
                                           cJSON_CreateString(TESSERA_VERSION));
    paths = cJSON_AddObjectToObject(doc, "paths");
    comp = cJSON_GetObjectItemCaseSensitive(doc, "components");
    examples = cJSON_GetObjectItemCaseSensitive(comp, "examples");
    for (size_t i = 0; i < APP_NROUTES; i++) {
        const struct route *rt = &APP_ROUTES[i];
        const struct app_route *ar = rt->data;
        const char *method = ar->label;
        char m[8];
        size_t k = 0;

        if (ar->summary == NULL)
            continue;
        for (; method[k] != ' ' && method[k] != '\0' && k + 1 < sizeof m; k++)
            m[k] = method[k];
        m[k] = '\0';
        add_operation(paths, rt->pattern, m,
                      operation(comp, examples, m, rt->pattern, ar->summary, ar->req, ar->res, ar->statuses,
                                ar->auth == AUTH_REQUIRED));
    }
    return doc;
}

/* Builds into k the document for p (NULL: without a token). With p, the
 * versions are read before the registry and the definitions they guard. */
static int build(struct worker *w, const struct principal *p, struct openapi_kept *k)
{
    cJSON *doc = fixed_document();
    struct eng_resource *res = NULL;
    char *text = NULL;
    int rc = doc == NULL ? ERR_INTERNAL : 0;

    free(k->json);
    memset(k, 0, sizeof *k);
    k->apps_ver = -1;
    if (rc == 0 && p != NULL) {
        cJSON *comp = cJSON_GetObjectItemCaseSensitive(doc, "components");
        size_t nr;
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(doc, "info"), "x-tessera-mode",
                                engine_mode_name(p->scope.mode));
        read_versions(w, p->scope.mode, &k->apps_ver, NULL, 0, NULL);
        rc = list_services(w, k->svc, &k->nsvc);
        if (rc == 0)
            read_versions(w, p->scope.mode, NULL, (const char (*)[ENG_SLUG])k->svc, k->nsvc, k->svc_ver);
        if (rc == 0 && (res = malloc(sizeof *res * RESOURCES_MAX)) == NULL)   /* ~70 KB each: the heap's */
            rc = ERR_NOMEM;
        for (size_t i = 0; rc == 0 && i < k->nsvc; i++) {
            if ((rc = engine_resource_list(w->engine, &p->scope, k->svc[i], res, RESOURCES_MAX, &nr)) != 0)
                break;
            for (size_t j = 0; j < nr; j++)
                resource_paths(cJSON_GetObjectItemCaseSensitive(doc, "paths"), comp, k->svc[i], &res[j]);
        }
    }
    if (rc == 0 && (text = cJSON_PrintUnformatted(doc)) == NULL)
        rc = ERR_NOMEM;
    if (rc == 0) {
        k->json = text;
        k->len = strlen(text);
        k->at = (int64_t)time(NULL);
    }
    free(res);
    cJSON_Delete(doc);
    return rc;
}

/* Whether k, built for a mode, may be kept: every version known. */
static bool keepable(const struct openapi_kept *k)
{
    if (k->apps_ver < 0)
        return false;
    for (size_t i = 0; i < k->nsvc; i++)
        if (k->svc_ver[i] < 0)
            return false;
    return true;
}

void openapi_forget(struct worker *w)
{
    for (int i = 0; w->openapi != NULL && i < OPENAPI_KEPT; i++)
        free(w->openapi[i].json);
    free(w->openapi);
    w->openapi = NULL;
}

HANDLER(handle_openapi)
{
    struct openapi_kept *k;
    int rc = 0;

    if (r->query.n > 0)
        return respond_error(r, ERR_INVAL, "/openapi.json takes no parameters");
    if (w->openapi == NULL && (w->openapi = calloc(OPENAPI_KEPT, sizeof *w->openapi)) == NULL)
        return ERR_NOMEM;
    k = &w->openapi[p == NULL ? 0 : 1 + (p->scope.mode == ENG_MODE_LIVE)];
    if (k->json != NULL && (p == NULL || kept_holds(w, p->scope.mode, k))) {
        metrics_count(w->metrics, w->slot, METRICS_OPENAPI_KEPT);
    } else {
        if ((rc = build(w, p, k)) != 0)
            return rc;
        metrics_count(w->metrics, w->slot, METRICS_OPENAPI_BUILT);
    }
    rc = http_send(r, 200, "application/json; charset=utf-8", k->json, k->len);
    if (p != NULL && !keepable(k)) {
        free(k->json); /* a version unknown: nothing to tell a change by */
        k->json = NULL;
    }
    return rc;
}
