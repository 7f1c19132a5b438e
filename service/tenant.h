/* tenant.h - per-tenant limits (docs/CONFIG.md#tenants): the "tenants" section of the
 * configuration, the limits that apply to one tenant id, and the small pure arithmetic
 * around them (UTC days, Retry-After to midnight, what a refinement's budget check needs).
 * Pure: no I/O, no clock (times are passed in). The counters live in Redis (store.h).
 *
 *   "tenants": {"default": LIMITS, "by_id": {"acme": LIMITS, ...}}
 *   LIMITS   = {"jobs_per_minute": 1..TENANT_MAX_JPM | null,
 *               "daily_budget_usd": number >= 0 | null,
 *               "max_refine_rate": number in (0, 1] | null}
 *
 * A job's tenant is its metadata.tenant (which a tenant-bound API key replaces). A tenant id
 * listed in by_id gets that entry's limits, a key the entry leaves out taking default's value
 * (an explicit null lifts that limit for the tenant); any other tenant id gets default's
 * limits, each tenant counted on its own. A job without a tenant is not limited by tenants
 * (the global guards still apply).
 *
 * Ownership: a struct tenant_table is built by tenant_table_parse() (which copies what it
 * keeps) and is immutable afterwards; the config that holds it frees it with
 * tenant_table_free(). Pointers returned by lookups belong to the table. */
#ifndef BRIEFD_TENANT_H
#define BRIEFD_TENANT_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

struct cJSON;

#define TENANT_MAX_IDS 10000        /* entries of tenants.by_id */
#define TENANT_MAX_JPM 100000       /* jobs_per_minute bound */
#define TENANT_ID_MAX 256           /* bytes of a tenant id (metadata.tenant's bound) */
#define TENANT_WINDOW_MS 60000      /* jobs_per_minute counts admissions over this window */

struct tenant_limits {
    long jobs_per_minute;           /* 0: no rate limit */
    double daily_budget_usd;        /* < 0: no budget */
    double max_refine_rate;         /* <= 0: no refine-rate limit */
};

struct tenant_table;

/* Parse the "tenants" object v (its path is "tenants"). Returns 0 and sets *out, or -1 with
 * err naming the JSON path ("tenants.by_id.acme.jobs_per_minute"). */
int tenant_table_parse(const struct cJSON *v, struct tenant_table **out, struct cfg_err *err);
void tenant_table_free(struct tenant_table *t);
/* The effective section: {"default": LIMITS, "by_id": {id: LIMITS}} with every key (null
 * for none); it loads back to the same limits. t may be NULL (no section). Caller frees. */
struct cJSON *tenant_table_describe(const struct tenant_table *t);
/* How many tenant ids by_id lists. */
size_t tenant_table_count(const struct tenant_table *t);

/* The limits of tenant id (NULL or "" = no tenant: NULL; t NULL: NULL). src, when not NULL,
 * is set to "by_id" or "default". */
const struct tenant_limits *tenant_limits_of(const struct tenant_table *t, const char *id,
                                             const char **src);
/* 1 if l limits anything (l may be NULL). */
int tenant_limits_any(const struct tenant_limits *l);
/* {"jobs_per_minute", "daily_budget_usd", "max_refine_rate"}, null for none (caller frees). */
struct cJSON *tenant_limits_json(const struct tenant_limits *l);

/* 1 if id is a tenant id as metadata.tenant accepts one and names a tenant: 1 to
 * TENANT_ID_MAX bytes of valid UTF-8. */
int tenant_id_valid(const char *id);

/* Seconds from now_ms to the next UTC midnight, rounded up, at least 1 (a budget's
 * Retry-After). */
long tenant_retry_midnight_s(int64_t now_ms);
/* Seconds until the oldest of the window's admissions (at oldest_ms) leaves the window,
 * rounded up, at least 1 (a rate limit's Retry-After). */
long tenant_retry_window_s(int64_t oldest_ms, int64_t now_ms);

#endif
