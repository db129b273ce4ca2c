/* csv: a byte-at-a-time state machine over a chunked input.
 *
 * The input is either the caller's memory buffer or a FILE read in 64 KiB
 * chunks, so a seed file of any size costs one chunk plus one record. A record
 * is decoded into one growing buffer (cells back to back, each NUL-terminated)
 * that never exceeds max_row plus a NUL per cell: every cap is checked as the
 * bytes arrive, not after a monster line has been buffered. Errors report the
 * line on which the record started, since a quoted cell may run over many lines
 * and the start is where a person looks. After an error the reader refuses to
 * continue: resynchronising inside a broken quote would only invent records. */
#include "core/csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_CHUNK (64 * 1024)
#define CSV_EOF (-1)
#define CSV_IOERR (-2)
#define CSV_NAME_SHOWN 40       /* bytes of a column name quoted in a message */

enum csv_state {
    CSV_FIELD_START,            /* at the start of a cell */
    CSV_UNQUOTED,
    CSV_QUOTED,
    CSV_QUOTED_QUOTE,           /* a '"' inside a quoted cell: end, or "" */
};

struct csv_reader {
    FILE *fp;                   /* NULL for a memory reader */
    const unsigned char *data;  /* the memory buffer, or chunk */
    size_t len, pos;
    unsigned char *chunk;
    char *name;
    size_t max_field, max_fields, max_row;
    long line;                  /* line of the next byte */
    int failed;                 /* sticky error code, 0 when fine */
    bool eof;

    char *buf;                  /* the current record's cells */
    size_t cap, used;
    size_t *off;                /* start of each cell in buf */
    size_t *lens;
    const char **ptrs;
    size_t ncap, nfields;
    size_t width;               /* cells in the first record; 0 before it */
    bool any_record;

    char **hdr;                 /* owned copies of the header, after csv_header_check */
    size_t nhdr;
    bool header_checked;

    char errstr[CSV_ERRSTR_SIZE];
};

static void set_err(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char *dst, const char *fmt, ...)
{
    va_list ap;

    if (dst == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(dst, CSV_ERRSTR_SIZE, fmt, ap);
    va_end(ap);
}

/* Records "name:line: reason" and makes the reader fail from now on. */
static int fail(struct csv_reader *r, int code, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct csv_reader *r, int code, long line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(r->errstr, sizeof r->errstr, "%s:%ld: ", r->name, line);

    if (n >= 0 && (size_t)n < sizeof r->errstr) {
        va_start(ap, fmt);
        vsnprintf(r->errstr + n, sizeof r->errstr - (size_t)n, fmt, ap);
        va_end(ap);
    }
    r->failed = code;
    return code;
}

/* A column name as it may appear in a message: cut short, control bytes
 * replaced, so a hostile header cannot forge log lines. */
static const char *shown(const char *s, char out[CSV_NAME_SHOWN + 4])
{
    size_t i;

    for (i = 0; s[i] != '\0' && i < CSV_NAME_SHOWN; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i] != '\0') {
        /* do not leave half a UTF-8 sequence before the ellipsis */
        while (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0x80)
            i--;
        if (i > 0 && (unsigned char)out[i - 1] >= 0xC0)
            i--;
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates, or code points past U+10FFFF. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = p[i];
        unsigned char lo = 0x80, hi = 0xBF;
        size_t k;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (n - i < k || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t j = 2; j < k; j++)
            if (p[i + j] < 0x80 || p[i + j] > 0xBF)
                return false;
        i += k;
    }
    return true;
}

static int refill(struct csv_reader *r)
{
    if (r->fp == NULL)
        return CSV_EOF;
    r->len = fread(r->chunk, 1, CSV_CHUNK, r->fp);
    r->pos = 0;
    if (r->len == 0)
        return ferror(r->fp) ? CSV_IOERR : CSV_EOF;
    return 0;
}

static int peek_byte(struct csv_reader *r)
{
    int rc;

    if (r->pos == r->len && (rc = refill(r)) < 0)
        return rc;
    return r->data[r->pos];
}

static int get_byte(struct csv_reader *r)
{
    int c = peek_byte(r);

    if (c >= 0)
        r->pos++;
    return c;
}

static struct csv_reader *reader_new(const char *name, const struct csv_limits *lim,
                                     char *errstr)
{
    struct csv_reader *r = calloc(1, sizeof *r);

    if (r == NULL || (r->name = strdup(name != NULL ? name : "<memory>")) == NULL) {
        free(r);
        set_err(errstr, "%s: out of memory", name != NULL ? name : "<memory>");
        return NULL;
    }
    r->max_field = (lim != NULL && lim->max_field > 0) ? lim->max_field : CSV_DEFAULT_FIELD;
    r->max_fields = (lim != NULL && lim->max_fields > 0) ? lim->max_fields : CSV_DEFAULT_FIELDS;
    r->max_row = (lim != NULL && lim->max_row > 0) ? lim->max_row : CSV_DEFAULT_ROW;
    r->line = 1;
    return r;
}

static void skip_bom(struct csv_reader *r)
{
    if (r->len - r->pos >= 3 && memcmp(r->data + r->pos, "\xEF\xBB\xBF", 3) == 0)
        r->pos += 3;
}

struct csv_reader *csv_open_file(const char *path, const struct csv_limits *lim,
                                 char errstr[CSV_ERRSTR_SIZE])
{
    struct csv_reader *r;

    if (path == NULL) {
        set_err(errstr, "(null): no path");
        return NULL;
    }
    if ((r = reader_new(path, lim, errstr)) == NULL)
        return NULL;
    if ((r->chunk = malloc(CSV_CHUNK)) == NULL) {
        set_err(errstr, "%s: out of memory", path);
        csv_close(r);
        return NULL;
    }
    r->data = r->chunk;
    if ((r->fp = fopen(path, "rbe")) == NULL) {
        set_err(errstr, "%s: %s", path, strerror(errno));
        csv_close(r);
        return NULL;
    }
    /* The first chunk is read now so a BOM can be seen whole and an
     * unreadable file (a directory) fails at open. */
    if (refill(r) == CSV_IOERR) {
        set_err(errstr, "%s: read error: %s", path, strerror(errno));
        csv_close(r);
        return NULL;
    }
    skip_bom(r);
    return r;
}

struct csv_reader *csv_open_mem(const char *name, const void *buf, size_t len,
                                const struct csv_limits *lim,
                                char errstr[CSV_ERRSTR_SIZE])
{
    struct csv_reader *r;

    if (buf == NULL && len > 0) {
        set_err(errstr, "%s: no buffer", name != NULL ? name : "<memory>");
        return NULL;
    }
    if ((r = reader_new(name, lim, errstr)) == NULL)
        return NULL;
    r->data = buf;
    r->len = len;
    skip_bom(r);
    return r;
}

void csv_close(struct csv_reader *r)
{
    if (r == NULL)
        return;
    if (r->fp != NULL)
        fclose(r->fp);
    for (size_t i = 0; i < r->nhdr; i++)
        free(r->hdr[i]);
    free(r->hdr);
    free(r->chunk);
    free(r->name);
    free(r->buf);
    free(r->off);
    free(r->lens);
    free(r->ptrs);
    free(r);
}

const char *csv_errstr(const struct csv_reader *r)
{
    return r != NULL ? r->errstr : "";
}

/* Room for `need` more bytes in the record buffer. */
static int buf_reserve(struct csv_reader *r, size_t need)
{
    size_t ncap;
    char *nb;

    if (r->cap - r->used >= need)
        return ERR_OK;
    ncap = r->cap ? r->cap : 256;
    while (ncap - r->used < need)
        ncap *= 2;
    if ((nb = realloc(r->buf, ncap)) == NULL)
        return ERR_NOMEM;
    r->buf = nb;
    r->cap = ncap;
    return ERR_OK;
}

static int cells_reserve(struct csv_reader *r)
{
    size_t ncap;
    size_t *noff, *nlens;
    const char **nptrs;

    if (r->nfields < r->ncap)
        return ERR_OK;
    ncap = r->ncap ? r->ncap * 2 : 16;
    if (ncap > r->max_fields)
        ncap = r->max_fields;
    if ((noff = realloc(r->off, ncap * sizeof *noff)) == NULL)
        return ERR_NOMEM;
    r->off = noff;
    if ((nlens = realloc(r->lens, ncap * sizeof *nlens)) == NULL)
        return ERR_NOMEM;
    r->lens = nlens;
    if ((nptrs = realloc(r->ptrs, ncap * sizeof *nptrs)) == NULL)
        return ERR_NOMEM;
    r->ptrs = nptrs;
    r->ncap = ncap;
    return ERR_OK;
}

/* "field 3" or "field 3 (email)" once the header is known. */
static const char *field_label(const struct csv_reader *r, size_t i, char *out, size_t outsz)
{
    char nm[CSV_NAME_SHOWN + 4];

    if (i < r->nhdr)
        snprintf(out, outsz, "field %zu (%s)", i + 1, shown(r->hdr[i], nm));
    else
        snprintf(out, outsz, "field %zu", i + 1);
    return out;
}

static int append(struct csv_reader *r, unsigned char c, size_t field_start, long line)
{
    char lab[CSV_NAME_SHOWN + 32];

    if (c == '\0')
        return fail(r, ERR_INVAL, line, "%s: NUL byte",
                    field_label(r, r->nfields, lab, sizeof lab));
    if (r->used - field_start >= r->max_field)
        return fail(r, ERR_TOOBIG, line, "%s: longer than %zu bytes",
                    field_label(r, r->nfields, lab, sizeof lab), r->max_field);
    if (buf_reserve(r, 2) != ERR_OK)    /* the byte and, later, the cell's NUL */
        return fail(r, ERR_NOMEM, line, "out of memory");
    r->buf[r->used++] = (char)c;
    return ERR_OK;
}

static int end_field(struct csv_reader *r, size_t *field_start, long line)
{
    char lab[CSV_NAME_SHOWN + 32];
    size_t n = r->used - *field_start;

    if (r->nfields >= r->max_fields)
        return fail(r, ERR_TOOBIG, line, "more than %zu fields", r->max_fields);
    /* reserved first: an empty first cell leaves buf NULL until here */
    if (cells_reserve(r) != ERR_OK || buf_reserve(r, 1) != ERR_OK)
        return fail(r, ERR_NOMEM, line, "out of memory");
    if (!utf8_valid((const unsigned char *)r->buf + *field_start, n))
        return fail(r, ERR_INVAL, line, "%s: invalid UTF-8",
                    field_label(r, r->nfields, lab, sizeof lab));
    r->buf[r->used++] = '\0';
    r->off[r->nfields] = *field_start;
    r->lens[r->nfields] = n;
    r->nfields++;
    *field_start = r->used;
    return ERR_OK;
}

static int end_record(struct csv_reader *r, struct csv_row *row, long line)
{
    if (r->width == 0) {
        r->width = r->nfields;
    } else if (r->nfields != r->width) {
        return fail(r, ERR_INVAL, line, "%zu fields, but the header has %zu",
                    r->nfields, r->width);
    }
    for (size_t i = 0; i < r->nfields; i++)
        r->ptrs[i] = r->buf + r->off[i];
    row->nfields = r->nfields;
    row->fields = r->ptrs;
    row->lens = r->lens;
    row->line = line;
    r->any_record = true;
    return 1;
}

int csv_next(struct csv_reader *r, struct csv_row *row)
{
    enum csv_state st = CSV_FIELD_START;
    size_t field_start = 0, rowbytes = 0;
    long start = r->line;
    int rc;

    if (r->failed)
        return r->failed;
    if (r->eof)
        return 0;
    r->used = 0;
    r->nfields = 0;
    for (;;) {
        int c = get_byte(r);
        bool eol = false;

        if (c == CSV_IOERR)
            return fail(r, ERR_IO, start, "read error: %s", strerror(errno));
        if (c != CSV_EOF && ++rowbytes > r->max_row)
            return fail(r, ERR_TOOBIG, start, "record longer than %zu bytes", r->max_row);
        if (c == '\r' && st != CSV_QUOTED) {
            int n = peek_byte(r);

            if (n == CSV_IOERR)
                return fail(r, ERR_IO, start, "read error: %s", strerror(errno));
            if (n != '\n')
                return fail(r, ERR_INVAL, start, "carriage return not followed by a line feed");
            (void)get_byte(r);
            if (++rowbytes > r->max_row)
                return fail(r, ERR_TOOBIG, start, "record longer than %zu bytes", r->max_row);
            c = '\n';
        }
        if (c == '\n')
            r->line++;
        eol = (c == '\n' || c == CSV_EOF);

        switch (st) {
        case CSV_FIELD_START:
            if (eol && r->nfields == 0) {
                if (c == CSV_EOF) {
                    r->eof = true;
                    return 0;
                }
                start = r->line;        /* an empty line: skip it */
                rowbytes = 0;
                continue;
            }
            if (c == '"') {
                st = CSV_QUOTED;
                continue;
            }
            break;
        case CSV_UNQUOTED:
            if (c == '"')
                return fail(r, ERR_INVAL, start, "quote inside an unquoted field");
            break;
        case CSV_QUOTED:
            if (c == CSV_EOF)
                return fail(r, ERR_INVAL, start, "unterminated quoted field");
            if (c == '"')
                st = CSV_QUOTED_QUOTE;
            else if ((rc = append(r, (unsigned char)c, field_start, start)) < 0)
                return rc;
            continue;
        case CSV_QUOTED_QUOTE:
            if (c == '"') {
                if ((rc = append(r, '"', field_start, start)) < 0)
                    return rc;
                st = CSV_QUOTED;
                continue;
            }
            if (c != ',' && !eol)
                return fail(r, ERR_INVAL, start, "text after the closing quote of a field");
            break;
        }

        /* Unquoted bytes, or a separator after any kind of cell. */
        if (c == ',' || eol) {
            if ((rc = end_field(r, &field_start, start)) < 0)
                return rc;
            if (eol) {
                if (c == CSV_EOF)
                    r->eof = true;
                return end_record(r, row, start);
            }
            st = CSV_FIELD_START;
            continue;
        }
        if ((rc = append(r, (unsigned char)c, field_start, start)) < 0)
            return rc;
        st = CSV_UNQUOTED;
    }
}

static bool in_list(const char *const *list, const char *s)
{
    for (; list != NULL && *list != NULL; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

static int header_fail(struct csv_reader *r, char *errstr, int code)
{
    if (errstr != NULL)
        memcpy(errstr, r->errstr, CSV_ERRSTR_SIZE);
    return code;
}

int csv_header_check(struct csv_reader *r, const char *const *required,
                     const char *const *optional, char errstr[CSV_ERRSTR_SIZE])
{
    struct csv_row row;
    char nm[CSV_NAME_SHOWN + 4];
    int rc;

    if (r->header_checked || r->any_record) {
        fail(r, ERR_INVAL, r->line, "header read twice");
        return header_fail(r, errstr, ERR_INVAL);
    }
    r->header_checked = true;
    rc = csv_next(r, &row);
    if (rc == 0)
        fail(r, ERR_INVAL, r->line, "empty file, expected a header");
    if (rc <= 0)
        return header_fail(r, errstr, rc == 0 ? ERR_INVAL : rc);

    for (size_t i = 0; i < row.nfields; i++) {
        const char *name = row.fields[i];

        if (name[0] == '\0') {
            fail(r, ERR_INVAL, row.line, "empty column name (column %zu)", i + 1);
            return header_fail(r, errstr, ERR_INVAL);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(row.fields[j], name) == 0) {
                fail(r, ERR_INVAL, row.line, "duplicate column \"%s\"", shown(name, nm));
                return header_fail(r, errstr, ERR_INVAL);
            }
        }
        if (!in_list(required, name) && !in_list(optional, name)) {
            fail(r, ERR_INVAL, row.line, "unknown column \"%s\"", shown(name, nm));
            return header_fail(r, errstr, ERR_INVAL);
        }
    }
    for (const char *const *q = required; q != NULL && *q != NULL; q++) {
        bool found = false;

        for (size_t i = 0; i < row.nfields && !found; i++)
            found = strcmp(row.fields[i], *q) == 0;
        if (!found) {
            fail(r, ERR_INVAL, row.line, "missing required column \"%s\"", shown(*q, nm));
            return header_fail(r, errstr, ERR_INVAL);
        }
    }

    if ((r->hdr = calloc(row.nfields, sizeof *r->hdr)) == NULL) {
        fail(r, ERR_NOMEM, row.line, "out of memory");
        return header_fail(r, errstr, ERR_NOMEM);
    }
    for (size_t i = 0; i < row.nfields; i++) {
        if ((r->hdr[i] = strdup(row.fields[i])) == NULL) {
            fail(r, ERR_NOMEM, row.line, "out of memory");
            return header_fail(r, errstr, ERR_NOMEM);
        }
        r->nhdr = i + 1;
    }
    return ERR_OK;
}

int csv_col(const struct csv_reader *r, const char *name)
{
    if (r == NULL || name == NULL)
        return -1;
    for (size_t i = 0; i < r->nhdr; i++)
        if (strcmp(r->hdr[i], name) == 0)
            return (int)i;
    return -1;
}

const char *csv_get(const struct csv_reader *r, const struct csv_row *row, const char *name)
{
    int i = csv_col(r, name);

    if (i < 0 || row == NULL || (size_t)i >= row->nfields)
        return NULL;
    return row->fields[i];
}

static bool needs_guard(const char *in)
{
    return in[0] != '\0' && strchr("=+-@\t\r", in[0]) != NULL;
}

int csv_cell_safe(const char *in, char *out, size_t outsz)
{
    size_t n, pre;

    if (out == NULL || outsz == 0)
        return ERR_TOOBIG;
    if (in == NULL)
        in = "";
    n = strlen(in);
    pre = needs_guard(in) ? 1 : 0;
    if (n + pre + 1 > outsz) {
        out[0] = '\0';
        return ERR_TOOBIG;
    }
    if (pre)
        out[0] = '\'';
    memcpy(out + pre, in, n + 1);
    return ERR_OK;
}

int csv_cell_export(const char *in, char *out, size_t outsz)
{
    size_t need = 1, o = 0;
    bool guard, quote;

    if (out == NULL || outsz == 0)
        return ERR_TOOBIG;
    if (in == NULL)
        in = "";
    guard = needs_guard(in);
    quote = strpbrk(in, ",\"\r\n") != NULL;
    need += guard + (quote ? 2 : 0);
    for (const char *p = in; *p != '\0'; p++)
        need += (*p == '"') ? 2 : 1;
    if (need > outsz) {
        out[0] = '\0';
        return ERR_TOOBIG;
    }
    if (quote)
        out[o++] = '"';
    if (guard)
        out[o++] = '\'';
    for (const char *p = in; *p != '\0'; p++) {
        if (*p == '"')
            out[o++] = '"';
        out[o++] = *p;
    }
    if (quote)
        out[o++] = '"';
    out[o] = '\0';
    return ERR_OK;
}
