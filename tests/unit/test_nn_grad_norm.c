/* Unit tests for the CPU backward of group / instance norm, of relu / leaky relu, and of their
 * fusion (lib/nn_grad_fast_norm.c, lib/nn_grad_fast_elem.c) against the reference ops
 * (lib/nn_grad_ref.c), for every instruction-set variant this processor runs (VOXPIPE_NN_ISA
 * forces the lower ones) and 1, 2 and 3 threads.
 *
 * relu / leaky relu backward: the reference's bytes. Group norm backward: within 1e-6 of the
 * reference (max |diff| / max |ref|; its f64 sums are reassociated), the same bytes for every
 * thread count and variant. The fused op: the bytes of leaky relu backward then group norm
 * backward on the same backend. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nn_grad.h"
#include "nn_isa.h"

static const char *isas[] = {"avx512", "avx2", "base"};

static unsigned rng = 4242;
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
static vp_tensor *vec(int64_t n, float base, float spread)
{
    vp_tensor *t = vp_tensor_new(1, &n);
    for (int64_t i = 0; i < n; i++) t->data[i] = base + spread * frand();
    return t;
}
static vp_tensor *nan_like(const vp_tensor *t) /* an output that fails if left unwritten */
{
    vp_tensor *o = vp_tensor_new(t->ndim, t->shape);
    for (int64_t i = 0; i < vp_tensor_numel(o); i++) o->data[i] = NAN;
    return o;
}
static vp_tensor *copy(const vp_tensor *t)
{
    vp_tensor *o = vp_tensor_new(t->ndim, t->shape);
    memcpy(o->data, t->data, (size_t)vp_tensor_numel(t) * sizeof(float));
    return o;
}
static int same_bytes(const vp_tensor *a, const vp_tensor *b)
{
    return vp_tensor_same_shape(a, b) && !memcmp(a->data, b->data, (size_t)vp_tensor_numel(a) * sizeof(float));
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
static int n_isas(void)
{
    unsetenv("VOXPIPE_NN_ISA");
    return vp_nn_isa_level();
}

/* relu and leaky relu backward (slopes 0.01 and 0): the reference's bytes for every variant and
 * thread count, out of place and in place; sizes past one 64k chunk, with a tail of 7, exact zeros
 * and negative zeros in y (y <= 0 takes the slope branch). */
Test(grad_norm, relu_bwd_reference_bytes)
{
    vp_tensor *y = rnd(2, 3, 21, 33, 50), *dy = rnd(2, 3, 21, 33, 50);
    for (int64_t i = 0; i < vp_tensor_numel(y); i += 37) y->data[i] = (i / 37) % 2 ? 0.0f : -0.0f;
    const float slopes[3] = {0.01f, 0.0f, -1.0f}; /* -1: relu */
    for (int k = 0; k < 3; k++) {
        vp_tensor *r = vp_tensor_new(5, y->shape);
        if (slopes[k] < 0) cr_assert_eq(vp_nn_ref_relu_bwd(y, dy, r), 0);
        else cr_assert_eq(vp_nn_ref_leaky_relu_bwd(y, dy, slopes[k], r), 0);
        for (int v = 3 - n_isas(); v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            for (int th = 1; th <= 3; th++) {
                vp_threads = th;
                vp_tensor *o = nan_like(y), *ip = copy(dy);
                const vp_nn_grad *g = vp_nn_grad_cpu();
                cr_assert_eq(slopes[k] < 0 ? g->relu_bwd(y, dy, o) : g->leaky_relu_bwd(y, dy, slopes[k], o), 0);
                cr_assert_eq(slopes[k] < 0 ? g->relu_bwd(y, ip, ip) : g->leaky_relu_bwd(y, ip, slopes[k], ip), 0);
                cr_expect(same_bytes(o, r), "slope %g %s %d threads: not the reference's bytes", slopes[k], isas[v], th);
                cr_expect(same_bytes(ip, r), "slope %g %s %d threads, in place: not the reference's bytes", slopes[k], isas[v], th);
                vp_tensor_free(&o), vp_tensor_free(&ip);
            }
        }
        unsetenv("VOXPIPE_NN_ISA");
        vp_tensor_free(&r);
    }
    vp_tensor_free(&y), vp_tensor_free(&dy);
}

struct gn_case {
    int64_t n, c, d, h, w;
    int groups, affine, want_dx;
};
static const struct gn_case cases[] = {
    {2, 8, 5, 6, 7, 8, 1, 1},   /* instance norm, 210 voxels: a tail of 2 after 13 vectors */
    {2, 8, 5, 6, 7, 4, 1, 1},   /* group norm, 2 channels per group */
    {1, 6, 8, 8, 8, 6, 0, 1},   /* no affine, whole vectors only */
    {2, 4, 3, 3, 1, 2, 1, 1},   /* 9 voxels: tails only */
    {2, 16, 4, 4, 4, 16, 1, 0}, /* parameter gradients only (the first layer) */
};

/* Group norm backward: within 1e-6 of the reference, every output written, the same bytes for
 * every variant and thread count (the first run's bytes are the baseline). */
Test(grad_norm, group_norm_bwd_vs_ref_every_isa)
{
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const struct gn_case *k = &cases[c];
        vp_tensor *x = rnd(k->n, k->c, k->d, k->h, k->w), *dy = rnd(k->n, k->c, k->d, k->h, k->w);
        for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = 3.0f + 2.0f * x->data[i] * (1 + (float)(i % 5)); /* mean far from 0 */
        vp_tensor *ga = k->affine ? vec(k->c, 1.0f, 0.5f) : NULL;
        vp_tensor *r[3] = {vp_tensor_new(5, x->shape), vp_tensor_new(1, &x->shape[1]), vp_tensor_new(1, &x->shape[1])};
        cr_assert_eq(vp_nn_ref_group_norm_bwd(x, dy, k->groups, 1e-5f, ga, r[0], ga ? r[1] : NULL, ga ? r[2] : NULL), 0);
        vp_tensor *first[3] = {0};
        for (int v = 3 - n_isas(); v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            for (int th = 1; th <= 3; th++) {
                vp_threads = th;
                vp_tensor *f[3] = {k->want_dx ? nan_like(x) : NULL, nan_like(r[1]), nan_like(r[2])};
                cr_assert_eq(vp_nn_grad_cpu()->group_norm_bwd(x, dy, k->groups, 1e-5f, ga, f[0], ga ? f[1] : NULL, ga ? f[2] : NULL), 0);
                for (int i = 0; i < 3; i++) {
                    if (!f[i] || (i && !ga)) continue;
                    double e = reldiff(f[i], r[i]);
                    cr_expect_leq(e, 1e-6, "case %zu output %d %s %d threads: rel diff %g from the reference", c, i, isas[v], th, e);
                    if (first[i]) cr_expect(same_bytes(f[i], first[i]), "case %zu output %d %s %d threads: bytes differ from the first run", c, i, isas[v], th);
                    else first[i] = copy(f[i]);
                }
                for (int i = 0; i < 3; i++) vp_tensor_free(&f[i]);
            }
        }
        unsetenv("VOXPIPE_NN_ISA");
        for (int i = 0; i < 3; i++) vp_tensor_free(&r[i]), vp_tensor_free(&first[i]);
        vp_tensor_free(&x), vp_tensor_free(&dy), vp_tensor_free(&ga);
    }
}

/* The fused op: the bytes of leaky_relu_bwd then group_norm_bwd (CPU), for every variant and
 * thread count, out of place and in place (dx == dy); the wrapper on the reference table (no fused
 * op) equals the reference ops in sequence. y is the real forward value, with exact zeros. */
Test(grad_norm, fused_leaky_equals_sequence)
{
    const vp_nn_backend *be = vp_nn_backend_ref();
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const struct gn_case *k = &cases[c];
        vp_tensor *x = rnd(k->n, k->c, k->d, k->h, k->w), *dy = rnd(k->n, k->c, k->d, k->h, k->w), *y = vp_tensor_new(5, x->shape);
        vp_tensor *ga = k->affine ? vec(k->c, 1.0f, 0.5f) : NULL, *be_ = k->affine ? vec(k->c, 0.0f, 0.5f) : NULL;
        cr_assert_eq(be->group_norm(be, x, k->groups, 1e-5f, ga, be_, y), 0);
        cr_assert_eq(be->leaky_relu(be, y, 0.01f, y), 0);
        for (int64_t i = 0; i < vp_tensor_numel(y); i += 11) y->data[i] = 0.0f;
        const int64_t C = k->c;
        /* the reference sequence through the wrapper (ref has no fused op) and directly */
        cr_assert_null(vp_nn_grad_ref()->group_norm_leaky_relu_bwd);
        vp_tensor *rs[3] = {vp_tensor_new(5, x->shape), vp_tensor_new(1, &C), vp_tensor_new(1, &C)}, *t = copy(dy);
        cr_assert_eq(vp_nn_ref_leaky_relu_bwd(y, t, 0.01f, t), 0);
        cr_assert_eq(vp_nn_ref_group_norm_bwd(x, t, k->groups, 1e-5f, ga, rs[0], ga ? rs[1] : NULL, ga ? rs[2] : NULL), 0);
        vp_tensor *rw[3] = {nan_like(x), nan_like(rs[1]), nan_like(rs[2])}, *t2 = copy(dy);
        cr_assert_eq(vp_nn_group_norm_leaky_relu_bwd(vp_nn_grad_ref(), x, y, t2, k->groups, 1e-5f, 0.01f, ga, rw[0], ga ? rw[1] : NULL, ga ? rw[2] : NULL), 0);
        for (int i = 0; i < 3; i++)
            if (!i || ga) cr_expect(same_bytes(rw[i], rs[i]), "case %zu output %d: the wrapper on ref is not the reference sequence", c, i);
        for (int v = 3 - n_isas(); v < 3; v++) {
            setenv("VOXPIPE_NN_ISA", isas[v], 1);
            for (int th = 1; th <= 3; th++) {
                vp_threads = th;
                const vp_nn_grad *g = vp_nn_grad_cpu();
                cr_assert_not_null(g->group_norm_leaky_relu_bwd);
                vp_tensor *s[3] = {k->want_dx ? nan_like(x) : NULL, nan_like(rs[1]), nan_like(rs[2])}, *u = copy(dy);
                cr_assert_eq(g->leaky_relu_bwd(y, u, 0.01f, u), 0);
                cr_assert_eq(g->group_norm_bwd(x, u, k->groups, 1e-5f, ga, s[0], ga ? s[1] : NULL, ga ? s[2] : NULL), 0);
                vp_tensor *f[3] = {k->want_dx ? nan_like(x) : NULL, nan_like(rs[1]), nan_like(rs[2])}, *ip = copy(dy);
                cr_assert_eq(vp_nn_group_norm_leaky_relu_bwd(g, x, y, dy, k->groups, 1e-5f, 0.01f, ga, f[0], ga ? f[1] : NULL, ga ? f[2] : NULL), 0);
                cr_assert_eq(g->group_norm_leaky_relu_bwd(x, y, ip, k->groups, 1e-5f, 0.01f, ga, k->want_dx ? ip : NULL, NULL, NULL), 0);
                for (int i = 0; i < 3; i++) {
                    if (!f[i] || (i && !ga)) continue;
                    cr_expect(same_bytes(f[i], s[i]), "case %zu output %d %s %d threads: fused differs from the sequence", c, i, isas[v], th);
                    double e = reldiff(f[i], rs[i]);
                    cr_expect_leq(e, 1e-6, "case %zu output %d %s %d threads: rel diff %g from the reference", c, i, isas[v], th, e);
                }
                if (k->want_dx) cr_expect(same_bytes(ip, s[0]), "case %zu %s %d threads: in-place fused dx differs", c, isas[v], th);
                for (int i = 0; i < 3; i++) vp_tensor_free(&s[i]), vp_tensor_free(&f[i]);
                vp_tensor_free(&u), vp_tensor_free(&ip);
            }
        }
        unsetenv("VOXPIPE_NN_ISA");
        for (int i = 0; i < 3; i++) vp_tensor_free(&rs[i]), vp_tensor_free(&rw[i]);
        vp_tensor_free(&t), vp_tensor_free(&t2), vp_tensor_free(&x), vp_tensor_free(&dy), vp_tensor_free(&y);
        vp_tensor_free(&ga), vp_tensor_free(&be_);
    }
}

/* Bad arguments of the fused op are errors naming it, nothing written. */
Test(grad_norm, fused_bad_args, .init = cr_redirect_stderr)
{
    vp_tensor *x = rnd(1, 4, 3, 4, 5), *y = rnd(1, 4, 3, 4, 5), *dy = rnd(1, 4, 3, 4, 5), *yb = rnd(1, 4, 3, 4, 4);
    vp_tensor *dx = nan_like(x);
    const vp_nn_grad *g = vp_nn_grad_cpu();
    cr_expect_eq(g->group_norm_leaky_relu_bwd(x, yb, dy, 4, 1e-5f, 0.01f, NULL, dx, NULL, NULL), -1);
    cr_expect_eq(g->group_norm_leaky_relu_bwd(x, y, dy, 4, 1e-5f, 0.01f, NULL, x, NULL, NULL), -1);
    cr_expect_eq(g->group_norm_leaky_relu_bwd(x, y, dy, 4, 1e-5f, 0.01f, NULL, y, NULL, NULL), -1);
    cr_expect_eq(g->group_norm_leaky_relu_bwd(x, y, dy, 3, 1e-5f, 0.01f, NULL, dx, NULL, NULL), -1);
    cr_expect_eq(g->group_norm_leaky_relu_bwd(x, NULL, dy, 4, 1e-5f, 0.01f, NULL, dx, NULL, NULL), -1);
    for (int64_t i = 0; i < vp_tensor_numel(dx); i++) cr_expect(isnan(dx->data[i]), "dx written after an error");
    fflush(stderr);
    cr_expect_stderr_eq_str("voxpipe: error: group_norm_leaky_relu_bwd: output (1,4,3,4,4) does not match input (1,4,3,4,5)\n"
                            "voxpipe: error: group_norm_leaky_relu_bwd: dx must not be the input or the output\n"
                            "voxpipe: error: group_norm_leaky_relu_bwd: dx must not be the input or the output\n"
                            "voxpipe: error: group_norm_leaky_relu_bwd: 4 channels not divisible into 3 groups\n"
                            "voxpipe: error: group_norm_leaky_relu_bwd: the leaky ReLU's output is missing\n");
    vp_tensor_free(&x), vp_tensor_free(&y), vp_tensor_free(&dy), vp_tensor_free(&yb), vp_tensor_free(&dx);
}
