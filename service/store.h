/* store.h - briefd's Redis schema: the job queue, job records, running status, events,
 * statistics, webhook deliveries and the registry of processes. The only module that knows key names, stream
 * and group names, Lua scripts and the shape of Redis replies; the rest of briefd speaks in
 * jobs, entries and figures. docs/REDIS.md has the key layout; in short (P = the
 * hash tag "{<redis.prefix>}", so every key lands in one Redis Cluster slot):
 *
 *   P q:low|normal|high  streams + group "briefd-workers": a queued job IS its entry
 *                        (fields r = request, m = metadata, d = the submit's deadline;
 *                        re-delivered entries also carry id, a = attempt, c = created ms,
 *                        x = 1). A fresh job's id encodes its entry (job_id_of_entry), so
 *                        submitting is one XADD.
 *   P job:<id>           the finished record (string, expires result_ttl_s after the end):
 *                        a header line {"delivery", "created_ms", "finished_ms", "job"},
 *                        then the request and the metadata a line each; "job" is what GET
 *                        returns (result.draft left out when it is result.brief, put back
 *                        on read);
 *                        written as P fin:<id>:<entry>, renamed into place by the finish
 *                        script (a job's bytes never pass through Lua).
 *   P jobx:<id>          where a re-delivered job's current entry is (hash e, p).
 *   P run:<id>           a running job's status beyond "drafting" (string with a TTL).
 *   P dead               dead letters. P events: the events channel. P idem:<k>:<key>.
 *   P stats:m:<minute>, P stats:h:<hour>, P stats:total, P stats:errors: counters
 *                        (fields: stats.h; "<dim>|<value>|<field>" for groups).
 *   P stats:pend:<proc>  what finished jobs added, not yet folded into the counters.
 *   P procs              the processes sharing this Redis and their heartbeats.
 *   P quality:<id>, P feedback:<id>  a finished job's quality and feedback (beside its
 *                        record, same expiry); P evalspend:<day>  the evaluation's spend. 
 *   P wh:due, P wh:q     webhook deliveries (due time; attempts, job end, webhook-id, URL),
 *   P wh:st:<id>         and a job's webhook outcome, joined into its object by store_get.
 *   P tenant:rate:<t>, P tenant:spend:<day>:<t>, P tenant:resv:<t>, P tenant:resvx:<t>
 *                        a tenant's admissions of the last minute, spend per UTC day,
 *                        budget reservations of its jobs in flight (and their expiries).
 *   P cache:<key>, P cache:lock:<key>   exact-cache entries and their single-flight locks.
 *
 * Writes that must not half-happen are Lua scripts called by SHA, each declaring every key it
 * touches. A delivery is fenced by its entry: finishing acks the entry, and a worker whose
 * entry was re-delivered elsewhere (reclaimed, handed back, dead-lettered) finds it already
 * acked and stores nothing; finishes are sent in batches (one script for every job that
 * ended while the previous batch was in flight).
 *
 * Statistics: each finished job's increments go, in the same script that stores its record,
 * onto this process's pending list; about once a second the process folds its list into the
 * counters (HINCRBY, exact integers) and trims it, atomically. A process that dies leaves its
 * list; another process folds it in once the dead one's heartbeat is old (so no finished job
 * is counted twice or lost), and removes its consumer from the group once nothing is pending
 * for it. Counters are therefore up to about a second behind the job records.
 *
 * Connections: one for commands, one for the events subscription (store_watch), one for the
 * workers' blocking reads (store_read_open), and with min_replicas_acked one for acknowledged
 * submits (each followed by WAIT, so a WAIT never holds up other commands). Each reconnects by
 * itself; every command is bounded by redis.command_timeout_ms. All of them follow the
 * primary (clients/rloc.h: redis.url's address, Sentinel's answer, or the Redis Cluster node
 * owning the keys' slot; docs/REDIS.md) and refuse a server whose ROLE says replica. A submit
 * carries a deadline on Redis's clock (the clock offset is measured with TIME at every
 * connect): one that reaches Redis after the connection gave up on it - a hung Redis that
 * wakes up - does nothing (a script) or leaves an entry its reader discards (a plain XADD,
 * whose entry id is Redis's clock when it ran), so a submit reported as failed never runs.
 *
 * Events: a finish batch publishes its terminal events without job objects (but for a job
 * another process waits for: STORE_WAITER), after an origin line naming this process; this
 * process delivers them (with job objects) to its own store_watch callback when the script
 * answers, and skips the published copy.
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
struct store_entry;
struct stats_delta;
struct stats_rows;

struct store_opts {
    const char *host;           /* copied */
    int port;
    int db;
    const char *user;           /* ACL user, or NULL (copied) */
    const char *password;       /* NULL: no AUTH (copied, wiped on close) */
    const char *prefix;         /* key prefix (copied); fixed for the store's life */
    const char *instance;       /* this process ("host-pid-rand", copied): its consumer name,
                                   registry entry and pending-statistics list */
    const char *role;           /* "all" | "api" | "worker" (registry), copied */
    int consumer;               /* 1: this process reads the queue (creates the group) */
    int command_timeout_ms;     /* every command bounded (0: 3000) */
    int connect_timeout_ms;     /* connect + handshake (0: 2000) */
    long stats_retention_s;     /* hour buckets live this long (minute buckets <= 7 h) */
    const char *const *sentinels; /* "host:port" (n_sentinels > 0: ask Sentinel), copied */
    size_t n_sentinels;
    const char *master_name;    /* Sentinel's name of the primary (copied) */
    const char *sentinel_password; /* AUTH for the sentinels, or NULL (copied, wiped) */
    int min_replicas_acked;     /* > 0: a submit counts once WAIT saw this many replicas */
    int replica_ack_timeout_ms; /* WAIT's timeout (0: 1000) */
    int tls;                    /* TLS to the data nodes (builds with BRIEFD_REDIS_TLS) */
    const char *tls_ca_file;    /* copied; NULL: the system's */
};

/* The command connection came up (connected = 1) or went down (0). */
typedef void (*store_state_cb)(void *data, int connected);

/* Open the store (starts connecting, heartbeats, folds statistics). cb may be NULL.
 * Returns 0 or BD_ENOMEM. */
int store_open(uv_loop_t *loop, const struct store_opts *o, store_state_cb cb, void *data,
               struct store **out);
/* 1 when the command connection is up. */
int store_ready(const struct store *s);
/* Why Redis is not usable ("" when it is): a connect or handshake error. */
const char *store_last_error(const struct store *s);
/* The primary in use: host ("" while unknown), port, and how it was found ("url", "sentinel"
 * or "cluster"). Strings valid until the next loop iteration. */
const char *store_primary(const struct store *s, int *port, const char **via);
/* This process's name in the registry (its consumer name). A submit's metadata member
 * STORE_WAITER set to it tells the finish that this process has a request parked on the
 * job: a finish in another process then publishes the job's object with its event (else
 * the event carries none and a listener reads the record). */
const char *store_instance(const struct store *s);
#define STORE_WAITER "waiter"
/* The error text of the last command Redis refused (e.g. "OOM command not allowed ..."). */
const char *store_last_reply_error(const struct store *s);
/* Settings that may change with a reload. */
void store_set_retention(struct store *s, long stats_retention_s);
/* Fold pending statistics, leave the registry (and the group, when nothing is pending for
 * this consumer), close every connection (pending callbacks get a Redis-down status), free
 * the store, then cb(data). */
void store_close(struct store *s, void (*cb)(void *data), void *data);

/* --- job events --------------------------------------------------------------------- */

/* Streamed text (GET /v1/jobs/{id}/events, event "delta"). An events stream marks its job
 * as listened to (P listen:<id>, for ttl_ms; refresh it while the stream lasts); the worker
 * asks whether anyone listens before a refinement, streams it only then, and publishes its
 * text as "delta" events ({"text": "..."}: text appended to the brief) on the events
 * channel. Fire and forget, except store_listening: cb(data, status, listened). */
typedef void (*store_flag_cb)(void *data, int status, int applied); /* a yes/no answer */
void store_listen(struct store *s, const char *id, int ttl_ms);
int store_listening(struct store *s, const char *id, store_flag_cb cb, void *data);
void store_publish_delta(struct store *s, const char *id, const char *text, size_t len);

/* Model call slots (models.X.max_concurrency, shared by every process): leases in
 * P slots:<hash of server> (a sorted set scored by expiry on Redis's clock). server names
 * the model server (base_url and model name), member one lease ("<instance>:<n>").
 * store_slot_take: cb(data, status, granted) - granted when fewer than cap live leases were
 * held; the lease lasts lease_ms unless renewed (store_slot_renew, fire and forget) and is
 * given back with store_slot_give (fire and forget). A process that dies stops renewing:
 * its leases lapse. */
int store_slot_take(struct store *s, const char *server, int cap, const char *member,
                    int lease_ms, store_flag_cb cb, void *data);
void store_slot_renew(struct store *s, const char *server, const char *const *members, size_t n,
                      int lease_ms);
void store_slot_give(struct store *s, const char *server, const char *member);

/* A job changed status; for succeeded/failed, job is its job object (JSON text, len bytes,
 * not NUL-terminated), else NULL. id NULL: the subscription (re)connected - events may have
 * been missed, re-check what you wait for. */
typedef void (*store_event_cb)(void *data, const char *id, const char *status,
                               const char *job, size_t len);
/* Subscribe to job events until store_unwatch (or the store closes). Returns 0 or
 * BD_ENOMEM. */
int store_watch(struct store *s, store_event_cb cb, void *data);
/* No more events from now on (the subscription is closed). */
void store_unwatch(struct store *s);

/* --- submitting and reading jobs ------------------------------------------------------ */

enum store_submit_rc {
    STORE_SUBMITTED = 0,
    STORE_FULL = 1,
    STORE_DUPLICATE = 2,
    STORE_TENANT_RATE = 3,      /* the tenant's jobs_per_minute is reached */
    STORE_TENANT_BUDGET = 4,    /* the tenant's spend today reached its daily_budget_usd */
};
struct store_submit {
    const char *req_json;
    const char *meta_json;
    enum job_priority priority;
    long max_queue;
    const char *idem_scope;     /* idempotency: the caller's key fingerprint, or NULL */
    const char *idem_key;       /* the client's Idempotency-Key (with idem_scope) */
    const char *idem_hash;      /* the normalized body's hash, stored with the key */
    long idem_ttl_s;
    const char *tenant;         /* the job's tenant, when it has limits to check, else NULL */
    long tenant_jpm;            /* its jobs_per_minute (0: none) */
    double tenant_budget_usd;   /* its daily_budget_usd (< 0: none) */
};
/* status < 0 on Redis failure; BD_EREPLICATION with min_replicas_acked when WAIT saw fewer
 * replicas in time (the job may exist: retry with the same Idempotency-Key).
 * STORE_SUBMITTED: id and created_ms of the new job, depth the
 * queue depth after it (-1 when not measured). STORE_FULL: depth. STORE_DUPLICATE: id of the
 * job the key named and idem_hash the hash stored with it. STORE_TENANT_RATE /
 * STORE_TENANT_BUDGET: nothing was queued; depth is the Retry-After in seconds. With a
 * tenant, the checks, the job and the admission it counts are one script (one round trip):
 * any number of processes together admit at most jobs_per_minute a minute. */
typedef void (*store_submit_cb)(void *data, int status, enum store_submit_rc rc, long depth,
                                const char *id, int64_t created_ms, const char *idem_hash);
int store_submit(struct store *s, const struct store_submit *sub, store_submit_cb cb,
                 void *data);
/* store_submit for a job this process's worker has started ahead of its submit (worker.h):
 * the script that queues the job also reads, for this process's consumer, the oldest entry
 * of the job's queue not yet delivered - the new job's own unless the queue had a backlog,
 * as a worker's read would have - so the entry is this worker's the moment it exists, and
 * no other process runs it. claimed: that entry, or NULL (none read: the submit failed or
 * was refused; strings valid during the callback). Not with min_replicas_acked or a
 * tenant's limits (their submits are other round trips or scripts): BD_EINVAL, nothing
 * sent. */
typedef void (*store_claim_cb)(void *data, int status, enum store_submit_rc rc, long depth,
                               const char *id, int64_t created_ms, const char *idem_hash,
                               const struct store_entry *claimed);
int store_submit_claim(struct store *s, const struct store_submit *sub, store_claim_cb cb,
                       void *data);

/* The job object (docs/API.md shape); cb owns job. status BD_ENOTFOUND when the job does not
 * exist, < 0 on Redis failure (job NULL). Reads this process's writes: a job whose finish
 * is queued here behind a batch in flight is read once its finish has gone out (the read
 * follows it on the same connection); BD_ESHUTDOWN if the store closes first. */
typedef void (*store_job_cb)(void *data, int status, struct cJSON *job);
int store_get(struct store *s, const char *id, store_job_cb cb, void *data);
/* Build the job object from its parts (pure; exposed for tests): meta is a JSON object as
 * text (or NULL), out a tree whose members are moved in (it is freed; may be NULL);
 * finished_ms <= 0 for a running job. */
struct cJSON *store_job_object(const char *id, const char *status, int64_t created_ms,
                               int attempts, const char *meta, struct cJSON *out,
                               int64_t finished_ms);
/* The same job object as JSON text (malloc'd; NULL on OOM), byte for byte what jsonx_print
 * makes of store_job_object's tree, printed without building it: meta's members are copied
 * as text (it is briefd's own printing) and out's printed (out is freed). Text of another
 * shape (a name with escapes, a member that replaces a base one) goes through the tree. */
char *store_job_text(const char *id, const char *status, int64_t created_ms, int attempts,
                     const char *meta, struct cJSON *out, int64_t finished_ms);

/* --- the workers' side of the queue ---------------------------------------------------- */

/* A queue entry delivered to this consumer. */
struct store_entry {
    enum job_priority prio;
    char entry[48];             /* the stream entry id */
    char id[JOB_ID_LEN + 1];    /* the job ("" when the entry carries none) */
    int attempt;                /* this delivery's number, from 1 */
    int64_t created_ms;
    int redelivered;            /* the job has a jobx pointer (handed back, reclaimed, ...) */
    int handbacks;              /* times it was put back without counting an attempt */
    const char *req;            /* request JSON (not NUL-terminated), req_len bytes */
    size_t req_len;
    const char *meta;           /* metadata JSON, meta_len bytes */
    size_t meta_len;
};
/* entries[0..n) (and their strings) are valid during the callback. status < 0: Redis
 * failure (n = 0). */
typedef void (*store_entries_cb)(void *data, int status, const struct store_entry *entries,
                                 size_t n);
/* Open the blocking connection the reads below use (once). cb(data) runs every time it
 * (re)connects. Returns 0 or BD_ENOMEM. */
int store_read_open(struct store *s, void (*cb)(void *data), void *data);
/* 1 when the blocking connection is up. */
int store_read_ready(const struct store *s);
/* Read up to count new entries for this consumer: from one priority's stream without
 * blocking (prio >= 0), or from all three (high first) blocking up to block_ms (prio < 0). */
int store_read(struct store *s, int prio, unsigned count, int block_ms, store_entries_cb cb,
               void *data);
/* Close the blocking connection (no entry is delivered to this consumer afterwards), then
 * cb(data). */
void store_read_stop(struct store *s, void (*cb)(void *data), void *data);
/* Claim up to count entries of priority p's stream idle longer than idle_ms (their consumer
 * died or stalled), continuing from where the last claim of that stream stopped. Claimed
 * entries must be passed to store_redeliver. */
int store_reclaim(struct store *s, enum job_priority p, int idle_ms, unsigned count,
                  store_entries_cb cb, void *data);
/* Acknowledge away an entry that carries no job (it would otherwise block the group). */
void store_discard(struct store *s, const struct store_entry *e);

/* store_flag_cb (above) for finishing: applied 0 when the script refused the write (the
 * delivery is no longer current). cb may be NULL. */

/* A job's running status beyond the first ("routing", "refining"), published and readable
 * by GET; batched. Informational: it never changes what is stored at the end. */
void store_transition(struct store *s, const char *id, const char *status);

struct store_result {
    const char *status;         /* "succeeded" | "failed" */
    const char *job_json;       /* the finished job object (what GET returns) */
    const char *req_json;       /* the stored request (for replay) */
    const char *meta_json;
    long ttl_s;                 /* record expiry */
    const struct stats_delta *stats; /* what the job adds to the statistics */
    const char *webhook_url;    /* the job's callback_url, or NULL: a delivery is kept for it
                                   in the same script (store_webhook_claim) */
    const char *webhook_msg_id; /* its webhook-id (no spaces) */
    const char *tenant;         /* the job's tenant (NULL or "": none): the job's cost is added
                                   to its spend today and its budget reservation released */
    double cost_usd;            /* the job's cost (settles the tenant's budget) */
    int hold_ms;                /* a finish nobody waits for (the facade's, answered already):
                                   it may wait this long for others to share its batch (0:
                                   sent at once; a queued job's always is) */
};
/* End a job with r: store the record, ack and delete its entry, add its statistics and
 * publish - unless the delivery is no longer current (applied = 0). e NULL: a job that never
 * was queued (the facade's): id names it. Batched; cb runs when its batch is answered. A
 * held finish (r->hold_ms) is sent once the first held one's hold is over, or at once with
 * a finish a client waits for, a full batch, a store_get of it, or store_close. */
int store_finish(struct store *s, const struct store_entry *e, const char *id,
                 const struct store_result *r, store_flag_cb cb, void *data);
/* The finishes of this process not yet stored: queued, held, or in the batch in flight. With
 * Redis slow or unreachable they wait (and are sent again) rather than fail, so a producer
 * that does not wait for its finish (the facade) bounds itself by this count. */
size_t store_finishes_pending(const struct store *s);

/* Put a delivered job back in the queue with a fresh entry: attempt is the new entry's
 * attempt number (the same to hand it back uncounted; +1 after a reclaim), handbacks the
 * new entry's count of uncounted returns. Past
 * max_attempts (0: no limit) the job fails instead into the dead letters with failed (the
 * record to store, see store_result). applied: 1 queued again, 2 dead-lettered, 0 the entry
 * was no longer this consumer's to give back. */
int store_redeliver(struct store *s, const struct store_entry *e, int attempt, int handbacks,
                    int max_attempts, const struct store_result *failed, store_flag_cb cb,
                    void *data);

/* --- webhook deliveries (service/webhook.c) -------------------------------------------- */

/* A job that ended with a callback_url leaves a delivery in Redis (store_finish, in the same
 * script): keys P wh:due (ZSET: id -> when it is due, ms) and P wh:q (HASH: id -> attempt
 * count, when the job ended, the webhook-id, the URL). Any process claims due deliveries;
 * a claim is a lease, so a delivery whose process died is claimed again once the lease is
 * over, and two processes never make the same attempt. Outcomes are kept beside the job
 * record (P wh:st:<id>), and GET shows them as the job's "webhook". */
struct store_webhook {
    char id[JOB_ID_LEN + 1];    /* the job */
    int attempt;                /* this claim's attempt, from 1 */
    int64_t created_ms;         /* when the job ended: the delivery's age */
    char msg_id[64];            /* webhook-id */
    const char *url;            /* the callback_url (valid during the callback) */
};
/* w[0..n) (and their strings) are valid during the callback; status < 0: Redis failure. */
typedef void (*store_webhooks_cb)(void *data, int status, const struct store_webhook *w,
                                  size_t n);
/* Claim up to count deliveries due by now_ms, each for lease_ms. */
int store_webhook_claim(struct store *s, int64_t now_ms, unsigned count, long lease_ms,
                        store_webhooks_cb cb, void *data);

enum store_webhook_outcome {
    STORE_WH_DELIVERED = 0,     /* over: the receiver took it */
    STORE_WH_FAILED,            /* over: given up */
    STORE_WH_RETRY,             /* due again at due_ms */
    STORE_WH_RELEASE,           /* not attempted after all (stopping): due at due_ms, uncounted */
};
struct store_webhook_done {
    const char *id;
    int attempt;                /* the claim's attempt: refused if another claim came since */
    enum store_webhook_outcome outcome;
    int64_t due_ms;
    const char *status_json;    /* the job's "webhook" object from now on (not for RELEASE) */
    long ttl_s;                 /* how long it is kept (the job record's ttl) */
};
/* Record an attempt's outcome; cb(data, status, applied) may be NULL. */
int store_webhook_done(struct store *s, const struct store_webhook_done *d, store_flag_cb cb,
                       void *data);

/* --- dead letters -------------------------------------------------------------------- */

/* cb owns json. */
typedef void (*store_json_cb)(void *data, int status, struct cJSON *json);
/* The newest count dead letters [{entry, id, reason, dead_at}]. */
int store_dead_list(struct store *s, long count, store_json_cb cb, void *data);
/* Requeue a dead-lettered job: back to "queued" with attempt 1 and a fresh entry.
 * status BD_ENOTFOUND if there is no such job; applied 0 if it is not dead-lettered. */
int store_requeue(struct store *s, const char *id, store_flag_cb cb, void *data);

/* --- finished jobs (replay, calibrate) ------------------------------------------------ */

/* For each job finished at or after since_ms: each(data, id, req_json, req_len, job_json)
 * (strings valid during the call); then done(data, status) once. */
typedef void (*store_scan_each_cb)(void *data, const char *id, const char *req_json,
                                   size_t req_len, const char *job_json);
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
/* The same as one tenant sees it: only that tenant's figures (its group counters), grouped by
 * dim "" or "tenant" (then one group, its own). */
int store_stats_window_tenant(struct store *s, long window_s, const char *dim,
                              const char *tenant, store_rows_cb cb, void *data);

/* The guards' figures: decided and refined jobs over the last window_s seconds, today's
 * (UTC) refine spend and the mean refine cost of the window's refined jobs (USD). */
typedef void (*store_guard_cb)(void *data, int status, double decided, double refined,
                               double spent_today, double avg_refine_cost);
int store_stats_guard(struct store *s, long window_s, store_guard_cb cb, void *data);

/* The all-time totals (field -> value), queue depth and entries held by workers. */
typedef void (*store_totals_cb)(void *data, int status, const struct cJSON *totals,
                                long depth, long in_flight);
int store_stats_totals(struct store *s, store_totals_cb cb, void *data);

/* Count n failed attempts of model for reason in the all-time totals (fire and forget). */
void store_count_upstream_error(struct store *s, const char *model, const char *reason, long n);

/* Fold this process's pending statistics into the counters now (also done every second);
 * cb may be NULL. */
void store_stats_flush(struct store *s, void (*cb)(void *data, int status), void *data);
/* Put a delta (stats.h) on this process's pending list by itself (fire and forget). */
void store_stats_add(struct store *s, const struct stats_delta *delta);

/* --- quality and feedback of finished jobs (docs/API.md) ------------------------------- */

/* Beside a finished job's record: P quality:<id> (a string: the job's "quality" object) and
 * P feedback:<id> (a list of feedback objects, oldest first), both expiring with the record;
 * store_get adds them to the job object. Each write also puts its statistics delta (may be
 * NULL) on this process's pending list, atomically with it.
 * store_set_quality: applied 1 stored, 2 the job already had a quality (nothing written),
 * 0 there is no finished record (expired, or requeued from the dead letters).
 * store_add_feedback: keeps the newest keep items; applied 1 stored, 0 no finished record.
 * cb may be NULL. */
int store_set_quality(struct store *s, const char *id, const char *quality_json,
                      const struct stats_delta *delta, store_flag_cb cb, void *data);
int store_add_feedback(struct store *s, const char *id, const char *item_json, int keep,
                       const struct stats_delta *delta, store_flag_cb cb, void *data);

/* The evaluation's daily budget (evaluation.daily_budget_usd), shared by every process in
 * P evalspend:<UTC day of day_ms> (picodollars, kept two days): reserve an estimate -
 * applied 1 when the day's spend plus the estimate stays within budget_usd (then it is
 * added), 0 when it would not - and later settle the difference between what was spent and
 * what was reserved (delta_usd, negative when less was spent; fire and forget). */
int store_eval_reserve(struct store *s, int64_t day_ms, double estimate_usd, double budget_usd,
                       store_flag_cb cb, void *data);
void store_eval_settle(struct store *s, int64_t day_ms, double delta_usd);

/* --- tenants (tenant.h): admissions, budgets, figures ------------------------------------
 * Per tenant: its admissions of the last minute, its spend per UTC day (picodollars, the
 * finish script adds each stored job's cost) and the budget reservations of its jobs in
 * flight (each expires with its job's deadline). */

/* Count an admission that is not a queued job (the facade's): like store_submit's tenant
 * checks. cb(status, rc, retry_after_s): STORE_SUBMITTED (admitted, counted as member),
 * STORE_TENANT_RATE or STORE_TENANT_BUDGET. */
typedef void (*store_admit_cb)(void *data, int status, enum store_submit_rc rc,
                               long retry_after_s);
int store_tenant_admit(struct store *s, const char *tenant, long jpm, double budget_usd,
                       const char *member, store_admit_cb cb, void *data);

/* A budget reservation for a job about to call a model. admit (extend 0): reserve amount
 * unless today's spend reached the budget (STORE_RESERVE_SPENT) or the other jobs'
 * reservations fill what is left (STORE_RESERVE_BUSY; nothing reserved). extend: the job's
 * reservation becomes amount if spend + every reservation stays within the budget
 * (STORE_RESERVED), else fallback (STORE_RESERVE_HELD). The reservation expires ttl_ms (+ a
 * minute) from now; the finish script releases it. */
struct store_reservation {
    const char *tenant;
    const char *job_id;
    double amount_usd;
    double budget_usd;
    int extend;
    double fallback_usd;
    long ttl_ms;
};
enum store_reserve {
    STORE_RESERVED = 0,
    STORE_RESERVE_BUSY = 1,
    STORE_RESERVE_SPENT = 2,
    STORE_RESERVE_HELD = 3,
};
/* spent_usd: the tenant's spend today; reserved_usd: every reservation after this one. */
typedef void (*store_reserve_cb)(void *data, int status, enum store_reserve r,
                                 double spent_usd, double reserved_usd);
int store_tenant_reserve(struct store *s, const struct store_reservation *rv,
                         store_reserve_cb cb, void *data);

/* A tenant's figures: admissions of the last minute, spend today, reservations, and its
 * decided / refined jobs over the last window_s seconds (from the statistics, grouped by
 * tenant). f is valid during the callback (NULL on failure). */
struct store_tenant_figures {
    long jobs_this_minute;
    double spent_today_usd, reserved_usd;
    double decided, refined;
};
typedef void (*store_tenant_cb)(void *data, int status, const struct store_tenant_figures *f);
int store_tenant_figures(struct store *s, const char *tenant, long window_s,
                         store_tenant_cb cb, void *data);

/* Spend today and reservations of n tenants (n <= STORE_SPEND_MAX): spent[i] and
 * reserved[i] are v[2i] and v[2i+1] (valid during the callback). */
#define STORE_SPEND_MAX 1024
typedef void (*store_spend_cb)(void *data, int status, const double *v, size_t n);
int store_tenant_spend(struct store *s, const char *const *tenants, size_t n,
                       store_spend_cb cb, void *data);

/* --- the exact cache (cache.h) -------------------------------------------------------- */

/* Look the entry of cache_key up; if there is none, take its lock for job_id (lock_ms) so
 * that identical jobs wait for this one instead of calling the models. STORE_CACHE_HIT:
 * entry is the entry's text; STORE_CACHE_WAIT: another job holds the lock (entry: its id);
 * STORE_CACHE_RUN: job_id holds the lock now (also when it held it already). */
enum store_cache { STORE_CACHE_HIT = 0, STORE_CACHE_WAIT = 1, STORE_CACHE_RUN = 2 };
typedef void (*store_cache_cb)(void *data, int status, enum store_cache kind,
                               const char *entry, size_t len);
int store_cache_claim(struct store *s, const char *cache_key, const char *job_id,
                      long lock_ms, store_cache_cb cb, void *data);
/* Store entry (NULL: none) for ttl_s and release the lock if job_id holds it (fire and
 * forget). */
void store_cache_put(struct store *s, const char *cache_key, const char *job_id,
                     const char *entry, long ttl_s);

#endif
