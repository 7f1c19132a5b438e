/* replay.h - tuning from history: `briefd replay` and `briefd calibrate`.
 *
 * Both read the finished jobs stored in Redis (request text and flags, the draft, its
 * logprob summary and truncation, tokens and costs - what the worker keeps in each job
 * record) and re-run routing with the policies of a given config, without calling any
 * model. replay prints the refine rate and cost the config would have had against what
 * happened, and the jobs whose decision flips. calibrate proposes, for each thresholded
 * policy, the threshold that would have refined a target fraction of those jobs (the way
 * RouteLLM calibrates its threshold to a share of strong-model calls), as a config snippet.
 * Guards are not applied in either (they depend on live traffic). */
#ifndef BRIEFD_REPLAY_H
#define BRIEFD_REPLAY_H

/* Returns the process exit code. target < 0: replay; else calibrate to target (0..1). */
int replay_main(const char *config_path, long window_s, double target);

#endif
