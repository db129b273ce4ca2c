#include "fleet/metrics.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

static const int STATUSES[METRICS_NSTATUS - 1] = {200, 201, 204, 301, 304, 400, 401,
                                                  403, 404, 405, 409, 412, 413, 415,
                                                  422, 429, 500, 502, 503, 504, 507};

/* Upper bounds in microseconds; the bucket past the last is +Inf. */
static const uint64_t BOUNDS_US[METRICS_NBUCKETS] = {100,   250,    500,    1000,   2500,   5000,
                                                     10000, 25000, 50000, 100000, 500000, 1000000};

/* enum metrics_counter's names (tessera_<name>_total) and help lines, in order. */
static const struct {
    const char *name, *help;
} COUNTERS[METRICS_NCOUNTERS] = {
    [METRICS_LOGIN_THROTTLED] = {"login_throttled", "Logins refused with 429 after too many failures."},
    [METRICS_LOGIN_THROTTLE_ERRORS] = {"login_throttle_errors",
                                       "Failed-login throttle calls to the kv that failed (the login went on unthrottled)."},
    [METRICS_PROJECTOR_EVENTS] = {"projector_events", "Outbox events applied by the projectors (views, change feed)."},
    [METRICS_PROJECTOR_REBUILDS] = {"projector_rebuilds",
                                    "Read models rebuilt from their records (a view added, removed or retyped)."},
    [METRICS_PROJECTOR_ERRORS] = {"projector_errors", "Projector rounds that failed (tried again next round)."},
    [METRICS_REAPED_RECORDS] = {"reaped_records", "Records deleted by the reaper past their expires_at."},
    [METRICS_REAPED_REFRESH_TOKENS] = {"reaped_refresh_tokens",
                                       "Refresh tokens deleted by the reaper past expiry and grace."},
    [METRICS_REAPED_INVITES] = {"reaped_invites", "Invites deleted by the reaper past expiry and grace."},
    [METRICS_REAPED_SESSIONS] = {"reaped_sessions",
                                 "Sessions (what they kept of the client) deleted by the reaper past expiry and grace."},
    [METRICS_REAPED_USER_TOKENS] = {"reaped_user_tokens",
                                    "Password reset and email verification tokens deleted past expiry and grace."},
    [METRICS_REAPED_AUTH_EVENTS] = {"reaped_auth_events",
                                    "Auth outbox events (for the mailer) deleted past their token's expiry and grace."},
    [METRICS_REAPED_CHANGES] = {"reaped_changes", "Change-feed events trimmed by the reaper past the retention."},
    [METRICS_REAPED_AUDIT_PARTITIONS] = {"reaped_audit_partitions",
                                         "Audit log partitions dropped by the reaper past the retention."},
    [METRICS_REAPED_AUDIT_ENTRIES] = {"reaped_audit_entries",
                                      "Audit entries deleted by the reaper past the retention (memory engine)."},
    [METRICS_REAPER_RUNS] = {"reaper_runs", "Reaper runs that completed."},
    [METRICS_REAPER_ERRORS] = {"reaper_errors", "Reaper runs that failed (tried again next interval)."},
    [METRICS_OPENAPI_BUILT] = {"openapi_built", "GET /openapi.json documents built from the route table and the schemas."},
    [METRICS_OPENAPI_KEPT] = {"openapi_kept",
                              "GET /openapi.json answered with a document the worker kept (nothing it lists changed)."},
};

static const char *const CACHE_USES[METRICS_NCACHE] = {
    [METRICS_CACHE_PRINCIPAL] = "principal",
    [METRICS_CACHE_APPS] = "apps",
    [METRICS_CACHE_SCHEMA] = "schema",
    [METRICS_CACHE_RECORDS] = "records",
};

/* struct cache_stats's fields, rendered as tessera_cache_<name>_total{use}. */
static const struct {
    const char *name, *help;
    size_t off;
} CACHE_STATS[] = {
    {"hits", "Reads served from the cache (cached nulls included).", offsetof(struct cache_stats, hits)},
    {"misses", "Reads the cache did not hold.", offsetof(struct cache_stats, misses)},
    {"loads", "Loader runs (the store was asked).", offsetof(struct cache_stats, loads)},
    {"waits", "Reads that waited for another process's load (single-flight).",
     offsetof(struct cache_stats, waits)},
    {"lock_timeouts", "Reads that waited the whole bound and loaded themselves.",
     offsetof(struct cache_stats, lock_timeouts)},
    {"fallbacks", "Reads served by the store because the kv failed (fail open).",
     offsetof(struct cache_stats, fallbacks)},
    {"bump_errors", "Version bumps the kv failed (old entries live until their TTL).",
     offsetof(struct cache_stats, bump_errors)},
    {"read_ahead", "Reads whose version came with the request's first kv round trip (read ahead).",
     offsetof(struct cache_stats, ahead)},
};

struct metrics *metrics_new(void)
{
    void *p = mmap(NULL, sizeof(struct metrics), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* anonymous mappings start zeroed */
}

void metrics_free(struct metrics *m)
{
    if (m != NULL)
        munmap(m, sizeof *m);
}

static int status_index(int status)
{
    for (int i = 0; i < METRICS_NSTATUS - 1; i++)
        if (STATUSES[i] == status)
            return i;
    return METRICS_NSTATUS - 1;
}

void metrics_observe(struct metrics *m, int slot, int route, int status, uint64_t dur_us)
{
    if (m == NULL || slot < 0 || slot >= METRICS_MAX_SLOTS || route < 0 || route >= METRICS_MAX_ROUTES)
        return;
    struct metrics_route *r = &m->slot[slot].route[route];
    int b = 0;
    while (b < METRICS_NBUCKETS && dur_us > BOUNDS_US[b])
        b++;
    __atomic_fetch_add(&r->status[status_index(status)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->bucket[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&r->sum_us, dur_us, __ATOMIC_RELAXED);
}

void metrics_count(struct metrics *m, int slot, int counter)
{
    if (m == NULL || slot < 0 || slot >= METRICS_MAX_SLOTS || counter < 0 || counter >= METRICS_NCOUNTERS)
        return;
    __atomic_fetch_add(&m->slot[slot].counter[counter], 1, __ATOMIC_RELAXED);
}

void metrics_add(struct metrics *m, int slot, int counter, uint64_t n)
{
    if (m == NULL || slot < 0 || slot >= METRICS_MAX_SLOTS || counter < 0 || counter >= METRICS_NCOUNTERS)
        return;
    __atomic_fetch_add(&m->slot[slot].counter[counter], n, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

struct cache_stats *metrics_cache_stats(struct metrics *m, int slot, int use)
{
    static struct cache_stats nowhere; /* counted, never rendered */

    if (m == NULL || slot < 0 || slot >= METRICS_MAX_SLOTS || use < 0 || use >= METRICS_NCACHE)
        return &nowhere;
    return &m->slot[slot].cache[use];
}

uint64_t metrics_slot_total(const struct metrics *m, int slot)
{
    uint64_t n = 0;

    if (slot < 0 || slot >= METRICS_MAX_SLOTS)
        return 0;
    for (int r = 0; r < METRICS_MAX_ROUTES; r++)
        for (int s = 0; s < METRICS_NSTATUS; s++)
            n += load(&m->slot[slot].route[r].status[s]);
    return n;
}

int metrics_render(const struct metrics *m, const char *const *labels, size_t nroutes,
                   struct buf *out)
{
    int rc = 0;

    if (nroutes > METRICS_MAX_ROUTES)
        nroutes = METRICS_MAX_ROUTES;
    rc |= buf_puts(out, "# HELP tessera_http_requests_total Requests answered, by route and status.\n"
                        "# TYPE tessera_http_requests_total counter\n");
    for (size_t r = 0; r < nroutes && rc == 0; r++)
        for (int s = 0; s < METRICS_NSTATUS; s++) {
            uint64_t n = 0;
            for (int k = 0; k < METRICS_MAX_SLOTS; k++)
                n += load(&m->slot[k].route[r].status[s]);
            if (n == 0)
                continue;
            if (s < METRICS_NSTATUS - 1)
                rc |= buf_printf(out, "tessera_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                 labels[r], STATUSES[s], (unsigned long long)n);
            else
                rc |= buf_printf(out, "tessera_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                                 labels[r], (unsigned long long)n);
        }
    rc |= buf_puts(out, "# HELP tessera_http_request_duration_seconds Time from request to response, by route.\n"
                        "# TYPE tessera_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < nroutes && rc == 0; r++) {
        uint64_t bucket[METRICS_NBUCKETS + 1] = {0}, sum = 0, cum = 0;
        for (int k = 0; k < METRICS_MAX_SLOTS; k++) {
            for (int b = 0; b <= METRICS_NBUCKETS; b++)
                bucket[b] += load(&m->slot[k].route[r].bucket[b]);
            sum += load(&m->slot[k].route[r].sum_us);
        }
        for (int b = 0; b <= METRICS_NBUCKETS; b++)
            cum += bucket[b];
        if (cum == 0)
            continue;
        uint64_t total = cum;
        cum = 0;
        for (int b = 0; b < METRICS_NBUCKETS; b++) {
            cum += bucket[b];
            rc |= buf_printf(out, "tessera_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                             labels[r], (double)BOUNDS_US[b] / 1e6, (unsigned long long)cum);
        }
        rc |= buf_printf(out, "tessera_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                         labels[r], (unsigned long long)total);
        rc |= buf_printf(out, "tessera_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", labels[r],
                         (double)sum / 1e6);
        rc |= buf_printf(out, "tessera_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                         labels[r], (unsigned long long)total);
    }
    for (int c = 0; c < METRICS_NCOUNTERS && rc == 0; c++) {
        uint64_t n = 0;
        for (int k = 0; k < METRICS_MAX_SLOTS; k++)
            n += load(&m->slot[k].counter[c]);
        rc |= buf_printf(out, "# HELP tessera_%s_total %s\n# TYPE tessera_%s_total counter\ntessera_%s_total %llu\n",
                         COUNTERS[c].name, COUNTERS[c].help, COUNTERS[c].name, COUNTERS[c].name,
                         (unsigned long long)n);
    }
    for (size_t f = 0; f < sizeof CACHE_STATS / sizeof CACHE_STATS[0] && rc == 0; f++) {
        rc |= buf_printf(out, "# HELP tessera_cache_%s_total %s\n# TYPE tessera_cache_%s_total counter\n",
                         CACHE_STATS[f].name, CACHE_STATS[f].help, CACHE_STATS[f].name);
        for (int u = 0; u < METRICS_NCACHE && rc == 0; u++) {
            uint64_t n = 0;
            for (int k = 0; k < METRICS_MAX_SLOTS; k++)
                n += load((const uint64_t *)((const char *)&m->slot[k].cache[u] + CACHE_STATS[f].off));
            rc |= buf_printf(out, "tessera_cache_%s_total{use=\"%s\"} %llu\n", CACHE_STATS[f].name,
                             CACHE_USES[u], (unsigned long long)n);
        }
    }
    return rc != 0 ? ERR_TOOBIG : 0;
}
