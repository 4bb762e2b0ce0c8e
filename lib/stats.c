/* stats.c - see stats.h */
#include "stats.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- regularized incomplete beta: Cephes incbet (S. L. Moshier), with the complement of x passed
 * in so that x near 1 loses nothing */

#define MACHEP 1.11022302462515654042e-16 /* 2^-53 */
#define MAXLOG 7.09782712893383996843e2   /* log(DBL_MAX) */
#define MAXGAM 171.624376956302725
#define BIG 4.503599627370496e15
#define BIGINV 2.22044604925031308085e-16

/* lgamma(x) - ((x - 0.5) log x - x + log(2 pi)/2) for x >= 10: Stirling's series, 8 terms
 * (the next is below 1e-17 there) */
static double stirling_corr(double x)
{
    static const double c[] = {1.0 / 12, -1.0 / 360, 1.0 / 1260, -1.0 / 1680, 1.0 / 1188, -691.0 / 360360,
                               1.0 / 156, -3617.0 / 122400};
    double x2 = 1 / (x * x), s = 0;
    for (int i = 7; i >= 0; i--) s = s * x2 + c[i];
    return s / x;
}

/* log B(a, b). With the larger argument >= 10, lgamma(a) - lgamma(a+b) is taken from Stirling's
 * series in a form without the cancellation of two large lgamma values (which would cost about
 * a*log(a)*2^-53 absolute, e.g. 2e-12 at a = 2500). */
static double lbeta(double a, double b)
{
    if (a < b) { double t = a; a = b; b = t; }
    if (a < 10) return lgamma(a) + lgamma(b) - lgamma(a + b);
    /* lgamma(a) - lgamma(a+b) = (a-1/2) log(a/(a+b)) - b log(a+b) + b + corr(a) - corr(a+b) */
    double d = -(a - 0.5) * log1p(b / a) - b * log(a + b) + b + stirling_corr(a) - stirling_corr(a + b);
    return lgamma(b) + d;
}

/* B(a, b) for a + b < MAXGAM, through the gamma function as Cephes' beta() does */
static double beta_fn(double a, double b)
{
    double y = tgamma(a + b);
    if (a > b) return tgamma(a) / y * tgamma(b);
    return tgamma(b) / y * tgamma(a);
}

/* continued fraction #1, for x < (a-1)/(a+b-2) */
static double incbcf(double a, double b, double x)
{
    double k1 = a, k2 = a + b, k3 = a, k4 = a + 1, k5 = 1, k6 = b - 1, k7 = a + 1, k8 = a + 2;
    double pkm2 = 0, qkm2 = 1, pkm1 = 1, qkm1 = 1, ans = 1, r = 1;
    for (int n = 0; n < 300; n++) {
        double xk = -(x * k1 * k2) / (k3 * k4);
        double pk = pkm1 + pkm2 * xk, qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        xk = (x * k5 * k6) / (k7 * k8);
        pk = pkm1 + pkm2 * xk; qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        if (qk != 0) r = pk / qk;
        double t;
        if (r != 0) { t = fabs((ans - r) / r); ans = r; }
        else t = 1;
        if (t < 3 * MACHEP) break;
        k1 += 1; k2 += 1; k3 += 2; k4 += 2; k5 += 1; k6 -= 1; k7 += 2; k8 += 2;
        if (fabs(qk) + fabs(pk) > BIG) { pkm2 *= BIGINV; pkm1 *= BIGINV; qkm2 *= BIGINV; qkm1 *= BIGINV; }
        if (fabs(qk) < BIGINV || fabs(pk) < BIGINV) { pkm2 *= BIG; pkm1 *= BIG; qkm2 *= BIG; qkm1 *= BIG; }
    }
    return ans;
}

/* continued fraction #2, in z = x/(1-x) (zc = 1 - x given) */
static double incbd(double a, double b, double x, double xc)
{
    double k1 = a, k2 = b - 1, k3 = a, k4 = a + 1, k5 = 1, k6 = a + b, k7 = a + 1, k8 = a + 2;
    double pkm2 = 0, qkm2 = 1, pkm1 = 1, qkm1 = 1, ans = 1, r = 1, z = x / xc;
    for (int n = 0; n < 300; n++) {
        double xk = -(z * k1 * k2) / (k3 * k4);
        double pk = pkm1 + pkm2 * xk, qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        xk = (z * k5 * k6) / (k7 * k8);
        pk = pkm1 + pkm2 * xk; qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        if (qk != 0) r = pk / qk;
        double t;
        if (r != 0) { t = fabs((ans - r) / r); ans = r; }
        else t = 1;
        if (t < 3 * MACHEP) break;
        k1 += 1; k2 -= 1; k3 += 2; k4 += 2; k5 += 1; k6 += 1; k7 += 2; k8 += 2;
        if (fabs(qk) + fabs(pk) > BIG) { pkm2 *= BIGINV; pkm1 *= BIGINV; qkm2 *= BIGINV; qkm1 *= BIGINV; }
        if (fabs(qk) < BIGINV || fabs(pk) < BIGINV) { pkm2 *= BIG; pkm1 *= BIG; qkm2 *= BIG; qkm1 *= BIG; }
    }
    return ans;
}

/* x^a and log x given xc = 1 - x too: near x = 1 through log1p(-xc), so that the rounding of x
 * (relative 2^-53, amplified a times by x^a) does not enter */
static double pow_c(double x, double xc, double a) { return x > 0.5 ? exp(a * log1p(-xc)) : pow(x, a); }
static double log_c(double x, double xc) { return x > 0.5 ? log1p(-xc) : log(x); }

/* power series, for b*x small and x not near 1 */
static double pseries(double a, double b, double x, double xc)
{
    double ai = 1 / a, u = (1 - b) * x, v = u / (a + 1), t1 = v, t = u, n = 2, s = 0, z = MACHEP * ai;
    while (fabs(v) > z) {
        u = (n - b) * x / n;
        t *= u;
        v = t / (a + n);
        s += v;
        n += 1;
    }
    s += t1;
    s += ai;
    u = a * log_c(x, xc);
    if (a + b < MAXGAM && fabs(u) < MAXLOG) return s * (1 / beta_fn(a, b)) * pow_c(x, xc, a);
    t = -lbeta(a, b) + u + log(s);
    return exp(t); /* subnormal results kept; below about -745 it is 0 */
}

double vp_incbet2(double aa, double bb, double xx, double xxc)
{
    if (!(aa > 0) || !(bb > 0) || !(xx >= 0) || !(xx <= 1)) return NAN;
    if (xx == 0) return 0;
    if (xx == 1 || xxc == 0) return 1;
    if (bb * xx <= 1 && xx <= 0.95) return pseries(aa, bb, xx, xxc);

    double a, b, x, xc, t;
    int flag = 0;
    if (xx > aa / (aa + bb)) { /* reverse a and b when x is above the mean */
        flag = 1; a = bb; b = aa; xc = xx; x = xxc;
    } else {
        a = aa; b = bb; xc = xxc; x = xx;
    }
    if (flag && b * x <= 1 && x <= 0.95) {
        t = pseries(a, b, x, xc);
    } else {
        double y = x * (a + b - 2) - (a - 1);
        double w = y < 0 ? incbcf(a, b, x) : incbd(a, b, x, xc) / xc;
        /* w * x^a (1-x)^b / (a B(a, b)) */
        y = a * log_c(x, xc);
        t = b * log_c(xc, x);
        if (a + b < MAXGAM && fabs(y) < MAXLOG && fabs(t) < MAXLOG) {
            t = pow_c(xc, x, b);
            t *= pow_c(x, xc, a);
            t /= a;
            t *= w;
            t *= 1 / beta_fn(a, b);
        } else {
            y += t - lbeta(a, b);
            y += log(w / a);
            t = exp(y);
        }
    }
    if (flag) t = t <= MACHEP ? 1 - MACHEP : 1 - t;
    return t;
}

double vp_incbet(double a, double b, double x) { return vp_incbet2(a, b, x, 1 - x); }

/* ---- Student's t */

/* I_x(df/2, 1/2) at x = df/(df+t^2): P(|T| >= |t|) */
static double t_two_tail(double t, double df)
{
    double t2 = t * t, x, xc;
    if (isinf(t2)) { x = 0; xc = 1; }
    else { x = df / (df + t2); xc = t2 / (df + t2); }
    return vp_incbet2(df / 2, 0.5, x, xc);
}

double vp_t_sf(double t, double df)
{
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return t > 0 ? 0 : 1;
    double tail = 0.5 * t_two_tail(t, df);
    return t > 0 ? tail : 1 - tail;
}

double vp_t_p2(double t, double df)
{
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return 0;
    double p = t_two_tail(t, df);
    return p > 1 ? 1 : p;
}

double vp_t_isf(double q, double df)
{
    if (!(q > 0) || !(q < 1) || !(df > 0)) return q == 0 ? INFINITY : q == 1 ? -INFINITY : NAN;
    if (q == 0.5) return 0;
    if (q > 0.5) return -vp_t_isf(1 - q, df);
    double lo = 0, hi = 1;
    while (vp_t_sf(hi, df) > q) {
        lo = hi;
        hi *= 2;
        if (hi > 1e300) return INFINITY;
    }
    for (int i = 0; i < 2100; i++) { /* bisection down to adjacent doubles */
        double mid = lo + (hi - lo) / 2;
        if (mid <= lo || mid >= hi) break;
        if (vp_t_sf(mid, df) > q) lo = mid;
        else hi = mid;
    }
    return fabs(vp_t_sf(lo, df) - q) < fabs(vp_t_sf(hi, df) - q) ? lo : hi;
}

double vp_norm_sf(double z)
{
    /* as Cephes ndtr(-z) */
    double x = -z * M_SQRT1_2, ax = fabs(x);
    if (isnan(z)) return NAN;
    if (ax < M_SQRT1_2) return 0.5 + 0.5 * erf(x);
    double y = 0.5 * erfc(ax);
    return x > 0 ? 1 - y : y;
}

/* ---- summaries and t-tests */

/* mean by compensated (Neumaier) summation, then the second central moment the same way */
static void mean_var(const double *x, size_t n, double *mean, double *var)
{
    double s = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        double t = s + x[i];
        c += fabs(s) >= fabs(x[i]) ? (s - t) + x[i] : (x[i] - t) + s;
        s = t;
    }
    double m = (isfinite(s) ? s + c : s) / (double)n; /* an infinite value: c is NaN, the mean +-inf as numpy's */
    s = 0; c = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (x[i] - m) * (x[i] - m), t = s + d;
        c += s >= d ? (s - t) + d : (d - t) + s;
        s = t;
    }
    *mean = n ? m : NAN;
    *var = n > 1 ? (s + c) / (double)(n - 1) : NAN;
}

void vp_summarize(const double *x, size_t n, double level, struct vp_summary *s)
{
    double var;
    s->n = n;
    mean_var(x, n, &s->mean, &var);
    s->sd = sqrt(var);
    if (n < 2) { s->ci_lo = s->ci_hi = NAN; return; }
    double q = (1 - level) / 2, se = s->sd / sqrt((double)n);
    s->ci_lo = s->mean - vp_t_isf(q, (double)(n - 1)) * se;
    s->ci_hi = s->mean + vp_t_isf(q, (double)(n - 1)) * se;
}

static void t_finish(double d, double se, double df, struct vp_ttest *r)
{
    r->df = df;
    r->t = d / se; /* +-inf for se == 0 and d != 0; NaN for 0/0 or an undefined se */
    r->p = isnan(r->t) || !(df > 0) ? NAN : vp_t_p2(r->t, df);
}

void vp_ttest_student(const double *a, size_t na, const double *b, size_t nb, struct vp_ttest *r)
{
    double ma, va, mb, vb;
    mean_var(a, na, &ma, &va);
    mean_var(b, nb, &mb, &vb);
    if (!na || !nb) { *r = (struct vp_ttest){NAN, NAN, NAN}; return; }
    if (na == 1) va = 0; /* a single value has no spread to pool */
    if (nb == 1) vb = 0;
    double df = (double)na + (double)nb - 2;
    double sp = ((double)(na - 1) * va + (double)(nb - 1) * vb) / df;
    t_finish(ma - mb, sqrt(sp * (1.0 / (double)na + 1.0 / (double)nb)), df, r);
}

void vp_ttest_welch(const double *a, size_t na, const double *b, size_t nb, struct vp_ttest *r)
{
    double ma, va, mb, vb;
    mean_var(a, na, &ma, &va);
    mean_var(b, nb, &mb, &vb);
    if (!na || !nb) { *r = (struct vp_ttest){NAN, NAN, NAN}; return; }
    double vna = va / (double)na, vnb = vb / (double)nb;
    double df = (vna + vnb) * (vna + vnb) / (vna * vna / (double)(na - 1) + vnb * vnb / (double)(nb - 1));
    if (isnan(df)) df = 1; /* both variances zero: as scipy, any df */
    t_finish(ma - mb, sqrt(vna + vnb), df, r); /* a sample of one: NaN variance, NaN t */
}

void vp_ttest_paired(const double *a, const double *b, size_t n, struct vp_ttest *r)
{
    if (!n) { *r = (struct vp_ttest){NAN, NAN, NAN}; return; }
    double *d = vp_malloc(n * sizeof *d), m, v;
    for (size_t i = 0; i < n; i++) d[i] = a[i] - b[i];
    mean_var(d, n, &m, &v);
    free(d);
    t_finish(m, sqrt(v / (double)n), (double)n - 1, r);
}

/* ---- Wilcoxon signed-rank */

const char *const vp_wilcoxon_method_names[] = {"exact", "permutation", "normal", NULL};

struct absidx { double v; size_t i; };

static int cmp_abs(const void *x, const void *y)
{
    const struct absidx *a = x, *b = y;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* number of the 2^m subsets of ranks (given doubled, as integers) per doubled sum */
static double *subset_sums(const int64_t *r2, size_t m, int64_t *maxsum)
{
    int64_t tot = 0;
    for (size_t i = 0; i < m; i++) tot += r2[i];
    double *c = vp_calloc((size_t)tot + 1, sizeof *c);
    c[0] = 1;
    int64_t cur = 0;
    for (size_t i = 0; i < m; i++) {
        cur += r2[i];
        for (int64_t s = cur; s >= r2[i]; s--) c[s] += c[s - r2[i]];
    }
    *maxsum = tot;
    return c;
}

void vp_wilcoxon(const double *a, const double *b, size_t n, struct vp_wilcoxon *r)
{
    r->stat = r->p = r->z = NAN;
    r->n = 0;
    r->method = VP_WILCOXON_NORMAL;
    if (!n) return;
    struct absidx *e = vp_malloc(n * sizeof *e);
    double *d = vp_malloc(n * sizeof *d);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        d[i] = a[i] - b[i];
        if (d[i] != 0) { e[m].v = fabs(d[i]); e[m].i = i; m++; }
    }
    size_t nzero = n - m;
    qsort(e, m, sizeof *e, cmp_abs);
    /* average ranks (doubled, integers: 2*rank) and the tie correction sum(t^3 - t) */
    int64_t *r2 = vp_malloc((m ? m : 1) * sizeof *r2);
    double tie = 0, rplus = 0, rminus = 0;
    int ties = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j + 1 < m && e[j + 1].v == e[i].v) j++;
        double t = (double)(j - i + 1);
        if (j > i) ties = 1;
        tie += t * t * t - t;
        for (size_t k = i; k <= j; k++) {
            r2[k] = (int64_t)(i + 1 + j + 1); /* 2 * average of ranks i+1..j+1 */
            if (d[e[k].i] > 0) rplus += (double)r2[k] / 2;
            else rminus += (double)r2[k] / 2;
        }
        i = j + 1;
    }
    double cnt = (double)m, mn = cnt * (cnt + 1) * 0.25;
    double se = sqrt((cnt * (cnt + 1) * (2 * cnt + 1) - tie / 2) / 24);
    r->n = m;
    r->stat = rplus < rminus ? rplus : rminus;
    r->z = -fabs((rplus - mn) / se);
    if (n > 50 || ((ties || nzero) && n > 13)) {
        r->method = VP_WILCOXON_NORMAL;
        r->p = 2 * vp_norm_sf(-r->z);
    } else {
        /* exact null distribution of R+ over the 2^m sign assignments: without ties that is the
         * exact test, with ties or zeros the permutation test (the zeros' flips change nothing) */
        r->method = ties || nzero ? VP_WILCOXON_PERMUTATION : VP_WILCOXON_EXACT;
        int64_t tot, obs2 = (int64_t)llround(2 * rplus);
        double *c = subset_sums(r2, m, &tot), le = 0, ge = 0;
        for (int64_t s = 0; s <= tot; s++) {
            if (s <= obs2) le += c[s];
            if (s >= obs2) ge += c[s];
        }
        free(c);
        double p = 2 * (le < ge ? le : ge) / ldexp(1, (int)m);
        r->p = p > 1 ? 1 : p;
    }
    free(r2);
    free(d);
    free(e);
}

/* ---- multiple comparisons */

void vp_p_bonferroni(const double *p, size_t n, double *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += !isnan(p[i]);
    for (size_t i = 0; i < n; i++) {
        double v = p[i] * (double)m;
        out[i] = isnan(p[i]) ? NAN : v > 1 ? 1 : v;
    }
}

struct pidx { double p; size_t i; };

static int cmp_p(const void *x, const void *y)
{
    const struct pidx *a = x, *b = y;
    if (a->p != b->p) return a->p < b->p ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

void vp_p_holm(const double *p, size_t n, double *out)
{
    struct pidx *s = vp_malloc((n ? n : 1) * sizeof *s);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = NAN;
        if (!isnan(p[i])) s[m++] = (struct pidx){p[i], i};
    }
    qsort(s, m, sizeof *s, cmp_p);
    double run = 0;
    for (size_t k = 0; k < m; k++) {
        double v = (double)(m - k) * s[k].p;
        if (v > 1) v = 1;
        if (v > run) run = v;
        out[s[k].i] = run;
    }
    free(s);
}
