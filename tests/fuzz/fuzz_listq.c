/* libFuzzer harness for the records list's query language (lib/store/listq.c:
 * filters field=op.value, order=, the signed keyset cursor) over a fixed
 * resource of every field type, read as GET /v1/svc/{s}/{r} reads a query
 * string (query_parse, then listq_parse). The first three bytes steer the
 * cursor checks; the rest is the query string. It checks:
 *   - what listq_parse accepts is typed data: each filter names a column,
 *     with a value of the column's type (in: 1..100 of them; is: null or a
 *     boolean; pii: eq on a 64-hex blind index), an order that can be ordered
 *     by, a limit within its bounds;
 *   - a cursor in the input never opens: it is signed with a secret the
 *     client does not have;
 *   - a cursor made for the accepted query opens on the same query (whatever
 *     else the input put in it) to the record it was made after, and not
 *     once edited (bytes 0..2: where and what), nor for another tenant. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/uuid.h"
#include "security/crypto.h"
#include "store/listq.h"
#include "store/values.h"

#define BIND "0190f6e4-8c1a-7d2b-9e3f-4a5b6c7d8e9f\ncrm\ndeals\n1\n"
#define OTHER_BIND "0190f6e4-8c1a-7d2b-9e3f-4a5b6c7d8e90\ncrm\ndeals\n1\n"
#define LAST_ID "0190f6e4-8c1a-7d2b-9e3f-000000000042"

static struct eng_resource res;
static struct arena *arena;
static const uint8_t secret[CRYPTO_KEY_LEN] = "tessera fuzz cursor secret 00001";

static void check(int ok)
{
    if (!ok)
        abort();
}

static void add(const char *name, const char *type, bool pii)
{
    struct eng_field *f = &res.fields[res.nfields++];

    snprintf(f->name, sizeof f->name, "%s", name);
    check(eng_ftype_parse(type, &f->type, &f->dim) == 0);
    f->pii = pii;
}

static int bidx(void *ctx, const char *field, const char *value, char hex[ENG_HASH])
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    char buf[256];

    (void)ctx;
    snprintf(buf, sizeof buf, "%s\n%.200s", field, value);
    check(crypto_hmac_sha256(secret, sizeof secret, buf, strlen(buf), mac) == 0);
    check(crypto_hex_encode(mac, sizeof mac, hex, ENG_HASH) == 0);
    return 0;
}

static void init(void)
{
    snprintf(res.service, sizeof res.service, "crm");
    snprintf(res.name, sizeof res.name, "deals");
    add("stage", "string", false);
    add("notes", "text", false);
    add("amount", "number", false);
    add("count", "integer", false);
    add("won", "boolean", false);
    add("closed", "timestamp", false);
    add("email", "string", true);
    add("meta", "json", false);
    add("emb", "vector(3)", false);
    check(eng_resource_valid(&res));
    check((arena = arena_new(64 * 1024)) != NULL);
}

static void filters_hold(const struct eng_query *q)
{
    check(q->nfilters <= ENG_MAX_FILTERS);
    for (size_t i = 0; i < q->nfilters; i++) {
        const struct eng_filter *fl = &q->filters[i];
        struct eng_field sys;
        const struct eng_field *f = listq_column(&res, fl->field, &sys);
        const cJSON *x;
        const char *why;
        int n = 0;

        check(f != NULL && fl->value != NULL && fl->op >= ENG_OP_EQ && fl->op <= ENG_OP_IS);
        if (fl->op == ENG_OP_IS) {
            check(cJSON_IsNull(fl->value) || (cJSON_IsBool(fl->value) && f->type == ENG_FT_BOOLEAN));
        } else if (f->pii) {
            check(fl->op == ENG_OP_EQ && cJSON_IsString(fl->value) && strlen(fl->value->valuestring) == 64);
        } else if (fl->op == ENG_OP_IN) {
            check(cJSON_IsArray(fl->value));
            cJSON_ArrayForEach(x, fl->value) {
                check(eng_value_check(f, x, &why) == 0);
                n++;
            }
            check(n >= 1 && n <= ENG_IN_MAX);
        } else {
            check(listq_orderable(f->type) && eng_value_check(f, fl->value, &why) == 0);
            check(fl->op != ENG_OP_LIKE || f->type == ENG_FT_STRING || f->type == ENG_FT_TEXT);
        }
    }
}

/* The query as a string again, with cursor=c in place of any cursor. */
static char *with_cursor(const struct query *qs, const char *c)
{
    size_t cap = 3 * (strlen("cursor") + strlen(c)) + 8, n = 0;
    char *out;

    for (size_t i = 0; i < qs->n; i++)
        cap += 3 * (strlen(qs->p[i].key) + strlen(qs->p[i].value)) + 2;
    check((out = arena_alloc(arena, cap)) != NULL);
    for (size_t i = 0; i <= qs->n; i++) {
        const char *k = i < qs->n ? qs->p[i].key : "cursor", *v = i < qs->n ? qs->p[i].value : c;

        if (i < qs->n && strcmp(k, "cursor") == 0)
            continue;
        if (n > 0)
            out[n++] = '&';
        for (int part = 0; part < 2; part++) {
            for (const unsigned char *s = (const unsigned char *)(part ? v : k); *s; s++)
                n += (size_t)snprintf(out + n, cap - n, "%%%02X", *s);
            if (part == 0)
                out[n++] = '=';
        }
    }
    out[n] = '\0';
    return out;
}

/* A cursor resumes after last's value of the order, or null when it has none. */
static void after_is(const cJSON *v, const struct eng_record *last, const char *order)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(last->data, order);

    if (strcmp(order, "id") == 0)
        check(cJSON_IsString(v) && strcmp(v->valuestring, last->id) == 0);
    else if (strcmp(order, "created_at") == 0 || strcmp(order, "updated_at") == 0)
        check(cJSON_IsNumber(v) && v->valuedouble == (double)(order[0] == 'c' ? last->created_at : last->updated_at));
    else if (want != NULL)
        check(cJSON_Compare(v, want, true));
    else
        check(cJSON_IsNull(v));
}

static void cursors(const struct listq *l, const struct eng_query *q, const uint8_t *edit)
{
    struct eng_record last = { .id = LAST_ID, .created_at = 1767225600, .updated_at = 1767229200 };
    struct eng_query q2;
    struct query qs2;
    struct listq l2 = *l;
    const char *made, *why;
    char *edited;
    int64_t limit = 20;
    size_t len;

    last.data = cJSON_Parse("{\"stage\":\"won\",\"notes\":\"n\",\"amount\":12.5,\"count\":7,\"won\":true,"
                            "\"closed\":1767225600}");
    check(last.data != NULL);
    made = listq_cursor_make(l, &last, q->order);
    check(made != NULL);

    /* the same query with the cursor opens after `last` (unless the cursor
     * is one pair too many for a query string) */
    if (query_parse(arena, with_cursor(l->qs, made), &qs2) == ERR_TOOBIG)
        goto out;
    l2.qs = &qs2;
    memset(&q2, 0, sizeof q2);
    why = listq_parse(&l2, &q2, &limit, 100);
    check(why == NULL && q2.has_after && strcmp(q2.after_id, LAST_ID) == 0);
    after_is(q2.after_value, &last, q->order);

    /* another tenant's list does not take it */
    l2.bind = OTHER_BIND;
    memset(&q2, 0, sizeof q2);
    check(listq_parse(&l2, &q2, &limit, 100) != NULL && !q2.has_after);

    /* nor does an edited one */
    len = strlen(made);
    check((edited = arena_strdup(arena, made)) != NULL);
    edited[edit[0] % len] = (char)(edit[1] ? edit[1] : 'A');
    if (edit[2] & 1)
        edited[len - 1 - edit[2] % (len < 8 ? len : 8)] ^= 0x01;
    if (strcmp(edited, made) != 0) {
        l2.bind = BIND;
        memset(&q2, 0, sizeof q2);
        check(!listq_cursor_open(&l2, edited, &q2, listq_order_type(&l2, q)) && !q2.has_after);
    }
out:
    cJSON_Delete(last.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct listq l = { .res = &res, .bidx = bidx, .secret = secret, .bind = BIND };
    struct eng_query q;
    struct query qs;
    const char *why;
    int64_t limit = 20;
    char *text;

    if (!ready) {
        init();
        ready = 1;
    }
    if (size < 3 || size > 8192)
        return 0;
    l.arena = arena;
    check((text = arena_strndup(arena, (const char *)data + 3, size - 3)) != NULL);
    if (query_parse(arena, text, &qs) != 0)
        goto out;
    l.qs = &qs;
    memset(&q, 0, sizeof q);
    why = listq_parse(&l, &q, &limit, 100);
    if (why != NULL) {
        check(why[0] != '\0');
        goto out;
    }
    check(!q.has_after); /* no client can sign a cursor */
    check(limit >= 1 && limit <= 100 && listq_order_type(&l, &q) != 0);
    filters_hold(&q);
    cursors(&l, &q, data);
out:
    arena_reset(arena);
    return 0;
}
