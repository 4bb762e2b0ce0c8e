/* nn_ops_fast.c - the CPU backend: op table, conv3d dispatch and the row conv3d kernel (see
 * nn_backend.h for the contracts).
 *
 * conv3d goes to the flat-plane kernel (nn_ops_fast_conv.c) whenever it applies (strides 1, or 2
 * along w: all of SegResNet's and the usual nnU-Net ones); the row kernel here takes the rest
 * (e.g. stride 2 along h but 1 along w). The fused ops: conv3d_add (the residual added in the
 * flat kernel's tile stores) and group_norm_relu (nn_ops_fast_elem.c). Transposed convolution:
 * nn_ops_fast_convt.c. Norms, activations, add, upsampling, softmax/argmax: nn_ops_fast_elem.c.
 * Concat: the reference. Vector types and loads: nn_simd.h; variant per instruction set: nn_isa.h.
 *
 * Row kernel: direct convolution, no im2col. The input is copied once into a zero-padded buffer
 * (N, Ci, D+2pd, H+2ph, W+2pw) so the inner loops have no bounds tests; the weights are repacked
 * as (Co/COB, Ci, kd, kh, kw, COB) so the COB output channels of a block read consecutive floats.
 * A work item is one (n, output-channel block, output depth od): for every output row it keeps a
 * COB x (XV vectors of 8 floats) tile of outputs in registers and sweeps ci, kd, kh, kw, one
 * vector load of input and COB broadcast multiply-adds per kw. Written with GCC vector extensions
 * (no intrinsics); compiled for AVX-512, AVX2+FMA and the baseline ISA, picked at run time.
 * Each output element is summed by one thread in a fixed order, so the bytes do not depend on
 * the thread count (they may differ from the reference's f64 sums in the last bits).
 */
#include "heap.h"
#include "nn_isa.h"
#include "nn_backend.h"
#include "nn_ops_fast_conv.h"
#include "nn_ops_fast_elem.h"
#include "nn_simd.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define COB_MAX 8 /* output channels per block: 8 with AVX-512 (32 registers), 4 otherwise */
#define VL 8  /* floats per vector (16 in the AVX-512 variant's main tiles) */
#define XV 3  /* vectors per row tile in the main loop (24 outputs along x; 48 with AVX-512) */

struct conv_job {
    const float *xp;   /* padded input (N, Ci, Dp, Hp, Wp) */
    const float *wp;   /* packed weights (nb, Ci, KD, KH, KW, COB) */
    const float *bias; /* (Co) or NULL */
    float *y;          /* (N, Co, Do, Ho, Wo) */
    int cob;  /* output channels per block */
    int64_t N, Ci, Co, nb, Dp, Hp, Wp, Do, Ho, Wo, KD, KH, KW;
    int sd, sh, sw;
};

/* Outputs y[co0 .. co0+COB)[od][oh][ox .. ox + xv*VLEN) from the padded input rows starting at
 * xrow (the row of input (ci=0, od*sd, oh*sh) at column ox*sw). xv is a compile-time constant
 * after inlining, so acc stays in registers. Defined for 8- and 16-float vectors. */
#define DEFINE_CONV_TILE(NAME, VT, VLEN, LOAD)                                                                   \
    static inline __attribute__((always_inline)) void NAME(const struct conv_job *j, const float *xrow,         \
                                                           const float *wb, float *yo, int64_t ystride, int nco, \
                                                           const float *bias, const int cob, const int xv)       \
    {                                                                                                            \
        VT acc[COB_MAX][XV];                                                                                     \
        _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++)                                                    \
            _Pragma("GCC unroll 8") for (int v = 0; v < xv; v++) acc[c][v] = (VT){0} + (bias && c < nco ? bias[c] : 0.0f); \
        const int64_t cs = j->Dp * j->Hp * j->Wp, ds = j->Hp * j->Wp;                                            \
        const int sw = j->sw;                                                                                    \
        const float *w = wb;                                                                                     \
        for (int64_t ci = 0; ci < j->Ci; ci++)                                                                   \
            for (int64_t kd = 0; kd < j->KD; kd++)                                                               \
                for (int64_t kh = 0; kh < j->KH; kh++) {                                                         \
                    const float *r = xrow + ci * cs + kd * ds + kh * j->Wp;                                      \
                    for (int64_t kw = 0; kw < j->KW; kw++, w += cob) {                                           \
                        VT in[XV];                                                                               \
                        _Pragma("GCC unroll 8") for (int v = 0; v < xv; v++) LOAD(&in[v], r + kw + (int64_t)v * VLEN * sw, sw); \
                        _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++)                                    \
                            _Pragma("GCC unroll 8") for (int v = 0; v < xv; v++) acc[c][v] += in[v] * w[c];      \
                    }                                                                                            \
                }                                                                                                \
        for (int c = 0; c < nco; c++)                                                                            \
            for (int v = 0; v < xv; v++) memcpy(yo + c * ystride + v * VLEN, &acc[c][v], sizeof(VT));            \
    }
DEFINE_CONV_TILE(conv_tile, v8, 8, load8)
DEFINE_CONV_TILE(conv_tile16, v16, 16, load16)

/* Scalar outputs for the last (Wo mod 8) columns of a row. */
static inline __attribute__((always_inline)) void conv_point(const struct conv_job *j, const float *xrow, const float *wb,
                                                             float *yo, int64_t ystride, int nco, const float *bias, const int cob)
{
    float acc[COB_MAX];
    for (int c = 0; c < cob; c++) acc[c] = bias && c < nco ? bias[c] : 0.0f;
    const int64_t cs = j->Dp * j->Hp * j->Wp, ds = j->Hp * j->Wp;
    const float *w = wb;
    for (int64_t ci = 0; ci < j->Ci; ci++)
        for (int64_t kd = 0; kd < j->KD; kd++)
            for (int64_t kh = 0; kh < j->KH; kh++) {
                const float *r = xrow + ci * cs + kd * ds + kh * j->Wp;
                for (int64_t kw = 0; kw < j->KW; kw++, w += cob)
                    for (int c = 0; c < cob; c++) acc[c] += r[kw] * w[c];
            }
    for (int c = 0; c < nco; c++) yo[c * ystride] = acc[c];
}

/* One work item: (n, block b, output depth od), all rows and columns. */
static inline __attribute__((always_inline)) void conv_item(const struct conv_job *j, int64_t item, const int cob, const int wide)
{
    const int64_t od = item % j->Do, b = (item / j->Do) % j->nb, n = item / (j->Do * j->nb);
    const int64_t co0 = b * cob;
    const int nco = (int)(j->Co - co0 < cob ? j->Co - co0 : cob);
    const float *wb = j->wp + b * j->Ci * j->KD * j->KH * j->KW * cob;
    const float *bias = j->bias ? j->bias + co0 : NULL;
    const int64_t ystride = j->Do * j->Ho * j->Wo; /* between output channels */
    const float *xn = j->xp + n * j->Ci * j->Dp * j->Hp * j->Wp + od * j->sd * j->Hp * j->Wp;
    float *yn = j->y + ((n * j->Co + co0) * j->Do + od) * j->Ho * j->Wo;
    for (int64_t oh = 0; oh < j->Ho; oh++) {
        const float *xr = xn + oh * j->sh * j->Wp;
        float *yr = yn + oh * j->Wo;
        int64_t ox = 0;
        if (wide) {
            for (; ox + XV * 16 <= j->Wo; ox += XV * 16) conv_tile16(j, xr + ox * j->sw, wb, yr + ox, ystride, nco, bias, cob, XV);
            for (; ox + 16 <= j->Wo; ox += 16) conv_tile16(j, xr + ox * j->sw, wb, yr + ox, ystride, nco, bias, cob, 1);
        }
        for (; ox + XV * VL <= j->Wo; ox += XV * VL) conv_tile(j, xr + ox * j->sw, wb, yr + ox, ystride, nco, bias, cob, XV);
        for (; ox + VL <= j->Wo; ox += VL) conv_tile(j, xr + ox * j->sw, wb, yr + ox, ystride, nco, bias, cob, 1);
        for (; ox < j->Wo; ox++) conv_point(j, xr + ox * j->sw, wb, yr + ox, ystride, nco, bias, cob);
    }
}

/* The kernel compiled per instruction set (AVX-512: 8 output channels per block and 16-wide
 * tiles; the others 4 and 8-wide); VOXPIPE_NN_ISA=base|avx2|avx512 caps the choice (tests run
 * every variant against the reference). */
VP_NN_ISA_RANGES(conv_range, conv_item(ctx, (int64_t)i, 8, 1), conv_item(ctx, (int64_t)i, 4, 0),
                 conv_item(ctx, (int64_t)i, 4, 0))

static int fast_conv3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p, vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_conv3d_shape(x, w, b, p, os) || vp_nn_check_out("conv3d", y, os)) return -1;
    struct conv_job j = {
        .N = x->shape[0], .Ci = x->shape[1], .Co = os[1], .Do = os[2], .Ho = os[3], .Wo = os[4],
        .KD = w->shape[2], .KH = w->shape[3], .KW = w->shape[4],
        .sd = p->stride[0], .sh = p->stride[1], .sw = p->stride[2],
        .bias = b ? b->data : NULL, .y = y->data,
    };
    if (vp_tensor_numel(y) == 0) return 0;
    if (vp_nn_flat_conv_applies(w, p)) return vp_nn_flat_conv3d(x, w, b, p, NULL, y);
    int isa;
    vp_range_fn kernel = conv_range_pick(&isa);
    const int cob = j.cob = isa == VP_ISA_AVX512 ? 8 : 4;
    j.nb = (j.Co + cob - 1) / cob;
    j.Dp = x->shape[2] + 2 * p->pad[0];
    j.Hp = x->shape[3] + 2 * p->pad[1];
    j.Wp = x->shape[4] + 2 * p->pad[2];

    float *xp = NULL;
    /* stride-2 loads read one vector past the last column they use: a padded copy with slack */
    if (p->pad[0] || p->pad[1] || p->pad[2] || j.sw == 2) {
        j.xp = xp = vp_nn_pad_copy(x, p->pad, 0);
    } else {
        j.xp = x->data;
    }

    /* wp[b][ci][kd][kh][kw][c] = w[b*COB + c][ci][kd][kh][kw], zero past Co */
    const int64_t K = j.KD * j.KH * j.KW;
    float *wp = vp_calloc((size_t)(j.nb * j.Ci * K * cob), sizeof *wp);
    for (int64_t co = 0; co < j.Co; co++)
        for (int64_t ci = 0; ci < j.Ci; ci++)
            for (int64_t k = 0; k < K; k++)
                wp[(((co / cob) * j.Ci + ci) * K + k) * cob + co % cob] = w->data[(co * j.Ci + ci) * K + k];
    j.wp = wp;

    vp_parallel_for((uint64_t)(j.N * j.nb * j.Do), 1, kernel, &j);
    free(wp);
    free(xp);
    return 0;
}

/* ---- the CPU backend */

static int cpu_supports(const vp_nn_backend *be, vp_nn_op op) { return op >= 0 && op < VP_NN_OP_COUNT; }
static int cpu_conv3d(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                      const vp_conv3d_params *p, vp_tensor *y) { return fast_conv3d(x, w, b, p, y); }
static int cpu_convt(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                     const vp_conv3d_params *p, vp_tensor *y) { return vp_nn_fast_conv_transpose3d(x, w, b, p, y); }
static int cpu_gn(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *g,
                  const vp_tensor *b, vp_tensor *y) { return vp_nn_fast_group_norm(x, groups, eps, g, b, y); }
static int cpu_in(const vp_nn_backend *be, const vp_tensor *x, float eps, const vp_tensor *g, const vp_tensor *b,
                  vp_tensor *y)
{
    if (vp_nn_check_act("instance_norm", "input", x)) return -1;
    return vp_nn_fast_group_norm(x, (int)x->shape[1], eps, g, b, y);
}
static int cpu_relu(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return vp_nn_fast_relu(x, y); }
static int cpu_lrelu(const vp_nn_backend *be, const vp_tensor *x, float s, vp_tensor *y) { return vp_nn_fast_leaky_relu(x, s, y); }
static int cpu_up(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return vp_nn_fast_upsample_trilinear2x(x, y); }
static int cpu_add(const vp_nn_backend *be, const vp_tensor *a, const vp_tensor *b, vp_tensor *y) { return vp_nn_fast_add(a, b, y); }
static int cpu_cat(const vp_nn_backend *be, const vp_tensor *const *xs, int n, vp_tensor *y) { return vp_nn_ref_concat(xs, n, y); }
static int cpu_smax(const vp_nn_backend *be, const vp_tensor *x, vp_tensor *y) { return vp_nn_fast_softmax_c(x, y); }
static int cpu_amax(const vp_nn_backend *be, const vp_tensor *x, int32_t *o) { return vp_nn_fast_argmax_c(x, o); }
static int cpu_gn_relu(const vp_nn_backend *be, const vp_tensor *x, int groups, float eps, const vp_tensor *g,
                       const vp_tensor *b, vp_tensor *y) { return vp_nn_fast_group_norm_relu(x, groups, eps, g, b, y); }

/* conv3d + residual: in the flat kernel's epilogue where it applies, conv3d then add elsewhere. */
static int cpu_conv_add(const vp_nn_backend *be, const vp_tensor *x, const vp_tensor *w, const vp_tensor *b,
                        const vp_conv3d_params *p, const vp_tensor *r, vp_tensor *y)
{
    int64_t os[5];
    if (vp_nn_conv3d_shape(x, w, b, p, os) || vp_nn_check_out("conv3d_add", y, os)) return -1;
    if (vp_nn_check_act("conv3d_add", "residual", r)) return -1;
    if (!vp_tensor_same_shape(r, y)) {
        char s[96], t[96];
        return vp_error("conv3d_add: residual %s does not match the output %s", vp_tensor_shape_str(r, s, sizeof s),
                        vp_tensor_shape_str(y, t, sizeof t));
    }
    if (r->data == y->data || x->data == y->data) return vp_error("conv3d_add: the output must not be an input");
    if (vp_tensor_numel(y) && vp_nn_flat_conv_applies(w, p)) return vp_nn_flat_conv3d(x, w, b, p, r, y);
    return fast_conv3d(x, w, b, p, y) || vp_nn_fast_add(y, r, y) ? -1 : 0;
}

static const vp_nn_backend cpu_backend = {
    .name = "cpu", .supports_op = cpu_supports,
    .conv3d = cpu_conv3d, .conv_transpose3d = cpu_convt, .group_norm = cpu_gn, .instance_norm = cpu_in,
    .relu = cpu_relu, .leaky_relu = cpu_lrelu, .upsample_trilinear2x = cpu_up, .add = cpu_add,
    .concat = cpu_cat, .softmax_c = cpu_smax, .argmax_c = cpu_amax,
    .group_norm_relu = cpu_gn_relu, .conv3d_add = cpu_conv_add,
};

const vp_nn_backend *vp_nn_backend_cpu(void)
{
    vp_heap_keep_freed(); /* activations allocated and freed once per layer: see heap.h */
    return &cpu_backend;
}
