/* query: percent-decoding of URL paths and query strings.
 * Pure functions over bytes (no FastCGI), so the parsing that every request
 * depends on is unit-tested on its own. Decoded output that would contain a NUL
 * byte is refused: every consumer downstream treats strings as C strings. */
#ifndef LIB_QUERY_H
#define LIB_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/err.h"

struct query_param {
    const char *key;
    const char *value;      /* "" for `?flag` */
};

#define QUERY_MAX_PARAMS 64

struct query {
    struct query_param p[QUERY_MAX_PARAMS];
    size_t n;
};

/* Decodes s[0..n) (%XX escapes; `+` → space only when plus_is_space) into the
 * arena. Borrowed until arena reset. ERR_INVAL on a bad escape or an encoded NUL. */
int query_decode(struct arena *a, const char *s, size_t n, bool plus_is_space,
                 char **out) ERR_MUST_CHECK;

/* Parses `a=1&b=x%20y`. ERR_INVAL on a bad escape, ERR_TOOBIG past
 * QUERY_MAX_PARAMS. Empty pieces (`a=1&&b=2`) are skipped. */
int query_parse(struct arena *a, const char *qs, struct query *q) ERR_MUST_CHECK;

/* Borrowed: the first value for key, or NULL. */
const char *query_get(const struct query *q, const char *key);

/* Splits a path ("/v1/svc/a%2Fb/x") into decoded segments ("v1","svc","a/b","x").
 * A trailing slash and empty segments are refused (ERR_INVAL), as are more
 * than max segments (ERR_TOOBIG). */
int query_split_path(struct arena *a, const char *path, size_t len, const char **segs,
                     size_t max, size_t *nseg) ERR_MUST_CHECK;

#endif
