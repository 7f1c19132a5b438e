/* cache.h - the exact cache's pure parts (docs/API.md#the-exact-cache): the key a request is
 * cached under and the value a finished job leaves there. Pure: no I/O; the store keeps the
 * entries (store.h), the pipeline decides when to look and when to leave one (gate.h).
 *
 * The key covers everything that shapes a brief: the document, the instructions, max_words,
 * the topic flags (as a set: order and repeats do not matter), the configuration that wrote
 * it (bd_config.answer_version: models.draft, models.refine, routing) and the tenant (a
 * tenant never gets another tenant's answer, nor learns from the timing that another tenant
 * sent the same document).
 *
 * Ownership: functions returning char * or cJSON * hand them to the caller; inputs are only
 * read. */
#ifndef BRIEFD_CACHE_H
#define BRIEFD_CACHE_H

#include <stddef.h>

#include "job.h"

struct cJSON;

#define CACHE_KEY_LEN 64           /* hex digits of a key (SHA-256) */

/* The key of request r for tenant (NULL or "": none) under scope, into out. Returns 0 or
 * BD_ENOMEM. */
int cache_key(const struct job_req *r, const char *tenant, const char *scope,
              char out[CACHE_KEY_LEN + 1]);
/* The entry a finished job leaves: {"job": job_id, "result": result} (malloc'd), or NULL. */
char *cache_value(const char *job_id, const struct cJSON *result);
/* Read an entry (len bytes): 0 with *result (the stored result object, caller frees) and
 * from (the job that wrote it, JOB_ID_LEN + 1 bytes), or -1 when it is not one. */
int cache_value_parse(const char *value, size_t len, struct cJSON **result,
                      char from[JOB_ID_LEN + 1]);

#endif
