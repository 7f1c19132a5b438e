/* stats.h - what the simulator counts and remembers about chat requests: counters by
 * outcome, kind and model, requests in flight (now and at their peak), and a bounded log of
 * the last STATS_LOG_CAP requests (GET /sim/stats, GET /sim/requests).
 *
 * In flight: a POST /v1/chat/completions between stats_begin() (its arrival) and
 * stats_end() (its response complete, or the client gone).
 *
 * Ownership: struct stats owns the log entries (cJSON trees): stats_log_add() takes the
 * entry; stats_free() releases them. JSON returned by the *_json functions is the caller's. */
#ifndef SIM_STATS_H
#define SIM_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct cJSON;

#define STATS_LOG_CAP 256

enum outcome {
    O_OK, O_ERROR, O_RATE_LIMITED, O_REJECTED, O_HANG, O_GARBAGE, O_TRUNCATED, O_STREAM_ERROR,
    O_BAD_REQUEST, O_UNAUTHORIZED, O_NOT_FOUND, O_COUNT
};
extern const char *const stats_outcomes[O_COUNT];     /* "ok", "error", ... */

struct stats_model {
    uint64_t requests, streams, aborted, prompt_tokens, completion_tokens;
    uint64_t outcome[O_COUNT], kind[KIND_COUNT];
    unsigned inflight, peak_inflight;
};

struct stats {
    uint64_t requests, aborted;
    uint64_t outcome[O_COUNT], kind[KIND_COUNT];
    unsigned inflight, peak_inflight;
    struct stats_model model[MODEL_COUNT];
    struct cJSON *log[STATS_LOG_CAP];   /* ring: log_next is the next slot */
    size_t log_next, log_len;
    uint64_t log_seq;
};

void stats_init(struct stats *st);
void stats_free(struct stats *st);
/* Counters to zero and the log emptied; the peaks restart at what is in flight now. */
void stats_reset(struct stats *st);

/* A request arrives / its response is complete (model -1: not known). */
void stats_begin(struct stats *st, int model);
void stats_end(struct stats *st, int model);
/* A decided request: its outcome (model -1: refused before a model was known). */
void stats_outcome(struct stats *st, int model, enum outcome o);
/* Remember a request (entry is taken: freed now if it cannot be kept). Adds "seq". */
void stats_log_add(struct stats *st, struct cJSON *entry);

/* GET /sim/stats body (pending: requests answered later; rule_hits is taken). */
struct cJSON *stats_json(const struct stats *st, unsigned pending, struct cJSON *rule_hits);
/* The newest limit entries of the log, newest first (copies). */
struct cJSON *stats_log_json(const struct stats *st, size_t limit);

#endif
