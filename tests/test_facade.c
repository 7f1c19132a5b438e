/* test_facade.c - the OpenAI facade's request translation (facade_parse): the document, the
 * instructions, max_words, and the strict JSON every request body gets. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "facade.h"
#include "tcheck.h"

static int fparse(const char *body, struct job_req *r, struct job_verr *e)
{
    struct facade_req fr;
    return facade_parse(body, strlen(body), "briefd-hybrid", 1000, r, &fr, e);
}

static void expect_err(const char *body, int status, const char *code, const char *param)
{
    struct job_req r;
    struct job_verr e;
    int rc;
    memset(&e, 0, sizeof e);
    rc = fparse(body, &r, &e);
    CHECK(rc == -1);
    if (rc == 0) {
        fprintf(stderr, "  accepted: %.70s -> text \"%.40s\"\n", body, r.text);
        job_req_free(&r);
    }
    if (e.status != status || !e.code || strcmp(e.code, code) != 0 || strcmp(e.param, param))
        fprintf(stderr, "  for %.90s: %d %s '%s'\n", body, e.status, e.code ? e.code : "-",
                e.param);
    CHECK(e.status == status);
    CHECK_STR(e.code, code);
    CHECK_STR(e.param, param);
}

static void test_translation(void)
{
    struct job_req r;
    struct job_verr e;
    struct facade_req fr;
    const char *body = "{\"model\":\"briefd-hybrid\",\"max_tokens\":60,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"temperature\":0.2,"
                       "\"messages\":[{\"role\":\"system\",\"content\":\"focus on risks\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
                       "{\"type\":\"text\",\"text\":\"two\"}]}]}";
    CHECK(facade_parse(body, strlen(body), "briefd-hybrid", 1000, &r, &fr, &e) == 0);
    CHECK_STR(r.text, "one\ntwo");
    CHECK_STR(r.instructions, "focus on risks");
    CHECK(r.max_words == 45);
    CHECK(fr.stream == 1 && fr.include_usage == 1);
    job_req_free(&r);
    expect_err("{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404,
               "model_not_found", "model");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[]}", 400, "invalid_type", "messages");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}",
               400, "text_required", "messages");
}

/* The facade's bodies get the same strict JSON as POST /v1/jobs. */
static void test_strict_json(void)
{
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"Revenue rose 10%.\\u0000 SECRET TAIL\"}]}",
               400, "invalid_value", "messages[0].content");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
               "{\"type\":\"text\",\"text\":\"b\\u0000\"}]}]}",
               400, "invalid_value", "messages[1].content[1].text");
    expect_err("{\"model\":\"briefd-hybrid\\u0000x\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]}", 400, "invalid_value", "model");
    expect_err("{\"model\":\"briefd-hybrid\",\"metadata\":{\"k\":\"\\u0000\"},"
               "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
               400, "invalid_value", "metadata.k");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\\u0000\","
               "\"content\":\"x\"}]}", 400, "invalid_value", "messages[0].role");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]} trailing", 400, "invalid_json", "");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]}{}", 400, "invalid_json", "");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"a\x02z\"}]}", 400, "invalid_json", "");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"\\ud800\"}]}", 400, "invalid_utf8", "messages[0].content");
    expect_err("{\"model\":\"briefd-hybrid\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"\xed\xa0\x80\"}]}", 400, "invalid_utf8", "messages[0].content");
}

int main(void)
{
    test_translation();
    test_strict_json();
    return tcheck_summary("test_facade");
}
