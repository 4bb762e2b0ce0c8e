/* gauss.h - separable Gaussian smoothing of f32 volumes, with the kernels and boundaries of the two
 * peers people compare against:
 *
 *   VP_GAUSS_MONAI  MONAI GaussianSmooth / GaussianFilter(approx="erf", truncated=4.0): radius
 *                   int(max(4 sigma, 0.5) + 0.5), weights 0.5 (erf((x + 0.5) / (sigma sqrt 2)) -
 *                   erf((x - 0.5) / (sigma sqrt 2))) (the Gaussian integrated over each voxel), not
 *                   renormalised; zero padding outside the image (separable_filtering mode "zeros").
 *   VP_GAUSS_SCIPY  scipy.ndimage.gaussian_filter(truncate=4.0, mode="reflect"): radius
 *                   int(4 sigma + 0.5), sampled weights exp(-x^2 / (2 sigma^2)) normalised to sum 1;
 *                   outside the image the line is mirrored with the edge voxel repeated (d c b a |
 *                   a b c d | d c b a), periodically for lines shorter than the radius.
 *
 * Both filter x, then y, then z, each pass in single precision (like the peers, which store f32
 * between passes). An axis with sigma 0 is left as it is. Each output voxel is summed in a fixed
 * order, so the result is the same for any --threads.
 *
 * Ownership: vp_gauss_smooth works in place on the caller's volume (it may replace v->alloc and
 * v->data with a buffer of its own, freeing the old one); vp_gauss_kernel fills a caller array.
 */
#ifndef VP_GAUSS_H
#define VP_GAUSS_H

#include "volume.h"

enum vp_gauss_kind { VP_GAUSS_MONAI, VP_GAUSS_SCIPY };

#define VP_GAUSS_MAX_SIGMA 1000.0 /* voxels; radius <= 4000 */

/* Radius of the 1D kernel for sigma (voxels, 0 <= sigma <= VP_GAUSS_MAX_SIGMA); 0 means identity. */
int vp_gauss_radius(double sigma, enum vp_gauss_kind kind);

/* Weights w[0 .. 2 radius] of the 1D kernel (w[radius] is the centre). Returns the radius. */
int vp_gauss_kernel(double sigma, enum vp_gauss_kind kind, double *w);

/* Smooth every channel of the f32 volume v with per-axis sigmas in voxels. v must own its buffer
 * with data == alloc (as vp_vol_new makes it). */
void vp_gauss_smooth(vp_vol *v, const double sigma[3], enum vp_gauss_kind kind);

#endif
