/* eval.h - `briefd eval`: measure the quality side of the cost/quality trade-off on a
 * dataset (docs/EVALUATION.md).
 *
 * For each document of a JSON Lines dataset (evalset.h) it calls the draft model, runs the
 * config's routing on the draft (router_decide, guards off), calls the refine model where
 * the selected arms need it (always for the refine arm), has the judge (models.judge) score
 * each distinct brief once (judge.h) and runs the cheap checks (checks.h). Every call runs
 * at temperature 0, through the model client (retries, backoff, a deadline of
 * workers.job_timeout_ms per call), on the process's own libuv loop, with up to
 * `concurrency` documents in flight; no Redis. Then it builds the report (evalrep.h),
 * prints the arms table on stdout and, with an output directory, writes report.json,
 * report.md and report.html there (evalpage.h). Progress goes to stderr, one line per
 * document.
 *
 * It gives up early (stops starting documents) when the first EVAL_GIVE_UP draft calls all
 * failed, or the first EVAL_GIVE_UP judge calls all failed: the models are unreachable.
 *
 * Ownership: the options are borrowed for the call. */
#ifndef BRIEFD_EVAL_H
#define BRIEFD_EVAL_H

#define EVAL_GIVE_UP 3
#define EVAL_MAX_CONCURRENCY 256
#define EVAL_DEFAULT_CONCURRENCY 4
#define EVAL_MAX_ERRORS_SHOWN 50   /* invalid dataset lines printed (all are counted) */

struct eval_opts {
    const char *config;          /* required */
    const char *dataset;         /* required */
    const char *out_dir;         /* NULL: no files, only the table on stdout */
    unsigned arms;               /* 1 << enum evalrep_arm */
    int concurrency;             /* 1..EVAL_MAX_CONCURRENCY */
    long limit;                  /* the first `limit` documents; 0: all */
};

/* Run an evaluation. Returns the process exit code: 0 done; 1 the config or the dataset is
 * invalid, the models or the judge could not be reached (no document evaluated, or every
 * judge call failed), or the report could not be written. */
int eval_main(const struct eval_opts *o);

#endif
