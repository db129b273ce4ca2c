/* The master's control socket: a unix stream socket, owner-only, through which
 * `tessera status|reload|stop` reach a running fleet. One line in ("status"),
 * the reply out, then close: simple enough to drive with socat in a pinch.
 * A reply that starts with "error:" is a refusal (a reload with a bad config). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "app.h"

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return ERR_TOOBIG;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

int control_listen(const char *path, char errstr[128])
{
    struct sockaddr_un sa;
    int fd = -1;

    if (fill_addr(&sa, path) != 0) {
        snprintf(errstr, 128, "control socket path too long: %s", path);
        return -1;
    }
    /* A socket file nobody answers on is left over from a crash: reuse the path. */
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        snprintf(errstr, 128, "a fleet is already running on %s", path);
        close(fd);
        return -1;
    }
    close(fd);
    unlink(path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        goto fail;
    mode_t old = umask(0177); /* owner-only from the first instant */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0)
        goto fail;
    return fd;
fail:
    snprintf(errstr, 128, "control socket %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int control_client(const char *path, const char *cmd)
{
    struct sockaddr_un sa;
    char buf[4096];
    int fd, rc = 1;
    ssize_t n;

    if (fill_addr(&sa, path) != 0) {
        fprintf(stderr, "tessera: control socket path too long: %s\n", path);
        return 1;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "tessera: no fleet answers on %s: %s\n", path, strerror(errno));
        goto out;
    }
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* One send, and no SIGPIPE: the master may answer and close before a
     * second write would land. */
    char line[CONTROL_LINE_MAX];
    int len = snprintf(line, sizeof line, "%s\n", cmd);
    if (len < 0 || (size_t)len >= sizeof line) {
        fprintf(stderr, "tessera: control command too long\n");
        goto out;
    }
    if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "tessera: control socket: %s\n", strerror(errno));
        explicit_bzero(line, sizeof line);
        goto out;
    }
    explicit_bzero(line, sizeof line); /* admin-create carries a password */
    rc = 0;
    FILE *dst = stdout;
    for (int first = 1; (n = read(fd, buf, sizeof buf)) > 0; first = 0) {
        if (first && n >= 6 && memcmp(buf, "error:", 6) == 0) {
            dst = stderr;
            rc = 1;
        }
        if (fwrite(buf, 1, (size_t)n, dst) != (size_t)n) {
            rc = 1;
            break;
        }
    }
    if (n < 0) {
        fprintf(stderr, "tessera: control socket: %s\n", strerror(errno));
        rc = 1;
    }
out:
    if (fd >= 0)
        close(fd);
    return rc;
}
