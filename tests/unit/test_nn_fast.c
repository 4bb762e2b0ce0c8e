/* Unit tests for the CPU backend's multi-threaded fast paths (lib/nn_ops_fast_elem.c and the
 * 16-wide / stride-2 conv3d tiles of lib/nn_ops_fast.c) against the reference ops on random
 * shapes: within 1e-5 x max(1, max |y|) of the reference (the element-wise ops, upsampling,
 * softmax and argmax: the very same bytes), and the same bytes for 1, 2 and 3 threads. */
#include <criterion/criterion.h>
#include <math.h>
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
static int irand(int lo, int hi)
{
    rng = rng * 1103515245u + 12345u;
    return lo + (int)((rng >> 8) % (unsigned)(hi - lo + 1));
}
static void fill(vp_tensor *t, float scale, float shift)
{
    for (int64_t i = 0; i < vp_tensor_numel(t); i++) t->data[i] = frand() * scale + shift;
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

enum { GN, IN, RELU, LRELU, ADD, UP, SMAX, AMAX, NOPS };
static const char *names[] = {"group_norm", "instance_norm", "relu", "leaky_relu", "add", "upsample", "softmax", "argmax"};

/* Run op on the CPU backend (ref: on the reference) into y; argmax indices are stored as floats. */
static void run(int op, int ref, const vp_tensor *x, const vp_tensor *x2, int groups, const vp_tensor *g,
                const vp_tensor *b, vp_tensor *y)
{
    const vp_nn_backend *be = ref ? vp_nn_backend_ref() : vp_nn_backend_cpu();
    int rc = -1;
    switch (op) {
    case GN: rc = be->group_norm(be, x, groups, 1e-5f, g, b, y); break;
    case IN: rc = be->instance_norm(be, x, 1e-5f, g, b, y); break;
    case RELU: rc = be->relu(be, x, y); break;
    case LRELU: rc = be->leaky_relu(be, x, 0.01f, y); break;
    case ADD: rc = be->add(be, x, x2, y); break;
    case UP: rc = be->upsample_trilinear2x(be, x, y); break;
    case SMAX: rc = be->softmax_c(be, x, y); break;
    case AMAX: {
        int32_t *idx = calloc((size_t)vp_tensor_numel(y), sizeof *idx);
        rc = be->argmax_c(be, x, idx);
        for (int64_t i = 0; i < vp_tensor_numel(y); i++) y->data[i] = (float)idx[i];
        free(idx);
        break;
    }
    }
    cr_assert_eq(rc, 0, "%s failed on %s", names[op], be->name);
}

/* Every op on random shapes (some large enough for several norm statistics blocks and many work
 * chunks, with a non-zero mean so a one-pass variance would show): CPU vs reference, and 1, 2, 3
 * threads byte-identical. */
Test(nn_fast, elementwise_and_norms_vs_reference)
{
    double worst[NOPS] = {0};
    for (int it = 0; it < 48; it++) {
        const int op = it % NOPS, big = it >= 40;
        int N = irand(1, 2), C = irand(1, 12), D = irand(1, big ? 40 : 9), H = irand(1, big ? 40 : 11), W = irand(1, big ? 60 : 30);
        int groups = 1;
        if (op == GN) {
            int gs[] = {1, 2, 3, 4, 8};
            groups = gs[irand(0, 4)];
            C = groups * irand(1, 3);
        }
        if (op == AMAX && it % 2) C = 1;
        vp_tensor *x = vp_tensor_new5(N, C, D, H, W), *x2 = vp_tensor_new5(N, C, D, H, W);
        fill(x, 3.0f, op == GN || op == IN ? 5.0f : 0.0f), fill(x2, 1.0f, 0.0f);
        if (op == AMAX && it % 3 == 0) /* ties: the first maximum must win */
            for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = (float)(irand(0, 2));
        int64_t cs[1] = {C};
        vp_tensor *g = NULL, *b = NULL;
        if ((op == GN || op == IN) && irand(0, 1)) g = vp_tensor_new(1, cs), b = vp_tensor_new(1, cs), fill(g, 1, 0), fill(b, 1, 0);
        int64_t os[5] = {N, op == AMAX ? 1 : C, D, H, W};
        if (op == UP) os[2] *= 2, os[3] *= 2, os[4] *= 2;
        vp_tensor *yr = vp_tensor_zeros(5, os), *y[3];
        run(op, 1, x, x2, groups, g, b, yr);
        for (int t = 0; t < 3; t++) {
            y[t] = vp_tensor_zeros(5, os);
            vp_threads = t + 1;
            run(op, 0, x, x2, groups, g, b, y[t]);
        }
        for (int t = 1; t < 3; t++)
            cr_assert_eq(memcmp(y[0]->data, y[t]->data, nbytes(yr)), 0, "%s case %d: %d threads changed the bytes", names[op], it, t + 1);
        double d = rel_diff(y[0], yr);
        if (d > worst[op]) worst[op] = d;
        if (op == GN || op == IN)
            cr_expect_leq(d, 1e-5, "%s case %d (%d,%d,%d,%d,%d) groups %d: rel diff %g", names[op], it, N, C, D, H, W, groups, d);
        else /* the reference's arithmetic per element: the same bytes */
            cr_expect_eq(memcmp(y[0]->data, yr->data, nbytes(yr)), 0, "%s case %d (%d,%d,%d,%d,%d): differs from the reference (%g)",
                         names[op], it, N, C, D, H, W, d);
        for (int t = 0; t < 3; t++) vp_tensor_free(&y[t]);
        vp_tensor_free(&x), vp_tensor_free(&x2), vp_tensor_free(&g), vp_tensor_free(&b), vp_tensor_free(&yr);
    }
    for (int op = 0; op < NOPS; op++) cr_log_info("%-14s worst rel diff to reference %.3g", names[op], worst[op]);
}

/* In place, as SegResNet and the U-Net use them: relu(y, y), leaky_relu(y, y), add(c, x, c). */
Test(nn_fast, in_place)
{
    vp_tensor *x = vp_tensor_new5(1, 3, 17, 19, 70), *a = vp_tensor_new5(1, 3, 17, 19, 70), *r = vp_tensor_new5(1, 3, 17, 19, 70);
    fill(x, 1, 0), fill(a, 1, 0);
    const vp_nn_backend *be = vp_nn_backend_cpu();
    vp_threads = 2;
    for (int op = 0; op < 3; op++) {
        vp_tensor *c = vp_tensor_new5(1, 3, 17, 19, 70);
        memcpy(c->data, x->data, nbytes(x));
        int rr = op == 0 ? vp_nn_ref_relu(x, r) : op == 1 ? vp_nn_ref_leaky_relu(x, 0.01f, r) : vp_nn_ref_add(x, a, r);
        int rc = op == 0 ? be->relu(be, c, c) : op == 1 ? be->leaky_relu(be, c, 0.01f, c) : be->add(be, c, a, c);
        cr_assert_eq(rr, 0);
        cr_assert_eq(rc, 0);
        cr_assert_eq(memcmp(c->data, r->data, nbytes(r)), 0, "in-place op %d differs", op);
        vp_tensor_free(&c);
    }
    vp_tensor_free(&x), vp_tensor_free(&a), vp_tensor_free(&r);
}

/* conv3d on rows wide enough for the 16-wide 48-column tiles and the stride-2 shuffled loads
 * (widths 40..110, stride 1 and 2, padding 0/1, 1x1x1 and 3x3x3 and (1,3,3)), every instruction-set
 * variant: within 1e-5 x max(1, max |y|) of the reference, 1 and 2 threads byte-identical. */
Test(nn_fast, conv_wide_rows)
{
    const char *isas[] = {"avx512", "avx2", "base"};
    for (int it = 0; it < 12; it++) {
        int Ci = irand(1, 6), Co = irand(1, 19), D = irand(1, 4), H = irand(1, 4), W = irand(40, 110);
        int k = it % 3 == 0 ? 1 : 3, kd = it % 4 == 1 ? 1 : k, s = 1 + it % 2, pad = k == 3 ? irand(0, 1) : 0;
        if (D + 2 * pad < kd) D = kd;
        if (H + 2 * pad < k) H = k;
        vp_tensor *x = vp_tensor_new5(1, Ci, D, H, W);
        int64_t ws[5] = {Co, Ci, kd, k, k}, bs[1] = {Co};
        vp_tensor *w = vp_tensor_new(5, ws), *b = vp_tensor_new(1, bs);
        fill(x, 1, 0), fill(w, 1, 0), fill(b, 1, 0);
        vp_conv3d_params p = {{s, s, s}, {kd == 3 ? pad : 0, pad, pad}, {0}};
        int64_t os[5];
        cr_assert_eq(vp_nn_conv3d_shape(x, w, b, &p, os), 0);
        vp_tensor *yr = vp_tensor_new(5, os), *y1 = vp_tensor_new(5, os), *y2 = vp_tensor_new(5, os);
        cr_assert_eq(vp_nn_ref_conv3d(x, w, b, &p, yr), 0);
        for (int v = 0; v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            const vp_nn_backend *be = vp_nn_backend_cpu();
            vp_threads = 1;
            cr_assert_eq(be->conv3d(be, x, w, b, &p, y1), 0);
            vp_threads = 2;
            cr_assert_eq(be->conv3d(be, x, w, b, &p, y2), 0);
            cr_assert_eq(memcmp(y1->data, y2->data, nbytes(y1)), 0, "case %d %s: thread count changed the bytes", it, isas[v]);
            double d = rel_diff(y1, yr);
            cr_expect_leq(d, 1e-5, "case %d %s: (%d,%d,%d,%d)->%d k(%d,%d,%d) s%d p%d: rel diff %g", it, isas[v], Ci, D, H, W, Co,
                          kd, k, k, s, pad, d);
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b);
        vp_tensor_free(&yr), vp_tensor_free(&y1), vp_tensor_free(&y2);
    }
}

/* The fused relu(group_norm(x)) op on random shapes (several statistics blocks for the bigger
 * ones, affine or not, mean far from 0 so that both signs reach the relu): on the CPU backend the
 * bytes of group_norm then relu, for 1, 2 and 3 threads; within 1e-5 x max(1, max |y|) of the
 * reference's fused op, which is the reference's group_norm then relu byte for byte; no negative
 * output. The wrapper gives the same bytes through a backend without the fused op; x == y is refused. */
Test(nn_fast, group_norm_relu_fused)
{
    const vp_nn_backend *cpu = vp_nn_backend_cpu(), *ref = vp_nn_backend_ref();
    vp_nn_backend plain = *cpu;
    plain.group_norm_relu = NULL;
    for (int it = 0; it < 12; it++) {
        const int big = it >= 9, gs[] = {1, 2, 4, 8};
        const int groups = gs[irand(0, 3)], N = irand(1, 2), C = groups * irand(1, 3);
        const int D = irand(1, big ? 40 : 9), H = irand(1, big ? 40 : 11), W = irand(1, big ? 60 : 30);
        vp_tensor *x = vp_tensor_new5(N, C, D, H, W), *g = NULL, *b = NULL;
        fill(x, 3.0f, 5.0f);
        int64_t cs[1] = {C};
        if (it % 2) g = vp_tensor_new(1, cs), b = vp_tensor_new(1, cs), fill(g, 1, 0), fill(b, 1, 0);
        vp_tensor *want = vp_tensor_new5(N, C, D, H, W), *yr = vp_tensor_new5(N, C, D, H, W), *yr2 = vp_tensor_new5(N, C, D, H, W);
        vp_threads = 2;
        cr_assert_eq(cpu->group_norm(cpu, x, groups, 1e-5f, g, b, want), 0);
        cr_assert_eq(cpu->relu(cpu, want, want), 0);
        cr_assert_eq(ref->group_norm_relu(ref, x, groups, 1e-5f, g, b, yr), 0);
        cr_assert_eq(vp_nn_ref_group_norm(x, groups, 1e-5f, g, b, yr2), 0);
        cr_assert_eq(vp_nn_ref_relu(yr2, yr2), 0);
        cr_assert_eq(memcmp(yr->data, yr2->data, nbytes(yr)), 0, "case %d: reference fused op is not group_norm then relu", it);
        int neg = 0, pos = 0;
        for (int64_t i = 0; i < vp_tensor_numel(want); i++) neg += want->data[i] == 0.0f, pos += want->data[i] > 0.0f;
        cr_assert(neg > 0 && pos > 0, "case %d: the relu is not exercised (%d zeros, %d positive)", it, neg, pos);
        for (int t = 1; t <= 3; t++) {
            vp_tensor *y = vp_tensor_new5(N, C, D, H, W);
            memset(y->data, 0xff, nbytes(y));
            vp_threads = t;
            cr_assert_eq(cpu->group_norm_relu(cpu, x, groups, 1e-5f, g, b, y), 0);
            cr_assert_eq(memcmp(y->data, want->data, nbytes(y)), 0, "case %d (%d,%d,%d,%d,%d) g%d, %d threads: fused != group_norm + relu",
                         it, N, C, D, H, W, groups, t);
            double d = rel_diff(y, yr);
            cr_expect_leq(d, 1e-5, "case %d: rel diff to the reference %g", it, d);
            memset(y->data, 0xff, nbytes(y));
            cr_assert_eq(vp_nn_group_norm_relu(&plain, x, groups, 1e-5f, g, b, y), 0);
            cr_assert_eq(memcmp(y->data, want->data, nbytes(y)), 0, "case %d: unfused wrapper differs", it);
            vp_tensor_free(&y);
        }
        vp_tensor_free(&x), vp_tensor_free(&g), vp_tensor_free(&b);
        vp_tensor_free(&want), vp_tensor_free(&yr), vp_tensor_free(&yr2);
    }
    vp_tensor *x = vp_tensor_new5(1, 4, 3, 3, 3);
    fill(x, 1, 0);
    cr_assert_neq(cpu->group_norm_relu(cpu, x, 2, 1e-5f, NULL, NULL, x), 0, "in place accepted");
    cr_assert_neq(ref->group_norm_relu(ref, x, 2, 1e-5f, NULL, NULL, x), 0, "in place accepted (reference)");
    vp_tensor *y = vp_tensor_new5(1, 4, 3, 3, 3);
    cr_assert_neq(cpu->group_norm_relu(cpu, x, 3, 1e-5f, NULL, NULL, y), 0, "4 channels in 3 groups accepted");
    vp_tensor_free(&x), vp_tensor_free(&y);
}
