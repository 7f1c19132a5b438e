/* acct.c - per-job latency, token and cost accounting. */
#include "acct.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "jsonx.h"

const char *const acct_stage_names[ACCT_STAGES] = {
    "queue", "draft_wait", "draft", "draft_ttft", "route", "refine_wait", "refine", "refine_ttft",
    "total"};

double acct_stage_ms(const struct job_acct *a, int i)
{
    const double v[ACCT_STAGES] = {a->queue_ms,    a->draft_wait_ms,  a->draft_ms,
                                   a->draft_ttft_ms, a->route_ms,      a->refine_wait_ms,
                                   a->refine_ms,   a->refine_ttft_ms, a->total_ms};
    return i >= 0 && i < ACCT_STAGES ? v[i] : -1;
}

void acct_init(struct job_acct *a)
{
    a->queue_ms = a->draft_wait_ms = a->draft_ms = a->draft_ttft_ms = a->route_ms = -1;
    a->refine_wait_ms = -1;
    a->refine_ms = a->refine_ttft_ms = a->total_ms = -1;
    a->draft_busy_ms = a->refine_busy_ms = 0;
    a->draft = (struct stage_usage){0, 0, 0, 0};
    a->refine = (struct stage_usage){0, 0, 0, 0};
    a->cost_draft = a->cost_refine = 0;
}

double acct_cost(const struct model_cfg *m, long prompt_tokens, long completion_tokens,
                 double busy_ms)
{
    double c = ((double)prompt_tokens * m->price_in_per_mtok +
                (double)completion_tokens * m->price_out_per_mtok) / 1e6;
    if (m->price_per_hour > 0)
        c += m->price_per_hour * busy_ms / 3.6e6;
    return c;
}

double acct_cost_bound(const struct model_cfg *m, size_t prompt_bytes)
{
    double busy = (double)m->timeout_ms * (double)m->max_attempts;
    return acct_cost(m, (long)prompt_bytes + ACCT_PROMPT_OVERHEAD, m->max_tokens, busy);
}

void acct_price(struct job_acct *a, const struct model_cfg *draft, const struct model_cfg *refine)
{
    a->cost_draft = a->draft.present ? acct_cost(draft, a->draft.prompt_tokens,
                                                 a->draft.completion_tokens, a->draft_busy_ms)
                                     : 0;
    a->cost_refine = a->refine.present
                         ? acct_cost(refine, a->refine.prompt_tokens,
                                     a->refine.completion_tokens, a->refine_busy_ms)
                         : 0;
}

static void add_usage(cJSON *usage, const char *name, const struct stage_usage *u,
                      double busy_ms)
{
    cJSON *o;
    if (!u->present)
        return;
    o = cJSON_AddObjectToObject(usage, name);
    if (!o)
        return;
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)u->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)u->completion_tokens);
    cJSON_AddBoolToObject(o, "estimated", u->estimated);
    jsonx_add_number(o, "busy_ms", busy_ms);
}

static void add_ms(cJSON *o, const char *name, double ms)
{
    if (ms < 0)
        return;
    cJSON_AddNumberToObject(o, name, round(ms * 1000.0) / 1000.0);
}

void acct_to_json(const struct job_acct *a, cJSON *obj)
{
    cJSON *usage = cJSON_AddObjectToObject(obj, "usage");
    cJSON *cost = cJSON_AddObjectToObject(obj, "cost_usd");
    cJSON *lat = cJSON_AddObjectToObject(obj, "latency_ms");
    if (usage) {
        add_usage(usage, "draft", &a->draft, a->draft_busy_ms);
        add_usage(usage, "refine", &a->refine, a->refine_busy_ms);
    }
    if (cost) {
        if (a->draft.present)
            jsonx_add_number(cost, "draft", a->cost_draft);
        if (a->refine.present)
            jsonx_add_number(cost, "refine", a->cost_refine);
        jsonx_add_number(cost, "total", a->cost_draft + a->cost_refine);
    }
    if (lat) {
        for (int i = 0; i < ACCT_STAGES; i++)
            add_ms(lat, acct_stage_names[i], acct_stage_ms(a, i));
    }
}
