/* libFuzzer harness for json_parse (lib/core/json.c).
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib \
 *         -I/usr/include/cjson tests/fuzz/fuzz_json.c lib/core/json.c lib/core/err.c -lcjson -lm
 * Besides memory errors it checks what json_parse promises: whatever it
 * accepts, plain cJSON accepts too; the tree prints and parses back through
 * json_parse to an equal tree, and so does json_print's, number for number;
 * and the integer reader never traps on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void read_members(const cJSON *obj)
{
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        int64_t v;
        int rc = json_get_int(obj, c->string, INT64_MIN, INT64_MAX, &v);

        check(rc == ERR_OK || rc == ERR_INVAL);
        check((rc == ERR_OK) == (cJSON_IsNumber(c) && c->valuedouble == (double)v));
        (void)json_get_str(obj, c->string);
        if (cJSON_IsObject(c))
            read_members(c);
    }
}

/* Two trees of one shape hold bit-equal numbers (cJSON_Compare allows an epsilon). */
static void same_numbers(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsNumber(a))
        check(cJSON_IsNumber(b) && a->valuedouble == b->valuedouble);
    for (a = a->child, b = b->child; a != NULL; a = a->next, b = b->next) {
        check(b != NULL);
        same_numbers(a, b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct json_limits lim = { .max_depth = 24, .max_nodes = 4096 };
    static const char *const allowed[] = { "a", "b", "id", NULL };
    enum json_error why;
    cJSON *root, *plain, *again;
    char *printed;

    root = json_parse((const char *)data, size, &lim, &why);
    check((root != NULL) == (why == JSON_OK));
    check(json_error_str(why) != NULL);
    if (root == NULL)
        return 0;

    plain = cJSON_ParseWithLength((const char *)data, size);
    check(plain != NULL);
    cJSON_Delete(plain);

    if (cJSON_IsObject(root)) {
        read_members(root);
        (void)json_only_keys(root, allowed, NULL);
    }

    printed = cJSON_PrintUnformatted(root);
    if (printed != NULL) {
        again = json_parse(printed, strlen(printed), &lim, &why);
        check(again != NULL);
        check(cJSON_Compare(root, again, 1));
        cJSON_Delete(again);
        free(printed);
    }
    /* json_print, which every answer goes through, keeps every number exact */
    printed = json_print(root);
    if (printed != NULL) {
        again = json_parse(printed, strlen(printed), &lim, &why);
        check(again != NULL);
        check(cJSON_Compare(root, again, 1));
        same_numbers(root, again);
        cJSON_Delete(again);
        cJSON_free(printed);
    }
    cJSON_Delete(root);
    return 0;
}
