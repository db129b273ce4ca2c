/* What both engines share: the built-in roles, the mode names and the rule
 * that decides a refresh replay. */
#include "store/engine.h"

#include <string.h>

/* DESIGN §4: owner and admin manage everything of their org; members write
 * records; viewers read. Schemas are the platform's, not an org's: no role
 * grants changing them (sql/0006_platform_schemas.sql has the same list). */
const struct eng_role ENGINE_BUILTIN_ROLES[] = {
    {"", "owner", {"*:*"}, 1},
    {"", "admin",
     {"records:read:*", "records:write:*", "records:delete:*", "members:manage:*", "keys:manage:*",
      "audit:read:*", "roles:manage:*"},
     7},
    {"", "member", {"records:read:*", "records:write:*", "records:delete:*"}, 3},
    {"", "viewer", {"records:read:*"}, 1},
};

const size_t ENGINE_NBUILTIN_ROLES = sizeof ENGINE_BUILTIN_ROLES / sizeof ENGINE_BUILTIN_ROLES[0];

const struct eng_role *engine_builtin_role(const char *name)
{
    for (size_t i = 0; name != NULL && i < ENGINE_NBUILTIN_ROLES; i++)
        if (strcmp(ENGINE_BUILTIN_ROLES[i].name, name) == 0)
            return &ENGINE_BUILTIN_ROLES[i];
    return NULL;
}

void engine_free(struct engine *e)
{
    if (e != NULL && e->ops != NULL)
        e->ops->free(e);
}

int engine_mode_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (strcmp(s, "test") == 0)
        return ENG_MODE_TEST;
    if (strcmp(s, "live") == 0)
        return ENG_MODE_LIVE;
    return -1;
}

const char *engine_mode_name(int mode)
{
    return mode == ENG_MODE_LIVE ? "live" : "test";
}

/* Within the interval, and only while the child is the family's live token:
 * once it has rotated (or the family was revoked) a replay is reuse. A clock
 * a little behind the one that marked the parent still counts as within. */
bool eng_refresh_replayable(const struct eng_refresh *parent, const struct eng_refresh *child,
                            int64_t now, int64_t reuse_interval)
{
    return parent->used_at != 0 && parent->revoked_at == 0 && now - parent->used_at <= reuse_interval &&
           child != NULL && child->used_at == 0 && child->revoked_at == 0 && child->expires_at > now;
}
