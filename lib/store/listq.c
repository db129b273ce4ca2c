/* listq: the list's query language, moved out of app/api/records.c so that
 * what a client's query string turns into can be tested (and fuzzed) without
 * a worker. The rules are records.c's of old:
 *
 * Filter values are text after the operator: timestamps as unix seconds or
 * RFC 3339, booleans true/false; `in` splits on commas (a string holding a
 * comma cannot be matched by `in`; use eq). A pii field is filtered only by
 * eq on its blind index and by is.null; json and vector fields only by is.null.
 *
 * The cursor is base64url([sort value, id]) "." base64url(HMAC-SHA256), keyed
 * by a key derived from the caller's secret (the data key's blind-index key),
 * over the tenant binding, the payload and the query it belongs to (filters,
 * order): a cursor altered, forged or replayed on another query does not open. */
#include "store/listq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/uuid.h"
#include "security/crypto.h"
#include "store/values.h"

static void json_delete(void *p)
{
    cJSON_Delete(p);
}

/* Hands a tree to the arena (deleted at its reset); NULL when it cannot. */
static cJSON *own(struct arena *a, cJSON *json)
{
    if (json != NULL && arena_defer(a, json_delete, json) != 0) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

const struct eng_field *listq_column(const struct eng_resource *res, const char *name, struct eng_field *sys)
{
    memset(sys, 0, sizeof *sys);
    snprintf(sys->name, sizeof sys->name, "%s", name);
    if (strcmp(name, "id") == 0) {
        sys->type = ENG_FT_STRING;
        return sys;
    }
    if (strcmp(name, "created_at") == 0 || strcmp(name, "updated_at") == 0) {
        sys->type = ENG_FT_TIMESTAMP;
        return sys;
    }
    return eng_resource_field(res, name);
}

bool listq_orderable(int type)
{
    return type == ENG_FT_STRING || type == ENG_FT_TEXT || type == ENG_FT_INTEGER ||
           type == ENG_FT_NUMBER || type == ENG_FT_BOOLEAN || type == ENG_FT_TIMESTAMP;
}

/* One filter operand text → a typed value (owned by the arena), or NULL. */
static cJSON *operand(const struct listq *l, const struct eng_field *f, const char *text)
{
    cJSON *s = own(l->arena, cJSON_CreateString(text));
    const char *why;

    if (s == NULL)
        return NULL;
    if (f->type == ENG_FT_STRING || f->type == ENG_FT_TEXT)
        return strlen(text) <= ENG_STRING_MAX ? s : NULL;
    return own(l->arena, eng_value_cast(s, ENG_FT_STRING, 0, f, &why));
}

static const char *const OPS[] = {[ENG_OP_EQ] = "eq", [ENG_OP_NEQ] = "neq", [ENG_OP_GT] = "gt",
                                  [ENG_OP_GTE] = "gte", [ENG_OP_LT] = "lt", [ENG_OP_LTE] = "lte",
                                  [ENG_OP_LIKE] = "like", [ENG_OP_IN] = "in", [ENG_OP_IS] = "is"};

const char *listq_filter(const struct listq *l, const char *key, const char *val, struct eng_query *q)
{
    struct eng_field sysf;
    const struct eng_field *f = listq_column(l->res, key, &sysf);
    struct eng_filter *fl;
    const char *dot = strchr(val, '.'), *arg;
    int op = 0;

    if (f == NULL)
        return arena_printf(l->arena, "unknown field %.64s", key);
    if (q->nfilters >= ENG_MAX_FILTERS)
        return "at most 16 filters";
    if (dot == NULL)
        return arena_printf(l->arena, "filter %s must be op.value (eq neq gt gte lt lte like in is)", f->name);
    for (int i = ENG_OP_EQ; i <= ENG_OP_IS; i++)
        if ((size_t)(dot - val) == strlen(OPS[i]) && strncmp(val, OPS[i], (size_t)(dot - val)) == 0)
            op = i;
    if (op == 0)
        return arena_printf(l->arena, "filter %s: unknown operator (eq neq gt gte lt lte like in is)", f->name);
    arg = dot + 1;
    fl = &q->filters[q->nfilters];
    snprintf(fl->field, sizeof fl->field, "%s", f->name);
    fl->op = op;
    if (op == ENG_OP_IS) {
        if (strcmp(arg, "null") == 0)
            fl->value = own(l->arena, cJSON_CreateNull());
        else if (f->type == ENG_FT_BOOLEAN && (strcmp(arg, "true") == 0 || strcmp(arg, "false") == 0))
            fl->value = own(l->arena, cJSON_CreateBool(arg[0] == 't'));
        else
            return arena_printf(l->arena, "filter %s: is takes null%s", f->name,
                                f->type == ENG_FT_BOOLEAN ? ", true or false" : "");
    } else if (f->pii) {
        char hex[ENG_HASH];
        if (op != ENG_OP_EQ)
            return arena_printf(l->arena, "filter %s: a pii field filters only by eq and is.null", f->name);
        if (l->bidx == NULL || l->bidx(l->bidx_ctx, f->name, arg, hex) != 0)
            return "the blind index is unavailable";
        fl->value = own(l->arena, cJSON_CreateString(hex));
    } else if (!listq_orderable(f->type)) {
        return arena_printf(l->arena, "filter %s: a %s field filters only by is.null", f->name,
                            f->type == ENG_FT_JSON ? "json" : "vector");
    } else if (op == ENG_OP_LIKE) {
        if (f->type != ENG_FT_STRING && f->type != ENG_FT_TEXT)
            return arena_printf(l->arena, "filter %s: like applies to string and text fields", f->name);
        fl->value = operand(l, f, arg);
    } else if (f->type == ENG_FT_BOOLEAN && op != ENG_OP_EQ && op != ENG_OP_NEQ && op != ENG_OP_IN) {
        return arena_printf(l->arena, "filter %s: a boolean takes eq, neq, in or is", f->name);
    } else if (op == ENG_OP_IN) {
        size_t n = strlen(arg), count = 0;
        char *list;
        cJSON *arr = own(l->arena, cJSON_CreateArray());

        if (n >= 2 && arg[0] == '(' && arg[n - 1] == ')') {
            arg++;
            n -= 2;
        }
        if (arr == NULL || (list = arena_alloc(l->arena, n + 1)) == NULL)
            return "out of memory";
        memcpy(list, arg, n);
        list[n] = '\0';
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
            cJSON *x = operand(l, f, t);
            if (x == NULL || ++count > ENG_IN_MAX)
                return arena_printf(l->arena, "filter %s: in takes up to 100 comma-separated values of type %s",
                                    f->name, eng_ftype_name(f->type, f->dim, (char[24]){0}));
            cJSON_AddItemReferenceToArray(arr, x);
        }
        if (count == 0)
            return arena_printf(l->arena, "filter %s: in needs at least one value", f->name);
        fl->value = arr;
    } else {
        fl->value = operand(l, f, arg);
    }
    if (fl->value == NULL) {
        char tn[24];
        return arena_printf(l->arena, "filter %s: the value is not a %s", f->name,
                            eng_ftype_name(f->type, f->dim, tn));
    }
    q->nfilters++;
    return NULL;
}

const char *listq_order(const char *val, struct eng_query *q)
{
    const char *dot = strrchr(val, '.');
    size_t fl = dot != NULL ? (size_t)(dot - val) : strlen(val);

    if (fl == 0 || fl >= sizeof q->order)
        return "order must be field.asc or field.desc";
    memcpy(q->order, val, fl);
    q->order[fl] = '\0';
    if (dot != NULL && strcmp(dot, ".asc") != 0 && strcmp(dot, ".desc") != 0)
        return "order must be field.asc or field.desc";
    q->desc = dot != NULL && strcmp(dot, ".desc") == 0;
    return NULL;
}

int listq_order_type(const struct listq *l, const struct eng_query *q)
{
    struct eng_field sysf;
    const struct eng_field *of = listq_column(l->res, q->order, &sysf);

    return of == NULL || of->pii || !listq_orderable(of->type) ? 0 : of->type;
}

/* The MAC of a cursor's payload: keyed by a key derived from the secret, over
 * the binding, the payload and every query parameter but cursor and limit. */
static int cursor_mac(const struct listq *l, const char *payload, size_t plen, uint8_t mac[CRYPTO_SHA256_LEN])
{
    uint8_t key[CRYPTO_SHA256_LEN];
    static const char label[] = "tessera cursor v1";
    size_t cap = plen + strlen(l->bind) + 1, n;
    char *msg;
    int rc;

    if (l->secret == NULL)
        return ERR_UNAVAILABLE;
    for (size_t i = 0; i < l->qs->n; i++)
        cap += strlen(l->qs->p[i].key) + strlen(l->qs->p[i].value) + 2;
    if ((msg = malloc(cap)) == NULL)
        return ERR_NOMEM;
    n = strlen(l->bind);
    memcpy(msg, l->bind, n);
    memcpy(msg + n, payload, plen);
    n += plen;
    for (size_t i = 0; i < l->qs->n; i++) {
        if (strcmp(l->qs->p[i].key, "cursor") == 0 || strcmp(l->qs->p[i].key, "limit") == 0)
            continue;
        n += (size_t)snprintf(msg + n, cap - n, "\n%s=%s", l->qs->p[i].key, l->qs->p[i].value);
    }
    rc = crypto_hmac_sha256(l->secret, CRYPTO_KEY_LEN, label, sizeof label - 1, key);
    if (rc == 0)
        rc = crypto_hmac_sha256(key, sizeof key, msg, n, mac);
    free(msg);
    return rc;
}

const char *listq_cursor_make(const struct listq *l, const struct eng_record *last, const char *order)
{
    cJSON *arr = cJSON_CreateArray(), *v;
    char *payload, *out;
    uint8_t mac[CRYPTO_SHA256_LEN];
    struct eng_field sysf;
    size_t plen, blen;

    if (arr == NULL)
        return NULL;
    if (strcmp(order, "id") == 0)
        v = cJSON_CreateString(last->id);
    else if (listq_column(l->res, order, &sysf) == &sysf)
        v = cJSON_CreateNumber((double)(order[0] == 'c' ? last->created_at : last->updated_at));
    else {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(last->data, order);
        v = x != NULL ? cJSON_Duplicate(x, true) : cJSON_CreateNull();
    }
    cJSON_AddItemToArray(arr, v);
    cJSON_AddItemToArray(arr, cJSON_CreateString(last->id));
    payload = json_print(arr);
    cJSON_Delete(arr);
    if (payload == NULL)
        return NULL;
    plen = strlen(payload);
    blen = CRYPTO_B64_LEN(plen) + CRYPTO_B64_LEN(sizeof mac) + 2;
    out = arena_alloc(l->arena, blen);
    if (out == NULL || crypto_b64url_encode(payload, plen, out, blen, &plen) != 0 ||
        cursor_mac(l, out, plen, mac) != 0) {
        cJSON_free(payload);
        return NULL;
    }
    cJSON_free(payload);
    out[plen] = '.';
    if (crypto_b64url_encode(mac, sizeof mac, out + plen + 1, blen - plen - 1, NULL) != 0)
        return NULL;
    return out;
}

bool listq_cursor_open(const struct listq *l, const char *cur, struct eng_query *q, int order_type)
{
    const char *dot = strchr(cur, '.');
    uint8_t mac[CRYPTO_SHA256_LEN], got[CRYPTO_SHA256_LEN], *raw;
    size_t plen, glen, rlen;
    cJSON *arr, *v, *id;

    if (dot == NULL || strlen(cur) > LISTQ_CURSOR_MAX)
        return false;
    plen = (size_t)(dot - cur);
    if (crypto_b64url_decode(dot + 1, strlen(dot + 1), got, sizeof got, &glen) != 0 || glen != sizeof got ||
        cursor_mac(l, cur, plen, mac) != 0 || !crypto_ct_eq(mac, got, sizeof mac))
        return false;
    if ((raw = arena_alloc(l->arena, CRYPTO_B64_DECODED_MAX(plen) + 1)) == NULL ||
        crypto_b64url_decode(cur, plen, raw, CRYPTO_B64_DECODED_MAX(plen) + 1, &rlen) != 0)
        return false;
    arr = own(l->arena, json_parse((const char *)raw, rlen, NULL, NULL));
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != 2)
        return false;
    v = cJSON_GetArrayItem(arr, 0);
    id = cJSON_GetArrayItem(arr, 1);
    if (!cJSON_IsString(id) || !uuid_valid(id->valuestring))
        return false;
    if (!cJSON_IsNull(v) &&
        !((order_type == ENG_FT_STRING || order_type == ENG_FT_TEXT) ? cJSON_IsString(v)
          : order_type == ENG_FT_BOOLEAN                              ? cJSON_IsBool(v)
                                                                      : cJSON_IsNumber(v)))
        return false;
    q->has_after = true;
    q->after_value = v;
    snprintf(q->after_id, sizeof q->after_id, "%s", id->valuestring);
    return true;
}

const char *listq_parse(const struct listq *l, struct eng_query *q, int64_t *limit, int64_t limit_max)
{
    const char *cursor = NULL, *why;
    int order_type;

    snprintf(q->order, sizeof q->order, "id");
    for (size_t i = 0; i < l->qs->n; i++) {
        const char *k = l->qs->p[i].key, *v = l->qs->p[i].value;

        if (strcmp(k, "limit") == 0) {
            char *end;
            long long n = strtoll(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 || n > limit_max)
                return arena_printf(l->arena, "limit must be an integer from 1 to %lld", (long long)limit_max);
            *limit = n;
        } else if (strcmp(k, "cursor") == 0) {
            cursor = v;
        } else if (strcmp(k, "order") == 0) {
            if ((why = listq_order(v, q)) != NULL)
                return why;
        } else if ((why = listq_filter(l, k, v, q)) != NULL) {
            return why;
        }
    }
    if ((order_type = listq_order_type(l, q)) == 0)
        return "order names id, created_at, updated_at or a scalar field that is not pii";
    if (cursor != NULL && !listq_cursor_open(l, cursor, q, order_type))
        return "the cursor is not valid for this query";
    return NULL;
}
