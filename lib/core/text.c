/* text: names and reserved words (lib/core/text.h). The hex digit is inline
 * in the header: the parsers that call it sit in tight loops. */
#include "core/text.h"

#include <string.h>

bool text_ident_valid(const char *s, size_t max_len)
{
    size_t n;

    if (s == NULL || max_len == 0)
        return false;
    n = strnlen(s, max_len + 1);
    if (n == 0 || n > max_len || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* The one list (text.h says why each group is there). Some can never pass
 * text_ident_valid ("_score"): listed anyway, so the list stays the whole
 * answer to "which names are taken" whatever the identifier rule becomes. */
static const char *const RESERVED[] = {
    "id", "org_id", "version", "created_at", "updated_at", "expires_at", "deleted_at",
    "cursor", "limit", "order", "search", "schema", "views", "_score",
    "ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid",
};

bool text_reserved(const char *name)
{
    if (name == NULL)
        return false;
    for (size_t i = 0; i < sizeof RESERVED / sizeof RESERVED[0]; i++)
        if (strcmp(name, RESERVED[i]) == 0)
            return true;
    return false;
}
