/* test_tenant.c - unit tests of service/tenant.c (the tenants section: parse, inheritance,
 * lookups, describe round trip, Retry-After arithmetic) and service/cache.c (the exact
 * cache's key and entries). */
#include "tenant.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "job.h"
#include "tcheck.h"

static struct tenant_table *parse(const char *json, struct cfg_err *err)
{
    cJSON *v = cJSON_Parse(json);
    struct tenant_table *t = NULL;
    memset(err, 0, sizeof(*err));
    CHECK(v != NULL);
    if (tenant_table_parse(v, &t, err) != 0)
        t = NULL;
    cJSON_Delete(v);
    return t;
}

static void parse_err(const char *json, const char *path, const char *msg)
{
    struct cfg_err err;
    struct tenant_table *t = parse(json, &err);
    int before = tcheck_fail_;
    CHECK(t == NULL);
    CHECK_STR(err.path, path);
    CHECK_STR(err.msg, msg);
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ for %s\n", json);
    tenant_table_free(t);
}

static void test_lookup_and_inheritance(void)
{
    struct cfg_err err;
    const char *src;
    const struct tenant_limits *l;
    struct tenant_table *t = parse(
        "{\"default\": {\"jobs_per_minute\": 60, \"daily_budget_usd\": 5},"
        " \"by_id\": {\"acme\": {\"jobs_per_minute\": 100, \"max_refine_rate\": 0.3},"
        "            \"free\": {\"daily_budget_usd\": null},"
        "            \"zero\": {\"daily_budget_usd\": 0}}}", &err);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(tenant_table_count(t) == 3);
    l = tenant_limits_of(t, "acme", &src);
    CHECK(l && l->jobs_per_minute == 100 && l->daily_budget_usd == 5 &&
          l->max_refine_rate == 0.3); /* the budget inherited from default */
    CHECK_STR(src, "by_id");
    l = tenant_limits_of(t, "free", &src);
    CHECK(l && l->jobs_per_minute == 60 && l->daily_budget_usd < 0 && l->max_refine_rate <= 0);
    l = tenant_limits_of(t, "zero", NULL);
    CHECK(l && l->daily_budget_usd == 0 && tenant_limits_any(l));
    l = tenant_limits_of(t, "someone-else", &src); /* any other tenant: default's, its own */
    CHECK(l && l->jobs_per_minute == 60 && l->daily_budget_usd == 5);
    CHECK_STR(src, "default");
    /* no tenant: no tenant limits */
    CHECK(tenant_limits_of(t, NULL, &src) == NULL && src == NULL);
    CHECK(tenant_limits_of(t, "", NULL) == NULL);
    CHECK(tenant_limits_of(NULL, "acme", NULL) == NULL);
    CHECK(!tenant_limits_any(NULL));
    tenant_table_free(t);
    /* an empty section limits nothing */
    t = parse("{}", &err);
    CHECK(t != NULL);
    l = tenant_limits_of(t, "acme", NULL);
    CHECK(l && !tenant_limits_any(l));
    tenant_table_free(t);
    /* absent or null: no table */
    CHECK(tenant_table_parse(NULL, &t, &err) == 0 && t == NULL);
}

static void test_describe_round_trip(void)
{
    struct cfg_err err;
    struct tenant_table *a = parse(
        "{\"default\": {\"max_refine_rate\": 0.5},"
        " \"by_id\": {\"b\": {\"jobs_per_minute\": 7}, \"a\": {\"daily_budget_usd\": 1.25}}}",
        &err), *b;
    cJSON *d = tenant_table_describe(a), *d2;
    char *t1 = cJSON_PrintUnformatted(d), *t2;
    CHECK_STR(t1, "{\"default\":{\"jobs_per_minute\":null,\"daily_budget_usd\":null,"
                  "\"max_refine_rate\":0.5},\"by_id\":{\"a\":{\"jobs_per_minute\":null,"
                  "\"daily_budget_usd\":1.25,\"max_refine_rate\":0.5},\"b\":{\"jobs_per_minute\":"
                  "7,\"daily_budget_usd\":null,\"max_refine_rate\":0.5}}}");
    b = parse(t1, &err);
    CHECK(b != NULL);
    d2 = tenant_table_describe(b);
    t2 = cJSON_PrintUnformatted(d2);
    CHECK_STR(t2, t1);
    free(t1);
    free(t2);
    cJSON_Delete(d);
    cJSON_Delete(d2);
    tenant_table_free(a);
    tenant_table_free(b);
    d = tenant_table_describe(NULL);
    t1 = cJSON_PrintUnformatted(d);
    CHECK_STR(t1, "{\"default\":{\"jobs_per_minute\":null,\"daily_budget_usd\":null,"
                  "\"max_refine_rate\":null},\"by_id\":{}}");
    free(t1);
    cJSON_Delete(d);
}

static void test_errors(void)
{
    char big[300 + 64];
    parse_err("[]", "tenants", "expected object");
    parse_err("{\"defaults\": {}}", "tenants.defaults", "unknown key");
    parse_err("{\"default\": 3}", "tenants.default", "expected object");
    parse_err("{\"default\": {\"rpm\": 3}}", "tenants.default.rpm", "unknown key");
    parse_err("{\"default\": {\"jobs_per_minute\": 0}}", "tenants.default.jobs_per_minute",
              "must be >= 1");
    parse_err("{\"default\": {\"jobs_per_minute\": 100001}}",
              "tenants.default.jobs_per_minute", "must be <= 100000");
    parse_err("{\"default\": {\"jobs_per_minute\": 1.5}}", "tenants.default.jobs_per_minute",
              "expected integer or null");
    parse_err("{\"by_id\": {\"acme\": {\"daily_budget_usd\": -1}}}",
              "tenants.by_id.acme.daily_budget_usd", "must be between 0 and 1e9");
    parse_err("{\"by_id\": {\"acme\": {\"daily_budget_usd\": \"5\"}}}",
              "tenants.by_id.acme.daily_budget_usd", "expected number or null");
    parse_err("{\"by_id\": {\"acme\": {\"max_refine_rate\": 0}}}",
              "tenants.by_id.acme.max_refine_rate", "must be in (0, 1]");
    parse_err("{\"by_id\": {\"acme\": {\"max_refine_rate\": 1.01}}}",
              "tenants.by_id.acme.max_refine_rate", "must be in (0, 1]");
    parse_err("{\"by_id\": []}", "tenants.by_id", "expected object");
    parse_err("{\"by_id\": {\"acme\": {}, \"acme\": {}}}", "tenants.by_id.acme",
              "duplicate key");
    parse_err("{\"by_id\": {\"\": {}}}", "tenants.by_id.",
              "a tenant id must be 1 to 256 bytes of valid UTF-8");
    parse_err("{\"by_id\": {\"a\xff\": {}}}", "tenants.by_id.a\xff",
              "a tenant id must be 1 to 256 bytes of valid UTF-8");
    snprintf(big, sizeof(big), "{\"by_id\": {\"%0300d\": {}}}", 0);
    {
        struct cfg_err err;
        struct tenant_table *t = parse(big, &err);
        CHECK(t == NULL);
        CHECK_STR(err.msg, "a tenant id must be 1 to 256 bytes of valid UTF-8");
    }
}

static void test_too_many(void)
{
    size_t n = TENANT_MAX_IDS + 1, len = 0;
    char *json = malloc(n * 48 + 32);
    struct cfg_err err;
    struct tenant_table *t;
    len += (size_t)sprintf(json, "{\"by_id\": {");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(json + len, "%s\"t%zu\": {}", i ? "," : "", i);
    sprintf(json + len, "}}");
    t = parse(json, &err);
    CHECK(t == NULL);
    CHECK_STR(err.path, "tenants.by_id");
    CHECK_STR(err.msg, "at most 10000 tenants");
    /* exactly the bound is fine, and every id is found */
    len = (size_t)sprintf(json, "{\"by_id\": {");
    for (size_t i = 0; i < TENANT_MAX_IDS; i++)
        len += (size_t)sprintf(json + len, "%s\"t%zu\": {\"jobs_per_minute\": %zu}", i ? "," : "",
                               i, i + 1);
    sprintf(json + len, "}}");
    t = parse(json, &err);
    CHECK(t != NULL && tenant_table_count(t) == TENANT_MAX_IDS);
    for (size_t i = 0; t && i < TENANT_MAX_IDS; i += 997) {
        char id[16];
        snprintf(id, sizeof(id), "t%zu", i);
        CHECK(tenant_limits_of(t, id, NULL)->jobs_per_minute == (long)(i + 1));
    }
    tenant_table_free(t);
    free(json);
}

static void test_ids_and_retry(void)
{
    char id[TENANT_ID_MAX + 2];
    CHECK(tenant_id_valid("acme"));
    CHECK(tenant_id_valid("a b:c/d"));
    CHECK(tenant_id_valid("\xc3\xa9quipe"));
    CHECK(!tenant_id_valid(""));
    CHECK(!tenant_id_valid(NULL));
    CHECK(!tenant_id_valid("\xc3"));
    memset(id, 'x', sizeof(id) - 1);
    id[TENANT_ID_MAX] = '\0';
    CHECK(tenant_id_valid(id));
    id[TENANT_ID_MAX] = 'x';
    id[TENANT_ID_MAX + 1] = '\0';
    CHECK(!tenant_id_valid(id));
    /* until midnight UTC, rounded up, at least 1 */
    CHECK(tenant_retry_midnight_s(1700006400000LL) == 86400);     /* 2023-11-15T00:00:00Z */
    CHECK(tenant_retry_midnight_s(1700006400000LL - 1) == 1);
    CHECK(tenant_retry_midnight_s(1700006400000LL - 1500) == 2);
    CHECK(tenant_retry_midnight_s(1700006400000LL + 3600001) == 82800);
    /* until the oldest admission leaves the minute, rounded up, at least 1 */
    CHECK(tenant_retry_window_s(1000, 1000) == 60);
    CHECK(tenant_retry_window_s(1000, 1001) == 60);
    CHECK(tenant_retry_window_s(1000, 59999) == 2);
    CHECK(tenant_retry_window_s(1000, 60000) == 1);
    CHECK(tenant_retry_window_s(1000, 61000) == 1);
    CHECK(tenant_retry_window_s(1000, 99000) == 1);
}

static void req(struct job_req *r, const char *text, const char *instr, int words,
                const char *f1, const char *f2)
{
    memset(r, 0, sizeof(*r));
    r->text = strdup(text);
    r->text_len = strlen(text);
    r->instructions = instr ? strdup(instr) : NULL;
    r->max_words = words;
    r->topic_flags = calloc(3, sizeof(char *));
    if (f1)
        r->topic_flags[r->n_topic_flags++] = strdup(f1);
    if (f2)
        r->topic_flags[r->n_topic_flags++] = strdup(f2);
}

static void key_of(const struct job_req *r, const char *tenant, const char *scope, char *out)
{
    CHECK(cache_key(r, tenant, scope, out) == 0);
    CHECK(strlen(out) == CACHE_KEY_LEN);
}

static void test_cache_key(void)
{
    struct job_req a, b;
    char k1[CACHE_KEY_LEN + 1], k2[CACHE_KEY_LEN + 1];
    req(&a, "the document", NULL, 120, "legal", "exec");
    key_of(&a, "acme", "v1", k1);
    for (const char *p = k1; *p; p++)
        CHECK((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    /* flags are a set: order and repeats do not matter */
    req(&b, "the document", NULL, 120, "exec", "legal");
    key_of(&b, "acme", "v1", k2);
    CHECK_STR(k1, k2);
    job_req_free(&b);
    req(&b, "the document", NULL, 120, "legal", "legal");
    key_of(&b, "acme", "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    job_req_free(&b);
    /* every input that shapes the brief changes the key */
    key_of(&a, "other", "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    key_of(&a, NULL, "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    key_of(&a, "acme", "v2", k2);
    CHECK(strcmp(k1, k2) != 0);
    req(&b, "the document.", NULL, 120, "legal", "exec");
    key_of(&b, "acme", "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    job_req_free(&b);
    req(&b, "the document", "", 120, "legal", "exec"); /* empty instructions are instructions */
    key_of(&b, "acme", "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    job_req_free(&b);
    req(&b, "the document", NULL, 121, "legal", "exec");
    key_of(&b, "acme", "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    job_req_free(&b);
    /* fields are length-prefixed: moving bytes between them is another key */
    req(&b, "the document", NULL, 120, "legalexec", NULL);
    key_of(&b, "acme", "v1", k2);
    CHECK(strcmp(k1, k2) != 0);
    job_req_free(&b);
    /* the same inputs, the same key (no randomness) */
    key_of(&a, "acme", "v1", k2);
    CHECK_STR(k1, k2);
    job_req_free(&a);
}

static void test_cache_value(void)
{
    cJSON *res = cJSON_Parse("{\"brief\":\"B \\\"q\\\"\",\"model\":\"gpt-oss-20b\","
                             "\"refined\":true,\"degraded\":false,\"draft\":\"D\"}");
    const char *id = "job_01J00000000000000000000000";
    char *v = cache_value(id, res), from[JOB_ID_LEN + 1];
    cJSON *back = NULL;
    CHECK(v != NULL);
    CHECK(cache_value_parse(v, strlen(v), &back, from) == 0);
    CHECK_STR(from, id);
    CHECK(cJSON_Compare(back, res, 1));
    cJSON_Delete(back);
    /* what is not an entry is refused */
    CHECK(cache_value_parse("{}", 2, &back, from) != 0 && back == NULL);
    CHECK(cache_value_parse("{\"job\":\"x\",\"result\":{}}", 23, &back, from) != 0);
    CHECK(cache_value_parse("{\"job\":\"job_01J00000000000000000000000\",\"result\":1}", 49,
                            &back, from) != 0);
    CHECK(cache_value_parse("garbage", 7, &back, from) != 0);
    free(v);
    cJSON_Delete(res);
}

int main(void)
{
    test_lookup_and_inheritance();
    test_describe_round_trip();
    test_errors();
    test_too_many();
    test_ids_and_retry();
    test_cache_key();
    test_cache_value();
    return tcheck_summary("test_tenant");
}
