/* surface.h - boundary (surface) distance metrics of a predicted against a reference mask, in mm,
 * under the conventions of the well-known tools (docs/METRICS.md describes each in full).
 *
 * A metric is computed in three steps:
 *   1. boundary extraction: per mask the boundary elements (points) and their weights;
 *   2. directed distances: from every boundary element of one mask to the nearest boundary element
 *      of the other, with the exact EDT of edt.h over the union bounding box;
 *   3. statistics: maxima, percentiles, means and tolerance counts of the two directed distance
 *      lists, pooled as the convention pools them, with its values for empty masks.
 * Conventions (vp_conv):
 *   voxpipe          boundary voxels (an object voxel with a 6-neighbour outside the object or the
 *                    image), distances between voxel centres in double precision, percentiles by
 *                    linear interpolation per direction (numpy's default), HD/HDp the larger of
 *                    the two directed values; both masks empty: NaN; one empty: +inf (NSD, F1 0).
 *   monai            MONAI 1.x compute_hausdorff_distance / compute_average_surface_distance /
 *                    compute_surface_dice: the same boundary voxels and pooling as voxpipe, with
 *                    distances in float32 and torch.quantile's float32 interpolation.
 *   deepmind         surface-distance's compute_surface_distances: surfels at the voxel corners
 *                    (marching cubes, surfel.h) weighted by their area; area-weighted percentile
 *                    by cumulative area (compute_robust_hausdorff), area-weighted averages and
 *                    surface Dice; both empty: HD +inf, averages NaN.
 *   metricsreloaded  MetricsReloaded BinaryPairwiseMeasures: boundary = mask minus its erosion,
 *                    numpy percentile per direction, ASSD pooled, MASD the mean of the directed
 *                    means; both empty: 0; one empty: scipy's EDT of an empty feature set measures
 *                    to the virtual point (-1, 0, 0) of the whole image, reproduced here.
 *   plastimatch      plastimatch 1.9.4 dice --hausdorff on the box it crops to (the caller cuts that
 *                    box: metrics/hausdorff.c): boundary voxels with a 6-neighbour outside the object
 *                    or the box, except along an axis where the box is one voxel thick (its
 *                    "adaptive padding"); percentile as the floor(f n - 1)-th smallest (0 when
 *                    f n < 1, where plastimatch reads the float before its array), HDp and the
 *                    average as the mean of the two directed values, ahd their maximum, plus the
 *                    "set" variants over all voxels of a mask (distance 0 inside the other);
 *                    distances and results rounded to float as plastimatch stores them; distances
 *                    to a mask without boundary voxels FLT_MAX (its distance map's value);
 *                    both empty: NaN (plastimatch exits with an error). Distances are exact where
 *                    plastimatch's Danielsson map is approximate (docs/METRICS.md: how far).
 *
 * Ownership: the caller owns the masks; vp_surface_metrics() allocates only scratch.
 */
#ifndef VP_SURFACE_H
#define VP_SURFACE_H

#include <stdint.h>

enum vp_conv { VP_CONV_VOXPIPE, VP_CONV_MONAI, VP_CONV_DEEPMIND, VP_CONV_METRICSRELOADED, VP_CONV_PLASTIMATCH,
               VP_NCONV };
extern const char *const vp_conv_names[]; /* "voxpipe", "monai", ..., NULL */

/* The metrics. P and R are the boundaries of the prediction and the reference, d(P->R) the
 * distances from the elements of P to R (weighted by surfel area under deepmind).
 *   HD        max(max d(P->R), max d(R->P))        HDP   the percentile, pooled per convention
 *   MASD      (mean d(P->R) + mean d(R->P)) / 2    AHD   max(mean d(P->R), mean d(R->P))
 *   ASSD      mean of d(P->R) and d(R->P) pooled
 *   NSD       fraction of both boundaries within the tolerance of the other (normalized surface
 *             Dice); BPREC the fraction of P within tolerance of R, BREC that of R, BF1 their
 *             harmonic mean (the boundary F1 score)
 *   *_SET     plastimatch only: over all voxels of a mask, 0 inside the other mask (else NaN). */
enum vp_sm { VP_SM_HD, VP_SM_HDP, VP_SM_MASD, VP_SM_AHD, VP_SM_ASSD, VP_SM_NSD, VP_SM_BPREC, VP_SM_BREC,
             VP_SM_BF1, VP_SM_HD_SET, VP_SM_HDP_SET, VP_SM_MASD_SET, VP_SM_AHD_SET, VP_SM_N };

/* Mask values in struct vp_surface_in. */
enum { VP_MASK_BG = 0, VP_MASK_IN = 1, VP_MASK_OUT = 2 /* beyond the image */ };

/* One class: both masks on a box one voxel larger on every side than the union bounding box of
 * the two masks (so no object voxel lies on the box's faces). Under plastimatch the inner box is
 * plastimatch's crop and the faces count as beyond its image (hold no VP_MASK_IN). */
struct vp_surface_in {
    uint64_t dims[3];          /* of the padded box, each >= 3 */
    const uint8_t *pred, *ref; /* VP_MASK_* per voxel, x fastest */
    int64_t origin[3];         /* image index of padded voxel (0, 0, 0): bounding box start - 1 */
    double sp[3];              /* spacing along x, y, z (mm) */
};

struct vp_surface_opts {
    enum vp_conv conv;
    double percentile; /* 0..100, for HDP */
    double tolerance;  /* mm, for NSD and the boundary precision/recall/F1 */
};

struct vp_surface_res {
    double v[VP_SM_N];
    uint64_t npred, nref; /* boundary elements (voxels or surfels) */
};

/* Compute every metric of one class (runs on vp_threads threads, deterministic). */
void vp_surface_metrics(const struct vp_surface_in *in, const struct vp_surface_opts *o, struct vp_surface_res *r);

/* Statistics helpers, exposed for tests. a is reordered. */
double vp_pct_numpy(double *a, uint64_t n, double p);    /* numpy.percentile, method 'linear' */
double vp_pct_torch(double *a, uint64_t n, double p);    /* torch.quantile(float32 a, p / 100) */
double vp_pct_floor(double *a, uint64_t n, double p);    /* plastimatch: floor(f n - 1)-th smallest, 0
                                                            when f n < 1 (f = p / 100 in float) */
double vp_sum_pairwise(const double *a, uint64_t n);     /* numpy's pairwise summation */

#endif
