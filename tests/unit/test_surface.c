/* Unit tests: surface metrics against brute force (every boundary voxel against every other, sorted
 * percentiles) on small random masks, including masks that touch the image edge; the selection
 * based percentiles against sorting; the same bits for any thread count under every convention.
 * The peers' own numbers are checked by tests/shell/hausdorff.bats against golden files. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "surface.h"

static unsigned rng = 777;
static unsigned rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) & 0xffffff;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's 'linear' percentile from a sorted copy */
static double pct_sorted(const double *a, uint64_t n, double p)
{
    double *s = malloc(n * sizeof *s);
    memcpy(s, a, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_d);
    double vi = (double)(n - 1) * (p / 100.0), r;
    if (vi >= (double)(n - 1)) r = s[n - 1];
    else {
        uint64_t lo = (uint64_t)floor(vi);
        double g = vi - (double)lo, diff = s[lo + 1] - s[lo];
        r = g >= 0.5 ? s[lo + 1] - diff * (1 - g) : s[lo] + diff * g;
    }
    free(s);
    return r;
}

Test(surface, percentiles_by_selection_match_sorting)
{
    for (int t = 0; t < 200; t++) {
        uint64_t n = 1 + rnd() % 300;
        double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *s = malloc(n * sizeof *s);
        for (uint64_t i = 0; i < n; i++) a[i] = (double)(rnd() % (t % 2 ? 7 : 100000)) * 0.37; /* ties */
        memcpy(s, a, n * sizeof *s);
        qsort(s, n, sizeof *s, cmp_d);
        double p = t % 5 == 0 ? 100 : t % 5 == 1 ? 0 : (double)(rnd() % 10001) / 100;
        memcpy(b, a, n * sizeof *b);
        cr_assert_eq(vp_pct_numpy(b, n, p), pct_sorted(a, n, p), "n %lu p %g", (unsigned long)n, p);
        memcpy(b, a, n * sizeof *b);
        int64_t ord = (int64_t)floorf((float)(p / 100.0) * (float)n - 1.0f);
        ord = ord > (int64_t)n - 1 ? (int64_t)n - 1 : ord;
        cr_assert_eq(vp_pct_floor(b, n, p), ord < 0 ? 0 : s[ord]); /* plastimatch's 0 before its array */
        memcpy(b, a, n * sizeof *b);
        float rank = (float)(p / 100.0) * (float)(n - 1), w = rank - floorf(rank);
        float x = (float)s[(uint64_t)rank], y = (float)s[(uint64_t)ceilf(rank)];
        cr_assert_eq(vp_pct_torch(b, n, p), (double)(w < 0.5f ? x + w * (y - x) : y - (y - x) * (1.0f - w)));
        free(a);
        free(b);
        free(s);
    }
}

Test(surface, pairwise_sum)
{
    double a[1000], naive = 0;
    for (int i = 0; i < 1000; i++) naive += a[i] = (double)(rnd() % 1000) / 7.0;
    cr_assert(fabs(vp_sum_pairwise(a, 1000) - naive) <= 1e-12 * naive);
    cr_assert_eq(vp_sum_pairwise(a, 5), (((a[0] + a[1]) + a[2]) + a[3]) + a[4]);
    cr_assert_eq(vp_sum_pairwise(a, 0), 0);
}

/* a random padded box: objects inside, image edge (VP_MASK_OUT) on the faces listed in `out` */
static void random_pair(uint64_t d[3], uint8_t *p, uint8_t *r, int out, unsigned permille)
{
    for (uint64_t z = 0; z < d[2]; z++)
        for (uint64_t y = 0; y < d[1]; y++)
            for (uint64_t x = 0; x < d[0]; x++) {
                uint64_t i = (z * d[1] + y) * d[0] + x;
                int face = x == 0 ? 1 : x == d[0] - 1 ? 2 : y == 0 ? 4 : y == d[1] - 1 ? 8 : z == 0 ? 16 : z == d[2] - 1 ? 32 : 0;
                if (face) {
                    p[i] = r[i] = (out & face) ? VP_MASK_OUT : VP_MASK_BG;
                    continue;
                }
                p[i] = rnd() % 1000 < permille;
                r[i] = rnd() % 1000 < permille;
            }
}

/* boundary voxels by definition: an object voxel with a 6-neighbour that is not object, along the
 * axes in `axes` (bit a: axis a) */
static int is_boundary(const uint8_t *m, const uint64_t d[3], uint64_t i, unsigned axes)
{
    if (m[i] != VP_MASK_IN) return 0;
    int64_t st[3] = {1, (int64_t)d[0], (int64_t)(d[0] * d[1])};
    for (int a = 0; a < 3; a++)
        for (int s = -1; s <= 1; s += 2)
            if ((axes >> a & 1) && m[(int64_t)i + s * st[a]] != VP_MASK_IN) return 1;
    return 0;
}

static int is_set(const uint8_t *m, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (m[i] == VP_MASK_IN) return 1;
    return 0;
}

/* distances from each boundary voxel of a to the boundary of b, brute force */
static double *brute_dirs(const uint8_t *a, const uint8_t *b, const uint64_t d[3], const double sp[3], unsigned axes,
                          uint64_t *n)
{
    uint64_t nv = d[0] * d[1] * d[2], k = 0;
    double *out = malloc((nv + 1) * sizeof *out);
    for (uint64_t i = 0; i < nv; i++) {
        if (!is_boundary(a, d, i, axes)) continue;
        double best = INFINITY;
        for (uint64_t j = 0; j < nv; j++) {
            if (!is_boundary(b, d, j, axes)) continue;
            double dx = ((double)(i % d[0]) - (double)(j % d[0])) * sp[0];
            double dy = ((double)(i / d[0] % d[1]) - (double)(j / d[0] % d[1])) * sp[1];
            double dz = ((double)(i / (d[0] * d[1])) - (double)(j / (d[0] * d[1]))) * sp[2];
            double s = sqrt(dx * dx + dy * dy + dz * dz);
            if (s < best) best = s;
        }
        out[k++] = best;
    }
    *n = k;
    return out;
}

static void close_to(double got, double want, const char *what)
{
    if (isnan(want)) cr_assert(isnan(got), "%s: got %g, want nan", what, got);
    else if (isinf(want)) cr_assert_eq(got, want, "%s: got %g, want %g", what, got, want);
    else cr_assert(fabs(got - want) <= 1e-12 * (1 + fabs(want)), "%s: got %.17g, want %.17g", what, got, want);
}

Test(surface, voxpipe_convention_matches_brute_force)
{
    const double sp[3] = {0.8, 1.3, 2.5};
    for (int t = 0; t < 30; t++) {
        uint64_t d[3] = {3 + rnd() % 9, 3 + rnd() % 8, 3 + rnd() % 7}, n = d[0] * d[1] * d[2];
        uint8_t *p = malloc(n), *r = malloc(n);
        random_pair(d, p, r, (int)(rnd() % 64), t < 5 ? 950 : 40 + rnd() % 500);
        struct vp_surface_in in = {{d[0], d[1], d[2]}, p, r, {4, 5, 6}, {sp[0], sp[1], sp[2]}};
        struct vp_surface_opts o = {VP_CONV_VOXPIPE, 90, 1.6};
        struct vp_surface_res res;
        vp_surface_metrics(&in, &o, &res);
        uint64_t np, nr;
        double *dp = brute_dirs(p, r, d, sp, 7, &np), *dr = brute_dirs(r, p, d, sp, 7, &nr);
        cr_assert_eq(res.npred, np);
        cr_assert_eq(res.nref, nr);
        if (np && nr) {
            double mp = 0, mr = 0, hd = 0;
            uint64_t cp = 0, cr_ = 0;
            for (uint64_t i = 0; i < np; i++) mp += dp[i], cp += dp[i] <= 1.6, hd = fmax(hd, dp[i]);
            for (uint64_t i = 0; i < nr; i++) mr += dr[i], cr_ += dr[i] <= 1.6, hd = fmax(hd, dr[i]);
            close_to(res.v[VP_SM_HD], hd, "hd");
            close_to(res.v[VP_SM_HDP], fmax(pct_sorted(dp, np, 90), pct_sorted(dr, nr, 90)), "hd90");
            close_to(res.v[VP_SM_ASSD], (mp + mr) / (double)(np + nr), "assd");
            close_to(res.v[VP_SM_MASD], 0.5 * (mp / (double)np + mr / (double)nr), "masd");
            close_to(res.v[VP_SM_AHD], fmax(mp / (double)np, mr / (double)nr), "ahd");
            close_to(res.v[VP_SM_NSD], (double)(cp + cr_) / (double)(np + nr), "nsd");
            close_to(res.v[VP_SM_BPREC], (double)cp / (double)np, "bprec");
            close_to(res.v[VP_SM_BREC], (double)cr_ / (double)nr, "brec");
        } else if (np || nr) {
            close_to(res.v[VP_SM_HD], INFINITY, "hd, one empty");
            close_to(res.v[VP_SM_NSD], 0, "nsd, one empty");
        } else {
            for (int m = 0; m < VP_SM_N; m++) close_to(res.v[m], NAN, "both empty");
        }
        free(dp);
        free(dr);
        free(p);
        free(r);
    }
}

/* plastimatch 1.9.4's statistics of one direction, in its float arithmetic (Hausdorff_distance::
 * run_internal): the maximum, the mean, the floor(f n - 1)-th smallest (0 when f n < 1) */
static void plm_stats(const double *dist, uint64_t n, float *hd, float *avg, float *ahd, float *pct)
{
    if (!n) return;
    double sum = 0, *s = malloc(n * sizeof *s);
    for (uint64_t i = 0; i < n; i++) {
        float v = dist[i] < FLT_MAX ? (float)dist[i] : FLT_MAX; /* its map of an empty mask */
        s[i] = v;
        sum += v;
        if (v > *hd) *hd = v;
    }
    qsort(s, n, sizeof *s, cmp_d);
    float mean = (float)(sum / (double)n);
    int64_t ord = (int64_t)floorf(0.95f * (float)n - 1.0f);
    *avg += 0.5 * mean;
    *ahd = fmaxf(*ahd, mean);
    *pct += 0.5 * (ord < 0 ? 0 : s[ord]);
    free(s);
}

Test(surface, plastimatch_convention_matches_brute_force)
{
    const double sp[3] = {1.1, 0.9, 3.0};
    for (int t = 0; t < 40; t++) {
        uint64_t d[3] = {3 + rnd() % 8, 3 + rnd() % 8, 3 + rnd() % 6}, n = d[0] * d[1] * d[2];
        uint8_t *p = malloc(n), *r = malloc(n);
        random_pair(d, p, r, 63, 200 + rnd() % 700); /* the box is plastimatch's whole image */
        struct vp_surface_in in = {{d[0], d[1], d[2]}, p, r, {-1, -1, -1}, {sp[0], sp[1], sp[2]}};
        struct vp_surface_opts o = {VP_CONV_PLASTIMATCH, 95, 1.0};
        struct vp_surface_res res;
        vp_surface_metrics(&in, &o, &res);
        /* its boundary: the image edge is background, except along an axis one voxel thick */
        unsigned axes = 0;
        for (int a = 0; a < 3; a++) axes |= (d[a] > 3) << a;
        uint64_t np, nr;
        double *dp = brute_dirs(p, r, d, sp, axes, &np), *dr = brute_dirs(r, p, d, sp, axes, &nr);
        float hd = 0, avg = 0, ahd = 0, pct = 0;
        plm_stats(dr, nr, &hd, &avg, &ahd, &pct); /* reference -> prediction first */
        plm_stats(dp, np, &hd, &avg, &ahd, &pct);
        if (!is_set(p, n) && !is_set(r, n)) {
            close_to(res.v[VP_SM_HD], NAN, "both empty");
        } else {
            close_to(res.v[VP_SM_HD], hd, "hd");
            close_to(res.v[VP_SM_MASD], avg, "masd");
            close_to(res.v[VP_SM_AHD], ahd, "ahd");
            close_to(res.v[VP_SM_HDP], pct, "hd95");
        }
        /* set variant: every voxel of one mask, 0 inside the other, else its distance to the boundary */
        float hds = 0, avgs = 0, ahds = 0, pcts = 0;
        for (int dir = 1; dir >= 0; dir--) {
            const uint8_t *a = dir ? r : p, *b = dir ? p : r;
            double *ds = malloc(n * sizeof *ds);
            uint64_t k = 0;
            for (uint64_t i = 0; i < n; i++) {
                if (a[i] != VP_MASK_IN) continue;
                double best = b[i] == VP_MASK_IN ? 0 : INFINITY;
                for (uint64_t j = 0; j < n && best > 0; j++) {
                    if (!is_boundary(b, d, j, axes)) continue;
                    double dx = ((double)(i % d[0]) - (double)(j % d[0])) * sp[0];
                    double dy = ((double)(i / d[0] % d[1]) - (double)(j / d[0] % d[1])) * sp[1];
                    double dz = ((double)(i / (d[0] * d[1])) - (double)(j / (d[0] * d[1]))) * sp[2];
                    best = fmin(best, sqrt(dx * dx + dy * dy + dz * dz));
                }
                ds[k++] = best == INFINITY ? FLT_MAX : best;
            }
            plm_stats(ds, k, &hds, &avgs, &ahds, &pcts);
            free(ds);
        }
        if (is_set(p, n) || is_set(r, n)) {
            close_to(res.v[VP_SM_HD_SET], hds, "hd_set");
            close_to(res.v[VP_SM_MASD_SET], avgs, "masd_set");
            close_to(res.v[VP_SM_AHD_SET], ahds, "ahd_set");
            close_to(res.v[VP_SM_HDP_SET], pcts, "hd95_set");
        }
        free(dp);
        free(dr);
        free(p);
        free(r);
    }
}

/* One mask empty: plastimatch's distance map of it is FLT_MAX everywhere; a single voxel on a
 * one-voxel box has no boundary voxels (every axis is one voxel thick); both empty: NaN. */
Test(surface, plastimatch_empty_masks)
{
    uint64_t d[3] = {5, 5, 5};
    uint8_t p[125], r[125];
    random_pair(d, p, r, 63, 0);
    for (int z = 1; z <= 2; z++)
        for (int y = 1; y <= 2; y++)
            for (int x = 1; x <= 2; x++) r[(z * 5 + y) * 5 + x] = VP_MASK_IN;
    struct vp_surface_in in = {{5, 5, 5}, p, r, {0, 0, 0}, {1.0, 1.0, 2.0}};
    struct vp_surface_opts o = {VP_CONV_PLASTIMATCH, 95, 1.0};
    struct vp_surface_res res;
    vp_surface_metrics(&in, &o, &res);
    const double flt_max = FLT_MAX, half = (float)(0.5 * FLT_MAX);
    close_to(res.v[VP_SM_HD], flt_max, "hd");
    close_to(res.v[VP_SM_HDP], half, "hd95");
    close_to(res.v[VP_SM_MASD], half, "masd");
    close_to(res.v[VP_SM_AHD], flt_max, "ahd");
    close_to(res.v[VP_SM_NSD], 0, "nsd");
    close_to(res.v[VP_SM_BPREC], NAN, "bprec");
    close_to(res.v[VP_SM_BREC], 0, "brec");
    close_to(res.v[VP_SM_HD_SET], flt_max, "hd_set");
    uint64_t d1[3] = {3, 3, 3};
    uint8_t p1[27], r1[27];
    random_pair(d1, p1, r1, 63, 0);
    r1[13] = VP_MASK_IN;
    in = (struct vp_surface_in){{3, 3, 3}, p1, r1, {0, 0, 0}, {1.0, 1.0, 2.0}};
    vp_surface_metrics(&in, &o, &res);
    close_to(res.v[VP_SM_HD], 0, "hd, no boundary voxels");
    close_to(res.v[VP_SM_MASD], 0, "masd, no boundary voxels");
    close_to(res.v[VP_SM_HD_SET], flt_max, "hd_set, single voxel");
    close_to(res.v[VP_SM_HDP_SET], 0, "hd95_set, f n < 1");
    close_to(res.v[VP_SM_MASD_SET], half, "masd_set, single voxel");
    r1[13] = VP_MASK_BG;
    vp_surface_metrics(&in, &o, &res);
    for (int m = 0; m < VP_SM_N; m++) close_to(res.v[m], NAN, "both empty");
}

Test(surface, same_bits_for_any_thread_count)
{
    uint64_t d[3] = {140, 100, 80}, n = 140 * 100 * 80; /* above vp_slice_grain's single-thread size */
    uint8_t *p = malloc(n), *r = malloc(n);
    random_pair(d, p, r, 5, 20);
    struct vp_surface_in in = {{d[0], d[1], d[2]}, p, r, {0, 0, 0}, {0.98, 0.98, 2.0}};
    int saved = vp_threads;
    for (int c = 0; c < VP_NCONV; c++) {
        struct vp_surface_opts o = {(enum vp_conv)c, 95, 2.0};
        struct vp_surface_res a, b;
        vp_threads = 1;
        vp_surface_metrics(&in, &o, &a);
        vp_threads = 4;
        vp_surface_metrics(&in, &o, &b);
        cr_assert_eq(memcmp(a.v, b.v, sizeof a.v), 0, "convention %s", vp_conv_names[c]);
    }
    vp_threads = saved;
    free(p);
    free(r);
}
