/* trace.c - W3C traceparent / tracestate: validation and child spans. */
#include "trace.h"

#include <stdio.h>
#include <string.h>

#define KEY_MAX   256
#define VALUE_MAX 256

static int lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return 0;
    return 1;
}

int trace_request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++)
        if (n >= 64 || s[n] < 0x21 || s[n] > 0x7e)
            return 0;
    return n > 0;
}

/* VV-<32>-<16>-FF: offsets 0, 3, 36, 53 */
int trace_parent_ok(const char *s, char *out)
{
    size_t n = s ? strnlen(s, TRACE_PARENT_LEN + 2) : 0;
    if (n < TRACE_PARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return 0;
    if (!lower_hex(s, 2) || !lower_hex(s + 3, 32) || !lower_hex(s + 36, 16) ||
        !lower_hex(s + 53, 2))
        return 0;
    if (strncmp(s, "ff", 2) == 0 || all_zero(s + 3, 32) || all_zero(s + 36, 16))
        return 0;
    if (strncmp(s, "00", 2) == 0 ? n != TRACE_PARENT_LEN
                                 : (n > TRACE_PARENT_LEN && s[TRACE_PARENT_LEN] != '-'))
        return 0;
    if (out)
        snprintf(out, TRACE_PARENT_LEN + 1, "00%.53s", s + 2);
    return 1;
}

static int key_char(char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return !first && (c == '_' || c == '-' || c == '*' || c == '/' || c == '@');
}

/* One list member, [s, s + n): empty (spaces and tabs), or key=value. */
static int member_ok(const char *s, size_t n)
{
    const char *eq;
    size_t klen, vlen;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0)
        return 1;
    eq = memchr(s, '=', n);
    if (!eq)
        return 0;
    klen = (size_t)(eq - s);
    vlen = n - klen - 1;
    if (klen == 0 || klen > KEY_MAX || vlen == 0 || vlen > VALUE_MAX)
        return 0;
    for (size_t i = 0; i < klen; i++)
        if (!key_char(s[i], i == 0))
            return 0;
    for (size_t i = 0; i < vlen; i++)
        if (eq[1 + i] < 0x20 || eq[1 + i] > 0x7e || eq[1 + i] == ',' || eq[1 + i] == '=')
            return 0;
    return 1;
}

int trace_state_ok(const char *s)
{
    size_t n = s ? strnlen(s, TRACE_STATE_MAX + 1) : 0;
    int members = 0;
    if (n == 0 || n > TRACE_STATE_MAX)
        return 0;
    for (const char *p = s;; members++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (members >= TRACE_STATE_MEMBERS || !member_ok(p, len))
            return 0;
        if (!comma)
            return 1;
        p = comma + 1;
    }
}

void trace_child(const char *parent, uint64_t span, char *out)
{
    snprintf(out, TRACE_PARENT_LEN + 1, "00-%.32s-%016llx-%.2s", parent + 3,
             (unsigned long long)(span ? span : 1), parent + 53);
}
