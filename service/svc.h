/* svc.h - the service context: what the API handlers and the worker are handed to do their
 * work (the loop, the store, the model and webhook clients, the pipeline, the current config, this
 * process's name) and the two hooks they may call back into the process (reload, and the
 * stopping flag they read). The process (app.c) fills it and owns everything it points to;
 * api.c and worker.c include this header, never app.h, so nothing they do reaches up.
 * (The shape of h2o's h2o_context_t: handlers get a context, not the server.)
 *
 * Ownership: all pointers are the process's and outlive the API and the pipeline. cfg is
 * the current configuration, one reference held by the process; code that keeps a config
 * past the current callback takes its own reference (config_ref) - a reload swaps cfg. */
#ifndef BRIEFD_SVC_H
#define BRIEFD_SVC_H

#include <uv.h>

struct bd_config;
struct cfg_err;
struct handoff;
struct hook_client;
struct mc_ctx;
struct pipeline;
struct shadow;
struct store;
struct worker;

struct svc {
    uv_loop_t *loop;
    struct bd_config *cfg;          /* current config (a reload swaps it) */
    struct store *store;            /* Redis: queue, jobs, statistics, events */
    struct mc_ctx *mc;              /* model calls */
    struct hook_client *hooks;      /* webhook POSTs */
    struct pipeline *pipe;          /* draft -> route -> refine, breakers, guard figures */
    struct shadow *shadow;          /* shadow judging of finished jobs (shadow.h) */
    struct handoff *handoff;        /* role all: the requests the API queued, parsed, for
                                       this process's worker (handoff.h); else NULL */
    struct worker *worker;          /* role all: this process's worker, which may start a
                                       job ahead of its submit (worker_ahead); else NULL */
    const char *instance;           /* this process: "host-pid-rand" (its consumer name) */
    int stopping;                   /* shutdown has begun: refuse new work, not ready */
    /* Re-read the config file, validate all of it and swap it in. Returns 0, or -1 with err
     * filled and the running config unchanged. */
    int (*reload)(struct svc *s, struct cfg_err *err);
};

#endif
