/* Unit tests for lib/csv: RFC 4180 records, every refusal with its file:line,
 * the caps, the header check, chunk boundaries of the file reader, and the
 * export guard. Memory inputs are heap copies of exactly their length, so ASan
 * catches a read past the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "core/csv.h"

struct mem {
    struct csv_reader *r;
    char *copy;
};

static struct mem open_lim(const char *s, size_t n, const struct csv_limits *lim)
{
    struct mem m;
    char err[CSV_ERRSTR_SIZE];

    m.copy = malloc(n ? n : 1);
    assert_non_null(m.copy);
    memcpy(m.copy, s, n);
    m.r = csv_open_mem("t.csv", m.copy, n, lim, err);
    assert_non_null(m.r);
    return m;
}

static struct mem open_str(const char *s)
{
    return open_lim(s, strlen(s), NULL);
}

static void close_mem(struct mem *m)
{
    csv_close(m->r);
    free(m->copy);
}

static void assert_row(const struct csv_row *row, long line, size_t n, ...)
{
    va_list ap;

    assert_int_equal(row->line, line);
    assert_int_equal(row->nfields, n);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        const char *want = va_arg(ap, const char *);

        assert_string_equal(row->fields[i], want);
        assert_int_equal(row->lens[i], strlen(want));
    }
    va_end(ap);
}

/* Reads records until the first error and returns it; the records must all
 * succeed before that. */
static int first_error(const char *s, const struct csv_limits *lim, char *errstr)
{
    struct mem m = open_lim(s, strlen(s), lim);
    struct csv_row row;
    int rc;

    while ((rc = csv_next(m.r, &row)) == 1)
        ;
    snprintf(errstr, CSV_ERRSTR_SIZE, "%s", csv_errstr(m.r));
    close_mem(&m);
    return rc;
}

static void test_plain_records(void **state)
{
    struct mem m = open_str("id,name,n\n1,alice,10\n2,bob,\n");
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 1, 3, "id", "name", "n");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 3, "1", "alice", "10");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 3, 3, "2", "bob", "");
    assert_int_equal(csv_next(m.r, &row), 0);
    assert_int_equal(csv_next(m.r, &row), 0);
    assert_string_equal(csv_errstr(m.r), "");
    close_mem(&m);
}

static void test_crlf_lf_and_no_final_newline(void **state)
{
    struct mem m = open_str("a,b\r\n1,2\n3,4\r\n5,6");
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 1, 2, "a", "b");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 2, "1", "2");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 3, 2, "3", "4");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 4, 2, "5", "6");
    assert_int_equal(csv_next(m.r, &row), 0);
    close_mem(&m);
}

static void test_empty_cells_and_trailing_comma(void **state)
{
    struct mem m = open_str("a,b,c\n,,\n\"\",x,\"\"\n");
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 3, "", "", "");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 3, 3, "", "x", "");
    assert_int_equal(csv_next(m.r, &row), 0);
    close_mem(&m);
}

static void test_quoted_fields(void **state)
{
    struct mem m = open_str(
        "k,v\n"
        "\"a,b\",\"say \"\"hi\"\"\"\n"
        "\"line1\nline2\r\nline3\",\"\"\"\"\n"
        "after,\" spaced \"\n");
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 2, "a,b", "say \"hi\"");
    assert_int_equal(csv_next(m.r, &row), 1);
    /* line breaks inside quotes are kept as written; the record starts on 3 */
    assert_row(&row, 3, 2, "line1\nline2\r\nline3", "\"");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 6, 2, "after", " spaced ");
    assert_int_equal(csv_next(m.r, &row), 0);
    close_mem(&m);
}

static void test_blank_lines_are_skipped(void **state)
{
    struct mem m = open_str("\n\r\na\n\n\nb\r\n\r\n");
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 3, 1, "a");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 6, 1, "b");
    assert_int_equal(csv_next(m.r, &row), 0);
    close_mem(&m);
    m = open_str("");
    assert_int_equal(csv_next(m.r, &row), 0);
    close_mem(&m);
}

static void test_bom_is_skipped(void **state)
{
    struct mem m = open_str("\xEF\xBB\xBFid,name\n1,x\n");
    static const char *const req[] = { "id", "name", NULL };
    struct csv_row row;

    assert_int_equal(csv_header_check(m.r, req, NULL, NULL), ERR_OK);
    assert_int_equal(csv_col(m.r, "id"), 0);
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 2, "1", "x");
    close_mem(&m);
}

static void test_unterminated_quote(void **state)
{
    char err[CSV_ERRSTR_SIZE];

    assert_int_equal(first_error("a,b\n1,\"open\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: unterminated quoted field");
    /* reported on the line where the record started, not at the end */
    assert_int_equal(first_error("a,b\n1,2\n3,\"x\ny\nz\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:3: unterminated quoted field");
    assert_int_equal(first_error("\"", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: unterminated quoted field");
}

static void test_stray_quote_in_unquoted_field(void **state)
{
    char err[CSV_ERRSTR_SIZE];

    assert_int_equal(first_error("a,b\nx,ab\"c\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: quote inside an unquoted field");
    assert_int_equal(first_error("a,b\nx,b\"\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: quote inside an unquoted field");
}

static void test_text_after_closing_quote(void **state)
{
    char err[CSV_ERRSTR_SIZE];

    assert_int_equal(first_error("a,b\n\"x\"y,z\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: text after the closing quote of a field");
    assert_int_equal(first_error("a,b\n\"x\" ,z\n", NULL, err), ERR_INVAL);
    /* inside a record spanning lines 2-4, the error names line 2 */
    assert_int_equal(first_error("a,b\nq,\"1\n2\n3\"x\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: text after the closing quote of a field");
}

static void test_bare_cr_is_refused(void **state)
{
    char err[CSV_ERRSTR_SIZE];

    assert_int_equal(first_error("a,b\nx\ry,z\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: carriage return not followed by a line feed");
    assert_int_equal(first_error("a,b\r", NULL, err), ERR_INVAL);
    /* inside quotes it is data */
    {
        struct mem m = open_str("\"x\ry\"\n");
        struct csv_row row;

        assert_int_equal(csv_next(m.r, &row), 1);
        assert_row(&row, 1, 1, "x\ry");
        close_mem(&m);
    }
}

static void test_field_count_must_match_header(void **state)
{
    char err[CSV_ERRSTR_SIZE];

    assert_int_equal(first_error("a,b,c\n1,2,3\n1,2\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:3: 2 fields, but the header has 3");
    assert_int_equal(first_error("a,b,c\n1,2,3,4\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: 4 fields, but the header has 3");
    assert_int_equal(first_error("a,b\n1,2,\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:2: 3 fields, but the header has 2");
    /* the line counts the lines of a multi-line record before it */
    assert_int_equal(first_error("a,b\n\"1\n\n2\",x\n\"p\r\nq\",y\nonly\n", NULL, err), ERR_INVAL);
    assert_string_equal(err, "t.csv:7: 1 fields, but the header has 2");
}

static void test_field_cap(void **state)
{
    struct csv_limits lim = { .max_field = 4 };
    char err[CSV_ERRSTR_SIZE];
    struct mem m = open_lim("abcd,\"wxyz\"\n\"a\"\"b\",x\n", 21, &lim);
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 1, 2, "abcd", "wxyz");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 2, "a\"b", "x");
    close_mem(&m);
    assert_int_equal(first_error("a,b\nabcde,x\n", &lim, err), ERR_TOOBIG);
    assert_string_equal(err, "t.csv:2: field 1: longer than 4 bytes");
    assert_int_equal(first_error("a,b\nx,\"ab\ncd\"\n", &lim, err), ERR_TOOBIG);
    assert_string_equal(err, "t.csv:2: field 2: longer than 4 bytes");
}

static void test_field_count_cap(void **state)
{
    struct csv_limits lim = { .max_fields = 3 };
    char err[CSV_ERRSTR_SIZE];
    struct mem m = open_lim("a,b,c\n", 6, &lim);
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 1, 3, "a", "b", "c");
    close_mem(&m);
    assert_int_equal(first_error("a,b,c,d\n", &lim, err), ERR_TOOBIG);
    assert_string_equal(err, "t.csv:1: more than 3 fields");
    assert_int_equal(first_error("a,b,c,\n", &lim, err), ERR_TOOBIG);
    /* a long run of commas stops at the cap, whatever the header said */
    assert_int_equal(first_error(",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,\n", &lim, err), ERR_TOOBIG);
}

static void test_row_cap(void **state)
{
    struct csv_limits lim = { .max_row = 8 };   /* "abc,def\n" is exactly 8 */
    char err[CSV_ERRSTR_SIZE];
    struct mem m = open_lim("abc,def\nab,\"d\"\r\n", 16, &lim);
    struct csv_row row;
    size_t big = 10 * 1024 * 1024;
    char *huge;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 1, 2, "abc", "def");
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_row(&row, 2, 2, "ab", "d");
    close_mem(&m);
    assert_int_equal(first_error("a,b\nabcd,efg\n", &lim, err), ERR_TOOBIG);
    assert_string_equal(err, "t.csv:2: record longer than 8 bytes");
    /* a multi-line record counts all of its lines; reported where it starts */
    assert_int_equal(first_error("a,b\n\"1\n2\n3\n4\n5\",x\n", &lim, err), ERR_TOOBIG);
    assert_string_equal(err, "t.csv:2: record longer than 8 bytes");
    /* ten megabytes without a line end: refused after max_row bytes */
    huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'x', big);
    huge[big] = '\0';
    lim.max_row = 1000;
    lim.max_field = 100000;
    assert_int_equal(first_error(huge, &lim, err), ERR_TOOBIG);
    assert_string_equal(err, "t.csv:1: record longer than 1000 bytes");
    free(huge);
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "a,b\nx,\xc0\x80\n",                /* overlong */
        "a,b\nx,\xe0\x80\x80\n",
        "a,b\nx,\x80\n",                    /* lone continuation */
        "a,b\nx,\xed\xa0\x80\n",            /* surrogate */
        "a,b\nx,\xf4\x90\x80\x80\n",        /* past U+10FFFF */
        "a,b\nx,\xff\n",
        "a,b\nx,\xc3\n",                    /* cut short by the line end */
        "a,b\nx,\"\xe2\x82\"\n",            /* cut short by the quote */
        "a,b\nx,\xe2\x82",                  /* cut short by the end of input */
    };
    char err[CSV_ERRSTR_SIZE];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = first_error(bad[i], NULL, err);

        if (rc != ERR_INVAL || strcmp(err, "t.csv:2: field 2: invalid UTF-8") != 0)
            fail_msg("case %zu: %d %s", i, rc, err);
    }
    {
        struct mem m = open_str("name\n\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"\n");
        struct csv_row row;

        assert_int_equal(csv_next(m.r, &row), 1);
        assert_int_equal(csv_next(m.r, &row), 1);
        assert_row(&row, 2, 1, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
        close_mem(&m);
    }
}

static void test_nul_byte_is_refused(void **state)
{
    struct mem m = open_lim("a,b\nx,y\0z\n", 10, NULL);
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_int_equal(csv_next(m.r, &row), ERR_INVAL);
    assert_string_equal(csv_errstr(m.r), "t.csv:2: field 2: NUL byte");
    close_mem(&m);
}

static void test_errors_are_sticky(void **state)
{
    struct mem m = open_str("a,b\n1\n2,3\n");
    struct csv_row row;

    assert_int_equal(csv_next(m.r, &row), 1);
    assert_int_equal(csv_next(m.r, &row), ERR_INVAL);
    assert_int_equal(csv_next(m.r, &row), ERR_INVAL);
    assert_string_equal(csv_errstr(m.r), "t.csv:2: 1 fields, but the header has 2");
    close_mem(&m);
}

static const char *const users_req[] = { "email", "role", NULL };
static const char *const users_opt[] = { "name", "org", NULL };

static int header_error(const char *s, char *err)
{
    struct mem m = open_str(s);
    char err2[CSV_ERRSTR_SIZE];
    int rc = csv_header_check(m.r, users_req, users_opt, err);

    snprintf(err2, sizeof err2, "%s", csv_errstr(m.r));
    if (rc != ERR_OK)
        assert_string_equal(err, err2);
    close_mem(&m);
    return rc;
}

static void test_header_check_and_columns(void **state)
{
    struct mem m = open_str("role,email,name\nadmin,a@example.com,\nviewer,b@example.com,Bob\n");
    char err[CSV_ERRSTR_SIZE];
    struct csv_row row;

    assert_int_equal(csv_header_check(m.r, users_req, users_opt, err), ERR_OK);
    assert_int_equal(csv_col(m.r, "role"), 0);
    assert_int_equal(csv_col(m.r, "email"), 1);
    assert_int_equal(csv_col(m.r, "name"), 2);
    assert_int_equal(csv_col(m.r, "org"), -1);
    assert_int_equal(csv_col(m.r, "Email"), -1);
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_int_equal(row.line, 2);
    assert_string_equal(csv_get(m.r, &row, "email"), "a@example.com");
    assert_string_equal(csv_get(m.r, &row, "name"), "");
    assert_null(csv_get(m.r, &row, "org"));
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_string_equal(csv_get(m.r, &row, "name"), "Bob");
    assert_string_equal(csv_get(m.r, &row, "role"), "viewer");
    assert_int_equal(csv_next(m.r, &row), 0);
    /* once only */
    assert_int_equal(csv_header_check(m.r, users_req, users_opt, err), ERR_INVAL);
    close_mem(&m);
}

static void test_header_check_refusals(void **state)
{
    char err[CSV_ERRSTR_SIZE];

    assert_int_equal(header_error("email,role,emial\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: unknown column \"emial\"");
    assert_int_equal(header_error("email,name\nx,y\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: missing required column \"role\"");
    assert_int_equal(header_error("email,role,email\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: duplicate column \"email\"");
    assert_int_equal(header_error("email,,role\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: empty column name (column 2)");
    assert_int_equal(header_error("", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: empty file, expected a header");
    assert_int_equal(header_error("\n\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:3: empty file, expected a header");
    assert_int_equal(header_error("email,Role\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: unknown column \"Role\"");
    /* a hostile name cannot break the log line */
    assert_int_equal(header_error("email,role,\"x\ny\x1b[31m\"\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: unknown column \"x?y?[31m\"");
    assert_int_equal(header_error("email,role,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: unknown column \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
    /* syntax errors in the header come through */
    assert_int_equal(header_error("email,\"role\n", err), ERR_INVAL);
    assert_string_equal(err, "t.csv:1: unterminated quoted field");
    /* and the header fixes the width of the rows */
    {
        struct mem m = open_str("email,role\na,b,c\n");
        struct csv_row row;

        assert_int_equal(csv_header_check(m.r, users_req, NULL, NULL), ERR_OK);
        assert_int_equal(csv_next(m.r, &row), ERR_INVAL);
        assert_string_equal(csv_errstr(m.r), "t.csv:2: 3 fields, but the header has 2");
        close_mem(&m);
    }
    /* field errors name the column once the header is known */
    {
        struct mem m = open_str("email,role\na,\xff\n");
        struct csv_row row;

        assert_int_equal(csv_header_check(m.r, users_req, NULL, NULL), ERR_OK);
        assert_int_equal(csv_next(m.r, &row), ERR_INVAL);
        assert_string_equal(csv_errstr(m.r), "t.csv:2: field 2 (role): invalid UTF-8");
        close_mem(&m);
    }
}

/* Returns owned (free; the caller unlinks the file): a temp file's path. */
static char *write_temp(const char *data, size_t n)
{
    char path[UNIT_PATH], *copy = strdup(unit_tmpfile(path, "csv", data, n));

    assert_non_null(copy);
    return copy;
}

#define DOTS "................................................................"

/* One record: id,"<pad dots>€\r\n|"""\r\n, whose cell is <pad dots>€\r\n|". */
static size_t put_record(char *data, size_t cap, size_t n, int id, int pad)
{
    return (size_t)snprintf(data + n, cap - n, "%d,\"%.*s\xe2\x82\xac\r\n|\"\"\"\r\n",
                            id, pad, DOTS);
}

static void test_file_reader_across_chunks(void **state)
{
    /* The file reader works in 64 KiB chunks. Records are placed so that at
     * successive chunk boundaries a different pair of bytes straddles it: the
     * middle of a UTF-8 sequence, a quoted CRLF, an escaped "", the closing
     * quote and the CR after it, and the record's own CRLF. The offsets are
     * counted back from the boundary to the first byte of the euro sign. */
    static const size_t back[] = { 1, 2, 4, 7, 9, 10 };
    enum { NB = sizeof back / sizeof back[0], MAXREC = 20000 };
    const size_t chunk = 64 * 1024;
    size_t cap = chunk * (NB + 1), n = 0, k = 0;
    char *data = malloc(cap);
    int *pads = calloc(MAXREC, sizeof *pads);
    char err[CSV_ERRSTR_SIZE];
    struct csv_reader *r;
    struct csv_row row;
    int nrec = 0, rows = 0, rc;
    long line;
    char *path;

    assert_non_null(data);
    assert_non_null(pads);
    n += (size_t)snprintf(data + n, cap - n, "id,text\r\n");
    while (k < NB) {
        size_t boundary = chunk * (k + 1);
        char idbuf[16];
        size_t lead = (size_t)snprintf(idbuf, sizeof idbuf, "%d", nrec) + 2;
        size_t gap = boundary - n;
        int pad = 30;

        assert_true(nrec < MAXREC);
        if (gap >= lead + back[k] && gap - lead - back[k] <= 60) {
            pad = (int)(gap - lead - back[k]);
            k++;
        }
        pads[nrec] = pad;
        n += put_record(data, cap, n, nrec, pad);
        nrec++;
    }
    for (size_t i = 0; i < NB; i++)
        assert_int_equal((unsigned char)data[chunk * (i + 1) - back[i]], 0xe2);
    for (int i = 0; i < 5; i++, nrec++) {
        pads[nrec] = 3;
        n += put_record(data, cap, n, nrec, 3);
    }

    path = write_temp(data, n);
    r = csv_open_file(path, NULL, err);
    assert_non_null(r);
    assert_int_equal(csv_next(r, &row), 1);
    assert_row(&row, 1, 2, "id", "text");
    line = 2;
    while ((rc = csv_next(r, &row)) == 1) {
        char want[128];

        snprintf(want, sizeof want, "%.*s\xe2\x82\xac\r\n|\"", pads[rows], DOTS);
        assert_int_equal(row.line, line);
        assert_int_equal(atol(row.fields[0]), rows);
        assert_string_equal(row.fields[1], want);
        rows++;
        line += 2;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(rows, nrec);
    csv_close(r);
    unlink(path);
    free(path);
    free(pads);
    free(data);
}

static void test_file_errors(void **state)
{
    char err[CSV_ERRSTR_SIZE];
    struct csv_reader *r;
    struct csv_row row;
    char *path;

    assert_null(csv_open_file("/nonexistent/seed.csv", NULL, err));
    assert_string_equal(err, "/nonexistent/seed.csv: No such file or directory");
    assert_null(csv_open_file("/tmp", NULL, err));
    assert_string_equal(err, "/tmp: read error: Is a directory");
    csv_close(NULL);

    path = write_temp("a,b\n1,2\n\"x\n3\n", 13);
    r = csv_open_file(path, NULL, err);
    assert_non_null(r);
    assert_int_equal(csv_next(r, &row), 1);
    assert_int_equal(csv_next(r, &row), 1);
    assert_int_equal(csv_next(r, &row), ERR_INVAL);
    snprintf(err, sizeof err, "%s:3: unterminated quoted field", path);
    assert_string_equal(csv_errstr(r), err);
    csv_close(r);
    unlink(path);
    free(path);

    path = write_temp("", 0);
    r = csv_open_file(path, NULL, err);
    assert_non_null(r);
    assert_int_equal(csv_next(r, &row), 0);
    csv_close(r);
    unlink(path);
    free(path);
}

static void test_cell_safe(void **state)
{
    static const char *const guarded[] = {
        "=SUM(A1:A9)", "+1", "-1", "@cmd", "\tx", "\rx", "=", "-",
        "=HYPERLINK(\"http://evil\",\"x\")",
    };
    char out[64];

    for (size_t i = 0; i < sizeof guarded / sizeof guarded[0]; i++) {
        assert_int_equal(csv_cell_safe(guarded[i], out, sizeof out), ERR_OK);
        assert_int_equal(out[0], '\'');
        assert_string_equal(out + 1, guarded[i]);
    }
    assert_int_equal(csv_cell_safe("plain", out, sizeof out), ERR_OK);
    assert_string_equal(out, "plain");
    assert_int_equal(csv_cell_safe("a=b", out, sizeof out), ERR_OK);
    assert_string_equal(out, "a=b");
    assert_int_equal(csv_cell_safe(" =x", out, sizeof out), ERR_OK);
    assert_string_equal(out, " =x");
    assert_int_equal(csv_cell_safe("", out, sizeof out), ERR_OK);
    assert_string_equal(out, "");
    /* exact fit, and one short */
    assert_int_equal(csv_cell_safe("=ab", out, 5), ERR_OK);
    assert_string_equal(out, "'=ab");
    assert_int_equal(csv_cell_safe("=ab", out, 4), ERR_TOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(csv_cell_safe("abc", out, 4), ERR_OK);
    assert_int_equal(csv_cell_safe("abc", out, 3), ERR_TOOBIG);
    assert_int_equal(csv_cell_safe("abc", out, 0), ERR_TOOBIG);
}

static void test_cell_export_round_trip(void **state)
{
    static const char *const cells[] = {
        "plain", "=1+2", "a,b", "say \"hi\"", "two\nlines", "-5", "", "@x,\"y\"", "\r\n",
    };
    enum { N = sizeof cells / sizeof cells[0] };
    char line[512] = "";
    char out[64];
    struct mem m;
    struct csv_row row;

    assert_int_equal(csv_cell_export("a,b", out, sizeof out), ERR_OK);
    assert_string_equal(out, "\"a,b\"");
    assert_int_equal(csv_cell_export("=x\"", out, sizeof out), ERR_OK);
    assert_string_equal(out, "\"'=x\"\"\"");
    assert_int_equal(csv_cell_export("ab\"", out, 6), ERR_TOOBIG);
    assert_int_equal(csv_cell_export("ab\"", out, 7), ERR_OK);
    assert_string_equal(out, "\"ab\"\"\"");

    for (size_t i = 0; i < N; i++) {
        assert_int_equal(csv_cell_export(cells[i], out, sizeof out), ERR_OK);
        size_t used = strlen(line);
        snprintf(line + used, sizeof line - used, "%s%s", i > 0 ? "," : "", out);
    }
    snprintf(line + strlen(line), sizeof line - strlen(line), "\r\n");
    m = open_str(line);
    assert_int_equal(csv_next(m.r, &row), 1);
    assert_int_equal(row.nfields, N);
    for (size_t i = 0; i < N; i++) {
        char want[64];

        assert_int_equal(csv_cell_safe(cells[i], want, sizeof want), ERR_OK);
        assert_string_equal(row.fields[i], want);
    }
    assert_int_equal(csv_next(m.r, &row), 0);
    close_mem(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_records),
        cmocka_unit_test(test_crlf_lf_and_no_final_newline),
        cmocka_unit_test(test_empty_cells_and_trailing_comma),
        cmocka_unit_test(test_quoted_fields),
        cmocka_unit_test(test_blank_lines_are_skipped),
        cmocka_unit_test(test_bom_is_skipped),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_stray_quote_in_unquoted_field),
        cmocka_unit_test(test_text_after_closing_quote),
        cmocka_unit_test(test_bare_cr_is_refused),
        cmocka_unit_test(test_field_count_must_match_header),
        cmocka_unit_test(test_field_cap),
        cmocka_unit_test(test_field_count_cap),
        cmocka_unit_test(test_row_cap),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul_byte_is_refused),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_header_check_and_columns),
        cmocka_unit_test(test_header_check_refusals),
        cmocka_unit_test(test_file_reader_across_chunks),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_cell_safe),
        cmocka_unit_test(test_cell_export_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
