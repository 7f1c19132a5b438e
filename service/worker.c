/* worker.c - the queue's consumer: fetch, run through the pipeline, finish or put back. */
#include "worker.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"
#include "clock.h"
#include "config.h"
#include "handoff.h"
#include "jsonx.h"
#include "list.h"
#include "log.h"
#include "pipeline.h"
#include "sbuf.h"
#include "shadow.h"
#include "stats.h"
#include "store.h"
#include "svc.h"
#include "webhook.h"

#define WORKER_TICK_MS 100
#define WORKER_BLOCK_MS 1000
#define STAGE_PUBLISH_MS 100    /* a stage is published once the job has run this long */
#define DELTA_PUBLISH_MS 50     /* streamed text is published at most this often per job */
#define MAX_FREE_RETRIES 20     /* uncounted returns to the queue before they count */

struct wjob {
    struct worker *w;
    struct list_node node;
    struct store_entry e;         /* the entry it came in; e.req / e.meta point below */
    char *req_text, *meta_text;   /* owned copies */
    struct bd_config *cfg;        /* the config this job runs under (a reference) */
    struct job_req req;
    struct pipe_job pj;
    uint64_t started;             /* uv_now */
    char stage[16], published[16];
    int finishing;
    struct sbuf delta;            /* streamed text not yet published (someone listens) */
    uint64_t delta_at;            /* uv_now of the last delta published */
    struct shadow_task *shadow;   /* sampled for shadow judging, started once stored */
    /* started ahead of its submit (worker_ahead): until the submit's answer, e holds no
     * entry and no id, and the pipeline's end is held */
    int ahead;
    int held;                     /* the pipeline ended (held_o) before the answer came */
    enum pipe_outcome held_o;
    int abandoned;                /* ahead, and its entry went elsewhere: ends uncounted */
    store_submit_cb submit_cb;    /* the submitter's callback, passed the answer */
    void *submit_data;
};

struct worker {
    struct svc *svc;
    struct pipeline *pipe;        /* the process's (svc->pipe) */
    struct webhook *webhooks;
    uv_timer_t tick;
    uv_timer_t grace;
    struct list_node jobs;
    unsigned inflight;
    int fetching;
    int queues_drained;           /* the last read proved the queues empty: block at once */
    unsigned blk_asked;           /* the blocking read in flight: its COUNT (0: none) */
    int stopping;
    uint64_t last_claim_ms;
    int pending_closes;
    int claims;                   /* reclaims in flight (stopping waits for them) */
    void (*stop_cb)(void *);
    void *stop_data;
};

static void fetch(struct worker *w);

static unsigned free_slots(const struct worker *w)
{
    unsigned conc = (unsigned)w->svc->cfg->concurrency;
    return w->inflight >= conc ? 0 : conc - w->inflight;
}

static struct store *store_of(const struct wjob *j) { return j->w->svc->store; }

/* --- job lifetime --- */

static struct wjob *wjob_new(struct worker *w, const struct store_entry *e)
{
    struct wjob *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->req_text = strndup(e->req, e->req_len);
    j->meta_text = strndup(e->meta, e->meta_len);
    if (!j->req_text || !j->meta_text) {
        free(j->req_text);
        free(j->meta_text);
        free(j);
        return NULL;
    }
    j->w = w;
    j->e = *e;
    j->e.req = j->req_text;
    j->e.meta = j->meta_text;
    j->cfg = config_ref(w->svc->cfg);
    j->started = uv_now(w->svc->loop);
    snprintf(j->stage, sizeof(j->stage), "drafting");
    snprintf(j->published, sizeof(j->published), "drafting");
    list_push_front(&w->jobs, &j->node);
    w->inflight++;
    return j;
}

static void wjob_free(struct wjob *j)
{
    struct worker *w = j->w;
    list_unlink(&j->node);
    w->inflight--;
    shadow_drop(j->shadow);
    pipe_job_free(&j->pj);
    free(sbuf_take(&j->delta));
    job_req_free(&j->req);
    free(j->req_text);
    free(j->meta_text);
    config_unref(j->cfg);
    free(j);
    if (!w->stopping)
        fetch(w);
}

/* --- ending a job --- */

static void on_finished(void *data, int status, int applied)
{
    struct wjob *j = data;
    if (status == 0 && applied && j->req.callback_url && j->w->webhooks)
        webhook_kick(j->w->webhooks); /* its delivery was stored with the result */
    if (j->shadow) /* after the record and its event: the client never waits for it */
        shadow_stored(j->shadow, status, applied);
    j->shadow = NULL;
    if (status != 0)
        log_error("worker: could not store the result of %s: %s (it stays pending and will be "
                  "retried)", j->e.id, bd_strerror(status));
    else if (!applied)
        log_info("worker: %s had already ended or was reclaimed by another worker; this "
                 "delivery's result was discarded", j->e.id);
    wjob_free(j);
}

/* The job object as GET will return it, from the entry's metadata and the pipeline's out
 * (taken). */
static char *job_text(const struct wjob *j, const char *status, cJSON *out)
{
    if (out && j->req.callback_url) {
        /* the delivery's outcome replaces it as it goes (GET joins it) */
        cJSON *w = cJSON_AddObjectToObject(out, "webhook");
        cJSON_AddNumberToObject(w, "attempts", 0);
        cJSON_AddStringToObject(w, "status", "pending");
        cJSON_AddNullToObject(w, "last_status");
        cJSON_AddNullToObject(w, "error");
    }
    return store_job_text(j->e.id, status, j->e.created_ms, j->e.attempt, j->meta_text, out,
                          clock_wall_ms());
}

static void finish_job(struct wjob *j, const char *status)
{
    struct stats_delta delta;
    struct store_result r;
    cJSON *out = pipe_out_json(&j->pj, status, 1);
    char *text = out ? job_text(j, status, out) : NULL;
    char msg_id[40];
    int rc;
    j->finishing = 1;
    if (!text) {
        free(text);
        wjob_free(j);
        return;
    }
    pipe_stats(&j->pj, strcmp(status, "succeeded") == 0, &delta);
    if (strcmp(status, "succeeded") == 0)
        j->shadow = shadow_take(j->w->svc->shadow, &j->pj, j->e.id, j->req_text, delta.at_ms);
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.job_json = text;
    r.req_json = j->req_text;
    r.meta_json = j->meta_text;
    r.ttl_s = j->cfg->result_ttl_s;
    r.stats = &delta;
    if (j->req.callback_url) {
        webhook_msg_id(msg_id, sizeof(msg_id));
        r.webhook_url = j->req.callback_url;
        r.webhook_msg_id = msg_id;
    }
    r.tenant = job_req_meta(&j->req, "tenant");
    r.cost_usd = j->pj.acct.cost_draft + j->pj.acct.cost_refine;
    rc = store_finish(store_of(j), &j->e, NULL, &r, on_finished, j);
    free(text);
    if (rc != 0) {
        log_error("worker: could not store the result of %s: %s", j->e.id, bd_strerror(rc));
        wjob_free(j);
    }
}

static void on_returned(void *data, int status, int applied)
{
    struct wjob *j = data;
    if (status != 0)
        log_warn("worker: could not put %s back in the queue: %s (another worker reclaims it)",
                 j->e.id, bd_strerror(status));
    (void)applied;
    wjob_free(j);
}

/* Back to the queue uncounted: the draft model is out, the process was stalled, or it is
 * shutting down. A job that keeps coming back counts an attempt every MAX_FREE_RETRIES. */
static void put_back(struct wjob *j)
{
    int counted = j->e.handbacks >= MAX_FREE_RETRIES && !j->w->stopping;
    int attempt = counted ? j->e.attempt + 1 : j->e.attempt;
    int hb = counted ? 0 : j->e.handbacks + 1;
    if (counted && attempt > j->cfg->max_attempts) {
        cJSON_Delete(j->pj.error);
        j->pj.error = cJSON_CreateObject();
        cJSON_AddStringToObject(j->pj.error, "code", "draft_failed");
        cJSON_AddStringToObject(j->pj.error, "message",
                                "the draft model failed this job every time it was tried");
        finish_job(j, "failed");
        return;
    }
    if (store_redeliver(store_of(j), &j->e, attempt, hb, 0, NULL, on_returned, j) != 0)
        wjob_free(j); /* left pending: reclaimed once idle */
}

static void on_pipe_done(struct pipe_job *pj, enum pipe_outcome o)
{
    struct wjob *j = pj->data;
    if (j->ahead) { /* its entry is not known yet: the submit's answer goes on */
        j->held = 1;
        j->held_o = o;
        return;
    }
    if (j->abandoned) {
        wjob_free(j);
        return;
    }
    switch (o) {
    case PIPE_SUCCEEDED:
        finish_job(j, "succeeded");
        break;
    case PIPE_FAILED:
        finish_job(j, "failed");
        break;
    case PIPE_RETRY:
        put_back(j);
        break;
    case PIPE_CANCELED:
        if (j->w->stopping)
            put_back(j);
        else
            wjob_free(j);
        break;
    }
}

static void on_stage(struct pipe_job *pj, const char *status)
{
    struct wjob *j = pj->data;
    snprintf(j->stage, sizeof(j->stage), "%s", status);
}

/* Stages are published once a job has run STAGE_PUBLISH_MS: a job that ends sooner goes
 * from queued to its end without costing a write per stage. */
static void publish_stages(struct worker *w)
{
    uint64_t now = uv_now(w->svc->loop);
    struct list_node *it;
    for (it = w->jobs.next; it != &w->jobs; it = it->next) {
        struct wjob *j = LIST_ENTRY(it, struct wjob, node);
        if (j->finishing || j->ahead || j->abandoned || strcmp(j->stage, j->published) == 0 ||
            now - j->started < STAGE_PUBLISH_MS)
            continue;
        store_transition(w->svc->store, j->e.id, j->stage);
        snprintf(j->published, sizeof(j->published), "%s", j->stage);
    }
}

/* Text of a refinement someone listens to (GET /v1/jobs/{id}/events): published as delta
 * events at most every DELTA_PUBLISH_MS; what is left when the job ends reaches the
 * listeners with the job itself. */
static void on_text(struct pipe_job *pj, const char *text, size_t len)
{
    struct wjob *j = pj->data;
    uint64_t now = uv_now(j->w->svc->loop);
    size_t n;
    char *t;
    sbuf_add(&j->delta, text, len);
    if (now - j->delta_at < DELTA_PUBLISH_MS || j->delta.len == 0)
        return;
    j->delta_at = now;
    n = j->delta.len;
    t = sbuf_take(&j->delta);
    if (t)
        store_publish_delta(j->w->svc->store, j->e.id, t, n);
    free(t);
}

/* --- starting jobs --- */

/* The pipeline's inputs of j (its id and listen_id: j->e.id, filled in later for a job
 * started ahead). */
static void pipe_inputs(struct wjob *j)
{
    j->pj.data = j;
    j->pj.id = j->e.id;
    j->pj.cfg = j->cfg;
    j->pj.req = &j->req;
    j->pj.on_done = on_pipe_done;
    j->pj.on_stage = on_stage;
    j->pj.on_text = on_text;
    j->pj.listen_id = j->e.id;
}

static void start_job(struct worker *w, const struct store_entry *e)
{
    struct wjob *j;
    size_t len;
    if (!job_id_valid(e->id)) {
        store_discard(w->svc->store, e); /* not ours: ack it away so it never blocks the group */
        return;
    }
    j = wjob_new(w, e);
    if (!j)
        return;
    pipe_inputs(j);
    j->pj.queue_ms = (double)(clock_wall_ms() - e->created_ms);
    if (j->pj.queue_ms < 0)
        j->pj.queue_ms = 0;
    len = strlen(j->req_text);
    if (handoff_take(w->svc->handoff, j->req_text, len, &j->req) != 0 &&
        job_req_from_json(j->req_text, len, &j->req) != 0) {
        j->pj.error = cJSON_CreateObject();
        cJSON_AddStringToObject(j->pj.error, "code", "corrupt_job");
        cJSON_AddStringToObject(j->pj.error, "message", "the stored request could not be read");
        finish_job(j, "failed");
        return;
    }
    pipe_trace_meta(&j->pj, j->meta_text);
    if (pipe_start(w->pipe, &j->pj) != 0)
        wjob_free(j); /* left pending: reclaimed once idle */
}

/* --- jobs started ahead of their submit --- */

/* The submit's answer for a job started ahead: the entry its script claimed is the job's
 * own (the job goes on as if read from the queue, its held end applied), another (the
 * queue's backlog: started as any entry read), or none (the submit failed or was refused:
 * the job ends uncounted, as it never was). The submitter hears the answer either way. */
static void on_ahead_submitted(void *data, int status, enum store_submit_rc rc, long depth,
                               const char *id, int64_t created_ms, const char *idem_hash,
                               const struct store_entry *claimed)
{
    struct wjob *j = data;
    int ours = status == 0 && rc == STORE_SUBMITTED && claimed && id &&
               strcmp(claimed->id, id) == 0;
    j->ahead = 0;
    if (ours) {
        j->e = *claimed;
        j->e.req = j->req_text;
        j->e.req_len = strlen(j->req_text);
        j->e.meta = j->meta_text;
        j->e.meta_len = strlen(j->meta_text);
    } else if (claimed) {
        log_info("worker: a submit claimed entry %s of the backlog (job %s) before its own: "
                 "started it; the job started ahead is dropped and runs once its entry is read",
                 claimed->entry, claimed->id);
        start_job(j->w, claimed);
    }
    j->submit_cb(j->submit_data, status, rc, depth, id, created_ms, idem_hash);
    if (ours) {
        if (j->held)
            on_pipe_done(&j->pj, j->held_o);
    } else if (j->held) {
        wjob_free(j);
    } else {
        j->abandoned = 1;
        pipe_cancel(&j->pj); /* on_pipe_done frees it */
    }
}

/* The worker idles: no job in flight, its blocking read waits on queues it found empty, and
 * a free slot is left that read cannot fill (it may deliver COUNT entries from each of the
 * three queues). Under load - jobs in flight - a submit stays a plain XADD: the script that
 * claims costs Redis about twice the CPU, and a blocking read serves many entries at once. */
static int idle_slot(const struct worker *w)
{
    return w->inflight == 0 && w->blk_asked > 0 && free_slots(w) > 3 * w->blk_asked;
}

int worker_ahead(struct worker *w, const struct store_submit *sub, struct job_req *jr,
                 store_submit_cb cb, void *data)
{
    struct store_entry e;
    struct wjob *j;
    if (!w || w->stopping || w->svc->stopping || !idle_slot(w) || !pipeline_draft_open(w->pipe) ||
        !pipe_starts_free(w->svc->cfg, jr))
        return 0;
    memset(&e, 0, sizeof(e));
    e.prio = sub->priority;
    e.attempt = 1;
    e.req = sub->req_json;
    e.req_len = strlen(sub->req_json);
    e.meta = sub->meta_json;
    e.meta_len = strlen(sub->meta_json);
    j = wjob_new(w, &e);
    if (!j)
        return 0;
    j->ahead = 1;
    j->submit_cb = cb;
    j->submit_data = data;
    if (store_submit_claim(w->svc->store, sub, on_ahead_submitted, j) != 0) {
        wjob_free(j);
        return 0;
    }
    j->req = *jr;
    memset(jr, 0, sizeof(*jr));
    pipe_inputs(j);
    pipe_trace_meta(&j->pj, j->meta_text);
    if (pipe_start(w->pipe, &j->pj) != 0) { /* out of memory: back to the queue once claimed */
        j->held = 1;
        j->held_o = PIPE_RETRY;
    }
    return 1;
}

/* A reclaimed entry (its worker died or stalled): a fresh entry with the attempt counted, or
 * the dead letters past workers.max_attempts. */
static void redeliver_claimed(struct worker *w, const struct store_entry *e)
{
    const struct bd_config *cfg = w->svc->cfg;
    struct stats_delta delta;
    struct store_result r;
    cJSON *out = cJSON_CreateObject(), *err, *job;
    char *job_text_s = NULL, *meta = e->meta ? strndup(e->meta, e->meta_len) : NULL;
    memset(&delta, 0, sizeof(delta));
    err = cJSON_AddObjectToObject(out, "error");
    cJSON_AddStringToObject(err, "code", "max_attempts_exceeded");
    cJSON_AddStringToObject(err, "message", "the job was delivered workers.max_attempts times "
                            "without finishing; moved to the dead-letter stream");
    cJSON_AddStringToObject(out, "config_version", cfg->version);
    job = store_job_object(e->id, "failed", e->created_ms, e->attempt, meta, out,
                           clock_wall_ms());
    free(meta);
    job_text_s = job ? jsonx_print(job) : NULL;
    cJSON_Delete(job);
    if (job_text_s) {
        struct stats_job sj;
        memset(&sj, 0, sizeof(sj));
        sj.draft_model = cfg->draft.name;
        sj.refine_model = cfg->refine.name;
        sj.finished_ms = clock_wall_ms();
        struct job_acct a;
        acct_init(&a);
        sj.acct = &a;
        stats_delta_of(&sj, &delta);
    }
    memset(&r, 0, sizeof(r));
    r.status = "failed";
    r.job_json = job_text_s ? job_text_s : "{}";
    r.ttl_s = cfg->result_ttl_s;
    r.stats = delta.n ? &delta : NULL;
    store_redeliver(w->svc->store, e, e->attempt + 1, 0, cfg->max_attempts, &r, NULL, NULL);
    free(job_text_s);
}

/* --- fetching: high before normal before low, then a blocking read of all three ---
 *
 * A blocking read asks each queue for up to a third of the free slots (at least one), so it
 * never takes more than the free slots (but for fewer than three free: one a queue). When it
 * answers with fewer entries than it asked for, all from one queue, the queues held nothing
 * more (Redis answers a blocking read with what every queue has, or, woken by one queue's new
 * entries, with those): the next fetch blocks at once instead of polling the three queues
 * first. At low load that is one read a job instead of four; under a backlog the polls keep
 * taking high before normal before low. */

struct fetch_step {
    struct worker *w;
    int prio;                    /* next priority to poll without blocking; -1: blocking */
    unsigned got;
    unsigned asked;              /* the blocking read's COUNT */
};

static void fetch_next(struct fetch_step *f);

/* Whether a blocking read's answer proves the queues held no more than it took. */
static int drained(const struct store_entry *e, size_t n, unsigned asked)
{
    if (n >= asked)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (e[i].prio != e[0].prio)
            return 0;
    return 1;
}

static void on_read(void *data, int status, const struct store_entry *e, size_t n)
{
    struct fetch_step *f = data;
    if (status != 0) {
        f->w->fetching = 0;
        f->w->queues_drained = 0;
        f->w->blk_asked = 0;
        free(f);
        return;
    }
    if (f->prio == -2) { /* the answer of the blocking read */
        f->w->queues_drained = drained(e, n, f->asked);
        f->w->blk_asked = 0;
    }
    for (size_t i = 0; i < n; i++)
        start_job(f->w, &e[i]);
    f->got += (unsigned)n;
    fetch_next(f);
}

static void fetch_next(struct fetch_step *f)
{
    struct worker *w = f->w;
    unsigned slots = free_slots(w), count;
    int prio = f->prio;
    if (w->stopping || slots == 0 || f->prio < -1 || (f->prio == -1 && f->got > 0)) {
        w->fetching = 0;
        free(f);
        if (!w->stopping && slots > 0)
            fetch(w); /* again: from the top, or blocking when the queues were drained */
        return;
    }
    f->prio = prio >= 0 ? prio - 1 : -2;
    count = slots;
    if (prio < 0) /* blocking: a third of the free slots from each queue, at least one (and
                     one slot left for a job started ahead, worker_ahead) */
        count = slots >= 4 ? (slots - 1) / 3 : 1;
    f->asked = count;
    if (store_read(w->svc->store, prio, count, WORKER_BLOCK_MS, on_read, f) != 0) {
        w->fetching = 0;
        free(f);
        return;
    }
    if (prio < 0)
        w->blk_asked = count;
}

static void fetch(struct worker *w)
{
    struct fetch_step *f;
    if (w->fetching || w->stopping || free_slots(w) == 0 || !store_read_ready(w->svc->store))
        return;
    /* while the draft model's circuit is open, leave the jobs in the queue */
    if (!pipeline_draft_open(w->pipe))
        return;
    f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->w = w;
    f->prio = w->queues_drained ? -1 : PRIO_HIGH;
    w->queues_drained = 0;
    w->fetching = 1;
    fetch_next(f);
}

/* --- reclaiming jobs of dead workers --- */

static void on_claim(void *data, int status, const struct store_entry *e, size_t n)
{
    struct worker *w = data;
    w->claims--;
    if (status != 0 || w->stopping)
        return;
    for (size_t i = 0; i < n; i++) {
        if (job_id_valid(e[i].id))
            redeliver_claimed(w, &e[i]);
        else
            store_discard(w->svc->store, &e[i]);
    }
    if (n)
        log_info("worker: reclaimed %zu job(s) idle > %d ms from the %s queue", n,
                 w->svc->cfg->claim_idle_ms, job_priority_name(e[0].prio));
}

static void reclaim(struct worker *w)
{
    const struct bd_config *cfg = w->svc->cfg;
    for (int p = PRIO_LOW; p <= PRIO_HIGH; p++)
        if (store_reclaim(w->svc->store, (enum job_priority)p, cfg->claim_idle_ms, 100,
                          on_claim, w) == 0)
            w->claims++;
}

static void on_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = uv_now(w->svc->loop);
    uint64_t every = (uint64_t)w->svc->cfg->claim_idle_ms / 4;
    if (every < 1000)
        every = 1000;
    if (w->stopping)
        return;
    if (now - w->last_claim_ms >= every && store_ready(w->svc->store)) {
        w->last_claim_ms = now;
        reclaim(w);
    }
    publish_stages(w);
    fetch(w);
}

static void on_read_ready(void *data)
{
    fetch(data);
}

int worker_start(struct svc *svc, struct worker **out)
{
    struct worker *w = calloc(1, sizeof(*w));
    int rc;
    if (!w)
        return BD_ENOMEM;
    w->svc = svc;
    list_init(&w->jobs);
    w->pipe = svc->pipe;
    rc = webhook_new(svc, &w->webhooks);
    if (rc == 0)
        rc = store_read_open(svc->store, on_read_ready, w);
    if (rc != 0) {
        if (w->webhooks)
            webhook_close(w->webhooks);
        free(w);
        return rc;
    }
    uv_timer_init(svc->loop, &w->tick);
    w->tick.data = w;
    uv_timer_init(svc->loop, &w->grace);
    w->grace.data = w;
    w->last_claim_ms = uv_now(svc->loop);
    uv_timer_start(&w->tick, on_tick, WORKER_TICK_MS, WORKER_TICK_MS);
    *out = w;
    return 0;
}

/* --- stopping --- */

static void stop_closed(void *data)
{
    struct worker *w = data;
    if (--w->pending_closes > 0)
        return;
    void (*cb)(void *) = w->stop_cb;
    void *cbdata = w->stop_data;
    free(w);
    if (cb)
        cb(cbdata);
}

static void on_handle_closed(uv_handle_t *h) { stop_closed(h->data); }

/* Cancel the model calls still running: the jobs go back to the queue. */
static void cancel_calls(struct worker *w)
{
    struct list_node *it, *tmp;
    LIST_FOR_EACH_SAFE(it, tmp, &w->jobs) {
        struct wjob *j = LIST_ENTRY(it, struct wjob, node);
        if (pipe_busy(&j->pj))
            pipe_cancel(&j->pj);
    }
}

static void on_grace(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->inflight)
        log_info("worker: grace period over; handing %u job(s) back to the queue", w->inflight);
    cancel_calls(w);
}

/* Jobs waiting on a Redis reply end when it comes (or when the connection drops). */
static void on_drain_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->inflight > 0 || w->claims > 0) /* a reclaim's answer still comes to w */
        return;
    uv_timer_stop(&w->tick);
    uv_timer_stop(&w->grace);
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace, on_handle_closed);
}

void worker_stop(struct worker *w, unsigned grace_ms, void (*cb)(void *data), void *data)
{
    w->stopping = 1;
    w->stop_cb = cb;
    w->stop_data = data;
    /* webhook attempts in flight give their claims back now: another process (or this one
     * after a restart) makes them */
    webhook_close(w->webhooks);
    w->webhooks = NULL;
    /* Stop reading the queue first: entries handed back from now on must not be delivered
     * to this consumer's blocking read. (An entry delivered just before is started.) */
    w->pending_closes = 3; /* the blocking connection, tick, grace */
    store_read_stop(w->svc->store, stop_closed, w);
    uv_timer_stop(&w->tick);
    uv_timer_start(&w->grace, on_grace, grace_ms, 0);
    uv_timer_start(&w->tick, on_drain_tick, 0, 50);
}
