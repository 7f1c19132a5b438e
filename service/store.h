/* store.h - briefd's Redis schema: the job queue, job records, their transitions, the
 * statistics' storage and the events channel. The only module that knows key names, stream
 * and group names, Lua scripts and the shape of Redis replies; the rest of briefd speaks in
 * jobs, entries and figures (docs/ARCHITECTURE.md has the key layout).
 *
 * Keys (P = redis.prefix, default "briefd:"):
 *   P job:<id>          hash: req (normalized request JSON), meta (priority, max_words,
 *                       metadata...), status, created_ms, attempts (deliveries), started_ms,
 *                       out (result/route/usage/cost/latency/error JSON), finished_ms,
 *                       tenant. Expires result_ttl_s after it ends.
 *   P q:high|normal|low streams of {id}, one consumer group "briefd-workers". An entry is
 *                       XACKed and XDELed when its job ends, so XLEN = queued + running.
 *   P dead              dead-letter stream {id, reason} of jobs that ran out of deliveries.
 *   P events            pub/sub channel: "<id> <status>" on every transition.
 *   P idem:<key>:<k>    idempotency keys: "<id> <body hash>".
 *   P stats:m:<minute>, P stats:h:<hour> (+ :idx:<dim> sets and :<dim>:<value> hashes),
 *   P stats:total, P stats:day:<yyyymmdd>
 *                       statistics buckets (fields: stats.h).
 * Every write that must not half-happen is one Lua script (submit, begin, transition,
 * finish, hand-back, requeue): a job is queued together with its record or not at all; a
 * finished job is never overwritten (first result wins, so a zombie worker cannot replace a
 * stored result); a write from a delivery that is no longer the job's current one is
 * refused; a result and its statistics are written together.
 *
 * Connections: the store keeps one connection for commands, one for the events
 * subscription (opened by store_watch) and one for the workers' blocking reads (opened by
 * the first store_read). Each reconnects by itself with backoff.
 *
 * Ownership: a struct store belongs to whoever opened it; strings passed in are copied into
 * the command before a function returns; data handed to callbacks (entries, strings, JSON)
 * is valid only during the callback unless the callback's comment says it owns it. A
 * function that returns an error does not call its callback. */
#ifndef BRIEFD_STORE_H
#define BRIEFD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "job.h"

struct cJSON;
struct store;
struct stats_delta;
struct stats_rows;

struct store_opts {
    const char *host;           /* copied */
    int port;
    int db;
    const char *password;       /* NULL: no AUTH (copied, wiped on close) */
    const char *prefix;         /* key prefix (copied); fixed for the store's life */
    const char *consumer;       /* this process's consumer name in the group (copied) */
};

/* The command connection came up (connected = 1) or went down (0). */
typedef void (*store_state_cb)(void *data, int connected);

/* Open the store (starts connecting). cb may be NULL. Returns 0 or BD_ENOMEM. */
int store_open(uv_loop_t *loop, const struct store_opts *o, store_state_cb cb, void *data,
               struct store **out);
/* 1 when the command connection is up. */
int store_ready(const struct store *s);
/* Close every connection (pending callbacks get a Redis-down status), free the store, then
 * cb(data). */
void store_close(struct store *s, void (*cb)(void *data), void *data);

/* --- job events --------------------------------------------------------------------- */

/* A job changed status (id and status set), or the subscription (re)connected (id and
 * status NULL: events may have been missed, re-check what you wait for). */
typedef void (*store_event_cb)(void *data, const char *id, const char *status);
/* Subscribe to job events for the store's life. Returns 0 or BD_ENOMEM. */
int store_watch(struct store *s, store_event_cb cb, void *data);

/* --- submitting and reading jobs ------------------------------------------------------ */

enum store_submit_rc { STORE_SUBMITTED = 0, STORE_FULL = 1, STORE_DUPLICATE = 2 };
struct store_submit {
    const char *id;
    const char *req_json;
    const char *meta_json;
    int64_t created_ms;
    enum job_priority priority;
    long max_queue;
    const char *tenant;         /* "" when none */
    const char *idem_scope;     /* idempotency: the caller's key fingerprint, or NULL */
    const char *idem_key;       /* the client's Idempotency-Key (with idem_scope) */
    const char *idem_value;     /* "<id> <body-hash>" stored for the key */
    long idem_ttl_s;
};
/* status < 0 on Redis failure; rc as above; depth is the queue depth; for STORE_DUPLICATE
 * existing is the stored idempotency value. */
typedef void (*store_submit_cb)(void *data, int status, enum store_submit_rc rc, long depth,
                                const char *existing);
int store_submit(struct store *s, const struct store_submit *sub, store_submit_cb cb,
                 void *data);

/* The job object (docs/API.md shape); cb owns job. status BD_ENOTFOUND when the job does not
 * exist, < 0 on Redis failure (job NULL). */
typedef void (*store_job_cb)(void *data, int status, struct cJSON *job);
int store_get(struct store *s, const char *id, store_job_cb cb, void *data);
/* Build the job object from the hash fields (pure; exposed for tests). */
struct cJSON *store_job_object(const char *id, const char *status, const char *created_ms,
                               const char *attempts, const char *meta, const char *out,
                               const char *finished_ms);

/* --- the workers' side of the queue ---------------------------------------------------- */

/* A queue entry delivered to this consumer. */
struct store_entry {
    enum job_priority prio;
    char entry[48];             /* the stream entry id */
    char id[64];                /* the job id it carries ("" when it carries none) */
};
/* entries[0..n) are valid during the callback. status < 0: Redis failure (n = 0). */
typedef void (*store_entries_cb)(void *data, int status, const struct store_entry *entries,
                                 size_t n);
/* Open the blocking connection the reads below use (once; later calls do nothing). cb(data)
 * runs every time it (re)connects. Returns 0 or BD_ENOMEM. */
int store_read_open(struct store *s, void (*cb)(void *data), void *data);
/* Read up to count new entries for this consumer: from one priority's stream without
 * blocking (prio >= 0), or from all three (high first) blocking up to block_ms (prio < 0).
 * Returns BD_EREDIS_DOWN while the blocking connection is not connected. */
int store_read(struct store *s, int prio, unsigned count, int block_ms, store_entries_cb cb,
               void *data);
/* 1 when the blocking connection is up. */
int store_read_ready(const struct store *s);
/* Close the blocking connection (no entry is delivered to this consumer afterwards), then
 * cb(data). */
void store_read_stop(struct store *s, void (*cb)(void *data), void *data);
/* Claim up to count entries of priority p's stream idle longer than idle_ms (another
 * consumer died or stalled), continuing from where the last claim of that stream stopped. */
int store_reclaim(struct store *s, enum job_priority p, int idle_ms, unsigned count,
                  store_entries_cb cb, void *data);
/* Acknowledge away an entry that carries no job (it would otherwise block the group). */
void store_discard(struct store *s, const struct store_entry *e);

/* Begin a delivery: refuses jobs already ended or gone (acks their entry), counts the
 * delivery, fails the job into the dead-letter stream past max_attempts (adding
 * exhausted, which may be NULL, to the statistics), else marks it drafting.
 * cb(data, status, what, attempt, req_json, req_len, created_ms): what is "ok", "gone",
 * "done" or "exhausted"; req_json and created_ms only for "ok". */
typedef void (*store_begin_cb)(void *data, int status, const char *what, int attempt,
                               const char *req_json, size_t req_len, int64_t created_ms);
int store_begin(struct store *s, const struct store_entry *e, int max_attempts, long ttl_s,
                const struct stats_delta *exhausted, long stats_retention_s,
                store_begin_cb cb, void *data);

/* cb(data, status, applied): applied 0 when the script refused the write. cb may be NULL. */
typedef void (*store_flag_cb)(void *data, int status, int applied);
/* Set a running status (drafting/routing/refining) if attempt is still the job's current
 * delivery and it has not ended. */
int store_transition(struct store *s, const char *id, const char *status, int attempt,
                     store_flag_cb cb, void *data);

struct store_result {
    const char *status;         /* "succeeded" | "failed" */
    const char *out_json;       /* result/route/usage/cost/latency/error */
    int64_t finished_ms;
    long ttl_s;                 /* record expiry after the end */
    const struct stats_delta *stats; /* what the job adds to the statistics, or NULL */
    long stats_retention_s;
};
/* End the job of entry e with r, applying r->stats in the same script, acking and
 * deleting the entry, setting the TTL and publishing - unless the job already ended
 * (applied = 0: first result wins) or attempt is no longer the job's current delivery
 * (applied = 0: the worker that reclaimed it owns it now, and its entry is left alone). */
int store_finish(struct store *s, const struct store_entry *e, int attempt,
                 const struct store_result *r, store_flag_cb cb, void *data);

/* Hand a job back to the queue (graceful shutdown, or its model is out): if it has not
 * ended, it goes back to "queued" with a fresh entry and this delivery is not counted. */
int store_handback(struct store *s, const struct store_entry *e, store_flag_cb cb,
                   void *data);

/* --- dead letters -------------------------------------------------------------------- */

/* cb owns json. */
typedef void (*store_json_cb)(void *data, int status, struct cJSON *json);
/* The newest count dead letters [{entry, id, reason, dead_at}]. */
int store_dead_list(struct store *s, long count, store_json_cb cb, void *data);
/* Requeue a dead-lettered job: back to "queued" with its deliveries reset and a fresh entry.
 * status BD_ENOTFOUND if there is no such job; applied 0 if it is not dead-lettered. */
int store_requeue(struct store *s, const char *id, store_flag_cb cb, void *data);

/* --- finished jobs (replay, calibrate) ------------------------------------------------ */

/* For each job finished at or after since_ms: each(data, id, req_json, req_len, out_json)
 * (strings valid during the call); then done(data, status) once (status < 0: Redis failed
 * part way). */
typedef void (*store_scan_each_cb)(void *data, const char *id, const char *req_json,
                                   size_t req_len, const char *out_json);
typedef void (*store_scan_done_cb)(void *data, int status);
int store_scan_finished(struct store *s, int64_t since_ms, store_scan_each_cb each,
                        store_scan_done_cb done, void *data);

/* --- statistics ---------------------------------------------------------------------- */

/* rows as stats.h describes them (valid during the callback). */
typedef void (*store_rows_cb)(void *data, int status, const struct stats_rows *rows);
/* Sum the buckets of the last window_s seconds (minute buckets up to 6 h, hour buckets
 * beyond), grouped by dim ("" | "source" | "tenant"). */
int store_stats_window(struct store *s, long window_s, const char *dim, store_rows_cb cb,
                       void *data);

/* The guards' figures: decided and refined jobs over the last window_s seconds, today's
 * (UTC) refine spend and the mean refine cost of the window's refined jobs (USD). */
typedef void (*store_guard_cb)(void *data, int status, double decided, double refined,
                               double spent_today, double avg_refine_cost);
int store_stats_guard(struct store *s, long window_s, store_guard_cb cb, void *data);

/* The all-time totals (field -> value), queue depth and entries held by workers. */
typedef void (*store_totals_cb)(void *data, int status, const struct cJSON *totals,
                                long depth, long pending);
int store_stats_totals(struct store *s, store_totals_cb cb, void *data);

/* Count n failed attempts of model for reason in the all-time totals (fire and forget). */
void store_count_upstream_error(struct store *s, const char *model, const char *reason, long n);

#endif
