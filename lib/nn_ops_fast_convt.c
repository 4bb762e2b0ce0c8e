/* nn_ops_fast_convt.c - the CPU backend's transposed convolution for kernel == stride, no padding
 * (SegResNet's deconv upsampling, k2 s2; nnU-Net's decoder, k = s, also anisotropic (1,2,2)):
 * every output voxel then takes exactly one tap, y[n,co, d*KD+kd, h*KH+kh, w*KW+kw] =
 * b[co] + sum_ci x[n,ci,d,h,w] w[ci,co,kd,kh,kw], a small GEMM per input voxel.
 *
 * Work item: (n, co, input depth d), all rows: for each input row h, one accumulator row per tap
 * (KD*KH*KW rows of W floats, bias first, then ci in order: the same order for any thread count),
 * then the taps are interleaved into the KD x KH output rows. Other shapes (overlapping kernels,
 * padding, output_padding) fall back on the reference. Ownership: per-item scratch is on the stack
 * or allocated and freed inside; nothing is allocated for the caller.
 */
#include "nn_ops_fast_conv.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(4 * sizeof(float))));
typedef float v4fu __attribute__((vector_size(4 * sizeof(float)), aligned(4)));

struct tjob {
    const float *x, *w, *b;
    float *y;
    int64_t Ci, Co, D, H, W, KD, KH, KW, T;
    float *scratch; /* per worker: T * W floats */
};

/* acc[0..n) += x[0..n) * s */
static void axpy(float *restrict acc, const float *restrict x, float s, int64_t n)
{
    const v4f sv = {s, s, s, s};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) *(v4fu *)(acc + i) += *(const v4fu *)(x + i) * sv;
    for (; i < n; i++) acc[i] += x[i] * s;
}

static void convt_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct tjob *j = ctx;
    const int64_t W = j->W, T = j->T, Ho = j->H * j->KH, Wo = W * j->KW, Do = j->D * j->KD;
    float *acc = j->scratch + (int64_t)worker * T * W;
    for (uint64_t it = begin; it < end; it++) {
        const int64_t d = (int64_t)it % j->D, co = ((int64_t)it / j->D) % j->Co, n = (int64_t)it / (j->D * j->Co);
        const float bias = j->b ? j->b[co] : 0.0f;
        for (int64_t h = 0; h < j->H; h++) {
            for (int64_t i = 0; i < T * W; i++) acc[i] = bias;
            for (int64_t ci = 0; ci < j->Ci; ci++) {
                const float *xr = j->x + (((n * j->Ci + ci) * j->D + d) * j->H + h) * W;
                const float *wt = j->w + (ci * j->Co + co) * T;
                for (int64_t t = 0; t < T; t++) axpy(acc + t * W, xr, wt[t], W);
            }
            for (int64_t kd = 0; kd < j->KD; kd++)
                for (int64_t kh = 0; kh < j->KH; kh++) {
                    float *yr = j->y + (((n * j->Co + co) * Do + d * j->KD + kd) * Ho + h * j->KH + kh) * Wo;
                    const float *ar = acc + (kd * j->KH + kh) * j->KW * W;
                    if (j->KW == 2)
                        for (int64_t x = 0; x < W; x++) yr[2 * x] = ar[x], yr[2 * x + 1] = ar[W + x];
                    else
                        for (int64_t kw = 0; kw < j->KW; kw++)
                            for (int64_t x = 0; x < W; x++) yr[x * j->KW + kw] = ar[kw * W + x];
                }
        }
    }
}

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
    j.scratch = vp_malloc((size_t)(vp_parallel_workers() * j.T * j.W) * sizeof *j.scratch);
    vp_parallel_for((uint64_t)(x->shape[0] * j.Co * j.D), 1, convt_range, &j);
    free(j.scratch);
    return 0;
}
