/* The audit trail: entries appended in the same unit of work as the change they
 * record (DESIGN §10), and the org's trail read newest first with a keyset cursor. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "core/uuid.h"

#define AUDIT_PAGE_MAX 100

int audit_entry(const struct eng_scope *s, const char *actor, const char *action, const char *target,
                const cJSON *meta, struct eng_audit *a)
{
    int rc;

    memset(a, 0, sizeof *a);
    if ((rc = uuid_v7(a->id)) != 0)
        return rc;
    snprintf(a->org_id, sizeof a->org_id, "%s", s->org_id);
    snprintf(a->actor, sizeof a->actor, "%s", actor != NULL ? actor : "");
    snprintf(a->action, sizeof a->action, "%s", action);
    snprintf(a->target, sizeof a->target, "%s", target != NULL ? target : "");
    a->created_at = (int64_t)time(NULL);
    if (meta != NULL) {
        char *text = cJSON_PrintUnformatted(meta);
        if (text == NULL)
            return ERR_NOMEM;
        size_t n = strlen(text);
        if (n >= sizeof a->meta) {
            cJSON_free(text);
            return ERR_TOOBIG;
        }
        memcpy(a->meta, text, n + 1);
        cJSON_free(text);
    } else {
        snprintf(a->meta, sizeof a->meta, "{}");
    }
    return 0;
}

int audit_record(struct worker *w, const struct eng_scope *s, const char *actor, const char *action,
                 const char *target, const cJSON *meta)
{
    struct eng_audit a;
    int rc = audit_entry(s, actor, action, target, meta, &a);

    return rc != 0 ? rc : engine_audit_append(w->engine, s, &a);
}

HANDLER(handle_audit_list)
{
    const char *lim = query_get(&r->query, "limit"), *cursor = query_get(&r->query, "cursor");
    long limit = 20;
    size_t n = 0;
    int rc;

    if (lim != NULL) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*lim == '\0' || *end != '\0' || limit < 1 || limit > AUDIT_PAGE_MAX)
            return respond_error(r, ERR_INVAL, "limit must be 1..100");
    }
    if (cursor != NULL && !uuid_valid(cursor))
        return respond_error(r, ERR_INVAL, "malformed cursor");
    struct eng_audit *page = arena_alloc(r->arena, sizeof *page * (size_t)limit);
    if (page == NULL)
        return ERR_NOMEM;
    rc = engine_audit_list(w->engine, &p->scope, cursor, page, (size_t)limit, &n);
    if (rc != 0)
        return rc;
    cJSON *data, *root = respond_list(r, &data);
    if (root == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            return ERR_NOMEM;
        }
        cJSON_AddStringToObject(o, "id", page[i].id);
        cJSON_AddStringToObject(o, "actor", page[i].actor);
        cJSON_AddStringToObject(o, "action", page[i].action);
        cJSON_AddStringToObject(o, "target", page[i].target);
        cJSON *meta = cJSON_Parse(page[i].meta); /* written by audit_record: trusted */
        cJSON_AddItemToObject(o, "meta", meta != NULL ? meta : cJSON_CreateObject());
        json_add_time(o, "created_at", page[i].created_at);
    }
    if (n == (size_t)limit)
        cJSON_AddStringToObject(root, "next_cursor", page[n - 1].id);
    else
        cJSON_AddNullToObject(root, "next_cursor");
    return respond_owned(r, 200, root);
}
