/* worker.c - the job pipeline: fetch, draft, route, refine, account, finish. */
#include "worker.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "bderr.h"
#include "breaker.h"
#include "clock.h"
#include "config.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"
#include "mclient.h"
#include "router.h"
#include "stats.h"
#include "store.h"
#include "svc.h"
#include "webhook.h"

#define WORKER_TICK_MS 500
#define GUARD_REFRESH_MS 5000   /* guard figures are re-read this often... */
#define GUARD_STALE_MS 30000    /* ...and not used once this old (then guards do not hold) */
#define WORKER_BLOCK_MS 1000

struct wjob {
    struct worker *w;
    struct list_node node;
    struct store_entry e;         /* the queue entry it came in (e.id is the job id) */
    int attempt;
    struct bd_config *cfg;        /* the config this job runs under (a reference) */
    struct job_req req;
    int64_t created_ms;
    uint64_t t_start;             /* uv_hrtime at begin */
    uint64_t t_stage;             /* uv_hrtime at the current stage's start */
    uint64_t deadline_ms;         /* uv_now based */
    struct mc_call call;
    char *url;
    char *body;
    int refining;
    char *draft;
    int draft_truncated;
    struct lp_summary lp;
    struct route_result route;
    int routed;
    struct job_acct acct;
    char *brief;
    int refined, degraded;
    char refine_err[300];
    int finishing;
};

struct worker {
    struct svc *svc;
    struct webhook *webhooks;
    uv_timer_t tick;
    uv_timer_t grace;
    struct list_node jobs;
    unsigned inflight;
    int fetching;
    int stopping;
    uint64_t last_claim_ms;
    int pending_closes;
    struct breaker draft_br;      /* circuit breakers of this process, per model */
    struct breaker refine_br;
    struct {                      /* the guards' figures, read from the shared stats */
        int valid, fetching;
        uint64_t at_ms;
        double decided, refined, spent_today, avg_refine_cost;
    } guard;
    void (*stop_cb)(void *);
    void *stop_data;
};

static void fetch(struct worker *w);
static void wjob_finish(struct wjob *j, const char *status, cJSON *error);

static double ms_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e6; }

static unsigned free_slots(const struct worker *w)
{
    unsigned conc = (unsigned)w->svc->cfg->concurrency;
    return w->inflight >= conc ? 0 : conc - w->inflight;
}

/* --- job lifetime --- */

static struct wjob *wjob_new(struct worker *w, const struct store_entry *e)
{
    struct wjob *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->w = w;
    j->e = *e;
    j->cfg = config_ref(w->svc->cfg);
    acct_init(&j->acct);
    j->call.data = j;
    j->call.ttft_ms = -1;
    list_push_front(&w->jobs, &j->node);
    w->inflight++;
    return j;
}

static void wjob_free(struct wjob *j)
{
    struct worker *w = j->w;
    list_unlink(&j->node);
    w->inflight--;
    mc_call_reset(&j->call);
    job_req_free(&j->req);
    free(j->url);
    free(j->body);
    free(j->draft);
    free(j->brief);
    config_unref(j->cfg);
    free(j);
    if (!w->stopping)
        fetch(w);
}

static struct store *store_of(const struct wjob *j) { return j->w->svc->store; }

static void transition(struct wjob *j, const char *status)
{
    store_transition(store_of(j), j->e.id, status, j->attempt, NULL, NULL);
}

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

/* --- model calls --- */

static int call_model(struct wjob *j, const struct model_cfg *m, const char *draft,
                      mc_cb cb)
{
    char *user = job_render_prompt(m->prompt_user, &j->req, draft);
    size_t ulen;
    int rc;
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
    j->call.url = j->url;
    j->call.body = j->body;
    j->call.api_key = m->api_key;
    j->call.auth = m->auth_header == MODEL_AUTH_API_KEY ? MC_AUTH_API_KEY : MC_AUTH_BEARER;
    j->call.headers = (const char *const *)m->header_lines;
    j->call.n_headers = m->n_header_lines;
    j->call.prompt_chars = ulen;
    j->call.stream = m->stream;
    j->call.timeout_ms = m->timeout_ms;
    j->call.max_attempts = m->max_attempts;
    j->call.backoff_ms = m->backoff_ms;
    j->call.deadline_ms = j->deadline_ms;
    j->t_stage = uv_hrtime();
    rc = mc_call_start(j->w->svc->mc, &j->call, cb);
    return rc;
}

static void take_usage(struct stage_usage *u, const struct mc_call *c)
{
    u->present = 1;
    u->prompt_tokens = c->res.prompt_tokens;
    u->completion_tokens = c->res.completion_tokens;
    u->estimated = c->res.usage_estimated;
}

static void count_failures(struct wjob *j, const struct mc_call *c, const char *model)
{
    for (int f = MC_FAIL_CONNECT; f < MC_FAIL_CANCELED; f++)
        store_count_upstream_error(store_of(j), model, mc_fail_name((enum mc_fail)f),
                                   c->fails[f]);
}

/* Did this call show the upstream unavailable (as opposed to answering, even with a 4xx)? */
static int upstream_down(int status, const struct mc_call *c)
{
    return status != 0 && c->fail != MC_FAIL_HTTP_4XX && c->fail != MC_FAIL_CANCELED;
}

static void breaker_note(struct wjob *j, struct breaker *b, const struct model_cfg *m,
                         int down)
{
    uint64_t now = uv_now(j->w->svc->loop);
    int draft = b == &j->w->draft_br;
    if (breaker_record(b, !down, now, m->breaker_failures))
        log_warn("circuit breaker for the %s model '%s' is now %s%s", draft ? "draft" : "refine",
                 m->name, breaker_state_name(b->state),
                 b->state != BREAKER_OPEN ? ""
                 : draft ? " (calls paused; jobs wait in the queue)"
                         : " (calls paused; jobs that route to refinement keep their drafts)");
}

static void abandon(struct wjob *j)
{
    /* Shutdown or lost Redis: leave the entry pending (or hand it back) for another worker. */
    if (j->w->stopping)
        store_handback(store_of(j), &j->e, NULL, NULL);
    wjob_free(j);
}

/* The bookkeeping every model stage ends with: its latency and busy time, failures for the
 * metrics, the model's breaker. Returns 1 if the call was canceled (shutdown): the job has
 * then been handed back and freed. */
static int stage_done(struct wjob *j, const struct mc_call *c, int status,
                      const struct model_cfg *m, struct breaker *b, double *stage_ms,
                      double *busy_ms)
{
    *stage_ms = ms_since(j->t_stage);
    *busy_ms = c->busy_ms;
    if (status == BD_ECANCELED) {
        abandon(j);
        return 1;
    }
    count_failures(j, c, m->name);
    breaker_note(j, b, m, upstream_down(status, c));
    return 0;
}

static void on_refine(struct mc_call *c, int status)
{
    struct wjob *j = c->data;
    if (stage_done(j, c, status, &j->cfg->refine, &j->w->refine_br, &j->acct.refine_ms,
                   &j->acct.refine_busy_ms))
        return;
    if (c->attempts > 0 && (status == 0 || c->http_status != 0))
        take_usage(&j->acct.refine, c);
    if (status == 0 && c->res.content && c->res.content[0]) {
        j->acct.refine_ttft_ms = c->ttft_ms;
        j->brief = strdup(c->res.content);
        j->refined = 1;
    } else {
        j->degraded = 1;
        snprintf(j->refine_err, sizeof(j->refine_err), "%s (%s after %d attempts)",
                 status == 0 ? "refine model returned an empty brief" : c->err,
                 mc_fail_name(c->fail), c->attempts);
        if (status != 0 && c->http_status == 0)
            j->acct.refine.present = 0;
    }
    wjob_finish(j, "succeeded", NULL);
}

static void start_refine(struct wjob *j)
{
    int rc;
    j->refining = 1;
    if (!breaker_allow(&j->w->refine_br, uv_now(j->w->svc->loop), j->cfg->refine.breaker_open_ms)) {
        j->degraded = 1;
        snprintf(j->refine_err, sizeof(j->refine_err),
                 "circuit breaker open for model '%.100s' after repeated failures; draft kept",
                 j->cfg->refine.name);
        wjob_finish(j, "succeeded", NULL);
        return;
    }
    transition(j, "refining");
    mc_call_reset(&j->call);
    rc = call_model(j, &j->cfg->refine, j->draft, on_refine);
    if (rc != 0) {
        j->degraded = 1;
        snprintf(j->refine_err, sizeof(j->refine_err), "could not start refine call: %s",
                 bd_strerror(rc));
        wjob_finish(j, "succeeded", NULL);
    }
}

/* The guard figures if they are fresh enough, else NULL (guards then hold nothing back). */
static const struct guard_input *guard_figures(const struct worker *w, struct guard_input *g)
{
    memset(g, 0, sizeof(*g));
    if (!w->guard.valid || uv_now(w->svc->loop) - w->guard.at_ms > GUARD_STALE_MS)
        return NULL;
    g->have_rate = 1;
    g->recent_refine_rate = w->guard.decided > 0 ? w->guard.refined / w->guard.decided : 0;
    g->have_spend = 1;
    g->spent_today_usd = w->guard.spent_today;
    g->est_refine_cost_usd = w->guard.avg_refine_cost;
    return g;
}

static void on_guard_figures(void *data, int status, double decided, double refined,
                             double spent_today, double avg_refine_cost)
{
    struct worker *w = data;
    w->guard.fetching = 0;
    if (status != 0)
        return;
    w->guard.valid = 1;
    w->guard.at_ms = uv_now(w->svc->loop);
    w->guard.decided = decided;
    w->guard.refined = refined;
    w->guard.spent_today = spent_today;
    w->guard.avg_refine_cost = avg_refine_cost;
}

static void refresh_guards(struct worker *w)
{
    const struct bd_config *cfg = w->svc->cfg;
    if (w->guard.fetching || uv_now(w->svc->loop) - w->guard.at_ms < GUARD_REFRESH_MS)
        return;
    if (router_guard_max_rate(cfg->router) <= 0 && router_guard_daily_budget(cfg->router) < 0)
        return;
    if (store_stats_guard(w->svc->store, router_guard_window_s(cfg->router), on_guard_figures,
                          w) == 0)
        w->guard.fetching = 1;
}

static void route(struct wjob *j)
{
    struct guard_input g;
    struct route_input in;
    uint64_t t0;
    job_route_input(&j->req, j->draft, &j->lp, j->draft_truncated, &in);
    t0 = uv_hrtime();
    router_decide(j->cfg->router, &in, guard_figures(j->w, &g), &j->route);
    j->acct.route_ms = ms_since(t0);
    j->routed = 1;
}

static void on_draft(struct mc_call *c, int status)
{
    struct wjob *j = c->data;
    if (stage_done(j, c, status, &j->cfg->draft, &j->w->draft_br, &j->acct.draft_ms,
                   &j->acct.draft_busy_ms))
        return;
    if (status != 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "draft model '%.60s' failed after %d attempts: %.250s",
                 j->cfg->draft.name, c->attempts, c->err);
        cJSON *e = make_error("draft_failed", "%s", msg);
        cJSON_AddStringToObject(e, "reason", mc_fail_name(c->fail));
        wjob_finish(j, "failed", e);
        return;
    }
    take_usage(&j->acct.draft, c);
    j->acct.draft_ttft_ms = c->ttft_ms;
    if (!c->res.content || !c->res.content[0]) {
        wjob_finish(j, "failed", make_error("draft_empty",
                                           "draft model '%s' returned an empty brief",
                                           j->cfg->draft.name));
        return;
    }
    j->draft = strdup(c->res.content);
    j->draft_truncated = c->res.truncated;
    lp_summarize(c->res.logprobs, c->res.has_logprobs ? c->res.n_logprobs : 0, &j->lp);
    if (!j->draft) {
        wjob_finish(j, "failed", make_error("internal", "%s", "out of memory"));
        return;
    }
    transition(j, "routing");
    route(j);
    if (j->route.refine)
        start_refine(j);
    else
        wjob_finish(j, "succeeded", NULL);
}

/* --- begin / finish --- */

static void on_begin(void *data, int status, const char *what, int attempt,
                     const char *req_json, size_t req_len, int64_t created_ms)
{
    struct wjob *j = data;
    int rc;
    if (status != 0 || strcmp(what, "ok") != 0) {
        if (status != 0)
            log_error("worker: could not begin %s: %s", j->e.id, bd_strerror(status));
        wjob_free(j);
        return;
    }
    j->attempt = attempt;
    j->created_ms = created_ms;
    j->t_start = uv_hrtime();
    j->deadline_ms = uv_now(j->w->svc->loop) + (uint64_t)j->cfg->job_timeout_ms;
    j->acct.queue_ms = (double)(clock_wall_ms() - created_ms);
    if (j->acct.queue_ms < 0)
        j->acct.queue_ms = 0;
    if (job_req_from_json(req_json, req_len, &j->req) != 0) {
        wjob_finish(j, "failed", make_error("corrupt_job", "%s",
                                           "the stored request could not be read"));
        return;
    }
    if (!breaker_allow(&j->w->draft_br, uv_now(j->w->svc->loop), j->cfg->draft.breaker_open_ms)) {
        /* the draft model is out: give the job back untouched for later */
        store_handback(store_of(j), &j->e, NULL, NULL);
        wjob_free(j);
        return;
    }
    rc = call_model(j, &j->cfg->draft, NULL, on_draft);
    if (rc != 0) {
        cJSON *e = make_error("draft_failed", "could not start the draft call: %s",
                              bd_strerror(rc));
        wjob_finish(j, "failed", e);
    }
}

static cJSON *result_json(const struct wjob *j)
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
static cJSON *signals_json(const struct wjob *j)
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
    return s;
}

/* --- finish --- */

static void on_finished(void *data, int status, int applied)
{
    struct wjob *j = data;
    if (status == 0 && applied && j->req.callback_url)
        webhook_send(j->w->webhooks, j->e.id, j->req.callback_url);
    if (status != 0)
        log_error("worker: could not store the result of %s: %s (it stays pending and will be "
                  "retried)", j->e.id, bd_strerror(status));
    else if (!applied)
        log_info("worker: %s had already ended or was reclaimed by another worker; this "
                 "delivery's result was discarded", j->e.id);
    wjob_free(j);
}

/* What this job adds to the statistics (stats.h). */
static int wjob_stats(const struct wjob *j, int succeeded, struct stats_delta *out)
{
    struct stats_job s;
    memset(&s, 0, sizeof(s));
    s.succeeded = succeeded;
    s.decided = j->routed;
    s.refined = j->refined;
    s.degraded = j->degraded;
    s.draft_model = j->cfg->draft.name;
    s.refine_model = j->cfg->refine.name;
    s.acct = &j->acct;
    s.route = j->routed ? &j->route : NULL;
    s.source = job_req_meta(&j->req, "source");
    s.tenant = job_req_meta(&j->req, "tenant");
    s.finished_ms = clock_wall_ms();
    return stats_delta_of(&s, out);
}

/* The stored "out" object: result, route, accounting, error, signals. */
static char *out_json(struct wjob *j, const char *status, cJSON *error)
{
    cJSON *out = cJSON_CreateObject();
    char *text;
    if (strcmp(status, "succeeded") == 0)
        cJSON_AddItemToObject(out, "result", result_json(j));
    if (j->routed)
        cJSON_AddItemToObject(out, "route", route_result_json(&j->route));
    acct_to_json(&j->acct, out);
    if (error)
        cJSON_AddItemToObject(out, "error", error);
    cJSON_AddStringToObject(out, "config_version", j->cfg->version);
    if (j->draft)
        cJSON_AddItemToObject(out, "signals", signals_json(j));
    text = jsonx_print(out);
    cJSON_Delete(out);
    return text;
}

static void wjob_finish(struct wjob *j, const char *status, cJSON *error)
{
    struct stats_delta delta;
    struct store_result r;
    char *text;
    int rc;
    j->finishing = 1;
    j->acct.total_ms = (j->acct.queue_ms > 0 ? j->acct.queue_ms : 0) + ms_since(j->t_start);
    acct_price(&j->acct, &j->cfg->draft, &j->cfg->refine);
    text = out_json(j, status, error);
    if (!text || wjob_stats(j, strcmp(status, "succeeded") == 0, &delta) != 0) {
        free(text);
        wjob_free(j);
        return;
    }
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.out_json = text;
    r.finished_ms = clock_wall_ms();
    r.ttl_s = j->cfg->result_ttl_s;
    r.stats = &delta;
    r.stats_retention_s = j->cfg->stats_retention_s;
    rc = store_finish(store_of(j), &j->e, j->attempt, &r, on_finished, j);
    free(text);
    stats_delta_free(&delta);
    if (rc != 0) {
        log_error("worker: could not store the result of %s: %s", j->e.id, bd_strerror(rc));
        wjob_free(j);
    }
}

static void start_job(struct worker *w, const struct store_entry *e)
{
    struct stats_delta delta;
    struct wjob *j;
    int rc;
    if (!job_id_valid(e->id)) {
        store_discard(w->svc->store, e); /* not ours: ack it away so it never blocks the group */
        return;
    }
    j = wjob_new(w, e);
    if (!j)
        return;
    /* what a job that ran out of deliveries adds: one failed job (its source/tenant are in
     * the stored request, which begin does not parse; such jobs count without them) */
    if (wjob_stats(j, 0, &delta) != 0) {
        wjob_free(j);
        return;
    }
    rc = store_begin(w->svc->store, e, j->cfg->max_attempts, j->cfg->result_ttl_s, &delta,
                     j->cfg->stats_retention_s, on_begin, j);
    stats_delta_free(&delta);
    if (rc != 0)
        wjob_free(j);
}

/* --- fetching: high before normal before low, then a blocking read of all three --- */

struct fetch_step {
    struct worker *w;
    int prio;                    /* next priority to poll without blocking; -1: blocking */
    unsigned got;
};

static void fetch_next(struct fetch_step *f);

static void on_read(void *data, int status, const struct store_entry *e, size_t n)
{
    struct fetch_step *f = data;
    if (status != 0) {
        f->w->fetching = 0;
        free(f);
        return;
    }
    for (size_t i = 0; i < n; i++)
        start_job(f->w, &e[i]);
    f->got += (unsigned)n;
    fetch_next(f);
}

static void fetch_next(struct fetch_step *f)
{
    struct worker *w = f->w;
    unsigned slots = free_slots(w);
    int prio = f->prio;
    if (w->stopping || slots == 0 || f->prio < -1 || (f->prio == -1 && f->got > 0)) {
        w->fetching = 0;
        free(f);
        if (!w->stopping && slots > 0)
            fetch(w); /* got some: poll again from the top */
        return;
    }
    f->prio = prio >= 0 ? prio - 1 : -2;
    if (store_read(w->svc->store, prio, prio >= 0 ? slots : 1, WORKER_BLOCK_MS, on_read, f) != 0) {
        w->fetching = 0;
        free(f);
    }
}

static void fetch(struct worker *w)
{
    struct fetch_step *f;
    if (w->fetching || w->stopping || free_slots(w) == 0 || !store_read_ready(w->svc->store))
        return;
    /* while the draft model's circuit is open, leave the jobs in the queue */
    if (!breaker_would_allow(&w->draft_br, uv_now(w->svc->loop), w->svc->cfg->draft.breaker_open_ms))
        return;
    f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->w = w;
    f->prio = PRIO_HIGH;
    w->fetching = 1;
    fetch_next(f);
}

/* --- reclaiming jobs of dead workers --- */

static void on_claim(void *data, int status, const struct store_entry *e, size_t n)
{
    struct worker *w = data;
    if (status != 0 || w->stopping)
        return;
    for (size_t i = 0; i < n; i++)
        start_job(w, &e[i]);
    if (n)
        log_info("worker: reclaimed %zu job(s) idle > %d ms from the %s queue", n,
                 w->svc->cfg->claim_idle_ms, job_priority_name(e[0].prio));
}

static void reclaim(struct worker *w)
{
    const struct bd_config *cfg = w->svc->cfg;
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++) {
        unsigned slots = free_slots(w);
        if (slots == 0)
            return;
        store_reclaim(w->svc->store, (enum job_priority)p, cfg->claim_idle_ms,
                      slots < 100 ? slots : 100, on_claim, w);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = uv_now(w->svc->loop);
    uint64_t every = (uint64_t)w->svc->cfg->claim_idle_ms / 4;
    if (every < 1000)
        every = 1000;
    if (w->stopping)
        return;
    if (now - w->last_claim_ms >= every && store_ready(w->svc->store)) {
        w->last_claim_ms = now;
        reclaim(w);
    }
    if (store_ready(w->svc->store))
        refresh_guards(w);
    fetch(w);
}

static void on_read_ready(void *data)
{
    fetch(data);
}

int worker_start(struct svc *svc, struct worker **out)
{
    struct worker *w = calloc(1, sizeof(*w));
    int rc;
    if (!w)
        return BD_ENOMEM;
    w->svc = svc;
    list_init(&w->jobs);
    rc = webhook_new(svc, &w->webhooks);
    if (rc != 0) {
        free(w);
        return rc;
    }
    uv_timer_init(svc->loop, &w->tick);
    w->tick.data = w;
    uv_timer_init(svc->loop, &w->grace);
    w->grace.data = w;
    w->last_claim_ms = uv_now(svc->loop);
    rc = store_read_open(svc->store, on_read_ready, w);
    if (rc != 0) {
        webhook_close(w->webhooks);
        free(w);
        return rc;
    }
    uv_timer_start(&w->tick, on_tick, WORKER_TICK_MS, WORKER_TICK_MS);
    *out = w;
    return 0;
}

/* --- stopping --- */

static void stop_closed(void *data)
{
    struct worker *w = data;
    if (--w->pending_closes > 0)
        return;
    void (*cb)(void *) = w->stop_cb;
    void *cbdata = w->stop_data;
    webhook_close(w->webhooks);
    free(w);
    if (cb)
        cb(cbdata);
}

static void on_handle_closed(uv_handle_t *h) { stop_closed(h->data); }

static void close_handles(struct worker *w)
{
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace, on_handle_closed);
}

/* Cancel the model calls still running: their callbacks hand the jobs back to the queue. */
static void cancel_calls(struct worker *w)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &w->jobs) {
        struct wjob *j = LIST_ENTRY(it, struct wjob, node);
        if (j->call.att || j->call.backoff)
            mc_call_cancel(&j->call); /* frees j */
    }
}

static void on_grace(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->inflight)
        log_info("worker: grace period over; handing %u job(s) back to the queue", w->inflight);
    cancel_calls(w);
}

/* Jobs waiting on a Redis reply end when it comes (or when the connection drops). */
static void on_drain_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->inflight > 0)
        return;
    uv_timer_stop(&w->tick);
    uv_timer_stop(&w->grace);
    close_handles(w);
}

void worker_stop(struct worker *w, unsigned grace_ms, void (*cb)(void *data), void *data)
{
    w->stopping = 1;
    w->stop_cb = cb;
    w->stop_data = data;
    /* Stop reading the queue first: entries handed back from now on must not be delivered
     * to this consumer's blocking read. (An entry delivered just before is started.) */
    w->pending_closes = 3; /* the blocking connection, tick, grace */
    store_read_stop(w->svc->store, stop_closed, w);
    uv_timer_stop(&w->tick);
    uv_timer_start(&w->grace, on_grace, grace_ms, 0);
    uv_timer_start(&w->tick, on_drain_tick, 0, 50);
}
