/* http: the request object a handler holds, over one fcgi2 request (kore's
 * model: handlers receive a request and reply through it).
 * Reading: CGI params, headers, the body up to a cap. Writing: status, headers,
 * a body, and the error envelope of DESIGN §5. Everything a request allocates
 * comes from its arena. Knows nothing of routes, auth or storage. */
#ifndef LIB_HTTP_H
#define LIB_HTTP_H

#include <cJSON.h>
#include <fcgiapp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"
#include "http/query.h"
#include "http/reqid.h"
#include "http/router.h"

#define HTTP_MAX_HEADERS 12

struct http_request {
    FCGX_Request *fcgx;
    struct arena *arena;            /* everything below is borrowed from it */

    int method;                     /* enum router_method; 0 when unknown */
    const char *method_str;
    const char *path;               /* raw, without the query string */
    const char *segs[ROUTER_MAX_SEGS];
    size_t nseg;
    struct query query;
    char request_id[REQID_MAX + 1];
    struct router_match match;

    const char *body;               /* NUL-terminated copy; NULL when none */
    size_t body_len;
    cJSON *json;                    /* parsed body (arena-owned); NULL when none */

    /* response */
    int reply_status;               /* a reply held back until the work commits; 0: none */
    cJSON *reply;                   /* its body (arena-owned) */
    int status;                     /* 0 until sent */
    size_t sent_bytes;
    const char *mode;               /* Tessera-Mode to answer with; NULL: none */
    struct {
        const char *name;
        const char *value;
    } headers[HTTP_MAX_HEADERS];
    size_t nheaders;
};

/* Prepares r for one request accepted on fcgx; nothing is read yet. */
void http_request_init(struct http_request *r, FCGX_Request *fcgx, struct arena *a);

/* Sets r->request_id: the client's X-Request-Id when reqid_valid holds for
 * it (it lands in logs and headers), else the next id of g. */
void http_request_id(struct http_request *r, struct reqid_gen *g);

/* Fills r's method, path, decoded segments and query from its CGI params
 * (REQUEST_METHOD; REQUEST_URI, else DOCUMENT_URI; QUERY_STRING): everything a
 * request is routed by, before any body is read. 0; ERR_INVAL with *why (a
 * constant sentence for the client) when they are malformed; ERR_NOTFOUND
 * when the path has more segments than any route can have; ERR_NOMEM. */
int http_request_parse(struct http_request *r, const char **why) ERR_MUST_CHECK;

/* Borrowed: a CGI parameter ("HTTP_AUTHORIZATION", "CONTENT_TYPE") or NULL. */
const char *http_param(const struct http_request *r, const char *name);

/* Reads the body into the arena. ERR_TOOBIG when CONTENT_LENGTH (or the bytes
 * actually sent) exceed max; ERR_INVAL for a malformed CONTENT_LENGTH; ERR_IO
 * when the stream ends early. */
int http_read_body(struct http_request *r, size_t max) ERR_MUST_CHECK;

/* True when CONTENT_TYPE is application/json, parameters allowed only as
 * `charset=utf-8` (any case). */
bool http_is_json(const struct http_request *r);

/* Adds a response header; both strings must live until the response is sent
 * (arena or static). ERR_TOOBIG past HTTP_MAX_HEADERS. */
int http_add_header(struct http_request *r, const char *name, const char *value) ERR_MUST_CHECK;

/* Sends status, headers (Content-Type, Content-Length, X-Request-Id,
 * Tessera-Mode, the added ones) and body; a HEAD request gets no body. */
int http_send(struct http_request *r, int status, const char *content_type, const char *body,
              size_t len) ERR_MUST_CHECK;

/* Serializes json (borrowed) and sends it as application/json. */
int http_send_json(struct http_request *r, int status, const cJSON *json) ERR_MUST_CHECK;

/* Sends {"error":{"code","message","request_id"[,"details"]}}; details borrowed, may be NULL. */
int http_send_error(struct http_request *r, int status, const char *code, const char *message,
                    const cJSON *details) ERR_MUST_CHECK;

/* "Not Found" for 404 and so on. */
const char *http_reason(int status);

/* Hands a cJSON tree to the request's arena: deleted when the request ends. */
cJSON *http_own(struct http_request *r, cJSON *json);

#endif
