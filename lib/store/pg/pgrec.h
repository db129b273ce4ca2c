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

/* ---- engine_pg_records.c -------------------------------------------------- */

/* name as a quoted identifier, as quote_ident makes it; "schema"."table". */
int pgrec_qident(struct buf *b, const char *name);
int pgrec_qtable(struct buf *b, const char *schema, const char *table);

/* Frees the texts p owns and empties it. */
void pgrec_params_cleanup(struct params *p);
/* Adds a borrowed value (NULL: SQL null); returns its $n, or 0 when full. */
int pgrec_param(struct params *p, const char *v);
/* Takes v (malloc'd; NULL means out of memory): its $n, or 0. */
int pgrec_param_own(struct params *p, char *v);
/* Returns owned: v as decimal text; d with 17 digits (read back exactly). NULL when out of memory. */
char *pgrec_fmt_i64(int64_t v);
char *pgrec_fmt_num(double d);

/* A row as to_jsonb(_r) prints it → *out (data and bidx Returns owned), system columns left out. */
int pgrec_row_record(const char *text, size_t len, const struct eng_resource *def, struct eng_record *out);
/* The same for a row whose JSON lacks a column read apart (a vector in the
 * binary format): value (taken, also on failure; NULL: out of memory) goes
 * into the record as its member name. */
int pgrec_row_record_plus(const char *text, size_t len, const struct eng_resource *def, const char *name,
                          cJSON *value, struct eng_record *out);
/* Runs n statements (their params in p[i]) on the data store of (s, service); results into res (owned). */
int pgrec_run(struct engine *e, const struct eng_scope *s, const char *service, const char *const *sql,
              struct params *p, size_t n, PGresult **res);
/* The same for statements that only read (engine_pg_data_read): no BEGIN of their own. */
int pgrec_run_read(struct engine *e, const struct eng_scope *s, const char *service, const char *const *sql,
                   struct params *p, size_t n, PGresult **res);
/* What a record op holds for its one or two statements: the resource's
 * definition and data schema, each statement's parameters (p[i]) and text
 * (b[i]), their results. pgrec_call_open makes it, and one pgrec_call_close
 * at the op's one exit frees all of it, whatever happened in between. */
struct pgrec_call {
    const char *service;        /* borrowed from the op's caller: which store (engine_pg_route) */
    struct eng_resource *def;
    bool *lent;                 /* def is the engine's spare (pgrec_call_init): given back at close */
    char schema[ENG_SLUG];
    struct params p[2];
    struct buf b[2];
    PGresult *r[2];
};

/* The definition read as a statement of the caller's pipeline (vals kept by
 * the caller until it ran), and its result into out and schema (ERR_NOTFOUND:
 * none), as pgrec_res_load without a lock. */
void pgrec_res_stmt(const struct eng_scope *s, const char *service, const char *name, const char *vals[3],
                    struct pg_stmt *st);
int pgrec_res_result(struct engine *e, const struct eng_scope *s, const PGresult *r, const char *service,
                     const char *name, struct eng_resource *out, char schema[ENG_SLUG]) ERR_MUST_CHECK;
/* c emptied for an op on service, with room for a definition in c->def: the
 * engine's spare while no other call holds it (a struct eng_resource is some
 * 70 KB: a malloc and a free of it per read were a visible share of one), a
 * new one otherwise. pgrec_call_close gives back or frees either. */
int pgrec_call_init(struct engine *e, const char *service, struct pgrec_call *c) ERR_MUST_CHECK;
/* Loads the definition of (service, resource) and its schema into c, with
 * lock as pgrec_res_load; c needs pgrec_call_close even when this fails. */
int pgrec_call_open(struct engine *e, const struct eng_scope *s, const char *service, const char *resource,
                    bool lock, struct pgrec_call *c);
/* Runs c's first n statements; their results into c->r. */
int pgrec_call_run(struct engine *e, const struct eng_scope *s, struct pgrec_call *c, size_t n);
void pgrec_call_close(struct pgrec_call *c);
/* ERR_NOMEM with its reason in e->errstr. */
int pgrec_nomem(struct engine *e);
/* " FROM schema.table _r WHERE org_id = $1 AND <live at $now>" into b. */
int pgrec_from_live(struct buf *b, const char *schema, const char *table, int now);

/* ---- engine_pg_schema.c ---------------------------------------------------- */

/* The definition of (service, name) in s's mode and its data schema's name
 * (schema may be NULL); with lock, FOR KEY SHARE on its row until the unit of
 * work ends. ERR_NOTFOUND when it has none. */
int pgrec_res_load(struct engine *e, const struct eng_scope *s, const char *service, const char *name,
                   bool lock, struct eng_resource *out, char schema[ENG_SLUG]);

#endif
