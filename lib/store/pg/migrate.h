/* migrate: applies the numbered SQL files of a folder (sql/NNNN_name.sql) to
 * PostgreSQL in name order, each in its own transaction, and records each in
 * core.schema_migrations with the SHA-256 of its bytes. An applied file whose
 * bytes changed is refused, never re-run; a session advisory lock makes
 * concurrent runs (every host's ExecStartPre) wait for each other. After the
 * files it makes the audit log's partitions ahead (core.ensure_audit_partitions).
 * Does not roll back or down-migrate: a fix is a new file. */
#ifndef LIB_MIGRATE_H
#define LIB_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"

#define MIGRATE_MAX_FILES 1000
#define MIGRATE_MAX_FILE_BYTES (4u << 20)
#define MIGRATE_NAME_MAX 128
#define MIGRATE_AUDIT_MONTHS_AHEAD 2    /* this month and the next two */
#define MIGRATE_ERRSTR 512

struct migrate_opts {
    const char *dsn;            /* libpq connection string of the migration owner */
    const char *sql_dir;        /* folder holding NNNN_name.sql */
    bool dry_run;               /* list what would run; change nothing */
    FILE *out;                  /* one line per file applied / to apply; NULL: quiet */
};

/* What a run did (or, with dry_run, would do). */
struct migrate_report {
    int files;                  /* migration files in sql_dir */
    int pending;                /* not yet applied when the run began */
    int applied;                /* applied by this run */
    int partitions_made;        /* audit partitions created by this run */
};

/* Runs the migrations. 0 on success; otherwise errstr holds one line naming
 * the file (and line) at fault:
 *   ERR_IO          sql_dir or a file cannot be read
 *   ERR_INVAL       a file name out of the NNNN_name.sql pattern, or SQL that fails
 *   ERR_TOOBIG      too many files, or one over MIGRATE_MAX_FILE_BYTES
 *   ERR_CONFLICT    an applied file has changed since it was applied
 *   ERR_UNAVAILABLE the database cannot be reached
 * Files applied before a failure stay applied (each is its own transaction). */
int migrate_run(const struct migrate_opts *o, struct migrate_report *r,
                char errstr[MIGRATE_ERRSTR]) ERR_MUST_CHECK;

/* True when name is a migration file name: digits, '_', [A-Za-z0-9_-]+, ".sql". */
bool migrate_name_valid(const char *name);

#endif
