/* resample_core.h - internal to lib/resample*.c: the one-dimensional pieces of resampling, written to
 * reproduce scipy.ndimage's arithmetic (ni_interpolation.c, ni_splines.c, ni_filters.c).
 *
 * "Lines" are stored interleaved: B lines of length n as buf[i*B + b], so that a filter along y or z
 * of a block of B neighbouring columns runs over contiguous memory (B = 1 for one x row).
 *
 * Ownership: struct rs_gauss owns its weights (rs_gauss_free); everything else works in buffers the
 * caller owns.
 */
#ifndef VP_RESAMPLE_CORE_H
#define VP_RESAMPLE_CORE_H

#include <stdint.h>

#include "resample.h"
#include "volume.h"

/* Exact floating-point operation order matters for bit-exact agreement with scipy (order 0, label
 * modes): never contract a*b + c into an FMA. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define RS_NPAD 12 /* scipy's _prepad_for_spline_filter: 12 voxels for 'nearest' and 'grid-constant' */
#define RS_MAXTAP 4

/* Padding of the spline-coefficient line for `order` and `mode` (each side). */
static inline int64_t rs_npad(int order, enum vp_extend mode)
{
    return order > 1 && mode != VP_EXTEND_MIRROR ? RS_NPAD : 0;
}

/* Taps of coordinate cc (in the unpadded input's index space, length n) on a coefficient line of
 * n + 2*npad entries: order+1 indices into that line (-1: the value is cval) and weights, exactly as
 * scipy's NI_GeometricTransform (mirror: the coordinate is mapped into range first). */
void rs_taps(double cc, int order, enum vp_extend mode, int64_t n, int64_t npad, int64_t *idx, double *w);

/* Extend index j (any integer) onto [0, n) by the mode's rule for filters and taps: nearest clamps,
 * mirror reflects about the edge voxels (period 2n-2), constant gives -1. */
int64_t rs_extend(int64_t j, int64_t n, enum vp_extend mode);

/* B-spline (order 3) prefilter in place of B interleaved lines of length n, as scipy's
 * spline_filter1d: mirror=1 uses the mirror boundary (mode 'mirror'), else the reflect boundary
 * that scipy uses on the 12-voxel pre-padded line (modes 'nearest' and 'grid-constant').
 * acc: B doubles of scratch. */
void rs_prefilter(double *c, int64_t n, int64_t B, int mirror, double *acc);

/* Gaussian kernel as scipy's _gaussian_kernel1d (truncate 4): radius int(4 sigma + 0.5). */
struct rs_gauss {
    int r;
    double *w; /* 2r+1 weights, normalised */
};
void rs_gauss_make(double sigma, struct rs_gauss *g);
void rs_gauss_free(struct rs_gauss *g);
/* out = in correlated with g along the line axis (scipy correlate1d, symmetric kernel), B
 * interleaved lines of length n; boundary by `mode` (cval for constant). cvalrow: B x cval. */
void rs_gauss_lines(const double *in, double *out, int64_t n, int64_t B, const struct rs_gauss *g,
                    enum vp_extend mode, const double *cvalrow);

/* Pad B interleaved lines of length n (at buf + npad*B) in place: npad rows each side, edge copies
 * (nearest) or cval (constant). */
void rs_pad_lines(double *buf, int64_t n, int64_t npad, int64_t B, enum vp_extend mode, double cval);

/* Convert n elements starting at element offset `off` of data of type t to doubles. */
void rs_load(const void *data, enum vp_dtype t, uint64_t off, uint64_t n, double *dst);
/* Store n doubles as type t at element offset off: floats are cast (f16 via f32), integers rounded
 * half away from zero and saturated (scipy's cast). */
void rs_store(const double *src, uint64_t n, enum vp_dtype t, void *data, uint64_t off);

/* Along `axis` of the volume v (dims L, data rows [npad, npad+n) on that axis): Gaussian blur
 * (sigma > 0) of the data rows, padding of npad rows each side, B-spline prefilter (prefilter). */
void rs_filter_axis(double *v, const int64_t L[3], int axis, int64_t n, int64_t npad, double sigma,
                    int prefilter, enum vp_extend mode, double cval);

/* The separable path (resample_sep.c): in (one channel, nx*ny*nz doubles converted on the fly
 * from `data` of type t) -> out (nxo*nyo*nzo of type ot). */
struct rs_sep {
    const void *data;
    enum vp_dtype t;
    uint64_t n[3];
    uint64_t no[3];
    double m[3][4];
    int order;
    enum vp_extend mode;
    double cval;
    double sigma[3]; /* anti-aliasing per input axis, 0 = none */
    void *out;
    enum vp_dtype ot;
};
void rs_separable(const struct rs_sep *s);

/* A double copy of one channel, optionally Gaussian-blurred (sigma per axis), padded by npad and
 * spline-prefiltered when order 3: the coefficient array of the general path. dims out in L[3]. */
double *rs_coefficients(const void *data, enum vp_dtype t, const uint64_t n[3], int order,
                        enum vp_extend mode, double cval, const double sigma[3], int64_t L[3]);

#endif
