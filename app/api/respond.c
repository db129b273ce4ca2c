/* The one mapping from err.h codes to HTTP statuses and DESIGN §5 error
 * codes: handlers answer with a code and a message (respond_error), or 422
 * with details (respond_invalid), and never spell a status. */
#include "app.h"

int respond_status(int err, const char **code)
{
    switch (err) {
    case ERR_INVAL: *code = "invalid_request"; return 400;
    case ERR_BADJSON: *code = "invalid_json"; return 400;
    case ERR_UNAUTHORIZED: *code = "unauthorized"; return 401;
    case ERR_CREDENTIALS: *code = "invalid_credentials"; return 401;
    case ERR_EXPIRED: *code = "token_expired"; return 401;
    case ERR_REVOKED: *code = "token_revoked"; return 401;
    case ERR_FORBIDDEN: *code = "forbidden"; return 403;
    case ERR_NOTFOUND: *code = "not_found"; return 404;
    case ERR_METHOD: *code = "method_not_allowed"; return 405;
    case ERR_CONFLICT: *code = "conflict"; return 409;
    case ERR_PRECONDITION: *code = "precondition_failed"; return 412;
    case ERR_TOOBIG: *code = "payload_too_large"; return 413;
    case ERR_MEDIATYPE: *code = "unsupported_media_type"; return 415;
    case ERR_GONE: *code = "gone"; return 410;
    case ERR_UNVERIFIED: *code = "email_unverified"; return 403;
    case ERR_TOOMANY: *code = "too_many_requests"; return 429;
    case ERR_UNAVAILABLE: *code = "unavailable"; return 503;
    case ERR_NOSPACE: *code = "insufficient_storage"; return 507;
    default: *code = "internal"; return 500;
    }
}

const char *respond_message(int err)
{
    switch (err) {
    case ERR_INVAL: return "the request is not valid";
    case ERR_BADJSON: return "the body is not valid JSON";
    case ERR_UNAUTHORIZED: return "authentication is required";
    case ERR_CREDENTIALS: return "wrong email or password";
    case ERR_EXPIRED: return "the token has expired";
    case ERR_REVOKED: return "the token has been revoked";
    case ERR_FORBIDDEN: return "your role does not allow this";
    case ERR_NOTFOUND: return "there is no such object";
    case ERR_METHOD: return "this endpoint does not take that method";
    case ERR_CONFLICT: return "the request conflicts with the current state; try again";
    case ERR_PRECONDITION: return "the object changed since you read it";
    case ERR_TOOBIG: return "the request is larger than this server accepts";
    case ERR_MEDIATYPE: return "the body must be application/json";
    case ERR_GONE: return "what was asked for is no longer kept";
    case ERR_UNVERIFIED: return "the account's email address is not verified yet";
    case ERR_TOOMANY: return "too many requests; try again later";
    case ERR_UNAVAILABLE: return "a service this server depends on is unavailable; try again shortly";
    case ERR_NOSPACE: return "the store is full";
    default: return "internal error";
    }
}

int respond_error(struct http_request *r, int err, const char *message)
{
    const char *code;
    int status = respond_status(err, &code);

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
