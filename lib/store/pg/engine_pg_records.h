/* engine_pg_records: the PostgreSQL engine's resources and records (engine.h's
 * "resources and records" section), kept out of engine_pg.c. Private to the
 * two files: engine_pg.c installs the ops below into its table and lends the
 * records code its transactions through the hooks. */
#ifndef LIB_ENGINE_PG_RECORDS_H
#define LIB_ENGINE_PG_RECORDS_H

#include "store/engine.h"
#include "store/pg/pg.h"

#define PGE_FANOUT_MAX 64       /* at least PGE_STORES (engine_pg_int.h) */

/* engine_pg.c: runs st[0..n) in the unit of work's transaction on the data
 * store of (s, service) (engine_pg_route: the org's placed database, the
 * service's, or the shared one of s->mode; begun on first use, with
 * tessera.org_id = s->org_id and search_path as given), results into res
 * (owned by the caller). Checks that a unit is open and s is its scope;
 * errors are set in e->errstr. */
int engine_pg_data(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                   const struct pg_stmt *st, size_t n, PGresult **res) ERR_MUST_CHECK;
/* engine_pg.c: the same on a given store (engine_pg_fanout's); write as pg_tx_run's. */
int engine_pg_data_at(struct engine *e, const struct eng_scope *s, int store, const char *search_path,
                      const struct pg_stmt *st, size_t n, bool write, PGresult **res) ERR_MUST_CHECK;
/* engine_pg.c: every store that holds service's data in s->mode, for a schema
 * change, which must be made in each (issue 18 §7): its home first (its own
 * database, else the shared one), then each [database.*] (orgs placed there
 * hold data of every service), each once. stores holds at least PGE_STORES. */
int engine_pg_fanout(struct engine *e, const struct eng_scope *s, const char *service, int *stores,
                     size_t *n) ERR_MUST_CHECK;
/* engine_pg.c: as engine_pg_data for statements that only read: before the
 * unit's first write they run in an implicit transaction of their own (one
 * round trip, no BEGIN/COMMIT; lib/store/pg/pg.h), after it inside the transaction. */
/* core.svc_schema_name(service, mode) is IMMUTABLE, so a worker keeps its
 * answers: the data schema of (mode, service) seen before, or NULL. */
const char *engine_pg_schema_known(struct engine *e, int mode, const char *service);
void engine_pg_schema_learn(struct engine *e, int mode, const char *service, const char *schema);
int engine_pg_data_read(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                        const struct pg_stmt *st, size_t n, PGresult **res) ERR_MUST_CHECK;
/* A resource's definition as this worker last read it in the store of (s,
 * service), or NULL. Borrowed until the next engine_pg_def_learn. A list
 * page builds its statement from it and checks its version in the same round
 * trip (pgrec_record_list). */
const struct eng_resource *engine_pg_def_known(struct engine *e, const struct eng_scope *s, const char *service,
                                               const char *resource);
void engine_pg_def_learn(struct engine *e, const struct eng_scope *s, const struct eng_resource *def);
/* The engine's one spare definition (some 70 KB) lent to a record op, or NULL
 * while another holds it (or it cannot be made): *lent is set, and the op
 * clears it to give it back (pgrec_call_init, pgrec_call_close). */
struct eng_resource *engine_pg_def_spare(struct engine *e, bool **lent);
/* pgvector's schema when a search in the store of (s, def's service) found an
 * HNSW index on def's field for metric at def's version, or NULL (borrowed
 * until the next learn); engine_pg_hnsw_learn remembers one (ext "": forgets
 * it). A search sends its query with the definition's read and the index's
 * check in one round trip only when it is known (pgrec_record_search). */
const char *engine_pg_hnsw_known(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                                 const char *field, int metric);
void engine_pg_hnsw_learn(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                          const char *field, int metric, const char *ext);
/* Whether the data unit of (s, service)'s store is inside an explicit
 * transaction (a write began it) or holds writes back (engine_pg_data_defer):
 * either way its next statement is no read of its own. */
bool engine_pg_data_explicit(struct engine *e, const struct eng_scope *s, const char *service);
/* engine_pg.c: as engine_pg_data for writes whose results nobody reads, held
 * back to go with the unit's next round trip on that store, at the latest its
 * commit (pg_tx_defer: a unit whose only data writes are held costs one round
 * trip). Values are copied. */
int engine_pg_data_defer(struct engine *e, const struct eng_scope *s, const char *service, const char *search_path,
                         const struct pg_stmt *st, size_t n) ERR_MUST_CHECK;
/* The definition the unit of work holds for its writes in the store of (s,
 * service): (service, name) at version, locked by a read under FOR KEY SHARE
 * or by a guard held back (sql/0013_write_guard.sql). Set by the resource
 * read of a write; a record write of the same resource in the unit then
 * needs no read of its own. Forgotten when the unit ends. */
void engine_pg_held_set(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                        int64_t version);
bool engine_pg_held(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                    int64_t version);
/* engine_pg.c: the same on the core pool. */
int engine_pg_core(struct engine *e, const struct eng_scope *s, const struct pg_stmt *st, size_t n,
                   PGresult **res) ERR_MUST_CHECK;
/* engine_pg.c: a change of scope s wrote audit's entry into core.audit_relay
 * in its data transaction: audit goes into core.audit_log in the core one
 * too, and once both have committed the relay row is dropped (lib/store/engine.h
 * resource_put; sql/0006_platform_schemas.sql). */
int engine_pg_relayed(struct engine *e, const struct eng_scope *s, const char *service,
                      const struct eng_audit *audit) ERR_MUST_CHECK;

int pgrec_resource_get(struct engine *e, const struct eng_scope *s, const char *service,
                       const char *name, struct eng_resource *out);
int pgrec_resource_hold(struct engine *e, const struct eng_scope *s, const struct eng_resource *def);
int pgrec_resource_list(struct engine *e, const struct eng_scope *s, const char *service,
                        struct eng_resource *out, size_t max, size_t *n);
int pgrec_resource_put(struct engine *e, const struct eng_scope *s, const struct eng_resource *def,
                       const struct eng_rename *ren, size_t nren, int64_t now,
                       const struct eng_audit *audit, struct eng_schema_conflict *why);
int pgrec_record_create(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const struct eng_record *rec);
int pgrec_record_get(struct engine *e, const struct eng_scope *s, const char *service,
                     const char *resource, const char *id, int64_t now, struct eng_record *out);
int pgrec_record_update(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, struct eng_record *rec, int64_t if_version);
int pgrec_record_delete(struct engine *e, const struct eng_scope *s, const char *service,
                        const char *resource, const char *id, int64_t if_version, int64_t now);
int pgrec_record_search(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                        const struct eng_search *q, struct eng_hit *out, size_t *n, int *strategy);
int pgrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_query *q, struct eng_record *out,
                      size_t max, size_t *n);
int pgrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                      uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n);

#define ENGINE_PG_RECORD_OPS                                                        \
    .resource_get = pgrec_resource_get, .resource_list = pgrec_resource_list,       \
    .resource_hold = pgrec_resource_hold,                                           \
    .resource_put = pgrec_resource_put, .record_create = pgrec_record_create,       \
    .record_get = pgrec_record_get, .record_update = pgrec_record_update,           \
    .record_delete = pgrec_record_delete, .record_list = pgrec_record_list,         \
    .record_search = pgrec_record_search,                                           \
    .outbox_list = pgrec_outbox_list

#endif
