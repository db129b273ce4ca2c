#include "http/reqid.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

bool reqid_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n == REQID_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return n > 0;
}

int reqid_gen_init(struct reqid_gen *g)
{
    uint64_t r;

    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        return ERR_IO;
    snprintf(g->prefix, sizeof g->prefix, "%016" PRIx64, r);
    g->seq = 0;
    return 0;
}

void reqid_next(struct reqid_gen *g, char out[REQID_MAX + 1])
{
    snprintf(out, REQID_MAX + 1, "%s%016" PRIx64, g->prefix, ++g->seq);
}
