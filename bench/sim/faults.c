/* faults.c - knobs, per-model overrides, rules: parse, print, resolve, match. */
#include "faults.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "bderr.h"

/* ---- the knob table ---- */

enum knob_type { KT_RATE, KT_BOOL, KT_COUNT, KT_ENUM, KT_TEXT, KT_HEADERS };

struct knob_def {
    const char *name;                   /* JSON key; flag --name with '_' -> '-' */
    enum knob_type type;
    size_t off, size;
    const char *const *values;          /* KT_ENUM: names by value; NULL first = null */
};

static const char *const k_reasoning[] = {NULL, "reasoning_content", "reasoning", "none", NULL};
static const char *const k_wrap[] = {"none", "prose", "fence", NULL};

#define KNOB(name, type, field, values) \
    {name, type, offsetof(struct knobs, field), sizeof(((struct knobs *)0)->field), values}

static const struct knob_def k_knobs[] = {
    KNOB("error_rate", KT_RATE, error_rate, NULL),
    KNOB("rate_limit_rate", KT_RATE, rate_limit_rate, NULL),
    KNOB("hang_rate", KT_RATE, hang_rate, NULL),
    KNOB("garbage_rate", KT_RATE, garbage_rate, NULL),
    KNOB("truncate_rate", KT_RATE, truncate_rate, NULL),
    KNOB("fail_next", KT_COUNT, fail_next, NULL),
    KNOB("rate_limit_next", KT_COUNT, rate_limit_next, NULL),
    KNOB("no_usage", KT_BOOL, no_usage, NULL),
    KNOB("no_logprobs", KT_BOOL, no_logprobs, NULL),
    KNOB("null_logprobs", KT_BOOL, null_logprobs, NULL),
    KNOB("harmony_leak", KT_BOOL, harmony_leak, NULL),
    KNOB("no_stream", KT_BOOL, no_stream, NULL),
    KNOB("no_stream_usage", KT_BOOL, no_stream_usage, NULL),
    KNOB("unlisted", KT_BOOL, unlisted, NULL),
    KNOB("reasoning_field", KT_ENUM, reasoning_field, k_reasoning),
    KNOB("judge_wrap", KT_ENUM, judge_wrap, k_wrap),
    KNOB("judge_out_of_range", KT_BOOL, judge_out_of_range, NULL),
    KNOB("judge_garbage", KT_BOOL, judge_garbage, NULL),
    KNOB("require_bearer", KT_TEXT, require_bearer, NULL),
    KNOB("require_headers", KT_HEADERS, require_headers, NULL),
};
#define N_KNOBS (sizeof k_knobs / sizeof k_knobs[0])

static int knob_index(const char *name)
{
    for (size_t i = 0; i < N_KNOBS; i++)
        if (strcmp(k_knobs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void *kfield(struct knobs *k, const struct knob_def *d)
{
    return (char *)k + d->off;
}

static const void *kcfield(const struct knobs *k, const struct knob_def *d)
{
    return (const char *)k + d->off;
}

static int fail(struct faults_err *err, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct faults_err *err, const char *key, const char *fmt, ...)
{
    va_list ap;

    snprintf(err->key, sizeof err->key, "%s", key);
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return BD_EINVAL;
}

static int is_integer(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
           v->valuedouble == floor(v->valuedouble);
}

static int enum_value(const char *const *values, const char *s)
{
    for (int i = 0; values[i] || i == 0; i++)
        if (values[i] && s && strcmp(values[i], s) == 0)
            return i;
    return -1;
}

/* ---- required headers ---- */

static int header_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > FAULTS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
            return 0;
    return 1;
}

/* Add (or replace) a required header: value NULL = any value. 0 or BD_EINVAL. */
static int headers_add(struct faults_headers *hs, const char *name, const char *value)
{
    struct faults_header *h = NULL;
    size_t i;

    if (!header_name_ok(name) || (value && strlen(value) > FAULTS_VALUE_MAX))
        return BD_EINVAL;
    for (i = 0; i < hs->n && !h; i++)
        if (strcasecmp(hs->h[i].name, name) == 0)
            h = &hs->h[i];
    if (!h && hs->n == FAULTS_MAX_HEADERS)
        return BD_EINVAL;
    if (!h)
        h = &hs->h[hs->n++];
    for (i = 0; name[i]; i++)
        h->name[i] = (char)tolower((unsigned char)name[i]);
    h->name[i] = '\0';
    h->any = value == NULL;
    snprintf(h->value, sizeof h->value, "%s", value ? value : "");
    return 0;
}

static int headers_parse(const cJSON *v, struct faults_headers *hs, const char *path,
                         struct faults_err *err)
{
    const cJSON *e;
    char key[160];

    memset(hs, 0, sizeof *hs);
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return fail(err, path, "expected an object of header name -> value (or null)");
    cJSON_ArrayForEach(e, v) {
        snprintf(key, sizeof key, "%.80s.%.64s", path, e->string);
        if (!cJSON_IsNull(e) && !cJSON_IsString(e))
            return fail(err, key, "expected a string (the exact value) or null (any value)");
        if (headers_add(hs, e->string, cJSON_IsString(e) ? e->valuestring : NULL) != 0)
            return fail(err, key, "a header name (token, at most %d bytes), a value of at "
                        "most %d bytes, at most %d headers", FAULTS_NAME_MAX,
                        FAULTS_VALUE_MAX, FAULTS_MAX_HEADERS);
    }
    return 0;
}

/* ---- one knob from JSON ---- */

static int knob_set_json(struct knobs *k, const struct knob_def *d, const cJSON *v,
                         const char *path, struct faults_err *err)
{
    void *p = kfield(k, d);
    int e;

    switch (d->type) {
    case KT_RATE:
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
            return fail(err, path, "expected a number in [0, 1]");
        *(double *)p = v->valuedouble;
        return 0;
    case KT_BOOL:
        if (!cJSON_IsBool(v))
            return fail(err, path, "expected a boolean");
        *(int *)p = cJSON_IsTrue(v);
        return 0;
    case KT_COUNT:
        if (!is_integer(v, 0, (double)FAULTS_MAX_COUNT))
            return fail(err, path, "expected an integer in [0, %ld]", FAULTS_MAX_COUNT);
        *(long *)p = (long)v->valuedouble;
        return 0;
    case KT_ENUM:
        e = cJSON_IsNull(v) && !d->values[0] ? 0 : enum_value(d->values, cJSON_GetStringValue(v));
        if (e < 0)
            return fail(err, path, "expected one of the documented names%s",
                        d->values[0] ? "" : " or null");
        *(int *)p = e;
        return 0;
    case KT_TEXT:
        if (!cJSON_IsNull(v) && !(cJSON_IsString(v) && strlen(v->valuestring) <= FAULTS_VALUE_MAX))
            return fail(err, path, "expected a string of at most %d bytes, or null",
                        FAULTS_VALUE_MAX);
        snprintf((char *)p, d->size, "%s", cJSON_IsString(v) ? v->valuestring : "");
        return 0;
    case KT_HEADERS:
        return headers_parse(v, (struct faults_headers *)p, path, err);
    }
    return fail(err, path, "unknown knob type");
}

/* The knobs of one object (the top level, or a per-model block); other keys are refused
 * unless skip() says they belong to the caller. */
static int knobs_parse(const cJSON *o, struct knobs *k, const char *prefix,
                       int (*skip)(const char *key), struct faults_err *err)
{
    const cJSON *v;
    char path[160];
    int i;

    memset(k, 0, sizeof *k);
    cJSON_ArrayForEach(v, o) {
        snprintf(path, sizeof path, "%.80s%.64s", prefix, v->string);
        if (skip && skip(v->string))
            continue;
        i = knob_index(v->string);
        if (i < 0)
            return fail(err, path, "unknown key");
        if (knob_set_json(k, &k_knobs[i], v, path, err) != 0)
            return BD_EINVAL;
        k->set |= 1u << i;
    }
    return 0;
}

/* ---- rules ---- */

enum rk_type { RK_MODEL, RK_KIND, RK_TEXT, RK_COUNT, RK_LONG, RK_FLAG, RK_NUM };

struct rule_key {
    const char *name;
    enum rk_type type;
    size_t off;
    unsigned effect;
    double lo, hi;
};

#define RK(name, type, field, effect, lo, hi) {name, type, offsetof(struct rule, field), effect, lo, hi}

static const struct rule_key k_rule_keys[] = {
    RK("model", RK_MODEL, model, 0, 0, 0),
    RK("kind", RK_KIND, kind, 0, 0, 0),
    RK("contains", RK_TEXT, contains, 0, 1, FAULTS_MAX_CONTAINS),
    RK("count", RK_COUNT, count, 0, 0, (double)FAULTS_MAX_COUNT),
    RK("status", RK_LONG, status, EF_FAULT, 400, 599),
    RK("hang", RK_FLAG, hang, EF_FAULT, 0, 0),
    RK("garbage", RK_FLAG, garbage, EF_FAULT, 0, 0),
    RK("stream_error_after", RK_LONG, stream_error_after, EF_FAULT, 0, 1e7),
    RK("logprob_mean", RK_NUM, logprob_mean, EF_LOGPROB, -20, 0),
    RK("max_tokens", RK_LONG, max_tokens, EF_MAX_TOKENS, 1, 1e7),
    RK("delay_ms", RK_NUM, delay_ms, EF_DELAY, 0, FAULTS_MAX_DELAY_MS),
};
#define N_RULE_KEYS (sizeof k_rule_keys / sizeof k_rule_keys[0])

static const struct rule_key *rule_key_find(const char *name)
{
    for (size_t i = 0; i < N_RULE_KEYS; i++)
        if (strcmp(k_rule_keys[i].name, name) == 0)
            return &k_rule_keys[i];
    return NULL;
}

/* A match key: a known model / kind name, a substring, a count; null = any. */
static int rule_match_key(struct rule *r, const struct rule_key *rk, const cJSON *v,
                          const char *path, struct faults_err *err)
{
    void *p = (char *)r + rk->off;
    const char *s = cJSON_GetStringValue(v);
    int i;

    if (cJSON_IsNull(v))
        return 0;   /* rule_init set "any" */
    if (rk->type == RK_MODEL || rk->type == RK_KIND) {
        i = rk->type == RK_MODEL ? model_find(s) : model_kind_find(s);
        if (i < 0)
            return fail(err, path, rk->type == RK_MODEL ? "expected a simulated model id or null"
                                                        : "expected \"chat\", \"judge\" or null");
        *(int *)p = i;
        return 0;
    }
    if (rk->type == RK_TEXT) {
        if (!s || strlen(s) < 1 || strlen(s) > FAULTS_MAX_CONTAINS)
            return fail(err, path, "expected a string of 1 to %d bytes, or null",
                        FAULTS_MAX_CONTAINS);
        snprintf((char *)p, FAULTS_MAX_CONTAINS + 1, "%s", s);
        return 0;
    }
    if (!is_integer(v, rk->lo, rk->hi))
        return fail(err, path, "expected an integer in [%.0f, %.0f], or null", rk->lo, rk->hi);
    *(long *)p = (long)v->valuedouble;
    return 0;
}

/* An effect key; sets its bit in r->effects when it has an effect. */
static int rule_effect_key(struct rule *r, const struct rule_key *rk, const cJSON *v,
                           const char *path, struct faults_err *err)
{
    void *p = (char *)r + rk->off;

    if (rk->type == RK_FLAG) {
        if (!cJSON_IsBool(v))
            return fail(err, path, "expected a boolean");
        *(int *)p = cJSON_IsTrue(v);
        r->effects |= cJSON_IsTrue(v) ? rk->effect : 0;
        return 0;
    }
    if (rk->type == RK_NUM) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= rk->lo && v->valuedouble <= rk->hi))
            return fail(err, path, "expected a number in [%g, %g]", rk->lo, rk->hi);
        *(double *)p = v->valuedouble;
    } else {
        if (!is_integer(v, rk->lo, rk->hi))
            return fail(err, path, "expected an integer in [%.0f, %.0f]", rk->lo, rk->hi);
        *(long *)p = (long)v->valuedouble;
    }
    r->effects |= rk->effect;
    return 0;
}

static void rule_init(struct rule *r)
{
    memset(r, 0, sizeof *r);
    r->model = -1;
    r->kind = -1;
    r->count = -1;
    r->stream_error_after = -1;
}

static int rule_parse(const cJSON *o, size_t idx, struct rule *r, struct faults_err *err)
{
    const struct rule_key *rk;
    const cJSON *v;
    char path[160];
    int faults = 0;

    rule_init(r);
    snprintf(path, sizeof path, "rules[%zu]", idx);
    if (!cJSON_IsObject(o))
        return fail(err, path, "expected an object");
    cJSON_ArrayForEach(v, o) {
        snprintf(path, sizeof path, "rules[%zu].%.64s", idx, v->string);
        rk = rule_key_find(v->string);
        if (!rk)
            return fail(err, path, "unknown key");
        if (rk->effect == 0 && rule_match_key(r, rk, v, path, err) != 0)
            return BD_EINVAL;
        if (rk->effect != 0 && rule_effect_key(r, rk, v, path, err) != 0)
            return BD_EINVAL;
        faults += rk->effect == EF_FAULT && !(cJSON_IsBool(v) && !cJSON_IsTrue(v));
        if (faults > 1)
            return fail(err, path, "a rule has at most one of status, hang, garbage, "
                        "stream_error_after");
    }
    snprintf(path, sizeof path, "rules[%zu]", idx);
    if (r->effects == 0)
        return fail(err, path, "a rule needs an effect: status, hang, garbage, "
                    "stream_error_after, logprob_mean, max_tokens or delay_ms");
    return 0;
}

static int rules_parse(const cJSON *v, struct faults *f, struct faults_err *err)
{
    const cJSON *e;

    f->n_rules = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > FAULTS_MAX_RULES)
        return fail(err, "rules", "expected an array of at most %d rules", FAULTS_MAX_RULES);
    cJSON_ArrayForEach(e, v) {
        if (rule_parse(e, f->n_rules, &f->rules[f->n_rules], err) != 0)
            return BD_EINVAL;
        f->n_rules++;
    }
    return 0;
}

/* ---- the whole setting ---- */

static int top_level_key(const char *key)
{
    return strcmp(key, "fail_model") == 0 || strcmp(key, "models") == 0 ||
           strcmp(key, "rules") == 0;
}

static int models_parse(const cJSON *v, struct faults *f, struct faults_err *err)
{
    const cJSON *e;
    char path[160];
    int m;

    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return fail(err, "models", "expected an object of model id -> knobs");
    cJSON_ArrayForEach(e, v) {
        snprintf(path, sizeof path, "models.%.64s", e->string);
        m = model_find(e->string);
        if (m < 0)
            return fail(err, path, "not a simulated model");
        if (!cJSON_IsObject(e))
            return fail(err, path, "expected an object of knobs");
        snprintf(path, sizeof path, "models.%.64s.", e->string);
        if (knobs_parse(e, &f->model[m], path, NULL, err) != 0)
            return BD_EINVAL;
    }
    return 0;
}

void faults_init(struct faults *f)
{
    memset(f, 0, sizeof *f);
    f->fail_model = -1;
}

int faults_parse(const cJSON *o, struct faults *out, struct faults_err *err)
{
    const cJSON *fm = cJSON_GetObjectItemCaseSensitive(o, "fail_model");

    faults_init(out);
    if (!cJSON_IsObject(o))
        return fail(err, "", "expected a JSON object");
    if (knobs_parse(o, &out->global, "", top_level_key, err) != 0)
        return BD_EINVAL;
    if (fm && !cJSON_IsNull(fm)) {
        out->fail_model = model_find(cJSON_GetStringValue(fm));
        if (out->fail_model < 0)
            return fail(err, "fail_model", "expected a simulated model id or null");
    }
    if (models_parse(cJSON_GetObjectItemCaseSensitive(o, "models"), out, err) != 0)
        return BD_EINVAL;
    return rules_parse(cJSON_GetObjectItemCaseSensitive(o, "rules"), out, err);
}

/* ---- as JSON ---- */

static void knob_json(cJSON *o, const struct knobs *k, const struct knob_def *d)
{
    const void *p = kcfield(k, d);
    const struct faults_headers *hs;
    const char *s;
    cJSON *h;

    switch (d->type) {
    case KT_RATE:
        cJSON_AddNumberToObject(o, d->name, *(const double *)p);
        break;
    case KT_BOOL:
        cJSON_AddBoolToObject(o, d->name, *(const int *)p);
        break;
    case KT_COUNT:
        cJSON_AddNumberToObject(o, d->name, (double)*(const long *)p);
        break;
    case KT_ENUM:
        s = d->values[*(const int *)p];
        if (s)
            cJSON_AddStringToObject(o, d->name, s);
        else
            cJSON_AddNullToObject(o, d->name);
        break;
    case KT_TEXT:
        s = p;
        if (s[0])
            cJSON_AddStringToObject(o, d->name, s);
        else
            cJSON_AddNullToObject(o, d->name);
        break;
    case KT_HEADERS:
        hs = p;
        h = cJSON_AddObjectToObject(o, d->name);
        for (size_t i = 0; h && i < hs->n; i++) {
            if (hs->h[i].any)
                cJSON_AddNullToObject(h, hs->h[i].name);
            else
                cJSON_AddStringToObject(h, hs->h[i].name, hs->h[i].value);
        }
        break;
    }
}

/* all: every knob (the global block); else only the knobs that are set. */
static void knobs_json(cJSON *o, const struct knobs *k, int all)
{
    for (size_t i = 0; i < N_KNOBS; i++)
        if (all || (k->set & (1u << i)))
            knob_json(o, k, &k_knobs[i]);
}

static cJSON *rule_json(const struct rule *r)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    cJSON_AddItemToObject(o, "model", r->model >= 0 ? cJSON_CreateString(model_defs[r->model].id)
                                                    : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "kind", r->kind >= 0 ? cJSON_CreateString(model_kinds[r->kind])
                                                  : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "contains", r->contains[0] ? cJSON_CreateString(r->contains)
                                                        : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "count", r->count >= 0 ? cJSON_CreateNumber((double)r->count)
                                                    : cJSON_CreateNull());
    if (r->status)
        cJSON_AddNumberToObject(o, "status", (double)r->status);
    if (r->hang)
        cJSON_AddTrueToObject(o, "hang");
    if (r->garbage)
        cJSON_AddTrueToObject(o, "garbage");
    if (r->stream_error_after >= 0)
        cJSON_AddNumberToObject(o, "stream_error_after", (double)r->stream_error_after);
    if (r->effects & EF_LOGPROB)
        cJSON_AddNumberToObject(o, "logprob_mean", r->logprob_mean);
    if (r->effects & EF_MAX_TOKENS)
        cJSON_AddNumberToObject(o, "max_tokens", (double)r->max_tokens);
    if (r->effects & EF_DELAY)
        cJSON_AddNumberToObject(o, "delay_ms", r->delay_ms);
    return o;
}

cJSON *faults_json(const struct faults *f)
{
    cJSON *o = cJSON_CreateObject(), *models, *m, *rules;

    if (!o)
        return NULL;
    knobs_json(o, &f->global, 1);
    cJSON_AddItemToObject(o, "fail_model", f->fail_model >= 0
                                               ? cJSON_CreateString(model_defs[f->fail_model].id)
                                               : cJSON_CreateNull());
    models = cJSON_AddObjectToObject(o, "models");
    for (int i = 0; models && i < MODEL_COUNT; i++) {
        if (!f->model[i].set)
            continue;
        m = cJSON_AddObjectToObject(models, model_defs[i].id);
        if (m)
            knobs_json(m, &f->model[i], 0);
    }
    rules = cJSON_AddArrayToObject(o, "rules");
    for (size_t i = 0; rules && i < f->n_rules; i++)
        cJSON_AddItemToArray(rules, rule_json(&f->rules[i]));
    return o;
}

cJSON *faults_hits_json(const struct faults *f)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; a && i < f->n_rules; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)f->rules[i].hits));
    return a;
}

void faults_clear_hits(struct faults *f)
{
    for (size_t i = 0; i < f->n_rules; i++)
        f->rules[i].hits = 0;
}

/* ---- resolution ---- */

enum { SRC_NONE = -2, SRC_GLOBAL = -1 };

/* Where knob i in force for model comes from: SRC_NONE, SRC_GLOBAL, or the model's block. */
static int source_of(const struct faults *f, int model, size_t i)
{
    uint32_t bit = 1u << i;

    if (model >= 0 && (f->model[model].set & bit))
        return model;
    if (!(f->global.set & bit))
        return SRC_NONE;
    if (model >= 0 && f->fail_model >= 0 && f->fail_model != model)
        return SRC_NONE;
    return SRC_GLOBAL;
}

void faults_effective(const struct faults *f, int model, struct knobs *out)
{
    const struct knobs *src;
    int from;

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < N_KNOBS; i++) {
        from = source_of(f, model, i);
        if (from == SRC_NONE)
            continue;
        src = from == SRC_GLOBAL ? &f->global : &f->model[from];
        memcpy(kfield(out, &k_knobs[i]), kcfield(src, &k_knobs[i]), k_knobs[i].size);
        out->set |= 1u << i;
    }
}

int faults_take(struct faults *f, int model, enum faults_counter c)
{
    int i = knob_index(c == FC_FAIL_NEXT ? "fail_next" : "rate_limit_next");
    int from = source_of(f, model, (size_t)i);
    long *v;

    if (from == SRC_NONE)
        return 0;
    v = kfield(from == SRC_GLOBAL ? &f->global : &f->model[from], &k_knobs[i]);
    if (*v <= 0)
        return 0;
    (*v)--;
    return 1;
}

static int rule_matches(const struct rule *r, int model, int kind, const char *input)
{
    if (r->count == 0)
        return 0;
    if ((r->model >= 0 && r->model != model) || (r->kind >= 0 && r->kind != kind))
        return 0;
    return !r->contains[0] || strstr(input, r->contains) != NULL;
}

static void take_effects(struct rule_effect *out, const struct rule *r)
{
    unsigned fresh = r->effects & ~out->effects;

    if (fresh & EF_FAULT) {
        out->status = r->status;
        out->hang = r->hang;
        out->garbage = r->garbage;
        out->stream_error_after = r->stream_error_after;
    }
    if (fresh & EF_LOGPROB)
        out->logprob_mean = r->logprob_mean;
    if (fresh & EF_MAX_TOKENS)
        out->max_tokens = r->max_tokens;
    if (fresh & EF_DELAY)
        out->delay_ms = r->delay_ms;
    out->effects |= fresh;
}

void faults_match(struct faults *f, int model, int kind, const char *input,
                  struct rule_effect *out)
{
    struct rule *r;

    memset(out, 0, sizeof *out);
    out->stream_error_after = -1;
    for (size_t i = 0; i < f->n_rules; i++) {
        r = &f->rules[i];
        if (!rule_matches(r, model, kind, input))
            continue;
        r->hits++;
        if (r->count > 0)
            r->count--;
        take_effects(out, r);
    }
}

/* ---- header checks ---- */

static int deny(struct faults_denial *d, int status, const char *code, const char *param,
                const char *msg)
{
    d->status = status;
    d->code = code;
    snprintf(d->param, sizeof d->param, "%s", param);
    snprintf(d->msg, sizeof d->msg, "%s", msg);
    return -1;
}

/* "Bearer KEY" (scheme case-insensitive) with KEY == want. */
static int bearer_ok(const char *v, const char *want)
{
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    v += 7;
    while (*v == ' ')
        v++;
    return strcmp(v, want) == 0;
}

int faults_check_headers(const struct knobs *k, faults_header_fn get, const void *ctx,
                         struct faults_denial *d)
{
    const struct faults_header *h;
    const char *v;
    char msg[200];

    for (size_t i = 0; i < k->require_headers.n; i++) {
        h = &k->require_headers.h[i];
        v = get(ctx, h->name);
        if (!v && strncmp(h->name, "x-portkey-", 10) == 0)
            return deny(d, 400, "missing_required_header", h->name,
                        "Either x-portkey-config or x-portkey-provider header is required");
        snprintf(msg, sizeof msg, "%s header '%s'", v ? "invalid value for" : "missing required",
                 h->name);
        if (!v)
            return deny(d, 400, "missing_required_header", h->name, msg);
        if (!h->any && strcmp(v, h->value) != 0)
            return deny(d, 401, "invalid_header_value", h->name, msg);
    }
    if (k->require_bearer[0] && !bearer_ok(get(ctx, "authorization"), k->require_bearer))
        return deny(d, 401, "invalid_api_key", "authorization",
                    get(ctx, "authorization") ? "Incorrect API key provided."
                                              : "You didn't provide an API key (Authorization: "
                                                "Bearer KEY).");
    return 0;
}

/* ---- command-line flags ---- */

/* The knob for flag name ("error-rate" -> "error_rate"), or -1. */
static int flag_knob(const char *name)
{
    char key[64];
    size_t i;

    if (strcmp(name, "require-header") == 0)
        return knob_index("require_headers");
    for (i = 0; name[i] && i + 1 < sizeof key; i++)
        key[i] = name[i] == '-' ? '_' : name[i];
    key[i] = '\0';
    if (strcmp(key, "require_headers") == 0)
        return -1;  /* spelled --require-header */
    return knob_index(key);
}

int faults_flag_arity(const char *name)
{
    int i = flag_knob(name);

    if (strcmp(name, "fail-model") == 0)
        return 1;
    if (i < 0)
        return -1;
    return k_knobs[i].type == KT_BOOL ? 0 : 1;
}

static int parse_double(const char *v, double lo, double hi, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(v, &end);
    return end != v && !*end && !errno && *out >= lo && *out <= hi ? 0 : BD_EINVAL;
}

static int header_flag(struct faults_headers *hs, const char *v)
{
    const char *eq = strchr(v, '=');
    char name[FAULTS_NAME_MAX + 1];
    size_t n = eq ? (size_t)(eq - v) : strlen(v);

    if (n == 0 || n > FAULTS_NAME_MAX)
        return BD_EINVAL;
    memcpy(name, v, n);
    name[n] = '\0';
    return headers_add(hs, name, eq ? eq + 1 : NULL);
}

int faults_flag(struct faults *f, const char *name, const char *value)
{
    int i = flag_knob(name);
    const struct knob_def *d;
    void *p;
    double x;

    if (strcmp(name, "fail-model") == 0) {
        f->fail_model = model_find(value);
        return f->fail_model >= 0 ? 0 : BD_EINVAL;
    }
    if (i < 0)
        return BD_EINVAL;
    d = &k_knobs[i];
    p = kfield(&f->global, d);
    f->global.set |= 1u << i;
    if (d->type == KT_BOOL) {
        *(int *)p = 1;
        return 0;
    }
    if (d->type == KT_ENUM) {
        *(int *)p = enum_value(d->values, value);
        return *(int *)p >= 0 ? 0 : BD_EINVAL;
    }
    if (d->type == KT_TEXT)
        return snprintf((char *)p, d->size, "%s", value) < (int)d->size ? 0 : BD_EINVAL;
    if (d->type == KT_HEADERS)
        return header_flag((struct faults_headers *)p, value);
    if (parse_double(value, 0, d->type == KT_RATE ? 1 : (double)FAULTS_MAX_COUNT, &x) != 0)
        return BD_EINVAL;
    if (d->type == KT_RATE)
        *(double *)p = x;
    else if (x == floor(x))
        *(long *)p = (long)x;
    return d->type == KT_RATE || x == floor(x) ? 0 : BD_EINVAL;
}
