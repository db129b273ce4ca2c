/* listq: the records list's query language (DESIGN §5) read into a struct
 * eng_query against a resource's schema: filters `field=op.value`, the order
 * `field[.asc|.desc]`, and the signed keyset cursor that resumes a list.
 * Pure: no worker, no request, no storage; what it makes (reasons, typed
 * values, cursors) lives in the caller's arena. It holds no key and computes
 * no blind index itself: the caller hands it the secret cursors are keyed
 * from, the text that binds a cursor to its tenant, and a hook for the blind
 * index of a pii value. The query's pairs are lib/http/query's. */
#ifndef LIB_STORE_LISTQ_H
#define LIB_STORE_LISTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "http/query.h"
#include "store/engine.h"

#define LISTQ_CURSOR_MAX 1024      /* longer cursors are refused unread */

struct listq {
    struct arena *arena;           /* what listq makes; values owned by it are freed at its reset */
    const struct eng_resource *res;
    /* The blind index of value for pii field `field` (eq filters): 0, or an error. */
    int (*bidx)(void *ctx, const char *field, const char *value, char hex[ENG_HASH]);
    void *bidx_ctx;
    /* Cursors: the 32-byte secret their MAC key is derived from (NULL: no
     * cursor is made or opened), what binds one to its tenant and resource
     * ("org\nservice\nresource\nmode\n"), and the list's query parameters,
     * each of which binds it too (cursor and limit aside). */
    const uint8_t *secret;
    const char *bind;
    const struct query *qs;
};

/* Borrowed: the field a filter or order names (a schema field, or id,
 * created_at, updated_at described in *sys); NULL for no such column. */
const struct eng_field *listq_column(const struct eng_resource *res, const char *name, struct eng_field *sys);
/* Whether a field of this type may be ordered by and compared. */
bool listq_orderable(int type);

/* A filter key=op.value (the query string's form) into q's next filter. NULL,
 * or the reason it is refused, a sentence for the client (in the arena or
 * constant). */
const char *listq_filter(const struct listq *l, const char *key, const char *val, struct eng_query *q);
/* `order=field`, `field.asc` or `field.desc` into q->order and q->desc; NULL or
 * the reason. Whether the field can be ordered by is listq_order_type's. */
const char *listq_order(const char *val, struct eng_query *q);
/* The type q is ordered by, or 0 when q->order names no column that can be
 * (unknown, pii, json or vector). */
int listq_order_type(const struct listq *l, const struct eng_query *q);

/* The whole of a list's query (l->qs) into q, as GET …/{resource} reads it:
 * `limit` (1..limit_max into *limit; absent: *limit is left as it is),
 * `order` (default id), `cursor` (opened after the rest, as it depends on
 * the order), and every other pair a filter. NULL, or the reason the query
 * is refused (a 400). q is zeroed by the caller (q->now set). */
const char *listq_parse(const struct listq *l, struct eng_query *q, int64_t *limit, int64_t limit_max);

/* Borrowed until the arena's reset: a cursor resuming after last in q's
 * order, bound to l's query. NULL: out of memory or no secret. */
const char *listq_cursor_make(const struct listq *l, const struct eng_record *last, const char *order);
/* Opens cursor cur into q (after_value, after_id): true, or false for any
 * cursor forged, altered, made for another query or of another order type. */
bool listq_cursor_open(const struct listq *l, const char *cur, struct eng_query *q, int order_type);

#endif
