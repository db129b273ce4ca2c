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
 * A record is stored as one block: its fixed columns and the JSON text
 * {"d": data, "b": bidx}. Reads parse it; a list parses every record of the
 * org's store, filters, sorts and pages (exact, O(n log n) a page: this engine
 * is for tests, development and demos).
 *
 * Crash consistency (lib/store/mem/shm.h): records and schemas are replaced
 * copy-on-write (a new block, one map put, the old block freed). A schema
 * change first casts every record without writing anything (so a refused
 * change costs nothing and changes nothing), then builds each store's records
 * anew in a new map and publishes it with one logged word; the undo log only
 * pays for the allocations, so a change over very many records can run out of
 * it (ERR_NOSPACE, the unit of work rolls back whole).
 *
 * The outbox keeps every entry until the projector (a later issue) consumes
 * and trims it; until then it grows with the writes, like the audit log.
 *
 * The value helpers (types, checks, casts) are engine-independent: values.c. */
#include "store/mem/engine_mem_records.h"

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

#define REC_ROOT "engine.rec"
#define REC_MAGIC 0x3263657261727374ull     /* "tsrarec2": events, read models, the wake-up word */

struct rec_root {
    uint64_t magic;
    uint64_t svcs;
    /* The projector's wake-up (memrec_wait): bumped by every record write,
     * waited on with futex(2). Changed with atomics, never through the undo
     * log: a rolled-back write's bump is one spurious wake-up, nothing more. */
    uint32_t wake;
    uint32_t waiters;
};

struct rec_svc {
    uint64_t resources;
    uint64_t outbox;            /* seq (16 hex) → struct rec_event */
    uint64_t seq;               /* the last outbox seq */
    uint64_t projected;         /* every event up to this seq is projected */
    uint64_t trimmed;           /* every event up to this seq is gone (the feed's trim point) */
};

struct rec_res {
    uint64_t stores;
    uint64_t models;            /* org id → struct rec_model: the org's views of this resource */
    struct eng_resource def;
};

/* An outbox entry: the event, when it was written and when it was projected. */
struct rec_event {
    struct eng_outbox ob;       /* first: outbox_list reads it as one */
    int64_t at_ms;              /* the write's wall-clock time */
    int64_t projected_at;       /* unix seconds; 0: not yet */
};

/* An org's read model of one resource: the fingerprint of the definition it
 * was built for (views_fp) and its views' rows as JSON text
 * {"fp": …, "views": {name: [rows]}}. */
struct rec_model {
    char fp[17];
    uint64_t len;
    char text[];
};

struct rec_store {
    uint64_t records;
};

struct rec_blob {
    char id[ENG_ID];
    int64_t version, created_at, updated_at, expires_at;
    uint64_t len;               /* of the JSON text, without its NUL */
    uint32_t nvec;              /* vector values (struct rec_vec) at the start of data */
    uint32_t text_at;           /* where the JSON text starts in data, past them */
    char data[];                /* the vectors, then the text {"d": data, "b": bidx} */
};

/* A vector value of a record, also kept beside its JSON so a search scores
 * it without parsing the record (the search section): as floats, which a
 * scan reads (half the bytes of the doubles), then as the doubles, which it
 * reads only for a record the floats cannot rule out. Right after the blob's
 * header, so a scan reads one run of memory per record and knows where it is
 * from the blob's address alone. */
struct rec_vec {
    uint32_t pos;               /* the field's index in the definition it was written under
                                 * (every schema change rewrites every blob: rebuild_all) */
    uint32_t dim;
    uint32_t size;              /* bytes of this entry: the next one starts there */
    uint32_t at;                /* where the doubles are, from the entry */
    double norm;                /* vec_norm of the doubles */
    float f[];                  /* dim floats */
};

static size_t vec_size(int dim)
{
    size_t at = (sizeof(struct rec_vec) + (size_t)dim * sizeof(float) + 7) & ~(size_t)7;

    return at + (size_t)dim * sizeof(double);
}

static const double *vec_doubles(const struct rec_vec *v)
{
    return (const double *)(const void *)((const char *)v + v->at);
}

static inline struct shm_region *R(struct engine *e)
{
    return engine_mem_region(e);
}

static inline void *P(struct engine *e, uint64_t off)
{
    return shm_ptr(R(e), off);
}

static bool find(struct engine *e, uint64_t map, const char *key, uint64_t *val)
{
    return map != 0 && shm_map_get(R(e), map, key, strlen(key), val) == 0;
}

static int put(struct engine *e, uint64_t map, const char *key, uint64_t val, uint64_t *old)
{
    int rc = shm_map_put(R(e), map, key, strlen(key), val, old);

    if (rc >= 0)
        return 0;
    return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index update");
}

static uint64_t alloc(struct engine *e, size_t n)
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

static struct rec_root *rroot(struct engine *e)
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
static uint64_t svc_find(struct engine *e, const struct eng_scope *s, const char *service, bool create)
{
    char key[ENG_SLUG + 8];
    struct rec_root *rt = rroot(e);
    uint64_t off, rootoff;
    struct rec_svc *sv;

    svc_key(s, service, key);
    if (rt != NULL && find(e, rt->svcs, key, &off))
        return off;
    if (!create)
        return 0;
    if (rt == NULL) {
        if ((rootoff = alloc(e, sizeof *rt)) == 0)
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
    if ((off = alloc(e, sizeof *sv)) == 0)
        return 0;
    sv = P(e, off);
    sv->seq = sv->projected = sv->trimmed = 0;
    if ((sv->resources = newmap(e, 8)) == 0 || (sv->outbox = newmap(e, 64)) == 0)
        return 0;
    if (put(e, rt->svcs, key, off, NULL) != 0)
        return 0;
    return off;
}

/* Every call on a service starts here: s's org entered, then the service's
 * node in *sv (0: the service has no resource yet). */
static int svc_enter(struct engine *e, const struct eng_scope *s, const char *service, uint64_t *sv)
{
    int rc = engine_mem_enter_org(e, s);

    *sv = rc == 0 ? svc_find(e, s, service, false) : 0;
    return rc;
}

/* The resource's node for a read or write call, or an error. */
static int res_find(struct engine *e, const struct eng_scope *s, const char *service,
                    const char *resource, uint64_t *res)
{
    int rc;
    uint64_t sv;

    if ((rc = svc_enter(e, s, service, &sv)) != 0)
        return rc;
    if (sv == 0 || !find(e, ((struct rec_svc *)P(e, sv))->resources, resource, res))
        return engine_fail(e, ERR_NOTFOUND, "no such resource");
    return 0;
}

/* The org's store of a resource: its records map, or 0 when it has none (made when create). */
static uint64_t store_records(struct engine *e, uint64_t res, const char *org, bool create)
{
    struct rec_res *rr = P(e, res);
    struct rec_store *st;
    uint64_t off;

    if (find(e, rr->stores, org, &off))
        return ((struct rec_store *)P(e, off))->records;
    if (!create)
        return 0;
    if ((off = alloc(e, sizeof *st)) == 0)
        return 0;
    st = P(e, off);
    if ((st->records = newmap(e, 16)) == 0)
        return 0;
    if (put(e, rr->stores, org, off, NULL) != 0)
        return 0;
    return st->records;
}

/* ---- record blobs ------------------------------------------------------------ */

static int blob_parse(const struct rec_blob *b, struct eng_record *out)
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
    if ((off = alloc(e, sizeof(struct rec_blob) + at + n + 1)) == 0) {
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

/* Borrowed: the packed value of the definition's field pos in b, or NULL when it holds none. */
static const struct rec_vec *blob_vec(const struct rec_blob *b, uint32_t pos)
{
    const char *p = b->data;

    for (uint32_t i = 0; i < b->nvec; i++) {
        const struct rec_vec *v = (const struct rec_vec *)(const void *)p;
        if (v->pos == pos)
            return v;
        p += v->size;
    }
    return NULL;
}

static bool expired(const struct rec_blob *b, int64_t now)
{
    return b->expires_at != 0 && b->expires_at <= now;
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

static int outbox_add(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_record *rec, const char *op, int64_t now)
{
    uint64_t sv = svc_find(e, s, service, false), off;
    struct rec_svc *node;
    struct rec_event *ev;
    struct eng_outbox *ob;
    struct timespec ts;
    char key[24];

    if (sv == 0)
        return engine_fail(e, ERR_INTERNAL, "outbox of a missing service");
    node = P(e, sv);
    if ((off = alloc(e, sizeof *ev)) == 0)
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
    if (put(e, node->outbox, key, off, NULL) != 0)
        return ERR_NOSPACE;
    if (shm_set64(R(e), sv + offsetof(struct rec_svc, seq), ob->seq) != 0)
        return engine_mem_broke(e, ERR_NOSPACE, "outbox seq");
    wake_projector(rroot(e));
    return 0;
}

/* ---- resources ------------------------------------------------------------- */

int memrec_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *name, struct eng_resource *out)
{
    uint64_t res;
    int rc = res_find(e, s, service, name, &res);

    if (rc != 0)
        return rc;
    *out = ((struct rec_res *)P(e, res))->def;
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
            int rc = blob_parse(P(e, re.val), &rec);

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

            if ((rc = blob_parse(P(e, re.val), &rec)) != 0)
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
    sv = svc_find(e, s, def->service, false);
    if (sv != 0)
        find(e, ((struct rec_svc *)P(e, sv))->resources, def->name, &res);
    if (res != 0 && (rc = check_all(e, s, res, def, ren, nren, why)) != 0)
        return rc;
    if (sv == 0 && (sv = svc_find(e, s, def->service, true)) == 0)
        return ERR_NOSPACE;
    if ((off = alloc(e, sizeof *nr)) == 0)
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
    if ((rc = put(e, ((struct rec_svc *)P(e, sv))->resources, def->name, off, NULL)) != 0)
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

    if ((rc = res_find(e, s, service, resource, &res)) != 0)
        return rc;
    if (rec == NULL || memchr(rec->id, 0, sizeof rec->id) == NULL || rec->id[0] == '\0')
        return engine_fail(e, ERR_INVAL, "record without an id");
    if ((rc = record_fits(e, &((struct rec_res *)P(e, res))->def, rec)) != 0)
        return rc;
    if ((recs = store_records(e, res, s->org_id, false)) != 0 && find(e, recs, rec->id, NULL))
        return engine_fail(e, ERR_CONFLICT, "record id taken");
    if (recs == 0 && (recs = store_records(e, res, s->org_id, true)) == 0)
        return ERR_NOSPACE;
    copy = *rec;
    copy.version = 1;
    if ((off = blob_new(e, &((struct rec_res *)P(e, res))->def, &copy, &rc)) == 0)
        return rc == ERR_NOSPACE ? rc : engine_fail(e, rc, "out of memory");
    if ((rc = put(e, recs, rec->id, off, NULL)) != 0)
        return rc;
    return outbox_add(e, s, service, resource, &copy, "create", copy.updated_at);
}

/* The live blob of id in the org's store, or ERR_NOTFOUND. */
static int blob_find(struct engine *e, const struct eng_scope *s, uint64_t res, const char *id,
                     int64_t now, uint64_t *recs, uint64_t *off)
{
    if (id == NULL || (*recs = store_records(e, res, s->org_id, false)) == 0 ||
        !find(e, *recs, id, off) || expired(P(e, *off), now))
        return engine_fail(e, ERR_NOTFOUND, "no such record");
    return 0;
}

int memrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const char *id, int64_t now, struct eng_record *out)
{
    uint64_t res, recs, off;
    int rc;

    if ((rc = res_find(e, s, service, resource, &res)) != 0 ||
        (rc = blob_find(e, s, res, id, now, &recs, &off)) != 0)
        return rc;
    if ((rc = blob_parse(P(e, off), out)) != 0)
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
    if ((rc = res_find(e, s, service, resource, &res)) != 0 ||
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
    if ((rc = put(e, recs, rec->id, noff, NULL)) != 0)
        return rc;
    shm_free(R(e), off);
    rec->version = copy.version;
    rec->created_at = copy.created_at;
    rec->expires_at = copy.expires_at;
    return outbox_add(e, s, service, resource, &copy, "update", copy.updated_at);
}

int memrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const char *id, int64_t if_version, int64_t now)
{
    uint64_t res, recs, off;
    struct eng_record gone = {0};
    const struct rec_blob *old;
    int rc;

    if ((rc = res_find(e, s, service, resource, &res)) != 0 ||
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
    return outbox_add(e, s, service, resource, &gone, "delete", now);
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

static bool matches(const struct eng_resource *def, const struct eng_record *rec, const struct eng_filter *f)
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

static bool column_known(const struct eng_resource *def, const char *name)
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
    if ((rc = res_find(e, s, service, resource, &res)) != 0)
        return rc;
    def = &((struct rec_res *)P(e, res))->def;
    for (size_t i = 0; i < q->nfilters; i++)
        if (!column_known(def, q->filters[i].field))
            return engine_fail(e, ERR_INVAL, "no field %.64s", q->filters[i].field);
    if (q->order[0] != '\0' && !column_known(def, q->order))
        return engine_fail(e, ERR_INVAL, "no field %.64s", q->order);
    if ((recs = store_records(e, res, s->org_id, false)) == 0)
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

        if (keep && (rc = blob_parse(b, &all[k])) != 0)
            break;
        for (size_t i = 0; keep && i < q->nfilters; i++)
            keep = matches(def, &all[k], &q->filters[i]);
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

/* ---- vector search (engine.h) ---------------------------------------------------------
 * One pass over the org's store: each live record's packed vector (rec_vec)
 * is scored from its floats without parsing the record; only one whose float
 * score, less what rounding to float can have moved it (vec_score_f's
 * slack), could still enter the best k so far is scored again from its
 * doubles, so the answer is exact; only one whose exact score enters is
 * parsed, to test the filters. The best k are a max-heap (worst at
 * the root) in one buffer of k candidates made before the scan, pointing into
 * the region (which the caller's unit of work holds still): nothing else is
 * allocated per row. The winners are parsed once more, to be copied out. */

struct cand {
    double score;
    const struct rec_blob *b;
};

/* Blobs are scattered over the region, so the scan is bound by memory
 * latency: while it scores one record it asks for every line the scan will
 * read of the one SCAN_AHEAD places on (its header and its floats: 10 lines
 * for 128 dimensions; more ahead, or the doubles too, measured slower), the
 * values read from the store's map SCAN_BATCH at a time. */
#define SCAN_BATCH 256
#define SCAN_AHEAD 4

static void prefetch(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch((const char *)p + i);
}

/* Whether a ranks after b: a larger score, ties by the larger id. */
static bool after(const struct cand *a, const struct cand *b)
{
    return a->score > b->score || (a->score == b->score && strcmp(a->b->id, b->b->id) > 0);
}

static void heap_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && after(&h[l], &h[w]))
            w = l;
        if (r < n && after(&h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heap_up(struct cand *h, size_t i)
{
    while (i > 0 && after(&h[i], &h[(i - 1) / 2])) {
        struct cand t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int cand_cmp(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;

    return after(a, b) ? 1 : after(b, a) ? -1 : 0;
}

/* Whether the record of b passes every filter of q (parsing it: the rare case). */
static int passes(const struct eng_resource *def, const struct rec_blob *b, const struct eng_query *q, bool *ok)
{
    struct eng_record rec;
    int rc;

    *ok = true;
    if (q->nfilters == 0)
        return 0;
    if ((rc = blob_parse(b, &rec)) != 0)
        return rc;
    for (size_t i = 0; *ok && i < q->nfilters; i++)
        *ok = matches(def, &rec, &q->filters[i]);
    eng_record_cleanup(&rec);
    return 0;
}

int memrec_record_search(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_search *q, struct eng_hit *out,
                         size_t *n, int *strategy)
{
    const struct eng_resource *def;
    const struct eng_field *f;
    struct cand *heap = NULL;
    uint64_t res, recs, pos = 0, vals[SCAN_BATCH];
    size_t k = 0, got, ahead = sizeof(struct rec_blob) + sizeof(struct rec_vec) + (size_t)q->dim * sizeof(float);
    uint32_t fpos;
    double qnorm = vec_norm(q->vector, q->dim);
    int rc;

    *n = 0;
    *strategy = ENG_STRATEGY_EXACT;
    if ((rc = res_find(e, s, service, resource, &res)) != 0)
        return rc;
    def = &((struct rec_res *)P(e, res))->def;
    if ((f = eng_resource_field(def, q->field)) == NULL || f->type != ENG_FT_VECTOR || f->dim != q->dim)
        return engine_fail(e, ERR_INVAL, "%.64s is not a vector(%d) field", q->field, q->dim);
    fpos = (uint32_t)(f - def->fields);
    for (size_t i = 0; i < q->where->nfilters; i++)
        if (!column_known(def, q->where->filters[i].field))
            return engine_fail(e, ERR_INVAL, "no field %.64s", q->where->filters[i].field);
    if ((recs = store_records(e, res, s->org_id, false)) == 0)
        return 0;
    if ((heap = malloc(q->k * sizeof *heap)) == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    while ((got = shm_map_vals(R(e), recs, &pos, vals, SCAN_BATCH)) > 0) {
        for (size_t j = 0; j < got; j++) {
            struct cand c = {.b = P(e, vals[j])};
            const struct rec_vec *v;
            double slack;
            bool ok;

            if (j + SCAN_AHEAD < got)
                prefetch(P(e, vals[j + SCAN_AHEAD]), ahead);
            if (expired(c.b, q->where->now) || (v = blob_vec(c.b, fpos)) == NULL ||
                !vec_score_f(q->metric, v->f, v->norm, q->vector, qnorm, q->dim, &c.score, &slack) ||
                (k == q->k && c.score - slack > heap[0].score && isfinite(c.score)))
                continue;
            /* the floats cannot rule it out (a component past float's range
             * never can): its exact score decides */
            if (!vec_score(q->metric, vec_doubles(v), v->norm, q->vector, qnorm, q->dim, &c.score) ||
                (k == q->k && !after(&heap[0], &c)))
                continue;
            if ((rc = passes(def, c.b, q->where, &ok)) != 0)
                goto out;
            if (!ok)
                continue;
            if (k < q->k) {
                heap[k] = c;
                heap_up(heap, k++);
            } else {
                heap[0] = c;
                heap_down(heap, k, 0);
            }
        }
    }
    qsort(heap, k, sizeof *heap, cand_cmp);
    for (; *n < k; (*n)++) {
        if ((rc = blob_parse(heap[*n].b, &out[*n].rec)) != 0)
            break;
        out[*n].score = heap[*n].score;
    }
out:
    free(heap);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            eng_record_cleanup(&out[i].rec);
        *n = 0;
        return engine_fail(e, rc, "record unreadable");
    }
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
    if (!find(e, node->outbox, key, &o))
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
    uint64_t recs = store_records(e, res, org, false), old = 0, off, pos = 0;
    cJSON *views = NULL, *out = NULL, *vo, *v, **data = NULL;
    struct eng_record *got = NULL;
    size_t n = 0, cap;
    char fp[17], *text = NULL;
    int rc = ERR_NOMEM;

    views_fp(&rr->def, fp);
    find(e, rr->models, org, &old);
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
        if ((rc = blob_parse(b, &got[n])) != 0)
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
    if ((off = alloc(e, sizeof(struct rec_model) + len + 1)) == 0) {
        rc = ERR_NOSPACE;
        goto out;
    }
    {
        struct rec_model *m = P(e, off);
        memcpy(m->fp, fp, sizeof m->fp);
        m->len = len;
        memcpy(m->text, text, len + 1);
    }
    if ((rc = put(e, rr->models, org, off, NULL)) != 0)
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
    if (find(e, node->outbox, key, &off)) {
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
            if (!find(e, rr->models, org, &mo) || strcmp(((struct rec_model *)P(e, mo))->fp, fp) != 0) {
                if ((rc = touch_add(t, mode, org, service, name)) != 0)
                    return rc;
                out->rebuilt++;
            }
        }
    }
    for (size_t i = first; i < t->n; i++) {
        uint64_t res;
        if (!find(e, node->resources, t->v[i].resource, &res))
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
    struct rec_root *rt = rroot(e);
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
    struct rec_root *rt = rroot(e);
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

    if ((rc = res_find(e, s, service, resource, &res)) != 0)
        return rc;
    struct rec_res *rr = P(e, res);
    sv = svc_find(e, s, service, false);
    views = rr->def.views[0] != '\0' ? cJSON_Parse(rr->def.views) : NULL;
    if (views == NULL || cJSON_GetObjectItemCaseSensitive(views, view) == NULL) {
        cJSON_Delete(views);
        return engine_fail(e, ERR_NOTFOUND, "no such view");
    }
    cJSON_Delete(views);
    views_fp(&rr->def, fp);
    *pending_ms = pending_of(e, P(e, sv), s->org_id, resource);
    if (find(e, rr->models, s->org_id, &mo) && strcmp(((struct rec_model *)P(e, mo))->fp, fp) == 0) {
        const struct rec_model *m = P(e, mo);
        model = cJSON_ParseWithLength(m->text, m->len);
        got = model != NULL ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(model, "views"), view)
                            : NULL;
        *rows = got != NULL ? cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(model, "views"), got)
                            : cJSON_CreateArray();
        cJSON_Delete(model);
    } else {
        /* not built for this definition yet: nothing to show, behind since the change */
        uint64_t recs = store_records(e, res, s->org_id, false);
        if ((recs != 0 && shm_map_count(R(e), recs) > 0) || find(e, rr->models, s->org_id, NULL)) {
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

    if ((rc = res_find(e, s, service, resource, &res)) != 0)
        return rc;
    const struct rec_svc *node = P(e, svc_find(e, s, service, false));
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
    struct rec_root *rt = rroot(e);
    uint64_t pos = 0;
    struct shm_map_entry me;
    int rc;

    *more = false;
    if (rt == NULL)
        return 0;
    while (shm_map_next(R(e), rt->svcs, &pos, &me)) {
        struct rec_svc *node = P(e, me.val);
        struct eng_scope sc;
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
                    if (!find(e, recs, ids[i], &off))
                        continue;
                    memcpy(gone.id, ids[i], ENG_ID);
                    gone.version = ((struct rec_blob *)P(e, off))->version + 1;
                    if ((rc = shm_map_del(R(e), recs, ids[i], strlen(ids[i]), NULL)) != 0)
                        return engine_mem_broke(e, rc == ERR_NOSPACE ? rc : ERR_INTERNAL, "index delete");
                    shm_free(R(e), off);
                    if ((rc = outbox_add(e, &sc, service, name, &gone, "delete", p->now)) != 0 ||
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
