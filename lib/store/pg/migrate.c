/* The whole run happens on one connection holding a session advisory lock, so
 * a second `tessera migrate` (another host's ExecStartPre, say) waits, then
 * sees the first one's rows in core.schema_migrations and applies nothing.
 * Checksums of every applied file are verified before anything is applied: a
 * tampered history stops the run before it changes the database further.
 * Files are sent whole through the simple query protocol (several statements
 * in one string, no values in it); the only values migrate itself sends, the
 * file name, checksum, lock key and month count, go as $n parameters. */
#include "store/pg/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/crypto.h"

/* pg_advisory_lock key: "tessmigr" as a big-endian int8, so it cannot
 * collide with a lock some other tool of the same database picks by chance. */
#define MIGRATE_LOCK_KEY "8387236820641474418"
/* An upper bound on waiting for another migrate or for a table lock. */
#define MIGRATE_LOCK_TIMEOUT "SET lock_timeout = '300s'"

struct mfile {
    char name[MIGRATE_NAME_MAX];
    char sum[CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1];
    char *sql;                  /* owned, NUL-terminated */
    bool applied;
};

bool migrate_name_valid(const char *name)
{
    size_t n = strlen(name), i = 0;

    if (n < 7 || n >= MIGRATE_NAME_MAX || strcmp(name + n - 4, ".sql") != 0)
        return false;
    while (i < n && name[i] >= '0' && name[i] <= '9')
        i++;
    if (i == 0 || name[i] != '_' || i + 1 >= n - 4)
        return false;
    for (i++; i < n - 4; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct mfile *)a)->name, ((const struct mfile *)b)->name);
}

static int read_file(const char *dir, struct mfile *f, char errstr[MIGRATE_ERRSTR])
{
    char path[4096];
    uint8_t digest[CRYPTO_SHA256_LEN];
    FILE *fp;
    long len;
    int rc = ERR_IO;

    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    if ((fp = fopen(path, "rb")) == NULL) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s: %s", path, strerror(errno));
        goto out;
    }
    if ((unsigned long)len > MIGRATE_MAX_FILE_BYTES) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s: over %u bytes", path, MIGRATE_MAX_FILE_BYTES);
        rc = ERR_TOOBIG;
        goto out;
    }
    if ((f->sql = malloc((size_t)len + 1)) == NULL) {
        rc = ERR_NOMEM;
        snprintf(errstr, MIGRATE_ERRSTR, "%s: out of memory", path);
        goto out;
    }
    if (fread(f->sql, 1, (size_t)len, fp) != (size_t)len) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s: short read", path);
        goto out;
    }
    f->sql[len] = '\0';
    if (memchr(f->sql, '\0', (size_t)len) != NULL) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s: holds a NUL byte", path);
        rc = ERR_INVAL;
        goto out;
    }
    if (crypto_sha256(f->sql, (size_t)len, digest) != 0 ||
        crypto_hex_encode(digest, sizeof digest, f->sum, sizeof f->sum) != 0) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s: sha256 failed", path);
        rc = ERR_INTERNAL;
        goto out;
    }
    rc = 0;
out:
    fclose(fp);
    return rc;
}

/* Lists and reads sql_dir's migration files, sorted by name. *out is owned. */
static int load_files(const char *dir, struct mfile **out, int *nout, char errstr[MIGRATE_ERRSTR])
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct mfile *files = NULL;
    int n = 0, rc = 0;

    *out = NULL;
    *nout = 0;
    if (d == NULL) {
        snprintf(errstr, MIGRATE_ERRSTR, "db.sql_dir %s: %s", dir, strerror(errno));
        return ERR_IO;
    }
    if ((files = calloc(MIGRATE_MAX_FILES, sizeof *files)) == NULL) {
        closedir(d);
        snprintf(errstr, MIGRATE_ERRSTR, "out of memory");
        return ERR_NOMEM;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
            continue;
        if (!migrate_name_valid(de->d_name)) {
            snprintf(errstr, MIGRATE_ERRSTR, "%s/%s: not a migration name (NNNN_name.sql)", dir, de->d_name);
            rc = ERR_INVAL;
            goto out;
        }
        if (n == MIGRATE_MAX_FILES) {
            snprintf(errstr, MIGRATE_ERRSTR, "%s: over %d migration files", dir, MIGRATE_MAX_FILES);
            rc = ERR_TOOBIG;
            goto out;
        }
        snprintf(files[n++].name, MIGRATE_NAME_MAX, "%s", de->d_name);
    }
    qsort(files, (size_t)n, sizeof *files, cmp_name);
    for (int i = 0; i < n && rc == 0; i++)
        rc = read_file(dir, &files[i], errstr);
out:
    closedir(d);
    if (rc != 0) {
        for (int i = 0; i < n; i++)
            free(files[i].sql);
        free(files);
        return rc;
    }
    *out = files;
    *nout = n;
    return 0;
}

/* The first line of a libpq message, for errstr. */
static const char *first_line(const char *msg, char *buf, size_t sz)
{
    snprintf(buf, sz, "%s", msg != NULL ? msg : "");
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* The line of sql that a 1-based character position (as PostgreSQL reports it) falls on. */
static int line_of(const char *sql, long pos)
{
    int line = 1;
    long chars = 0;

    for (const char *p = sql; *p != '\0' && chars < pos - 1; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80)
            chars++;
        if (*p == '\n')
            line++;
    }
    return line;
}

/* Describes a failed result: "MESSAGE (line N)" with the position when given. */
static void result_error(const PGresult *res, const PGconn *c, const char *sql, char *buf, size_t sz)
{
    char line[256];
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *pos = res != NULL ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;

    if (primary == NULL)
        primary = first_line(PQerrorMessage(c), line, sizeof line);
    if (sql != NULL && pos != NULL)
        snprintf(buf, sz, "%s (line %d)", primary, line_of(sql, strtol(pos, NULL, 10)));
    else
        snprintf(buf, sz, "%s", primary);
}

/* Runs a statement with parameters; 0 when it succeeded. *res (owned) when wanted. */
static int exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
                char errstr[MIGRATE_ERRSTR])
{
    char why[384];
    /* no parameters: the simple protocol, which takes several statements */
    PGresult *r = nparams == 0 ? PQexec(c, sql) : PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        result_error(r, c, NULL, why, sizeof why);
        snprintf(errstr, MIGRATE_ERRSTR, "%s", why);
        PQclear(r);
        return PQstatus(c) == CONNECTION_OK ? ERR_INVAL : ERR_UNAVAILABLE;
    }
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* Marks the files core.schema_migrations lists; a checksum that differs is refused. */
static int mark_applied(PGconn *c, struct mfile *files, int n, const char *dir, char errstr[MIGRATE_ERRSTR])
{
    PGresult *r = NULL;
    int rc;

    rc = exec(c, "SELECT to_regclass('core.schema_migrations') IS NOT NULL", 0, NULL, &r, errstr);
    if (rc != 0)
        return rc;
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists)
        return 0;   /* a fresh database (dry run: nothing created yet) */
    if ((rc = exec(c, "SELECT filename, checksum FROM core.schema_migrations", 0, NULL, &r, errstr)) != 0)
        return rc;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *name = PQgetvalue(r, row, 0), *sum = PQgetvalue(r, row, 1);
        for (int i = 0; i < n; i++) {
            if (strcmp(files[i].name, name) != 0)
                continue;
            if (strcmp(files[i].sum, sum) != 0) {
                snprintf(errstr, MIGRATE_ERRSTR,
                         "%s/%s: changed since it was applied (sha256 %.12s…, recorded %.12s…); "
                         "an applied migration is never edited: put the change in a new file",
                         dir, name, files[i].sum, sum);
                rc = ERR_CONFLICT;
                goto out;
            }
            files[i].applied = true;
        }
    }
out:
    PQclear(r);
    return rc;
}

/* One file in one transaction, recorded in the same transaction. */
static int apply_file(PGconn *c, const struct mfile *f, const char *dir, char errstr[MIGRATE_ERRSTR])
{
    char why[384];
    const char *params[2] = {f->name, f->sum};
    PGresult *r;
    int rc;

    if ((rc = exec(c, "BEGIN", 0, NULL, NULL, errstr)) != 0)
        return rc;
    r = PQexec(c, f->sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK &&
        PQresultStatus(r) != PGRES_EMPTY_QUERY) {
        result_error(r, c, f->sql, why, sizeof why);
        snprintf(errstr, MIGRATE_ERRSTR, "%s/%s: %s", dir, f->name, why);
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        return PQstatus(c) == CONNECTION_OK ? ERR_INVAL : ERR_UNAVAILABLE;
    }
    PQclear(r);
    /* A file that ends its own transaction would leave the record outside it. */
    if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
        snprintf(errstr, MIGRATE_ERRSTR, "%s/%s: ends the transaction itself (no BEGIN/COMMIT in "
                 "migrations: migrate wraps each file)", dir, f->name);
        PQclear(PQexec(c, "ROLLBACK"));
        return ERR_INVAL;
    }
    rc = exec(c, "INSERT INTO core.schema_migrations (filename, checksum) VALUES ($1, $2)", 2, params,
              NULL, errstr);
    if (rc == 0)
        rc = exec(c, "COMMIT", 0, NULL, NULL, errstr);
    if (rc != 0) {
        snprintf(why, sizeof why, "%s", errstr);
        snprintf(errstr, MIGRATE_ERRSTR, "%s/%s: %s", dir, f->name, why);
        PQclear(PQexec(c, "ROLLBACK"));
    }
    return rc;
}

static int connect_db(const char *dsn, PGconn **out, char errstr[MIGRATE_ERRSTR])
{
    char line[256];
    PGconn *c = PQconnectdb(dsn);

    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        snprintf(errstr, MIGRATE_ERRSTR, "cannot connect: %s",
                 c != NULL ? first_line(PQerrorMessage(c), line, sizeof line) : "out of memory");
        PQfinish(c);
        return ERR_UNAVAILABLE;
    }
    *out = c;
    return 0;
}

/* The bookkeeping table; made under the lock, before the first file runs. */
static const char SCHEMA_MIGRATIONS[] =
    "CREATE SCHEMA IF NOT EXISTS core;"
    "CREATE TABLE IF NOT EXISTS core.schema_migrations ("
    " filename text PRIMARY KEY,"
    " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
    " applied_at timestamptz NOT NULL DEFAULT now())";

int migrate_run(const struct migrate_opts *o, struct migrate_report *r, char errstr[MIGRATE_ERRSTR])
{
    struct mfile *files = NULL;
    PGconn *c = NULL;
    PGresult *res = NULL;
    const char *lock[1] = {MIGRATE_LOCK_KEY};
    char months[16];
    const char *mparams[1] = {months};
    int n = 0, rc;

    memset(r, 0, sizeof *r);
    errstr[0] = '\0';
    if ((rc = load_files(o->sql_dir, &files, &n, errstr)) != 0)
        return rc;
    r->files = n;
    if ((rc = connect_db(o->dsn, &c, errstr)) != 0)
        goto out;
    /* Quiet the "already exists, skipping" notices of idempotent statements. */
    if ((rc = exec(c, "SET client_min_messages = warning", 0, NULL, NULL, errstr)) != 0 ||
        (rc = exec(c, MIGRATE_LOCK_TIMEOUT, 0, NULL, NULL, errstr)) != 0)
        goto out;
    if (!o->dry_run) {
        if ((rc = exec(c, "SELECT pg_advisory_lock($1::int8)", 1, lock, NULL, errstr)) != 0 ||
            (rc = exec(c, SCHEMA_MIGRATIONS, 0, NULL, NULL, errstr)) != 0)
            goto out;
    }
    if ((rc = mark_applied(c, files, n, o->sql_dir, errstr)) != 0)
        goto out;
    for (int i = 0; i < n; i++) {
        if (files[i].applied)
            continue;
        r->pending++;
        if (o->dry_run) {
            if (o->out != NULL)
                fprintf(o->out, "would apply %s\n", files[i].name);
            continue;
        }
        if ((rc = apply_file(c, &files[i], o->sql_dir, errstr)) != 0)
            goto out;
        r->applied++;
        if (o->out != NULL)
            fprintf(o->out, "applied %s\n", files[i].name);
    }
    if (!o->dry_run) {
        snprintf(months, sizeof months, "%d", MIGRATE_AUDIT_MONTHS_AHEAD);
        rc = exec(c, "SELECT core.ensure_audit_partitions($1::int)", 1, mparams, &res, errstr);
        if (rc != 0) {
            char why[384];
            snprintf(why, sizeof why, "%s", errstr);
            snprintf(errstr, MIGRATE_ERRSTR, "core.ensure_audit_partitions: %s", why);
            goto out;
        }
        r->partitions_made = atoi(PQgetvalue(res, 0, 0));
    }
out:
    PQclear(res);
    PQfinish(c);    /* ends the session, and with it the advisory lock */
    for (int i = 0; i < n; i++)
        free(files[i].sql);
    free(files);
    return rc;
}
