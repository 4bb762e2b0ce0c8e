// nn_cuda_kernels.cu - the CUDA backend's own kernels (everything but convolutions), NCDHW f32.
// Each launcher checks the launch and returns 0 or -1; the semantics are those of nn_ops_ref.c.
#include "nn_cuda_int.h"

#include <math.h>

static const int TPB = 256; // threads per block of the elementwise kernels

static unsigned blocks_for(int64_t n)
{
    int64_t b = (n + TPB - 1) / TPB;
    return (unsigned)(b < 1 ? 1 : b > 65535LL * 32 ? 65535LL * 32 : b); // grid-stride loops cover the rest
}

#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float act_f(float v, int act, float slope)
{
    if (act == 1) return v < 0.0f ? 0.0f : v;   // relu: NaN passes, as torch.relu
    if (act == 2) return v > 0.0f ? v : v * slope; // leaky_relu
    return v;
}

// ---- bias, activations, add

__global__ void k_bias(float *y, const float *b, int64_t C, int64_t S, int64_t n)
{
    GRID_STRIDE(i, n) y[i] += b[(i / S) % C];
}

int vp_k_bias(vp_cuda_ctx *c, float *y, const float *b, int64_t N, int64_t C, int64_t S)
{
    int64_t n = N * C * S;
    k_bias<<<blocks_for(n), TPB, 0, c->stream>>>(y, b, C, S, n);
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
// Each (n, g) group is m = cpg * S contiguous elements, cut into chunks of CHUNK; one block per
// (chunk, group) sums its chunk (per-thread f32, then a fixed shared-memory tree) into partial[];
// one thread per group then adds its partials in order in f64. Pass 1 gives the mean, pass 2 the
// centred sum of squares (no cancellation), pass 3 normalises, applies gamma/beta and the activation.

static const int CHUNK = 16384;

__global__ void k_norm_partial(const float *x, int64_t m, int nchunk, const double *mean, float *partial)
{
    __shared__ float sh[256];
    const int64_t g = blockIdx.y, ch = blockIdx.x;
    const float *xs = x + g * m;
    const int64_t lo = ch * (int64_t)CHUNK, hi = lo + CHUNK < m ? lo + CHUNK : m;
    const float mu = mean ? (float)mean[g] : 0.0f;
    float acc = 0.0f;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float v = xs[i] - mu;
        acc += mean ? v * v : xs[i];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[g * nchunk + ch] = sh[0];
}

// out[g] = sum of partials / m (mean), or, with eps >= 0, 1 / sqrt(that + eps) (rstd)
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

__global__ void k_norm_apply(const float *x, float *y, int64_t n, int64_t C, int64_t S, int64_t cpg, const double *mean,
                             const double *rstd, const float *gamma, const float *beta, int act, float slope)
{
    GRID_STRIDE(i, n)
    {
        int64_t nc = i / S, ch = nc % C, g = nc / cpg; // g indexes (n, group) pairs: nc / cpg
        float ga = gamma ? gamma[ch] : 1.0f, be = beta ? beta[ch] : 0.0f;
        float v = (float)(((double)x[i] - mean[g]) * rstd[g]) * ga + be;
        y[i] = act_f(v, act, slope);
    }
}

int vp_k_norm(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S, int groups, float eps,
              const float *gamma, const float *beta, int act, float slope)
{
    const int64_t cpg = C / groups, m = cpg * S, ng = N * groups;
    const int64_t nchunk64 = (m + CHUNK - 1) / CHUNK;
    if (ng > 65535 || nchunk64 > 0x7fffffff) return vp_error("cuda: group_norm: %lld groups of %lld elements: too large", (long long)ng, (long long)m);
    const int nchunk = nchunk64 ? (int)nchunk64 : 1;
    // scratch: mean[ng], rstd[ng] (f64), partial[ng * nchunk] (f32)
    size_t bytes = 2 * (size_t)ng * sizeof(double) + (size_t)ng * nchunk * sizeof(float);
    char *sc = (char *)vp_cuda_scratch(c, bytes);
    if (!sc) return -1;
    double *mean = (double *)sc, *rstd = mean + ng;
    float *partial = (float *)(rstd + ng);
    dim3 grid((unsigned)nchunk, (unsigned)ng);
    unsigned cb = (unsigned)((ng + 127) / 128);
    k_norm_partial<<<grid, 256, 0, c->stream>>>(x, m, nchunk, NULL, partial);
    LAUNCH_CHECK();
    k_norm_combine<<<cb, 128, 0, c->stream>>>(partial, nchunk, ng, m, eps, 0, mean);
    LAUNCH_CHECK();
    k_norm_partial<<<grid, 256, 0, c->stream>>>(x, m, nchunk, mean, partial);
    LAUNCH_CHECK();
    k_norm_combine<<<cb, 128, 0, c->stream>>>(partial, nchunk, ng, m, eps, 1, rstd);
    LAUNCH_CHECK();
    k_norm_apply<<<blocks_for(N * C * S), TPB, 0, c->stream>>>(x, y, N * C * S, C, S, cpg, mean, rstd, gamma, beta, act, slope);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- trilinear x2, align_corners=False: src = max((o + 0.5) / 2 - 0.5, 0), upper index clamped

__device__ __forceinline__ void lin_src(int64_t o, int64_t in, int64_t &i0, int64_t &i1, float &l0, float &l1)
{
    float src = 0.5f * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    i0 = (int64_t)src;
    if (i0 > in - 1) i0 = in - 1;
    i1 = i0 < in - 1 ? i0 + 1 : i0;
    l1 = src - (float)i0;
    l0 = 1.0f - l1;
}

__global__ void k_up2x(const float *x, float *y, int64_t NC, int64_t D, int64_t H, int64_t W)
{
    const int64_t OD = 2 * D, OH = 2 * H, OW = 2 * W, n = NC * OD * OH * OW;
    GRID_STRIDE(i, n)
    {
        int64_t ow = i % OW, t = i / OW, oh = t % OH;
        t /= OH;
        int64_t od = t % OD, nc = t / OD;
        int64_t d0, d1, h0, h1, w0, w1;
        float a0, a1, b0, b1, c0, c1;
        lin_src(od, D, d0, d1, a0, a1);
        lin_src(oh, H, h0, h1, b0, b1);
        lin_src(ow, W, w0, w1, c0, c1);
        const float *p = x + nc * D * H * W;
#define X(d, h, w) p[((d) * H + (h)) * W + (w)]
        float v = a0 * (b0 * (c0 * X(d0, h0, w0) + c1 * X(d0, h0, w1)) + b1 * (c0 * X(d0, h1, w0) + c1 * X(d0, h1, w1))) +
                  a1 * (b0 * (c0 * X(d1, h0, w0) + c1 * X(d1, h0, w1)) + b1 * (c0 * X(d1, h1, w0) + c1 * X(d1, h1, w1)));
#undef X
        y[i] = v;
    }
}

int vp_k_upsample2x(vp_cuda_ctx *c, const float *x, float *y, int64_t NC, int64_t D, int64_t H, int64_t W)
{
    k_up2x<<<blocks_for(NC * 8 * D * H * W), TPB, 0, c->stream>>>(x, y, NC, D, H, W);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- softmax / argmax over channels, one thread per voxel (coalesced along the voxel index)

__global__ void k_softmax(const float *x, float *y, int64_t N, int64_t C, int64_t S)
{
    GRID_STRIDE(i, N * S)
    {
        int64_t n = i / S, v = i % S;
        const float *xp = x + n * C * S + v;
        float *yp = y + n * C * S + v;
        float mx = -INFINITY;
        for (int64_t k = 0; k < C; k++) mx = xp[k * S] > mx ? xp[k * S] : mx;
        float sum = 0.0f;
        for (int64_t k = 0; k < C; k++) sum += expf(xp[k * S] - mx);
        float inv = 1.0f / sum;
        for (int64_t k = 0; k < C; k++) yp[k * S] = expf(xp[k * S] - mx) * inv;
    }
}

int vp_k_softmax(vp_cuda_ctx *c, const float *x, float *y, int64_t N, int64_t C, int64_t S)
{
    k_softmax<<<blocks_for(N * S), TPB, 0, c->stream>>>(x, y, N, C, S);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

__global__ void k_argmax(const float *x, int32_t *out, int64_t N, int64_t C, int64_t S)
{
    GRID_STRIDE(i, N * S)
    {
        int64_t n = i / S, v = i % S;
        const float *xp = x + n * C * S + v;
        int32_t best = 0;
        float bv = xp[0];
        for (int64_t k = 1; k < C; k++)
            if (xp[k * S] > bv) best = (int32_t)k, bv = xp[k * S]; // strict: the first maximum wins
        out[i] = best;
    }
}

int vp_k_argmax(vp_cuda_ctx *c, const float *x, int32_t *out, int64_t N, int64_t C, int64_t S)
{
    k_argmax<<<blocks_for(N * S), TPB, 0, c->stream>>>(x, out, N, C, S);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}
