/* listen: what the master binds and writes before it forks: the FastCGI
 * listening socket (a unix path, owned and moded for nginx, or host:port) and
 * the pid file that names the running master. Only the making: the fleet
 * removes what it made, at exit. */
#include <errno.h>
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
static int chown_socket(const char *path, const char *owner, char errstr[128])
{
    char user[64];
    const char *colon = strchr(owner, ':');
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;

    snprintf(user, sizeof user, "%.*s", colon ? (int)(colon - owner) : (int)strlen(owner), owner);
    if (user[0] != '\0') {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL) {
            snprintf(errstr, 128, "fleet.listen_owner: no user %s", user);
            return -1;
        }
        uid = pw->pw_uid;
    }
    if (colon != NULL && colon[1] != '\0') {
        struct group *gr = getgrnam(colon + 1);
        if (gr == NULL) {
            snprintf(errstr, 128, "fleet.listen_owner: no group %s", colon + 1);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (chown(path, uid, gid) < 0) {
        snprintf(errstr, 128, "fleet.listen_owner: chown %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int listen_bind_unix(const struct config *cfg, char errstr[128])
{
    const char *path = cfg->fleet.listen;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(errstr, 128, "fleet.listen: path too long");
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    /* A socket file that nobody answers on is a leftover: take it over. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        snprintf(errstr, 128, "fleet.listen: %s is in use by a running fleet", path);
        close(fd);
        return -1;
    }
    close(fd);
    unlink(path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        chmod(path, (mode_t)cfg->fleet.listen_mode) < 0)
        goto fail;
    if (cfg->fleet.listen_owner[0] != '\0' && chown_socket(path, cfg->fleet.listen_owner, errstr) < 0) {
        close(fd);
        return -1;
    }
    if (listen(fd, 1024) < 0)
        goto fail;
    return fd;
fail:
    snprintf(errstr, 128, "fleet.listen: %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int listen_bind_tcp(const struct config *cfg, char errstr[128])
{
    char host[256];
    const char *colon = strrchr(cfg->fleet.listen, ':');
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int fd = -1, one = 1;

    snprintf(host, sizeof host, "%.*s", (int)(colon - cfg->fleet.listen), cfg->fleet.listen);
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(errstr, 128, "fleet.listen: %s: %s", cfg->fleet.listen, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(errstr, 128, "fleet.listen: %s: %s", cfg->fleet.listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
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
int listen_pid_file(const char *path, char errstr[128])
{
    FILE *f = fopen(path, "r");
    int pid = 0;

    if (f != NULL) {
        if (fscanf(f, "%d", &pid) == 1 && pid > 0 && pid != getpid() && is_our_program(pid)) {
            fclose(f);
            snprintf(errstr, 128, "fleet.pid_file: master %d from %s is still running", pid, path);
            return -1;
        }
        fclose(f);
    }
    char tmp[CONFIG_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) < 0) {
        snprintf(errstr, 128, "fleet.pid_file: %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
