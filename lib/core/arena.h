/* arena: per-request bump allocation, freed in one call.
 * Everything built for one request (parsed body, query, response JSON) comes
 * from the request's arena; arena_reset() at the end of the request gives it all
 * back. Not for long-lived objects and not thread-safe (workers are single-threaded). */
#ifndef LIB_ARENA_H
#define LIB_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena;

/* Returns owned: an arena whose first block holds `block` bytes; NULL on ENOMEM. */
struct arena *arena_new(size_t block);
/* Frees the arena and everything allocated from it; NULL is a no-op. */
void arena_free(struct arena *a);
/* Gives back every allocation but keeps the first block for the next request. */
void arena_reset(struct arena *a);

/* Borrowed until arena_reset/arena_free: n bytes aligned for any type, or NULL. */
void *arena_alloc(struct arena *a, size_t n);
/* Like arena_alloc but zeroed. */
void *arena_calloc(struct arena *a, size_t count, size_t size);
/* Copies of strings into the arena; NULL on ENOMEM (or when s is NULL). */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* printf into the arena. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);
/* Runs fn(p) at the next arena_reset/arena_free, newest first: how objects from
 * other allocators (a cJSON tree) share the request's lifetime. ERR_NOMEM on failure. */
int arena_defer(struct arena *a, void (*fn)(void *), void *p);
/* Bytes currently handed out (for tests and the slowlog). */
size_t arena_used(const struct arena *a);

#endif
