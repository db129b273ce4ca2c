/* shm_map: the region's hash maps (shm.h, "Hash maps"), kept out of shm.c.
 * Every store to a map that predates the section goes through wr(), so a map
 * change is rolled back with its section like any other (see shm.c). */
#include "store/mem/shm_private.h"

#include <assert.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAP_MAGIC   0x3130706d72737374ull
#define MAP_MIN_CAP 8u
#define SLOT_EMPTY  0u
#define SLOT_TOMB   1u

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

size_t shm_map_vals(struct shm_region *r, uint64_t map, uint64_t *pos, uint64_t *out, size_t max)
{
    struct map_hdr *m = map_get_hdr(r, map);
    const struct map_slot *s = map_slots(r, m);
    uint64_t i = *pos;
    size_t n = 0;

    for (; i < m->cap && n < max; i++)
        if (s[i].key > SLOT_TOMB)
            out[n++] = s[i].val;
    *pos = i;
    return n;
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
