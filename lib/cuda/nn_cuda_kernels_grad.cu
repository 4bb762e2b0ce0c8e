// nn_cuda_kernels_grad.cu - the CUDA backend's backward kernels (f32, NCDHW or NDHWC `l`):
// activations, per-channel sums (bias gradient, norm backward), the norm backward, the trilinear
// upsampling's adjoint. Reductions are deterministic: fixed chunks, a fixed shared-memory tree, then
// an in-order f64 combination. Semantics: nn_grad_ref.c.
#include "nn_cuda_int.h"

// ---- activations: relu dx = y > 0 ? dy : 0; leaky dx = y > 0 ? dy : slope dy

__global__ void k_act_bwd(const float *y, const float *dy, float *dx, int64_t n, int act, float slope)
{
    GRID_STRIDE(i, n) dx[i] = y[i] > 0 ? dy[i] : act == 2 ? dy[i] * slope : 0.0f;
}

int vp_k_act_backward(vp_cuda_ctx *c, const float *y, const float *dy, float *dx, int64_t n, int act, float slope)
{
    k_act_bwd<<<blocks_for(n), TPB, 0, c->stream>>>(y, dy, dx, n, act, slope);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- per-(n, c) sums over space: A = sum dy, B = sum dy * xhat (xhat from the group statistics)

static const int CCHUNK = 16384;

__global__ void k_chan_partial(const float *x, const float *dy, int64_t C, int64_t S, int l, int64_t cpg, const double *mean,
                               const double *rstd, int nchunk, float *pa, float *pb)
{
    __shared__ float sa[256], sb[256];
    const int64_t nc = blockIdx.y, ch = blockIdx.x, n = nc / C, c = nc % C;
    const int64_t lo = ch * (int64_t)CCHUNK, hi = lo + CCHUNK < S ? lo + CCHUNK : S;
    const int64_t g = n * (C / cpg) + c / cpg;
    float a = 0.0f, b = 0.0f;
    for (int64_t s = lo + threadIdx.x; s < hi; s += blockDim.x) {
        int64_t i = l ? (n * S + s) * C + c : nc * S + s;
        float d = dy[i];
        a += d;
        if (x) b += d * (float)(((double)x[i] - mean[g]) * rstd[g]);
    }
    sa[threadIdx.x] = a, sb[threadIdx.x] = b;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sa[threadIdx.x] += sa[threadIdx.x + k], sb[threadIdx.x] += sb[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) pa[nc * nchunk + ch] = sa[0], pb[nc * nchunk + ch] = sb[0];
}

__global__ void k_chan_combine(const float *pa, const float *pb, int nchunk, int64_t NC, double *A, double *B)
{
    int64_t nc = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (nc >= NC) return;
    double a = 0, b = 0;
    for (int k = 0; k < nchunk; k++) a += pa[nc * nchunk + k], b += pb[nc * nchunk + k];
    A[nc] = a;
    if (B) B[nc] = b;
}

int vp_k_chan_sums(vp_cuda_ctx *c, const float *x, const float *dy, int64_t N, int64_t C, int64_t S, int l, int groups,
                   const double *mean, const double *rstd, double *A, double *B, float *partial)
{
    const int nchunk = vp_k_norm_chunks(S); // same chunk size (16384)
    const int64_t NC = N * C;
    if (NC > 65535) return vp_error("cuda: channel sums: %lld (n, c) pairs: too many", (long long)NC);
    dim3 grid((unsigned)nchunk, (unsigned)NC);
    k_chan_partial<<<grid, 256, 0, c->stream>>>(x, dy, C, S, l, C / groups, mean, rstd, nchunk, partial, partial + NC * nchunk);
    LAUNCH_CHECK();
    k_chan_combine<<<(unsigned)((NC + 127) / 128), 128, 0, c->stream>>>(partial, partial + NC * nchunk, nchunk, NC, A, x ? B : NULL);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

__global__ void k_sum_n(const double *A, int64_t N, int64_t C, float *out)
{
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
    for (int64_t n = 0; n < N; n++) s += A[n * C + c];
    out[c] = (float)s;
}

int vp_k_sum_n(vp_cuda_ctx *c, const double *A, int64_t N, int64_t C, float *db)
{
    k_sum_n<<<(unsigned)((C + 127) / 128), 128, 0, c->stream>>>(A, N, C, db);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}

// ---- group norm backward: per (n, g) ma = sum_c gamma_c A[n,c] / m, mb = sum_c gamma_c B[n,c] / m;
// dx = rstd (gamma dy - ma - xhat mb)

__global__ void k_group_coef(const double *A, const double *B, const float *gamma, int64_t N, int64_t C, int groups, int64_t m,
                             double *ma, double *mb)
{
    int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (gid >= N * groups) return;
    const int64_t cpg = C / groups, n = gid / groups, c0 = gid % groups * cpg;
    double a = 0, b = 0;
    for (int64_t c = c0; c < c0 + cpg; c++) {
        double ga = gamma ? gamma[c] : 1.0;
        a += ga * A[n * C + c], b += ga * B[n * C + c];
    }
    ma[gid] = a / (double)m, mb[gid] = b / (double)m;
}

__global__ void k_norm_bwd_apply(const float *x, const float *dy, float *dx, int64_t total, int64_t C, int64_t S, int l, int groups,
                                 const double *mean, const double *rstd, const float *gamma, const double *ma, const double *mb)
{
    const int64_t cpg = C / groups;
    GRID_STRIDE(i, total)
    {
        int64_t ch, n;
        if (l) ch = i % C, n = i / (S * C);
        else ch = i / S % C, n = i / (S * C);
        const int64_t g = n * groups + ch / cpg;
        double xh = ((double)x[i] - mean[g]) * rstd[g], ga = gamma ? gamma[ch] : 1.0;
        dx[i] = (float)(rstd[g] * (ga * dy[i] - ma[g] - xh * mb[g]));
    }
}

int vp_k_norm_backward(vp_cuda_ctx *c, const float *x, const float *dy, float *dx, int64_t N, int64_t C, int64_t S, int l, int groups,
                       const double *mean, const double *rstd, const float *gamma, const double *A, const double *B, double *ma,
                       double *mb, float *dgamma, float *dbeta)
{
    const int64_t ng = N * groups;
    if (dx) {
        k_group_coef<<<(unsigned)((ng + 127) / 128), 128, 0, c->stream>>>(A, B, gamma, N, C, groups, C / groups * S, ma, mb);
        LAUNCH_CHECK();
        k_norm_bwd_apply<<<blocks_for(N * C * S), TPB, 0, c->stream>>>(x, dy, dx, N * C * S, C, S, l, groups, mean, rstd, gamma, ma, mb);
        LAUNCH_CHECK();
    }
    if (dgamma && vp_k_sum_n(c, B, N, C, dgamma)) return -1;
    if (dbeta && vp_k_sum_n(c, A, N, C, dbeta)) return -1;
    return 0;
fail:
    return -1;
}

// ---- trilinear x2 adjoint: each input voxel gathers the outputs that read it, per axis the
// outputs 2i-2 .. 2i+2, with the weight it had in the forward pass (both ends when i0 == i1)

__device__ __forceinline__ int taps(int64_t i, int64_t in, int64_t *o, float *w)
{
    int k = 0;
    for (int64_t t = 2 * i - 2; t <= 2 * i + 2; t++) {
        if (t < 0 || t >= 2 * in) continue;
        int64_t i0, i1;
        float l0, l1;
        lin_src(t, in, i0, i1, l0, l1);
        float wt = (i0 == i ? l0 : 0.0f) + (i1 == i ? l1 : 0.0f);
        if (wt != 0.0f) o[k] = t, w[k++] = wt;
    }
    return k;
}

__global__ void k_up2x_bwd(const float *dy, float *dx, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l)
{
    const int64_t OD = 2 * D, OH = 2 * H, OW = 2 * W, n = N * C * D * H * W;
    // dy strides of (n, c, d, h, w)
    const int64_t sC = l ? 1 : OD * OH * OW, sW = l ? C : 1, sH = OW * sW, sD = OH * sH, sN = C * OD * OH * OW;
    GRID_STRIDE(i, n)
    {
        int64_t t = i, c = 0;
        if (l) c = t % C, t /= C;
        int64_t w = t % W;
        t /= W;
        int64_t h = t % H;
        t /= H;
        int64_t d = t % D;
        t /= D;
        if (!l) c = t % C, t /= C;
        int64_t od[5], oh[5], ow[5];
        float wd[5], wh[5], ww[5];
        int nd = taps(d, D, od, wd), nh = taps(h, H, oh, wh), nw = taps(w, W, ow, ww);
        const float *p = dy + t * sN + c * sC;
        float acc = 0.0f;
        for (int a = 0; a < nd; a++)
            for (int b = 0; b < nh; b++)
                for (int e = 0; e < nw; e++) acc += wd[a] * wh[b] * ww[e] * p[od[a] * sD + oh[b] * sH + ow[e] * sW];
        dx[i] = acc;
    }
}

int vp_k_upsample2x_bwd(vp_cuda_ctx *c, const float *dy, float *dx, int64_t N, int64_t C, int64_t D, int64_t H, int64_t W, int l)
{
    k_up2x_bwd<<<blocks_for(N * C * D * H * W), TPB, 0, c->stream>>>(dy, dx, N, C, D, H, W, l);
    LAUNCH_CHECK();
    return 0;
fail:
    return -1;
}
