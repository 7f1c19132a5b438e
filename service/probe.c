/* probe.c - briefd probe: what each configured model's server can do, and advice. */
#include "probe.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bderr.h"
#include "config.h"
#include "curlm.h"
#include "jsonx.h"
#include "mclient.h"
#include "oai.h"
#include "sbuf.h"

#define PROBE_MAX_TIMEOUT_MS 60000
#define PROBE_MAX_TOKENS 256
#define PROBE_SYSTEM "You are a connectivity check. Answer in one short sentence."
#define PROBE_USER "Reply with the single word: ready"
#define PROBE_MAX_ADVICE 8

enum step { STEP_LIST, STEP_CHAT, STEP_CHAT_PLAIN, STEP_STREAM, STEP_DONE };

/* What one model showed; -1 in a tri-state field means "not known" (not tried). */
struct probe_model {
    const struct model_cfg *m;
    const char *role;
    struct mc_call call;
    enum step step;
    char *url;
    char *body;
    int reachable;
    long http_status;
    char error[300];
    int listed;                   /* 1, 0, or -1 (GET /models failed) */
    char list_error[300];
    char listed_ids[200];         /* the ids it listed instead, for advice */
    int logprobs, logprobs_refused;
    int usage;                    /* the non-streamed answer carried usage */
    int streaming, stream_ignored, stream_usage;
    char stream_error[300];
    int reasoning_from;           /* OAI_REASONING_* bits */
    double ttft_ms, total_ms;
    int stream_timed;             /* the times come from the streamed call */
    const char *advice[PROBE_MAX_ADVICE];
    char advice_buf[PROBE_MAX_ADVICE][300];
    int n_advice;
};

struct probe {
    uv_loop_t *loop;
    struct curlm *engine;
    struct mc_ctx *mc;
    struct probe_model models[CONFIG_MAX_MODELS];
    size_t n, pending;
};

static void step_next(struct probe *p, struct probe_model *pm);

static void add_advice(struct probe_model *pm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_advice(struct probe_model *pm, const char *fmt, ...)
{
    va_list ap;

    if (pm->n_advice >= PROBE_MAX_ADVICE)
        return;
    va_start(ap, fmt);
    vsnprintf(pm->advice_buf[pm->n_advice], sizeof pm->advice_buf[0], fmt, ap);
    va_end(ap);
    pm->advice[pm->n_advice] = pm->advice_buf[pm->n_advice];
    pm->n_advice++;
}

/* --- the calls --- */

static void on_call(struct mc_call *c, int status);

static int start_call(struct probe *p, struct probe_model *pm, const char *path, int stream,
                      int logprobs)
{
    const struct model_cfg *m = pm->m;
    int max_tokens = m->max_tokens < PROBE_MAX_TOKENS ? m->max_tokens : PROBE_MAX_TOKENS;

    free(pm->url);
    free(pm->body);
    pm->body = NULL;
    pm->url = config_model_url(m, path);
    if (strcmp(path, "/models") != 0)
        pm->body = oai_build_request(m->name, PROBE_SYSTEM, PROBE_USER, max_tokens,
                                     m->temperature, stream, logprobs);
    if (!pm->url || (!pm->body && strcmp(path, "/models") != 0))
        return BD_ENOMEM;
    pm->call.data = p;
    pm->call.url = pm->url;
    pm->call.body = pm->body;
    pm->call.raw = pm->body == NULL;
    config_model_call(&pm->call, m);
    pm->call.prompt_chars = strlen(PROBE_SYSTEM) + strlen(PROBE_USER);
    pm->call.stream = stream;
    pm->call.timeout_ms = m->timeout_ms < PROBE_MAX_TIMEOUT_MS ? m->timeout_ms
                                                               : PROBE_MAX_TIMEOUT_MS;
    pm->call.max_attempts = 1;
    pm->call.backoff_ms = 1;
    pm->call.deadline_ms = 0;
    return mc_call_start(p->mc, &pm->call, on_call);
}

/* GET /models: is the configured name among data[].id? */
static void took_list(struct probe_model *pm, int status)
{
    cJSON *root, *data, *item;
    struct sbuf ids = {0};
    char *text;

    pm->listed = -1;
    if (status != 0) {
        snprintf(pm->list_error, sizeof pm->list_error, "%s", pm->call.err);
        return;
    }
    root = cJSON_ParseWithLength(pm->call.raw_text, pm->call.raw_len);
    data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsArray(data)) {
        snprintf(pm->list_error, sizeof pm->list_error, "the answer has no data[] list");
    } else {
        pm->listed = 0;
        cJSON_ArrayForEach(item, data) {
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "id"));
            if (id && strcmp(id, pm->m->name) == 0)
                pm->listed = 1;
            else if (id)
                sbuf_printf(&ids, "%s%s", ids.len ? ", " : "", id);
        }
    }
    text = sbuf_take(&ids);
    snprintf(pm->listed_ids, sizeof pm->listed_ids, "%s", text ? text : "");
    free(text);
    cJSON_Delete(root);
}

static void took_chat(struct probe_model *pm, int status)
{
    const struct oai_result *r = &pm->call.res;

    pm->http_status = pm->call.http_status;
    if (status != 0) {
        snprintf(pm->error, sizeof pm->error, "%s (%s)", pm->call.err,
                 mc_fail_name(pm->call.fail));
        return;
    }
    pm->reachable = 1;
    pm->error[0] = '\0';
    pm->logprobs = !pm->logprobs_refused && r->has_logprobs && r->n_logprobs > 0;
    pm->usage = !r->usage_estimated;
    pm->reasoning_from |= r->reasoning_from;
    pm->ttft_ms = pm->call.ttft_ms;
    pm->total_ms = pm->call.elapsed_ms;
}

static void took_stream(struct probe_model *pm, int status)
{
    const struct oai_result *r = &pm->call.res;

    pm->stream_ignored = pm->call.stream_ignored;
    if (status != 0 || pm->stream_ignored) {
        pm->streaming = 0;
        snprintf(pm->stream_error, sizeof pm->stream_error, "%s",
                 status != 0 ? pm->call.err
                             : "the server answered a streamed request with a plain JSON body");
        return;
    }
    pm->streaming = 1;
    pm->stream_usage = !r->usage_estimated;
    pm->reasoning_from |= r->reasoning_from;
    if (pm->call.ttft_ms >= 0) {
        pm->ttft_ms = pm->call.ttft_ms;
        pm->total_ms = pm->call.elapsed_ms;
        pm->stream_timed = 1;
    }
}

static void on_call(struct mc_call *c, int status)
{
    struct probe *p = c->data;
    struct probe_model *pm = (struct probe_model *)(void *)((char *)c -
                                                            offsetof(struct probe_model, call));

    switch (pm->step) {
    case STEP_LIST:
        took_list(pm, status);
        pm->step = STEP_CHAT;
        break;
    case STEP_CHAT:
        took_chat(pm, status);
        /* a 4xx to a request asking for logprobs: ask again without them */
        pm->step = status != 0 && c->fail == MC_FAIL_HTTP_4XX ? STEP_CHAT_PLAIN
                   : pm->reachable                          ? STEP_STREAM
                                                            : STEP_DONE;
        break;
    case STEP_CHAT_PLAIN:
        took_chat(pm, status);
        pm->logprobs_refused = pm->reachable;
        pm->logprobs = 0;
        pm->step = pm->reachable ? STEP_STREAM : STEP_DONE;
        break;
    default:
        took_stream(pm, status);
        pm->step = STEP_DONE;
        break;
    }
    step_next(p, pm);
}

static void step_next(struct probe *p, struct probe_model *pm)
{
    int rc = 0;

    mc_call_reset(&pm->call);
    if (pm->step == STEP_LIST)
        rc = start_call(p, pm, "/models", 0, 0);
    else if (pm->step == STEP_CHAT || pm->step == STEP_CHAT_PLAIN)
        rc = start_call(p, pm, "/chat/completions", 0, pm->step == STEP_CHAT);
    else if (pm->step == STEP_STREAM)
        rc = start_call(p, pm, "/chat/completions", 1, !pm->logprobs_refused);
    if (rc != 0) {
        snprintf(pm->error, sizeof pm->error, "could not start the call: %s", bd_strerror(rc));
        pm->step = STEP_DONE;
    }
    if (pm->step == STEP_DONE)
        p->pending--;
}

/* --- advice --- */

static void advise_reach(struct probe_model *pm)
{
    if (pm->http_status == 401 || pm->http_status == 403)
        add_advice(pm, "the server refused the credentials: check api_key_env, auth_header "
                   "(bearer or api-key) and headers");
    else if (pm->http_status == 404)
        add_advice(pm, "nothing answers at %s: check base_url (everything before "
                   "/chat/completions) and name", pm->url ? pm->url : pm->m->base_url);
    else if (pm->http_status >= 400)
        add_advice(pm, "the server refused the request (HTTP %ld): check name, base_url, "
                   "keys and headers", pm->http_status);
    else
        add_advice(pm, "no usable answer from %s: is the server running and is base_url "
                   "right?", pm->m->base_url);
}

static void advise(struct probe_model *pm)
{
    if (!pm->reachable) {
        advise_reach(pm);
        return;
    }
    if (pm->listed == 0)
        add_advice(pm, "GET /models does not list '%s'%s%s: check name", pm->m->name,
                   pm->listed_ids[0] ? "; it lists " : "", pm->listed_ids);
    if (pm->logprobs_refused)
        add_advice(pm, "the server refuses the logprobs parameter: set logprobs: false");
    if (!pm->logprobs && strcmp(pm->role, "draft") == 0)
        add_advice(pm, "no logprobs come back: the confidence policy gives its on_missing "
                   "verdict on every draft; set on_missing deliberately (abstain when other "
                   "policies should decide)%s", pm->m->logprobs && !pm->logprobs_refused
                                                     ? ", and logprobs: false saves asking"
                                                     : "");
    if (!pm->streaming)
        add_advice(pm, "streaming does not work (%s): %s", pm->stream_error,
                   pm->m->stream ? "set stream: false" : "keep stream: false");
    else if (!pm->stream_usage)
        add_advice(pm, "the stream carries no usage: with stream: true token counts are "
                   "estimated (about 4 bytes a token); stream: false gives exact counts%s",
                   pm->usage ? "" : " only if the server sends usage at all");
    if (!pm->usage && (!pm->streaming || !pm->stream_usage))
        add_advice(pm, "the server sends no usage: token counts and costs are estimates");
    if (pm->reasoning_from & OAI_REASONING_HARMONY)
        add_advice(pm, "harmony channels leak into content (briefd keeps the final channel): "
                   "enable the server's reasoning parser (llama.cpp --jinja)");
}

/* --- the report --- */

static const char *reasoning_name(int from)
{
    if (from & OAI_REASONING_CONTENT)
        return "reasoning_content";
    if (from & OAI_REASONING_FIELD)
        return "reasoning";
    if (from & OAI_REASONING_HARMONY)
        return "harmony";
    return from & OAI_REASONING_PARTS ? "content parts" : "none";
}

static const char *yn(int v)
{
    return v > 0 ? "yes" : v == 0 ? "no" : "unknown";
}

static void print_text(const struct probe_model *pm)
{
    printf("%s model %s at %s\n", pm->role, pm->m->name, pm->m->base_url);
    if (pm->reachable)
        printf("  reachable     yes (HTTP %ld)\n", pm->http_status);
    else
        printf("  reachable     no: %s\n", pm->error);
    if (pm->listed >= 0)
        printf("  listed        %s (GET /models)\n", yn(pm->listed));
    else
        printf("  listed        unknown (GET /models: %s)\n", pm->list_error);
    if (pm->reachable) {
        printf("  logprobs      %s%s\n", yn(pm->logprobs),
               pm->logprobs_refused ? " (the parameter is refused)" : "");
        printf("  usage         %s\n", yn(pm->usage));
        printf("  streaming     %s\n", yn(pm->streaming));
        printf("  stream usage  %s\n", pm->streaming ? yn(pm->stream_usage) : "-");
        printf("  reasoning     %s\n", reasoning_name(pm->reasoning_from));
        printf("  ttft          %.1f ms%s\n", pm->ttft_ms,
               pm->stream_timed ? "" : " (first byte of a non-streamed answer)");
        printf("  total         %.1f ms\n", pm->total_ms);
    }
    for (int i = 0; i < pm->n_advice; i++)
        printf("  advice        %s\n", pm->advice[i]);
    if (pm->n_advice == 0)
        printf("  advice        none: the configuration suits this server\n");
}

static void json_tri(cJSON *o, const char *key, int v)
{
    if (v < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddBoolToObject(o, key, v);
}

static cJSON *model_json(const struct probe_model *pm)
{
    cJSON *o = cJSON_CreateObject(), *adv;
    int r = pm->reachable;

    cJSON_AddStringToObject(o, "role", pm->role);
    cJSON_AddStringToObject(o, "name", pm->m->name);
    cJSON_AddStringToObject(o, "base_url", pm->m->base_url);
    cJSON_AddBoolToObject(o, "reachable", r);
    if (r)
        cJSON_AddNullToObject(o, "error");
    else
        cJSON_AddStringToObject(o, "error", pm->error);
    jsonx_add_number(o, "http_status", (double)pm->http_status);
    json_tri(o, "listed", pm->listed);
    json_tri(o, "logprobs", r ? pm->logprobs : -1);
    json_tri(o, "logprobs_refused", r ? pm->logprobs_refused : -1);
    json_tri(o, "usage", r ? pm->usage : -1);
    json_tri(o, "streaming", r ? pm->streaming : -1);
    json_tri(o, "stream_usage", r && pm->streaming ? pm->stream_usage : -1);
    if (r)
        cJSON_AddStringToObject(o, "reasoning", reasoning_name(pm->reasoning_from));
    else
        cJSON_AddNullToObject(o, "reasoning");
    if (r && pm->ttft_ms >= 0)
        jsonx_add_number(o, "ttft_ms", pm->ttft_ms);
    else
        cJSON_AddNullToObject(o, "ttft_ms");
    if (r)
        jsonx_add_number(o, "total_ms", pm->total_ms);
    else
        cJSON_AddNullToObject(o, "total_ms");
    adv = cJSON_AddArrayToObject(o, "advice");
    for (int i = 0; i < pm->n_advice; i++)
        cJSON_AddItemToArray(adv, cJSON_CreateString(pm->advice[i]));
    return o;
}

static int report(const struct probe *p, int json)
{
    cJSON *root = json ? cJSON_CreateObject() : NULL, *arr = NULL;
    int ok = 1;
    char *text;

    if (root)
        arr = cJSON_AddArrayToObject(root, "models");
    for (size_t i = 0; i < p->n; i++) {
        ok = ok && p->models[i].reachable;
        if (json)
            cJSON_AddItemToArray(arr, model_json(&p->models[i]));
        else
            print_text(&p->models[i]);
    }
    if (json) {
        cJSON_AddBoolToObject(root, "ok", ok);
        text = jsonx_print(root);
        printf("%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(root);
    } else {
        printf("%s\n", ok ? "probe: every model answered"
                          : "probe: a model did not answer (exit 1)");
    }
    return ok ? 0 : 1;
}

/* --- running it --- */

static void closed(void *data)
{
    (void)data;
}

static void run(struct probe *p, const struct bd_config *c)
{
    const struct model_cfg *models[CONFIG_MAX_MODELS];
    const char *roles[CONFIG_MAX_MODELS];

    p->n = config_models(c, models, roles, CONFIG_MAX_MODELS);
    for (size_t i = 0; i < p->n; i++) {
        struct probe_model *pm = &p->models[i];
        pm->m = models[i];
        pm->role = roles[i];
        pm->listed = -1;
        pm->ttft_ms = -1;
        pm->step = STEP_LIST;
        p->pending++;
        step_next(p, pm);
    }
    uv_run(p->loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < p->n; i++)
        advise(&p->models[i]);
}

int probe_main(const char *cfg_path, int json)
{
    struct probe p;
    uv_loop_t loop;
    struct cfg_err err;
    struct bd_config *c = config_load(cfg_path, &err);
    int rc = 1;

    if (!c) {
        cfg_err_print(stderr, cfg_path ? cfg_path : "briefd: embedded config", &err);
        return 1;
    }
    memset(&p, 0, sizeof p);
    uv_loop_init(&loop);
    p.loop = &loop;
    if (curlm_global_init() == 0 && curlm_new(&loop, &p.engine) == 0 &&
        mc_ctx_new(&loop, p.engine, &p.mc) == 0) {
        run(&p, c);
        rc = report(&p, json);
    } else {
        fprintf(stderr, "briefd probe: out of memory\n");
    }
    if (p.mc)
        mc_ctx_close(p.mc);
    if (p.engine)
        curlm_close(p.engine, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    curlm_global_cleanup();
    for (size_t i = 0; i < p.n; i++) {
        mc_call_reset(&p.models[i].call);
        free(p.models[i].url);
        free(p.models[i].body);
    }
    config_unref(c);
    return rc;
}
