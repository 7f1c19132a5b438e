/* fuzz_job.c - libFuzzer harness: job_req_parse, the stored-form round trip, job_render_prompt. */
/*
 * Input layout: [limit] [POST /v1/jobs body ...]; limit % 8 picks max_text_bytes from
 * text_limits[] ('0'..'7' in the seeds: '7' is the default 262144). The body is passed
 * without a terminating NUL, as the HTTP layer would hand it over.
 * Oracles: a failure fills the error and leaves the request zeroed; a success respects every
 * bound of job.h; job_req_to_json -> text -> job_req_from_json gives back the same fields and
 * the same stored text; rendering the basic placeholders gives exactly the fields.
 */
#include "job.h"

#include <cjson/cJSON.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t text_limits[8] = {0, 1, 2, 5, 16, 64, 1000, 262144};

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_job: " __VA_ARGS__);                                                 \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_error(const struct job_req *r, const struct job_verr *e)
{
    static const struct job_req zero;

    if (e->status != 400 && e->status != 413 && e->status != 415 && e->status != 422 &&
        e->status != 500)
        FAIL("unexpected status %d", e->status);
    if (!e->code || !e->code[0] || !memchr(e->param, 0, sizeof e->param) ||
        !memchr(e->msg, 0, sizeof e->msg) || !e->msg[0])
        FAIL("error not filled (status %d)", e->status);
    if (memcmp(r, &zero, sizeof zero) != 0)
        FAIL("request not zeroed after failure %s", e->code);
}

static void check_bounds(const struct job_req *r, size_t max_text)
{
    size_t i;

    if (!r->text || r->text_len == 0 || r->text_len != strlen(r->text) || r->text_len > max_text)
        FAIL("text breaks its bounds (%zu bytes, limit %zu)", r->text_len, max_text);
    if (r->instructions && strlen(r->instructions) > JOB_MAX_INSTRUCTIONS)
        FAIL("instructions too long");
    if (r->max_words < 10 || r->max_words > 2000)
        FAIL("max_words %d out of range", r->max_words);
    if (r->n_topic_flags > JOB_MAX_FLAGS || (r->n_topic_flags && !r->topic_flags))
        FAIL("topic_flags: %zu entries", r->n_topic_flags);
    for (i = 0; i < r->n_topic_flags; i++) {
        size_t n = strlen(r->topic_flags[i]);
        if (n == 0 || n > JOB_MAX_FLAG_LEN)
            FAIL("topic flag %zu is %zu bytes", i, n);
    }
    if (r->priority != PRIO_LOW && r->priority != PRIO_NORMAL && r->priority != PRIO_HIGH)
        FAIL("priority %d", (int)r->priority);
    if (r->metadata &&
        (!cJSON_IsObject(r->metadata) || cJSON_GetArraySize(r->metadata) > JOB_MAX_META))
        FAIL("metadata is not a small object");
    if (r->callback_url && strlen(r->callback_url) > JOB_MAX_URL)
        FAIL("callback_url too long");
    (void)job_req_meta(r, "source");
    (void)job_req_meta(r, "tenant");
}

static void check_same(const struct job_req *a, const struct job_req *b)
{
    size_t i;

    if (!str_eq(a->text, b->text) || a->text_len != b->text_len)
        FAIL("round trip changed text");
    if (!str_eq(a->instructions, b->instructions))
        FAIL("round trip changed instructions");
    if (a->max_words != b->max_words || a->priority != b->priority)
        FAIL("round trip changed max_words/priority");
    if (a->n_topic_flags != b->n_topic_flags)
        FAIL("round trip changed the number of topic flags: %zu -> %zu", a->n_topic_flags,
             b->n_topic_flags);
    for (i = 0; i < a->n_topic_flags; i++)
        if (!str_eq(a->topic_flags[i], b->topic_flags[i]))
            FAIL("round trip changed topic flag %zu", i);
    if ((a->metadata == NULL) != (b->metadata == NULL))
        FAIL("round trip lost or invented metadata");
    if (a->metadata) { /* as text: cJSON_Compare mismatches objects with duplicate keys */
        char *ma = cJSON_PrintUnformatted(a->metadata), *mb = cJSON_PrintUnformatted(b->metadata);
        if (!ma || !mb || strcmp(ma, mb) != 0)
            FAIL("round trip changed metadata");
        free(ma);
        free(mb);
    }
    if (!str_eq(a->callback_url, b->callback_url))
        FAIL("round trip changed callback_url");
}

/* to_json -> text -> from_json must reproduce every field and the same stored text. */
static void round_trip(const struct job_req *r)
{
    struct job_req back;
    cJSON *j = job_req_to_json(r), *j2;
    char *s = j ? cJSON_PrintUnformatted(j) : NULL, *s2;

    if (!s)
        FAIL("job_req_to_json failed");
    if (job_req_from_json(s, strlen(s), &back) != 0)
        FAIL("stored form refused: %s", s);
    check_same(r, &back);
    j2 = job_req_to_json(&back);
    s2 = j2 ? cJSON_PrintUnformatted(j2) : NULL;
    if (!s2 || strcmp(s, s2) != 0)
        FAIL("stored form not stable");
    free(s2);
    cJSON_Delete(j2);
    job_req_free(&back);
    free(s);
    cJSON_Delete(j);
}

static void expect_render(const char *tmpl, const struct job_req *r, const char *draft,
                          const char *want)
{
    char *p = job_render_prompt(tmpl, r, draft);

    if (!p || strcmp(p, want) != 0)
        FAIL("render of \"%s\" gave \"%.80s\"", tmpl, p ? p : "(null)");
    free(p);
}

static void render(const struct job_req *r)
{
    static const char *const tmpls[] = {
        "Summarize the following document as an executive brief of at most {max_words} "
        "words.{instructions}\n\n{text}",
        "Rewrite the draft brief below.{instructions}\n\nSource document:\n{text}\n\n"
        "Draft brief:\n{draft}",
        "{",
        "}{",
        "{text",
        "{{text}}",
        "{max_words}{max_words",
        "{instructions}{draft}{x}",
        "",
    };
    char num[16];
    size_t i;

    for (i = 0; i < sizeof tmpls / sizeof tmpls[0]; i++) {
        free(job_render_prompt(tmpls[i], r, NULL));
        free(job_render_prompt(tmpls[i], r, r->text));
    }
    /* user-controlled templates: the text and the instructions */
    free(job_render_prompt(r->text, r, r->instructions));
    if (r->instructions)
        free(job_render_prompt(r->instructions, r, r->text));
    expect_render("{text}", r, NULL, r->text);
    expect_render("{draft}", r, r->text, r->text);
    expect_render("{draft}", r, NULL, "");
    snprintf(num, sizeof num, "%d", r->max_words);
    expect_render("{max_words}", r, NULL, num);
    if (!r->instructions || !r->instructions[0])
        expect_render("{instructions}", r, NULL, "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job_req r;
    struct job_verr e;
    size_t max_text;

    if (size < 1)
        return 0;
    max_text = text_limits[data[0] % 8];
    memset(&e, 0, sizeof e);
    if (job_req_parse((const char *)data + 1, size - 1, max_text, &r, &e) != 0) {
        check_error(&r, &e);
        return 0;
    }
    check_bounds(&r, max_text);
    round_trip(&r);
    render(&r);
    job_req_free(&r);
    if (r.text || r.topic_flags || r.metadata)
        FAIL("job_req_free left pointers behind");
    return 0;
}
