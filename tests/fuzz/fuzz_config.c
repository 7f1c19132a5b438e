/* fuzz_config.c - libFuzzer harness: config_load_string, config_describe and the describe round trip. */
/*
 * The input is the whole config text (not NUL-terminated, as read from a file); the empty
 * input loads the embedded defaults (config_load_string(NULL)).
 * Oracles: a refusal fills err with NUL-terminated path and message; a loaded config
 * describes itself, and the describe output less what only describe shows ("version",
 * auth.api_keys/admin_keys counts, models.*.api_key redactions; as tests/test_config.c
 * does) loads back to a config with the same version and the same describe text.
 * A few environment variables are set once so that keys_env / api_key_env names in the
 * corpus and dictionary reach the secret-loading code (valid and invalid key lists).
 */
#include "config.h"

#include <cjson/cJSON.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_config: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("FUZZ_API_KEYS", "api-key-0001, api-key-0002,api-key-0003", 1);
    setenv("FUZZ_ADMIN_KEYS", "admin-key-0001", 1);
    setenv("FUZZ_SHORT_KEYS", "short", 1);
    setenv("FUZZ_EMPTY", "", 1);
    setenv("FUZZ_SK", "sk-fuzz-secret-1234\n", 1);
    setenv("FUZZ_PK", "pk-fuzz-header-value", 1);
    setenv("FUZZ_WH", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    setenv("FUZZ_SALT", "a fuzz salt", 1);
    unsetenv("BRIEFD_API_KEYS");
    unsetenv("BRIEFD_ADMIN_KEYS");
    return 0;
}

static void delete_in(cJSON *obj, const char *a, const char *b, const char *key)
{
    cJSON *o = obj;

    if (a)
        o = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b)
        o = cJSON_GetObjectItemCaseSensitive(o, b);
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
}

static char *describe_text(const struct bd_config *c)
{
    cJSON *d = config_describe(c);
    char *s = d ? cJSON_PrintUnformatted(d) : NULL;

    cJSON_Delete(d);
    return s;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int same_model(const struct model_cfg *a, const struct model_cfg *b)
{
    return same_str(a->name, b->name) && same_str(a->base_url, b->base_url) &&
           same_str(a->api_key_env, b->api_key_env) &&
           same_str(a->prompt_system, b->prompt_system) && same_str(a->prompt_user, b->prompt_user);
}

/* What describe shows only through a formatter: the values themselves must survive. */
static void check_fields(const struct bd_config *a, const struct bd_config *b)
{
    if (!same_str(a->listen_host, b->listen_host) || a->listen_port != b->listen_port)
        FAIL("round trip changed listen: %s:%d -> %s:%d", a->listen_host, a->listen_port,
             b->listen_host, b->listen_port);
    if (!same_str(a->redis_host, b->redis_host) || a->redis_port != b->redis_port ||
        a->redis_db != b->redis_db || !a->redis_password != !b->redis_password)
        FAIL("round trip changed redis: %s:%d/%d -> %s:%d/%d", a->redis_host, a->redis_port,
             a->redis_db, b->redis_host, b->redis_port, b->redis_db);
    if (!same_str(a->redis_prefix, b->redis_prefix) ||
        !same_str(a->facade_model, b->facade_model) ||
        !same_str(a->auth_keys_env, b->auth_keys_env) ||
        !same_str(a->admin_keys_env, b->admin_keys_env) || a->n_api_keys != b->n_api_keys ||
        a->n_admin_keys != b->n_admin_keys)
        FAIL("round trip changed redis.prefix, facade.model or auth");
    if (!same_model(&a->draft, &b->draft) || !same_model(&a->refine, &b->refine) ||
        !same_model(&a->judge, &b->judge))
        FAIL("round trip changed a model's strings");
}

/* describe -> strip describe-only keys -> load: the same config again. */
static void round_trip(const struct bd_config *a)
{
    struct cfg_err err;
    struct bd_config *b;
    cJSON *d = config_describe(a);
    char *text, *da, *db;

    if (!d)
        FAIL("config_describe failed");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "version")) ||
        strcmp(cJSON_GetObjectItemCaseSensitive(d, "version")->valuestring, a->version) != 0)
        FAIL("describe: version missing or different");
    delete_in(d, NULL, NULL, "version");
    delete_in(d, "auth", NULL, "api_keys");
    delete_in(d, "auth", NULL, "admin_keys");
    delete_in(d, "models", "draft", "api_key");
    delete_in(d, "models", "refine", "api_key");
    delete_in(d, "models", "judge", "api_key");
    text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (!text)
        FAIL("print failed");
    b = config_load_string(text, strlen(text), &err);
    if (!b)
        FAIL("describe output refused: %s: %s\n  describe: %s", err.path, err.msg, text);
    check_fields(a, b);
    da = describe_text(a);
    db = describe_text(b);
    if (strcmp(a->version, b->version) != 0 || !da || !db || strcmp(da, db) != 0)
        FAIL("describe round trip changed the config\n  before: %s\n  after:  %s",
             da ? da : "(null)", db ? db : "(null)");
    free(da);
    free(db);
    free(text);
    config_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg_err err;
    struct bd_config *c;

    memset(&err, 0x5a, sizeof err);
    /* the empty input stands for "no file": the embedded defaults */
    c = config_load_string(size ? (const char *)data : NULL, size, &err);
    if (!c) {
        if (!memchr(err.path, 0, sizeof err.path) || !memchr(err.msg, 0, sizeof err.msg) ||
            !err.msg[0])
            FAIL("refused without a message");
        return 0;
    }
    if (c->refcount != 1 || strlen(c->version) != 16 || !c->router)
        FAIL("loaded config is incomplete");
    round_trip(c);
    (void)config_auth_enabled(c);
    (void)config_is_api_key(c, "api-key-0002");
    (void)config_is_admin_key(c, "admin-key-0001");
    if (config_ref(c) != c || c->refcount != 2)
        FAIL("config_ref");
    config_unref(c);
    config_unref(c);
    return 0;
}
