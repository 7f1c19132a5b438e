/* log.h - one log format for every briefd program: leveled lines on stderr, as text or as
 * one JSON object a line.
 *
 *   text: 2026-12-02T03:54:51.123Z briefd[4242] info: job finished job_id=job_01J... ms=12.5
 *   json: {"ts":"2026-12-02T03:54:51.123Z","level":"info","pid":4242,"msg":"job finished",
 *          "job_id":"job_01J...","ms":12.5}
 *
 * A line is never split between two write(2)s, so lines from several processes sharing a
 * stderr do not interleave. A program with an event loop may hold info and debug lines (an
 * access line a request) and write them together once a turn of its loop (log_hold,
 * log_flush): held lines go out in writes of at most LOG_HOLD_MAX bytes (PIPE_BUF: one
 * write to a pipe is not interleaved with others), and a warning or an error writes what
 * is held, then itself, at once. Callers never pass secrets: API keys, passwords, header
 * values from the environment and callback URL credentials are kept out of messages and
 * fields.
 *
 * Ownership: the logger copies nothing past the call; the program name given to
 * log_configure() must outlive the process (a string literal). Single-threaded. */
#ifndef BRIEFD_LOG_H
#define BRIEFD_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };

/* Lowercase name ("info"); log_level_parse returns -1 for an unknown name. */
const char *log_level_name(enum log_level l);
int log_level_parse(const char *s);

/* Program name, format and the lowest level written (defaults: "briefd", text, info). */
void log_configure(const char *program, enum log_format format, enum log_level min);
int log_enabled(enum log_level l);

/* A structured field: a string (num unused) or, with is_num, a number. A NULL or empty
 * string value leaves the field out. */
struct log_field {
    const char *key;
    const char *str;
    double num;
    int is_num;
};
#define LOG_STR(k, v) ((struct log_field){(k), (v), 0, 0})
#define LOG_NUM(k, v) ((struct log_field){(k), NULL, (double)(v), 1})

#define LOG_HOLD_MAX 4096

/* While on, info and debug lines are held (up to LOG_HOLD_MAX bytes; a line that does not
 * fit writes what is held first) until log_flush(). Off writes what is held. */
void log_hold(int on);
void log_flush(void);

/* Write one line at level l with nf fields (f may be NULL when nf is 0). */
void log_write(enum log_level l, const struct log_field *f, size_t nf, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) log_write(LOG_DEBUG, NULL, 0, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, NULL, 0, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, NULL, 0, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, NULL, 0, __VA_ARGS__)

#endif
