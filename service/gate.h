/* gate.h - what a job passes on its way to and from the models, kept in Redis through the
 * store: the exact cache (docs/API.md#the-exact-cache) and the tenant's limits that need
 * the job itself (docs/CONFIG.md#tenants: the daily budget's reservations, the refine-rate
 * figures). The pipeline calls it around the model calls; the router decides from the
 * figures it hands over.
 *
 * Before the draft (gate_begin):
 *   1. cache.ttl_s > 0: the job's entry is looked up. A hit ends the job (GATE_CACHED) with
 *      a copy of the result. A miss takes the entry's lock, so identical jobs arriving
 *      meanwhile wait for this one (polling, at most half the job timeout) and copy its
 *      result instead of calling the models (single flight). A lock whose job died expires
 *      with the job's deadline; a waiter that waited too long runs the models itself.
 *   2. the tenant has a daily_budget_usd: an upper bound of the draft's cost is reserved
 *      atomically across all processes. Today's spend at the budget: GATE_REFUSED. The
 *      other jobs' reservations filling what is left: the job polls until they settle (at
 *      most half the job timeout, then GATE_REFUSED).
 *   3. the tenant has a max_refine_rate: its figures are refreshed (at most every second,
 *      while the draft runs; the decision uses them if they are at most 30 s old).
 * Before a refinement (gate_refine): the reservation is extended by the refinement's upper
 * bound if spend and every reservation stay within the budget; else the refinement is held
 * back (guard:tenant_budget) and the reservation shrinks to the draft's real cost.
 * After the job (gate_end): a successful, non-degraded job that no guard held back leaves
 * its result in the cache and releases the lock. The reservation is settled by the store's
 * finish script (the job's real cost is added to the tenant's spend today).
 *
 * Ownership: struct gate belongs to the pipeline (gate_new / gate_free, once no job uses it).
 * struct gate_job is embedded in the caller's job: the caller keeps cfg, req and job_id valid
 * until the job ends. A callback runs exactly once per call that returned 1, never from
 * inside that call; gate_cancel makes sure it never runs. cached_result belongs to the
 * gate_job until gate_job_free. */
#ifndef BRIEFD_GATE_H
#define BRIEFD_GATE_H

#include <stdint.h>

#include "cache.h"
#include "job.h"

struct bd_config;
struct cJSON;
struct gate;
struct gate_op;
struct guard_input;
struct svc;
struct tenant_limits;

enum gate_verdict {
    GATE_RUN = 0,           /* call the models */
    GATE_CACHED,            /* answered from the cache: cached_result, cached_from */
    GATE_REFUSED,           /* the tenant's budget is spent: refused with refusal[] */
    GATE_RETRY,             /* Redis failed: try the job again later */
};

struct gate_job;
typedef void (*gate_cb)(struct gate_job *gj, enum gate_verdict v);
/* Extended (ok 1) or held back (ok 0; detail says why, for the guard's verdict). */
typedef void (*gate_refine_cb)(struct gate_job *gj, int ok);

struct gate_job {
    /* inputs (gate_begin) */
    struct gate *g;
    const struct bd_config *cfg;
    const struct job_req *req;
    const char *job_id;
    void *data;                         /* the caller's */
    /* what the gate found */
    const char *tenant;                 /* metadata.tenant, or NULL */
    const struct tenant_limits *lim;    /* its limits, or NULL */
    int cache_lookup;                   /* looked up in the cache (a miss unless cached) */
    int cached;
    char cached_from[JOB_ID_LEN + 1];
    struct cJSON *cached_result;
    char refusal[240];                  /* GATE_REFUSED: the message */
    double spent_usd;                   /* the tenant's spend today, last seen */
    double others_usd;                  /* the other jobs' reservations, last seen */
    double reserved_usd;                /* this job's reservation */
    double refine_bound_usd;            /* gate_refine: the refinement's upper bound */
    char detail[200];                   /* gate_refine held back: why (a verdict detail) */
    /* internal */
    char key[CACHE_KEY_LEN + 1];
    int cache_owner;
    uint64_t wait_until;                /* uv_now bound of a poll */
    unsigned poll_ms;
    struct gate_op *op;                 /* the Redis call or poll in progress, or NULL */
    int in_begin, sync;                 /* inside gate_begin; a verdict reached there (-1) */
    gate_cb cb;
    gate_refine_cb rcb;
};

int gate_new(struct svc *svc, struct gate **out);
void gate_free(struct gate *g);

/* 1 when gate_begin lets a job of req under cfg through at once with no Redis call (no
 * exact cache to look in, no budget of its tenant to reserve). */
int gate_passes(const struct bd_config *cfg, const struct job_req *req);
/* Start gj (inputs set, the rest zeroed) with draft_bound_usd, an upper bound of the
 * draft's cost. Returns 0: nothing to wait for, call the models now (cb never runs); 1: cb
 * runs later with the verdict; < 0: Redis is not reachable (cb never runs). */
int gate_begin(struct gate_job *gj, double draft_bound_usd, gate_cb cb);
/* The tenant's figures for the router (the tenant rate and budget guards of guard_input),
 * with this job's draft cost so far (draft_cost_usd) and its refinement's upper bound. */
void gate_guard_input(const struct gate_job *gj, double draft_cost_usd,
                      double refine_bound_usd, struct guard_input *in);
/* Before a refinement the router decided: 0 nothing to reserve (go on, cb never runs), 1
 * cb runs later, -1 the reservation could not be asked for (hold the refinement back:
 * detail says why; cb never runs). */
int gate_refine(struct gate_job *gj, double draft_cost_usd, double refine_bound_usd,
                gate_refine_cb cb);
/* The job ended: succeeded and cacheable (not degraded, no guard held it back), leave
 * result in the cache; in any case release the cache lock. */
void gate_end(struct gate_job *gj, int cacheable, const struct cJSON *result);
/* 1 while a Redis call or a poll of gj is pending. */
int gate_busy(const struct gate_job *gj);
/* Drop what is pending: its callback will not run. */
void gate_cancel(struct gate_job *gj);
void gate_job_free(struct gate_job *gj);

#endif
