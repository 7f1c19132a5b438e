/* checks.h - cheap checks of a brief against its document, without any model: how many words
 * it has, whether it is over the word limit, and which numbers it states that the document
 * does not (the commonest invention in briefs). Pure: no I/O, no clock.
 *
 * Words: a word is a run of non-whitespace bytes (ASCII whitespace) holding at least one
 * ASCII letter or digit, or a non-ASCII character outside General Punctuation (U+2000 to
 * U+206F: dashes, bullets, quotes). So "-" and "•" bullets and spaced dashes are not words;
 * "état" and "2024" are. A leading "Brief:" or "Summary:" label (any case) is not counted.
 *
 * Numbers (docs/EVALUATION.md, "Cheap checks"): a number starts with a digit not directly
 * after an ASCII letter ("Q3", "FY24", "A320" are names, not numbers) and goes on over
 * digits, a "," followed by exactly three digits (thousands: "1,200" is 1200), and one "."
 * followed by a digit (the decimal point: "." always is one). It is compared as a value:
 * grouping commas, leading zeros and trailing decimal zeros do not matter ("1,200" = "1200",
 * "3.50" = "3.5", "05" = "5"), and what surrounds it does not either ("12%", "$12", "12th",
 * "12m" are all 12). A token with two or more dots ("1.2.3") is compared as written, and so
 * is one of CHECKS_MAX_NUMBER bytes or more (by its first CHECKS_MAX_NUMBER - 1, commas
 * aside). A brief's number is supported when the document has the same value, or a value
 * with more decimals that rounds to it (half away from zero: "12.5" is supported by
 * "12.47", "3" by "3.4"). Besides its digits, the document supplies the numbers it spells out: "one" to
 * "twenty", the tens to "ninety", the ordinals "first" to "twelfth", and the month names
 * ("May", "Sept." ...: 1 to 12, so "2024-05-01" is supported by "May 1, 2024"). Scale words
 * are not converted: "1.2 million" and "1,200,000" do not support each other.
 *
 * Ownership: struct checks is the caller's and holds everything (no allocation to free);
 * functions taking a cJSON object add members to it (the object stays the caller's). */
#ifndef BRIEFD_CHECKS_H
#define BRIEFD_CHECKS_H

#include <stddef.h>

struct cJSON;

#define CHECKS_MAX_LISTED 32        /* unsupported numbers listed (all are counted) */
#define CHECKS_MAX_NUMBER 48        /* bytes kept of one listed number (as written) */
#define CHECKS_MAX_NUMBERS 100000  /* numbers of a document considered (the first ones) */
#define CHECKS_MAX_BRIEF_NUMBERS 1000 /* numbers of a brief checked (the first ones) */

struct checks {
    size_t words;
    int over_max_words;            /* words > max_words */
    size_t n_unsupported;          /* distinct numbers of the brief the document lacks */
    size_t n_listed;               /* of which listed: the first CHECKS_MAX_LISTED */
    char unsupported[CHECKS_MAX_LISTED][CHECKS_MAX_NUMBER]; /* as written in the brief */
};

/* The number of words of s[0..len) (rule above). */
size_t checks_words(const char *s, size_t len);

/* Run every check of brief (brief_len bytes) against doc (doc_len bytes) with the limit
 * max_words. Returns 0, or BD_ENOMEM (out then says nothing about numbers). */
int checks_run(const char *brief, size_t brief_len, const char *doc, size_t doc_len,
               int max_words, struct checks *out);

/* Add "words", "over_max_words" and "unsupported_numbers" (an array of strings) to obj.
 * Returns 0 or BD_ENOMEM. */
int checks_add_json(const struct checks *c, struct cJSON *obj);

/* checks_run() then checks_add_json(), for the pipeline: brief and doc NUL-terminated. */
int checks_signals(struct cJSON *obj, const char *brief, const char *doc, int max_words);

#endif
