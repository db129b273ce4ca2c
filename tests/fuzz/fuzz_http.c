/* libFuzzer harness for the way a FastCGI request becomes the request object
 * a handler holds (lib/http/http.c, query.c, router.c, reqid.c): the input is
 * the record stream nginx writes on the socket (8-byte headers; FCGI_PARAMS
 * content is name-value pairs, FCGI_STDIN the body), decoded here as
 * libfcgi decodes it into an environment and an input stream in memory: no
 * socket, no libfcgi accept. The worker's path is then taken as it is taken
 * for every request: http_request_id, http_request_parse, router_match on a
 * route table shaped like app/api/routes.c's, http_read_body under a cap,
 * http_is_json and json_parse of the body, and an answer written with
 * http_send_error into an output stream in memory. Besides memory errors it
 * checks what the request object promises (segments non-empty and decoded,
 * the path a prefix of the URI, caps held, the request id sane) and that
 * the answer's head is well formed whatever the client sent: no CR or LF
 * from a client splits a header. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/json.h"
#include "http/http.h"

#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define MAX_PAIRS 256
#define BODY_MAX 4096
#define OUT_CAP (256 * 1024)

static const struct route routes[] = {
    { ROUTER_GET, "/healthz", NULL },
    { ROUTER_GET, "/openapi.json", NULL },
    { ROUTER_POST, "/v1/auth/login", NULL },
    { ROUTER_GET, "/v1/auth/me", NULL },
    { ROUTER_DELETE, "/v1/auth/me", NULL },
    { ROUTER_DELETE, "/v1/auth/sessions/{id}", NULL },
    { ROUTER_DELETE, "/v1/orgs/current/members/{user_id}/sessions", NULL },
    { ROUTER_GET, "/v1/roles/{name}", NULL },
    { ROUTER_PATCH, "/v1/roles/{name}", NULL },
    { ROUTER_GET, "/v1/svc/{service}/schema", NULL },
    { ROUTER_PUT, "/v1/svc/{service}/schema/{resource}", NULL },
    { ROUTER_GET, "/v1/svc/{service}/{resource}", NULL },
    { ROUTER_POST, "/v1/svc/{service}/{resource}", NULL },
    { ROUTER_GET, "/v1/svc/{service}/{resource}/changes", NULL },
    { ROUTER_POST, "/v1/svc/{service}/{resource}/search", NULL },
    { ROUTER_GET, "/v1/svc/{service}/{resource}/views/{view}", NULL },
    { ROUTER_GET, "/v1/svc/{service}/{resource}/{id}", NULL },
    { ROUTER_PATCH, "/v1/svc/{service}/{resource}/{id}", NULL },
    { ROUTER_DELETE, "/v1/svc/{service}/{resource}/{id}", NULL },
};

static struct router router;
static struct reqid_gen ids = { .prefix = "fuzzfuzzfuzzfuzz" };
static struct arena *arena;

static void check(int ok)
{
    if (!ok)
        abort();
}

/* In-memory streams: the reader ends when its bytes do, the writer never fills. */
static void fill_none(FCGX_Stream *s)
{
    s->isClosed = 1;
}

static void empty_never(FCGX_Stream *s, int do_close)
{
    (void)s;
    (void)do_close;
    abort(); /* OUT_CAP is far above any answer made here */
}

/* A FastCGI name or value length: one byte, or four with the top bit set. */
static int pair_len(const uint8_t **p, const uint8_t *end, size_t *len)
{
    if (*p >= end)
        return -1;
    if (!(**p & 0x80)) {
        *len = *(*p)++;
        return 0;
    }
    if (end - *p < 4)
        return -1;
    *len = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) | ((size_t)(*p)[2] << 8) | (*p)[3];
    *p += 4;
    return 0;
}

/* FCGI_PARAMS content into "NAME=value" strings, as libfcgi's ReadParams
 * builds the environment; a pair cut short ends the list. */
static size_t decode_params(const uint8_t *p, const uint8_t *end, char **envp)
{
    size_t n = 0, nl, vl;

    while (n < MAX_PAIRS && pair_len(&p, end, &nl) == 0 && pair_len(&p, end, &vl) == 0 &&
           nl <= (size_t)(end - p) && vl <= (size_t)(end - p) - nl) {
        char *e = malloc(nl + vl + 2);

        check(e != NULL);
        memcpy(e, p, nl);
        e[nl] = '=';
        memcpy(e + nl + 1, p + nl, vl);
        e[nl + 1 + vl] = '\0';
        envp[n++] = e;
        p += nl + vl;
    }
    envp[n] = NULL;
    return n;
}

/* The answer's head: "Status: NNN reason", then "Name: value" lines, each
 * ending in CRLF with no other CR or LF, then an empty line. */
static void check_head(const char *out, size_t len)
{
    const char *p = out, *end = out + len, *eol;

    check(len > 8 && strncmp(out, "Status: ", 8) == 0);
    for (;;) {
        eol = memchr(p, '\r', (size_t)(end - p));
        check(eol != NULL && eol + 1 < end && eol[1] == '\n');
        check(memchr(p, '\n', (size_t)(eol - p)) == NULL);
        if (eol == p)
            break; /* the empty line */
        check(p == out || memchr(p, ':', (size_t)(eol - p)) != NULL);
        p = eol + 2;
    }
}

static void serve(char **envp, uint8_t *body, size_t body_len)
{
    static unsigned char out[OUT_CAP];
    FCGX_Stream in = { .rdNext = body, .stop = body + body_len, .stopUnget = body, .isReader = 1,
                       .fillBuffProc = fill_none };
    FCGX_Stream os = { .wrNext = out, .stop = out + sizeof out, .emptyBuffProc = empty_never };
    FCGX_Request fcgx = { .in = &in, .out = &os, .envp = envp };
    struct http_request r;
    struct router_match m;
    const char *why = NULL, *uri;
    int rc, status = 200;

    http_request_init(&r, &fcgx, arena);
    http_request_id(&r, &ids);
    check(reqid_valid(r.request_id));
    rc = http_request_parse(&r, &why);
    check(rc == 0 || rc == ERR_INVAL || rc == ERR_NOTFOUND);
    check((rc == 0) == (why == NULL));
    check(r.method == router_method_parse(r.method_str));
    if (rc != 0) {
        status = rc == ERR_NOTFOUND ? 404 : 400;
        goto answer;
    }
    uri = http_param(&r, "REQUEST_URI") ? http_param(&r, "REQUEST_URI") : http_param(&r, "DOCUMENT_URI");
    check(uri != NULL && strncmp(uri, r.path, strlen(r.path)) == 0);
    check(uri[strlen(r.path)] == '\0' || uri[strlen(r.path)] == '?');
    check(r.nseg <= ROUTER_MAX_SEGS && r.query.n <= QUERY_MAX_PARAMS);
    for (size_t i = 0; i < r.nseg; i++)
        check(r.segs[i][0] != '\0');
    for (size_t i = 0; i < r.query.n; i++)
        check(r.query.p[i].key != NULL && r.query.p[i].value != NULL &&
              query_get(&r.query, r.query.p[i].key) != NULL);

    rc = router_match(&router, r.method, r.segs, r.nseg, &m);
    if (rc == ERR_NOTFOUND) {
        status = 404;
        goto answer;
    }
    if (rc != 0) {
        char allow[96];
        router_allow_str(m.allow, allow, sizeof allow);
        check(m.allow != 0 && allow[0] != '\0');
        status = 405;
        goto answer;
    }
    check(m.route != NULL && m.nparams <= ROUTER_MAX_PARAMS);
    for (size_t i = 0; i < m.nparams; i++)
        check(router_param(&m, m.name[i]) != NULL);

    rc = http_read_body(&r, BODY_MAX);
    check(rc == 0 || rc == ERR_INVAL || rc == ERR_TOOBIG || rc == ERR_IO);
    if (rc != 0) {
        status = rc == ERR_TOOBIG ? 413 : 400;
        goto answer;
    }
    check(r.body_len <= BODY_MAX && (r.body == NULL) == (r.body_len == 0));
    if (r.body_len > 0) {
        static const struct json_limits lim = { .max_depth = 32, .max_nodes = 10000 };
        enum json_error jwhy;

        check(r.body[r.body_len] == '\0');
        if (!http_is_json(&r)) {
            status = 415;
            goto answer;
        }
        r.json = http_own(&r, json_parse(r.body, r.body_len, &lim, &jwhy));
        status = r.json != NULL ? 200 : 400;
    }
answer:
    /* a handler's header with a client's bytes in it (the CORS origin is one) */
    if (http_param(&r, "HTTP_ORIGIN") != NULL)
        check(http_add_header(&r, "Access-Control-Allow-Origin", http_param(&r, "HTTP_ORIGIN")) == 0);
    check(http_send_error(&r, status, "fuzz", why != NULL ? why : "answered", NULL) == 0);
    check(r.status == status);
    check_head((const char *)out, (size_t)(os.wrNext - out));
    arena_reset(arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *envp[MAX_PAIRS + 1];
    uint8_t *params = malloc(size + 1), *body = malloc(size + 1);
    size_t plen = 0, blen = 0, n;
    const uint8_t *p = data, *end = data + size;

    check(params != NULL && body != NULL);
    if (arena == NULL) {
        char err[128];
        check((arena = arena_new(16 * 1024)) != NULL);
        check(router_init(&router, routes, sizeof routes / sizeof *routes, err) == 0);
    }
    /* the records: version 1 | type | request id (2) | content length (2) | padding | reserved */
    while (end - p >= 8 && p[0] == 1) {
        size_t clen = (size_t)p[4] << 8 | p[5], pad = p[6];
        const uint8_t *c = p + 8;

        if ((size_t)(end - c) < clen)
            break;
        if (p[1] == FCGI_PARAMS)
            memcpy(params + plen, c, clen), plen += clen;
        else if (p[1] == FCGI_STDIN)
            memcpy(body + blen, c, clen), blen += clen;
        p = c + clen + ((size_t)(end - c - clen) < pad ? (size_t)(end - c - clen) : pad);
    }
    n = decode_params(params, params + plen, envp);
    serve(envp, body, blen);
    for (size_t i = 0; i < n; i++)
        free(envp[i]);
    free(params);
    free(body);
    return 0;
}
