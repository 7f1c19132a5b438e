/* clock.c - wall and monotonic clocks, ISO 8601. */
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double clock_ms_since(uint64_t t0)
{
    return (double)(clock_mono_ns() - t0) / 1e6;
}

/* v (>= 0) as exactly w decimal digits at p; returns past them. */
static char *put_digits(char *p, int v, int w)
{
    for (int k = w - 1; k >= 0; k--, v /= 10)
        p[k] = (char)('0' + v % 10);
    return p + w;
}

void clock_iso8601(int64_t unix_ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    int year, f[7], w[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char sep[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *p = out;
    gmtime_r(&secs, &tm);
    year = tm.tm_year + 1900;
    if (unix_ms < 0 || year > 9999 || outlen < 25) { /* the rare case: printf's padding */
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
        return;
    }
    f[0] = year, f[1] = tm.tm_mon + 1, f[2] = tm.tm_mday, f[3] = tm.tm_hour;
    f[4] = tm.tm_min, f[5] = tm.tm_sec, f[6] = (int)(unix_ms % 1000);
    for (int i = 0; i < 7; i++) { /* YYYY-MM-DDTHH:MM:SS.mmmZ without printf */
        p = put_digits(p, f[i], w[i]);
        *p++ = sep[i];
    }
    *p = '\0';
}

int clock_http_date(int64_t unix_s, char out[CLOCK_HTTP_DATE_LEN + 1])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)unix_s;
    struct tm tm;
    char *p = out;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -1;
    memcpy(p, days[tm.tm_wday % 7], 3); /* "Wed, 02 Dec 2026 16:52:43 GMT", no printf */
    p[3] = ',';
    p[4] = ' ';
    p = put_digits(p + 5, tm.tm_mday, 2);
    *p++ = ' ';
    memcpy(p, mons[tm.tm_mon % 12], 3);
    p[3] = ' ';
    p = put_digits(p + 4, tm.tm_year + 1900, 4);
    *p++ = ' ';
    p = put_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_sec, 2);
    memcpy(p, " GMT", 5);
    return 0;
}

void clock_utc_day(int64_t unix_ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int clock_parse_iso8601(const char *s, int64_t *unix_ms)
{
    int y, mo, d, h, mi, se, ms, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &y, &mo, &d, &h, &mi, &se, &ms, &n) != 7 ||
        n != 24 || s[n] != '\0')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1970 ||
        h < 0 || mi < 0 || se < 0 || ms < 0)
        return -1;
    *unix_ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000 + ms;
    return 0;
}
