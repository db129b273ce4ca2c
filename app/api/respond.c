/* The one mapping from err.h codes to HTTP statuses and DESIGN §5 error codes. */
#include "app.h"

int respond_status(int err, const char **code)
{
    switch (err) {
    case ERR_INVAL: *code = "invalid_request"; return 400;
    case ERR_UNAUTHORIZED: *code = "unauthorized"; return 401;
    case ERR_EXPIRED: *code = "token_expired"; return 401;
    case ERR_REVOKED: *code = "token_revoked"; return 401;
    case ERR_FORBIDDEN: *code = "forbidden"; return 403;
    case ERR_NOTFOUND: *code = "not_found"; return 404;
    case ERR_CONFLICT: *code = "conflict"; return 409;
    case ERR_PRECONDITION: *code = "precondition_failed"; return 412;
    case ERR_TOOBIG: *code = "payload_too_large"; return 413;
    case ERR_TOOMANY: *code = "too_many_requests"; return 429;
    case ERR_UNAVAILABLE: *code = "unavailable"; return 503;
    case ERR_NOSPACE: *code = "insufficient_storage"; return 507;
    default: *code = "internal"; return 500;
    }
}

int respond_error(struct http_request *r, int err, const char *message)
{
    const char *code;
    int status = respond_status(err, &code);

    return http_send_error(r, status, code, message, NULL);
}

int respond_fail(struct http_request *r, int status, const char *code, const char *message)
{
    return http_send_error(r, status, code, message, NULL);
}

int respond_json(struct http_request *r, int status, cJSON *json)
{
    if (http_own(r, json) == NULL)
        return ERR_NOMEM;
    r->reply_status = status;
    r->reply = json;
    return 0;
}

int respond_owned(struct http_request *r, int status, cJSON *json)
{
    r->reply_status = status;
    r->reply = json;
    return 0;
}

int respond_invalid(struct http_request *r, cJSON *details)
{
    int rc;

    if (http_own(r, details) == NULL)
        return ERR_NOMEM;
    rc = http_send_error(r, 422, "validation_failed", "the request has invalid fields", details);
    return rc;
}

cJSON *respond_list(struct http_request *r, cJSON **data)
{
    cJSON *root = http_own(r, cJSON_CreateObject());

    if (root == NULL || (*data = cJSON_AddArrayToObject(root, "data")) == NULL)
        return NULL;
    return root;
}
