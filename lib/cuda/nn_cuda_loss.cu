// nn_cuda_loss.cu - MONAI DiceCELoss and nnU-Net DC_and_CE_loss on the device (see nn_cuda_loss.h;
// the host twin and the formulas are lib/nn_loss.c). Four kernels, all grid-stride loops without
// atomics or shared-memory trees (as nn_cuda_train.cu's norm), so the bytes are the same on every
// run and the CPU emulation (tests/gpu/emulate_train.sh) runs them as they are:
//   k_loss_fwd     one thread per run of LOSS_RUN voxels of one batch element: softmax (f64), its CE
//                  term and Dice sums I, P, G per class into the run's row of partials;
//   k_loss_reduce  one thread per (Dice group, column): the runs of the group added in index order;
//   k_loss_final   one thread: CE, the Dice ratios, the loss scalar and the Dice coefficients
//                  (d(loss)/dp = a g - b per group and class), as vp_loss_eval;
//   k_loss_bwd     one thread per voxel: softmax again, then dz = weight (Dice through softmax + CE).
#include "nn_cuda_int.h"

#include <math.h>

extern "C" {
#include "nn_cuda_loss.h"
}

static const int64_t LOSS_RUN = 512; // voxels per first-level partial

// row (1 + 3C) per run: ce, I[C], P[C], G[C]
// cs, vs: the logits' channel and voxel strides (V, 1 in NCDHW; 1, C in NDHWC): the same sums in
// the same order in either layout
__global__ void k_loss_fwd(const float *z, const int32_t *t, int64_t N, int64_t C, int64_t V, int64_t cs, int64_t vs, int64_t nrun,
                           double *part)
{
    GRID_STRIDE(it, N * nrun)
    {
        const int64_t n = it / nrun, v0 = it % nrun * LOSS_RUN, v1 = v0 + LOSS_RUN < V ? v0 + LOSS_RUN : V;
        double *row = part + it * (1 + 3 * C), *I = row + 1, *P = I + C, *G = P + C;
        for (int64_t k = 0; k < 1 + 3 * C; k++) row[k] = 0;
        for (int64_t v = v0; v < v1; v++) {
            const float *zp = z + n * C * V + v * vs;
            double mx = -INFINITY, s = 0;
            for (int64_t c = 0; c < C; c++) mx = zp[c * cs] > mx ? zp[c * cs] : mx;
            for (int64_t c = 0; c < C; c++) s += exp((double)zp[c * cs] - mx);
            const int tc = t[n * V + v];
            row[0] -= (double)zp[tc * cs] - mx - log(s);
            for (int64_t c = 0; c < C; c++) P[c] += exp((double)zp[c * cs] - mx) / s;
            I[tc] += exp((double)zp[tc * cs] - mx) / s;
            G[tc] += 1;
        }
    }
}

// sums[q][k] = sum over the runs of group q (all runs with batch Dice) of part[run][k], in order
__global__ void k_loss_reduce(const double *part, int64_t N, int64_t nrun, int64_t C, int64_t nb, double *sums)
{
    const int64_t W = 1 + 3 * C;
    GRID_STRIDE(k, nb * W)
    {
        const int64_t q = k / W, j = k % W, a = nb == 1 ? 0 : q * nrun, b = nb == 1 ? N * nrun : a + nrun;
        double s = 0;
        for (int64_t r = a; r < b; r++) s += part[r * W + j];
        sums[k] = s;
    }
}

// out[0] = CE + Dice; coef[2 (q C + c)] = a, [+ 1] = b with d(loss)/dp = a g - b
__global__ void k_loss_final(const double *sums, int64_t nb, int64_t C, int c0, int nn, double snr, double sdr, double nv,
                             double *coef, double *out)
{
    if (blockIdx.x * blockDim.x + threadIdx.x != 0) return;
    const int64_t W = 1 + 3 * C;
    const double cnt = (double)(nb * (C - c0));
    double ce = 0, dice = 0;
    for (int64_t q = 0; q < nb; q++) ce += sums[q * W];
    ce /= nv;
    for (int64_t q = 0; q < nb; q++)
        for (int64_t c = 0; c < C; c++) {
            double *cf = coef + 2 * (q * C + c);
            cf[0] = cf[1] = 0;
            if (c < c0) continue;
            const double *row = sums + q * W;
            double num = 2 * row[1 + c] + snr, den = row[1 + C + c] + row[1 + 2 * C + c] + sdr;
            if (nn && den < 1e-8) den = 1e-8;
            const double r = num / den;
            dice += nn ? -r : 1 - r;
            cf[0] = -2.0 / den / cnt;
            cf[1] = -num / (den * den) / cnt;
        }
    out[0] = ce + dice / cnt;
}

__global__ void k_loss_bwd(const float *z, const int32_t *t, int64_t N, int64_t C, int64_t V, int64_t cs, int64_t vs,
                           const double *coef, int batch_dice, double weight, float *dz)
{
    GRID_STRIDE(i, N * V)
    {
        const int64_t n = i / V, v = i % V, q = batch_dice ? 0 : n;
        const float *zp = z + n * C * V + v * vs;
        const double *cf = coef + 2 * q * C;
        const int tc = t[i];
        double mx = -INFINITY, s = 0, sd = 0;
        for (int64_t c = 0; c < C; c++) mx = zp[c * cs] > mx ? zp[c * cs] : mx;
        for (int64_t c = 0; c < C; c++) s += exp((double)zp[c * cs] - mx);
        for (int64_t c = 0; c < C; c++) sd += exp((double)zp[c * cs] - mx) / s * ((c == tc ? cf[2 * c] : 0.0) - cf[2 * c + 1]);
        float *o = dz + n * C * V + v * vs;
        for (int64_t c = 0; c < C; c++) {
            const double p = exp((double)zp[c * cs] - mx) / s, dp = (c == tc ? cf[2 * c] : 0.0) - cf[2 * c + 1];
            double g = p * (dp - sd);                          // Dice through softmax
            g += (p - (c == tc ? 1.0 : 0.0)) / (double)(N * V); // CE
            o[c * cs] = (float)(weight * g);
        }
    }
}

// t on c's device, 5-D, in layout l (NCDHW or NDHWC; a one-channel tensor fits both)
static int on_device(const vp_cuda_ctx *c, const vp_tensor *t, int l)
{
    return t->device == c->dev + 1 && t->ndim == 5 && vp_cu_is(t, l);
}

extern "C" int32_t *vp_cuda_targets_upload(const vp_nn_backend *be, const int32_t *host, int64_t n)
{
    if (!be || strncmp(be->name, "cuda", 4)) return vp_error("cuda loss: '%s' is not a CUDA backend", be ? be->name : "(none)"), nullptr;
    vp_cuda_ctx *c = ctx_of(be);
    int32_t *d = nullptr;
    CUDA_CHECK(cudaSetDevice(c->dev));
    if (!(d = (int32_t *)vp_cuda_tmp(c, (size_t)n * sizeof *d, "the loss targets"))) return nullptr;
    if (vp_cuda_h2d(c, d, host, (size_t)n * sizeof *d)) {
        cudaFreeAsync(d, c->stream);
        return nullptr;
    }
    return d;
fail:
    return nullptr;
}

extern "C" void vp_cuda_targets_free(const vp_nn_backend *be, int32_t **t)
{
    if (*t) cudaFreeAsync(*t, ctx_of(be)->stream);
    *t = nullptr;
}

extern "C" int vp_cuda_loss_eval(const vp_nn_backend *be, const vp_loss_cfg *lc, const vp_tensor *z, const int32_t *target,
                                 double weight, double *loss, vp_tensor *dz)
{
    if (!be || strncmp(be->name, "cuda", 4)) return vp_error("cuda loss: '%s' is not a CUDA backend", be ? be->name : "(none)");
    vp_cuda_ctx *c = ctx_of(be);
    const int l = z->device == c->dev + 1 && z->ndim == 5 && !vp_cu_is(z, VP_CUDA_NCDHW) ? VP_CUDA_NDHWC : VP_CUDA_NCDHW;
    if (!on_device(c, z, l)) return vp_error("cuda loss: the logits are not an NCDHW or NDHWC device tensor of %s", be->name);
    if (dz && (!on_device(c, dz, l) || !vp_tensor_same_shape(dz, z)))
        return vp_error("cuda loss: the logits' gradient is not a device tensor of the logits' shape and layout (%s)",
                        l == VP_CUDA_NDHWC ? "NDHWC" : "NCDHW");
    const int64_t N = z->shape[0], C = z->shape[1], V = z->shape[2] * z->shape[3] * z->shape[4];
    const int64_t cs = l == VP_CUDA_NDHWC ? 1 : V, vs = l == VP_CUDA_NDHWC ? C : 1;
    if (C < 2) return vp_error("loss: logits have %lld channel(s); softmax losses need at least 2 classes", (long long)C);
    const int64_t nrun = (V + LOSS_RUN - 1) / LOSS_RUN, W = 1 + 3 * C, nb = lc->batch_dice ? 1 : N;
    const size_t nd = (size_t)(N * nrun * W + nb * W + 2 * nb * C + 1);
    double *buf = nullptr, *part, *sums, *coef, *out;
    CUDA_CHECK(cudaSetDevice(c->dev));
    if (!(buf = (double *)vp_cuda_tmp(c, nd * sizeof(double), "the loss's partial sums"))) return -1;
    part = buf, sums = part + N * nrun * W, coef = sums + nb * W, out = coef + 2 * nb * C;
    k_loss_fwd<<<blocks_for(N * nrun), TPB, 0, c->stream>>>(z->data, target, N, C, V, cs, vs, nrun, part);
    LAUNCH_CHECK();
    k_loss_reduce<<<blocks_for(nb * W), TPB, 0, c->stream>>>(part, N, nrun, C, nb, sums);
    LAUNCH_CHECK();
    k_loss_final<<<1, 1, 0, c->stream>>>(sums, nb, C, lc->include_background ? 0 : 1, lc->kind == VP_LOSS_NNUNET_DCCE,
                                         lc->smooth_nr, lc->smooth_dr, (double)(N * V), coef, out);
    LAUNCH_CHECK();
    if (dz) {
        k_loss_bwd<<<blocks_for(N * V), TPB, 0, c->stream>>>(z->data, target, N, C, V, cs, vs, coef, lc->batch_dice, weight, dz->data);
        LAUNCH_CHECK();
    }
    if (vp_cuda_d2h(c, loss, out, sizeof *loss)) goto fail;
    CUDA_CHECK(cudaFreeAsync(buf, c->stream));
    return 0;
fail:
    if (buf) cudaFreeAsync(buf, c->stream);
    return -1;
}
