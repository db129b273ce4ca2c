#include "fleet/scoreboard.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct scoreboard *sb_new(void)
{
    void *p = mmap(NULL, sizeof(struct scoreboard), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void sb_free(struct scoreboard *sb)
{
    if (sb != NULL)
        munmap(sb, sizeof *sb);
}

const char *sb_state_name(int state)
{
    static const char *const names[] = {"free", "starting", "idle", "busy", "retiring", "backoff"};
    return state >= 0 && state <= SB_BACKOFF ? names[state] : "?";
}

const char *sb_role_name(int role)
{
    return role == SB_ROLE_PROJECTOR ? "projector" : "api";
}

int64_t sb_now_ms(void)
{
    /* Monotonic, and system-wide on Linux, so master and workers compare the
     * same clock, and a clock step (NTP) can neither fire every request
     * timeout at once nor switch them off. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A scoreboard time as wall-clock milliseconds, for display. */
static double wall_ms(int64_t mono)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (sb_now_ms() - mono));
}

uint64_t sb_rss_kb(pid_t pid)
{
    char path[64];
    unsigned long long pages_total, pages_rss;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    unsigned long long pages_shared;
    int n = fscanf(f, "%llu %llu %llu", &pages_total, &pages_rss, &pages_shared);
    fclose(f);
    if (n != 3 || pages_shared > pages_rss)
        return 0;
    /* Private memory only: the memory engine's region is shared by every
     * worker and would otherwise count against each of them. */
    return (pages_rss - pages_shared) * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

/* The used rows in slot order (a slot's successor or retiree, when it has one,
 * next to it), so a table reads like `pm2 list` whatever rows restarts took. */
static int sb_order(const struct scoreboard *sb, int idx[SB_MAX_ROWS])
{
    int n = 0;

    for (int slot = 0; slot < SB_MAX_ROWS; slot++)
        for (int i = 0; i < SB_MAX_ROWS; i++)
            if (sb->row[i].state != SB_FREE && sb->row[i].slot == slot)
                idx[n++] = i;
    return n;
}

cJSON *sb_to_json(const struct scoreboard *sb)
{
    int idx[SB_MAX_ROWS], n = sb_order(sb, idx);
    int64_t now = sb_now_ms();
    cJSON *root = cJSON_CreateObject(), *slots;

    if (root == NULL)
        return NULL;
    cJSON_AddNumberToObject(root, "master_pid", sb->master_pid);
    cJSON_AddNumberToObject(root, "uptime_s", (double)(now - sb->started_ms) / 1000.0);
    cJSON_AddNumberToObject(root, "generation", sb->generation);
    if ((slots = cJSON_AddArrayToObject(root, "slots")) == NULL)
        goto fail;
    for (int k = 0; k < n; k++) {
        const struct sb_row *r = &sb->row[idx[k]];
        cJSON *o;
        if ((o = cJSON_CreateObject()) == NULL || !cJSON_AddItemToArray(slots, o)) {
            cJSON_Delete(o);
            goto fail;
        }
        cJSON_AddNumberToObject(o, "slot", r->slot);
        cJSON_AddStringToObject(o, "role", sb_role_name(r->role));
        cJSON_AddNumberToObject(o, "pid", r->pid);
        cJSON_AddStringToObject(o, "state", sb_state_name(r->state));
        cJSON_AddNumberToObject(o, "started_at_ms", wall_ms(r->started_ms));
        cJSON_AddNumberToObject(o, "uptime_s", r->pid ? (double)(now - r->started_ms) / 1000.0 : 0);
        cJSON_AddNumberToObject(o, "restarts", r->restarts);
        cJSON_AddNumberToObject(o, "requests", (double)r->requests);
        cJSON_AddNumberToObject(o, "current_request_ms",
                                r->req_start_ms ? (double)(now - r->req_start_ms) : 0);
        cJSON_AddNumberToObject(o, "rss_kb", (double)r->rss_kb);
        cJSON_AddStringToObject(o, "last_exit", r->last_exit);
        cJSON_AddNumberToObject(o, "generation", r->generation);
        if (r->role == SB_ROLE_PROJECTOR) {
            cJSON_AddNumberToObject(o, "events_applied", (double)r->applied);
            cJSON_AddNumberToObject(o, "lag_ms", (double)r->lag_ms);
        }
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

static void uptime(char *buf, size_t sz, int64_t ms)
{
    long s = (long)(ms / 1000);
    if (s < 60)
        snprintf(buf, sz, "%lds", s);
    else if (s < 3600)
        snprintf(buf, sz, "%ldm", s / 60);
    else if (s < 86400)
        snprintf(buf, sz, "%ldh", s / 3600);
    else
        snprintf(buf, sz, "%ldD", s / 86400);
}

int sb_render_table(const struct scoreboard *sb, struct buf *out)
{
    int idx[SB_MAX_ROWS], n = sb_order(sb, idx);
    int64_t now = sb_now_ms();
    int rc = buf_printf(out, "%-4s %-9s %-8s %-9s %-7s %-8s %-10s %-11s %-9s %s\n", "id", "role",
                        "pid", "state", "uptime", "restarts", "requests", "current", "memory",
                        "last exit");

    for (int k = 0; k < n && rc == 0; k++) {
        const struct sb_row *r = &sb->row[idx[k]];
        char up[16], cur[16] = "-", mem[16];
        uptime(up, sizeof up, r->pid ? now - r->started_ms : 0);
        unsigned long long count = r->requests;
        if (r->role == SB_ROLE_PROJECTOR) {
            count = r->applied;
            snprintf(cur, sizeof cur, "lag %lldms", (long long)r->lag_ms);
        } else if (r->req_start_ms) {
            snprintf(cur, sizeof cur, "%lldms", (long long)(now - r->req_start_ms));
        }
        snprintf(mem, sizeof mem, "%.1fmb", (double)r->rss_kb / 1024.0);
        rc = buf_printf(out, "%-4d %-9s %-8d %-9s %-7s %-8u %-10llu %-11s %-9s %s\n", r->slot,
                        sb_role_name(r->role), (int)r->pid, sb_state_name(r->state), up,
                        r->restarts, count, cur, mem,
                        r->last_exit[0] ? r->last_exit : "-");
    }
    return rc;
}
