/* test_engine_mem_records: the memory engine's resources and records ops:
 * schema versions, casts that succeed or refuse without changing anything,
 * renames, record CRUD with versions, the outbox, separation of orgs, modes
 * and services, filters, order and keyset, expiry, sealed pii bytes at rest,
 * and the value helpers (strict casts). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "security/crypto.h"
#include "store/mem/engine_mem.h"
#include "store/mem/shm.h"
#include "core/uuid.h"

struct fx {
    struct shm_region *r;
    struct engine *e;
    struct eng_org a, b;
    struct eng_scope sa, sb, sa_live;
    struct eng_resource *res;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[128] = "";

    assert_non_null(f);
    f->r = unit_region(16u << 20);
    assert_int_equal(engine_mem_prepare(f->r, err), 0);
    assert_non_null(f->e = engine_mem_new(f->r, err));
    assert_non_null(f->res = calloc(1, sizeof *f->res));
    f->a = unit_org("a", false);
    f->a.platform = true; /* schema changes are made from the platform's org */
    f->b = unit_org("b", false);
    OK(f->e, engine_begin(f->e, NULL));
    OK(f->e, engine_org_create(f->e, &f->a));
    OK(f->e, engine_org_create(f->e, &f->b));
    OK(f->e, engine_commit(f->e));
    memcpy(f->sa.org_id, f->a.id, ENG_ID);
    memcpy(f->sb.org_id, f->b.id, ENG_ID);
    f->sa_live = f->sa;
    f->sa_live.mode = ENG_MODE_LIVE;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char err[128] = "";

    assert_int_equal(shm_lock(f->r), 0);
    if (shm_check(f->r, err) != 0)
        fail_msg("shm_check: %s", err);
    shm_unlock(f->r);
    engine_free(f->e);
    shm_destroy(f->r);
    free(f->res);
    free(f);
    return 0;
}

/* A definition from "name:type[:flags]" specs; flags: r(equired) p(ii). */
static void define(struct eng_resource *res, const char *service, const char *name, const char *const *specs)
{
    memset(res, 0, sizeof *res);
    snprintf(res->service, sizeof res->service, "%s", service);
    snprintf(res->name, sizeof res->name, "%s", name);
    for (; *specs != NULL; specs++) {
        struct eng_field *fd = &res->fields[res->nfields++];
        char buf[128], *type, *flags;

        snprintf(buf, sizeof buf, "%s", *specs);
        type = strchr(buf, ':');
        *type++ = '\0';
        flags = strchr(type, ':');
        if (flags != NULL)
            *flags++ = '\0';
        snprintf(fd->name, sizeof fd->name, "%s", buf);
        assert_int_equal(eng_ftype_parse(type, &fd->type, &fd->dim), 0);
        fd->required = flags != NULL && strchr(flags, 'r') != NULL;
        fd->pii = flags != NULL && strchr(flags, 'p') != NULL;
    }
}

static void record(struct eng_record *rec, const char *json)
{
    memset(rec, 0, sizeof *rec);
    assert_int_equal(uuid_v7(rec->id), 0);
    rec->created_at = rec->updated_at = 1000;
    assert_non_null(rec->data = cJSON_Parse(json));
    assert_non_null(rec->bidx = cJSON_CreateObject());
}

/* The record's data as text (for comparisons). */
static char *get_text(struct fx *f, const struct eng_scope *s, const char *res, const char *id)
{
    struct eng_record out;
    char *t;

    OK(f->e, engine_record_get(f->e, s, "crm", res, id, 2000, &out));
    t = cJSON_PrintUnformatted(out.data);
    eng_record_cleanup(&out);
    return t;
}

static void test_schema_versions_and_list(void **state)
{
    struct fx *f = *state;
    struct eng_resource *list = calloc(4, sizeof *list);
    size_t n = 0;

    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "zeta", (const char *const[]){"a:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "crm", "alpha", (const char *const[]){"a:string", "v:vector(3)", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 200, NULL, NULL));
    OK(f->e, engine_resource_get(f->e, &f->sa, "crm", "alpha", f->res));
    assert_int_equal(f->res->version, 2);
    assert_int_equal(f->res->updated_at, 200);
    assert_int_equal(f->res->fields[1].dim, 3);
    OK(f->e, engine_resource_list(f->e, &f->sa, "crm", list, 4, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alpha");
    assert_string_equal(list[1].name, "zeta");
    /* schemas are per (service, mode): live and another service have none */
    EXPECT(f->e, ERR_NOTFOUND, engine_resource_get(f->e, &f->sa, "erp", "alpha", f->res));
    OK(f->e, engine_commit(f->e));
    OK(f->e, engine_begin(f->e, &f->sa_live));
    EXPECT(f->e, ERR_NOTFOUND, engine_resource_get(f->e, &f->sa_live, "crm", "alpha", f->res));
    OK(f->e, engine_commit(f->e));
    /* a rolled-back change leaves nothing */
    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "ghost", (const char *const[]){"a:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    engine_rollback(f->e);
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_NOTFOUND, engine_resource_get(f->e, &f->sa, "crm", "ghost", f->res));
    /* malformed definitions */
    define(f->res, "crm", "bad", (const char *const[]){"a:string", "a:integer", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "crm", "Bad", (const char *const[]){"a:string", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "crm", "bad", (const char *const[]){"a:integer:p", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    OK(f->e, engine_commit(f->e));
    free(list);
}

/* A schema is every org's: only the platform's org changes it, and its audit
 * entry is part of the same unit of work. */
static void test_schema_changes_are_the_platform_orgs(void **state)
{
    struct fx *f = *state;
    struct eng_audit a = {0}, got[4];
    size_t n = 9;

    OK(f->e, engine_begin(f->e, &f->sb));
    define(f->res, "crm", "owned", (const char *const[]){"a:string", NULL});
    EXPECT(f->e, ERR_FORBIDDEN, engine_resource_put(f->e, &f->sb, f->res, NULL, 0, 100, NULL, NULL));
    engine_rollback(f->e);

    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_NOTFOUND, engine_resource_get(f->e, &f->sa, "crm", "owned", f->res));
    assert_int_equal(uuid_v7(a.id), 0);
    memcpy(a.org_id, f->a.id, ENG_ID);
    snprintf(a.action, sizeof a.action, "schema.put");
    snprintf(a.meta, sizeof a.meta, "{}");
    a.created_at = 100;
    define(f->res, "crm", "owned", (const char *const[]){"a:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, &a, NULL));
    engine_rollback(f->e); /* the change and its entry go back together */
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_NOTFOUND, engine_resource_get(f->e, &f->sa, "crm", "owned", f->res));
    OK(f->e, engine_audit_list(f->e, &f->sa, NULL, got, 4, &n));
    assert_int_equal(n, 0);
    define(f->res, "crm", "owned", (const char *const[]){"a:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, &a, NULL));
    OK(f->e, engine_commit(f->e));
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_audit_list(f->e, &f->sa, NULL, got, 4, &n));
    assert_int_equal(n, 1);
    assert_string_equal(got[0].id, a.id);
    assert_string_equal(got[0].action, "schema.put");
    OK(f->e, engine_commit(f->e));
}

static void test_crud_versions_outbox_and_isolation(void **state)
{
    struct fx *f = *state;
    struct eng_record rec, got;
    struct eng_outbox ob[8];
    size_t n = 0;
    char *t;

    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "companies", (const char *const[]){"name:string:r", "size:integer", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    record(&rec, "{\"name\":\"Initech\",\"size\":5}");
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "companies", &rec));
    EXPECT(f->e, ERR_CONFLICT, engine_record_create(f->e, &f->sa, "crm", "companies", &rec));
    OK(f->e, engine_record_get(f->e, &f->sa, "crm", "companies", rec.id, 2000, &got));
    assert_int_equal(got.version, 1);
    assert_int_equal(cJSON_GetObjectItem(got.data, "size")->valuedouble, 5);
    eng_record_cleanup(&got);
    cJSON_ReplaceItemInObject(rec.data, "size", cJSON_CreateNumber(6));
    rec.updated_at = 1500;
    EXPECT(f->e, ERR_PRECONDITION, engine_record_update(f->e, &f->sa, "crm", "companies", &rec, 7));
    OK(f->e, engine_record_update(f->e, &f->sa, "crm", "companies", &rec, 1));
    assert_int_equal(rec.version, 2);
    assert_int_equal(rec.created_at, 1000);
    t = get_text(f, &f->sa, "companies", rec.id);
    assert_string_equal(t, "{\"name\":\"Initech\",\"size\":6}");
    cJSON_free(t);
    /* bad data: unknown field, wrong type, required missing */
    {
        struct eng_record bad;
        record(&bad, "{\"name\":\"x\",\"nope\":1}");
        EXPECT(f->e, ERR_INVAL, engine_record_create(f->e, &f->sa, "crm", "companies", &bad));
        eng_record_cleanup(&bad);
        record(&bad, "{\"name\":\"x\",\"size\":1.5}");
        EXPECT(f->e, ERR_INVAL, engine_record_create(f->e, &f->sa, "crm", "companies", &bad));
        eng_record_cleanup(&bad);
        record(&bad, "{\"size\":1}");
        EXPECT(f->e, ERR_INVAL, engine_record_create(f->e, &f->sa, "crm", "companies", &bad));
        eng_record_cleanup(&bad);
    }
    OK(f->e, engine_commit(f->e));

    /* another org: not found by id, nothing listed, cannot update or delete */
    OK(f->e, engine_begin(f->e, &f->sb));
    EXPECT(f->e, ERR_NOTFOUND, engine_record_get(f->e, &f->sb, "crm", "companies", rec.id, 2000, &got));
    EXPECT(f->e, ERR_NOTFOUND, engine_record_update(f->e, &f->sb, "crm", "companies", &rec, 0));
    EXPECT(f->e, ERR_NOTFOUND, engine_record_delete(f->e, &f->sb, "crm", "companies", rec.id, 0, 2000));
    {
        struct eng_query q = {.now = 2000};
        struct eng_record out[4];
        OK(f->e, engine_record_list(f->e, &f->sb, "crm", "companies", &q, out, 4, &n));
        assert_int_equal(n, 0);
    }
    OK(f->e, engine_outbox_list(f->e, &f->sb, "crm", 0, ob, 8, &n));
    assert_int_equal(n, 0);
    OK(f->e, engine_commit(f->e));

    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_PRECONDITION, engine_record_delete(f->e, &f->sa, "crm", "companies", rec.id, 1, 2000));
    OK(f->e, engine_record_delete(f->e, &f->sa, "crm", "companies", rec.id, 2, 2000));
    EXPECT(f->e, ERR_NOTFOUND, engine_record_get(f->e, &f->sa, "crm", "companies", rec.id, 2000, &got));
    OK(f->e, engine_outbox_list(f->e, &f->sa, "crm", 0, ob, 8, &n));
    assert_int_equal(n, 3);
    assert_string_equal(ob[0].op, "create");
    assert_string_equal(ob[1].op, "update");
    assert_string_equal(ob[2].op, "delete");
    assert_int_equal(ob[1].version, 2);
    assert_string_equal(ob[2].record_id, rec.id);
    assert_true(ob[0].seq < ob[1].seq && ob[1].seq < ob[2].seq);
    OK(f->e, engine_outbox_list(f->e, &f->sa, "crm", ob[1].seq, ob, 8, &n));
    assert_int_equal(n, 1);
    OK(f->e, engine_commit(f->e));

    /* a write that rolls back leaves no record and no outbox entry */
    OK(f->e, engine_begin(f->e, &f->sa));
    eng_record_cleanup(&rec);
    record(&rec, "{\"name\":\"Rolled\"}");
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "companies", &rec));
    engine_rollback(f->e);
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_NOTFOUND, engine_record_get(f->e, &f->sa, "crm", "companies", rec.id, 2000, &got));
    OK(f->e, engine_outbox_list(f->e, &f->sa, "crm", 0, ob, 8, &n));
    assert_int_equal(n, 3);
    OK(f->e, engine_commit(f->e));
    eng_record_cleanup(&rec);
}

static void test_schema_casts_renames_and_refusals(void **state)
{
    struct fx *f = *state;
    struct eng_record r1, r2;
    struct eng_schema_conflict why;
    struct eng_rename ren = {"title", "name"};
    char *t, bid[ENG_ID];

    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "evo", (const char *const[]){"title:string", "qty:string", "price:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    record(&r1, "{\"title\":\"a\",\"qty\":\"12\",\"price\":\"1.5\"}");
    record(&r2, "{\"title\":\"b\",\"qty\":\"7\",\"price\":\"2\"}");
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "evo", &r1));
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "evo", &r2));
    /* org b's record must cast too */
    OK(f->e, engine_commit(f->e));
    OK(f->e, engine_begin(f->e, &f->sb));
    {
        struct eng_record rb;
        record(&rb, "{\"title\":\"c\",\"qty\":\"x\"}");
        OK(f->e, engine_record_create(f->e, &f->sb, "crm", "evo", &rb));
        memcpy(bid, rb.id, ENG_ID);
        eng_record_cleanup(&rb);
    }
    OK(f->e, engine_commit(f->e));

    OK(f->e, engine_begin(f->e, &f->sa));
    /* qty → integer fails on org b's "x" only: counted, but neither its id
     * nor its value is named */
    define(f->res, "crm", "evo", (const char *const[]){"title:string", "qty:integer", "price:string", NULL});
    EXPECT(f->e, ERR_CONFLICT, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, &why));
    assert_string_equal(why.field, "qty");
    assert_int_equal(why.count, 1);
    assert_string_equal(why.record_id, "");
    assert_null(strstr(why.reason, "\"x\""));
    /* price → integer fails on our "1.5": named */
    define(f->res, "crm", "evo", (const char *const[]){"title:string", "qty:string", "price:integer", NULL});
    EXPECT(f->e, ERR_CONFLICT, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, &why));
    assert_string_equal(why.field, "price");
    assert_int_equal(why.count, 1);
    assert_string_equal(why.record_id, r1.id);
    /* a new required field without default while records exist */
    define(f->res, "crm", "evo", (const char *const[]){"title:string", "qty:string", "price:string", "x:string:r", NULL});
    EXPECT(f->e, ERR_CONFLICT, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, &why));
    assert_string_equal(why.field, "x");
    assert_int_equal(why.count, 3); /* both of org a's records, and org b's one */
    /* nothing changed, and the unit of work goes on */
    OK(f->e, engine_resource_get(f->e, &f->sa, "crm", "evo", f->res));
    assert_int_equal(f->res->version, 1);
    t = get_text(f, &f->sa, "evo", r1.id);
    assert_string_equal(t, "{\"title\":\"a\",\"qty\":\"12\",\"price\":\"1.5\"}");
    cJSON_free(t);
    /* price → number, title renamed to name, qty dropped */
    define(f->res, "crm", "evo", (const char *const[]){"name:string", "price:number", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, &ren, 1, 100, NULL, &why));
    t = get_text(f, &f->sa, "evo", r1.id);
    assert_string_equal(t, "{\"name\":\"a\",\"price\":1.5}");
    cJSON_free(t);
    t = get_text(f, &f->sa, "evo", r2.id);
    assert_string_equal(t, "{\"name\":\"b\",\"price\":2}");
    cJSON_free(t);
    OK(f->e, engine_resource_get(f->e, &f->sa, "crm", "evo", f->res));
    assert_int_equal(f->res->version, 2);
    /* a default fills a new field */
    define(f->res, "crm", "evo", (const char *const[]){"name:string", "price:number", "tier:integer:r", NULL});
    snprintf(f->res->fields[2].def, sizeof f->res->fields[2].def, "1");
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, &why));
    t = get_text(f, &f->sa, "evo", r2.id);
    assert_string_equal(t, "{\"name\":\"b\",\"price\":2,\"tier\":1}");
    cJSON_free(t);
    OK(f->e, engine_commit(f->e));
    OK(f->e, engine_begin(f->e, &f->sb));
    /* org b's record went through the same change */
    t = get_text(f, &f->sb, "evo", bid);
    assert_string_equal(t, "{\"name\":\"c\",\"tier\":1}");
    cJSON_free(t);
    engine_rollback(f->e);
    eng_record_cleanup(&r1);
    eng_record_cleanup(&r2);
}

static void test_list_filters_order_keyset_expiry(void **state)
{
    struct fx *f = *state;
    static const char *const rows[] = {
        "{\"s\":\"apple\",\"n\":1,\"b\":true}", "{\"s\":\"banana\",\"n\":2,\"b\":false}",
        "{\"s\":\"cherry\",\"n\":3,\"b\":true}", "{}", "{\"s\":\"apple pie\",\"n\":-5}",
    };
    struct eng_record rec, out[8];
    struct eng_query q;
    cJSON *v;
    size_t n;

    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "items", (const char *const[]){"s:string", "n:integer", "b:boolean", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    for (size_t i = 0; i < 5; i++) {
        record(&rec, rows[i]);
        if (i == 4)
            rec.expires_at = 1500;      /* expired for now = 2000 */
        OK(f->e, engine_record_create(f->e, &f->sa, "crm", "items", &rec));
        eng_record_cleanup(&rec);
    }
    /* n gte 1 and b is true → apple, cherry; ordered by n desc */
    memset(&q, 0, sizeof q);
    q.now = 2000;
    v = cJSON_CreateNumber(1);
    q.filters[0] = (struct eng_filter){"n", ENG_OP_GTE, v};
    q.filters[1] = (struct eng_filter){"b", ENG_OP_IS, cJSON_CreateTrue()};
    q.nfilters = 2;
    snprintf(q.order, sizeof q.order, "n");
    q.desc = true;
    OK(f->e, engine_record_list(f->e, &f->sa, "crm", "items", &q, out, 8, &n));
    assert_int_equal(n, 2);
    assert_string_equal(cJSON_GetObjectItem(out[0].data, "s")->valuestring, "cherry");
    assert_string_equal(cJSON_GetObjectItem(out[1].data, "s")->valuestring, "apple");
    eng_record_cleanup(&out[0]);
    /* keyset after cherry: apple only */
    q.has_after = true;
    q.after_value = cJSON_GetObjectItem(out[0].data, "n");
    cJSON *three = cJSON_CreateNumber(3);
    q.after_value = three;
    memcpy(q.after_id, out[0].id, ENG_ID);
    eng_record_cleanup(&out[1]);
    OK(f->e, engine_record_list(f->e, &f->sa, "crm", "items", &q, out, 8, &n));
    assert_int_equal(n, 1);
    assert_string_equal(cJSON_GetObjectItem(out[0].data, "s")->valuestring, "apple");
    eng_record_cleanup(&out[0]);
    cJSON_Delete(three);
    cJSON_Delete(v);
    cJSON_Delete((cJSON *)q.filters[1].value);
    /* like, and the expired "apple pie" never shows */
    memset(&q, 0, sizeof q);
    q.now = 2000;
    v = cJSON_CreateString("apple%");
    q.filters[0] = (struct eng_filter){"s", ENG_OP_LIKE, v};
    q.nfilters = 1;
    OK(f->e, engine_record_list(f->e, &f->sa, "crm", "items", &q, out, 8, &n));
    assert_int_equal(n, 1);
    eng_record_cleanup(&out[0]);
    q.now = 1000;
    OK(f->e, engine_record_list(f->e, &f->sa, "crm", "items", &q, out, 8, &n));
    assert_int_equal(n, 2);
    eng_record_cleanup(&out[0]);
    eng_record_cleanup(&out[1]);
    cJSON_Delete(v);
    /* order asc puts nulls last; a filter on no such field is refused */
    memset(&q, 0, sizeof q);
    q.now = 2000;
    snprintf(q.order, sizeof q.order, "n");
    OK(f->e, engine_record_list(f->e, &f->sa, "crm", "items", &q, out, 8, &n));
    assert_int_equal(n, 4);
    assert_null(cJSON_GetObjectItem(out[3].data, "n"));
    for (size_t i = 0; i < n; i++)
        eng_record_cleanup(&out[i]);
    snprintf(q.order, sizeof q.order, "nope");
    EXPECT(f->e, ERR_INVAL, engine_record_list(f->e, &f->sa, "crm", "items", &q, out, 8, &n));
    OK(f->e, engine_commit(f->e));
}

/* The caller seals pii; the region never holds the plaintext, and the sealed
 * value opens only with its own record's AAD. */
static void test_pii_is_not_plaintext_at_rest(void **state)
{
    struct fx *f = *state;
    struct crypto_keyring ring;
    struct eng_record rec, got;
    char dir[UNIT_PATH], path[UNIT_PATH + 16], err[128], aad[256], hex[ENG_HASH];
    const char *secret = "ann.secret@example.com";
    char *sealed = NULL;
    uint8_t *pt = NULL;
    size_t ptlen;

    snprintf(path, sizeof path, "%s/data.key", unit_tmpdir(dir, "records"));
    assert_int_equal(crypto_keyring_write_new(path, "k1"), 0);
    assert_int_equal(crypto_keyring_load(&ring, path, err), 0);
    assert_int_equal(unit_rmtree(dir), 0);
    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "contacts", (const char *const[]){"email:string:p", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    record(&rec, "{}");
    snprintf(aad, sizeof aad, "%s|crm|contacts|%s|email", f->a.id, rec.id);
    assert_int_equal(crypto_seal_text(&ring, aad, strlen(aad), secret, strlen(secret), &sealed), 0);
    assert_int_equal(crypto_blind_index(&ring, secret, hex), 0);
    cJSON_AddStringToObject(rec.data, "email", sealed);
    /* without its index a pii value is refused */
    EXPECT(f->e, ERR_INVAL, engine_record_create(f->e, &f->sa, "crm", "contacts", &rec));
    cJSON_AddStringToObject(rec.bidx, "email", hex);
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "contacts", &rec));
    {
        /* scan every byte of the region for the plaintext */
        uint64_t off = shm_root_get(f->r, "engine.rec");
        struct shm_stats st;
        const char *base;
        shm_stats(f->r, &st);
        base = (const char *)shm_ptr(f->r, off) - off;
        assert_null(memmem(base, st.size, secret, strlen(secret)));
        assert_non_null(memmem(base, st.size, sealed, strlen(sealed)));
    }
    {
        /* eq on the blind index finds it; other ops never match a pii field */
        struct eng_query q = {.now = 2000};
        struct eng_record out[2];
        size_t n;
        cJSON *h = cJSON_CreateString(hex);
        q.filters[0] = (struct eng_filter){"email", ENG_OP_EQ, h};
        q.nfilters = 1;
        OK(f->e, engine_record_list(f->e, &f->sa, "crm", "contacts", &q, out, 2, &n));
        assert_int_equal(n, 1);
        eng_record_cleanup(&out[0]);
        q.filters[0].op = ENG_OP_GTE;
        OK(f->e, engine_record_list(f->e, &f->sa, "crm", "contacts", &q, out, 2, &n));
        assert_int_equal(n, 0);
        cJSON_Delete(h);
    }
    OK(f->e, engine_record_get(f->e, &f->sa, "crm", "contacts", rec.id, 2000, &got));
    const char *stored = cJSON_GetObjectItem(got.data, "email")->valuestring;
    assert_int_equal(crypto_open_text(&ring, aad, strlen(aad), stored, strlen(stored), &pt, &ptlen), 0);
    assert_string_equal((char *)pt, secret);
    free(pt);
    /* moved to another record, it does not open */
    snprintf(aad, sizeof aad, "%s|crm|contacts|%s|email", f->b.id, rec.id);
    pt = NULL;
    assert_int_equal(crypto_open_text(&ring, aad, strlen(aad), stored, strlen(stored), &pt, &ptlen), ERR_INVAL);
    free(pt);
    OK(f->e, engine_commit(f->e));
    eng_record_cleanup(&got);
    eng_record_cleanup(&rec);
    free(sealed);
    crypto_keyring_cleanup(&ring);
}

/* A schema change too big for one section's undo log fails with ERR_NOSPACE,
 * spoils the unit of work, and leaves every record and the schema as they were. */
static void test_schema_change_past_the_undo_log_rolls_back_whole(void **state)
{
    struct fx *f = *state;
    struct shm_stats st;
    struct eng_record rec, got;
    char first[ENG_ID];
    int made = 0;

    assert_int_equal(shm_lock(f->r), 0);
    shm_stats(f->r, &st);
    shm_unlock(f->r);
    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "many", (const char *const[]){"k:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    OK(f->e, engine_commit(f->e));
    /* enough records that rewriting them all takes more undo entries than a section has */
    while ((size_t)made < st.undo_cap / 4) {
        OK(f->e, engine_begin(f->e, &f->sa));
        for (int i = 0; i < 200; i++, made++) {
            record(&rec, "{\"k\":\"7\"}");
            if (made == 0)
                memcpy(first, rec.id, ENG_ID);
            OK(f->e, engine_record_create(f->e, &f->sa, "crm", "many", &rec));
            eng_record_cleanup(&rec);
        }
        OK(f->e, engine_commit(f->e));
    }
    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "many", (const char *const[]){"k:integer", NULL});
    EXPECT(f->e, ERR_NOSPACE, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    EXPECT(f->e, ERR_INTERNAL, engine_resource_get(f->e, &f->sa, "crm", "many", f->res));
    EXPECT(f->e, ERR_NOSPACE, engine_commit(f->e));
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_resource_get(f->e, &f->sa, "crm", "many", f->res));
    assert_int_equal(f->res->version, 1);
    assert_int_equal(f->res->fields[0].type, ENG_FT_STRING);
    OK(f->e, engine_record_get(f->e, &f->sa, "crm", "many", first, 2000, &got));
    assert_string_equal(cJSON_GetObjectItem(got.data, "k")->valuestring, "7");
    eng_record_cleanup(&got);
    OK(f->e, engine_commit(f->e));
}

/* A worker killed after a schema change but before its commit: the next
 * unit of work finds the old schema and the old values. */
static void test_worker_killed_inside_a_schema_change_leaves_it_undone(void **state)
{
    struct fx *f = *state;
    struct eng_record rec;
    char *t;
    pid_t pid;

    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "k", (const char *const[]){"n:string", NULL});
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    record(&rec, "{\"n\":\"42\"}");
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "k", &rec));
    OK(f->e, engine_commit(f->e));
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[128];
        struct engine *ce = engine_mem_new(f->r, err);
        if (ce == NULL || engine_begin(ce, &f->sa) != 0)
            _exit(2);
        define(f->res, "crm", "k", (const char *const[]){"n:integer", NULL});
        if (ce->ops->resource_put(ce, &f->sa, f->res, NULL, 0, 100, NULL, NULL) != 0)
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    unit_wait_killed(pid);
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_resource_get(f->e, &f->sa, "crm", "k", f->res));
    assert_int_equal(f->res->version, 1);
    t = get_text(f, &f->sa, "k", rec.id);
    assert_string_equal(t, "{\"n\":\"42\"}");
    cJSON_free(t);
    OK(f->e, engine_commit(f->e));
    eng_record_cleanup(&rec);
}

static void cast_ok(int from, const char *in, const char *to, const char *want)
{
    struct eng_field fd = {0};
    cJSON *v = cJSON_Parse(in), *out;
    const char *why = NULL;
    char *text;

    assert_int_equal(eng_ftype_parse(to, &fd.type, &fd.dim), 0);
    out = eng_value_cast(v, from, 0, &fd, &why);
    if (want == NULL) {
        if (out != NULL)
            fail_msg("%s → %s cast, wanted a refusal", in, to);
        assert_non_null(why);
    } else {
        if (out == NULL)
            fail_msg("%s → %s refused: %s", in, to, why);
        text = cJSON_PrintUnformatted(out);
        assert_string_equal(text, want);
        cJSON_free(text);
    }
    cJSON_Delete(out);
    cJSON_Delete(v);
}

static void test_value_casts_are_strict(void **state)
{
    (void)state;
    cast_ok(ENG_FT_STRING, "\"12\"", "integer", "12");
    cast_ok(ENG_FT_STRING, "\"-3\"", "integer", "-3");
    cast_ok(ENG_FT_STRING, "\"1.5\"", "integer", NULL);
    cast_ok(ENG_FT_STRING, "\" 12\"", "integer", NULL);
    cast_ok(ENG_FT_STRING, "\"12abc\"", "integer", NULL);
    cast_ok(ENG_FT_STRING, "\"99999999999999999999\"", "integer", NULL);
    cast_ok(ENG_FT_STRING, "\"1.5\"", "number", "1.5");
    cast_ok(ENG_FT_STRING, "\"nan\"", "number", NULL);
    cast_ok(ENG_FT_STRING, "\"0x10\"", "number", NULL);
    cast_ok(ENG_FT_STRING, "\"true\"", "boolean", "true");
    cast_ok(ENG_FT_STRING, "\"yes\"", "boolean", NULL);
    cast_ok(ENG_FT_STRING, "\"2024-01-02T03:04:05Z\"", "timestamp", "1704164645");
    cast_ok(ENG_FT_STRING, "\"2024-13-02T03:04:05Z\"", "timestamp", NULL);
    cast_ok(ENG_FT_TIMESTAMP, "1704164645", "string", "\"2024-01-02T03:04:05Z\"");
    cast_ok(ENG_FT_INTEGER, "12", "string", "\"12\"");
    cast_ok(ENG_FT_NUMBER, "1.5", "integer", NULL);
    cast_ok(ENG_FT_NUMBER, "2", "integer", "2");
    cast_ok(ENG_FT_INTEGER, "1", "boolean", "true");
    cast_ok(ENG_FT_INTEGER, "2", "boolean", NULL);
    cast_ok(ENG_FT_BOOLEAN, "false", "integer", "0");
    cast_ok(ENG_FT_INTEGER, "-1", "timestamp", NULL);
    cast_ok(ENG_FT_JSON, "[1,2,3]", "vector(3)", "[1,2,3]");
    cast_ok(ENG_FT_JSON, "[1,2]", "vector(3)", NULL);
    cast_ok(ENG_FT_VECTOR, "[1,2,3]", "integer", NULL);
}

/* Names follow core/text.h on this engine as on PostgreSQL: services and
 * resources are identifiers, fields also not reserved; nothing is stored
 * for a refused definition. */
static void test_names_follow_the_text_rules(void **state)
{
    struct fx *f = *state;
    char name[80];

    memset(name, 'n', 63);
    name[63] = '\0';
    OK(f->e, engine_begin(f->e, &f->sa));
    define(f->res, "crm", "things", (const char *const[]){"ctid:string", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "crm", "things", (const char *const[]){"a:string", "order:integer", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "crm", "things", (const char *const[]){"a:string", "id:string", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "crm-2", "things", (const char *const[]){"a:string", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    define(f->res, "2crm", "things", (const char *const[]){"a:string", NULL});
    EXPECT(f->e, ERR_INVAL, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    EXPECT(f->e, ERR_NOTFOUND, engine_resource_get(f->e, &f->sa, "crm", "things", f->res));
    EXPECT(f->e, ERR_INVAL, engine_resource_get(f->e, &f->sa, "crm-2", "things", f->res));
    /* at the limit of every kind, and a field that only contains a reserved word */
    define(f->res, name, name, (const char *const[]){"ordered:integer", NULL});
    snprintf(f->res->fields[0].name, sizeof f->res->fields[0].name, "%s", name);
    OK(f->e, engine_resource_put(f->e, &f->sa, f->res, NULL, 0, 100, NULL, NULL));
    OK(f->e, engine_resource_get(f->e, &f->sa, name, name, f->res));
    assert_string_equal(f->res->fields[0].name, name);
    OK(f->e, engine_commit(f->e));
    assert_true(eng_resource_valid(f->res));
    /* eng_name_valid: the identifier rule within the caller's buffer */
    assert_true(eng_name_valid(name, 64));
    assert_false(eng_name_valid(name, 63));
    assert_true(eng_name_valid("abc", 4));
    assert_false(eng_name_valid("abcd", 4));
    name[63] = 'n';
    name[64] = '\0';
    assert_false(eng_name_valid(name, sizeof name));
    assert_false(eng_name_valid("Bad", 64));
    assert_false(eng_name_valid("a-b", 64));
    assert_false(eng_name_valid(NULL, 64));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_versions_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_changes_are_the_platform_orgs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crud_versions_outbox_and_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_casts_renames_and_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_filters_order_keyset_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pii_is_not_plaintext_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_change_past_the_undo_log_rolls_back_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_killed_inside_a_schema_change_leaves_it_undone, setup, teardown),
        cmocka_unit_test(test_value_casts_are_strict),
        cmocka_unit_test_setup_teardown(test_names_follow_the_text_rules, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
