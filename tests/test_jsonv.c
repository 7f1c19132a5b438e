/* test_jsonv.c - the strict JSON validator: what RFC 8259 allows passes, everything cJSON
 * would let through that it should not is refused with the right kind, offset and path. */
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "jsonv.h"
#include "tcheck.h"

static struct jsonv_result res;

static int check_len(const char *s, size_t len)
{
    return jsonv_check(s, len, &res);
}

static int check(const char *s)
{
    return check_len(s, strlen(s));
}

static void ok(const char *s)
{
    int rc = check(s);
    if (rc != 0)
        fprintf(stderr, "  refused: %s (%s at %zu, path '%s')\n", s, jsonv_kind_text(res.kind),
                res.offset, res.path);
    CHECK(rc == 0);
    CHECK(res.kind == JSONV_OK);
}

static void bad(const char *s, enum jsonv_kind kind, size_t offset, const char *path)
{
    int rc = check(s);
    if (rc != BD_EINVAL || res.kind != kind || res.offset != offset || strcmp(res.path, path))
        fprintf(stderr, "  %s: rc %d kind %d (%s) at %zu path '%s'\n", s, rc, (int)res.kind,
                jsonv_kind_text(res.kind), res.offset, res.path);
    CHECK(rc == BD_EINVAL);
    CHECK(res.kind == kind);
    CHECK(res.offset == offset);
    CHECK_STR(res.path, path);
}

static void test_valid(void)
{
    ok("{}");
    ok("[]");
    ok(" \t\r\n{ \"a\" : [ 1 , -0 , 0.5 , -1.25e+10 , 3E-2 , 1e5 , true , false , null ] } \n");
    ok("\"top-level string\"");
    ok("42");
    ok("-0.0e0");
    ok("null");
    ok("{\"\":\"\"}");
    ok("{\"a\":{\"b\":{\"c\":[[[[{}]]]]}}}");
    ok("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\u20AC \\ud83d\\ude00 \\uDBFF\\uDFFF\"");
    ok("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbf \x7f\"");
    /* counts: strings and their decoded bytes */
    CHECK(check("{\"ab\":\"\\u00e9\\ud83d\\ude00x\",\"c\":[\"\\n\"]}") == 0);
    CHECK(res.strings == 4);
    CHECK(res.string_bytes == 2 + 7 + 1 + 1);
}

static void test_syntax(void)
{
    bad("", JSONV_EMPTY, 0, "");
    bad(" \r\n", JSONV_EMPTY, 0, "");
    bad("{", JSONV_SYNTAX, 1, "");
    bad("{\"a\"", JSONV_SYNTAX, 4, "a");
    bad("{\"a\":}", JSONV_SYNTAX, 5, "a");
    bad("{\"a\":1,}", JSONV_SYNTAX, 7, "");
    bad("[1,]", JSONV_SYNTAX, 3, "[1]");
    bad("[1 2]", JSONV_SYNTAX, 3, "[0]");
    bad("{'a':1}", JSONV_SYNTAX, 1, "");
    bad("{a:1}", JSONV_SYNTAX, 1, "");
    bad("[012]", JSONV_SYNTAX, 2, "[0]");
    bad("[1.]", JSONV_SYNTAX, 3, "[0]");
    bad("[.5]", JSONV_SYNTAX, 1, "[0]");
    bad("[+1]", JSONV_SYNTAX, 1, "[0]");
    bad("[-]", JSONV_SYNTAX, 2, "[0]");
    bad("[1e]", JSONV_SYNTAX, 3, "[0]");
    bad("[1e+]", JSONV_SYNTAX, 4, "[0]");
    bad("[0x10]", JSONV_SYNTAX, 2, "[0]");
    bad("[NaN]", JSONV_SYNTAX, 1, "[0]");
    bad("[nul]", JSONV_SYNTAX, 1, "[0]");
    bad("[True]", JSONV_SYNTAX, 1, "[0]");
    bad("\"\\x41\"", JSONV_SYNTAX, 1, "");
    bad("\"\\u12G4\"", JSONV_SYNTAX, 1, "");
    bad("\"\\u12\"", JSONV_SYNTAX, 1, "");
    bad("\"abc", JSONV_SYNTAX, 4, "");
    bad("\"abc\\", JSONV_SYNTAX, 5, "");
    bad("\xef\xbb\xbf{}", JSONV_SYNTAX, 0, ""); /* a byte order mark is not JSON */
    bad("{\"a\":1}/*c*/", JSONV_TRAILING, 7, "");
}

static void test_trailing(void)
{
    bad("{\"text\":\"x\"} garbage", JSONV_TRAILING, 13, "");
    bad("{\"text\":\"x\"}{\"text\":\"y\"}", JSONV_TRAILING, 12, "");
    bad("{} {}", JSONV_TRAILING, 3, "");
    bad("1 2", JSONV_TRAILING, 2, "");
    bad("nullx", JSONV_TRAILING, 4, "");
    CHECK(check_len("{}\0", 3) == BD_EINVAL && res.kind == JSONV_TRAILING && res.offset == 2);
    ok("{\"text\":\"x\"} \r\n\t ");
}

static void test_strings(void)
{
    static const char raw_nul[] = "{\"k\":\"a\0b\"}";

    bad("{\"text\":\"Revenue rose 10%.\\u0000 SECRET TAIL\"}", JSONV_NUL, 26, "text");
    bad("{\"m\":{\"a\\u0000b\":\"v\"}}", JSONV_NUL, 8, "m.a\\u0000b");
    CHECK(res.in_key == 1);
    bad("{\"m\":{\"k\":\"v\\u0000\"}}", JSONV_NUL, 12, "m.k");
    CHECK(res.in_key == 0);
    bad("[\"\\u0000\"]", JSONV_NUL, 2, "[0]");
    bad("{\"a\":\"x\x01y\"}", JSONV_CONTROL, 7, "a");
    bad("{\"a\":\"x\ty\"}", JSONV_CONTROL, 7, "a");
    bad("{\"a\":\"\x1f\"}", JSONV_CONTROL, 6, "a");
    CHECK(check_len(raw_nul, sizeof raw_nul - 1) == BD_EINVAL && res.kind == JSONV_CONTROL &&
          res.offset == 7 && strcmp(res.path, "k") == 0);
    bad("{\"t\":\"\\ud800\"}", JSONV_SURROGATE, 6, "t");
    bad("{\"t\":\"\\ud800x\"}", JSONV_SURROGATE, 6, "t");
    bad("{\"t\":\"\\ud800\\u0041\"}", JSONV_SURROGATE, 6, "t");
    bad("{\"t\":\"\\ud800\\ud800\"}", JSONV_SURROGATE, 6, "t");
    bad("{\"t\":\"\\udc00\"}", JSONV_SURROGATE, 6, "t");
    bad("{\"t\":\"ok \\uDFFF\"}", JSONV_SURROGATE, 9, "t");
    bad("{\"t\":\"\xff\"}", JSONV_UTF8, 6, "t");
    bad("{\"t\":\"\xc3\x28\"}", JSONV_UTF8, 6, "t");
    bad("{\"t\":\"\xc0\xaf\"}", JSONV_UTF8, 6, "t");         /* overlong '/' */
    bad("{\"t\":\"\xe0\x80\xaf\"}", JSONV_UTF8, 6, "t");     /* overlong, 3 bytes */
    bad("{\"t\":\"\xed\xa0\x80\"}", JSONV_UTF8, 6, "t");     /* an encoded surrogate */
    bad("{\"t\":\"\xf4\x90\x80\x80\"}", JSONV_UTF8, 6, "t"); /* above U+10FFFF */
    bad("{\"t\":\"\xf5\x80\x80\x80\"}", JSONV_UTF8, 6, "t");
    bad("{\"t\":\"ab\xe2\x82\"}", JSONV_UTF8, 8, "t");       /* cut short */
    bad("{\"t\":\"\x80\"}", JSONV_UTF8, 6, "t");             /* a lone continuation */
    bad("{\"\xff\":1}", JSONV_UTF8, 2, "?");
}

static void test_paths(void)
{
    bad("{\"messages\":[{\"role\":\"user\"},{\"content\":[{\"text\":\"a\"},{\"text\":\"\\u0000\"}]}]}",
        JSONV_NUL, 63, "messages[1].content[1].text");
    bad("[[1],[2,{\"a\":[\"\\u0000\"]}]]", JSONV_NUL, 15, "[1][1].a[0]");
    /* names are decoded; what is not printable ASCII shows as '?' */
    bad("{\"te\\u0078t\":\"\\u0000\"}", JSONV_NUL, 14, "text");
    bad("{\"caf\xc3\xa9\":\"\\u0000\"}", JSONV_NUL, 10, "caf?");
    bad("{\"\\ud83d\\ude00\\n\\\"\\/\":\"\\u0000\"}", JSONV_NUL, 23, "?\?\"/");
    /* a member that has ended is no longer in the path */
    bad("{\"a\":\"x\",\"b\":[\"\\u0000\"]}", JSONV_NUL, 15, "b[0]");
    bad("{\"a\":{\"x\":1},\"b\":\"\\u0000\"}", JSONV_NUL, 18, "b");
}

static void test_path_cut(void)
{
    char *s = malloc(400);
    int n = snprintf(s, 400, "{\"");
    for (int i = 0; i < 300; i++)
        s[n++] = 'k';
    n += snprintf(s + n, 400 - (size_t)n, "\":\"\\u0000\"}");
    CHECK(check_len(s, (size_t)n) == BD_EINVAL && res.kind == JSONV_NUL);
    CHECK(strlen(res.path) == JSONV_PATH_MAX - 1);
    free(s);
}

static void test_depth(void)
{
    size_t n = JSONV_MAX_DEPTH;
    char *s = malloc(2 * n + 4);
    memset(s, '[', n);
    memset(s + n, ']', n);
    CHECK(check_len(s, 2 * n) == 0);             /* JSONV_MAX_DEPTH levels: fine */
    memset(s, '[', n + 1);
    memset(s + n + 1, ']', n + 1);
    CHECK(check_len(s, 2 * n + 2) == BD_EINVAL);  /* one more: refused */
    CHECK(res.kind == JSONV_DEPTH && res.offset == n);
    free(s);
    CHECK(jsonv_check(NULL, 0, &res) == BD_EINVAL && res.kind == JSONV_EMPTY);
    for (int k = JSONV_OK; k <= JSONV_UTF8; k++)
        CHECK(jsonv_kind_text((enum jsonv_kind)k)[0] != '\0');
}

/* jsonv_value: one value at the start, where it ends, and the members it saw on the way. */
struct seen {
    char log[512];
};

static void on_member(void *ctx, const struct jsonv_member *m)
{
    struct seen *s = ctx;
    size_t n = strlen(s->log);
    snprintf(s->log + n, sizeof s->log - n, "%u/%.*s%s=%c ", m->depth, (int)m->name_len,
             m->name, m->escaped ? "(esc)" : "", m->value[0]);
}

static void test_value_prefix(void)
{
    const char *s = " [{\"a\":1,\"b\":{\"c\":\"x\"}}, 7, {\"d\\u0041\": [true]}] , tail";
    struct seen seen = {{0}};
    size_t used = 99;

    CHECK(jsonv_value(s, strlen(s), &used, &res, on_member, &seen) == 0);
    CHECK(used == strlen(s) - strlen(" , tail"));
    CHECK_STR(seen.log, "2/a=1 2/b={ 3/c=\" 2/d\\u0041(esc)=[ ");
    /* the value itself is checked strictly; what follows is not looked at */
    CHECK(jsonv_value("{\"a\":01}", 8, &used, &res, NULL, NULL) == BD_EINVAL);
    CHECK(res.kind == JSONV_SYNTAX && res.offset == 6);
    CHECK(jsonv_value("\"ab\" \x01\xff", 7, &used, &res, NULL, NULL) == 0 && used == 4);
    CHECK(jsonv_value("  ", 2, &used, &res, NULL, NULL) == BD_EINVAL && res.kind == JSONV_EMPTY);
    CHECK(jsonv_value("[1,", 3, &used, &res, NULL, NULL) == BD_EINVAL);
    /* a string's plain run ends at DEL (kept), control characters and UTF-8 lead bytes */
    ok("\"a\x7f\xc3\xa9" "b\"");
    bad("\"ab\x1f\"", JSONV_CONTROL, 3, "");
    bad("\"ab\xc3\"", JSONV_UTF8, 3, "");
}

/* jsonv_string / jsonv_number (with their fast paths for plain strings and decimals) against
 * jsonv_check on the token alone: over random short inputs from an alphabet of the bytes that
 * matter, the length returned is exactly the shortest prefix that is a complete valid string
 * (the first prefix check accepts ending in '"') / the longest prefix that is a valid number
 * when no byte that could continue a number follows it (and never an invalid one). */
static int num_byte(char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

static void show(const char *what, const char *s, size_t len, size_t got, size_t want)
{
    fprintf(stderr, "  %s", what);
    for (size_t i = 0; i < len; i++)
        fprintf(stderr, " %02x", (unsigned char)s[i]);
    fprintf(stderr, ": got %zu, want %zu\n", got, want);
}

static void test_token_lengths(void)
{
    static const char alpha[] = {'-', '0', '1', '9', '.', 'e', 'E', '+', ',', '"', '\\', 'u',
                                 'a', ' ', 0x01, (char)0xC3, (char)0xA9, ']', 0x7f, 'n'};
    unsigned seed = 12345;
    char s[12];
    size_t bad_count = 0;

    for (int t = 0; t < 200000; t++) {
        size_t len = 1 + (seed = seed * 1103515245u + 12345u) % 10, want = 0, got;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = alpha[(seed >> 16) % sizeof(alpha)];
        }
        if (t % 2 == 0)
            s[0] = '"';
        if (s[0] == '"') {
            for (size_t k = 2; k <= len && !want; k++)
                if (s[k - 1] == '"' && check_len(s, k) == 0)
                    want = k;
            got = jsonv_string(s, len);
        } else {
            for (size_t k = len; k >= 1 && !want; k--)
                if (check_len(s, k) == 0 && s[0] != ' ' && s[k - 1] != ' ' &&
                    (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
                    want = k;
            got = jsonv_number(s, len);
            if (got > 0 && check_len(s, got) != 0 && bad_count++ < 5)
                show("number (invalid)", s, len, got, 0);
            if (want < len && num_byte(s[want]))
                want = got; /* "00", "9.": what may follow is the machine's call */
        }
        if (got != want && bad_count++ < 5)
            show("token", s, len, got, want);
    }
    CHECK(bad_count == 0);
}

int main(void)
{
    test_token_lengths();
    test_value_prefix();
    test_valid();
    test_syntax();
    test_trailing();
    test_strings();
    test_paths();
    test_path_cut();
    test_depth();
    return tcheck_summary("test_jsonv");
}
