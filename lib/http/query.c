#include "http/query.h"

#include <string.h>

#include "core/text.h"

int query_decode(struct arena *a, const char *s, size_t n, bool plus_is_space, char **out)
{
    char *d = arena_alloc(a, n + 1);
    size_t o = 0;

    if (d == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return ERR_INVAL;
            hi = text_hex_digit((unsigned char)s[i + 1]);
            lo = text_hex_digit((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return ERR_INVAL;
            c = (char)(hi << 4 | lo);
            if (c == '\0')
                return ERR_INVAL;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '\0') {
            return ERR_INVAL;
        }
        d[o++] = c;
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

int query_parse(struct arena *a, const char *qs, struct query *q)
{
    q->n = 0;
    if (qs == NULL)
        return 0;
    const char *p = qs;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq != NULL ? (size_t)(eq - p) : len;
            char *k, *v;
            int rc;

            if (q->n == QUERY_MAX_PARAMS)
                return ERR_TOOBIG;
            if ((rc = query_decode(a, p, klen, true, &k)) != 0)
                return rc;
            if (eq != NULL)
                rc = query_decode(a, eq + 1, len - klen - 1, true, &v);
            else
                rc = query_decode(a, "", 0, true, &v);
            if (rc != 0)
                return rc;
            q->p[q->n].key = k;
            q->p[q->n].value = v;
            q->n++;
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return 0;
}

const char *query_get(const struct query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->p[i].key, key) == 0)
            return q->p[i].value;
    return NULL;
}

int query_split_path(struct arena *a, const char *path, size_t len, const char **segs,
                     size_t max, size_t *nseg)
{
    size_t i = 0;

    *nseg = 0;
    if (len == 0 || path[0] != '/')
        return ERR_INVAL;
    if (len == 1)
        return 0; /* "/" has no segments */
    i = 1;
    while (i <= len) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (i == start)
            return ERR_INVAL; /* "//" or a trailing "/" */
        if (*nseg == max)
            return ERR_TOOBIG;
        char *seg;
        int rc = query_decode(a, path + start, i - start, false, &seg);
        if (rc != 0)
            return rc;
        segs[(*nseg)++] = seg;
        i++; /* past the '/' (or past the end) */
    }
    return 0;
}
