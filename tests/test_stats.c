/* test_stats.c - unit tests of service/stats.c: bucket layout, what a job adds, the /v1/stats
 * object (figures, percentiles, counterfactuals, series, groups) and the /metrics text. */
#include "stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "bderr.h"
#include "router.h"
#include "tcheck.h"

static double jnum(const cJSON *o, const char *path)
{
    char buf[200], *save = NULL, *tok;
    const cJSON *it = o;
    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && it; tok = strtok_r(NULL, ".", &save))
        it = cJSON_GetObjectItemCaseSensitive(it, tok);
    return cJSON_IsNumber(it) ? it->valuedouble : NAN;
}

static void test_buckets(void)
{
    CHECK(stats_bucket(0) == 0);
    CHECK(stats_bucket(0.0005) == 0);
    CHECK(stats_bucket(0.001) == 0);
    CHECK(stats_bucket(0.00101) == 1);
    CHECK(stats_bucket(1e12) == STATS_HBUCKETS - 1);
    CHECK(stats_bucket_upper(STATS_HBUCKETS - 1) > 15 * 60 * 1000.0 * 0.99);
    for (double ms = 0.002; ms < 6e5; ms *= 1.37) {
        int i = stats_bucket(ms);
        CHECK(stats_bucket_lower(i) < ms && ms <= stats_bucket_upper(i) * (1 + 1e-12));
        /* the value a bucket stands for is within the documented accuracy of anything in it */
        CHECK(fabs(stats_bucket_value(i) - ms) / ms <= STATS_HACCURACY + 1e-9);
    }
    for (int i = 1; i < STATS_HBUCKETS; i++)
        CHECK_NEAR(stats_bucket_upper(i) / stats_bucket_lower(i), STATS_HGROWTH, 1e-9);
    /* Prometheus buckets at most x2 apart over 5 ms .. 120 s */
    CHECK(pow(STATS_HGROWTH, STATS_PROM_STEP) <= 2.0);
    CHECK(stats_bucket_upper(STATS_PROM_STEP) <= 5.0);
    CHECK(stats_bucket_upper(STATS_HBUCKETS - 1 - (STATS_HBUCKETS - 1) % STATS_PROM_STEP) >= 120000);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentiles of a known sample, from its histogram, within 5% of the exact ones. */
static void test_percentiles(void)
{
    static double h[STATS_HBUCKETS];
    double xs[1000], qs[] = {0.5, 0.9, 0.95, 0.99};
    unsigned r = 12345;
    for (int k = 0; k < 1000; k++) {
        /* log-uniform from 20 us to 60 s, like a mix of stages */
        r = r * 1103515245u + 12345u;
        xs[k] = 0.02 * pow(3e6, (double)(r >> 8) / (double)(1u << 24));
        h[stats_bucket(xs[k])] += 1;
    }
    qsort(xs, 1000, sizeof(double), cmp_d);
    for (size_t q = 0; q < sizeof(qs) / sizeof(qs[0]); q++) {
        double exact = xs[(int)ceil(qs[q] * 1000) - 1];  /* nearest rank */
        CHECK(fabs(stats_percentile(h, qs[q]) - exact) / exact <= 0.05);
    }
    /* a microsecond stage is resolved, not rounded up to a bucket of tenths of a ms */
    memset(h, 0, sizeof(h));
    h[stats_bucket(0.011)] = 5;
    CHECK(fabs(stats_percentile(h, 0.5) - 0.011) / 0.011 <= 0.05);
    memset(h, 0, sizeof(h));
    CHECK(isnan(stats_percentile(h, 0.5)));
}

/* A refined job: 100+50 draft tokens, 200+80 refine tokens, a refine verdict by length. */
static void fill_job(struct job_acct *a, struct route_result *rr, struct stats_job *j)
{
    acct_init(a);
    a->queue_ms = 2;
    a->draft_ms = 40;
    a->route_ms = 0.02;
    a->refine_ms = 300;
    a->total_ms = 345;
    a->draft = (struct stage_usage){1, 100, 50, 0};
    a->refine = (struct stage_usage){1, 200, 80, 0};
    a->cost_draft = 0.000015;
    a->cost_refine = 0.00012;
    memset(rr, 0, sizeof(*rr));
    rr->refine = 1;
    rr->n = 1;
    rr->v[0].policy = "length";
    rr->v[0].kind = VERDICT_REFINE;
    memset(j, 0, sizeof(*j));
    j->succeeded = 1;
    j->decided = 1;
    j->refined = 1;
    j->draft_model = "phi-4-mini";
    j->refine_model = "gpt-oss-20b";
    j->acct = a;
    j->route = rr;
    j->source = "crm tool:v2";
    j->tenant = NULL;
    j->finished_ms = 1700000000123;
}

static void test_delta(void)
{
    struct job_acct a;
    struct route_result rr;
    struct stats_job j;
    struct stats_delta d;
    fill_job(&a, &rr, &j);
    CHECK(stats_delta_of(&j, &d) == 0);
    CHECK(stats_delta_get(&d, "jobs") == 1);
    CHECK(stats_delta_get(&d, "succeeded") == 1);
    CHECK(stats_delta_get(&d, "dec_refine") == 1);
    CHECK(stats_delta_get(&d, "refined") == 1);
    CHECK(stats_delta_get(&d, "cost_draft_p") == 15000000);
    CHECK(stats_delta_get(&d, "cost_refine_p") == 120000000);
    CHECK(stats_delta_get(&d, "dtok_all") == 150);
    CHECK(stats_delta_get(&d, "dtok_refined") == 150);
    CHECK(stats_delta_get(&d, "tok:phi-4-mini:p") == 100);
    CHECK(stats_delta_get(&d, "tok:gpt-oss-20b:c") == 80);
    CHECK(stats_delta_get(&d, "vote:length:refine") == 1);
    CHECK(stats_delta_get(&d, "n:total") == 1);
    CHECK(stats_delta_get(&d, "sum_us:total") == 345000);
    {
        char f[32];
        snprintf(f, sizeof(f), "h:refine:%d", stats_bucket(300));
        CHECK(stats_delta_get(&d, f) == 1);
    }
    for (size_t k = 0; k < d.n; k++) {
        CHECK(strcmp(d.inc[k].field, "failed") != 0);       /* zero increments are left out */
        CHECK(strcmp(d.inc[k].field, "n:draft_ttft") != 0); /* and absent stages */
    }
    CHECK_STR(d.source, "crm_tool_v2");
    CHECK_STR(d.tenant, "");
    CHECK(d.at_ms == 1700000000123);
    CHECK(d.dropped == 0);
}

/* A delta as a JSON object of its increments (what the window rows hold). */
static cJSON *inc_json(const struct stats_delta *d)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t k = 0; k < d->n; k++)
        cJSON_AddNumberToObject(o, d->inc[k].field, (double)d->inc[k].n);
    return o;
}

/* Rows of a window: total (and the one series row) from n deltas of the job above, plus
 * one kept, unrefined job with 300 draft tokens. */
static void add_inc(cJSON *acc, const cJSON *inc)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, inc) {
        cJSON *a = cJSON_GetObjectItemCaseSensitive(acc, it->string);
        if (a)
            cJSON_SetNumberValue(a, a->valuedouble + it->valuedouble);
        else
            cJSON_AddNumberToObject(acc, it->string, it->valuedouble);
    }
}

static void test_window(void)
{
    struct job_acct a;
    struct route_result rr;
    struct stats_job j;
    static struct stats_delta d1, d2;
    struct stats_rows rows;
    cJSON *total = cJSON_CreateObject(), *arr = cJSON_CreateArray(), *row, *groups, *out;
    fill_job(&a, &rr, &j);
    CHECK(stats_delta_of(&j, &d1) == 0);
    /* the kept job: draft only */
    a.refine = (struct stage_usage){0, 0, 0, 0};
    a.cost_refine = 0;
    a.refine_ms = -1;
    a.draft = (struct stage_usage){1, 200, 100, 0};
    rr.refine = 0;
    rr.v[0].kind = VERDICT_KEEP;
    j.refined = 0;
    j.tenant = "acme";
    CHECK(stats_delta_of(&j, &d2) == 0);
    cJSON *i1 = inc_json(&d1), *i2 = inc_json(&d2);
    add_inc(total, i1);
    add_inc(total, i2);
    /* two series rows in consecutive minutes 100 and 101 */
    row = cJSON_CreateArray();
    cJSON_AddItemToArray(row, cJSON_CreateNumber(100));
    cJSON_AddItemToArray(row, cJSON_Duplicate(i1, 1));
    cJSON_AddItemToArray(arr, row);
    row = cJSON_CreateArray();
    cJSON_AddItemToArray(row, cJSON_CreateNumber(101));
    cJSON_AddItemToArray(row, cJSON_Duplicate(i2, 1));
    cJSON_AddItemToArray(arr, row);
    groups = cJSON_CreateObject();
    cJSON_AddItemToObject(groups, "acme", cJSON_Duplicate(i2, 1));
    rows.total = total;
    rows.rows = arr;
    rows.groups = groups;
    rows.gran_s = 60;
    rows.first = 99;
    out = stats_window_json(&rows, 180, "tenant", 60);
    CHECK(out != NULL);
    CHECK(jnum(out, "jobs") == 2);
    CHECK(jnum(out, "refined") == 1);
    CHECK_NEAR(jnum(out, "refine_rate"), 0.5, 1e-12);
    CHECK_NEAR(jnum(out, "cost_usd.total"), 0.000015 * 2 + 0.00012, 1e-15);
    CHECK_NEAR(jnum(out, "cost_usd.per_job"), (0.000015 * 2 + 0.00012) / 2, 1e-15);
    /* refine-everything: the kept job (300 draft tokens) priced at the refined job's refine
     * cost per draft token (0.00012 / 150) */
    CHECK_NEAR(jnum(out, "counterfactual_usd.all_refine"),
               0.000015 * 2 + 0.00012 + 0.00012 * 300.0 / 150.0, 1e-15);
    CHECK_NEAR(jnum(out, "counterfactual_usd.all_draft"), 0.00003, 1e-15);
    CHECK(jnum(out, "latency_ms.total.count") == 2);
    CHECK(fabs(jnum(out, "latency_ms.total.p50") - 345) <= 345 * 0.125);
    CHECK(jnum(out, "latency_ms.refine.count") == 1);
    CHECK(jnum(out, "by_policy.length") == 1);
    CHECK(jnum(out, "tokens.phi-4-mini.prompt") == 300);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(out, "series")) == 2);
    /* the group's refine-everything borrows the window's ratio (it refined nothing) */
    CHECK_NEAR(jnum(out, "groups.acme.counterfactual_usd.all_refine"),
               0.000015 + 0.00012 * 300.0 / 150.0, 1e-15);
    cJSON_Delete(out);
    /* a 120 s step folds the two minutes into one series point (slots start at the
     * window's first bucket) */
    rows.first = 100;
    out = stats_window_json(&rows, 180, "", 120);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(out, "series")) == 1);
    CHECK(jnum(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(out, "series"), 0),
               "jobs") == 2);
    CHECK(!cJSON_GetObjectItemCaseSensitive(out, "groups"));
    cJSON_Delete(out);
    cJSON_Delete(total);
    cJSON_Delete(arr);
    cJSON_Delete(groups);
    cJSON_Delete(i1);
    cJSON_Delete(i2);
}

static void test_metrics(void)
{
    struct job_acct a;
    struct route_result rr;
    struct stats_job j;
    struct stats_delta d;
    char *text;
    fill_job(&a, &rr, &j);
    CHECK(stats_delta_of(&j, &d) == 0);
    cJSON *m = inc_json(&d);
    cJSON_AddNumberToObject(m, "err:phi-4-mini:timeout", 3);
    text = stats_metrics_text(m, 7, 2, NULL);
    CHECK(text != NULL);
    CHECK(strstr(text, "briefd_jobs_total{status=\"succeeded\"} 1\n") != NULL);
    CHECK(strstr(text, "briefd_route_decisions_total{decision=\"refine\"} 1\n") != NULL);
    CHECK(strstr(text, "briefd_policy_votes_total{policy=\"length\",verdict=\"refine\"} 1\n"));
    CHECK(strstr(text, "briefd_model_tokens_total{model=\"gpt-oss-20b\",kind=\"completion\"} 80\n"));
    CHECK(strstr(text, "briefd_upstream_errors_total{model=\"phi-4-mini\",reason=\"timeout\"} 3\n"));
    CHECK(strstr(text, "briefd_queue_depth 7\n") != NULL);
    CHECK(strstr(text, "briefd_jobs_in_flight 2\n") != NULL);
    CHECK(strstr(text, "briefd_stage_duration_seconds_count{stage=\"total\"} 1\n") != NULL);
    CHECK(strstr(text, "briefd_stage_duration_seconds_bucket{stage=\"total\",le=\"+Inf\"} 1\n"));
    CHECK(strstr(text, "briefd_cost_usd_total{model=\"gpt-oss-20b\"} 0.000120000000\n"));
    free(text);
    cJSON_Delete(m);
}

/* --- quality: shadow evaluations and feedback --- */

static int cmp_int_d(const void *a, const void *b) { return cmp_d(a, b); }

/* The percentile of counts equals quality.h's percentile of the values they stand for,
 * to the last bit (both interpolate the same two sorted values). */
static void test_counts_percentile(void)
{
    double counts[25] = {0}, vals[200], ps[] = {0, 0.1, 0.5, 0.9, 0.95, 1};
    size_t n = 0;
    unsigned r = 7;
    for (int i = 0; i < 60; i++) {
        int k;
        r = r * 1103515245u + 12345u;
        k = (int)((r >> 8) % 25);
        counts[k]++;
        vals[n++] = (double)(k - 12) / 3.0;
    }
    qsort(vals, n, sizeof(double), cmp_int_d);
    for (size_t q = 0; q < sizeof(ps) / sizeof(ps[0]); q++) {
        double h = ps[q] * (double)(n - 1), lo = floor(h), hi = ceil(h);
        double want = vals[(size_t)lo] + (h - lo) * (vals[(size_t)hi] - vals[(size_t)lo]);
        CHECK(stats_counts_percentile(counts, 25, -12, 3.0, ps[q]) == want);
    }
    /* hand-computed: gaps 0, 1/3, 1/3, 4/3 -> p90 at rank 2.7: 1/3 + 0.7 * (4/3 - 1/3) */
    memset(counts, 0, sizeof(counts));
    counts[12] = 1;
    counts[13] = 2;
    counts[16] = 1;
    CHECK_NEAR(stats_counts_percentile(counts, 25, -12, 3.0, 0.9), 1.0 / 3.0 + 0.7, 1e-12);
    CHECK(stats_counts_percentile(counts, 25, -12, 3.0, 0.5) == 1.0 / 3.0);
    memset(counts, 0, sizeof(counts));
    CHECK(isnan(stats_counts_percentile(counts, 25, -12, 3.0, 0.9)));
    counts[0] = 1;
    CHECK(isnan(stats_counts_percentile(counts, 25, -12, 3.0, 1.5)));
    CHECK(stats_counts_percentile(counts, 25, -12, 3.0, 0.9) == -4);
}

static void quality_of(struct stats_quality *q, int d3, int r3, int kept, int refined)
{
    memset(q, 0, sizeof(*q));
    q->draft_s3 = d3;
    q->refine_s3 = r3;
    q->kept = kept;
    q->refined = refined;
    q->served_refine = refined;
    q->draft_model = "phi-4-mini";
    q->refine_model = "gpt-oss-20b";
    q->cost_usd = 0.000123;
    q->source = "crm";
    q->finished_ms = 1700000000123;
}

static void test_quality_delta(void)
{
    struct stats_quality q;
    struct stats_delta d;
    /* kept, refine 14 vs draft 11: a gap of one point: a missed refinement */
    quality_of(&q, 11, 14, 1, 0);
    CHECK(stats_quality_delta(&q, &d) == 0);
    CHECK(stats_delta_get(&d, "q_shadow") == 1 && stats_delta_get(&d, "q_judged") == 1);
    CHECK(stats_delta_get(&d, "q_d_n") == 1 && stats_delta_get(&d, "q_d_s3") == 11);
    CHECK(stats_delta_get(&d, "q_r_n") == 1 && stats_delta_get(&d, "q_r_s3") == 14);
    CHECK(stats_delta_get(&d, "q_s_n") == 1 && stats_delta_get(&d, "q_s_s3") == 11);
    CHECK(stats_delta_get(&d, "q_gk_n") == 1 && stats_delta_get(&d, "q_gk_s3") == 3);
    CHECK(stats_delta_get(&d, "q_gk:3") == 1);
    CHECK(stats_delta_get(&d, "q_missed") == 1 && stats_delta_get(&d, "q_needless") == 0);
    CHECK(stats_delta_get(&d, "qs:phi-4-mini:11") == 1);
    CHECK(stats_delta_get(&d, "qs:gpt-oss-20b:14") == 1);
    CHECK(stats_delta_get(&d, "eval_cost_p") == 123000000);
    CHECK_STR(d.source, "crm");
    CHECK(d.at_ms == 1700000000123);
    /* kept with a gap of 2/3: not missed */
    quality_of(&q, 11, 13, 1, 0);
    stats_quality_delta(&q, &d);
    CHECK(stats_delta_get(&d, "q_missed") == 0 && stats_delta_get(&d, "q_gk:2") == 1);
    /* refined, the draft as good: needless; the served brief is the refined one */
    quality_of(&q, 15, 15, 0, 1);
    stats_quality_delta(&q, &d);
    CHECK(stats_delta_get(&d, "q_needless") == 1 && stats_delta_get(&d, "q_gk_n") == 0);
    CHECK(stats_delta_get(&d, "q_s_s3") == 15);
    quality_of(&q, 12, 15, 0, 1);
    stats_quality_delta(&q, &d);
    CHECK(stats_delta_get(&d, "q_needless") == 0);
    /* a null side: counted as evaluated, judged by the other side, no gap */
    quality_of(&q, 12, 0, 1, 0);
    stats_quality_delta(&q, &d);
    CHECK(stats_delta_get(&d, "q_judged") == 1 && stats_delta_get(&d, "q_r_n") == 0);
    CHECK(stats_delta_get(&d, "q_gk_n") == 0 && stats_delta_get(&d, "q_missed") == 0);
    quality_of(&q, 0, 0, 1, 0);
    stats_quality_delta(&q, &d);
    CHECK(stats_delta_get(&d, "q_shadow") == 1 && stats_delta_get(&d, "q_judged") == 0);
    /* degraded (neither kept nor refined): no gap, not missed, not needless */
    quality_of(&q, 9, 15, 0, 0);
    stats_quality_delta(&q, &d);
    CHECK(stats_delta_get(&d, "q_gk_n") == 0 && stats_delta_get(&d, "q_missed") == 0);
    CHECK(stats_delta_get(&d, "q_needless") == 0);
    CHECK(stats_skip_delta("budget", 5, &d) == 0);
    CHECK(stats_delta_get(&d, "q_skip:budget") == 1 && d.at_ms == 5);
}

static void test_feedback_delta(void)
{
    static const char *const pols[] = {"length", "topic"}, *const verd[] = {"refine", "keep"};
    struct stats_feedback f;
    struct stats_delta d;
    memset(&f, 0, sizeof(f));
    f.score = 4;
    f.decision = "refine";
    f.policies = pols;
    f.verdicts = verd;
    f.n = 2;
    f.tenant = "acme";
    f.finished_ms = 42;
    CHECK(stats_feedback_delta(&f, &d) == 0);
    CHECK(stats_delta_get(&d, "fb_n") == 1 && stats_delta_get(&d, "fb_sum") == 4);
    CHECK(stats_delta_get(&d, "fbs:4") == 1);
    CHECK(stats_delta_get(&d, "fb_dec:refine:n") == 1);
    CHECK(stats_delta_get(&d, "fb_dec:refine:sum") == 4);
    CHECK(stats_delta_get(&d, "fb_pol:length:refine:sum") == 4);
    CHECK(stats_delta_get(&d, "fb_pol:topic:keep:n") == 1);
    CHECK_STR(d.tenant, "acme");
    CHECK(d.at_ms == 42);
    f.score = 6;
    CHECK(stats_feedback_delta(&f, &d) == BD_EINVAL);
}

/* Quality counters in a window: the /v1/stats quality object and the /metrics series. */
static void test_quality_json(void)
{
    struct stats_quality q;
    struct stats_feedback f;
    struct stats_delta d;
    static const char *const pols[] = {"length"}, *const verd[] = {"keep"};
    cJSON *total = cJSON_CreateObject(), *out, *i;
    struct stats_rows rows;
    char *text;
    /* kept: gaps 1/3 and 4/3; refined: needless once; evaluation spend */
    int cases[][4] = {{14, 15, 1, 0}, {11, 15, 1, 0}, {15, 15, 0, 1}, {12, 0, 1, 0}};
    for (size_t k = 0; k < 4; k++) {
        quality_of(&q, cases[k][0], cases[k][1], cases[k][2], cases[k][3]);
        stats_quality_delta(&q, &d);
        i = inc_json(&d);
        add_inc(total, i);
        cJSON_Delete(i);
    }
    memset(&f, 0, sizeof(f));
    f.decision = "keep";
    f.policies = pols;
    f.verdicts = verd;
    f.n = 1;
    for (int s = 2; s <= 5; s += 3) {
        f.score = s;
        stats_feedback_delta(&f, &d);
        i = inc_json(&d);
        add_inc(total, i);
        cJSON_Delete(i);
    }
    memset(&rows, 0, sizeof(rows));
    rows.total = total;
    rows.rows = cJSON_CreateArray();
    rows.gran_s = 60;
    out = stats_window_json(&rows, 3600, "", 60);
    CHECK(jnum(out, "quality.shadow") == 4 && jnum(out, "quality.judged") == 4);
    CHECK(jnum(out, "quality.overall.draft") == (14.0 + 11 + 15 + 12) / (3.0 * 4));
    CHECK(jnum(out, "quality.overall.refine") == 45.0 / 9.0);
    CHECK(jnum(out, "quality.overall.served") == (14.0 + 11 + 15 + 12) / (3.0 * 4));
    CHECK(jnum(out, "quality.gap_when_kept.count") == 2);
    CHECK(jnum(out, "quality.gap_when_kept.mean") == 5.0 / 6.0);
    CHECK_NEAR(jnum(out, "quality.gap_when_kept.p90"), 1.0 / 3.0 + 0.9 * 1.0, 1e-12);
    CHECK(jnum(out, "quality.missed_refinements") == 1);
    CHECK(jnum(out, "quality.needless_refinements") == 1);
    CHECK(jnum(out, "quality.by_model.phi-4-mini.count") == 4);
    CHECK(jnum(out, "quality.by_model.gpt-oss-20b.mean") == 5);
    CHECK(jnum(out, "quality.feedback.count") == 2);
    CHECK(jnum(out, "quality.feedback.mean_score") == 3.5);
    CHECK(jnum(out, "quality.feedback.by_score.5") == 1);
    CHECK(jnum(out, "quality.feedback.by_decision.keep.count") == 2);
    CHECK(jnum(out, "quality.feedback.by_decision.refine.count") == 0);
    CHECK(jnum(out, "quality.feedback.by_policy.length.keep.mean_score") == 3.5);
    CHECK_NEAR(jnum(out, "evaluation_usd"), 4 * 0.000123, 1e-15);
    cJSON_Delete(out);
    text = stats_metrics_text(total, 0, 0, NULL);
    CHECK(strstr(text, "briefd_quality_score_bucket{model=\"phi-4-mini\",le=\"4\"} 2\n"));
    CHECK(strstr(text, "briefd_quality_score_bucket{model=\"phi-4-mini\",le=\"4.5\"} 2\n"));
    CHECK(strstr(text, "briefd_quality_score_bucket{model=\"phi-4-mini\",le=\"5\"} 4\n"));
    CHECK(strstr(text, "briefd_quality_score_count{model=\"gpt-oss-20b\"} 3\n"));
    CHECK(strstr(text, "briefd_quality_score_sum{model=\"gpt-oss-20b\"} 15\n"));
    CHECK(strstr(text, "briefd_feedback_total{score=\"2\"} 1\n"));
    CHECK(strstr(text, "briefd_feedback_total{score=\"3\"} 0\n"));
    CHECK(strstr(text, "briefd_evaluation_cost_usd_total 0.000492000000\n"));
    CHECK(strstr(text, "briefd_missed_refinements_total 1\n"));
    free(text);
    cJSON_Delete(total);
    cJSON_Delete(rows.rows);
}

/* Series the configuration makes known are there at zero; a fallback's answers are counted;
 * the exported histogram buckets fit LLM latencies (5 ms .. 120 s, at most x2 apart). */
static void test_metrics_known(void)
{
    static const char *const models[] = {"phi-4-mini", "gpt-oss-20b", "phi-backup",
                                         "phi-4-mini"};
    struct stats_known known = {models, 4, {1, 0}};
    struct job_acct a;
    struct route_result rr;
    struct stats_job j;
    struct stats_delta d;
    char *text, *p;
    double prev = 0, first = 0, last = 0, worst = 0;
    fill_job(&a, &rr, &j);
    j.draft_fallback = 1;
    CHECK(stats_delta_of(&j, &d) == 0);
    CHECK(stats_delta_get(&d, "fb:draft:1") == 1);
    cJSON *m = inc_json(&d);
    text = stats_metrics_text(m, 0, 0, &known);
    CHECK(text != NULL);
    if (!text)
        return;
    CHECK(strstr(text, "briefd_cost_usd_total{model=\"phi-backup\"} 0\n") != NULL);
    CHECK(strstr(text, "briefd_cost_usd_total{model=\"gpt-oss-20b\"} 0.000120000000\n"));
    CHECK(strstr(text, "briefd_cost_usd_total{model=\"gpt-oss-20b\"} 0\n") == NULL);
    CHECK(strstr(text, "briefd_upstream_errors_total{model=\"phi-backup\",reason=\"deadline\"} 0\n"));
    CHECK(strstr(text, "briefd_upstream_errors_total{model=\"phi-4-mini\",reason=\"connect\"} 0\n"));
    p = strstr(text, "briefd_upstream_errors_total{model=\"phi-4-mini\",reason=\"connect\"}");
    CHECK(p && !strstr(p + 1, "briefd_upstream_errors_total{model=\"phi-4-mini\",reason=\"connect\"}"));
    CHECK(strstr(text, "briefd_fallback_answers_total{role=\"draft\",endpoint=\"fallback1\"} 1\n"));
    CHECK(!strstr(text, "briefd_fallback_answers_total{role=\"refine\""));
    for (p = strstr(text, "stage=\"total\",le=\""); p; p = strstr(p + 1, "stage=\"total\",le=\"")) {
        double le = strtod(p + 18, NULL);
        if (p[18] == '+')
            break;
        if (prev > 0 && le / prev > worst)
            worst = le / prev;
        if (first == 0)
            first = le;
        prev = last = le;
    }
    CHECK(first > 0 && first <= 0.005);
    CHECK(last >= 120);
    CHECK(worst > 1.5 && worst <= 2.0);
    free(text);
    cJSON_Delete(m);
}

/* The exact cache: a hit counts "cached" (and nothing routed, refined or spent), a lookup
 * that ran the models "cache_miss"; /v1/stats gives hits, misses and the hit rate, /metrics
 * briefd_cache_hits_total and briefd_cache_misses_total. */
static void test_cache_counts(void)
{
    struct job_acct a;
    struct stats_job j;
    struct stats_delta hit, miss;
    struct stats_rows rows;
    cJSON *m, *out;
    char *text;

    acct_init(&a);
    a.total_ms = 2;
    memset(&j, 0, sizeof(j));
    j.succeeded = 1;
    j.cached = 1;
    j.draft_model = "phi-4-mini";
    j.refine_model = "gpt-oss-20b";
    j.acct = &a;
    j.tenant = "acme";
    j.finished_ms = 1700000000000;
    CHECK(stats_delta_of(&j, &hit) == 0);
    CHECK(stats_delta_get(&hit, "cached") == 1);
    CHECK(stats_delta_get(&hit, "cache_miss") == 0);
    CHECK(stats_delta_get(&hit, "decided") == 0);
    CHECK(stats_delta_get(&hit, "refined") == 0);
    CHECK(stats_delta_get(&hit, "cost_draft_p") == 0);
    CHECK_STR(hit.tenant, "acme");
    j.cached = 0;
    j.cache_miss = 1;
    CHECK(stats_delta_of(&j, &miss) == 0);
    CHECK(stats_delta_get(&miss, "cache_miss") == 1);
    CHECK(stats_delta_get(&miss, "cached") == 0);

    m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "jobs", 4);
    cJSON_AddNumberToObject(m, "succeeded", 4);
    cJSON_AddNumberToObject(m, "cached", 1);
    cJSON_AddNumberToObject(m, "cache_miss", 3);
    memset(&rows, 0, sizeof(rows));
    rows.total = m;
    rows.rows = cJSON_CreateArray();
    rows.gran_s = 60;
    out = stats_window_json(&rows, 3600, "", 60);
    CHECK(jnum(out, "cache.hits") == 1);
    CHECK(jnum(out, "cache.misses") == 3);
    CHECK(jnum(out, "cache.hit_rate") == 0.25);
    cJSON_Delete(out);
    text = stats_metrics_text(m, 0, 0, NULL);
    CHECK(text && strstr(text, "\nbriefd_cache_hits_total 1\n") != NULL);
    CHECK(text && strstr(text, "\nbriefd_cache_misses_total 3\n") != NULL);
    CHECK(text && strstr(text, "# TYPE briefd_cache_hits_total counter\n") != NULL);
    free(text);
    /* no lookup at all: the hit rate is null, not a division by zero */
    cJSON_DeleteItemFromObject(m, "cached");
    cJSON_DeleteItemFromObject(m, "cache_miss");
    out = stats_window_json(&rows, 3600, "", 60);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(out, "cache"), "hit_rate")));
    cJSON_Delete(out);
    cJSON_Delete(rows.rows);
    cJSON_Delete(m);
}

int main(void)
{
    test_buckets();
    test_percentiles();
    test_delta();
    test_window();
    test_metrics();
    test_counts_percentile();
    test_quality_delta();
    test_feedback_delta();
    test_quality_json();
    test_metrics_known();
    test_cache_counts();
    return tcheck_summary("test_stats");
}
