/* mclient.c - OpenAI-compatible model client on hconn (http://) or libcurl multi, with
 * retries. */
#include "mclient.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bderr.h"
#include "curlm.h"
#include "hconn.h"
#include "sbuf.h"
#include "url.h"

#define MC_MAX_BODY (4u << 20)       /* non-streamed response bound */
#define MC_MAX_BACKOFF_MS 10000u     /* cap on one backoff delay */
#define MC_MAX_RETRY_AFTER_S 120.0   /* cap on an honoured Retry-After */

#define MC_EASY_POOL 64            /* easy handles kept for the next attempts */

struct mc_ctx {
    uv_loop_t *loop;
    struct curlm *engine;
    struct hc_pool *hc;         /* http:// calls, NULL: every call through libcurl */
    struct list_node calls;     /* started, not yet called back */
    unsigned rng;
    CURL *pool[MC_EASY_POOL];   /* finished attempts' handles, reset (curl_easy_reset) */
    unsigned npool;
};

struct mc_attempt {
    struct curlm_xfer xfer;     /* libcurl: xfer.data = the attempt, xfer.easy = the CURL * */
    struct hc_xfer hx;          /* hconn: hx.data = the attempt */
    struct mc_ctx *ctx;
    struct mc_call *call;
    CURL *easy;                 /* NULL: the attempt runs on hconn */
    struct curl_slist *hdrs;
    struct sbuf head;           /* hconn: the request head (wiped: it may hold the key) */
    long code;                  /* the response's status, once known */
    char host[URL_MAX_HOST + 1]; /* hconn: the URL's host */
    char *buf;                  /* raw body (non-stream, or any non-200) */
    size_t len, cap;
    struct oai_sse sse;
    int sse_used;
    int plain;                  /* 1: the body is buffered and parsed whole (no SSE) */
    int typed;                  /* the 200's content type has been looked at */
    int sse_rc;                 /* first error the SSE parser reported */
    char sse_msg[200];
    int too_big;
    uint64_t t0;                /* uv_hrtime at start */
    double ttft_ms;
    double retry_after_s;
    char *errbuf;               /* libcurl: its error buffer (CURL_ERROR_SIZE, owned); an
                                   hconn exchange says why it failed in hx.err */
};

const char *mc_fail_name(enum mc_fail f)
{
    static const char *const names[] = {"ok", "connect", "timeout", "http_4xx", "rate_limit",
                                        "http_5xx", "bad_body", "too_big", "deadline",
                                        "canceled"};
    return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "unknown";
}

static double ms_since(uint64_t t0) { return (double)(uv_hrtime() - t0) / 1e6; }

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

int mc_builtin_http(void)
{
    const char *v = getenv("BRIEFD_UPSTREAM_CLIENT");
    if (v && strcmp(v, "curl") == 0)
        return 0;
    /* libcurl's proxy variables (it ignores an upper-case HTTP_PROXY): libcurl honours them */
    return !env_set("http_proxy") && !env_set("all_proxy") && !env_set("ALL_PROXY");
}

int mc_ctx_new(uv_loop_t *loop, struct curlm *engine, struct mc_ctx **out)
{
    struct mc_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return BD_ENOMEM;
    ctx->loop = loop;
    ctx->engine = engine;
    ctx->rng = (unsigned)uv_hrtime() ^ 0x9e3779b9u;
    list_init(&ctx->calls);
    if (mc_builtin_http() && hc_pool_new(loop, &ctx->hc) != 0) {
        free(ctx);
        return BD_ENOMEM;
    }
    *out = ctx;
    return 0;
}

/* --- one attempt --- */

/* A Retry-After value: seconds, or an HTTP date. */
static void retry_after(struct mc_attempt *a, const char *value, size_t vlen)
{
    char tmp[64], *end;
    double v;

    if (vlen >= sizeof(tmp))
        vlen = sizeof(tmp) - 1;
    memcpy(tmp, value, vlen);
    tmp[vlen] = '\0';
    v = strtod(tmp, &end);
    if (end != tmp && v >= 0) {
        a->retry_after_s = v;
    } else {
        time_t when = curl_getdate(tmp, NULL);
        if (when > 0) {
            double d = difftime(when, time(NULL));
            a->retry_after_s = d > 0 ? d : 0;
        }
    }
}

static size_t on_header(char *buf, size_t size, size_t n, void *userp)
{
    struct mc_attempt *a = userp;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0)
        retry_after(a, buf + sizeof(name) - 1, len - (sizeof(name) - 1));
    return len;
}

static int append_raw(struct mc_attempt *a, const char *p, size_t len)
{
    if (a->len + len > MC_MAX_BODY) {
        a->too_big = 1;
        return -1;
    }
    if (a->len + len + 1 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8192;
        while (cap < a->len + len + 1)
            cap *= 2;
        char *nb = realloc(a->buf, cap);
        if (!nb)
            return -1;
        a->buf = nb;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, p, len);
    a->len += len;
    a->buf[a->len] = '\0';
    return 0;
}

/* A streamed request answered with JSON rather than an event stream: read it whole. */
static void check_stream_type(struct mc_attempt *a, const char *ctype)
{
    a->typed = 1;
    if (ctype && strcasestr(ctype, "json") && !strcasestr(ctype, "event-stream")) {
        a->plain = 1;
        a->call->stream_ignored = 1;
    }
}

/* Pass newly visible streamed text to the caller. */
static void show_text(struct mc_attempt *a)
{
    const char *text;
    size_t len = oai_sse_visible(&a->sse, &text);
    if (len > a->call->text_len) {
        a->call->text_len = len;
        a->call->on_text(a->call, text, len);
    }
}

/* Body bytes of the response (a->code set; a streamed 200 typed): 0, or -1 to stop. */
static int body_in(struct mc_attempt *a, const char *p, size_t len)
{
    if (a->ttft_ms < 0 && a->plain)
        a->ttft_ms = ms_since(a->t0);
    if (a->code == 200 && !a->plain) {
        int rc;
        if (a->sse_rc)
            return 0; /* drain; the error is reported at the end */
        rc = oai_sse_feed(&a->sse, p, len, a->sse_msg, sizeof(a->sse_msg));
        if (rc == 1 && a->ttft_ms < 0)
            a->ttft_ms = ms_since(a->t0);
        if (rc < 0)
            a->sse_rc = rc;
        else if (a->call->on_text)
            show_text(a);
        return 0;
    }
    return append_raw(a, p, len);
}

static size_t on_write(char *p, size_t size, size_t n, void *userp)
{
    struct mc_attempt *a = userp;
    size_t len = size * n;
    curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &a->code);
    if (a->code == 200 && a->call->stream && !a->typed) {
        char *ctype = NULL;
        curl_easy_getinfo(a->easy, CURLINFO_CONTENT_TYPE, &ctype);
        check_stream_type(a, ctype);
    }
    return body_in(a, p, len) == 0 ? len : 0;
}

/* hconn's callbacks: the same, from the parsed response. */
static int hc_on_header(struct hc_xfer *x, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    struct mc_attempt *a = x->data;
    a->code = x->status;
    if (nlen == 11 && strncasecmp(name, "retry-after", 11) == 0)
        retry_after(a, value, vlen);
    else if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0 && a->code == 200 &&
             a->call->stream && !a->typed)
        check_stream_type(a, value);
    return 0;
}

static int hc_on_body(struct hc_xfer *x, const char *p, size_t len)
{
    struct mc_attempt *a = x->data;
    a->code = x->status;
    if (a->code == 200 && a->call->stream && !a->typed)
        check_stream_type(a, NULL); /* no Content-Type: an event stream */
    return body_in(a, p, len);
}

/* Free a header list, wiping each line first: they may hold keys. */
static void headers_free(struct curl_slist *h)
{
    for (struct curl_slist *it = h; it; it = it->next)
        if (it->data)
            explicit_bzero(it->data, strlen(it->data));
    curl_slist_free_all(h);
}

static void attempt_free(struct mc_attempt *a)
{
    if (!a)
        return;
    if (a->easy && a->ctx->npool < MC_EASY_POOL) {
        /* reused: libcurl's advice (its allocations and settings are not made again) */
        curl_easy_reset(a->easy);
        a->ctx->pool[a->ctx->npool++] = a->easy;
    } else if (a->easy) {
        curl_easy_cleanup(a->easy);
    }
    headers_free(a->hdrs);
    if (a->head.p)
        explicit_bzero(a->head.p, a->head.len);
    free(a->head.p);
    if (a->sse_used)
        oai_sse_free(&a->sse);
    free(a->buf);
    free(a->errbuf);
    free(a);
}

static uint64_t now_ms(const struct mc_ctx *ctx) { return uv_now(ctx->loop); }

static struct curl_slist *add_line(struct curl_slist *h, const char *line)
{
    struct curl_slist *n = h ? curl_slist_append(h, line) : NULL;

    if (h && !n)
        headers_free(h);
    return n;
}

/* Content type, the key in the header its auth mode names, and the caller's headers. */
static struct curl_slist *build_headers(const struct mc_call *call)
{
    struct curl_slist *h = curl_slist_append(NULL, call->body ? "Content-Type: application/json"
                                                              : "Accept: application/json");
    char auth[600];

    if (call->body && call->stream && !call->raw)
        h = add_line(h, "Accept: text/event-stream");
    if (call->body)
        h = add_line(h, "Expect:"); /* no 100-continue round trip before a large body */
    if (call->api_key) {
        snprintf(auth, sizeof(auth), call->auth == MC_AUTH_API_KEY ? "api-key: %s"
                                                                   : "Authorization: Bearer %s",
                 call->api_key);
        h = add_line(h, auth);
        explicit_bzero(auth, sizeof(auth));
    }
    for (size_t i = 0; h && i < call->n_headers; i++)
        h = add_line(h, call->headers[i]);
    return h;
}

static void on_xfer_done(struct curlm_xfer *x, int result);
static void on_hc_done(struct hc_xfer *x, int result);

/* The request head for hconn: what build_headers gives libcurl, plus what libcurl adds
 * itself (Host, User-Agent unless the caller's headers set one, Accept: any when none is
 * given, Content-Length). One allocation, so that no copy of the key is left unwiped.
 * Returns 0 or BD_ENOMEM. */
static int hc_head(struct sbuf *h, const struct mc_call *call, const struct url_parts *u,
                   size_t body_len)
{
    const char *target = u->path_len && *u->path == '/' ? u->path : "/";
    size_t need = 256 + strlen(call->url) + (call->api_key ? strlen(call->api_key) + 32 : 0);
    int ua = 0;

    for (size_t i = 0; i < call->n_headers; i++) {
        need += strlen(call->headers[i]) + 2;
        ua |= strncasecmp(call->headers[i], "user-agent:", 11) == 0;
    }
    if (!sbuf_room(h, need))
        return BD_ENOMEM;
    sbuf_printf(h, "%s %s HTTP/1.1\r\nHost: %s%s%s", call->body ? "POST" : "GET", target,
                u->host_v6 ? "[" : "", u->host, u->host_v6 ? "]" : "");
    if (u->port != 80)
        sbuf_printf(h, ":%d", u->port);
    sbuf_adds(h, ua ? "\r\n" : "\r\nUser-Agent: briefd/0.1\r\n");
    if (!call->body)
        sbuf_adds(h, "Accept: application/json\r\n");
    else if (call->stream && !call->raw)
        sbuf_adds(h, "Content-Type: application/json\r\nAccept: text/event-stream\r\n");
    else
        sbuf_adds(h, "Content-Type: application/json\r\nAccept: */*\r\n");
    if (call->api_key)
        sbuf_printf(h, call->auth == MC_AUTH_API_KEY ? "api-key: %s\r\n"
                                                     : "Authorization: Bearer %s\r\n",
                    call->api_key);
    for (size_t i = 0; i < call->n_headers; i++) {
        sbuf_adds(h, call->headers[i]);
        sbuf_adds(h, "\r\n");
    }
    if (call->body)
        sbuf_printf(h, "Content-Length: %zu\r\n", body_len);
    sbuf_adds(h, "\r\n");
    return h->oom ? BD_ENOMEM : 0;
}

/* An attempt on hconn when the URL is plain http:// without credentials (libcurl sends
 * those as Basic auth) and ctx has a pool. Returns 0 (started), 1 (not for hconn: use
 * libcurl) or BD_ENOMEM. */
static int hc_attempt(struct mc_attempt *a, long timeout)
{
    const struct mc_call *call = a->call;
    struct url_parts u;
    const char *why;
    struct hc_req req;
    size_t body_len = call->body ? strlen(call->body) : 0;

    if (!a->ctx->hc || url_parse(call->url, &u, &why) != 0 || strcmp(u.scheme, "http") != 0 ||
        u.has_userinfo)
        return 1;
    if (hc_head(&a->head, call, &u, body_len) != 0)
        return BD_ENOMEM;
    memset(&req, 0, sizeof(req));
    memcpy(a->host, u.host, sizeof(a->host)); /* borrowed by hconn until the attempt ends */
    req.host = a->host;
    req.port = u.port;
    req.head = a->head.p;
    req.head_len = a->head.len;
    req.body = call->body;
    req.body_len = body_len;
    req.timeout_ms = timeout;
    req.connect_timeout_ms = timeout < 10000 ? timeout : 10000L;
    a->hx.data = a;
    a->hx.on_header = hc_on_header;
    a->hx.on_body = hc_on_body;
    a->t0 = uv_hrtime();
    return hc_start(a->ctx->hc, &a->hx, &req, on_hc_done) == 0 ? 0 : BD_ENOMEM;
}

static int attempt_start(struct mc_call *call)
{
    struct mc_ctx *ctx = call->ctx;
    struct mc_attempt *a = calloc(1, sizeof(*a));
    long timeout = call->timeout_ms > 0 ? call->timeout_ms : 60000;
    int rc;
    if (!a)
        return BD_ENOMEM;
    if (call->deadline_ms) {
        uint64_t now = now_ms(ctx);
        long left = call->deadline_ms > now ? (long)(call->deadline_ms - now) : 0;
        if (left < timeout)
            timeout = left;
        if (timeout < 1) {
            free(a);
            return BD_EDEADLINE;
        }
    }
    a->ctx = ctx;
    a->call = call;
    a->ttft_ms = -1;
    a->plain = !call->stream || call->raw;
    if (!a->plain) {
        oai_sse_init(&a->sse, call->prompt_chars);
        a->sse_used = 1;
    }
    rc = hc_attempt(a, timeout);
    if (rc == 0) {
        call->att = a;
        call->attempts++;
        return 0;
    }
    if (rc < 0)
        goto fail;
    a->easy = ctx->npool ? ctx->pool[--ctx->npool] : curl_easy_init();
    if (!a->easy || !(a->errbuf = calloc(1, CURL_ERROR_SIZE)))
        goto fail;
    a->hdrs = build_headers(call);
    if (!a->hdrs)
        goto fail;
    curl_easy_setopt(a->easy, CURLOPT_URL, call->url);
    if (call->body) {
        curl_easy_setopt(a->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, call->body);
        curl_easy_setopt(a->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(call->body));
    }
    curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->hdrs);
    curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(a->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(a->easy, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->errbuf);
    curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout < 10000 ? timeout : 10000L);
    curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(a->easy, CURLOPT_USERAGENT, "briefd/0.1");
    curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* memory per call in flight: model answers are small and come in pieces anyway */
    curl_easy_setopt(a->easy, CURLOPT_BUFFERSIZE, 8192L);
    curl_easy_setopt(a->easy, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    a->t0 = uv_hrtime();
    a->xfer.data = a;
    a->xfer.easy = a->easy;
    if (curlm_add(ctx->engine, &a->xfer, on_xfer_done) != 0)
        goto fail;
    call->att = a;
    call->attempts++;
    return 0;
fail:
    attempt_free(a);
    return BD_ENOMEM;
}

/* --- finishing --- */

static void call_done(struct mc_call *call, int status)
{
    list_unlink(&call->node);
    call->fail = status == 0 ? MC_OK : call->fail;
    call->cb(call, status);
}

static unsigned rng_next(struct mc_ctx *ctx)
{
    ctx->rng ^= ctx->rng << 13;
    ctx->rng ^= ctx->rng >> 17;
    ctx->rng ^= ctx->rng << 5;
    return ctx->rng;
}

static void on_backoff_closed(uv_handle_t *h) { free(h); }

static void on_backoff(uv_timer_t *t)
{
    struct mc_call *call = t->data;
    int rc;
    call->backoff = NULL;
    uv_close((uv_handle_t *)t, on_backoff_closed);
    rc = attempt_start(call);
    if (rc != 0) {
        if (rc == BD_EDEADLINE) {
            call->fail = MC_FAIL_DEADLINE;
            snprintf(call->err, sizeof(call->err), "deadline reached after %d attempts",
                     call->attempts);
        }
        call_done(call, rc);
    }
}

/* Schedule another attempt if allowed; returns 1 if scheduled. */
static int maybe_retry(struct mc_call *call, double retry_after_s)
{
    struct mc_ctx *ctx = call->ctx;
    uint64_t delay, cap;
    if (call->attempts >= call->max_attempts)
        return 0;
    cap = (uint64_t)(call->backoff_ms > 0 ? call->backoff_ms : 200) << (call->attempts - 1);
    if (cap > MC_MAX_BACKOFF_MS)
        cap = MC_MAX_BACKOFF_MS;
    delay = cap / 2 + rng_next(ctx) % (cap / 2 + 1); /* jitter in [cap/2, cap] */
    if (retry_after_s > 0) {
        if (retry_after_s > MC_MAX_RETRY_AFTER_S)
            retry_after_s = MC_MAX_RETRY_AFTER_S;
        if ((uint64_t)(retry_after_s * 1000.0) > delay)
            delay = (uint64_t)(retry_after_s * 1000.0);
    }
    if (call->deadline_ms && now_ms(ctx) + delay + 1 >= call->deadline_ms)
        return 0;
    call->backoff = malloc(sizeof(*call->backoff));
    if (!call->backoff)
        return 0;
    uv_timer_init(ctx->loop, call->backoff);
    call->backoff->data = call;
    uv_timer_start(call->backoff, on_backoff, delay, 0);
    return 1;
}

static enum mc_fail classify_curl(CURLcode cc, const struct mc_attempt *a)
{
    if (a->too_big)
        return MC_FAIL_TOO_BIG;
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return MC_FAIL_TIMEOUT;
    return MC_FAIL_CONNECT;
}

/* Turn a finished exchange into call->res or call->fail; returns 1 if retryable. xfail: how
 * the exchange itself ended (MC_OK: a response read whole; else MC_FAIL_TIMEOUT,
 * MC_FAIL_CONNECT or MC_FAIL_TOO_BIG, with why in a->errbuf or a->hx.err). */
static int attempt_outcome(struct mc_call *call, struct mc_attempt *a, enum mc_fail xfail)
{
    long code = a->code;
    int rc;
    call->http_status = code;
    if (xfail != MC_OK) {
        call->fail = xfail;
        snprintf(call->err, sizeof(call->err), "%s", a->easy ? a->errbuf : a->hx.err);
        if (call->fail == MC_FAIL_TOO_BIG)
            snprintf(call->err, sizeof(call->err), "response larger than %u bytes",
                     MC_MAX_BODY);
        return 1;
    }
    if (code != 200) {
        char msg[200];
        oai_error_message(a->buf ? a->buf : "", a->len, msg, sizeof(msg));
        snprintf(call->err, sizeof(call->err), "HTTP %ld: %s", code, msg);
        if (code == 429) {
            call->fail = MC_FAIL_RATE_LIMIT;
            call->retries_429++;
            return 1;
        }
        call->fail = (code >= 500 || code == 408) ? MC_FAIL_HTTP_5XX : MC_FAIL_HTTP_4XX;
        if (code == 408)
            call->fail = MC_FAIL_TIMEOUT;
        return code >= 500 || code == 408;
    }
    oai_result_free(&call->res);
    if (call->raw) {
        call->raw_len = a->len;
        call->raw_text = a->buf ? a->buf : strdup("");
        a->buf = NULL;
        a->len = a->cap = 0;
        rc = call->raw_text ? 0 : OAI_ENOMEM;
    } else if (!a->plain) {
        char msg[200], fmsg[200];
        int frc = oai_sse_finish(&a->sse, &call->res, fmsg, sizeof(fmsg));
        rc = a->sse_rc ? a->sse_rc : frc;
        snprintf(msg, sizeof(msg), "%s", a->sse_rc ? a->sse_msg : fmsg);
        if (rc) {
            snprintf(call->err, sizeof(call->err), "bad stream: %s", msg);
            oai_result_free(&call->res);
        }
    } else {
        char msg[200];
        rc = oai_parse_response(a->buf ? a->buf : "", a->len, call->prompt_chars, &call->res,
                                msg, sizeof(msg));
        if (rc) {
            snprintf(call->err, sizeof(call->err), "bad response body: %s", msg);
            oai_result_free(&call->res);
        }
    }
    if (rc == OAI_EUPSTREAM) {
        call->fail = MC_FAIL_HTTP_5XX;
        return 1;
    }
    if (rc == OAI_ETOOBIG) {
        call->fail = MC_FAIL_TOO_BIG;
        return 0;
    }
    if (rc) {
        call->fail = MC_FAIL_BAD_BODY;
        return 1;
    }
    call->fail = MC_OK;
    call->ttft_ms = a->ttft_ms;
    return 0;
}

static void attempt_done(struct mc_call *call, enum mc_fail xfail)
{
    struct mc_attempt *a = call->att;
    double took = ms_since(a->t0);
    double retry_after;
    int retryable;
    call->att = NULL;
    call->busy_ms += took;
    retryable = attempt_outcome(call, a, xfail) && call->text_len == 0;
    retry_after = a->retry_after_s;
    attempt_free(a);
    if (call->fail != MC_OK)
        call->fails[call->fail]++;
    if (call->fail == MC_OK) {
        call->elapsed_ms = took;
        call_done(call, 0);
        return;
    }
    if (retryable && maybe_retry(call, call->fail == MC_FAIL_RATE_LIMIT ? retry_after : 0))
        return;
    if (retryable && call->attempts < call->max_attempts) {
        char prev[256];
        snprintf(prev, sizeof(prev), "%s", call->err);
        snprintf(call->err, sizeof(call->err), "deadline reached after %d attempts; last: %.200s",
                 call->attempts, prev);
    }
    switch (call->fail) {
    case MC_FAIL_TIMEOUT: call_done(call, BD_ETIMEOUT); break;
    case MC_FAIL_CONNECT: call_done(call, BD_ECONNECT); break;
    case MC_FAIL_RATE_LIMIT: call_done(call, BD_ERATELIMIT); break;
    case MC_FAIL_BAD_BODY: call_done(call, BD_EBADBODY); break;
    case MC_FAIL_TOO_BIG: call_done(call, BD_ETOOBIG); break;
    default: call_done(call, BD_EUPSTREAM); break;
    }
}

static void on_xfer_done(struct curlm_xfer *x, int result)
{
    struct mc_attempt *a = x->data;
    CURLcode cc = (CURLcode)result;
    enum mc_fail xfail = cc == CURLE_OK ? MC_OK : classify_curl(cc, a);

    curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &a->code);
    if (cc != CURLE_OK && !a->errbuf[0])
        snprintf(a->errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cc));
    attempt_done(a->call, xfail);
}

static void on_hc_done(struct hc_xfer *x, int result)
{
    struct mc_attempt *a = x->data;
    enum mc_fail xfail = MC_OK;

    a->code = x->status;
    if (result != HC_OK)
        xfail = a->too_big ? MC_FAIL_TOO_BIG
                : result == HC_ETIMEOUT ? MC_FAIL_TIMEOUT : MC_FAIL_CONNECT;
    attempt_done(a->call, xfail);
}

/* --- public --- */

int mc_ctx_busy(const struct mc_ctx *ctx) { return !list_empty(&ctx->calls); }

int mc_call_start(struct mc_ctx *ctx, struct mc_call *call, mc_cb cb)
{
    int rc;
    if (!call->url || (!call->body && !call->raw) || call->max_attempts < 1)
        return BD_EINVAL;
    mc_call_reset(call);
    call->ctx = ctx;
    call->cb = cb;
    rc = attempt_start(call);
    if (rc != 0)
        return rc;
    list_push_front(&ctx->calls, &call->node);
    return 0;
}

void mc_call_cancel(struct mc_call *call)
{
    if (!call->ctx || (!call->att && !call->backoff))
        return;
    if (call->att) {
        if (call->att->easy)
            curlm_remove(&call->att->xfer);
        else
            hc_cancel(&call->att->hx);
        attempt_free(call->att);
        call->att = NULL;
    }
    if (call->backoff) {
        uv_timer_stop(call->backoff);
        uv_close((uv_handle_t *)call->backoff, on_backoff_closed);
        call->backoff = NULL;
    }
    call->fail = MC_FAIL_CANCELED;
    snprintf(call->err, sizeof(call->err), "canceled");
    call_done(call, BD_ECANCELED);
}

void mc_call_reset(struct mc_call *call)
{
    oai_result_free(&call->res);
    call->attempts = 0;
    call->retries_429 = 0;
    call->http_status = 0;
    call->fail = MC_OK;
    call->err[0] = '\0';
    call->ttft_ms = -1;
    call->elapsed_ms = 0;
    call->busy_ms = 0;
    call->stream_ignored = 0;
    call->text_len = 0;
    free(call->raw_text);
    call->raw_text = NULL;
    call->raw_len = 0;
    memset(call->fails, 0, sizeof(call->fails));
}

void mc_ctx_close(struct mc_ctx *ctx)
{
    struct list_node *first;
    while ((first = list_first(&ctx->calls)) != NULL)
        mc_call_cancel(LIST_ENTRY(first, struct mc_call, node));
    while (ctx->npool)
        curl_easy_cleanup(ctx->pool[--ctx->npool]);
    hc_pool_close(ctx->hc);
    free(ctx);
}
