/* buf: a growable byte buffer with a hard cap (curl's dynbuf `toobig` is the
 * model): whatever input fills it cannot grow it past `max`. Used for response
 * bodies and rendered text. */
#ifndef LIB_BUF_H
#define LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

struct buf {
    char *p;        /* NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t max;     /* ERR_TOOBIG past this many bytes */
};

/* Embeds: an empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);
/* Frees the storage; the struct can be reused after buf_init. */
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b);

int buf_append(struct buf *b, const void *data, size_t n) ERR_MUST_CHECK;
int buf_puts(struct buf *b, const char *s) ERR_MUST_CHECK;
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3))) ERR_MUST_CHECK;

#endif
