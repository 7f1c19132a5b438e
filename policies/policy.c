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

/* Rearrange s[0..n) so that s[k] holds the value it would hold sorted, with nothing greater
 * before it and nothing smaller after it (Hoare's selection: linear on average). */
static void select_kth(double *s, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;

    while (lo < hi) {
        double pivot = s[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (s[i] < pivot)
                i++;
            while (s[j] > pivot)
                j--;
            if (i <= j) {
                double t = s[i];
                s[i] = s[j];
                s[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return; /* between j and i: all equal to the pivot */
    }
}

/* 10th percentile by linear interpolation between the closest ranks (numpy's default).
 * Selects in a copy (no full sort: the two ranks around the 10th percentile are all it
 * needs); if that copy cannot be allocated, falls back to the minimum (the most
 * conservative low quantile). */
static double p10_of(const double *lp, size_t n, double min)
{
    double local[256], *s = n <= 256 ? local : malloc(n * sizeof *s);
    double pos, frac, p;
    size_t lo;

    if (!s)
        return min;
    memcpy(s, lp, n * sizeof *s);
    pos = 0.1 * (double)(n - 1);
    lo = (size_t)pos;
    frac = pos - (double)lo;
    select_kth(s, n, lo);
    p = s[lo];
    if (lo + 1 < n) {
        double next = s[lo + 1]; /* the smallest of what follows lo */
        for (size_t i = lo + 2; i < n; i++)
            if (s[i] < next)
                next = s[i];
        p += frac * (next - p);
    }
    if (s != local)
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
