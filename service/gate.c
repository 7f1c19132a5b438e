/* gate.c - around a job's model calls: the exact cache, single flight, tenant budget, figures. */
#include "gate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "config.h"
#include "log.h"
#include "router.h"
#include "store.h"
#include "svc.h"
#include "tenant.h"

#define FIG_SLOTS 256           /* tenants whose refine figures a process keeps */
#define FIG_REFRESH_MS 1000     /* re-read at most this often... */
#define FIG_STALE_MS 30000      /* ...and not used once this old */
#define POLL_FIRST_MS 25        /* a waiting job asks again after this, doubling... */
#define POLL_MAX_MS 400         /* ...up to this */
#define LOCK_MARGIN_MS 5000     /* a cache lock outlives its job's deadline by this */

/* One tenant's refine figures, read from the shared statistics. */
struct fig {
    char tenant[TENANT_ID_MAX + 1];
    int used, valid, fetching;
    uint64_t at, asked;         /* uv_now of the last answer / request */
    double decided, refined;
};

struct gate {
    struct svc *svc;
    struct fig figs[FIG_SLOTS];
    int pending;                /* figure reads in flight */
    int closing;
};

/* A Redis call or a poll of one job; detached (gj NULL) when the job is canceled. */
struct gate_op {
    struct gate_job *gj;
    uv_timer_t timer;
    int timer_init;
    int in_redis;
};

static void step_cache(struct gate_job *gj);
static void step_budget(struct gate_job *gj);
static void claim(struct gate_job *gj);
static void reserve_draft(struct gate_job *gj);

int gate_new(struct svc *svc, struct gate **out)
{
    struct gate *g = calloc(1, sizeof(*g));
    if (!g)
        return BD_ENOMEM;
    g->svc = svc;
    *out = g;
    return 0;
}

void gate_free(struct gate *g)
{
    if (!g)
        return;
    g->closing = 1;
    if (g->pending == 0)
        free(g);
}

static uint64_t now_ms(const struct gate_job *gj)
{
    return uv_now(gj->g->svc->loop);
}

/* ---- ops ---- */

static void free_op(uv_handle_t *h)
{
    free(h->data);
}

static void op_release(struct gate_op *op)
{
    if (op->timer_init) {
        uv_close((uv_handle_t *)&op->timer, free_op);
        return;
    }
    free(op);
}

static struct gate_op *op_new(struct gate_job *gj)
{
    struct gate_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->gj = gj;
        gj->op = op;
    }
    return op;
}

/* A Redis reply arrived for op: its job, or NULL (then op is gone) when it was canceled. */
static struct gate_job *op_reply(struct gate_op *op)
{
    op->in_redis = 0;
    if (!op->gj) {
        op_release(op);
        return NULL;
    }
    return op->gj;
}

/* The job is done with its op (the next step makes a new one). */
static void op_end(struct gate_job *gj)
{
    struct gate_op *op = gj->op;
    gj->op = NULL;
    if (op)
        op_release(op);
}

/* The verdict of gate_begin: to its callback, or, reached before gate_begin returned (no
 * Redis call was needed or one could not be sent), to gate_begin's return value. */
static void verdict(struct gate_job *gj, enum gate_verdict v)
{
    op_end(gj);
    if (gj->in_begin) {
        gj->sync = (int)v;
        return;
    }
    gj->cb(gj, v);
}

static void on_poll(uv_timer_t *t)
{
    struct gate_op *op = t->data;
    struct gate_job *gj = op->gj;
    if (!gj)
        return;
    if (gj->poll_ms < POLL_MAX_MS)
        gj->poll_ms *= 2;
    if (gj->key[0] && !gj->cache_owner && !gj->cache_lookup)
        claim(gj);
    else
        reserve_draft(gj);
}

/* Ask again after a while (the op stays the job's). */
static void poll_later(struct gate_job *gj)
{
    struct gate_op *op = gj->op;
    if (!op->timer_init) {
        uv_timer_init(gj->g->svc->loop, &op->timer);
        op->timer.data = op;
        op->timer_init = 1;
    }
    uv_timer_start(&op->timer, on_poll, gj->poll_ms, 0);
}

/* ---- the exact cache ---- */

static void cache_hit(struct gate_job *gj, const char *entry, size_t len)
{
    if (cache_value_parse(entry, len, &gj->cached_result, gj->cached_from) != 0) {
        log_warn("cache: an entry of the exact cache could not be read; the job runs");
        gj->cache_lookup = 1;
        step_budget(gj);
        return;
    }
    gj->cached = 1;
    verdict(gj, GATE_CACHED);
}

static void on_claim(void *data, int status, enum store_cache kind, const char *entry,
                     size_t len)
{
    struct gate_job *gj = op_reply(data);
    if (!gj)
        return;
    if (status != 0) { /* the cache is an optimisation: run without it */
        gj->key[0] = '\0';
        step_budget(gj);
    } else if (kind == STORE_CACHE_HIT) {
        cache_hit(gj, entry, len);
    } else if (kind == STORE_CACHE_RUN) {
        gj->cache_owner = 1;
        gj->cache_lookup = 1;
        step_budget(gj);
    } else if (now_ms(gj) >= gj->wait_until) {
        gj->cache_lookup = 1; /* waited long enough for the other job: run */
        step_budget(gj);
    } else {
        poll_later(gj);
    }
}

static void claim(struct gate_job *gj)
{
    long lock = (long)gj->cfg->job_timeout_ms + LOCK_MARGIN_MS;
    gj->op->in_redis = 1;
    if (store_cache_claim(gj->g->svc->store, gj->key, gj->job_id, lock, on_claim, gj->op) != 0) {
        gj->op->in_redis = 0;
        gj->key[0] = '\0';
        step_budget(gj);
    }
}

static void step_cache(struct gate_job *gj)
{
    if (!op_new(gj)) {
        gj->key[0] = '\0';
        step_budget(gj);
        return;
    }
    gj->poll_ms = POLL_FIRST_MS;
    gj->wait_until = now_ms(gj) + (uint64_t)gj->cfg->job_timeout_ms / 2;
    claim(gj);
}

/* ---- the tenant's budget ---- */

static void refuse(struct gate_job *gj, const char *why)
{
    snprintf(gj->refusal, sizeof(gj->refusal),
             "tenant '%.64s' reached its daily budget of %.6g USD (%s); new jobs are refused "
             "until midnight UTC", gj->tenant, gj->lim->daily_budget_usd, why);
    verdict(gj, GATE_REFUSED);
}

static void on_reserved(void *data, int status, enum store_reserve r, double spent,
                        double reserved)
{
    struct gate_job *gj = op_reply(data);
    if (!gj)
        return;
    if (status != 0) {
        verdict(gj, GATE_RETRY);
        return;
    }
    gj->spent_usd = spent;
    if (r == STORE_RESERVED) {
        gj->others_usd = reserved - gj->reserved_usd;
        verdict(gj, GATE_RUN);
    } else if (r == STORE_RESERVE_SPENT) {
        refuse(gj, "spent today");
    } else if (now_ms(gj) >= gj->wait_until) {
        refuse(gj, "the rest is committed to jobs in flight");
    } else {
        poll_later(gj); /* other jobs' reservations fill it: wait for them to settle */
    }
}

static void reserve_draft(struct gate_job *gj)
{
    struct store_reservation rv = {gj->tenant, gj->job_id, gj->reserved_usd,
                                   gj->lim->daily_budget_usd, 0, 0,
                                   gj->cfg->job_timeout_ms};
    gj->op->in_redis = 1;
    if (store_tenant_reserve(gj->g->svc->store, &rv, on_reserved, gj->op) != 0) {
        gj->op->in_redis = 0;
        verdict(gj, GATE_RETRY);
    }
}

static struct fig *fig_find(struct gate *g, const char *tenant);
static void fig_refresh(struct gate_job *gj);

/* After the cache: reserve the draft's bound if the tenant has a budget, else run. */
static void step_budget(struct gate_job *gj)
{
    op_end(gj);
    if (!gj->lim || gj->lim->daily_budget_usd < 0) {
        verdict(gj, GATE_RUN);
        return;
    }
    if (!op_new(gj)) {
        verdict(gj, GATE_RETRY);
        return;
    }
    gj->poll_ms = POLL_FIRST_MS * 4;
    gj->wait_until = now_ms(gj) + (uint64_t)gj->cfg->job_timeout_ms / 2;
    reserve_draft(gj);
}

int gate_passes(const struct bd_config *cfg, const struct job_req *req)
{
    const char *t = job_req_meta(req, "tenant");
    const struct tenant_limits *lim = tenant_limits_of(cfg->tenants, t && *t ? t : NULL, NULL);
    return cfg->cache_ttl_s <= 0 && !(lim && lim->daily_budget_usd >= 0);
}

int gate_begin(struct gate_job *gj, double draft_bound_usd, gate_cb cb)
{
    const struct bd_config *cfg = gj->cfg;
    const char *t = job_req_meta(gj->req, "tenant");
    int cache = cfg->cache_ttl_s > 0, budget;
    gj->cb = cb;
    gj->tenant = t && *t ? t : NULL;
    gj->lim = tenant_limits_of(cfg->tenants, gj->tenant, NULL);
    gj->reserved_usd = draft_bound_usd;
    budget = gj->lim && gj->lim->daily_budget_usd >= 0;
    if (gj->lim && gj->lim->max_refine_rate > 0)
        fig_refresh(gj);
    if (!cache && !budget)
        return 0;
    if (!store_ready(gj->g->svc->store))
        return cache && !budget ? 0 : BD_EREDIS_DOWN;
    if (cache && cache_key(gj->req, gj->tenant, cfg->answer_version, gj->key) != 0)
        gj->key[0] = '\0';
    gj->in_begin = 1;
    gj->sync = -1;
    if (gj->key[0])
        step_cache(gj);
    else
        step_budget(gj);
    gj->in_begin = 0;
    if (gj->sync < 0)
        return 1;
    return gj->sync == GATE_RUN ? 0 : BD_EREDIS_DOWN;
}

/* ---- before a refinement ---- */

static void on_extended(void *data, int status, enum store_reserve r, double spent,
                        double reserved)
{
    struct gate_job *gj = op_reply(data);
    gate_refine_cb cb;
    if (!gj)
        return;
    cb = gj->rcb;
    op_end(gj);
    if (status != 0) {
        snprintf(gj->detail, sizeof(gj->detail),
                 "the tenant's budget could not be checked (Redis); draft kept");
        cb(gj, 0);
        return;
    }
    gj->spent_usd = spent;
    if (r == STORE_RESERVED) {
        gj->others_usd = reserved - gj->reserved_usd - gj->refine_bound_usd;
        gj->reserved_usd += gj->refine_bound_usd;
        cb(gj, 1);
        return;
    }
    gj->others_usd = reserved - gj->reserved_usd;
    snprintf(gj->detail, sizeof(gj->detail),
             "tenant spent today %.6f + reserved by other jobs %.6f + this job up to %.6f USD > "
             "daily budget %g USD; draft kept", spent, gj->others_usd,
             gj->reserved_usd + gj->refine_bound_usd, gj->lim->daily_budget_usd);
    cb(gj, 0);
}

int gate_refine(struct gate_job *gj, double draft_cost_usd, double refine_bound_usd,
                gate_refine_cb cb)
{
    struct store_reservation rv;
    if (!gj->lim || gj->lim->daily_budget_usd < 0)
        return 0;
    gj->rcb = cb;
    gj->reserved_usd = draft_cost_usd;
    gj->refine_bound_usd = refine_bound_usd;
    rv = (struct store_reservation){gj->tenant, gj->job_id, draft_cost_usd + refine_bound_usd,
                                    gj->lim->daily_budget_usd, 1, draft_cost_usd,
                                    gj->cfg->job_timeout_ms};
    if (!op_new(gj) || store_tenant_reserve(gj->g->svc->store, &rv, on_extended, gj->op) != 0) {
        op_end(gj);
        snprintf(gj->detail, sizeof(gj->detail),
                 "the tenant's budget could not be checked (Redis); draft kept");
        return -1;
    }
    gj->op->in_redis = 1;
    return 1;
}

/* ---- the tenant's refine figures ---- */

static struct fig *fig_find(struct gate *g, const char *tenant)
{
    struct fig *spare = NULL, *oldest = NULL;
    for (size_t i = 0; i < FIG_SLOTS; i++) {
        struct fig *f = &g->figs[i];
        if (f->used && strcmp(f->tenant, tenant) == 0)
            return f;
        if (!f->used) {
            spare = spare ? spare : f;
            continue;
        }
        if (!f->fetching && (!oldest || f->asked < oldest->asked))
            oldest = f;
    }
    spare = spare ? spare : oldest;
    if (!spare)
        return NULL;
    memset(spare, 0, sizeof(*spare));
    snprintf(spare->tenant, sizeof(spare->tenant), "%s", tenant);
    spare->used = 1;
    return spare;
}

struct fig_read {
    struct gate *g;
    char tenant[TENANT_ID_MAX + 1];
};

static void on_figures(void *data, int status, const struct store_tenant_figures *f)
{
    struct fig_read *rd = data;
    struct gate *g = rd->g;
    struct fig *slot;
    g->pending--;
    if (g->closing) {
        if (g->pending == 0)
            free(g);
        free(rd);
        return;
    }
    slot = fig_find(g, rd->tenant);
    if (slot) {
        slot->fetching = 0;
        if (status == 0 && f) {
            slot->valid = 1;
            slot->at = uv_now(g->svc->loop);
            slot->decided = f->decided;
            slot->refined = f->refined;
        }
    }
    free(rd);
}

static void fig_refresh(struct gate_job *gj)
{
    struct gate *g = gj->g;
    struct fig *f = fig_find(g, gj->tenant);
    uint64_t now = now_ms(gj);
    struct fig_read *rd;
    if (!f || f->fetching || (f->asked && now - f->asked < FIG_REFRESH_MS) ||
        !store_ready(g->svc->store))
        return;
    rd = calloc(1, sizeof(*rd));
    if (!rd)
        return;
    rd->g = g;
    snprintf(rd->tenant, sizeof(rd->tenant), "%s", gj->tenant);
    if (store_tenant_figures(g->svc->store, gj->tenant, router_guard_window_s(gj->cfg->router),
                             on_figures, rd) != 0) {
        free(rd);
        return;
    }
    f->fetching = 1;
    f->asked = now;
    g->pending++;
}

void gate_guard_input(const struct gate_job *gj, double draft_cost_usd,
                      double refine_bound_usd, struct guard_input *in)
{
    const struct fig *f = NULL;
    if (!gj->lim)
        return;
    for (size_t i = 0; gj->lim->max_refine_rate > 0 && i < FIG_SLOTS && !f; i++)
        if (gj->g->figs[i].used && strcmp(gj->g->figs[i].tenant, gj->tenant) == 0)
            f = &gj->g->figs[i];
    if (f && f->valid && now_ms(gj) - f->at <= FIG_STALE_MS) {
        in->have_tenant_rate = 1;
        in->tenant_max_rate = gj->lim->max_refine_rate;
        in->tenant_decided = f->decided;
        in->tenant_refine_rate = f->decided > 0 ? f->refined / f->decided : 0;
    }
    if (gj->lim->daily_budget_usd >= 0) {
        in->have_tenant_budget = 1;
        in->tenant_budget_usd = gj->lim->daily_budget_usd;
        in->tenant_spent_usd = gj->spent_usd + gj->others_usd + draft_cost_usd;
        in->tenant_est_refine_usd = refine_bound_usd;
    }
}

/* ---- the end ---- */

void gate_end(struct gate_job *gj, int cacheable, const cJSON *result)
{
    char *entry;
    if (!gj->cache_owner)
        return;
    gj->cache_owner = 0;
    entry = cacheable && result ? cache_value(gj->job_id, result) : NULL;
    store_cache_put(gj->g->svc->store, gj->key, gj->job_id, entry, gj->cfg->cache_ttl_s);
    free(entry);
}

int gate_busy(const struct gate_job *gj)
{
    return gj->op != NULL;
}

void gate_cancel(struct gate_job *gj)
{
    struct gate_op *op = gj->op;
    if (!op)
        return;
    gj->op = NULL;
    op->gj = NULL;
    if (!op->in_redis)
        op_release(op);
}

void gate_job_free(struct gate_job *gj)
{
    gate_cancel(gj);
    cJSON_Delete(gj->cached_result);
    gj->cached_result = NULL;
}
