#include "security/rbac.h"

#include <string.h>

/* Splits "area:verb:object" (or "*:object") into action and object lengths. */
static bool split(const char *perm, size_t *alen, const char **object)
{
    const char *c1 = strchr(perm, ':');

    if (c1 == NULL)
        return false;
    if (c1 - perm == 1 && perm[0] == '*') {
        *alen = 1;
        *object = c1 + 1;
        return true;
    }
    const char *c2 = strchr(c1 + 1, ':');
    if (c2 == NULL)
        return false;
    *alen = (size_t)(c2 - perm);
    *object = c2 + 1;
    return true;
}

static bool object_matches(const char *pat, const char *object)
{
    size_t n = strlen(pat);

    if (strcmp(pat, "*") == 0 || strcmp(pat, object) == 0)
        return true;
    /* a trailing slash-star covers that service: crm/contacts, not crmx/contacts */
    return n >= 2 && pat[n - 1] == '*' && pat[n - 2] == '/' && strncmp(pat, object, n - 1) == 0;
}

bool rbac_allows(const char (*perms)[96], int n, const char *action, const char *object)
{
    for (int i = 0; i < n; i++) {
        size_t alen;
        const char *pobj;
        if (!split(perms[i], &alen, &pobj))
            continue;
        bool action_ok = (alen == 1 && perms[i][0] == '*') ||
                         (alen == strlen(action) && strncmp(perms[i], action, alen) == 0);
        if (action_ok && object_matches(pobj, object))
            return true;
    }
    return false;
}

bool rbac_covers(const char (*have)[96], int nhave, const char (*want)[96], int nwant)
{
    for (int i = 0; i < nwant; i++) {
        size_t alen;
        const char *obj;
        char action[96];

        if (!split(want[i], &alen, &obj))
            return false;
        memcpy(action, want[i], alen);
        action[alen] = '\0';
        if (!rbac_allows(have, nhave, action, obj))
            return false;
    }
    return true;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Every action something checks (DESIGN §4); schema:write is known so that
 * the roles endpoint can say why no org may grant it. A misspelt action
 * would grant nothing and is refused rather than stored. */
static const char *const ACTIONS[] = {"records:read", "records:write", "records:delete", "members:manage",
                                      "roles:manage",  "keys:manage",   "audit:read",     "schema:write"};

bool rbac_valid(const char *perm)
{
    size_t alen;
    const char *obj;
    bool known = false;

    if (strlen(perm) >= 96 || !split(perm, &alen, &obj))
        return false;
    known = alen == 1 && perm[0] == '*';
    for (size_t i = 0; !known && i < sizeof ACTIONS / sizeof ACTIONS[0]; i++)
        known = alen == strlen(ACTIONS[i]) && strncmp(perm, ACTIONS[i], alen) == 0;
    if (!known)
        return false;
    if (strcmp(obj, "*") == 0)
        return true;
    const char *slash = strchr(obj, '/');
    if (slash == NULL)
        return false;
    if (!name_ok(obj, (size_t)(slash - obj)))
        return false;
    return strcmp(slash + 1, "*") == 0 || name_ok(slash + 1, strlen(slash + 1));
}
