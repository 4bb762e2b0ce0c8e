/* normalize.h - intensity normalisation of CT volumes as MONAI and nnU-Net do it, to f32.
 *
 * Every function writes float32 voxels with the same single-precision arithmetic, in the same order,
 * as the peer (torch/numpy float32), so results agree to a few units in the last place; statistics
 * (means, standard deviations, percentiles) are computed in double precision, which the peers do
 * not always do (torch.mean of float32 sums in float32), so those may differ by ~1e-7 relative.
 *
 * Statistics skip NaN voxels (the peers would return NaN); elementwise maps keep NaN as NaN.
 * Reductions run in fixed chunks combined in chunk order (or exactly, on histograms), so every
 * result is the same whatever the thread count.
 *
 * Ownership: vp_vol_new_f32 and vp_vol_to_f32 return new volumes the caller frees; the vp_norm_* functions work in
 * place on a caller's f32 volume; nothing else allocates for the caller.
 */
#ifndef VP_NORMALIZE_H
#define VP_NORMALIZE_H

#include <stdint.h>

#include "volume.h"

/* An elementwise map, applied while converting to f32 (one pass over memory). */
enum vp_elem_kind {
    VP_ELEM_COPY,   /* x */
    VP_ELEM_RANGE,  /* MONAI ScaleIntensityRange: (x - a0) / (a1 - a0) [* (b1 - b0) + b0] [clip b0..b1] */
    VP_ELEM_SUBDIV, /* (x - sub) / div, only where x != 0 when `nonzero` (MONAI NormalizeIntensity) */
    VP_ELEM_CT,     /* nnU-Net CTNormalization: clip to lo..hi, then - mean, then / std */
    VP_ELEM_MINMAX, /* MONAI rescale_array: (x - mn) / (mx - mn) * (b1 - b0) + b0; x * b0 if mn == mx */
};

struct vp_elem {
    enum vp_elem_kind kind;
    double a0, a1, b0, b1; /* RANGE: a_min a_max b_min b_max; MINMAX: mn mx b0 b1 */
    double sub, div;       /* SUBDIV; CT: mean, std (std < 1e-8 counts as 1e-8) */
    double lo, hi;         /* CT clip bounds */
    int has_b, clip, nonzero;
};

/* New f32 volume with like's dims, channels and affine; voxels uninitialised (huge pages). */
vp_vol *vp_vol_new_f32(const vp_vol *like);

/* New f32 volume holding v's voxels (dims, channels, affine kept). */
vp_vol *vp_vol_to_f32(const vp_vol *v);

/* dst[off + i] = map(src[off + i]) for i < n, converting src's dtype to f32 on the way. dst is f32
 * with src's dims; dst may be src itself when src is f32. */
void vp_elem_apply(const vp_vol *src, vp_vol *dst, uint64_t off, uint64_t n, const struct vp_elem *op);

/* Mean and population standard deviation (ddof 0, two passes) of voxels off .. off+n-1 of v, only
 * the non-zero ones when nonzero; *count gets how many were used (0: mean and std are 0). */
void vp_moments(const vp_vol *v, uint64_t off, uint64_t n, int nonzero, double *mean, double *std, uint64_t *count);

/* Minimum and maximum of voxels off .. off+n-1 (NaN skipped; both NaN if all are NaN). */
void vp_minmax(const vp_vol *v, uint64_t off, uint64_t n, double *mn, double *mx);

/* q-th percentile (0..100) of the sorted values of a sample, numpy's default method 'linear'
 * (np.percentile: index q/100 * (n-1) between the two nearest ranks, numpy's lerp formula). kth(k)
 * must return the k-th smallest value (0-based). */
double vp_percentile_linear(double q, uint64_t n, double (*kth)(void *ctx, uint64_t k), void *ctx);

/* nnU-Net's intensity properties of one case, computed as its dataset fingerprint does for one
 * case but over all foreground voxels (no sampling): foreground = voxels where mask > 0; np.percentile
 * 0.5 and 99.5 ('linear'), np.mean, np.std (ddof 0). img and mask: one channel each, same dims.
 * Returns the number of foreground voxels (0: *s untouched), or -1 when a foreground voxel is NaN. */
struct vp_ct_stats {
    double p00_5, p99_5, mean, std;
};
int64_t vp_ct_stats(const vp_vol *img, const vp_vol *mask, struct vp_ct_stats *s);

#endif
