/* stats.c - blended-cost statistics in Redis: increments, window queries, /metrics. */
#include "stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acct.h"
#include "bderr.h"
#include "jsonx.h"
#include "rds.h"
#include "router.h"
#include "sbuf.h"

#define MINUTE_KEEP_S (7L * 3600L)   /* minute buckets serve windows up to 6 h */
#define DAY_KEEP_S (3L * 86400L)
#define PICO 1e12                    /* costs are summed as integer picodollars */


int stats_bucket(double ms)
{
    int i;
    if (!(ms > 0.1))
        return 0;
    i = 1 + (int)floor(log(ms / 0.1) / log(1.25) - 1e-9);
    if (i < 1)
        i = 1;
    return i >= STATS_HBUCKETS ? STATS_HBUCKETS - 1 : i;
}

double stats_bucket_upper(int i) { return 0.1 * pow(1.25, i); }
double stats_bucket_lower(int i) { return i <= 0 ? 0 : 0.1 * pow(1.25, i - 1); }

static long long pico(double usd) { return llround(usd * PICO); }

/* --- increments --- */

static void inc(cJSON *i, const char *field, long long n)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(i, field);
    if (n == 0)
        return;
    if (it)
        cJSON_SetNumberValue(it, it->valuedouble + (double)n);
    else
        cJSON_AddNumberToObject(i, field, (double)n);
}

static void incf(cJSON *i, const char *a, const char *b, const char *c, long long n)
{
    char f[200];
    snprintf(f, sizeof(f), "%s%s%s", a, b, c);
    inc(i, f, n);
}

static void add_latency(cJSON *i, const char *stage, double ms)
{
    char f[64];
    if (ms < 0)
        return;
    snprintf(f, sizeof(f), "h:%s:%d", stage, stats_bucket(ms));
    inc(i, f, 1);
    incf(i, "n:", stage, "", 1);
    incf(i, "sum_us:", stage, "", llround(ms * 1000.0));
}

static cJSON *key_ttl(const char *key, long ttl)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString(key));
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)ttl));
    return a;
}

static void add_group(cJSON *g, const char *bucket, const char *dim, const char *value, long ttl)
{
    char idx[300], base[300], v[80];
    cJSON *o;
    size_t n = 0;
    if (!value || !*value)
        return;
    /* label-safe: printable, no spaces or colons, bounded */
    for (const char *p = value; *p && n < 64; p++)
        v[n++] = (*p > ' ' && *p < 0x7f && *p != ':') ? *p : '_';
    v[n] = '\0';
    snprintf(idx, sizeof(idx), "%s:idx:%s", bucket, dim);
    snprintf(base, sizeof(base), "%s:%s:", bucket, dim);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "idx", idx);
    cJSON_AddStringToObject(o, "base", base);
    cJSON_AddStringToObject(o, "v", v);
    cJSON_AddNumberToObject(o, "ttl", (double)ttl);
    cJSON_AddItemToArray(g, o);
}

static void job_fields(cJSON *i, const struct stats_job *j)
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
    for (size_t k = 0; j->route && k < j->route->n; k++) {
        char f[160];
        snprintf(f, sizeof(f), "vote:%s:%s", j->route->v[k].policy,
                 verdict_name(j->route->v[k].kind));
        inc(i, f, 1);
    }
    for (int k = 0; k < ACCT_STAGES; k++)
        add_latency(i, acct_stage_names[k], acct_stage_ms(a, k));
}

char *stats_increments(const char *prefix, long retention_s, const struct stats_job *j)
{
    cJSON *root = cJSON_CreateObject(), *keys, *g, *i;
    char mkey[200], hkey[200], day[200];
    long long minute = j->finished_ms / 60000, hour = j->finished_ms / 3600000;
    time_t secs = (time_t)(j->finished_ms / 1000);
    struct tm tm;
    long mttl = retention_s < MINUTE_KEEP_S ? retention_s : MINUTE_KEEP_S;
    char *text;
    gmtime_r(&secs, &tm);
    snprintf(mkey, sizeof(mkey), "%sstats:m:%lld", prefix, minute);
    snprintf(hkey, sizeof(hkey), "%sstats:h:%lld", prefix, hour);
    snprintf(day, sizeof(day), "%sstats:day:%04d%02d%02d", prefix, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    keys = cJSON_AddArrayToObject(root, "keys");
    cJSON_AddItemToArray(keys, key_ttl(mkey, mttl));
    cJSON_AddItemToArray(keys, key_ttl(hkey, retention_s));
    {
        char total[200];
        snprintf(total, sizeof(total), "%sstats:total", prefix);
        cJSON_AddItemToArray(keys, key_ttl(total, 0));
    }
    g = cJSON_AddArrayToObject(root, "g");
    add_group(g, mkey, "source", j->source, mttl);
    add_group(g, hkey, "source", j->source, retention_s);
    add_group(g, mkey, "tenant", j->tenant, mttl);
    add_group(g, hkey, "tenant", j->tenant, retention_s);
    i = cJSON_AddObjectToObject(root, "i");
    job_fields(i, j);
    cJSON_AddStringToObject(root, "day", day);
    cJSON_AddNumberToObject(root, "day_ttl", DAY_KEEP_S);
    cJSON_AddNumberToObject(root, "max_groups", STATS_MAX_GROUPS);
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* --- queries --- */

/* ARGV: prefix, granularity (m|h), first, last, dim ('' for none) */
static const char QUERY_LUA[] =
    "local p, g, first, last, dim = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),"
    " ARGV[5]\n"
    "local sf = {'jobs','succeeded','failed','refined','degraded','cost_draft_p',"
    "'cost_refine_p','dtok_all','dtok_refined'}\n"
    "local total, series, groups = {}, {}, {}\n"
    "local function sum(t, kv)\n"
    "  for i = 1, #kv, 2 do t[kv[i]] = (t[kv[i]] or 0) + tonumber(kv[i + 1]) end\n"
    "end\n"
    "for b = first, last do\n"
    "  local key = p .. 'stats:' .. g .. ':' .. b\n"
    "  local kv = redis.call('HGETALL', key)\n"
    "  if #kv > 0 then\n"
    "    local row = {}\n"
    "    sum(total, kv)\n"
    "    sum(row, kv)\n"
    "    local out = {tostring(b)}\n"
    "    for _, f in ipairs(sf) do out[#out + 1] = string.format('%.17g', row[f] or 0) end\n"
    "    series[#series + 1] = out\n"
    "    if dim ~= '' then\n"
    "      for _, v in ipairs(redis.call('SMEMBERS', key .. ':idx:' .. dim)) do\n"
    "        groups[v] = groups[v] or {}\n"
    "        sum(groups[v], redis.call('HGETALL', key .. ':' .. dim .. ':' .. v))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local function flat(t)\n"
    "  local o = {}\n"
    "  for k, v in pairs(t) do o[#o + 1] = k; o[#o + 1] = string.format('%.17g', v) end\n"
    "  return o\n"
    "end\n"
    "local gout = {}\n"
    "for k, t in pairs(groups) do gout[#gout + 1] = k; gout[#gout + 1] = flat(t) end\n"
    "return {flat(total), series, gout}\n";

/* A flat [field, value, ...] reply as a cJSON object of numbers. */
static cJSON *flat_map(struct rds_reply *x)
{
    cJSON *m = cJSON_CreateObject();
    for (size_t k = 0; k + 1 < rds_reply_len(x); k += 2) {
        size_t fl, vl;
        const char *f = rds_reply_str(rds_reply_elem(x, k), &fl);
        const char *v = rds_reply_str(rds_reply_elem(x, k + 1), &vl);
        char fb[200], vb[48];
        if (!f || !v || fl >= sizeof(fb) || vl >= sizeof(vb))
            continue;
        memcpy(fb, f, fl);
        fb[fl] = '\0';
        memcpy(vb, v, vl);
        vb[vl] = '\0';
        cJSON_AddNumberToObject(m, fb, strtod(vb, NULL));
    }
    return m;
}

static double num(const cJSON *m, const char *f)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, f);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static double usd(double p) { return p / PICO; }

static double percentile(const cJSON *m, const char *stage, double q)
{
    char f[64];
    double n, want, cum = 0;
    snprintf(f, sizeof(f), "n:%s", stage);
    n = num(m, f);
    if (n <= 0)
        return NAN;
    want = q * n;
    for (int i = 0; i < STATS_HBUCKETS; i++) {
        double c;
        snprintf(f, sizeof(f), "h:%s:%d", stage, i);
        c = num(m, f);
        if (c <= 0)
            continue;
        if (cum + c >= want) {
            double lo = stats_bucket_lower(i), hi = stats_bucket_upper(i);
            double frac = (want - cum) / c;
            return lo + (hi - lo) * (frac < 0 ? 0 : frac > 1 ? 1 : frac);
        }
        cum += c;
    }
    return stats_bucket_upper(STATS_HBUCKETS - 1);
}

/* v rounded to 1/scale (scale a power of ten): the closest double to the decimal */
static double round_to(double v, double scale) { return round(v * scale) / scale; }

static void add_latency_json(cJSON *obj, const cJSON *m)
{
    cJSON *lat = cJSON_AddObjectToObject(obj, "latency_ms");
    for (size_t s = 0; s < ACCT_STAGES; s++) {
        char f[64];
        cJSON *o;
        double n;
        snprintf(f, sizeof(f), "n:%s", acct_stage_names[s]);
        n = num(m, f);
        if (n <= 0)
            continue;
        o = cJSON_AddObjectToObject(lat, acct_stage_names[s]);
        jsonx_add_number(o, "p50", round_to(percentile(m, acct_stage_names[s], 0.50), 1000.0));
        jsonx_add_number(o, "p95", round_to(percentile(m, acct_stage_names[s], 0.95), 1000.0));
        jsonx_add_number(o, "p99", round_to(percentile(m, acct_stage_names[s], 0.99), 1000.0));
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
    add_latency_json(obj, m);
    add_breakdowns(obj, m);
}

struct query_op {
    stats_cb cb;
    void *data;
    long window_s, step_s, gran_s;
    long long first;
    char dim[16];
};

static void add_series(cJSON *obj, struct rds_reply *rows, const struct query_op *q)
{
    cJSON *series = cJSON_AddArrayToObject(obj, "series");
    long long step_n = q->step_s / q->gran_s;
    double acc[9] = {0};
    long long cur = -1;
    if (step_n < 1)
        step_n = 1;
    for (size_t r = 0; r <= rds_reply_len(rows); r++) {
        struct rds_reply *row = r < rds_reply_len(rows) ? rds_reply_elem(rows, r) : NULL;
        long long b = row ? (long long)rds_reply_num(rds_reply_elem(row, 0), 0) : -1;
        long long slot = row ? q->first + ((b - q->first) / step_n) * step_n : -2;
        if (cur >= 0 && slot != cur) {
            cJSON *o = cJSON_CreateObject();
            double allr;
            cJSON_AddNumberToObject(o, "t", (double)(cur * q->gran_s));
            cJSON_AddNumberToObject(o, "jobs", acc[0]);
            cJSON_AddNumberToObject(o, "succeeded", acc[1]);
            cJSON_AddNumberToObject(o, "failed", acc[2]);
            cJSON_AddNumberToObject(o, "refined", acc[3]);
            cJSON_AddNumberToObject(o, "degraded", acc[4]);
            jsonx_add_number(o, "refine_rate", acc[0] > 0 ? acc[3] / acc[0] : 0);
            jsonx_add_number(o, "cost_usd", usd(acc[5] + acc[6]));
            jsonx_add_number(o, "per_job", acc[0] > 0 ? usd(acc[5] + acc[6]) / acc[0] : 0);
            allr = (acc[8] > 0 && acc[6] > 0)
                       ? acc[5] + acc[6] + acc[6] * (acc[7] - acc[8]) / acc[8]
                       : NAN;
            jsonx_add_number(o, "all_refine_usd", usd(allr));
            cJSON_AddItemToArray(series, o);
            memset(acc, 0, sizeof(acc));
        }
        if (!row)
            break;
        cur = slot;
        for (int f = 0; f < 9; f++) {
            size_t l;
            const char *s = rds_reply_str(rds_reply_elem(row, (size_t)f + 1), &l);
            acc[f] += s ? strtod(s, NULL) : 0;
        }
    }
}

static void on_query(struct rds *r, struct rds_reply *x, void *data)
{
    struct query_op *q = data;
    cJSON *out, *m;
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) != 3) {
        q->cb(q->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL);
        free(q);
        return;
    }
    out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "window_s", (double)q->window_s);
    m = flat_map(rds_reply_elem(x, 0));
    add_figures(out, m, m);
    cJSON_AddNumberToObject(out, "step_s", (double)(q->step_s < q->gran_s ? q->gran_s
                                                                          : q->step_s));
    add_series(out, rds_reply_elem(x, 1), q);
    if (q->dim[0]) {
        struct rds_reply *g = rds_reply_elem(x, 2);
        cJSON *groups = cJSON_AddObjectToObject(out, "groups");
        cJSON_AddStringToObject(out, "by", q->dim);
        for (size_t k = 0; k + 1 < rds_reply_len(g); k += 2) {
            size_t l;
            const char *name = rds_reply_str(rds_reply_elem(g, k), &l);
            char nb[80];
            if (!name || l >= sizeof(nb))
                continue;
            memcpy(nb, name, l);
            nb[l] = '\0';
            cJSON *go = cJSON_AddObjectToObject(groups, nb);
            cJSON *gm = flat_map(rds_reply_elem(g, k + 1));
            add_figures(go, gm, m);
            cJSON_Delete(gm);
        }
    }
    cJSON_Delete(m);
    q->cb(q->data, 0, out);
    free(q);
}

int stats_query(struct rds *r, const char *prefix, long window_s, const char *dim, long step_s,
                stats_cb cb, void *data)
{
    struct query_op *q = calloc(1, sizeof(*q));
    long long now_s = (long long)time(NULL);
    char first[24], last[24];
    int rc;
    if (!q)
        return BD_ENOMEM;
    q->cb = cb;
    q->data = data;
    q->window_s = window_s;
    q->gran_s = window_s > 6 * 3600 ? 3600 : 60;
    q->step_s = step_s > 0 ? step_s : q->gran_s;
    snprintf(q->dim, sizeof(q->dim), "%s", dim ? dim : "");
    q->first = (now_s - window_s) / q->gran_s + 1;
    if (q->first < 0)
        q->first = 0;
    snprintf(first, sizeof(first), "%lld", q->first);
    snprintf(last, sizeof(last), "%lld", now_s / q->gran_s);
    const char *argv[] = {"EVAL", QUERY_LUA, "0", prefix, q->gran_s == 60 ? "m" : "h", first,
                          last, q->dim};
    rc = rds_cmdargv(r, on_query, q, 8, argv, NULL);
    if (rc != 0)
        free(q);
    return rc;
}

/* --- guards --- */

/* ARGV: prefix, first minute, last minute, day key */
static const char GUARD_LUA[] =
    "local d, rf, c = 0, 0, 0\n"
    "for b = tonumber(ARGV[2]), tonumber(ARGV[3]) do\n"
    "  local v = redis.call('HMGET', ARGV[1] .. 'stats:m:' .. b, 'decided', 'refined',"
    " 'cost_refine_p')\n"
    "  d = d + (tonumber(v[1]) or 0); rf = rf + (tonumber(v[2]) or 0); c = c + (tonumber(v[3]) or 0)\n"
    "end\n"
    "local day = redis.call('HGET', ARGV[4], 'cost_refine_p') or '0'\n"
    "return {tostring(d), tostring(rf), string.format('%.17g', c), day}\n";

struct guard_op {
    stats_guard_cb cb;
    void *data;
};

static void on_guard(struct rds *r, struct rds_reply *x, void *data)
{
    struct guard_op *g = data;
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) != 4) {
        g->cb(g->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, 0, 0, 0, 0);
    } else {
        double v[4];
        for (size_t k = 0; k < 4; k++) {
            size_t l;
            const char *s = rds_reply_str(rds_reply_elem(x, k), &l);
            v[k] = s ? strtod(s, NULL) : 0;
        }
        g->cb(g->data, 0, v[0], v[1], usd(v[3]), v[1] > 0 ? usd(v[2]) / v[1] : 0);
    }
    free(g);
}

int stats_guard_query(struct rds *r, const char *prefix, long window_s, stats_guard_cb cb,
                      void *data)
{
    struct guard_op *g = malloc(sizeof(*g));
    long long now_s = (long long)time(NULL);
    char first[24], last[24], day[200];
    time_t t = (time_t)now_s;
    struct tm tm;
    int rc;
    if (!g)
        return BD_ENOMEM;
    g->cb = cb;
    g->data = data;
    gmtime_r(&t, &tm);
    snprintf(first, sizeof(first), "%lld", (now_s - window_s) / 60 + 1);
    snprintf(last, sizeof(last), "%lld", now_s / 60);
    snprintf(day, sizeof(day), "%sstats:day:%04d%02d%02d", prefix, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    const char *argv[] = {"EVAL", GUARD_LUA, "0", prefix, first, last, day};
    rc = rds_cmdargv(r, on_guard, g, 7, argv, NULL);
    if (rc != 0)
        free(g);
    return rc;
}

/* --- /metrics --- */

/* ARGV: prefix. Returns {total hash, queue depth, pending (in flight)} */
static const char METRICS_LUA[] =
    "local p = ARGV[1]\n"
    "local depth, pending = 0, 0\n"
    "for _, q in ipairs({'high', 'normal', 'low'}) do\n"
    "  local k = p .. 'q:' .. q\n"
    "  depth = depth + redis.call('XLEN', k)\n"
    "  local ok, s = pcall(redis.call, 'XPENDING', k, 'briefd-workers')\n"
    "  if ok and type(s) == 'table' then pending = pending + (tonumber(s[1]) or 0) end\n"
    "end\n"
    "return {redis.call('HGETALL', p .. 'stats:total'), depth, pending}\n";

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
    metric_head(t, "briefd_stage_duration_seconds", "histogram",
                "Time spent in each stage of a job (queue, draft, route, refine, total).");
    for (size_t s = 0; s < ACCT_STAGES; s++) {
        char f[64];
        double cum = 0;
        for (int i = 0; i < STATS_HBUCKETS; i++) {
            snprintf(f, sizeof(f), "h:%s:%d", acct_stage_names[s], i);
            cum += num(m, f);
            /* every 4th fine bucket as a Prometheus bucket (x2.44 apart) */
            if (i % 4 == 3 && i < 88)
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

static char *render_metrics(const cJSON *m, double depth, double pending)
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
    metric_head(&t, "briefd_policy_votes_total", "counter", "Verdicts by policy (and guard).");
    metric_pairs(&t, m, "vote:", "briefd_policy_votes_total", "policy", "verdict", NULL);
    metric_histograms(&t, m);
    metric_head(&t, "briefd_model_tokens_total", "counter", "Tokens by model and kind.");
    metric_pairs(&t, m, "tok:", "briefd_model_tokens_total", "model", "kind", kinds);
    metric_head(&t, "briefd_cost_usd_total", "counter", "Cost in USD by model.");
    {
        const cJSON *it;
        cJSON_ArrayForEach(it, m) {
            char e[260];
            if (strncmp(it->string, "cost_p:", 7) == 0)
                sbuf_printf(&t, "briefd_cost_usd_total{model=\"%s\"} %.12f\n",
                        esc(it->string + 7, e, sizeof(e)), usd(it->valuedouble));
        }
    }
    metric_head(&t, "briefd_upstream_errors_total", "counter",
                "Failed model calls (attempts) by model and reason.");
    metric_pairs(&t, m, "err:", "briefd_upstream_errors_total", "model", "reason", NULL);
    metric_head(&t, "briefd_queue_depth", "gauge", "Jobs queued or running (all processes).");
    sbuf_printf(&t, "briefd_queue_depth %.17g\n", depth);
    metric_head(&t, "briefd_jobs_in_flight", "gauge", "Jobs held by workers now (all processes).");
    sbuf_printf(&t, "briefd_jobs_in_flight %.17g\n", pending);
    return sbuf_take(&t);
}

struct text_op {
    stats_text_cb cb;
    void *data;
};

static void on_metrics(struct rds *r, struct rds_reply *x, void *data)
{
    struct text_op *o = data;
    (void)r;
    if (!x || rds_reply_type(x) != RDS_ARRAY || rds_reply_len(x) != 3) {
        o->cb(o->data, x ? BD_EREDIS_REPLY : BD_EREDIS_DOWN, NULL);
    } else {
        cJSON *m = flat_map(rds_reply_elem(x, 0));
        char *text = render_metrics(m, (double)rds_reply_int(rds_reply_elem(x, 1)),
                                    (double)rds_reply_int(rds_reply_elem(x, 2)));
        cJSON_Delete(m);
        o->cb(o->data, text ? 0 : BD_ENOMEM, text);
    }
    free(o);
}

int stats_metrics(struct rds *r, const char *prefix, stats_text_cb cb, void *data)
{
    struct text_op *o = malloc(sizeof(*o));
    int rc;
    if (!o)
        return BD_ENOMEM;
    o->cb = cb;
    o->data = data;
    const char *argv[] = {"EVAL", METRICS_LUA, "0", prefix};
    rc = rds_cmdargv(r, on_metrics, o, 4, argv, NULL);
    if (rc != 0)
        free(o);
    return rc;
}

void stats_upstream_error(struct rds *r, const char *prefix, const char *model,
                          const char *reason, long n)
{
    char key[200], field[200];
    if (n <= 0)
        return;
    snprintf(key, sizeof(key), "%sstats:total", prefix);
    snprintf(field, sizeof(field), "err:%s:%s", model, reason);
    rds_cmd(r, NULL, NULL, "HINCRBY %s %s %ld", key, field, n);
}
