/* Unit tests of lib/augment: --fixed parsing, the random streams, and the intensity pieces' invariants
 * (identities, constants, thread-count independence). Values against the peers are in augment.bats. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "cli.h"
#include "frame.h"
#include "volume.h"

static float *ramp(const uint64_t n[3], unsigned seed)
{
    uint64_t nv = n[0] * n[1] * n[2];
    float *x = malloc(nv * sizeof *x);
    for (uint64_t i = 0; i < nv; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) % 2000) - 1000.0f + 0.25f * (float)(i % 7);
    }
    return x;
}

Test(augment, parse_fixed)
{
    struct vp_aug_fixed f;
    cr_assert_eq(vp_aug_parse_fixed("rotation=0.1,0,-0.2;scaling=1.1;flip=1,0,1;blur=0.7;gamma=1.2", &f), 0);
    cr_assert(f.set[VP_AUG_ROTATION] && f.set[VP_AUG_SCALING] && f.set[VP_AUG_FLIP] && f.set[VP_AUG_BLUR] && f.set[VP_AUG_GAMMA]);
    cr_assert(!f.set[VP_AUG_NOISE] && !f.set[VP_AUG_GAMMA_INV] && !f.has_centre);
    cr_assert_eq(f.rotation[2], strtod("-0.2", NULL));
    cr_assert(f.scale[0] == f.scale[2] && f.blur[0] == f.blur[1] && f.flip[0] && !f.flip[1]);
    cr_assert_neq(vp_aug_parse_fixed("rotation=nan,0,0", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("scaling=inf", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("scaling=0", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("rotation=1,2", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("flip=2,0,0", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("noise", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("noise=0.1x", &f), 0);
    cr_assert_neq(vp_aug_parse_fixed("zoom=2", &f), 0);
}

Test(augment, uniform_stream_in_range_and_seeded)
{
    uint64_t a = 42, b = 42, c = 43;
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        double u = vp_aug_uniform(&a), v = vp_aug_uniform(&b), w = vp_aug_uniform(&c);
        cr_assert(u >= 0 && u < 1);
        cr_assert_eq(u, v);
        differ |= u != w;
    }
    cr_assert(differ);
    /* the counter-based field: the same value for the same (key, i), any order of evaluation */
    cr_assert_eq(vp_aug_normal_at(7, 12345), vp_aug_normal_at(7, 12345));
    cr_assert_neq(vp_aug_normal_at(7, 12345), vp_aug_normal_at(8, 12345));
}

Test(augment, identities)
{
    uint64_t n[3] = {17, 13, 9}, nv = n[0] * n[1] * n[2];
    float *x = ramp(n, 1), *y = malloc(nv * sizeof *y);
    memcpy(y, x, nv * sizeof *y);
    vp_aug_brightness(y, nv, 1.0);
    cr_assert_arr_eq(x, y, nv * sizeof *x);
    vp_aug_lowres(y, n, 1.0); /* scale 1: nearest-exact and trilinear both map voxel i to i */
    cr_assert_arr_eq(x, y, nv * sizeof *x);
    vp_aug_noise(y, nv, 0.0, 99);
    cr_assert_arr_eq(x, y, nv * sizeof *x);
    vp_aug_contrast(y, nv, 1.0); /* (x - mean) + mean: within rounding */
    for (uint64_t i = 0; i < nv; i++) cr_assert_float_eq(x[i], y[i], 1e-3);
    memcpy(y, x, nv * sizeof *y);
    vp_aug_gamma(y, nv, 1.0, 0);
    for (uint64_t i = 0; i < nv; i++) cr_assert_float_eq(x[i], y[i], 1e-3);
    free(x), free(y);
}

Test(augment, constant_stays_constant)
{
    uint64_t n[3] = {8, 6, 5}, nv = n[0] * n[1] * n[2];
    float *x = malloc(nv * sizeof *x);
    for (uint64_t i = 0; i < nv; i++) x[i] = 3.5f;
    double s[3] = {1.0, 0.7, 0.5};
    vp_aug_blur(x, n, s); /* normalised kernel, reflect boundary */
    for (uint64_t i = 0; i < nv; i++) cr_assert_float_eq(x[i], 3.5f, 1e-5);
    vp_aug_lowres(x, n, 0.55);
    for (uint64_t i = 0; i < nv; i++) cr_assert_float_eq(x[i], 3.5f, 1e-5);
    free(x);
}

Test(augment, contrast_keeps_range_gamma_keeps_mean_std)
{
    uint64_t n[3] = {20, 10, 6}, nv = n[0] * n[1] * n[2];
    float *x = ramp(n, 3), *y = malloc(nv * sizeof *y);
    float mn = x[0], mx = x[0];
    for (uint64_t i = 0; i < nv; i++) mn = fminf(mn, x[i]), mx = fmaxf(mx, x[i]);
    memcpy(y, x, nv * sizeof *y);
    vp_aug_contrast(y, nv, 1.25);
    for (uint64_t i = 0; i < nv; i++) cr_assert(y[i] >= mn && y[i] <= mx);
    memcpy(y, x, nv * sizeof *y);
    vp_aug_gamma(y, nv, 1.4, 1);
    double m0 = 0, m1 = 0, v0 = 0, v1 = 0;
    for (uint64_t i = 0; i < nv; i++) m0 += x[i], m1 += y[i];
    m0 /= (double)nv, m1 /= (double)nv;
    for (uint64_t i = 0; i < nv; i++) v0 += (x[i] - m0) * (x[i] - m0), v1 += (y[i] - m1) * (y[i] - m1);
    cr_assert_float_eq(m0, m1, 1e-3 * (1 + fabs(m0)));
    cr_assert_float_eq(sqrt(v0), sqrt(v1), 1e-4 * sqrt(v0));
    free(x), free(y);
}

/* every piece gives the same bytes on 1 and 3 threads (a volume above the reduction grain) */
Test(augment, thread_count_independent)
{
    uint64_t n[3] = {61, 47, 29}, nv = n[0] * n[1] * n[2];
    float *a = ramp(n, 5), *b = malloc(nv * sizeof *b);
    memcpy(b, a, nv * sizeof *b);
    double s[3] = {0.6, 0.9, 0.75};
    for (int pass = 0; pass < 2; pass++) {
        float *x = pass ? b : a;
        vp_threads = pass ? 3 : 1;
        vp_aug_noise(x, nv, 0.3, 1234);
        vp_aug_blur(x, n, s);
        vp_aug_contrast(x, nv, 0.8);
        vp_aug_lowres(x, n, 0.63);
        vp_aug_gamma(x, nv, 0.85, 1);
        vp_aug_gamma(x, nv, 1.3, 0);
    }
    cr_assert_arr_eq(a, b, nv * sizeof *a);
    free(a), free(b);
}

/* the whole case: same seed and id -> same bytes and record; the label keeps only input values */
Test(augment, case_reproducible)
{
    vp_vol *img[2], *lab[2];
    vp_case *c[2];
    struct vp_aug_config cfg;
    vp_aug_config_default(&cfg);
    cfg.seed = 77;
    for (int t = 0; t < VP_AUG_N; t++) cfg.p[t] = 1;
    cfg.has_patch = 1, cfg.patch[0] = 24, cfg.patch[1] = 20, cfg.patch[2] = 10;
    for (int k = 0; k < 2; k++) {
        uint64_t d[4] = {30, 28, 12, 1};
        double aff[16] = {1.5, 0, 0, -20, 0, 1.5, 0, 10, 0, 0, 3, 5, 0, 0, 0, 1};
        img[k] = vp_vol_new(d, VP_I16, aff);
        lab[k] = vp_vol_new(d, VP_U8, aff);
        for (uint64_t i = 0; i < vp_vol_nvox(img[k]); i++) {
            ((int16_t *)img[k]->data)[i] = (int16_t)((i * 37) % 900 - 450);
            ((uint8_t *)lab[k]->data)[i] = (uint8_t)(((i / 30) % 28 > 14) * 4 + ((i % 30) > 20));
        }
        c[k] = vp_case_new("case-7");
        vp_case_add_vol(c[k], "image", img[k]);
        vp_case_add_vol(c[k], "label", lab[k]);
        vp_threads = k ? 2 : 1;
        cr_assert_eq(vp_augment_case(c[k], "image", "label", 1, &cfg), 0);
    }
    vp_vol *i0 = vp_case_vol(c[0], "image"), *i1 = vp_case_vol(c[1], "image"), *l0 = vp_case_vol(c[0], "label");
    cr_assert_eq(i0->dtype, VP_F32);
    cr_assert_eq(i0->dims[0], 24);
    cr_assert_arr_eq(i0->data, i1->data, vp_vol_nvox(i0) * 4);
    cr_assert_arr_eq(l0->data, vp_case_vol(c[1], "label")->data, vp_vol_nvox(l0));
    for (uint64_t i = 0; i < vp_vol_nvox(l0); i++) {
        uint8_t v = ((uint8_t *)l0->data)[i];
        cr_assert(v == 0 || v == 1 || v == 4 || v == 5);
    }
    const vp_kv *m0 = vp_case_meta(c[0], "augment"), *m1 = vp_case_meta(c[1], "augment");
    cr_assert(m0 && m1 && m0->len == m1->len);
    cr_assert_arr_eq(m0->raw, m1->raw, m0->len);
    vp_case_free(&c[0]);
    vp_case_free(&c[1]);
}

/* the elastic field: thread-count independent, zero mean, bounded by its magnitude */
Test(augment, elastic_field)
{
    uint64_t n[3] = {40, 33, 21}, nv = n[0] * n[1] * n[2];
    double sigma[3] = {4.0, 50.0, 0.0}, mag[3] = {2.0, 0.5, 1.0}; /* 50 > n: the folded kernel */
    double *a = malloc(3 * nv * sizeof *a), *b = malloc(3 * nv * sizeof *b);
    vp_threads = 1;
    vp_aug_elastic_field(a, n, sigma, mag, 31);
    vp_threads = 3;
    vp_aug_elastic_field(b, n, sigma, mag, 31);
    cr_assert_arr_eq(a, b, 3 * nv * sizeof *a);
    for (int d = 0; d < 3; d++) {
        double s = 0, lo = a[d * nv], hi = a[d * nv];
        for (uint64_t i = 0; i < nv; i++) s += a[d * nv + i], lo = fmin(lo, a[d * nv + i]), hi = fmax(hi, a[d * nv + i]);
        cr_assert(fabs(s / (double)nv) < 1e-12 * mag[d]);
        /* before the mean was removed every |value| was <= mag: the spread is at most 2 mag; unblurred
         * white noise reaches both signs, so its spread is at least mag */
        cr_assert(hi - lo <= 2 * mag[d] * (1 + 1e-12));
        if (sigma[d] == 0) cr_assert(hi - lo >= mag[d]);
    }
    free(a), free(b);
}

/* the block fill gives the values of the per-index function, from odd and even starts */
Test(augment, normal_fill_matches_pointwise)
{
    double v[9];
    for (uint64_t first = 0; first < 3; first++) {
        vp_aug_normal_fill(v, 1234, first, 9);
        for (uint64_t i = 0; i < 9; i++) cr_assert_eq(v[i], vp_aug_normal_at(1234, first + i));
    }
}
