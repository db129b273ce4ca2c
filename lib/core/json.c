/* json: a strict gate in front of cJSON.
 *
 * cJSON 1.7.15 (Debian 12) is lenient where a server must not be: it accepts
 * trailing bytes, keeps the first of two equal keys, copies raw bytes into
 * strings without checking UTF-8, decodes \u0000 into a truncated C string,
 * takes "01", "1." and numbers that overflow to infinity, skips a UTF-8 BOM and
 * has no node cap. So json_parse() runs in three steps:
 *
 *  1. one linear lexical pass over the raw bytes (scan_*) that knows strings,
 *     escapes, numbers and literals exactly as RFC 8259 spells them, validates
 *     UTF-8 strictly, rejects \u0000 and unpaired surrogate escapes, and counts
 *     nesting depth and values so a hostile body is refused before cJSON
 *     allocates anything. It does not check structure (where commas and colons
 *     go): cJSON does that in step 2, on input that is now lexically clean.
 *  2. cJSON_ParseWithLengthOpts(buf, len, &end, 0), which reads only buf[0..len)
 *     and needs no NUL terminator; then only JSON whitespace may follow `end`.
 *  3. a walk of the tree refusing duplicate keys (decoded, case-sensitive, so
 *     "a" and "\u0061" collide) and non-finite numbers.
 *
 * Numbers longer than 63 characters are refused as syntax: cJSON copies at most
 * 63 into its own buffer, and a clear refusal beats depending on what it does
 * with the rest. A number that overflows a double (1e400) is refused as
 * syntax too: it would otherwise become inf and print as null. */
#include "core/json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rfc3339.h"
#include "core/text.h"

#define JSON_NUMBER_MAX 63      /* cJSON's number_c_string holds 63 + NUL */
#define JSON_KEYS_ON_STACK 16

struct scan {
    const unsigned char *p;
    const unsigned char *end;
    int depth;
    int max_depth;
    long max_nodes;
    long tokens;                /* values plus member names */
    long colons;                /* one per member name in a well-formed text */
};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* What may follow a number or literal: anything else makes one bad token
 * ("01", "truex", "1-2") rather than two. */
static bool is_delim(const struct scan *s)
{
    unsigned char c;

    if (s->p == s->end)
        return true;
    c = *s->p;
    return is_ws(c) || c == ',' || c == ']' || c == '}' || c == ':';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The code unit of "\uXXXX" at p (p points at the backslash), or -1. */
static long read_u_escape(const unsigned char *p, const unsigned char *end)
{
    long v = 0;

    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    for (int i = 2; i < 6; i++) {
        int h = text_hex_digit(p[i]);

        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the strict UTF-8 sequence at p (2..4), or 0 when it is not one:
 * no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF, nothing
 * cut short by the end of the buffer (RFC 3629 table 4). */
static int utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    size_t left = (size_t)(end - p);
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    int n;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;          /* overlong */
        else if (c == 0xED)
            hi = 0x9F;          /* D800..DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;          /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;          /* above 10FFFF */
    } else {
        return 0;               /* ASCII is not handled here; 80..C1, F5..FF never lead */
    }
    if (left < (size_t)n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static enum json_error scan_escape(struct scan *s)
{
    const unsigned char *p = s->p;
    long cu;

    if (s->end - p < 2)
        return JSON_SYNTAX;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        s->p += 2;
        return JSON_OK;
    case 'u':
        break;
    default:
        return JSON_SYNTAX;
    }
    cu = read_u_escape(p, s->end);
    if (cu < 0)
        return JSON_SYNTAX;
    if (cu == 0)
        return JSON_NUL_CHAR;
    if (cu >= 0xDC00 && cu <= 0xDFFF)
        return JSON_BAD_UTF8;   /* low surrogate with no high one before it */
    s->p += 6;
    if (cu >= 0xD800 && cu <= 0xDBFF) {
        long lo = read_u_escape(s->p, s->end);

        if (lo < 0xDC00 || lo > 0xDFFF)
            return JSON_BAD_UTF8;
        s->p += 6;
    }
    return JSON_OK;
}

/* s->p at the opening quote; leaves it after the closing one. */
static enum json_error scan_string(struct scan *s)
{
    s->p++;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        enum json_error e;
        int n;

        if (c == '"') {
            s->p++;
            return JSON_OK;
        }
        if (c == '\\') {
            if ((e = scan_escape(s)) != JSON_OK)
                return e;
        } else if (c < 0x20) {
            return JSON_SYNTAX;
        } else if (c < 0x80) {
            s->p++;
        } else {
            if ((n = utf8_seq_len(s->p, s->end)) == 0)
                return JSON_BAD_UTF8;
            s->p += n;
        }
    }
    return JSON_SYNTAX;         /* unterminated */
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static enum json_error scan_number(struct scan *s)
{
    const unsigned char *start = s->p;
    const unsigned char *end = s->end;
    const unsigned char *p = s->p;

    if (*p == '-')
        p++;
    if (p == end)
        return JSON_SYNTAX;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return JSON_SYNTAX;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return JSON_SYNTAX;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return JSON_SYNTAX;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p - start > JSON_NUMBER_MAX)
        return JSON_SYNTAX;
    s->p = p;
    return is_delim(s) ? JSON_OK : JSON_SYNTAX;
}

static enum json_error scan_literal(struct scan *s)
{
    static const char *const lits[] = { "true", "false", "null" };

    for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        size_t n = strlen(lits[i]);

        if ((size_t)(s->end - s->p) >= n && memcmp(s->p, lits[i], n) == 0) {
            s->p += n;
            return is_delim(s) ? JSON_OK : JSON_SYNTAX;
        }
    }
    return JSON_SYNTAX;
}

static enum json_error scan_all(struct scan *s)
{
    while (s->p < s->end) {
        unsigned char c = *s->p;
        enum json_error e = JSON_OK;

        switch (c) {
        case ' ': case '\t': case '\n': case '\r':
            s->p++;
            continue;
        case ',':
            s->p++;
            continue;
        case ':':
            s->colons++;
            s->p++;
            continue;
        case '[': case '{':
            if (++s->depth > s->max_depth)
                return JSON_TOO_DEEP;
            s->tokens++;
            s->p++;
            break;
        case ']': case '}':
            if (s->depth-- == 0)
                return JSON_SYNTAX;
            s->p++;
            continue;
        case '"':
            e = scan_string(s);
            s->tokens++;
            break;
        case '-': case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            e = scan_number(s);
            s->tokens++;
            break;
        case 't': case 'f': case 'n':
            e = scan_literal(s);
            s->tokens++;
            break;
        default:
            return JSON_SYNTAX;
        }
        if (e != JSON_OK)
            return e;
        /* tokens - colons is the number of values so far, plus at most one
         * member name still waiting for its colon. */
        if (s->tokens - s->colons > s->max_nodes + 1)
            return JSON_TOO_MANY_NODES;
    }
    if (s->depth != 0 || s->tokens == 0)
        return JSON_SYNTAX;
    if (s->tokens - s->colons > s->max_nodes)
        return JSON_TOO_MANY_NODES;
    return JSON_OK;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting a copy of the names keeps this O(n log n) for objects with many
 * members without reordering the object itself. */
static enum json_error check_keys(const cJSON *obj)
{
    const char *on_stack[JSON_KEYS_ON_STACK];
    const char **keys = on_stack;
    const cJSON *c;
    size_t n = 0, i;
    enum json_error rc = JSON_OK;

    for (c = obj->child; c != NULL; c = c->next)
        n++;
    if (n < 2)
        return JSON_OK;
    if (n > JSON_KEYS_ON_STACK) {
        keys = malloc(n * sizeof *keys);
        /* No enum value says "out of memory"; refusing a document we cannot
         * afford to check is closest to the node cap. */
        if (keys == NULL)
            return JSON_TOO_MANY_NODES;
    }
    for (i = 0, c = obj->child; c != NULL; c = c->next) {
        if (c->string == NULL) {
            rc = JSON_SYNTAX;
            goto out;
        }
        keys[i++] = c->string;
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    for (i = 1; i < n; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            rc = JSON_DUPLICATE_KEY;
            goto out;
        }
    }
out:
    if (keys != on_stack)
        free(keys);
    return rc;
}

/* Recursion is bounded by the depth cap the scan already enforced. */
static enum json_error check_tree(const cJSON *node)
{
    enum json_error rc;

    if (cJSON_IsNumber(node))
        return isfinite(node->valuedouble) ? JSON_OK : JSON_SYNTAX;
    if (cJSON_IsObject(node) && (rc = check_keys(node)) != JSON_OK)
        return rc;
    if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        for (const cJSON *c = node->child; c != NULL; c = c->next)
            if ((rc = check_tree(c)) != JSON_OK)
                return rc;
    }
    return JSON_OK;
}

cJSON *json_parse(const char *buf, size_t len, const struct json_limits *lim,
                  enum json_error *why)
{
    struct scan s = { 0 };
    enum json_error rc;
    const char *end = NULL;
    cJSON *root;

    if (why != NULL)
        *why = JSON_SYNTAX;
    if (buf == NULL || len == 0)
        return NULL;
    s.p = (const unsigned char *)buf;
    s.end = s.p + len;
    s.max_depth = (lim != NULL && lim->max_depth > 0) ? lim->max_depth : JSON_DEFAULT_DEPTH;
    s.max_nodes = (lim != NULL && lim->max_nodes > 0) ? lim->max_nodes : JSON_DEFAULT_NODES;
    if ((rc = scan_all(&s)) != JSON_OK)
        goto fail;

    rc = JSON_SYNTAX;
    root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (root == NULL)
        goto fail;
    if (end == NULL || end < buf || end > buf + len) {
        cJSON_Delete(root);
        goto fail;
    }
    for (; end < buf + len; end++) {
        if (!is_ws((unsigned char)*end)) {
            cJSON_Delete(root);
            goto fail;
        }
    }
    if ((rc = check_tree(root)) != JSON_OK) {
        cJSON_Delete(root);
        goto fail;
    }
    if (why != NULL)
        *why = JSON_OK;
    return root;
fail:
    if (why != NULL)
        *why = rc;
    return NULL;
}

const char *json_error_str(enum json_error why)
{
    switch (why) {
    case JSON_OK: return "ok";
    case JSON_SYNTAX: return "malformed JSON";
    case JSON_TOO_DEEP: return "JSON nested too deeply";
    case JSON_TOO_MANY_NODES: return "JSON document too large";
    case JSON_DUPLICATE_KEY: return "duplicate key in object";
    case JSON_BAD_UTF8: return "invalid UTF-8 in JSON string";
    case JSON_NUL_CHAR: return "\\u0000 in JSON string";
    }
    return "invalid JSON";
}

/* Integers beyond 2^53 - 1 are refused outright: past it a double no longer
 * holds every integer, so 2^53 + 1 arrives here already rounded to 2^53. */
#define JSON_INT_EXACT 9007199254740991.0

int json_get_int(const cJSON *obj, const char *key, int64_t min, int64_t max,
                 int64_t *out)
{
    const cJSON *item;
    double d;
    int64_t v;

    if (!cJSON_IsObject(obj) || key == NULL)
        return ERR_INVAL;
    item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL)
        return ERR_NOTFOUND;
    if (!cJSON_IsNumber(item))
        return ERR_INVAL;
    d = item->valuedouble;
    if (!isfinite(d) || d != trunc(d) || d > JSON_INT_EXACT || d < -JSON_INT_EXACT)
        return ERR_INVAL;
    v = (int64_t)d;
    if (v < min || v > max)
        return ERR_INVAL;
    *out = v;
    return ERR_OK;
}

cJSON *json_add_time(cJSON *obj, const char *key, int64_t t)
{
    char buf[RFC3339_LEN + 1];

    rfc3339_format(t, buf);
    return cJSON_AddStringToObject(obj, key, buf);
}

const char *json_get_str(const cJSON *obj, const char *key)
{
    const cJSON *item;

    if (!cJSON_IsObject(obj) || key == NULL)
        return NULL;
    item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

bool json_only_keys(const cJSON *obj, const char *const *allowed, const char **unknown)
{
    if (unknown != NULL)
        *unknown = NULL;
    if (!cJSON_IsObject(obj))
        return false;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        bool found = false;

        for (const char *const *a = allowed; a != NULL && *a != NULL; a++) {
            if (c->string != NULL && strcmp(c->string, *a) == 0) {
                found = true;
                break;
            }
        }
        if (!found) {
            if (unknown != NULL)
                *unknown = c->string;
            return false;
        }
    }
    return true;
}

/* Shortest of %.15g, %.16g, %.17g that reads back as d; "" when cJSON's own
 * printing is already exact (integers in int range, or 15 digits that read back). */
static void exact_number(double d, char buf[32])
{
    buf[0] = '\0';
    /* (int)d is undefined beyond int's range: compare only within it */
    if (isnan(d) || isinf(d) || (d >= INT_MIN && d <= INT_MAX && d == (double)(int)d))
        return;
    snprintf(buf, 32, "%1.15g", d);
    if (strtod(buf, NULL) == d) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, 32, "%1.16g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, 32, "%1.17g", d);
}

/* Whether some number under item would lose its value through cJSON's printer. */
static bool has_lossy_number(const cJSON *item)
{
    char buf[32];

    if (cJSON_IsNumber(item)) {
        exact_number(item->valuedouble, buf);
        return buf[0] != '\0';
    }
    for (const cJSON *c = item->child; c != NULL; c = c->next)
        if (has_lossy_number(c))
            return true;
    return false;
}

/* Replaces every lossy number under item (a copy the caller owns) with a raw
 * node holding its exact text. */
static bool make_exact(cJSON *item)
{
    char buf[32];

    for (cJSON *c = item->child, *next; c != NULL; c = next) {
        next = c->next;
        if (cJSON_IsNumber(c)) {
            exact_number(c->valuedouble, buf);
            if (buf[0] == '\0')
                continue;
            cJSON *raw = cJSON_CreateRaw(buf);
            if (raw == NULL)
                return false;
            if (c->string != NULL && (raw->string = strdup(c->string)) == NULL) {
                cJSON_Delete(raw);
                return false;
            }
            cJSON_ReplaceItemViaPointer(item, c, raw);
        } else if (!make_exact(c)) {
            return false;
        }
    }
    return true;
}

char *json_print(const cJSON *item)
{
    char buf[32];
    cJSON *copy;
    char *out = NULL;

    if (item == NULL)
        return NULL;
    if (!has_lossy_number(item))
        return cJSON_PrintUnformatted(item);
    if (cJSON_IsNumber(item)) { /* a bare number: its exact text */
        exact_number(item->valuedouble, buf);
        size_t n = strlen(buf) + 1;
        if ((out = cJSON_malloc(n)) != NULL)
            memcpy(out, buf, n);
        return out;
    }
    if ((copy = cJSON_Duplicate(item, true)) == NULL)
        return NULL;
    if (make_exact(copy))
        out = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    return out;
}
