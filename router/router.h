/* router.h - the routing decision: runs the configured policy chain over one draft, combines
 * the verdicts (any / all / score) and applies the guards.
 *
 * Pure: no I/O, no clock. The figures the guards need (recent refine rate, today's refine
 * spend) are measured by the caller and passed in, so a decision is a function of
 * (draft, request, config, guard figures).
 *
 * Ownership: a struct router is built by router_parse() from a cJSON "routing" object the
 * caller owns (everything needed is copied) and is immutable afterwards, so any number of
 * jobs may share one (the service refcounts the config that holds it). router_free()
 * releases it. */
#ifndef BRIEFD_ROUTER_H
#define BRIEFD_ROUTER_H

#include "policy.h"

struct cJSON;

enum route_mode { ROUTE_ANY = 0, ROUTE_ALL = 1, ROUTE_SCORE = 2 };
const char *route_mode_name(enum route_mode m); /* "any" | "all" | "score" */

#define ROUTER_MAX_POLICIES 16
#define ROUTER_MAX_VERDICTS (ROUTER_MAX_POLICIES + 4) /* + the guards */
#define ROUTER_MIN_SAMPLES 20      /* default routing.guards.min_samples */
#define ROUTER_STRONG_SLACK 1.1    /* strong refinements are held back 10% over a rate limit */

struct router;

/* Figures measured by the caller for the guards. A guard whose figure is not known
 * (have_* = 0) does not hold anything back. */
struct guard_input {
    int have_rate;
    double recent_refine_rate;   /* refined / decided over the guard's window, 0..1 */
    double decided;              /* decided jobs in that window (min_samples) */
    int have_spend;
    double spent_today_usd;      /* refine spend so far today (UTC) */
    double est_refine_cost_usd;  /* what this refinement is expected to cost */
    int have_tenant_rate;        /* the job's tenant has a max_refine_rate */
    double tenant_max_rate;
    double tenant_refine_rate;   /* its refined / decided over the window */
    double tenant_decided;
    int have_tenant_budget;      /* the job's tenant has a daily_budget_usd */
    double tenant_budget_usd;
    double tenant_spent_usd;     /* its spend today + what its jobs in flight hold, this one's
                                    draft included */
    double tenant_est_refine_usd; /* an upper bound of this refinement's cost */
};

struct route_result {
    int refine;                  /* the final decision: 1 refine, 0 keep */
    int policy_refine;           /* what the policies alone decided, before guards */
    int guarded;                 /* 1: a guard turned refine into keep */
    const char *stage;           /* "input" (pre-routing) or "draft" */
    const char *exempt;          /* the exempt policy that asked for it, or NULL */
    size_t refine_votes;         /* policies that voted refine */
    enum route_mode mode;
    double score;                /* score mode: refine weight / voting weight; else 0 */
    size_t n;                    /* verdicts in v[], policies in chain order, then guards */
    struct verdict v[ROUTER_MAX_VERDICTS];
};

/* Parse a "routing" object (NULL means all defaults: mode any, the default policy chain of
 * docs/CONFIG.md - length 600, topic [legal, security, exec], confidence -0.8 on_missing keep -
 * and max_refine_rate 0.5, no budget). Keys:
 *   mode: "any" | "all" | "score"            (default "any")
 *   threshold: number in [0,1]              (score mode: refine when score >= it; default 0.5)
 *   policies: array (<= ROUTER_MAX_POLICIES) of {"type": name, "weight": number > 0, ...}
 *   guards: {"max_refine_rate": number in (0,1] or null,
 *            "window_s": integer 10..86400 (default 3600),
 *            "daily_refine_budget_usd": number >= 0 or null}
 * Returns 0 and sets *out, or -1 with err naming the JSON path ("routing.policies[2].type"). */
int router_parse(const struct cJSON *routing, struct router **out, struct cfg_err *err);
void router_free(struct router *r);

/* The effective routing config as JSON (caller frees), for GET /v1/config. */
struct cJSON *router_describe(const struct router *r);

/* Guard settings, so the caller knows what figures to measure (0 / negative = unset). */
double router_guard_max_rate(const struct router *r);     /* <= 0: no rate guard */
int router_guard_window_s(const struct router *r);
double router_guard_daily_budget(const struct router *r); /* < 0: no budget guard */

/* Decide. g may be NULL (no guard figures). Writes every field of out.
 * Guards: a rate guard (max_refine_rate, a tenant's max_refine_rate) acts only once its
 * window holds min_samples decided jobs; over the limit it holds back weak refinements
 * (one vote in any/all mode, a score in the lower half of the refine range in score mode)
 * first, strong ones only at ROUTER_STRONG_SLACK times the limit; no guard holds back a
 * refinement an exempt policy asked for - except the tenant's budget (a spending cap, not a
 * quality trade-off): a refinement whose upper bound would take the tenant's spend past
 * its daily budget is held back ("guard:tenant_budget") whoever asked for it. A held-back
 * refinement gets a verdict "guard:<name>" saying which rule acted and on what numbers. */
void router_decide(const struct router *r, const struct route_input *in,
                   const struct guard_input *g, struct route_result *out);
/* Pre-routing (routing.pre_route): decide on the input alone (in->draft NULL) with the
 * policies that can (decide_input). Returns 1 when that decides a refinement (out->refine
 * may still be 0 if a guard held it back: then the draft is skipped only if out->refine),
 * else 0: the draft decides. any mode: one input refine vote decides; score mode: input
 * votes alone must reach the threshold counting the rest as keeps; all mode: never. */
int router_pre_decide(const struct router *r, const struct route_input *in,
                      const struct guard_input *g, struct route_result *out);
int router_pre_route(const struct router *r);
/* Turn a refine decision into keep, with a verdict from guard (e.g. "guard:tenant_budget",
 * static) and score; returns the verdict so the caller writes its detail. */
struct verdict *router_hold_back(struct route_result *out, const char *guard, double score);

/* The route object of docs/API.md {"decision", "mode", "verdicts": [...]} (caller frees). */
struct cJSON *route_result_json(const struct route_result *res);

#endif
