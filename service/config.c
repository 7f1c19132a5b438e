/* config.c - briefd's configuration: one key table drives defaults, validation, describe, free. */
#include "config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "bderr.h"
#include "hash.h"
#include "mclient.h"
#include "rds.h"
#include "router.h"
#include "sbuf.h"
#include "tenant.h"
#include "url.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NOFF ((size_t)-1) /* the key lands nowhere directly: its set()/show() handle it */
#define PATH_MAX_LEN sizeof(((struct cfg_err *)0)->path)

/* ---- the key table ------------------------------------------------------------------- */

enum ktype {
    K_OBJ,     /* nested object: its keys are sub[], relative to base + off */
    K_STR,     /* string, length lo..hi */
    K_STRN,    /* string (length lo..hi) or null */
    K_INT,     /* integer in lo..hi, lands in an int */
    K_LONG,    /* integer in lo..hi, lands in a long */
    K_SIZE,    /* integer in lo..hi, lands in a size_t */
    K_DBL,     /* number in lo..hi (hi = INFINITY: no upper bound), lands in a double */
    K_DBLN,    /* number in lo..hi (lo >= 0) or null, lands in a double; null is -1 */
    K_BOOL,    /* true/false, lands in an int */
    K_ENUM,    /* one of names[] (a string), lands in an int: its index */
    K_CUSTOM,  /* any JSON value, handled by ops (parse, describe, free) */
    K_ROUTING, /* object handed whole to router_parse() */
};

/* A default, per role: role 0 is everything but models.refine (role 1) and models.judge
 * (role 2). */
struct kdef {
    double num;
    const char *str;
};

struct key;
/* A K_CUSTOM key's handlers; base is the section's base (the value lands where they say). */
struct key_ops {
    int (*parse)(char *base, const struct cJSON *v, const char *path, struct cfg_err *err);
    int (*describe)(const char *base, const char *name, struct cJSON *out);
    void (*free)(char *base);
};
/* Validate and store a string value (replacing the plain copy into base + off). */
typedef int (*key_set_fn)(char *base, const struct key *k, const char *s, const char *path,
                          struct cfg_err *err);
/* The value to show in config_describe() (malloc'd), for keys that land in several fields. */
typedef char *(*key_show_fn)(const char *base);

struct key {
    const char *name;       /* JSON key */
    enum ktype type;
    size_t off;             /* offset from the section's base (NOFF: see set/show) */
    double lo, hi;          /* bounds: value for numbers, length for strings */
    struct kdef def[3];     /* default for role 0 / 1 / 2 */
    const struct key *sub;  /* K_OBJ: the section's keys */
    size_t nsub;
    int role;               /* K_OBJ: role of the section (-1: the parent's) */
    key_set_fn set;         /* strings: custom validation / conversion, or NULL */
    key_show_fn show;       /* strings: custom describe, or NULL */
    const char *const *names; /* K_ENUM: the names (NULL-terminated); default def[].num */
    const struct key_ops *ops; /* K_CUSTOM */
};

#define O(f) offsetof(struct bd_config, f)
#define M(f) offsetof(struct model_cfg, f)
/* NUM2 / STR2: the judge (role 2) takes the refine model's default; NUM3 / STR3 its own. */
#define NUM(n, t, o, l, h, d) \
    {n, t, o, l, h, {{d, NULL}, {d, NULL}, {d, NULL}}, NULL, 0, -1, NULL, NULL, NULL, NULL}
#define NUM2(n, t, o, l, h, d0, d1) \
    {n, t, o, l, h, {{d0, NULL}, {d1, NULL}, {d1, NULL}}, NULL, 0, -1, NULL, NULL, NULL, NULL}
#define NUM3(n, t, o, l, h, d0, d1, d2) \
    {n, t, o, l, h, {{d0, NULL}, {d1, NULL}, {d2, NULL}}, NULL, 0, -1, NULL, NULL, NULL, NULL}
#define STR(n, t, o, l, h, d, set, show) \
    {n, t, o, l, h, {{0, d}, {0, d}, {0, d}}, NULL, 0, -1, set, show, NULL, NULL}
#define STR2(n, t, o, l, h, d0, d1) \
    {n, t, o, l, h, {{0, d0}, {0, d1}, {0, d1}}, NULL, 0, -1, NULL, NULL, NULL, NULL}
#define STR3(n, t, o, l, h, d0, d1, d2) \
    {n, t, o, l, h, {{0, d0}, {0, d1}, {0, d2}}, NULL, 0, -1, NULL, NULL, NULL, NULL}
#define OBJ(n, o, s, r) \
    {n, K_OBJ, o, 0, 0, {{0, NULL}, {0, NULL}, {0, NULL}}, s, ARRAY_LEN(s), r, NULL, NULL, NULL, \
     NULL}
#define ENUM(n, o, names, d) \
    {n, K_ENUM, o, 0, 0, {{d, NULL}, {d, NULL}, {d, NULL}}, NULL, 0, -1, NULL, NULL, names, NULL}
#define CUSTOM(n, ops) \
    {n, K_CUSTOM, NOFF, 0, 0, {{0, NULL}, {0, NULL}, {0, NULL}}, NULL, 0, -1, NULL, NULL, NULL, \
     ops}

static int set_listen(char *, const struct key *, const char *, const char *, struct cfg_err *);
static int set_redis_url(char *, const struct key *, const char *, const char *,
                         struct cfg_err *);
static int set_base_url(char *, const struct key *, const char *, const char *,
                        struct cfg_err *);
static int set_env_name(char *, const struct key *, const char *, const char *,
                        struct cfg_err *);
static char *show_listen(const char *base);
static char *show_redis_url(const char *base);
static const struct key_ops headers_ops, allow_ops, sentinels_ops, tenants_ops, fallbacks_ops;

static const char *const auth_header_names[] = {"bearer", "api-key", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

#define DRAFT_SYSTEM "You are a precise analyst who writes executive briefs. Use only facts " \
    "stated in the document; never invent names, numbers or dates. Reply with the brief only."
#define DRAFT_USER "Summarize the following document as an executive brief of at most " \
    "{max_words} words.{instructions}\n\nDocument:\n{text}"
#define REFINE_SYSTEM "You are a careful editor of executive briefs. Use only facts stated in " \
    "the source document; never invent anything. Reply with the final brief only, without " \
    "commentary."
#define REFINE_USER "Rewrite the draft brief below into a clear, accurate executive brief of " \
    "at most {max_words} words. Keep every fact; fix omissions using the source document." \
    "{instructions}\n\nSource document:\n{text}\n\nDraft brief:\n{draft}"
/* The refine model writing the brief from the document alone (routing.pre_route decided
 * before any draft). */
#define DIRECT_USER "Write a clear, accurate executive brief of the following document in at " \
    "most {max_words} words.{instructions}\n\nDocument:\n{text}"
/* The judge (briefd eval, docs/EVALUATION.md): the rubric, and the layout of the brief to
 * score ({draft} is the brief being judged, whichever model wrote it). */
#define JUDGE_SYSTEM "You are a strict evaluator of executive briefs. You get a source " \
    "document, a word limit and a brief written from the document. Score the brief on three " \
    "criteria, each an integer from 1 (worst) to 5 (best): coherence - it reads clearly and " \
    "is well organised; faithfulness - every fact, name, number and date in it is in the " \
    "document, and nothing is invented; brevity - it stays within the word limit and has no " \
    "filler. Reply with one JSON object only: {\"coherence\": 1-5, \"faithfulness\": 1-5, " \
    "\"brevity\": 1-5, \"rationale\": \"one or two sentences\"}."
#define JUDGE_USER "Document:\n{text}\n\nMaximum words: {max_words}\n\nBrief:\n{draft}"
#define DEFAULT_BASE_URL "http://127.0.0.1:5273/v1"

/* Default prices: public list prices of hosted equivalents (docs/CONFIG.md#prices has the
 * sources and the date): Phi-4-mini-instruct on Azure AI Foundry, gpt-oss-20b on W&B
 * Inference, USD per million tokens. */
#define DRAFT_IN_PER_MTOK 0.075
#define DRAFT_OUT_PER_MTOK 0.30
#define REFINE_IN_PER_MTOK 0.05
#define REFINE_OUT_PER_MTOK 0.20
#define DRAFT_PRICE_SOURCE "Azure AI Foundry list price of Phi-4-mini-instruct (global " \
    "deployment), USD per 1M tokens, as listed when checked on 2026-12-02"
#define REFINE_PRICE_SOURCE "W&B Inference list price of gpt-oss-20b, USD per 1M tokens, as " \
    "listed when checked on 2026-12-02"

static const struct key price_keys[] = {
    NUM2("input_per_mtok", K_DBL, M(price_in_per_mtok), 0, INFINITY, DRAFT_IN_PER_MTOK,
         REFINE_IN_PER_MTOK),
    NUM2("output_per_mtok", K_DBL, M(price_out_per_mtok), 0, INFINITY, DRAFT_OUT_PER_MTOK,
         REFINE_OUT_PER_MTOK),
    NUM("per_hour", K_DBL, M(price_per_hour), 0, INFINITY, 0),
    STR2("source", K_STRN, M(price_source), 1, 256, DRAFT_PRICE_SOURCE, REFINE_PRICE_SOURCE),
};

static const struct key prompt_keys[] = {
    STR3("system", K_STR, M(prompt_system), 0, 65536, DRAFT_SYSTEM, REFINE_SYSTEM,
         JUDGE_SYSTEM),
    STR3("user", K_STR, M(prompt_user), 1, 65536, DRAFT_USER, REFINE_USER, JUDGE_USER),
    STR3("direct", K_STRN, M(prompt_direct), 1, 65536, NULL, DIRECT_USER, NULL),
};

/* One table for the three model slots; models.draft applies it with role 0, models.refine
 * role 1, models.judge role 2 (whose name, base_url and api_key_env then default to
 * models.refine's: judge_from_refine[] below). */
static const struct key model_keys[] = {
    STR2("name", K_STR, M(name), 1, 256, "phi-4-mini", "gpt-oss-20b"),
    STR("base_url", K_STR, M(base_url), 1, 2048, DEFAULT_BASE_URL, set_base_url, NULL),
    STR("api_key_env", K_STRN, M(api_key_env), 1, 128, NULL, set_env_name, NULL),
    ENUM("auth_header", M(auth_header), auth_header_names, MODEL_AUTH_BEARER),
    CUSTOM("headers", &headers_ops),
    NUM("timeout_ms", K_INT, M(timeout_ms), 100, 600000, 60000),
    NUM2("max_tokens", K_INT, M(max_tokens), 1, 32768, 300, 600),
    NUM3("temperature", K_DBL, M(temperature), 0, 2, 0.4, 0.2, 0),
    NUM("stream", K_BOOL, M(stream), 0, 1, 0),
    NUM2("logprobs", K_BOOL, M(logprobs), 0, 1, 1, 0),
    NUM("max_attempts", K_INT, M(max_attempts), 1, 10, 3),
    NUM("backoff_ms", K_INT, M(backoff_ms), 1, 60000, 200),
    NUM("breaker_failures", K_INT, M(breaker_failures), 1, 1000, 5),
    NUM("breaker_open_ms", K_INT, M(breaker_open_ms), 100, 3600000, 30000),
    NUM("max_concurrency", K_INT, M(max_concurrency), 0, 100000, 0),
    OBJ("price", 0, price_keys, -1),
    OBJ("prompt", 0, prompt_keys, -1),
    CUSTOM("fallbacks", &fallbacks_ops),
};

/* What one models.*.fallbacks entry may give (the rest comes from its model: see
 * fallback_inherit()); base_url is required. Defaults are applied by no one: a key the
 * entry leaves out is zero until it is inherited. */
static const struct key fallback_keys[] = {
    STR("base_url", K_STR, M(base_url), 1, 2048, NULL, set_base_url, NULL),
    STR("name", K_STR, M(name), 1, 256, NULL, NULL, NULL),
    STR("api_key_env", K_STRN, M(api_key_env), 1, 128, NULL, set_env_name, NULL),
    ENUM("auth_header", M(auth_header), auth_header_names, MODEL_AUTH_BEARER),
    CUSTOM("headers", &headers_ops),
    NUM("timeout_ms", K_INT, M(timeout_ms), 100, 600000, 0),
    NUM("max_concurrency", K_INT, M(max_concurrency), 0, 100000, 0),
    OBJ("price", 0, price_keys, -1),
};

static const struct key models_keys[] = {
    OBJ("draft", O(draft), model_keys, 0),
    OBJ("refine", O(refine), model_keys, 1),
    OBJ("judge", O(judge), model_keys, 2),
};

/* models.judge keys that, when the file does not give them, take models.refine's value
 * after parsing (the judge defaults to the refine model's endpoint). */
static const struct {
    const char *name;
    size_t off;
} judge_from_refine[] = {
    {"name", M(name)},
    {"base_url", M(base_url)},
    {"api_key_env", M(api_key_env)},
};

static const struct key redis_keys[] = {
    STR("url", K_STR, O(redis_url), 1, 4096, "redis://127.0.0.1:6379/0", set_redis_url,
        show_redis_url),
    STR("prefix", K_STR, O(redis_prefix), 1, 64, "briefd:", NULL, NULL),
    NUM("command_timeout_ms", K_INT, O(redis_command_timeout_ms), 100, 60000, 3000),
    CUSTOM("sentinels", &sentinels_ops),
    STR("master_name", K_STRN, O(redis_master_name), 1, 127, NULL, NULL, NULL),
    STR("sentinel_password_env", K_STRN, O(redis_sentinel_password_env), 1, 128, NULL,
        set_env_name, NULL),
    NUM("min_replicas_acked", K_INT, O(redis_min_replicas_acked), 0, 16, 0),
    NUM("replica_ack_timeout_ms", K_INT, O(redis_replica_ack_timeout_ms), 10, 60000, 1000),
    STR("tls_ca_file", K_STRN, O(redis_tls_ca_file), 1, 4096, NULL, NULL, NULL),
};

/* claim_idle_ms: default 0 means "job_timeout_ms + 30000", derived after parsing. */
static const struct key workers_keys[] = {
    NUM("concurrency", K_INT, O(concurrency), 1, 4096, 64),
    NUM("max_attempts", K_INT, O(max_attempts), 1, 100, 3),
    NUM("job_timeout_ms", K_INT, O(job_timeout_ms), 1000, 3600000, 120000),
    NUM("result_ttl_s", K_LONG, O(result_ttl_s), 60, 31536000, 604800),
    NUM("claim_idle_ms", K_INT, O(claim_idle_ms), 1000, 86400000, 0),
    NUM("shutdown_grace_ms", K_INT, O(shutdown_grace_ms), 0, 3600000, 30000),
};

static const struct key limits_keys[] = {
    NUM("max_text_bytes", K_SIZE, O(max_text_bytes), 1, 16777216, 262144),
    NUM("max_queue", K_LONG, O(max_queue), 1, 10000000, 100000),
    NUM("max_wait_s", K_INT, O(max_wait_s), 0, 60, 60),
    /* default 0: min(86400, workers.result_ttl_s), derived after parsing */
    NUM("idempotency_ttl_s", K_LONG, O(idempotency_ttl_s), 60, 2592000, 0),
};

static const struct key auth_keys[] = {
    STR("keys_env", K_STRN, O(auth_keys_env), 1, 128, "BRIEFD_API_KEYS", set_env_name, NULL),
    STR("admin_keys_env", K_STRN, O(admin_keys_env), 1, 128, "BRIEFD_ADMIN_KEYS",
        set_env_name, NULL),
    STR("fingerprint_salt_env", K_STRN, O(fingerprint_salt_env), 1, 128, NULL, set_env_name,
        NULL),
};

static const struct key log_keys[] = {
    ENUM("format", O(log_format), log_format_names, 0),
    ENUM("level", O(log_level), log_level_names, 1),
};

static const struct key webhooks_keys[] = {
    STR("secret_env", K_STRN, O(webhook_secret_env), 1, 128, NULL, set_env_name, NULL),
    CUSTOM("allow", &allow_ops),
    NUM("max_in_flight", K_INT, O(webhook_max_in_flight), 1, 4096, 64),
    NUM("timeout_ms", K_INT, O(webhook_timeout_ms), 100, 120000, 10000),
    NUM("max_attempts", K_INT, O(webhook_max_attempts), 1, 50, 10),
    NUM("max_age_s", K_LONG, O(webhook_max_age_s), 1, 2592000, 86400),
    NUM("backoff_base_ms", K_INT, O(webhook_backoff_base_ms), 1, 3600000, 5000),
};

static const struct key facade_keys[] = {
    STR("model", K_STR, O(facade_model), 1, 128, "briefd-hybrid", NULL, NULL),
    NUM("record_hold_ms", K_INT, O(facade_record_hold_ms), 0, 1000, 2),
    NUM("max_unrecorded", K_INT, O(facade_max_unrecorded), 1, 1000000, 4096),
};

/* The exact cache (docs/CONFIG.md#cache): 0 is off; at most 30 days. */
static const struct key cache_keys[] = {
    NUM("ttl_s", K_LONG, O(cache_ttl_s), 0, 2592000, 0),
};

static const struct key stats_keys[] = {
    NUM("retention_s", K_LONG, O(stats_retention_s), 60, 31536000, 604800),
};

/* The online evaluation (shadow judging, service/shadow.h; docs/EVALUATION.md). */
static const struct key evaluation_keys[] = {
    NUM("shadow_rate", K_DBL, O(eval_shadow_rate), 0, 1, 0),
    NUM("daily_budget_usd", K_DBLN, O(eval_daily_budget_usd), 0, INFINITY, -1),
    NUM("max_in_flight", K_INT, O(eval_max_in_flight), 1, 1024, 4),
};

static const struct key top_keys[] = {
    STR("listen", K_STR, NOFF, 1, 300, "127.0.0.1:8080", set_listen, show_listen),
    OBJ("redis", 0, redis_keys, -1),
    OBJ("workers", 0, workers_keys, -1),
    OBJ("limits", 0, limits_keys, -1),
    OBJ("auth", 0, auth_keys, -1),
    OBJ("models", 0, models_keys, -1),
    OBJ("facade", 0, facade_keys, -1),
    OBJ("stats", 0, stats_keys, -1),
    OBJ("evaluation", 0, evaluation_keys, -1),
    OBJ("log", 0, log_keys, -1),
    OBJ("webhooks", 0, webhooks_keys, -1),
    CUSTOM("tenants", &tenants_ops),
    OBJ("cache", 0, cache_keys, -1),
    {"routing", K_ROUTING, O(router), 0, 0, {{0, NULL}, {0, NULL}, {0, NULL}}, NULL, 0, -1,
     NULL, NULL, NULL, NULL},
};

/* ---- small helpers ------------------------------------------------------------------- */

static int oom(struct cfg_err *err)
{
    return cfg_fail(err, "", "out of memory");
}

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static int store_str(char **slot, const char *s, size_t len, struct cfg_err *err)
{
    char *dup = strndup(s, len);

    if (!dup)
        return oom(err);
    wipe_free(*slot);
    *slot = dup;
    return 0;
}

/* parent.name into out (PATH_MAX_LEN bytes); a path too long is cut (it is only shown). */
static void join_path(char *out, const char *parent, const char *name)
{
    int n = parent[0] ? snprintf(out, PATH_MAX_LEN, "%s.%s", parent, name)
                      : snprintf(out, PATH_MAX_LEN, "%s", name);

    if (n < 0)
        out[0] = '\0';
}

static int sub_role(const struct key *k, int role)
{
    return k->role >= 0 ? k->role : role;
}

static int is_integral(double d)
{
    return isfinite(d) && floor(d) == d;
}

static int host_char_ok(int ch, int bracketed)
{
    if (isalnum(ch) || ch == '.' || ch == '-' || ch == '_')
        return 1;
    return bracketed && (ch == ':' || ch == '%');
}

/* Split "host[:port]" or "[v6][:port]" (s, len). port_req: the port must be present.
 * Returns NULL and sets *host / *port, or a description of the mistake. */
/* 1 if s[0..len) is an IPv6 address, optionally with a %zone. */
static int ipv6_literal(const char *s, size_t len)
{
    char buf[64];
    unsigned char addr[16];
    const char *pct = memchr(s, '%', len);
    size_t n = pct ? (size_t)(pct - s) : len;
    if (n == 0 || n >= sizeof(buf) || (pct && (size_t)(pct - s) + 1 >= len))
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1;
}

static const char *split_hostport(const char *s, size_t len, int port_req, char **host,
                                  int *port)
{
    const char *h = s, *colon = NULL;
    size_t hlen;
    int br = len > 0 && s[0] == '[';

    if (br) {
        const char *close = memchr(s, ']', len);
        if (!close)
            return "missing ']' after an IPv6 address";
        h = s + 1;
        hlen = (size_t)(close - h);
        if (close + 1 < s + len && close[1] != ':')
            return "expected ':' after ']'";
        colon = close + 1 < s + len ? close + 1 : NULL;
    } else {
        colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        if (colon && memchr(colon + 1, ':', len - hlen - 1))
            return "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
    }
    if (hlen == 0)
        return "missing host";
    if (hlen > CONFIG_MAX_HOST)
        return "host name longer than 253 characters";
    for (size_t i = 0; i < hlen; i++)
        if (!host_char_ok((unsigned char)h[i], br))
            return "invalid character in host";
    if (br && !ipv6_literal(h, hlen))
        return "brackets must hold an IPv6 address, e.g. [::1]";
    if (!colon && port_req)
        return "expected \"host:port\"";
    if (colon && url_parse_port(colon + 1, len - (size_t)(colon + 1 - s), port) < 0)
        return "port must be between 1 and 65535";
    *host = strndup(h, hlen);
    return *host ? NULL : "out of memory";
}

static char *fmt_hostport(const char *host, int port)
{
    char buf[CONFIG_MAX_HOST + 16];

    rds_addr_text(host, port, buf, sizeof buf); /* [v6]:port as the Redis client shows it */
    return strdup(buf);
}

/* ---- custom string keys -------------------------------------------------------------- */

static int set_listen(char *base, const struct key *k, const char *s, const char *path,
                      struct cfg_err *err)
{
    struct bd_config *c = (struct bd_config *)(void *)base;
    char *host = NULL;
    int port = 0;
    const char *why = split_hostport(s, strlen(s), 1, &host, &port);

    (void)k;
    if (why)
        return cfg_fail(err, path, "%s", why);
    wipe_free(c->listen_host);
    c->listen_host = host;
    c->listen_port = port;
    return 0;
}

static char *show_listen(const char *base)
{
    const struct bd_config *c = (const struct bd_config *)(const void *)base;

    return fmt_hostport(c->listen_host, c->listen_port);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode s (len bytes) into a new string; NULL with *why on a malformed escape. */
static char *pct_decode(const char *s, size_t len, const char **why)
{
    char *out = malloc(len + 1);
    size_t n = 0;

    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        hi = i + 2 < len ? hexval((unsigned char)s[i + 1]) : -1;
        lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            explicit_bzero(out, n);
            free(out);
            *why = "invalid percent-encoding in the password";
            return NULL;
        }
        out[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

struct redis_parts {
    char *host;
    int port;
    int db;
    char *user;
    char *password;
    int tls;
};

/* userinfo (before the last '@'): "[user]:password" (an ACL user, then AUTH user password). */
static const char *redis_userinfo(const char *s, size_t len, struct redis_parts *p)
{
    const char *colon = memchr(s, ':', len);
    const char *why = NULL;

    if (!colon)
        return "expected \":password@\" or \"user:password@\" before the host";
    if (colon > s) {
        p->user = pct_decode(s, (size_t)(colon - s), &why);
        if (why)
            return why;
        if (strlen(p->user) > CONFIG_MAX_REDIS_USER)
            return "user name longer than 1024 bytes";
    }
    if (colon + 1 == s + len)
        return p->user ? "an ACL user needs a password (user:password@)" : NULL;
    p->password = pct_decode(colon + 1, len - (size_t)(colon + 1 - s), &why);
    return why;
}

static const char *redis_db(const char *s, struct redis_parts *p)
{
    long v = 0;
    size_t n = strlen(s);

    if (n > 9)
        return "database must be an integer between 0 and 999999999";
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return "database must be an integer between 0 and 999999999";
        v = v * 10 + (s[i] - '0');
    }
    p->db = (int)v;
    return NULL;
}

/* unix://[[user]:password@]/path/to/redis.sock[?db=N] (redis-py's form): a Redis on the same
 * host over its Unix socket. The path is absolute, at most CONFIG_REDIS_SOCKET_MAX bytes (a
 * socket address's limit) and becomes the host, with port 0 (clients/rds.h). */
static const char *redis_split_unix(const char *url, struct redis_parts *p)
{
    const char *rest = url + 7, *path = strstr(rest, "@/"), *q, *why;
    size_t n;

    if (rest[0] == '/')
        path = rest;
    else if (!path)
        return "expected unix:///path/to/redis.sock or unix://[user]:password@/path";
    else if ((why = redis_userinfo(rest, (size_t)(path - rest), p)) != NULL)
        return why;
    else
        path++;
    q = strchr(path, '?');
    n = q ? (size_t)(q - path) : strlen(path);
    if (n < 2 || n > CONFIG_REDIS_SOCKET_MAX)
        return "the socket's path must be absolute and at most 107 bytes";
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)path[i]) || path[i] == '#')
            return "the socket's path must not contain spaces, control characters or '#'";
    if (q && strncmp(q, "?db=", 4) != 0)
        return "the only query a unix:// URL takes is ?db=N";
    if (q && (why = redis_db(q + 4, p)) != NULL)
        return why;
    p->host = strndup(path, n);
    p->port = 0;
    return p->host ? NULL : "out of memory";
}

static const char *redis_split(const char *url, struct redis_parts *p)
{
    const char *rest, *at, *slash;
    const char *why = NULL;

    if (strncasecmp(url, "unix://", 7) == 0)
        return redis_split_unix(url, p);
#ifdef BRIEFD_REDIS_TLS
    p->tls = strncasecmp(url, "rediss://", 9) == 0;
#else
    if (strncasecmp(url, "rediss://", 9) == 0)
        return "this build of hiredis has no TLS; run a TLS sidecar such as stunnel: see "
               "docs/REDIS.md";
#endif
    if (!p->tls && strncasecmp(url, "redis://", 8) != 0)
        return "unsupported scheme; expected redis://[[user]:password@]host[:port][/db] or "
               "unix://[[user]:password@]/path/to/redis.sock[?db=N]";
    rest = url + (p->tls ? 9 : 8);
    if (strpbrk(rest, "?#"))
        return "query and fragment parts are not supported (percent-encode '?' and '#' "
               "in a password)";
    at = strrchr(rest, '@');
    if (at) {
        why = redis_userinfo(rest, (size_t)(at - rest), p);
        if (why)
            return why;
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    p->port = 6379;
    why = split_hostport(rest, slash ? (size_t)(slash - rest) : strlen(rest), 0, &p->host,
                         &p->port);
    if (why || !slash)
        return why;
    return redis_db(slash + 1, p);
}

static void redis_parts_clear(struct redis_parts *p)
{
    wipe_free(p->host);
    wipe_free(p->user);
    wipe_free(p->password);
    memset(p, 0, sizeof *p);
}

static int set_redis_url(char *base, const struct key *k, const char *s, const char *path,
                         struct cfg_err *err)
{
    struct bd_config *c = (struct bd_config *)(void *)base;
    struct redis_parts p = {0};
    const char *why = redis_split(s, &p);

    (void)k;
    if (why) {
        redis_parts_clear(&p);
        return cfg_fail(err, path, "%s", why);
    }
    if (store_str(&c->redis_url, s, strlen(s), err) < 0) {
        redis_parts_clear(&p);
        return -1;
    }
    wipe_free(c->redis_host);
    wipe_free(c->redis_user);
    wipe_free(c->redis_password);
    c->redis_host = p.host;
    c->redis_port = p.port;
    c->redis_db = p.db;
    c->redis_user = p.user;
    c->redis_password = p.password;
    c->redis_tls = p.tls;
    return 0;
}

/* s with every byte but RFC 3986's unreserved ones percent-encoded (what pct_decode reads
 * back as s): a user name holding ':', '@', '%' or any other byte shows as it parses. */
static char *pct_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), k = 0;
    char *out = malloc(n * 3 + 1);

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    out[k] = '\0';
    return out;
}

static char *show_redis_url(const char *base)
{
    const struct bd_config *c = (const struct bd_config *)(const void *)base;
    char *hp = fmt_hostport(c->redis_host, c->redis_port);
    char *user = pct_encode(c->redis_user ? c->redis_user : "");
    char *out = NULL;
    size_t n;

    if (hp && user) {
        n = strlen(user) + strlen(hp) + 64;
        out = malloc(n);
        if (out && rds_is_socket(c->redis_host))
            snprintf(out, n, "unix://%s%s%s?db=%d", user, c->redis_password ? ":***@" : "",
                     c->redis_host, c->redis_db);
        else if (out)
            snprintf(out, n, "%s://%s%s%s/%d", c->redis_tls ? "rediss" : "redis", user,
                     c->redis_password ? ":***@" : "", hp, c->redis_db);
    }
    free(user);
    free(hp);
    return out;
}

/* http(s)://host[:port][/path][?query]: trailing slashes of the path are dropped; a query
 * (Azure's ?api-version=...) is kept and goes after the paths briefd appends. */
static int set_base_url(char *base, const struct key *k, const char *s, const char *path,
                        struct cfg_err *err)
{
    const char *q = strchr(s, '?');
    size_t len = q ? (size_t)(q - s) : strlen(s), qlen = q ? strlen(q) : 0;
    size_t skip = strncasecmp(s, "https://", 8) == 0 ? 8 : 7;
    char *joined;
    int rc;

    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
        return cfg_fail(err, path, "expected an http:// or https:// URL");
    while (len > skip && s[len - 1] == '/')
        len--;
    if (len == skip || s[skip] == '/')
        return cfg_fail(err, path, "missing host");
    for (const char *p = s; *p; p++)
        if (!isgraph((unsigned char)*p))
            return cfg_fail(err, path, "URL must not contain spaces or control characters");
    if (strchr(s, '#'))
        return cfg_fail(err, path, "a fragment (#...) is not allowed");
    if (asprintf(&joined, "%.*s%s", (int)len, s, q ? q : "") < 0)
        return oom(err);
    rc = store_str((char **)(void *)(base + k->off), joined, len + qlen, err);
    free(joined);
    return rc;
}

static int set_env_name(char *base, const struct key *k, const char *s, const char *path,
                        struct cfg_err *err)
{
    int ok = isalpha((unsigned char)s[0]) || s[0] == '_';

    for (size_t i = 1; ok && s[i]; i++)
        ok = isalnum((unsigned char)s[i]) || s[i] == '_';
    if (!ok)
        return cfg_fail(err, path,
                        "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    return store_str((char **)(void *)(base + k->off), s, strlen(s), err);
}

/* ---- models.*.headers ---------------------------------------------------------------- */

/* Headers briefd sets itself (framing, content negotiation, the connection, the request id
 * and trace context it sends on every call): refused. */
static const char *const reserved_headers[] = {
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive",
    "upgrade", "te", "trailer", "expect", "accept", "accept-encoding", "proxy-authorization",
    "proxy-connection", "x-request-id", "traceparent", "tracestate", NULL};

/* An RFC 9110 token: 1..CONFIG_HEADER_NAME_MAX of "!#$%&'*+-.^_`|~" and alphanumerics. */
static int token_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CONFIG_HEADER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
            return 0;
    return 1;
}

/* A header value: visible ASCII, spaces and tabs, at most CONFIG_HEADER_VALUE_MAX bytes. */
static int header_value_ok(const char *s, size_t n)
{
    if (n > CONFIG_HEADER_VALUE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 0x20 && s[i] <= 0x7e) || s[i] == '\t'))
            return 0;
    return 1;
}

static void header_clear(struct model_header *h)
{
    free(h->name);
    free(h->env);
    wipe_free(h->value);
    memset(h, 0, sizeof *h);
}

static void header_lines_free(struct model_cfg *m)
{
    for (size_t i = 0; i < m->n_header_lines; i++)
        wipe_free(m->header_lines[i]);
    free(m->header_lines);
    m->header_lines = NULL;
    m->n_header_lines = 0;
}

static void headers_free(char *base)
{
    struct model_cfg *m = (struct model_cfg *)(void *)base;

    for (size_t i = 0; i < m->n_headers; i++)
        header_clear(&m->headers[i]);
    free(m->headers);
    m->headers = NULL;
    m->n_headers = 0;
    header_lines_free(m);
}

static int header_name_check(const cJSON *obj, const cJSON *item, const char *path,
                             struct cfg_err *err)
{
    if (!token_ok(item->string))
        return cfg_fail(err, path, "a header name must be 1 to %d characters of a token "
                        "(letters, digits and !#$%%&'*+-.^_`|~)", CONFIG_HEADER_NAME_MAX);
    for (int i = 0; reserved_headers[i]; i++)
        if (strcasecmp(item->string, reserved_headers[i]) == 0)
            return cfg_fail(err, path, "briefd sets this header itself");
    for (const cJSON *p = obj->child; p && p != item; p = p->next)
        if (strcasecmp(p->string, item->string) == 0)
            return cfg_fail(err, path, "duplicate header (names are case-insensitive)");
    return 0;
}

/* {"env": "VAR"}: the value is read from the environment at load. */
static int header_env(struct model_header *h, const cJSON *v, const char *path,
                      struct cfg_err *err)
{
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(v, "env");
    const cJSON *other = v->child;
    char sub[PATH_MAX_LEN];
    struct key k = STR("env", K_STR, 0, 1, 128, NULL, NULL, NULL);

    while (other && other == env)
        other = other->next;
    if (!env)
        return cfg_fail(err, path, "expected a string or {\"env\": \"VARIABLE\"}");
    join_path(sub, path, other ? other->string : "env");
    if (other)
        return cfg_fail(err, sub, strcmp(other->string, "env") == 0 ? "duplicate key"
                                                                     : "unknown key");
    if (!cJSON_IsString(env))
        return cfg_fail(err, sub, "expected string");
    if (strlen(env->valuestring) < 1 || strlen(env->valuestring) > 128)
        return cfg_fail(err, sub, "must be 1 to 128 characters long");
    return set_env_name((char *)&h->env, &k, env->valuestring, sub, err);
}

static int header_parse(struct model_header *h, const cJSON *obj, const cJSON *item,
                        const char *path, struct cfg_err *err)
{
    if (header_name_check(obj, item, path, err) < 0)
        return -1;
    h->name = strdup(item->string);
    if (!h->name)
        return oom(err);
    if (cJSON_IsObject(item))
        return header_env(h, item, path, err);
    if (!cJSON_IsString(item))
        return cfg_fail(err, path, "expected a string or {\"env\": \"VARIABLE\"}");
    if (!header_value_ok(item->valuestring, strlen(item->valuestring)))
        return cfg_fail(err, path, "a header value must be at most %d bytes of printable "
                        "ASCII (spaces and tabs allowed)", CONFIG_HEADER_VALUE_MAX);
    h->value = strdup(item->valuestring);
    return h->value ? 0 : oom(err);
}

static int headers_parse(char *base, const cJSON *v, const char *path, struct cfg_err *err)
{
    struct model_cfg *m = (struct model_cfg *)(void *)base;
    char sub[PATH_MAX_LEN];
    int n = cJSON_GetArraySize(v);

    headers_free(base);
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return cfg_fail(err, path, "expected object");
    if (n > CONFIG_MAX_HEADERS)
        return cfg_fail(err, path, "at most %d headers", CONFIG_MAX_HEADERS);
    m->headers = calloc((size_t)(n ? n : 1), sizeof *m->headers);
    if (!m->headers)
        return oom(err);
    for (const cJSON *item = v->child; item; item = item->next) {
        join_path(sub, path, item->string);
        if (header_parse(&m->headers[m->n_headers++], v, item, sub, err) < 0)
            return -1;
    }
    return 0;
}

static int headers_describe(const char *base, const char *name, cJSON *out)
{
    const struct model_cfg *m = (const struct model_cfg *)(const void *)base;
    cJSON *o = cJSON_AddObjectToObject(out, name);

    for (size_t i = 0; o && i < m->n_headers; i++) {
        const struct model_header *h = &m->headers[i];
        cJSON *e = h->env ? cJSON_CreateObject() : cJSON_CreateString(h->value);
        if (!e || (h->env && !cJSON_AddStringToObject(e, "env", h->env))) {
            cJSON_Delete(e);
            return -1;
        }
        cJSON_AddItemToObject(o, h->name, e);
    }
    return o ? 0 : -1;
}

static const struct key_ops headers_ops = {headers_parse, headers_describe, headers_free};

/* ---- webhooks.allow ------------------------------------------------------------------ */

static void allow_free(char *base)
{
    target_policy_free(&((struct bd_config *)(void *)base)->webhook_allow);
}

static int allow_parse(char *base, const cJSON *v, const char *path, struct cfg_err *err)
{
    struct target_policy *p = &((struct bd_config *)(void *)base)->webhook_allow;
    char sub[PATH_MAX_LEN];
    int i = 0;

    target_policy_free(p);
    if (!cJSON_IsArray(v))
        return cfg_fail(err, path, "expected array");
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        const char *why = NULL;
        int rc;
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        if (!cJSON_IsString(e))
            return cfg_fail(err, sub, "expected string");
        rc = target_policy_add(p, e->valuestring, &why);
        if (rc == BD_ENOMEM)
            return oom(err);
        if (rc != 0)
            return cfg_fail(err, sub, "%s", why);
    }
    return 0;
}

static int allow_describe(const char *base, const char *name, cJSON *out)
{
    const struct target_policy *p = &((const struct bd_config *)(const void *)base)->webhook_allow;
    cJSON *arr = cJSON_AddArrayToObject(out, name);

    for (size_t i = 0; arr && i < p->n_entries; i++) {
        cJSON *s = cJSON_CreateString(p->entries[i]);
        if (!s)
            return -1;
        cJSON_AddItemToArray(arr, s);
    }
    return arr ? 0 : -1;
}

static const struct key_ops allow_ops = {allow_parse, allow_describe, allow_free};

/* redis.sentinels: 0..CONFIG_MAX_SENTINELS "host:port" strings. */
static void sentinels_free(char *base)
{
    struct cfg_strs *l = &((struct bd_config *)(void *)base)->redis_sentinels;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int sentinels_parse(char *base, const cJSON *v, const char *path, struct cfg_err *err)
{
    struct cfg_strs *l = &((struct bd_config *)(void *)base)->redis_sentinels;
    char sub[PATH_MAX_LEN];
    int i = 0;

    sentinels_free(base);
    if (!cJSON_IsArray(v))
        return cfg_fail(err, path, "expected an array of \"host:port\" strings");
    if (cJSON_GetArraySize(v) > CONFIG_MAX_SENTINELS)
        return cfg_fail(err, path, "at most %d sentinels", CONFIG_MAX_SENTINELS);
    l->v = calloc((size_t)cJSON_GetArraySize(v) + 1, sizeof(*l->v));
    if (!l->v)
        return oom(err);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        char *host = NULL;
        int port = 0;
        const char *why = cJSON_IsString(e) ? split_hostport(e->valuestring,
                              strlen(e->valuestring), 1, &host, &port) : "expected string";
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        wipe_free(host);
        if (why)
            return cfg_fail(err, sub, "%s", why);
        l->v[l->n] = strdup(e->valuestring);
        if (!l->v[l->n])
            return oom(err);
        l->n++;
    }
    return 0;
}

static int sentinels_describe(const char *base, const char *name, cJSON *out)
{
    const struct cfg_strs *l = &((const struct bd_config *)(const void *)base)->redis_sentinels;
    cJSON *arr = cJSON_AddArrayToObject(out, name);

    for (size_t i = 0; arr && i < l->n; i++) {
        cJSON *s = cJSON_CreateString(l->v[i]);
        if (!s)
            return -1;
        cJSON_AddItemToArray(arr, s);
    }
    return arr ? 0 : -1;
}

static const struct key_ops sentinels_ops = {sentinels_parse, sentinels_describe,
                                             sentinels_free};

/* ---- tenants (tenant.h) --------------------------------------------------------------- */

static void tenants_free(char *base)
{
    struct bd_config *c = (struct bd_config *)(void *)base;

    tenant_table_free(c->tenants);
    c->tenants = NULL;
}

static int tenants_parse(char *base, const cJSON *v, const char *path, struct cfg_err *err)
{
    (void)path; /* the section is always "tenants" */
    tenants_free(base);
    return tenant_table_parse(v, &((struct bd_config *)(void *)base)->tenants, err);
}

static int tenants_describe(const char *base, const char *name, cJSON *out)
{
    const struct bd_config *c = (const struct bd_config *)(const void *)base;
    cJSON *o = tenant_table_describe(c->tenants);

    if (!o)
        return -1;
    cJSON_AddItemToObject(out, name, o);
    return 0;
}

static const struct key_ops tenants_ops = {tenants_parse, tenants_describe, tenants_free};

/* ---- models.*.fallbacks -------------------------------------------------------------- */

static int apply_object(const cJSON *obj, const struct key *keys, size_t n, char *base,
                        int role, const char *parent, struct cfg_err *err);
static void free_strings(const struct key *keys, size_t n, char *base);
static int describe_keys(const struct bd_config *c, const struct key *keys, size_t n,
                         const char *base, cJSON *out);

static void fallbacks_free(char *base)
{
    struct model_cfg *m = (struct model_cfg *)(void *)base;

    for (size_t i = 0; i < m->n_fallbacks; i++) {
        free_strings(model_keys, ARRAY_LEN(model_keys), (char *)&m->fallbacks[i]);
        wipe_free(m->fallbacks[i].api_key);
    }
    free(m->fallbacks);
    m->fallbacks = NULL;
    m->n_fallbacks = 0;
}

static int fallback_parse(struct model_cfg *fb, const cJSON *v, const char *path,
                          struct cfg_err *err)
{
    if (!cJSON_IsObject(v))
        return cfg_fail(err, path, "expected object");
    if (apply_object(v, fallback_keys, ARRAY_LEN(fallback_keys), (char *)fb, 0, path, err) < 0)
        return -1;
    if (!fb->base_url)
        return cfg_fail(err, path, "base_url is required");
    return 0;
}

static int fallbacks_parse(char *base, const cJSON *v, const char *path, struct cfg_err *err)
{
    struct model_cfg *m = (struct model_cfg *)(void *)base;
    char sub[PATH_MAX_LEN];
    int n = cJSON_GetArraySize(v), i = 0;

    fallbacks_free(base);
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v))
        return cfg_fail(err, path, "expected array");
    if (n > CONFIG_MAX_FALLBACKS)
        return cfg_fail(err, path, "at most %d fallbacks", CONFIG_MAX_FALLBACKS);
    m->fallbacks = calloc((size_t)(n ? n : 1), sizeof *m->fallbacks);
    if (!m->fallbacks)
        return oom(err);
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        snprintf(sub, sizeof sub, "%s[%d]", path, i);
        m->n_fallbacks++;
        if (fallback_parse(&m->fallbacks[i], e, sub, err) < 0)
            return -1;
    }
    return 0;
}

/* Every fallback with every key it may give, inherited values included (so the output
 * loads back to the same configuration). */
static int fallbacks_describe(const char *base, const char *name, cJSON *out)
{
    const struct model_cfg *m = (const struct model_cfg *)(const void *)base;
    cJSON *arr = cJSON_AddArrayToObject(out, name);

    for (size_t i = 0; arr && i < m->n_fallbacks; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || describe_keys(NULL, fallback_keys, ARRAY_LEN(fallback_keys),
                                (const char *)&m->fallbacks[i], o) < 0) {
            cJSON_Delete(o);
            return -1;
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr ? 0 : -1;
}

static const struct key_ops fallbacks_ops = {fallbacks_parse, fallbacks_describe,
                                             fallbacks_free};

/* ---- applying the table: defaults, then the JSON ------------------------------------- */

static int apply_string(const struct key *k, char *base, const char *s, const char *path,
                        struct cfg_err *err)
{
    size_t len = strlen(s);

    if (len < k->lo) /* lo is 0 or 1 */
        return cfg_fail(err, path, "must not be empty");
    if (len > k->hi)
        return cfg_fail(err, path, "must be at most %.0f characters long", k->hi);
    if (k->set)
        return k->set(base, k, s, path, err);
    return store_str((char **)(void *)(base + k->off), s, len, err);
}

static void store_num(const struct key *k, char *base, double v)
{
    void *slot = base + k->off;

    switch (k->type) {
    case K_INT:
    case K_BOOL:
    case K_ENUM:
        *(int *)slot = (int)v;
        break;
    case K_LONG:
        *(long *)slot = (long)v;
        break;
    case K_SIZE:
        *(size_t *)slot = (size_t)v;
        break;
    default:
        *(double *)slot = v;
        break;
    }
}

static int apply_defaults(const struct key *keys, size_t n, char *base, int role,
                          const char *parent, struct cfg_err *err)
{
    char path[PATH_MAX_LEN];

    for (size_t i = 0; i < n; i++) {
        const struct key *k = &keys[i];
        const struct kdef *d = &k->def[role];
        int rc = 0;

        join_path(path, parent, k->name);
        if (k->type == K_OBJ)
            rc = apply_defaults(k->sub, k->nsub, base + k->off, sub_role(k, role), path, err);
        else if (k->type == K_STR || k->type == K_STRN)
            rc = d->str ? apply_string(k, base, d->str, path, err) : 0;
        else if (k->type != K_ROUTING && k->type != K_CUSTOM)
            store_num(k, base, d->num);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int range_fail(const struct key *k, const char *path, struct cfg_err *err)
{
    if (isinf(k->hi))
        return cfg_fail(err, path, "must be >= %.15g", k->lo);
    return cfg_fail(err, path, "must be between %.15g and %.15g", k->lo, k->hi);
}

static int apply_number(const cJSON *v, const struct key *k, char *base, const char *path,
                        struct cfg_err *err)
{
    int integral = k->type != K_DBL && k->type != K_DBLN;
    double d;

    /* a number too large for a double (1e999) parses as infinity: not a number here */
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        (integral && !is_integral(v->valuedouble)))
        return cfg_fail(err, path, k->type == K_DBLN ? "expected number or null"
                                   : integral    ? "expected integer"
                                                 : "expected number");
    d = v->valuedouble;
    if (!(d >= k->lo && d <= k->hi))
        return range_fail(k, path, err);
    store_num(k, base, d);
    return 0;
}

static int apply_object(const cJSON *obj, const struct key *keys, size_t n, char *base,
                        int role, const char *parent, struct cfg_err *err);

static int apply_enum(const cJSON *v, const struct key *k, char *base, const char *path,
                      struct cfg_err *err)
{
    char list[160] = "";

    for (int i = 0; cJSON_IsString(v) && k->names[i]; i++) {
        if (strcmp(v->valuestring, k->names[i]) == 0) {
            store_num(k, base, i);
            return 0;
        }
    }
    for (int i = 0; k->names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 k->names[i]);
    return cfg_fail(err, path, "expected one of %s", list);
}

static int apply_value(const cJSON *v, const struct key *k, char *base, int role,
                       const char *path, struct cfg_err *err)
{
    switch (k->type) {
    case K_OBJ:
        if (!cJSON_IsObject(v))
            return cfg_fail(err, path, "expected object");
        return apply_object(v, k->sub, k->nsub, base + k->off, sub_role(k, role), path, err);
    case K_ROUTING: /* parsed whole by router_parse() once the walk is done */
        return cJSON_IsObject(v) ? 0 : cfg_fail(err, path, "expected object");
    case K_STRN:
        if (cJSON_IsNull(v)) {
            wipe_free(*(char **)(void *)(base + k->off));
            *(char **)(void *)(base + k->off) = NULL;
            return 0;
        }
        if (!cJSON_IsString(v))
            return cfg_fail(err, path, "expected string or null");
        return apply_string(k, base, v->valuestring, path, err);
    case K_STR:
        if (!cJSON_IsString(v))
            return cfg_fail(err, path, "expected string");
        return apply_string(k, base, v->valuestring, path, err);
    case K_BOOL:
        if (!cJSON_IsBool(v))
            return cfg_fail(err, path, "expected boolean");
        store_num(k, base, cJSON_IsTrue(v) ? 1 : 0);
        return 0;
    case K_DBLN:
        if (cJSON_IsNull(v)) {
            store_num(k, base, -1);
            return 0;
        }
        return apply_number(v, k, base, path, err);
    case K_ENUM:
        return apply_enum(v, k, base, path, err);
    case K_CUSTOM:
        return k->ops->parse(base, v, path, err);
    default:
        return apply_number(v, k, base, path, err);
    }
}

static const struct key *find_key(const struct key *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int is_duplicate(const cJSON *obj, const cJSON *item)
{
    for (const cJSON *p = obj->child; p && p != item; p = p->next)
        if (strcmp(p->string, item->string) == 0)
            return 1;
    return 0;
}

static int apply_object(const cJSON *obj, const struct key *keys, size_t n, char *base,
                        int role, const char *parent, struct cfg_err *err)
{
    char path[PATH_MAX_LEN];

    for (const cJSON *item = obj->child; item; item = item->next) {
        const struct key *k = find_key(keys, n, item->string);

        join_path(path, parent, item->string);
        if (!k)
            return cfg_fail(err, path, "unknown key");
        if (is_duplicate(obj, item))
            return cfg_fail(err, path, "duplicate key");
        if (apply_value(item, k, base, role, path, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- parsing the text ---------------------------------------------------------------- */

static void line_col(const char *s, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

static int syntax_fail(const char *buf, size_t len, size_t off, const char *what,
                       struct cfg_err *err)
{
    int line, col;

    line_col(buf, off > len ? len : off, &line, &col);
    return cfg_fail(err, "", "%s at line %d, column %d", what, line, col);
}

/* Parse json (len bytes, not necessarily NUL-terminated) into *root, an object. */
static int parse_json(const char *json, size_t len, cJSON **root, struct cfg_err *err)
{
    const char *nul = memchr(json, '\0', len);
    const char *end = NULL;
    char *buf;

    if (len > CONFIG_MAX_FILE_BYTES)
        return cfg_fail(err, "", "config too large (max %u bytes)", CONFIG_MAX_FILE_BYTES);
    if (nul)
        return syntax_fail(json, len, (size_t)(nul - json), "NUL byte in config", err);
    if (is_blank(json, len))
        return cfg_fail(err, "", "config is empty (expected a JSON object)");
    buf = strndup(json, len);
    if (!buf)
        return oom(err);
    *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    if (!*root)
        syntax_fail(buf, len, end ? (size_t)(end - buf) : len, "invalid JSON", err);
    else if (!cJSON_IsObject(*root))
        cfg_fail(err, "", "top level must be a JSON object");
    explicit_bzero(buf, len);
    free(buf);
    return *root && cJSON_IsObject(*root) ? 0 : -1;
}

static void wipe_tree(cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsString(item) && item->valuestring)
            explicit_bzero(item->valuestring, strlen(item->valuestring));
        wipe_tree(item->child);
    }
}

/* ---- after the walk: derived values, secrets, version -------------------------------- */

static int derive_redis(struct bd_config *c, struct cfg_err *err)
{
    if (c->redis_sentinels.n > 0 && rds_is_socket(c->redis_host))
        return cfg_fail(err, "redis.url", "Sentinel names its primary by address: with "
                        "redis.sentinels the URL is redis:// (its user, password and database "
                        "are used), not unix://");
    if (c->redis_sentinels.n > 0 && !c->redis_master_name)
        return cfg_fail(err, "redis.master_name", "needed with redis.sentinels");
    if (c->redis_sentinels.n == 0 && c->redis_master_name)
        return cfg_fail(err, "redis.sentinels", "needed with redis.master_name");
    return 0;
}

/* models.judge's keys of judge_from_refine[] that the file (root) does not give. */
/* dst's headers become a copy of src's (before load_headers() reads the variables). */
static int copy_headers(struct model_cfg *dst, const struct model_cfg *src, struct cfg_err *err)
{
    headers_free((char *)dst);
    if (src->n_headers == 0)
        return 0;
    dst->headers = calloc(src->n_headers, sizeof *dst->headers);
    if (!dst->headers)
        return oom(err);
    for (size_t i = 0; i < src->n_headers; i++) {
        const struct model_header *h = &src->headers[i];
        struct model_header *d = &dst->headers[dst->n_headers++];
        if (store_str(&d->name, h->name, strlen(h->name), err) < 0 ||
            (h->env && store_str(&d->env, h->env, strlen(h->env), err) < 0) ||
            (!h->env && h->value && store_str(&d->value, h->value, strlen(h->value), err) < 0))
            return -1;
    }
    return 0;
}

static int derive_judge(struct bd_config *c, const cJSON *root, struct cfg_err *err)
{
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "models"), "judge");

    for (size_t i = 0; i < ARRAY_LEN(judge_from_refine); i++) {
        char **dst = (char **)(void *)((char *)&c->judge + judge_from_refine[i].off);
        char *const *src = (char *const *)(const void *)((const char *)&c->refine +
                                                         judge_from_refine[i].off);

        if (cJSON_GetObjectItemCaseSensitive(given, judge_from_refine[i].name))
            continue;
        wipe_free(*dst);
        *dst = NULL;
        if (*src && store_str(dst, *src, strlen(*src), err) < 0)
            return -1;
    }
    if (cJSON_GetObjectItemCaseSensitive(given, "base_url"))
        return 0;
    /* the refine model's endpoint: how it wants its key sent and its headers too */
    if (!cJSON_GetObjectItemCaseSensitive(given, "auth_header"))
        c->judge.auth_header = c->refine.auth_header;
    if (!cJSON_GetObjectItemCaseSensitive(given, "headers"))
        return copy_headers(&c->judge, &c->refine, err);
    return 0;
}

/* A header that would send the model key a second time, or another value in its place. */
static int auth_header_clash(const struct model_cfg *m, const char *role, struct cfg_err *err)
{
    const char *auth = m->auth_header == MODEL_AUTH_API_KEY ? "api-key" : "Authorization";
    char path[PATH_MAX_LEN];

    if (!m->api_key_env)
        return 0;
    for (size_t i = 0; i < m->n_headers; i++) {
        if (strcasecmp(m->headers[i].name, auth) != 0)
            continue;
        snprintf(path, sizeof path, "models.%.40s.headers.%.*s", role, CONFIG_HEADER_NAME_MAX,
                 m->headers[i].name);
        return cfg_fail(err, path, "conflicts with api_key_env, whose key is sent as %s "
                        "(auth_header)", auth);
    }
    return 0;
}

/* The default price.source describes the default prices only: once a price differs from
 * them and no source of its own was given, there is no source. */
static void price_source_check(struct model_cfg *m, const char *dflt, double in, double out)
{
    if (m->price_source && strcmp(m->price_source, dflt) == 0 &&
        (m->price_in_per_mtok != in || m->price_out_per_mtok != out || m->price_per_hour != 0)) {
        free(m->price_source);
        m->price_source = NULL;
    }
}

/* An Idempotency-Key must not outlive the job it names (a replay would answer 404 and the key
 * would block a new submit): unset, it is min(IDEM_TTL_DEFAULT_S, workers.result_ttl_s); set
 * longer than workers.result_ttl_s, it is refused. */
#define IDEM_TTL_DEFAULT_S 86400L
static int idempotency_ttl(struct bd_config *c, struct cfg_err *err)
{
    if (c->idempotency_ttl_s == 0)
        c->idempotency_ttl_s = c->result_ttl_s < IDEM_TTL_DEFAULT_S ? c->result_ttl_s
                                                                  : IDEM_TTL_DEFAULT_S;
    if (c->idempotency_ttl_s > c->result_ttl_s)
        return cfg_fail(err, "limits.idempotency_ttl_s",
                        "must not exceed workers.result_ttl_s (%ld): a replay after the job's "
                        "record expired would find no job",
                        c->result_ttl_s);
    return 0;
}

static int derive(struct bd_config *c, struct cfg_err *err)
{
    if (derive_redis(c, err) < 0)
        return -1;
    price_source_check(&c->draft, DRAFT_PRICE_SOURCE, DRAFT_IN_PER_MTOK, DRAFT_OUT_PER_MTOK);
    price_source_check(&c->refine, REFINE_PRICE_SOURCE, REFINE_IN_PER_MTOK,
                       REFINE_OUT_PER_MTOK);
    if (c->claim_idle_ms == 0)
        c->claim_idle_ms = c->job_timeout_ms + 30000;
    if (c->claim_idle_ms <= c->job_timeout_ms)
        return cfg_fail(err, "workers.claim_idle_ms", "must exceed workers.job_timeout_ms");
    if (idempotency_ttl(c, err) < 0)
        return -1;
    if (auth_header_clash(&c->draft, "draft", err) < 0)
        return -1;
    if (auth_header_clash(&c->refine, "refine", err) < 0)
        return -1;
    return auth_header_clash(&c->judge, "judge", err);
}

/* A copy of the string at src into dst (NULL stays NULL). */
static int copy_str(char **dst, const char *src, struct cfg_err *err)
{
    if (*dst || !src)
        return 0;
    return store_str(dst, src, strlen(src), err);
}

/* What a fallback takes from its model (docs/CONFIG.md#fallbacks): its name, timeout,
 * max_concurrency and price when its entry (e) does not give them, and always the call's
 * shape (prompts, limits, streaming, logprobs, retries, breaker settings). Never the key or
 * the headers. */
static int fallback_inherit(struct model_cfg *fb, const struct model_cfg *m, const cJSON *e,
                            struct cfg_err *err)
{
    if (copy_str(&fb->name, m->name, err) < 0 || copy_str(&fb->prompt_system, m->prompt_system,
                                                           err) < 0 ||
        copy_str(&fb->prompt_user, m->prompt_user, err) < 0 ||
        copy_str(&fb->prompt_direct, m->prompt_direct, err) < 0)
        return -1;
    if (!fb->timeout_ms)
        fb->timeout_ms = m->timeout_ms;
    if (!cJSON_GetObjectItemCaseSensitive(e, "max_concurrency"))
        fb->max_concurrency = m->max_concurrency;
    if (!cJSON_GetObjectItemCaseSensitive(e, "price")) {
        fb->price_in_per_mtok = m->price_in_per_mtok;
        fb->price_out_per_mtok = m->price_out_per_mtok;
        fb->price_per_hour = m->price_per_hour;
        if (copy_str(&fb->price_source, m->price_source, err) < 0)
            return -1;
    }
    fb->max_tokens = m->max_tokens;
    fb->temperature = m->temperature;
    fb->stream = m->stream;
    fb->logprobs = m->logprobs;
    fb->max_attempts = m->max_attempts;
    fb->backoff_ms = m->backoff_ms;
    fb->breaker_failures = m->breaker_failures;
    fb->breaker_open_ms = m->breaker_open_ms;
    return 0;
}

/* An endpoint is its base_url and name: each must be another one than the model's and the
 * fallbacks' before it (the circuit breakers are kept per endpoint). */
static int fallback_duplicate(const struct model_cfg *m, size_t i)
{
    const struct model_cfg *fb = &m->fallbacks[i];

    if (strcmp(fb->base_url, m->base_url) == 0 && strcmp(fb->name, m->name) == 0)
        return 1;
    for (size_t k = 0; k < i; k++)
        if (strcmp(fb->base_url, m->fallbacks[k].base_url) == 0 &&
            strcmp(fb->name, m->fallbacks[k].name) == 0)
            return 1;
    return 0;
}

static int derive_model_fallbacks(struct model_cfg *m, const char *role, const cJSON *arr,
                                  struct cfg_err *err)
{
    char path[PATH_MAX_LEN];

    for (size_t i = 0; i < m->n_fallbacks; i++) {
        struct model_cfg *fb = &m->fallbacks[i];
        snprintf(path, sizeof path, "models.%s.fallbacks[%zu]", role, i);
        if (fallback_inherit(fb, m, cJSON_GetArrayItem(arr, (int)i), err) < 0)
            return -1;
        if (fallback_duplicate(m, i))
            return cfg_fail(err, path, "the same endpoint (base_url and name) as models.%s "
                            "or one of its fallbacks before it", role);
        snprintf(path, sizeof path, "%s.fallbacks[%zu]", role, i);
        if (auth_header_clash(fb, path, err) < 0)
            return -1;
    }
    return 0;
}

static int derive_fallbacks(struct bd_config *c, const cJSON *root, struct cfg_err *err)
{
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");

    if (c->judge.n_fallbacks) /* [] and null are fine: the described config says [] */
        return cfg_fail(err, "models.judge.fallbacks",
                        "the judge has no fallbacks (briefd eval calls one endpoint)");
    if (derive_model_fallbacks(&c->draft, "draft",
                               cJSON_GetObjectItemCaseSensitive(
                                   cJSON_GetObjectItemCaseSensitive(models, "draft"),
                                   "fallbacks"),
                               err) < 0)
        return -1;
    return derive_model_fallbacks(&c->refine, "refine",
                                  cJSON_GetObjectItemCaseSensitive(
                                      cJSON_GetObjectItemCaseSensitive(models, "refine"),
                                      "fallbacks"),
                                  err);
}

static void trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)(*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static int key_ok(const char *s, size_t len)
{
    if (len < CONFIG_KEY_MIN || len > CONFIG_KEY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

/* "tenant=key": a tenant name of 1..64 of [A-Za-z0-9_.-] before the first '=' and a valid
 * key after it. Returns the tenant's length, or 0 when the entry is a plain key (a key may
 * itself contain '=', e.g. base64 padding: then what follows is too short to be a key). */
static size_t tenant_prefix(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len && i <= 64; i++) {
        char ch = s[i];
        if (ch == '=')
            break;
        if (!isalnum((unsigned char)ch) && ch != '_' && ch != '.' && ch != '-')
            return 0;
    }
    if (i == 0 || i > 64 || i >= len || !key_ok(s + i + 1, len - i - 1))
        return 0;
    return i;
}

static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i])
            explicit_bzero(keys[i], CONFIG_KEY_MAX + 1);
        free(keys[i]);
    }
    free(keys);
}

/* Add one trimmed entry (s, len) of $env to keys[*n] (and its tenant, for "tenant=key"
 * entries, to tenants[*n]); empty entries are skipped. */
static int add_key(char **keys, char **tenants, size_t *n, const char *s, size_t len,
                   size_t idx, const char *env, const char *path, struct cfg_err *err)
{
    size_t tl;
    trim(&s, &len);
    if (len == 0)
        return 0;
    tl = tenant_prefix(s, len);
    if (tl) {
        tenants[*n] = strndup(s, tl);
        if (!tenants[*n])
            return oom(err);
        s += tl + 1;
        len -= tl + 1;
    }
    if (!key_ok(s, len))
        return cfg_fail(err, path, "$%s entry %zu: a key must be %d to %d printable ASCII "
                        "characters without spaces", env, idx, CONFIG_KEY_MIN, CONFIG_KEY_MAX);
    if (*n >= CONFIG_MAX_KEYS)
        return cfg_fail(err, path, "$%s: too many keys (at most %d)", env, CONFIG_MAX_KEYS);
    keys[*n] = calloc(1, CONFIG_KEY_MAX + 1);
    if (!keys[*n])
        return oom(err);
    memcpy(keys[*n], s, len);
    (*n)++;
    return 0;
}

static void free_tenants(char **tenants, size_t n)
{
    for (size_t i = 0; tenants && i < n; i++)
        free(tenants[i]);
    free(tenants);
}

/* Read $env (comma-separated keys, each "key" or "tenant=key") into *out / *tout / *nout.
 * Unset or empty: no keys. */
static int load_keys(const char *env, const char *path, char ***out, char ***tout,
                     size_t *nout, struct cfg_err *err)
{
    const char *val = env ? getenv(env) : NULL;
    const char *p = val;
    size_t cap = 1, n = 0, idx = 1;
    char **keys, **tenants;

    if (!val || !*val)
        return 0;
    for (const char *q = val; *q; q++)
        cap += *q == ',';
    keys = calloc(cap, sizeof *keys);
    tenants = calloc(cap, sizeof *tenants);
    if (!keys || !tenants) {
        free(keys);
        free(tenants);
        return oom(err);
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (add_key(keys, tenants, &n, p, len, idx++, env, path, err) < 0)
            goto fail;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = keys;
    *tout = tenants;
    *nout = n;
    return 0;
fail:
    free_keys(keys, cap);
    free_tenants(tenants, cap);
    return -1;
}

static int load_model_key(struct model_cfg *m, const char *path, struct cfg_err *err)
{
    const char *val = m->api_key_env ? getenv(m->api_key_env) : NULL;
    size_t len = val ? strlen(val) : 0;

    trim(&val, &len);
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)val[i]))
            return cfg_fail(err, path, "$%s contains control characters", m->api_key_env);
    return store_str(&m->api_key, val, len, err);
}

/* The environment values of {"env": ...} headers, then the "Name: value" lines sent. */
static int load_headers(struct model_cfg *m, const char *role, struct cfg_err *err)
{
    char path[PATH_MAX_LEN];

    for (size_t i = 0; i < m->n_headers; i++) {
        struct model_header *h = &m->headers[i];
        const char *val = h->env ? getenv(h->env) : NULL;
        size_t len = val ? strlen(val) : 0;
        if (!h->env)
            continue;
        trim(&val, &len);
        snprintf(path, sizeof path, "models.%s.headers.%s.env", role, h->name);
        if (len == 0)
            continue; /* unset or empty: the header is not sent (a warning at start) */
        if (!header_value_ok(val, len))
            return cfg_fail(err, path, "$%s must hold at most %d bytes of printable ASCII",
                            h->env, CONFIG_HEADER_VALUE_MAX);
        if (store_str(&h->value, val, len, err) < 0)
            return -1;
    }
    m->header_lines = calloc(m->n_headers + 1, sizeof *m->header_lines);
    if (!m->header_lines)
        return oom(err);
    for (size_t i = 0; i < m->n_headers; i++) {
        const struct model_header *h = &m->headers[i];
        if (!h->value)
            continue;
        if (asprintf(&m->header_lines[m->n_header_lines], "%s: %s", h->name, h->value) < 0)
            return oom(err);
        m->n_header_lines++;
    }
    return 0;
}

/* The keys and header values of a model's fallbacks. */
static int load_fallback_secrets(struct model_cfg *m, const char *role, struct cfg_err *err)
{
    char path[PATH_MAX_LEN], sub[48];

    for (size_t i = 0; i < m->n_fallbacks; i++) {
        snprintf(sub, sizeof sub, "%s.fallbacks[%zu]", role, i);
        snprintf(path, sizeof path, "models.%s.api_key_env", sub);
        if (load_model_key(&m->fallbacks[i], path, err) < 0 ||
            load_headers(&m->fallbacks[i], sub, err) < 0)
            return -1;
    }
    return 0;
}

#define WHSEC_PREFIX "whsec_"
#define WEBHOOK_SECRET_MIN 16
#define WEBHOOK_SECRET_MAX 128

/* webhooks.secret_env: a Standard Webhooks secret, base64 with an optional "whsec_". */
static int load_webhook_secret(struct bd_config *c, struct cfg_err *err)
{
    const char *val = c->webhook_secret_env ? getenv(c->webhook_secret_env) : NULL;
    size_t len = val ? strlen(val) : 0, n = 0;
    unsigned char buf[B64_DECODED_MAX(4 * WEBHOOK_SECRET_MAX / 3 + 8)];
    int rc;

    trim(&val, &len);
    if (len == 0)
        return 0;
    if (len > 6 && strncmp(val, WHSEC_PREFIX, 6) == 0) {
        val += 6;
        len -= 6;
    }
    rc = b64_decode(val, len, buf, sizeof buf, &n);
    if (rc != 0 || n < WEBHOOK_SECRET_MIN || n > WEBHOOK_SECRET_MAX) {
        explicit_bzero(buf, sizeof buf);
        return cfg_fail(err, "webhooks.secret_env", "$%s must hold a base64 secret of %d to %d "
                        "bytes, optionally prefixed whsec_", c->webhook_secret_env,
                        WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX);
    }
    c->webhook_secret = malloc(n);
    if (c->webhook_secret) {
        memcpy(c->webhook_secret, buf, n);
        c->webhook_secret_len = n;
    }
    explicit_bzero(buf, sizeof buf);
    return c->webhook_secret ? 0 : oom(err);
}

#define FINGERPRINT_LABEL "briefd-api-key-fingerprint-v1"

/* The HMAC key of api_key_id: from auth.fingerprint_salt_env when it holds a salt, else
 * derived from what every process of a deployment shares - the Redis it uses (host, port,
 * database, password) and its key prefix. Either way it passes through HMAC-SHA-256 under a
 * fixed label, so the salt itself is never the key. */
static int load_fingerprint_key(struct bd_config *c, struct cfg_err *err)
{
    const char *salt = c->fingerprint_salt_env ? getenv(c->fingerprint_salt_env) : NULL;
    struct sbuf b = {0};
    char *text;
    int rc;

    if (salt && *salt) {
        sbuf_adds(&b, "salt");
        sbuf_add(&b, "", 1);
        sbuf_adds(&b, salt);
    } else {
        sbuf_printf(&b, "redis%c%s%c%d%c%d%c", 0, c->redis_host, 0, c->redis_port, 0,
                    c->redis_db, 0);
        sbuf_adds(&b, c->redis_password ? c->redis_password : "");
        sbuf_add(&b, "", 1);
        sbuf_adds(&b, c->redis_prefix);
    }
    b.oom = b.oom || !b.p;
    rc = b.oom ? BD_ENOMEM
               : hash_hmac_sha256(FINGERPRINT_LABEL, strlen(FINGERPRINT_LABEL), b.p, b.len,
                                  c->fingerprint_key);
    if (b.p)
        explicit_bzero(b.p, b.len);
    text = sbuf_take(&b);
    free(text);
    return rc == 0 ? 0 : oom(err);
}

static int load_secrets(struct bd_config *c, struct cfg_err *err)
{
    if (load_keys(c->auth_keys_env, "auth.keys_env", &c->api_keys, &c->api_key_tenants,
                  &c->n_api_keys, err) < 0)
        return -1;
    if (load_keys(c->admin_keys_env, "auth.admin_keys_env", &c->admin_keys,
                  &c->admin_key_tenants, &c->n_admin_keys, err) < 0)
        return -1;
    if (load_model_key(&c->draft, "models.draft.api_key_env", err) < 0 ||
        load_model_key(&c->refine, "models.refine.api_key_env", err) < 0)
        return -1;
    if (c->redis_sentinel_password_env && getenv(c->redis_sentinel_password_env) &&
        *getenv(c->redis_sentinel_password_env) &&
        store_str(&c->redis_sentinel_password, getenv(c->redis_sentinel_password_env),
                  strlen(getenv(c->redis_sentinel_password_env)), err) < 0)
        return -1;
    if (load_model_key(&c->judge, "models.judge.api_key_env", err) < 0)
        return -1;
    if (load_headers(&c->draft, "draft", err) < 0 || load_headers(&c->refine, "refine", err) < 0 ||
        load_headers(&c->judge, "judge", err) < 0)
        return -1;
    if (load_fallback_secrets(&c->draft, "draft", err) < 0 ||
        load_fallback_secrets(&c->refine, "refine", err) < 0)
        return -1;
    if (load_webhook_secret(c, err) < 0)
        return -1;
    return load_fingerprint_key(c, err);
}

static cJSON *describe_core(const struct bd_config *c);

/* The exact cache's scope: what shapes a brief (the two models' settings, prompts
 * included, and routing), not the rest (listen, workers, tenants, the cache itself...). */
static int answer_version(struct bd_config *c, const cJSON *d)
{
    static const char *const parts[][2] = {{"models", "draft"}, {"models", "refine"},
                                           {"routing", NULL}};
    uint64_t h = HASH_FNV1A64_INIT;

    for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(d, parts[i][0]);
        char *text;
        if (parts[i][1])
            it = cJSON_GetObjectItemCaseSensitive(it, parts[i][1]);
        text = it ? cJSON_PrintUnformatted(it) : NULL;
        if (!text)
            return -1;
        h = hash_fnv1a64(hash_fnv1a64_str(h, text), "", 1);
        free(text);
    }
    snprintf(c->answer_version, sizeof c->answer_version, "%016" PRIx64, h);
    return 0;
}

static int compute_version(struct bd_config *c, struct cfg_err *err)
{
    cJSON *d = describe_core(c);
    char *text = d ? cJSON_PrintUnformatted(d) : NULL;
    int rc = text ? answer_version(c, d) : -1;

    cJSON_Delete(d);
    if (!text || rc < 0) {
        free(text);
        return oom(err);
    }
    snprintf(c->version, sizeof c->version, "%016" PRIx64, hash_fnv1a64_str(HASH_FNV1A64_INIT, text));
    free(text);
    return 0;
}

/* ---- describe ------------------------------------------------------------------------ */

static int describe_str(const struct key *k, const char *base, cJSON *out)
{
    char *shown = k->show ? k->show(base) : NULL;
    const char *s = k->show ? shown : *(char *const *)(const void *)(base + k->off);
    cJSON *item;

    if (k->show && !shown)
        return -1;
    item = s ? cJSON_AddStringToObject(out, k->name, s) : cJSON_AddNullToObject(out, k->name);
    free(shown);
    return item ? 0 : -1;
}

static int describe_num(const struct key *k, const char *base, cJSON *out)
{
    const void *slot = base + k->off;
    double v;

    switch (k->type) {
    case K_BOOL:
        return cJSON_AddBoolToObject(out, k->name, *(const int *)slot) ? 0 : -1;
    case K_DBLN:
        v = *(const double *)slot;
        if (v < 0)
            return cJSON_AddNullToObject(out, k->name) ? 0 : -1;
        break;
    case K_INT:
        v = *(const int *)slot;
        break;
    case K_LONG:
        v = (double)*(const long *)slot;
        break;
    case K_SIZE:
        v = (double)*(const size_t *)slot;
        break;
    default:
        v = *(const double *)slot;
        break;
    }
    return cJSON_AddNumberToObject(out, k->name, v) ? 0 : -1;
}

static int describe_keys(const struct bd_config *c, const struct key *keys, size_t n,
                         const char *base, cJSON *out)
{
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &keys[i];
        cJSON *sub;
        int rc;

        if (k->type == K_OBJ) {
            sub = cJSON_AddObjectToObject(out, k->name);
            rc = sub ? describe_keys(c, k->sub, k->nsub, base + k->off, sub) : -1;
        } else if (k->type == K_ROUTING) {
            sub = router_describe(c->router);
            rc = sub && cJSON_AddItemToObject(out, k->name, sub) ? 0 : -1;
            if (rc < 0)
                cJSON_Delete(sub);
        } else if (k->type == K_STR || k->type == K_STRN) {
            rc = describe_str(k, base, out);
        } else if (k->type == K_ENUM) {
            rc = cJSON_AddStringToObject(out, k->name,
                                         k->names[*(const int *)(const void *)(base + k->off)])
                     ? 0
                     : -1;
        } else if (k->type == K_CUSTOM) {
            rc = k->ops->describe(base, k->name, out);
        } else {
            rc = describe_num(k, base, out);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* What the table does not hold: how many keys are set, never their values. */
static int describe_secrets(const struct bd_config *c, cJSON *d)
{
    cJSON *auth = cJSON_GetObjectItemCaseSensitive(d, "auth");
    cJSON *models = cJSON_GetObjectItemCaseSensitive(d, "models");
    cJSON *draft = cJSON_GetObjectItemCaseSensitive(models, "draft");
    cJSON *refine = cJSON_GetObjectItemCaseSensitive(models, "refine");
    cJSON *judge = cJSON_GetObjectItemCaseSensitive(models, "judge");

    if (!cJSON_AddNumberToObject(auth, "api_keys", (double)c->n_api_keys) ||
        !cJSON_AddNumberToObject(auth, "admin_keys", (double)c->n_admin_keys))
        return -1;
    if (!(c->draft.api_key ? cJSON_AddStringToObject(draft, "api_key", "***")
                           : cJSON_AddNullToObject(draft, "api_key")))
        return -1;
    if (!(c->refine.api_key ? cJSON_AddStringToObject(refine, "api_key", "***")
                            : cJSON_AddNullToObject(refine, "api_key")))
        return -1;
    if (!(c->judge.api_key ? cJSON_AddStringToObject(judge, "api_key", "***")
                           : cJSON_AddNullToObject(judge, "api_key")))
        return -1;
    return 0;
}

static cJSON *describe_core(const struct bd_config *c)
{
    cJSON *d = cJSON_CreateObject();

    if (!d)
        return NULL;
    if (describe_keys(c, top_keys, ARRAY_LEN(top_keys), (const char *)c, d) < 0 ||
        describe_secrets(c, d) < 0) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

cJSON *config_describe(const struct bd_config *c)
{
    cJSON *d = c ? describe_core(c) : NULL;

    if (d && !cJSON_AddStringToObject(d, "version", c->version)) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* ---- what a reload cannot change ----------------------------------------------------- */

/* Top-level keys bound at start-up (docs/CONFIG.md#live-reload): the whole section. */
static const char *const restart_only[] = {"listen", "redis"};

/* The first member of section a (or b) that differs between them, as "name.member" (name when
 * they are not objects) into path; 0 when they are the same. */
static int first_change(const cJSON *a, const cJSON *b, const char *name, char *path)
{
    const cJSON *it;

    if (!cJSON_IsObject(a) || !cJSON_IsObject(b)) {
        join_path(path, "", name);
        return !cJSON_Compare(a, b, 1);
    }
    for (int side = 0; side < 2; side++) {
        const cJSON *one = side ? b : a, *two = side ? a : b;
        cJSON_ArrayForEach(it, one) {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(two, it->string);
            if (!other || !cJSON_Compare(it, other, 1)) {
                join_path(path, name, it->string);
                return 1;
            }
        }
    }
    return 0;
}

int config_restart_diff(const struct bd_config *cur, const struct bd_config *next,
                        struct cfg_err *err)
{
    cJSON *a = describe_core(cur), *b = describe_core(next);
    char path[PATH_MAX_LEN] = "";
    int changed = 0;

    if (!a || !b) {
        cJSON_Delete(a);
        cJSON_Delete(b);
        return oom(err);
    }
    for (size_t i = 0; i < ARRAY_LEN(restart_only) && !changed; i++)
        changed = first_change(cJSON_GetObjectItemCaseSensitive(a, restart_only[i]),
                               cJSON_GetObjectItemCaseSensitive(b, restart_only[i]),
                               restart_only[i], path);
    if (!changed && strcmp(cur->redis_url, next->redis_url) != 0) {
        changed = 1; /* the password: describe hides it */
        join_path(path, "", "redis.url");
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    if (!changed)
        return 0;
    return cfg_fail(err, path, "cannot change on reload (it is bound at start-up); the running "
                    "config stays - restart every process to change it");
}

/* ---- load / free --------------------------------------------------------------------- */

static void free_strings(const struct key *keys, size_t n, char *base)
{
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &keys[i];

        if (k->type == K_OBJ) {
            free_strings(k->sub, k->nsub, base + k->off);
        } else if (k->type == K_CUSTOM) {
            k->ops->free(base);
        } else if ((k->type == K_STR || k->type == K_STRN) && k->off != NOFF) {
            /* the slot's address is formed only for keys that have one (NOFF is not an
             * offset: base + NOFF would overflow) */
            char **slot = (char **)(void *)(base + k->off);
            wipe_free(*slot);
            *slot = NULL;
        }
    }
}

static void cfg_free(struct bd_config *c)
{
    if (!c)
        return;
    free_strings(top_keys, ARRAY_LEN(top_keys), (char *)c);
    wipe_free(c->listen_host);
    wipe_free(c->redis_host);
    wipe_free(c->redis_user);
    wipe_free(c->redis_password);
    wipe_free(c->redis_sentinel_password);
    wipe_free(c->draft.api_key);
    wipe_free(c->refine.api_key);
    wipe_free(c->judge.api_key);
    if (c->webhook_secret)
        explicit_bzero(c->webhook_secret, c->webhook_secret_len);
    free(c->webhook_secret);
    free_keys(c->api_keys, c->n_api_keys);
    free_keys(c->admin_keys, c->n_admin_keys);
    free_tenants(c->api_key_tenants, c->n_api_keys);
    free_tenants(c->admin_key_tenants, c->n_admin_keys);
    free(c->path);
    if (c->router)
        router_free(c->router);
    explicit_bzero(c, sizeof *c);
    free(c);
}

struct bd_config *config_load_string(const char *json, size_t len, struct cfg_err *err)
{
    struct cfg_err scratch;
    struct bd_config *c = calloc(1, sizeof *c);
    cJSON *root = NULL;

    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    if (!c) {
        oom(err);
        return NULL;
    }
    c->refcount = 1;
    if (apply_defaults(top_keys, ARRAY_LEN(top_keys), (char *)c, 0, "", err) < 0)
        goto fail;
    if (json && parse_json(json, len, &root, err) < 0)
        goto fail;
    if (root && apply_object(root, top_keys, ARRAY_LEN(top_keys), (char *)c, 0, "", err) < 0)
        goto fail;
    if (router_parse(cJSON_GetObjectItemCaseSensitive(root, "routing"), &c->router, err) < 0)
        goto fail;
    if (derive_judge(c, root, err) < 0 || derive(c, err) < 0 ||
        derive_fallbacks(c, root, err) < 0 || load_secrets(c, err) < 0 ||
        compute_version(c, err) < 0)
        goto fail;
    wipe_tree(root);
    cJSON_Delete(root);
    return c;
fail:
    wipe_tree(root);
    cJSON_Delete(root);
    cfg_free(c);
    return NULL;
}

/* Read at most CONFIG_MAX_FILE_BYTES of path into *out (malloc'd) / *len. */
static int read_file(const char *path, char **out, size_t *len, struct cfg_err *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    if (!f)
        return cfg_fail(err, "", "cannot open %s: %s", path, strerror(errno));
    buf = malloc(CONFIG_MAX_FILE_BYTES + 1);
    if (!buf) {
        oom(err);
        goto fail;
    }
    n = fread(buf, 1, CONFIG_MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        cfg_fail(err, "", "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (n > CONFIG_MAX_FILE_BYTES) {
        cfg_fail(err, "", "%s: too large (max %u bytes)", path, CONFIG_MAX_FILE_BYTES);
        goto fail;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    if (buf)
        explicit_bzero(buf, CONFIG_MAX_FILE_BYTES + 1);
    free(buf);
    fclose(f);
    return -1;
}

struct bd_config *config_load(const char *path, struct cfg_err *err)
{
    struct cfg_err scratch;
    struct bd_config *c;
    char *buf = NULL;
    size_t len = 0;

    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    if (!path)
        return config_load_string(NULL, 0, err);
    if (read_file(path, &buf, &len, err) < 0)
        return NULL;
    c = config_load_string(buf, len, err);
    explicit_bzero(buf, len);
    free(buf);
    if (!c)
        return NULL;
    c->path = strdup(path);
    if (!c->path) {
        config_unref(c);
        oom(err);
        return NULL;
    }
    return c;
}

/* --- every mistake at once (briefd check) --- */

/* The item at a JSON path like "a.b[2].c" under root, with its parent; NULL if absent. */
static cJSON *path_item(cJSON *root, const char *path, cJSON **parent)
{
    cJSON *cur = root;
    const char *p = path;
    *parent = NULL;
    while (cur && *p) {
        char name[160];
        size_t n = strcspn(p, ".[");
        if (n >= sizeof(name))
            return NULL;
        if (n > 0) {
            memcpy(name, p, n);
            name[n] = '\0';
            *parent = cur;
            cur = cJSON_GetObjectItemCaseSensitive(cur, name);
            p += n;
        } else if (*p == '[') {
            char *end;
            long i = strtol(p + 1, &end, 10);
            if (*end != ']')
                return NULL;
            *parent = cur;
            cur = cJSON_GetArrayItem(cur, (int)i);
            p = end + 1;
        }
        if (*p == '.')
            p++;
    }
    return cur;
}

/* Array elements set aside while checking, by original path and index, so that later
 * errors can be reported with the indices of the file as written. */
struct set_aside {
    size_t n;
    struct {
        char arr[160];
        long idx;
    } rm[CONFIG_MAX_REPORTED];
};

static int set_aside_has(const struct set_aside *s, const char *arr, long idx)
{
    for (size_t k = 0; k < s->n; k++)
        if (s->rm[k].idx == idx && strcmp(s->rm[k].arr, arr) == 0)
            return 1;
    return 0;
}

/* The original index of current index j in the array at original path arr: the j-th
 * element (from 0) that was not set aside. */
static long orig_index(const struct set_aside *s, const char *arr, long j)
{
    long o = -1, seen = -1;
    while (seen < j) {
        o++;
        if (!set_aside_has(s, arr, o))
            seen++;
    }
    return o;
}

/* Rewrite a current path (indices after removals) into the file's original indices. */
static void orig_path(const struct set_aside *s, const char *path, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (const char *p = path; *p && o + 1 < len;) {
        if (*p == '[') {
            char *end;
            long j = strtol(p + 1, &end, 10);
            int n = snprintf(out + o, len - o, "[%ld]", orig_index(s, out, j));
            if (n < 0 || (size_t)n >= len - o)
                break;
            o += (size_t)n;
            p = *end == ']' ? end + 1 : end;
        } else {
            out[o++] = *p++;
            out[o] = '\0';
        }
    }
}

/* Remove what the error names (or, if it is not there, what holds it) so the rest can be
 * checked. Returns 0 if something was removed. */
static int drop_path(cJSON *root, const char *path, struct set_aside *s)
{
    cJSON *parent, *item = path_item(root, path, &parent);
    char up[sizeof(((struct cfg_err *)0)->path)];
    const char *cut;
    if (item && parent) {
        const char *br = strrchr(path, '[');
        if (cJSON_IsArray(parent) && br && s->n < CONFIG_MAX_REPORTED) {
            char cur_arr[160];
            snprintf(cur_arr, sizeof(cur_arr), "%.*s", (int)(br - path), path);
            orig_path(s, cur_arr, s->rm[s->n].arr, sizeof(s->rm[0].arr));
            s->rm[s->n].idx = orig_index(s, s->rm[s->n].arr, strtol(br + 1, NULL, 10));
            s->n++;
        }
        cJSON_Delete(cJSON_DetachItemViaPointer(parent, item));
        return 0;
    }
    cut = strrchr(path, '.');
    if (!cut || strrchr(path, '[') > cut)
        cut = strrchr(path, '[');
    if (!cut || cut == path)
        return -1;
    snprintf(up, sizeof(up), "%.*s", (int)(cut - path), path);
    return drop_path(root, up, s);
}

int config_check_file(const char *path, void (*report)(const struct cfg_err *err, void *data),
                   void *data)
{
    struct cfg_err err, shown;
    struct set_aside aside;
    struct bd_config *c;
    char *buf = NULL, *text;
    size_t len = 0;
    cJSON *root = NULL;
    int errors = 0;
    memset(&err, 0, sizeof(err));
    memset(&shown, 0, sizeof(shown));
    aside.n = 0;
    if (read_file(path, &buf, &len, &err) < 0 || parse_json(buf, len, &root, &err) < 0) {
        report(&err, data);
        errors = 1;
        goto out;
    }
    for (int round = 0; round < CONFIG_MAX_REPORTED; round++) {
        struct cfg_err orig;
        text = cJSON_PrintUnformatted(root);
        c = text ? config_load_string(text, strlen(text), &err) : NULL;
        free(text);
        if (c) {
            config_unref(c);
            break;
        }
        orig = err;
        orig_path(&aside, err.path, orig.path, sizeof(orig.path));
        /* a consequence of the mistake just reported (e.g. a policy whose bad type was
         * set aside now lacks one) is not a mistake of its own */
        if (strcmp(orig.path, shown.path) != 0 || !errors) {
            report(&orig, data);
            shown = orig;
            errors++;
        }
        if (!err.path[0] || drop_path(root, err.path, &aside) != 0)
            break;
    }
out:
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
    wipe_tree(root);
    cJSON_Delete(root);
    return errors;
}


struct bd_config *config_ref(struct bd_config *c)
{
    if (c)
        c->refcount++;
    return c;
}

void config_unref(struct bd_config *c)
{
    if (!c)
        return;
    c->refcount--;
    if (c->refcount > 0)
        return;
    cfg_free(c);
}

/* ---- keys ---------------------------------------------------------------------------- */

/* 1 if the zero-padded buffers a and b (CONFIG_KEY_MAX + 1 bytes) are equal. Constant time:
 * every byte is read, no data-dependent branch. Two NUL-free strings padded with zeros are
 * equal exactly when their buffers are, so lengths need no separate compare. */
static unsigned ct_equal(const unsigned char *a, const unsigned char *b)
{
    unsigned diff = 0;

    for (size_t i = 0; i < CONFIG_KEY_MAX + 1; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    return 1u & ((diff - 1u) >> (sizeof diff * CHAR_BIT - 1));
}

/* 1 if cand (zero-padded) equals any of keys[0..n): all keys are compared, no early exit. */
static unsigned ct_any(char *const *keys, size_t n, const unsigned char *cand)
{
    volatile unsigned match = 0;

    for (size_t i = 0; i < n; i++)
        match |= ct_equal((const unsigned char *)keys[i], cand);
    return match;
}

/* Copy key into the zero-padded buf. A key too long to match stays all zeros, which no
 * configured key (at least CONFIG_KEY_MIN bytes) equals. */
static void pad_key(const char *key, unsigned char *buf)
{
    size_t len = strnlen(key, CONFIG_KEY_MAX + 1);

    memset(buf, 0, CONFIG_KEY_MAX + 1);
    if (len <= CONFIG_KEY_MAX)
        memcpy(buf, key, len);
}

static int check_key(const struct bd_config *c, const char *key, int admin_only)
{
    unsigned char cand[CONFIG_KEY_MAX + 1];
    unsigned match;

    if (!c || !key)
        return 0;
    pad_key(key, cand);
    match = ct_any(c->admin_keys, c->n_admin_keys, cand);
    if (!admin_only)
        match |= ct_any(c->api_keys, c->n_api_keys, cand);
    explicit_bzero(cand, sizeof cand);
    return (int)match;
}

int config_is_api_key(const struct bd_config *c, const char *key)
{
    return check_key(c, key, 0);
}

int config_is_admin_key(const struct bd_config *c, const char *key)
{
    return check_key(c, key, 1);
}

/* The tenant of the configured key equal to cand: every key is compared (constant time
 * in the key contents); the match selects its tenant with a mask, not a branch. */
static const char *ct_tenant(char *const *keys, char *const *tenants, size_t n,
                             const unsigned char *cand, uintptr_t found)
{
    for (size_t i = 0; i < n; i++) {
        uintptr_t mask = (uintptr_t)0 - (uintptr_t)ct_equal((const unsigned char *)keys[i], cand);
        found = (found & ~mask) | ((uintptr_t)tenants[i] & mask);
    }
    return (const char *)found;
}

const char *config_key_tenant(const struct bd_config *c, const char *key)
{
    unsigned char cand[CONFIG_KEY_MAX + 1];
    const char *t;
    if (!c || !key || !config_auth_enabled(c))
        return NULL;
    pad_key(key, cand);
    t = ct_tenant(c->api_keys, c->api_key_tenants, c->n_api_keys, cand, 0);
    t = ct_tenant(c->admin_keys, c->admin_key_tenants, c->n_admin_keys, cand, (uintptr_t)t);
    explicit_bzero(cand, sizeof cand);
    return t;
}

int config_auth_enabled(const struct bd_config *c)
{
    return c && (c->n_api_keys + c->n_admin_keys) > 0;
}

void config_key_fingerprint(const struct bd_config *c, const char *key, char *out, size_t n)
{
    unsigned char mac[HASH_SHA256_LEN];

    if (!c || !key || hash_hmac_sha256(c->fingerprint_key, sizeof c->fingerprint_key, key,
                                       strlen(key), mac) != 0) {
        snprintf(out, n, "anon");
        return;
    }
    snprintf(out, n, "key_%02x%02x%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5], mac[6], mac[7]);
    explicit_bzero(mac, sizeof mac);
}

/* ---- warnings about the environment -------------------------------------------------- */

static int env_unset(const char *env)
{
    const char *v = env ? getenv(env) : NULL;
    size_t len = v ? strlen(v) : 0;

    trim(&v, &len);
    return env && len == 0;
}

struct env_warn {
    void (*warn)(const char *path, const char *msg, void *data);
    void *data;
    int n;
};

static void env_warn(struct env_warn *w, const char *path, const char *env, const char *effect)
{
    char msg[sizeof(((struct cfg_err *)0)->msg)];

    if (!env_unset(env))
        return;
    snprintf(msg, sizeof msg, "$%s is not set: %s", env, effect);
    w->warn(path, msg, w->data);
    w->n++;
}

static void model_env_warnings(struct env_warn *w, const struct model_cfg *m, const char *role)
{
    char path[PATH_MAX_LEN];

    snprintf(path, sizeof path, "models.%s.api_key_env", role);
    env_warn(w, path, m->api_key_env, m->auth_header == MODEL_AUTH_API_KEY
                                          ? "no api-key header is sent"
                                          : "no Authorization header is sent");
    for (size_t i = 0; i < m->n_headers; i++) {
        snprintf(path, sizeof path, "models.%s.headers.%s.env", role, m->headers[i].name);
        env_warn(w, path, m->headers[i].env, "this header is not sent");
    }
}

static void fallback_env_warnings(struct env_warn *w, const struct model_cfg *m,
                                  const char *role)
{
    char sub[48];

    for (size_t i = 0; i < m->n_fallbacks; i++) {
        snprintf(sub, sizeof sub, "%s.fallbacks[%zu]", role, i);
        model_env_warnings(w, &m->fallbacks[i], sub);
    }
}

int config_env_warnings(const struct bd_config *c,
                        void (*warn)(const char *path, const char *msg, void *data), void *data)
{
    struct env_warn w = {warn, data, 0};
    const char *off = config_auth_enabled(c) ? "no keys from it"
                                             : "no keys from it; authentication is off";

    env_warn(&w, "auth.keys_env", c->auth_keys_env, off);
    env_warn(&w, "auth.admin_keys_env", c->admin_keys_env, off);
    env_warn(&w, "auth.fingerprint_salt_env", c->fingerprint_salt_env,
             "api_key_id fingerprints use the salt derived from redis.url and redis.prefix");
    model_env_warnings(&w, &c->draft, "draft");
    fallback_env_warnings(&w, &c->draft, "draft");
    model_env_warnings(&w, &c->refine, "refine");
    fallback_env_warnings(&w, &c->refine, "refine");
    env_warn(&w, "webhooks.secret_env", c->webhook_secret_env,
             "webhooks are sent without a webhook-signature");
    return w.n;
}

static const char *const fallback_roles[2][CONFIG_MAX_FALLBACKS] = {
    {"draft.fallbacks[0]", "draft.fallbacks[1]", "draft.fallbacks[2]", "draft.fallbacks[3]"},
    {"refine.fallbacks[0]", "refine.fallbacks[1]", "refine.fallbacks[2]",
     "refine.fallbacks[3]"}};

static size_t add_model(const struct model_cfg *m, int r, const struct model_cfg **models,
                        const char **roles, size_t n, size_t max)
{
    if (n < max) {
        models[n] = m;
        roles[n++] = r ? "refine" : "draft";
    }
    for (size_t i = 0; i < m->n_fallbacks && n < max; i++) {
        models[n] = &m->fallbacks[i];
        roles[n++] = fallback_roles[r][i];
    }
    return n;
}

size_t config_models(const struct bd_config *c, const struct model_cfg **models,
                     const char **roles, size_t max)
{
    size_t n = add_model(&c->draft, 0, models, roles, 0, max);

    n = add_model(&c->refine, 1, models, roles, n, max);
    if (n < max && (strcmp(c->judge.name, c->refine.name) != 0 ||
                    strcmp(c->judge.base_url, c->refine.base_url) != 0)) {
        models[n] = &c->judge;
        roles[n++] = "judge";
    }
    return n;
}

struct collect {
    struct cfg_err *out;
    int max, n;
};

static void collect_one(const struct cfg_err *err, void *data)
{
    struct collect *c = data;

    if (c->n < c->max)
        c->out[c->n] = *err;
    c->n++;
}

int config_check_collect(const char *path, struct cfg_err *out, int max)
{
    struct collect c = {out, max, 0};

    config_check_file(path, collect_one, &c);
    return c.n;
}

char *config_model_url(const struct model_cfg *m, const char *path)
{
    const char *q = strchr(m->base_url, '?');
    int n = q ? (int)(q - m->base_url) : (int)strlen(m->base_url);
    char *url;

    if (asprintf(&url, "%.*s%s%s", n, m->base_url, path, q ? q : "") < 0)
        return NULL;
    return url;
}

void config_model_call(struct mc_call *call, const struct model_cfg *m)
{
    call->api_key = m->api_key;
    call->auth = m->auth_header == MODEL_AUTH_API_KEY ? MC_AUTH_API_KEY : MC_AUTH_BEARER;
    call->headers = (const char *const *)m->header_lines;
    call->n_headers = m->n_header_lines;
    call->stream = m->stream;
    call->timeout_ms = m->timeout_ms;
    call->max_attempts = m->max_attempts;
    call->backoff_ms = m->backoff_ms;
}

char *config_mistakes_text(const struct cfg_err *errs, int n)
{
    struct sbuf b = {0};

    if (n > 1)
        sbuf_printf(&b, "%d mistakes: ", n);
    for (int i = 0; i < n; i++)
        sbuf_printf(&b, "%s%s%s%s", i ? "; " : "", errs[i].path, errs[i].path[0] ? ": " : "",
                    errs[i].msg);
    return sbuf_take(&b);
}
