/* stats.c - statistics arithmetic: increments, percentiles, counterfactuals, /metrics text. */
#include "stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "bderr.h"
#include "hash.h"
#include "jsonx.h"
#include "mclient.h"
#include "router.h"
#include "sbuf.h"

int stats_bucket(double ms)
{
    int i;
    if (!(ms > STATS_HBASE_MS))
        return 0;
    i = 1 + (int)floor(log(ms / STATS_HBASE_MS) / log(STATS_HGROWTH) - 1e-9);
    if (i < 1)
        i = 1;
    return i >= STATS_HBUCKETS ? STATS_HBUCKETS - 1 : i;
}

double stats_bucket_upper(int i) { return STATS_HBASE_MS * pow(STATS_HGROWTH, i); }
double stats_bucket_lower(int i) { return i <= 0 ? 0 : STATS_HBASE_MS * pow(STATS_HGROWTH, i - 1); }

double stats_bucket_value(int i)
{
    return i <= 0 ? STATS_HBASE_MS : sqrt(stats_bucket_lower(i) * stats_bucket_upper(i));
}

static long long pico(double usd) { return llround(usd * STATS_PICO); }

/* --- increments --- */

static void inc(struct stats_delta *d, const char *field, long long n)
{
    struct stats_inc *it = NULL;
    uint64_t h;
    if (n == 0)
        return;
    h = hash_fnv1a64_str(HASH_FNV1A64_INIT, field);
    for (size_t k = 0; k < d->n && !it; k++)
        if (d->inc[k].hash == h && strcmp(d->inc[k].field, field) == 0)
            it = &d->inc[k];
    if (!it) {
        if (d->n == STATS_DELTA_MAX) {
            d->dropped++;
            return;
        }
        size_t len = strlen(field);
        it = &d->inc[d->n++];
        if (len >= sizeof(it->field))
            len = sizeof(it->field) - 1;
        memcpy(it->field, field, len);
        it->field[len] = '\0';
        for (char *p = it->field; *p; p++) /* fields travel as "field<TAB>n" lines */
            if (*p == '\t' || *p == '\n')
                *p = '_';
        it->n = 0;
        it->hash = h;
    }
    it->n += n;
}

/* a, b and c joined into f (cap bytes, cut to fit): no printf on the per-job path. */
static void cat3(char *f, size_t cap, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        for (const char *p = parts[i]; *p && n + 1 < cap; p++)
            f[n++] = *p;
    f[n] = '\0';
}

static void incf(struct stats_delta *d, const char *a, const char *b, const char *c, long long n)
{
    char f[200];
    cat3(f, sizeof(f), a, b, c);
    inc(d, f, n);
}

static void add_latency(struct stats_delta *d, const char *stage, double ms)
{
    char f[64], num[24];
    if (ms < 0)
        return;
    jsonx_int(stats_bucket(ms), num);
    cat3(f, sizeof(f), "h:", stage, ":");
    cat3(f + strlen(f), sizeof(f) - strlen(f), num, "", "");
    inc(d, f, 1);
    incf(d, "n:", stage, "", 1);
    incf(d, "sum_us:", stage, "", llround(ms * 1000.0));
}

/* A stage that fallback k (> 0) answered. */
static void add_fallback(struct stats_delta *d, const char *role, int k)
{
    char f[32];
    if (k <= 0)
        return;
    snprintf(f, sizeof(f), "fb:%s:%d", role, k);
    inc(d, f, 1);
}

static void job_fields(struct stats_delta *i, const struct stats_job *j)
{
    const struct job_acct *a = j->acct;
    inc(i, "jobs", 1);
    inc(i, j->succeeded ? "succeeded" : "failed", 1);
    if (j->decided) {
        inc(i, "decided", 1);
        inc(i, j->route && j->route->refine ? "dec_refine" : "dec_keep", 1);
    }
    inc(i, "refined", j->refined);
    inc(i, "degraded", j->degraded);
    inc(i, "cached", j->cached);
    inc(i, "cache_miss", j->cache_miss);
    inc(i, "cost_draft_p", pico(a->cost_draft));
    inc(i, "cost_refine_p", pico(a->cost_refine));
    incf(i, "cost_p:", j->draft_model, "", pico(a->cost_draft));
    if (a->refine.present)
        incf(i, "cost_p:", j->refine_model, "", pico(a->cost_refine));
    if (a->draft.present) {
        long long dt = a->draft.prompt_tokens + a->draft.completion_tokens;
        incf(i, "tok:", j->draft_model, ":p", a->draft.prompt_tokens);
        incf(i, "tok:", j->draft_model, ":c", a->draft.completion_tokens);
        inc(i, "dtok_all", dt);
        if (j->refined)
            inc(i, "dtok_refined", dt);
    }
    if (a->refine.present) {
        incf(i, "tok:", j->refine_model, ":p", a->refine.prompt_tokens);
        incf(i, "tok:", j->refine_model, ":c", a->refine.completion_tokens);
    }
    add_fallback(i, "draft", j->draft_fallback);
    add_fallback(i, "refine", j->refine_fallback);
    for (size_t k = 0; j->route && k < j->route->n; k++) {
        char f[160];
        snprintf(f, sizeof(f), "vote:%s:%s", j->route->v[k].policy,
                 verdict_name(j->route->v[k].kind));
        inc(i, f, 1);
    }
    for (int k = 0; k < ACCT_STAGES; k++)
        add_latency(i, acct_stage_names[k], acct_stage_ms(a, k));
}

void stats_label(const char *value, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = value ? value : ""; *p && n < 64 && n + 1 < len; p++)
        out[n++] = (*p > ' ' && *p < 0x7f && *p != ':') ? *p : '_';
    out[n] = '\0';
}

/* An empty delta (not memset: inc[] is 16 KB, and inc() writes each entry it uses). */
static void delta_head(struct stats_delta *out, const char *source, const char *tenant,
                       int64_t at_ms)
{
    out->n = 0;
    out->dropped = 0;
    stats_label(source, out->source, sizeof(out->source));
    stats_label(tenant, out->tenant, sizeof(out->tenant));
    out->at_ms = at_ms;
}

int stats_delta_of(const struct stats_job *j, struct stats_delta *out)
{
    delta_head(out, j->source, j->tenant, j->finished_ms);
    job_fields(out, j);
    return out->dropped ? BD_ETOOBIG : 0;
}

long long stats_delta_get(const struct stats_delta *d, const char *field)
{
    for (size_t k = 0; k < d->n; k++)
        if (strcmp(d->inc[k].field, field) == 0)
            return d->inc[k].n;
    return 0;
}

/* --- quality deltas --- */

static int valid_s3(int s3) { return s3 >= STATS_S3_MIN && s3 <= STATS_S3_MAX; }

/* One judgement of a brief written by model: its side's count and sum, its model's score. */
static void add_judgement(struct stats_delta *d, const char *side, const char *model, int s3)
{
    char f[200];
    snprintf(f, sizeof(f), "q_%s_n", side);
    inc(d, f, 1);
    snprintf(f, sizeof(f), "q_%s_s3", side);
    inc(d, f, s3);
    snprintf(f, sizeof(f), "qs:%s:%d", model ? model : "", s3);
    inc(d, f, 1);
}

int stats_quality_delta(const struct stats_quality *q, struct stats_delta *out)
{
    int dv = valid_s3(q->draft_s3), rv = valid_s3(q->refine_s3);
    int served = q->served_refine ? q->refine_s3 : q->draft_s3;
    delta_head(out, q->source, q->tenant, q->finished_ms);
    inc(out, "q_shadow", 1);
    inc(out, "q_judged", dv || rv);
    if (dv)
        add_judgement(out, "d", q->draft_model, q->draft_s3);
    if (rv)
        add_judgement(out, "r", q->refine_model, q->refine_s3);
    if (valid_s3(served)) {
        inc(out, "q_s_n", 1);
        inc(out, "q_s_s3", served);
    }
    if (dv && rv && q->kept) {
        char f[32];
        int g = q->refine_s3 - q->draft_s3;
        inc(out, "q_gk_n", 1);
        inc(out, "q_gk_s3", g);
        snprintf(f, sizeof(f), "q_gk:%d", g);
        inc(out, f, 1);
        inc(out, "q_missed", g >= 3);        /* at least one point (three thirds) higher */
    }
    if (dv && rv && q->refined)
        inc(out, "q_needless", q->draft_s3 >= q->refine_s3);
    inc(out, "eval_cost_p", pico(q->cost_usd));
    return out->dropped ? BD_ETOOBIG : 0;
}

int stats_skip_delta(const char *reason, int64_t at_ms, struct stats_delta *out)
{
    delta_head(out, NULL, NULL, at_ms);
    incf(out, "q_skip:", reason, "", 1);
    return 0;
}

/* feedback counted under prefix: "<prefix>:n" and "<prefix>:sum" */
static void add_fb(struct stats_delta *d, const char *prefix, int score)
{
    incf(d, prefix, ":n", "", 1);
    incf(d, prefix, ":sum", "", score);
}

int stats_feedback_delta(const struct stats_feedback *f, struct stats_delta *out)
{
    char field[200];
    delta_head(out, f->source, f->tenant, f->finished_ms);
    if (f->score < 1 || f->score > 5)
        return BD_EINVAL;
    inc(out, "fb_n", 1);
    inc(out, "fb_sum", f->score);
    snprintf(field, sizeof(field), "fbs:%d", f->score);
    inc(out, field, 1);
    if (f->decision) {
        snprintf(field, sizeof(field), "fb_dec:%s", f->decision);
        add_fb(out, field, f->score);
    }
    for (size_t k = 0; k < f->n && k < STATS_FB_MAX_VOTES; k++) {
        snprintf(field, sizeof(field), "fb_pol:%.80s:%.20s", f->policies[k], f->verdicts[k]);
        add_fb(out, field, f->score);
    }
    return out->dropped ? BD_ETOOBIG : 0;
}

/* The value of count k: (first + k) / div. */
static double count_value(size_t k, int first, double div)
{
    return ((double)first + (double)k) / div;
}

/* The value at sorted position pos (0-based) of values with counts[0..n). */
static double value_at(const double *counts, size_t n, double pos, int first, double div)
{
    double cum = 0;
    for (size_t k = 0; k < n; k++) {
        cum += counts[k];
        if (counts[k] > 0 && pos < cum)
            return count_value(k, first, div);
    }
    return NAN;
}

double stats_counts_percentile(const double *counts, size_t n, int first, double div, double p)
{
    double total = 0, h, a, b;
    for (size_t k = 0; k < n; k++)
        total += counts[k] > 0 ? counts[k] : 0;
    if (total <= 0 || !(p >= 0 && p <= 1))
        return NAN;
    h = p * (total - 1);
    a = value_at(counts, n, floor(h), first, div);
    b = value_at(counts, n, ceil(h), first, div);
    return a + (h - floor(h)) * (b - a);
}

/* --- the /v1/stats object --- */

static double num(const cJSON *m, const char *f)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, f);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static double usd(double p) { return p / STATS_PICO; }

/* One stage's histogram out of a map of counters, in one pass over the map. */
static double hist_of(const cJSON *m, const char *stage, double *h)
{
    char pre[64];
    size_t pl;
    double n = 0;
    const cJSON *it;
    memset(h, 0, STATS_HBUCKETS * sizeof(*h));
    snprintf(pre, sizeof(pre), "h:%s:", stage);
    pl = strlen(pre);
    cJSON_ArrayForEach(it, m) {
        if (strncmp(it->string, pre, pl) == 0) {
            int i = atoi(it->string + pl);
            if (i >= 0 && i < STATS_HBUCKETS) {
                h[i] += it->valuedouble;
                n += it->valuedouble;
            }
        }
    }
    return n;
}

/* The q-quantile of a histogram of n observations: the geometric middle of the bucket that
 * holds it, so within STATS_HACCURACY of the exact value whatever the merge. */
static double percentile(const double *h, double n, double q)
{
    double want = q * n, cum = 0;
    if (n <= 0)
        return NAN;
    for (int i = 0; i < STATS_HBUCKETS; i++) {
        cum += h[i];
        if (h[i] > 0 && cum >= want)
            return stats_bucket_value(i);
    }
    return stats_bucket_value(STATS_HBUCKETS - 1);
}

double stats_percentile(const double *h, double q)
{
    double n = 0;
    for (int i = 0; i < STATS_HBUCKETS; i++)
        n += h[i];
    return percentile(h, n, q);
}

/* v rounded to 1/scale (scale a power of ten): the closest double to the decimal */
static double round_to(double v, double scale) { return round(v * scale) / scale; }

static void add_latency_json(cJSON *obj, const cJSON *m)
{
    cJSON *lat = cJSON_AddObjectToObject(obj, "latency_ms");
    double h[STATS_HBUCKETS];
    for (size_t s = 0; s < ACCT_STAGES; s++) {
        char f[64];
        cJSON *o;
        double n;
        snprintf(f, sizeof(f), "n:%s", acct_stage_names[s]);
        n = num(m, f);
        if (n <= 0)
            continue;
        hist_of(m, acct_stage_names[s], h);
        o = cJSON_AddObjectToObject(lat, acct_stage_names[s]);
        jsonx_add_number(o, "p50", round_to(percentile(h, n, 0.50), 1000.0));
        jsonx_add_number(o, "p95", round_to(percentile(h, n, 0.95), 1000.0));
        jsonx_add_number(o, "p99", round_to(percentile(h, n, 0.99), 1000.0));
        cJSON_AddNumberToObject(o, "count", n);
        snprintf(f, sizeof(f), "sum_us:%s", acct_stage_names[s]);
        jsonx_add_number(o, "mean", round_to(num(m, f) / 1000.0 / n, 1000.0));
    }
}

/* refine-everything estimate: actual costs, plus for every job not refined the refine cost
 * the refined jobs showed per draft token - this group's own jobs when some were refined,
 * else (ratio_from) the whole window's. NAN when nothing was refined at all. */
static double all_refine_p(const cJSON *m, const cJSON *ratio_from)
{
    double dall = num(m, "dtok_all"), dref = num(m, "dtok_refined");
    double cref = num(m, "cost_refine_p"), cdr = num(m, "cost_draft_p");
    const cJSON *r = (dref > 0 && cref > 0) ? m : ratio_from;
    double rd = num(r, "dtok_refined"), rc = num(r, "cost_refine_p");
    if (rd <= 0 || rc <= 0)
        return NAN;
    return cdr + cref + rc * (dall - dref) / rd;
}

/* tokens and by_policy objects */
static void add_breakdowns(cJSON *obj, const cJSON *m)
{
    cJSON *tok = cJSON_AddObjectToObject(obj, "tokens");
    cJSON *pol = cJSON_AddObjectToObject(obj, "by_policy");
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        const char *f = it->string;
        if (strncmp(f, "tok:", 4) == 0) {
            char model[128];
            const char *last = strrchr(f, ':');
            size_t n = (size_t)(last - (f + 4));
            if (n == 0 || n >= sizeof(model))
                continue;
            memcpy(model, f + 4, n);
            model[n] = '\0';
            cJSON *mo = cJSON_GetObjectItemCaseSensitive(tok, model);
            if (!mo) {
                mo = cJSON_AddObjectToObject(tok, model);
                cJSON_AddNumberToObject(mo, "prompt", 0);
                cJSON_AddNumberToObject(mo, "completion", 0);
            }
            cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(
                                     mo, strcmp(last, ":p") == 0 ? "prompt" : "completion"),
                                 it->valuedouble);
        } else if (strncmp(f, "vote:", 5) == 0) {
            const char *last = strrchr(f, ':');
            char policy[128];
            size_t n = (size_t)(last - (f + 5));
            if (strcmp(last, ":refine") != 0 || n == 0 || n >= sizeof(policy) ||
                strncmp(f + 5, "guard:", 6) == 0)
                continue;
            memcpy(policy, f + 5, n);
            policy[n] = '\0';
            cJSON_AddNumberToObject(pol, policy, it->valuedouble);
        }
    }
}

/* --- quality figures --- */

/* The mean overall score of n judgements whose s3 sum to s3 (NAN when none). */
static double mean_s3(double s3, double n) { return n > 0 ? s3 / (3.0 * n) : NAN; }

/* {"count": n, "mean_score": sum / n or null} */
static cJSON *count_mean(cJSON *parent, const char *name, double n, double sum)
{
    cJSON *o = cJSON_AddObjectToObject(parent, name);
    cJSON_AddNumberToObject(o, "count", n);
    jsonx_add_number(o, "mean_score", n > 0 ? sum / n : NAN);
    return o;
}

/* The field's text after prefix up to its last ':' into a (the rest after it in *tail);
 * 0, or -1 when the field does not have that shape. */
static int split_field(const char *f, const char *prefix, char *a, size_t len,
                       const char **tail)
{
    size_t pl = strlen(prefix), n;
    const char *last;
    if (strncmp(f, prefix, pl) != 0)
        return -1;
    last = strrchr(f + pl, ':');
    if (!last)
        return -1;
    n = (size_t)(last - (f + pl));
    if (n == 0 || n >= len)
        return -1;
    memcpy(a, f + pl, n);
    a[n] = '\0';
    *tail = last + 1;
    return 0;
}

/* Add v to obj.name (created at 0). */
static void bump(cJSON *obj, const char *name, double v)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!it)
        it = cJSON_AddNumberToObject(obj, name, 0);
    if (it)
        cJSON_SetNumberValue(it, it->valuedouble + v);
}

/* by_model: {model: {"count", "mean"}} from the qs:<model>:<s3> counters. */
static void add_quality_models(cJSON *q, const cJSON *m)
{
    cJSON *sums = cJSON_CreateObject(), *out = cJSON_AddObjectToObject(q, "by_model");
    const cJSON *it;
    cJSON_ArrayForEach(it, m) {
        char model[128];
        const char *tail;
        int s3;
        if (split_field(it->string, "qs:", model, sizeof(model), &tail) != 0)
            continue;
        s3 = atoi(tail);
        if (s3 < STATS_S3_MIN || s3 > STATS_S3_MAX)
            continue;
        cJSON *o = cJSON_GetObjectItemCaseSensitive(sums, model);
        if (!o)
            o = cJSON_AddObjectToObject(sums, model);
        bump(o, "n", it->valuedouble);
        bump(o, "s3", it->valuedouble * s3);
    }
    cJSON_ArrayForEach(it, sums) {
        cJSON *o = cJSON_AddObjectToObject(out, it->string);
        double n = num(it, "n");
        cJSON_AddNumberToObject(o, "count", n);
        jsonx_add_number(o, "mean", mean_s3(num(it, "s3"), n));
    }
    cJSON_Delete(sums);
}

/* gap_when_kept: count, mean and p90 of refine - draft over kept jobs judged both ways. */
static void add_gap(cJSON *q, const cJSON *m)
{
    double counts[2 * STATS_GAP_MAX + 1];
    cJSON *g = cJSON_AddObjectToObject(q, "gap_when_kept");
    for (int k = -STATS_GAP_MAX; k <= STATS_GAP_MAX; k++) {
        char f[32];
        snprintf(f, sizeof(f), "q_gk:%d", k);
        counts[k + STATS_GAP_MAX] = num(m, f);
    }
    cJSON_AddNumberToObject(g, "count", num(m, "q_gk_n"));
    jsonx_add_number(g, "mean", mean_s3(num(m, "q_gk_s3"), num(m, "q_gk_n")));
    jsonx_add_number(g, "p90", stats_counts_percentile(counts, 2 * STATS_GAP_MAX + 1,
                                                       -STATS_GAP_MAX, 3.0, 0.9));
}

/* feedback: count, mean, by score, by route decision, by policy verdict. */
static void add_feedback(cJSON *q, const cJSON *m)
{
    cJSON *fb = count_mean(q, "feedback", num(m, "fb_n"), num(m, "fb_sum"));
    cJSON *sc = cJSON_AddObjectToObject(fb, "by_score");
    cJSON *dec = cJSON_AddObjectToObject(fb, "by_decision");
    cJSON *pol = cJSON_AddObjectToObject(fb, "by_policy");
    const cJSON *it;
    for (int k = 1; k <= 5; k++) {
        char f[16], name[4];
        snprintf(f, sizeof(f), "fbs:%d", k);
        snprintf(name, sizeof(name), "%d", k);
        cJSON_AddNumberToObject(sc, name, num(m, f));
    }
    count_mean(dec, "keep", num(m, "fb_dec:keep:n"), num(m, "fb_dec:keep:sum"));
    count_mean(dec, "refine", num(m, "fb_dec:refine:n"), num(m, "fb_dec:refine:sum"));
    cJSON_ArrayForEach(it, m) {
        char pv[128], sum_f[200];
        const char *tail, *colon;
        cJSON *po;
        if (split_field(it->string, "fb_pol:", pv, sizeof(pv), &tail) != 0 ||
            strcmp(tail, "n") != 0)
            continue;
        colon = strrchr(pv, ':'); /* pv is "<policy>:<verdict>" */
        if (!colon || colon == pv)
            continue;
        snprintf(sum_f, sizeof(sum_f), "fb_pol:%s:sum", pv);
        pv[colon - pv] = '\0';
        po = cJSON_GetObjectItemCaseSensitive(pol, pv);
        if (!po)
            po = cJSON_AddObjectToObject(pol, pv);
        count_mean(po, colon + 1, it->valuedouble, num(m, sum_f));
    }
}

static void add_quality(cJSON *obj, const cJSON *m)
{
    cJSON *q = cJSON_AddObjectToObject(obj, "quality"), *o, *sk;
    cJSON_AddNumberToObject(q, "judged", num(m, "q_judged"));
    cJSON_AddNumberToObject(q, "shadow", num(m, "q_shadow"));
    o = cJSON_AddObjectToObject(q, "overall");
    jsonx_add_number(o, "draft", mean_s3(num(m, "q_d_s3"), num(m, "q_d_n")));
    jsonx_add_number(o, "refine", mean_s3(num(m, "q_r_s3"), num(m, "q_r_n")));
    jsonx_add_number(o, "served", mean_s3(num(m, "q_s_s3"), num(m, "q_s_n")));
    add_gap(q, m);
    cJSON_AddNumberToObject(q, "missed_refinements", num(m, "q_missed"));
    cJSON_AddNumberToObject(q, "needless_refinements", num(m, "q_needless"));
    add_quality_models(q, m);
    sk = cJSON_AddObjectToObject(q, "skipped");
    cJSON_AddNumberToObject(sk, "budget", num(m, "q_skip:budget"));
    cJSON_AddNumberToObject(sk, "breaker", num(m, "q_skip:breaker"));
    cJSON_AddNumberToObject(sk, "busy", num(m, "q_skip:busy"));
    add_feedback(q, m);
}

/* "cache": exact-cache hits, misses (lookups that ran the models) and the hit rate. */
static void add_cache(cJSON *obj, const cJSON *m)
{
    double hits = num(m, "cached"), misses = num(m, "cache_miss");
    cJSON *c = cJSON_AddObjectToObject(obj, "cache");
    cJSON_AddNumberToObject(c, "hits", hits);
    cJSON_AddNumberToObject(c, "misses", misses);
    jsonx_add_number(c, "hit_rate", hits + misses > 0 ? hits / (hits + misses) : NAN);
}

static void add_figures(cJSON *obj, const cJSON *m, const cJSON *ratio_from)
{
    double jobs = num(m, "jobs"), cd = num(m, "cost_draft_p"), cr = num(m, "cost_refine_p");
    double allr = all_refine_p(m, ratio_from);
    cJSON *cost, *cf;
    cJSON_AddNumberToObject(obj, "jobs", jobs);
    cJSON_AddNumberToObject(obj, "succeeded", num(m, "succeeded"));
    cJSON_AddNumberToObject(obj, "failed", num(m, "failed"));
    cJSON_AddNumberToObject(obj, "refined", num(m, "refined"));
    jsonx_add_number(obj, "refine_rate", jobs > 0 ? num(m, "refined") / jobs : 0);
    cJSON_AddNumberToObject(obj, "degraded", num(m, "degraded"));
    cost = cJSON_AddObjectToObject(obj, "cost_usd");
    jsonx_add_number(cost, "draft", usd(cd));
    jsonx_add_number(cost, "refine", usd(cr));
    jsonx_add_number(cost, "total", usd(cd + cr));
    jsonx_add_number(cost, "per_job", jobs > 0 ? usd(cd + cr) / jobs : 0);
    cf = cJSON_AddObjectToObject(obj, "counterfactual_usd");
    jsonx_add_number(cf, "all_draft", usd(cd));
    jsonx_add_number(cf, "all_refine", usd(allr));
    jsonx_add_number(cf, "savings_vs_all_refine", isnan(allr) || allr <= 0
                                                      ? NAN
                                                      : 1.0 - (cd + cr) / allr);
    add_cache(obj, m);
    add_latency_json(obj, m);
    add_breakdowns(obj, m);
    add_quality(obj, m);
    jsonx_add_number(obj, "evaluation_usd", usd(num(m, "eval_cost_p")));
}

struct series_ctx {
    long step_s, gran_s;
    long long first;
};

/* One series point: the slot's sums, with its refine rate, cost and refine-everything. */
static cJSON *series_point(long long slot, long gran_s, const cJSON *m)
{
    cJSON *o = cJSON_CreateObject();
    double jobs = num(m, "jobs"), cd = num(m, "cost_draft_p"), cr = num(m, "cost_refine_p");
    double dall = num(m, "dtok_all"), dref = num(m, "dtok_refined");
    double allr = (dref > 0 && cr > 0) ? cd + cr + cr * (dall - dref) / dref : NAN;
    cJSON_AddNumberToObject(o, "t", (double)(slot * gran_s));
    cJSON_AddNumberToObject(o, "jobs", jobs);
    cJSON_AddNumberToObject(o, "succeeded", num(m, "succeeded"));
    cJSON_AddNumberToObject(o, "failed", num(m, "failed"));
    cJSON_AddNumberToObject(o, "refined", num(m, "refined"));
    cJSON_AddNumberToObject(o, "degraded", num(m, "degraded"));
    jsonx_add_number(o, "refine_rate", jobs > 0 ? num(m, "refined") / jobs : 0);
    jsonx_add_number(o, "cost_usd", usd(cd + cr));
    jsonx_add_number(o, "per_job", jobs > 0 ? usd(cd + cr) / jobs : 0);
    jsonx_add_number(o, "all_refine_usd", usd(allr));
    cJSON_AddNumberToObject(o, "judged", num(m, "q_judged"));
    jsonx_add_number(o, "served_overall", mean_s3(num(m, "q_s_s3"), num(m, "q_s_n")));
    jsonx_add_number(o, "gap_when_kept", mean_s3(num(m, "q_gk_s3"), num(m, "q_gk_n")));
    cJSON_AddNumberToObject(o, "missed_refinements", num(m, "q_missed"));
    cJSON_AddNumberToObject(o, "needless_refinements", num(m, "q_needless"));
    cJSON_AddNumberToObject(o, "feedback", num(m, "fb_n"));
    jsonx_add_number(o, "feedback_mean", num(m, "fb_n") > 0 ? num(m, "fb_sum") / num(m, "fb_n")
                                                            : NAN);
    return o;
}

/* Add the fields of the series sums to acc (a cJSON object of numbers). */
static void merge_into(cJSON *acc, const cJSON *m)
{
    static const char *const fields[] = {"jobs", "succeeded", "failed", "refined", "degraded",
                                         "cost_draft_p", "cost_refine_p", "dtok_all",
                                         "dtok_refined", "q_judged", "q_s_n", "q_s_s3",
                                         "q_gk_n", "q_gk_s3", "q_missed", "q_needless",
                                         "fb_n", "fb_sum"};
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        cJSON *it = cJSON_GetObjectItemCaseSensitive(acc, fields[f]);
        double v = num(m, fields[f]);
        if (it)
            cJSON_SetNumberValue(it, it->valuedouble + v);
        else
            cJSON_AddNumberToObject(acc, fields[f], v);
    }
}

/* Rows of gran_s buckets regrouped into slots of step_s. */
static void add_series(cJSON *obj, const cJSON *rows, const struct series_ctx *q)
{
    cJSON *series = cJSON_AddArrayToObject(obj, "series");
    long long step_n = q->step_s / q->gran_s;
    long long cur = -1;
    cJSON *acc = NULL;
    const cJSON *row;
    if (step_n < 1)
        step_n = 1;
    cJSON_ArrayForEach(row, rows) {
        long long b = (long long)cJSON_GetArrayItem(row, 0)->valuedouble;
        long long slot = q->first + ((b - q->first) / step_n) * step_n;
        if (acc && slot != cur) {
            cJSON_AddItemToArray(series, series_point(cur, q->gran_s, acc));
            cJSON_Delete(acc);
            acc = NULL;
        }
        if (!acc)
            acc = cJSON_CreateObject();
        cur = slot;
        merge_into(acc, cJSON_GetArrayItem(row, 1));
    }
    if (acc) {
        cJSON_AddItemToArray(series, series_point(cur, q->gran_s, acc));
        cJSON_Delete(acc);
    }
}

cJSON *stats_window_json(const struct stats_rows *rows, long window_s, const char *dim,
                         long step_s)
{
    cJSON *out = cJSON_CreateObject();
    struct series_ctx q = {step_s > 0 ? step_s : rows->gran_s, rows->gran_s, rows->first};
    if (!out)
        return NULL;
    cJSON_AddNumberToObject(out, "window_s", (double)window_s);
    add_figures(out, rows->total, rows->total);
    cJSON_AddNumberToObject(out, "step_s", (double)(q.step_s < q.gran_s ? q.gran_s : q.step_s));
    add_series(out, rows->rows, &q);
    if (dim && dim[0] && rows->groups) {
        cJSON *groups = cJSON_AddObjectToObject(out, "groups");
        const cJSON *g;
        cJSON_AddStringToObject(out, "by", dim);
        cJSON_ArrayForEach(g, rows->groups) {
            cJSON *go = cJSON_AddObjectToObject(groups, g->string);
            add_figures(go, g, rows->total);
        }
    }
    return out;
}

/* --- /metrics --- */

/* Label values: escape backslash, quote and newline. */
static const char *esc(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    for (; *s && n + 2 < len; s++) {
        if (*s == '\\' || *s == '"') {
            buf[n++] = '\\';
            buf[n++] = *s;
        } else if (*s == '\n') {
            buf[n++] = '\\';
            buf[n++] = 'n';
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}

static void metric_head(struct sbuf *t, const char *name, const char *type, const char *help)
{
    sbuf_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Fields "<pre><a>:<b>" as name{la="a",lb="b"} value */
static void metric_pairs(struct sbuf *t, const cJSON *m, const char *pre, const char *name,
                         const char *la, const char *lb, const char *const *bvals)
{
    const cJSON *it;
    size_t pl = strlen(pre);
    cJSON_ArrayForEach(it, m) {
        const char *f = it->string, *last;
        char a[128], b[64], ea[260], eb[140];
        if (strncmp(f, pre, pl) != 0)
            continue;
        last = strrchr(f, ':');
        if (!last || (size_t)(last - f) <= pl || (size_t)(last - f) - pl >= sizeof(a))
            continue;
        memcpy(a, f + pl, (size_t)(last - f) - pl);
        a[(size_t)(last - f) - pl] = '\0';
        snprintf(b, sizeof(b), "%s", last + 1);
        if (bvals) { /* map short codes to label values */
            for (size_t k = 0; bvals[k]; k += 2)
                if (strcmp(b, bvals[k]) == 0)
                    snprintf(b, sizeof(b), "%s", bvals[k + 1]);
        }
        sbuf_printf(t, "%s{%s=\"%s\",%s=\"%s\"} %.17g\n", name, la, esc(a, ea, sizeof(ea)), lb,
                esc(b, eb, sizeof(eb)), it->valuedouble);
    }
}

static void metric_histograms(struct sbuf *t, const cJSON *m)
{
    double h[STATS_HBUCKETS];
    metric_head(t, "briefd_stage_duration_seconds", "histogram",
                "Time spent in each stage of a job (queue, draft, route, refine, total).");
    for (size_t s = 0; s < ACCT_STAGES; s++) {
        char f[64];
        double cum = 0;
        hist_of(m, acct_stage_names[s], h);
        for (int i = 0; i < STATS_HBUCKETS; i++) {
            cum += h[i];
            /* every STATS_PROM_STEP-th fine bucket is a Prometheus bucket (x1.99 apart) */
            if (i % STATS_PROM_STEP == 0 && i > 0)
                sbuf_printf(t, "briefd_stage_duration_seconds_bucket{stage=\"%s\",le=\"%.6g\"} %.17g\n",
                        acct_stage_names[s], stats_bucket_upper(i) / 1000.0, cum);
        }
        snprintf(f, sizeof(f), "n:%s", acct_stage_names[s]);
        sbuf_printf(t, "briefd_stage_duration_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %.17g\n",
                acct_stage_names[s], num(m, f));
        sbuf_printf(t, "briefd_stage_duration_seconds_count{stage=\"%s\"} %.17g\n", acct_stage_names[s],
                num(m, f));
        snprintf(f, sizeof(f), "sum_us:%s", acct_stage_names[s]);
        sbuf_printf(t, "briefd_stage_duration_seconds_sum{stage=\"%s\"} %.9g\n", acct_stage_names[s],
                num(m, f) / 1e6);
    }
}

/* briefd_quality_score{model}: overall scores (s3 / 3) in half-point buckets 1 .. 5. */
static void metric_quality_scores(struct sbuf *t, const cJSON *m)
{
    cJSON *models = cJSON_CreateObject();
    const cJSON *it;
    metric_head(t, "briefd_quality_score", "histogram",
                "Judged overall score (1-5) of briefs, by the model that wrote them.");
    cJSON_ArrayForEach(it, m) {
        char model[128];
        const char *tail;
        int s3;
        cJSON *arr;
        if (split_field(it->string, "qs:", model, sizeof(model), &tail) != 0)
            continue;
        s3 = atoi(tail);
        if (s3 < STATS_S3_MIN || s3 > STATS_S3_MAX)
            continue;
        arr = cJSON_GetObjectItemCaseSensitive(models, model);
        if (!arr)
            arr = cJSON_AddObjectToObject(models, model);
        bump(arr, tail, it->valuedouble);
    }
    cJSON_ArrayForEach(it, models) {
        char e[260], f[16];
        double cum = 0, sum = 0;
        int s3 = STATS_S3_MIN;
        esc(it->string, e, sizeof(e));
        for (int half = 2; half <= 10; half++) { /* le = half / 2: 1, 1.5, ... 5 */
            for (; s3 <= 3 * half / 2; s3++) {    /* overall = s3 / 3 <= le */
                snprintf(f, sizeof(f), "%d", s3);
                cum += num(it, f);
                sum += num(it, f) * s3 / 3.0;
            }
            sbuf_printf(t, "briefd_quality_score_bucket{model=\"%s\",le=\"%g\"} %.17g\n", e,
                        half / 2.0, cum);
        }
        sbuf_printf(t, "briefd_quality_score_bucket{model=\"%s\",le=\"+Inf\"} %.17g\n", e, cum);
        sbuf_printf(t, "briefd_quality_score_sum{model=\"%s\"} %.17g\n", e, sum);
        sbuf_printf(t, "briefd_quality_score_count{model=\"%s\"} %.17g\n", e, cum);
    }
    cJSON_Delete(models);
}

static void metrics_quality(struct sbuf *t, const cJSON *m)
{
    static const char *const reasons[] = {"budget", "breaker", "busy"};
    metric_quality_scores(t, m);
    metric_head(t, "briefd_feedback_total", "counter", "Feedback given on jobs, by score.");
    for (int k = 1; k <= 5; k++) {
        char f[16];
        snprintf(f, sizeof(f), "fbs:%d", k);
        sbuf_printf(t, "briefd_feedback_total{score=\"%d\"} %.17g\n", k, num(m, f));
    }
    metric_head(t, "briefd_evaluation_cost_usd_total", "counter",
                "Spend of the online evaluation (judge and shadow calls), in USD.");
    sbuf_printf(t, "briefd_evaluation_cost_usd_total %.12f\n", usd(num(m, "eval_cost_p")));
    metric_head(t, "briefd_shadow_evaluations_total", "counter",
                "Finished jobs evaluated in the shadow (quality stored).");
    sbuf_printf(t, "briefd_shadow_evaluations_total %.17g\n", num(m, "q_shadow"));
    metric_head(t, "briefd_shadow_skipped_total", "counter",
                "Jobs sampled for shadow evaluation that were not evaluated, by reason.");
    for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++) {
        char f[32];
        snprintf(f, sizeof(f), "q_skip:%s", reasons[k]);
        sbuf_printf(t, "briefd_shadow_skipped_total{reason=\"%s\"} %.17g\n", reasons[k],
                    num(m, f));
    }
    metric_head(t, "briefd_missed_refinements_total", "counter",
                "Kept drafts whose refinement the judge scored at least 1 point higher.");
    sbuf_printf(t, "briefd_missed_refinements_total %.17g\n", num(m, "q_missed"));
    metric_head(t, "briefd_needless_refinements_total", "counter",
                "Refined jobs whose draft the judge scored as high or higher.");
    sbuf_printf(t, "briefd_needless_refinements_total %.17g\n", num(m, "q_needless"));
}

/* Is models[i] the first of its name? */
static int first_of(const struct stats_known *k, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(k->models[j], k->models[i]) == 0)
            return 0;
    return 1;
}

/* briefd_cost_usd_total: a series per model counted, then a zero one for each known model
 * not counted yet. */
static void metric_costs(struct sbuf *t, const cJSON *m, const struct stats_known *k)
{
    const cJSON *it;
    char e[260], f[300];
    metric_head(t, "briefd_cost_usd_total", "counter", "Cost in USD by model.");
    cJSON_ArrayForEach(it, m) {
        if (strncmp(it->string, "cost_p:", 7) == 0)
            sbuf_printf(t, "briefd_cost_usd_total{model=\"%s\"} %.12f\n",
                        esc(it->string + 7, e, sizeof(e)), usd(it->valuedouble));
    }
    for (size_t i = 0; k && i < k->n_models; i++) {
        snprintf(f, sizeof(f), "cost_p:%s", k->models[i]);
        if (first_of(k, i) && !cJSON_GetObjectItemCaseSensitive(m, f))
            sbuf_printf(t, "briefd_cost_usd_total{model=\"%s\"} 0\n",
                        esc(k->models[i], e, sizeof(e)));
    }
}

/* briefd_upstream_errors_total: the counted series, then zero ones for every reason of
 * every known model not counted yet. */
static void metric_errors(struct sbuf *t, const cJSON *m, const struct stats_known *k)
{
    char e[260], f[300];
    metric_head(t, "briefd_upstream_errors_total", "counter",
                "Failed model calls (attempts) by model and reason.");
    metric_pairs(t, m, "err:", "briefd_upstream_errors_total", "model", "reason", NULL);
    for (size_t i = 0; k && i < k->n_models; i++) {
        for (int r = MC_FAIL_CONNECT; r < MC_FAIL_CANCELED && first_of(k, i); r++) {
            snprintf(f, sizeof(f), "err:%s:%s", k->models[i], mc_fail_name((enum mc_fail)r));
            if (!cJSON_GetObjectItemCaseSensitive(m, f))
                sbuf_printf(t, "briefd_upstream_errors_total{model=\"%s\",reason=\"%s\"} 0\n",
                            esc(k->models[i], e, sizeof(e)), mc_fail_name((enum mc_fail)r));
        }
    }
}

/* briefd_fallback_answers_total{role, endpoint="fallbackK"} from the fb:<role>:<k> fields,
 * and at zero for the known fallbacks not counted yet. */
static void metric_fallbacks(struct sbuf *t, const cJSON *m, const struct stats_known *known)
{
    static const char *const roles[2] = {"draft", "refine"};
    char f[32];
    metric_head(t, "briefd_fallback_answers_total", "counter",
                "Model stages answered by a fallback endpoint, by role and fallback.");
    for (int r = 0; r < 2; r++) {
        int n = known ? known->fallbacks[r] : 0;
        for (int k = 1; k <= 9; k++) {
            const cJSON *v;
            snprintf(f, sizeof(f), "fb:%s:%d", roles[r], k);
            v = cJSON_GetObjectItemCaseSensitive(m, f);
            if (v || k <= n)
                sbuf_printf(t, "briefd_fallback_answers_total{role=\"%s\",endpoint=\"fallback%d\"} "
                            "%.17g\n", roles[r], k, v ? v->valuedouble : 0);
        }
    }
}

char *stats_metrics_text(const cJSON *m, double depth, double pending,
                         const struct stats_known *known)
{
    struct sbuf t = {0};
    static const char *const kinds[] = {"p", "prompt", "c", "completion", NULL};
    metric_head(&t, "briefd_jobs_total", "counter", "Jobs finished, by final status.");
    sbuf_printf(&t, "briefd_jobs_total{status=\"succeeded\"} %.17g\n", num(m, "succeeded"));
    sbuf_printf(&t, "briefd_jobs_total{status=\"failed\"} %.17g\n", num(m, "failed"));
    metric_head(&t, "briefd_route_decisions_total", "counter", "Routing decisions.");
    sbuf_printf(&t, "briefd_route_decisions_total{decision=\"refine\"} %.17g\n",
            num(m, "dec_refine"));
    sbuf_printf(&t, "briefd_route_decisions_total{decision=\"keep\"} %.17g\n", num(m, "dec_keep"));
    metric_head(&t, "briefd_refined_total", "counter", "Jobs whose brief the refine model wrote.");
    sbuf_printf(&t, "briefd_refined_total %.17g\n", num(m, "refined"));
    metric_head(&t, "briefd_degraded_total", "counter",
                "Jobs that kept their draft because refinement failed.");
    sbuf_printf(&t, "briefd_degraded_total %.17g\n", num(m, "degraded"));
    metric_head(&t, "briefd_cache_hits_total", "counter",
                "Jobs answered from the exact cache (no model call).");
    sbuf_printf(&t, "briefd_cache_hits_total %.17g\n", num(m, "cached"));
    metric_head(&t, "briefd_cache_misses_total", "counter",
                "Jobs looked up in the exact cache and not found (the models ran).");
    sbuf_printf(&t, "briefd_cache_misses_total %.17g\n", num(m, "cache_miss"));
    metric_head(&t, "briefd_policy_votes_total", "counter", "Verdicts by policy (and guard).");
    metric_pairs(&t, m, "vote:", "briefd_policy_votes_total", "policy", "verdict", NULL);
    metric_histograms(&t, m);
    metric_head(&t, "briefd_model_tokens_total", "counter", "Tokens by model and kind.");
    metric_pairs(&t, m, "tok:", "briefd_model_tokens_total", "model", "kind", kinds);
    metric_costs(&t, m, known);
    metric_errors(&t, m, known);
    metric_fallbacks(&t, m, known);
    metrics_quality(&t, m);
    metric_head(&t, "briefd_queue_depth", "gauge", "Jobs queued or running (all processes).");
    sbuf_printf(&t, "briefd_queue_depth %.17g\n", depth);
    metric_head(&t, "briefd_jobs_in_flight", "gauge", "Jobs held by workers now (all processes).");
    sbuf_printf(&t, "briefd_jobs_in_flight %.17g\n", pending);
    return sbuf_take(&t);
}
