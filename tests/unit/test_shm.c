/* test_shm: the shared region's allocator, maps, root directory, sections,
 * and what happens when a process holding the lock is killed. */
#include "unit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/mem/shm.h"

static void lock(struct shm_region *r)
{
    assert_int_equal(shm_lock(r), 0);
}

static struct shm_stats stats(struct shm_region *r)
{
    struct shm_stats st;

    lock(r);
    shm_stats(r, &st);
    shm_unlock(r);
    return st;
}

static void fill(struct shm_region *r, uint64_t off, size_t n, unsigned seed)
{
    unsigned char *p = shm_ptr(r, off);

    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i);
}

static bool filled(struct shm_region *r, uint64_t off, size_t n, unsigned seed)
{
    const unsigned char *p = shm_ptr(r, off);

    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31 + i))
            return false;
    return true;
}

static void test_create_rejects_bad_sizes(void **state)
{
    char err[128] = "";

    assert_null(shm_create(1000, err));
    assert_non_null(strstr(err, "size"));
    shm_destroy(NULL);
}

static void test_lock_twice_in_one_process_is_an_error(void **state)
{
    struct shm_region *r = unit_region(1 << 20);

    lock(r);
    assert_true(shm_locked(r));
    assert_int_equal(shm_lock(r), ERR_INTERNAL);
    shm_unlock(r);
    assert_false(shm_locked(r));
    shm_destroy(r);
}

static void test_alloc_is_aligned_sized_and_disjoint(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    static const size_t sizes[] = {1, 7, 16, 17, 100, 240, 241, 1000, 4096, 70000};
    uint64_t off[10];
    struct shm_stats before = stats(r), after;

    lock(r);
    for (int i = 0; i < 10; i++) {
        off[i] = shm_alloc(r, sizes[i]);
        assert_int_not_equal(off[i], 0);
        assert_int_equal(off[i] % 16, 0);
        assert_true(shm_size(r, off[i]) >= sizes[i]);
        assert_ptr_equal(shm_ptr(r, off[i]), (char *)shm_ptr(r, 16) + off[i] - 16);
        assert_int_equal(shm_off(r, shm_ptr(r, off[i])), off[i]);
        fill(r, off[i], sizes[i], (unsigned)i);
    }
    for (int i = 0; i < 10; i++)
        assert_true(filled(r, off[i], sizes[i], (unsigned)i));
    shm_unlock(r);
    unit_region_check(r);
    after = stats(r);
    assert_int_equal(after.blocks, before.blocks + 10);

    lock(r);
    for (int i = 0; i < 10; i++)
        shm_free(r, off[i]);
    shm_free(r, 0);
    shm_unlock(r);
    after = stats(r);
    assert_int_equal(after.used, before.used);
    assert_int_equal(after.blocks, before.blocks);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_freed_block_is_reused_only_after_commit(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    uint64_t a, b, c;

    lock(r);
    a = shm_alloc(r, 64);
    assert_int_not_equal(a, 0);
    shm_unlock(r);

    lock(r);
    shm_free(r, a);
    b = shm_alloc(r, 64);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(b, a);     /* a is quarantined until the commit */
    shm_unlock(r);

    lock(r);
    c = shm_alloc(r, 64);
    assert_int_equal(c, a);         /* the smallest fitting block, a, is back */
    shm_free(r, b);
    shm_free(r, c);
    shm_unlock(r);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_exhaustion_returns_zero_and_region_stays_usable(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    struct shm_stats st0 = stats(r), st;
    uint64_t *offs = calloc(4096, sizeof *offs);
    size_t n = 0;

    assert_non_null(offs);
    lock(r);
    assert_int_equal(shm_alloc(r, SIZE_MAX), 0);
    assert_int_equal(shm_alloc(r, st0.heap), 0);
    while ((offs[n] = shm_alloc(r, 1000)) != 0) {
        fill(r, offs[n], 1000, (unsigned)n);
        n++;
        assert_true(n < 4096);
        if (n % 100 == 0)
            shm_commit(r);
    }
    shm_unlock(r);
    assert_true(n > 500);
    st = stats(r);
    assert_true(st.alloc_failures >= 3);
    assert_true(st.free < 1016 + 32);
    unit_region_check(r);

    /* Full: still usable, and nothing was overwritten. */
    lock(r);
    assert_int_equal(shm_alloc(r, 1000), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(filled(r, offs[i], 1000, (unsigned)i));
    shm_free(r, offs[n / 2]);
    shm_unlock(r);
    lock(r);
    offs[n / 2] = shm_alloc(r, 1000);
    assert_int_not_equal(offs[n / 2], 0);
    for (size_t i = 0; i < n; i++)
        shm_free(r, offs[i]);
    shm_unlock(r);

    /* Everything coalesced back into one block the size of the heap. */
    st = stats(r);
    assert_int_equal(st.used, st0.used);
    unit_region_check(r);
    lock(r);
    offs[0] = shm_alloc(r, st.heap - 16);
    assert_int_not_equal(offs[0], 0);
    shm_free(r, offs[0]);
    shm_unlock(r);
    unit_region_check(r);
    free(offs);
    shm_destroy(r);
}

static void test_random_alloc_free_keeps_invariants(void **state)
{
    struct shm_region *r = unit_region(4 << 20);
    enum { N = 2000 };
    uint64_t *off = calloc(N, sizeof *off);
    size_t *len = calloc(N, sizeof *len);
    unsigned seed = 12345;

    assert_non_null(off);
    assert_non_null(len);
    for (int round = 0; round < 40; round++) {
        lock(r);
        for (int k = 0; k < 500; k++) {
            int i = rand_r(&seed) % N;

            if (off[i] != 0) {
                assert_true(filled(r, off[i], len[i], (unsigned)i));
                shm_free(r, off[i]);
                off[i] = 0;
            } else {
                len[i] = (size_t)(rand_r(&seed) % 5 == 0 ? rand_r(&seed) % 20000 : rand_r(&seed) % 300) + 1;
                off[i] = shm_alloc(r, len[i]);
                if (off[i] != 0)
                    fill(r, off[i], len[i], (unsigned)i);
            }
        }
        shm_unlock(r);
        unit_region_check(r);
    }
    lock(r);
    for (int i = 0; i < N; i++)
        shm_free(r, off[i]);
    shm_unlock(r);
    assert_int_equal(stats(r).used, 0);
    free(off);
    free(len);
    shm_destroy(r);
}

static void test_abort_restores_everything(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    uint64_t keep, gone, map, v;
    struct shm_stats st0, st;

    lock(r);
    keep = shm_alloc(r, 200);
    gone = shm_alloc(r, 300);
    map = shm_map_new(r, 8);
    assert_int_not_equal(keep, 0);
    assert_int_not_equal(gone, 0);
    assert_int_not_equal(map, 0);
    fill(r, keep, 200, 1);
    fill(r, gone, 300, 2);
    assert_int_equal(shm_map_put(r, map, "a", 1, 1, NULL), 0);
    assert_int_equal(shm_root_set(r, "m", map), 0);
    shm_unlock(r);
    st0 = stats(r);

    lock(r);
    shm_free(r, gone);
    for (int i = 0; i < 100; i++)
        assert_int_not_equal(shm_alloc(r, (size_t)i * 10 + 1), 0);
    assert_int_equal(shm_write(r, keep + 10, "XXXXXXXXXXXXXXXXXXXXX", 21), 0);
    assert_int_equal(shm_set64(r, keep + 64, 42), 0);
    for (int i = 0; i < 100; i++) {
        char k[16];

        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(shm_map_put(r, map, k, strlen(k), (uint64_t)i, NULL), 0);
    }
    assert_int_equal(shm_map_del(r, map, "a", 1, NULL), 0);
    assert_int_equal(shm_root_set(r, "m", 0), 0);
    assert_int_equal(shm_root_set(r, "other", 7), 0);
    shm_abort(r);

    st = stats(r);
    assert_int_equal(st.used, st0.used);
    assert_int_equal(st.blocks, st0.blocks);
    unit_region_check(r);
    lock(r);
    assert_true(filled(r, keep, 200, 1));
    assert_true(filled(r, gone, 300, 2));
    assert_int_equal(shm_root_get(r, "m"), map);
    assert_int_equal(shm_root_get(r, "other"), 0);
    assert_int_equal(shm_map_count(r, map), 1);
    assert_int_equal(shm_map_get(r, map, "a", 1, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(shm_map_get(r, map, "k1", 2, &v), ERR_NOTFOUND);
    shm_unlock(r);
    shm_destroy(r);
}

static void test_full_undo_log_fails_cleanly(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    enum { BLK = 128 * 1024 };
    uint64_t blk, map;
    struct shm_stats st;
    int writes = 0;

    lock(r);
    blk = shm_alloc(r, BLK);
    map = shm_map_new(r, 8);
    assert_int_not_equal(blk, 0);
    assert_int_not_equal(map, 0);
    fill(r, blk, BLK, 9);
    shm_unlock(r);
    st = stats(r);
    assert_true(st.undo_cap < BLK / 8);

    lock(r);
    /* Each 8-byte write to a new word takes one entry; fill the log. A word
     * written twice in a section takes one. */
    assert_int_equal(shm_write(r, blk, "ABCDEFGH", 8), 0);
    assert_int_equal(shm_write(r, blk, "ABCDEFGH", 8), 0);
    for (writes = 1;; writes++) {
        int rc = shm_write(r, blk + (uint64_t)writes * 8, "ABCDEFGH", 8);

        if (rc != 0) {
            assert_int_equal(rc, ERR_NOSPACE);
            break;
        }
    }
    assert_int_equal((size_t)writes, st.undo_cap - 1);
    assert_int_equal(shm_alloc(r, 10), 0);
    assert_int_equal(shm_map_put(r, map, "x", 1, 1, NULL), ERR_NOSPACE);
    assert_int_equal(shm_root_set(r, "x", 1), ERR_NOSPACE);
    assert_int_equal(shm_write(r, blk, "z", 1), ERR_NOSPACE);
    shm_abort(r);
    unit_region_check(r);
    lock(r);
    assert_true(filled(r, blk, BLK, 9));
    assert_int_equal(shm_map_count(r, map), 0);
    /* shm_commit empties the log and keeps the lock: the bulk-work escape hatch. */
    for (int i = 0; i < writes; i++)
        assert_int_equal(shm_write(r, blk + (uint64_t)i * 8, "ABCDEFGH", 8), 0);
    shm_commit(r);
    assert_true(shm_locked(r));
    assert_int_equal(shm_map_put(r, map, "x", 1, 1, NULL), 0);
    shm_unlock(r);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_root_directory(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    char name[40];

    lock(r);
    assert_int_equal(shm_root_get(r, "users"), 0);
    assert_int_equal(shm_root_set(r, "users", 100), 0);
    assert_int_equal(shm_root_set(r, "keys", 200), 0);
    assert_int_equal(shm_root_get(r, "users"), 100);
    assert_int_equal(shm_root_set(r, "users", 300), 0);
    assert_int_equal(shm_root_get(r, "users"), 300);
    assert_int_equal(shm_root_get(r, "keys"), 200);
    assert_int_equal(shm_root_get(r, "user"), 0);
    assert_int_equal(shm_root_set(r, "users", 0), 0);
    assert_int_equal(shm_root_get(r, "users"), 0);
    assert_int_equal(shm_root_set(r, "", 1), ERR_INVAL);
    memset(name, 'n', sizeof name);
    name[SHM_ROOT_NAME_MAX + 1] = '\0';
    assert_int_equal(shm_root_set(r, name, 1), ERR_INVAL);
    name[SHM_ROOT_NAME_MAX] = '\0';
    assert_int_equal(shm_root_set(r, name, 5), 0);
    assert_int_equal(shm_root_get(r, name), 5);
    for (int i = 0; i < SHM_ROOT_MAX - 2; i++) {
        snprintf(name, sizeof name, "t%d", i);
        assert_int_equal(shm_root_set(r, name, (uint64_t)i + 1), 0);
    }
    assert_int_equal(shm_root_set(r, "one-too-many", 1), ERR_NOSPACE);
    assert_int_equal(shm_root_get(r, "t7"), 8);
    shm_unlock(r);
    shm_destroy(r);
}

static void test_map_basic_operations(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    static const unsigned char bin[32] = {0, 1, 2, 0, 0, 255, 7};
    char big[SHM_MAP_KEY_MAX + 1];
    uint64_t map, v = 0;

    lock(r);
    map = shm_map_new(r, 0);
    assert_int_not_equal(map, 0);
    assert_int_equal(shm_map_get(r, map, "a", 1, &v), ERR_NOTFOUND);
    assert_int_equal(shm_map_put(r, map, "a", 1, 10, NULL), 0);
    assert_int_equal(shm_map_put(r, map, "ab", 2, 20, NULL), 0);
    assert_int_equal(shm_map_put(r, map, bin, sizeof bin, 30, NULL), 0);
    assert_int_equal(shm_map_put(r, map, bin, 3, 40, NULL), 0);  /* a prefix is another key */
    assert_int_equal(shm_map_get(r, map, "a", 1, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(shm_map_get(r, map, bin, sizeof bin, &v), 0);
    assert_int_equal(v, 30);
    assert_int_equal(shm_map_get(r, map, bin, 3, &v), 0);
    assert_int_equal(v, 40);
    assert_int_equal(shm_map_put(r, map, "a", 1, 11, &v), 1);
    assert_int_equal(v, 10);
    assert_int_equal(shm_map_add(r, map, "a", 1, 12), ERR_CONFLICT);
    assert_int_equal(shm_map_add(r, map, "c", 1, 13), 0);
    assert_int_equal(shm_map_count(r, map), 5);
    assert_int_equal(shm_map_del(r, map, "ab", 2, &v), 0);
    assert_int_equal(v, 20);
    assert_int_equal(shm_map_del(r, map, "ab", 2, NULL), ERR_NOTFOUND);
    assert_int_equal(shm_map_get(r, map, "ab", 2, NULL), ERR_NOTFOUND);
    assert_int_equal(shm_map_count(r, map), 4);
    assert_int_equal(shm_map_put(r, map, "", 0, 1, NULL), ERR_INVAL);
    memset(big, 'k', sizeof big);
    assert_int_equal(shm_map_put(r, map, big, sizeof big, 1, NULL), ERR_INVAL);
    assert_int_equal(shm_map_put(r, map, big, SHM_MAP_KEY_MAX, 77, NULL), 0);
    assert_int_equal(shm_map_get(r, map, big, SHM_MAP_KEY_MAX, &v), 0);
    assert_int_equal(v, 77);
    shm_map_free(r, map);
    shm_unlock(r);
    assert_int_equal(stats(r).used, 0);
    unit_region_check(r);
    shm_destroy(r);
}

static void key_of(char *buf, size_t n, int i)
{
    snprintf(buf, n, "bl:%08x%08x", (unsigned)i * 2654435761u, (unsigned)i);
}

static void test_map_thousands_of_keys_grow_and_shrink(void **state)
{
    struct shm_region *r = unit_region(16 << 20);
    enum { N = 20000 };
    char k[32];
    uint64_t map, v, pos = 0;
    struct shm_map_entry e;
    size_t seen = 0, used0;

    used0 = stats(r).used;
    lock(r);
    map = shm_map_new(r, 4);
    assert_int_not_equal(map, 0);
    for (int i = 0; i < N; i++) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_put(r, map, k, strlen(k), (uint64_t)i + 1, NULL), 0);
        if (i % 1000 == 999) {      /* several resizes commit along the way */
            shm_unlock(r);
            lock(r);
        }
    }
    assert_int_equal(shm_map_count(r, map), N);
    for (int i = 0; i < N; i++) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), 0);
        assert_int_equal(v, (uint64_t)i + 1);
    }
    assert_int_equal(shm_map_get(r, map, "bl:nope", 7, &v), ERR_NOTFOUND);
    for (int i = 0; i < N; i += 2) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_del(r, map, k, strlen(k), &v), 0);
        assert_int_equal(v, (uint64_t)i + 1);
        if (i % 2000 == 0)
            shm_commit(r);
    }
    shm_unlock(r);
    unit_region_check(r);

    lock(r);
    assert_int_equal(shm_map_count(r, map), N / 2);
    for (int i = 0; i < N; i++) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), i % 2 ? 0 : ERR_NOTFOUND);
    }
    while (shm_map_next(r, map, &pos, &e)) {
        assert_true(e.klen >= 4 && memcmp(e.key, "bl:", 3) == 0);
        assert_int_equal(e.val % 2, 0);
        seen++;
    }
    assert_int_equal(seen, N / 2);
    /* Delete down to a handful; the next insert shrinks the slot array. */
    for (int i = 1; i < N - 20; i += 2) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_del(r, map, k, strlen(k), NULL), 0);
        if (i % 2001 == 0)
            shm_commit(r);
    }
    shm_unlock(r);
    {
        size_t before = stats(r).used, after;

        lock(r);
        assert_int_equal(shm_map_put(r, map, "new", 3, 1, NULL), 0);
        shm_unlock(r);
        after = stats(r).used;
        assert_true(after < before / 4);
    }
    lock(r);
    assert_int_equal(shm_map_count(r, map), 11);
    for (int i = N - 19; i < N; i += 2) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), 0);
        assert_int_equal(v, (uint64_t)i + 1);
    }
    shm_map_free(r, map);
    shm_unlock(r);
    assert_int_equal(stats(r).used, used0);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_map_delete_during_iteration(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    uint64_t map, pos = 0;
    struct shm_map_entry e;
    char k[16];
    int visited = 0;

    lock(r);
    map = shm_map_new(r, 100);
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(shm_map_put(r, map, k, strlen(k), (uint64_t)i, NULL), 0);
    }
    while (shm_map_next(r, map, &pos, &e)) {
        visited++;
        if (e.val % 3 == 0)
            assert_int_equal(shm_map_del(r, map, e.key, e.klen, NULL), 0);
    }
    assert_int_equal(visited, 300);
    assert_int_equal(shm_map_count(r, map), 200);
    shm_unlock(r);
    unit_region_check(r);
    shm_destroy(r);
}

static void test_map_fills_region_then_fails_cleanly(void **state)
{
    struct shm_region *r = unit_region(SHM_MIN_BYTES);
    uint64_t map, v;
    char k[32];
    int n = 0, rc;

    lock(r);
    map = shm_map_new(r, 4);
    assert_int_not_equal(map, 0);
    shm_unlock(r);
    for (;;) {
        lock(r);
        key_of(k, sizeof k, n);
        rc = shm_map_put(r, map, k, strlen(k), (uint64_t)n, NULL);
        shm_unlock(r);
        if (rc != 0)
            break;
        n++;
    }
    assert_int_equal(rc, ERR_NOSPACE);
    assert_true(n > 1000);
    unit_region_check(r);
    lock(r);
    assert_int_equal(shm_map_count(r, map), (size_t)n);
    for (int i = 0; i < n; i++) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), 0);
        assert_int_equal(v, (uint64_t)i);
    }
    shm_unlock(r);
    shm_destroy(r);
}

/* ---- across processes ---------------------------------------------------- */

static void test_forked_child_writes_parent_reads(void **state)
{
    struct shm_region *r = unit_region(4 << 20);
    uint64_t map, v;
    char k[32];
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = shm_lock(r) == 0;

        map = ok ? shm_map_new(r, 16) : 0;
        ok = ok && map != 0 && shm_root_set(r, "users", map) == 0;
        for (int i = 0; ok && i < 5000; i++) {
            uint64_t rec = shm_alloc(r, 64);

            key_of(k, sizeof k, i);
            ok = rec != 0 && shm_map_put(r, map, k, strlen(k), rec, NULL) == 0;
            if (ok)
                snprintf(shm_ptr(r, rec), 64, "user %d", i);
            if (i % 500 == 499)
                shm_commit(r);
        }
        if (ok)
            shm_unlock(r);
        _exit(ok ? 0 : 1);
    }
    unit_wait_success(pid);
    lock(r);
    map = shm_root_get(r, "users");
    assert_int_not_equal(map, 0);
    assert_int_equal(shm_map_count(r, map), 5000);
    for (int i = 0; i < 5000; i++) {
        char want[64];

        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), 0);
        snprintf(want, sizeof want, "user %d", i);
        assert_string_equal(shm_ptr(r, v), want);
    }
    shm_unlock(r);
    unit_region_check(r);
    shm_destroy(r);
}

/* The lock's owner is the process holding it: a child that took it owns it,
 * its parent (which made the region, and forked) does not, and has it again
 * once the child is gone. shm.c keeps each process's id rather than asking
 * the kernel at every call; a child must not keep its parent's. */
static void test_the_owner_is_the_process_holding_the_lock(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    int fds[2];
    char c;
    ssize_t got;
    bool mine;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (shm_lock(r) != 0 || !shm_locked(r))
            _exit(1);
        unit_child_ready(fds[1]);
    }
    close(fds[1]);
    got = read(fds[0], &c, 1);
    close(fds[0]);
    mine = shm_locked(r); /* the child holds it; asked before the child goes either way */
    assert_int_equal(kill(pid, SIGKILL), 0);
    unit_wait_killed(pid);
    assert_int_equal(got, 1);
    assert_false(mine);
    lock(r);
    assert_true(shm_locked(r));
    shm_unlock(r);
    assert_false(shm_locked(r));
    shm_destroy(r);
}

static void test_two_processes_exclude_each_other(void **state)
{
    struct shm_region *r = unit_region(1 << 20);
    uint64_t counter;
    pid_t pids[2];

    lock(r);
    counter = shm_alloc(r, 8);
    *(uint64_t *)shm_ptr(r, counter) = 0;
    shm_unlock(r);
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            for (int i = 0; i < 20000; i++) {
                volatile uint64_t *c;

                if (shm_lock(r) != 0)
                    _exit(1);
                c = shm_ptr(r, counter);
                *c = *c + 1;
                shm_unlock(r);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++)
        unit_wait_success(pids[p]);
    lock(r);
    assert_int_equal(*(uint64_t *)shm_ptr(r, counter), 40000);
    shm_unlock(r);
    shm_destroy(r);
}

/* The child takes the lock, changes a lot, tells the parent, and waits to be
 * killed with the lock held. */
static void test_holder_killed_mid_section_is_rolled_back(void **state)
{
    struct shm_region *r = unit_region(16 << 20);
    uint64_t map, blk, v;
    struct shm_stats st0, st;
    int fds[2];
    char k[32];
    pid_t pid;

    lock(r);
    map = shm_map_new(r, 8);
    blk = shm_alloc(r, 256);
    assert_int_not_equal(map, 0);
    assert_int_not_equal(blk, 0);
    fill(r, blk, 256, 5);
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof k, i);
        assert_int_equal(shm_map_put(r, map, k, strlen(k), (uint64_t)i, NULL), 0);
    }
    assert_int_equal(shm_root_set(r, "map", map), 0);
    shm_unlock(r);
    st0 = stats(r);
    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (shm_lock(r) != 0)
            _exit(1);
        for (int i = 100; i < 3000; i++) {      /* grows the map several times */
            key_of(k, sizeof k, i);
            if (shm_map_put(r, map, k, strlen(k), (uint64_t)i, NULL) != 0)
                _exit(1);
        }
        for (int i = 0; i < 50; i++) {
            key_of(k, sizeof k, i);
            if (shm_map_del(r, map, k, strlen(k), NULL) != 0)
                _exit(1);
        }
        if (shm_write(r, blk, "garbage!", 8) != 0 || shm_root_set(r, "map", 0) != 0)
            _exit(1);
        shm_free(r, blk);
        for (int i = 0; i < 100; i++)
            if (shm_alloc(r, 500) == 0)
                _exit(1);
        unit_child_ready(fds[1]);
    }
    unit_kill_when_ready(pid, fds);

    lock(r);
    shm_stats(r, &st);
    assert_int_equal(st.recoveries, st0.recoveries + 1);
    assert_int_equal(st.used, st0.used);
    assert_int_equal(st.blocks, st0.blocks);
    assert_int_equal(shm_root_get(r, "map"), map);
    assert_int_equal(shm_map_count(r, map), 100);
    for (int i = 0; i < 3000; i++) {
        key_of(k, sizeof k, i);
        if (i < 100) {
            assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), 0);
            assert_int_equal(v, (uint64_t)i);
        } else {
            assert_int_equal(shm_map_get(r, map, k, strlen(k), &v), ERR_NOTFOUND);
        }
    }
    assert_true(filled(r, blk, 256, 5));
    shm_unlock(r);
    unit_region_check(r);
    /* And the region works as before. */
    lock(r);
    assert_int_equal(shm_map_put(r, map, "after", 5, 1, NULL), 0);
    shm_free(r, blk);
    shm_unlock(r);
    unit_region_check(r);
    shm_destroy(r);
}

/* Step i of the worker below: add k<i> → record holding i; when i % 3 == 0
 * delete k<i-1>; then counter = i. All of a step or none of it must survive. */
static void kill_loop_child(struct shm_region *r, uint64_t map, uint64_t counter)
{
    char k[32];

    for (;;) {
        uint64_t i, rec, old;

        if (shm_lock(r) != 0)
            _exit(1);
        i = *(uint64_t *)shm_ptr(r, counter) + 1;
        rec = shm_alloc(r, 24 + i % 200);
        if (rec == 0)
            _exit(2);
        *(uint64_t *)shm_ptr(r, rec) = i;
        key_of(k, sizeof k, (int)i);
        if (shm_map_put(r, map, k, strlen(k), rec, NULL) != 0)
            _exit(3);
        if (i % 3 == 0) {
            key_of(k, sizeof k, (int)i - 1);
            if (shm_map_del(r, map, k, strlen(k), &old) != 0)
                _exit(4);
            shm_free(r, old);
        }
        if (shm_set64(r, counter, i) != 0)
            _exit(5);
        shm_unlock(r);
    }
}

static void test_holder_killed_at_random_points_leaves_whole_steps(void **state)
{
    struct shm_region *r = unit_region(32 << 20);
    uint64_t map, counter, n = 0, v;
    unsigned seed = (unsigned)time(NULL);
    int recovered = 0;
    char k[32];

    lock(r);
    map = shm_map_new(r, 4);
    counter = shm_alloc(r, 8);
    *(uint64_t *)shm_ptr(r, counter) = 0;
    shm_unlock(r);

    for (int round = 0; round < 40; round++) {
        struct timespec ts = {0, 200000 + (long)(rand_r(&seed) % 1000) * 1000};
        uint64_t live = 0;
        struct shm_stats st;
        char err[128];
        int status;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
            kill_loop_child(r, map, counter);
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        unit_wait_child(pid, &status);
        if (!WIFSIGNALED(status))
            fail_msg("child exited with %d", WEXITSTATUS(status));

        lock(r);
        shm_stats(r, &st);
        recovered = (int)st.recoveries;
        if (shm_check(r, err) != 0)
            fail_msg("round %d: %s", round, err);
        n = *(uint64_t *)shm_ptr(r, counter);
        for (uint64_t j = 1; j <= n + 1; j++) {
            bool want = j <= n && !(j + 1 <= n && (j + 1) % 3 == 0);
            int rc;

            key_of(k, sizeof k, (int)j);
            rc = shm_map_get(r, map, k, strlen(k), &v);
            if (rc != (want ? 0 : ERR_NOTFOUND))
                fail_msg("round %d, counter %llu: key %llu %s", round, (unsigned long long)n,
                         (unsigned long long)j, want ? "missing" : "present");
            if (want) {
                assert_int_equal(*(uint64_t *)shm_ptr(r, v), j);
                live++;
            }
        }
        assert_int_equal(shm_map_count(r, map), live);
        shm_unlock(r);
    }
    print_message("    %llu steps, %d kills landed inside a section\n", (unsigned long long)n,
                  recovered);
    assert_true(n > 100);
    assert_true(recovered > 0);
    shm_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_sizes),
        cmocka_unit_test(test_lock_twice_in_one_process_is_an_error),
        cmocka_unit_test(test_alloc_is_aligned_sized_and_disjoint),
        cmocka_unit_test(test_freed_block_is_reused_only_after_commit),
        cmocka_unit_test(test_exhaustion_returns_zero_and_region_stays_usable),
        cmocka_unit_test(test_random_alloc_free_keeps_invariants),
        cmocka_unit_test(test_abort_restores_everything),
        cmocka_unit_test(test_full_undo_log_fails_cleanly),
        cmocka_unit_test(test_root_directory),
        cmocka_unit_test(test_map_basic_operations),
        cmocka_unit_test(test_map_thousands_of_keys_grow_and_shrink),
        cmocka_unit_test(test_map_delete_during_iteration),
        cmocka_unit_test(test_map_fills_region_then_fails_cleanly),
        cmocka_unit_test(test_forked_child_writes_parent_reads),
        cmocka_unit_test(test_the_owner_is_the_process_holding_the_lock),
        cmocka_unit_test(test_two_processes_exclude_each_other),
        cmocka_unit_test(test_holder_killed_mid_section_is_rolled_back),
        cmocka_unit_test(test_holder_killed_at_random_points_leaves_whole_steps),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
