/* acct.h - per-job accounting: stage latencies, token usage and cost, as the job object's
 * "usage", "cost_usd" and "latency_ms" (docs/API.md).
 *
 * Cost of one model stage, in USD:
 *     (prompt_tokens * input_per_mtok + completion_tokens * output_per_mtok) / 1e6
 *   + per_hour * busy_ms / 3.6e6
 * where busy_ms is the time spent in that model's calls (all attempts). total = draft +
 * refine. Figures are kept as doubles and printed round-trip exact, so a client can
 * recompute them to the last digit.
 *
 * Latencies are in milliseconds; a negative value means "stage did not happen" and is left
 * out of the JSON. All but "queue" are measured on the monotonic clock of one process;
 * "queue" (accepted -> a worker starts) spans processes and uses the wall clock. */
#ifndef BRIEFD_ACCT_H
#define BRIEFD_ACCT_H

#include <stddef.h>

struct cJSON;
struct model_cfg;

struct stage_usage {
    int present;
    long prompt_tokens;
    long completion_tokens;
    int estimated;
};

struct job_acct {
    double queue_ms, draft_wait_ms, draft_ms, draft_ttft_ms, route_ms, refine_wait_ms, refine_ms,
        refine_ttft_ms, total_ms;
    double draft_busy_ms, refine_busy_ms;
    struct stage_usage draft, refine;
    double cost_draft, cost_refine;     /* USD */
};

/* The stages of latency_ms, in order: queue, draft_wait, draft, draft_ttft, route,
 * refine_wait, refine, refine_ttft, total (the waits: for a model call slot, when the model
 * has max_concurrency). */
#define ACCT_STAGES 9
extern const char *const acct_stage_names[ACCT_STAGES];
/* Stage i's latency in ms (negative: it did not happen). */
double acct_stage_ms(const struct job_acct *a, int i);

/* All latencies absent, no usage, zero cost. */
void acct_init(struct job_acct *a);
double acct_cost(const struct model_cfg *m, long prompt_tokens, long completion_tokens,
                 double busy_ms);
/* An upper bound of what one call to m with a prompt of prompt_bytes can cost (the tenant
 * budget's reservations): every prompt byte a token plus ACCT_PROMPT_OVERHEAD tokens of
 * chat template, max_tokens completion tokens, and, with per_hour pricing, the call busy
 * for its whole timeout on every attempt. A bound as long as the server's tokens are at
 * least a byte each (byte-level BPE tokenizers) and it stops at max_tokens. */
#define ACCT_PROMPT_OVERHEAD 64
double acct_cost_bound(const struct model_cfg *m, size_t prompt_bytes);
/* Fill cost_draft / cost_refine from usage and busy time. */
void acct_price(struct job_acct *a, const struct model_cfg *draft, const struct model_cfg *refine);


/* Add "usage", "cost_usd" and "latency_ms" objects to obj (caller-owned). Each usage entry
 * also carries "busy_ms", the model time per_hour pricing charged (printed unrounded, so
 * the cost can be recomputed exactly). */
void acct_to_json(const struct job_acct *a, struct cJSON *obj);

#endif
