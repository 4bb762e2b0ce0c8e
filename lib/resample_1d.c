/* resample_1d.c - see resample_core.h: taps, spline prefilter, Gaussian, padding, conversions. */
#include "resample_core.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* scipy's map_coordinate() for mode 'mirror': a coordinate outside [0, len-1] is reflected about
 * the edge voxels. */
static double map_mirror(double in, int64_t len)
{
    if (len <= 1) return 0;
    int64_t sz2 = 2 * len - 2;
    if (in < 0) {
        in = (double)(sz2 * (int64_t)(-in / (double)sz2)) + in;
        in = in <= (double)(1 - len) ? in + (double)sz2 : -in;
    } else if (in > (double)(len - 1)) {
        in -= (double)(sz2 * (int64_t)(in / (double)sz2));
        if (in >= (double)len) in = (double)sz2 - in;
    }
    return in;
}

int64_t rs_extend(int64_t j, int64_t n, enum vp_extend mode)
{
    if (j >= 0 && j < n) return j;
    switch (mode) {
    case VP_EXTEND_NEAREST: return j < 0 ? 0 : n - 1;
    case VP_EXTEND_CONSTANT: return -1;
    case VP_EXTEND_MIRROR:
        if (n <= 1) return 0;
        int64_t s2 = 2 * n - 2;
        if (j < 0) {
            j = s2 * (-j / s2) + j;
            j = j <= 1 - n ? j + s2 : -j;
        } else {
            j -= s2 * (j / s2);
            if (j >= n) j = s2 - j;
        }
        return j;
    }
    return -1;
}

void rs_taps(double cc, int order, enum vp_extend mode, int64_t n, int64_t npad, int64_t *idx, double *w)
{
    /* far outside, every mode gives a constant (edge, cval, or a mirrored position): bound the
     * coordinate so that the integer conversions below stay defined */
    if (cc > 1e15) cc = 1e15;
    if (cc < -1e15) cc = -1e15;
    if (mode == VP_EXTEND_MIRROR) cc = map_mirror(cc, n);
    else cc += (double)npad;
    double f = floor(order & 1 ? cc : cc + 0.5);
    int64_t start = (int64_t)f - order / 2, len = n + 2 * npad;
    double x = cc - f; /* scipy get_spline_interpolation_weights: delta to the middle knot */
    if (order == 1) {
        w[0] = 1.0 - x;
    } else if (order == 3) {
        double y = x, z = 1.0 - x;
        w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
        w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
        w[0] = z * z * z / 6.0;
    }
    w[order] = 1.0; /* the weights add up to 1: the last one is the rest */
    for (int i = 0; i < order; i++) w[order] -= w[i];
    for (int k = 0; k <= order; k++) idx[k] = rs_extend(start + k, len, mode);
}

/* ---- B-spline prefilter (scipy ni_splines.c apply_filter, order 3: one pole) ---- */

void rs_prefilter(double *c, int64_t n, int64_t B, int mirror, double *acc)
{
    if (n <= 1) return; /* scipy filters only lines longer than one */
    const double z = sqrt(3.0) - 2.0;
    const double gain = (1.0 - z) * (1.0 - 1.0 / z);
    for (int64_t i = 0; i < n * B; i++) c[i] *= gain;
    double *last = c + (n - 1) * B;
    if (mirror) { /* _init_causal_mirror */
        const double zn1 = pow(z, (double)(n - 1));
        for (int64_t b = 0; b < B; b++) acc[b] = c[b] + zn1 * last[b];
        double zi = z;
        for (int64_t i = 1; i < n - 1; i++) {
            const double *ci = c + i * B, *cr = c + (n - 1 - i) * B;
            for (int64_t b = 0; b < B; b++) acc[b] += zi * (ci[b] + zn1 * cr[b]);
            zi *= z;
        }
        for (int64_t b = 0; b < B; b++) c[b] = acc[b] / (1 - zn1 * zn1);
    } else { /* _init_causal_reflect (c[0] kept apart, as the fixed scipy does) */
        const double zn = pow(z, (double)n);
        for (int64_t b = 0; b < B; b++) acc[b] = c[b] + zn * last[b];
        double zi = z;
        for (int64_t i = 1; i < n; i++) {
            const double *ci = c + i * B, *cr = c + (n - 1 - i) * B;
            for (int64_t b = 0; b < B; b++) acc[b] += zi * (ci[b] + zn * cr[b]);
            zi *= z;
        }
        for (int64_t b = 0; b < B; b++) c[b] = acc[b] * (z / (1 - zn * zn)) + c[b];
    }
    for (int64_t i = 1; i < n; i++) {
        double *ci = c + i * B;
        const double *cp = ci - B;
        for (int64_t b = 0; b < B; b++) ci[b] += z * cp[b];
    }
    if (mirror) { /* _init_anticausal_mirror */
        const double *prev = last - B;
        for (int64_t b = 0; b < B; b++) last[b] = (z * prev[b] + last[b]) * z / (z * z - 1);
    } else { /* _init_anticausal_reflect */
        for (int64_t b = 0; b < B; b++) last[b] *= z / (z - 1);
    }
    for (int64_t i = n - 2; i >= 0; i--) {
        double *ci = c + i * B;
        const double *cn = ci + B;
        for (int64_t b = 0; b < B; b++) ci[b] = z * (cn[b] - ci[b]);
    }
}

/* ---- Gaussian (scipy _gaussian_kernel1d + correlate1d) ---- */

/* numpy's pairwise summation of n doubles (what phi_x.sum() computes) */
static double np_pairwise_sum(const double *a, int64_t n)
{
    if (n < 8) {
        double res = 0.;
        for (int64_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8], res;
        int64_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return np_pairwise_sum(a, n2) + np_pairwise_sum(a + n2, n - n2);
}

void rs_gauss_make(double sigma, struct rs_gauss *g)
{
    g->r = (int)(4.0 * sigma + 0.5);
    int n = 2 * g->r + 1;
    g->w = vp_malloc((size_t)n * sizeof *g->w);
    double s2 = sigma * sigma;
    for (int i = 0; i < n; i++) {
        double x = (double)(i - g->r);
        g->w[i] = exp(-0.5 / s2 * (x * x));
    }
    double sum = np_pairwise_sum(g->w, n);
    for (int i = 0; i < n; i++) g->w[i] /= sum;
}

void rs_gauss_free(struct rs_gauss *g)
{
    free(g->w);
    g->w = NULL;
}

void rs_gauss_lines(const double *in, double *out, int64_t n, int64_t B, const struct rs_gauss *g,
                    enum vp_extend mode, const double *cvalrow)
{
    const int r = g->r;
    const double *w = g->w + r; /* centre: w[-r..r] */
    for (int64_t i = 0; i < n; i++) {
        double *o = out + i * B;
        const double *ci = in + i * B;
        for (int64_t b = 0; b < B; b++) o[b] = ci[b] * w[0];
        /* scipy's symmetric form: out += (in[i-d] + in[i+d]) * w[d], d = r .. 1 */
        for (int d = r; d >= 1; d--) {
            int64_t ja = rs_extend(i - d, n, mode), jb = rs_extend(i + d, n, mode);
            const double *pa = ja < 0 ? cvalrow : in + ja * B, *pb = jb < 0 ? cvalrow : in + jb * B;
            const double wd = w[-d];
            for (int64_t b = 0; b < B; b++) o[b] += (pa[b] + pb[b]) * wd;
        }
    }
}

void rs_pad_lines(double *buf, int64_t n, int64_t npad, int64_t B, enum vp_extend mode, double cval)
{
    for (int64_t p = 0; p < npad; p++) {
        double *lo = buf + p * B, *hi = buf + (npad + n + p) * B;
        if (mode == VP_EXTEND_CONSTANT) {
            for (int64_t b = 0; b < B; b++) lo[b] = hi[b] = cval;
        } else {
            memcpy(lo, buf + npad * B, (size_t)B * sizeof *buf);
            memcpy(hi, buf + (npad + n - 1) * B, (size_t)B * sizeof *buf);
        }
    }
}

/* ---- conversions ---- */

void rs_load(const void *data, enum vp_dtype t, uint64_t off, uint64_t n, double *dst)
{
    switch (t) {
    case VP_U8: { const uint8_t *p = (const uint8_t *)data + off; for (uint64_t i = 0; i < n; i++) dst[i] = p[i]; break; }
    case VP_I16: { const int16_t *p = (const int16_t *)data + off; for (uint64_t i = 0; i < n; i++) dst[i] = p[i]; break; }
    case VP_U16: { const uint16_t *p = (const uint16_t *)data + off; for (uint64_t i = 0; i < n; i++) dst[i] = p[i]; break; }
    case VP_I32: { const int32_t *p = (const int32_t *)data + off; for (uint64_t i = 0; i < n; i++) dst[i] = p[i]; break; }
    case VP_F16: { const uint16_t *p = (const uint16_t *)data + off; for (uint64_t i = 0; i < n; i++) dst[i] = vp_half_to_float(p[i]); break; }
    case VP_F32: { const float *p = (const float *)data + off; for (uint64_t i = 0; i < n; i++) dst[i] = p[i]; break; }
    default: break;
    }
}

/* round half away from zero and saturate to [lo, hi] (scipy CASE_INTERP_OUT_INT) */
static inline double round_sat(double x, double lo, double hi)
{
    if (x != x) return 0; /* NaN: no integer to give; 0 */
    x = x > 0 ? x + 0.5 : x - 0.5;
    x = x > hi ? hi : x < lo ? lo : x;
    return trunc(x);
}

void rs_store(const double *src, uint64_t n, enum vp_dtype t, void *data, uint64_t off)
{
    switch (t) {
    case VP_U8: { uint8_t *p = (uint8_t *)data + off; for (uint64_t i = 0; i < n; i++) p[i] = (uint8_t)round_sat(src[i], 0, 255); break; }
    case VP_I16: { int16_t *p = (int16_t *)data + off; for (uint64_t i = 0; i < n; i++) p[i] = (int16_t)round_sat(src[i], -32768, 32767); break; }
    case VP_U16: { uint16_t *p = (uint16_t *)data + off; for (uint64_t i = 0; i < n; i++) p[i] = (uint16_t)round_sat(src[i], 0, 65535); break; }
    case VP_I32: { int32_t *p = (int32_t *)data + off; for (uint64_t i = 0; i < n; i++) p[i] = (int32_t)round_sat(src[i], -2147483648.0, 2147483647.0); break; }
    case VP_F16: { uint16_t *p = (uint16_t *)data + off; for (uint64_t i = 0; i < n; i++) p[i] = vp_float_to_half((float)src[i]); break; }
    case VP_F32: { float *p = (float *)data + off; for (uint64_t i = 0; i < n; i++) p[i] = (float)src[i]; break; }
    default: break;
    }
}

/* ---- filtering a volume along one axis ---- */

struct axis_job {
    double *v;          /* volume, dims L[3] */
    const int64_t *L;
    int axis;
    int64_t n, npad;    /* along the axis: data rows [npad, npad+n) */
    const struct rs_gauss *g; /* or NULL */
    int prefilter;
    enum vp_extend mode;
    double cval;
};

enum { COLBLOCK = 64 };

/* Blocks of up to COLBLOCK neighbouring lines are gathered interleaved, blurred, padded,
 * prefiltered and scattered back. */
static void axis_range(void *ctx, uint64_t b0, uint64_t b1, int worker)
{
    const struct axis_job *j = ctx;
    const int64_t *L = j->L;
    const int64_t stride = j->axis == 0 ? 1 : j->axis == 1 ? L[0] : L[0] * L[1];
    const int64_t inner = stride; /* line l: position l % inner below the axis, l / inner above */
    const int64_t len = j->n + 2 * j->npad, nlines = L[0] * L[1] * L[2] / L[j->axis];
    double *buf = vp_malloc((size_t)len * COLBLOCK * sizeof *buf);
    double *tmp = vp_malloc((size_t)len * COLBLOCK * sizeof *tmp);
    double cvalrow[COLBLOCK], acc[COLBLOCK];
    for (int b = 0; b < COLBLOCK; b++) cvalrow[b] = j->cval;
    for (uint64_t blk = b0; blk < b1; blk++) {
        int64_t l0 = (int64_t)blk * COLBLOCK, B = nlines - l0 < COLBLOCK ? nlines - l0 : COLBLOCK;
        int64_t base[COLBLOCK];
        for (int64_t b = 0; b < B; b++) {
            int64_t l = l0 + b;
            base[b] = l % inner + l / inner * inner * L[j->axis];
        }
        for (int64_t i = 0; i < j->n; i++)
            for (int64_t b = 0; b < B; b++) buf[(j->npad + i) * B + b] = j->v[base[b] + (j->npad + i) * stride];
        if (j->g) {
            rs_gauss_lines(buf + j->npad * B, tmp, j->n, B, j->g, j->mode, cvalrow);
            memcpy(buf + j->npad * B, tmp, (size_t)(j->n * B) * sizeof *buf);
        }
        rs_pad_lines(buf, j->n, j->npad, B, j->mode, j->cval);
        if (j->prefilter) rs_prefilter(buf, len, B, j->mode == VP_EXTEND_MIRROR, acc);
        for (int64_t i = 0; i < len; i++)
            for (int64_t b = 0; b < B; b++) j->v[base[b] + i * stride] = buf[i * B + b];
    }
    free(buf);
    free(tmp);
    (void)worker;
}

void rs_filter_axis(double *v, const int64_t L[3], int axis, int64_t n, int64_t npad, double sigma,
                    int prefilter, enum vp_extend mode, double cval)
{
    struct rs_gauss g = {0, NULL};
    if (sigma > 0) rs_gauss_make(sigma, &g);
    if (!g.w && !prefilter && !npad) return;
    struct axis_job j = {v, L, axis, n, npad, g.w ? &g : NULL, prefilter, mode, cval};
    int64_t nlines = L[0] * L[1] * L[2] / L[axis];
    vp_parallel_for((uint64_t)((nlines + COLBLOCK - 1) / COLBLOCK), 0, axis_range, &j);
    rs_gauss_free(&g);
}

/* ---- the coefficient array of the general path ---- */

double *rs_coefficients(const void *data, enum vp_dtype t, const uint64_t n[3], int order,
                        enum vp_extend mode, double cval, const double sigma[3], int64_t L[3])
{
    int64_t np = rs_npad(order, mode);
    for (int a = 0; a < 3; a++) L[a] = (int64_t)n[a] + 2 * np;
    double *v = vp_calloc((size_t)(L[0] * L[1] * L[2]), sizeof *v); /* pad rows are filled below */
    for (uint64_t z = 0; z < n[2]; z++)
        for (uint64_t y = 0; y < n[1]; y++)
            rs_load(data, t, (z * n[1] + y) * n[0], n[0],
                    v + ((int64_t)z + np) * L[0] * L[1] + ((int64_t)y + np) * L[0] + np);
    /* per axis: blur, pad, prefilter. Operations along different axes commute, so this equals
     * scipy's gaussian_filter (all axes), then np.pad (all axes), then spline_filter (all axes).
     * Lines lying in the pad rows of a later axis are computed from zeros and overwritten when
     * that axis is padded. */
    for (int a = 0; a < 3; a++)
        rs_filter_axis(v, L, a, (int64_t)n[a], np, sigma[a], order == 3, mode, cval);
    return v;
}
