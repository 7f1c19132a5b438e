/* shadow.c - shadow judging of sampled finished jobs: the missing brief, the judge, quality. */
#include "shadow.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "bderr.h"
#include "breaker.h"
#include "clock.h"
#include "config.h"
#include "hash.h"
#include "job.h"
#include "jsonx.h"
#include "judge.h"
#include "list.h"
#include "log.h"
#include "mclient.h"
#include "pipeline.h"
#include "slots.h"
#include "stats.h"
#include "store.h"
#include "svc.h"

#define SAMPLE_SALT 0x73686164ull     /* "shad": sampling is independent of other hashes */
#define EST_MIN_BUSY_MS 1000.0        /* busy time an estimate assumes per call, at least */
#define EST_PROMPT_SLACK 64           /* characters of a prompt besides texts and templates */

enum { SIDE_DRAFT = 0, SIDE_REFINE = 1 };

struct shadow_task;

/* One model call of a task: the missing brief, or one side's judgement. */
struct scall {
    struct shadow_task *t;
    const struct model_cfg *m;
    int side;                       /* which brief it writes or judges */
    struct mc_call call;
    char *body, *url;
    size_t chars;
    struct slot_wait slot;
    int waiting;                    /* waiting for a slot */
    int active;                     /* the call is out (its callback will run) */
    void (*done)(struct scall *c, int status);
};

struct shadow_task {
    struct shadow *sh;
    struct list_node node;          /* sh->tasks */
    struct bd_config *cfg;          /* the job's (a reference) */
    char id[JOB_ID_LEN + 1];
    struct job_req req;
    char *text[2];                  /* the draft and the refined brief (job's or written here) */
    int served;                     /* SIDE_*: what the job returned */
    int kept, refined;              /* routing kept the draft / refined and served it */
    double total_ms;
    char source[80], tenant[80];
    int64_t finished_ms;
    int started, reserving, canceled;
    int64_t day_ms;
    double reserved, cost;
    struct scall brief;             /* the missing brief (side = the side it writes) */
    struct scall judge[2];
    struct judgement jd[2];
    int judged[2];                  /* a judge call answered for that side */
    int pending;                    /* judge calls out */
    int wrote;                      /* 1 + the side of the brief written here, or 0 */
    char why[400];                  /* the first reason a side is null */
};

struct shadow {
    struct svc *svc;
    struct breaker judge_br;
    struct list_node tasks;
    unsigned n_tasks;               /* taken, not ended */
    unsigned n_started;             /* of which started */
    int closing;
    int held;                       /* closing is walking the tasks or calling close_cb */
    void (*close_cb)(void *);
    void *close_data;
};

int shadow_new(struct svc *svc, struct shadow **out)
{
    struct shadow *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return BD_ENOMEM;
    sh->svc = svc;
    list_init(&sh->tasks);
    *out = sh;
    return 0;
}

/* --- ending --- */

/* Closing: cb once nothing started is left, the memory once no task is left. Not while
 * shadow_close walks the tasks or cb runs (held): both may end tasks. */
static void maybe_closed(struct shadow *sh)
{
    void (*cb)(void *) = sh->close_cb;
    if (!sh->closing || sh->held)
        return;
    if (sh->n_started == 0 && cb) {
        sh->close_cb = NULL;
        sh->held = 1;
        cb(sh->close_data);
        sh->held = 0;
    }
    if (sh->n_tasks == 0)
        free(sh);
}

static void scall_free(struct scall *c)
{
    slots_give(&c->slot);
    mc_call_reset(&c->call);
    free(c->body);
    free(c->url);
    c->body = c->url = NULL;
}

static void task_end(struct shadow_task *t)
{
    struct shadow *sh = t->sh;
    list_unlink(&t->node);
    sh->n_tasks--;
    if (t->started)
        sh->n_started--;
    scall_free(&t->brief);
    scall_free(&t->judge[0]);
    scall_free(&t->judge[1]);
    job_req_free(&t->req);
    free(t->text[0]);
    free(t->text[1]);
    config_unref(t->cfg);
    free(t);
    if (sh->closing)
        maybe_closed(sh);
}

/* A sampled job not evaluated: counted under reason. */
static void skip(struct shadow_task *t, const char *reason)
{
    struct stats_delta d;
    stats_skip_delta(reason, t->finished_ms, &d);
    store_stats_add(t->sh->svc->store, &d);
    log_debug("shadow: %s not evaluated (%s)", t->id, reason);
    task_end(t);
}

/* --- taking a job --- */

static int sampled(const char *id, double rate)
{
    return hash_unit(hash_fnv1a64_str(HASH_FNV1A64_INIT, id) ^ SAMPLE_SALT) < rate;
}

static void label_copy(char *out, size_t n, const char *v)
{
    snprintf(out, n, "%s", v ? v : "");
}

static struct shadow_task *task_new(struct shadow *sh, const struct pipe_job *pj,
                                    const char *id, const char *req_json)
{
    struct shadow_task *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (job_req_from_json(req_json, strlen(req_json), &t->req) != 0)
        goto fail;
    t->text[SIDE_DRAFT] = pj->draft ? strdup(pj->draft) : NULL;
    t->text[SIDE_REFINE] = pj->refined && pj->brief ? strdup(pj->brief) : NULL;
    if ((pj->draft && !t->text[SIDE_DRAFT]) || (pj->refined && pj->brief && !t->text[SIDE_REFINE]))
        goto fail;
    t->sh = sh;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->served = pj->refined ? SIDE_REFINE : SIDE_DRAFT;
    t->kept = pj->routed && !pj->route->refine && !pj->refined;
    t->refined = pj->routed && pj->route->refine && pj->refined;
    t->total_ms = pj->acct.total_ms;
    label_copy(t->source, sizeof(t->source), job_req_meta(&t->req, "source"));
    label_copy(t->tenant, sizeof(t->tenant), job_req_meta(&t->req, "tenant"));
    t->cfg = config_ref(pj->cfg);
    return t;
fail:
    job_req_free(&t->req);
    free(t->text[0]);
    free(t->text[1]);
    free(t);
    return NULL;
}

struct shadow_task *shadow_take(struct shadow *sh, const struct pipe_job *pj, const char *id,
                                const char *req_json, int64_t finished_ms)
{
    struct shadow_task *t;
    if (!sh || sh->closing || !sampled(id, pj->cfg->eval_shadow_rate) || pj->gate.cached ||
        (!pj->draft && !pj->brief))
        return NULL; /* not sampled; or a copy from the exact cache: no model wrote it */
    t = task_new(sh, pj, id, req_json);
    if (!t)
        return NULL;
    t->finished_ms = finished_ms;
    list_push_back(&sh->tasks, &t->node);
    sh->n_tasks++;
    if (sh->n_tasks > (unsigned)sh->svc->cfg->eval_max_in_flight) {
        skip(t, "busy");
        return NULL;
    }
    return t;
}

void shadow_drop(struct shadow_task *t)
{
    if (t)
        task_end(t);
}

/* --- model calls --- */

static void on_call(struct mc_call *call, int status)
{
    struct scall *c = call->data;
    c->active = 0;
    slots_give(&c->slot);
    c->done(c, status);
}

static int call_go(struct scall *c)
{
    struct shadow_task *t = c->t;
    mc_call_reset(&c->call);
    c->call.data = c;
    c->call.url = c->url;
    c->call.body = c->body;
    config_model_call(&c->call, c->m);
    c->call.prompt_chars = c->chars;
    c->call.deadline_ms = uv_now(t->sh->svc->loop) + (uint64_t)t->cfg->job_timeout_ms;
    c->call.ttft_ms = -1;
    if (mc_call_start(t->sh->svc->mc, &c->call, on_call) != 0)
        return BD_ENOMEM;
    c->active = 1;
    return 0;
}

static void on_slot(struct slot_wait *w, int status)
{
    struct scall *c = w->data;
    (void)status;
    c->waiting = 0;
    if (call_go(c) != 0)
        c->done(c, BD_ENOMEM);
}

/* Start c (body and model set): now, or once a slot of its model is free. 0, or an error
 * (done will not run). */
static int call_start(struct scall *c)
{
    c->url = config_model_url(c->m, "/chat/completions");
    if (!c->body || !c->url)
        return BD_ENOMEM;
    if (c->m->max_concurrency <= 0)
        return call_go(c);
    c->slot.data = c;
    if (pipeline_slot_take(c->t->sh->svc->pipe, c->m, PRIO_LOW, &c->slot, on_slot) != 0)
        return BD_ENOMEM;
    c->waiting = 1;
    return 0;
}

/* What c cost (evaluation spend): tokens when it answered, busy time either way. */
static double call_cost(const struct scall *c, int status)
{
    return acct_cost(c->m, status == 0 ? c->call.res.prompt_tokens : 0,
                     status == 0 ? c->call.res.completion_tokens : 0, c->call.busy_ms);
}

static void note_why(struct shadow_task *t, const char *what, const struct scall *c)
{
    if (!t->why[0])
        snprintf(t->why, sizeof(t->why), "%.40s: %.250s (%s after %d attempts)", what,
                 c->call.err[0] ? c->call.err : "no answer", mc_fail_name(c->call.fail),
                 c->call.attempts);
}

/* --- the quality object --- */

static int s3_of(const struct judgement *j)
{
    return j->valid ? j->coherence + j->faithfulness + j->brevity : 0;
}

static cJSON *side_json(const struct judgement *j)
{
    cJSON *o;
    if (!j->valid)
        return cJSON_CreateNull();
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "coherence", j->coherence);
    cJSON_AddNumberToObject(o, "faithfulness", j->faithfulness);
    cJSON_AddNumberToObject(o, "brevity", j->brevity);
    jsonx_add_number(o, "overall", j->overall);
    cJSON_AddStringToObject(o, "rationale", j->rationale);
    return o;
}

/* The brief written here: {"side", "model", "text"}, or null. */
static cJSON *shadow_brief_json(const struct shadow_task *t)
{
    cJSON *o;
    int side = t->wrote - 1;
    if (!t->wrote)
        return cJSON_CreateNull();
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "side", side == SIDE_REFINE ? "refine" : "draft");
    cJSON_AddStringToObject(o, "model", t->brief.m->name);
    cJSON_AddStringToObject(o, "text", t->text[side]);
    return o;
}

/* {"draft", "refine", "gap", "served", "judge", "source", "evaluation_usd", "judged_at",
 * "shadow_brief", "error"} (docs/API.md#quality). */
static char *quality_text(const struct shadow_task *t)
{
    const struct judgement *d = &t->jd[SIDE_DRAFT], *r = &t->jd[SIDE_REFINE];
    cJSON *q = cJSON_CreateObject();
    char ts[40], *text;
    if (!q)
        return NULL;
    clock_iso8601(clock_wall_ms(), ts, sizeof(ts));
    cJSON_AddItemToObject(q, "draft", side_json(d));
    cJSON_AddItemToObject(q, "refine", side_json(r));
    if (d->valid && r->valid) /* refine.overall - draft.overall, in thirds: exact */
        jsonx_add_number(q, "gap", (double)(s3_of(r) - s3_of(d)) / 3.0);
    else
        cJSON_AddNullToObject(q, "gap");
    cJSON_AddStringToObject(q, "served", t->served == SIDE_REFINE ? "refine" : "draft");
    cJSON_AddStringToObject(q, "judge", t->cfg->judge.name);
    cJSON_AddStringToObject(q, "source", "shadow");
    jsonx_add_number(q, "evaluation_usd", t->cost);
    cJSON_AddStringToObject(q, "judged_at", ts);
    cJSON_AddItemToObject(q, "shadow_brief", shadow_brief_json(t));
    if (t->why[0])
        cJSON_AddStringToObject(q, "error", t->why);
    else
        cJSON_AddNullToObject(q, "error");
    text = jsonx_print(q);
    cJSON_Delete(q);
    return text;
}

/* Every call is over: store the quality with its statistics, settle the budget. */
static void task_finish(struct shadow_task *t)
{
    struct svc *svc = t->sh->svc;
    struct stats_quality sq;
    struct stats_delta d;
    char *text = quality_text(t);
    memset(&sq, 0, sizeof(sq));
    sq.draft_s3 = s3_of(&t->jd[SIDE_DRAFT]);
    sq.refine_s3 = s3_of(&t->jd[SIDE_REFINE]);
    sq.served_refine = t->served == SIDE_REFINE;
    sq.kept = t->kept;
    sq.refined = t->refined;
    sq.draft_model = t->cfg->draft.name;
    sq.refine_model = t->cfg->refine.name;
    sq.cost_usd = t->cost;
    sq.source = t->source[0] ? t->source : NULL;
    sq.tenant = t->tenant[0] ? t->tenant : NULL;
    sq.finished_ms = t->finished_ms;
    stats_quality_delta(&sq, &d);
    if (!text || store_set_quality(svc->store, t->id, text, &d, NULL, NULL) != 0)
        log_warn("shadow: the quality of %s could not be stored", t->id);
    if (t->reserved > 0)
        store_eval_settle(svc->store, t->day_ms, t->cost - t->reserved);
    log_debug("shadow: %s judged (draft %d, refine %d; %.3g USD)", t->id, sq.draft_s3,
              sq.refine_s3, t->cost);
    free(text);
    task_end(t);
}

/* --- judging --- */

static void on_judged(struct scall *c, int status)
{
    struct shadow_task *t = c->t;
    struct breaker *b = &t->sh->judge_br;
    t->cost += call_cost(c, status);
    if (status != BD_ECANCELED)
        breaker_record(b, status == 0, uv_now(t->sh->svc->loop), c->m->breaker_failures);
    if (status == 0) {
        judge_parse(c->call.res.content, c->call.res.content_len, &t->jd[c->side]);
        t->judged[c->side] = 1;
        if (!t->jd[c->side].valid && !t->why[0])
            snprintf(t->why, sizeof(t->why), "%s judgement: %s",
                     c->side == SIDE_DRAFT ? "draft" : "refine", t->jd[c->side].why);
    } else {
        note_why(t, c->side == SIDE_DRAFT ? "draft judge call" : "refine judge call", c);
    }
    if (--t->pending > 0)
        return;
    if (t->canceled)
        task_end(t);
    else
        task_finish(t);
}

static int start_judge(struct shadow_task *t, int side)
{
    struct scall *c = &t->judge[side];
    c->t = t;
    c->side = side;
    c->m = &t->cfg->judge;
    c->done = on_judged;
    c->body = judge_build_request(c->m, t->req.text, t->req.text_len, t->req.max_words,
                                  t->text[side], &c->chars);
    return call_start(c);
}

static void judge_all(struct shadow_task *t)
{
    t->pending = 1; /* held until both are out */
    for (int side = SIDE_DRAFT; side <= SIDE_REFINE; side++) {
        if (!t->text[side])
            continue;
        if (start_judge(t, side) == 0)
            t->pending++;
        else if (!t->why[0])
            snprintf(t->why, sizeof(t->why), "the judge call could not start");
    }
    if (--t->pending == 0)
        task_finish(t);
}

/* --- the missing brief --- */

static void on_brief(struct scall *c, int status)
{
    struct shadow_task *t = c->t;
    t->cost += call_cost(c, status);
    if (status == BD_ECANCELED || t->canceled) {
        task_end(t);
        return;
    }
    if (status == 0 && c->call.res.content && c->call.res.content[0])
        t->text[c->side] = strdup(c->call.res.content);
    if (t->text[c->side])
        t->wrote = 1 + c->side;
    if (!t->text[c->side])
        note_why(t, c->side == SIDE_DRAFT ? "shadow draft" : "shadow refinement", c);
    judge_all(t);
}

/* The brief the job did not serve: the refinement of its draft, or (pre-routed) a draft. */
static int start_brief(struct shadow_task *t)
{
    struct scall *c = &t->brief;
    int side = t->text[SIDE_REFINE] ? SIDE_DRAFT : SIDE_REFINE;
    char *user;
    c->t = t;
    c->side = side;
    c->m = side == SIDE_DRAFT ? &t->cfg->draft : &t->cfg->refine;
    c->done = on_brief;
    user = job_render_prompt(c->m->prompt_user, &t->req, side == SIDE_DRAFT ? NULL
                                                                            : t->text[SIDE_DRAFT]);
    if (!user)
        return BD_ENOMEM;
    c->chars = strlen(user) + (c->m->prompt_system ? strlen(c->m->prompt_system) : 0);
    c->body = oai_build_request(c->m->name, c->m->prompt_system, user, c->m->max_tokens,
                                c->m->temperature, c->m->stream, c->m->logprobs);
    free(user);
    return call_start(c);
}

static int needs_brief(const struct shadow_task *t)
{
    return !t->text[SIDE_DRAFT] || !t->text[SIDE_REFINE];
}

static void run(struct shadow_task *t)
{
    if (!needs_brief(t)) {
        judge_all(t);
        return;
    }
    if (start_brief(t) != 0) {
        snprintf(t->why, sizeof(t->why), "the shadow brief call could not start");
        judge_all(t);
    }
}

/* --- starting: breakers, then the budget --- */

/* An upper estimate of what the evaluation costs: prompts of about chars / 4 tokens, every
 * completion at max_tokens, per-hour prices for the job's own latency per call. */
/* Characters of a prompt of m around the texts (its system message and user template). */
static size_t prompt_overhead(const struct model_cfg *m)
{
    return (m->prompt_system ? strlen(m->prompt_system) : 0) + strlen(m->prompt_user) +
           EST_PROMPT_SLACK;
}

static double estimate(const struct shadow_task *t)
{
    const struct bd_config *c = t->cfg;
    double busy = t->total_ms > EST_MIN_BUSY_MS ? t->total_ms : EST_MIN_BUSY_MS, e = 0;
    size_t doc = t->req.text_len + (t->req.instructions ? strlen(t->req.instructions) : 0);
    for (int side = SIDE_DRAFT; side <= SIDE_REFINE; side++) {
        const struct model_cfg *w = side == SIDE_DRAFT ? &c->draft : &c->refine;
        size_t brief = t->text[side] ? strlen(t->text[side]) : (size_t)w->max_tokens * 4;
        size_t other = t->text[SIDE_DRAFT] ? strlen(t->text[SIDE_DRAFT]) : 0;
        if (!t->text[side]) /* the brief written here (a refinement reads the draft) */
            e += acct_cost(w, (long)((doc + other + prompt_overhead(w)) / 4 + 1), w->max_tokens,
                           busy);
        e += acct_cost(&c->judge, (long)((doc + brief + prompt_overhead(&c->judge)) / 4 + 1),
                       c->judge.max_tokens, busy);
    }
    return e;
}

static void on_reserved(void *data, int status, int applied)
{
    struct shadow_task *t = data;
    t->reserving = 0;
    if (t->canceled) {
        if (status == 0 && applied)
            store_eval_settle(t->sh->svc->store, t->day_ms, -t->reserved);
        task_end(t);
        return;
    }
    if (status != 0 || !applied) {
        t->reserved = 0;
        skip(t, "budget");
        return;
    }
    run(t);
}

static int breakers_open(const struct shadow_task *t)
{
    const struct shadow *sh = t->sh;
    const struct pipeline *p = sh->svc->pipe;
    uint64_t now = uv_now(sh->svc->loop);
    if (!breaker_would_allow(&sh->judge_br, now, t->cfg->judge.breaker_open_ms))
        return 1;
    if (!needs_brief(t))
        return 0;
    /* the missing brief is asked of the model's own endpoint, never of a fallback */
    return !pipeline_endpoint_allows(p, t->text[SIDE_REFINE] ? &t->cfg->draft : &t->cfg->refine);
}

void shadow_start(struct shadow_task *t)
{
    struct shadow *sh = t->sh;
    double budget = t->cfg->eval_daily_budget_usd;
    if (sh->closing || sh->svc->stopping) {
        task_end(t);
        return;
    }
    t->started = 1;
    sh->n_started++;
    if (breakers_open(t)) {
        skip(t, "breaker");
        return;
    }
    if (budget < 0) {
        run(t);
        return;
    }
    t->day_ms = clock_wall_ms();
    t->reserved = estimate(t);
    if (store_eval_reserve(sh->svc->store, t->day_ms, t->reserved, budget, on_reserved, t) != 0) {
        t->reserved = 0;
        skip(t, "budget");
        return;
    }
    t->reserving = 1;
}

void shadow_stored(void *task, int status, int applied)
{
    if (status == 0 && applied)
        shadow_start(task);
    else
        shadow_drop(task);
}

/* --- closing --- */

/* Cancel what t has out: it ends now, or in the callback of its last call canceled (or
 * when the store answers its reservation). t may be freed when this returns. */
static void cancel_task(struct shadow_task *t)
{
    int b, a0, a1;
    t->canceled = 1;
    if (t->reserving)
        return;
    for (int side = SIDE_DRAFT; side <= SIDE_REFINE; side++) {
        if (t->judge[side].waiting) { /* leave the slot's line: that call never starts */
            slots_give(&t->judge[side].slot);
            t->judge[side].waiting = 0;
            t->pending--;
        }
    }
    if (t->brief.waiting) {
        slots_give(&t->brief.slot);
        t->brief.waiting = 0;
    }
    b = t->brief.active;
    a0 = t->judge[SIDE_DRAFT].active;
    a1 = t->judge[SIDE_REFINE].active;
    if (!b && !a0 && !a1) {
        task_end(t);
        return;
    }
    if (b) {
        mc_call_cancel(&t->brief.call); /* on_brief ends t */
        return;
    }
    if (a0)
        mc_call_cancel(&t->judge[SIDE_DRAFT].call); /* ends t unless a1 */
    if (a1)
        mc_call_cancel(&t->judge[SIDE_REFINE].call);
}

void shadow_close(struct shadow *sh, void (*cb)(void *data), void *data)
{
    struct list_node *it, *tmp;
    sh->closing = 1;
    sh->close_cb = cb;
    sh->close_data = data;
    sh->held = 1;
    LIST_FOR_EACH_SAFE(it, tmp, &sh->tasks) {
        struct shadow_task *t = LIST_ENTRY(it, struct shadow_task, node);
        if (t->started && !t->canceled)
            cancel_task(t); /* may free t (the iteration holds the next one) */
    }
    sh->held = 0;
    maybe_closed(sh);
}
