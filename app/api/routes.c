/* The route table: method, pattern, handler, whether the caller must be
 * authenticated and the permission it needs. One row per endpoint; the router
 * compiles it once per worker. */
#include "app.h"

/* after the handler: OPEN, OPTIONAL or AUTHED(permission) (auth and perm of struct
 * app_route), then DOC(summary, request schema, response schema, statuses)
 * for the OpenAPI document (openapi.c; schema names are app/api/openapi.json's
 * components, NULL for none), or UNDOCUMENTED */
#define ROW(m, path, fn, ...) \
    {ROUTER_##m, path, &(const struct app_route){fn, #m " " path, __VA_ARGS__}}
#define OPEN AUTH_NONE, NULL
#define AUTHED(perm) AUTH_REQUIRED, perm
#define OPTIONAL AUTH_OPTIONAL, NULL
#define DOC(summary, req, res, statuses) summary, req, res, statuses
#define UNDOCUMENTED NULL, NULL, NULL, NULL

const struct route APP_ROUTES[] = {
    ROW(GET, "/openapi.json", handle_openapi, OPTIONAL, DOC("This document; with a token, also the resources of its mode", NULL, NULL, "200 400")),
    ROW(GET, "/healthz", handle_ops_healthz, OPEN, DOC("Liveness", NULL, "Health", "200")),
    ROW(GET, "/readyz", handle_ops_readyz, OPEN, DOC("Readiness per dependency", NULL, "Ready", "200 503")),
    ROW(GET, "/metrics", handle_ops_metrics, OPEN, DOC("Prometheus metrics (text)", NULL, NULL, "200")),

    ROW(POST, "/v1/auth/signup", handle_auth_signup, OPEN, DOC("Sign up: a new user and org, or join by invite", "SignupRequest", "TokenPair", "201 409 422 429")),
    ROW(POST, "/v1/auth/login", handle_auth_login, OPEN, DOC("Log in: a token pair", "LoginRequest", "TokenPair", "200 401 422 429")),
    ROW(POST, "/v1/auth/refresh", handle_auth_refresh, OPEN, DOC("Rotate a refresh token: a new pair", "RefreshRequest", "TokenPair", "200 401 422")),
    ROW(POST, "/v1/auth/logout", handle_auth_logout, AUTHED(NULL), DOC("Log out: the access token refused from now on, its refresh family revoked", NULL, NULL, "204")),
    ROW(POST, "/v1/auth/invites/accept", handle_invites_accept, AUTHED(NULL), DOC("Accept an invite to another org, logged in as the person it names: a token pair for that org", "InviteAccept", "TokenPair", "200 400 403 409 422")),
    ROW(POST, "/v1/auth/password", handle_auth_password, AUTHED(NULL), DOC("Change your password: every other session ends", "PasswordChange", "PasswordChanged", "200 403 422 429")),
    ROW(POST, "/v1/auth/password/forgot", handle_auth_forgot, OPEN, DOC("Ask for a password reset: 202 whether or not the email has an account", "EmailOnly", "Accepted", "202 400 422 429")),
    ROW(POST, "/v1/auth/password/reset", handle_auth_reset, OPEN, DOC("Set a new password with a reset token: every session ends", "PasswordReset", "PasswordChanged", "200 400 422")),
    ROW(POST, "/v1/auth/verify", handle_auth_verify, OPEN, DOC("Verify your email address with the token sent to it", "TokenOnly", "Verified", "200 400 422")),
    ROW(POST, "/v1/auth/verify/resend", handle_auth_verify_resend, OPEN, DOC("Ask for another verification message: 202 whether or not the email has an unverified account", "EmailOnly", "Accepted", "202 400 422 429")),
    ROW(GET, "/v1/auth/sessions", handle_sessions_list, AUTHED(NULL), DOC("Your live sessions in every org (the current one marked)", NULL, "Sessions", "200 403")),
    ROW(DELETE, "/v1/auth/sessions/{id}", handle_sessions_end, AUTHED(NULL), DOC("End one of your sessions: its refresh token and access tokens refused", NULL, NULL, "204 403 404")),
    ROW(DELETE, "/v1/auth/me", handle_auth_erase, AUTHED(NULL), DOC("Erase your account (your password in the body): memberships, sessions, your keys and your personal data", "PasswordOnly", NULL, "204 403 409 422 429")),
    ROW(GET, "/v1/auth/me", handle_auth_me, AUTHED(NULL), DOC("The caller: user, org, role, permissions, mode", NULL, "Me", "200")),
    ROW(GET, "/.well-known/jwks.json", handle_auth_jwks, OPEN, DOC("The signing public keys", NULL, "Jwks", "200")),
    ROW(POST, "/v1/auth/api-keys", handle_keys_create, AUTHED("keys:manage"), DOC("Create an API key (its secret shown once)", "ApiKeyRequest", "ApiKey", "201 403 422")),
    ROW(GET, "/v1/auth/api-keys", handle_keys_list, AUTHED("keys:manage"), DOC("List the org's API keys", NULL, "List", "200 403")),
    ROW(DELETE, "/v1/auth/api-keys/{id}", handle_keys_revoke, AUTHED("keys:manage"), DOC("Revoke an API key", NULL, NULL, "204 403 404")),

    ROW(GET, "/v1/orgs/current", handle_orgs_current, AUTHED(NULL), DOC("The caller's org", NULL, "Org", "200")),
    ROW(GET, "/v1/orgs/current/members", handle_members_list, AUTHED(NULL), DOC("List the org's members", NULL, "List", "200")),
    ROW(POST, "/v1/orgs/current/members", handle_members_invite, AUTHED("members:manage"), DOC("Invite a member (a one-time invite token)", "InviteRequest", "Invite", "201 403 422")),
    ROW(PATCH, "/v1/orgs/current/members/{user_id}", handle_members_update, AUTHED("members:manage"), DOC("Change a member's role", "RoleChange", "Member", "200 403 404 409 422")),
    ROW(DELETE, "/v1/orgs/current/members/{user_id}", handle_members_remove, AUTHED("members:manage"), DOC("Remove a member", NULL, NULL, "204 403 404 409")),
    ROW(DELETE, "/v1/orgs/current/members/{user_id}/sessions", handle_members_sessions_end, AUTHED("members:manage"), DOC("End every session of a member in this org", NULL, "SessionsEnded", "200 403 404")),
    ROW(GET, "/v1/roles", handle_roles_list, AUTHED(NULL), DOC("List the roles (built-in and the org's)", NULL, "List", "200")),
    ROW(POST, "/v1/roles", handle_roles_create, AUTHED("roles:manage"), DOC("Define a role of the org", "Role", "Role", "201 403 409 422")),
    ROW(GET, "/v1/roles/{name}", handle_roles_get, AUTHED(NULL), DOC("A role (built-in or the org's)", NULL, "Role", "200 404")),
    ROW(PATCH, "/v1/roles/{name}", handle_roles_update, AUTHED("roles:manage"), DOC("Change an org role's permissions (built-ins are read-only)", "RolePatch", "Role", "200 403 404 422")),
    ROW(DELETE, "/v1/roles/{name}", handle_roles_delete, AUTHED("roles:manage"), DOC("Delete an org role nothing holds (built-ins are read-only)", NULL, NULL, "204 403 404 409")),

    ROW(GET, "/v1/apps", handle_apps_list, AUTHED(NULL), DOC("App discovery", NULL, "List", "200")),
    ROW(POST, "/v1/apps", handle_apps_create, AUTHED(NULL), DOC("Register an app (platform admins)", "App", "App", "201 403 409 422")), /* platform admins: checked inside */

    ROW(GET, "/v1/admin/events", handle_admin_events, AUTHED(NULL), DOC("The auth outbox for the deployment's mailer: reset and verification messages to send, from a cursor (platform admins)", NULL, "AuthEvents", "200 400 403")),
    ROW(DELETE, "/v1/admin/users/{id}", handle_admin_user_erase, AUTHED(NULL), DOC("Erase an account (platform admins)", NULL, NULL, "204 403 404 409")),
    ROW(GET, "/v1/admin/fleet", handle_ops_fleet, AUTHED(NULL), DOC("The fleet's process table, as `tessera status` shows it (platform admins)", NULL, "Fleet", "200 403")),

    ROW(GET, "/v1/audit", handle_audit_list, AUTHED("audit:read"), DOC("The org's audit trail", NULL, "List", "200 403")),

    /* the MicroService API: permissions are per service/resource, checked inside */
    ROW(GET, "/v1/svc/{service}/schema", handle_schema_get, AUTHED(NULL), DOC("A service's resource schemas", NULL, "ServiceSchema", "200 404")),
    ROW(PUT, "/v1/svc/{service}/schema/{resource}", handle_schema_put, AUTHED(NULL), DOC("Create or change a resource's schema (platform admins)", "SchemaPut", "Resource", "200 403 404 409 422")),
    ROW(POST, "/v1/svc/{service}/{resource}", handle_records_create, AUTHED(NULL), DOC("Create a record", "RecordInput", "Record", "201 403 404 422")),
    ROW(GET, "/v1/svc/{service}/{resource}", handle_records_list, AUTHED(NULL), DOC("List records: filters field=op.value, order, keyset cursor", NULL, "List", "200 400 403 404")),
    ROW(GET, "/v1/svc/{service}/{resource}/{id}", handle_records_get, AUTHED(NULL), DOC("Read a record", NULL, "Record", "200 403 404")),
    ROW(GET, "/v1/svc/{service}/{resource}/changes", handle_changes_list, AUTHED(NULL), DOC("The change feed: committed changes in order, resumable", NULL, "Changes", "200 400 403 404 410")),
    ROW(POST, "/v1/svc/{service}/{resource}/search", handle_records_search, AUTHED(NULL), DOC("Vector search: the k nearest records that pass the filter", "SearchRequest", "SearchResult", "200 403 404 422")),
    ROW(GET, "/v1/svc/{service}/{resource}/views/{view}", handle_views_get, AUTHED(NULL), DOC("A CQRS view's rows, with its lag", NULL, "View", "200 400 403 404")),
    ROW(PATCH, "/v1/svc/{service}/{resource}/{id}", handle_records_update, AUTHED(NULL), DOC("Update a record (If-Match: its version)", "RecordInput", "Record", "200 403 404 412 422")),
    ROW(DELETE, "/v1/svc/{service}/{resource}/{id}", handle_records_delete, AUTHED(NULL), DOC("Delete a record (If-Match: its version)", NULL, NULL, "204 403 404 412")),

#ifdef TESSERA_TEST_HOOKS
    ROW(GET, "/debug/sleep", handle_debug_sleep, OPEN, UNDOCUMENTED),
    ROW(POST, "/debug/echo", handle_debug_echo, OPEN, UNDOCUMENTED),
    ROW(PUT, "/debug/echo", handle_debug_echo, OPEN, UNDOCUMENTED),
    ROW(PATCH, "/debug/echo", handle_debug_echo, OPEN, UNDOCUMENTED),
    ROW(GET, "/debug/params/{service}/{resource}/{id}", handle_debug_echo, OPEN, UNDOCUMENTED),
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
