/* The app registry (DESIGN §4): global, no org. Every authenticated caller may
 * discover apps; only platform admins register them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/text.h"
#include "core/uuid.h"

#define APPS_MAX 200

static cJSON *app_json(const struct eng_app *a)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "name", a->name);
    cJSON_AddStringToObject(o, "kind", a->kind);
    cJSON_AddStringToObject(o, "base_url", a->base_url);
    cJSON_AddStringToObject(o, "status", a->status);
    json_add_time(o, "created_at", a->created_at);
    return o;
}

/* The registry as the list shows it, for the cache (discovery, [cache] apps_ttl). */
static int apps_load(void *ctx, struct buf *out, bool *found)
{
    struct worker *w = ctx;
    struct eng_app *apps = calloc(APPS_MAX, sizeof *apps);
    cJSON *list = cJSON_CreateArray();
    char *text = NULL;
    size_t n = 0;
    int rc = apps == NULL || list == NULL ? ERR_NOMEM : engine_app_list(w->engine, apps, APPS_MAX, &n);

    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!cJSON_AddItemToArray(list, app_json(&apps[i])))
            rc = ERR_NOMEM;
    if (rc == 0)
        rc = (text = cJSON_PrintUnformatted(list)) != NULL ? buf_puts(out, text) : ERR_NOMEM;
    *found = rc == 0;
    free(text);
    cJSON_Delete(list);
    free(apps);
    return rc;
}

HANDLER(handle_apps_list)
{
    struct caching_ns ns;
    struct buf b;
    struct caching_read rd = {.ns = &ns, .suffix = "list", .load = apps_load, .ctx = w, .out = &b};
    cJSON *root, *list;
    int rc;

    buf_init(&b, 1 << 20);
    if (caching_ns_apps(&ns) != 0 || caching_fetch(w, &rd, 1, NULL, 0, NULL, NULL) != 0)
        rd.ver = -1; /* fail open: loaded */
    rc = caching_finish(w, &rd);
    caching_read_cleanup(&rd);
    list = rc == 0 ? cJSON_ParseWithLength(b.p != NULL ? b.p : "[]", b.len) : NULL;
    buf_cleanup(&b);
    if (rc != 0)
        return rc;
    if (list == NULL || (root = http_own(r, cJSON_CreateObject())) == NULL) {
        cJSON_Delete(list);
        return ERR_NOMEM;
    }
    if (!cJSON_AddItemToObject(root, "data", list)) { /* root, the request's, owns it now */
        cJSON_Delete(list);
        return ERR_NOMEM;
    }
    return respond_owned(r, 200, root);
}

HANDLER(handle_apps_create)
{
    static const char *const allowed[] = {"name", "kind", "base_url", "status", NULL};
    static const char *const kinds[] = {"microservice", "web", "worker", NULL};
    const char *unknown = NULL;
    struct eng_app a = {0};
    cJSON *d = NULL;
    int rc;

    if (!p->platform_admin)
        return respond_error(r, ERR_FORBIDDEN, "only platform admins register apps");
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "a JSON object body is required");
    if (!json_only_keys(r->json, allowed, &unknown)) {
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, unknown, "is not a known field");
        return respond_invalid(r, d);
    }
    const char *name = json_get_str(r->json, "name"), *kind = json_get_str(r->json, "kind");
    const char *url = json_get_str(r->json, "base_url"), *status = json_get_str(r->json, "status");
    bool kind_ok = false;
    for (int i = 0; kind != NULL && kinds[i] != NULL; i++)
        kind_ok |= strcmp(kind, kinds[i]) == 0;
    d = cJSON_CreateObject();
    if (!text_ident_valid(name, TEXT_APP_MAX))
        cJSON_AddStringToObject(d, "name", "must match ^[a-z][a-z0-9_]{0,39}$");
    if (!kind_ok)
        cJSON_AddStringToObject(d, "kind", "must be microservice, web or worker");
    if (cJSON_HasObjectItem(r->json, "base_url") && (url == NULL || strlen(url) >= ENG_URL))
        cJSON_AddStringToObject(d, "base_url", "must be a string under 256 characters");
    if (cJSON_HasObjectItem(r->json, "status") &&
        (status == NULL || (strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0)))
        cJSON_AddStringToObject(d, "status", "must be active or disabled");
    if (cJSON_GetArraySize(d) > 0)
        return respond_invalid(r, d);
    cJSON_Delete(d);
    if ((rc = uuid_v4(a.id)) != 0)
        return rc;
    snprintf(a.name, sizeof a.name, "%s", name);
    snprintf(a.kind, sizeof a.kind, "%s", kind);
    snprintf(a.base_url, sizeof a.base_url, "%s", url != NULL ? url : "");
    snprintf(a.status, sizeof a.status, "%s", status != NULL ? status : "active");
    a.created_at = (int64_t)time(NULL);
    rc = engine_app_create(w->engine, &a);
    if (rc == ERR_CONFLICT)
        return respond_error(r, ERR_CONFLICT, "an app with that name exists");
    if (rc != 0)
        return rc;
    struct caching_ns ns;
    if (caching_ns_apps(&ns) == 0)
        caching_touch(w, &ns);
    if ((rc = audit_record(w, &p->scope, p->user_id, "apps.create", a.name, NULL)) != 0)
        return rc;
    cJSON *root = http_own(r, app_json(&a));
    return root == NULL ? ERR_NOMEM : respond_owned(r, 201, root);
}
