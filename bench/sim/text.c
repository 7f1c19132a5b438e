/* text.c - the simulated models' writing: document, word target, extractive summary,
 * tokens, logprobs. */
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bderr.h"
#include "hash.h"
#include "sbuf.h"

/* ---- hashing ---- */

uint64_t text_hash_folded(const char *s, size_t n)
{
    uint64_t h = HASH_FNV1A64_INIT;
    char low[64];
    size_t k;

    while (n > 0) {
        k = n < sizeof low ? n : sizeof low;
        for (size_t i = 0; i < k; i++)
            low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
        h = hash_fnv1a64(h, low, k);
        s += k;
        n -= k;
    }
    return h;
}

/* ---- words, sentences ---- */

int text_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_word_byte(char c)
{
    unsigned char u = (unsigned char)c;
    return isalnum(u) || u >= 0x80;
}

size_t text_count_words(const char *s, size_t n)
{
    size_t words = 0;
    int in = 0;

    for (size_t i = 0; i < n; i++) {
        if (text_is_space(s[i])) {
            in = 0;
        } else if (!in) {
            in = 1;
            words++;
        }
    }
    return words;
}

/* Next run of word bytes in s[*i .. end): 1 with its start and length, or 0. */
static int next_word(const char *s, size_t end, size_t *i, size_t *ws, size_t *wn)
{
    size_t k = *i;

    while (k < end && !is_word_byte(s[k]))
        k++;
    *ws = k;
    while (k < end && is_word_byte(s[k]))
        k++;
    *wn = k - *ws;
    *i = k;
    return *wn > 0;
}

/* Stopwords by length (3 to 6 bytes), lower case; looked up with the word's length first. */
static int is_stopword(const char *w, size_t n)
{
    static const char *const by_len[7] = {
        [3] = "the and for are but not you all any can had her was one our out has its may "
              "who his she him how ",
        [4] = "have this that with from they will what when were been into than then them also "
              "such more some each ",
        [5] = "would there their about which these those other could ",
        [6] = "should ",
    };
    char low[6];
    const char *p;

    if (n < 3 || n > 6)
        return 0;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)w[i]);
    for (p = by_len[n]; *p; p += n + 1)
        if (p[0] == low[0] && memcmp(p, low, n) == 0)
            return 1;
    return 0;
}

/* At least 3 bytes, not a stopword, not a bare number. */
static int is_content_word(const char *w, size_t n)
{
    size_t i = 0;

    while (i < n && isdigit((unsigned char)w[i]))
        i++;
    return n >= 3 && i < n && !is_stopword(w, n);
}

size_t text_bullet_len(const char *s, size_t n)
{
    size_t i = 0;

    if (n >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && text_is_space(s[1])) {
        i = 2;
    } else if (n >= 4 && memcmp(s, "\xe2\x80\xa2", 3) == 0 && text_is_space(s[3])) {
        i = 4;
    } else {
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == 0 || i > 3 || i + 1 >= n || (s[i] != '.' && s[i] != ')') || !text_is_space(s[i + 1]))
            return 0;
        i += 2;
    }
    while (i < n && text_is_space(s[i]))
        i++;
    return i;
}

/* After a newline at j-1: a blank line or a bullet starts a new sentence. */
static int para_break(const char *s, size_t n, size_t j)
{
    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r'))
        j++;
    if (j >= n)
        return 0;
    return s[j] == '\n' || text_bullet_len(s + j, n - j) > 0;
}

static int next_is_lower(const char *s, size_t n, size_t j)
{
    while (j < n && text_is_space(s[j]))
        j++;
    return j < n && s[j] >= 'a' && s[j] <= 'z';
}

/* End (exclusive) of the sentence whose text starts at i: after [.!?] (and closing quotes)
 * followed by space and not by a lower-case word ("e.g. the"), or at a paragraph break. */
static size_t sentence_end(const char *s, size_t n, size_t i)
{
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.' || c == '!' || c == '?') {
            size_t j = i + 1;
            while (j < n && (s[j] == '"' || s[j] == '\'' || s[j] == ')'))
                j++;
            if (j >= n || (text_is_space(s[j]) && !next_is_lower(s, n, j)))
                return j;
        } else if (c == '\n' && para_break(s, n, i + 1)) {
            return i;
        }
    }
    return n;
}

struct sent {
    size_t start, end, words;
    double score;
};

struct sents {
    struct sent *v;
    size_t n, cap;
};

static int sents_push(struct sents *ss, size_t a, size_t b, size_t words)
{
    struct sent *v;

    if (ss->n == ss->cap) {
        size_t cap = ss->cap ? ss->cap * 2 : 32;
        v = realloc(ss->v, cap * sizeof *v);
        if (!v)
            return -1;
        ss->v = v;
        ss->cap = cap;
    }
    ss->v[ss->n].start = a;
    ss->v[ss->n].end = b;
    ss->v[ss->n].words = words;
    ss->v[ss->n].score = 0;
    ss->n++;
    return 0;
}

static int split_sentences(const char *s, size_t n, struct sents *ss)
{
    size_t i = 0, body, e, t;

    while (i < n) {
        while (i < n && text_is_space(s[i]))
            i++;
        if (i >= n)
            break;
        body = i + text_bullet_len(s + i, n - i);
        e = sentence_end(s, n, body);
        if (e <= i)
            e = i + 1;
        t = e;
        while (t > i && text_is_space(s[t - 1]))
            t--;
        if (sents_push(ss, i, t, text_count_words(s + i, t - i)) != 0)
            return -1;
        i = e;
    }
    return 0;
}

/* ---- word frequencies: open addressing on 64-bit hashes, sized for the document ---- */

struct wtab {
    uint64_t *key;
    uint32_t *cnt;
    size_t mask;
};

static int wtab_init(struct wtab *t, size_t doc_bytes)
{
    size_t want = 2 * (doc_bytes / 4 + 16), size = 64;

    while (size < want)
        size <<= 1;
    t->key = calloc(size, sizeof *t->key);
    t->cnt = calloc(size, sizeof *t->cnt);
    t->mask = size - 1;
    return t->key && t->cnt ? 0 : -1;
}

static void wtab_free(struct wtab *t)
{
    free(t->key);
    free(t->cnt);
}

/* Content words are >= 3 bytes apart, so the table is never more than half full. */
static uint32_t *wtab_slot(struct wtab *t, uint64_t h)
{
    size_t i;

    h |= 1;
    i = (size_t)h & t->mask;
    while (t->key[i] && t->key[i] != h)
        i = (i + 1) & t->mask;
    t->key[i] = h;
    return &t->cnt[i];
}

static void wtab_count(struct wtab *t, const char *doc, size_t n)
{
    size_t i = 0, ws, wn;

    while (next_word(doc, n, &i, &ws, &wn))
        if (is_content_word(doc + ws, wn))
            (*wtab_slot(t, text_hash_folded(doc + ws, wn)))++;
}

/* ---- the extractive summary ---- */

/* Score: summed document frequency of the sentence's content words over the square root
 * of its length in words, weighted up for early sentences, down for very short ones; the
 * "refine" model also prefers sentences with figures. */
static void score_sentences(const char *doc, struct sents *ss, struct wtab *t, int numbers)
{
    for (size_t k = 0; k < ss->n; k++) {
        struct sent *st = &ss->v[k];
        size_t i = st->start, ws, wn;
        double sum = 0, sc;
        int digits = 0;

        while (next_word(doc, st->end, &i, &ws, &wn)) {
            if (isdigit((unsigned char)doc[ws]))
                digits = 1;
            if (!is_content_word(doc + ws, wn))
                continue;
            sum += *wtab_slot(t, text_hash_folded(doc + ws, wn));
        }
        sc = st->words ? sum / sqrt((double)st->words) : 0.0;
        sc *= 1.0 + 1.0 / (1.0 + (double)k);
        if (st->words < 4)
            sc *= 0.5;
        if (numbers && digits)
            sc *= 1.25;
        st->score = sc;
    }
}

struct rank {
    double score;
    size_t idx;
};

static int rank_cmp(const void *a, const void *b)
{
    const struct rank *x = a, *y = b;

    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Everything if it fits in target words; else greedy by score within target words,
 * skipping sentences scoring under half the best; pick[i] = 1 (whole) or 2 (cut). */
static size_t choose(const struct sents *ss, struct rank *rk, size_t target, unsigned char *pick)
{
    size_t used = 0, chosen = 0;

    for (size_t k = 0; k < ss->n; k++)
        used += ss->v[k].words;
    if (used <= target) {
        memset(pick, 1, ss->n);
        return ss->n;
    }
    used = 0;

    for (size_t k = 0; k < ss->n; k++) {
        rk[k].score = ss->v[k].score;
        rk[k].idx = k;
    }
    qsort(rk, ss->n, sizeof *rk, rank_cmp);
    for (size_t k = 0; k < ss->n; k++) {
        size_t w = ss->v[rk[k].idx].words;
        if (used + w > target || rk[k].score < rk[0].score * 0.5)
            continue;
        pick[rk[k].idx] = 1;
        used += w;
        chosen++;
    }
    if (chosen == 0) {
        pick[rk[0].idx] = 2;
        chosen = 1;
    }
    return chosen;
}

/* Capitalize and make sure the sentence ends like one. */
static void tidy_sentence(struct sbuf *b, size_t mark)
{
    char *p, last;

    if (b->oom || b->len == mark)
        return;
    p = b->p + mark;
    if (*p >= 'a' && *p <= 'z')
        *p = (char)(*p - 32);
    last = b->p[b->len - 1];
    if (!memchr(".!?\"')", last, 6))
        sbuf_addc(b, '.');
}

/* Copy a sentence with whitespace collapsed, at most max_words words (0 = all). tidy:
 * drop the list bullet, capitalize, end with punctuation. */
static void render_sentence(struct sbuf *b, const char *s, const struct sent *st,
                            size_t max_words, int tidy)
{
    size_t i = st->start, end = st->end, words = 0, mark = b->len, w;

    if (tidy)
        i += text_bullet_len(s + i, end - i);
    while (i < end) {
        while (i < end && text_is_space(s[i]))
            i++;
        if (i >= end || (max_words && words == max_words))
            break;
        w = i;
        while (w < end && !text_is_space(s[w]))
            w++;
        if (words)
            sbuf_addc(b, ' ');
        sbuf_add(b, s + i, w - i);
        words++;
        i = w;
    }
    if (tidy)
        tidy_sentence(b, mark);
}

struct sum_info {
    size_t sentences, words, chosen;
};

static void render_summary(struct sbuf *out, const char *doc, const struct sents *ss,
                           const unsigned char *pick, size_t target, int tidy)
{
    int first = 1;

    for (size_t k = 0; k < ss->n; k++) {
        if (!pick[k])
            continue;
        if (!first)
            sbuf_addc(out, ' ');
        render_sentence(out, doc, &ss->v[k], pick[k] == 2 ? target : 0, tidy);
        first = 0;
    }
}

/* Append the summary of doc (about target words) to out. 0, or BD_ENOMEM. */
static int summarize(const char *doc, size_t n, size_t target, int tidy, struct sbuf *out,
                     struct sum_info *info)
{
    struct sents ss = {0};
    struct wtab t = {0};
    struct rank *rk = NULL;
    unsigned char *pick = NULL;
    int rc = BD_ENOMEM;

    if (split_sentences(doc, n, &ss) != 0)
        goto done;
    info->sentences = ss.n;
    for (size_t k = 0; k < ss.n; k++)
        info->words += ss.v[k].words;
    if (ss.n == 0) {
        sbuf_adds(out, "The document is empty.");
        rc = out->oom ? BD_ENOMEM : 0;
        goto done;
    }
    rk = malloc(ss.n * sizeof *rk);
    pick = calloc(ss.n, 1);
    if (!rk || !pick || wtab_init(&t, n) != 0)
        goto done;
    wtab_count(&t, doc, n);
    score_sentences(doc, &ss, &t, tidy);
    info->chosen = choose(&ss, rk, target, pick);
    render_summary(out, doc, &ss, pick, target, tidy);
    rc = out->oom ? BD_ENOMEM : 0;
done:
    wtab_free(&t);
    free(rk);
    free(pick);
    free(ss.v);
    return rc;
}

/* 1 if s[a..b) is a label announcing the document ("Source document:", "Text:", ...). */
static int is_doc_label(const char *s, size_t a, size_t b)
{
    static const char *const labels[] = {
        "source:", "source document:", "source text:", "document:", "text:", "original:",
        "original text:", "input:", "article:", "report:",
    };
    while (a < b && text_is_space(s[a]))
        a++;
    while (b > a && text_is_space(s[b - 1]))
        b--;
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (strlen(labels[i]) == b - a && strncasecmp(labels[i], s + a, b - a) == 0)
            return 1;
    return 0;
}

/* Offset just after the first document label line, or 0. */
static size_t after_doc_label(const char *s, size_t n)
{
    size_t a = 0, e;
    const char *nl;

    while (a < n) {
        nl = memchr(s + a, '\n', n - a);
        e = nl ? (size_t)(nl - s) : n;
        if (nl && is_doc_label(s, a, e))
            return e + 1;
        a = e + 1;
    }
    return 0;
}

/* Skip leading instruction lines: short lines ending with ':' followed by more text. */
static size_t skip_header_lines(const char *s, size_t n)
{
    size_t i = 0, j, e, k;
    const char *nl;

    for (;;) {
        j = i;
        while (j < n && text_is_space(s[j]))
            j++;
        nl = j < n ? memchr(s + j, '\n', n - j) : NULL;
        if (!nl)
            return i;
        e = (size_t)(nl - s);
        k = e;
        while (k > j && text_is_space(s[k - 1]))
            k--;
        if (k == j || s[k - 1] != ':' || k - j > 200)
            return i;
        i = e + 1;
    }
}

/* The document: s[0..n) from after a "Source document:"-style label line if there is one,
 * without leading instruction lines ("...:"), at most TEXT_MAX_DOC bytes. Caller frees;
 * NULL on OOM. */
static char *make_doc(const char *s, size_t n, size_t *out_len)
{
    struct sbuf b = {0};
    size_t i = after_doc_label(s, n);
    char *p;

    i += skip_header_lines(s + i, n - i);
    if (n - i > TEXT_MAX_DOC)
        n = i + TEXT_MAX_DOC;
    sbuf_add(&b, s + i, n - i);
    *out_len = b.len;
    p = sbuf_take(&b);
    if (!p)
        *out_len = 0;
    return p;
}

/* N from "at most N words" (case-insensitive), or 0. */
static size_t words_target(const char *s)
{
    const char *p, *q;
    char *end;
    unsigned long v;

    for (p = strcasestr(s, "at most "); p; p = strcasestr(p + 1, "at most ")) {
        q = p + 8;
        if (!isdigit((unsigned char)*q))
            continue;
        errno = 0;
        v = strtoul(q, &end, 10);
        while (*end == ' ')
            end++;
        if (errno == 0 && v > 0 && strncasecmp(end, "word", 4) == 0)
            return v > 100000 ? 100000 : (size_t)v;
    }
    return 0;
}

static size_t clamp_size(size_t v, size_t lo, size_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* "at most N words", else: the draft model a third of the document, the refine model all
 * of it (or the draft's length when there is one), clamped to the default bounds. */
static size_t brief_target(const char *input, int refine, size_t doc_words, const char *draft)
{
    size_t t = words_target(input);

    if (t)
        return t;
    if (!refine)
        t = (doc_words + 2) / 3;
    else if (draft)
        t = text_count_words(draft, strlen(draft));
    else
        t = doc_words;
    return clamp_size(t, TEXT_TARGET_MIN, TEXT_TARGET_MAX);
}

static char *reasoning_text(const struct sum_info *info, size_t target)
{
    struct sbuf b = {0};

    sbuf_printf(&b,
                "The user wants a clear executive brief. The source has %zu sentences and "
                "%zu words; I keep the %zu most informative sentences in their original "
                "order, within %zu words, and state the facts plainly.",
                info->sentences, info->words, info->chosen, target);
    return sbuf_take(&b);
}

/* The text the refine model summarizes: the part before "Draft brief:" when there is one
 * (or the draft itself when that part is empty), else everything. */
static char *source_doc(const char *input, const char *draft, size_t *len)
{
    /* up to the "Draft brief:" label itself (draft points just past it) */
    size_t n = draft ? (size_t)(draft - input) - strlen("Draft brief:") : strlen(input);
    char *doc = make_doc(input, n, len);

    if (doc && draft && text_count_words(doc, *len) == 0) {
        free(doc);
        doc = make_doc(draft, strlen(draft), len);
    }
    return doc;
}

int text_brief(const char *input, int refine, struct text_answer *a)
{
    const char *draft = NULL, *at;
    struct sbuf out = {0};
    struct sum_info info = {0};
    size_t dlen, target;
    char *doc;
    int rc;

    at = refine ? strstr(input, "Draft brief:") : NULL;
    if (at)
        draft = at + strlen("Draft brief:");
    doc = source_doc(input, draft, &dlen);
    if (!doc)
        return BD_ENOMEM;
    target = brief_target(input, refine, text_count_words(doc, dlen), draft);
    if (refine)
        sbuf_adds(&out, "Brief: ");
    rc = summarize(doc, dlen, target, refine, &out, &info);
    free(doc);
    a->len = out.len;
    a->content = sbuf_take(&out);
    if (refine)
        a->reasoning = reasoning_text(&info, target);
    if (rc != 0 || !a->content || (refine && !a->reasoning))
        return BD_ENOMEM;
    return 0;
}

int text_set_content(struct text_answer *a, const char *content, size_t len)
{
    char *p = malloc(len + 1);

    if (!p)
        return BD_ENOMEM;
    memcpy(p, content, len);
    p[len] = '\0';
    free(a->content);
    a->content = p;
    a->len = len;
    return 0;
}

int text_harmony_leak(struct text_answer *a)
{
    struct sbuf b = {0};

    sbuf_adds(&b, "<|channel|>analysis<|message|>");
    sbuf_adds(&b, a->reasoning ? a->reasoning : "");
    sbuf_adds(&b, "<|end|><|start|>assistant<|channel|>final<|message|>");
    sbuf_add(&b, a->content, a->len);
    free(a->content);
    free(a->reasoning);
    a->reasoning = NULL;
    a->len = b.len;
    a->content = sbuf_take(&b);
    return a->content ? 0 : BD_ENOMEM;
}

/* ---- tokens, logprobs ---- */

static int is_cont_byte(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

void text_cut(struct text_answer *a, long max_tokens)
{
    size_t cut;

    a->cut = 0;
    if (max_tokens <= 0 || a->len <= (size_t)max_tokens * 4)
        return;
    cut = (size_t)max_tokens * 4;
    while (cut > 0 && is_cont_byte(a->content[cut]))
        cut--;
    a->content[cut] = '\0';
    a->len = cut;
    a->cut = 1;
}

/* Token i starts at byte 4i, moved forward (<= 3 bytes) off UTF-8 continuation bytes, so
 * every token is non-empty and whole characters. */
int text_tokenize(struct text_answer *a)
{
    size_t b, k;

    a->n_tok = (a->len + 3) / 4;
    a->tok = malloc((a->n_tok + 1) * sizeof *a->tok);
    a->lp = malloc((a->n_tok + 1) * sizeof *a->lp);
    if (!a->tok || !a->lp)
        return BD_ENOMEM;
    for (size_t i = 0; i < a->n_tok; i++) {
        b = 4 * i;
        k = 0;
        while (i > 0 && k < 3 && b + k + 1 < a->len && is_cont_byte(a->content[b + k]))
            k++;
        a->tok[i] = b + k;
    }
    a->tok[a->n_tok] = a->len;
    return 0;
}

double text_default_mean(uint64_t input_hash)
{
    return -0.6 + 0.4 * hash_unit(input_hash);
}

void text_logprobs(struct text_answer *a, double mean, double spread, uint64_t seed)
{
    double d, v;

    for (size_t i = 0; i < a->n_tok; i++) {
        d = (2.0 * hash_unit(seed ^ hash_mix64(i / 2 + 1)) - 1.0) * spread;
        v = mean + ((i & 1) ? -d : d);
        a->lp[i] = round((v > 0 ? 0 : v) * 10000.0) / 10000.0;
    }
}

void text_answer_free(struct text_answer *a)
{
    free(a->content);
    free(a->reasoning);
    free(a->tok);
    free(a->lp);
    memset(a, 0, sizeof *a);
}
