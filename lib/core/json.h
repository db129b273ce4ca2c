/* json: strict parsing and small helpers on top of cJSON.
 * cJSON alone accepts trailing bytes, duplicate keys, raw invalid UTF-8 and
 * \u0000, and has no depth or node caps (DESIGN §10); json_parse() refuses all
 * of those before a tree ever reaches a handler. Not a serializer of its own:
 * output goes through cJSON_PrintUnformatted. */
#ifndef LIB_JSON_H
#define LIB_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "core/err.h"

struct json_limits {
    int max_depth;      /* nesting of arrays/objects; 0 → JSON_DEFAULT_DEPTH */
    int max_nodes;      /* values in the whole document; 0 → JSON_DEFAULT_NODES */
};

#define JSON_DEFAULT_DEPTH 32
#define JSON_DEFAULT_NODES 100000

/* Why a parse failed, for the 400's message. */
enum json_error {
    JSON_OK = 0,
    JSON_SYNTAX,        /* not JSON, trailing bytes after the value, or a number
                           longer than 63 characters or beyond a double's range */
    JSON_TOO_DEEP,
    JSON_TOO_MANY_NODES,
    JSON_DUPLICATE_KEY,
    JSON_BAD_UTF8,
    JSON_NUL_CHAR,      /* \u0000 in a string */
};

/* JSONTestSuite (tests/unit/suite_json.c, run by tests/integration/14_json_suite.sh
 * with the worker's limits): every n_ file is refused and every y_ file
 * accepted, but for these five, refused on purpose by the rules above
 * (DESIGN §10); the test holds this list and fails when it goes stale:
 *   y_object_duplicated_key.json            JSON_DUPLICATE_KEY
 *   y_object_duplicated_key_and_value.json  JSON_DUPLICATE_KEY (equal values too)
 *   y_object_escaped_null_in_key.json       JSON_NUL_CHAR
 *   y_string_null_escape.json               JSON_NUL_CHAR
 *   y_number_double_close_to_zero.json      JSON_SYNTAX (a number of 81 characters)
 * Of the i_ files, lone surrogate escapes are JSON_BAD_UTF8, numbers beyond a
 * double's range JSON_SYNTAX (one too small for it is 0), 500 nested arrays
 * JSON_TOO_DEEP, a UTF-8 or UTF-16 byte order mark JSON_SYNTAX. */

/* Parses exactly buf[0..len) as one JSON value.
 * Returns owned (cJSON_Delete) tree, or NULL with *why set (why may be NULL). */
cJSON *json_parse(const char *buf, size_t len, const struct json_limits *lim,
                  enum json_error *why);

/* A short message for a parse failure ("duplicate key in object"). */
const char *json_error_str(enum json_error why);

/* Reads an integer member exactly: a JSON number with no fraction that fits in
 * [min, max]. ERR_NOTFOUND when absent, ERR_INVAL when not such a number. */
int json_get_int(const cJSON *obj, const char *key, int64_t min, int64_t max,
                 int64_t *out) ERR_MUST_CHECK;

/* Borrowed (valid while obj lives): a string member, or NULL when absent or not a string. */
const char *json_get_str(const cJSON *obj, const char *key);

/* True when every member name of obj is in the NULL-terminated list `allowed`;
 * otherwise *unknown (may be NULL) is set to the first other name (borrowed). */
bool json_only_keys(const cJSON *obj, const char *const *allowed, const char **unknown);

/* Adds key: t (unix seconds) as RFC 3339 text (core/rfc3339.h), the one form
 * the API gives a point in time. Borrowed: the item added, NULL when out of memory. */
cJSON *json_add_time(cJSON *obj, const char *key, int64_t t);

/* Returns owned (cJSON_free): item printed compactly, as cJSON_PrintUnformatted
 * does, except that every number reads back as exactly the same double.
 * cJSON prints with 15 digits and keeps them when its comparison, which
 * tolerates an epsilon, says they are close enough: 9007199254740991 comes
 * out as 9007199254740990. Stored records, responses and cursors need the
 * value itself. NULL when out of memory. */
char *json_print(const cJSON *item);

#endif
