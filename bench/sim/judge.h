/* judge.h - the simulator as an LLM judge of briefs: the answer to a Chat Completions call
 * whose response_format is the json_schema named "brief_rubric".
 *
 * The last user message is read as
 *
 *     Document:
 *     <document text>
 *
 *     Maximum words: <N>
 *
 *     Brief:
 *     <brief text>
 *
 * and the brief is scored 1-5 on coherence, faithfulness and brevity by fixed rules (see
 * bench/sim/README.md, "The judge"): the same input always gets the same scores.
 *
 * Ownership: pure functions; judge_render() returns a malloc'd string (caller frees). */
#ifndef SIM_JUDGE_H
#define SIM_JUDGE_H

#include <stddef.h>
#include <stdint.h>

#define JUDGE_SCHEMA_NAME "brief_rubric"
#define JUDGE_PLAIN_SHARE 0.18  /* documents whose extractive draft the judge does not mind */

enum judge_wrap { JUDGE_WRAP_NONE, JUDGE_WRAP_PROSE, JUDGE_WRAP_FENCE };

struct judge_opts {
    int wrap;               /* enum judge_wrap */
    int out_of_range;       /* one score (chosen from the seed) is 7 */
    int garbage;            /* prose without any JSON */
};

struct judge_scores {
    int coherence, faithfulness, brevity;   /* 1..5 */
    char rationale[480];
};

/* Score the brief of input (a judge prompt as above). An input without that layout gets
 * 1 on every score and a rationale saying so. */
void judge_score(const char *input, struct judge_scores *out);
/* message.content for the scores as the options ask; seed picks the out-of-range score.
 * NULL on OOM; *len its length. */
char *judge_render(const struct judge_scores *sc, const struct judge_opts *o, uint64_t seed,
                   size_t *len);

#endif
