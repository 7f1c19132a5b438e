/* pipeline.c - draft, route, refine, account: one brief's work, for the worker and the facade. */
#include "pipeline.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "breaker.h"
#include "checks.h"
#include "clock.h"
#include "config.h"
#include "jsonx.h"
#include "log.h"
#include "stats.h"
#include "store.h"
#include "svc.h"
#include "tenant.h"

#define TICK_MS 100
#define GUARD_REFRESH_MS 1000   /* guard figures are re-read this often... */
#define GUARD_STALE_MS 30000    /* ...and not used once this old (then guards do not hold) */
#define STALL_MS 1000           /* a loop iteration this late means the process was stalled */

struct pipeline {
    struct svc *svc;
    uv_timer_t tick;
    uint64_t last_tick;
    uint64_t stalled_at;        /* uv_now when the last stall was seen (0: never) */
    struct gate *gate;          /* the cache's and the tenants' per-process state */
    struct breaker draft_br;    /* circuit breakers of this process, per model */
    struct breaker refine_br;
    struct {                    /* the guards' figures, read from the shared statistics */
        int valid, fetching;
        uint64_t at_ms;
        double decided, refined, spent_today, avg_refine_cost;
    } guard;
    void (*close_cb)(void *);
    void *close_data;
};

static double ms_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e6; }

/* --- the guards' figures --- */

static void on_guard_figures(void *data, int status, double decided, double refined,
                             double spent_today, double avg_refine_cost)
{
    struct pipeline *p = data;
    p->guard.fetching = 0;
    if (status != 0)
        return;
    p->guard.valid = 1;
    p->guard.at_ms = uv_now(p->svc->loop);
    p->guard.decided = decided;
    p->guard.refined = refined;
    p->guard.spent_today = spent_today;
    p->guard.avg_refine_cost = avg_refine_cost;
}

static void refresh_guards(struct pipeline *p)
{
    const struct bd_config *cfg = p->svc->cfg;
    if (p->guard.fetching || uv_now(p->svc->loop) - p->guard.at_ms < GUARD_REFRESH_MS ||
        !store_ready(p->svc->store))
        return;
    if (router_guard_max_rate(cfg->router) <= 0 && router_guard_daily_budget(cfg->router) < 0)
        return;
    if (store_stats_guard(p->svc->store, router_guard_window_s(cfg->router), on_guard_figures,
                          p) == 0)
        p->guard.fetching = 1;
}

/* The guard figures if they are fresh enough, else NULL (guards then hold nothing back). */
static const struct guard_input *guard_figures(const struct pipeline *p, struct guard_input *g)
{
    memset(g, 0, sizeof(*g));
    if (!p->guard.valid || uv_now(p->svc->loop) - p->guard.at_ms > GUARD_STALE_MS)
        return NULL;
    g->have_rate = 1;
    g->recent_refine_rate = p->guard.decided > 0 ? p->guard.refined / p->guard.decided : 0;
    g->decided = p->guard.decided;
    g->have_spend = 1;
    g->spent_today_usd = p->guard.spent_today;
    g->est_refine_cost_usd = p->guard.avg_refine_cost;
    return g;
}

static void on_tick(uv_timer_t *t)
{
    struct pipeline *p = t->data;
    uint64_t now = uv_now(p->svc->loop);
    if (p->last_tick && now - p->last_tick > STALL_MS)
        p->stalled_at = now;
    p->last_tick = now;
    refresh_guards(p);
}

int pipeline_new(struct svc *svc, struct pipeline **out)
{
    struct pipeline *p = calloc(1, sizeof(*p));
    if (!p || gate_new(svc, &p->gate) != 0) {
        free(p);
        return BD_ENOMEM;
    }
    p->svc = svc;
    uv_timer_init(svc->loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    *out = p;
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    struct pipeline *p = h->data;
    void (*cb)(void *) = p->close_cb;
    void *data = p->close_data;
    gate_free(p->gate);
    free(p);
    if (cb)
        cb(data);
}

void pipeline_close(struct pipeline *p, void (*cb)(void *data), void *data)
{
    p->close_cb = cb;
    p->close_data = data;
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, on_tick_closed);
}

int pipeline_draft_open(const struct pipeline *p)
{
    return breaker_would_allow(&p->draft_br, uv_now(p->svc->loop),
                               p->svc->cfg->draft.breaker_open_ms);
}

/* --- helpers --- */

static cJSON *make_error(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static cJSON *make_error(const char *code, const char *fmt, ...)
{
    cJSON *e = cJSON_CreateObject();
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    return e;
}

static cJSON *result_json(const struct pipe_job *j);

/* Leave the result in the exact cache when it may be served again: a brief the models wrote
 * (not a copy), not degraded, not shaped by a guard (the guards' figures change). */
static void gate_done(struct pipe_job *j, enum pipe_outcome o)
{
    int cacheable = o == PIPE_SUCCEEDED && !j->gate.cached && j->routed && !j->degraded &&
                    !j->route.guarded;
    cJSON *res = cacheable ? result_json(j) : NULL;
    gate_end(&j->gate, res != NULL, res);
    cJSON_Delete(res);
}

static void finish(struct pipe_job *j, enum pipe_outcome o)
{
    if (o == PIPE_SUCCEEDED || o == PIPE_FAILED)
        j->acct.total_ms = (j->acct.queue_ms > 0 ? j->acct.queue_ms : 0) + ms_since(j->t_start);
    acct_price(&j->acct, &j->cfg->draft, &j->cfg->refine);
    gate_done(j, o);
    j->on_done(j, o);
}

static void fail(struct pipe_job *j, cJSON *error)
{
    cJSON_Delete(j->error);
    j->error = error;
    finish(j, PIPE_FAILED);
}

/* --- model calls --- */

static int call_model(struct pipe_job *j, const struct model_cfg *m, const char *draft,
                      mc_cb cb)
{
    char *user = job_render_prompt(m->prompt_user, j->req, draft);
    size_t ulen;
    if (!user)
        return BD_ENOMEM;
    ulen = strlen(user) + (m->prompt_system ? strlen(m->prompt_system) : 0);
    free(j->body);
    free(j->url);
    j->body = oai_build_request(m->name, m->prompt_system, user, m->max_tokens, m->temperature,
                                m->stream, m->logprobs);
    free(user);
    j->url = config_model_url(m, "/chat/completions");
    if (!j->body || !j->url)
        return BD_ENOMEM;
    mc_call_reset(&j->call);
    j->call.data = j;
    j->call.url = j->url;
    j->call.body = j->body;
    config_model_call(&j->call, m);
    j->call.prompt_chars = ulen;
    j->call.deadline_ms = j->deadline_ms;
    j->t_stage = uv_hrtime();
    return mc_call_start(j->p->svc->mc, &j->call, cb);
}

static void take_usage(struct stage_usage *u, const struct mc_call *c)
{
    u->present = 1;
    u->prompt_tokens = c->res.prompt_tokens;
    u->completion_tokens = c->res.completion_tokens;
    u->estimated = c->res.usage_estimated;
}

/* Did this call show the upstream unavailable (as opposed to answering, even with a 4xx)? */
static int upstream_down(int status, const struct mc_call *c)
{
    return status != 0 && c->fail != MC_FAIL_HTTP_4XX && c->fail != MC_FAIL_CANCELED &&
           c->fail != MC_FAIL_TOO_BIG;
}

/* Did the process stall (stopped, starved) while this job's call ran? Then a timeout or
 * a deadline is not the model's failure. */
static int stalled_during(const struct pipe_job *j)
{
    return j->p->stalled_at && j->p->stalled_at >= j->t_loop;
}

static void breaker_note(struct pipe_job *j, struct breaker *b, const struct model_cfg *m,
                         const char *role, int down)
{
    uint64_t now = uv_now(j->p->svc->loop);
    if (breaker_record(b, !down, now, m->breaker_failures))
        log_warn("circuit breaker for the %s model '%s' is now %s%s", role, m->name,
                 breaker_state_name(b->state),
                 b->state != BREAKER_OPEN ? ""
                 : b == &j->p->draft_br
                     ? " (calls paused; jobs wait in the queue)"
                     : " (calls paused; jobs that route to refinement keep their drafts)");
}

/* The bookkeeping every model stage ends with: its latency and busy time, failures for the
 * metrics, the model's breaker. Returns 1 if the job ended here (canceled or stalled). */
static int stage_done(struct pipe_job *j, const struct mc_call *c, int status,
                      const struct model_cfg *m, const char *role, double *stage_ms,
                      double *busy_ms)
{
    struct breaker *b = m == &j->cfg->draft ? &j->p->draft_br : &j->p->refine_br;
    *stage_ms = ms_since(j->t_stage);
    *busy_ms = c->busy_ms;
    if (status == BD_ECANCELED) {
        finish(j, PIPE_CANCELED);
        return 1;
    }
    if (status != 0 && stalled_during(j) &&
        (c->fail == MC_FAIL_TIMEOUT || c->fail == MC_FAIL_DEADLINE)) {
        finish(j, PIPE_RETRY); /* the process, not the model, was not running */
        return 1;
    }
    for (int f = MC_FAIL_CONNECT; f < MC_FAIL_CANCELED; f++)
        store_count_upstream_error(j->p->svc->store, m->name, mc_fail_name((enum mc_fail)f),
                                   c->fails[f]);
    breaker_note(j, b, m, role, upstream_down(status, c));
    return 0;
}

/* --- refine --- */

static void on_refine(struct mc_call *c, int status)
{
    struct pipe_job *j = c->data;
    if (stage_done(j, c, status, &j->cfg->refine, "refine", &j->acct.refine_ms,
                   &j->acct.refine_busy_ms))
        return;
    if (c->attempts > 0 && (status == 0 || c->http_status != 0))
        take_usage(&j->acct.refine, c);
    if (status == 0 && c->res.content && c->res.content[0]) {
        j->acct.refine_ttft_ms = c->ttft_ms;
        j->brief = strdup(c->res.content);
        j->refined = j->brief != NULL;
        j->degraded = !j->refined;
        if (!j->brief)
            snprintf(j->refine_err, sizeof(j->refine_err), "out of memory");
    } else {
        j->degraded = 1;
        snprintf(j->refine_err, sizeof(j->refine_err), "%s (%s after %d attempts)",
                 status == 0 ? "refine model returned an empty brief" : c->err,
                 mc_fail_name(c->fail), c->attempts);
        if (status != 0 && c->http_status == 0)
            j->acct.refine.present = 0;
    }
    finish(j, PIPE_SUCCEEDED);
}

static void start_refine(struct pipe_job *j)
{
    const struct model_cfg *m = &j->cfg->refine;
    int rc;
    if (!breaker_allow(&j->p->refine_br, uv_now(j->p->svc->loop), m->breaker_open_ms)) {
        j->degraded = 1;
        snprintf(j->refine_err, sizeof(j->refine_err),
                 "circuit breaker open for model '%.100s' after repeated failures; draft kept",
                 m->name);
        finish(j, PIPE_SUCCEEDED);
        return;
    }
    if (j->on_stage)
        j->on_stage(j, "refining");
    rc = call_model(j, m, j->draft, on_refine);
    if (rc != 0) {
        j->degraded = 1;
        snprintf(j->refine_err, sizeof(j->refine_err), "could not start refine call: %s",
                 bd_strerror(rc));
        finish(j, PIPE_SUCCEEDED);
    }
}

/* The bytes of model m's prompt for this job (system + user message), 0 on OOM. */
static size_t prompt_bytes(const struct model_cfg *m, const struct job_req *req,
                           const char *draft)
{
    char *user = job_render_prompt(m->prompt_user, req, draft);
    size_t n = user ? strlen(user) + (m->prompt_system ? strlen(m->prompt_system) : 0) : 0;
    free(user);
    return n;
}

/* The draft's cost so far (its usage is in). */
static double draft_cost(const struct pipe_job *j)
{
    const struct stage_usage *u = &j->acct.draft;
    return u->present ? acct_cost(&j->cfg->draft, u->prompt_tokens, u->completion_tokens,
                                  j->acct.draft_busy_ms)
                      : 0;
}

/* The tenant's budget had no room for the refinement: keep the draft, say why. */
static void hold_back_budget(struct pipe_job *j)
{
    struct verdict *v = router_hold_back(&j->route, "guard:tenant_budget",
                                         j->gate.spent_usd + j->gate.others_usd +
                                             j->gate.reserved_usd + j->gate.refine_bound_usd);
    snprintf(v->detail, sizeof(v->detail), "%.199s", j->gate.detail);
    finish(j, PIPE_SUCCEEDED);
}

static void on_budget_checked(struct gate_job *gj, int ok)
{
    struct pipe_job *j = gj->data;
    if (ok)
        start_refine(j);
    else
        hold_back_budget(j);
}

/* A refinement the router decided: within the tenant's budget (reserved across processes)
 * it starts; else it is held back. */
static void refine_within_budget(struct pipe_job *j, double refine_bound)
{
    int rc = gate_refine(&j->gate, draft_cost(j), refine_bound, on_budget_checked);
    if (rc == 0)
        start_refine(j);
    else if (rc < 0)
        hold_back_budget(j);
}

/* --- draft and route --- */

static void route(struct pipe_job *j)
{
    struct guard_input g, *gi;
    struct route_input in;
    uint64_t t0;
    double refine_bound = 0;
    job_route_input(j->req, j->draft, &j->lp, j->draft_truncated, &in);
    if (j->gate.lim && j->gate.lim->daily_budget_usd >= 0)
        refine_bound = acct_cost_bound(&j->cfg->refine,
                                       prompt_bytes(&j->cfg->refine, j->req, j->draft));
    t0 = uv_hrtime();
    gi = (struct guard_input *)guard_figures(j->p, &g);
    if (!gi && j->gate.lim) {
        memset(&g, 0, sizeof(g)); /* the tenant's figures alone */
        gi = &g;
    }
    if (gi)
        gate_guard_input(&j->gate, draft_cost(j), refine_bound, gi);
    router_decide(j->cfg->router, &in, gi, &j->route);
    j->acct.route_ms = ms_since(t0);
    j->routed = 1;
    if (j->route.refine)
        refine_within_budget(j, refine_bound);
    else
        finish(j, PIPE_SUCCEEDED);
}

/* Is the model out (unreachable, overloaded, timing out) rather than refusing this job
 * (4xx) or answering garbage to it? */
static int model_out(const struct mc_call *c)
{
    return c->fail == MC_FAIL_CONNECT || c->fail == MC_FAIL_TIMEOUT ||
           c->fail == MC_FAIL_HTTP_5XX || c->fail == MC_FAIL_RATE_LIMIT ||
           c->fail == MC_FAIL_DEADLINE;
}

static void draft_failed(struct pipe_job *j, const struct mc_call *c, int status)
{
    cJSON *e;
    (void)status;
    if (model_out(c)) {
        finish(j, PIPE_RETRY); /* the model, not the job: it waits in the queue */
        return;
    }
    e = make_error("draft_failed", "draft model '%.60s' failed after %d attempts: %.250s",
                   j->cfg->draft.name, c->attempts, c->err);
    cJSON_AddStringToObject(e, "reason", mc_fail_name(c->fail));
    fail(j, e);
}

static void on_draft(struct mc_call *c, int status)
{
    struct pipe_job *j = c->data;
    if (stage_done(j, c, status, &j->cfg->draft, "draft", &j->acct.draft_ms,
                   &j->acct.draft_busy_ms))
        return;
    if (status != 0) {
        draft_failed(j, c, status);
        return;
    }
    take_usage(&j->acct.draft, c);
    j->acct.draft_ttft_ms = c->ttft_ms;
    if (!c->res.content || !c->res.content[0]) {
        fail(j, make_error("draft_empty", "draft model '%s' returned an empty brief",
                           j->cfg->draft.name));
        return;
    }
    j->draft = strdup(c->res.content);
    if (!j->draft) {
        fail(j, make_error("internal", "%s", "out of memory"));
        return;
    }
    j->draft_truncated = c->res.truncated;
    lp_summarize(c->res.logprobs, c->res.has_logprobs ? c->res.n_logprobs : 0, &j->lp);
    route(j);
}

/* on_done never runs from inside pipe_start: a job that cannot start ends on the next loop
 * iteration. */
static void free_handle(uv_handle_t *h) { free(h); }

static void on_deferred(uv_timer_t *t)
{
    struct pipe_job *j = t->data;
    uv_close((uv_handle_t *)t, free_handle);
    if (j->error)
        finish(j, PIPE_FAILED);
    else
        finish(j, PIPE_RETRY);
}

static int defer(struct pipe_job *j, cJSON *error)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (!t) {
        cJSON_Delete(error);
        return BD_ENOMEM;
    }
    j->error = error;
    uv_timer_init(j->p->svc->loop, t);
    t->data = j;
    uv_timer_start(t, on_deferred, 0, 0);
    return 0;
}

static int start_draft(struct pipe_job *j)
{
    int rc = call_model(j, &j->cfg->draft, NULL, on_draft);
    if (rc != 0)
        return defer(j, make_error("draft_failed", "could not start the draft call: %s",
                                   bd_strerror(rc)));
    return 0;
}

/* The gate's verdict before the draft (gate.h). */
static void on_gate(struct gate_job *gj, enum gate_verdict v)
{
    struct pipe_job *j = gj->data;
    cJSON *e;
    switch (v) {
    case GATE_RUN:
        if (start_draft(j) != 0)
            fail(j, make_error("internal", "%s", "out of memory"));
        break;
    case GATE_CACHED:
        finish(j, PIPE_SUCCEEDED);
        break;
    case GATE_REFUSED:
        e = make_error("tenant_budget_exhausted", "%s", gj->refusal);
        cJSON_AddStringToObject(e, "tenant", gj->tenant);
        fail(j, e);
        break;
    case GATE_RETRY:
        finish(j, PIPE_RETRY);
        break;
    }
}

/* An upper bound of the draft's cost, for a tenant's budget reservation. */
static double draft_bound(const struct pipe_job *j)
{
    if (!j->cfg->tenants)
        return 0;
    return acct_cost_bound(&j->cfg->draft, prompt_bytes(&j->cfg->draft, j->req, NULL));
}

int pipe_start(struct pipeline *p, struct pipe_job *j)
{
    int rc;
    j->p = p;
    acct_init(&j->acct);
    j->acct.queue_ms = j->queue_ms;
    j->call.ttft_ms = -1;
    j->t_start = uv_hrtime();
    j->t_loop = uv_now(p->svc->loop);
    j->deadline_ms = j->t_loop + (uint64_t)j->cfg->job_timeout_ms;
    if (!breaker_allow(&p->draft_br, j->t_loop, j->cfg->draft.breaker_open_ms))
        return defer(j, NULL); /* the draft model is out: the job waits */
    j->gate.g = p->gate;
    j->gate.cfg = j->cfg;
    j->gate.req = j->req;
    j->gate.job_id = j->id ? j->id : "";
    j->gate.data = j;
    rc = gate_begin(&j->gate, draft_bound(j), on_gate);
    if (rc < 0)
        return defer(j, NULL); /* Redis is out: the job waits */
    return rc == 1 ? 0 : start_draft(j);
}

void pipe_cancel(struct pipe_job *j)
{
    if (gate_busy(&j->gate)) {
        gate_cancel(&j->gate);
        finish(j, PIPE_CANCELED);
    } else if (pipe_busy(j)) {
        mc_call_cancel(&j->call);
    }
}

int pipe_busy(const struct pipe_job *j)
{
    return j->call.att != NULL || j->call.backoff != NULL || gate_busy(&j->gate);
}

void pipe_job_free(struct pipe_job *j)
{
    gate_job_free(&j->gate);
    mc_call_reset(&j->call);
    free(j->url);
    free(j->body);
    free(j->draft);
    free(j->brief);
    cJSON_Delete(j->error);
    j->url = j->body = j->draft = j->brief = NULL;
    j->error = NULL;
}

/* --- results --- */

static cJSON *result_json(const struct pipe_job *j)
{
    cJSON *r = cJSON_CreateObject();
    const char *brief = j->refined ? j->brief : j->draft;
    cJSON_AddStringToObject(r, "brief", brief ? brief : "");
    cJSON_AddStringToObject(r, "model", j->refined ? j->cfg->refine.name : j->cfg->draft.name);
    cJSON_AddBoolToObject(r, "refined", j->refined);
    cJSON_AddBoolToObject(r, "degraded", j->degraded);
    cJSON_AddStringToObject(r, "draft", j->draft ? j->draft : "");
    if (j->degraded)
        cJSON_AddStringToObject(r, "refine_error", j->refine_err);
    return r;
}

/* What replay needs to re-run routing without calling a model. */
static cJSON *signals_json(const struct pipe_job *j)
{
    cJSON *s = cJSON_CreateObject(), *lp;
    cJSON_AddBoolToObject(s, "truncated", j->draft_truncated);
    lp = cJSON_AddObjectToObject(s, "logprobs");
    cJSON_AddBoolToObject(lp, "present", j->lp.present);
    if (j->lp.present) {
        cJSON_AddNumberToObject(lp, "n", (double)j->lp.n);
        cJSON_AddNumberToObject(lp, "mean", j->lp.mean);
        cJSON_AddNumberToObject(lp, "p10", j->lp.p10);
        cJSON_AddNumberToObject(lp, "min", j->lp.min);
    }
    /* cheap checks of the brief served (checks.h): words, over_max_words, unsupported_numbers */
    checks_signals(s, j->refined ? j->brief : j->draft, j->req->text, j->req->max_words);
    return s;
}

/* A job answered from the exact cache: a copy of the result, at no cost, no model usage. */
static cJSON *cached_out_json(const struct pipe_job *j, cJSON *out)
{
    cJSON_AddItemToObject(out, "result", cJSON_Duplicate(j->gate.cached_result, 1));
    cJSON_AddTrueToObject(out, "cached");
    cJSON_AddStringToObject(out, "cached_from", j->gate.cached_from);
    acct_to_json(&j->acct, out);
    cJSON_AddStringToObject(out, "config_version", j->cfg->version);
    return out;
}

cJSON *pipe_out_json(const struct pipe_job *j, const char *status)
{
    cJSON *out = cJSON_CreateObject();
    if (!out)
        return NULL;
    if (j->gate.cached && strcmp(status, "succeeded") == 0)
        return cached_out_json(j, out);
    if (strcmp(status, "succeeded") == 0)
        cJSON_AddItemToObject(out, "result", result_json(j));
    cJSON_AddFalseToObject(out, "cached");
    if (j->routed)
        cJSON_AddItemToObject(out, "route", route_result_json(&j->route));
    acct_to_json(&j->acct, out);
    if (j->error)
        cJSON_AddItemToObject(out, "error", cJSON_Duplicate(j->error, 1));
    cJSON_AddStringToObject(out, "config_version", j->cfg->version);
    if (j->draft)
        cJSON_AddItemToObject(out, "signals", signals_json(j));
    return out;
}

int pipe_stats(const struct pipe_job *j, int succeeded, struct stats_delta *out)
{
    struct stats_job s;
    memset(&s, 0, sizeof(s));
    s.succeeded = succeeded;
    s.decided = j->routed;
    s.refined = j->refined;
    s.degraded = j->degraded;
    s.cached = j->gate.cached;
    s.cache_miss = j->gate.cache_lookup && !j->gate.cached;
    s.draft_model = j->cfg->draft.name;
    s.refine_model = j->cfg->refine.name;
    s.acct = &j->acct;
    s.route = j->routed ? &j->route : NULL;
    s.source = j->req ? job_req_meta(j->req, "source") : NULL;
    s.tenant = j->req ? job_req_meta(j->req, "tenant") : NULL;
    s.finished_ms = clock_wall_ms();
    return stats_delta_of(&s, out);
}
