#include "http/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"

void http_request_init(struct http_request *r, FCGX_Request *fcgx, struct arena *a)
{
    memset(r, 0, sizeof *r);
    r->fcgx = fcgx;
    r->arena = a;
}

const char *http_param(const struct http_request *r, const char *name)
{
    return FCGX_GetParam(name, r->fcgx->envp);
}

void http_request_id(struct http_request *r, struct reqid_gen *g)
{
    const char *rid = http_param(r, "HTTP_X_REQUEST_ID");

    if (reqid_valid(rid))
        snprintf(r->request_id, sizeof r->request_id, "%s", rid);
    else
        reqid_next(g, r->request_id);
}

int http_request_parse(struct http_request *r, const char **why)
{
    const char *uri = http_param(r, "REQUEST_URI"), *q;
    size_t plen, slen;
    int rc;

    *why = NULL;
    r->method_str = http_param(r, "REQUEST_METHOD");
    if (r->method_str == NULL)
        r->method_str = "";
    r->method = router_method_parse(r->method_str);
    if (uri == NULL)
        uri = http_param(r, "DOCUMENT_URI");
    if (uri == NULL) {
        *why = "no request URI";
        return ERR_INVAL;
    }
    q = strchr(uri, '?');
    plen = q != NULL ? (size_t)(q - uri) : strlen(uri);
    if ((r->path = arena_strndup(r->arena, uri, plen)) == NULL)
        return ERR_NOMEM;

    /* one trailing slash is tolerated ("/v1/auth/me/" is /v1/auth/me), as
     * people and tools write it; an empty segment inside stays malformed */
    slen = plen > 1 && uri[plen - 1] == '/' && uri[plen - 2] != '/' ? plen - 1 : plen;
    rc = query_split_path(r->arena, uri, slen, r->segs, ROUTER_MAX_SEGS, &r->nseg);
    if (rc == ERR_TOOBIG) {
        *why = "no such endpoint";
        return ERR_NOTFOUND;
    }
    if (rc != 0) {
        *why = "malformed path";
        return rc == ERR_NOMEM ? rc : ERR_INVAL;
    }
    rc = query_parse(r->arena, http_param(r, "QUERY_STRING"), &r->query);
    if (rc == ERR_TOOBIG)
        *why = "too many query parameters";
    else if (rc != 0 && rc != ERR_NOMEM)
        *why = "malformed query string: a % that does not start an escape like %2C; "
               "a literal % is written %25 (like.C-1% as like.C-1%25)";
    return rc == 0 || rc == ERR_NOMEM ? rc : ERR_INVAL;
}

int http_read_body(struct http_request *r, size_t max)
{
    const char *cl = http_param(r, "CONTENT_LENGTH");
    unsigned long long want = 0;

    if (cl != NULL && cl[0] != '\0') {
        char *end;
        if (!isdigit((unsigned char)cl[0]))
            return ERR_INVAL;
        errno = 0;
        want = strtoull(cl, &end, 10);
        if (errno != 0 || *end != '\0')
            return ERR_INVAL;
    }
    if (want > max)
        return ERR_TOOBIG;
    if (want == 0)
        return 0;
    char *body = arena_alloc(r->arena, (size_t)want + 1);
    if (body == NULL)
        return ERR_NOMEM;
    int got = FCGX_GetStr(body, (int)want, r->fcgx->in);
    if (got < 0 || (unsigned long long)got != want)
        return ERR_IO;
    body[want] = '\0';
    r->body = body;
    r->body_len = (size_t)want;
    return 0;
}

bool http_is_json(const struct http_request *r)
{
    const char *ct = http_param(r, "CONTENT_TYPE");
    static const char mime[] = "application/json";

    if (ct == NULL || strncasecmp(ct, mime, sizeof mime - 1) != 0)
        return false;
    const char *p = ct + sizeof mime - 1;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return true;
    if (*p++ != ';')
        return false;
    while (*p == ' ')
        p++;
    return strcasecmp(p, "charset=utf-8") == 0 || strcasecmp(p, "charset=\"utf-8\"") == 0;
}

int http_add_header(struct http_request *r, const char *name, const char *value)
{
    if (r->nheaders == HTTP_MAX_HEADERS)
        return ERR_TOOBIG;
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = value;
    r->nheaders++;
    return 0;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    }
    return "Unknown";
}

/* Header values come from handlers; a CR or LF would split the response. */
static bool header_safe(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

int http_send(struct http_request *r, int status, const char *content_type, const char *body,
              size_t len)
{
    char head[2048];
    int n;

    if (r->status != 0)
        return ERR_INTERNAL; /* a handler answered twice: a bug, not bad input */
    n = snprintf(head, sizeof head, "Status: %d %s\r\nX-Request-Id: %s\r\n", status,
                 http_reason(status), r->request_id);
    if (status != 204 && status != 304)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                      content_type, len);
    if (r->mode != NULL)
        n += snprintf(head + n, sizeof head - (size_t)n, "Tessera-Mode: %s\r\n", r->mode);
    for (size_t i = 0; i < r->nheaders && (size_t)n < sizeof head; i++)
        if (header_safe(r->headers[i].name) && header_safe(r->headers[i].value))
            n += snprintf(head + n, sizeof head - (size_t)n, "%s: %s\r\n", r->headers[i].name,
                          r->headers[i].value);
    if ((size_t)n + 2 >= sizeof head)
        return ERR_TOOBIG;
    head[n++] = '\r';
    head[n++] = '\n';
    r->status = status;
    if (FCGX_PutStr(head, n, r->fcgx->out) != n)
        return ERR_IO;
    if (r->method != ROUTER_HEAD && len > 0 && status != 204 && status != 304) {
        if (FCGX_PutStr(body, (int)len, r->fcgx->out) != (int)len)
            return ERR_IO;
        r->sent_bytes = len;
    }
    return 0;
}

int http_send_json(struct http_request *r, int status, const cJSON *json)
{
    char *text = json_print(json);
    int rc;

    if (text == NULL)
        return ERR_NOMEM;
    rc = http_send(r, status, "application/json; charset=utf-8", text, strlen(text));
    cJSON_free(text);
    return rc;
}

int http_send_error(struct http_request *r, int status, const char *code, const char *message,
                    const cJSON *details)
{
    cJSON *root = cJSON_CreateObject(), *err = NULL;
    int rc = ERR_NOMEM;

    if (root == NULL || (err = cJSON_AddObjectToObject(root, "error")) == NULL)
        goto out;
    if (cJSON_AddStringToObject(err, "code", code) == NULL ||
        cJSON_AddStringToObject(err, "message", message) == NULL ||
        cJSON_AddStringToObject(err, "request_id", r->request_id) == NULL)
        goto out;
    if (details != NULL) {
        cJSON *copy = cJSON_Duplicate(details, 1);
        if (copy == NULL || !cJSON_AddItemToObject(err, "details", copy)) {
            cJSON_Delete(copy);
            goto out;
        }
    }
    rc = http_send_json(r, status, root);
out:
    cJSON_Delete(root);
    return rc;
}

static void json_delete(void *p)
{
    cJSON_Delete(p);
}

cJSON *http_own(struct http_request *r, cJSON *json)
{
    if (json != NULL && arena_defer(r->arena, json_delete, json) != 0) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}
