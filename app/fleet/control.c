/* The master's control socket, both ends: the listener and the server the
 * master polls, and the client `tessera status|reload|stop|admin create` runs.
 * One line in ("status"), the reply out, then close: simple enough to drive
 * with socat in a pinch. A reply that starts with "error:" is a refusal (a
 * reload with a bad config). The server never blocks the master's loop for
 * long: every read and write has a short timeout, slow work goes to a child. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "app.h"
#include "core/buf.h"
#include "core/log.h"
#include "fleet/control.h"
#include "fleet/listen.h"

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return ERR_TOOBIG;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

int control_listen(const char *path, char errstr[256])
{
    /* Non-blocking: the master polls it, and a client that went away between
     * poll and accept must not stall the loop. Owner-only: it stops the fleet. */
    const struct listen_unix_opts o = {
        .key = "fleet.control",
        .flags = SOCK_CLOEXEC | SOCK_NONBLOCK,
        .mode = 0600,
        .owner = "",
        .backlog = 16,
    };

    return listen_unix(path, &o, errstr);
}

/* `tessera admin create`: the memory engine lives in this process's region, so
 * the master makes the account (through the configured engine either way, so
 * the command is the same on postgres). Request: "admin-create EMAIL\nPASSWORD". */
static int control_admin_create(const struct control_target *t, char *args, struct buf *out)
{
    struct crypto_keyring ring;
    struct password_cost cost = app_password_cost(t->cfg);
    char why[256] = "";
    char *nl = strchr(args, '\n');
    int rc;

    if (nl == NULL)
        return buf_puts(out, "error: expected EMAIL, a newline and the password\n");
    *nl = '\0';
    char *password = nl + 1;
    password[strcspn(password, "\r\n")] = '\0';
    if (crypto_keyring_load(&ring, t->cfg->crypto.data_key, why) != 0)
        return buf_printf(out, "error: crypto.data_key: %s\n", why);
    struct engine *e = app_engine_new(t->cfg, t->data, why);
    rc = e == NULL ? ERR_UNAVAILABLE : admin_create(e, &ring, &cost, args, password, why, sizeof why);
    explicit_bzero(password, strlen(password));
    engine_free(e);
    crypto_keyring_cleanup(&ring);
    if (rc == 0)
        log_msg(LOG_INFO, "admin_created", "%s", why); /* ids only: no email, no password */
    return buf_printf(out, "%s%s\n", rc == 0 ? "" : "error: ", why);
}

/* One command per connection. A reply starting "error:" makes the client exit 1.
 * Served while stopping too: status stays useful, and a connection left
 * pending would wake poll() at once, forever. */
void control_serve(int listen_fd, const struct control_target *t)
{
    int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    char cmd[CONTROL_LINE_MAX] = "", errstr[256];
    struct buf out;

    if (c < 0)
        return;
    /* a client that connects and says nothing must not hold the master's loop */
    struct timeval tv = {.tv_usec = 100 * 1000};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ssize_t n = read(c, cmd, sizeof cmd - 1);
    if (n > 0)
        cmd[n] = '\0';
    buf_init(&out, 1 << 20);
    int rc = 0;
    if (strncmp(cmd, "admin-create ", 13) == 0) {
        /* Hashing takes a while and the engine's lock may be held by a worker
         * the master itself must be free to kill (request_timeout): a child
         * does the work and answers; the master goes back to its loop. */
        pid_t pid = t->stopping ? -1 : fork();
        if (pid == 0) {
            rc = control_admin_create(t, cmd + 13, &out);
            explicit_bzero(cmd, sizeof cmd);
            if (rc == 0)
                send(c, out.p, out.len, MSG_NOSIGNAL);
            _exit(0);
        }
        explicit_bzero(cmd, sizeof cmd);
        if (pid > 0) {
            buf_cleanup(&out);
            close(c);
            return;
        }
        rc = buf_puts(&out, t->stopping ? "error: stopping\n" : "error: cannot fork\n");
        goto reply;
    }
    cmd[strcspn(cmd, "\r\n")] = '\0';
    if (strcmp(cmd, "status") == 0) {
        rc = sb_render_table(t->sb, &out);
    } else if (strcmp(cmd, "status-json") == 0) {
        cJSON *j = sb_to_json(t->sb);
        char *s = j ? cJSON_PrintUnformatted(j) : NULL;
        rc = s ? buf_printf(&out, "%s\n", s) : ERR_NOMEM;
        cJSON_free(s);
        cJSON_Delete(j);
    } else if (strcmp(cmd, "reload") == 0) {
        if (t->reload(t->fleet, errstr) == 0)
            rc = buf_printf(&out, "reloading (generation %u)\n", t->sb->generation);
        else
            rc = buf_printf(&out, "error: reload refused: %s\n", errstr);
    } else if (strcmp(cmd, "stop") == 0) {
        t->stop(t->fleet, "stop command");
        rc = buf_puts(&out, "stopping\n");
    } else {
        rc = buf_puts(&out, "error: unknown command; try status, status-json, reload, stop\n");
    }
reply:
    if (rc == 0 && out.len > 0) {
        size_t off = 0;
        while (off < out.len) {
            ssize_t w = send(c, out.p + off, out.len - off, MSG_NOSIGNAL);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    buf_cleanup(&out);
    close(c);
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
