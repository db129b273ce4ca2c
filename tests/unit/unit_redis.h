/* unit_redis: a real redis-server for the tests of the kv and of what stands on
 * it (the cache): started by the test on a free loopback port and a unix socket
 * in a fresh folder, stopped at the end (SIGCONT first: a test may have frozen
 * it), and an admin connection for FLUSHALL, CONFIG, CLIENT KILL. No
 * redis-server means the suite fails, never a skip. Include after unit.h. */
#ifndef TESTS_UNIT_REDIS_H
#define TESTS_UNIT_REDIS_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include <hiredis.h>

static struct {
    pid_t pid;
    int port;
    char dir[64];
    char sock[128];
    char url[64];
} srv;

static inline int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static inline int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static inline redisContext *admin(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv.port, tv);

    if (c != NULL && c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK)
        return c;
    redisFree(c);
    return NULL;
}

/* Runs one admin command; true if it got a non-error reply. */
static inline bool admin_cmd(const char *fmt, ...)
{
    redisContext *c = admin();
    redisReply *rep = NULL;
    va_list ap;
    bool ok;

    if (c == NULL)
        return false;
    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
    freeReplyObject(rep);
    redisFree(c);
    return ok;
}

/* Starts redis-server on srv.port and waits until it answers PING. */
static inline bool redis_start(char why[256])
{
    char port[16], log[128];
    int64_t deadline = now_ms() + 10000;
    int status;

    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(log, sizeof log, "%s/redis.log", srv.dir);
    srv.pid = fork();
    if (srv.pid < 0) {
        snprintf(why, 256, "fork: %s", strerror(errno));
        return false;
    }
    if (srv.pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", srv.dir, "--unixsocket", srv.sock,
               "--unixsocketperm", "700", "--daemonize", "no", (char *)NULL);
        fprintf(stderr, "exec redis-server: %s\n", strerror(errno));
        _exit(127);
    }
    while (now_ms() < deadline) {
        if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
            snprintf(why, 256, "redis-server exited (status %d%s); see %s", WEXITSTATUS(status),
                     WEXITSTATUS(status) == 127 ? ": is the redis-server package installed?" : "",
                     log);
            srv.pid = 0;
            return false;
        }
        if (admin_cmd("PING"))
            return true;
        sleep_ms(20);
    }
    snprintf(why, 256, "redis-server did not answer within 10 s; see %s", log);
    return false;
}

static inline void redis_stop(void)
{
    if (srv.pid > 0) {
        kill(srv.pid, SIGCONT);
        kill(srv.pid, SIGTERM);
        waitpid(srv.pid, NULL, 0);
        srv.pid = 0;
    }
}

/* Makes the folder, picks the port and starts the server: true, or false with why. */
static inline bool redis_setup(char why[256])
{
    snprintf(srv.dir, sizeof srv.dir, "/tmp/tessera-redis-XXXXXX");
    if (mkdtemp(srv.dir) == NULL) {
        snprintf(why, 256, "mkdtemp: %s", strerror(errno));
        srv.dir[0] = '\0';
        return false;
    }
    snprintf(srv.sock, sizeof srv.sock, "%s/redis.sock", srv.dir);
    srv.port = free_port();
    snprintf(srv.url, sizeof srv.url, "redis://127.0.0.1:%d", srv.port);
    if (srv.port <= 0) {
        snprintf(why, 256, "no free port");
        return false;
    }
    return redis_start(why);
}

/* Stops the server; removes its folder unless the suite failed (its redis.log
 * is kept for a post-mortem). */
static inline void redis_teardown(bool failed)
{
    redis_stop();
    if (!failed && srv.dir[0] != '\0')
        unit_rmtree(srv.dir);
}

#endif
