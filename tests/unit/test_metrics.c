/* Unit tests for lib/metrics: counters and histograms summed across slots in
 * the Prometheus text, bad indexes ignored, and the shared mapping seen
 * across fork() (the property the whole fleet relies on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

#include "fleet/metrics.h"

static const char *const LABELS[] = {"healthz", "records_list", "unused"};

static int setup(void **state)
{
    *state = metrics_new();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    metrics_free(*state);
    return 0;
}

/* Returns owned (buf_cleanup): the rendered exposition. */
static void render(const struct metrics *m, struct buf *b)
{
    buf_init(b, 1 << 20);
    assert_int_equal(metrics_render(m, LABELS, 3, b), 0);
    assert_non_null(b->p);
}

/* The value of the sample whose name and labels are exactly `series`, or -1. */
static long long sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

static void test_new_mapping_starts_at_zero(void **state)
{
    struct metrics *m = *state;
    struct buf b;

    for (int s = 0; s < METRICS_MAX_SLOTS; s++)
        assert_int_equal(metrics_slot_total(m, s), 0);
    render(m, &b);
    assert_null(strstr(b.p, "tessera_http_requests_total{"));
    assert_non_null(strstr(b.p, "# TYPE tessera_http_requests_total counter"));
    assert_non_null(strstr(b.p, "# TYPE tessera_http_request_duration_seconds histogram"));
    buf_cleanup(&b);
}

static void test_counters_by_route_and_status_sum_across_slots(void **state)
{
    struct metrics *m = *state;
    struct buf b;

    metrics_observe(m, 0, 1, 200, 300);
    metrics_observe(m, 1, 1, 200, 300);
    metrics_observe(m, 63, 1, 200, 300);
    metrics_observe(m, 1, 1, 404, 300);
    metrics_observe(m, 2, 0, 200, 50);
    metrics_observe(m, 2, 0, 418, 50); /* not one of ours: "other" */
    metrics_observe(m, 2, 0, 599, 50);

    assert_int_equal(metrics_slot_total(m, 0), 1);
    assert_int_equal(metrics_slot_total(m, 1), 2);
    assert_int_equal(metrics_slot_total(m, 2), 3);
    assert_int_equal(metrics_slot_total(m, 63), 1);

    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"records_list\",status=\"200\"}"), 3);
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"records_list\",status=\"404\"}"), 1);
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"healthz\",status=\"200\"}"), 1);
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"healthz\",status=\"other\"}"), 2);
    /* zero series are not printed, nor routes nobody hit */
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"healthz\",status=\"404\"}"), -1);
    assert_null(strstr(b.p, "route=\"unused\""));
    buf_cleanup(&b);
}

/* The value of histogram `name`'s bucket `le` for records_list, or -1. */
static long long bucket(const char *text, const char *name, const char *le)
{
    char series[160];

    snprintf(series, sizeof series, "%s_bucket{route=\"records_list\",le=\"%s\"}", name, le);
    return sample(text, series);
}

static void test_histogram_buckets_are_cumulative_and_inf_is_count(void **state)
{
    struct metrics *m = *state;
    struct buf b;
    const char *name = "tessera_http_request_duration_seconds";
    char series[160];

    metrics_observe(m, 0, 1, 200, 100);     /* on the 100us bound: le="0.0001" */
    metrics_observe(m, 0, 1, 200, 101);     /* le="0.00025" */
    metrics_observe(m, 5, 1, 200, 2000);    /* le="0.0025" */
    metrics_observe(m, 9, 1, 500, 1000000); /* le="1" */
    metrics_observe(m, 9, 1, 200, 7000000); /* past the last bound: +Inf only */

    render(m, &b);
    assert_int_equal(bucket(b.p, name, "0.0001"), 1);
    assert_int_equal(bucket(b.p, name, "0.00025"), 2);
    assert_int_equal(bucket(b.p, name, "0.001"), 2);
    assert_int_equal(bucket(b.p, name, "0.0025"), 3);
    assert_int_equal(bucket(b.p, name, "0.5"), 3);
    assert_int_equal(bucket(b.p, name, "1"), 4);
    assert_int_equal(bucket(b.p, name, "+Inf"), 5);
    snprintf(series, sizeof series, "%s_count{route=\"records_list\"}", name);
    assert_int_equal(sample(b.p, series), 5);
    snprintf(series, sizeof series, "%s_sum{route=\"records_list\"} 8.002201\n", name);
    assert_non_null(strstr(b.p, series));

    /* every bucket line of the route is no smaller than the one before */
    long long prev = 0;
    int lines = 0;
    snprintf(series, sizeof series, "%s_bucket{route=\"records_list\",", name);
    for (const char *p = strstr(b.p, series); p != NULL; p = strstr(p + 1, series)) {
        long long v = strtoll(strchr(p, ' ') + 1, NULL, 10);
        assert_true(v >= prev);
        prev = v;
        lines++;
    }
    assert_int_equal(lines, METRICS_NBUCKETS + 1);
    assert_int_equal(prev, 5);
    buf_cleanup(&b);
}

static void test_out_of_range_slot_or_route_is_ignored(void **state)
{
    struct metrics *m = *state;
    struct buf b;

    metrics_observe(m, -1, 0, 200, 10);
    metrics_observe(m, METRICS_MAX_SLOTS, 0, 200, 10);
    metrics_observe(m, 0, -1, 200, 10);
    metrics_observe(m, 0, METRICS_MAX_ROUTES, 200, 10);
    metrics_observe(NULL, 0, 0, 200, 10);

    for (int s = 0; s < METRICS_MAX_SLOTS; s++)
        assert_int_equal(metrics_slot_total(m, s), 0);
    assert_int_equal(metrics_slot_total(m, -1), 0);
    assert_int_equal(metrics_slot_total(m, METRICS_MAX_SLOTS), 0);
    render(m, &b);
    assert_null(strstr(b.p, "tessera_http_requests_total{"));
    assert_null(strstr(b.p, "_bucket{"));
    buf_cleanup(&b);

    /* the last valid indexes do count */
    metrics_observe(m, METRICS_MAX_SLOTS - 1, METRICS_MAX_ROUTES - 1, 200, 10);
    assert_int_equal(metrics_slot_total(m, METRICS_MAX_SLOTS - 1), 1);
}

static void test_render_past_the_buffer_cap_is_toobig(void **state)
{
    struct metrics *m = *state;
    struct buf b;

    metrics_observe(m, 0, 0, 200, 10);
    buf_init(&b, 64);
    assert_int_equal(metrics_render(m, LABELS, 3, &b), ERR_TOOBIG);
    assert_true(b.len <= 64);
    buf_cleanup(&b);
}

static void test_forked_child_observations_are_visible_to_parent(void **state)
{
    struct metrics *m = *state;
    pid_t pid;
    struct buf b;

    metrics_observe(m, 0, 1, 200, 10);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 10; i++)
            metrics_observe(m, 4, 1, 201, 10);
        _exit(metrics_slot_total(m, 0) == 1 ? 0 : 1); /* the child sees the parent's too */
    }
    unit_wait_success(pid);

    assert_int_equal(metrics_slot_total(m, 4), 10);
    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"records_list\",status=\"201\"}"), 10);
    assert_int_equal(sample(b.p, "tessera_http_requests_total{route=\"records_list\",status=\"200\"}"), 1);
    buf_cleanup(&b);
}

static void test_event_counters_sum_across_slots_and_show_while_zero(void **state)
{
    struct metrics *m = *state;
    struct buf b;

    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_login_throttled_total"), 0);
    assert_int_equal(sample(b.p, "tessera_login_throttle_errors_total"), 0);
    assert_non_null(strstr(b.p, "# TYPE tessera_login_throttle_errors_total counter"));
    buf_cleanup(&b);
    metrics_count(m, 0, METRICS_LOGIN_THROTTLE_ERRORS);
    metrics_count(m, 5, METRICS_LOGIN_THROTTLE_ERRORS);
    metrics_count(m, 5, METRICS_LOGIN_THROTTLED);
    metrics_count(m, -1, METRICS_LOGIN_THROTTLED);
    metrics_count(m, METRICS_MAX_SLOTS, METRICS_LOGIN_THROTTLED);
    metrics_count(m, 0, METRICS_NCOUNTERS);
    metrics_count(NULL, 0, METRICS_LOGIN_THROTTLED);
    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_login_throttle_errors_total"), 2);
    assert_int_equal(sample(b.p, "tessera_login_throttled_total"), 1);
    assert_int_equal(sample(b.p, "tessera_projector_events_total"), 0);
    assert_int_equal(sample(b.p, "tessera_reaped_records_total"), 0);
    buf_cleanup(&b);
    /* the projector's and the reaper's counters add batches */
    metrics_add(m, 2, METRICS_PROJECTOR_EVENTS, 250);
    metrics_add(m, 3, METRICS_PROJECTOR_EVENTS, 6);
    metrics_add(m, 2, METRICS_REAPED_RECORDS, 20);
    metrics_add(m, 64, METRICS_REAPED_RECORDS, 1);
    metrics_add(m, 2, METRICS_NCOUNTERS, 1);
    metrics_add(NULL, 2, METRICS_REAPED_RECORDS, 1);
    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_projector_events_total"), 256);
    assert_int_equal(sample(b.p, "tessera_reaped_records_total"), 20);
    assert_int_equal(sample(b.p, "tessera_reaped_audit_partitions_total"), 0);
    buf_cleanup(&b);
    /* requests are not events: a slot's request total leaves them out */
    assert_int_equal(metrics_slot_total(m, 5), 0);
}

static void test_cache_counters_per_use_sum_across_slots(void **state)
{
    struct metrics *m = *state;
    struct buf b;

    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_cache_hits_total{use=\"principal\"}"), 0);
    assert_int_equal(sample(b.p, "tessera_cache_bump_errors_total{use=\"records\"}"), 0);
    assert_non_null(strstr(b.p, "# TYPE tessera_cache_fallbacks_total counter"));
    buf_cleanup(&b);
    metrics_cache_stats(m, 0, METRICS_CACHE_RECORDS)->hits += 2;
    metrics_cache_stats(m, 7, METRICS_CACHE_RECORDS)->hits += 3;
    metrics_cache_stats(m, 7, METRICS_CACHE_APPS)->waits += 1;
    /* out of range: counted somewhere that is never rendered */
    metrics_cache_stats(m, METRICS_MAX_SLOTS, METRICS_CACHE_RECORDS)->hits += 100;
    metrics_cache_stats(m, 0, METRICS_NCACHE)->hits += 100;
    metrics_cache_stats(NULL, 0, METRICS_CACHE_RECORDS)->hits += 100;
    render(m, &b);
    assert_int_equal(sample(b.p, "tessera_cache_hits_total{use=\"records\"}"), 5);
    assert_int_equal(sample(b.p, "tessera_cache_hits_total{use=\"principal\"}"), 0);
    assert_int_equal(sample(b.p, "tessera_cache_waits_total{use=\"apps\"}"), 1);
    assert_int_equal(sample(b.p, "tessera_cache_misses_total{use=\"schema\"}"), 0);
    buf_cleanup(&b);
}

static void test_free_null_is_a_no_op(void **state)
{
    metrics_free(NULL); /* fails by crashing */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_new_mapping_starts_at_zero),
        T(test_counters_by_route_and_status_sum_across_slots),
        T(test_histogram_buckets_are_cumulative_and_inf_is_count),
        T(test_out_of_range_slot_or_route_is_ignored),
        T(test_render_past_the_buffer_cap_is_toobig),
        T(test_forked_child_observations_are_visible_to_parent),
        T(test_event_counters_sum_across_slots_and_show_while_zero),
        T(test_cache_counters_per_use_sum_across_slots),
        cmocka_unit_test(test_free_null_is_a_no_op),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
