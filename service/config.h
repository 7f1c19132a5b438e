/* config.h - briefd's configuration: load, validate, describe, share.
 *
 * One JSON file (docs/CONFIG.md); every key optional with a working default; the embedded defaults
 * alone make a working service (local Redis, Foundry Local's default port for both models).
 * Validation is declarative (one table of keys: name, type, bounds, default, where it lands)
 * and strict: unknown keys, wrong types and out-of-range values are refused with the JSON
 * path of the mistake ("routing.policies[2].min_mean_logprob: expected number").
 * Secrets (API keys) come from the environment variables the file names; they are read at
 * load time and never appear in config_describe() output or in error messages.
 *
 * Ownership and sharing: a struct bd_config is immutable once loaded and reference counted.
 * The service holds one reference to "the current config"; each job takes its own reference
 * (config_ref) when it starts routing and drops it (config_unref) when it ends, so a reload swaps
 * the current pointer while jobs in flight finish under the config they started with.
 * Single-threaded (the libuv loop): no atomics needed. */
#ifndef BRIEFD_CONFIG_H
#define BRIEFD_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include "cfg.h"
#include "target.h"

struct cJSON;
struct router;
struct tenant_table;

#define CONFIG_MAX_FILE_BYTES (1u << 20) /* a config file larger than this is refused */
#define CONFIG_KEY_MIN 8                 /* API/admin key length bounds (bytes, printable ASCII) */
#define CONFIG_KEY_MAX 256
#define CONFIG_MAX_SENTINELS 16         /* redis.sentinels */
#define CONFIG_MAX_HOST 253              /* host names (listen, redis.url): the DNS maximum */
#define CONFIG_MAX_REDIS_USER 1024       /* redis.url's user name, decoded: percent-encoded
                                          * (3 bytes a byte at most), the URL shown by
                                          * GET /v1/config stays within redis.url's 4096 */
#define CONFIG_MAX_KEYS 1024             /* keys per environment variable */
#define CONFIG_MAX_HEADERS 16            /* models.*.headers entries */
#define CONFIG_HEADER_NAME_MAX 64        /* bytes of a header name */
#define CONFIG_REDIS_SOCKET_MAX 107      /* bytes of a unix:// URL's path (sun_path - 1) */
#define CONFIG_HEADER_VALUE_MAX 4096     /* bytes of a header value (literal or from the env) */
#define CONFIG_FINGERPRINT_LEN 21        /* "key_" + 16 hex digits, plus the NUL */
#define CONFIG_MAX_FALLBACKS 4           /* models.*.fallbacks entries */

/* How a model's key is sent: "Authorization: Bearer KEY" or Azure's "api-key: KEY". */
enum model_auth { MODEL_AUTH_BEARER = 0, MODEL_AUTH_API_KEY = 1 };

/* One models.*.headers entry: a literal value, or {"env": "VAR"} (a secret). */
struct model_header {
    char *name;              /* as written (a token) */
    char *env;               /* the variable, or NULL for a literal value */
    char *value;             /* the literal, or the variable's value (secret), or NULL when the
                                variable is unset or empty (then the header is not sent) */
};

/* A list of strings from the file (each validated by its key). */
struct cfg_strs {
    char **v;
    size_t n;
};

struct model_cfg {
    char *name;              /* model id sent upstream, e.g. "phi-4-mini" */
    char *base_url;          /* e.g. "http://127.0.0.1:5273/v1" (no trailing slash; a query
                                string such as "?api-version=..." may follow the path) */
    char *api_key_env;       /* NULL: no key */
    char *api_key;           /* read from api_key_env at load (secret), or NULL */
    int auth_header;         /* enum model_auth: how api_key is sent (default bearer) */
    struct model_header *headers; /* models.*.headers, in file order */
    size_t n_headers;
    char **header_lines;     /* "Name: value" for every header that has a value, built at
                                load (secrets inside: wiped when the config is freed) */
    size_t n_header_lines;
    int timeout_ms;          /* per call, 100..600000 (default 60000) */
    int max_tokens;          /* 1..32768 (default 300 draft, 600 refine) */
    double temperature;      /* 0..2 (default 0.4 draft, 0.2 refine) */
    int stream;              /* bool */
    int logprobs;            /* bool: ask for logprobs (default 1 draft, 0 refine) */
    int max_attempts;        /* calls per stage incl. retries, 1..10 (default 3) */
    int backoff_ms;          /* base of exponential backoff, 1..60000 (default 200) */
    int breaker_failures;    /* consecutive failed calls that open the circuit (5) */
    int breaker_open_ms;     /* how long it stays open before a probe (30000) */
    double price_in_per_mtok;   /* USD per 1M prompt tokens, >= 0 */
    double price_out_per_mtok;  /* USD per 1M completion tokens, >= 0 */
    double price_per_hour;      /* USD per hour of busy time (local hardware), >= 0 */
    char *price_source;      /* where the prices come from (free text), or NULL */
    char *prompt_system;     /* may be "" (no system message) */
    char *prompt_user;       /* template with {text} {draft} {max_words} {instructions} */
    char *prompt_direct;     /* models.refine: the user message when it writes the brief from
                                the document alone (pre-routing); NULL elsewhere by default */
    int max_concurrency;     /* calls in flight to this model across all processes, 0 = no cap */
    /* models.draft/refine.fallbacks (docs/CONFIG.md#fallbacks): endpoints tried in order when
     * this one is out. Each is a complete model_cfg of its own: what its entry does not give
     * (name, timeout_ms, price, and every key an entry cannot set) is copied from this
     * model after parsing; api_key_env, auth_header and headers are never inherited. A
     * fallback has no fallbacks. */
    struct model_cfg *fallbacks;
    size_t n_fallbacks;
};

struct bd_config {
    int refcount;
    char *path;              /* file loaded, or NULL for the embedded defaults */
    char version[17];        /* 16 hex chars: hash of the effective config (secrets excluded) */

    char *listen_host;       /* "127.0.0.1" */
    int listen_port;         /* 8080 */

    char *redis_url;         /* "redis://127.0.0.1:6379/0" */
    char *redis_host;        /* parsed from redis_url; an absolute path: unix://, port 0 */
    int redis_port;
    int redis_db;
    char *redis_user;        /* ACL user from the URL ("user:password@"), or NULL */
    char *redis_password;    /* from the URL (secret), or NULL */
    int redis_tls;           /* rediss:// (only accepted by builds with BRIEFD_REDIS_TLS) */
    char *redis_prefix;      /* "briefd:" */
    int redis_command_timeout_ms; /* redis.command_timeout_ms: every command bounded (3000) */
    struct cfg_strs redis_sentinels; /* redis.sentinels: "host:port", 0..16 (docs/REDIS.md) */
    char *redis_master_name; /* redis.master_name: Sentinel's name of the primary, or NULL */
    char *redis_sentinel_password_env; /* redis.sentinel_password_env, or NULL */
    char *redis_sentinel_password; /* read from it at load (secret), or NULL */
    int redis_min_replicas_acked; /* redis.min_replicas_acked: WAIT for N replicas (0: off) */
    int redis_replica_ack_timeout_ms; /* redis.replica_ack_timeout_ms (1000) */
    char *redis_tls_ca_file; /* redis.tls_ca_file (TLS builds), or NULL */

    int concurrency;         /* jobs in flight per worker process, 1..4096 (64) */
    int max_attempts;        /* deliveries of one job before it fails, 1..100 (3) */
    int job_timeout_ms;      /* deadline of one job attempt, 1000..3600000 (120000) */
    long result_ttl_s;       /* finished job records expire after, 60..31536000 (604800) */
    int claim_idle_ms;       /* workers.claim_idle_ms: reclaim a pending job idle this long;
                                default job_timeout_ms + 30000; must exceed job_timeout_ms */

    size_t max_text_bytes;   /* 1..16777216 (262144) */
    long max_queue;          /* 1..10000000 (100000) */
    int max_wait_s;          /* limits.max_wait_s: cap on ?wait=, 0..60 (60) */
    long idempotency_ttl_s;  /* limits.idempotency_ttl_s: keys expire after (86400) */
    int shutdown_grace_ms;   /* workers.shutdown_grace_ms: SIGTERM grace (30000) */

    char *auth_keys_env;     /* "BRIEFD_API_KEYS" */
    char *admin_keys_env;    /* "BRIEFD_ADMIN_KEYS" */
    char **api_keys;         /* parsed from the env at load: comma-separated (secret); each
                                entry is a CONFIG_KEY_MAX + 1 byte buffer, zero-padded, so the
                                constant-time compare always reads the same number of bytes */
    size_t n_api_keys;
    char **api_key_tenants;  /* per api key: its tenant ("tenant=key" entries) or NULL */
    char **admin_keys;
    char **admin_key_tenants;
    size_t n_admin_keys;

    char *fingerprint_salt_env; /* auth.fingerprint_salt_env, or NULL */
    unsigned char fingerprint_key[32]; /* HMAC key of api_key_id fingerprints (secret) */

    struct model_cfg draft;
    struct model_cfg refine;
    struct model_cfg judge;  /* models.judge: scores briefs (`briefd eval`, shadow judging);
                                name, base_url and api_key_env default to refine's,
                                temperature to 0 */

    int log_format;          /* log.format: enum log_format (text) */
    int log_level;           /* log.level: enum log_level (info) */

    char *webhook_secret_env;       /* webhooks.secret_env, or NULL */
    unsigned char *webhook_secret;  /* its decoded value (secret), or NULL: unsigned */
    size_t webhook_secret_len;
    struct target_policy webhook_allow; /* webhooks.allow */
    int webhook_max_in_flight;      /* webhooks.max_in_flight: attempts at once, per process (64) */
    int webhook_timeout_ms;         /* webhooks.timeout_ms: one attempt (10000) */
    int webhook_max_attempts;       /* webhooks.max_attempts (10) */
    long webhook_max_age_s;         /* webhooks.max_age_s: no attempt later (86400) */
    int webhook_backoff_base_ms;    /* webhooks.backoff_base_ms: the first retry's delay (5000) */

    char *facade_model;      /* facade.model: alias for /v1/chat/completions ("briefd-hybrid") */
    int facade_record_hold_ms; /* facade.record_hold_ms: how long an answered run's record
                                  may wait to share a batch (2) */
    int facade_max_unrecorded; /* facade.max_unrecorded: past this many records of this
                                  process not yet stored, a facade request gets 503 (4096) */

    struct router *router;   /* built from "routing" */

    long stats_retention_s;  /* stats.retention_s: 60..31536000 (604800) */

    struct tenant_table *tenants; /* "tenants" (tenant.h), or NULL: no tenant limits */
    long cache_ttl_s;             /* cache.ttl_s: exact-cache lifetime, 0 (off)..2592000 */
    char answer_version[17];      /* 16 hex chars: hash of what shapes a brief - models.draft,
                                     models.refine and routing - the exact cache's scope */

    double eval_shadow_rate;      /* evaluation.shadow_rate: 0..1 (0) */
    double eval_daily_budget_usd; /* evaluation.daily_budget_usd: >= 0, or -1 for null (none) */
    int eval_max_in_flight;       /* evaluation.max_in_flight: shadow evaluations at once in one
                                     process, 1..1024 (4) */
};

/* Load path (NULL: embedded defaults only). Returns a config with refcount 1, or NULL with
 * err filled (path "" for file-level errors such as unreadable file or JSON syntax, with the
 * line and column in msg). Environment variables named by the file are read here. */
struct bd_config *config_load(const char *path, struct cfg_err *err);
/* The same from an in-memory JSON text (for tests and fuzzing); NULL text = defaults. */
struct bd_config *config_load_string(const char *json, size_t len, struct cfg_err *err);

/* Validate a config file and report every mistake (up to CONFIG_MAX_REPORTED): after each
 * one, the offending value is set aside and the rest checked again. Returns the number of
 * mistakes (0: valid). report() gets each error (path "" for file-level ones). */
#define CONFIG_MAX_REPORTED 50
int config_check_file(const char *path, void (*report)(const struct cfg_err *err, void *data),
                   void *data);


/* A reload may not change what is bound at start-up (listen, the redis section): 0 when next
 * changes none of it, else -1 with err naming the first key that changed
 * ("redis.prefix"). */
int config_restart_diff(const struct bd_config *cur, const struct bd_config *next,
                        struct cfg_err *err);

struct bd_config *config_ref(struct bd_config *c);
void config_unref(struct bd_config *c); /* frees at zero */

/* The effective configuration as JSON, secrets redacted ("***" for keys, password removed
 * from redis.url), with "version" (caller frees). */
struct cJSON *config_describe(const struct bd_config *c);

/* Constant-time key checks. Returns 1 if key matches one of the configured keys. */
int config_is_api_key(const struct bd_config *c, const char *key);
int config_is_admin_key(const struct bd_config *c, const char *key);
/* The tenant named for this key ("tenant=key" entries in the key variables), or NULL.
 * The returned string belongs to the config. */
const char *config_key_tenant(const struct bd_config *c, const char *key);
/* 1 if any key is configured (auth on). */
int config_auth_enabled(const struct bd_config *c);

/* The api_key_id of a key: "key_" + the first 16 hex digits of HMAC-SHA-256 of the key under
 * the deployment's fingerprint key (docs/API.md#authentication), into out
 * (CONFIG_FINGERPRINT_LEN bytes). Stable across the processes of one deployment; does not
 * reveal the key. */
void config_key_fingerprint(const struct bd_config *c, const char *key, char *out, size_t n);

/* Every *_env the configuration names whose variable is unset or empty (API keys, model
 * keys, header values, the webhook secret, the fingerprint salt): warn(path, message) for
 * each, in file order. Returns how many. */
int config_env_warnings(const struct bd_config *c,
                        void (*warn)(const char *path, const char *msg, void *data), void *data);

/* The models the configuration calls: up to max (model, role) pairs in a fixed order
 * ("draft", its fallbacks "draft.fallbacks[0]"..., "refine", its fallbacks, then "judge" when
 * it is not the refine model). Returns how many. */
#define CONFIG_MAX_MODELS (3 + 2 * CONFIG_MAX_FALLBACKS)
size_t config_models(const struct bd_config *c, const struct model_cfg **models,
                     const char **roles, size_t max);

/* The URL of an endpoint of a model's server: base_url + path ("/chat/completions",
 * "/models"), with a query string of base_url (?api-version=...) kept at the end.
 * malloc'd (caller frees); NULL on OOM. */
char *config_model_url(const struct model_cfg *m, const char *path);

/* A call to model m as its configuration says: the key in the header its auth mode names,
 * its extra headers (borrowed from m: the call must end before the config is released),
 * streaming, timeout, attempts and backoff. The caller sets url, body and the rest. */
struct mc_call;
void config_model_call(struct mc_call *call, const struct model_cfg *m);

/* config_check_file() into an array: the first max mistakes (every one reported the same
 * way as briefd check). Returns the number of mistakes found (0: valid). */
int config_check_collect(const char *path, struct cfg_err *out, int max);
/* n mistakes as one sentence: "path: what" for one, "N mistakes: path: what; path: what"
 * for several (a mistake without a path is just "what"). malloc'd; NULL on OOM. */
char *config_mistakes_text(const struct cfg_err *errs, int n);

#endif
