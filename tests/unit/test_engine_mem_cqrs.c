/* test_engine_mem_cqrs: the memory engine's CQRS ops (lib/store/engine.h,
 * "CQRS"): views kept by project() equal a recomputation over the records and
 * stay per org, a second apply changes nothing, a view added later is
 * back-filled and a removed one is gone, the feed gives every committed
 * change once in order (never a rolled-back one) with its head and its 410
 * after a trim, the reaper deletes expired records as deletes and old
 * invites, the wake-up returns on a write and on its timeout, and the region
 * stays flat under writes the projector consumes. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/uuid.h"
#include "store/mem/engine_mem.h"
#include "store/mem/shm.h"

struct fx {
    struct shm_region *r;
    struct engine *e;
    struct eng_org a, b;
    struct eng_scope sa, sb;
    struct eng_resource *res;
};

/* deals {stage string, amount integer}, with views when given. */
static void define(struct fx *f, const char *views, const char *amount_type, int64_t expire_after)
{
    struct eng_resource *d = f->res;

    memset(d, 0, sizeof *d);
    snprintf(d->service, sizeof d->service, "crm");
    snprintf(d->name, sizeof d->name, "deals");
    snprintf(d->fields[0].name, sizeof d->fields[0].name, "stage");
    d->fields[0].type = ENG_FT_STRING;
    snprintf(d->fields[1].name, sizeof d->fields[1].name, "amount");
    assert_int_equal(eng_ftype_parse(amount_type, &d->fields[1].type, &d->fields[1].dim), 0);
    d->nfields = 2;
    d->expire_after = expire_after;
    snprintf(d->views, sizeof d->views, "%s", views != NULL ? views : "");
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_resource_put(f->e, &f->sa, d, NULL, 0, 1000, NULL, NULL));
    OK(f->e, engine_commit(f->e));
}

#define PIPELINE "{\"pipeline\":{\"group_by\":[\"stage\"],\"count\":true,\"sum\":[\"amount\"]}}"

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char err[128] = "";

    assert_non_null(f);
    f->r = unit_region(32u << 20);
    assert_int_equal(engine_mem_prepare(f->r, err), 0);
    assert_non_null(f->e = engine_mem_new(f->r, err));
    assert_non_null(f->res = calloc(1, sizeof *f->res));
    f->a = unit_org("a", true);
    f->b = unit_org("b", false);
    OK(f->e, engine_begin(f->e, NULL));
    OK(f->e, engine_org_create(f->e, &f->a));
    OK(f->e, engine_org_create(f->e, &f->b));
    OK(f->e, engine_commit(f->e));
    memcpy(f->sa.org_id, f->a.id, ENG_ID);
    memcpy(f->sb.org_id, f->b.id, ENG_ID);
    define(f, PIPELINE, "integer", 0);
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

/* Creates a deal in s's org (its id into id), in its own unit of work. */
static void create(struct fx *f, const struct eng_scope *s, const char *stage, int amount, int64_t expires_at,
                   char id[ENG_ID])
{
    struct eng_record rec;
    char json[128];

    memset(&rec, 0, sizeof rec);
    assert_int_equal(uuid_v7(rec.id), 0);
    rec.created_at = rec.updated_at = time(NULL);
    rec.expires_at = expires_at;
    snprintf(json, sizeof json, "{\"stage\":\"%s\",\"amount\":%d}", stage, amount);
    assert_non_null(rec.data = cJSON_Parse(json));
    OK(f->e, engine_begin(f->e, s));
    OK(f->e, engine_record_create(f->e, s, "crm", "deals", &rec));
    OK(f->e, engine_commit(f->e));
    cJSON_Delete(rec.data);
    if (id != NULL)
        memcpy(id, rec.id, ENG_ID);
}

static void update(struct fx *f, const struct eng_scope *s, const char *id, const char *stage, int amount)
{
    struct eng_record rec;
    char json[128];

    memset(&rec, 0, sizeof rec);
    memcpy(rec.id, id, ENG_ID);
    rec.updated_at = time(NULL);
    snprintf(json, sizeof json, "{\"stage\":\"%s\",\"amount\":%d}", stage, amount);
    assert_non_null(rec.data = cJSON_Parse(json));
    OK(f->e, engine_begin(f->e, s));
    OK(f->e, engine_record_update(f->e, s, "crm", "deals", &rec, 0));
    OK(f->e, engine_commit(f->e));
    cJSON_Delete(rec.data);
}

static void project_all(struct fx *f, struct eng_projection *pr)
{
    struct eng_projection one;

    memset(pr, 0, sizeof *pr);
    do {
        OK(f->e, engine_project(f->e, 64, NULL, NULL, &one));
        pr->applied += one.applied;
        pr->rebuilt += one.rebuilt;
    } while (one.more);
}

/* The view's rows as "stage=count/sum" sorted and joined by spaces. */
static char *rows_text(struct fx *f, const struct eng_scope *s, int64_t *pending)
{
    cJSON *rows, *row;
    bool more;
    int64_t p;
    char *out = calloc(1, 4096), *items[64];
    int n = 0;

    OK(f->e, engine_begin(f->e, s));
    OK(f->e, engine_view_read(f->e, s, "crm", "deals", "pipeline", &rows, &more, &p));
    engine_rollback(f->e);
    cJSON_ArrayForEach(row, rows) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(row, "key"), "stage");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "count");
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(row, "sum"), "amount");
        assert_true(n < 64);
        assert_non_null(items[n] = malloc(64));
        snprintf(items[n++], 64, "%s=%g/%g", cJSON_IsString(k) ? k->valuestring : "null", c->valuedouble,
                 sum->valuedouble);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(items[j], items[i]) < 0) {
                char *t = items[i];
                items[i] = items[j];
                items[j] = t;
            }
    for (int i = 0; i < n; i++) {
        strcat(out, i ? " " : "");
        strcat(out, items[i]);
        free(items[i]);
    }
    cJSON_Delete(rows);
    if (pending != NULL)
        *pending = p;
    return out;
}

static void assert_rows(struct fx *f, const struct eng_scope *s, const char *want)
{
    char *got = rows_text(f, s, NULL);

    assert_string_equal(got, want);
    free(got);
}

static void test_views_follow_writes_per_org_and_twice_is_once(void **state)
{
    struct fx *f = *state;
    struct eng_projection pr;
    char id1[ENG_ID], id2[ENG_ID];
    int64_t pending;

    create(f, &f->sa, "won", 100, 0, id1);
    create(f, &f->sa, "won", 50, 0, id2);
    create(f, &f->sa, "lead", 7, 0, NULL);
    create(f, &f->sb, "won", 1, 0, NULL);
    char *before = rows_text(f, &f->sa, &pending);
    assert_string_equal(before, "");                       /* nothing projected yet ... */
    assert_true(pending > 0);                              /* ... and it says how far behind */
    free(before);
    project_all(f, &pr);
    assert_int_equal(pr.applied, 4);
    assert_rows(f, &f->sa, "lead=1/7 won=2/150");
    assert_rows(f, &f->sb, "won=1/1");                     /* org b sees its own only */
    free(rows_text(f, &f->sa, &pending));
    assert_int_equal(pending, 0);

    update(f, &f->sa, id1, "lost", 30);                    /* moves between groups */
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_record_delete(f->e, &f->sa, "crm", "deals", id2, 0, time(NULL)));
    OK(f->e, engine_commit(f->e));
    project_all(f, &pr);
    assert_int_equal(pr.applied, 2);
    assert_rows(f, &f->sa, "lead=1/7 lost=1/30");
    project_all(f, &pr);                                   /* nothing new: nothing changes */
    assert_int_equal(pr.applied, 0);
    assert_rows(f, &f->sa, "lead=1/7 lost=1/30");
}

static void test_a_view_added_later_is_backfilled_and_a_removed_one_is_gone(void **state)
{
    struct fx *f = *state;
    struct eng_projection pr;
    cJSON *rows;
    bool more;
    int64_t pending;

    define(f, NULL, "integer", 0);
    for (int i = 0; i < 30; i++)
        create(f, &f->sa, i % 3 == 0 ? "won" : "lead", i, 0, NULL);
    project_all(f, &pr);
    define(f, PIPELINE, "integer", 0);
    char *stale = rows_text(f, &f->sa, &pending);
    assert_string_equal(stale, "");                        /* not built for this definition yet */
    assert_int_equal(pending, 1000 * 1000);                /* behind since the change (now = 1000 s) */
    free(stale);
    project_all(f, &pr);
    assert_true(pr.rebuilt >= 1);
    assert_rows(f, &f->sa, "lead=20/300 won=10/135");
    define(f, PIPELINE, "number", 0);                      /* a retype of the summed field */
    project_all(f, &pr);
    assert_true(pr.rebuilt >= 1);
    assert_rows(f, &f->sa, "lead=20/300 won=10/135");
    define(f, NULL, "number", 0);
    project_all(f, &pr);
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_NOTFOUND, engine_view_read(f->e, &f->sa, "crm", "deals", "pipeline", &rows, &more, &pending));
    engine_rollback(f->e);
    assert_null(rows);
}

static void test_the_feed_gives_each_committed_change_once_in_order(void **state)
{
    struct fx *f = *state;
    struct eng_projection pr;
    struct eng_change ch[16];
    struct eng_record rec;
    size_t n;
    uint64_t head;
    char id[ENG_ID];

    create(f, &f->sa, "lead", 1, 0, id);
    create(f, &f->sb, "lead", 2, 0, NULL);
    update(f, &f->sa, id, "won", 3);
    /* a write that rolls back leaves no change */
    memset(&rec, 0, sizeof rec);
    assert_int_equal(uuid_v7(rec.id), 0);
    assert_non_null(rec.data = cJSON_Parse("{\"stage\":\"ghost\"}"));
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_record_create(f->e, &f->sa, "crm", "deals", &rec));
    engine_rollback(f->e);
    cJSON_Delete(rec.data);

    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_changes_list(f->e, &f->sa, "crm", "deals", 0, ch, 16, &n, &head));
    engine_rollback(f->e);
    assert_int_equal(n, 0);                                /* only projected changes are in the feed */
    project_all(f, &pr);
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_changes_list(f->e, &f->sa, "crm", "deals", 0, ch, 16, &n, &head));
    engine_rollback(f->e);
    assert_int_equal(n, 2);                                /* org b's change is not org a's */
    assert_string_equal(ch[0].op, "create");
    assert_string_equal(ch[1].op, "update");
    assert_string_equal(ch[0].record_id, id);
    assert_int_equal(ch[1].version, 2);
    assert_true(ch[0].pos < ch[1].pos && ch[1].pos <= head);
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_changes_list(f->e, &f->sa, "crm", "deals", ch[0].pos, ch, 16, &n, &head));
    assert_int_equal(n, 1);
    assert_string_equal(ch[0].op, "update");
    OK(f->e, engine_changes_list(f->e, &f->sa, "crm", "deals", head, ch, 16, &n, &head));
    assert_int_equal(n, 0);
    engine_rollback(f->e);

    /* trimmed past the retention: an older cursor is gone, the start is not */
    struct eng_reap_policy p = {.now = time(NULL) + 10, .changes_retention = 1, .max = 100, .token_grace = 86400};
    struct eng_reaped rp;
    OK(f->e, engine_reap(f->e, &p, NULL, NULL, &rp));
    assert_int_equal(rp.changes, 3);
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_GONE, engine_changes_list(f->e, &f->sa, "crm", "deals", 1, ch, 16, &n, &head));
    OK(f->e, engine_changes_list(f->e, &f->sa, "crm", "deals", 0, ch, 16, &n, &head));
    assert_int_equal(n, 0);
    engine_rollback(f->e);
}

static void touched(void *ctx, const struct eng_scope *s, const char *service, const char *resource)
{
    (void)s;
    assert_string_equal(service, "crm");
    assert_string_equal(resource, "deals");
    (*(int *)ctx)++;
}

static void test_the_reaper_deletes_expired_records_as_deletes_and_old_invites(void **state)
{
    struct fx *f = *state;
    struct eng_projection pr;
    struct eng_reaped rp;
    struct eng_record got;
    struct eng_invite inv, out;
    int64_t now = time(NULL);
    char gone[ENG_ID], kept[ENG_ID];
    int touches = 0;

    define(f, PIPELINE, "integer", 60);
    create(f, &f->sa, "won", 5, now - 1, gone);
    create(f, &f->sa, "won", 6, now + 3600, kept);
    memset(&inv, 0, sizeof inv);
    assert_int_equal(uuid_v7(inv.id), 0);
    memcpy(inv.org_id, f->a.id, ENG_ID);
    snprintf(inv.role, sizeof inv.role, "member");
    memset(inv.token_hash, 'a', 64);
    inv.expires_at = now - 100;
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_invite_create(f->e, &f->sa, &inv));
    OK(f->e, engine_commit(f->e));

    struct eng_reap_policy p = {.now = now, .token_grace = 10, .changes_retention = 3600, .max = 100};
    OK(f->e, engine_reap(f->e, &p, touched, &touches, &rp));
    assert_int_equal(rp.records, 1);
    assert_int_equal(rp.invites, 1);
    assert_int_equal(touches, 1);
    OK(f->e, engine_begin(f->e, &f->sa));
    EXPECT(f->e, ERR_NOTFOUND, engine_record_get(f->e, &f->sa, "crm", "deals", gone, now - 10, &got));
    OK(f->e, engine_record_get(f->e, &f->sa, "crm", "deals", kept, now, &got));
    eng_record_cleanup(&got);
    EXPECT(f->e, ERR_NOTFOUND, engine_invite_resolve(f->e, inv.token_hash, &out));
    engine_rollback(f->e);
    project_all(f, &pr);
    assert_rows(f, &f->sa, "won=1/6");
    /* the delete is in the feed */
    struct eng_change ch[8];
    size_t n;
    uint64_t head;
    OK(f->e, engine_begin(f->e, &f->sa));
    OK(f->e, engine_changes_list(f->e, &f->sa, "crm", "deals", 0, ch, 8, &n, &head));
    engine_rollback(f->e);
    assert_int_equal(n, 3);
    assert_string_equal(ch[2].op, "delete");
    assert_string_equal(ch[2].record_id, gone);
    /* one platform org: the reaper's summary goes there */
    struct eng_org po;
    OK(f->e, engine_begin(f->e, NULL));
    OK(f->e, engine_org_platform(f->e, &po));
    engine_rollback(f->e);
    assert_string_equal(po.id, f->a.id);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_wait_returns_at_once_with_events_and_after_its_timeout_without(void **state)
{
    struct fx *f = *state;
    struct eng_projection pr;
    int64_t t0;

    create(f, &f->sa, "won", 1, 0, NULL);
    t0 = mono_ms();
    OK(f->e, engine_wait(f->e, 2000));
    assert_true(mono_ms() - t0 < 500);                     /* an event waits: no sleep */
    project_all(f, &pr);
    t0 = mono_ms();
    OK(f->e, engine_wait(f->e, 150));
    assert_true(mono_ms() - t0 >= 140);                    /* nothing: the whole timeout */
}

static void test_the_region_stays_flat_under_consumed_writes(void **state)
{
    struct fx *f = *state;
    struct eng_projection pr;
    struct shm_stats st;
    char id[ENG_ID];
    size_t used[4];

    create(f, &f->sa, "won", 1, 0, id);
    for (int round = 0; round < 4; round++) {
        /* past the feed's bound, so the second round measures the steady state */
        for (int i = 0; i < 12000; i++) {
            update(f, &f->sa, id, i % 2 ? "won" : "lost", i);
            if (i % 500 == 0)
                project_all(f, &pr);
        }
        project_all(f, &pr);
        assert_int_equal(shm_lock(f->r), 0);
        shm_stats(f->r, &st);
        shm_unlock(f->r);
        used[round] = st.used;
    }
    if (used[3] > used[1] + used[1] / 50 + 65536)
        fail_msg("region grew from %zu to %zu bytes over 24 000 consumed writes", used[1], used[3]);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_views_follow_writes_per_org_and_twice_is_once),
        T(test_a_view_added_later_is_backfilled_and_a_removed_one_is_gone),
        T(test_the_feed_gives_each_committed_change_once_in_order),
        T(test_the_reaper_deletes_expired_records_as_deletes_and_old_invites),
        T(test_wait_returns_at_once_with_events_and_after_its_timeout_without),
        T(test_the_region_stays_flat_under_consumed_writes),
    };
    return cmocka_run_group_tests_name("engine_mem_cqrs", tests, NULL, NULL);
}
