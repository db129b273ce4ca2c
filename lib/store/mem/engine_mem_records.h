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
int memrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                       uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n);

#define ENGINE_MEM_RECORD_OPS                                                       \
    .resource_get = memrec_resource_get, .resource_list = memrec_resource_list,     \
    .resource_put = memrec_resource_put, .record_create = memrec_record_create,     \
    .record_get = memrec_record_get, .record_update = memrec_record_update,         \
    .record_delete = memrec_record_delete, .record_list = memrec_record_list,       \
    .outbox_list = memrec_outbox_list

#endif
