/* surface_stats.c - the statistics half of surface.h: percentiles as numpy, torch, plastimatch and
 * surface-distance compute them, numpy's pairwise summation, and the pooling of the two directed
 * distance lists into the metrics under each convention, with its empty-mask values. */
#include "surface.h"
#include "surface_int.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Wirth's selection: afterwards a[k] is the k-th smallest (0-based), a[0..k) <= a[k] <= a(k..n). */
static double select_k(double *a, uint64_t n, uint64_t k)
{
    int64_t l = 0, m = (int64_t)n - 1, kk = (int64_t)k;
    while (l < m) {
        double x = a[kk];
        int64_t i = l, j = m;
        do {
            while (a[i] < x) i++;
            while (x < a[j]) j--;
            if (i <= j) {
                double t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < kk) l = i;
        if (kk < i) m = j;
    }
    return a[kk];
}

/* the k-th and (k+1)-th smallest (k + 1 < n) */
static void select_pair(double *a, uint64_t n, uint64_t k, double *lo, double *hi)
{
    *lo = select_k(a, n, k);
    double m = INFINITY;
    for (uint64_t i = k + 1; i < n; i++)
        if (a[i] < m) m = a[i];
    *hi = m;
}

double vp_pct_numpy(double *a, uint64_t n, double p)
{
    if (!n) return NAN;
    double vi = (double)(n - 1) * (p / 100.0);
    if (vi >= (double)(n - 1)) return select_k(a, n, n - 1);
    double prev = floor(vi), g = vi - prev, lo, hi;
    select_pair(a, n, (uint64_t)prev, &lo, &hi);
    double diff = hi - lo;
    return g >= 0.5 ? hi - diff * (1 - g) : lo + diff * g;
}

double vp_pct_torch(double *a, uint64_t n, double p)
{
    if (!n) return NAN;
    float q = (float)(p / 100.0);
    float rank = q * (float)(n - 1);
    uint64_t lo = (uint64_t)rank, hi = (uint64_t)ceilf(rank);
    float w = rank - (float)lo;
    double dlo, dhi;
    if (hi >= n) hi = n - 1;
    if (hi > lo) select_pair(a, n, lo, &dlo, &dhi);
    else dlo = dhi = select_k(a, n, lo);
    float x = (float)dlo, y = (float)dhi;
    return w < 0.5f ? x + w * (y - x) : y - (y - x) * (1.0f - w);
}

double vp_pct_floor(double *a, uint64_t n, double p)
{
    if (!n) return NAN;
    float t = (float)(p / 100.0) * (float)n - 1.0f;
    int64_t ord = (int64_t)floorf(t);
    if (ord > (int64_t)n - 1) ord = (int64_t)n - 1;
    /* n f < 1: plastimatch reads the float before its array, the upper half of glibc's malloc chunk
     * size on 64-bit systems: 0 (observed with plastimatch 1.9.4 on single boundary voxels) */
    if (ord < 0) return 0;
    return select_k(a, n, (uint64_t)ord);
}

double vp_sum_pairwise(const double *a, uint64_t n)
{
    if (n < 8) {
        double r = 0;
        for (uint64_t i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n <= 128) {
        double r[8];
        memcpy(r, a, sizeof r);
        uint64_t i;
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    uint64_t n2 = n / 2;
    n2 -= n2 % 8;
    return vp_sum_pairwise(a, n2) + vp_sum_pairwise(a + n2, n - n2);
}

/* ---- unweighted statistics of one direction */
static double vmax(const double *a, uint64_t n)
{
    double m = -INFINITY;
    for (uint64_t i = 0; i < n; i++)
        if (a[i] > m) m = a[i];
    return m;
}

static double vsum(const double *a, uint64_t n)
{
    double s = 0;
    for (uint64_t i = 0; i < n; i++) s += a[i];
    return s;
}

static uint64_t vcount_le(const double *a, uint64_t n, double t)
{
    uint64_t c = 0;
    for (uint64_t i = 0; i < n; i++) c += a[i] <= t;
    return c;
}

static double f1(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0; }

static void fill(double *v, double x)
{
    for (int i = 0; i < VP_SM_N; i++) v[i] = x;
}

/* voxpipe, monai (distances already rounded to float32 by the caller), metricsreloaded */
static void pool_voxels(const struct vp_surface_opts *o, struct vp_dir *P, struct vp_dir *R, double *v)
{
    enum vp_conv c = o->conv;
    double tol = c == VP_CONV_MONAI ? (double)(float)o->tolerance : o->tolerance;
    uint64_t np = P->n, nr = R->n;
    double sp = vsum(P->d, np), sr = vsum(R->d, nr);
    double mp = np ? sp / (double)np : NAN, mr = nr ? sr / (double)nr : NAN;
    uint64_t cp = vcount_le(P->d, np, tol), cr = vcount_le(R->d, nr, tol);
    double pp = np ? (double)cp / (double)np : NAN, rr = nr ? (double)cr / (double)nr : NAN;
    double hp, hr;
    if (c == VP_CONV_MONAI) {
        hp = vp_pct_torch(P->d, np, o->percentile);
        hr = vp_pct_torch(R->d, nr, o->percentile);
        mp = (float)mp;
        mr = (float)mr;
    } else {
        hp = vp_pct_numpy(P->d, np, o->percentile);
        hr = vp_pct_numpy(R->d, nr, o->percentile);
    }
    v[VP_SM_HD] = fmax(vmax(P->d, np), vmax(R->d, nr));
    v[VP_SM_HDP] = np && nr ? fmax(hp, hr) : NAN;
    v[VP_SM_MASD] = 0.5 * (mp + mr);
    v[VP_SM_AHD] = mp != mp || mr != mr ? NAN : fmax(mp, mr);
    v[VP_SM_ASSD] = (sp + sr) / (double)(np + nr);
    if (c == VP_CONV_MONAI) v[VP_SM_ASSD] = (float)v[VP_SM_ASSD];
    v[VP_SM_NSD] = (double)(cp + cr) / (double)(np + nr);
    v[VP_SM_BPREC] = pp;
    v[VP_SM_BREC] = rr;
    v[VP_SM_BF1] = np && nr ? f1(pp, rr) : 0;
    if (c == VP_CONV_METRICSRELOADED && (!np || !nr)) v[VP_SM_HD] = fmax(v[VP_SM_HD], 0); /* max of a zero map */
}

/* ---- deepmind: area-weighted */
struct pair {
    double d, w;
};

static int cmp_pair(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->w > y->w) - (x->w < y->w);
}

struct wdir {
    double total, dw, near, p100, pp; /* sum w, sum d w, sum w[d <= tol], robust HD 100 and p */
};

static void weighted(const struct vp_dir *D, double pct, double tol, struct wdir *s)
{
    uint64_t n = D->n;
    if (!n) {
        s->total = s->dw = s->near = 0;
        s->p100 = s->pp = INFINITY;
        return;
    }
    struct pair *pr = vp_malloc(n * sizeof *pr);
    for (uint64_t i = 0; i < n; i++) pr[i] = (struct pair){D->d[i], D->w[i]};
    qsort(pr, n, sizeof *pr, cmp_pair);
    double *w = vp_malloc(n * sizeof *w), *t = vp_malloc(n * sizeof *t);
    uint64_t m = 0;
    for (uint64_t i = 0; i < n; i++) {
        w[i] = pr[i].w;
        t[i] = pr[i].d * pr[i].w;
    }
    s->total = vp_sum_pairwise(w, n);
    s->dw = vp_sum_pairwise(t, n);
    for (uint64_t i = 0; i < n; i++)
        if (pr[i].d <= tol) t[m++] = pr[i].w;
    s->near = vp_sum_pairwise(t, m);
    /* compute_robust_hausdorff: first index whose cumulative area fraction reaches p / 100 */
    double targets[2] = {1.0, pct / 100.0}, *outs[2] = {&s->p100, &s->pp};
    for (int k = 0; k < 2; k++) {
        double cum = 0;
        uint64_t i = 0;
        for (; i < n; i++) {
            cum += w[i];
            if (!(cum / s->total < targets[k])) break;
        }
        *outs[k] = pr[i < n ? i : n - 1].d;
    }
    free(pr);
    free(w);
    free(t);
}

static void pool_deepmind(const struct vp_surface_opts *o, struct vp_dir *P, struct vp_dir *R, double *v)
{
    struct wdir p, r;
    weighted(P, o->percentile, o->tolerance, &p);
    weighted(R, o->percentile, o->tolerance, &r);
    double ap = p.dw / p.total, ar = r.dw / r.total; /* 0/0 = NaN for an empty side */
    v[VP_SM_HD] = fmax(p.p100, r.p100);
    v[VP_SM_HDP] = fmax(p.pp, r.pp);
    v[VP_SM_MASD] = 0.5 * (ap + ar);
    v[VP_SM_AHD] = ap != ap || ar != ar ? NAN : fmax(ap, ar);
    v[VP_SM_ASSD] = (p.dw + r.dw) / (p.total + r.total);
    v[VP_SM_NSD] = (p.near + r.near) / (p.total + r.total);
    v[VP_SM_BPREC] = p.near / p.total;
    v[VP_SM_BREC] = r.near / r.total;
    v[VP_SM_BF1] = P->n && R->n ? f1(v[VP_SM_BPREC], v[VP_SM_BREC]) : P->n || R->n ? 0 : NAN;
}

/* ---- plastimatch: Hausdorff_distance::run_internal in both directions, in its float arithmetic:
 * the maximum, the mean (a double sum, then float) and the percentile of each direction; HD the
 * larger maximum, HDp and the average the running float sum of half of each, AHD the larger mean.
 * A direction without voxels adds nothing, so masks without boundary voxels give 0. */
static void plm_dir(const struct vp_surface_opts *o, struct vp_dir *D, double *hd, double *hdp, double *avg,
                    double *ahd)
{
    if (!D->n) return;
    float mean = (float)(vsum(D->d, D->n) / (double)D->n); /* before the selection reorders d */
    *hd = fmax(*hd, vmax(D->d, D->n));
    *avg = (float)(*avg + 0.5 * mean);
    *ahd = fmax(*ahd, mean);
    *hdp = (float)(*hdp + 0.5 * vp_pct_floor(D->d, D->n, o->percentile));
}

static void pool_plastimatch(const struct vp_surface_opts *o, struct vp_dir *P, struct vp_dir *R,
                             struct vp_dir *PS, struct vp_dir *RS, double *v)
{
    uint64_t np = P->n, nr = R->n;
    if (!np && !nr && !PS->n && !RS->n) return; /* both masks empty: plastimatch exits with an error */
    double sp = vsum(P->d, np), sr = vsum(R->d, nr);
    uint64_t cp = vcount_le(P->d, np, o->tolerance), cr = vcount_le(R->d, nr, o->tolerance);
    v[VP_SM_ASSD] = (sp + sr) / (double)(np + nr);
    v[VP_SM_NSD] = (double)(cp + cr) / (double)(np + nr);
    v[VP_SM_BPREC] = np ? (double)cp / (double)np : NAN;
    v[VP_SM_BREC] = nr ? (double)cr / (double)nr : NAN;
    v[VP_SM_BF1] = np && nr ? f1(v[VP_SM_BPREC], v[VP_SM_BREC]) : np || nr ? 0 : NAN;
    v[VP_SM_HD] = v[VP_SM_HDP] = v[VP_SM_MASD] = v[VP_SM_AHD] = 0;
    v[VP_SM_HD_SET] = v[VP_SM_HDP_SET] = v[VP_SM_MASD_SET] = v[VP_SM_AHD_SET] = 0;
    /* plastimatch runs reference -> compare first */
    plm_dir(o, R, &v[VP_SM_HD], &v[VP_SM_HDP], &v[VP_SM_MASD], &v[VP_SM_AHD]);
    plm_dir(o, P, &v[VP_SM_HD], &v[VP_SM_HDP], &v[VP_SM_MASD], &v[VP_SM_AHD]);
    plm_dir(o, RS, &v[VP_SM_HD_SET], &v[VP_SM_HDP_SET], &v[VP_SM_MASD_SET], &v[VP_SM_AHD_SET]);
    plm_dir(o, PS, &v[VP_SM_HD_SET], &v[VP_SM_HDP_SET], &v[VP_SM_MASD_SET], &v[VP_SM_AHD_SET]);
}

void vp_surface_pool(const struct vp_surface_opts *o, struct vp_dir *P, struct vp_dir *R, struct vp_dir *PS,
                     struct vp_dir *RS, double *v)
{
    fill(v, NAN);
    switch (o->conv) {
    case VP_CONV_VOXPIPE:
    case VP_CONV_MONAI:
        if (!P->n && !R->n) return; /* both empty: undefined */
        if (!P->n || !R->n) {
            for (int i = VP_SM_HD; i <= VP_SM_ASSD; i++) v[i] = INFINITY;
            v[VP_SM_NSD] = v[VP_SM_BF1] = 0;
            v[P->n ? VP_SM_BPREC : VP_SM_BREC] = 0;
            if (o->conv == VP_CONV_MONAI) v[VP_SM_HDP] = NAN; /* torch.quantile interpolates inf - inf */
            return;
        }
        pool_voxels(o, P, R, v);
        return;
    case VP_CONV_METRICSRELOADED:
        if (!P->n && !R->n) { /* measured_distance() returns zeros; NSD is 0/0 */
            for (int i = VP_SM_HD; i <= VP_SM_ASSD; i++) v[i] = 0;
            return;
        }
        pool_voxels(o, P, R, v);
        return;
    case VP_CONV_DEEPMIND:
        pool_deepmind(o, P, R, v);
        return;
    case VP_CONV_PLASTIMATCH:
        pool_plastimatch(o, P, R, PS, RS, v);
        return;
    default:
        return;
    }
}
