/* app: what the program's files share: the worker context every handler
 * receives, the route table's row type, and the one place errors become HTTP
 * statuses. Handlers reach storage only through the engine interface (later);
 * nothing here includes libpq or hiredis. */
#ifndef APP_APP_H
#define APP_APP_H

#include <fcgiapp.h>
#include <signal.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "http.h"
#include "metrics.h"
#include "reqid.h"
#include "router.h"
#include "scoreboard.h"

#define WORKER_CONNS 128        /* kept-alive FastCGI connections per worker */

/* Everything a worker process owns; made at start, freed at exit. The only
 * mutable state outside it are the signal flags in worker.c. */
struct worker {
    const struct config *cfg;
    int slot;                   /* logical fleet slot (metrics block) */
    int row;                    /* scoreboard row; -1 when run without a fleet */
    int listen_fd;
    int channel_fd;             /* to the master (connection hand-over); -1 when none */
    struct metrics *metrics;    /* shared; may be NULL (standalone worker) */
    struct scoreboard *sb;      /* shared; may be NULL */
    struct router router;
    struct arena *arena;        /* the current request's; reset after each */
    struct reqid_gen ids;
    const char *labels[METRICS_MAX_ROUTES];
    size_t nlabels;
    uint64_t served;
    int64_t started_ms;
    FCGX_Request conn[WORKER_CONNS];
};

/* A handler answers through r (http_send*, respond_*) and returns 0, or returns
 * an err.h code and lets the dispatcher answer with the mapped status. */
typedef int (*handler_fn)(struct worker *w, struct http_request *r);

struct app_route {
    handler_fn fn;
    const char *label;          /* metrics label, e.g. "GET /v1/auth/me" */
};

/* routes.c: the route table, its router rows and metrics labels. */
extern const struct route APP_ROUTES[];
extern const size_t APP_NROUTES;
/* Fills out with the metrics labels: one per route, then "unmatched" (the
 * index for requests no route took); returns how many. */
size_t app_route_labels(const char **out, size_t max);

/* respond.c: err.h code → HTTP status and error code; the only such mapping. */
int respond_status(int err, const char **code);
/* Sends the error envelope for err with message (a constant or arena string). */
int respond_error(struct http_request *r, int err, const char *message);
/* Sends an error envelope with an explicit status and code. */
int respond_fail(struct http_request *r, int status, const char *code, const char *message);

/* ops.c */
int handle_ops_healthz(struct worker *w, struct http_request *r);
int handle_ops_readyz(struct worker *w, struct http_request *r);
int handle_ops_metrics(struct worker *w, struct http_request *r);
#ifdef TESSERA_TEST_HOOKS
int handle_debug_sleep(struct worker *w, struct http_request *r);
int handle_debug_echo(struct worker *w, struct http_request *r);
#endif

/* worker.c: serves on listen_fd until told to stop; returns the exit status. */
int worker_run(const struct config *cfg, int listen_fd, int channel_fd, int slot, int row,
               struct metrics *m, struct scoreboard *sb);

/* fleet.c: the master; returns the process exit status. */
int fleet_run(const struct config *cfg, const char *config_path);

/* control.c: the master's control socket, and its client commands. */
int control_listen(const char *path, char errstr[128]);
/* Sends cmd ("status", "status-json", "reload", "stop") and copies the reply to stdout. */
int control_client(const char *path, const char *cmd);

#endif
