/* jsonv.c - strict JSON validator: a state machine over the bytes, a stack of containers. */
#include "jsonv.h"

#include <stdio.h>
#include <string.h>

#include "bderr.h"

/* What the machine expects next. */
enum state {
    ST_VALUE, /* a value: at the top, after '[', ':' or an array's ',' */
    ST_KEY,   /* a member name: after '{' or an object's ',' */
    ST_AFTER  /* a value just ended: ',' or the closing bracket (or the end, at the top) */
};

/* One open array or object. */
struct frame {
    size_t key_off;         /* object: offset of the current member name's opening quote */
    size_t index;           /* array: the element being read */
    unsigned char obj;      /* 1 object, 0 array */
    unsigned char has_key;  /* object: key_off names a member */
};

struct jv {
    const unsigned char *s;
    size_t len, pos;
    unsigned depth;
    int escaped;              /* the last string scanned had an escape */
    struct jsonv_result *res;
    jsonv_member_fn on_member; /* NULL: none */
    void *ctx;
    struct frame st[JSONV_MAX_DEPTH];
};

/* 1 for the bytes a string holds as they are: printable ASCII but '"' and '\\' (the run
 * that needs no further look; control characters, escapes and UTF-8 lead bytes do). */
static const unsigned char PLAIN[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
};

/* ------------------------------------------------------------ the path --- */

static void put(char *out, size_t *n, char c)
{
    if (*n + 1 < JSONV_PATH_MAX) {
        out[*n] = c;
        (*n)++;
        out[*n] = '\0';
    }
}

static void puts_n(char *out, size_t *n, const char *s)
{
    for (; *s; s++)
        put(out, n, *s);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The four hex digits at s[i..i+4) as a code unit, or -1. */
static long hex4(const struct jv *v, size_t i)
{
    long cp = 0;

    if (i > v->len || v->len - i < 4)
        return -1;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(v->s[i + k]);
        if (h < 0)
            return -1;
        cp = cp << 4 | h;
    }
    return cp;
}

/* One escape of a member name (s[i] is the backslash) into the path; the index after it. */
static size_t key_escape(const struct jv *v, size_t i, char *out, size_t *n)
{
    unsigned char c;
    long cp;

    if (i + 1 >= v->len)
        return v->len;
    c = v->s[i + 1];
    if (c != 'u') {
        put(out, n, c == '"' || c == '\\' || c == '/' ? (char)c : '?');
        return i + 2;
    }
    cp = hex4(v, i + 2);
    if (cp == 0)
        puts_n(out, n, "\\u0000");
    else
        put(out, n, cp >= 0x20 && cp < 0x7f ? (char)cp : '?');
    if (cp < 0)
        return i + 2;
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 7 < v->len && v->s[i + 6] == '\\' &&
        v->s[i + 7] == 'u' && hex4(v, i + 8) >= 0xDC00 && hex4(v, i + 8) <= 0xDFFF)
        return i + 12; /* a pair: one '?' */
    return i + 6;
}

/* The member name whose opening quote is at s[i], decoded into the path. */
static void put_key(const struct jv *v, size_t i, char *out, size_t *n)
{
    i++;
    while (i < v->len && v->s[i] != '"') {
        unsigned char c = v->s[i];
        if (c == '\\') {
            i = key_escape(v, i, out, n);
            continue;
        }
        put(out, n, c >= 0x20 && c < 0x7f ? (char)c : '?');
        i++;
        while (c >= 0x80 && i < v->len && (v->s[i] & 0xC0) == 0x80)
            i++; /* one '?' per character */
    }
}

static void path_render(const struct jv *v, char *out)
{
    size_t n = 0;

    out[0] = '\0';
    for (unsigned d = 0; d < v->depth; d++) {
        const struct frame *f = &v->st[d];
        if (!f->obj) {
            char idx[32];
            snprintf(idx, sizeof idx, "[%zu]", f->index);
            puts_n(out, &n, idx);
        } else if (f->has_key) {
            if (n > 0)
                put(out, &n, '.');
            put_key(v, f->key_off, out, &n);
        }
    }
}

static int fail(struct jv *v, enum jsonv_kind kind, size_t off, int in_key)
{
    v->res->kind = kind;
    v->res->offset = off < v->len ? off : v->len;
    v->res->in_key = in_key;
    path_render(v, v->res->path);
    return -1;
}

/* fail() for the functions that return a length: 0. */
static size_t fail_len(struct jv *v, enum jsonv_kind kind, size_t off, int in_key)
{
    fail(v, kind, off, in_key);
    return 0;
}

/* --------------------------------------------------------------- tokens --- */

static void skip_ws(struct jv *v)
{
    if (v->pos < v->len && v->s[v->pos] > ' ')
        return; /* the usual case: no whitespace */
    while (v->pos < v->len) {
        unsigned char c = v->s[v->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        v->pos++;
    }
}

static int is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* Length of the UTF-8 sequence at p[0..n) (lead byte >= 0x80), or 0 if it is not one:
 * overlongs, encoded surrogates and code points above U+10FFFF are refused. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];

    if (c < 0xC2 || c > 0xF4)
        return 0;
    if (c < 0xE0)
        return n >= 2 && is_cont(p[1]) ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || !is_cont(p[1]) || !is_cont(p[2]))
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (n < 4 || !is_cont(p[1]) || !is_cont(p[2]) || !is_cont(p[3]))
        return 0;
    if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
        return 0;
    return 4;
}

/* A \u escape at s[i]: its length (6, or 12 for a surrogate pair), 0 after failing. */
static size_t u_escape(struct jv *v, size_t i, int in_key, size_t *bytes)
{
    long cp = hex4(v, i + 2), lo;

    if (cp < 0)
        return fail_len(v, JSONV_SYNTAX, i, in_key);
    if (cp == 0)
        return fail_len(v, JSONV_NUL, i, in_key);
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail_len(v, JSONV_SURROGATE, i, in_key);
    if (cp < 0xD800 || cp > 0xDBFF) {
        *bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
        return 6;
    }
    lo = i + 7 < v->len && v->s[i + 6] == '\\' && v->s[i + 7] == 'u' ? hex4(v, i + 8) : -1;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return fail_len(v, JSONV_SURROGATE, i, in_key);
    *bytes += 4;
    return 12;
}

/* An escape at s[i] (the backslash): its length, 0 after failing. */
static size_t escape(struct jv *v, size_t i, int in_key, size_t *bytes)
{
    if (i + 1 >= v->len)
        return fail_len(v, JSONV_SYNTAX, v->len, in_key);
    if (v->s[i + 1] == 'u')
        return u_escape(v, i, in_key, bytes);
    if (!strchr("\"\\/bfnrt", v->s[i + 1]) || v->s[i + 1] == '\0')
        return fail_len(v, JSONV_SYNTAX, i, in_key);
    (*bytes)++;
    return 2;
}

/* The string whose opening quote is at pos. */
static int scan_string(struct jv *v, int in_key)
{
    const unsigned char *s = v->s;
    size_t i = v->pos + 1, len = v->len, bytes = 0, n;

    v->escaped = 0;
    while (i < len) {
        size_t j = i;
        unsigned char c;
        while (j < len && PLAIN[s[j]]) /* the run of plain ASCII */
            j++;
        bytes += j - i;
        i = j;
        if (i >= len)
            break;
        c = s[i];
        if (c == '"') {
            v->pos = i + 1;
            v->res->strings++;
            v->res->string_bytes += bytes;
            return 0;
        }
        if (c < 0x20)
            return fail(v, JSONV_CONTROL, i, in_key);
        if (c == '\\') {
            v->escaped = 1;
            n = escape(v, i, in_key, &bytes);
            if (n == 0)
                return -1;
        } else { /* a UTF-8 lead byte (or not UTF-8) */
            n = utf8_len(s + i, len - i);
            if (n == 0)
                return fail(v, JSONV_UTF8, i, in_key);
            bytes += n;
        }
        i += n;
    }
    return fail(v, JSONV_SYNTAX, len, in_key); /* unterminated */
}

static size_t digits_end(const unsigned char *s, size_t len, size_t i)
{
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* The end of the number -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at s[i], or 0 with
 * *bad where it stops being one. No state: jsonv_number calls it without the machine. */
static size_t number_end(const unsigned char *s, size_t len, size_t i, size_t *bad)
{
    size_t e;

    if (i < len && s[i] == '-')
        i++;
    if (i < len && s[i] == '0')
        i++;
    else if (i < len && s[i] >= '1' && s[i] <= '9')
        i = digits_end(s, len, i);
    else {
        *bad = i;
        return 0;
    }
    if (i < len && s[i] == '.') {
        e = digits_end(s, len, i + 1);
        if (e == i + 1) {
            *bad = e;
            return 0;
        }
        i = e;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        e = digits_end(s, len, i);
        if (e == i) {
            *bad = e;
            return 0;
        }
        i = e;
    }
    return i;
}

static int scan_number(struct jv *v)
{
    size_t bad = 0, end = number_end(v->s, v->len, v->pos, &bad);

    if (end == 0)
        return fail(v, JSONV_SYNTAX, bad, 0);
    v->pos = end;
    return 0;
}

static int scan_literal(struct jv *v)
{
    static const char *const lits[] = {"true", "false", "null"};

    for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
        size_t n = strlen(lits[k]);
        if (v->len - v->pos >= n && memcmp(v->s + v->pos, lits[k], n) == 0) {
            v->pos += n;
            return 0;
        }
    }
    return fail(v, JSONV_SYNTAX, v->pos, 0);
}

/* ------------------------------------------------------------ the machine --- */

static int open_container(struct jv *v, int obj, enum state *next)
{
    struct frame *f;

    if (v->depth >= JSONV_MAX_DEPTH)
        return fail(v, JSONV_DEPTH, v->pos, 0);
    f = &v->st[v->depth++];
    memset(f, 0, sizeof *f);
    f->obj = (unsigned char)obj;
    v->pos++;
    skip_ws(v);
    if (v->pos < v->len && v->s[v->pos] == (obj ? '}' : ']')) {
        v->depth--;
        v->pos++;
        *next = ST_AFTER;
        return 0;
    }
    *next = obj ? ST_KEY : ST_VALUE;
    return 0;
}

static int on_value(struct jv *v, enum state *next)
{
    unsigned char c;

    if (v->pos >= v->len)
        return fail(v, JSONV_SYNTAX, v->len, 0);
    c = v->s[v->pos];
    *next = ST_AFTER;
    if (c == '{' || c == '[')
        return open_container(v, c == '{', next);
    if (c == '"')
        return scan_string(v, 0);
    if (c == '-' || (c >= '0' && c <= '9'))
        return scan_number(v);
    if (c == 't' || c == 'f' || c == 'n')
        return scan_literal(v);
    return fail(v, JSONV_SYNTAX, v->pos, 0);
}

static int on_key(struct jv *v, enum state *next)
{
    struct frame *f = &v->st[v->depth - 1];
    size_t name_end;

    if (v->pos >= v->len || v->s[v->pos] != '"')
        return fail(v, JSONV_SYNTAX, v->pos, 0);
    f->key_off = v->pos;
    f->has_key = 1;
    if (scan_string(v, 1) != 0)
        return -1;
    name_end = v->pos - 1;
    skip_ws(v);
    if (v->pos >= v->len || v->s[v->pos] != ':')
        return fail(v, JSONV_SYNTAX, v->pos, 0);
    v->pos++;
    skip_ws(v);
    *next = ST_VALUE;
    if (v->on_member != NULL && v->pos < v->len) {
        struct jsonv_member m;
        m.depth = v->depth;
        m.name = (const char *)v->s + f->key_off + 1;
        m.name_len = name_end - f->key_off - 1;
        m.escaped = v->escaped;
        m.value = (const char *)v->s + v->pos;
        v->on_member(v->ctx, &m);
    }
    return 0;
}

static int on_after(struct jv *v, enum state *next)
{
    struct frame *f = &v->st[v->depth - 1];
    unsigned char c;

    if (v->pos >= v->len)
        return fail(v, JSONV_SYNTAX, v->len, 0);
    c = v->s[v->pos];
    if (c == ',') {
        v->pos++;
        f->has_key = 0;
        f->index += !f->obj;
        *next = f->obj ? ST_KEY : ST_VALUE;
        return 0;
    }
    if (c != (f->obj ? '}' : ']'))
        return fail(v, JSONV_SYNTAX, v->pos, 0);
    v->depth--;
    v->pos++;
    *next = ST_AFTER;
    return 0;
}

/* One value from the start of s; prefix: whatever follows it is not looked at (*used says
 * where it ended), else only whitespace may. */
static int run(const char *s, size_t len, int prefix, size_t *used, struct jsonv_result *res,
               jsonv_member_fn on_member, void *ctx)
{
    struct jv v;
    enum state st = ST_VALUE;
    int rc = 0;

    memset(res, 0, sizeof *res);
    v.s = (const unsigned char *)s;
    v.len = s ? len : 0;
    v.pos = 0;
    v.depth = 0;
    v.escaped = 0;
    v.res = res;
    v.on_member = on_member;
    v.ctx = ctx;
    skip_ws(&v);
    if (v.pos == v.len) {
        fail(&v, JSONV_EMPTY, 0, 0);
        return BD_EINVAL;
    }
    for (;;) {
        if (st == ST_AFTER && v.depth == 0)
            break;
        skip_ws(&v);
        if (st == ST_VALUE)
            rc = on_value(&v, &st);
        else if (st == ST_KEY)
            rc = on_key(&v, &st);
        else
            rc = on_after(&v, &st);
        if (rc != 0)
            return BD_EINVAL;
    }
    if (prefix) {
        *used = v.pos;
        return 0;
    }
    skip_ws(&v);
    if (v.pos != v.len) {
        fail(&v, JSONV_TRAILING, v.pos, 0);
        return BD_EINVAL;
    }
    return 0;
}

int jsonv_check(const char *s, size_t len, struct jsonv_result *res)
{
    return run(s, len, 0, NULL, res, NULL, NULL);
}

int jsonv_value(const char *s, size_t len, size_t *used, struct jsonv_result *res,
                jsonv_member_fn on_member, void *ctx)
{
    *used = 0;
    return run(s, len, 1, used, res, on_member, ctx);
}

/* A machine for one token: no frames in use, results kept locally. */
static void token_machine(struct jv *v, struct jsonv_result *r, const char *s, size_t len)
{
    r->strings = r->string_bytes = 0;
    v->s = (const unsigned char *)s;
    v->len = len;
    v->pos = 0;
    v->depth = 0;
    v->escaped = 0;
    v->res = r;
    v->on_member = NULL;
    v->ctx = NULL;
}

size_t jsonv_string(const char *s, size_t len)
{
    struct jv v;
    struct jsonv_result r;
    size_t i;

    if (s == NULL || len == 0 || s[0] != '"')
        return 0;
    /* a run of PLAIN bytes closed by '"' is valid as it stands: most strings of the fast
     * paths (a token's text) end here; anything else goes to the machine */
    for (i = 1; i < len && PLAIN[(unsigned char)s[i]]; i++)
        ;
    if (i < len && s[i] == '"')
        return i + 1;
    token_machine(&v, &r, s, len);
    return scan_string(&v, 0) == 0 ? v.pos : 0;
}

size_t jsonv_number(const char *s, size_t len)
{
    size_t bad;

    if (s == NULL || len == 0)
        return 0;
    return number_end((const unsigned char *)s, len, 0, &bad);
}

const char *jsonv_kind_text(enum jsonv_kind kind)
{
    switch (kind) {
    case JSONV_OK: return "valid JSON";
    case JSONV_EMPTY: return "no JSON value";
    case JSONV_SYNTAX: return "not valid JSON";
    case JSONV_TRAILING: return "data after the JSON value";
    case JSONV_DEPTH: return "arrays or objects nested too deeply";
    case JSONV_CONTROL: return "a raw control character in a string (escape it as \\u00XX)";
    case JSONV_NUL: return "the NUL character (\\u0000) in a string";
    case JSONV_SURROGATE: return "a lone UTF-16 surrogate (\\uD800-\\uDFFF) in a string";
    case JSONV_UTF8: return "bytes that are not UTF-8 in a string";
    }
    return "not valid JSON";
}
