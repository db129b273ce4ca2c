/* The pool keeps its connections in a small array: a worker is single-threaded
 * and serves one request at a time, so acquiring is a scan for an idle slot,
 * and "waiting" can only mean the caller holds every connection already (two
 * transactions of one request on one pool), which is counted and refused
 * rather than deadlocked on. */
#include "store/pg/pg.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statements prepared on one connection, named "tp<index>", known by the
 * address of their text (reuse statements are string constants), or by the
 * text itself (by_text statements, built per call: own holds a copy). */
struct pg_prepared {
    const char *sql[PG_PREPARED_MAX];
    char *own[PG_PREPARED_MAX];
    int n;
    bool unsure;                /* a batch that prepared failed: close, don't guess */
};

struct pg_pool {
    char *dsn;
    int limit;
    PGconn *conn[PG_POOL_MAX];
    bool busy[PG_POOL_MAX];
    struct pg_prepared *prep;   /* [limit], when prepare */
    struct pg_pool_stats st;
};

/* Sent ahead of the caller's statements: BEGIN when a write begins the
 * explicit transaction, the scope then and before every read outside it, the
 * org alone when it changes inside it (lib/store/pg/pg.h). */
static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_SCOPE[] =
    "SELECT set_config('tessera.org_id', $1, true), set_config('search_path', $2, true)";
static const char SQL_ORG[] = "SELECT set_config('tessera.org_id', $1, true)";
/* the most one round trip sends: BEGIN, a scope, the held-back statements, a
 * scope, the caller's, COMMIT */
#define PLAN_MAX (1 + 1 + PG_DEFER_MAX + 1 + PG_STMT_MAX + 1)

int pg_sqlstate_err(const char *s)
{
    if (s == NULL || strlen(s) != 5)
        return ERR_UNAVAILABLE; /* no SQLSTATE: the connection broke, not the statement */
    if (strcmp(s, "23505") == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
        return ERR_CONFLICT;
    if (strcmp(s, "23503") == 0)
        return ERR_NOTFOUND;
    if (strncmp(s, "22", 2) == 0 || strcmp(s, "23514") == 0 || strcmp(s, "23502") == 0)
        return ERR_INVAL;
    if (strcmp(s, "42501") == 0)
        return ERR_FORBIDDEN;
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0 || strncmp(s, "53", 2) == 0 ||
        strcmp(s, "55P03") == 0 || strcmp(s, "57014") == 0)
        return ERR_UNAVAILABLE;
    return ERR_INTERNAL;
}

struct pg_pool *pg_pool_new(const char *label, const char *dsn, int limit, bool prepare, char errstr[128])
{
    struct pg_pool *p;
    char *perr = NULL;
    PQconninfoOption *opts;

    if (limit < 1 || limit > PG_POOL_MAX) {
        err_set(errstr, "connection_limit %d out of 1..%d", limit, PG_POOL_MAX);
        return NULL;
    }
    /* The parser's message quotes the string it choked on: keep it out of logs. */
    if ((opts = PQconninfoParse(dsn, &perr)) == NULL) {
        PQfreemem(perr);
        err_set(errstr, "not a valid libpq connection string");
        return NULL;
    }
    PQconninfoFree(opts);
    if ((p = calloc(1, sizeof *p)) == NULL || (p->dsn = strdup(dsn)) == NULL ||
        (prepare && (p->prep = calloc((size_t)limit, sizeof *p->prep)) == NULL)) {
        if (p != NULL)
            free(p->dsn);
        free(p);
        err_set(errstr, "out of memory");
        return NULL;
    }
    p->limit = limit;
    snprintf(p->st.label, sizeof p->st.label, "%s", label);
    p->st.limit = limit;
    return p;
}

static void drop(struct pg_pool *p, int i)
{
    if (p->prep != NULL) {
        for (int j = 0; j < p->prep[i].n; j++)
            free(p->prep[i].own[j]);
        memset(&p->prep[i], 0, sizeof p->prep[i]); /* a new session knows none */
    }
    if (p->conn[i] != NULL) {
        PQfinish(p->conn[i]);
        p->conn[i] = NULL;
        p->st.open--;
    }
    if (p->busy[i]) {
        p->busy[i] = false;
        p->st.busy--;
    }
}

void pg_pool_free(struct pg_pool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->limit; i++)
        drop(p, i);
    free(p->prep);
    free(p->dsn);
    free(p);
}

void pg_pool_stats(const struct pg_pool *p, struct pg_pool_stats *out)
{
    *out = p->st;
}

static int connect_slot(struct pg_pool *p, int i, char errstr[128])
{
    /* The DSN's own settings win; these only fill what it leaves out. */
    static const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "tessera", p->dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        p->st.connect_errors++;
        err_set(errstr, "%s pool: cannot connect: %.80s", p->st.label,
                c != NULL ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return ERR_UNAVAILABLE;
    }
    p->conn[i] = c;
    p->st.open++;
    p->st.connects++;
    return 0;
}

/* Whether an idle connection has nothing to say. A server that ended it
 * (a restart, pg_terminate_backend) has sent its FATAL and closed: the
 * socket reads. A write sent on it would fail after leaving, and one that
 * commits with its Sync cannot be tried again blindly, so such a connection
 * is closed before use instead. Anything else unasked (a parameter's new
 * value after a reload) costs a reconnect, which is cheap next to guessing. */
static bool idle_quiet(PGconn *c)
{
    struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};

    return PQstatus(c) == CONNECTION_OK && pfd.fd >= 0 && poll(&pfd, 1, 0) == 0;
}

/* An idle connection's slot (opening one when none is open and the cap allows). */
static int acquire(struct pg_pool *p, int *slot, char errstr[128])
{
    int free_slot = -1, rc;

    p->st.used = true;
    for (int i = 0; i < p->limit; i++) {
        if (p->conn[i] != NULL && !p->busy[i]) {
            free_slot = i;
            break;
        }
        if (p->conn[i] == NULL && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0) {
        p->st.waits++;
        err_set(errstr, "%s pool: all %d connections are in use", p->st.label, p->limit);
        return ERR_UNAVAILABLE;
    }
    if (p->conn[free_slot] != NULL && !idle_quiet(p->conn[free_slot])) {
        p->st.discards++;
        drop(p, free_slot);
    }
    if (p->conn[free_slot] == NULL && (rc = connect_slot(p, free_slot, errstr)) != 0)
        return rc;
    p->busy[free_slot] = true;
    p->st.busy++;
    *slot = free_slot;
    return 0;
}

/* Gives a connection back, keeping it only when it is healthy and idle. */
static void release(struct pg_pool *p, int i)
{
    PGconn *c = p->conn[i];

    if (c != NULL && (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE ||
                      (p->prep != NULL && p->prep[i].unsure))) {
        p->st.discards++;
        drop(p, i);
        return;
    }
    if (p->busy[i]) {
        p->busy[i] = false;
        p->st.busy--;
    }
}

/* The prepared name of a reuse statement on this connection, preparing it
 * (*fresh) when there is room; -1: send it unnamed. */
static int prepared_index(struct pg_prepared *pp, const struct pg_stmt *st, bool *fresh)
{
    *fresh = false;
    if (pp == NULL || !st->reuse)
        return -1;
    for (int j = 0; j < pp->n; j++)
        if (pp->sql[j] == st->sql || (st->reuse == PG_REUSE_TEXT && pp->own[j] != NULL && strcmp(pp->own[j], st->sql) == 0))
            return j;
    if (pp->n == PG_PREPARED_MAX)
        return -1;
    if (st->reuse == PG_REUSE_TEXT && (pp->own[pp->n] = strdup(st->sql)) == NULL)
        return -1; /* unnamed, then */
    *fresh = true;
    pp->sql[pp->n] = st->reuse == PG_REUSE_TEXT ? pp->own[pp->n] : st->sql;
    return pp->n++;
}

/* Reads the result of a Parse sent ahead of a statement: 0, or the error. */
static int prepare_result(PGconn *c, char sqlstate[6], char errstr[128])
{
    PGresult *r = PQgetResult(c), *extra;
    int rc = 0;

    if (r == NULL)
        return ERR_UNAVAILABLE;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(sqlstate, 6, "%s", code != NULL ? code : "");
        err_set(errstr, "prepare: %.110s", PQerrorMessage(c));
        rc = code != NULL ? pg_sqlstate_err(code) : ERR_UNAVAILABLE;
    }
    PQclear(r);
    while ((extra = PQgetResult(c)) != NULL)
        PQclear(extra);
    return rc;
}

/* Sends st[0..n) in one pipeline and reads every result into res. On any
 * failure res is cleared and *sqlstate names the failed statement's SQLSTATE
 * ("" when the connection itself broke); *refused says the server answered
 * a statement with an error (a FATAL before it closed, too), so whatever
 * the batch's implicit transaction did was rolled back, not committed. */
static int pipeline(PGconn *c, struct pg_prepared *pp, const struct pg_stmt *st, size_t n, PGresult **res,
                    char sqlstate[6], bool *refused, char errstr[128])
{
    bool fresh[PLAN_MAX] = {false}, any_fresh = false;
    int rc = 0;
    size_t got = 0;

    sqlstate[0] = '\0';
    *refused = false;
    for (size_t i = 0; i < n; i++)
        res[i] = NULL;  /* so every failure path frees exactly what arrived */
    if (PQenterPipelineMode(c) != 1)
        goto broken;
    for (size_t i = 0; i < n; i++) {
        int j = prepared_index(pp, &st[i], &fresh[i]);
        char name[16];
        snprintf(name, sizeof name, "tp%d", j);
        any_fresh |= fresh[i];
        if (fresh[i] && PQsendPrepare(c, name, st[i].sql, st[i].n, NULL) != 1)
            goto broken;
        if (j >= 0 ? PQsendQueryPrepared(c, name, st[i].n, st[i].vals, NULL, NULL, st[i].binary) != 1
                   : PQsendQueryParams(c, st[i].sql, st[i].n, NULL, st[i].vals, NULL, NULL, st[i].binary) != 1)
            goto broken;
    }
    if (PQpipelineSync(c) != 1)
        goto broken;
    for (; got < n; got++) {
        PGresult *r, *extra;
        char pstate[6] = "";
        int prc;
        /* after an earlier failure a Parse is only aborted: keep the first reason */
        if (fresh[got] && (prc = prepare_result(c, pstate, rc == 0 ? errstr : NULL)) != 0 && rc == 0) {
            rc = prc;
            *refused = pstate[0] != '\0';
            memcpy(sqlstate, pstate, sizeof pstate);
            if (PQstatus(c) != CONNECTION_OK)
                goto broken;
        }
        if ((r = PQgetResult(c)) == NULL)
            goto broken;
        res[got] = r;
        while ((extra = PQgetResult(c)) != NULL) /* one result per statement, then NULL */
            PQclear(extra);
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_FATAL_ERROR && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL)
            *refused = true; /* the server's own error: the batch's implicit transaction did not commit */
        if (s == PGRES_FATAL_ERROR && rc == 0) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(sqlstate, 6, "%s", code != NULL ? code : "");
            err_set(errstr, "%.120s", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) != NULL
                                          ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                          : PQerrorMessage(c));
            rc = pg_sqlstate_err(code);
            if (PQstatus(c) != CONNECTION_OK)
                goto broken;
        } else if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_PIPELINE_ABORTED &&
                   rc == 0) {
            err_set(errstr, "unexpected result %s", PQresStatus(s));
            rc = ERR_INTERNAL;
        }
    }
    PGresult *sync = PQgetResult(c);
    if (sync == NULL || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        PQclear(sync);
        goto broken;
    }
    PQclear(sync);
    if (PQexitPipelineMode(c) != 1)
        goto broken;
    if (rc != 0)
        goto clear;
    return 0;

broken:
    sqlstate[0] = '\0';
    if (rc == 0 || PQstatus(c) != CONNECTION_OK)
        err_set(errstr, "connection lost: %.100s", PQerrorMessage(c));
    rc = ERR_UNAVAILABLE;
    /* The connection's state is unknown now: the caller closes it. */
clear:
    /* Whether a failed batch's Parse messages took effect is not worth
     * guessing: the connection is closed when it goes back (release). */
    if (any_fresh)
        pp->unsure = true;
    /* every result that arrived, the one a lost connection interrupted too */
    for (size_t i = 0; i < n; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    return rc;
}

void pg_tx_init(struct pg_tx *tx, struct pg_pool *p)
{
    memset(tx, 0, sizeof *tx);
    tx->pool = p;
    tx->slot = -1;
}

/* What one round trip sends: BEGIN, scopes and COMMIT around the statements
 * of up to two callers (what pg_tx_defer held back, then the caller's), and
 * the transaction's state as it will be once they ran (applied to the tx
 * only when they did). */
struct plan {
    struct pg_stmt all[PLAN_MAX];
    size_t k;
    const char *scope[2][2];    /* the values of each part's set_config */
    char org[2][40];
    int parts;
    bool explicit_tx;
    char cur[40];               /* tessera.org_id in force once begun */
    bool begins;                /* a part sends BEGIN */
};

static void plan_init(struct plan *pl, const struct pg_tx *tx)
{
    memset(pl, 0, sizeof *pl);
    pl->explicit_tx = tx->explicit_tx;
    snprintf(pl->cur, sizeof pl->cur, "%s", tx->org);
}

/* Appends n statements with what must go before them (lib/store/pg/pg.h's
 * "Transactions"); returns the index of the first. org NULL: no tenant table. */
static size_t plan_add(struct plan *pl, const char *org, const char *search_path, const struct pg_stmt *st,
                       size_t n, bool write)
{
    bool begin = write && !pl->explicit_tx;
    bool global = org == NULL;  /* no tenant table: no org to set, none to change */
    int i = pl->parts++;
    size_t first;

    snprintf(pl->org[i], sizeof pl->org[i], "%s", global ? (pl->explicit_tx ? pl->cur : "") : org);
    pl->scope[i][0] = pl->org[i];
    pl->scope[i][1] = search_path;
    if (begin) {
        pl->all[pl->k++] = (struct pg_stmt){SQL_BEGIN, 0, NULL, true, false};
        pl->begins = true;
    }
    if (begin || (!pl->explicit_tx && !global))
        pl->all[pl->k++] = (struct pg_stmt){SQL_SCOPE, 2, pl->scope[i], true, false};
    else if (pl->explicit_tx && strcmp(pl->org[i], pl->cur) != 0)
        pl->all[pl->k++] = (struct pg_stmt){SQL_ORG, 1, pl->scope[i], true, false};
    first = pl->k;
    memcpy(pl->all + pl->k, st, n * sizeof *st);
    pl->k += n;
    if (begin)
        pl->explicit_tx = true;
    if (pl->explicit_tx)
        memcpy(pl->cur, pl->org[i], sizeof pl->cur);
    return first;
}

/* The held-back statements as pg_stmt (pointing into tx->defer). */
static size_t deferred_stmts(const struct pg_tx *tx, struct pg_stmt *out)
{
    for (int i = 0; i < tx->ndefer; i++)
        out[i] = (struct pg_stmt){tx->defer[i].sql, tx->defer[i].n, (const char *const *)tx->defer[i].vals,
                                  tx->defer[i].reuse, false};
    return (size_t)tx->ndefer;
}

static void deferred_clear(struct pg_tx *tx)
{
    for (int i = 0; i < tx->ndefer; i++) {
        struct pg_deferred *d = &tx->defer[i];
        if (d->reuse != PG_REUSE)
            free(d->sql);
        for (int j = 0; d->vals != NULL && j < d->n; j++)
            free(d->vals[j]);
        free(d->vals);
    }
    memset(tx->defer, 0, sizeof tx->defer);
    tx->ndefer = 0;
}

/* When a run that lost its connection is sent again on a fresh one, once:
 * never (an explicit transaction's earlier statements went with it), always
 * (nothing it sent commits: reads, or a BEGIN's first run), or when the
 * server refused the batch before it closed (a run that commits by its Sync:
 * without that word, it may have committed). */
enum again { AGAIN_NEVER, AGAIN_ALWAYS, AGAIN_IF_REFUSED };

/* Sends the plan on tx's connection (taken when it holds none): 0 and the
 * results of all[first..first+n) into res, or the error, tx->failed set when
 * the failure leaves the explicit transaction for rollback only. */
static int plan_run(struct pg_tx *tx, struct plan *pl, size_t first, size_t n, enum again again, PGresult **res,
                    char errstr[128])
{
    struct pg_pool *p = tx->pool;
    PGresult *out[PLAN_MAX];
    char sqlstate[6];
    bool refused;
    int rc;

    tx->sqlstate[0] = '\0';
    for (int attempt = 0;; attempt++) {
        if (tx->slot < 0 && (rc = acquire(p, &tx->slot, errstr)) != 0)
            return rc;
        p->st.round_trips++;
        p->st.statements += pl->k;
        rc = pipeline(p->conn[tx->slot], p->prep != NULL ? &p->prep[tx->slot] : NULL, pl->all, pl->k, out,
                      sqlstate, &refused, errstr);
        if (rc == 0)
            break;
        p->st.errors++;
        memcpy(tx->sqlstate, sqlstate, sizeof tx->sqlstate);
        if (rc == ERR_UNAVAILABLE && sqlstate[0] == '\0') {
            /* The connection is gone (or in an unknown state): close it, and
             * run again on a fresh one when nothing was lost with it. */
            drop(p, tx->slot);
            tx->slot = -1;
            if (attempt == 0 && (again == AGAIN_ALWAYS || (again == AGAIN_IF_REFUSED && refused)))
                continue;
        }
        /* a failure inside an explicit transaction leaves it aborted: only a
         * rollback may follow. Outside one, the batch was its own implicit
         * transaction, which the server ended at its Sync: nothing is left
         * to roll back and the unit may go on (a read may be tried again). */
        if (tx->explicit_tx || pl->begins)
            tx->failed = true;
        return rc;
    }
    for (size_t i = 0; i < pl->k; i++)
        if (res == NULL || i < first || i >= first + n)
            PQclear(out[i]);
    if (res != NULL)
        memcpy(res, out + first, n * sizeof *res);
    tx->explicit_tx = pl->explicit_tx;
    snprintf(tx->org, sizeof tx->org, "%s", pl->explicit_tx ? pl->cur : "");
    return 0;
}

/* What pg_tx_run and pg_tx_defer ask of their arguments (n statements, at
 * most max; an org that fits) and of the unit (no failure yet): 0, or
 * ERR_INTERNAL with the reason, naming who was asked. */
static int tx_args(const struct pg_tx *tx, const char *org, size_t n, size_t max, const char *who,
                   char errstr[128])
{
    _Static_assert(sizeof tx->org == sizeof tx->defer_org, "one org size for both");

    if (n == 0 || n > max || (org != NULL && strlen(org) >= sizeof tx->org)) {
        err_set(errstr, "%s: bad arguments", who);
        return ERR_INTERNAL;
    }
    if (tx->failed) {
        err_set(errstr, "statement after a failure in the same unit of work");
        return ERR_INTERNAL;
    }
    return 0;
}

int pg_tx_run(struct pg_tx *tx, const char *org, const char *search_path, const struct pg_stmt *st,
              size_t n, bool write, PGresult **res, char errstr[128])
{
    struct pg_stmt held[PG_DEFER_MAX];
    struct plan pl;
    size_t first;
    /* nothing of an explicit transaction is at stake (held writes begin one) */
    enum again again = tx->explicit_tx ? AGAIN_NEVER : AGAIN_ALWAYS;
    int rc;

    if ((rc = tx_args(tx, org, n, PG_STMT_MAX, "pg_tx_run", errstr)) != 0)
        return rc;
    plan_init(&pl, tx);
    if (tx->ndefer > 0)
        plan_add(&pl, tx->defer_global ? NULL : tx->defer_org, tx->defer_path, held, deferred_stmts(tx, held),
                 true);
    first = plan_add(&pl, org, search_path, st, n, write);
    rc = plan_run(tx, &pl, first, n, again, res, errstr);
    deferred_clear(tx); /* sent: they ran, or the unit is for rollback now */
    return rc;
}

int pg_tx_defer(struct pg_tx *tx, const char *org, const char *search_path, const struct pg_stmt *st,
                size_t n, char errstr[128])
{
    int rc;

    if ((rc = tx_args(tx, org, n, PG_DEFER_MAX, "pg_tx_defer", errstr)) != 0)
        return rc;
    if (tx->ndefer > 0 && (tx->ndefer + (int)n > PG_DEFER_MAX || tx->defer_global != (org == NULL) ||
                           (org != NULL && strcmp(org, tx->defer_org) != 0) || tx->defer_path != search_path))
        return pg_tx_run(tx, org, search_path, st, n, true, NULL, errstr) /* the held ones go first */;
    for (size_t i = 0; i < n; i++) {
        struct pg_deferred *d = &tx->defer[tx->ndefer];
        d->reuse = st[i].reuse;
        d->n = st[i].n;
        d->sql = st[i].reuse == PG_REUSE ? (char *)st[i].sql : strdup(st[i].sql);
        d->vals = st[i].n > 0 ? calloc((size_t)st[i].n, sizeof *d->vals) : NULL;
        tx->ndefer++; /* counted now: deferred_clear frees what was made */
        if (d->sql == NULL || (st[i].n > 0 && d->vals == NULL))
            goto nomem;
        for (int j = 0; j < st[i].n; j++)
            if (st[i].vals[j] != NULL && (d->vals[j] = strdup(st[i].vals[j])) == NULL)
                goto nomem;
    }
    tx->defer_global = org == NULL;
    snprintf(tx->defer_org, sizeof tx->defer_org, "%s", org != NULL ? org : "");
    tx->defer_path = search_path;
    return 0;
nomem:
    rc = ERR_NOMEM;
    err_set(errstr, "out of memory holding a statement back");
    deferred_clear(tx);
    tx->failed = true; /* a write of the unit is lost: only rollback is left */
    return rc;
}

static void tx_end(struct pg_tx *tx)
{
    deferred_clear(tx);
    if (tx->slot >= 0)
        release(tx->pool, tx->slot);
    tx->slot = -1;
    tx->explicit_tx = false;
    tx->failed = false;
    tx->org[0] = '\0';
}

int pg_tx_commit(struct pg_tx *tx, char errstr[128])
{
    static const struct pg_stmt commit = {"COMMIT", 0, NULL, true, false};
    int rc = 0;

    tx->sqlstate[0] = '\0';
    if (tx->failed) {
        err_set(errstr, "commit after a failed statement");
        pg_tx_rollback(tx);
        return ERR_INTERNAL;
    }
    if (tx->ndefer > 0) {
        /* the held writes and the end of their transaction in one round
         * trip: [them, COMMIT] in the explicit transaction, or [scope, them]
         * as an implicit one, sent again on a lost connection only when the
         * server said it refused them (a connection it ended as the batch
         * came): else whether they committed is unknown. */
        struct pg_stmt held[PG_DEFER_MAX];
        struct plan pl;
        size_t n = deferred_stmts(tx, held);
        bool in_explicit = tx->explicit_tx;

        plan_init(&pl, tx);
        plan_add(&pl, tx->defer_global ? NULL : tx->defer_org, tx->defer_path, held, n, in_explicit);
        if (in_explicit)
            pl.all[pl.k++] = commit;
        rc = plan_run(tx, &pl, 0, 0, in_explicit ? AGAIN_NEVER : AGAIN_IF_REFUSED, NULL, errstr);
        if (rc != 0)
            pg_tx_rollback(tx);
        else
            tx_end(tx);
        return rc;
    }
    if (tx->slot >= 0 && tx->explicit_tx) {
        PGconn *c = tx->pool->conn[tx->slot];
        tx->pool->st.round_trips++;
        tx->pool->st.statements++;
        PGresult *r = PQexec(c, "COMMIT");
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(tx->sqlstate, sizeof tx->sqlstate, "%s", code != NULL ? code : "");
            err_set(errstr, "commit: %.100s", PQerrorMessage(c));
            rc = code != NULL ? pg_sqlstate_err(code) : ERR_UNAVAILABLE;
            tx->pool->st.errors++;
        }
        PQclear(r);
    }
    tx_end(tx); /* a connection left in a transaction is closed, not reused */
    return rc;
}

void pg_tx_rollback(struct pg_tx *tx)
{
    if (tx->slot >= 0) {
        PGconn *c = tx->pool->conn[tx->slot];
        if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
            tx->pool->st.round_trips++;
            tx->pool->st.statements++;
            PQclear(PQexec(c, "ROLLBACK"));
        }
    }
    tx_end(tx);
}

int pg_pool_ping(struct pg_pool *p, char errstr[128])
{
    static const struct pg_stmt one = {"SELECT 1", 0, NULL, true, false};
    struct pg_tx tx;
    PGresult *r = NULL;
    int rc;

    pg_tx_init(&tx, p);
    rc = pg_tx_run(&tx, "", "pg_catalog", &one, 1, false, &r, errstr);
    PQclear(r);
    pg_tx_rollback(&tx);
    return rc;
}

/* array_send's layout: ndim, has-nulls, element type, (size, lower bound)
 * per dimension, then each element as its length and its bytes; a float8
 * is its IEEE bits in network order. */
#define FLOAT8_OID 701u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int pg_binary_float8s(const char *val, int len, double *out, int want)
{
    const unsigned char *p = (const unsigned char *)val;

    if (val == NULL || want < 0 || len != 20 + want * 12 || be32(p) != 1 || be32(p + 8) != FLOAT8_OID ||
        be32(p + 12) != (uint32_t)want)
        return ERR_INVAL;
    p += 20;
    for (int i = 0; i < want; i++, p += 12) {
        uint64_t bits = (uint64_t)be32(p + 4) << 32 | be32(p + 8);
        if (be32(p) != 8)
            return ERR_INVAL;   /* a NULL (-1) or not a float8 */
        memcpy(&out[i], &bits, sizeof bits);
    }
    return 0;
}

const char *pg_lib_version(char buf[16])
{
    int v = PQlibVersion();

    snprintf(buf, 16, "%d.%d", v / 10000, v % 10000);
    return buf;
}
