/* test_metrics.c - the process figures /metrics reads from /proc/self, and their text. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "sbuf.h"
#include "tcheck.h"

static void test_proc_read(void)
{
    struct metrics_proc p;
    double now = (double)time(NULL);
    volatile double x = 0;
    CHECK(metrics_proc_read(&p) == 0);
    CHECK(p.ok == 1);
    CHECK(p.resident_bytes > 4096 && p.virtual_bytes >= p.resident_bytes);
    CHECK(p.open_fds >= 3 && p.open_fds < 1000);
    CHECK(p.max_fds < 0 || p.max_fds >= p.open_fds);
    CHECK(p.start_time_s > now - 600 && p.start_time_s <= now + 1);
    CHECK(p.cpu_seconds >= 0);
    for (long i = 0; i < 60000000; i++) /* burn some CPU: the counter moves */
        x += (double)i;
    {
        struct metrics_proc q;
        CHECK(metrics_proc_read(&q) == 0 && q.cpu_seconds > p.cpu_seconds);
        CHECK(q.start_time_s == p.start_time_s);
    }
}

static void test_proc_text(void)
{
    struct metrics_proc p = {1, 1.25, 1048576, 2097152, 12, 1024, 1796189813.5};
    struct sbuf b = {0};
    char *t;
    metrics_proc_text(&b, &p);
    t = sbuf_take(&b);
    CHECK(t &&
          strstr(t, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.25\n"));
    CHECK(t && strstr(t, "process_resident_memory_bytes 1048576\n"));
    CHECK(t && strstr(t, "process_open_fds 12\n"));
    CHECK(t && strstr(t, "process_max_fds 1024\n"));
    CHECK(t && strstr(t, "process_start_time_seconds 1796189813.5\n"));
    free(t);
    p.ok = 0;
    metrics_proc_text(&b, &p);
    t = sbuf_take(&b);
    CHECK(t && t[0] == '\0');
    free(t);
}

int main(void)
{
    test_proc_read();
    test_proc_text();
    return tcheck_summary("test_metrics");
}
