/* jsonv.h - strict JSON validator (RFC 8259): one pass of a small state machine over untrusted
 * bytes, run before cJSON so that cJSON's leniencies never reach a handler.
 *
 * cJSON 1.7 accepts data after the top-level value (it stops at the end of the value), raw
 * control characters inside strings, and numbers such as 012 or 1.; and it decodes \u0000
 * into a C string that then ends there, silently cutting the text. jsonv refuses all of
 * that, plus lone surrogates (\ud800 without its pair) and bytes that are not UTF-8 (no
 * overlongs, no encoded surrogates, nothing above U+10FFFF), and nesting deeper than
 * JSONV_MAX_DEPTH. It builds nothing: a text jsonv accepts is one cJSON parses completely
 * and the same, with every string kept whole.
 *
 * A refusal says what (kind), where (byte offset) and in which value (path): object members
 * as ".name" (no dot at the top), array elements as "[i]", e.g. "metadata.source" or
 * "messages[1].content[0].text". Member names are decoded; a \u0000 in a name is shown as
 * the six characters \u0000, any other character outside printable ASCII as '?'; a path
 * longer than JSONV_PATH_MAX - 1 bytes is cut. A refusal inside a member name has that
 * member's path (in_key is set).
 *
 * Ownership: pure; jsonv_check reads s[0..len) (no NUL needed) and writes only *res. */
#ifndef BRIEFD_JSONV_H
#define BRIEFD_JSONV_H

#include <stddef.h>

#define JSONV_MAX_DEPTH 256 /* arrays and objects nested deeper are refused */
#define JSONV_PATH_MAX  128

enum jsonv_kind {
    JSONV_OK = 0,
    JSONV_EMPTY,     /* nothing but whitespace */
    JSONV_SYNTAX,    /* not JSON: an unexpected byte or end, a bad escape, number or literal */
    JSONV_TRAILING,  /* something other than whitespace after the top-level value */
    JSONV_DEPTH,     /* nested deeper than JSONV_MAX_DEPTH */
    JSONV_CONTROL,   /* a raw control character (U+0000..U+001F) inside a string */
    JSONV_NUL,       /* the escape \u0000 inside a string */
    JSONV_SURROGATE, /* a \uD800..\uDFFF escape that is not half of a surrogate pair */
    JSONV_UTF8       /* bytes inside a string that are not UTF-8 */
};

struct jsonv_result {
    enum jsonv_kind kind;
    size_t offset;              /* where the mistake is (bytes from the start) */
    int in_key;                 /* it is inside a member name */
    char path[JSONV_PATH_MAX];  /* the value it is in; "" at the top level */
    size_t strings;             /* accepted: strings seen, member names included */
    size_t string_bytes;        /* accepted: their total length once decoded */
};

/* 0 if s[0..len) is exactly one JSON value (whitespace around it allowed) with nothing
 * jsonv refuses; else BD_EINVAL with res->kind, offset, in_key and path set. */
int jsonv_check(const char *s, size_t len, struct jsonv_result *res);

/* An object member jsonv_value saw: depth is the object's depth (1 for the members of the
 * value itself when it is an object, 2 for the members of its elements or members, ...),
 * name[0..name_len) the name as written (escaped: it holds a backslash, so its decoded
 * text differs), value the first byte of the member's value, not yet checked. */
struct jsonv_member {
    unsigned depth;
    const char *name;
    size_t name_len;
    int escaped;
    const char *value;
};
typedef void (*jsonv_member_fn)(void *ctx, const struct jsonv_member *m);

/* jsonv_check on the one value at the start of s[0..len) (whitespace before it allowed),
 * whatever follows it: 0 with *used set past the value, or BD_EINVAL as jsonv_check. If
 * on_member is not NULL it is called, in order, for every member of every object in the
 * value - so one strict pass can also pick values out (a member whose value later proves
 * invalid may have been reported: use what it gave only when this returns 0). */
int jsonv_value(const char *s, size_t len, size_t *used, struct jsonv_result *res,
                jsonv_member_fn on_member, void *ctx);

/* The length of the JSON string (s[0] == '"') or number at the start of s[0..len), as
 * jsonv_check would accept it (UTF-8, escapes, no raw control characters, no \u0000, no
 * lone surrogate; RFC 8259's number grammar); 0 when it is not one. For hand-written fast
 * paths over a known shape: what they match is held to the same rules. */
size_t jsonv_string(const char *s, size_t len);
size_t jsonv_number(const char *s, size_t len);

/* What a kind means, as a phrase ("data after the JSON value"). Never NULL. */
const char *jsonv_kind_text(enum jsonv_kind kind);

#endif
