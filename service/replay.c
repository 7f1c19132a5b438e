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
    fprintf(stderr, "briefd: redis %s:%d did not answer in time\n", rp->cfg->redis_host,
            rp->cfg->redis_port);
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

static int do_replay(const struct replay *rp, long window_s)
{
    double per_tok = refine_cost_per_draft_token(rp);
    double was_cost = 0, new_cost = 0;
    size_t was_ref = 0, new_ref = 0, flips = 0;
    struct route_result res;
    printf("replay over %zu finished jobs of the last %ld s, with %s (version %s); no model "
           "is called, guards are not applied\n\n",
           rp->n, window_s, rp->cfg->path ? rp->cfg->path : "(defaults)", rp->cfg->version);
    for (size_t i = 0; i < rp->n; i++) {
        const struct rjob *j = &rp->jobs[i];
        route_one(rp->cfg->router, j, &res);
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

int replay_main(const char *config_path, long window_s, double target)
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
    rc = rp.failed ? 1
                   : target < 0 ? do_replay(&rp, window_s) : do_calibrate(&rp, target, window_s);
    for (size_t i = 0; i < rp.n; i++) {
        job_req_free(&rp.jobs[i].req);
        free(rp.jobs[i].draft);
    }
    free(rp.jobs);
    config_unref(rp.cfg);
    return rc;
}
