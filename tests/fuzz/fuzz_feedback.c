/* fuzz_feedback.c - libFuzzer harness: feedback_parse, the stored item, feedback_job_facts. */
/*
 * Input layout: [mode] [bytes ...]. Even mode: the bytes are a POST /v1/jobs/{id}/feedback
 * body (no terminating NUL, as the HTTP layer hands it over); odd mode: a job object whose
 * facts are read (as GET returns it, though any JSON is tried).
 * Oracles: a failure fills the error and leaves the feedback zeroed; a success respects every
 * bound of feedback.h and its stored item reads back with the same fields; facts never point
 * outside the job object and list at most FEEDBACK_MAX_VOTES verdicts, none of a guard.
 */
#include "feedback.h"

#include <cjson/cJSON.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_feedback: " __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static size_t chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void check_item(const struct feedback *f)
{
    cJSON *o = feedback_item_json(f, "job_x", 1700000000123, "anon");
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON *back = text ? cJSON_Parse(text) : NULL;
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(back, "label");
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(back, "score");
    if (!back || !cJSON_IsNumber(score) || score->valuedouble != f->score)
        FAIL("stored item does not read back");
    if (f->label ? !cJSON_IsString(label) || strcmp(label->valuestring, f->label) != 0
                 : !cJSON_IsNull(label))
        FAIL("stored item changed the label");
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(o);
}

static void body(const char *data, size_t size)
{
    static const struct feedback zero;
    struct feedback f;
    struct job_verr e;
    memset(&e, 0, sizeof e);
    if (feedback_parse(data, size, &f, &e) != 0) {
        if (e.status != 400 && e.status != 413 && e.status != 422 && e.status != 500)
            FAIL("unexpected status %d", e.status);
        if (!e.code || !e.code[0] || !e.msg[0] || memcmp(&f, &zero, sizeof f) != 0)
            FAIL("error not filled or feedback not zeroed (%d)", e.status);
        return;
    }
    if (f.score < 1 || f.score > 5)
        FAIL("score %d", f.score);
    if (f.label && (chars(f.label) < 1 || chars(f.label) > FEEDBACK_LABEL_MAX))
        FAIL("label of %zu characters", chars(f.label));
    if (f.comment && chars(f.comment) > FEEDBACK_COMMENT_MAX)
        FAIL("comment of %zu characters", chars(f.comment));
    check_item(&f);
    feedback_free(&f);
}

static void facts(const char *data, size_t size)
{
    cJSON *job = cJSON_ParseWithLength(data, size);
    struct feedback_facts ff;
    feedback_job_facts(job, &ff);
    if (ff.n > FEEDBACK_MAX_VOTES)
        FAIL("%zu verdicts", ff.n);
    for (size_t i = 0; i < ff.n; i++)
        if (!ff.policies[i] || !ff.verdicts[i] || strncmp(ff.policies[i], "guard:", 6) == 0)
            FAIL("verdict %zu", i);
    if (ff.decision && strcmp(ff.decision, "keep") != 0 && strcmp(ff.decision, "refine") != 0)
        FAIL("decision %s", ff.decision);
    if (ff.finished_ms < 0)
        FAIL("finished_ms %lld", (long long)ff.finished_ms);
    cJSON_Delete(job);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        body((const char *)data + 1, size - 1);
    else
        facts((const char *)data + 1, size - 1);
    return 0;
}
