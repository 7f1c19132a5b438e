/* policy.c - what the policies share: verdict names and the logprob summary. */
#include "policy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *verdict_name(enum verdict_kind v)
{
    switch (v) {
    case VERDICT_KEEP:
        return "keep";
    case VERDICT_REFINE:
        return "refine";
    case VERDICT_ABSTAIN:
        return "abstain";
    }
    return "unknown";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 10th percentile by linear interpolation between the closest ranks (numpy's default).
 * Sorts a copy; if that copy cannot be allocated, falls back to the minimum (the most
 * conservative low quantile). */
static double p10_of(const double *lp, size_t n, double min)
{
    double *s = malloc(n * sizeof *s);
    double pos, frac, p;
    size_t lo;

    if (!s)
        return min;
    memcpy(s, lp, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    pos = 0.1 * (double)(n - 1);
    lo = (size_t)pos;
    frac = pos - (double)lo;
    p = s[lo];
    if (lo + 1 < n)
        p += frac * (s[lo + 1] - s[lo]);
    free(s);
    return p;
}

void lp_summarize(const double *lp, size_t n, struct lp_summary *out)
{
    double sum = 0, min;

    memset(out, 0, sizeof *out);
    if (!lp || n == 0)
        return;
    min = lp[0];
    for (size_t i = 0; i < n; i++) {
        sum += lp[i];
        if (lp[i] < min)
            min = lp[i];
    }
    out->present = 1;
    out->n = n;
    out->mean = sum / (double)n;
    out->min = min;
    out->p10 = p10_of(lp, n, min);
}
