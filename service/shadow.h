/* shadow.h - shadow judging (docs/EVALUATION.md#online-evaluation): a sampled share of the
 * finished jobs (evaluation.shadow_rate) also gets the brief it did not serve, and both
 * briefs are scored by the judge (models.judge) - after the job has answered. The worker and
 * the facade offer every succeeded job (shadow_take) before they store it and start the
 * sampled ones once the record is stored and its event published (shadow_start), so a
 * client never waits for any of this.
 *
 * Jobs answered from the exact cache (gate.h) are not evaluated: no model wrote them.
 *
 * What a sampled job gets: a kept draft (or one kept because the refinement failed) a
 * background refinement with models.refine's prompt; a refined job has both briefs already;
 * a pre-routed job (no draft) a background draft with models.draft's prompt. Each brief
 * there is is judged; the job's record then carries "quality" (store_set_quality) and the
 * statistics count it (stats.h: stats_quality_delta). The spend is evaluation spend, never
 * the job's cost_usd.
 *
 * Bounds: a job is sampled by the hash of its id (the same job, the same answer, on every
 * process); at most evaluation.max_in_flight evaluations per process at once (a sampled job
 * beyond that is skipped, "busy"); not while the judge's breaker (this module's own, with
 * models.judge's breaker settings) or the breaker of the model that would write the missing
 * brief is open ("breaker"); and with evaluation.daily_budget_usd, only once an estimate of
 * the evaluation's cost is reserved against the day's budget, shared by every process in
 * Redis (store_eval_reserve; the reservation is settled to what was spent afterwards), else
 * "budget" (also when the budget cannot be checked). Skips are counted (q_skip:<reason>).
 * Model calls to a model with max_concurrency wait for a slot at low priority, and every
 * call is bounded by workers.job_timeout_ms.
 *
 * A process that stops (shadow_close) or dies loses the evaluations in flight - only those:
 * the jobs themselves are stored before. Their reservations stay counted for the day.
 *
 * Ownership: struct shadow belongs to the process (app.c); shadow_close cancels what runs and
 * calls cb once nothing started is left; a task taken and not yet started or dropped keeps
 * the struct's memory alive until then (the store's finish callbacks, which start or drop
 * it, all come before the store closes). shadow_take copies what it keeps and takes its own
 * config reference. */
#ifndef BRIEFD_SHADOW_H
#define BRIEFD_SHADOW_H

#include <stdint.h>

struct pipe_job;
struct shadow;
struct shadow_task;
struct svc;

int shadow_new(struct svc *svc, struct shadow **out);
/* Cancel the evaluations that run (lost), refuse new ones, then cb(data). */
void shadow_close(struct shadow *sh, void (*cb)(void *data), void *data);

/* A succeeded job, just run by the pipeline (pj: its results; id, the stored request
 * req_json, and finished_ms - when its statistics count it - as the caller stores them).
 * NULL when it is not sampled or is skipped (counted); else a task the caller must pass to
 * shadow_start or shadow_drop. */
struct shadow_task *shadow_take(struct shadow *sh, const struct pipe_job *pj, const char *id,
                                const char *req_json, int64_t finished_ms);
/* The job's record is stored and its event published: evaluate (in the background). */
void shadow_start(struct shadow_task *t);
/* Give up on a task that was not started (the record was not stored). */
void shadow_drop(struct shadow_task *t);
/* A store_flag_cb for store_finish: start the task (data) when the record was stored
 * (status 0, applied), else drop it. */
void shadow_stored(void *task, int status, int applied);

#endif
