/* dicom_uniform.c - dcm-fetch --uniform: a series with uneven slice spacing (missing slices,
 * irregular steps) or a sheared stack (gantry tilt) resampled onto a uniform, orthogonal grid
 * (see dicom.h, vp_dcm_series_uniform).
 *
 * The output grid keeps the in-plane axes and pixel spacing of the first slice (along the normal),
 * steps along the slice normal by the median spacing from the first to the last slice, and (for a
 * sheared stack) is widened in-plane so that every source pixel lies on it, as dcm2niix's tilt
 * correction does. Source slice k, at distance p_k along the normal and shifted in-plane by
 * (si_k, sj_k) voxels from the first slice's origin, is sampled bilinearly in-plane (an exact copy
 * when the shift is whole); between two source slices the two samples are blended linearly along the
 * normal. Voxels no source slice covers get the volume's minimum (air in CT). Integer outputs are
 * rounded half up: floor(v + 0.5). Each output voxel is computed on its own: the same bytes whatever
 * the thread count.
 *
 * Ownership: the input volume stays the caller's; the output is new (vp_vol_free).
 */
#include "dicom.h"
#include "parallel.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ujob {
    const vp_vol *in;
    vp_vol *out;
    const double *p, *si, *sj; /* per source slice: position along the normal, in-plane shift */
    int n;
    double step, fill;
    int64_t i0, j0; /* output voxel (0, 0) is source-frame voxel (i0, j0) of the first slice */
};

static inline double src_at(const vp_vol *v, int64_t i, int64_t j, int k, double fill)
{
    if (i < 0 || j < 0 || (uint64_t)i >= v->dims[0] || (uint64_t)j >= v->dims[1]) return fill;
    return vp_vol_get(v, ((uint64_t)k * v->dims[1] + (uint64_t)j) * v->dims[0] + (uint64_t)i);
}

/* bilinear sample of source slice k at (x, y) (source voxel units) */
static double sample(const struct ujob *u, int k, double x, double y)
{
    double fx = floor(x), fy = floor(y), ax = x - fx, ay = y - fy;
    int64_t ix = (int64_t)fx, iy = (int64_t)fy;
    if (ax < 1e-6) ax = 0; else if (ax > 1 - 1e-6) { ax = 0; ix++; }
    if (ay < 1e-6) ay = 0; else if (ay > 1 - 1e-6) { ay = 0; iy++; }
    double v = src_at(u->in, ix, iy, k, u->fill) * (1 - ax) * (1 - ay);
    if (ax) v += src_at(u->in, ix + 1, iy, k, u->fill) * ax * (1 - ay);
    if (ay) v += src_at(u->in, ix, iy + 1, k, u->fill) * (1 - ax) * ay;
    if (ax && ay) v += src_at(u->in, ix + 1, iy + 1, k, u->fill) * ax * ay;
    return v;
}

static void put(vp_vol *v, uint64_t idx, double x)
{
    if (v->dtype != VP_F32) x = floor(x + 0.5);
    switch (v->dtype) {
    case VP_U8: ((uint8_t *)v->data)[idx] = (uint8_t)x; break;
    case VP_I16: ((int16_t *)v->data)[idx] = (int16_t)x; break;
    case VP_U16: ((uint16_t *)v->data)[idx] = (uint16_t)x; break;
    case VP_I32: ((int32_t *)v->data)[idx] = (int32_t)x; break;
    default: ((float *)v->data)[idx] = (float)x; break;
    }
}

static void uniform_range(void *ctx, uint64_t b, uint64_t e, int worker)
{
    const struct ujob *u = ctx;
    const uint64_t nx = u->out->dims[0], ny = u->out->dims[1];
    for (uint64_t z = b; z < e; z++) {
        double t = (double)z * u->step;
        int k = 0;
        while (k + 2 < u->n && u->p[k + 1] <= t) k++;
        double w = u->n > 1 ? (t - u->p[k]) / (u->p[k + 1] - u->p[k]) : 0;
        if (fabs(w) < 1e-6) w = 0;
        if (fabs(w - 1) < 1e-6) { w = 0; k++; }
        w = fmin(fmax(w, 0), 1);
        for (uint64_t j = 0; j < ny; j++)
            for (uint64_t i = 0; i < nx; i++) {
                double x = (double)((int64_t)i + u->i0), y = (double)((int64_t)j + u->j0);
                double v = sample(u, k, x + u->si[k], y + u->sj[k]);
                if (w > 0) v = v * (1 - w) + w * sample(u, k + 1, x + u->si[k + 1], y + u->sj[k + 1]);
                put(u->out, (z * ny + j) * nx + i, v);
            }
    }
}

int vp_dcm_series_uniform(const struct vp_dcm_series *s, const vp_vol *in, vp_vol **out, char why[256])
{
    const int n = s->n;
    if (n < 2 || (uint64_t)n != in->dims[2]) {
        snprintf(why, 256, "--uniform needs a series of single-frame slices with positions");
        return -VP_ERR_DATA;
    }
    const struct vp_dcm_file *f0 = s->files[0];
    const double *r = f0->iop, *c = f0->iop + 3, *o = f0->ipp;
    double psc = f0->has_ps ? f0->ps[1] : 1, psr = f0->has_ps ? f0->ps[0] : 1;
    double *p = vp_malloc(sizeof(double) * 3 * (size_t)n), *si = p + n, *sj = p + 2 * n;
    double simin = 0, simax = 0, sjmin = 0, sjmax = 0;
    for (int k = 0; k < n; k++) {
        const double *x = s->files[k]->ipp;
        double d[3] = {o[0] - x[0], o[1] - x[1], o[2] - x[2]};
        p[k] = -(d[0] * s->normal[0] + d[1] * s->normal[1] + d[2] * s->normal[2]);
        si[k] = (d[0] * r[0] + d[1] * r[1] + d[2] * r[2]) / psc;
        sj[k] = (d[0] * c[0] + d[1] * c[1] + d[2] * c[2]) / psr;
        simin = fmin(simin, si[k]); simax = fmax(simax, si[k]);
        sjmin = fmin(sjmin, sj[k]); sjmax = fmax(sjmax, sj[k]);
    }
    /* output i covers every i + si_k in [0, nx-1]: i from -si_max to nx-1-si_min (whole voxels) */
    int64_t i0 = (int64_t)floor(-simax + 1e-6), i1 = (int64_t)ceil((double)(in->dims[0] - 1) - simin - 1e-6);
    int64_t j0 = (int64_t)floor(-sjmax + 1e-6), j1 = (int64_t)ceil((double)(in->dims[1] - 1) - sjmin - 1e-6);
    double step = s->median_spacing;
    uint64_t nz = (uint64_t)llround(p[n - 1] / step) + 1;
    uint64_t dims[4] = {(uint64_t)(i1 - i0 + 1), (uint64_t)(j1 - j0 + 1), nz, 1}, nb;
    if (nz > 65536 || dims[0] > 65536 || dims[1] > 65536 || vp_vol_nbytes(dims, in->dtype, &nb)) {
        snprintf(why, 256, "--uniform: the resampled grid would be %llux%llux%llu voxels",
                 (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)nz);
        free(p);
        return -VP_ERR_DATA;
    }
    double A[16];
    memcpy(A, in->affine, sizeof A);
    for (int row = 0; row < 3; row++) {
        A[row * 4 + 2] = in->affine[row * 4 + 2] * step / s->spacing;
        A[row * 4 + 3] = in->affine[row * 4 + 3] + (double)i0 * in->affine[row * 4 + 0] + (double)j0 * in->affine[row * 4 + 1];
    }
    double fill = INFINITY;
    uint64_t nv = vp_vol_nvox(in);
    for (uint64_t i = 0; i < nv; i++) fill = fmin(fill, vp_vol_get(in, i));
    struct ujob u = {in, vp_vol_new(dims, in->dtype, A), p, si, sj, n, step, fill, i0, j0};
    vp_parallel_for(nz, 1, uniform_range, &u);
    free(p);
    *out = u.out;
    return 0;
}
