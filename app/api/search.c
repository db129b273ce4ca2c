/* Vector search (DESIGN §5, §6; issue 15): POST /v1/svc/{s}/{r}/search with
 * {"field", "vector", "k", "filter", "metric"} → the k records nearest to the
 * vector in that field among those that pass the filter, with their _score.
 *
 * The filter is the list's language in a JSON object: {"stage": "eq.won",
 * "amount": "gte.100"} means what ?stage=eq.won&amount=gte.100 means on the
 * list, parsed by the same code (records_filter). k defaults to 10 (at most
 * 1000); metric to the field's (its schema's "metric", cosine unless set).
 * Scores are distances, smaller nearer (engine.h, "vector search"). The
 * engine answers in the request's unit of work, so the filter, the caller's
 * org (RLS on PostgreSQL) and the mode's schema hold for the candidates, and
 * a record committed before the request is found. Results are not cached:
 * every search is read from the engine. Needs records:read. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/json.h"
#include "store/vector.h"

#define SEARCH_K_DEFAULT 10

static const char *const STRATEGIES[] = {[ENG_STRATEGY_EXACT] = "exact", [ENG_STRATEGY_HNSW] = "hnsw",
                                         [ENG_STRATEGY_HNSW_EXACT] = "hnsw+exact"};

/* The body's vector for field f into v (f->dim values); false with the reason in details. */
static bool parse_vector(const cJSON *arr, const struct eng_field *f, double *v, cJSON *details)
{
    const cJSON *x;
    int n = 0;
    char why[96];

    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        cJSON_AddStringToObject(details, "vector", "must be a non-empty array of numbers");
        return false;
    }
    cJSON_ArrayForEach(x, arr) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
            snprintf(why, sizeof why, "component %d is not a finite number", n);
            cJSON_AddStringToObject(details, "vector", why);
            return false;
        }
        if (n < f->dim)
            v[n] = x->valuedouble;
        n++;
    }
    if (n != f->dim) {
        snprintf(why, sizeof why, "has %d components; %.64s is a vector(%d)", n, f->name, f->dim);
        cJSON_AddStringToObject(details, "vector", why);
        return false;
    }
    return true;
}

/* The body into q (its vector and filters in the request's arena); false
 * when it does not hold, with every reason found in details. */
static bool parse_body(struct worker *w, struct http_request *r, const struct principal *p,
                       const struct records_ctx *c, struct eng_search *q, struct eng_query *where,
                       cJSON *details)
{
    static const char *const allowed[] = {"field", "vector", "k", "filter", "metric", NULL};
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(r->json, "field");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(r->json, "k");
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(r->json, "filter");
    const cJSON *metric = cJSON_GetObjectItemCaseSensitive(r->json, "metric");
    const cJSON *x;
    const struct eng_field *f = NULL;
    const char *unknown = NULL;
    double *v;

    if (!json_only_keys(r->json, allowed, &unknown))
        cJSON_AddStringToObject(details, unknown, "is not a search parameter (field, vector, k, filter, metric)");
    if (!cJSON_IsString(field) || (f = eng_resource_field(c->res, field->valuestring)) == NULL ||
        f->type != ENG_FT_VECTOR) {
        cJSON_AddStringToObject(details, "field", "must name a vector field of the resource");
        f = NULL;
    }
    q->k = SEARCH_K_DEFAULT;
    if (k != NULL && (!cJSON_IsNumber(k) || k->valuedouble != floor(k->valuedouble) || k->valuedouble < 1 ||
                      k->valuedouble > ENG_SEARCH_K_MAX))
        cJSON_AddStringToObject(details, "k", "must be an integer from 1 to 1000");
    else if (k != NULL)
        q->k = (size_t)k->valuedouble;
    q->metric = f != NULL ? (f->metric != 0 ? f->metric : ENG_METRIC_COSINE) : ENG_METRIC_COSINE;
    if (metric != NULL && (q->metric = vec_metric_parse(cJSON_GetStringValue(metric))) < 0)
        cJSON_AddStringToObject(details, "metric", "must be cosine, l2 or inner");
    memset(where, 0, sizeof *where);
    where->now = (int64_t)time(NULL);
    if (filter != NULL && !cJSON_IsObject(filter) && !cJSON_IsNull(filter))
        cJSON_AddStringToObject(details, "filter", "must be an object of field: \"op.value\" (as the list's query)");
    else if (filter != NULL)
        cJSON_ArrayForEach(x, filter) {
            const char *why = !cJSON_IsString(x) ? "must be a string \"op.value\" (as the list's query)"
                                                 : records_filter(w, r, p, c, x->string, x->valuestring, where);
            if (why != NULL) {
                char *key = arena_printf(r->arena, "filter.%.64s", x->string);
                cJSON_AddStringToObject(details, key != NULL ? key : "filter", why);
            }
        }
    if (f == NULL)
        return false;
    snprintf(q->field, sizeof q->field, "%s", f->name);
    q->dim = f->dim;
    q->where = where;
    if ((v = arena_alloc(r->arena, (size_t)f->dim * sizeof *v)) == NULL ||
        !parse_vector(cJSON_GetObjectItemCaseSensitive(r->json, "vector"), f, v, details))
        return false;
    q->vector = v;
    if (q->metric == ENG_METRIC_COSINE && vec_norm(v, f->dim) == 0)
        cJSON_AddStringToObject(details, "vector", "is all zeros, which has no cosine distance");
    return cJSON_GetArraySize(details) == 0;
}

HANDLER(handle_records_search)
{
    struct records_ctx c;
    struct eng_search q;
    struct eng_query where;
    struct eng_hit *hits;
    cJSON *details = http_own(r, cJSON_CreateObject()), *root, *data;
    size_t n = 0;
    int rc, strategy;

    if (details == NULL)
        return ERR_NOMEM;
    RECORDS_OPEN_OR_RETURN(w, r, p, "records:read", &c);
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "the body must be a JSON object {field, vector, k, filter, metric}");
    memset(&q, 0, sizeof q);
    if (!parse_body(w, r, p, &c, &q, &where, details))
        return respond_invalid(r, cJSON_Duplicate(details, true));
    if ((hits = arena_alloc(r->arena, q.k * sizeof *hits)) == NULL)
        return ERR_NOMEM;
    if ((rc = engine_record_search(w->engine, &p->scope, c.service, c.resource, &q, hits, &n, &strategy)) != 0)
        return rc;
    if (strategy < ENG_STRATEGY_EXACT || strategy > ENG_STRATEGY_HNSW_EXACT)
        rc = ERR_INTERNAL;      /* an engine that did not say how it searched */
    if (rc == 0 && (root = respond_list(r, &data)) == NULL) /* the request's: freed with it */
        rc = ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        cJSON *o = records_json(w, p, &c, &hits[i].rec);
        if (o == NULL || !cJSON_AddItemToArray(data, o)) {
            cJSON_Delete(o);
            rc = ERR_NOMEM;
        } else {
            cJSON_AddNumberToObject(o, "_score", hits[i].score);
        }
    }
    for (size_t i = 0; i < n; i++)
        eng_record_cleanup(&hits[i].rec);
    if (rc != 0)
        return rc;
    cJSON_AddNumberToObject(root, "k", (double)q.k);
    cJSON_AddStringToObject(root, "metric", vec_metric_name(q.metric));
    cJSON_AddBoolToObject(root, "exact", strategy != ENG_STRATEGY_HNSW);
    cJSON_AddStringToObject(root, "strategy", STRATEGIES[strategy]);
    return respond_owned(r, 200, root);
}
