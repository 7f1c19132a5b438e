/* reply.c - completion bodies, SSE chunks, and requests answered later. */
#include "reply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "jsonx.h"
#include "sbuf.h"

#define TICK_MS 20          /* stream pacing tick */
#define ZERO_BATCH 8        /* tokens per chunk when tps is 0 (instant) */

/* ---- response JSON ---- */

static cJSON *resp_base(const struct completion *c, const char *object)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)c->created);
    cJSON_AddStringToObject(o, "model", model_defs[c->model].id);
    return o;
}

/* A logprob as JSON: the simulator's are multiples of 1/10000 at most 0 (text_logprobs), so
 * "-I.FFFF" (trailing zeros cut) is the shortest text that reads back as the same double
 * (n / 10000 correctly rounded, as text_logprobs made it); anything else by jsonx_number.
 * Returns the length written into buf (32 bytes). */
static size_t logprob_text(double v, char *buf)
{
    long long n;
    char *p = buf, tmp[24], *q = tmp + sizeof(tmp);
    int fp, k = 4;
    if (!(v <= 0 && v > -1e9) || (double)-(n = (long long)(-v * 10000.0 + 0.5)) / 10000.0 != v) {
        jsonx_number(v, buf, 32);
        return strlen(buf);
    }
    if (n == 0) {
        buf[0] = '0';
        return 1;
    }
    *p++ = '-';
    for (long long ip = n / 10000; ip > 0 || q == tmp + sizeof(tmp); ip /= 10)
        *--q = (char)('0' + ip % 10);
    memcpy(p, q, (size_t)(tmp + sizeof(tmp) - q));
    p += tmp + sizeof(tmp) - q;
    if ((fp = (int)(n % 10000)) != 0) {
        for (; fp % 10 == 0; k--)
            fp /= 10;
        *p++ = '.';
        for (int i = k - 1; i >= 0; i--, fp /= 10)
            p[i] = (char)('0' + fp % 10);
        p += k;
    }
    return (size_t)(p - buf);
}

#define LIT(s) s, sizeof(s) - 1

/* {"content": [...]} for tokens [a, b), written as text (a reply carries one entry a token:
 * a cJSON tree of them cost the simulator more than the model's work). NULL on OOM. */
static cJSON *logprobs_json(const struct completion *c, size_t a, size_t b)
{
    const struct text_answer *x = &c->a;
    struct sbuf s = {0};
    char tok[16], num[32];
    cJSON *raw = NULL;
    char *text;
    size_t n;

    sbuf_room(&s, 16 + (b - a) * 80); /* one allocation for the usual token */
    sbuf_add(&s, LIT("{\"content\":["));
    for (size_t i = a; i < b; i++) {
        char *w = sbuf_room(&s, 128), *p;
        int plain = 1;
        n = x->tok[i + 1] - x->tok[i];
        if (n >= sizeof tok)
            n = sizeof tok - 1;
        memcpy(tok, x->content + x->tok[i], n);
        tok[n] = '\0';
        for (size_t k = 0; k < n; k++)
            plain &= (unsigned char)tok[k] >= 0x20 && tok[k] != '"' && tok[k] != '\\';
        if (!w || !plain) { /* a token JSON must escape: the general writer */
            sbuf_add(&s, i > a ? ",{\"token\":" : "{\"token\":", i > a ? 10 : 9);
            jsonx_write_string(&s, tok);
            sbuf_add(&s, LIT(",\"logprob\":"));
            sbuf_add(&s, num, logprob_text(x->lp[i], num));
            sbuf_add(&s, LIT(",\"bytes\":null,\"top_logprobs\":[]}"));
            continue;
        }
        p = w; /* 128 bytes: 1 + 10 + 15 + 12 + 32 + 32 at most */
        if (i > a)
            *p++ = ',';
        memcpy(p, "{\"token\":\"", 10);
        memcpy(p + 10, tok, n);
        p += 10 + n;
        memcpy(p, "\",\"logprob\":", 12);
        p += 12;
        p += logprob_text(x->lp[i], p);
        memcpy(p, ",\"bytes\":null,\"top_logprobs\":[]}", 32);
        p += 32;
        s.len += (size_t)(p - w);
        s.p[s.len] = '\0';
    }
    sbuf_add(&s, LIT("]}"));
    text = sbuf_take(&s);
    if (text)
        raw = cJSON_CreateRaw(text);
    free(text);
    return raw;
}

static void add_logprobs(cJSON *choice, const struct completion *c, size_t a, size_t b,
                         enum lp_mode mode)
{
    if (mode == LP_ON && b > a)
        cJSON_AddItemToObject(choice, "logprobs", logprobs_json(c, a, b));
    else if (mode != LP_ABSENT)
        cJSON_AddNullToObject(choice, "logprobs");
}

static void add_usage(cJSON *o, const struct completion *c)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");

    cJSON_AddNumberToObject(u, "prompt_tokens", (double)c->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)c->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens",
                            (double)(c->prompt_tokens + c->completion_tokens));
}

/* Printed JSON (caller frees), NULL on OOM; root is deleted. */
static char *print_json(cJSON *root, size_t *len)
{
    char *s = root ? jsonx_print(root) : NULL;

    cJSON_Delete(root);
    *len = s ? strlen(s) : 0;
    return s;
}

static char *completion_body(const struct completion *c, const struct reply_opts *o,
                             size_t *len)
{
    cJSON *root = resp_base(c, "chat.completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject(), *msg;

    cJSON_AddNumberToObject(ch, "index", 0);
    msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", c->a.content);
    if (o->reasoning_key && c->a.reasoning)
        cJSON_AddStringToObject(msg, o->reasoning_key, c->a.reasoning);
    add_logprobs(ch, c, 0, c->a.n_tok, o->lp);
    cJSON_AddStringToObject(ch, "finish_reason", c->finish);
    cJSON_AddItemToArray(choices, ch);
    if (o->usage)
        add_usage(root, c);
    return print_json(root, len);
}

/* "data: <json>\n\n" (caller frees), NULL on OOM; root is deleted. */
static char *sse_event(cJSON *root, size_t *len)
{
    struct sbuf b = {0};
    size_t n;
    char *json = print_json(root, &n), *out;

    if (!json)
        return NULL;
    sbuf_adds(&b, "data: ");
    sbuf_add(&b, json, n);
    sbuf_adds(&b, "\n\n");
    free(json);
    *len = b.len;
    out = sbuf_take(&b);
    return out;
}

/* A chat.completion.chunk with delta (consumed), tokens [a, b) for logprobs, finish. */
static char *chunk_event(const struct completion *c, cJSON *delta, enum lp_mode lp, size_t a,
                         size_t b, const char *finish, size_t *len)
{
    cJSON *root = resp_base(c, "chat.completion.chunk");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();

    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddItemToObject(ch, "delta", delta);
    add_logprobs(ch, c, a, b, lp);
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    return sse_event(root, len);
}

static char *usage_event(const struct completion *c, size_t *len)
{
    cJSON *root = resp_base(c, "chat.completion.chunk");

    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, c);
    return sse_event(root, len);
}

/* The error event of a stream that fails part way: data: {"error": {...}}. */
static char *error_event(size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");

    cJSON_AddStringToObject(e, "message", "simulated failure part way through the stream ("
                                          SIM_NAME ")");
    cJSON_AddStringToObject(e, "type", "server_error");
    cJSON_AddNullToObject(e, "param");
    cJSON_AddStringToObject(e, "code", "sim_stream_error");
    return sse_event(root, len);
}

/* ---- requests answered later ---- */

enum pend_kind { PK_BODY, PK_ERROR, PK_GARBAGE, PK_STREAM, PK_HANG };

struct pend {
    struct sim *sim;
    struct http_req *req;           /* NULL once released or the client is gone */
    uv_timer_t timer;
    struct list_node node;
    int model;
    enum pend_kind kind;
    int in_write, aborted, closing;
    int status;                     /* PK_ERROR */
    char code[48], msg[240];
    char *body;                     /* PK_BODY */
    size_t body_len;
    struct completion c;            /* PK_STREAM */
    struct reply_opts o;
    size_t sent;
    uint64_t t0;
};

static uint64_t delay_of(double ms)
{
    if (!(ms > 0))
        return 0;
    return (uint64_t)llround(ms > SIM_MAX_DELAY_MS ? SIM_MAX_DELAY_MS : ms);
}

static void pend_on_closed(uv_handle_t *h)
{
    struct pend *p = h->data;

    text_answer_free(&p->c.a);
    free(p->body);
    free(p);
}

/* Forget the request (its in-flight time ends) and free p once its timer is closed.
 * Idempotent. */
static void pend_release(struct pend *p)
{
    if (p->closing)
        return;
    p->closing = 1;
    p->req = NULL;
    list_unlink(&p->node);
    p->sim->npending--;
    stats_end(&p->sim->stats, p->model);
    uv_close((uv_handle_t *)&p->timer, pend_on_closed);
}

static void pend_on_abort(struct http_req *r, void *data)
{
    struct pend *p = data;
    struct stats *st = &p->sim->stats;

    (void)r;
    st->aborted++;
    if (p->model >= 0)
        st->model[p->model].aborted++;
    p->req = NULL;
    if (p->in_write) {
        p->aborted = 1;
        return;
    }
    pend_release(p);
}

static void respond_busy(struct sim *s, struct http_req *req, int model)
{
    http_resp_header(req, "Retry-After", "1");
    http_respond_error(req, 503, "sim_busy", NULL, "too many pending requests (%u)",
                       SIM_MAX_PENDING);
    stats_end(&s->stats, model);
}

/* A pending entry for req, or NULL after answering 503 (too many pending, or OOM). */
static struct pend *pend_new(struct sim *s, struct http_req *req, int model, enum pend_kind k)
{
    struct pend *p = s->npending < SIM_MAX_PENDING ? calloc(1, sizeof *p) : NULL;

    if (!p) {
        respond_busy(s, req, model);
        return NULL;
    }
    p->sim = s;
    p->req = req;
    p->model = model;
    p->kind = k;
    uv_timer_init(s->loop, &p->timer);
    p->timer.data = p;
    list_push_front(&s->pending, &p->node);
    s->npending++;
    http_req_on_abort(req, pend_on_abort, p);
    return p;
}

void reply_release_all(struct sim *s)
{
    struct list_node *it, *tmp;

    LIST_FOR_EACH_SAFE(it, tmp, &s->pending)
        pend_release(LIST_ENTRY(it, struct pend, node));
}

/* 0, or -1 when the client is gone: p is then released (or waits for the abort callback)
 * and the caller must not touch it again. data is freed. */
static int pend_write(struct pend *p, char *data, size_t len)
{
    int rc;

    if (!data)
        return 0;   /* OOM on one event: skip it */
    p->in_write = 1;
    rc = http_stream_write(p->req, data, len);
    p->in_write = 0;
    free(data);
    if (p->aborted) {
        pend_release(p);
        return -1;
    }
    if (rc != 0) {
        uv_timer_stop(&p->timer);   /* the abort callback releases p */
        return -1;
    }
    return 0;
}

/* ---- immediate and delayed whole responses ---- */

static void send_error(struct sim *s, struct http_req *req, int status, const char *code,
                       const char *msg)
{
    char v[32];

    if (status == 429) {
        snprintf(v, sizeof v, "%u", s->retry_after);
        http_resp_header(req, "Retry-After", v);
    }
    http_respond_error(req, status, code, NULL, "%s", msg);
}

static void send_garbage(struct http_req *req)
{
    static const char body[] = "<html><body>502 Bad Gateway: " SIM_NAME
                               " garbage, not JSON {\"choices\": [</body></html>\n";

    http_respond(req, 200, "application/json", body, sizeof body - 1);
}

static void on_whole_timer(uv_timer_t *t)
{
    struct pend *p = t->data;
    struct http_req *req = p->req;

    if (req) {
        http_req_on_abort(req, NULL, NULL);
        if (p->kind == PK_ERROR)
            send_error(p->sim, req, p->status, p->code, p->msg);
        else if (p->kind == PK_GARBAGE)
            send_garbage(req);
        else
            http_respond(req, 200, "application/json", p->body, p->body_len);
    }
    pend_release(p);
}

/* Schedule a whole response of p's kind after ms (p's fields are filled by the caller). */
static void pend_later(struct pend *p, uint64_t ms)
{
    uv_timer_start(&p->timer, on_whole_timer, ms, 0);
}

void reply_error(struct sim *s, struct http_req *req, int model, int status, const char *code,
                 const char *msg, double delay_ms)
{
    struct pend *p;

    if (delay_of(delay_ms) == 0) {
        send_error(s, req, status, code, msg);
        stats_end(&s->stats, model);
        return;
    }
    p = pend_new(s, req, model, PK_ERROR);
    if (!p)
        return;
    p->status = status;
    snprintf(p->code, sizeof p->code, "%s", code);
    snprintf(p->msg, sizeof p->msg, "%s", msg);
    pend_later(p, delay_of(delay_ms));
}

void reply_garbage(struct sim *s, struct http_req *req, int model, double delay_ms)
{
    struct pend *p;

    if (delay_of(delay_ms) == 0) {
        send_garbage(req);
        stats_end(&s->stats, model);
        return;
    }
    p = pend_new(s, req, model, PK_GARBAGE);
    if (p)
        pend_later(p, delay_of(delay_ms));
}

void reply_hang(struct sim *s, struct http_req *req, int model)
{
    pend_new(s, req, model, PK_HANG);
}

/* Non-stream: the whole body after ttft + tokens / tps (a truncated one at once). */
static void reply_whole(struct sim *s, struct http_req *req, struct completion *c,
                        const struct reply_opts *o)
{
    size_t len;
    char *body = completion_body(c, o, &len);
    double tokens_ms = o->tps > 0 ? (double)c->a.n_tok * 1000.0 / o->tps : 0;
    uint64_t ms = delay_of(o->extra_ms + (o->trunc ? 0 : o->ttft_ms + tokens_ms));
    int model = c->model;
    struct pend *p;

    text_answer_free(&c->a);
    if (!body) {
        reply_error(s, req, model, 500, "sim_oom", "out of memory", 0);
        return;
    }
    if (o->trunc)
        len /= 2;
    if (ms == 0) {
        http_respond(req, 200, "application/json", body, len);
        free(body);
        stats_end(&s->stats, model);
        return;
    }
    p = pend_new(s, req, model, PK_BODY);
    if (!p) {
        free(body);
        return;
    }
    p->body = body;
    p->body_len = len;
    pend_later(p, ms);
}

/* ---- streaming ---- */

static void on_stream_timer(uv_timer_t *t);

static int stream_delta(struct pend *p, const char *key, const char *text, size_t a, size_t b)
{
    cJSON *delta = cJSON_CreateObject();
    size_t len = 0;
    char *ev;

    if (key && text)
        cJSON_AddStringToObject(delta, key, text);
    ev = chunk_event(&p->c, delta, p->o.lp, a, b, NULL, &len);
    return pend_write(p, ev, len);
}

static int stream_tokens(struct pend *p, size_t a, size_t b)
{
    const struct text_answer *x = &p->c.a;
    size_t n = x->tok[b] - x->tok[a];
    char *text = malloc(n + 1);
    int rc;

    if (!text)
        return 0;
    memcpy(text, x->content + x->tok[a], n);
    text[n] = '\0';
    rc = stream_delta(p, "content", text, a, b);
    free(text);
    return rc;
}

static void stream_end(struct pend *p)
{
    struct http_req *req = p->req;

    if (req) {
        http_req_on_abort(req, NULL, NULL);
        http_stream_end(req);
    }
    pend_release(p);
}

/* Final chunk, usage chunk, [DONE], end. A truncated stream just stops; a failing one
 * sends its error event and stops. */
static void stream_finish(struct pend *p)
{
    size_t len = 0;
    char *ev;

    if (p->o.error_after >= 0) {
        ev = error_event(&len);
        if (pend_write(p, ev, len) != 0)
            return;
    }
    if (p->o.trunc || p->o.error_after >= 0) {
        stream_end(p);
        return;
    }
    ev = chunk_event(&p->c, cJSON_CreateObject(), p->o.lp, 0, 0, p->c.finish, &len);
    if (pend_write(p, ev, len) != 0)
        return;
    if (p->o.usage) {
        ev = usage_event(&p->c, &len);
        if (pend_write(p, ev, len) != 0)
            return;
    }
    ev = strdup("data: [DONE]\n\n");
    if (pend_write(p, ev, ev ? strlen(ev) : 0) != 0)
        return;
    stream_end(p);
}

/* Tokens due by now: the first at ttft, then tps per second; all of them when tps is 0. */
static size_t stream_due(const struct pend *p)
{
    uint64_t now = uv_now(p->sim->loop);

    if (!(p->o.tps > 0))
        return p->c.a.n_tok;
    return (size_t)((double)(now - p->t0) * p->o.tps / 1000.0) + 1;
}

/* Where the stream stops sending tokens. */
static size_t stream_stop(const struct pend *p)
{
    size_t n = p->c.a.n_tok;

    if (p->o.trunc)
        return n / 2;
    if (p->o.error_after >= 0 && (size_t)p->o.error_after < n)
        return (size_t)p->o.error_after;
    return n;
}

static void stream_tick(struct pend *p)
{
    size_t stop = stream_stop(p), due = stream_due(p), b;

    if (due > stop)
        due = stop;
    while (p->sent < due) {
        b = p->o.tps > 0 ? due : p->sent + ZERO_BATCH;
        if (b > due)
            b = due;
        if (stream_tokens(p, p->sent, b) != 0)
            return;
        p->sent = b;
    }
    if (p->sent >= stop) {
        stream_finish(p);
        return;
    }
    uv_timer_start(&p->timer, on_stream_timer, TICK_MS, 0);
}

static void on_stream_timer(uv_timer_t *t)
{
    stream_tick(t->data);
}

/* At time-to-first-token: headers, the role chunk, the reasoning, then tokens. */
static void stream_start(struct pend *p)
{
    p->in_write = 1;
    http_stream_begin(p->req, 200, "text/event-stream");
    p->in_write = 0;
    if (p->aborted) {
        pend_release(p);
        return;
    }
    if (stream_delta(p, "role", "assistant", 0, 0) != 0)
        return;
    if (p->o.reasoning_key && p->c.a.reasoning &&
        stream_delta(p, p->o.reasoning_key, p->c.a.reasoning, 0, 0) != 0)
        return;
    p->t0 = uv_now(p->sim->loop);
    stream_tick(p);
}

static void on_ttft_timer(uv_timer_t *t)
{
    stream_start(t->data);
}

void reply_completion(struct sim *s, struct http_req *req, struct completion *c,
                      const struct reply_opts *o)
{
    struct pend *p;
    uint64_t ms;

    if (!o->stream) {
        reply_whole(s, req, c, o);
        return;
    }
    p = pend_new(s, req, c->model, PK_STREAM);
    if (!p) {
        text_answer_free(&c->a);
        return;
    }
    p->c = *c;
    memset(&c->a, 0, sizeof c->a);
    p->o = *o;
    ms = delay_of(o->ttft_ms + o->extra_ms);
    if (ms == 0) {
        stream_start(p);
        return;
    }
    uv_timer_start(&p->timer, on_ttft_timer, ms, 0);
}
