/* length.c - the "length" policy: refine long drafts (and, optionally, drafts of long inputs). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy.h"

#define LENGTH_MAX_CHARS 1000000000LL

struct length_state {
    long long min_chars;       /* refine when the draft has at least this many chars */
    long long min_input_chars; /* 0: unset; else refine when the input is this long too */
};

static const char *const length_keys[] = {"type", "weight", "min_chars", "min_input_chars",
                                          NULL};

/* Code points in s: every byte that is not a UTF-8 continuation byte (10xxxxxx) starts one.
 * Invalid input never crashes: a stray continuation byte counts 0, any other byte 1. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; s && i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    }
    return n;
}

static int length_parse(const cJSON *conf, const char *path, void **state, struct cfg_err *err)
{
    struct length_state st = {600, 0};
    long long v = 0;
    struct length_state *out;
    int rc;

    if (cfg_check_keys(conf, path, length_keys, err) < 0)
        return -1;
    if (cfg_integer(conf, path, "min_chars", 0, 1, LENGTH_MAX_CHARS, &st.min_chars, err) < 0)
        return -1;
    rc = cfg_integer(conf, path, "min_input_chars", 1, 1, LENGTH_MAX_CHARS, &v, err);
    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE)
        st.min_input_chars = v;
    out = malloc(sizeof *out);
    if (!out)
        return cfg_fail(err, path, "out of memory");
    *out = st;
    *state = out;
    return 0;
}

static void length_decide(const void *state, const struct route_input *in, struct verdict *out)
{
    const struct length_state *st = state;
    size_t draft = utf8_chars(in->draft, in->draft_len);
    size_t input = utf8_chars(in->text, in->text_len);
    int by_draft = (long long)draft >= st->min_chars;
    int by_input = st->min_input_chars > 0 && (long long)input >= st->min_input_chars;
    int n;

    out->kind = (by_draft || by_input) ? VERDICT_REFINE : VERDICT_KEEP;
    out->has_score = 1;
    out->score = (double)draft;
    n = snprintf(out->detail, sizeof out->detail, "draft %zu chars %s %lld", draft,
                 by_draft ? ">=" : "<", st->min_chars);
    if (by_input && n > 0 && (size_t)n < sizeof out->detail)
        snprintf(out->detail + n, sizeof out->detail - (size_t)n, "; input %zu chars >= %lld",
                 input, st->min_input_chars);
}

/* With min_input_chars the input alone can ask for a refinement; otherwise it needs the
 * draft. */
static int length_decide_input(const void *state, const struct route_input *in,
                               struct verdict *out)
{
    const struct length_state *st = state;
    size_t input = utf8_chars(in->text, in->text_len);
    if (st->min_input_chars <= 0)
        return 0;
    out->kind = (long long)input >= st->min_input_chars ? VERDICT_REFINE : VERDICT_KEEP;
    out->has_score = 1;
    out->score = (double)input;
    snprintf(out->detail, sizeof out->detail, "input %zu chars %s %lld", input,
             out->kind == VERDICT_REFINE ? ">=" : "<", st->min_input_chars);
    return 1;
}

static void length_describe(const void *state, cJSON *obj)
{
    const struct length_state *st = state;

    cJSON_AddNumberToObject(obj, "min_chars", (double)st->min_chars);
    if (st->min_input_chars > 0)
        cJSON_AddNumberToObject(obj, "min_input_chars", (double)st->min_input_chars);
    else
        cJSON_AddNullToObject(obj, "min_input_chars");
}

static void length_free(void *state)
{
    free(state);
}

const struct policy_ops policy_length_ops = {
    .name = "length",
    .parse = length_parse,
    .decide = length_decide,
    .decide_input = length_decide_input,
    .describe = length_describe,
    .free = length_free,
};
