// nn_cuda_sliding.cu - sliding-window inference with the aggregation on the device (see nn_cuda.h,
// vp_cuda_sliding_window): the image is uploaded once, windows are cut on the device (padding read
// through, never materialised), the predictor runs on device batches, logits times the importance
// map are added one window after the other (the order of nn_sliding.c, so the f32 sums are the
// CPU's, operation for operation) into a band of roi[0] rows (a ring: row d at d mod roi[0]), f32
// or f16; when the last window starting at a d-row has been added, the rows before the next start
// are final: they are divided by the count and argmax'ed on the device, and their ring rows are
// cleared for the rows to come (the memory is bounded by the window, not the volume: the idea of
// nn_sliding.c's vp_sliding_window_rows). Only labels (and, when asked, logits) come back.
#include "nn_cuda_int.h"

#include <cuda_fp16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// the source index along one axis for padded coordinate i (pad `before` in front); -1: constant
__device__ __forceinline__ int64_t src_ix(int64_t i, int64_t before, int64_t n, int replicate)
{
    int64_t s = i - before;
    if (s >= 0 && s < n) return s;
    if (!replicate) return -1;
    return s < 0 ? 0 : n - 1;
}

struct sw_geom {
    int64_t C, D, H, W;      // image
    int64_t rd, rh, rw;      // window
    int64_t bd, bh, bw;      // padding before
    int64_t x0, xD;          // the rows of D the image buffer holds start at x0; it has xD rows (whole: 0, D)
    int replicate;
    float cval;
};

// window j of the batch (starts st, padded coordinates) from x (1, C, D, H, W) NCDHW into xb
__global__ void k_sw_gather(const float *x, float *xb, sw_geom g, int64_t j, int64_t s0, int64_t s1, int64_t s2, int l)
{
    const int64_t rv = g.rd * g.rh * g.rw, n = g.C * rv;
    GRID_STRIDE(i, n)
    {
        int64_t c, r;
        if (l) c = i % g.C, r = i / g.C;
        else c = i / rv, r = i % rv;
        int64_t w = r % g.rw, h = r / g.rw % g.rh, d = r / (g.rw * g.rh);
        int64_t sd = src_ix(s0 + d, g.bd, g.D, g.replicate), sh = src_ix(s1 + h, g.bh, g.H, g.replicate),
                sw = src_ix(s2 + w, g.bw, g.W, g.replicate);
        xb[j * n + i] = sd < 0 || sh < 0 || sw < 0 ? g.cval : x[((c * g.xD + sd - g.x0) * g.H + sh) * g.W + sw];
    }
}

__device__ __forceinline__ float ld(const float *a, int64_t i) { return a[i]; }
__device__ __forceinline__ float ld(const __half *a, int64_t i) { return __half2float(a[i]); }
__device__ __forceinline__ void st_(float *a, int64_t i, float v) { a[i] = v; }
__device__ __forceinline__ void st_(__half *a, int64_t i, float v) { a[i] = __float2half_rn(v); }

// acc[k][v] += y[j][k][r] * map[r], count[v] += map[r], for the window voxels r inside the image;
// v is the voxel's place in the ring band (row d at d mod R)
template <typename T>
__global__ void k_sw_acc(const float *yb, const float *map, T *acc, float *count, sw_geom g, int64_t R, int64_t K, int64_t j, int64_t s0,
                         int64_t s1, int64_t s2, int l)
{
    const int64_t rv = g.rd * g.rh * g.rw, SB = R * g.H * g.W;
    GRID_STRIDE(r, rv)
    {
        int64_t w = r % g.rw, h = r / g.rw % g.rh, d = r / (g.rw * g.rh);
        int64_t pd = s0 + d - g.bd, ph = s1 + h - g.bh, pw = s2 + w - g.bw;
        if (pd < 0 || pd >= g.D || ph < 0 || ph >= g.H || pw < 0 || pw >= g.W) continue; // padding: cropped away
        const int64_t v = (pd % R * g.H + ph) * g.W + pw;
        const float m = map[r];
        count[v] = __fadd_rn(count[v], m);
        for (int64_t k = 0; k < K; k++) {
            float y = l ? yb[(j * rv + r) * K + k] : yb[(j * K + k) * rv + r];
            st_(acc, k * SB + v, __fadd_rn(ld(acc, k * SB + v), __fmul_rn(y, m))); // no FMA: the CPU's two roundings
        }
    }
}

// the final rows [r0, r1): per voxel out[k] = acc[k] / count (into the band's logits, (K, r1 - r0,
// H, W), when given), label = first maximum (into labels at row r - l0 of the voxel's row r: l0 0
// for whole-volume labels, r0 for a band); then the ring rows are cleared for the rows to come
template <typename T>
__global__ void k_sw_final(T *acc, float *count, int64_t R, int64_t HW, int64_t K, int64_t r0, int64_t r1, float *logits, int32_t *labels,
                           int64_t l0)
{
    const int64_t n = (r1 - r0) * HW, SB = R * HW;
    GRID_STRIDE(i, n)
    {
        const int64_t v = ((r0 + i / HW) % R) * HW + i % HW;
        const float c = count[v];
        int32_t best = 0;
        float bv = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float o = __fdiv_rn(ld(acc, k * SB + v), c);
            if (logits) logits[k * n + i] = o;
            if (k == 0 || o > bv) best = (int32_t)k, bv = o;
            st_(acc, k * SB + v, 0.0f);
        }
        count[v] = 0.0f;
        labels[(r0 - l0) * HW + i] = best;
    }
}

extern "C" int vp_cuda_sliding_window(const vp_nn_backend *be, const vp_tensor *x, const vp_sw_params *p, int K,
                                      const vp_cuda_sw_opts *o, vp_cuda_sw_predict_fn fn, void *ctx, int32_t *labels, vp_tensor *logits)
{
    const char *op = "cuda sliding window";
    char s[96];
    if (!x || x->ndim != 5 || x->shape[0] != 1 || !vp_tensor_is_contiguous(x))
        return vp_error("%s: input must be a contiguous (1, C, D, H, W) tensor", op);
    if (!(p->overlap >= 0 && p->overlap < 1)) return vp_error("%s: overlap %g is not in [0, 1)", op, p->overlap);
    if (p->gaussian && !(p->sigma_scale > 0)) return vp_error("%s: sigma scale %g is not positive", op, p->sigma_scale);
    if (K < 1 || !o || o->batch < 1 || (o->layout != VP_CUDA_NCDHW && o->layout != VP_CUDA_NDHWC) || !fn ||
        o->tiled < VP_CUDA_SW_WHOLE || o->tiled > VP_CUDA_SW_AUTO)
        return vp_error("%s: bad options (classes %d, batch %d, layout %d, tiled %d)", op, K, o ? o->batch : 0, o ? o->layout : -1,
                        o ? o->tiled : -1);
    const int64_t C = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4], S = D * H * W, HW = H * W;
    if (logits) {
        int64_t want[5] = {1, K, D, H, W};
        if (logits->device || !vp_tensor_is_contiguous(logits) || logits->ndim != 5 || memcmp(logits->shape, want, sizeof want))
            return vp_error("%s: logits %s: expected a contiguous host (1,%d,%lld,%lld,%lld)", op, vp_tensor_shape_str(logits, s, sizeof s), K,
                            (long long)D, (long long)H, (long long)W);
    }
    if (x->device > 0 && x->device - 1 != ctx_of(be)->dev) return vp_error("%s: the input is on another device", op);
    if (o->took_tiled) *o->took_tiled = 0;
    sw_geom g;
    int64_t size[3], *starts[3] = {NULL, NULL, NULL};
    int nst[3];
    g.C = C, g.D = D, g.H = H, g.W = W, g.rd = p->roi[0], g.rh = p->roi[1], g.rw = p->roi[2];
    g.replicate = p->pad_mode == VP_SW_PAD_REPLICATE, g.cval = p->cval;
    g.x0 = 0, g.xD = D;
    int64_t *bf[3] = {&g.bd, &g.bh, &g.bw};
    for (int a = 0; a < 3; a++) {
        if (p->roi[a] < 1) return vp_error("%s: roi %d is not positive", op, p->roi[a]);
        int64_t n = x->shape[2 + a], diff = p->roi[a] > n ? p->roi[a] - n : 0;
        *bf[a] = diff / 2;
        size[a] = n + diff;
    }
    for (int a = 0; a < 3; a++) {
        starts[a] = (int64_t *)vp_malloc((size_t)(size[a] + 1) * sizeof(int64_t));
        nst[a] = vp_sw_starts(size[a], p->roi[a], p->overlap, starts[a], (int)(size[a] + 1));
    }
    const int64_t rv = g.rd * g.rh * g.rw, R = g.rd < D ? g.rd : D, SB = R * HW; // the ring band: R rows; a slab: R rows too
    int64_t row = 0, slab0 = -1; // rows before `row` are final; the slab on the device starts at row slab0
    const int l = o->layout, B = o->batch, f16 = o->acc_f16;
    vp_cuda_ctx *c = ctx_of(be);
    float *hmap = (float *)vp_malloc((size_t)rv * sizeof(float)), *hrow = NULL; // hrow: one row of logits for o->emit
    float *dmap = NULL, *dx = NULL, *count = NULL, *dlog = NULL; // dlog: one band of logits
    void *acc = NULL;
    int32_t *dlab = NULL;
    vp_tensor *xb = NULL, *yb = NULL;
    int64_t xs[5] = {B, C, g.rd, g.rh, g.rw}, ys[5] = {B, K, g.rd, g.rh, g.rw};
    const int total = nst[0] * nst[1] * nst[2];
    int rc = -1, done = 0, tiled = 0;
    int64_t bst[64][3];
    vp_sw_importance_map(p, hmap);
    CUDA_CHECK(cudaSetDevice(c->dev));
    if (B > 64) {
        vp_error("%s: batch %d (at most 64)", op, B);
        goto fail;
    }
    // the buffers both paths need first, then the image and labels: whole, or a slab and a band
    if (!(dmap = (float *)vp_cuda_tmp(c, (size_t)rv * 4, "the importance map")) || vp_cuda_h2d(c, dmap, hmap, (size_t)rv * 4)) goto fail;
    snprintf(s, sizeof s, "the %s aggregation band (%d classes x %lld x %lld x %lld)", f16 ? "f16" : "f32", K, (long long)R, (long long)H,
             (long long)W);
    if (!(acc = vp_cuda_tmp(c, (size_t)(K * SB) * (f16 ? 2 : 4), s)) || !(count = (float *)vp_cuda_tmp(c, (size_t)SB * 4, "the count band")) ||
        ((logits || o->emit) && !(dlog = (float *)vp_cuda_tmp(c, (size_t)(K * SB) * 4, "a band of logits"))))
        goto fail;
    CUDA_CHECK(cudaMemsetAsync(acc, 0, (size_t)(K * SB) * (f16 ? 2 : 4), c->stream)); // zero bits: 0.0 in f32 and f16
    CUDA_CHECK(cudaMemsetAsync(count, 0, (size_t)SB * 4, c->stream));
    xb = l ? vp_cuda_tensor_new_cl(c->dev, xs) : vp_cuda_tensor_new(c->dev, 5, xs);
    yb = l ? vp_cuda_tensor_new_cl(c->dev, ys) : vp_cuda_tensor_new(c->dev, 5, ys);
    if (!xb || !yb) goto fail;
    if (x->device == 0 && o->tiled == VP_CUDA_SW_TILED) tiled = 1;
    if (x->device == 0 && o->tiled == VP_CUDA_SW_AUTO) {
        const size_t whole = (size_t)((C + 1) * S) * 4, avail = vp_cuda_available_bytes(c);
        if (whole + o->reserve > avail) {
            tiled = 1;
            vp_debug("%s: the image and labels (%.1f MiB) and the network's %.1f MiB exceed the %.1f MiB available: tiled, slabs of %lld "
                     "rows uploaded from the host",
                     op, whole / 1048576.0, o->reserve / 1048576.0, avail / 1048576.0, (long long)R);
        }
    }
    if (o->took_tiled) *o->took_tiled = tiled;
    if (x->device > 0) dx = x->data;
    else if (tiled) {
        if (!(dx = (float *)vp_cuda_tmp(c, (size_t)(C * SB) * 4, "a slab of the input image"))) goto fail;
        g.xD = R;
    } else if (!(dx = (float *)vp_cuda_tmp(c, (size_t)(C * S) * 4, "the input image")) || vp_cuda_h2d(c, dx, x->data, (size_t)(C * S) * 4))
        goto fail;
    if (!(dlab = (int32_t *)vp_cuda_tmp(c, (size_t)(tiled ? SB : S) * 4, tiled ? "a band of labels" : "the labels"))) goto fail;
    for (int w0 = 0; w0 < total; w0 += B) {
        const int nb = total - w0 < B ? total - w0 : B;
        for (int j = 0; j < nb; j++) {
            int wi = w0 + j, i2 = wi % nst[2], i1 = wi / nst[2] % nst[1], i0 = wi / (nst[2] * nst[1]); // C order, w fastest
            bst[j][0] = starts[0][i0], bst[j][1] = starts[1][i1], bst[j][2] = starts[2][i2];
            if (tiled) { // the R rows this window reads (clamped: a window never leaves the padded image)
                int64_t a = bst[j][0] - g.bd;
                a = a < 0 ? 0 : a > D - R ? D - R : a;
                if (a != slab0) { // queued after the previous windows' cuts: they read the old slab first
                    CUDA_CHECK(cudaMemcpy2DAsync(dx, (size_t)SB * 4, x->data + a * HW, (size_t)S * 4, (size_t)SB * 4, (size_t)C,
                                                 cudaMemcpyHostToDevice, c->stream));
                    slab0 = g.x0 = a;
                }
            }
            k_sw_gather<<<blocks_for(C * rv), TPB, 0, c->stream>>>(dx, xb->data, g, j, bst[j][0], bst[j][1], bst[j][2], l);
            LAUNCH_CHECK();
        }
        vp_tensor xv = *xb, yv = *yb; // the first nb windows of the batch buffers
        xv.shape[0] = nb, yv.shape[0] = nb;
        vp_cu_set_layout(&xv, l), vp_cu_set_layout(&yv, l);
        if (fn(ctx, be, &xv, &yv)) goto fail;
        for (int j = 0; j < nb; j++) {
            if (f16)
                k_sw_acc<__half><<<blocks_for(rv), TPB, 0, c->stream>>>(yb->data, dmap, (__half *)acc, count, g, R, K, j, bst[j][0],
                                                                       bst[j][1], bst[j][2], l);
            else
                k_sw_acc<float><<<blocks_for(rv), TPB, 0, c->stream>>>(yb->data, dmap, (float *)acc, count, g, R, K, j, bst[j][0],
                                                                      bst[j][1], bst[j][2], l);
            LAUNCH_CHECK();
            const int wi = w0 + j, i0 = wi / (nst[2] * nst[1]);
            if (wi % (nst[2] * nst[1]) != nst[2] * nst[1] - 1) continue;
            // the last window starting at d-row starts[0][i0]: the rows before the next start are final
            int64_t r1 = i0 + 1 < nst[0] ? starts[0][i0 + 1] - g.bd : D;
            if (r1 > D) r1 = D;
            if (r1 <= row) continue;
            const int64_t l0 = tiled ? row : 0; // the band's labels from row 0 of dlab, or the volume's
            if (f16)
                k_sw_final<__half><<<blocks_for((r1 - row) * HW), TPB, 0, c->stream>>>((__half *)acc, count, R, HW, K, row, r1, dlog, dlab, l0);
            else k_sw_final<float><<<blocks_for((r1 - row) * HW), TPB, 0, c->stream>>>((float *)acc, count, R, HW, K, row, r1, dlog, dlab, l0);
            LAUNCH_CHECK();
            if (tiled && labels) // stream-ordered before the next band overwrites dlab
                CUDA_CHECK(cudaMemcpyAsync(labels + row * HW, dlab, (size_t)((r1 - row) * HW) * 4, cudaMemcpyDeviceToHost, c->stream));
            if (logits) { // the band's (K, rows, H, W) into the host (1, K, D, H, W)
                const size_t w = (size_t)((r1 - row) * HW) * 4;
                CUDA_CHECK(cudaMemcpy2DAsync(logits->data + row * HW, (size_t)S * 4, dlog, w, w, (size_t)K, cudaMemcpyDeviceToHost, c->stream));
                CUDA_CHECK(cudaStreamSynchronize(c->stream));
            }
            for (int64_t d = row; o->emit && d < r1; d++) { // row d of the band's (K, rows, H, W), alone
                const size_t w = (size_t)HW * 4;
                if (!hrow) hrow = (float *)vp_malloc((size_t)K * w);
                CUDA_CHECK(cudaMemcpy2DAsync(hrow, w, dlog + (d - row) * HW, (size_t)(r1 - row) * w, w, (size_t)K, cudaMemcpyDeviceToHost, c->stream));
                CUDA_CHECK(cudaStreamSynchronize(c->stream));
                if (o->emit(o->ectx, d, K, hrow)) goto fail;
            }
            row = r1;
        }
        done += nb;
    }
    if (labels && !tiled && vp_cuda_d2h(c, labels, dlab, (size_t)S * 4)) goto fail;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    rc = done == total && row == D ? 0 : -1;
    if (rc) vp_error("%s: %lld of %lld rows were finished (internal error)", op, (long long)row, (long long)D);
fail:
    vp_cuda_tensor_free(&xb);
    vp_cuda_tensor_free(&yb);
    if (dmap) cudaFreeAsync(dmap, c->stream);
    if (dx && dx != x->data) cudaFreeAsync(dx, c->stream);
    if (acc) cudaFreeAsync(acc, c->stream);
    if (count) cudaFreeAsync(count, c->stream);
    if (dlog) cudaFreeAsync(dlog, c->stream);
    if (dlab) cudaFreeAsync(dlab, c->stream);
    cudaStreamSynchronize(c->stream);
    free(hmap);
    free(hrow);
    for (int a = 0; a < 3; a++) free(starts[a]);
    return rc;
}
