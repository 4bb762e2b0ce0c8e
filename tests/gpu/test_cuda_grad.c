/* test_cuda_grad.c - the CUDA backward ops (nn_cuda.h: vp_cuda_*_bwd*) against the CPU reference
 * backward ops of nn_grad.h (vp_nn_ref_*_bwd*, the specification) on random small shapes, with
 * device tensors (NCDHW and channels-last NDHWC) and host tensors (staged); the convolution
 * gradients again in f16 math. Run by tests/gpu/check.sh on a machine with a GPU (which builds it
 * against build/libvoxpipe.a).
 *
 * Pass: f32 max abs difference <= 1e-4 or NMSE <= 1e-7; f16 convolutions max abs <= 1e-2 x max
 * |reference|. Exit: 0 all pass, 1 a case failed, 4 no CUDA backend.
 */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "nn_grad.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static float urand(void) /* [-1, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static int irand(int lo, int hi) { return lo + (int)((urand() + 1.0f) * 0.5f * (float)(hi - lo + 1)) % (hi - lo + 1); }

static vp_tensor *rnd(int ndim, const int64_t *s, float scale)
{
    vp_tensor *t = vp_tensor_new(ndim, s);
    for (int64_t i = 0, n = vp_tensor_numel(t); i < n; i++) t->data[i] = urand() * scale;
    return t;
}
static vp_tensor *rnd5(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w, float scale)
{
    int64_t s[5] = {n, c, d, h, w};
    return rnd(5, s, scale);
}
static vp_tensor *rnd1(int64_t n, float scale) { return rnd(1, &n, scale); }
static vp_tensor *zeros_like(const vp_tensor *t) { return vp_tensor_zeros(t->ndim, t->shape); }

static const vp_nn_backend *be;
static int mode; /* 2: device, activations NDHWC; 1: device NCDHW; 0: host (staged) */
static double rel_tol;
static int n_pass, n_fail;
static const char *const mode_name[3] = {"host", "device", "dev-cl"};

/* device copy of a host tensor for the mode; act: an activation (channels-last in mode 2) */
static vp_tensor *on(const vp_tensor *h, int act)
{
    if (!h || !mode) return (vp_tensor *)h;
    vp_tensor *d = mode == 2 && act && h->ndim == 5 ? vp_cuda_tensor_new_cl(0, h->shape) : vp_cuda_tensor_new(0, h->ndim, h->shape);
    if (!d || vp_cuda_upload(d, h)) exit(1);
    return d;
}
static void fetch(vp_tensor *host, vp_tensor *d)
{
    if (d && d != host && vp_cuda_download(host, d)) exit(1);
}
static void off(vp_tensor *d, const vp_tensor *h)
{
    if (d && d != h) vp_cuda_tensor_free(&d);
}

static void compare(const char *op, const char *what, const char *shape, const vp_tensor *got, const vp_tensor *want)
{
    double maxabs = 0, se = 0, ss = 0, maxref = 0;
    for (int64_t i = 0, n = vp_tensor_numel(want); i < n; i++) {
        double d = fabs((double)got->data[i] - want->data[i]);
        if (!(d <= maxabs)) maxabs = d;
        if (fabs(want->data[i]) > maxref) maxref = fabs(want->data[i]);
        se += d * d, ss += (double)want->data[i] * want->data[i];
    }
    double nmse = ss > 0 ? se / ss : se;
    int ok = rel_tol > 0 ? maxabs <= rel_tol * maxref : maxabs <= 1e-4 || nmse <= 1e-7;
    ok ? n_pass++ : n_fail++;
    printf("%-4s %-6s %-4s %-28s %-6s %-30s maxabs %.2e nmse %.2e\n", ok ? "ok" : "FAIL", mode_name[mode], vp_cuda_math_name(be), op, what,
           shape, maxabs, nmse);
}

static void failed(const char *op, const char *shape)
{
    printf("FAIL %-6s %-4s %-28s %s: op returned an error\n", mode_name[mode], vp_cuda_math_name(be), op, shape);
    n_fail++;
}

/* conv3d (transposed 0) or conv_transpose3d (1): data gradient, weight + bias gradient */
static void conv_case(int transposed, int N, int Ci, int Co, int k, int s, int pd, int opd, int D, int H, int W)
{
    vp_conv3d_params p = {{s, s, s}, {pd, pd, pd}, {opd, opd, opd}};
    vp_tensor *x = rnd5(N, Ci, D, H, W, 1.0f);
    vp_tensor *w = transposed ? rnd5(Ci, Co, k, k, k, 0.3f) : rnd5(Co, Ci, k, k, k, 0.3f);
    int64_t os[5];
    if (transposed ? vp_nn_conv_transpose3d_shape(x, w, NULL, &p, os) : vp_nn_conv3d_shape(x, w, NULL, &p, os)) exit(1);
    vp_tensor *dy = rnd(5, os, 1.0f);
    vp_tensor *dx_ref = zeros_like(x), *dw_ref = zeros_like(w), *db_ref = vp_tensor_zeros(1, &os[1]);
    if (transposed ? vp_nn_ref_conv_transpose3d_bwd_data(dy, w, &p, dx_ref) || vp_nn_ref_conv_transpose3d_bwd_weight(x, dy, &p, dw_ref, db_ref)
                   : vp_nn_ref_conv3d_bwd_data(dy, w, &p, dx_ref) || vp_nn_ref_conv3d_bwd_weight(x, dy, &p, dw_ref, db_ref))
        exit(1);
    char sh[96];
    snprintf(sh, sizeof sh, "x(%d,%d,%d,%d,%d) k%d s%d p%d", N, Ci, D, H, W, k, s, pd);
    const char *op = transposed ? "conv_transpose3d_bwd" : "conv3d_bwd";
    vp_tensor *gx = zeros_like(x), *gw = zeros_like(w), *gb = zeros_like(db_ref);
    vp_tensor *dX = on(x, 1), *dW = on(w, 0), *dDY = on(dy, 1), *ddx = on(gx, 1), *ddw = on(gw, 0), *ddb = on(gb, 0);
    if (transposed ? vp_cuda_conv_transpose3d_bwd_data(be, dDY, dW, &p, ddx) : vp_cuda_conv3d_bwd_data(be, dDY, dW, &p, ddx)) failed(op, sh);
    else fetch(gx, ddx), compare(op, "dx", sh, gx, dx_ref);
    if (transposed ? vp_cuda_conv_transpose3d_bwd_weight(be, dX, dDY, &p, ddw, ddb) : vp_cuda_conv3d_bwd_weight(be, dX, dDY, &p, ddw, ddb))
        failed(op, sh);
    else {
        fetch(gw, ddw), fetch(gb, ddb);
        compare(op, "dw", sh, gw, dw_ref);
        double keep = rel_tol;
        rel_tol = 0; /* the bias gradient is f32 in every math */
        compare(op, "db", sh, gb, db_ref);
        rel_tol = keep;
    }
    off(dX, x), off(dW, w), off(dDY, dy), off(ddx, gx), off(ddw, gw), off(ddb, gb);
    vp_tensor *all[] = {x, w, dy, dx_ref, dw_ref, db_ref, gx, gw, gb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vp_tensor_free(&all[i]);
}

static void norm_case(int N, int C, int groups, int D, int H, int W, int affine, float offset)
{
    vp_tensor *x = rnd5(N, C, D, H, W, 2.0f), *dy = rnd5(N, C, D, H, W, 1.0f), *g = affine ? rnd1(C, 1.0f) : NULL;
    for (int64_t i = 0, n = vp_tensor_numel(x); i < n; i++) x->data[i] += offset;
    int64_t c1 = C;
    vp_tensor *dx_ref = zeros_like(x), *dg_ref = vp_tensor_zeros(1, &c1), *db_ref = vp_tensor_zeros(1, &c1);
    if (vp_nn_ref_group_norm_bwd(x, dy, groups, 1e-5f, g, dx_ref, affine ? dg_ref : NULL, affine ? db_ref : NULL)) exit(1);
    char sh[96];
    snprintf(sh, sizeof sh, "x(%d,%d,%d,%d,%d) g%d%s%s", N, C, D, H, W, groups, affine ? " affine" : "", offset ? " +50" : "");
    vp_tensor *gx = zeros_like(x), *gg = zeros_like(dg_ref), *gb = zeros_like(db_ref);
    vp_tensor *dX = on(x, 1), *dDY = on(dy, 1), *dG = on(g, 0), *ddx = on(gx, 1), *ddg = affine ? on(gg, 0) : NULL,
              *ddb = affine ? on(gb, 0) : NULL;
    if (vp_cuda_group_norm_bwd(be, dX, dDY, groups, 1e-5f, dG, ddx, ddg, ddb)) failed("group_norm_bwd", sh);
    else {
        fetch(gx, ddx);
        compare("group_norm_bwd", "dx", sh, gx, dx_ref);
        if (affine) {
            fetch(gg, ddg), fetch(gb, ddb);
            compare("group_norm_bwd", "dgamma", sh, gg, dg_ref);
            compare("group_norm_bwd", "dbeta", sh, gb, db_ref);
        }
    }
    off(dX, x), off(dDY, dy), off(dG, g), off(ddx, gx), off(ddg, gg), off(ddb, gb);
    vp_tensor *all[] = {x, dy, g, dx_ref, dg_ref, db_ref, gx, gg, gb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vp_tensor_free(&all[i]);
}

static void elem_cases(int N, int C, int D, int H, int W)
{
    char sh[96];
    snprintf(sh, sizeof sh, "x(%d,%d,%d,%d,%d)", N, C, D, H, W);
    vp_tensor *y = rnd5(N, C, D, H, W, 1.0f), *dy = rnd5(N, C, D, H, W, 1.0f), *want = zeros_like(y), *got = zeros_like(y);
    vp_tensor *dY = on(y, 1), *dDY = on(dy, 1), *dG = on(got, 1);
    vp_nn_ref_relu_bwd(y, dy, want);
    if (vp_cuda_relu_bwd(be, dY, dDY, dG)) failed("relu_bwd", sh);
    else fetch(got, dG), compare("relu_bwd", "dx", sh, got, want);
    vp_nn_ref_leaky_relu_bwd(y, dy, 0.01f, want);
    if (vp_cuda_leaky_relu_bwd(be, dY, dDY, 0.01f, dG)) failed("leaky_relu_bwd", sh);
    else fetch(got, dG), compare("leaky_relu_bwd", "dx", sh, got, want);
    /* upsample: dy of the doubled shape */
    vp_tensor *dyu = rnd5(N, C, 2 * D, 2 * H, 2 * W, 1.0f), *dDYU = on(dyu, 1);
    vp_nn_ref_upsample_trilinear2x_bwd(dyu, want);
    if (vp_cuda_upsample_trilinear2x_bwd(be, dDYU, dG)) failed("upsample_trilinear2x_bwd", sh);
    else fetch(got, dG), compare("upsample_trilinear2x_bwd", "dx", sh, got, want);
    off(dY, y), off(dDY, dy), off(dG, got), off(dDYU, dyu);
    vp_tensor_free(&y), vp_tensor_free(&dy), vp_tensor_free(&want), vp_tensor_free(&got), vp_tensor_free(&dyu);
}

static void conv_cases(void)
{
    conv_case(0, 2, irand(1, 6), irand(1, 6), 3, 1, 1, 0, irand(4, 9), irand(4, 9), irand(4, 9));
    conv_case(0, 1, irand(2, 8), irand(2, 8), 1, 1, 0, 0, irand(4, 9), irand(4, 9), irand(4, 9));
    conv_case(0, 2, irand(2, 6), irand(2, 6), 3, 2, 1, 0, irand(5, 11), irand(5, 11), irand(5, 11));
    conv_case(0, 1, 16, 16, 3, 1, 1, 0, 10, 10, 10);
    conv_case(1, 2, irand(2, 6), irand(2, 6), 2, 2, 0, 0, irand(3, 7), irand(3, 7), irand(3, 7));
    conv_case(1, 1, irand(2, 6), irand(2, 6), 3, 2, 1, 1, irand(3, 7), irand(3, 7), irand(3, 7));
}

int main(int argc, char **argv)
{
    vp_set_progname(argv[0]);
    if (!vp_cuda_built()) {
        fprintf(stderr, "test_cuda_grad: built without CUDA: nothing to test\n");
        return VP_ERR_DEVICE;
    }
    if (!(be = vp_nn_backend_get("cuda:0:f32"))) return VP_ERR_DEVICE;
    for (mode = 2; mode >= 0; mode--) {
        rng = 0x2545f4914f6cdd1dULL;
        conv_cases();
        norm_case(2, 8, 4, irand(3, 9), irand(3, 9), irand(3, 9), 1, 0);
        norm_case(1, 6, 6, 7, 8, 9, 1, 50.0f); /* instance norm, large mean */
        norm_case(2, 4, 2, 5, 6, 7, 0, 0);     /* no affine */
        norm_case(1, 4, 1, 40, 40, 40, 1, 0);  /* several chunks per group and channel */
        elem_cases(2, irand(2, 7), irand(2, 7), irand(2, 7), irand(2, 7));
        elem_cases(1, 5, 3, 4, 6);
    }
    rel_tol = 1e-2;
    if (!(be = vp_nn_backend_get("cuda:0:f16"))) return VP_ERR_DEVICE;
    for (mode = 2; mode >= 1; mode--) {
        rng = 0x2545f4914f6cdd1dULL;
        conv_cases();
    }
    printf("cuda backward ops vs nn_grad reference: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
