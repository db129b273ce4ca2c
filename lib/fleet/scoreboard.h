/* scoreboard: the fleet's process table in shared memory (PHP-FPM's and
 * Apache's scoreboard). The master owns the rows' identity fields (slot, role,
 * pid, restarts, last exit); each worker updates only its own row's live
 * fields (state, requests, current request start, RSS). Readers (status,
 * /metrics) take a torn read of a counter as acceptable; nothing here locks. */
#ifndef LIB_SCOREBOARD_H
#define LIB_SCOREBOARD_H

#include <cJSON.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"

#define SB_MAX_ROWS 64

enum sb_role { SB_ROLE_API, SB_ROLE_PROJECTOR };
enum sb_state {
    SB_FREE,        /* row unused */
    SB_STARTING,    /* forked, initialising */
    SB_IDLE,        /* polling, ready for requests */
    SB_BUSY,        /* serving a request */
    SB_RETIRING,    /* finishing its request before exit (reload, recycle, stop) */
    SB_BACKOFF,     /* crashed; waiting before restart */
};

struct sb_row {
    int slot;               /* logical slot, kept across restarts */
    int role;               /* enum sb_role */
    int state;              /* enum sb_state */
    pid_t pid;
    int64_t started_ms;     /* sb_now_ms() at fork */
    uint32_t restarts;      /* of this slot, since the fleet started */
    uint64_t requests;      /* served by this process */
    int64_t req_start_ms;   /* 0 when idle */
    uint64_t rss_kb;
    char last_exit[64];     /* "signal 9", "exit 1", "max_requests", … */
    char want_exit[32];     /* set by the worker: replace me ("max_requests") */
    uint32_t generation;    /* the config generation the process was started with */
    /* projector rows (DESIGN §6): outbox events this process applied, and the
     * age of the oldest event still waiting when it last looked (0: none) */
    uint64_t applied;
    int64_t lag_ms;
};

struct scoreboard {
    pid_t master_pid;
    int64_t started_ms;
    uint32_t generation;    /* bumped by each reload */
    int stopping;           /* set by the master before it asks every worker to
                             * leave for good: no successor will take a worker's
                             * kept connections, so it serves what waits on them */
    struct sb_row row[SB_MAX_ROWS];
};

/* Returns owned: a zeroed shared anonymous mapping (made before fork); NULL on failure. */
struct scoreboard *sb_new(void);
void sb_free(struct scoreboard *sb);

const char *sb_state_name(int state);
const char *sb_role_name(int role);

/* Monotonic milliseconds: every time in the scoreboard is on this clock. */
int64_t sb_now_ms(void);

/* Private resident memory of a process in KiB from /proc (resident minus
 * shared: the fleet's shared regions are not one worker's); 0 when unknown. */
uint64_t sb_rss_kb(pid_t pid);

/* Returns owned: {"master_pid","uptime_s","generation","slots":[{slot,role,pid,…}]}, slots in order;
 * projector slots also carry "events_applied" and "lag_ms". */
cJSON *sb_to_json(const struct scoreboard *sb);

/* Appends a `pm2 list`-like table of the used rows, in slot order. A
 * projector's row shows the events it applied under requests and its lag
 * under current. */
int sb_render_table(const struct scoreboard *sb, struct buf *out) ERR_MUST_CHECK;

#endif
