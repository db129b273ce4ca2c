/* test_kv: one behaviour table run against both kv backends, then what only
 * one of them has: for Redis, a real redis-server this test starts on a free
 * loopback port (and stops, freezes and restarts to prove the outage rules);
 * for shm, sharing across fork and reclaiming expired memory. No redis-server
 * means failure, not a skip. */
#include "unit.h"
#include "unit_redis.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/kv.h"
#include "store/mem/shm.h"

#define TIMEOUT_MS 300

static struct shm_region *region;

/* ---- fixtures ------------------------------------------------------------- */

static int setup_shm(void **state)
{
    char err[128] = "";

    region = unit_region(4 << 20);
    *state = kv_shm_new(region, err);
    if (*state == NULL) {
        fprintf(stderr, "kv_shm_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown_shm(void **state)
{
    kv_free(*state);
    shm_destroy(region);
    region = NULL;
    return 0;
}

static int setup_redis(void **state)
{
    char err[128] = "";

    if (srv.pid <= 0 || !admin_cmd("FLUSHALL"))
        return -1;
    *state = kv_redis_new(srv.url, TIMEOUT_MS, err);
    return *state != NULL ? 0 : -1;
}

static int teardown_redis(void **state)
{
    kv_free(*state);
    return 0;
}

/* ---- the behaviour table: every test here runs on both backends ---------- */

static void assert_kv_value(struct kv *kv, const char *key, const void *want, size_t wlen)
{
    char *val = NULL;
    size_t len = 0;
    int rc = kv_get(kv, key, &val, &len);

    if (rc != 0)
        fail_msg("%s: get %s: %s (%s)", kv->ops->name, key, err_str(rc), kv->errstr);
    assert_int_equal(len, wlen);
    assert_memory_equal(val, want, wlen);
    assert_int_equal(val[len], '\0');
    free(val);
}

static void assert_kv_missing(struct kv *kv, const char *key)
{
    char *val = (char *)1;
    size_t len = 1;
    bool yes = true;

    assert_int_equal(kv_get(kv, key, &val, &len), ERR_NOTFOUND);
    assert_null(val);
    assert_int_equal(len, 0);
    assert_int_equal(kv_exists(kv, key, &yes), 0);
    assert_false(yes);
}

static void test_set_then_get_returns_the_value(void **state)
{
    struct kv *kv = *state;

    assert_kv_missing(kv, "greeting");
    assert_int_equal(kv_set(kv, "greeting", "hello", 5, 0), 0);
    assert_int_equal(kv->err, 0);
    assert_kv_value(kv, "greeting", "hello", 5);
    assert_int_equal(kv_set(kv, "greeting", "bye", 3, 0), 0);
    assert_kv_value(kv, "greeting", "bye", 3);
}

static void test_binary_values_keep_their_nul_bytes(void **state)
{
    static const unsigned char bin[] = {0, 'a', 0, 0, 255, '\r', '\n', '$', '*', 0};
    struct kv *kv = *state;
    size_t big = 200000;
    char *blob = malloc(big);

    assert_non_null(blob);
    for (size_t i = 0; i < big; i++)
        blob[i] = (char)(i * 7);
    assert_int_equal(kv_set(kv, "bin", bin, sizeof bin, 0), 0);
    assert_kv_value(kv, "bin", bin, sizeof bin);
    assert_int_equal(kv_set(kv, "empty", "", 0, 0), 0);
    assert_kv_value(kv, "empty", "", 0);
    assert_int_equal(kv_set(kv, "key with spaces\r\n", blob, big, 0), 0);
    assert_kv_value(kv, "key with spaces\r\n", blob, big);
    free(blob);
}

static void test_ttl_expires_the_key(void **state)
{
    struct kv *kv = *state;
    bool yes = false;

    assert_int_equal(kv_set(kv, "short", "v", 1, 50), 0);
    assert_int_equal(kv_set(kv, "long", "v", 1, 60000), 0);
    assert_kv_value(kv, "short", "v", 1);
    assert_int_equal(kv_exists(kv, "short", &yes), 0);
    assert_true(yes);
    sleep_ms(120);
    assert_kv_missing(kv, "short");
    assert_int_equal(kv_del(kv, "short"), ERR_NOTFOUND);
    assert_kv_value(kv, "long", "v", 1);
}

static void test_set_replaces_the_ttl(void **state)
{
    struct kv *kv = *state;

    assert_int_equal(kv_set(kv, "k", "1", 1, 50), 0);
    assert_int_equal(kv_set(kv, "k", "2", 1, 0), 0);
    sleep_ms(120);
    assert_kv_value(kv, "k", "2", 1);
}

static void test_setnx_conflicts_while_the_key_lives(void **state)
{
    struct kv *kv = *state;

    assert_int_equal(kv_setnx(kv, "lock", "me", 2, 50), 0);
    assert_int_equal(kv_setnx(kv, "lock", "you", 3, 50), ERR_CONFLICT);
    assert_int_equal(kv->err, ERR_CONFLICT);
    assert_kv_value(kv, "lock", "me", 2);
    sleep_ms(120);
    assert_int_equal(kv_setnx(kv, "lock", "you", 3, 0), 0);
    assert_kv_value(kv, "lock", "you", 3);
    assert_int_equal(kv_setnx(kv, "lock", "me", 2, 0), ERR_CONFLICT);
}

static void test_del_eq_only_removes_a_matching_value(void **state)
{
    struct kv *kv = *state;

    assert_int_equal(kv_setnx(kv, "lock", "token-a", 7, 10000), 0);
    assert_int_equal(kv_del_eq(kv, "lock", "token-b", 7), ERR_NOTFOUND);
    assert_int_equal(kv_del_eq(kv, "lock", "token-", 6), ERR_NOTFOUND);
    assert_kv_value(kv, "lock", "token-a", 7);
    assert_int_equal(kv_del_eq(kv, "lock", "token-a", 7), 0);
    assert_kv_missing(kv, "lock");
    assert_int_equal(kv_del_eq(kv, "lock", "token-a", 7), ERR_NOTFOUND);
}

static void test_incr_counts_from_zero_and_rejects_non_integers(void **state)
{
    struct kv *kv = *state;
    int64_t v = 0;

    assert_int_equal(kv_incr(kv, "ver:test:org:users", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(kv_incr(kv, "ver:test:org:users", &v), 0);
    assert_int_equal(v, 2);
    assert_kv_value(kv, "ver:test:org:users", "2", 1);
    assert_int_equal(kv_set(kv, "n", "41", 2, 0), 0);
    assert_int_equal(kv_incr(kv, "n", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(kv_set(kv, "n", "-5", 2, 0), 0);
    assert_int_equal(kv_incr(kv, "n", &v), 0);
    assert_int_equal(v, -4);
    assert_int_equal(kv_set(kv, "n", "abc", 3, 0), 0);
    assert_int_equal(kv_incr(kv, "n", &v), ERR_INVAL);
    assert_int_equal(kv_set(kv, "n", "007", 3, 0), 0);
    assert_int_equal(kv_incr(kv, "n", &v), ERR_INVAL);
    assert_int_equal(kv_set(kv, "n", "9223372036854775807", 19, 0), 0);
    assert_int_equal(kv_incr(kv, "n", &v), ERR_INVAL);
    assert_kv_value(kv, "n", "9223372036854775807", 19);
}

static void test_incr_keeps_the_ttl(void **state)
{
    struct kv *kv = *state;
    int64_t v = 0;

    assert_int_equal(kv_set(kv, "c", "1", 1, 80), 0);
    assert_int_equal(kv_incr(kv, "c", &v), 0);
    assert_int_equal(v, 2);
    sleep_ms(150);
    assert_kv_missing(kv, "c");
}

static void test_incr_window_opens_the_window_on_the_first_increment_only(void **state)
{
    struct kv *kv = *state;
    int64_t v = 0, c = -1;
    uint64_t left = 0, first = 0;

    assert_int_equal(kv_counter(kv, "thr:login:acct:x", &c, &left), 0);
    assert_int_equal(c, 0);
    assert_int_equal(left, 0);
    assert_int_equal(kv_incr_window(kv, "thr:login:acct:x", 300, &v, &first), 0);
    assert_int_equal(v, 1);
    assert_true(first > 200 && first <= 300);
    sleep_ms(120);
    /* later increments count on in the same window: its end does not move */
    assert_int_equal(kv_incr_window(kv, "thr:login:acct:x", 300, &v, &left), 0);
    assert_int_equal(v, 2);
    assert_true(left < first - 80);
    assert_int_equal(kv_counter(kv, "thr:login:acct:x", &c, &left), 0);
    assert_int_equal(c, 2);
    assert_true(left > 0 && left < first - 80);
    assert_kv_value(kv, "thr:login:acct:x", "2", 1);
    sleep_ms(250);
    /* the window is over: the count starts again, in a new window */
    assert_int_equal(kv_counter(kv, "thr:login:acct:x", &c, &left), 0);
    assert_int_equal(c, 0);
    assert_int_equal(left, 0);
    assert_int_equal(kv_incr_window(kv, "thr:login:acct:x", 300, &v, &left), 0);
    assert_int_equal(v, 1);
    assert_true(left > 200 && left <= 300);
}

static void test_incr_window_gives_a_ttl_to_a_counter_without_one(void **state)
{
    struct kv *kv = *state;
    int64_t v = 0, c = 0;
    uint64_t left = 0;

    assert_int_equal(kv_set(kv, "n", "5", 1, 0), 0);
    assert_int_equal(kv_counter(kv, "n", &c, &left), 0);
    assert_int_equal(c, 5);
    assert_int_equal(left, 0);
    assert_int_equal(kv_incr_window(kv, "n", 100, &v, &left), 0);
    assert_int_equal(v, 6);
    assert_true(left > 0 && left <= 100);
    sleep_ms(180);
    assert_kv_missing(kv, "n");
    /* kv_incr keeps a window's TTL too */
    assert_int_equal(kv_incr_window(kv, "n", 100, &v, &left), 0);
    assert_int_equal(kv_incr(kv, "n", &v), 0);
    assert_int_equal(v, 2);
    sleep_ms(180);
    assert_kv_missing(kv, "n");
}

static void test_incr_window_and_counter_refuse_what_is_not_a_counter(void **state)
{
    struct kv *kv = *state;
    int64_t v = 7, c = 7;
    uint64_t left = 7;

    assert_int_equal(kv_incr_window(kv, "w", 0, &v, &left), ERR_INVAL);
    assert_int_equal(kv->err, ERR_INVAL);
    assert_kv_missing(kv, "w");
    assert_int_equal(kv_incr_window(kv, "", 100, &v, &left), ERR_INVAL);
    assert_int_equal(kv_counter(kv, "", &c, &left), ERR_INVAL);
    assert_int_equal(kv_set(kv, "w", "abc", 3, 0), 0);
    assert_int_equal(kv_incr_window(kv, "w", 100, &v, &left), ERR_INVAL);
    assert_int_equal(kv->err, ERR_INVAL);
    assert_int_equal(kv_counter(kv, "w", &c, &left), ERR_INVAL);
    assert_int_equal(kv->err, ERR_INVAL);
    assert_int_equal(kv_set(kv, "w", "9223372036854775807", 19, 0), 0);
    assert_int_equal(kv_incr_window(kv, "w", 100, &v, &left), ERR_INVAL);
    assert_kv_value(kv, "w", "9223372036854775807", 19);
    assert_int_equal(kv_counter(kv, "w", &c, &left), 0);
    assert_int_equal(c, INT64_MAX);
}

static void test_del_and_exists(void **state)
{
    struct kv *kv = *state;
    bool yes = false;

    assert_int_equal(kv_set(kv, "bl:abc", "1", 1, 0), 0);
    assert_int_equal(kv_exists(kv, "bl:abc", &yes), 0);
    assert_true(yes);
    assert_int_equal(kv_del(kv, "bl:abc"), 0);
    assert_int_equal(kv_exists(kv, "bl:abc", &yes), 0);
    assert_false(yes);
    assert_int_equal(kv_del(kv, "bl:abc"), ERR_NOTFOUND);
}

static void test_exists_get_answers_both_in_one_call(void **state)
{
    struct kv *kv = *state;
    bool ex = true;
    char *val = (char *)1;
    size_t len = 1;

    assert_int_equal(kv_exists_get(kv, "bl:t", &ex, "cache:k", &val, &len), 0);
    assert_false(ex);
    assert_null(val);
    assert_int_equal(len, 0);
    assert_int_equal(kv_set(kv, "cache:k", "{\"v\":null}", 10, 0), 0);
    assert_int_equal(kv_exists_get(kv, "bl:t", &ex, "cache:k", &val, &len), 0);
    assert_false(ex);
    assert_int_equal(len, 10);
    assert_memory_equal(val, "{\"v\":null}", 10);
    free(val);
    assert_int_equal(kv_set(kv, "bl:t", "1", 1, 0), 0);
    assert_int_equal(kv_exists_get(kv, "bl:t", &ex, "cache:k", &val, &len), 0);
    assert_true(ex);
    assert_non_null(val);
    free(val);
}

static void test_mget_answers_every_key_with_absent_ones_null(void **state)
{
    struct kv *kv = *state;
    const char *keys[3] = {"m:a", "m:missing", "m:b"};
    const char *bad[2] = {"m:a", ""};
    char *vals[KV_MGET_MAX];
    size_t lens[KV_MGET_MAX];

    assert_int_equal(kv_set(kv, "m:a", "one", 3, 0), 0);
    assert_int_equal(kv_set(kv, "m:b", "t\0o", 3, 0), 0);
    assert_int_equal(kv_mget(kv, keys, 3, vals, lens), 0);
    assert_int_equal(lens[0], 3);
    assert_memory_equal(vals[0], "one", 3);
    assert_null(vals[1]);
    assert_int_equal(lens[1], 0);
    assert_int_equal(lens[2], 3);
    assert_memory_equal(vals[2], "t\0o", 3);
    kv_mget_clear(vals, lens, 3);
    assert_null(vals[0]);
    /* what cannot be asked is refused whole, and leaves nothing to free */
    assert_int_equal(kv_mget(kv, bad, 2, vals, lens), ERR_INVAL);
    assert_null(vals[0]);
    assert_int_equal(kv_mget(kv, keys, 0, vals, lens), ERR_INVAL);
    assert_int_equal(kv_mget(kv, keys, KV_MGET_MAX + 1, vals, lens), ERR_INVAL);
}

static void test_ping_and_bad_keys(void **state)
{
    struct kv *kv = *state;
    char long_key[KV_KEY_MAX + 2];
    char *val;
    size_t len;

    assert_int_equal(kv_ping(kv), 0);
    assert_int_equal(kv_set(kv, "", "v", 1, 0), ERR_INVAL);
    assert_int_equal(kv->err, ERR_INVAL);
    assert_int_equal(kv_get(kv, NULL, &val, &len), ERR_INVAL);
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(kv_set(kv, long_key, "v", 1, 0), ERR_INVAL);
    long_key[KV_KEY_MAX] = '\0';
    assert_int_equal(kv_set(kv, long_key, "v", 1, 0), 0);
    assert_kv_value(kv, long_key, "v", 1);
}

#define BEHAVIOUR(X)                                          \
    X(test_set_then_get_returns_the_value)                    \
    X(test_binary_values_keep_their_nul_bytes)                \
    X(test_ttl_expires_the_key)                               \
    X(test_set_replaces_the_ttl)                              \
    X(test_setnx_conflicts_while_the_key_lives)               \
    X(test_del_eq_only_removes_a_matching_value)              \
    X(test_incr_counts_from_zero_and_rejects_non_integers)    \
    X(test_incr_keeps_the_ttl)                                \
    X(test_incr_window_opens_the_window_on_the_first_increment_only) \
    X(test_incr_window_gives_a_ttl_to_a_counter_without_one)  \
    X(test_incr_window_and_counter_refuse_what_is_not_a_counter) \
    X(test_del_and_exists)                                    \
    X(test_exists_get_answers_both_in_one_call)               \
    X(test_mget_answers_every_key_with_absent_ones_null)      \
    X(test_ping_and_bad_keys)

/* ---- shm only ------------------------------------------------------------- */

static void test_shm_value_set_in_a_child_is_seen_by_the_parent(void **state)
{
    struct kv *kv = *state;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        char err[128];
        struct kv *mine = kv_shm_new(region, err);   /* a worker makes its own handle */
        int64_t v;

        _exit(mine != NULL && kv_set(mine, "from-child", "hi", 2, 0) == 0 &&
                      kv_incr(mine, "ver", &v) == 0 && v == 1 ? 0 : 1);
    }
    unit_wait_success(pid);
    assert_kv_value(kv, "from-child", "hi", 2);
    assert_kv_value(kv, "ver", "1", 1);
}

static size_t used(void)
{
    struct shm_stats st;

    if (shm_lock(region) != 0)
        fail_msg("lock");
    shm_stats(region, &st);
    shm_unlock(region);
    return st.used;
}

static void test_shm_expired_entries_are_swept_by_writes(void **state)
{
    struct kv *kv = *state;
    size_t base, full;
    char key[32];
    char *val;
    size_t len;

    base = used();
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "bl:%d", i);
        /* a TTL far above the loop's own time even on a loaded machine: the
         * entries must all be alive when `full` is measured */
        assert_int_equal(kv_set(kv, key, "0123456789012345678901234567890123456789", 40, 500), 0);
    }
    full = used();
    assert_true(full > base + 2000 * 64);
    sleep_ms(550);
    /* Nobody reads those keys again; writes elsewhere reclaim them: each of
     * the 2000 held an 80-byte entry block and a 32-byte key block. (The slot
     * array shrinks on a later insert of a new key, not on a replace.) */
    for (int i = 0; i < 400; i++)
        assert_int_equal(kv_set(kv, "other", "x", 1, 0), 0);
    assert_true(used() < full - 2000 * 100);
    assert_int_equal(kv_set(kv, "new-key", "x", 1, 0), 0);
    assert_true(used() < base + (full - base) / 4);
    assert_int_equal(kv_get(kv, "bl:1999", &val, &len), ERR_NOTFOUND);
}

static void test_shm_full_region_fails_then_recovers(void **state)
{
    char err[128] = "", key[32];
    struct shm_region *small = unit_region(SHM_MIN_BYTES);
    struct kv *kv;
    char value[1000];
    int n = 0, rc;

    kv = kv_shm_new(small, err);
    assert_non_null(kv);
    memset(value, 'v', sizeof value);
    for (;; n++) {
        snprintf(key, sizeof key, "k%d", n);
        if ((rc = kv_set(kv, key, value, sizeof value, n % 2 ? 100 : 0)) != 0)
            break;
    }
    assert_int_equal(rc, ERR_NOSPACE);
    assert_int_equal(kv->err, ERR_NOSPACE);
    assert_true(n > 50);
    assert_kv_value(kv, "k0", value, sizeof value);
    /* Once half of them expire, a write finds room (its fallback sweep). */
    sleep_ms(200);
    assert_int_equal(kv_set(kv, "after", value, sizeof value, 0), 0);
    assert_kv_value(kv, "after", value, sizeof value);
    assert_kv_value(kv, "k0", value, sizeof value);
    kv_free(kv);
    shm_destroy(small);
}

/* ---- redis only ----------------------------------------------------------- */

static void test_redis_rejects_bad_urls(void **state)
{
    static const char *const bad[] = {
        "http://127.0.0.1:6379", "redis://", "redis://:6379", "redis://host:0", "redis://host:65536",
        "redis://host:port", "redis://host:6379/x", "redis://user@host", "redis://[::1",
        "rediss://host:6380", "unix://", "unix://relative/path", "unix:///tmp/s?x=1",
        "redis://:%zz@host", "",
    };
    static const char *const good[] = {
        "redis://127.0.0.1", "redis://localhost:6380/2", "redis://:secret@h:1/0",
        "redis://u:p%40ss@h", "redis://[::1]:6379", "redis://[::1]", "unix:///run/redis.sock",
        "unix:///run/redis.sock?db=3", "redis://h/",
    };
    char err[128];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct kv *kv;

        err[0] = '\0';
        kv = kv_redis_new(bad[i], 100, err);
        if (kv != NULL)
            fail_msg("accepted %s", bad[i]);
        assert_true(strncmp(err, "kv redis: ", 10) == 0);
    }
    assert_null(kv_redis_new("redis://h", 0, err));
    assert_null(kv_redis_new(NULL, 100, err));
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct kv *kv = kv_redis_new(good[i], 100, err);

        if (kv == NULL)
            fail_msg("refused %s: %s", good[i], err);
        kv_free(kv);
    }
}

static void test_redis_nothing_listening_is_unavailable_fast(void **state)
{
    char err[128];
    struct kv *kv = kv_redis_new("redis://127.0.0.1:1", TIMEOUT_MS, err);
    int64_t t0 = now_ms();
    char *val;
    size_t len;
    int64_t n;
    uint64_t left;

    assert_non_null(kv);
    assert_int_equal(kv_ping(kv), ERR_UNAVAILABLE);
    assert_int_equal(kv_get(kv, "k", &val, &len), ERR_UNAVAILABLE);
    /* what the login throttle sees while Redis is away (it fails open on this) */
    assert_int_equal(kv_counter(kv, "thr:k", &n, &left), ERR_UNAVAILABLE);
    assert_int_equal(kv_incr_window(kv, "thr:k", 1000, &n, &left), ERR_UNAVAILABLE);
    assert_int_equal(kv->err, ERR_UNAVAILABLE);
    assert_true(now_ms() - t0 < TIMEOUT_MS);
    assert_non_null(strstr(kv->errstr, "127.0.0.1"));
    kv_free(kv);
}

static void test_redis_outage_then_recovery_with_the_same_handle(void **state)
{
    struct kv *kv = *state;
    char why[256] = "";
    int64_t t0, deadline;
    char *val;
    size_t len;
    int rc;

    assert_int_equal(kv_set(kv, "k", "v", 1, 0), 0);
    redis_stop();

    t0 = now_ms();
    assert_int_equal(kv_get(kv, "k", &val, &len), ERR_UNAVAILABLE);
    assert_int_equal(kv->err, ERR_UNAVAILABLE);
    assert_true(now_ms() - t0 <= TIMEOUT_MS + 200);
    assert_true(kv->errstr[0] != '\0');
    t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(kv_set(kv, "k", "v", 1, 0), ERR_UNAVAILABLE);
        sleep_ms(10);
    }
    assert_true(now_ms() - t0 <= 20 * (10 + TIMEOUT_MS));

    if (!redis_start(why))
        fail_msg("restart: %s", why);
    deadline = now_ms() + 3000;
    while ((rc = kv_ping(kv)) != 0 && now_ms() < deadline)
        sleep_ms(20);
    assert_int_equal(rc, 0);
    assert_kv_missing(kv, "k");    /* no persistence: a fresh server */
    assert_int_equal(kv_set(kv, "k", "again", 5, 0), 0);
    assert_kv_value(kv, "k", "again", 5);
}

/* A frozen server: the command times out, and the connection it was sent on
 * is never read again, so its late reply cannot answer the next command. */
static void test_redis_timeout_drops_the_connection_and_its_late_reply(void **state)
{
    struct kv *kv = *state;
    int64_t t0, dt;
    char *val;
    size_t len;

    assert_int_equal(kv_set(kv, "a", "value-a", 7, 0), 0);
    assert_int_equal(kv_set(kv, "b", "value-b", 7, 0), 0);
    assert_int_equal(kill(srv.pid, SIGSTOP), 0);
    t0 = now_ms();
    assert_int_equal(kv_get(kv, "a", &val, &len), ERR_UNAVAILABLE);
    dt = now_ms() - t0;
    assert_true(dt >= TIMEOUT_MS - 50 && dt <= TIMEOUT_MS + 300);
    assert_non_null(strstr(kv->errstr, "timed out"));
    /* Still frozen: a new connection is accepted by the kernel, and its command
     * times out too, within the same bound. */
    t0 = now_ms();
    assert_int_equal(kv_get(kv, "b", &val, &len), ERR_UNAVAILABLE);
    assert_true(now_ms() - t0 <= TIMEOUT_MS + 300);
    assert_int_equal(kill(srv.pid, SIGCONT), 0);
    sleep_ms(50);   /* let the server answer the stale GETs on their dead sockets */
    assert_kv_value(kv, "b", "value-b", 7);
    assert_kv_value(kv, "a", "value-a", 7);
}

static void test_redis_idle_connection_killed_by_server_is_replaced(void **state)
{
    struct kv *kv = *state;

    assert_int_equal(kv_set(kv, "k", "v", 1, 0), 0);
    assert_true(admin_cmd("CLIENT KILL SKIPME yes TYPE normal"));
    assert_kv_value(kv, "k", "v", 1);  /* one retry on a fresh connection */
}

static void test_redis_unix_socket_url(void **state)
{
    char url[200], err[128];
    struct kv *kv;

    snprintf(url, sizeof url, "unix://%s", srv.sock);
    kv = kv_redis_new(url, TIMEOUT_MS, err);
    assert_non_null(kv);
    assert_int_equal(kv_ping(kv), 0);
    assert_int_equal(kv_set(kv, "via-unix", "1", 1, 0), 0);
    kv_free(kv);
    assert_kv_value(*state, "via-unix", "1", 1);
}

static void test_redis_password_and_database_from_the_url(void **state)
{
    char url[200], err[128];
    redisContext *c;
    redisReply *rep;
    struct kv *kv;

    assert_true(admin_cmd("CONFIG SET requirepass %s", "p@ss w/rd"));
    snprintf(url, sizeof url, "redis://:p%%40ss%%20w%%2Frd@127.0.0.1:%d/3", srv.port);
    kv = kv_redis_new(url, TIMEOUT_MS, err);
    assert_non_null(kv);
    assert_int_equal(kv_set(kv, "in-db-3", "yes", 3, 0), 0);
    kv_free(kv);

    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d/3", srv.port);
    kv = kv_redis_new(url, TIMEOUT_MS, err);
    assert_non_null(kv);
    assert_int_equal(kv_ping(kv), ERR_UNAVAILABLE);
    assert_non_null(strstr(kv->errstr, "AUTH"));
    assert_null(strstr(kv->errstr, "wrong"));
    kv_free(kv);

    c = admin();
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "AUTH %s", "p@ss w/rd"));
    freeReplyObject(redisCommand(c, "SELECT 3"));
    rep = redisCommand(c, "GET in-db-3");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "yes");
    freeReplyObject(rep);
    freeReplyObject(redisCommand(c, "CONFIG SET requirepass %s", ""));
    redisFree(c);
}

int main(void)
{
#define SHM_CASE(t) cmocka_unit_test_setup_teardown(t, setup_shm, teardown_shm),
#define REDIS_CASE(t) cmocka_unit_test_setup_teardown(t, setup_redis, teardown_redis),
    const struct CMUnitTest shm_tests[] = {
        BEHAVIOUR(SHM_CASE)
        SHM_CASE(test_shm_value_set_in_a_child_is_seen_by_the_parent)
        SHM_CASE(test_shm_expired_entries_are_swept_by_writes)
        cmocka_unit_test(test_shm_full_region_fails_then_recovers),
    };
    const struct CMUnitTest redis_tests[] = {
        BEHAVIOUR(REDIS_CASE)
        cmocka_unit_test(test_redis_rejects_bad_urls),
        cmocka_unit_test(test_redis_nothing_listening_is_unavailable_fast),
        REDIS_CASE(test_redis_idle_connection_killed_by_server_is_replaced)
        REDIS_CASE(test_redis_unix_socket_url)
        REDIS_CASE(test_redis_password_and_database_from_the_url)
        REDIS_CASE(test_redis_timeout_drops_the_connection_and_its_late_reply)
        REDIS_CASE(test_redis_outage_then_recovery_with_the_same_handle)
    };
    char why[256] = "";
    int failed;

    failed = cmocka_run_group_tests_name("kv_shm", shm_tests, NULL, NULL);

    if (!redis_setup(why)) {
        /* Not a skip: the Redis backend is untested, so the suite fails. */
        fprintf(stderr, "[  FAILED  ] kv_redis: cannot start redis-server: %s\n", why);
        failed++;
    } else {
        failed += cmocka_run_group_tests_name("kv_redis", redis_tests, NULL, NULL);
    }
    redis_teardown(failed != 0);
    return failed != 0;
}
