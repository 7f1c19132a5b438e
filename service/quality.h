/* quality.h - the arithmetic of an evaluation (docs/EVALUATION.md): means and percentiles,
 * a deterministic bootstrap interval of a mean, and RouteLLM's measures of a router -
 * PGR (performance gap recovered), APGR (its average over the refine rate) and CPT (the
 * refine rate needed for a given PGR). Pure: no I/O, no clock, no global state; the
 * bootstrap draws from its own generator seeded by the caller.
 *
 * Definitions:
 *  - percentile p (0..1) of n values: sorted x, rank h = p (n - 1), linear interpolation
 *    between x[floor h] and x[ceil h];
 *  - bootstrap interval of the mean at level L: B resamples of n values drawn with
 *    replacement (indices from splitmix64 seeded with seed, reduced with Lemire's
 *    multiply-shift), the mean of each, and the percentiles (1 - L)/2 and (1 + L)/2 of
 *    those B means (percentile method);
 *  - PGR of a routing that scores q: (q - q_draft) / (q_refine - q_draft), defined only when
 *    the gap q_refine - q_draft is > 0;
 *  - the PGR curve of a set of routings, each a point (refine rate r in [0, 1], PGR): the
 *    points (0, 0) (never refine) and (1, 1) (always refine) are added, and the curve is
 *    their upper envelope, the upper concave hull: what mixing two routings at random can
 *    reach, so a routing worse than such a mix does not lower it;
 *  - APGR: the area under that curve over r in [0, 1] (trapezoids between its vertices);
 *  - CPT(x): the smallest r at which the curve reaches PGR x, by linear interpolation along
 *    it; none when the curve never reaches x.
 *
 * Ownership: inputs are read-only and never kept; outputs are written into caller-owned
 * memory. */
#ifndef BRIEFD_QUALITY_H
#define BRIEFD_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#define QUALITY_MAX_VALUES 10000000 /* values a bootstrap or percentile accepts */

/* Mean of x[0..n); NAN when n == 0. */
double quality_mean(const double *x, size_t n);

/* Percentile p (0..1) of x[0..n) (x is not modified); NAN when n == 0. */
double quality_percentile(const double *x, size_t n, double p);

/* Bootstrap interval of the mean of x[0..n) at level (0..1), with resamples >= 1 and the
 * given seed. Returns 0 with *lo <= *hi, BD_EINVAL (n == 0, bad level or resamples, n over
 * QUALITY_MAX_VALUES) or BD_ENOMEM. The same inputs always give the same interval. */
int quality_bootstrap(const double *x, size_t n, size_t resamples, uint64_t seed, double level,
                      double *lo, double *hi);

/* PGR of quality q; NAN when the gap q_refine - q_draft is not > 0 (or not finite). */
double quality_pgr(double q, double q_draft, double q_refine);

/* A routing: its refine rate and its PGR. */
struct quality_point {
    double rate;
    double pgr;
};

/* The PGR curve of pts[0..n) (points with a rate outside [0, 1] or a non-finite value are
 * left out) into hull (room for n + 2 points): *nhull vertices by increasing rate, from
 * (0, 0) to (1, 1). Returns 0, or BD_ENOMEM. */
int quality_envelope(const struct quality_point *pts, size_t n, struct quality_point *hull,
                     size_t *nhull);

/* APGR of pts[0..n): 0 and *out, or BD_ENOMEM. */
int quality_apgr(const struct quality_point *pts, size_t n, double *out);

/* CPT(x) of pts[0..n): 0 and *out (a rate in [0, 1]); 1 when the curve never reaches x
 * (*out is then NAN); or BD_ENOMEM. */
int quality_cpt(const struct quality_point *pts, size_t n, double x, double *out);

#endif
