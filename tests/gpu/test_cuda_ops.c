/* test_cuda_ops.c - every op of the CUDA backend against the reference ops (nn_ops_ref.c, the
 * specification) on random shapes and values, with device tensors (NCDHW and channels-last NDHWC)
 * and with host tensors (staged); the convolutions again in tf32, f16 and bf16 math; device
 * out-of-memory and no-output-on-stdout errors; then a timing of the 3x3x3 convolution per math
 * and layout. Run by tests/gpu/check.sh on a machine with a GPU; built by `make gpu-check-build`.
 *
 * Pass: f32 max abs difference <= 1e-4 or NMSE <= 1e-7 per case; tf32/f16/bf16 convolutions max
 * abs difference <= 1e-2 x max |reference| ("1e-2 relative"); argmax identical.
 * f32 convolutions must also be exact where f32 is and TF32 is not (f32_exact_case).
 * Modes: (none) everything and the timing; --no-bench everything; --oom the out-of-memory check;
 * --small one case of each kind (for compute-sanitizer, tests/gpu/check_review.sh); --big
 * tensors past the 1-D grid's cap and a 2^28-element norm group (tests/gpu/check_review.sh).
 * Exit: 0 all pass, 1 a case failed, 2 usage, 4 (VP_ERR_DEVICE) no CUDA backend (built without, no GPU).
 * Output: one line per case and a summary on stdout; errors on stderr.
 */
#include "nn_backend.h"
#include "nn_cuda.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
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
static vp_tensor *like(const int64_t *s) { return vp_tensor_zeros(5, s); }

static const vp_nn_backend *be;
static int dev_mode; /* 2: device tensors, activations channels-last; 1: device tensors; 0: host tensors (staged) */
static int n_pass, n_fail;
static double rel_tol;  /* 0: f32 criteria; else max abs <= rel_tol * max |want| */
static const char *const mode_name[3] = {"host", "device", "dev-cl"};

/* a device copy of a host tensor (dev_mode; 5-D tensors channels-last in mode 2), or the tensor itself */
static vp_tensor *on(const vp_tensor *h)
{
    if (!h || !dev_mode) return (vp_tensor *)h;
    vp_tensor *d = dev_mode == 2 && h->ndim == 5 ? vp_cuda_tensor_new_cl(0, h->shape) : vp_cuda_tensor_new(0, h->ndim, h->shape);
    if (!d || vp_cuda_upload(d, h)) exit(1);
    if (dev_mode == 2 && h->ndim == 5 && h->shape[1] > 1 && vp_cuda_tensor_layout(d) != VP_CUDA_NDHWC) {
        fprintf(stderr, "test_cuda_ops: vp_cuda_tensor_new_cl did not give an NDHWC tensor\n");
        exit(1);
    }
    return d;
}
/* weights: always PyTorch's layout */
static vp_tensor *onw(const vp_tensor *h)
{
    if (!h || !dev_mode) return (vp_tensor *)h;
    vp_tensor *d = vp_cuda_tensor_new(0, h->ndim, h->shape);
    if (!d || vp_cuda_upload(d, h)) exit(1);
    return d;
}
static void off(vp_tensor *d, const vp_tensor *h)
{
    if (d && d != h) vp_cuda_tensor_free(&d);
}
static void fetch(vp_tensor *host, vp_tensor *d)
{
    if (d != host && vp_cuda_download(host, d)) exit(1);
}

static void report(const char *op, const char *shape, const vp_tensor *got, const vp_tensor *want)
{
    double maxabs = 0, se = 0, ss = 0, maxref = 0;
    for (int64_t i = 0, n = vp_tensor_numel(want); i < n; i++) {
        double d = fabs((double)got->data[i] - want->data[i]);
        if (!(d <= maxabs)) maxabs = d; /* NaN counts as the largest */
        if (fabs(want->data[i]) > maxref) maxref = fabs(want->data[i]);
        se += d * d, ss += (double)want->data[i] * want->data[i];
    }
    double nmse = ss > 0 ? se / ss : se;
    int ok = rel_tol > 0 ? maxabs <= rel_tol * maxref : maxabs <= 1e-4 || nmse <= 1e-7;
    ok ? n_pass++ : n_fail++;
    printf("%-4s %-6s %-5s %-22s %-34s maxabs %.2e nmse %.2e rel %.1e\n", ok ? "ok" : "FAIL", mode_name[dev_mode], vp_cuda_math_name(be),
           op, shape, maxabs, nmse, maxref > 0 ? maxabs / maxref : maxabs);
}

/* run op on the CUDA backend (through `on` copies) and compare with the reference result */
#define CHECK_OP(name, desc_, want, call_cuda)                   \
    do {                                                         \
        vp_tensor *got = like((want)->shape), *dy = on(got);     \
        if (call_cuda) {                                         \
            printf("FAIL %-6s %-5s %-22s %s: op returned an error\n", mode_name[dev_mode], vp_cuda_math_name(be), name, desc_); \
            n_fail++;                                            \
        } else {                                                 \
            fetch(got, dy);                                      \
            report(name, desc_, got, want);                      \
        }                                                        \
        off(dy, got);                                            \
        vp_tensor_free(&got);                                    \
    } while (0)

static void conv_case(int transposed, int N, int Ci, int Co, const int k[3], const int st[3], const int pd[3], const int op[3], int D,
                      int H, int W, int bias)
{
    vp_conv3d_params p;
    for (int i = 0; i < 3; i++) p.stride[i] = st[i], p.pad[i] = pd[i], p.out_pad[i] = transposed ? op[i] : 0;
    vp_tensor *x = rnd5(N, Ci, D, H, W, 1.0f);
    vp_tensor *w = transposed ? rnd5(Ci, Co, k[0], k[1], k[2], 0.3f) : rnd5(Co, Ci, k[0], k[1], k[2], 0.3f);
    vp_tensor *b = bias ? rnd1(Co, 0.5f) : NULL;
    int64_t os[5];
    if (transposed ? vp_nn_conv_transpose3d_shape(x, w, b, &p, os) : vp_nn_conv3d_shape(x, w, b, &p, os)) exit(1);
    vp_tensor *want = like(os);
    if (transposed ? vp_nn_ref_conv_transpose3d(x, w, b, &p, want) : vp_nn_ref_conv3d(x, w, b, &p, want)) exit(1);
    char s[96];
    snprintf(s, sizeof s, "x(%d,%d,%d,%d,%d) k%d%d%d s%d%d%d p%d%s", N, Ci, D, H, W, k[0], k[1], k[2], st[0], st[1], st[2], pd[0],
             bias ? " b" : "");
    vp_tensor *dx = on(x), *dw = onw(w), *db = on(b);
    CHECK_OP(transposed ? "conv_transpose3d" : "conv3d", s, want,
             transposed ? be->conv_transpose3d(be, dx, dw, db, &p, dy) : be->conv3d(be, dx, dw, db, &p, dy));
    off(dx, x), off(dw, w), off(db, b);
    vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&b), vp_tensor_free(&want);
}

static void norm_case(int N, int C, int groups, int D, int H, int W, int affine, int act, float offset)
{
    vp_tensor *x = rnd5(N, C, D, H, W, 2.0f), *g = affine ? rnd1(C, 1.0f) : NULL, *b = affine ? rnd1(C, 1.0f) : NULL;
    for (int64_t i = 0, n = vp_tensor_numel(x); i < n; i++) x->data[i] += offset; /* a large mean tests the two passes */
    vp_tensor *want = like(x->shape);
    if (vp_nn_ref_group_norm(x, groups, 1e-5f, g, b, want)) exit(1);
    if (act == 1) vp_nn_ref_relu(want, want);
    if (act == 2) vp_nn_ref_leaky_relu(want, 0.01f, want);
    char s[96];
    snprintf(s, sizeof s, "x(%d,%d,%d,%d,%d) g%d%s%s", N, C, D, H, W, groups, affine ? " affine" : "", offset ? " +100" : "");
    vp_tensor *dx = on(x), *dg = on(g), *db = on(b);
    const char *name = act ? (act == 1 ? "norm_act relu" : "norm_act leaky") : groups == C ? "instance_norm" : "group_norm";
    CHECK_OP(name, s, want,
             act ? vp_cuda_norm_act(be, dx, groups, 1e-5f, dg, db, act, 0.01f, dy)
                 : groups == C ? be->instance_norm(be, dx, 1e-5f, dg, db, dy) : be->group_norm(be, dx, groups, 1e-5f, dg, db, dy));
    off(dx, x), off(dg, g), off(db, b);
    vp_tensor_free(&x), vp_tensor_free(&g), vp_tensor_free(&b), vp_tensor_free(&want);
}

static void simple_cases(int N, int C, int D, int H, int W)
{
    char s[96];
    snprintf(s, sizeof s, "x(%d,%d,%d,%d,%d)", N, C, D, H, W);
    vp_tensor *x = rnd5(N, C, D, H, W, 3.0f), *y = rnd5(N, C, D, H, W, 3.0f), *want = like(x->shape);
    vp_tensor *dx = on(x), *dyy = on(y);
    vp_nn_ref_relu(x, want);
    CHECK_OP("relu", s, want, be->relu(be, dx, dy));
    vp_nn_ref_leaky_relu(x, 0.01f, want);
    CHECK_OP("leaky_relu", s, want, be->leaky_relu(be, dx, 0.01f, dy));
    vp_nn_ref_add(x, y, want);
    CHECK_OP("add", s, want, be->add(be, dx, dyy, dy));
    vp_nn_ref_softmax_c(x, want);
    CHECK_OP("softmax_c", s, want, be->softmax_c(be, dx, dy));
    /* concat of x, y, x */
    const vp_tensor *xs[3] = {x, y, x}, *dxs[3] = {dx, dyy, dx};
    int64_t cs[5];
    vp_nn_concat_shape(xs, 3, cs);
    vp_tensor *wcat = like(cs);
    vp_nn_ref_concat(xs, 3, wcat);
    CHECK_OP("concat", s, wcat, be->concat(be, dxs, 3, dy));
    vp_tensor_free(&wcat);
    /* upsample */
    int64_t us[5] = {N, C, 2 * D, 2 * H, 2 * W};
    vp_tensor *wup = like(us);
    vp_nn_ref_upsample_trilinear2x(x, wup);
    CHECK_OP("upsample_trilinear2x", s, wup, be->upsample_trilinear2x(be, dx, dy));
    vp_tensor_free(&wup);
    /* argmax into host memory: must be identical */
    int64_t nv = (int64_t)N * D * H * W;
    int32_t *a = vp_malloc((size_t)nv * 4), *b = vp_malloc((size_t)nv * 4);
    vp_nn_ref_argmax_c(x, a);
    if (be->argmax_c(be, dx, b)) {
        printf("FAIL %-6s argmax_c %s: op returned an error\n", mode_name[dev_mode], s), n_fail++;
    } else {
        int64_t bad = 0;
        for (int64_t i = 0; i < nv; i++) bad += a[i] != b[i];
        bad ? n_fail++ : n_pass++;
        printf("%-4s %-6s %-5s %-22s %-34s %lld of %lld labels differ\n", bad ? "FAIL" : "ok", mode_name[dev_mode], "f32", "argmax_c", s,
               (long long)bad, (long long)nv);
    }
    free(a), free(b);
    off(dx, x), off(dyy, y);
    vp_tensor_free(&x), vp_tensor_free(&y), vp_tensor_free(&want);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* 3x3x3 conv C->C, pad 1, on device tensors in layout cl: median of reps, TFLOP/s (2 flops per MAC) */
static void bench_conv(int N, int C, int S, int reps, int cl)
{
    int64_t xs[5] = {N, C, S, S, S};
    vp_tensor *hx = rnd5(N, C, S, S, S, 1.0f), *hw = rnd5(C, C, 3, 3, 3, 0.1f);
    vp_tensor *x = cl ? vp_cuda_tensor_new_cl(0, xs) : vp_cuda_tensor_new(0, 5, xs), *w = vp_cuda_tensor_new(0, 5, hw->shape);
    vp_tensor *y = cl ? vp_cuda_tensor_new_cl(0, xs) : vp_cuda_tensor_new(0, 5, xs);
    if (!x || !w || !y || vp_cuda_upload(x, hx) || vp_cuda_upload(w, hw)) exit(1);
    vp_conv3d_params p = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    double t[64], flops = 2.0 * N * C * C * 27 * (double)S * S * S;
    if (reps > 64) reps = 64;
    if (be->conv3d(be, x, w, NULL, &p, y) || vp_cuda_synchronize(0)) { /* warm-up: algorithm choice */
        printf("bench conv3d %s %s x(%d,%d,%d^3): not available (see stderr)\n", vp_cuda_math_name(be), cl ? "NDHWC" : "NCDHW", N, C, S);
        goto out;
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (be->conv3d(be, x, w, NULL, &p, y) || vp_cuda_synchronize(0)) exit(1);
        t[r] = now() - t0;
    }
    for (int i = 1; i < reps; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double u = t[j]; t[j] = t[j - 1], t[j - 1] = u; }
    printf("bench conv3d 3x3x3 %-4s %s x(%d,%d,%d^3): median %.3f ms over %d, %.1f TFLOP/s\n", vp_cuda_math_name(be), cl ? "NDHWC" : "NCDHW", N, C,
           S, t[reps / 2] * 1e3, reps, flops / t[reps / 2] * 1e-12);
out:
    vp_cuda_tensor_free(&x), vp_cuda_tensor_free(&w), vp_cuda_tensor_free(&y);
    vp_tensor_free(&hx), vp_tensor_free(&hw);
}

static const int k3[3] = {3, 3, 3}, k1[3] = {1, 1, 1}, k2[3] = {2, 2, 2}, k133[3] = {1, 3, 3}, k122[3] = {1, 2, 2};
static const int s1[3] = {1, 1, 1}, s2[3] = {2, 2, 2}, s122[3] = {1, 2, 2}, p0[3] = {0, 0, 0}, p1[3] = {1, 1, 1}, p011[3] = {0, 1, 1};

static void conv_cases(void)
{
    conv_case(0, 2, irand(1, 8), irand(1, 8), k3, s1, p1, p0, irand(4, 12), irand(4, 12), irand(4, 12), 1);
    conv_case(0, 1, irand(4, 16), irand(4, 16), k1, s1, p0, p0, irand(4, 12), irand(4, 12), irand(4, 12), 1);
    conv_case(0, 2, irand(2, 8), irand(2, 8), k3, s2, p1, p0, irand(5, 13), irand(5, 13), irand(5, 13), 0);
    conv_case(0, 1, irand(2, 8), irand(2, 8), k133, s122, p011, p0, irand(3, 9), irand(5, 13), irand(5, 13), 1);
    conv_case(0, 1, 32, 32, k3, s1, p1, p0, 12, 12, 12, 1);
    conv_case(1, 2, irand(2, 8), irand(2, 8), k2, s2, p0, p0, irand(3, 8), irand(3, 8), irand(3, 8), 1);
    conv_case(1, 1, irand(2, 8), irand(2, 8), k122, s122, p0, p0, irand(3, 8), irand(3, 8), irand(3, 8), 0);
    conv_case(1, 1, irand(2, 8), irand(2, 8), k3, s2, p1, s1, irand(3, 8), irand(3, 8), irand(3, 8), 1);
}

/* f32 must be f32: inputs 1 + 2^-12 (exact in f32, 1.0 in TF32's 10-bit mantissa) and weights 1
 * give sums of up to 216 terms that are exact in f32 in any order; a TF32 kernel (cuDNN's
 * DEFAULT_MATH on sm_80+) is off by up to 216 * 2^-12 = 0.053. Pass: max abs <= 1e-3 (room for an
 * FFT or Winograd algorithm's own rounding, 50x below TF32's error). */
static void f32_exact_case(int transposed)
{
    vp_conv3d_params p = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
    vp_tensor *x = rnd5(1, 8, 5, 6, 7, 1.0f), *w = transposed ? rnd5(8, 4, 3, 3, 3, 1.0f) : rnd5(4, 8, 3, 3, 3, 1.0f);
    for (int64_t i = 0, n = vp_tensor_numel(x); i < n; i++) x->data[i] = 1.0f + 1.0f / 4096.0f;
    for (int64_t i = 0, n = vp_tensor_numel(w); i < n; i++) w->data[i] = 1.0f;
    int64_t os[5];
    if (transposed ? vp_nn_conv_transpose3d_shape(x, w, NULL, &p, os) : vp_nn_conv3d_shape(x, w, NULL, &p, os)) exit(1);
    vp_tensor *want = like(os), *got = like(os), *dx = on(x), *dw = onw(w), *dy = on(got);
    if (transposed ? vp_nn_ref_conv_transpose3d(x, w, NULL, &p, want) : vp_nn_ref_conv3d(x, w, NULL, &p, want)) exit(1);
    const char *name = transposed ? "conv_transpose3d exact" : "conv3d exact";
    if (transposed ? be->conv_transpose3d(be, dx, dw, NULL, &p, dy) : be->conv3d(be, dx, dw, NULL, &p, dy)) {
        printf("FAIL %-6s %-5s %-22s op returned an error\n", mode_name[dev_mode], vp_cuda_math_name(be), name), n_fail++;
    } else {
        fetch(got, dy);
        double m = 0;
        for (int64_t i = 0, n = vp_tensor_numel(want); i < n; i++) {
            double d = fabs((double)got->data[i] - want->data[i]);
            if (!(d <= m)) m = d;
        }
        m <= 1e-3 ? n_pass++ : n_fail++;
        printf("%-4s %-6s %-5s %-22s %-34s maxabs %.2e (TF32 would give ~5e-2)\n", m <= 1e-3 ? "ok" : "FAIL", mode_name[dev_mode],
               vp_cuda_math_name(be), name, "x=1+2^-12 (1,8,5,6,7) w=1 k333 p1", m);
    }
    off(dx, x), off(dw, w), off(dy, got);
    vp_tensor_free(&x), vp_tensor_free(&w), vp_tensor_free(&want), vp_tensor_free(&got);
}

/* --big: tensors past the 1-D grid's cap (blocks_for: 65535 * 32 blocks of 256 threads = 2^29 -
 * 8160 elements), so the grid-stride loops go round more than once, and a group norm of 2^28
 * elements in one group (16384 chunks along gridDim.x): relu, add, instance norm against the
 * reference. Device NCDHW tensors; about 7 GiB of device and 10 GiB of host memory. */
static void big_cases(void)
{
    dev_mode = 1;
    {
        int64_t n = 1, c = 1, d = 1040, h = 1024, w = 512; /* 2^29 + 2^23 elements: 2.06 GiB */
        vp_tensor *x = rnd5(n, c, d, h, w, 3.0f), *y = rnd5(n, c, d, h, w, 3.0f), *want = like(x->shape);
        vp_tensor *dx = on(x), *dyy = on(y);
        vp_nn_ref_relu(x, want);
        CHECK_OP("relu big", "x(1,1,1040,1024,512)", want, be->relu(be, dx, dy));
        vp_nn_ref_add(x, y, want);
        CHECK_OP("add big", "x(1,1,1040,1024,512)", want, be->add(be, dx, dyy, dy));
        off(dx, x), off(dyy, y);
        vp_tensor_free(&x), vp_tensor_free(&y), vp_tensor_free(&want);
    }
    norm_case(1, 2, 2, 512, 512, 1024, 1, 1, 0); /* 2^28 per group, 16384 chunks */
}

/* --small: one case of each kind, device tensors in both layouts, for compute-sanitizer (which
 * slows kernels down 10-100x): f32 ops, the exactness probe, and one convolution per other math
 * (their conversion kernels). */
static void small_cases(void)
{
    static const char *const maths[4] = {"cuda:0:f32", "cuda:0:tf32", "cuda:0:f16", "cuda:0:bf16"};
    for (int m = 0; m < 4; m++) {
        if (!(be = vp_nn_backend_get(maths[m]))) exit(VP_ERR_DEVICE);
        rel_tol = m ? 1e-2 : 0;
        for (dev_mode = 2; dev_mode >= 1; dev_mode--) {
            rng = 0x9e3779b97f4a7c15ULL;
            conv_case(0, 2, 3, 5, k3, s1, p1, p0, 6, 5, 7, 1);
            conv_case(1, 1, 4, 3, k2, s2, p0, p0, 3, 4, 5, 1);
            if (m) continue;
            f32_exact_case(0), f32_exact_case(1);
            norm_case(2, 8, 4, 5, 6, 7, 1, 1, 0);
            norm_case(1, 4, 4, 9, 8, 7, 1, 2, 100.0f);
            simple_cases(2, 3, 4, 5, 6);
        }
    }
    rel_tol = 0;
}

/* Out of device memory: a clear error on stderr naming the size, NULL/-1, exit code 4 through
 * vp_cuda_exit_code; nothing on stdout (check.sh checks that). Returns the exit code. */
static int oom_check(void)
{
    int64_t huge[5] = {64, 64, 1024, 1024, 1024}; /* 2^42 floats: 16 TiB */
    vp_tensor *t = vp_cuda_tensor_new(0, 5, huge);
    if (t) {
        vp_cuda_tensor_free(&t);
        fprintf(stderr, "test_cuda_ops: --oom: a 16 TiB tensor was allocated?\n");
        return 1;
    }
    /* the device still works after the failed allocation */
    vp_tensor *h = rnd5(1, 2, 3, 4, 5, 1.0f), *d = vp_cuda_tensor_new(0, 5, h->shape), *back = like(h->shape);
    int same = d && !vp_cuda_upload(d, h) && !vp_cuda_download(back, d) && !memcmp(h->data, back->data, (size_t)vp_tensor_numel(h) * 4);
    vp_cuda_tensor_free(&d), vp_tensor_free(&h), vp_tensor_free(&back);
    if (!same) {
        fprintf(stderr, "test_cuda_ops: --oom: the device does not work after an out-of-memory error\n");
        return 1;
    }
    return vp_cuda_exit_code(1); /* 4: what a program exits with */
}

int main(int argc, char **argv)
{
    vp_set_progname(argv[0]);
    const char *a1 = argc > 1 ? argv[1] : "";
    int bench = !strcmp(a1, ""), oom = !strcmp(a1, "--oom");
    if (*a1 && strcmp(a1, "--no-bench") && strcmp(a1, "--oom") && strcmp(a1, "--small") && strcmp(a1, "--big")) {
        fprintf(stderr, "usage: test_cuda_ops [--no-bench|--oom|--small|--big]\n");
        return VP_ERR_USAGE;
    }
    char desc[256];
    if (!vp_cuda_built()) {
        fprintf(stderr, "test_cuda_ops: built without CUDA: nothing to test\n");
        return VP_ERR_DEVICE;
    }
    if (!(be = vp_nn_backend_get("cuda:0:f32"))) return VP_ERR_DEVICE;
    if (oom) return oom_check();
    printf("device: %s\n", vp_cuda_describe(0, desc, sizeof desc));
    if (!strcmp(a1, "--small") || !strcmp(a1, "--big")) {
        if (!strcmp(a1, "--small")) small_cases();
        else big_cases();
        printf("cuda ops vs reference (%s): %d passed, %d failed\n", a1 + 2, n_pass, n_fail);
        return n_fail ? 1 : 0;
    }
    for (dev_mode = 2; dev_mode >= 0; dev_mode--) {
        rng = 0x9e3779b97f4a7c15ULL;
        conv_cases();
        norm_case(2, 16, 8, irand(3, 12), irand(3, 12), irand(3, 12), 1, 0, 0);
        norm_case(1, 8, 2, 16, 16, 16, 0, 0, 100.0f);
        norm_case(1, 4, 1, 40, 40, 40, 1, 0, 0); /* several chunks per group */
        norm_case(2, 6, 6, irand(3, 12), irand(3, 12), irand(3, 12), 1, 0, 0);
        norm_case(1, 8, 8, 9, 10, 11, 0, 0, 100.0f);
        norm_case(2, 16, 8, 8, 8, 8, 1, 1, 0);
        norm_case(2, 6, 6, 8, 8, 8, 1, 2, 0);
        simple_cases(2, irand(2, 9), irand(2, 9), irand(2, 9), irand(2, 9));
        simple_cases(1, 26, 7, 5, 3);
        f32_exact_case(0), f32_exact_case(1);
    }
    /* the other convolution maths, 1e-2 relative */
    static const char *const maths[3] = {"cuda:0:tf32", "cuda:0:f16", "cuda:0:bf16"};
    rel_tol = 1e-2;
    for (int m = 0; m < 3; m++) {
        if (!(be = vp_nn_backend_get(maths[m]))) return VP_ERR_DEVICE;
        for (dev_mode = 2; dev_mode >= 0; dev_mode--) {
            rng = 0x9e3779b97f4a7c15ULL;
            conv_cases();
        }
    }
    rel_tol = 0;
    printf("cuda ops vs reference: %d passed, %d failed\n", n_pass, n_fail);
    if (bench && !n_fail) {
        static const char *const all[4] = {"cuda:0:f32", "cuda:0:tf32", "cuda:0:f16", "cuda:0:bf16"};
        for (int m = 0; m < 4; m++) {
            be = vp_nn_backend_get(all[m]);
            for (int cl = 0; cl < 2; cl++) bench_conv(2, 32, 96, 10, cl);
        }
        be = vp_nn_backend_get("cuda:0:f32");
        bench_conv(1, 16, 128, 10, 0);
    }
    return n_fail ? 1 : 0;
}
