// nn_cuda_kernels.cu - the CUDA backend's own forward kernels (everything but convolutions), f32,
// NCDHW or NDHWC (`l`), and the type/layout conversion kernel. Each launcher checks the launch and
// returns 0 or -1; the semantics are those of nn_ops_ref.c.
#include "nn_cuda_int.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

// ---- bias, activations, add

__global__ void k_bias(float *y, const float *b, int64_t C, int64_t S, int64_t n, int l)
{
    GRID_STRIDE(i, n) y[i] += b[l ? i % C : (i / S) % C];
}

int vp_k_bias(vp_cuda_ctx *c, float *y, const float *b, int64_t N, int64_t C, int64_t S, int l)
{
    int64_t n = N * C * S;
    k_bias<<<blocks_for(n), TPB, 0, c->stream>>>(y, b, C, S, n, l);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

__global__ void k_act(const float *x, float *y, int64_t n, int act, float slope)
{
    GRID_STRIDE(i, n) y[i] = act_f(x[i], act, slope);
}

int vp_k_act(vp_cuda_ctx *c, const float *x, float *y, int64_t n, int act, float slope)
{
    k_act<<<blocks_for(n), TPB, 0, c->stream>>>(x, y, n, act, slope);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

__global__ void k_add(const float *a, const float *b, float *y, int64_t n)
{
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

int vp_k_add(vp_cuda_ctx *c, const float *a, const float *b, float *y, int64_t n)
{
    k_add<<<blocks_for(n), TPB, 0, c->stream>>>(a, b, y, n);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- group / instance norm: deterministic two-pass statistics.
// Each (n, g) group has m = cpg * S elements, element k at
//   NCDHW: x[gid * m + k] (contiguous)      NDHWC: x[(n S + k / cpg) C + g cpg + k % cpg]
// cut into chunks of CHUNK; one block per (chunk, group) sums its chunk (per-thread f32, then a
// fixed shared-memory tree) into partial[]; one thread per group then adds its partials in order
// in f64. Pass 1 gives the mean, pass 2 the centred sum of squares (no cancellation), pass 3
// normalises, applies gamma/beta and the activation.

static const int CHUNK = 16384;

__device__ __forceinline__ int64_t grp_index(int64_t gid, int64_t k, int64_t m, int64_t C, int64_t S, int64_t cpg, int groups, int l)
{
    if (!l) return gid * m + k;
    int64_t n = gid / groups, g = gid % groups;
    return (n * S + k / cpg) * C + g * cpg + k % cpg;
}

__global__ void k_norm_partial(const float *x, int64_t m, int nchunk, const double *mean, float *partial, int64_t C, int64_t S,
                               int64_t cpg, int groups, int l)
{
    __shared__ float sh[256];
    const int64_t g = blockIdx.y, ch = blockIdx.x;
    const int64_t lo = ch * (int64_t)CHUNK, hi = lo + CHUNK < m ? lo + CHUNK : m;
    const float mu = mean ? (float)mean[g] : 0.0f;
    float acc = 0.0f;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float xv = x[grp_index(g, i, m, C, S, cpg, groups, l)], v = xv - mu;
        acc += mean ? v * v : xv;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[g * nchunk + ch] = sh[0];
}

// out[g] = sum of partials / m (mean), or, with is_var, 1 / sqrt(that + eps) (rstd)
__global__ void k_norm_combine(const float *partial, int nchunk, int64_t ngroups, int64_t m, float eps, int is_var,
                               double *out)
{
    int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (g >= ngroups) return;
    double s = 0.0;
    for (int k = 0; k < nchunk; k++) s += partial[g * nchunk + k];
    double v = m ? s / (double)m : 0.0;
    out[g] = is_var ? 1.0 / sqrt(v + (double)eps) : v;
}

__global__ void k_norm_apply(const float *x, float *y, int64_t n, int64_t C, int64_t S, int64_t cpg, int groups, int l,
                             const double *mean, const double *rstd, const float *gamma, const float *beta, int act, float slope)
{
    GRID_STRIDE(i, n)
    {
        int64_t ch, g;
        if (l) ch = i % C, g = i / (S * C) * groups + ch / cpg;
        else {
            int64_t nc = i / S;
            ch = nc % C, g = nc / cpg; // (n, group) pairs: nc / cpg
        }
        float ga = gamma ? gamma[ch] : 1.0f, be = beta ? beta[ch] : 0.0f;
        float v = (float)(((double)x[i] - mean[g]) * rstd[g]) * ga + be;
        y[i] = act_f(v, act, slope);
    }
}

int vp_k_norm_chunks(int64_t m)
{
    int64_t n = (m + CHUNK - 1) / CHUNK;
    return n < 1 ? 1 : n > 0x7fffffff ? 0x7fffffff : (int)n;
}

int vp_k_norm_stats(vp_cuda_ctx *c, const float *x, int64_t N, int64_t C, int64_t S, int l, int groups, float eps, double *mean,
                    double *rstd, float *partial)
{
    const int64_t cpg = C / groups, m = cpg * S, ng = N * groups;
    const int nchunk = vp_k_norm_chunks(m);
    if (ng > 65535 || (m + CHUNK - 1) / CHUNK > 0x7fffffff)
        return vp_error("cuda: group_norm: %lld groups of %lld elements: too large", (long long)ng, (long long)m);
    dim3 grid((unsigned)nchunk, (unsigned)ng);
    unsigned cb = (unsigned)((ng + 127) / 128);
    k_norm_partial<<<grid, 256, 0, c->stream>>>(x, m, nchunk, NULL, partial, C, S, cpg, groups, l);
    LAUNCH_CHECK();
    k_norm_combine<<<cb, 128, 0, c->stream>>>(partial, nchunk, ng, m, eps, 0, mean);
    LAUNCH_CHECK();
    k_norm_partial<<<grid, 256, 0, c->stream>>>(x, m, nchunk, mean, partial, C, S, cpg, groups, l);
    LAUNCH_CHECK();
    k_norm_combine<<<cb, 128, 0, c->stream>>>(partial, nchunk, ng, m, eps, 1, rstd);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

int vp_k_norm(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int l, int groups, float eps,
              const float *gamma, const float *beta, int act, float slope)
{
    const int64_t ng = N * groups;
    const int nchunk = vp_k_norm_chunks(C / groups * S);
    // scratch: mean[ng], rstd[ng] (f64), partial[ng * nchunk] (f32)
    size_t bytes = 2 * (size_t)ng * sizeof(double) + (size_t)ng * nchunk * sizeof(float);
    char *sc = (char *)vp_cuda_scratch(c, bytes);
    if (!sc) return -1;
    double *mean = (double *)sc, *rstd = mean + ng;
    float *partial = (float *)(rstd + ng);
    if (vp_k_norm_stats(c, x, N, C, S, l, groups, eps, mean, rstd, partial)) return -1;
    k_norm_apply<<<blocks_for(N * C * S), TPB, 0, c->stream>>>(x, y, N * C * S, C, S, C / groups, groups, l, mean, rstd, gamma,
                                                              beta, act, slope);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- trilinear x2, align_corners=False (lin_src: nn_cuda_int.h)

// one thread per output element (memory order of layout l)
__global__ void k_up2x(const float *x, float *y, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l)
{
    const int64_t OD = 2 * D, OH = 2 * H, OW = 2 * W, n = N * C * OD * OH * OW;
    // input strides of (n, c, d, h, w)
    const int64_t sC = l ? 1 : D * H * W, sW = l ? C : 1, sH = W * sW, sD = H * sH, sN = C * D * H * W;
    GRID_STRIDE(i, n)
    {
        int64_t t = i, c = 0;
        if (l) c = t % C, t /= C;
        int64_t ow = t % OW;
        t /= OW;
        int64_t oh = t % OH;
        t /= OH;
        int64_t od = t % OD;
        t /= OD;
        if (!l) c = t % C, t /= C;
        int64_t d0, d1, h0, h1, w0, w1;
        float a0, a1, b0, b1, c0, c1;
        lin_src(od, D, d0, d1, a0, a1);
        lin_src(oh, H, h0, h1, b0, b1);
        lin_src(ow, W, w0, w1, c0, c1);
        const float *p = x + t * sN + c * sC;
#define X(d, h, w) p[(d) * sD + (h) * sH + (w) * sW]
        float v = a0 * (b0 * (c0 * X(d0, h0, w0) + c1 * X(d0, h0, w1)) + b1 * (c0 * X(d0, h1, w0) + c1 * X(d0, h1, w1))) +
                  a1 * (b0 * (c0 * X(d1, h0, w0) + c1 * X(d1, h0, w1)) + b1 * (c0 * X(d1, h1, w0) + c1 * X(d1, h1, w1)));
#undef X
        y[i] = v;
    }
}

int vp_k_upsample2x(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l)
{
    k_up2x<<<blocks_for(N * C * 8 * D * H * W), TPB, 0, c->stream>>>(x, y, N, C, D, H, W, l);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- softmax / argmax over channels, one thread per voxel (coalesced along the voxel index)

// voxel i = n S + v: its channel k at base + k cs (NCDHW: base n C S + v, cs S; NDHWC: i C, 1)
__global__ void k_softmax(const float *x, float *y, int64_t N, int64_t C, int64_t S, int l)
{
    GRID_STRIDE(i, N * S)
    {
        int64_t base = l ? i * C : i / S * C * S + i % S;
        const float *xp = x + base;
        float *yp = y + base;
        const int64_t cs = l ? 1 : S; // channel stride
        float mx = -INFINITY;
        for (int64_t k = 0; k < C; k++) mx = xp[k * cs] > mx ? xp[k * cs] : mx;
        float sum = 0.0f;
        for (int64_t k = 0; k < C; k++) sum += expf(xp[k * cs] - mx);
        float inv = 1.0f / sum;
        for (int64_t k = 0; k < C; k++) yp[k * cs] = expf(xp[k * cs] - mx) * inv;
    }
}

int vp_k_softmax(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int l)
{
    k_softmax<<<blocks_for(N * S), TPB, 0, c->stream>>>(x, y, N, C, S, l);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

__global__ void k_argmax(const float *x, int32_t *out, int64_t N, int64_t C, int64_t S, int l)
{
    const int64_t NS = N * S;
    GRID_STRIDE(i, NS)
    {
        const float *xp = x + (l ? i * C : i / S * C * S + i % S);
        const int64_t cs = l ? 1 : S; // channel stride
        int32_t best = 0;
        float bv = xp[0];
        for (int64_t k = 1; k < C; k++)
            if (xp[k * cs] > bv) best = (int32_t)k, bv = xp[k * cs]; // strict: the first maximum wins
        out[i] = best;
    }
}

int vp_k_argmax(vp_cuda_ctx *c, const float *x, int32_t *out, int64_t N, int64_t C, int64_t S, int l)
{
    k_argmax<<<blocks_for(N * S), TPB, 0, c->stream>>>(x, out, N, C, S, l);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- conversions: out[a][c][b] = (To) in[a][b][c], one thread per output element. A plain type
// conversion (B or Cn 1) is elementwise; a permutation computes its indices in 32 bits when they
// fit (64-bit division is many instructions on the GPU; these run on every converted or permuted
// convolution operand).

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename Ti, typename To>
__global__ void k_cast(const Ti *in, To *out, int64_t n)
{
    GRID_STRIDE(i, n) out[i] = from_f<To>(to_f(in[i]));
}

template <typename Ti, typename To, typename I>
__global__ void k_convert(const Ti *in, To *out, int64_t A, int64_t B, int64_t Cn)
{
    const I Bi = (I)B, Ci = (I)Cn, BC = Bi * Ci;
    GRID_STRIDE(o, A * B * Cn)
    {
        const I oi = (I)o, a = oi / BC, r = oi - a * BC, c = r / Bi, b = r - c * Bi;
        out[o] = from_f<To>(to_f(in[((int64_t)a * Bi + b) * Ci + c]));
    }
}

template <typename Ti, typename To> static void launch_convert(vp_cuda_ctx *c, const void *in, void *out, int64_t A, int64_t B, int64_t Cn)
{
    const int64_t n = A * B * Cn;
    if (B == 1 || Cn == 1) k_cast<Ti, To><<<blocks_for(n), TPB, 0, c->stream>>>((const Ti *)in, (To *)out, n);
    else if (n < ((int64_t)1 << 31)) k_convert<Ti, To, int32_t><<<blocks_for(n), TPB, 0, c->stream>>>((const Ti *)in, (To *)out, A, B, Cn);
    else k_convert<Ti, To, int64_t><<<blocks_for(n), TPB, 0, c->stream>>>((const Ti *)in, (To *)out, A, B, Cn);
}

int vp_k_convert(vp_cuda_ctx *c, const void *in, int tin, void *out, int tout, int64_t A, int64_t B, int64_t Cn)
{
    if (tin == VP_DT_F32 && tout == VP_DT_F32) launch_convert<float, float>(c, in, out, A, B, Cn);
    else if (tin == VP_DT_F32 && tout == VP_DT_F16) launch_convert<float, __half>(c, in, out, A, B, Cn);
    else if (tin == VP_DT_F32 && tout == VP_DT_BF16) launch_convert<float, __nv_bfloat16>(c, in, out, A, B, Cn);
    else if (tin == VP_DT_F16 && tout == VP_DT_F32) launch_convert<__half, float>(c, in, out, A, B, Cn);
    else if (tin == VP_DT_BF16 && tout == VP_DT_F32) launch_convert<__nv_bfloat16, float>(c, in, out, A, B, Cn);
    else return vp_error("cuda: conversion %d -> %d not supported", tin, tout);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}
