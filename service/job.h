/* job.h - the brief job: request validation, ids, timestamps, the job object's JSON.
 * Pure (no I/O); the request parser is a fuzz target.
 *
 * Ownership: struct job_req owns every pointer in it (malloc'd); job_req_free() releases
 * them and zeroes the struct. Functions returning cJSON* hand the tree to the caller. */
#ifndef BRIEFD_JOB_H
#define BRIEFD_JOB_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define JOB_MAX_INSTRUCTIONS 4096
#define JOB_MAX_FLAGS 32
#define JOB_MAX_FLAG_LEN 64
#define JOB_MAX_META 32
#define JOB_MAX_META_KEY 64
#define JOB_MAX_META_VALUE 256
#define JOB_MAX_URL 2048
#define JOB_DEFAULT_MAX_WORDS 120
#define JOB_ID_LEN 30 /* "job_" + 26-char ULID */

enum job_priority { PRIO_LOW = 0, PRIO_NORMAL = 1, PRIO_HIGH = 2 };
const char *job_priority_name(enum job_priority p);

struct job_req {
    char *text;
    size_t text_len;
    char *instructions;          /* NULL when absent */
    int max_words;
    char **topic_flags;
    size_t n_topic_flags;
    enum job_priority priority;
    struct cJSON *metadata;      /* object of strings, or NULL */
    char *callback_url;          /* NULL when absent */
};

/* A validation failure: the HTTP status, the envelope's code and param, and a message. */
struct job_verr {
    int status;                  /* 400, 413, 415, 422 */
    const char *code;            /* static: "text_required", "invalid_type", ... */
    char param[80];              /* "" when not about one field */
    char msg[256];
};

/* Fill err: param may be NULL (""); param and msg are cut to fit, and every byte outside
 * printable ASCII becomes '?' (a name cut in the middle of a character, or a control
 * character, never reaches the error envelope). Returns -1. */
int job_verr_set(struct job_verr *err, int status, const char *code, const char *param,
                 const char *msg);

/* The strict JSON check every request body gets before cJSON reads it (base/jsonv.h):
 * 0, or -1 with err filled:
 *   400 invalid_json   body empty, not JSON, data after the value, a raw control character
 *                      in a string, nesting deeper than JSONV_MAX_DEPTH (param "");
 *   400 invalid_value  a string holds \u0000 (param: the value's path, "text",
 *                      "metadata.source", "messages[1].content"; "" at the top level);
 *   400 invalid_utf8   a string is not UTF-8 or holds a lone surrogate (param: its path). */
int job_body_check(const char *body, size_t len, struct job_verr *err);

/* The largest request body a job of at most max_text_bytes can need: every field at its
 * bound, each byte written in the longest JSON form there is (a \u00XX escape: 6 bytes a
 * byte), plus 64 KiB for names, punctuation, numbers and whitespace. The HTTP body limit;
 * the text itself is still checked against max_text_bytes once decoded. */
size_t job_body_bound(size_t max_text_bytes);

/* Validate a POST /v1/jobs body (len bytes, need not be NUL-terminated): job_body_check,
 * then every field of docs/API.md; unknown fields are refused (code unknown_parameter).
 * Returns 0 and fills out, or -1 with err filled and out left zeroed. */
int job_req_parse(const char *body, size_t len, size_t max_text_bytes, struct job_req *out,
                  struct job_verr *err);
/* The same rules on a parsed body (root borrowed): the facade's request, already checked
 * by job_body_check, validated without printing and parsing it again. */
int job_req_from_object(const struct cJSON *root, size_t max_text_bytes, struct job_req *out,
                        struct job_verr *err);
void job_req_free(struct job_req *r);
/* The normalized request as JSON (what is stored and what the worker reads back). */
struct cJSON *job_req_to_json(const struct job_req *r);
/* Read a stored normalized request back (trusted input, still checked). 0 or -1. */
int job_req_from_json(const char *json, size_t len, struct job_req *out);
/* metadata[key] if it is a string, else NULL (borrowed). */
const char *job_req_meta(const struct job_req *r, const char *key);
/* 1 if n bytes at s are strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF): the check
 * every text field of a job passes. */
int job_utf8_valid(const char *s, size_t n);

/* Job ids are "job_" + a ULID-shaped 26 chars of Crockford base32: 48 bits of creation time
 * (ms) then 80 bits, so ids sort by creation time. A queued job's id encodes the queue entry
 * it was first submitted as (priority, entry id, 38 bits of check), so the store finds a
 * queued job from its id without an index; a job that never was queued (the facade's) has
 * random bits instead. out must hold JOB_ID_LEN + 1 bytes. */
void job_new_id(char *out, int64_t now_ms);
/* The id of the job first queued as entry ("<ms>-<seq>") of priority prio's stream.
 * Returns 0, or -1 when entry is not a stream entry id. */
int job_id_of_entry(char *out, enum job_priority prio, const char *entry);
/* The priority and first entry of a queued job's id; -1 for any other id. */
int job_entry_of_id(const char *id, enum job_priority *prio, char *entry, size_t len);
/* The creation time encoded in an id (ms), or -1. */
int64_t job_id_ms(const char *id);
/* 1 if s looks like a job id (so lookups of garbage never reach Redis keys). */
int job_id_valid(const char *s);


/* The routing input of a job: its document and topic flags, and its draft's signals.
 * Everything is borrowed from r, draft and lp. */
struct route_input;
struct lp_summary;
void job_route_input(const struct job_req *r, const char *draft, const struct lp_summary *lp,
                     int truncated, struct route_input *in);

/* Substitute {text} {draft} {max_words} {instructions} in tmpl. instructions is inserted
 * as "\n\nInstructions: ..." when non-empty, else as "". Returns a malloc'd string or NULL. */
char *job_render_prompt(const char *tmpl, const struct job_req *r, const char *draft);

#endif
