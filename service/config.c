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

#include "hash.h"
#include "router.h"

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
    K_BOOL,    /* true/false, lands in an int */
    K_ROUTING, /* object handed whole to router_parse() */
    K_HOSTS,   /* array of lo..hi "host:port" strings, lands in a struct cfg_strs */
};

/* A default, per role: role 0 is everything but models.refine, which is role 1. */
struct kdef {
    double num;
    const char *str;
};

struct key;
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
    struct kdef def[2];     /* default for role 0 / role 1 */
    const struct key *sub;  /* K_OBJ: the section's keys */
    size_t nsub;
    int role;               /* K_OBJ: role of the section (-1: the parent's) */
    key_set_fn set;         /* strings: custom validation / conversion, or NULL */
    key_show_fn show;       /* strings: custom describe, or NULL */
};

#define O(f) offsetof(struct bd_config, f)
#define M(f) offsetof(struct model_cfg, f)
#define NUM(n, t, o, l, h, d) {n, t, o, l, h, {{d, NULL}, {d, NULL}}, NULL, 0, -1, NULL, NULL}
#define NUM2(n, t, o, l, h, d0, d1) \
    {n, t, o, l, h, {{d0, NULL}, {d1, NULL}}, NULL, 0, -1, NULL, NULL}
#define STR(n, t, o, l, h, d, set, show) {n, t, o, l, h, {{0, d}, {0, d}}, NULL, 0, -1, set, show}
#define STR2(n, t, o, l, h, d0, d1) {n, t, o, l, h, {{0, d0}, {0, d1}}, NULL, 0, -1, NULL, NULL}
#define OBJ(n, o, s, r) {n, K_OBJ, o, 0, 0, {{0, NULL}, {0, NULL}}, s, ARRAY_LEN(s), r, NULL, NULL}

static int set_listen(char *, const struct key *, const char *, const char *, struct cfg_err *);
static int set_redis_url(char *, const struct key *, const char *, const char *,
                         struct cfg_err *);
static int set_base_url(char *, const struct key *, const char *, const char *,
                        struct cfg_err *);
static int set_env_name(char *, const struct key *, const char *, const char *,
                        struct cfg_err *);
static char *show_listen(const char *base);
static char *show_redis_url(const char *base);

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
#define DEFAULT_BASE_URL "http://127.0.0.1:5273/v1"

static const struct key price_keys[] = {
    NUM("input_per_mtok", K_DBL, M(price_in_per_mtok), 0, INFINITY, 0),
    NUM("output_per_mtok", K_DBL, M(price_out_per_mtok), 0, INFINITY, 0),
    NUM("per_hour", K_DBL, M(price_per_hour), 0, INFINITY, 0),
};

static const struct key prompt_keys[] = {
    STR2("system", K_STR, M(prompt_system), 0, 65536, DRAFT_SYSTEM, REFINE_SYSTEM),
    STR2("user", K_STR, M(prompt_user), 1, 65536, DRAFT_USER, REFINE_USER),
};

/* One table for both models; models.draft applies it with role 0, models.refine role 1. */
static const struct key model_keys[] = {
    STR2("name", K_STR, M(name), 1, 256, "phi-4-mini", "gpt-oss-20b"),
    STR("base_url", K_STR, M(base_url), 1, 2048, DEFAULT_BASE_URL, set_base_url, NULL),
    STR("api_key_env", K_STRN, M(api_key_env), 1, 128, NULL, set_env_name, NULL),
    NUM("timeout_ms", K_INT, M(timeout_ms), 100, 600000, 60000),
    NUM2("max_tokens", K_INT, M(max_tokens), 1, 32768, 300, 600),
    NUM2("temperature", K_DBL, M(temperature), 0, 2, 0.4, 0.2),
    NUM("stream", K_BOOL, M(stream), 0, 1, 0),
    NUM2("logprobs", K_BOOL, M(logprobs), 0, 1, 1, 0),
    NUM("max_attempts", K_INT, M(max_attempts), 1, 10, 3),
    NUM("backoff_ms", K_INT, M(backoff_ms), 1, 60000, 200),
    NUM("breaker_failures", K_INT, M(breaker_failures), 1, 1000, 5),
    NUM("breaker_open_ms", K_INT, M(breaker_open_ms), 100, 3600000, 30000),
    OBJ("price", 0, price_keys, -1),
    OBJ("prompt", 0, prompt_keys, -1),
};

static const struct key models_keys[] = {
    OBJ("draft", O(draft), model_keys, 0),
    OBJ("refine", O(refine), model_keys, 1),
};

static const struct key redis_keys[] = {
    STR("url", K_STR, O(redis_url), 1, 4096, "redis://127.0.0.1:6379/0", set_redis_url,
        show_redis_url),
    STR("prefix", K_STR, O(redis_prefix), 1, 64, "briefd:", NULL, NULL),
    NUM("command_timeout_ms", K_INT, O(redis_command_timeout_ms), 100, 60000, 3000),
    {"sentinels", K_HOSTS, O(redis_sentinels), 0, 16, {{0, NULL}, {0, NULL}}, NULL, 0, -1, NULL,
     NULL},
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
    NUM("idempotency_ttl_s", K_LONG, O(idempotency_ttl_s), 60, 2592000, 86400),
};

static const struct key auth_keys[] = {
    STR("keys_env", K_STRN, O(auth_keys_env), 1, 128, "BRIEFD_API_KEYS", set_env_name, NULL),
    STR("admin_keys_env", K_STRN, O(admin_keys_env), 1, 128, "BRIEFD_ADMIN_KEYS",
        set_env_name, NULL),
};

static const struct key facade_keys[] = {
    STR("model", K_STR, O(facade_model), 1, 128, "briefd-hybrid", NULL, NULL),
};

static const struct key stats_keys[] = {
    NUM("retention_s", K_LONG, O(stats_retention_s), 60, 31536000, 604800),
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
    {"routing", K_ROUTING, O(router), 0, 0, {{0, NULL}, {0, NULL}}, NULL, 0, -1, NULL, NULL},
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

static void join_path(char *out, const char *parent, const char *name)
{
    if (parent[0])
        snprintf(out, PATH_MAX_LEN, "%s.%s", parent, name);
    else
        snprintf(out, PATH_MAX_LEN, "%s", name);
}

static int sub_role(const struct key *k, int role)
{
    return k->role >= 0 ? k->role : role;
}

static int is_integral(double d)
{
    return isfinite(d) && floor(d) == d;
}

static int parse_port(const char *s, size_t len, int *port)
{
    long v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
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
    if (colon && parse_port(colon + 1, len - (size_t)(colon + 1 - s), port) < 0)
        return "port must be between 1 and 65535";
    *host = strndup(h, hlen);
    return *host ? NULL : "out of memory";
}

static char *fmt_hostport(const char *host, int port)
{
    char buf[CONFIG_MAX_HOST + 16];
    int br = strchr(host, ':') != NULL;

    snprintf(buf, sizeof buf, "%s%s%s:%d", br ? "[" : "", host, br ? "]" : "", port);
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

static const char *redis_split(const char *url, struct redis_parts *p)
{
    const char *rest, *at, *slash;
    const char *why = NULL;

#ifdef BRIEFD_REDIS_TLS
    p->tls = strncasecmp(url, "rediss://", 9) == 0;
#else
    if (strncasecmp(url, "rediss://", 9) == 0)
        return "this build of hiredis has no TLS; run a TLS sidecar such as stunnel: see "
               "docs/REDIS.md";
#endif
    if (!p->tls && strncasecmp(url, "redis://", 8) != 0)
        return "unsupported scheme; expected redis://[[user]:password@]host[:port][/db]";
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

static char *show_redis_url(const char *base)
{
    const struct bd_config *c = (const struct bd_config *)(const void *)base;
    char *hp = fmt_hostport(c->redis_host, c->redis_port);
    char buf[400];

    if (!hp)
        return NULL;
    snprintf(buf, sizeof buf, "%s://%.128s%s%s/%d", c->redis_tls ? "rediss" : "redis",
             c->redis_user ? c->redis_user : "", c->redis_password ? ":***@" : "", hp,
             c->redis_db);
    free(hp);
    return strdup(buf);
}

static int set_base_url(char *base, const struct key *k, const char *s, const char *path,
                        struct cfg_err *err)
{
    size_t len = strlen(s);
    size_t skip = strncasecmp(s, "https://", 8) == 0 ? 8 : 7;

    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
        return cfg_fail(err, path, "expected an http:// or https:// URL");
    while (len > skip && s[len - 1] == '/')
        len--;
    if (len == skip)
        return cfg_fail(err, path, "missing host");
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)s[i]))
            return cfg_fail(err, path, "URL must not contain spaces or control characters");
    return store_str((char **)(void *)(base + k->off), s, len, err);
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
        else if (k->type != K_ROUTING && k->type != K_HOSTS)
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
    int integral = k->type != K_DBL;
    double d;

    /* a number too large for a double (1e999) parses as infinity: not a number here */
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        (integral && !is_integral(v->valuedouble)))
        return cfg_fail(err, path, integral ? "expected integer" : "expected number");
    d = v->valuedouble;
    if (!(d >= k->lo && d <= k->hi))
        return range_fail(k, path, err);
    store_num(k, base, d);
    return 0;
}

static int apply_object(const cJSON *obj, const struct key *keys, size_t n, char *base,
                        int role, const char *parent, struct cfg_err *err);

static void strs_free(struct cfg_strs *l)
{
    for (size_t i = 0; i < l->n; i++)
        wipe_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* An array of k->lo..k->hi "host:port" strings. */
static int apply_hosts(const cJSON *v, const struct key *k, char *base, const char *path,
                       struct cfg_err *err)
{
    struct cfg_strs *l = (struct cfg_strs *)(void *)(base + k->off);
    int n = cJSON_GetArraySize(v), i = 0;
    char ipath[PATH_MAX_LEN];
    if (!cJSON_IsArray(v))
        return cfg_fail(err, path, "expected an array of \"host:port\" strings");
    if (n < k->lo || n > k->hi)
        return cfg_fail(err, path, "expected %.0f to %.0f addresses", k->lo, k->hi);
    strs_free(l);
    l->v = calloc((size_t)n + 1, sizeof(*l->v));
    if (!l->v)
        return oom(err);
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        char *host = NULL;
        int port = 0;
        const char *why = cJSON_IsString(it) ? split_hostport(it->valuestring,
                              strlen(it->valuestring), 1, &host, &port) : "expected string";
        snprintf(ipath, sizeof ipath, "%.*s[%d]", (int)(sizeof ipath - 16), path, i);
        wipe_free(host);
        if (why)
            return cfg_fail(err, ipath, "%s", why);
        l->v[l->n] = strdup(it->valuestring);
        if (!l->v[l->n])
            return oom(err);
        l->n++;
    }
    return 0;
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
    case K_HOSTS:
        return apply_hosts(v, k, base, path, err);
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
    if (c->redis_sentinels.n > 0 && !c->redis_master_name)
        return cfg_fail(err, "redis.master_name", "needed with redis.sentinels");
    if (c->redis_sentinels.n == 0 && c->redis_master_name)
        return cfg_fail(err, "redis.sentinels", "needed with redis.master_name");
    return 0;
}

static int derive(struct bd_config *c, struct cfg_err *err)
{
    if (derive_redis(c, err) < 0)
        return -1;
    if (c->claim_idle_ms == 0)
        c->claim_idle_ms = c->job_timeout_ms + 30000;
    if (c->claim_idle_ms <= c->job_timeout_ms)
        return cfg_fail(err, "workers.claim_idle_ms", "must exceed workers.job_timeout_ms");
    return 0;
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

static int load_secrets(struct bd_config *c, struct cfg_err *err)
{
    if (load_keys(c->auth_keys_env, "auth.keys_env", &c->api_keys, &c->api_key_tenants,
                  &c->n_api_keys, err) < 0)
        return -1;
    if (load_keys(c->admin_keys_env, "auth.admin_keys_env", &c->admin_keys,
                  &c->admin_key_tenants, &c->n_admin_keys, err) < 0)
        return -1;
    if (load_model_key(&c->draft, "models.draft.api_key_env", err) < 0)
        return -1;
    if (c->redis_sentinel_password_env && getenv(c->redis_sentinel_password_env) &&
        *getenv(c->redis_sentinel_password_env) &&
        store_str(&c->redis_sentinel_password, getenv(c->redis_sentinel_password_env),
                  strlen(getenv(c->redis_sentinel_password_env)), err) < 0)
        return -1;
    return load_model_key(&c->refine, "models.refine.api_key_env", err);
}

static cJSON *describe_core(const struct bd_config *c);

static int compute_version(struct bd_config *c, struct cfg_err *err)
{
    cJSON *d = describe_core(c);
    char *text = d ? cJSON_PrintUnformatted(d) : NULL;

    cJSON_Delete(d);
    if (!text)
        return oom(err);
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
        } else if (k->type == K_HOSTS) {
            const struct cfg_strs *l = (const struct cfg_strs *)(const void *)(base + k->off);
            sub = cJSON_AddArrayToObject(out, k->name);
            rc = sub ? 0 : -1;
            for (size_t j = 0; sub && j < l->n; j++)
                cJSON_AddItemToArray(sub, cJSON_CreateString(l->v[j]));
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

    if (!cJSON_AddNumberToObject(auth, "api_keys", (double)c->n_api_keys) ||
        !cJSON_AddNumberToObject(auth, "admin_keys", (double)c->n_admin_keys))
        return -1;
    if (!(c->draft.api_key ? cJSON_AddStringToObject(draft, "api_key", "***")
                           : cJSON_AddNullToObject(draft, "api_key")))
        return -1;
    if (!(c->refine.api_key ? cJSON_AddStringToObject(refine, "api_key", "***")
                            : cJSON_AddNullToObject(refine, "api_key")))
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

/* ---- load / free --------------------------------------------------------------------- */

static void free_strings(const struct key *keys, size_t n, char *base)
{
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &keys[i];

        if (k->type == K_OBJ) {
            free_strings(k->sub, k->nsub, base + k->off);
        } else if (k->type == K_HOSTS) {
            strs_free((struct cfg_strs *)(void *)(base + k->off));
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
    if (derive(c, err) < 0 || load_secrets(c, err) < 0 || compute_version(c, err) < 0)
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
