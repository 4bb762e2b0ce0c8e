/* nn_grad_fast_dw.c - the CPU weight gradient of conv3d / conv_transpose3d (see nn_grad_fast_dw.h),
 * multi-threaded with lib/parallel.h, deterministic for any thread count.
 *
 * dw (both): the (n, od) output planes are split into at most NCHUNK chunks fixed by the shape;
 *   each chunk sums its planes into its own partial dw, and the partials are added in chunk order
 *   (f64). Within a chunk, a block of 4 output channels x 3 kw taps of one (ci, kd, kh) keeps its
 *   12 sums in vector registers over all the chunk's rows: per vector of outputs, 4 loads of dy
 *   and 3 of x, then 12 multiply-adds. The input is copied once into a zero-padded buffer
 *   (vp_nn_pad_copy: zeros only around it) so the loops have no bounds tests. Output rows shorter
 *   than 8 go to lib/nn_grad_fast_small.c (unrolled input, contiguous dot products) instead,
 *   where these row kernels would run scalar.
 */
#include "nn_grad_fast_dw.h"
#include "nn_grad_fast_small.h"
#include "nn_isa.h"
#include "nn_ops_fast_conv.h"
#include "nn_simd.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NCHUNK 16 /* at most this many partial weight gradients */
#define COB 4     /* output channels per register block */

/* ---- weight gradients */

struct dw_job {
    const float *xp; /* padded input (N, Ci, Dp, Hp, Wp) */
    const float *dy; /* (N, Co, Do, Ho, Wo) */
    double *part;    /* (nchunk, Co, Ci, KD, KH, KW) */
    int64_t N, Ci, Co, Dp, Hp, Wp, Do, Ho, Wo, KD, KH, KW, planes_per_chunk;
    int sd, sh, sw;
};

/* Plane kernels: the sums over the output planes p0 .. p1 (plane = n * Do + od) of dy[co0 + c] times
 * x[ci] shifted by the taps (kd, kh, kw0 + t), for 4 output channels c and 3 taps t, into
 * out[c * 3 + t]. The 12 accumulators are named variables so they stay in registers over all the
 * planes; rows are swept VL outputs at a time (VL = 8 or 16), then a scalar tail. The 16-wide
 * variants load dy through volatile unaligned vectors (v16u, nn_simd.h) so that each load is done
 * once into a register: otherwise GCC folds it into each of its 3 multiply-adds as a memory
 * operand, 12 loads of dy per 12 multiply-adds instead of 4 (load-bound: 60 vs 90 GFLOP/s). */
#define DW_PLANE(NAME, VT, VL, SW, LOAD, VOL)                                                                           \
    static inline __attribute__((always_inline)) void NAME(const struct dw_job *j, int64_t p0, int64_t p1,     \
                                                           int64_t co0, int64_t ci, int64_t kd, int64_t kh,    \
                                                           int64_t kw0, int nco, float *out)                   \
    {                                                                                                          \
        const int64_t pl = j->Do * j->Ho * j->Wo, Wv = j->Wo / VL * VL;                                        \
        const int sw = SW ? SW : j->sw;                                                                        \
        VT a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};                                   \
        VT a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};                                   \
        float t[4][3] = {{0}};                                                                                 \
        for (int64_t pi = p0; pi < p1; pi++) {                                                                 \
        const int64_t n = pi / j->Do, od = pi % j->Do;                                                         \
        const float *xpl = j->xp + ((n * j->Ci + ci) * j->Dp + od * j->sd + kd) * j->Hp * j->Wp + kh * j->Wp + kw0; \
        const float *d0 = j->dy + ((n * j->Co + co0) * j->Do + od) * j->Ho * j->Wo;                            \
        const float *d1 = d0 + (nco > 1 ? pl : 0), *d2 = d0 + (nco > 2 ? 2 * pl : 0), *d3 = d0 + (nco > 3 ? 3 * pl : 0); \
        for (int64_t oh = 0; oh < j->Ho; oh++) {                                                               \
            const float *xr = xpl + oh * j->sh * j->Wp;                                                        \
            const int64_t r = oh * j->Wo;                                                                      \
            for (int64_t ow = 0; ow < Wv; ow += VL) {                                                          \
                VT x0, x1, x2, g0, g1, g2, g3;                                                                 \
                LOAD(&x0, xr + ow * sw, sw), LOAD(&x1, xr + ow * sw + 1, sw), LOAD(&x2, xr + ow * sw + 2, sw);  \
                g0 = *(const VOL VT##u *)(d0 + r + ow), g1 = *(const VOL VT##u *)(d1 + r + ow);                \
                g2 = *(const VOL VT##u *)(d2 + r + ow), g3 = *(const VOL VT##u *)(d3 + r + ow);                \
                a00 += g0 * x0, a01 += g0 * x1, a02 += g0 * x2, a10 += g1 * x0, a11 += g1 * x1, a12 += g1 * x2; \
                a20 += g2 * x0, a21 += g2 * x1, a22 += g2 * x2, a30 += g3 * x0, a31 += g3 * x1, a32 += g3 * x2; \
            }                                                                                                  \
            for (int64_t ow = Wv; ow < j->Wo; ow++) {                                                          \
                const float *xp = xr + ow * sw, g[4] = {d0[r + ow], d1[r + ow], d2[r + ow], d3[r + ow]};       \
                for (int c = 0; c < 4; c++)                                                                    \
                    for (int k = 0; k < 3; k++) t[c][k] += g[c] * xp[k];                                       \
            }                                                                                                  \
        }                                                                                                      \
        }                                                                                                      \
        VT acc[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};                   \
        for (int c = 0; c < 4; c++)                                                                            \
            for (int k = 0; k < 3; k++) {                                                                      \
                float s = t[c][k];                                                                             \
                for (int l = 0; l < VL; l++) s += acc[c][k][l];                                                \
                out[c * 3 + k] = s;                                                                            \
            }                                                                                                  \
    }


DW_PLANE(dw8_s1, v8, 8, 1, load8, )
DW_PLANE(dw8_s2, v8, 8, 2, load8, )
DW_PLANE(dw8_sx, v8, 8, 0, load8, )
DW_PLANE(dw16_s1, v16, 16, 1, load16, volatile)
DW_PLANE(dw16_s2, v16, 16, 2, load16, volatile)

/* One plane, 4 output channels, 3 taps from kw0 (taps past KW read zero padding or the next
 * columns and are dropped by the caller). wide: 16-float vectors. */
#define DW_ARGS j, p0, p1, co0, ci, kd, kh, kw0, nco, out
static inline __attribute__((always_inline)) void dw_plane(const struct dw_job *j, int64_t p0, int64_t p1, int64_t co0,
                                                           int64_t ci, int64_t kd, int64_t kh, int64_t kw0, int nco,
                                                           float *out, const int wide)
{
    if (wide && j->Wo % 16 == 0 && j->sw == 1) dw16_s1(DW_ARGS);
    else if (wide && j->Wo % 16 == 0 && j->sw == 2) dw16_s2(DW_ARGS);
    else if (j->sw == 1) dw8_s1(DW_ARGS);
    else if (j->sw == 2) dw8_s2(DW_ARGS);
    else dw8_sx(DW_ARGS);
}

/* One work item = (chunk of planes, block of 4 output channels) into its part of the chunk's
 * partial: every (ci, kd, kh, group of 3 kw), each summed over all the chunk's planes in registers. */
static inline __attribute__((always_inline)) void dw_chunk(const struct dw_job *j, int64_t item, const int wide)
{
    const int64_t KK = j->KD * j->KH * j->KW, total = j->N * j->Do, ncob = (j->Co + COB - 1) / COB;
    const int64_t chunk = item / ncob, co0 = item % ncob * COB;
    const int64_t p0 = chunk * j->planes_per_chunk, p1 = p0 + j->planes_per_chunk < total ? p0 + j->planes_per_chunk : total;
    double *part = j->part + chunk * j->Co * j->Ci * KK;
    float out[COB * 3];
    {
        const int nco = (int)(j->Co - co0 < COB ? j->Co - co0 : COB);
        for (int64_t ci = 0; ci < j->Ci; ci++)
            for (int64_t kd = 0; kd < j->KD; kd++)
                for (int64_t kh = 0; kh < j->KH; kh++)
                    for (int64_t kw0 = 0; kw0 < j->KW; kw0 += 3) {
                        const int nk = (int)(j->KW - kw0 < 3 ? j->KW - kw0 : 3);
                        dw_plane(j, p0, p1, co0, ci, kd, kh, kw0, nco, out, wide);
                        double *o = part + ((co0 * j->Ci + ci) * j->KD + kd) * j->KH * j->KW + kh * j->KW + kw0;
                        for (int c = 0; c < nco; c++)
                            for (int k = 0; k < nk; k++) o[c * j->Ci * KK + k] = out[c * 3 + k];
                    }
    }
}

VP_NN_ISA_RANGES(dw_range, dw_chunk(ctx, (int64_t)i, 1), dw_chunk(ctx, (int64_t)i, 0), dw_chunk(ctx, (int64_t)i, 0))

/* AVX-512, stride 1, rows a whole number of 16-wide vectors: 8 output channels x 3 taps per
 * block (24 sums in registers; per vector of outputs 3 loads of x, 8 of dy, 24 multiply-adds,
 * fewer loads per multiply-add than 4 x 3, whose unaligned x loads cross cache lines). Each sum
 * runs over the same products in the same order as dw16_s1: the same bytes. */
static inline __attribute__((always_inline)) void dw16x8_s1(const struct dw_job *j, int64_t p0, int64_t p1, int64_t co0,
                                                            int64_t ci, int64_t kd, int64_t kh, int64_t kw0, int nco,
                                                            float *out)
{
    const int64_t pl = j->Do * j->Ho * j->Wo;
    v16 acc[8][3];
    for (int c = 0; c < 8; c++)
        for (int k = 0; k < 3; k++) acc[c][k] = (v16){0};
    for (int64_t pi = p0; pi < p1; pi++) {
        const int64_t n = pi / j->Do, od = pi % j->Do;
        const float *xpl = j->xp + ((n * j->Ci + ci) * j->Dp + od * j->sd + kd) * j->Hp * j->Wp + kh * j->Wp + kw0;
        const float *d0 = j->dy + ((n * j->Co + co0) * j->Do + od) * j->Ho * j->Wo;
        const float *dc[8];
        for (int c = 0; c < 8; c++) dc[c] = d0 + (c < nco ? c * pl : 0);
        for (int64_t oh = 0; oh < j->Ho; oh++) {
            const float *xr = xpl + oh * j->sh * j->Wp;
            const int64_t r = oh * j->Wo;
            for (int64_t ow = 0; ow < j->Wo; ow += 16) {
                v16 x0, x1, x2;
                load16(&x0, xr + ow, 1), load16(&x1, xr + ow + 1, 1), load16(&x2, xr + ow + 2, 1);
                _Pragma("GCC unroll 8") for (int c = 0; c < 8; c++) {
                    const v16 g = *(const volatile v16u *)(dc[c] + r + ow);
                    acc[c][0] += g * x0, acc[c][1] += g * x1, acc[c][2] += g * x2;
                }
            }
        }
    }
    for (int c = 0; c < 8; c++)
        for (int k = 0; k < 3; k++) {
            float s = 0;
            for (int l = 0; l < 16; l++) s += acc[c][k][l];
            out[c * 3 + k] = s;
        }
}

/* dw_chunk with blocks of 8 output channels on dw16x8_s1. */
static inline __attribute__((always_inline)) void dw_chunk8(const struct dw_job *j, int64_t item)
{
    const int64_t KK = j->KD * j->KH * j->KW, total = j->N * j->Do, ncob = (j->Co + 7) / 8;
    const int64_t chunk = item / ncob, co0 = item % ncob * 8;
    const int64_t p0 = chunk * j->planes_per_chunk, p1 = p0 + j->planes_per_chunk < total ? p0 + j->planes_per_chunk : total;
    double *part = j->part + chunk * j->Co * j->Ci * KK;
    float out[8 * 3];
    const int nco = (int)(j->Co - co0 < 8 ? j->Co - co0 : 8);
    for (int64_t ci = 0; ci < j->Ci; ci++)
        for (int64_t kd = 0; kd < j->KD; kd++)
            for (int64_t kh = 0; kh < j->KH; kh++)
                for (int64_t kw0 = 0; kw0 < j->KW; kw0 += 3) {
                    const int nk = (int)(j->KW - kw0 < 3 ? j->KW - kw0 : 3);
                    dw16x8_s1(j, p0, p1, co0, ci, kd, kh, kw0, nco, out);
                    double *o = part + ((co0 * j->Ci + ci) * j->KD + kd) * j->KH * j->KW + kh * j->KW + kw0;
                    for (int c = 0; c < nco; c++)
                        for (int k = 0; k < nk; k++) o[c * j->Ci * KK + k] = out[c * 3 + k];
                }
}

VP_NN_ISA_RANGES(dw8_range, dw_chunk8(ctx, (int64_t)i), dw_chunk(ctx, (int64_t)i, 0), dw_chunk(ctx, (int64_t)i, 0))

struct sum_job {
    const double *part;
    float *dw;
    int64_t n, nchunk;
};

static void sum_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct sum_job *j = ctx;
    for (uint64_t i = begin; i < end; i++) {
        double s = 0;
        for (int64_t c = 0; c < j->nchunk; c++) s += j->part[c * j->n + (int64_t)i];
        j->dw[i] = (float)s;
    }
}

/* dw[co,ci,k] = sum over n, o of dy[n,co,o] x[n,ci,o*s-p+k]; shapes already checked. */
void vp_nn_fast_weight_grad(const vp_tensor *x, const vp_tensor *dy, const vp_conv3d_params *p, vp_tensor *dw)
{
    if (!vp_nn_fast_dw_small(x, dy, p, dw)) return; /* rows shorter than a vector: nn_grad_fast_small.c */
    struct dw_job j = {
        .dy = dy->data, .N = x->shape[0], .Ci = x->shape[1], .Co = dy->shape[1],
        .Do = dy->shape[2], .Ho = dy->shape[3], .Wo = dy->shape[4],
        .KD = dw->shape[2], .KH = dw->shape[3], .KW = dw->shape[4],
        .sd = p->stride[0], .sh = p->stride[1], .sw = p->stride[2],
    };
    int64_t dims[3] = {x->shape[2] + 2 * p->pad[0], x->shape[3] + 2 * p->pad[1], x->shape[4] + 2 * p->pad[2]};
    float *xp = vp_nn_pad_copy(x, p->pad, 0); /* zeros only around the input, then slack */
    j.xp = xp;
    j.Dp = dims[0], j.Hp = dims[1], j.Wp = dims[2];
    /* chunks of at least ~32k output voxels (fewer, longer register sums for small planes) */
    const int64_t planes = j.N * j.Do, big = (planes * j.Ho * j.Wo) / 32768 + 1;
    const int64_t nchunk = planes < NCHUNK ? (planes < big ? planes : big) : (NCHUNK < big ? NCHUNK : big);
    const int64_t n = vp_tensor_numel(dw);
    j.planes_per_chunk = (planes + nchunk - 1) / nchunk;
    const int64_t used = (planes + j.planes_per_chunk - 1) / j.planes_per_chunk;
    j.part = vp_malloc((size_t)(used * n) * sizeof(double));
    int isa;
    vp_range_fn fn = dw_range_pick(&isa);
    if (isa == VP_ISA_AVX512 && j.sw == 1 && j.Wo % 16 == 0 && j.Co >= 8) /* blocks of 8 channels */
        vp_parallel_for((uint64_t)(used * ((j.Co + 7) / 8)), 1, dw8_range_pick(&isa), &j);
    else
        vp_parallel_for((uint64_t)(used * ((j.Co + COB - 1) / COB)), 1, fn, &j);
    struct sum_job sj = {j.part, dw->data, n, used};
    vp_parallel_for((uint64_t)n, 0, sum_range, &sj);
    free(j.part);
    free(xp);
}
