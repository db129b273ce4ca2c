/* shm: one shared-memory region for the memory engine and the shm kv.
 * The fleet master maps it (MAP_SHARED|MAP_ANONYMOUS) before it forks, so every
 * worker sees the same bytes; it holds an allocator, hash maps keyed by byte
 * strings, and a small named root directory, all guarded by one robust,
 * process-shared lock whose critical sections are atomic even when the holder
 * is SIGKILLed. It knows nothing of users or tokens: engines build on it.
 *
 * Offsets, not pointers. Every reference stored inside the region is an offset
 * from the region's base (uint64_t; 0 means "none"). With fork the base is the
 * same in every worker, so pointers would happen to work today; offsets keep the
 * structure valid under any mapping address, which is what a file-backed region
 * (a restart that keeps data) or a process that maps it later would need.
 * shm_ptr() turns an offset into a pointer valid in the calling process.
 * A struct shm_region handle is used by one thread of one process (workers are
 * single-threaded); a fork child may keep using the handle it inherited.
 *
 * Sections. All calls below except shm_create/shm_destroy/shm_ptr must be made
 * between shm_lock() and shm_unlock() (or shm_abort()), by the process holding
 * the lock. A section is a transaction:
 *   - shm_unlock() commits it; shm_abort() rolls it back;
 *   - if the holder dies inside it (SIGKILL, segfault, abort), the next
 *     shm_lock() rolls it back before returning: every allocation, free, map
 *     change, root change and shm_write() of the dead section is undone, so the
 *     region is exactly as it was when that section began. Nothing leaks and
 *     nothing is half-linked. A holder killed after the commit point inside
 *     shm_unlock() keeps its section. (How: every store to memory that existed
 *     before the section goes through an undo log in the region; see shm.c.)
 * The one rule callers must follow for that guarantee to cover their own data:
 *   - bytes from shm_alloc() in the current section may be written directly
 *     through shm_ptr() (a rollback frees the block, so nobody sees them);
 *   - bytes that existed before the section are changed only with shm_write()
 *     or shm_set64(), or better replaced copy-on-write: build a new record,
 *     shm_map_put() its offset, shm_free() the old one.
 * Memory given to shm_free() becomes reusable after the section commits (never
 * inside it: that is what lets a rollback hand the block back intact).
 *
 * Each section's undo log has a fixed capacity (shm_stats.undo_cap entries:
 * one per 256 bytes of region, 4096 to 65536; 16 bytes each). An entry is
 * taken by each distinct word a section changes that predates it: a map insert
 * takes about 10, a delete 3, shm_alloc about 8, shm_free none, shm_write one
 * per 8 bytes; writes into new blocks take none. A section that runs out sees
 * shm_alloc() return 0 and the other calls return ERR_NOSPACE, with nothing
 * half-done. Bulk work either builds new structures in new blocks and
 * publishes them with one logged store (atomic at any size), or calls
 * shm_commit() every few hundred operations (atomic per chunk). */
#ifndef LIB_SHM_H
#define LIB_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct shm_region;

#define SHM_MIN_BYTES (256u * 1024)     /* smallest region shm_create accepts */
#define SHM_ROOT_MAX 32                 /* named root entries */
#define SHM_ROOT_NAME_MAX 31            /* bytes in a root name, without the NUL */
#define SHM_MAP_KEY_MAX 1024            /* bytes in a map key */

/* Region lifetime. */

/* Returns owned: a fresh zeroed region of `bytes` (rounded up to pages), mapped
 * shared and anonymous, for the master to create before it forks. NULL on
 * failure with the reason in errstr (which may be NULL). */
struct shm_region *shm_create(size_t bytes, char errstr[128]);
/* Unmaps this process's view and frees the handle; the memory itself goes away
 * when the last process that has it mapped unmaps it or exits. NULL is a no-op. */
void shm_destroy(struct shm_region *r);

/* Locking: one robust, process-shared mutex for the whole region. */

/* Takes the lock, waiting for it. If the previous holder died inside a section,
 * rolls that section back first (shm_stats.recoveries counts these). 0, or
 * ERR_INTERNAL if the mutex is unusable or already held by this process. */
int shm_lock(struct shm_region *r) ERR_MUST_CHECK;
/* Commits the section and releases the lock. */
void shm_unlock(struct shm_region *r);
/* Rolls the section back (as if the holder had died) and releases the lock. */
void shm_abort(struct shm_region *r);
/* Commits the section so far and keeps the lock: for bulk work that would not fit
 * one undo log. A later shm_abort() undoes only what came after it. */
void shm_commit(struct shm_region *r);
/* Whether this process holds the lock (for assertions in callers). */
bool shm_locked(const struct shm_region *r);

/* Allocator: two-level segregated fit (TLSF) with boundary-tag coalescing,
 * O(1) alloc and free, payloads 16-byte aligned, 16 bytes of overhead a block. */

/* An offset to at least n bytes, or 0 when the region (or the section's undo
 * log) is full; the region is left unchanged by a failure. */
uint64_t shm_alloc(struct shm_region *r, size_t n) ERR_MUST_CHECK;
/* Gives back a block from shm_alloc; 0 is a no-op. Reusable after the section
 * commits. Freeing twice or freeing a non-block aborts (it is a bug, and a
 * crashed section is rolled back). */
void shm_free(struct shm_region *r, uint64_t off);
/* The usable bytes of a block (at least what was asked for). */
size_t shm_size(const struct shm_region *r, uint64_t off);
/* Borrowed: a pointer for an offset, valid in this process while the region is
 * mapped; NULL for offset 0. Reading needs the lock like everything else. */
void *shm_ptr(const struct shm_region *r, uint64_t off);
/* The offset of a pointer into the region (inverse of shm_ptr). */
uint64_t shm_off(const struct shm_region *r, const void *p);

/* Logged writes: the way to change bytes that existed before the section. */

/* Copies n bytes to off, a range inside a block the caller owns. 0, ERR_INVAL
 * for a range outside the heap, or ERR_NOSPACE if the undo log is full (then
 * nothing is written). One log entry per 8 bytes touched. */
int shm_write(struct shm_region *r, uint64_t off, const void *src, size_t n) ERR_MUST_CHECK;
/* Stores one 8-byte-aligned uint64 at off, logged. */
int shm_set64(struct shm_region *r, uint64_t off, uint64_t v) ERR_MUST_CHECK;

/* Root directory: a few named offsets, so each engine finds its structures. */

/* The offset stored under name, or 0 if there is none. */
uint64_t shm_root_get(struct shm_region *r, const char *name);
/* Stores off under name (off 0 removes the name). 0, ERR_INVAL for a name
 * longer than SHM_ROOT_NAME_MAX or empty, ERR_NOSPACE when the directory or the
 * undo log is full. */
int shm_root_set(struct shm_region *r, const char *name, uint64_t off) ERR_MUST_CHECK;

/* Hash maps: byte-string keys (1..SHM_MAP_KEY_MAX bytes) to uint64 values,
 * typically offsets of records. Open addressing with linear probing over a slot
 * array that doubles at 3/4 load and halves below 1/8 (resizing happens only
 * on insert); keys are copied into the region; the hash is SipHash-2-4 with a
 * random key per map, so crafted keys cannot force collisions. O(1) average.
 * A map is identified by its offset: create it, then keep that offset somewhere
 * reachable (a root entry, or a field of another record):
 *
 *     uint64_t users = shm_map_new(r, 1024);
 *     if (users == 0 || shm_root_set(r, "mem.users", users) != 0) ...
 *     ...
 *     uint64_t users = shm_root_get(r, "mem.users");
 *     if (shm_map_get(r, users, id, 16, &rec) == 0) ... shm_ptr(r, rec) ...
 */

/* A new empty map sized for about `hint` keys; its offset, or 0 when full. */
uint64_t shm_map_new(struct shm_region *r, size_t hint) ERR_MUST_CHECK;
/* Frees the map, its slot array and its copies of the keys; the values are the
 * caller's (free those first, with shm_map_next). 0 is a no-op. Any size fits
 * one section: frees cost the undo log nothing (see shm.c). */
void shm_map_free(struct shm_region *r, uint64_t map);
/* Looks key up: 0 with *val set (val may be NULL), or ERR_NOTFOUND. */
int shm_map_get(struct shm_region *r, uint64_t map, const void *key, size_t klen,
                uint64_t *val) ERR_MUST_CHECK;
/* Inserts or replaces. Returns 0 if the key was new, 1 if it replaced a value
 * (then *old holds it, when old is not NULL), ERR_INVAL for a bad key length,
 * ERR_NOSPACE when the region or undo log is full (the map is unchanged). */
int shm_map_put(struct shm_region *r, uint64_t map, const void *key, size_t klen,
                uint64_t val, uint64_t *old) ERR_MUST_CHECK;
/* Inserts only if absent: 0, ERR_CONFLICT if the key exists, or as shm_map_put. */
int shm_map_add(struct shm_region *r, uint64_t map, const void *key, size_t klen,
                uint64_t val) ERR_MUST_CHECK;
/* Removes key: 0 with the removed value in *old (may be NULL), or ERR_NOTFOUND,
 * or ERR_NOSPACE if the undo log is full. */
int shm_map_del(struct shm_region *r, uint64_t map, const void *key, size_t klen,
                uint64_t *old) ERR_MUST_CHECK;
/* Live keys in the map. */
size_t shm_map_count(struct shm_region *r, uint64_t map);

/* One entry, as shm_map_next hands it out; key is Borrowed until the map is
 * next changed or the section ends. */
struct shm_map_entry {
    const void *key;
    size_t klen;
    uint64_t val;
};

/* Iteration: start with *pos = 0; each call stores the next live entry at or
 * after *pos in *e, advances *pos past it and returns true; false at the end of
 * the slot array. Deleting the entry just returned is allowed during iteration;
 * inserting is not (an insert may resize, which reorders the slots). A stale
 * *pos (after a resize) is safe: it just restarts or ends early. */
bool shm_map_next(struct shm_region *r, uint64_t map, uint64_t *pos,
                  struct shm_map_entry *e);
/* The same walk for values only, a batch at a time: up to max values of live
 * entries at or after *pos into out, *pos advanced past them; how many (0 at
 * the end). No key is read: for scans over many entries that need only what
 * the values point to (a vector search touches each record once). */
size_t shm_map_vals(struct shm_region *r, uint64_t map, uint64_t *pos, uint64_t *out, size_t max);

/* Introspection. */

struct shm_stats {
    size_t size;            /* bytes mapped */
    size_t heap;            /* bytes the allocator manages */
    size_t used;            /* bytes in allocated blocks, overhead included */
    size_t free;            /* heap - used */
    size_t blocks;          /* live allocations */
    size_t undo_cap;        /* undo log entries per section */
    uint64_t recoveries;    /* sections rolled back after their holder died */
    uint64_t alloc_failures;/* shm_alloc calls that returned 0 */
    uint64_t lost;          /* blocks dropped by a damaged free queue (a bug) */
};

/* Fills *st (under the lock). */
void shm_stats(struct shm_region *r, struct shm_stats *st);
/* Walks the whole heap and every free list and checks each invariant: 0, or
 * ERR_INTERNAL with the first broken one described in errstr. O(heap); for
 * tests and debugging. */
int shm_check(struct shm_region *r, char errstr[128]) ERR_MUST_CHECK;

#endif
