/* router: matches a method and decoded path segments against a static route
 * table with `{name}` parameters (nginx's command tables are the model: data,
 * not a chain of ifs). Literal segments beat parameters, leftmost first, so
 * `/v1/svc/{s}/schema` wins over `/v1/svc/{s}/{r}`. A path owned by a pattern
 * with no route for the method is a 405 with the methods that pattern allows. */
#ifndef LIB_ROUTER_H
#define LIB_ROUTER_H

#include <stddef.h>

#include "core/err.h"

enum router_method {
    ROUTER_GET = 1 << 0,
    ROUTER_HEAD = 1 << 1,
    ROUTER_POST = 1 << 2,
    ROUTER_PUT = 1 << 3,
    ROUTER_PATCH = 1 << 4,
    ROUTER_DELETE = 1 << 5,
    ROUTER_OPTIONS = 1 << 6,
};

#define ROUTER_MAX_SEGS 12
#define ROUTER_MAX_PARAMS 6

/* One row of the table; `pattern` like "/v1/svc/{service}/{resource}/{id}".
 * `data` is the caller's (a handler and its permission): the router never looks at it. */
struct route {
    int method;                 /* one enum router_method */
    const char *pattern;
    const void *data;
};

/* A compiled table. Borrowed: the route array must outlive it. */
struct router {
    const struct route *routes;
    size_t n;
    struct {
        const char *seg[ROUTER_MAX_SEGS];   /* NULL: a parameter */
        const char *param[ROUTER_MAX_SEGS]; /* its name */
        size_t nseg;
        unsigned score;                     /* literal positions, leftmost highest */
    } *c;
};

struct router_match {
    const struct route *route;
    size_t nparams;
    const char *name[ROUTER_MAX_PARAMS];
    const char *value[ROUTER_MAX_PARAMS];   /* borrowed from the segments */
    int allow;                              /* on a 405 (ERR_INVAL): the methods allowed */
};

/* Compiles routes[0..n). ERR_INVAL (with errstr) on a malformed pattern. */
int router_init(struct router *r, const struct route *routes, size_t n, char errstr[128]) ERR_MUST_CHECK;
void router_cleanup(struct router *r);

/* Finds the route for method + segments. Returns 0 and fills m; ERR_NOTFOUND
 * (404) when no pattern matches the path; ERR_INVAL (405) when one does but not
 * for this method, with m->allow set. HEAD matches GET routes. */
int router_match(const struct router *r, int method, const char *const *segs, size_t nseg,
                 struct router_match *m) ERR_MUST_CHECK;

/* "GET" → ROUTER_GET; 0 for anything else. */
int router_method_parse(const char *s);
/* Writes "GET, HEAD, POST" for a mask into buf. */
void router_allow_str(int mask, char *buf, size_t sz);

/* Borrowed: a matched parameter by name, or NULL. */
const char *router_param(const struct router_match *m, const char *name);

#endif
