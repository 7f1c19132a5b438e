/* fuzz_json.c - libFuzzer harness: the strict JSON validator (base/jsonv.c) against cJSON,
 * and the request parsers that run it first (job_req_parse, facade_parse). */
/*
 * Input: the bytes of a request body (no NUL terminator, as the HTTP layer hands it over).
 * Oracles:
 *  - jsonv_check keeps its contract: 0 exactly when kind is JSONV_OK; offset within the
 *    input; path NUL-terminated printable ASCII.
 *  - What jsonv accepts, cJSON parses to the end (only whitespace after the value), and the
 *    tree's strings (member names included) are as many, and as long once decoded, as jsonv
 *    counted: nothing was cut at a \u0000. (Skipped when a run of number characters is
 *    longer than cJSON's 63-byte number buffer: cJSON then refuses valid JSON, which only
 *    makes it stricter.)
 *  - What jsonv refuses, job_req_parse and facade_parse refuse with 400 and the code of its
 *    kind (invalid_json / invalid_value / invalid_utf8), param = the path (cut to fit).
 *  - Every error's param and message is printable ASCII (the envelope stays valid UTF-8).
 *  - jsonv_value (one value, whatever follows) agrees with jsonv_check: where jsonv_check
 *    accepts, it accepts and ends where only whitespace is left; where it accepts a prefix,
 *    jsonv_check accepts that prefix; the members it reports lie inside the value, in order.
 *    jsonv_string / jsonv_number at the start agree with jsonv_value on a string or number.
 */
#include "facade.h"
#include "job.h"
#include "jsonv.h"

#include <cjson/cJSON.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_json: " __VA_ARGS__);                                                \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static int printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return 0;
    return 1;
}

static void check_result(const struct jsonv_result *r, int rc, size_t size)
{
    if ((rc == 0) != (r->kind == JSONV_OK))
        FAIL("rc %d with kind %d", rc, (int)r->kind);
    if (r->offset > size)
        FAIL("offset %zu past the end (%zu)", r->offset, size);
    if (!memchr(r->path, 0, sizeof r->path) || !printable(r->path))
        FAIL("path not NUL-terminated printable ASCII");
    if (rc == 0 && (r->path[0] || r->offset || r->in_key))
        FAIL("an accepted text with a path or offset");
}

/* Number characters in a row anywhere: cJSON copies at most 63 of them. */
static size_t longest_number_run(const uint8_t *d, size_t n)
{
    size_t best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = strchr("0123456789+-.eE", d[i]) && d[i] ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

static void count_strings(const cJSON *it, size_t *n, size_t *bytes)
{
    for (; it; it = it->next) {
        if (it->string) {
            (*n)++;
            *bytes += strlen(it->string);
        }
        if (cJSON_IsString(it)) {
            (*n)++;
            *bytes += strlen(it->valuestring);
        }
        count_strings(it->child, n, bytes);
    }
}

static void against_cjson(const uint8_t *data, size_t size, const struct jsonv_result *r)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)data, size, &end, 0);
    size_t n = 0, bytes = 0;

    if (!root)
        FAIL("jsonv accepted what cJSON refuses");
    for (const char *p = end; p < (const char *)data + size; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            FAIL("cJSON stopped at byte %zu of %zu", (size_t)(end - (const char *)data), size);
    count_strings(root, &n, &bytes);
    if (n != r->strings || bytes != r->string_bytes)
        FAIL("strings: cJSON %zu (%zu bytes), jsonv %zu (%zu bytes)", n, bytes, r->strings,
             r->string_bytes);
    cJSON_Delete(root);
}

static const char *code_of(enum jsonv_kind k)
{
    if (k == JSONV_NUL)
        return "invalid_value";
    if (k == JSONV_UTF8 || k == JSONV_SURROGATE)
        return "invalid_utf8";
    return "invalid_json";
}

static void check_verr(const struct job_verr *e, const char *who)
{
    if (!e->code || !memchr(e->param, 0, sizeof e->param) || !memchr(e->msg, 0, sizeof e->msg))
        FAIL("%s: error not filled", who);
    if (!printable(e->param) || !printable(e->msg))
        FAIL("%s: param or message not printable ASCII: %s", who, e->msg);
}

/* A refusal by jsonv is the parsers' refusal, with its code and path. */
static void parsers_agree(const uint8_t *data, size_t size, const struct jsonv_result *r,
                          int rc)
{
    struct job_req jr;
    struct facade_req fr;
    struct job_verr e;
    char param[sizeof e.param];
    int p = r->kind == JSONV_NUL || r->kind == JSONV_UTF8 || r->kind == JSONV_SURROGATE;

    snprintf(param, sizeof param, "%s", p ? r->path : "");
    for (int which = 0; which < 2; which++) {
        int prc = which ? facade_parse((const char *)data, size, "briefd-hybrid", 262144, &jr,
                                       &fr, &e)
                        : job_req_parse((const char *)data, size, 262144, &jr, &e);
        if (prc == 0) {
            if (rc != 0)
                FAIL("a parser accepted what jsonv refused (%s)", jsonv_kind_text(r->kind));
            job_req_free(&jr);
            continue;
        }
        check_verr(&e, which ? "facade_parse" : "job_req_parse");
        if (rc != 0 && (e.status != 400 || strcmp(e.code, code_of(r->kind)) != 0 ||
                        strcmp(e.param, param) != 0))
            FAIL("%s: %d %s '%s' for %s at '%s'", which ? "facade" : "job", e.status, e.code,
                 e.param, jsonv_kind_text(r->kind), r->path);
    }
}

struct members {
    const char *base, *last;
    size_t end;
    int bad;
};

static void on_member(void *ctx, const struct jsonv_member *m)
{
    struct members *ms = ctx;
    if (m->name < ms->base || m->value <= m->name || m->value < ms->last ||
        (size_t)(m->value - ms->base) >= ms->end || m->depth < 1)
        ms->bad = 1;
    ms->last = m->value;
}

static void value_agrees(const uint8_t *data, size_t size, int rc)
{
    const char *s = (const char *)data;
    struct jsonv_result r, r2;
    struct members ms = {s, s, size, 0};
    size_t used = 0, k;
    int vrc = jsonv_value(s, size, &used, &r, on_member, &ms);

    if (vrc == 0 && (used == 0 || used > size))
        FAIL("jsonv_value: used %zu of %zu", used, size);
    if (rc == 0) {
        if (vrc != 0)
            FAIL("jsonv_value refused what jsonv_check accepts");
        for (k = used; k < size; k++)
            if (!strchr(" \t\r\n", s[k]) || s[k] == 0)
                FAIL("jsonv_value ended at %zu, before %zu", used, size);
    }
    if (vrc == 0 && jsonv_check(s, used, &r2) != 0)
        FAIL("jsonv_value accepted a prefix jsonv_check refuses");
    if (vrc == 0 && ms.bad)
        FAIL("a member reported outside the value or out of order");
    /* (a value that starts at byte 0 has no whitespace before it) */
    if (vrc == 0 && s[0] == '"' && jsonv_string(s, size) != used)
        FAIL("jsonv_string %zu, jsonv_value %zu", jsonv_string(s, size), used);
    if (vrc == 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) &&
        jsonv_number(s, size) != used)
        FAIL("jsonv_number %zu, jsonv_value %zu", jsonv_number(s, size), used);
    if (vrc != 0 && size > 0 && s[0] == '"' && jsonv_string(s, size) != 0)
        FAIL("jsonv_string accepted a string jsonv_value refuses");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jsonv_result r;
    int rc = jsonv_check((const char *)data, size, &r);

    check_result(&r, rc, size);
    if (rc == 0 && longest_number_run(data, size) < 60)
        against_cjson(data, size, &r);
    parsers_agree(data, size, &r, rc);
    value_agrees(data, size, rc);
    return 0;
}
