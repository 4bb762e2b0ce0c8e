/* Unit tests for the "vec" mode of the CPU backend's flat conv3d kernel (lib/nn_ops_fast_conv.c):
 * stride-1 convolutions whose output rows are a whole number of vectors wide (16 floats on
 * AVX-512, or 8 when the rows are an odd multiple of 8; 8 on AVX2 and the baseline) are computed
 * as lists of output vectors instead of flat runs. Shapes chosen so that the tiles of 3 vectors
 * span rows, end with tails of 1 and 2 vectors, and planes split into several work items;
 * partial output-channel blocks, bias or none, batch 2, the residual epilogue (conv3d_add).
 * Every ISA variant and 1-3 threads: within 1e-5 x max(1, max |y|) of the reference, no voxel
 * left unwritten, the same bytes for any thread count, conv3d_add the bytes of conv3d plus r.
 * (Helpers as in test_nn_fast_conv.c.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_backend.h"

static unsigned rng = 4242;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)(rng >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}
static void fill(vp_tensor *t)
{
    for (int64_t i = 0; i < vp_tensor_numel(t); i++) t->data[i] = frand();
}
static size_t nbytes(const vp_tensor *t) { return (size_t)vp_tensor_numel(t) * sizeof(float); }

/* Max |a - b| relative to max(1, max |b|); fails on NaN. */
static double rel_diff(const vp_tensor *a, const vp_tensor *b)
{
    double m = 0, ym = 1;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        cr_assert(!isnan(d), "NaN at %lld", (long long)i);
        if (d > m) m = d;
        if (fabs(b->data[i]) > ym) ym = fabs(b->data[i]);
    }
    return m / ym;
}

static const char *isas[] = {"avx512", "avx2", "base"};

/* conv3d (transposed when tr) on the CPU backend with 1, 2, 3 threads and every ISA variant vs
 * the reference. conv3d also runs fused with a residual (conv3d_add, the flat kernel's epilogue
 * or conv3d then add): the bytes of conv3d plus r, for every thread count and ISA. */
static void check(int tr, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                  const char *what)
{
    int64_t os[5];
    cr_assert_eq(tr ? vp_nn_conv_transpose3d_shape(x, w, b, p, os) : vp_nn_conv3d_shape(x, w, b, p, os), 0, "%s: shape", what);
    vp_tensor *yr = vp_tensor_new(5, os), *y[3], *r = vp_tensor_new(5, os), *ya = vp_tensor_new(5, os), *want = vp_tensor_new(5, os);
    cr_assert_eq(tr ? vp_nn_ref_conv_transpose3d(x, w, b, p, yr) : vp_nn_ref_conv3d(x, w, b, p, yr), 0);
    fill(r);
    for (int v = 0; v < 3; v++) {
        setenv("VOXPIPE_NN_ISA", isas[v], 1);
        const vp_nn_backend *be = vp_nn_backend_cpu();
        for (int t = 0; t < 3; t++) {
            y[t] = vp_tensor_new(5, os);
            memset(y[t]->data, 0xff, nbytes(y[t])); /* NaN: a voxel left unwritten fails rel_diff */
            vp_threads = t + 1;
            cr_assert_eq(tr ? be->conv_transpose3d(be, x, w, b, p, y[t]) : be->conv3d(be, x, w, b, p, y[t]), 0, "%s", what);
        }
        for (int t = 1; t < 3; t++)
            cr_assert_eq(memcmp(y[0]->data, y[t]->data, nbytes(yr)), 0, "%s %s: %d threads changed the bytes", what, isas[v], t + 1);
        double d = rel_diff(y[0], yr);
        cr_expect_leq(d, 1e-5, "%s %s: rel diff %g", what, isas[v], d);
        for (int64_t i = 0; !tr && i < vp_tensor_numel(yr); i++) want->data[i] = y[0]->data[i] + r->data[i];
        for (int t = 0; !tr && t < 3; t++) {
            memset(ya->data, 0xff, nbytes(ya));
            vp_threads = t + 1;
            cr_assert_eq(be->conv3d_add(be, x, w, b, p, r, ya), 0, "%s: conv3d_add", what);
            cr_assert_eq(memcmp(ya->data, want->data, nbytes(ya)), 0, "%s %s %d threads: conv3d_add is not conv3d + r", what,
                         isas[v], t + 1);
        }
        for (int t = 0; t < 3; t++) vp_tensor_free(&y[t]);
    }
    unsetenv("VOXPIPE_NN_ISA");
    vp_tensor_free(&yr), vp_tensor_free(&r), vp_tensor_free(&ya), vp_tensor_free(&want);
}

Test(nn_fast_conv_vec, whole_vector_rows)
{
    /* (N, Ci, D, H, W, Co, k): W = 16 / 32 / 64 / 80 / 112 / 128 (multiples of 16 that are not
     * rows of whole 48-wide tiles), H giving vector counts = 0, 1, 2 mod 3; 40 x 64 and 50 x 32:
     * 160 and 100 vectors of 16, two work items per plane; a 1x3x3 kernel and a padded 1x1x1;
     * W = 8, 24, 40 (AVX-512 takes vectors of 8 there), 100 rows of 8 (two work items) */
    const int sh[][7] = {{1, 3, 3, 4, 16, 5, 3}, {2, 4, 2, 5, 32, 9, 3}, {1, 2, 3, 7, 64, 8, 3}, {1, 5, 2, 3, 80, 12, 3},
                         {1, 3, 2, 40, 64, 4, 3}, {2, 2, 2, 50, 32, 3, 3}, {1, 6, 3, 2, 112, 17, 3}, {1, 2, 2, 3, 128, 8, 3},
                         {1, 3, 3, 6, 16, 10, 1}, {2, 3, 2, 8, 24, 7, 3},
                         {2, 5, 3, 8, 8, 16, 3}, {1, 4, 2, 7, 40, 9, 3}, {1, 3, 2, 100, 8, 8, 3}};
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        const int N = sh[i][0], Ci = sh[i][1], D = sh[i][2], H = sh[i][3], W = sh[i][4], Co = sh[i][5], k = sh[i][6];
        const int kd = i == 3 ? 1 : k, pd = i == 8 ? 1 : k / 2; /* case 3: 1x3x3; case 8: 1x1x1 padded by 1 */
        vp_tensor *x = vp_tensor_new5(N, Ci, D, H, W);
        int64_t ws[5] = {Co, Ci, kd, k, k}, bs[1] = {Co};
        vp_tensor *w = vp_tensor_new(5, ws), *b = i % 2 ? vp_tensor_new(1, bs) : NULL;
        fill(x), fill(w);
        if (b) fill(b);
        vp_conv3d_params p = {{1, 1, 1}, {kd == 1 && i != 8 ? 0 : pd, pd, pd}, {0, 0, 0}};
        char what[160];
        snprintf(what, sizeof what, "case %zu: x (%d,%d,%d,%d,%d) -> %d, k (%d,%d,%d) p %d%s", i, N, Ci, D, H, W, Co, kd, k, k, pd,
                 b ? " bias" : "");
        check(0, x, w, b, &p, what);
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b);
    }
}
