/* err: the one error vocabulary of tessera.
 * Every fallible function returns 0 (ERR_OK) or one of these negative codes;
 * detail goes into the handle's errstr or the log, never into a response.
 * Mapping to HTTP statuses happens in exactly one place (app/api/respond.c). */
#ifndef LIB_ERR_H
#define LIB_ERR_H

enum err_code {
    ERR_OK = 0,
    ERR_INVAL = -1,        /* bad input: malformed, wrong type, out of range */
    ERR_NOTFOUND = -2,     /* no such object (or another tenant's) */
    ERR_CONFLICT = -3,     /* unique key taken, state does not allow it */
    ERR_UNAVAILABLE = -4,  /* a dependency is down: database, Redis */
    ERR_NOMEM = -5,        /* allocation failed */
    ERR_TOOBIG = -6,       /* input over a cap */
    ERR_FORBIDDEN = -7,    /* authenticated but not allowed */
    ERR_UNAUTHORIZED = -8, /* no or bad credentials */
    ERR_PRECONDITION = -9, /* If-Match and friends */
    ERR_NOSPACE = -10,     /* a fixed-size store is full */
    ERR_IO = -11,          /* system call failed */
    ERR_EXPIRED = -12,     /* token or record past its time */
    ERR_REVOKED = -13,     /* token blacklisted or family revoked */
    ERR_INTERNAL = -14,    /* a bug or an impossible state */
    ERR_TOOMANY = -15,     /* an attempt or rate limit reached: try again later */
    ERR_BADJSON = -16,     /* a body that is not the strict JSON accepted (lib/core/json) */
    ERR_CREDENTIALS = -17, /* a login's email and password do not match */
    ERR_METHOD = -18,      /* the path exists, not with this method */
    ERR_MEDIATYPE = -19,   /* a body that is not application/json */
    ERR_GONE = -20,        /* what was asked for existed and is no longer kept (an old feed cursor) */
    ERR_UNVERIFIED = -21,  /* an account whose email is not verified yet, where it must be */
};

#define ERR_MUST_CHECK __attribute__((warn_unused_result))

/* A short constant name for a code ("not_found"); never NULL. */
const char *err_str(int code);

/* printf into a caller's errstr[128]; a NULL errstr is allowed and ignored. */
void err_set(char *errstr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
