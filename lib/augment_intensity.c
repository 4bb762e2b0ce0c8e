/* augment_intensity.c - the intensity transforms of augment.h on one f32 channel, as
 * batchgeneratorsv2 computes them (formulas in augment.h). Reductions (mean, std, min, max) sum in
 * double over fixed ranges of RED_GRAIN voxels combined in order, so results do not depend on the
 * thread count. */
#include "augment.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize") /* the blur's inner loops are axpy over rows */
#endif

#define RED_GRAIN ((uint64_t)1 << 16)
#define EPS 1e-7

/* ---- random numbers ---- */

#define GOLDEN 0x9E3779B97F4A7C15ULL

uint64_t vp_aug_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double vp_aug_uniform(uint64_t *state)
{
    *state += GOLDEN;
    return (double)(vp_aug_mix(*state) >> 11) * 0x1p-53;
}

void vp_aug_normal_pair(uint64_t key, uint64_t j, double out[2])
{
    uint64_t a = vp_aug_mix(key + (2 * j + 1) * GOLDEN), b = vp_aug_mix(key + (2 * j + 2) * GOLDEN);
    double u1 = (double)((a >> 11) + 1) * 0x1p-53; /* (0, 1] */
    double u2 = (double)(b >> 11) * 0x1p-53;       /* [0, 1) */
    double r = sqrt(-2.0 * log(u1)), t = 2.0 * M_PI * u2;
    out[0] = r * cos(t);
    out[1] = r * sin(t);
}

double vp_aug_normal_at(uint64_t key, uint64_t i)
{
    double v[2];
    vp_aug_normal_pair(key, i / 2, v);
    return v[i & 1];
}

void vp_aug_normal_fill(double *dst, uint64_t key, uint64_t first, uint64_t n)
{
    uint64_t i = 0;
    double v[2];
    if (n && (first & 1)) dst[i++] = vp_aug_normal_at(key, first);
    for (; i + 1 < n; i += 2) {
        vp_aug_normal_pair(key, (first + i) / 2, v);
        dst[i] = v[0], dst[i + 1] = v[1];
    }
    if (i < n) dst[i] = vp_aug_normal_at(key, first + i);
}

/* ---- noise ---- */

struct noise_ctx {
    float *x;
    double sigma;
    uint64_t key;
};

static void noise_range(void *p, uint64_t b, uint64_t e, int w)
{
    const struct noise_ctx *c = p;
    double z[256];
    for (uint64_t s = b; s < e; s += 256) {
        uint64_t m = e - s < 256 ? e - s : 256;
        vp_aug_normal_fill(z, c->key, s, m);
        for (uint64_t i = 0; i < m; i++) c->x[s + i] = (float)(c->x[s + i] + c->sigma * z[i]);
    }
}

void vp_aug_noise(float *x, uint64_t nvox, double sigma, uint64_t key)
{
    struct noise_ctx c = {x, sigma, key};
    vp_parallel_for(nvox, RED_GRAIN, noise_range, &c);
}

/* ---- reductions ---- */

struct red {
    double sum, ss; /* sum; sum of squared deviations from `centre` */
    float mn, mx;
};

struct red_ctx {
    const float *x;
    double centre;
    int with_ss;
    struct red *part;
};

static void red_range(void *p, uint64_t b, uint64_t e, int w)
{
    const struct red_ctx *c = p;
    struct red r = {0, 0, c->x[b], c->x[b]};
    for (uint64_t i = b; i < e; i++) {
        double v = c->x[i];
        r.sum += v;
        if (c->with_ss) r.ss += (v - c->centre) * (v - c->centre);
        if (c->x[i] < r.mn) r.mn = c->x[i];
        if (c->x[i] > r.mx) r.mx = c->x[i];
    }
    c->part[b / RED_GRAIN] = r;
}

/* mean, sample std (n - 1, as torch.std), min, max of x */
static void reduce(const float *x, uint64_t n, int want_std, double *mean, double *sd, float *mn, float *mx)
{
    uint64_t np = (n + RED_GRAIN - 1) / RED_GRAIN;
    struct red *part = vp_calloc(np, sizeof *part);
    struct red_ctx c = {x, 0, 0, part};
    vp_parallel_for(n, RED_GRAIN, red_range, &c);
    double s = 0;
    *mn = part[0].mn, *mx = part[0].mx;
    for (uint64_t i = 0; i < np; i++) {
        s += part[i].sum;
        if (part[i].mn < *mn) *mn = part[i].mn;
        if (part[i].mx > *mx) *mx = part[i].mx;
    }
    *mean = s / (double)n;
    if (want_std) {
        c.centre = *mean, c.with_ss = 1;
        vp_parallel_for(n, RED_GRAIN, red_range, &c);
        double ss = 0;
        for (uint64_t i = 0; i < np; i++) ss += part[i].ss;
        *sd = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN; /* torch.std of one element is nan */
    }
    free(part);
}

/* ---- brightness, contrast, gamma: voxel-wise maps ---- */

enum vmap { MAP_MUL, MAP_CONTRAST, MAP_GAMMA, MAP_AFFINE };

struct vmap_ctx {
    float *x;
    enum vmap kind;
    double a, b, c, d; /* MUL: a. CONTRAST: mean a, m b, clip [c, d]. GAMMA: min a, range b, denom c, g d.
                          AFFINE: (x - a) * b + c, then times d (+-1) */
    float mf;
    float lo, hi;
};

static void vmap_range(void *p, uint64_t b, uint64_t e, int w)
{
    const struct vmap_ctx *c = p;
    float *x = c->x;
    switch (c->kind) {
    case MAP_MUL:
        for (uint64_t i = b; i < e; i++) x[i] *= c->mf;
        break;
    case MAP_CONTRAST:
        for (uint64_t i = b; i < e; i++) {
            float v = (float)((x[i] - c->a) * c->b + c->a);
            x[i] = v < c->lo ? c->lo : v > c->hi ? c->hi : v;
        }
        break;
    case MAP_GAMMA:
        for (uint64_t i = b; i < e; i++) x[i] = (float)(pow((x[i] - c->a) / c->c, c->d) * c->b + c->a);
        break;
    case MAP_AFFINE:
        for (uint64_t i = b; i < e; i++) x[i] = (float)(((x[i] - c->a) * c->b + c->c) * c->d);
        break;
    }
}

static void vmap_run(struct vmap_ctx *c, uint64_t n) { vp_parallel_for(n, RED_GRAIN, vmap_range, c); }

void vp_aug_brightness(float *x, uint64_t nvox, double m)
{
    struct vmap_ctx c = {x, MAP_MUL, m, 0, 0, 0, (float)m, 0, 0};
    vmap_run(&c, nvox);
}

void vp_aug_contrast(float *x, uint64_t nvox, double m)
{
    double mean, sd;
    float mn, mx;
    reduce(x, nvox, 0, &mean, &sd, &mn, &mx);
    struct vmap_ctx c = {x, MAP_CONTRAST, mean, m, 0, 0, 0, mn, mx};
    vmap_run(&c, nvox);
}

void vp_aug_gamma(float *x, uint64_t nvox, double gamma, int invert)
{
    double mean, sd, mean2, sd2;
    float mn, mx;
    if (invert) {
        struct vmap_ctx neg = {x, MAP_AFFINE, 0, 1, 0, -1, 0, 0, 0};
        vmap_run(&neg, nvox);
    }
    reduce(x, nvox, 1, &mean, &sd, &mn, &mx);
    double rnge = (double)mx - (double)mn;
    struct vmap_ctx g = {x, MAP_GAMMA, mn, rnge, rnge > EPS ? rnge : EPS, gamma, 0, 0, 0};
    vmap_run(&g, nvox);
    reduce(x, nvox, 1, &mean2, &sd2, &mn, &mx);
    struct vmap_ctx r = {x, MAP_AFFINE, mean2, sd / (sd2 > EPS ? sd2 : EPS), mean, invert ? -1 : 1, 0, 0, 0};
    vmap_run(&r, nvox);
}

/* ---- blur: separable Gaussian along each axis, torch's kernel, reflect boundary ---- */

static int64_t reflect(int64_t j, int64_t n)
{
    if (n == 1) return 0;
    int64_t p = 2 * n - 2;
    j %= p;
    if (j < 0) j += p;
    return j < n ? j : p - j;
}

struct blur_ctx {
    float *x;
    uint64_t n[3];
    int axis;
    int r;
    const double *w;
    double *scratch; /* per worker */
    size_t per_worker;
};

/* axis 0: each row padded by reflection into a buffer, then out[i] = sum_k w[k] ext[i + k] */
static void blur_rows(void *p, uint64_t b, uint64_t e, int wk)
{
    const struct blur_ctx *c = p;
    int64_t L = (int64_t)c->n[0], r = c->r;
    double *ext = c->scratch + (size_t)wk * c->per_worker, *out = ext + L + 2 * r;
    for (uint64_t row = b; row < e; row++) {
        float *x = c->x + row * (uint64_t)L;
        for (int64_t i = -r; i < L + r; i++) ext[i + r] = x[reflect(i, L)];
        memset(out, 0, (size_t)L * sizeof *out);
        for (int64_t k = 0; k <= 2 * r; k++) {
            const double w = c->w[k], *src = ext + k;
            for (int64_t i = 0; i < L; i++) out[i] += w * src[i];
        }
        for (int64_t i = 0; i < L; i++) x[i] = (float)out[i];
    }
}

/* axes 1 and 2: a plane of L rows of nx voxels (fixed z for axis 1, fixed y for axis 2); each output
 * row a weighted sum of whole input rows */
static void blur_planes(void *p, uint64_t b, uint64_t e, int wk)
{
    const struct blur_ctx *c = p;
    uint64_t nx = c->n[0], ny = c->n[1], L = c->n[c->axis];
    uint64_t rstride = c->axis == 1 ? nx : nx * ny;
    double *in = c->scratch + (size_t)wk * c->per_worker, *out = in + L * nx;
    for (uint64_t pl = b; pl < e; pl++) {
        float *base = c->x + (c->axis == 1 ? pl * nx * ny : pl * nx);
        for (uint64_t i = 0; i < L; i++)
            for (uint64_t xx = 0; xx < nx; xx++) in[i * nx + xx] = base[i * rstride + xx];
        memset(out, 0, L * nx * sizeof *out);
        for (uint64_t i = 0; i < L; i++) {
            double *o = out + i * nx;
            for (int k = -c->r; k <= c->r; k++) {
                const double w = c->w[k + c->r], *src = in + (uint64_t)reflect((int64_t)i + k, (int64_t)L) * nx;
                for (uint64_t xx = 0; xx < nx; xx++) o[xx] += w * src[xx];
            }
        }
        for (uint64_t i = 0; i < L; i++)
            for (uint64_t xx = 0; xx < nx; xx++) base[i * rstride + xx] = (float)out[i * nx + xx];
    }
}

/* batchgeneratorsv2 _compute_kernel_size(sigma, truncate 6): Python round (half to even) to the
 * nearest odd number */
static int kernel_size(double sigma)
{
    double v = sigma * 6 + 0.5, r = nearbyint(v);
    long k = (long)r;
    if (k % 2 != 0) return (int)k;
    return (int)(v - r >= 0 ? k + 1 : k - 1);
}

void vp_aug_blur(float *x, const uint64_t n[3], const double sigma[3])
{
    int nw = vp_parallel_workers();
    for (int a = 0; a < 3; a++) {
        int k = kernel_size(sigma[a]), r = (k - 1) / 2;
        double *w = vp_malloc((size_t)k * sizeof *w), sum = 0;
        for (int i = 0; i < k; i++) {
            double t = ((double)i - r) / sigma[a];
            w[i] = exp(-0.5 * t * t);
            sum += w[i];
        }
        for (int i = 0; i < k; i++) w[i] /= sum;
        size_t per = a == 0 ? (size_t)(2 * n[0] + 2 * (uint64_t)r) : (size_t)(2 * n[a] * n[0]);
        double *scratch = vp_malloc((size_t)nw * per * sizeof *scratch);
        struct blur_ctx c = {x, {n[0], n[1], n[2]}, a, r, w, scratch, per};
        if (a == 0) vp_parallel_for(n[1] * n[2], 0, blur_rows, &c);
        else vp_parallel_for(a == 1 ? n[2] : n[1], 1, blur_planes, &c);
        free(scratch);
        free(w);
    }
}

/* ---- low resolution: nearest-exact down, trilinear (align_corners=False) up, as torch ---- */

struct lin_tab {
    int64_t i0, i1;
    float l0, l1;
};

struct up_ctx {
    float *x;
    const float *lo;
    uint64_t n[3], m[3];
    const struct lin_tab *t[3];
};

static void up_slices(void *p, uint64_t b, uint64_t e, int w)
{
    const struct up_ctx *c = p;
    uint64_t mx = c->m[0], mxy = c->m[0] * c->m[1];
    for (uint64_t z = b; z < e; z++) {
        const struct lin_tab *tz = &c->t[2][z];
        for (uint64_t y = 0; y < c->n[1]; y++) {
            const struct lin_tab *ty = &c->t[1][y];
            const float *r00 = c->lo + tz->i0 * mxy + ty->i0 * mx, *r01 = c->lo + tz->i0 * mxy + ty->i1 * mx;
            const float *r10 = c->lo + tz->i1 * mxy + ty->i0 * mx, *r11 = c->lo + tz->i1 * mxy + ty->i1 * mx;
            float *o = c->x + (z * c->n[1] + y) * c->n[0];
            for (uint64_t xx = 0; xx < c->n[0]; xx++) {
                const struct lin_tab *tx = &c->t[0][xx];
                int64_t a = tx->i0, bb = tx->i1;
                o[xx] = tz->l0 * (ty->l0 * (tx->l0 * r00[a] + tx->l1 * r00[bb]) + ty->l1 * (tx->l0 * r01[a] + tx->l1 * r01[bb])) +
                        tz->l1 * (ty->l0 * (tx->l0 * r10[a] + tx->l1 * r10[bb]) + ty->l1 * (tx->l0 * r11[a] + tx->l1 * r11[bb]));
            }
        }
    }
}

void vp_aug_lowres(float *x, const uint64_t n[3], double scale)
{
    float s = (float)scale; /* batchgeneratorsv2 keeps the scales in a float32 tensor */
    uint64_t m[3];
    int64_t *near[3];
    struct lin_tab *tab[3];
    for (int a = 0; a < 3; a++) {
        double v = nearbyint((double)n[a] * (double)s); /* Python round: half to even */
        m[a] = v < 1 ? 1 : (uint64_t)v;
        float down = (float)n[a] / (float)m[a], up = (float)m[a] / (float)n[a];
        near[a] = vp_malloc(m[a] * sizeof *near[a]);
        for (uint64_t i = 0; i < m[a]; i++) {
            int64_t j = (int64_t)floorf(((float)i + 0.5f) * down); /* in float, as torch */
            near[a][i] = j < (int64_t)n[a] - 1 ? j : (int64_t)n[a] - 1;
        }
        tab[a] = vp_malloc(n[a] * sizeof *tab[a]);
        for (uint64_t i = 0; i < n[a]; i++) {
            float r = up * ((float)i + 0.5f) - 0.5f;
            if (r < 0) r = 0;
            int64_t i0 = (int64_t)r;
            float l1 = r - (float)i0;
            if (l1 > 1) l1 = 1;
            tab[a][i] = (struct lin_tab){i0, i0 + (i0 < (int64_t)m[a] - 1 ? 1 : 0), 1.0f - l1, l1};
        }
    }
    float *lo = vp_malloc(m[0] * m[1] * m[2] * sizeof *lo);
    for (uint64_t z = 0; z < m[2]; z++)
        for (uint64_t y = 0; y < m[1]; y++) {
            const float *src = x + ((uint64_t)near[2][z] * n[1] + (uint64_t)near[1][y]) * n[0];
            float *dst = lo + (z * m[1] + y) * m[0];
            for (uint64_t i = 0; i < m[0]; i++) dst[i] = src[near[0][i]];
        }
    struct up_ctx c = {x, lo, {n[0], n[1], n[2]}, {m[0], m[1], m[2]}, {tab[0], tab[1], tab[2]}};
    vp_parallel_for(n[2], 1, up_slices, &c);
    free(lo);
    for (int a = 0; a < 3; a++) free(near[a]), free(tab[a]);
}
