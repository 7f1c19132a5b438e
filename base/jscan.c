/* jscan.c - members of JSON text found without a tree (see jscan.h). */
#include "jscan.h"

#include <string.h>

const char *jscan_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the string at p (p[0] == '"'); NULL if unterminated. *escaped: it had a backslash. */
const char *jscan_string(const char *p, const char *e, int *escaped)
{
    for (p++; p < e;) {
        const char *q = memchr(p, '"', (size_t)(e - p)), *b;
        if (q == NULL)
            return NULL;
        b = memchr(p, '\\', (size_t)(q - p));
        if (b == NULL)
            return q + 1;
        *escaped = 1;
        p = b + 2; /* the escaped character, whatever it is */
    }
    return NULL;
}

/* Past the value at p, by brackets and strings (lenient: see jscan.h). */
const char *jscan_skip(const char *p, const char *e)
{
    int depth = 0, esc = 0;
    do {
        p = jscan_ws(p, e);
        if (p >= e)
            return NULL;
        if (*p == '"') {
            p = jscan_string(p, e, &esc);
            if (p == NULL)
                return NULL;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            depth--;
            p++;
        } else {
            while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
                   *p != '\r' && *p != '\t')
                p++;
        }
        if (depth > 0)
            while ((p = jscan_ws(p, e)) < e && (*p == ',' || *p == ':'))
                p++;
    } while (depth > 0 && p < e);
    return depth == 0 ? p : NULL;
}

/* The member whose name starts at p ('"'): its name in [*k, *k + *kl) and a pointer to its
 * value; NULL if malformed or the name has escapes (*odd set: the tree must decide). */
const char *jscan_key(const char *p, const char *e, const char **k, size_t *kl, int *odd)
{
    int esc = 0;
    const char *ke = jscan_string(p, e, &esc);
    if (ke == NULL || esc) {
        *odd |= esc;
        return NULL;
    }
    *k = p + 1;
    *kl = (size_t)(ke - 1 - *k);
    p = jscan_ws(ke, e);
    return p < e && *p == ':' ? jscan_ws(p + 1, e) : NULL;
}

/* Past the value at v and the comma after it: the next member or element (or the end). */
const char *jscan_next(const char *v, const char *e)
{
    const char *p = jscan_skip(v, e);
    if (p == NULL)
        return NULL;
    p = jscan_ws(p, e);
    return p < e && *p == ',' ? jscan_ws(p + 1, e) : p;
}

/* In the object at p ('{'), the value of the first member named key; NULL if none. A
 * member name written with escapes sets *odd (its decoded name is not compared here: the
 * tree must decide). */
const char *jscan_member(const char *p, const char *e, const char *key, int *odd)
{
    size_t kl, want = strlen(key);
    const char *k, *v;
    p = jscan_ws(p, e);
    if (p >= e || *p != '{')
        return NULL;
    p = jscan_ws(p + 1, e);
    while (p != NULL && p < e && *p == '"') {
        if ((v = jscan_key(p, e, &k, &kl, odd)) == NULL)
            return NULL;
        if (kl == want && memcmp(k, key, kl) == 0)
            return v;
        p = jscan_next(v, e);
    }
    return NULL;
}

int jscan_plain_string(const char *p, const char *e, const char **s, size_t *n)
{
    int esc = 0;
    const char *end;
    if (p == NULL || p >= e || *p != '"')
        return -1;
    end = jscan_string(p, e, &esc);
    if (end == NULL || esc)
        return -1;
    *s = p + 1;
    *n = (size_t)(end - 1 - *s);
    return 0;
}
