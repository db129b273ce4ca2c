/* Supervision of the fleet's slots (fleet_int.h).
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
 * keeps dying before it is ready is given up on and the old worker kept. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "core/log.h"
#include "fleet/fdpass.h"
#include "fleet/fleet_int.h"

#define READY_TIMEOUT_MS 15000      /* a successor not ready by then is abandoned */
#define QUICK_CRASH_MS 5000         /* a death sooner than this after start counts toward backoff */
#define CRASH_LOOP_AT 3

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
        if (sl->role == SB_ROLE_PROJECTOR)
            _exit(projector_run(&f->cfg, f->listen_fd, sv[1], s, row, &f->shared));
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
void fleet_signal_all(const struct fleet *f, int sig)
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
void fleet_forward_conns(struct fleet *f, int s, struct proc *from)
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

void fleet_reap(struct fleet *f)
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
            fleet_forward_conns(f, s, p);
            log_msg(LOG_INFO, "worker_retired", "slot %d pid %d: %s", s, (int)pid, why);
            proc_clear(f, p, 1);
        } else if (p == &sl->next) {
            proc_clear(f, p, 1);
            if (!f->stopping && s < f->want)
                successor_died(f, s, pid, why);
        } else {
            fleet_forward_conns(f, s, p);
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

void fleet_begin_replace(struct fleet *f, int s, const char *why)
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

void fleet_check_rows(struct fleet *f)
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
            fleet_begin_replace(f, s, "max_memory");
        }
        if (r->want_exit[0] != '\0' && sl->replace_why[0] == '\0' && sl->next.pid == 0) {
            log_msg(LOG_INFO, "recycle", "slot %d pid %d: %s", s, (int)sl->cur.pid, r->want_exit);
            fleet_begin_replace(f, s, r->want_exit);
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
void fleet_set_slots(struct fleet *f)
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

int fleet_live_children(const struct fleet *f)
{
    int n = 0;
    for (int s = 0; s < f->nslots; s++)
        n += slot_live(&f->slot[s]);
    return n;
}
