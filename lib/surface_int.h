/* surface_int.h - internal interface between surface.c (boundaries and distances) and
 * surface_stats.c (pooling). Not for programs: use surface.h.
 *
 * Ownership: a vp_dir points to arrays its creator owns.
 */
#ifndef VP_SURFACE_INT_H
#define VP_SURFACE_INT_H

#include <stdint.h>

#include "surface.h"

/* The distances of one direction: d[i] from boundary element i of one mask to the other mask's
 * boundary, w[i] its weight (surfel area; NULL for unit weights). */
struct vp_dir {
    uint64_t n;
    double *d, *w;
};

/* Pool the directions into v[VP_SM_N] under o->conv. P: prediction -> reference, R: reference ->
 * prediction; PS, RS: the plastimatch "set" directions (all voxels of a mask, 0 inside the other).
 * The d arrays are reordered. */
void vp_surface_pool(const struct vp_surface_opts *o, struct vp_dir *P, struct vp_dir *R, struct vp_dir *PS,
                     struct vp_dir *RS, double *v);

#endif
