/* edt.h - exact Euclidean distances from query voxels to the nearest feature voxel of a 3D grid.
 *
 * Distances are between voxel centres, in mm with anisotropic spacing. Two phases:
 *   1. probe: for each query, the offsets within a small ball (about 200 voxels) are tried in order
 *      of distance; the first feature found is the nearest one. On segmentation boundaries nearly
 *      every query is settled here, most by its own voxel (distance 0).
 *   2. exact transform for the rest, separably (Felzenszwalb & Huttenlocher, "Distance Transforms
 *      of Sampled Functions", 2012): along z the integer distance to the nearest feature of each
 *      column (a forward and a backward scan); along y, per z slice and only for the rows that
 *      still hold queries, the minimum of (g(y') sz)^2 + ((y - y') sy)^2, found by searching
 *      outward from the row or, when that grows beyond the column length, from the column's lower
 *      envelope of parabolas; along x the lower envelope of each such row, evaluated at its queries.
 * Either phase only chooses the nearest feature; the distance is then computed from the integer
 * offsets as sqrt((dx sx)^2 + (dy sy)^2 + (dz sz)^2), summed in that order, as scipy's
 * distance_transform_edt computes it: no approximation of the metric, the same bits as scipy for
 * the same feature (k voxels along one axis give exactly k times the spacing), and a brute-force
 * minimum over all feature voxels agrees to the last bit or two where features tie. The work runs
 * slice by slice on vp_threads threads; every output value is computed by one thread from the same
 * inputs in the same order, so the result does not depend on the thread count.
 *
 * Ownership: the functions work on caller memory and allocate only internal scratch.
 */
#ifndef VP_EDT_H
#define VP_EDT_H

#include <stddef.h>
#include <stdint.h>

/* 1 (default): probe first; 0: the exact separable pass for every query; 2: probe, then the exact
 * pass without its column table (what it does when few queries are left). Tests compare all. */
extern int vp_edt_probe;

/* Lower envelope of parabolas in one dimension: d[q] = min over p with finite f[p] of
 * f[p] + w (q - p)^2, for q in [0, n); +inf everywhere when no f[p] is finite. v (n ints) and
 * z (n + 1 doubles) are scratch. d may not alias f. */
void vp_edt_1d(const double *f, int64_t n, double w, double *d, int64_t *v, double *z);

/* The grain for vp_parallel_for over n slices of `voxels` voxels each: one range (no threads) for a
 * box under about a million voxels, where starting threads costs more than it saves; else 1. */
static inline uint64_t vp_slice_grain(uint64_t n, uint64_t voxels)
{
    return n * voxels < ((uint64_t)1 << 20) ? (n ? n : 1) : 1;
}

/* Number of nonzero bytes in m[0..n). */
uint64_t vp_mask_count(const uint8_t *m, uint64_t n);

/* Distances from the query voxels of a dims[0] x dims[1] x dims[2] grid (x fastest) to the nearest
 * feature voxel: feat[i] != 0 marks a feature, query[i] != 0 a voxel whose distance is wanted
 * (query NULL: every voxel). sp: the spacing along x, y, z (mm, > 0). out receives one distance per
 * query voxel, in raster order (x fastest), +inf when there is no feature at all; it must hold
 * vp_mask_count(query) values (or every voxel's). Returns the number of values written. */
uint64_t vp_edt_query(const uint8_t *feat, const uint8_t *query, const uint64_t dims[3], const double sp[3],
                      double *out);

#endif
