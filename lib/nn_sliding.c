/* nn_sliding.c - MONAI-style sliding-window inference (see nn_sliding.h for the steps). */
#include "nn_sliding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAX_STARTS 65536

int vp_sw_starts(int64_t size, int r, double overlap, int64_t *starts, int max)
{
    int64_t interval;
    if (r >= size) return starts[0] = 0, 1; /* padded to r: one window (interval r) */
    interval = (int64_t)((double)r * (1.0 - overlap));
    if (interval < 1) interval = 1;
    int n = 0;
    for (int64_t i = 0;; i++) {
        int64_t s = i * interval;
        if (n == max) break;
        starts[n++] = s + r > size ? size - r : s;
        if (s + r >= size) break;
    }
    return n;
}

void vp_sw_importance_map(const vp_sw_params *p, float *map)
{
    int64_t rd = p->roi[0], rh = p->roi[1], rw = p->roi[2], n = rd * rh * rw;
    if (!p->gaussian) {
        for (int64_t i = 0; i < n; i++) map[i] = 1.0f;
        return;
    }
    float *g[3];
    for (int a = 0; a < 3; a++) {
        int r = p->roi[a];
        double sigma = (double)r * p->sigma_scale;
        float denom = (float)(-2.0 * sigma * sigma);
        g[a] = vp_malloc((size_t)r * sizeof(float));
        for (int i = 0; i < r; i++) {
            float t = (float)(-(r - 1) / 2.0 + i);
            g[a][i] = expf(t * t / denom);
        }
    }
    float mn = INFINITY;
    for (int64_t d = 0; d < rd; d++)
        for (int64_t h = 0; h < rh; h++) {
            float gdh = g[0][d] * g[1][h];
            float *row = map + (d * rh + h) * rw;
            for (int64_t w = 0; w < rw; w++) {
                row[w] = gdh * g[2][w];
                if (row[w] < mn) mn = row[w];
            }
        }
    float lo = mn > 1e-3f ? mn : 1e-3f;
    for (int64_t i = 0; i < n; i++)
        if (map[i] < lo) map[i] = lo;
    for (int a = 0; a < 3; a++) free(g[a]);
}

/* Index into an axis of length n for padded coordinate i (pad `before` voxels in front); -1 for a
 * constant-padded voxel. */
static int64_t src_index(int64_t i, int64_t before, int64_t n, int mode)
{
    int64_t s = i - before;
    if (s >= 0 && s < n) return s;
    if (mode == VP_SW_PAD_CONSTANT) return -1;
    return s < 0 ? 0 : n - 1;
}

/* Copy window (starts st, size roi) of the padded image into win (1, C, rd, rh, rw). */
static void extract(const vp_tensor *x, const int64_t before[3], const vp_sw_params *p, const int64_t st[3],
                    vp_tensor *win)
{
    int64_t C = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    float *o = win->data;
    for (int64_t c = 0; c < C; c++)
        for (int64_t d = 0; d < p->roi[0]; d++) {
            int64_t sd = src_index(st[0] + d, before[0], D, p->pad_mode);
            for (int64_t h = 0; h < p->roi[1]; h++) {
                int64_t sh = src_index(st[1] + h, before[1], H, p->pad_mode);
                const float *row = sd < 0 || sh < 0 ? NULL : x->data + ((c * D + sd) * H + sh) * W;
                for (int64_t w = 0; w < p->roi[2]; w++) {
                    int64_t sw = src_index(st[2] + w, before[2], W, p->pad_mode);
                    *o++ = row && sw >= 0 ? row[sw] : p->cval;
                }
            }
        }
}

/* The band of padded rows [base, base + r0) along the first spatial axis: logits and weights. */
struct band {
    int64_t K, r0, s1, s2, base;
    float *acc;   /* (K, r0, s1, s2) */
    float *count; /* (r0, s1, s2) */
};

/* Emit the final padded rows [from, to) that lie inside the input (crop the padding away). */
static int emit_rows(const struct band *b, int64_t from, int64_t to, const int64_t before[3], const int64_t in[3],
                     float *row, vp_sw_emit_fn emit, void *ectx)
{
    const int64_t H = in[1], W = in[2], plane = b->s1 * b->s2;
    for (int64_t pr = from; pr < to; pr++) {
        int64_t d = pr - before[0];
        if (d < 0 || d >= in[0]) continue;
        int64_t slot = pr - b->base;
        for (int64_t k = 0; k < b->K; k++)
            for (int64_t h = 0; h < H; h++) {
                int64_t so = slot * plane + (h + before[1]) * b->s2 + before[2];
                const float *a = b->acc + k * b->r0 * plane + so, *c = b->count + so;
                float *o = row + (k * H + h) * W;
                for (int64_t w = 0; w < W; w++) o[w] = a[w] / c[w];
            }
        if (emit(ectx, d, b->K, row)) return -1;
    }
    return 0;
}

/* Move the band's start to row nb (> base): rows below nb are gone, the new rows at the end zeroed. */
static void band_advance(struct band *b, int64_t nb)
{
    const int64_t plane = b->s1 * b->s2, sh = nb - b->base, keep = b->r0 - sh;
    for (int64_t k = 0; k < b->K; k++) {
        float *a = b->acc + k * b->r0 * plane;
        if (keep > 0) memmove(a, a + sh * plane, sizeof(float) * (size_t)(keep * plane));
        memset(a + (keep > 0 ? keep : 0) * plane, 0, sizeof(float) * (size_t)((keep > 0 ? sh : b->r0) * plane));
    }
    if (keep > 0) memmove(b->count, b->count + sh * plane, sizeof(float) * (size_t)(keep * plane));
    memset(b->count + (keep > 0 ? keep : 0) * plane, 0, sizeof(float) * (size_t)((keep > 0 ? sh : b->r0) * plane));
    b->base = nb;
}

int vp_sliding_window_rows(const vp_tensor *x, const vp_sw_params *p, vp_sw_predict_fn fn, void *ctx,
                           void (*progress)(int done, int total), vp_sw_emit_fn emit, void *ectx)
{
    if (x->ndim != 5 || x->shape[0] != 1 || !vp_tensor_is_contiguous(x))
        return vp_error("sliding window: input must be a contiguous (1, C, D, H, W) tensor");
    if (!(p->overlap >= 0 && p->overlap < 1)) return vp_error("sliding window: overlap %g is not in [0, 1)", p->overlap);
    if (p->gaussian && !(p->sigma_scale > 0)) return vp_error("sliding window: sigma scale %g is not positive", p->sigma_scale);
    int64_t size[3], before[3], *starts[3] = {NULL, NULL, NULL};
    int nst[3];
    for (int a = 0; a < 3; a++)
        if (p->roi[a] < 1) return vp_error("sliding window: roi %d is not positive", p->roi[a]);
    for (int a = 0; a < 3; a++) {
        int64_t n = x->shape[2 + a], diff = p->roi[a] > n ? p->roi[a] - n : 0;
        before[a] = diff / 2;
        size[a] = n + diff;
        starts[a] = vp_malloc(MAX_STARTS * sizeof(int64_t));
        nst[a] = vp_sw_starts(size[a], p->roi[a], p->overlap, starts[a], MAX_STARTS);
    }
    const int64_t in[3] = {x->shape[2], x->shape[3], x->shape[4]};
    const int64_t r0 = p->roi[0], r1 = p->roi[1], r2 = p->roi[2], rvox = r0 * r1 * r2, plane = size[1] * size[2];
    float *map = vp_malloc((size_t)rvox * sizeof(float));
    vp_sw_importance_map(p, map);
    vp_tensor *win = vp_tensor_new5(1, x->shape[1], r0, r1, r2);
    struct band b = {0, r0, size[1], size[2], 0, NULL, vp_calloc((size_t)(r0 * plane), sizeof(float))};
    float *row = NULL;
    int total = nst[0] * nst[1] * nst[2], done = 0, rc = -1;
    for (int i0 = 0; i0 < nst[0]; i0++) {
        const int64_t s0 = starts[0][i0];
        if (s0 > b.base) { /* rows below s0 get no more windows: final */
            if (b.acc && emit_rows(&b, b.base, s0, before, in, row, emit, ectx)) goto out;
            band_advance(&b, s0);
        }
        for (int i1 = 0; i1 < nst[1]; i1++)
            for (int i2 = 0; i2 < nst[2]; i2++) {
                int64_t st[3] = {s0, starts[1][i1], starts[2][i2]};
                extract(x, before, p, st, win);
                vp_tensor *y = NULL;
                if (fn(ctx, win, &y)) goto out;
                if (y->ndim != 5 || y->shape[0] != 1 || y->shape[2] != r0 || y->shape[3] != r1 || y->shape[4] != r2 ||
                    (b.acc && y->shape[1] != b.K)) {
                    char sb[96];
                    vp_error("sliding window: the network's output %s does not match the window",
                             vp_tensor_shape_str(y, sb, sizeof sb));
                    vp_tensor_free(&y);
                    goto out;
                }
                if (!b.acc) {
                    b.K = y->shape[1];
                    b.acc = vp_calloc((size_t)(b.K * r0 * plane), sizeof(float));
                    row = vp_malloc((size_t)(b.K * in[1] * in[2]) * sizeof(float));
                }
                const int64_t off = s0 - b.base; /* window row 0 in the band */
                for (int64_t k = 0; k < b.K; k++)
                    for (int64_t d = 0; d < r0; d++)
                        for (int64_t h = 0; h < r1; h++) {
                            const float *src = y->data + ((k * r0 + d) * r1 + h) * r2;
                            const float *m = map + (d * r1 + h) * r2;
                            float *dst = b.acc + k * r0 * plane + (off + d) * plane + (st[1] + h) * size[2] + st[2];
                            for (int64_t w = 0; w < r2; w++) {
                                float v = src[w] * m[w];
                                dst[w] += v;
                            }
                        }
                /* MONAI adds the map once per window position into the count */
                for (int64_t d = 0; d < r0; d++)
                    for (int64_t h = 0; h < r1; h++) {
                        float *dst = b.count + (off + d) * plane + (st[1] + h) * size[2] + st[2];
                        const float *m = map + (d * r1 + h) * r2;
                        for (int64_t w = 0; w < r2; w++) dst[w] += m[w];
                    }
                vp_tensor_free(&y);
                if (progress) progress(++done, total);
            }
    }
    if (b.acc && emit_rows(&b, b.base, b.base + r0, before, in, row, emit, ectx)) goto out;
    rc = 0;
out:
    free(b.acc);
    free(b.count);
    free(row);
    vp_tensor_free(&win);
    free(map);
    for (int a = 0; a < 3; a++) free(starts[a]);
    return rc;
}

struct full_ctx {
    vp_tensor *out;
    int64_t D, H, W;
};

static int emit_full(void *ectx, int64_t d, int64_t K, const float *row)
{
    struct full_ctx *f = ectx;
    const int64_t hw = f->H * f->W;
    if (!f->out) f->out = vp_tensor_new5(1, K, f->D, f->H, f->W);
    for (int64_t k = 0; k < K; k++) memcpy(f->out->data + (k * f->D + d) * hw, row + k * hw, sizeof(float) * (size_t)hw);
    return 0;
}

int vp_sliding_window(const vp_tensor *x, const vp_sw_params *p, vp_sw_predict_fn fn, void *ctx,
                      void (*progress)(int done, int total), vp_tensor **out)
{
    *out = NULL;
    struct full_ctx f = {NULL, x->ndim == 5 ? x->shape[2] : 0, x->ndim == 5 ? x->shape[3] : 0, x->ndim == 5 ? x->shape[4] : 0};
    if (vp_sliding_window_rows(x, p, fn, ctx, progress, emit_full, &f)) {
        vp_tensor_free(&f.out);
        return -1;
    }
    *out = f.out;
    return 0;
}

vp_tensor *vp_vol_to_tensor(const vp_vol *v, uint64_t *nan_count)
{
    int64_t nx = (int64_t)v->dims[0], ny = (int64_t)v->dims[1], nz = (int64_t)v->dims[2], nc = (int64_t)v->dims[3];
    vp_tensor *t = vp_tensor_new5(1, nc, nx, ny, nz);
    uint64_t nans = 0;
    for (int64_t c = 0; c < nc; c++)
        for (int64_t z = 0; z < nz; z++)
            for (int64_t y = 0; y < ny; y++)
                for (int64_t x = 0; x < nx; x++) {
                    uint64_t i = (uint64_t)(((c * nz + z) * ny + y) * nx + x);
                    float f = v->dtype == VP_F32 ? ((const float *)v->data)[i] : (float)vp_vol_get(v, i);
                    if (isnan(f)) nans++;
                    t->data[((c * nx + x) * ny + y) * nz + z] = f;
                }
    *nan_count = nans;
    return t;
}
