/* confidence.c - the "confidence" policy: refine drafts the small model was unsure of (logprobs). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy.h"

#define CONFIDENCE_MAX_TOKENS 1000000LL

struct confidence_state {
    double min_mean;              /* refine when the mean logprob is below it */
    int has_p10;
    double min_p10;               /* when has_p10: refine when p10 is below it too */
    enum verdict_kind on_missing; /* the vote when there are no (or too few) logprobs */
    long long min_tokens;         /* fewer logprob tokens than this counts as missing */
};

static const char *const confidence_keys[] = {"type", "weight", "min_mean_logprob",
                                              "min_p10_logprob", "on_missing", "min_tokens",
                                              NULL};
/* Indexed like enum verdict_kind. */
static const char *const on_missing_names[] = {"keep", "refine", "abstain", NULL};
static const enum verdict_kind on_missing_kinds[] = {VERDICT_KEEP, VERDICT_REFINE,
                                                     VERDICT_ABSTAIN};

static int parse_logprob(const cJSON *conf, const char *path, const char *key, int nullable,
                         double *out, int *set, struct cfg_err *err)
{
    int rc = cfg_number(conf, path, key, nullable, out, err);

    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(*out <= 0))
        return cfg_fail_key(err, path, key, "must be <= 0");
    if (set)
        *set = rc == CFG_VALUE;
    return 0;
}

static int confidence_parse(const cJSON *conf, const char *path, void **state,
                            struct cfg_err *err)
{
    struct confidence_state st = {-0.8, 0, 0, VERDICT_KEEP, 1};
    struct confidence_state *out;
    int idx = 0;

    if (cfg_check_keys(conf, path, confidence_keys, err) < 0)
        return -1;
    if (parse_logprob(conf, path, "min_mean_logprob", 0, &st.min_mean, NULL, err) < 0)
        return -1;
    if (parse_logprob(conf, path, "min_p10_logprob", 1, &st.min_p10, &st.has_p10, err) < 0)
        return -1;
    if (cfg_enum(conf, path, "on_missing", on_missing_names, &idx, err) < 0)
        return -1;
    st.on_missing = on_missing_kinds[idx];
    if (cfg_integer(conf, path, "min_tokens", 0, 0, CONFIDENCE_MAX_TOKENS, &st.min_tokens,
                    err) < 0)
        return -1;
    out = malloc(sizeof *out);
    if (!out)
        return cfg_fail(err, path, "out of memory");
    *out = st;
    *state = out;
    return 0;
}

static int usable(const struct confidence_state *st, const struct lp_summary *lp)
{
    return lp->present && lp->n > 0 && (long long)lp->n >= st->min_tokens;
}

static void decide_missing(const struct confidence_state *st, const struct lp_summary *lp,
                           struct verdict *out)
{
    const char *on = verdict_name(st->on_missing);

    out->kind = st->on_missing;
    out->has_score = 0;
    if (!lp->present || lp->n == 0)
        snprintf(out->detail, sizeof out->detail, "no logprobs from server; on_missing=%s", on);
    else
        snprintf(out->detail, sizeof out->detail,
                 "only %zu logprob tokens < min_tokens %lld; on_missing=%s", lp->n,
                 st->min_tokens, on);
}

static void decide_scored(const struct confidence_state *st, const struct lp_summary *lp,
                          struct verdict *out)
{
    int low_mean = lp->mean < st->min_mean;
    int low_p10 = st->has_p10 && lp->p10 < st->min_p10;
    int n;

    out->kind = (low_mean || low_p10) ? VERDICT_REFINE : VERDICT_KEEP;
    out->has_score = 1;
    out->score = lp->mean;
    n = snprintf(out->detail, sizeof out->detail, "mean logprob %.2f %s %g", lp->mean,
                 low_mean ? "<" : ">=", st->min_mean);
    if (st->has_p10 && n > 0 && (size_t)n < sizeof out->detail)
        snprintf(out->detail + n, sizeof out->detail - (size_t)n, ", p10 %.2f %s %g", lp->p10,
                 low_p10 ? "<" : ">=", st->min_p10);
}

static void confidence_decide(const void *state, const struct route_input *in,
                              struct verdict *out)
{
    const struct confidence_state *st = state;

    if (in->truncated) {
        out->kind = VERDICT_REFINE;
        out->has_score = usable(st, &in->lp);
        out->score = out->has_score ? in->lp.mean : 0;
        snprintf(out->detail, sizeof out->detail, "draft cut off (finish_reason length)");
        return;
    }
    if (!usable(st, &in->lp))
        decide_missing(st, &in->lp, out);
    else
        decide_scored(st, &in->lp, out);
}

static void confidence_describe(const void *state, cJSON *obj)
{
    const struct confidence_state *st = state;

    cJSON_AddNumberToObject(obj, "min_mean_logprob", st->min_mean);
    if (st->has_p10)
        cJSON_AddNumberToObject(obj, "min_p10_logprob", st->min_p10);
    else
        cJSON_AddNullToObject(obj, "min_p10_logprob");
    cJSON_AddStringToObject(obj, "on_missing", verdict_name(st->on_missing));
    cJSON_AddNumberToObject(obj, "min_tokens", (double)st->min_tokens);
}

static void confidence_free(void *state)
{
    free(state);
}

const struct policy_ops policy_confidence_ops = {
    .name = "confidence",
    .parse = confidence_parse,
    .decide = confidence_decide,
    .describe = confidence_describe,
    .free = confidence_free,
};
