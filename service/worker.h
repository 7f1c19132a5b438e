/* worker.h - the job pipeline: take jobs from the Redis streams (own consumer in the
 * group, high before normal before low), draft with the small model, route, maybe refine
 * with the large model, account, and store the result - at most workers.concurrency jobs
 * at a time. Pending entries idle longer than workers.claim_idle_ms (a worker that died)
 * are reclaimed with XAUTOCLAIM.
 *
 * Ownership: the worker belongs to the app; it opens its own Redis connection for the
 * blocking reads. Each job holds a reference to the config it started under. */
#ifndef BRIEFD_WORKER_H
#define BRIEFD_WORKER_H

struct app;
struct worker;

int worker_start(struct app *a, struct worker **out);
/* Jobs in flight now. */
unsigned worker_inflight(const struct worker *w);
/* Stop taking jobs. Jobs in flight may finish until grace_ms passes; the rest are
 * abandoned un-acked (they stay pending in Redis and another worker reclaims them).
 * Then everything is closed and cb(data) runs. */
void worker_stop(struct worker *w, unsigned grace_ms, void (*cb)(void *data), void *data);

#endif
