/* fdpass: passing open file descriptors between processes over a unix socket
 * (SCM_RIGHTS). The fleet uses it to hand a retiring worker's idle kept-alive
 * FastCGI connections to its successor, so nginx never finds a connection it
 * cached closed under it. */
#ifndef LIB_FDPASS_H
#define LIB_FDPASS_H

#include "core/err.h"

#define FDPASS_MAX 64   /* descriptors per message */

/* Sends fds[0..n) (n ≤ FDPASS_MAX) in one message without blocking (ERR_IO
 * when the peer's queue is full); the caller still owns and closes its copies. */
int fdpass_send(int sock, const int *fds, int n) ERR_MUST_CHECK;

/* Receives one message; Returns owned descriptors (close-on-exec) in fds, count in *n.
 * ERR_NOTFOUND when the peer has closed, ERR_IO on error (EAGAIN included). */
int fdpass_recv(int sock, int *fds, int max, int *n) ERR_MUST_CHECK;

#endif
