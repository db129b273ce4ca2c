/* cors: which browser origins may call the API (Fetch standard's CORS
 * protocol), from [http] cors_origins: origins separated by spaces or commas,
 * each "scheme://host" or "scheme://host:port", where the port may be "*"
 * (any port: "http://localhost:*" for a dev server), or "*" alone (any
 * origin). The API takes credentials only in the Authorization header, never
 * cookies, so no response ever says Allow-Credentials and "*" stays safe.
 * Hand-written because it is a string match over a short list; the worker
 * adds the headers (app/fleet/worker.c). */
#ifndef LIB_CORS_H
#define LIB_CORS_H

#include <stdbool.h>
#include <stddef.h>

/* The request headers a preflight may ask for, and the response headers a
 * page may read. */
#define CORS_ALLOW_HEADERS "Authorization, Content-Type, If-Match, Tessera-Mode"
#define CORS_EXPOSE_HEADERS "X-Request-Id, Tessera-Mode, ETag, Location, Retry-After"
#define CORS_MAX_AGE "600"

/* Whether list (as above) lets origin (the request's Origin header, NULL
 * when absent) call the API. Scheme and host compare case-insensitively
 * (they are case-insensitive in URLs); an origin with a path, a userinfo or
 * a malformed port never matches. */
bool cors_allows(const char *list, const char *origin);

/* 0 when every entry of list has one of the forms above; otherwise -1 with
 * the first bad entry described in why. */
int cors_list_check(const char *list, char *why, size_t whysz);

#endif
