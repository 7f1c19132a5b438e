/* stats.h - blended-cost statistics shared by every briefd process, kept in Redis.
 *
 * Each finished job adds to time buckets (one hash per minute and one per hour, plus one per
 * minute/hour and dimension value for the "source" and "tenant" dimensions, plus an all-time
 * hash for /metrics and a per-day hash for the refine budget guard). The increments are
 * applied by the same Lua script that stores the job's result, so a result and its
 * statistics are written together or not at all, and a zombie worker's discarded result is
 * not counted.
 *
 * Bucket fields: jobs succeeded failed decided refined degraded, cost_draft cost_refine
 * (USD, floats), tok:<model>:p / tok:<model>:c, vote:<policy>:<verdict>, dtok_all /
 * dtok_refined (draft tokens of all / refined jobs, for the refine-everything estimate),
 * lat latency histograms h:<stage>:<i> with n:<stage> and sum:<stage> (ms).
 * Histogram bucket i >= 1 covers (0.1 * 1.25^(i-1), 0.1 * 1.25^i] ms, bucket 0 is <= 0.1 ms:
 * percentiles are exact to within one bucket (+-12.5%) however many processes and
 * minutes are merged.
 *
 * Ownership: functions returning char* or cJSON* hand them to the caller. */
#ifndef BRIEFD_STATS_H
#define BRIEFD_STATS_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct rds;
struct job_acct;
struct route_result;

#define STATS_HBUCKETS 100
#define STATS_MAX_GROUPS 1000     /* distinct dimension values per bucket; more -> "(other)" */

int stats_bucket(double ms);           /* 0 .. STATS_HBUCKETS-1 */
double stats_bucket_upper(int i);      /* upper bound in ms */
double stats_bucket_lower(int i);

/* What one finished job adds. */
struct stats_job {
    int succeeded;
    int decided;                 /* a route decision was made */
    int refined, degraded;
    const char *draft_model, *refine_model;
    const struct job_acct *acct;
    const struct route_result *route;   /* NULL if not routed */
    const char *source, *tenant;        /* NULL when absent */
    int64_t finished_ms;
};

/* The increments as the JSON argument of the finish script (caller frees). */
char *stats_increments(const char *prefix, long retention_s, const struct stats_job *j);

/* Lua defining stats_apply(json): the scripts that end jobs (store.c) begin with it and
 * call it with the JSON above once the result is stored, so a result and its statistics
 * are written together. Integers only (costs in picodollars): sums are exact. */
#define STATS_APPLY_LUA \
    "local function stats_add(key, ttl, inc)\n" \
    "  for f, n in pairs(inc) do redis.call('HINCRBY', key, f, n) end\n" \
    "  if ttl > 0 then redis.call('EXPIRE', key, ttl) end\n" \
    "end\n" \
    "local function stats_apply(js)\n" \
    "  local s = cjson.decode(js)\n" \
    "  for _, k in ipairs(s.keys) do stats_add(k[1], k[2], s.i) end\n" \
    "  for _, g in ipairs(s.g) do\n" \
    "    local v = g.v\n" \
    "    if redis.call('SISMEMBER', g.idx, v) == 0 and" \
    " redis.call('SCARD', g.idx) >= s.max_groups then v = '(other)' end\n" \
    "    redis.call('SADD', g.idx, v)\n" \
    "    redis.call('EXPIRE', g.idx, g.ttl)\n" \
    "    stats_add(g.base .. v, g.ttl, s.i)\n" \
    "  end\n" \
    "  local day = {refined = s.i.refined or 0, cost_refine_p = s.i.cost_refine_p or 0}\n" \
    "  stats_add(s.day, s.day_ttl, day)\n" \
    "end\n"


/* GET /v1/stats: window_s seconds back from now, grouped by dim ("" | "source" |
 * "tenant"), series in steps of step_s. cb gets the SPEC §2 object (owned by the callback)
 * or NULL with a negative status. */
typedef void (*stats_cb)(void *data, int status, struct cJSON *stats);
int stats_query(struct rds *r, const char *prefix, long window_s, const char *dim, long step_s,
                stats_cb cb, void *data);

/* The guards' figures over the last window_s: refine rate among decided jobs, and today's
 * (UTC) refine spend. cb(data, status, decided, refined, spent_today, avg_refine_cost). */
typedef void (*stats_guard_cb)(void *data, int status, double decided, double refined,
                               double spent_today, double avg_refine_cost);
int stats_guard_query(struct rds *r, const char *prefix, long window_s, stats_guard_cb cb,
                      void *data);

/* GET /metrics: the Prometheus text exposition from the all-time hash plus live gauges.
 * cb gets a malloc'd text (owned by the callback) or NULL. */
typedef void (*stats_text_cb)(void *data, int status, char *text);
int stats_metrics(struct rds *r, const char *prefix, stats_text_cb cb, void *data);

/* Count an upstream failure (model, reason) in the all-time hash; fire and forget. */
void stats_upstream_error(struct rds *r, const char *prefix, const char *model,
                          const char *reason, long n);

#endif
