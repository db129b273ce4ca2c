/* engine_mem_rec_int: what the memory engine's records files share, private
 * to them: engine_mem_records.c (resources, records, lists: its opening
 * comment has the layout and the design), engine_mem_search.c (vector
 * search) and engine_mem_cqrs.c (the projector, views, the change feed, the
 * reaper). The structs below live in the shared region; every function here
 * runs inside the caller's section of it. */
#ifndef LIB_STORE_MEM_ENGINE_MEM_REC_INT_H
#define LIB_STORE_MEM_ENGINE_MEM_REC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/mem/engine_mem_records.h"
#include "store/mem/shm.h"

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

static inline size_t vec_size(int dim)
{
    size_t at = (sizeof(struct rec_vec) + (size_t)dim * sizeof(float) + 7) & ~(size_t)7;

    return at + (size_t)dim * sizeof(double);
}

static inline const double *vec_doubles(const struct rec_vec *v)
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

/* ---- engine_mem_records.c --------------------------------------------------- */

/* The region's root of the records, or NULL before the first schema write. */
struct rec_root *memrec_rroot(struct engine *e);
/* The service's node for s's mode, or 0 (made when create is set). */
uint64_t memrec_svc_find(struct engine *e, const struct eng_scope *s, const char *service, bool create);
/* The resource's node for a read or write call (s's org entered), or an error. */
int memrec_res_find(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                    uint64_t *res);
/* The org's store of a resource: its records map, or 0 when it has none (made when create). */
uint64_t memrec_store_records(struct engine *e, uint64_t res, const char *org, bool create);
/* A map lookup (val may be NULL), a logged put (old may be NULL), an
 * allocation: a failed put or allocation breaks the unit of work. */
bool memrec_find(struct engine *e, uint64_t map, const char *key, uint64_t *val);
int memrec_put(struct engine *e, uint64_t map, const char *key, uint64_t val, uint64_t *old);
uint64_t memrec_alloc(struct engine *e, size_t n);
/* A record's blob parsed into out (data and bidx Returns owned). */
int memrec_blob_parse(const struct rec_blob *b, struct eng_record *out);
/* The outbox entry of a write (op "create", "update", "delete"), in the same unit. */
int memrec_outbox_add(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                      const struct eng_record *rec, const char *op, int64_t at);
/* Whether rec passes filter f (as the list reads it); whether name is a column of def. */
bool memrec_matches(const struct eng_resource *def, const struct eng_record *rec, const struct eng_filter *f);
bool memrec_column_known(const struct eng_resource *def, const char *name);

static inline bool expired(const struct rec_blob *b, int64_t now)
{
    return b->expires_at != 0 && b->expires_at <= now;
}

/* Borrowed: the packed value of the definition's field pos in b, or NULL when it holds none. */
static inline const struct rec_vec *blob_vec(const struct rec_blob *b, uint32_t pos)
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


#endif
