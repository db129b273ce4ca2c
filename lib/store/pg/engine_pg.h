/* engine_pg: the PostgreSQL engine behind lib/store/engine.h (DESIGN §3).
 *
 * A `core` pool for the core schema and a `data` pool per mode for the
 * services' data schemas (and one per placed database and mode), each opened
 * lazily and capped at connection_limit
 * (lib/store/pg/pg.h). A unit of work is one transaction per pool it touches, begun by
 * the first statement that needs that pool, with tessera.org_id and the
 * search_path set transaction-locally first; RLS (sql/0001_core.sql) keeps a
 * wrong query inside its org even when this code is wrong.
 *
 * Expected outcomes (no such row, a unique key taken) are found without
 * raising SQL errors (ON CONFLICT DO NOTHING, RETURNING, counts), so the
 * transaction stays usable after them, as the memory engine's does; any other
 * failed statement spoils the unit of work, which must roll back. */
#ifndef LIB_ENGINE_PG_H
#define LIB_ENGINE_PG_H

#include "store/engine.h"

/* A placement (issue 18 §7): [svc.<name>] puts a service's data, and
 * [database.<name>] the data of the orgs placed there (core.org_placement),
 * in databases of their own. Per mode: "" or NULL is that mode's shared data
 * DSN. An org's placement wins over a service's: a dedicated database holds
 * all of its org's data. */
struct engine_pg_place {
    const char *name;
    const char *dsn[2];         /* by enum eng_mode */
    const char *listen_dsn[2];  /* "" or NULL: dsn[mode] */
};

struct engine_pg_config {
    const char *core_dsn;
    const char *test_dsn;       /* "" or NULL: core_dsn */
    const char *live_dsn;       /* "" or NULL: core_dsn */
    /* Where the projector LISTENs for new outbox events (engine_ops.wait), per
     * mode: "" or NULL: that mode's data DSN. LISTEN is session state, so this
     * must reach PostgreSQL directly (or a PgBouncer pool in session mode),
     * never a transaction-pooled PgBouncer: a dedicated connection, opened by
     * the first wait and never pooled. */
    const char *listen_test_dsn;
    const char *listen_live_dsn;
    int connection_limit;       /* per pool */
    bool prepare;               /* keep statements prepared per connection (lib/store/pg/pg.h): not through PgBouncer */
    const struct engine_pg_place *svc;  /* [svc.<name>], nsvc of them (at most 8) */
    int nsvc;
    const struct engine_pg_place *db;   /* [database.<name>], ndb of them (at most 8) */
    int ndb;
};

/* Returns owned (engine_free): the engine; nothing connects yet. NULL with
 * errstr for a malformed DSN or limit (the DSN itself is never quoted). */
struct engine *engine_pg_new(const struct engine_pg_config *c, char errstr[128]);

#endif
