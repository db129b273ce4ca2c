/* shm_private: the region's layout and the undo-log primitives, shared by the
 * two halves of shm (shm.c: region, sections, allocator, root directory;
 * shm_map.c: the hash maps). Private to those two files: everyone else uses
 * shm.h. Why the region looks the way it does is told at the top of shm.c. */
#ifndef LIB_SHM_PRIVATE_H
#define LIB_SHM_PRIVATE_H

#include "store/mem/shm.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define SL_LOG2     4
#define SL_COUNT    (1u << SL_LOG2)
#define FL_SHIFT    (SL_LOG2 + 4)
#define SMALL_BLOCK (1ull << FL_SHIFT)
#define FL_COUNT    40
#define FIT_SCAN    16      /* blocks looked at when the rounded class is empty */

/* Worst-case undo entries of one operation (counted where they are spent). */
#define ALLOC_COST  24
#define FREE_COST   24
#define MAP_PUT_COST (2 * ALLOC_COST + 16)
#define MAP_DEL_COST 8
#define ROOT_COST   8

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

/* A broken invariant in shared state: dying is the safe move, since the
 * section in progress is rolled back by the next locker. */
static inline void __attribute__((noreturn)) shm_panic(const char *what, uint64_t off)
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
static inline uint64_t undo_room(const struct shm_region *r)
{
    return r->h->undo_cap - 1 - r->h->undo_n;
}

static inline void undo_save(struct shm_region *r, uint64_t off)
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
static inline void wr(struct shm_region *r, uint64_t off, uint64_t v)
{
    if (*word(r, off) == v)
        return;
    undo_save(r, off);
    *word(r, off) = v;
}

#endif
