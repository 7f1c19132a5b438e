/* tcheck.h - the tiny assertion layer of briefd's unit tests.
 * CHECK(cond) records a failure (file:line and the expression) and goes on; each test
 * program ends with `return tcheck_summary("name");`, which prints "N passed, M failed"
 * and returns non-zero if anything failed. */
#ifndef BRIEFD_TCHECK_H
#define BRIEFD_TCHECK_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int tcheck_pass_, tcheck_fail_;
#define CHECK(cond) do { if (cond) tcheck_pass_++; else { tcheck_fail_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (a_ && b_ && strcmp(a_, b_) == 0) tcheck_pass_++; else { tcheck_fail_++; \
    fprintf(stderr, "%s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n", __FILE__, \
            __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } } while (0)
#define CHECK_NEAR(a, b, eps) do { double a_ = (a), b_ = (b); \
    if (fabs(a_ - b_) <= (eps)) tcheck_pass_++; else { tcheck_fail_++; \
    fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.12g, expected %.12g\n", __FILE__, \
            __LINE__, #a, a_, b_); } } while (0)

static inline int tcheck_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tcheck_pass_, tcheck_fail_);
    return tcheck_fail_ ? 1 : 0;
}
#endif
