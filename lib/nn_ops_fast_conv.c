/* nn_ops_fast_conv.c - the CPU backend's flat-plane conv3d kernel (see nn_ops_fast_conv.h).
 *
 * Layout: the input is copied once into a zero-padded buffer (N, Ci, Dp, Hp, Wr), Wr = W + 2 pw,
 * with slack after it, so no loop tests bounds (a 1x1x1 stride-1 convolution without padding reads
 * the input in place: its "plane" is the whole volume). Weights are repacked as (Co/COB, Ci, taps,
 * COB), taps in kd, kh, kw order, so the COB output channels of a block read consecutive floats.
 *
 * Work item: (n, output-channel block, output depth od, chunk of the plane). Stride 1: an output
 * plane is one flat run of positions o = oh * Wr + ox whose input is simply xp + o + tap offset
 * (the Wr - Wo positions past each row are computed and dropped), cut into chunks of CHUNK.
 * Stride 2 along w: each output row is a run of its own (chunk = oh), and the padded copy stores
 * every row as its even columns followed by its odd ones, so column 2 ox + kw is ox + kw / 2 in
 * one half or the other: stride-1 vector loads again. A tile holds COB output channels x NV vectors of
 * positions in registers (AVX-512: 8 x 3 x 16 floats, 24 of the 32 registers; AVX2 and the
 * baseline: 4 x 3 x 8) and sweeps ci and the taps: per tap NV input loads and COB x NV fused
 * multiply-adds. Tails use one-vector tiles (stored partially); only the in-place 1x1x1 case, which
 * has no slack to read into, finishes with scalar points.
 *
 * Order of the work items: for 3x3x3 stride-1 convs one block's items run back to back (its
 * packed weights stay in cache); for 1x1x1 and strided convs, which do few multiply-adds per
 * input float, the blocks of one chunk run back to back instead (its input is read once).
 * Rows shorter than 8 (stride 1 or not) are gathered into patches first and run as a 1x1x1
 * convolution over the flat volume (gather_range). A residual (conv3d_add) is added in the store
 * of each tile: the bytes of conv3d then add, one pass over the output fewer. The weights are packed in parallel, one block per item.
 */
#include "nn_isa.h"
#include "nn_ops_fast_conv.h"
#include "nn_simd.h"
#include "parallel.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define NVMAX 3       /* vectors per main tile */
#define TILE_MAX 48   /* floats per channel of the widest tile (3 x 16) */
#define CHUNK 1536    /* flat positions per work item (stride 1): a multiple of 48 and of 24 */

typedef float v4 __attribute__((vector_size(4 * sizeof(float))));
typedef float v4u __attribute__((vector_size(4 * sizeof(float)), aligned(4)));
typedef int v4i __attribute__((vector_size(4 * sizeof(int))));

struct fjob {
    const float *xp;    /* padded input (N, Ci, Dp, Hp, Wr), or x itself (in-place 1x1x1) */
    const float *wp;    /* packed weights (nb, Ci, T, cob) */
    const float *bias;  /* (Co) or NULL */
    float *y;           /* (N, Co, Do, Ho, Wo) */
    const float *res;   /* residual added to y (same layout), or NULL */
    const int64_t *off; /* T tap offsets into the input: kd * ps + kh * Wr + kw */
    int cob, T, s;      /* block width, taps, stride along w (1 or 2) */
    int exact;          /* 1: no slack after the input (tails must not read past a run) */
    int vl;             /* vec mode: floats per output vector (AVX-512: 16, or 8 for rows of 8 x k) */
    int rows;           /* 1: one run per output row (stride 2, or rows a whole number of tiles wide) */
    int bfast;          /* 1: consecutive work items take the blocks of one chunk (input read once) */
    int64_t Ci, Co, nb, Do, Ho, Wo;
    int64_t Wq;         /* output positions per row in the flat numbering: Wr (stride 1), Wo (stride 2) */
    int64_t len;        /* flat positions per plane: (Ho - 1) Wq + Wo */
    int64_t nchunk;     /* work items per plane */
    int64_t cs, ps, Wr; /* input strides: channel, plane, row */
    int64_t sd, sh;     /* strides along d and h */
};

/* One vector from p, unaligned. */
static inline __attribute__((always_inline)) void ld8(v8 *v, const float *p) { *v = (v8)*(const v8u *)p; }
static inline __attribute__((always_inline)) void ld16(v16 *v, const float *p) { *v = (v16)*(const v16u *)p; }

/* dst[c * ds + i] (c < nco, i < nv * VL) = bias + sum over ci, taps of w * x at positions in + i;
 * dst is the output itself (ds: its channel stride) or the staging tile (ds = TILE_MAX). cob and
 * nv are compile-time constants after inlining, so acc stays in registers. */
#define DEFINE_TILE(NAME, VT, VL, LD, BCAST)                                                                          \
    static inline __attribute__((always_inline)) void NAME(const struct fjob *j, const float *in, const float *wb, \
                                                           const float *bias, int nco, float *dst, int64_t ds,     \
                                                           const float *rdst, const int cob, const int nv)         \
    {                                                                                                          \
        VT acc[8][NVMAX] = {{{0}}};                                                                                    \
        _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++) {                                                \
            const float bc = bias && c < nco ? bias[c] : 0.0f;                                                 \
            _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) acc[c][v] = BCAST(bc);                        \
        }                                                                                                      \
        const float *w = wb;                                                                                   \
        const int T = j->T;                                                                                    \
        const int64_t *off = j->off;                                                                           \
        for (int64_t ci = 0; ci < j->Ci; ci++) {                                                               \
            const float *xc = in + ci * j->cs;                                                                 \
            for (int t = 0; t < T; t++, w += cob) {                                                            \
                const float *r = xc + off[t];                                                                  \
                VT x[NVMAX];                                                                                   \
                _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) LD(&x[v], r + v * VL);             \
                _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++) {                                        \
                    const VT wc = BCAST(w[c]);                                                              \
                    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) acc[c][v] += x[v] * wc;               \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        if (rdst) /* the residual, added as the add op would: (conv result) + r */                             \
            _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++)                                              \
                if (c < nco)                                                                                   \
                    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) {                                     \
                        VT r;                                                                                  \
                        LD(&r, rdst + c * ds + v * VL);                                                        \
                        acc[c][v] += r;                                                                        \
                    }                                                                                          \
        _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++)                                                  \
            if (c < nco)                                                                                       \
                _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) memcpy(dst + c * ds + v * VL, &acc[c][v], sizeof(VT)); \
    }
DEFINE_TILE(tile8, v8, 8, ld8, bc8)
DEFINE_TILE(tile16, v16, 16, ld16, bc16)

/* One output position, scalar (the in-place 1x1x1 tail). */
static void point(const struct fjob *j, const float *in, const float *wb, const float *bias, int nco, float *out, int cob)
{
    float acc[8];
    for (int c = 0; c < cob; c++) acc[c] = bias && c < nco ? bias[c] : 0.0f;
    const float *w = wb;
    for (int64_t ci = 0; ci < j->Ci; ci++)
        for (int t = 0; t < j->T; t++, w += cob)
            for (int c = 0; c < cob; c++) acc[c] += in[ci * j->cs + j->off[t]] * w[c];
    for (int c = 0; c < cob; c++) out[c * TILE_MAX] = acc[c];
}

/* Copy the n positions of a tile starting at flat position o into the output plane yb of the
 * block (nco channels), dropping the positions past each row's Wo; adds the residual if any. */
static void store(const struct fjob *j, float *yb, int64_t o, int n, int nco, const float *out)
{
    const int64_t ys = j->Do * j->Ho * j->Wo;
    int64_t row = o / j->Wq, ox = o % j->Wq;
    for (int done = 0; done < n; row++, ox = 0) {
        const int m = (int)(n - done < j->Wq - ox ? n - done : j->Wq - ox);
        if (ox < j->Wo) {
            const size_t valid = (size_t)(m < j->Wo - ox ? m : j->Wo - ox);
            for (int c = 0; c < nco; c++) {
                float *d = yb + c * ys + row * j->Wo + ox;
                const float *s = out + c * TILE_MAX + done;
                if (!j->res) {
                    memcpy(d, s, valid * sizeof *out);
                    continue;
                }
                const float *r = j->res + (d - j->y);
                for (size_t i = 0; i < valid; i++) d[i] = s[i] + r[i];
            }
        }
        done += m;
    }
}

/* One work item with tiles of nv vectors of VL floats. */
#define DEFINE_ITEM(NAME, TILE, VL)                                                                            \
    static inline __attribute__((always_inline)) void NAME(const struct fjob *j, int64_t item, const int cob) \
    {                                                                                                          \
        int64_t ch, od, b, n;                                                                                  \
        if (j->bfast) /* (n, od, chunk, block) */                                                              \
            b = item % j->nb, ch = (item / j->nb) % j->nchunk, od = (item / (j->nb * j->nchunk)) % j->Do,      \
            n = item / (j->nb * j->nchunk * j->Do);                                                            \
        else /* (n, block, od, chunk) */                                                                       \
            ch = item % j->nchunk, od = (item / j->nchunk) % j->Do, b = (item / (j->nchunk * j->Do)) % j->nb,  \
            n = item / (j->nchunk * j->Do * j->nb);                                                            \
        const int64_t co0 = b * cob;                                                                           \
        const int nco = (int)(j->Co - co0 < cob ? j->Co - co0 : cob);                                          \
        const float *wb = j->wp + b * j->Ci * j->T * cob;                                                      \
        const float *bias = j->bias ? j->bias + co0 : NULL;                                                    \
        float *yb = j->y + ((n * j->Co + co0) * j->Do + od) * j->Ho * j->Wo;                                  \
        int64_t o0, o1;                                                                                        \
        const float *in = j->xp + n * j->Ci * j->cs + od * j->sd * j->ps;                                      \
        if (!j->rows) {                                                                                        \
            o0 = ch * CHUNK, o1 = o0 + CHUNK < j->len ? o0 + CHUNK : j->len;                                   \
            in += o0;                                                                                          \
        } else {                                                                                               \
            o0 = ch * j->Wq, o1 = o0 + j->Wo;                                                                  \
            in += ch * j->sh * j->Wr;                                                                          \
        }                                                                                                      \
        const int64_t ys = j->Do * j->Ho * j->Wo;                                                              \
        const float *rb = j->res ? j->res + (yb - j->y) : NULL; /* the residual's plane */                     \
        float out[8 * TILE_MAX] __attribute__((aligned(64)));                                                  \
        int64_t o = o0;                                                                                        \
        for (; o + NVMAX * VL <= o1; o += NVMAX * VL) {                                                        \
            const int64_t oh = o / j->Wq, ox = o % j->Wq;                                                      \
            if (ox + NVMAX * VL <= j->Wo) { /* within one row's valid columns: straight to y */                \
                TILE(j, in + (o - o0), wb, bias, nco, yb + oh * j->Wo + ox, ys, rb ? rb + oh * j->Wo + ox : NULL, cob, NVMAX); \
                continue;                                                                                      \
            }                                                                                                  \
            TILE(j, in + (o - o0), wb, bias, nco, out, TILE_MAX, NULL, cob, NVMAX);                            \
            store(j, yb, o, NVMAX * VL, nco, out);                                                             \
        }                                                                                                      \
        for (; o < o1; o += VL) {                                                                              \
            const int m = (int)(o1 - o < VL ? o1 - o : VL);                                                    \
            if (m < VL && j->exact) {                                                                          \
                for (; o < o1; o++) point(j, in + (o - o0), wb, bias, nco, out, cob), store(j, yb, o, 1, nco, out); \
                break;                                                                                         \
            }                                                                                                  \
            TILE(j, in + (o - o0), wb, bias, nco, out, TILE_MAX, NULL, cob, 1);                                \
            store(j, yb, o, m, nco, out);                                                                      \
        }                                                                                                      \
    }
DEFINE_ITEM(item8, tile8, 8)
DEFINE_ITEM(item16, tile16, 16)

/* Rows that are a whole number of vectors wide (stride 1; "vec" mode): the work item's output
 * vectors (vector k of a plane: row k / (Wo / VL), column k % (Wo / VL) * VL) are taken NVMAX at a
 * time, wherever they lie, so no tile computes the Wr - Wo dropped columns of the flat runs (6%
 * of the work for 32-wide rows, 11% for 16) and every tile is stored straight to y. Each output
 * is the same sum in the same order as in the flat runs: the same bytes. io / oo: the input and
 * output offsets of the tile's vectors. */
#define DEFINE_TILEV(NAME, VT, VL, LD, BCAST)                                                                          \
    static inline __attribute__((always_inline)) void NAME(const struct fjob *j, const float *in, const int64_t *io, \
                                                           const float *wb, const float *bias, int nco, float *dst, \
                                                           const int64_t *oo, int64_t ds, const float *rdst,       \
                                                           const int cob, const int nv)                            \
    {                                                                                                          \
        VT acc[8][NVMAX] = {{{0}}};                                                                            \
        int64_t i0 = io[0], i1 = nv > 1 ? io[1] : 0, i2 = nv > 2 ? io[2] : 0;                                  \
        const float *p0 = in + i0, *p1 = in + i1, *p2 = in + i2;                                               \
        _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++) {                                                \
            const float bc = bias && c < nco ? bias[c] : 0.0f;                                                 \
            _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) acc[c][v] = BCAST(bc);                        \
        }                                                                                                      \
        const float *w = wb;                                                                                   \
        const int T = j->T;                                                                                    \
        const int64_t *off = j->off;                                                                           \
        for (int64_t ci = 0; ci < j->Ci; ci++) {                                                               \
            const int64_t cb = ci * j->cs;                                                                     \
            for (int t = 0; t < T; t++, w += cob) {                                                            \
                const int64_t o = cb + off[t];                                                                 \
                VT x[NVMAX];                                                                                   \
                LD(&x[0], p0 + o);                                                                             \
                if (nv > 1) LD(&x[1], p1 + o);                                                                 \
                if (nv > 2) LD(&x[2], p2 + o);                                                                 \
                _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++) {                                        \
                    const VT wc = BCAST(w[c]);                                                                 \
                    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) acc[c][v] += x[v] * wc;               \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
        if (rdst)                                                                                              \
            _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++)                                              \
                if (c < nco)                                                                                   \
                    _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) {                                     \
                        VT r;                                                                                  \
                        LD(&r, rdst + c * ds + oo[v]);                                                         \
                        acc[c][v] += r;                                                                        \
                    }                                                                                          \
        _Pragma("GCC unroll 8") for (int c = 0; c < cob; c++)                                                  \
            if (c < nco)                                                                                       \
                _Pragma("GCC unroll 3") for (int v = 0; v < nv; v++) memcpy(dst + c * ds + oo[v], &acc[c][v], sizeof(VT)); \
    }
DEFINE_TILEV(tilev8, v8, 8, ld8, bc8)
DEFINE_TILEV(tilev16, v16, 16, ld16, bc16)

/* One work item of vec mode: vectors ch * CHUNK / VL .. of its plane, in tiles of NVMAX. */
#define DEFINE_ITEMV(NAME, TILE, VL)                                                                           \
    static inline __attribute__((always_inline)) void NAME(const struct fjob *j, int64_t item, const int cob) \
    {                                                                                                          \
        int64_t ch, od, b, n;                                                                                  \
        if (j->bfast)                                                                                          \
            b = item % j->nb, ch = (item / j->nb) % j->nchunk, od = (item / (j->nb * j->nchunk)) % j->Do,      \
            n = item / (j->nb * j->nchunk * j->Do);                                                            \
        else                                                                                                   \
            ch = item % j->nchunk, od = (item / j->nchunk) % j->Do, b = (item / (j->nchunk * j->Do)) % j->nb,  \
            n = item / (j->nchunk * j->Do * j->nb);                                                            \
        const int64_t co0 = b * cob;                                                                           \
        const int nco = (int)(j->Co - co0 < cob ? j->Co - co0 : cob);                                          \
        const float *wb = j->wp + b * j->Ci * j->T * cob;                                                      \
        const float *bias = j->bias ? j->bias + co0 : NULL;                                                    \
        const int64_t ys = j->Do * j->Ho * j->Wo;                                                              \
        float *yb = j->y + ((n * j->Co + co0) * j->Do + od) * j->Ho * j->Wo;                                  \
        const float *rb = j->res ? j->res + (yb - j->y) : NULL;                                                \
        const float *in = j->xp + n * j->Ci * j->cs + od * j->sd * j->ps;                                      \
        const int64_t vpr = j->Wo / VL, nvec = j->Ho * vpr, per = CHUNK / VL;                                  \
        const int64_t k1 = (ch + 1) * per < nvec ? (ch + 1) * per : nvec;                                      \
        for (int64_t k = ch * per; k < k1; k += NVMAX) {                                                       \
            const int nv = (int)(k1 - k < NVMAX ? k1 - k : NVMAX);                                             \
            int64_t io[NVMAX] = {0}, oo[NVMAX] = {0};                                                          \
            for (int v = 0; v < nv; v++) {                                                                     \
                const int64_t row = (k + v) / vpr, col = (k + v) % vpr * VL;                                   \
                io[v] = row * j->Wr + col, oo[v] = row * j->Wo + col;                                          \
            }                                                                                                  \
            if (nv == NVMAX) TILE(j, in, io, wb, bias, nco, yb, oo, ys, rb, cob, NVMAX);                       \
            else if (nv == 2) TILE(j, in, io, wb, bias, nco, yb, oo, ys, rb, cob, 2);                          \
            else TILE(j, in, io, wb, bias, nco, yb, oo, ys, rb, cob, 1);                                       \
        }                                                                                                      \
    }
DEFINE_ITEMV(itemv8, tilev8, 8)
DEFINE_ITEMV(itemv16, tilev16, 16)

VP_NN_ISA_RANGES(flatv_range, ((const struct fjob *)ctx)->vl == 16 ? itemv16(ctx, (int64_t)i, 8) : itemv8(ctx, (int64_t)i, 8),
                 itemv8(ctx, (int64_t)i, 4), itemv8(ctx, (int64_t)i, 4))

/* The work-item loop per instruction set: AVX-512 takes 8 output channels per block, the others 4. */
VP_NN_ISA_RANGES(flat_range, item16(ctx, (int64_t)i, 8), item8(ctx, (int64_t)i, 4), item8(ctx, (int64_t)i, 4))

int vp_nn_flat_conv_applies(const vp_tensor *w, const vp_conv3d_params *p)
{
    return (p->stride[2] == 1 && p->stride[1] == 1) || p->stride[2] == 2;
}

struct pad_job {
    const float *x;
    float *xp;
    int64_t D, H, W, Dp, Hp, Wr, pd, ph, pw;
    int split; /* each padded row stored as its even columns, then its odd ones */
};

/* Item = one padded (n, c, dp) plane: zeros around, the input plane inside. */
static void pad_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct pad_job *p = ctx;
    for (uint64_t i = begin; i < end; i++) {
        const int64_t dp = (int64_t)i % p->Dp, nc = (int64_t)i / p->Dp, d = dp - p->pd;
        float *dst = p->xp + (int64_t)i * p->Hp * p->Wr;
        if (d < 0 || d >= p->D) {
            memset(dst, 0, (size_t)(p->Hp * p->Wr) * sizeof *dst);
            continue;
        }
        const float *src = p->x + (nc * p->D + d) * p->H * p->W;
        for (int64_t hp = 0; hp < p->Hp; hp++) {
            float *row = dst + hp * p->Wr;
            const int64_t h = hp - p->ph;
            if (h < 0 || h >= p->H) {
                memset(row, 0, (size_t)p->Wr * sizeof *row);
                continue;
            }
            if (p->split) { /* padded column c = w + pw goes to c / 2, or (Wr + 1) / 2 + c / 2 when odd */
                const int64_t we = (p->Wr + 1) / 2;
                const float *sr = src + h * p->W;
                memset(row, 0, (size_t)p->Wr * sizeof *row);
                /* eight at a time: the even-w four go to one half, the odd-w four to the other */
                const int64_t hE = (p->pw & 1) * we + p->pw / 2, hO = ((p->pw + 1) & 1) * we + (p->pw + 1) / 2;
                int64_t w = 0;
                for (; w + 8 <= p->W; w += 8) {
                    const v4 a = *(const v4u *)(sr + w), b = *(const v4u *)(sr + w + 4);
                    *(v4u *)(row + hE + w / 2) = __builtin_shuffle(a, b, (v4i){0, 2, 4, 6});
                    *(v4u *)(row + hO + w / 2) = __builtin_shuffle(a, b, (v4i){1, 3, 5, 7});
                }
                for (; w < p->W; w++) {
                    const int64_t c = w + p->pw;
                    row[(c & 1) * we + c / 2] = sr[w];
                }
                continue;
            }
            memset(row, 0, (size_t)p->pw * sizeof *row);
            memcpy(row + p->pw, src + h * p->W, (size_t)p->W * sizeof *row);
            memset(row + p->pw + p->W, 0, (size_t)(p->Wr - p->pw - p->W) * sizeof *row);
        }
    }
}

struct pack_job {
    const float *w; /* (Co, Ci, T) */
    float *wp;      /* (nb, Ci, T, cob) */
    int64_t Co, Ci, T;
    int cob;
};

/* Item = one block of cob output channels: wp[b][ci][t][c] = w[b*cob + c][ci][t], zero past Co;
 * written in order. */
static void pack_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct pack_job *p = ctx;
    const int64_t CT = p->Ci * p->T;
    for (uint64_t b = begin; b < end; b++) {
        float *dst = p->wp + (int64_t)b * CT * p->cob;
        const int64_t co0 = (int64_t)b * p->cob;
        for (int64_t k = 0; k < CT; k++)
            for (int c = 0; c < p->cob; c++) *dst++ = co0 + c < p->Co ? p->w[(co0 + c) * CT + k] : 0.0f;
    }
}

/* Rows shorter than 8 (a flat run computes up to twice the outputs it keeps, a strided row run
 * leaves most vector lanes empty; gathering 8-wide rows was no faster, their P no longer fits in
 * cache): the patches are gathered once into P (N, Ci * T, Do * Ho * Wo) + slack,
 * P[n][ci * T + t][o] = the input that tap t of output o reads (a contiguous run of Wo per output
 * row in the padded copy, split by parity when strided along w), and the convolution runs as a
 * 1x1x1 one over the flat volume whose input channels ci * T + t come in the order the taps are
 * summed (and the packed weights are the same floats): the same sums in the same order, so the
 * same bytes. Item = one (n, ci, t) channel of P. */
struct gather_job {
    const float *xp;
    float *P;
    const int64_t *off;
    int64_t Ci, T, Do, Ho, Wo, cs, ps, Wr, sd, sh;
};

static void gather_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct gather_job *g = ctx;
    for (uint64_t i = begin; i < end; i++) {
        const int64_t t = (int64_t)i % g->T, nci = (int64_t)i / g->T;
        const float *src = g->xp + nci * g->cs + g->off[t];
        float *dst = g->P + (int64_t)i * g->Do * g->Ho * g->Wo;
        for (int64_t od = 0; od < g->Do; od++)
            for (int64_t oh = 0; oh < g->Ho; oh++, dst += g->Wo)
                memcpy(dst, src + od * g->sd * g->ps + oh * g->sh * g->Wr, (size_t)g->Wo * sizeof *dst);
    }
}

float *vp_nn_pad_copy(const vp_tensor *x, const int pad[3], int split)
{
    const int64_t N = x->shape[0], C = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    const int64_t Dp = D + 2 * pad[0], Hp = H + 2 * pad[1], Wr = W + 2 * pad[2], total = N * C * Dp * Hp * Wr;
    float *xp = vp_malloc((size_t)(total + VP_NN_PAD_SLACK) * sizeof *xp);
    memset(xp + total, 0, VP_NN_PAD_SLACK * sizeof *xp);
    struct pad_job pj = {x->data, xp, D, H, W, Dp, Hp, Wr, pad[0], pad[1], pad[2], split};
    vp_parallel_for((uint64_t)(N * C * Dp), 0, pad_range, &pj);
    return xp;
}

int vp_nn_flat_conv3d(const vp_tensor *x, const vp_tensor *w, const vp_tensor *b, const vp_conv3d_params *p,
                      const vp_tensor *r, vp_tensor *y)
{
    const int64_t N = x->shape[0], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    const int64_t KD = w->shape[2], KH = w->shape[3], KW = w->shape[4];
    struct fjob j = {
        .bias = b ? b->data : NULL, .y = y->data, .res = r ? r->data : NULL, .s = p->stride[2],
        .Ci = x->shape[1], .Co = y->shape[1], .Do = y->shape[2], .Ho = y->shape[3], .Wo = y->shape[4],
        .sd = p->stride[0], .sh = p->stride[1], .T = (int)(KD * KH * KW),
    };
    if (vp_tensor_numel(y) == 0) return 0;
    int isa;
    vp_range_fn kernel = flat_range_pick(&isa);
    const int cob = j.cob = isa == VP_ISA_AVX512 ? 8 : 4;
    j.nb = (j.Co + cob - 1) / cob;
    const int nopad = !p->pad[0] && !p->pad[1] && !p->pad[2];
    float *xp = NULL;
    int64_t *off = vp_malloc((size_t)j.T * sizeof *off);
    if (j.T == 1 && nopad && j.s == 1 && j.sh == 1 && j.sd == 1) {
        /* 1x1x1, stride 1: one flat run over the whole volume, read in place */
        j.xp = x->data, j.exact = 1;
        j.cs = D * H * W, j.ps = 0, j.Wr = j.cs;
        j.Do = 1, j.Ho = 1, j.Wo = j.cs;
        off[0] = 0;
    } else {
        const int64_t Dp = D + 2 * p->pad[0], Hp = H + 2 * p->pad[1];
        j.Wr = W + 2 * p->pad[2], j.ps = Hp * j.Wr, j.cs = Dp * j.ps;
        j.xp = xp = vp_nn_pad_copy(x, p->pad, j.s == 2);
        for (int64_t kd = 0, t = 0; kd < KD; kd++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++) /* stride 2: column 2 ox + kw is in the even or odd half */
                    off[t++] = kd * j.ps + kh * j.Wr + (j.s == 2 ? (kw & 1 ? (j.Wr + 1) / 2 : 0) + kw / 2 : kw);
    }
    const int64_t vol = j.Do * j.Ho * j.Wo, nch = N * j.Ci * j.T;
    if (!j.exact && j.T > 1 && j.Wo < 8 && nch * vol <= ((int64_t)1 << 24)) {
        float *P = vp_malloc((size_t)(nch * vol + VP_NN_PAD_SLACK) * sizeof *P);
        memset(P + nch * vol, 0, VP_NN_PAD_SLACK * sizeof *P);
        struct gather_job g = {xp, P, off, j.Ci, j.T, j.Do, j.Ho, j.Wo, j.cs, j.ps, j.Wr, j.sd, j.sh};
        vp_parallel_for((uint64_t)nch, 0, gather_range, &g);
        free(xp);
        j.xp = xp = P;
        j.Ci *= j.T, j.T = 1, off[0] = 0;
        j.cs = j.Wr = vol, j.ps = 0;
        j.Do = 1, j.Ho = 1, j.Wo = vol, j.s = j.sh = 1, j.sd = 1;
    }
    j.off = off;
    /* Runs: flat planes, or one per output row when the stride along w is 2 or the rows are
     * wide enough for whole main tiles (no dropped columns, every main tile stored directly). */
    const int64_t tw = 3 * (cob == 8 ? 16 : 8);
    j.rows = j.s == 2 || (!j.exact && (j.Wo % tw == 0 || j.Wo >= 4 * tw));
    /* vec mode: stride 1, padded input, rows a whole number of vectors wide, not already
     * whole main tiles */
    const int64_t vl = j.vl = cob == 8 && j.Wo % 16 == 0 ? 16 : 8; /* AVX-512, rows of 8 x odd: 8 x 8 x 3 tiles */
    const int vec = !j.rows && !j.exact && j.sd == 1 && j.sh == 1 && j.s == 1 && j.Wo % vl == 0;
    if (vec) {
        j.Wq = j.Wo;
        j.len = j.Ho * j.Wo;
        j.nchunk = (j.Ho * (j.Wo / vl) + CHUNK / vl - 1) / (CHUNK / vl);
    } else if (!j.rows) {
        j.Wq = j.Wr;
        j.len = (j.Ho - 1) * j.Wq + j.Wo;
        j.nchunk = (j.len + CHUNK - 1) / CHUNK;
    } else {
        j.Wq = j.Wo;
        j.len = j.Ho * j.Wo;
        j.nchunk = j.Ho;
    }

    /* 1x1x1 and strided convolutions do few multiply-adds per input float, so the input is the
     * traffic: the blocks of one chunk run back to back and its input is read from memory once,
     * not once per block (the encoders' stride-2 convs ran 1.3-1.8x faster this way; stride-1
     * 3x3x3 convs gained nothing and keep one block's weights in cache instead) */
    j.bfast = j.T == 1 || j.s == 2 || j.sh > 1 || j.sd > 1;

    float *wp = vp_malloc((size_t)(j.nb * j.Ci * j.T * cob) * sizeof *wp);
    vp_parallel_for((uint64_t)j.nb, 1, pack_range, &(struct pack_job){w->data, wp, j.Co, j.Ci, j.T, cob});
    j.wp = wp;

    if (vec) kernel = flatv_range_pick(&isa);
    vp_parallel_for((uint64_t)(N * j.nb * j.Do * j.nchunk), 1, kernel, &j);
    free(wp);
    free(off);
    free(xp);
    return 0;
}
