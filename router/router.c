/* router.c - the routing decision: policy chain, any/all/score combination, guards. */
#include "router.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Score mode compares a ratio of sums of weights with a configured threshold: allow for the
 * rounding of those sums (0.1 + 0.2 must reach a threshold of 0.3). */
#define SCORE_EPSILON 1e-9

struct router_policy {
    const struct policy_ops *ops;
    void *state;
    double weight;
};

struct router {
    enum route_mode mode;
    double threshold;            /* score mode: refine when score >= threshold */
    size_t n;
    struct router_policy p[ROUTER_MAX_POLICIES];
    double max_rate;             /* <= 0: no rate guard */
    int window_s;                /* the window the caller measures the rate over */
    double budget;               /* < 0: no daily budget guard */
    long min_samples;            /* decided jobs the rate guards need before they act */
    int pre_route;               /* routing.pre_route */
    size_t n_exempt;
    char exempt[ROUTER_MAX_POLICIES][32]; /* policies whose refinements no guard holds back */
};

static const char *const routing_keys[] = {"mode", "threshold", "policies", "guards",
                                           "pre_route", NULL};
static const char *const guard_keys[] = {"max_refine_rate", "window_s",
                                         "daily_refine_budget_usd", "min_samples",
                                         "exempt_policies", NULL};
/* Indexed like enum route_mode. */
static const char *const mode_names[] = {"any", "all", "score", NULL};
static const enum route_mode mode_values[] = {ROUTE_ANY, ROUTE_ALL, ROUTE_SCORE};
/* The default chain (docs/CONFIG.md), each policy with its own defaults. */
static const char *const default_chain[] = {"length", "topic", "confidence", NULL};

const char *route_mode_name(enum route_mode m)
{
    switch (m) {
    case ROUTE_ANY:
        return "any";
    case ROUTE_ALL:
        return "all";
    case ROUTE_SCORE:
        return "score";
    }
    return "unknown";
}

/* ---- parse ---- */

static int parse_mode(const cJSON *routing, struct router *r, struct cfg_err *err)
{
    int idx = 0;
    int rc = cfg_enum(routing, "routing", "mode", mode_names, &idx, err);

    if (rc == CFG_VALUE)
        r->mode = mode_values[idx];
    return rc < 0 ? -1 : 0;
}

static int parse_threshold(const cJSON *routing, struct router *r, struct cfg_err *err)
{
    double v = 0;
    int rc = cfg_number(routing, "routing", "threshold", 0, &v, err);

    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(v >= 0 && v <= 1))
        return cfg_fail_key(err, "routing", "threshold", "must be in [0, 1]");
    if (rc == CFG_VALUE)
        r->threshold = v;
    return 0;
}

/* Parse one chain entry (conf: the entry object; an empty object for the default chain)
 * into r->p[r->n]; r->n grows only on success. */
static int add_policy(struct router *r, const cJSON *conf, const struct policy_ops *ops,
                      const char *path, struct cfg_err *err)
{
    struct router_policy *p = &r->p[r->n];
    double w = 1;
    int rc = cfg_number(conf, path, "weight", 0, &w, err);

    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(w > 0))
        return cfg_fail_key(err, path, "weight", "must be > 0");
    p->ops = ops;
    p->weight = w;
    p->state = NULL;
    if (ops->parse(conf, path, &p->state, err) < 0)
        return -1;
    r->n++;
    return 0;
}

static int parse_entry(struct router *r, const cJSON *item, int i, struct cfg_err *err)
{
    char path[64];
    const cJSON *type;
    const struct policy_ops *ops;

    snprintf(path, sizeof path, "routing.policies[%d]", i);
    if (!cJSON_IsObject(item))
        return cfg_fail(err, path, "expected object");
    type = cJSON_GetObjectItemCaseSensitive(item, "type");
    if (!type)
        return cfg_fail_key(err, path, "type", "required");
    if (!cJSON_IsString(type))
        return cfg_fail_key(err, path, "type", "expected string");
    ops = policy_lookup(type->valuestring);
    if (!ops)
        return cfg_fail_key(err, path, "type", "unknown policy '%s'", type->valuestring);
    return add_policy(r, item, ops, path, err);
}

static int default_policies(struct router *r, struct cfg_err *err)
{
    cJSON *empty = cJSON_CreateObject();
    char path[64];
    int rc = 0;

    if (!empty)
        return cfg_fail(err, "routing.policies", "out of memory");
    for (int i = 0; rc == 0 && default_chain[i]; i++) {
        snprintf(path, sizeof path, "routing.policies[%d]", i);
        rc = add_policy(r, empty, policy_lookup(default_chain[i]), path, err);
    }
    cJSON_Delete(empty);
    return rc;
}

static int parse_policies(const cJSON *routing, struct router *r, struct cfg_err *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(routing, "policies");
    int i = 0;

    if (!arr)
        return default_policies(r, err);
    if (!cJSON_IsArray(arr))
        return cfg_fail(err, "routing.policies", "expected array");
    if (cJSON_GetArraySize(arr) > ROUTER_MAX_POLICIES)
        return cfg_fail(err, "routing.policies", "at most %d policies", ROUTER_MAX_POLICIES);
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        if (parse_entry(r, it, i, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_rate(const cJSON *g, struct router *r, struct cfg_err *err)
{
    double v = 0;
    int rc = cfg_number(g, "routing.guards", "max_refine_rate", 1, &v, err);

    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(v > 0 && v <= 1))
        return cfg_fail_key(err, "routing.guards", "max_refine_rate", "must be in (0, 1]");
    if (rc == CFG_VALUE)
        r->max_rate = v;
    if (rc == CFG_NULL)
        r->max_rate = 0;
    return 0;
}

static int parse_budget(const cJSON *g, struct router *r, struct cfg_err *err)
{
    double v = 0;
    int rc = cfg_number(g, "routing.guards", "daily_refine_budget_usd", 1, &v, err);

    if (rc < 0)
        return -1;
    if (rc == CFG_VALUE && !(v >= 0))
        return cfg_fail_key(err, "routing.guards", "daily_refine_budget_usd", "must be >= 0");
    if (rc == CFG_VALUE)
        r->budget = v;
    return 0;
}

/* exempt_policies: names of registered policies, each once. */
static int parse_exempt(const cJSON *g, struct router *r, struct cfg_err *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(g, "exempt_policies"), *it;
    char path[80];
    int i = 0;
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return cfg_fail_key(err, "routing.guards", "exempt_policies", "expected array");
    cJSON_ArrayForEach(it, arr) {
        snprintf(path, sizeof path, "routing.guards.exempt_policies[%d]", i++);
        if (!cJSON_IsString(it) || !policy_lookup(it->valuestring))
            return cfg_fail(err, path, "expected the name of a policy (length, topic, ...)");
        if (r->n_exempt == ROUTER_MAX_POLICIES)
            return cfg_fail(err, path, "at most %d policies", ROUTER_MAX_POLICIES);
        for (size_t k = 0; k < r->n_exempt; k++)
            if (strcmp(r->exempt[k], it->valuestring) == 0)
                return cfg_fail(err, path, "listed twice");
        snprintf(r->exempt[r->n_exempt++], sizeof r->exempt[0], "%s", it->valuestring);
    }
    return 0;
}

static int parse_guards(const cJSON *routing, struct router *r, struct cfg_err *err)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(routing, "guards");
    long long window = r->window_s, min = r->min_samples;

    if (!g)
        return 0;
    if (!cJSON_IsObject(g))
        return cfg_fail(err, "routing.guards", "expected object");
    if (cfg_check_keys(g, "routing.guards", guard_keys, err) < 0)
        return -1;
    if (parse_rate(g, r, err) < 0)
        return -1;
    if (cfg_integer(g, "routing.guards", "window_s", 0, 10, 86400, &window, err) < 0)
        return -1;
    r->window_s = (int)window;
    if (cfg_integer(g, "routing.guards", "min_samples", 0, 0, 1000000, &min, err) < 0)
        return -1;
    r->min_samples = (long)min;
    if (parse_exempt(g, r, err) < 0)
        return -1;
    return parse_budget(g, r, err);
}

static int parse_pre_route(const cJSON *routing, struct router *r, struct cfg_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(routing, "pre_route");
    if (!v)
        return 0;
    if (!cJSON_IsBool(v))
        return cfg_fail_key(err, "routing", "pre_route", "expected true or false");
    r->pre_route = cJSON_IsTrue(v);
    return 0;
}

int router_parse(const cJSON *routing, struct router **out, struct cfg_err *err)
{
    struct router *r = calloc(1, sizeof *r);

    if (!r)
        return cfg_fail(err, "routing", "out of memory");
    r->mode = ROUTE_ANY;
    r->threshold = 0.5;
    r->max_rate = 0.5;
    r->window_s = 3600;
    r->budget = -1;
    r->min_samples = ROUTER_MIN_SAMPLES;
    if (routing && !cJSON_IsObject(routing)) {
        cfg_fail(err, "routing", "expected object");
        goto fail;
    }
    if (cfg_check_keys(routing, "routing", routing_keys, err) < 0)
        goto fail;
    if (parse_mode(routing, r, err) < 0 || parse_threshold(routing, r, err) < 0)
        goto fail;
    if (parse_policies(routing, r, err) < 0 || parse_guards(routing, r, err) < 0 ||
        parse_pre_route(routing, r, err) < 0)
        goto fail;
    *out = r;
    return 0;
fail:
    router_free(r);
    return -1;
}

void router_free(struct router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        r->p[i].ops->free(r->p[i].state);
    free(r);
}

double router_guard_max_rate(const struct router *r)
{
    return r->max_rate;
}

int router_guard_window_s(const struct router *r)
{
    return r->window_s;
}

double router_guard_daily_budget(const struct router *r)
{
    return r->budget;
}

int router_pre_route(const struct router *r)
{
    return r->pre_route;
}

/* ---- describe ---- */

static cJSON *describe_policy(const struct router_policy *p)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "type", p->ops->name);
    cJSON_AddNumberToObject(o, "weight", p->weight);
    p->ops->describe(p->state, o);
    return o;
}

static void describe_guards(const struct router *r, cJSON *g)
{
    cJSON *ex;
    if (r->max_rate > 0)
        cJSON_AddNumberToObject(g, "max_refine_rate", r->max_rate);
    else
        cJSON_AddNullToObject(g, "max_refine_rate");
    cJSON_AddNumberToObject(g, "window_s", r->window_s);
    cJSON_AddNumberToObject(g, "min_samples", (double)r->min_samples);
    ex = cJSON_AddArrayToObject(g, "exempt_policies");
    for (size_t i = 0; ex && i < r->n_exempt; i++)
        cJSON_AddItemToArray(ex, cJSON_CreateString(r->exempt[i]));
    if (r->budget >= 0)
        cJSON_AddNumberToObject(g, "daily_refine_budget_usd", r->budget);
    else
        cJSON_AddNullToObject(g, "daily_refine_budget_usd");
}

cJSON *router_describe(const struct router *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr, *g;

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "mode", route_mode_name(r->mode));
    cJSON_AddNumberToObject(o, "threshold", r->threshold);
    cJSON_AddBoolToObject(o, "pre_route", r->pre_route);
    arr = cJSON_AddArrayToObject(o, "policies");
    for (size_t i = 0; arr && i < r->n; i++)
        cJSON_AddItemToArray(arr, describe_policy(&r->p[i]));
    g = cJSON_AddObjectToObject(o, "guards");
    if (!arr || !g)
        goto fail;
    describe_guards(r, g);
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* ---- decide ---- */

static void run_policies(const struct router *r, const struct route_input *in,
                         struct route_result *out)
{
    for (size_t i = 0; i < r->n; i++) {
        struct verdict *v = &out->v[i];
        memset(v, 0, sizeof *v);
        v->policy = r->p[i].ops->name;
        r->p[i].ops->decide(r->p[i].state, in, v);
        v->policy = r->p[i].ops->name;
    }
    out->n = r->n;
}

/* What the policies decided, by mode; sets out->score in score mode. For the input stage,
 * policies that could not judge yet (v->kind ABSTAIN and input_unknown) count as possible
 * keeps: a refinement is decided there only when the rest could not overturn it. */
static int combine(const struct router *r, struct route_result *out, const int *unknown)
{
    double vote_w = 0, refine_w = 0, unknown_w = 0;
    size_t refines = 0, keeps = 0, unknowns = 0;

    for (size_t i = 0; i < r->n; i++) {
        if (unknown && unknown[i]) {
            unknown_w += r->p[i].weight;
            unknowns++;
            continue;
        }
        if (out->v[i].kind == VERDICT_ABSTAIN)
            continue;
        vote_w += r->p[i].weight;
        if (out->v[i].kind == VERDICT_REFINE) {
            refine_w += r->p[i].weight;
            refines++;
        } else {
            keeps++;
        }
    }
    out->refine_votes = refines;
    switch (r->mode) {
    case ROUTE_ALL:
        return refines > 0 && keeps == 0 && unknowns == 0;
    case ROUTE_SCORE:
        out->score = vote_w + unknown_w > 0 ? refine_w / (vote_w + unknown_w) : 0;
        return refines > 0 && out->score + SCORE_EPSILON >= r->threshold;
    case ROUTE_ANY:
        break;
    }
    return refines > 0;
}

struct verdict *router_hold_back(struct route_result *out, const char *guard, double score)
{
    struct verdict *v = &out->v[out->n < ROUTER_MAX_VERDICTS ? out->n++ : out->n - 1];

    memset(v, 0, sizeof *v);
    v->policy = guard;
    v->kind = VERDICT_KEEP;
    v->has_score = 1;
    v->score = score;
    out->refine = 0;
    out->guarded = 1;
    return v;
}

/* Did an exempt policy ask for this refinement? */
static const char *exempt_refine(const struct router *r, const struct route_result *out)
{
    for (size_t i = 0; i < out->n && i < r->n; i++) {
        if (out->v[i].kind != VERDICT_REFINE)
            continue;
        for (size_t k = 0; k < r->n_exempt; k++)
            if (strcmp(out->v[i].policy, r->exempt[k]) == 0)
                return r->exempt[k];
    }
    return NULL;
}

/* A strong refinement: several policies asked for it (any / all), or its score is in the
 * upper half of the refine range (score mode). Over a rate limit, weak refinements are held
 * back first; strong ones only once the rate is ROUTER_STRONG_SLACK over the limit. */
static int strong(const struct router *r, const struct route_result *out)
{
    if (r->mode == ROUTE_SCORE)
        return out->score >= r->threshold + (1 - r->threshold) / 2;
    return out->refine_votes >= 2;
}

static void rate_guard(const struct router *r, const struct route_result *out, double max,
                       double rate, double decided, const char *name, struct route_result *o)
{
    struct verdict *v;
    int st;
    if (!(max > 0) || decided < (double)r->min_samples || !(rate >= max))
        return;
    st = strong(r, out);
    if (st && rate < max * ROUTER_STRONG_SLACK)
        return;
    v = router_hold_back(o, name, rate);
    snprintf(v->detail, sizeof v->detail,
             "refine rate %.3f of %.0f decided jobs over %d s >= max %g; %s refinement held "
             "back%s", rate, decided, r->window_s, max, st ? "a strong" : "a weak",
             st ? " (rate 10% over the max)" : " first");
}

static void guard_budget(const struct router *r, const struct guard_input *g,
                         struct route_result *out)
{
    double total = g->spent_today_usd + g->est_refine_cost_usd;
    struct verdict *v;

    if (!(r->budget >= 0) || !g->have_spend || !(total >= r->budget))
        return;
    v = router_hold_back(out, "guard:daily_refine_budget", total);
    snprintf(v->detail, sizeof v->detail,
             "spent today %.6f + est %.6f USD >= daily budget %g USD; draft kept",
             g->spent_today_usd, g->est_refine_cost_usd, r->budget);
}

/* A tenant's daily budget: a cap on spending, so it binds exempt refinements too. */
static void guard_tenant_budget(const struct guard_input *g, struct route_result *out)
{
    double total = g->tenant_spent_usd + g->tenant_est_refine_usd;
    struct verdict *v;

    if (!g->have_tenant_budget || !(total > g->tenant_budget_usd))
        return;
    v = router_hold_back(out, "guard:tenant_budget", total);
    snprintf(v->detail, sizeof v->detail,
             "tenant spent today with jobs in flight %.6f + this refinement up to %.6f USD > "
             "daily budget %g USD; draft kept", g->tenant_spent_usd, g->tenant_est_refine_usd,
             g->tenant_budget_usd);
}

static void apply_guards(const struct router *r, const struct guard_input *g,
                         struct route_result *out)
{
    if (!out->policy_refine || !g)
        return;
    guard_tenant_budget(g, out);
    out->exempt = exempt_refine(r, out);
    if (out->exempt)
        return; /* no other guard holds back what an exempt policy asked for */
    /* every guard that would hold it back says so */
    if (g->have_rate)
        rate_guard(r, out, r->max_rate, g->recent_refine_rate, g->decided,
                   "guard:max_refine_rate", out);
    if (g->have_tenant_rate)
        rate_guard(r, out, g->tenant_max_rate, g->tenant_refine_rate, g->tenant_decided,
                   "guard:tenant_refine_rate", out);
    guard_budget(r, g, out);
}

void router_decide(const struct router *r, const struct route_input *in,
                   const struct guard_input *g, struct route_result *out)
{
    memset(out, 0, sizeof *out);
    out->mode = r->mode;
    out->stage = "draft";
    run_policies(r, in, out);
    out->policy_refine = combine(r, out, NULL);
    out->refine = out->policy_refine;
    apply_guards(r, g, out);
}

int router_pre_decide(const struct router *r, const struct route_input *in,
                      const struct guard_input *g, struct route_result *out)
{
    int unknown[ROUTER_MAX_POLICIES] = {0}, any = 0;
    memset(out, 0, sizeof *out);
    out->mode = r->mode;
    out->stage = "input";
    for (size_t i = 0; i < r->n; i++) {
        struct verdict *v = &out->v[i];
        memset(v, 0, sizeof *v);
        v->policy = r->p[i].ops->name;
        v->kind = VERDICT_ABSTAIN;
        unknown[i] = !r->p[i].ops->decide_input ||
                     !r->p[i].ops->decide_input(r->p[i].state, in, v);
        if (unknown[i])
            snprintf(v->detail, sizeof v->detail, "needs the draft");
        v->policy = r->p[i].ops->name;
        any |= !unknown[i];
    }
    out->n = r->n;
    if (!r->pre_route || !any)
        return 0;
    out->policy_refine = combine(r, out, unknown);
    out->refine = out->policy_refine;
    if (!out->refine)
        return 0; /* undecided: the draft decides */
    apply_guards(r, g, out);
    return 1;
}

/* ---- JSON ---- */

static cJSON *verdict_json(const struct verdict *v)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    if (!cJSON_AddStringToObject(o, "policy", v->policy ? v->policy : "unknown") ||
        !cJSON_AddStringToObject(o, "verdict", verdict_name(v->kind)))
        goto fail;
    /* every verdict carries a score: null when the policy had nothing to measure (e.g.
     * no logprobs from the server) */
    if (v->has_score ? !cJSON_AddNumberToObject(o, "score", v->score)
                     : !cJSON_AddNullToObject(o, "score"))
        goto fail;
    if (!cJSON_AddStringToObject(o, "detail", v->detail))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static int add_verdicts(cJSON *o, const struct route_result *res)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "verdicts");

    if (!arr)
        return -1;
    for (size_t i = 0; i < res->n && i < ROUTER_MAX_VERDICTS; i++) {
        cJSON *v = verdict_json(&res->v[i]);
        if (!v)
            return -1;
        cJSON_AddItemToArray(arr, v);
    }
    return 0;
}

cJSON *route_result_json(const struct route_result *res)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    if (!cJSON_AddStringToObject(o, "decision", res->refine ? "refine" : "keep") ||
        !cJSON_AddStringToObject(o, "mode", route_mode_name(res->mode)) ||
        !cJSON_AddStringToObject(o, "stage", res->stage ? res->stage : "draft"))
        goto fail;
    if (res->mode == ROUTE_SCORE && !cJSON_AddNumberToObject(o, "score", res->score))
        goto fail;
    if (add_verdicts(o, res) < 0)
        goto fail;
    if (res->guarded && !cJSON_AddTrueToObject(o, "guarded"))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
