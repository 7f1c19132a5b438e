/* test_evalset.c - dataset lines: the fields, the job API's rules, ids (default, bounds,
 * repeats with line numbers), blank lines, CRLF. */
#include <stdlib.h>

#include "evalset.h"
#include "tcheck.h"

static int parse(const char *line, size_t lineno, struct evalset_item *it, char *msg)
{
    return evalset_parse_line(line, strlen(line), lineno, 1000, it, msg, 300);
}

static void expect_bad(const char *line, const char *msg)
{
    struct evalset_item it;
    char got[300] = "";
    int before = tcheck_fail_;
    CHECK(parse(line, 7, &it, got) == -1);
    CHECK_STR(got, msg);
    CHECK(it.id == NULL && it.req.text == NULL);
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ for line: %s\n", line);
}

static void test_good(void)
{
    struct evalset_item it;
    char msg[300] = "";
    CHECK(parse("{\"text\": \"Hello world.\"}", 3, &it, msg) == 0);
    CHECK_STR(it.id, "line-3");
    CHECK(it.line == 3);
    CHECK_STR(it.req.text, "Hello world.");
    CHECK(it.req.max_words == JOB_DEFAULT_MAX_WORDS);
    CHECK(it.req.instructions == NULL && it.req.n_topic_flags == 0);
    evalset_item_free(&it);
    CHECK(parse("{\"id\": \"doc-1\", \"text\": \"T\", \"max_words\": 60, \"topic_flags\": "
                "[\"legal\", \"exec\"], \"instructions\": \"be short\"}\r", 1, &it, msg) == 0);
    CHECK_STR(it.id, "doc-1");
    CHECK(it.req.max_words == 60 && it.req.n_topic_flags == 2);
    CHECK_STR(it.req.topic_flags[1], "exec");
    CHECK_STR(it.req.instructions, "be short");
    evalset_item_free(&it);
    CHECK(parse("{\"id\": null, \"text\": \"T\", \"max_words\": null}", 9, &it, msg) == 0);
    CHECK_STR(it.id, "line-9");
    evalset_item_free(&it);
}

static void test_bad(void)
{
    char big[1200];
    expect_bad("", "invalid JSON");
    expect_bad("{\"text\": \"T\"", "invalid JSON");
    expect_bad("[1, 2]", "expected a JSON object");
    expect_bad("\"text\"", "expected a JSON object");
    expect_bad("{}", "field 'text' is required");
    expect_bad("{\"text\": \"  \"}", "field 'text' must not be empty");
    expect_bad("{\"text\": 5}", "field 'text' must be a string");
    expect_bad("{\"text\": \"T\", \"max_words\": 5}", "field 'max_words' must be between 10 and 2000");
    expect_bad("{\"text\": \"T\", \"max_words\": 50.5}", "field 'max_words' must be an integer");
    expect_bad("{\"text\": \"T\", \"topic_flags\": \"legal\"}",
               "field 'topic_flags' must be an array of strings");
    expect_bad("{\"text\": \"T\", \"topic_flags\": [1]}", "field 'topic_flags[0]' must be a string");
    expect_bad("{\"text\": \"T\", \"instructions\": 3}", "field 'instructions' must be a string");
    expect_bad("{\"text\": \"T\", \"priority\": \"high\"}",
               "unknown field 'priority' (a dataset line has id, text, max_words, topic_flags, "
               "instructions)");
    expect_bad("{\"text\": \"T\", \"callback_url\": \"http://x/y\"}",
               "unknown field 'callback_url' (a dataset line has id, text, max_words, "
               "topic_flags, instructions)");
    expect_bad("{\"text\": \"T\", \"text\": \"U\"}", "field 'text' appears twice");
    expect_bad("{\"id\": 4, \"text\": \"T\"}",
               "field 'id' must be a string of 1 to 128 printable characters");
    expect_bad("{\"id\": \"\", \"text\": \"T\"}",
               "field 'id' must be a string of 1 to 128 printable characters");
    expect_bad("{\"id\": \"a\\nb\", \"text\": \"T\"}",
               "field 'id' must be a string of 1 to 128 printable characters");
    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"id\": \"", 8);
    memcpy(big + 8 + 129, "\", \"text\": \"T\"}", 16);
    expect_bad(big, "field 'id' must be a string of 1 to 128 printable characters");
    /* the text bound is the config's (1000 here) */
    memset(big, 'y', sizeof(big));
    memcpy(big, "{\"text\": \"", 10);
    memcpy(big + 10 + 1001, "\"}", 3);
    expect_bad(big, "field 'text' is 1001 bytes; the limit is 1000 (limits.max_text_bytes)");
}

static void report(size_t line, const char *msg, void *data)
{
    char *out = data;
    snprintf(out + strlen(out), 600 - strlen(out), "%zu: %s\n", line, msg);
}

static void test_set(void)
{
    static const char *const lines[] = {"{\"id\": \"b\", \"text\": \"1\"}",
                                        "{\"id\": \"a\", \"text\": \"2\"}",
                                        "{\"id\": \"b\", \"text\": \"3\"}",
                                        "{\"text\": \"4\"}",
                                        "{\"id\": \"b\", \"text\": \"5\"}",
                                        "{\"id\": \"line-4\", \"text\": \"6\"}"};
    struct evalset set = {0};
    char out[600] = "", msg[300];
    for (size_t i = 0; i < 6; i++) {
        struct evalset_item it;
        CHECK(parse(lines[i], i + 1, &it, msg) == 0);
        CHECK(evalset_add(&set, &it) == 0);
        CHECK(it.id == NULL); /* moved */
    }
    CHECK(set.n == 6);
    CHECK(evalset_check_ids(&set, report, out) == 3);
    CHECK_STR(out, "3: id 'b' already used on line 1\n"
                   "5: id 'b' already used on line 1\n"
                   "6: id 'line-4' already used on line 4\n");
    evalset_free(&set);
    CHECK(set.n == 0 && set.items == NULL);
    CHECK(evalset_check_ids(&set, report, out) == 0);
}

static void test_blank(void)
{
    CHECK(evalset_blank("", 0));
    CHECK(evalset_blank(" \t\r\n", 4));
    CHECK(!evalset_blank(" {}", 3));
}

int main(void)
{
    test_good();
    test_bad();
    test_set();
    test_blank();
    return tcheck_summary("test_evalset");
}
