/* Unit tests of lib/stats: the incomplete beta, Student's t and normal tails against 50-digit mpmath
 * values (tests/golden/metrics/stats_special.tsv from tests/scripts/make_golden_metrics.py), the quantile
 * as an inverse, Holm/Bonferroni properties, and lib/tidy's shortest round-trip formatting. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "tidy.h"

static vp_table golden;

static void load_golden(void)
{
    const char *root = getenv("VOXPIPE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/golden/metrics/stats_special.tsv", root ? root : ".");
    cr_assert_eq(vp_table_read(path, &golden), 0, "cannot read %s", path);
}

static void free_golden(void) { vp_table_free(&golden); }

static double num(const char *s)
{
    double v;
    cr_assert_eq(vp_tidy_parse_double(s, &v), 0, "not a number: %s", s);
    return v;
}

/* every golden row of func: relative difference at most rel */
static void check(const char *func, double rel)
{
    int cf = vp_table_col(&golden, "func"), ca = vp_table_col(&golden, "a"), cb = vp_table_col(&golden, "b"),
        cx = vp_table_col(&golden, "x"), cv = vp_table_col(&golden, "value");
    int n = 0;
    double worst = 0;
    for (size_t r = 0; r < golden.nrows; r++) {
        if (strcmp(vp_table_cell(&golden, r, cf), func)) continue;
        double a = num(vp_table_cell(&golden, r, ca)), b = num(vp_table_cell(&golden, r, cb)),
               x = num(vp_table_cell(&golden, r, cx)), want = num(vp_table_cell(&golden, r, cv)), got;
        if (!strcmp(func, "incbet")) got = vp_incbet(a, b, x);
        else if (!strcmp(func, "t_sf")) got = vp_t_sf(b, a);
        else if (!strcmp(func, "t_isf")) got = vp_t_isf(b, a);
        else got = vp_norm_sf(a);
        double err = want == got ? 0 : fabs(got - want) / fabs(want);
        if (err > worst) worst = err;
        cr_expect(err <= rel, "%s(%.17g, %.17g, %.17g) = %.17g, mpmath %.17g (rel %.3g)", func, a, b, x, got, want, err);
        n++;
    }
    cr_assert_gt(n, 10, "golden rows for %s", func);
    cr_log_info("%s: %d values, largest relative difference %.3g", func, n, worst);
}

TestSuite(stats, .init = load_golden, .fini = free_golden);

Test(stats, incbet_matches_mpmath) { check("incbet", 1e-12); }
Test(stats, t_sf_matches_mpmath) { check("t_sf", 1e-12); }
Test(stats, t_isf_matches_mpmath) { check("t_isf", 1e-12); }
Test(stats, norm_sf_matches_mpmath) { check("norm_sf", 1e-13); }

Test(stats, incbet_symmetry_and_edges)
{
    /* x with an exact complement 1 - x */
    double as[] = {0.5, 1.5, 7, 60, 250}, xs[] = {0x1p-27, 0x1p-7, 0.25, 0.5, 0.75, 1 - 0x1p-7};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 5; j++)
            for (size_t k = 0; k < 6; k++) {
                double s = vp_incbet(as[i], as[j], xs[k]) + vp_incbet(as[j], as[i], 1 - xs[k]);
                cr_expect(fabs(s - 1) < 1e-13, "I_x(a,b) + I_1-x(b,a) = %.17g at a=%g b=%g x=%g", s, as[i], as[j], xs[k]);
            }
    cr_expect(vp_incbet(2, 3, 0) == 0);
    cr_expect(vp_incbet(2, 3, 1) == 1);
    cr_expect(isnan(vp_incbet(-1, 3, 0.5)));
    cr_expect(isnan(vp_incbet(2, 3, 1.5)));
}

Test(stats, t_isf_inverts_t_sf)
{
    double dfs[] = {1, 2, 4.5, 19, 107, 5000}, qs[] = {1e-15, 1e-9, 0.001, 0.025, 0.2, 0.49, 0.51, 0.9, 0.999999};
    for (size_t i = 0; i < 6; i++)
        for (size_t j = 0; j < 9; j++) {
            double t = vp_t_isf(qs[j], dfs[i]), q = vp_t_sf(t, dfs[i]);
            cr_expect(fabs(q - qs[j]) <= 1e-13 * qs[j], "sf(isf(%g)) = %.17g at df %g", qs[j], q, dfs[i]);
        }
    cr_expect(vp_t_isf(0.5, 3) == 0);
    cr_expect(isnan(vp_t_isf(0.5, -1)));
}

Test(stats, holm_and_bonferroni_properties)
{
    double p[12], h[12], b[12];
    unsigned s = 12345;
    for (int rep = 0; rep < 200; rep++) {
        for (int i = 0; i < 12; i++) {
            s = s * 1103515245u + 12345u;
            p[i] = (double)(s >> 8 & 0xffff) / 65536.0 * ((s >> 4) & 1 ? 0.1 : 1);
        }
        p[rep % 12] = NAN;
        vp_p_holm(p, 12, h);
        vp_p_bonferroni(p, 12, b);
        for (int i = 0; i < 12; i++) {
            if (isnan(p[i])) { cr_expect(isnan(h[i]) && isnan(b[i])); continue; }
            cr_expect(h[i] >= p[i] && h[i] <= b[i] && b[i] <= 1, "p %g holm %g bonferroni %g", p[i], h[i], b[i]);
            cr_expect(b[i] == fmin(1, 11 * p[i]), "bonferroni over the 11 non-NaN p-values");
            for (int j = 0; j < 12; j++)
                if (!isnan(p[j]) && p[j] <= p[i]) cr_expect(h[j] <= h[i], "holm keeps the order of the p-values");
        }
    }
}

Test(stats, tidy_fmt_round_trips)
{
    char buf[32];
    unsigned long long s = 88172645463325252ull;
    for (int i = 0; i < 100000; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double v;
        memcpy(&v, &s, sizeof v);
        if (!isfinite(v)) continue;
        vp_tidy_fmt(v, buf);
        cr_assert_eq(strtod(buf, NULL), v, "%s does not read back as %.17g", buf, v);
        char shorter[32];
        int len = (int)strlen(buf);
        snprintf(shorter, sizeof shorter, "%.*g", 15, v);
        if (strtod(shorter, NULL) == v) cr_assert_leq(len, (int)strlen(shorter) + 0, "%s longer than %s", buf, shorter);
    }
    cr_expect_str_eq(vp_tidy_fmt(NAN, buf), "nan");
    cr_expect_str_eq(vp_tidy_fmt(-INFINITY, buf), "-inf");
    cr_expect_str_eq(vp_tidy_fmt(-0.0, buf), "0");
}
