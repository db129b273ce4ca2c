/* Unit tests for lib/log: JSON string escaping, and whole lines captured from
 * stderr: one line per call, valid JSON (checked by cJSON) carrying the
 * process identity, and still valid JSON with "truncated":true when the
 * fields do not fit. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include "unit.h"

#include "core/log.h"

/* ---- log_escape ---- */

static void test_escape_quotes_and_backslash(void **state)
{
    char out[64];
    size_t used = 0;
    const char *in = "a\"b\\c";

    assert_int_equal(log_escape(out, sizeof out, in, strlen(in), &used), 7);
    assert_string_equal(out, "a\\\"b\\\\c");
    assert_int_equal(used, strlen(in));
}

static void test_escape_control_characters_as_unicode_escapes(void **state)
{
    char out[64];
    const char in[] = "\n\r\t\x01\x1f\x7f";

    log_escape(out, sizeof out, in, sizeof in - 1, NULL);
    assert_string_equal(out, "\\u000a\\u000d\\u0009\\u0001\\u001f\\u007f");
}

static void test_escape_replaces_bytes_from_0x80_with_question_mark(void **state)
{
    char out[64];
    const char in[] = "caf\xc3\xa9 \xff\x80.";

    assert_int_equal(log_escape(out, sizeof out, in, sizeof in - 1, NULL), 9);
    assert_string_equal(out, "caf?? ??.");
}

static void test_escape_keeps_embedded_nul_as_escape(void **state)
{
    char out[64];

    log_escape(out, sizeof out, "a\0b", 3, NULL);
    assert_string_equal(out, "a\\u0000b");
}

static void test_escape_stops_before_an_escape_that_does_not_fit(void **state)
{
    char out[16];
    size_t used = 99;
    const char *in = "abcd\"ef";

    memset(out, 'X', sizeof out);
    /* "abcd" + `\"` would need 6 bytes plus the NUL: the escape is not split */
    assert_int_equal(log_escape(out, 6, in, strlen(in), &used), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(used, 4);
    assert_int_equal(out[6], 'X');

    assert_int_equal(log_escape(out, 7, in, strlen(in), &used), 6);
    assert_string_equal(out, "abcd\\\"");
    assert_int_equal(used, 5);

    /* a six-byte \u00XX is not split either */
    assert_int_equal(log_escape(out, 8, "ab\x01", 3, &used), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(used, 2);
}

static void test_escape_into_zero_size_writes_nothing(void **state)
{
    char out[4] = "XYZ";
    size_t used = 99;

    assert_int_equal(log_escape(out, 0, "abc", 3, &used), 0);
    assert_int_equal(used, 0);
    assert_string_equal(out, "XYZ");
}

/* ---- whole lines on stderr ---- */

struct capture {
    FILE *f;
    int saved;
};

static void capture_start(struct capture *c)
{
    c->f = tmpfile();
    assert_non_null(c->f);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(fileno(c->f), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr; returns owned: everything written meanwhile. */
static char *capture_end(struct capture *c, size_t *len)
{
    long n;
    char *s;

    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    n = ftell(c->f); /* the fd's offset, shared with the dup'd stderr */
    assert_true(n >= 0);
    s = malloc((size_t)n + 1);
    assert_non_null(s);
    rewind(c->f);
    assert_int_equal(fread(s, 1, (size_t)n, c->f), (size_t)n);
    s[n] = '\0';
    fclose(c->f);
    *len = (size_t)n;
    return s;
}

/* Checks that out is exactly one newline-terminated line and parses it. */
static cJSON *one_json_line(const char *out, size_t len)
{
    cJSON *j;

    if (len == 0 || out[len - 1] != '\n' || memchr(out, '\n', len - 1) != NULL)
        fail_msg("expected exactly one line, got %zu bytes: %.200s", len, out);
    j = cJSON_ParseWithLength(out, len);
    if (j == NULL)
        fail_msg("line is not valid JSON: %.300s ... %s", out,
                 len > 120 ? out + len - 120 : out);
    return j;
}

static const char *str_field(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int truncated(const cJSON *j)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated"));
}

static void test_line_is_json_with_identity_and_fields(void **state)
{
    struct capture c;
    struct log_line l;
    size_t len;
    char *out;
    cJSON *j;

    log_setup(LOG_DEBUG, "worker", 3);
    assert_int_equal(log_slot(), 3);
    capture_start(&c);
    log_begin(&l, LOG_WARN, "db_slow");
    log_str(&l, "q", "say \"hi\"\\\n\x01");
    log_strn(&l, "part", "abcdef", 3);
    log_int(&l, "n", -42);
    log_bool(&l, "ok", true);
    log_json(&l, "obj", "{\"a\":[1,2]}");
    log_str(&l, "none", NULL);
    log_end(&l);
    out = capture_end(&c, &len);

    j = one_json_line(out, len);
    assert_string_equal(str_field(j, "event"), "db_slow");
    assert_string_equal(str_field(j, "level"), "warn");
    assert_string_equal(str_field(j, "role"), "worker");
    assert_non_null(str_field(j, "ts"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "slot")->valuedouble, 3);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "pid")->valuedouble, getpid());
    assert_string_equal(str_field(j, "q"), "say \"hi\"\\\n\x01");
    assert_string_equal(str_field(j, "part"), "abc");
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "n")->valuedouble == -42); /* a double: not through uintmax_t */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")));
    assert_true(cJSON_IsArray(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "obj"), "a")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "none")));
    assert_false(truncated(j));
    cJSON_Delete(j);
    free(out);
}

/* Deferred: info lines wait for a flush (or a warn line, which comes after
 * them), many lines go out in order, and log_defer(false) leaves none held. */
static void test_deferred_lines_wait_and_keep_their_order(void **state)
{
    struct capture c;
    size_t len;
    char *out;

    (void)state;
    log_setup(LOG_INFO, "worker", 1);
    capture_start(&c);
    log_defer(true);
    log_msg(LOG_INFO, "access", "one");
    log_msg(LOG_INFO, "access", "two");
    fflush(c.f);
    assert_int_equal(lseek(STDERR_FILENO, 0, SEEK_CUR), 0); /* held, none written */
    log_msg(LOG_WARN, "slow", "three");
    log_msg(LOG_INFO, "access", "four");
    for (int i = 0; i < 40; i++) /* past PIPE_BUF: written as the buffer fills */
        log_msg(LOG_INFO, "access", "bulk %d", i);
    log_defer(false);
    out = capture_end(&c, &len);
    const char *one = strstr(out, "\"one\""), *two = strstr(out, "\"two\""),
               *three = strstr(out, "\"three\""), *four = strstr(out, "\"four\"");
    assert_non_null(one);
    assert_true(one < two && two < three && three < four);
    assert_non_null(strstr(out, "\"bulk 39\""));
    size_t lines = 0;
    for (char *line = out, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1, lines++) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(nl - line + 1));
        assert_non_null(j);
        cJSON_Delete(j);
    }
    assert_int_equal(lines, 44);
    free(out);
    capture_start(&c);
    log_msg(LOG_INFO, "access", "after");
    fflush(c.f);
    assert_true(lseek(STDERR_FILENO, 0, SEEK_CUR) > 0); /* not deferred any more */
    free(capture_end(&c, &len));
}

/* A reader that stops reading (a pipe nobody drains, a hung journald) costs
 * lines, never a wait: with stderr a full pipe, logging returns at once; once
 * the reader drains it, the next line gets through after one saying how many
 * were lost. */
static void test_a_stalled_reader_costs_lines_not_a_wait(void **state)
{
    int pfd[2], saved;
    char buf[65536];
    ssize_t n;

    (void)state;
    log_setup(LOG_INFO, "worker", 2);
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(fcntl(pfd[1], F_SETFL, O_NONBLOCK), 0);
    while (write(pfd[1], buf, sizeof buf) > 0)
        ; /* full: a blocking write now would wait for ever */
    assert_int_equal(fcntl(pfd[1], F_SETFL, 0), 0);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(pfd[1], STDERR_FILENO), STDERR_FILENO);
    log_defer(true);
    for (int i = 0; i < 100; i++)
        log_msg(LOG_INFO, "access", "lost %d", i);
    log_flush();
    log_msg(LOG_ERROR, "boom", "lost too");
    log_defer(false);
    /* the reader catches up */
    assert_int_equal(fcntl(pfd[0], F_SETFL, O_NONBLOCK), 0);
    while (read(pfd[0], buf, sizeof buf) > 0)
        ;
    log_msg(LOG_WARN, "back", "written");
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    close(pfd[1]);
    n = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    cJSON *back = cJSON_ParseWithLength(buf, (size_t)(nl - buf + 1));
    cJSON *note = cJSON_Parse(nl + 1);
    assert_non_null(back);
    assert_non_null(note);
    assert_string_equal(str_field(back, "event"), "back");
    assert_string_equal(str_field(note, "event"), "log_dropped");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(note, "lines")->valuedouble, 101);
    cJSON_Delete(back);
    cJSON_Delete(note);
}

/* A device that refuses every write (/dev/full: ENOSPC) costs the lines only. */
static void test_a_full_device_costs_lines_only(void **state)
{
    int fd = open("/dev/full", O_WRONLY), saved;
    struct capture c;
    size_t len;
    char *out;

    (void)state;
    assert_true(fd >= 0);
    log_setup(LOG_INFO, "worker", 2);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    log_msg(LOG_INFO, "access", "lost");
    log_msg(LOG_ERROR, "boom", "lost");
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    capture_start(&c);
    log_msg(LOG_INFO, "access", "written");
    out = capture_end(&c, &len);
    assert_non_null(strstr(out, "\"written\""));
    assert_non_null(strstr(out, "\"log_dropped\""));
    assert_non_null(strstr(out, "\"lines\":2"));
    free(out);
}

/* The pid a line carries is kept per process, and a fork's child says its own. */
static void test_a_forked_child_logs_its_own_pid(void **state)
{
    struct capture c;
    size_t len;
    char *out;
    int status;

    (void)state;
    log_setup(LOG_INFO, "master", -1);
    capture_start(&c);
    log_msg(LOG_INFO, "before", "the parent's pid is kept now");
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        log_msg(LOG_INFO, "child", "x");
        _exit(0);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    out = capture_end(&c, &len);
    char want[64];
    snprintf(want, sizeof want, "\"event\":\"child\",\"role\":\"master\",\"pid\":%d", (int)child);
    if (strstr(out, want) == NULL)
        fail_msg("the child's line does not carry its pid %d: %s", (int)child, out);
    free(out);
}

static void test_line_without_slot_omits_it(void **state)
{
    struct capture c;
    size_t len;
    char *out;
    cJSON *j;

    log_setup(LOG_INFO, "master", -1);
    capture_start(&c);
    log_msg(LOG_ERROR, "boom", "code %d: %s", 7, "bad\tthing");
    out = capture_end(&c, &len);
    j = one_json_line(out, len);
    assert_string_equal(str_field(j, "role"), "master");
    assert_string_equal(str_field(j, "level"), "error");
    assert_string_equal(str_field(j, "msg"), "code 7: bad\tthing");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "slot"));
    cJSON_Delete(j);
    free(out);
}

static void test_below_level_writes_nothing(void **state)
{
    struct capture c;
    struct log_line l;
    size_t len;
    char *out;

    log_setup(LOG_WARN, "worker", 1);
    capture_start(&c);
    log_msg(LOG_INFO, "quiet", "not shown");
    log_begin(&l, LOG_DEBUG, "quiet2");
    log_str(&l, "k", "v");
    log_end(&l);
    out = capture_end(&c, &len);
    assert_int_equal(len, 0);
    free(out);

    capture_start(&c);
    log_msg(LOG_WARN, "loud", "shown");
    out = capture_end(&c, &len);
    cJSON_Delete(one_json_line(out, len));
    free(out);
}

static void test_huge_value_is_cut_and_line_stays_valid_json(void **state)
{
    enum { N = 20000 };
    struct capture c;
    struct log_line l;
    char *big = malloc(N + 1), *out;
    size_t len;
    cJSON *j;

    assert_non_null(big);
    memset(big, 'v', N);
    big[N] = '\0';
    big[0] = '"'; /* escapes count against the room too */
    log_setup(LOG_INFO, "worker", 0);
    capture_start(&c);
    log_begin(&l, LOG_INFO, "big");
    log_str(&l, "body", big);
    log_int(&l, "after", 1);
    log_end(&l);
    out = capture_end(&c, &len);

    assert_true(len < 4096);
    assert_true(len <= LOG_LINE_MAX);
    j = one_json_line(out, len);
    assert_true(truncated(j));
    const char *body = str_field(j, "body");
    assert_non_null(body);
    assert_true(strlen(body) > 1000);
    assert_int_equal(body[0], '"');
    assert_int_equal(body[1], 'v');
    assert_string_equal(str_field(j, "event"), "big");
    cJSON_Delete(j);
    free(out);
    free(big);
}

static void test_oversized_json_field_is_dropped_and_line_stays_valid(void **state)
{
    enum { N = 6000 };
    struct capture c;
    struct log_line l;
    char *arr = malloc(N + 1), *out;
    size_t len;
    cJSON *j;

    assert_non_null(arr);
    arr[0] = '[';
    for (int i = 1; i < N - 1; i += 2) {
        arr[i] = '1';
        arr[i + 1] = ',';
    }
    arr[N - 2] = '1';
    arr[N - 1] = ']';
    arr[N] = '\0';
    log_setup(LOG_INFO, "worker", 0);
    capture_start(&c);
    log_begin(&l, LOG_INFO, "blob");
    log_json(&l, "items", arr);
    log_end(&l);
    out = capture_end(&c, &len);

    assert_true(len <= LOG_LINE_MAX);
    j = one_json_line(out, len);
    assert_true(truncated(j));
    assert_string_equal(str_field(j, "event"), "blob");
    cJSON_Delete(j);
    free(out);
    free(arr);
}

/* Fills a line with many fields from every offset, so that for some padding a
 * key fits and its value does not: the line must stay valid JSON anyway. */
static void test_line_full_of_fields_stays_valid_json_at_every_offset(void **state)
{
    char pad[64];

    log_setup(LOG_INFO, "worker", 12);
    for (size_t p = 0; p < 40; p++) {
        struct capture c;
        struct log_line l;
        size_t len;
        char *out;
        cJSON *j;

        memset(pad, 'p', p);
        pad[p] = '\0';
        capture_start(&c);
        log_begin(&l, LOG_INFO, "fill");
        log_str(&l, "pad", pad);
        for (int i = 0; i < 400; i++) {
            char key[32];
            snprintf(key, sizeof key, "field_%03d", i);
            if (i % 3 == 0)
                log_int(&l, key, 1234567890123LL);
            else if (i % 3 == 1)
                log_bool(&l, key, false);
            else
                log_str(&l, key, "value");
        }
        log_end(&l);
        out = capture_end(&c, &len);
        assert_true(len <= LOG_LINE_MAX);
        j = one_json_line(out, len);
        assert_true(truncated(j));
        cJSON_Delete(j);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_quotes_and_backslash),
        cmocka_unit_test(test_escape_control_characters_as_unicode_escapes),
        cmocka_unit_test(test_escape_replaces_bytes_from_0x80_with_question_mark),
        cmocka_unit_test(test_escape_keeps_embedded_nul_as_escape),
        cmocka_unit_test(test_escape_stops_before_an_escape_that_does_not_fit),
        cmocka_unit_test(test_escape_into_zero_size_writes_nothing),
        cmocka_unit_test(test_line_is_json_with_identity_and_fields),
        cmocka_unit_test(test_line_without_slot_omits_it),
        cmocka_unit_test(test_below_level_writes_nothing),
        cmocka_unit_test(test_huge_value_is_cut_and_line_stays_valid_json),
        cmocka_unit_test(test_oversized_json_field_is_dropped_and_line_stays_valid),
        cmocka_unit_test(test_line_full_of_fields_stays_valid_json_at_every_offset),
        cmocka_unit_test(test_deferred_lines_wait_and_keep_their_order),
        cmocka_unit_test(test_a_forked_child_logs_its_own_pid),
        cmocka_unit_test(test_a_stalled_reader_costs_lines_not_a_wait),
        cmocka_unit_test(test_a_full_device_costs_lines_only),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
