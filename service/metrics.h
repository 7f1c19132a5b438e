/* metrics.h - GET /metrics as a whole (docs/METRICS.md): the cluster-wide series from the
 * shared counters (stats.h), when Redis answered, and the series each process answers for
 * itself whether Redis is up or not - briefd_build_info, briefd_redis_up,
 * briefd_breaker_open per configured endpoint, and the process_* series the Prometheus
 * client libraries export, read from /proc/self.
 *
 * Ownership: metrics_render returns a malloc'd text (caller frees); totals and svc are only
 * read during the call. */
#ifndef BRIEFD_METRICS_H
#define BRIEFD_METRICS_H

#include <stddef.h>

struct cJSON;
struct sbuf;
struct svc;

/* What /proc/self says about this process (Linux; elsewhere ok stays 0). */
struct metrics_proc {
    int ok;
    double cpu_seconds;          /* user + system time */
    double resident_bytes;
    double virtual_bytes;
    double open_fds, max_fds;
    double start_time_s;         /* since the epoch */
};

/* Read the figures (small reads of /proc/self/stat, /proc/stat and /proc/self/fd).
 * Returns 0, or -1 with out->ok 0. */
int metrics_proc_read(struct metrics_proc *out);
/* The process_* series of p (nothing when p->ok is 0), appended to b. Pure. */
void metrics_proc_text(struct sbuf *b, const struct metrics_proc *p);

/* The whole exposition: totals (the all-time counters, NULL while Redis is unreachable:
 * then only the per-process series, with briefd_redis_up 0), the queue gauges, and this
 * process's own series. NULL on OOM. */
char *metrics_render(const struct svc *svc, const struct cJSON *totals, double depth,
                     double in_flight);

#endif
