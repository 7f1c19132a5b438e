/* oai.h - OpenAI-compatible Chat Completions: build request bodies and parse every response
 * variant the servers briefd talks to produce (Foundry Local, llama.cpp, vLLM, Ollama,
 * OpenAI, Azure). Pure: no I/O, no clock; safe to fuzz.
 *
 * Variants handled (docs/UPSTREAMS.md):
 *  - logprobs at choices[0].logprobs.content[].logprob: present, absent, or null;
 *  - reasoning in message.reasoning_content / message.reasoning: never taken as the brief;
 *  - gpt-oss harmony channels leaked into content
 *    ("<|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...")
 *    : only the final channel is the brief;
 *  - usage missing: tokens estimated, usage_estimated = 1;
 *  - finish_reason "length": truncated = 1;
 *  - Server-Sent Events streams (data: {...chunk...}, data: [DONE]), fed in any chunk sizes;
 *  - error bodies {"error": {"message", "type", "code"}}, non-JSON and truncated bodies.
 *
 * Ownership: every string in struct oai_result is malloc'd and owned by the result; release
 * with oai_result_free() (which leaves it zeroed, ready for reuse). On a parse failure the
 * result holds whatever was parsed before the failure and must still be freed. */
#ifndef BRIEFD_OAI_H
#define BRIEFD_OAI_H

#include <stddef.h>

/* Bounds on what a response may make us hold. */
#define OAI_MAX_CONTENT_BYTES (1u << 20)   /* brief text */
#define OAI_MAX_LOGPROBS 65536             /* tokens with logprobs kept (later ones dropped) */
#define OAI_MAX_BODY_BYTES (32u << 20)     /* a complete body we agree to parse */
#define OAI_SSE_MAX_LINE (2u << 20)        /* one SSE line, and one event's joined data */

struct oai_result {
    char *content;          /* the brief: message.content (harmony final channel only), or "" */
    size_t content_len;
    char *finish_reason;    /* "stop", "length", ... or NULL when the server sent none */
    int truncated;          /* finish_reason == "length" */
    char *model;            /* the "model" the server reported, or NULL */
    int has_reasoning;      /* the server sent reasoning_content/reasoning or harmony analysis */
    int reasoning_from;     /* where reasoning was seen: OAI_REASONING_* bits */
    long prompt_tokens;
    long completion_tokens;
    int usage_estimated;    /* 1: the server sent no usage; counts are estimates */
    int has_logprobs;       /* 1: logprobs.content was an array (possibly empty) */
    double *logprobs;       /* n_logprobs token logprobs, in order */
    size_t n_logprobs;
};

/* Where a response carried reasoning (struct oai_result.reasoning_from). */
#define OAI_REASONING_CONTENT 1   /* message.reasoning_content (vLLM, llama.cpp --jinja) */
#define OAI_REASONING_FIELD   2   /* message.reasoning (Ollama, OpenRouter, newer vLLM) */
#define OAI_REASONING_PARTS   4   /* content parts of type "thinking" or "reasoning" */
#define OAI_REASONING_HARMONY 8   /* gpt-oss harmony channels leaked into content */

/* Error codes for the parse functions (negative). */
#define OAI_EPARSE    (-1)  /* not JSON, or JSON of the wrong shape */
#define OAI_ENOCHOICE (-2)  /* no choices[0].message / delta */
#define OAI_ETOOBIG   (-3)  /* a bound above was exceeded */
#define OAI_EUPSTREAM (-4)  /* the body is an {"error": ...} object */
#define OAI_ENOMEM    (-5)  /* out of memory */

void oai_result_free(struct oai_result *r);

/* Build a request body (malloc'd NUL-terminated JSON; caller frees; NULL on OOM).
 * system may be NULL or "" (then no system message); user NULL is sent as "".
 * max_tokens <= 0 and a non-finite temperature are left out (server default). */
char *oai_build_request(const char *model, const char *system, const char *user,
                        int max_tokens, double temperature, int stream, int logprobs);

/* Parse a complete (non-streamed) chat.completion body of len bytes (not NUL-terminated).
 * prompt_chars is the size of the prompt sent, used to estimate prompt tokens when the
 * server sent no usage. Returns 0, or a negative OAI_E* code with msg (NUL-terminated,
 * <= msglen bytes) saying what was wrong; for OAI_EUPSTREAM msg is the server's message.
 * out is overwritten: pass it zeroed (or after oai_result_free), else its strings leak.
 * On success content is never NULL. Estimated completion tokens count the content and any
 * reasoning text (both were generated). Also recognised: harmony leaked with its special
 * tokens stripped ("analysis...assistantfinal..."), content as an array of text parts,
 * vLLM's {"object": "error", "message": ...} and completions-style token_logprobs. */
int oai_parse_response(const char *body, size_t len, size_t prompt_chars,
                       struct oai_result *out, char *msg, size_t msglen);

/* Extract the message of an error body ({"error": {"message": ...}} or {"error": "..."} or
 * {"message": ...}; also {"detail": "..."} from FastAPI-based servers, and error.type or
 * error.code when error.message is missing) into msg. Returns 0 if one was found, -1 if not
 * (msg then holds a printable prefix of the body, non-printable bytes replaced by '?',
 * whitespace runs collapsed to one space; "(empty body)" for an empty or blank body). */
int oai_error_message(const char *body, size_t len, char *msg, size_t msglen);

/* Approximate token count of text (about 4 bytes a token, at least 1 for non-empty). */
long oai_estimate_tokens(size_t bytes);

/* Harmony: if s contains a "<|channel|>final<|message|>" section, return a malloc'd copy of
 * that section's text (up to "<|end|>", "<|return|>" or the end), with *found = 1; else a
 * copy of s with *found = 0. NULL on OOM. */
char *oai_harmony_final(const char *s, size_t len, size_t *out_len, int *found);

/* Growth state of a result being accumulated (internal to oai.c; zeroed by init). */
struct oai_accum {
    size_t content_cap, logprobs_cap;
    size_t reasoning_bytes; /* reasoning text seen, for the completion-token estimate */
    int usage_seen;         /* bit 0: prompt_tokens came, bit 1: completion_tokens came */
};

/* Incremental SSE parser for streamed chat.completion.chunk events. */
struct oai_sse {
    char *line;             /* partial line carried between feeds (owned) */
    size_t line_len, line_cap;
    char *data;             /* the current event's data lines joined (owned) */
    size_t data_len, data_cap;
    int done;               /* saw data: [DONE] */
    int got_token;          /* saw the first non-empty content delta */
    size_t prompt_chars;
    struct oai_result acc;  /* accumulated result; finish with oai_sse_finish() */
    int has_data;           /* the current event has at least one data line */
    int failed;             /* the OAI_E* code of the first failure, or 0 */
    struct oai_accum st;
};
void oai_sse_init(struct oai_sse *s, size_t prompt_chars);
/* Feed bytes as they arrive, in any chunking. Returns 0, 1 when this feed produced the
 * first content token (the caller stamps time-to-first-token), or a negative OAI_E* code
 * with msg set (an in-stream error event, a malformed chunk, a bound exceeded). A failure
 * is sticky: later feeds return the same code. Events after [DONE] are ignored. */
int oai_sse_feed(struct oai_sse *s, const char *buf, size_t len, char *msg, size_t msglen);
/* End of stream: move the accumulated result into out (harmony applied, usage estimated if
 * none came). Returns 0, or OAI_EPARSE if the stream ended without [DONE] and without
 * any finish_reason (truncated stream). Frees the parser's buffers either way. A last line
 * without its newline and a last event without its blank line are still processed. After
 * a failed feed it returns that feed's code (out still gets what was accumulated).
 * out is overwritten as for oai_parse_response. */
int oai_sse_finish(struct oai_sse *s, struct oai_result *out, char *msg, size_t msglen);
void oai_sse_free(struct oai_sse *s);

/* The part of the brief a client may be shown while the stream runs: *text points into the
 * accumulated content (valid until the next feed), the length is returned. Plain content
 * shows as it comes, less a trailing "<" or "<|..." that may open a harmony token. Content
 * that is (or may still become) harmony - it starts with "<|" or with "analysis" (special
 * tokens stripped) - shows only the final channel's text once its marker came, from its
 * first non-space byte, up to an end-of-message token, without trailing whitespace, so the
 * text shown is always a prefix of what oai_sse_finish() leaves in content. (A stream that
 * opens a harmony section later, or holds two final channels, can break that: compare.) */
size_t oai_sse_visible(const struct oai_sse *s, const char **text);

#endif
