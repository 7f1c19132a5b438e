/* test_config.c - config: defaults, full file, every error class, secrets, version, refcount. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include "config.h"
#include "router.h"
#include "tcheck.h"
#include "tenant.h"

/* ---- helpers ------------------------------------------------------------------------- */

static struct bd_config *load_str(const char *json, struct cfg_err *err)
{
    return config_load_string(json, strlen(json), err);
}

/* Write content (len bytes) to a new temp file; returns its malloc'd path. */
static char *write_temp(const char *content, size_t len)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    ssize_t n = fd >= 0 ? write(fd, content, len) : -1;

    CHECK(fd >= 0 && n == (ssize_t)len);
    if (fd >= 0)
        close(fd);
    return path;
}

/* json must be refused with exactly path: msg. */
static void expect_err(const char *json, const char *path, const char *msg)
{
    struct cfg_err err;
    struct bd_config *c = load_str(json, &err);
    int before = tcheck_fail_;

    CHECK(c == NULL);
    CHECK_STR(err.path, path);
    CHECK_STR(err.msg, msg);
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ for config: %s\n", json);
    config_unref(c);
}

static char *describe_text(const struct bd_config *c)
{
    cJSON *d = config_describe(c);
    char *s = d ? cJSON_PrintUnformatted(d) : NULL;

    cJSON_Delete(d);
    return s;
}

static const cJSON *jget(const cJSON *o, const char *a, const char *b, const char *c)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, a);

    if (b)
        it = cJSON_GetObjectItemCaseSensitive(it, b);
    if (c)
        it = cJSON_GetObjectItemCaseSensitive(it, c);
    return it;
}

static int is_hex16(const char *v)
{
    if (strlen(v) != 16)
        return 0;
    for (size_t i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", v[i]))
            return 0;
    return 1;
}

/* ---- defaults ------------------------------------------------------------------------ */

static void test_defaults(void)
{
    struct cfg_err err;
    struct bd_config *c = config_load(NULL, &err);

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->refcount == 1);
    CHECK(c->path == NULL);
    CHECK(is_hex16(c->version));
    CHECK_STR(c->listen_host, "127.0.0.1");
    CHECK(c->listen_port == 8080);
    CHECK_STR(c->redis_url, "redis://127.0.0.1:6379/0");
    CHECK_STR(c->redis_host, "127.0.0.1");
    CHECK(c->redis_port == 6379 && c->redis_db == 0 && c->redis_password == NULL);
    CHECK_STR(c->redis_prefix, "briefd:");
    CHECK(c->concurrency == 64 && c->max_attempts == 3);
    CHECK(c->job_timeout_ms == 120000 && c->result_ttl_s == 604800);
    CHECK(c->claim_idle_ms == 150000);
    CHECK(c->max_text_bytes == 262144 && c->max_queue == 100000 && c->max_wait_s == 60);
    CHECK_STR(c->auth_keys_env, "BRIEFD_API_KEYS");
    CHECK_STR(c->admin_keys_env, "BRIEFD_ADMIN_KEYS");
    CHECK(c->n_api_keys == 0 && c->n_admin_keys == 0 && !config_auth_enabled(c));
    CHECK_STR(c->draft.name, "phi-4-mini");
    CHECK_STR(c->refine.name, "gpt-oss-20b");
    CHECK_STR(c->draft.base_url, "http://127.0.0.1:5273/v1");
    CHECK_STR(c->refine.base_url, "http://127.0.0.1:5273/v1");
    CHECK(c->draft.api_key_env == NULL && c->draft.api_key == NULL);
    CHECK(c->draft.timeout_ms == 60000 && c->refine.timeout_ms == 60000);
    CHECK(c->draft.max_tokens == 300 && c->refine.max_tokens == 600);
    CHECK_NEAR(c->draft.temperature, 0.4, 1e-12);
    CHECK_NEAR(c->refine.temperature, 0.2, 1e-12);
    CHECK(c->draft.logprobs == 1 && c->refine.logprobs == 0);
    CHECK(c->draft.stream == 0 && c->refine.stream == 0);
    CHECK(c->draft.max_attempts == 3 && c->draft.backoff_ms == 200);
    /* list prices of hosted equivalents (docs/CONFIG.md#prices) */
    CHECK(c->draft.price_in_per_mtok == 0.075 && c->draft.price_out_per_mtok == 0.30);
    CHECK(c->refine.price_in_per_mtok == 0.05 && c->refine.price_out_per_mtok == 0.20);
    CHECK(c->draft.price_per_hour == 0 && c->refine.price_per_hour == 0);
    CHECK(c->draft.auth_header == MODEL_AUTH_BEARER && c->draft.n_headers == 0);
    CHECK(c->log_format == 0 && c->log_level == 1);
    CHECK(c->webhook_secret == NULL && c->webhook_allow.n_entries == 0);
    CHECK(c->draft.price_source && strstr(c->draft.price_source, "Azure AI Foundry"));
    CHECK(c->refine.price_source && strstr(c->refine.price_source, "W&B Inference"));
    CHECK_STR(c->draft.prompt_user, "Summarize the following document as an executive brief "
              "of at most {max_words} words.{instructions}\n\nDocument:\n{text}");
    CHECK_STR(c->refine.prompt_user, "Rewrite the draft brief below into a clear, accurate "
              "executive brief of at most {max_words} words. Keep every fact; fix omissions "
              "using the source document.{instructions}\n\nSource document:\n{text}\n\n"
              "Draft brief:\n{draft}");
    CHECK(c->draft.prompt_system && strlen(c->draft.prompt_system) > 20);
    CHECK(c->refine.prompt_system && strlen(c->refine.prompt_system) > 20);
    CHECK_STR(c->facade_model, "briefd-hybrid");
    CHECK(c->facade_record_hold_ms == 2);
    CHECK(c->facade_max_unrecorded == 4096);
    CHECK(c->stats_retention_s == 604800);
    CHECK(c->router != NULL);
    config_unref(c);
}

/* ---- the full docs/CONFIG.md example--------------------------------------------------------- */

static const char full_json[] =
    "{\n"
    "  \"listen\": \"0.0.0.0:9090\",\n"
    "  \"redis\": {\"url\": \"redis://:hunter2-pass@redis.internal:6380/3\",\n"
    "            \"prefix\": \"bd:\"},\n"
    "  \"workers\": {\"concurrency\": 32, \"max_attempts\": 5, \"job_timeout_ms\": 90000,\n"
    "              \"result_ttl_s\": 86400, \"claim_idle_ms\": 200000},\n"
    "  \"limits\": {\"max_text_bytes\": 100000, \"max_queue\": 5000, \"max_wait_s\": 30},\n"
    "  \"auth\": {\"keys_env\": \"TC_API_KEYS\", \"admin_keys_env\": \"TC_ADMIN_KEYS\"},\n"
    "  \"models\": {\n"
    "    \"draft\":  {\"name\": \"phi-4-mini-x\", \"base_url\": \"http://10.0.0.5:5273/v1/\",\n"
    "               \"api_key_env\": null, \"timeout_ms\": 30000, \"max_tokens\": 256,\n"
    "               \"temperature\": 0.5, \"stream\": true, \"logprobs\": true,\n"
    "               \"max_attempts\": 4, \"backoff_ms\": 100,\n"
    "               \"price\": {\"input_per_mtok\": 0.0, \"output_per_mtok\": 0.0,\n"
    "                         \"per_hour\": 1.25},\n"
    "               \"prompt\": {\"system\": \"be brief\",\n"
    "                          \"user\": \"Summarize as a brief of at most {max_words} words:"
    "\\n{text}\"}},\n"
    "    \"refine\": {\"name\": \"gpt-oss-120b\", \"base_url\": \"https://api.example.com/v1\",\n"
    "               \"api_key_env\": \"TC_REFINE_KEY\", \"timeout_ms\": 90000,\n"
    "               \"max_tokens\": 800,\n"
    "               \"temperature\": 0, \"logprobs\": false,\n"
    "               \"price\": {\"input_per_mtok\": 0.15, \"output_per_mtok\": 0.6},\n"
    "               \"prompt\": {\"user\": \"Improve clarity but keep facts:\\n{draft}\"}}\n"
    "  },\n"
    "  \"facade\": {\"model\": \"briefd-x\", \"record_hold_ms\": 250,\n"
    "             \"max_unrecorded\": 512},\n"
    "  \"stats\": {\"retention_s\": 3600},\n"
    "  \"routing\": {\n"
    "    \"mode\": \"any\",\n"
    "    \"policies\": [\n"
    "      {\"type\": \"length\", \"min_chars\": 600},\n"
    "      {\"type\": \"topic\", \"flags\": [\"legal\", \"security\", \"exec\"],\n"
    "       \"keywords\": [\"lawsuit\", \"breach\"]},\n"
    "      {\"type\": \"confidence\", \"min_mean_logprob\": -0.8, \"on_missing\": \"keep\"}\n"
    "    ],\n"
    "    \"guards\": {\"max_refine_rate\": 0.4, \"daily_refine_budget_usd\": null}\n"
    "  }\n"
    "}\n";

static void check_full_models(const struct bd_config *c)
{
    CHECK_STR(c->draft.name, "phi-4-mini-x");
    CHECK_STR(c->draft.base_url, "http://10.0.0.5:5273/v1"); /* trailing '/' stripped */
    CHECK(c->draft.api_key_env == NULL && c->draft.api_key == NULL);
    CHECK(c->draft.timeout_ms == 30000 && c->draft.max_tokens == 256);
    CHECK_NEAR(c->draft.temperature, 0.5, 1e-12);
    CHECK(c->draft.stream == 1 && c->draft.logprobs == 1);
    CHECK(c->draft.max_attempts == 4 && c->draft.backoff_ms == 100);
    CHECK_NEAR(c->draft.price_per_hour, 1.25, 1e-12);
    CHECK_STR(c->draft.prompt_system, "be brief");
    CHECK_STR(c->draft.prompt_user, "Summarize as a brief of at most {max_words} words:\n{text}");
    CHECK_STR(c->refine.name, "gpt-oss-120b");
    CHECK_STR(c->refine.base_url, "https://api.example.com/v1");
    CHECK_STR(c->refine.api_key_env, "TC_REFINE_KEY");
    CHECK_STR(c->refine.api_key, "sk-refine-secret-42");
    CHECK(c->refine.timeout_ms == 90000 && c->refine.max_tokens == 800);
    CHECK_NEAR(c->refine.temperature, 0.0, 1e-12);
    CHECK(c->refine.logprobs == 0 && c->refine.stream == 0);
    CHECK(c->refine.max_attempts == 3 && c->refine.backoff_ms == 200); /* defaults kept */
    CHECK_NEAR(c->refine.price_in_per_mtok, 0.15, 1e-12);
    CHECK_NEAR(c->refine.price_out_per_mtok, 0.6, 1e-12);
    CHECK_NEAR(c->refine.price_per_hour, 0.0, 1e-12);
    CHECK(strstr(c->refine.prompt_system, "editor") != NULL); /* refine default system kept */
    CHECK_STR(c->refine.prompt_user, "Improve clarity but keep facts:\n{draft}");
}

static void test_full_file(void)
{
    char *path = write_temp(full_json, strlen(full_json));
    struct cfg_err err;
    struct bd_config *c;

    setenv("TC_API_KEYS", "api-key-0001,api-key-0002", 1);
    setenv("TC_ADMIN_KEYS", "admin-key-0001", 1);
    setenv("TC_REFINE_KEY", "sk-refine-secret-42\n", 1);
    c = config_load(path, &err);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "  load failed: %s: %s\n", err.path, err.msg);
        goto out;
    }
    CHECK_STR(c->path, path);
    CHECK_STR(c->listen_host, "0.0.0.0");
    CHECK(c->listen_port == 9090);
    CHECK_STR(c->redis_host, "redis.internal");
    CHECK(c->redis_port == 6380 && c->redis_db == 3);
    CHECK_STR(c->redis_password, "hunter2-pass");
    CHECK_STR(c->redis_prefix, "bd:");
    CHECK(c->concurrency == 32 && c->max_attempts == 5 && c->job_timeout_ms == 90000);
    CHECK(c->result_ttl_s == 86400 && c->claim_idle_ms == 200000);
    CHECK(c->max_text_bytes == 100000 && c->max_queue == 5000 && c->max_wait_s == 30);
    CHECK_STR(c->auth_keys_env, "TC_API_KEYS");
    CHECK_STR(c->admin_keys_env, "TC_ADMIN_KEYS");
    CHECK(c->n_api_keys == 2 && c->n_admin_keys == 1 && config_auth_enabled(c));
    check_full_models(c);
    CHECK_STR(c->facade_model, "briefd-x");
    CHECK(c->facade_record_hold_ms == 250);
    CHECK(c->facade_max_unrecorded == 512);
    CHECK(c->stats_retention_s == 3600);
    CHECK(c->router != NULL);
    if (c->router) {
        CHECK_NEAR(router_guard_max_rate(c->router), 0.4, 1e-12);
        CHECK(router_guard_daily_budget(c->router) < 0);
    }
    config_unref(c);
out:
    unsetenv("TC_API_KEYS");
    unsetenv("TC_ADMIN_KEYS");
    unsetenv("TC_REFINE_KEY");
    unlink(path);
    free(path);
}

/* ---- errors -------------------------------------------------------------------------- */

static void test_errors_keys_types(void)
{
    expect_err("{\"bogus\": 1}", "bogus", "unknown key");
    expect_err("{\"redis\": {\"urll\": \"redis://h\"}}", "redis.urll", "unknown key");
    expect_err("{\"models\": {\"draft\": {\"nam\": \"x\"}}}", "models.draft.nam", "unknown key");
    expect_err("{\"models\": {\"summary\": {}}}", "models.summary", "unknown key");
    expect_err("{\"models\": {\"refine\": {\"price\": {\"per_day\": 1}}}}",
               "models.refine.price.per_day", "unknown key");
    expect_err("{\"models\": {\"refine\": {\"price\": {\"per_hour\": \"1\"}}}}",
               "models.refine.price.per_hour", "expected number");
    expect_err("{\"models\": {\"refine\": {\"price\": 3}}}", "models.refine.price",
               "expected object");
    expect_err("{\"models\": \"x\"}", "models", "expected object");
    expect_err("{\"workers\": []}", "workers", "expected object");
    expect_err("{\"workers\": {\"concurrency\": \"64\"}}", "workers.concurrency",
               "expected integer");
    expect_err("{\"workers\": {\"concurrency\": 1.5}}", "workers.concurrency",
               "expected integer");
    expect_err("{\"workers\": {\"concurrency\": null}}", "workers.concurrency",
               "expected integer");
    expect_err("{\"models\": {\"draft\": {\"stream\": 1}}}", "models.draft.stream",
               "expected boolean");
    expect_err("{\"models\": {\"draft\": {\"name\": 5}}}", "models.draft.name",
               "expected string");
    expect_err("{\"models\": {\"draft\": {\"prompt\": {\"user\": false}}}}",
               "models.draft.prompt.user", "expected string");
    expect_err("{\"models\": {\"draft\": {\"api_key_env\": 3}}}", "models.draft.api_key_env",
               "expected string or null");
    expect_err("{\"listen\": 8080}", "listen", "expected string");
    expect_err("{\"routing\": 5}", "routing", "expected object");
    expect_err("{\"routing\": {\"policies\": [{\"type\": \"length\", \"min_chars\": 600},"
               " {\"type\": \"topic\"}, {\"type\": \"confidence\", \"min_mean_logprob\": \"x\"}]}}",
               "routing.policies[2].min_mean_logprob", "expected number");
    expect_err("{\"listen\": \"a:1\", \"listen\": \"b:2\"}", "listen", "duplicate key");
    /* the routing section and the policies read their objects with the cfg_* readers */
    expect_err("{\"routing\": {\"guards\": {\"window_s\": 60, \"window_s\": 120}}}",
               "routing.guards.window_s", "duplicate key");
    expect_err("{\"routing\": {\"mode\": \"any\", \"mode\": \"all\"}}", "routing.mode",
               "duplicate key");
    expect_err("{\"routing\": {\"policies\": [{\"type\": \"confidence\", \"min_tokens\": 1,"
               " \"min_tokens\": 2}]}}", "routing.policies[0].min_tokens", "duplicate key");
}

static void test_errors_ranges(void)
{
    expect_err("{\"workers\": {\"concurrency\": 0}}", "workers.concurrency",
               "must be between 1 and 4096");
    expect_err("{\"workers\": {\"concurrency\": 4097}}", "workers.concurrency",
               "must be between 1 and 4096");
    expect_err("{\"workers\": {\"result_ttl_s\": 1e12}}", "workers.result_ttl_s",
               "must be between 60 and 31536000");
    expect_err("{\"limits\": {\"max_wait_s\": 61}}", "limits.max_wait_s",
               "must be between 0 and 60");
    expect_err("{\"limits\": {\"max_text_bytes\": 0}}", "limits.max_text_bytes",
               "must be between 1 and 16777216");
    expect_err("{\"models\": {\"draft\": {\"temperature\": 2.5}}}", "models.draft.temperature",
               "must be between 0 and 2");
    expect_err("{\"models\": {\"refine\": {\"max_tokens\": 40000}}}", "models.refine.max_tokens",
               "must be between 1 and 32768");
    expect_err("{\"models\": {\"draft\": {\"price\": {\"input_per_mtok\": -0.01}}}}",
               "models.draft.price.input_per_mtok", "must be >= 0");
    expect_err("{\"models\": {\"draft\": {\"name\": \"\"}}}", "models.draft.name",
               "must not be empty");
    expect_err("{\"redis\": {\"prefix\": \"\"}}", "redis.prefix", "must not be empty");
    expect_err("{\"redis\": {\"prefix\": \"01234567890123456789012345678901234567890123456789"
               "0123456789abcde\"}}", "redis.prefix", "must be at most 64 characters long");
    expect_err("{\"models\": {\"draft\": {\"base_url\": \"ftp://h/v1\"}}}",
               "models.draft.base_url", "expected an http:// or https:// URL");
    expect_err("{\"models\": {\"draft\": {\"api_key_env\": \"BAD-NAME\"}}}",
               "models.draft.api_key_env",
               "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    expect_err("{\"workers\": {\"job_timeout_ms\": 60000, \"claim_idle_ms\": 60000}}",
               "workers.claim_idle_ms", "must exceed workers.job_timeout_ms");
    expect_err("{\"workers\": {\"claim_idle_ms\": 100000}}", /* default job_timeout 120000 */
               "workers.claim_idle_ms", "must exceed workers.job_timeout_ms");
}

/* ---- bounds: every numeric key, one step outside each bound ----------------------------
 * The bounds are docs/CONFIG.md's, written out here independently of the key table (a test
 * that read them from the table would agree with any bound the table says). Each key must
 * load at its minimum and maximum and be refused, naming its path, one step outside: 1 for
 * integers, the next double for numbers. Every number that GET /v1/config shows must be in
 * this list (test_bounds_cover_describe), so a new key cannot go untested. */

enum bkind { B_INT, B_NUM };
#define B_LO_OPEN 1    /* the minimum itself is refused: (lo, ...] */
#define B_NO_LO 2      /* no lower bound */
#define B_NO_HI 4      /* no upper bound (lo only) */
#define B_LO_UNREACH 8 /* lo is refused by another rule (claim_idle_ms > job_timeout_ms) */

struct bound {
    const char *path;  /* as docs/CONFIG.md and GET /v1/config name it */
    const char *json;  /* the document with %s for the value; NULL: nested objects of path */
    enum bkind kind;
    double lo, hi;
    int flags;
    const char *err_path; /* the path of the refusal when it is not path */
};

#define POL(type, key) "{\"routing\": {\"policies\": [{\"type\": \"" type "\", \"" key "\": %s}]}}"
#define GUARD(key) "{\"routing\": {\"guards\": {\"" key "\": %s}}}"
#define MODEL_BOUNDS(m)                                                                       \
    {"models." m ".timeout_ms", NULL, B_INT, 100, 600000, 0, NULL},                          \
    {"models." m ".max_tokens", NULL, B_INT, 1, 32768, 0, NULL},                             \
    {"models." m ".temperature", NULL, B_NUM, 0, 2, 0, NULL},                                \
    {"models." m ".max_attempts", NULL, B_INT, 1, 10, 0, NULL},                              \
    {"models." m ".backoff_ms", NULL, B_INT, 1, 60000, 0, NULL},                             \
    {"models." m ".breaker_failures", NULL, B_INT, 1, 1000, 0, NULL},                        \
    {"models." m ".breaker_open_ms", NULL, B_INT, 100, 3600000, 0, NULL},                    \
    {"models." m ".max_concurrency", NULL, B_INT, 0, 100000, 0, NULL},                       \
    {"models." m ".price.input_per_mtok", NULL, B_NUM, 0, 0, B_NO_HI, NULL},                 \
    {"models." m ".price.output_per_mtok", NULL, B_NUM, 0, 0, B_NO_HI, NULL},                \
    {"models." m ".price.per_hour", NULL, B_NUM, 0, 0, B_NO_HI, NULL}

static const struct bound bounds[] = {
    {"redis.command_timeout_ms", NULL, B_INT, 100, 60000, 0, NULL},
    {"redis.min_replicas_acked", NULL, B_INT, 0, 16, 0, NULL},
    {"redis.replica_ack_timeout_ms", NULL, B_INT, 10, 60000, 0, NULL},
    {"workers.concurrency", NULL, B_INT, 1, 4096, 0, NULL},
    {"workers.max_attempts", NULL, B_INT, 1, 100, 0, NULL},
    {"workers.job_timeout_ms", NULL, B_INT, 1000, 3600000, 0, NULL},
    {"workers.result_ttl_s", NULL, B_INT, 60, 31536000, 0, NULL},
    {"workers.claim_idle_ms", "{\"workers\": {\"job_timeout_ms\": 1000, \"claim_idle_ms\": %s}}",
     B_INT, 1000, 86400000, B_LO_UNREACH, NULL},
    {"workers.shutdown_grace_ms", NULL, B_INT, 0, 3600000, 0, NULL},
    {"limits.max_text_bytes", NULL, B_INT, 1, 16777216, 0, NULL},
    {"limits.max_queue", NULL, B_INT, 1, 10000000, 0, NULL},
    {"limits.max_wait_s", NULL, B_INT, 0, 60, 0, NULL},
    {"limits.idempotency_ttl_s", /* and at most workers.result_ttl_s */
     "{\"workers\": {\"result_ttl_s\": 31536000}, \"limits\": {\"idempotency_ttl_s\": %s}}",
     B_INT, 60, 2592000, 0, NULL},
    {"webhooks.max_in_flight", NULL, B_INT, 1, 4096, 0, NULL},
    {"webhooks.timeout_ms", NULL, B_INT, 100, 120000, 0, NULL},
    {"webhooks.max_attempts", NULL, B_INT, 1, 50, 0, NULL},
    {"webhooks.max_age_s", NULL, B_INT, 1, 2592000, 0, NULL},
    {"webhooks.backoff_base_ms", NULL, B_INT, 1, 3600000, 0, NULL},
    {"cache.ttl_s", NULL, B_INT, 0, 2592000, 0, NULL},
    {"tenants.default.jobs_per_minute", NULL, B_INT, 1, 100000, 0, NULL},
    {"tenants.default.daily_budget_usd", NULL, B_NUM, 0, 1e9, 0, NULL},
    {"tenants.default.max_refine_rate", NULL, B_NUM, 0, 1, B_LO_OPEN, NULL},
    {"tenants.by_id[acme].jobs_per_minute",
     "{\"tenants\": {\"by_id\": {\"acme\": {\"jobs_per_minute\": %s}}}}", B_INT, 1, 100000, 0,
     "tenants.by_id.acme.jobs_per_minute"},
    MODEL_BOUNDS("draft"),
    MODEL_BOUNDS("refine"),
    MODEL_BOUNDS("judge"),
    {"stats.retention_s", NULL, B_INT, 60, 31536000, 0, NULL},
    {"facade.record_hold_ms", NULL, B_INT, 0, 1000, 0, NULL},
    {"facade.max_unrecorded", NULL, B_INT, 1, 1000000, 0, NULL},
    {"evaluation.shadow_rate", NULL, B_NUM, 0, 1, 0, NULL},
    {"evaluation.daily_budget_usd", NULL, B_NUM, 0, 0, B_NO_HI, NULL},
    {"evaluation.max_in_flight", NULL, B_INT, 1, 1024, 0, NULL},
    {"routing.threshold", "{\"routing\": {\"threshold\": %s}}", B_NUM, 0, 1, 0, NULL},
    {"routing.guards.max_refine_rate", GUARD("max_refine_rate"), B_NUM, 0, 1, B_LO_OPEN, NULL},
    {"routing.guards.window_s", GUARD("window_s"), B_INT, 10, 86400, 0, NULL},
    {"routing.guards.min_samples", GUARD("min_samples"), B_INT, 0, 1000000, 0, NULL},
    {"routing.guards.daily_refine_budget_usd", GUARD("daily_refine_budget_usd"), B_NUM, 0, 0,
     B_NO_HI, NULL},
    {"routing.policies[length].weight", POL("length", "weight"), B_NUM, 0, 0,
     B_LO_OPEN | B_NO_HI, "routing.policies[0].weight"},
    {"routing.policies[topic].weight", POL("topic", "weight"), B_NUM, 0, 0, B_LO_OPEN | B_NO_HI,
     "routing.policies[0].weight"},
    {"routing.policies[confidence].weight", POL("confidence", "weight"), B_NUM, 0, 0,
     B_LO_OPEN | B_NO_HI, "routing.policies[0].weight"},
    {"routing.policies[length].min_chars", POL("length", "min_chars"), B_INT, 1, 1000000000, 0,
     "routing.policies[0].min_chars"},
    {"routing.policies[length].min_input_chars", POL("length", "min_input_chars"), B_INT, 1,
     1000000000, 0, "routing.policies[0].min_input_chars"},
    {"routing.policies[confidence].min_mean_logprob", POL("confidence", "min_mean_logprob"),
     B_NUM, 0, 0, B_NO_LO, "routing.policies[0].min_mean_logprob"},
    {"routing.policies[confidence].min_p10_logprob", POL("confidence", "min_p10_logprob"),
     B_NUM, 0, 0, B_NO_LO, "routing.policies[0].min_p10_logprob"},
    {"routing.policies[confidence].min_tokens", POL("confidence", "min_tokens"), B_INT, 0,
     1000000, 0, "routing.policies[0].min_tokens"},
};

/* The document of b with value v (printed so that it reads back as the same double). */
static char *bound_doc(const struct bound *b, double v)
{
    char num[40], *out = malloc(1024);
    const char *p = b->path, *dot;
    size_t n = 0, depth = 0;

    snprintf(num, sizeof num, b->kind == B_INT ? "%.0f" : "%.17g", v);
    if (b->json) { /* the template's "%s" replaced by the value */
        const char *hole = strstr(b->json, "%s");
        snprintf(out, 1024, "%.*s%s%s", (int)(hole - b->json), b->json, num, hole + 2);
        return out;
    }
    while ((dot = strchr(p, '.')) != NULL) { /* {"a": {"b": ... */
        n += (size_t)snprintf(out + n, 1024 - n, "{\"%.*s\": ", (int)(dot - p), p);
        depth++;
        p = dot + 1;
    }
    n += (size_t)snprintf(out + n, 1024 - n, "{\"%s\": %s}", p, num);
    while (depth-- > 0)
        n += (size_t)snprintf(out + n, 1024 - n, "}");
    return out;
}

/* The document with v must load (ok) or be refused naming the key's path. */
static void bound_try(const struct bound *b, double v, int ok)
{
    struct cfg_err err;
    char *doc = bound_doc(b, v);
    struct bd_config *c = config_load_string(doc, strlen(doc), &err);
    int before = tcheck_fail_;

    if (ok) {
        CHECK(c != NULL);
    } else {
        CHECK(c == NULL);
        if (!c)
            CHECK_STR(err.path, b->err_path ? b->err_path : b->path);
    }
    if (tcheck_fail_ != before)
        fprintf(stderr, "  ^ %s = %.17g should be %s: %s (%s: %s)\n", b->path, v,
                ok ? "accepted" : "refused", doc, c ? "loaded" : err.path, c ? "" : err.msg);
    config_unref(c);
    free(doc);
}

static double step_below(const struct bound *b, double v)
{
    return b->kind == B_INT ? v - 1 : nextafter(v, -INFINITY);
}

static double step_above(const struct bound *b, double v)
{
    return b->kind == B_INT ? v + 1 : nextafter(v, INFINITY);
}

static void test_bounds_one_step_outside(void)
{
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        const struct bound *b = &bounds[i];
        if (!(b->flags & B_NO_LO)) {
            int lo_ok = !(b->flags & (B_LO_OPEN | B_LO_UNREACH));
            bound_try(b, b->lo, lo_ok);
            if (!lo_ok)
                bound_try(b, step_above(b, b->lo), 1);
            bound_try(b, step_below(b, b->lo), 0);
        }
        if (b->flags & B_NO_HI) {
            bound_try(b, 1e300, 1);
        } else {
            bound_try(b, b->hi, 1);
            bound_try(b, step_above(b, b->hi), 0);
        }
    }
    /* the table's refusals name the bounds docs/CONFIG.md gives */
    expect_err("{\"workers\": {\"max_attempts\": 0}}", "workers.max_attempts",
               "must be between 1 and 100");
    expect_err("{\"models\": {\"judge\": {\"backoff_ms\": 0}}}", "models.judge.backoff_ms",
               "must be between 1 and 60000");
    expect_err("{\"evaluation\": {\"daily_budget_usd\": -1e-300}}",
               "evaluation.daily_budget_usd", "must be >= 0");
}

/* The name of a described number as bounds[] has it: "routing.policies[i].k" becomes
 * "routing.policies[<type>].k". */
static int bound_listed(const char *path)
{
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (strcmp(bounds[i].path, path) == 0)
            return 1;
    return 0;
}

static void walk_numbers(const cJSON *o, const char *path, int *n)
{
    char sub[256];
    const cJSON *it;

    cJSON_ArrayForEach(it, o) {
        if (cJSON_IsArray(o)) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
            snprintf(sub, sizeof sub, "%s[%s]", path,
                     cJSON_IsString(type) ? type->valuestring : "?");
        } else {
            snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", it->string);
        }
        if (cJSON_IsNumber(it) && strcmp(sub, "auth.api_keys") != 0 &&
            strcmp(sub, "auth.admin_keys") != 0) { /* counts of keys, not settings */
            (*n)++;
            if (!bound_listed(sub))
                fprintf(stderr, "  ^ %s is a number without bounds in test_config.c\n", sub);
            CHECK(bound_listed(sub));
        }
        if (cJSON_IsObject(it) || cJSON_IsArray(it))
            walk_numbers(it, sub, n);
    }
}

static void test_bounds_cover_describe(void)
{
    static const char conf[] =
        "{\"evaluation\": {\"daily_budget_usd\": 1},"
        " \"tenants\": {\"default\": {\"jobs_per_minute\": 5, \"daily_budget_usd\": 2,"
        "  \"max_refine_rate\": 0.5}},"
        " \"routing\": {\"guards\": {\"daily_refine_budget_usd\": 1},"
        "  \"policies\": [{\"type\": \"length\", \"min_input_chars\": 5},"
        "   {\"type\": \"topic\"}, {\"type\": \"confidence\", \"min_p10_logprob\": -2}]}}";
    struct cfg_err err;
    struct bd_config *c = load_str(conf, &err);
    cJSON *d = c ? config_describe(c) : NULL;
    int n = 0;

    CHECK(d != NULL);
    if (d)
        walk_numbers(d, "", &n);
    CHECK(n >= 40); /* the walk saw the numbers (a describe without them proves nothing) */
    cJSON_Delete(d);
    config_unref(c);
}

static void test_errors_listen_redis(void)
{
    expect_err("{\"models\": {\"draft\": {\"price\": {\"output_per_mtok\": 1e999}}}}",
               "models.draft.price.output_per_mtok", "expected number");
    expect_err("{\"listen\": \"127.0.0.1\"}", "listen", "expected \"host:port\"");
    expect_err("{\"listen\": \":8080\"}", "listen", "missing host");
    expect_err("{\"listen\": \"h:0\"}", "listen", "port must be between 1 and 65535");
    expect_err("{\"listen\": \"h:65536\"}", "listen", "port must be between 1 and 65535");
    expect_err("{\"listen\": \"h:80x\"}", "listen", "port must be between 1 and 65535");
    expect_err("{\"listen\": \"::1:8080\"}", "listen",
               "IPv6 addresses must be written in brackets, e.g. [::1]:8080");
    expect_err("{\"listen\": \"[::1\"}", "listen", "missing ']' after an IPv6 address");
    expect_err("{\"listen\": \"[%]:1\"}", "listen",
               "brackets must hold an IPv6 address, e.g. [::1]");
    expect_err("{\"listen\": \"[localhost]:1\"}", "listen",
               "brackets must hold an IPv6 address, e.g. [::1]");
    {
        char big[400];
        snprintf(big, sizeof(big), "{\"redis\": {\"url\": \"redis://%0254d:6379\"}}", 0);
        expect_err(big, "redis.url", "host name longer than 253 characters");
    }
    expect_err("{\"redis\": {\"url\": \"http://h:6379\"}}", "redis.url",
               "unsupported scheme; expected redis://[[user]:password@]host[:port][/db] or "
               "unix://[[user]:password@]/path/to/redis.sock[?db=N]");
    expect_err("{\"redis\": {\"url\": \"unix://run/redis.sock\"}}", "redis.url",
               "expected unix:///path/to/redis.sock or unix://[user]:password@/path");
    expect_err("{\"redis\": {\"url\": \"unix:///\"}}", "redis.url",
               "the socket's path must be absolute and at most 107 bytes");
    {
        char big[300];
        snprintf(big, sizeof(big), "{\"redis\": {\"url\": \"unix:///%0107d\"}}", 0);
        expect_err(big, "redis.url", "the socket's path must be absolute and at most 107 bytes");
        snprintf(big, sizeof(big), "{\"redis\": {\"url\": \"unix:///%0106d\"}}", 0);
        struct cfg_err e2;
        struct bd_config *c2 = load_str(big, &e2);
        CHECK(c2 != NULL && strlen(c2->redis_host) == 107);
        if (c2)
            config_unref(c2);
    }
    expect_err("{\"redis\": {\"url\": \"unix:///run/redis.sock?database=2\"}}", "redis.url",
               "the only query a unix:// URL takes is ?db=N");
    expect_err("{\"redis\": {\"url\": \"unix:///run/redis.sock?db=x\"}}", "redis.url",
               "database must be an integer between 0 and 999999999");
    expect_err("{\"redis\": {\"url\": \"unix://bob@/run/redis.sock\"}}", "redis.url",
               "expected \":password@\" or \"user:password@\" before the host");
    expect_err("{\"redis\": {\"url\": \"unix:///run/my redis.sock\"}}", "redis.url",
               "the socket's path must not contain spaces, control characters or '#'");
    expect_err("{\"redis\": {\"url\": \"unix:///run/redis.sock\", "
               "\"sentinels\": [\"10.0.0.1:26379\"], \"master_name\": \"m\"}}", "redis.url",
               "Sentinel names its primary by address: with redis.sentinels the URL is redis:// "
               "(its user, password and database are used), not unix://");
#ifndef BRIEFD_REDIS_TLS
    expect_err("{\"redis\": {\"url\": \"rediss://h:6379\"}}", "redis.url",
               "this build of hiredis has no TLS; run a TLS sidecar such as stunnel: see "
               "docs/REDIS.md");
#endif
    expect_err("{\"redis\": {\"url\": \"redis://bob:@h:6379\"}}", "redis.url",
               "an ACL user needs a password (user:password@)");
    {
        /* the longest user name, every byte one the description percent-encodes: shown
         * within redis.url's 4096 characters, and read back as the same user */
        char url[4096], *d_url;
        struct bd_config *lc, *back;
        struct cfg_err le;
        cJSON *d;
        size_t n = 0;
        n += (size_t)snprintf(url, sizeof url, "{\"redis\": {\"url\": \"redis://");
        for (int i = 0; i < CONFIG_MAX_REDIS_USER; i++)
            n += (size_t)snprintf(url + n, sizeof url - n, "%%40");
        snprintf(url + n, sizeof url - n, ":pw@h:6379\"}}");
        lc = load_str(url, &le);
        CHECK(lc != NULL && lc->redis_user && strlen(lc->redis_user) == CONFIG_MAX_REDIS_USER);
        d = lc ? config_describe(lc) : NULL;
        d_url = cJSON_GetStringValue(jget(d, "redis", "url", NULL));
        CHECK(d_url && strlen(d_url) <= 4096);
        if (d_url) {
            snprintf(url, sizeof url, "{\"redis\": {\"url\": \"%s\"}}", d_url);
            back = load_str(url, &le);
            CHECK(back && back->redis_user && strcmp(back->redis_user, lc->redis_user) == 0);
            config_unref(back);
        }
        cJSON_Delete(d);
        config_unref(lc);
        /* one byte more is refused (its description would not read back) */
        n = (size_t)snprintf(url, sizeof url, "{\"redis\": {\"url\": \"redis://");
        for (int i = 0; i <= CONFIG_MAX_REDIS_USER; i++)
            n += (size_t)snprintf(url + n, sizeof url - n, "a");
        snprintf(url + n, sizeof url - n, ":pw@h:6379\"}}");
        expect_err(url, "redis.url", "user name longer than 1024 bytes");
    }
    expect_err("{\"redis\": {\"sentinels\": [\"127.0.0.1:26379\"]}}", "redis.master_name",
               "needed with redis.sentinels");
    expect_err("{\"redis\": {\"master_name\": \"m\"}}", "redis.sentinels",
               "needed with redis.master_name");
    expect_err("{\"redis\": {\"sentinels\": [\"127.0.0.1\"], \"master_name\": \"m\"}}",
               "redis.sentinels[0]", "expected \"host:port\"");
    expect_err("{\"redis\": {\"sentinels\": [26379], \"master_name\": \"m\"}}",
               "redis.sentinels[0]", "expected string");
    expect_err("{\"redis\": {\"sentinels\": \"h:1\", \"master_name\": \"m\"}}",
               "redis.sentinels", "expected an array of \"host:port\" strings");
    expect_err("{\"redis\": {\"min_replicas_acked\": 17}}", "redis.min_replicas_acked",
               "must be between 0 and 16");
    expect_err("{\"redis\": {\"url\": \"redis://\"}}", "redis.url", "missing host");
    expect_err("{\"redis\": {\"url\": \"redis://:pw@h:70000\"}}", "redis.url",
               "port must be between 1 and 65535");
    expect_err("{\"redis\": {\"url\": \"redis://h/abc\"}}", "redis.url",
               "database must be an integer between 0 and 999999999");
    expect_err("{\"redis\": {\"url\": \"redis://alice@h\"}}", "redis.url",
               "expected \":password@\" or \"user:password@\" before the host");
    expect_err("{\"redis\": {\"url\": \"redis://h?db=1\"}}", "redis.url",
               "query and fragment parts are not supported (percent-encode '?' and '#' "
               "in a password)");
}

static void test_errors_text(void)
{
    expect_err("{\n  \"listen\": \"h:1\",\n  \"redis\": {\"url\" \"redis://h\"}\n}", "",
               "invalid JSON at line 3, column 19"); /* the second string */
    /* cJSON stops one byte past a '}' where a key was due */
    expect_err("{\"a\": 1,}", "", "invalid JSON at line 1, column 10");
    expect_err("{} x", "", "invalid JSON at line 1, column 4");
    expect_err("[1, 2]", "", "top level must be a JSON object");
    expect_err("\"x\"", "", "top level must be a JSON object");
    expect_err("", "", "config is empty (expected a JSON object)");
    expect_err(" \n\t ", "", "config is empty (expected a JSON object)");
    {
        struct cfg_err err;
        struct bd_config *c = config_load_string("{}\0{", 4, &err);
        CHECK(c == NULL);
        CHECK_STR(err.msg, "NUL byte in config at line 1, column 3");
    }
}

static void test_errors_files(void)
{
    struct cfg_err err;
    struct bd_config *c = config_load("/nonexistent/dir/briefd.json", &err);
    char *path;

    CHECK(c == NULL);
    CHECK_STR(err.path, "");
    CHECK_STR(err.msg, "cannot open /nonexistent/dir/briefd.json: No such file or directory");

    path = write_temp("", 0);
    c = config_load(path, &err);
    CHECK(c == NULL);
    CHECK_STR(err.path, "");
    CHECK_STR(err.msg, "config is empty (expected a JSON object)");
    unlink(path);
    free(path);
}

static void test_errors_file_size(void)
{
    struct cfg_err err;
    struct bd_config *c;
    char *path, *big = malloc(CONFIG_MAX_FILE_BYTES + 2);

    memset(big, ' ', CONFIG_MAX_FILE_BYTES + 1);
    big[0] = '{';
    big[CONFIG_MAX_FILE_BYTES] = '}';
    path = write_temp(big, CONFIG_MAX_FILE_BYTES + 1);
    c = config_load(path, &err);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "too large (max 1048576 bytes)") != NULL);
    unlink(path);
    free(path);
    /* exactly at the bound is fine */
    big[CONFIG_MAX_FILE_BYTES - 1] = '}';
    path = write_temp(big, CONFIG_MAX_FILE_BYTES);
    c = config_load(path, &err);
    CHECK(c != NULL);
    config_unref(c);
    unlink(path);
    free(path);
    free(big);
}

static void test_errors_file_content(void)
{
    struct cfg_err err;
    struct bd_config *c;
    char *path = write_temp("{\"workers\": {\"concurrency\": true}}",
                            strlen("{\"workers\": {\"concurrency\": true}}"));

    c = config_load(path, &err);
    CHECK(c == NULL);
    CHECK_STR(err.path, "workers.concurrency");
    CHECK_STR(err.msg, "expected integer");
    unlink(path);
    free(path);

    CHECK(config_load_string("{bad", 4, NULL) == NULL); /* err may be NULL */
    c = config_load("/tmp", &err);
    CHECK(c == NULL);
    CHECK(strncmp(err.msg, "cannot read /tmp", 16) == 0);
}

/* ---- accepted variants --------------------------------------------------------------- */

static void test_listen_redis_ok(void)
{
    struct cfg_err err;
    cJSON *d;
    struct bd_config *c = load_str("{\"listen\": \"[::1]:8081\", \"redis\": {\"url\": "
                                   "\"redis://alice:p%40ss%3Aw@[::1]\"}}", &err);

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->listen_host, "::1");
    CHECK(c->listen_port == 8081);
    CHECK_STR(c->redis_host, "::1");
    CHECK(c->redis_port == 6379 && c->redis_db == 0);
    CHECK_STR(c->redis_password, "p@ss:w");
    config_unref(c);

    c = load_str("{\"redis\": {\"url\": \"redis://:@localhost:7000/\"}, "
                 "\"models\": {\"draft\": {\"base_url\": \"http://h:1///\"}}}", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->redis_host, "localhost");
    CHECK(c->redis_port == 7000 && c->redis_db == 0 && c->redis_password == NULL);
    CHECK_STR(c->draft.base_url, "http://h:1");
    config_unref(c);

    c = load_str("{\"redis\": {\"url\": \"unix:///run/redis/redis.sock\"}}", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->redis_host, "/run/redis/redis.sock");
    CHECK(c->redis_port == 0 && c->redis_db == 0 && c->redis_password == NULL);
    d = config_describe(c);
    CHECK_STR(cJSON_GetStringValue(jget(d, "redis", "url", NULL)), "unix:///run/redis/redis.sock?db=0");
    cJSON_Delete(d);
    config_unref(c);

    c = load_str("{\"redis\": {\"url\": \"unix://app:p%40ss@/var/run/r@dis.sock?db=4\"}}",
                 &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->redis_host, "/var/run/r@dis.sock");
    CHECK(c->redis_port == 0 && c->redis_db == 4);
    CHECK_STR(c->redis_user, "app");
    CHECK_STR(c->redis_password, "p@ss");
    d = config_describe(c);
    CHECK_STR(cJSON_GetStringValue(jget(d, "redis", "url", NULL)), "unix://app:***@/var/run/r@dis.sock?db=4");
    cJSON_Delete(d);
    config_unref(c);

    c = load_str("{\"workers\": {\"job_timeout_ms\": 60000}, "
                 "\"models\": {\"draft\": {\"api_key_env\": null}}}", &err);
    CHECK(c != NULL);
    if (c)
        CHECK(c->claim_idle_ms == 90000);
    config_unref(c);
}

/* ---- secrets ------------------------------------------------------------------------- */

static void test_env_keys(void)
{
    const char *conf = "{\"auth\": {\"keys_env\": \"TC_K\", \"admin_keys_env\": \"TC_A\"}}";
    struct cfg_err err;
    struct bd_config *c;

    setenv("TC_K", "  key-aaaa-1111 , ,\tkey-bbbb-2222,", 1);
    setenv("TC_A", "admin-key-0001", 1);
    c = load_str(conf, &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->n_api_keys == 2 && c->n_admin_keys == 1);
        CHECK_STR(c->api_keys[0], "key-aaaa-1111");
        CHECK_STR(c->api_keys[1], "key-bbbb-2222");
        CHECK_STR(c->admin_keys[0], "admin-key-0001");
    }
    config_unref(c);
    unsetenv("TC_K");
    unsetenv("TC_A");
}

static void test_env_keys_bad(void)
{
    const char *conf = "{\"auth\": {\"keys_env\": \"TC_K\", \"admin_keys_env\": \"TC_A\"}}";
    struct cfg_err err;
    struct bd_config *c;

    setenv("TC_A", "admin-key-0001", 1);
    setenv("TC_K", "goodkey-123,short1", 1);
    c = load_str(conf, &err);
    CHECK(c == NULL);
    CHECK_STR(err.path, "auth.keys_env");
    CHECK_STR(err.msg, "$TC_K entry 2: a key must be 8 to 256 printable ASCII characters "
              "without spaces");
    CHECK(strstr(err.msg, "short1") == NULL && strstr(err.msg, "goodkey") == NULL);

    setenv("TC_K", "has space-inside", 1);
    c = load_str(conf, &err);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "entry 1") != NULL && strstr(err.msg, "inside") == NULL);

    setenv("TC_K", "", 1);
    setenv("TC_A", "tiny", 1);
    c = load_str(conf, &err);
    CHECK(c == NULL);
    CHECK_STR(err.path, "auth.admin_keys_env");
    CHECK(strstr(err.msg, "$TC_A entry 1") != NULL && strstr(err.msg, "tiny") == NULL);

    unsetenv("TC_K");
    unsetenv("TC_A");
}

static void test_env_keys_off(void)
{
    struct cfg_err err;
    struct bd_config *c;

    /* keys_env null: auth off even though the variable is set */
    setenv("TC_K", "key-aaaa-1111", 1);
    c = load_str("{\"auth\": {\"keys_env\": null, \"admin_keys_env\": null}}", &err);
    CHECK(c != NULL && !config_auth_enabled(c));
    config_unref(c);
    unsetenv("TC_K");

    /* a model key env var that is unset is not an error */
    c = load_str("{\"models\": {\"draft\": {\"api_key_env\": \"TC_UNSET_VAR\"}}}", &err);
    CHECK(c != NULL && c->draft.api_key == NULL);
    config_unref(c);
}

static void test_compare(void)
{
    const char *conf = "{\"auth\": {\"keys_env\": \"TC_K\", \"admin_keys_env\": \"TC_A\"}}";
    char longkey[400];
    struct cfg_err err;
    struct bd_config *c;

    setenv("TC_K", "api-key-0001,api-key-second", 1);
    setenv("TC_A", "admin-key-0001", 1);
    c = load_str(conf, &err);
    unsetenv("TC_K");
    unsetenv("TC_A");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(config_auth_enabled(c));
    CHECK(config_is_api_key(c, "api-key-0001") == 1);
    CHECK(config_is_api_key(c, "api-key-second") == 1);
    CHECK(config_is_api_key(c, "admin-key-0001") == 1); /* admin may do everything */
    CHECK(config_is_admin_key(c, "admin-key-0001") == 1);
    CHECK(config_is_admin_key(c, "api-key-0001") == 0);
    CHECK(config_is_api_key(c, "api-key-0002") == 0);  /* same length, last byte differs */
    CHECK(config_is_api_key(c, "api-key-000") == 0);   /* prefix */
    CHECK(config_is_api_key(c, "api-key-00011") == 0); /* longer */
    CHECK(config_is_api_key(c, "api-key-second\n") == 0);
    CHECK(config_is_api_key(c, "") == 0);
    CHECK(config_is_api_key(c, NULL) == 0);
    CHECK(config_is_admin_key(c, "admin-key-000") == 0);
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    memcpy(longkey, "api-key-0001", 12);
    CHECK(config_is_api_key(c, longkey) == 0);
    CHECK(config_is_api_key(NULL, "api-key-0001") == 0);
    config_unref(c);

    c = config_load(NULL, &err); /* no keys: nothing matches, not even "" */
    CHECK(c != NULL && !config_auth_enabled(c));
    CHECK(config_is_api_key(c, "") == 0 && config_is_admin_key(c, "") == 0);
    config_unref(c);
}

static void test_describe(void)
{
    const char *conf =
        "{\"listen\": \"[::1]:8080\","
        " \"auth\": {\"keys_env\": \"TC_K\", \"admin_keys_env\": \"TC_A\"},"
        " \"redis\": {\"url\": \"redis://bob:s3cr3t-redis-pw@db.local:6390/2\"},"
        " \"models\": {\"draft\": {\"api_key_env\": \"TC_DK\"}}}";
    struct cfg_err err;
    struct bd_config *c;
    cJSON *d;
    char *text;

    setenv("TC_K", "api-secret-0001,api-secret-0002", 1);
    setenv("TC_A", "admin-secret-0001", 1);
    setenv("TC_DK", "sk-draft-secret-xyz", 1);
    c = load_str(conf, &err);
    unsetenv("TC_K");
    unsetenv("TC_A");
    unsetenv("TC_DK");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->draft.api_key, "sk-draft-secret-xyz");
    text = describe_text(c);
    CHECK(text != NULL);
    if (text) {
        CHECK(strstr(text, "s3cr3t") == NULL);
        CHECK(strstr(text, "api-secret") == NULL);
        CHECK(strstr(text, "admin-secret") == NULL);
        CHECK(strstr(text, "sk-draft") == NULL);
    }
    free(text);
    d = config_describe(c);
    CHECK_STR(cJSON_GetStringValue(jget(d, "redis", "url", NULL)),
              "redis://bob:***@db.local:6390/2");
    CHECK_STR(c->redis_user, "bob");
    CHECK_STR(c->redis_password, "s3cr3t-redis-pw");
    CHECK_STR(cJSON_GetStringValue(jget(d, "listen", NULL, NULL)), "[::1]:8080");
    CHECK_STR(cJSON_GetStringValue(jget(d, "version", NULL, NULL)), c->version);
    CHECK_STR(cJSON_GetStringValue(jget(d, "auth", "keys_env", NULL)), "TC_K");
    CHECK(cJSON_GetNumberValue(jget(d, "auth", "api_keys", NULL)) == 2);
    CHECK(cJSON_GetNumberValue(jget(d, "auth", "admin_keys", NULL)) == 1);
    CHECK_STR(cJSON_GetStringValue(jget(d, "models", "draft", "api_key_env")), "TC_DK");
    CHECK_STR(cJSON_GetStringValue(jget(d, "models", "draft", "api_key")), "***");
    CHECK(cJSON_IsNull(jget(d, "models", "refine", "api_key")));
    CHECK(cJSON_IsNull(jget(d, "models", "refine", "api_key_env")));
    CHECK(cJSON_GetNumberValue(jget(d, "models", "refine", "max_tokens")) == 600);
    CHECK(cJSON_IsFalse(jget(d, "models", "refine", "logprobs")));
    CHECK(cJSON_GetNumberValue(jget(d, "workers", "claim_idle_ms", NULL)) == 150000);
    CHECK(cJSON_IsObject(jget(d, "models", "draft", "price")));
    CHECK(cJSON_IsString(jget(d, "models", "draft", "prompt")->child));
    CHECK_STR(cJSON_GetStringValue(jget(d, "routing", "mode", NULL)), "any");
    CHECK(cJSON_IsArray(jget(d, "routing", "policies", NULL)));
    cJSON_Delete(d);
    config_unref(c);
}

/* The describe output, less what only describe shows, loads back to the same config. */
static void test_describe_round_trip(void)
{
    struct cfg_err err;
    struct bd_config *a = load_str(full_json, &err), *b = NULL;
    cJSON *d = a ? config_describe(a) : NULL;
    char *text;

    CHECK(d != NULL);
    if (!d)
        goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(d, "version");
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(d, "auth"), "api_keys");
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(d, "auth"), "admin_keys");
    cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)jget(d, "models", "draft", NULL), "api_key");
    cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)jget(d, "models", "refine", NULL), "api_key");
    cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)jget(d, "models", "judge", NULL), "api_key");
    text = cJSON_PrintUnformatted(d);
    b = text ? load_str(text, &err) : NULL;
    CHECK(b != NULL);
    if (b) {
        CHECK_STR(a->version, b->version);
        CHECK_STR(b->redis_password, "***"); /* the redaction, taken literally */
        CHECK_STR(b->refine.prompt_user, a->refine.prompt_user);
    }
    free(text);
out:
    cJSON_Delete(d);
    config_unref(a);
    config_unref(b);
}

static void test_version(void)
{
    struct cfg_err err;
    struct bd_config *a = load_str("{\"workers\": {\"concurrency\": 8}}", &err);
    struct bd_config *b = load_str("{ \"workers\" : { \"concurrency\" : 8 } }", &err);
    struct bd_config *x = load_str("{\"workers\": {\"concurrency\": 9}}", &err);
    struct bd_config *d0 = config_load(NULL, &err);
    struct bd_config *d1 = load_str("{\"redis\": {\"url\": \"redis://127.0.0.1\"}}", &err);
    struct bd_config *r = load_str("{\"routing\": {\"mode\": \"all\"}}", &err);
    struct bd_config *p = load_str("{\"workers\": {\"concurrency\": 12}}", &err);
    struct bd_config *q = load_str("{\"workers\": {\"concurrency\": 21}}", &err);

    CHECK(a && b && x && d0 && d1 && r && p && q);
    if (a && b && x && d0 && d1 && r && p && q) {
        CHECK(is_hex16(a->version));
        CHECK_STR(a->version, b->version);
        CHECK(strcmp(a->version, x->version) != 0);
        CHECK_STR(d0->version, d1->version); /* same effective config */
        CHECK(strcmp(d0->version, a->version) != 0);
        CHECK(strcmp(d0->version, r->version) != 0);
        CHECK(strcmp(p->version, q->version) != 0); /* order of bytes matters */
    }
    config_unref(p);
    config_unref(q);
    config_unref(a);
    config_unref(b);
    config_unref(x);
    config_unref(d0);
    config_unref(d1);
    config_unref(r);
}

/* ---- models.judge and evaluation ------------------------------------------------------ */

static void test_judge_defaults(void)
{
    struct cfg_err err;
    struct bd_config *c = config_load(NULL, &err);

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->judge.name, "gpt-oss-20b");
    CHECK_STR(c->judge.base_url, "http://127.0.0.1:5273/v1");
    CHECK(c->judge.api_key_env == NULL && c->judge.api_key == NULL);
    CHECK_NEAR(c->judge.temperature, 0.0, 0);
    CHECK(c->judge.logprobs == 0 && c->judge.stream == 0 && c->judge.max_tokens == 600);
    CHECK(c->judge.timeout_ms == 60000 && c->judge.max_attempts == 3);
    /* the judge defaults to the refine model, so to its list prices */
    CHECK_NEAR(c->judge.price_in_per_mtok, c->refine.price_in_per_mtok, 0);
    CHECK_NEAR(c->judge.price_out_per_mtok, c->refine.price_out_per_mtok, 0);
    CHECK(c->judge.price_in_per_mtok > 0 && c->judge.price_per_hour == 0);
    /* the layout the simulator reads (docs/EVALUATION.md) */
    CHECK_STR(c->judge.prompt_user,
              "Document:\n{text}\n\nMaximum words: {max_words}\n\nBrief:\n{draft}");
    CHECK(strstr(c->judge.prompt_system, "faithfulness") != NULL);
    CHECK(c->eval_shadow_rate == 0);
    CHECK(c->eval_daily_budget_usd < 0);
    config_unref(c);
}

/* name, base_url and api_key_env follow models.refine unless models.judge gives them;
 * nothing else does (the refine model's temperature and prices stay its own; the judge's default prices are
 * the refine model's list prices). */
static void test_judge_derived(void)
{
    struct cfg_err err;
    struct bd_config *a, *b, *c;

    setenv("TC_RK", "sk-refine-1", 1);
    setenv("TC_JK", "sk-judge-2", 1);
    a = load_str("{\"models\": {\"refine\": {\"name\": \"big\", \"base_url\": "
                 "\"https://r.example/v1/\", \"api_key_env\": \"TC_RK\", \"temperature\": 0.7,"
                 " \"price\": {\"input_per_mtok\": 2}}}}", &err);
    b = load_str("{\"models\": {\"refine\": {\"name\": \"big\", \"api_key_env\": \"TC_RK\"},"
                 " \"judge\": {\"name\": \"other-family\", \"api_key_env\": null,"
                 " \"temperature\": 0.3, \"price\": {\"output_per_mtok\": 4}}}}", &err);
    c = load_str("{\"models\": {\"judge\": {\"base_url\": \"http://j.example:81/v1\","
                 " \"api_key_env\": \"TC_JK\"}}}", &err);
    unsetenv("TC_RK");
    unsetenv("TC_JK");
    CHECK(a && b && c);
    if (a) {
        CHECK_STR(a->judge.name, "big");
        CHECK_STR(a->judge.base_url, "https://r.example/v1");
        CHECK_STR(a->judge.api_key_env, "TC_RK");
        CHECK_STR(a->judge.api_key, "sk-refine-1");
        CHECK_NEAR(a->judge.temperature, 0.0, 0);
        CHECK_NEAR(a->judge.price_in_per_mtok, 0.05, 1e-12); /* its default, not refine's 2 */
    }
    if (b) {
        CHECK_STR(b->judge.name, "other-family");
        CHECK(b->judge.api_key_env == NULL && b->judge.api_key == NULL); /* null given */
        CHECK_STR(b->judge.base_url, "http://127.0.0.1:5273/v1");
        CHECK_NEAR(b->judge.temperature, 0.3, 1e-12);
        CHECK_NEAR(b->judge.price_out_per_mtok, 4, 0);
    }
    if (c) {
        CHECK_STR(c->judge.name, "gpt-oss-20b");
        CHECK_STR(c->judge.base_url, "http://j.example:81/v1");
        CHECK_STR(c->judge.api_key, "sk-judge-2");
        CHECK(c->refine.api_key == NULL);
    }
    if (a && b)
        CHECK(strcmp(a->version, b->version) != 0);
    config_unref(a);
    config_unref(b);
    config_unref(c);
}

/* A judge on the refine model's endpoint sends what that endpoint needs: its auth mode and
 * its headers (a gateway's, say); a judge with its own base_url sends neither. */
static void test_judge_headers_follow_endpoint(void)
{
    struct cfg_err err;
    struct bd_config *a, *b;
    const char *refine = "\"refine\": {\"auth_header\": \"api-key\", \"api_key_env\": \"TC_RK\","
                         " \"headers\": {\"x-portkey-provider\": \"openai\","
                         " \"x-portkey-api-key\": {\"env\": \"TC_PK\"}}}";
    char buf[1024];

    setenv("TC_RK", "sk-r", 1);
    setenv("TC_PK", "pk-secret", 1);
    snprintf(buf, sizeof buf, "{\"models\": {%s}}", refine);
    a = load_str(buf, &err);
    snprintf(buf, sizeof buf,
             "{\"models\": {%s, \"judge\": {\"base_url\": \"http://j.example/v1\"}}}", refine);
    b = load_str(buf, &err);
    unsetenv("TC_RK");
    unsetenv("TC_PK");
    CHECK(a && b);
    if (a) {
        CHECK(a->judge.auth_header == MODEL_AUTH_API_KEY);
        CHECK(a->judge.n_header_lines == 2);
        if (a->judge.n_header_lines == 2) {
            CHECK_STR(a->judge.header_lines[0], "x-portkey-provider: openai");
            CHECK_STR(a->judge.header_lines[1], "x-portkey-api-key: pk-secret");
        }
        CHECK(a->refine.n_header_lines == 2); /* a copy: the refine model keeps its own */
    }
    if (b) {
        CHECK(b->judge.auth_header == MODEL_AUTH_BEARER);
        CHECK(b->judge.n_headers == 0 && b->judge.n_header_lines == 0);
        CHECK_STR(b->judge.api_key, "sk-r"); /* api_key_env still follows */
    }
    config_unref(a);
    config_unref(b);
}

static void test_judge_evaluation_errors(void)
{
    expect_err("{\"models\": {\"judge\": {\"temperature\": 2.5}}}", "models.judge.temperature",
               "must be between 0 and 2");
    expect_err("{\"models\": {\"judge\": {\"rubric\": \"x\"}}}", "models.judge.rubric",
               "unknown key");
    expect_err("{\"models\": {\"judge\": {\"base_url\": \"ftp://h\"}}}", "models.judge.base_url",
               "expected an http:// or https:// URL");
    expect_err("{\"models\": {\"judge\": null}}", "models.judge", "expected object");
    expect_err("{\"evaluation\": {\"shadow_rate\": 1.5}}", "evaluation.shadow_rate",
               "must be between 0 and 1");
    expect_err("{\"evaluation\": {\"shadow_rate\": null}}", "evaluation.shadow_rate",
               "expected number");
    expect_err("{\"evaluation\": {\"daily_budget_usd\": -1}}", "evaluation.daily_budget_usd",
               "must be >= 0");
    expect_err("{\"evaluation\": {\"daily_budget_usd\": \"5\"}}",
               "evaluation.daily_budget_usd", "expected number or null");
    expect_err("{\"evaluation\": {\"daily_budget_usd\": 1e999}}",
               "evaluation.daily_budget_usd", "expected number or null");
    expect_err("{\"evaluation\": {\"budget\": 1}}", "evaluation.budget", "unknown key");
    expect_err("{\"evaluation\": {\"max_in_flight\": 0}}", "evaluation.max_in_flight",
               "must be between 1 and 1024");
    expect_err("{\"evaluation\": {\"max_in_flight\": 2.5}}", "evaluation.max_in_flight",
               "expected integer");
    expect_err("{\"evaluation\": []}", "evaluation", "expected object");
}

static void test_judge_evaluation_describe(void)
{
    struct cfg_err err;
    struct bd_config *c, *n;
    cJSON *d, *dn;

    setenv("TC_JK", "sk-judge-secret-77", 1);
    c = load_str("{\"models\": {\"judge\": {\"api_key_env\": \"TC_JK\"}},"
                 " \"evaluation\": {\"shadow_rate\": 0.05, \"daily_budget_usd\": 2.5}}", &err);
    unsetenv("TC_JK");
    n = load_str("{\"evaluation\": {\"daily_budget_usd\": null}}", &err);
    CHECK(c && n);
    if (!c || !n)
        goto out;
    CHECK_NEAR(c->eval_shadow_rate, 0.05, 0);
    CHECK_NEAR(c->eval_daily_budget_usd, 2.5, 0);
    CHECK(n->eval_daily_budget_usd < 0);
    d = config_describe(c);
    dn = config_describe(n);
    CHECK_STR(cJSON_GetStringValue(jget(d, "models", "judge", "api_key")), "***");
    CHECK_STR(cJSON_GetStringValue(jget(d, "models", "judge", "name")), "gpt-oss-20b");
    CHECK(cJSON_GetNumberValue(jget(d, "models", "judge", "temperature")) == 0);
    CHECK(cJSON_GetNumberValue(jget(d, "evaluation", "shadow_rate", NULL)) == 0.05);
    CHECK(cJSON_GetNumberValue(jget(d, "evaluation", "daily_budget_usd", NULL)) == 2.5);
    CHECK(cJSON_GetNumberValue(jget(d, "evaluation", "max_in_flight", NULL)) == 4);
    CHECK(c->eval_max_in_flight == 4);
    CHECK(cJSON_IsNull(jget(dn, "evaluation", "daily_budget_usd", NULL)));
    CHECK(cJSON_IsNull(jget(dn, "models", "judge", "api_key")));
    {
        char *text = cJSON_PrintUnformatted(d);
        CHECK(text && strstr(text, "sk-judge") == NULL);
        free(text);
    }
    cJSON_Delete(d);
    cJSON_Delete(dn);
out:
    config_unref(c);
    config_unref(n);
}

static void test_refcount(void)
{
    struct cfg_err err;
    struct bd_config *c = config_load(NULL, &err);

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(config_ref(c) == c);
    CHECK(config_ref(c) == c);
    CHECK(c->refcount == 3);
    config_unref(c);
    CHECK(c->refcount == 2);
    config_unref(c);
    CHECK(c->refcount == 1);
    config_unref(c); /* freed: LeakSanitizer would report otherwise, ASan any later use */
    CHECK(config_ref(NULL) == NULL);
    config_unref(NULL);
}

/* "tenant=key" entries: the key authenticates alone, and names its tenant. */
static void test_key_tenants(void)
{
    struct cfg_err err;
    struct bd_config *c;
    setenv("TC_T_KEYS", "acme=key-acme-0001, plain-key-0002, a=b=c-key-0003, x==padded", 1);
    setenv("TC_T_ADMIN", "ops.team=admin-key-0009", 1);
    c = load_str("{\"auth\": {\"keys_env\": \"TC_T_KEYS\", \"admin_keys_env\": \"TC_T_ADMIN\"}}",
                 &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->n_api_keys == 4);
        CHECK(config_is_api_key(c, "key-acme-0001"));
        CHECK(!config_is_api_key(c, "acme=key-acme-0001"));
        CHECK_STR(config_key_tenant(c, "key-acme-0001"), "acme");
        CHECK(config_key_tenant(c, "plain-key-0002") == NULL);
        CHECK_STR(config_key_tenant(c, "b=c-key-0003"), "a");     /* first '=' splits */
        CHECK(config_is_api_key(c, "x==padded"));                  /* "=padded" is no key */
        CHECK(config_key_tenant(c, "x==padded") == NULL);
        CHECK_STR(config_key_tenant(c, "admin-key-0009"), "ops.team");
        CHECK(config_is_admin_key(c, "admin-key-0009"));
        CHECK(config_key_tenant(c, "nope-nope-nope") == NULL);
        CHECK(config_key_tenant(c, NULL) == NULL);
        config_unref(c);
    }
    unsetenv("TC_T_KEYS");
    unsetenv("TC_T_ADMIN");
}

struct collected {
    int n;
    char paths[16][160];
};

static void collect(const struct cfg_err *err, void *data)
{
    struct collected *c = data;
    if (c->n < 16)
        snprintf(c->paths[c->n], sizeof(c->paths[0]), "%s", err->path);
    c->n++;
}

/* config_check_file reports every mistake, with the file's own array indices. */
static void test_check_all(void)
{
    char path[] = "/tmp/briefd-test-check-XXXXXX";
    const char *bad = "{\"bogus\": 1, \"workers\": {\"concurrency\": \"a\"},"
                      " \"routing\": {\"policies\": [{\"type\": \"nope\"}, {\"type\": \"x\"},"
                      " {\"type\": \"length\", \"min_chars\": -1}]}}";
    struct collected got = {0};
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(fd);
    CHECK(config_check_file(path, collect, &got) == 5);
    CHECK_STR(got.paths[0], "bogus");
    CHECK_STR(got.paths[1], "workers.concurrency");
    CHECK_STR(got.paths[2], "routing.policies[0].type");
    CHECK_STR(got.paths[3], "routing.policies[1].type");
    CHECK_STR(got.paths[4], "routing.policies[2].min_chars");
    got.n = 0;
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(write(fd, "{}", 2) == 2);
    close(fd);
    CHECK(config_check_file(path, collect, &got) == 0);
    CHECK(got.n == 0);
    unlink(path);
    CHECK(config_check_file(path, collect, &got) == 1); /* missing file */
    CHECK_STR(got.paths[0], "");
}

/* redis.sentinels and friends land in the config and come back out of describe. */
static void test_redis_ha(void)
{
    struct cfg_err err;
    struct bd_config *c;
    cJSON *d;
    const cJSON *arr;

    setenv("TC_SENT_PW", "sentinel-pw-xyz", 1);
    c = load_str("{\"redis\": {\"url\": \"redis://app%3Auser:pw@10.0.0.1:6380\","
                 " \"sentinels\": [\"127.0.0.1:26379\", \"[::1]:26380\", \"s3.local:26381\"],"
                 " \"master_name\": \"mymaster\", \"sentinel_password_env\": \"TC_SENT_PW\","
                 " \"min_replicas_acked\": 1, \"replica_ack_timeout_ms\": 250}}", &err);
    unsetenv("TC_SENT_PW");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->redis_user, "app:user");
    CHECK(c->redis_sentinels.n == 3);
    CHECK_STR(c->redis_sentinels.v[1], "[::1]:26380");
    CHECK_STR(c->redis_master_name, "mymaster");
    CHECK_STR(c->redis_sentinel_password, "sentinel-pw-xyz");
    CHECK(c->redis_min_replicas_acked == 1);
    CHECK(c->redis_replica_ack_timeout_ms == 250);
    d = config_describe(c);
    arr = jget(d, "redis", "sentinels", NULL);
    CHECK(cJSON_GetArraySize(arr) == 3);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(arr, 2)), "s3.local:26381");
    {
        char *text = cJSON_PrintUnformatted(d);
        CHECK(text && strstr(text, "sentinel-pw") == NULL);
        free(text);
    }
    cJSON_Delete(d);
    config_unref(c);
    c = load_str("{}", &err);
    CHECK(c && c->redis_sentinels.n == 0 && c->redis_min_replicas_acked == 0 &&
          c->redis_replica_ack_timeout_ms == 1000 && !c->redis_user);
    config_unref(c);
}


/* ---- upstream headers and auth mode ---------------------------------------------------- */

static void test_headers(void)
{
    const char *conf = "{\"models\": {\"draft\": {\"api_key_env\": \"TC_MK\", \"headers\": "
                       "{\"X-Title\": \"briefd\", \"x-portkey-api-key\": {\"env\": \"TC_PK\"}, "
                       "\"x-unset\": {\"env\": \"TC_UNSET\"}}}, \"refine\": {\"auth_header\": "
                       "\"api-key\", \"api_key_env\": \"TC_MK\", \"base_url\": "
                       "\"https://r.openai.azure.com/openai/deployments/gpt-4o/?api-version=2024-10-21\"}}}";
    struct cfg_err err;
    struct bd_config *c;
    char *text, *url;

    setenv("TC_MK", "sk-model-key", 1);
    setenv("TC_PK", "  pk-secret-value ", 1);
    unsetenv("TC_UNSET");
    c = load_str(conf, &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(c->draft.n_headers == 3 && c->draft.auth_header == MODEL_AUTH_BEARER);
    CHECK(c->refine.auth_header == MODEL_AUTH_API_KEY && c->refine.n_headers == 0);
    CHECK(c->draft.n_header_lines == 2);
    CHECK_STR(c->draft.header_lines[0], "X-Title: briefd");
    CHECK_STR(c->draft.header_lines[1], "x-portkey-api-key: pk-secret-value");
    CHECK(c->draft.headers[2].value == NULL);
    /* the query of an Azure deployment URL goes after the path briefd appends */
    CHECK_STR(c->refine.base_url,
              "https://r.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-10-21");
    url = config_model_url(&c->refine, "/chat/completions");
    CHECK_STR(url, "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
                   "?api-version=2024-10-21");
    free(url);
    url = config_model_url(&c->draft, "/models");
    CHECK_STR(url, "http://127.0.0.1:5273/v1/models");
    free(url);
    text = describe_text(c);
    CHECK(text && strstr(text, "\"headers\":{\"X-Title\":\"briefd\",\"x-portkey-api-key\":"
                               "{\"env\":\"TC_PK\"},\"x-unset\":{\"env\":\"TC_UNSET\"}}"));
    CHECK(text && strstr(text, "\"auth_header\":\"api-key\""));
    CHECK(text && !strstr(text, "pk-secret") && !strstr(text, "sk-model"));
    free(text);
    config_unref(c);
    unsetenv("TC_MK");
    unsetenv("TC_PK");
}

static void test_headers_errors(void)
{
    expect_err("{\"models\": {\"draft\": {\"headers\": []}}}", "models.draft.headers",
               "expected object");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"Bad Name\": \"x\"}}}}",
               "models.draft.headers.Bad Name",
               "a header name must be 1 to 64 characters of a token (letters, digits and "
               "!#$%&'*+-.^_`|~)");
    expect_err("{\"models\": {\"refine\": {\"headers\": {\"Content-Type\": \"x\"}}}}",
               "models.refine.headers.Content-Type", "briefd sets this header itself");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-A\": \"1\", \"x-a\": \"2\"}}}}",
               "models.draft.headers.x-a", "duplicate header (names are case-insensitive)");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-A\": \"a\\r\\nX-B: b\"}}}}",
               "models.draft.headers.X-A", "a header value must be at most 4096 bytes of "
               "printable ASCII (spaces and tabs allowed)");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-A\": 5}}}}", "models.draft.headers.X-A",
               "expected a string or {\"env\": \"VARIABLE\"}");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-A\": {\"env\": \"1BAD\"}}}}}",
               "models.draft.headers.X-A.env",
               "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-A\": {\"env\": \"A\", \"x\": 1}}}}}",
               "models.draft.headers.X-A.x", "unknown key");
    expect_err("{\"models\": {\"draft\": {\"auth_header\": \"basic\"}}}",
               "models.draft.auth_header", "expected one of bearer, api-key");
    expect_err("{\"models\": {\"draft\": {\"api_key_env\": \"K\", \"headers\": "
               "{\"authorization\": \"Bearer x\"}}}}", "models.draft.headers.authorization",
               "conflicts with api_key_env, whose key is sent as Authorization (auth_header)");
    expect_err("{\"models\": {\"draft\": {\"base_url\": \"http://h/v1#x\"}}}",
               "models.draft.base_url", "a fragment (#...) is not allowed");
    /* an Authorization header without api_key_env is the caller's choice */
    {
        struct cfg_err err;
        struct bd_config *c = load_str("{\"models\": {\"draft\": {\"headers\": "
                                       "{\"Authorization\": \"Bearer abc\"}}}}", &err);
        CHECK(c != NULL);
        config_unref(c);
    }
    setenv("TC_PK", "line\nbreak", 1);
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-A\": {\"env\": \"TC_PK\"}}}}}",
               "models.draft.headers.X-A.env",
               "$TC_PK must hold at most 4096 bytes of printable ASCII");
    unsetenv("TC_PK");
}

/* ---- log, webhooks, fingerprints, warnings ---------------------------------------------- */

static void test_log_and_webhooks(void)
{
    struct cfg_err err;
    struct bd_config *c;
    char *text;

    setenv("TC_WH", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    c = load_str("{\"log\": {\"format\": \"json\", \"level\": \"warn\"}, \"webhooks\": "
                 "{\"secret_env\": \"TC_WH\", \"allow\": [\"127.0.0.1\", \"hooks.internal\", "
                 "\"10.0.0.0/8\", \"fd00::/8\"]}}", &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->log_format == 1 && c->log_level == 2);
        CHECK(c->webhook_secret_len == 24);
        CHECK(c->webhook_allow.n_entries == 4 && c->webhook_allow.n_names == 1 &&
              c->webhook_allow.n_cidrs == 3);
        text = describe_text(c);
        CHECK(text && strstr(text, "\"log\":{\"format\":\"json\",\"level\":\"warn\"}"));
        CHECK(text && strstr(text, "\"allow\":[\"127.0.0.1\",\"hooks.internal\",\"10.0.0.0/8\","
                                   "\"fd00::/8\"]"));
        CHECK(text && !strstr(text, "MfKQ9r8"));
        free(text);
    }
    config_unref(c);
    setenv("TC_WH", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1); /* the prefix is optional */
    c = load_str("{\"webhooks\": {\"secret_env\": \"TC_WH\"}}", &err);
    CHECK(c && c->webhook_secret_len == 24);
    config_unref(c);
    setenv("TC_WH", "whsec_not base64!", 1);
    expect_err("{\"webhooks\": {\"secret_env\": \"TC_WH\"}}", "webhooks.secret_env",
               "$TC_WH must hold a base64 secret of 16 to 128 bytes, optionally prefixed whsec_");
    setenv("TC_WH", "c2hvcnQ=", 1);
    expect_err("{\"webhooks\": {\"secret_env\": \"TC_WH\"}}", "webhooks.secret_env",
               "$TC_WH must hold a base64 secret of 16 to 128 bytes, optionally prefixed whsec_");
    unsetenv("TC_WH");
    expect_err("{\"webhooks\": {\"allow\": [\"10.0.0.1/8\"]}}", "webhooks.allow[0]",
               "expected a host name, an IP address or a CIDR block (10.0.0.0/8, fd00::/8) "
               "without host bits below the prefix");
    expect_err("{\"webhooks\": {\"allow\": [\"ok.example\", 3]}}", "webhooks.allow[1]",
               "expected string");
    expect_err("{\"log\": {\"format\": \"xml\"}}", "log.format", "expected one of text, json");
    expect_err("{\"log\": {\"level\": \"trace\"}}", "log.level",
               "expected one of debug, info, warn, error");
}

/* The default price.source describes the default prices only. */
static void test_price_source(void)
{
    struct cfg_err err;
    struct bd_config *c = load_str("{\"models\": {\"draft\": {\"price\": {\"per_hour\": 0.4}}, "
                                   "\"refine\": {\"price\": {\"input_per_mtok\": 1, "
                                   "\"source\": \"our contract\"}}}}", &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->draft.price_source == NULL);
        CHECK_STR(c->refine.price_source, "our contract");
    }
    config_unref(c);
}

static void test_fingerprint(void)
{
    struct cfg_err err;
    struct bd_config *a = load_str("{}", &err), *b = load_str("{}", &err);
    struct bd_config *other = load_str("{\"redis\": {\"prefix\": \"other:\"}}", &err), *salted;
    char fa[CONFIG_FINGERPRINT_LEN], fb[CONFIG_FINGERPRINT_LEN], fo[CONFIG_FINGERPRINT_LEN];
    char fs[CONFIG_FINGERPRINT_LEN];

    setenv("TC_SALT", "a secret salt", 1);
    salted = load_str("{\"auth\": {\"fingerprint_salt_env\": \"TC_SALT\"}}", &err);
    CHECK(a && b && other && salted);
    if (a && b && other && salted) {
        config_key_fingerprint(a, "k-secret-key-1", fa, sizeof fa);
        config_key_fingerprint(b, "k-secret-key-1", fb, sizeof fb);
        config_key_fingerprint(other, "k-secret-key-1", fo, sizeof fo);
        config_key_fingerprint(salted, "k-secret-key-1", fs, sizeof fs);
        CHECK(strncmp(fa, "key_", 4) == 0 && is_hex16(fa + 4));
        CHECK_STR(fa, fb);                  /* same deployment, same fingerprint */
        CHECK(strcmp(fa, fo) != 0);         /* another deployment */
        CHECK(strcmp(fa, fs) != 0);         /* a salt of its own */
        config_key_fingerprint(a, "k-secret-key-2", fb, sizeof fb);
        CHECK(strcmp(fa, fb) != 0);
    }
    unsetenv("TC_SALT");
    config_unref(a);
    config_unref(b);
    config_unref(other);
    config_unref(salted);
}

struct warned {
    char paths[8][160];
    int n;
};

static void on_warn(const char *path, const char *msg, void *data)
{
    struct warned *w = data;
    CHECK(strstr(msg, "is not set") != NULL);
    if (w->n < 8)
        snprintf(w->paths[w->n], sizeof w->paths[0], "%s", path);
    w->n++;
}

static void test_env_warnings(void)
{
    struct cfg_err err;
    struct warned w = {0};
    struct bd_config *c;

    setenv("TC_SET", "set-value-123", 1);
    unsetenv("TC_NONE");
    c = load_str("{\"auth\": {\"keys_env\": \"TC_SET\", \"admin_keys_env\": \"TC_NONE\"}, "
                 "\"models\": {\"refine\": {\"api_key_env\": \"TC_NONE\", \"headers\": "
                 "{\"x-a\": {\"env\": \"TC_NONE\"}, \"x-b\": {\"env\": \"TC_SET\"}}}}, "
                 "\"webhooks\": {\"secret_env\": \"TC_NONE\"}}", &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(config_env_warnings(c, on_warn, &w) == 4);
        CHECK_STR(w.paths[0], "auth.admin_keys_env");
        CHECK_STR(w.paths[1], "models.refine.api_key_env");
        CHECK_STR(w.paths[2], "models.refine.headers.x-a.env");
        CHECK_STR(w.paths[3], "webhooks.secret_env");
    }
    config_unref(c);
    unsetenv("TC_SET");
}


/* ---- models.*.fallbacks ------------------------------------------------------------------ */

static void test_fallbacks(void)
{
    const char *conf =
        "{\"models\": {\"draft\": {\"timeout_ms\": 7000, \"max_tokens\": 111, \"max_concurrency\": 3, "
        "\"api_key_env\": \"TC_MK\", \"headers\": {\"x-primary\": \"p\"}, "
        "\"price\": {\"input_per_mtok\": 1, \"output_per_mtok\": 2, \"source\": \"ours\"}, "
        "\"fallbacks\": [{\"base_url\": \"http://fb1:8000/v1/\"}, "
        "{\"base_url\": \"https://fb2/v1?x=1\", \"name\": \"phi-hosted\", \"timeout_ms\": 900, "
        "\"api_key_env\": \"TC_FK\", \"auth_header\": \"api-key\", \"headers\": "
        "{\"x-fb\": {\"env\": \"TC_FH\"}}, \"max_concurrency\": 0, \"price\": {\"input_per_mtok\": 5}}]}}}";
    struct cfg_err err;
    struct bd_config *c;
    const struct model_cfg *f0, *f1, *models[CONFIG_MAX_MODELS];
    const char *roles[CONFIG_MAX_MODELS];
    char *text;

    setenv("TC_MK", "sk-primary-key", 1);
    setenv("TC_FK", "sk-fallback-key", 1);
    setenv("TC_FH", "fb-header-secret", 1);
    c = load_str(conf, &err);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "  %s: %s\n", err.path, err.msg);
        return;
    }
    CHECK(c->draft.n_fallbacks == 2 && c->refine.n_fallbacks == 0);
    f0 = &c->draft.fallbacks[0];
    f1 = &c->draft.fallbacks[1];
    /* inherited: name, timeout, price (whole), the call's shape; never the key or headers */
    CHECK_STR(f0->base_url, "http://fb1:8000/v1");
    CHECK_STR(f0->name, "phi-4-mini");
    CHECK(f0->timeout_ms == 7000 && f0->max_tokens == 111 && f0->logprobs == 1);
    CHECK(f0->price_in_per_mtok == 1 && f0->price_out_per_mtok == 2);
    CHECK_STR(f0->price_source, "ours");
    CHECK(f0->api_key == NULL && f0->api_key_env == NULL && f0->n_header_lines == 0);
    CHECK(f0->auth_header == MODEL_AUTH_BEARER);
    CHECK_STR(f0->prompt_user, c->draft.prompt_user);
    CHECK(f0->max_attempts == c->draft.max_attempts && f0->breaker_failures == 5);
    CHECK(f0->max_concurrency == 3 && f1->max_concurrency == 0); /* inherited / given */
    /* given: its own */
    CHECK_STR(f1->name, "phi-hosted");
    CHECK(f1->timeout_ms == 900);
    CHECK(f1->price_in_per_mtok == 5 && f1->price_out_per_mtok == 0 && f1->price_per_hour == 0);
    CHECK(f1->price_source == NULL);
    CHECK_STR(f1->api_key, "sk-fallback-key");
    CHECK(f1->auth_header == MODEL_AUTH_API_KEY);
    CHECK(f1->n_header_lines == 1 && strcmp(f1->header_lines[0], "x-fb: fb-header-secret") == 0);
    CHECK(f1->n_fallbacks == 0);
    /* the models the configuration calls (briefd probe) */
    CHECK(config_models(c, models, roles, CONFIG_MAX_MODELS) == 4);
    CHECK(models[1] == f0 && models[2] == f1 && models[3] == &c->refine);
    CHECK_STR(roles[2], "draft.fallbacks[1]");
    /* described with every key (inherited ones too), secrets as their variable */
    text = describe_text(c);
    CHECK(text && strstr(text, "\"fallbacks\":[{\"base_url\":\"http://fb1:8000/v1\","
                               "\"name\":\"phi-4-mini\",\"api_key_env\":null,"
                               "\"auth_header\":\"bearer\",\"headers\":{},\"timeout_ms\":7000,"
                               "\"max_concurrency\":3,\"price\":{\"input_per_mtok\":1,\"output_per_mtok\":2,"
                               "\"per_hour\":0,\"source\":\"ours\"}},"));
    CHECK(text && strstr(text, "\"headers\":{\"x-fb\":{\"env\":\"TC_FH\"}}"));
    CHECK(text && !strstr(text, "fb-header-secret") && !strstr(text, "sk-fallback"));
    /* and that description loads back to the same configuration */
    if (text) {
        cJSON *d = cJSON_Parse(text);
        char *again;
        struct bd_config *b;
        cJSON_DeleteItemFromObjectCaseSensitive(d, "version");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(d, "auth"), "api_keys");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(d, "auth"), "admin_keys");
        cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)jget(d, "models", "draft", NULL), "api_key");
        cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)jget(d, "models", "refine", NULL), "api_key");
        cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)jget(d, "models", "judge", NULL), "api_key");
        again = cJSON_PrintUnformatted(d);
        b = again ? load_str(again, &err) : NULL;
        CHECK(b != NULL && strcmp(b->version, c->version) == 0);
        config_unref(b);
        free(again);
        cJSON_Delete(d);
    }
    free(text);
    config_unref(c);
    unsetenv("TC_MK");
    unsetenv("TC_FK");
    unsetenv("TC_FH");
}

static void test_fallbacks_errors(void)
{
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": {}}}}", "models.draft.fallbacks",
               "expected array");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": \"http://a\"}, "
               "{\"base_url\": \"http://b\"}, {\"base_url\": \"http://c\"}, "
               "{\"base_url\": \"http://d\"}, {\"base_url\": \"http://e\"}]}}}",
               "models.draft.fallbacks", "at most 4 fallbacks");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [\"http://a\"]}}}",
               "models.draft.fallbacks[0]", "expected object");
    expect_err("{\"models\": {\"refine\": {\"fallbacks\": [{\"name\": \"x\"}]}}}",
               "models.refine.fallbacks[0]", "base_url is required");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": \"http://a\", "
               "\"max_tokens\": 5}]}}}", "models.draft.fallbacks[0].max_tokens", "unknown key");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": \"ftp://a\"}]}}}",
               "models.draft.fallbacks[0].base_url", "expected an http:// or https:// URL");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": \"http://a\", "
               "\"timeout_ms\": 50}]}}}", "models.draft.fallbacks[0].timeout_ms",
               "must be between 100 and 600000");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": \"http://a\", "
               "\"price\": {\"per_hour\": -1}}]}}}",
               "models.draft.fallbacks[0].price.per_hour", "must be >= 0");
    /* the primary's endpoint again, or a fallback twice */
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": "
               "\"http://127.0.0.1:5273/v1/\"}]}}}", "models.draft.fallbacks[0]",
               "the same endpoint (base_url and name) as models.draft or one of its fallbacks "
               "before it");
    expect_err("{\"models\": {\"refine\": {\"fallbacks\": [{\"base_url\": \"http://a\"}, "
               "{\"base_url\": \"http://a/\"}]}}}", "models.refine.fallbacks[1]",
               "the same endpoint (base_url and name) as models.refine or one of its "
               "fallbacks before it");
    expect_err("{\"models\": {\"judge\": {\"fallbacks\": [{\"base_url\": \"http://j\"}]}}}",
               "models.judge.fallbacks",
               "the judge has no fallbacks (briefd eval calls one endpoint)");
    expect_err("{\"models\": {\"draft\": {\"fallbacks\": [{\"base_url\": \"http://a\", "
               "\"api_key_env\": \"K\", \"headers\": {\"Authorization\": \"x\"}}]}}}",
               "models.draft.fallbacks[0].headers.Authorization",
               "conflicts with api_key_env, whose key is sent as Authorization (auth_header)");
    /* briefd's own tracing headers are not configurable */
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"traceparent\": \"x\"}}}}",
               "models.draft.headers.traceparent", "briefd sets this header itself");
    expect_err("{\"models\": {\"draft\": {\"headers\": {\"X-Request-Id\": \"x\"}}}}",
               "models.draft.headers.X-Request-Id", "briefd sets this header itself");
}

static void test_fallbacks_warnings_and_check(void)
{
    char path[] = "/tmp/briefd-test-fb-XXXXXX";
    const char *bad = "{\"models\": {\"draft\": {\"fallbacks\": [{\"name\": \"x\"}, "
                      "{\"base_url\": \"http://b\", \"bogus\": 1}]}}}";
    struct collected got = {0};
    struct warned w = {0};
    struct cfg_err err;
    struct bd_config *c;
    int fd;

    unsetenv("TC_NONE");
    c = load_str("{\"auth\": {\"keys_env\": null, \"admin_keys_env\": null}, "
                 "\"models\": {\"refine\": {\"fallbacks\": [{\"base_url\": \"http://b\", "
                 "\"api_key_env\": \"TC_NONE\", \"headers\": {\"x-a\": {\"env\": "
                 "\"TC_NONE\"}}}]}}}", &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(config_env_warnings(c, on_warn, &w) == 2);
        CHECK_STR(w.paths[0], "models.refine.fallbacks[0].api_key_env");
        CHECK_STR(w.paths[1], "models.refine.fallbacks[0].headers.x-a.env");
    }
    config_unref(c);
    fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
    close(fd);
    CHECK(config_check_file(path, collect, &got) == 2);
    CHECK_STR(got.paths[0], "models.draft.fallbacks[0]");
    CHECK_STR(got.paths[1], "models.draft.fallbacks[1].bogus");
    unlink(path);
}

/* A reload may not change listen or the redis section; each change is named. */
static void test_restart_diff(void)
{
    static const struct {
        const char *next, *path;
    } cases[] = {
        {"{\"redis\": {\"prefix\": \"other:\"}}", "redis.prefix"},
        {"{\"redis\": {\"url\": \"redis://127.0.0.1:6380/0\"}}", "redis.url"},
        {"{\"redis\": {\"url\": \"redis://:pw@127.0.0.1:6379/0\"}}", "redis.url"},
        {"{\"redis\": {\"command_timeout_ms\": 500}}", "redis.command_timeout_ms"},
        {"{\"listen\": \"127.0.0.1:9090\"}", "listen"},
    };
    struct cfg_err err;
    struct bd_config *cur = load_str("{}", &err), *next;

    CHECK(cur != NULL);
    next = load_str("{\"workers\": {\"concurrency\": 3}, \"redis\": {\"prefix\": \"briefd:\"}}",
                    &err);
    CHECK(next && config_restart_diff(cur, next, &err) == 0);
    config_unref(next);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        next = load_str(cases[i].next, &err);
        CHECK(next != NULL);
        if (!next)
            continue;
        CHECK(config_restart_diff(cur, next, &err) == -1);
        CHECK_STR(err.path, cases[i].path);
        CHECK(strstr(err.msg, "cannot change on reload") != NULL);
        CHECK(strstr(err.msg, "pw") == NULL);
        config_unref(next);
    }
    config_unref(cur);
}

/* limits.idempotency_ttl_s: derived as min(86400, result_ttl_s); refused above it. */
static void test_idempotency_ttl(void)
{
    struct cfg_err err;
    struct bd_config *c = load_str("{}", &err);

    CHECK(c && c->idempotency_ttl_s == 86400);
    config_unref(c);
    c = load_str("{\"workers\": {\"result_ttl_s\": 600}}", &err);
    CHECK(c && c->idempotency_ttl_s == 600);
    config_unref(c);
    c = load_str("{\"workers\": {\"result_ttl_s\": 600}, \"limits\": "
                 "{\"idempotency_ttl_s\": 600}}", &err);
    CHECK(c && c->idempotency_ttl_s == 600);
    config_unref(c);
    expect_err("{\"workers\": {\"result_ttl_s\": 600}, \"limits\": {\"idempotency_ttl_s\": 601}}",
               "limits.idempotency_ttl_s",
               "must not exceed workers.result_ttl_s (600): a replay after the job's record "
               "expired would find no job");
}

/* The webhooks delivery bounds: defaults and ranges. */
static void test_webhook_bounds(void)
{
    struct cfg_err err;
    struct bd_config *c = load_str("{}", &err);

    CHECK(c && c->webhook_max_in_flight == 64 && c->webhook_timeout_ms == 10000 &&
          c->webhook_max_attempts == 10 && c->webhook_max_age_s == 86400 &&
          c->webhook_backoff_base_ms == 5000);
    config_unref(c);
    expect_err("{\"webhooks\": {\"max_in_flight\": 0}}", "webhooks.max_in_flight",
               "must be between 1 and 4096");
    expect_err("{\"webhooks\": {\"max_attempts\": 51}}", "webhooks.max_attempts",
               "must be between 1 and 50");
}

/* ---- tenants and cache ------------------------------------------------------------------ */

static void test_tenants_and_cache(void)
{
    struct cfg_err err;
    struct bd_config *d = load_str("{}", &err);
    struct bd_config *c = load_str(
        "{\"tenants\": {\"default\": {\"jobs_per_minute\": 60},"
        "              \"by_id\": {\"acme\": {\"daily_budget_usd\": 2.5}}},"
        " \"cache\": {\"ttl_s\": 600}}", &err);
    const struct tenant_limits *l;
    cJSON *desc;

    CHECK(d && c);
    if (!d || !c)
        goto out;
    /* defaults: no tenant limits, cache off */
    CHECK(d->tenants == NULL);
    CHECK(d->cache_ttl_s == 0);
    CHECK(tenant_limits_of(d->tenants, "acme", NULL) == NULL);
    desc = config_describe(d);
    CHECK(cJSON_IsNull(jget(desc, "tenants", "default", "jobs_per_minute")));
    CHECK(cJSON_IsObject(jget(desc, "tenants", "by_id", NULL)));
    CHECK(cJSON_GetNumberValue(jget(desc, "cache", "ttl_s", NULL)) == 0);
    cJSON_Delete(desc);
    /* set */
    CHECK(c->cache_ttl_s == 600);
    l = tenant_limits_of(c->tenants, "acme", NULL);
    CHECK(l && l->jobs_per_minute == 60 && l->daily_budget_usd == 2.5);
    desc = config_describe(c);
    CHECK(cJSON_GetNumberValue(jget(desc, "tenants", "by_id", "acme")->child) == 60);
    CHECK(cJSON_GetNumberValue(jget(desc, "cache", "ttl_s", NULL)) == 600);
    cJSON_Delete(desc);
    /* the version covers them; the cache's scope (answer_version) does not */
    CHECK(strcmp(c->version, d->version) != 0);
    CHECK_STR(c->answer_version, d->answer_version);
out:
    config_unref(c);
    config_unref(d);
    expect_err("{\"tenants\": []}", "tenants", "expected object");
    expect_err("{\"tenants\": {\"by_id\": {\"acme\": {\"jobs_per_minute\": 0}}}}",
               "tenants.by_id.acme.jobs_per_minute", "must be >= 1");
    expect_err("{\"tenants\": {\"default\": {\"max_refine_rate\": 2}}}",
               "tenants.default.max_refine_rate", "must be in (0, 1]");
    expect_err("{\"tenants\": {\"tiers\": {}}}", "tenants.tiers", "unknown key");
    expect_err("{\"cache\": {\"ttl_s\": -1}}", "cache.ttl_s", "must be between 0 and 2592000");
    expect_err("{\"cache\": {\"ttl_s\": 2592001}}", "cache.ttl_s",
               "must be between 0 and 2592000");
    expect_err("{\"cache\": {\"ttl_s\": 1.5}}", "cache.ttl_s", "expected integer");
    expect_err("{\"cache\": {\"size\": 1}}", "cache.size", "unknown key");
}

/* The cache's scope changes with what shapes a brief, and only with that. */
static void test_answer_version(void)
{
    static const char *const same[] = {
        "{}",
        "{\"workers\": {\"concurrency\": 7}}",
        "{\"limits\": {\"max_wait_s\": 5}}",
        "{\"cache\": {\"ttl_s\": 60}}",
        "{\"tenants\": {\"default\": {\"jobs_per_minute\": 5}}}",
        "{\"models\": {\"judge\": {\"name\": \"judge-model\"}}}",
    };
    static const char *const other[] = {
        "{\"models\": {\"draft\": {\"name\": \"other\"}}}",
        "{\"models\": {\"refine\": {\"prompt\": {\"user\": \"{draft}\"}}}}",
        "{\"models\": {\"draft\": {\"max_tokens\": 200}}}",
        "{\"routing\": {\"mode\": \"all\"}}",
        "{\"routing\": {\"policies\": [{\"type\": \"length\", \"min_chars\": 10}]}}",
    };
    struct cfg_err err;
    struct bd_config *base = load_str(same[0], &err);

    CHECK(base != NULL && is_hex16(base->answer_version));
    for (size_t i = 1; base && i < sizeof(same) / sizeof(same[0]); i++) {
        struct bd_config *c = load_str(same[i], &err);
        CHECK(c != NULL);
        if (c)
            CHECK_STR(c->answer_version, base->answer_version);
        config_unref(c);
    }
    for (size_t i = 0; base && i < sizeof(other) / sizeof(other[0]); i++) {
        struct bd_config *c = load_str(other[i], &err);
        CHECK(c != NULL);
        if (c)
            CHECK(strcmp(c->answer_version, base->answer_version) != 0);
        config_unref(c);
    }
    config_unref(base);
}

int main(void)
{
    unsetenv("BRIEFD_API_KEYS");
    unsetenv("BRIEFD_ADMIN_KEYS");
    test_defaults();
    test_full_file();
    test_errors_keys_types();
    test_errors_ranges();
    test_bounds_one_step_outside();
    test_bounds_cover_describe();
    test_errors_listen_redis();
    test_errors_text();
    test_errors_files();
    test_errors_file_size();
    test_errors_file_content();
    test_listen_redis_ok();
    test_env_keys();
    test_env_keys_bad();
    test_env_keys_off();
    test_compare();
    test_key_tenants();
    test_check_all();
    test_describe();
    test_describe_round_trip();
    test_version();
    test_judge_defaults();
    test_judge_derived();
    test_judge_headers_follow_endpoint();
    test_judge_evaluation_errors();
    test_judge_evaluation_describe();
    test_refcount();
    test_redis_ha();
    test_headers();
    test_headers_errors();
    test_log_and_webhooks();
    test_price_source();
    test_fingerprint();
    test_env_warnings();
    test_fallbacks();
    test_fallbacks_errors();
    test_fallbacks_warnings_and_check();
    test_restart_diff();
    test_idempotency_ttl();
    test_webhook_bounds();
    test_tenants_and_cache();
    test_answer_version();
    return tcheck_summary("test_config");
}
