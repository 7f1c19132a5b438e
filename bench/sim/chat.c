/* chat.c - POST /v1/chat/completions. */
#include "chat.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bderr.h"
#include "clock.h"
#include "hash.h"
#include "http.h"
#include "judge.h"
#include "log.h"
#include "reply.h"
#include "text.h"

#define LOG_VALUE_MAX 256       /* bytes of a logged header value or model name */
#define LOG_MAX_X_HEADERS 16    /* x-* headers logged per request */
#define LOGPROB_SPREAD_MAX 0.4  /* a rule's logprob_mean: spread min(0.4, |mean| / 2) */

/* A validated chat request; strings point into the request's cJSON tree. */
struct chat_req {
    int model;                          /* -1: unknown */
    int kind;                           /* enum model_kind */
    const char *input;                  /* the last user message */
    size_t prompt_chars;                /* bytes of every message's content */
    long max_tokens;                    /* 0 = no limit */
    int stream, include_usage, logprobs;
    uint64_t hash;                      /* FNV-1a of input */
    struct knobs k;                     /* the knobs in force for the model */
    struct rule_effect fx;              /* what the rules decided */
};

struct req_err {
    int status;
    const char *code;
    char param[80];
    char msg[200];
};

static int req_fail(struct req_err *e, int status, const char *code, const char *param,
                    const char *msg)
{
    e->status = status;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return -1;
}

/* ---- headers ---- */

static const char *header_of(const void *req, const char *name)
{
    return http_req_header(req, name);
}

int chat_check_headers(struct sim *s, struct http_req *req, int model)
{
    struct knobs k;
    struct faults_denial d;

    faults_effective(&s->faults, model, &k);
    if (faults_check_headers(&k, header_of, req, &d) == 0)
        return 0;
    http_respond_error(req, d.status, d.code, d.param, "%s", d.msg);
    return -1;
}

/* ---- validation ---- */

static int parse_messages(const cJSON *msgs, struct chat_req *cr, struct req_err *e)
{
    const cJSON *m, *role, *content;

    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return req_fail(e, 400, "invalid_messages", "messages",
                        "'messages' must be a non-empty array");
    cJSON_ArrayForEach(m, msgs) {
        role = cJSON_GetObjectItemCaseSensitive(m, "role");
        content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content))
            return req_fail(e, 400, "invalid_messages", "messages",
                            "every message needs string 'role' and 'content'");
        cr->prompt_chars += strlen(content->valuestring);
        if (strcmp(role->valuestring, "user") == 0)
            cr->input = content->valuestring;
    }
    if (!cr->input)
        return req_fail(e, 400, "invalid_messages", "messages", "no user message");
    return 0;
}

/* Absent or null: 0; a boolean: its value; else a 400 naming key (a string literal). */
static int parse_flag(const cJSON *o, const char *key, int *out, struct req_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return req_fail(e, 400, "invalid_type", key, "expected a boolean");
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_max_tokens(const cJSON *root, long *out, struct req_err *e)
{
    static const char *const keys[] = {"max_completion_tokens", "max_tokens"};
    const cJSON *v;

    *out = 0;
    for (size_t i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        if (!v || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e7))
            return req_fail(e, 400, "invalid_value", keys[i],
                            "expected an integer between 1 and 10000000");
        *out = (long)v->valuedouble;
        return 0;
    }
    return 0;
}

static int parse_model(const cJSON *root, struct chat_req *cr, struct req_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    char msg[200];

    if (!cJSON_IsString(v))
        return req_fail(e, 400, "invalid_model", "model", "'model' must be a string");
    cr->model = model_find(v->valuestring);
    if (cr->model >= 0)
        return 0;
    snprintf(msg, sizeof msg, "model '%.120s' not found", v->valuestring);
    return req_fail(e, 404, "model_not_found", "model", msg);
}

/* The json_schema name, or the type ("text", "json_object"), or NULL; -1 on a bad shape. */
static int response_format(const cJSON *root, const char **name)
{
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "response_format");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rf, "type"));
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");

    *name = NULL;
    if (!rf || cJSON_IsNull(rf))
        return 0;
    if (!type)
        return -1;
    if (strcmp(type, "json_schema") == 0) {
        *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(js, "name"));
        return cJSON_IsObject(js) && *name ? 0 : -1;
    }
    *name = type;
    return strcmp(type, "text") == 0 || strcmp(type, "json_object") == 0 ? 0 : -1;
}

static int parse_options(const cJSON *root, struct chat_req *cr, struct req_err *e)
{
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    const char *rf;

    if (parse_flag(root, "stream", &cr->stream, e) != 0 ||
        parse_flag(root, "logprobs", &cr->logprobs, e) != 0)
        return -1;
    if (so && !cJSON_IsNull(so) && !cJSON_IsObject(so))
        return req_fail(e, 400, "invalid_type", "stream_options", "expected an object");
    if (parse_flag(so, "include_usage", &cr->include_usage, e) != 0)
        return -1;
    if (t && !cJSON_IsNull(t) &&
        !(cJSON_IsNumber(t) && t->valuedouble >= 0 && t->valuedouble <= 2))
        return req_fail(e, 400, "invalid_value", "temperature", "expected a number in [0, 2]");
    if (response_format(root, &rf) != 0)
        return req_fail(e, 400, "invalid_value", "response_format",
                        "expected {\"type\": \"text\"|\"json_object\"} or {\"type\": "
                        "\"json_schema\", \"json_schema\": {\"name\": ..., \"schema\": ...}}");
    cr->kind = rf && strcmp(rf, JUDGE_SCHEMA_NAME) == 0 ? KIND_JUDGE : KIND_CHAT;
    return 0;
}

static int parse_chat(const cJSON *root, struct chat_req *cr, struct req_err *e)
{
    if (!cJSON_IsObject(root))
        return req_fail(e, 400, "invalid_json", NULL, "body must be a JSON object");
    if (parse_model(root, cr, e) != 0)
        return -1;
    if (parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), cr, e) != 0)
        return -1;
    if (parse_max_tokens(root, &cr->max_tokens, e) != 0)
        return -1;
    if (parse_options(root, cr, e) != 0)
        return -1;
    cr->include_usage = cr->include_usage && cr->stream;
    cr->hash = hash_fnv1a64_str(HASH_FNV1A64_INIT, cr->input);
    return 0;
}

/* ---- the request log ---- */

static void add_text(cJSON *o, const char *key, const char *v)
{
    char buf[LOG_VALUE_MAX + 1];

    if (!v) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    snprintf(buf, sizeof buf, "%s", v);
    cJSON_AddStringToObject(o, key, buf);
}

/* {"scheme": "Bearer", "token": "..."} or null. */
static cJSON *authorization_json(const char *v)
{
    const char *sp = v ? strchr(v, ' ') : NULL;
    char scheme[32];
    cJSON *o;

    if (!v)
        return cJSON_CreateNull();
    o = cJSON_CreateObject();
    snprintf(scheme, sizeof scheme, "%.*s", (int)(sp ? (size_t)(sp - v) : strlen(v)), v);
    add_text(o, "scheme", scheme);
    while (sp && *sp == ' ')
        sp++;
    add_text(o, "token", sp ? sp : "");
    return o;
}

/* api-key, traceparent, tracestate and every x-* header, names in lower case. */
static cJSON *headers_json(const struct http_req *req)
{
    cJSON *o = cJSON_CreateObject();
    const char *name, *value;
    char low[FAULTS_NAME_MAX + 1];
    size_t n, x = 0;

    for (size_t i = 0; o && http_req_header_at(req, i, &name, &value) == 0; i++) {
        n = strlen(name);
        if (n > FAULTS_NAME_MAX)
            continue;
        for (size_t k = 0; k <= n; k++)
            low[k] = (char)tolower((unsigned char)name[k]);
        if (strcmp(low, "api-key") != 0 && strcmp(low, "traceparent") != 0 &&
            strcmp(low, "tracestate") != 0 && strncmp(low, "x-", 2) != 0)
            continue;
        if (cJSON_HasObjectItem(o, low) || (low[0] == 'x' && x >= LOG_MAX_X_HEADERS))
            continue;
        x += low[0] == 'x';
        add_text(o, low, value);
    }
    return o;
}

static void add_number_or_null(cJSON *o, const char *key, const cJSON *v)
{
    if (cJSON_IsNumber(v))
        cJSON_AddNumberToObject(o, key, v->valuedouble);
    else
        cJSON_AddNullToObject(o, key);
}

/* What the request asked (as sent, valid or not) and how it was answered. */
static cJSON *log_entry(const struct http_req *req, const cJSON *root, int kind,
                        enum outcome o)
{
    cJSON *e = cJSON_CreateObject();
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    const char *rf = NULL;

    if (!e)
        return NULL;
    if (!mt || cJSON_IsNull(mt))
        mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    response_format(root, &rf);
    add_text(e, "model", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model")));
    add_text(e, "kind", kind >= 0 ? model_kinds[kind] : NULL);
    cJSON_AddBoolToObject(e, "stream",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream")));
    cJSON_AddBoolToObject(e, "logprobs",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "logprobs")));
    add_text(e, "response_format", rf);
    add_number_or_null(e, "max_tokens", mt);
    add_number_or_null(e, "temperature", cJSON_GetObjectItemCaseSensitive(root, "temperature"));
    cJSON_AddItemToObject(e, "authorization",
                          authorization_json(http_req_header(req, "authorization")));
    cJSON_AddItemToObject(e, "headers", headers_json(req));
    cJSON_AddStringToObject(e, "outcome", stats_outcomes[o]);
    return e;
}

/* ---- deciding ---- */

static enum outcome draw_fault(struct sim *s, const struct knobs *k)
{
    double u = sim_draw(s), acc = k->error_rate;

    if (u < acc)
        return O_ERROR;
    acc += k->rate_limit_rate;
    if (u < acc)
        return O_RATE_LIMITED;
    acc += k->hang_rate;
    if (u < acc)
        return O_HANG;
    acc += k->garbage_rate;
    if (u < acc)
        return O_GARBAGE;
    acc += k->truncate_rate;
    return u < acc ? O_TRUNCATED : O_OK;
}

static enum outcome rule_outcome(const struct chat_req *cr)
{
    const struct rule_effect *fx = &cr->fx;

    if (fx->hang)
        return O_HANG;
    if (fx->garbage)
        return O_GARBAGE;
    if (fx->stream_error_after >= 0)
        return cr->stream ? O_STREAM_ERROR : O_ERROR;
    if (fx->status == 429)
        return O_RATE_LIMITED;
    return fx->status >= 500 ? O_ERROR : O_REJECTED;
}

/* The rules first, then fail_next / rate_limit_next, then one PRNG draw against the rates. */
static enum outcome decide(struct sim *s, struct chat_req *cr)
{
    faults_match(&s->faults, cr->model, cr->kind, cr->input, &cr->fx);
    if (cr->fx.effects & EF_FAULT)
        return rule_outcome(cr);
    if (faults_take(&s->faults, cr->model, FC_FAIL_NEXT))
        return O_ERROR;
    if (faults_take(&s->faults, cr->model, FC_RATE_LIMIT_NEXT))
        return O_RATE_LIMITED;
    return draw_fault(s, &cr->k);
}

/* ---- answering ---- */

static int write_verdict(const struct chat_req *cr, struct text_answer *a)
{
    struct judge_opts o = {cr->k.judge_wrap, cr->k.judge_out_of_range, cr->k.judge_garbage};
    struct judge_scores sc;

    judge_score(cr->input, &sc);
    a->content = judge_render(&sc, &o, cr->hash, &a->len);
    if (!a->content)
        return BD_ENOMEM;
    if (!model_defs[cr->model].refine)
        return 0;
    a->reasoning = strdup("I check every number of the brief against the document, count its "
                          "words against the limit, and read it for flow and completeness.");
    return a->reasoning ? 0 : BD_ENOMEM;
}

static void logprob_target(const struct chat_req *cr, double *mean, double *spread)
{
    *mean = text_default_mean(cr->hash);
    *spread = TEXT_DEFAULT_SPREAD;
    if (!(cr->fx.effects & EF_LOGPROB))
        return;
    *mean = cr->fx.logprob_mean;
    *spread = -*mean / 2 < LOGPROB_SPREAD_MAX ? -*mean / 2 : LOGPROB_SPREAD_MAX;
}

static int generate(struct sim *s, const struct chat_req *cr, struct completion *c)
{
    long limit = cr->max_tokens;
    double mean, spread;
    int refine = model_defs[cr->model].refine, rc;

    memset(c, 0, sizeof *c);
    c->model = cr->model;
    c->created = clock_wall_ms() / 1000;
    snprintf(c->id, sizeof c->id, "chatcmpl-sim-%" PRIu64, ++s->next_id);
    rc = cr->kind == KIND_JUDGE ? write_verdict(cr, &c->a) : text_brief(cr->input, refine, &c->a);
    if (rc == 0 && refine && cr->k.harmony_leak)
        rc = text_harmony_leak(&c->a);
    if ((cr->fx.effects & EF_MAX_TOKENS) && (limit == 0 || cr->fx.max_tokens < limit))
        limit = cr->fx.max_tokens;
    if (rc == 0) {
        text_cut(&c->a, limit);
        rc = text_tokenize(&c->a);
    }
    if (rc != 0) {
        text_answer_free(&c->a);
        return rc;
    }
    c->finish = c->a.cut ? "length" : "stop";
    logprob_target(cr, &mean, &spread);
    text_logprobs(&c->a, mean, spread, cr->hash);
    c->prompt_tokens = (long)((cr->prompt_chars + 3) / 4);
    c->completion_tokens = (long)c->a.n_tok;
    return 0;
}

static const char *reasoning_key(const struct knobs *k)
{
    if (k->reasoning_field == RF_NONE)
        return NULL;
    return k->reasoning_field == RF_REASONING ? "reasoning" : "reasoning_content";
}

static void reply_options(struct sim *s, const struct chat_req *cr, enum outcome o,
                          struct reply_opts *ro)
{
    const struct knobs *k = &cr->k;

    memset(ro, 0, sizeof *ro);
    ro->stream = cr->stream;
    ro->lp = k->no_logprobs ? LP_ABSENT : (!cr->logprobs || k->null_logprobs ? LP_NULL : LP_ON);
    ro->usage = cr->stream ? cr->include_usage && !k->no_usage && !k->no_stream_usage
                           : !k->no_usage;
    ro->reasoning_key = reasoning_key(k);
    ro->trunc = o == O_TRUNCATED;
    ro->error_after = o == O_STREAM_ERROR ? cr->fx.stream_error_after : -1;
    sim_timing(s, cr->model, &ro->ttft_ms, &ro->tps);
    ro->extra_ms = (cr->fx.effects & EF_DELAY) ? cr->fx.delay_ms : 0;
}

static void serve_completion(struct sim *s, struct http_req *req, const struct chat_req *cr,
                             enum outcome o)
{
    struct stats_model *ms = &s->stats.model[cr->model];
    struct completion c;
    struct reply_opts ro;

    if (generate(s, cr, &c) != 0) {
        reply_error(s, req, cr->model, 500, "sim_oom", "out of memory", 0);
        return;
    }
    ms->prompt_tokens += (uint64_t)c.prompt_tokens;
    ms->completion_tokens += (uint64_t)c.completion_tokens;
    reply_options(s, cr, o, &ro);
    reply_completion(s, req, &c, &ro);
}

static const char *error_code(long status)
{
    switch (status) {
    case 429: return "rate_limit_exceeded";
    case 502: return "sim_bad_gateway";
    case 503: return "sim_unavailable";
    case 504: return "sim_timeout";
    default: return status >= 500 ? "sim_server_error" : "sim_rejected";
    }
}

static void serve(struct sim *s, struct http_req *req, const struct chat_req *cr,
                  enum outcome o)
{
    double delay = (cr->fx.effects & EF_DELAY) ? cr->fx.delay_ms : 0;
    long status = o == O_RATE_LIMITED ? 429 : 500;
    char msg[160];

    if ((cr->fx.effects & EF_FAULT) && cr->fx.status)
        status = cr->fx.status;
    snprintf(msg, sizeof msg, "simulated %s (" SIM_NAME ")",
             o == O_RATE_LIMITED ? "rate limit; retry later"
                                 : (cr->fx.stream_error_after >= 0 ? "failure during generation"
                                                                   : "upstream error"));
    if (o == O_ERROR || o == O_RATE_LIMITED || o == O_REJECTED)
        reply_error(s, req, cr->model, (int)status, error_code(status), msg, delay);
    else if (o == O_GARBAGE)
        reply_garbage(s, req, cr->model, delay);
    else if (o == O_HANG)
        reply_hang(s, req, cr->model);
    else
        serve_completion(s, req, cr, o);
}

/* ---- the handler ---- */

static enum outcome refusal_outcome(int status)
{
    if (status == 401)
        return O_UNAUTHORIZED;
    return status == 404 ? O_NOT_FOUND : O_BAD_REQUEST;
}

static void log_line(const struct http_req *req, const char *model, const struct chat_req *cr,
                     enum outcome o)
{
    struct log_field f[] = {
        LOG_STR("req_id", http_req_id(req)), LOG_STR("model", model),
        LOG_STR("kind", model_kinds[cr->kind]), LOG_NUM("stream", cr->stream),
        LOG_STR("outcome", stats_outcomes[o]),
    };

    log_write(LOG_INFO, f, sizeof f / sizeof f[0], "chat request");
}

/* A request refused before it reached a model: 400, 401 or 404. */
static void refuse(struct sim *s, struct http_req *req, const cJSON *root, int model,
                   const struct req_err *e)
{
    enum outcome o = refusal_outcome(e->status);

    stats_outcome(&s->stats, model, o);
    stats_log_add(&s->stats, log_entry(req, root, -1, o));
    http_respond_error(req, e->status, e->code, e->param[0] ? e->param : NULL, "%s", e->msg);
    stats_end(&s->stats, model);
}

void chat_handle(struct sim *s, struct http_req *req)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model"));
    struct chat_req cr = {.model = model_find(name)};
    struct faults_denial d;
    struct req_err e;
    enum outcome o;

    s->stats.requests++;
    stats_begin(&s->stats, cr.model);
    if (cr.model >= 0)
        s->stats.model[cr.model].requests++;
    faults_effective(&s->faults, cr.model, &cr.k);
    if (faults_check_headers(&cr.k, header_of, req, &d) != 0) {
        req_fail(&e, d.status, d.code, d.param, d.msg);
        refuse(s, req, root, cr.model, &e);
    } else if (parse_chat(root, &cr, &e) != 0) {
        refuse(s, req, root, cr.model, &e);
    } else {
        cr.stream = cr.stream && !cr.k.no_stream;
        cr.include_usage = cr.include_usage && cr.stream;
        o = decide(s, &cr);
        stats_outcome(&s->stats, cr.model, o);
        s->stats.kind[cr.kind]++;
        s->stats.model[cr.model].kind[cr.kind]++;
        s->stats.model[cr.model].streams += cr.stream ? 1 : 0;
        stats_log_add(&s->stats, log_entry(req, root, cr.kind, o));
        log_line(req, name, &cr, o);
        serve(s, req, &cr, o);
    }
    cJSON_Delete(root);
}
