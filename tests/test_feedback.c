/* test_feedback.c - unit tests of service/feedback.c: every bad body with its status, code and
 * param; the stored item; the facts of a job the statistics count feedback under. */
#include "feedback.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tcheck.h"

/* body must be refused with status, code and param ("" for none). */
static void refused(const char *body, int status, const char *code, const char *param)
{
    struct feedback f;
    struct job_verr e;
    memset(&e, 0, sizeof(e));
    CHECK(feedback_parse(body, strlen(body), &f, &e) == -1);
    CHECK(e.status == status);
    CHECK_STR(e.code, code);
    CHECK_STR(e.param, param);
    CHECK(f.label == NULL && f.comment == NULL && f.score == 0);
    if (e.status != status || !e.code || strcmp(e.code, code) != 0)
        fprintf(stderr, "  body %s: %d %s %s\n", body, e.status, e.code ? e.code : "-", e.param);
}

static void test_refused(void)
{
    char big[2100 + 40], label[80];
    size_t n;
    refused("", 400, "invalid_json", "");
    refused("{", 400, "invalid_json", "");
    refused("[1]", 400, "invalid_json", "");
    refused("{\"score\": 4} x", 400, "invalid_json", "");
    refused("{\"score\": 4, \"score\": 5}", 400, "duplicate_parameter", "score");
    refused("{\"score\": 4, \"stars\": 5}", 400, "unknown_parameter", "stars");
    refused("{}", 400, "score_required", "score");
    refused("{\"label\": \"good\"}", 400, "score_required", "score");
    refused("{\"score\": \"4\"}", 400, "invalid_type", "score");
    refused("{\"score\": true}", 400, "invalid_type", "score");
    refused("{\"score\": null}", 400, "invalid_type", "score");
    refused("{\"score\": 0}", 422, "invalid_value", "score");
    refused("{\"score\": 6}", 422, "invalid_value", "score");
    refused("{\"score\": -1}", 422, "invalid_value", "score");
    refused("{\"score\": 3.5}", 400, "invalid_type", "score");
    refused("{\"score\": 4, \"label\": 7}", 400, "invalid_type", "label");
    refused("{\"score\": 4, \"label\": \"\"}", 422, "invalid_value", "label");
    refused("{\"score\": 4, \"comment\": [\"x\"]}", 400, "invalid_type", "comment");
    refused("{\"score\": 4, \"label\": \"a\\u0000b\"}", 400, "invalid_value", "label");
    refused("{\"score\": 4, \"comment\": \"\\ud800\"}", 400, "invalid_utf8", "comment");
    memset(label, 'x', 65);
    label[65] = '\0';
    snprintf(big, sizeof(big), "{\"score\": 4, \"label\": \"%s\"}", label);
    refused(big, 422, "invalid_value", "label");
    strcpy(big, "{\"score\": 4, \"comment\": \"");
    n = strlen(big);
    memset(big + n, 'y', 2001);
    strcpy(big + n + 2001, "\"}");
    refused(big, 422, "invalid_value", "comment");
    big[n + 2000] = '\0'; /* 2000 characters: accepted */
    strcat(big, "\"}");
    {
        struct feedback f;
        struct job_verr e;
        CHECK(feedback_parse(big, strlen(big), &f, &e) == 0 && strlen(f.comment) == 2000);
        feedback_free(&f);
    }
}

static void test_accepted(void)
{
    struct feedback f;
    struct job_verr e;
    /* 64 characters of 2 bytes each: counted as characters, not bytes */
    char body[400] = "{\"score\": 5.0, \"label\": \"", *item;
    cJSON *o;
    for (int i = 0; i < 64; i++)
        strcat(body, "\xc3\xa9");
    strcat(body, "\", \"comment\": \"\"}");
    CHECK(feedback_parse(body, strlen(body), &f, &e) == 0);
    CHECK(f.score == 5 && f.label && strlen(f.label) == 128 && f.comment && !f.comment[0]);
    feedback_free(&f);
    strcpy(body, "{\"score\": 1, \"label\": null, \"comment\": \"meh\"}");
    CHECK(feedback_parse(body, strlen(body), &f, &e) == 0);
    CHECK(f.score == 1 && f.label == NULL);
    CHECK_STR(f.comment, "meh");
    o = feedback_item_json(&f, "job_x", 1700000000123, "key_0123456789abcdef");
    item = cJSON_PrintUnformatted(o);
    CHECK_STR(item, "{\"object\":\"brief.feedback\",\"job_id\":\"job_x\",\"score\":1,"
                    "\"label\":null,\"comment\":\"meh\",\"created_at\":"
                    "\"2023-11-14T22:13:20.123Z\",\"api_key_id\":\"key_0123456789abcdef\"}");
    free(item);
    cJSON_Delete(o);
    feedback_free(&f);
}

static void test_facts(void)
{
    const char *job = "{\"id\":\"job_x\",\"status\":\"succeeded\",\"finished_at\":"
                      "\"2023-11-14T22:13:20.123Z\",\"metadata\":{\"source\":\"crm\"},"
                      "\"route\":{\"decision\":\"refine\",\"verdicts\":["
                      "{\"policy\":\"length\",\"verdict\":\"refine\"},"
                      "{\"policy\":\"topic\",\"verdict\":\"keep\"},"
                      "{\"policy\":\"guard:max_refine_rate\",\"verdict\":\"keep\"}]}}";
    cJSON *o = cJSON_Parse(job);
    struct feedback_facts ff;
    feedback_job_facts(o, &ff);
    CHECK(ff.finished);
    CHECK_STR(ff.decision, "refine");
    CHECK(ff.n == 2);
    CHECK_STR(ff.policies[1], "topic");
    CHECK_STR(ff.verdicts[0], "refine");
    CHECK_STR(ff.source, "crm");
    CHECK(ff.tenant == NULL);
    CHECK(ff.finished_ms == 1700000000123);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"status\":\"drafting\",\"finished_at\":null}");
    feedback_job_facts(o, &ff);
    CHECK(!ff.finished && ff.decision == NULL && ff.n == 0 && ff.finished_ms == 0);
    cJSON_Delete(o);
}

int main(void)
{
    test_refused();
    test_accepted();
    test_facts();
    return tcheck_summary("test_feedback");
}
