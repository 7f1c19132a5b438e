/* test_router.c - unit tests of router/: parse, defaults, modes, guards, JSON output. */
#include "router.h"

#include <stdlib.h>

#include <cjson/cJSON.h>

#include "tcheck.h"

/* The routing object of docs/CONFIG.md, verbatim. */
static const char spec_routing[] =
    "{\"mode\": \"any\","
    " \"policies\": ["
    "   {\"type\": \"length\", \"min_chars\": 600},"
    "   {\"type\": \"topic\", \"flags\": [\"legal\", \"security\", \"exec\"],"
    "    \"keywords\": [\"lawsuit\", \"breach\"]},"
    "   {\"type\": \"confidence\", \"min_mean_logprob\": -0.8, \"on_missing\": \"keep\"}"
    " ],"
    " \"guards\": {\"max_refine_rate\": 0.5, \"daily_refine_budget_usd\": null}}";

/* A chain whose votes the tests steer: length refines drafts of >= 10 chars, topic refines
 * the request flag "x", confidence refines mean logprob < -1 and abstains without logprobs. */
#define STEER_POLICIES(wl, wt, wc)                                                         \
    "[{\"type\": \"length\", \"min_chars\": 10, \"weight\": " wl "},"                      \
    " {\"type\": \"topic\", \"flags\": [\"x\"], \"weight\": " wt "},"                      \
    " {\"type\": \"confidence\", \"min_mean_logprob\": -1, \"on_missing\": \"abstain\","   \
    "  \"weight\": " wc "}]"

/* ---- helpers ---- */

static struct router *parse_ok(const char *json)
{
    cJSON *conf = json ? cJSON_Parse(json) : NULL;
    struct cfg_err err = {"", ""};
    struct router *r = NULL;
    int rc;

    CHECK(!json || conf);
    rc = router_parse(conf, &r, &err);
    CHECK(rc == 0);
    CHECK(r != NULL);
    if (rc != 0)
        fprintf(stderr, "  unexpected error: %s: %s\n", err.path, err.msg);
    cJSON_Delete(conf);
    return r;
}

static void parse_err(const char *json, const char *path, const char *msg)
{
    cJSON *conf = cJSON_Parse(json);
    struct cfg_err err = {"", ""};
    struct router *r = NULL;

    CHECK(conf != NULL);
    CHECK(router_parse(conf, &r, &err) == -1);
    CHECK(r == NULL);
    router_free(r);
    CHECK_STR(err.path, path);
    CHECK_STR(err.msg, msg);
    cJSON_Delete(conf);
}

/* How each steered policy should vote. */
struct votes {
    int len;   /* 1: refine, 0: keep */
    int topic; /* 1: refine, 0: keep */
    int conf;  /* 1: refine, 0: keep, -1: abstain */
};

static void steer_decide(const struct router *r, struct votes want, const struct guard_input *g,
                         struct route_result *res)
{
    static const char *const flag_x[] = {"x"};
    const double unsure[] = {-2.0}, sure[] = {-0.1};
    struct route_input in;

    memset(&in, 0, sizeof in);
    in.text = "document";
    in.text_len = strlen(in.text);
    in.draft = want.len ? "a long enough draft" : "short";
    in.draft_len = strlen(in.draft);
    in.topic_flags = flag_x;
    in.n_topic_flags = want.topic ? 1 : 0;
    if (want.conf >= 0)
        lp_summarize(want.conf ? unsure : sure, 1, &in.lp);
    router_decide(r, &in, g, res);
}

static struct router *steer_router(const char *mode, const char *policies, const char *extra)
{
    char json[1024];

    snprintf(json, sizeof json, "{\"mode\": \"%s\", \"policies\": %s%s}", mode, policies,
             extra ? extra : "");
    return parse_ok(json);
}

static cJSON *result_json(const struct route_result *res)
{
    cJSON *j = route_result_json(res);
    char *text = cJSON_PrintUnformatted(j);
    cJSON *back = cJSON_Parse(text); /* what a client sees: the printed text, parsed back */

    CHECK(j != NULL && text != NULL && back != NULL);
    free(text);
    cJSON_Delete(j);
    return back;
}

static const char *jstr(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static const cJSON *jverdict(const cJSON *o, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "verdicts"), i);
}

/* ---- parse ---- */

static void check_default_describe(const struct router *r)
{
    static const char want[] =
        "{\"mode\":\"any\",\"threshold\":0.5,\"pre_route\":false,\"policies\":["
        "{\"type\":\"length\",\"weight\":1,\"min_chars\":600,\"min_input_chars\":null},"
        "{\"type\":\"topic\",\"weight\":1,\"flags\":[\"legal\",\"security\",\"exec\"],"
        "\"keywords\":[\"lawsuit\",\"breach\"]},"
        "{\"type\":\"confidence\",\"weight\":1,\"min_mean_logprob\":-0.8,"
        "\"min_p10_logprob\":null,\"on_missing\":\"keep\",\"min_tokens\":1}],"
        "\"guards\":{\"max_refine_rate\":0.5,\"window_s\":3600,\"min_samples\":20,"
        "\"exempt_policies\":[],\"daily_refine_budget_usd\":null}}";
    cJSON *d = router_describe(r);
    char *s = cJSON_PrintUnformatted(d);

    CHECK_STR(s, want);
    free(s);
    cJSON_Delete(d);
}

static void test_defaults(void)
{
    struct router *r = parse_ok(NULL);
    struct router *e = parse_ok("{}");
    struct router *g = parse_ok("{\"guards\": {}}");

    CHECK(r && e && g);
    if (r && e && g) {
        check_default_describe(r);
        check_default_describe(e);
        check_default_describe(g);
        CHECK(router_guard_max_rate(r) == 0.5);
        CHECK(router_guard_window_s(r) == 3600);
        CHECK(router_guard_daily_budget(r) < 0);
    }
    router_free(r);
    router_free(e);
    router_free(g);
    router_free(NULL);
    CHECK_STR(route_mode_name(ROUTE_ANY), "any");
    CHECK_STR(route_mode_name(ROUTE_ALL), "all");
    CHECK_STR(route_mode_name(ROUTE_SCORE), "score");
    CHECK_STR(route_mode_name((enum route_mode)9), "unknown");
}

static void test_parse_spec(void)
{
    static const char want_topic[] =
        "{\"type\":\"topic\",\"weight\":1,\"flags\":[\"legal\",\"security\",\"exec\"],"
        "\"keywords\":[\"lawsuit\",\"breach\"]}";
    struct router *r = parse_ok(spec_routing);
    cJSON *d = r ? router_describe(r) : NULL;
    cJSON *pol = cJSON_GetObjectItemCaseSensitive(d, "policies");
    char *topic = cJSON_PrintUnformatted(cJSON_GetArrayItem(pol, 1));
    struct router *again = NULL;
    struct cfg_err err;
    cJSON *d2;

    CHECK(cJSON_GetArraySize(pol) == 3);
    CHECK_STR(jstr(cJSON_GetArrayItem(pol, 0), "type"), "length");
    CHECK_STR(jstr(cJSON_GetArrayItem(pol, 2), "type"), "confidence");
    CHECK_STR(topic, want_topic);
    CHECK(router_guard_max_rate(r) == 0.5);
    CHECK(router_guard_daily_budget(r) < 0);
    /* describe's output is itself a valid routing object that describes the same */
    CHECK(router_parse(d, &again, &err) == 0);
    d2 = again ? router_describe(again) : NULL;
    CHECK(cJSON_Compare(d, d2, 1));
    free(topic);
    cJSON_Delete(d);
    cJSON_Delete(d2);
    router_free(again);
    router_free(r);
}

static void test_parse_settings(void)
{
    struct router *r = parse_ok("{\"mode\": \"score\", \"threshold\": 0.25, \"policies\": "
                                "[{\"type\": \"length\", \"min_chars\": 5, \"weight\": 2.5},"
                                " {\"type\": \"length\", \"min_chars\": 50}],"
                                " \"guards\": {\"max_refine_rate\": null, \"window_s\": 600,"
                                " \"daily_refine_budget_usd\": 2.5}}");
    cJSON *d = r ? router_describe(r) : NULL;
    cJSON *pol = cJSON_GetObjectItemCaseSensitive(d, "policies");
    cJSON *guards = cJSON_GetObjectItemCaseSensitive(d, "guards");

    CHECK_STR(jstr(d, "mode"), "score");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "threshold")) == 0.25);
    CHECK(cJSON_GetArraySize(pol) == 2); /* duplicate types are allowed */
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(pol, 0), "weight")) == 2.5);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetArrayItem(pol, 1), "min_chars")) ==
          50);
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(guards, "max_refine_rate")));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(guards, "daily_refine_budget_usd")) == 2.5);
    CHECK(router_guard_max_rate(r) <= 0);
    CHECK(router_guard_window_s(r) == 600);
    CHECK(router_guard_daily_budget(r) == 2.5);
    cJSON_Delete(d);
    router_free(r);
    r = parse_ok("{\"mode\": \"all\", \"policies\": [], \"guards\": {\"max_refine_rate\": 1,"
                 " \"window_s\": 10, \"daily_refine_budget_usd\": 0}}");
    CHECK(router_guard_max_rate(r) == 1);
    CHECK(router_guard_window_s(r) == 10);
    CHECK(router_guard_daily_budget(r) == 0);
    router_free(r);
}

static void test_parse_errors(void)
{
    parse_err("\"any\"", "routing", "expected object");
    parse_err("{\"foo\": 1}", "routing.foo", "unknown key");
    parse_err("{\"mode\": \"all\", \"mode\": \"any\"}", "routing.mode", "duplicate key");
    parse_err("{\"policies\": [{\"type\": \"length\", \"min_chars\": 5, \"min_chars\": 9}]}",
              "routing.policies[0].min_chars", "duplicate key");
    parse_err("{\"mode\": 1}", "routing.mode", "expected one of any, all, score");
    parse_err("{\"mode\": \"most\"}", "routing.mode", "expected one of any, all, score");
    parse_err("{\"threshold\": \"high\"}", "routing.threshold", "expected number");
    parse_err("{\"threshold\": 1.5}", "routing.threshold", "must be in [0, 1]");
    parse_err("{\"threshold\": -0.1}", "routing.threshold", "must be in [0, 1]");
    parse_err("{\"policies\": {}}", "routing.policies", "expected array");
    parse_err("{\"policies\": [1]}", "routing.policies[0]", "expected object");
    parse_err("{\"policies\": [{}]}", "routing.policies[0].type", "required");
    parse_err("{\"policies\": [{\"type\": 1}]}", "routing.policies[0].type", "expected string");
    parse_err("{\"policies\": [{\"type\": \"length\"}, {\"type\": \"x\"}]}",
              "routing.policies[1].type", "unknown policy 'x'");
    parse_err("{\"policies\": [{\"type\": \"length\", \"weight\": \"heavy\"}]}",
              "routing.policies[0].weight", "expected number");
    parse_err("{\"policies\": [{\"type\": \"length\", \"weight\": 0}]}",
              "routing.policies[0].weight", "must be > 0");
    parse_err("{\"policies\": [{\"type\": \"topic\", \"weight\": -1}]}",
              "routing.policies[0].weight", "must be > 0");
    /* an error deep in the chain: the policies parsed before it are released (ASan checks) */
    parse_err("{\"policies\": [{\"type\": \"length\"}, {\"type\": \"topic\"},"
              " {\"type\": \"confidence\", \"min_mean_logprob\": \"high\"}]}",
              "routing.policies[2].min_mean_logprob", "expected number");
    parse_err("{\"policies\": [{\"type\": \"length\", \"min_chars\": 10, \"flags\": []}]}",
              "routing.policies[0].flags", "unknown key");
    /* an error after the chain was built */
    parse_err("{\"guards\": 1}", "routing.guards", "expected object");
    parse_err("{\"guards\": {\"max_rate\": 1}}", "routing.guards.max_rate", "unknown key");
    parse_err("{\"guards\": {\"max_refine_rate\": 0}}", "routing.guards.max_refine_rate",
              "must be in (0, 1]");
    parse_err("{\"guards\": {\"max_refine_rate\": 1.5}}", "routing.guards.max_refine_rate",
              "must be in (0, 1]");
    parse_err("{\"guards\": {\"max_refine_rate\": \"half\"}}", "routing.guards.max_refine_rate",
              "expected number or null");
    parse_err("{\"guards\": {\"window_s\": 5}}", "routing.guards.window_s", "must be >= 10");
    parse_err("{\"guards\": {\"window_s\": 90000}}", "routing.guards.window_s",
              "must be <= 86400");
    parse_err("{\"guards\": {\"window_s\": 60.5}}", "routing.guards.window_s",
              "expected integer");
    parse_err("{\"guards\": {\"window_s\": null}}", "routing.guards.window_s",
              "expected integer");
    parse_err("{\"guards\": {\"daily_refine_budget_usd\": -1}}",
              "routing.guards.daily_refine_budget_usd", "must be >= 0");
    parse_err("{\"guards\": {\"daily_refine_budget_usd\": \"1\"}}",
              "routing.guards.daily_refine_budget_usd", "expected number or null");
}

static void test_parse_limits(void)
{
    char json[2048] = "{\"policies\": [";
    struct router *r;

    for (int i = 0; i < ROUTER_MAX_POLICIES; i++)
        strcat(json, i ? ", {\"type\": \"topic\"}" : "{\"type\": \"topic\"}");
    strcat(json, "]}");
    r = parse_ok(json); /* 16 is fine */
    router_free(r);
    json[strlen(json) - 2] = '\0';
    strcat(json, ", {\"type\": \"topic\"}]}");
    parse_err(json, "routing.policies", "at most 16 policies");
}

/* ---- decide ---- */

static void test_spec_example(void)
{
    struct router *r = parse_ok(spec_routing);
    const double lp[] = {-0.30, -0.32};
    char draft[813];
    struct route_input in;
    struct route_result res;
    cJSON *j;

    memset(draft, 'w', 812);
    draft[812] = '\0';
    memset(&in, 0, sizeof in);
    in.text = "quarterly numbers";
    in.text_len = strlen(in.text);
    in.draft = draft;
    in.draft_len = 812;
    lp_summarize(lp, 2, &in.lp);
    router_decide(r, &in, NULL, &res);
    CHECK(res.refine == 1 && res.policy_refine == 1 && res.guarded == 0);
    CHECK(res.n == 3);
    CHECK(res.v[0].policy == policy_length_ops.name);
    j = result_json(&res);
    CHECK(cJSON_GetArraySize(j) == 4); /* decision, mode, stage, verdicts: nothing else */
    CHECK_STR(jstr(j, "stage"), "draft");
    CHECK_STR(jstr(j, "decision"), "refine");
    CHECK_STR(jstr(j, "mode"), "any");
    CHECK(!cJSON_HasObjectItem(j, "score"));
    CHECK(!cJSON_HasObjectItem(j, "guarded"));
    CHECK_STR(jstr(jverdict(j, 0), "policy"), "length");
    CHECK_STR(jstr(jverdict(j, 0), "verdict"), "refine");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(jverdict(j, 0), "score")) == 812);
    CHECK_STR(jstr(jverdict(j, 0), "detail"), "draft 812 chars >= 600");
    CHECK_STR(jstr(jverdict(j, 1), "policy"), "topic");
    CHECK_STR(jstr(jverdict(j, 1), "verdict"), "keep");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(jverdict(j, 1), "score")) == 0); /* no hits */
    CHECK_STR(jstr(jverdict(j, 1), "detail"), "no flagged topic");
    CHECK_STR(jstr(jverdict(j, 2), "policy"), "confidence");
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(jverdict(j, 2), "score")), -0.31, 1e-12);
    CHECK_STR(jstr(jverdict(j, 2), "detail"), "mean logprob -0.31 >= -0.8");
    CHECK(cJSON_GetArraySize(jverdict(j, 2)) == 4);
    CHECK(jverdict(j, 3) == NULL);
    cJSON_Delete(j);
    router_free(r);
}

static void test_mode_any(void)
{
    struct router *r = steer_router("any", STEER_POLICIES("1", "1", "1"), NULL);
    struct route_result res;

    steer_decide(r, (struct votes){0, 0, 0}, NULL, &res);
    CHECK(res.refine == 0 && res.policy_refine == 0 && res.n == 3);
    CHECK(res.mode == ROUTE_ANY && res.score == 0);
    steer_decide(r, (struct votes){0, 1, 0}, NULL, &res);
    CHECK(res.refine == 1);
    CHECK(res.v[1].kind == VERDICT_REFINE && res.v[0].kind == VERDICT_KEEP);
    steer_decide(r, (struct votes){0, 0, 1}, NULL, &res);
    CHECK(res.refine == 1);
    steer_decide(r, (struct votes){0, 0, -1}, NULL, &res);
    CHECK(res.refine == 0);
    CHECK(res.v[2].kind == VERDICT_ABSTAIN);
    router_free(r);
}

static void test_mode_all(void)
{
    struct router *r = steer_router("all", STEER_POLICIES("1", "1", "1"), NULL);
    struct router *abstainer = steer_router(
        "all", "[{\"type\": \"confidence\", \"on_missing\": \"abstain\"}]", NULL);
    struct route_result res;

    steer_decide(r, (struct votes){1, 1, 1}, NULL, &res);
    CHECK(res.refine == 1 && res.mode == ROUTE_ALL);
    steer_decide(r, (struct votes){1, 1, -1}, NULL, &res); /* abstain does not block */
    CHECK(res.refine == 1);
    steer_decide(r, (struct votes){1, 0, 1}, NULL, &res);
    CHECK(res.refine == 0);
    steer_decide(r, (struct votes){0, 0, 0}, NULL, &res);
    CHECK(res.refine == 0);
    steer_decide(abstainer, (struct votes){1, 1, -1}, NULL, &res); /* nobody votes: keep */
    CHECK(res.refine == 0 && res.n == 1);
    CHECK(res.v[0].kind == VERDICT_ABSTAIN);
    router_free(r);
    router_free(abstainer);
}

static void check_score(const struct router *r, struct votes want, int refine, double score)
{
    struct route_result res;
    cJSON *j;

    steer_decide(r, want, NULL, &res);
    CHECK(res.refine == refine);
    CHECK(res.mode == ROUTE_SCORE);
    CHECK_NEAR(res.score, score, 1e-12);
    j = result_json(&res);
    CHECK_STR(jstr(j, "decision"), refine ? "refine" : "keep");
    CHECK_STR(jstr(j, "mode"), "score");
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "score")), score, 1e-12);
    cJSON_Delete(j);
}

static void test_mode_score(void)
{
    struct router *r = steer_router("score", STEER_POLICIES("3", "1", "1"),
                                    ", \"threshold\": 0.6");
    struct router *t0 = steer_router("score", STEER_POLICIES("1", "1", "1"),
                                     ", \"threshold\": 0");
    struct router *t1 = steer_router("score", STEER_POLICIES("1", "1", "1"),
                                     ", \"threshold\": 1");
    struct router *dflt = steer_router("score", STEER_POLICIES("1", "1", "1"), NULL);

    check_score(r, (struct votes){1, 0, 0}, 1, 0.6);   /* 3 / 5, exactly the threshold */
    check_score(r, (struct votes){0, 1, 1}, 0, 0.4);   /* 2 / 5 */
    check_score(r, (struct votes){1, 0, -1}, 1, 0.75); /* abstain leaves the sum: 3 / 4 */
    check_score(r, (struct votes){0, 1, -1}, 0, 0.25);
    check_score(r, (struct votes){1, 1, 1}, 1, 1.0);
    check_score(r, (struct votes){0, 0, 0}, 0, 0.0);
    check_score(t0, (struct votes){0, 0, 0}, 0, 0.0);  /* threshold 0 still needs a refine */
    check_score(t0, (struct votes){0, 0, 1}, 1, 1.0 / 3);
    check_score(t1, (struct votes){1, 1, 0}, 0, 2.0 / 3);
    check_score(t1, (struct votes){1, 1, 1}, 1, 1.0);
    check_score(dflt, (struct votes){1, 0, -1}, 1, 0.5); /* default threshold 0.5 */
    check_score(dflt, (struct votes){1, 0, 0}, 0, 1.0 / 3);
    router_free(r);
    router_free(t0);
    router_free(t1);
    router_free(dflt);
}

static void test_empty_chain(void)
{
    static const char *const modes[] = {"any", "all", "score"};

    for (int i = 0; i < 3; i++) {
        struct router *r = steer_router(modes[i], "[]", NULL);
        struct guard_input g = {.have_rate = 1, .decided = 100, .have_spend = 1};
        struct route_result res;
        cJSON *j;

        steer_decide(r, (struct votes){1, 1, 1}, &g, &res);
        CHECK(res.refine == 0 && res.policy_refine == 0 && res.guarded == 0);
        CHECK(res.n == 0 && res.score == 0);
        j = result_json(&res);
        CHECK_STR(jstr(j, "decision"), "keep");
        CHECK_STR(jstr(j, "mode"), modes[i]);
        CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "verdicts")));
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "verdicts")) == 0);
        cJSON_Delete(j);
        router_free(r);
    }
}

/* ---- guards ---- */

static void test_guard_rate(void)
{
    struct router *r = steer_router("any", STEER_POLICIES("1", "1", "1"), NULL);
    struct guard_input g = {.have_rate = 1, .recent_refine_rate = 0.62, .decided = 100};
    struct route_result res;
    const struct verdict *v = &res.v[3];
    cJSON *j;

    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.policy_refine == 1 && res.guarded == 1);
    CHECK(res.n == 4);
    CHECK_STR(v->policy, "guard:max_refine_rate");
    CHECK(v->kind == VERDICT_KEEP && v->has_score && v->score == 0.62);
    CHECK_STR(v->detail, "refine rate 0.620 of 100 decided jobs over 3600 s >= max 0.5; a weak "
                         "refinement held back first");
    j = result_json(&res);
    CHECK_STR(jstr(j, "decision"), "keep");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "guarded")));
    CHECK_STR(jstr(jverdict(j, 3), "policy"), "guard:max_refine_rate");
    CHECK_STR(jstr(jverdict(j, 3), "verdict"), "keep");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(jverdict(j, 3), "score")) == 0.62);
    cJSON_Delete(j);
    g.recent_refine_rate = 0.5; /* at the max: held back */
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1);
    g.recent_refine_rate = 0.49;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0 && res.n == 3);
    j = result_json(&res);
    CHECK(!cJSON_HasObjectItem(j, "guarded"));
    cJSON_Delete(j);
    g.recent_refine_rate = 0.9;
    g.have_rate = 0; /* figure unknown: no hold */
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1 && res.n == 3);
    steer_decide(r, (struct votes){1, 0, 0}, NULL, &res);
    CHECK(res.refine == 1 && res.n == 3);
    g.have_rate = 1; /* the policies keep: the guard adds nothing */
    steer_decide(r, (struct votes){0, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 0 && res.n == 3);
    router_free(r);
}

static void test_guard_rate_settings(void)
{
    struct router *off = steer_router("any", STEER_POLICIES("1", "1", "1"),
                                      ", \"guards\": {\"max_refine_rate\": null}");
    struct router *win = steer_router("any", STEER_POLICIES("1", "1", "1"),
                                      ", \"guards\": {\"max_refine_rate\": 0.25,"
                                      " \"window_s\": 600}");
    struct guard_input g = {.have_rate = 1, .recent_refine_rate = 1.0, .decided = 100};
    struct route_result res;

    steer_decide(off, (struct votes){1, 1, 1}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0);
    g.recent_refine_rate = 0.3;
    steer_decide(win, (struct votes){1, 1, 1}, &g, &res);
    CHECK(res.refine == 0 && res.n == 4);
    CHECK_STR(res.v[3].detail, "refine rate 0.300 of 100 decided jobs over 600 s >= max 0.25; "
                               "a strong refinement held back (rate 10% over the max)");
    router_free(off);
    router_free(win);
}

static void test_guard_budget(void)
{
    struct router *r = steer_router("any", STEER_POLICIES("1", "1", "1"),
                                    ", \"guards\": {\"daily_refine_budget_usd\": 1.0}");
    struct router *none = steer_router("any", STEER_POLICIES("1", "1", "1"), NULL);
    struct guard_input g = {.have_spend = 1, .spent_today_usd = 0.9,
                           .est_refine_cost_usd = 0.1};
    struct route_result res;

    steer_decide(r, (struct votes){0, 1, 0}, &g, &res);
    CHECK(res.refine == 0 && res.policy_refine == 1 && res.guarded == 1 && res.n == 4);
    CHECK_STR(res.v[3].policy, "guard:daily_refine_budget");
    CHECK(res.v[3].kind == VERDICT_KEEP && res.v[3].has_score);
    CHECK_NEAR(res.v[3].score, 1.0, 1e-12);
    CHECK_STR(res.v[3].detail,
              "spent today 0.900000 + est 0.100000 USD >= daily budget 1 USD; draft kept");
    g.spent_today_usd = 0.5;
    steer_decide(r, (struct votes){0, 1, 0}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0 && res.n == 3);
    g.spent_today_usd = 5;
    g.have_spend = 0;
    steer_decide(r, (struct votes){0, 1, 0}, &g, &res);
    CHECK(res.refine == 1 && res.n == 3);
    g.have_spend = 1; /* no budget configured (the default): never holds */
    steer_decide(none, (struct votes){0, 1, 0}, &g, &res);
    CHECK(res.refine == 1 && res.n == 3);
    router_free(r);
    router_free(none);
}

static void test_guard_both(void)
{
    struct router *r = steer_router("any", STEER_POLICIES("1", "1", "1"),
                                    ", \"guards\": {\"max_refine_rate\": 0.5,"
                                    " \"daily_refine_budget_usd\": 0}");
    struct guard_input g = {.have_rate = 1, .recent_refine_rate = 0.7, .decided = 100,
                           .have_spend = 1, .est_refine_cost_usd = 0.001};
    struct route_result res;
    cJSON *j;

    steer_decide(r, (struct votes){1, 1, 1}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1 && res.n == 5);
    CHECK_STR(res.v[3].policy, "guard:max_refine_rate");
    CHECK_STR(res.v[4].policy, "guard:daily_refine_budget");
    j = result_json(&res);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "verdicts")) == 5);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "guarded")));
    cJSON_Delete(j);
    g.recent_refine_rate = 0.1; /* only the (zero) budget holds */
    steer_decide(r, (struct votes){1, 1, 1}, &g, &res);
    CHECK(res.refine == 0 && res.n == 4);
    CHECK_STR(res.v[3].policy, "guard:daily_refine_budget");
    router_free(r);
}

/* The rate guard waits for min_samples decided jobs; strong refinements survive a rate
 * just over the max; exempt policies are never held back. */
static void test_guard_samples_strength_exempt(void)
{
    struct router *r = steer_router("any", STEER_POLICIES("1", "1", "1"),
                                    ", \"guards\": {\"max_refine_rate\": 0.5,"
                                    " \"min_samples\": 30, \"exempt_policies\": [\"topic\"]}");
    struct guard_input g = {.have_rate = 1, .recent_refine_rate = 0.9, .decided = 29};
    struct route_result res;

    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0); /* 29 < min_samples */
    g.decided = 30;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1);
    /* an exempt policy asked: never held back */
    steer_decide(r, (struct votes){0, 1, 0}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0);
    CHECK_STR(res.exempt, "topic");
    /* two votes make a strong refinement: kept until 10% over the max */
    g.recent_refine_rate = 0.52;
    steer_decide(r, (struct votes){1, 0, 1}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0);
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res); /* a weak one at the same rate */
    CHECK(res.refine == 0 && res.guarded == 1);
    g.recent_refine_rate = 0.55;
    steer_decide(r, (struct votes){1, 0, 1}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1);
    /* a tenant's own rate limit, with its own figures */
    g.recent_refine_rate = 0.1;
    g.have_tenant_rate = 1;
    g.tenant_max_rate = 0.2;
    g.tenant_refine_rate = 0.4;
    g.tenant_decided = 50;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1);
    CHECK_STR(res.v[res.n - 1].policy, "guard:tenant_refine_rate");
    g.tenant_decided = 10;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1);
    router_free(r);
    /* the default min_samples is 20 */
    r = steer_router("any", STEER_POLICIES("1", "1", "1"), NULL);
    g = (struct guard_input){.have_rate = 1, .recent_refine_rate = 1.0, .decided = 19};
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1);
    g.decided = 20;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 0);
    router_free(r);
}

/* A tenant's budget: a refinement whose upper bound would take the tenant past its budget
 * is held back, whoever asked for it (exempt policies included); within it, it goes on. */
static void test_guard_tenant_budget(void)
{
    struct router *r = steer_router("any", STEER_POLICIES("1", "1", "1"),
                                    ", \"guards\": {\"max_refine_rate\": null,"
                                    " \"exempt_policies\": [\"topic\"]}");
    struct guard_input g = {.have_tenant_budget = 1, .tenant_budget_usd = 1.0,
                            .tenant_spent_usd = 0.7, .tenant_est_refine_usd = 0.3};
    struct route_result res;
    cJSON *j;

    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0); /* 0.7 + 0.3 = the budget: still within */
    g.tenant_est_refine_usd = 0.31;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1);
    CHECK(res.policy_refine == 1);
    CHECK_STR(res.v[res.n - 1].policy, "guard:tenant_budget");
    CHECK(res.v[res.n - 1].kind == VERDICT_KEEP);
    CHECK_NEAR(res.v[res.n - 1].score, 1.01, 1e-12);
    CHECK(strstr(res.v[res.n - 1].detail, "daily budget 1 USD") != NULL);
    j = route_result_json(&res);
    CHECK_STR(jstr(j, "decision"), "keep");
    cJSON_Delete(j);
    /* a spending cap binds what an exempt policy asked for too */
    steer_decide(r, (struct votes){0, 1, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 1);
    CHECK_STR(res.v[res.n - 1].policy, "guard:tenant_budget");
    /* a keep decision is not touched; no budget, no guard */
    steer_decide(r, (struct votes){0, 0, 0}, &g, &res);
    CHECK(res.refine == 0 && res.guarded == 0);
    g.have_tenant_budget = 0;
    steer_decide(r, (struct votes){1, 0, 0}, &g, &res);
    CHECK(res.refine == 1 && res.guarded == 0);
    router_free(r);
}

/* Pre-routing decides on the input alone with the policies that can. */
static void test_pre_route(void)
{
    struct router *on = parse_ok("{\"pre_route\": true, \"policies\": ["
                                 "{\"type\": \"length\", \"min_chars\": 600,"
                                 " \"min_input_chars\": 50},"
                                 "{\"type\": \"topic\", \"flags\": [\"legal\"],"
                                 " \"keywords\": [\"lawsuit\"]},"
                                 "{\"type\": \"confidence\"}],"
                                 " \"guards\": {\"max_refine_rate\": null}}");
    struct router *off = parse_ok("{\"policies\": [{\"type\": \"topic\","
                                  " \"keywords\": [\"lawsuit\"]}]}");
    struct router *all = parse_ok("{\"pre_route\": true, \"mode\": \"all\", \"policies\": ["
                                  "{\"type\": \"topic\", \"keywords\": [\"lawsuit\"]},"
                                  "{\"type\": \"confidence\"}]}");
    const char *flags[] = {"legal"};
    struct route_input in;
    struct route_result res;

    memset(&in, 0, sizeof in);
    in.text = "short";
    in.text_len = 5;
    CHECK(router_pre_decide(on, &in, NULL, &res) == 0); /* nothing asks: the draft decides */
    CHECK_STR(res.stage, "input");
    in.topic_flags = flags;
    in.n_topic_flags = 1;
    CHECK(router_pre_decide(on, &in, NULL, &res) == 1);
    CHECK(res.refine == 1 && res.n == 3);
    CHECK(res.v[1].kind == VERDICT_REFINE);
    CHECK(res.v[2].kind == VERDICT_ABSTAIN);
    CHECK_STR(res.v[2].detail, "needs the draft");
    in.n_topic_flags = 0;
    in.text = "a document that is longer than fifty characters in all, really";
    in.text_len = strlen(in.text);
    CHECK(router_pre_decide(on, &in, NULL, &res) == 1); /* length by input */
    CHECK(res.v[0].kind == VERDICT_REFINE);
    in.text = "the lawsuit was filed";
    in.text_len = strlen(in.text);
    CHECK(router_pre_decide(off, &in, NULL, &res) == 0); /* pre_route off */
    CHECK(router_pre_decide(all, &in, NULL, &res) == 0); /* all mode: confidence unknown */
    CHECK(router_pre_route(on) == 1 && router_pre_route(off) == 0);
    router_free(on);
    router_free(off);
    router_free(all);
}

/* ---- JSON of hand-made results ---- */

static void test_result_json(void)
{
    struct route_result res;
    const cJSON *v;
    cJSON *j;

    memset(&res, 0, sizeof res);
    res.mode = ROUTE_ALL;
    res.n = 1;
    res.v[0].policy = "confidence";
    res.v[0].kind = VERDICT_ABSTAIN;
    res.v[0].score = 7; /* reported as null: has_score is 0 */
    snprintf(res.v[0].detail, sizeof res.v[0].detail, "quote \" and \\ kept");
    j = result_json(&res);
    v = jverdict(j, 0);
    CHECK_STR(jstr(j, "decision"), "keep");
    CHECK_STR(jstr(j, "mode"), "all");
    CHECK(!cJSON_HasObjectItem(j, "score"));
    CHECK_STR(jstr(v, "verdict"), "abstain");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(v, "score")));
    CHECK_STR(jstr(v, "detail"), "quote \" and \\ kept");
    cJSON_Delete(j);
}

static void test_deterministic(void)
{
    struct router *r = parse_ok(spec_routing);
    struct route_result a, b;
    struct guard_input g = {.have_rate = 1, .recent_refine_rate = 0.1, .decided = 100,
                           .have_spend = 1, .est_refine_cost_usd = 0.01};

    steer_decide(r, (struct votes){1, 0, 1}, &g, &a);
    steer_decide(r, (struct votes){1, 0, 1}, &g, &b);
    CHECK(a.refine == b.refine && a.n == b.n && a.score == b.score);
    for (size_t i = 0; i < a.n && i < b.n; i++) {
        CHECK(a.v[i].kind == b.v[i].kind && a.v[i].score == b.v[i].score);
        CHECK_STR(a.v[i].detail, b.v[i].detail);
    }
    router_free(r);
}

int main(void)
{
    test_defaults();
    test_parse_spec();
    test_parse_settings();
    test_parse_errors();
    test_parse_limits();
    test_spec_example();
    test_mode_any();
    test_mode_all();
    test_mode_score();
    test_empty_chain();
    test_guard_rate();
    test_guard_rate_settings();
    test_guard_budget();
    test_guard_both();
    test_guard_samples_strength_exempt();
    test_guard_tenant_budget();
    test_pre_route();
    test_result_json();
    test_deterministic();
    return tcheck_summary("test_router");
}
