// nn_cuda_unet_sw.cu - nnU-Net's sliding-window prediction on the device (see nn_infer_cuda_unet.h,
// vp_cuda_nnunet_predict; the CPU twin is nn_predict_nnunet.c, whose steps this follows one for
// one): the image is uploaded once; tiles are cut on the device at nnU-Net's origins in the
// zero-padded volume (the padding read through, never materialised), `batch` at a time through the
// device network; with TTA the flipped tiles' predictions are flipped back and summed in
// itertools order, then divided; each tile's prediction times the Gaussian importance map is added
// into its model's band (f16: every sum rounded to f16 as PyTorch does on nnU-Net's half buffers;
// f32 otherwise), the weights into one band (model 0's tiles, as the CPU). The bands are rings of
// patch-depth rows (padded row r at r mod patch[0]); when a d-row of tiles has run for every
// model, the rows before the next origin are final: divided, averaged over the models in the
// CPU's order and roundings, cropped, argmax'ed on the device (labels) and/or handed back
// (logits), and their ring rows cleared. Device memory: image, n x K x patch[0] x padded H x W
// bands, labels, three batches of tiles, and the network's activations.
// The tiled path (when the image and labels do not fit beside the rest, or forced): the image
// stays on the host and only the slab of patch[0] input rows that one d-row of tiles reads is on
// the device (replaced at the next origin, queued after the last cut of the old one); the labels
// come back band by band from a band of patch[0] rows. The tiles, sums and rows are the same, so
// the labels and logits are bit for bit those of the whole-volume path.
#include "nn_cuda_int.h"


extern "C" {
#include "nn_infer_cuda_unet.h"
}

#include <cuda_fp16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXSTEPS 4096 // tiles per axis, as nn_predict_nnunet.c

struct nnu_geom {
    int64_t C, D, H, W;    // image
    int64_t p0, p1, p2;    // patch
    int64_t lo0, lo1, lo2; // zero padding before
    int64_t PH, PW, R;     // padded H, W; ring rows
    int64_t x0, xD;        // the image buffer holds input rows [x0, x0 + xD) of D (whole: 0, D)
};

static __device__ __forceinline__ float nnu_ld(const float *a, int64_t i) { return a[i]; }
static __device__ __forceinline__ float nnu_ld(const __half *a, int64_t i) { return __half2float(a[i]); }
static __device__ __forceinline__ void nnu_st(float *a, int64_t i, float v) { a[i] = v; }
static __device__ __forceinline__ void nnu_st(__half *a, int64_t i, float v) { a[i] = __float2half_rn(v); }
static __device__ __forceinline__ float nnu_round(float v, float) { return v; }
static __device__ __forceinline__ float nnu_round(float v, __half) { return __half2float(__float2half_rn(v)); }

// tile j of the batch, origin (o0, o1, o2) in the padded volume, flipped along the axes of mask
// (bit a: axis a), from img (1, C, D, H, W) NCDHW into xb (B, C, p0, p1, p2) in layout l
__global__ void k_nnu_gather(const float *img, float *xb, nnu_geom g, int64_t j, int64_t o0, int64_t o1, int64_t o2, int mask, int l)
{
    const int64_t pv = g.p0 * g.p1 * g.p2, n = g.C * pv;
    GRID_STRIDE(i, n)
    {
        int64_t c, r;
        if (l) c = i % g.C, r = i / g.C;
        else c = i / pv, r = i % pv;
        int64_t w = r % g.p2, h = r / g.p2 % g.p1, d = r / (g.p2 * g.p1);
        if (mask & 1) d = g.p0 - 1 - d;
        if (mask & 2) h = g.p1 - 1 - h;
        if (mask & 4) w = g.p2 - 1 - w;
        const int64_t sd = o0 + d - g.lo0, sh = o1 + h - g.lo1, sw = o2 + w - g.lo2;
        xb[j * n + i] = sd < 0 || sd >= g.D || sh < 0 || sh >= g.H || sw < 0 || sw >= g.W ? 0.0f : img[((c * g.xD + sd - g.x0) * g.H + sh) * g.W + sw];
    }
}

// pred += flip(yf, mask) over nb tiles of (K, p0, p1, p2) in layout l
__global__ void k_nnu_flip_add(const float *yf, float *pred, nnu_geom g, int64_t K, int64_t nb, int mask, int l)
{
    const int64_t pv = g.p0 * g.p1 * g.p2, n = nb * K * pv;
    GRID_STRIDE(i, n)
    {
        int64_t k, r, j = i / (K * pv), e = i % (K * pv);
        if (l) k = e % K, r = e / K;
        else k = e / pv, r = e % pv;
        int64_t w = r % g.p2, h = r / g.p2 % g.p1, d = r / (g.p2 * g.p1);
        if (mask & 1) d = g.p0 - 1 - d;
        if (mask & 2) h = g.p1 - 1 - h;
        if (mask & 4) w = g.p2 - 1 - w;
        const int64_t rs = (d * g.p1 + h) * g.p2 + w, s = j * K * pv + (l ? rs * K + k : k * pv + rs);
        pred[i] = __fadd_rn(pred[i], yf[s]);
    }
}

__global__ void k_nnu_div(float *pred, int64_t n, float div)
{
    GRID_STRIDE(i, n) pred[i] = __fdiv_rn(pred[i], div);
}

// acc[k][v] (+)= pred[j][k][r] * gauss[r] (rounded to T), wsum[v] (+)= gauss[r] when add_w, v the
// tile voxel's place in the ring band (K planes of R x PH x PW)
template <typename T>
__global__ void k_nnu_acc(const float *pred, const float *gauss, T *acc, T *wsum, nnu_geom g, int64_t K, int64_t j, int64_t o0, int64_t o1,
                          int64_t o2, int add_w, int l)
{
    const int64_t pv = g.p0 * g.p1 * g.p2, SB = g.R * g.PH * g.PW;
    GRID_STRIDE(r, pv)
    {
        const int64_t w = r % g.p2, h = r / g.p2 % g.p1, d = r / (g.p2 * g.p1);
        const int64_t v = ((o0 + d) % g.R * g.PH + o1 + h) * g.PW + o2 + w;
        const float m = gauss[r];
        for (int64_t k = 0; k < K; k++) {
            const float p = l ? pred[(j * pv + r) * K + k] : pred[(j * K + k) * pv + r];
            nnu_st(acc, k * SB + v, __fadd_rn(nnu_ld(acc, k * SB + v), __fmul_rn(p, m))); // no FMA: the CPU's two roundings
        }
        if (add_w) nnu_st(wsum, v, __fadd_rn(nnu_ld(wsum, v), m));
    }
}

// the final input rows [d0, d1): per voxel and class the models' sums divided by the weight and
// averaged (band_emit's order and roundings), into out (K, d1 - d0, H, W) when given, and the
// first maximum into labels when given, at row d - l0 for input row d (l0 0: whole-volume labels
// (D, H, W); l0 d0: a band)
template <typename T>
__global__ void k_nnu_final(const T *acc, const T *wsum, nnu_geom g, int64_t K, int nm, int64_t d0, int64_t d1, T *out, int32_t *labels,
                            int64_t l0)
{
    const int64_t HW = g.H * g.W, n = (d1 - d0) * HW, SB = g.R * g.PH * g.PW, MB = K * SB;
    const T tag = T();
    GRID_STRIDE(i, n)
    {
        const int64_t d = d0 + i / HW, h = i % HW / g.W, w = i % g.W;
        const int64_t v = ((d + g.lo0) % g.R * g.PH + h + g.lo1) * g.PW + w + g.lo2;
        const float wv = nnu_ld(wsum, v);
        int32_t best = 0;
        float bv = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float sum = nnu_round(__fdiv_rn(nnu_ld(acc, k * SB + v), wv), tag);
            for (int mi = 1; mi < nm; mi++)
                sum = nnu_round(__fadd_rn(sum, nnu_round(__fdiv_rn(nnu_ld(acc, mi * MB + k * SB + v), wv), tag)), tag);
            if (nm > 1) sum = nnu_round(__fdiv_rn(sum, (float)nm), tag);
            if (out) nnu_st(out, k * n + i, sum);
            if (k == 0 || sum > bv) best = (int32_t)k, bv = sum;
        }
        if (labels) labels[(d - l0) * HW + i % HW] = best;
    }
}

// clear the ring rows of padded rows [r0, r1) in every band (nm * K planes) and the weights
template <typename T>
__global__ void k_nnu_clear(T *acc, T *wsum, nnu_geom g, int64_t planes, int64_t r0, int64_t r1)
{
    const int64_t P = g.PH * g.PW, n = (r1 - r0) * P, SB = g.R * P;
    GRID_STRIDE(i, n)
    {
        const int64_t v = (r0 + i / P) % g.R * P + i % P;
        for (int64_t k = 0; k < planes; k++) nnu_st(acc, k * SB + v, 0.0f);
        nnu_st(wsum, v, 0.0f);
    }
}

// padded rows [from, to) are final: launch the final and clear kernels, logits back when asked;
// hlab (host labels, D*H*W) not NULL: dlab is a band of lrows rows whose rows come back into hlab
template <typename T>
static int finish_rows(vp_cuda_ctx *c, T *acc, T *wsum, const nnu_geom &g, int64_t K, int nm, int64_t from, int64_t to, T *dlog,
                       int32_t *dlab, unsigned char *logits, int32_t *hlab, int64_t lrows)
{
    int64_t d0 = from - g.lo0, d1 = to - g.lo0;
    if (d0 < 0) d0 = 0;
    if (d1 > g.D) d1 = g.D;
    if (d1 > d0) {
        const int64_t HW = g.H * g.W;
        if (hlab && d1 - d0 > lrows) {
            vp_error("cuda nnunet prediction: %lld final rows for a band of %lld (internal error)", (long long)(d1 - d0), (long long)lrows);
            return -1;
        }
        k_nnu_final<T><<<blocks_for((d1 - d0) * HW), TPB, 0, c->stream>>>(acc, wsum, g, K, nm, d0, d1, dlog, dlab, hlab ? d0 : 0);
        LAUNCH_CHECK();
        if (hlab && dlab) // stream-ordered before the next band overwrites dlab
            CUDA_CHECK(cudaMemcpyAsync(hlab + d0 * HW, dlab, (size_t)((d1 - d0) * HW) * 4, cudaMemcpyDeviceToHost, c->stream));
        if (logits) { // (K, rows, H, W) into the host's (K, D, H, W)
            const size_t es = sizeof(T), w = (size_t)((d1 - d0) * HW) * es;
            CUDA_CHECK(cudaMemcpy2DAsync(logits + (size_t)(d0 * HW) * es, (size_t)(g.D * HW) * es, dlog, w, w, (size_t)K,
                                         cudaMemcpyDeviceToHost, c->stream));
            CUDA_CHECK(cudaStreamSynchronize(c->stream));
        }
    }
    k_nnu_clear<T><<<blocks_for((to - from) * g.PH * g.PW), TPB, 0, c->stream>>>(acc, wsum, g, (int64_t)nm * K, from, to);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// the mirror masks of nnU-Net's TTA (itertools.combinations of the allowed axes, r = 1..na)
static int tta_masks(const vp_unet_cfg *cf, int *out)
{
    int axes[3], na = 0, nc = 0;
    for (int a = 0; a < 3; a++)
        if (cf->mirror_axes[a]) axes[na++] = a;
    for (int r = 1; r <= na; r++)
        for (int s = 0; s < (1 << na); s++) {
            if (__builtin_popcount((unsigned)s) != r) continue;
            int mask = 0;
            for (int i = 0; i < na; i++)
                if (s & (1 << i)) mask |= 1 << axes[i];
            out[nc++] = mask;
        }
    return nc;
}

// device bytes one batch of B tiles needs beside the bands, for the choice of the tiled path: the
// tile buffers (input, output, and with TTA the flipped output), the network's live activations
// (each encoder stage's output, kept for its skip, plus about four tensors of the stage at work, at
// every stage's resolution; the logits) and 64 MiB of cuDNN workspace and converted operands --
// an estimate on the safe side, as nn_infer_cuda.c's for SegResNet
static size_t batch_reserve(const vp_unet_cfg *cf, int B, int tta)
{
    const int64_t pv = (int64_t)cf->patch[0] * cf->patch[1] * cf->patch[2], K = cf->n_classes;
    int64_t v = pv, act = 0;
    for (int s = 0; s < cf->n_stages; s++) {
        const int64_t st = (int64_t)cf->stride[s][0] * cf->stride[s][1] * cf->stride[s][2];
        v = st > 0 ? v / st : v;
        act += (int64_t)cf->features[s] * v;
    }
    const int64_t per = (int64_t)cf->in_ch * pv + (tta ? 2 : 1) * K * pv + 5 * act + K * pv;
    return (size_t)((int64_t)B * per * 4) + ((size_t)64 << 20);
}

extern "C" int vp_cuda_nnunet_predict(vp_cuda_unet *const *ms, int nm, const vp_unet_cfg *cf, const vp_tensor *img,
                                      const vp_nnunet_opts *o, int batch, int mode, int *took_tiled, int32_t *labels, void *logits)
{
    const char *op = "cuda nnunet prediction";
    const vp_nn_backend *be = vp_cuda_unet_backend(ms[0]);
    vp_cuda_ctx *c = ctx_of(be);
    const int l = vp_cuda_unet_layout(ms[0]), half = o->half != 0, B = batch, K = cf->n_classes;
    if (!img || img->ndim != 5 || img->shape[0] != 1 || img->shape[1] != cf->in_ch || img->device || !vp_tensor_is_contiguous(img))
        return vp_error("%s: the image must be a contiguous host (1, %d, D, H, W) tensor", op, cf->in_ch);
    if (!(o->step > 0 && o->step <= 1)) return vp_error("%s: tile step %g not in (0, 1]", op, o->step);
    if (B < 1 || B > 64) return vp_error("%s: batch %d (1 to 64)", op, B);
    if (mode < VP_CUDA_SW_WHOLE || mode > VP_CUDA_SW_AUTO) return vp_error("%s: bad mode %d", op, mode);
    if (took_tiled) *took_tiled = 0;
    nnu_geom g;
    g.C = img->shape[1], g.D = img->shape[2], g.H = img->shape[3], g.W = img->shape[4];
    g.p0 = cf->patch[0], g.p1 = cf->patch[1], g.p2 = cf->patch[2];
    const int64_t in[3] = {g.D, g.H, g.W}, pt[3] = {g.p0, g.p1, g.p2};
    int64_t pd[3], lo[3], *st[3] = {NULL, NULL, NULL};
    int ns[3];
    for (int a = 0; a < 3; a++) {
        pd[a] = in[a] > pt[a] ? in[a] : pt[a];
        lo[a] = (pd[a] - in[a]) / 2;
        st[a] = (int64_t *)vp_malloc(MAXSTEPS * sizeof(int64_t));
        ns[a] = vp_nnunet_steps(pd[a], (int)pt[a], o->step, st[a], MAXSTEPS);
    }
    for (int a = 0; a < 3; a++)
        if (ns[a] > MAXSTEPS) {
            vp_error("%s: %d tiles along axis %d (at most %d)", op, ns[a], a, MAXSTEPS);
            for (int i = 0; i < 3; i++) free(st[i]);
            return -1;
        }
    g.lo0 = lo[0], g.lo1 = lo[1], g.lo2 = lo[2], g.PH = pd[1], g.PW = pd[2], g.R = g.p0, g.x0 = 0, g.xD = g.D;
    const int64_t S = g.D * g.H * g.W, HW = g.H * g.W, pv = g.p0 * g.p1 * g.p2, SB = g.R * g.PH * g.PW, es = half ? 2 : 4;
    const int64_t XR = g.p0 < g.D ? g.p0 : g.D; // tiled: the rows of a slab of the image and of a band of labels
    int masks[7];
    const int nmask = o->tta ? tta_masks(cf, masks) : 0;
    float *hg = (float *)vp_malloc((size_t)pv * sizeof(float)), *dg = NULL, *dimg = NULL;
    void *acc = NULL, *wsum = NULL, *dlog = NULL;
    int32_t *dlab = NULL;
    vp_tensor *xb = NULL, *yb = NULL, *yf = NULL;
    const int64_t xs[5] = {B, g.C, g.p0, g.p1, g.p2}, ys[5] = {B, K, g.p0, g.p1, g.p2};
    int64_t base = 0, slab0 = -1; // tiled: the slab on the device starts at input row slab0
    int rc = -1, tiled = mode == VP_CUDA_SW_TILED;
    char what[160];
    int pat[3] = {cf->patch[0], cf->patch[1], cf->patch[2]};
    vp_nnunet_gaussian(pat, half, hg);
    CUDA_CHECK(cudaSetDevice(c->dev));
    // what both paths need first, then the image and labels: whole, or a slab and a band
    if (!(dg = (float *)vp_cuda_tmp(c, (size_t)pv * 4, "the importance map")) || vp_cuda_h2d(c, dg, hg, (size_t)pv * 4)) goto fail;
    snprintf(what, sizeof what, "the %s aggregation band (%d model(s) x %d classes x %lld x %lld x %lld)", half ? "f16" : "f32", nm, K,
             (long long)g.R, (long long)g.PH, (long long)g.PW);
    if (!(acc = vp_cuda_tmp(c, (size_t)(nm * K * SB * es), what)) || !(wsum = vp_cuda_tmp(c, (size_t)(SB * es), "the weight band")) ||
        (logits && !(dlog = vp_cuda_tmp(c, (size_t)(K * g.R * g.H * g.W * es), "a band of logits"))))
        goto fail;
    if (mode == VP_CUDA_SW_AUTO) {
        const size_t whole = (size_t)((g.C + (labels ? 1 : 0)) * S) * 4, res = batch_reserve(cf, B, nmask > 0),
                     avail = vp_cuda_available_bytes(c);
        if (whole + res > avail) {
            tiled = 1;
            vp_debug("%s: the image and labels (%.1f MiB) and the network's %.1f MiB exceed the %.1f MiB available: tiled, slabs of %lld "
                     "rows uploaded from the host",
                     op, whole / 1048576.0, res / 1048576.0, avail / 1048576.0, (long long)XR);
        }
    }
    if (took_tiled) *took_tiled = tiled;
    if (tiled) {
        g.xD = XR;
        if (!(dimg = (float *)vp_cuda_tmp(c, (size_t)(g.C * XR * HW) * 4, "a slab of the input image")) ||
            (labels && !(dlab = (int32_t *)vp_cuda_tmp(c, (size_t)(XR * HW) * 4, "a band of labels"))))
            goto fail;
    } else if (!(dimg = (float *)vp_cuda_tmp(c, (size_t)(g.C * S) * 4, "the input image")) ||
               vp_cuda_h2d(c, dimg, img->data, (size_t)(g.C * S) * 4) || (labels && !(dlab = (int32_t *)vp_cuda_tmp(c, (size_t)S * 4, "the labels"))))
        goto fail;
    CUDA_CHECK(cudaMemsetAsync(acc, 0, (size_t)(nm * K * SB * es), c->stream)); // zero bits: 0.0 in f32 and f16
    CUDA_CHECK(cudaMemsetAsync(wsum, 0, (size_t)(SB * es), c->stream));
    if (!(xb = vp_cu_act_new(c, xs, l)) || !(yb = vp_cu_act_new(c, ys, l)) || (nmask && !(yf = vp_cu_act_new(c, ys, l)))) goto fail;
    for (int i0 = 0; i0 < ns[0]; i0++) {
        const int64_t o0 = st[0][i0], nt = (int64_t)ns[1] * ns[2];
        if (o0 > base) { // rows below o0 get no more tiles: final
            if (half ? finish_rows(c, (__half *)acc, (__half *)wsum, g, K, nm, base, o0, (__half *)dlog, dlab, (unsigned char *)logits,
                                   tiled ? labels : NULL, XR)
                     : finish_rows(c, (float *)acc, (float *)wsum, g, K, nm, base, o0, (float *)dlog, dlab, (unsigned char *)logits,
                                   tiled ? labels : NULL, XR))
                goto fail;
            base = o0;
        }
        if (tiled) { // the input rows this d-row of tiles reads (clamped: a tile never leaves the padded image)
            int64_t a = o0 - g.lo0;
            a = a < 0 ? 0 : a > g.D - XR ? g.D - XR : a;
            if (a != slab0) { // queued after the previous d-row's cuts: they read the old slab first
                CUDA_CHECK(cudaMemcpy2DAsync(dimg, (size_t)(XR * HW) * 4, img->data + a * HW, (size_t)S * 4, (size_t)(XR * HW) * 4, (size_t)g.C,
                                             cudaMemcpyHostToDevice, c->stream));
                slab0 = g.x0 = a;
            }
        }
        for (int mi = 0; mi < nm; mi++)
            for (int64_t t0 = 0; t0 < nt; t0 += B) {
                const int64_t nb = nt - t0 < B ? nt - t0 : B;
                vp_tensor xv = *xb, yv = *yb, fv = yf ? *yf : *yb;
                xv.shape[0] = yv.shape[0] = fv.shape[0] = nb;
                vp_cu_set_layout(&xv, l), vp_cu_set_layout(&yv, l), vp_cu_set_layout(&fv, l);
                for (int e = -1; e < nmask; e++) { // e = -1: the tiles themselves; then each mirror
                    const int mask = e < 0 ? 0 : masks[e];
                    for (int64_t j = 0; j < nb; j++) {
                        const int64_t t = t0 + j;
                        k_nnu_gather<<<blocks_for(g.C * pv), TPB, 0, c->stream>>>(dimg, xb->data, g, j, o0, st[1][t / ns[2]], st[2][t % ns[2]], mask, l);
                        LAUNCH_CHECK();
                    }
                    if (vp_cuda_unet_forward(ms[mi], &xv, e < 0 ? &yv : &fv)) goto fail;
                    if (e >= 0) {
                        k_nnu_flip_add<<<blocks_for(nb * K * pv), TPB, 0, c->stream>>>(yf->data, yb->data, g, K, nb, mask, l);
                        LAUNCH_CHECK();
                    }
                }
                if (nmask) {
                    k_nnu_div<<<blocks_for(nb * K * pv), TPB, 0, c->stream>>>(yb->data, nb * K * pv, (float)(nmask + 1));
                    LAUNCH_CHECK();
                }
                for (int64_t j = 0; j < nb; j++) {
                    const int64_t t = t0 + j, o1 = st[1][t / ns[2]], o2 = st[2][t % ns[2]];
                    if (half)
                        k_nnu_acc<__half><<<blocks_for(pv), TPB, 0, c->stream>>>(yb->data, dg, (__half *)acc + (size_t)mi * K * SB, (__half *)wsum, g,
                                                                                 K, j, o0, o1, o2, mi == 0, l);
                    else
                        k_nnu_acc<float><<<blocks_for(pv), TPB, 0, c->stream>>>(yb->data, dg, (float *)acc + (size_t)mi * K * SB, (float *)wsum, g,
                                                                                K, j, o0, o1, o2, mi == 0, l);
                    LAUNCH_CHECK();
                }
            }
    }
    if (half ? finish_rows(c, (__half *)acc, (__half *)wsum, g, K, nm, base, pd[0], (__half *)dlog, dlab, (unsigned char *)logits,
                           tiled ? labels : NULL, XR)
             : finish_rows(c, (float *)acc, (float *)wsum, g, K, nm, base, pd[0], (float *)dlog, dlab, (unsigned char *)logits,
                           tiled ? labels : NULL, XR))
        goto fail;
    if (labels && !tiled && vp_cuda_d2h(c, labels, dlab, (size_t)S * 4)) goto fail;
    CUDA_CHECK(cudaStreamSynchronize(c->stream)); // the last band's labels are on the host
    rc = 0;
fail:
    vp_cu_act_free(c, &xb), vp_cu_act_free(c, &yb), vp_cu_act_free(c, &yf);
    if (dg) cudaFreeAsync(dg, c->stream);
    if (dimg) cudaFreeAsync(dimg, c->stream);
    if (acc) cudaFreeAsync(acc, c->stream);
    if (wsum) cudaFreeAsync(wsum, c->stream);
    if (dlog) cudaFreeAsync(dlog, c->stream);
    if (dlab) cudaFreeAsync(dlab, c->stream);
    cudaStreamSynchronize(c->stream);
    free(hg);
    for (int a = 0; a < 3; a++) free(st[a]);
    return rc;
}
