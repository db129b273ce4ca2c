/* engine_pg_list: record lists on PostgreSQL (filters, order and keyset
 * pages as SQL with every value a parameter) and the outbox. Part of the
 * records code: engine_pg_records.c opens with the design, store/pg/pgrec.h
 * has what the three files share. */
#include "store/pg/pgrec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/text.h"
#include "core/uuid.h"
#include "store/vector.h"

/* ---- list: filters, order, keyset ------------------------------------------------------ */

/* What a query compares: a column's SQL and its type (ENG_FT_*), with id as
 * its own kind (a uuid compared as text when the value is no uuid). */
#define COL_ID (-1)

struct column {
    char sql[80];               /* quoted */
    int type;
    const struct eng_field *f;  /* NULL for system columns */
};

static bool column_of(const struct eng_resource *def, const char *name, struct column *c)
{
    struct buf b;

    memset(c, 0, sizeof *c);
    if (strcmp(name, "id") == 0) {
        c->type = COL_ID;
        snprintf(c->sql, sizeof c->sql, "id");
        return true;
    }
    if (strcmp(name, "created_at") == 0 || strcmp(name, "updated_at") == 0) {
        c->type = ENG_FT_TIMESTAMP;
        snprintf(c->sql, sizeof c->sql, "%s", name);
        return true;
    }
    if ((c->f = eng_resource_field(def, name)) == NULL)
        return false;
    c->type = c->f->type;
    buf_init(&b, sizeof c->sql - 1);
    if (pgrec_qident(&b, name) != 0) {
        buf_cleanup(&b);
        return false;
    }
    snprintf(c->sql, sizeof c->sql, "%s", b.p);
    buf_cleanup(&b);
    return true;
}

static bool integral(double d)
{
    return isfinite(d) && d == floor(d) && fabs(d) <= (double)ENG_INT_MAX;
}

/* One scalar w compared with column c: its parameter and how to write it
 * ("$k::type"), and the column's SQL as the comparison needs it. false when
 * w cannot be a value of the column (the memory engine's "kinds differ"). */
static bool scalar(struct params *p, const struct column *c, const cJSON *w, char lhs[96], char rhs[64],
                   bool *nomem_)
{
    int k = 0;
    const char *cast = NULL;

    snprintf(lhs, 96, "%s", c->sql);
    switch (c->type) {
    case COL_ID:
        if (!cJSON_IsString(w))
            return false;
        k = pgrec_param(p, w->valuestring);
        if (uuid_valid(w->valuestring)) {
            cast = "uuid";
        } else {
            snprintf(lhs, 96, "id::text COLLATE \"C\"");
            cast = "text COLLATE \"C\"";
        }
        break;
    case ENG_FT_STRING:
    case ENG_FT_TEXT:
        if (!cJSON_IsString(w))
            return false;
        k = pgrec_param(p, w->valuestring);
        cast = "text COLLATE \"C\"";
        break;
    case ENG_FT_INTEGER:
    case ENG_FT_TIMESTAMP:
    case ENG_FT_NUMBER:
        if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble))
            return false;
        if (c->type != ENG_FT_NUMBER && integral(w->valuedouble)) {
            k = pgrec_param_own(p, pgrec_fmt_i64((int64_t)w->valuedouble));
            cast = "bigint";
        } else {
            k = pgrec_param_own(p, pgrec_fmt_num(w->valuedouble));
            cast = "double precision";
        }
        break;
    case ENG_FT_BOOLEAN:
        if (!cJSON_IsBool(w))
            return false;
        k = pgrec_param(p, cJSON_IsTrue(w) ? "t" : "f");
        cast = "boolean";
        break;
    default:
        return false;           /* json and vectors compare only by is */
    }
    if (k == 0) {
        *nomem_ = true;
        return false;
    }
    snprintf(rhs, 64, "$%d::%s", k, cast);
    return true;
}

/* An `in` list as an array parameter of the column's kind; false when no
 * element can match. */
static bool array_of(struct params *p, const struct column *c, const cJSON *w, char lhs[96], char rhs[64],
                     bool *nomem_)
{
    struct buf b;
    const cJSON *x;
    const char *cast;
    int count = 0, k, rc;

    if (!cJSON_IsArray(w))
        return false;
    switch (c->type) {
    case COL_ID: cast = "text[]"; snprintf(lhs, 96, "id::text"); break;
    case ENG_FT_STRING:
    case ENG_FT_TEXT: cast = "text[]"; snprintf(lhs, 96, "%s", c->sql); break;
    case ENG_FT_INTEGER:
    case ENG_FT_TIMESTAMP: cast = "bigint[]"; snprintf(lhs, 96, "%s", c->sql); break;
    case ENG_FT_NUMBER: cast = "double precision[]"; snprintf(lhs, 96, "%s", c->sql); break;
    case ENG_FT_BOOLEAN: cast = "boolean[]"; snprintf(lhs, 96, "%s", c->sql); break;
    default: return false;
    }
    buf_init(&b, SQL_MAX);
    rc = buf_puts(&b, "{");
    cJSON_ArrayForEach(x, w) {
        bool fits = false;
        if (rc != 0)
            break;
        if (c->type == COL_ID || c->type == ENG_FT_STRING || c->type == ENG_FT_TEXT) {
            if ((fits = cJSON_IsString(x))) {
                /* an array literal's element: quoted, " and \ escaped */
                rc = buf_puts(&b, count ? ",\"" : "\"");
                for (const char *q = x->valuestring; rc == 0 && *q; q++)
                    rc = (*q == '"' || *q == '\\') ? buf_printf(&b, "\\%c", *q) : buf_append(&b, q, 1);
                if (rc == 0)
                    rc = buf_puts(&b, "\"");
            }
        } else if (c->type == ENG_FT_BOOLEAN) {
            if ((fits = cJSON_IsBool(x)))
                rc = buf_printf(&b, "%s%s", count ? "," : "", cJSON_IsTrue(x) ? "t" : "f");
        } else if (cJSON_IsNumber(x) && isfinite(x->valuedouble)) {
            if (c->type == ENG_FT_NUMBER && (fits = true))
                rc = buf_printf(&b, "%s%.17g", count ? "," : "", x->valuedouble);
            else if ((fits = integral(x->valuedouble)))
                rc = buf_printf(&b, "%s%" PRId64, count ? "," : "", (int64_t)x->valuedouble);
        }
        count += fits;
    }
    if (rc == 0)
        rc = buf_puts(&b, "}");
    if (rc != 0 || count == 0) {
        *nomem_ = rc != 0;
        buf_cleanup(&b);
        return false;
    }
    if ((k = pgrec_param_own(p, b.p)) == 0) {
        *nomem_ = true;
        return false;
    }
    snprintf(rhs, 64, "ANY($%d::%s)", k, cast);
    return true;
}

/* A LIKE pattern with the memory engine's reading of a trailing lone
 * backslash (a literal one), which PostgreSQL would refuse: Returns owned. */
static char *like_pattern(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    bool lone = false;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') {
            if (i + 1 == n)
                lone = true;
            else
                i++;
        }
    }
    memcpy(out, s, n + 1);
    if (lone)
        memcpy(out + n, "\\", 2);
    return out;
}

/* One filter as SQL into b (parameters into p), the memory engine's matches(). */
static int filter_sql(struct buf *b, struct params *p, const struct eng_resource *def, const struct eng_filter *fl)
{
    static const char *const CMP[] = {[ENG_OP_EQ] = "=", [ENG_OP_NEQ] = "<>", [ENG_OP_GT] = ">",
                                      [ENG_OP_GTE] = ">=", [ENG_OP_LT] = "<", [ENG_OP_LTE] = "<="};
    struct column c;
    const cJSON *w = fl->value;
    char lhs[96], rhs[64];
    bool oom = false;
    int k;

    if (!column_of(def, fl->field, &c))
        return ERR_INVAL;
    if (fl->op == ENG_OP_IS) {
        if (w == NULL || cJSON_IsNull(w))
            return buf_printf(b, " AND %s IS NULL", c.sql);
        if (c.type != ENG_FT_BOOLEAN || (c.f != NULL && c.f->pii))
            return buf_puts(b, " AND false");
        return buf_printf(b, " AND %s IS %s", c.sql, cJSON_IsTrue(w) ? "TRUE" : "FALSE");
    }
    if (c.f != NULL && c.f->pii) {
        if (fl->op != ENG_OP_EQ || !cJSON_IsString(w))
            return buf_puts(b, " AND false");
        if ((k = pgrec_param(p, c.f->name)) == 0 || pgrec_param(p, w->valuestring) == 0)
            return ERR_NOMEM;
        return buf_printf(b, " AND _bidx->>$%d::text = $%d::text", k, k + 1);
    }
    if (w == NULL || cJSON_IsNull(w))
        return buf_printf(b, fl->op == ENG_OP_NEQ ? " AND %s IS NOT NULL" : " AND false", c.sql);
    switch (fl->op) {
    case ENG_OP_EQ:
    case ENG_OP_NEQ:
    case ENG_OP_GT:
    case ENG_OP_GTE:
    case ENG_OP_LT:
    case ENG_OP_LTE:
        if (scalar(p, &c, w, lhs, rhs, &oom))
            return buf_printf(b, " AND %s %s %s", lhs, CMP[fl->op], rhs);
        if (oom)
            return ERR_NOMEM;
        /* kinds differ: never equal, so neq holds for every value */
        return buf_printf(b, fl->op == ENG_OP_NEQ ? " AND %s IS NOT NULL" : " AND false", c.sql);
    case ENG_OP_LIKE:
        if (!cJSON_IsString(w) || (c.type != ENG_FT_STRING && c.type != ENG_FT_TEXT && c.type != COL_ID))
            return buf_puts(b, " AND false");
        if ((k = pgrec_param_own(p, like_pattern(w->valuestring))) == 0)
            return ERR_NOMEM;
        return buf_printf(b, " AND %s LIKE $%d::text COLLATE \"C\"", c.type == COL_ID ? "id::text" : c.sql, k);
    case ENG_OP_IN:
        if (array_of(p, &c, w, lhs, rhs, &oom))
            return buf_printf(b, " AND %s = %s", lhs, rhs);
        return oom ? ERR_NOMEM : buf_puts(b, " AND false");
    default:
        return ERR_INVAL;
    }
}

/* The keyset's bound for a numeric order: the cursor's value, or the exact
 * value of the after_id row when the cursor's is that value as printed. A
 * cursor carries its value as cJSON prints a double, which keeps only 15
 * digits whenever they read back within DBL_EPSILON (9007199254740991 comes
 * back as 9007199254740990); this engine stores the exact value, so paging by
 * the printed one would repeat or skip rows. The row is found by id (the
 * cursor's other half) and used only when its value is within that rounding
 * of the cursor's, so a row updated or deleted since falls back to the
 * cursor as the memory engine reads it. Borrowed rhs in, *anchor out (owned
 * by the caller's buf). */
static int keyset_anchor(struct buf *anchor, const struct column *c, const char *schema, const char *table,
                         const char *rhs, int id_param)
{
    int rc = buf_printf(anchor, "coalesce((SELECT _a.%s FROM ", c->sql);

    if (rc == 0)
        rc = pgrec_qtable(anchor, schema, table);
    if (rc == 0)
        rc = buf_printf(anchor,
                        " _a WHERE _a.org_id = $1::uuid AND _a.id = $%d::uuid AND abs(_a.%s - %s::double precision) "
                        "<= abs(%s::double precision) * 4.5e-16), %s)",
                        id_param, c->sql, rhs, rhs, rhs);
    return rc;
}

/* Rows strictly after (after_value, after_id) in the order: nulls after every
 * value ascending, before every value descending, ties by id. */
static int keyset_sql(struct buf *b, struct params *p, const struct column *c, const struct eng_query *q,
                      const char *schema, const char *table)
{
    const char *gt = q->desc ? "<" : ">";
    const cJSON *av = q->after_value;
    char lhs[96], rhs[64], idcmp[96];
    bool oom = false, by_id = uuid_valid(q->after_id);
    struct buf anchor;
    const char *bound = rhs;
    int k = pgrec_param(p, q->after_id), rc;

    if (k == 0)
        return ERR_NOMEM;
    /* an id that is no uuid still bounds, compared as text as ids sort */
    if (by_id)
        snprintf(idcmp, sizeof idcmp, "id %s $%d::uuid", gt, k);
    else
        snprintf(idcmp, sizeof idcmp, "id::text COLLATE \"C\" %s $%d::text COLLATE \"C\"", gt, k);
    if (c->type == COL_ID)
        return buf_printf(b, " AND %s", idcmp);
    if (av == NULL || cJSON_IsNull(av))
        return q->desc ? buf_printf(b, " AND (%s IS NOT NULL OR %s)", c->sql, idcmp)
                       : buf_printf(b, " AND (%s IS NULL AND %s)", c->sql, idcmp);
    if (!scalar(p, c, av, lhs, rhs, &oom))
        return oom ? ERR_NOMEM : ERR_INVAL;
    buf_init(&anchor, 4096);
    /* only when the bound keeps the column's type (an integer column's bound
     * is a bigint unless the cursor's value has a fraction, which no stored
     * integer printed can have) */
    if (by_id && c->f != NULL && (c->type == ENG_FT_NUMBER || strstr(rhs, "::bigint") != NULL) &&
        (c->type == ENG_FT_NUMBER || c->type == ENG_FT_INTEGER || c->type == ENG_FT_TIMESTAMP)) {
        if ((rc = keyset_anchor(&anchor, c, schema, table, rhs, k)) != 0) {
            buf_cleanup(&anchor);
            return rc;
        }
        bound = anchor.p;
    }
    if (q->desc)
        rc = buf_printf(b, " AND (%s < %s OR (%s = %s AND %s))", lhs, bound, lhs, bound, idcmp);
    else
        rc = buf_printf(b, " AND (%s > %s OR (%s = %s AND %s) OR %s IS NULL)", lhs, bound, lhs, bound, idcmp, lhs);
    buf_cleanup(&anchor);
    return rc;
}

static int list_sql(struct engine *e, struct buf *b, struct params *p, const char *org, const char *schema,
                    const char *resource, const struct eng_resource *def, const struct eng_query *q, size_t max)
{
    struct column oc;
    int rc;

    if (!column_of(def, q->order[0] != '\0' ? q->order : "id", &oc))
        return engine_fail(e, ERR_INVAL, "no field %.64s", q->order);
    for (size_t i = 0; i < q->nfilters; i++) {
        struct column c;
        if (!column_of(def, q->filters[i].field, &c))
            return engine_fail(e, ERR_INVAL, "no field %.64s", q->filters[i].field);
    }
    /* $1 org, $2 now, $3 limit */
    if (pgrec_param(p, org) == 0 || pgrec_param_own(p, pgrec_fmt_i64(q->now)) == 0 ||
        pgrec_param_own(p, pgrec_fmt_i64((int64_t)(max > LIST_CAP ? LIST_CAP : max))) == 0)
        return pgrec_nomem(e);
    rc = buf_puts(b, "SELECT to_jsonb(_r)::text");
    if (rc == 0)
        rc = pgrec_from_live(b, schema, resource, 2);
    for (size_t i = 0; rc == 0 && i < q->nfilters; i++)
        rc = filter_sql(b, p, def, &q->filters[i]);
    if (rc == 0 && q->has_after)
        rc = keyset_sql(b, p, &oc, q, schema, resource);
    if (rc == 0 && oc.type == COL_ID)
        rc = buf_printf(b, " ORDER BY id %s", q->desc ? "DESC" : "ASC");
    else if (rc == 0)
        rc = buf_printf(b, " ORDER BY %s %s, id %s", oc.sql, q->desc ? "DESC" : "ASC", q->desc ? "DESC" : "ASC");
    if (rc == 0)
        rc = buf_puts(b, " LIMIT $3::bigint");
    if (rc == ERR_INVAL)
        return engine_fail(e, rc, "a filter or cursor value does not fit its column");
    return rc != 0 ? pgrec_nomem(e) : 0;
}

/* The page in one round trip, when this worker has read the resource's
 * definition before: the statement is built from the definition kept and
 * sent in one pipeline after the definition's read (one implicit
 * transaction). The page stands when the definition read then is the one
 * kept (same version); *rows is then the page (owned by c). Otherwise, or
 * when the kept definition made a statement the server refused (a column
 * renamed or dropped meanwhile: outside a write such a failure leaves
 * nothing to roll back), *rows stays NULL and the caller goes the long way,
 * which learns the definition read. Only outside an explicit transaction,
 * where a failed statement would end the unit. */
static int list_fast(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                     const struct eng_query *q, size_t max, struct pgrec_call *c, PGresult **rows)
{
    const struct eng_resource *kept = engine_pg_def_known(e, s, service, resource);
    const char *schema = engine_pg_schema_known(e, s->mode, service);
    const char *vals[3];
    struct pg_stmt st[2];
    struct eng_resource *read = NULL;
    int rc;

    *rows = NULL;
    if (kept == NULL || schema == NULL || max == 0 || engine_pg_data_explicit(e, s, service))
        return 0;
    memcpy(c->def, kept, sizeof *c->def);
    snprintf(c->schema, sizeof c->schema, "%s", schema);
    if ((rc = list_sql(e, &c->b[0], &c->p[0], s->org_id, c->schema, resource, c->def, q, max)) != 0)
        return rc;
    pgrec_res_stmt(s, service, resource, vals, &st[0]);
    st[1] = (struct pg_stmt){c->b[0].p, c->p[0].n, c->p[0].v, false, false};
    if (engine_pg_data_read(e, s, service, DATA_PATH, st, 2, c->r) != 0)
        goto again;
    if ((read = malloc(sizeof *read)) == NULL)
        return pgrec_nomem(e);
    rc = pgrec_res_result(e, s, c->r[0], service, resource, read, NULL);
    if (rc == 0 && read->version == c->def->version)
        *rows = c->r[1];
    free(read);
    if (rc != 0 && rc != ERR_NOTFOUND)
        return rc;
again:
    if (*rows == NULL) { /* the long way starts afresh */
        for (int i = 0; i < 2; i++) {
            PQclear(c->r[i]);
            c->r[i] = NULL;
        }
        pgrec_params_cleanup(&c->p[0]);
        memset(&c->p[0], 0, sizeof c->p[0]);
        buf_cleanup(&c->b[0]);
        buf_init(&c->b[0], SQL_MAX);
    }
    return 0;
}

int pgrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_query *q, struct eng_record *out,
                      size_t max, size_t *n)
{
    struct pgrec_call c;
    PGresult *rows = NULL;
    int rc;

    *n = 0;
    if ((rc = pgrec_call_init(e, service, &c)) != 0)
        goto out;
    if ((rc = list_fast(e, s, service, resource, q, max, &c, &rows)) != 0)
        goto out;
    if (rows == NULL) {
        if ((rc = pgrec_res_load(e, s, service, resource, false, c.def, c.schema)) != 0)
            goto out;
        engine_pg_def_learn(e, s, c.def);
        if ((rc = list_sql(e, &c.b[0], &c.p[0], s->org_id, c.schema, resource, c.def, q, max)) != 0)
            goto out;
        if (max == 0)
            goto out;
        if ((rc = pgrec_run_read(e, s, service, (const char *[]){c.b[0].p}, c.p, 1, c.r)) != 0)
            goto out;
        rows = c.r[0];
    }
    for (int i = 0; i < PQntuples(rows) && *n < max; i++) {
        if ((rc = pgrec_row_record(PQgetvalue(rows, i, 0), (size_t)PQgetlength(rows, i, 0), c.def,
                                   &out[*n])) != 0) {
            for (size_t j = 0; j < *n; j++)
                eng_record_cleanup(&out[j]);
            *n = 0;
            rc = engine_fail(e, rc, "record unreadable");
            break;
        }
        (*n)++;
    }
out:
    pgrec_call_close(&c);
    return rc;
}

/* ---- outbox ------------------------------------------------------------------------------ */

int pgrec_outbox_list(struct engine *e, const struct eng_scope *s, const char *service,
                      uint64_t after_seq, struct eng_outbox *out, size_t max, size_t *n)
{
    const char *vals[2] = {service, engine_mode_name(s != NULL ? s->mode : 0)};
    const struct pg_stmt st = {"SELECT core.svc_schema_name($1, $2) WHERE EXISTS "
                               "(SELECT 1 FROM core.resources WHERE service = $1 AND mode = $2)",
                               2, vals, true, false};
    struct params p = {0};
    struct buf b;
    PGresult *r = NULL, *rows = NULL;
    int rc;

    buf_init(&b, SQL_MAX);
    *n = 0;
    if ((rc = engine_pg_data(e, s, service, DATA_PATH, &st, 1, &r)) != 0 || PQntuples(r) == 0 || max == 0)
        goto out;               /* no resource yet: no outbox yet */
    if (pgrec_param(&p, s->org_id) == 0 ||
        pgrec_param_own(&p, pgrec_fmt_i64(after_seq > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)after_seq)) == 0 ||
        pgrec_param_own(&p, pgrec_fmt_i64((int64_t)(max > LIST_CAP ? LIST_CAP : max))) == 0 ||
        buf_puts(&b, "SELECT seq, org_id, resource, record_id, op, version, created_at FROM ") != 0 ||
        pgrec_qtable(&b, PQgetvalue(r, 0, 0), "_outbox") != 0 ||
        buf_puts(&b, " WHERE org_id = $1::uuid AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint") != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if ((rc = pgrec_run(e, s, service, (const char *[]){b.p}, &p, 1, &rows)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(rows) && *n < max; i++) {
        struct eng_outbox *o = &out[(*n)++];
        memset(o, 0, sizeof *o);
        o->seq = strtoull(PQgetvalue(rows, i, 0), NULL, 10);
        snprintf(o->org_id, sizeof o->org_id, "%s", PQgetvalue(rows, i, 1));
        snprintf(o->service, sizeof o->service, "%s", service);
        snprintf(o->resource, sizeof o->resource, "%s", PQgetvalue(rows, i, 2));
        snprintf(o->record_id, sizeof o->record_id, "%s", PQgetvalue(rows, i, 3));
        snprintf(o->op, sizeof o->op, "%s", PQgetvalue(rows, i, 4));
        o->version = strtoll(PQgetvalue(rows, i, 5), NULL, 10);
        o->created_at = strtoll(PQgetvalue(rows, i, 6), NULL, 10);
    }
out:
    PQclear(r);
    PQclear(rows);
    pgrec_params_cleanup(&p);
    buf_cleanup(&b);
    return rc;
}

/* ---- vector search (engine.h; sql/0009_vector_indexes.sql) ------------------------------
 * Exact: one statement that scores every candidate the filters and RLS let
 * through in SQL (a sum over unnest of the stored double precision[] and the
 * query's), ordered by score and id, k rows: no stored vector crosses the
 * socket, only the k records that come back. Both statements order and limit
 * whole rows (_r) in a subquery and turn only the rows kept into JSON: JSON
 * for every candidate before the sort cost more than the scoring (at 1 % of
 * 100 000 128-d rows, 35 ms of 36). Fetching the candidates' vectors to
 * rank them here was measured too (bench/search.sh's data, through psql):
 * slower at 1 % (42 ms against 18), about twice as fast over all 100 000
 * rows (0.7 s against 1.4 s), and it holds every candidate's vector in the
 * worker; SQL keeps the worker's memory bounded.
 * With pgvector in the database and an HNSW index on the field for the
 * search's metric: the index's order (pgvector's iterative scan, relaxed, so
 * a selective filter or RLS does not starve it; its tuples bounded), the rows
 * scored exactly here from their vectors in binary and sorted; fewer than k
 * → the exact statement. Once a worker has found the index, that is one
 * round trip with the definition's read (search_fast) and one for the k
 * vectors' text (vector_texts); the profile that led here: issue 18's note. */

#define HNSW_MAX_SCAN_TUPLES "40000"
#define HNSW_OVERSAMPLE 2       /* rows asked of the index per row answered */
#define HNSW_ROWS_MIN 20        /* and at least this many */
#define HNSW_EF_MIN 40          /* the graph's search width at least (pgvector's default ef_search) */

/* The score of the metric in SQL over _t(a, b) (a: the row's, b: the query's; $5 its norm). */
static const char *score_sql(int metric)
{
    switch (metric) {
    case ENG_METRIC_L2: return "sqrt(sum((_t.a - _t.b) * (_t.a - _t.b)))";
    case ENG_METRIC_INNER: return "-sum(_t.a * _t.b)";
    default:
        return "CASE WHEN sum(_t.a * _t.a) > 0 THEN 1 - sum(_t.a * _t.b) / (sqrt(sum(_t.a * _t.a)) * $5::float8) END";
    }
}

/* The query vector as a double precision[] literal: Returns owned. */
static char *vector_literal(const double *v, int dim)
{
    struct buf b;

    buf_init(&b, (size_t)dim * 26 + 8);
    int rc = buf_puts(&b, "{");
    for (int i = 0; rc == 0 && i < dim; i++)
        rc = buf_printf(&b, "%s%.17g", i ? "," : "", v[i]);
    if (rc == 0)
        rc = buf_puts(&b, "}");
    if (rc != 0) {
        buf_cleanup(&b);
        return NULL;
    }
    return b.p;                 /* the buf's text, now the caller's */
}

/* The candidates' WHERE: the org (the application's own filter, beside RLS), live, the filters. */
static int search_where(struct buf *b, struct params *p, const struct eng_resource *def, const struct eng_search *q)
{
    const char *org = "_r.org_id = $1::uuid";
    int rc;

#ifdef TESSERA_TEST_HOOKS
    /* the tenant-isolation test (75_search.sh): while the file this names
     * exists, the org's condition is left out and RLS alone must hold */
    const char *hook = getenv("TESSERA_TEST_SEARCH_NO_ORG_FILTER");
    if (hook != NULL && access(hook, F_OK) == 0)
        org = "$1::uuid IS NOT NULL";
#endif
    rc = buf_printf(b, " WHERE %s AND (_r.expires_at IS NULL OR _r.expires_at > $2::bigint)", org);
    for (size_t i = 0; rc == 0 && i < q->where->nfilters; i++)
        rc = filter_sql(b, p, def, &q->where->filters[i]);
    return rc;
}

/* $1 org, $2 now, $3 the vector, $4 the rows and, for cosine in SQL (norm), $5 the vector's norm. */
static int search_params(struct params *p, const struct eng_scope *s, const struct eng_search *q, size_t rows,
                         bool norm)
{
    if (pgrec_param(p, s->org_id) == 0 || pgrec_param_own(p, pgrec_fmt_i64(q->where->now)) == 0 ||
        pgrec_param_own(p, vector_literal(q->vector, q->dim)) == 0 ||
        pgrec_param_own(p, pgrec_fmt_i64((int64_t)rows)) == 0)
        return ERR_NOMEM;
    if (norm && pgrec_param_own(p, pgrec_fmt_num(vec_norm(q->vector, q->dim))) == 0)
        return ERR_NOMEM;
    return 0;
}

static int exact_sql(struct buf *b, struct params *p, const struct eng_scope *s, const char *schema,
                     const struct eng_resource *def, const struct eng_search *q)
{
    int rc = search_params(p, s, q, q->k, q->metric == ENG_METRIC_COSINE);

    if (rc == 0)
        rc = buf_puts(b, "SELECT to_jsonb(x._r)::text, x.score FROM (SELECT _r, _s.score FROM ");
    if (rc == 0)
        rc = pgrec_qtable(b, schema, def->name);
    if (rc == 0)
        rc = buf_printf(b, " _r CROSS JOIN LATERAL (SELECT %s AS score FROM unnest(_r.", score_sql(q->metric));
    if (rc == 0)
        rc = pgrec_qident(b, q->field);
    if (rc == 0)
        rc = buf_puts(b, ", $3::float8[]) AS _t (a, b)) _s");
    if (rc == 0)
        rc = search_where(b, p, def, q);
    if (rc == 0)
        rc = buf_puts(b, " AND _s.score IS NOT NULL ORDER BY _s.score, _r.id LIMIT $4::bigint) x "
                         "ORDER BY x.score, (x._r).id");
    return rc;
}

static const char *const PGV_OPS[] = {[ENG_METRIC_COSINE] = "<=>", [ENG_METRIC_L2] = "<->",
                                      [ENG_METRIC_INNER] = "<#>"};

/* The index's order: rows by the expression the index is built on (ext:
 * pgvector's schema), each as [its JSON without the searched field, that
 * field's value, its id], to be read in the binary format: the vectors
 * cross as their bits, scored here without a decimal conversion either way,
 * and only the k records answered get theirs back as JSON (take_hits). */
static int hnsw_sql(struct buf *b, struct params *p, const struct eng_scope *s, const char *schema,
                    const struct eng_resource *def, const struct eng_search *q, const char *ext, size_t rows)
{
    struct buf x;
    int rc = search_params(p, s, q, rows, false);

    buf_init(&x, 256);
    if (rc == 0)
        rc = pgrec_qident(&x, ext);
    if (rc == 0)
        rc = buf_puts(b, "SELECT to_jsonb(j)::text, x.");
    if (rc == 0)
        rc = pgrec_qident(b, q->field);
    if (rc == 0)
        rc = buf_puts(b, ", x.id::text FROM (SELECT _r.* FROM ");
    if (rc == 0)
        rc = pgrec_qtable(b, schema, def->name);
    if (rc == 0)
        rc = buf_puts(b, " _r");
    if (rc == 0)
        rc = search_where(b, p, def, q);
    if (rc == 0)
        rc = buf_puts(b, " ORDER BY (_r.");
    if (rc == 0)
        rc = pgrec_qident(b, q->field);
    if (rc == 0)
        rc = buf_printf(b, "::%s.vector(%d)) OPERATOR(%s.%s) ($3::float8[]::%s.vector(%d)) LIMIT $4::bigint) x "
                           "CROSS JOIN LATERAL (SELECT x.id, x.version, x.created_at, x.updated_at, x.expires_at, "
                           "x._bidx",
                        x.p, q->dim, x.p, PGV_OPS[q->metric], x.p, q->dim);
    for (int i = 0; rc == 0 && i < def->nfields; i++) {
        if (strcmp(def->fields[i].name, q->field) == 0)
            continue;
        rc = buf_puts(b, ", x.");
        if (rc == 0)
            rc = pgrec_qident(b, def->fields[i].name);
    }
    if (rc == 0)
        rc = buf_puts(b, ") j");
    buf_cleanup(&x);
    return rc;
}

/* The rows of the exact statement (record, score) as hits, up to cap. */
static int take_scored(struct engine *e, const PGresult *r, const struct eng_resource *def, struct eng_hit *out,
                       size_t cap, size_t *n)
{
    int rc = 0;

    *n = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r) && *n < cap; i++) {
        struct eng_hit *h = &out[*n];
        if ((rc = pgrec_row_record(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), def, &h->rec)) == 0) {
            h->score = strtod(PQgetvalue(r, i, 1), NULL);
            (*n)++;
        }
    }
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            eng_record_cleanup(&out[i].rec);
        *n = 0;
        return engine_fail(e, rc, "record unreadable");
    }
    return 0;
}

/* A double precision[]'s text as PostgreSQL prints it ({1.5,-0.25,1e-05}:
 * the shortest text that reads back the same double) as the JSON array it
 * is once its braces are brackets, kept as that text (a raw item): printing
 * the answer's vectors with cJSON (%.15g, sscanf, %.17g per number) cost
 * more than the search. NULL when out of memory or not such a text (NaN or
 * Infinity, which JSON has no number for, were never written by the API). */
static cJSON *vector_json(const char *text, int len)
{
    cJSON *raw;
    char *t;

    if (len < 2 || text[0] != '{' || text[len - 1] != '}' || strpbrk(text, "NnIi\"") != NULL ||
        (t = malloc((size_t)len + 1)) == NULL)
        return NULL;
    memcpy(t, text, (size_t)len + 1);
    t[0] = '[';
    t[len - 1] = ']';
    raw = cJSON_CreateRaw(t);
    free(t);
    return raw;
}

/* The answer's vectors as PostgreSQL prints them (vector_json), in a round
 * trip of their own after the candidates': as text for the k rows answered
 * only (its shortest-decimal printing for every candidate cost a sixth of
 * the search). A row whose version is not the one the candidates' read saw
 * (written meanwhile), or gone, keeps the numbers it came with, so the
 * answer stays that read's. Best effort: when the read fails, so do the
 * texts, not the search. */
static void vector_texts(struct engine *e, const struct eng_scope *s, const char *service, const char *schema,
                         const struct eng_resource *def, const struct eng_search *q, struct eng_hit *out, size_t n)
{
    struct params p = {0};
    struct buf b, ids;
    PGresult *r = NULL;
    int rc;

    buf_init(&b, 512);
    buf_init(&ids, 40 * n + 8);
    rc = buf_puts(&ids, "{");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = buf_printf(&ids, "%s%s", i ? "," : "", out[i].rec.id);
    if (rc == 0)
        rc = buf_puts(&ids, "}");
    if (rc == 0 && (pgrec_param(&p, s->org_id) == 0 || pgrec_param(&p, ids.p) == 0))
        rc = ERR_NOMEM;
    if (rc == 0)
        rc = buf_puts(&b, "SELECT id::text, version, ");
    if (rc == 0)
        rc = pgrec_qident(&b, q->field);
    if (rc == 0)
        rc = buf_puts(&b, "::text FROM ");
    if (rc == 0)
        rc = pgrec_qtable(&b, schema, def->name);
    if (rc == 0)
        rc = buf_puts(&b, " WHERE org_id = $1::uuid AND id = ANY($2::uuid[])");
    if (rc == 0) {
        struct pg_stmt st = {b.p, p.n, p.v, PG_REUSE_TEXT, false};
        rc = engine_pg_data_read(e, s, service, DATA_PATH, &st, 1, &r);
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        for (size_t j = 0; j < n; j++) {
            cJSON *raw;
            if (strcmp(out[j].rec.id, PQgetvalue(r, i, 0)) != 0)
                continue;
            if (out[j].rec.version == strtoll(PQgetvalue(r, i, 1), NULL, 10) && !PQgetisnull(r, i, 2) &&
                (raw = vector_json(PQgetvalue(r, i, 2), PQgetlength(r, i, 2))) != NULL &&
                !cJSON_ReplaceItemInObjectCaseSensitive(out[j].rec.data, q->field, raw))
                cJSON_Delete(raw);
            break;
        }
    }
    PQclear(r);
    pgrec_params_cleanup(&p);
    buf_cleanup(&ids);
    buf_cleanup(&b);
}

/* A candidate of the index's order, scored here. */
struct cand {
    double score;
    const char *id;
    int row;
};

static int cand_cmp(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;

    if (a->score != b->score)
        return a->score < b->score ? -1 : 1;
    return strcmp(a->id, b->id);
}

/* The rows of hnsw_sql (binary) scored exactly here from their vectors
 * (a row without one has no score and is dropped), sorted by score and id:
 * the first k into out as records with their vector back in them, *n of
 * them; fewer than k candidates → *n = 0 (the caller goes exact). */
static int take_hits(struct engine *e, const PGresult *r, const struct eng_resource *def,
                     const struct eng_search *q, struct eng_hit *out, size_t *n)
{
    int rows = PQntuples(r), got = 0, rc = 0;
    double *v = malloc((size_t)q->dim * sizeof *v), qnorm = vec_norm(q->vector, q->dim);
    struct cand *c = calloc(rows > 0 ? (size_t)rows : 1, sizeof *c);

    *n = 0;
    if (v == NULL || c == NULL) {
        rc = pgrec_nomem(e);
        goto out;
    }
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(r, i, 1))
            continue;
        if (pg_binary_float8s(PQgetvalue(r, i, 1), PQgetlength(r, i, 1), v, q->dim) != 0) {
            rc = engine_fail(e, ERR_INTERNAL, "record unreadable: %.64s is not a vector(%d)", q->field, q->dim);
            goto out;
        }
        c[got] = (struct cand){0, PQgetvalue(r, i, 2), i};
        if (vec_score(q->metric, v, vec_norm(v, q->dim), q->vector, qnorm, q->dim, &c[got].score))
            got++;
    }
    if ((size_t)got < q->k)
        goto out;
    qsort(c, (size_t)got, sizeof *c, cand_cmp);
    for (size_t i = 0; i < q->k; i++) {
        int row = c[i].row;
        if ((rc = pg_binary_float8s(PQgetvalue(r, row, 1), PQgetlength(r, row, 1), v, q->dim)) != 0 ||
            (rc = pgrec_row_record_plus(PQgetvalue(r, row, 0), (size_t)PQgetlength(r, row, 0), def, q->field,
                                        cJSON_CreateDoubleArray(v, q->dim), &out[i].rec)) != 0) {
            rc = engine_fail(e, rc, "record unreadable");
            break;
        }
        out[i].score = c[i].score;
        (*n)++;
    }
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            eng_record_cleanup(&out[i].rec);
        *n = 0;
    }
out:
    free(v);
    free(c);
    return rc;
}

/* The index's check: pgvector's schema when the HNSW index of (schema,
 * resource, field, metric, dim) exists, no row otherwise. */
static const char SQL_HNSW_CHECK[] =
    "SELECT core.svc_vector_schema() WHERE to_regclass(format('%I.%I', $1::text, "
    "core.svc_hnsw_name($2::text, $3::text, $4::text, $5::int))) IS NOT NULL";
/* The index scan's settings for the query after it, to its transaction's end
 * (set_config(…, true)): in one implicit transaction, no BEGIN or COMMIT. */
static const char SQL_HNSW_SET[] =
    "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.max_scan_tuples', '" HNSW_MAX_SCAN_TUPLES "', true)";

/* Whether field f may have an HNSW index for q's metric (sql/0009_vector_indexes.sql). */
static bool hnsw_may(const struct eng_field *f, const struct eng_search *q)
{
    return f->index && vec_metric_parse(vec_metric_name(f->metric)) == q->metric && f->dim <= 2000;
}

/* The index's check's values into p (dim holds the dimension's text). */
static int hnsw_check_params(struct engine *e, struct params *p, const char *schema, const struct eng_resource *def,
                             const struct eng_field *f, char dim[16])
{
    snprintf(dim, 16, "%d", f->dim);
    if (pgrec_param(p, schema) == 0 || pgrec_param(p, def->name) == 0 || pgrec_param(p, f->name) == 0 ||
        pgrec_param(p, vec_metric_name(f->metric)) == 0 || pgrec_param(p, dim) == 0)
        return pgrec_nomem(e);
    return 0;
}

/* pgvector's schema into ext when the field has an HNSW index for q's metric; "" otherwise. */
static int hnsw_usable(struct engine *e, const struct eng_scope *s, const char *schema, const struct eng_resource *def,
                       const struct eng_field *f, const struct eng_search *q, char ext[ENG_SLUG])
{
    struct params p = {0};
    PGresult *r = NULL;
    char dim[16];
    int rc;

    ext[0] = '\0';
    if (!hnsw_may(f, q))
        return 0;
    if ((rc = hnsw_check_params(e, &p, schema, def, f, dim)) == 0) {
        struct pg_stmt st = {SQL_HNSW_CHECK, p.n, p.v, PG_REUSE, false};
        rc = engine_pg_data_read(e, s, def->service, DATA_PATH, &st, 1, &r);
    }
    if (rc == 0 && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(ext, ENG_SLUG, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    pgrec_params_cleanup(&p);
    return rc;
}

/* NULL when q can search def (its field a vector of q's dimension, its
 * filters on columns of def); else why not, in why. f: the field. */
static const char *search_misfit(const struct eng_resource *def, const struct eng_search *q,
                                 const struct eng_field **f, char why[160])
{
    struct column col;

    if ((*f = eng_resource_field(def, q->field)) == NULL || (*f)->type != ENG_FT_VECTOR || (*f)->dim != q->dim) {
        snprintf(why, 160, "%.64s is not a vector(%d) field", q->field, q->dim);
        return why;
    }
    for (size_t i = 0; i < q->where->nfilters; i++)
        if (!column_of(def, q->where->filters[i].field, &col)) {
            snprintf(why, 160, "no field %.64s", q->where->filters[i].field);
            return why;
        }
    return NULL;
}

/* Rows asked of the index: more than k, ranked exactly here (the index's
 * distances are float4, and a near miss it ordered behind the k-th still
 * makes the answer). Twice k was measured against four times (bench/run.sh's
 * pg-search, 75_search's recall at 50 % to 0.1 % selectivity): the same
 * answers, and each row asked costs its vector's 1 KiB sent in binary. */
static size_t hnsw_rows(const struct eng_search *q)
{
    size_t rows = q->k * HNSW_OVERSAMPLE < HNSW_ROWS_MIN ? HNSW_ROWS_MIN : q->k * HNSW_OVERSAMPLE;

    if (rows > ENG_SEARCH_K_MAX)
        rows = q->k > ENG_SEARCH_K_MAX ? q->k : ENG_SEARCH_K_MAX;
    return rows;
}

/* The graph's search width (hnsw.ef_search) for rows: at least pgvector's default. */
static void hnsw_ef(size_t rows, char ef[16])
{
    snprintf(ef, 16, "%zu", rows < HNSW_EF_MIN ? (size_t)HNSW_EF_MIN : rows);
}

/* c's statements, parameters and results emptied for the next run (its definition kept). */
static void call_reset(struct pgrec_call *c)
{
    for (int i = 0; i < 2; i++) {
        PQclear(c->r[i]);
        c->r[i] = NULL;
        pgrec_params_cleanup(&c->p[i]);
        buf_cleanup(&c->b[i]);
        buf_init(&c->b[i], SQL_MAX);
    }
}

enum { SEARCH_LONG, SEARCH_DONE, SEARCH_EXACT };

/* One round trip when this worker searched the field before and found its
 * HNSW index (engine_pg_hnsw_known, for PGE_HNSW_SECS): [the definition's
 * read, the settings, the candidates] in one implicit transaction, the
 * statements built from the definition kept. The answer stands when the
 * definition read is the one kept (same version): *how SEARCH_DONE (the
 * vectors' texts then come in a round trip of their own), or SEARCH_EXACT
 * when fewer than k candidates came (c then holds the definition for the
 * exact statement). Otherwise, and when
 * the server refused a statement built from a stale definition, SEARCH_LONG
 * and nothing is kept: the long way reads afresh. Outside an explicit
 * transaction only, as list_fast. */
static int search_fast(struct engine *e, const struct eng_scope *s, const char *resource, const struct eng_search *q,
                       struct pgrec_call *c, struct eng_hit *out, size_t *n, int *how)
{
    const struct eng_resource *kept = engine_pg_def_known(e, s, c->service, resource);
    const char *schema = engine_pg_schema_known(e, s->mode, c->service), *known, *vals[3];
    const struct eng_field *f;
    char ext[ENG_SLUG], ef[16], why[160];
    const char *efv[1] = {ef};
    struct eng_resource *read = NULL;
    struct pg_stmt st[3];
    PGresult *r[3] = {NULL};
    int rc = 0;

    *how = SEARCH_LONG;
    if (kept == NULL || schema == NULL || engine_pg_data_explicit(e, s, c->service) ||
        (known = engine_pg_hnsw_known(e, s, kept, q->field, q->metric)) == NULL ||
        search_misfit(kept, q, &f, why) != NULL)
        return 0;
    snprintf(ext, sizeof ext, "%s", known);
    memcpy(c->def, kept, sizeof *c->def);
    snprintf(c->schema, sizeof c->schema, "%s", schema);
    hnsw_ef(hnsw_rows(q), ef);
    if (hnsw_sql(&c->b[1], &c->p[1], s, c->schema, c->def, q, ext, hnsw_rows(q)) != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    pgrec_res_stmt(s, c->service, resource, vals, &st[0]);
    st[1] = (struct pg_stmt){SQL_HNSW_SET, 1, efv, PG_REUSE, false};
    st[2] = (struct pg_stmt){c->b[1].p, c->p[1].n, c->p[1].v, PG_REUSE_TEXT, true};
    if (engine_pg_data_read(e, s, c->service, DATA_PATH, st, 3, r) != 0)
        goto out;               /* the long way, which says what failed if it fails again */
    if ((read = malloc(sizeof *read)) == NULL) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if (pgrec_res_result(e, s, r[0], c->service, resource, read, NULL) != 0 || read->version != c->def->version)
        goto out;
    if ((rc = take_hits(e, r[2], c->def, q, out, n)) == 0)
        *how = *n == q->k ? SEARCH_DONE : SEARCH_EXACT;
    if (*how == SEARCH_DONE)
        vector_texts(e, s, c->service, c->schema, c->def, q, out, *n);
out:
    free(read);
    for (int i = 0; i < 3; i++)
        PQclear(r[i]);
    return rc;
}
int pgrec_record_search(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                        const struct eng_search *q, struct eng_hit *out, size_t *n, int *strategy)
{
    struct pgrec_call c;
    const struct eng_field *f;
    char ext[ENG_SLUG] = "", ef[16], why[160];
    const char *efv[1] = {ef};
    int rc, how = SEARCH_LONG;

    *n = 0;
    *strategy = ENG_STRATEGY_EXACT;
    if ((rc = pgrec_call_init(e, service, &c)) != 0)
        goto out;
    if ((rc = search_fast(e, s, resource, q, &c, out, n, &how)) != 0 || how == SEARCH_DONE) {
        *strategy = ENG_STRATEGY_HNSW;
        goto out;
    }
    if (how == SEARCH_EXACT) {
        *strategy = ENG_STRATEGY_HNSW_EXACT;
        call_reset(&c);
        goto exact;
    }
    call_reset(&c);
    if ((rc = pgrec_res_load(e, s, service, resource, false, c.def, c.schema)) != 0)
        goto out;
    engine_pg_def_learn(e, s, c.def);
    if (search_misfit(c.def, q, &f, why) != NULL) {
        rc = engine_fail(e, ERR_INVAL, "%s", why);
        goto out;
    }
    if ((rc = hnsw_usable(e, s, c.schema, c.def, f, q, ext)) != 0)
        goto out;
    if (hnsw_may(f, q))
        engine_pg_hnsw_learn(e, s, c.def, f->name, q->metric, ext); /* "": forgotten */
    if (ext[0] != '\0') {
        struct pg_stmt st[2];

        hnsw_ef(hnsw_rows(q), ef);
        if (hnsw_sql(&c.b[1], &c.p[1], s, c.schema, c.def, q, ext, hnsw_rows(q)) != 0) {
            rc = pgrec_nomem(e);
            goto out;
        }
        st[0] = (struct pg_stmt){SQL_HNSW_SET, 1, efv, PG_REUSE, false};
        st[1] = (struct pg_stmt){c.b[1].p, c.p[1].n, c.p[1].v, PG_REUSE_TEXT, true};
        if ((rc = engine_pg_data_read(e, s, service, DATA_PATH, st, 2, c.r)) != 0 ||
            (rc = take_hits(e, c.r[1], c.def, q, out, n)) != 0 || *n == q->k) {
            if (rc == 0)
                vector_texts(e, s, service, c.schema, c.def, q, out, *n);
            *strategy = ENG_STRATEGY_HNSW;
            goto out;
        }
        *strategy = ENG_STRATEGY_HNSW_EXACT;
        call_reset(&c);
    }
exact:
    if (exact_sql(&c.b[0], &c.p[0], s, c.schema, c.def, q) != 0) {
        rc = pgrec_nomem(e);
        goto out;
    }
    if ((rc = pgrec_run_read(e, s, service, (const char *[]){c.b[0].p}, c.p, 1, c.r)) == 0)
        rc = take_scored(e, c.r[0], c.def, out, q->k, n);
out:
    pgrec_call_close(&c);
    return rc;
}
