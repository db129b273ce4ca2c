/* A chain of blocks: the first is kept across resets so a typical request
 * allocates nothing from malloc; oversized requests get a block of their own. */
#include "core/arena.h"
#include "core/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16

struct block {
    struct block *next;
    size_t size;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct deferred {
    struct deferred *next;
    void (*fn)(void *);
    void *p;
};

struct arena {
    struct block *head;   /* block being filled */
    struct deferred *defer;
    struct block *first;  /* kept across resets */
    size_t block_size;
    size_t total;
};

static struct block *block_new(size_t size)
{
    struct block *b;

    if (size > SIZE_MAX - sizeof *b)
        return NULL; /* the header on top would wrap to a tiny malloc */
    b = malloc(sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct arena *arena_new(size_t block)
{
    struct arena *a = malloc(sizeof *a);

    if (a == NULL)
        return NULL;
    if (block < 256)
        block = 256;
    a->block_size = block;
    a->total = 0;
    a->defer = NULL;
    a->first = a->head = block_new(block);
    if (a->first == NULL) {
        free(a);
        return NULL;
    }
    return a;
}

static void free_chain(struct block *b, struct block *stop)
{
    while (b != NULL && b != stop) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
}

/* Deferred records live in the arena itself, so run them before freeing blocks. */
static void run_deferred(struct arena *a)
{
    for (struct deferred *d = a->defer; d != NULL; d = d->next)
        d->fn(d->p);
    a->defer = NULL;
}

int arena_defer(struct arena *a, void (*fn)(void *), void *p)
{
    struct deferred *d = arena_alloc(a, sizeof *d);

    if (d == NULL)
        return ERR_NOMEM;
    d->fn = fn;
    d->p = p;
    d->next = a->defer;
    a->defer = d;
    return 0;
}

void arena_free(struct arena *a)
{
    if (a == NULL)
        return;
    run_deferred(a);
    free_chain(a->head, NULL);
    free(a);
}

void arena_reset(struct arena *a)
{
    run_deferred(a);
    /* Blocks are pushed at the head, so the first block ends the chain. */
    free_chain(a->head, a->first);
    a->head = a->first;
    a->first->used = 0;
    a->first->next = NULL;
    a->total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    struct block *b = a->head;

    if (n == 0)
        need = ARENA_ALIGN;
    if (need < n)
        return NULL; /* overflow */
    if (b->size - b->used < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        b = block_new(size);
        if (b == NULL)
            return NULL;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->total += need;
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = arena_alloc(a, count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return s == NULL ? NULL : arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    char *p = arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

size_t arena_used(const struct arena *a)
{
    return a->total;
}
