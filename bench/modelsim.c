/* modelsim.c - briefd-modelsim: an OpenAI-compatible SIMULATOR of phi-4-mini and gpt-oss-20b. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "http.h"

#define SIM_NAME "briefd-modelsim (simulator)"
#define SIM_DEFAULT_HOST "127.0.0.1"
#define SIM_DEFAULT_PORT 5273
#define SIM_MAX_BODY ((size_t)8 << 20)      /* request body limit */
#define SIM_MAX_DOC ((size_t)1 << 20)       /* bytes of a document that are analysed */
#define SIM_MAX_PENDING 4096u               /* delayed, streaming or hanging requests */
#define SIM_SEEN_CAP 4096u                  /* input hashes remembered for [[sim:429-once]] */
#define SIM_TICK_MS 20                      /* stream pacing tick */
#define SIM_ZERO_BATCH 8                    /* tokens per chunk when tps is 0 (instant) */
#define SIM_MAX_DELAY_MS 3600000.0          /* cap on any simulated delay */
#define SIM_NAME_MAX 64                     /* fail_model */
#define SIM_TARGET_MIN 25                   /* default word target bounds */
#define SIM_TARGET_MAX 150

/* ---- models, profiles ---- */

enum model_id { M_PHI, M_GPT, M_COUNT };

struct model_def {
    const char *id;
    double ttft_ms;     /* realistic profile */
    double tps;
};

static const struct model_def k_models[M_COUNT] = {
    {"phi-4-mini", 80.0, 60.0},
    {"gpt-oss-20b", 350.0, 25.0},
};

enum profile { P_REALISTIC, P_FAST, P_ZERO, P_COUNT };
static const char *const k_profiles[P_COUNT] = {"realistic", "fast", "zero"};

/* ---- outcomes and statistics ---- */

enum outcome {
    O_OK, O_ERROR, O_RATE_LIMITED, O_HANG, O_GARBAGE, O_TRUNCATED, O_BAD_REQUEST,
    O_NOT_FOUND, O_COUNT
};
static const char *const k_outcomes[O_COUNT] = {
    "ok", "error", "rate_limited", "hang", "garbage", "truncated", "bad_request", "not_found"
};

struct model_stats {
    uint64_t requests, streams, aborted, prompt_tokens, completion_tokens;
    uint64_t outcome[O_COUNT];
};

struct stats {
    uint64_t requests, aborted;
    uint64_t outcome[O_COUNT];
    struct model_stats model[M_COUNT];
};

/* ---- faults: one declarative table drives the CLI, POST /sim/faults and GET /sim/faults ---- */

struct faults {
    double error_rate, rate_limit_rate, hang_rate, garbage_rate, truncate_rate;
    char fail_model[SIM_NAME_MAX];          /* "" = faults apply to every model */
    int no_usage, no_logprobs, null_logprobs, harmony_leak;
    long fail_next, rate_limit_next;
};

enum fk_type { FK_RATE, FK_BOOL, FK_COUNT, FK_MODEL };

struct fault_key {
    const char *name;                       /* JSON key; CLI flag is --name with '_' -> '-' */
    enum fk_type type;
    size_t off;
};

static const struct fault_key k_fault_keys[] = {
    {"error_rate", FK_RATE, offsetof(struct faults, error_rate)},
    {"rate_limit_rate", FK_RATE, offsetof(struct faults, rate_limit_rate)},
    {"hang_rate", FK_RATE, offsetof(struct faults, hang_rate)},
    {"garbage_rate", FK_RATE, offsetof(struct faults, garbage_rate)},
    {"truncate_rate", FK_RATE, offsetof(struct faults, truncate_rate)},
    {"fail_model", FK_MODEL, offsetof(struct faults, fail_model)},
    {"no_usage", FK_BOOL, offsetof(struct faults, no_usage)},
    {"no_logprobs", FK_BOOL, offsetof(struct faults, no_logprobs)},
    {"null_logprobs", FK_BOOL, offsetof(struct faults, null_logprobs)},
    {"harmony_leak", FK_BOOL, offsetof(struct faults, harmony_leak)},
    {"fail_next", FK_COUNT, offsetof(struct faults, fail_next)},
    {"rate_limit_next", FK_COUNT, offsetof(struct faults, rate_limit_next)},
};
#define N_FAULT_KEYS (sizeof k_fault_keys / sizeof k_fault_keys[0])

/* ---- input markers ---- */

enum {
    MK_LOWCONF = 1u << 0, MK_HIGHCONF = 1u << 1, MK_FAIL = 1u << 2, MK_FAIL_REFINE = 1u << 3,
    MK_429_ONCE = 1u << 4, MK_LENGTH = 1u << 5
};

static const struct {
    const char *text;
    unsigned bit;
} k_markers[] = {
    {"[[sim:lowconf]]", MK_LOWCONF},   {"[[sim:highconf]]", MK_HIGHCONF},
    {"[[sim:fail]]", MK_FAIL},         {"[[sim:fail-refine]]", MK_FAIL_REFINE},
    {"[[sim:429-once]]", MK_429_ONCE}, {"[[sim:length]]", MK_LENGTH},
};
#define N_MARKERS (sizeof k_markers / sizeof k_markers[0])

/* ---- the process ---- */

struct job;

struct sim {
    uv_loop_t *loop;
    struct http_server *server;
    uv_signal_t sig_int, sig_term;
    char host[256];
    int port;
    enum profile profile;
    double ttft_override, tps_override;     /* < 0: none */
    unsigned retry_after;
    int quiet, closing;
    uint64_t seed, rng, next_id;
    time_t started;
    struct faults faults;
    struct stats stats;
    uint64_t seen[SIM_SEEN_CAP];
    size_t seen_len, seen_next;
    struct job *jobs;                       /* every job not yet freed */
    unsigned pending;                       /* jobs not yet released */
};

/* A generated answer. Token i is content[tok[i] .. tok[i+1]). */
struct completion {
    char *content;
    size_t len;
    char *reasoning;                        /* gpt-oss-20b reasoning_content, or NULL */
    size_t *tok;
    size_t n_tok;
    double *lp;
    const char *finish;                     /* "stop" | "length" */
    long prompt_tokens, completion_tokens;
    char id[48];
    long created;
    int model;
};

enum lp_mode { LP_ABSENT, LP_NULL, LP_ON };

/* A request answered later (delayed, streamed or hanging). Owns its timer; freed in the
 * timer's close callback. req is NULL once the job is released or the client went away. */
struct job {
    struct sim *sim;
    struct http_req *req;
    uv_timer_t timer;
    struct job *prev, *next;
    int model;
    int in_write, aborted, dead, closing;
    char *body;                             /* non-stream: the response to send */
    size_t body_len;
    struct completion c;                    /* stream: what to send */
    enum lp_mode lp;
    int usage_chunk, trunc;
    double tps;
    size_t sent;
    uint64_t t0;
};

/* A validated chat request; strings point into the request's cJSON tree. */
struct chat_req {
    int model;
    const char *input;                      /* the last user message */
    size_t prompt_chars;                    /* bytes of every message's content */
    long max_tokens;                        /* 0 = no limit */
    int stream, include_usage, logprobs;
    int match;                              /* faults apply to this request's model */
    unsigned marks;
    uint64_t hash;                          /* FNV-1a of input */
};

struct req_err {
    int status;
    const char *code, *param;
    char msg[200];
};

/* ---- hashing and the PRNG ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static double unit_of(uint64_t x)
{
    return (double)(mix64(x) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t fnv1a(const char *s, size_t n, int fold)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (fold && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h = (h ^ c) * 0x100000001b3ULL;
    }
    return h;
}

static double rng_unit(struct sim *s)
{
    s->rng += 0x9e3779b97f4a7c15ULL;
    return unit_of(s->rng);
}

/* 1 if h was seen before; else remembers it (oldest forgotten past SIM_SEEN_CAP). */
static int seen_check_add(struct sim *s, uint64_t h)
{
    for (size_t i = 0; i < s->seen_len; i++)
        if (s->seen[i] == h)
            return 1;
    s->seen[s->seen_next] = h;
    s->seen_next = (s->seen_next + 1) % SIM_SEEN_CAP;
    if (s->seen_len < SIM_SEEN_CAP)
        s->seen_len++;
    return 0;
}

/* ---- a growable string ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    size_t cap;
    char *p;

    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_addc(struct sbuf *b, char c)
{
    sb_add(b, &c, 1);
}

/* The string (caller frees), or NULL after an allocation failure (buffer released). */
static char *sb_take(struct sbuf *b, size_t *len)
{
    char *p = b->p;

    if (b->oom) {
        free(b->p);
        p = NULL;
    } else if (!p) {
        p = calloc(1, 1);
    }
    if (len)
        *len = p ? b->len : 0;
    memset(b, 0, sizeof *b);
    return p;
}

/* ---- text: words, sentences ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int is_word_byte(char c)
{
    unsigned char u = (unsigned char)c;
    return isalnum(u) || u >= 0x80;
}

static size_t count_words(const char *s, size_t n)
{
    size_t words = 0;
    int in = 0;

    for (size_t i = 0; i < n; i++) {
        if (is_space(s[i])) {
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

static int is_stopword(const char *w, size_t n)
{
    static const char *const stop[] = {
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her",
        "was", "one", "our", "out", "has", "have", "this", "that", "with", "from", "they",
        "will", "would", "there", "their", "what", "about", "which", "when", "were", "been",
        "into", "than", "then", "them", "these", "those", "its", "also", "such", "more",
        "other", "some", "may", "should", "could", "who", "his", "she", "him", "how", "each",
    };
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++)
        if (strlen(stop[i]) == n && strncasecmp(stop[i], w, n) == 0)
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

/* Length of a list bullet ("- ", "* ", "+ ", "• ", "12. ", "3) ") and its spaces, or 0. */
static size_t bullet_len(const char *s, size_t n)
{
    size_t i = 0;

    if (n >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && is_space(s[1])) {
        i = 2;
    } else if (n >= 4 && memcmp(s, "\xe2\x80\xa2", 3) == 0 && is_space(s[3])) {
        i = 4;
    } else {
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == 0 || i > 3 || i + 1 >= n || (s[i] != '.' && s[i] != ')') || !is_space(s[i + 1]))
            return 0;
        i += 2;
    }
    while (i < n && is_space(s[i]))
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
    return s[j] == '\n' || bullet_len(s + j, n - j) > 0;
}

static int next_is_lower(const char *s, size_t n, size_t j)
{
    while (j < n && is_space(s[j]))
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
            if (j >= n || (is_space(s[j]) && !next_is_lower(s, n, j)))
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
        while (i < n && is_space(s[i]))
            i++;
        if (i >= n)
            break;
        body = i + bullet_len(s + i, n - i);
        e = sentence_end(s, n, body);
        if (e <= i)
            e = i + 1;
        t = e;
        while (t > i && is_space(s[t - 1]))
            t--;
        if (sents_push(ss, i, t, count_words(s + i, t - i)) != 0)
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
            (*wtab_slot(t, fnv1a(doc + ws, wn, 1)))++;
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
            sum += *wtab_slot(t, fnv1a(doc + ws, wn, 1));
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
        sb_addc(b, '.');
}

/* Copy a sentence with whitespace collapsed, at most max_words words (0 = all). tidy:
 * drop the list bullet, capitalize, end with punctuation. */
static void render_sentence(struct sbuf *b, const char *s, const struct sent *st,
                            size_t max_words, int tidy)
{
    size_t i = st->start, end = st->end, words = 0, mark = b->len, w;

    if (tidy)
        i += bullet_len(s + i, end - i);
    while (i < end) {
        while (i < end && is_space(s[i]))
            i++;
        if (i >= end || (max_words && words == max_words))
            break;
        w = i;
        while (w < end && !is_space(s[w]))
            w++;
        if (words)
            sb_addc(b, ' ');
        sb_add(b, s + i, w - i);
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
            sb_addc(out, ' ');
        render_sentence(out, doc, &ss->v[k], pick[k] == 2 ? target : 0, tidy);
        first = 0;
    }
}

/* Append the summary of doc (about target words) to out. 0, or -1 on OOM. */
static int summarize(const char *doc, size_t n, size_t target, int tidy, struct sbuf *out,
                     struct sum_info *info)
{
    struct sents ss = {0};
    struct wtab t = {0};
    struct rank *rk = NULL;
    unsigned char *pick = NULL;
    int rc = -1;

    if (split_sentences(doc, n, &ss) != 0)
        goto done;
    info->sentences = ss.n;
    for (size_t k = 0; k < ss.n; k++)
        info->words += ss.v[k].words;
    if (ss.n == 0) {
        sb_adds(out, "The document is empty.");
        rc = out->oom ? -1 : 0;
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
    rc = out->oom ? -1 : 0;
done:
    wtab_free(&t);
    free(rk);
    free(pick);
    free(ss.v);
    return rc;
}

/* ---- the prompt: instruction lines, markers, word target ---- */

static unsigned find_markers(const char *s)
{
    unsigned m = 0;

    for (size_t i = 0; i < N_MARKERS; i++)
        if (strstr(s, k_markers[i].text))
            m |= k_markers[i].bit;
    return m;
}

/* 1 if s[a..b) is a label announcing the document ("Source document:", "Text:", ...). */
static int is_doc_label(const char *s, size_t a, size_t b)
{
    static const char *const labels[] = {
        "source:", "source document:", "source text:", "document:", "text:", "original:",
        "original text:", "input:", "article:", "report:",
    };
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
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
        while (j < n && is_space(s[j]))
            j++;
        nl = j < n ? memchr(s + j, '\n', n - j) : NULL;
        if (!nl)
            return i;
        e = (size_t)(nl - s);
        k = e;
        while (k > j && is_space(s[k - 1]))
            k--;
        if (k == j || s[k - 1] != ':' || k - j > 200)
            return i;
        i = e + 1;
    }
}

/* The document: s[0..n) from after a "Source document:"-style label line if there is one,
 * without leading instruction lines ("...:") and without [[sim:...]] markers, at most
 * SIM_MAX_DOC bytes. Caller frees; NULL on OOM. */
static char *make_doc(const char *s, size_t n, size_t *out_len)
{
    struct sbuf b = {0};
    size_t i = after_doc_label(s, n), stop, rest;
    const char *m, *e;

    i += skip_header_lines(s + i, n - i);
    if (n - i > SIM_MAX_DOC)
        n = i + SIM_MAX_DOC;
    while (i < n) {
        m = memmem(s + i, n - i, "[[sim:", 6);
        stop = m ? (size_t)(m - s) : n;
        sb_add(&b, s + i, stop - i);
        if (!m)
            break;
        rest = n - stop - 6;
        e = memmem(m + 6, rest < 64 ? rest : 64, "]]", 2);
        if (!e) {
            sb_add(&b, m, 6);
            i = stop + 6;
            continue;
        }
        i = (size_t)(e - s) + 2;
    }
    return sb_take(&b, out_len);
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

static size_t brief_target(const struct chat_req *cr, size_t doc_words, const char *draft)
{
    size_t t = words_target(cr->input);

    if (t)
        return t;
    if (cr->model == M_PHI)
        t = (doc_words + 2) / 3;
    else if (draft)
        t = count_words(draft, strlen(draft));
    else
        t = doc_words;
    return clamp_size(t, SIM_TARGET_MIN, SIM_TARGET_MAX);
}

/* phi-4-mini starts its draft with the input's markers (each followed by a space), so that
 * they reach the refine request even when max_tokens cuts the draft. */
static void add_markers(struct sbuf *b, unsigned marks)
{
    for (size_t i = 0; i < N_MARKERS; i++) {
        if (!(marks & k_markers[i].bit))
            continue;
        sb_adds(b, k_markers[i].text);
        sb_addc(b, ' ');
    }
}

static char *reasoning_text(const struct sum_info *info, size_t target)
{
    char *r = malloc(400);

    if (r)
        snprintf(r, 400,
                 "The user wants a clear executive brief. The source has %zu sentences and "
                 "%zu words; I keep the %zu most informative sentences in their original "
                 "order, within %zu words, and state the facts plainly.",
                 info->sentences, info->words, info->chosen, target);
    return r;
}

/* The text gpt-oss-20b summarizes: the part before "Draft brief:" when there is one (or
 * the draft itself when that part is empty), else everything. */
static char *source_doc(const struct chat_req *cr, const char *draft, size_t *len)
{
    /* up to the "Draft brief:" label itself (draft points just past it) */
    size_t n = draft ? (size_t)(draft - cr->input) - strlen("Draft brief:") : strlen(cr->input);
    char *doc = make_doc(cr->input, n, len);

    if (doc && draft && count_words(doc, *len) == 0) {
        free(doc);
        doc = make_doc(draft, strlen(draft), len);
    }
    return doc;
}

/* content (and reasoning for gpt-oss-20b) of c. 0, or -1 on OOM. */
static int write_brief(const struct chat_req *cr, struct completion *c)
{
    const char *draft = NULL, *at;
    struct sbuf out = {0};
    struct sum_info info = {0};
    size_t dlen, target;
    char *doc;
    int gpt = cr->model == M_GPT, rc;

    at = gpt ? strstr(cr->input, "Draft brief:") : NULL;
    if (at)
        draft = at + strlen("Draft brief:");
    doc = source_doc(cr, draft, &dlen);
    if (!doc)
        return -1;
    target = brief_target(cr, count_words(doc, dlen), draft);
    if (gpt)
        sb_adds(&out, "Brief: ");
    else
        add_markers(&out, cr->marks);
    rc = summarize(doc, dlen, target, gpt, &out, &info);
    free(doc);
    c->content = sb_take(&out, &c->len);
    if (gpt)
        c->reasoning = reasoning_text(&info, target);
    return rc != 0 || !c->content || (gpt && !c->reasoning) ? -1 : 0;
}

/* gpt-oss harmony channels leaked into content, as servers without its template do. */
static int leak_harmony(struct completion *c)
{
    struct sbuf b = {0};

    sb_adds(&b, "<|channel|>analysis<|message|>");
    sb_adds(&b, c->reasoning);
    sb_adds(&b, "<|end|><|start|>assistant<|channel|>final<|message|>");
    sb_add(&b, c->content, c->len);
    free(c->content);
    free(c->reasoning);
    c->reasoning = NULL;
    c->content = sb_take(&b, &c->len);
    return c->content ? 0 : -1;
}

/* ---- tokens, logprobs, usage ---- */

static int is_cont_byte(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

/* max_tokens allows 4 * max_tokens bytes (cut back to a UTF-8 boundary). */
static void cut_length(struct completion *c, long max_tokens)
{
    size_t cut;

    c->finish = "stop";
    if (max_tokens <= 0 || c->len <= (size_t)max_tokens * 4)
        return;
    cut = (size_t)max_tokens * 4;
    while (cut > 0 && is_cont_byte(c->content[cut]))
        cut--;
    c->content[cut] = '\0';
    c->len = cut;
    c->finish = "length";
}

/* ceil(len / 4) tokens; token i starts at byte 4i, moved forward (<= 3 bytes) off UTF-8
 * continuation bytes, so every token is non-empty and whole characters. */
static int tokenize(struct completion *c)
{
    size_t b, k;

    c->n_tok = (c->len + 3) / 4;
    c->tok = malloc((c->n_tok + 1) * sizeof *c->tok);
    c->lp = malloc((c->n_tok + 1) * sizeof *c->lp);
    if (!c->tok || !c->lp)
        return -1;
    for (size_t i = 0; i < c->n_tok; i++) {
        b = 4 * i;
        k = 0;
        while (i > 0 && k < 3 && b + k + 1 < c->len && is_cont_byte(c->content[b + k]))
            k++;
        c->tok[i] = b + k;
    }
    c->tok[c->n_tok] = c->len;
    return 0;
}

/* Mean -1.6 with [[sim:lowconf]], -0.15 with [[sim:highconf]], else in [-0.6, -0.2] from the
 * input hash; token i deviates by +-d (pairs cancel), rounded to 4 decimals. */
static void fill_logprobs(struct completion *c, unsigned marks, uint64_t h)
{
    double mean = -0.6 + 0.4 * unit_of(h), spread = 0.15, d, v;

    if (marks & MK_HIGHCONF) {
        mean = -0.15;
        spread = 0.08;
    }
    if (marks & MK_LOWCONF) {
        mean = -1.6;
        spread = 0.4;
    }
    for (size_t i = 0; i < c->n_tok; i++) {
        d = (2.0 * unit_of(h ^ mix64(i / 2 + 1)) - 1.0) * spread;
        v = mean + ((i & 1) ? -d : d);
        c->lp[i] = round((v > 0 ? 0 : v) * 10000.0) / 10000.0;
    }
}

static void completion_free(struct completion *c)
{
    free(c->content);
    free(c->reasoning);
    free(c->tok);
    free(c->lp);
    memset(c, 0, sizeof *c);
}

static int generate(struct sim *s, const struct chat_req *cr, int harmony,
                    struct completion *c)
{
    memset(c, 0, sizeof *c);
    c->model = cr->model;
    c->created = (long)time(NULL);
    snprintf(c->id, sizeof c->id, "chatcmpl-sim-%" PRIu64, ++s->next_id);
    if (write_brief(cr, c) != 0)
        goto fail;
    if (harmony && leak_harmony(c) != 0)
        goto fail;
    cut_length(c, cr->max_tokens);
    if (cr->marks & MK_LENGTH)
        c->finish = "length";
    if (tokenize(c) != 0)
        goto fail;
    fill_logprobs(c, cr->marks, cr->hash);
    c->prompt_tokens = (long)((cr->prompt_chars + 3) / 4);
    c->completion_tokens = (long)c->n_tok;
    return 0;
fail:
    completion_free(c);
    return -1;
}

/* ---- response JSON ---- */

static cJSON *resp_base(const struct completion *c, const char *object)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)c->created);
    cJSON_AddStringToObject(o, "model", k_models[c->model].id);
    return o;
}

static cJSON *logprobs_json(const struct completion *c, size_t a, size_t b)
{
    cJSON *lp = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(lp, "content"), *t;
    char tok[16];
    size_t n;

    for (size_t i = a; i < b; i++) {
        n = c->tok[i + 1] - c->tok[i];
        if (n >= sizeof tok)
            n = sizeof tok - 1;
        memcpy(tok, c->content + c->tok[i], n);
        tok[n] = '\0';
        t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "token", tok);
        cJSON_AddNumberToObject(t, "logprob", c->lp[i]);
        cJSON_AddNullToObject(t, "bytes");
        cJSON_AddArrayToObject(t, "top_logprobs");
        cJSON_AddItemToArray(arr, t);
    }
    return lp;
}

static void add_logprobs(cJSON *choice, const struct completion *c, size_t a, size_t b,
                         enum lp_mode mode)
{
    if (mode == LP_ON && b > a)
        cJSON_AddItemToObject(choice, "logprobs", logprobs_json(c, a, b));
    else if (mode != LP_ABSENT)
        cJSON_AddNullToObject(choice, "logprobs");
}

static void add_usage(cJSON *o, const struct completion *c)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");

    cJSON_AddNumberToObject(u, "prompt_tokens", (double)c->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)c->completion_tokens);
    cJSON_AddNumberToObject(u, "total_tokens",
                            (double)(c->prompt_tokens + c->completion_tokens));
}

/* Printed JSON (caller frees), NULL on OOM; root is deleted. */
static char *print_json(cJSON *root, size_t *len)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;

    cJSON_Delete(root);
    *len = s ? strlen(s) : 0;
    return s;
}

static char *completion_body(const struct completion *c, enum lp_mode lp, int usage,
                             size_t *len)
{
    cJSON *root = resp_base(c, "chat.completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject(), *msg;

    cJSON_AddNumberToObject(ch, "index", 0);
    msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", c->content);
    if (c->reasoning)
        cJSON_AddStringToObject(msg, "reasoning_content", c->reasoning);
    add_logprobs(ch, c, 0, c->n_tok, lp);
    cJSON_AddStringToObject(ch, "finish_reason", c->finish);
    cJSON_AddItemToArray(choices, ch);
    if (usage)
        add_usage(root, c);
    return print_json(root, len);
}

/* "data: <json>\n\n" (caller frees), NULL on OOM; root is deleted. */
static char *sse_event(cJSON *root, size_t *len)
{
    struct sbuf b = {0};
    size_t n;
    char *json = print_json(root, &n);

    if (!json)
        return NULL;
    sb_adds(&b, "data: ");
    sb_add(&b, json, n);
    sb_adds(&b, "\n\n");
    free(json);
    return sb_take(&b, len);
}

/* A chat.completion.chunk with delta (consumed), tokens [a, b) for logprobs, finish. */
static char *chunk_event(const struct completion *c, cJSON *delta, enum lp_mode lp, size_t a,
                         size_t b, const char *finish, size_t *len)
{
    cJSON *root = resp_base(c, "chat.completion.chunk");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();

    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON_AddItemToObject(ch, "delta", delta);
    add_logprobs(ch, c, a, b, lp);
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    return sse_event(root, len);
}

static char *usage_event(const struct completion *c, size_t *len)
{
    cJSON *root = resp_base(c, "chat.completion.chunk");

    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, c);
    return sse_event(root, len);
}

/* ---- jobs: requests answered later ---- */

static void job_on_closed(uv_handle_t *h)
{
    struct job *j = h->data;
    struct sim *s = j->sim;

    if (j->prev)
        j->prev->next = j->next;
    else
        s->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    completion_free(&j->c);
    free(j->body);
    free(j);
}

/* Forget the request and free the job once its timer is closed. Idempotent. */
static void job_release(struct job *j)
{
    if (j->closing)
        return;
    j->closing = 1;
    j->req = NULL;
    j->sim->pending--;
    uv_close((uv_handle_t *)&j->timer, job_on_closed);
}

static void job_on_abort(struct http_req *r, void *data)
{
    struct job *j = data;

    (void)r;
    j->sim->stats.aborted++;
    j->sim->stats.model[j->model].aborted++;
    j->req = NULL;
    if (j->in_write) {
        j->aborted = 1;
        return;
    }
    job_release(j);
}

/* A job for req, or NULL when SIM_MAX_PENDING are pending or on OOM. */
static struct job *job_new(struct sim *s, struct http_req *req, int model)
{
    struct job *j;

    if (s->pending >= SIM_MAX_PENDING)
        return NULL;
    j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->sim = s;
    j->req = req;
    j->model = model;
    uv_timer_init(s->loop, &j->timer);
    j->timer.data = j;
    j->next = s->jobs;
    if (s->jobs)
        s->jobs->prev = j;
    s->jobs = j;
    s->pending++;
    http_req_on_abort(req, job_on_abort, j);
    return j;
}

/* Complete the response and release the job. */
static void job_respond(struct job *j, const char *body, size_t len)
{
    struct http_req *req = j->req;

    if (req) {
        http_req_on_abort(req, NULL, NULL);
        http_respond(req, 200, "application/json", body, len);
    }
    job_release(j);
}

static void job_stream_end(struct job *j)
{
    struct http_req *req = j->req;

    if (req) {
        http_req_on_abort(req, NULL, NULL);
        http_stream_end(req);
    }
    job_release(j);
}

/* 0, or -1 when the client is gone: the job is then released (or waits for the abort
 * callback) and the caller must not touch it again. */
static int job_write(struct job *j, char *data, size_t len)
{
    int rc;

    if (!data)
        return 0;   /* OOM on one event: skip it */
    j->in_write = 1;
    rc = http_stream_write(j->req, data, len);
    j->in_write = 0;
    free(data);
    if (j->aborted) {
        job_release(j);
        return -1;
    }
    if (rc != 0) {
        j->dead = 1;
        uv_timer_stop(&j->timer);
        return -1;
    }
    return 0;
}

static uint64_t delay_ms(double ms)
{
    if (!(ms > 0))
        return 0;
    return (uint64_t)llround(ms > SIM_MAX_DELAY_MS ? SIM_MAX_DELAY_MS : ms);
}

static void model_timing(const struct sim *s, int model, double *ttft, double *tps)
{
    *ttft = k_models[model].ttft_ms;
    *tps = k_models[model].tps;
    if (s->profile == P_FAST) {
        *ttft = 5;
        *tps = 2000;
    } else if (s->profile == P_ZERO) {
        *ttft = 0;
        *tps = 0;
    }
    if (s->ttft_override >= 0)
        *ttft = s->ttft_override;
    if (s->tps_override >= 0)
        *tps = s->tps_override;
}

static void on_respond_timer(uv_timer_t *t)
{
    struct job *j = t->data;

    job_respond(j, j->body, j->body_len);
}

/* ---- streaming ---- */

static void on_stream_timer(uv_timer_t *t);

static int stream_delta(struct job *j, const char *key, const char *text, size_t a, size_t b)
{
    cJSON *delta = cJSON_CreateObject();
    size_t len;
    char *ev;

    if (key && text)
        cJSON_AddStringToObject(delta, key, text);
    ev = chunk_event(&j->c, delta, j->lp, a, b, NULL, &len);
    return job_write(j, ev, len);
}

static int stream_tokens(struct job *j, size_t a, size_t b)
{
    const struct completion *c = &j->c;
    size_t n = c->tok[b] - c->tok[a];
    char *text = malloc(n + 1);
    int rc;

    if (!text)
        return 0;
    memcpy(text, c->content + c->tok[a], n);
    text[n] = '\0';
    rc = stream_delta(j, "content", text, a, b);
    free(text);
    return rc;
}

/* Final chunk, usage chunk, [DONE], end. A truncated stream just stops. */
static void stream_finish(struct job *j)
{
    size_t len;
    char *ev;

    if (j->trunc) {
        job_stream_end(j);
        return;
    }
    ev = chunk_event(&j->c, cJSON_CreateObject(), j->lp, 0, 0, j->c.finish, &len);
    if (job_write(j, ev, len) != 0)
        return;
    if (j->usage_chunk) {
        ev = usage_event(&j->c, &len);
        if (job_write(j, ev, len) != 0)
            return;
    }
    ev = strdup("data: [DONE]\n\n");
    if (job_write(j, ev, ev ? strlen(ev) : 0) != 0)
        return;
    job_stream_end(j);
}

/* Tokens due by now: the first at ttft, then tps per second; all of them when tps is 0. */
static size_t stream_due(const struct job *j)
{
    uint64_t now = uv_now(j->sim->loop);

    if (!(j->tps > 0))
        return j->c.n_tok;
    return (size_t)((double)(now - j->t0) * j->tps / 1000.0) + 1;
}

static void stream_tick(struct job *j)
{
    size_t stop = j->trunc ? j->c.n_tok / 2 : j->c.n_tok, due = stream_due(j), b;

    if (due > stop)
        due = stop;
    while (j->sent < due) {
        b = j->tps > 0 ? due : j->sent + SIM_ZERO_BATCH;
        if (b > due)
            b = due;
        if (stream_tokens(j, j->sent, b) != 0)
            return;
        j->sent = b;
    }
    if (j->sent >= stop) {
        stream_finish(j);
        return;
    }
    uv_timer_start(&j->timer, on_stream_timer, SIM_TICK_MS, 0);
}

static void on_stream_timer(uv_timer_t *t)
{
    stream_tick(t->data);
}

/* At time-to-first-token: headers, the role chunk, gpt-oss reasoning, then tokens. */
static void stream_start(struct job *j)
{
    j->in_write = 1;
    http_stream_begin(j->req, 200, "text/event-stream");
    j->in_write = 0;
    if (j->aborted) {
        job_release(j);
        return;
    }
    if (stream_delta(j, "role", "assistant", 0, 0) != 0)
        return;
    if (j->c.reasoning && stream_delta(j, "reasoning_content", j->c.reasoning, 0, 0) != 0)
        return;
    j->t0 = uv_now(j->sim->loop);
    stream_tick(j);
}

static void on_ttft_timer(uv_timer_t *t)
{
    stream_start(t->data);
}

/* ---- answering a chat request ---- */

static void respond_500(struct http_req *req, const char *why)
{
    http_respond_error(req, 500, "sim_server_error", NULL,
                       "simulated upstream error (" SIM_NAME "): %s", why);
}

static void respond_429(const struct sim *s, struct http_req *req)
{
    char v[32];

    snprintf(v, sizeof v, "%u", s->retry_after);
    http_resp_header(req, "Retry-After", v);
    http_respond_error(req, 429, "rate_limit_exceeded", NULL,
                       "simulated rate limit (" SIM_NAME "); retry after %u s",
                       s->retry_after);
}

static void respond_busy(struct http_req *req)
{
    http_resp_header(req, "Retry-After", "1");
    http_respond_error(req, 503, "sim_busy", NULL, "too many pending requests (%u)",
                       SIM_MAX_PENDING);
}

static void respond_garbage(struct http_req *req)
{
    static const char body[] = "<html><body>502 Bad Gateway: " SIM_NAME
                               " garbage, not JSON {\"choices\": [</body></html>\n";

    http_respond(req, 200, "application/json", body, sizeof body - 1);
}

static void start_hang(struct sim *s, struct http_req *req, int model)
{
    if (!job_new(s, req, model))
        respond_busy(req);
}

static enum lp_mode lp_mode_for(const struct sim *s, const struct chat_req *cr)
{
    const struct faults *f = &s->faults;

    if (cr->match && f->no_logprobs)
        return LP_ABSENT;
    if (!cr->logprobs || (cr->match && f->null_logprobs))
        return LP_NULL;
    return LP_ON;
}

static void start_stream(struct sim *s, struct http_req *req, const struct chat_req *cr,
                         struct completion *c, int trunc)
{
    struct job *j = job_new(s, req, cr->model);
    double ttft;

    if (!j) {
        completion_free(c);
        respond_busy(req);
        return;
    }
    j->c = *c;
    j->lp = lp_mode_for(s, cr);
    j->usage_chunk = cr->include_usage && !(cr->match && s->faults.no_usage);
    j->trunc = trunc;
    model_timing(s, cr->model, &ttft, &j->tps);
    if (delay_ms(ttft) == 0) {
        stream_start(j);
        return;
    }
    uv_timer_start(&j->timer, on_ttft_timer, delay_ms(ttft), 0);
}

/* Non-stream: the whole body after ttft + tokens / tps (a truncated body at once). */
static void respond_completion(struct sim *s, struct http_req *req, const struct chat_req *cr,
                               struct completion *c, int trunc)
{
    int usage = !(cr->match && s->faults.no_usage);
    size_t len;
    char *body = completion_body(c, lp_mode_for(s, cr), usage, &len);
    double ttft, tps;
    uint64_t ms;
    struct job *j;

    model_timing(s, cr->model, &ttft, &tps);
    ms = trunc ? 0 : delay_ms(ttft + (tps > 0 ? (double)c->n_tok * 1000.0 / tps : 0));
    completion_free(c);
    if (!body) {
        respond_500(req, "out of memory");
        return;
    }
    if (trunc)
        len /= 2;
    if (ms == 0) {
        http_respond(req, 200, "application/json", body, len);
        free(body);
        return;
    }
    j = job_new(s, req, cr->model);
    if (!j) {
        free(body);
        respond_busy(req);
        return;
    }
    j->body = body;
    j->body_len = len;
    uv_timer_start(&j->timer, on_respond_timer, ms, 0);
}

static void serve_completion(struct sim *s, struct http_req *req, const struct chat_req *cr,
                             int trunc)
{
    struct completion c;
    int harmony = cr->match && s->faults.harmony_leak && cr->model == M_GPT;
    struct model_stats *ms = &s->stats.model[cr->model];

    if (generate(s, cr, harmony, &c) != 0) {
        respond_500(req, "out of memory");
        return;
    }
    ms->prompt_tokens += (uint64_t)c.prompt_tokens;
    ms->completion_tokens += (uint64_t)c.completion_tokens;
    if (cr->stream)
        start_stream(s, req, cr, &c, trunc);
    else
        respond_completion(s, req, cr, &c, trunc);
}

static enum outcome draw_fault(struct sim *s)
{
    const struct faults *f = &s->faults;
    double u = rng_unit(s), acc = f->error_rate;

    if (u < acc)
        return O_ERROR;
    acc += f->rate_limit_rate;
    if (u < acc)
        return O_RATE_LIMITED;
    acc += f->hang_rate;
    if (u < acc)
        return O_HANG;
    acc += f->garbage_rate;
    if (u < acc)
        return O_GARBAGE;
    acc += f->truncate_rate;
    return u < acc ? O_TRUNCATED : O_OK;
}

/* Markers first, then fail_next / rate_limit_next, then one PRNG draw against the rates. */
static enum outcome decide(struct sim *s, const struct chat_req *cr)
{
    struct faults *f = &s->faults;

    if (cr->marks & MK_FAIL)
        return O_ERROR;
    if ((cr->marks & MK_FAIL_REFINE) && cr->model == M_GPT)
        return O_ERROR;
    if ((cr->marks & MK_429_ONCE) && !seen_check_add(s, cr->hash))
        return O_RATE_LIMITED;
    if (!cr->match)
        return O_OK;
    if (f->fail_next > 0) {
        f->fail_next--;
        return O_ERROR;
    }
    if (f->rate_limit_next > 0) {
        f->rate_limit_next--;
        return O_RATE_LIMITED;
    }
    return draw_fault(s);
}

static void serve_chat(struct sim *s, struct http_req *req, struct chat_req *cr)
{
    struct model_stats *ms = &s->stats.model[cr->model];
    enum outcome o;

    cr->match = !s->faults.fail_model[0] ||
                strcmp(s->faults.fail_model, k_models[cr->model].id) == 0;
    cr->marks = find_markers(cr->input);
    cr->hash = fnv1a(cr->input, strlen(cr->input), 0);
    o = decide(s, cr);
    s->stats.outcome[o]++;
    ms->requests++;
    ms->outcome[o]++;
    ms->streams += cr->stream ? 1 : 0;
    if (!s->quiet)
        fprintf(stderr, "modelsim: %s %s%s -> %s\n", http_req_id(req), k_models[cr->model].id,
                cr->stream ? " stream" : "", k_outcomes[o]);
    if (o == O_ERROR)
        respond_500(req, "injected fault");
    else if (o == O_RATE_LIMITED)
        respond_429(s, req);
    else if (o == O_GARBAGE)
        respond_garbage(req);
    else if (o == O_HANG)
        start_hang(s, req, cr->model);
    else
        serve_completion(s, req, cr, o == O_TRUNCATED);
}

/* ---- request validation ---- */

static int req_fail(struct req_err *e, int status, const char *code, const char *param,
                    const char *msg)
{
    e->status = status;
    e->code = code;
    e->param = param;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return -1;
}

static int parse_messages(const cJSON *msgs, struct chat_req *cr, struct req_err *e)
{
    const cJSON *m, *role, *content;

    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return req_fail(e, 400, "invalid_messages", "messages",
                        "'messages' must be a non-empty array");
    cJSON_ArrayForEach(m, msgs) {
        role = cJSON_GetObjectItemCaseSensitive(m, "role");
        content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content))
            return req_fail(e, 400, "invalid_messages", "messages",
                            "every message needs string 'role' and 'content'");
        cr->prompt_chars += strlen(content->valuestring);
        if (strcmp(role->valuestring, "user") == 0)
            cr->input = content->valuestring;
    }
    if (!cr->input)
        return req_fail(e, 400, "invalid_messages", "messages", "no user message");
    return 0;
}

/* Absent or null: 0; a boolean: its value; else a 400 naming key (a string literal). */
static int parse_flag(const cJSON *o, const char *key, int *out, struct req_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return req_fail(e, 400, "invalid_type", key, "expected a boolean");
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_max_tokens(const cJSON *root, long *out, struct req_err *e)
{
    static const char *const keys[] = {"max_completion_tokens", "max_tokens"};
    const cJSON *v;

    *out = 0;
    for (size_t i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        if (!v || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e7))
            return req_fail(e, 400, "invalid_value", keys[i],
                            "expected an integer between 1 and 10000000");
        *out = (long)v->valuedouble;
        return 0;
    }
    return 0;
}

static int parse_model(const cJSON *root, struct chat_req *cr, struct req_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    char msg[200];

    if (!cJSON_IsString(v))
        return req_fail(e, 400, "invalid_model", "model", "'model' must be a string");
    for (int m = 0; m < M_COUNT; m++) {
        if (strcmp(v->valuestring, k_models[m].id) == 0) {
            cr->model = m;
            return 0;
        }
    }
    snprintf(msg, sizeof msg, "model '%.120s' not found", v->valuestring);
    return req_fail(e, 404, "model_not_found", "model", msg);
}

static int parse_chat(const cJSON *root, struct chat_req *cr, struct req_err *e)
{
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");

    memset(cr, 0, sizeof *cr);
    if (parse_model(root, cr, e) != 0)
        return -1;
    if (parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), cr, e) != 0)
        return -1;
    if (parse_max_tokens(root, &cr->max_tokens, e) != 0)
        return -1;
    if (parse_flag(root, "stream", &cr->stream, e) != 0)
        return -1;
    if (parse_flag(root, "logprobs", &cr->logprobs, e) != 0)
        return -1;
    if (so && !cJSON_IsNull(so) && !cJSON_IsObject(so))
        return req_fail(e, 400, "invalid_type", "stream_options", "expected an object");
    if (parse_flag(so, "include_usage", &cr->include_usage, e) != 0)
        return -1;
    cr->include_usage = cr->include_usage && cr->stream;
    return 0;
}

/* ---- fault settings as JSON and flags ---- */

static void *fk_field(struct faults *f, const struct fault_key *k)
{
    return (char *)f + k->off;
}

static const void *fk_cfield(const struct faults *f, const struct fault_key *k)
{
    return (const char *)f + k->off;
}

static const struct fault_key *fk_find(const char *name)
{
    for (size_t i = 0; i < N_FAULT_KEYS; i++)
        if (strcmp(k_fault_keys[i].name, name) == 0)
            return &k_fault_keys[i];
    return NULL;
}

/* Set k from a number/boolean (d, is_bool) or a string (str; NULL = none). 0 or -1. */
static int fk_set(struct faults *f, const struct fault_key *k, double d, int is_bool,
                  const char *str)
{
    switch (k->type) {
    case FK_RATE:
        if (is_bool || str || !(d >= 0 && d <= 1))
            return -1;
        *(double *)fk_field(f, k) = d;
        return 0;
    case FK_BOOL:
        if (!is_bool)
            return -1;
        *(int *)fk_field(f, k) = d != 0;
        return 0;
    case FK_COUNT:
        if (is_bool || str || !(d >= 0 && d <= 1e9) || d != floor(d))
            return -1;
        *(long *)fk_field(f, k) = (long)d;
        return 0;
    case FK_MODEL:
        if (str && (strlen(str) == 0 || strlen(str) >= SIM_NAME_MAX))
            return -1;
        snprintf((char *)fk_field(f, k), SIM_NAME_MAX, "%s", str ? str : "");
        return 0;
    }
    return -1;
}

static int fk_set_json(struct faults *f, const struct fault_key *k, const cJSON *v)
{
    if (k->type == FK_MODEL && cJSON_IsNull(v))
        return fk_set(f, k, 0, 0, NULL);
    if (k->type == FK_MODEL)
        return cJSON_IsString(v) ? fk_set(f, k, 0, 0, v->valuestring) : -1;
    if (cJSON_IsBool(v))
        return fk_set(f, k, cJSON_IsTrue(v), 1, NULL);
    return cJSON_IsNumber(v) ? fk_set(f, k, v->valuedouble, 0, NULL) : -1;
}

/* A whole new setting from a JSON object (absent knobs are off). 0, or -1 with *bad = the
 * offending key (points into o). */
static int faults_parse(const cJSON *o, struct faults *out, const char **bad)
{
    const cJSON *v;
    const struct fault_key *k;

    memset(out, 0, sizeof *out);
    *bad = NULL;
    cJSON_ArrayForEach(v, o) {
        k = fk_find(v->string);
        if (!k || fk_set_json(out, k, v) != 0) {
            *bad = v->string;
            return -1;
        }
    }
    return 0;
}

static cJSON *faults_json(const struct faults *f)
{
    cJSON *o = cJSON_CreateObject();
    const struct fault_key *k;
    const char *model;

    for (size_t i = 0; i < N_FAULT_KEYS; i++) {
        k = &k_fault_keys[i];
        if (k->type == FK_RATE) {
            cJSON_AddNumberToObject(o, k->name, *(const double *)fk_cfield(f, k));
        } else if (k->type == FK_BOOL) {
            cJSON_AddBoolToObject(o, k->name, *(const int *)fk_cfield(f, k));
        } else if (k->type == FK_COUNT) {
            cJSON_AddNumberToObject(o, k->name, (double)*(const long *)fk_cfield(f, k));
        } else {
            model = fk_cfield(f, k);
            if (model[0])
                cJSON_AddStringToObject(o, k->name, model);
            else
                cJSON_AddNullToObject(o, k->name);
        }
    }
    return o;
}

/* ---- the other endpoints ---- */

static void respond_json(struct http_req *req, int status, cJSON *o)
{
    if (!o) {
        http_respond_error(req, 500, "sim_oom", NULL, "out of memory");
        return;
    }
    http_respond_json(req, status, o);
    cJSON_Delete(o);
}

static cJSON *model_json(const struct sim *s, int m)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", k_models[m].id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)s->started);
    cJSON_AddStringToObject(o, "owned_by", SIM_NAME);
    return o;
}

static void h_models(struct sim *s, struct http_req *req)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *data;

    cJSON_AddStringToObject(root, "object", "list");
    data = cJSON_AddArrayToObject(root, "data");
    for (int m = 0; m < M_COUNT; m++)
        cJSON_AddItemToArray(data, model_json(s, m));
    respond_json(req, 200, root);
}

static void h_model_one(struct sim *s, struct http_req *req, const char *id)
{
    for (int m = 0; m < M_COUNT; m++) {
        if (strcmp(id, k_models[m].id) == 0) {
            respond_json(req, 200, model_json(s, m));
            return;
        }
    }
    http_respond_error(req, 404, "model_not_found", "model", "model '%.120s' not found", id);
}

static void h_health(struct sim *s, struct http_req *req)
{
    static const char body[] = "{\"ok\":true}";

    (void)s;
    http_respond(req, 200, "application/json", body, sizeof body - 1);
}

static void h_faults_get(struct sim *s, struct http_req *req)
{
    respond_json(req, 200, faults_json(&s->faults));
}

static void h_faults_post(struct sim *s, struct http_req *req)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    struct faults nf;
    const char *bad;

    if (!cJSON_IsObject(root)) {
        http_respond_error(req, 400, "invalid_json", NULL, "body must be a JSON object");
    } else if (faults_parse(root, &nf, &bad) != 0) {
        http_respond_error(req, 400, "invalid_value", bad,
                           "bad fault setting '%.64s': unknown key, or wrong value (rates "
                           "are numbers in [0,1], counts integers >= 0, flags booleans, "
                           "fail_model a string or null)", bad);
    } else {
        s->faults = nf;
        respond_json(req, 200, faults_json(&s->faults));
    }
    cJSON_Delete(root);
}

static cJSON *outcomes_json(const uint64_t *counts)
{
    cJSON *o = cJSON_CreateObject();

    for (int i = 0; i < O_COUNT; i++)
        cJSON_AddNumberToObject(o, k_outcomes[i], (double)counts[i]);
    return o;
}

static cJSON *model_stats_json(const struct model_stats *m)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "requests", (double)m->requests);
    cJSON_AddNumberToObject(o, "streams", (double)m->streams);
    cJSON_AddNumberToObject(o, "aborted", (double)m->aborted);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)m->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)m->completion_tokens);
    cJSON_AddItemToObject(o, "by_outcome", outcomes_json(m->outcome));
    return o;
}

static void h_stats(struct sim *s, struct http_req *req)
{
    cJSON *root = cJSON_CreateObject(), *models;

    cJSON_AddStringToObject(root, "simulator", SIM_NAME);
    cJSON_AddNumberToObject(root, "requests", (double)s->stats.requests);
    cJSON_AddNumberToObject(root, "pending", s->pending);
    cJSON_AddNumberToObject(root, "aborted", (double)s->stats.aborted);
    cJSON_AddItemToObject(root, "by_outcome", outcomes_json(s->stats.outcome));
    models = cJSON_AddObjectToObject(root, "by_model");
    for (int m = 0; m < M_COUNT; m++)
        cJSON_AddItemToObject(models, k_models[m].id, model_stats_json(&s->stats.model[m]));
    respond_json(req, 200, root);
}

/* Zero the counters, forget [[sim:429-once]] inputs, reseed the PRNG; faults stay. */
static void h_reset(struct sim *s, struct http_req *req)
{
    memset(&s->stats, 0, sizeof s->stats);
    s->seen_len = 0;
    s->seen_next = 0;
    s->rng = s->seed;
    h_health(s, req);
}

static void h_chat(struct sim *s, struct http_req *req)
{
    size_t len;
    const char *body = http_req_body(req, &len);
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    struct chat_req cr;
    struct req_err e;

    s->stats.requests++;
    if (!cJSON_IsObject(root)) {
        req_fail(&e, 400, "invalid_json", NULL, "body must be a JSON object");
        goto bad;
    }
    if (parse_chat(root, &cr, &e) != 0)
        goto bad;
    serve_chat(s, req, &cr);
    cJSON_Delete(root);
    return;
bad:
    s->stats.outcome[e.status == 404 ? O_NOT_FOUND : O_BAD_REQUEST]++;
    http_respond_error(req, e.status, e.code, e.param, "%s", e.msg);
    cJSON_Delete(root);
}

/* ---- routing ---- */

struct route {
    const char *method, *path;
    void (*fn)(struct sim *s, struct http_req *req);
};

static const struct route k_routes[] = {
    {"POST", "/v1/chat/completions", h_chat},
    {"GET", "/v1/models", h_models},
    {"GET", "/healthz", h_health},
    {"GET", "/sim/faults", h_faults_get},
    {"POST", "/sim/faults", h_faults_post},
    {"GET", "/sim/stats", h_stats},
    {"POST", "/sim/reset", h_reset},
};
#define N_ROUTES (sizeof k_routes / sizeof k_routes[0])

static void respond_405(struct http_req *req, const char *path)
{
    char allow[64] = "";

    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(k_routes[i].path, path) != 0)
            continue;
        if (allow[0])
            strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
        strncat(allow, k_routes[i].method, sizeof allow - strlen(allow) - 1);
    }
    http_resp_header(req, "Allow", allow);
    http_respond_error(req, 405, "method_not_allowed", NULL, "use %s", allow);
}

static void on_request(struct http_req *req, void *data)
{
    struct sim *s = data;
    const char *method = http_req_method(req), *path = http_req_path(req);
    int path_known = 0;

    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(k_routes[i].path, path) != 0)
            continue;
        path_known = 1;
        if (strcmp(k_routes[i].method, method) == 0) {
            k_routes[i].fn(s, req);
            return;
        }
    }
    if (path_known)
        respond_405(req, path);
    else if (strcmp(method, "GET") == 0 && strncmp(path, "/v1/models/", 11) == 0)
        h_model_one(s, req, path + 11);
    else
        http_respond_error(req, 404, "not_found", NULL, "no route for %.16s %.200s (" SIM_NAME ")",
                           method, path);
}

/* ---- command line ---- */

static void usage(FILE *out)
{
    fputs(
        "briefd-modelsim - an OpenAI-compatible model SIMULATOR for briefd. It runs no model:\n"
        "it answers as phi-4-mini and gpt-oss-20b with deterministic extractive summaries.\n"
        "\n"
        "usage: briefd-modelsim [options]\n"
        "  --listen HOST:PORT     listen address (default 127.0.0.1:5273; port 0 = any)\n"
        "  --profile P            realistic | fast | zero (default realistic)\n"
        "                         realistic: phi-4-mini ttft 80 ms, 60 tok/s;\n"
        "                                    gpt-oss-20b ttft 350 ms, 25 tok/s\n"
        "                         fast: ttft 5 ms, 2000 tok/s; zero: no delay at all\n"
        "  --ttft-ms N            time to first token for every model (overrides profile)\n"
        "  --tps N                tokens per second for every model (0 = instant)\n"
        "  --error-rate P         fraction of requests answered 500 (P in [0,1])\n"
        "  --rate-limit-rate P    fraction answered 429 with Retry-After\n"
        "  --retry-after S        Retry-After seconds on 429 (default 1)\n"
        "  --hang-rate P          fraction accepted and never answered\n"
        "  --garbage-rate P       fraction answered 200 with a non-JSON body\n"
        "  --truncate-rate P      fraction answered 200 with the body cut in half\n"
        "  --fail-next N          the next N requests get 500\n"
        "  --rate-limit-next N    the next N requests get 429\n"
        "  --no-usage             omit usage\n"
        "  --no-logprobs          omit logprobs even when asked\n"
        "  --null-logprobs        send \"logprobs\": null even when asked\n"
        "  --harmony-leak         gpt-oss-20b leaks harmony channels into content\n"
        "  --fail-model NAME      every fault knob applies only to this model\n"
        "  --seed N               fault PRNG seed (default 1)\n"
        "  --quiet                no per-request log lines on stderr\n"
        "  --help                 this text\n"
        "\n"
        "Endpoints: POST /v1/chat/completions, GET /v1/models, GET /healthz,\n"
        "  GET|POST /sim/faults (JSON of the knobs above, snake_case; POST replaces all),\n"
        "  GET /sim/stats, POST /sim/reset.\n"
        "Markers in the last user message: [[sim:lowconf]] [[sim:highconf]] [[sim:fail]]\n"
        "  [[sim:fail-refine]] [[sim:429-once]] [[sim:length]] (see bench/README.md).\n"
        "Tokens: prompt_tokens = ceil(sum of message content bytes / 4);\n"
        "  completion_tokens = ceil(content bytes / 4); max_tokens N cuts content to 4N bytes.\n",
        out);
}

static int parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (end == v || *end || errno || !(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 0;
}

static int parse_listen(struct sim *s, const char *v)
{
    const char *colon = strrchr(v, ':');
    size_t hl;
    double port;

    if (!colon || parse_num(colon + 1, 0, 65535, &port) != 0 || port != floor(port))
        return -1;
    hl = (size_t)(colon - v);
    if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {
        v++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof s->host)
        return -1;
    memcpy(s->host, v, hl);
    s->host[hl] = '\0';
    s->port = (int)port;
    return 0;
}

static int parse_profile(struct sim *s, const char *v)
{
    for (int p = 0; p < P_COUNT; p++) {
        if (strcmp(v, k_profiles[p]) == 0) {
            s->profile = (enum profile)p;
            return 0;
        }
    }
    return -1;
}

static int parse_seed(struct sim *s, const char *v)
{
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-')
        return -1;
    s->seed = (uint64_t)n;
    return 0;
}

/* A fault knob as a flag: --error-rate 0.5, --no-usage, --fail-model NAME. */
static const struct fault_key *fault_flag(const char *name)
{
    char key[48];
    size_t i;

    for (i = 0; name[i] && i + 1 < sizeof key; i++)
        key[i] = name[i] == '-' ? '_' : name[i];
    key[i] = '\0';
    return fk_find(key);
}

static int set_fault_flag(struct sim *s, const struct fault_key *k, const char *v)
{
    double d;

    if (k->type == FK_BOOL)
        return fk_set(&s->faults, k, 1, 1, NULL);
    if (k->type == FK_MODEL)
        return fk_set(&s->faults, k, 0, 0, v);
    if (parse_num(v, 0, 1e9, &d) != 0)
        return -1;
    return fk_set(&s->faults, k, d, 0, NULL);
}

static int set_option(struct sim *s, const char *name, const char *v)
{
    double d;
    const struct fault_key *k = fault_flag(name);

    if (k)
        return set_fault_flag(s, k, v);
    if (strcmp(name, "listen") == 0)
        return parse_listen(s, v);
    if (strcmp(name, "profile") == 0)
        return parse_profile(s, v);
    if (strcmp(name, "seed") == 0)
        return parse_seed(s, v);
    if (strcmp(name, "quiet") == 0) {
        s->quiet = 1;
        return 0;
    }
    if (strcmp(name, "ttft-ms") == 0)
        return parse_num(v, 0, SIM_MAX_DELAY_MS, &s->ttft_override);
    if (strcmp(name, "tps") == 0)
        return parse_num(v, 0, 1e9, &s->tps_override);
    if (strcmp(name, "retry-after") == 0 && parse_num(v, 0, 86400, &d) == 0 && d == floor(d)) {
        s->retry_after = (unsigned)d;
        return 0;
    }
    return -1;
}

static int takes_value(const char *name)
{
    const struct fault_key *k = fault_flag(name);

    if (k)
        return k->type != FK_BOOL;
    return strcmp(name, "quiet") != 0 && strcmp(name, "help") != 0;
}

/* 0: run; 1: --help printed; -1: bad usage (reported). */
static int parse_args(struct sim *s, int argc, char **argv)
{
    char name[48];
    const char *a, *eq, *v;
    size_t n;
    int i;

    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            goto bad;
        a += 2;
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        if (n == 0 || n >= sizeof name)
            goto bad;
        memcpy(name, a, n);
        name[n] = '\0';
        if (strcmp(name, "help") == 0)
            return 1;
        v = eq ? eq + 1 : NULL;
        if (takes_value(name) && !v && i + 1 < argc)
            v = argv[++i];
        if (takes_value(name) ? !v : v != NULL)
            goto bad;
        if (set_option(s, name, v) != 0)
            goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "briefd-modelsim: bad argument '%s' (see --help)\n",
            argv[i < argc ? i : argc - 1]);
    return -1;
}

/* ---- process lifecycle ---- */

static void on_server_closed(void *data)
{
    struct sim *s = data;

    s->server = NULL;
    for (struct job *j = s->jobs; j; j = j->next)
        job_release(j);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sim *s = h->data;

    if (s->closing)
        return;
    s->closing = 1;
    if (!s->quiet)
        fprintf(stderr, "briefd-modelsim: signal %d, shutting down\n", signum);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    http_server_close(s->server, on_server_closed, s);
}

static int start_signals(struct sim *s)
{
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_term);
    s->sig_int.data = s;
    s->sig_term.data = s;
    if (uv_signal_start(&s->sig_int, on_signal, SIGINT) != 0)
        return -1;
    return uv_signal_start(&s->sig_term, on_signal, SIGTERM);
}

static void sim_defaults(struct sim *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->host, sizeof s->host, "%s", SIM_DEFAULT_HOST);
    s->port = SIM_DEFAULT_PORT;
    s->profile = P_REALISTIC;
    s->ttft_override = -1;
    s->tps_override = -1;
    s->retry_after = 1;
    s->seed = 1;
    s->started = time(NULL);
}

static void print_banner(const struct sim *s)
{
    int v6 = strchr(s->host, ':') != NULL;

    printf("%s listening on http://%s%s%s:%d/v1 profile=%s\n", SIM_NAME, v6 ? "[" : "",
           s->host, v6 ? "]" : "", http_server_port(s->server), k_profiles[s->profile]);
    fflush(stdout);
}

static int run(struct sim *s)
{
    struct http_limits lim;
    int rc;

    http_limits_default(&lim);
    lim.max_body = SIM_MAX_BODY;
    if (start_signals(s) != 0) {
        fprintf(stderr, "briefd-modelsim: cannot install signal handlers\n");
        goto fail;
    }
    rc = http_server_start(s->loop, s->host, s->port, &lim, on_request, s, &s->server);
    if (rc != 0) {
        fprintf(stderr, "briefd-modelsim: cannot listen on %s:%d: %s\n", s->host, s->port,
                uv_strerror(rc));
        goto fail;
    }
    print_banner(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return 0;
fail:
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_run(s->loop, UV_RUN_DEFAULT);
    return -1;
}

int main(int argc, char **argv)
{
    static struct sim sim;
    uv_loop_t loop;
    int rc;

    sim_defaults(&sim);
    rc = parse_args(&sim, argc, argv);
    if (rc > 0)
        usage(stdout);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    sim.rng = sim.seed;
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&loop) != 0)
        return 1;
    sim.loop = &loop;
    rc = run(&sim);
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "briefd-modelsim: loop not empty at exit\n");
    return rc == 0 ? 0 : 1;
}
