/* libFuzzer harness for the CSV reader (lib/core/csv.c).
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib \
 *         tests/fuzz/fuzz_csv.c lib/core/csv.c lib/core/err.c
 * The first byte picks whether a header is checked; the rest is the file.
 * Besides memory errors it checks the reader's promises (caps honoured, cells
 * without NUL, errors formatted "name:line: …"), and that every row written
 * back with csv_cell_export reads again as the guarded cells. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void round_trip(const struct csv_row *row)
{
    size_t cap = 3 + 1, used = 0;      /* BOM, NUL */
    char *line, err[CSV_ERRSTR_SIZE];
    struct csv_reader *r;
    struct csv_row back;

    /* a lone empty cell is written as an empty line, which readers skip */
    if (row->nfields == 1 && row->lens[0] == 0)
        return;
    for (size_t i = 0; i < row->nfields; i++)
        cap += 2 * row->lens[i] + 4;
    line = malloc(cap + 1);            /* and the line end */
    check(line != NULL);
    /* a BOM of our own, so a first cell that starts with U+FEFF survives the
     * reader's skipping of one */
    memcpy(line, "\xEF\xBB\xBF", 3);
    used = 3;
    for (size_t i = 0; i < row->nfields; i++) {
        if (i > 0)
            line[used++] = ',';
        check(csv_cell_export(row->fields[i], line + used, cap - used) == ERR_OK);
        used += strlen(line + used);
    }
    line[used++] = '\n';
    r = csv_open_mem("rt", line, used, NULL, err);
    check(r != NULL);
    check(csv_next(r, &back) == 1);
    check(back.nfields == row->nfields);
    for (size_t i = 0; i < row->nfields; i++) {
        char want[1024];

        check(csv_cell_safe(row->fields[i], want, sizeof want) == ERR_OK);
        check(strcmp(back.fields[i], want) == 0);
    }
    check(csv_next(r, &back) == 0);
    csv_close(r);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct csv_limits lim = { .max_field = 256, .max_fields = 16, .max_row = 1024 };
    static const char *const req[] = { "id", NULL };
    static const char *const opt[] = { "name", "email", NULL };
    char err[CSV_ERRSTR_SIZE];
    struct csv_reader *r;
    struct csv_row row;
    int rc, want_header;
    long last_line = 0;

    if (size == 0)
        return 0;
    want_header = data[0] & 1;
    r = csv_open_mem("f.csv", data + 1, size - 1, &lim, err);
    check(r != NULL);
    if (want_header && csv_header_check(r, req, opt, err) != ERR_OK) {
        check(strncmp(err, "f.csv:", 6) == 0);
        csv_close(r);
        return 0;
    }
    while ((rc = csv_next(r, &row)) == 1) {
        check(row.nfields >= 1 && row.nfields <= lim.max_fields);
        check(row.line > last_line);
        last_line = row.line;
        for (size_t i = 0; i < row.nfields; i++) {
            check(row.lens[i] <= lim.max_field);
            check(strlen(row.fields[i]) == row.lens[i]);
        }
        if (want_header)
            check(csv_get(r, &row, "id") != NULL);
        round_trip(&row);
    }
    check(rc == 0 || rc == ERR_INVAL || rc == ERR_TOOBIG);
    if (rc < 0) {
        check(strncmp(csv_errstr(r), "f.csv:", 6) == 0);
        check(csv_next(r, &row) == rc);
    }
    csv_close(r);
    return 0;
}
