/* libFuzzer harness for the value rules records are checked with
 * (lib/store/values.c). The first byte picks, the rest is a JSON document
 * read as a request body is (json_parse under the API's limits):
 *   bit 0x02 clear: a record's data against a fixed schema of every type
 *      (a required string, a pii email, vector(3), …), with a blind index
 *      object when bit 0x01 is set. eng_record_fits must hold to what it
 *      says: whatever it passes has only known fields, each null or of its
 *      type (pii: sealed text with its index), the required ones present.
 *      Every member is then checked against every field type, and each value
 *      of a type is cast to every other: a cast either fails or gives a value
 *      of the target type, and a scalar written as a string reads back as
 *      the same value (what a schema change from integer to string and back
 *      does to stored records).
 *   bit 0x02 set: a schema {"name": "type"}: each type name that parses
 *      prints back as itself, and eng_resource_valid judges the result. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "store/values.h"

static struct eng_resource def, scratch;
/* cast targets: every field type once, and a vector of another dimension */
static struct eng_field targets[ENG_FT_VECTOR + 1];

static void check(int ok)
{
    if (!ok)
        abort();
}

static void add(struct eng_resource *r, const char *name, const char *type, bool required, bool pii)
{
    struct eng_field *f = &r->fields[r->nfields++];

    snprintf(f->name, sizeof f->name, "%s", name);
    check(eng_ftype_parse(type, &f->type, &f->dim) == 0);
    f->required = required;
    f->pii = pii;
}

static void init(void)
{
    snprintf(def.service, sizeof def.service, "crm");
    snprintf(def.name, sizeof def.name, "contacts");
    def.version = 1;
    add(&def, "name", "string", true, false);
    add(&def, "email", "string", false, true);
    add(&def, "notes", "text", false, false);
    add(&def, "count", "integer", false, false);
    add(&def, "amount", "number", false, false);
    add(&def, "active", "boolean", false, false);
    add(&def, "seen", "timestamp", false, false);
    add(&def, "meta", "json", false, false);
    add(&def, "emb", "vector(3)", false, false);
    check(eng_resource_valid(&def));
    for (int t = ENG_FT_STRING; t <= ENG_FT_VECTOR; t++) {
        targets[t - 1].type = t;
        targets[t - 1].dim = t == ENG_FT_VECTOR ? 3 : 0;
        snprintf(targets[t - 1].name, sizeof targets[t - 1].name, "t%d", t);
    }
    targets[ENG_FT_VECTOR].type = ENG_FT_VECTOR;
    targets[ENG_FT_VECTOR].dim = 2;
    snprintf(targets[ENG_FT_VECTOR].name, sizeof targets[ENG_FT_VECTOR].name, "v2");
}

static bool scalar(int type)
{
    return type == ENG_FT_INTEGER || type == ENG_FT_NUMBER || type == ENG_FT_BOOLEAN || type == ENG_FT_TIMESTAMP;
}

static bool same(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble == b->valuedouble;
    return cJSON_Compare(a, b, true);
}

/* v, a value of f's type, written as a string and read back. */
static void string_round_trip(const cJSON *v, const struct eng_field *f)
{
    const struct eng_field *str = &targets[ENG_FT_STRING - 1];
    const char *why = NULL;
    cJSON *s, *back;

    if (!scalar(f->type))
        return;
    s = eng_value_cast(v, f->type, f->dim, str, &why);
    check(s != NULL && cJSON_IsString(s));
    back = eng_value_cast(s, ENG_FT_STRING, 0, f, &why);
    check(back != NULL && same(v, back));
    cJSON_Delete(back);
    cJSON_Delete(s);
}

static void casts(const cJSON *v)
{
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        const struct eng_field *from = &targets[i];
        const char *why = NULL;

        if (cJSON_IsNull(v) || eng_value_check(from, v, &why) != 0) {
            check(cJSON_IsNull(v) || (why != NULL && why[0] != '\0'));
            continue;
        }
        string_round_trip(v, from);
        for (size_t j = 0; j < sizeof targets / sizeof *targets; j++) {
            const struct eng_field *to = &targets[j];
            cJSON *out;

            why = NULL;
            out = eng_value_cast(v, from->type, from->dim, to, &why);
            if (out == NULL) {
                check(why != NULL && why[0] != '\0');
                continue;
            }
            check(eng_value_check(to, out, &why) == 0);
            string_round_trip(out, to);
            cJSON_Delete(out);
        }
    }
}

static void record(cJSON *data, bool with_bidx)
{
    struct eng_record rec = { .data = data };
    const cJSON *v;
    char why[128];
    int rc;

    if (with_bidx)
        rec.bidx = cJSON_Parse("{\"email\":\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"}");
    memset(why, 0x5a, sizeof why);
    rc = eng_record_fits(&def, &rec, why);
    check(rc == 0 || rc == ERR_INVAL);
    if (rc != 0) {
        check(memchr(why, '\0', sizeof why) != NULL && why[0] != '\0');
    } else {
        check(cJSON_IsObject(data));
        cJSON_ArrayForEach(v, data) {
            const struct eng_field *f = eng_resource_field(&def, v->string);
            const char *reason;

            check(f != NULL);
            if (cJSON_IsNull(v))
                continue;
            if (f->pii)
                check(cJSON_IsString(v) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(rec.bidx, f->name)));
            else
                check(eng_value_check(f, v, &reason) == 0);
        }
        for (int i = 0; i < def.nfields; i++)
            if (def.fields[i].required)
                check(!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(data, def.fields[i].name)) &&
                      cJSON_GetObjectItemCaseSensitive(data, def.fields[i].name) != NULL);
    }
    if (cJSON_IsObject(data) || cJSON_IsArray(data)) {
        cJSON_ArrayForEach(v, data)
            casts(v);
    }
    casts(data);
    cJSON_Delete(rec.bidx);
}

static void schema(const cJSON *root)
{
    const cJSON *m;

    memset(&scratch, 0, sizeof scratch);
    snprintf(scratch.service, sizeof scratch.service, "crm");
    snprintf(scratch.name, sizeof scratch.name, "things");
    cJSON_ArrayForEach(m, root) {
        struct eng_field *f;
        char name[24];
        int type, dim, t2, d2;

        if (!cJSON_IsString(m) || m->string == NULL) /* an array's members have no names */
            continue;
        if (eng_ftype_parse(m->valuestring, &type, &dim) != 0) {
            check(type == 0 && dim == 0);
            continue;
        }
        check(type >= ENG_FT_STRING && type <= ENG_FT_VECTOR && dim >= 0 && dim <= ENG_VECTOR_MAX);
        check(strcmp(eng_ftype_name(type, dim, name), m->valuestring) == 0);
        check(eng_ftype_parse(name, &t2, &d2) == 0 && t2 == type && d2 == dim);
        if (scratch.nfields == ENG_MAX_FIELDS)
            break;
        f = &scratch.fields[scratch.nfields++];
        snprintf(f->name, sizeof f->name, "%s", m->string);
        f->type = type;
        f->dim = dim;
        f->pii = strncmp(m->string, "pii_", 4) == 0;
    }
    if (eng_resource_valid(&scratch))
        for (int i = 0; i < scratch.nfields; i++) {
            check(eng_name_valid(scratch.fields[i].name, sizeof scratch.fields[i].name));
            check(eng_resource_field(&scratch, scratch.fields[i].name) == &scratch.fields[i]);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct json_limits lim = { .max_depth = 16, .max_nodes = 2048 };
    static int ready;
    cJSON *root;

    if (!ready) {
        init();
        ready = 1;
    }
    if (size == 0)
        return 0;
    root = json_parse((const char *)data + 1, size - 1, &lim, NULL);
    if (root == NULL)
        return 0;
    if (data[0] & 0x02)
        schema(root);
    else
        record(root, data[0] & 0x01);
    cJSON_Delete(root);
    return 0;
}
