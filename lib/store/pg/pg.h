/* pg: a small, lazily opened pool of libpq connections and the one
 * transaction a request runs on it (DESIGN §3 "Per-mode connection pools",
 * §10 "RLS").
 *
 * A worker serves one request at a time, so a pool rarely holds more than one
 * connection; the cap ([db] connection_limit) bounds what a pool may open, and
 * nothing is opened before the first statement: a worker that only ever
 * serves test traffic never connects for live.
 *
 * Transactions. The first pg_tx_run of a unit of work takes a connection and
 * keeps it until commit or rollback. Reads before the first write run as
 * their own pipeline, [set_config of tessera.org_id and the search_path (both
 * transaction-local), the statements] then Sync: the extended protocol runs
 * everything up to a Sync in one implicit transaction, so that is one round
 * trip with no BEGIN and no COMMIT, and the settings end with it. The first
 * write sends [BEGIN, set_config, statements]: from there on everything runs
 * in that explicit transaction (set_config again only when the org changes)
 * until pg_tx_commit. Under READ COMMITTED every statement takes a fresh
 * snapshot anyway, so a read before the BEGIN sees what it would have seen
 * inside. Nothing session-level is ever set, so the pool works through
 * PgBouncer in transaction mode: statements go unnamed through the extended
 * protocol, values always as $n parameters, never in the text. Writes whose
 * answer nobody reads may be held back (pg_tx_defer) to go with the next
 * round trip, at the latest the commit: a unit whose only writes are held
 * sends [scope, them] as one implicit transaction, committed by its Sync.
 *
 * Failures. A statement that fails leaves the transaction usable only for
 * pg_tx_rollback. A connection goes back to the pool only when
 * PQtransactionStatus says idle; anything else is closed and reopened on
 * demand. When the connection dies under a run outside the explicit
 * transaction or under the one that begins it (a restarted server), nothing
 * of the unit of work is lost, so that run is retried once on a fresh
 * connection: after a restart only requests that were in flight fail. A run
 * that commits by its Sync (held-back writes at commit) is sent again only
 * when the server answered it with an error before the connection went (a
 * FATAL: it was refused, not committed); otherwise whether it committed is
 * unknown, as with a lost COMMIT. An idle connection with anything to read
 * (the FATAL of a server that ended it) is closed when taken. */
#ifndef LIB_PG_H
#define LIB_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/err.h"

#define PG_POOL_MAX 64          /* the highest connection_limit config accepts */
#define PG_STMT_MAX 8           /* statements of one pg_tx_run */
#define PG_DEFER_MAX 4          /* statements a transaction holds back (pg_tx_defer) */
#define PG_LABEL 80
#define PG_PREPARED_MAX 64      /* named statements kept per connection */

struct pg_pool;

/* Counters and gauges of one pool, for /metrics and /readyz. */
struct pg_pool_stats {
    char label[PG_LABEL];       /* "core", "test", "live" */
    bool used;                  /* a connection was ever asked for */
    int limit;
    int open;                   /* connections open now */
    int busy;                   /* of which inside a transaction */
    uint64_t connects;          /* connections made */
    uint64_t connect_errors;
    uint64_t waits;             /* acquires that found every connection busy */
    uint64_t errors;            /* failed statements and lost connections */
    uint64_t discards;          /* connections closed for not being idle after a transaction */
    /* what the server was asked: one round trip is one pipeline up to its
     * Sync, or one COMMIT/ROLLBACK; statements count every one sent */
    uint64_t round_trips;
    uint64_t statements;
};

/* One statement: text with $1..$n and n values (NULL for SQL null). reuse:
 * true (PG_REUSE): sql is a string constant (static storage) the caller sends
 * again and again, so a pool made with prepare may keep it prepared on each
 * connection; PG_REUSE_TEXT: the same for a text built per call that comes
 * again (a record read of one table), known by its text, of which the pool
 * keeps a copy; false: sent unnamed. binary: its results in PostgreSQL's
 * binary format (a text column's bytes are the text; a double precision[]
 * is pg_binary_float8s' to read), text otherwise. */
#define PG_REUSE 1
#define PG_REUSE_TEXT 2
struct pg_stmt {
    const char *sql;
    int n;
    const char *const *vals;
    int reuse;
    bool binary;
};

/* A statement held back by pg_tx_defer: its text (owned unless reuse is
 * PG_REUSE: a string constant) and values (owned). */
struct pg_deferred {
    char *sql;
    char **vals;
    int n;
    int reuse;
};

/* A unit of work on one pooled connection; pg_tx_init before use. */
struct pg_tx {
    struct pg_pool *pool;
    int slot;                   /* the connection's index; -1 while none is held */
    bool explicit_tx;           /* BEGIN sent: statements run in one transaction until commit */
    bool failed;                /* a statement failed: only rollback is left */
    char org[40];               /* tessera.org_id in force in the explicit transaction */
    char sqlstate[6];           /* the last failure's SQLSTATE ("": none, or the connection) */
    /* statements held back for the next round trip, all with one org and path */
    struct pg_deferred defer[PG_DEFER_MAX];
    int ndefer;
    bool defer_global;          /* their org was NULL */
    char defer_org[40];
    const char *defer_path;     /* static storage */
};

/* Returns owned (pg_pool_free): a pool for dsn that opens at most limit
 * connections. Nothing connects here; a malformed dsn is refused now, with
 * the reason in errstr (never the dsn itself: it may hold a password).
 * prepare: statements marked reuse are prepared once per connection (named,
 * PG_PREPARED_MAX of them) and then only bound and executed, which spares the
 * server a parse and plan each time. Named statements are session state: only
 * for direct connections, never through PgBouncer in transaction pooling. */
struct pg_pool *pg_pool_new(const char *label, const char *dsn, int limit, bool prepare, char errstr[128]);
/* Closes every connection; NULL is a no-op. */
void pg_pool_free(struct pg_pool *p);
void pg_pool_stats(const struct pg_pool *p, struct pg_pool_stats *out);
/* Whether the server answers now, on an idle connection (opening one if none). */
int pg_pool_ping(struct pg_pool *p, char errstr[128]) ERR_MUST_CHECK;

void pg_tx_init(struct pg_tx *tx, struct pg_pool *p);
/* Whether the unit of work holds a connection. */
static inline bool pg_tx_active(const struct pg_tx *tx)
{
    return tx->slot >= 0;
}
/* Runs the n statements in tx in one round trip (org: tessera.org_id, "" for
 * none, NULL when they touch no tenant table and name every schema: outside
 * the explicit transaction nothing is set for them then; search_path: the
 * schemas). write: they change data, so they run in
 * the explicit transaction, begun now if it has not been; reads run in it
 * when it has begun, else in an implicit one of their own. res[i] receives
 * statement i's result, owned by the caller (PQclear), on success only.
 * ERR_UNAVAILABLE when the server cannot be reached; for a failed statement
 * the code its SQLSTATE maps to (pg_sqlstate_err). errstr gets the reason. */
int pg_tx_run(struct pg_tx *tx, const char *org, const char *search_path, const struct pg_stmt *st,
              size_t n, bool write, PGresult **res, char errstr[128]) ERR_MUST_CHECK;
/* Holds n writes back, copied, to go with the transaction's next round trip
 * instead of one of their own: the next pg_tx_run sends them first (as the
 * writes they are: the explicit transaction begins with them) and fails when
 * they fail; pg_tx_commit sends them with its COMMIT, or, when nothing began
 * the explicit transaction, as one implicit transaction ([scope, them] then
 * Sync: committed by the Sync, no BEGIN, no COMMIT). So a unit of work whose
 * only writes are deferred costs one round trip. Their results are never
 * seen: a deferred statement says what it needs by failing (an error, a
 * unique key, a guard that raises). search_path must be static storage.
 * Statements of another org or path than those held, or past PG_DEFER_MAX,
 * send the held ones first. A deferred write that fails at commit leaves
 * nothing committed; a connection lost under it leaves the outcome unknown,
 * as a lost COMMIT does (ERR_UNAVAILABLE; sent again only when the server
 * refused it before it closed). */
int pg_tx_defer(struct pg_tx *tx, const char *org, const char *search_path, const struct pg_stmt *st,
                size_t n, char errstr[128]) ERR_MUST_CHECK;
/* Whether the last failure is one a whole request may simply run again: a
 * serialization failure (40001, raised by a write's guard too) or a deadlock
 * (40P01), which kept nothing of the transaction. */
static inline bool pg_tx_retryable(const struct pg_tx *tx)
{
    return strcmp(tx->sqlstate, "40001") == 0 || strcmp(tx->sqlstate, "40P01") == 0;
}
/* Whether statements are held back (pg_tx_defer). */
static inline bool pg_tx_deferred(const struct pg_tx *tx)
{
    return tx->ndefer > 0;
}
/* Commits (when a write began the explicit transaction, or writes were held
 * back) and gives the connection back; on failure it was rolled back. */
int pg_tx_commit(struct pg_tx *tx, char errstr[128]) ERR_MUST_CHECK;
/* Rolls back (when begun), drops what was held back and gives the connection
 * back; never fails. */
void pg_tx_rollback(struct pg_tx *tx);

/* ERR_* for a SQLSTATE: 23505 unique → CONFLICT, 23503 foreign key → NOTFOUND,
 * 22xxx/23514/23502 → INVAL, 40001/40P01 → CONFLICT, 42501 → FORBIDDEN,
 * 08xxx/57Pxx/53xxx/55P03/57014 → UNAVAILABLE, else INTERNAL. */
int pg_sqlstate_err(const char *sqlstate);

/* A one-dimensional double precision[] value in the binary format (a result
 * of a binary statement: PQgetvalue, PQgetlength) into out[0..want): 0, or
 * ERR_INVAL when it is anything else — another shape or length, another
 * element type, a NULL element. */
int pg_binary_float8s(const char *val, int len, double *out, int want) ERR_MUST_CHECK;

/* The linked libpq's version as "major.minor" into buf (for `tessera version`:
 * only this folder includes libpq). Returns buf. */
const char *pg_lib_version(char buf[16]);

#endif
