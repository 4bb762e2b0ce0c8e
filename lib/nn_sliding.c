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
static void extract(const vp_tensor *x, const int64_t size[3], const int64_t before[3], const vp_sw_params *p,
                    const int64_t st[3], vp_tensor *win)
{
    int64_t C = x->shape[1], D = x->shape[2], H = x->shape[3], W = x->shape[4];
    (void)size;
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

int vp_sliding_window(const vp_tensor *x, const vp_sw_params *p, vp_sw_predict_fn fn, void *ctx,
                      void (*progress)(int done, int total), vp_tensor **out)
{
    *out = NULL;
    if (x->ndim != 5 || x->shape[0] != 1 || !vp_tensor_is_contiguous(x))
        return vp_error("sliding window: input must be a contiguous (1, C, D, H, W) tensor");
    if (!(p->overlap >= 0 && p->overlap < 1)) return vp_error("sliding window: overlap %g is not in [0, 1)", p->overlap);
    if (p->gaussian && !(p->sigma_scale > 0)) return vp_error("sliding window: sigma scale %g is not positive", p->sigma_scale);
    int64_t size[3], before[3], *starts[3];
    int nst[3];
    for (int a = 0; a < 3; a++) {
        if (p->roi[a] < 1) return vp_error("sliding window: roi %d is not positive", p->roi[a]);
        int64_t n = x->shape[2 + a], diff = p->roi[a] > n ? p->roi[a] - n : 0;
        before[a] = diff / 2;
        size[a] = n + diff;
        starts[a] = vp_malloc(MAX_STARTS * sizeof(int64_t));
        nst[a] = vp_sw_starts(size[a], p->roi[a], p->overlap, starts[a], MAX_STARTS);
    }
    int64_t rvox = (int64_t)p->roi[0] * p->roi[1] * p->roi[2], S = size[0] * size[1] * size[2];
    float *map = vp_malloc((size_t)rvox * sizeof(float));
    vp_sw_importance_map(p, map);
    float *count = vp_calloc((size_t)S, sizeof(float));
    vp_tensor *win = vp_tensor_new5(1, x->shape[1], p->roi[0], p->roi[1], p->roi[2]);
    vp_tensor *acc = NULL;
    int64_t K = 0;
    int total = nst[0] * nst[1] * nst[2], done = 0, rc = -1;
    for (int i0 = 0; i0 < nst[0]; i0++)
        for (int i1 = 0; i1 < nst[1]; i1++)
            for (int i2 = 0; i2 < nst[2]; i2++) {
                int64_t st[3] = {starts[0][i0], starts[1][i1], starts[2][i2]};
                extract(x, size, before, p, st, win);
                vp_tensor *y = NULL;
                if (fn(ctx, win, &y)) goto out;
                if (y->ndim != 5 || y->shape[0] != 1 || y->shape[2] != p->roi[0] || y->shape[3] != p->roi[1] ||
                    y->shape[4] != p->roi[2] || (acc && y->shape[1] != K)) {
                    char b[96];
                    vp_error("sliding window: the network's output %s does not match the window",
                             vp_tensor_shape_str(y, b, sizeof b));
                    vp_tensor_free(&y);
                    goto out;
                }
                if (!acc) {
                    K = y->shape[1];
                    acc = vp_tensor_zeros(5, (int64_t[5]){1, K, size[0], size[1], size[2]});
                }
                for (int64_t k = 0; k < K; k++)
                    for (int64_t d = 0; d < p->roi[0]; d++)
                        for (int64_t h = 0; h < p->roi[1]; h++) {
                            const float *src = y->data + ((k * p->roi[0] + d) * p->roi[1] + h) * p->roi[2];
                            const float *m = map + (d * p->roi[1] + h) * p->roi[2];
                            float *dst = acc->data + ((k * size[0] + st[0] + d) * size[1] + st[1] + h) * size[2] + st[2];
                            for (int64_t w = 0; w < p->roi[2]; w++) {
                                float v = src[w] * m[w];
                                dst[w] += v;
                            }
                        }
                vp_tensor_free(&y);
                if (progress) progress(++done, total);
            }
    /* MONAI adds the map once per window position into the count */
    for (int i0 = 0; i0 < nst[0]; i0++)
        for (int i1 = 0; i1 < nst[1]; i1++)
            for (int i2 = 0; i2 < nst[2]; i2++)
                for (int64_t d = 0; d < p->roi[0]; d++)
                    for (int64_t h = 0; h < p->roi[1]; h++) {
                        float *dst = count + ((starts[0][i0] + d) * size[1] + starts[1][i1] + h) * size[2] + starts[2][i2];
                        const float *m = map + (d * p->roi[1] + h) * p->roi[2];
                        for (int64_t w = 0; w < p->roi[2]; w++) dst[w] += m[w];
                    }
    /* divide and crop the padding away (in place when nothing was padded) */
    int64_t D = x->shape[2], H = x->shape[3], W = x->shape[4];
    vp_tensor *res = S == D * H * W ? acc : vp_tensor_new5(1, K, D, H, W);
    for (int64_t k = 0; k < K; k++)
        for (int64_t d = 0; d < D; d++)
            for (int64_t h = 0; h < H; h++) {
                int64_t so = ((d + before[0]) * size[1] + h + before[1]) * size[2] + before[2];
                const float *a = acc->data + k * S + so, *c = count + so;
                float *o = res->data + ((k * D + d) * H + h) * W;
                for (int64_t w = 0; w < W; w++) o[w] = a[w] / c[w];
            }
    if (res != acc) vp_tensor_free(&acc);
    *out = res;
    acc = NULL;
    rc = 0;
out:
    vp_tensor_free(&acc);
    vp_tensor_free(&win);
    free(count);
    free(map);
    for (int a = 0; a < 3; a++) free(starts[a]);
    return rc;
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
