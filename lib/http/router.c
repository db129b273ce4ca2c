#include "http/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const METHOD_NAMES[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

int router_method_parse(const char *s)
{
    for (size_t i = 0; i < sizeof METHOD_NAMES / sizeof METHOD_NAMES[0]; i++)
        if (strcmp(s, METHOD_NAMES[i]) == 0)
            return 1 << i;
    return 0;
}

void router_allow_str(int mask, char *buf, size_t sz)
{
    size_t o = 0;

    if (mask & ROUTER_GET)
        mask |= ROUTER_HEAD;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof METHOD_NAMES / sizeof METHOD_NAMES[0]; i++)
        if ((mask & (1 << i)) && o < sz)
            o += (size_t)snprintf(buf + o, sz - o, "%s%s", o ? ", " : "", METHOD_NAMES[i]);
}

int router_init(struct router *r, const struct route *routes, size_t n, char errstr[128])
{
    r->routes = routes;
    r->n = n;
    r->c = calloc(n ? n : 1, sizeof *r->c);
    if (r->c == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *p = routes[i].pattern;
        size_t nseg = 0;

        if (p[0] != '/') {
            snprintf(errstr, 128, "route %s: must start with /", p);
            goto bad;
        }
        while (*p == '/' && p[1] != '\0') {
            const char *s = p + 1, *e = strchr(s, '/');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (len == 0 || nseg == ROUTER_MAX_SEGS) {
                snprintf(errstr, 128, "route %s: empty segment or too many segments",
                         routes[i].pattern);
                goto bad;
            }
            /* Segments point into a private copy so they are NUL-terminated. */
            char *copy = strndup(s, len);
            if (copy == NULL)
                goto nomem;
            if (copy[0] == '{') {
                if (copy[len - 1] != '}' || len < 3) {
                    free(copy);
                    snprintf(errstr, 128, "route %s: bad parameter", routes[i].pattern);
                    goto bad;
                }
                copy[len - 1] = '\0';
                memmove(copy, copy + 1, len - 1);
                r->c[i].param[nseg] = copy;
                r->c[i].seg[nseg] = NULL;
            } else {
                r->c[i].seg[nseg] = copy;
                r->c[i].score |= 1u << (ROUTER_MAX_SEGS - 1 - nseg);
            }
            nseg++;
            p = s + len;
        }
        if (*p != '\0' && p != routes[i].pattern) {
            snprintf(errstr, 128, "route %s: trailing slash", routes[i].pattern);
            goto bad;
        }
        r->c[i].nseg = nseg;
    }
    return 0;
nomem:
    snprintf(errstr, 128, "out of memory");
bad:
    router_cleanup(r);
    return ERR_INVAL;
}

void router_cleanup(struct router *r)
{
    if (r->c == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        for (size_t j = 0; j < ROUTER_MAX_SEGS; j++) {
            free((char *)r->c[i].seg[j]);
            free((char *)r->c[i].param[j]);
        }
    free(r->c);
    r->c = NULL;
}

static int matches(const struct router *r, size_t i, const char *const *segs, size_t nseg)
{
    if (r->c[i].nseg != nseg)
        return 0;
    for (size_t j = 0; j < nseg; j++)
        if (r->c[i].seg[j] != NULL && strcmp(r->c[i].seg[j], segs[j]) != 0)
            return 0;
    return 1;
}

int router_match(const struct router *r, int method, const char *const *segs, size_t nseg,
                 struct router_match *m)
{
    long best = -1;
    int allow = 0;
    const struct route *hit = NULL;
    size_t hit_i = 0;
    int want = method == ROUTER_HEAD ? ROUTER_GET : method;

    memset(m, 0, sizeof *m);
    /* The most literal pattern that matches owns the path. */
    for (size_t i = 0; i < r->n; i++)
        if (matches(r, i, segs, nseg) && (long)r->c[i].score > best)
            best = r->c[i].score;
    if (best < 0)
        return ERR_NOTFOUND;
    for (size_t i = 0; i < r->n; i++) {
        if ((long)r->c[i].score != best || !matches(r, i, segs, nseg))
            continue;
        allow |= r->routes[i].method;
        if (r->routes[i].method == want && hit == NULL) {
            hit = &r->routes[i];
            hit_i = i;
        }
    }
    if (hit == NULL) {
        m->allow = allow;
        return ERR_INVAL;
    }
    m->route = hit;
    for (size_t j = 0; j < nseg && m->nparams < ROUTER_MAX_PARAMS; j++)
        if (r->c[hit_i].seg[j] == NULL) {
            m->name[m->nparams] = r->c[hit_i].param[j];
            m->value[m->nparams] = segs[j];
            m->nparams++;
        }
    return 0;
}

const char *router_param(const struct router_match *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->name[i], name) == 0)
            return m->value[i];
    return NULL;
}
