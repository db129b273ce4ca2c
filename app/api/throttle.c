/* The failed-login throttle (issue 11): failures are counted per account and
 * per client address in the kv, each in a fixed window of [auth]
 * login_window_s that opens with its first failure (kv_incr_window). Past
 * [auth] login_max_failures (an account's) or login_max_failures_addr (an
 * address's, higher: an office behind one NAT shares it) a login is refused
 * 429 too_many_requests with Retry-After, before any lookup or password work:
 * a throttled attempt costs no scrypt, and answers the same, in the same time,
 * for a known and an unknown email.
 *
 * Keys hold no personal data in clear: thr:login:acct:<hex HMAC of the
 * normalized email> and thr:login:addr:<hex HMAC of the address>, with the
 * blind-index key but a label of their own, so a kv key never equals a
 * users.email_hmac. An IPv6 client counts by its /64, which one host usually
 * holds whole and could otherwise step through.
 *
 * Only failures count (a wrong password, an unknown email). A successful
 * login clears its account's count, never its address's: a guesser holding
 * one valid account would otherwise reset its address between guesses. Check
 * then count is two steps, so each worker may let one attempt in flight slip
 * past a limit: the overshoot is bounded by the fleet's size.
 *
 * The kv down (Redis away) fails open: logins go on unthrottled, logged and
 * counted (tessera_login_throttle_errors_total), and after its first failure
 * a request makes no more throttle calls. The blacklist (authn.c) is not
 * affected: it stays fail closed. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "core/log.h"

#define THROTTLE_ACCT "thr:login:acct:"
#define THROTTLE_ADDR "thr:login:addr:"

/* REMOTE_ADDR as the address it counts under: IPv4 as is (an IPv4-mapped IPv6
 * too), IPv6 by its /64; anything else (nginx on a unix socket says "unix:")
 * as given, "-" when absent. */
static void addr_norm(const char *ra, char *out, size_t outsz)
{
    struct in_addr a4;
    struct in6_addr a6;
    char text[INET6_ADDRSTRLEN];

    if (ra == NULL || ra[0] == '\0') {
        snprintf(out, outsz, "-");
    } else if (inet_pton(AF_INET, ra, &a4) == 1 && inet_ntop(AF_INET, &a4, text, sizeof text) != NULL) {
        snprintf(out, outsz, "%s", text);
    } else if (inet_pton(AF_INET6, ra, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            memcpy(&a4, &a6.s6_addr[12], 4);
            if (inet_ntop(AF_INET, &a4, text, sizeof text) == NULL)
                snprintf(text, sizeof text, "-");
            snprintf(out, outsz, "%s", text);
            return;
        }
        memset(&a6.s6_addr[8], 0, 8);
        if (inet_ntop(AF_INET6, &a6, text, sizeof text) == NULL)
            snprintf(text, sizeof text, "-");
        snprintf(out, outsz, "%s/64", text);
    } else {
        snprintf(out, outsz, "%.64s", ra);
    }
}

/* out = prefix + hex(HMAC(blind-index key, "tessera login throttle v1 " kind " " value)). */
static int key_for(const struct worker *w, const char *prefix, const char *kind, const char *value,
                   char out[THROTTLE_KEY_MAX])
{
    char msg[400];
    uint8_t mac[CRYPTO_SHA256_LEN];
    size_t n = strlen(prefix);
    int len, rc;

    if (w->ring.n == 0)
        return ERR_INTERNAL;
    len = snprintf(msg, sizeof msg, "tessera login throttle v1 %s %s", kind, value);
    if (len < 0 || (size_t)len >= sizeof msg)
        return ERR_INVAL;
    rc = crypto_hmac_sha256(w->ring.keys[0].bidx_key, sizeof w->ring.keys[0].bidx_key, msg, (size_t)len, mac);
    explicit_bzero(msg, sizeof msg);
    if (rc != 0)
        return rc;
    memcpy(out, prefix, n);
    return crypto_hex_encode(mac, sizeof mac, out + n, THROTTLE_KEY_MAX - n);
}

int throttle_begin(struct worker *w, struct http_request *r, const char *email, struct login_throttle *t)
{
    char norm[256], addr[INET6_ADDRSTRLEN + 8];
    int rc;

    memset(t, 0, sizeof *t);
    t->request_id = r->request_id;
    /* an email that does not normalize still counts, under what was sent */
    if (email_normalize(email, norm, sizeof norm) != 0)
        snprintf(norm, sizeof norm, "%s", email);
    addr_norm(http_param(r, "REMOTE_ADDR"), addr, sizeof addr);
    rc = key_for(w, THROTTLE_ACCT, "acct", norm, t->acct);
    explicit_bzero(norm, sizeof norm);
    if (rc == 0)
        rc = key_for(w, THROTTLE_ADDR, "addr", addr, t->addr);
    return rc;
}

/* A kv call failed: the throttle is off for the rest of this request. */
static void throttle_down(struct worker *w, struct login_throttle *t)
{
    t->down = true;
    metrics_count(w->metrics, w->slot, METRICS_LOGIN_THROTTLE_ERRORS);
    log_msg(LOG_WARN, "login_throttle_unavailable", "%s; the login goes on unthrottled (request %s)",
            w->kv->errstr[0] ? w->kv->errstr : err_str(w->kv->err), t->request_id);
}

int throttle_check(struct worker *w, struct http_request *r, struct login_throttle *t)
{
    const struct {
        const char *key, *what;
        int limit;
    } limits[] = {
        {t->acct, "account", w->cfg->auth.login_max_failures},
        {t->addr, "address", w->cfg->auth.login_max_failures_addr},
    };
    const char *what = NULL;
    uint64_t wait_ms = 0;

    for (size_t i = 0; i < sizeof limits / sizeof limits[0] && !t->down; i++) {
        int64_t n;
        uint64_t left;

        if (limits[i].key[0] == '\0')
            continue; /* throttle_address_only */
        if (kv_counter(w->kv, limits[i].key, &n, &left) != 0) {
            throttle_down(w, t);
            break;
        }
        if (n >= limits[i].limit) {
            what = what == NULL ? limits[i].what : "account and address";
            if (left > wait_ms)
                wait_ms = left;
        }
    }
    if (what == NULL)
        return 0;
    metrics_count(w->metrics, w->slot, METRICS_LOGIN_THROTTLED);
    log_msg(LOG_INFO, "login_throttled", "%s limit reached (request %s)", what, t->request_id);
    /* whole seconds, rounded up; a window that just ended still says 1 */
    unsigned long long secs = (wait_ms + 999) / 1000;
    char *v = arena_printf(r->arena, "%llu", secs > 0 ? secs : 1);
    if (v == NULL || http_add_header(r, "Retry-After", v) != 0)
        return ERR_NOMEM;
    return respond_error(r, ERR_TOOMANY, "too many attempts; try again later");
}

void throttle_failed(struct worker *w, struct login_throttle *t)
{
    uint64_t ttl_ms = (uint64_t)w->cfg->auth.login_window_s * 1000;
    const char *keys[] = {t->acct, t->addr};

    for (size_t i = 0; i < 2 && !t->down; i++) {
        int64_t n;
        uint64_t left;

        if (keys[i][0] == '\0')
            continue; /* throttle_address_only */
        if (kv_incr_window(w->kv, keys[i], ttl_ms, &n, &left) != 0)
            throttle_down(w, t);
    }
}

void throttle_address_only(struct login_throttle *t)
{
    t->acct[0] = '\0';
}

void throttle_succeeded(struct worker *w, struct login_throttle *t)
{
    int rc;

    if (t->down || t->acct[0] == '\0')
        return;
    rc = kv_del(w->kv, t->acct);
    if (rc != 0 && rc != ERR_NOTFOUND)
        throttle_down(w, t);
}
