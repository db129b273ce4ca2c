/* shm: the shared-memory region, its allocator, maps and crash-atomic sections.
 *
 * Layout of the region (offsets from base):
 *   [0, sizeof hdr)        struct shm_hdr: mutex, transaction state, allocator
 *                          bins, root directory, statistics
 *   [undo_off, +cap*16)    the undo log: (offset, old 8-byte word) pairs
 *   [heap_start, heap_end) the heap: blocks back to back, then a size-0
 *                          "epilogue" header at heap_end that is never free
 *
 * Crash atomicity. A holder can die at any instruction. Every store the
 * library makes to memory that existed before the section goes through wr():
 * it appends (offset, old word) to the undo log, bumps undo_n, and only then
 * stores — with compiler barriers between, since a kill is asynchronous like a
 * signal. Storing undo_n = 0 is the commit point (one aligned store). On
 * EOWNERDEAD the next locker replays the log backwards, which restores every
 * word to its value at the start of the section; replaying is idempotent, so a
 * locker that itself dies while recovering is recovered by the next one. Writes
 * into blocks allocated in the section need no log: a rollback returns the
 * block to the free lists (alloc logged the three free-list words that user
 * data may overwrite: next, prev and footer), so nobody can see those bytes.
 *
 * Frees are deferred. A block freed and reallocated in the same section would
 * be rolled back to "allocated, old contents" while its payload holds the new
 * owner's unlogged writes. So shm_free() only pushes the block on a quarantine
 * list (the qhead word is logged once per section; the block's link lives in
 * its own header, which user data never covers), and the list is drained into
 * the bins after the commit, one logged free at a time, each drained block its
 * own small transaction. A rollback walks the part of the quarantine pushed in
 * the section to clear the QUAR marks, then restores qhead from the log. This
 * makes a free cost the log nothing, so dropping a map of any size fits one
 * section.
 *
 * Allocator: TLSF (two-level segregated fit). Block sizes are multiples of 16;
 * sizes below 256 have one list per size, above that each power of two is split
 * into 16 lists. Bitmaps of non-empty lists find a fit in O(1); boundary tags
 * (a footer in free blocks, PREV_FREE in the next header) coalesce neighbours in
 * O(1). A block: [size|flags][qlink][payload…], payload 16-byte aligned; free:
 * [size|flags][next][prev] … [size]. */
#include "store/mem/shm.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SHM_MAGIC 0x3130736172657374ull   /* "tesras01" */
#define SHM_MAX_BYTES (1ull << 44)

#define B_FREE      1ull    /* block is in a free list */
#define B_PREV_FREE 2ull    /* the block before is free (its footer is valid) */
#define B_QUAR      4ull    /* freed, waiting in the quarantine for the commit */
#define B_FLAGS     15ull
#define B_HDR       16u     /* header word + quarantine link */
#define B_MIN       32u     /* header, next, prev, footer */

#define SL_LOG2     4
#define SL_COUNT    (1u << SL_LOG2)
#define FL_SHIFT    (SL_LOG2 + 4)
#define SMALL_BLOCK (1ull << FL_SHIFT)
#define FL_COUNT    40
#define FIT_SCAN    16      /* blocks looked at when the rounded class is empty */

/* Worst-case undo entries of one operation (counted in the code below). */
#define ALLOC_COST  24
#define FREE_COST   24
#define MAP_PUT_COST (2 * ALLOC_COST + 16)
#define MAP_DEL_COST 8
#define ROOT_COST   8

#define MAP_MAGIC   0x3130706d72737374ull
#define MAP_MIN_CAP 8u
#define SLOT_EMPTY  0u
#define SLOT_TOMB   1u

#define barrier() __asm__ __volatile__("" ::: "memory")

struct undo {
    uint64_t off;
    uint64_t old;
};

struct root_entry {
    char name[SHM_ROOT_NAME_MAX + 1];
    uint64_t off;
};

struct shm_hdr {
    uint64_t magic;
    uint64_t size;
    uint64_t undo_off;
    uint64_t undo_cap;
    uint64_t heap_start;
    uint64_t heap_end;          /* offset of the epilogue header */
    pthread_mutex_t lock;
    /* Transaction bookkeeping: plain stores, never logged. */
    uint64_t undo_n;            /* log entries; storing 0 commits */
    uint64_t q_logged;          /* qhead is in the log for this section */
    uint64_t q_start;           /* qhead before this section's first free */
    int64_t owner;              /* pid of the holder, 0 when unlocked */
    /* Allocator and directory: changed only through wr(). */
    uint64_t qhead;
    uint64_t fl_map;
    uint64_t sl_map[FL_COUNT];
    uint64_t heads[FL_COUNT][SL_COUNT];
    uint64_t used;
    uint64_t blocks;
    struct root_entry root[SHM_ROOT_MAX];
    /* Statistics: plain stores, a count may be lost when a holder dies. */
    uint64_t recoveries;
    uint64_t alloc_failures;
    uint64_t lost;
};

#define SEEN_BITS 9

/* Process-local view; the fork children inherit it as is. `seen` remembers
 * words already logged in the current section (a word needs only its first,
 * pre-section value), so hot words — list heads, bitmaps, counters — take one
 * entry a section instead of one a write; `gen` moves on at every commit and
 * rollback, which forgets them all at once. */
struct shm_region {
    unsigned char *base;
    size_t size;
    struct shm_hdr *h;
    struct undo *log;
    uint64_t gen;
    uint64_t seen_off[1u << SEEN_BITS];
    uint64_t seen_gen[1u << SEEN_BITS];
};

struct map_hdr {
    uint64_t magic;
    uint64_t table;             /* offset of cap slots */
    uint64_t cap;               /* power of two */
    uint64_t count;             /* live keys */
    uint64_t tombs;             /* deleted slots still breaking no probe chain */
    uint64_t k0, k1;            /* SipHash key */
};

struct map_slot {
    uint64_t hash;
    uint64_t key;               /* SLOT_EMPTY, SLOT_TOMB or offset of a keyrec */
    uint64_t val;
};

struct keyrec {
    uint64_t len;
    unsigned char bytes[];
};

static void set_err(char errstr[128], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char errstr[128], const char *fmt, ...)
{
    va_list ap;

    if (errstr == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, 128, fmt, ap);
    va_end(ap);
}

/* A broken invariant in shared state: dying is the safe move, since the
 * section in progress is rolled back by the next locker. */
static void __attribute__((noreturn)) shm_panic(const char *what, uint64_t off)
{
    fprintf(stderr, "shm: %s (offset %llu)\n", what, (unsigned long long)off);
    abort();
}

static inline uint64_t *word(const struct shm_region *r, uint64_t off)
{
    return (uint64_t *)(void *)(r->base + off);
}

static inline uint64_t hoff(const struct shm_region *r, const void *field)
{
    return (uint64_t)((const unsigned char *)field - r->base);
}

/* ---- undo log ---------------------------------------------------------- */

/* Entries an operation may use; the last slot is kept for the qhead save of
 * shm_free, which cannot fail. */
static uint64_t undo_room(const struct shm_region *r)
{
    return r->h->undo_cap - 1 - r->h->undo_n;
}

static void undo_save(struct shm_region *r, uint64_t off)
{
    struct shm_hdr *h = r->h;
    unsigned slot = (unsigned)(((off >> 3) * 0x9e3779b97f4a7c15ull) >> (64 - SEEN_BITS));
    struct undo *u;

    if (r->seen_gen[slot] == r->gen && r->seen_off[slot] == off)
        return;
    r->seen_gen[slot] = r->gen;
    r->seen_off[slot] = off;
    if (h->undo_n >= h->undo_cap)
        shm_panic("undo log overflow", off);
    u = &r->log[h->undo_n];
    u->off = off;
    u->old = *word(r, off);
    barrier();
    h->undo_n++;
    barrier();
}

/* The one way library code changes a word that may predate the section. */
static void wr(struct shm_region *r, uint64_t off, uint64_t v)
{
    if (*word(r, off) == v)
        return;
    undo_save(r, off);
    *word(r, off) = v;
}

static void log_write(struct shm_region *r, uint64_t off, const void *src, size_t n)
{
    uint64_t first = off & ~7ull, last = (off + n - 1) & ~7ull;

    for (uint64_t w = first; w <= last; w += 8)
        undo_save(r, w);
    barrier();
    memcpy(r->base + off, src, n);
}

static bool heap_block_ok(const struct shm_region *r, uint64_t b)
{
    const struct shm_hdr *h = r->h;
    uint64_t size;

    if (b < h->heap_start || b >= h->heap_end || (b & 15) != 0)
        return false;
    size = *word(r, b) & ~B_FLAGS;
    return size >= B_MIN && (size & 15) == 0 && size <= h->heap_end - b;
}

static void tx_rollback(struct shm_region *r)
{
    struct shm_hdr *h = r->h;
    uint64_t n = h->undo_n, limit = (h->heap_end - h->heap_start) / B_MIN;

    if (n > h->undo_cap)
        n = h->undo_cap;
    /* Unmark the blocks this section queued; qhead itself comes back from the
     * log below. Nothing here changes the chain, so a rerun walks it again. */
    if (n > 0 && h->q_logged) {
        for (uint64_t b = h->qhead; b != h->q_start && limit-- > 0; b = *word(r, b + 8)) {
            if (!heap_block_ok(r, b))
                break;
            *word(r, b) &= ~B_QUAR;
        }
    }
    for (uint64_t i = n; i-- > 0;) {
        uint64_t off = r->log[i].off;

        if (off + 8 > h->size || (off & 7) != 0)
            continue;   /* an entry torn by the kill was never counted; cannot happen */
        *word(r, off) = r->log[i].old;
    }
    barrier();
    h->undo_n = 0;
    barrier();
    h->q_logged = 0;
    r->gen++;
}

static void tx_commit(struct shm_region *r)
{
    barrier();
    r->h->undo_n = 0;
    barrier();
    r->h->q_logged = 0;
    r->gen++;
}

/* ---- TLSF lists ---------------------------------------------------------- */

static void mapping(uint64_t size, unsigned *fl, unsigned *sl)
{
    if (size < SMALL_BLOCK) {
        *fl = 0;
        *sl = (unsigned)(size >> 4);
    } else {
        unsigned lg = 63u - (unsigned)__builtin_clzll(size);

        *sl = (unsigned)(size >> (lg - SL_LOG2)) ^ SL_COUNT;
        *fl = lg - FL_SHIFT + 1;
    }
}

static void list_insert(struct shm_region *r, uint64_t b, uint64_t size)
{
    struct shm_hdr *h = r->h;
    unsigned fl, sl;
    uint64_t head;

    mapping(size, &fl, &sl);
    head = h->heads[fl][sl];
    wr(r, b + 8, head);
    wr(r, b + 16, 0);
    if (head != 0)
        wr(r, head + 16, b);
    wr(r, hoff(r, &h->heads[fl][sl]), b);
    wr(r, hoff(r, &h->sl_map[fl]), h->sl_map[fl] | 1ull << sl);
    wr(r, hoff(r, &h->fl_map), h->fl_map | 1ull << fl);
}

static void list_remove(struct shm_region *r, uint64_t b, uint64_t size)
{
    struct shm_hdr *h = r->h;
    uint64_t next = *word(r, b + 8), prev = *word(r, b + 16);
    unsigned fl, sl;

    mapping(size, &fl, &sl);
    if (prev != 0)
        wr(r, prev + 8, next);
    else
        wr(r, hoff(r, &h->heads[fl][sl]), next);
    if (next != 0)
        wr(r, next + 16, prev);
    if (h->heads[fl][sl] == 0) {
        wr(r, hoff(r, &h->sl_map[fl]), h->sl_map[fl] & ~(1ull << sl));
        if (h->sl_map[fl] == 0)
            wr(r, hoff(r, &h->fl_map), h->fl_map & ~(1ull << fl));
    }
}

/* The first block of the first non-empty list whose every block fits `size`;
 * failing that, a bounded look through the list `size` itself falls in. */
static uint64_t find_fit(const struct shm_region *r, uint64_t size, uint64_t *bsize)
{
    const struct shm_hdr *h = r->h;
    uint64_t want = size, slmap, b;
    unsigned fl, sl;

    if (want >= SMALL_BLOCK)
        want += (1ull << (63u - (unsigned)__builtin_clzll(want) - SL_LOG2)) - 1;
    mapping(want, &fl, &sl);
    if (fl < FL_COUNT) {
        slmap = h->sl_map[fl] & (~0ull << sl);
        if (slmap == 0) {
            uint64_t flmap = h->fl_map & (~0ull << (fl + 1));

            if (flmap != 0) {
                fl = (unsigned)__builtin_ctzll(flmap);
                slmap = h->sl_map[fl];
            }
        }
        if (slmap != 0) {
            b = h->heads[fl][(unsigned)__builtin_ctzll(slmap)];
            *bsize = *word(r, b) & ~B_FLAGS;
            return b;
        }
    }
    mapping(size, &fl, &sl);
    if (fl >= FL_COUNT)
        return 0;
    b = h->heads[fl][sl];
    for (int i = 0; b != 0 && i < FIT_SCAN; i++, b = *word(r, b + 8)) {
        *bsize = *word(r, b) & ~B_FLAGS;
        if (*bsize >= size)
            return b;
    }
    return 0;
}

/* The real free, at drain time: coalesce with free neighbours, insert. */
static void block_release(struct shm_region *r, uint64_t b)
{
    struct shm_hdr *h = r->h;
    uint64_t hd = *word(r, b), size = hd & ~B_FLAGS, nb, nhd;

    wr(r, hoff(r, &h->used), h->used - size);
    wr(r, hoff(r, &h->blocks), h->blocks - 1);
    if (hd & B_PREV_FREE) {
        uint64_t psize = *word(r, b - 8);

        list_remove(r, b - psize, psize);
        b -= psize;
        size += psize;
    }
    nb = b + size;
    nhd = *word(r, nb);
    if (nhd & B_FREE) {
        list_remove(r, nb, nhd & ~B_FLAGS);
        size += nhd & ~B_FLAGS;
    }
    wr(r, b, size | B_FREE);    /* the block before a free block is never free */
    wr(r, b + size - 8, size);
    list_insert(r, b, size);
    nb = b + size;
    wr(r, nb, *word(r, nb) | B_PREV_FREE);
}

/* Moves the quarantine into the bins; called after a commit. Each block is
 * a transaction of its own, batched while the log has room. */
static void q_drain(struct shm_region *r)
{
    struct shm_hdr *h = r->h;

    while (h->qhead != 0) {
        uint64_t b = h->qhead, hd;

        if (!heap_block_ok(r, b) || ((hd = *word(r, b)) & (B_FREE | B_QUAR)) != B_QUAR) {
            /* Only a bug gets here (say a double free inside one section
             * made a cycle); leak the rest rather than spread the damage. */
            wr(r, hoff(r, &h->qhead), 0);
            h->lost++;
            break;
        }
        if (undo_room(r) < FREE_COST + 1)
            tx_commit(r);
        wr(r, hoff(r, &h->qhead), *word(r, b + 8));
        block_release(r, b);
    }
    tx_commit(r);
}

/* ---- region ------------------------------------------------------------ */

static int init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int rc;

    if ((rc = pthread_mutexattr_init(&a)) != 0)
        return rc;
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
        (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0 &&
        (rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) == 0)
        rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

struct shm_region *shm_create(size_t bytes, char errstr[128])
{
    long page = sysconf(_SC_PAGESIZE);
    struct shm_region *r;
    struct shm_hdr *h;
    uint64_t cap, size;
    void *base;
    int rc;

    if (bytes < SHM_MIN_BYTES || bytes > SHM_MAX_BYTES) {
        set_err(errstr, "shm: size %zu outside [%u, %llu]", bytes, SHM_MIN_BYTES,
                (unsigned long long)SHM_MAX_BYTES);
        return NULL;
    }
    if (page <= 0)
        page = 4096;
    bytes = (bytes + (size_t)page - 1) & ~((size_t)page - 1);
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        set_err(errstr, "shm: out of memory");
        return NULL;
    }
    base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        set_err(errstr, "shm: mmap %zu bytes: %s", bytes, strerror(errno));
        free(r);
        return NULL;
    }
    r->base = base;
    r->size = bytes;
    r->h = h = base;

    cap = bytes / 256;     /* 1/16 of the region, between 64 KiB and 1 MiB */
    cap = cap < 4096 ? 4096 : cap > 65536 ? 65536 : cap;
    h->magic = SHM_MAGIC;
    h->size = bytes;
    h->undo_off = (sizeof *h + 15) & ~15ull;
    h->undo_cap = cap;
    h->heap_start = (h->undo_off + cap * sizeof(struct undo) + 15) & ~15ull;
    h->heap_end = (bytes - 16) & ~15ull;
    r->log = (struct undo *)(void *)(r->base + h->undo_off);
    if ((rc = init_mutex(&h->lock)) != 0) {
        set_err(errstr, "shm: robust process-shared mutex: %s", strerror(rc));
        munmap(base, bytes);
        free(r);
        return NULL;
    }
    /* One free block spanning the heap, built with the normal list code and
     * committed at once (no other process exists yet). */
    size = h->heap_end - h->heap_start;
    *word(r, h->heap_end) = B_PREV_FREE;
    *word(r, h->heap_start) = size | B_FREE;
    *word(r, h->heap_end - 8) = size;
    list_insert(r, h->heap_start, size);
    tx_commit(r);
    return r;
}

void shm_destroy(struct shm_region *r)
{
    if (r == NULL)
        return;
    munmap(r->base, r->size);
    free(r);
}

bool shm_locked(const struct shm_region *r)
{
    return r->h->owner == (int64_t)getpid();
}

int shm_lock(struct shm_region *r)
{
    struct shm_hdr *h = r->h;
    int rc = pthread_mutex_lock(&h->lock);

    if (rc == EOWNERDEAD) {
        tx_rollback(r);
        h->recoveries++;
        if (pthread_mutex_consistent(&h->lock) != 0) {
            pthread_mutex_unlock(&h->lock);
            return ERR_INTERNAL;
        }
    } else if (rc != 0) {
        return ERR_INTERNAL;    /* EDEADLK: we hold it already; ENOTRECOVERABLE */
    } else if (h->undo_n != 0) {
        tx_rollback(r);         /* unreachable through this API; belt and braces */
        h->recoveries++;
    }
    h->owner = (int64_t)getpid();
    r->gen++;   /* a fork child starts with its parent's `seen` */
    return 0;
}

void shm_unlock(struct shm_region *r)
{
    assert(shm_locked(r));
    tx_commit(r);
    q_drain(r);
    r->h->owner = 0;
    pthread_mutex_unlock(&r->h->lock);
}

void shm_abort(struct shm_region *r)
{
    assert(shm_locked(r));
    tx_rollback(r);
    q_drain(r);     /* blocks a dead holder's committed sections still queued */
    r->h->owner = 0;
    pthread_mutex_unlock(&r->h->lock);
}

void shm_commit(struct shm_region *r)
{
    assert(shm_locked(r));
    tx_commit(r);
    q_drain(r);
}

/* ---- allocator API ------------------------------------------------------ */

uint64_t shm_alloc(struct shm_region *r, size_t n)
{
    struct shm_hdr *h = r->h;
    uint64_t size, b, bsize, rest;

    assert(shm_locked(r));
    if (n > h->heap_end - h->heap_start || undo_room(r) < ALLOC_COST)
        goto fail;
    size = ((uint64_t)n + B_HDR + 15) & ~15ull;
    if (size < B_MIN)
        size = B_MIN;
    b = find_fit(r, size, &bsize);
    if (b == 0)
        goto fail;
    list_remove(r, b, bsize);                           /* ≤ 4 entries */
    undo_save(r, b + 8);                                /* 3: words user data or */
    undo_save(r, b + 16);                               /* a quarantine link may */
    undo_save(r, b + bsize - 8);                        /* overwrite unlogged    */
    rest = bsize - size;
    if (rest >= B_MIN) {
        wr(r, b, size);
        wr(r, b + size, rest | B_FREE);
        wr(r, b + bsize - 8, rest);
        list_insert(r, b + size, rest);                 /* ≤ 6 */
    } else {
        size = bsize;
        wr(r, b, size);
        wr(r, b + size, *word(r, b + size) & ~B_PREV_FREE);
    }
    wr(r, hoff(r, &h->used), h->used + size);
    wr(r, hoff(r, &h->blocks), h->blocks + 1);
    return b + B_HDR;
fail:
    h->alloc_failures++;
    return 0;
}

void shm_free(struct shm_region *r, uint64_t off)
{
    struct shm_hdr *h = r->h;
    uint64_t b = off - B_HDR, hd;

    if (off == 0)
        return;
    assert(shm_locked(r));
    if (off < B_HDR || !heap_block_ok(r, b))
        shm_panic("shm_free: not a block", off);
    hd = *word(r, b);
    if (hd & (B_FREE | B_QUAR))
        shm_panic("shm_free: double free", off);
    if (!h->q_logged) {
        h->q_start = h->qhead;
        undo_save(r, hoff(r, &h->qhead));   /* uses the reserved last entry at worst */
        barrier();
        h->q_logged = 1;
    }
    /* Link, publish, then mark: a kill between leaves nothing a rollback misses. */
    *word(r, b + 8) = h->qhead;
    barrier();
    h->qhead = b;
    barrier();
    *word(r, b) = hd | B_QUAR;
}

size_t shm_size(const struct shm_region *r, uint64_t off)
{
    return (size_t)((*word(r, off - B_HDR) & ~B_FLAGS) - B_HDR);
}

void *shm_ptr(const struct shm_region *r, uint64_t off)
{
    if (off == 0)
        return NULL;
    assert(off < r->size);
    return r->base + off;
}

uint64_t shm_off(const struct shm_region *r, const void *p)
{
    if (p == NULL)
        return 0;
    return hoff(r, p);
}

int shm_write(struct shm_region *r, uint64_t off, const void *src, size_t n)
{
    const struct shm_hdr *h = r->h;

    assert(shm_locked(r));
    if (n == 0)
        return 0;
    if (off < h->heap_start || off >= h->heap_end || n > h->heap_end - off)
        return ERR_INVAL;
    if (undo_room(r) < (((off + n - 1) & ~7ull) - (off & ~7ull)) / 8 + 1)
        return ERR_NOSPACE;
    log_write(r, off, src, n);
    return 0;
}

int shm_set64(struct shm_region *r, uint64_t off, uint64_t v)
{
    if ((off & 7) != 0)
        return ERR_INVAL;
    return shm_write(r, off, &v, sizeof v);
}

/* ---- root directory ------------------------------------------------------ */

static struct root_entry *root_find(struct shm_region *r, const char *name)
{
    for (int i = 0; i < SHM_ROOT_MAX; i++)
        if (strncmp(r->h->root[i].name, name, sizeof r->h->root[i].name) == 0)
            return &r->h->root[i];
    return NULL;
}

uint64_t shm_root_get(struct shm_region *r, const char *name)
{
    struct root_entry *e;

    assert(shm_locked(r));
    if (name == NULL || name[0] == '\0')
        return 0;
    e = root_find(r, name);
    return e != NULL ? e->off : 0;
}

int shm_root_set(struct shm_region *r, const char *name, uint64_t off)
{
    struct root_entry *e, fresh;
    size_t len;

    assert(shm_locked(r));
    if (name == NULL || (len = strlen(name)) == 0 || len > SHM_ROOT_NAME_MAX)
        return ERR_INVAL;
    if (undo_room(r) < ROOT_COST)
        return ERR_NOSPACE;
    e = root_find(r, name);
    if (e == NULL) {
        if (off == 0)
            return 0;
        e = root_find(r, "");
        if (e == NULL)
            return ERR_NOSPACE;
    }
    memset(&fresh, 0, sizeof fresh);
    if (off != 0) {
        memcpy(fresh.name, name, len);
        fresh.off = off;
    }
    log_write(r, hoff(r, e), &fresh, sizeof fresh);
    return 0;
}

/* ---- maps --------------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

/* SipHash-2-4 (Aumasson & Bernstein), 64-bit output. */
static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t b = (uint64_t)len << 56, m;
    const unsigned char *end = in + (len & ~(size_t)7);

    for (; in != end; in += 8) {
        memcpy(&m, in, 8);      /* little-endian hosts only (x86-64, arm64) */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static struct map_hdr *map_get_hdr(struct shm_region *r, uint64_t map)
{
    struct map_hdr *m;

    assert(shm_locked(r));
    if (map < r->h->heap_start || map >= r->h->heap_end)
        shm_panic("not a map", map);
    m = shm_ptr(r, map);
    if (m->magic != MAP_MAGIC)
        shm_panic("not a map", map);
    return m;
}

static uint64_t map_cap_for(uint64_t keys)
{
    uint64_t cap = MAP_MIN_CAP;

    while (cap < keys * 2 && cap < (1ull << 40))
        cap <<= 1;
    return cap;
}

static struct map_slot *map_slots(struct shm_region *r, const struct map_hdr *m)
{
    return shm_ptr(r, m->table);
}

static bool key_eq(struct shm_region *r, uint64_t kr, const void *key, size_t klen)
{
    const struct keyrec *k = shm_ptr(r, kr);

    return k->len == klen && memcmp(k->bytes, key, klen) == 0;
}

/* Index of the key's slot (true), or of the slot an insert should use (false).
 * Terminates because a map always keeps at least one empty slot. */
static bool map_find(struct shm_region *r, const struct map_hdr *m, const void *key,
                     size_t klen, uint64_t hash, uint64_t *idx)
{
    const struct map_slot *s = map_slots(r, m);
    uint64_t mask = m->cap - 1, i = hash & mask, ins = UINT64_MAX;

    for (uint64_t n = 0; n < m->cap; n++, i = (i + 1) & mask) {
        if (s[i].key == SLOT_EMPTY) {
            *idx = ins != UINT64_MAX ? ins : i;
            return false;
        }
        if (s[i].key == SLOT_TOMB) {
            if (ins == UINT64_MAX)
                ins = i;
        } else if (s[i].hash == hash && key_eq(r, s[i].key, key, klen)) {
            *idx = i;
            return true;
        }
    }
    if (ins == UINT64_MAX)
        shm_panic("map without an empty slot", shm_off(r, m));
    *idx = ins;
    return false;
}

uint64_t shm_map_new(struct shm_region *r, size_t hint)
{
    uint64_t map, table, cap = map_cap_for(hint < 4 ? 4 : (uint64_t)hint * 2 / 3 + 1);
    struct map_hdr *m;

    assert(shm_locked(r));
    if (undo_room(r) < 2 * ALLOC_COST)
        return 0;
    if ((map = shm_alloc(r, sizeof *m)) == 0)
        return 0;
    if ((table = shm_alloc(r, cap * sizeof(struct map_slot))) == 0) {
        shm_free(r, map);
        return 0;
    }
    /* Both blocks are new in this section: plain stores. */
    memset(shm_ptr(r, table), 0, cap * sizeof(struct map_slot));
    m = shm_ptr(r, map);
    memset(m, 0, sizeof *m);
    if (getrandom(&m->k0, sizeof m->k0, GRND_NONBLOCK) != sizeof m->k0 ||
        getrandom(&m->k1, sizeof m->k1, GRND_NONBLOCK) != sizeof m->k1) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        m->k0 = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ map;
        m->k1 = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4full ^ (uint64_t)getpid();
    }
    m->table = table;
    m->cap = cap;
    m->magic = MAP_MAGIC;
    return map;
}

void shm_map_free(struct shm_region *r, uint64_t map)
{
    struct map_hdr *m;
    struct map_slot *s;

    if (map == 0)
        return;
    m = map_get_hdr(r, map);
    s = map_slots(r, m);
    for (uint64_t i = 0; i < m->cap; i++)
        if (s[i].key > SLOT_TOMB)
            shm_free(r, s[i].key);
    shm_free(r, m->table);
    shm_free(r, map);
}

/* Moves every live slot into a fresh array of newcap slots and publishes it
 * with three logged stores. */
static int map_resize(struct shm_region *r, struct map_hdr *m, uint64_t newcap)
{
    uint64_t table = shm_alloc(r, newcap * sizeof(struct map_slot)), old = m->table;
    struct map_slot *ns, *os = map_slots(r, m);

    if (table == 0)
        return ERR_NOSPACE;
    ns = shm_ptr(r, table);
    memset(ns, 0, newcap * sizeof *ns);
    for (uint64_t i = 0; i < m->cap; i++) {
        uint64_t j;

        if (os[i].key <= SLOT_TOMB)
            continue;
        for (j = os[i].hash & (newcap - 1); ns[j].key != SLOT_EMPTY; j = (j + 1) & (newcap - 1))
            ;
        ns[j] = os[i];
    }
    wr(r, hoff(r, &m->table), table);
    wr(r, hoff(r, &m->cap), newcap);
    wr(r, hoff(r, &m->tombs), 0);
    shm_free(r, old);
    return 0;
}

static int map_insert(struct shm_region *r, uint64_t map, const void *key, size_t klen,
                      uint64_t val, uint64_t *old, bool replace)
{
    struct map_hdr *m = map_get_hdr(r, map);
    uint64_t hash, idx, kr;
    struct map_slot *s;

    if (key == NULL || klen == 0 || klen > SHM_MAP_KEY_MAX)
        return ERR_INVAL;
    if (undo_room(r) < MAP_PUT_COST)
        return ERR_NOSPACE;
    hash = siphash(m->k0, m->k1, key, klen);
    if (map_find(r, m, key, klen, hash, &idx)) {
        s = &map_slots(r, m)[idx];
        if (!replace)
            return ERR_CONFLICT;
        if (old != NULL)
            *old = s->val;
        wr(r, hoff(r, &s->val), val);
        return 1;
    }
    if ((kr = shm_alloc(r, sizeof(struct keyrec) + klen)) == 0)
        return ERR_NOSPACE;
    if ((m->count + m->tombs + 1) * 4 > m->cap * 3 ||
        (m->cap > MAP_MIN_CAP && (m->count + 1) * 8 < m->cap)) {
        /* Growing may fail for lack of space: carry on while the array still
         * keeps an empty slot after this insert. */
        if (map_resize(r, m, map_cap_for(m->count + 1)) != 0 &&
            m->count + m->tombs + 2 > m->cap) {
            shm_free(r, kr);
            return ERR_NOSPACE;
        }
        map_find(r, m, key, klen, hash, &idx);
    }
    ((struct keyrec *)shm_ptr(r, kr))->len = klen;
    memcpy(((struct keyrec *)shm_ptr(r, kr))->bytes, key, klen);
    s = &map_slots(r, m)[idx];
    if (s->key == SLOT_TOMB)
        wr(r, hoff(r, &m->tombs), m->tombs - 1);
    wr(r, hoff(r, &s->hash), hash);
    wr(r, hoff(r, &s->val), val);
    wr(r, hoff(r, &s->key), kr);
    wr(r, hoff(r, &m->count), m->count + 1);
    return 0;
}

int shm_map_put(struct shm_region *r, uint64_t map, const void *key, size_t klen,
                uint64_t val, uint64_t *old)
{
    return map_insert(r, map, key, klen, val, old, true);
}

int shm_map_add(struct shm_region *r, uint64_t map, const void *key, size_t klen, uint64_t val)
{
    return map_insert(r, map, key, klen, val, NULL, false);
}

int shm_map_get(struct shm_region *r, uint64_t map, const void *key, size_t klen, uint64_t *val)
{
    struct map_hdr *m = map_get_hdr(r, map);
    uint64_t idx;

    if (key == NULL || klen == 0 || klen > SHM_MAP_KEY_MAX)
        return ERR_NOTFOUND;
    if (!map_find(r, m, key, klen, siphash(m->k0, m->k1, key, klen), &idx))
        return ERR_NOTFOUND;
    if (val != NULL)
        *val = map_slots(r, m)[idx].val;
    return 0;
}

int shm_map_del(struct shm_region *r, uint64_t map, const void *key, size_t klen, uint64_t *old)
{
    struct map_hdr *m = map_get_hdr(r, map);
    struct map_slot *s;
    uint64_t idx, kr;

    if (key == NULL || klen == 0 || klen > SHM_MAP_KEY_MAX)
        return ERR_NOTFOUND;
    if (undo_room(r) < MAP_DEL_COST)
        return ERR_NOSPACE;
    if (!map_find(r, m, key, klen, siphash(m->k0, m->k1, key, klen), &idx))
        return ERR_NOTFOUND;
    s = map_slots(r, m);
    kr = s[idx].key;
    if (old != NULL)
        *old = s[idx].val;
    /* A slot followed by an empty one ends every probe chain through it, so it
     * can become empty instead of a tombstone. */
    if (s[(idx + 1) & (m->cap - 1)].key == SLOT_EMPTY) {
        wr(r, hoff(r, &s[idx].key), SLOT_EMPTY);
    } else {
        wr(r, hoff(r, &s[idx].key), SLOT_TOMB);
        wr(r, hoff(r, &m->tombs), m->tombs + 1);
    }
    wr(r, hoff(r, &m->count), m->count - 1);
    shm_free(r, kr);
    return 0;
}

size_t shm_map_count(struct shm_region *r, uint64_t map)
{
    return (size_t)map_get_hdr(r, map)->count;
}

bool shm_map_next(struct shm_region *r, uint64_t map, uint64_t *pos, struct shm_map_entry *e)
{
    struct map_hdr *m = map_get_hdr(r, map);
    const struct map_slot *s = map_slots(r, m);

    for (uint64_t i = *pos; i < m->cap; i++) {
        if (s[i].key > SLOT_TOMB) {
            const struct keyrec *k = shm_ptr(r, s[i].key);

            e->key = k->bytes;
            e->klen = (size_t)k->len;
            e->val = s[i].val;
            *pos = i + 1;
            return true;
        }
    }
    *pos = m->cap;
    return false;
}

/* ---- introspection ------------------------------------------------------ */

void shm_stats(struct shm_region *r, struct shm_stats *st)
{
    const struct shm_hdr *h = r->h;

    st->size = h->size;
    st->heap = h->heap_end - h->heap_start;
    st->used = h->used;
    st->free = st->heap - st->used;
    st->blocks = h->blocks;
    st->undo_cap = h->undo_cap;
    st->recoveries = h->recoveries;
    st->alloc_failures = h->alloc_failures;
    st->lost = h->lost;
}

#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            set_err(errstr, __VA_ARGS__);         \
            return ERR_INTERNAL;                  \
        }                                         \
    } while (0)

static int check_lists(struct shm_region *r, uint64_t nfree, char errstr[128])
{
    const struct shm_hdr *h = r->h;
    uint64_t seen = 0;

    for (unsigned fl = 0; fl < FL_COUNT; fl++) {
        CHECK(((h->fl_map >> fl) & 1) == (h->sl_map[fl] != 0), "fl bitmap bit %u wrong", fl);
        for (unsigned sl = 0; sl < SL_COUNT; sl++) {
            uint64_t prev = 0, b = h->heads[fl][sl];

            CHECK(((h->sl_map[fl] >> sl) & 1) == (b != 0), "sl bitmap bit %u/%u wrong", fl, sl);
            for (; b != 0; prev = b, b = *word(r, b + 8)) {
                unsigned bfl, bsl;

                CHECK(heap_block_ok(r, b) && (*word(r, b) & B_FREE), "list %u/%u: bad block %llu",
                      fl, sl, (unsigned long long)b);
                mapping(*word(r, b) & ~B_FLAGS, &bfl, &bsl);
                CHECK(bfl == fl && bsl == sl, "block %llu in the wrong list", (unsigned long long)b);
                CHECK(*word(r, b + 16) == prev, "block %llu: bad prev link", (unsigned long long)b);
                CHECK(++seen <= nfree, "free lists longer than the heap's free blocks");
            }
        }
    }
    CHECK(seen == nfree, "%llu free blocks, %llu in lists", (unsigned long long)nfree,
          (unsigned long long)seen);
    return 0;
}

int shm_check(struct shm_region *r, char errstr[128])
{
    const struct shm_hdr *h = r->h;
    uint64_t b = h->heap_start, used = 0, blocks = 0, nfree = 0, nquar = 0, q;
    bool prev_free = false;

    CHECK(h->magic == SHM_MAGIC, "bad magic");
    while (b < h->heap_end) {
        uint64_t hd = *word(r, b), size = hd & ~B_FLAGS;

        CHECK(heap_block_ok(r, b), "bad block header at %llu", (unsigned long long)b);
        CHECK(!!(hd & B_PREV_FREE) == prev_free, "PREV_FREE wrong at %llu", (unsigned long long)b);
        if (hd & B_FREE) {
            CHECK(!prev_free, "two free blocks in a row at %llu", (unsigned long long)b);
            CHECK(!(hd & B_QUAR), "free block marked quarantined at %llu", (unsigned long long)b);
            CHECK(*word(r, b + size - 8) == size, "bad footer at %llu", (unsigned long long)b);
            nfree++;
        } else {
            used += size;
            blocks++;
            nquar += !!(hd & B_QUAR);
        }
        prev_free = hd & B_FREE;
        b += size;
    }
    CHECK(b == h->heap_end, "heap walk overran the epilogue");
    CHECK((*word(r, b) & ~B_FLAGS) == 0, "epilogue damaged");
    CHECK(!!(*word(r, b) & B_PREV_FREE) == prev_free, "epilogue PREV_FREE wrong");
    CHECK(used == h->used, "used %llu, counter says %llu", (unsigned long long)used,
          (unsigned long long)h->used);
    CHECK(blocks == h->blocks, "%llu blocks, counter says %llu", (unsigned long long)blocks,
          (unsigned long long)h->blocks);
    for (q = h->qhead; q != 0 && nquar > 0; q = *word(r, q + 8), nquar--)
        CHECK(heap_block_ok(r, q) && (*word(r, q) & B_QUAR), "quarantine holds a bad block");
    CHECK(q == 0 && nquar == 0, "quarantine list and marks disagree");
    return check_lists(r, nfree, errstr);
}
