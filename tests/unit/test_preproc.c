/* Unit tests for lib/crop, lib/normalize and lib/gauss: properties checked against brute-force
 * definitions (no expected number typed in): foreground boxes, MONAI's k-divisible rule, crop with
 * padding and its inverse on every dtype, the crop meta stack, two independent percentile paths
 * (histogram vs selection), Gaussian invariants, and output independent of the thread count. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "crop.h"
#include "frame.h"
#include "gauss.h"
#include "normalize.h"

static unsigned rng = 12345;
static unsigned rnd(void) { rng = rng * 1103515245u + 12345u; return (rng >> 8) & 0xffffff; }

static vp_vol *rand_vol(enum vp_dtype t, uint64_t nx, uint64_t ny, uint64_t nz, uint64_t nc)
{
    uint64_t d[4] = {nx, ny, nz, nc};
    double aff[16] = {0.8, 0.1, 0, 10, -0.1, 0.9, 0, -5, 0, 0, 2.5, 3, 0, 0, 0, 1};
    vp_vol *v = vp_vol_new(d, t, aff);
    v->has_channels = nc > 1;
    uint64_t n = vp_vol_nvox(v);
    for (uint64_t i = 0; i < n; i++) {
        double x = (double)(rnd() % 2000) - 1000;
        unsigned char buf[8];
        if (t == VP_U8 || t == VP_U16) x = floor(fabs(x) / 4);
        cr_assert_eq(vp_dtype_encode(t, x, buf), 0);
        memcpy((char *)v->data + i * vp_dtype_size(t), buf, vp_dtype_size(t));
    }
    return v;
}

static double at(const vp_vol *v, int64_t x, int64_t y, int64_t z, uint64_t c)
{
    return vp_vol_get(v, ((c * v->dims[2] + (uint64_t)z) * v->dims[1] + (uint64_t)y) * v->dims[0] + (uint64_t)x);
}

static int64_t clampi(int64_t x, int64_t n) { return x < 0 ? 0 : x >= n ? n - 1 : x; }

Test(crop, fg_bbox_matches_brute_force_for_any_threads)
{
    for (int trial = 0; trial < 20; trial++) {
        vp_vol *v = vp_vol_new((uint64_t[4]){17, 13, 11, trial % 3 + 1}, VP_I16, NULL);
        int16_t *p = v->data;
        int nset = trial % 5;
        for (int k = 0; k < nset; k++) p[rnd() % vp_vol_nvox(v)] = (int16_t)(1 + rnd() % 100);
        struct vp_box want = {{INT64_MAX, INT64_MAX, INT64_MAX}, {INT64_MIN, INT64_MIN, INT64_MIN}};
        int any = 0;
        for (uint64_t c = 0; c < v->dims[3]; c++)
            for (int64_t z = 0; z < 11; z++)
                for (int64_t y = 0; y < 13; y++)
                    for (int64_t x = 0; x < 17; x++)
                        if (at(v, x, y, z, c) > 0) {
                            any = 1;
                            int64_t q[3] = {x, y, z};
                            for (int a = 0; a < 3; a++) {
                                if (q[a] < want.lo[a]) want.lo[a] = q[a];
                                if (q[a] + 1 > want.hi[a]) want.hi[a] = q[a] + 1;
                            }
                        }
        for (int th = 1; th <= 4; th += 3) {
            vp_threads = th;
            struct vp_box b;
            cr_assert_eq(vp_fg_bbox(v, 0, &b), any);
            if (any) cr_assert_eq(memcmp(&b, &want, sizeof b), 0, "trial %d threads %d", trial, th);
        }
        vp_vol_free(&v);
    }
}

Test(crop, k_divisible_is_monai_rule)
{
    for (int64_t lo = -5; lo <= 5; lo++)
        for (int64_t s = 1; s <= 40; s++)
            for (int64_t k = 1; k <= 9; k++) {
                struct vp_box b = {{lo, 0, 0}, {lo + s, 1, 1}};
                vp_box_k_divisible(&b, (int64_t[3]){k, 1, 1});
                int64_t ns = b.hi[0] - b.lo[0];
                cr_assert(ns % k == 0 && ns >= s && ns - s < k);
                /* start moves down by floor((ns - s) / 2), so the old box stays centred */
                cr_assert_eq(lo - b.lo[0], (ns - s) / 2);
            }
}

Test(crop, crop_pad_and_uncrop_every_dtype)
{
    for (int t = 0; t < VP_NDTYPES; t++)
        for (int trial = 0; trial < 12; trial++) {
            vp_vol *v = rand_vol((enum vp_dtype)t, 9, 7, 5, trial % 2 + 1);
            struct vp_box b;
            for (int a = 0; a < 3; a++) {
                int64_t n = (int64_t)v->dims[a];
                b.lo[a] = (int64_t)(rnd() % (unsigned)(n + 6)) - 3;
                b.hi[a] = b.lo[a] + 1 + (int64_t)(rnd() % (unsigned)(n + 4));
                if (b.hi[a] <= 0) b.hi[a] = 1;
                if (b.lo[a] >= n) b.lo[a] = n - 1;
            }
            for (int mode = 0; mode < 2; mode++) {
                double pad = t == VP_U8 || t == VP_U16 ? 7 : -7;
                vp_vol *c = vp_vol_crop(v, &b, (enum vp_pad_mode)mode, pad);
                cr_assert_eq(c->dtype, v->dtype);
                cr_assert_eq(c->dims[3], v->dims[3]);
                double aff[16];
                vp_affine_shift(v->affine, b.lo, aff);
                cr_assert_eq(memcmp(aff, c->affine, sizeof aff), 0);
                for (uint64_t ch = 0; ch < c->dims[3]; ch++)
                    for (int64_t z = 0; z < (int64_t)c->dims[2]; z++)
                        for (int64_t y = 0; y < (int64_t)c->dims[1]; y++)
                            for (int64_t x = 0; x < (int64_t)c->dims[0]; x++) {
                                int64_t sx = x + b.lo[0], sy = y + b.lo[1], sz = z + b.lo[2];
                                int in = sx >= 0 && sy >= 0 && sz >= 0 && sx < 9 && sy < 7 && sz < 5;
                                double want = in || mode == VP_PAD_EDGE ? at(v, clampi(sx, 9), clampi(sy, 7), clampi(sz, 5), ch) : pad;
                                cr_assert_eq(at(c, x, y, z, ch), want, "dtype %d trial %d mode %d", t, trial, mode);
                            }
                vp_vol *u = vp_vol_uncrop(c, &b, v->dims, v->affine, pad);
                cr_assert_eq(memcmp(u->affine, v->affine, sizeof aff), 0);
                for (uint64_t ch = 0; ch < u->dims[3]; ch++)
                    for (int64_t z = 0; z < 5; z++)
                        for (int64_t y = 0; y < 7; y++)
                            for (int64_t x = 0; x < 9; x++) {
                                int in = x >= b.lo[0] && x < b.hi[0] && y >= b.lo[1] && y < b.hi[1] && z >= b.lo[2] && z < b.hi[2];
                                cr_assert_eq(at(u, x, y, z, ch), in ? at(v, x, y, z, ch) : pad);
                            }
                vp_vol_free(&u);
                vp_vol_free(&c);
            }
            vp_vol_free(&v);
        }
}

Test(crop, encode_refuses_what_a_dtype_cannot_hold)
{
    unsigned char b[8];
    cr_expect_eq(vp_dtype_encode(VP_U8, -1, b), -1);
    cr_expect_eq(vp_dtype_encode(VP_U8, 256, b), -1);
    cr_expect_eq(vp_dtype_encode(VP_U8, 0.5, b), -1);
    cr_expect_eq(vp_dtype_encode(VP_I16, -32769, b), -1);
    cr_expect_eq(vp_dtype_encode(VP_I16, -32768, b), 0);
    cr_expect_eq(vp_dtype_encode(VP_F16, 1e6, b), -1);
    cr_expect_eq(vp_dtype_encode(VP_F32, NAN, b), -1);
    cr_expect_eq(vp_dtype_encode(VP_F32, 0.1, b), 0);
}

Test(crop, meta_stack_push_pop)
{
    vp_case *c = vp_case_new("x");
    struct vp_crop_rec r[3];
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        for (int a = 0; a < 3; a++) { r[i].box.lo[a] = -i - a; r[i].box.hi[a] = 10 + i + a; r[i].orig_dims[a] = (uint64_t)(20 + i * 3 + a); }
        for (int k = 0; k < 16; k++) r[i].orig_affine[k] = k == 15 ? 1 : 0.1 * (k + 1) + i;
        vp_crop_meta_push(c, &r[i]);
    }
    char err[128];
    for (int i = 2; i >= 0; i--) {
        struct vp_crop_rec got;
        cr_assert_eq(vp_crop_meta_pop(c, &got, err, sizeof err), 1, "%s", err);
        cr_assert_eq(memcmp(&got.box, &r[i].box, sizeof got.box), 0);
        cr_assert_eq(memcmp(got.orig_dims, r[i].orig_dims, sizeof got.orig_dims), 0);
        cr_assert_eq(memcmp(got.orig_affine, r[i].orig_affine, sizeof got.orig_affine), 0);
        cr_assert_eq(vp_case_meta(c, "crop") != NULL, i > 0);
    }
    struct vp_crop_rec got;
    cr_assert_eq(vp_crop_meta_pop(c, &got, err, sizeof err), 0);
    vp_case_free(&c);
}

/* the same sample as i16 (histogram path) and as f32 (selection path) gives the same statistics */
Test(normalize, ct_stats_histogram_equals_selection)
{
    for (int trial = 0; trial < 8; trial++) {
        uint64_t d[4] = {23, 19, 7 + (uint64_t)trial, 1};
        vp_vol *img = vp_vol_new(d, VP_I16, NULL), *f = vp_vol_new(d, VP_F32, NULL), *m = vp_vol_new(d, VP_U8, NULL);
        uint64_t n = vp_vol_nvox(img);
        for (uint64_t i = 0; i < n; i++) {
            int16_t x = (int16_t)((int)(rnd() % 3000) - 1500 + (trial & 1 ? 0 : (int)(rnd() % 3) * 20000 - 20000));
            ((int16_t *)img->data)[i] = x;
            ((float *)f->data)[i] = x;
            ((uint8_t *)m->data)[i] = rnd() % 3 == 0;
        }
        struct vp_ct_stats a, b;
        vp_threads = 1 + trial % 3;
        int64_t na = vp_ct_stats(img, m, &a), nb = vp_ct_stats(f, m, &b);
        cr_assert_eq(na, nb);
        cr_assert(na > 0);
        cr_assert_eq(a.p00_5, b.p00_5, "trial %d: %.17g vs %.17g", trial, a.p00_5, b.p00_5);
        cr_assert_eq(a.p99_5, b.p99_5);
        cr_assert(fabs(a.mean - b.mean) <= 1e-12 * (1 + fabs(a.mean)));
        cr_assert(fabs(a.std - b.std) <= 1e-12 * a.std);
        vp_vol_free(&img); vp_vol_free(&f); vp_vol_free(&m);
    }
}

static double kth_sorted(void *p, uint64_t k) { return ((double *)p)[k]; }

static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* the percentile lies between the two ranks around q (n - 1) / 100 and hits the ranks at q = 0, 100 */
Test(normalize, percentile_linear_brackets)
{
    double v[101];
    for (int n = 1; n <= 101; n += 10) {
        for (int i = 0; i < n; i++) v[i] = (double)(rnd() % 1000) / 7;
        qsort(v, (size_t)n, sizeof *v, cmpd);
        cr_assert_eq(vp_percentile_linear(0, (uint64_t)n, kth_sorted, v), v[0]);
        cr_assert_eq(vp_percentile_linear(100, (uint64_t)n, kth_sorted, v), v[n - 1]);
        for (double q = 0.5; q < 100; q += 7.25) {
            double p = vp_percentile_linear(q, (uint64_t)n, kth_sorted, v), idx = q / 100 * (n - 1);
            int lo = (int)floor(idx), hi = lo + 1 < n ? lo + 1 : lo;
            cr_assert(p >= v[lo] && p <= v[hi]);
        }
    }
}

Test(gauss, constant_volume_and_thread_independence)
{
    uint64_t d[4] = {31, 17, 9, 2};
    for (int kind = 0; kind < 2; kind++) {
        vp_vol *v = vp_vol_new(d, VP_F32, NULL);
        uint64_t n = vp_vol_nvox(v);
        for (uint64_t i = 0; i < n; i++) ((float *)v->data)[i] = 3.5f;
        vp_gauss_smooth(v, (double[3]){1.3, 0.7, 0.9}, (enum vp_gauss_kind)kind);
        double wk[64], sum[3] = {0};
        int rr[3];
        double sg[3] = {1.3, 0.7, 0.9};
        for (int a = 0; a < 3; a++) {
            rr[a] = vp_gauss_kernel(sg[a], (enum vp_gauss_kind)kind, wk);
            for (int k = 0; k <= 2 * rr[a]; k++) sum[a] += wk[k];
        }
        /* away from the borders every kernel sees the constant: value x product of kernel sums */
        double want = 3.5 * sum[0] * sum[1] * sum[2];
        float got = ((float *)v->data)[(4 * 17 + 8) * 31 + 15];
        cr_assert(fabs(got - want) < 1e-5, "kind %d: %g vs %g", kind, got, want);
        if (kind == VP_GAUSS_SCIPY) /* normalised kernels and mirrored borders keep a constant everywhere */
            for (uint64_t i = 0; i < n; i++) cr_assert(fabs(((float *)v->data)[i] - 3.5) < 1e-5);
        vp_vol_free(&v);
        /* random data: identical bytes for 1 and 3 threads */
        vp_vol *r[2];
        for (int t = 0; t < 2; t++) {
            rng = 99;
            r[t] = rand_vol(VP_F32, 31, 17, 9, 2);
            vp_threads = t ? 3 : 1;
            vp_gauss_smooth(r[t], (double[3]){1.3, 0.7, 0.9}, (enum vp_gauss_kind)kind);
        }
        cr_assert_eq(memcmp(r[0]->data, r[1]->data, n * sizeof(float)), 0);
        vp_vol_free(&r[0]); vp_vol_free(&r[1]);
    }
}
