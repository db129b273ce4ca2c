/* kv: a small key-value store interface for the token blacklist, the cache and
 * the login throttle, with two backends: Redis (kv_redis.c, hiredis) and the
 * memory engine's shared region (kv_shm.c). Byte-string values, millisecond
 * TTLs, counters (plain and fixed-window) and set-if-absent; no scans, no
 * lists, no pub/sub. Policy (fail closed for the blacklist, open for the cache
 * and the throttle) belongs to the callers, not here.
 *
 * Like hiredis's reply-object functions, a backend is a table of functions
 * (struct kv_ops) behind a handle; callers use the kv_* wrappers below. Every
 * call returns 0 or a negative err.h code, and also leaves that code in kv->err,
 * with the detail in kv->errstr when it failed. ERR_UNAVAILABLE always means "the
 * backend is down or timed out" and nothing else. A handle belongs to one
 * process and is not thread-safe (workers are single-threaded). */
#ifndef LIB_KV_H
#define LIB_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"

struct kv;
struct shm_region;

/* One backend. Each function has the contract of the kv_ wrapper of the same
 * name; key is a NUL-terminated string of 1..KV_KEY_MAX bytes (checked by the
 * wrappers). exists_get, mget and del_eq may be NULL: the wrappers fall back to
 * one call per key, or report ERR_INTERNAL. */
struct kv_ops {
    const char *name;   /* "redis", "shm" */
    int (*get)(struct kv *kv, const char *key, char **val, size_t *len);
    int (*set)(struct kv *kv, const char *key, const void *val, size_t len, uint64_t ttl_ms, bool nx);
    int (*del)(struct kv *kv, const char *key);
    int (*del_eq)(struct kv *kv, const char *key, const void *val, size_t len);
    int (*exists)(struct kv *kv, const char *key, bool *yes);
    int (*exists_get)(struct kv *kv, const char *ekey, bool *exists, const char *gkey,
                      char **val, size_t *len);
    int (*mget)(struct kv *kv, const char *const *keys, size_t n, char **vals, size_t *lens);
    int (*incr)(struct kv *kv, const char *key, int64_t *out);
    int (*incr_window)(struct kv *kv, const char *key, uint64_t ttl_ms, int64_t *out,
                       uint64_t *ttl_left_ms);
    int (*counter)(struct kv *kv, const char *key, int64_t *out, uint64_t *ttl_left_ms);
    int (*ping)(struct kv *kv);
    void (*free)(struct kv *kv);
};

struct kv {
    const struct kv_ops *ops;
    void *impl;             /* the backend's state */
    int err;                /* code of the last call: 0 or an err.h code */
    char errstr[128];       /* what went wrong, when err != 0; never a secret */
    uint64_t busy_us;       /* time spent in the backend's calls (the slowlog's cache phase); the owner resets it */
};

#define KV_KEY_MAX 1024     /* bytes in a key (the shm backend's map limit) */
#define KV_MGET_MAX 16      /* keys in one kv_mget */

/* Backends. */

/* Returns owned: a handle on Redis at url, "redis://[[user]:password@]host[:port][/db]"
 * (host may be [v6]; port 6379, db 0 by default) or "unix:///path/to/sock[?db=N]".
 * Connects lazily on the first command, with timeout_ms (> 0) as both the
 * connect and the command timeout; after an I/O error or a timeout the
 * connection is dropped and a new one made on the next command, never reused.
 * While Redis is unreachable, commands fail with ERR_UNAVAILABLE at once for
 * KV_REDIS_RETRY_MS after each failed connect. Sets SIGPIPE to SIG_IGN if it is
 * at its default (hiredis writes with write(2)). Create it after fork: a live
 * connection must not be shared between processes. NULL with errstr set for a
 * malformed url or bad timeout. */
struct kv *kv_redis_new(const char *url, int timeout_ms, char errstr[128]);
/* Borrowed: the hiredis version built in, "1.1.0" (for `tessera version`:
 * only kv_redis.c includes hiredis). */
const char *kv_redis_lib_version(void);
#define KV_REDIS_RETRY_MS 100

/* Returns owned: a handle on the kv held in region r (the map under root
 * name "kv", created on first use). Values live in the region and expire on
 * CLOCK_REALTIME, like Redis, so a TTL shadowing a JWT's exp ends at the
 * same wall-clock instant. Expired entries are invisible, reclaimed when touched,
 * and swept a few at a time by every write. The region must outlive the
 * handle. NULL with errstr set if the region is full or its lock unusable. */
struct kv *kv_shm_new(struct shm_region *r, char errstr[128]);

/* Borrowed (static): the backend's name, "redis" or "shm". */
static inline const char *kv_name(const struct kv *kv)
{
    return kv->ops->name;
}

/* The time of one backend call into kv->busy_us (a GNU statement expression,
 * as the kernel's and glib's macros are; -std=gnu11). */
static inline uint64_t kv_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
#define KV_TIMED(kv, call)                          \
    ({                                              \
        uint64_t t0_ = kv_now_us();                 \
        int rc_ = (call);                           \
        (kv)->busy_us += kv_now_us() - t0_;         \
        rc_;                                        \
    })

/* Frees the handle and its connection; NULL is a no-op. */
static inline void kv_free(struct kv *kv)
{
    if (kv != NULL)
        kv->ops->free(kv);
}

static inline int kv_bad_key(struct kv *kv, const char *key)
{
    size_t n = 0;

    if (key != NULL)
        while (n <= KV_KEY_MAX && key[n] != '\0')
            n++;
    if (key == NULL || n == 0 || n > KV_KEY_MAX) {
        kv->err = ERR_INVAL;
        snprintf(kv->errstr, sizeof kv->errstr, "kv: key empty or over KV_KEY_MAX");
        return ERR_INVAL;
    }
    return 0;
}

/* Commands. */

/* Returns owned *val (malloc'd, len bytes plus a NUL the length leaves out, so a
 * text value is also a C string). 0, ERR_NOTFOUND on a miss or expired key. */
static inline int ERR_MUST_CHECK kv_get(struct kv *kv, const char *key, char **val, size_t *len)
{
    *val = NULL;
    *len = 0;
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->get(kv, key, val, len));
}

/* Stores len bytes (any bytes, NULs included) under key; ttl_ms 0 keeps it
 * until deleted. Replaces a value and its TTL. */
static inline int ERR_MUST_CHECK kv_set(struct kv *kv, const char *key, const void *val,
                                        size_t len, uint64_t ttl_ms)
{
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->set(kv, key, val, len, ttl_ms, false));
}

/* Like kv_set but only if the key is absent (or expired): ERR_CONFLICT when it
 * exists. With a TTL this is the single-flight lock. */
static inline int ERR_MUST_CHECK kv_setnx(struct kv *kv, const char *key, const void *val,
                                          size_t len, uint64_t ttl_ms)
{
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->set(kv, key, val, len, ttl_ms, true));
}

/* Removes key: 0, or ERR_NOTFOUND if there was none (callers that only want it
 * gone treat that as success). */
static inline int ERR_MUST_CHECK kv_del(struct kv *kv, const char *key)
{
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->del(kv, key));
}

/* Removes key only if its value is exactly val (releasing a single-flight lock
 * without deleting the one another process took after ours expired): 0, or
 * ERR_NOTFOUND if absent or different. Atomic on both backends. */
static inline int ERR_MUST_CHECK kv_del_eq(struct kv *kv, const char *key, const void *val,
                                           size_t len)
{
    if (kv_bad_key(kv, key))
        return ERR_INVAL;
    if (kv->ops->del_eq == NULL) {
        kv->err = ERR_INTERNAL;
        snprintf(kv->errstr, sizeof kv->errstr, "kv: backend has no del_eq");
        return ERR_INTERNAL;
    }
    return KV_TIMED(kv, kv->ops->del_eq(kv, key, val, len));
}

/* *yes = whether key exists (and has not expired). */
static inline int ERR_MUST_CHECK kv_exists(struct kv *kv, const char *key, bool *yes)
{
    *yes = false;
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->exists(kv, key, yes));
}

/* Adds 1 to the integer stored at key (a missing key counts as 0; the TTL is
 * kept) and returns the new value in *out: version bumps. ERR_INVAL if the value
 * is not a decimal int64 or would overflow. */
static inline int ERR_MUST_CHECK kv_incr(struct kv *kv, const char *key, int64_t *out)
{
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->incr(kv, key, out));
}

/* Adds 1 to the counter at key and, when that creates it (or it has no TTL),
 * gives it ttl_ms (> 0): a fixed window that opens with the first increment and
 * is not extended by later ones (failed-login throttling). *out is the new
 * count, *ttl_left_ms what remains of the window. Atomic on both backends (one
 * script on Redis), so two workers never both open a window. ERR_INVAL if the
 * value is not a decimal int64 or would overflow, or ttl_ms is 0. */
static inline int ERR_MUST_CHECK kv_incr_window(struct kv *kv, const char *key, uint64_t ttl_ms,
                                                int64_t *out, uint64_t *ttl_left_ms)
{
    *out = 0;
    *ttl_left_ms = 0;
    if (kv_bad_key(kv, key))
        return ERR_INVAL;
    if (ttl_ms == 0) {
        kv->err = ERR_INVAL;
        snprintf(kv->errstr, sizeof kv->errstr, "kv: a window needs a TTL");
        return ERR_INVAL;
    }
    return KV_TIMED(kv, kv->ops->incr_window(kv, key, ttl_ms, out, ttl_left_ms));
}

/* Reads a counter without changing it: *out is its value and *ttl_left_ms what
 * remains of its TTL; a missing or expired key is a count of 0 (not an error),
 * and a key without a TTL has *ttl_left_ms 0. ERR_INVAL if the value is not a
 * decimal int64. */
static inline int ERR_MUST_CHECK kv_counter(struct kv *kv, const char *key, int64_t *out,
                                            uint64_t *ttl_left_ms)
{
    *out = 0;
    *ttl_left_ms = 0;
    return kv_bad_key(kv, key) ? ERR_INVAL : KV_TIMED(kv, kv->ops->counter(kv, key, out, ttl_left_ms));
}

/* Redis's rule for an integer value (string2ll), which both backends apply:
 * "0", or an optional '-' then a non-zero digit and up to 18 more digits, in
 * int64 range; no spaces, no '+', no leading zeros. */
static inline bool kv_parse_i64(const void *p, uint64_t len, int64_t *out)
{
    const unsigned char *s = p;
    bool neg = len > 0 && s[0] == '-';
    uint64_t i = neg, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;

    if (len == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (len == i || len - i > 19 || s[i] < '1' || s[i] > '9')
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > limit)
            return false;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* 0 if the backend answers. */
static inline int ERR_MUST_CHECK kv_ping(struct kv *kv)
{
    return KV_TIMED(kv, kv->ops->ping(kv));
}

/* EXISTS ekey and GET gkey in one round trip (the blacklist check and the cache
 * lookup of one request). 0 with *exists set and *val Returns owned (NULL with
 * *len 0 when gkey is absent); an error leaves *exists false and *val NULL. */
static inline int ERR_MUST_CHECK kv_exists_get(struct kv *kv, const char *ekey, bool *exists,
                                               const char *gkey, char **val, size_t *len)
{
    int rc;

    *exists = false;
    *val = NULL;
    *len = 0;
    if (kv_bad_key(kv, ekey) || kv_bad_key(kv, gkey))
        return ERR_INVAL;
    if (kv->ops->exists_get != NULL)
        return KV_TIMED(kv, kv->ops->exists_get(kv, ekey, exists, gkey, val, len));
    if ((rc = KV_TIMED(kv, kv->ops->exists(kv, ekey, exists))) != 0)
        return rc;
    rc = KV_TIMED(kv, kv->ops->get(kv, gkey, val, len));
    if (rc == ERR_NOTFOUND)
        rc = kv->err = 0;
    if (rc != 0)
        *exists = false;
    return rc;
}

/* GET of n (1..KV_MGET_MAX) keys in one round trip: the blacklist entry, the
 * caller's cached principal and a version key of one request. 0 with each
 * vals[i] Returns owned (NULL with lens[i] 0 for an absent key); an error
 * leaves every vals[i] NULL. Pipelined GETs, not MGET, so the keys need not
 * share a Redis Cluster slot. */
/* Frees what an mget filled and leaves every slot empty (backends' failure path). */
static inline void kv_mget_clear(char **vals, size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(vals[i]);
        vals[i] = NULL;
        lens[i] = 0;
    }
}

static inline int ERR_MUST_CHECK kv_mget(struct kv *kv, const char *const *keys, size_t n, char **vals,
                                         size_t *lens)
{
    int rc = 0;

    for (size_t i = 0; i < n && i < KV_MGET_MAX; i++) {
        vals[i] = NULL;
        lens[i] = 0;
    }
    if (n == 0 || n > KV_MGET_MAX) {
        kv->err = ERR_INVAL;
        snprintf(kv->errstr, sizeof kv->errstr, "kv: mget of 1..KV_MGET_MAX keys");
        return ERR_INVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (kv_bad_key(kv, keys[i]))
            return ERR_INVAL;
    if (kv->ops->mget != NULL)
        return KV_TIMED(kv, kv->ops->mget(kv, keys, n, vals, lens));
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = KV_TIMED(kv, kv->ops->get(kv, keys[i], &vals[i], &lens[i]));
        if (rc == ERR_NOTFOUND)
            rc = kv->err = 0;
    }
    if (rc != 0)
        kv_mget_clear(vals, lens, n);
    return rc;
}

#endif
