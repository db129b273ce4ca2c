#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *err_str(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_INVAL: return "invalid";
    case ERR_NOTFOUND: return "not_found";
    case ERR_CONFLICT: return "conflict";
    case ERR_UNAVAILABLE: return "unavailable";
    case ERR_NOMEM: return "out_of_memory";
    case ERR_TOOBIG: return "too_big";
    case ERR_FORBIDDEN: return "forbidden";
    case ERR_UNAUTHORIZED: return "unauthorized";
    case ERR_PRECONDITION: return "precondition_failed";
    case ERR_NOSPACE: return "no_space";
    case ERR_IO: return "io_error";
    case ERR_EXPIRED: return "expired";
    case ERR_REVOKED: return "revoked";
    case ERR_INTERNAL: return "internal";
    case ERR_TOOMANY: return "too_many_requests";
    case ERR_BADJSON: return "bad_json";
    case ERR_CREDENTIALS: return "bad_credentials";
    case ERR_METHOD: return "method_not_allowed";
    case ERR_MEDIATYPE: return "unsupported_media_type";
    case ERR_GONE: return "gone";
    case ERR_UNVERIFIED: return "unverified";
    }
    return "unknown";
}

void err_set(char *errstr, const char *fmt, ...)
{
    va_list ap;

    if (errstr == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, 128, fmt, ap);
    va_end(ap);
}
