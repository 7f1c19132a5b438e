/* test_policies.c - unit tests of policies/: shared helpers, length, topic, confidence, registry. */
#include "policy.h"

#include <stdlib.h>

#include <cjson/cJSON.h>

#include "tcheck.h"

#define PATH "routing.policies[0]"

/* ---- helpers ---- */

static char *repeat(const char *unit, size_t times)
{
    size_t len = strlen(unit);
    char *s = malloc(len * times + 1);

    if (!s)
        abort();
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * len, unit, len);
    s[len * times] = '\0';
    return s;
}

static void *parse_ok(const struct policy_ops *ops, const char *json)
{
    cJSON *conf = cJSON_Parse(json);
    struct cfg_err err = {"", ""};
    void *state = NULL;
    int rc;

    CHECK(conf != NULL);
    rc = ops->parse(conf, PATH, &state, &err);
    CHECK(rc == 0);
    CHECK(state != NULL);
    if (rc != 0)
        fprintf(stderr, "  unexpected error for %s: %s: %s\n", json, err.path, err.msg);
    cJSON_Delete(conf);
    return state;
}

/* Parsing json must fail with exactly path: msg. */
static void parse_err(const struct policy_ops *ops, const char *json, const char *path,
                      const char *msg)
{
    cJSON *conf = cJSON_Parse(json);
    struct cfg_err err = {"", ""};
    void *state = NULL;
    int rc;

    CHECK(conf != NULL);
    rc = ops->parse(conf, PATH, &state, &err);
    CHECK(rc == -1);
    CHECK(state == NULL);
    if (rc == 0)
        ops->free(state);
    CHECK_STR(err.path, path);
    CHECK_STR(err.msg, msg);
    cJSON_Delete(conf);
}

/* Parse conf, decide on in, free; the verdict. */
static struct verdict decide(const struct policy_ops *ops, const char *conf,
                             const struct route_input *in)
{
    struct verdict v;
    void *state = parse_ok(ops, conf);

    memset(&v, 0, sizeof v);
    v.policy = ops->name;
    if (state) {
        ops->decide(state, in, &v);
        ops->free(state);
    }
    return v;
}

/* The policy's describe() output for conf, printed unformatted (caller frees). */
static char *describe(const struct policy_ops *ops, const char *conf)
{
    void *state = parse_ok(ops, conf);
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (state) {
        ops->describe(state, o);
        ops->free(state);
    }
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void check_describe(const struct policy_ops *ops, const char *conf, const char *want)
{
    char *got = describe(ops, conf);

    CHECK_STR(got, want);
    free(got);
}

static struct route_input input(const char *text, const char *draft)
{
    struct route_input in;

    memset(&in, 0, sizeof in);
    in.text = text;
    in.text_len = text ? strlen(text) : 0;
    in.draft = draft;
    in.draft_len = draft ? strlen(draft) : 0;
    return in;
}

/* ---- policy.c ---- */

static void test_cfg_fail(void)
{
    struct cfg_err err = {"", ""};
    char longkey[400];

    CHECK(cfg_fail(&err, "routing.mode", "expected %s", "string") == -1);
    CHECK_STR(err.path, "routing.mode");
    CHECK_STR(err.msg, "expected string");
    CHECK(cfg_fail(&err, NULL, "x") == -1);
    CHECK_STR(err.path, "");
    CHECK(cfg_fail(NULL, "a", "b") == -1);
    CHECK(cfg_fail_key(&err, "routing.guards", "window_s", "must be >= %d", 10) == -1);
    CHECK_STR(err.path, "routing.guards.window_s");
    CHECK_STR(err.msg, "must be >= 10");
    CHECK(cfg_fail_key(NULL, "a", "b", "c") == -1);
    /* an over-long path is cut, never overflowed */
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    CHECK(cfg_fail_key(&err, "routing", longkey, "unknown key") == -1);
    CHECK(strlen(err.path) == sizeof err.path - 1);
    CHECK(strncmp(err.path, "routing.kkk", 11) == 0);
}

static void test_cfg_readers(void)
{
    static const char *const known[] = {"a", "b", NULL};
    static const char *const names[] = {"x", "yy", NULL};
    static const char *const all[] = {"a", "b", "s", "i", "t", NULL};
    cJSON *o = cJSON_Parse("{\"a\": 1.5, \"b\": null, \"s\": \"yy\", \"i\": 7, \"t\": true}");
    cJSON *dup = cJSON_Parse("{\"a\": 1, \"b\": 2, \"a\": 3}");
    struct cfg_err err = {"", ""};
    double d = -9;
    long long ll = -9;
    int idx = -9;

    CHECK(cfg_check_keys(o, "p", known, &err) == -1);
    CHECK_STR(err.path, "p.s");
    CHECK_STR(err.msg, "unknown key");
    CHECK(cfg_check_keys(o, "p", all, &err) == 0);
    CHECK(cfg_check_keys(dup, "q", all, &err) == -1);
    CHECK_STR(err.path, "q.a");
    CHECK_STR(err.msg, "duplicate key");
    CHECK(cfg_number(o, "p", "zz", 0, &d, &err) == CFG_ABSENT);
    CHECK(d == -9);
    CHECK(cfg_number(o, "p", "a", 0, &d, &err) == CFG_VALUE);
    CHECK(d == 1.5);
    CHECK(cfg_number(o, "p", "b", 1, &d, &err) == CFG_NULL);
    CHECK(cfg_number(o, "p", "b", 0, &d, &err) == -1);
    CHECK_STR(err.msg, "expected number");
    CHECK(cfg_number(o, "p", "t", 1, &d, &err) == -1);
    CHECK_STR(err.path, "p.t");
    CHECK_STR(err.msg, "expected number or null");
    CHECK(cfg_integer(o, "p", "i", 0, 0, 10, &ll, &err) == CFG_VALUE);
    CHECK(ll == 7);
    CHECK(cfg_integer(o, "p", "a", 1, 0, 10, &ll, &err) == -1);
    CHECK_STR(err.msg, "expected integer or null");
    CHECK(cfg_integer(o, "p", "i", 0, 8, 10, &ll, &err) == -1);
    CHECK_STR(err.msg, "must be >= 8");
    CHECK(cfg_integer(o, "p", "i", 0, 0, 6, &ll, &err) == -1);
    CHECK_STR(err.msg, "must be <= 6");
    CHECK(cfg_integer(o, "p", "b", 1, 0, 6, &ll, &err) == CFG_NULL);
    CHECK(cfg_enum(o, "p", "s", names, &idx, &err) == CFG_VALUE);
    CHECK(idx == 1);
    CHECK(cfg_enum(o, "p", "zz", names, &idx, &err) == CFG_ABSENT);
    CHECK(cfg_enum(o, "p", "i", names, &idx, &err) == -1);
    CHECK_STR(err.path, "p.i");
    CHECK_STR(err.msg, "expected one of x, yy");
    cJSON_Delete(o);
    cJSON_Delete(dup);
}

static void test_verdict_name(void)
{
    CHECK_STR(verdict_name(VERDICT_KEEP), "keep");
    CHECK_STR(verdict_name(VERDICT_REFINE), "refine");
    CHECK_STR(verdict_name(VERDICT_ABSTAIN), "abstain");
    CHECK_STR(verdict_name((enum verdict_kind)7), "unknown");
}

static void test_lp_summary(void)
{
    /* -0.1 .. -1.0 shuffled: sorted copy is -1.0, -0.9, ...; p10 at rank 0.9 -> -0.91 */
    double lp[10] = {-0.5, -0.1, -1.0, -0.3, -0.7, -0.2, -0.9, -0.4, -0.8, -0.6};
    double eleven[11] = {0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10};
    double one = -0.25;
    struct lp_summary s;

    lp_summarize(lp, 10, &s);
    CHECK(s.present == 1);
    CHECK(s.n == 10);
    CHECK_NEAR(s.mean, -0.55, 1e-12);
    CHECK_NEAR(s.min, -1.0, 1e-12);
    CHECK_NEAR(s.p10, -0.91, 1e-12);
    CHECK(lp[0] == -0.5 && lp[2] == -1.0); /* the input is not sorted in place */
    lp_summarize(eleven, 11, &s);
    CHECK_NEAR(s.p10, -9.0, 1e-12); /* rank exactly 1.0 */
    CHECK_NEAR(s.mean, -5.0, 1e-12);
    CHECK_NEAR(s.min, -10.0, 1e-12);
    lp_summarize(&one, 1, &s);
    CHECK(s.present == 1 && s.n == 1);
    CHECK(s.mean == -0.25 && s.p10 == -0.25 && s.min == -0.25);
    s.present = 1;
    lp_summarize(lp, 0, &s);
    CHECK(s.present == 0);
    CHECK(s.n == 0);
    CHECK(s.mean == 0 && s.p10 == 0 && s.min == 0);
    lp_summarize(NULL, 5, &s);
    CHECK(s.present == 0);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p10 is selected, not sorted: the same value as a full sort's interpolation, for sizes
 * around the stack copy's 256 and many ties. */
static void test_lp_p10_matches_sort(void)
{
    static double lp[700], sorted[700];
    unsigned seed = 12345;
    int bad = 0;

    for (size_t n = 1; n < 700; n += (n < 300 ? 1 : 37)) {
        struct lp_summary s;
        double pos = 0.1 * (double)(n - 1), want;
        size_t lo = (size_t)pos;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            lp[i] = -(double)((seed >> 16) % (n % 3 == 0 ? 5 : 1000)) / 8.0; /* ties */
        }
        memcpy(sorted, lp, n * sizeof *lp);
        qsort(sorted, n, sizeof *sorted, cmp_dbl);
        want = sorted[lo] + (lo + 1 < n ? (pos - (double)lo) * (sorted[lo + 1] - sorted[lo]) : 0);
        lp_summarize(lp, n, &s);
        if (s.p10 != want || s.min != sorted[0]) {
            fprintf(stderr, "  n=%zu: p10 %.17g, sort gives %.17g\n", n, s.p10, want);
            bad++;
        }
    }
    CHECK(bad == 0);
}

static void test_registry(void)
{
    const struct policy_ops *const *all = policy_all();

    CHECK(policy_lookup("length") == &policy_length_ops);
    CHECK(policy_lookup("topic") == &policy_topic_ops);
    CHECK(policy_lookup("confidence") == &policy_confidence_ops);
    CHECK(policy_lookup("Length") == NULL);
    CHECK(policy_lookup("") == NULL);
    CHECK(policy_lookup(NULL) == NULL);
    CHECK(all[0] == &policy_length_ops);
    CHECK(all[1] == &policy_topic_ops);
    CHECK(all[2] == &policy_confidence_ops);
    CHECK(all[3] == NULL);
    for (size_t i = 0; all[i]; i++) {
        CHECK(all[i]->parse && all[i]->decide && all[i]->describe && all[i]->free);
        CHECK(policy_lookup(all[i]->name) == all[i]);
    }
}

/* ---- length ---- */

static void test_length_defaults(void)
{
    char *d599 = repeat("a", 599), *d600 = repeat("a", 600);
    struct route_input in = input("doc", d599);
    struct verdict v = decide(&policy_length_ops, "{}", &in);

    check_describe(&policy_length_ops, "{}", "{\"min_chars\":600,\"min_input_chars\":null}");
    CHECK(v.kind == VERDICT_KEEP);
    CHECK(v.has_score && v.score == 599);
    CHECK_STR(v.detail, "draft 599 chars < 600");
    in = input("doc", d600);
    v = decide(&policy_length_ops, "{\"type\": \"length\", \"weight\": 2}", &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK(v.score == 600);
    CHECK_STR(v.detail, "draft 600 chars >= 600");
    in = input(NULL, NULL);
    v = decide(&policy_length_ops, "{\"min_chars\": 1}", &in);
    CHECK(v.kind == VERDICT_KEEP && v.score == 0);
    CHECK_STR(v.detail, "draft 0 chars < 1");
    free(d599);
    free(d600);
}

static void test_length_utf8(void)
{
    char *e300 = repeat("\xc3\xa9", 300);         /* 300 chars, 600 bytes */
    char *e600 = repeat("\xc3\xa9", 600);         /* 600 chars */
    char *mix = repeat("a\xe2\x82\xac\xf0\x9f\x98\x80", 3); /* a, euro, emoji: 9 chars */
    struct route_input in = input("", e300);
    struct verdict v = decide(&policy_length_ops, "{}", &in);

    CHECK(v.kind == VERDICT_KEEP);
    CHECK(v.score == 300);
    CHECK_STR(v.detail, "draft 300 chars < 600");
    in = input("", e600);
    v = decide(&policy_length_ops, "{}", &in);
    CHECK(v.kind == VERDICT_REFINE && v.score == 600);
    in = input("", mix);
    v = decide(&policy_length_ops, "{\"min_chars\": 9}", &in);
    CHECK(v.score == 9 && v.kind == VERDICT_REFINE);
    in = input("", "\x80\x80x\xff"); /* stray continuation bytes count 0, others 1 */
    v = decide(&policy_length_ops, "{\"min_chars\": 3}", &in);
    CHECK(v.score == 2 && v.kind == VERDICT_KEEP);
    in = input("", "abcdef");
    in.draft_len = 3; /* only draft_len bytes are looked at */
    v = decide(&policy_length_ops, "{\"min_chars\": 4}", &in);
    CHECK(v.score == 3);
    free(e300);
    free(e600);
    free(mix);
}

static void test_length_input(void)
{
    const char *conf = "{\"min_chars\": 10, \"min_input_chars\": 20}";
    char *long_in = repeat("\xe2\x82\xac", 20); /* 20 chars, 60 bytes */
    char *short_in = repeat("x", 19);
    struct route_input in = input(long_in, "short");
    struct verdict v = decide(&policy_length_ops, conf, &in);

    check_describe(&policy_length_ops, conf, "{\"min_chars\":10,\"min_input_chars\":20}");
    CHECK(v.kind == VERDICT_REFINE);
    CHECK(v.score == 5);
    CHECK_STR(v.detail, "draft 5 chars < 10; input 20 chars >= 20");
    in = input(short_in, "short");
    v = decide(&policy_length_ops, conf, &in);
    CHECK(v.kind == VERDICT_KEEP);
    CHECK_STR(v.detail, "draft 5 chars < 10");
    in = input(long_in, "long enough draft");
    v = decide(&policy_length_ops, conf, &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK_STR(v.detail, "draft 17 chars >= 10; input 20 chars >= 20");
    in = input(long_in, "short");
    v = decide(&policy_length_ops, "{\"min_chars\": 10, \"min_input_chars\": null}", &in);
    CHECK(v.kind == VERDICT_KEEP);
    free(long_in);
    free(short_in);
}

static void test_length_errors(void)
{
    const struct policy_ops *ops = &policy_length_ops;

    parse_err(ops, "{\"min_chars\": \"600\"}", PATH ".min_chars", "expected integer");
    parse_err(ops, "{\"min_chars\": null}", PATH ".min_chars", "expected integer");
    parse_err(ops, "{\"min_chars\": 600.5}", PATH ".min_chars", "expected integer");
    parse_err(ops, "{\"min_chars\": 0}", PATH ".min_chars", "must be >= 1");
    parse_err(ops, "{\"min_chars\": 1e12}", PATH ".min_chars", "must be <= 1000000000");
    parse_err(ops, "{\"min_input_chars\": true}", PATH ".min_input_chars",
              "expected integer or null");
    parse_err(ops, "{\"min_input_chars\": 0}", PATH ".min_input_chars", "must be >= 1");
    parse_err(ops, "{\"max_chars\": 5}", PATH ".max_chars", "unknown key");
}

/* ---- topic ---- */

/* Run a topic policy with keywords kw (JSON array text) over text and draft. */
static struct verdict topic_kw(const char *kw, const char *text, const char *draft)
{
    char conf[512];
    struct route_input in = input(text, draft);

    snprintf(conf, sizeof conf, "{\"keywords\": %s}", kw);
    return decide(&policy_topic_ops, conf, &in);
}

static int kw_hits(const char *kw, const char *text)
{
    char arr[128];
    struct verdict v;

    snprintf(arr, sizeof arr, "[\"%s\"]", kw);
    v = topic_kw(arr, text, "");
    return v.kind == VERDICT_REFINE;
}

static void test_topic_flags(void)
{
    const char *const req[] = {"finance", NULL, "LEGAL", "Exec"};
    struct route_input in = input("doc", "draft");
    struct verdict v;

    check_describe(&policy_topic_ops, "{}",
                   "{\"flags\":[\"legal\",\"security\",\"exec\"],\"keywords\":[\"lawsuit\",\"breach\"]}");
    v = decide(&policy_topic_ops, "{}", &in);
    CHECK(v.kind == VERDICT_KEEP);
    CHECK(v.has_score == 1 && v.score == 0); /* no hits */
    CHECK_STR(v.detail, "no flagged topic");
    in.topic_flags = req;
    in.n_topic_flags = 1;
    v = decide(&policy_topic_ops, "{}", &in);
    CHECK(v.kind == VERDICT_KEEP);
    in.n_topic_flags = 4;
    v = decide(&policy_topic_ops, "{}", &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK(v.has_score && v.score == 2);
    CHECK_STR(v.detail, "flag 'legal', flag 'exec'");
    v = decide(&policy_topic_ops, "{\"flags\": [\"Finance\", \"FINANCE\"]}", &in);
    CHECK(v.score == 1); /* duplicates are dropped */
    CHECK_STR(v.detail, "flag 'Finance'");
    v = decide(&policy_topic_ops, "{\"flags\": []}", &in);
    CHECK(v.kind == VERDICT_KEEP);
    check_describe(&policy_topic_ops, "{\"flags\": [], \"keywords\": [\"GDPR\", \"gdpr\"]}",
                   "{\"flags\":[],\"keywords\":[\"GDPR\"]}");
}

static void test_topic_boundaries(void)
{
    CHECK(kw_hits("breach", "Breach, again"));          /* start of text, case, comma */
    CHECK(kw_hits("breach", "there was a BREACH"));     /* end of text */
    CHECK(kw_hits("breach", "(breach)"));
    CHECK(kw_hits("breach", "a data-breach."));
    CHECK(kw_hits("breach", "breach"));
    CHECK(!kw_hits("breach", "breaches"));
    CHECK(!kw_hits("breach", "unbreachable"));
    CHECK(!kw_hits("breach", "breach_x"));
    CHECK(!kw_hits("breach", "x1breach"));
    CHECK(!kw_hits("breach", "breac"));
    CHECK(!kw_hits("breach", ""));
    CHECK(kw_hits("breach", "breaches, then a breach")); /* a later occurrence counts */
    CHECK(kw_hits("Lawsuit", "the lawsuit"));            /* configured case does not matter */
    CHECK(kw_hits("c++", "we use c++, daily"));          /* non-word edge: no boundary there */
    CHECK(!kw_hits("c++", "abc++"));
}

static void test_topic_utf8_boundaries(void)
{
    CHECK(kw_hits("breach", "\xe2\x80\x9c" "breach" "\xe2\x80\x9d")); /* curly quotes */
    CHECK(kw_hits("breach", "data\xe2\x80\x94" "breach"));              /* em dash */
    CHECK(kw_hits("breach", "a\xc2\xa0" "breach"));                     /* NBSP */
    CHECK(!kw_hits("breach", "\xc3\xa9" "breach"));                     /* letter before */
    CHECK(!kw_hits("breach", "breach" "\xc3\xa9"));                     /* letter after */
    CHECK(!kw_hits("breach", "\xd0\x96" "breach"));                     /* Cyrillic before */
    CHECK(kw_hits("caf\xc3\xa9", "the caf\xc3\xa9, again"));             /* UTF-8 keyword */
    CHECK(!kw_hits("caf\xc3\xa9", "the caf\xc3\xa9s"));
    CHECK(kw_hits("breach", "\x80" "breach"));    /* invalid byte before: not a letter */
}

static void test_topic_multiword(void)
{
    CHECK(kw_hits("data breach", "A Data Breach occurred"));
    CHECK(kw_hits("data breach", "big data  \n breach."));
    CHECK(!kw_hits("data breach", "databreach"));
    CHECK(!kw_hits("data breach", "data breaches"));
    CHECK(!kw_hits("data breach", "bigdata breach"));
    CHECK(!kw_hits("data breach", "data"));
    CHECK(!kw_hits("data breach", "data "));
}

static void test_topic_where(void)
{
    const char *kws = "[\"lawsuit\", \"breach\"]";
    const char *const req[] = {"legal"};
    struct route_input in = input("a lawsuit was filed", "summary: breach");
    struct verdict v = topic_kw(kws, "a lawsuit was filed", "nothing");

    CHECK(v.kind == VERDICT_REFINE && v.score == 1);
    CHECK_STR(v.detail, "keyword 'lawsuit' in text");
    v = topic_kw(kws, "nothing", "The Breach.");
    CHECK_STR(v.detail, "keyword 'breach' in draft");
    v = topic_kw(kws, "lawsuit", "lawsuit");
    CHECK_STR(v.detail, "keyword 'lawsuit' in text and draft");
    CHECK(v.score == 1);
    v = topic_kw(kws, "no match here", "none here either");
    CHECK(v.kind == VERDICT_KEEP);
    CHECK_STR(v.detail, "no flagged topic");
    in.topic_flags = req;
    in.n_topic_flags = 1;
    v = decide(&policy_topic_ops, "{\"keywords\": [\"lawsuit\", \"breach\"]}", &in);
    CHECK(v.score == 3);
    CHECK_STR(v.detail, "flag 'legal', keyword 'lawsuit' in text, keyword 'breach' in draft");
}

static void test_topic_long_detail(void)
{
    char conf[8192] = "{\"keywords\": [";
    char text[8192] = "";
    struct route_input in;
    struct verdict v;

    for (int i = 0; i < 64; i++) {
        char kw[80];
        snprintf(kw, sizeof kw, "keyword%02d%s", i, "_with_a_rather_long_name");
        snprintf(conf + strlen(conf), sizeof conf - strlen(conf), "%s\"%s\"", i ? "," : "", kw);
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s ", kw);
    }
    strcat(conf, "]}");
    in = input(text, "");
    v = decide(&policy_topic_ops, conf, &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK(v.score == 64);
    CHECK(strlen(v.detail) < sizeof v.detail);
    CHECK(strncmp(v.detail, "keyword 'keyword00_with", 23) == 0);
    CHECK(strstr(v.detail, " more") != NULL);
    CHECK(strstr(v.detail, ", +61 more") != NULL);
}

static void test_topic_errors(void)
{
    const struct policy_ops *ops = &policy_topic_ops;
    char *k64 = repeat("k", 64), *k65 = repeat("k", 65), *many = repeat("\"x\",", 65);
    char conf[1024];

    parse_err(ops, "{\"flags\": \"legal\"}", PATH ".flags", "expected array of strings");
    parse_err(ops, "{\"keywords\": null}", PATH ".keywords", "expected array of strings");
    parse_err(ops, "{\"flags\": [1]}", PATH ".flags[0]", "expected string");
    parse_err(ops, "{\"flags\": [\"ok\", \"\"]}", PATH ".flags[1]", "must be 1..64 bytes");
    snprintf(conf, sizeof conf, "{\"keywords\": [\"%s\"]}", k65);
    parse_err(ops, conf, PATH ".keywords[0]", "must be 1..64 bytes");
    snprintf(conf, sizeof conf, "{\"keywords\": [\"%s\"]}", k64);
    free(describe(ops, conf)); /* 64 bytes is fine */
    snprintf(conf, sizeof conf, "{\"flags\": [%s\"x\"]}", many); /* 66 entries */
    parse_err(ops, conf, PATH ".flags", "at most 64 entries");
    parse_err(ops, "{\"keywords\": [\"a\", \"b \"]}", PATH ".keywords[1]",
              "must not begin or end with whitespace");
    parse_err(ops, "{\"keywords\": [\" \"]}", PATH ".keywords[0]",
              "must not begin or end with whitespace");
    parse_err(ops, "{\"flag\": []}", PATH ".flag", "unknown key");
    free(k64);
    free(k65);
    free(many);
}

/* ---- confidence ---- */

static struct route_input lp_input(const double *lp, size_t n, int truncated)
{
    struct route_input in = input("doc", "draft");

    lp_summarize(lp, n, &in.lp);
    in.truncated = truncated;
    return in;
}

static void test_confidence_scored(void)
{
    const double sure[] = {-0.31, -0.31}, unsure[] = {-1.2, -1.2}, edge[] = {-0.8};
    /* mean -0.58; sorted -3, -2, -0.1 x8: p10 at rank 0.9 = -3 + 0.9 * 1 = -2.1 */
    const double spiky[] = {-0.1, -3.0, -0.1, -0.1, -0.1, -2.0, -0.1, -0.1, -0.1, -0.1};
    struct route_input in = lp_input(sure, 2, 0);
    struct verdict v = decide(&policy_confidence_ops, "{}", &in);

    check_describe(&policy_confidence_ops, "{}",
                   "{\"min_mean_logprob\":-0.8,\"min_p10_logprob\":null,\"on_missing\":\"keep\","
                   "\"min_tokens\":1}");
    CHECK(v.kind == VERDICT_KEEP && v.has_score);
    CHECK_NEAR(v.score, -0.31, 1e-12);
    CHECK_STR(v.detail, "mean logprob -0.31 >= -0.8");
    in = lp_input(unsure, 2, 0);
    v = decide(&policy_confidence_ops, "{}", &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK_STR(v.detail, "mean logprob -1.20 < -0.8");
    in = lp_input(edge, 1, 0);
    v = decide(&policy_confidence_ops, "{}", &in);
    CHECK(v.kind == VERDICT_KEEP); /* equal to the threshold is not below it */
    in = lp_input(spiky, 10, 0);
    v = decide(&policy_confidence_ops, "{\"min_p10_logprob\": -2}", &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK_NEAR(v.score, -0.58, 1e-12);
    CHECK_STR(v.detail, "mean logprob -0.58 >= -0.8, p10 -2.10 < -2");
    v = decide(&policy_confidence_ops, "{\"min_p10_logprob\": -2.5}", &in);
    CHECK(v.kind == VERDICT_KEEP);
    CHECK_STR(v.detail, "mean logprob -0.58 >= -0.8, p10 -2.10 >= -2.5");
    v = decide(&policy_confidence_ops, "{\"min_mean_logprob\": -0.5, \"min_p10_logprob\": -3}",
               &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK_STR(v.detail, "mean logprob -0.58 < -0.5, p10 -2.10 >= -3");
    v = decide(&policy_confidence_ops, "{\"min_p10_logprob\": null}", &in);
    CHECK(v.kind == VERDICT_KEEP);
    CHECK_STR(v.detail, "mean logprob -0.58 >= -0.8");
}

static void test_confidence_missing(void)
{
    const double three[] = {-0.1, -0.1, -0.1};
    struct route_input in = lp_input(NULL, 0, 0);
    struct verdict v = decide(&policy_confidence_ops, "{}", &in);

    CHECK(v.kind == VERDICT_KEEP && !v.has_score);
    CHECK_STR(v.detail, "no logprobs from server; on_missing=keep");
    v = decide(&policy_confidence_ops, "{\"on_missing\": \"refine\"}", &in);
    CHECK(v.kind == VERDICT_REFINE && !v.has_score);
    CHECK_STR(v.detail, "no logprobs from server; on_missing=refine");
    v = decide(&policy_confidence_ops, "{\"on_missing\": \"abstain\"}", &in);
    CHECK(v.kind == VERDICT_ABSTAIN && !v.has_score);
    CHECK_STR(v.detail, "no logprobs from server; on_missing=abstain");
    v = decide(&policy_confidence_ops, "{\"min_tokens\": 0}", &in);
    CHECK(v.kind == VERDICT_KEEP && !v.has_score); /* no tokens at all is still missing */
    in = lp_input(three, 3, 0);
    v = decide(&policy_confidence_ops, "{\"min_tokens\": 5, \"on_missing\": \"abstain\"}", &in);
    CHECK(v.kind == VERDICT_ABSTAIN);
    CHECK_STR(v.detail, "only 3 logprob tokens < min_tokens 5; on_missing=abstain");
    v = decide(&policy_confidence_ops, "{\"min_tokens\": 3, \"on_missing\": \"abstain\"}", &in);
    CHECK(v.kind == VERDICT_KEEP && v.has_score);
    in.lp.present = 0; /* a summary says absent even with a count: missing */
    v = decide(&policy_confidence_ops, "{\"on_missing\": \"refine\"}", &in);
    CHECK(v.kind == VERDICT_REFINE && !v.has_score);
}

static void test_confidence_truncated(void)
{
    const double sure[] = {-0.05, -0.05};
    struct route_input in = lp_input(sure, 2, 1);
    struct verdict v = decide(&policy_confidence_ops, "{}", &in);

    CHECK(v.kind == VERDICT_REFINE);
    CHECK(v.has_score);
    CHECK_NEAR(v.score, -0.05, 1e-12);
    CHECK_STR(v.detail, "draft cut off (finish_reason length)");
    in = lp_input(NULL, 0, 1);
    v = decide(&policy_confidence_ops, "{\"on_missing\": \"abstain\"}", &in);
    CHECK(v.kind == VERDICT_REFINE);
    CHECK(!v.has_score);
    CHECK_STR(v.detail, "draft cut off (finish_reason length)");
}

static void test_confidence_errors(void)
{
    const struct policy_ops *ops = &policy_confidence_ops;
    const char *p2 = "routing.policies[2]";
    cJSON *conf = cJSON_Parse("{\"type\": \"confidence\", \"min_mean_logprob\": \"high\"}");
    struct cfg_err err = {"", ""};
    void *state = NULL;

    /* docs/CONFIG.md's own example, with the path the router passes in */
    CHECK(ops->parse(conf, p2, &state, &err) == -1);
    CHECK_STR(err.path, "routing.policies[2].min_mean_logprob");
    CHECK_STR(err.msg, "expected number");
    cJSON_Delete(conf);
    parse_err(ops, "{\"min_mean_logprob\": null}", PATH ".min_mean_logprob", "expected number");
    parse_err(ops, "{\"min_mean_logprob\": 0.5}", PATH ".min_mean_logprob", "must be <= 0");
    parse_err(ops, "{\"min_p10_logprob\": \"x\"}", PATH ".min_p10_logprob",
              "expected number or null");
    parse_err(ops, "{\"min_p10_logprob\": 1}", PATH ".min_p10_logprob", "must be <= 0");
    parse_err(ops, "{\"on_missing\": \"maybe\"}", PATH ".on_missing",
              "expected one of keep, refine, abstain");
    parse_err(ops, "{\"on_missing\": 1}", PATH ".on_missing",
              "expected one of keep, refine, abstain");
    parse_err(ops, "{\"min_tokens\": -1}", PATH ".min_tokens", "must be >= 0");
    parse_err(ops, "{\"min_tokens\": 2.5}", PATH ".min_tokens", "expected integer");
    parse_err(ops, "{\"min_mean\": -1}", PATH ".min_mean", "unknown key");
    check_describe(ops, "{\"min_mean_logprob\": 0, \"min_p10_logprob\": -3, "
                        "\"on_missing\": \"abstain\", \"min_tokens\": 0}",
                   "{\"min_mean_logprob\":0,\"min_p10_logprob\":-3,\"on_missing\":\"abstain\","
                   "\"min_tokens\":0}");
}

int main(void)
{
    test_cfg_fail();
    test_cfg_readers();
    test_verdict_name();
    test_lp_summary();
    test_lp_p10_matches_sort();
    test_registry();
    test_length_defaults();
    test_length_utf8();
    test_length_input();
    test_length_errors();
    test_topic_flags();
    test_topic_boundaries();
    test_topic_utf8_boundaries();
    test_topic_multiword();
    test_topic_where();
    test_topic_long_detail();
    test_topic_errors();
    test_confidence_scored();
    test_confidence_missing();
    test_confidence_truncated();
    test_confidence_errors();
    return tcheck_summary("test_policies");
}
