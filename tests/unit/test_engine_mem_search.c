/* test_engine_mem_search: the memory engine's vector search (lib/store/engine.h,
 * "vector search"): the top k equals a brute force over the org's records
 * for each metric (ids in order, the same scores), ties go to the smaller
 * id, filters and expiry hold, another org's records and records without a
 * value never come back, cosine skips a zero vector that l2 still ranks, k
 * larger than what matches gives what matches, a renamed vector field is
 * searched under its new name, and a field that is not a vector of the
 * query's dimension or a filter on no field is ERR_INVAL. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/uuid.h"
#include "store/mem/engine_mem.h"
#include "store/mem/shm.h"
#include "store/vector.h"

#define DIM 8
#define NA 300                  /* records of org a */

struct rec {
    char id[ENG_ID];
    double v[DIM];
    int cat;
    bool has_vec, expired;
};

struct fx {
    struct shm_region *r;
    struct engine *e;
    struct eng_scope sa, sb;
    struct eng_resource *res;
    struct rec a[NA + 8];
    int na;
    char b_id[ENG_ID];
};

static void org(struct fx *f, struct eng_scope *s, const char *slug, bool platform)
{
    struct eng_org o = unit_org(slug, platform);

    OK(f->e, engine_begin(f->e, NULL));
    OK(f->e, engine_org_create(f->e, &o));
    OK(f->e, engine_commit(f->e));
    memset(s, 0, sizeof *s);
    memcpy(s->org_id, o.id, ENG_ID);
}

/* docs {emb vector(DIM), cat integer}; the vector field named name. */
static void define(struct fx *f, const char *name, const struct eng_rename *ren)
{
    struct eng_resource *d = f->res;

    memset(d, 0, sizeof *d);
    snprintf(d->service, sizeof d->service, "crm");
    snprintf(d->name, sizeof d->name, "docs");
    snprintf(d->fields[0].name, sizeof d->fields[0].name, "%s", name);
    d->fields[0].type = ENG_FT_VECTOR;
    d->fields[0].dim = DIM;
    d->fields[0].metric = ENG_METRIC_COSINE;
    snprintf(d->fields[1].name, sizeof d->fields[1].name, "cat");
    d->fields[1].type = ENG_FT_INTEGER;
    d->nfields = 2;
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_resource_put(f->e, &f->sa, d, ren, ren != NULL, 1000, NULL, NULL));
    OK(f->e, engine_commit(f->e));
}

/* Stores r in s's org (r->id set), with its vector unless !r->has_vec. */
static void put(struct fx *f, const struct eng_scope *s, struct rec *r)
{
    struct eng_record rec;
    cJSON *d = cJSON_CreateObject(), *arr = cJSON_CreateDoubleArray(r->v, DIM);

    memset(&rec, 0, sizeof rec);
    assert_int_equal(uuid_v7(rec.id), 0);
    memcpy(r->id, rec.id, ENG_ID);
    rec.created_at = rec.updated_at = time(NULL);
    rec.expires_at = r->expired ? rec.created_at - 5 : 0;
    if (r->has_vec)
        cJSON_AddItemToObject(d, "emb", arr);
    else
        cJSON_Delete(arr);
    cJSON_AddNumberToObject(d, "cat", r->cat);
    rec.data = d;
    OK(f->e, engine_begin(f->e, s));
    OK(f->e, engine_record_create(f->e, s, "crm", "docs", &rec));
    OK(f->e, engine_commit(f->e));
    cJSON_Delete(d);
}

static double rnd(void)
{
    return (double)rand() / RAND_MAX * 2 - 1;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[128] = "";
    struct rec other = {.has_vec = true};

    assert_non_null(f);
    f->r = unit_region(32u << 20);
    assert_int_equal(engine_mem_prepare(f->r, err), 0);
    assert_non_null(f->e = engine_mem_new(f->r, err));
    assert_non_null(f->res = calloc(1, sizeof *f->res));
    org(f, &f->sa, "a", true);
    org(f, &f->sb, "b", false);
    define(f, "emb", NULL);
    srand(7);
    for (f->na = 0; f->na < NA; f->na++) {
        struct rec *r = &f->a[f->na];
        for (int j = 0; j < DIM; j++)
            r->v[j] = rnd();
        r->cat = rand() % 100;
        r->has_vec = f->na % 50 != 7;           /* a few without a value */
        r->expired = f->na % 61 == 3;           /* and a few expired */
        put(f, &f->sa, r);
    }
    /* org b's record is the query's own vector: nearest of all, were it a's */
    for (int j = 0; j < DIM; j++)
        other.v[j] = 0.5;
    put(f, &f->sb, &other);
    memcpy(f->b_id, other.id, ENG_ID);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    unit_region_check(f->r);
    engine_free(f->e);
    shm_destroy(f->r);
    free(f->res);
    free(f);
    return 0;
}

struct ranked {
    double score;
    const char *id;
};

static int ranked_cmp(const void *x, const void *y)
{
    const struct ranked *a = x, *b = y;

    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return strcmp(a->id, b->id);
}

/* The brute force: a's live records with a vector and cat < below, ranked. */
static size_t brute(struct fx *f, int metric, const double *q, int below, struct ranked *out)
{
    size_t n = 0;

    for (int i = 0; i < f->na; i++) {
        const struct rec *r = &f->a[i];
        if (!r->has_vec || r->expired || r->cat >= below ||
            !vec_score(metric, r->v, vec_norm(r->v, DIM), q, vec_norm(q, DIM), DIM, &out[n].score))
            continue;
        out[n++].id = r->id;
    }
    qsort(out, n, sizeof *out, ranked_cmp);
    return n;
}

/* Searches a's org; the hits into out (freed by the caller with hits_free). */
static int search(struct fx *f, const char *field, int metric, const double *q, size_t k, const struct eng_query *w,
                  struct eng_hit *out, size_t *n)
{
    struct eng_query none = {.now = time(NULL)};
    struct eng_search s = {.metric = metric, .vector = q, .dim = DIM, .k = k, .where = w != NULL ? w : &none};
    int strategy = 0, rc;

    snprintf(s.field, sizeof s.field, "%s", field);
    OK(f->e, engine_begin(f->e, &f->sa));
    rc = engine_record_search(f->e, &f->sa, "crm", "docs", &s, out, n, &strategy);
    engine_rollback(f->e);
    if (rc == 0)
        assert_int_equal(strategy, ENG_STRATEGY_EXACT);
    return rc;
}

static void hits_free(struct eng_hit *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        eng_record_cleanup(&h[i].rec);
}

static void assert_same(const struct eng_hit *h, size_t n, const struct ranked *want, size_t nwant, size_t k)
{
    assert_int_equal(n, nwant < k ? nwant : k);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].rec.id, want[i].id) != 0 || h[i].score != want[i].score)
            fail_msg("rank %zu: got %s %.17g, want %s %.17g", i, h[i].rec.id, h[i].score, want[i].id,
                     want[i].score);
    }
}

static void test_the_top_k_equals_a_brute_force_for_each_metric(void **state)
{
    struct fx *f = *state;
    struct ranked want[NA];
    struct eng_hit h[25];
    size_t n, nw;
    double q[DIM];

    for (int metric = ENG_METRIC_COSINE; metric <= ENG_METRIC_INNER; metric++) {
        for (int t = 0; t < 5; t++) {
            for (int j = 0; j < DIM; j++)
                q[j] = rnd();
            nw = brute(f, metric, q, 1000, want);
            OK(f->e, search(f, "emb", metric, q, 25, NULL, h, &n));
            assert_same(h, n, want, nw, 25);
            for (size_t i = 0; i < n; i++)
                if (strcmp(h[i].rec.id, f->b_id) == 0)
                    fail_msg("org b's record in org a's results");
            hits_free(h, n);
        }
    }
}

static void test_filters_hold_and_k_past_the_matches_gives_the_matches(void **state)
{
    struct fx *f = *state;
    struct ranked want[NA];
    struct eng_hit h[40];
    struct eng_query w = {.nfilters = 1, .now = time(NULL)};
    cJSON *three = cJSON_CreateNumber(3);
    double q[DIM] = {1, 0, 0, 0, 0, 0, 0, 0};
    size_t n, nw;

    snprintf(w.filters[0].field, sizeof w.filters[0].field, "cat");
    w.filters[0].op = ENG_OP_LT;
    w.filters[0].value = three;
    nw = brute(f, ENG_METRIC_L2, q, 3, want);
    assert_true(nw > 0 && nw < 40);
    OK(f->e, search(f, "emb", ENG_METRIC_L2, q, 40, &w, h, &n));
    assert_same(h, n, want, nw, 40);
    for (size_t i = 0; i < n; i++)
        assert_true(cJSON_GetObjectItem(h[i].rec.data, "cat")->valuedouble < 3);
    hits_free(h, n);
    cJSON_Delete(three);
}

static void test_ties_go_to_the_smaller_id_and_a_zero_vector_only_to_l2(void **state)
{
    struct fx *f = *state;
    struct rec twins[2] = {{.has_vec = true, .cat = 1000}, {.has_vec = true, .cat = 1000}}, zero = {.has_vec = true};
    struct eng_hit h[3];
    double q[DIM];
    size_t n;

    for (int j = 0; j < DIM; j++)
        q[j] = twins[0].v[j] = twins[1].v[j] = 100;     /* far outside the others: the nearest two */
    put(f, &f->sa, &twins[1]);
    put(f, &f->sa, &twins[0]);
    put(f, &f->sa, &zero);
    OK(f->e, search(f, "emb", ENG_METRIC_L2, q, 2, NULL, h, &n));
    assert_int_equal(n, 2);
    assert_true(h[0].score == 0 && h[1].score == 0);
    assert_true(strcmp(h[0].rec.id, h[1].rec.id) < 0);
    hits_free(h, n);
    /* the zero vector: l2 ranks it (at |q|), cosine never returns it */
    double near0[DIM] = {1e-9};
    OK(f->e, search(f, "emb", ENG_METRIC_L2, near0, 1, NULL, h, &n));
    assert_int_equal(n, 1);
    assert_string_equal(h[0].rec.id, zero.id);
    hits_free(h, n);
    OK(f->e, search(f, "emb", ENG_METRIC_COSINE, near0, 3, NULL, h, &n));
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(h[i].rec.id, zero.id);
    hits_free(h, n);
}

static void test_a_renamed_vector_field_is_searched_under_its_new_name(void **state)
{
    struct fx *f = *state;
    struct eng_rename ren = {"emb", "embedding"};
    struct ranked want[NA];
    struct eng_hit h[5];
    double q[DIM] = {0, 1, 0, 0, 0, 0, 0, 0};
    size_t n, nw = brute(f, ENG_METRIC_COSINE, q, 1000, want);

    define(f, "embedding", &ren);
    OK(f->e, search(f, "embedding", ENG_METRIC_COSINE, q, 5, NULL, h, &n));
    assert_same(h, n, want, nw, 5);
    hits_free(h, n);
    EXPECT(f->e, ERR_INVAL, search(f, "emb", ENG_METRIC_COSINE, q, 5, NULL, h, &n));
}

static void test_no_vector_field_of_that_dimension_or_a_filter_on_no_field_is_inval(void **state)
{
    struct fx *f = *state;
    struct eng_search s = {.metric = ENG_METRIC_COSINE, .dim = DIM - 1, .k = 3};
    struct eng_query w = {.nfilters = 1, .now = time(NULL)};
    cJSON *one = cJSON_CreateNumber(1);
    double q[DIM] = {1};
    struct eng_hit h[3];
    size_t n = 9;
    int strategy;

    s.vector = q;
    s.where = &w;
    snprintf(s.field, sizeof s.field, "emb");
    snprintf(w.filters[0].field, sizeof w.filters[0].field, "nope");
    w.filters[0].op = ENG_OP_EQ;
    w.filters[0].value = one;
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_INVAL, engine_record_search(f->e, &f->sa, "crm", "docs", &s, h, &n, &strategy));
    assert_int_equal(n, 0);
    s.dim = DIM;
    EXPECT(f->e, ERR_INVAL, engine_record_search(f->e, &f->sa, "crm", "docs", &s, h, &n, &strategy));
    snprintf(s.field, sizeof s.field, "cat");
    w.nfilters = 0;
    EXPECT(f->e, ERR_INVAL, engine_record_search(f->e, &f->sa, "crm", "docs", &s, h, &n, &strategy));
    engine_rollback(f->e);
    cJSON_Delete(one);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_the_top_k_equals_a_brute_force_for_each_metric),
        T(test_filters_hold_and_k_past_the_matches_gives_the_matches),
        T(test_ties_go_to_the_smaller_id_and_a_zero_vector_only_to_l2),
        T(test_a_renamed_vector_field_is_searched_under_its_new_name),
        T(test_no_vector_field_of_that_dimension_or_a_filter_on_no_field_is_inval),
    };
    return cmocka_run_group_tests_name("engine_mem_search", tests, NULL, NULL);
}
