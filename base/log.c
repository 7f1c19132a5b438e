/* log.c - leveled text/JSON log lines on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "jsonx.h"
#include "sbuf.h"

static struct {
    const char *program;
    enum log_format format;
    enum log_level min;
    int pid;                    /* 0 until the first line (a system call a line otherwise) */
    int hold;                   /* log_hold: info and debug lines wait in held */
    size_t held_len;
    char held[LOG_HOLD_MAX];
} logger = {"briefd", LOG_TEXT, LOG_INFO, 0, 0, 0, {0}};

static void write_all(const char *p, size_t n)
{
    ssize_t rc = write(STDERR_FILENO, p, n);
    (void)rc;
}

void log_flush(void)
{
    if (logger.held_len)
        write_all(logger.held, logger.held_len);
    logger.held_len = 0;
}

void log_hold(int on)
{
    if (!on)
        log_flush();
    logger.hold = on;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *log_level_name(enum log_level l)
{
    return l >= LOG_DEBUG && l <= LOG_ERROR ? level_names[l] : "info";
}

int log_level_parse(const char *s)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (s && strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_configure(const char *program, enum log_format format, enum log_level min)
{
    if (program)
        logger.program = program;
    logger.format = format;
    logger.min = min;
}

int log_enabled(enum log_level l)
{
    return l >= logger.min;
}

/* Text values with spaces, quotes or control characters are quoted (logfmt style). */
static void text_value(struct sbuf *b, const char *s)
{
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (unsigned char)*p > ' ' && *p != '"' && *p != '=' && *p != 0x7f;
    if (plain) {
        sbuf_add(b, s, strlen(s));
        return;
    }
    jsonx_write_string(b, s);
}

static void add_number(struct sbuf *b, double v)
{
    char num[48];
    jsonx_number(v, num, sizeof num); /* "null" when not finite */
    sbuf_add(b, num, strlen(num));
}

static void add_fields(struct sbuf *b, const struct log_field *f, size_t nf)
{
    for (size_t i = 0; i < nf; i++) {
        if (!f[i].is_num && (!f[i].str || !f[i].str[0]))
            continue;
        if (logger.format == LOG_JSON) {
            sbuf_add(b, ",", 1);
            jsonx_write_string(b, f[i].key);
            sbuf_add(b, ":", 1);
        } else {
            sbuf_addc(b, ' ');
            sbuf_adds(b, f[i].key);
            sbuf_addc(b, '=');
        }
        if (f[i].is_num)
            add_number(b, f[i].num);
        else if (logger.format == LOG_JSON)
            jsonx_write_string(b, f[i].str);
        else
            text_value(b, f[i].str);
    }
}

void log_write(enum log_level l, const struct log_field *f, size_t nf, const char *fmt, ...)
{
    char ts[40], msg[2048];
    struct sbuf b = {0};
    va_list ap;
    char *line;
    if (!log_enabled(l))
        return;
    if (logger.pid == 0)
        logger.pid = (int)getpid(); /* briefd never forks */
    clock_iso8601(clock_wall_ms(), ts, sizeof(ts));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (logger.format == LOG_JSON) {
        sbuf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"msg\":", ts,
                    log_level_name(l), logger.pid);
        jsonx_write_string(&b, msg);
        add_fields(&b, f, nf);
        sbuf_add(&b, "}\n", 2);
    } else {
        sbuf_printf(&b, "%s %s[%d] %s: %s", ts, logger.program, logger.pid,
                    log_level_name(l), msg);
        add_fields(&b, f, nf);
        sbuf_add(&b, "\n", 1);
    }
    line = sbuf_take(&b);
    if (line) {
        size_t n = strlen(line);
        if (logger.held_len + n > sizeof(logger.held) || !logger.hold || l >= LOG_WARN)
            log_flush();
        if (logger.hold && l < LOG_WARN && n <= sizeof(logger.held)) {
            memcpy(logger.held + logger.held_len, line, n);
            logger.held_len += n;
        } else {
            write_all(line, n);
        }
    }
    free(line);
}
