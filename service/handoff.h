/* handoff.h - requests this process queued, kept parsed for its own worker.
 *
 * A process in role all is both the API that validates and queues a job and a worker that
 * soon reads the same entry back from Redis. The API puts the request it validated here,
 * under the exact normalized text it queued (job_req_to_json, printed); when its worker is
 * delivered an entry whose stored request is that text byte for byte, it takes the parsed
 * request instead of parsing the text again (a third of a job's request handling). Redis
 * stays the only source of truth: an entry delivered to another process, reclaimed after a
 * crash or delivered after the request left this table is parsed from its text as always.
 *
 * Bounded: at most HANDOFF_MAX requests and HANDOFF_MAX_BYTES of their text; the oldest go
 * first. A request whose submit failed is left to age out that way.
 *
 * Ownership: the process owns the table (handoff_new / handoff_free); handoff_put takes the
 * request (and zeroes the caller's), handoff_take hands one to the caller. Single-threaded. */
#ifndef BRIEFD_HANDOFF_H
#define BRIEFD_HANDOFF_H

#include <stddef.h>

#include "job.h"

#define HANDOFF_MAX 512
#define HANDOFF_MAX_BYTES ((size_t)4 << 20)

struct handoff;

/* 0 and *out, or BD_ENOMEM. */
int handoff_new(struct handoff **out);
void handoff_free(struct handoff *h);

/* Keep *r (taken: *r is zeroed) under req_text, the normalized text queued for it (taken
 * too: freed here when it cannot be kept). A text beyond the bound, or a NULL h, leaves *r
 * with the caller. */
void handoff_put(struct handoff *h, char *req_text, struct job_req *r);
/* The request kept under exactly req_text[0..len), moved into *out: 0; -1 if there is none
 * (nothing changes). NULL h: -1. */
int handoff_take(struct handoff *h, const char *req_text, size_t len, struct job_req *out);
/* Requests kept, and their texts' bytes. */
size_t handoff_count(const struct handoff *h, size_t *bytes);

#endif
