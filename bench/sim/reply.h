/* reply.h - answering a chat request, now or later: a completion as one JSON body or as
 * Server-Sent Events paced at the model's speed, an error, a garbage body, or nothing at
 * all (a hang). A request answered later is a pending entry on s->pending with its own
 * timer; at most SIM_MAX_PENDING are pending (a 503 with Retry-After: 1 beyond).
 *
 * Every reply_* call ends the request's in-flight time (stats_end) once its response is
 * complete or its client is gone, and is the last thing the caller does with req.
 *
 * Ownership: reply_completion() takes c->a (freed once sent or dropped); strings are
 * copied. reply_release_all() drops every pending request (at shutdown). */
#ifndef SIM_REPLY_H
#define SIM_REPLY_H

#include <stdint.h>

#include "sim.h"
#include "text.h"

struct http_req;

enum lp_mode { LP_ABSENT, LP_NULL, LP_ON };

struct completion {
    struct text_answer a;
    const char *finish;             /* "stop" | "length" */
    long prompt_tokens, completion_tokens;
    char id[48];
    int64_t created;                /* Unix seconds */
    int model;
};

struct reply_opts {
    int stream;
    enum lp_mode lp;
    int usage;                      /* usage object (non-stream) / usage chunk (stream) */
    const char *reasoning_key;      /* "reasoning_content", "reasoning", or NULL: none */
    int trunc;                      /* truncate fault: half the body / half the tokens */
    long error_after;               /* stream: an error event after this many tokens; -1 */
    double ttft_ms, tps;            /* the model's timing */
    double extra_ms;                /* added before the first byte (a rule's delay_ms) */
};

void reply_completion(struct sim *s, struct http_req *req, struct completion *c,
                      const struct reply_opts *o);
/* An error envelope (429 adds Retry-After: s->retry_after) after delay_ms. */
void reply_error(struct sim *s, struct http_req *req, int model, int status, const char *code,
                 const char *msg, double delay_ms);
/* 200 with a body that is not JSON, after delay_ms. */
void reply_garbage(struct sim *s, struct http_req *req, int model, double delay_ms);
/* Never answered; dropped when the client goes away or at shutdown. */
void reply_hang(struct sim *s, struct http_req *req, int model);
void reply_release_all(struct sim *s);

#endif
