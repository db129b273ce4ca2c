/* Unit tests for lib/json: every refusal json_parse() promises, and the exact
 * integer reads. Every document is parsed from a heap copy of exactly its
 * length with no NUL after it, so ASan reports any read past the body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "core/json.h"

static cJSON *parse_n(const char *s, size_t n, const struct json_limits *lim,
                      enum json_error *why)
{
    char *copy = malloc(n ? n : 1);
    cJSON *root;

    assert_non_null(copy);
    memcpy(copy, s, n);
    root = json_parse(copy, n, lim, why);
    free(copy);
    return root;
}

/* The error json_parse() gives for s (JSON_OK when it parses). */
static enum json_error why_lim(const char *s, const struct json_limits *lim)
{
    enum json_error why = (enum json_error)-1;
    cJSON *root = parse_n(s, strlen(s), lim, &why);

    if (why == JSON_OK)
        assert_non_null(root);
    else
        assert_null(root);
    cJSON_Delete(root);
    return why;
}

static enum json_error why_of(const char *s)
{
    return why_lim(s, NULL);
}

static void test_accepts_plain_documents(void **state)
{
    assert_int_equal(why_of("{}"), JSON_OK);
    assert_int_equal(why_of("[]"), JSON_OK);
    assert_int_equal(why_of("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\"}}"), JSON_OK);
    assert_int_equal(why_of(" \t\r\n{ \"a\" : 1 } \r\n\t "), JSON_OK);
    assert_int_equal(why_of("0"), JSON_OK);
    assert_int_equal(why_of("-0"), JSON_OK);
    assert_int_equal(why_of("12.5e-3"), JSON_OK);
    assert_int_equal(why_of("1E+2"), JSON_OK);
    assert_int_equal(why_of("\"s\""), JSON_OK);
    assert_int_equal(why_of("true"), JSON_OK);
    assert_int_equal(why_of("null"), JSON_OK);
    assert_int_equal(why_of("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"]"), JSON_OK);
}

static void test_returns_the_tree(void **state)
{
    enum json_error why;
    const char *doc = "{\"name\":\"caf\\u00e9\",\"n\":7}";
    cJSON *root = parse_n(doc, strlen(doc), NULL, &why);

    assert_non_null(root);
    assert_int_equal(why, JSON_OK);
    assert_string_equal(json_get_str(root, "name"), "caf\xc3\xa9");
    cJSON_Delete(root);
    /* why may be NULL */
    root = json_parse("[1]", 3, NULL, NULL);
    assert_non_null(root);
    cJSON_Delete(root);
    assert_null(json_parse("[1", 2, NULL, NULL));
}

static void test_empty_body_is_syntax(void **state)
{
    enum json_error why = JSON_OK;

    assert_null(json_parse("", 0, NULL, &why));
    assert_int_equal(why, JSON_SYNTAX);
    why = JSON_OK;
    assert_null(json_parse(NULL, 0, NULL, &why));
    assert_int_equal(why, JSON_SYNTAX);
    assert_int_equal(why_of(" "), JSON_SYNTAX);
    assert_int_equal(why_of(" \r\n\t"), JSON_SYNTAX);
}

static void test_trailing_bytes_are_refused(void **state)
{
    assert_int_equal(why_of("{} x"), JSON_SYNTAX);
    assert_int_equal(why_of("{}}"), JSON_SYNTAX);
    assert_int_equal(why_of("[]]"), JSON_SYNTAX);
    assert_int_equal(why_of("{\"a\":1}{\"b\":2}"), JSON_SYNTAX);
    assert_int_equal(why_of("1 2"), JSON_SYNTAX);
    assert_int_equal(why_of("\"a\" \"b\""), JSON_SYNTAX);
    assert_int_equal(why_of("{},"), JSON_SYNTAX);
    assert_int_equal(why_of("null null"), JSON_SYNTAX);
    {
        enum json_error why = JSON_OK;

        assert_null(parse_n("{}\0", 3, NULL, &why));
        assert_int_equal(why, JSON_SYNTAX);
        assert_null(parse_n("1\0 ", 3, NULL, &why));
        assert_int_equal(why, JSON_SYNTAX);
    }
}

static void test_malformed_documents(void **state)
{
    static const char *const bad[] = {
        "{", "[", "}", "]", "[1,]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{1:2}",
        "[1 2]", "{\"a\":1 \"b\":2}", "[,1]", "\"abc", "'a'", "{a:1}", "[1}", "{]",
        "01", "-01", "1.", ".5", "-", "+1", "1e", "1e+", "1.e5", "0x10", "NaN",
        "Infinity", "-Infinity", "tru", "nul", "truex", "True", "NULL", "[1-2]",
        "\xEF\xBB\xBF{}", "\"\\x\"", "\"\\u12\"", "\"\\u12G4\"", "\"\\U0041\"",
        "\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"", "\xc3\xa9", "[1]\x80",
        "/* c */ 1", "[1]//",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum json_error why = why_of(bad[i]);

        if (why != JSON_SYNTAX)
            fail_msg("%zu %s: want syntax, got %d", i, bad[i], (int)why);
    }
}

static void test_duplicate_keys_top_level(void **state)
{
    assert_int_equal(why_of("{\"a\":1,\"a\":2}"), JSON_DUPLICATE_KEY);
    assert_int_equal(why_of("{\"role\":\"viewer\",\"x\":0,\"role\":\"owner\"}"), JSON_DUPLICATE_KEY);
    /* decoded names are compared: an escape does not hide a twin */
    assert_int_equal(why_of("{\"a\":1,\"\\u0061\":2}"), JSON_DUPLICATE_KEY);
    assert_int_equal(why_of("{\"\xc3\xa9\":1,\"\\u00e9\":2}"), JSON_DUPLICATE_KEY);
    /* case matters in JSON and jsonb */
    assert_int_equal(why_of("{\"a\":1,\"A\":2}"), JSON_OK);
    assert_int_equal(why_of("{\"\":1,\"\":2}"), JSON_DUPLICATE_KEY);
}

static void test_duplicate_keys_nested(void **state)
{
    assert_int_equal(why_of("{\"o\":{\"k\":1,\"k\":1}}"), JSON_DUPLICATE_KEY);
    assert_int_equal(why_of("[{\"k\":1},{\"k\":1,\"j\":2,\"k\":3}]"), JSON_DUPLICATE_KEY);
    assert_int_equal(why_of("{\"a\":[[{\"b\":{\"c\":1,\"c\":2}}]]}"), JSON_DUPLICATE_KEY);
    /* the same name in different objects is fine */
    assert_int_equal(why_of("{\"k\":{\"k\":{\"k\":1}},\"j\":[{\"k\":1},{\"k\":2}]}"), JSON_OK);
}

/* An object with n members k0..k(n-1), then optionally one more "k<dup>". */
static char *many_keys(int n, int dup)
{
    size_t cap = (size_t)n * 24 + 64;
    char *s = malloc(cap);
    size_t off = 0;

    assert_non_null(s);
    off += (size_t)snprintf(s + off, cap - off, "{");
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off, "%s\"k%d\":%d", i ? "," : "", i, i);
    if (dup >= 0)
        off += (size_t)snprintf(s + off, cap - off, ",\"k%d\":0", dup);
    snprintf(s + off, cap - off, "}");
    return s;
}

static void test_duplicate_keys_in_large_objects(void **state)
{
    char *s;

    s = many_keys(5000, -1);
    assert_int_equal(why_of(s), JSON_OK);
    free(s);
    s = many_keys(5000, 0);
    assert_int_equal(why_of(s), JSON_DUPLICATE_KEY);
    free(s);
    s = many_keys(5000, 4999);
    assert_int_equal(why_of(s), JSON_DUPLICATE_KEY);
    free(s);
    s = many_keys(17, 8);
    assert_int_equal(why_of(s), JSON_DUPLICATE_KEY);
    free(s);
    s = many_keys(16, -1);
    assert_int_equal(why_of(s), JSON_OK);
    free(s);
}

static void test_nul_escape_is_refused(void **state)
{
    assert_int_equal(why_of("\"\\u0000\""), JSON_NUL_CHAR);
    assert_int_equal(why_of("{\"a\":\"x\\u0000y\"}"), JSON_NUL_CHAR);
    assert_int_equal(why_of("{\"a\\u0000b\":1}"), JSON_NUL_CHAR);
    assert_int_equal(why_of("[\"\\u0001\"]"), JSON_OK);
    /* a raw NUL inside a string is a control character: syntax */
    {
        enum json_error why = JSON_OK;

        assert_null(parse_n("\"a\0b\"", 5, NULL, &why));
        assert_int_equal(why, JSON_SYNTAX);
    }
}

static void test_invalid_utf8_is_refused(void **state)
{
    static const char *const bad[] = {
        "\"\xc0\x80\"",                 /* overlong NUL */
        "\"\xc1\xbf\"",                 /* overlong */
        "\"\xe0\x80\x80\"",             /* overlong 3-byte */
        "\"\xe0\x9f\xbf\"",             /* overlong 3-byte, top */
        "\"\xf0\x80\x80\x80\"",         /* overlong 4-byte */
        "\"\xf0\x8f\xbf\xbf\"",         /* overlong 4-byte, top */
        "\"\x80\"",                     /* lone continuation */
        "\"a\xbf" "b\"",                /* lone continuation mid-string */
        "\"\xed\xa0\x80\"",             /* U+D800 encoded */
        "\"\xed\xbf\xbf\"",             /* U+DFFF encoded */
        "\"\xed\xa0\xbd\xed\xb8\x80\"", /* CESU-8 surrogate pair */
        "\"\xf4\x90\x80\x80\"",         /* U+110000 */
        "\"\xf5\x80\x80\x80\"",         /* lead byte F5 */
        "\"\xff\"",
        "\"\xfe\"",
        "\"\xc3\"",                     /* cut short by the quote */
        "\"\xe2\x82\"",
        "\"\xf0\x9f\x98\"",
        "\"\xc3" "a\"",                 /* ASCII where a continuation belongs */
        "{\"\xc3\x28\":1}",             /* in a key */
        "\"\\ud83d\"",                  /* escaped lone high surrogate */
        "\"\\ude00\"",                  /* escaped lone low surrogate */
        "\"\\ud83dx\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ud83d\\ud83d\"",
        "\"\\ude00\\ud83d\"",
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum json_error why = why_of(bad[i]);

        if (why != JSON_BAD_UTF8)
            fail_msg("case %zu: want bad utf8, got %d", i, (int)why);
    }
    /* a multibyte sequence cut short by the end of the buffer */
    {
        enum json_error why = JSON_OK;

        assert_null(parse_n("\"\xe2\x82", 3, NULL, &why));
        assert_int_equal(why, JSON_BAD_UTF8);
    }
}

static void test_valid_multibyte_is_kept(void **state)
{
    enum json_error why;
    const char *doc = "{\"s\":\"\xc2\xa2\xe2\x82\xac\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                      "\xf0\x90\x80\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f\","
                      "\"e\":\"\\ud83d\\ude00\\uD83D\\uDE00\\uffff\"}";
    cJSON *root = parse_n(doc, strlen(doc), NULL, &why);

    assert_int_equal(why, JSON_OK);
    assert_non_null(root);
    assert_string_equal(json_get_str(root, "s"),
                        "\xc2\xa2\xe2\x82\xac\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                        "\xf0\x90\x80\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\x7f");
    assert_string_equal(json_get_str(root, "e"),
                        "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xef\xbf\xbf");
    cJSON_Delete(root);
}

static char *nested(int depth, char open, char close)
{
    char *s = malloc((size_t)depth * 2 + 1);

    assert_non_null(s);
    for (int i = 0; i < depth; i++) {
        s[i] = open;
        s[depth * 2 - 1 - i] = close;
    }
    s[depth * 2] = '\0';
    return s;
}

static char *nested_objects(int depth)
{
    size_t cap = (size_t)depth * 8 + 8;
    char *s = malloc(cap);
    size_t off = 0;

    assert_non_null(s);
    for (int i = 0; i < depth; i++)
        off += (size_t)snprintf(s + off, cap - off, "{\"a\":");
    off += (size_t)snprintf(s + off, cap - off, "1");
    for (int i = 0; i < depth; i++)
        off += (size_t)snprintf(s + off, cap - off, "}");
    return s;
}

static void test_depth_limit(void **state)
{
    struct json_limits lim = { .max_depth = 5 };
    char *s;

    s = nested(5, '[', ']');
    assert_int_equal(why_lim(s, &lim), JSON_OK);
    free(s);
    s = nested(6, '[', ']');
    assert_int_equal(why_lim(s, &lim), JSON_TOO_DEEP);
    free(s);
    s = nested_objects(5);
    assert_int_equal(why_lim(s, &lim), JSON_OK);
    free(s);
    s = nested_objects(6);
    assert_int_equal(why_lim(s, &lim), JSON_TOO_DEEP);
    free(s);
    /* brackets inside strings do not count */
    assert_int_equal(why_lim("[\"[[[[[[[[[[{{{{{{{{\"]", &lim), JSON_OK);
    /* the default */
    s = nested(JSON_DEFAULT_DEPTH, '[', ']');
    assert_int_equal(why_of(s), JSON_OK);
    free(s);
    s = nested(JSON_DEFAULT_DEPTH + 1, '[', ']');
    assert_int_equal(why_of(s), JSON_TOO_DEEP);
    free(s);
    /* refused before the end: an unclosed million brackets costs one scan */
    s = nested(1000000, '[', ']');
    s[1000000] = '\0';
    assert_int_equal(why_of(s), JSON_TOO_DEEP);
    free(s);
}

static void test_node_cap(void **state)
{
    struct json_limits lim = { .max_nodes = 3 };

    assert_int_equal(why_lim("[1,2]", &lim), JSON_OK);
    assert_int_equal(why_lim("[1,2,3]", &lim), JSON_TOO_MANY_NODES);
    assert_int_equal(why_lim("{\"a\":1,\"b\":2}", &lim), JSON_OK);   /* names are not nodes */
    assert_int_equal(why_lim("{\"a\":1,\"b\":2,\"c\":3}", &lim), JSON_TOO_MANY_NODES);
    assert_int_equal(why_lim("{\"a\":{\"b\":{}}}", &lim), JSON_OK);
    assert_int_equal(why_lim("{\"a\":{\"b\":{\"c\":1}}}", &lim), JSON_TOO_MANY_NODES);
    lim.max_nodes = 1;
    assert_int_equal(why_lim("\"x\"", &lim), JSON_OK);
    assert_int_equal(why_lim("[]", &lim), JSON_OK);
    assert_int_equal(why_lim("[0]", &lim), JSON_TOO_MANY_NODES);
    assert_int_equal(why_lim("{\"a\":0}", &lim), JSON_TOO_MANY_NODES);
}

static void test_node_cap_default(void **state)
{
    size_t n = JSON_DEFAULT_NODES;
    char *s = malloc(n * 2 + 2);
    char *t;

    assert_non_null(s);
    /* [0,0,...] with n - 1 zeros is n nodes */
    s[0] = '[';
    for (size_t i = 0; i < n - 1; i++) {
        s[1 + 2 * i] = '0';
        s[2 + 2 * i] = ',';
    }
    s[2 * (n - 1)] = ']';
    s[2 * (n - 1) + 1] = '\0';
    assert_int_equal(why_of(s), JSON_OK);
    t = malloc(n * 2 + 4);
    assert_non_null(t);
    snprintf(t, n * 2 + 4, "[0,%s", s + 1);
    assert_int_equal(why_of(t), JSON_TOO_MANY_NODES);
    free(t);
    free(s);
}

static void test_huge_numbers(void **state)
{
    char buf[128];

    assert_int_equal(why_of("1e308"), JSON_OK);
    assert_int_equal(why_of("1e309"), JSON_SYNTAX);       /* overflows to inf */
    assert_int_equal(why_of("-1e400"), JSON_SYNTAX);
    assert_int_equal(why_of("[1e999999999999]"), JSON_SYNTAX);
    assert_int_equal(why_of("1e-400"), JSON_OK);          /* underflow is just 0 */
    assert_int_equal(why_of("123456789012345678901234567890"), JSON_OK);
    /* 63 characters is cJSON's limit; one more is refused, not truncated */
    memset(buf, '1', 63);
    buf[63] = '\0';
    assert_int_equal(why_of(buf), JSON_OK);
    memset(buf, '1', 64);
    buf[64] = '\0';
    assert_int_equal(why_of(buf), JSON_SYNTAX);
    snprintf(buf, sizeof buf, "[%.*s]", 64, "0.000000000000000000000000000000000000000000000000000000000000000001");
    assert_int_equal(why_of(buf), JSON_SYNTAX);
}

static void test_prefix_of_a_larger_buffer(void **state)
{
    const char big[] = "{\"a\":1}GARBAGE{\"a\":2}";
    enum json_error why;
    cJSON *root;
    int64_t v = 0;

    root = json_parse(big, 7, NULL, &why);
    assert_non_null(root);
    assert_int_equal(why, JSON_OK);
    assert_int_equal(json_get_int(root, "a", 0, 10, &v), ERR_OK);
    assert_int_equal(v, 1);
    cJSON_Delete(root);
    assert_null(json_parse(big, 8, NULL, &why));
    assert_int_equal(why, JSON_SYNTAX);
    /* scalars that end right at len: the bytes after must not be read into them */
    root = json_parse("12345", 2, NULL, &why);
    assert_non_null(root);
    assert_true(cJSON_GetNumberValue(root) == 12.0);
    cJSON_Delete(root);
    root = json_parse("truefalse", 4, NULL, &why);
    assert_non_null(root);
    assert_true(cJSON_IsTrue(root));
    cJSON_Delete(root);
    root = json_parse("\"ab\"cd\"", 4, NULL, &why);
    assert_non_null(root);
    assert_string_equal(root->valuestring, "ab");
    cJSON_Delete(root);
    assert_null(json_parse("\"abc\"", 4, NULL, &why));
    assert_int_equal(why, JSON_SYNTAX);
    assert_null(json_parse("null", 3, NULL, &why));
    assert_int_equal(why, JSON_SYNTAX);
    assert_null(json_parse("1e5", 2, NULL, &why));
    assert_int_equal(why, JSON_SYNTAX);
}

static void test_unterminated_buffers_at_every_length(void **state)
{
    /* Every prefix of a document, each in a heap block of exactly its size:
     * ASan flags a read past the body, and only the full length parses. */
    const char *doc = "{\"k\":[1,-2.5e3,true,false,null,\"s\\u00e9\\ud83d\\ude00\xc3\xa9\"],\"o\":{}}";
    size_t n = strlen(doc);

    for (size_t i = 1; i <= n; i++) {
        enum json_error why;
        cJSON *root = parse_n(doc, i, NULL, &why);

        if (i == n) {
            assert_non_null(root);
            assert_int_equal(why, JSON_OK);
        } else {
            assert_null(root);
            assert_int_not_equal(why, JSON_OK);
        }
        cJSON_Delete(root);
    }
}

static cJSON *must_parse(const char *s)
{
    enum json_error why;
    cJSON *root = parse_n(s, strlen(s), NULL, &why);

    assert_non_null(root);
    return root;
}

static void test_get_int(void **state)
{
    cJSON *root = must_parse(
        "{\"zero\":0,\"neg\":-7,\"pos\":42,\"frac\":1.5,\"exp\":1e2,\"nexp\":1e-2,"
        "\"one\":1.0,\"str\":\"5\",\"t\":true,\"nul\":null,\"arr\":[1],"
        "\"max\":9007199254740991,\"min\":-9007199254740991,"
        "\"p53\":9007199254740992,\"p53p1\":9007199254740993,\"m53\":-9007199254740992,"
        "\"big\":1e300,\"i32o\":3000000000,\"negz\":-0,\"Case\":1,\"small\":1e-300}");
    int64_t v = 12345;

    assert_int_equal(json_get_int(root, "zero", INT64_MIN, INT64_MAX, &v), ERR_OK);
    assert_int_equal(v, 0);
    assert_int_equal(json_get_int(root, "neg", -10, 10, &v), ERR_OK);
    assert_int_equal(v, -7);
    assert_int_equal(json_get_int(root, "pos", 0, 100, &v), ERR_OK);
    assert_int_equal(v, 42);
    assert_int_equal(json_get_int(root, "exp", 0, 1000, &v), ERR_OK);
    assert_int_equal(v, 100);
    assert_int_equal(json_get_int(root, "one", 0, 1000, &v), ERR_OK);
    assert_int_equal(v, 1);
    assert_int_equal(json_get_int(root, "negz", -1, 1, &v), ERR_OK);
    assert_int_equal(v, 0);
    assert_int_equal(json_get_int(root, "max", INT64_MIN, INT64_MAX, &v), ERR_OK);
    assert_int_equal(v, INT64_C(9007199254740991));
    assert_int_equal(json_get_int(root, "min", INT64_MIN, INT64_MAX, &v), ERR_OK);
    assert_int_equal(v, -INT64_C(9007199254740991));

    v = 12345;
    assert_int_equal(json_get_int(root, "frac", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "nexp", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "small", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "str", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "t", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "nul", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "arr", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "p53", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "p53p1", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "m53", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "big", INT64_MIN, INT64_MAX, &v), ERR_INVAL);
    /* no saturation: 3e9 does not become INT_MAX */
    assert_int_equal(json_get_int(root, "i32o", INT32_MIN, INT32_MAX, &v), ERR_INVAL);
    /* range bounds are inclusive */
    assert_int_equal(json_get_int(root, "pos", 42, 42, &v), ERR_OK);
    assert_int_equal(json_get_int(root, "pos", 43, 100, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "pos", 0, 41, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "neg", 0, 10, &v), ERR_INVAL);
    assert_int_equal(json_get_int(root, "pos", 10, 0, &v), ERR_INVAL);
    /* absent, and names are case-sensitive */
    assert_int_equal(json_get_int(root, "nope", 0, 1, &v), ERR_NOTFOUND);
    assert_int_equal(json_get_int(root, "case", 0, 1, &v), ERR_NOTFOUND);
    assert_int_equal(json_get_int(root, "ZERO", 0, 1, &v), ERR_NOTFOUND);
    assert_int_equal(v, 42);    /* untouched by every failure since the last success */
    /* not an object */
    assert_int_equal(json_get_int(cJSON_GetObjectItemCaseSensitive(root, "arr"), "x", 0, 1, &v), ERR_INVAL);
    assert_int_equal(json_get_int(NULL, "x", 0, 1, &v), ERR_INVAL);
    cJSON_Delete(root);
}

static void test_get_str(void **state)
{
    cJSON *root = must_parse("{\"s\":\"v\",\"e\":\"\",\"n\":1,\"z\":null,\"S\":\"upper\"}");

    assert_string_equal(json_get_str(root, "s"), "v");
    assert_string_equal(json_get_str(root, "S"), "upper");
    assert_string_equal(json_get_str(root, "e"), "");
    assert_null(json_get_str(root, "n"));
    assert_null(json_get_str(root, "z"));
    assert_null(json_get_str(root, "absent"));
    assert_null(json_get_str(NULL, "s"));
    cJSON_Delete(root);
    root = must_parse("[\"s\"]");
    assert_null(json_get_str(root, "s"));
    cJSON_Delete(root);
}

static void test_only_keys(void **state)
{
    static const char *const allowed[] = { "email", "password", "org", NULL };
    static const char *const none[] = { NULL };
    cJSON *root = must_parse("{\"email\":\"a\",\"password\":\"b\"}");
    const char *unknown = "sentinel";

    assert_true(json_only_keys(root, allowed, &unknown));
    assert_null(unknown);
    assert_true(json_only_keys(root, allowed, NULL));
    assert_false(json_only_keys(root, none, &unknown));
    assert_string_equal(unknown, "email");
    cJSON_Delete(root);

    root = must_parse("{\"email\":\"a\",\"is_platform_admin\":true,\"Org\":1}");
    assert_false(json_only_keys(root, allowed, &unknown));
    assert_string_equal(unknown, "is_platform_admin");
    cJSON_Delete(root);

    root = must_parse("{}");
    assert_true(json_only_keys(root, none, &unknown));
    cJSON_Delete(root);

    root = must_parse("[1]");
    assert_false(json_only_keys(root, allowed, &unknown));
    assert_null(unknown);
    cJSON_Delete(root);
}

static void test_error_strings(void **state)
{
    for (int e = JSON_OK; e <= JSON_NUL_CHAR; e++) {
        const char *s = json_error_str((enum json_error)e);

        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
    assert_string_equal(json_error_str(JSON_DUPLICATE_KEY), "duplicate key in object");
    assert_non_null(json_error_str((enum json_error)99));
}

/* json_print: every number reads back as the same double, where cJSON's own
 * printer keeps 15 digits (2^53-1 → ...990). */
static void test_print_keeps_every_number_exact(void **state)
{
    static const double cases[] = {9007199254740991.0, -9007199254740991.0, 0.30000000000000004,
                                   1e300, 5e-324, 123456789012345678.0, 0.1, 3.0, -0.5, 2147483648.0};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "a");
        cJSON_AddNumberToObject(o, "n", cases[i]);
        cJSON_AddItemToArray(a, cJSON_CreateNumber(cases[i]));
        cJSON_AddItemToObject(o, "deep", cJSON_CreateObject());
        cJSON_AddNumberToObject(cJSON_GetObjectItem(o, "deep"), "x", cases[i]);
        char *text = json_print(o);
        assert_non_null(text);
        cJSON *back = cJSON_Parse(text);
        assert_non_null(back);
        assert_true(cJSON_GetObjectItem(back, "n")->valuedouble == cases[i]);
        assert_true(cJSON_GetArrayItem(cJSON_GetObjectItem(back, "a"), 0)->valuedouble == cases[i]);
        assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(back, "deep"), "x")->valuedouble == cases[i]);
        cJSON_Delete(back);
        cJSON_free(text);
        /* the caller's tree is left as it was */
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "n")));
        cJSON_Delete(o);
        cJSON *bare = cJSON_CreateNumber(cases[i]);
        text = json_print(bare);
        assert_non_null(text);
        assert_true(strtod(text, NULL) == cases[i]);
        cJSON_free(text);
        cJSON_Delete(bare);
    }
    /* the lossy case this exists for, spelled out */
    cJSON *n = cJSON_CreateNumber(9007199254740991.0);
    char *t = json_print(n), *c = cJSON_PrintUnformatted(n);
    assert_string_equal(t, "9007199254740991");
    assert_string_equal(c, "9.00719925474099e+15");
    cJSON_free(t);
    cJSON_free(c);
    cJSON_Delete(n);
    /* trees without such numbers print exactly as cJSON does */
    cJSON *plain = cJSON_Parse("{\"a\":[1,2.5,\"x\",null,true],\"b\":{\"c\":-3}}");
    t = json_print(plain);
    assert_string_equal(t, "{\"a\":[1,2.5,\"x\",null,true],\"b\":{\"c\":-3}}");
    cJSON_free(t);
    cJSON_Delete(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_plain_documents),
        cmocka_unit_test(test_returns_the_tree),
        cmocka_unit_test(test_empty_body_is_syntax),
        cmocka_unit_test(test_trailing_bytes_are_refused),
        cmocka_unit_test(test_malformed_documents),
        cmocka_unit_test(test_duplicate_keys_top_level),
        cmocka_unit_test(test_duplicate_keys_nested),
        cmocka_unit_test(test_duplicate_keys_in_large_objects),
        cmocka_unit_test(test_nul_escape_is_refused),
        cmocka_unit_test(test_invalid_utf8_is_refused),
        cmocka_unit_test(test_valid_multibyte_is_kept),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_node_cap),
        cmocka_unit_test(test_node_cap_default),
        cmocka_unit_test(test_huge_numbers),
        cmocka_unit_test(test_prefix_of_a_larger_buffer),
        cmocka_unit_test(test_unterminated_buffers_at_every_length),
        cmocka_unit_test(test_get_int),
        cmocka_unit_test(test_get_str),
        cmocka_unit_test(test_only_keys),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_print_keeps_every_number_exact),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
