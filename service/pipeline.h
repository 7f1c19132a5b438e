/* pipeline.h - one brief's work: draft with the small model, route, maybe refine with the
 * large model, and account for it (latency, tokens, cost, what it adds to the statistics).
 * No queue and no writes to Redis of its own: the worker runs queued jobs through it, the
 * facade runs its requests through it directly. What the pipeline keeps for the whole
 * process - a circuit breaker per model endpoint (upstream.h), the guards' figures (refreshed
 * from the store every few seconds), a detector of stalls (a process stopped by SIGSTOP or
 * starved) - lives in struct pipeline.
 *
 * A stage calls the first endpoint of its model whose breaker lets it (the model, then its
 * fallbacks, docs/CONFIG.md#fallbacks); when that call fails because the endpoint is out, the
 * next endpoint gets a fresh call. Every call carries the job's request id and a new span of
 * its trace context (trace.h). The stage is priced at the endpoint that answered.
 *
 * Around the model calls, the gate (gate.h) answers a job from the exact cache (no model
 * call: cached), makes identical jobs in flight wait for one another, reserves the tenant's
 * budget and reads the tenant's refine figures.
 *
 * A job ends in one of these ways (on_done):
 *   PIPE_SUCCEEDED  a brief (the draft, the refined brief, the draft kept because the
 *                   refinement failed: degraded, or a copy from the exact cache: cached);
 *   PIPE_FAILED     the job itself cannot be briefed (the draft model refused it, answered
 *                   nothing usable, a corrupt request, its tenant's budget is spent): error
 *                   says why;
 *   PIPE_RETRY      not the job's fault: the draft model is out - every endpoint of it
 *                   (connection refused, timeouts, 5xx, 429 after every retry, breakers
 *                   open) - or the process was stalled past the deadline; the caller puts
 *                   the job back without counting the attempt;
 *   PIPE_CANCELED   pipe_cancel() (shutdown).
 *
 * Pre-routing (routing.pre_route): when the policies that can judge the input alone decide
 * a refinement, the draft is skipped and the refine model writes the brief from the document
 * (models.refine.prompt.direct); if that fails before any text went out, the draft model
 * writes it after all (degraded). route.stage says where routing decided.
 *
 * Streaming: a job with on_text gets the served brief's text as it becomes known - the kept
 * draft once routing decided, the refine model's text as it arrives (the refinement is then
 * streamed whatever models.refine.stream says), the draft when a refinement failed before
 * any text went out. When a refinement fails after text went out (or its final text is not
 * what was streamed), text_broken is set: the job still ends (degraded, keeping the draft),
 * but the stream cannot be completed. With listen_id, text flows only for a refinement that
 * someone listens to (store_listening, asked before it starts); kept drafts are not passed.
 *
 * Model call slots: a model with max_concurrency waits for a slot (slots.h) before each
 * call, in priority order; the wait is its own stage (latency_ms.draft_wait / refine_wait).
 *
 * Ownership: struct pipe_job is the caller's; the caller holds a config reference for the
 * job's life and keeps req valid until on_done. The results (draft, brief, error, acct,
 * route) belong to the job until pipe_job_free(). */
#ifndef BRIEFD_PIPELINE_H
#define BRIEFD_PIPELINE_H

#include <stdint.h>

#include "acct.h"
#include "gate.h"
#include "job.h"
#include "mclient.h"
#include "router.h"
#include "sbuf.h"
#include "slots.h"

struct cJSON;
struct model_cfg;
struct pipeline;
struct stats_delta;
struct svc;

enum pipe_outcome { PIPE_SUCCEEDED = 0, PIPE_FAILED, PIPE_RETRY, PIPE_CANCELED };

struct pipe_job;
typedef void (*pipe_done_cb)(struct pipe_job *j, enum pipe_outcome o);
/* The job entered a stage ("refining"); may be NULL. */
typedef void (*pipe_stage_cb)(struct pipe_job *j, const char *status);

struct pipe_job {
    /* inputs */
    void *data;                     /* the caller's */
    const char *id;                 /* the job's id (the cache's single flight, the tenant's
                                       reservation); kept valid by the caller */
    struct bd_config *cfg;          /* the config it runs under (caller's reference) */
    const struct job_req *req;
    double queue_ms;                /* time spent queued before (negative: none) */
    pipe_done_cb on_done;
    pipe_stage_cb on_stage;
    char *request_id;               /* sent upstream as X-Request-Id, or NULL */
    char *traceparent;              /* the caller's trace context (trace.h: version 00), or
                                       NULL; each call is a new span of it */
    char *tracestate;               /* passed along with it, or NULL (pipe_trace_meta sets
                                       all three; pipe_job_free frees them) */
    /* Text appended to the brief being served (may be NULL; see above). Runs inside a model
     * transfer: it must not cancel the job (defer that). */
    void (*on_text)(struct pipe_job *j, const char *text, size_t len);
    const char *listen_id;          /* with on_text: pass text only if this job is listened to */
    /* results */
    struct job_acct acct;
    struct route_result *route;     /* allocated when routing begins (a job waiting for its
                                       draft holds none); set whenever routed is */
    int routed;
    char *draft;
    int draft_truncated;
    struct lp_summary lp;
    char *brief;                    /* the refined brief, or NULL */
    int refined, degraded;
    char *refine_err;               /* why a degraded job kept its draft (owned; read it with
                                       pipe_refine_err) */
    int draft_ep, refine_ep;        /* the endpoint of the stage's last call (upstream.h: 0 the
                                       model, k its fallback k); -1 before any call */
    struct cJSON *error;            /* PIPE_FAILED: {"code", "message", ...} */
    int direct;                     /* pre-routing decided: the refine model wrote from the text */
    size_t text_sent;               /* bytes passed to on_text */
    int text_broken;                /* text went out, then the refinement failed or changed it */
    struct gate_job gate;           /* cache and tenant state (gate.cached: from the cache) */
    /* internal */
    double refine_bound;            /* an upper bound of the refinement's cost (tenant budget) */
    struct pipeline *p;
    struct mc_call call;
    char *url, *body;
    const char **hdrs;              /* the call's header lines: the endpoint's, then ours */
    char *hdr_id, *hdr_tp, *hdr_ts; /* X-Request-Id, traceparent, tracestate lines */
    struct sbuf sent;               /* the text passed to on_text */
    int text_on;                    /* on_text is live for this stage */
    int text_maybe;                 /* the call streams: on_text may go live during it */
    uint64_t listen_at;             /* uv_now of the last listen question */
    int waits;                      /* a slot and/or the listen answer still awaited */
    struct listen_op *listen;       /* the listen question in flight, or NULL */
    struct slot_wait slot;
    const struct model_cfg *next_m; /* the call waiting to start */
    const char *next_tmpl;
    mc_cb next_cb;
    double *next_wait_ms;
    uint64_t t_wait;
    uint64_t t_start, t_stage;      /* uv_hrtime */
    uint64_t t_stage0;              /* uv_hrtime: the stage's first call, once it fell back */
    uint64_t t_loop;                /* uv_now at start */
    uint64_t deadline_ms;           /* uv_now based */
};

int pipeline_new(struct svc *svc, struct pipeline **out);
/* Stop the pipeline's timer and free it, then cb(data) (jobs must be over). */
void pipeline_close(struct pipeline *p, void (*cb)(void *data), void *data);
/* 1 while the breaker of one of the draft model's endpoints (upstream.h) lets calls through
 * (queued jobs wait otherwise). */
int pipeline_draft_open(const struct pipeline *p);
/* 1 while the circuit breaker of endpoint ep (one of a model's, upstream.h) lets calls
 * through (no side effect). */
int pipeline_endpoint_allows(const struct pipeline *p, const struct model_cfg *ep);
/* Get in line for a call slot of model m (m->max_concurrency > 0) as the pipeline's own calls
 * do (slots.h; leases of workers.claim_idle_ms), for a call made elsewhere (shadow judging),
 * with priority prio. Returns 0 (cb will run; give it back with slots_give) or BD_ENOMEM. */
int pipeline_slot_take(struct pipeline *p, const struct model_cfg *m, int prio,
                       struct slot_wait *w, slot_cb cb);
/* 1 while endpoint ep's circuit breaker is not closed (open, or letting one probe through). */
int pipeline_breaker_open(const struct pipeline *p, const struct model_cfg *ep);

/* Take the request id and trace context stored in a job's metadata text (its request_id,
 * traceparent and tracestate members, docs/API.md#request-ids-and-tracing) into j, copied;
 * members that are absent or not valid are left out. Call before pipe_start. */
void pipe_trace_meta(struct pipe_job *j, const char *meta_text);
/* 1 when a job of req under cfg reaches its first model call with no Redis call on the way
 * (gate_passes; no call slot of models.X.max_concurrency to wait for), and with no use of
 * its id before that call ends: it may start before the job is queued (worker.h). */
int pipe_starts_free(const struct bd_config *cfg, const struct job_req *req);
/* Start j (inputs filled, results zeroed). Returns 0: on_done runs exactly once, never from
 * inside this call. */
int pipe_start(struct pipeline *p, struct pipe_job *j);
/* Cancel a running job: on_done(PIPE_CANCELED) runs before this returns. */
void pipe_cancel(struct pipe_job *j);
/* 1 while a model call of j is in flight or waiting to retry. */
int pipe_busy(const struct pipe_job *j);
/* Free the results. */
void pipe_job_free(struct pipe_job *j);
/* Why a degraded job kept its draft (valid until pipe_job_free). */
const char *pipe_refine_err(const struct pipe_job *j);

/* The finished job's own part of the job object: result, route, usage, cost_usd,
 * latency_ms, error, config_version, and signals unless !signals (caller frees). status is
 * "succeeded" or "failed". */
struct cJSON *pipe_out_json(const struct pipe_job *j, const char *status, int signals);

/* Adds the job's "signals" (what replay re-runs routing on, and checks.h's cheap checks of
 * the brief served) to obj, when it has a brief: the facade adds them once it has answered. */
void pipe_add_signals(const struct pipe_job *j, struct cJSON *obj);
/* What the finished job adds to the statistics (stats.h); 0 or BD_ENOMEM. */
int pipe_stats(const struct pipe_job *j, int succeeded, struct stats_delta *out);

#endif
