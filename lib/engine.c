/* What both engines share: the built-in roles and the mode names. */
#include "engine.h"

#include <string.h>

/* DESIGN §4: owner and admin manage everything; members write records; viewers read. */
const struct eng_role ENGINE_BUILTIN_ROLES[] = {
    {"", "owner", {"*:*"}, 1},
    {"", "admin",
     {"records:read:*", "records:write:*", "records:delete:*", "schema:write:*", "members:manage:*",
      "keys:manage:*", "audit:read:*", "roles:manage:*"},
     8},
    {"", "member", {"records:read:*", "records:write:*", "records:delete:*"}, 3},
    {"", "viewer", {"records:read:*"}, 1},
};

const size_t ENGINE_NBUILTIN_ROLES = sizeof ENGINE_BUILTIN_ROLES / sizeof ENGINE_BUILTIN_ROLES[0];

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
