/* Unit tests for the nn ops: every op of the reference and CPU backends against PyTorch's outputs
 * (tests/golden/nn/op_*.safetensors, made by tests/scripts/make_golden_nn.py), the fast conv3d
 * against the reference on random shapes for every instruction-set variant, the same bytes for
 * any thread count, and shape errors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_backend.h"
#include "nn_cuda.h"
#include "nn_safetensors.h"

#define GOLDEN "tests/golden/nn/"

static void parse3(const char *s, int out[3])
{
    cr_assert(s, "missing metadata");
    cr_assert_eq(sscanf(s, "%d,%d,%d", &out[0], &out[1], &out[2]), 3, "bad triple %s", s);
}

static vp_tensor *opt(const vp_safetensors *st, const char *name)
{
    return vp_st_find(st, name) ? vp_st_load(st, name) : NULL;
}

/* Max |a - b| over y's elements; fails on NaN mismatch. */
static double max_abs_diff(const vp_tensor *a, const vp_tensor *b, double *ymax)
{
    double m = 0;
    *ymax = 0;
    cr_assert(vp_tensor_same_shape(a, b));
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        cr_assert(!isnan(d), "NaN at %lld", (long long)i);
        if (d > m) m = d;
        if (fabs(b->data[i]) > *ymax) *ymax = fabs(b->data[i]);
    }
    return m;
}

/* Run the op described by the file's metadata on backend be into a new tensor shaped like y. */
static vp_tensor *run_op(const vp_nn_backend *be, const vp_safetensors *st, const vp_tensor *ygold)
{
    const char *op = vp_st_meta(st, "op");
    cr_assert(op);
    vp_tensor *y = vp_tensor_zeros(ygold->ndim, ygold->shape);
    vp_tensor *x = opt(st, "x"), *w = opt(st, "w"), *b = opt(st, "b"), *g = opt(st, "gamma"), *be_ = opt(st, "beta");
    vp_tensor *xs[3] = {opt(st, "x0"), opt(st, "x1"), opt(st, "x2")};
    int rc = -1;
    cr_assert(be->supports_op(be, VP_NN_CONV3D));
    if (!strcmp(op, "conv3d") || !strcmp(op, "conv_transpose3d")) {
        vp_conv3d_params p = {0};
        parse3(vp_st_meta(st, "stride"), p.stride);
        parse3(vp_st_meta(st, "padding"), p.pad);
        if (op[4] == '_') {
            parse3(vp_st_meta(st, "output_padding"), p.out_pad);
            rc = be->conv_transpose3d(be, x, w, b, &p, y);
        } else {
            rc = be->conv3d(be, x, w, b, &p, y);
        }
    } else if (!strcmp(op, "group_norm")) {
        rc = be->group_norm(be, x, atoi(vp_st_meta(st, "groups")), strtof(vp_st_meta(st, "eps"), NULL), g, be_, y);
    } else if (!strcmp(op, "instance_norm")) {
        rc = be->instance_norm(be, x, strtof(vp_st_meta(st, "eps"), NULL), g, be_, y);
    } else if (!strcmp(op, "relu")) {
        rc = be->relu(be, x, y);
    } else if (!strcmp(op, "leaky_relu")) {
        rc = be->leaky_relu(be, x, strtof(vp_st_meta(st, "slope"), NULL), y);
    } else if (!strcmp(op, "upsample_trilinear2x")) {
        rc = be->upsample_trilinear2x(be, x, y);
    } else if (!strcmp(op, "add")) {
        rc = be->add(be, xs[0], xs[1], y);
    } else if (!strcmp(op, "concat")) {
        rc = be->concat(be, (const vp_tensor *const *)xs, xs[2] ? 3 : 2, y);
    } else if (!strcmp(op, "softmax_c")) {
        rc = be->softmax_c(be, x, y);
    } else if (!strcmp(op, "argmax_c")) {
        int32_t *idx = calloc((size_t)vp_tensor_numel(y), sizeof *idx);
        rc = be->argmax_c(be, x, idx);
        for (int64_t i = 0; i < vp_tensor_numel(y); i++) y->data[i] = (float)idx[i];
        free(idx);
    } else {
        cr_assert_fail("unknown op %s", op);
    }
    cr_assert_eq(rc, 0, "%s failed on backend %s", op, be->name);
    vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b), vp_tensor_free(&g), vp_tensor_free(&be_);
    for (int i = 0; i < 3; i++) vp_tensor_free(&xs[i]);
    return y;
}

static const char *cases[] = {
    "k3_s1", "k3_s1_wide", "k3_s2", "k3_s2_wide", "k133_s122", "k311_s211", "k1", "k1_nobias", "k3_nopad",
    "t2_s2", "t122_s122", "t3_s2_p1_op1", "t3_s1_p1", "gn_g4", "gn_g3_noaffine", "gn_g1", "gn_g8_c16",
    "in_affine", "in_noaffine", "relu", "leaky_relu", "up", "up_thin", "add", "concat2", "concat3",
    "softmax", "argmax",
};

/* Every golden case on every backend (and every conv kernel variant): max abs difference to
 * PyTorch at most 1e-5 x max(1, max |y|). Printed so the report can quote it. */
Test(nn_ops, golden_vs_torch)
{
    const char *isas[] = {"avx512", "avx2", "base"};
    vp_threads = 2;
    double worst = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char path[256];
        snprintf(path, sizeof path, GOLDEN "op_%s.safetensors", cases[c]);
        vp_safetensors *st = vp_st_open(path);
        cr_assert(st, "cannot open %s (run tests/scripts/make_golden_nn.py)", path);
        vp_tensor *yg = vp_st_load(st, "y");
        cr_assert(yg);
        for (int bi = 0; bi < 4; bi++) {
            const vp_nn_backend *be = bi == 0 ? vp_nn_backend_ref() : vp_nn_backend_cpu();
            if (bi) setenv("VOXPIPE_NN_ISA", isas[bi - 1], 1);
            vp_tensor *y = run_op(be, st, yg);
            double ymax, d = max_abs_diff(y, yg, &ymax), tol = 1e-5 * (ymax > 1 ? ymax : 1);
            if (d / (ymax > 1 ? ymax : 1) > worst) worst = d / (ymax > 1 ? ymax : 1);
            cr_log_info("%-14s %-4s %-6s max|y| %8.3f  max abs diff %.3g", cases[c], be->name, bi ? isas[bi - 1] : "", ymax, d);
            cr_expect_leq(d, tol, "%s on %s/%s: max abs diff %g > %g", cases[c], be->name, bi ? isas[bi - 1] : "-", d, tol);
            vp_tensor_free(&y);
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor_free(&yg);
        vp_st_close(&st);
    }
    cr_log_info("worst relative (to max(1,|y|max)) difference: %.3g", worst);
}

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

/* Random conv3d shapes (kernels 1..3 per axis, strides 1..2, padding 0..k/2, channel counts not
 * multiples of the block, widths across the vector tiles, batch 1..2): fast == reference within
 * 1e-5 x max(1, sum |w||x| bound); 1 and 2 threads give identical bytes. */
Test(nn_ops, fast_conv_random)
{
    const char *isas[] = {"avx512", "avx2", "base"};
    double worst = 0;
    for (int it = 0; it < 40; it++) {
        int N = irand(1, 2), Ci = irand(1, 9), Co = irand(1, 11), D = irand(1, 7), H = irand(1, 9), W = irand(1, 40);
        int k[3], s[3], pd[3];
        for (int a = 0; a < 3; a++) {
            k[a] = irand(0, 2) ? 3 : 1;
            if (it % 5 == 0 && a == 0) k[a] = 1; /* nnU-Net (1,3,3) */
            s[a] = irand(1, 2);
            pd[a] = irand(0, k[a] / 2);
        }
        if (D + 2 * pd[0] < k[0]) D = k[0];
        if (H + 2 * pd[1] < k[1]) H = k[1];
        if (W + 2 * pd[2] < k[2]) W = k[2];
        vp_tensor *x = vp_tensor_new5(N, Ci, D, H, W);
        int64_t ws[5] = {Co, Ci, k[0], k[1], k[2]}, bs[1] = {Co};
        vp_tensor *w = vp_tensor_new(5, ws), *b = it % 3 ? vp_tensor_new(1, bs) : NULL;
        fill(x), fill(w);
        if (b) fill(b);
        vp_conv3d_params p = {{s[0], s[1], s[2]}, {pd[0], pd[1], pd[2]}, {0}};
        int64_t os[5];
        cr_assert_eq(vp_nn_conv3d_shape(x, w, b, &p, os), 0);
        vp_tensor *yr = vp_tensor_new(5, os), *y1 = vp_tensor_new(5, os), *y2 = vp_tensor_new(5, os);
        cr_assert_eq(vp_nn_ref_conv3d(x, w, b, &p, yr), 0);
        const double bound = Ci * k[0] * k[1] * k[2] + 1.0; /* |x|, |w|, |b| <= 1 */
        for (int v = 0; v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            const vp_nn_backend *be = vp_nn_backend_cpu();
            vp_threads = 1;
            cr_assert_eq(be->conv3d(be, x, w, b, &p, y1), 0);
            vp_threads = 2;
            cr_assert_eq(be->conv3d(be, x, w, b, &p, y2), 0);
            cr_assert_eq(memcmp(y1->data, y2->data, (size_t)vp_tensor_numel(y1) * sizeof(float)), 0,
                         "thread count changed the bytes (case %d, %s)", it, isas[v]);
            double ymax, d = max_abs_diff(y1, yr, &ymax);
            if (d / bound > worst) worst = d / bound;
            cr_expect_leq(d, 1e-5 * (ymax > 1 ? ymax : 1), "case %d %s: (%d,%d,%d,%d,%d) -> %d k(%d,%d,%d) s(%d,%d,%d) p(%d,%d,%d): diff %g",
                          it, isas[v], N, Ci, D, H, W, Co, k[0], k[1], k[2], s[0], s[1], s[2], pd[0], pd[1], pd[2], d);
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b);
        vp_tensor_free(&yr), vp_tensor_free(&y1), vp_tensor_free(&y2);
    }
    cr_log_info("fast vs reference: worst |diff| / (Ci k^3 + 1) = %.3g", worst);
}

/* Mismatched shapes are errors (-1), never a crash or a silent result. */
Test(nn_ops, shape_errors, .init = cr_redirect_stderr)
{
    vp_tensor *x = vp_tensor_new5(1, 3, 4, 4, 4), *y = vp_tensor_new5(1, 2, 4, 4, 4);
    int64_t ws[5] = {2, 4, 3, 3, 3}, bs[1] = {3};
    vp_tensor *w = vp_tensor_new(5, ws), *b = vp_tensor_new(1, bs);
    fill(x), fill(w);
    vp_conv3d_params p = {{1, 1, 1}, {1, 1, 1}, {0}};
    for (int bi = 0; bi < 2; bi++) {
        const vp_nn_backend *be = bi ? vp_nn_backend_cpu() : vp_nn_backend_ref();
        cr_assert_eq(be->conv3d(be, x, w, NULL, &p, y), -1, "wrong input channels accepted");
        ws[1] = 3;
        vp_tensor *w3 = vp_tensor_new(5, ws);
        cr_assert_eq(be->conv3d(be, x, w3, b, &p, y), -1, "wrong bias length accepted");
        cr_assert_eq(be->conv3d(be, x, w3, NULL, &p, x), -1, "wrong output shape accepted");
        cr_assert_eq(be->conv3d(be, x, w3, NULL, &p, y), 0);
        cr_assert_eq(be->group_norm(be, x, 2, 1e-5f, NULL, NULL, x), -1, "3 channels in 2 groups accepted");
        cr_assert_eq(be->add(be, x, y, y), -1, "add of different shapes accepted");
        ws[1] = 4;
        vp_tensor_free(&w3);
    }
    vp_tensor_free(&x), vp_tensor_free(&y), vp_tensor_free(&w), vp_tensor_free(&b);
}

/* ReLU and LeakyReLU propagate NaN as torch does; every op is supported on both backends. */
Test(nn_ops, nan_and_capabilities)
{
    vp_tensor *x = vp_tensor_new5(1, 1, 1, 1, 3), *y = vp_tensor_new5(1, 1, 1, 1, 3);
    x->data[0] = NAN, x->data[1] = -2, x->data[2] = 3;
    const vp_nn_backend *be = vp_nn_backend_cpu();
    cr_assert_eq(be->relu(be, x, y), 0);
    cr_assert(isnan(y->data[0]));
    cr_assert_eq(y->data[1], 0.0f);
    cr_assert_eq(be->leaky_relu(be, x, 0.01f, y), 0);
    cr_assert(isnan(y->data[0]));
    cr_assert_eq(y->data[1], -2 * 0.01f);
    for (int op = 0; op < VP_NN_OP_COUNT; op++) {
        cr_assert(vp_nn_backend_ref()->supports_op(vp_nn_backend_ref(), op), "%s", vp_nn_op_name(op));
        cr_assert(be->supports_op(be, op), "%s", vp_nn_op_name(op));
    }
    cr_assert(!be->supports_op(be, VP_NN_OP_COUNT));
    cr_assert_eq(vp_nn_backend_get("cpu"), be);
    if (!vp_cuda_device_count()) cr_assert_null(vp_nn_backend_get("cuda")); /* no GPU: no CUDA backend */
    vp_tensor_free(&x), vp_tensor_free(&y);
}
