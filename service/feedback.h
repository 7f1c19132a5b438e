/* feedback.h - people's feedback on a finished job (POST /v1/jobs/{id}/feedback,
 * docs/API.md#feedback): the request body's validation, the item stored with the job, and
 * the facts of the job that the statistics count it under. Pure: no I/O, no clock.
 *
 * A body is {"score": 1-5 (an integer, required), "label": "..." (1..64 characters),
 * "comment": "..." (0..2000 characters)}; label and comment may be null (= absent). Lengths
 * count Unicode characters (the body is checked as UTF-8 first). Checks, in order, with the
 * status, code and param of the error envelope:
 *   job_body_check (job.h): 400 invalid_json / invalid_value / invalid_utf8
 *   not an object: 400 invalid_json; a field twice: 400 duplicate_parameter (the field);
 *   an unknown field: 400 unknown_parameter (the field);
 *   score missing: 400 score_required; not a number: 400 invalid_type; outside 1..5:
 *   422 invalid_value; not an integer: 400 invalid_type (all param "score");
 *   label / comment not a string: 400 invalid_type; too long (or an empty label): 422
 *   invalid_value (param the field).
 *
 * Ownership: struct feedback owns its strings (feedback_free); feedback_item_json returns a
 * tree the caller deletes; struct feedback_facts borrows from the job object it was read
 * from (valid while that object lives). */
#ifndef BRIEFD_FEEDBACK_H
#define BRIEFD_FEEDBACK_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

struct cJSON;

#define FEEDBACK_LABEL_MAX 64       /* characters */
#define FEEDBACK_COMMENT_MAX 2000   /* characters */
#define FEEDBACK_KEEP 20            /* items kept per job: the newest */
#define FEEDBACK_BODY_MAX 65536     /* bytes of a request body */
#define FEEDBACK_MAX_VOTES 32       /* policy verdicts of a job read */

struct feedback {
    int score;                      /* 1..5 */
    char *label;                    /* NULL when absent */
    char *comment;                  /* NULL when absent */
};

/* Validate a body (len bytes). 0 and out filled, or -1 with err filled (out zeroed). */
int feedback_parse(const char *body, size_t len, struct feedback *out, struct job_verr *err);
void feedback_free(struct feedback *f);

/* The stored item: {"object": "brief.feedback", "job_id", "score", "label" (or null),
 * "comment" (or null), "created_at" (ISO 8601 of now_ms), "api_key_id"}. NULL on OOM. */
struct cJSON *feedback_item_json(const struct feedback *f, const char *job_id, int64_t now_ms,
                                 const char *api_key_id);

/* What the statistics count a feedback under, read from the job object (GET's shape). */
struct feedback_facts {
    int finished;                   /* status succeeded or failed */
    const char *decision;           /* route.decision, or NULL */
    const char *policies[FEEDBACK_MAX_VOTES]; /* route.verdicts[].policy, guards left out */
    const char *verdicts[FEEDBACK_MAX_VOTES];
    size_t n;
    const char *source, *tenant;    /* metadata.source / metadata.tenant, or NULL */
    int64_t finished_ms;            /* finished_at (0 when unreadable) */
};
void feedback_job_facts(const struct cJSON *job, struct feedback_facts *out);

#endif
