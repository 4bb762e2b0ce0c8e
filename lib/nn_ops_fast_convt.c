/* nn_ops_fast_convt.c - the CPU backend's transposed convolution for kernel == stride, no padding
 * (SegResNet's deconv upsampling, k2 s2; nnU-Net's decoder, k = s, also anisotropic (1,2,2)):
 * every output voxel then takes exactly one tap, y[n,co, d*KD+kd, h*KH+kh, w*KW+kw] =
 * b[co] + sum_ci x[n,ci,d,h,w] w[ci,co,kd,kh,kw], a small GEMM per input voxel.
 *
 * Work item: (n, co, input depth d): one plane per tap (KD*KH*KW planes of H*W floats), computed
 * 16 voxels x 8 taps at a time in registers (bias first, then ci in order: the same order for any
 * thread count and instruction-set variant, without fused multiply-adds, so the same bytes; the
 * plane's last H*W mod 16 voxels one at a time), then the taps are interleaved into the KD x KH
 * output rows of each input row (kernel width 2: 8 at a time with shuffles). Other shapes (overlapping kernels,
 * padding, output_padding) fall back on the reference. Ownership: per-item scratch is on the stack
 * or allocated and freed inside; nothing is allocated for the caller.
 */
#include "nn_isa.h"
#include "nn_ops_fast_conv.h"
#include "nn_simd.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct tjob {
    const float *x, *w, *b;
    float *y;
    int64_t Ci, Co, D, H, W, KD, KH, KW, T;
    float *scratch; /* per worker: T * H * W floats */
};

/* acc[t][0..16) = bias + sum_ci x[ci][0..16) w[ci][t] for the taps t0..t0+nt (nt <= 8), 16 voxels
 * of the plane at once in registers, input channels in order; products rounded before the add (no
 * fused multiply-add: the same bytes in every variant). */
static inline __attribute__((always_inline)) void taps16(const struct tjob *j, const float *xp, const float *wt, int64_t HW,
                                                         float bias, int64_t t0, int nt, float *acc)
{
    v16 a[8];
    for (int t = 0; t < 8; t++) a[t] = bc16(bias);
    for (int64_t ci = 0; ci < j->Ci; ci++) {
        v16 v;
        memcpy(&v, xp + ci * j->D * HW, sizeof v);
        const float *wc = wt + ci * j->Co * j->T + t0;
        for (int t = 0; t < 8; t++)
            if (t < nt) a[t] += v * wc[t];
    }
    for (int t = 0; t < nt; t++) memcpy(acc + (t0 + t) * HW, &a[t], sizeof a[t]);
}

static inline __attribute__((always_inline)) void convt_item(const struct tjob *j, int64_t it, int worker)
{
    const int64_t W = j->W, HW = j->H * W, T = j->T, Ho = j->H * j->KH, Wo = W * j->KW, Do = j->D * j->KD;
    float *acc = j->scratch + (int64_t)worker * T * HW;
    const int64_t d = it % j->D, co = (it / j->D) % j->Co, n = it / (j->D * j->Co);
    const float bias = j->b ? j->b[co] : 0.0f;
    const float *x0 = j->x + (n * j->Ci * j->D + d) * HW, *w0 = j->w + co * T;
    int64_t p = 0;
    for (; p + 16 <= HW; p += 16)
        for (int64_t t0 = 0; t0 < T; t0 += 8) taps16(j, x0 + p, w0, HW, bias, t0, T - t0 < 8 ? (int)(T - t0) : 8, acc + p);
    for (; p < HW; p++)
        for (int64_t t = 0; t < T; t++) {
            float a = bias;
            for (int64_t ci = 0; ci < j->Ci; ci++) a += x0[ci * j->D * HW + p] * w0[ci * j->Co * T + t];
            acc[t * HW + p] = a;
        }
    for (int64_t h = 0; h < j->H; h++)
        for (int64_t kd = 0; kd < j->KD; kd++)
            for (int64_t kh = 0; kh < j->KH; kh++) {
                float *yr = j->y + (((n * j->Co + co) * Do + d * j->KD + kd) * Ho + h * j->KH + kh) * Wo;
                const float *ar = acc + (kd * j->KH + kh) * j->KW * HW + h * W;
                int64_t x = 0;
                if (j->KW == 2)
                    for (; x + 8 <= W; x += 8) { /* two taps' rows interleaved, 8 at a time */
                        v8 e, o, lo, hi;
                        memcpy(&e, ar + x, sizeof e), memcpy(&o, ar + HW + x, sizeof o);
                        lo = __builtin_shufflevector(e, o, 0, 8, 1, 9, 2, 10, 3, 11);
                        hi = __builtin_shufflevector(e, o, 4, 12, 5, 13, 6, 14, 7, 15);
                        memcpy(yr + 2 * x, &lo, sizeof lo), memcpy(yr + 2 * x + 8, &hi, sizeof hi);
                    }
                for (; x < W; x++)
                    for (int64_t kw = 0; kw < j->KW; kw++) yr[x * j->KW + kw] = ar[kw * HW + x];
            }
}

VP_NN_ISA_RANGES_EXACT(convt_rng, convt_item(ctx, (int64_t)i, worker), convt_item(ctx, (int64_t)i, worker),
                       convt_item(ctx, (int64_t)i, worker))

int vp_nn_fast_conv_transpose3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                                vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_conv_transpose3d_shape(x, w, b, p, os) || vp_nn_check_out("conv_transpose3d", y, os)) return -1;
    for (int i = 0; i < 3; i++)
        if (p->pad[i] || p->out_pad[i] || w->shape[2 + i] != p->stride[i]) return vp_nn_ref_conv_transpose3d(x, w, b, p, y);
    if (vp_tensor_numel(y) == 0) return 0;
    struct tjob j = {x->data, w->data, b ? b->data : NULL, y->data, x->shape[1], w->shape[1], x->shape[2], x->shape[3],
                     x->shape[4], w->shape[2], w->shape[3], w->shape[4], w->shape[2] * w->shape[3] * w->shape[4], NULL};
    j.scratch = vp_malloc((size_t)(vp_parallel_workers() * j.T * j.H * j.W) * sizeof *j.scratch);
    int isa;
    vp_parallel_for((uint64_t)(x->shape[0] * j.Co * j.D), 1, convt_rng_pick(&isa), &j);
    free(j.scratch);
    return 0;
}
