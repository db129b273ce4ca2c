/* The route table: method, pattern, handler. One row per endpoint; the
 * router compiles it once per worker. */
#include "app.h"

#define ROW(m, path, fn) {ROUTER_##m, path, &(const struct app_route){fn, #m " " path}}

const struct route APP_ROUTES[] = {
    ROW(GET, "/healthz", handle_ops_healthz),
    ROW(GET, "/readyz", handle_ops_readyz),
    ROW(GET, "/metrics", handle_ops_metrics),
#ifdef TESSERA_TEST_HOOKS
    ROW(GET, "/debug/sleep", handle_debug_sleep),
    ROW(POST, "/debug/echo", handle_debug_echo),
    ROW(PUT, "/debug/echo", handle_debug_echo),
    ROW(PATCH, "/debug/echo", handle_debug_echo),
    ROW(GET, "/debug/params/{service}/{resource}/{id}", handle_debug_echo),
#endif
};

const size_t APP_NROUTES = sizeof APP_ROUTES / sizeof APP_ROUTES[0];

size_t app_route_labels(const char **out, size_t max)
{
    size_t n = 0;

    for (; n < APP_NROUTES && n + 1 < max; n++)
        out[n] = ((const struct app_route *)APP_ROUTES[n].data)->label;
    out[n++] = "unmatched";
    return n;
}
