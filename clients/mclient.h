/* mclient.h - model client: OpenAI-compatible Chat Completions over HTTP/1.1. A call to a
 * plain http:// URL without credentials goes through the client's own keep-alive pool
 * (hconn.h: libuv TCP and llhttp, the request in one write, the answer parsed as it is
 * read); https, credentials in the URL and proxies go through the shared transfer engine
 * (curlm.h: libcurl's multi interface driven by libuv). The environment decides once, at
 * mc_ctx_new (mc_builtin_http): BRIEFD_UPSTREAM_CLIENT=curl, or a proxy set in
 * http_proxy, all_proxy or ALL_PROXY, sends every call through libcurl. Connections are
 * reused across calls either way, and so are libcurl's easy handles (the context keeps up
 * to MC_EASY_POOL of them, each reset with curl_easy_reset before its next attempt). Each call
 * has a per-attempt timeout; failed attempts are retried with exponential backoff and full
 * jitter, bounded by max_attempts and the call's deadline; a 429's Retry-After is honoured
 * when it fits before the deadline.
 *
 * What is retried: connection failures, timeouts, 408, 429, 5xx, and 200s whose body is
 * not a valid completion (non-JSON, truncated, truncated stream). What is not: other 4xx
 * (the request itself is wrong) - those fail at once.
 *
 * A call may also be a plain GET whose body is returned raw (body NULL, raw set: e.g. GET
 * {base_url}/models), with the same headers, timeouts and retries.
 *
 * A server that answers a streamed request with a plain JSON completion (Content-Type
 * application/json: it ignored "stream": true) is accepted: the body is parsed as a
 * non-streamed answer and stream_ignored is set.
 *
 * Streamed text as it arrives: a streamed call with on_text set reports the brief's visible
 * text so far (oai_sse_visible: harmony analysis never shows) each time it grows. Once any
 * text went out, a failed attempt is not retried (a new attempt would repeat it): the call
 * fails with what went wrong.
 *
 * Ownership: struct mc_call is caller-owned and must stay valid until its callback has run.
 * Input strings (url, api_key, body, the header lines and the array holding them) are
 * borrowed until then too; the copies libcurl makes of the key and the header lines are
 * wiped when each attempt ends. The result (call->res, call->raw_text) belongs to the call:
 * release with mc_call_reset() (also safe on a never-started call). */
#ifndef BRIEFD_MCLIENT_H
#define BRIEFD_MCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "oai.h"

struct mc_ctx;
struct curlm;
struct mc_call;
struct mc_attempt; /* internal: one HTTP exchange */

typedef void (*mc_cb)(struct mc_call *call, int status);

/* Why the last attempt failed (for errors, metrics and retry decisions). */
enum mc_fail {
    MC_OK = 0,
    MC_FAIL_CONNECT,      /* connection refused / DNS / reset */
    MC_FAIL_TIMEOUT,      /* the attempt's timeout passed */
    MC_FAIL_HTTP_4XX,     /* not retried */
    MC_FAIL_RATE_LIMIT,   /* 429 */
    MC_FAIL_HTTP_5XX,
    MC_FAIL_BAD_BODY,     /* non-JSON, truncated, wrong shape */
    MC_FAIL_TOO_BIG,      /* the body exceeded the response bound */
    MC_FAIL_DEADLINE,     /* no time left for another attempt */
    MC_FAIL_CANCELED
};
const char *mc_fail_name(enum mc_fail f); /* "connect", "timeout", "http_4xx", ... */

/* How api_key is sent. */
enum mc_auth {
    MC_AUTH_BEARER = 0,         /* Authorization: Bearer KEY */
    MC_AUTH_API_KEY = 1         /* api-key: KEY (Azure) */
};

struct mc_call {
    void *data;                 /* the caller's */
    /* inputs */
    const char *url;            /* full URL: base_url + "/chat/completions" */
    const char *api_key;        /* NULL: no key header */
    enum mc_auth auth;          /* how api_key is sent */
    const char *const *headers; /* n_headers "Name: value" lines sent as well, or NULL */
    size_t n_headers;
    const char *body;           /* request JSON (see oai_build_request); NULL: a GET */
    int raw;                    /* keep a 200's body in raw_text/raw_len instead of parsing it as a
                                   completion (res stays empty) */
    size_t prompt_chars;        /* for usage estimates */
    int stream;                 /* the body asks for stream: parse SSE, measure TTFT */
    long timeout_ms;            /* per attempt */
    int max_attempts;           /* >= 1 */
    int backoff_ms;             /* base delay; attempt k waits rand(0, base * 2^(k-1)), capped */
    uint64_t deadline_ms;       /* absolute, on uv_now(); 0 = none */
    /* stream only, may be NULL: the visible text so far (cumulative: text[0..len), valid
     * during the callback), called each time it grows. Runs inside the transfer: it must
     * not cancel or reset the call (defer that to a timer). */
    void (*on_text)(struct mc_call *call, const char *text, size_t len);
    /* outputs, valid in the callback */
    struct oai_result res;
    int attempts;               /* attempts made */
    int retries_429;            /* of which answered 429 */
    long http_status;           /* of the last attempt (0: none) */
    enum mc_fail fail;          /* MC_OK on success */
    char err[256];              /* human-readable reason of the failure */
    double ttft_ms;             /* successful attempt: start to first content token (stream),
                                   or to first response byte (non-stream); -1 if unknown */
    double elapsed_ms;          /* successful attempt's duration */
    double busy_ms;             /* all attempts' durations summed (busy-time pricing) */
    int stream_ignored;         /* stream was asked, the server sent a JSON body instead */
    size_t text_len;            /* bytes of text passed to on_text so far (0: none) */
    char *raw_text;             /* raw: the 200's body (NUL-terminated), else NULL */
    size_t raw_len;
    int fails[MC_FAIL_CANCELED + 1]; /* failed attempts by reason (for metrics) */
    /* internal */
    struct mc_ctx *ctx;
    mc_cb cb;
    struct mc_attempt *att;
    uv_timer_t *backoff;
    struct list_node node;      /* the client's list of started calls */
};

/* Create a client on loop whose transfers run on engine (borrowed: it must outlive the
 * client). Returns 0 or BD_ENOMEM. */
int mc_ctx_new(uv_loop_t *loop, struct curlm *engine, struct mc_ctx **out);
/* Cancel every call in flight (their callbacks run with BD_ECANCELED) and free the client. */
void mc_ctx_close(struct mc_ctx *ctx);

/* 1 unless the environment sends every call through libcurl (see above). */
int mc_builtin_http(void);

/* 1 while a call is started and not yet called back (in flight or backing off), else 0. */
int mc_ctx_busy(const struct mc_ctx *ctx);

/* Start call (inputs filled). Returns 0 (cb will run exactly once, never from inside this
 * function) or a negative error (cb will not run). On success status 0; on failure a
 * negative BD_E* code and call->fail / call->err say why. */
int mc_call_start(struct mc_ctx *ctx, struct mc_call *call, mc_cb cb);
/* Cancel a started call: its callback runs with BD_ECANCELED before this returns. */
void mc_call_cancel(struct mc_call *call);
/* Free the call's result and reset outputs (inputs are kept). */
void mc_call_reset(struct mc_call *call);

#endif
