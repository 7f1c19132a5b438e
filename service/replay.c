/* replay.c - re-run routing over stored drafts (replay) and fit thresholds (calibrate). */
#include "replay.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "clock.h"
#include "config.h"
#include "job.h"
#include "rds.h"
#include "router.h"
#include "store.h"

#define REPLAY_MAX_JOBS 200000

struct rjob {
    char id[JOB_ID_LEN + 1];
    struct job_req req;
    char *draft;
    struct lp_summary lp;
    int truncated;
    int was_refine;              /* recorded decision */
    int refined;                 /* the refine model actually wrote the brief */
    double cost_draft, cost_refine;
    long draft_tokens;           /* prompt + completion */
    size_t draft_chars;
    int d_s3, r_s3;              /* judged quality (shadow judging): the sum of the draft's /
                                    the refined brief's rubric scores, 0 when not judged */
};

struct replay {
    uv_loop_t *loop;
    struct bd_config *cfg;
    struct store *store;
    struct rjob *jobs;
    size_t n, cap;
    long window_s;
    int scanning;
    int failed;
    int done;
    uv_timer_t timer;
};

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static double jnum(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The sum of a judgement's three scores (3..15), or 0 when it is null or malformed. */
static int side_s3(const cJSON *side)
{
    static const char *const names[3] = {"coherence", "faithfulness", "brevity"};
    int sum = 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(side, names[i]);
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 5)
            return 0;
        sum += (int)v->valuedouble;
    }
    return sum;
}

static void load_quality(struct rjob *j, const cJSON *o)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "quality");
    j->d_s3 = side_s3(cJSON_GetObjectItemCaseSensitive(q, "draft"));
    j->r_s3 = side_s3(cJSON_GetObjectItemCaseSensitive(q, "refine"));
}

/* Fill j from the stored request and out JSON; 0 if it is a usable routed job. */
static int load_job(struct rjob *j, const char *req, size_t req_len, const char *out)
{
    cJSON *o = cJSON_Parse(out);
    const cJSON *res, *sig, *lp, *draft, *route, *dec;
    int rc = -1;
    if (!o || job_req_from_json(req, req_len, &j->req) != 0)
        goto done;
    res = cJSON_GetObjectItemCaseSensitive(o, "result");
    sig = cJSON_GetObjectItemCaseSensitive(o, "signals");
    route = cJSON_GetObjectItemCaseSensitive(o, "route");
    draft = cJSON_GetObjectItemCaseSensitive(res, "draft");
    dec = cJSON_GetObjectItemCaseSensitive(route, "decision");
    if (!cJSON_IsString(draft) || !sig || !cJSON_IsString(dec))
        goto done;
    j->draft = strdup(draft->valuestring);
    if (!j->draft)
        goto done;
    j->draft_chars = utf8_chars(j->draft);
    j->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sig, "truncated"));
    lp = cJSON_GetObjectItemCaseSensitive(sig, "logprobs");
    j->lp.present = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lp, "present"));
    j->lp.n = (size_t)jnum(lp, "n", NULL);
    j->lp.mean = jnum(lp, "mean", NULL);
    j->lp.p10 = jnum(lp, "p10", NULL);
    j->lp.min = jnum(lp, "min", NULL);
    j->was_refine = strcmp(dec->valuestring, "refine") == 0;
    j->refined = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "refined"));
    j->cost_draft = jnum(o, "cost_usd", "draft");
    j->cost_refine = jnum(o, "cost_usd", "refine");
    {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(o, "usage"), "draft");
        j->draft_tokens = (long)(jnum(u, "prompt_tokens", NULL) + jnum(u, "completion_tokens", NULL));
    }
    load_quality(j, o);
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

/* One finished job from the store: kept if it has a stored draft and a decision. */
static void on_job(void *data, const char *id, const char *req, size_t req_len, const char *out)
{
    struct replay *rp = data;
    struct rjob *j;
    if (rp->n >= REPLAY_MAX_JOBS)
        return;
    if (rp->n == rp->cap) {
        size_t cap = rp->cap ? rp->cap * 2 : 256;
        struct rjob *nj = realloc(rp->jobs, cap * sizeof(*nj));
        if (!nj)
            return;
        rp->jobs = nj;
        rp->cap = cap;
    }
    j = &rp->jobs[rp->n];
    memset(j, 0, sizeof(*j));
    snprintf(j->id, sizeof(j->id), "%s", id);
    if (load_job(j, req, req_len, out) == 0) {
        rp->n++;
    } else {
        job_req_free(&j->req);
        free(j->draft);
    }
}

static void on_closed(void *data) { (void)data; }

static void finish(struct replay *rp)
{
    if (rp->done)
        return;
    rp->done = 1;
    uv_timer_stop(&rp->timer);
    uv_close((uv_handle_t *)&rp->timer, NULL);
    store_close(rp->store, on_closed, NULL);
}

static void on_scanned(void *data, int status)
{
    struct replay *rp = data;
    if (status != 0) {
        fprintf(stderr, "briefd: reading jobs from redis failed: %s\n", bd_strerror(status));
        rp->failed = 1;
    }
    finish(rp);
}

static void on_store_state(void *data, int connected)
{
    struct replay *rp = data;
    int64_t since = clock_wall_ms() - (int64_t)rp->window_s * 1000;
    if (!connected || rp->scanning || rp->done)
        return;
    if (store_scan_finished(rp->store, since, on_job, on_scanned, rp) == 0)
        rp->scanning = 1;
}

static void on_timeout(uv_timer_t *t)
{
    struct replay *rp = t->data;
    char addr[300];
    rds_addr_text(rp->cfg->redis_host, rp->cfg->redis_port, addr, sizeof(addr));
    fprintf(stderr, "briefd: redis %s did not answer in time\n", addr);
    rp->failed = 1;
    finish(rp);
}

/* --- the analyses --- */

static void route_one(const struct router *router, const struct rjob *j, struct route_result *res)
{
    struct route_input in;
    job_route_input(&j->req, j->draft, &j->lp, j->truncated, &in);
    router_decide(router, &in, NULL, res);
}

/* What refining a job costs per draft token, from the jobs that were refined. */
static double refine_cost_per_draft_token(const struct replay *rp)
{
    double cost = 0, tok = 0;
    for (size_t i = 0; i < rp->n; i++)
        if (rp->jobs[i].refined) {
            cost += rp->jobs[i].cost_refine;
            tok += (double)rp->jobs[i].draft_tokens;
        }
    return tok > 0 ? cost / tok : 0;
}

/* The judged quality a set of decisions serves: the refined brief's score where it refines,
 * the draft's where it keeps, over the jobs whose served side was judged. */
struct served {
    double s3;
    size_t n;
};

static void serve(struct served *sv, const struct rjob *j, int refine)
{
    int s3 = refine ? j->r_s3 : j->d_s3;
    if (s3 > 0) {
        sv->s3 += s3;
        sv->n++;
    }
}

static double served_mean(const struct served *sv)
{
    return sv->n ? sv->s3 / (3.0 * (double)sv->n) : NAN;
}

static void print_quality(const struct served *live, const struct served *now)
{
    if (live->n == 0 && now->n == 0) {
        printf("\nno judged job in the window (evaluation.shadow_rate): no quality to compare\n");
        return;
    }
    printf("\njudged quality (shadow judging; the brief each decision serves):\n");
    printf("%-22s %12s %12s\n", "", "live", "replayed");
    printf("%-22s %12.4f %12.4f\n", "served overall (1-5)", served_mean(live), served_mean(now));
    printf("%-22s %12zu %12zu\n", "judged jobs covered", live->n, now->n);
}

static int do_replay(const struct replay *rp, long window_s)
{
    double per_tok = refine_cost_per_draft_token(rp);
    double was_cost = 0, new_cost = 0;
    size_t was_ref = 0, new_ref = 0, flips = 0;
    struct served q_live = {0, 0}, q_now = {0, 0};
    struct route_result res;
    printf("replay over %zu finished jobs of the last %ld s, with %s (version %s); no model "
           "is called, guards are not applied\n\n",
           rp->n, window_s, rp->cfg->path ? rp->cfg->path : "(defaults)", rp->cfg->version);
    for (size_t i = 0; i < rp->n; i++) {
        const struct rjob *j = &rp->jobs[i];
        route_one(rp->cfg->router, j, &res);
        serve(&q_live, j, j->refined);
        serve(&q_now, j, res.refine);
        was_ref += (size_t)j->was_refine;
        new_ref += (size_t)res.refine;
        was_cost += j->cost_draft + j->cost_refine;
        new_cost += j->cost_draft;
        if (res.refine)
            new_cost += j->refined ? j->cost_refine : per_tok * (double)j->draft_tokens;
        if (res.refine != j->was_refine) {
            char why[400] = "";
            for (size_t k = 0; k < res.n; k++)
                if (res.v[k].kind == VERDICT_REFINE)
                    snprintf(why + strlen(why), sizeof(why) - strlen(why), "%s%s: %s",
                             why[0] ? "; " : "", res.v[k].policy, res.v[k].detail);
            if (flips++ == 0)
                printf("jobs that flip:\n");
            printf("  %s  %s -> %s  %s\n", j->id, j->was_refine ? "refine" : "keep",
                   res.refine ? "refine" : "keep", why[0] ? why : "no policy asks to refine");
        }
    }
    if (rp->n == 0) {
        printf("no finished jobs with stored drafts in the window\n");
        return 0;
    }
    printf("%s\n%-22s %12s %12s\n", flips ? "" : "no job flips\n", "", "live", "replayed");
    printf("%-22s %12zu %12zu\n", "refined", was_ref, new_ref);
    printf("%-22s %12.4f %12.4f\n", "refine rate", (double)was_ref / (double)rp->n,
           (double)new_ref / (double)rp->n);
    printf("%-22s %12.6f %12.6f\n", "cost (USD)", was_cost, new_cost);
    printf("%-22s %12.8f %12.8f\n", "cost per job (USD)", was_cost / (double)rp->n,
           new_cost / (double)rp->n);
    printf("%-22s %12s %12zu\n", "flips", "", flips);
    printf("\n(new refinements are priced at the observed refine cost per draft token, "
           "%.3g USD)\n", per_tok);
    print_quality(&q_live, &q_now);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The value v such that a fraction `share` of xs lies strictly beyond it (above if
 * refine_above, below otherwise), from the sorted sample. */
static double threshold_for(double *xs, size_t n, double share, int refine_above)
{
    size_t k;
    qsort(xs, n, sizeof(*xs), cmp_double);
    k = (size_t)llround(share * (double)n);
    if (refine_above) /* refine when x >= t: the top k values */
        return k == 0 ? xs[n - 1] + 1 : xs[n - k];
    /* refine when x < t: the bottom k values */
    return k == 0 ? xs[0] : k >= n ? xs[n - 1] + 1e-6 : (xs[k - 1] + xs[k]) / 2;
}

static int do_calibrate(const struct replay *rp, double target, long window_s)
{
    cJSON *desc = router_describe(rp->cfg->router), *snippet, *routing, *pols;
    const cJSON *p;
    double *xs = calloc(rp->n ? rp->n : 1, sizeof(double));
    char *text;
    if (!xs || !desc) {
        free(xs);
        cJSON_Delete(desc);
        return 1;
    }
    printf("calibrating to a target refine rate of %.3f over %zu finished jobs of the last "
           "%ld s\n", target, rp->n, window_s);
    if (rp->n == 0) {
        printf("no finished jobs with stored drafts in the window: nothing to fit\n");
        free(xs);
        cJSON_Delete(desc);
        return 1;
    }
    snippet = cJSON_CreateObject();
    routing = cJSON_AddObjectToObject(snippet, "routing");
    cJSON_AddItemToObject(routing, "mode", cJSON_Duplicate(cJSON_GetObjectItem(desc, "mode"), 1));
    pols = cJSON_AddArrayToObject(routing, "policies");
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(desc, "policies")) {
        const char *type = cJSON_GetObjectItemCaseSensitive(p, "type")->valuestring;
        cJSON *np = cJSON_Duplicate(p, 1);
        size_t n = 0;
        if (strcmp(type, "length") == 0) {
            for (size_t i = 0; i < rp->n; i++)
                xs[n++] = (double)rp->jobs[i].draft_chars;
            double t = ceil(threshold_for(xs, n, target, 1));
            size_t hit = 0;
            t = t < 1 ? 1 : t;
            for (size_t i = 0; i < n; i++)
                hit += xs[i] >= t;
            cJSON_ReplaceItemInObject(np, "min_chars", cJSON_CreateNumber(t));
            printf("  length: min_chars %.0f would have refined %.3f of the jobs on its own\n",
                   t, (double)hit / (double)n);
        } else if (strcmp(type, "confidence") == 0) {
            for (size_t i = 0; i < rp->n; i++)
                if (rp->jobs[i].lp.present && !rp->jobs[i].truncated)
                    xs[n++] = rp->jobs[i].lp.mean;
            if (n > 0) {
                double t = threshold_for(xs, n, target, 0);
                size_t hit = 0;
                t = round(t * 1e6) / 1e6;
                t = t > 0 ? 0 : t;
                for (size_t i = 0; i < n; i++)
                    hit += xs[i] < t;
                cJSON_ReplaceItemInObject(np, "min_mean_logprob", cJSON_CreateNumber(t));
                printf("  confidence: min_mean_logprob %.6f would have refined %.3f of the %zu "
                       "jobs with logprobs on its own\n", t, (double)hit / (double)n, n);
            } else {
                printf("  confidence: no job has logprobs; threshold left as is\n");
            }
        } else {
            printf("  %s: no threshold to fit (kept as configured)\n", type);
        }
        cJSON_AddItemToArray(pols, np);
    }
    text = cJSON_Print(snippet);
    printf("\nproposed config snippet (each policy alone at the target; with mode '%s' the "
           "chain refines at least that share - check with `briefd replay`):\n%s\n",
           cJSON_GetObjectItemCaseSensitive(desc, "mode")->valuestring, text);
    free(text);
    cJSON_Delete(snippet);
    cJSON_Delete(desc);
    free(xs);
    return 0;
}

/* --- calibrate --target-gap: the cheapest threshold whose kept jobs lose at most G --- */

#define GAP_MAX_CANDIDATES 256   /* thresholds tried per policy (quantiles beyond) */

/* What a routing would have done on the jobs judged both ways. */
struct gap_eval {
    size_t n, refined, kept;
    double gap3;                 /* sum of refine - draft over kept jobs, in thirds */
    double cost;                 /* USD: drafts, and refinements as in replay */
    struct served sv;
};

static int judged_both(const struct rjob *j) { return j->d_s3 > 0 && j->r_s3 > 0; }

static void eval_router(const struct replay *rp, const struct router *r, double per_tok,
                        struct gap_eval *e)
{
    struct route_result res;
    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < rp->n; i++) {
        const struct rjob *j = &rp->jobs[i];
        if (!judged_both(j))
            continue;
        route_one(r, j, &res);
        e->n++;
        e->cost += j->cost_draft;
        if (res.refine) {
            e->refined++;
            e->cost += j->refined ? j->cost_refine : per_tok * (double)j->draft_tokens;
        } else {
            e->kept++;
            e->gap3 += j->r_s3 - j->d_s3;
        }
        serve(&e->sv, j, res.refine);
    }
}

/* The mean gap over the kept jobs (0 when none is kept: nothing is lost). */
static double gap_mean(const struct gap_eval *e)
{
    return e->kept ? e->gap3 / (3.0 * (double)e->kept) : 0;
}

/* A router from routing (guards off); NULL when it does not parse. */
static struct router *router_of(cJSON *routing)
{
    struct router *r = NULL;
    struct cfg_err err;
    cJSON *g = cJSON_AddObjectToObject(routing, "guards");
    cJSON_AddNullToObject(g, "max_refine_rate");
    if (router_parse(routing, &r, &err) != 0)
        return NULL;
    return r;
}

/* Policy p alone (its description) with key set to t, evaluated into e. 0, or -1. */
static int eval_alone(const struct replay *rp, const cJSON *p, const char *key, double t,
                      double per_tok, struct gap_eval *e)
{
    cJSON *routing = cJSON_CreateObject(), *np = cJSON_Duplicate(p, 1);
    struct router *r;
    cJSON_DeleteItemFromObjectCaseSensitive(np, key);
    cJSON_AddNumberToObject(np, key, t);
    cJSON_AddStringToObject(routing, "mode", "any");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(routing, "policies"), np);
    r = router_of(routing);
    cJSON_Delete(routing);
    if (!r)
        return -1;
    eval_router(rp, r, per_tok, e);
    router_free(r);
    return 0;
}

/* The thresholds to try for a policy: n distinct sorted values of its signal on the judged
 * jobs -> candidates (length: each value and one above the longest; confidence: one below
 * the lowest, the midpoints, one above the highest, at most 0), thinned to
 * GAP_MAX_CANDIDATES. Returns how many. */
static size_t gap_candidates(double *xs, size_t n, int length, double *out)
{
    size_t k = 0, m = 0;
    qsort(xs, n, sizeof(*xs), cmp_double);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || xs[i] != xs[m - 1])
            xs[m++] = xs[i];
    if (m == 0)
        return 0;
    if (length) {
        for (size_t i = 0; i < m; i++)
            out[k++] = xs[i] < 1 ? 1 : xs[i];
        out[k++] = xs[m - 1] + 1;
    } else {
        out[k++] = round((xs[0] - 0.001) * 1e6) / 1e6;
        for (size_t i = 0; i + 1 < m; i++)
            out[k++] = round((xs[i] + xs[i + 1]) / 2 * 1e6) / 1e6;
        out[k++] = fmin(0, round((xs[m - 1] + 0.001) * 1e6) / 1e6);
    }
    if (k <= GAP_MAX_CANDIDATES)
        return k;
    for (size_t i = 0; i < GAP_MAX_CANDIDATES; i++)
        out[i] = out[i * (k - 1) / (GAP_MAX_CANDIDATES - 1)];
    return GAP_MAX_CANDIDATES;
}

/* The signal a thresholded policy reads, for the judged jobs, into xs; its key. */
static size_t gap_signal(const struct replay *rp, const char *type, double *xs,
                         const char **key)
{
    size_t n = 0;
    int length = strcmp(type, "length") == 0;
    *key = length ? "min_chars" : strcmp(type, "confidence") == 0 ? "min_mean_logprob" : NULL;
    for (size_t i = 0; *key && i < rp->n; i++) {
        const struct rjob *j = &rp->jobs[i];
        if (!judged_both(j))
            continue;
        if (length)
            xs[n++] = (double)j->draft_chars;
        else if (j->lp.present && !j->truncated)
            xs[n++] = j->lp.mean;
    }
    return n;
}

/* Fit one policy: the cheapest candidate whose mean gap on kept jobs is <= target (set in
 * np). 0 when one was found, 1 when none (np left as is), -1 on failure. */
static int fit_gap(const struct replay *rp, const cJSON *p, cJSON *np, double target,
                   double per_tok, double *xs, double *cand)
{
    const char *type = cJSON_GetObjectItemCaseSensitive(p, "type")->valuestring, *key;
    size_t n = gap_signal(rp, type, xs, &key), k, best = 0;
    struct gap_eval e, be = {0};
    int found = 0;
    if (!key) {
        printf("  %s: no threshold to fit (kept as configured)\n", type);
        return 1;
    }
    k = gap_candidates(xs, n, strcmp(type, "length") == 0, cand);
    for (size_t i = 0; i < k; i++) {
        if (eval_alone(rp, p, key, cand[i], per_tok, &e) != 0)
            return -1;
        if (gap_mean(&e) > target + 1e-9)
            continue;
        if (!found || e.cost < be.cost || (e.cost == be.cost && e.refined < be.refined)) {
            found = 1;
            best = i;
            be = e;
        }
    }
    if (!found) {
        printf("  %s: no %s keeps the mean gap of kept jobs within %.3f (kept as configured)\n",
               type, key, target);
        return 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(np, key);
    cJSON_AddNumberToObject(np, key, cand[best]);
    printf("  %s: %s %.6g refines %.3f of the %zu judged jobs on its own; mean gap of the %zu "
           "kept %.4f, cost per job %.8f USD, served overall %.4f\n", type, key, cand[best],
           (double)be.refined / (double)be.n, be.n, be.kept, gap_mean(&be),
           be.cost / (double)be.n, served_mean(&be.sv));
    return 0;
}

/* The chain as proposed (configured mode), on the judged jobs. */
static void print_chain(const struct replay *rp, const cJSON *routing, double per_tok)
{
    cJSON *copy = cJSON_Duplicate(routing, 1);
    struct router *r = copy ? router_of(copy) : NULL;
    struct gap_eval e;
    cJSON_Delete(copy);
    if (!r)
        return;
    eval_router(rp, r, per_tok, &e);
    router_free(r);
    printf("\nthe proposed chain together (mode as configured) on the %zu judged jobs: refine "
           "rate %.3f, mean gap of the kept %.4f, served overall %.4f\n", e.n,
           (double)e.refined / (double)e.n, gap_mean(&e), served_mean(&e.sv));
}

static size_t count_judged(const struct replay *rp)
{
    size_t n = 0;
    for (size_t i = 0; i < rp->n; i++)
        n += (size_t)judged_both(&rp->jobs[i]);
    return n;
}

static int do_calibrate_gap(const struct replay *rp, double target, long window_s)
{
    cJSON *desc = router_describe(rp->cfg->router), *snippet = NULL, *routing, *pols;
    double *xs = calloc(rp->n + 1, sizeof(double)), *cand = calloc(rp->n + 3, sizeof(double));
    double per_tok = refine_cost_per_draft_token(rp);
    size_t judged = count_judged(rp);
    const cJSON *p;
    int rc = 1;
    char *text;
    printf("calibrating to a mean quality gap of at most %.3f on kept jobs over %zu judged "
           "jobs of the last %ld s\n", target, judged, window_s);
    if (!xs || !cand || !desc || judged == 0) {
        if (judged == 0)
            printf("no job in the window has both its draft and its refinement judged "
                   "(evaluation.shadow_rate): nothing to fit\n");
        goto out;
    }
    snippet = cJSON_CreateObject();
    routing = cJSON_AddObjectToObject(snippet, "routing");
    cJSON_AddItemToObject(routing, "mode", cJSON_Duplicate(cJSON_GetObjectItem(desc, "mode"), 1));
    pols = cJSON_AddArrayToObject(routing, "policies");
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(desc, "policies")) {
        cJSON *np = cJSON_Duplicate(p, 1);
        cJSON_AddItemToArray(pols, np);
        if (fit_gap(rp, p, np, target, per_tok, xs, cand) < 0)
            goto out;
    }
    print_chain(rp, routing, per_tok);
    text = cJSON_Print(snippet);
    printf("\nproposed config snippet (each policy alone is the cheapest setting within the "
           "target; check the chain with `briefd replay`):\n%s\n", text);
    free(text);
    rc = 0;
out:
    cJSON_Delete(snippet);
    cJSON_Delete(desc);
    free(xs);
    free(cand);
    return rc;
}

static int open_store(struct replay *rp)
{
    struct store_opts o;
    memset(&o, 0, sizeof(o));
    o.host = rp->cfg->redis_host;
    o.port = rp->cfg->redis_port;
    o.db = rp->cfg->redis_db;
    o.password = rp->cfg->redis_password;
    o.prefix = rp->cfg->redis_prefix;
    return store_open(rp->loop, &o, on_store_state, rp, &rp->store);
}

int replay_main(const char *config_path, long window_s, double target, double target_gap)
{
    struct cfg_err err;
    struct replay rp;
    uv_loop_t loop;
    int rc;
    memset(&rp, 0, sizeof(rp));
    rp.cfg = config_load(config_path, &err);
    if (!rp.cfg) {
        cfg_err_print(stderr, config_path ? config_path : "config", &err);
        return 1;
    }
    uv_loop_init(&loop);
    rp.loop = &loop;
    rp.window_s = window_s;
    uv_timer_init(&loop, &rp.timer);
    rp.timer.data = &rp;
    uv_timer_start(&rp.timer, on_timeout, 60000, 0);
    if (open_store(&rp) != 0) {
        fprintf(stderr, "briefd: out of memory\n");
        rp.failed = 1;
        rp.done = 1;
        uv_close((uv_handle_t *)&rp.timer, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    rc = rp.failed            ? 1
         : target_gap >= 0    ? do_calibrate_gap(&rp, target_gap, window_s)
         : target < 0         ? do_replay(&rp, window_s)
                              : do_calibrate(&rp, target, window_s);
    for (size_t i = 0; i < rp.n; i++) {
        job_req_free(&rp.jobs[i].req);
        free(rp.jobs[i].draft);
    }
    free(rp.jobs);
    config_unref(rp.cfg);
    return rc;
}
