/* engine_mem_cqrs: the memory engine's CQRS side (engine.h, "CQRS"); the
 * records and outbox it reads are engine_mem_records.c's, shared through
 * engine_mem_rec_int.h. The design is below. */
#include "store/mem/engine_mem_rec_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/text.h"
#include "store/values.h"
#include "store/vector.h"

/* ---- CQRS: the projector, views, the change feed, the reaper (engine.h) -------------
 * The region has one lock, so events are committed in seq order: a service's
 * outbox is a log whose projected prefix ends at rec_svc.projected, and whose
 * trimmed prefix ends at rec_svc.trimmed. The feed position of an event is
 * its seq (per service and mode, so an org's positions have gaps, which the
 * cursor never promised otherwise); the head is the projected seq.
 *
 * Views: each (org, resource) has one read model, the JSON of all its views'
 * rows, stamped with the fingerprint of the definition it was built for. The
 * projector rebuilds the read model of every (org, resource) a batch touched
 * from that org's records, and of every one whose fingerprint no longer
 * matches (a view added, removed, a field it names retyped): exact and
 * idempotent by construction (an event applied twice rebuilds the same rows),
 * at O(records of the org) per touched resource and batch, which is this
 * engine's way (lists cost as much): it is for tests, development and demos.
 * The PostgreSQL engine applies each event incrementally instead. Records
 * past expires_at are left out, as every read leaves them out.
 *
 * The feed keeps at most MEMREC_CHANGES_MAX projected events per service and
 * mode (engine_mem.h), besides the reaper's retention: the region stays flat
 * under any stream of writes. */

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seq_key(uint64_t seq, char key[24])
{
    snprintf(key, 24, "%016" PRIx64, seq);
}

static struct rec_event *event_at(struct engine *e, const struct rec_svc *node, uint64_t seq, uint64_t *off)
{
    char key[24];
    uint64_t o;

    seq_key(seq, key);
    if (!memrec_find(e, node->outbox, key, &o))
        return NULL;
    if (off != NULL)
        *off = o;
    return P(e, o);
}

/* "<mode>:<service>" of the svcs map back into a mode and a service name. */
static bool svc_parse(const char *key, size_t klen, int *mode, char service[ENG_SLUG])
{
    if (klen < 3 || key[1] != ':' || (key[0] != '0' && key[0] != '1') || klen - 2 >= ENG_SLUG)
        return false;
    *mode = key[0] - '0';
    memcpy(service, key + 2, klen - 2);
    service[klen - 2] = '\0';
    return true;
}

/* The fields a resource's views name, checked against the definition. */
static void fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *c = p;

    for (size_t i = 0; i < n; i++)
        *h = (*h ^ c[i]) * 1099511628211ull;
}

/* What a read model is built for: the views and the types of the fields they
 * name, as 16 hex digits; "" when the resource has no views. */
static void views_fp(const struct eng_resource *d, char fp[17])
{
    uint64_t h = 1469598103934665603ull;
    cJSON *views = d->views[0] != '\0' ? cJSON_Parse(d->views) : NULL, *v, *list, *f;

    fp[0] = '\0';
    if (views == NULL || cJSON_GetArraySize(views) == 0) {
        cJSON_Delete(views);
        return;
    }
    fnv(&h, d->views, strlen(d->views));
    cJSON_ArrayForEach(v, views) {
        const char *const parts[] = {"group_by", "sum"};
        for (int k = 0; k < 2; k++) {
            list = cJSON_GetObjectItemCaseSensitive(v, parts[k]);
            cJSON_ArrayForEach(f, list) {
                const struct eng_field *fd = cJSON_IsString(f) ? eng_resource_field(d, f->valuestring) : NULL;
                int t[2] = {fd != NULL ? fd->type : 0, fd != NULL ? fd->dim : 0};
                fnv(&h, t, sizeof t);
            }
        }
    }
    cJSON_Delete(views);
    snprintf(fp, 17, "%016" PRIx64, h);
}

/* One view's rows over a set of records: group by the group_by values, count,
 * sum the sum fields' non-null values (engine.h's row shape). */
static cJSON *view_rows(const cJSON *view, const struct eng_resource *d, cJSON *const *data, size_t n)
{
    const cJSON *group = cJSON_GetObjectItemCaseSensitive(view, "group_by");
    const cJSON *sums = cJSON_GetObjectItemCaseSensitive(view, "sum");
    bool count = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(view, "count"));
    cJSON *acc = cJSON_CreateObject(), *rows = cJSON_CreateArray(), *f, *row;

    if (acc == NULL || rows == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        cJSON *key = cJSON_CreateArray();
        char *text;
        if (key == NULL)
            goto fail;
        cJSON_ArrayForEach(f, group) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(data[i], f->valuestring);
            cJSON_AddItemToArray(key, v != NULL ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
        }
        text = cJSON_PrintUnformatted(key);
        if (text == NULL) {
            cJSON_Delete(key);
            goto fail;
        }
        row = cJSON_GetObjectItemCaseSensitive(acc, text);
        if (row == NULL) {
            cJSON *k = cJSON_CreateObject(), *it = key->child;
            row = cJSON_CreateObject();
            cJSON_ArrayForEach(f, group) {
                cJSON_AddItemToObject(k, f->valuestring, cJSON_Duplicate(it, true));
                it = it->next;
            }
            cJSON_AddItemToObject(row, "key", k);
            cJSON_AddNumberToObject(row, "count", 0);
            if (cJSON_GetArraySize(sums) > 0) {
                cJSON *so = cJSON_AddObjectToObject(row, "sum");
                cJSON_ArrayForEach(f, sums) cJSON_AddNumberToObject(so, f->valuestring, 0);
            }
            cJSON_AddItemToObject(acc, text, row);
        }
        cJSON_free(text);
        cJSON_Delete(key);
        cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "count");
        cJSON_SetNumberValue(c, c->valuedouble + 1);
        cJSON_ArrayForEach(f, sums) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(data[i], f->valuestring);
            cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(row, "sum"), f->valuestring);
            if (t != NULL && cJSON_IsNumber(v))
                cJSON_SetNumberValue(t, t->valuedouble + v->valuedouble);
        }
    }
    /* the accumulator's rows, without count when the view does not count */
    while (acc->child != NULL) {
        row = cJSON_DetachItemViaPointer(acc, acc->child);
        if (row->string != NULL) {
            cJSON_free(row->string);
            row->string = NULL;
        }
        if (!count)
            cJSON_DeleteItemFromObjectCaseSensitive(row, "count");
        cJSON_AddItemToArray(rows, row);
    }
    (void)d;
    cJSON_Delete(acc);
    return rows;
fail:
    cJSON_Delete(acc);
    cJSON_Delete(rows);
    return NULL;
}

/* Builds (or, without views, drops) the org's read model of resource res. */
static int model_build(struct engine *e, uint64_t res, const char *org, int64_t now)
{
    struct rec_res *rr = P(e, res);
    uint64_t recs = memrec_store_records(e, res, org, false), old = 0, off, pos = 0;
    cJSON *views = NULL, *out = NULL, *vo, *v, **data = NULL;
    struct eng_record *got = NULL;
    size_t n = 0, cap;
    char fp[17], *text = NULL;
    int rc = ERR_NOMEM;

    views_fp(&rr->def, fp);
    memrec_find(e, rr->models, org, &old);
    if (fp[0] == '\0') {
        if (old == 0)
            return 0;
        if ((rc = shm_map_del(R(e), rr->models, org, strlen(org), NULL)) != 0)
            return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "read model delete");
        shm_free(R(e), old);
        return 0;
    }
    cap = recs != 0 ? shm_map_count(R(e), recs) : 0;
    if ((views = cJSON_Parse(rr->def.views)) == NULL || (out = cJSON_CreateObject()) == NULL ||
        (cap > 0 && ((got = calloc(cap, sizeof *got)) == NULL || (data = calloc(cap, sizeof *data)) == NULL)))
        goto out;
    struct shm_map_entry me;
    while (n < cap && shm_map_next(R(e), recs, &pos, &me)) {
        const struct rec_blob *b = P(e, me.val);
        if (expired(b, now))
            continue;
        if ((rc = memrec_blob_parse(b, &got[n])) != 0)
            goto out;
        data[n] = got[n].data;
        n++;
    }
    if ((vo = cJSON_AddObjectToObject(out, "views")) == NULL || cJSON_AddStringToObject(out, "fp", fp) == NULL)
        goto out;
    rc = ERR_NOMEM;
    cJSON_ArrayForEach(v, views) {
        cJSON *rows = view_rows(v, &rr->def, data, n);
        if (rows == NULL || !cJSON_AddItemToObject(vo, v->string, rows)) {
            cJSON_Delete(rows);
            goto out;
        }
    }
    if ((text = cJSON_PrintUnformatted(out)) == NULL)
        goto out;
    size_t len = strlen(text);
    if ((off = memrec_alloc(e, sizeof(struct rec_model) + len + 1)) == 0) {
        rc = ERR_NOSPACE;
        goto out;
    }
    {
        struct rec_model *m = P(e, off);
        memcpy(m->fp, fp, sizeof m->fp);
        m->len = len;
        memcpy(m->text, text, len + 1);
    }
    if ((rc = memrec_put(e, rr->models, org, off, NULL)) != 0)
        goto out;
    if (old != 0)
        shm_free(R(e), old);
out:
    for (size_t i = 0; i < n; i++)
        eng_record_cleanup(&got[i]);
    free(got);
    free(data);
    cJSON_free(text);
    cJSON_Delete(out);
    cJSON_Delete(views);
    return rc;
}

static int touch_add(struct memrec_touched *t, int mode, const char *org, const char *service, const char *res)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].scope.mode == mode && strcmp(t->v[i].scope.org_id, org) == 0 &&
            strcmp(t->v[i].service, service) == 0 && strcmp(t->v[i].resource, res) == 0)
            return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        void *v = realloc(t->v, cap * sizeof *t->v);
        if (v == NULL)
            return ERR_NOMEM;
        t->v = v;
        t->cap = cap;
    }
    memset(&t->v[t->n], 0, sizeof t->v[t->n]);
    t->v[t->n].scope.mode = mode;
    snprintf(t->v[t->n].scope.org_id, sizeof t->v[t->n].scope.org_id, "%s", org);
    snprintf(t->v[t->n].service, sizeof t->v[t->n].service, "%s", service);
    snprintf(t->v[t->n].resource, sizeof t->v[t->n].resource, "%s", res);
    t->n++;
    return 0;
}

void memrec_touched_free(struct memrec_touched *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* The oldest kept event of the service at sv goes, and the trim point moves
 * past it (*deleted: there was an event at that seq). */
static int trim_next(struct engine *e, uint64_t sv, bool *deleted)
{
    const struct rec_svc *node = P(e, sv);
    uint64_t q = node->trimmed + 1, off;
    char key[24];
    int rc;

    seq_key(q, key);
    if (deleted != NULL)
        *deleted = false;
    if (memrec_find(e, node->outbox, key, &off)) {
        if ((rc = shm_map_del(R(e), node->outbox, key, strlen(key), NULL)) != 0)
            return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "event delete");
        shm_free(R(e), off);
        if (deleted != NULL)
            *deleted = true;
    }
    if (shm_set64(R(e), sv + offsetof(struct rec_svc, trimmed), q) != 0)
        return engine_mem_broke(e, ERR_NOSPACE, "trimmed seq");
    return 0;
}

/* One service's batch: its next events up to max, the read models they and a
 * changed definition touched, the feed's bound. */
static int project_svc(struct engine *e, uint64_t sv, int mode, const char *service, size_t max,
                       struct memrec_touched *t, struct eng_projection *out)
{
    struct rec_svc *node = P(e, sv);
    uint64_t upto = node->seq - node->projected > max ? node->projected + max : node->seq, pos = 0, off;
    int64_t now = wall_ms() / 1000;
    size_t first = t->n;
    struct shm_map_entry me;
    int rc;

    for (uint64_t q = node->projected + 1; q <= upto; q++) {
        struct rec_event *ev = event_at(e, node, q, &off);
        if (ev == NULL)
            continue;
        if ((rc = touch_add(t, mode, ev->ob.org_id, service, ev->ob.resource)) != 0 ||
            (rc = shm_set64(R(e), off + offsetof(struct rec_event, projected_at), (uint64_t)now)) != 0)
            return rc == ERR_NOMEM ? rc : engine_mem_broke(e, ERR_NOSPACE, "event mark");
    }
    if (upto > node->projected) {
        out->applied += upto - node->projected;
        if (shm_set64(R(e), sv + offsetof(struct rec_svc, projected), upto) != 0)
            return engine_mem_broke(e, ERR_NOSPACE, "projected seq");
    }
    /* read models built for another definition, or for views since removed */
    while (shm_map_next(R(e), node->resources, &pos, &me)) {
        struct rec_res *rr = P(e, me.val);
        char fp[17], name[ENG_FIELD];
        uint64_t p2 = 0;
        struct shm_map_entry se;

        if (me.klen >= sizeof name)
            continue;
        memcpy(name, me.key, me.klen);
        name[me.klen] = '\0';
        views_fp(&rr->def, fp);
        if (fp[0] == '\0') {
            while (shm_map_next(R(e), rr->models, &p2, &se)) {
                char org[ENG_ID];
                if (se.klen >= sizeof org)
                    continue;
                memcpy(org, se.key, se.klen);
                org[se.klen] = '\0';
                if ((rc = touch_add(t, mode, org, service, name)) != 0)
                    return rc;
            }
            continue;
        }
        while (shm_map_next(R(e), rr->stores, &p2, &se)) {
            char org[ENG_ID];
            uint64_t mo;
            if (se.klen >= sizeof org)
                continue;
            memcpy(org, se.key, se.klen);
            org[se.klen] = '\0';
            if (!memrec_find(e, rr->models, org, &mo) || strcmp(((struct rec_model *)P(e, mo))->fp, fp) != 0) {
                if ((rc = touch_add(t, mode, org, service, name)) != 0)
                    return rc;
                out->rebuilt++;
            }
        }
    }
    for (size_t i = first; i < t->n; i++) {
        uint64_t res;
        if (!memrec_find(e, node->resources, t->v[i].resource, &res))
            continue; /* an event of a resource since redefined away: nothing to keep */
        if ((rc = model_build(e, res, t->v[i].scope.org_id, now)) != 0)
            return rc;
    }
    /* the feed's bound: the oldest projected events go first */
    for (int k = 0; k < 1024 && node->projected - node->trimmed > MEMREC_CHANGES_MAX; k++)
        if ((rc = trim_next(e, sv, NULL)) != 0)
            return rc;
    if (node->seq > node->projected) {
        struct rec_event *ev = event_at(e, node, node->projected + 1, NULL);
        out->more = true;
        if (ev != NULL && (out->pending_ms == 0 || ev->at_ms < out->pending_ms))
            out->pending_ms = ev->at_ms;
    }
    return 0;
}

int memrec_project(struct engine *e, size_t max, struct memrec_touched *t, struct eng_projection *out)
{
    struct rec_root *rt = memrec_rroot(e);
    uint64_t pos = 0;
    struct shm_map_entry me;
    int rc;

    if (rt == NULL)
        return 0;
    while (shm_map_next(R(e), rt->svcs, &pos, &me)) {
        char service[ENG_SLUG];
        int mode;
        if (!svc_parse(me.key, me.klen, &mode, service))
            continue;
        if ((rc = project_svc(e, me.val, mode, service, max, t, out)) != 0)
            return rc;
    }
    return 0;
}

int memrec_wait_prepare(struct engine *e, struct memrec_wake *w, bool *pending)
{
    struct rec_root *rt = memrec_rroot(e);
    uint64_t pos = 0;
    struct shm_map_entry me;

    *pending = false;
    memset(w, 0, sizeof *w);
    if (rt == NULL)
        return 0; /* no service yet: nothing to wait on */
    w->seen = __atomic_load_n(&rt->wake, __ATOMIC_SEQ_CST);
    while (shm_map_next(R(e), rt->svcs, &pos, &me)) {
        const struct rec_svc *node = P(e, me.val);
        if (node->seq > node->projected)
            *pending = true;
    }
    if (!*pending) {
        __atomic_add_fetch(&rt->waiters, 1, __ATOMIC_SEQ_CST);
        w->word = &rt->wake;
        w->waiters = &rt->waiters;
    }
    return 0;
}

void memrec_wait_on(const struct memrec_wake *w, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    /* woken, timed out, interrupted by a signal, or the word moved on since
     * seen (a write between the check and the wait): each is a return */
    long r = syscall(SYS_futex, w->word, FUTEX_WAIT, w->seen, &ts, NULL, 0);

    (void)r;
    __atomic_sub_fetch(w->waiters, 1, __ATOMIC_SEQ_CST);
}

/* The write time of the org's oldest unprojected event of the resource, 0: none. */
static int64_t pending_of(struct engine *e, const struct rec_svc *node, const char *org, const char *resource)
{
    for (uint64_t q = node->projected + 1; q <= node->seq; q++) {
        const struct rec_event *ev = event_at(e, node, q, NULL);
        if (ev != NULL && strcmp(ev->ob.org_id, org) == 0 && strcmp(ev->ob.resource, resource) == 0)
            return ev->at_ms;
    }
    return 0;
}

int memrec_view_read(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                     const char *view, cJSON **rows, bool *more, int64_t *pending_ms)
{
    uint64_t res, mo, sv;
    cJSON *views = NULL, *model = NULL, *got;
    char fp[17];
    int rc;

    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0)
        return rc;
    struct rec_res *rr = P(e, res);
    sv = memrec_svc_find(e, s, service, false);
    views = rr->def.views[0] != '\0' ? cJSON_Parse(rr->def.views) : NULL;
    if (views == NULL || cJSON_GetObjectItemCaseSensitive(views, view) == NULL) {
        cJSON_Delete(views);
        return engine_fail(e, ERR_NOTFOUND, "no such view");
    }
    cJSON_Delete(views);
    views_fp(&rr->def, fp);
    *pending_ms = pending_of(e, P(e, sv), s->org_id, resource);
    if (memrec_find(e, rr->models, s->org_id, &mo) && strcmp(((struct rec_model *)P(e, mo))->fp, fp) == 0) {
        const struct rec_model *m = P(e, mo);
        model = cJSON_ParseWithLength(m->text, m->len);
        got = model != NULL ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(model, "views"), view)
                            : NULL;
        *rows = got != NULL ? cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(model, "views"), got)
                            : cJSON_CreateArray();
        cJSON_Delete(model);
    } else {
        /* not built for this definition yet: nothing to show, behind since the change */
        uint64_t recs = memrec_store_records(e, res, s->org_id, false);
        if ((recs != 0 && shm_map_count(R(e), recs) > 0) || memrec_find(e, rr->models, s->org_id, NULL)) {
            int64_t since = rr->def.updated_at * 1000;
            if (*pending_ms == 0 || since < *pending_ms)
                *pending_ms = since;
        }
        *rows = cJSON_CreateArray();
    }
    if (*rows == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    while (cJSON_GetArraySize(*rows) > ENG_VIEW_ROWS_MAX) {
        cJSON_DeleteItemFromArray(*rows, ENG_VIEW_ROWS_MAX);
        *more = true;
    }
    return 0;
}

int memrec_changes_list(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                        uint64_t after, struct eng_change *out, size_t max, size_t *n, uint64_t *head)
{
    uint64_t res;
    int rc;

    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0)
        return rc;
    const struct rec_svc *node = P(e, memrec_svc_find(e, s, service, false));
    *head = node->projected;
    if (after > 0 && after < node->trimmed)
        return engine_fail(e, ERR_GONE, "changes up to %" PRIu64 " are no longer kept", node->trimmed);
    for (uint64_t q = (after > node->trimmed ? after : node->trimmed) + 1; q <= node->projected && *n < max; q++) {
        const struct rec_event *ev = event_at(e, node, q, NULL);
        if (ev == NULL || strcmp(ev->ob.org_id, s->org_id) != 0 || strcmp(ev->ob.resource, resource) != 0)
            continue;
        struct eng_change *c = &out[(*n)++];
        memset(c, 0, sizeof *c);
        c->pos = q;
        memcpy(c->record_id, ev->ob.record_id, sizeof c->record_id);
        memcpy(c->op, ev->ob.op, sizeof c->op);
        c->version = ev->ob.version;
        c->at = ev->ob.created_at;
    }
    return 0;
}

/* Up to budget expired records, deleted as a write deletes them (their
 * events reach the views and the feed), and projected events past the
 * retention; *more when the budget ran out. */
int memrec_reap(struct engine *e, const struct eng_reap_policy *p, size_t budget, struct memrec_touched *t,
                struct eng_reaped *out, bool *more)
{
    struct rec_root *rt = memrec_rroot(e);
    uint64_t pos = 0;
    struct shm_map_entry me;
    int rc;

    *more = false;
    if (rt == NULL)
        return 0;
    while (shm_map_next(R(e), rt->svcs, &pos, &me)) {
        struct rec_svc *node = P(e, me.val);
        struct eng_scope sc = {0};
        char service[ENG_SLUG];
        uint64_t rpos = 0, sv = me.val;
        struct shm_map_entry re;

        if (!svc_parse(me.key, me.klen, &sc.mode, service))
            continue;
        while (shm_map_next(R(e), node->resources, &rpos, &re)) {
            struct rec_res *rr = P(e, re.val);
            char name[ENG_FIELD];
            uint64_t spos = 0;
            struct shm_map_entry se;

            if (rr->def.expire_after == 0 || re.klen >= sizeof name)
                continue;
            memcpy(name, re.key, re.klen);
            name[re.klen] = '\0';
            while (shm_map_next(R(e), rr->stores, &spos, &se)) {
                uint64_t recs = ((struct rec_store *)P(e, se.val))->records, qpos = 0;
                char ids[64][ENG_ID];
                size_t nid = 0;
                struct shm_map_entry ke;

                if (se.klen >= sizeof sc.org_id)
                    continue;
                memcpy(sc.org_id, se.key, se.klen);
                sc.org_id[se.klen] = '\0';
                while (nid < 64 && shm_map_next(R(e), recs, &qpos, &ke))
                    if (expired(P(e, ke.val), p->now))
                        memcpy(ids[nid++], ((struct rec_blob *)P(e, ke.val))->id, ENG_ID);
                for (size_t i = 0; i < nid; i++) {
                    uint64_t off;
                    struct eng_record gone = {0};
                    if (budget == 0) {
                        *more = true;
                        return 0;
                    }
                    if (!memrec_find(e, recs, ids[i], &off))
                        continue;
                    memcpy(gone.id, ids[i], ENG_ID);
                    gone.version = ((struct rec_blob *)P(e, off))->version + 1;
                    if ((rc = shm_map_del(R(e), recs, ids[i], strlen(ids[i]), NULL)) != 0)
                        return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index delete");
                    shm_free(R(e), off);
                    if ((rc = memrec_outbox_add(e, &sc, service, name, &gone, "delete", p->now)) != 0 ||
                        (rc = touch_add(t, sc.mode, sc.org_id, service, name)) != 0)
                        return rc;
                    out->records++;
                    budget--;
                }
                if (nid == 64)
                    *more = true;
            }
        }
        /* projected events past the retention, oldest first */
        while (node->trimmed < node->projected) {
            const struct rec_event *ev = event_at(e, node, node->trimmed + 1, NULL);
            if (ev != NULL && ev->projected_at > p->now - p->changes_retention)
                break;
            if (budget == 0) {
                *more = true;
                return 0;
            }
            bool deleted;
            if ((rc = trim_next(e, sv, &deleted)) != 0)
                return rc;
            out->changes += deleted;
            budget--;
        }
    }
    return 0;
}
