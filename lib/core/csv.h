/* csv: a streaming RFC 4180 reader for seed files, and the cell guard for
 * exports. Records are read one at a time from a file or a memory buffer with
 * hard caps on field, record and field-count sizes, strict UTF-8, and errors
 * that name the file and the line where the offending record started. It does
 * not guess dialects (the separator is always ',', the quote always '"'),
 * trim spaces, or convert types: cells come back as the exact bytes written. */
#ifndef LIB_CSV_H
#define LIB_CSV_H

#include <stddef.h>

#include "core/err.h"

#define CSV_ERRSTR_SIZE 160

#define CSV_DEFAULT_FIELD  (64 * 1024)     /* bytes in one cell */
#define CSV_DEFAULT_FIELDS 256             /* cells in one record */
#define CSV_DEFAULT_ROW    (1024 * 1024)   /* bytes of one record as read */

struct csv_limits {
    size_t max_field;   /* decoded bytes in one cell; 0 → CSV_DEFAULT_FIELD */
    size_t max_fields;  /* cells in one record; 0 → CSV_DEFAULT_FIELDS */
    size_t max_row;     /* bytes of one record as read, quotes and line ends
                         * included; 0 → CSV_DEFAULT_ROW */
};

/* One record. Borrowed: valid until the next csv_next() or csv_close(). */
struct csv_row {
    size_t nfields;
    const char *const *fields;  /* NUL-terminated cells, valid UTF-8, no NUL inside */
    const size_t *lens;         /* byte length of each cell */
    long line;                  /* line on which the record starts (1-based) */
};

struct csv_reader;

/* Opening. Returns owned (csv_close): a reader, or NULL with the reason in
 * errstr ("path: No such file or directory"). lim may be NULL for the defaults.
 * csv_open_mem borrows buf until csv_close; name stands for the path in
 * messages. A UTF-8 byte-order mark at the very start is skipped. */
struct csv_reader *csv_open_file(const char *path, const struct csv_limits *lim,
                                 char errstr[CSV_ERRSTR_SIZE]);
struct csv_reader *csv_open_mem(const char *name, const void *buf, size_t len,
                                const struct csv_limits *lim,
                                char errstr[CSV_ERRSTR_SIZE]);
/* Closes the file (if any) and frees the reader; NULL is a no-op. */
void csv_close(struct csv_reader *r);

/* Reads the next record: 1 with *row filled, 0 at the end of input, or a
 * negative code with csv_errstr() as "path:line: reason":
 *   ERR_INVAL  stray or unterminated quote, text after a closing quote, bare CR,
 *              NUL byte, invalid UTF-8, or a field count other than the first
 *              record's (the header's);
 *   ERR_TOOBIG a cap of csv_limits passed;
 *   ERR_IO, ERR_NOMEM.
 * Records end at LF or CRLF (both accepted, mixed too); a quoted cell may hold
 * commas, "" for a quote, and line breaks, kept as written. Empty lines between
 * records are skipped (a one-column empty cell is written ""). After an error
 * the reader stays failed: every later call returns the same error. */
int csv_next(struct csv_reader *r, struct csv_row *row) ERR_MUST_CHECK;

/* The reason for the last failure of r; "" when none. Borrowed until csv_close. */
const char *csv_errstr(const struct csv_reader *r);

/* Header. Reads the first record as column names and checks them: every name
 * in `required` present, every other name in `optional` (both NULL-terminated,
 * either may be NULL), none empty or repeated. ERR_INVAL naming the column
 * ("seed/users.csv:1: unknown column \"emial\""), or csv_next's errors
 * (an empty input is ERR_INVAL). Call once, before any csv_next(). The reason
 * goes to errstr (may be NULL) and csv_errstr(r). */
int csv_header_check(struct csv_reader *r, const char *const *required,
                     const char *const *optional, char errstr[CSV_ERRSTR_SIZE]) ERR_MUST_CHECK;

/* Index of a header column, or -1 when the header has no such column (or was
 * not checked). Names compare exactly, case included. */
int csv_col(const struct csv_reader *r, const char *name);

/* Borrowed like row: the cell of column `name` in row, or NULL when the header
 * has no such column (an optional column left out). An empty cell is "". */
const char *csv_get(const struct csv_reader *r, const struct csv_row *row, const char *name);

/* Export guard against formula injection (DESIGN §10): copies in to out,
 * prefixed with ' when it begins with = + - @ TAB or CR, so a spreadsheet shows
 * text instead of evaluating it. ERR_TOOBIG when out (outsz bytes with the NUL)
 * is too small; out is then "". */
int csv_cell_safe(const char *in, char *out, size_t outsz) ERR_MUST_CHECK;

/* csv_cell_safe, then RFC 4180 quoting ("…" with "" for ") when the cell holds
 * , " CR or LF: a field ready to write. ERR_TOOBIG as above. */
int csv_cell_export(const char *in, char *out, size_t outsz) ERR_MUST_CHECK;

#endif
