/* Operations endpoints: liveness, readiness per dependency, Prometheus metrics;
 * and, in test builds only, the hooks the fleet tests drive. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "store/mem/shm.h"
#include "core/buf.h"
#include "core/json.h"

HANDLER(handle_ops_healthz)
{
    static const char body[] = "{\"status\":\"ok\"}";

    return http_send(r, 200, "application/json; charset=utf-8", body, sizeof body - 1);
}

/* Adds {"<name>": {"status": "ok"|"down", "detail": …}} and says whether it is up. */
static bool check(cJSON *checks, const char *name, const char *kind, int rc, const char *detail)
{
    cJSON *o = cJSON_AddObjectToObject(checks, name);

    if (o != NULL) {
        cJSON_AddStringToObject(o, "status", rc == 0 ? "ok" : "down");
        cJSON_AddStringToObject(o, "backend", kind);
        if (rc != 0)
            cJSON_AddStringToObject(o, "error", detail[0] != '\0' ? detail : err_str(rc));
    }
    return rc == 0;
}

/* Ready means every dependency answers now: the engine (on postgres, the core
 * pool and each mode pool this worker has opened) and the kv (blacklist). */
HANDLER(handle_ops_readyz)
{
    cJSON *root = http_own(r, cJSON_CreateObject()), *checks;
    struct eng_pool_info pools[48];
    bool up = true;

    if (root == NULL || (checks = cJSON_AddObjectToObject(root, "checks")) == NULL)
        return ERR_NOMEM;
    size_t n = w->engine != NULL ? engine_pools(w->engine, true, pools, 48) : 0;
    if (n > 0) {
        for (size_t i = 0; i < n; i++) {
            char name[96];
            if (i > 0 && !pools[i].used)
                continue; /* a mode this worker never served: nothing to check */
            snprintf(name, sizeof name, "db_%s", pools[i].name);
            up &= check(checks, name, engine_name(w->engine), pools[i].ping, pools[i].error);
        }
    } else if (w->engine != NULL) {
        up &= check(checks, "engine", engine_name(w->engine), engine_ping(w->engine), w->engine->errstr);
    }
    if (w->kv != NULL)
        up &= check(checks, "kv", kv_name(w->kv), kv_ping(w->kv), w->kv->errstr);
    if (w->cache_kv != NULL && w->cache_kv != w->kv) /* shown; its outage fails open, so ready stays */
        (void)check(checks, "cache_kv", kv_name(w->cache_kv), kv_ping(w->cache_kv), w->cache_kv->errstr);
    if (cJSON_AddStringToObject(root, "status", up ? "ready" : "unavailable") == NULL)
        return ERR_NOMEM;
    return http_send_json(r, up ? 200 : 503, root);
}

/* Per-slot gauges from the scoreboard, next to the request counters. */
static int render_slots(const struct scoreboard *sb, struct buf *out)
{
    int64_t now = sb_now_ms();
    int rc = buf_puts(out, "# HELP tessera_slot_info Fleet slots: role, pid and state.\n"
                           "# TYPE tessera_slot_info gauge\n");

    for (int i = 0; i < SB_MAX_ROWS && rc == 0; i++) {
        const struct sb_row *row = &sb->row[i];
        if (row->state == SB_FREE)
            continue;
        rc = buf_printf(out, "tessera_slot_info{slot=\"%d\",role=\"%s\",pid=\"%d\",state=\"%s\"} 1\n",
                        row->slot, sb_role_name(row->role), (int)row->pid, sb_state_name(row->state));
    }
    /* the projectors' (DESIGN §6): what each applied, how far behind it last was */
    rc = rc != 0 ? rc : buf_puts(out, "# HELP tessera_projector_lag_ms Age of the oldest outbox event a projector saw waiting.\n"
                                      "# TYPE tessera_projector_lag_ms gauge\n"
                                      "# TYPE tessera_projector_events_applied gauge\n");
    for (int i = 0; i < SB_MAX_ROWS && rc == 0; i++) {
        const struct sb_row *row = &sb->row[i];
        if (row->state == SB_FREE || row->role != SB_ROLE_PROJECTOR)
            continue;
        rc = buf_printf(out, "tessera_projector_lag_ms{slot=\"%d\",pid=\"%d\"} %lld\n"
                             "tessera_projector_events_applied{slot=\"%d\",pid=\"%d\"} %llu\n",
                        row->slot, (int)row->pid, (long long)row->lag_ms, row->slot, (int)row->pid,
                        (unsigned long long)row->applied);
    }
    static const char *const names[] = {"requests", "restarts", "rss_bytes", "uptime_seconds"};
    for (size_t k = 0; k < sizeof names / sizeof names[0] && rc == 0; k++) {
        rc = buf_printf(out, "# TYPE tessera_slot_%s gauge\n", names[k]);
        for (int i = 0; i < SB_MAX_ROWS && rc == 0; i++) {
            const struct sb_row *row = &sb->row[i];
            double v[] = {(double)row->requests, row->restarts, (double)row->rss_kb * 1024.0,
                          (double)(now - row->started_ms) / 1000.0};
            if (row->state == SB_FREE)
                continue;
            rc = buf_printf(out, "tessera_slot_%s{slot=\"%d\",pid=\"%d\"} %.17g\n", names[k],
                            row->slot, (int)row->pid, v[k]);
        }
    }
    return rc;
}

/* The memory engine's shared region: how full it is (the outbox, the audit
 * log and the change feed all live in it; the projector keeps it bounded). */
static int render_region(struct shm_region *data, struct buf *out)
{
    struct shm_stats st;

    if (data == NULL)
        return 0;
    if (shm_lock(data) != 0)
        return 0; /* a scrape never waits on a broken region */
    shm_stats(data, &st);
    shm_unlock(data);
    return buf_printf(out, "# HELP tessera_memory_region_bytes The memory engine's shared region.\n"
                           "# TYPE tessera_memory_region_bytes gauge\n"
                           "tessera_memory_region_bytes{kind=\"size\"} %zu\n"
                           "tessera_memory_region_bytes{kind=\"used\"} %zu\n"
                           "tessera_memory_region_bytes{kind=\"free\"} %zu\n",
                      st.heap, st.used, st.free);
}

/* This worker's connection pools (the engine's; none on memory). */
static int render_pools(struct engine *e, int64_t pid, struct buf *out)
{
    struct eng_pool_info p[48];
    size_t n = engine_pools(e, false, p, 48);
    static const char *const gauges[] = {"limit", "open", "busy"};
    static const char *const counters[] = {"connects", "connect_errors", "waits",      "errors",
                                           "discards", "round_trips",    "statements"};
    int rc = 0;

    for (size_t k = 0; k < 3 && n > 0 && rc == 0; k++) {
        rc = buf_printf(out, "# TYPE tessera_db_pool_%s gauge\n", gauges[k]);
        for (size_t i = 0; i < n && rc == 0; i++) {
            int v[] = {p[i].limit, p[i].open, p[i].busy};
            rc = buf_printf(out, "tessera_db_pool_%s{pool=\"%s\",pid=\"%lld\"} %d\n", gauges[k],
                            p[i].name, (long long)pid, v[k]);
        }
    }
    for (size_t k = 0; k < sizeof counters / sizeof counters[0] && n > 0 && rc == 0; k++) {
        rc = buf_printf(out, "# TYPE tessera_db_pool_%s_total counter\n", counters[k]);
        for (size_t i = 0; i < n && rc == 0; i++) {
            uint64_t v[] = {p[i].connects, p[i].connect_errors, p[i].waits,     p[i].errors,
                            p[i].discards, p[i].round_trips,    p[i].statements};
            rc = buf_printf(out, "tessera_db_pool_%s_total{pool=\"%s\",pid=\"%lld\"} %llu\n", counters[k],
                            p[i].name, (long long)pid, (unsigned long long)v[k]);
        }
    }
    return rc;
}

HANDLER(handle_ops_metrics)
{
    struct buf out;
    int rc = 0;

    buf_init(&out, 4u << 20);
    if (w->metrics != NULL)
        rc = metrics_render(w->metrics, w->labels, w->nlabels, &out);
    if (rc == 0 && w->sb != NULL)
        rc = render_slots(w->sb, &out);
    if (rc == 0 && w->engine != NULL)
        rc = render_pools(w->engine, (int64_t)getpid(), &out);
    if (rc == 0 && w->shared != NULL)
        rc = render_region(w->shared->data, &out);
    if (rc == 0)
        rc = http_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", out.p ? out.p : "",
                       out.len);
    buf_cleanup(&out);
    return rc;
}

/* GET /v1/admin/fleet: `tessera status` for the console — the scoreboard as
 * JSON (sb_to_json), platform admins only: pids and restarts are the
 * deployment's, not a tenant's. */
HANDLER(handle_ops_fleet)
{
    if (!p->platform_admin)
        return respond_error(r, ERR_FORBIDDEN, "only platform admins see the fleet");
    if (w->sb == NULL)
        return respond_error(r, ERR_UNAVAILABLE, "this process runs outside a fleet");
    cJSON *root = http_own(r, sb_to_json(w->sb));
    if (root == NULL)
        return ERR_NOMEM;
    return http_send_json(r, 200, root);
}

#ifdef TESSERA_TEST_HOOKS
/* GET /debug/sleep?ms=N: a slow request for the graceful stop and reload tests. */
HANDLER(handle_debug_sleep)
{
    const char *ms = query_get(&r->query, "ms");
    long n = ms != NULL ? strtol(ms, NULL, 10) : 1000;
    struct timespec ts;

    if (n < 0 || n > 60000)
        return respond_error(r, ERR_INVAL, "ms must be within 0..60000");
    ts.tv_sec = n / 1000;
    ts.tv_nsec = (n % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ; /* a signal (stop, reload) must not cut the request short */
    cJSON *root = http_own(r, cJSON_CreateObject());
    if (root == NULL || cJSON_AddNumberToObject(root, "slept_ms", (double)n) == NULL)
        return ERR_NOMEM;
    return http_send_json(r, 200, root);
}

/* Echoes what the dispatcher parsed: method, path parameters, query, JSON body. */
HANDLER(handle_debug_echo)
{
    cJSON *root = http_own(r, cJSON_CreateObject()), *o;

    if (root == NULL || cJSON_AddStringToObject(root, "method", r->method_str) == NULL)
        return ERR_NOMEM;
    if ((o = cJSON_AddObjectToObject(root, "params")) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < r->match.nparams; i++)
        if (cJSON_AddStringToObject(o, r->match.name[i], r->match.value[i]) == NULL)
            return ERR_NOMEM;
    if ((o = cJSON_AddObjectToObject(root, "query")) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < r->query.n; i++)
        if (cJSON_AddStringToObject(o, r->query.p[i].key, r->query.p[i].value) == NULL)
            return ERR_NOMEM;
    if (r->json != NULL) {
        cJSON *copy = cJSON_Duplicate(r->json, 1);
        if (copy == NULL || !cJSON_AddItemToObject(root, "json", copy)) {
            cJSON_Delete(copy);
            return ERR_NOMEM;
        }
    }
    return http_send_json(r, 200, root);
}
#endif
