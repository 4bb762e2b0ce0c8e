/* nn_ops_fast_elem.c - the CPU backend's multi-threaded norms, activations, add, upsampling and
 * channel softmax/argmax (see nn_ops_fast_elem.h for the determinism rules). Each op does the
 * reference's arithmetic per element; only the split of the work (and, for the norms, the order
 * of the f64 statistics sums) differs, and that split depends on the shapes alone. */
#include "nn_ops_fast_elem.h"
#include "nn_backend.h"
#include "nn_isa.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK ((uint64_t)1 << 15) /* elements per work item of the element-wise ops */
#define NBLK ((int64_t)1 << 15)   /* elements per statistics block of the norms */

/* ---- GroupNorm / InstanceNorm */

typedef float v4fu __attribute__((vector_size(4 * sizeof(float)), aligned(4))); /* unaligned access */
typedef float v4f __attribute__((vector_size(4 * sizeof(float))));
typedef int v4i __attribute__((vector_size(4 * sizeof(int))));
typedef double v4d __attribute__((vector_size(4 * sizeof(double))));

struct gn_job {
    const float *x;
    float *y;
    const float *gamma, *beta;
    int64_t S, cpg, m, nblk; /* voxels per channel, channels per group, elements per group, blocks per group */
    double *sum, *m2;        /* per block: sum, and sum of squared deviations from the block's mean */
    double *mean, *rstd;     /* per (n, group) */
    int64_t groups;
    int pass;                /* 0 block statistics, 1 normalise */
    int relu;                /* 1: relu fused into the normalising pass */
};

/* Sum of p[0..n) in f64 (eight lanes, combined in a fixed tree), then the sum of squared
 * deviations from the block's own mean (the block is re-read from cache, not memory). */
static inline __attribute__((always_inline)) void block_stats(const float *p, int64_t n, double *sum, double *m2)
{
    v4d a = {0}, b = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        a += __builtin_convertvector(*(const v4fu *)(p + i), v4d);
        b += __builtin_convertvector(*(const v4fu *)(p + i + 4), v4d);
    }
    double s = ((a[0] + b[0]) + (a[2] + b[2])) + ((a[1] + b[1]) + (a[3] + b[3]));
    for (int64_t k = i; k < n; k++) s += p[k];
    const double mean = s / (double)n;
    const v4d mv = {mean, mean, mean, mean};
    a = b = (v4d){0};
    for (i = 0; i + 8 <= n; i += 8) {
        v4d d0 = __builtin_convertvector(*(const v4fu *)(p + i), v4d) - mv;
        v4d d1 = __builtin_convertvector(*(const v4fu *)(p + i + 4), v4d) - mv;
        a += d0 * d0, b += d1 * d1;
    }
    double q = ((a[0] + b[0]) + (a[2] + b[2])) + ((a[1] + b[1]) + (a[3] + b[3]));
    for (int64_t k = i; k < n; k++) q += (p[k] - mean) * (p[k] - mean);
    *sum = s, *m2 = q;
}

/* y[0..n) = (x - mean) * scale + shift in f32, four at a time; then relu (the relu op's
 * comparison: NaN and -0.0 pass) when asked. */
static inline __attribute__((always_inline)) void normalise(const float *x, float *y, int64_t n, float mean, float scale, float shift,
                                                            int relu)
{
    const v4f mv = {mean, mean, mean, mean}, sc = {scale, scale, scale, scale}, sh = {shift, shift, shift, shift};
    const v4f zero = {0};
    int64_t i = 0;
    if (relu) {
        for (; i + 4 <= n; i += 4) {
            const v4f v = (*(const v4fu *)(x + i) - mv) * sc + sh;
            *(v4fu *)(y + i) = (v4f)((v4i)v & ~(v < zero));
        }
        for (; i < n; i++) {
            const float v = (x[i] - mean) * scale + shift;
            y[i] = v < 0 ? 0.0f : v;
        }
        return;
    }
    for (; i + 4 <= n; i += 4) *(v4fu *)(y + i) = (*(const v4fu *)(x + i) - mv) * sc + sh;
    for (; i < n; i++) y[i] = (x[i] - mean) * scale + shift;
}

/* One block: its statistics (pass 0) or its normalised values (pass 1). Compiled for each
 * instruction-set variant without fused multiply-adds (the same lane arithmetic: the same bytes). */
static inline __attribute__((always_inline)) void gn_block(const struct gn_job *j, uint64_t it)
{
    {
        const int64_t ng = (int64_t)it / j->nblk, blk = (int64_t)it % j->nblk;
        const int64_t i0 = blk * NBLK, i1 = i0 + NBLK < j->m ? i0 + NBLK : j->m;
        const float *xs = j->x + ng * j->m;
        if (j->pass == 0) {
            block_stats(xs + i0, i1 - i0, &j->sum[it], &j->m2[it]);
            return;
        }
        float *ys = j->y + ng * j->m;
        const double rstd = j->rstd[ng];
        const float mean = (float)j->mean[ng];
        const int64_t c0 = (ng % j->groups) * j->cpg; /* first channel of the group */
        for (int64_t i = i0; i < i1;) {
            const int64_t cl = i / j->S, cend = (cl + 1) * j->S < i1 ? (cl + 1) * j->S : i1;
            const double ga = j->gamma ? j->gamma[c0 + cl] : 1.0;
            const float be = j->beta ? j->beta[c0 + cl] : 0.0f;
            normalise(xs + i, ys + i, cend - i, mean, (float)(rstd * ga), be, j->relu);
            i = cend;
        }
    }
}

VP_NN_ISA_RANGES_EXACT(gn_range, gn_block(ctx, i), gn_block(ctx, i), gn_block(ctx, i))

static int gn_run(const char *op, const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                  int relu, vp_tensor *y)
{
    if (vp_nn_check_norm(op, x, groups, gamma, beta, y)) return -1;
    const int64_t N = x->shape[0], C = x->shape[1], S = x->shape[2] * x->shape[3] * x->shape[4];
    const int64_t cpg = C / groups, m = cpg * S, ngr = N * groups;
    if (ngr == 0 || m == 0) return vp_nn_ref_group_norm(x, groups, eps, gamma, beta, y);
    struct gn_job j = {x->data, y->data, NULL, NULL, S, cpg, m, (m + NBLK - 1) / NBLK, NULL, NULL, NULL, NULL, groups, 0, relu};
    const uint64_t items = (uint64_t)(ngr * j.nblk);
    j.sum = vp_malloc(items * sizeof *j.sum);
    j.m2 = vp_malloc(items * sizeof *j.m2);
    j.mean = vp_malloc((size_t)ngr * sizeof *j.mean);
    j.rstd = vp_malloc((size_t)ngr * sizeof *j.rstd);
    int isa;
    vp_parallel_for(items, 1, gn_range_pick(&isa), &j);
    /* Chan et al.: M2 = sum of the blocks' M2 + n_b (mean_b - mean)^2, in block order */
    for (int64_t g = 0; g < ngr; g++) {
        const double *bs = j.sum + g * j.nblk, *bq = j.m2 + g * j.nblk;
        double s = 0, q = 0;
        for (int64_t b = 0; b < j.nblk; b++) s += bs[b];
        const double mean = s / (double)m;
        for (int64_t b = 0; b < j.nblk; b++) {
            const int64_t nb = b + 1 < j.nblk ? NBLK : m - b * NBLK;
            const double d = bs[b] / (double)nb - mean;
            q += bq[b] + (double)nb * d * d;
        }
        j.mean[g] = mean;
        j.rstd[g] = 1.0 / sqrt(q / (double)m + (double)eps);
    }
    j.pass = 1;
    j.gamma = gamma ? gamma->data : NULL;
    j.beta = beta ? beta->data : NULL;
    vp_parallel_for(items, 1, gn_range_pick(&isa), &j);
    free(j.sum), free(j.m2), free(j.mean), free(j.rstd);
    return 0;
}

int vp_nn_fast_group_norm(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                          vp_tensor *y)
{
    return gn_run("group_norm", x, groups, eps, gamma, beta, 0, y);
}

int vp_nn_fast_group_norm_relu(const vp_tensor *x, int groups, float eps, const vp_tensor *gamma, const vp_tensor *beta,
                               vp_tensor *y)
{
    if (x == y) return vp_error("group_norm_relu: the output must not be the input");
    return gn_run("group_norm_relu", x, groups, eps, gamma, beta, 1, y);
}

/* ---- element-wise: relu, leaky_relu, add */

struct ew_job {
    const float *a, *b;
    float *y;
    float slope;
    uint64_t n;
    int op; /* 0 relu, 1 leaky_relu, 2 add */
};

/* Four at a time (SSE2 vectors: comparisons on wider generic vectors are not vectorised without
 * AVX) with the reference's comparison per lane (NaN and -0.0 pass relu unchanged, as
 * `a < 0 ? 0 : a` does); the same bytes as the reference, in place or not. */
static void ew_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct ew_job *j = ctx;
    const uint64_t i0 = begin * CHUNK, i1 = end * CHUNK < j->n ? end * CHUNK : j->n;
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    const float s = j->slope;
    const v4f sv = {s, s, s, s}, zero = {0};
    uint64_t i = i0;
    if (j->op == 0) {
        for (; i + 4 <= i1; i += 4) {
            const v4f v = *(const v4fu *)(a + i);
            *(v4fu *)(y + i) = (v4f)((v4i)v & ~(v < zero));
        }
        for (; i < i1; i++) y[i] = a[i] < 0 ? 0.0f : a[i]; /* NaN passes, as torch.relu */
    } else if (j->op == 1) {
        for (; i + 4 <= i1; i += 4) {
            const v4f v = *(const v4fu *)(a + i);
            const v4i pos = v > zero;
            *(v4fu *)(y + i) = (v4f)(((v4i)v & pos) | ((v4i)(v * sv) & ~pos));
        }
        for (; i < i1; i++) y[i] = a[i] > 0 ? a[i] : a[i] * s;
    } else {
        for (; i + 4 <= i1; i += 4) *(v4fu *)(y + i) = *(const v4fu *)(a + i) + *(const v4fu *)(b + i);
        for (; i < i1; i++) y[i] = a[i] + b[i];
    }
}

static void ew_run(struct ew_job *j)
{
    vp_parallel_for((j->n + CHUNK - 1) / CHUNK, 1, ew_range, j);
}

int vp_nn_fast_relu(const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("relu", "input", x) || vp_nn_check_out("relu", y, x->shape)) return -1;
    ew_run(&(struct ew_job){x->data, NULL, y->data, 0, (uint64_t)vp_tensor_numel(x), 0});
    return 0;
}

int vp_nn_fast_leaky_relu(const vp_tensor *x, float slope, vp_tensor *y)
{
    if (vp_nn_check_act("leaky_relu", "input", x) || vp_nn_check_out("leaky_relu", y, x->shape)) return -1;
    ew_run(&(struct ew_job){x->data, NULL, y->data, slope, (uint64_t)vp_tensor_numel(x), 1});
    return 0;
}

int vp_nn_fast_add(const vp_tensor *a, const vp_tensor *b, vp_tensor *y)
{
    /* the reference does the checks (and the messages); it runs only when they fail */
    if (vp_nn_check_act("add", "a", a) || vp_nn_check_act("add", "b", b) || !vp_tensor_same_shape(a, b) ||
        vp_nn_check_out("add", y, a->shape))
        return vp_nn_ref_add(a, b, y);
    ew_run(&(struct ew_job){a->data, b->data, y->data, 0, (uint64_t)vp_tensor_numel(a), 2});
    return 0;
}

/* ---- trilinear x2 upsampling */

/* As the reference's lin_src (PyTorch's area_pixel_compute_source_index, scale 2). */
static void lin_src(int64_t o, int64_t in, int64_t *i0, int64_t *i1, float *l0, float *l1)
{
    float src = 0.5f * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int64_t)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = src - (float)*i0;
    *l0 = 1.0f - *l1;
}

struct up_job {
    const float *x;
    float *y;
    int64_t D, H, W, Do, Ho, Wo;
    const int64_t *hi, *wi; /* per output row / column: the two source indices */
    const float *hl, *wl;   /* and their weights */
    double *scratch;        /* per worker: 2 * H * Wo doubles */
};

/* Item = one output plane (n, c, od). The reference computes, per output voxel,
 *   a0 (b0 X(d0,h0) + b1 X(d0,h1)) + a1 (b0 X(d1,h0) + b1 X(d1,h1)),  X(d,h)[ow] = c0 x[d,h,w0] + c1 x[d,h,w1]
 * in f64. Here X is computed once per source row of the two source planes (not four times per
 * output row) and the rest row by row over plain arrays; the same operations in the same order,
 * so the same bytes. */
static void up_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct up_job *j = ctx;
    const int64_t Wo = j->Wo;
    double *X0 = j->scratch + (int64_t)worker * 2 * j->H * Wo, *X1 = X0 + j->H * Wo;
    for (uint64_t it = begin; it < end; it++) {
        const int64_t od = (int64_t)it % j->Do, nc = (int64_t)it / j->Do;
        int64_t d0, d1;
        float a0, a1;
        lin_src(od, j->D, &d0, &d1, &a0, &a1);
        for (int p = 0; p < 2; p++) {
            const float *pl = j->x + (nc * j->D + (p ? d1 : d0)) * j->H * j->W;
            double *X = p ? X1 : X0;
            for (int64_t h = 0; h < j->H; h++)
                for (int64_t ow = 0; ow < Wo; ow++) {
                    const float *r = pl + h * j->W;
                    X[h * Wo + ow] = (double)j->wl[2 * ow] * r[j->wi[2 * ow]] + (double)j->wl[2 * ow + 1] * r[j->wi[2 * ow + 1]];
                }
        }
        float *yr = j->y + (int64_t)it * j->Ho * Wo;
        for (int64_t oh = 0; oh < j->Ho; oh++, yr += Wo) {
            const double b0 = j->hl[2 * oh], b1 = j->hl[2 * oh + 1], da0 = a0, da1 = a1;
            const double *restrict x00 = X0 + j->hi[2 * oh] * Wo, *restrict x01 = X0 + j->hi[2 * oh + 1] * Wo;
            const double *restrict x10 = X1 + j->hi[2 * oh] * Wo, *restrict x11 = X1 + j->hi[2 * oh + 1] * Wo;
            for (int64_t ow = 0; ow < Wo; ow++)
                yr[ow] = (float)(da0 * (b0 * x00[ow] + b1 * x01[ow]) + da1 * (b0 * x10[ow] + b1 * x11[ow]));
        }
    }
}

int vp_nn_fast_upsample_trilinear2x(const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("upsample_trilinear2x", "input", x)) return -1;
    int64_t os[5] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3], 2 * x->shape[4]};
    if (vp_nn_check_out("upsample_trilinear2x", y, os)) return -1;
    if (vp_tensor_numel(y) == 0) return 0;
    struct up_job j = {x->data, y->data, x->shape[2], x->shape[3], x->shape[4], os[2], os[3], os[4], NULL, NULL, NULL, NULL, NULL};
    j.scratch = vp_malloc((size_t)(vp_parallel_workers() * 2 * j.H * os[4]) * sizeof *j.scratch);
    int64_t *hi = vp_malloc((size_t)(2 * (os[3] + os[4])) * sizeof *hi);
    float *hl = vp_malloc((size_t)(2 * (os[3] + os[4])) * sizeof *hl);
    for (int64_t o = 0; o < os[3]; o++) lin_src(o, j.H, &hi[2 * o], &hi[2 * o + 1], &hl[2 * o], &hl[2 * o + 1]);
    int64_t *wi = hi + 2 * os[3];
    float *wl = hl + 2 * os[3];
    for (int64_t o = 0; o < os[4]; o++) lin_src(o, j.W, &wi[2 * o], &wi[2 * o + 1], &wl[2 * o], &wl[2 * o + 1]);
    j.hi = hi, j.hl = hl, j.wi = wi, j.wl = wl;
    vp_parallel_for((uint64_t)(os[0] * os[1] * os[2]), 1, up_range, &j);
    free(hi), free(hl), free(j.scratch);
    return 0;
}

/* ---- softmax / argmax over channels */

struct ch_job {
    const float *x;
    float *y;
    int32_t *out;
    int64_t C, S, nchunk; /* chunks of CHUNK voxels per batch item */
};

static void smax_range(void *ctx, uint64_t begin, uint64_t end, int worker)
{
    const struct ch_job *j = ctx;
    const int64_t C = j->C, S = j->S;
    for (uint64_t it = begin; it < end; it++) {
        const int64_t n = (int64_t)it / j->nchunk, v0 = ((int64_t)it % j->nchunk) * (int64_t)CHUNK;
        const int64_t v1 = v0 + (int64_t)CHUNK < S ? v0 + (int64_t)CHUNK : S;
        for (int64_t v = v0; v < v1; v++) {
            const float *xp = j->x + n * C * S + v;
            if (j->out) {
                int32_t best = 0;
                for (int64_t c = 1; c < C; c++)
                    if (xp[c * S] > xp[best * S]) best = (int32_t)c; /* strict: the first maximum wins */
                j->out[n * S + v] = best;
                continue;
            }
            float *yp = j->y + n * C * S + v;
            float mx = -INFINITY;
            for (int64_t c = 0; c < C; c++) mx = xp[c * S] > mx ? xp[c * S] : mx;
            double sum = 0;
            for (int64_t c = 0; c < C; c++) sum += exp((double)xp[c * S] - mx);
            for (int64_t c = 0; c < C; c++) yp[c * S] = (float)(exp((double)xp[c * S] - mx) / sum);
        }
    }
}

static void ch_run(const vp_tensor *x, float *y, int32_t *out)
{
    struct ch_job j = {x->data, y, out, x->shape[1], x->shape[2] * x->shape[3] * x->shape[4], 0};
    j.nchunk = (j.S + (int64_t)CHUNK - 1) / (int64_t)CHUNK;
    vp_parallel_for((uint64_t)(x->shape[0] * j.nchunk), 1, smax_range, &j);
}

int vp_nn_fast_softmax_c(const vp_tensor *x, vp_tensor *y)
{
    if (vp_nn_check_act("softmax_c", "input", x) || vp_nn_check_out("softmax_c", y, x->shape)) return -1;
    ch_run(x, y->data, NULL);
    return 0;
}

int vp_nn_fast_argmax_c(const vp_tensor *x, int32_t *out)
{
    if (vp_nn_check_act("argmax_c", "input", x)) return -1;
    ch_run(x, NULL, out);
    return 0;
}
