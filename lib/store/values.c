/* values: the resources section's rules shared by both engines and the API
 * (store/values.h). Moved out of the memory engine, where they were first
 * written; the PostgreSQL engine and sql/0004_svc_records.sql follow them. */
#include "store/values.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "core/rfc3339.h"
#include "core/text.h"

/* The name kinds of core/text.h fit the buffers engine.h gives them, NUL included. */
_Static_assert(ENG_FIELD == TEXT_NAME_MAX + 1 && ENG_SLUG == TEXT_NAME_MAX + 1, "names: TEXT_NAME_MAX");
_Static_assert(ENG_ROLE == TEXT_ROLE_MAX + 1 && ENG_SLUG > TEXT_APP_MAX, "role and app names");

static const char *const TYPE_NAMES[] = {
    [ENG_FT_STRING] = "string", [ENG_FT_TEXT] = "text", [ENG_FT_INTEGER] = "integer",
    [ENG_FT_NUMBER] = "number", [ENG_FT_BOOLEAN] = "boolean", [ENG_FT_TIMESTAMP] = "timestamp",
    [ENG_FT_JSON] = "json", [ENG_FT_VECTOR] = "vector",
};

int eng_ftype_parse(const char *s, int *type, int *dim)
{
    *type = 0;
    *dim = 0;
    if (s == NULL)
        return ERR_INVAL;
    for (int t = ENG_FT_STRING; t < ENG_FT_VECTOR; t++)
        if (strcmp(s, TYPE_NAMES[t]) == 0) {
            *type = t;
            return 0;
        }
    if (strncmp(s, "vector(", 7) == 0) {
        const char *p = s + 7;
        long n = 0;

        if (*p < '1' || *p > '9')
            return ERR_INVAL;
        for (; *p >= '0' && *p <= '9' && n <= ENG_VECTOR_MAX; p++)
            n = n * 10 + (*p - '0');
        if (strcmp(p, ")") != 0 || n > ENG_VECTOR_MAX)
            return ERR_INVAL;
        *type = ENG_FT_VECTOR;
        *dim = (int)n;
        return 0;
    }
    return ERR_INVAL;
}

const char *eng_ftype_name(int type, int dim, char buf[24])
{
    if (type == ENG_FT_VECTOR)
        snprintf(buf, 24, "vector(%d)", dim);
    else
        snprintf(buf, 24, "%s", type >= ENG_FT_STRING && type <= ENG_FT_VECTOR ? TYPE_NAMES[type] : "?");
    return buf;
}

const struct eng_field *eng_resource_field(const struct eng_resource *r, const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, name) == 0)
            return &r->fields[i];
    return NULL;
}

static bool is_int(const cJSON *v)
{
    double d;

    if (!cJSON_IsNumber(v))
        return false;
    d = v->valuedouble;
    return isfinite(d) && d == floor(d) && d >= -(double)ENG_INT_MAX && d <= (double)ENG_INT_MAX;
}

int eng_value_check(const struct eng_field *f, const cJSON *v, const char **why)
{
    const cJSON *x;
    int n = 0;

    switch (f->type) {
    case ENG_FT_STRING:
    case ENG_FT_TEXT:
        if (!cJSON_IsString(v)) {
            *why = "must be a string";
            return ERR_INVAL;
        }
        if (strlen(v->valuestring) > ENG_STRING_MAX) {
            *why = "longer than 65536 bytes";
            return ERR_INVAL;
        }
        return 0;
    case ENG_FT_INTEGER:
        *why = "must be an integer within ±9007199254740991";
        return is_int(v) ? 0 : ERR_INVAL;
    case ENG_FT_TIMESTAMP:
        *why = "must be an RFC 3339 time (2026-01-31T12:00:00Z) or unix seconds (0 to 253402300799)";
        return is_int(v) && v->valuedouble >= 0 && v->valuedouble <= 253402300799.0 ? 0 : ERR_INVAL;
    case ENG_FT_NUMBER:
        *why = "must be a number";
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? 0 : ERR_INVAL;
    case ENG_FT_BOOLEAN:
        *why = "must be true or false";
        return cJSON_IsBool(v) ? 0 : ERR_INVAL;
    case ENG_FT_JSON:
        return 0;
    case ENG_FT_VECTOR:
        *why = "must be an array of numbers of the vector's dimension";
        if (!cJSON_IsArray(v))
            return ERR_INVAL;
        cJSON_ArrayForEach(x, v) {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
                return ERR_INVAL;
            n++;
        }
        return n == f->dim ? 0 : ERR_INVAL;
    default:
        *why = "unknown type";
        return ERR_INVAL;
    }
}

static bool all_digits(const char *s, size_t max)
{
    size_t i = s[0] == '-' ? 1 : 0;

    if (s[i] == '\0' || strlen(s) > max)
        return false;
    for (; s[i] != '\0'; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static cJSON *from_string(const char *s, const struct eng_field *f, const char **why)
{
    char *end;
    double d;

    switch (f->type) {
    case ENG_FT_INTEGER:
        *why = "a string that is not an integer";
        if (!all_digits(s, 17))
            return NULL;
        d = strtod(s, &end);
        return fabs(d) <= (double)ENG_INT_MAX ? cJSON_CreateNumber(d) : NULL;
    case ENG_FT_NUMBER:
        *why = "a string that is not a number";
        if (s[0] == '\0' || isspace((unsigned char)s[0]) || strpbrk(s, "xXpPnNiI") != NULL)
            return NULL;
        d = strtod(s, &end);
        return *end == '\0' && isfinite(d) ? cJSON_CreateNumber(d) : NULL;
    case ENG_FT_BOOLEAN:
        *why = "a string other than \"true\" or \"false\"";
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
            return cJSON_CreateBool(s[0] == 't');
        return NULL;
    case ENG_FT_TIMESTAMP: {
        int64_t t = -1;
        *why = "a string that is not a timestamp (RFC 3339, 2026-01-31T12:00:00Z, or unix seconds)";
        if (!rfc3339_parse(s, &t) && all_digits(s, 12) && s[0] != '-')
            t = (int64_t)strtoll(s, NULL, 10);
        return t >= 0 && t <= RFC3339_MAX ? cJSON_CreateNumber((double)t) : NULL;
    }
    case ENG_FT_JSON:
        return cJSON_CreateString(s);
    default:
        *why = "a string cannot become that type";
        return NULL;
    }
}

static cJSON *to_string(const cJSON *v, int from, const char **why)
{
    char buf[64];

    switch (from) {
    case ENG_FT_INTEGER:
        snprintf(buf, sizeof buf, "%.0f", v->valuedouble);
        return cJSON_CreateString(buf);
    case ENG_FT_NUMBER:
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        return cJSON_CreateString(buf);
    case ENG_FT_BOOLEAN:
        return cJSON_CreateString(cJSON_IsTrue(v) ? "true" : "false");
    case ENG_FT_TIMESTAMP:
        rfc3339_format((int64_t)v->valuedouble, buf);
        return cJSON_CreateString(buf);
    case ENG_FT_JSON: {
        char *text;
        cJSON *out;
        if (cJSON_IsString(v))
            return cJSON_CreateString(v->valuestring);
        if ((text = json_print(v)) == NULL)
            return NULL;
        out = strlen(text) <= ENG_STRING_MAX ? cJSON_CreateString(text) : NULL;
        cJSON_free(text);
        return out;
    }
    default:
        break;
    }
    *why = "the value cannot become a string";
    return NULL;
}

cJSON *eng_value_cast(const cJSON *v, int from, int from_dim, const struct eng_field *f,
                      const char **why)
{
    const char *scratch;
    cJSON *out = NULL;

    (void)from_dim;
    if (why == NULL)
        why = &scratch;
    *why = "cannot cast";
    if (from == ENG_FT_STRING || from == ENG_FT_TEXT) {
        if (f->type == ENG_FT_STRING || f->type == ENG_FT_TEXT)
            return cJSON_Duplicate(v, true);
        out = from_string(v->valuestring, f, why);
    } else if (f->type == ENG_FT_STRING || f->type == ENG_FT_TEXT) {
        out = to_string(v, from, why);
    } else if (f->type == ENG_FT_JSON) {
        out = cJSON_Duplicate(v, true);
    } else if (from == ENG_FT_BOOLEAN && (f->type == ENG_FT_INTEGER || f->type == ENG_FT_NUMBER)) {
        out = cJSON_CreateNumber(cJSON_IsTrue(v) ? 1 : 0);
    } else if (f->type == ENG_FT_BOOLEAN && (from == ENG_FT_INTEGER || from == ENG_FT_NUMBER)) {
        *why = "only 0 and 1 become booleans";
        if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1))
            out = cJSON_CreateBool(v->valuedouble == 1);
    } else if (from != ENG_FT_VECTOR || f->type == ENG_FT_VECTOR) {
        /* integer, number, timestamp, json, vector: the value must already be one of the new type */
        out = cJSON_Duplicate(v, true);
    }
    if (out != NULL && eng_value_check(f, out, why) != 0) {
        cJSON_Delete(out);
        out = NULL;
    }
    return out;
}

void eng_record_cleanup(struct eng_record *rec)
{
    if (rec == NULL)
        return;
    cJSON_Delete(rec->data);
    cJSON_Delete(rec->bidx);
    rec->data = rec->bidx = NULL;
}

/* A sealed pii value: base64url of nonce, ciphertext and tag, so somewhat
 * longer than the plaintext's cap. */
#define ENG_SEALED_MAX (4u * ENG_STRING_MAX)

int eng_record_fits(const struct eng_resource *def, const struct eng_record *rec, char why[128])
{
    const cJSON *v;
    const char *reason;

    if (!cJSON_IsObject(rec->data) || (rec->bidx != NULL && !cJSON_IsObject(rec->bidx))) {
        err_set(why, "record data must be an object");
        return ERR_INVAL;
    }
    cJSON_ArrayForEach(v, rec->data) {
        const struct eng_field *f = eng_resource_field(def, v->string);

        if (f == NULL) {
            err_set(why, "no field %.64s", v->string);
            return ERR_INVAL;
        }
        if (cJSON_IsNull(v))
            continue;
        if (f->pii) {
            const cJSON *h = rec->bidx != NULL ? cJSON_GetObjectItemCaseSensitive(rec->bidx, f->name) : NULL;
            if (!cJSON_IsString(v) || !cJSON_IsString(h) || strlen(v->valuestring) > ENG_SEALED_MAX) {
                err_set(why, "pii field %s needs its sealed value and index", f->name);
                return ERR_INVAL;
            }
        } else if (eng_value_check(f, v, &reason) != 0) {
            err_set(why, "field %s: %s", f->name, reason);
            return ERR_INVAL;
        }
    }
    for (int i = 0; i < def->nfields; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(rec->data, def->fields[i].name);
        if (def->fields[i].required && (x == NULL || cJSON_IsNull(x))) {
            err_set(why, "field %s is required", def->fields[i].name);
            return ERR_INVAL;
        }
    }
    return 0;
}

bool eng_name_valid(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap && text_ident_valid(s, TEXT_NAME_MAX);
}

bool eng_resource_valid(const struct eng_resource *d)
{
    if (!text_ident_valid(d->service, TEXT_NAME_MAX) || !eng_name_valid(d->name, sizeof d->name) ||
        d->nfields < 0 || d->nfields > ENG_MAX_FIELDS || d->expire_after < 0 ||
        memchr(d->views, 0, sizeof d->views) == NULL)
        return false;
    for (int i = 0; i < d->nfields; i++) {
        const struct eng_field *f = &d->fields[i];
        if (!eng_name_valid(f->name, sizeof f->name) || text_reserved(f->name) ||
            memchr(f->def, 0, sizeof f->def) == NULL ||
            f->type < ENG_FT_STRING || f->type > ENG_FT_VECTOR ||
            (f->type == ENG_FT_VECTOR) != (f->dim > 0) || f->dim > ENG_VECTOR_MAX ||
            f->metric < 0 || f->metric > ENG_METRIC_INNER || (f->metric != 0 && f->type != ENG_FT_VECTOR) ||
            (f->pii && f->type != ENG_FT_STRING && f->type != ENG_FT_TEXT) || (f->pii && f->def[0]))
            return false;
        for (int j = 0; j < i; j++)
            if (strcmp(d->fields[j].name, f->name) == 0)
                return false;
    }
    return true;
}
