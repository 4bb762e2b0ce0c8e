// tests/gpu/emu/test_emu_sliding.cc - nn_cuda_sliding.cu's host code and kernels (run on the CPU
// by tests/gpu/emulate.sh, the predictor a reference 3x3x3 convolution in the layout asked for)
// against vp_sliding_window + the reference argmax: f32 logits bit for bit (max abs 1e-6) and
// labels identical, over padding modes, layouts, batch sizes and a band that wraps many times;
// f16 aggregation within 1e-2. Exit 0 or 1.
#include "emu_sl.h"
#include <math.h>
#include <stdio.h>
#include <vector>
extern "C" {
#include "nn_backend.h"
#include "nn_sliding.h"
}
int emu_sliding_window(const vp_nn_backend *be, const vp_tensor *x, const vp_sw_params *p, int K, const vp_cuda_sw_opts *o,
                       vp_cuda_sw_predict_fn fn, void *ctx, int32_t *labels, vp_tensor *logits);
emu_dim blockIdx, blockDim, gridDim;
thread_local emu_dim threadIdx;
std::barrier<> *emu_bar;
static std::vector<char> scratch;
void *vp_cuda_scratch(vp_cuda_ctx *, size_t bytes) { if (scratch.size() < bytes) scratch.resize(bytes); return scratch.data(); }
void *vp_cuda_tmp(vp_cuda_ctx *, size_t bytes, const char *) { return malloc(bytes ? bytes : 4); }
int vp_cuda_h2d(vp_cuda_ctx *, void *d, const void *s, size_t b) { memcpy(d, s, b); return 0; }
int vp_cuda_d2h(vp_cuda_ctx *, void *d, const void *s, size_t b) { memcpy(d, s, b); return 0; }
void vp_cu_set_layout(vp_tensor *t, int l)
{
    const int64_t *s = t->shape;
    if (l == 1 && t->ndim == 5) { t->stride[1] = 1; t->stride[4] = s[1]; t->stride[3] = s[4] * s[1]; t->stride[2] = s[3] * s[4] * s[1]; t->stride[0] = s[2] * s[3] * s[4] * s[1]; }
    else { int64_t st = 1; for (int i = t->ndim - 1; i >= 0; i--) t->stride[i] = st, st *= s[i]; }
}
int emu_memcpy2d(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h)
{ for (size_t r = 0; r < h; r++) memcpy((char *)d + r * dp, (const char *)s + r * sp, w); return 0; }
vp_tensor *emu_tensor_new(int, int ndim, const int64_t *shape) { vp_tensor *t = vp_tensor_new(ndim, shape); t->device = 1; return t; }
vp_tensor *emu_tensor_new_cl(int o, const int64_t shape[5]) { vp_tensor *t = emu_tensor_new(o, 5, shape); vp_cu_set_layout(t, 1); return t; }
void emu_tensor_free(vp_tensor **t) { if (*t) (*t)->device = 0; vp_tensor_free(t); }

static uint64_t rng = 88172645463325252ULL;
static float ur() { rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17; return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2 - 1; }
static const vp_conv3d_params P1 = {{1, 1, 1}, {1, 1, 1}, {0, 0, 0}};
struct net { vp_tensor *w, *b; };
static int cpu_predict(void *ctx, const vp_tensor *x, vp_tensor **y)
{ net *n = (net *)ctx; *y = vp_tensor_new5(1, n->w->shape[0], x->shape[2], x->shape[3], x->shape[4]); return vp_nn_ref_conv3d(x, n->w, n->b, &P1, *y); }
static int layout_of(const vp_tensor *t) { return t->shape[1] > 1 && t->stride[1] == 1; }
// the device predictor emulated: permute to NCDHW, reference conv, permute back
static int dev_predict(void *ctx, const vp_nn_backend *, const vp_tensor *x, vp_tensor *y)
{
    net *n = (net *)ctx;
    int64_t B = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4], K = y->shape[1];
    vp_tensor *xc = vp_tensor_new(5, x->shape), *yc = vp_tensor_new(5, y->shape);
    for (int64_t b = 0; b < B; b++) for (int64_t c = 0; c < C; c++) for (int64_t s = 0; s < S; s++)
        xc->data[(b * C + c) * S + s] = layout_of(x) ? x->data[(b * S + s) * C + c] : x->data[(b * C + c) * S + s];
    if (vp_nn_ref_conv3d(xc, n->w, n->b, &P1, yc)) return -1;
    int yl = K > 1 && y->stride[1] == 1;
    for (int64_t b = 0; b < B; b++) for (int64_t k = 0; k < K; k++) for (int64_t s = 0; s < S; s++)
        (yl ? y->data[(b * S + s) * K + k] : y->data[(b * K + k) * S + s]) = yc->data[(b * K + k) * S + s];
    vp_tensor_free(&xc), vp_tensor_free(&yc);
    return 0;
}
static int fails;
static void run(int C, int K, int D, int H, int W, int roi, double ov, int gauss, int pad, int batch, int l, int f16)
{
    net n; n.w = vp_tensor_new5(K, C, 3, 3, 3); int64_t k1 = K; n.b = vp_tensor_new(1, &k1);
    for (int64_t i = 0; i < vp_tensor_numel(n.w); i++) n.w->data[i] = ur() * 0.3f;
    for (int i = 0; i < K; i++) n.b->data[i] = ur() * 0.5f;
    vp_tensor *x = vp_tensor_new5(1, C, D, H, W); for (int64_t i = 0; i < vp_tensor_numel(x); i++) x->data[i] = ur() * 2;
    vp_sw_params p = {{roi, roi, roi}, ov, gauss, 0.125, pad, 0.5f};
    vp_tensor *want = NULL, *got = vp_tensor_new5(1, K, D, H, W);
    int64_t S = (int64_t)D * H * W; std::vector<int32_t> lw(S), lg(S);
    vp_sliding_window(x, &p, cpu_predict, &n, NULL, &want); vp_nn_ref_argmax_c(want, lw.data());
    vp_cuda_ctx c = {0, 0}; vp_cuda_be bc = {&c, VP_CUDA_F32}; vp_nn_backend be{}; be.ctx = &bc;
    vp_cuda_sw_opts o = {batch, f16, l};
    int rc = emu_sliding_window(&be, x, &p, K, &o, dev_predict, &n, lg.data(), got);
    double m = 0; for (int64_t i = 0; i < vp_tensor_numel(want); i++) m = fmax(m, fabs(got->data[i] - want->data[i]));
    int64_t diff = 0; for (int64_t v = 0; v < S; v++) diff += lw[v] != lg[v];
    int ok = rc == 0 && m <= (f16 ? 1e-2 : 1e-6) && (f16 || diff == 0);
    printf("%-4s sliding x(1,%d,%d,%d,%d) K%d roi%d ov%.2f b%d %s %s pad%d: maxabs %.2e, %lld labels differ\n", ok ? "ok" : "FAIL", C, D, H, W, K, roi, ov, batch, l ? "NDHWC" : "NCDHW", f16 ? "f16" : "f32", pad, m, (long long)diff);
    fails += !ok;
}
int main()
{
    run(2, 5, 37, 29, 23, 16, 0.5, 1, 0, 1, 0, 0);
    run(2, 5, 37, 29, 23, 16, 0.5, 1, 0, 3, 1, 0);
    run(1, 4, 30, 25, 40, 12, 0.25, 0, 0, 2, 0, 0);
    run(1, 3, 10, 20, 7, 16, 0.5, 1, 0, 2, 0, 0);
    run(1, 3, 10, 20, 7, 16, 0.5, 1, 1, 1, 1, 0);
    run(1, 4, 70, 12, 9, 8, 0.25, 1, 0, 5, 1, 0);
    run(2, 6, 37, 29, 23, 16, 0.5, 1, 0, 4, 1, 1);
    printf("emulated sliding: %d failures\n", fails);
    return fails != 0;
}
