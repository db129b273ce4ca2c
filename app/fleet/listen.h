/* listen: what the master binds and writes before it forks: the FastCGI
 * listening socket (fleet.listen: a unix path, moded and owned for nginx, or
 * host:port), the one way a unix listener is made (control.c's too), and the
 * pid file. It makes them; removing them at exit is the fleet's (only what it
 * made). Failures return a negative err.h code with errstr naming the key. */
#ifndef APP_FLEET_LISTEN_H
#define APP_FLEET_LISTEN_H

#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"

/* Whether fleet.listen is a unix socket path (a '/', or no ':') rather than host:port. */
int listen_is_unix(const char *listen);

/* What differs between the unix listeners the master makes. */
struct listen_unix_opts {
    const char *key;            /* the config key naming the path, for errstr ("fleet.listen") */
    int flags;                  /* socket() type flags besides SOCK_STREAM (SOCK_CLOEXEC, SOCK_NONBLOCK) */
    mode_t mode;                /* the socket file's mode, never wider even before the chmod */
    const char *owner;          /* "user[:group]" (fleet.listen_owner) to chown it to; "" keeps ours */
    int backlog;
};
/* Returns owned: a unix socket listening on path. A leftover file nobody
 * answers on is taken over (a crash leaves one); a live one is ERR_CONFLICT. */
int listen_unix(const char *path, const struct listen_unix_opts *o, char errstr[256]) ERR_MUST_CHECK;

/* Returns owned: the FastCGI socket on fleet.listen, unix (listen_mode,
 * listen_owner) or tcp (empty host: every address), for the workers to accept on. */
int listen_open(const struct config *cfg, char errstr[256]) ERR_MUST_CHECK;

/* Writes our pid to path; ERR_CONFLICT while the master it names still runs
 * (a stale file, dead pid or another program's, is replaced). */
int listen_pid_file(const char *path, char errstr[256]) ERR_MUST_CHECK;

#endif
