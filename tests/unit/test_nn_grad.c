/* Unit tests for the backward ops (lib/nn_grad_ref.c, lib/nn_grad_fast.c) and the losses
 * (lib/nn_loss.c) against PyTorch autograd, MONAI and nnunetv2 (tests/golden/train/, made by
 * tests/scripts/make_golden_train.py), and of the CPU backward ops against the reference.
 *
 * Norm: for each tensor, max |ours - golden| / max |golden| (NaN fails). The op goldens are f64
 * autograd on f32 inputs, so the bound is 1e-5 (f32 rounding of our results plus f32 sums in the
 * CPU versions); losses 1e-5 (torch sums in f32). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_grad.h"
#include "nn_loss.h"
#include "nn_safetensors.h"

#define G "tests/golden/train/"

static double reldiff(const vp_tensor *a, const vp_tensor *b)
{
    cr_assert(vp_tensor_same_shape(a, b), "shape mismatch");
    double m = 0, bm = 0;
    for (int64_t i = 0; i < vp_tensor_numel(a); i++) {
        double d = fabs((double)a->data[i] - b->data[i]);
        cr_assert(!isnan(d), "NaN at %lld", (long long)i);
        m = d > m ? d : m;
        bm = fabs(b->data[i]) > bm ? fabs(b->data[i]) : bm;
    }
    return bm > 0 ? m / bm : m;
}

static vp_tensor *ld(const vp_safetensors *st, const char *tag, const char *what)
{
    char n[64];
    snprintf(n, sizeof n, "%s.%s", tag, what);
    return vp_st_find(st, n) ? vp_st_load(st, n) : NULL;
}

static void parse3(const char *s, int *v)
{
    if (!*s || *s == ';') {
        v[0] = v[1] = v[2] = 0;
        return;
    }
    cr_assert_eq(sscanf(s, "%d,%d,%d", &v[0], &v[1], &v[2]), 3);
}

/* One case of ops.safetensors on one set of backward ops. */
static void op_case(const vp_safetensors *st, const char *tag, const vp_nn_grad *gr)
{
    const char *m = vp_st_meta(st, tag);
    cr_assert(m, "no metadata for %s", tag);
    char op[32];
    int s[3], p[3], extra;
    const char *f1 = strchr(m, ';'), *f2 = strchr(f1 + 1, ';'), *f3 = strchr(f2 + 1, ';');
    snprintf(op, sizeof op, "%.*s", (int)(f1 - m), m);
    parse3(f1 + 1, s), parse3(f2 + 1, p);
    extra = atoi(f3 + 1);
    vp_tensor *x = ld(st, tag, "x"), *w = ld(st, tag, "w"), *dy = ld(st, tag, "dy"), *dxg = ld(st, tag, "dx"),
              *dwg = ld(st, tag, "dw"), *dbg = ld(st, tag, "db"), *y = ld(st, tag, "y");
    vp_tensor *dx = vp_tensor_zeros(5, x->shape), *dw = dwg ? vp_tensor_zeros(dwg->ndim, dwg->shape) : NULL,
              *db = dbg ? vp_tensor_zeros(1, dbg->shape) : NULL;
    vp_conv3d_params cp = {{s[0], s[1], s[2]}, {p[0], p[1], p[2]}, {0, 0, 0}};
    int rc;
    if (!strcmp(op, "conv3d"))
        rc = gr->conv3d_bwd_data(dy, w, &cp, dx) || gr->conv3d_bwd_weight(x, dy, &cp, dw, db);
    else if (!strcmp(op, "conv_transpose3d"))
        rc = gr->conv_transpose3d_bwd_data(dy, w, &cp, dx) || gr->conv_transpose3d_bwd_weight(x, dy, &cp, dw, db);
    else if (!strcmp(op, "group_norm"))
        rc = gr->group_norm_bwd(x, dy, extra, 1e-5f, w, dx, dw, db);
    else if (!strcmp(op, "relu"))
        rc = gr->relu_bwd(y, dy, dx);
    else if (!strcmp(op, "leaky_relu"))
        rc = gr->leaky_relu_bwd(y, dy, 0.01f, dx);
    else
        rc = gr->upsample_trilinear2x_bwd(dy, dx);
    cr_assert_eq(rc, 0, "%s (%s) on %s failed", tag, op, gr->name);
    double e = reldiff(dx, dxg);
    cr_log_info("%s %s on %s: dx %.2g", tag, op, gr->name, e);
    cr_expect_leq(e, 1e-5, "%s %s on %s: dx rel diff %g", tag, op, gr->name, e);
    if (dw) {
        e = reldiff(dw, dwg);
        cr_expect_leq(e, 1e-5, "%s %s on %s: dw rel diff %g", tag, op, gr->name, e);
    }
    if (db) {
        e = reldiff(db, dbg);
        cr_expect_leq(e, 1e-5, "%s %s on %s: db rel diff %g", tag, op, gr->name, e);
    }
    vp_tensor *all[] = {x, w, dy, dxg, dwg, dbg, y, dx, dw, db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vp_tensor_free(&all[i]);
}

/* Every backward op, reference and CPU versions, against torch autograd in f64. */
Test(grad, ops_vs_torch)
{
    vp_threads = 2;
    vp_safetensors *st = vp_st_open(G "ops.safetensors");
    cr_assert(st);
    cr_assert_geq(vp_st_meta_count(st), 12);
    for (int i = 0; i < vp_st_meta_count(st); i++) {
        const char *k, *v;
        vp_st_meta_at(st, i, &k, &v);
        op_case(st, k, vp_nn_grad_ref());
        op_case(st, k, vp_nn_grad_cpu());
    }
    vp_st_close(&st);
}

static unsigned rng = 777;
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

static const char *isas[] = {"avx512", "avx2", "base"};

/* One conv3d backward case: dx, dw, db of the CPU ops vs the reference ops (within 1e-5 / 1e-5 /
 * 1e-6 relative to max |ref|) for 1, 2 and 3 threads, the same bytes for any thread count; with
 * all_isas, for every instruction-set variant, dw filled with NaN first (a weight left unwritten
 * fails). */
static void conv_grad_case(size_t c, int n, int ci, int co, int d, int h, int wd, const int k[3], const vp_conv3d_params *p,
                           int all_isas)
{
    vp_tensor *x = rnd(n, ci, d, h, wd), *w = rnd(co, ci, k[0], k[1], k[2]);
    int64_t os[5];
    cr_assert_eq(vp_nn_conv3d_shape(x, w, NULL, p, os), 0);
    vp_tensor *dy = rnd(os[0], os[1], os[2], os[3], os[4]);
    vp_tensor *dx0 = vp_tensor_new(5, x->shape), *dw0 = vp_tensor_new(5, w->shape), *db0 = vp_tensor_new(1, &w->shape[0]);
    cr_assert_eq(vp_nn_grad_ref()->conv3d_bwd_data(dy, w, p, dx0), 0);
    cr_assert_eq(vp_nn_grad_ref()->conv3d_bwd_weight(x, dy, p, dw0, db0), 0);
    for (int v = 0; v < (all_isas ? 3 : 1); v++) {
        const char *isa = all_isas ? isas[v] : "default";
        if (all_isas) setenv("VOXPIPE_NN_ISA", isas[v], 1);
        vp_tensor *prev[3] = {0};
        for (int th = 1; th <= 3; th++) {
            vp_threads = th;
            vp_tensor *dx = vp_tensor_new(5, x->shape), *dw = vp_tensor_new(5, w->shape), *db = vp_tensor_new(1, &w->shape[0]);
            if (all_isas) memset(dw->data, 0xff, (size_t)vp_tensor_numel(dw) * sizeof(float)); /* NaN where not written */
            cr_assert_eq(vp_nn_grad_cpu()->conv3d_bwd_data(dy, w, p, dx), 0);
            cr_assert_eq(vp_nn_grad_cpu()->conv3d_bwd_weight(x, dy, p, dw, db), 0);
            double e1 = reldiff(dx, dx0), e2 = reldiff(dw, dw0), e3 = reldiff(db, db0);
            cr_expect_leq(e1, 1e-5, "case %zu %s threads %d: dx rel diff %g", c, isa, th, e1);
            cr_expect_leq(e2, 1e-5, "case %zu %s threads %d: dw rel diff %g", c, isa, th, e2);
            cr_expect_leq(e3, 1e-6, "case %zu %s threads %d: db rel diff %g", c, isa, th, e3);
            if (prev[0]) {
                cr_expect(same_bytes(dx, prev[0]) && same_bytes(dw, prev[1]) && same_bytes(db, prev[2]),
                          "case %zu %s: bytes differ between thread counts", c, isa);
                for (int i = 0; i < 3; i++) vp_tensor_free(&prev[i]);
            }
            prev[0] = dx, prev[1] = dw, prev[2] = db;
        }
        for (int i = 0; i < 3; i++) vp_tensor_free(&prev[i]);
    }
    if (all_isas) unsetenv("VOXPIPE_NN_ISA");
    vp_tensor *all[] = {x, w, dy, dx0, dw0, db0};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vp_tensor_free(&all[i]);
}

/* conv3d dx / dw / db (CPU) vs the reference on shapes the fast paths branch on: widths that are
 * and are not multiples of 8, stride 2 (all axes and only some), 1x1x1, anisotropic kernels, more
 * than 4 output channels (several register blocks), more planes than chunks, rows shorter than a
 * vector (the unrolled dw path), strides 2 and 3 with odd sizes (dx by residues) and a stride the
 * residue path refuses; the same bytes for 1, 2 and 3 threads. */
Test(grad, conv_fast_vs_ref)
{
    struct {
        int n, ci, co, d, h, w, k[3], s[3], p[3];
    } cs[] = {
        {2, 3, 5, 6, 7, 19, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
        {1, 4, 8, 8, 9, 24, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
        {2, 2, 3, 5, 6, 33, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
        {1, 6, 2, 4, 5, 8, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
        {1, 3, 9, 20, 4, 11, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
        {1, 2, 3, 5, 5, 17, {5, 5, 5}, {1, 1, 1}, {2, 2, 2}},
        /* rows shorter than 8 (dw through nn_grad_fast_small.c), strided dx by residues */
        {2, 5, 6, 8, 8, 8, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
        {1, 4, 9, 4, 4, 4, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
        {1, 3, 5, 7, 5, 9, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}},
        {1, 2, 3, 6, 6, 6, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}},
        {1, 2, 4, 5, 6, 5, {1, 3, 3}, {1, 2, 2}, {0, 1, 1}},
        {2, 3, 4, 9, 7, 12, {3, 3, 3}, {3, 2, 3}, {1, 1, 1}},
        /* a residue whose first tap is off dy's start: the zero-inserted path */
        {1, 2, 3, 7, 6, 10, {3, 3, 3}, {2, 2, 2}, {0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        vp_conv3d_params p = {{cs[c].s[0], cs[c].s[1], cs[c].s[2]}, {cs[c].p[0], cs[c].p[1], cs[c].p[2]}, {0, 0, 0}};
        conv_grad_case(c, cs[c].n, cs[c].ci, cs[c].co, cs[c].d, cs[c].h, cs[c].w, cs[c].k, &p, 0);
    }
}

/* The CPU backward convolution paths added for training speed (lib/nn_grad_fast.c): the weight gradient in blocks of 8 output channels on AVX-512 (stride 1, output rows a whole
 * number of 16-wide vectors: 16, 32, 48, 64; 8, 11 (a partial block) and 16 output channels;
 * 3x3x3, 1x1x1 (taps past KW dropped) and 1x5x5 (a partial group of 2 taps) kernels; more planes
 * than chunks), and the stride-1 data gradient as the fast conv3d of dy padded by k-1-p (which
 * lands on the flat kernel's vec mode for these widths). Every ISA variant the processor has,
 * 1-3 threads: dx, dw, db within 1e-5 / 1e-5 / 1e-6 (relative to max |ref|) of the reference ops
 * and the same bytes for any thread count. */
Test(grad, conv_blocks_of_8_vs_ref)
{
    rng = 99;
    struct {
        int n, ci, co, d, h, w, k[3], p[3];
    } cs[] = {
        {2, 3, 8, 4, 5, 16, {3, 3, 3}, {1, 1, 1}},  {1, 4, 11, 3, 6, 32, {3, 3, 3}, {1, 1, 1}},
        {2, 2, 16, 5, 3, 48, {3, 3, 3}, {1, 1, 1}}, {1, 5, 9, 2, 4, 64, {1, 1, 1}, {0, 0, 0}},
        {1, 2, 12, 3, 4, 16, {1, 5, 5}, {0, 2, 2}}, {2, 2, 8, 20, 4, 16, {3, 3, 3}, {1, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        vp_conv3d_params p = {{1, 1, 1}, {cs[c].p[0], cs[c].p[1], cs[c].p[2]}, {0, 0, 0}};
        conv_grad_case(c, cs[c].n, cs[c].ci, cs[c].co, cs[c].d, cs[c].h, cs[c].w, cs[c].k, &p, 1);
    }
}

/* conv_transpose3d, group norm, relu, leaky relu and upsampling backward (CPU) vs the reference,
 * and thread-count independence. */
Test(grad, convt_norm_fast_vs_ref)
{
    vp_conv3d_params p = {{2, 2, 2}, {0, 0, 0}, {0, 0, 0}}, pa = {{1, 2, 2}, {0, 0, 0}, {0, 0, 0}};
    const vp_conv3d_params *ps[2] = {&p, &pa};
    for (int c = 0; c < 2; c++) {
        vp_tensor *x = rnd(2, 6, 3, 5, 7), *w = rnd(6, 5, ps[c]->stride[0], 2, 2);
        int64_t os[5];
        cr_assert_eq(vp_nn_conv_transpose3d_shape(x, w, NULL, ps[c], os), 0);
        vp_tensor *dy = rnd(os[0], os[1], os[2], os[3], os[4]);
        vp_tensor *a[2][3];
        for (int v = 0; v < 2; v++) {
            const vp_nn_grad *gr = v ? vp_nn_grad_cpu() : vp_nn_grad_ref();
            a[v][0] = vp_tensor_new(5, x->shape), a[v][1] = vp_tensor_new(5, w->shape), a[v][2] = vp_tensor_new(1, &w->shape[1]);
            cr_assert_eq(gr->conv_transpose3d_bwd_data(dy, w, ps[c], a[v][0]), 0);
            cr_assert_eq(gr->conv_transpose3d_bwd_weight(x, dy, ps[c], a[v][1], a[v][2]), 0);
        }
        for (int i = 0; i < 3; i++) {
            double e = reldiff(a[1][i], a[0][i]);
            cr_expect_leq(e, 1e-5, "convT case %d output %d: rel diff %g", c, i, e);
            vp_tensor_free(&a[0][i]), vp_tensor_free(&a[1][i]);
        }
        vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&dy);
    }
    vp_tensor *x = rnd(2, 8, 5, 6, 7), *dy = rnd(2, 8, 5, 6, 7), *g = vp_tensor_new(1, (int64_t[]){8});
    for (int i = 0; i < 8; i++) g->data[i] = 1 + 0.5f * frand();
    vp_tensor *r[3] = {vp_tensor_new(5, x->shape), vp_tensor_new(1, g->shape), vp_tensor_new(1, g->shape)};
    cr_assert_eq(vp_nn_grad_ref()->group_norm_bwd(x, dy, 4, 1e-5f, g, r[0], r[1], r[2]), 0);
    vp_tensor *f1[3] = {0};
    for (int th = 1; th <= 2; th++) {
        vp_threads = th;
        vp_tensor *f[3] = {vp_tensor_new(5, x->shape), vp_tensor_new(1, g->shape), vp_tensor_new(1, g->shape)};
        cr_assert_eq(vp_nn_grad_cpu()->group_norm_bwd(x, dy, 4, 1e-5f, g, f[0], f[1], f[2]), 0);
        for (int i = 0; i < 3; i++) {
            double e = reldiff(f[i], r[i]);
            cr_expect_leq(e, 1e-6, "group norm output %d, %d threads: rel diff %g from the reference", i, th, e);
            if (f1[i]) cr_expect(same_bytes(f[i], f1[i]), "group norm output %d: bytes differ between 1 and 2 threads", i);
            vp_tensor_free(&f1[i]);
            f1[i] = f[i];
        }
    }
    for (int i = 0; i < 3; i++) vp_tensor_free(&r[i]), vp_tensor_free(&f1[i]);
    /* relu / leaky relu / upsampling backward: the reference's bytes (sizes past one 64k chunk) */
    vp_tensor *y = rnd(2, 3, 20, 33, 50), *g2 = rnd(2, 3, 20, 33, 50), *a = vp_tensor_new(5, y->shape), *b = vp_tensor_new(5, y->shape);
    for (int k = 0; k < 2; k++) {
        float slope = k ? 0.01f : 0.0f;
        cr_assert_eq(k ? vp_nn_grad_ref()->leaky_relu_bwd(y, g2, slope, a) : vp_nn_grad_ref()->relu_bwd(y, g2, a), 0);
        cr_assert_eq(k ? vp_nn_grad_cpu()->leaky_relu_bwd(y, g2, slope, b) : vp_nn_grad_cpu()->relu_bwd(y, g2, b), 0);
        cr_expect(same_bytes(a, b), "%s backward: not the reference's bytes", k ? "leaky relu" : "relu");
    }
    vp_tensor *u = rnd(2, 3, 20, 32, 50), *ua = vp_tensor_new5(2, 3, 10, 16, 25), *ub = vp_tensor_new5(2, 3, 10, 16, 25);
    cr_assert_eq(vp_nn_grad_ref()->upsample_trilinear2x_bwd(u, ua), 0);
    cr_assert_eq(vp_nn_grad_cpu()->upsample_trilinear2x_bwd(u, ub), 0);
    cr_expect(same_bytes(ua, ub), "upsampling backward: not the reference's bytes");
    vp_tensor_free(&y), vp_tensor_free(&g2), vp_tensor_free(&a), vp_tensor_free(&b);
    vp_tensor_free(&u), vp_tensor_free(&ua), vp_tensor_free(&ub);
    vp_tensor_free(&x), vp_tensor_free(&dy), vp_tensor_free(&g);
}

/* Mismatched shapes are errors naming the op, not crashes. */
Test(grad, bad_shapes, .init = cr_redirect_stderr)
{
    vp_tensor *x = rnd(1, 2, 4, 4, 4), *w = rnd(3, 2, 3, 3, 3), *dy = rnd(1, 3, 3, 4, 4), *dx = vp_tensor_new(5, x->shape);
    vp_conv3d_params p = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    for (int v = 0; v < 2; v++) {
        const vp_nn_grad *gr = v ? vp_nn_grad_cpu() : vp_nn_grad_ref();
        cr_expect_eq(gr->conv3d_bwd_data(dy, w, &p, dx), -1);
        cr_expect_eq(gr->conv3d_bwd_weight(x, dy, &p, w, NULL), -1);
        cr_expect_eq(gr->group_norm_bwd(x, dy, 2, 1e-5f, NULL, dx, NULL, NULL), -1);
        cr_expect_eq(gr->upsample_trilinear2x_bwd(dy, dx), -1);
    }
    vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&dy), vp_tensor_free(&dx);
}

static int32_t *labels(const vp_tensor *t)
{
    int32_t *l = malloc((size_t)vp_tensor_numel(t) * sizeof *l);
    for (int64_t i = 0; i < vp_tensor_numel(t); i++) l[i] = (int32_t)t->data[i];
    return l;
}

static void loss_case(vp_safetensors *st, const char *tag, vp_loss_cfg lc)
{
    char n[64];
    vp_tensor *z = vp_st_load(st, "z"), *t = vp_st_load(st, "t");
    snprintf(n, sizeof n, "%s.loss", tag);
    vp_tensor *lg = vp_st_load(st, n);
    snprintf(n, sizeof n, "%s.dz", tag);
    vp_tensor *dzg = vp_st_load(st, n), *dz = vp_tensor_new(5, z->shape);
    int32_t *tl = labels(t);
    double l;
    cr_assert_eq(vp_loss_eval(&lc, z, tl, 1.0, &l, dz), 0);
    cr_expect_leq(fabs(l - lg->data[0]) / fabs(lg->data[0]), 1e-5, "%s: loss %.8g, peer %.8g", tag, l, lg->data[0]);
    double e = reldiff(dz, dzg);
    cr_expect_leq(e, 1e-5, "%s: dz rel diff %g", tag, e);
    free(tl);
    vp_tensor_free(&z), vp_tensor_free(&t), vp_tensor_free(&lg), vp_tensor_free(&dzg), vp_tensor_free(&dz);
}

/* MONAI DiceCELoss and nnU-Net DC_and_CE_loss (batch Dice off / on for each): value and d/dlogits. */
Test(loss, dicece_and_nnunet_vs_peers)
{
    vp_safetensors *st = vp_st_open(G "losses.safetensors");
    cr_assert(st);
    loss_case(st, "monai", vp_loss_cfg_default(VP_LOSS_DICECE));
    vp_loss_cfg mb = vp_loss_cfg_default(VP_LOSS_DICECE);
    mb.batch_dice = 1; /* train-ressegnet --dice batch: MONAI DiceCELoss(batch=True) */
    loss_case(st, "monai_batch", mb);
    vp_loss_cfg nn = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE);
    nn.batch_dice = 0;
    loss_case(st, "nnunet0", nn);
    nn.batch_dice = 1;
    loss_case(st, "nnunet1", nn);
    vp_st_close(&st);
}

/* Deep supervision: nnU-Net's weights, nearest-exact target downsampling (DownsampleSegForDSTransform)
 * and the weighted sum of losses / gradients over 3 outputs. */
Test(loss, deep_supervision_vs_nnunet)
{
    vp_safetensors *st = vp_st_open(G "losses.safetensors");
    cr_assert(st);
    vp_tensor *wg = vp_st_load(st, "ds.weights"), *t = vp_st_load(st, "ds.t"), *lg = vp_st_load(st, "ds.loss");
    const int n = (int)wg->shape[0];
    double w[8], total = 0;
    vp_loss_ds_weights(n, w);
    for (int i = 0; i < n; i++) cr_expect_leq(fabs(w[i] - wg->data[i]), 1e-7, "weight %d: %g vs %g", i, w[i], wg->data[i]);
    int32_t *full = labels(t);
    vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_NNUNET_DCCE);
    for (int i = 0; i < n; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "ds.z%d", i);
        vp_tensor *z = vp_st_load(st, nm);
        snprintf(nm, sizeof nm, "ds.dz%d", i);
        vp_tensor *dzg = vp_st_load(st, nm), *dz = vp_tensor_new(5, z->shape);
        snprintf(nm, sizeof nm, "ds.t%d", i);
        vp_tensor *tg = vp_st_load(st, nm);
        int64_t id[3] = {t->shape[1], t->shape[2], t->shape[3]}, od[3] = {z->shape[2], z->shape[3], z->shape[4]};
        int32_t *td = malloc((size_t)vp_tensor_numel(tg) * sizeof *td), *tgl = labels(tg);
        vp_loss_downsample_target(full, t->shape[0], id, od, td);
        cr_expect(!memcmp(td, tgl, (size_t)vp_tensor_numel(tg) * sizeof *td), "output %d: downsampled target differs", i);
        double l = 0;
        if (w[i] != 0) cr_assert_eq(vp_loss_eval(&lc, z, td, w[i], &l, dz), 0);
        else memset(dz->data, 0, (size_t)vp_tensor_numel(dz) * sizeof(float));
        total += w[i] * l;
        double e = reldiff(dz, dzg);
        cr_expect_leq(e, 1e-5, "output %d: dz rel diff %g", i, e);
        free(td), free(tgl);
        vp_tensor_free(&z), vp_tensor_free(&dzg), vp_tensor_free(&dz), vp_tensor_free(&tg);
    }
    cr_expect_leq(fabs(total - lg->data[0]) / fabs(lg->data[0]), 1e-5, "loss %.8g, nnU-Net %.8g", total, lg->data[0]);
    free(full);
    vp_tensor_free(&wg), vp_tensor_free(&t), vp_tensor_free(&lg);
    vp_st_close(&st);
}

/* A label outside [0, classes) is an error naming the value, not a crash. */
Test(loss, target_out_of_range, .init = cr_redirect_stderr)
{
    vp_tensor *z = rnd(1, 3, 2, 2, 2);
    int32_t t[8] = {0, 1, 2, 3, 0, 0, 0, 0};
    double l;
    vp_loss_cfg lc = vp_loss_cfg_default(VP_LOSS_DICECE);
    cr_expect_eq(vp_loss_eval(&lc, z, t, 1.0, &l, NULL), -1);
    t[3] = -1;
    cr_expect_eq(vp_loss_eval(&lc, z, t, 1.0, &l, NULL), -1);
    fflush(stderr);
    cr_expect_stderr_eq_str("voxpipe: error: loss: target label 3 at batch 0 voxel (0,1,1) is outside [0, 3) (the model has 3 classes)\n"
                            "voxpipe: error: loss: target label -1 at batch 0 voxel (0,1,1) is outside [0, 3) (the model has 3 classes)\n");
    vp_tensor_free(&z);
}
