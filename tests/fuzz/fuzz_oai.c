/* fuzz_oai.c - libFuzzer harness: clients/oai.c response, error, harmony and SSE parsers. */
/*
 * Every input goes through all parsers unchanged (no prefix): as a complete response body,
 * as an error body (message buffers of several exact sizes, heap-allocated so that an
 * overrun is caught), through oai_harmony_final, and as a Server-Sent Events stream fed
 * twice: in one piece and in chunk sizes derived from the input's first two bytes.
 * Oracles: results respect oai.h (content never NULL on success, no interior NUL, logprobs
 * finite and bounded, messages NUL-terminated within msglen); the SSE parser gives the same
 * result whatever the chunking; at most one feed reports the first token. The third byte's
 * low bit ends the chunked stream with oai_sse_free() instead of oai_sse_finish().
 */
#include "oai.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_oai: " __VA_ARGS__);                                                 \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)
#define MSG_LEN 256

static void check_msg(const char *msg, size_t msglen, const char *what)
{
    if (!memchr(msg, 0, msglen))
        FAIL("%s: message not NUL-terminated within %zu bytes", what, msglen);
}

static void check_result(const struct oai_result *r, const char *what)
{
    size_t i;

    if (!r->content || strlen(r->content) != r->content_len ||
        r->content_len > OAI_MAX_CONTENT_BYTES)
        FAIL("%s: content missing or of the wrong length", what);
    if (r->n_logprobs > OAI_MAX_LOGPROBS || (r->n_logprobs && !r->logprobs))
        FAIL("%s: %zu logprobs", what, r->n_logprobs);
    for (i = 0; i < r->n_logprobs; i++)
        if (!isfinite(r->logprobs[i]))
            FAIL("%s: logprob %zu not finite", what, i);
    if (r->prompt_tokens < 0 || r->completion_tokens < 0)
        FAIL("%s: negative token counts", what);
    if (r->truncated && (!r->finish_reason || strcmp(r->finish_reason, "length") != 0))
        FAIL("%s: truncated without finish_reason length", what);
    if (r->finish_reason && strlen(r->finish_reason) > 255)
        FAIL("%s: finish_reason too long", what);
    if (r->model && strlen(r->model) > 255)
        FAIL("%s: model too long", what);
}

static void same_result(const struct oai_result *a, const struct oai_result *b)
{
    int same_str = (a->content == NULL) == (b->content == NULL) &&
                   (!a->content || (a->content_len == b->content_len &&
                                    memcmp(a->content, b->content, a->content_len) == 0));
    int same_fr = (a->finish_reason == NULL) == (b->finish_reason == NULL) &&
                  (!a->finish_reason || strcmp(a->finish_reason, b->finish_reason) == 0);
    int same_model =
        (a->model == NULL) == (b->model == NULL) && (!a->model || strcmp(a->model, b->model) == 0);
    int same_lp =
        a->n_logprobs == b->n_logprobs &&
        (!a->n_logprobs || memcmp(a->logprobs, b->logprobs, a->n_logprobs * sizeof(double)) == 0);

    if (!same_str || !same_fr || !same_model || !same_lp || a->truncated != b->truncated ||
        a->has_reasoning != b->has_reasoning || a->has_logprobs != b->has_logprobs ||
        a->prompt_tokens != b->prompt_tokens || a->completion_tokens != b->completion_tokens ||
        a->usage_estimated != b->usage_estimated)
        FAIL("SSE result depends on the chunking (content %zu vs %zu bytes)", a->content_len,
             b->content_len);
}

static void fuzz_response(const char *data, size_t size)
{
    struct oai_result r;
    char msg[MSG_LEN];
    int rc = oai_parse_response(data, size, size, &r, msg, sizeof msg);

    check_msg(msg, sizeof msg, "oai_parse_response");
    if (rc == 0)
        check_result(&r, "oai_parse_response");
    else if (rc < OAI_ENOMEM || rc > OAI_EPARSE)
        FAIL("oai_parse_response returned %d", rc);
    oai_result_free(&r);
    if (r.content || r.logprobs)
        FAIL("oai_result_free left pointers behind");
    /* no message buffer at all */
    rc = oai_parse_response(data, size, 0, &r, NULL, 0);
    oai_result_free(&r);
}

static void fuzz_error(const char *data, size_t size)
{
    static const size_t lens[] = {1, 2, 7, 64, 300};
    size_t i;

    for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *msg = malloc(lens[i]);
        if (!msg)
            return;
        oai_error_message(data, size, msg, lens[i]);
        check_msg(msg, lens[i], "oai_error_message");
        free(msg);
    }
    oai_error_message(data, size, NULL, 0);
}

static void fuzz_harmony(const char *data, size_t size)
{
    size_t n = 12345;
    int found = -1;
    char *p = oai_harmony_final(data, size, &n, &found);

    if (!p || n > size || p[n] != '\0' || (found != 0 && found != 1))
        FAIL("oai_harmony_final: bad result");
    if (!found && (n != size || memcmp(p, data, size) != 0))
        FAIL("oai_harmony_final: without a final channel the text must come back unchanged");
    free(p);
}

/* Feed data in chunks (chunk 0: all at once); returns the finish code, result in out. */
static int sse_run(const char *data, size_t size, uint32_t seed, int chunked, int free_only,
                   struct oai_result *out)
{
    struct oai_sse s;
    char msg[MSG_LEN];
    size_t off = 0;
    int firsts = 0, failed = 0, rc;

    memset(out, 0, sizeof *out);
    oai_sse_init(&s, size);
    while (off < size) {
        size_t n = size - off;
        if (chunked) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            n = 1 + seed % ((seed >> 24) % 2 ? 3 : 97);
            if (n > size - off)
                n = size - off;
        }
        rc = oai_sse_feed(&s, data + off, n, msg, sizeof msg);
        check_msg(msg, sizeof msg, "oai_sse_feed");
        if (rc == 1)
            firsts++;
        else if (rc < 0 && failed && rc != failed)
            FAIL("oai_sse_feed: a failure is not sticky (%d then %d)", failed, rc);
        else if (rc < 0)
            failed = rc;
        else if (rc != 0)
            FAIL("oai_sse_feed returned %d", rc);
        off += n;
    }
    if (firsts > 1)
        FAIL("oai_sse_feed reported the first token %d times", firsts);
    if (free_only) {
        oai_sse_free(&s);
        return 0;
    }
    rc = oai_sse_finish(&s, out, msg, sizeof msg);
    check_msg(msg, sizeof msg, "oai_sse_finish");
    if (failed && rc != failed)
        FAIL("oai_sse_finish: %d after a feed failed with %d", rc, failed);
    if (rc == 0)
        check_result(out, "oai_sse_finish");
    return rc;
}

static void fuzz_sse(const char *data, size_t size)
{
    struct oai_result whole, parts;
    uint32_t seed = size >= 2 ? ((uint32_t)(uint8_t)data[0] << 8 | (uint8_t)data[1]) : 1;
    int free_only = size >= 3 && (data[2] & 1);
    int rc1, rc2;

    seed = seed * 2654435761u + 1;
    rc1 = sse_run(data, size, seed, 0, 0, &whole);
    rc2 = sse_run(data, size, seed, 1, free_only, &parts);
    if (!free_only) {
        if (rc1 != rc2)
            FAIL("SSE code depends on the chunking: %d vs %d", rc1, rc2);
        same_result(&whole, &parts);
    }
    oai_result_free(&whole);
    oai_result_free(&parts);
}

/* The input as the user text of a request body: always valid JSON. */
static void fuzz_build(const char *data, size_t size)
{
    char *user = malloc(size + 1), *body;
    cJSON *j;

    if (!user)
        return;
    memcpy(user, data, size);
    user[size] = '\0';
    body = oai_build_request("phi-4-mini", size % 2 ? user : NULL, user, (int)size - 5,
                             size % 3 ? 0.4 : NAN, (int)(size & 4), (int)(size & 8));
    j = body ? cJSON_Parse(body) : NULL;
    if (body && !j)
        FAIL("oai_build_request produced invalid JSON");
    cJSON_Delete(j);
    free(body);
    free(user);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    fuzz_response(s, size);
    fuzz_error(s, size);
    fuzz_harmony(s, size);
    fuzz_sse(s, size);
    fuzz_build(s, size);
    (void)oai_estimate_tokens(size);
    return 0;
}
