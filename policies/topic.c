/* topic.c - the "topic" policy: refine when the request is flagged or a keyword shows up. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define TOPIC_MAX_ENTRIES 64
#define TOPIC_MAX_BYTES 64
#define TOPIC_SUFFIX_ROOM 16 /* kept free in the detail for ", +N more" */

struct topic_list {
    size_t n;
    char s[TOPIC_MAX_ENTRIES][TOPIC_MAX_BYTES + 1]; /* as configured, duplicates dropped */
};

struct topic_state {
    struct topic_list flags;
    struct topic_list keywords;
};

static const char *const topic_keys[] = {"type", "weight", "flags", "keywords", NULL};
static const char *const topic_default_flags[] = {"legal", "security", "exec", NULL};
/* The documented example keywords (docs/CONFIG.md) are the defaults too. */
static const char *const topic_default_keywords[] = {"lawsuit", "breach", NULL};

/* ---- ASCII helpers (locale-independent on purpose: decisions must not depend on it) ---- */

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int ascii_caseeq(const char *a, const char *b)
{
    while (*a && ascii_lower((unsigned char)*a) == ascii_lower((unsigned char)*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

/* ---- word boundaries ---- */

/* Decode the code point starting at s[i] (i < len). Returns its byte length; an invalid or
 * cut-off sequence decodes as its first byte alone. */
static size_t utf8_decode(const unsigned char *s, size_t len, size_t i, uint32_t *cp)
{
    unsigned char b = s[i];
    size_t n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    uint32_t v = n == 4 ? (b & 0x07u) : n == 3 ? (b & 0x0Fu) : n == 2 ? (b & 0x1Fu) : b;

    if (n == 1 || b >= 0xF8 || i + n > len) {
        *cp = b;
        return 1;
    }
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *cp = b;
            return 1;
        }
        v = (v << 6) | (s[i + k] & 0x3Fu);
    }
    *cp = v;
    return n;
}

/* The code point that ends just before s[i] (i > 0). */
static uint32_t utf8_before(const unsigned char *s, size_t i)
{
    size_t start = i - 1;
    uint32_t cp;

    while (start > 0 && i - start < 4 && (s[start] & 0xC0) == 0x80)
        start--;
    if (utf8_decode(s, i, start, &cp) != i - start)
        return s[i - 1];
    return cp;
}

/* Word characters: ASCII letters, digits and '_', and letters of other scripts. Non-ASCII
 * punctuation that commonly surrounds words in documents (NBSP, Latin-1 signs, « », dashes,
 * curly quotes, ellipsis, CJK punctuation, BOM) is not part of a word. */
static int word_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               (cp >= '0' && cp <= '9') || cp == '_';
    if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7)
        return 0;
    if ((cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x303F) || cp == 0xFEFF)
        return 0;
    return 1;
}

/* ---- keyword search ---- */

/* If kw matches s at i, the offset just past the match, else 0. ASCII letters match either
 * case; a whitespace run in kw matches any non-empty whitespace run in s. */
static size_t match_at(const unsigned char *s, size_t len, size_t i, const unsigned char *kw)
{
    size_t j = i;

    while (*kw) {
        if (ascii_space(*kw)) {
            if (j >= len || !ascii_space(s[j]))
                return 0;
            while (j < len && ascii_space(s[j]))
                j++;
            while (ascii_space(*kw))
                kw++;
            continue;
        }
        if (j >= len || ascii_lower(s[j]) != ascii_lower(*kw))
            return 0;
        j++;
        kw++;
    }
    return j;
}

/* A match s[i..end) is a whole word (or words): the keyword's edges that are word
 * characters must not touch a word character of s. */
static int on_boundaries(const unsigned char *s, size_t len, size_t i, size_t end,
                         const unsigned char *kw, size_t kwlen)
{
    uint32_t cp;

    utf8_decode(kw, kwlen, 0, &cp);
    if (word_cp(cp) && i > 0 && word_cp(utf8_before(s, i)))
        return 0;
    cp = utf8_before(kw, kwlen);
    if (word_cp(cp) && end < len) {
        utf8_decode(s, len, end, &cp);
        if (word_cp(cp))
            return 0;
    }
    return 1;
}

static int keyword_in(const char *text, size_t len, const char *keyword)
{
    const unsigned char *s = (const unsigned char *)text;
    const unsigned char *kw = (const unsigned char *)keyword;
    size_t kwlen = strlen(keyword);

    for (size_t i = 0; text && i < len; i++) {
        size_t end;
        if (ascii_lower(s[i]) != ascii_lower(kw[0]))
            continue;
        end = match_at(s, len, i, kw);
        if (end && on_boundaries(s, len, i, end, kw, kwlen))
            return 1;
    }
    return 0;
}

/* ---- parse ---- */

static int list_has(const struct topic_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (ascii_caseeq(l->s[i], s))
            return 1;
    }
    return 0;
}

static void list_add(struct topic_list *l, const char *s)
{
    if (l->n < TOPIC_MAX_ENTRIES && !list_has(l, s))
        snprintf(l->s[l->n++], sizeof l->s[0], "%s", s);
}

static int check_entry(const cJSON *it, const char *path, int keyword, struct cfg_err *err)
{
    size_t len;

    if (!cJSON_IsString(it))
        return cfg_fail(err, path, "expected string");
    len = strlen(it->valuestring);
    if (len < 1 || len > TOPIC_MAX_BYTES)
        return cfg_fail(err, path, "must be 1..%d bytes", TOPIC_MAX_BYTES);
    if (keyword && (ascii_space((unsigned char)it->valuestring[0]) ||
                    ascii_space((unsigned char)it->valuestring[len - 1])))
        return cfg_fail(err, path, "must not begin or end with whitespace");
    return 0;
}

/* Read conf.key (array of strings) into l, replacing its contents; absent leaves l as is. */
static int parse_list(const cJSON *conf, const char *path, const char *key, int keyword,
                      struct topic_list *l, struct cfg_err *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(conf, key);
    char epath[sizeof err->path];
    int i = 0;

    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr))
        return cfg_fail_key(err, path, key, "expected array of strings");
    if (cJSON_GetArraySize(arr) > TOPIC_MAX_ENTRIES)
        return cfg_fail_key(err, path, key, "at most %d entries", TOPIC_MAX_ENTRIES);
    l->n = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        if (snprintf(epath, sizeof epath, "%s.%s[%d]", path, key, i) < 0)
            epath[0] = '\0';
        if (check_entry(it, epath, keyword, err) < 0)
            return -1;
        list_add(l, it->valuestring);
    }
    return 0;
}

static int topic_parse(const cJSON *conf, const char *path, void **state, struct cfg_err *err)
{
    struct topic_state *st;

    if (cfg_check_keys(conf, path, topic_keys, err) < 0)
        return -1;
    st = calloc(1, sizeof *st);
    if (!st)
        return cfg_fail(err, path, "out of memory");
    for (size_t i = 0; topic_default_flags[i]; i++)
        list_add(&st->flags, topic_default_flags[i]);
    for (size_t i = 0; topic_default_keywords[i]; i++)
        list_add(&st->keywords, topic_default_keywords[i]);
    if (parse_list(conf, path, "flags", 0, &st->flags, err) < 0)
        goto fail;
    if (parse_list(conf, path, "keywords", 1, &st->keywords, err) < 0)
        goto fail;
    *state = st;
    return 0;
fail:
    free(st);
    return -1;
}

/* ---- decide ---- */

/* The detail: hits joined by ", "; from the first one that does not fit on, the rest are
 * counted as ", +N more" (so what is listed is always a prefix of the hits). */
struct detail_buf {
    char *buf;
    size_t size, used;
    int omitted;
};

static void detail_add(struct detail_buf *d, const char *item)
{
    size_t sep = d->used ? 2 : 0;
    size_t len = strlen(item);

    if (d->omitted || d->used + sep + len + TOPIC_SUFFIX_ROOM >= d->size) {
        d->omitted++;
        return;
    }
    snprintf(d->buf + d->used, d->size - d->used, "%s%s", sep ? ", " : "", item);
    d->used += sep + len;
}

static int flag_requested(const struct route_input *in, const char *flag)
{
    for (size_t i = 0; in->topic_flags && i < in->n_topic_flags; i++) {
        if (in->topic_flags[i] && ascii_caseeq(in->topic_flags[i], flag))
            return 1;
    }
    return 0;
}

static int keyword_hit(const struct route_input *in, const char *kw, struct detail_buf *d)
{
    int in_text = keyword_in(in->text, in->text_len, kw);
    int in_draft = keyword_in(in->draft, in->draft_len, kw);
    const char *where = in_text && in_draft ? "text and draft" : in_text ? "text" : "draft";
    char item[VERDICT_DETAIL_MAX];

    if (!in_text && !in_draft)
        return 0;
    snprintf(item, sizeof item, "keyword '%s' in %s", kw, where);
    detail_add(d, item);
    return 1;
}

static void topic_decide(const void *state, const struct route_input *in, struct verdict *out)
{
    const struct topic_state *st = state;
    struct detail_buf d = {out->detail, sizeof out->detail, 0, 0};
    char item[VERDICT_DETAIL_MAX];
    int hits = 0;

    out->detail[0] = '\0';
    for (size_t i = 0; i < st->flags.n; i++) {
        if (!flag_requested(in, st->flags.s[i]))
            continue;
        snprintf(item, sizeof item, "flag '%s'", st->flags.s[i]);
        detail_add(&d, item);
        hits++;
    }
    for (size_t i = 0; i < st->keywords.n; i++)
        hits += keyword_hit(in, st->keywords.s[i], &d);
    if (d.omitted)
        snprintf(d.buf + d.used, d.size - d.used, ", +%d more", d.omitted);
    if (!hits)
        snprintf(out->detail, sizeof out->detail, "no flagged topic");
    /* As in docs/API.md: a topic keep carries no score, a refine its number of hits. */
    out->kind = hits ? VERDICT_REFINE : VERDICT_KEEP;
    out->has_score = 1; /* the number of hits, 0 when nothing is flagged */
    out->score = hits;
}

/* Flags and keywords look at the request and the document only: the same verdict before
 * the draft exists. */
static int topic_decide_input(const void *state, const struct route_input *in,
                              struct verdict *out)
{
    topic_decide(state, in, out);
    return 1;
}

/* ---- describe, free ---- */

static void add_list(cJSON *obj, const char *key, const struct topic_list *l)
{
    cJSON *arr = cJSON_AddArrayToObject(obj, key);

    for (size_t i = 0; arr && i < l->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(l->s[i]));
}

static void topic_describe(const void *state, cJSON *obj)
{
    const struct topic_state *st = state;

    add_list(obj, "flags", &st->flags);
    add_list(obj, "keywords", &st->keywords);
}

static void topic_free(void *state)
{
    free(state);
}

const struct policy_ops policy_topic_ops = {
    .name = "topic",
    .parse = topic_parse,
    .decide = topic_decide,
    .decide_input = topic_decide_input,
    .describe = topic_describe,
    .free = topic_free,
};
