/* fuzz_judge.c - libFuzzer harness: the judge's answer reader and the cheap checks, both fed
 * model output (untrusted). */
/*
 * Input layout: the bytes up to the first '\x01' are a judge answer's content (passed without
 * a terminating NUL, as the model client holds it) and also a brief; the bytes after it are
 * the brief's document (the whole input when there is no '\x01').
 * Oracles: judge_parse: a valid judgement has every score in 1..5, overall their mean and
 * an empty reason; a null one has a reason; the rationale is NUL-terminated within its
 * bound. judge_find_object: a found span starts with '{', ends with '}' and lies inside
 * the input. checks_run: counts and listings respect their bounds; each listed number is
 * NUL-terminated, non-empty and starts with a digit or '.'; a brief checked against itself
 * as the document has no unsupported number.
 */
#include "checks.h"
#include "judge.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_judge: " __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static void check_judgement(const uint8_t *data, size_t n)
{
    struct judgement j;
    size_t a, e;

    judge_parse((const char *)data, n, &j);
    if (!memchr(j.rationale, 0, sizeof j.rationale) || !memchr(j.why, 0, sizeof j.why))
        FAIL("unterminated rationale or reason");
    if (j.valid) {
        int s[3] = {j.coherence, j.faithfulness, j.brevity};
        for (int k = 0; k < 3; k++)
            if (s[k] < JUDGE_MIN_SCORE || s[k] > JUDGE_MAX_SCORE)
                FAIL("score %d out of range in a valid judgement", s[k]);
        if (j.overall != (double)(s[0] + s[1] + s[2]) / 3.0 || j.why[0])
            FAIL("valid judgement with overall %g, reason '%s'", j.overall, j.why);
    } else if (!j.why[0]) {
        FAIL("null judgement without a reason");
    }
    if (judge_find_object((const char *)data, n, &a, &e) == 0 &&
        (a >= e || e > n || data[a] != '{' || data[e - 1] != '}'))
        FAIL("object span [%zu, %zu) of %zu bytes", a, e, n);
}

static void check_checks(const char *brief, size_t bn, const char *doc, size_t dn)
{
    struct checks c;

    if (checks_run(brief, bn, doc, dn, 120, &c) != 0)
        return; /* out of memory */
    if (c.n_listed > CHECKS_MAX_LISTED || c.n_listed > c.n_unsupported ||
        c.n_unsupported > CHECKS_MAX_BRIEF_NUMBERS || c.words > bn)
        FAIL("counts: listed %zu, unsupported %zu, words %zu of %zu bytes", c.n_listed,
             c.n_unsupported, c.words, bn);
    if (c.over_max_words != (c.words > 120))
        FAIL("over_max_words %d with %zu words", c.over_max_words, c.words);
    for (size_t i = 0; i < c.n_listed; i++) {
        const char *u = c.unsupported[i];
        if (!memchr(u, 0, CHECKS_MAX_NUMBER) || !u[0] || !(u[0] == '.' || (u[0] >= '0' &&
                                                                            u[0] <= '9')))
            FAIL("listed number %zu malformed", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 1, size);
    size_t bn = sep ? (size_t)(sep - data) : size;
    const char *doc = sep ? (const char *)sep + 1 : (const char *)data;
    size_t dn = sep ? size - bn - 1 : size;
    struct checks self;

    check_judgement(data, bn);
    check_checks((const char *)data, bn, doc, dn);
    if (checks_run((const char *)data, bn, (const char *)data, bn, 120, &self) == 0 &&
        self.n_unsupported != 0 && bn <= 4096) /* small: every number of it is considered */
        FAIL("a brief lacks %zu of its own numbers", self.n_unsupported);
    return 0;
}
