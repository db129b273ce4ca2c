/* pgrec: what the PostgreSQL engine's records files share: engine_pg_records.c
 * (names, parameters, field types, rows and record writes; its opening
 * comment has the design), engine_pg_schema.c (resources) and
 * engine_pg_list.c (lists, the outbox). Private to those three files. */
#ifndef LIB_STORE_PG_PGREC_H
#define LIB_STORE_PG_PGREC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "store/pg/engine_pg_records.h"

#define fail engine_pg_fail
#define DATA_PATH "pg_catalog, pg_temp"
#define SQL_MAX (4u * 1024 * 1024)
#define PARAMS_MAX 512          /* 7 system values + 200 fields, or 16 filters + keyset */
#define LIST_CAP 100000

/* The $n values of one statement; texts made here are owned by it. */
struct params {
    const char *v[PARAMS_MAX];
    char *owned[PARAMS_MAX];
    int n;
};

/* engine_pg_records.c: names */
bool scope_ok(const struct eng_scope *s);
int qident(struct buf *b, const char *name);
int qtable(struct buf *b, const char *schema, const char *table);

/* engine_pg_records.c: parameters */
void params_cleanup(struct params *p);
int param(struct params *p, const char *v);
int param_own(struct params *p, char *v);
char *fmt_i64(int64_t v);
char *fmt_num(double d);

/* engine_pg_records.c: rows and statements */
int row_record(const char *text, size_t len, const struct eng_resource *def, struct eng_record *out);
int run(struct engine *e, const struct eng_scope *s, const char *const *sql, struct params *p,
        size_t n, PGresult **res);
int nomem(struct engine *e);
int from_live(struct buf *b, const char *schema, const char *table, int now);

/* engine_pg_schema.c */
int res_load(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
             bool lock, struct eng_resource *out, char schema[ENG_SLUG]);

#endif
