/* listen: what the master binds and writes before it forks: the FastCGI
 * listening socket (a unix path, owned and moded for nginx, or host:port) and
 * the pid file that names the running master. Only the making: the fleet
 * removes what it made, at exit. */
#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fleet/listen.h"

int listen_is_unix(const char *listen)
{
    return strchr(listen, '/') != NULL || strchr(listen, ':') == NULL;
}

/* Owner "user[:group]" of the unix socket, for nginx to reach it. */
static int chown_socket(const char *path, const char *owner, char errstr[256])
{
    char user[64];
    const char *colon = strchr(owner, ':');
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;

    snprintf(user, sizeof user, "%.*s", colon ? (int)(colon - owner) : (int)strlen(owner), owner);
    if (user[0] != '\0') {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL) {
            snprintf(errstr, 256, "fleet.listen_owner: no user %s", user);
            return ERR_NOTFOUND;
        }
        uid = pw->pw_uid;
    }
    if (colon != NULL && colon[1] != '\0') {
        struct group *gr = getgrnam(colon + 1);
        if (gr == NULL) {
            snprintf(errstr, 256, "fleet.listen_owner: no group %s", colon + 1);
            return ERR_NOTFOUND;
        }
        gid = gr->gr_gid;
    }
    if (chown(path, uid, gid) < 0) {
        snprintf(errstr, 256, "fleet.listen_owner: chown %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    return 0;
}

int listen_unix(const char *path, const struct listen_unix_opts *o, char errstr[256])
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc;

    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(errstr, 256, "%s: path too long (at most %zu bytes): %s", o->key, sizeof sa.sun_path - 1, path);
        return ERR_TOOBIG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    /* A socket file that nobody answers on is a leftover (a crash): take it over. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        snprintf(errstr, 256, "%s: %s is in use by a running fleet", o->key, path);
        close(fd);
        return ERR_CONFLICT;
    }
    close(fd);
    unlink(path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | o->flags, 0)) < 0)
        goto fail;
    mode_t old = umask(~o->mode & 0777); /* no wider than mode from the first instant */
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || chmod(path, o->mode) < 0)
        goto fail;
    if (o->owner[0] != '\0' && (rc = chown_socket(path, o->owner, errstr)) != 0) {
        close(fd);
        return rc;
    }
    if (listen(fd, o->backlog) < 0)
        goto fail;
    return fd;
fail:
    snprintf(errstr, 256, "%s: %s: %s", o->key, path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return ERR_IO;
}

static int bind_tcp(const struct config *cfg, char errstr[256])
{
    char host[256];
    const char *colon = strrchr(cfg->fleet.listen, ':');
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int fd = -1, one = 1;

    snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->fleet.listen), cfg->fleet.listen);
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(errstr, 256, "fleet.listen: %s: %s", cfg->fleet.listen, gai_strerror(rc));
        return ERR_INVAL;
    }
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(errstr, 256, "fleet.listen: %s: %s", cfg->fleet.listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = ERR_IO;
    }
    freeaddrinfo(ai);
    return fd;
}

int listen_open(const struct config *cfg, char errstr[256])
{
    /* No SOCK_CLOEXEC: the workers are forked, never exec'd, and serve on it. */
    const struct listen_unix_opts o = {
        .key = "fleet.listen",
        .flags = 0,
        .mode = (mode_t)cfg->fleet.listen_mode,
        .owner = cfg->fleet.listen_owner,
        .backlog = 1024,
    };

    return listen_is_unix(cfg->fleet.listen) ? listen_unix(cfg->fleet.listen, &o, errstr) : bind_tcp(cfg, errstr);
}

/* Whether pid is alive and runs the same program as we do: after a reboot or
 * a long while, the pid of a stale file may belong to anything. */
static int is_our_program(pid_t pid)
{
    char path[64], theirs[64] = "", ours[64] = "";
    FILE *f;

    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    if ((f = fopen(path, "r")) != NULL) {
        if (fgets(theirs, sizeof theirs, f) == NULL)
            theirs[0] = '\0';
        fclose(f);
    }
    if ((f = fopen("/proc/self/comm", "r")) != NULL) {
        if (fgets(ours, sizeof ours, f) == NULL)
            ours[0] = '\0';
        fclose(f);
    }
    /* no /proc: trust the live pid, refusing to start is the safe side */
    return theirs[0] == '\0' || ours[0] == '\0' || strcmp(theirs, ours) == 0;
}

/* The pid file names the running master; a stale one (dead pid, or a pid now
 * used by another program) is replaced. */
int listen_pid_file(const char *path, char errstr[256])
{
    FILE *f = fopen(path, "r");
    int pid = 0;

    if (f != NULL) {
        if (fscanf(f, "%d", &pid) == 1 && pid > 0 && pid != getpid() && is_our_program(pid)) {
            fclose(f);
            snprintf(errstr, 256, "fleet.pid_file: master %d from %s is still running", pid, path);
            return ERR_CONFLICT;
        }
        fclose(f);
    }
    char tmp[CONFIG_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    bool ok = (f = fopen(tmp, "w")) != NULL;

    if (ok) {
        ok = fprintf(f, "%d\n", (int)getpid()) >= 0;
        ok = fclose(f) == 0 && ok; /* closed whatever the write did */
    }
    if (!ok || rename(tmp, path) < 0) {
        snprintf(errstr, 256, "fleet.pid_file: %s: %s", path, strerror(errno));
        unlink(tmp);
        return ERR_IO;
    }
    return 0;
}
