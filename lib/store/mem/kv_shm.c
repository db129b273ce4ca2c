/* kv_shm: the kv interface on the memory engine's shared region.
 *
 * One shm_map (root name "kv") from key to the offset of an entry record
 * {expires_ms, len, bytes}. A write builds a new record and swaps it into the
 * map (copy-on-write), then frees the old one, so every command is one shm
 * section and inherits its crash atomicity: a worker killed mid-command leaves
 * the old value or the new one, never a mix.
 *
 * Expiry is an absolute CLOCK_REALTIME time in ms, as Redis stores it: the
 * blacklist's TTL is "token exp − now", and the JWT check it shadows compares
 * exp with the wall clock, so both must end at the same wall-clock instant even
 * if the clock is stepped (a MONOTONIC deadline would let a logged-out token
 * back in after the clock is set back). Expired entries are invisible, deleted
 * when a command touches them, and swept: every write examines the next few
 * entries from a cursor kept in the region, and a write that finds the region
 * full sweeps a larger stretch once before giving up with ERR_NOSPACE. Nothing
 * is evicted before its time (no LRU): size the region for the blacklist and
 * the cache's working set. */
#include "store/kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/mem/shm.h"

#define KV_SHM_ROOT "kv"
#define KV_SHM_SWEEP 8          /* entries examined by every write */
#define KV_SHM_SWEEP_FULL 4096  /* ... and once more by a write that found no space */

/* The kv's anchor in the region, under root name "kv". */
struct kv_shm_root {
    uint64_t map;
    uint64_t sweep_pos;         /* shm_map_next cursor of the sweep */
};

struct kv_entry {
    int64_t expires_ms;         /* CLOCK_REALTIME ms; 0 = never */
    uint64_t len;
    unsigned char bytes[];
};

struct kv_shm {
    struct shm_region *r;
    uint64_t root;              /* offset of struct kv_shm_root */
    uint64_t map;
};

static int fail(struct kv *kv, int rc, const char *what)
{
    kv->err = rc;
    snprintf(kv->errstr, sizeof kv->errstr, "kv shm: %s", what);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline(int64_t now, uint64_t ttl_ms)
{
    if (ttl_ms == 0)
        return 0;
    return ttl_ms > (uint64_t)(INT64_MAX - now) ? INT64_MAX : now + (int64_t)ttl_ms;
}

static bool expired(const struct kv_entry *e, int64_t now)
{
    return e->expires_ms != 0 && e->expires_ms <= now;
}

static int lock(struct kv *kv, struct kv_shm *ks)
{
    if (shm_lock(ks->r) != 0)
        return fail(kv, ERR_INTERNAL, "region lock unusable");
    return 0;
}

/* Offset of the live entry under key, or 0; an expired one is deleted. */
static uint64_t lookup(struct kv_shm *ks, const char *key, int64_t now)
{
    size_t klen = strlen(key);
    uint64_t e;

    if (shm_map_get(ks->r, ks->map, key, klen, &e) != 0)
        return 0;
    if (!expired(shm_ptr(ks->r, e), now))
        return e;
    if (shm_map_del(ks->r, ks->map, key, klen, NULL) == 0)
        shm_free(ks->r, e);
    return 0;
}

static void sweep(struct kv_shm *ks, int64_t now, int budget)
{
    struct kv_shm_root *root = shm_ptr(ks->r, ks->root);
    uint64_t pos = root->sweep_pos;
    struct shm_map_entry me;

    while (budget-- > 0) {
        if (!shm_map_next(ks->r, ks->map, &pos, &me)) {
            pos = 0;
            break;
        }
        /* Deleting the entry just returned is allowed mid-iteration. */
        if (expired(shm_ptr(ks->r, me.val), now) &&
            shm_map_del(ks->r, ks->map, me.key, me.klen, NULL) == 0)
            shm_free(ks->r, me.val);
    }
    /* A full undo log only delays the cursor; nothing to report. */
    (void)!shm_set64(ks->r, ks->root + offsetof(struct kv_shm_root, sweep_pos), pos);
}

/* A new entry record (not yet in the map), or 0 when the region is full even
 * after a larger sweep. */
static uint64_t entry_new(struct kv_shm *ks, const void *val, size_t len, int64_t expires,
                          int64_t now)
{
    uint64_t off = shm_alloc(ks->r, sizeof(struct kv_entry) + len);
    struct kv_entry *e;

    if (off == 0) {
        sweep(ks, now, KV_SHM_SWEEP_FULL);
        shm_commit(ks->r);      /* swept blocks are reusable only after a commit */
        off = shm_alloc(ks->r, sizeof(struct kv_entry) + len);
        if (off == 0)
            return 0;
    }
    e = shm_ptr(ks->r, off);    /* new in this section: plain stores */
    e->expires_ms = expires;
    e->len = len;
    if (len > 0)
        memcpy(e->bytes, val, len);
    return off;
}

/* Puts a fresh entry under key and frees the one it replaces. */
static int entry_put(struct kv *kv, struct kv_shm *ks, const char *key, uint64_t off)
{
    uint64_t old;
    int rc = shm_map_put(ks->r, ks->map, key, strlen(key), off, &old);

    if (rc == 1)
        shm_free(ks->r, old);
    if (rc >= 0)
        return 0;
    shm_free(ks->r, off);
    return fail(kv, rc, "region full");
}

static int copy_out(struct kv *kv, const struct kv_entry *e, char **val, size_t *len)
{
    char *p = malloc((size_t)e->len + 1);

    if (p == NULL)
        return fail(kv, ERR_NOMEM, "out of memory");
    memcpy(p, e->bytes, (size_t)e->len);
    p[e->len] = '\0';
    *val = p;
    *len = (size_t)e->len;
    return 0;
}

static int kvs_get(struct kv *kv, const char *key, char **val, size_t *len)
{
    struct kv_shm *ks = kv->impl;
    uint64_t e;
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    e = lookup(ks, key, now_ms());
    rc = e == 0 ? ERR_NOTFOUND : copy_out(kv, shm_ptr(ks->r, e), val, len);
    shm_unlock(ks->r);
    return kv->err = rc;
}

static int kvs_set(struct kv *kv, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                   bool nx)
{
    struct kv_shm *ks = kv->impl;
    int64_t now = now_ms();
    uint64_t off;
    int rc;

    if (len > SIZE_MAX / 2)
        return fail(kv, ERR_TOOBIG, "value too big");
    if ((rc = lock(kv, ks)) != 0)
        return rc;
    sweep(ks, now, KV_SHM_SWEEP);
    if (nx && lookup(ks, key, now) != 0) {
        rc = ERR_CONFLICT;
    } else if ((off = entry_new(ks, val, len, deadline(now, ttl_ms), now)) == 0) {
        rc = fail(kv, ERR_NOSPACE, "region full");
    } else {
        rc = entry_put(kv, ks, key, off);
    }
    shm_unlock(ks->r);
    return kv->err = rc;
}

/* DEL; with match, kv_del_eq's compare-and-delete: the live entry under key
 * goes only when it holds exactly the len bytes at val. */
static int del_entry(struct kv *kv, const char *key, bool match, const void *val, size_t len)
{
    struct kv_shm *ks = kv->impl;
    const struct kv_entry *ent;
    uint64_t e;
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    e = lookup(ks, key, now_ms());
    ent = shm_ptr(ks->r, e);
    if (e == 0 || (match && (ent->len != len || memcmp(ent->bytes, val, len) != 0))) {
        rc = ERR_NOTFOUND;
    } else if ((rc = shm_map_del(ks->r, ks->map, key, strlen(key), NULL)) == 0) {
        shm_free(ks->r, e);
    } else {
        fail(kv, rc, "undo log full");
    }
    shm_unlock(ks->r);
    return kv->err = rc;
}

static int kvs_del(struct kv *kv, const char *key)
{
    return del_entry(kv, key, false, NULL, 0);
}

static int kvs_del_eq(struct kv *kv, const char *key, const void *val, size_t len)
{
    return del_entry(kv, key, true, val, len);
}

static int kvs_exists(struct kv *kv, const char *key, bool *yes)
{
    struct kv_shm *ks = kv->impl;
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    *yes = lookup(ks, key, now_ms()) != 0;
    shm_unlock(ks->r);
    return kv->err = 0;
}

static int kvs_exists_get(struct kv *kv, const char *ekey, bool *exists, const char *gkey,
                          char **val, size_t *len)
{
    struct kv_shm *ks = kv->impl;
    int64_t now = now_ms();
    uint64_t e;
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    *exists = lookup(ks, ekey, now) != 0;
    e = lookup(ks, gkey, now);
    if (e != 0 && (rc = copy_out(kv, shm_ptr(ks->r, e), val, len)) != 0)
        *exists = false;
    shm_unlock(ks->r);
    return kv->err = rc;
}

/* INCR; with ttl_ms > 0 also the window rule of kv_incr_window (a counter with
 * no deadline gets now + ttl_ms), *left set to what remains. ttl_ms 0 keeps
 * whatever TTL there is, as INCR does. */
static int incr(struct kv *kv, const char *key, uint64_t ttl_ms, int64_t *out, uint64_t *left)
{
    struct kv_shm *ks = kv->impl;
    int64_t now = now_ms(), v = 0, expires = 0;
    char buf[24];
    uint64_t e, off;
    int rc, n;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    sweep(ks, now, KV_SHM_SWEEP);
    if ((e = lookup(ks, key, now)) != 0) {
        const struct kv_entry *ent = shm_ptr(ks->r, e);

        expires = ent->expires_ms;
        if (!kv_parse_i64(ent->bytes, ent->len, &v) || v == INT64_MAX) {
            rc = fail(kv, ERR_INVAL, "value is not an integer or out of range");
            goto out;
        }
    }
    if (expires == 0 && ttl_ms > 0)
        expires = deadline(now, ttl_ms);
    n = snprintf(buf, sizeof buf, "%lld", (long long)(v + 1));
    if ((off = entry_new(ks, buf, (size_t)n, expires, now)) == 0) {
        rc = fail(kv, ERR_NOSPACE, "region full");
        goto out;
    }
    if ((rc = entry_put(kv, ks, key, off)) == 0) {
        *out = v + 1;
        if (left != NULL)
            *left = expires != 0 ? (uint64_t)(expires - now) : 0;
    }
out:
    shm_unlock(ks->r);
    return kv->err = rc;
}

static int kvs_incr(struct kv *kv, const char *key, int64_t *out)
{
    return incr(kv, key, 0, out, NULL);
}

static int kvs_incr_window(struct kv *kv, const char *key, uint64_t ttl_ms, int64_t *out,
                           uint64_t *ttl_left_ms)
{
    return incr(kv, key, ttl_ms, out, ttl_left_ms);
}

static int kvs_counter(struct kv *kv, const char *key, int64_t *out, uint64_t *ttl_left_ms)
{
    struct kv_shm *ks = kv->impl;
    int64_t now = now_ms();
    uint64_t e;
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    if ((e = lookup(ks, key, now)) != 0) {
        const struct kv_entry *ent = shm_ptr(ks->r, e);

        if (!kv_parse_i64(ent->bytes, ent->len, out))
            rc = fail(kv, ERR_INVAL, "value is not an integer");
        else if (ent->expires_ms != 0)
            *ttl_left_ms = (uint64_t)(ent->expires_ms - now);
    }
    shm_unlock(ks->r);
    return kv->err = rc;
}

static int kvs_ping(struct kv *kv)
{
    struct kv_shm *ks = kv->impl;
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    shm_unlock(ks->r);
    return kv->err = 0;
}

static void kvs_free(struct kv *kv)
{
    free(kv->impl);
    free(kv);
}

static int kvs_mget(struct kv *kv, const char *const *keys, size_t n, char **vals, size_t *lens)
{
    struct kv_shm *ks = kv->impl;
    int64_t now = now_ms();
    int rc;

    if ((rc = lock(kv, ks)) != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t e = lookup(ks, keys[i], now);
        if (e != 0)
            rc = copy_out(kv, shm_ptr(ks->r, e), &vals[i], &lens[i]);
    }
    shm_unlock(ks->r);
    if (rc != 0)
        kv_mget_clear(vals, lens, n);
    return kv->err = rc;
}

static const struct kv_ops kv_shm_ops = {
    .name = "shm",
    .get = kvs_get,
    .set = kvs_set,
    .del = kvs_del,
    .del_eq = kvs_del_eq,
    .exists = kvs_exists,
    .exists_get = kvs_exists_get,
    .mget = kvs_mget,
    .incr = kvs_incr,
    .incr_window = kvs_incr_window,
    .counter = kvs_counter,
    .ping = kvs_ping,
    .free = kvs_free,
};

/* Finds or makes the root record and its map, in one section. */
static int attach(struct kv_shm *ks, char errstr[128])
{
    struct shm_region *r = ks->r;
    struct kv_shm_root *root;

    if (shm_lock(r) != 0) {
        snprintf(errstr, 128, "kv shm: region lock unusable");
        return ERR_INTERNAL;
    }
    ks->root = shm_root_get(r, KV_SHM_ROOT);
    if (ks->root == 0) {
        uint64_t off = shm_alloc(r, sizeof *root), map = shm_map_new(r, 64);

        if (off == 0 || map == 0 || shm_root_set(r, KV_SHM_ROOT, off) != 0) {
            shm_abort(r);
            snprintf(errstr, 128, "kv shm: region full");
            return ERR_NOSPACE;
        }
        root = shm_ptr(r, off);
        root->map = map;
        root->sweep_pos = 0;
        ks->root = off;
    }
    ks->map = ((struct kv_shm_root *)shm_ptr(r, ks->root))->map;
    shm_unlock(r);
    return 0;
}

struct kv *kv_shm_new(struct shm_region *r, char errstr[128])
{
    char scratch[128];
    struct kv *kv;
    struct kv_shm *ks;

    if (errstr == NULL)
        errstr = scratch;
    kv = calloc(1, sizeof *kv);
    ks = calloc(1, sizeof *ks);
    if (kv == NULL || ks == NULL) {
        snprintf(errstr, 128, "kv shm: out of memory");
        goto fail;
    }
    ks->r = r;
    if (attach(ks, errstr) != 0)
        goto fail;
    kv->ops = &kv_shm_ops;
    kv->impl = ks;
    return kv;
fail:
    free(ks);
    free(kv);
    return NULL;
}
