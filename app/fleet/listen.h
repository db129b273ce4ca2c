/* listen: what the master binds and writes before it forks: the FastCGI
 * listening socket (fleet.listen: a unix path, moded and owned for nginx, or
 * host:port) and the pid file. It makes them; removing them at exit is the
 * fleet's (only what it made). Failures return -1 with errstr naming the key. */
#ifndef APP_FLEET_LISTEN_H
#define APP_FLEET_LISTEN_H

#include "core/config.h"

/* Whether fleet.listen is a unix socket path (a '/', or no ':') rather than host:port. */
int listen_is_unix(const char *listen);
/* The listening socket on the unix path fleet.listen: a leftover file nobody
 * answers on is taken over, a live one refused; mode listen_mode, owner listen_owner. */
int listen_bind_unix(const struct config *cfg, char errstr[128]);
/* The listening socket on fleet.listen's host:port (empty host: every address). */
int listen_bind_tcp(const struct config *cfg, char errstr[128]);
/* Writes our pid to path; refuses while the master it names still runs (a
 * stale file, dead pid or another program's, is replaced). */
int listen_pid_file(const char *path, char errstr[128]);

#endif
