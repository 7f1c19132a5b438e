/* evalrep.c - arms, sweep, APGR/CPT and documents of an evaluation, as report.json. */
#include "evalrep.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jsonx.h"
#include "quality.h"

#define CONF_BEYOND 0.1   /* confidence sweep: how far beyond the seen means */

const char *evalrep_arm_name(int arm)
{
    static const char *const names[EVALREP_ARMS] = {"draft", "refine", "hybrid"};

    return arm >= 0 && arm < EVALREP_ARMS ? names[arm] : "?";
}

int evalrep_parse_arms(const char *s, unsigned *mask)
{
    unsigned m = 0;

    while (s && *s) {
        size_t n = strcspn(s, ",");
        int found = -1;
        for (int a = 0; a < EVALREP_ARMS; a++)
            if (strlen(evalrep_arm_name(a)) == n && strncmp(s, evalrep_arm_name(a), n) == 0)
                found = a;
        if (found < 0 || (m & (1u << found)))
            return -1;
        m |= 1u << found;
        s += n;
        if (*s == ',' && s[1] == '\0')
            return -1; /* a trailing comma */
        if (*s == ',')
            s++;
    }
    *mask = m;
    return m ? 0 : -1;
}

/* ---- per document ---- */

/* Does arm a serve the refined brief of d? */
static int arm_refines(const struct evalrep_doc *d, int a)
{
    return a == EVALREP_REFINE || (a == EVALREP_HYBRID && d->route.refine);
}

static const struct evalrep_brief *served(const struct evalrep_doc *d, int a)
{
    return arm_refines(d, a) ? &d->refine : &d->draft;
}

/* What serving d through a routing that refines (or not) cost: draft, then refine. */
static double doc_cost(const struct evalrep_doc *d, int refines)
{
    double c = d->draft.cost_usd;

    if (refines)
        c += d->refine.cost_usd;
    return c;
}

static double doc_ms(const struct evalrep_doc *d, int refines)
{
    double ms = d->draft.ms;

    if (refines)
        ms += d->refine.ms;
    return ms;
}

static int paired(const struct evalrep_doc *d)
{
    return d->complete && d->draft.judge.valid && d->refine.judge.valid;
}

/* ---- arms ---- */

struct arm_acc {
    size_t n, refined, judged, nulls, over, with_unsupported;
    double cost, words;
    double sum[3];               /* coherence, faithfulness, brevity */
    double *overall, *ms;        /* n values each (overall: judged values) */
};

static void acc_doc(struct arm_acc *acc, const struct evalrep_doc *d, int a)
{
    const struct evalrep_brief *b = served(d, a);
    int r = arm_refines(d, a);

    acc->cost += doc_cost(d, r);
    acc->ms[acc->n] = doc_ms(d, r);
    acc->n++;
    acc->refined += (size_t)r;
    acc->words += (double)b->checks.words;
    acc->over += (size_t)b->checks.over_max_words;
    acc->with_unsupported += b->checks.n_unsupported > 0;
    if (!b->judge.valid) {
        acc->nulls++;
        return;
    }
    acc->sum[0] += b->judge.coherence;
    acc->sum[1] += b->judge.faithfulness;
    acc->sum[2] += b->judge.brevity;
    acc->overall[acc->judged++] = b->judge.overall;
}

static void add_num(cJSON *o, const char *name, double v)
{
    jsonx_add_number(o, name, v); /* non-finite (no data) becomes null */
}

static void add_quality(cJSON *arm, const struct arm_acc *acc)
{
    cJSON *q = cJSON_AddObjectToObject(arm, "quality");
    cJSON *ci;
    double k = (double)acc->judged, lo = NAN, hi = NAN;

    add_num(q, "coherence", acc->judged ? acc->sum[0] / k : NAN);
    add_num(q, "faithfulness", acc->judged ? acc->sum[1] / k : NAN);
    add_num(q, "brevity", acc->judged ? acc->sum[2] / k : NAN);
    add_num(q, "overall", quality_mean(acc->overall, acc->judged));
    if (acc->judged &&
        quality_bootstrap(acc->overall, acc->judged, EVALREP_RESAMPLES, EVALREP_SEED,
                          EVALREP_LEVEL, &lo, &hi) == 0) {
        ci = cJSON_AddArrayToObject(q, "overall_ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(lo));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(hi));
    } else {
        cJSON_AddNullToObject(q, "overall_ci95");
    }
    cJSON_AddNumberToObject(q, "judged", k);
    cJSON_AddNumberToObject(q, "null", (double)acc->nulls);
}

static void add_arm_figures(cJSON *arm, const struct arm_acc *acc)
{
    double n = (double)acc->n;
    cJSON *cost, *lat, *chk;

    cJSON_AddNumberToObject(arm, "n", n);
    add_num(arm, "refine_rate", acc->n ? (double)acc->refined / n : NAN);
    cost = cJSON_AddObjectToObject(arm, "cost_usd");
    lat = cJSON_AddObjectToObject(cJSON_AddObjectToObject(arm, "latency_ms"), "total");
    add_num(cost, "total", acc->cost);
    add_num(cost, "per_job", acc->n ? acc->cost / n : NAN);
    add_num(lat, "p50", quality_percentile(acc->ms, acc->n, 0.5));
    add_num(lat, "p95", quality_percentile(acc->ms, acc->n, 0.95));
    add_quality(arm, acc);
    chk = cJSON_AddObjectToObject(arm, "checks");
    add_num(chk, "words_mean", acc->n ? acc->words / n : NAN);
    cJSON_AddNumberToObject(chk, "over_max_words", (double)acc->over);
    cJSON_AddNumberToObject(chk, "with_unsupported_numbers", (double)acc->with_unsupported);
}

static cJSON *arm_json(const struct evalrep_in *in, int a)
{
    struct arm_acc acc;
    cJSON *arm = NULL;

    memset(&acc, 0, sizeof(acc));
    acc.overall = malloc((in->n ? in->n : 1) * sizeof(double));
    acc.ms = malloc((in->n ? in->n : 1) * sizeof(double));
    if (acc.overall && acc.ms) {
        for (size_t i = 0; i < in->n; i++)
            if (in->docs[i].complete)
                acc_doc(&acc, &in->docs[i], a);
        arm = cJSON_CreateObject();
        if (arm)
            add_arm_figures(arm, &acc);
    }
    free(acc.overall);
    free(acc.ms);
    return arm;
}

/* ---- the sweep ---- */

/* The paired means of the always-draft and always-refine routings. */
struct gap {
    size_t n;
    double draft, refine;
};

static void paired_means(const struct evalrep_in *in, struct gap *g)
{
    double sd = 0, sr = 0;

    g->n = 0;
    for (size_t i = 0; i < in->n; i++)
        if (paired(&in->docs[i])) {
            sd += in->docs[i].draft.judge.overall;
            sr += in->docs[i].refine.judge.overall;
            g->n++;
        }
    g->draft = g->n ? sd / (double)g->n : NAN;
    g->refine = g->n ? sr / (double)g->n : NAN;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; s && *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The thresholds to try for a policy: the values seen, sorted and distinct, and one beyond
 * each end. vals has room for n + 2. Returns how many. */
static size_t candidates(double *vals, size_t n, int length)
{
    size_t m = 0;
    double lo, hi;

    if (n == 0)
        return 0;
    qsort(vals, n, sizeof(*vals), cmp_double);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || vals[i] != vals[m - 1])
            vals[m++] = vals[i];
    lo = length ? vals[0] - 1 : vals[0] - CONF_BEYOND;
    hi = length ? vals[m - 1] + 1 : fmin(vals[m - 1] + CONF_BEYOND, 0);
    if (!length || lo >= 1) {
        memmove(vals + 1, vals, m * sizeof(*vals));
        vals[0] = lo;
        m++;
    }
    if (hi > vals[m - 1])
        vals[m++] = hi;
    return m;
}

/* The values the drafts show for a policy's threshold. */
static size_t seen_values(const struct evalrep_in *in, int length, double *vals)
{
    size_t n = 0;

    for (size_t i = 0; i < in->n; i++) {
        const struct evalrep_doc *d = &in->docs[i];
        if (!d->complete)
            continue;
        if (length)
            vals[n++] = (double)utf8_chars(d->draft.text);
        else if (d->lp.present)
            vals[n++] = d->lp.mean;
    }
    return n;
}

/* One sweep point: route every completed document with r. */
static void sweep_point(const struct evalrep_in *in, const struct router *r, double *rate,
                        double *cost, double *overall)
{
    size_t n = 0, refined = 0, np = 0;
    double c = 0, q = 0;

    for (size_t i = 0; i < in->n; i++) {
        const struct evalrep_doc *d = &in->docs[i];
        struct route_input ri;
        struct route_result res;
        if (!d->complete)
            continue;
        job_route_input(&d->item->req, d->draft.text, &d->lp, d->truncated, &ri);
        router_decide(r, &ri, NULL, &res);
        n++;
        refined += (size_t)res.refine;
        c += doc_cost(d, res.refine);
        if (paired(d)) {
            q += res.refine ? d->refine.judge.overall : d->draft.judge.overall;
            np++;
        }
    }
    *rate = n ? (double)refined / (double)n : NAN;
    *cost = n ? c / (double)n : NAN;
    *overall = np ? q / (double)np : NAN;
}

struct sweep_out {
    cJSON *arr;
    struct quality_point *pts;
    size_t npts;
    const struct gap *gap;
};

/* Sweep policy i (its description pol, inside the routing description desc). */
static int sweep_policy(const struct evalrep_in *in, cJSON *desc, cJSON *pol, int i,
                        struct sweep_out *out)
{
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pol, "type"));
    int length = type && strcmp(type, "length") == 0;
    const char *key = length ? "min_chars" : "min_mean_logprob";
    double *vals = malloc((in->n + 2) * sizeof(double));
    double configured = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(pol, key));
    size_t m;

    if (!vals)
        return -1;
    m = candidates(vals, seen_values(in, length, vals), length);
    for (size_t k = 0; k < m; k++) {
        struct router *r = NULL;
        struct cfg_err err;
        double rate, cost, q;
        cJSON *pt;
        cJSON_ReplaceItemInObjectCaseSensitive(pol, key, cJSON_CreateNumber(vals[k]));
        if (router_parse(desc, &r, &err) != 0)
            continue; /* a value the policy refuses (cannot happen for seen values) */
        sweep_point(in, r, &rate, &cost, &q);
        router_free(r);
        pt = cJSON_CreateObject();
        cJSON_AddItemToArray(out->arr, pt);
        cJSON_AddStringToObject(pt, "policy", type);
        cJSON_AddNumberToObject(pt, "index", i);
        add_num(pt, "threshold", vals[k]);
        add_num(pt, "refine_rate", rate);
        add_num(pt, "cost_per_job", cost);
        add_num(pt, "overall", q);
        out->pts[out->npts++] = (struct quality_point){rate, quality_pgr(q, out->gap->draft,
                                                                          out->gap->refine)};
    }
    /* the next policy is swept with this one as configured */
    cJSON_ReplaceItemInObjectCaseSensitive(pol, key, cJSON_CreateNumber(configured));
    free(vals);
    return 0;
}

/* The sweep array (and its PGR points), over every thresholded policy. */
static int sweep(const struct evalrep_in *in, struct sweep_out *out)
{
    cJSON *desc = router_describe(in->cfg->router);
    cJSON *pols = cJSON_GetObjectItemCaseSensitive(desc, "policies"), *pol;
    int i = 0, rc = desc ? 0 : -1;

    out->pts = malloc((ROUTER_MAX_POLICIES * (in->n + 2) + 1) * sizeof(*out->pts));
    if (!out->pts)
        rc = -1;
    cJSON_ArrayForEach(pol, pols) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pol, "type"));
        if (rc == 0 && type && (strcmp(type, "length") == 0 || strcmp(type, "confidence") == 0))
            rc = sweep_policy(in, desc, pol, i, out);
        i++;
    }
    cJSON_Delete(desc);
    return rc;
}

/* ---- APGR, CPT and the gap ---- */

static void add_apgr(cJSON *rep, const struct sweep_out *sw, const char *note)
{
    cJSON *cpt = cJSON_CreateObject();
    static const char *const keys[2] = {"50", "80"};
    double apgr = NAN;

    if (!note && quality_apgr(sw->pts, sw->npts, &apgr) != 0)
        apgr = NAN;
    add_num(rep, "apgr", apgr);
    for (int k = 0; k < 2; k++) {
        double r = NAN;
        if (!note && quality_cpt(sw->pts, sw->npts, k ? 0.8 : 0.5, &r) != 0)
            r = NAN;
        add_num(cpt, keys[k], r);
    }
    cJSON_AddItemToObject(rep, "cpt", cpt);
}

static const char *gap_note(const struct evalrep_in *in, const struct gap *g, size_t nswept)
{
    unsigned both = (1u << EVALREP_DRAFT) | (1u << EVALREP_REFINE);

    if ((in->arms & both) != both)
        return "the sweep, APGR and CPT need both the draft and the refine arm";
    if (g->n == 0)
        return "no document has both its draft and its refined brief judged";
    if (!(g->refine - g->draft > 0))
        return "the refined briefs do not score above the drafts on these documents (quality "
               "gap <= 0): PGR, APGR and CPT are undefined";
    if (nswept == 0)
        return "routing has no thresholded policy (length, confidence) to sweep";
    return NULL;
}

static void add_gap(cJSON *rep, const struct gap *g, const char *note, double hybrid_q)
{
    cJSON *o = cJSON_AddObjectToObject(rep, "quality_gap");

    cJSON_AddNumberToObject(o, "n", (double)g->n);
    add_num(o, "draft", g->draft);
    add_num(o, "refine", g->refine);
    add_num(o, "gap", g->refine - g->draft);
    add_num(o, "hybrid_pgr", note ? NAN : quality_pgr(hybrid_q, g->draft, g->refine));
    if (note)
        cJSON_AddStringToObject(o, "note", note);
    else
        cJSON_AddNullToObject(o, "note");
}

/* The paired mean of what the config's routing serves (for its PGR). */
static double hybrid_paired(const struct evalrep_in *in)
{
    double q = 0;
    size_t n = 0;

    for (size_t i = 0; i < in->n; i++)
        if (paired(&in->docs[i])) {
            q += served(&in->docs[i], EVALREP_HYBRID)->judge.overall;
            n++;
        }
    return n ? q / (double)n : NAN;
}

static int add_routing(cJSON *rep, const struct evalrep_in *in)
{
    unsigned both = (1u << EVALREP_DRAFT) | (1u << EVALREP_REFINE);
    struct sweep_out sw;
    struct gap g;
    const char *note;
    int rc = 0;

    memset(&sw, 0, sizeof(sw));
    paired_means(in, &g);
    sw.gap = &g;
    sw.arr = cJSON_AddArrayToObject(rep, "sweep");
    if ((in->arms & both) == both)
        rc = sweep(in, &sw);
    note = gap_note(in, &g, sw.npts);
    add_apgr(rep, &sw, note);
    add_gap(rep, &g, note, hybrid_paired(in));
    free(sw.pts);
    return rc;
}

/* ---- documents ---- */

static void add_judge_usage(cJSON *doc, const char *name, const struct evalrep_brief *b)
{
    cJSON *o = cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(doc, "judge_usage"),
                                       name);

    cJSON_AddNumberToObject(o, "prompt_tokens", (double)b->judge_prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)b->judge_completion_tokens);
    cJSON_AddBoolToObject(o, "estimated", b->judge_usage_estimated);
    add_num(o, "cost_usd", b->judge_cost_usd);
}

static void add_brief_detail(cJSON *doc, const char *name, const struct evalrep_brief *b)
{
    cJSON *scores = cJSON_GetObjectItemCaseSensitive(doc, "scores");
    cJSON *o;

    if (b->judge_answered)
        add_judge_usage(doc, name, b);
    if (b->judged || b->judge_error[0]) {
        if (b->judge.valid) {
            o = cJSON_AddObjectToObject(scores, name);
            cJSON_AddNumberToObject(o, "coherence", b->judge.coherence);
            cJSON_AddNumberToObject(o, "faithfulness", b->judge.faithfulness);
            cJSON_AddNumberToObject(o, "brevity", b->judge.brevity);
            add_num(o, "overall", b->judge.overall);
            cJSON_AddStringToObject(o, "rationale", b->judge.rationale);
        } else {
            cJSON_AddNullToObject(scores, name);
            cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(doc, "judge_errors"), name,
                                    b->judged ? b->judge.why : b->judge_error);
        }
    }
    if (!b->asked)
        return;
    if (b->have) {
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(doc, "briefs"), name, b->text);
        checks_add_json(&b->checks, cJSON_AddObjectToObject(
                                        cJSON_GetObjectItemCaseSensitive(doc, "checks"), name));
    }
    o = cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(doc, "usage"), name);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)b->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)b->completion_tokens);
    cJSON_AddBoolToObject(o, "estimated", b->usage_estimated);
    add_num(cJSON_GetObjectItemCaseSensitive(doc, "cost_usd"), name, b->cost_usd);
    add_num(cJSON_GetObjectItemCaseSensitive(doc, "latency_ms"), name, b->ms);
}

static cJSON *doc_json(const struct evalrep_doc *d)
{
    cJSON *o = cJSON_CreateObject();
    static const char *const members[] = {"scores", "judge_errors", "briefs", "checks",
                                          "usage", "cost_usd", "latency_ms", "judge_usage"};
    const char *err = d->draft.error[0] ? d->draft.error : d->refine.error;

    cJSON_AddStringToObject(o, "id", d->item->id);
    cJSON_AddNumberToObject(o, "line", (double)d->item->line);
    if (d->routed)
        cJSON_AddStringToObject(o, "decision", d->route.refine ? "refine" : "keep");
    else
        cJSON_AddNullToObject(o, "decision");
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
        cJSON_AddObjectToObject(o, members[i]);
    add_brief_detail(o, "draft", &d->draft);
    add_brief_detail(o, "refine", &d->refine);
    if (!d->complete)
        cJSON_AddStringToObject(o, "error", err[0] ? err : "not evaluated");
    return o;
}

/* ---- the report ---- */

static void add_header(cJSON *rep, const struct evalrep_in *in)
{
    cJSON *ds = cJSON_AddObjectToObject(rep, "dataset");
    cJSON *models = cJSON_CreateObject();
    cJSON *boot = cJSON_CreateObject();
    size_t done = 0;

    for (size_t i = 0; i < in->n; i++)
        done += (size_t)in->docs[i].complete;
    cJSON_AddStringToObject(ds, "path", in->dataset_path ? in->dataset_path : "");
    cJSON_AddNumberToObject(ds, "n", (double)in->n);
    cJSON_AddNumberToObject(ds, "failed", (double)(in->n - done));
    cJSON_AddStringToObject(rep, "config_version", in->cfg->version);
    cJSON_AddStringToObject(rep, "judge", in->cfg->judge.name);
    cJSON_AddStringToObject(models, "draft", in->cfg->draft.name);
    cJSON_AddStringToObject(models, "refine", in->cfg->refine.name);
    cJSON_AddStringToObject(models, "judge", in->cfg->judge.name);
    cJSON_AddItemToObject(rep, "models", models);
    cJSON_AddNumberToObject(boot, "resamples", EVALREP_RESAMPLES);
    cJSON_AddNumberToObject(boot, "seed", EVALREP_SEED);
    cJSON_AddNumberToObject(boot, "level", EVALREP_LEVEL);
    cJSON_AddItemToObject(rep, "bootstrap", boot);
}

static int add_judgements(cJSON *rep, const struct evalrep_in *in)
{
    cJSON *j = cJSON_AddObjectToObject(rep, "judgements");
    size_t nulls = 0;
    double usd = 0;

    for (size_t i = 0; i < in->n; i++) {
        const struct evalrep_brief *b[2] = {&in->docs[i].draft, &in->docs[i].refine};
        for (int k = 0; k < 2; k++) {
            nulls += b[k]->judged && !b[k]->judge.valid;
            if (b[k]->judge_answered)
                usd += b[k]->judge_cost_usd;
        }
    }
    add_num(rep, "evaluation_usd", usd);
    cJSON_AddNumberToObject(j, "calls", (double)in->judge_calls);
    cJSON_AddNumberToObject(j, "failed", (double)in->judge_failed);
    cJSON_AddNumberToObject(j, "null", (double)nulls);
    return j ? 0 : -1;
}

cJSON *evalrep_json(const struct evalrep_in *in)
{
    cJSON *rep = cJSON_CreateObject(), *arms, *docs;
    int rc = rep ? 0 : -1;

    if (rc == 0) {
        add_header(rep, in);
        arms = cJSON_AddObjectToObject(rep, "arms");
        for (int a = 0; a < EVALREP_ARMS; a++)
            if (in->arms & (1u << a))
                cJSON_AddItemToObject(arms, evalrep_arm_name(a), arm_json(in, a));
        rc = add_judgements(rep, in);
    }
    if (rc == 0)
        rc = add_routing(rep, in);
    docs = rc == 0 ? cJSON_AddArrayToObject(rep, "documents") : NULL;
    for (size_t i = 0; docs && i < in->n; i++)
        cJSON_AddItemToArray(docs, doc_json(&in->docs[i]));
    if (!docs || cJSON_GetArraySize(docs) != (int)in->n) {
        cJSON_Delete(rep);
        return NULL;
    }
    return rep;
}
