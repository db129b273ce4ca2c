/* engine_pg_records: resources and records on PostgreSQL. PLACEHOLDER while
 * the real implementation is written: every op refuses with ERR_UNAVAILABLE. */
#include "engine_pg_records.h"

#define NOT_YET(e) engine_pg_fail((e), ERR_UNAVAILABLE, "records on postgres: not built yet")

int pgrec_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *name, struct eng_resource *out)
{
    return NOT_YET(e);
}
int pgrec_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                        struct eng_resource *out, size_t max, size_t *n)
{
    return NOT_YET(e);
}
int pgrec_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                       const struct eng_rename *ren, size_t nren, int64_t now,
                       struct eng_schema_conflict *why)
{
    return NOT_YET(e);
}
int pgrec_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const struct eng_record *rec)
{
    return NOT_YET(e);
}
int pgrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                     const char *resource, const char *id, int64_t now, struct eng_record *out)
{
    return NOT_YET(e);
}
int pgrec_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, struct eng_record *rec, int64_t if_version)
{
    return NOT_YET(e);
}
int pgrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const char *id, int64_t if_version, int64_t now)
{
    return NOT_YET(e);
}
int pgrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_query *q, struct eng_record *out,
                      size_t max, size_t *n)
{
    return NOT_YET(e);
}
int pgrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                      uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n)
{
    return NOT_YET(e);
}
