/* upstream.h - a model's endpoints and their circuit breakers: the primary (models.X) then
 * its fallbacks (models.X.fallbacks, docs/CONFIG.md#fallbacks), in order, each with a
 * breaker of its own. Pure: no I/O, no clock (the caller passes the time).
 *
 * Endpoint k of model m is m itself for k = 0 and m->fallbacks[k - 1] after. A breaker
 * belongs to an endpoint, keyed by its base_url and name, not to a configuration: a reload
 * that keeps an endpoint keeps its breaker's state, and two roles that call one endpoint
 * share it. The table holds at most UPS_MAX_BREAKERS; past that the least recently used
 * closed breaker makes room (an open one only if every breaker is open).
 *
 * Which failures move on to the next endpoint: the ones that say the upstream is out -
 * connection failures, timeouts, 5xx, 429 (after the call's own retries) - never a 4xx (the
 * request itself is wrong there, and would be anywhere), a bad body or an oversized one.
 *
 * Ownership: struct ups is the caller's (zeroed to start, ups_free to release); it copies
 * the keys it keeps. Endpoints returned point into the model_cfg passed in. */
#ifndef BRIEFD_UPSTREAM_H
#define BRIEFD_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "mclient.h"

struct model_cfg;

#define UPS_MAX_BREAKERS 64

struct ups_breaker {
    char *key;                  /* base_url "\n" name */
    struct breaker b;
    uint64_t used_ms;           /* last looked up (for eviction) */
};

struct ups {
    struct ups_breaker v[UPS_MAX_BREAKERS];
    size_t n;
};

/* How many endpoints m has (1 + its fallbacks), and endpoint k of m (NULL past the end). */
int ups_count(const struct model_cfg *m);
const struct model_cfg *ups_endpoint(const struct model_cfg *m, int k);

/* The breaker of endpoint ep, created closed when new; NULL on OOM (the caller then calls
 * without one). */
struct breaker *ups_breaker(struct ups *u, const struct model_cfg *ep, uint64_t now_ms);
/* Its state without creating it (closed when unknown). */
enum breaker_state ups_state(const struct ups *u, const struct model_cfg *ep);

/* The first endpoint k >= from of m whose breaker lets a call through now (breaker_allow:
 * a half-open breaker lets one probe through and counts it in flight), or -1 if none does. */
int ups_pick(struct ups *u, const struct model_cfg *m, int from, uint64_t now_ms);
/* Would endpoint ep take a call now (no side effect)? */
int ups_would_allow(const struct ups *u, const struct model_cfg *ep, uint64_t now_ms);
/* Would some endpoint of m take a call now (no side effect)? */
int ups_any_open(const struct ups *u, const struct model_cfg *m, uint64_t now_ms);
/* Record the outcome of a call to ep (ok: it answered, even with a 4xx). Returns 1 if the
 * breaker changed state. */
int ups_record(struct ups *u, const struct model_cfg *ep, int ok, uint64_t now_ms);

/* Is fail a failure that moves on to the next endpoint? */
int ups_outage(enum mc_fail fail);

void ups_free(struct ups *u);

#endif
