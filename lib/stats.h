/* stats.h - the statistics of comparing two models: Student's t distribution (through the
 * regularized incomplete beta function, after Cephes' incbet), its quantile, summaries with a t
 * confidence interval, Student (pooled), Welch and paired t-tests, the Wilcoxon signed-rank test as
 * scipy.stats.wilcoxon computes it by default, and Holm / Bonferroni adjustment.
 *
 * Conventions follow scipy.stats (1.17), so that results agree to about 1e-13 relative:
 *   - variances with ddof = 1; a test that cannot be computed (too few values) gives NaN;
 *   - t-tests: t = (mean_a - mean_b) / se, two-sided p = 2 P(T > |t|); a zero standard error gives
 *     t = +-inf, p = 0 (means differ) or t = NaN, p = NaN (means equal), as scipy does.
 *     Student: pooled variance, df = na + nb - 2 (a sample of one contributes no variance).
 *     Welch: Welch-Satterthwaite df.  Paired: one-sample t-test of a - b, df = n - 1.
 *   - Wilcoxon signed-rank on d = a - b (zero_method "wilcox": zero differences dropped, average
 *     ranks for ties, no continuity correction, two-sided), method "auto":
 *       n > 50 (n counts the zeros too)          -> normal approximation with tie correction
 *       no ties and no zeros                     -> exact null distribution of R+
 *       ties or zeros and n <= 13                -> exact permutation test over all 2^n sign flips
 *       otherwise                                -> normal approximation
 *     statistic = min(R+, R-).
 *
 * Ownership: nothing is allocated for the caller; functions that need scratch allocate and free it.
 */
#ifndef VP_STATS_H
#define VP_STATS_H

#include <stddef.h>

/* Regularized incomplete beta I_x(a, b) for a, b > 0, 0 <= x <= 1; NaN outside the domain. */
double vp_incbet(double a, double b, double x);
/* The same with xc = 1 - x supplied exactly by the caller (no cancellation near x = 1). */
double vp_incbet2(double a, double b, double x, double xc);

/* Student's t with df > 0 degrees of freedom: upper tail P(T > t), two-sided P(|T| >= |t|),
 * and the upper quantile t such that P(T > t) = q for 0 < q < 1 (bisection on the CDF to the last
 * bit). */
double vp_t_sf(double t, double df);
double vp_t_p2(double t, double df);
double vp_t_isf(double q, double df);

/* Standard normal upper tail P(Z > z). */
double vp_norm_sf(double z);

struct vp_summary {
    size_t n;
    double mean, sd;     /* sd with ddof 1; NaN when n < 2 */
    double ci_lo, ci_hi; /* the t confidence interval of the mean at `level`; NaN when n < 2 */
};
void vp_summarize(const double *x, size_t n, double level, struct vp_summary *s);

struct vp_ttest {
    double t, df, p;
};
void vp_ttest_student(const double *a, size_t na, const double *b, size_t nb, struct vp_ttest *r);
void vp_ttest_welch(const double *a, size_t na, const double *b, size_t nb, struct vp_ttest *r);
void vp_ttest_paired(const double *a, const double *b, size_t n, struct vp_ttest *r);

enum vp_wilcoxon_method { VP_WILCOXON_EXACT, VP_WILCOXON_PERMUTATION, VP_WILCOXON_NORMAL };
extern const char *const vp_wilcoxon_method_names[]; /* "exact", "permutation", "normal" */

struct vp_wilcoxon {
    double stat;  /* min(R+, R-) */
    double p;
    double z;     /* -|R+ - mean| / se of the normal approximation, whatever the method (NaN when
                   * se is 0): scipy's zstatistic for method="asymptotic" */
    size_t n;     /* nonzero differences */
    enum vp_wilcoxon_method method;
};
/* Paired a[i], b[i], i < n (n >= 1). NaN results for n == 0. */
void vp_wilcoxon(const double *a, const double *b, size_t n, struct vp_wilcoxon *r);

/* Adjust the p-values of one family of m tests; NaN entries are not part of the family and stay
 * NaN. Bonferroni: min(1, m p). Holm: step-down, p_(i) -> max over j <= i of min(1, (m-j+1) p_(j)),
 * ties kept in input order. */
void vp_p_bonferroni(const double *p, size_t n, double *out);
void vp_p_holm(const double *p, size_t n, double *out);

#endif
