/* test_evalrep.c - the report of an evaluation on hand-computed documents: arms (cost sums,
 * refine rates, quality means over non-null judgements, intervals), the sweep of each
 * thresholded policy, APGR and CPT, the notes when they are undefined, the documents; and
 * the readable forms rendered from it (table, Markdown, HTML, JSON text). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "config.h"
#include "evalpage.h"
#include "evalrep.h"
#include "tcheck.h"

#define EPS 1e-9

static const char conf_json[] =
    "{\"routing\": {\"mode\": \"any\", \"policies\": ["
    "{\"type\": \"length\", \"min_chars\": 20},"
    "{\"type\": \"topic\", \"flags\": [\"legal\"], \"keywords\": []},"
    "{\"type\": \"confidence\", \"min_mean_logprob\": -1.0}],"
    " \"guards\": {\"max_refine_rate\": 0.1}}}";

struct fixture {
    struct bd_config *cfg;
    struct evalset_item items[5];
    struct evalrep_doc docs[5];
};

static void judged(struct evalrep_brief *b, int c, int f, int v)
{
    b->judged = 1;
    b->judge.valid = 1;
    b->judge.coherence = c;
    b->judge.faithfulness = f;
    b->judge.brevity = v;
    b->judge.overall = (c + f + v) / 3.0;
    snprintf(b->judge.rationale, sizeof(b->judge.rationale), "r%d%d%d", c, f, v);
}

static void brief(struct evalrep_brief *b, const char *text, double cost, double ms)
{
    b->asked = 1;
    b->have = 1;
    b->text = (char *)text;
    b->cost_usd = cost;
    b->ms = ms;
    b->prompt_tokens = 100;
    b->completion_tokens = 20;
}

/* d0 keep (short, confident), d1 refine (long), d2 refine (unsure), d3 keep with a null
 * draft judgement, d4 failed. */
static void setup(struct fixture *fx, unsigned arms)
{
    static const char *const drafts[4] = {"short draft", "a much longer draft text here",
                                          "tiny one", "x"};
    static const double means[4] = {-0.5, -0.2, -1.5, -0.3};
    static const double dcost[4] = {0.001, 0.001, 0.002, 0.001};
    static const double rcost[4] = {0.002, 0.003, 0.004, 0.001};
    struct cfg_err err;

    memset(fx, 0, sizeof(*fx));
    fx->cfg = config_load_string(conf_json, strlen(conf_json), &err);
    CHECK(fx->cfg != NULL);
    for (int i = 0; i < 5; i++) {
        struct evalrep_doc *d = &fx->docs[i];
        fx->items[i].id = (char *)(i == 4 ? "failed|doc" : "doc");
        fx->items[i].line = (size_t)i + 1;
        fx->items[i].req.text = (char *)"The document.";
        fx->items[i].req.text_len = 13;
        fx->items[i].req.max_words = 60;
        d->item = &fx->items[i];
        if (i == 4) {
            d->draft.asked = 1;
            snprintf(d->draft.error, sizeof(d->draft.error), "draft model failed");
            continue;
        }
        brief(&d->draft, drafts[i], dcost[i], 10);
        d->lp = (struct lp_summary){1, 10, means[i], means[i], means[i]};
        {
            struct route_input in;
            job_route_input(&d->item->req, d->draft.text, &d->lp, 0, &in);
            router_decide(fx->cfg->router, &in, NULL, &d->route);
            d->routed = 1;
        }
        if ((arms & (1u << EVALREP_REFINE)) || d->route.refine)
            brief(&d->refine, "The refined brief.", rcost[i], 20);
        d->complete = 1;
    }
    judged(&fx->docs[0].draft, 4, 4, 4);
    judged(&fx->docs[1].draft, 3, 3, 3);
    judged(&fx->docs[2].draft, 2, 2, 2);
    fx->docs[3].draft.judged = 1; /* a null judgement */
    snprintf(fx->docs[3].draft.judge.why, sizeof(fx->docs[3].draft.judge.why), "brevity: missing");
    judged(&fx->docs[0].refine, 5, 5, 5);
    {
        struct evalrep_brief *b[3] = {&fx->docs[0].draft, &fx->docs[0].refine,
                                      &fx->docs[2].refine};
        for (int k = 0; k < 3; k++) {
            b[k]->judge_answered = 1;
            b[k]->judge_cost_usd = 0.0001 * (k + 1);
            b[k]->judge_prompt_tokens = 500;
        }
    }
    judged(&fx->docs[1].refine, 5, 4, 5);
    judged(&fx->docs[2].refine, 4, 4, 4);
    judged(&fx->docs[3].refine, 5, 5, 5);
}

static cJSON *build(struct fixture *fx, unsigned arms)
{
    struct evalrep_in in;
    memset(&in, 0, sizeof(in));
    in.dataset_path = "data/x.jsonl";
    in.cfg = fx->cfg;
    in.arms = arms;
    in.docs = fx->docs;
    in.n = 5;
    in.judge_calls = 8;
    in.judge_failed = 0;
    return evalrep_json(&in);
}

static const cJSON *at(const cJSON *o, const char *path)
{
    char buf[200], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save))
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(t))
                             : cJSON_GetObjectItemCaseSensitive(o, t);
    return o;
}

static double n_at(const cJSON *o, const char *path)
{
    const cJSON *v = at(o, path);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_arms(void)
{
    struct fixture fx;
    cJSON *rep;
    const cJSON *ci;
    setup(&fx, EVALREP_ALL_ARMS);
    rep = build(&fx, EVALREP_ALL_ARMS);
    CHECK(rep != NULL);
    CHECK(n_at(rep, "dataset.n") == 5 && n_at(rep, "dataset.failed") == 1);
    CHECK_STR(cJSON_GetStringValue(at(rep, "judge")), "gpt-oss-20b");
    CHECK_STR(cJSON_GetStringValue(at(rep, "config_version")), fx.cfg->version);
    /* draft: costs summed in document order; quality over the 3 non-null judgements */
    CHECK(n_at(rep, "arms.draft.n") == 4 && n_at(rep, "arms.draft.refine_rate") == 0);
    CHECK(n_at(rep, "arms.draft.cost_usd.total") == 0.001 + 0.001 + 0.002 + 0.001);
    CHECK(n_at(rep, "arms.draft.cost_usd.per_job") == (0.001 + 0.001 + 0.002 + 0.001) / 4);
    CHECK_NEAR(n_at(rep, "arms.draft.quality.overall"), 3, EPS);
    CHECK_NEAR(n_at(rep, "arms.draft.quality.coherence"), 3, EPS);
    CHECK(n_at(rep, "arms.draft.quality.judged") == 3 && n_at(rep, "arms.draft.quality.null") == 1);
    ci = at(rep, "arms.draft.quality.overall_ci95");
    CHECK(cJSON_GetArraySize(ci) == 2);
    CHECK(n_at(ci, "0") <= 3 && n_at(ci, "1") >= 3 && n_at(ci, "0") >= 2 && n_at(ci, "1") <= 4);
    CHECK(n_at(rep, "arms.draft.latency_ms.total.p50") == 10);
    /* refine: draft + refine per document */
    CHECK(n_at(rep, "arms.refine.refine_rate") == 1);
    CHECK(n_at(rep, "arms.refine.cost_usd.total") ==
          (0.001 + 0.002) + (0.001 + 0.003) + (0.002 + 0.004) + (0.001 + 0.001));
    CHECK_NEAR(n_at(rep, "arms.refine.quality.overall"), (5 + 14 / 3.0 + 4 + 5) / 4, EPS);
    CHECK(n_at(rep, "arms.refine.latency_ms.total.p95") == 30);
    /* hybrid: keep, refine, refine, keep (guards off: max_refine_rate 0.1 does not hold) */
    CHECK(n_at(rep, "arms.hybrid.refine_rate") == 0.5);
    CHECK(n_at(rep, "arms.hybrid.cost_usd.total") ==
          0.001 + (0.001 + 0.003) + (0.002 + 0.004) + 0.001);
    CHECK_NEAR(n_at(rep, "arms.hybrid.quality.overall"), (4 + 14 / 3.0 + 4) / 3, EPS);
    CHECK(n_at(rep, "arms.hybrid.quality.null") == 1);
    CHECK(n_at(rep, "evaluation_usd") == (0.0001 + 0.0002) + 0.0003); /* document order */
    CHECK(n_at(rep, "documents.0.judge_usage.refine.cost_usd") == 0.0002);
    CHECK(n_at(rep, "documents.0.judge_usage.draft.prompt_tokens") == 500);
    CHECK(at(rep, "documents.1.judge_usage.draft") == NULL); /* no call of its own */
    CHECK(n_at(rep, "judgements.calls") == 8 && n_at(rep, "judgements.null") == 1);
    cJSON_Delete(rep);
    config_unref(fx.cfg);
}

/* The sweep point of policy index idx at threshold t. */
static const cJSON *point(const cJSON *rep, int idx, double t)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, at(rep, "sweep"))
        if (n_at(p, "index") == idx && fabs(n_at(p, "threshold") - t) < EPS)
            return p;
    return NULL;
}

static void expect_point(const cJSON *rep, int idx, double t, double rate, double q)
{
    const cJSON *p = point(rep, idx, t);
    int before = tcheck_fail_;
    CHECK(p != NULL);
    CHECK_NEAR(n_at(p, "refine_rate"), rate, EPS);
    CHECK_NEAR(n_at(p, "overall"), q, EPS);
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ for policies[%d] at %g\n", idx, t);
}

static void test_sweep(void)
{
    struct fixture fx;
    cJSON *rep;
    const double qr = 41 / 9.0; /* paired: d0, d1, d2 */
    setup(&fx, EVALREP_ALL_ARMS);
    rep = build(&fx, EVALREP_ALL_ARMS);
    CHECK(cJSON_GetArraySize(at(rep, "sweep")) == 5 + 6);
    /* length over draft lengths 1, 8, 11, 29 (0 is no threshold; 30 beyond), the chain
     * still has the confidence policy at -1.0 (refines d2) */
    CHECK(point(rep, 0, 0) == NULL);
    expect_point(rep, 0, 1, 1, qr);
    expect_point(rep, 0, 8, 0.75, qr);
    expect_point(rep, 0, 11, 0.75, qr);
    expect_point(rep, 0, 29, 0.5, 38 / 9.0);
    expect_point(rep, 0, 30, 0.25, 11 / 3.0);
    CHECK_STR(cJSON_GetStringValue(at(point(rep, 0, 30), "policy")), "length");
    /* only d2 refines: costs summed in document order, draft then refine */
    CHECK(n_at(point(rep, 0, 30), "cost_per_job") == (0.001 + 0.001 + (0.002 + 0.004) + 0.001) / 4);
    /* confidence over means -1.5, -0.5, -0.3, -0.2 (and -1.6, -0.1), length back at 20 */
    expect_point(rep, 2, -1.6, 0.25, (4 + 14 / 3.0 + 2) / 3);
    expect_point(rep, 2, -1.5, 0.25, (4 + 14 / 3.0 + 2) / 3);
    expect_point(rep, 2, -0.5, 0.5, 38 / 9.0);
    expect_point(rep, 2, -0.3, 0.75, qr);
    expect_point(rep, 2, -0.2, 1, qr);
    expect_point(rep, 2, -0.1, 1, qr);
    /* PGR over the paired documents: draft 3, refine 41/9; APGR and CPT by hand */
    CHECK_NEAR(n_at(rep, "quality_gap.draft"), 3, EPS);
    CHECK_NEAR(n_at(rep, "quality_gap.refine"), qr, EPS);
    CHECK_NEAR(n_at(rep, "quality_gap.gap"), 14 / 9.0, EPS);
    CHECK(n_at(rep, "quality_gap.n") == 3);
    CHECK(cJSON_IsNull(at(rep, "quality_gap.note")));
    CHECK_NEAR(n_at(rep, "quality_gap.hybrid_pgr"), (38 / 9.0 - 3) / (14 / 9.0), EPS);
    CHECK_NEAR(n_at(rep, "apgr"), 9.5 / 14, EPS);
    CHECK_NEAR(n_at(rep, "cpt.50"), 0.3, EPS);
    CHECK_NEAR(n_at(rep, "cpt.80"), 0.5 + 0.2 * 0.25 / 3, EPS);
    cJSON_Delete(rep);
    config_unref(fx.cfg);
}

static void test_undefined(void)
{
    struct fixture fx;
    cJSON *rep;
    /* refine scores below the drafts: the gap is negative */
    setup(&fx, EVALREP_ALL_ARMS);
    judged(&fx.docs[0].refine, 1, 1, 1);
    judged(&fx.docs[1].refine, 1, 1, 1);
    judged(&fx.docs[2].refine, 1, 1, 1);
    rep = build(&fx, EVALREP_ALL_ARMS);
    CHECK(cJSON_IsNull(at(rep, "apgr")));
    CHECK(cJSON_IsNull(at(rep, "cpt.50")) && cJSON_IsNull(at(rep, "cpt.80")));
    CHECK(strstr(cJSON_GetStringValue(at(rep, "quality_gap.note")), "gap <= 0") != NULL);
    CHECK(cJSON_GetArraySize(at(rep, "sweep")) == 11); /* the curve is still shown */
    cJSON_Delete(rep);
    config_unref(fx.cfg);
    /* without the refine arm: no sweep */
    setup(&fx, (1u << EVALREP_DRAFT) | (1u << EVALREP_HYBRID));
    rep = build(&fx, (1u << EVALREP_DRAFT) | (1u << EVALREP_HYBRID));
    CHECK(at(rep, "arms.refine") == NULL && at(rep, "arms.hybrid") != NULL);
    CHECK(cJSON_GetArraySize(at(rep, "sweep")) == 0);
    CHECK(cJSON_IsNull(at(rep, "apgr")));
    CHECK(strstr(cJSON_GetStringValue(at(rep, "quality_gap.note")), "both the draft and the "
                                                                   "refine arm") != NULL);
    cJSON_Delete(rep);
    config_unref(fx.cfg);
}

static void test_documents(void)
{
    struct fixture fx;
    cJSON *rep;
    const cJSON *d3, *d4;
    setup(&fx, EVALREP_ALL_ARMS);
    rep = build(&fx, EVALREP_ALL_ARMS);
    CHECK(cJSON_GetArraySize(at(rep, "documents")) == 5);
    CHECK_STR(cJSON_GetStringValue(at(rep, "documents.1.decision")), "refine");
    CHECK_STR(cJSON_GetStringValue(at(rep, "documents.0.decision")), "keep");
    CHECK(n_at(rep, "documents.1.scores.refine.faithfulness") == 4);
    CHECK_STR(cJSON_GetStringValue(at(rep, "documents.1.scores.refine.rationale")), "r545");
    CHECK(n_at(rep, "documents.1.cost_usd.refine") == 0.003);
    CHECK(n_at(rep, "documents.1.usage.draft.prompt_tokens") == 100);
    CHECK_STR(cJSON_GetStringValue(at(rep, "documents.1.briefs.draft")),
              "a much longer draft text here");
    CHECK(at(rep, "documents.1.error") == NULL);
    d3 = at(rep, "documents.3");
    CHECK(cJSON_IsNull(at(d3, "scores.draft")));
    CHECK_STR(cJSON_GetStringValue(at(d3, "judge_errors.draft")), "brevity: missing");
    d4 = at(rep, "documents.4");
    CHECK(cJSON_IsNull(at(d4, "decision")));
    CHECK_STR(cJSON_GetStringValue(at(d4, "error")), "draft model failed");
    CHECK(n_at(d4, "line") == 5);
    cJSON_Delete(rep);
    config_unref(fx.cfg);
}

static void test_pages(void)
{
    struct fixture fx;
    cJSON *rep, *back;
    char *table, *md, *html, *json;
    setup(&fx, EVALREP_ALL_ARMS);
    rep = build(&fx, EVALREP_ALL_ARMS);
    table = evalpage_table(rep);
    md = evalpage_markdown(rep);
    html = evalpage_html(rep);
    json = evalpage_json(rep);
    CHECK(table && md && html && json);
    if (!table || !md || !html || !json)
        goto out;
    CHECK(strstr(table, "| draft | 4 | 0.000 | 3.000 | ") != NULL);
    CHECK(strstr(table, "| hybrid | 4 | 0.500 | 4.222 | ") != NULL);
    CHECK(strstr(md, table) != NULL);                     /* the same rows */
    CHECK(strstr(md, "APGR 0.679; CPT(50%) 0.300, CPT(80%) 0.517") != NULL);
    CHECK(strstr(md, "| failed\\|doc | n/a |") != NULL);  /* '|' escaped in a cell */
    CHECK(strstr(html, "<td>hybrid</td><td class=\"num\">4</td><td class=\"num\">0.500</td>"
                       "<td class=\"num\">4.222</td>") != NULL);
    CHECK(strstr(html, "<svg") != NULL && strstr(html, "<script") == NULL);
    CHECK(strstr(html, "http://") == NULL || strstr(html, "http://www.w3.org/2000/svg") != NULL);
    CHECK(strstr(html, "failed|doc") != NULL);
    back = cJSON_Parse(json);
    CHECK(back && cJSON_Compare(back, rep, 1)); /* exact numbers survive the indentation */
    CHECK(json[strlen(json) - 1] == '\n' && strchr(json, '\n') < json + strlen(json) - 1);
    cJSON_Delete(back);
    free(html);
    /* text from the dataset is escaped: it never becomes markup */
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(rep, "dataset"), "path",
                              cJSON_CreateString("<b>data&'set\".jsonl"));
    html = evalpage_html(rep);
    CHECK(html && strstr(html, "&lt;b&gt;data&amp;&#39;set&quot;.jsonl") != NULL);
    CHECK(html && strstr(html, "<b>data") == NULL);
out:
    free(table);
    free(md);
    free(html);
    free(json);
    cJSON_Delete(rep);
    config_unref(fx.cfg);
}

static void test_parse_arms(void)
{
    unsigned m = 0;
    CHECK(evalrep_parse_arms("draft,refine,hybrid", &m) == 0 && m == 7);
    CHECK(evalrep_parse_arms("hybrid", &m) == 0 && m == 4);
    CHECK(evalrep_parse_arms("refine,draft", &m) == 0 && m == 3);
    CHECK(evalrep_parse_arms("", &m) == -1);
    CHECK(evalrep_parse_arms("draft,", &m) == -1);
    CHECK(evalrep_parse_arms(",draft", &m) == -1);
    CHECK(evalrep_parse_arms("draft,draft", &m) == -1);
    CHECK(evalrep_parse_arms("drafts", &m) == -1);
    CHECK(evalrep_parse_arms("draft refine", &m) == -1);
    CHECK_STR(evalrep_arm_name(EVALREP_HYBRID), "hybrid");
}

int main(void)
{
    test_arms();
    test_sweep();
    test_undefined();
    test_documents();
    test_pages();
    test_parse_arms();
    return tcheck_summary("test_evalrep");
}
