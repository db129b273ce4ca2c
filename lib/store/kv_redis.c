/* kv_redis: the kv interface on Redis through hiredis (blocking API).
 *
 * Connection rules (DESIGN §10):
 *   - connect timeout and command timeout are always set (both timeout_ms);
 *   - the connection is made lazily, by the first command that needs it;
 *   - after any I/O error, EOF, protocol error or timeout the redisContext is
 *     freed at once and a new one made by the next command. A context that
 *     timed out still has the request in flight: its late reply would be read
 *     as the answer to the next command (a blacklist check answered by a cache
 *     GET, say). The same goes for a pipeline broken half-way;
 *   - after a failed connect, commands fail at once with ERR_UNAVAILABLE for
 *     KV_REDIS_RETRY_MS, so a worker does not pay a connect timeout per request
 *     while Redis is away; the first command after that tries again;
 *   - a connection that had worked and is found closed (EOF or reset: Redis
 *     restarted, or its `timeout` reaped us while idle) is retried once on a
 *     fresh connection, for commands that are safe to repeat only (never INCR
 *     or SET NX), so a restart does not fail the first request after it.
 *
 * Commands go out through redisAppendCommandArgv: every argument, key and value
 * alike, is a (pointer, length) pair — hiredis's binary-safe form, the same
 * guarantee as "%b" in redisCommand, with no format string at all to get wrong
 * — so user data is never formatted into a command and NUL bytes pass through.
 * The argv form also lets one helper send a pipeline (exists_get) and repeat it. */
#include "store/kv.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis.h>

#include "core/text.h"

#define ARGV_MAX 6

struct kv_redis {
    redisContext *c;            /* NULL while disconnected */
    bool unix_socket;
    char host[256];             /* or the socket path */
    int port;
    char where[272];            /* "host:port" or the path, for errstr */
    int db;
    char *user, *pass;          /* NULL when not given */
    struct timeval tv;
    int64_t retry_at;           /* CLOCK_MONOTONIC ms before which we do not connect */
    bool used;                  /* the current connection has answered a command */
};

struct cmd {
    int argc;
    const char *argv[ARGV_MAX];
    size_t len[ARGV_MAX];
};

/* Releases the lock taken by kv_setnx only if we still own it (KEYS[1] holds
 * ARGV[1]): GET and DEL in one atomic step. */
static const char DEL_EQ_SCRIPT[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end";

/* kv_incr_window: INCR, and a PEXPIRE only when the key has no TTL yet (just
 * made, or set without one), in one atomic step; answers {count, pttl}. */
static const char INCR_WINDOW_SCRIPT[] =
    "local n = redis.call('incr', KEYS[1]) local t = redis.call('pttl', KEYS[1]) "
    "if t < 0 then redis.call('pexpire', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end "
    "return {n, t}";

static int fail(struct kv *kv, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct kv *kv, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(kv->errstr, sizeof kv->errstr, fmt, ap);
    va_end(ap);
    return kv->err = rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *where(const struct kv_redis *kr)
{
    return kr->where;
}

static void drop(struct kv_redis *kr)
{
    redisFree(kr->c);
    kr->c = NULL;
    kr->used = false;
}

static void arg(struct cmd *c, const void *p, size_t len)
{
    c->argv[c->argc] = p;
    c->len[c->argc++] = len;
}

static void arg_str(struct cmd *c, const char *s)
{
    arg(c, s, strlen(s));
}

/* ---- url --------------------------------------------------------------- */

/* Returns owned: s[0..n) with %XX decoded; NULL if malformed or out of memory. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n) {
            free(out);
            return NULL;
        }
        int hi = text_hex_digit((unsigned char)s[i + 1]), lo = text_hex_digit((unsigned char)s[i + 2]);

        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi << 4 | lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

/* A decimal in [lo, hi] spanning exactly s[0..n). */
static bool parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
    long v = 0;

    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static int parse_unix(struct kv_redis *kr, const char *rest, char errstr[128])
{
    const char *q = strchr(rest, '?');
    size_t n = q != NULL ? (size_t)(q - rest) : strlen(rest);

    if (n == 0 || rest[0] != '/') {
        snprintf(errstr, 128, "kv redis: unix:// url needs an absolute path (unix:///run/redis.sock)");
        return ERR_INVAL;
    }
    if (n >= 108) {     /* sizeof sun_path */
        snprintf(errstr, 128, "kv redis: unix socket path too long");
        return ERR_INVAL;
    }
    memcpy(kr->host, rest, n);
    kr->host[n] = '\0';
    kr->unix_socket = true;
    if (q != NULL && (strncmp(q, "?db=", 4) != 0 || !parse_int(q + 4, strlen(q + 4), 0, 1000000, &kr->db))) {
        snprintf(errstr, 128, "kv redis: unix:// url takes only ?db=N");
        return ERR_INVAL;
    }
    return 0;
}

static int parse_userinfo(struct kv_redis *kr, const char *s, size_t n, char errstr[128])
{
    const char *colon = memchr(s, ':', n);

    if (colon == NULL) {
        snprintf(errstr, 128, "kv redis: credentials must be user:password@ or :password@");
        return ERR_INVAL;
    }
    if (colon > s && (kr->user = pct_decode(s, (size_t)(colon - s))) == NULL)
        goto bad;
    if ((kr->pass = pct_decode(colon + 1, n - (size_t)(colon - s) - 1)) == NULL)
        goto bad;
    if (kr->pass[0] == '\0') {
        snprintf(errstr, 128, "kv redis: empty password in url");
        return ERR_INVAL;
    }
    return 0;
bad:
    snprintf(errstr, 128, "kv redis: bad %%-escape in url credentials");
    return ERR_INVAL;
}

static int parse_tcp(struct kv_redis *kr, const char *rest, char errstr[128])
{
    const char *slash = strchr(rest, '/'), *end = slash != NULL ? slash : rest + strlen(rest);
    const char *at = NULL, *host, *hend, *port = NULL;
    int rc;

    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    if (at != NULL && (rc = parse_userinfo(kr, rest, (size_t)(at - rest), errstr)) != 0)
        return rc;
    host = at != NULL ? at + 1 : rest;
    if (*host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (hend == NULL || (hend + 1 < end && hend[1] != ':')) {
            snprintf(errstr, 128, "kv redis: bad [IPv6] host in url");
            return ERR_INVAL;
        }
        port = hend + 1 < end ? hend + 2 : NULL;
        host++;
    } else {
        hend = memchr(host, ':', (size_t)(end - host));
        if (hend != NULL)
            port = hend + 1;
        else
            hend = end;
    }
    if (hend == host || (size_t)(hend - host) >= sizeof kr->host) {
        snprintf(errstr, 128, "kv redis: url has no host, or too long a one");
        return ERR_INVAL;
    }
    memcpy(kr->host, host, (size_t)(hend - host));
    kr->host[hend - host] = '\0';
    kr->port = 6379;
    if (port != NULL && !parse_int(port, (size_t)(end - port), 1, 65535, &kr->port)) {
        snprintf(errstr, 128, "kv redis: port must be 1..65535");
        return ERR_INVAL;
    }
    if (slash != NULL && slash[1] != '\0' &&
        !parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &kr->db)) {
        snprintf(errstr, 128, "kv redis: database must be a number (redis://host:port/0)");
        return ERR_INVAL;
    }
    return 0;
}

static int parse_url(struct kv_redis *kr, const char *url, char errstr[128])
{
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(kr, url + 8, errstr);
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(kr, url + 7, errstr);
    if (strncmp(url, "rediss://", 9) == 0)
        snprintf(errstr, 128, "kv redis: TLS (rediss://) is not supported by this build");
    else
        snprintf(errstr, 128, "kv redis: url must be redis://host[:port][/db] or unix:///path");
    return ERR_INVAL;
}

/* ---- connection ---------------------------------------------------------- */

static int handshake(struct kv *kv, struct kv_redis *kr)
{
    struct cmd c[2];
    redisReply *rep;
    char db[16];
    int n = 0;

    memset(c, 0, sizeof c);
    if (kr->pass != NULL) {
        arg_str(&c[n], "AUTH");
        if (kr->user != NULL)
            arg_str(&c[n], kr->user);
        arg_str(&c[n++], kr->pass);
    }
    if (kr->db != 0) {
        snprintf(db, sizeof db, "%d", kr->db);
        arg_str(&c[n], "SELECT");
        arg_str(&c[n++], db);
    }
    for (int i = 0; i < n; i++) {
        rep = redisCommandArgv(kr->c, c[i].argc, c[i].argv, c[i].len);
        if (rep == NULL)
            return fail(kv, ERR_UNAVAILABLE, "redis %s: %s", where(kr), kr->c->errstr);
        if (rep->type == REDIS_REPLY_ERROR) {
            /* Redis's message names the problem ("WRONGPASS invalid username-password
             * pair", "ERR DB index is out of range"), never the secret. */
            fail(kv, ERR_UNAVAILABLE, "redis %s: %s: %.80s", where(kr), c[i].argv[0], rep->str);
            freeReplyObject(rep);
            return ERR_UNAVAILABLE;
        }
        freeReplyObject(rep);
    }
    return 0;
}

static int connect_now(struct kv *kv, struct kv_redis *kr)
{
    int64_t now = mono_ms();
    int rc;

    if (kr->c != NULL)
        return 0;
    if (now < kr->retry_at)     /* errstr still tells why the last connect failed */
        return kv->err = ERR_UNAVAILABLE;
    kr->c = kr->unix_socket ? redisConnectUnixWithTimeout(kr->host, kr->tv)
                            : redisConnectWithTimeout(kr->host, kr->port, kr->tv);
    if (kr->c == NULL) {
        rc = fail(kv, ERR_UNAVAILABLE, "redis %s: out of memory", where(kr));
        goto fail;
    }
    if (kr->c->err != 0) {
        rc = fail(kv, ERR_UNAVAILABLE, "redis %s: connect: %s", where(kr), kr->c->errstr);
        goto fail;
    }
    if (redisSetTimeout(kr->c, kr->tv) != REDIS_OK) {
        rc = fail(kv, ERR_UNAVAILABLE, "redis %s: cannot set the command timeout", where(kr));
        goto fail;
    }
    if (!kr->unix_socket)
        (void)redisEnableKeepAlive(kr->c);
    if ((rc = handshake(kv, kr)) != 0)
        goto fail;
    kr->used = false;
    return 0;
fail:
    drop(kr);
    kr->retry_at = now + KV_REDIS_RETRY_MS;
    return rc;
}

/* Sends n commands as one pipeline and reads one reply for each into rep[].
 * 0, or an error with the connection dropped and rep[] all NULL. */
static int roundtrip(struct kv *kv, struct kv_redis *kr, bool idempotent, struct cmd *cmds,
                     int n, redisReply **rep)
{
    for (int attempt = 0;; attempt++) {
        bool reused, closed;
        int rc, i, cerr, saved;

        memset(rep, 0, sizeof *rep * (size_t)n);
        if ((rc = connect_now(kv, kr)) != 0)
            return rc;
        reused = kr->used;
        for (i = 0; i < n; i++) {
            if (redisAppendCommandArgv(kr->c, cmds[i].argc, cmds[i].argv, cmds[i].len) != REDIS_OK) {
                drop(kr);
                return fail(kv, ERR_NOMEM, "redis %s: out of memory", where(kr));
            }
        }
        for (i = 0; i < n; i++) {
            void *r = NULL;

            if (redisGetReply(kr->c, &r) != REDIS_OK)
                break;
            rep[i] = r;
        }
        if (i == n) {
            kr->used = true;
            return kv->err = 0;
        }
        saved = errno;
        cerr = kr->c->err;
        fail(kv, ERR_UNAVAILABLE, "redis %s: %s", where(kr),
             cerr == REDIS_ERR_IO && (saved == EAGAIN || saved == EWOULDBLOCK) ? "timed out"
                                                                               : kr->c->errstr);
        while (i-- > 0) {
            freeReplyObject(rep[i]);
            rep[i] = NULL;
        }
        drop(kr);
        closed = cerr == REDIS_ERR_EOF ||
                 (cerr == REDIS_ERR_IO && (saved == ECONNRESET || saved == EPIPE));
        if (!(idempotent && reused && closed) || attempt > 0)
            return ERR_UNAVAILABLE;
    }
}

/* An error reply: what it means for the caller. */
static int reply_error(struct kv *kv, struct kv_redis *kr, const redisReply *rep)
{
    static const char *const down[] = {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "NOAUTH",
                                       "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"};
    int rc = ERR_INVAL;

    for (size_t i = 0; i < sizeof down / sizeof down[0]; i++)
        if (strncmp(rep->str, down[i], strlen(down[i])) == 0)
            rc = ERR_UNAVAILABLE;
    if (strncmp(rep->str, "OOM", 3) == 0)
        rc = ERR_NOSPACE;
    return fail(kv, rc, "redis %s: %.100s", where(kr), rep->str);
}

/* A reply of a type the command cannot return: the stream is not what we
 * think it is, so the connection goes. */
static int reply_unexpected(struct kv *kv, struct kv_redis *kr, const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR)
        return reply_error(kv, kr, rep);
    drop(kr);
    return fail(kv, ERR_INTERNAL, "redis %s: unexpected reply type %d", where(kr), rep->type);
}

/* One command, one reply (Returns owned in *rep on 0). */
static int one(struct kv *kv, struct kv_redis *kr, bool idempotent, struct cmd *c,
               redisReply **rep)
{
    return roundtrip(kv, kr, idempotent, c, 1, rep);
}

/* ---- operations ---------------------------------------------------------- */

static int take_string(struct kv *kv, struct kv_redis *kr, const redisReply *rep, char **val,
                       size_t *len)
{
    char *p;

    if (rep->type == REDIS_REPLY_NIL)
        return kv->err = ERR_NOTFOUND;
    if (rep->type != REDIS_REPLY_STRING)
        return reply_unexpected(kv, kr, rep);
    if ((p = malloc(rep->len + 1)) == NULL)
        return fail(kv, ERR_NOMEM, "out of memory");
    memcpy(p, rep->str, rep->len);
    p[rep->len] = '\0';
    *val = p;
    *len = rep->len;
    return kv->err = 0;
}

static int kvr_get(struct kv *kv, const char *key, char **val, size_t *len)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c = {0};
    redisReply *rep;
    int rc;

    arg_str(&c, "GET");
    arg_str(&c, key);
    if ((rc = one(kv, kr, true, &c, &rep)) != 0)
        return rc;
    rc = take_string(kv, kr, rep, val, len);
    freeReplyObject(rep);
    return rc;
}

static int kvr_set(struct kv *kv, const char *key, const void *val, size_t len, uint64_t ttl_ms,
                   bool nx)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c = {0};
    redisReply *rep;
    char ms[24];
    int rc;

    arg_str(&c, "SET");
    arg_str(&c, key);
    arg(&c, val != NULL ? val : "", len);
    if (ttl_ms != 0) {
        snprintf(ms, sizeof ms, "%llu", (unsigned long long)ttl_ms);
        arg_str(&c, "PX");
        arg_str(&c, ms);
    }
    if (nx)
        arg_str(&c, "NX");
    /* SET NX repeated after a lost reply would report our own lock as taken. */
    if ((rc = one(kv, kr, !nx, &c, &rep)) != 0)
        return rc;
    if (rep->type == REDIS_REPLY_STATUS)
        rc = kv->err = 0;
    else if (nx && rep->type == REDIS_REPLY_NIL)
        rc = kv->err = ERR_CONFLICT;
    else
        rc = reply_unexpected(kv, kr, rep);
    freeReplyObject(rep);
    return rc;
}

static int integer_reply(struct kv *kv, struct kv_redis *kr, struct cmd *c, bool idempotent,
                         long long *out)
{
    redisReply *rep;
    int rc;

    if ((rc = one(kv, kr, idempotent, c, &rep)) != 0)
        return rc;
    if (rep->type == REDIS_REPLY_INTEGER) {
        *out = rep->integer;
        rc = kv->err = 0;
    } else {
        rc = reply_unexpected(kv, kr, rep);
    }
    freeReplyObject(rep);
    return rc;
}

static int kvr_del(struct kv *kv, const char *key)
{
    struct cmd c = {0};
    long long n;
    int rc;

    arg_str(&c, "DEL");
    arg_str(&c, key);
    if ((rc = integer_reply(kv, kv->impl, &c, true, &n)) != 0)
        return rc;
    return kv->err = n > 0 ? 0 : ERR_NOTFOUND;
}

static int kvr_del_eq(struct kv *kv, const char *key, const void *val, size_t len)
{
    struct cmd c = {0};
    long long n;
    int rc;

    arg_str(&c, "EVAL");
    arg_str(&c, DEL_EQ_SCRIPT);
    arg_str(&c, "1");
    arg_str(&c, key);
    arg(&c, val != NULL ? val : "", len);
    if ((rc = integer_reply(kv, kv->impl, &c, false, &n)) != 0)
        return rc;
    return kv->err = n > 0 ? 0 : ERR_NOTFOUND;
}

static int kvr_exists(struct kv *kv, const char *key, bool *yes)
{
    struct cmd c = {0};
    long long n;
    int rc;

    arg_str(&c, "EXISTS");
    arg_str(&c, key);
    if ((rc = integer_reply(kv, kv->impl, &c, true, &n)) != 0)
        return rc;
    *yes = n > 0;
    return 0;
}

static int kvr_exists_get(struct kv *kv, const char *ekey, bool *exists, const char *gkey,
                          char **val, size_t *len)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c[2];
    redisReply *rep[2];
    int rc;

    memset(c, 0, sizeof c);
    arg_str(&c[0], "EXISTS");
    arg_str(&c[0], ekey);
    arg_str(&c[1], "GET");
    arg_str(&c[1], gkey);
    if ((rc = roundtrip(kv, kr, true, c, 2, rep)) != 0)
        return rc;
    if (rep[0]->type != REDIS_REPLY_INTEGER) {
        rc = reply_unexpected(kv, kr, rep[0]);
    } else {
        rc = take_string(kv, kr, rep[1], val, len);
        if (rc == ERR_NOTFOUND)
            rc = kv->err = 0;
        if (rc == 0)
            *exists = rep[0]->integer > 0;
    }
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    return rc;
}

static int kvr_mget(struct kv *kv, const char *const *keys, size_t n, char **vals, size_t *lens)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c[KV_MGET_MAX];
    redisReply *rep[KV_MGET_MAX];
    int rc;

    memset(c, 0, sizeof c);
    for (size_t i = 0; i < n; i++) {
        arg_str(&c[i], "GET");
        arg_str(&c[i], keys[i]);
    }
    if ((rc = roundtrip(kv, kr, true, c, (int)n, rep)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            rc = take_string(kv, kr, rep[i], &vals[i], &lens[i]);
            if (rc == ERR_NOTFOUND)
                rc = kv->err = 0;
        }
        freeReplyObject(rep[i]);
    }
    if (rc != 0)
        kv_mget_clear(vals, lens, n);
    return rc;
}

static int kvr_incr(struct kv *kv, const char *key, int64_t *out)
{
    struct cmd c = {0};
    long long n;
    int rc;

    arg_str(&c, "INCR");
    arg_str(&c, key);
    if ((rc = integer_reply(kv, kv->impl, &c, false, &n)) != 0)
        return rc;
    *out = (int64_t)n;
    return 0;
}

static int kvr_incr_window(struct kv *kv, const char *key, uint64_t ttl_ms, int64_t *out,
                           uint64_t *ttl_left_ms)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c = {0};
    redisReply *rep;
    char ms[24];
    int rc;

    snprintf(ms, sizeof ms, "%llu", (unsigned long long)ttl_ms);
    arg_str(&c, "EVAL");
    arg_str(&c, INCR_WINDOW_SCRIPT);
    arg_str(&c, "1");
    arg_str(&c, key);
    arg_str(&c, ms);
    /* not repeated after a lost reply: that would count one failure twice */
    if ((rc = one(kv, kr, false, &c, &rep)) != 0)
        return rc;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[1]->type == REDIS_REPLY_INTEGER) {
        *out = (int64_t)rep->element[0]->integer;
        *ttl_left_ms = rep->element[1]->integer > 0 ? (uint64_t)rep->element[1]->integer : 0;
        rc = kv->err = 0;
    } else {
        rc = reply_unexpected(kv, kr, rep);
    }
    freeReplyObject(rep);
    return rc;
}

static int kvr_counter(struct kv *kv, const char *key, int64_t *out, uint64_t *ttl_left_ms)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c[2];
    redisReply *rep[2];
    int rc = 0;

    memset(c, 0, sizeof c);
    arg_str(&c[0], "GET");
    arg_str(&c[0], key);
    arg_str(&c[1], "PTTL");
    arg_str(&c[1], key);
    if ((rc = roundtrip(kv, kr, true, c, 2, rep)) != 0)
        return rc;
    if (rep[0]->type != REDIS_REPLY_NIL && rep[0]->type != REDIS_REPLY_STRING) {
        rc = reply_unexpected(kv, kr, rep[0]);
    } else if (rep[1]->type != REDIS_REPLY_INTEGER) {
        rc = reply_unexpected(kv, kr, rep[1]);
    } else if (rep[0]->type == REDIS_REPLY_STRING && !kv_parse_i64(rep[0]->str, rep[0]->len, out)) {
        rc = fail(kv, ERR_INVAL, "redis %s: value is not an integer", where(kr));
    } else {
        /* PTTL is -2 for no key and -1 for no TTL: both leave 0. The key may
         * expire between the two commands: a count with 0 left. */
        if (rep[0]->type == REDIS_REPLY_STRING && rep[1]->integer > 0)
            *ttl_left_ms = (uint64_t)rep[1]->integer;
        rc = kv->err = 0;
    }
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    return rc;
}

static int kvr_ping(struct kv *kv)
{
    struct kv_redis *kr = kv->impl;
    struct cmd c = {0};
    redisReply *rep;
    int rc;

    arg_str(&c, "PING");
    if ((rc = one(kv, kr, true, &c, &rep)) != 0)
        return rc;
    rc = rep->type == REDIS_REPLY_STATUS ? (kv->err = 0) : reply_unexpected(kv, kr, rep);
    freeReplyObject(rep);
    return rc;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void kvr_free(struct kv *kv)
{
    struct kv_redis *kr = kv->impl;

    if (kr != NULL) {
        drop(kr);
        wipe_free(kr->user);
        wipe_free(kr->pass);
        free(kr);
    }
    free(kv);
}

static const struct kv_ops kv_redis_ops = {
    .name = "redis",
    .get = kvr_get,
    .set = kvr_set,
    .del = kvr_del,
    .del_eq = kvr_del_eq,
    .exists = kvr_exists,
    .exists_get = kvr_exists_get,
    .mget = kvr_mget,
    .incr = kvr_incr,
    .incr_window = kvr_incr_window,
    .counter = kvr_counter,
    .ping = kvr_ping,
    .free = kvr_free,
};

/* hiredis writes with write(2): a server that went away would kill the
 * worker with SIGPIPE unless the program ignores it. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

struct kv *kv_redis_new(const char *url, int timeout_ms, char errstr[128])
{
    char scratch[128];
    struct kv *kv = NULL;
    struct kv_redis *kr = NULL;

    if (errstr == NULL)
        errstr = scratch;
    if (url == NULL || timeout_ms <= 0 || timeout_ms > 600000) {
        snprintf(errstr, 128, "kv redis: %s", url == NULL ? "no url" : "timeout_ms must be 1..600000");
        return NULL;
    }
    kv = calloc(1, sizeof *kv);
    kr = calloc(1, sizeof *kr);
    if (kv == NULL || kr == NULL) {
        snprintf(errstr, 128, "kv redis: out of memory");
        goto fail;
    }
    kv->ops = &kv_redis_ops;
    kv->impl = kr;
    if (parse_url(kr, url, errstr) != 0)
        goto fail;
    if (kr->unix_socket)
        snprintf(kr->where, sizeof kr->where, "%s", kr->host);
    else
        snprintf(kr->where, sizeof kr->where, strchr(kr->host, ':') ? "[%s]:%d" : "%s:%d",
                 kr->host, kr->port);
    kr->tv.tv_sec = timeout_ms / 1000;
    kr->tv.tv_usec = (timeout_ms % 1000) * 1000;
    ignore_sigpipe();
    return kv;
fail:
    if (kv != NULL && kr != NULL)
        kvr_free(kv);
    else {
        free(kr);
        free(kv);
    }
    return NULL;
}

#define KV_STR_(x) #x
#define KV_STR(x) KV_STR_(x)

const char *kv_redis_lib_version(void)
{
    return KV_STR(HIREDIS_MAJOR) "." KV_STR(HIREDIS_MINOR) "." KV_STR(HIREDIS_PATCH);
}
