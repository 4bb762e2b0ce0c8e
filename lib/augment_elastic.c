/* augment_elastic.c - elastic deformation for augment.h: batchgeneratorsv2 SpatialTransform's
 * displacement field, and sampling the input through it (scipy map_coordinates conventions:
 * order 1 for images, order 0 for labels, mode 'grid-constant' with 0 outside).
 *
 * The field: per component d, a standard normal per patch voxel (the counter-based field of
 * vp_aug_normal_at at index d * nvox + i), blurred with a Gaussian of sigma_d voxels along all three
 * axes, periodic boundary (scipy gaussian_filter1d, mode 'wrap', truncate 4: batchgeneratorsv2 blurs
 * with scipy's fourier_gaussian, also periodic), scaled so that its largest |value| is mag_d voxels,
 * then its mean removed (batchgeneratorsv2's center_deformation). Everything in double; sums over
 * fixed slices combined in order, so the bytes do not depend on the thread count. */
#include "augment.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize") /* the blur's inner loops are axpy over rows */
#endif

struct fill_ctx {
    double *f;
    uint64_t key, off;
};

static void fill_range(void *p, uint64_t b, uint64_t e, int w)
{
    const struct fill_ctx *c = p;
    vp_aug_normal_fill(c->f + b, c->key, c->off + b, e - b);
}

/* A periodic convolution as taps (shift, weight): out[i] = sum_t w[t] in[(i + shift[t]) mod L]. A
 * kernel wider than the line is folded onto L taps first (same result, fewer operations). */
struct taps {
    int n;
    int64_t *shift;
    double *w;
};

static void taps_make(double sigma, int64_t L, struct taps *t)
{
    int r = (int)(4.0 * sigma + 0.5); /* scipy's _gaussian_kernel1d, truncate 4 */
    double *k = vp_malloc((size_t)(2 * r + 1) * sizeof *k), sum = 0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = exp(-0.5 / (sigma * sigma) * i * i);
    if (2 * r + 1 <= L) {
        t->n = 2 * r + 1;
        t->shift = vp_malloc((size_t)t->n * sizeof *t->shift);
        t->w = k;
        for (int i = 0; i < t->n; i++) t->shift[i] = i - r, k[i] /= sum;
        return;
    }
    t->n = (int)L;
    t->shift = vp_malloc((size_t)L * sizeof *t->shift);
    t->w = vp_calloc((size_t)L, sizeof *t->w);
    for (int64_t j = 0; j < L; j++) t->shift[j] = j;
    for (int i = -r; i <= r; i++) t->w[((i % L) + L) % L] += k[i + r] / sum;
    free(k);
}

struct wblur_ctx {
    double *f;
    uint64_t n[3];
    int axis;
    const struct taps *t;
    double *scratch; /* per worker */
    size_t per_worker;
};

/* axis 0: rows of the volume, each a contiguous line */
static void wblur_rows(void *p, uint64_t b, uint64_t e, int wk)
{
    const struct wblur_ctx *c = p;
    int64_t L = (int64_t)c->n[0], lo = c->t->shift[0], hi = c->t->shift[c->t->n - 1];
    double *ext = c->scratch + (size_t)wk * c->per_worker, *out = ext + (L + hi - lo);
    for (uint64_t row = b; row < e; row++) {
        double *x = c->f + row * (uint64_t)L;
        for (int64_t i = lo; i < L + hi; i++) ext[i - lo] = x[((i % L) + L) % L];
        memset(out, 0, (size_t)L * sizeof *out);
        for (int k = 0; k < c->t->n; k++) {
            const double w = c->t->w[k], *src = ext + (c->t->shift[k] - lo);
            for (int64_t i = 0; i < L; i++) out[i] += w * src[i];
        }
        memcpy(x, out, (size_t)L * sizeof *out);
    }
}

/* axes 1 and 2: a plane of L rows of nx voxels (fixed z for axis 1, fixed y for axis 2), each output
 * row a weighted sum of whole input rows */
static void wblur_planes(void *p, uint64_t b, uint64_t e, int wk)
{
    const struct wblur_ctx *c = p;
    uint64_t nx = c->n[0], ny = c->n[1], L = c->n[c->axis];
    uint64_t rstride = c->axis == 1 ? nx : nx * ny;
    double *in = c->scratch + (size_t)wk * c->per_worker, *out = in + L * nx;
    for (uint64_t pl = b; pl < e; pl++) {
        double *base = c->f + (c->axis == 1 ? pl * nx * ny : pl * nx);
        for (uint64_t i = 0; i < L; i++) memcpy(in + i * nx, base + i * rstride, nx * sizeof *in);
        memset(out, 0, L * nx * sizeof *out);
        for (uint64_t i = 0; i < L; i++) {
            double *o = out + i * nx;
            for (int k = 0; k < c->t->n; k++) {
                int64_t j = ((int64_t)i + c->t->shift[k]) % (int64_t)L;
                const double w = c->t->w[k], *src = in + (uint64_t)(j < 0 ? j + (int64_t)L : j) * nx;
                for (uint64_t xx = 0; xx < nx; xx++) o[xx] += w * src[xx];
            }
        }
        for (uint64_t i = 0; i < L; i++) memcpy(base + i * rstride, out + i * nx, nx * sizeof *out);
    }
}

/* scipy gaussian_filter1d(sigma, mode 'wrap', truncate 4) along each axis */
static void blur_wrap(double *f, const uint64_t n[3], double sigma)
{
    if (sigma <= 1e-15) return; /* scipy skips such axes */
    int nw = vp_parallel_workers();
    for (int a = 0; a < 3; a++) {
        struct taps t;
        taps_make(sigma, (int64_t)n[a], &t);
        size_t per = a == 0 ? (size_t)(2 * n[0] + (uint64_t)(t.shift[t.n - 1] - t.shift[0])) : (size_t)(2 * n[a] * n[0]);
        double *scratch = vp_malloc((size_t)nw * per * sizeof *scratch);
        struct wblur_ctx c = {f, {n[0], n[1], n[2]}, a, &t, scratch, per};
        if (a == 0) vp_parallel_for(n[1] * n[2], 0, wblur_rows, &c);
        else vp_parallel_for(a == 1 ? n[2] : n[1], 1, wblur_planes, &c);
        free(scratch);
        free(t.shift);
        free(t.w);
    }
}

struct sum_ctx {
    const double *f;
    uint64_t slice;
    double *sum, *amax;
};

static void sum_slices(void *p, uint64_t b, uint64_t e, int w)
{
    const struct sum_ctx *c = p;
    for (uint64_t z = b; z < e; z++) {
        double s = 0, m = 0;
        for (uint64_t i = z * c->slice; i < (z + 1) * c->slice; i++) s += c->f[i], m = fmax(m, fabs(c->f[i]));
        c->sum[z] = s, c->amax[z] = m;
    }
}

void vp_aug_elastic_field(double *f, const uint64_t n[3], const double sigma[3], const double mag[3], uint64_t key)
{
    uint64_t nv = n[0] * n[1] * n[2];
    double *sum = vp_malloc(n[2] * sizeof *sum), *amax = vp_malloc(n[2] * sizeof *amax);
    for (int d = 0; d < 3; d++) {
        double *fd = f + (uint64_t)d * nv;
        struct fill_ctx fc = {fd, key, (uint64_t)d * nv};
        vp_parallel_for(nv, 1 << 16, fill_range, &fc);
        blur_wrap(fd, n, sigma[d]);
        struct sum_ctx sc = {fd, n[0] * n[1], sum, amax};
        vp_parallel_for(n[2], 1, sum_slices, &sc);
        double mx = 0, s = 0;
        for (uint64_t z = 0; z < n[2]; z++) mx = fmax(mx, amax[z]);
        double k = mag[d] > 1e-8 ? mag[d] : 1e-8;
        if (mx > 0)
            for (uint64_t i = 0; i < nv; i++) fd[i] = fd[i] / (mx / k);
        vp_parallel_for(n[2], 1, sum_slices, &sc);
        for (uint64_t z = 0; z < n[2]; z++) s += sum[z];
        double mean = s / (double)nv;
        for (uint64_t i = 0; i < nv; i++) fd[i] -= mean;
    }
    free(sum);
    free(amax);
}

/* ---- sampling through the field ---- */

struct warp_ctx {
    const float *in; /* one channel as float (exact for every integer dtype but i32 beyond 2^24) */
    const vp_vol *vin;
    uint64_t n[3], p[3];
    double m[3][4];
    const double *field;
    int is_label;
    vp_vol *out;
    uint64_t ch;
};

static void warp_slices(void *p, uint64_t b, uint64_t e, int w)
{
    const struct warp_ctx *c = p;
    uint64_t nv = c->p[0] * c->p[1] * c->p[2];
    const int64_t n0 = (int64_t)c->n[0], n1 = (int64_t)c->n[1], n2 = (int64_t)c->n[2];
    size_t es = vp_dtype_size(c->out->dtype);
    for (uint64_t z = b; z < e; z++)
        for (uint64_t y = 0; y < c->p[1]; y++)
            for (uint64_t x = 0; x < c->p[0]; x++) {
                uint64_t o = (z * c->p[1] + y) * c->p[0] + x;
                double q[3] = {(double)x + c->field[o], (double)y + c->field[nv + o], (double)z + c->field[2 * nv + o]}, cc[3];
                for (int a = 0; a < 3; a++) cc[a] = c->m[a][0] * q[0] + c->m[a][1] * q[1] + c->m[a][2] * q[2] + c->m[a][3];
                uint64_t oi = c->ch * nv + o;
                if (c->is_label) {
                    int64_t i = (int64_t)floor(cc[0] + 0.5), j = (int64_t)floor(cc[1] + 0.5), k = (int64_t)floor(cc[2] + 0.5);
                    if (i < 0 || j < 0 || k < 0 || i >= n0 || j >= n1 || k >= n2) continue; /* calloc'd 0 */
                    memcpy((char *)c->out->data + oi * es, (const char *)c->vin->data + (uint64_t)((k * n1 + j) * n0 + i) * es, es);
                    continue;
                }
                int64_t i0 = (int64_t)floor(cc[0]), j0 = (int64_t)floor(cc[1]), k0 = (int64_t)floor(cc[2]);
                double wx[2] = {1 - (cc[0] - (double)i0), cc[0] - (double)i0}, wy[2] = {1 - (cc[1] - (double)j0), cc[1] - (double)j0},
                       wz[2] = {1 - (cc[2] - (double)k0), cc[2] - (double)k0}, s = 0;
                for (int dz = 0; dz < 2; dz++) {
                    int64_t k = k0 + dz;
                    if (k < 0 || k >= n2) continue;
                    for (int dy = 0; dy < 2; dy++) {
                        int64_t j = j0 + dy;
                        if (j < 0 || j >= n1) continue;
                        for (int dx = 0; dx < 2; dx++) {
                            int64_t i = i0 + dx;
                            if (i < 0 || i >= n0) continue;
                            s += wz[dz] * wy[dy] * wx[dx] * (double)c->in[(k * n1 + j) * n0 + i];
                        }
                    }
                }
                ((float *)c->out->data)[oi] = (float)s;
            }
}

vp_vol *vp_aug_warp(const vp_vol *in, const uint64_t p[3], const double m[3][4], const double *field, int is_label)
{
    uint64_t dims[4] = {p[0], p[1], p[2], in->dims[3]};
    vp_vol *out = vp_vol_new(dims, is_label ? in->dtype : VP_F32, in->affine);
    out->has_channels = in->has_channels;
    uint64_t nvin = in->dims[0] * in->dims[1] * in->dims[2];
    float *buf = is_label ? NULL : vp_malloc(nvin * sizeof *buf);
    for (uint64_t ch = 0; ch < dims[3]; ch++) {
        if (buf)
            for (uint64_t i = 0; i < nvin; i++) buf[i] = (float)vp_vol_get(in, ch * nvin + i);
        struct warp_ctx c = {buf, in, {in->dims[0], in->dims[1], in->dims[2]}, {p[0], p[1], p[2]}, {{0}}, field, is_label, out, ch};
        memcpy(c.m, m, sizeof c.m);
        vp_parallel_for(p[2], 1, warp_slices, &c);
    }
    free(buf);
    return out;
}
