/* Unit tests: the exact EDT against a brute-force minimum over all feature voxels, on small random
 * masks with anisotropic spacing, sparse and dense, with and without query masks; the result must
 * not depend on the thread count. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "edt.h"

static unsigned rng = 12345;
static unsigned rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) & 0xffffff;
}

static void random_mask(uint8_t *m, uint64_t n, unsigned permille)
{
    for (uint64_t i = 0; i < n; i++) m[i] = rnd() % 1000 < permille;
}

/* distance from voxel i to the nearest feature, by trying every feature */
static double brute(const uint8_t *feat, const uint64_t d[3], const double sp[3], uint64_t i)
{
    int64_t x = (int64_t)(i % d[0]), y = (int64_t)(i / d[0] % d[1]), z = (int64_t)(i / (d[0] * d[1]));
    double best = INFINITY;
    for (uint64_t j = 0; j < d[0] * d[1] * d[2]; j++) {
        if (!feat[j]) continue;
        double dx = (double)((int64_t)(j % d[0]) - x) * sp[0];
        double dy = (double)((int64_t)(j / d[0] % d[1]) - y) * sp[1];
        double dz = (double)((int64_t)(j / (d[0] * d[1])) - z) * sp[2];
        double s = dx * dx + dy * dy + dz * dz;
        if (s < best) best = s;
    }
    return sqrt(best);
}

static void check_case(const uint64_t d[3], const double sp[3], unsigned feat_pm, unsigned query_pm)
{
    uint64_t n = d[0] * d[1] * d[2];
    uint8_t *feat = malloc(n), *query = malloc(n);
    random_mask(feat, n, feat_pm);
    random_mask(query, n, query_pm);
    double *out = malloc((n + 1) * sizeof *out);
    uint64_t nq = vp_edt_query(feat, query_pm >= 1000 ? NULL : query, d, sp, out);
    cr_assert_eq(nq, query_pm >= 1000 ? n : vp_mask_count(query, n));
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (query_pm < 1000 && !query[i]) continue;
        double want = brute(feat, d, sp, i);
        if (isinf(want)) cr_assert(isinf(out[k]), "voxel %lu: want inf, got %g", (unsigned long)i, out[k]);
        else cr_assert(fabs(out[k] - want) <= 1e-12 * (1 + want), "voxel %lu: %.17g vs brute force %.17g",
                       (unsigned long)i, out[k], want);
        k++;
    }
    cr_assert_eq(k, nq);
    free(feat);
    free(query);
    free(out);
}

Test(edt, random_masks_match_brute_force)
{
    const double spacings[][3] = {{1, 1, 1}, {0.98, 0.98, 2.0}, {3.0, 0.5, 1.25}, {0.7, 2.9, 0.33}, {0.1, 0.1, 10}};
    const unsigned dens[] = {2, 30, 300, 900};
    for (int t = 0; t < 30; t++) {
        uint64_t d[3] = {1 + rnd() % 13, 1 + rnd() % 11, 1 + rnd() % 9};
        for (vp_edt_probe = 0; vp_edt_probe < 3; vp_edt_probe++)
            check_case(d, spacings[t % 5], dens[(t / 5) % 4], t % 3 ? 400 : 1000);
    }
    /* larger boxes: long searches, envelope fallbacks, probes that give up */
    for (int t = 0; t < 8; t++) {
        uint64_t d[3] = {20 + rnd() % 30, 15 + rnd() % 30, 5 + rnd() % 12};
        for (vp_edt_probe = 0; vp_edt_probe < 3; vp_edt_probe++)
            check_case(d, spacings[(t + 1) % 5], t < 3 ? 1 : 60, t % 2 ? 100 : 1000);
    }
}

Test(edt, single_feature_and_no_feature)
{
    uint64_t d[3] = {7, 5, 4};
    double sp[3] = {0.9, 1.7, 2.5}, out[140];
    uint8_t feat[140] = {0};
    cr_assert_eq(vp_edt_query(feat, NULL, d, sp, out), 140);
    for (int i = 0; i < 140; i++) cr_assert(isinf(out[i]));
    feat[3 + 7 * (2 + 5 * 1)] = 1; /* one feature at (3, 2, 1) */
    vp_edt_query(feat, NULL, d, sp, out);
    for (uint64_t i = 0; i < 140; i++) cr_assert(fabs(out[i] - brute(feat, d, sp, i)) <= 1e-12 * (1 + out[i]));
    /* a line of one voxel in each direction */
    uint64_t lines[3][3] = {{9, 1, 1}, {1, 9, 1}, {1, 1, 9}};
    for (int a = 0; a < 3; a++) {
        uint8_t f[9] = {0};
        f[6] = 1;
        double o[9];
        vp_edt_query(f, NULL, lines[a], sp, o);
        for (uint64_t i = 0; i < 9; i++) cr_assert(fabs(o[i] - brute(f, lines[a], sp, i)) <= 1e-12 * (1 + o[i]));
    }
}

Test(edt, axis_offsets_are_exact_multiples_of_the_spacing)
{
    uint64_t d[3] = {11, 9, 7};
    double sp[3] = {0.98, 0.7, 2.5};
    uint8_t feat[693] = {0};
    feat[5 + 11 * (4 + 9 * 3)] = 1; /* (5, 4, 3) */
    double out[693];
    vp_edt_query(feat, NULL, d, sp, out);
    for (int k = -3; k <= 3; k++) {
        cr_assert_eq(out[(uint64_t)(5 + k) + 11 * (4 + 9 * 3)], fabs(k * sp[0]));
        cr_assert_eq(out[5 + 11 * ((uint64_t)(4 + k) + 9 * 3)], fabs(k * sp[1]));
        cr_assert_eq(out[5 + 11 * (4 + 9 * (uint64_t)(3 + k))], fabs(k * sp[2]));
    }
    /* off-axis: the same bits as sqrt((dx sx)^2 + (dy sy)^2 + (dz sz)^2) */
    for (uint64_t i = 0; i < 693; i++) cr_assert_eq(out[i], brute(feat, d, sp, i));
}

Test(edt, one_dimensional_envelope)
{
    double f[6] = {INFINITY, 4, INFINITY, INFINITY, 0.5, INFINITY}, d[6], z[7];
    int64_t v[6];
    vp_edt_1d(f, 6, 2.25, d, v, z);
    for (int q = 0; q < 6; q++) {
        double want = INFINITY;
        for (int p = 0; p < 6; p++)
            if (isfinite(f[p]) && f[p] + 2.25 * (q - p) * (q - p) < want) want = f[p] + 2.25 * (q - p) * (q - p);
        cr_assert(fabs(d[q] - want) <= 1e-12 * (1 + want), "q %d: %g vs %g", q, d[q], want);
    }
    double g[3] = {INFINITY, INFINITY, INFINITY};
    vp_edt_1d(g, 3, 1, d, v, z);
    for (int q = 0; q < 3; q++) cr_assert(isinf(d[q]));
}

Test(edt, same_bytes_for_any_thread_count)
{
    uint64_t d[3] = {128, 96, 90}, n = 128 * 96 * 90; /* above vp_slice_grain's single-thread size */
    double sp[3] = {0.98, 0.98, 2.0};
    uint8_t *feat = malloc(n), *query = malloc(n);
    random_mask(feat, n, 2);
    random_mask(query, n, 20);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int saved = vp_threads;
    vp_threads = 1;
    uint64_t na = vp_edt_query(feat, query, d, sp, a);
    vp_threads = 5;
    uint64_t nb = vp_edt_query(feat, query, d, sp, b);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na * sizeof *a), 0);
    vp_edt_probe = 0; /* the exact pass alone gives the same values */
    nb = vp_edt_query(feat, query, d, sp, b);
    cr_assert_eq(memcmp(a, b, na * sizeof *a), 0);
    vp_edt_probe = 2;
    nb = vp_edt_query(feat, query, d, sp, b);
    vp_edt_probe = 1;
    vp_threads = saved;
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, na * sizeof *a), 0);
    free(feat);
    free(query);
    free(a);
    free(b);
}
