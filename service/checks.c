/* checks.c - words, the word limit and unsupported numbers of a brief (rules in checks.h). */
#include "checks.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bderr.h"

#define NORM_MAX CHECKS_MAX_NUMBER /* a normalized number; longer tokens are cut (checks.h) */

/* One number: its normalized value text and its decimals (-1: compared as written). */
struct num {
    char norm[NORM_MAX];
    int decimals;
};

/* ---- words ---- */

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* 1 if the byte at s[i] counts toward a word: an ASCII letter or digit, or the lead byte
 * of a non-ASCII character outside General Punctuation (E2 80 xx, E2 81 xx). */
static int wordish(const char *s, size_t len, size_t i)
{
    unsigned char c = (unsigned char)s[i];

    if (c < 0x80)
        return isalnum(c) != 0;
    if (c < 0xC0)
        return 0;
    if (c == 0xE2 && i + 1 < len && ((unsigned char)s[i + 1] == 0x80 ||
                                     (unsigned char)s[i + 1] == 0x81))
        return 0;
    return 1;
}

/* The length of a leading "Brief:" or "Summary:" label (any case) and the spaces after it,
 * or 0: a label is not part of the brief's words. */
static size_t label_len(const char *s, size_t len)
{
    static const char *const labels[] = {"brief:", "summary:"};
    size_t i = 0, k;

    while (i < len && is_ws((unsigned char)s[i]))
        i++;
    for (size_t l = 0; l < sizeof(labels) / sizeof(labels[0]); l++) {
        k = strlen(labels[l]);
        if (len - i >= k && strncasecmp(s + i, labels[l], k) == 0)
            return i + k;
    }
    return 0;
}

size_t checks_words(const char *s, size_t len)
{
    size_t n = 0, i = label_len(s, len);

    while (i < len) {
        int counts = 0;
        while (i < len && is_ws((unsigned char)s[i]))
            i++;
        if (i >= len)
            break;
        while (i < len && !is_ws((unsigned char)s[i])) {
            if (!counts) /* (one word byte decides: the rest is only skipped) */
                counts = wordish(s, len, i);
            i++;
        }
        n += (size_t)counts;
    }
    return n;
}

/* ---- numbers ---- */

static int is_digit(const char *s, size_t n, size_t i)
{
    return i < n && s[i] >= '0' && s[i] <= '9';
}

static int is_alpha_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Normalize the token s[a..b) with its number of dots into out. A token too long to keep
 * whole is cut and compared as written (decimals -1). */
static void normalize(const char *s, size_t a, size_t b, int dots, struct num *out)
{
    char digits[NORM_MAX * 2];
    size_t n = 0, dot = (size_t)-1, start = 0, end;

    if (b - a >= NORM_MAX)
        dots = 2;
    if (s[a] == '.') /* ".5" */
        digits[n++] = '0';
    for (size_t i = a; i < b && n + 1 < sizeof(digits); i++) {
        if (s[i] == ',')
            continue;
        if (s[i] == '.')
            dot = n;
        digits[n++] = s[i];
    }
    digits[n] = '\0';
    out->decimals = -1;
    if (dots >= 2) {
        size_t k = n < sizeof(out->norm) - 1 ? n : sizeof(out->norm) - 1; /* cut, as meant */
        memcpy(out->norm, digits, k);
        out->norm[k] = '\0';
        return;
    }
    end = n;
    if (dot != (size_t)-1) {
        while (end > dot + 1 && digits[end - 1] == '0')
            end--;
        if (end == dot + 1)
            end = dot; /* nothing left after the point */
    }
    while (start + 1 < end && digits[start] == '0' && digits[start + 1] != '.')
        start++;
    out->decimals = dot != (size_t)-1 && end > dot ? (int)(end - dot - 1) : 0;
    n = end - start < sizeof(out->norm) - 1 ? end - start : sizeof(out->norm) - 1;
    memcpy(out->norm, digits + start, n);
    out->norm[n] = '\0';
}

/* The next number token at or after *i in s[0..n): 1 with [*a, *b) and out filled, 0 when
 * there is none. *i moves past it. */
static int next_number(const char *s, size_t n, size_t *i, size_t *a, size_t *b, struct num *out)
{
    size_t k = *i;
    int dots = 0;

    for (;;) {
        while (k < n && !is_digit(s, n, k))
            k++;
        if (k >= n) {
            *i = n;
            return 0;
        }
        if (k == 0 || !is_alpha_ascii(s[k - 1]))
            break;
        while (k < n && (is_digit(s, n, k) || is_alpha_ascii(s[k]))) /* a name: "FY24" */
            k++;
    }
    *a = k;
    if (k >= 1 && s[k - 1] == '.' && (k < 2 || !isalnum((unsigned char)s[k - 2]))) {
        *a = k - 1; /* ".5" is 0.5 */
        dots++;
    }
    while (k < n) {
        if (is_digit(s, n, k))
            k++;
        else if (s[k] == ',' && is_digit(s, n, k + 1) && is_digit(s, n, k + 2) &&
                 is_digit(s, n, k + 3) && !is_digit(s, n, k + 4))
            k += 4;
        else if (s[k] == '.' && is_digit(s, n, k + 1))
            k++, dots++;
        else
            break;
    }
    *b = k;
    *i = k;
    normalize(s, *a, *b, dots, out);
    return 1;
}

/* Numbers documents spell out (whole words, any case), sorted by word: spelled_value
 * searches by halves. */
static const struct {
    const char *word;
    const char *norm;
} spelled[] = {
    {"apr", "4"}, {"april", "4"}, {"aug", "8"}, {"august", "8"}, {"dec", "12"},
    {"december", "12"}, {"dozen", "12"}, {"eight", "8"}, {"eighteen", "18"}, {"eighth", "8"},
    {"eighty", "80"}, {"eleven", "11"}, {"eleventh", "11"}, {"feb", "2"}, {"february", "2"},
    {"fifteen", "15"}, {"fifth", "5"}, {"fifty", "50"}, {"first", "1"}, {"five", "5"},
    {"forty", "40"}, {"four", "4"}, {"fourteen", "14"}, {"fourth", "4"}, {"hundred", "100"},
    {"jan", "1"}, {"january", "1"}, {"jul", "7"}, {"july", "7"}, {"jun", "6"}, {"june", "6"},
    {"mar", "3"}, {"march", "3"}, {"may", "5"}, {"nine", "9"}, {"nineteen", "19"},
    {"ninety", "90"}, {"ninth", "9"}, {"nov", "11"}, {"november", "11"}, {"oct", "10"},
    {"october", "10"}, {"one", "1"}, {"second", "2"}, {"sep", "9"}, {"sept", "9"},
    {"september", "9"}, {"seven", "7"}, {"seventeen", "17"}, {"seventh", "7"},
    {"seventy", "70"}, {"six", "6"}, {"sixteen", "16"}, {"sixth", "6"}, {"sixty", "60"},
    {"ten", "10"}, {"tenth", "10"}, {"third", "3"}, {"thirteen", "13"}, {"thirty", "30"},
    {"thousand", "1000"}, {"three", "3"}, {"twelfth", "12"}, {"twelve", "12"}, {"twenty", "20"},
    {"two", "2"}, {"zero", "0"},
};

/* For each letter c (0 = 'a'), the entries of spelled[] that start with it: [first[c],
 * first[c + 1]). Built on first use (pure data; briefd is single-threaded). */
static unsigned char spelled_first[27];
static int spelled_indexed;

static void index_spelled(void)
{
    size_t n = sizeof(spelled) / sizeof(spelled[0]), k = 0;
    for (int c = 0; c <= 26; c++) {
        while (k < n && spelled[k].word[0] - 'a' < c)
            k++;
        spelled_first[c] = (unsigned char)k;
    }
    spelled_indexed = 1;
}

/* The value of the spelled-out number s[a..b) (ASCII letters), or NULL: the entries of its
 * first letter searched by halves (most words start with a letter no entry starts with, or
 * with one of a handful of entries). */
static const char *spelled_value(const char *s, size_t a, size_t b)
{
    char w[10];
    size_t lo, hi, n = b - a;
    int first;
    if (n < 3 || n > 9) /* the shortest entries ("one", "jan"), the longest ("september") */
        return NULL;
    if (!spelled_indexed)
        index_spelled();
    first = (s[a] | 0x20) - 'a'; /* ASCII letters: lower case; the table is */
    lo = spelled_first[first];
    hi = spelled_first[first + 1];
    if (lo == hi)
        return NULL;
    for (size_t i = 1; i < n; i++)
        w[i] = (char)(s[a + i] | 0x20);
    w[n] = '\0';
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(spelled[mid].word + 1, w + 1); /* the first letters are equal */
        if (c == 0)
            return spelled[mid].norm;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The document's numbers, sorted by their normalized text. */
struct numset {
    struct num *v;
    size_t n, cap;
};

static int numset_add(struct numset *set, const struct num *x)
{
    if (set->n >= CHECKS_MAX_NUMBERS)
        return 0;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct num *v = realloc(set->v, cap * sizeof(*v));
        if (!v)
            return BD_ENOMEM;
        set->v = v;
        set->cap = cap;
    }
    set->v[set->n++] = *x;
    return 0;
}

static int cmp_num(const void *x, const void *y)
{
    return strcmp(((const struct num *)x)->norm, ((const struct num *)y)->norm);
}

/* The spelled-out numbers of doc. */
static int add_spelled(struct numset *set, const char *doc, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t a;
        const char *v;
        while (i < len && !is_alpha_ascii(doc[i]))
            i++;
        a = i;
        while (i < len && is_alpha_ascii(doc[i]))
            i++;
        if (i == a || (a > 0 && is_digit(doc, len, a - 1)) || is_digit(doc, len, i))
            continue;
        v = spelled_value(doc, a, i);
        if (v) {
            struct num x;
            snprintf(x.norm, sizeof(x.norm), "%s", v);
            x.decimals = 0;
            if (numset_add(set, &x) != 0)
                return BD_ENOMEM;
        }
    }
    return 0;
}

static int numset_of(struct numset *set, const char *doc, size_t len)
{
    size_t i = 0, a, b;
    struct num x;

    memset(set, 0, sizeof(*set));
    while (next_number(doc, len, &i, &a, &b, &x))
        if (numset_add(set, &x) != 0)
            return BD_ENOMEM;
    if (add_spelled(set, doc, len) != 0)
        return BD_ENOMEM;
    if (set->n)
        qsort(set->v, set->n, sizeof(*set->v), cmp_num);
    return 0;
}

/* x (with more than k decimals) rounded half away from zero to k decimals, normalized. */
static void round_to(const struct num *x, int k, char *out, size_t outlen)
{
    char d[NORM_MAX + 2];
    const char *dot = strchr(x->norm, '.');
    size_t ilen = (size_t)(dot - x->norm), n;
    int up = dot[1 + k] >= '5';
    struct num r;

    n = (size_t)snprintf(d + 1, sizeof(d) - 1, "%.*s%.*s", (int)ilen, x->norm, k, dot + 1);
    d[0] = '0';
    for (size_t i = n + 1; up && i > 0; i--) { /* d[0] takes the last carry */
        up = d[i - 1] == '9';
        d[i - 1] = up ? '0' : (char)(d[i - 1] + 1);
    }
    /* d[0..n] is the rounded value times 10^k, with a leading 0 for the carry */
    {
        char text[NORM_MAX + 4];
        size_t ip = n + 1 - (size_t)k;
        snprintf(text, sizeof(text), "%.*s%s%.*s", (int)ip, d, k ? "." : "", k, d + ip);
        normalize(text, 0, strlen(text), k ? 1 : 0, &r);
    }
    snprintf(out, outlen, "%s", r.norm);
}

#define ROUND_MAX_K 8 /* decimals for which rounded sets are built; beyond, a linear scan */

/* The document's numbers, and for k decimals the set of those with more decimals rounded to
 * k (built when a brief's number with k decimals first needs it). */
struct docnums {
    struct numset exact;
    struct numset rounded[ROUND_MAX_K + 1];
    int built[ROUND_MAX_K + 1];
};

static int build_rounded(struct docnums *d, int k)
{
    struct numset *r = &d->rounded[k];
    struct num x;

    d->built[k] = 1;
    for (size_t i = 0; i < d->exact.n; i++) {
        if (d->exact.v[i].decimals <= k)
            continue;
        round_to(&d->exact.v[i], k, x.norm, sizeof(x.norm));
        x.decimals = k;
        if (numset_add(r, &x) != 0)
            return BD_ENOMEM;
    }
    if (r->n)
        qsort(r->v, r->n, sizeof(*r->v), cmp_num);
    return 0;
}

static int in_set(const struct numset *set, const struct num *x)
{
    return set->n && bsearch(x, set->v, set->n, sizeof(*set->v), cmp_num) != NULL;
}

/* 1 if the document supports the brief's number x (same value, or rounds to it), 0 if
 * not, or BD_ENOMEM. */
static int supported(struct docnums *d, const struct num *x)
{
    char rounded[NORM_MAX];
    int k = x->decimals;

    if (in_set(&d->exact, x))
        return 1;
    if (k < 0)
        return 0;
    if (k <= ROUND_MAX_K) {
        if (!d->built[k] && build_rounded(d, k) != 0)
            return BD_ENOMEM;
        return in_set(&d->rounded[k], x);
    }
    for (size_t i = 0; i < d->exact.n; i++) {
        if (d->exact.v[i].decimals <= k)
            continue;
        round_to(&d->exact.v[i], k, rounded, sizeof(rounded));
        if (strcmp(rounded, x->norm) == 0)
            return 1;
    }
    return 0;
}

static void docnums_free(struct docnums *d)
{
    free(d->exact.v);
    for (int k = 0; k <= ROUND_MAX_K; k++)
        free(d->rounded[k].v);
}

/* Note the brief's number s[a..b) (value x) as unsupported, unless it came before. Returns
 * 1 if it is new. */
static int note_unsupported(struct checks *out, struct numset *seen, const char *s, size_t a,
                            size_t b, const struct num *x)
{
    for (size_t i = 0; i < seen->n; i++)
        if (strcmp(seen->v[i].norm, x->norm) == 0)
            return 0;
    if (numset_add(seen, x) != 0)
        return BD_ENOMEM;
    if (out->n_listed < CHECKS_MAX_LISTED) {
        size_t len = b - a < CHECKS_MAX_NUMBER - 1 ? b - a : CHECKS_MAX_NUMBER - 1;
        memcpy(out->unsupported[out->n_listed], s + a, len);
        out->unsupported[out->n_listed][len] = '\0';
        out->n_listed++;
    }
    out->n_unsupported++;
    return 1;
}

int checks_run(const char *brief, size_t brief_len, const char *doc, size_t doc_len,
               int max_words, struct checks *out)
{
    struct docnums d;
    struct numset seen = {0};
    size_t i = 0, a, b, considered = 0;
    struct num x;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    memset(&d, 0, sizeof(d));
    out->words = checks_words(brief, brief_len);
    out->over_max_words = max_words >= 0 && out->words > (size_t)max_words;
    if (!next_number(brief, brief_len, &i, &a, &b, &x))
        goto out; /* a brief without numbers needs nothing of the document */
    i = 0;
    if (numset_of(&d.exact, doc, doc_len) != 0) {
        rc = BD_ENOMEM;
        goto out;
    }
    while (rc >= 0 && considered < CHECKS_MAX_BRIEF_NUMBERS &&
           next_number(brief, brief_len, &i, &a, &b, &x)) {
        considered++;
        rc = supported(&d, &x);
        if (rc == 0)
            rc = note_unsupported(out, &seen, brief, a, b, &x);
    }
    rc = rc < 0 ? rc : 0;
out:
    docnums_free(&d);
    free(seen.v);
    return rc;
}

int checks_add_json(const struct checks *c, cJSON *obj)
{
    cJSON *arr;

    if (!cJSON_AddNumberToObject(obj, "words", (double)c->words) ||
        !cJSON_AddBoolToObject(obj, "over_max_words", c->over_max_words))
        return BD_ENOMEM;
    arr = cJSON_AddArrayToObject(obj, "unsupported_numbers");
    if (!arr)
        return BD_ENOMEM;
    for (size_t i = 0; i < c->n_listed; i++) {
        cJSON *s = cJSON_CreateString(c->unsupported[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return BD_ENOMEM;
        }
    }
    return 0;
}

int checks_signals(cJSON *obj, const char *brief, const char *doc, int max_words)
{
    struct checks c;
    int rc;

    if (!brief || !doc)
        return BD_EINVAL;
    rc = checks_run(brief, strlen(brief), doc, strlen(doc), max_words, &c);
    return rc != 0 ? rc : checks_add_json(&c, obj);
}
