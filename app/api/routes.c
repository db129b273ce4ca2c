/* The route table: method, pattern, handler, whether the caller must be
 * authenticated and the permission it needs. One row per endpoint; the router
 * compiles it once per worker. */
#include "app.h"

/* the last argument is OPEN or AUTHED(permission): auth and perm of struct app_route */
#define ROW(m, path, fn, ...) \
    {ROUTER_##m, path, &(const struct app_route){fn, #m " " path, __VA_ARGS__}}
#define OPEN AUTH_NONE, NULL
#define AUTHED(perm) AUTH_REQUIRED, perm

const struct route APP_ROUTES[] = {
    ROW(GET, "/healthz", handle_ops_healthz, OPEN),
    ROW(GET, "/readyz", handle_ops_readyz, OPEN),
    ROW(GET, "/metrics", handle_ops_metrics, OPEN),

    ROW(POST, "/v1/auth/signup", handle_auth_signup, OPEN),
    ROW(POST, "/v1/auth/login", handle_auth_login, OPEN),
    ROW(POST, "/v1/auth/refresh", handle_auth_refresh, OPEN),
    ROW(POST, "/v1/auth/logout", handle_auth_logout, AUTHED(NULL)),
    ROW(GET, "/v1/auth/me", handle_auth_me, AUTHED(NULL)),
    ROW(GET, "/.well-known/jwks.json", handle_auth_jwks, OPEN),
    ROW(POST, "/v1/auth/api-keys", handle_keys_create, AUTHED("keys:manage")),
    ROW(GET, "/v1/auth/api-keys", handle_keys_list, AUTHED("keys:manage")),
    ROW(DELETE, "/v1/auth/api-keys/{id}", handle_keys_revoke, AUTHED("keys:manage")),

    ROW(GET, "/v1/orgs/current", handle_orgs_current, AUTHED(NULL)),
    ROW(GET, "/v1/orgs/current/members", handle_members_list, AUTHED(NULL)),
    ROW(POST, "/v1/orgs/current/members", handle_members_invite, AUTHED("members:manage")),
    ROW(PATCH, "/v1/orgs/current/members/{user_id}", handle_members_update, AUTHED("members:manage")),
    ROW(DELETE, "/v1/orgs/current/members/{user_id}", handle_members_remove, AUTHED("members:manage")),
    ROW(GET, "/v1/roles", handle_roles_list, AUTHED(NULL)),
    ROW(POST, "/v1/roles", handle_roles_create, AUTHED("roles:manage")),

    ROW(GET, "/v1/apps", handle_apps_list, AUTHED(NULL)),
    ROW(POST, "/v1/apps", handle_apps_create, AUTHED(NULL)), /* platform admins: checked inside */

    ROW(GET, "/v1/audit", handle_audit_list, AUTHED("audit:read")),

    /* the MicroService API: permissions are per service/resource, checked inside */
    ROW(GET, "/v1/svc/{service}/schema", handle_schema_get, AUTHED(NULL)),
    ROW(PUT, "/v1/svc/{service}/schema/{resource}", handle_schema_put, AUTHED(NULL)),
    ROW(POST, "/v1/svc/{service}/{resource}", handle_records_create, AUTHED(NULL)),
    ROW(GET, "/v1/svc/{service}/{resource}", handle_records_list, AUTHED(NULL)),
    ROW(GET, "/v1/svc/{service}/{resource}/{id}", handle_records_get, AUTHED(NULL)),
    ROW(GET, "/v1/svc/{service}/{resource}/changes", handle_changes_list, AUTHED(NULL)),
    ROW(POST, "/v1/svc/{service}/{resource}/search", handle_records_search, AUTHED(NULL)),
    ROW(GET, "/v1/svc/{service}/{resource}/views/{view}", handle_views_get, AUTHED(NULL)),
    ROW(PATCH, "/v1/svc/{service}/{resource}/{id}", handle_records_update, AUTHED(NULL)),
    ROW(DELETE, "/v1/svc/{service}/{resource}/{id}", handle_records_delete, AUTHED(NULL)),

#ifdef TESSERA_TEST_HOOKS
    ROW(GET, "/debug/sleep", handle_debug_sleep, OPEN),
    ROW(POST, "/debug/echo", handle_debug_echo, OPEN),
    ROW(PUT, "/debug/echo", handle_debug_echo, OPEN),
    ROW(PATCH, "/debug/echo", handle_debug_echo, OPEN),
    ROW(GET, "/debug/params/{service}/{resource}/{id}", handle_debug_echo, OPEN),
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
