/* text.h - how the simulated models write: the prompt read as a document and a word target,
 * an extractive summary (sentences scored by word frequency), tokens of 4 bytes, logprobs.
 *
 * Everything here is a pure function of its input: the same prompt gives the same brief,
 * tokens and logprobs. Nothing reads the clock or the settings.
 *
 * Ownership: a struct text_answer owns content, reasoning, tok and lp (malloc'd);
 * text_answer_free() releases them and leaves the answer zeroed. After a failed call the
 * answer may hold part of its fields: free it all the same. */
#ifndef SIM_TEXT_H
#define SIM_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define TEXT_MAX_DOC ((size_t)1 << 20)  /* bytes of a document that are analysed */
#define TEXT_TARGET_MIN 25              /* bounds of a default word target */
#define TEXT_TARGET_MAX 150

struct text_answer {
    char *content;          /* NUL-terminated */
    size_t len;
    char *reasoning;        /* the refine model's reasoning, or NULL */
    size_t *tok;            /* token i is content[tok[i] .. tok[i+1]); n_tok + 1 entries */
    size_t n_tok;
    double *lp;             /* n_tok logprobs */
    int cut;                /* the content was cut at the token limit */
};

/* The brief for input (the last user message): the extractive draft (refine 0) or the tidy
 * "Brief: ..." with reasoning (refine 1). 0, or BD_ENOMEM. */
int text_brief(const char *input, int refine, struct text_answer *a);
/* Replace content by an answer of our own (copied; for the judge). 0 or BD_ENOMEM. */
int text_set_content(struct text_answer *a, const char *content, size_t len);
/* gpt-oss harmony channels leaked into content (reasoning moves into it). 0 or BD_ENOMEM. */
int text_harmony_leak(struct text_answer *a);
/* Cut content to 4 * max_tokens bytes (back to a UTF-8 boundary) when it is longer; sets
 * a->cut. max_tokens <= 0: no limit. Call before text_tokenize. */
void text_cut(struct text_answer *a, long max_tokens);
/* ceil(len / 4) tokens (see tok). 0 or BD_ENOMEM. */
int text_tokenize(struct text_answer *a);
/* Logprobs around mean: token i deviates by +-d (consecutive tokens cancel, |d| <= spread),
 * from seed and i; rounded to 4 decimals, never above 0. */
void text_logprobs(struct text_answer *a, double mean, double spread, uint64_t seed);
/* The default mean for an input hash: in [-0.6, -0.2]; its spread is TEXT_DEFAULT_SPREAD. */
double text_default_mean(uint64_t input_hash);
#define TEXT_DEFAULT_SPREAD 0.15
void text_answer_free(struct text_answer *a);

/* Helpers shared with the judge. */
int text_is_space(char c);
size_t text_count_words(const char *s, size_t n);
/* Length of a list bullet at s ("- ", "* ", "+ ", "• ", "12. ", "3) ") and its spaces, or 0. */
size_t text_bullet_len(const char *s, size_t n);
/* FNV-1a of s[0..n) with ASCII letters folded to lower case. */
uint64_t text_hash_folded(const char *s, size_t n);

#endif
