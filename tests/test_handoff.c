/* test_handoff.c - the requests an API keeps parsed for its own worker (service/handoff.h),
 * and the premise it rests on: a request read back from the text it was queued as is the
 * request that was validated. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handoff.h"
#include "job.h"
#include "jsonx.h"
#include "tcheck.h"

static int parse(const char *body, struct job_req *r)
{
    struct job_verr e;
    return job_req_parse(body, strlen(body), (size_t)1 << 22, r, &e);
}

/* The normalized text the API queues for r (what the worker is delivered). */
static char *queued_text(const struct job_req *r)
{
    cJSON *j = job_req_to_json(r);
    char *s = j ? jsonx_print(j) : NULL;
    cJSON_Delete(j);
    return s;
}

static int same_req(const struct job_req *a, const struct job_req *b)
{
    if (a->text_len != b->text_len || memcmp(a->text, b->text, a->text_len) != 0)
        return 0;
    if ((a->instructions == NULL) != (b->instructions == NULL) ||
        (a->instructions && strcmp(a->instructions, b->instructions) != 0))
        return 0;
    if (a->max_words != b->max_words || a->priority != b->priority ||
        a->n_topic_flags != b->n_topic_flags)
        return 0;
    for (size_t i = 0; i < a->n_topic_flags; i++)
        if (strcmp(a->topic_flags[i], b->topic_flags[i]) != 0)
            return 0;
    if ((a->callback_url == NULL) != (b->callback_url == NULL) ||
        (a->callback_url && strcmp(a->callback_url, b->callback_url) != 0))
        return 0;
    if ((a->metadata == NULL) != (b->metadata == NULL) ||
        (a->metadata && !cJSON_Compare(a->metadata, b->metadata, 1)))
        return 0;
    return 1;
}

/* The premise: parse(print(to_json(validated))) is the validated request, for requests
 * with every field. */
static void test_premise(void)
{
    static const char *const bodies[] = {
        "{\"text\":\"Revenue rose 12% to $41.2M in Q3.\"}",
        "{\"text\":\"Caf\\u00e9 \\\"quoted\\\"\\n\\ttabs \\ud83d\\ude00\",\"max_words\":40,"
        "\"instructions\":\"focus on risks\",\"topic_flags\":[\"legal\",\"exec\"],"
        "\"priority\":\"high\",\"metadata\":{\"source\":\"crm\",\"tenant\":\"acme\"}}",
        "{\"text\":\"x\",\"priority\":\"low\",\"topic_flags\":[],\"metadata\":{},"
        "\"callback_url\":\"https://hooks.example.com/briefd?x=1\"}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct job_req a, b;
        char *t;
        CHECK(parse(bodies[i], &a) == 0);
        t = queued_text(&a);
        CHECK(t != NULL);
        CHECK(t && job_req_from_json(t, strlen(t), &b) == 0);
        CHECK(same_req(&a, &b));
        free(t);
        job_req_free(&a);
        job_req_free(&b);
    }
}

static void test_put_take(void)
{
    struct handoff *h;
    struct job_req r, kept, got;
    char *t;
    CHECK(handoff_new(&h) == 0);
    CHECK(parse("{\"text\":\"Costs rose 8 percent.\",\"max_words\":30,"
                "\"metadata\":{\"tenant\":\"acme\"}}", &r) == 0);
    CHECK(parse("{\"text\":\"Costs rose 8 percent.\",\"max_words\":30,"
                "\"metadata\":{\"tenant\":\"acme\"}}", &kept) == 0);
    t = queued_text(&r);
    handoff_put(h, strdup(t), &r);
    CHECK(r.text == NULL && r.metadata == NULL); /* taken */
    CHECK(handoff_count(h, NULL) == 1);
    /* another text, or the same text cut short, is not it */
    CHECK(handoff_take(h, t, strlen(t) - 1, &got) == -1);
    CHECK(handoff_take(h, "{\"text\":\"Costs rose 9 percent.\"}", 31, &got) == -1);
    CHECK(handoff_take(h, t, strlen(t), &got) == 0);
    CHECK(same_req(&got, &kept));
    CHECK(handoff_take(h, t, strlen(t), &got) == -1); /* once */
    CHECK(handoff_count(h, NULL) == 0);
    job_req_free(&got);
    /* the same text queued twice (two submits of one document): taken twice */
    {
        struct job_req a, b;
        CHECK(parse("{\"text\":\"Costs rose 8 percent.\",\"max_words\":30,"
                    "\"metadata\":{\"tenant\":\"acme\"}}", &a) == 0);
        CHECK(parse("{\"text\":\"Costs rose 8 percent.\",\"max_words\":30,"
                    "\"metadata\":{\"tenant\":\"acme\"}}", &b) == 0);
        handoff_put(h, strdup(t), &a);
        handoff_put(h, strdup(t), &b);
        CHECK(handoff_take(h, t, strlen(t), &a) == 0);
        CHECK(handoff_take(h, t, strlen(t), &b) == 0);
        CHECK(handoff_take(h, t, strlen(t), &got) == -1);
        CHECK(same_req(&a, &kept) && same_req(&b, &kept));
        job_req_free(&a);
        job_req_free(&b);
    }
    {
        /* texts alike in their first 200 bytes and as long: each finds its own request */
        struct job_req a, b, ga, gb;
        char body[400], *ta, *tb;
        memset(body, 0, sizeof(body));
        strcpy(body, "{\"text\":\"");
        memset(body + 9, 'q', 200);
        strcpy(body + 209, "A.\"}");
        CHECK(parse(body, &a) == 0);
        ta = queued_text(&a);
        body[209] = 'B';
        CHECK(parse(body, &b) == 0);
        tb = queued_text(&b);
        handoff_put(h, strdup(ta), &a);
        handoff_put(h, strdup(tb), &b);
        CHECK(handoff_take(h, tb, strlen(tb), &gb) == 0);
        CHECK(handoff_take(h, ta, strlen(ta), &ga) == 0);
        CHECK(ga.text[200] == 'A' && gb.text[200] == 'B');
        job_req_free(&ga);
        job_req_free(&gb);
        free(ta);
        free(tb);
    }
    CHECK(handoff_take(NULL, t, strlen(t), &got) == -1);
    handoff_put(NULL, strdup(t), &kept); /* no table: the request stays with the caller */
    CHECK(kept.text != NULL);
    free(t);
    job_req_free(&kept);
    handoff_free(h);
}

static char *numbered(size_t i, size_t pad, struct job_req *r)
{
    char *body = malloc(pad + 64), *t;
    int n = snprintf(body, pad + 64, "{\"text\":\"doc %zu ", i);
    memset(body + n, 'a', pad);
    strcpy(body + n + pad, "\"}");
    CHECK(parse(body, r) == 0);
    free(body);
    t = queued_text(r);
    return t;
}

/* At most HANDOFF_MAX requests and HANDOFF_MAX_BYTES of text: the oldest go first. */
static void test_bounds(void)
{
    struct handoff *h;
    char *texts[HANDOFF_MAX + 10];
    size_t bytes, taken = 0;
    struct job_req r;
    CHECK(handoff_new(&h) == 0);
    for (size_t i = 0; i < HANDOFF_MAX + 10; i++) {
        texts[i] = numbered(i, 8, &r);
        handoff_put(h, strdup(texts[i]), &r);
        job_req_free(&r);
    }
    CHECK(handoff_count(h, NULL) == HANDOFF_MAX);
    for (size_t i = 0; i < HANDOFF_MAX + 10; i++) {
        int rc = handoff_take(h, texts[i], strlen(texts[i]), &r);
        CHECK(rc == (i < 10 ? -1 : 0));
        taken += rc == 0;
        if (rc == 0)
            job_req_free(&r);
        free(texts[i]);
    }
    CHECK(taken == HANDOFF_MAX);
    CHECK(handoff_count(h, &bytes) == 0 && bytes == 0);
    /* by bytes: texts of a third of the bound; never more than the bound kept */
    for (size_t i = 0; i < 8; i++) {
        char *t = numbered(i, HANDOFF_MAX_BYTES / 3, &r);
        handoff_put(h, strdup(t), &r);
        job_req_free(&r);
        handoff_count(h, &bytes);
        CHECK(bytes <= HANDOFF_MAX_BYTES);
        CHECK(handoff_count(h, NULL) == (i < 2 ? i + 1 : 2));
        free(t);
    }
    handoff_free(h); /* frees what it still holds (LeakSanitizer watches) */
}

/* Many puts and takes, in and out of order: the index's deleted slots are cleared now and
 * then, and every kept request is still found. */
static void test_churn(void)
{
    struct handoff *h;
    char *live[64] = {0};
    struct job_req r;
    size_t found = 0, tries = 0;
    CHECK(handoff_new(&h) == 0);
    for (size_t i = 0; i < 20000; i++) {
        size_t k = (i * 7919) % 64;
        if (live[k]) {
            tries++;
            if (handoff_take(h, live[k], strlen(live[k]), &r) == 0) {
                found++;
                job_req_free(&r);
            }
            free(live[k]);
        }
        live[k] = numbered(i, 4, &r);
        handoff_put(h, strdup(live[k]), &r);
        job_req_free(&r);
    }
    CHECK(found == tries);
    CHECK(handoff_count(h, NULL) == 64);
    for (size_t k = 0; k < 64; k++)
        free(live[k]);
    handoff_free(h);
}

int main(void)
{
    test_premise();
    test_put_take();
    test_bounds();
    test_churn();
    return tcheck_summary("test_handoff");
}
