/* cache: see cache.h. The single-flight protocol, for one key K:
 *   1. GET K: a hit ends here.
 *   2. SET K:lock <token> NX PX lock_ms. Taken: GET K again (another process may
 *      have stored it between 1 and 2), else load, SET K, release the lock with
 *      a compare-and-delete of our token (never the lock of a process that took
 *      it after ours expired).
 *   3. Not taken: sleep 1, 2, 4 … 32 ms, then EXISTS K:lock + GET K in one round
 *      trip: a value ends the wait; a lock gone without a value (its holder died
 *      or failed) sends us back to 2; past wait_ms we load ourselves. */
#include "store/cache.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "security/crypto.h"

#define ENVELOPE_HEAD "{\"v\":"
#define ENVELOPE_NULL "{\"v\":null}"
#define LOCK_SUFFIX ":lock"
#define BACKOFF_MAX_MS 32

void cache_count(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#ifdef TESSERA_TEST_HOOKS
/* Test builds only (release builds compile none of this): with
 * TESSERA_TEST_CACHE_LOAD_SLEEP_MS set, a process that holds a key's lock
 * sleeps that long before it runs the loader, so an integration test
 * (tests/integration/71_cache_holder.sh) can kill -9 a worker while it holds
 * the single-flight lock. Every holder sleeps, the waiter that takes over a dead
 * holder's lock too: a test keeps the sleep below lock_ms so that one's lock
 * outlives its load. Read once per process: the first hold after the fork. */
static void test_hook_hold_sleep(void)
{
    static long ms = -1; /* not read yet */

    if (ms < 0) {
        const char *v = getenv("TESSERA_TEST_CACHE_LOAD_SLEEP_MS");

        ms = v != NULL ? strtol(v, NULL, 10) : 0;
        if (ms < 0 || ms > 60000)
            ms = 0;
    }
    if (ms > 0)
        sleep_ms((unsigned)ms); /* through EINTR: a signal must not cut the hold short */
}
#else
#define test_hook_hold_sleep() ((void)0)
#endif

int cache_init(struct cache *c, struct kv *kv, unsigned lock_ms, unsigned wait_ms)
{
    unsigned char r[8];
    int rc;

    memset(c, 0, sizeof *c);
    if (kv == NULL || lock_ms == 0 || wait_ms == 0)
        return ERR_INVAL;
    if ((rc = crypto_random(r, sizeof r)) != 0)
        return rc;
    c->kv = kv;
    c->lock_ms = lock_ms;
    c->wait_ms = wait_ms;
    /* the pid tells a lock's holder in redis-cli; the random part keeps two
     * processes of one pid (across restarts, across hosts) apart */
    snprintf(c->token, sizeof c->token, "%ld:%02x%02x%02x%02x%02x%02x%02x%02x", (long)getpid(), r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
    return 0;
}

int cache_wrap(struct buf *out, const char *payload, size_t plen)
{
    int rc;

    buf_reset(out);
    if (payload == NULL)
        return buf_puts(out, ENVELOPE_NULL);
    if ((rc = buf_puts(out, ENVELOPE_HEAD)) != 0 || (rc = buf_append(out, payload, plen)) != 0)
        return rc;
    return buf_puts(out, "}");
}

int cache_unwrap(const char *val, size_t len, const char **payload, size_t *plen, bool *found)
{
    size_t head = sizeof ENVELOPE_HEAD - 1;

    *payload = NULL;
    *plen = 0;
    *found = false;
    if (len == sizeof ENVELOPE_NULL - 1 && memcmp(val, ENVELOPE_NULL, len) == 0)
        return 0;
    if (len < head + 2 || memcmp(val, ENVELOPE_HEAD, head) != 0 || val[len - 1] != '}')
        return ERR_INVAL;
    *payload = val + head;
    *plen = len - head - 1;
    *found = true;
    return 0;
}

int cache_key(char out[CACHE_KEY_MAX], const char *mode, const char *org, const char *fmt, ...)
{
    va_list ap;
    int n, m;

    out[0] = '\0';
    if (mode == NULL || org == NULL || mode[0] == '\0' || org[0] == '\0')
        return ERR_INVAL;
    n = snprintf(out, CACHE_KEY_MAX, "{%s:%s}:", mode, org);
    if (n < 0 || n >= CACHE_KEY_MAX)
        return ERR_TOOBIG;
    va_start(ap, fmt);
    m = vsnprintf(out + n, CACHE_KEY_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || m >= CACHE_KEY_MAX - n) {
        out[0] = '\0';
        return ERR_TOOBIG;
    }
    return 0;
}

int cache_version(struct cache *c, struct cache_stats *st, const char *vkey, int64_t *ver)
{
    char *val;
    size_t len;
    int rc = kv_get(c->kv, vkey, &val, &len);

    *ver = 0;
    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc == 0 && !kv_parse_i64(val, len, ver))
        rc = ERR_INVAL;
    free(val);
    if (rc != 0)
        cache_count(&st->fallbacks);
    return rc;
}

int cache_bump(struct cache *c, struct cache_stats *st, const char *vkey)
{
    int64_t v;
    int rc = kv_incr(c->kv, vkey, &v);

    if (rc != 0)
        cache_count(&st->bump_errors);
    return rc;
}

/* A value from the kv into out: 1 when it was an envelope (a hit), 0 when not. */
static int take(const char *val, size_t len, struct buf *out, bool *found)
{
    const char *p;
    size_t n;

    if (val == NULL || cache_unwrap(val, len, &p, &n, found) != 0)
        return 0; /* absent, or not ours: a miss, and the load overwrites it */
    buf_reset(out);
    return *found && buf_append(out, p, n) != 0 ? 0 : 1;
}

/* Runs the loader and, when store, keeps its result for ttl_ms. */
static int load(struct cache *c, struct cache_stats *st, const char *key, uint64_t ttl_ms, cache_load_fn fn,
                void *ctx, struct buf *out, bool *found, bool store)
{
    struct buf env;
    int rc;

    buf_reset(out);
    *found = false;
    cache_count(&st->loads);
    if ((rc = fn(ctx, out, found)) != 0) {
        buf_reset(out);
        return rc;
    }
    if (!store)
        return 0;
    buf_init(&env, out->max + sizeof ENVELOPE_NULL);
    if (cache_wrap(&env, *found ? (out->p != NULL ? out->p : "") : NULL, *found ? out->len : 0) == 0 &&
        kv_set(c->kv, key, env.p, env.len, ttl_ms) != 0)
        cache_count(&st->fallbacks); /* served, just not kept */
    buf_cleanup(&env);
    return 0;
}

/* Deletes the lock if it is still ours. One that expired and was taken by
 * another is not ours to delete (ERR_NOTFOUND); after a kv failure it expires. */
static void release(struct cache *c, const char *lock, const char *token)
{
    int rc = kv_del_eq(c->kv, lock, token, strlen(token));

    (void)rc;
}

int cache_remember(struct cache *c, struct cache_stats *st, const char *key, uint64_t ttl_ms,
                   cache_load_fn fn, void *ctx, struct buf *out, bool *found)
{
    char lock[CACHE_KEY_MAX + sizeof LOCK_SUFFIX], token[64];
    char *val = NULL;
    size_t len = 0;
    unsigned backoff = 1;
    bool waited = false;
    int64_t deadline;
    int rc;

    buf_reset(out);
    *found = false;
    if (ttl_ms == 0 || strlen(key) >= CACHE_KEY_MAX)
        return ERR_INVAL;
    rc = kv_get(c->kv, key, &val, &len);
    if (rc == 0 && take(val, len, out, found)) {
        free(val);
        cache_count(&st->hits);
        return 0;
    }
    free(val);
    if (rc != 0 && rc != ERR_NOTFOUND) {
        cache_count(&st->fallbacks);
        return load(c, st, key, ttl_ms, fn, ctx, out, found, false);
    }
    cache_count(&st->misses);
    snprintf(lock, sizeof lock, "%s" LOCK_SUFFIX, key);
    snprintf(token, sizeof token, "%s:%llu", c->token, (unsigned long long)++c->seq);
    deadline = mono_ms() + c->wait_ms;
    for (;;) {
        rc = kv_setnx(c->kv, lock, token, strlen(token), c->lock_ms);
        if (rc == 0) {
            val = NULL;
            rc = kv_get(c->kv, key, &val, &len);
            if (rc == 0 && take(val, len, out, found)) {
                free(val);
                cache_count(&st->hits);
                rc = 0;
            } else {
                free(val);
                test_hook_hold_sleep();
                rc = load(c, st, key, ttl_ms, fn, ctx, out, found, true);
            }
            release(c, lock, token);
            return rc;
        }
        if (rc != ERR_CONFLICT) {
            cache_count(&st->fallbacks);
            return load(c, st, key, ttl_ms, fn, ctx, out, found, false);
        }
        if (!waited) {
            waited = true;
            cache_count(&st->waits);
        }
        for (;;) {
            bool held;

            if (mono_ms() >= deadline) {
                cache_count(&st->lock_timeouts);
                return load(c, st, key, ttl_ms, fn, ctx, out, found, true);
            }
            sleep_ms(backoff);
            if (backoff < BACKOFF_MAX_MS)
                backoff *= 2;
            rc = kv_exists_get(c->kv, lock, &held, key, &val, &len);
            if (rc != 0) {
                cache_count(&st->fallbacks);
                return load(c, st, key, ttl_ms, fn, ctx, out, found, false);
            }
            if (take(val, len, out, found)) {
                free(val);
                cache_count(&st->hits);
                return 0;
            }
            free(val);
            if (!held)
                break; /* the holder is gone without a value: take the lock */
        }
    }
}
