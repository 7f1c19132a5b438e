/* ctl.h - every route but chat: GET /v1/models (and /v1/models/{id}), GET /healthz, and the
 * control plane for tests: GET|POST /sim/faults, GET /sim/stats, GET /sim/requests,
 * POST /sim/reset (bench/sim/README.md documents the shapes).
 *
 * Ownership: the handlers borrow s and answer req at once. */
#ifndef SIM_CTL_H
#define SIM_CTL_H

#include "sim.h"

struct http_req;

void ctl_models(struct sim *s, struct http_req *req);
/* GET /v1/models/{id}: id is the path after "/v1/models/". */
void ctl_model_one(struct sim *s, struct http_req *req, const char *id);
void ctl_health(struct sim *s, struct http_req *req);
void ctl_faults_get(struct sim *s, struct http_req *req);
void ctl_faults_post(struct sim *s, struct http_req *req);
void ctl_stats(struct sim *s, struct http_req *req);
/* ?limit=N (1..STATS_LOG_CAP, default STATS_LOG_CAP), newest first. */
void ctl_requests(struct sim *s, struct http_req *req);
/* Counters, request log and rule hits to zero, PRNG reseeded; settings stay. */
void ctl_reset(struct sim *s, struct http_req *req);

#endif
