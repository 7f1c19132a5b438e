/* evalset.h - the dataset of `briefd eval`: JSON Lines, one document a line
 * (docs/EVALUATION.md):
 *
 *     {"id": "q3-report", "text": "...", "max_words": 120, "topic_flags": ["legal"],
 *      "instructions": "..."}
 *
 * Only "text" is required. "text", "max_words", "topic_flags" and "instructions" follow the
 * rules of POST /v1/jobs (job_req_parse: the same bounds and messages, with the config's
 * limits.max_text_bytes); "id" is a string of 1 to EVALSET_MAX_ID printable characters,
 * unique in the dataset, by default "line-N" (N: its line number). Any other member (the
 * job API's priority, metadata, callback_url included) is refused, as are repeated members.
 * Blank lines are skipped; line numbers count every line from 1. Pure: the caller reads
 * the file.
 *
 * Ownership: an item owns its id and request (evalset_item_free); evalset_add() moves the
 * item into the set, which owns it from then on (evalset_free). */
#ifndef BRIEFD_EVALSET_H
#define BRIEFD_EVALSET_H

#include <stddef.h>

#include "job.h"

#define EVALSET_MAX_ID 128
#define EVALSET_MAX_DOCS 100000   /* documents in one dataset */

struct evalset_item {
    char *id;
    size_t line;                 /* 1-based line number in the file */
    struct job_req req;
};

struct evalset {
    struct evalset_item *items;
    size_t n, cap;
};

/* 1 if line[0..len) holds only whitespace (a skipped line). */
int evalset_blank(const char *line, size_t len);

/* Parse one line (len bytes, not NUL-terminated; a trailing '\r' is ignored) numbered
 * lineno. Returns 0 with *out filled, or -1 with msg saying what is wrong (without the line
 * number) and *out zeroed. */
int evalset_parse_line(const char *line, size_t len, size_t lineno, size_t max_text_bytes,
                       struct evalset_item *out, char *msg, size_t msglen);

/* Append it (moved: *it is zeroed). Returns 0, BD_ETOOBIG past EVALSET_MAX_DOCS, or
 * BD_ENOMEM (then *it is still the caller's). */
int evalset_add(struct evalset *s, struct evalset_item *it);

/* Report every item whose id an earlier line already has ("id 'x' already used on line 3",
 * with the later line's number), in id order. Returns how many, or BD_ENOMEM. */
int evalset_check_ids(const struct evalset *s,
                      void (*report)(size_t line, const char *msg, void *data), void *data);

void evalset_item_free(struct evalset_item *it);
void evalset_free(struct evalset *s);

#endif
