/* engine_mem_records: resources (schemas) and records on the memory engine.
 *
 * Layout, from the root entry "engine.rec" (made by the first schema write):
 *
 *   root: svcs     "<mode>:<service>"  → struct rec_svc
 *   svc:  resources  resource name     → struct rec_res (the schema + its stores)
 *         outbox     seq (16 hex)      → struct eng_outbox
 *   res:  stores     org id            → struct rec_store
 *   store: records   record id         → struct rec_blob
 *
 * A record is stored as one block: its fixed columns, its vector values
 * packed for search (struct rec_vec: engine_mem_search.c reads them without
 * parsing) and the JSON text {"d": data, "b": bidx}. Reads parse it; a list
 * parses every record of the org's store, filters, sorts and pages (exact,
 * O(n log n) a page: this engine is for tests, development and demos).
 *
 * Crash consistency (lib/store/mem/shm.h): records and schemas are replaced
 * copy-on-write (a new block, one map put, the old block freed). A schema
 * change first casts every record without writing anything (so a refused
 * change costs nothing and changes nothing), then builds each store's records
 * anew in a new map and publishes it with one logged word; the undo log only
 * pays for the allocations, so a change over very many records can run out of
 * it (ERR_NOSPACE, the unit of work rolls back whole).
 *
 * Every write appends its outbox entry in the same unit; the projector
 * (engine_mem_cqrs.c) consumes and trims them. The structs and the helpers
 * the three files share are engine_mem_rec_int.h's.
 *
 * The value helpers (types, checks, casts) are engine-independent: values.c. */
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
#include "store/mem/shm.h"
#include "store/values.h"
#include "store/vector.h"

bool memrec_find(struct engine *e, uint64_t map, const char *key, uint64_t *val)
{
    return map != 0 && shm_map_get(R(e), map, key, strlen(key), val) == 0;
}

int memrec_put(struct engine *e, uint64_t map, const char *key, uint64_t val, uint64_t *old)
{
    int rc = shm_map_put(R(e), map, key, strlen(key), val, old);

    if (rc >= 0)
        return 0;
    return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index update");
}

uint64_t memrec_alloc(struct engine *e, size_t n)
{
    uint64_t off = shm_alloc(R(e), n);

    if (off == 0)
        engine_mem_broke(e, ERR_NOSPACE, "region full");
    return off;
}

static uint64_t newmap(struct engine *e, size_t hint)
{
    uint64_t map = shm_map_new(R(e), hint);

    if (map == 0)
        engine_mem_broke(e, ERR_NOSPACE, "region full");
    return map;
}

/* ---- finding things --------------------------------------------------------- */

struct rec_root *memrec_rroot(struct engine *e)
{
    uint64_t off = shm_root_get(R(e), REC_ROOT);
    struct rec_root *rt = off != 0 ? P(e, off) : NULL;

    return rt != NULL && rt->magic == REC_MAGIC ? rt : NULL;
}

static void svc_key(const struct eng_scope *s, const char *service, char key[ENG_SLUG + 8])
{
    snprintf(key, ENG_SLUG + 8, "%d:%s", s->mode, service);
}

/* The service's node, or 0 (made when create is set). */
uint64_t memrec_svc_find(struct engine *e, const struct eng_scope *s, const char *service, bool create)
{
    char key[ENG_SLUG + 8];
    struct rec_root *rt = memrec_rroot(e);
    uint64_t off, rootoff;
    struct rec_svc *sv;

    svc_key(s, service, key);
    if (rt != NULL && memrec_find(e, rt->svcs, key, &off))
        return off;
    if (!create)
        return 0;
    if (rt == NULL) {
        if ((rootoff = memrec_alloc(e, sizeof *rt)) == 0)
            return 0;
        rt = P(e, rootoff);
        rt->magic = REC_MAGIC;
        rt->wake = rt->waiters = 0;
        if ((rt->svcs = newmap(e, 16)) == 0)
            return 0;
        if (shm_root_set(R(e), REC_ROOT, rootoff) != 0) {
            engine_mem_broke(e, ERR_NOSPACE, "root directory");
            return 0;
        }
    }
    if ((off = memrec_alloc(e, sizeof *sv)) == 0)
        return 0;
    sv = P(e, off);
    sv->seq = sv->projected = sv->trimmed = 0;
    if ((sv->resources = newmap(e, 8)) == 0 || (sv->outbox = newmap(e, 64)) == 0)
        return 0;
    if (memrec_put(e, rt->svcs, key, off, NULL) != 0)
        return 0;
    return off;
}

/* Every call on a service starts here: s's org entered, then the service's
 * node in *sv (0: the service has no resource yet). */
static int svc_enter(struct engine *e, const struct eng_scope *s, const char *service, uint64_t *sv)
{
    int rc = engine_mem_enter_org(e, s);

    *sv = rc == 0 ? memrec_svc_find(e, s, service, false) : 0;
    return rc;
}

/* The resource's node for a read or write call, or an error. */
int memrec_res_find(struct engine *e, const struct eng_scope *s, const char *service,
                    const char *resource, uint64_t *res)
{
    int rc;
    uint64_t sv;

    if ((rc = svc_enter(e, s, service, &sv)) != 0)
        return rc;
    if (sv == 0 || !memrec_find(e, ((struct rec_svc *)P(e, sv))->resources, resource, res))
        return engine_fail(e, ERR_NOTFOUND, "no such resource");
    return 0;
}

/* The org's store of a resource: its records map, or 0 when it has none (made when create). */
uint64_t memrec_store_records(struct engine *e, uint64_t res, const char *org, bool create)
{
    struct rec_res *rr = P(e, res);
    struct rec_store *st;
    uint64_t off;

    if (memrec_find(e, rr->stores, org, &off))
        return ((struct rec_store *)P(e, off))->records;
    if (!create)
        return 0;
    if ((off = memrec_alloc(e, sizeof *st)) == 0)
        return 0;
    st = P(e, off);
    if ((st->records = newmap(e, 16)) == 0)
        return 0;
    if (memrec_put(e, rr->stores, org, off, NULL) != 0)
        return 0;
    return st->records;
}

/* ---- record blobs ------------------------------------------------------------ */

int memrec_blob_parse(const struct rec_blob *b, struct eng_record *out)
{
    cJSON *root = cJSON_ParseWithLength(b->data + b->text_at, b->len);
    cJSON *d, *bi;

    memset(out, 0, sizeof *out);
    if (root == NULL)
        return ERR_NOMEM;
    d = cJSON_DetachItemFromObjectCaseSensitive(root, "d");
    bi = cJSON_DetachItemFromObjectCaseSensitive(root, "b");
    cJSON_Delete(root);
    if (d == NULL) {
        cJSON_Delete(bi);
        return ERR_INTERNAL;
    }
    memcpy(out->id, b->id, ENG_ID);
    out->version = b->version;
    out->created_at = b->created_at;
    out->updated_at = b->updated_at;
    out->expires_at = b->expires_at;
    out->data = d;
    out->bidx = bi;
    return 0;
}

/* The vector field f's value in data as doubles into v (dim of them), or false when it has none. */
static bool vector_value(const cJSON *data, const struct eng_field *f, double *v)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(data, f->name), *x;
    int i = 0;

    if (f->type != ENG_FT_VECTOR || !cJSON_IsArray(arr))
        return false;
    cJSON_ArrayForEach(x, arr) {
        if (i < f->dim)
            v[i] = x->valuedouble;
        i++;
    }
    return i == f->dim;
}

/* A new blob for rec under def (0 after the unit of work broke, or ERR_NOMEM in *rc). */
static uint64_t blob_new(struct engine *e, const struct eng_resource *def, const struct eng_record *rec, int *rc)
{
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    uint64_t off = 0;
    size_t n, at;
    uint32_t nvec = 0;

    *rc = ERR_NOMEM;
    if (root == NULL)
        return 0;
    /* borrowed into the wrapper and taken back before it is freed */
    cJSON_AddItemReferenceToObject(root, "d", rec->data);
    if (rec->bidx != NULL)
        cJSON_AddItemReferenceToObject(root, "b", rec->bidx);
    text = json_print(root);
    cJSON_Delete(root);
    if (text == NULL)
        return 0;
    n = strlen(text);
    at = 0;
    for (int i = 0; i < def->nfields; i++)
        if (def->fields[i].type == ENG_FT_VECTOR &&
            cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rec->data, def->fields[i].name)))
            at += vec_size(def->fields[i].dim);
    if ((off = memrec_alloc(e, sizeof(struct rec_blob) + at + n + 1)) == 0) {
        *rc = ERR_NOSPACE;
        cJSON_free(text);
        return 0;
    }
    {
        struct rec_blob *b = P(e, off);
        char *p = b->data;

        memcpy(b->id, rec->id, ENG_ID);
        b->version = rec->version;
        b->created_at = rec->created_at;
        b->updated_at = rec->updated_at;
        b->expires_at = rec->expires_at;
        b->len = n;
        for (int i = 0; i < def->nfields; i++) {
            const struct eng_field *f = &def->fields[i];
            struct rec_vec *v = (struct rec_vec *)(void *)p;
            double *d;
            v->at = (uint32_t)(vec_size(f->dim) - (size_t)f->dim * sizeof(double));
            d = (double *)(void *)(p + v->at);
            if (!vector_value(rec->data, f, d))
                continue;
            v->pos = (uint32_t)i;
            v->dim = (uint32_t)f->dim;
            v->size = (uint32_t)vec_size(f->dim);
            v->norm = vec_norm(d, f->dim);
            for (int j = 0; j < f->dim; j++)
                v->f[j] = (float)d[j];
            p += v->size;
            nvec++;
        }
        b->nvec = nvec;
        b->text_at = (uint32_t)at;
        memcpy(b->data + at, text, n + 1);
    }
    cJSON_free(text);
    *rc = 0;
    return off;
}


static int record_fits(struct engine *e, const struct eng_resource *def, const struct eng_record *rec)
{
    char why[128];

    return eng_record_fits(def, rec, why) != 0 ? engine_fail(e, ERR_INVAL, "%s", why) : 0;
}

/* A write left an event: wake a projector waiting in memrec_wait. */
static void wake_projector(struct rec_root *rt)
{
    if (rt == NULL)
        return;
    __atomic_add_fetch(&rt->wake, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&rt->waiters, __ATOMIC_SEQ_CST) != 0)
        syscall(SYS_futex, &rt->wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int memrec_outbox_add(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_record *rec, const char *op, int64_t now)
{
    uint64_t sv = memrec_svc_find(e, s, service, false), off;
    struct rec_svc *node;
    struct rec_event *ev;
    struct eng_outbox *ob;
    struct timespec ts;
    char key[24];

    if (sv == 0)
        return engine_fail(e, ERR_INTERNAL, "outbox of a missing service");
    node = P(e, sv);
    if ((off = memrec_alloc(e, sizeof *ev)) == 0)
        return ERR_NOSPACE;
    ev = P(e, off);
    memset(ev, 0, sizeof *ev);
    clock_gettime(CLOCK_REALTIME, &ts);
    ev->at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ob = &ev->ob;
    ob->seq = node->seq + 1;
    snprintf(ob->org_id, sizeof ob->org_id, "%s", s->org_id);
    snprintf(ob->service, sizeof ob->service, "%s", service);
    snprintf(ob->resource, sizeof ob->resource, "%s", resource);
    snprintf(ob->record_id, sizeof ob->record_id, "%s", rec->id);
    snprintf(ob->op, sizeof ob->op, "%s", op);
    ob->version = rec->version;
    ob->created_at = now;
    snprintf(key, sizeof key, "%016" PRIx64, ob->seq);
    if (memrec_put(e, node->outbox, key, off, NULL) != 0)
        return ERR_NOSPACE;
    if (shm_set64(R(e), sv + offsetof(struct rec_svc, seq), ob->seq) != 0)
        return engine_mem_broke(e, ERR_NOSPACE, "outbox seq");
    wake_projector(memrec_rroot(e));
    return 0;
}

/* ---- resources ------------------------------------------------------------- */

int memrec_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *name, struct eng_resource *out)
{
    uint64_t res;
    int rc = memrec_res_find(e, s, service, name, &res);

    if (rc != 0)
        return rc;
    *out = ((struct rec_res *)P(e, res))->def;
    return 0;
}

/* Under the unit's region lock nothing changes until it ends: the check is
 * now, and a definition already replaced is the conflict a rerun reads afresh. */
int memrec_resource_hold(struct engine *e, const struct eng_scope *s, const struct eng_resource *def)
{
    uint64_t res;
    int rc = memrec_res_find(e, s, def->service, def->name, &res);

    if (rc != 0)
        return rc;
    if (((struct rec_res *)P(e, res))->def.version != def->version) {
        e->retry = true;
        return engine_fail(e, ERR_CONFLICT, "the definition of %s/%s changed under this request", def->service,
                           def->name);
    }
    return 0;
}

static int cmp_res(const void *a, const void *b)
{
    return strcmp(((const struct eng_resource *)a)->name, ((const struct eng_resource *)b)->name);
}

int memrec_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                         struct eng_resource *out, size_t max, size_t *n)
{
    struct shm_map_entry me;
    uint64_t sv, pos = 0;
    int rc;

    *n = 0;
    if ((rc = svc_enter(e, s, service, &sv)) != 0 || sv == 0)
        return rc;
    while (*n < max && shm_map_next(R(e), ((struct rec_svc *)P(e, sv))->resources, &pos, &me))
        out[(*n)++] = ((struct rec_res *)P(e, me.val))->def;
    qsort(out, *n, sizeof *out, cmp_res);
    return 0;
}

/* Where field `to` of the new definition takes its values from: the old field, or NULL. */
static const struct eng_field *source_of(const struct eng_resource *old, const struct eng_field *to,
                                         const struct eng_rename *ren, size_t nren)
{
    for (size_t i = 0; i < nren; i++)
        if (strcmp(ren[i].to, to->name) == 0)
            return eng_resource_field(old, ren[i].from);
    for (size_t i = 0; i < nren; i++)
        if (strcmp(ren[i].from, to->name) == 0)
            return NULL;        /* renamed away: a new field of that name starts empty */
    return eng_resource_field(old, to->name);
}

/* Builds the record's data under the new definition: Returns owned in *out,
 * or an ERR_CONFLICT reason. */
static int transform(const struct eng_resource *old, const struct eng_resource *def,
                     const struct eng_rename *ren, size_t nren, const struct eng_record *rec,
                     cJSON **data, cJSON **bidx, const struct eng_field **bad, const char **why)
{
    cJSON *d = cJSON_CreateObject(), *b = cJSON_CreateObject();

    *data = *bidx = NULL;
    if (d == NULL || b == NULL)
        goto nomem;
    for (int i = 0; i < def->nfields; i++) {
        const struct eng_field *f = &def->fields[i], *src = source_of(old, f, ren, nren);
        const cJSON *v = src != NULL ? cJSON_GetObjectItemCaseSensitive(rec->data, src->name) : NULL;
        cJSON *nv = NULL;

        *bad = f;
        if (v == NULL || cJSON_IsNull(v)) {
            if (f->def[0] != '\0' && src == NULL)
                nv = cJSON_Parse(f->def);
            else if (f->required) {
                *why = src == NULL ? "a new required field needs a default while records exist"
                                   : "a record has no value for a field made required";
                goto conflict;
            }
            if (nv != NULL && !cJSON_AddItemToObject(d, f->name, nv)) {
                cJSON_Delete(nv);
                goto nomem;
            }
            continue;
        }
        if (f->pii || src->pii) {
            const cJSON *h = rec->bidx != NULL ? cJSON_GetObjectItemCaseSensitive(rec->bidx, src->name) : NULL;
            /* A sealed value is bound to its field's name (the caller's AAD):
             * renamed, it would no longer open, so refuse rather than lose it. */
            if (f->pii != src->pii || f->type != src->type || strcmp(f->name, src->name) != 0) {
                *why = "a pii field cannot be renamed or change its type or pii flag while records hold values";
                goto conflict;
            }
            nv = cJSON_Duplicate(v, true);
            if (h != NULL)
                cJSON_AddItemToObject(b, f->name, cJSON_Duplicate(h, true));
        } else if (src->type == f->type && src->dim == f->dim) {
            nv = cJSON_Duplicate(v, true);
        } else if ((nv = eng_value_cast(v, src->type, src->dim, f, why)) == NULL) {
            goto conflict;
        }
        if (nv == NULL || !cJSON_AddItemToObject(d, f->name, nv)) {
            cJSON_Delete(nv);
            goto nomem;
        }
    }
    *data = d;
    *bidx = b;
    return 0;
conflict:
    cJSON_Delete(d);
    cJSON_Delete(b);
    return ERR_CONFLICT;
nomem:
    cJSON_Delete(d);
    cJSON_Delete(b);
    *why = "out of memory";
    return ERR_NOMEM;
}

/* Every record of every org under the change: ERR_CONFLICT with *why when one
 * cannot take it. Reported is the first field, in def's order, that some
 * record fails at (each record stops at its first), with how many records
 * fail there (of every org) and one of the caller's org's as the sample ("" when
 * none of its own fails: another org's id is never named), as the PostgreSQL
 * engine's probe reports it. Writes nothing. */
static int check_all(struct engine *e, const struct eng_scope *s, uint64_t res,
                     const struct eng_resource *def, const struct eng_rename *ren, size_t nren,
                     struct eng_schema_conflict *why)
{
    const struct rec_res *rr = P(e, res);
    struct shm_map_entry se, re;
    uint64_t spos = 0;
    long first = -1;            /* index in def->fields of the reported field */

    while (shm_map_next(R(e), rr->stores, &spos, &se)) {
        bool mine = se.klen == strlen(s->org_id) && memcmp(se.key, s->org_id, se.klen) == 0;
        uint64_t recs = ((struct rec_store *)P(e, se.val))->records, rpos = 0;

        while (shm_map_next(R(e), recs, &rpos, &re)) {
            struct eng_record rec;
            const struct eng_field *bad = NULL;
            const char *reason = "";
            cJSON *d, *b;
            int rc = memrec_blob_parse(P(e, re.val), &rec);

            if (rc != 0)
                return engine_fail(e, rc, "record unreadable");
            rc = transform(&rr->def, def, ren, nren, &rec, &d, &b, &bad, &reason);
            cJSON_Delete(d);
            cJSON_Delete(b);
            if (rc == ERR_CONFLICT) {
                long at = (long)(bad - def->fields);
                if (first < 0 || at < first) {
                    first = at;
                    why->count = 0;
                    why->record_id[0] = '\0';
                    snprintf(why->field, sizeof why->field, "%s", bad->name);
                    snprintf(why->reason, sizeof why->reason, "%s", reason);
                }
                if (at == first) {
                    why->count++;
                    if (mine && why->record_id[0] == '\0')
                        snprintf(why->record_id, sizeof why->record_id, "%s", rec.id);
                }
            }
            eng_record_cleanup(&rec);
            if (rc == ERR_NOMEM)
                return engine_fail(e, rc, "out of memory");
        }
    }
    if (first >= 0)
        return engine_fail(e, ERR_CONFLICT, "field %s: %s", why->field, why->reason);
    return 0;
}

/* Rebuilds every store's records under def and publishes each with one word. */
static int rebuild_all(struct engine *e, uint64_t res, const struct eng_resource *def,
                       const struct eng_rename *ren, size_t nren)
{
    const struct rec_res *rr = P(e, res);
    struct shm_map_entry se, re;
    uint64_t spos = 0;

    while (shm_map_next(R(e), rr->stores, &spos, &se)) {
        uint64_t recs = ((struct rec_store *)P(e, se.val))->records, rpos = 0;
        uint64_t fresh = newmap(e, shm_map_count(R(e), recs) + 1);
        int rc = 0;

        if (fresh == 0)
            return ERR_NOSPACE;
        while (rc == 0 && shm_map_next(R(e), recs, &rpos, &re)) {
            struct eng_record rec, nrec;
            const struct eng_field *bad;
            const char *why;
            uint64_t off;

            if ((rc = memrec_blob_parse(P(e, re.val), &rec)) != 0)
                break;
            nrec = rec;
            rc = transform(&rr->def, def, ren, nren, &rec, &nrec.data, &nrec.bidx, &bad, &why);
            if (rc == 0 && (off = blob_new(e, def, &nrec, &rc)) != 0) {
                if (shm_map_add(R(e), fresh, rec.id, strlen(rec.id), off) != 0)
                    rc = engine_mem_broke(e, ERR_NOSPACE, "index insert");
            }
            eng_record_cleanup(&rec);
            eng_record_cleanup(&nrec);
        }
        if (rc != 0)
            return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "schema rebuild");
        if (shm_set64(R(e), se.val + offsetof(struct rec_store, records), fresh) != 0)
            return engine_mem_broke(e, ERR_NOSPACE, "schema publish");
        rpos = 0;
        while (shm_map_next(R(e), recs, &rpos, &re))
            shm_free(R(e), re.val);
        shm_map_free(R(e), recs);
    }
    return 0;
}

int memrec_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                        const struct eng_rename *ren, size_t nren, int64_t now,
                        const struct eng_audit *audit, struct eng_schema_conflict *why)
{
    struct eng_schema_conflict scratch;
    struct eng_org org;
    uint64_t sv, res = 0, off;
    struct rec_res *nr;
    int rc;

    if (why == NULL)
        why = &scratch;
    memset(why, 0, sizeof *why);
    if ((rc = engine_mem_enter_org(e, s)) != 0 || (rc = engine_org_get(e, s, &org)) != 0)
        return rc;
    /* a schema is every org's: only the platform's own org may shape it */
    if (!org.platform)
        return engine_fail(e, ERR_FORBIDDEN, "schema change from an org that is not the platform's");
    if (!eng_resource_valid(def))
        return engine_fail(e, ERR_INVAL, "malformed resource definition");
    for (size_t i = 0; i < nren; i++)
        if (!eng_name_valid(ren[i].from, ENG_FIELD) || eng_resource_field(def, ren[i].to) == NULL)
            return engine_fail(e, ERR_INVAL, "rename of %.64s names no new field", ren[i].from);
    sv = memrec_svc_find(e, s, def->service, false);
    if (sv != 0)
        memrec_find(e, ((struct rec_svc *)P(e, sv))->resources, def->name, &res);
    if (res != 0 && (rc = check_all(e, s, res, def, ren, nren, why)) != 0)
        return rc;
    if (sv == 0 && (sv = memrec_svc_find(e, s, def->service, true)) == 0)
        return ERR_NOSPACE;
    if ((off = memrec_alloc(e, sizeof *nr)) == 0)
        return ERR_NOSPACE;
    nr = P(e, off);
    nr->def = *def;
    nr->def.version = res != 0 ? ((struct rec_res *)P(e, res))->def.version + 1 : 1;
    nr->def.updated_at = now;
    if (res != 0) {
        nr->stores = ((struct rec_res *)P(e, res))->stores;
        nr->models = ((struct rec_res *)P(e, res))->models; /* the projector sees the definition changed */
        if ((rc = rebuild_all(e, res, def, ren, nren)) != 0)
            return rc;
    } else if ((nr->stores = newmap(e, 4)) == 0 || (nr->models = newmap(e, 4)) == 0) {
        return ERR_NOSPACE;
    }
    if ((rc = memrec_put(e, ((struct rec_svc *)P(e, sv))->resources, def->name, off, NULL)) != 0)
        return rc;
    if (res != 0)
        shm_free(R(e), res);
    /* the same unit of work: the region's undo log takes both back or neither */
    return audit != NULL ? e->ops->audit_append(e, s, audit) : 0;
}

/* ---- records ------------------------------------------------------------------ */

int memrec_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_record *rec)
{
    struct eng_record copy;
    uint64_t res, recs, off;
    int rc;

    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0)
        return rc;
    if (rec == NULL || memchr(rec->id, 0, sizeof rec->id) == NULL || rec->id[0] == '\0')
        return engine_fail(e, ERR_INVAL, "record without an id");
    if ((rc = record_fits(e, &((struct rec_res *)P(e, res))->def, rec)) != 0)
        return rc;
    if ((recs = memrec_store_records(e, res, s->org_id, false)) != 0 && memrec_find(e, recs, rec->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "record id taken");
    if (recs == 0 && (recs = memrec_store_records(e, res, s->org_id, true)) == 0)
        return ERR_NOSPACE;
    copy = *rec;
    copy.version = 1;
    if ((off = blob_new(e, &((struct rec_res *)P(e, res))->def, &copy, &rc)) == 0)
        return rc == ERR_NOSPACE ? rc : engine_fail(e, rc, "out of memory");
    if ((rc = memrec_put(e, recs, rec->id, off, NULL)) != 0)
        return rc;
    return memrec_outbox_add(e, s, service, resource, &copy, "create", copy.updated_at);
}

/* The live blob of id in the org's store, or ERR_NOTFOUND. */
static int blob_find(struct engine *e, const struct eng_scope *s, uint64_t res, const char *id,
                     int64_t now, uint64_t *recs, uint64_t *off)
{
    if (id == NULL || (*recs = memrec_store_records(e, res, s->org_id, false)) == 0 ||
        !memrec_find(e, *recs, id, off) || expired(P(e, *off), now))
        return engine_fail(e, ERR_NOTFOUND, "no such record");
    return 0;
}

int memrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const char *id, int64_t now, struct eng_record *out)
{
    uint64_t res, recs, off;
    int rc;

    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0 ||
        (rc = blob_find(e, s, res, id, now, &recs, &off)) != 0)
        return rc;
    if ((rc = memrec_blob_parse(P(e, off), out)) != 0)
        return engine_fail(e, rc, "record unreadable");
    return 0;
}

int memrec_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, struct eng_record *rec, int64_t if_version)
{
    uint64_t res, recs, off, noff;
    const struct rec_blob *old;
    struct eng_record copy;
    int rc;

    if (rec == NULL)
        return engine_fail(e, ERR_INVAL, "no record");
    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0 ||
        (rc = blob_find(e, s, res, rec->id, rec->updated_at, &recs, &off)) != 0)
        return rc;
    old = P(e, off);
    if (if_version != 0 && old->version != if_version)
        return engine_fail(e, ERR_PRECONDITION, "version is %" PRId64, old->version);
    if ((rc = record_fits(e, &((struct rec_res *)P(e, res))->def, rec)) != 0)
        return rc;
    copy = *rec;
    copy.version = old->version + 1;
    copy.created_at = old->created_at;
    copy.expires_at = old->expires_at;
    if ((noff = blob_new(e, &((struct rec_res *)P(e, res))->def, &copy, &rc)) == 0)
        return rc == ERR_NOSPACE ? rc : engine_fail(e, rc, "out of memory");
    if ((rc = memrec_put(e, recs, rec->id, noff, NULL)) != 0)
        return rc;
    shm_free(R(e), off);
    rec->version = copy.version;
    rec->created_at = copy.created_at;
    rec->expires_at = copy.expires_at;
    return memrec_outbox_add(e, s, service, resource, &copy, "update", copy.updated_at);
}

int memrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const char *id, int64_t if_version, int64_t now)
{
    uint64_t res, recs, off;
    struct eng_record gone = {0};
    const struct rec_blob *old;
    int rc;

    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0 ||
        (rc = blob_find(e, s, res, id, now, &recs, &off)) != 0)
        return rc;
    old = P(e, off);
    if (if_version != 0 && old->version != if_version)
        return engine_fail(e, ERR_PRECONDITION, "version is %" PRId64, old->version);
    memcpy(gone.id, old->id, ENG_ID);
    gone.version = old->version + 1;
    rc = shm_map_del(R(e), recs, id, strlen(id), NULL);
    if (rc != 0)
        return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index delete");
    shm_free(R(e), off);
    return memrec_outbox_add(e, s, service, resource, &gone, "delete", now);
}

/* ---- list: filters, order, keyset --------------------------------------------- */

/* The value a query sees for field name of rec (Borrowed, or a scratch number/string). */
static const cJSON *column(const struct eng_record *rec, const char *name, cJSON *scratch)
{
    if (strcmp(name, "id") == 0) {
        scratch->type = cJSON_String;
        scratch->valuestring = (char *)rec->id;
        return scratch;
    }
    if (strcmp(name, "created_at") == 0 || strcmp(name, "updated_at") == 0) {
        scratch->type = cJSON_Number;
        scratch->valuedouble = (double)(name[0] == 'c' ? rec->created_at : rec->updated_at);
        return scratch;
    }
    return cJSON_GetObjectItemCaseSensitive(rec->data, name);
}

static bool is_null(const cJSON *v)
{
    return v == NULL || cJSON_IsNull(v);
}

/* Orders two non-null values of one type. */
static int cmp_values(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return (a->valuedouble > b->valuedouble) - (a->valuedouble < b->valuedouble);
    if (cJSON_IsString(a) && cJSON_IsString(b))
        return strcmp(a->valuestring, b->valuestring);
    if (cJSON_IsBool(a) && cJSON_IsBool(b))
        return cJSON_IsTrue(a) - cJSON_IsTrue(b);
    return 0;
}

/* Nulls after every value. */
static int cmp_nullable(const cJSON *a, const cJSON *b)
{
    if (is_null(a) || is_null(b))
        return is_null(a) - is_null(b);
    return cmp_values(a, b);
}

static bool equal(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsNumber(a) || cJSON_IsString(a) || cJSON_IsBool(a))
        return cmp_values(a, b) == 0 && (cJSON_IsBool(a) == cJSON_IsBool(b)) &&
               (cJSON_IsNumber(a) == cJSON_IsNumber(b));
    return cJSON_Compare(a, b, true);
}

/* The start of the next UTF-8 character (values are valid UTF-8: json_parse
 * checks); never past the terminating NUL. */
static const char *next_char(const char *s)
{
    do
        s++;
    while ((*s & 0xC0) == 0x80);
    return s;
}

/* SQL LIKE as PostgreSQL has it: % any run, _ one character (not one byte),
 * \ escapes. Greedy with one backtrack point, the last %: O(len(s) x len(p))
 * at worst, where trying every split per % would be exponential in the
 * number of %s a client may send. */
static bool like(const char *s, const char *p)
{
    const char *star_p = NULL, *star_s = NULL;

    while (*s != '\0') {
        if (*p == '%') {
            while (*p == '%')
                p++;
            if (*p == '\0')
                return true;
            star_p = p;
            star_s = s;
            continue;
        }
        if (*p == '_') {
            p++;
            s = next_char(s);
            continue;
        }
        const char *lit = *p == '\\' && p[1] != '\0' ? p + 1 : p;
        if (*lit != '\0' && *lit == *s) {
            p = lit + 1;
            s++;
            continue;
        }
        if (star_p == NULL)
            return false;
        star_s = next_char(star_s); /* the last % takes one more character */
        s = star_s;
        p = star_p;
    }
    while (*p == '%')
        p++;
    return *p == '\0';
}

bool memrec_matches(const struct eng_resource *def, const struct eng_record *rec, const struct eng_filter *f)
{
    cJSON scratch = {0};
    const struct eng_field *fd = eng_resource_field(def, f->field);
    const cJSON *v = column(rec, f->field, &scratch), *w = f->value;
    int c;

    if (fd != NULL && fd->pii) {
        if (f->op == ENG_OP_IS)
            return cJSON_IsNull(w) == is_null(v);
        v = rec->bidx != NULL ? cJSON_GetObjectItemCaseSensitive(rec->bidx, f->field) : NULL;
        return f->op == ENG_OP_EQ && !is_null(v) && cJSON_IsString(w) && equal(v, w);
    }
    if (f->op == ENG_OP_IS) {
        if (cJSON_IsNull(w))
            return is_null(v);
        return cJSON_IsBool(v) && cJSON_IsTrue(v) == cJSON_IsTrue(w);
    }
    if (is_null(v) || w == NULL)
        return false;
    switch (f->op) {
    case ENG_OP_EQ:
        return equal(v, w);
    case ENG_OP_NEQ:
        return !equal(v, w);
    case ENG_OP_LIKE:
        return cJSON_IsString(v) && cJSON_IsString(w) && like(v->valuestring, w->valuestring);
    case ENG_OP_IN: {
        const cJSON *x;
        cJSON_ArrayForEach(x, w) if (equal(v, x)) return true;
        return false;
    }
    default:
        break;
    }
    if (cJSON_IsNumber(v) != cJSON_IsNumber(w) || cJSON_IsString(v) != cJSON_IsString(w) ||
        cJSON_IsBool(v) != cJSON_IsBool(w) || !(cJSON_IsNumber(v) || cJSON_IsString(v) || cJSON_IsBool(v)))
        return false;
    c = cmp_values(v, w);
    switch (f->op) {
    case ENG_OP_GT: return c > 0;
    case ENG_OP_GTE: return c >= 0;
    case ENG_OP_LT: return c < 0;
    case ENG_OP_LTE: return c <= 0;
    default: return false;
    }
}

struct sortctx {
    const char *order;
    bool desc;
};

static struct sortctx sort_ctx;     /* qsort has no argument; the worker is single-threaded */

static int cmp_key(const struct eng_record *a, const cJSON *av, const char *bid, const cJSON *bv)
{
    int c = cmp_nullable(av, bv);

    if (c == 0)
        c = strcmp(a->id, bid);
    return sort_ctx.desc ? -c : c;
}

static int cmp_rec(const void *pa, const void *pb)
{
    const struct eng_record *a = pa, *b = pb;
    cJSON sa = {0}, sb = {0};

    return cmp_key(a, column(a, sort_ctx.order, &sa), b->id, column(b, sort_ctx.order, &sb));
}

bool memrec_column_known(const struct eng_resource *def, const char *name)
{
    return strcmp(name, "id") == 0 || strcmp(name, "created_at") == 0 ||
           strcmp(name, "updated_at") == 0 || eng_resource_field(def, name) != NULL;
}

int memrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *resource, const struct eng_query *q, struct eng_record *out,
                       size_t max, size_t *n)
{
    const struct eng_resource *def;
    struct eng_record *all = NULL;
    struct shm_map_entry me;
    uint64_t res, recs, pos = 0;
    size_t count, k = 0;
    int rc;

    *n = 0;
    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0)
        return rc;
    def = &((struct rec_res *)P(e, res))->def;
    for (size_t i = 0; i < q->nfilters; i++)
        if (!memrec_column_known(def, q->filters[i].field))
            return engine_fail(e, ERR_INVAL, "no field %.64s", q->filters[i].field);
    if (q->order[0] != '\0' && !memrec_column_known(def, q->order))
        return engine_fail(e, ERR_INVAL, "no field %.64s", q->order);
    if ((recs = memrec_store_records(e, res, s->org_id, false)) == 0)
        return 0;
    count = shm_map_count(R(e), recs);
    if (count == 0)
        return 0;
    if ((all = calloc(count, sizeof *all)) == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    sort_ctx = (struct sortctx){q->order[0] != '\0' ? q->order : "id", q->desc};
    while (k < count && shm_map_next(R(e), recs, &pos, &me)) {
        const struct rec_blob *b = P(e, me.val);
        bool keep = !expired(b, q->now);

        if (keep && (rc = memrec_blob_parse(b, &all[k])) != 0)
            break;
        for (size_t i = 0; keep && i < q->nfilters; i++)
            keep = memrec_matches(def, &all[k], &q->filters[i]);
        if (keep && q->has_after) {
            cJSON sa = {0};
            keep = cmp_key(&all[k], column(&all[k], sort_ctx.order, &sa), q->after_id, q->after_value) > 0;
        }
        if (keep)
            k++;
        else
            eng_record_cleanup(&all[k]);
    }
    if (rc != 0) {
        for (size_t i = 0; i < k; i++)
            eng_record_cleanup(&all[i]);
        free(all);
        return engine_fail(e, rc, "record unreadable");
    }
    qsort(all, k, sizeof *all, cmp_rec);
    for (size_t i = 0; i < k; i++) {
        if (*n < max)
            out[(*n)++] = all[i];
        else
            eng_record_cleanup(&all[i]);
    }
    free(all);
    return 0;
}

static int cmp_outbox(const void *a, const void *b)
{
    uint64_t x = ((const struct eng_outbox *)a)->seq, y = ((const struct eng_outbox *)b)->seq;

    return (x > y) - (x < y);
}

int memrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                       uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n)
{
    struct shm_map_entry me;
    struct eng_outbox *all;
    uint64_t sv, pos = 0;
    size_t count, k = 0;
    int rc;

    *n = 0;
    if ((rc = svc_enter(e, s, service, &sv)) != 0 || sv == 0)
        return rc;
    count = shm_map_count(R(e), ((struct rec_svc *)P(e, sv))->outbox);
    if (count == 0)
        return 0;
    if ((all = malloc(count * sizeof *all)) == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    while (k < count && shm_map_next(R(e), ((struct rec_svc *)P(e, sv))->outbox, &pos, &me)) {
        const struct eng_outbox *ob = P(e, me.val);
        if (ob->seq > after_seq && strcmp(ob->org_id, s->org_id) == 0)
            all[k++] = *ob;
    }
    qsort(all, k, sizeof *all, cmp_outbox);
    for (size_t i = 0; i < k && *n < max; i++)
        out[(*n)++] = all[i];
    free(all);
    return 0;
}
