/* Unit tests for lib/scoreboard: the JSON and the table that `tessera status`
 * prints list the used rows only, with their identity and live fields. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cJSON.h>
#include "unit.h"

#include "fleet/scoreboard.h"

static int setup(void **state)
{
    struct scoreboard *sb = sb_new();

    if (sb == NULL)
        return -1;
    sb->master_pid = 1000;
    sb->started_ms = sb_now_ms() - 5000;
    sb->generation = 2;
    /* rows 0, 3 and 7 used; the gaps must not show */
    sb->row[0] = (struct sb_row){.slot = 0, .role = SB_ROLE_API, .state = SB_IDLE, .pid = 4242,
                                 .started_ms = sb_now_ms() - 90000, .requests = 17,
                                 .rss_kb = 2048};
    sb->row[3] = (struct sb_row){.slot = 3, .role = SB_ROLE_API, .state = SB_BUSY, .pid = 4343,
                                 .started_ms = sb_now_ms() - 1000, .restarts = 2,
                                 .req_start_ms = sb_now_ms() - 250};
    snprintf(sb->row[3].last_exit, sizeof sb->row[3].last_exit, "signal 9");
    sb->row[7] = (struct sb_row){.slot = 7, .role = SB_ROLE_PROJECTOR, .state = SB_BACKOFF,
                                 .applied = 1234, .lag_ms = 56};
    *state = sb;
    return 0;
}

static int teardown(void **state)
{
    sb_free(*state);
    return 0;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("\"%s\" is not a number", k);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v))
        fail_msg("\"%s\" is not a string", k);
    return v->valuestring;
}

static void test_json_lists_used_rows_only_with_pid_and_role(void **state)
{
    cJSON *j = sb_to_json(*state);
    const cJSON *slots, *s;

    assert_non_null(j);
    assert_int_equal(num(j, "master_pid"), 1000);
    assert_int_equal(num(j, "generation"), 2);
    assert_true(num(j, "uptime_s") >= 4.0);
    slots = cJSON_GetObjectItemCaseSensitive(j, "slots");
    assert_true(cJSON_IsArray(slots));
    assert_int_equal(cJSON_GetArraySize(slots), 3);

    s = cJSON_GetArrayItem(slots, 0);
    assert_int_equal(num(s, "slot"), 0);
    assert_int_equal(num(s, "pid"), 4242);
    assert_string_equal(str(s, "role"), "api");
    assert_string_equal(str(s, "state"), "idle");
    assert_int_equal(num(s, "requests"), 17);
    assert_int_equal(num(s, "rss_kb"), 2048);
    assert_true(num(s, "uptime_s") >= 89.0);
    assert_int_equal(num(s, "current_request_ms"), 0);

    s = cJSON_GetArrayItem(slots, 1);
    assert_int_equal(num(s, "slot"), 3);
    assert_int_equal(num(s, "pid"), 4343);
    assert_string_equal(str(s, "state"), "busy");
    assert_int_equal(num(s, "restarts"), 2);
    assert_true(num(s, "current_request_ms") >= 250);
    assert_string_equal(str(s, "last_exit"), "signal 9");

    s = cJSON_GetArrayItem(slots, 2);
    assert_int_equal(num(s, "slot"), 7);
    assert_string_equal(str(s, "role"), "projector");
    assert_string_equal(str(s, "state"), "backoff");
    assert_int_equal(num(s, "pid"), 0);
    assert_int_equal(num(s, "uptime_s"), 0); /* no process: no uptime */
    assert_int_equal(num(s, "events_applied"), 1234);
    assert_int_equal(num(s, "lag_ms"), 56);
    /* api rows carry no projector figures */
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(slots, 0), "lag_ms"));
    cJSON_Delete(j);
}

static void test_json_of_empty_board_has_no_slots(void **state)
{
    struct scoreboard *sb = sb_new();
    cJSON *j;

    assert_non_null(sb);
    j = sb_to_json(sb);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "slots")), 0);
    cJSON_Delete(j);
    sb_free(sb);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* Borrowed: the line of the table starting with `prefix`, NUL-terminated in place. */
static char *line_starting(char *text, const char *prefix)
{
    for (char *p = text; p != NULL && *p != '\0';) {
        char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            if (nl != NULL)
                *nl = '\0';
            return p;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

/* Expects the line of text starting with prefix to hold each of words
 * (NULL-ended); text must end with a newline, which is put back. */
static void assert_line_has(char *text, const char *prefix, const char *const words[])
{
    char *l = line_starting(text, prefix);

    if (l == NULL)
        fail_msg("no line starts with \"%s\"", prefix);
    for (size_t i = 0; words[i] != NULL; i++)
        if (strstr(l, words[i]) == NULL)
            fail_msg("line \"%s\" lacks \"%s\"", l, words[i]);
    l[strlen(l)] = '\n';
}

static void test_table_has_header_and_one_line_per_used_row(void **state)
{
    struct buf b;

    buf_init(&b, 1 << 16);
    assert_int_equal(sb_render_table(*state, &b), 0);
    assert_int_equal(count_lines(b.p), 1 + 3);
    assert_int_equal(b.p[b.len - 1], '\n');

    assert_line_has(b.p, "id ", (const char *const[]){"role", "pid", "state", "last exit", NULL});
    assert_line_has(b.p, "0 ",
                    (const char *const[]){" api ", " 4242 ", " idle ", " 1m ", " 17 ", " 2.0mb ", NULL});
    assert_line_has(b.p, "3 ", (const char *const[]){" busy ", "signal 9", NULL});
    /* a projector's row: the events it applied and its lag */
    assert_line_has(b.p, "7 ", (const char *const[]){" projector ", " backoff ", " 1234 ", " lag 56ms ", NULL});
    buf_cleanup(&b);
}

static void test_table_of_empty_board_is_header_only(void **state)
{
    struct scoreboard *sb = sb_new();
    struct buf b;

    assert_non_null(sb);
    buf_init(&b, 4096);
    assert_int_equal(sb_render_table(sb, &b), 0);
    assert_int_equal(count_lines(b.p), 1);
    assert_memory_equal(b.p, "id ", 3);
    buf_cleanup(&b);
    sb_free(sb);
}

static void test_table_past_buffer_cap_is_toobig(void **state)
{
    struct buf b;

    buf_init(&b, 16);
    assert_int_equal(sb_render_table(*state, &b), ERR_TOOBIG);
    buf_cleanup(&b);
}

static void test_names_of_states_and_roles(void **state)
{
    assert_string_equal(sb_state_name(SB_FREE), "free");
    assert_string_equal(sb_state_name(SB_STARTING), "starting");
    assert_string_equal(sb_state_name(SB_RETIRING), "retiring");
    assert_string_equal(sb_state_name(SB_BACKOFF), "backoff");
    assert_string_equal(sb_state_name(-1), "?");
    assert_string_equal(sb_state_name(99), "?");
    assert_string_equal(sb_role_name(SB_ROLE_API), "api");
    assert_string_equal(sb_role_name(SB_ROLE_PROJECTOR), "projector");
}

static void test_row_written_by_forked_child_is_seen_by_parent(void **state)
{
    struct scoreboard *sb = *state;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        sb->row[3].requests = 99;
        sb->row[3].state = SB_RETIRING;
        _exit(0);
    }
    unit_wait_success(pid);
    assert_int_equal(sb->row[3].requests, 99);
    assert_int_equal(sb->row[3].state, SB_RETIRING);
}

static void test_rss_of_self_is_known_and_of_no_process_is_zero(void **state)
{
    assert_true(sb_rss_kb(getpid()) > 0);
    assert_int_equal(sb_rss_kb(-1), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_json_lists_used_rows_only_with_pid_and_role),
        cmocka_unit_test(test_json_of_empty_board_has_no_slots),
        T(test_table_has_header_and_one_line_per_used_row),
        cmocka_unit_test(test_table_of_empty_board_is_header_only),
        T(test_table_past_buffer_cap_is_toobig),
        cmocka_unit_test(test_names_of_states_and_roles),
        T(test_row_written_by_forked_child_is_seen_by_parent),
        cmocka_unit_test(test_rss_of_self_is_known_and_of_no_process_is_zero),
    };
    return cmocka_run_group_tests_name("scoreboard", tests, NULL, NULL);
}
