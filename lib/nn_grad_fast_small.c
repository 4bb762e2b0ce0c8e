/* nn_grad_fast_small.c - the convolution weight gradient for narrow outputs (see
 * nn_grad_fast_small.h): the row kernels of nn_grad_fast.c vectorise along output rows, so rows
 * shorter than a vector (the deepest U-Net levels: 4x4x4 planes) ran entirely in their scalar
 * tail (2-3 GFLOP/s, a tenth of an iteration at features 16..128).
 *
 * Here the input is unrolled once (im2col): cols[n][ci][k][o] = x[n][ci][o*s - p + k] (zero
 * outside), one contiguous run of Do*Ho*Wo outputs per (n, ci, tap), the layout of dy's
 * (n, co) volumes. Then dw[co][ci][k] is a dot product of two contiguous arrays summed over n: a
 * block of 4 output channels x 3 (ci, tap) rows keeps its 12 vector sums in registers over the
 * whole batch (per vector: 4 loads of dy, 3 of cols, 12 multiply-adds), then a scalar tail.
 * One work item per block of 4 output channels writes its outputs alone, in a fixed order:
 * the bytes do not depend on the thread count.
 */
#include "nn_grad_fast_small.h"

#include "nn_isa.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define COB 4 /* output channels per register block */
#define RB 3  /* (ci, tap) rows per register block */
#define MAX_COLS_FLOATS ((int64_t)1 << 24) /* 64 MiB of unrolled input at most */

typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
typedef float v16 __attribute__((vector_size(16 * sizeof(float))));
/* Unaligned types for the dy loads, volatile so that each is loaded once into a register (GCC would
 * otherwise fold it into each of its 3 multiply-adds: 12 loads of dy per 12 instead of 4). */
typedef float v8u __attribute__((vector_size(8 * sizeof(float)), aligned(4)));
typedef float v16u __attribute__((vector_size(16 * sizeof(float)), aligned(4)));

struct cols_job {
    const float *x;
    float *cols;
    int64_t Ci, D, H, W, Do, Ho, Wo, KD, KH, KW;
    int s[3], p[3];
};

/* Item = one (n, ci): its KD*KH*KW unrolled rows. */
static void cols_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    (void)worker;
    const struct cols_job *j = ctx;
    const int64_t V = j->Do * j->Ho * j->Wo, KK = j->KD * j->KH * j->KW;
    for (uint64_t i = begin; i < end; i++) {
        const float *x = j->x + (int64_t)i * j->D * j->H * j->W;
        float *row = j->cols + (int64_t)i * KK * V;
        for (int64_t kd = 0; kd < j->KD; kd++)
            for (int64_t kh = 0; kh < j->KH; kh++)
                for (int64_t kw = 0; kw < j->KW; kw++, row += V) {
                    float *o = row;
                    for (int64_t od = 0; od < j->Do; od++) {
                        const int64_t id = od * j->s[0] - j->p[0] + kd;
                        for (int64_t oh = 0; oh < j->Ho; oh++) {
                            const int64_t ih = oh * j->s[1] - j->p[1] + kh;
                            const int in = id >= 0 && id < j->D && ih >= 0 && ih < j->H;
                            const float *xr = x + (id * j->H + ih) * j->W;
                            for (int64_t ow = 0; ow < j->Wo; ow++) {
                                const int64_t iw = ow * j->s[2] - j->p[2] + kw;
                                *o++ = in && iw >= 0 && iw < j->W ? xr[iw] : 0.0f;
                            }
                        }
                    }
                }
    }
}

struct dot_job {
    const float *cols; /* (N, R, V) with R = Ci * KK */
    const float *dy;   /* (N, Co, V) */
    float *dw;         /* (Co, R) */
    int64_t N, Co, R, V;
};

/* The 4 x 3 sums of dy[co0 + c] . cols[r0 + t] over the batch into out[c * 3 + t]; nco / nr
 * below 4 / 3 repeat the last channel / row (their sums are dropped by the caller). */
#define DOT_BLOCK(NAME, VT, VL)                                                                                      \
    static inline __attribute__((always_inline)) void NAME(const struct dot_job *j, int64_t co0, int nco,          \
                                                           int64_t r0, int nr, float *out)                          \
    {                                                                                                               \
        const int64_t V = j->V, Vv = V / VL * VL;                                                                   \
        VT a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};                                        \
        VT a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};                                        \
        float t[COB][RB] = {{0}};                                                                                   \
        for (int64_t n = 0; n < j->N; n++) {                                                                        \
            const float *d0 = j->dy + (n * j->Co + co0) * V;                                                        \
            const float *d1 = d0 + (nco > 1 ? V : 0), *d2 = d0 + (nco > 2 ? 2 * V : 0), *d3 = d0 + (nco > 3 ? 3 * V : 0); \
            const float *c0 = j->cols + (n * j->R + r0) * V;                                                        \
            const float *c1 = c0 + (nr > 1 ? V : 0), *c2 = c0 + (nr > 2 ? 2 * V : 0);                              \
            for (int64_t v = 0; v < Vv; v += VL) {                                                                  \
                VT x0, x1, x2, g0, g1, g2, g3;                                                                      \
                memcpy(&x0, c0 + v, sizeof x0), memcpy(&x1, c1 + v, sizeof x1), memcpy(&x2, c2 + v, sizeof x2);    \
                g0 = *(const volatile VT##u *)(d0 + v), g1 = *(const volatile VT##u *)(d1 + v);                     \
                g2 = *(const volatile VT##u *)(d2 + v), g3 = *(const volatile VT##u *)(d3 + v);                     \
                a00 += g0 * x0, a01 += g0 * x1, a02 += g0 * x2, a10 += g1 * x0, a11 += g1 * x1, a12 += g1 * x2;     \
                a20 += g2 * x0, a21 += g2 * x1, a22 += g2 * x2, a30 += g3 * x0, a31 += g3 * x1, a32 += g3 * x2;     \
            }                                                                                                       \
            for (int64_t v = Vv; v < V; v++) {                                                                      \
                const float g[COB] = {d0[v], d1[v], d2[v], d3[v]}, x[RB] = {c0[v], c1[v], c2[v]};                   \
                for (int c = 0; c < COB; c++)                                                                       \
                    for (int k = 0; k < RB; k++) t[c][k] += g[c] * x[k];                                            \
            }                                                                                                       \
        }                                                                                                           \
        VT acc[COB][RB] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};                     \
        for (int c = 0; c < COB; c++)                                                                               \
            for (int k = 0; k < RB; k++) {                                                                          \
                float s = t[c][k];                                                                                  \
                for (int l = 0; l < VL; l++) s += acc[c][k][l];                                                     \
                out[c * RB + k] = s;                                                                                \
            }                                                                                                       \
    }

DOT_BLOCK(dot8, v8, 8)
DOT_BLOCK(dot16, v16, 16)

/* Item = one block of output channels: every row block, written to dw. */
static inline __attribute__((always_inline)) void dot_item(const struct dot_job *j, int64_t item, const int wide)
{
    const int64_t co0 = item * COB;
    const int nco = (int)(j->Co - co0 < COB ? j->Co - co0 : COB);
    float out[COB * RB];
    for (int64_t r0 = 0; r0 < j->R; r0 += RB) {
        const int nr = (int)(j->R - r0 < RB ? j->R - r0 : RB);
        if (wide) dot16(j, co0, nco, r0, nr, out);
        else dot8(j, co0, nco, r0, nr, out);
        for (int c = 0; c < nco; c++)
            for (int k = 0; k < nr; k++) j->dw[(co0 + c) * j->R + r0 + k] = out[c * RB + k];
    }
}

#ifdef HAVE_X86_PATHS
__attribute__((target("avx512f,avx512vl,fma"), optimize("fp-contract=fast")))
static void dot_range_avx512(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    (void)worker;
    for (uint64_t i = begin; i < end; i++) dot_item(ctx, (int64_t)i, 1);
}
__attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
static void dot_range_avx2(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    (void)worker;
    for (uint64_t i = begin; i < end; i++) dot_item(ctx, (int64_t)i, 0);
}
#endif
static void dot_range_base(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    (void)worker;
    for (uint64_t i = begin; i < end; i++) dot_item(ctx, (int64_t)i, 0);
}

int vp_nn_fast_dw_small(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw)
{
    struct cols_job cj = {
        .x = x->data, .Ci = x->shape[1], .D = x->shape[2], .H = x->shape[3], .W = x->shape[4],
        .Do = dy->shape[2], .Ho = dy->shape[3], .Wo = dy->shape[4],
        .KD = dw->shape[2], .KH = dw->shape[3], .KW = dw->shape[4],
        .s = {p->stride[0], p->stride[1], p->stride[2]}, .p = {p->pad[0], p->pad[1], p->pad[2]},
    };
    const int64_t N = x->shape[0], V = cj.Do * cj.Ho * cj.Wo, R = cj.Ci * cj.KD * cj.KH * cj.KW;
    if (cj.Wo >= 8 || N * R * V > MAX_COLS_FLOATS) return 1;
    cj.cols = vp_malloc((size_t)(N * R * V) * sizeof(float));
    vp_parallel_for((uint64_t)(N * cj.Ci), 1, cols_range, &cj);
    struct dot_job dj = {cj.cols, dy->data, dw->data, N, dy->shape[1], R, V};
    vp_range_fn fn = dot_range_base;
#ifdef HAVE_X86_PATHS
    int isa = vp_nn_isa_level();
    if (isa == VP_ISA_AVX512) fn = dot_range_avx512;
    else if (isa == VP_ISA_AVX2) fn = dot_range_avx2;
#endif
    vp_parallel_for((uint64_t)((dj.Co + COB - 1) / COB), 1, fn, &dj);
    free(cj.cols);
    return 0;
}
