/* fleet_int: the fleet master's state, shared by its two files only: fleet.c
 * (the master process: sockets, signals, reload, stop, the poll loop) and
 * slots.c (supervising the slots: spawning, reaping, replacing, recycling).
 * Nothing else includes it; the rest of the program sees fleet_run (app.h). */
#ifndef APP_FLEET_FLEET_INT_H
#define APP_FLEET_FLEET_INT_H

#include "app.h"

/* A worker process in one of a slot's places. */
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

/* The unit of supervision: a role, its serving process, and the two places a replacement uses. */
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

/* The master: one per master process (fleet_run's), touched only from its loop, never in signal context. */
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

/* slots.c */
/* Sizes the fleet from the config: new slots start on the next tick; slots
 * beyond the new size are retired (they finish and are not restarted). */
void fleet_set_slots(struct fleet *f);
/* Marks slot s for replacement (why: "reload", "max_memory", …) unless it already is. */
void fleet_begin_replace(struct fleet *f, int s, const char *why);
/* One tick of supervision: timeouts, restarts, recycling, the replacements' next step. */
void fleet_check_rows(struct fleet *f);
/* Collects every child that exited (SIGCHLD) and plans what follows. */
void fleet_reap(struct fleet *f);
/* Passes the connections a process of slot s handed over on its channel to a live one. */
void fleet_forward_conns(struct fleet *f, int s, struct proc *from);
/* Sends sig to every process of every slot. */
void fleet_signal_all(const struct fleet *f, int sig);
/* How many worker processes are alive, all slots together. */
int fleet_live_children(const struct fleet *f);

#endif
