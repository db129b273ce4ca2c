/* Unit tests for lib/arena: alignment, allocations bigger than a block,
 * reuse after reset, deferred cleanups (newest first, on reset and on free),
 * and the string helpers. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "core/arena.h"
#include "core/err.h"

static void test_allocations_are_16_byte_aligned(void **state)
{
    struct arena *a = arena_new(512);
    static const size_t sizes[] = {1, 3, 7, 16, 17, 0, 31, 100, 1000, 5};

    assert_non_null(a);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = arena_alloc(a, sizes[i]);
        assert_non_null(p);
        if ((uintptr_t)p % 16 != 0)
            fail_msg("allocation %zu of %zu bytes at %p is not 16-aligned", i, sizes[i], p);
        memset(p, 0xAB, sizes[i]);
    }
    arena_free(a);
}

static void test_allocations_do_not_overlap(void **state)
{
    struct arena *a = arena_new(256);
    unsigned char *p[64];

    assert_non_null(a);
    for (int i = 0; i < 64; i++) {
        p[i] = arena_alloc(a, 24);
        assert_non_null(p[i]);
        memset(p[i], i, 24);
    }
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 24; j++)
            assert_int_equal(p[i][j], i);
    arena_free(a);
}

static void test_allocation_bigger_than_the_block_succeeds(void **state)
{
    struct arena *a = arena_new(256);
    char *small1, *big, *small2;

    assert_non_null(a);
    small1 = arena_strdup(a, "before");
    big = arena_alloc(a, 100000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 'x', 100000); /* ASan would catch a block smaller than asked */
    small2 = arena_strdup(a, "after");
    assert_string_equal(small1, "before");
    assert_string_equal(small2, "after");
    assert_true(arena_used(a) >= 100000);
    arena_free(a);
}

static void test_impossible_sizes_return_null(void **state)
{
    struct arena *a = arena_new(256);

    assert_non_null(a);
    /* rounding up to the alignment wraps size_t */
    assert_null(arena_alloc(a, SIZE_MAX));
    assert_null(arena_alloc(a, SIZE_MAX - 8));
    /* rounds to SIZE_MAX - 31: adding the block header on top wraps size_t */
    assert_null(arena_alloc(a, SIZE_MAX - 40));
    assert_null(arena_calloc(a, SIZE_MAX / 2, 3));
    /* the arena still works afterwards */
    assert_non_null(arena_strdup(a, "ok"));
    arena_free(a);
}

static void test_reset_gives_back_everything_and_keeps_working(void **state)
{
    struct arena *a = arena_new(256);

    assert_non_null(a);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 50; i++)
            assert_non_null(arena_alloc(a, 100));
        assert_non_null(arena_alloc(a, 10000));
        assert_true(arena_used(a) >= 50 * 100 + 10000);
        arena_reset(a);
        assert_int_equal(arena_used(a), 0);
        char *s = arena_strdup(a, "fresh");
        assert_string_equal(s, "fresh");
    }
    arena_free(a);
}

static void test_calloc_zeroes_memory_reused_after_reset(void **state)
{
    struct arena *a = arena_new(256);
    unsigned char *p;

    assert_non_null(a);
    memset(arena_alloc(a, 128), 0xFF, 128);
    arena_reset(a);
    p = arena_calloc(a, 16, 8);
    assert_non_null(p);
    for (int i = 0; i < 128; i++)
        assert_int_equal(p[i], 0);
    arena_free(a);
}

/* Records the order in which deferred callbacks ran. */
struct trace {
    int order[8];
    int n;
};

struct tagged {
    struct trace *t;
    int tag;
};

static void record(void *p)
{
    struct tagged *x = p;
    x->t->order[x->t->n++] = x->tag;
}

static void test_defer_runs_newest_first_on_reset(void **state)
{
    struct arena *a = arena_new(256);
    struct trace t = {{0}, 0};
    struct tagged x[3] = {{&t, 1}, {&t, 2}, {&t, 3}};

    assert_non_null(a);
    for (int i = 0; i < 3; i++)
        assert_int_equal(arena_defer(a, record, &x[i]), 0);
    assert_int_equal(t.n, 0);
    arena_reset(a);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.order[0], 3);
    assert_int_equal(t.order[1], 2);
    assert_int_equal(t.order[2], 1);

    /* they ran once: a second reset does not run them again */
    arena_reset(a);
    assert_int_equal(t.n, 3);
    arena_free(a);
    assert_int_equal(t.n, 3);
}

static void test_defer_runs_on_free(void **state)
{
    struct arena *a = arena_new(256);
    struct trace t = {{0}, 0};
    struct tagged x[2] = {{&t, 1}, {&t, 2}};

    assert_non_null(a);
    assert_int_equal(arena_defer(a, record, &x[0]), 0);
    /* spill into a second block between the two records */
    assert_non_null(arena_alloc(a, 4096));
    assert_int_equal(arena_defer(a, record, &x[1]), 0);
    arena_free(a);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.order[0], 2);
    assert_int_equal(t.order[1], 1);
}

static void test_defer_frees_a_foreign_allocation(void **state)
{
    struct arena *a = arena_new(256);
    char *heap = strdup("owned by malloc");

    assert_non_null(a);
    assert_non_null(heap);
    assert_int_equal(arena_defer(a, free, heap), 0);
    arena_reset(a); /* LeakSanitizer reports it if free did not run */
    arena_free(a);
}

static void test_strdup_strndup_and_printf(void **state)
{
    struct arena *a = arena_new(256);
    char *s;
    char longer[600];

    assert_non_null(a);
    assert_string_equal(arena_strdup(a, "hello"), "hello");
    assert_string_equal(arena_strdup(a, ""), "");
    assert_null(arena_strdup(a, NULL));
    assert_null(arena_strndup(a, NULL, 3));
    assert_string_equal(arena_strndup(a, "hello", 3), "hel");
    assert_string_equal(arena_printf(a, "%s-%d-%05.1f", "x", 42, 3.14159), "x-42-003.1");

    /* output longer than a block */
    memset(longer, 'z', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    s = arena_printf(a, "[%s]", longer);
    assert_non_null(s);
    assert_int_equal(strlen(s), sizeof longer + 1);
    assert_int_equal(s[0], '[');
    assert_int_equal(s[sizeof longer], ']');
    arena_free(a);
}

static void test_free_null_is_a_no_op(void **state)
{
    arena_free(NULL); /* fails by crashing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations_are_16_byte_aligned),
        cmocka_unit_test(test_allocations_do_not_overlap),
        cmocka_unit_test(test_allocation_bigger_than_the_block_succeeds),
        cmocka_unit_test(test_impossible_sizes_return_null),
        cmocka_unit_test(test_reset_gives_back_everything_and_keeps_working),
        cmocka_unit_test(test_calloc_zeroes_memory_reused_after_reset),
        cmocka_unit_test(test_defer_runs_newest_first_on_reset),
        cmocka_unit_test(test_defer_runs_on_free),
        cmocka_unit_test(test_defer_frees_a_foreign_allocation),
        cmocka_unit_test(test_strdup_strndup_and_printf),
        cmocka_unit_test(test_free_null_is_a_no_op),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
