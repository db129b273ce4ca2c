/* test_cache: the CacheStore's rules — the envelope (a cached null is a hit),
 * keys led by {mode:org}, version bumps, single-flight across processes (a
 * stampede loads once; a holder killed mid-load is replaced by one waiter within
 * the bound) and failing open when the kv is down. Every case runs on both kv
 * backends: the memory engine's region and a real redis-server; processes are
 * real forks, each with its own kv handle, as the fleet's workers have. */
#include "unit.h"
#include "unit_redis.h"

#include <sys/mman.h>

#include "store/cache.h"
#include "store/kv.h"
#include "store/mem/shm.h"

#define LOCK_MS 300
#define WAIT_MS 1500
#define NPROC 16

/* What the forked processes share: how often a loader ran, and what each got. */
struct shared {
    volatile int loads;
    volatile int started;
    char got[NPROC][64];
    int64_t took_ms[NPROC];
};

static struct shm_region *region; /* NULL while the suite runs on Redis */
static struct shared *sh;

/* A kv handle of the suite's backend, as each process makes its own. */
static struct kv *new_kv(void)
{
    char err[128];

    return region != NULL ? kv_shm_new(region, err) : kv_redis_new(srv.url, 500, err);
}

static int setup_shared(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return -1;
    memset(sh, 0, sizeof *sh);
    return 0;
}

static int setup_shm(void **state)
{
    region = unit_region(4 << 20);
    if (setup_shared() != 0)
        return -1;
    *state = new_kv();
    return *state != NULL ? 0 : -1;
}

static int setup_redis(void **state)
{
    region = NULL;
    if (srv.pid <= 0 || !admin_cmd("FLUSHALL") || setup_shared() != 0)
        return -1;
    *state = new_kv();
    return *state != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    kv_free(*state);
    munmap(sh, sizeof *sh);
    if (region != NULL)
        shm_destroy(region);
    region = NULL;
    return 0;
}

/* ---- loaders ------------------------------------------------------------ */

struct load_ctx {
    const char *value;          /* NULL: "there is none" */
    int delay_ms;
    int fail;                   /* an err.h code to fail with, or 0 */
    int block;                  /* sleep until killed */
};

static int loader(void *ctx, struct buf *out, bool *found)
{
    struct load_ctx *l = ctx;

    __atomic_add_fetch(&sh->loads, 1, __ATOMIC_SEQ_CST);
    if (l->block)
        for (;;)
            pause();
    if (l->delay_ms > 0)
        sleep_ms(l->delay_ms);
    if (l->fail != 0)
        return l->fail;
    *found = l->value != NULL;
    return l->value != NULL ? buf_puts(out, l->value) : 0;
}

/* ---- the envelope and keys ---------------------------------------------- */

static void test_envelope_tells_a_cached_null_from_a_value(void **state)
{
    struct buf b;
    const char *p;
    size_t n;
    bool found;

    (void)state;
    buf_init(&b, 1024);
    assert_int_equal(cache_wrap(&b, "{\"id\":1}", 8), 0);
    assert_string_equal(b.p, "{\"v\":{\"id\":1}}");
    assert_int_equal(cache_unwrap(b.p, b.len, &p, &n, &found), 0);
    assert_true(found);
    assert_int_equal(n, 8);
    assert_memory_equal(p, "{\"id\":1}", 8);
    assert_int_equal(cache_wrap(&b, NULL, 0), 0);
    assert_string_equal(b.p, "{\"v\":null}");
    assert_int_equal(cache_unwrap(b.p, b.len, &p, &n, &found), 0);
    assert_false(found);
    assert_null(p);
    assert_int_equal(cache_unwrap("1", 1, &p, &n, &found), ERR_INVAL);      /* a counter, say */
    assert_int_equal(cache_unwrap("{\"v\":", 5, &p, &n, &found), ERR_INVAL); /* cut short */
    assert_int_equal(cache_unwrap("{\"x\":1}", 7, &p, &n, &found), ERR_INVAL);
    buf_cleanup(&b);
}

static void test_keys_lead_with_the_mode_and_org_hash_tag(void **state)
{
    char k[CACHE_KEY_MAX], big[CACHE_KEY_MAX + 1];

    (void)state;
    assert_int_equal(cache_key(k, "live", "0b9f", "rec:%s.%s:v%d", "crm", "contacts", 3), 0);
    assert_string_equal(k, "{live:0b9f}:rec:crm.contacts:v3");
    assert_int_equal(cache_key(k, "", "0b9f", "x"), ERR_INVAL);
    assert_int_equal(cache_key(k, "test", NULL, "x"), ERR_INVAL);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(cache_key(k, "test", "o", "%s", big), ERR_TOOBIG);
    assert_string_equal(k, "");
}

/* ---- remember ----------------------------------------------------------- */

static void test_a_miss_loads_once_then_hits(void **state)
{
    struct cache c;
    struct cache_stats st = {0};
    struct load_ctx l = {.value = "{\"n\":1}"};
    struct buf out;
    bool found;

    buf_init(&out, 4096);
    sh->loads = 0;
    assert_int_equal(cache_init(&c, *state, LOCK_MS, WAIT_MS), 0);
    assert_int_equal(cache_remember(&c, &st, "{test:o1}:a", 10000, loader, &l, &out, &found), 0);
    assert_true(found);
    assert_string_equal(out.p, "{\"n\":1}");
    l.value = "{\"n\":2}"; /* the store changed, the cache has not been told */
    assert_int_equal(cache_remember(&c, &st, "{test:o1}:a", 10000, loader, &l, &out, &found), 0);
    assert_string_equal(out.p, "{\"n\":1}");
    assert_int_equal(sh->loads, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.fallbacks, 0);
    buf_cleanup(&out);
}

static void test_a_cached_null_is_a_hit(void **state)
{
    struct cache c;
    struct cache_stats st = {0};
    struct load_ctx l = {.value = NULL};
    struct buf out;
    bool found = true;

    buf_init(&out, 4096);
    sh->loads = 0;
    assert_int_equal(cache_init(&c, *state, LOCK_MS, WAIT_MS), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cache_remember(&c, &st, "{test:o1}:absent", 10000, loader, &l, &out, &found), 0);
        assert_false(found);
        assert_int_equal(out.len, 0);
    }
    assert_int_equal(sh->loads, 1);
    assert_int_equal(st.hits, 2);
    buf_cleanup(&out);
}

static void test_a_failed_load_is_returned_and_not_cached(void **state)
{
    struct cache c;
    struct cache_stats st = {0};
    struct load_ctx l = {.fail = ERR_UNAVAILABLE};
    struct buf out;
    bool found;

    buf_init(&out, 4096);
    sh->loads = 0;
    assert_int_equal(cache_init(&c, *state, LOCK_MS, WAIT_MS), 0);
    assert_int_equal(cache_remember(&c, &st, "{test:o1}:flaky", 10000, loader, &l, &out, &found),
                     ERR_UNAVAILABLE);
    l.fail = 0;
    l.value = "7";
    assert_int_equal(cache_remember(&c, &st, "{test:o1}:flaky", 10000, loader, &l, &out, &found), 0);
    assert_string_equal(out.p, "7");
    assert_int_equal(sh->loads, 2);
    /* and the failed holder released its lock: the second call did not wait */
    assert_int_equal(st.waits, 0);
    buf_cleanup(&out);
}

static void test_a_version_bump_moves_readers_to_a_new_key(void **state)
{
    struct cache c;
    struct cache_stats st = {0};
    struct load_ctx l = {.value = "[1]"};
    struct buf out;
    char vkey[CACHE_KEY_MAX], key[CACHE_KEY_MAX], other[CACHE_KEY_MAX];
    int64_t v, lv;
    bool found;

    buf_init(&out, 4096);
    assert_int_equal(cache_init(&c, *state, LOCK_MS, WAIT_MS), 0);
    assert_int_equal(cache_key(vkey, "test", "o2", "ver:crm.deals"), 0);
    assert_int_equal(cache_key(other, "live", "o2", "ver:crm.deals"), 0);
    assert_int_equal(cache_version(&c, &st, vkey, &v), 0);
    assert_int_equal(v, 0); /* never bumped */
    assert_int_equal(cache_key(key, "test", "o2", "list:crm.deals:v%lld", (long long)v), 0);
    assert_int_equal(cache_remember(&c, &st, key, 10000, loader, &l, &out, &found), 0);
    assert_string_equal(out.p, "[1]");

    assert_int_equal(cache_bump(&c, &st, vkey), 0); /* a write committed */
    l.value = "[1,2]";
    assert_int_equal(cache_version(&c, &st, vkey, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cache_key(key, "test", "o2", "list:crm.deals:v%lld", (long long)v), 0);
    assert_int_equal(cache_remember(&c, &st, key, 10000, loader, &l, &out, &found), 0);
    assert_string_equal(out.p, "[1,2]");
    /* the other mode's namespace did not move */
    assert_int_equal(cache_version(&c, &st, other, &lv), 0);
    assert_int_equal(lv, 0);
    buf_cleanup(&out);
}

/* ---- across processes --------------------------------------------------- */

/* NPROC processes ask for one uncached key at once: one loads, all get its value. */
static void test_a_stampede_across_processes_loads_once(void **state)
{
    pid_t pids[NPROC];

    (void)state;
    memset(sh, 0, sizeof *sh);
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct kv *kv = new_kv(); /* each worker its own handle */
            struct cache c;
            struct cache_stats st = {0};
            struct load_ctx l = {.value = "{\"rows\":[1,2,3]}", .delay_ms = 150};
            struct buf out;
            bool found;

            buf_init(&out, 4096);
            __atomic_add_fetch(&sh->started, 1, __ATOMIC_SEQ_CST);
            while (sh->started < NPROC)
                sleep_ms(1);
            if (kv == NULL || cache_init(&c, kv, LOCK_MS, WAIT_MS) != 0 ||
                cache_remember(&c, &st, "{test:o3}:stampede", 10000, loader, &l, &out, &found) != 0 || !found)
                _exit(1);
            snprintf(sh->got[i], sizeof sh->got[i], "%s", out.p);
            _exit(0);
        }
    }
    for (int i = 0; i < NPROC; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(sh->loads, 1);
    for (int i = 0; i < NPROC; i++)
        assert_string_equal(sh->got[i], "{\"rows\":[1,2,3]}");
}

/* The holder is killed mid-load: its lock expires, one waiter loads, and no
 * waiter waits much past the lock's TTL. */
static void test_a_holder_killed_mid_load_is_replaced_by_one_waiter(void **state)
{
    pid_t holder, pids[NPROC];
    int64_t t0;

    (void)state;
    memset(sh, 0, sizeof *sh);
    holder = fork();
    assert_true(holder >= 0);
    if (holder == 0) {
        struct kv *kv = new_kv();
        struct cache c;
        struct cache_stats st = {0};
        struct load_ctx l = {.block = 1};
        struct buf out;
        bool found;

        buf_init(&out, 4096);
        if (kv != NULL && cache_init(&c, kv, LOCK_MS, WAIT_MS) == 0 &&
            cache_remember(&c, &st, "{test:o4}:killed", 10000, loader, &l, &out, &found) == 0)
            _exit(0);
        _exit(1);
    }
    while (sh->loads < 1)   /* the holder has the lock and is loading */
        sleep_ms(1);
    t0 = now_ms();
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct kv *kv = new_kv();
            struct cache c;
            struct cache_stats st = {0};
            struct load_ctx l = {.value = "\"fresh\"", .delay_ms = 20};
            struct buf out;
            bool found;

            buf_init(&out, 4096);
            if (kv == NULL || cache_init(&c, kv, LOCK_MS, WAIT_MS) != 0 ||
                cache_remember(&c, &st, "{test:o4}:killed", 10000, loader, &l, &out, &found) != 0 || !found ||
                st.waits != 1)
                _exit(1);
            snprintf(sh->got[i], sizeof sh->got[i], "%s", out.p);
            sh->took_ms[i] = now_ms() - t0;
            _exit(0);
        }
    }
    sleep_ms(50);
    assert_int_equal(kill(holder, SIGKILL), 0);
    assert_int_equal(waitpid(holder, NULL, 0), holder);
    for (int i = 0; i < NPROC; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_string_equal(sh->got[i], "\"fresh\"");
        /* the lock's TTL plus a few backoff steps, well inside the wait bound */
        assert_true(sh->took_ms[i] < LOCK_MS + 400);
    }
    assert_int_equal(sh->loads, 2); /* the killed holder's, and one waiter's */
}

/* ---- failing open ------------------------------------------------------- */

static void test_a_kv_that_is_down_serves_the_loader(void **state)
{
    char err[128];
    struct kv *down = kv_redis_new("redis://127.0.0.1:1", 100, err); /* nothing listens on port 1 */
    struct cache c;
    struct cache_stats st = {0};
    struct load_ctx l = {.value = "{\"ok\":true}"};
    struct buf out;
    bool found;
    int64_t v;

    (void)state;
    assert_non_null(down);
    buf_init(&out, 4096);
    sh->loads = 0;
    assert_int_equal(cache_init(&c, down, LOCK_MS, WAIT_MS), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cache_remember(&c, &st, "{test:o5}:k", 10000, loader, &l, &out, &found), 0);
        assert_true(found);
        assert_string_equal(out.p, "{\"ok\":true}");
    }
    assert_int_equal(sh->loads, 2);
    assert_int_equal(st.fallbacks, 2);
    assert_int_equal(st.hits + st.misses, 0);
    assert_int_equal(cache_version(&c, &st, "{test:o5}:ver", &v), ERR_UNAVAILABLE);
    assert_int_equal(st.fallbacks, 3);
    assert_int_equal(cache_bump(&c, &st, "{test:o5}:ver"), ERR_UNAVAILABLE);
    assert_int_equal(st.bump_errors, 1);
    kv_free(down);
    buf_cleanup(&out);
}

static void test_bad_arguments_are_refused(void **state)
{
    struct cache c;
    struct cache_stats st = {0};
    struct load_ctx l = {.value = "1"};
    struct buf out;
    bool found;

    buf_init(&out, 64);
    assert_int_equal(cache_init(&c, NULL, LOCK_MS, WAIT_MS), ERR_INVAL);
    assert_int_equal(cache_init(&c, *state, 0, WAIT_MS), ERR_INVAL);
    assert_int_equal(cache_init(&c, *state, LOCK_MS, WAIT_MS), 0);
    assert_int_equal(cache_remember(&c, &st, "{test:o}:k", 0, loader, &l, &out, &found), ERR_INVAL);
    buf_cleanup(&out);
}

#define CASES(X)                                                  \
    X(test_envelope_tells_a_cached_null_from_a_value)             \
    X(test_keys_lead_with_the_mode_and_org_hash_tag)              \
    X(test_a_miss_loads_once_then_hits)                           \
    X(test_a_cached_null_is_a_hit)                                \
    X(test_a_failed_load_is_returned_and_not_cached)              \
    X(test_a_version_bump_moves_readers_to_a_new_key)             \
    X(test_a_stampede_across_processes_loads_once)                \
    X(test_a_holder_killed_mid_load_is_replaced_by_one_waiter)    \
    X(test_a_kv_that_is_down_serves_the_loader)                   \
    X(test_bad_arguments_are_refused)

#define SHM_CASE(t) cmocka_unit_test_setup_teardown(t, setup_shm, teardown),
#define REDIS_CASE(t) cmocka_unit_test_setup_teardown(t, setup_redis, teardown),

int main(void)
{
    const struct CMUnitTest shm_tests[] = {CASES(SHM_CASE)};
    const struct CMUnitTest redis_tests[] = {CASES(REDIS_CASE)};
    char why[256] = "";
    int failed = cmocka_run_group_tests_name("cache_shm", shm_tests, NULL, NULL);

    if (!redis_setup(why)) {
        fprintf(stderr, "[  FAILED  ] cache_redis: cannot start redis-server: %s\n", why);
        failed++;
    } else {
        failed += cmocka_run_group_tests_name("cache_redis", redis_tests, NULL, NULL);
    }
    redis_teardown(failed != 0);
    return failed != 0;
}
