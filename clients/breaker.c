/* breaker.c - circuit breaker state machine. */
#include "breaker.h"

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_OPEN: return "open";
    case BREAKER_HALF_OPEN: return "half-open";
    default: return "closed";
    }
}

int breaker_would_allow(const struct breaker *b, uint64_t now_ms, int open_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return 1;
    case BREAKER_OPEN:
        return now_ms >= b->opened_at_ms + (uint64_t)open_ms;
    default:
        return !b->probe_inflight;
    }
}

int breaker_allow(struct breaker *b, uint64_t now_ms, int open_ms)
{
    if (!breaker_would_allow(b, now_ms, open_ms))
        return 0;
    if (b->state != BREAKER_CLOSED) {
        b->state = BREAKER_HALF_OPEN;
        b->probe_inflight = 1;
    }
    return 1;
}

int breaker_record(struct breaker *b, int ok, uint64_t now_ms, int failures)
{
    enum breaker_state before = b->state;
    if (ok) {
        b->consecutive = 0;
        b->probe_inflight = 0;
        b->state = BREAKER_CLOSED;
    } else {
        b->consecutive++;
        if (b->state == BREAKER_HALF_OPEN ||
            (b->state == BREAKER_CLOSED && b->consecutive >= failures)) {
            b->state = BREAKER_OPEN;
            b->opened_at_ms = now_ms;
            b->probe_inflight = 0;
            b->opens++;
        }
    }
    return b->state != before;
}
