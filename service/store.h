/* store.h - briefd's Redis data model: the job queue, job records and their transitions.
 *
 * Keys (P = redis.prefix, default "briefd:"):
 *   P job:<id>          hash: req (normalized request JSON), meta (priority, max_words,
 *                       metadata, config...), status, created_ms, attempts (deliveries),
 *                       started_ms, out (result/route/usage/cost/latency/error JSON),
 *                       finished_ms, tenant. Expires result_ttl_s after it ends.
 *   P q:high|normal|low streams of {id}, one consumer group "briefd-workers". An entry is
 *                       XACKed and XDELed when its job ends, so XLEN = queued + running.
 *   P dead              dead-letter stream {id, reason} of jobs that ran out of deliveries.
 *   P events            pub/sub channel: "<id> <status>" on every transition.
 * Every write that must not half-happen is one Lua script (submit, begin, transition,
 * finish): a job is queued together with its record or not at all; a finished job is never
 * overwritten (first result wins, so a zombie worker cannot replace a stored result); a
 * transition from a worker whose delivery is no longer current is refused.
 *
 * Ownership: strings passed in are copied into the command before a function returns.
 * Replies handed to callbacks are valid only during the callback. A function that returns
 * an error does not call its callback. */
#ifndef BRIEFD_STORE_H
#define BRIEFD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "rds.h"

#define STORE_GROUP "briefd-workers"

/* Connection options for the config's Redis (strings borrowed from c). */
void store_redis_opts(const struct bd_config *c, const char *name, struct rds_opts *o);

/* Key of a stream / job, into buf (>= 160 bytes). */
void store_queue_key(const char *prefix, enum job_priority p, char *buf, size_t len);
void store_job_key(const char *prefix, const char *id, char *buf, size_t len);
void store_events_key(const char *prefix, char *buf, size_t len);

/* Submit outcome. */
enum store_submit_rc { STORE_SUBMITTED = 0, STORE_FULL = 1, STORE_DUPLICATE = 2 };
struct store_submit {
    const char *prefix;
    const char *id;
    const char *req_json;
    const char *meta_json;
    int64_t created_ms;
    enum job_priority priority;
    long max_queue;
    const char *tenant;         /* "" when none */
    const char *idem_key;       /* full Redis key, or NULL */
    const char *idem_value;     /* "<id> <body-hash>" stored under idem_key */
    long idem_ttl_s;
};
/* cb(data, status, rc, depth_or_existing): status < 0 on Redis failure; rc as above;
 * for STORE_DUPLICATE str is the stored idem value; depth is the queue depth. */
typedef void (*store_submit_cb)(void *data, int status, enum store_submit_rc rc, long depth,
                                const char *existing);
int store_submit(struct rds *r, const struct store_submit *s, store_submit_cb cb, void *data);

/* Fetch a job object (SPEC §2 shape). cb gets a cJSON object (owned by the callback) or
 * NULL: status BD_ENOTFOUND when the job does not exist, < 0 on Redis failure. */
struct cJSON;
typedef void (*store_job_cb)(void *data, int status, struct cJSON *job);
int store_get(struct rds *r, const char *prefix, const char *id, store_job_cb cb, void *data);
/* Build the job object from the hash fields (exposed for tests). */
struct cJSON *store_job_object(const char *id, const char *status, const char *created_ms,
                               const char *attempts, const char *meta, const char *out,
                               const char *finished_ms);

/* Begin a delivery: refuses jobs already ended or gone (acks their entry), counts the
 * delivery, fails the job into the dead-letter stream past max_attempts, else marks it
 * drafting. cb(data, status, what, attempt, req_json, created_ms): what is "ok", "gone",
 * "done" or "exhausted"; req_json and created_ms only for "ok". stats_json (may be NULL):
 * the increments counted if the job fails here for lack of deliveries. */
typedef void (*store_begin_cb)(void *data, int status, const char *what, int attempt,
                               const char *req_json, size_t req_len, int64_t created_ms);
int store_begin(struct rds *r, const char *prefix, const char *stream, const char *entry,
                const char *id, int max_attempts, long ttl_s, const char *stats_json,
                store_begin_cb cb, void *data);

/* Set a running status (drafting/routing/refining) if attempt is still the job's current
 * delivery and it has not ended. cb may be NULL. cb(data, status, applied). */
typedef void (*store_flag_cb)(void *data, int status, int applied);
int store_transition(struct rds *r, const char *prefix, const char *id, const char *status,
                     int attempt, store_flag_cb cb, void *data);

/* End a job: succeeded/failed with its out JSON, applying stats_json (stats.h; NULL for
 * none) in the same script, acking and deleting the stream entry, setting the TTL and
 * publishing - unless the job already ended (applied = 0: first result wins) or attempt is
 * no longer the job's current delivery (applied = 0: the worker that reclaimed it owns it
 * now, and its entry is left alone). */
int store_finish(struct rds *r, const char *prefix, const char *stream, const char *entry,
                 const char *id, int attempt, const char *status, const char *out_json,
                 int64_t finished_ms, long ttl_s, const char *stats_json, store_flag_cb cb,
                 void *data);

/* Hand a job back to the queue on graceful shutdown: if it has not ended, it goes back to
 * "queued" with a fresh stream entry and this delivery is not counted. cb may be NULL. */
int store_handback(struct rds *r, const char *prefix, const char *stream, const char *entry,
                   const char *id, store_flag_cb cb, void *data);

/* Dead letters: the newest count entries [{entry, id, reason, dead_at}] (cb owns the array). */
typedef void (*store_json_cb)(void *data, int status, struct cJSON *json);
int store_dead_list(struct rds *r, const char *prefix, long count, store_json_cb cb, void *data);
/* Requeue a dead-lettered job: back to "queued" with its deliveries reset and a fresh stream
 * entry. cb(data, status, applied): status BD_ENOTFOUND if there is no such job; applied 0
 * if the job exists but is not in the dead-letter stream. */
int store_requeue(struct rds *r, const char *prefix, const char *id, store_flag_cb cb,
                  void *data);

/* Queue depth (sum of the three streams). cb(data, status, depth). */
typedef void (*store_depth_cb)(void *data, int status, long depth);
int store_depth(struct rds *r, const char *prefix, store_depth_cb cb, void *data);

/* Create the streams' consumer group if missing (MKSTREAM); cb may be NULL. */
int store_ensure_groups(struct rds *r, const char *prefix);

#endif
