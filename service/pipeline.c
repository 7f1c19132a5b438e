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
#include "slots.h"
#include "stats.h"
#include "store.h"
#include "svc.h"
#include "tenant.h"
#include "trace.h"
#include "upstream.h"
#include "url.h"

#define TICK_MS 100
#define GUARD_REFRESH_MS 1000   /* guard figures are re-read this often... */
#define GUARD_STALE_MS 30000    /* ...and not used once this old (then guards do not hold) */
#define LISTEN_REASK_MS 250     /* a streamed refinement nobody listens to asks again this often */
#define STALL_MS 1000           /* a loop iteration this late means the process was stalled */
#define FALLBACK_MIN_MS 100     /* a fallback is tried only with this much of the job's time left */

struct pipeline {
    struct svc *svc;
    uv_timer_t tick;
    uint64_t last_tick;
    uint64_t stalled_at;        /* uv_now when the last stall was seen (0: never) */
    struct gate *gate;          /* the cache's and the tenants' per-process state */
    struct ups ups;             /* circuit breakers of this process, per endpoint */
    uint64_t rng;               /* span ids of the calls' trace contexts */
    struct slots *slots;        /* model call slots (max_concurrency) */
    struct {                    /* the guards' figures, read from the shared statistics */
        int valid, fetching;
        uint64_t at_ms;
        double decided, refined, spent_today, avg_refine_cost;
    } guard;
    void (*close_cb)(void *);
    void *close_data;
    int closing;                /* freed once the tick is closed and no guard fetch is out */
};

/* A question to the store: does anyone listen to this job's text? */
struct listen_op {
    struct pipe_job *j;         /* NULL once the job stopped waiting (canceled, ended) */
    int gate;                   /* the call waits for the answer */
};
static void maybe_free(struct pipeline *p);

static double ms_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e6; }

/* --- the guards' figures --- */

static void on_guard_figures(void *data, int status, double decided, double refined,
                             double spent_today, double avg_refine_cost)
{
    struct pipeline *p = data;
    p->guard.fetching = 0;
    if (p->closing) {
        maybe_free(p);
        return;
    }
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
    p->rng = uv_hrtime() ^ ((uint64_t)(uintptr_t)p << 16) ^ 0x9e3779b97f4a7c15ull;
    if (slots_new(svc->loop, svc->store, svc->instance, &p->slots) != 0) {
        free(p);
        return BD_ENOMEM;
    }
    uv_timer_init(svc->loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
    *out = p;
    return 0;
}

static void maybe_free(struct pipeline *p)
{
    void (*cb)(void *) = p->close_cb;
    void *data = p->close_data;
    if (p->closing < 2 || p->guard.fetching)
        return; /* the tick is not closed yet, or a guard fetch will still call back */
    gate_free(p->gate);
    ups_free(&p->ups);
    free(p);
    if (cb)
        cb(data);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct pipeline *p = h->data;
    p->closing = 2;
    maybe_free(p);
}

void pipeline_close(struct pipeline *p, void (*cb)(void *data), void *data)
{
    p->close_cb = cb;
    p->close_data = data;
    p->closing = 1;
    slots_close(p->slots);
    uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, on_tick_closed);
}

int pipeline_draft_open(const struct pipeline *p)
{
    return ups_any_open(&p->ups, &p->svc->cfg->draft, uv_now(p->svc->loop));
}

int pipeline_breaker_open(const struct pipeline *p, const struct model_cfg *ep)
{
    return ups_state(&p->ups, ep) != BREAKER_CLOSED;
}

int pipeline_endpoint_allows(const struct pipeline *p, const struct model_cfg *ep)
{
    return ups_would_allow(&p->ups, ep, uv_now(p->svc->loop));
}

static void server_key(const struct model_cfg *m, char *buf, size_t len);

int pipeline_slot_take(struct pipeline *p, const struct model_cfg *m, int prio,
                       struct slot_wait *w, slot_cb cb)
{
    char server[2400];
    server_key(m, server, sizeof(server));
    return slots_take(p->slots, server, m->max_concurrency, p->svc->cfg->claim_idle_ms, prio, w,
                      cb);
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
                    !j->route->guarded;
    cJSON *res = cacheable ? result_json(j) : NULL;
    gate_end(&j->gate, res != NULL, res);
    cJSON_Delete(res);
}

/* The endpoint of the stage's last call (the model itself before any call). */
static const struct model_cfg *stage_endpoint(const struct pipe_job *j, int refine)
{
    const struct model_cfg *m = refine ? &j->cfg->refine : &j->cfg->draft;
    const struct model_cfg *ep = ups_endpoint(m, refine ? j->refine_ep : j->draft_ep);
    return ep ? ep : m;
}

static void finish(struct pipe_job *j, enum pipe_outcome o)
{
    if (j->listen) { /* a listen question still out: its answer finds no job */
        j->listen->j = NULL;
        j->listen = NULL;
    }
    if (o == PIPE_SUCCEEDED || o == PIPE_FAILED)
        j->acct.total_ms = (j->acct.queue_ms > 0 ? j->acct.queue_ms : 0) + ms_since(j->t_start);
    acct_price(&j->acct, stage_endpoint(j, 0), stage_endpoint(j, 1));
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

static uint64_t rng_next(struct pipeline *p)
{
    uint64_t z = (p->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The call's headers: the endpoint's own, then X-Request-Id and the trace context, a new
 * span for every call (docs/UPSTREAMS.md#the-request). */
static int call_headers(struct pipe_job *j, const struct model_cfg *m)
{
    char tp[TRACE_PARENT_LEN + 1];
    size_t n = 0;
    free(j->hdrs);
    free(j->hdr_tp);
    j->hdr_tp = NULL;
    j->hdrs = calloc(m->n_header_lines + 3, sizeof(*j->hdrs));
    if (!j->hdrs)
        return BD_ENOMEM;
    for (size_t i = 0; i < m->n_header_lines; i++)
        j->hdrs[n++] = m->header_lines[i];
    if (j->request_id && !j->hdr_id && asprintf(&j->hdr_id, "X-Request-Id: %s", j->request_id) < 0)
        j->hdr_id = NULL;
    if (j->hdr_id)
        j->hdrs[n++] = j->hdr_id;
    if (j->traceparent) {
        trace_child(j->traceparent, rng_next(j->p), tp);
        if (asprintf(&j->hdr_tp, "traceparent: %s", tp) < 0)
            j->hdr_tp = NULL;
    }
    if (j->hdr_tp)
        j->hdrs[n++] = j->hdr_tp;
    if (j->hdr_tp && j->tracestate && !j->hdr_ts &&
        asprintf(&j->hdr_ts, "tracestate: %s", j->tracestate) < 0)
        j->hdr_ts = NULL;
    if (j->hdr_tp && j->hdr_ts)
        j->hdrs[n++] = j->hdr_ts;
    j->call.headers = j->hdrs;
    j->call.n_headers = n;
    return 0;
}

/* Pass text on: text[0..len) is the brief served so far (what went out is a prefix of it). */
static void emit(struct pipe_job *j, const char *text, size_t len)
{
    if (!j->text_on || j->text_broken || len <= j->text_sent)
        return;
    sbuf_add(&j->sent, text + j->text_sent, len - j->text_sent);
    j->on_text(j, text + j->text_sent, len - j->text_sent);
    j->text_sent = len;
}

/* The final text of a streamed stage: the rest goes out, unless it is not what went out. */
static void emit_final(struct pipe_job *j, const char *text)
{
    size_t len = strlen(text);
    if (j->text_sent > 0 &&
        (len < j->text_sent || memcmp(text, j->sent.p, j->text_sent) != 0)) {
        j->text_broken = 1;
        log_warn("the refine model's final text differs from what it streamed (%zu bytes "
                 "went out)", j->text_sent);
        return;
    }
    emit(j, text, len);
}

static int ask_listening(struct pipe_job *j, int gate);

/* Streamed text of a call. A job with listen_id that nobody listened to when the call began
 * asks again now and then while it streams (a client may open its events late); once someone
 * listens, the text so far goes out with the next piece. */
static void on_call_text(struct mc_call *c, const char *text, size_t len)
{
    struct pipe_job *j = c->data;
    if (!j->text_on && j->listen_id && !j->listen &&
        uv_now(j->p->svc->loop) - j->listen_at >= LISTEN_REASK_MS)
        ask_listening(j, 0);
    emit(j, text, len);
}

/* Start the call j->next_m (template next_tmpl, with the draft if any). */
static int call_model(struct pipe_job *j)
{
    const struct model_cfg *m = j->next_m;
    char *user = job_render_prompt(j->next_tmpl, j->req, j->draft);
    size_t ulen;
    int stream = m->stream || j->text_on || j->text_maybe;
    if (!user)
        return BD_ENOMEM;
    ulen = strlen(user) + (m->prompt_system ? strlen(m->prompt_system) : 0);
    free(j->body);
    free(j->url);
    j->body = oai_build_request(m->name, m->prompt_system, user, m->max_tokens, m->temperature,
                                stream, m->logprobs);
    free(user);
    j->url = config_model_url(m, "/chat/completions");
    if (!j->body || !j->url)
        return BD_ENOMEM;
    mc_call_reset(&j->call);
    j->call.data = j;
    j->call.url = j->url;
    j->call.body = j->body;
    config_model_call(&j->call, m);
    if (call_headers(j, m) != 0)
        return BD_ENOMEM;
    j->call.stream = stream;
    j->call.on_text = j->text_on || j->text_maybe ? on_call_text : NULL;
    j->call.prompt_chars = ulen;
    j->call.deadline_ms = j->deadline_ms;
    j->t_stage = uv_hrtime();
    return mc_call_start(j->p->svc->mc, &j->call, j->next_cb);
}

/* --- waiting before a call: a slot (max_concurrency), whether anyone listens --- */


/* The model server a slot is counted against: its base_url and model name. */
static void server_key(const struct model_cfg *m, char *buf, size_t len)
{
    snprintf(buf, len, "%s|%s", m->base_url, m->name);
}

static void start_failed(struct pipe_job *j, int rc);

/* Every wait is over: start the call (or end the job if the deadline passed meanwhile). */
static int go(struct pipe_job *j)
{
    if (j->next_m->max_concurrency > 0 && j->next_wait_ms)
        *j->next_wait_ms = ms_since(j->t_wait);
    if (uv_now(j->p->svc->loop) >= j->deadline_ms) {
        slots_give(&j->slot);
        return BD_EDEADLINE;
    }
    return call_model(j);
}

static void go_async(struct pipe_job *j)
{
    int rc = go(j);
    if (rc != 0)
        start_failed(j, rc);
}

static void on_slot(struct slot_wait *w, int status)
{
    struct pipe_job *j = w->data;
    (void)status;
    if (--j->waits == 0)
        go_async(j);
}

static void on_listening(void *data, int status, int listened)
{
    struct listen_op *op = data;
    struct pipe_job *j = op->j;
    int gate = op->gate;
    free(op);
    if (!j)
        return;
    j->listen = NULL;
    j->text_on = status == 0 && listened;
    if (gate && --j->waits == 0)
        go_async(j);
}

static int ask_listening(struct pipe_job *j, int gate)
{
    struct listen_op *op = malloc(sizeof(*op));
    if (!op)
        return BD_ENOMEM;
    op->j = j;
    op->gate = gate;
    j->listen_at = uv_now(j->p->svc->loop);
    if (store_listening(j->p->svc->store, j->listen_id, on_listening, op) != 0) {
        free(op);
        return BD_EREDIS_DOWN;
    }
    j->listen = op;
    return 0;
}

/* Start a model stage: m with the user template tmpl, cb when it ends; its slot wait (if m
 * has max_concurrency) lands in *wait_ms. stream_text: pass this stage's text on (asking
 * whether anyone listens first, for jobs with listen_id). Returns 0, or an error if the call
 * could not start at once (nothing awaited). */
static int begin_call(struct pipe_job *j, const struct model_cfg *m, const char *tmpl,
                      mc_cb cb, double *wait_ms, int stream_text)
{
    j->next_m = m;
    j->next_tmpl = tmpl;
    j->next_cb = cb;
    j->next_wait_ms = wait_ms;
    j->t_wait = uv_hrtime();
    j->text_on = stream_text && j->on_text && !j->listen_id;
    /* a pre-routed refinement starts right after the submission, likely before its events
     * stream opens: it streams anyway, and asks again while it runs */
    j->text_maybe = stream_text && j->on_text && j->listen_id && j->direct;
    j->waits = 1; /* held until every question went out */
    if (m->max_concurrency > 0) {
        char server[2400];
        server_key(m, server, sizeof(server));
        j->slot.data = j;
        if (slots_take(j->p->slots, server, m->max_concurrency, j->cfg->claim_idle_ms,
                       (int)j->req->priority, &j->slot, on_slot) == 0)
            j->waits++;
    }
    if (stream_text && j->on_text && j->listen_id && ask_listening(j, 1) == 0)
        j->waits++;
    if (--j->waits > 0)
        return 0;
    return go(j);
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

/* What an open breaker of endpoint k of model m means for the jobs. */
static const char *breaker_effect(const struct model_cfg *m, int k, int refine)
{
    if (k > 0)
        return " (calls skip this fallback)";
    if (m->n_fallbacks)
        return " (calls go to its fallbacks)";
    return refine ? " (calls paused; jobs that route to refinement keep their drafts)"
                  : " (calls paused; jobs wait in the queue)";
}

static void breaker_note(struct pipe_job *j, int refine, int down)
{
    const struct model_cfg *m = refine ? &j->cfg->refine : &j->cfg->draft;
    int k = refine ? j->refine_ep : j->draft_ep;
    const struct model_cfg *ep = stage_endpoint(j, refine);
    const char *role = refine ? "refine" : "draft";
    enum breaker_state st;
    char where[300];
    if (!ups_record(&j->p->ups, ep, !down, uv_now(j->p->svc->loop)))
        return;
    st = ups_state(&j->p->ups, ep);
    if (k == 0) {
        log_warn("circuit breaker for the %s model '%s' is now %s%s", role, m->name,
                 breaker_state_name(st), st == BREAKER_OPEN ? breaker_effect(m, k, refine) : "");
        return;
    }
    url_redact(ep->base_url, where, sizeof(where));
    log_warn("circuit breaker for fallback %d of the %s model, '%s' at %s, is now %s%s", k, role,
             ep->name, where, breaker_state_name(st),
             st == BREAKER_OPEN ? breaker_effect(m, k, refine) : "");
}

/* The bookkeeping every model stage ends with: its latency and busy time, failures for the
 * metrics, the model's breaker. Returns 1 if the job ended here (canceled or stalled). */
static int stage_done(struct pipe_job *j, const struct mc_call *c, int status, int refine,
                      double *stage_ms, double *busy_ms)
{
    const struct model_cfg *m = stage_endpoint(j, refine);
    slots_give(&j->slot);
    *stage_ms = ms_since(j->t_stage0 ? j->t_stage0 : j->t_stage);
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
    breaker_note(j, refine, upstream_down(status, c));
    return 0;
}

static int begin_call(struct pipe_job *j, const struct model_cfg *m, const char *tmpl,
                      mc_cb cb, double *wait_ms, int stream_text);

/* After a stage's call failed: if the failure says its endpoint is out, nothing of the
 * stage's text went out yet and there is time left, call the next endpoint of the model
 * whose breaker lets it (docs/CONFIG.md#fallbacks). Returns 1 when that call is on its way
 * (cb runs for it). */
static int try_fallback(struct pipe_job *j, int refine, mc_cb cb)
{
    const struct model_cfg *m = refine ? &j->cfg->refine : &j->cfg->draft, *ep;
    int *k = refine ? &j->refine_ep : &j->draft_ep, next;
    uint64_t now = uv_now(j->p->svc->loop);
    char was[300];
    if (!ups_outage(j->call.fail) || j->text_sent > 0 || j->deadline_ms < now + FALLBACK_MIN_MS)
        return 0;
    next = ups_pick(&j->p->ups, m, *k + 1, now);
    if (next < 0)
        return 0;
    url_redact(stage_endpoint(j, refine)->base_url, was, sizeof(was));
    log_info("%s model '%s' at %s is out (%s); trying fallback %d", refine ? "refine" : "draft",
             stage_endpoint(j, refine)->name, was, mc_fail_name(j->call.fail), next);
    *k = next;
    ep = ups_endpoint(m, next);
    if (!j->t_stage0)
        j->t_stage0 = j->t_stage; /* the stage's latency spans every endpoint it tried */
    if (begin_call(j, ep, refine && j->direct ? ep->prompt_direct : ep->prompt_user, cb,
                   refine ? &j->acct.refine_wait_ms : &j->acct.draft_wait_ms, refine) != 0)
        return 0;
    return 1;
}

/* --- refine --- */

static void start_draft(struct pipe_job *j);

const char *pipe_refine_err(const struct pipe_job *j)
{
    return j->refine_err ? j->refine_err : "out of memory";
}

/* The refinement did not produce the brief, for the reason fmt says (kept in j->refine_err,
 * replacing any; at most 300 bytes; out of memory it stays NULL, which pipe_refine_err reads
 * as "out of memory"): keep the draft (degraded) - or, when pre-routing skipped the draft,
 * have the draft model write it after all. */
static void refine_failed(struct pipe_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refine_failed(struct pipe_job *j, const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(j->refine_err);
    j->refine_err = strdup(buf);
    j->degraded = 1;
    if (j->text_sent > 0)
        j->text_broken = 1; /* text went out: it cannot be taken back */
    if (!j->draft) {
        start_draft(j);
        return;
    }
    emit(j, j->draft, strlen(j->draft));
    finish(j, PIPE_SUCCEEDED);
}

static void on_refine(struct mc_call *c, int status)
{
    struct pipe_job *j = c->data;
    if (stage_done(j, c, status, 1, &j->acct.refine_ms, &j->acct.refine_busy_ms))
        return;
    if (status != 0 && try_fallback(j, 1, on_refine))
        return;
    if (c->attempts > 0 && (status == 0 || c->http_status != 0))
        take_usage(&j->acct.refine, c);
    if (status == 0 && c->res.content && c->res.content[0]) {
        j->acct.refine_ttft_ms = c->ttft_ms;
        j->brief = strdup(c->res.content);
        j->refined = j->brief != NULL;
        if (!j->brief) {
            refine_failed(j, "out of memory");
            return;
        }
        emit_final(j, j->brief);
        finish(j, PIPE_SUCCEEDED);
        return;
    }
    if (status != 0 && c->http_status == 0)
        j->acct.refine.present = 0;
    refine_failed(j, "%s (%s after %d attempts)",
                  status == 0 ? "refine model returned an empty brief" : c->err,
                  mc_fail_name(c->fail), c->attempts);
}

/* Refine the draft (or, direct, write the brief from the document). Returns 0, or an error
 * when it could not start (the caller decides what that means). */
static int start_refine(struct pipe_job *j)
{
    const struct model_cfg *m;
    int k = ups_pick(&j->p->ups, &j->cfg->refine, 0, uv_now(j->p->svc->loop));
    if (k < 0)
        return BD_ECIRCUIT_OPEN; /* every endpoint of the refine model is out */
    j->refine_ep = k;
    j->t_stage0 = 0;
    m = ups_endpoint(&j->cfg->refine, k);
    if (j->on_stage)
        j->on_stage(j, "refining");
    return begin_call(j, m, j->direct ? m->prompt_direct : m->prompt_user, on_refine,
                      &j->acct.refine_wait_ms, 1);
}

static void refine_or_keep(struct pipe_job *j)
{
    const struct model_cfg *m = &j->cfg->refine;
    int rc = start_refine(j);
    if (rc == BD_ECIRCUIT_OPEN) {
        refine_failed(j,
                      "circuit breaker open for model '%.100s'%s after repeated failures; "
                      "draft kept",
                      m->name, m->n_fallbacks ? " and each of its fallbacks" : "");
    } else if (rc != 0) {
        start_failed(j, rc);
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

/* The draft is the brief: it goes out (to a streaming client) and the job ends. */
static void keep_draft(struct pipe_job *j)
{
    j->text_on = j->on_text && !j->listen_id;
    emit(j, j->draft, strlen(j->draft));
    finish(j, PIPE_SUCCEEDED);
}

/* The tenant's budget had no room for the refinement: keep the draft, say why. */
static void hold_back_budget(struct pipe_job *j)
{
    struct verdict *v = router_hold_back(j->route, "guard:tenant_budget",
                                         j->gate.spent_usd + j->gate.others_usd +
                                             j->gate.reserved_usd + j->gate.refine_bound_usd);
    snprintf(v->detail, sizeof(v->detail), "%.199s", j->gate.detail);
    keep_draft(j);
}

static void on_budget_checked(struct gate_job *gj, int ok)
{
    struct pipe_job *j = gj->data;
    if (ok)
        refine_or_keep(j);
    else
        hold_back_budget(j);
}

/* A refinement the router decided: within the tenant's budget (reserved across processes)
 * it starts; else it is held back. */
static void refine_within_budget(struct pipe_job *j)
{
    int rc = gate_refine(&j->gate, draft_cost(j), j->refine_bound, on_budget_checked);
    if (rc == 0)
        refine_or_keep(j);
    else if (rc < 0)
        hold_back_budget(j);
}

/* --- draft and route --- */

/* The guards' figures: the process's (if fresh) and the job's tenant's (gate.h), or NULL. */
static struct guard_input *all_figures(struct pipe_job *j, struct guard_input *g)
{
    struct guard_input *gi = (struct guard_input *)guard_figures(j->p, g);
    if (!gi && j->gate.lim) {
        memset(g, 0, sizeof(*g)); /* the tenant's figures alone */
        gi = g;
    }
    if (gi)
        gate_guard_input(&j->gate, draft_cost(j), j->refine_bound, gi);
    return gi;
}

/* acct_cost_bound of a call to m: the largest over its endpoints (a stage is priced at the
 * endpoint that answers: a fallback may cost more). */
static double cost_bound(const struct model_cfg *m, size_t prompt_bytes)
{
    double b = 0;
    for (int k = 0; k < ups_count(m); k++) {
        double e = acct_cost_bound(ups_endpoint(m, k), prompt_bytes);
        b = e > b ? e : b;
    }
    return b;
}

/* The job's route result, allocated on first use (4.5 KB: not held while the draft runs);
 * NULL when out of memory. */
static struct route_result *route_of(struct pipe_job *j)
{
    if (j->route == NULL)
        j->route = calloc(1, sizeof(*j->route));
    return j->route;
}

/* Route the draft; 0, or BD_ENOMEM (nothing decided). */
static int route(struct pipe_job *j)
{
    struct guard_input g;
    struct route_input in;
    uint64_t t0;
    if (route_of(j) == NULL)
        return BD_ENOMEM;
    job_route_input(j->req, j->draft, &j->lp, j->draft_truncated, &in);
    if (j->gate.lim && j->gate.lim->daily_budget_usd >= 0)
        j->refine_bound = cost_bound(&j->cfg->refine, prompt_bytes(&j->cfg->refine, j->req,
                                                                   j->draft));
    t0 = uv_hrtime();
    router_decide(j->cfg->router, &in, all_figures(j, &g), j->route);
    j->acct.route_ms = ms_since(t0);
    j->routed = 1;
    return 0;
}

/* Pre-routing: 1 when the input alone decided a refinement (route filled), else 0. Only
 * while the refine model's breaker lets calls through (else the draft is the way). */
static int pre_route(struct pipe_job *j)
{
    struct guard_input g;
    struct route_input in;
    struct lp_summary none;
    uint64_t t0;
    if (!router_pre_route(j->cfg->router) || !ups_any_open(&j->p->ups, &j->cfg->refine, j->t_loop))
        return 0;
    if (route_of(j) == NULL)
        return 0; /* out of memory: no pre-routing, the draft decides */
    memset(&none, 0, sizeof(none));
    job_route_input(j->req, NULL, &none, 0, &in);
    t0 = uv_hrtime();
    if (!router_pre_decide(j->cfg->router, &in, all_figures(j, &g), j->route) ||
        !j->route->refine) {
        free(j->route); /* not decided: none held while the draft runs */
        j->route = NULL;
        return 0;
    }
    j->acct.route_ms = ms_since(t0);
    j->routed = 1;
    j->direct = 1;
    return 1;
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
    if (stage_done(j, c, status, 0, &j->acct.draft_ms, &j->acct.draft_busy_ms))
        return;
    if (status != 0 && try_fallback(j, 0, on_draft))
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
    if (j->direct) { /* the direct refinement failed: the draft is the brief */
        emit(j, j->draft, strlen(j->draft));
        finish(j, PIPE_SUCCEEDED);
        return;
    }
    if (route(j) != 0) {
        fail(j, make_error("internal", "%s", "out of memory"));
        return;
    }
    if (j->route->refine)
        refine_within_budget(j);
    else
        keep_draft(j);
}

static int begin_draft(struct pipe_job *j)
{
    const struct model_cfg *m;
    int k = ups_pick(&j->p->ups, &j->cfg->draft, 0, uv_now(j->p->svc->loop));
    if (k < 0)
        return BD_ECIRCUIT_OPEN; /* every endpoint of the draft model is out: the job waits */
    j->draft_ep = k;
    j->t_stage0 = 0;
    m = ups_endpoint(&j->cfg->draft, k);
    return begin_call(j, m, m->prompt_user, on_draft, &j->acct.draft_wait_ms, 0);
}

/* The draft after a direct refinement failed. */
static void start_draft(struct pipe_job *j)
{
    int rc = begin_draft(j);
    if (rc == BD_ECIRCUIT_OPEN)
        finish(j, PIPE_RETRY);
    else if (rc != 0)
        start_failed(j, rc);
}

/* A call that could not start once its waits were over (or at once). */
static void start_failed(struct pipe_job *j, int rc)
{
    if (j->next_cb == on_refine) {
        refine_failed(j, "could not start refine call: %s",
                      rc == BD_EDEADLINE ? "deadline reached waiting for a slot" : bd_strerror(rc));
    } else if (rc == BD_EDEADLINE) {
        finish(j, PIPE_RETRY); /* the model was busy for the whole deadline: try later */
    } else {
        fail(j, make_error("draft_failed", "could not start the draft call: %s",
                           bd_strerror(rc)));
    }
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

/* The models' part: a pre-routed refinement from the document, or the draft. Returns 0
 * (the job ends later, never from inside this call) or BD_ENOMEM. */
static int begin_models(struct pipe_job *j)
{
    int rc;
    if (pre_route(j)) {
        rc = start_refine(j);
        if (rc == 0)
            return 0;
        j->direct = 0; /* could not even start: the draft decides */
        j->routed = 0;
        j->acct.route_ms = j->acct.refine_wait_ms = -1;
    }
    rc = begin_draft(j);
    if (rc == BD_ECIRCUIT_OPEN || rc == BD_EDEADLINE)
        return defer(j, NULL); /* the draft model is out: the job waits */
    if (rc != 0)
        return defer(j, make_error("draft_failed", "could not start the draft call: %s",
                                   bd_strerror(rc)));
    return 0;
}

/* A copy of an earlier result is the brief: it goes out and the job ends. */
static void serve_cached(struct pipe_job *j)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j->gate.cached_result, "brief");
    j->text_on = j->on_text && !j->listen_id;
    if (cJSON_IsString(b))
        emit(j, b->valuestring, strlen(b->valuestring));
    finish(j, PIPE_SUCCEEDED);
}

/* The gate's verdict before the models (gate.h). */
static void on_gate(struct gate_job *gj, enum gate_verdict v)
{
    struct pipe_job *j = gj->data;
    cJSON *e;
    switch (v) {
    case GATE_RUN:
        if (begin_models(j) != 0)
            fail(j, make_error("internal", "%s", "out of memory"));
        break;
    case GATE_CACHED:
        serve_cached(j);
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

/* An upper bound of the first model call's cost, for a tenant's budget reservation: the
 * draft's, plus a direct refinement's when pre-routing may skip the draft. */
static double draft_bound(const struct pipe_job *j)
{
    const struct model_cfg *r = &j->cfg->refine;
    double b;
    if (!j->cfg->tenants)
        return 0;
    b = cost_bound(&j->cfg->draft, prompt_bytes(&j->cfg->draft, j->req, NULL));
    if (router_pre_route(j->cfg->router)) {
        char *user = job_render_prompt(r->prompt_direct, j->req, NULL);
        size_t n = user ? strlen(user) + (r->prompt_system ? strlen(r->prompt_system) : 0) : 0;
        free(user);
        b += cost_bound(r, n);
    }
    return b;
}

/* 1 when no endpoint of m waits for a call slot. */
static int slot_free(const struct model_cfg *m)
{
    for (int k = 0; k < ups_count(m); k++)
        if (ups_endpoint(m, k)->max_concurrency > 0)
            return 0;
    return 1;
}

int pipe_starts_free(const struct bd_config *cfg, const struct job_req *req)
{
    return gate_passes(cfg, req) && slot_free(&cfg->draft) &&
           (!router_pre_route(cfg->router) || slot_free(&cfg->refine));
}

int pipe_start(struct pipeline *p, struct pipe_job *j)
{
    int rc;
    j->p = p;
    j->draft_ep = j->refine_ep = -1;
    acct_init(&j->acct);
    j->acct.queue_ms = j->queue_ms;
    j->call.ttft_ms = -1;
    j->t_start = uv_hrtime();
    j->t_loop = uv_now(p->svc->loop);
    j->deadline_ms = j->t_loop + (uint64_t)j->cfg->job_timeout_ms;
    j->gate.g = p->gate;
    j->gate.cfg = j->cfg;
    j->gate.req = j->req;
    j->gate.job_id = j->id ? j->id : "";
    j->gate.data = j;
    rc = gate_begin(&j->gate, draft_bound(j), on_gate);
    if (rc < 0)
        return defer(j, NULL); /* Redis is out: the job waits */
    return rc == 1 ? 0 : begin_models(j);
}

/* A copy of meta's string member name if ok() accepts it, else NULL. */
static char *meta_member(const cJSON *meta, const char *name, int (*ok)(const char *))
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, name);
    return cJSON_IsString(v) && ok(v->valuestring) ? strdup(v->valuestring) : NULL;
}

static int parent_ok(const char *s)
{
    return trace_parent_ok(s, NULL) && strncmp(s, "00-", 3) == 0;
}

void pipe_trace_meta(struct pipe_job *j, const char *meta_text)
{
    cJSON *meta = meta_text ? cJSON_Parse(meta_text) : NULL;
    j->request_id = meta_member(meta, "request_id", trace_request_id_ok);
    j->traceparent = meta_member(meta, "traceparent", parent_ok);
    j->tracestate = j->traceparent ? meta_member(meta, "tracestate", trace_state_ok) : NULL;
    cJSON_Delete(meta);
}

void pipe_cancel(struct pipe_job *j)
{
    if (gate_busy(&j->gate)) {
        gate_cancel(&j->gate);
        finish(j, PIPE_CANCELED);
        return;
    }
    if (j->waits > 0) {
        slots_give(&j->slot);
        if (j->listen)
            j->listen->j = NULL;
        j->listen = NULL;
        j->waits = 0;
        finish(j, PIPE_CANCELED);
        return;
    }
    if (pipe_busy(j))
        mc_call_cancel(&j->call);
}

int pipe_busy(const struct pipe_job *j)
{
    return j->waits > 0 || j->call.att != NULL || j->call.backoff != NULL ||
           gate_busy(&j->gate);
}

void pipe_job_free(struct pipe_job *j)
{
    gate_job_free(&j->gate);
    slots_give(&j->slot);
    mc_call_reset(&j->call);
    free(j->url);
    free(j->body);
    free(j->hdrs);
    free(j->hdr_id);
    free(j->hdr_tp);
    free(j->hdr_ts);
    free(j->request_id);
    free(j->traceparent);
    free(j->tracestate);
    j->hdrs = NULL;
    j->hdr_id = j->hdr_tp = j->hdr_ts = NULL;
    j->request_id = j->traceparent = j->tracestate = NULL;
    free(j->draft);
    free(j->brief);
    free(j->refine_err);
    j->refine_err = NULL;
    free(j->route);
    j->route = NULL;
    free(sbuf_take(&j->sent));
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
    cJSON_AddStringToObject(r, "model", stage_endpoint(j, j->refined)->name);
    cJSON_AddBoolToObject(r, "refined", j->refined);
    cJSON_AddBoolToObject(r, "degraded", j->degraded);
    if (j->draft)
        cJSON_AddStringToObject(r, "draft", j->draft);
    else
        cJSON_AddNullToObject(r, "draft"); /* pre-routed: the refine model wrote from the text */
    if (j->degraded)
        cJSON_AddStringToObject(r, "refine_error", pipe_refine_err(j));
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

/* usage.<stage>.endpoint: the base_url (without credentials or query) of the endpoint that
 * answered, and usage.<stage>.model when its name is not the model's. */
static void add_endpoints(const struct pipe_job *j, cJSON *out)
{
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(out, "usage");
    for (int refine = 0; refine < 2; refine++) {
        cJSON *u = cJSON_GetObjectItemCaseSensitive(usage, refine ? "refine" : "draft");
        const struct model_cfg *m = refine ? &j->cfg->refine : &j->cfg->draft;
        const struct model_cfg *ep = stage_endpoint(j, refine);
        char where[2100];
        if (!u || (refine ? j->refine_ep : j->draft_ep) < 0)
            continue;
        url_redact(ep->base_url, where, sizeof(where));
        cJSON_AddStringToObject(u, "endpoint", where);
        if (strcmp(ep->name, m->name) != 0)
            cJSON_AddStringToObject(u, "model", ep->name);
    }
}

void pipe_add_signals(const struct pipe_job *j, cJSON *obj)
{
    if (obj && (j->draft || j->brief))
        cJSON_AddItemToObject(obj, "signals", signals_json(j));
}

cJSON *pipe_out_json(const struct pipe_job *j, const char *status, int signals)
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
        cJSON_AddItemToObject(out, "route", route_result_json(j->route));
    acct_to_json(&j->acct, out);
    add_endpoints(j, out);
    if (j->error)
        cJSON_AddItemToObject(out, "error", cJSON_Duplicate(j->error, 1));
    cJSON_AddStringToObject(out, "config_version", j->cfg->version);
    if (signals)
        pipe_add_signals(j, out);
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
    s.draft_model = stage_endpoint(j, 0)->name;
    s.refine_model = stage_endpoint(j, 1)->name;
    s.draft_fallback = j->draft && j->draft_ep > 0 ? j->draft_ep : 0;
    s.refine_fallback = j->refined && j->refine_ep > 0 ? j->refine_ep : 0;
    s.acct = &j->acct;
    s.route = j->routed ? j->route : NULL;
    s.source = j->req ? job_req_meta(j->req, "source") : NULL;
    s.tenant = j->req ? job_req_meta(j->req, "tenant") : NULL;
    s.finished_ms = clock_wall_ms();
    return stats_delta_of(&s, out);
}
