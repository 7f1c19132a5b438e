/* api.c - HTTP API handlers: jobs, events, health, config, models. */
#include "api.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bderr.h"
#include "clock.h"
#include "config.h"
#include "dash.h"
#include "facade.h"
#include "handoff.h"
#include "jscan.h"
#include "hash.h"
#include "http.h"
#include "jsonx.h"
#include "sbuf.h"
#include "list.h"
#include "log.h"
#include "mclient.h"
#include "feedback.h"
#include "metrics.h"
#include "openapi.h"
#include "pipeline.h"
#include "shadow.h"
#include "stats.h"
#include "store.h"
#include "svc.h"
#include "tenant.h"
#include "trace.h"
#include "webhook.h"
#include "worker.h"

#define SSE_MAX_MS (30u * 60u * 1000u)   /* one events stream lives at most 30 minutes */
#define SSE_POLL_MS 5000u                 /* and re-checks its job this often */
#define LISTEN_TTL_MS 30000               /* it marks its job listened to (store_listen) for
                                             this long, renewed at each re-check */
#define RECENT_MAX 256                    /* terminal events remembered ... */
#define RECENT_MAX_BYTES (4u << 20)       /* ... within this many bytes */
#define LATER_MS 1                        /* an answered facade run's record waits at most
                                             this long (api_later) ... */
#define LATER_MAX 64                      /* ... and at most this many wait */

/* A parked request. Freed when the response is done (or the client left) and no Redis
 * call made for it is still outstanding. */
struct rctx {
    struct api *api;
    struct list_node node;
    struct http_req *req;         /* NULL once answered or aborted */
    char id[JOB_ID_LEN + 1];
    int sse;
    int ops;                      /* Redis calls in flight */
    int parked;                   /* listening for events on id */
    int submitted;                /* POST: the job exists */
    uv_timer_t timer;
    int timer_open;
    uint64_t started;
    int closing;
    char last[16];                /* events: the last status sent */
    char body_hash[17];           /* POST with Idempotency-Key: hash of the normalized body */
    int facade;                   /* /v1/chat/completions: answer as chat.completion */
    struct facade_req fr;
    int replayed;                 /* answer with Idempotent-Replayed: true */
    long window_s, step_s;        /* GET /v1/stats */
    char dim[16];
    char *meta_text;              /* POST: the stored metadata (the queued job object) */
    char scope[80];               /* GET by a tenant key: only that tenant's jobs ("" all) */
    int vetted;                   /* the job was read and is in scope */
    struct facade_run *run;       /* the facade's pipeline run, or NULL */
    struct sbuf text;             /* events: the brief's text sent in delta events */
    struct feedback *fb;          /* POST .../feedback: the validated body, or NULL */
    char *fb_item;                /* ... and the item stored (answered with 201) */
    char kid[32];                 /* ... the caller's api_key_id */
    struct tenant_limits tlim;    /* POST: the job's tenant limits (for a 429's message);
                                     GET /v1/tenants/{id}: that tenant's */
    const char *tlim_src;         /* "by_id" | "default" | NULL (static) */
    char *tenant;                 /* GET /v1/tenants/{id}: the id */
    cJSON *stats;                 /* GET /v1/stats?by=tenant: the answer, awaiting spend */
};

/* The last terminal events, so a submit whose job ended before its own reply came back
 * (the event and the reply travel on different connections) still answers at once. */
struct recent {
    char id[JOB_ID_LEN + 1];
    uint64_t hash;                /* of id: compared first (every ?wait submit looks here) */
    char *job;
    size_t len;
};

struct api {
    struct svc *svc;
    struct list_node list;        /* parked requests */
    unsigned n;
    struct recent *recent;        /* RECENT_MAX terminal events */
    size_t recent_next;
    int stopping;
    void (*stop_cb)(void *);
    void *stop_data;
    struct list_node later;       /* answered facade runs whose record is still to make */
    unsigned nlater;
    uv_check_t *later_check;      /* malloc'd (freed when closed): the loop's check phase */
    uv_timer_t *later_timer;      /* ... and the LATER_MS bound */
};

static void on_store_event(void *data, const char *id, const char *status, const char *job,
                           size_t len);
static void later_flush(struct api *api);
static void on_later_check(uv_check_t *h);
static void on_later_timer(uv_timer_t *t);

static void on_handle_freed(uv_handle_t *h) { free(h); }

int api_new(struct svc *svc, struct api **out)
{
    struct api *api = calloc(1, sizeof(*api));
    int rc;
    if (!api)
        return BD_ENOMEM;
    api->svc = svc;
    list_init(&api->list);
    list_init(&api->later);
    api->recent = calloc(RECENT_MAX, sizeof(*api->recent));
    api->later_check = malloc(sizeof(*api->later_check));
    api->later_timer = malloc(sizeof(*api->later_timer));
    rc = api->recent && api->later_check && api->later_timer
             ? store_watch(svc->store, on_store_event, api) : BD_ENOMEM;
    if (rc != 0) {
        free(api->recent);
        free(api->later_check);
        free(api->later_timer);
        free(api);
        return rc;
    }
    uv_check_init(svc->loop, api->later_check);
    uv_timer_init(svc->loop, api->later_timer);
    api->later_check->data = api;
    api->later_timer->data = api;
    *out = api;
    return 0;
}

void api_free(struct api *api)
{
    /* api_stop made the waiting records; none wait since (api_later makes them at once) */
    uv_close((uv_handle_t *)api->later_check, on_handle_freed);
    uv_close((uv_handle_t *)api->later_timer, on_handle_freed);
    store_unwatch(api->svc->store);
    for (size_t i = 0; i < RECENT_MAX; i++)
        free(api->recent[i].job);
    free(api->recent);
    free(api);
}

/* --- request contexts --- */

static void rctx_maybe_free(struct rctx *c);

static void on_rctx_timer_closed(uv_handle_t *h)
{
    struct rctx *c = h->data;
    c->timer_open = 0;
    rctx_maybe_free(c);
}

static void rctx_maybe_free(struct rctx *c)
{
    struct api *api = c->api;
    if (c->req || c->ops > 0 || c->run)
        return;
    if (c->timer_open) {
        if (!c->closing) {
            c->closing = 1;
            uv_close((uv_handle_t *)&c->timer, on_rctx_timer_closed);
        }
        return;
    }
    list_unlink(&c->node);
    api->n--;
    cJSON_Delete(c->stats);
    free(c->meta_text);
    free(c->tenant);
    free(sbuf_take(&c->text));
    if (c->fb)
        feedback_free(c->fb);
    free(c->fb);
    free(c->fb_item);
    free(c);
    if (api->stopping && api->n == 0 && api->stop_cb) {
        void (*cb)(void *) = api->stop_cb;
        api->stop_cb = NULL;
        cb(api->stop_data);
    }
}

static void pipe_job_of_run(struct rctx *c, struct pipe_job **pj);

static void on_abort(struct http_req *req, void *data)
{
    struct rctx *c = data;
    struct pipe_job *pj = NULL;
    (void)req;
    c->req = NULL;
    pipe_job_of_run(c, &pj);
    if (pj) { /* the facade's client left: stop its models (the run's end frees c) */
        pipe_cancel(pj);
        return;
    }
    rctx_maybe_free(c);
}

static struct rctx *rctx_new(struct api *api, struct http_req *req, const char *id)
{
    struct rctx *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->api = api;
    c->req = req;
    snprintf(c->id, sizeof(c->id), "%s", id);
    list_push_front(&api->list, &c->node);
    api->n++;
    uv_timer_init(api->svc->loop, &c->timer);
    c->timer.data = c;
    c->timer_open = 1;
    c->started = uv_now(api->svc->loop);
    http_req_on_abort(req, on_abort, c);
    return c;
}

/* The response is complete: detach from the request. */
static void rctx_done(struct rctx *c)
{
    if (c->req)
        http_req_on_abort(c->req, NULL, NULL);
    c->req = NULL;
    c->parked = 0;
    uv_timer_stop(&c->timer);
    rctx_maybe_free(c);
}

static void respond_redis_down(struct http_req *req);
static void respond_store_error(struct api *api, struct http_req *req, int status);

/* A parked request whose Redis call is being made: NULL after answering 503/500. */
static struct rctx *rctx_begin(struct api *api, struct http_req *req, const char *id)
{
    struct rctx *c;
    if (!store_ready(api->svc->store)) {
        respond_store_error(api, req, BD_EREDIS_DOWN);
        return NULL;
    }
    c = rctx_new(api, req, id);
    if (!c)
        http_respond_error(req, 500, "out_of_memory", NULL, "out of memory");
    return c;
}

/* After issuing c's Redis call with result rc: count it, or answer 503 if it failed. */
static void rctx_sent(struct rctx *c, int rc)
{
    if (rc == 0) {
        c->ops++;
        return;
    }
    if (c->req)
        respond_store_error(c->api, c->req, rc);
    rctx_done(c);
}

/* In a Redis callback: 1 if the client is still there to answer; else c may be freed. */
static int rctx_reply(struct rctx *c)
{
    c->ops--;
    if (c->req)
        return 1;
    rctx_maybe_free(c);
    return 0;
}

/* --- helpers --- */

static int method_is(struct http_req *req, const char *m)
{
    const char *have = http_req_method(req);
    return strcmp(have, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(have, "HEAD") == 0);
}

static void bad_method(struct http_req *req, const char *allow)
{
    http_resp_header(req, "Allow", strcmp(allow, "GET") == 0 ? "GET, HEAD" : allow);
    http_respond_error(req, 405, "method_not_allowed", NULL, "%s is not allowed here; use %s",
                       http_req_method(req), allow);
}


static const char *bearer(struct http_req *req)
{
    const char *h = http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return h;
}

/* 0 if allowed, else answered with 401/403. */
static int check_auth(struct api *api, struct http_req *req, int admin)
{
    const struct bd_config *cfg = api->svc->cfg;
    const char *key;
    if (!config_auth_enabled(cfg))
        return 0;
    key = bearer(req);
    if (!key || !*key) {
        http_resp_header(req, "WWW-Authenticate", "Bearer");
        http_respond_error(req, 401, "missing_api_key", NULL,
                           "an API key is required: send 'Authorization: Bearer KEY'");
        return -1;
    }
    if (admin ? config_is_admin_key(cfg, key) : config_is_api_key(cfg, key))
        return 0;
    if (admin && config_is_api_key(cfg, key)) {
        http_respond_error(req, 403, "admin_required", NULL,
                           "this route needs an admin key");
        return -1;
    }
    http_resp_header(req, "WWW-Authenticate", "Bearer");
    http_respond_error(req, 401, "invalid_api_key", NULL, "the API key is not valid");
    return -1;
}

/* The tenant whose jobs and figures the caller may see, or NULL for everything: keys bound to
 * a tenant ("tenant=KEY") see their tenant's only; untenanted and admin keys (and everyone,
 * without auth) see all. */
static const char *view_tenant(struct api *api, struct http_req *req)
{
    const struct bd_config *cfg = api->svc->cfg;
    const char *key = config_auth_enabled(cfg) ? bearer(req) : NULL;
    if (!key || !*key || config_is_admin_key(cfg, key))
        return NULL;
    return config_key_tenant(cfg, key);
}

/* Whether c may see job: a scoped request sees only its tenant's jobs. */
static int in_scope(const struct rctx *c, const cJSON *job)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(job, "tenant");
    return !c->scope[0] || (cJSON_IsString(t) && strcmp(t->valuestring, c->scope) == 0);
}

/* Parse ?wait=S (0..max). Returns seconds (0 when absent) or -1 after answering 400. */
static double parse_wait(struct http_req *req, int max_s)
{
    const char *w = http_req_query_param(req, "wait");
    char *end;
    double v;
    if (!w || !*w)
        return 0;
    v = strtod(w, &end);
    if (*end != '\0' || !(v >= 0) || v > 60) {
        http_respond_error(req, 400, "invalid_value", "wait",
                           "query parameter 'wait' must be a number of seconds from 0 to 60");
        return -1;
    }
    return v > max_s ? max_s : v;
}

static int is_terminal(const char *status)
{
    return strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0;
}

/* The x-briefd-* headers (docs/API.md#response-headers) from obj, a job object or a run's
 * output: x-briefd-job-id, and once they are known x-briefd-route (the decision) and - once
 * finished - x-briefd-cost-usd (cost_usd.total). */
static void briefd_headers_of(struct http_req *req, const char *id, int finished,
                              const cJSON *obj)
{
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(obj, "route"), "decision");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(obj, "cost_usd"), "total");
    char num[40];
    if (id)
        http_resp_header(req, "x-briefd-job-id", id);
    if (cJSON_IsString(dec))
        http_resp_header(req, "x-briefd-route", dec->valuestring);
    if (finished && cJSON_IsNumber(cost)) {
        jsonx_number(cost->valuedouble, num, sizeof(num));
        http_resp_header(req, "x-briefd-cost-usd", num);
    }
}

static void briefd_headers(struct http_req *req, const cJSON *job)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "id");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "status");
    briefd_headers_of(req, cJSON_IsString(id) ? id->valuestring : NULL,
                      cJSON_IsString(st) && is_terminal(st->valuestring), job);
}

/* briefd_headers for a terminal job's text as briefd printed it, read with the scanner (no
 * tree: a ?wait answer is sent as the text it arrived as). -1, nothing set, when the text has
 * a shape the scanner leaves to cJSON (a name or value with escapes, a malformed value). */
static int briefd_headers_scan(struct http_req *req, const char *job, size_t len)
{
    const char *e = job + len, *id, *dec = NULL, *num = NULL, *v, *end;
    const char *route = NULL, *cost = NULL;
    size_t idn, decn = 0;
    int odd = 0;
    char buf[64], num_s[40];
    if (jscan_plain_string(jscan_member(job, e, "id", &odd), e, &id, &idn) != 0 ||
        idn >= sizeof(buf))
        return -1;
    route = jscan_member(job, e, "route", &odd);
    cost = jscan_member(job, e, "cost_usd", &odd);
    if (route && (v = jscan_member(route, e, "decision", &odd)) != NULL &&
        (jscan_plain_string(v, e, &dec, &decn) != 0 || decn >= sizeof(buf)))
        return -1;
    if (cost && (num = jscan_member(cost, e, "total", &odd)) != NULL &&
        (*num == '-' || (*num >= '0' && *num <= '9'))) {
        double d = jsonx_read_number(num, (char **)&end);
        if (end == num || !isfinite(d))
            return -1;
        jsonx_number(d, num_s, sizeof(num_s));
    } else {
        num = NULL;
    }
    if (odd)
        return -1;
    memcpy(buf, id, idn);
    buf[idn] = '\0';
    http_resp_header(req, "x-briefd-job-id", buf);
    if (dec) {
        memcpy(buf, dec, decn);
        buf[decn] = '\0';
        http_resp_header(req, "x-briefd-route", buf);
    }
    if (num)
        http_resp_header(req, "x-briefd-cost-usd", num_s);
    return 0;
}

static void respond_job(struct http_req *req, cJSON *job)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "status");
    int done = cJSON_IsString(st) && is_terminal(st->valuestring);
    briefd_headers(req, job);
    http_respond_json(req, done ? 200 : 202, job);
}

static void respond_redis_down(struct http_req *req)
{
    http_resp_header(req, "Retry-After", "1");
    http_respond_error(req, 503, "redis_unavailable", NULL,
                       "the job store is unreachable; nothing was queued, try again");
}

/* 503 for a store call that failed with status: what Redis said when it refused the command
 * (out of memory, a read-only replica ...), else why it is unreachable (refused, timed out,
 * handshake refused). */
static void respond_store_error(struct api *api, struct http_req *req, int status)
{
    const char *said = store_last_reply_error(api->svc->store);
    const char *why = store_last_error(api->svc->store);

    http_resp_header(req, "Retry-After", "1");
    if (status == BD_EREDIS_REPLY && said[0])
        http_respond_error(req, 503, "redis_error", NULL,
                           "the job store refused the command: %.200s; nothing was queued, "
                           "try again later", said);
    else if (why[0])
        http_respond_error(req, 503, "redis_unavailable", NULL,
                           "the job store is unreachable (%.200s); nothing was queued, try "
                           "again", why);
    else
        respond_redis_down(req);
}

/* --- fetching a job for a parked request --- */

static void sse_event(struct rctx *c, const char *event, const char *data)
{
    char head[64];
    int n = snprintf(head, sizeof(head), "event: %s\ndata: ", event);
    http_stream_write(c->req, head, (size_t)n);
    http_stream_write(c->req, data, strlen(data));
    http_stream_write(c->req, "\n\n", 2);
}

static void sse_open(struct rctx *c);

/* A delta event as published by a worker: payload {"text": "..."} (JSON, len bytes). */
static void sse_delta(struct rctx *c, const char *payload, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(payload, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (cJSON_IsString(t) && t->valuestring[0]) {
        sse_open(c);
        sbuf_adds(&c->text, t->valuestring);
        http_stream_write(c->req, "event: delta\ndata: ", 19);
        http_stream_write(c->req, payload, len);
        http_stream_write(c->req, "\n\n", 2);
    }
    cJSON_Delete(o);
}

/* Before the done event of a succeeded job: the brief's text no delta event carried yet
 * (all of it for a kept draft). After a refinement that failed once text went out, the
 * brief is the draft, not a continuation: no delta then - the done event is what counts. */
static void sse_rest(struct rctx *c, const cJSON *job)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(job, "result"), "brief");
    struct sbuf d = {0};
    char *payload;
    size_t n, sent = c->text.len;
    if (!cJSON_IsString(b))
        return;
    n = strlen(b->valuestring);
    if (n <= sent || (sent > 0 && memcmp(b->valuestring, c->text.p, sent) != 0))
        return;
    sbuf_adds(&d, "{\"text\":");
    jsonx_write_string(&d, b->valuestring + sent);
    sbuf_addc(&d, '}');
    payload = sbuf_take(&d);
    if (payload)
        sse_event(c, "delta", payload);
    free(payload);
}

static void on_sse_timer(uv_timer_t *t);

/* An events stream starts (200, its timer runs) once its job is known to exist. */
static int sse_started(const struct rctx *c)
{
    return uv_is_active((const uv_handle_t *)&c->timer);
}

static void sse_open(struct rctx *c)
{
    if (sse_started(c))
        return;
    http_resp_header(c->req, "Cache-Control", "no-cache");
    http_resp_header(c->req, "x-briefd-job-id", c->id);
    http_stream_begin(c->req, 200, "text/event-stream");
    http_stream_write(c->req, ": briefd job events\n\n", 21);
    store_listen(c->api->svc->store, c->id, LISTEN_TTL_MS);
    uv_timer_start(&c->timer, on_sse_timer, SSE_POLL_MS, SSE_POLL_MS);
}

/* Send a status event unless it repeats the last one sent. */
static void sse_status(struct rctx *c, const char *status)
{
    char buf[128];
    sse_open(c);
    if (strcmp(c->last, status) == 0)
        return;
    snprintf(c->last, sizeof(c->last), "%s", status);
    snprintf(buf, sizeof(buf), "{\"id\":\"%s\",\"status\":\"%s\"}", c->id, status);
    sse_event(c, "status", buf);
}

/* /v1/chat/completions: the finished run (out: its pipe_out_json) as a completion, its
 * failure as an OpenAI error. */
static void facade_answer(struct rctx *c, const char *id, const char *alias, int succeeded,
                          const cJSON *out)
{
    briefd_headers_of(c->req, id, 1, out);
    if (!succeeded) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(out, "error");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        http_respond_error(c->req, 502, cJSON_IsString(code) ? code->valuestring : "job_failed",
                           NULL, "%s", cJSON_IsString(msg) ? msg->valuestring : "job failed");
    } else {
        char *text = facade_completion(id, out, alias);
        if (text)
            http_respond(c->req, 200, "application/json", text, strlen(text));
        else
            http_respond_error(c->req, 500, "out_of_memory", NULL, "out of memory");
        free(text);
    }
    rctx_done(c);
}

static void feedback_found(struct rctx *c, const cJSON *job);

/* Answer (or keep waiting) with the job object (status < 0: why there is none). Takes job. */
static void answer(struct rctx *c, int status, cJSON *job)
{
    if (c->sse && (status == 0 || sse_started(c))) { /* else: a plain 404 / 503 below */
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "status");
        sse_open(c);
        if (status != 0 || !cJSON_IsString(st)) {
            if (status == BD_ENOTFOUND) {
                sse_event(c, "error", "{\"code\":\"job_not_found\"}");
                http_stream_end(c->req);
                rctx_done(c);
            }
            cJSON_Delete(job);
            return;
        }
        sse_status(c, st->valuestring);
        if (is_terminal(st->valuestring)) {
            char *text = jsonx_print(job);
            sse_rest(c, job);
            sse_event(c, "done", text ? text : "{}");
            free(text);
            http_stream_end(c->req);
            rctx_done(c);
        }
        cJSON_Delete(job);
        return;
    }
    if (status == BD_ENOTFOUND) {
        http_respond_error(c->req, 404, "job_not_found", "id", "no job with id '%s'", c->id);
        rctx_done(c);
    } else if (status != 0) {
        respond_store_error(c->api, c->req, status);
        rctx_done(c);
    } else if (c->fb) {
        feedback_found(c, job); /* the job as GET would return it: feedback goes on it */
    } else {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "status");
        int done = cJSON_IsString(st) && is_terminal(st->valuestring);
        /* Still running and still inside the wait: keep waiting. */
        if (done || !c->parked || !uv_is_active((uv_handle_t *)&c->timer)) {
            if (c->submitted) {
                char loc[64];
                snprintf(loc, sizeof(loc), "/v1/jobs/%s", c->id);
                http_resp_header(c->req, "Location", loc);
            }
            if (c->replayed)
                http_resp_header(c->req, "Idempotent-Replayed", "true");
            respond_job(c->req, job);
            rctx_done(c);
        }
    }
    cJSON_Delete(job);
}

/* Answer with a finished job's object as published (JSON text, sent as is). */
static void answer_done(struct rctx *c, const char *status, const char *job, size_t len)
{
    cJSON *parsed;
    if (c->sse) {
        cJSON *o = cJSON_ParseWithLength(job, len);
        sse_status(c, status);
        if (o)
            sse_rest(c, o);
        cJSON_Delete(o);
        http_stream_write(c->req, "event: done\ndata: ", 18);
        http_stream_write(c->req, job, len);
        http_stream_write(c->req, "\n\n", 2);
        http_stream_end(c->req);
        rctx_done(c);
        return;
    }
    if (c->submitted) {
        char loc[64];
        snprintf(loc, sizeof(loc), "/v1/jobs/%s", c->id);
        http_resp_header(c->req, "Location", loc);
    }
    if (c->replayed)
        http_resp_header(c->req, "Idempotent-Replayed", "true");
    if (briefd_headers_scan(c->req, job, len) != 0) {
        parsed = cJSON_ParseWithLength(job, len);
        briefd_headers(c->req, parsed);
        cJSON_Delete(parsed);
    }
    http_respond(c->req, 200, "application/json", job, len);
    rctx_done(c);
}

static void on_job_for_ctx(void *data, int status, cJSON *job)
{
    struct rctx *c = data;
    if (!rctx_reply(c)) {
        cJSON_Delete(job);
        return;
    }
    if (status == 0 && !in_scope(c, job)) {
        cJSON_Delete(job);
        job = NULL;
        status = BD_ENOTFOUND; /* another tenant's job: as if there were none */
    }
    c->vetted = status == 0;
    answer(c, status, job);
}

static void ctx_fetch(struct rctx *c)
{
    int rc = store_get(c->api->svc->store, c->id, on_job_for_ctx, c);
    if (rc == 0) {
        c->ops++;
        return;
    }
    if (c->req && !(c->sse && sse_started(c))) {
        respond_redis_down(c->req);
        rctx_done(c);
    }
}

static void on_wait_timer(uv_timer_t *t)
{
    struct rctx *c = t->data;
    if (!c->req)
        return;
    c->parked = 0;
    ctx_fetch(c);
}

static void on_sse_timer(uv_timer_t *t)
{
    struct rctx *c = t->data;
    if (!c->req)
        return;
    if (uv_now(c->api->svc->loop) - c->started > SSE_MAX_MS) {
        sse_event(c, "timeout", "{\"message\":\"events stream closed after 30 minutes\"}");
        http_stream_end(c->req);
        rctx_done(c);
        return;
    }
    http_stream_write(c->req, ": keep-alive\n\n", 14);
    store_listen(c->api->svc->store, c->id, LISTEN_TTL_MS);
    ctx_fetch(c);
}


static void recent_add(struct api *api, const char *id, const char *job, size_t len)
{
    struct recent *r = &api->recent[api->recent_next];
    if (len > RECENT_MAX_BYTES / RECENT_MAX)
        return;
    free(r->job);
    r->job = malloc(len);
    if (!r->job)
        return;
    memcpy(r->job, job, len);
    r->len = len;
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->hash = hash_fnv1a64_str(HASH_FNV1A64_INIT, r->id);
    api->recent_next = (api->recent_next + 1) % RECENT_MAX;
}

static cJSON *recent_find(const struct api *api, const char *id)
{
    uint64_t h = hash_fnv1a64_str(HASH_FNV1A64_INIT, id);
    for (size_t i = 0; i < RECENT_MAX; i++)
        if (api->recent[i].hash == h && api->recent[i].job && strcmp(api->recent[i].id, id) == 0)
            return cJSON_ParseWithLength(api->recent[i].job, api->recent[i].len);
    return NULL;
}

/* A job event (or, id NULL, the subscription came back: events may have been missed).
 * A terminal event carries the job object: waiting requests answer from it. */
static void on_store_event(void *data, const char *id, const char *status, const char *job,
                           size_t len)
{
    struct api *api = data;
    struct list_node *it, *tmp;
    if (id && job && is_terminal(status))
        recent_add(api, id, job, len);
    LIST_FOR_EACH_SAFE(it, tmp, &api->list) {
        struct rctx *c = LIST_ENTRY(it, struct rctx, node);
        /* a submit whose reply has not come yet has no id to fetch: its reply looks for
         * the job itself (reading "" would answer 404 for a job that exists) */
        if (!c->req || !c->parked || c->run || !c->id[0])
            continue;
        if (!id) {
            ctx_fetch(c);
        } else if (strcmp(c->id, id) != 0) {
            continue;
        } else if (c->scope[0] && !c->vetted) {
            if (strcmp(status, "delta") != 0)
                ctx_fetch(c); /* not yet known to be this tenant's: read it first */
        } else if (strcmp(status, "delta") == 0) {
            if (c->sse && job)
                sse_delta(c, job, len);
        } else if (!is_terminal(status)) {
            if (c->sse)
                sse_status(c, status);
        } else if (job) {
            answer_done(c, status, job, len);
        } else {
            ctx_fetch(c);
        }
    }
}

/* --- POST /v1/jobs --- */

/* Same key seen before: the same body replays that job, another body is a conflict. */
static void idempotent_replay(struct rctx *c, const char *id, const char *hash)
{
    if (!id || !hash || strcmp(hash, c->body_hash) != 0) {
        http_respond_error(c->req, 409, "idempotency_conflict", "Idempotency-Key",
                           "this Idempotency-Key was already used with a different request "
                           "body");
        rctx_done(c);
        return;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->submitted = 1;
    c->replayed = 1;
    ctx_fetch(c); /* answers now, or keeps waiting (?wait) for that job */
}

/* 429 for a tenant over its jobs_per_minute (Retry-After: until its oldest admission of the
 * last minute leaves the window) or past its daily budget (Retry-After: until midnight
 * UTC). */
static void respond_tenant_limited(struct http_req *req, enum store_submit_rc rc,
                                   long retry_s, const struct tenant_limits *l)
{
    char ra[24];
    snprintf(ra, sizeof(ra), "%ld", retry_s < 1 ? 1 : retry_s);
    http_resp_header(req, "Retry-After", ra);
    if (rc == STORE_TENANT_RATE)
        http_respond_error(req, 429, "tenant_rate_limited", NULL,
                           "the tenant is over its limit of %ld jobs per minute "
                           "(tenants: jobs_per_minute); retry in %s s", l->jobs_per_minute, ra);
    else
        http_respond_error(req, 429, "tenant_budget_exhausted", NULL,
                           "the tenant has spent its daily budget of %g USD (tenants: "
                           "daily_budget_usd); new jobs are refused until midnight UTC",
                           l->daily_budget_usd);
}

static void on_submitted(void *data, int status, enum store_submit_rc rc, long depth,
                         const char *id, int64_t created_ms, const char *hash)
{
    struct rctx *c = data;
    cJSON *done, *queued;
    (void)depth;
    if (!rctx_reply(c))
        return;
    if (status == BD_EREPLICATION) {
        http_resp_header(c->req, "Retry-After", "1");
        http_respond_error(c->req, 503, "replication_timeout", NULL,
                           "the job was written but fewer than redis.min_replicas_acked replicas "
                           "acknowledged it in time; retry with the same Idempotency-Key");
        rctx_done(c);
        return;
    }
    if (status != 0) {
        respond_store_error(c->api, c->req, status);
        rctx_done(c);
        return;
    }
    if (rc == STORE_FULL) {
        http_resp_header(c->req, "Retry-After", "5");
        http_respond_error(c->req, 429, "queue_full", NULL,
                           "the queue is full (limits.max_queue = %ld); try again later",
                           c->api->svc->cfg->max_queue);
        rctx_done(c);
        return;
    }
    if (rc == STORE_DUPLICATE) {
        idempotent_replay(c, id, hash);
        return;
    }
    if (rc == STORE_TENANT_RATE || rc == STORE_TENANT_BUDGET) {
        respond_tenant_limited(c->req, rc, depth, &c->tlim);
        rctx_done(c);
        return;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->submitted = 1;
    done = c->parked ? recent_find(c->api, id) : NULL;
    if (done) {
        answer(c, 0, done); /* it ended before this reply came back */
        return;
    }
    if (c->parked && uv_is_active((uv_handle_t *)&c->timer))
        return; /* ?wait: the job's events (or the timer) answer */
    char loc[64];
    snprintf(loc, sizeof(loc), "/v1/jobs/%s", c->id);
    http_resp_header(c->req, "Location", loc);
    http_resp_header(c->req, "x-briefd-job-id", c->id);
    /* built only here: a ?wait submit answered at its job's end never sends it */
    queued = store_job_object(id, "queued", created_ms, 0, c->meta_text, NULL, 0);
    if (queued)
        http_respond_json(c->req, 202, queued);
    else
        http_respond_error(c->req, 500, "out_of_memory", NULL, "out of memory");
    cJSON_Delete(queued);
    rctx_done(c);
}

/* A fingerprint naming the caller's API key without revealing it ("anon" without auth). */
static void key_id(struct api *api, struct http_req *req, char *out, size_t len)
{
    const char *key = config_auth_enabled(api->svc->cfg) ? bearer(req) : NULL;
    if (!key || !*key)
        snprintf(out, len, "anon");
    else
        config_key_fingerprint(api->svc->cfg, key, out, len);
}

/* A key configured as "tenant=key" submits for that tenant: it replaces any
 * metadata.tenant the body claims (the dashboard's tenant dimension follows it). */
static void key_tenant(struct api *api, struct http_req *req, struct job_req *jr)
{
    const char *t = config_key_tenant(api->svc->cfg, bearer(req));
    if (!t)
        return;
    if (!jr->metadata)
        jr->metadata = cJSON_CreateObject();
    if (!jr->metadata)
        return;
    cJSON_DeleteItemFromObjectCaseSensitive(jr->metadata, "tenant");
    cJSON_AddStringToObject(jr->metadata, "tenant", t);
}

/* Idempotency-Key: NULL when absent, "" after answering 400, else the key. */
static const char *idempotency_key(struct http_req *req)
{
    const char *k = http_req_header(req, "Idempotency-Key");
    size_t n;
    if (!k)
        return NULL;
    n = strlen(k);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e)
            n = 0;
    if (n < 1 || n > 128) {
        http_respond_error(req, 400, "invalid_idempotency_key", "Idempotency-Key",
                           "Idempotency-Key must be 1 to 128 printable ASCII characters");
        return "";
    }
    return k;
}

static cJSON *meta_json(const struct job_req *jr, const char *tenant)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "priority", job_priority_name(jr->priority));
    cJSON_AddNumberToObject(m, "max_words", jr->max_words);
    if (jr->metadata)
        cJSON_AddItemToObject(m, "metadata", cJSON_Duplicate(jr->metadata, 1));
    else
        cJSON_AddItemToObject(m, "metadata", cJSON_CreateObject());
    if (tenant && *tenant)
        cJSON_AddStringToObject(m, "tenant", tenant);
    return m;
}

static int content_type_json(struct http_req *req)
{
    const char *ct = http_req_header(req, "Content-Type");
    return ct && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

static void enqueue(struct api *api, struct http_req *req, struct job_req *jr, double wait,
                    const char *idem);
static void run_facade(struct api *api, struct http_req *req, struct job_req *jr,
                       const struct facade_req *fr);

/* --- callback_url at submit: the webhook target policy (webhook_vet) --- */

/* A submit waiting for its callback_url's host name to resolve. It never touches the API
 * once the process is stopping (the API may be gone by then): it answers 503 if its client
 * is still there. */
struct vet {
    struct api *api;
    struct svc *svc;
    struct http_req *req;         /* NULL once the client left */
    struct job_req jr;            /* the validated request (owned) */
    double wait;
    char *idem;                   /* Idempotency-Key copy, or NULL */
};

static void vet_abort(struct http_req *req, void *data)
{
    struct vet *v = data;
    (void)req;
    v->req = NULL;
}

static void on_vetted(void *data, int status, const char *why)
{
    struct vet *v = data;
    if (v->req) {
        http_req_on_abort(v->req, NULL, NULL);
        if (v->svc->stopping) {
            http_resp_header(v->req, "Retry-After", "1");
            http_respond_error(v->req, 503, "shutting_down", NULL, "this briefd is shutting down");
        } else if (status != 0) {
            http_respond_error(v->req, 422, "invalid_value", "callback_url",
                               "field 'callback_url' is not an allowed target: %s", why);
        } else {
            enqueue(v->api, v->req, &v->jr, v->wait, v->idem);
        }
    }
    job_req_free(&v->jr);
    free(v->idem);
    free(v);
}

/* Check jr's callback_url, then queue it (now, or once its host name has resolved); takes
 * jr over. */
static void vet_callback(struct api *api, struct http_req *req, struct job_req *jr,
                         double wait, const char *idem)
{
    char why[200];
    struct vet *v;
    int rc = webhook_vet_now(api->svc->cfg, jr->callback_url, why, sizeof(why));
    if (rc != 1) {
        if (rc == 0)
            enqueue(api, req, jr, wait, idem);
        else
            http_respond_error(req, 422, "invalid_value", "callback_url",
                               "field 'callback_url' is not an allowed target: %s", why);
        job_req_free(jr);
        return;
    }
    v = calloc(1, sizeof(*v));
    if (!v || webhook_vet_resolve(api->svc->loop, api->svc->cfg, jr->callback_url, on_vetted,
                                  v) != 0) {
        http_respond_error(req, 503, "resolver_unavailable", "callback_url",
                           "the callback_url host could not be looked up; try again");
        free(v);
        job_req_free(jr);
        return;
    }
    *v = (struct vet){api, api->svc, req, *jr, wait, idem ? strdup(idem) : NULL};
    memset(jr, 0, sizeof(*jr));
    http_req_on_abort(req, vet_abort, v);
}

static void post_job(struct api *api, struct http_req *req)
{
    const struct bd_config *cfg = api->svc->cfg;
    struct job_req jr;
    struct job_verr ve;
    size_t len;
    const char *body = http_req_body(req, &len);
    double wait;
    const char *idem;

    if (!content_type_json(req)) {
        http_respond_error(req, 415, "unsupported_media_type", NULL,
                           "Content-Type must be application/json");
        return;
    }
    wait = parse_wait(req, cfg->max_wait_s);
    if (wait < 0)
        return;
    idem = idempotency_key(req);
    if (idem && !*idem)
        return;
    if (job_req_parse(body, len, cfg->max_text_bytes, &jr, &ve) != 0) {
        http_respond_error(req, ve.status, ve.code, ve.param[0] ? ve.param : NULL, "%s",
                           ve.msg);
        return;
    }
    if (jr.callback_url) {
        vet_callback(api, req, &jr, wait, idem);
        return;
    }
    enqueue(api, req, &jr, wait, idem);
    job_req_free(&jr);
}

/* POST /v1/chat/completions: the pipeline run here and now, answered as an OpenAI
 * completion (not queued: like any proxy, a request whose process dies is not answered;
 * every finished run is recorded and counted, answered or not). */
static void post_chat(struct api *api, struct http_req *req)
{
    const struct bd_config *cfg = api->svc->cfg;
    struct job_req jr;
    struct job_verr ve;
    struct facade_req fr;
    size_t len;
    const char *body = http_req_body(req, &len);
    size_t unrecorded;

    if (!content_type_json(req)) {
        http_respond_error(req, 415, "unsupported_media_type", NULL,
                           "Content-Type must be application/json");
        return;
    }
    /* An answered run is recorded after its answer; while Redis is slow or unreachable the
     * records wait in memory. Past the bound, no new run: every answered one is recorded. */
    unrecorded = store_finishes_pending(api->svc->store) + api->nlater;
    if (unrecorded >= (size_t)cfg->facade_max_unrecorded) {
        http_resp_header(req, "Retry-After", "1");
        http_respond_error(req, 503, "records_backlog", NULL,
                           "%zu answered requests of this briefd wait for Redis to store their "
                           "records (facade.max_unrecorded: %d); Redis is slow or unreachable, "
                           "try again", unrecorded, cfg->facade_max_unrecorded);
        return;
    }
    if (facade_parse(body, len, cfg->facade_model, cfg->max_text_bytes, &jr, &fr, &ve) != 0) {
        http_respond_error(req, ve.status, ve.code, ve.param[0] ? ve.param : NULL, "%s",
                           ve.msg);
        return;
    }
    run_facade(api, req, &jr, &fr);
    job_req_free(&jr);
}

/* The request's id and W3C trace context, kept with the job and sent upstream
 * (docs/API.md#request-ids-and-tracing): a traceparent that is not valid is ignored, and so
 * is a tracestate without one. */
static void add_trace(cJSON *mj, struct http_req *req)
{
    char tp[TRACE_PARENT_LEN + 1];
    const char *ts = http_req_header(req, "tracestate");
    cJSON_AddStringToObject(mj, "request_id", http_req_id(req));
    if (!trace_parent_ok(http_req_header(req, "traceparent"), tp))
        return;
    cJSON_AddStringToObject(mj, "traceparent", tp);
    if (trace_state_ok(ts))
        cJSON_AddStringToObject(mj, "tracestate", ts);
}

/* The stored request and metadata of a validated job, as JSON text (caller frees). With
 * body_hash (17 bytes), the hash an Idempotency-Key compares: of the request and of the
 * metadata without what differs between two sends of one request (the request id and the
 * trace context). */
static int job_texts(struct api *api, struct http_req *req, struct job_req *jr, char **req_text,
                     char **meta_text, char *kid, size_t kid_len, char *body_hash, int waits)
{
    cJSON *rj, *mj;
    key_tenant(api, req, jr);
    rj = job_req_to_json(jr);
    mj = meta_json(jr, job_req_meta(jr, "tenant"));
    key_id(api, req, kid, kid_len);
    if (mj)
        cJSON_AddStringToObject(mj, "api_key_id", kid);
    *req_text = rj ? jsonx_print(rj) : NULL;
    *meta_text = NULL;
    if (body_hash && mj) { /* of the request and its metadata, before the trace is added */
        char *m = jsonx_print(mj);
        if (*req_text && m)
            snprintf(body_hash, 17, "%016llx",
                     (unsigned long long)hash_fnv1a64_str(
                         hash_fnv1a64_str(HASH_FNV1A64_INIT, *req_text), m));
        if (!m) { /* out of memory: fails below */
            cJSON_Delete(mj);
            mj = NULL;
        }
        free(m);
    }
    if (mj) {
        add_trace(mj, req);
        if (waits) /* a request of this process is parked on the job (store.h) */
            cJSON_AddStringToObject(mj, STORE_WAITER, store_instance(api->svc->store));
        *meta_text = jsonx_print(mj);
    }
    cJSON_Delete(rj);
    cJSON_Delete(mj);
    if (*req_text && *meta_text)
        return 0;
    free(*req_text);
    free(*meta_text);
    return BD_ENOMEM;
}

/* The tenant's jobs_per_minute and daily budget, checked in the submit's own script. */
static void tenant_submit(struct rctx *c, struct store_submit *s, const char *tenant)
{
    const struct tenant_limits *l = tenant_limits_of(c->api->svc->cfg->tenants, tenant, NULL);
    if (!l || (l->jobs_per_minute <= 0 && l->daily_budget_usd < 0))
        return;
    c->tlim = *l;
    s->tenant = tenant;
    s->tenant_jpm = l->jobs_per_minute;
    s->tenant_budget_usd = l->daily_budget_usd;
}

/* Queue a validated job; answer now (202), or when it ends / wait passes. */
static void enqueue(struct api *api, struct http_req *req, struct job_req *jr, double wait,
                    const char *idem)
{
    const struct bd_config *cfg = api->svc->cfg;
    struct store_submit s;
    char *req_text = NULL, *meta_text = NULL;
    char kid[32], hash[17];
    struct rctx *c;

    if (!store_ready(api->svc->store)) {
        respond_store_error(api, req, BD_EREDIS_DOWN);
        return;
    }
    if (job_texts(api, req, jr, &req_text, &meta_text, kid, sizeof(kid), hash, wait > 0) != 0 ||
        !(c = rctx_new(api, req, ""))) {
        free(req_text);
        free(meta_text);
        http_respond_error(req, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    c->meta_text = meta_text;
    memset(&s, 0, sizeof(s));
    s.req_json = req_text;
    s.meta_json = meta_text;
    s.priority = jr->priority;
    s.max_queue = cfg->max_queue;
    tenant_submit(c, &s, job_req_meta(jr, "tenant"));
    if (idem) {
        /* the key is scoped to the caller's API key; the body is compared by the hash of
         * its normalized form (so whitespace or key order do not matter) */
        snprintf(c->body_hash, sizeof(c->body_hash), "%s", hash);
        s.idem_scope = kid;
        s.idem_key = idem;
        s.idem_hash = c->body_hash;
        s.idem_ttl_s = cfg->idempotency_ttl_s;
    }
    if (wait > 0) {
        c->parked = 1;
        uv_timer_start(&c->timer, on_wait_timer, (uint64_t)(wait * 1000.0), 0);
    }
    if (wait > 0 && worker_ahead(api->svc->worker, &s, jr, on_submitted, c)) {
        rctx_sent(c, 0); /* the worker runs it already (it took jr) */
        free(req_text);
        return;
    }
    rctx_sent(c, store_submit(api->svc->store, &s, on_submitted, c));
    /* parsed, for this process's worker: the entry comes back in a later turn of the loop */
    handoff_put(api->svc->handoff, req_text, jr); /* takes req_text */
}

/* --- the facade's direct runs --- */

struct facade_run {
    struct rctx *c;
    struct bd_config *cfg;        /* a reference for the run's life */
    struct job_req jr;
    char *req_text, *meta_text;
    char id[JOB_ID_LEN + 1];
    int64_t created_ms;
    int streaming;                /* stream: true - the answer is on its way (200 sent) */
    struct pipe_job pj;
    /* answered, its record to make (api_later) */
    struct list_node later;
    const char *status;           /* "succeeded" | "failed" */
    cJSON *out;                   /* pipe_out_json, or NULL (nothing to record) */
    int64_t done_ms;
};

static void pipe_job_of_run(struct rctx *c, struct pipe_job **pj)
{
    *pj = c->run ? &c->run->pj : NULL;
}

/* --- the facade's stream: the role chunk at once, keep-alives while the draft runs, the
 * brief's text as the pipeline passes it on, then the end (or an error chunk) --- */

#define FACADE_KEEPALIVE_MS 2000

static void facade_write(struct rctx *c, char *events)
{
    if (events && c->req)
        http_stream_write(c->req, events, strlen(events));
    free(events);
}

static void on_facade_keepalive(uv_timer_t *t)
{
    struct rctx *c = t->data;
    if (c->req)
        http_stream_write(c->req, ": keep-alive\n\n", 14);
}

static void on_facade_text(struct pipe_job *pj, const char *text, size_t len)
{
    struct facade_run *r = pj->data;
    facade_write(r->c, facade_chunk_text(r->id, (long)(r->created_ms / 1000),
                                         r->cfg->facade_model, text, len));
}

static void facade_stream_begin(struct facade_run *r)
{
    struct rctx *c = r->c;
    http_resp_header(c->req, "Cache-Control", "no-cache");
    /* only the id is known this early: the route and the cost come in the last chunk */
    http_resp_header(c->req, "x-briefd-job-id", r->id);
    http_stream_begin(c->req, 200, "text/event-stream");
    facade_write(c, facade_chunk_role(r->id, (long)(r->created_ms / 1000), r->cfg->facade_model));
    uv_timer_start(&c->timer, on_facade_keepalive, FACADE_KEEPALIVE_MS, FACADE_KEEPALIVE_MS);
    r->streaming = 1;
    r->pj.on_text = on_facade_text;
}

/* The stream's end: the last chunks, or an error chunk (no [DONE]) when the job failed, the
 * draft model is out, or the refinement failed after part of the brief went out. */
static void facade_stream_end(struct facade_run *r, enum pipe_outcome o, const cJSON *out)
{
    struct rctx *c = r->c;
    char msg[400];
    uv_timer_stop(&c->timer);
    if (o == PIPE_SUCCEEDED && out && !r->pj.text_broken) {
        facade_write(c, facade_chunk_end(r->id, out, (long)(r->created_ms / 1000),
                                         r->cfg->facade_model, c->fr.include_usage));
    } else if (o == PIPE_SUCCEEDED && out) {
        snprintf(msg, sizeof(msg), "the refinement failed after part of the brief was sent: "
                 "%.300s (job %s)", pipe_refine_err(&r->pj), r->id);
        facade_write(c, facade_chunk_error("api_error", "refine_failed", msg));
    } else if (o == PIPE_FAILED && r->pj.error) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(r->pj.error, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->pj.error, "message");
        facade_write(c, facade_chunk_error("api_error",
                                           cJSON_IsString(code) ? code->valuestring : "job_failed",
                                           cJSON_IsString(m) ? m->valuestring : "job failed"));
    } else if (o == PIPE_RETRY) {
        snprintf(msg, sizeof(msg), "draft model '%.60s' is unavailable: %.250s",
                 r->cfg->draft.name, r->pj.call.err[0] ? r->pj.call.err : "circuit breaker open");
        facade_write(c, facade_chunk_error("api_error", "draft_failed", msg));
    } else {
        facade_write(c, facade_chunk_error("api_error", o == PIPE_CANCELED ? "shutting_down"
                                                                           : "out_of_memory",
                                           "the brief could not be produced; try again"));
    }
    if (c->req)
        http_stream_end(c->req);
    rctx_done(c);
}

static void facade_run_free(struct facade_run *r)
{
    pipe_job_free(&r->pj);
    job_req_free(&r->jr);
    free(r->req_text);
    free(r->meta_text);
    config_unref(r->cfg);
    free(r);
}

/* Record and count the answered run (fire and forget: the answer does not wait for it); a
 * run sampled for shadow judging starts it once the record is stored. */
static void facade_record(struct svc *svc, struct facade_run *r, const char *status,
                          const char *job_text)
{
    struct stats_delta delta;
    struct store_result res;
    struct shadow_task *t = NULL;
    pipe_stats(&r->pj, strcmp(status, "succeeded") == 0, &delta);
    if (strcmp(status, "succeeded") == 0)
        t = shadow_take(svc->shadow, &r->pj, r->id, r->req_text, delta.at_ms);
    memset(&res, 0, sizeof(res));
    res.status = status;
    res.job_json = job_text;
    res.req_json = r->req_text;
    res.meta_json = r->meta_text;
    res.ttl_s = r->cfg->result_ttl_s;
    res.stats = &delta;
    res.tenant = job_req_meta(&r->jr, "tenant");
    res.cost_usd = r->pj.acct.cost_draft + r->pj.acct.cost_refine;
    res.hold_ms = r->cfg->facade_record_hold_ms;
    if (store_finish(svc->store, NULL, r->id, &res, t ? shadow_stored : NULL, t) != 0) {
        log_warn("facade: the result of %s could not be recorded", r->id);
        shadow_drop(t);
    }
}

/* The record of an answered run: the signals (checks of the brief against the text), the
 * job object, the finish; then the run is freed. */
static void facade_run_record(struct svc *svc, struct facade_run *r)
{
    char *job_text;
    pipe_add_signals(&r->pj, r->out);
    job_text = r->out ? store_job_text(r->id, r->status, r->created_ms, 1, r->meta_text, r->out,
                                       r->done_ms) : NULL; /* takes out */
    r->out = NULL;
    if (job_text)
        facade_record(svc, r, r->status, job_text);
    free(job_text);
    facade_run_free(r);
}

static void later_flush(struct api *api)
{
    uv_check_stop(api->later_check);
    uv_timer_stop(api->later_timer);
    while (!list_empty(&api->later)) {
        struct facade_run *r = LIST_ENTRY(api->later.next, struct facade_run, later);
        list_unlink(&r->later);
        api->nlater--;
        facade_run_record(api->svc, r);
    }
}

/* After the loop's I/O of a turn: a model call in flight means the loop will wait for it,
 * so the records are made now, while it waits, not in front of the next request. */
static void on_later_check(uv_check_t *h)
{
    struct api *api = h->data;
    if (mc_ctx_busy(api->svc->mc))
        later_flush(api);
}

static void on_later_timer(uv_timer_t *t) { later_flush(t->data); }

/* An answered run's record is made later, off the path of the next request: at 1
 * connection that request arrives while the record would be made (its CPU, ~30% of a
 * facade request's, stood in front of it), and starts a model call whose wait the record
 * can fill. Made when the loop's turn ends with a model call in flight, before any request
 * other than a chat completion (a read of this process then sees it), after LATER_MS, when
 * LATER_MAX wait, and at once while stopping. */
static void api_later(struct api *api, struct facade_run *r)
{
    if (api->stopping || api->svc->stopping) {
        facade_run_record(api->svc, r);
        return;
    }
    list_push_back(&api->later, &r->later);
    if (++api->nlater >= LATER_MAX) {
        later_flush(api);
        return;
    }
    if (!uv_is_active((uv_handle_t *)api->later_timer)) {
        uv_check_start(api->later_check, on_later_check);
        uv_timer_start(api->later_timer, on_later_timer, LATER_MS, 0);
    }
}

static void on_facade_done(struct pipe_job *pj, enum pipe_outcome o)
{
    struct facade_run *r = pj->data;
    struct rctx *c = r->c;
    struct api *api = c->api; /* c may be gone once answered */
    const char *status = o == PIPE_SUCCEEDED ? "succeeded" : "failed";
    cJSON *out = NULL;
    c->run = NULL;
    /* answered from the run's output; the signals (checks of the brief against the text)
     * and the job object are the record's, made once the answer is on its way */
    if (o == PIPE_SUCCEEDED || o == PIPE_FAILED)
        out = pipe_out_json(pj, status, 0);
    if (!c->req) {
        /* the client left: nothing answered */
    } else if (r->streaming) {
        facade_stream_end(r, o, out);
    } else if (out) {
        facade_answer(c, r->id, r->cfg->facade_model, o == PIPE_SUCCEEDED, out);
    } else if (o == PIPE_RETRY) {
        /* the draft model is out: a proxy answers what the upstream did */
        http_resp_header(c->req, "x-briefd-job-id", r->id);
        http_respond_error(c->req, 502, "draft_failed", NULL,
                           "draft model '%.60s' is unavailable: %.250s", r->cfg->draft.name,
                           pj->call.err[0] ? pj->call.err : "circuit breaker open");
        rctx_done(c);
    } else {
        http_resp_header(c->req, "Retry-After", "1");
        http_respond_error(c->req, 503, o == PIPE_CANCELED ? "shutting_down" : "out_of_memory",
                           NULL, "the brief could not be produced; try again");
        rctx_done(c);
    }
    /* recorded once the answer is on its way, also when the client left: the models were
     * called, their cost counts */
    r->c = NULL;
    r->status = status;
    r->out = out;
    r->done_ms = clock_wall_ms();
    rctx_maybe_free(c);
    api_later(api, r);
}

/* Admitted: run the pipeline (a streamed answer begins now). */
static void facade_go(struct facade_run *r)
{
    struct rctx *c = r->c;
    if (c->fr.stream)
        facade_stream_begin(r);
    if (pipe_start(c->api->svc->pipe, &r->pj) != 0) {
        c->run = NULL;
        if (r->streaming) {
            facade_stream_end(r, PIPE_FAILED, NULL); /* no job error: out of memory */
        } else {
            http_respond_error(c->req, 500, "out_of_memory", NULL, "out of memory");
            rctx_done(c);
        }
        facade_run_free(r);
    }
}

static void on_facade_admitted(void *data, int status, enum store_submit_rc rc, long retry_s)
{
    struct facade_run *r = data;
    struct rctx *c = r->c;
    c->ops--;
    if (!c->req || status != 0 || rc != STORE_SUBMITTED) {
        if (c->req && status != 0)
            respond_redis_down(c->req);
        else if (c->req)
            respond_tenant_limited(c->req, rc, retry_s, &c->tlim);
        c->run = NULL;
        facade_run_free(r);
        if (c->req)
            rctx_done(c);
        else
            rctx_maybe_free(c);
        return;
    }
    facade_go(r);
}

/* The facade is a submission too: the tenant's jobs_per_minute and budget apply. */
static void facade_admit(struct facade_run *r)
{
    struct rctx *c = r->c;
    const char *tenant = job_req_meta(&r->jr, "tenant");
    const struct tenant_limits *l = tenant_limits_of(r->cfg->tenants, tenant, NULL);
    int rc;
    if (!l || (l->jobs_per_minute <= 0 && l->daily_budget_usd < 0)) {
        facade_go(r);
        return;
    }
    c->tlim = *l;
    rc = store_tenant_admit(c->api->svc->store, tenant, l->jobs_per_minute,
                            l->daily_budget_usd, r->id, on_facade_admitted, r);
    if (rc == 0) {
        c->ops++;
        return;
    }
    c->run = NULL;
    facade_run_free(r);
    respond_redis_down(c->req);
    rctx_done(c);
}

static void run_facade(struct api *api, struct http_req *req, struct job_req *jr,
                       const struct facade_req *fr)
{
    struct facade_run *r = calloc(1, sizeof(*r));
    char kid[32];
    struct rctx *c;
    if (!r || job_texts(api, req, jr, &r->req_text, &r->meta_text, kid, sizeof(kid), NULL, 0) != 0 ||
        !(c = rctx_new(api, req, ""))) {
        if (r) {
            free(r->req_text);
            free(r->meta_text);
            free(r);
        }
        http_respond_error(req, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    /* the run takes the request as job_texts left it (req_text is its printed form: what
     * the worker would read back) */
    r->jr = *jr;
    memset(jr, 0, sizeof(*jr));
    r->c = c;
    r->cfg = config_ref(api->svc->cfg);
    r->created_ms = clock_wall_ms();
    job_new_id(r->id, r->created_ms);
    snprintf(c->id, sizeof(c->id), "%s", r->id);
    c->facade = 1;
    c->fr = *fr;
    c->run = r;
    r->pj.data = r;
    r->pj.id = r->id;
    r->pj.cfg = r->cfg;
    r->pj.req = &r->jr;
    r->pj.queue_ms = -1;
    r->pj.on_done = on_facade_done;
    pipe_trace_meta(&r->pj, r->meta_text);
    facade_admit(r);
}

/* --- GET /v1/jobs/{id}[/events] --- */

static void get_job(struct api *api, struct http_req *req, const char *id, int events)
{
    const char *scope;
    struct rctx *c;
    double wait = 0;
    if (!job_id_valid(id)) {
        http_respond_error(req, 404, "job_not_found", "id", "no job with id '%.40s'", id);
        return;
    }
    if (!events) {
        wait = parse_wait(req, api->svc->cfg->max_wait_s);
        if (wait < 0)
            return;
    }
    c = rctx_begin(api, req, id);
    if (!c)
        return;
    scope = view_tenant(api, req);
    snprintf(c->scope, sizeof(c->scope), "%s", scope ? scope : "");
    if (events) {
        c->sse = 1;         /* the stream starts once the job is found (sse_open) */
        c->parked = 1;
    } else if (wait > 0) {
        c->parked = 1;
        uv_timer_start(&c->timer, on_wait_timer, (uint64_t)(wait * 1000.0), 0);
    }
    ctx_fetch(c);
}

/* --- POST /v1/jobs/{id}/feedback --- */

static void on_feedback_stored(void *data, int status, int applied)
{
    struct rctx *c = data;
    if (!rctx_reply(c))
        return;
    if (status != 0) {
        respond_redis_down(c->req);
    } else if (!applied) {
        http_respond_error(c->req, 409, "job_not_finished", "id",
                           "job '%s' is no longer finished (requeued) or has expired", c->id);
    } else {
        http_respond(c->req, 201, "application/json", c->fb_item, strlen(c->fb_item));
    }
    rctx_done(c);
}

/* The job was found (through GET's lookup): store the feedback on it if it is finished. */
static void feedback_found(struct rctx *c, const cJSON *job)
{
    struct feedback_facts ff;
    struct stats_feedback sf;
    struct stats_delta delta;
    int64_t now = clock_wall_ms();
    cJSON *item;
    feedback_job_facts(job, &ff);
    if (!ff.finished) {
        http_respond_error(c->req, 409, "job_not_finished", "id",
                           "job '%s' has not finished yet; feedback is for finished jobs", c->id);
        rctx_done(c);
        return;
    }
    memset(&sf, 0, sizeof(sf));
    sf.score = c->fb->score;
    sf.decision = ff.decision;
    sf.policies = ff.policies;
    sf.verdicts = ff.verdicts;
    sf.n = ff.n;
    sf.source = ff.source;
    sf.tenant = ff.tenant;
    sf.finished_ms = ff.finished_ms > 0 ? ff.finished_ms : now; /* counted with the job */
    stats_feedback_delta(&sf, &delta);
    item = feedback_item_json(c->fb, c->id, now, c->kid);
    c->fb_item = item ? jsonx_print(item) : NULL;
    cJSON_Delete(item);
    if (!c->fb_item) {
        http_respond_error(c->req, 500, "out_of_memory", NULL, "out of memory");
        rctx_done(c);
        return;
    }
    rctx_sent(c, store_add_feedback(c->api->svc->store, c->id, c->fb_item, FEEDBACK_KEEP,
                                    &delta, on_feedback_stored, c));
}

static void post_feedback(struct api *api, struct http_req *req, const char *id)
{
    struct feedback fb;
    struct job_verr ve;
    size_t len;
    const char *body = http_req_body(req, &len), *scope;
    struct rctx *c;
    if (!content_type_json(req)) {
        http_respond_error(req, 415, "unsupported_media_type", NULL,
                           "Content-Type must be application/json");
        return;
    }
    if (!job_id_valid(id)) {
        http_respond_error(req, 404, "job_not_found", "id", "no job with id '%.40s'", id);
        return;
    }
    if (feedback_parse(body, len, &fb, &ve) != 0) {
        http_respond_error(req, ve.status, ve.code, ve.param[0] ? ve.param : NULL, "%s",
                           ve.msg);
        return;
    }
    c = rctx_begin(api, req, id);
    if (c)
        c->fb = malloc(sizeof(*c->fb));
    if (!c || !c->fb) {
        if (c && !c->fb) {
            http_respond_error(req, 500, "out_of_memory", NULL, "out of memory");
            rctx_done(c);
        }
        feedback_free(&fb);
        return;
    }
    *c->fb = fb;
    key_id(api, req, c->kid, sizeof(c->kid));
    scope = view_tenant(api, req); /* a tenant's key: its tenant's jobs only, as for GET */
    snprintf(c->scope, sizeof(c->scope), "%s", scope ? scope : "");
    ctx_fetch(c); /* the same lookup as GET /v1/jobs/{id}: answer() calls feedback_found */
}

/* --- small routes --- */

static void get_health(struct api *api, struct http_req *req, int ready)
{
    cJSON *o = cJSON_CreateObject();
    int redis_ok = store_ready(api->svc->store);
    int ok = !ready || (redis_ok && api->svc->cfg && !api->svc->stopping);
    cJSON_AddStringToObject(o, "status", ok ? "ok" : "unavailable");
    if (ready) {
        int port = 0;
        const char *via = "url", *host = store_primary(api->svc->store, &port, &via);
        cJSON *p = cJSON_AddObjectToObject(o, "redis_primary");
        cJSON_AddStringToObject(p, "host", host);
        cJSON_AddNumberToObject(p, "port", port);
        cJSON_AddStringToObject(p, "via", via);
        cJSON_AddBoolToObject(o, "redis", redis_ok);
        if (!redis_ok)
            cJSON_AddStringToObject(o, "redis_error", store_last_error(api->svc->store));
        cJSON_AddStringToObject(o, "config_version", api->svc->cfg->version);
        cJSON_AddBoolToObject(o, "stopping", api->svc->stopping);
    }
    http_respond_json(req, ok ? 200 : 503, o);
    cJSON_Delete(o);
}

static cJSON *model_object(const char *id)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "briefd");
    return m;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

/* A path segment, percent-decoded (a bad or NUL escape stays as is) into out. */
static void segment_decode(const char *s, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; s[i] && o + 1 < n; i++) {
        int hi = s[i] == '%' ? hex_digit(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_digit(s[i + 2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

/* GET /v1/models (rest "") and GET /v1/models/{id}: the facade's alias, else 404. */
static void get_models(struct api *api, struct http_req *req, const char *rest)
{
    const char *alias = api->svc->cfg->facade_model;
    char id[512];
    cJSON *o;
    if (*rest) {
        segment_decode(rest + 1, id, sizeof(id));
        if (strcmp(id, alias) != 0) {
            http_respond_error(req, 404, "model_not_found", NULL,
                               "The model '%.200s' does not exist; use '%.128s'", id, alias);
            return;
        }
        o = model_object(alias);
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), model_object(alias));
    }
    http_respond_json(req, 200, o);
    cJSON_Delete(o);
}

static void get_config(struct api *api, struct http_req *req)
{
    cJSON *o = config_describe(api->svc->cfg);
    http_respond_json(req, 200, o);
    cJSON_Delete(o);
}

/* 422 invalid_config naming every mistake of the file (as briefd check does): message
 * "path: what" (or "N mistakes: path: what; ..."), param the first path, and errors[] with
 * each {"param", "message"}. first is the mistake the reload stopped at. */
static void respond_reload_refused(struct api *api, struct http_req *req,
                                   const struct cfg_err *first)
{
    static struct cfg_err errs[CONFIG_MAX_REPORTED];
    const char *path = api->svc->cfg->path;
    int n = path ? config_check_collect(path, errs, CONFIG_MAX_REPORTED) : 0;
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error"), *list;
    char *text;
    if (n <= 0) {
        errs[0] = *first;
        n = 1;
    }
    n = n > CONFIG_MAX_REPORTED ? CONFIG_MAX_REPORTED : n;
    text = config_mistakes_text(errs, n);
    list = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *item = cJSON_CreateObject();
        if (errs[i].path[0])
            cJSON_AddStringToObject(item, "param", errs[i].path);
        else
            cJSON_AddNullToObject(item, "param");
        cJSON_AddStringToObject(item, "message", errs[i].msg);
        cJSON_AddItemToArray(list, item);
    }
    cJSON_AddStringToObject(e, "type", http_error_type(422));
    cJSON_AddStringToObject(e, "code", "invalid_config");
    cJSON_AddStringToObject(e, "message", text ? text : "invalid configuration");
    if (errs[0].path[0])
        cJSON_AddStringToObject(e, "param", errs[0].path);
    else
        cJSON_AddNullToObject(e, "param");
    cJSON_AddItemToObject(e, "errors", list);
    http_respond_json(req, 422, o);
    cJSON_Delete(o);
    free(text);
}

static void post_reload(struct api *api, struct http_req *req)
{
    struct cfg_err err;
    if (api->svc->reload(api->svc, &err) != 0) {
        respond_reload_refused(api, req, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "reloaded", 1);
    cJSON_AddStringToObject(o, "version", api->svc->cfg->version);
    http_respond_json(req, 200, o);
    cJSON_Delete(o);
}

/* --- statistics --- */

/* A tenant group of /v1/stats?by=tenant: its limits (the group is named by the tenant id)
 * and, with a budget, what is left of it today. */
static void tenant_budget_figures(cJSON *g, double budget, double spent, double reserved)
{
    double left = budget - spent - reserved;
    jsonx_add_number(g, "spent_today_usd", spent);
    jsonx_add_number(g, "reserved_usd", reserved);
    jsonx_add_number(g, "remaining_budget_usd", left > 0 ? left : 0);
}

static void on_tenants_spend(void *data, int status, const double *v, size_t n)
{
    struct rctx *c = data;
    cJSON *groups, *g;
    size_t i = 0;
    if (!rctx_reply(c))
        return;
    groups = cJSON_GetObjectItemCaseSensitive(c->stats, "groups");
    cJSON_ArrayForEach(g, groups) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(g, "limits"), "daily_budget_usd");
        if (!cJSON_IsNumber(b) || i >= n)
            continue;
        if (status == 0)
            tenant_budget_figures(g, b->valuedouble, v[2 * i], v[2 * i + 1]);
        i++;
    }
    if (status != 0)
        respond_redis_down(c->req);
    else
        http_respond_json(c->req, 200, c->stats);
    rctx_done(c);
}

/* by=tenant: every group gets its limits; those with a budget their spend today (one more
 * read). Returns 1 when that read was sent (it answers), else 0 (answer now). */
static int add_tenant_limits(struct rctx *c, cJSON *stats)
{
    const struct tenant_table *t = c->api->svc->cfg->tenants;
    cJSON *g, *groups = cJSON_GetObjectItemCaseSensitive(stats, "groups");
    const char *ids[STORE_SPEND_MAX];
    size_t n = 0;
    if (strcmp(c->dim, "tenant") != 0 || !t)
        return 0;
    cJSON_ArrayForEach(g, groups) {
        const struct tenant_limits *l = tenant_limits_of(t, g->string, NULL);
        if (strcmp(g->string, "(other)") == 0)
            continue; /* many tenants counted together: no limits of its own */
        cJSON_AddItemToObject(g, "limits", tenant_limits_json(l));
        if (l && l->daily_budget_usd >= 0 && n < STORE_SPEND_MAX)
            ids[n++] = g->string;
    }
    if (n == 0)
        return 0;
    c->stats = stats;
    rctx_sent(c, store_tenant_spend(c->api->svc->store, ids, n, on_tenants_spend, c));
    return 1;
}

static void on_stats_rows(void *data, int status, const struct stats_rows *rows)
{
    struct rctx *c = data;
    cJSON *stats;
    if (!rctx_reply(c))
        return;
    stats = status == 0 ? stats_window_json(rows, c->window_s, c->dim, c->step_s) : NULL;
    if (stats && add_tenant_limits(c, stats))
        return;
    if (!stats)
        respond_store_error(c->api, c->req, status);
    else
        http_respond_json(c->req, 200, stats);
    cJSON_Delete(stats);
    rctx_done(c);
}

/* --- GET /v1/tenants/{id} (admin) --- */

static void on_tenant_figures(void *data, int status, const struct store_tenant_figures *f)
{
    struct rctx *c = data;
    cJSON *o;
    char day[16];
    if (!rctx_reply(c))
        return;
    if (status != 0 || !f) {
        respond_redis_down(c->req);
        rctx_done(c);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "tenant");
    cJSON_AddStringToObject(o, "id", c->tenant);
    cJSON_AddItemToObject(o, "limits", tenant_limits_json(c->tlim_src ? &c->tlim : NULL));
    if (c->tlim_src)
        cJSON_AddStringToObject(o, "limits_from", c->tlim_src);
    else
        cJSON_AddNullToObject(o, "limits_from");
    clock_utc_day(clock_wall_ms(), day, sizeof(day));
    cJSON_AddStringToObject(o, "day", day);
    cJSON_AddNumberToObject(o, "jobs_this_minute", (double)f->jobs_this_minute);
    if (c->tlim_src && c->tlim.daily_budget_usd >= 0)
        tenant_budget_figures(o, c->tlim.daily_budget_usd, f->spent_today_usd, f->reserved_usd);
    else {
        jsonx_add_number(o, "spent_today_usd", f->spent_today_usd);
        jsonx_add_number(o, "reserved_usd", f->reserved_usd);
        cJSON_AddNullToObject(o, "remaining_budget_usd");
    }
    cJSON_AddNumberToObject(o, "window_s", (double)c->window_s);
    cJSON_AddNumberToObject(o, "decided", f->decided);
    cJSON_AddNumberToObject(o, "refined", f->refined);
    jsonx_add_number(o, "refine_rate", f->decided > 0 ? f->refined / f->decided : NAN);
    http_respond_json(c->req, 200, o);
    cJSON_Delete(o);
    rctx_done(c);
}

static void get_tenant(struct api *api, struct http_req *req, const char *rest)
{
    const struct bd_config *cfg = api->svc->cfg;
    const struct tenant_limits *l;
    char id[TENANT_ID_MAX + 2];
    struct rctx *c;
    if (*rest == '\0' || strchr(rest + 1, '/')) {
        http_respond_error(req, 404, "not_found", NULL, "no route %.200s; use /v1/tenants/{id}",
                           http_req_path(req));
        return;
    }
    segment_decode(rest + 1, id, sizeof(id));
    if (!tenant_id_valid(id)) {
        http_respond_error(req, 400, "invalid_value", "id",
                           "a tenant id is 1 to %d bytes of UTF-8", TENANT_ID_MAX);
        return;
    }
    c = rctx_begin(api, req, "");
    if (!c)
        return;
    c->tenant = strdup(id);
    l = tenant_limits_of(cfg->tenants, id, &c->tlim_src);
    if (l)
        c->tlim = *l;
    c->window_s = router_guard_window_s(cfg->router);
    if (!c->tenant) {
        http_respond_error(req, 500, "out_of_memory", NULL, "out of memory");
        rctx_done(c);
        return;
    }
    rctx_sent(c, store_tenant_figures(api->svc->store, id, c->window_s, on_tenant_figures, c));
}

/* Parse an integer query parameter within [lo, hi]; dflt when absent; -1 after a 400. */
static long query_long(struct http_req *req, const char *name, long lo, long hi, long dflt)
{
    const char *v = http_req_query_param(req, name);
    char *end;
    long n;
    if (!v || !*v)
        return dflt;
    n = strtol(v, &end, 10);
    if (*end != '\0' || n < lo || n > hi) {
        http_respond_error(req, 400, "invalid_value", name,
                           "query parameter '%s' must be an integer from %ld to %ld", name, lo,
                           hi);
        return -1;
    }
    return n;
}

static void get_stats(struct api *api, struct http_req *req)
{
    const struct bd_config *cfg = api->svc->cfg;
    const char *by = http_req_query_param(req, "by");
    const char *tenant = view_tenant(api, req);
    long window = query_long(req, "window", 60, cfg->stats_retention_s, 3600);
    long step;
    struct rctx *c;
    if (window < 0)
        return;
    step = query_long(req, "step", 60, window, 60);
    if (step < 0)
        return;
    if (by && *by && strcmp(by, "source") != 0 && strcmp(by, "tenant") != 0) {
        http_respond_error(req, 400, "invalid_value", "by",
                           "query parameter 'by' must be 'source' or 'tenant'");
        return;
    }
    if (tenant && by && strcmp(by, "source") == 0) {
        http_respond_error(req, 403, "tenant_scope", "by",
                           "this key sees tenant '%s' only: group by tenant, not by source",
                           tenant);
        return;
    }
    c = rctx_begin(api, req, "");
    if (!c)
        return;
    c->window_s = window;
    c->step_s = step;
    snprintf(c->dim, sizeof(c->dim), "%s", by ? by : "");
    rctx_sent(c, tenant ? store_stats_window_tenant(api->svc->store, window, c->dim, tenant,
                                                    on_stats_rows, c)
                        : store_stats_window(api->svc->store, window, c->dim, on_stats_rows, c));
}

/* The exposition: cluster-wide series when totals came from Redis, this process's own always
 * (docs/METRICS.md: /metrics answers while Redis is down). */
static void respond_metrics(struct api *api, struct http_req *req, const cJSON *totals,
                            long depth, long pending)
{
    char *text = metrics_render(api->svc, totals, (double)depth, (double)pending);
    if (!text)
        http_respond_error(req, 500, "out_of_memory", NULL, "out of memory");
    else
        http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

static void on_totals(void *data, int status, const cJSON *totals, long depth, long pending)
{
    struct rctx *c = data;
    if (!rctx_reply(c))
        return;
    respond_metrics(c->api, c->req, status == 0 ? totals : NULL, depth, pending);
    rctx_done(c);
}

static void get_metrics(struct api *api, struct http_req *req)
{
    struct rctx *c = store_ready(api->svc->store) ? rctx_new(api, req, "") : NULL;
    if (!c) {
        respond_metrics(api, req, NULL, 0, 0);
        return;
    }
    if (store_stats_totals(api->svc->store, on_totals, c) == 0) {
        c->ops++;
        return;
    }
    respond_metrics(api, req, NULL, 0, 0);
    rctx_done(c);
}

/* --- dead letters (admin) --- */

static void on_dead_list(void *data, int status, cJSON *arr)
{
    struct rctx *c = data;
    if (rctx_reply(c)) {
        if (status != 0) {
            respond_redis_down(c->req);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "object", "list");
            cJSON_AddItemToObject(o, "data", arr);
            arr = NULL;
            http_respond_json(c->req, 200, o);
            cJSON_Delete(o);
        }
        rctx_done(c);
    }
    cJSON_Delete(arr);
}

static void on_requeued(void *data, int status, int applied)
{
    struct rctx *c = data;
    if (!rctx_reply(c))
        return;
    if (status == BD_ENOTFOUND) {
        http_respond_error(c->req, 404, "job_not_found", "id", "no job with id '%s'", c->id);
    } else if (status != 0) {
        respond_redis_down(c->req);
    } else if (!applied) {
        http_respond_error(c->req, 409, "not_dead_lettered", "id",
                           "job '%s' is not in the dead-letter stream", c->id);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", c->id);
        cJSON_AddStringToObject(o, "status", "queued");
        cJSON_AddBoolToObject(o, "requeued", 1);
        http_respond_json(c->req, 200, o);
        cJSON_Delete(o);
    }
    rctx_done(c);
}

static void dead_letters(struct api *api, struct http_req *req, const char *rest)
{
    struct rctx *c;
    char id[JOB_ID_LEN + 1] = "";
    int requeue = 0, rc;
    long limit = 100;
    if (*rest == '\0') {
        if (!method_is(req, "GET")) {
            bad_method(req, "GET");
            return;
        }
        limit = query_long(req, "limit", 1, 1000, 100);
        if (limit < 0)
            return;
    } else {
        const char *slash = strchr(rest + 1, '/');
        if (!slash || strcmp(slash, "/requeue") != 0 ||
            (size_t)(slash - rest - 1) != JOB_ID_LEN) {
            http_respond_error(req, 404, "not_found", NULL, "no route %.200s",
                               http_req_path(req));
            return;
        }
        memcpy(id, rest + 1, JOB_ID_LEN);
        if (!job_id_valid(id)) {
            http_respond_error(req, 404, "job_not_found", "id", "no job with id '%s'", id);
            return;
        }
        if (!method_is(req, "POST")) {
            bad_method(req, "POST");
            return;
        }
        requeue = 1;
    }
    c = rctx_begin(api, req, id);
    if (!c)
        return;
    rc = requeue ? store_requeue(api->svc->store, id, on_requeued, c)
                 : store_dead_list(api->svc->store, limit, on_dead_list, c);
    rctx_sent(c, rc);
}

/* --- routing --- */

/* GET /dashboard and its assets, embedded at build time (dash.h). */
static void get_dashboard(struct http_req *req, const char *path)
{
    const struct dash_asset *d = dash_find(path);
    if (!d) {
        http_respond_error(req, 404, "not_found", NULL, "no route %.200s", path);
        return;
    }
    if (!method_is(req, "GET")) {
        bad_method(req, "GET");
        return;
    }
    http_resp_header(req, "Cache-Control", "no-cache");
    http_resp_header(req, "X-Content-Type-Options", "nosniff");
    http_resp_header(req, "Content-Security-Policy",
                     "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                     "frame-ancestors 'none'");
    http_respond(req, 200, d->content_type, (const char *)d->data, d->len);
}

static void route_jobs(struct api *api, struct http_req *req, const char *rest)
{
    char id[64];
    const char *slash;
    size_t n;
    if (*rest == '\0') {
        if (method_is(req, "POST"))
            post_job(api, req);
        else
            bad_method(req, "POST");
        return;
    }
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n >= sizeof(id)) {
        http_respond_error(req, 404, "job_not_found", "id", "no such job");
        return;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    if (slash && strcmp(slash, "/feedback") == 0) {
        if (method_is(req, "POST"))
            post_feedback(api, req, id);
        else
            bad_method(req, "POST");
        return;
    }
    if (slash && strcmp(slash, "/events") != 0) {
        http_respond_error(req, 404, "not_found", NULL, "no route %s", http_req_path(req));
        return;
    }
    if (!method_is(req, "GET")) {
        bad_method(req, "GET");
        return;
    }
    get_job(api, req, id, slash != NULL);
}

/* --- the route table --- */

static void r_healthz(struct api *api, struct http_req *req, const char *rest)
{
    (void)rest;
    get_health(api, req, 0);
}

static void r_readyz(struct api *api, struct http_req *req, const char *rest)
{
    (void)rest;
    get_health(api, req, 1);
}

static void r_dashboard(struct api *api, struct http_req *req, const char *rest)
{
    (void)api;
    (void)rest;
    get_dashboard(req, http_req_path(req));
}

static void r_openapi(struct api *api, struct http_req *req, const char *rest)
{
    const struct dash_asset *d = openapi_json();
    (void)api;
    (void)rest;
    if (!d) {
        http_respond_error(req, 404, "not_found", NULL, "no route /openapi.json");
        return;
    }
    http_resp_header(req, "Cache-Control", "no-cache");
    http_respond(req, 200, d->content_type, (const char *)d->data, d->len);
}

static void r_jobs(struct api *api, struct http_req *req, const char *rest)
{
    route_jobs(api, req, *rest ? rest + 1 : "");
}

static void r_models(struct api *api, struct http_req *req, const char *rest)
{
    get_models(api, req, rest);
}

static void r_tenants(struct api *api, struct http_req *req, const char *rest)
{
    get_tenant(api, req, rest);
}

#define R_PLAIN(name, fn) \
    static void name(struct api *api, struct http_req *req, const char *rest) \
    { (void)rest; fn(api, req); }
R_PLAIN(r_metrics, get_metrics)
R_PLAIN(r_stats, get_stats)
R_PLAIN(r_chat, post_chat)
R_PLAIN(r_config, get_config)
R_PLAIN(r_reload, post_reload)
#undef R_PLAIN

enum route_auth { AUTH_NONE = 0, AUTH_USER = 1, AUTH_ADMIN = 2 };

struct api_route {
    const char *path;
    int prefix;                 /* also matches path + "/..." (rest = from the '/') */
    const char *method;         /* NULL: the handler checks */
    enum route_auth auth;
    int intake;                 /* takes new work: refused (503) while shutting down */
    void (*fn)(struct api *api, struct http_req *req, const char *rest);
    /* A prefix route: every "METHOD /path/{param}" its handler serves, NULL-terminated
     * (NULL: the dashboard's files, dash_path()). Listed by `briefd routes` and compared
     * with docs/openapi.yaml by the tests: a route added to a handler goes here too. */
    const char *const *serves;
};

static const char *const serves_jobs[] = {"POST /v1/jobs", "GET /v1/jobs/{id}",
                                          "GET /v1/jobs/{id}/events",
                                          "POST /v1/jobs/{id}/feedback", NULL};
static const char *const serves_dead[] = {"GET /v1/dead-letters",
                                          "POST /v1/dead-letters/{id}/requeue", NULL};
static const char *const serves_models[] = {"GET /v1/models", "GET /v1/models/{id}", NULL};
static const char *const serves_tenants[] = {"GET /v1/tenants/{id}", NULL};

static const struct api_route routes[] = {
    {"/healthz", 0, "GET", AUTH_NONE, 0, r_healthz, NULL},
    {"/readyz", 0, "GET", AUTH_NONE, 0, r_readyz, NULL},
    {"/metrics", 0, "GET", AUTH_NONE, 0, r_metrics, NULL},
    {"/openapi.json", 0, "GET", AUTH_NONE, 0, r_openapi, NULL},
    {"/dashboard", 1, NULL, AUTH_NONE, 0, r_dashboard, NULL},
    {"/v1/jobs", 1, NULL, AUTH_USER, 1, r_jobs, serves_jobs},
    {"/v1/dead-letters", 1, NULL, AUTH_ADMIN, 0, dead_letters, serves_dead},
    {"/v1/stats", 0, "GET", AUTH_USER, 0, r_stats, NULL},
    {"/v1/chat/completions", 0, "POST", AUTH_USER, 1, r_chat, NULL},
    {"/v1/models", 1, "GET", AUTH_USER, 0, r_models, serves_models},
    {"/v1/config", 0, "GET", AUTH_ADMIN, 0, r_config, NULL},
    {"/v1/config/reload", 0, "POST", AUTH_ADMIN, 0, r_reload, NULL},
    {"/v1/tenants", 1, "GET", AUTH_ADMIN, 0, r_tenants, serves_tenants},
};

void api_routes(api_route_cb cb, void *data)
{
    static const char *const auth_names[] = {"none", "client", "admin"};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct api_route *r = &routes[i];
        const char *auth = auth_names[r->auth];
        if (!r->prefix) {
            cb(r->method, r->path, auth, data);
        } else if (!r->serves) {
            for (size_t k = 0; dash_path(k); k++)
                cb("GET", dash_path(k), auth, data);
        } else {
            for (size_t k = 0; r->serves[k]; k++) {
                const char *sp = strchr(r->serves[k], ' ');
                char method[8];
                snprintf(method, sizeof(method), "%.*s", (int)(sp - r->serves[k]), r->serves[k]);
                cb(method, sp + 1, auth, data);
            }
        }
    }
}

/* The route for path, with *rest set to what follows its path ("" or "/..."). */
static const struct api_route *find_route(const char *path, const char **rest)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        size_t n = strlen(routes[i].path);
        if (strncmp(path, routes[i].path, n) != 0)
            continue;
        if (path[n] == '\0' || (routes[i].prefix && path[n] == '/')) {
            *rest = path + n;
            return &routes[i];
        }
    }
    return NULL;
}

void api_handle(struct http_req *req, void *data)
{
    struct api *api = data;
    const char *path = http_req_path(req), *rest = "";
    const struct api_route *r = find_route(path, &rest);
    if (!r) {
        http_respond_error(req, 404, "not_found", NULL, "no route %.200s", path);
        return;
    }
    if (api->nlater && r->fn != r_chat)
        later_flush(api); /* what this request reads includes the answered runs' records */
    if (r->auth != AUTH_NONE && check_auth(api, req, r->auth == AUTH_ADMIN) != 0)
        return;
    if (r->method && !method_is(req, r->method)) {
        bad_method(req, r->method);
        return;
    }
    if (r->intake && api->svc->stopping && *rest == '\0' && method_is(req, "POST")) {
        http_resp_header(req, "Retry-After", "1");
        http_respond_error(req, 503, "shutting_down", NULL, "this briefd is shutting down");
        return;
    }
    r->fn(api, req, rest);
}

void api_stop(struct api *api, void (*cb)(void *data), void *data)
{
    struct list_node *it, *tmp;
    api->stopping = 1;
    api->stop_cb = cb;
    api->stop_data = data;
    later_flush(api);
    LIST_FOR_EACH_SAFE(it, tmp, &api->list) {
        struct rctx *c = LIST_ENTRY(it, struct rctx, node);
        if (c->req) {
            if (c->sse && sse_started(c)) {
                http_stream_end(c->req);
            } else {
                http_resp_header(c->req, "Retry-After", "1");
                http_respond_error(c->req, 503, "shutting_down", NULL,
                                   "briefd is shutting down; GET the job later");
            }
            rctx_done(c);
        }
    }
    if (api->n == 0 && api->stop_cb) {
        api->stop_cb = NULL;
        cb(data);
    }
}
