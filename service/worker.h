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

#include "store.h"

struct job_req;
struct svc;
struct worker;

int worker_start(struct svc *svc, struct worker **out);
/* Jobs started ahead of their submit. The API of a process that also runs a worker offers
 * it each job it queues: when the worker idles (no job in flight, its blocking read waits on
 * queues it found empty, a free slot left that read cannot fill), the job's pipeline touches neither Redis
 * nor its id before its first model call ends (pipe_starts_free), and the submit can claim
 * (store_submit_claim), the worker starts the job at once and sends the submit that claims
 * its entry for this process in the same script: the draft runs while the submit is on its
 * way (a Redis round trip less between the request and its answer). Nothing is decided
 * before the answer: the job's end waits for it; its own entry claimed, the job goes on as
 * if read from the queue; another entry claimed (the queue had a backlog), that one starts
 * as read and this job is dropped; nothing claimed (the submit failed or was refused), the
 * job is dropped, uncounted. A model call made for a dropped job is lost work, never a
 * second record or count. Returns 1 when it took the job: the submit is sent, cb (as
 * store_submit's) runs with its answer, and *jr is taken (zeroed); 0 when it did not
 * (nothing sent, *jr untouched: submit it yourself). */
int worker_ahead(struct worker *w, const struct store_submit *sub, struct job_req *jr,
                 store_submit_cb cb, void *data);
/* Stop taking jobs. Jobs in flight may finish until grace_ms passes; the rest are handed
 * back to the queue (or, if Redis is out, left pending for another worker to reclaim).
 * Then everything is closed and cb(data) runs. */
void worker_stop(struct worker *w, unsigned grace_ms, void (*cb)(void *data), void *data);

#endif
