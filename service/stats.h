/* stats.h - the statistics' arithmetic, pure (no I/O, no clock): what one finished job adds
 * to the shared counters, percentiles from the log-scale latency histograms, the
 * counterfactuals (draft only, refine everything), the /v1/stats object and the /metrics
 * exposition. The store keeps the counters in Redis (store.h); this module never sees a
 * key.
 *
 * Counter fields (integers, so sums from any number of processes are exact):
 *   jobs succeeded failed decided dec_refine dec_keep refined degraded
 *   cached cache_miss                            exact cache: hits, lookups that ran the models
 *   cost_draft_p cost_refine_p cost_p:<model>   costs in picodollars
 *   tok:<model>:p tok:<model>:c                  prompt / completion tokens
 *   dtok_all dtok_refined                        draft tokens of all / of refined jobs
 *   vote:<policy>:<verdict>                      verdicts (guards too: "guard:<name>")
 *   h:<stage>:<i> n:<stage> sum_us:<stage>       latency histogram, count, sum (us)
 *   err:<model>:<reason>                         failed upstream attempts (totals only)
 *   fb:<role>:<k>                                stages fallback k answered (role draft/refine)
 * Histogram bucket i >= 1 covers (0.001 * 1.09^(i-1), 0.001 * 1.09^i] ms and bucket 0 is
 * <= 1 microsecond; the last bucket also holds everything beyond (15 minutes). A percentile is
 * the geometric middle of the bucket that holds it: within 4.4% of the exact value however
 * many processes and minutes are merged, from microsecond stages (routing) to minutes.
 * /metrics shows every 8th bucket bound as a Prometheus bucket (x1.99 apart, 2 us to 500 s).
 *
 * Ownership: functions returning char * or cJSON * hand them to the caller. */
#ifndef BRIEFD_STATS_H
#define BRIEFD_STATS_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct job_acct;
struct route_result;

#define STATS_HBASE_MS 0.001      /* bucket 0's upper bound (1 us) */
#define STATS_HGROWTH 1.09        /* each bucket 9% wider than the one before */
#define STATS_HBUCKETS 241        /* up to 0.001 * 1.09^240 ms = 16 min */
#define STATS_HACCURACY 0.044     /* sqrt(STATS_HGROWTH) - 1 */
#define STATS_PROM_STEP 8         /* Prometheus buckets: every 8th bound */
#define STATS_MAX_GROUPS 1000     /* distinct dimension values per bucket; more -> "(other)" */
#define STATS_PICO 1e12           /* costs are counted in integer picodollars */

int stats_bucket(double ms);           /* 0 .. STATS_HBUCKETS-1 */
double stats_bucket_upper(int i);      /* upper bound in ms */
double stats_bucket_lower(int i);
/* The value bucket i stands for (its geometric middle). */
double stats_bucket_value(int i);
/* The q-quantile (0..1) of a histogram h[STATS_HBUCKETS] of counts; NAN when empty. */
double stats_percentile(const double *h, double q);

/* What one finished job was. */
struct stats_job {
    int succeeded;
    int decided;                 /* a route decision was made */
    int refined, degraded;
    int cached;                  /* answered from the exact cache (no model call) */
    int cache_miss;              /* looked up in the exact cache, not found: the models ran */
    const char *draft_model, *refine_model;  /* the names of the endpoints that answered */
    int draft_fallback, refine_fallback;     /* k when fallback k answered the stage, else 0 */
    const struct job_acct *acct;
    const struct route_result *route;   /* NULL if not routed */
    const char *source, *tenant;        /* NULL when absent */
    int64_t finished_ms;
};

/* What one finished job adds: counter increments (field -> integer, no tab or newline in a
 * field), the dimension values it is counted under (label-safe: printable, no spaces or
 * colons, at most 64 bytes; "" when absent) and when it finished (which buckets it lands
 * in). A plain value: nothing to free. */
#define STATS_DELTA_MAX 128
struct stats_inc {
    char field[120];
    long long n;
    uint64_t hash;              /* of the field as added: compared before the text */
};
struct stats_delta {
    struct stats_inc inc[STATS_DELTA_MAX];
    size_t n;
    size_t dropped;             /* increments beyond STATS_DELTA_MAX (none in practice) */
    char source[80];
    char tenant[80];
    int64_t at_ms;
};
/* A dimension value (source, tenant) as the group name it is counted under: printable, no
 * spaces or colons (each becomes '_'), at most 64 bytes; "" for NULL. */
void stats_label(const char *value, char *out, size_t len);
/* Returns 0, or BD_ETOOBIG when increments had to be dropped (the rest is still there). */
int stats_delta_of(const struct stats_job *j, struct stats_delta *out);
/* The increment of field (0 when absent). */
long long stats_delta_get(const struct stats_delta *d, const char *field);

/* --- quality: shadow evaluations and feedback (docs/API.md, docs/EVALUATION.md) ---
 *
 * Their counters travel as deltas like a job's (struct stats_delta, folded the same way),
 * sent when the evaluation or the feedback arrives and counted in the buckets of the job's
 * own end (at_ms = the job's finished_ms), so a window's quality figures describe the
 * window's jobs. A judgement is kept as s3, the sum of its three rubric scores (3..15:
 * overall = s3 / 3), so every sum is an exact integer. Fields:
 *   q_shadow q_judged                   evaluations stored / with a non-null judgement
 *   q_d_n q_d_s3, q_r_n q_r_s3          draft / refined brief judged: count, sum of s3
 *   q_s_n q_s_s3                        the brief served (what the job returned)
 *   q_gk_n q_gk_s3 q_gk:<g>             jobs routing kept with both judged: count, sum of
 *                                       the gap in thirds (g = refine s3 - draft s3,
 *                                       -12..12) and its histogram
 *   q_missed q_needless                 kept and the refinement scored >= 1 point higher /
 *                                       refined and the draft scored as high or higher
 *   qs:<model>:<s3>                     judgements per model that wrote the brief
 *   eval_cost_p                         evaluation spend (picodollars), never in cost_*
 *   q_skip:<reason>                     sampled jobs not evaluated (budget, breaker, busy)
 *   fb_n fb_sum fbs:<score>             feedback: count, sum of scores, per score 1..5
 *   fb_dec:<keep|refine>:n / :sum       per route decision
 *   fb_pol:<policy>:<verdict>:n / :sum  per policy verdict of the job */
#define STATS_S3_MIN 3
#define STATS_S3_MAX 15
#define STATS_GAP_MAX 12           /* |refine s3 - draft s3| */
#define STATS_FB_MAX_VOTES 32      /* policy verdicts a feedback is counted under */

struct stats_quality {
    int draft_s3, refine_s3;        /* 3..15, or 0: that judgement is null (or absent) */
    int served_refine;              /* the job served the refined brief */
    int kept;                       /* routing decided keep (and the draft was served) */
    int refined;                    /* routing decided refine and the refinement was served */
    const char *draft_model, *refine_model;
    double cost_usd;                /* what the evaluation cost */
    const char *source, *tenant;    /* the job's dimensions, NULL when absent */
    int64_t finished_ms;            /* the job's end */
};
int stats_quality_delta(const struct stats_quality *q, struct stats_delta *out);

/* A sampled job whose evaluation did not run: reason "budget", "breaker" or "busy". */
int stats_skip_delta(const char *reason, int64_t at_ms, struct stats_delta *out);

struct stats_feedback {
    int score;                      /* 1..5 */
    const char *decision;           /* "keep" | "refine", or NULL (the job was not routed) */
    const char *const *policies;    /* the job's policy verdicts (guards left out) */
    const char *const *verdicts;
    size_t n;
    const char *source, *tenant;
    int64_t finished_ms;
};
int stats_feedback_delta(const struct stats_feedback *f, struct stats_delta *out);

/* The p-quantile (0..1) of values (first + k) / div with counts[k] (k = 0..n-1), as
 * quality.h defines percentiles (sorted values, rank p (N - 1), linear interpolation):
 * exact from the counts. NAN when they are all zero (or p is outside 0..1). */
double stats_counts_percentile(const double *counts, size_t n, int first, double div, double p);

/* Summed buckets of a window, as read from the store: maps are cJSON objects of field ->
 * number. */
struct stats_rows {
    struct cJSON *total;        /* sums over the window */
    struct cJSON *rows;         /* array of [bucket number, {field -> sum}] in bucket order */
    struct cJSON *groups;       /* dimension value -> {field -> sum}, or NULL */
    long gran_s;                /* bucket width: 60 or 3600 s */
    long long first;            /* first bucket number of the window */
};

/* The /v1/stats object (docs/API.md) for a window of window_s seconds grouped by dim
 * ("" for none) with series steps of step_s. NULL on OOM. */
struct cJSON *stats_window_json(const struct stats_rows *rows, long window_s, const char *dim,
                                long step_s);

/* What the configuration says exists, so that its series are there from the start, at 0:
 * briefd_cost_usd_total and briefd_upstream_errors_total (every reason) per model name,
 * briefd_fallback_answers_total per configured fallback. */
struct stats_known {
    const char *const *models;  /* model names (repeats are fine) */
    size_t n_models;
    int fallbacks[2];           /* how many fallbacks the draft / refine model has */
};

/* The Prometheus text exposition (docs/METRICS.md) from the all-time totals and the live
 * queue gauges; known may be NULL. NULL on OOM. */
char *stats_metrics_text(const struct cJSON *totals, double depth, double in_flight,
                         const struct stats_known *known);

#endif
