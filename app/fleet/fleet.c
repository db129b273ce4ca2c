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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "core/log.h"
#include "fleet/control.h"
#include "fleet/fdpass.h"
#include "fleet/listen.h"
#include "fleet/region.h"

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

/* Each of slot sl's SLOT_PROCS process places in turn (cur, old, next) as p,
 * for what treats them alike (signals, channels, lookups); a place with no
 * process has pid 0. sl is evaluated more than once. */
#define SLOT_PROCS 3
#define SLOT_FOR_EACH_PROC(sl, p)                                  \
    for (__typeof__(&(sl)->cur) p = &(sl)->cur; p != NULL;         \
         p = p == &(sl)->cur ? &(sl)->old : p == &(sl)->old ? &(sl)->next : NULL)

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
        for (int i = 0; i < f->nslots; i++)
            SLOT_FOR_EACH_PROC(&f->slot[i], q)
                if (q->chan >= 0)
                    close(q->chan);
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
    for (int i = 0; i < f->nslots; i++)
        SLOT_FOR_EACH_PROC(&f->slot[i], p)
            if (p->pid == pid) {
                *which = p;
                return &f->slot[i];
            }
    return NULL;
}

/* How many processes slot sl has now (serving, retiring, starting). */
static int slot_live(const struct slot *sl)
{
    int n = 0;
    SLOT_FOR_EACH_PROC(sl, p)
        n += p->pid != 0;
    return n;
}

/* Sends sig to every process of every slot. */
static void signal_all(const struct fleet *f, int sig)
{
    for (int s = 0; s < f->nslots; s++)
        SLOT_FOR_EACH_PROC(&f->slot[s], p)
            if (p->pid != 0)
                kill(p->pid, sig);
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
        if (slot_live(sl) > 0)
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
        SLOT_FOR_EACH_PROC(&f->slot[s], p)
            *p = PROC_NONE;
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
    if (listen_is_unix(f->cfg.fleet.listen))
        unlink(f->cfg.fleet.listen);
    signal_all(f, SIGTERM);
}

static int live_children(const struct fleet *f)
{
    int n = 0;
    for (int s = 0; s < f->nslots; s++)
        n += slot_live(&f->slot[s]);
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
    int rc = e == NULL ? ERR_UNAVAILABLE : e->ops->maintain != NULL ? e->ops->maintain(e, time(NULL), report) : 0;
    if (rc == 0 && report[0] != '\0')
        log_msg(LOG_INFO, "maintenance", "%s", report);
    else
        log_msg(LOG_ERROR, "maintenance", "%s", e != NULL ? e->errstr : why);
    engine_free(e);
    _exit(rc == 0 ? 0 : 1);
}

/* A command waits on the control socket: the server gets the master as it is now. */
static void serve_control(struct fleet *f)
{
    const struct control_target t = {
        .cfg = &f->cfg,
        .data = f->shared.data,
        .sb = f->sb,
        .stopping = f->stopping,
        .fleet = f,
        .reload = reload,
        .stop = begin_stop,
    };

    control_serve(f->control_fd, &t);
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

static int fleet_open(struct fleet *f, char errstr[256])
{
    sigset_t mask;

    app_make_parent(f->cfg.fleet.listen, 0755);
    app_make_parent(f->cfg.fleet.control, 0755);
    app_make_parent(f->cfg.fleet.pid_file, 0755);
    if (listen_pid_file(f->cfg.fleet.pid_file, errstr) != 0)
        return -1;
    f->own_pid_file = 1;
    if ((f->listen_fd = listen_open(&f->cfg, errstr)) < 0)
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
    if (region_open(&f->cfg, f->seeds, f->nseeds, &f->shared, errstr) != 0)
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
        if (listen_is_unix(f->cfg.fleet.listen))
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
    region_close(&f->shared);
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
        struct pollfd p[2 + SLOT_PROCS * SB_MAX_ROWS];
        struct proc *owner[2 + SLOT_PROCS * SB_MAX_ROWS];
        int oslot[2 + SLOT_PROCS * SB_MAX_ROWS];
        int n = 0, tick = TICK_MS;

        p[n++] = (struct pollfd){.fd = f.sig_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = f.control_fd, .events = POLLIN};
        for (int s = 0; s < f.nslots; s++) {
            SLOT_FOR_EACH_PROC(&f.slot[s], q)
                if (q->chan >= 0) {
                    owner[n] = q;
                    oslot[n] = s;
                    p[n++] = (struct pollfd){.fd = q->chan, .events = POLLIN};
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
            signal_all(&f, SIGKILL);
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
