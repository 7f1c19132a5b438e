/* worker.h - the job pipeline: take jobs from the queue (this process's consumer in the
 * group, high before normal before low), draft with the small model, route, maybe refine
 * with the large model, account, store the result and send its webhook - at most
 * workers.concurrency jobs at a time. Entries idle longer than workers.claim_idle_ms (their
 * worker died or stalled) are reclaimed.
 *
 * Ownership: the worker belongs to the process, which hands it the service context (svc.h)
 * and keeps it alive until worker_stop's callback. Each job holds a reference to the
 * config it started under. */
#ifndef BRIEFD_WORKER_H
#define BRIEFD_WORKER_H

struct svc;
struct worker;

int worker_start(struct svc *svc, struct worker **out);
/* Stop taking jobs. Jobs in flight may finish until grace_ms passes; the rest are handed
 * back to the queue (or, if Redis is out, left pending for another worker to reclaim).
 * Then everything is closed and cb(data) runs. */
void worker_stop(struct worker *w, unsigned grace_ms, void (*cb)(void *data), void *data);

#endif
