/* judge.c - the simulated judge: reads the judge prompt, scores the brief, renders JSON. */
#include "judge.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "hash.h"
#include "sbuf.h"
#include "text.h"

#define MAX_WORDS_LIMIT 100000L
#define MAX_SEEN_NUMBERS 256    /* distinct numbers of a brief that are checked */
#define MIN_PASTED_BYTES 20     /* a shorter opening sentence never counts as pasted */

/* The parts of a judge prompt (pointers into the input). */
struct judge_in {
    const char *doc, *brief;
    size_t doc_len, brief_len;
    long max_words;
};

/* ---- reading the prompt ---- */

static size_t line_end(const char *s, size_t n, size_t a)
{
    const char *nl = memchr(s + a, '\n', n - a);

    return nl ? (size_t)(nl - s) : n;
}

static void trim(const char *s, size_t *a, size_t *b)
{
    while (*a < *b && text_is_space(s[*a]))
        (*a)++;
    while (*b > *a && text_is_space(s[*b - 1]))
        (*b)--;
}

/* 1 if the line s[a..b), trimmed on the left, starts with label (case-insensitive); *after
 * is the offset just past the label. */
static int line_starts(const char *s, size_t a, size_t b, const char *label, size_t *after)
{
    size_t n = strlen(label);

    while (a < b && text_is_space(s[a]))
        a++;
    if (b - a < n || strncasecmp(s + a, label, n) != 0)
        return 0;
    *after = a + n;
    return 1;
}

static int is_blank(const char *s, size_t a, size_t b)
{
    trim(s, &a, &b);
    return a == b;
}

/* "Maximum words: N" alone on the line s[a..b): N, else -1. */
static long max_words_line(const char *s, size_t a, size_t b)
{
    size_t i;
    long v = 0;

    if (!line_starts(s, a, b, "Maximum words:", &i))
        return -1;
    trim(s, &i, &b);
    if (i == b)
        return -1;
    for (; i < b; i++) {
        if (!isdigit((unsigned char)s[i]) || v > MAX_WORDS_LIMIT)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > MAX_WORDS_LIMIT ? MAX_WORDS_LIMIT : v;
}

/* After the line ending at e: blank lines, then a "Brief:" line. The brief's start (the
 * text after the label on that line, else the next line), or 0 when there is none. */
static size_t brief_after(const char *s, size_t n, size_t e)
{
    size_t a = e + 1, le, after;

    while (a < n) {
        le = line_end(s, n, a);
        if (!is_blank(s, a, le))
            break;
        a = le + 1;
    }
    if (a >= n || !line_starts(s, a, line_end(s, n, a), "Brief:", &after))
        return 0;
    le = line_end(s, n, a);
    if (!is_blank(s, after, le))
        return after;
    return le < n ? le + 1 : n;
}

/* The "Document:" line, then the last "Maximum words: N" line followed by a "Brief:" line.
 * 0, or -1 when the input does not have that layout. */
static int read_prompt(const char *s, struct judge_in *in)
{
    size_t n = strlen(s), a, e, doc = 0, mw = 0, brief = 0, da, db, ba, bb;
    int found = 0;
    long v, words = 0;

    for (a = 0; a < n && !doc; a = e + 1) {
        e = line_end(s, n, a);
        if (line_starts(s, a, e, "Document:", &da) && is_blank(s, da, e))
            doc = e < n ? e + 1 : n;
    }
    for (a = doc; doc && a < n; a = e + 1) {
        e = line_end(s, n, a);
        v = max_words_line(s, a, e);
        if (v >= 0 && brief_after(s, n, e) > 0) {
            found = 1;
            mw = a;
            words = v;
            brief = brief_after(s, n, e);
        }
    }
    if (!found)
        return -1;
    da = doc;
    db = mw;
    ba = brief;
    bb = n;
    trim(s, &da, &db);
    trim(s, &ba, &bb);
    in->doc = s + da;
    in->doc_len = db - da;
    in->brief = s + ba;
    in->brief_len = bb - ba;
    in->max_words = words;
    return 0;
}

/* ---- faithfulness: numbers of the brief that the document does not have ---- */

/* The next number (digits, with inner '.' or ',' between digits) at or after *i: its
 * length (0: none) and *start; *i moves past it. */
static size_t next_number(const char *s, size_t n, size_t *i, size_t *start)
{
    size_t k = *i;

    while (k < n && !isdigit((unsigned char)s[k]))
        k++;
    *start = k;
    while (k < n) {
        if (isdigit((unsigned char)s[k]))
            k++;
        else if ((s[k] == '.' || s[k] == ',') && k + 1 < n && isdigit((unsigned char)s[k + 1]))
            k++;
        else
            break;
    }
    *i = k;
    return k - *start;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : (x > y);
}

/* The sorted hashes of every number of s[0..n) (caller frees); NULL when none or on OOM. */
static uint64_t *number_set(const char *s, size_t n, size_t *count)
{
    size_t i = 0, st, len, cap = 0;
    uint64_t *v = NULL, *p;

    *count = 0;
    for (;;) {
        len = next_number(s, n, &i, &st);
        if (len == 0)
            break;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            p = realloc(v, cap * sizeof *v);
            if (!p)
                break;
            v = p;
        }
        v[(*count)++] = hash_fnv1a64(HASH_FNV1A64_INIT, s + st, len);
    }
    if (v)
        qsort(v, *count, sizeof *v, cmp_u64);
    return v;
}

static int seen_before(const uint64_t *seen, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (seen[i] == h)
            return 1;
    return 0;
}

/* Distinct numbers of the brief missing from the document; the first few go into list. */
static int invented_numbers(const struct judge_in *in, char *list, size_t listlen)
{
    size_t nd, i = 0, st, len, nseen = 0;
    uint64_t *doc = number_set(in->doc, in->doc_len, &nd), seen[MAX_SEEN_NUMBERS], h;
    int invented = 0;

    list[0] = '\0';
    while (nseen < MAX_SEEN_NUMBERS) {
        len = next_number(in->brief, in->brief_len, &i, &st);
        if (len == 0)
            break;
        h = hash_fnv1a64(HASH_FNV1A64_INIT, in->brief + st, len);
        if (seen_before(seen, nseen, h))
            continue;
        seen[nseen++] = h;
        if (doc && bsearch(&h, doc, nd, sizeof h, cmp_u64))
            continue;
        if (invented < 3)
            snprintf(list + strlen(list), listlen - strlen(list), "%s%.*s",
                     invented ? ", " : "", (int)(len > 24 ? 24 : len), in->brief + st);
        invented++;
    }
    free(doc);
    return invented;
}

/* ---- coherence ---- */

/* Offset past a leading "Brief:" or "Summary:" label (and its spaces), or 0. */
static size_t label_len(const char *b, size_t n)
{
    static const char *const labels[] = {"Brief:", "Summary:"};
    size_t k, i;

    for (i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        k = strlen(labels[i]);
        if (n >= k && strncasecmp(b, labels[i], k) == 0) {
            while (k < n && text_is_space(b[k]))
                k++;
            return k;
        }
    }
    return 0;
}

static int ends_sentence(const char *b, size_t n)
{
    while (n > 0 && text_is_space(b[n - 1]))
        n--;
    while (n > 0 && strchr("\"')]", b[n - 1]))
        n--;
    return n > 0 && strchr(".!?", b[n - 1]) != NULL;
}

static int is_sentence_end(const char *b, size_t n, size_t i)
{
    return strchr(".!?", b[i]) && (i + 1 >= n || text_is_space(b[i + 1]));
}

/* The token s[a..e) ends a sentence: [.!?], then maybe closing quotes or brackets. */
static int token_ends_sentence(const char *s, size_t a, size_t e)
{
    while (e > a && strchr("\"')]", s[e - 1]))
        e--;
    return e > a && strchr(".!?", s[e - 1]) != NULL;
}

/* A whitespace-separated token s[a..e) that is a list bullet: "-", "*", "+", "•", or a
 * 1-2 digit "N." / "N)" at the start or after a sentence end. */
static int is_bullet(const char *s, size_t a, size_t e, int after_end)
{
    size_t n = e - a;

    if (n == 1 && strchr("-*+", s[a]))
        return 1;
    if (n == 3 && memcmp(s + a, "\xe2\x80\xa2", 3) == 0)
        return 1;
    return after_end && n >= 2 && n <= 3 && isdigit((unsigned char)s[a]) &&
           (n == 2 || isdigit((unsigned char)s[a + 1])) && strchr(".)", s[e - 1]);
}

struct shape {
    size_t words, bullets, lower_starts, fragments;
};

/* Words, bullets, sentences opening in lower case, sentences of at most 2 words. */
static void measure(const char *b, size_t n, struct shape *sh)
{
    size_t i = 0, a, in_sentence = 0;
    int after_end = 1;

    memset(sh, 0, sizeof *sh);
    while (i < n) {
        while (i < n && text_is_space(b[i]))
            i++;
        if (i >= n)
            break;
        a = i;
        while (i < n && !text_is_space(b[i]))
            i++;
        if (is_bullet(b, a, i, after_end)) {
            sh->bullets++;
            continue;
        }
        sh->words++;
        if (in_sentence == 0 && b[a] >= 'a' && b[a] <= 'z')
            sh->lower_starts++;
        in_sentence++;
        after_end = token_ends_sentence(b, a, i);
        if (after_end && in_sentence <= 2)
            sh->fragments++;
        if (after_end)
            in_sentence = 0;
    }
}

/* s[0..n) with whitespace runs as single spaces, trimmed (caller frees), NULL on OOM. */
static char *squeeze(const char *s, size_t n, size_t *len)
{
    struct sbuf b = {0};
    int space = 0;
    char *p;

    for (size_t i = 0; i < n; i++) {
        if (text_is_space(s[i])) {
            space = b.len > 0;
            continue;
        }
        if (space)
            sbuf_addc(&b, ' ');
        space = 0;
        sbuf_addc(&b, s[i]);
    }
    *len = b.len;
    p = sbuf_take(&b);
    if (!p)
        *len = 0;
    return p;
}

/* 1 if the brief, as written, opens with a sentence copied verbatim from the document
 * (whitespace aside), as an extractive draft does. (A brief that opens with a label such
 * as "Brief:", as the simulated gpt-oss-20b writes, does not.) */
static int pasted_opening(const char *doc, size_t dn, const char *b, size_t n)
{
    size_t e = 0, len;
    char *first;
    int hit;

    while (e < n && !is_sentence_end(b, n, e))
        e++;
    first = squeeze(b, e < n ? e + 1 : n, &len);
    hit = first && len >= MIN_PASTED_BYTES && memmem(doc, dn, first, len) != NULL;
    free(first);
    return hit;
}

/* Documents in the judge's "plain" share: there an extract reads as well as a rewrite. */
static int plain_document(const char *doc, size_t dn)
{
    uint64_t h = hash_fnv1a64(HASH_FNV1A64_INIT, doc, dn);

    return hash_unit(h ^ 0x6a75646765ull) < JUDGE_PLAIN_SHARE;
}

static void note(char *r, size_t rlen, const char *what)
{
    size_t used = strlen(r);

    snprintf(r + used, rlen - used, "%s%s", used ? "; " : "", what);
}

static int clamp_score(int v)
{
    return v < 1 ? 1 : (v > 5 ? 5 : v);
}

static int coherence(const struct judge_in *in, const struct shape *sh, char *why,
                     size_t whylen)
{
    size_t dn;
    char *doc = squeeze(in->doc, in->doc_len, &dn);
    int c = 5;

    why[0] = '\0';
    if (sh->words < 8) {
        c -= 2;
        note(why, whylen, "too short to stand alone");
    }
    if (!ends_sentence(in->brief, in->brief_len)) {
        c -= 2;
        note(why, whylen, "ends mid-sentence");
    }
    if (sh->bullets > 0) {
        c -= sh->bullets >= 3 ? 2 : 1;
        note(why, whylen, "raw list bullets copied in");
    }
    if (sh->lower_starts > 0 || sh->fragments > 0) {
        c -= 1;
        note(why, whylen, "fragmentary or uncapitalized sentences");
    }
    if (doc && pasted_opening(doc, dn, in->brief, in->brief_len) &&
        !plain_document(doc, dn)) {
        c -= 1;
        note(why, whylen, "reads as sentences pasted from the document");
    }
    free(doc);
    if (!why[0])
        note(why, whylen, "complete, well-formed sentences");
    return clamp_score(c);
}

/* ---- brevity, the whole score ---- */

static int brevity(size_t words, long limit)
{
    double w = (double)words, n = (double)limit;

    if (limit <= 0 || w <= n)
        return 5;
    if (w <= 1.1 * n)
        return 4;
    if (w <= 1.25 * n)
        return 3;
    return w <= 1.5 * n ? 2 : 1;
}

static void unreadable(struct judge_scores *out, const char *why)
{
    out->coherence = out->faithfulness = out->brevity = 1;
    snprintf(out->rationale, sizeof out->rationale, "%s", why);
}

void judge_score(const char *input, struct judge_scores *out)
{
    struct judge_in in;
    struct shape sh;
    char coh[200], nums[96];
    size_t skip;
    int invented;

    if (read_prompt(input, &in) != 0) {
        unreadable(out, "The input has no document and brief to grade.");
        return;
    }
    skip = label_len(in.brief, in.brief_len);
    measure(in.brief + skip, in.brief_len - skip, &sh);
    if (sh.words == 0) {
        unreadable(out, "The brief is empty.");
        return;
    }
    invented = invented_numbers(&in, nums, sizeof nums);
    out->faithfulness = clamp_score(5 - invented);
    out->brevity = brevity(sh.words, in.max_words);
    out->coherence = coherence(&in, &sh, coh, sizeof coh);
    snprintf(out->rationale, sizeof out->rationale,
             "Coherence: %s. Faithfulness: %s%s%s. Brevity: %zu words for a limit of %ld.",
             coh, invented ? "numbers not in the document (" : "every number is in the document",
             nums, invented ? ")" : "", sh.words, in.max_words);
}

/* ---- the answer ---- */

static char *scores_json(const struct judge_scores *sc, int seven)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    cJSON_AddNumberToObject(o, "coherence", seven == 0 ? 7 : sc->coherence);
    cJSON_AddNumberToObject(o, "faithfulness", seven == 1 ? 7 : sc->faithfulness);
    cJSON_AddNumberToObject(o, "brevity", seven == 2 ? 7 : sc->brevity);
    cJSON_AddStringToObject(o, "rationale", sc->rationale);
    s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *judge_render(const struct judge_scores *sc, const struct judge_opts *o, uint64_t seed,
                   size_t *len)
{
    struct sbuf b = {0};
    char *json, *out;

    if (o->garbage) {
        sbuf_adds(&b, "I would rate this brief as fairly good overall: mostly clear and "
                      "faithful to the document, though it could be tighter.");
    } else {
        json = scores_json(sc, o->out_of_range ? (int)(hash_mix64(seed) % 3) : -1);
        if (!json)
            return NULL;
        if (o->wrap == JUDGE_WRAP_PROSE)
            sbuf_adds(&b, "Here is my assessment of the brief against the rubric.\n\n");
        else if (o->wrap == JUDGE_WRAP_FENCE)
            sbuf_adds(&b, "```json\n");
        sbuf_adds(&b, json);
        if (o->wrap == JUDGE_WRAP_PROSE)
            sbuf_adds(&b, "\n\nLet me know if you would like a more detailed review.");
        else if (o->wrap == JUDGE_WRAP_FENCE)
            sbuf_adds(&b, "\n```");
        cJSON_free(json);
    }
    *len = b.len;
    out = sbuf_take(&b);
    if (!out)
        *len = 0;
    return out;
}
