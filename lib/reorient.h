/* reorient.h - exact reorientation of a volume to an axis code (RAS, LPS, PIR ...): a permutation
 * and flips of the voxel axes, with the affine changed so that every voxel keeps its world position.
 * No interpolation: the voxel values are moved, never recomputed (nibabel's as_reoriented).
 *
 * An axis code has one letter per voxel axis naming the world direction that axis points to: one of
 * R/L, one of A/P and one of S/I, in any order. The volume's current code is vp_affine_axcodes().
 *
 * Ownership: vp_reorient() returns a new volume owned by the caller; the input is not modified.
 */
#ifndef VP_REORIENT_H
#define VP_REORIENT_H

#include "volume.h"

/* Check an axis code (3 letters, case-sensitive upper case, one of each pair). 0 ok, -1 not. */
int vp_axcode_valid(const char *code);

/* The transform from v's orientation to `code`: output axis j takes input axis perm[j], reversed
 * when flip[j]. 0 ok; -1 when v's affine has no clear orientation (a degenerate affine). */
int vp_reorient_plan(const vp_vol *v, const char *code, int perm[3], int flip[3]);

/* v reoriented to `code` (channels follow their voxels): dims permuted, affine columns permuted and
 * negated, origin moved to the new voxel 0. Returns NULL after "<ctx>: ..." when v's orientation
 * cannot be determined. A volume already in `code` is copied unchanged. */
vp_vol *vp_reorient(const vp_vol *v, const char *code, const char *ctx);

#endif
