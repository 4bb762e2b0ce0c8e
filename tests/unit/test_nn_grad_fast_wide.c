/* Unit tests for the CPU backward convolution paths added for training speed (lib/nn_grad_fast.c):
 * the weight gradient in blocks of 8 output channels on AVX-512 (stride 1, output rows a whole
 * number of 16-wide vectors: 16, 32, 48, 64; 8, 11 (a partial block) and 16 output channels;
 * 3x3x3, 1x1x1 (taps past KW dropped) and 1x5x5 (a partial group of 2 taps) kernels; more planes
 * than chunks), and the stride-1 data gradient as the fast conv3d of dy padded by k-1-p (which
 * lands on the flat kernel's vec mode for these widths). Every ISA variant the processor has,
 * 1-3 threads: dx, dw, db within 1e-5 / 1e-5 / 1e-6 (relative to max |ref|) of the reference ops
 * and the same bytes for any thread count. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_grad.h"

static unsigned rng = 99;
static float frand(void)
{
    rng = rng * 1103515245u + 12345u;
    return (float)(rng >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}
static vp_tensor *rnd(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e)
{
    vp_tensor *t = vp_tensor_new5(a, b, c, d, e);
    for (int64_t i = 0; i < vp_tensor_numel(t); i++) t->data[i] = frand();
    return t;
}
static int same_bytes(const vp_tensor *a, const vp_tensor *b)
{
    return !memcmp(a->data, b->data, (size_t)vp_tensor_numel(a) * sizeof(float));
}
static double reldiff(const vp_tensor *a, const vp_tensor *b)
{
    double m = 0, bm = 0;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        cr_assert(!isnan(d), "NaN at %lld", (long long)i);
        m = d > m ? d : m;
        bm = fabs(b->data[i]) > bm ? fabs(b->data[i]) : bm;
    }
    return bm > 0 ? m / bm : m;
}

static const char *isas[] = {"avx512", "avx2", "base"};

Test(grad_wide, conv_blocks_of_8_vs_ref)
{
    struct {
        int n, ci, co, d, h, w, k[3], p[3];
    } cs[] = {
        {2, 3, 8, 4, 5, 16, {3, 3, 3}, {1, 1, 1}},  {1, 4, 11, 3, 6, 32, {3, 3, 3}, {1, 1, 1}},
        {2, 2, 16, 5, 3, 48, {3, 3, 3}, {1, 1, 1}}, {1, 5, 9, 2, 4, 64, {1, 1, 1}, {0, 0, 0}},
        {1, 2, 12, 3, 4, 16, {1, 5, 5}, {0, 2, 2}}, {2, 2, 8, 20, 4, 16, {3, 3, 3}, {1, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        vp_conv3d_params p = {{1, 1, 1}, {cs[c].p[0], cs[c].p[1], cs[c].p[2]}, {0, 0, 0}};
        vp_tensor *x = rnd(cs[c].n, cs[c].ci, cs[c].d, cs[c].h, cs[c].w), *w = rnd(cs[c].co, cs[c].ci, cs[c].k[0], cs[c].k[1], cs[c].k[2]);
        int64_t os[5];
        cr_assert_eq(vp_nn_conv3d_shape(x, w, NULL, &p, os), 0);
        vp_tensor *dy = rnd(os[0], os[1], os[2], os[3], os[4]);
        vp_tensor *dx0 = vp_tensor_new(5, x->shape), *dw0 = vp_tensor_new(5, w->shape), *db0 = vp_tensor_new(1, &w->shape[0]);
        cr_assert_eq(vp_nn_grad_ref()->conv3d_bwd_data(dy, w, &p, dx0), 0);
        cr_assert_eq(vp_nn_grad_ref()->conv3d_bwd_weight(x, dy, &p, dw0, db0), 0);
        for (int v = 0; v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            vp_tensor *prev[3] = {0};
            for (int th = 1; th <= 3; th++) {
                vp_threads = th;
                vp_tensor *dx = vp_tensor_new(5, x->shape), *dw = vp_tensor_new(5, w->shape), *db = vp_tensor_new(1, &w->shape[0]);
                memset(dw->data, 0xff, (size_t)vp_tensor_numel(dw) * sizeof(float)); /* NaN where not written */
                cr_assert_eq(vp_nn_grad_cpu()->conv3d_bwd_data(dy, w, &p, dx), 0);
                cr_assert_eq(vp_nn_grad_cpu()->conv3d_bwd_weight(x, dy, &p, dw, db), 0);
                double e1 = reldiff(dx, dx0), e2 = reldiff(dw, dw0), e3 = reldiff(db, db0);
                cr_expect_leq(e1, 1e-5, "case %zu %s threads %d: dx rel diff %g", c, isas[v], th, e1);
                cr_expect_leq(e2, 1e-5, "case %zu %s threads %d: dw rel diff %g", c, isas[v], th, e2);
                cr_expect_leq(e3, 1e-6, "case %zu %s threads %d: db rel diff %g", c, isas[v], th, e3);
                if (prev[0]) {
                    cr_expect(same_bytes(dx, prev[0]) && same_bytes(dw, prev[1]) && same_bytes(db, prev[2]),
                              "case %zu %s: bytes differ between thread counts", c, isas[v]);
                    for (int i = 0; i < 3; i++) vp_tensor_free(&prev[i]);
                }
                prev[0] = dx, prev[1] = dw, prev[2] = db;
            }
            for (int i = 0; i < 3; i++) vp_tensor_free(&prev[i]);
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor *all[] = {x, w, dy, dx0, dw0, db0};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) vp_tensor_free(&all[i]);
    }
}
