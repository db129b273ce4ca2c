/* engine_mem_records: the memory engine's resources and records (engine.h's
 * "resources and records" section), kept out of engine_mem.c. Private to the
 * two files: engine_mem.c installs the ops below into its table and lends the
 * records code its unit-of-work checks through the three hooks. */
#ifndef LIB_ENGINE_MEM_RECORDS_H
#define LIB_ENGINE_MEM_RECORDS_H

#include "store/engine.h"

struct shm_region;

/* engine_mem.c: the handle's region (Borrowed). */
struct shm_region *engine_mem_region(struct engine *e);
/* engine_mem.c: 0 when a tenant-scoped call may run for s (a unit of work is
 * open and usable, the scope is the one begun, the org exists), else its error. */
int engine_mem_enter_org(struct engine *e, const struct eng_scope *s) ERR_MUST_CHECK;
/* engine_mem.c: marks the unit of work spoiled (it will roll back); returns rc. */
int engine_mem_broke(struct engine *e, int rc, const char *what);

int memrec_resource_hold(struct engine *e, const struct eng_scope *s, const struct eng_resource *def);
int memrec_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *name, struct eng_resource *out);
int memrec_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                         struct eng_resource *out, size_t max, size_t *n);
int memrec_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                        const struct eng_rename *ren, size_t nren, int64_t now,
                        const struct eng_audit *audit, struct eng_schema_conflict *why);
int memrec_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_record *rec);
int memrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const char *id, int64_t now, struct eng_record *out);
int memrec_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, struct eng_record *rec, int64_t if_version);
int memrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const char *id, int64_t if_version, int64_t now);
int memrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *resource, const struct eng_query *q, struct eng_record *out,
                       size_t max, size_t *n);
int memrec_record_search(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_search *q, struct eng_hit *out,
                         size_t *n, int *strategy);
int memrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                       uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n);

/* ---- CQRS (engine.h): the ops engine_mem.c wraps in units of work ---------------- */

/* Projected events a service and mode keeps for the feed, at most: the
 * region stays flat however many writes come (engine_mem.h). */
#define MEMREC_CHANGES_MAX 10000

/* (org and mode, service, resource) pairs an op changed, for the touch callback after the commit. */
struct memrec_touched {
    struct {
        struct eng_scope scope;
        char service[ENG_SLUG];
        char resource[ENG_FIELD];
    } *v;
    size_t n, cap;
};
void memrec_touched_free(struct memrec_touched *t);

/* Inside a section: up to max events of each service and mode applied. */
int memrec_project(struct engine *e, size_t max, struct memrec_touched *t, struct eng_projection *out);
/* The projector's wake-up word in the region (a futex) and its value when looked at. */
struct memrec_wake {
    uint32_t *word;             /* NULL: nothing to wait on (no service yet) */
    uint32_t *waiters;
    uint32_t seen;
};
/* Inside a section: whether events wait (*pending); else the word to wait
 * on, counted as waited on: the caller ends the section and calls
 * memrec_wait_on (when w->word is set). */
int memrec_wait_prepare(struct engine *e, struct memrec_wake *w, bool *pending);
/* Outside any section: until the word moves from seen, timeout_ms or a signal. */
void memrec_wait_on(const struct memrec_wake *w, int timeout_ms);
/* Inside a section: up to budget expired records and old events deleted; *more when some are left. */
int memrec_reap(struct engine *e, const struct eng_reap_policy *p, size_t budget, struct memrec_touched *t,
                struct eng_reaped *out, bool *more);
int memrec_view_read(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                     const char *view, cJSON **rows, bool *more, int64_t *pending_ms);
int memrec_changes_list(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                        uint64_t after, struct eng_change *out, size_t max, size_t *n, uint64_t *head);

#define ENGINE_MEM_RECORD_OPS                                                       \
    .resource_get = memrec_resource_get, .resource_list = memrec_resource_list,     \
    .resource_hold = memrec_resource_hold,                                          \
    .resource_put = memrec_resource_put, .record_create = memrec_record_create,     \
    .record_get = memrec_record_get, .record_update = memrec_record_update,         \
    .record_delete = memrec_record_delete, .record_list = memrec_record_list,       \
    .record_search = memrec_record_search,                                          \
    .outbox_list = memrec_outbox_list, .view_read = memrec_view_read,               \
    .changes_list = memrec_changes_list

#endif
