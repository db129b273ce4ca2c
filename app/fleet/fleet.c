/* The fleet master (the PM2 / PHP-FPM part). It binds the FastCGI socket once,
 * forks the workers that accept on it, and never serves a request itself; how
 * it supervises them (restarts, replacements, recycling) is slots.c's.
 * Everything is driven from one poll() loop over a signalfd, the control socket
 * and the workers' channels; no work happens in signal context, and nothing in
 * the loop blocks (a stuck master would stop every restart and reload). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "http/cors.h"
#include "core/log.h"
#include "fleet/control.h"
#include "fleet/fleet_int.h"
#include "fleet/listen.h"
#include "fleet/region.h"

#define TICK_MS 200
#define TICK_BUSY_MS 20             /* while a successor starts: promote it promptly */

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
    if (cors_list_check(c->http.cors_origins, why, sizeof why) != 0) {
        snprintf(errstr, 256, "http.cors_origins: %s", why);
        return -1;
    }
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
    fleet_set_slots(f);
    for (int s = 0; s < f->want; s++) {
        f->slot[s].successor_fails = 0;
        f->slot[s].next_try_ms = 0;
        if (f->slot[s].cur.pid != 0)
            fleet_begin_replace(f, s, "reload");
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
    /* Read by each worker once it is asked to leave: with no successor, it
     * drains its kept connections instead of handing them over (worker.c). */
    f->sb->stopping = 1;
    fleet_signal_all(f, SIGTERM);
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
    /* A run with nothing to do (another host's fleet, or this one's last run,
     * made the partitions already) reports nothing: it is no error. */
    if (rc != 0)
        log_msg(LOG_ERROR, "maintenance", "%s", e != NULL ? e->errstr : why);
    else if (report[0] != '\0')
        log_msg(LOG_INFO, "maintenance", "%s", report);
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
            fleet_reap(f);
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
    fleet_set_slots(&f);
    log_start(&f);
    log_keys(&f.keys);

    while (!f.stopping || fleet_live_children(&f) > 0) {
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
                    fleet_forward_conns(&f, oslot[i], owner[i]);
        }
        if (f.stopping && sb_now_ms() > f.stop_deadline_ms) {
            log_msg(LOG_WARN, "stop_timeout", "graceful_timeout passed: killing %d workers",
                    fleet_live_children(&f));
            fleet_signal_all(&f, SIGKILL);
            f.stop_deadline_ms = sb_now_ms() + 5000;
        }
        if (!f.stopping) {
            fleet_check_rows(&f);
            maintain(&f);
        }
    }
    log_msg(LOG_INFO, "stopped", "all workers have exited");
    fleet_close(&f);
    return rc;
}
