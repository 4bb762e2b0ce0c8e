/* surfel.h - surface elements ("surfels") of a binary mask in the marching-cubes sense, as DeepMind's
 * surface-distance package (and MONAI's use_subvoxels mode) measures them.
 *
 * Each corner of the voxel lattice is the centre of a 2x2x2 neighbourhood of voxels; the 8 inside /
 * outside bits form a neighbourhood code 0..255. Codes other than 0 (all outside) and 255 (all
 * inside) lie on the surface, and the table gives, per code, the normals of the triangles marching
 * cubes puts there, whose lengths encode their areas for unit spacing. The bit of the voxel at
 * offset (a, b, c) along (x, y, z) is 1 << (7 - (4a + 2b + c)), the package's correlation kernel
 * [[[128, 64], [32, 16]], [[8, 4], [2, 1]]] applied to arrays indexed [x, y, z].
 *
 * The normals table is DeepMind's (lookup_tables.py of github.com/deepmind/surface-distance,
 * Copyright 2018 Google Inc., Apache License 2.0), stored in eighths.
 *
 * Ownership: nothing is allocated.
 */
#ifndef VP_SURFEL_H
#define VP_SURFEL_H

/* Area in mm^2 of the surface in a neighbourhood with each code, for spacing sp (x, y, z): for
 * each normal (n0, n1, n2) the length of (n0 sy sz, n1 sx sz, n2 sx sy), summed in table order,
 * as surface-distance's create_table_neighbour_code_to_surface_area() computes it. */
void vp_surfel_areas(const double sp[3], double area[256]);

#endif
