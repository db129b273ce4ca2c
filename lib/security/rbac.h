/* rbac: permission checks, Casbin-style with the org as the domain (DESIGN §4).
 * A permission is "action:object": the action is "area:verb" (records:read,
 * members:manage) or "*"; the object is "*", a whole service ("crm/" then "*")
 * or "service/resource".
 * "*:*" allows everything. Knows nothing of where permissions come from. */
#ifndef LIB_RBAC_H
#define LIB_RBAC_H

#include <stdbool.h>
#include <stddef.h>

/* True when one of perms[0..n) allows action on object ("*" when the action
 * has no object, such as members:manage). */
bool rbac_allows(const char (*perms)[96], int n, const char *action, const char *object);

/* True when have[0..nhave) allows every permission of want[0..nwant): what a
 * caller must hold to hand a role to anyone (a role, a member, an API key). */
bool rbac_covers(const char (*have)[96], int nhave, const char (*want)[96], int nwant);

/* True for a well-formed permission of a known action ("*" or one of
 * DESIGN §4's: records:read|write|delete, members:manage, roles:manage,
 * keys:manage, audit:read, and schema:write) on "*", a whole service
 * ("crm/" then "*") or "service/resource": what POST /v1/roles and seed
 * data accept. */
bool rbac_valid(const char *perm);

#endif
