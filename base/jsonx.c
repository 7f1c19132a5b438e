/* jsonx.c - JSON printing with exact (round-trip) numbers, in one pass over the tree. */
#include "jsonx.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"

/* Integers (the common case: counts, tokens, times) print as themselves. */
#define EXACT_INT_LIMIT 9007199254740992.0 /* 2^53 */

/* The decimal digits of n (>= 0) into buf, backwards from its end; returns the start. */
static char *digits_back(unsigned long long n, char *end)
{
    do {
        *--end = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return end;
}

size_t jsonx_int(long long v, char *buf)
{
    char tmp[24], *p = digits_back(v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v,
                                   tmp + sizeof(tmp));
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    size_t off = v < 0;
    if (off)
        buf[0] = '-';
    memcpy(buf + off, p, n);
    buf[off + n] = '\0';
    return off + n;
}

/* v as "I.F" with at most 17 decimals when that is exactly v (n / 10^k == v in double
 * arithmetic is the correctly rounded value of the decimal, so strtod gives v back). The
 * common non-integers - milliseconds to 3 decimals, prices, small costs - print without
 * printf. Returns 0 when v needs more digits. */
static int fixed_decimal(double v, char *buf, size_t len)
{
    double scale = 1;
    for (int k = 1; k <= 17; k++) {
        double n;
        scale *= 10; /* exact: 10^17 < 10^22 */
        n = nearbyint(v * scale);
        if (fabs(n) < EXACT_INT_LIMIT && n / scale == v) {
            unsigned long long a = (unsigned long long)fabs(n), ip, fp;
            unsigned long long p10 = (unsigned long long)scale;
            char tmp[48], *q = tmp + sizeof(tmp);
            int kk = k;
            ip = a / p10;
            fp = a % p10;
            while (kk > 0 && fp % 10 == 0) { /* trailing zeros go */
                fp /= 10;
                kk--;
            }
            for (int i = 0; i < kk; i++) {
                *--q = (char)('0' + fp % 10);
                fp /= 10;
            }
            if (kk > 0)
                *--q = '.';
            q = digits_back(ip, q);
            if (n < 0)
                *--q = '-';
            if ((size_t)(tmp + sizeof(tmp) - q) + 1 > len)
                return 0;
            memcpy(buf, q, (size_t)(tmp + sizeof(tmp) - q));
            buf[tmp + sizeof(tmp) - q] = '\0';
            return 1;
        }
    }
    return 0;
}

#define FAST_DIGITS 15   /* 10^15 < 2^53: the digits are an exact double */
#define FAST_POW10 22    /* 10^22 is the largest exact power of ten */

static const double POW10[FAST_POW10 + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The digits at p into *m (leading zeros skipped; *nd counts the significant ones, *m takes
 * the first FAST_DIGITS), *count every digit. Returns past them. */
static const char *fast_digits(const char *p, unsigned long long *m, int *nd, int *count)
{
    unsigned long long mm = *m; /* locals: the loop reads chars, which may alias *m */
    int d = *nd, c = *count;

    for (; *p >= '0' && *p <= '9'; p++) {
        c++;
        if (mm == 0 && *p == '0')
            continue;
        if (++d <= FAST_DIGITS)
            mm = mm * 10 + (unsigned long long)(*p - '0');
    }
    *m = mm;
    *nd = d;
    *count = c;
    return p;
}

double jsonx_read_number(const char *s, char **end)
{
    const char *p = s + (*s == '-');
    unsigned long long m = 0;
    int nd = 0, ni = 0, nf = 0, ex = 0, eneg = 0, ne = 0;
    double v;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        return strtod(s, end); /* hexadecimal */
    p = fast_digits(p, &m, &nd, &ni);
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return strtod(s, end);
        p = fast_digits(p + 1, &m, &nd, &nf);
    }
    if (*p == 'e' || *p == 'E') {
        const char *q = p + 1;
        eneg = *q == '-';
        q += *q == '-' || *q == '+';
        for (; *q >= '0' && *q <= '9' && ne < 4; q++, ne++)
            ex = ex * 10 + (*q - '0');
        if (ne == 0 || (*q >= '0' && *q <= '9'))
            return strtod(s, end);
        p = q;
    }
    ex = (eneg ? -ex : ex) - nf;
    if (ni == 0 || nd > FAST_DIGITS || ex < -FAST_POW10 || ex > FAST_POW10)
        return strtod(s, end);
    v = ex < 0 ? (double)m / POW10[-ex] : (double)m * POW10[ex];
    if (end != NULL)
        *end = (char *)p;
    return *s == '-' ? -v : v;
}

void jsonx_number(double v, char *buf, size_t len)
{
    if (!isfinite(v)) {
        snprintf(buf, len, "null");
        return;
    }
    if (v == floor(v) && fabs(v) < EXACT_INT_LIMIT && len >= 24) {
        jsonx_int((long long)v, buf);
        return;
    }
    if (fabs(v) >= 1e-9 && fabs(v) < 1e9) {
        if (fixed_decimal(v, buf, len))
            return;
        /* not a decimal of at most 17 places: 17 significant digits always read back as
         * the same double (a shorter form, if any, is not looked for: most such values -
         * means, sums of prices - need all 17) */
        snprintf(buf, len, "%.17g", v);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Nonzero if any of the 8 bytes of w needs escaping: below 0x20, '"' or '\\' (the
 * "has a byte less than n" and "has a zero byte" word tricks; exact as a yes or no). */
static uint64_t escape_in8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), k = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((k - ones) & ~k)) & highs;
}

static void put1(struct sbuf *b, char c)
{
    char *w = b->len + 2 <= b->cap && !b->oom ? b->p + b->len : sbuf_room(b, 1);
    if (w) {
        w[0] = c;
        w[1] = '\0';
        b->len++;
    }
}

/* The first byte of [p, e) that needs escaping, or e: 8 bytes at a time while none does. */
static const unsigned char *next_escape(const unsigned char *p, const unsigned char *e)
{
    while (p < e) {
        uint64_t w;
        if (e - p >= 8) {
            memcpy(&w, p, sizeof w);
            if (!escape_in8(w)) {
                p += 8;
                continue;
            }
        }
        if (*p < 0x20 || *p == '"' || *p == '\\')
            return p;
        p++;
    }
    return e;
}

/* s as a JSON string literal: quotes, backslashes and control characters escaped, the runs
 * between them copied whole; a string with nothing to escape (most) in one piece. */
static void put_string(struct sbuf *b, const char *s)
{
    const unsigned char *run = (const unsigned char *)(s ? s : "");
    const unsigned char *e = run + strlen((const char *)run);
    const unsigned char *p = next_escape(run, e);
    if (p == e) {
        size_t n = (size_t)(e - run);
        char *o = sbuf_room(b, n + 2);
        if (o) {
            o[0] = '"';
            memcpy(o + 1, run, n);
            o[n + 1] = '"';
            o[n + 2] = '\0';
            b->len += n + 2;
        }
        return;
    }
    put1(b, '"');
    while (p < e) {
        const char *esc;
        char u[8];
        sbuf_add(b, (const char *)run, (size_t)(p - run));
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            snprintf(u, sizeof(u), "\\u%04x", *p);
            esc = u;
        }
        sbuf_add(b, esc, strlen(esc));
        run = p + 1;
        p = next_escape(run, e);
    }
    sbuf_add(b, (const char *)run, (size_t)(e - run));
    put1(b, '"');
}

static void put_item(struct sbuf *b, const cJSON *it);

static void put_container(struct sbuf *b, const cJSON *it, int object)
{
    put1(b, object ? '{' : '[');
    for (const cJSON *c = it->child; c; c = c->next) {
        if (c != it->child)
            put1(b, ',');
        if (object) {
            put_string(b, c->string);
            put1(b, ':');
        }
        put_item(b, c);
    }
    put1(b, object ? '}' : ']');
}

static void put_item(struct sbuf *b, const cJSON *it)
{
    switch (it->type & 0xff) {
    case cJSON_False: sbuf_add(b, "false", 5); break;
    case cJSON_True: sbuf_add(b, "true", 4); break;
    case cJSON_NULL: sbuf_add(b, "null", 4); break;
    case cJSON_Number: jsonx_write_number(b, it->valuedouble); break;
    case cJSON_String: put_string(b, it->valuestring); break;
    case cJSON_Raw:
        if (it->valuestring)
            sbuf_add(b, it->valuestring, strlen(it->valuestring));
        else
            sbuf_add(b, "null", 4);
        break;
    case cJSON_Array: put_container(b, it, 0); break;
    case cJSON_Object: put_container(b, it, 1); break;
    default: sbuf_add(b, "null", 4); break;
    }
}

void jsonx_write(struct sbuf *b, const cJSON *item)
{
    put_item(b, item);
}

void jsonx_write_string(struct sbuf *b, const char *s)
{
    put_string(b, s);
}

void jsonx_write_number(struct sbuf *b, double v)
{
    char num[40];
    jsonx_number(v, num, sizeof(num));
    sbuf_add(b, num, strlen(num));
}

void jsonx_write_member(struct sbuf *b, const char *name, const cJSON *item)
{
    if (!item)
        return;
    put1(b, ',');
    put_string(b, name);
    put1(b, ':');
    put_item(b, item);
}

char *jsonx_print(const cJSON *item)
{
    struct sbuf b = {0};
    if (!item)
        return NULL;
    put_item(&b, item);
    return sbuf_take(&b);
}

void jsonx_add_number(cJSON *obj, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, name, v);
    else
        cJSON_AddNullToObject(obj, name);
}
