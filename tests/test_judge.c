/* test_judge.c - the judge: the request body (layout, rubric, response_format schema) and
 * every answer variant the tolerant reader meets: plain JSON, prose, code fences, two
 * objects, braces and escaped quotes in strings, bad scores, garbage, empty, harmony. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "config.h"
#include "judge.h"
#include "oai.h"
#include "tcheck.h"

#define GOOD "{\"coherence\": 4, \"faithfulness\": 5, \"brevity\": 3, \"rationale\": \"ok\"}"

static struct judgement parse(const char *s)
{
    struct judgement j;
    judge_parse(s, s ? strlen(s) : 0, &j);
    return j;
}

static void expect_good(const char *content, int c, int f, int b, const char *rationale)
{
    struct judgement j = parse(content);
    int before = tcheck_fail_;
    CHECK(j.valid == 1);
    CHECK(j.coherence == c && j.faithfulness == f && j.brevity == b);
    CHECK_NEAR(j.overall, (c + f + b) / 3.0, 1e-12);
    CHECK_STR(j.rationale, rationale);
    CHECK_STR(j.why, "");
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ for content: %s\n", content);
}

static void expect_null(const char *content, const char *why)
{
    struct judgement j = parse(content);
    int before = tcheck_fail_;
    CHECK(j.valid == 0);
    CHECK_STR(j.why, why);
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ for content: %s\n", content ? content : "(null)");
}

static void test_plain_and_wrapped(void)
{
    expect_good(GOOD, 4, 5, 3, "ok");
    expect_good("  \n" GOOD "\n", 4, 5, 3, "ok");
    expect_good("Here is my evaluation of the brief:\n" GOOD "\nI hope this helps.", 4, 5, 3,
                "ok");
    expect_good("```json\n" GOOD "\n```", 4, 5, 3, "ok");
    expect_good("Sure.\n```\n" GOOD "\n```\nDone.", 4, 5, 3, "ok");
    /* compact, other key order, extra members tolerated */
    expect_good("{\"rationale\":\"r\",\"brevity\":1,\"faithfulness\":2,\"coherence\":3,"
                "\"notes\":{\"x\":[1,{\"y\":2}]}}", 3, 2, 1, "r");
    expect_good("{\"coherence\": 5.0, \"faithfulness\": 5, \"brevity\": 5, \"rationale\": \"\"}",
                5, 5, 5, "");
}

static void test_first_object_wins(void)
{
    expect_good("{\"coherence\": 2, \"faithfulness\": 2, \"brevity\": 2, \"rationale\": \"a\"}\n"
                "{\"coherence\": 5, \"faithfulness\": 5, \"brevity\": 5, \"rationale\": \"b\"}",
                2, 2, 2, "a");
    /* the first object decides even when it is not a rubric */
    expect_null("{\"score\": 5} then " GOOD, "coherence: missing");
    /* spans that are not JSON are skipped: prose braces, an unclosed brace, an array */
    expect_good("I would say {roughly fine}: " GOOD, 4, 5, 3, "ok");
    expect_good("{ oops, let me redo: " GOOD, 4, 5, 3, "ok");
    expect_good("[1, 2] " GOOD, 4, 5, 3, "ok");
}

static void test_strings(void)
{
    expect_good("{\"coherence\": 4, \"faithfulness\": 4, \"brevity\": 4, "
                "\"rationale\": \"uses {braces} and a lone } and {\"}", 4, 4, 4,
                "uses {braces} and a lone } and {");
    expect_good("{\"coherence\": 3, \"faithfulness\": 4, \"brevity\": 5, "
                "\"rationale\": \"the brief says \\\"record\\\" {quarter\\\\\"}", 3, 4, 5,
                "the brief says \"record\" {quarter\\");
    expect_good("{\"coherence\": 3, \"faithfulness\": 4, \"brevity\": 5, "
                "\"rationale\": \"caf\\u00e9 \\u2014 ok\"}", 3, 4, 5, "caf\xc3\xa9 \xe2\x80\x94 ok");
    /* rationale missing or not a string: kept empty, the scores still count */
    expect_good("{\"coherence\": 1, \"faithfulness\": 1, \"brevity\": 1}", 1, 1, 1, "");
    expect_good("{\"coherence\": 1, \"faithfulness\": 1, \"brevity\": 1, \"rationale\": 7}", 1, 1,
                1, "");
}

static void test_bad_scores(void)
{
    expect_null("{\"coherence\": 0, \"faithfulness\": 4, \"brevity\": 4, \"rationale\": \"\"}",
                "coherence: out of range (0; expected 1 to 5)");
    expect_null("{\"coherence\": 4, \"faithfulness\": 6, \"brevity\": 4, \"rationale\": \"\"}",
                "faithfulness: out of range (6; expected 1 to 5)");
    expect_null("{\"coherence\": 4, \"faithfulness\": 4, \"brevity\": 7, \"rationale\": \"\"}",
                "brevity: out of range (7; expected 1 to 5)");
    expect_null("{\"coherence\": 3.5, \"faithfulness\": 4, \"brevity\": 4, \"rationale\": \"\"}",
                "coherence: not an integer (3.5)");
    expect_null("{\"coherence\": \"4\", \"faithfulness\": 4, \"brevity\": 4, \"rationale\": \"\"}",
                "coherence: not a number");
    expect_null("{\"coherence\": 4, \"brevity\": 4, \"rationale\": \"\"}",
                "faithfulness: missing");
    expect_null("{\"coherence\": null, \"faithfulness\": 4, \"brevity\": 4}",
                "coherence: not a number");
    expect_null("{\"coherence\": -1, \"faithfulness\": 4, \"brevity\": 4}",
                "coherence: out of range (-1; expected 1 to 5)");
    expect_null("{\"coherence\": 1e300, \"faithfulness\": 4, \"brevity\": 4}",
                "coherence: out of range (1e+300; expected 1 to 5)");
}

static void test_garbage_empty(void)
{
    expect_null(NULL, "empty answer");
    expect_null("", "empty answer");
    expect_null("The brief is good. I give it four out of five.", "no JSON object in the answer");
    expect_null("{\"coherence\": 4, \"faithfulness\": 5", "no JSON object in the answer");
    expect_null("}{}{", "coherence: missing"); /* "{}" is the first complete object */
    expect_null("\x01\x02\xff{", "no JSON object in the answer");
    {
        /* more brace spans than the reader tries */
        char buf[4096] = "";
        for (int i = 0; i < JUDGE_MAX_CANDIDATES + 5; i++)
            strcat(buf, "{x} ");
        strcat(buf, GOOD);
        expect_null(buf, "no JSON object in the answer");
    }
}

static void test_harmony(void)
{
    const char *leak =
        "<|channel|>analysis<|message|>Draft scores: {\"coherence\": 1, \"faithfulness\": 1, "
        "\"brevity\": 1, \"rationale\": \"draft\"}<|end|><|start|>assistant<|channel|>final"
        "<|message|>" GOOD "<|return|>";
    expect_good(leak, 4, 5, 3, "ok");
    expect_null("<|channel|>analysis<|message|>{\"coherence\": 5, \"faithfulness\": 5, "
                "\"brevity\": 5}", "empty answer"); /* cut off before the final channel */
    {
        /* the model client's parser reduces the leak first (clients/oai.c) */
        cJSON *body = cJSON_CreateObject(), *choices = cJSON_AddArrayToObject(body, "choices");
        cJSON *c0 = cJSON_CreateObject(), *msg = cJSON_AddObjectToObject(c0, "message");
        struct oai_result r;
        struct judgement j;
        char *text, err[200];
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "content", leak);
        cJSON_AddItemToArray(choices, c0);
        text = cJSON_PrintUnformatted(body);
        memset(&r, 0, sizeof(r));
        CHECK(oai_parse_response(text, strlen(text), 100, &r, err, sizeof(err)) == 0);
        CHECK(strstr(r.content, "analysis") == NULL);
        judge_parse(r.content, r.content_len, &j);
        CHECK(j.valid && j.coherence == 4 && j.faithfulness == 5 && j.brevity == 3);
        oai_result_free(&r);
        free(text);
        cJSON_Delete(body);
    }
}

static void test_long_rationale(void)
{
    size_t n = JUDGE_RATIONALE_MAX * 2;
    char *content = malloc(n + 200), *p;
    struct judgement j;
    p = content + sprintf(content, "{\"coherence\": 2, \"faithfulness\": 3, \"brevity\": 4, "
                                   "\"rationale\": \"");
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(p, "\xc3\xa9", 2); /* é: a cut must not split it */
        p += 2;
    }
    strcpy(p, "\"}");
    judge_parse(content, strlen(content), &j);
    CHECK(j.valid);
    CHECK(strlen(j.rationale) == JUDGE_RATIONALE_MAX - 2);
    CHECK(((unsigned char)j.rationale[strlen(j.rationale) - 1]) == 0xa9);
    free(content);
}

static void test_find_object(void)
{
    size_t a, e;
    const char *s = "x {\"a\": \"}\"} y";
    CHECK(judge_find_object(s, strlen(s), &a, &e) == 0);
    CHECK(a == 2 && e == strlen(s) - 2);
    CHECK(judge_find_object("no", 2, &a, &e) == -1);
    /* len bounds the search: the object is beyond it */
    CHECK(judge_find_object("ab{\"k\":1}", 2, &a, &e) == -1);
}

static const cJSON *at(const cJSON *o, const char *path)
{
    char buf[200], *tok, *save = NULL;
    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
        o = cJSON_GetObjectItemCaseSensitive(o, tok);
    return o;
}

static void test_response_format(void)
{
    cJSON *rf = judge_response_format();
    const cJSON *schema, *req, *c, *it;
    int n = 0;
    CHECK(rf != NULL);
    CHECK_STR(cJSON_GetStringValue(at(rf, "type")), "json_schema");
    CHECK_STR(cJSON_GetStringValue(at(rf, "json_schema.name")), "brief_rubric");
    CHECK(cJSON_IsTrue(at(rf, "json_schema.strict")));
    schema = at(rf, "json_schema.schema");
    CHECK_STR(cJSON_GetStringValue(at(schema, "type")), "object");
    CHECK(cJSON_IsFalse(at(schema, "additionalProperties")));
    req = at(schema, "required");
    CHECK(cJSON_GetArraySize(req) == 4);
    cJSON_ArrayForEach(it, req)
        CHECK(at(schema, "properties") &&
              cJSON_GetObjectItemCaseSensitive(at(schema, "properties"), it->valuestring));
    CHECK(cJSON_GetArraySize(at(schema, "properties")) == 4);
    c = at(schema, "properties.coherence");
    CHECK_STR(cJSON_GetStringValue(at(c, "type")), "integer");
    cJSON_ArrayForEach(it, at(c, "enum"))
        CHECK(it->valuedouble == ++n);
    CHECK(n == 5);
    CHECK_STR(cJSON_GetStringValue(at(schema, "properties.rationale.type")), "string");
    cJSON_Delete(rf);
}

static void test_build_request(void)
{
    struct cfg_err err;
    const char *conf = "{\"models\": {\"judge\": {\"name\": \"judge-x\"}}}";
    struct bd_config *c = config_load_string(conf, strlen(conf), &err);
    struct model_cfg m;
    size_t chars = 0;
    const char *doc = "Acme sold 1,200 units.\nProfit rose.";
    const char *user = "Document:\nAcme sold 1,200 units.\nProfit rose.\n\nMaximum words: 60\n\n"
                       "Brief:\nAcme sold 1200 units.";
    char *body;
    cJSON *o, *msgs;
    CHECK(c != NULL);
    if (!c)
        return;
    m = c->judge;
    m.temperature = 0;
    body = judge_build_request(&m, doc, strlen(doc), 60, "Acme sold 1200 units.", &chars);
    o = body ? cJSON_Parse(body) : NULL;
    CHECK(o != NULL);
    CHECK_STR(cJSON_GetStringValue(at(o, "model")), "judge-x");
    CHECK(cJSON_GetNumberValue(at(o, "temperature")) == 0);
    CHECK(cJSON_GetNumberValue(at(o, "max_tokens")) == 600);
    CHECK(cJSON_IsFalse(at(o, "stream")));
    CHECK(at(o, "logprobs") == NULL);
    msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 2);
    CHECK_STR(cJSON_GetStringValue(at(cJSON_GetArrayItem(msgs, 0), "role")), "system");
    CHECK_STR(cJSON_GetStringValue(at(cJSON_GetArrayItem(msgs, 0), "content")),
              c->judge.prompt_system);
    CHECK_STR(cJSON_GetStringValue(at(cJSON_GetArrayItem(msgs, 1), "role")), "user");
    CHECK_STR(cJSON_GetStringValue(at(cJSON_GetArrayItem(msgs, 1), "content")), user);
    CHECK(chars == strlen(c->judge.prompt_system) + strlen(user));
    CHECK_STR(cJSON_GetStringValue(at(o, "response_format.json_schema.name")), "brief_rubric");
    /* the last member: the ordinary request is unchanged before it */
    CHECK_STR(o->child->prev->string, "response_format");
    cJSON_Delete(o);
    free(body);
    config_unref(c);
}

int main(void)
{
    test_plain_and_wrapped();
    test_first_object_wins();
    test_strings();
    test_bad_scores();
    test_garbage_empty();
    test_harmony();
    test_long_rationale();
    test_find_object();
    test_response_format();
    test_build_request();
    return tcheck_summary("test_judge");
}
