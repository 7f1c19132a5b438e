/* metrics.c - GET /metrics: cluster-wide counters when Redis answers, per-process series
 * always. */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "jsonx.h"
#include "pipeline.h"
#include "sbuf.h"
#include "stats.h"
#include "store.h"
#include "svc.h"
#include "upstream.h"
#include "url.h"

#ifndef BRIEFD_VERSION
#define BRIEFD_VERSION "0.0.0"
#endif

#define STAT_MAX 4096    /* bytes of /proc/self/stat read */
#define FDS_MAX  1000000 /* descriptors counted at most */

/* --- /proc/self --- */

static size_t read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (!f)
        return 0;
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

/* btime of /proc/stat: the boot time, seconds since the epoch (0 if unknown). */
static double boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    double bt = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lf", &bt) == 1)
            break;
    if (f)
        fclose(f);
    return bt;
}

static double count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;
    if (!d)
        return -1;
    while (n < FDS_MAX) {
        e = readdir(d);
        if (!e)
            break;
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory being read */
}

int metrics_proc_read(struct metrics_proc *out)
{
    char buf[STAT_MAX];
    const char *p;
    unsigned long long utime, stime, start, vsize;
    long long rss;
    double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    memset(out, 0, sizeof(*out));
    if (read_small("/proc/self/stat", buf, sizeof(buf)) == 0 || tick <= 0)
        return -1;
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    /* after ") ": state(3) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24) */
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
                     "%*d %*d %*d %llu %llu %lld",
                     &utime, &stime, &start, &vsize, &rss) != 5)
        return -1;
    out->cpu_seconds = (double)(utime + stime) / tick;
    out->start_time_s = boot_time() + (double)start / tick;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)rss * page;
    out->open_fds = count_fds();
    out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (double)rl.rlim_cur
                       : -1;
    out->ok = 1;
    return 0;
}

static void gauge(struct sbuf *b, const char *name, const char *type, const char *help, double v)
{
    char num[40];
    if (v < 0)
        return;
    jsonx_number(v, num, sizeof(num));
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name, num);
}

void metrics_proc_text(struct sbuf *b, const struct metrics_proc *p)
{
    if (!p->ok)
        return;
    gauge(b, "process_cpu_seconds_total", "counter",
          "Total user and system CPU time spent in "
          "seconds.",
          p->cpu_seconds);
    gauge(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
          p->resident_bytes);
    gauge(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
          p->virtual_bytes);
    gauge(b, "process_open_fds", "gauge", "Number of open file descriptors.", p->open_fds);
    gauge(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.", p->max_fds);
    gauge(b, "process_start_time_seconds", "gauge",
          "Start time of the process since unix "
          "epoch in seconds.",
          p->start_time_s);
}

/* --- this process's own series --- */

/* A label value: backslash, quote and newline escaped. */
static void label(struct sbuf *b, const char *name, const char *value, int first)
{
    sbuf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *s = value; *s; s++) {
        if (*s == '\\' || *s == '"')
            sbuf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            sbuf_adds(b, "\\n");
        else
            sbuf_add(b, s, 1);
    }
    sbuf_adds(b, "\"");
}

static void breaker_series(struct sbuf *b, const struct svc *svc, const struct model_cfg *m,
                           const char *role)
{
    for (int k = 0; k < ups_count(m); k++) {
        const struct model_cfg *ep = ups_endpoint(m, k);
        char where[2100], name[16];
        url_redact(ep->base_url, where, sizeof(where));
        snprintf(name, sizeof(name), k ? "fallback%d" : "primary", k);
        sbuf_adds(b, "briefd_breaker_open{");
        label(b, "role", role, 1);
        label(b, "model", ep->name, 0);
        label(b, "endpoint", name, 0);
        label(b, "url", where, 0);
        sbuf_printf(b, "} %d\n", svc->pipe && pipeline_breaker_open(svc->pipe, ep) ? 1 : 0);
    }
}

static void own_series(struct sbuf *b, const struct svc *svc, int redis_up)
{
    struct metrics_proc p;
    sbuf_adds(b, "# HELP briefd_build_info The running briefd's version (always 1).\n"
                 "# TYPE briefd_build_info gauge\n");
    sbuf_adds(b, "briefd_build_info{");
    label(b, "version", BRIEFD_VERSION, 1);
    sbuf_adds(b, "} 1\n");
    gauge(b, "briefd_redis_up", "gauge",
          "1 if this process reaches Redis (the cluster-wide series come from it), else 0.",
          redis_up);
    gauge(b, "briefd_records_pending", "gauge",
          "Finished jobs and answered facade requests of this process whose records Redis has "
          "not stored yet.",
          svc->store ? (double)store_finishes_pending(svc->store) : 0);
    sbuf_adds(b, "# HELP briefd_breaker_open 1 while this process's circuit breaker of a model "
                 "endpoint is not closed.\n# TYPE briefd_breaker_open gauge\n");
    breaker_series(b, svc, &svc->cfg->draft, "draft");
    breaker_series(b, svc, &svc->cfg->refine, "refine");
    metrics_proc_read(&p);
    metrics_proc_text(b, &p);
}

/* The configured model names: every endpoint of the draft and refine models. */
static size_t model_names(const struct bd_config *c, const char **out, size_t max)
{
    size_t n = 0;
    for (int r = 0; r < 2; r++) {
        const struct model_cfg *m = r ? &c->refine : &c->draft;
        for (int k = 0; k < ups_count(m) && n < max; k++)
            out[n++] = ups_endpoint(m, k)->name;
    }
    return n;
}

char *metrics_render(const struct svc *svc, const struct cJSON *totals, double depth,
                     double in_flight)
{
    struct sbuf b = {0};
    const char *names[2 * (1 + CONFIG_MAX_FALLBACKS)];
    struct stats_known known;
    known.models = names;
    known.n_models = model_names(svc->cfg, names, sizeof(names) / sizeof(names[0]));
    known.fallbacks[0] = (int)svc->cfg->draft.n_fallbacks;
    known.fallbacks[1] = (int)svc->cfg->refine.n_fallbacks;
    if (totals) {
        char *cluster = stats_metrics_text(totals, depth, in_flight, &known);
        if (!cluster)
            return NULL;
        sbuf_adds(&b, cluster);
        free(cluster);
    }
    own_series(&b, svc, totals != NULL);
    return sbuf_take(&b);
}
