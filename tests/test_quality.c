/* test_quality.c - the evaluation's arithmetic on hand-computed cases: mean, percentiles,
 * the bootstrap interval (contains the mean, shrinks with n, deterministic), PGR, the
 * envelope, APGR (a straight line is 0.5, a step, dominated points) and CPT. */
#include <math.h>
#include <stdlib.h>

#include "bderr.h"
#include "quality.h"
#include "tcheck.h"

static void test_mean_percentile(void)
{
    const double x[] = {4, 1, 3, 2};
    CHECK_NEAR(quality_mean(x, 4), 2.5, 0);
    CHECK(isnan(quality_mean(x, 0)));
    CHECK_NEAR(quality_percentile(x, 4, 0.5), 2.5, 1e-12);
    CHECK_NEAR(quality_percentile(x, 4, 0.95), 3.85, 1e-12);
    CHECK_NEAR(quality_percentile(x, 4, 0), 1, 0);
    CHECK_NEAR(quality_percentile(x, 4, 1), 4, 0);
    CHECK_NEAR(quality_percentile(x, 1, 0.95), 4, 0);
    CHECK(isnan(quality_percentile(x, 0, 0.5)));
    CHECK(x[0] == 4 && x[1] == 1); /* not sorted in place */
}

static void test_bootstrap(void)
{
    double small[20], big[200], lo, hi, lo2, hi2, m;
    const double same[] = {3, 3, 3};
    for (int i = 0; i < 20; i++)
        small[i] = 1 + (i * 7) % 5; /* values 1..5 */
    for (int i = 0; i < 200; i++)
        big[i] = small[i % 20];
    m = quality_mean(small, 20);
    CHECK(quality_bootstrap(small, 20, 2000, 42, 0.95, &lo, &hi) == 0);
    CHECK(lo < m && m < hi);
    CHECK(lo >= 1 && hi <= 5);
    /* deterministic: the same inputs, the same interval */
    CHECK(quality_bootstrap(small, 20, 2000, 42, 0.95, &lo2, &hi2) == 0);
    CHECK(lo2 == lo && hi2 == hi);
    /* ten times the data (same mean): a narrower interval around the same mean */
    CHECK(quality_bootstrap(big, 200, 2000, 42, 0.95, &lo2, &hi2) == 0);
    CHECK_NEAR(quality_mean(big, 200), m, 1e-12);
    CHECK(lo2 < m && m < hi2);
    CHECK(hi2 - lo2 < (hi - lo) / 2);
    /* about a 1/sqrt(n) shrink: sqrt(10) ~ 3.16 */
    CHECK((hi - lo) / (hi2 - lo2) > 2.5 && (hi - lo) / (hi2 - lo2) < 4);
    /* a wider level gives a wider interval */
    CHECK(quality_bootstrap(small, 20, 2000, 42, 0.5, &lo2, &hi2) == 0);
    CHECK(lo2 > lo && hi2 < hi);
    /* constant data, a single value */
    CHECK(quality_bootstrap(same, 3, 100, 1, 0.95, &lo, &hi) == 0);
    CHECK(lo == 3 && hi == 3);
    CHECK(quality_bootstrap(same, 1, 100, 1, 0.95, &lo, &hi) == 0);
    CHECK(lo == 3 && hi == 3);
    /* refused */
    CHECK(quality_bootstrap(same, 0, 100, 1, 0.95, &lo, &hi) == BD_EINVAL);
    CHECK(quality_bootstrap(same, 3, 0, 1, 0.95, &lo, &hi) == BD_EINVAL);
    CHECK(quality_bootstrap(same, 3, 10, 1, 1, &lo, &hi) == BD_EINVAL);
    CHECK(quality_bootstrap(same, 3, 10, 1, 0, &lo, &hi) == BD_EINVAL);
}

static void test_bootstrap_seed(void)
{
    double x[30], lo1, hi1, lo2, hi2;
    for (int i = 0; i < 30; i++)
        x[i] = (i % 3) + (i % 7) * 0.5;
    CHECK(quality_bootstrap(x, 30, 500, 1, 0.95, &lo1, &hi1) == 0);
    CHECK(quality_bootstrap(x, 30, 500, 2, 0.95, &lo2, &hi2) == 0);
    CHECK(lo1 != lo2 || hi1 != hi2); /* another seed, other resamples */
    CHECK(fabs(lo1 - lo2) < 0.3 && fabs(hi1 - hi2) < 0.3);
}

static void test_pgr(void)
{
    CHECK_NEAR(quality_pgr(3.5, 3, 4), 0.5, 1e-12);
    CHECK_NEAR(quality_pgr(3, 3, 4), 0, 0);
    CHECK_NEAR(quality_pgr(4, 3, 4), 1, 0);
    CHECK_NEAR(quality_pgr(4.5, 3, 4), 1.5, 1e-12);
    CHECK_NEAR(quality_pgr(2.5, 3, 4), -0.5, 1e-12);
    CHECK(isnan(quality_pgr(3.5, 4, 4)));   /* no gap */
    CHECK(isnan(quality_pgr(3.5, 4, 3)));   /* refine is worse */
    CHECK(isnan(quality_pgr(NAN, 3, 4)));
}

#define P(r, g) ((struct quality_point){(r), (g)})

static double apgr(const struct quality_point *p, size_t n)
{
    double a = NAN;
    CHECK(quality_apgr(p, n, &a) == 0);
    return a;
}

static double cpt(const struct quality_point *p, size_t n, double x)
{
    double r = NAN;
    CHECK(quality_cpt(p, n, x, &r) == 0);
    return r;
}

static void test_apgr(void)
{
    const struct quality_point line[] = {P(0.25, 0.25), P(0.5, 0.5), P(0.75, 0.75)};
    const struct quality_point step[] = {P(0.2, 1)};
    const struct quality_point below[] = {P(0.5, 0.2), P(0.7, 0.1)};
    const struct quality_point above[] = {P(0.5, 1.2)};
    const struct quality_point dominated[] = {P(0.4, 0.6), P(0.2, 0.6), P(0.6, 0.9)};
    const struct quality_point same_rate[] = {P(0.5, 0.1), P(0.5, 0.9)};
    const struct quality_point junk[] = {P(NAN, 0.9), P(0.5, INFINITY), P(1.5, 1), P(-0.1, 1)};
    CHECK_NEAR(apgr(line, 3), 0.5, 1e-12);
    CHECK_NEAR(apgr(NULL, 0), 0.5, 1e-12);          /* only (0,0) and (1,1) */
    CHECK_NEAR(apgr(step, 1), 0.9, 1e-12);          /* 0.2 * 1 / 2 + 0.8 * 1 */
    CHECK_NEAR(apgr(below, 2), 0.5, 1e-12);         /* a mix of the ends does better */
    CHECK_NEAR(apgr(above, 1), 0.85, 1e-12);        /* 0.5 * 1.2 / 2 + 0.5 * 2.2 / 2 */
    CHECK_NEAR(apgr(dominated, 3), 0.74, 1e-12);    /* 0.06 + 0.3 + 0.38 */
    CHECK_NEAR(apgr(same_rate, 2), 0.7, 1e-12);     /* 0.5 * 0.9 / 2 + 0.5 * 1.9 / 2 */
    CHECK_NEAR(apgr(junk, 4), 0.5, 1e-12);
}

static void test_envelope(void)
{
    const struct quality_point dominated[] = {P(0.4, 0.6), P(0.2, 0.6), P(0.6, 0.9)};
    struct quality_point hull[5];
    size_t n = 0;
    CHECK(quality_envelope(dominated, 3, hull, &n) == 0);
    CHECK(n == 4);
    CHECK(hull[0].rate == 0 && hull[0].pgr == 0);
    CHECK(hull[1].rate == 0.2 && hull[1].pgr == 0.6);
    CHECK(hull[2].rate == 0.6 && hull[2].pgr == 0.9);
    CHECK(hull[3].rate == 1 && hull[3].pgr == 1);
}

static void test_cpt(void)
{
    const struct quality_point line[] = {P(0.25, 0.25), P(0.5, 0.5), P(0.75, 0.75)};
    const struct quality_point step[] = {P(0.2, 1)};
    const struct quality_point dominated[] = {P(0.4, 0.6), P(0.2, 0.6), P(0.6, 0.9)};
    const struct quality_point above[] = {P(0.5, 1.2)};
    double r;
    CHECK_NEAR(cpt(line, 3, 0.5), 0.5, 1e-12);
    CHECK_NEAR(cpt(line, 3, 0.8), 0.8, 1e-12);
    CHECK_NEAR(cpt(step, 1, 0.5), 0.1, 1e-12);      /* halfway up the first segment */
    CHECK_NEAR(cpt(step, 1, 0.8), 0.16, 1e-12);
    CHECK_NEAR(cpt(dominated, 3, 0.8), 0.2 + 0.4 * (0.2 / 0.3), 1e-12);
    CHECK_NEAR(cpt(dominated, 3, 0.6), 0.2, 1e-12); /* exactly at a vertex */
    CHECK_NEAR(cpt(above, 1, 1.1), 0.5 * 1.1 / 1.2, 1e-12);
    CHECK_NEAR(cpt(line, 3, 0), 0, 0);
    CHECK_NEAR(cpt(line, 3, -1), 0, 0);
    CHECK(quality_cpt(line, 3, 1.5, &r) == 1 && isnan(r)); /* the curve never gets there */
}

int main(void)
{
    test_mean_percentile();
    test_bootstrap();
    test_bootstrap_seed();
    test_pgr();
    test_apgr();
    test_envelope();
    test_cpt();
    return tcheck_summary("test_quality");
}
