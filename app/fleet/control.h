/* control: the master's control socket, both ends. A unix stream socket,
 * owner-only, through which `tessera status|reload|stop|admin create` reach a
 * running fleet: one request line in, the reply out, then close (simple enough
 * to drive with socat in a pinch). A reply that starts with "error:" is a
 * refusal. The server knows the master only as a struct control_target. */
#ifndef APP_FLEET_CONTROL_H
#define APP_FLEET_CONTROL_H

#include "core/config.h"
#include "core/err.h"
#include "fleet/scoreboard.h"

#define CONTROL_LINE_MAX 2048       /* one request line, both ends */

struct fleet;
struct shm_region;

/* The master as its control server sees it: what the commands read, and the
 * two things they ask of it. The server never looks inside struct fleet. */
struct control_target {
    const struct config *cfg;       /* admin-create's data key, password cost and engine */
    struct shm_region *data;        /* the memory engine's region; NULL on postgres */
    struct scoreboard *sb;          /* status, status-json, the generation a reload starts */
    int stopping;                   /* the master is stopping: admin-create is refused */
    struct fleet *fleet;            /* opaque here; passed back to reload and stop */
    int (*reload)(struct fleet *f, char errstr[256]); /* 0, or refused with errstr */
    void (*stop)(struct fleet *f, const char *why);
};

/* Returns owned: the master's listener on path (fleet.control), owner-only
 * (0600), non-blocking; made as listen_unix makes every unix listener. */
int control_listen(const char *path, char errstr[256]) ERR_MUST_CHECK;
/* Serves one connection waiting on listen_fd: reads its command, answers and
 * closes it, holding the master's loop at most ~100 ms (admin-create runs in a
 * child). Commands: status, status-json, reload, stop, admin-create. */
void control_serve(int listen_fd, const struct control_target *t);
/* Sends cmd ("status", "status-json", "reload", "stop") and copies the reply
 * to stdout (to stderr when it is an error); returns the exit status. */
int control_client(const char *path, const char *cmd);

#endif
