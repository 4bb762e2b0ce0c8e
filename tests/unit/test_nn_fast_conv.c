/* Unit tests for the CPU backend's flat-plane conv3d (lib/nn_ops_fast_conv.c) and its transposed
 * convolution (lib/nn_ops_fast_convt.c) against the reference ops: random shapes chosen to reach
 * every path (narrow rows whose tiles run across row ends, stride 2 with its own row runs, stride 2
 * along d only, the in-place 1x1x1 run with scalar tails, channel counts that leave a partial
 * output-channel block, batch 2), every instruction-set variant; within 1e-5 x max(1, max |y|)
 * of the reference, and the same bytes for 1, 2 and 3 threads. whole_vector_rows: the flat kernel's
 * "vec" mode, stride-1 convs whose output rows are a whole number of vectors wide (16 floats on
 * AVX-512, or 8 when the rows are an odd multiple of 8; 8 on AVX2 and the baseline), with tiles of
 * 3 vectors spanning rows, tails of 1 and 2 vectors, planes split into several work items. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_backend.h"

static unsigned rng = 777;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)(rng >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}
static int irand(int lo, int hi)
{
    rng = rng * 1103515245u + 12345u;
    return lo + (int)((rng >> 8) % (unsigned)(hi - lo + 1));
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

Test(nn_fast_conv, flat_plane_paths)
{
    for (int it = 0; it < 40; it++) {
        const int kind = it % 5; /* 0 3x3x3 s1 p1, 1 stride 2, 2 1x1x1 in place, 3 stride (2,1,1), 4 (1,3,3) stride (1,2,2) */
        int N = irand(1, 2), Ci = irand(1, it % 7 == 0 ? 40 : 9), Co = irand(1, 20);
        int D = irand(1, 7), H = irand(1, 13), W = irand(1, it % 4 == 0 ? 70 : 30);
        int k[3] = {3, 3, 3}, s[3] = {1, 1, 1}, pd[3] = {1, 1, 1};
        if (kind == 1) s[0] = s[1] = s[2] = 2, pd[0] = pd[1] = pd[2] = irand(0, 1);
        if (kind == 2) k[0] = k[1] = k[2] = 1, pd[0] = pd[1] = pd[2] = 0;
        if (kind == 3) s[0] = 2;
        if (kind == 4) k[0] = 1, pd[0] = 0, s[1] = s[2] = 2;
        if (D + 2 * pd[0] < k[0]) D = k[0];
        if (H + 2 * pd[1] < k[1]) H = k[1];
        if (W + 2 * pd[2] < k[2]) W = k[2];
        vp_tensor *x = vp_tensor_new5(N, Ci, D, H, W);
        int64_t ws[5] = {Co, Ci, k[0], k[1], k[2]}, bs[1] = {Co};
        vp_tensor *w = vp_tensor_new(5, ws), *b = irand(0, 1) ? vp_tensor_new(1, bs) : NULL;
        fill(x), fill(w);
        if (b) fill(b);
        vp_conv3d_params p = {{s[0], s[1], s[2]}, {pd[0], pd[1], pd[2]}, {0, 0, 0}};
        char what[160];
        snprintf(what, sizeof what, "case %d: x (%d,%d,%d,%d,%d) -> %d, k (%d,%d,%d) s (%d,%d,%d) p %d%s", it, N, Ci, D, H, W, Co,
                 k[0], k[1], k[2], s[0], s[1], s[2], pd[1], b ? " bias" : "");
        check(0, x, w, b, &p, what);
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b);
    }
}

/* The SegResNet shapes at a reduced size: 16 channels on rows of 24 (two tiles of 16 wide
 * vectors per row in the old kernel; runs across rows here), and 64 channels on 6^3. */
Test(nn_fast_conv, segresnet_like_shapes)
{
    const int sh[][3] = {{16, 24, 16}, {64, 6, 64}, {16, 24, 32}};
    for (int i = 0; i < 3; i++) {
        const int c = sh[i][0], n = sh[i][1], co = sh[i][2], st = i == 2 ? 2 : 1;
        vp_tensor *x = vp_tensor_new5(1, c, n, n, n);
        int64_t ws[5] = {co, c, 3, 3, 3};
        vp_tensor *w = vp_tensor_new(5, ws);
        fill(x), fill(w);
        vp_conv3d_params p = {{st, st, st}, {1, 1, 1}, {0, 0, 0}};
        char what[64];
        snprintf(what, sizeof what, "%d ch %d^3 -> %d stride %d", c, n, co, st);
        check(0, x, w, NULL, &p, what);
        vp_tensor_free(&x), vp_tensor_free(&w);
    }
}

/* Transposed conv: kernel == stride (2,2,2), (1,2,2), (2,2,1), (3,3,3) take the fast path; an
 * overlapping kernel with padding and output_padding falls back on the reference (same results). */
Test(nn_fast_conv, transposed)
{
    const int ks[][3] = {{2, 2, 2}, {1, 2, 2}, {2, 2, 1}, {3, 3, 3}, {2, 2, 2}, {3, 3, 3}};
    for (int it = 0; it < 12; it++) {
        const int *k = ks[it % 6], overlap = it % 6 == 5;
        int N = irand(1, 2), Ci = irand(1, 12), Co = irand(1, 10), D = irand(1, 6), H = irand(1, 9), W = irand(1, 21);
        vp_tensor *x = vp_tensor_new5(N, Ci, D, H, W);
        int64_t ws[5] = {Ci, Co, k[0], k[1], k[2]}, bs[1] = {Co};
        vp_tensor *w = vp_tensor_new(5, ws), *b = irand(0, 1) ? vp_tensor_new(1, bs) : NULL;
        fill(x), fill(w);
        if (b) fill(b);
        vp_conv3d_params p = {{k[0], k[1], k[2]}, {0, 0, 0}, {0, 0, 0}};
        if (overlap) p = (vp_conv3d_params){{2, 2, 2}, {1, 1, 1}, {1, 1, 1}};
        char what[160];
        snprintf(what, sizeof what, "convT case %d: x (%d,%d,%d,%d,%d) -> %d, k (%d,%d,%d)%s%s", it, N, Ci, D, H, W, Co, k[0], k[1],
                 k[2], overlap ? " s2 p1 op1" : "", b ? " bias" : "");
        check(1, x, w, b, &p, what);
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b);
    }
}

/* Rows a whole number of main tiles wide (48, 96) or wide enough (200) run one output row at a time
 * and store their main tiles straight into the output; 1x1x1 and 3x3x3, with and without bias. */
Test(nn_fast_conv, row_runs)
{
    const int sh[][5] = {{1, 5, 3, 4, 48}, {1, 3, 2, 3, 200}, {2, 4, 3, 3, 96}, {1, 6, 2, 2, 144}};
    for (int i = 0; i < 4; i++) {
        for (int k = 1; k <= 3; k += 2) {
            vp_tensor *x = vp_tensor_new5(sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4]);
            int64_t ws[5] = {9 + i, sh[i][1], k, k, k}, bs[1] = {9 + i};
            vp_tensor *w = vp_tensor_new(5, ws), *b = k == 3 ? vp_tensor_new(1, bs) : NULL;
            fill(x), fill(w);
            if (b) fill(b);
            vp_conv3d_params p = {{1, 1, 1}, {k / 2, k / 2, k / 2}, {0, 0, 0}};
            char what[96];
            snprintf(what, sizeof what, "rows: x (%d,%d,%d,%d,%d) -> %d, k%d", sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4], 9 + i, k);
            check(0, x, w, b, &p, what);
            vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b);
        }
    }
}

/* conv3d_add: the reference's fused op is conv3d then add; a residual of the wrong shape, a
 * missing one, or the output aliasing an input is an error on both backends, naming the op. */
Test(nn_fast_conv, conv3d_add_contract)
{
    vp_tensor *x = vp_tensor_new5(1, 3, 4, 5, 6), *r = vp_tensor_new5(1, 4, 4, 5, 6), *bad = vp_tensor_new5(1, 4, 4, 5, 5);
    int64_t ws[5] = {4, 3, 3, 3, 3};
    vp_tensor *w = vp_tensor_new(5, ws), *y = vp_tensor_new5(1, 4, 4, 5, 6), *yc = vp_tensor_new5(1, 4, 4, 5, 6);
    fill(x), fill(w), fill(r);
    vp_conv3d_params p = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    cr_assert_eq(vp_nn_ref_conv3d_add(x, w, NULL, &p, r, y), 0);
    cr_assert_eq(vp_nn_ref_conv3d(x, w, NULL, &p, yc), 0);
    for (int64_t i = 0; i < vp_tensor_numel(yc); i++) yc->data[i] += r->data[i];
    cr_assert_eq(memcmp(y->data, yc->data, nbytes(y)), 0, "reference conv3d_add is not conv3d then add");
    const vp_nn_backend *bes[2] = {vp_nn_backend_ref(), vp_nn_backend_cpu()};
    for (int i = 0; i < 2; i++) {
        const vp_nn_backend *be = bes[i];
        cr_assert_neq(be->conv3d_add(be, x, w, NULL, &p, bad, y), 0, "%s: residual of another shape accepted", be->name);
        cr_assert_neq(be->conv3d_add(be, x, w, NULL, &p, NULL, y), 0, "%s: missing residual accepted", be->name);
        cr_assert_neq(be->conv3d_add(be, x, w, NULL, &p, y, y), 0, "%s: residual == output accepted", be->name);
    }
    /* the wrapper falls back on conv3d then add for a backend without the fused op: same bytes */
    vp_nn_backend plain = *vp_nn_backend_cpu();
    plain.conv3d_add = NULL;
    vp_tensor *y1 = vp_tensor_new5(1, 4, 4, 5, 6), *y2 = vp_tensor_new5(1, 4, 4, 5, 6);
    cr_assert_eq(vp_nn_conv3d_add(&plain, x, w, NULL, &p, r, y1), 0);
    cr_assert_eq(vp_nn_conv3d_add(vp_nn_backend_cpu(), x, w, NULL, &p, r, y2), 0);
    cr_assert_eq(memcmp(y1->data, y2->data, nbytes(y1)), 0, "fused and unfused conv3d_add differ");
    vp_tensor_free(&x), vp_tensor_free(&r), vp_tensor_free(&bad), vp_tensor_free(&w), vp_tensor_free(&y), vp_tensor_free(&yc);
    vp_tensor_free(&y1), vp_tensor_free(&y2);
}

Test(nn_fast_conv, whole_vector_rows)
{
    rng = 4242;
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
