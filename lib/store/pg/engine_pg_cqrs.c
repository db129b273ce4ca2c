/* engine_pg_cqrs: the PostgreSQL engine's CQRS ops (lib/store/engine.h,
 * "CQRS"): the projector's batches, its LISTEN wake-up, the reaper, and the
 * two reads of what it made (a view, the change feed). The work across orgs
 * happens in SECURITY DEFINER functions (sql/0008_cqrs.sql has the design):
 * this file calls them once per mode and store, in a transaction of that
 * mode's data pool (or the core pool for tokens, invites and the audit log),
 * and hands back what they touched. The reads run as tessera_app in the
 * request's transaction: RLS keeps them inside the caller's org.
 *
 * The wake-up is a LISTEN on 'tessera_outbox' over a connection of its own
 * per listen DSN ([cqrs] <mode>_listen_dsn, else the mode's data DSN): LISTEN
 * is session state, which a pooled (least of all a PgBouncer transaction-
 * pooled) connection cannot keep. It opens on the first wait and again after
 * a failure; while it cannot, wait says ERR_UNAVAILABLE and the projector
 * polls. It listens only while the projector is idle: a round that applied
 * events ends the LISTEN (under a steady write load every commit would
 * otherwise signal the listening backend, which wakes to queue a message the
 * busy projector never waits for: 7 % of a core at 3 600 creates/s), and the
 * next wait — after a round that found nothing — listens again and returns
 * at once, so a round runs after the LISTEN took effect and nothing committed
 * in between waits for the poll. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "store/pg/engine_pg_int.h"
#include "store/pg/pgrec.h"

/* ---- the projector ---------------------------------------------------------------- */

static int64_t json_int(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

/* The touched list of a function's answer, to touch, for mode's stores. */
static void report_touched(const cJSON *o, int mode, eng_touch_fn touch, void *ctx)
{
    const cJSON *t, *list = cJSON_GetObjectItemCaseSensitive(o, "touched");

    cJSON_ArrayForEach(t, list) {
        const cJSON *svc = cJSON_GetArrayItem(t, 0), *org = cJSON_GetArrayItem(t, 1), *res = cJSON_GetArrayItem(t, 2);
        struct eng_scope s = {.mode = mode};

        if (touch == NULL || !cJSON_IsString(svc) || !cJSON_IsString(org) || !cJSON_IsString(res) ||
            strlen(org->valuestring) >= sizeof s.org_id)
            continue;
        memcpy(s.org_id, org->valuestring, strlen(org->valuestring) + 1);
        touch(ctx, &s, svc->valuestring, res->valuestring);
    }
}

/* One function call in a transaction of its own on tx; its jsonb answer
 * parsed into *out (Returns owned). */
static int call_json(struct engine *e, struct pg_tx *tx, const char *what, const char *sql, int n,
                     const char *const *vals, cJSON **out)
{
    char why[128] = "";
    const struct pg_stmt st = {sql, n, vals, true, false};
    PGresult *r = NULL;
    int rc = pg_tx_run(tx, NULL, CORE_PATH, &st, 1, true, &r, why);

    *out = NULL;
    if (rc == 0 && (PQntuples(r) != 1 || (*out = cJSON_Parse(PQgetvalue(r, 0, 0))) == NULL))
        rc = ERR_INTERNAL;
    PQclear(r);
    if (rc == 0)
        rc = pg_tx_commit(tx, why);
    else
        pg_tx_rollback(tx);
    if (rc != 0) {
        cJSON_Delete(*out);
        *out = NULL;
        return engine_fail(e, rc, "%s: %s", what, why[0] ? why : "malformed answer");
    }
    return 0;
}

/* LISTEN (on) or UNLISTEN on store i's open connection; false when it broke
 * (then closed: the next wait opens it anew). */
static bool listen_set(struct pge *g, int i, bool on)
{
    struct pge_store *st = &g->st[i];
    PGresult *r = PQexec(st->listen, on ? "LISTEN tessera_outbox" : "UNLISTEN tessera_outbox");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    PQclear(r);
    if (!ok) {
        PQfinish(st->listen);
        st->listen = NULL;
    }
    st->listening = ok && on;
    return ok;
}

/* Every data store, each its mode's: the shared ones and each placed
 * database's (issue 18 §7), so the outbox of every database holding data is
 * read. The data pools of both modes may be one database: a store is then
 * named by its (service, mode) in core.resources, so each mode's call sees
 * its own. A store that fails leaves the others' events to be applied; the
 * first failure is the answer. */
int pgc_project(struct engine *e, size_t max, eng_touch_fn touch, void *ctx, struct eng_projection *out)
{
    struct pge *g = e->impl;
    char batch[16];
    int rc = 0;

    if (g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "project inside a unit of work");
    snprintf(batch, sizeof batch, "%zu", max > 100000 ? (size_t)100000 : max);
    for (int i = 0; i < g->nst; i++) {
        cJSON *o;
        int m = g->st[i].mode, src;
        const char *vals[2] = {engine_mode_name(m), batch};
        if ((src = call_json(e, &g->st[i].tx, "project", "SELECT core.cqrs_project($1, $2::int)::text", 2, vals,
                             &o)) != 0) {
            if (rc == 0)
                rc = src;
            continue;
        }
        int64_t pending = json_int(o, "pending_ms");
        out->applied += (uint64_t)json_int(o, "applied");
        out->rebuilt += (uint64_t)json_int(o, "rebuilt");
        out->more = out->more || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "more"));
        if (pending > 0 && (out->pending_ms == 0 || pending < out->pending_ms))
            out->pending_ms = pending;
        report_touched(o, m, touch, ctx);
        cJSON_Delete(o);
    }
    /* work was there: the projector looks again rather than waits (above) */
    for (int i = 0; out->applied > 0 && i < g->nst; i++)
        if (g->st[i].listen != NULL && g->st[i].listening)
            (void)listen_set(g, i, false);
    return rc;
}

/* ---- the wake-up --------------------------------------------------------------------- */

void pgc_listen_close(struct pge *g)
{
    for (int i = 0; i < g->nst; i++) {
        if (g->st[i].listen != NULL)
            PQfinish(g->st[i].listen);
        g->st[i].listen = NULL;
    }
}

/* Store i's LISTEN connection, opened when missing; NULL when it cannot be. */
static PGconn *listener(struct engine *e, int i)
{
    struct pge_store *st = &((struct pge *)e->impl)->st[i];
    PGresult *r;

    if (st->listen != NULL && PQstatus(st->listen) == CONNECTION_OK)
        return st->listen;
    if (st->listen != NULL)
        PQfinish(st->listen);
    st->listen = PQconnectdb(st->listen_dsn);
    if (PQstatus(st->listen) != CONNECTION_OK) {
        engine_fail(e, ERR_UNAVAILABLE, "listen (%s): cannot connect", st->label);
        goto fail;
    }
    r = PQexec(st->listen, "LISTEN tessera_outbox");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        PQclear(r);
        engine_fail(e, ERR_UNAVAILABLE, "listen (%s): LISTEN refused", st->label);
        goto fail;
    }
    PQclear(r);
    st->listening = true;
    return st->listen;
fail:
    PQfinish(st->listen);
    st->listen = NULL;
    return NULL;
}

/* Drains what arrived; false when the connection broke. */
static bool drain(PGconn *c, bool *woken)
{
    PGnotify *n;

    if (PQconsumeInput(c) == 0)
        return false;
    while ((n = PQnotifies(c)) != NULL) {
        *woken = true;
        PQfreemem(n);
    }
    return true;
}

int pgc_wait(struct engine *e, int timeout_ms)
{
    struct pge *g = e->impl;
    struct pollfd p[PGE_STORES];
    int store[PGE_STORES], n = 0, rc = 0;
    bool woken = false;

    for (int i = 0; i < g->nst; i++) {
        PGconn *c;
        bool heard = false;
        for (int j = 0; j < i; j++)
            heard |= strcmp(g->st[j].listen_dsn, g->st[i].listen_dsn) == 0;
        if (heard)
            continue; /* one database: one LISTEN hears every store in it */
        if (g->st[i].listen != NULL && !g->st[i].listening) {
            /* back from work: listen again, and go round once more before
             * waiting, for what committed before the LISTEN did */
            if (listen_set(g, i, true))
                woken = true;
            else
                rc = engine_fail(e, ERR_UNAVAILABLE, "listen (%s): connection lost", g->st[i].label);
            continue;
        }
        if ((c = listener(e, i)) == NULL) {
            rc = ERR_UNAVAILABLE;
            continue;
        }
        /* what came while the projector worked: go round again at once */
        if (!drain(c, &woken)) {
            PQfinish(g->st[i].listen);
            g->st[i].listen = NULL;
            rc = engine_fail(e, ERR_UNAVAILABLE, "listen (%s): connection lost", g->st[i].label);
            continue;
        }
        p[n] = (struct pollfd){.fd = PQsocket(c), .events = POLLIN};
        store[n++] = i;
    }
    if (woken || n == 0)
        return woken ? 0 : rc;
    /* a signal (stop) ends the wait early: poll returns EINTR */
    if (poll(p, (nfds_t)n, timeout_ms) > 0)
        for (int i = 0; i < n; i++)
            if (p[i].revents != 0 && !drain(g->st[store[i]].listen, &woken)) {
                PQfinish(g->st[store[i]].listen);
                g->st[store[i]].listen = NULL;
            }
    return 0;
}

/* ---- the reaper ---------------------------------------------------------------------------- */

int pgc_reap(struct engine *e, const struct eng_reap_policy *p, eng_touch_fn touch, void *ctx,
             struct eng_reaped *out)
{
    struct pge *g = e->impl;
    char now[24], max[16], keep[24], grace[24], months[16];
    cJSON *o;
    int rc = 0;

    if (g->in_tx)
        return engine_fail(e, ERR_INTERNAL, "reap inside a unit of work");
    snprintf(now, sizeof now, "%lld", (long long)p->now);
    snprintf(max, sizeof max, "%zu", p->max > 100000 ? (size_t)100000 : p->max);
    snprintf(keep, sizeof keep, "%lld", (long long)p->changes_retention);
    snprintf(grace, sizeof grace, "%lld", (long long)p->token_grace);
    snprintf(months, sizeof months, "%d", p->audit_retention_months);
    /* every store, each on its own (a placed database that is down keeps
     * its own expired rows, not the others'); the first failure answers */
    int src = 0;
    for (int i = 0; i < g->nst; i++) {
        int m = g->st[i].mode;
        /* rounds until a store has nothing more to delete now */
        for (int round = 0; round < 1000; round++) {
            const char *vals[4] = {engine_mode_name(m), now, max, keep};
            if ((src = call_json(e, &g->st[i].tx, "reap", "SELECT core.cqrs_reap($1, $2::bigint, $3::int, $4::bigint)::text",
                                 4, vals, &o)) != 0) {
                if (rc == 0)
                    rc = src;
                break;
            }
            out->records += (uint64_t)json_int(o, "records");
            out->changes += (uint64_t)json_int(o, "changes");
            report_touched(o, m, touch, ctx);
            bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "more"));
            cJSON_Delete(o);
            if (!more)
                break;
        }
    }
    {
        const char *vals[3] = {now, grace, months};
        if ((src = call_json(e, &g->core_tx, "reap core", "SELECT core.reap_core($1::bigint, $2::bigint, $3::int)::text",
                             3, vals, &o)) == 0) {
            out->refresh_tokens += (uint64_t)json_int(o, "refresh_tokens");
            out->invites += (uint64_t)json_int(o, "invites");
            out->audit_partitions += (uint64_t)json_int(o, "audit_partitions");
            cJSON_Delete(o);
        } else if (rc == 0) {
            rc = src;
        }
    }
    {
        const char *vals[2] = {now, grace};
        if ((src = call_json(e, &g->core_tx, "reap accounts", "SELECT core.reap_accounts($1::bigint, $2::bigint)::text",
                             2, vals, &o)) == 0) {
            out->sessions += (uint64_t)json_int(o, "sessions");
            out->user_tokens += (uint64_t)json_int(o, "user_tokens");
            out->auth_events += (uint64_t)json_int(o, "auth_events");
            cJSON_Delete(o);
        } else if (rc == 0) {
            rc = src;
        }
    }
    return rc;
}

int pgc_org_platform(struct engine *e, struct eng_org *out)
{
    PGresult *r;
    int rc = q(e, NULL, false,
               "SELECT id, name, slug, plan, is_platform, " EPOCH("created_at") " FROM core.platform_org()", 0, NULL,
               &r);

    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return engine_fail(e, ERR_NOTFOUND, "no platform org");
    }
    memset(out, 0, sizeof *out);
    cpy(out->id, sizeof out->id, r, 0, 0);
    cpy(out->name, sizeof out->name, r, 0, 1);
    cpy(out->slug, sizeof out->slug, r, 0, 2);
    cpy(out->plan, sizeof out->plan, r, 0, 3);
    out->platform = PQgetvalue(r, 0, 4)[0] == 't';
    out->created_at = i64(r, 0, 5);
    PQclear(r);
    return 0;
}

/* ---- the reads: a view, the change feed (the caller's transaction, RLS) ----------------- */

int pgc_view_read(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                  const char *view, cJSON **rows, bool *more, int64_t *pending_ms)
{
    struct pgrec_call c;
    cJSON *views = NULL;
    int rc;

    if ((rc = pgrec_call_open(e, s, service, resource, false, &c)) != 0)
        goto out;
    views = c.def->views[0] != '\0' ? cJSON_Parse(c.def->views) : NULL;
    if (views == NULL || cJSON_GetObjectItemCaseSensitive(views, view) == NULL) {
        rc = engine_fail(e, ERR_NOTFOUND, "no such view");
        goto out;
    }
    /* fresh: the read model was built for the definition in force */
    if (pgrec_param(&c.p[0], s->org_id) == 0 || pgrec_param(&c.p[0], resource) == 0 ||
        pgrec_param(&c.p[0], view) == 0 || pgrec_param(&c.p[0], service) == 0 ||
        pgrec_param(&c.p[0], engine_mode_name(s->mode)) == 0 ||
        buf_puts(&c.b[0], "SELECT v.fp = (SELECT core.cqrs_fp(fields, options) FROM core.resources "
                          "WHERE service = $4 AND mode = $5 AND name = $2), (v.views -> $3)::text, "
                          "(SELECT min(at_ms) FROM ") != 0 ||
        pgrec_qtable(&c.b[0], c.schema, "_outbox") != 0 ||
        buf_puts(&c.b[0], " WHERE org_id = $1::uuid AND resource = $2 AND pos IS NULL), "
                          "(SELECT (extract(epoch FROM updated_at) * 1000)::bigint FROM core.resources "
                          "WHERE service = $4 AND mode = $5 AND name = $2), "
                          "EXISTS (SELECT 1 FROM ") != 0 ||
        pgrec_qtable(&c.b[0], c.schema, resource) != 0 ||
        buf_puts(&c.b[0], " WHERE org_id = $1::uuid) FROM (SELECT 1) one LEFT JOIN ") != 0 ||
        pgrec_qtable(&c.b[0], c.schema, "_views") != 0 ||
        buf_puts(&c.b[0], " v ON v.org_id = $1::uuid AND v.resource = $2") != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if ((rc = pgrec_call_run(e, s, &c, 1)) != 0)
        goto out;
    const PGresult *r = c.r[0];
    bool fresh = PQgetvalue(r, 0, 0)[0] == 't';
    *pending_ms = PQgetisnull(r, 0, 2) ? 0 : strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    if (fresh && !PQgetisnull(r, 0, 1)) {
        *rows = cJSON_Parse(PQgetvalue(r, 0, 1));
    } else {
        /* not built for this definition yet: nothing to show, behind since the change */
        int64_t since = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        bool has_rows = PQgetvalue(r, 0, 4)[0] == 't';
        if ((has_rows || !PQgetisnull(r, 0, 1)) && (*pending_ms == 0 || since < *pending_ms))
            *pending_ms = since;
        *rows = cJSON_CreateArray();
    }
    if (*rows == NULL || !cJSON_IsArray(*rows)) {
        cJSON_Delete(*rows);
        *rows = NULL;
        rc = engine_fail(e, ERR_INTERNAL, "malformed read model");
        goto out;
    }
    while (cJSON_GetArraySize(*rows) > ENG_VIEW_ROWS_MAX) {
        cJSON_DeleteItemFromArray(*rows, ENG_VIEW_ROWS_MAX);
        *more = true;
    }
out:
    cJSON_Delete(views);
    pgrec_call_close(&c);
    return rc;
}

int pgc_changes_list(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                     uint64_t after, struct eng_change *out, size_t max, size_t *n, uint64_t *head)
{
    struct pgrec_call c;
    int rc;

    if ((rc = pgrec_call_open(e, s, service, resource, false, &c)) != 0)
        goto out;
    /* one statement, one snapshot: the head and the changes up to it */
    if (pgrec_param(&c.p[0], s->org_id) == 0 || pgrec_param(&c.p[0], resource) == 0 ||
        pgrec_param_own(&c.p[0], pgrec_fmt_i64(after > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)after)) == 0 ||
        pgrec_param_own(&c.p[0], pgrec_fmt_i64((int64_t)(max > LIST_CAP ? LIST_CAP : max))) == 0 ||
        buf_puts(&c.b[0], "WITH h AS (SELECT coalesce(max(last_pos), 0) AS head, coalesce(max(trimmed_pos), 0) AS cut "
                          "FROM ") != 0 ||
        pgrec_qtable(&c.b[0], c.schema, "_feed") != 0 ||
        buf_puts(&c.b[0], " WHERE org_id = $1::uuid) SELECT h.head, h.cut, o.pos, o.record_id, o.op, o.version, "
                          "o.created_at FROM h LEFT JOIN LATERAL (SELECT pos, record_id, op, version, created_at FROM ") != 0 ||
        pgrec_qtable(&c.b[0], c.schema, "_outbox") != 0 ||
        buf_puts(&c.b[0], " WHERE org_id = $1::uuid AND resource = $2 AND pos > $3::bigint AND pos <= h.head "
                          "ORDER BY pos LIMIT $4::bigint) o ON true ORDER BY o.pos") != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if ((rc = pgrec_call_run(e, s, &c, 1)) != 0)
        goto out;
    const PGresult *r = c.r[0];
    *head = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    uint64_t cut = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    if (after > 0 && after < cut) {
        *head = 0;
        rc = engine_fail(e, ERR_GONE, "changes up to %llu are no longer kept", (unsigned long long)cut);
        goto out;
    }
    for (int i = 0; i < PQntuples(r) && *n < max; i++) {
        if (PQgetisnull(r, i, 2))
            continue; /* the head alone: no change */
        struct eng_change *ch = &out[(*n)++];
        memset(ch, 0, sizeof *ch);
        ch->pos = strtoull(PQgetvalue(r, i, 2), NULL, 10);
        snprintf(ch->record_id, sizeof ch->record_id, "%s", PQgetvalue(r, i, 3));
        snprintf(ch->op, sizeof ch->op, "%s", PQgetvalue(r, i, 4));
        ch->version = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        ch->at = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    }
out:
    pgrec_call_close(&c);
    return rc;
}
