/* clock.h - time: wall-clock milliseconds (for what crosses processes: created/finished
 * times, queue latency, day and minute buckets), monotonic nanoseconds (for durations inside
 * one process), ISO 8601 timestamps and HTTP dates.
 *
 * Ownership: pure functions over the system clocks; out buffers are the caller's. */
#ifndef BRIEFD_CLOCK_H
#define BRIEFD_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);
/* Monotonic nanoseconds (CLOCK_MONOTONIC; the clock libuv's uv_hrtime reads). */
uint64_t clock_mono_ns(void);
/* Milliseconds elapsed since t0 (a clock_mono_ns() value). */
double clock_ms_since(uint64_t t0);
/* "2026-11-25T12:00:00.123Z" into out (>= 32 bytes; shorter buffers get a truncated text). */
void clock_iso8601(int64_t unix_ms, char *out, size_t outlen);
/* Read back exactly what clock_iso8601 writes ("2026-11-25T12:00:00.123Z", 1970 on):
 * 0 and *unix_ms, or -1 for anything else. */
int clock_parse_iso8601(const char *s, int64_t *unix_ms);
/* An HTTP Date header's value (RFC 9110 IMF-fixdate, "Wed, 02 Dec 2026 16:52:43 GMT") of
 * unix_s into out; 0, or -1 for a year outside 0..9999 (out untouched). */
#define CLOCK_HTTP_DATE_LEN 29
int clock_http_date(int64_t unix_s, char out[CLOCK_HTTP_DATE_LEN + 1]);
/* "20261125" (UTC day of unix_ms) into out (>= 9 bytes). */
void clock_utc_day(int64_t unix_ms, char *out, size_t outlen);

#endif
