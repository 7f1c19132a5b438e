/* quality.c - means, percentiles, bootstrap intervals, PGR, APGR and CPT (see quality.h). */
#include "quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bderr.h"

double quality_mean(const double *x, size_t n)
{
    double s = 0;

    if (n == 0)
        return NAN;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Percentile p of the sorted s[0..n), n > 0. */
static double sorted_percentile(const double *s, size_t n, double p)
{
    double h = p * (double)(n - 1);
    size_t lo = (size_t)floor(h), hi = (size_t)ceil(h);

    if (p <= 0)
        return s[0];
    if (p >= 1 || hi >= n)
        return s[n - 1];
    return s[lo] + (h - (double)lo) * (s[hi] - s[lo]);
}

double quality_percentile(const double *x, size_t n, double p)
{
    double *s, v;

    if (n == 0 || n > QUALITY_MAX_VALUES)
        return NAN;
    s = malloc(n * sizeof(*s));
    if (!s)
        return NAN;
    memcpy(s, x, n * sizeof(*s));
    qsort(s, n, sizeof(*s), cmp_double);
    v = sorted_percentile(s, n, p);
    free(s);
    return v;
}

/* splitmix64: the state advances by a constant, the output is a mix of it. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform index below n (n <= 2^32): the high half of a 32 x 32-bit product. */
static size_t draw(uint64_t *state, size_t n)
{
    uint64_t r = splitmix64(state) >> 32;

    return (size_t)((r * (uint64_t)n) >> 32);
}

int quality_bootstrap(const double *x, size_t n, size_t resamples, uint64_t seed, double level,
                      double *lo, double *hi)
{
    double *means;
    uint64_t state = seed;

    if (n == 0 || n > QUALITY_MAX_VALUES || resamples == 0 || resamples > QUALITY_MAX_VALUES ||
        !(level > 0 && level < 1))
        return BD_EINVAL;
    means = malloc(resamples * sizeof(*means));
    if (!means)
        return BD_ENOMEM;
    for (size_t b = 0; b < resamples; b++) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += x[draw(&state, n)];
        means[b] = s / (double)n;
    }
    qsort(means, resamples, sizeof(*means), cmp_double);
    *lo = sorted_percentile(means, resamples, (1 - level) / 2);
    *hi = sorted_percentile(means, resamples, (1 + level) / 2);
    free(means);
    return 0;
}

double quality_pgr(double q, double q_draft, double q_refine)
{
    double gap = q_refine - q_draft;

    if (!isfinite(q) || !isfinite(gap) || !(gap > 0))
        return NAN;
    return (q - q_draft) / gap;
}

static int cmp_point(const void *a, const void *b)
{
    const struct quality_point *p = a, *q = b;

    if (p->rate != q->rate)
        return p->rate < q->rate ? -1 : 1;
    return p->pgr > q->pgr ? -1 : p->pgr < q->pgr; /* best first at one rate */
}

/* > 0 when o -> a -> b turns left (counter-clockwise), 0 when they are collinear. */
static double cross(const struct quality_point *o, const struct quality_point *a,
                    const struct quality_point *b)
{
    return (a->rate - o->rate) * (b->pgr - o->pgr) - (a->pgr - o->pgr) * (b->rate - o->rate);
}

int quality_envelope(const struct quality_point *pts, size_t n, struct quality_point *hull,
                     size_t *nhull)
{
    struct quality_point *p = malloc((n + 2) * sizeof(*p));
    size_t m = 0, h = 0;

    if (!p)
        return BD_ENOMEM;
    p[m++] = (struct quality_point){0, 0};
    p[m++] = (struct quality_point){1, 1};
    for (size_t i = 0; i < n; i++)
        if (isfinite(pts[i].rate) && isfinite(pts[i].pgr) && pts[i].rate >= 0 &&
            pts[i].rate <= 1)
            p[m++] = pts[i];
    qsort(p, m, sizeof(*p), cmp_point);
    for (size_t i = 0; i < m; i++) {
        if (h > 0 && p[i].rate == hull[h - 1].rate)
            continue; /* a worse routing at the same rate */
        while (h >= 2 && cross(&hull[h - 2], &hull[h - 1], &p[i]) >= 0)
            h--;
        hull[h++] = p[i];
    }
    free(p);
    *nhull = h;
    return 0;
}

int quality_apgr(const struct quality_point *pts, size_t n, double *out)
{
    struct quality_point *hull = malloc((n + 2) * sizeof(*hull));
    size_t h;
    double area = 0;

    if (!hull || quality_envelope(pts, n, hull, &h) != 0) {
        free(hull);
        return BD_ENOMEM;
    }
    for (size_t i = 1; i < h; i++)
        area += (hull[i].rate - hull[i - 1].rate) * (hull[i].pgr + hull[i - 1].pgr) / 2;
    free(hull);
    *out = area;
    return 0;
}

int quality_cpt(const struct quality_point *pts, size_t n, double x, double *out)
{
    struct quality_point *hull = malloc((n + 2) * sizeof(*hull));
    size_t h;
    int rc = 1;

    *out = NAN;
    if (!hull || quality_envelope(pts, n, hull, &h) != 0) {
        free(hull);
        return BD_ENOMEM;
    }
    for (size_t i = 0; i < h && rc == 1; i++) {
        const struct quality_point *a = i ? &hull[i - 1] : NULL, *b = &hull[i];
        if (b->pgr < x)
            continue;
        if (!a || a->pgr >= x)
            *out = b->rate;
        else
            *out = a->rate + (x - a->pgr) * (b->rate - a->rate) / (b->pgr - a->pgr);
        rc = 0;
    }
    free(hull);
    return rc;
}
