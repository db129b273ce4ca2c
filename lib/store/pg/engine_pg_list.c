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

#include "core/buf.h"
#include "core/text.h"
#include "core/uuid.h"

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

int pgrec_record_list(struct engine *e, const struct eng_scope *s, const char *service,
                      const char *resource, const struct eng_query *q, struct eng_record *out,
                      size_t max, size_t *n)
{
    struct pgrec_call c;
    int rc;

    *n = 0;
    if ((rc = pgrec_call_open(e, s, service, resource, false, &c)) != 0)
        goto out;
    if ((rc = list_sql(e, &c.b[0], &c.p[0], s->org_id, c.schema, resource, c.def, q, max)) != 0)
        goto out;
    if (max == 0)
        goto out;
    if ((rc = pgrec_call_run(e, s, &c, 1)) != 0)
        goto out;
    for (int i = 0; i < PQntuples(c.r[0]) && *n < max; i++) {
        if ((rc = pgrec_row_record(PQgetvalue(c.r[0], i, 0), (size_t)PQgetlength(c.r[0], i, 0), c.def,
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
                               2, vals, true};
    struct params p = {0};
    struct buf b;
    PGresult *r = NULL, *rows = NULL;
    int rc;

    buf_init(&b, SQL_MAX);
    *n = 0;
    if ((rc = engine_pg_data(e, s, DATA_PATH, &st, 1, &r)) != 0 || PQntuples(r) == 0 || max == 0)
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
    if ((rc = pgrec_run(e, s, (const char *[]){b.p}, &p, 1, &rows)) != 0)
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
