/* cache: the read cache (DESIGN §3 "CacheStore", seed 003) over the kv
 * interface — Redis, or the memory engine's shared region when no Redis is
 * configured. Three properties:
 *   - remember(key, ttl, loader) collapses a stampede across processes: on a
 *     miss one process takes a short lock (SET NX PX with a token of its own,
 *     released only by its holder) and runs the loader; the others wait for the
 *     value with a growing sleep (never a spin), and load it themselves only when
 *     the lock is gone without a value (the holder died, failed, or its lock
 *     expired) or when they have waited wait_ms.
 *   - values are kept in an envelope {"v": …}, so a result that does not exist
 *     (a 404, an empty lookup) is a hit too, told apart from a miss.
 *   - invalidation is a version bump: keys of what a write changes embed the
 *     version read from their namespace's version key, and a committed write
 *     INCRs that key once; entries of older versions are never read again and age
 *     out on their TTL. Nothing here scans the keyspace (no SCAN, no KEYS).
 * Keys are "{<mode>:<org>}:…": the mode and the org come first, so a test-mode
 * write never touches a live-mode read; the braces are the Redis Cluster hash
 * tag, so a version key and the keys it guards share a slot.
 *
 * The cache fails open: when the kv is down or slow the loader runs and its
 * value is returned (counted as a fallback); a kv failure is never the caller's
 * error. Only the loader's own failure is. Values are JSON text (the loader
 * renders them), never plaintext personal data: callers keep pii sealed or
 * leave it out. A cache belongs to one process, like its kv handle. */
#ifndef LIB_STORE_CACHE_H
#define LIB_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "store/kv.h"

#define CACHE_KEY_MAX 512       /* bytes in a key, NUL included */

/* What one use of the cache did (the caller keeps one per use, for /metrics). */
struct cache_stats {
    uint64_t hits;              /* served from the cache (a cached null included) */
    uint64_t misses;            /* not in the cache when asked */
    uint64_t loads;             /* loader runs */
    uint64_t waits;             /* calls that waited for another process's load */
    uint64_t lock_timeouts;     /* waited wait_ms and loaded themselves */
    uint64_t fallbacks;         /* the kv failed: served by the loader */
    uint64_t bump_errors;       /* version bumps the kv failed (old entries live to their TTL) */
    uint64_t ahead;             /* versions read ahead with the request's first round trip */
};
/* The counters are added to atomically (relaxed), so a struct may live in shared
 * memory (fleet/metrics) and be shared by a slot's old and new worker in a reload. */

struct cache {
    struct kv *kv;              /* borrowed */
    unsigned lock_ms;           /* the lock's TTL: how long a dead holder blocks the key */
    unsigned wait_ms;           /* the longest a waiter waits before loading itself */
    char token[40];             /* this process's lock token prefix */
    uint64_t seq;
};

/* Fills a value of the key into out (JSON text) with *found true, or leaves
 * *found false for "there is none" (cached as a null). 0, or an err.h code:
 * a failed load is returned to the caller and never cached. */
typedef int (*cache_load_fn)(void *ctx, struct buf *out, bool *found);

/* Sets c up over kv (borrowed, which must outlive it). lock_ms and wait_ms > 0;
 * wait_ms should exceed lock_ms, so that a holder killed mid-load is replaced by
 * one waiter when its lock expires rather than by every waiter at wait_ms.
 * ERR_INVAL for zeros, or what crypto_random says. */
int cache_init(struct cache *c, struct kv *kv, unsigned lock_ms, unsigned wait_ms) ERR_MUST_CHECK;

/* key's value into out (reset first) with *found, from the cache or else from
 * load(ctx), stored for ttl_ms (> 0). Returns 0, or the loader's error (then
 * out holds nothing). Never a kv error: those are fallbacks. */
int cache_remember(struct cache *c, struct cache_stats *st, const char *key, uint64_t ttl_ms,
                   cache_load_fn load, void *ctx, struct buf *out, bool *found) ERR_MUST_CHECK;

/* Adds 1 to one of a cache_stats' counters (relaxed atomic): for what a caller
 * found itself (a value read in a round trip with others and unwrapped with
 * cache_unwrap is a hit; a failed round trip a fallback). */
void cache_count(uint64_t *counter);

/* The current version of the namespace whose version key is vkey (0 when it was
 * never bumped, or has aged out). 0, or the kv's error (counted as a fallback:
 * the caller then leaves the cache out of this read). */
int cache_version(struct cache *c, struct cache_stats *st, const char *vkey, int64_t *ver) ERR_MUST_CHECK;

/* Bumps vkey's version (one INCR): run after the write committed and before the
 * response is sent, so the next read on any worker misses. 0, or the kv's error
 * (entries of the old version then live until their TTL: keep TTLs short). */
int cache_bump(struct cache *c, struct cache_stats *st, const char *vkey) ERR_MUST_CHECK;

/* "{<mode>:<org>}:<rest>" into out (CACHE_KEY_MAX bytes), rest printf-formatted.
 * ERR_TOOBIG when it does not fit; ERR_INVAL for an empty mode or org. */
int cache_key(char out[CACHE_KEY_MAX], const char *mode, const char *org, const char *fmt, ...)
    __attribute__((format(printf, 4, 5))) ERR_MUST_CHECK;

/* The envelope: what the cache stores for a value (payload, JSON text; NULL for
 * none) into out, and the way back. cache_unwrap points *payload into val (not
 * copied) with *plen, and sets *found; ERR_INVAL when val is no envelope. */
int cache_wrap(struct buf *out, const char *payload, size_t plen) ERR_MUST_CHECK;
int cache_unwrap(const char *val, size_t len, const char **payload, size_t *plen, bool *found) ERR_MUST_CHECK;

#endif
