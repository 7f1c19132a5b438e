/* test_config.c - config: defaults, full file, every error class, secrets, version, refcount. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include "config.h"
#include "router.h"
#include "tcheck.h"

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
    CHECK(c->draft.price_in_per_mtok == 0 && c->refine.price_per_hour == 0);
    CHECK_STR(c->draft.prompt_user, "Summarize the following document as an executive brief "
              "of at most {max_words} words.{instructions}\n\nDocument:\n{text}");
    CHECK_STR(c->refine.prompt_user, "Rewrite the draft brief below into a clear, accurate "
              "executive brief of at most {max_words} words. Keep every fact; fix omissions "
              "using the source document.{instructions}\n\nSource document:\n{text}\n\n"
              "Draft brief:\n{draft}");
    CHECK(c->draft.prompt_system && strlen(c->draft.prompt_system) > 20);
    CHECK(c->refine.prompt_system && strlen(c->refine.prompt_system) > 20);
    CHECK_STR(c->facade_model, "briefd-hybrid");
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
    "  \"facade\": {\"model\": \"briefd-x\"},\n"
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
               "unsupported scheme; expected redis://[[user]:password@]host[:port][/db]");
#ifndef BRIEFD_REDIS_TLS
    expect_err("{\"redis\": {\"url\": \"rediss://h:6379\"}}", "redis.url",
               "this build of hiredis has no TLS; run a TLS sidecar such as stunnel: see "
               "docs/REDIS.md");
#endif
    expect_err("{\"redis\": {\"url\": \"redis://bob:@h:6379\"}}", "redis.url",
               "an ACL user needs a password (user:password@)");
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

int main(void)
{
    unsetenv("BRIEFD_API_KEYS");
    unsetenv("BRIEFD_ADMIN_KEYS");
    test_defaults();
    test_full_file();
    test_errors_keys_types();
    test_errors_ranges();
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
    test_refcount();
    test_redis_ha();
    return tcheck_summary("test_config");
}
