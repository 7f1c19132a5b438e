/* stats.c - statistics arithmetic: increments, percentiles, counterfactuals, /metrics text. */
#include "stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "bderr.h"
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
    if (n == 0)
        return;
    for (size_t k = 0; k < d->n && !it; k++)
        if (strcmp(d->inc[k].field, field) == 0)
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

int stats_delta_of(const struct stats_job *j, struct stats_delta *out)
{
    memset(out, 0, sizeof(*out));
    job_fields(out, j);
    stats_label(j->source, out->source, sizeof(out->source));
    stats_label(j->tenant, out->tenant, sizeof(out->tenant));
    out->at_ms = j->finished_ms;
    return out->dropped ? BD_ETOOBIG : 0;
}

long long stats_delta_get(const struct stats_delta *d, const char *field)
{
    for (size_t k = 0; k < d->n; k++)
        if (strcmp(d->inc[k].field, field) == 0)
            return d->inc[k].n;
    return 0;
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
    return o;
}

/* Add the fields of the series sums to acc (a cJSON object of numbers). */
static void merge_into(cJSON *acc, const cJSON *m)
{
    static const char *const fields[] = {"jobs", "succeeded", "failed", "refined", "degraded",
                                         "cost_draft_p", "cost_refine_p", "dtok_all",
                                         "dtok_refined"};
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
    metric_head(&t, "briefd_queue_depth", "gauge", "Jobs queued or running (all processes).");
    sbuf_printf(&t, "briefd_queue_depth %.17g\n", depth);
    metric_head(&t, "briefd_jobs_in_flight", "gauge", "Jobs held by workers now (all processes).");
    sbuf_printf(&t, "briefd_jobs_in_flight %.17g\n", pending);
    return sbuf_take(&t);
}
