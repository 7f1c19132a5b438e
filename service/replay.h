/* replay.h - tuning from history: `briefd replay` and `briefd calibrate`.
 *
 * Both read the finished jobs stored in Redis (request text and flags, the draft, its
 * logprob summary and truncation, tokens and costs - what the worker keeps in each job
 * record) and re-run routing with the policies of a given config, without calling any
 * model. replay prints the refine rate and cost the config would have had against what
 * happened, and the jobs whose decision flips. calibrate proposes, for each thresholded
 * policy, the threshold that would have refined a target fraction of those jobs (the way
 * RouteLLM calibrates its threshold to a share of strong-model calls), as a config snippet.
 * Guards are not applied in either (they depend on live traffic).
 *
 * Where shadow judging stored a job's quality (both briefs scored), replay also reports the
 * judged quality each set of decisions serves, and calibrate --target-gap G proposes, for
 * each thresholded policy alone, the cheapest threshold (least replayed cost, then fewest
 * refinements) over the judged jobs whose mean gap (refine overall - draft overall) on the
 * jobs it keeps stays <= G. */
#ifndef BRIEFD_REPLAY_H
#define BRIEFD_REPLAY_H

/* Returns the process exit code. target_gap >= 0: calibrate by quality (the cheapest
 * threshold of each policy whose mean judged gap on kept jobs stays <= target_gap); else
 * target < 0: replay; else calibrate to the refine rate target (0..1). */
int replay_main(const char *config_path, long window_s, double target, double target_gap);

#endif
