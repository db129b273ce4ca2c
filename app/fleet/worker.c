/* The worker: one process, one request at a time, many kept-alive FastCGI
 * connections. nginx keeps upstream connections open (fastcgi_keep_conn on);
 * a worker blocked on one idle connection would stall requests queued on the
 * others, so the listen socket is non-blocking and the worker polls it and
 * every kept connection, calling FCGX_Accept_r on whichever is readable
 * (../shared/baseline/mux.c). Each request runs in its own arena, reset in
 * one call when the request ends. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "http/cors.h"
#include "fleet/fdpass.h"
#include "core/json.h"
#include "core/log.h"
#include "security/rbac.h"

#define ARENA_BLOCK (64 * 1024)
#define RSS_EVERY 64            /* requests between RSS samples */
#define POLL_TICK_MS 1000

/* Set by signals, read by the loop: fcgi2's own handlers only flag a shutdown
 * it checks inside accept, and this worker waits in poll(), so it catches
 * SIGTERM/SIGINT/SIGHUP itself (DESIGN §10). */
static volatile sig_atomic_t worker_retire;

static void on_retire(int sig)
{
    (void)sig;
    worker_retire = 1;
}

/* Whether the master asked us to leave. ppoll() runs the handler only when it
 * would otherwise wait: when a descriptor is ready, Linux returns the count and
 * puts the caller's mask back with the signal still pending (blocked again), so
 * a worker that always finds a request waiting never sees it, serves on past
 * its successor's start, and is killed mid-request by graceful_timeout. So the
 * loop also asks here, without waiting, before each request it takes. */
static bool retire_asked(const sigset_t *retire_set)
{
    static const struct timespec now = {0, 0};

    if (!worker_retire && sigtimedwait(retire_set, NULL, &now) > 0)
        worker_retire = 1;
    return worker_retire;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct sb_row *my_row(struct worker *w)
{
    return w->sb != NULL && w->row >= 0 ? &w->sb->row[w->row] : NULL;
}

/* Body rules of DESIGN §5: JSON only, capped, strictly parsed. */
/* Parses the body read into r->body as JSON into r->json (a fresh tree each call). */
static int parse_json_body(struct worker *w, struct http_request *r)
{
    const struct config *cfg = w->cfg;
    struct json_limits lim = {cfg->http.max_json_depth, cfg->http.max_json_nodes};
    enum json_error why;
    cJSON *json = json_parse(r->body, r->body_len, &lim, &why);

    if (json == NULL)
        return respond_error(r, ERR_BADJSON, json_error_str(why));
    r->json = http_own(r, json);
    return r->json == NULL ? ERR_NOMEM : 0;
}

static int read_json_body(struct worker *w, struct http_request *r)
{
    int rc = http_read_body(r, (size_t)w->cfg->http.max_body_kb * 1024);

    if (rc == ERR_TOOBIG)
        return respond_error(r, ERR_TOOBIG, "request body is too large");
    if (rc != 0)
        return respond_error(r, ERR_INVAL, "request body could not be read");
    if (r->body_len == 0)
        return 0;
    if (!http_is_json(r))
        return respond_error(r, ERR_MEDIATYPE,
                            "request body must be application/json");
    return parse_json_body(w, r);
}

/* One attempt of an authenticated route: the caller is resolved, its permission
 * checked and the handler run inside one unit of work, committed only when the
 * handler succeeded; the held reply is sent after the commit, so a client never
 * sees a success the store did not keep. */
static int run_authed_once(struct worker *w, struct http_request *r, const struct app_route *ar,
                           bool *at_commit)
{
    struct principal p;
    int rc;

    caching_drop(w); /* nothing of an earlier attempt is bumped */
    int64_t t0 = now_us();
    rc = authn_principal(w, r, &p); /* on success the unit of work is open */
    w->auth_us += (uint64_t)(now_us() - t0);

    if (rc != 0 || r->status != 0)
        return rc;
    r->mode = engine_mode_name(p.scope.mode);
    if (ar->perm != NULL && !rbac_allows(p.perms.perms, p.perms.nperms, ar->perm, "*")) {
        engine_rollback(w->engine);
        return respond_error(r, ERR_FORBIDDEN, "your role does not allow this");
    }
    rc = ar->fn(w, r, &p);
    if (rc != 0 || r->status != 0 || r->reply == NULL) {
        engine_rollback(w->engine);
        return rc;
    }
    *at_commit = true;
    return app_commit(w);
}

/* A commit that fails with a serialization failure or a deadlock (ERR_CONFLICT),
 * or a statement that does so before it (the engine says: retry, such as a
 * write whose definition changed under it, sql/0013_write_guard.sql), kept
 * nothing, so the request is run once more from its start (caller, permission,
 * handler) on a fresh copy of the body. That is safe because an authenticated
 * handler's only effect outside its unit of work is logout's blacklist entry,
 * which setting twice leaves the same; a handler that gains another such effect
 * must make it idempotent too. A second conflict is the client's: 409, retry. */
static int run_authed_retrying(struct worker *w, struct http_request *r, const struct app_route *ar)
{
    size_t nheaders = r->nheaders;
    bool at_commit = false;
    int rc = run_authed_once(w, r, ar, &at_commit);

    if (rc == ERR_CONFLICT && (at_commit || w->engine->retry)) {
        log_msg(LOG_WARN, "commit_conflict", "%s (request %s, run again)", w->engine->errstr, r->request_id);
        if (w->engine->retry)
            caching_memo_drop(w); /* a definition held from a copy may have been the cause */
        r->reply = NULL;
        r->reply_status = 0;
        r->nheaders = nheaders;
        r->json = NULL;
        if (r->body_len > 0 && ((rc = parse_json_body(w, r)) != 0 || r->status != 0))
            return rc;
        at_commit = false;
        rc = run_authed_once(w, r, ar, &at_commit);
        if (rc == ERR_CONFLICT && (at_commit || w->engine->retry)) {
            log_msg(LOG_WARN, "commit_conflict", "%s (request %s, again: the client retries)",
                    w->engine->errstr, r->request_id);
            r->reply = NULL;
            return respond_error(r, ERR_CONFLICT,
                                 "a concurrent change conflicted with this one; nothing was kept, retry");
        }
    }
    if (rc != 0 && at_commit) {
        /* any other failed commit: handle() logs it once, with the engine's reason */
        r->reply = NULL;
        return rc == ERR_NOSPACE ? rc : ERR_UNAVAILABLE;
    }
    return rc;
}

/* The engine knows its conflicts are run again here, so a write may keep
 * its own for the commit (engine.h "reruns"). */
static int run_authed(struct worker *w, struct http_request *r, const struct app_route *ar)
{
    int rc;

    w->engine->reruns = true;
    rc = run_authed_retrying(w, r, ar);
    w->engine->reruns = false;
    return rc;
}

/* Parses, routes and runs one request; on return r->status is set or rc says why not. */
static int dispatch(struct worker *w, struct http_request *r, int *route_idx)
{
    const char *why;
    int rc = http_request_parse(r, &why);

    if (rc != 0)
        return why != NULL ? respond_error(r, rc, why) : rc;

    /* CORS (lib/http/cors.h): an allowed origin may read every answer,
     * errors included, and its preflight is answered here */
    const char *origin = http_param(r, "HTTP_ORIGIN");
    bool cors = w->cfg->http.cors_origins[0] != '\0' && cors_allows(w->cfg->http.cors_origins, origin);
    if (cors && (http_add_header(r, "Access-Control-Allow-Origin", origin) != 0 ||
                 http_add_header(r, "Vary", "Origin") != 0 ||
                 http_add_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS) != 0))
        return ERR_NOMEM;

    rc = router_match(&w->router, r->method, r->segs, r->nseg, &r->match);
    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such endpoint");
    if (rc != 0) {
        char allow[96];
        router_allow_str(r->match.allow, allow, sizeof allow);
        const char *v = arena_strdup(r->arena, allow);
        if (v == NULL)
            return ERR_NOMEM;
        if (cors && r->method == ROUTER_OPTIONS && http_param(r, "HTTP_ACCESS_CONTROL_REQUEST_METHOD") != NULL) {
            if (http_add_header(r, "Access-Control-Allow-Methods", v) != 0 ||
                http_add_header(r, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS) != 0 ||
                http_add_header(r, "Access-Control-Max-Age", CORS_MAX_AGE) != 0)
                return ERR_NOMEM;
            return http_send(r, 204, NULL, "", 0);
        }
        if (http_add_header(r, "Allow", v) != 0)
            return ERR_NOMEM;
        return respond_error(r, ERR_METHOD, "method not allowed on this endpoint");
    }
    *route_idx = (int)(r->match.route - APP_ROUTES);

    /* a DELETE may carry a body too (DELETE /v1/auth/me takes the password) */
    if (r->method == ROUTER_POST || r->method == ROUTER_PUT || r->method == ROUTER_PATCH ||
        r->method == ROUTER_DELETE) {
        if ((rc = read_json_body(w, r)) != 0 || r->status != 0)
            return rc;
    }
    const struct app_route *ar = r->match.route->data;
    if (ar->auth == AUTH_NONE || (ar->auth == AUTH_OPTIONAL && http_param(r, "HTTP_AUTHORIZATION") == NULL))
        return ar->fn(w, r, NULL);
    return run_authed(w, r, ar);
}

static void access_log(const struct worker *w, const struct http_request *r, int64_t dur_us,
                       int route_idx)
{
    struct log_line l;
    int slow = w->cfg->fleet.slowlog_ms > 0 && dur_us / 1000 >= w->cfg->fleet.slowlog_ms;

    log_begin(&l, slow ? LOG_WARN : LOG_INFO, slow ? "slow" : "access");
    if (!l.on)
        return;
    log_str(&l, "request_id", r->request_id);
    log_str(&l, "method", r->method_str);
    log_str(&l, "path", r->path != NULL ? r->path : "");
    log_int(&l, "status", r->status);
    log_int(&l, "duration_us", dur_us);
    log_int(&l, "bytes", (long long)r->sent_bytes);
    log_int(&l, "worker", w->slot);
    if (slow) {
        /* where the time went (PHP-FPM's slowlog): auth includes its own kv and
         * engine calls; cache is every kv call, engine every store call */
        log_str(&l, "route", w->labels[route_idx]);
        log_int(&l, "auth_us", (long long)w->auth_us);
        log_int(&l, "cache_us", (long long)(w->kv->busy_us + (w->cache_kv != w->kv ? w->cache_kv->busy_us : 0)));
        log_int(&l, "engine_us", (long long)w->engine->busy_us);
        log_int(&l, "render_us", (long long)w->render_us);
    }
    log_end(&l);
}

static void handle(struct worker *w, FCGX_Request *fcgx)
{
    struct http_request r;
    struct sb_row *row = my_row(w);
    int64_t t0 = now_us();
    int route_idx = (int)w->nlabels - 1; /* "unmatched" until routed */

    if (row != NULL) {
        row->req_start_ms = sb_now_ms();
        row->state = SB_BUSY;
    }
    http_request_init(&r, fcgx, w->arena);
    http_request_id(&r, &w->ids);

    /* The reasons a 5xx is logged with are this request's own. */
    w->engine->errstr[0] = '\0';
    w->kv->errstr[0] = w->cache_kv->errstr[0] = '\0';
    caching_drop(w); /* a bump queued by a unit that never committed is not run */
    w->engine->busy_us = w->kv->busy_us = w->cache_kv->busy_us = w->auth_us = w->render_us = 0;
    int rc = dispatch(w, &r, &route_idx);
    if (r.status == 0 && rc == 0 && r.reply != NULL) {
        int64_t t1 = now_us();
        rc = http_send_json(&r, r.reply_status, r.reply);
        w->render_us = (uint64_t)(now_us() - t1);
    }
    if (r.status == 0) {
        const char *code;
        int status = respond_status(rc != 0 ? rc : ERR_INTERNAL, &code);
        /* The client learns only the status; the log says why (the stores'
         * reasons never hold values or credentials). */
        if (status >= 500)
            log_msg(status == 500 ? LOG_ERROR : LOG_WARN, "handler_error", "%s %s: %s (request %s)%s%s%s%s",
                    r.method_str, r.path ? r.path : "", err_str(rc), r.request_id,
                    w->engine->errstr[0] ? "; " : "", w->engine->errstr, w->kv->errstr[0] ? "; " : "",
                    w->kv->errstr);
        if (http_send_error(&r, status, code, respond_message(rc), NULL) != 0)
            r.status = status; /* nothing more to do: the connection is gone; log what we meant */
    }
    int64_t dur = now_us() - t0;
    access_log(w, &r, dur, route_idx);
    metrics_observe(w->metrics, w->slot, route_idx, r.status, (uint64_t)dur);
    caching_end(w);
    arena_reset(w->arena);
    w->served++;
    if (row != NULL) {
        row->requests = w->served;
        row->req_start_ms = 0;
        /* the master marked us retiring when it asked us to leave: keep saying so */
        row->state = worker_retire ? SB_RETIRING : SB_IDLE;
    }
}

/* Reads the next request on a connection slot (accepting first when the slot
 * has none) and serves it; false when there was none. fcgi2 closes the
 * connection itself when nginx did. */
static bool serve(struct worker *w, FCGX_Request *req)
{
    if (FCGX_Accept_r(req) < 0) {
        req->ipcFd = -1;    /* closed by nginx, or nothing left to accept */
        return false;
    }
    handle(w, req);
    FCGX_Finish_r(req);     /* keeps the connection when nginx asked to */
    return true;
}

static int free_conn(struct worker *w)
{
    for (int i = 0; i < WORKER_CONNS; i++)
        if (w->conn[i].ipcFd < 0)
            return i;
    return -1;
}

/* The reason to leave after the current request, or NULL to go on. */
static const char *recycle_reason(struct worker *w)
{
    const struct config *cfg = w->cfg;

    if (cfg->fleet.max_requests > 0 && w->served >= (uint64_t)cfg->fleet.max_requests)
        return "max_requests";
    if (cfg->fleet.max_memory_mb > 0 && (w->served % RSS_EVERY) == 0) {
        uint64_t rss = sb_rss_kb(getpid());
        struct sb_row *row = my_row(w);
        if (row != NULL)
            row->rss_kb = rss;
        if (rss > (uint64_t)cfg->fleet.max_memory_mb * 1024)
            return "max_memory";
    }
    return NULL;
}

/* Takes connections a retiring predecessor handed over (through the master):
 * idle kept-alive FastCGI connections, possibly with a request already waiting. */
static int adopt(struct worker *w)
{
    int fds[FDPASS_MAX], n, rc = fdpass_recv(w->channel_fd, fds, FDPASS_MAX, &n);

    if (rc == ERR_NOTFOUND)
        return rc; /* the master is gone */
    for (int i = 0; rc == 0 && i < n; i++) {
        int k = free_conn(w);
        if (k < 0) {
            close(fds[i]);
            continue;
        }
        /* keepConnection: fcgi2 must not close it when it "finishes" the empty request */
        w->conn[k].ipcFd = fds[i];
        w->conn[k].keepConnection = 1;
    }
    return 0;
}

/* Gives every kept connection to the master for our successor. A connection
 * is only ever idle here (requests run to completion before the loop looks at
 * signals), so nginx sees no close and no lost request. */
static void hand_over(struct worker *w)
{
    int fds[FDPASS_MAX], n = 0, moved = 0;

    for (int i = 0; i <= WORKER_CONNS; i++) {
        if (i < WORKER_CONNS && w->conn[i].ipcFd >= 0)
            fds[n++] = w->conn[i].ipcFd;
        if (n > 0 && (n == FDPASS_MAX || i == WORKER_CONNS)) {
            if (w->channel_fd >= 0 && fdpass_send(w->channel_fd, fds, n) == 0)
                moved += n;
            n = 0;
        }
    }
    if (moved > 0)
        log_msg(LOG_INFO, "handover", "%d kept connections passed to the successor", moved);
}

/* Serves what waits on connection k, then closes it; returns how many
 * requests it served. Before each look the connection is shut for reading:
 * from then on a request nginx writes on it fails at once with EPIPE, before
 * a byte reaches us (nginx answers 502 for it, or retries a GET elsewhere),
 * so what the look finds queued is all that will ever come, and closing
 * after serving it loses nothing. Without that cut, a request nginx wrote
 * between the look and the close would be dropped (unread at close: nginx
 * reads a reset). Queued bytes stay readable, and the answer can be written.
 * That holds for the unix socket (the default, and the package's); on TCP
 * (fleet.listen host:port) Linux still queues what arrives after SHUT_RD, so
 * there the loop serves it too and only the last look races the close.
 * first: a connection just accepted from the queue, whose request may still
 * be on its way: served before the cut. */
static int drain_conn(struct worker *w, int k, bool first, int64_t until)
{
    FCGX_Request *c = &w->conn[k];
    int served = first ? serve(w, c) : 0;
    char b;

    /* serve() may swap in a connection fcgi2 accepted when this one ended */
    while (c->ipcFd >= 0) {
        shutdown(c->ipcFd, SHUT_RD);
        if (sb_now_ms() >= until || recv(c->ipcFd, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
            close(c->ipcFd); /* nothing queued, or nginx closed it */
            c->ipcFd = -1;
            break;
        }
        served += serve(w, c);
    }
    return served;
}

/* Leaving for good (the fleet stops, the master is gone, or no master): no
 * successor takes the kept connections, and closing them as they are would
 * lose what nginx has already sent on them (nginx answers 502 for a request
 * it sent and never had answered, and retries no POST), and what waits in
 * the accept queue (nginx connected before the socket was unlinked). So every
 * such request is served first: each kept connection is cut (drain_conn),
 * served and closed, then the accept queue and the channel (connections the
 * master forwarded from a predecessor just before the stop) are emptied the
 * same way, until a look finds nothing. Bounded by graceful_timeout, after
 * which the master kills the worker anyway. */
static void drain(struct worker *w)
{
    int64_t until = sb_now_ms() + (int64_t)w->cfg->fleet.graceful_timeout * 1000;
    int served = 0, conns = 0, channel = w->channel_fd;

    /* the cut first, on every one at once: what nginx sends while we serve
     * the others must fail fast rather than wait behind them */
    for (int i = 0; i < WORKER_CONNS; i++)
        if (w->conn[i].ipcFd >= 0) {
            shutdown(w->conn[i].ipcFd, SHUT_RD);
            conns++;
        }
    for (int i = 0; i < WORKER_CONNS; i++)
        served += drain_conn(w, i, false, until);
    while (sb_now_ms() < until) {
        struct pollfd p[2];
        int n = 0, k;

        if (channel >= 0)
            p[n++] = (struct pollfd){.fd = channel, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = w->listen_fd, .events = POLLIN};
        if (poll(p, (nfds_t)n, 0) <= 0)
            break;
        if (channel >= 0 && p[0].revents) {
            if (adopt(w) == ERR_NOTFOUND)
                channel = -1; /* the master is gone: nothing more comes */
            for (int i = 0; i < WORKER_CONNS; i++)
                if (w->conn[i].ipcFd >= 0) {
                    conns++;
                    served += drain_conn(w, i, false, until);
                }
        }
        if (p[n - 1].revents && (k = free_conn(w)) >= 0) {
            served += drain_conn(w, k, true, until);
            conns++;
        }
    }
    struct log_line l;
    log_begin(&l, LOG_INFO, "drained");
    log_int(&l, "served", served);
    log_int(&l, "connections", conns);
    log_int(&l, "timed_out", sb_now_ms() >= until);
    log_end(&l);
}

/* Storage and secrets: the engine, the kv, the signing keys and the data key. */
static int open_deps(struct worker *w, const struct fleet_shared *sh)
{
    const struct config *cfg = w->cfg;
    char errstr[128] = "", keys_why[256];

    /* Under the fleet the keys are the master's, loaded and checked at start or
     * reload: every worker of a generation holds the same set, whatever
     * happens to the files meanwhile (a rotation half done, a chmod). */
    if (sh != NULL && sh->keys != NULL) {
        if (jwt_keyset_copy(&w->keys, sh->keys) != 0) {
            log_msg(LOG_ERROR, "worker_init", "cannot take the master's JWT keys");
            return ERR_INTERNAL;
        }
    } else if (app_keys_load(cfg, &w->keys, keys_why) != 0) {
        log_msg(LOG_ERROR, "worker_init", "%s", keys_why);
        return ERR_INVAL;
    }
    if (jwt_jwks(&w->keys, &w->jwks) != 0)
        return ERR_NOMEM;
    if (crypto_keyring_load(&w->ring, cfg->crypto.data_key, errstr) != 0) {
        log_msg(LOG_ERROR, "worker_init", "crypto.data_key: %s", errstr);
        return ERR_INVAL;
    }
    w->pwcost = app_password_cost(cfg);
    if (cfg->redis.url[0] != '\0')
        w->kv = kv_redis_new(cfg->redis.url, cfg->redis.timeout_ms, errstr);
    else if (sh != NULL && sh->kvmem != NULL)
        w->kv = kv_shm_new(sh->kvmem, errstr);
    else
        snprintf(errstr, sizeof errstr, "no Redis configured and no shared memory (run under the fleet)");
    if (w->kv == NULL) {
        log_msg(LOG_ERROR, "worker_init", "kv: %s", errstr);
        return ERR_UNAVAILABLE;
    }
    w->cache_kv = w->kv;
    if (cfg->cache.redis_url[0] != '\0' &&
        (w->cache_kv = kv_redis_new(cfg->cache.redis_url, cfg->redis.timeout_ms, errstr)) == NULL) {
        log_msg(LOG_ERROR, "worker_init", "cache kv: %s", errstr);
        return ERR_UNAVAILABLE;
    }
    if (caching_open(w) != 0) {
        log_msg(LOG_ERROR, "worker_init", "cache: cannot be set up");
        return ERR_INTERNAL;
    }
    if ((w->engine = app_engine_new(cfg, sh != NULL ? sh->data : NULL, errstr)) == NULL) {
        log_msg(LOG_ERROR, "worker_init", "engine: %s", errstr);
        return ERR_UNAVAILABLE;
    }
    return 0;
}

static int worker_init(struct worker *w, const struct config *cfg, int listen_fd, int channel_fd,
                       int slot, int row, const struct fleet_shared *sh)
{
    char errstr[128];

    memset(w, 0, sizeof *w);
    for (int i = 0; i < WORKER_CONNS; i++)
        w->conn[i].ipcFd = -1; /* until FCGX_InitRequest: cleanup must not close fd 0 */
    w->cfg = cfg;
    w->slot = slot;
    w->row = row;
    w->listen_fd = listen_fd;
    w->channel_fd = channel_fd;
    w->shared = sh;
    w->metrics = sh != NULL ? sh->metrics : NULL;
    w->sb = sh != NULL ? sh->sb : NULL;
    if (open_deps(w, sh) != 0)
        return ERR_UNAVAILABLE;
    w->started_ms = sb_now_ms();
    if (FCGX_Init() != 0) {
        log_msg(LOG_ERROR, "worker_init", "FCGX_Init failed");
        return ERR_INTERNAL;
    }
    if (router_init(&w->router, APP_ROUTES, APP_NROUTES, errstr) != 0) {
        log_msg(LOG_ERROR, "worker_init", "route table: %s", errstr);
        return ERR_INTERNAL;
    }
    w->nlabels = app_route_labels(w->labels, METRICS_MAX_ROUTES);
    if ((w->arena = arena_new(ARENA_BLOCK)) == NULL || reqid_gen_init(&w->ids) != 0) {
        log_msg(LOG_ERROR, "worker_init", "out of memory or no random source");
        return ERR_NOMEM;
    }
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        log_msg(LOG_ERROR, "worker_init", "listen socket: %s", strerror(errno));
        return ERR_IO;
    }
    for (int i = 0; i < WORKER_CONNS; i++)
        FCGX_InitRequest(&w->conn[i], listen_fd, 0);
    return 0;
}

static void worker_cleanup(struct worker *w)
{
    for (int i = 0; i < WORKER_CONNS; i++)
        if (w->conn[i].ipcFd >= 0) {
            close(w->conn[i].ipcFd);
            w->conn[i].ipcFd = -1;
        }
    router_cleanup(&w->router);
    caching_close(w);
    openapi_forget(w);
    arena_free(w->arena);
    engine_free(w->engine);
    if (w->cache_kv != w->kv)
        kv_free(w->cache_kv);
    kv_free(w->kv);
    jwt_keyset_free(&w->keys);
    crypto_keyring_cleanup(&w->ring);
    free(w->jwks);
}

int worker_run(const struct config *cfg, int listen_fd, int channel_fd, int slot, int row,
               const struct fleet_shared *sh)
{
    struct worker w;
    const char *why = NULL, *want = NULL;
    /* fcgi2 reads and writes with bare read()/write(): a retire signal must never
     * cut the request in hand. They arrive only inside ppoll() (below); SA_RESTART
     * keeps that true should one ever be delivered elsewhere. */
    struct sigaction sa = {.sa_handler = on_retire, .sa_flags = SA_RESTART};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The retire signals are blocked except inside ppoll(): one that arrives
     * while a request runs waits there, and one that arrives between the loop's
     * check and the wait cannot be missed until the next tick. */
    sigset_t retire_set, waiting;
    sigemptyset(&retire_set);
    sigaddset(&retire_set, SIGTERM);
    sigaddset(&retire_set, SIGINT);
    sigaddset(&retire_set, SIGHUP);
    sigprocmask(SIG_BLOCK, &retire_set, &waiting);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGHUP);
#ifdef TESSERA_TEST_HOOKS
    /* The fleet tests' crash loop: a worker that dies before it is ready. */
    if (getenv("TESSERA_TEST_CRASH_ON_START") != NULL)
        abort();
#endif
    if (worker_init(&w, cfg, listen_fd, channel_fd, slot, row, sh) != 0) {
        worker_cleanup(&w);
        return 1;
    }
    struct sb_row *me = my_row(&w);
    if (me != NULL)
        me->state = SB_IDLE; /* ready: the master may now retire our predecessor */
    log_msg(LOG_INFO, "worker_ready", "serving");
    log_defer(true); /* access lines go out a poll round at a time */

    while (!worker_retire && why == NULL) {
        struct pollfd p[WORKER_CONNS + 2];
        int owner[WORKER_CONNS + 2], n = 0;
        int spare = free_conn(&w);

        if (spare >= 0) {
            p[n] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
            owner[n++] = -1;
        }
        if (channel_fd >= 0) {
            p[n] = (struct pollfd){.fd = channel_fd, .events = POLLIN};
            owner[n++] = -2;
        }
        for (int i = 0; i < WORKER_CONNS; i++)
            if (w.conn[i].ipcFd >= 0) {
                p[n] = (struct pollfd){.fd = w.conn[i].ipcFd, .events = POLLIN};
                owner[n++] = i;
            }
        struct timespec tick = {.tv_sec = POLL_TICK_MS / 1000, .tv_nsec = (POLL_TICK_MS % 1000) * 1000000L};
        log_flush(); /* nothing is held while the worker waits */
        int ready = ppoll(p, (nfds_t)n, &tick, &waiting);
        if (ready < 0 && errno != EINTR) {
            log_msg(LOG_ERROR, "worker_poll", "%s", strerror(errno));
            break;
        }
        if (ready <= 0) {
            if (getppid() == 1 && row >= 0) {
                why = "master_gone";
                break;
            }
            if (me != NULL)
                me->rss_kb = sb_rss_kb(getpid());
            continue;
        }
        for (int j = 0; j < n && why == NULL; j++) {
            if (!p[j].revents)
                continue;
            /* a request already waiting on a kept connection goes to the successor with it */
            if (owner[j] != -2 && retire_asked(&retire_set))
                break;
            if (owner[j] >= 0)
                serve(&w, &w.conn[owner[j]]);
            else if (owner[j] == -2) {
                if (adopt(&w) == ERR_NOTFOUND)
                    why = "master_gone";
                continue;
            } else if ((spare = free_conn(&w)) >= 0)
                serve(&w, &w.conn[spare]);
            if (want != NULL || (want = recycle_reason(&w)) == NULL)
                continue;
            if (me == NULL)
                why = want; /* no master to replace us: just leave */
            else
                snprintf(me->want_exit, sizeof me->want_exit, "%s", want);
        }
    }
    log_defer(false);
    if (me != NULL)
        me->state = SB_RETIRING;
    /* a successor takes our connections only on a reload or a recycle */
    if (me != NULL && why == NULL && !w.sb->stopping)
        hand_over(&w);
    else
        drain(&w);
    log_msg(LOG_INFO, "worker_exit", "leaving after %llu requests: %s",
            (unsigned long long)w.served, why != NULL ? why : "asked to stop");
    worker_cleanup(&w);
    return 0;
}
