/* judge.h - the LLM judge of briefs (docs/EVALUATION.md): the Chat Completions request that
 * asks a model to score one brief against its document, and a tolerant reader of the answer.
 * Pure: no I/O, no clock.
 *
 * The request is the judge slot's ordinary request (oai_build_request: model, a system
 * message with the rubric, the user message, max_tokens, temperature, stream, logprobs)
 * plus "response_format": {"type": "json_schema", "json_schema": {"name": "brief_rubric",
 * "strict": true, "schema": ...}}, where the schema asks for an object with exactly the
 * integer scores "coherence", "faithfulness", "brevity" (each one of 1..5, written as an
 * enum: strict structured-output modes accept enum where some refuse minimum/maximum) and
 * a string "rationale", all required, nothing else. The user message is the slot's
 * prompt.user template with {text} = the document, {max_words} = the limit and {draft} =
 * the brief; the default template gives exactly
 *
 *     Document:\n<document>\n\nMaximum words: <N>\n\nBrief:\n<brief>
 *
 * The answer's message.content is read tolerantly: servers that ignore response_format
 * wrap the object in prose or a ```json fence, so the FIRST complete JSON object in the
 * content is taken (strings, escapes and nested braces respected; a brace-delimited span
 * that is not JSON is skipped); gpt-oss harmony channels, when still present, are reduced
 * to the final channel first. Each score must be a JSON number that is an integer from 1
 * to 5: a missing, non-integer ("4", 3.5) or out-of-range (0, 6) score makes the judgement
 * null, with the reason in why. The rationale is optional (kept up to
 * JUDGE_RATIONALE_MAX - 1 bytes, cut at a UTF-8 boundary).
 *
 * Ownership: judge_build_request() returns a malloc'd string (caller frees);
 * judge_response_format() a cJSON tree the caller deletes; struct judgement is the
 * caller's and holds everything. Inputs are only read. */
#ifndef BRIEFD_JUDGE_H
#define BRIEFD_JUDGE_H

#include <stddef.h>

struct cJSON;
struct model_cfg;

#define JUDGE_SCHEMA_NAME "brief_rubric"
#define JUDGE_MIN_SCORE 1
#define JUDGE_MAX_SCORE 5
#define JUDGE_RATIONALE_MAX 1024
#define JUDGE_MAX_CANDIDATES 64  /* brace-delimited spans tried before giving up */

struct judgement {
    int valid;                   /* 0: a null judgement (why says why) */
    int coherence, faithfulness, brevity;   /* 1..5 when valid */
    double overall;              /* (coherence + faithfulness + brevity) / 3 */
    char rationale[JUDGE_RATIONALE_MAX];
    char why[160];               /* "" when valid */
};

/* The response_format member (the brief_rubric JSON Schema), a new tree. NULL on OOM. */
struct cJSON *judge_response_format(void);

/* The body of a judge call for the model slot m (its name, prompts, max_tokens, temperature,
 * stream and logprobs as given: the caller sets what it wants, e.g. temperature 0), scoring
 * brief against doc (doc_len bytes) with the limit max_words. *prompt_chars gets the bytes
 * of the messages (for token estimates). NULL on OOM. */
char *judge_build_request(const struct model_cfg *m, const char *doc, size_t doc_len,
                          int max_words, const char *brief, size_t *prompt_chars);

/* Read the judge's answer content (len bytes; NULL or empty is a null judgement). */
void judge_parse(const char *content, size_t len, struct judgement *out);

/* The first complete JSON object in s[0..len): 0 with its span [*start, *end), or -1. */
int judge_find_object(const char *s, size_t len, size_t *start, size_t *end);

#endif
