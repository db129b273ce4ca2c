/* The fleet master (the PM2 / PHP-FPM part). It binds the FastCGI socket once,
 * forks the workers that accept on it, and never serves a request itself.
 *
 * Slots are the unit of supervision: each has a role and at most one current
 * process, plus, during a replacement, the retiring one. Replacing a slot
 * (reload, recycle on max_requests or max_memory) is always the same dance:
 * fork the successor, wait until it reports ready in the scoreboard, then ask
 * the predecessor to finish its request and leave. The predecessor hands its
 * idle kept-alive FastCGI connections to the master over its channel, and the
 * master passes them to the successor: nginx never finds a cached upstream
 * connection closed under it, so not even a POST it had already sent fails.
 *
 * A first crash restarts at once; repeated quick crashes back off
 * exponentially (capped), a crash loop is logged, never spun; a successor that
 * keeps dying before it is ready is given up on and the old worker kept.
 * Everything is driven from one poll() loop over a signalfd, the control socket
 * and the workers' channels; no work happens in signal context, and nothing in
 * the loop blocks (a stuck master would stop every restart and reload). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "core/buf.h"
#include "store/mem/engine_mem.h"
#include "fleet/fdpass.h"
#include "core/log.h"
#include "store/mem/shm.h"

#define TICK_MS 200
#define TICK_BUSY_MS 20             /* while a successor starts: promote it promptly */
#define READY_TIMEOUT_MS 15000      /* a successor not ready by then is abandoned */
#define QUICK_CRASH_MS 5000         /* a death sooner than this after start counts toward backoff */
#define CRASH_LOOP_AT 3

struct proc {
    pid_t pid;                      /* 0: none */
    int row;                        /* scoreboard row */
    int chan;                       /* master's end of the hand-over channel */
    uint32_t gen;                   /* config generation it was started with */
    int killed;                     /* SIGKILL sent (request or retire timeout): say it once */
    int64_t kill_at_ms;             /* retiring: killed if still alive then (graceful_timeout) */
};

#define PROC_NONE ((struct proc){.pid = 0, .row = -1, .chan = -1})

struct slot {
    int role;                       /* enum sb_role */
    struct proc cur;                /* the serving process */
    struct proc old;                /* a retiring predecessor, if any */
    struct proc next;               /* a successor being started, if any */
    char replace_why[32];           /* non-empty: replace cur when possible */
    int64_t next_start_ms;          /* when cur is empty: earliest restart */
    int64_t next_deadline_ms;       /* successor must be ready by then */
    int64_t next_try_ms;            /* after a successor died: earliest new attempt */
    int quick_crashes;
    int successor_fails;            /* successors that died before ready, in a row */
    uint32_t restarts;
};

struct fleet {
    struct config cfg;
    const char *config_path;
    int listen_fd;
    int control_fd;
    int sig_fd;
    struct scoreboard *sb;
    struct metrics *metrics;
    struct fleet_shared shared;     /* what every worker inherits */
    struct jwt_keyset keys;         /* the config's JWT keys (shared.keys); workers copy them */
    const char *const *seeds;       /* folders for --seed, loaded in order */
    int nseeds;
    struct slot slot[SB_MAX_ROWS];
    int nslots;
    int stopping;
    int64_t stop_deadline_ms;
    int want;                       /* slots wanted by the config; [want, nslots) are retiring */
    int own_pid_file;               /* we wrote it: remove it on exit, and only then */
    pid_t maint_pid;                /* the store's upkeep (maintain) running now; 0 when none */
    int64_t maint_next_ms;          /* when the next one starts */
};

static int is_unix_path(const char *listen)
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

static int bind_unix(const struct config *cfg, char errstr[128])
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

static int bind_tcp(const struct config *cfg, char errstr[128])
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
static int write_pid_file(const char *path, char errstr[128])
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

/* Creates the parent folder of a run-time path ("build/run/x.sock"). */
static void make_parent(const char *path)
{
    char dir[CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
}

static int free_row(struct fleet *f)
{
    for (int i = 0; i < SB_MAX_ROWS; i++)
        if (f->sb->row[i].state == SB_FREE && f->sb->row[i].pid == 0)
            return i;
    return -1;
}

static void proc_clear(struct fleet *f, struct proc *p, int free_the_row)
{
    if (p->chan >= 0)
        close(p->chan);
    if (free_the_row && p->row >= 0)
        memset(&f->sb->row[p->row], 0, sizeof f->sb->row[p->row]);
    *p = PROC_NONE;
}

/* Forks a worker for slot s into a fresh scoreboard row; fills *p. */
static int spawn(struct fleet *f, int s, struct proc *p)
{
    struct slot *sl = &f->slot[s];
    int row = free_row(f), sv[2];

    if (row < 0) {
        log_msg(LOG_ERROR, "spawn_failed", "slot %d: no free scoreboard row", s);
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_msg(LOG_ERROR, "spawn_failed", "slot %d: socketpair: %s", s, strerror(errno));
        return -1;
    }
    struct sb_row *r = &f->sb->row[row];
    memset(r, 0, sizeof *r);
    r->slot = s;
    r->role = sl->role;
    r->state = SB_STARTING;
    r->restarts = sl->restarts;
    r->started_ms = sb_now_ms();
    r->generation = f->sb->generation;
    pid_t pid = fork();
    if (pid < 0) {
        log_msg(LOG_ERROR, "spawn_failed", "slot %d: fork: %s", s, strerror(errno));
        close(sv[0]);
        close(sv[1]);
        memset(r, 0, sizeof *r);
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close(sv[0]);
        close(f->sig_fd);
        if (f->control_fd >= 0)
            close(f->control_fd);
        for (int i = 0; i < f->nslots; i++) {
            struct proc *ps[] = {&f->slot[i].cur, &f->slot[i].old, &f->slot[i].next};
            for (int k = 0; k < 3; k++)
                if (ps[k]->chan >= 0)
                    close(ps[k]->chan);
        }
        log_setup(f->cfg.log.level, sb_role_name(sl->role), s);
        /* The projector role gets its loop with the CQRS issue; until then it serves like an api worker. */
        _exit(worker_run(&f->cfg, f->listen_fd, sv[1], s, row, &f->shared));
    }
    close(sv[1]);
    r->pid = pid;
    p->pid = pid;
    p->row = row;
    p->chan = sv[0];
    return 0;
}

static struct slot *slot_of(struct fleet *f, pid_t pid, struct proc **which)
{
    for (int i = 0; i < f->nslots; i++) {
        struct proc *ps[] = {&f->slot[i].cur, &f->slot[i].old, &f->slot[i].next};
        for (int k = 0; k < 3; k++)
            if (ps[k]->pid == pid) {
                *which = ps[k];
                return &f->slot[i];
            }
    }
    return NULL;
}

static void describe_exit(int status, char *buf, size_t sz)
{
    if (WIFSIGNALED(status))
        snprintf(buf, sz, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, sz, "exit %d", WEXITSTATUS(status));
}

/* Where connections handed over by `from` (of slot s) go: the slot's serving
 * process, else any other wanted slot's; none while stopping. */
static struct proc *handover_target(struct fleet *f, int s, const struct proc *from)
{
    if (f->stopping)
        return NULL;
    if (s < f->want && f->slot[s].cur.pid != 0 && &f->slot[s].cur != from)
        return &f->slot[s].cur;
    for (int i = 0; i < f->want; i++)
        if (f->slot[i].cur.pid != 0 && &f->slot[i].cur != from)
            return &f->slot[i].cur;
    return NULL;
}

/* Moves the fds a retiring process handed over to a live process. Reads only
 * what is already queued (the channels block: a recv with nothing queued would
 * stall the master until the worker exits). A channel at end of file is closed,
 * so poll() stops reporting it while the dying child awaits its reaping. */
static void forward_conns(struct fleet *f, int s, struct proc *from)
{
    int fds[FDPASS_MAX], n;

    while (from->chan >= 0) {
        struct pollfd p = {.fd = from->chan, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            return;
        if (fdpass_recv(from->chan, fds, FDPASS_MAX, &n) != 0) {
            close(from->chan); /* end of file (the child is leaving), or broken */
            from->chan = -1;
            return;
        }
        if (n == 0)
            continue;
        struct proc *to = handover_target(f, s, from);
        /* No live process to take them (stopping, or all dead): close, as a worker exit would. */
        if (to == NULL || fdpass_send(to->chan, fds, n) != 0)
            log_msg(LOG_WARN, "handover_dropped", "slot %d: closed %d kept connections", s, n);
        for (int i = 0; i < n; i++)
            close(fds[i]);
    }
}

/* Delay before restarting a slot whose process died `quick_crashes` times in a
 * row soon after starting: the first restart is immediate, then 1, 2, 4 … s,
 * capped by restart_backoff_max. */
static int backoff_s(const struct fleet *f, int quick_crashes)
{
    if (quick_crashes <= 1)
        return 0;
    int shift = quick_crashes - 2 < 16 ? quick_crashes - 2 : 16;
    int b = 1 << shift;
    return b < f->cfg.fleet.restart_backoff_max ? b : f->cfg.fleet.restart_backoff_max;
}

/* A successor died before it was ready: try again later, and after a few in a
 * row give up and keep the serving worker (a broken build or config must not
 * turn a reload into a fork loop). */
static void successor_died(struct fleet *f, int s, pid_t pid, const char *why)
{
    struct slot *sl = &f->slot[s];
    int delay = backoff_s(f, ++sl->successor_fails + 1);
    struct log_line l;

    log_begin(&l, LOG_ERROR, "successor_died");
    log_int(&l, "worker", s);
    log_int(&l, "exited_pid", pid);
    log_str(&l, "exit", why);
    log_int(&l, "fails", sl->successor_fails);
    log_end(&l);
    if (sl->successor_fails >= CRASH_LOOP_AT && sl->cur.pid != 0) {
        log_msg(LOG_ERROR, "replace_abandoned", "slot %d: %d successors died before ready; pid %d keeps serving (%s)",
                s, sl->successor_fails, (int)sl->cur.pid, sl->replace_why);
        sl->replace_why[0] = '\0';
        sl->successor_fails = 0;
        /* the reason (want_exit, RSS) is still there: without a pause it would
         * start the same doomed replacement on the next tick */
        sl->next_try_ms = sb_now_ms() + (int64_t)f->cfg.fleet.restart_backoff_max * 1000;
        return;
    }
    sl->next_try_ms = sb_now_ms() + (int64_t)delay * 1000;
}

/* The serving process of slot s died: keep its row (it shows the slot's last
 * exit and backoff until the restart) and plan the restart. */
static void cur_died(struct fleet *f, int s, struct proc *p, int status, const char *why)
{
    struct slot *sl = &f->slot[s];
    int64_t lived = p->row >= 0 ? sb_now_ms() - f->sb->row[p->row].started_ms : 0;
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int gone = f->stopping || s >= f->want; /* nothing to restart */
    int row = p->row;

    sl->replace_why[0] = '\0'; /* the restart replaces it anyway */

    if (gone) {
        log_msg(LOG_INFO, "worker_exit", "slot %d pid %d left: %s", s, (int)p->pid, why);
    } else if (clean) {
        log_msg(LOG_INFO, "worker_exit", "slot %d pid %d left: %s; restarting", s, (int)p->pid, why);
        sl->quick_crashes = 0;
        sl->next_start_ms = 0;
    } else {
        sl->quick_crashes = lived < QUICK_CRASH_MS ? sl->quick_crashes + 1 : 1;
        int backoff = backoff_s(f, sl->quick_crashes);
        sl->next_start_ms = sb_now_ms() + (int64_t)backoff * 1000;
        struct log_line l;
        log_begin(&l, LOG_ERROR, sl->quick_crashes >= CRASH_LOOP_AT ? "crash_loop" : "worker_crash");
        log_int(&l, "worker", s);
        log_int(&l, "exited_pid", p->pid);
        log_str(&l, "exit", why);
        log_int(&l, "lived_ms", lived);
        log_int(&l, "quick_crashes", sl->quick_crashes);
        log_int(&l, "restart_in_s", backoff);
        log_end(&l);
    }
    p->row = -1;
    proc_clear(f, p, 0);
    if (row < 0)
        return;
    if (gone) {
        memset(&f->sb->row[row], 0, sizeof f->sb->row[row]);
        return;
    }
    struct sb_row *r = &f->sb->row[row];
    snprintf(r->last_exit, sizeof r->last_exit, "%s", why);
    r->state = SB_BACKOFF;
    r->pid = 0;
    r->req_start_ms = 0;
    sl->cur.row = row; /* reused by the restart */
}

static void reap(struct fleet *f)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct proc *p;
        struct slot *sl = slot_of(f, pid, &p);
        char why[64];

        if (pid == f->maint_pid) {
            f->maint_pid = 0;
            continue; /* it logged what it did */
        }
        if (sl == NULL)
            continue;
        int s = (int)(sl - f->slot);
        describe_exit(status, why, sizeof why);
        if (p == &sl->old) {
            forward_conns(f, s, p);
            log_msg(LOG_INFO, "worker_retired", "slot %d pid %d: %s", s, (int)pid, why);
            proc_clear(f, p, 1);
        } else if (p == &sl->next) {
            proc_clear(f, p, 1);
            if (!f->stopping && s < f->want)
                successor_died(f, s, pid, why);
        } else {
            forward_conns(f, s, p);
            cur_died(f, s, p, status, why);
        }
    }
}

/* Starts slot s's current process (first start or after a death), reusing its row. */
static void start_cur(struct fleet *f, int s)
{
    struct slot *sl = &f->slot[s];
    char last[64] = "";

    if (sl->cur.row >= 0) { /* a predecessor died: this is a restart */
        struct sb_row *r = &f->sb->row[sl->cur.row];
        snprintf(last, sizeof last, "%s", r->last_exit);
        memset(r, 0, sizeof *r);
        sl->restarts++;
        sl->cur.row = -1;
    }
    if (spawn(f, s, &sl->cur) != 0) {
        sl->next_start_ms = sb_now_ms() + 1000;
        return;
    }
    sl->cur.gen = f->sb->generation;
    snprintf(f->sb->row[sl->cur.row].last_exit, sizeof last, "%s", last);
}

static void begin_replace(struct fleet *f, int s, const char *why)
{
    struct slot *sl = &f->slot[s];

    if (sl->replace_why[0] == '\0')
        snprintf(sl->replace_why, sizeof sl->replace_why, "%s", why);
}

/* The successor of slot s is accepting: it becomes the serving process and the
 * predecessor is asked to finish its request and leave. */
static void promote(struct fleet *f, int s)
{
    struct slot *sl = &f->slot[s];

    if (sl->cur.pid == 0) {
        /* the predecessor died meanwhile: its row only showed the backoff */
        if (sl->cur.row >= 0)
            memset(&f->sb->row[sl->cur.row], 0, sizeof f->sb->row[sl->cur.row]);
        sl->cur = PROC_NONE;
    } else {
        sl->old = sl->cur;
        sl->old.kill_at_ms = sb_now_ms() + (int64_t)f->cfg.fleet.graceful_timeout * 1000;
        f->sb->row[sl->old.row].state = SB_RETIRING;
        kill(sl->old.pid, SIGTERM);
    }
    sl->cur = sl->next;
    sl->next = PROC_NONE;
    sl->quick_crashes = 0;
    sl->successor_fails = 0;
    sl->next_start_ms = 0;
    log_msg(LOG_INFO, "worker_replaced", "slot %d: pid %d now serving (%s)", s, (int)sl->cur.pid,
            sl->replace_why);
    f->sb->row[sl->cur.row].restarts = ++sl->restarts;
    /* started before a later reload: it runs the previous config, so go again */
    if (sl->cur.gen != f->sb->generation)
        snprintf(sl->replace_why, sizeof sl->replace_why, "reload");
    else
        sl->replace_why[0] = '\0';
}

/* Advances replacements: at most one successor starting at a time, fleet-wide,
 * so capacity never drops and a reload goes slot by slot. */
static void step_replacements(struct fleet *f)
{
    int64_t now = sb_now_ms();

    for (int s = 0; s < f->nslots; s++) {
        struct slot *sl = &f->slot[s];
        if (sl->next.pid == 0)
            continue;
        struct sb_row *r = &f->sb->row[sl->next.row];
        int ready = r->state == SB_IDLE || r->state == SB_BUSY;
        if (sl->next.killed) {
            /* given up on: waiting for its reaping */
        } else if (ready && sl->old.pid == 0) { /* never two retirees for one slot */
            promote(f, s);
        } else if (!ready && now > sl->next_deadline_ms) {
            log_msg(LOG_ERROR, "successor_timeout", "slot %d: successor pid %d not ready in %d ms; killed",
                    s, (int)sl->next.pid, READY_TIMEOUT_MS);
            kill(sl->next.pid, SIGKILL);
            sl->next.killed = 1;
        }
        return; /* one at a time */
    }
    for (int s = 0; s < f->want; s++) {
        struct slot *sl = &f->slot[s];
        if (sl->replace_why[0] == '\0' || sl->old.pid != 0 || now < sl->next_try_ms)
            continue;
        if (sl->cur.pid == 0) {
            sl->replace_why[0] = '\0'; /* in backoff: its restart starts afresh anyway */
            continue;
        }
        if (spawn(f, s, &sl->next) == 0) {
            sl->next.gen = f->sb->generation;
            sl->next_deadline_ms = now + READY_TIMEOUT_MS;
        }
        return;
    }
}

/* Kills p (serving or retiring) if its request ran past request_timeout, or,
 * retiring, if it outstayed graceful_timeout. */
static void check_timeouts(struct fleet *f, int s, struct proc *p, int64_t now)
{
    if (p->pid == 0 || p->killed)
        return;
    struct sb_row *r = &f->sb->row[p->row];
    if (f->cfg.fleet.request_timeout > 0 && r->req_start_ms != 0 &&
        now - r->req_start_ms > (int64_t)f->cfg.fleet.request_timeout * 1000) {
        struct log_line l;
        log_begin(&l, LOG_ERROR, "request_timeout");
        log_int(&l, "worker", s);
        log_int(&l, "killed_pid", p->pid);
        log_int(&l, "running_ms", now - r->req_start_ms);
        log_int(&l, "request_timeout_s", f->cfg.fleet.request_timeout);
        log_end(&l);
        kill(p->pid, SIGKILL);
        p->killed = 1;
    } else if (p->kill_at_ms != 0 && now > p->kill_at_ms) {
        log_msg(LOG_WARN, "retire_timeout", "slot %d pid %d: still finishing after graceful_timeout = %d s; killed",
                s, (int)p->pid, f->cfg.fleet.graceful_timeout);
        kill(p->pid, SIGKILL);
        p->killed = 1;
    }
}

static void check_rows(struct fleet *f)
{
    int64_t now = sb_now_ms();

    for (int s = 0; s < f->nslots; s++) {
        struct slot *sl = &f->slot[s];
        check_timeouts(f, s, &sl->old, now);
        /* a successor on its way takes over anyway: no restart meanwhile */
        if (sl->cur.pid == 0 && s < f->want && sl->next.pid == 0 && now >= sl->next_start_ms)
            start_cur(f, s);
        if (sl->cur.pid == 0)
            continue;
        struct sb_row *r = &f->sb->row[sl->cur.row];
        r->rss_kb = sb_rss_kb(sl->cur.pid);
        check_timeouts(f, s, &sl->cur, now);
        if (sl->cur.killed || s >= f->want || r->state == SB_STARTING || now < sl->next_try_ms)
            continue;
        if (f->cfg.fleet.max_memory_mb > 0 && r->rss_kb > (uint64_t)f->cfg.fleet.max_memory_mb * 1024 &&
            sl->replace_why[0] == '\0') {
            log_msg(LOG_WARN, "recycle", "slot %d pid %d: RSS %llu KiB over max_memory_mb = %d", s,
                    (int)sl->cur.pid, (unsigned long long)r->rss_kb, f->cfg.fleet.max_memory_mb);
            begin_replace(f, s, "max_memory");
        }
        if (r->want_exit[0] != '\0' && sl->replace_why[0] == '\0' && sl->next.pid == 0) {
            log_msg(LOG_INFO, "recycle", "slot %d pid %d: %s", s, (int)sl->cur.pid, r->want_exit);
            begin_replace(f, s, r->want_exit);
        }
    }
    step_replacements(f);
    /* slots a reload removed are forgotten once their processes are gone */
    while (f->nslots > f->want) {
        struct slot *sl = &f->slot[f->nslots - 1];
        if (sl->cur.pid != 0 || sl->old.pid != 0 || sl->next.pid != 0)
            break;
        f->nslots--;
    }
}

static int worker_count(const struct config *cfg)
{
    if (cfg->fleet.workers > 0)
        return cfg->fleet.workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Sizes the fleet from the config: new slots start on the next tick; slots
 * beyond the new size are retired (their processes finish and are not restarted). */
static void set_slots(struct fleet *f)
{
    int api = worker_count(&f->cfg), n = api + f->cfg.fleet.projectors;

    if (n > SB_MAX_ROWS / 2)
        n = SB_MAX_ROWS / 2; /* room for successors and retirees */
    for (int s = f->nslots; s < n; s++) {
        memset(&f->slot[s], 0, sizeof f->slot[s]);
        f->slot[s].cur = f->slot[s].old = f->slot[s].next = PROC_NONE;
    }
    for (int s = 0; s < n; s++)
        f->slot[s].role = s < api ? SB_ROLE_API : SB_ROLE_PROJECTOR;
    f->want = n;
    for (int s = n; s < f->nslots; s++) {
        struct slot *sl = &f->slot[s];
        sl->replace_why[0] = '\0';
        if (sl->next.pid != 0)
            kill(sl->next.pid, SIGTERM);
        if (sl->cur.pid != 0) {
            sl->cur.kill_at_ms = sb_now_ms() + (int64_t)f->cfg.fleet.graceful_timeout * 1000;
            f->sb->row[sl->cur.row].state = SB_RETIRING;
            kill(sl->cur.pid, SIGTERM);
        } else if (sl->cur.row >= 0) { /* in backoff: nothing to wait for */
            memset(&f->sb->row[sl->cur.row], 0, sizeof f->sb->row[sl->cur.row]);
            sl->cur.row = -1;
        }
    }
    if (n > f->nslots)
        f->nslots = n;
}

/* What the fleet checks and strips in a config it runs with, at start and on
 * reload: the JWT keys, loaded into *ks here, before any worker is forked (a
 * bad key is a refused start or reload, never workers that die one after the
 * other under a master that stays up); the engine's own checks (a malformed
 * DSN is a config error; nothing connects); and the migration owner's DSN
 * dropped, since workers never migrate and that role bypasses RLS: it stays
 * out of every process that serves requests. */
static int config_accept(struct config *c, struct jwt_keyset *ks, char errstr[256])
{
    char why[128];

    explicit_bzero(c->db.migrate_dsn, sizeof c->db.migrate_dsn);
    if (app_keys_load(c, ks, errstr) != 0)
        return -1;
    if (c->engine == CONFIG_ENGINE_POSTGRES) {
        struct engine *probe = app_engine_new(c, NULL, why);
        if (probe == NULL) {
            snprintf(errstr, 256, "%s", why);
            jwt_keyset_free(ks);
            return -1;
        }
        engine_free(probe);
    }
    return 0;
}

/* Which keys a generation runs with: the operator's check during a rotation. */
static void log_keys(const struct jwt_keyset *ks)
{
    char prev[JWT_KEYSET_MAX * (JWT_KID_LEN + 1) + 1] = "";
    size_t len = 0;

    for (size_t i = 1; i < ks->n && len < sizeof prev; i++)
        len += (size_t)snprintf(prev + len, sizeof prev - len, "%s%s", i > 1 ? " " : "", ks->keys[i].kid);
    log_msg(LOG_INFO, "keys", "JWTs signed by kid %s (alg %s); previous keys that verify: %s",
            ks->keys[0].kid, jwt_alg_name(ks->sign_alg), prev[0] != '\0' ? prev : "none");
}

/* Re-reads the config and starts a rolling restart; on a bad config the
 * running fleet keeps going unchanged. Returns 0, or -1 with errstr set. */
static int reload(struct fleet *f, char errstr[256])
{
    struct config fresh;
    struct jwt_keyset fresh_keys;
    char why[256];

    if (f->stopping) {
        snprintf(errstr, 256, "the fleet is stopping");
        return -1;
    }
    if (config_load(&fresh, f->config_path, why) != 0 || config_accept(&fresh, &fresh_keys, why) != 0) {
        log_msg(LOG_ERROR, "reload_refused", "%s; the running fleet keeps its config", why);
        snprintf(errstr, 256, "%s", why);
        return -1;
    }
    if (strcmp(fresh.fleet.listen, f->cfg.fleet.listen) != 0 ||
        strcmp(fresh.fleet.control, f->cfg.fleet.control) != 0 ||
        strcmp(fresh.fleet.pid_file, f->cfg.fleet.pid_file) != 0)
        log_msg(LOG_WARN, "reload_partial", "fleet.listen, fleet.control and fleet.pid_file change only on restart");
    snprintf(fresh.fleet.listen, sizeof fresh.fleet.listen, "%s", f->cfg.fleet.listen);
    snprintf(fresh.fleet.control, sizeof fresh.fleet.control, "%s", f->cfg.fleet.control);
    snprintf(fresh.fleet.pid_file, sizeof fresh.fleet.pid_file, "%s", f->cfg.fleet.pid_file);
    f->cfg = fresh;
    /* Workers running now hold their own copies; those forked from here on
     * take the new set. */
    jwt_keyset_free(&f->keys);
    f->keys = fresh_keys;
    log_setup(f->cfg.log.level, "master", -1);
    log_keys(&f->keys);
    f->sb->generation++;
    set_slots(f);
    for (int s = 0; s < f->want; s++) {
        f->slot[s].successor_fails = 0;
        f->slot[s].next_try_ms = 0;
        if (f->slot[s].cur.pid != 0)
            begin_replace(f, s, "reload");
    }
    log_msg(LOG_INFO, "reload", "rolling restart of %d slots (generation %u)", f->want, f->sb->generation);
    return 0;
}

static void begin_stop(struct fleet *f, const char *why)
{
    if (f->stopping)
        return;
    f->stopping = 1;
    if (f->maint_pid > 0)
        kill(f->maint_pid, SIGKILL); /* holds nothing an abort would lose: its transaction rolls back */
    f->stop_deadline_ms = sb_now_ms() + (int64_t)f->cfg.fleet.graceful_timeout * 1000;
    log_msg(LOG_INFO, "stopping", "%s: finishing in-flight requests (up to %d s)", why,
            f->cfg.fleet.graceful_timeout);
    /* Stop accepting: no new connection reaches the old socket. */
    if (is_unix_path(f->cfg.fleet.listen))
        unlink(f->cfg.fleet.listen);
    for (int s = 0; s < f->nslots; s++) {
        struct proc *ps[] = {&f->slot[s].cur, &f->slot[s].old, &f->slot[s].next};
        for (int k = 0; k < 3; k++)
            if (ps[k]->pid != 0)
                kill(ps[k]->pid, SIGTERM);
    }
}

static int live_children(const struct fleet *f)
{
    int n = 0;
    for (int s = 0; s < f->nslots; s++)
        n += (f->slot[s].cur.pid != 0) + (f->slot[s].old.pid != 0) + (f->slot[s].next.pid != 0);
    return n;
}

/* The store's upkeep (engine maintain: audit partitions ahead, relayed audit
 * entries delivered), in a child at start and every maintenance_interval: it
 * opens its own connections and may wait on the database, which the master
 * must never do. One at a time; a run still going when the next is due makes
 * that one wait. The memory engine has nothing to keep. */
static void maintain(struct fleet *f)
{
    if (f->cfg.engine != CONFIG_ENGINE_POSTGRES || f->maint_pid != 0 || f->stopping ||
        sb_now_ms() < f->maint_next_ms)
        return;
    f->maint_next_ms = sb_now_ms() + (int64_t)f->cfg.fleet.maintenance_interval * 1000;
    pid_t pid = fork();
    if (pid < 0) {
        log_msg(LOG_ERROR, "maintenance", "fork: %s", strerror(errno));
        return;
    }
    if (pid > 0) {
        f->maint_pid = pid;
        return;
    }
    char why[256] = "", report[256] = "";
    struct engine *e = app_engine_new(&f->cfg, f->shared.data, why);
    int rc = e == NULL ? ERR_UNAVAILABLE : engine_maintain(e, time(NULL), report);
    if (rc == 0 && report[0] != '\0')
        log_msg(LOG_INFO, "maintenance", "%s", report);
    else
        log_msg(LOG_ERROR, "maintenance", "%s", e != NULL ? e->errstr : why);
    engine_free(e);
    _exit(rc == 0 ? 0 : 1);
}

/* One command per connection. A reply starting "error:" makes the client exit 1.
 * Served while stopping too: status stays useful, and a connection left
 * pending would wake poll() at once, forever. */
/* `tessera admin create`: the memory engine lives in this process's region, so
 * the master makes the account (through the configured engine either way, so
 * the command is the same on postgres). Request: "admin-create EMAIL\nPASSWORD". */
static int control_admin_create(struct fleet *f, char *args, struct buf *out)
{
    struct crypto_keyring ring;
    struct password_cost cost = app_password_cost(&f->cfg);
    char why[256] = "";
    char *nl = strchr(args, '\n');
    int rc;

    if (nl == NULL)
        return buf_puts(out, "error: expected EMAIL, a newline and the password\n");
    *nl = '\0';
    char *password = nl + 1;
    password[strcspn(password, "\r\n")] = '\0';
    if (crypto_keyring_load(&ring, f->cfg.crypto.data_key, why) != 0)
        return buf_printf(out, "error: crypto.data_key: %s\n", why);
    struct engine *e = app_engine_new(&f->cfg, f->shared.data, why);
    rc = e == NULL ? ERR_UNAVAILABLE : admin_create(e, &ring, &cost, args, password, why, sizeof why);
    explicit_bzero(password, strlen(password));
    engine_free(e);
    crypto_keyring_cleanup(&ring);
    if (rc == 0)
        log_msg(LOG_INFO, "admin_created", "%s", why); /* ids only: no email, no password */
    return buf_printf(out, "%s%s\n", rc == 0 ? "" : "error: ", why);
}

static void serve_control(struct fleet *f)
{
    int c = accept4(f->control_fd, NULL, NULL, SOCK_CLOEXEC);
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
        pid_t pid = f->stopping ? -1 : fork();
        if (pid == 0) {
            rc = control_admin_create(f, cmd + 13, &out);
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
        rc = buf_puts(&out, f->stopping ? "error: stopping\n" : "error: cannot fork\n");
        goto reply;
    }
    cmd[strcspn(cmd, "\r\n")] = '\0';
    if (strcmp(cmd, "status") == 0) {
        rc = sb_render_table(f->sb, &out);
    } else if (strcmp(cmd, "status-json") == 0) {
        cJSON *j = sb_to_json(f->sb);
        char *s = j ? cJSON_PrintUnformatted(j) : NULL;
        rc = s ? buf_printf(&out, "%s\n", s) : ERR_NOMEM;
        cJSON_free(s);
        cJSON_Delete(j);
    } else if (strcmp(cmd, "reload") == 0) {
        if (reload(f, errstr) == 0)
            rc = buf_printf(&out, "reloading (generation %u)\n", f->sb->generation);
        else
            rc = buf_printf(&out, "error: reload refused: %s\n", errstr);
    } else if (strcmp(cmd, "stop") == 0) {
        begin_stop(f, "stop command");
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

static void on_signal(struct fleet *f)
{
    struct signalfd_siginfo si;
    char errstr[256];

    while (read(f->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(f);
            break;
        case SIGHUP:
            if (reload(f, errstr) != 0 && f->stopping)
                log_msg(LOG_WARN, "reload_refused", "SIGHUP: %s", errstr);
            break;
        case SIGTERM:
        case SIGINT:
            begin_stop(f, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
    }
}

static void log_start(const struct fleet *f)
{
    cJSON *j = config_to_json(&f->cfg);
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    struct log_line l;

    log_begin(&l, LOG_INFO, "start");
    log_str(&l, "version", TESSERA_VERSION);
    log_int(&l, "slots", f->nslots);
    if (s != NULL)
        log_json(&l, "config", s);
    log_end(&l);
    cJSON_free(s);
    cJSON_Delete(j);
}

/* Loads the seed folder into the fresh memory engine, before any worker runs. */
static int seed_memory(struct fleet *f, char errstr[256])
{
    struct crypto_keyring ring;
    struct password_cost cost = app_password_cost(&f->cfg);
    char why[128];
    int rc;

    if (f->cfg.env == CONFIG_ENV_PRODUCTION) {
        snprintf(errstr, 256, "seed: refused with env = production (dev data has known passwords)");
        return -1;
    }
    if (crypto_keyring_load(&ring, f->cfg.crypto.data_key, why) != 0) {
        snprintf(errstr, 256, "crypto.data_key: %s", why);
        return -1;
    }
    struct engine *e = app_engine_new(&f->cfg, f->shared.data, why);
    if (e == NULL) {
        snprintf(errstr, 256, "memory engine: %s", why);
        crypto_keyring_cleanup(&ring);
        return -1;
    }
    rc = 0;
    for (int i = 0; rc == 0 && i < f->nseeds; i++)
        if ((rc = seed_load(e, &ring, &cost, f->seeds[i], errstr)) == 0)
            log_msg(LOG_INFO, "seeded", "loaded %s into the memory engine", f->seeds[i]);
    engine_free(e);
    crypto_keyring_cleanup(&ring);
    return rc == 0 ? 0 : -1;
}

/* The memory engine's region (and the kv's, without Redis), made before the
 * fork so every worker shares them; they live as long as the master. */
static int open_memory(struct fleet *f, char errstr[256])
{
    char why[128];
    size_t bytes = (size_t)f->cfg.memory.size_mb << 20;

    if (f->cfg.engine == CONFIG_ENGINE_MEMORY) {
        if ((f->shared.data = shm_create(bytes, why)) == NULL ||
            engine_mem_prepare(f->shared.data, why) != 0) {
            snprintf(errstr, 256, "memory.size_mb: %s", why);
            return -1;
        }
    }
    if (f->cfg.redis.url[0] == '\0') {
        /* the blacklist and cache live beside the data: a quarter of its size, at least 16 MiB */
        size_t kvbytes = bytes / 4 > (16u << 20) ? bytes / 4 : (16u << 20);
        if ((f->shared.kvmem = shm_create(kvbytes, why)) == NULL) {
            snprintf(errstr, 256, "kv region: %s", why);
            return -1;
        }
    }
    if (f->nseeds > 0) {
        if (f->shared.data == NULL) {
            snprintf(errstr, 256, "seed: --seed loads the memory engine; use `tessera seed` for postgres");
            return -1;
        }
        return seed_memory(f, errstr);
    }
    return 0;
}

static int fleet_open(struct fleet *f, char errstr[256])
{
    sigset_t mask;

    make_parent(f->cfg.fleet.listen);
    make_parent(f->cfg.fleet.control);
    make_parent(f->cfg.fleet.pid_file);
    if (write_pid_file(f->cfg.fleet.pid_file, errstr) != 0)
        return -1;
    f->own_pid_file = 1;
    f->listen_fd = is_unix_path(f->cfg.fleet.listen) ? bind_unix(&f->cfg, errstr) : bind_tcp(&f->cfg, errstr);
    if (f->listen_fd < 0)
        return -1;
    if ((f->control_fd = control_listen(f->cfg.fleet.control, errstr)) < 0)
        return -1;
    if ((f->sb = sb_new()) == NULL || (f->metrics = metrics_new()) == NULL) {
        snprintf(errstr, 256, "shared memory: %s", strerror(errno));
        return -1;
    }
    f->sb->master_pid = getpid();
    f->sb->started_ms = sb_now_ms();
    f->shared.metrics = f->metrics;
    f->shared.sb = f->sb;
    if (open_memory(f, errstr) != 0)
        return -1;
    /* A master started in the background of a non-interactive shell inherits
     * SIGINT ignored, and an ignored signal never reaches the signalfd. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    if ((f->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        snprintf(errstr, 256, "signalfd: %s", strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void fleet_close(struct fleet *f)
{
    /* Remove only what this master made: a second `tessera fleet` refused at
     * start must leave the running fleet's socket and pid file alone. */
    if (f->listen_fd >= 0) {
        close(f->listen_fd);
        if (is_unix_path(f->cfg.fleet.listen))
            unlink(f->cfg.fleet.listen);
    }
    if (f->control_fd >= 0) {
        close(f->control_fd);
        unlink(f->cfg.fleet.control);
    }
    if (f->sig_fd >= 0)
        close(f->sig_fd);
    if (f->own_pid_file)
        unlink(f->cfg.fleet.pid_file);
    sb_free(f->sb);
    metrics_free(f->metrics);
    shm_destroy(f->shared.data);
    shm_destroy(f->shared.kvmem);
    jwt_keyset_free(&f->keys);
}

int fleet_run(const struct config *cfg, const char *config_path, const char *const *seeds, int nseeds)
{
    static struct fleet f; /* one per master process; signal handling reads it via the loop only */
    char errstr[256];
    int rc = 0;

    memset(&f, 0, sizeof f);
    f.cfg = *cfg;
    f.config_path = config_path;
    f.seeds = seeds;
    f.nseeds = nseeds;
    f.listen_fd = f.control_fd = f.sig_fd = -1;
    log_setup(cfg->log.level, "master", -1);
    if (config_accept(&f.cfg, &f.keys, errstr) != 0) {
        log_msg(LOG_ERROR, "fleet_start", "config: %s", errstr);
        return 2;
    }
    f.shared.keys = &f.keys;
    if (fleet_open(&f, errstr) != 0) {
        log_msg(LOG_ERROR, "fleet_start", "%s", errstr);
        fleet_close(&f);
        return 1;
    }
    set_slots(&f);
    log_start(&f);
    log_keys(&f.keys);

    while (!f.stopping || live_children(&f) > 0) {
        struct pollfd p[2 + 3 * SB_MAX_ROWS];
        struct proc *owner[2 + 3 * SB_MAX_ROWS];
        int oslot[2 + 3 * SB_MAX_ROWS];
        int n = 0, tick = TICK_MS;

        p[n++] = (struct pollfd){.fd = f.sig_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = f.control_fd, .events = POLLIN};
        for (int s = 0; s < f.nslots; s++) {
            struct proc *ps[] = {&f.slot[s].cur, &f.slot[s].old, &f.slot[s].next};
            for (int k = 0; k < 3; k++)
                if (ps[k]->chan >= 0) {
                    owner[n] = ps[k];
                    oslot[n] = s;
                    p[n++] = (struct pollfd){.fd = ps[k]->chan, .events = POLLIN};
                }
            if (f.slot[s].next.pid != 0)
                tick = TICK_BUSY_MS;
        }
        if (poll(p, (nfds_t)n, tick) > 0) {
            if (p[0].revents)
                on_signal(&f);
            if (p[1].revents)
                serve_control(&f);
            /* the channel may have been closed and its fd number reused meanwhile */
            for (int i = 2; i < n; i++)
                if (p[i].revents && owner[i]->chan == p[i].fd)
                    forward_conns(&f, oslot[i], owner[i]);
        }
        if (f.stopping && sb_now_ms() > f.stop_deadline_ms) {
            log_msg(LOG_WARN, "stop_timeout", "graceful_timeout passed: killing %d workers",
                    live_children(&f));
            for (int s = 0; s < f.nslots; s++) {
                struct proc *ps[] = {&f.slot[s].cur, &f.slot[s].old, &f.slot[s].next};
                for (int k = 0; k < 3; k++)
                    if (ps[k]->pid != 0)
                        kill(ps[k]->pid, SIGKILL);
            }
            f.stop_deadline_ms = sb_now_ms() + 5000;
        }
        if (!f.stopping) {
            check_rows(&f);
            maintain(&f);
        }
    }
    log_msg(LOG_INFO, "stopped", "all workers have exited");
    fleet_close(&f);
    return rc;
}
