/* The origin match of cors.h. An origin is "scheme://host[:port]" (RFC 6454
 * serialization); entries have the same form, the port possibly "*". */
#include "http/cors.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SEPS ", \t"

/* The parts of "scheme://host[:port]": lengths into s; port_len 0 when none.
 * false when s is not of that form (a path, userinfo, an empty host, a port
 * that is neither digits nor, with star, "*"). */
static bool split(const char *s, size_t len, bool star, size_t *scheme_len, const char **host, size_t *host_len,
                  const char **port, size_t *port_len)
{
    const char *sep = len >= 3 ? strstr(s, "://") : NULL;

    if (sep == NULL || sep == s || (size_t)(sep - s) + 3 >= len)
        return false;
    *scheme_len = (size_t)(sep - s);
    for (size_t i = 0; i < *scheme_len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
            return false;
    *host = sep + 3;
    const char *end = s + len, *colon = memchr(*host, ':', (size_t)(end - *host));
    *host_len = (size_t)((colon != NULL ? colon : end) - *host);
    if (*host_len == 0)
        return false;
    for (size_t i = 0; i < *host_len; i++) {
        unsigned char c = (unsigned char)(*host)[i];
        /* a host name, an IPv4 address; IPv6 literals are not supported */
        if (!isalnum(c) && c != '-' && c != '.')
            return false;
    }
    *port = colon != NULL ? colon + 1 : end;
    *port_len = (size_t)(end - *port);
    if (colon != NULL && *port_len == 0)
        return false;
    if (star && *port_len == 1 && **port == '*')
        return true;
    if (*port_len > 5)
        return false;
    for (size_t i = 0; i < *port_len; i++)
        if (!isdigit((unsigned char)(*port)[i]))
            return false;
    return true;
}

static bool entry_matches(const char *e, size_t elen, const char *origin, size_t olen)
{
    size_t es, eh, ep, os, oh, op;
    const char *ehost, *eport, *ohost, *oport;

    if (elen == 1 && e[0] == '*')
        return true;
    if (!split(e, elen, true, &es, &ehost, &eh, &eport, &ep) ||
        !split(origin, olen, false, &os, &ohost, &oh, &oport, &op))
        return false;
    if (es != os || strncasecmp(e, origin, es) != 0 || eh != oh || strncasecmp(ehost, ohost, eh) != 0)
        return false;
    if (ep == 1 && eport[0] == '*')
        return true;
    return ep == op && memcmp(eport, oport, ep) == 0;
}

bool cors_allows(const char *list, const char *origin)
{
    size_t olen;

    if (list == NULL || origin == NULL || (olen = strlen(origin)) == 0)
        return false;
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, SEPS);
        size_t len = strcspn(p, SEPS);
        if (len == 0)
            break;
        if (entry_matches(p, len, origin, olen))
            return true;
        p += len;
    }
    return false;
}

int cors_list_check(const char *list, char *why, size_t whysz)
{
    for (const char *p = list != NULL ? list : ""; *p != '\0';) {
        size_t s, h, n;
        const char *host, *port;

        p += strspn(p, SEPS);
        size_t len = strcspn(p, SEPS);
        if (len == 0)
            break;
        if (!(len == 1 && p[0] == '*') && !split(p, len, true, &s, &host, &h, &port, &n)) {
            snprintf(why, whysz, "\"%.*s\" is not an origin (scheme://host, scheme://host:port, "
                                 "scheme://host:* or *)", (int)(len > 64 ? 64 : len), p);
            return -1;
        }
        p += len;
    }
    return 0;
}
