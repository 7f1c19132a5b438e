/* policy.h - the routing-policy interface: one struct of function pointers per policy.
 *
 * A policy looks at one draft (and the request it came from) and votes: refine, keep or
 * abstain, with a score and a human-readable detail. Policies are pure: no I/O, no clock,
 * no global state; the same input always gives the same verdict. That is what makes
 * `briefd replay` and exhaustive unit tests cheap.
 *
 * Adding a policy = one new file defining a `static const struct policy_ops` (exported under
 * a `policy_<name>_ops` symbol) and one line in the registry table in registry.c.
 *
 * Ownership: a policy's state is created by parse() from a cJSON object the caller owns (the
 * policy copies whatever it keeps) and released with free(). decide() only reads its state
 * and its input, and writes into the caller-owned verdict. */
#ifndef BRIEFD_POLICY_H
#define BRIEFD_POLICY_H

#include <stddef.h>

#include "cfg.h" /* struct cfg_err and the readers policies parse with */

struct cJSON;

enum verdict_kind { VERDICT_KEEP = 0, VERDICT_REFINE = 1, VERDICT_ABSTAIN = 2 };
const char *verdict_name(enum verdict_kind v); /* "keep" | "refine" | "abstain" */

/* Summary of the draft's token logprobs. Enough for the confidence policy and for replay,
 * so stored drafts never need their full token list. */
struct lp_summary {
    int present;      /* 0: the server sent no logprobs (absent or null) */
    size_t n;         /* tokens summarized */
    double mean;      /* mean logprob */
    double p10;       /* 10th percentile (a low quantile: the mean is biased by length) */
    double min;       /* lowest logprob */
};
/* Summarize n logprobs (n may be 0: present stays 1 only if n > 0). lp is not kept. */
void lp_summarize(const double *lp, size_t n, struct lp_summary *out);

/* Everything a policy may look at. All pointers are borrowed for the duration of decide(). */
struct route_input {
    const char *text;          /* the document (UTF-8), text_len bytes */
    size_t text_len;
    const char *draft;         /* the draft brief (UTF-8), draft_len bytes */
    size_t draft_len;
    const char *const *topic_flags; /* request topic_flags, n_topic_flags entries */
    size_t n_topic_flags;
    struct lp_summary lp;      /* the draft's logprob summary */
    int truncated;             /* the draft model stopped with finish_reason "length" */
};

#define VERDICT_DETAIL_MAX 200
struct verdict {
    const char *policy;        /* static name (policy_ops.name or a guard name) */
    enum verdict_kind kind;
    int has_score;             /* 0: no score to report (e.g. abstain) */
    double score;
    char detail[VERDICT_DETAIL_MAX];
};

struct policy_ops {
    const char *name; /* "length", "topic", "confidence" */
    /* Parse this policy's object (conf; `type` and `weight` already handled by the caller
     * and must be ignored here). path is the object's JSON path, e.g. "routing.policies[1]",
     * for error messages. Unknown keys and wrong types are errors.
     * Returns 0 and sets *state, or -1 with err filled and nothing allocated. */
    int (*parse)(const struct cJSON *conf, const char *path, void **state, struct cfg_err *err);
    /* Pure. Writes out (out->policy is set by the caller). */
    void (*decide)(const void *state, const struct route_input *in, struct verdict *out);
    /* Pre-routing (routing.pre_route): decide on the input alone (in->draft is NULL). Returns
     * 1 with out written when this policy (as configured) can judge the input, 0 when it
     * needs the draft (out untouched). NULL: never. */
    int (*decide_input)(const void *state, const struct route_input *in, struct verdict *out);
    /* The current thresholds as JSON (added to the caller-owned obj), for GET /v1/config. */
    void (*describe)(const void *state, struct cJSON *obj);
    void (*free)(void *state);
};

/* The registry: the policy named `name`, or NULL. */
const struct policy_ops *policy_lookup(const char *name);
/* The registry as a NULL-terminated array (for listing). */
const struct policy_ops *const *policy_all(void);

extern const struct policy_ops policy_length_ops;
extern const struct policy_ops policy_topic_ops;
extern const struct policy_ops policy_confidence_ops;

#endif
