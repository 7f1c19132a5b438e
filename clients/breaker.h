/* breaker.h - a circuit breaker for one upstream model (pure: the caller passes the time).
 *
 * closed    calls flow; `failures` consecutive failed calls open it.
 * open      calls are refused until open_ms has passed; then one probe is let through.
 * half-open one probe in flight: its success closes the breaker, its failure re-opens it.
 * A "call" is one logical model call (after its own retries). */
#ifndef BRIEFD_BREAKER_H
#define BRIEFD_BREAKER_H

#include <stdint.h>

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

struct breaker {
    enum breaker_state state;
    int consecutive;          /* failures in a row */
    uint64_t opened_at_ms;
    int probe_inflight;
    unsigned long opens;      /* times it opened (for logs and metrics) */
};

const char *breaker_state_name(enum breaker_state s);
/* May a call start now? In half-open, allows exactly one probe (and marks it in flight). */
int breaker_allow(struct breaker *b, uint64_t now_ms, int open_ms);
/* Would a call be allowed now (no side effect)? */
int breaker_would_allow(const struct breaker *b, uint64_t now_ms, int open_ms);
/* Record the outcome of an allowed call. Returns 1 if this changed the state. */
int breaker_record(struct breaker *b, int ok, uint64_t now_ms, int failures);

#endif
