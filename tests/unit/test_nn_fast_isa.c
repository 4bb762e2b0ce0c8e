/* Unit tests for CPU backend ops whose instruction-set variants (VOXPIPE_NN_ISA forces the lower
 * ones) must all give the same bytes, for 1, 2 and 3 threads:
 *   transposed convolution with kernel == stride (lib/nn_ops_fast_convt.c): the bytes of the
 *     scalar expression it implements (bias, then + x w per input channel in order, each product
 *     rounded: what it computed before it had vector variants), within 1e-6 of the reference;
 *   group norm forward, alone and fused with relu (lib/nn_ops_fast_elem.c): the same bytes in
 *     every variant and thread count, within 1e-5 x max(1, max |y|) of the reference;
 *   conv3d with rows shorter than 8 (gathered patches, lib/nn_ops_fast_conv.c): per variant, the
 *     bytes of the 1x1x1 convolution of the patches, within 1e-5 of the reference. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_backend.h"
#include "nn_isa.h"

static const char *isas[] = {"avx512", "avx2", "base"};

static unsigned rng = 99;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)(rng >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}
static vp_tensor *rnd(int nd, const int64_t *s)
{
    vp_tensor *t = vp_tensor_new(nd, s);
    for (int64_t i = 0; i < vp_tensor_numel(t); i++) t->data[i] = frand();
    return t;
}

/* y = convT(x, w) + b with kernel == stride, one f32 sum per output element in input-channel order */
static void scalar_convt(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, vp_tensor *y)
{
    const int64_t N = x->shape[0], Ci = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    const int64_t Co = w->shape[1], KD = w->shape[2], KH = w->shape[3], KW = w->shape[4];
    for (int64_t n = 0; n < N; n++)
        for (int64_t co = 0; co < Co; co++)
            for (int64_t z = 0; z < D * KD; z++)
                for (int64_t r = 0; r < H * KH; r++)
                    for (int64_t c = 0; c < W * KW; c++) {
                        float a = b ? b->data[co] : 0.0f;
                        for (int64_t ci = 0; ci < Ci; ci++) {
                            const float xv = x->data[(((n * Ci + ci) * D + z / KD) * H + r / KH) * W + c / KW];
                            const float wv = w->data[(((ci * Co + co) * KD + z % KD) * KH + r % KH) * KW + c % KW];
                            const float p = xv * wv;
                            a += p;
                        }
                        y->data[(((n * Co + co) * D * KD + z) * H * KH + r) * W * KW + c] = a;
                    }
}

static double reldiff(const vp_tensor *a, const vp_tensor *b)
{
    double m = 0, bm = 0;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        if (isnan(d)) return INFINITY;
        m = d > m ? d : m;
        bm = fabs(b->data[i]) > bm ? fabs(b->data[i]) : bm;
    }
    return bm > 0 ? m / bm : m;
}

struct tc {
    int64_t n, ci, co, d, h, w;
    int k[3], bias;
};
static const struct tc cases[] = {
    {2, 6, 5, 3, 5, 7, {2, 2, 2}, 1},  /* planes of 35: two vectors and a tail */
    {1, 4, 3, 4, 4, 4, {2, 2, 2}, 0},  /* one vector per plane, no bias (the U-Net's bottleneck) */
    {2, 8, 4, 2, 8, 8, {1, 2, 2}, 1},  /* anisotropic (nnU-Net's first stride) */
    {1, 3, 2, 2, 3, 17, {3, 3, 3}, 1}, /* kernel 3: the general interleave */
    {1, 5, 2, 1, 1, 3, {2, 1, 2}, 1},  /* tails only */
};

Test(convt_fast, kernel_eq_stride_every_isa)
{
    const vp_nn_backend *cpu = vp_nn_backend_cpu();
    unsetenv("VOXPIPE_NN_ISA");
    const int level = vp_nn_isa_level();
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const struct tc *k = &cases[c];
        const int64_t xs[5] = {k->n, k->ci, k->d, k->h, k->w}, ws[5] = {k->ci, k->co, k->k[0], k->k[1], k->k[2]};
        vp_tensor *x = rnd(5, xs), *w = rnd(5, ws), *b = k->bias ? rnd(1, &k->co) : NULL;
        vp_conv3d_params p = {{k->k[0], k->k[1], k->k[2]}, {0, 0, 0}, {0, 0, 0}};
        int64_t os[5];
        cr_assert_eq(vp_nn_conv_transpose3d_shape(x, w, b, &p, os), 0);
        vp_tensor *want = vp_tensor_new(5, os), *ref = vp_tensor_new(5, os);
        scalar_convt(x, w, b, want);
        cr_assert_eq(vp_nn_ref_conv_transpose3d(x, w, b, &p, ref), 0);
        for (int v = 3 - level; v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            for (int th = 1; th <= 3; th++) {
                vp_threads = th;
                vp_tensor *y = vp_tensor_new(5, os);
                for (int64_t i = 0; i < vp_tensor_numel(y); i++) y->data[i] = NAN;
                cr_assert_eq(cpu->conv_transpose3d(cpu, x, w, b, &p, y), 0);
                cr_expect(!memcmp(y->data, want->data, (size_t)vp_tensor_numel(y) * sizeof(float)),
                          "case %zu %s %d threads: not the bytes of the scalar expression", c, isas[v], th);
                double e = reldiff(y, ref);
                cr_expect_leq(e, 1e-6, "case %zu %s %d threads: rel diff %g from the reference", c, isas[v], th, e);
                vp_tensor_free(&y);
            }
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b), vp_tensor_free(&want), vp_tensor_free(&ref);
    }
}

/* group norm / instance norm forward (and fused relu): one set of bytes for every variant and
 * thread count; blocks of 2^15 elements (the first shape has 2 per group) and tails. */
Test(norm_fast, forward_every_isa)
{
    const vp_nn_backend *cpu = vp_nn_backend_cpu();
    const int64_t shapes[3][5] = {{1, 4, 32, 32, 33}, {2, 8, 5, 6, 7}, {1, 6, 9, 9, 9}};
    const int groups[3] = {2, 4, 6};
    unsetenv("VOXPIPE_NN_ISA");
    const int level = vp_nn_isa_level();
    for (int c = 0; c < 3; c++) {
        vp_tensor *x = rnd(5, shapes[c]), *g = rnd(1, &shapes[c][1]), *b = rnd(1, &shapes[c][1]);
        for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = 3.0f + x->data[i] * (float)(1 + i % 7);
        for (int relu = 0; relu < 2; relu++) {
            vp_tensor *r = vp_tensor_new(5, shapes[c]), *first = NULL;
            cr_assert_eq(relu ? vp_nn_ref_group_norm_relu(x, groups[c], 1e-5f, g, b, r) : vp_nn_ref_group_norm(x, groups[c], 1e-5f, g, b, r), 0);
            double rmax = 1;
            for (int64_t i = 0; i < vp_tensor_numel(r); i++) rmax = fabs(r->data[i]) > rmax ? fabs(r->data[i]) : rmax;
            for (int v = 3 - level; v < 3; v++) {
                setenv("VOXPIPE_NN_ISA", isas[v], 1);
                for (int th = 1; th <= 3; th++) {
                    vp_threads = th;
                    vp_tensor *y = vp_tensor_new(5, shapes[c]);
                    for (int64_t i = 0; i < vp_tensor_numel(y); i++) y->data[i] = NAN;
                    cr_assert_eq(relu ? cpu->group_norm_relu(cpu, x, groups[c], 1e-5f, g, b, y) : cpu->group_norm(cpu, x, groups[c], 1e-5f, g, b, y), 0);
                    double m = 0;
                    for (int64_t i = 0; i < vp_tensor_numel(y); i++) {
                        double d = fabs((double)y->data[i] - r->data[i]);
                        m = isnan(d) ? INFINITY : d > m ? d : m;
                    }
                    cr_expect_leq(m / rmax, 1e-5, "case %d relu %d %s %d threads: diff %g", c, relu, isas[v], th, m / rmax);
                    if (first) {
                        cr_expect(!memcmp(y->data, first->data, (size_t)vp_tensor_numel(y) * sizeof(float)),
                                  "case %d relu %d %s %d threads: bytes differ from the first run", c, relu, isas[v], th);
                        vp_tensor_free(&y);
                    } else {
                        first = y;
                    }
                }
            }
            unsetenv("VOXPIPE_NN_ISA");
            vp_tensor_free(&r), vp_tensor_free(&first);
        }
        vp_tensor_free(&x), vp_tensor_free(&g), vp_tensor_free(&b);
    }
}

/* conv3d with output rows shorter than 8 (lib/nn_ops_fast_conv.c gathers the patches and runs a
 * 1x1x1 convolution over the flat volume): the bytes of the CPU backend's 1x1x1 convolution of the
 * patches built here (channel ci * T + t, taps in kd, kh, kw order), with and without a residual,
 * for every variant and thread count (volumes of whole vectors; the last case, with tails, only
 * against the reference); within 1e-5 of the reference. */
Test(conv_fast, narrow_rows_are_a_1x1x1_conv_of_the_patches)
{
    const vp_nn_backend *cpu = vp_nn_backend_cpu();
    /* n, ci, co, d, h, w, k, pad, stride */
    const int64_t cs[5][9] = {{2, 20, 13, 4, 4, 4, 3, 1, 1}, {1, 5, 7, 4, 6, 8, 3, 0, 1}, {1, 12, 20, 8, 8, 8, 3, 1, 2},
                              {2, 6, 9, 3, 3, 5, 2, 1, 1}, {1, 12, 20, 9, 7, 13, 3, 1, 2}};
    unsetenv("VOXPIPE_NN_ISA");
    const int level = vp_nn_isa_level();
    for (int c = 0; c < 5; c++) {
        const int64_t *k = cs[c], K = k[6], T = K * K * K;
        const int pd = (int)k[7], st = (int)k[8];
        const int64_t xs[5] = {k[0], k[1], k[3], k[4], k[5]}, ws[5] = {k[2], k[1], K, K, K};
        vp_tensor *x = rnd(5, xs), *w = rnd(5, ws), *b = rnd(1, &k[2]);
        vp_conv3d_params p = {{st, st, st}, {pd, pd, pd}, {0, 0, 0}}, p1 = {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}};
        int64_t os[5];
        cr_assert_eq(vp_nn_conv3d_shape(x, w, b, &p, os), 0);
        cr_assert_lt(os[4], 8, "case %d: rows of %lld do not take the gathered path", c, (long long)os[4]);
        const int64_t vol = os[2] * os[3] * os[4];
        /* the patches (N, Ci * T, 1, 1, vol) and the weights as (Co, Ci * T, 1, 1, 1) */
        const int64_t ps_[5] = {k[0], k[1] * T, 1, 1, vol}, w1s[5] = {k[2], k[1] * T, 1, 1, 1};
        vp_tensor *P = vp_tensor_new(5, ps_), *w1 = vp_tensor_new(5, w1s);
        memcpy(w1->data, w->data, (size_t)vp_tensor_numel(w) * sizeof(float));
        for (int64_t n = 0; n < k[0]; n++)
            for (int64_t ci = 0; ci < k[1]; ci++)
                for (int64_t t = 0; t < T; t++)
                    for (int64_t o = 0; o < vol; o++) {
                        const int64_t od = o / (os[3] * os[4]), oh = o / os[4] % os[3], ox = o % os[4];
                        const int64_t z = od * st + t / (K * K) - pd, r = oh * st + t / K % K - pd, q = ox * st + t % K - pd;
                        const int in = z >= 0 && z < k[3] && r >= 0 && r < k[4] && q >= 0 && q < k[5];
                        P->data[((n * k[1] + ci) * T + t) * vol + o] = in ? x->data[(((n * k[1] + ci) * k[3] + z) * k[4] + r) * k[5] + q] : 0.0f;
                    }
        vp_tensor *res = rnd(5, os), *ref = vp_tensor_new(5, os);
        cr_assert_eq(vp_nn_ref_conv3d(x, w, b, &p, ref), 0);
        for (int v = 3 - level; v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            for (int th = 1; th <= 3; th++) {
                vp_threads = th;
                const int64_t flat[5] = {k[0], k[2], 1, 1, vol};
                vp_tensor *y = vp_tensor_new(5, os), *ya = vp_tensor_new(5, os), *y1 = vp_tensor_new(5, flat), *y1a = vp_tensor_new(5, flat);
                vp_tensor *res1 = vp_tensor_new(5, flat);
                memcpy(res1->data, res->data, (size_t)vol * os[0] * os[1] * sizeof(float));
                cr_assert_eq(cpu->conv3d(cpu, x, w, b, &p, y), 0);
                cr_assert_eq(cpu->conv3d_add(cpu, x, w, b, &p, res, ya), 0);
                cr_assert_eq(cpu->conv3d(cpu, P, w1, b, &p1, y1), 0);
                cr_assert_eq(cpu->conv3d_add(cpu, P, w1, b, &p1, res1, y1a), 0);
                const size_t bytes = (size_t)vp_tensor_numel(y) * sizeof(float);
                if (vol % 16 == 0) { /* else the in-place 1x1x1 conv ends in scalar points (no fused multiply-add) */
                    cr_expect(!memcmp(y->data, y1->data, bytes), "case %d %s %d threads: not the 1x1x1 convolution's bytes", c, isas[v], th);
                    cr_expect(!memcmp(ya->data, y1a->data, bytes), "case %d %s %d threads: with residual, not the 1x1x1 bytes", c, isas[v], th);
                }
                double e = reldiff(y, ref);
                cr_expect_leq(e, 1e-5, "case %d %s %d threads: rel diff %g from the reference", c, isas[v], th, e);
                vp_tensor_free(&y), vp_tensor_free(&ya), vp_tensor_free(&y1), vp_tensor_free(&y1a), vp_tensor_free(&res1);
            }
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b), vp_tensor_free(&P), vp_tensor_free(&w1);
        vp_tensor_free(&res), vp_tensor_free(&ref);
    }
}
