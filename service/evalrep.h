/* evalrep.h - the report of `briefd eval` (docs/EVALUATION.md): from what the runner
 * measured for each document (its draft and refined briefs, what each call cost and took,
 * the routing decision, the judgements and cheap checks), the arms (draft, refine, hybrid)
 * with cost, latency and quality, the threshold sweep, APGR and CPT, and the per-document
 * detail, as the report.json tree. Pure: the sweep re-runs the router (pure) on the drafts;
 * nothing here calls a model, reads a clock or touches a file.
 *
 * Arms. Over the documents that completed (their draft, and the refined brief where the
 * selected arms need it, came back): draft serves the draft; refine serves the refined
 * brief and costs draft + refine (the refine prompt needs the draft); hybrid serves what
 * the config's routing decided (router_decide with no guard figures: guards off), costing
 * draft + refine where it refined. A document's cost is summed in that order (draft, then
 * refine) and the arm's total over documents in dataset order; per_job = total / n. Latency
 * is the measured wall time of those calls added the same way; p50/p95 by linear
 * interpolation. Quality: the means of the judge's scores over the documents whose
 * judgement of the served brief is not null, and a bootstrap 95% interval of the mean
 * overall (EVALREP_RESAMPLES resamples, seed EVALREP_SEED, percentile method).
 *
 * Sweep, APGR, CPT (only when both the draft and the refine arm were run). Each thresholded
 * policy of the chain (length: min_chars, confidence: min_mean_logprob; topic has none) is
 * swept over the values the dataset's drafts show (draft lengths in characters; mean
 * logprobs of drafts that have them) plus one beyond each end (length: min - 1 when >= 1
 * and max + 1; confidence: min - 0.1 and max + 0.1, at most 0); routing re-runs with only
 * that threshold changed. Each point: refine rate and cost per job over the completed
 * documents, and the mean overall of the briefs served over the paired documents (both
 * briefs judged, not null). PGR uses the paired means of the always-draft and
 * always-refine routings, so those two routings have PGR 0 and 1 exactly; APGR and CPT are
 * quality.h's over the sweep points, null when the gap is <= 0 or nothing was swept (the
 * report's quality_gap.note says why).
 *
 * evaluation_usd: the cost of the judge calls that answered, summed over documents in
 * dataset order, the draft's call before the refined brief's. It is in no arm's cost.
 *
 * Ownership: the input is only read (strings are copied into the tree); evalrep_json()
 * returns a new cJSON tree the caller deletes. */
#ifndef BRIEFD_EVALREP_H
#define BRIEFD_EVALREP_H

#include <stddef.h>

#include "checks.h"
#include "evalset.h"
#include "judge.h"
#include "router.h"

struct cJSON;
struct bd_config;

enum evalrep_arm { EVALREP_DRAFT = 0, EVALREP_REFINE = 1, EVALREP_HYBRID = 2, EVALREP_ARMS = 3 };
#define EVALREP_ALL_ARMS 7u
#define EVALREP_RESAMPLES 2000
#define EVALREP_SEED 20261202u
#define EVALREP_LEVEL 0.95

/* "draft" | "refine" | "hybrid". */
const char *evalrep_arm_name(int arm);
/* A comma-separated list of arm names ("draft,hybrid") into a bit mask (1 << arm): 0, or
 * -1 for an unknown or repeated name or an empty list. */
int evalrep_parse_arms(const char *s, unsigned *mask);

/* One brief of one document: the call that wrote it, its checks and its judgement. */
struct evalrep_brief {
    int asked;                   /* the call was made */
    int have;                    /* it succeeded with a non-empty brief */
    char *text;                  /* the brief (owned by the caller) */
    long prompt_tokens, completion_tokens;
    int usage_estimated;
    double cost_usd;             /* priced with the slot's prices (acct_cost) */
    double ms;                   /* wall time of the call, retries included */
    char error[300];             /* the call failed: why */
    struct checks checks;        /* valid when have */
    int judged;                  /* judge holds a judgement (judge.valid: a usable one) */
    struct judgement judge;
    char judge_error[300];       /* the judge call failed: why */
    int judge_answered;          /* this brief's own judge call answered (a refined brief
                                    equal to its draft is judged once, with the draft) */
    long judge_prompt_tokens, judge_completion_tokens;
    int judge_usage_estimated;
    double judge_cost_usd;       /* that call, priced with models.judge's prices */
};

struct evalrep_doc {
    const struct evalset_item *item;   /* the document (borrowed) */
    int complete;                /* every brief the arms need came back */
    struct evalrep_brief draft, refine;
    int truncated;               /* the draft stopped at max_tokens */
    struct lp_summary lp;        /* the draft's logprobs */
    int routed;                  /* route holds routing's decision (the draft came back) */
    struct route_result route;
};

struct evalrep_in {
    const char *dataset_path;
    const struct bd_config *cfg;
    unsigned arms;               /* 1 << enum evalrep_arm */
    const struct evalrep_doc *docs;
    size_t n;
    size_t judge_calls, judge_failed;
};

/* The report.json tree (docs/EVALUATION.md), or NULL on OOM. */
struct cJSON *evalrep_json(const struct evalrep_in *in);

#endif
