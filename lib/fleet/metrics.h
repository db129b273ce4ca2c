/* metrics: request counters and latency histograms in shared memory, one block
 * per fleet slot, so each worker writes only its own block (no locks: one
 * writer, relaxed atomics) and a scrape on any worker sums every block.
 * A replacement worker inherits its slot's block, so counters never go back.
 * Rendering knows nothing of routes: the caller passes the route labels. */
#ifndef LIB_METRICS_H
#define LIB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "store/cache.h"

#define METRICS_MAX_SLOTS 64
#define METRICS_MAX_ROUTES 64
#define METRICS_NSTATUS 22      /* the statuses tessera answers, and "other" */
#define METRICS_NBUCKETS 12

struct metrics_route {
    uint64_t status[METRICS_NSTATUS];
    uint64_t bucket[METRICS_NBUCKETS + 1];  /* per bucket, not cumulative; last is +Inf */
    uint64_t sum_us;
};

/* Event counters beside the per-route ones, named in one table (metrics.c) and
 * rendered as tessera_<name>_total even while 0, so an alert on one has its
 * series from the first scrape. */
enum metrics_counter {
    METRICS_LOGIN_THROTTLED,        /* logins refused 429 by the failed-login throttle */
    METRICS_LOGIN_THROTTLE_ERRORS,  /* throttle kv calls that failed: logins let through unchecked */
    METRICS_PROJECTOR_EVENTS,       /* outbox events the projectors applied */
    METRICS_PROJECTOR_REBUILDS,     /* read models rebuilt from their records */
    METRICS_PROJECTOR_ERRORS,       /* projector rounds that failed (tried again) */
    METRICS_REAPED_RECORDS,         /* the reaper's deletions, by kind */
    METRICS_REAPED_REFRESH_TOKENS,
    METRICS_REAPED_INVITES,
    METRICS_REAPED_SESSIONS,
    METRICS_REAPED_USER_TOKENS,
    METRICS_REAPED_AUTH_EVENTS,
    METRICS_REAPED_CHANGES,
    METRICS_REAPED_AUDIT_PARTITIONS,
    METRICS_REAPED_AUDIT_ENTRIES,
    METRICS_REAPER_RUNS,
    METRICS_REAPER_ERRORS,
    METRICS_OPENAPI_BUILT,          /* GET /openapi.json documents built */
    METRICS_OPENAPI_KEPT,           /* … answered with the bytes a worker kept */
    METRICS_NCOUNTERS
};

/* The read cache's uses (DESIGN §3), each with its own counters. */
enum metrics_cache_use {
    METRICS_CACHE_PRINCIPAL,        /* membership, role and permissions per caller */
    METRICS_CACHE_APPS,             /* app discovery */
    METRICS_CACHE_SCHEMA,           /* resource definitions */
    METRICS_CACHE_RECORDS,          /* record reads */
    METRICS_NCACHE
};

struct metrics_slot {
    struct metrics_route route[METRICS_MAX_ROUTES];
    uint64_t counter[METRICS_NCOUNTERS];
    struct cache_stats cache[METRICS_NCACHE];
};

struct metrics {
    struct metrics_slot slot[METRICS_MAX_SLOTS];
};

/* Returns owned (metrics_free): a zeroed shared anonymous mapping, made by the
 * master before fork so every worker sees it; NULL on failure. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Counts one request of route `route` (index into the caller's labels) that
 * answered `status` after `dur_us` microseconds. Out-of-range indexes are ignored. */
void metrics_observe(struct metrics *m, int slot, int route, int status, uint64_t dur_us);

/* Adds 1 to event counter `counter` (enum metrics_counter) of slot; NULL m or
 * out-of-range indexes are ignored. */
void metrics_count(struct metrics *m, int slot, int counter);
/* Adds n, as metrics_count adds 1. */
void metrics_add(struct metrics *m, int slot, int counter, uint64_t n);

/* Borrowed: slot's counters of cache use `use` (enum metrics_cache_use), for the
 * cache to count into directly; a private dummy for NULL m or out-of-range indexes. */
struct cache_stats *metrics_cache_stats(struct metrics *m, int slot, int use);

/* Requests served by one slot, all routes. */
uint64_t metrics_slot_total(const struct metrics *m, int slot);

/* Appends the Prometheus text exposition of the fleet-wide sums:
 * tessera_http_requests_total{route,status},
 * tessera_http_request_duration_seconds{route} (histogram), the event
 * counters and tessera_cache_<what>_total{use}. */
int metrics_render(const struct metrics *m, const char *const *route_labels, size_t nroutes,
                   struct buf *out) ERR_MUST_CHECK;

#endif
