/* facade.h - the OpenAI-compatible facade: POST /v1/chat/completions runs the whole
 * draft -> route -> refine pipeline for the last user message and answers with a standard
 * chat.completion (or its stream of chunks), plus a "briefd" object with the route,
 * latency and cost. Pure translation between the two shapes: the API module runs the job.
 *
 * Ownership: facade_parse fills a caller-owned job_req (free with job_req_free); the
 * functions returning char* hand the text to the caller; out is only read. */
#ifndef BRIEFD_FACADE_H
#define BRIEFD_FACADE_H

#include <stddef.h>

#include "job.h"

struct cJSON;

struct facade_req {
    int stream;
    int include_usage;       /* stream_options.include_usage */
};

/* Parse a chat.completions request: model must be alias; the last user message (string
 * content or text parts) is the document; an optional system/developer message becomes
 * the job's instructions; max_tokens / max_completion_tokens bound the brief (about 0.75
 * words a token, clamped to 10..2000 words); metadata (strings) passes through. Other
 * OpenAI parameters (temperature, top_p, n=1, user, ...) are accepted and ignored; tool
 * calling (tools, tool_choice, functions, function_call) is refused with 400
 * unsupported_parameter naming the parameter. The body first gets job_body_check (strict
 * JSON: a \u0000 anywhere is 400 invalid_value with param naming the string, e.g.
 * "messages[1].content").
 * Returns 0, or -1 with err filled (404 model_not_found for another model). */
int facade_parse(const char *body, size_t len, const char *alias, size_t max_text_bytes,
                 struct job_req *out, struct facade_req *fr, struct job_verr *err);

/* The answers, printed from a finished run: id is its job id, out the pipeline's output
 * object (pipe_out_json: "result", "usage", "route", "latency_ms", "cost_usd", "cached"...).
 * Each returns malloc'd JSON text (NULL on OOM).
 *
 * The chat.completion: the brief as the assistant's message, usage summed over the stages,
 * and the "briefd" object (job_id, route, latency_ms, cost_usd, cached, cached_from, and the
 * result's model, refined, degraded). */
char *facade_completion(const char *id, const struct cJSON *out, const char *alias);

/* Streaming, one piece at a time: each function returns whole "data: {...}\n\n" events.
 * The chunks' id is "chatcmpl-<id>", created the Unix time shared by every chunk of one
 * answer.
 *   role:  the first chunk, delta {"role": "assistant", "content": ""};
 *   text:  a content delta of len bytes of text;
 *   end:   the last chunk (empty delta, finish_reason "stop", the "briefd" object), then -
 *          include_usage - a chunk with empty choices, "usage" and the "briefd" object
 *          again, then "data: [DONE]";
 *   error: {"error": {"message", "type", "param", "code"}}, which the OpenAI SDKs raise
 *          as an APIError; the stream then ends without [DONE]. */
char *facade_chunk_role(const char *id, long created, const char *alias);
char *facade_chunk_text(const char *id, long created, const char *alias, const char *text,
                        size_t len);
char *facade_chunk_end(const char *id, const struct cJSON *out, long created, const char *alias,
                       int include_usage);
char *facade_chunk_error(const char *type, const char *code, const char *message);

#endif
