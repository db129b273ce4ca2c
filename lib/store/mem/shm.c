/* shm: the shared-memory region, its allocator, maps and crash-atomic sections
 * (the maps are in shm_map.c, the layout shared with them in shm_private.h).
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
#include "store/mem/shm_private.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SHM_MAGIC 0x3130736172657374ull   /* "tesras01" */
#define SHM_MAX_BYTES (1ull << 44)

#define B_FREE      1ull    /* block is in a free list */
#define B_PREV_FREE 2ull    /* the block before is free (its footer is valid) */
#define B_QUAR      4ull    /* freed, waiting in the quarantine for the commit */
#define B_FLAGS     15ull
#define B_HDR       16u     /* header word + quarantine link */
#define B_MIN       32u     /* header, next, prev, footer */

/* ---- undo log (saving and logged stores: shm_private.h) ----------------- */

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

/* This process's id, kept: getpid() is a system call (glibc caches it no
 * more), and a section asks for its owner at every call (shm_locked's
 * asserts), some ten times a request; with two workers taking turns at the
 * lock every one of them lengthened the other's wait. pthread_atfork sets it
 * anew in every child the fleet forks after shm_create. */
static pid_t self_pid;

static void self_pid_set(void)
{
    self_pid = getpid();
}

static void self_pid_init(void)
{
    /* without the handler a child would keep its parent's id: asked every time then */
    if (pthread_atfork(NULL, NULL, self_pid_set) == 0)
        self_pid_set();
}

static pid_t self(void)
{
    return self_pid != 0 ? self_pid : getpid();
}

struct shm_region *shm_create(size_t bytes, char errstr[128])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    long page = sysconf(_SC_PAGESIZE);
    struct shm_region *r;
    struct shm_hdr *h;
    uint64_t cap, size;
    void *base;
    int rc;

    (void)pthread_once(&once, self_pid_init);
    if (bytes < SHM_MIN_BYTES || bytes > SHM_MAX_BYTES) {
        err_set(errstr, "shm: size %zu outside [%u, %llu]", bytes, SHM_MIN_BYTES,
                (unsigned long long)SHM_MAX_BYTES);
        return NULL;
    }
    if (page <= 0)
        page = 4096;
    bytes = (bytes + (size_t)page - 1) & ~((size_t)page - 1);
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        err_set(errstr, "shm: out of memory");
        return NULL;
    }
    base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        err_set(errstr, "shm: mmap %zu bytes: %s", bytes, strerror(errno));
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
        err_set(errstr, "shm: robust process-shared mutex: %s", strerror(rc));
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
    return r->h->owner == (int64_t)self();
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
    h->owner = (int64_t)self();
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
            err_set(errstr, __VA_ARGS__);         \
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
